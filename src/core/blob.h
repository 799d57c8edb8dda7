/* A refcounted block of read-only bytes: a file mapping or a heap buffer.
 * Tensors read from a file borrow their bytes from the file's blob and hold
 * a reference, so the mapping lives exactly as long as some tensor uses it. */
#ifndef LT_BLOB_H
#define LT_BLOB_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef struct lt_blob lt_blob;

/* Map the whole file read-only. Nothing is read until pages are touched.
 * Returns a new reference, or NULL with err set (missing file, directory,
 * empty file is allowed and gives size 0). */
lt_blob *lt_blob_map_file(const char *path, lt_err *err);

/* Take ownership of a buffer from lt_malloc (freed with lt_free on the last
 * unref). Returns a new reference or NULL (ENOMEM; data is then freed). */
lt_blob *lt_blob_wrap(void *data, size_t size, lt_err *err);

const uint8_t *lt_blob_data(const lt_blob *b);
size_t lt_blob_size(const lt_blob *b);

lt_blob *lt_blob_ref(lt_blob *b);
/* Drop a reference; NULL is a no-op. */
void lt_blob_unref(lt_blob *b);

#endif
