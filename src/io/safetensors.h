/* The safetensors format: an 8-byte little-endian header length N, N bytes
 * of JSON describing each tensor ({"dtype", "shape", "data_offsets"}) plus an
 * optional "__metadata__" object of strings, then the tensors' bytes.
 *
 * Loading is lazy: tensors point into the file's mapping and are converted to
 * f32 only when first read, so opening a large file costs only the header.
 * Validation is strict (as the reference implementation's): tensors must
 * exactly tile the data buffer, with no gaps, overlaps or trailing bytes. */
#ifndef LT_SAFETENSORS_H
#define LT_SAFETENSORS_H

#include "core/blob.h"
#include "core/err.h"
#include "core/model.h"

/* Largest header accepted, in bytes (the reference implementation's cap). */
#define LT_SAFETENSORS_MAX_HEADER 100000000u

/* Open a safetensors file: map it, validate the header, and return a new
 * model (caller unrefs) holding its tensors in data-offset order and every
 * "__metadata__" entry as model metadata. The graph is NOT built; call
 * lt_model_load_arch for that. NULL with err set on failure: LT_EIO (cannot
 * open/map), LT_EFORMAT (malformed; the message is one sentence that does
 * not repeat the file name, so callers prefix it), LT_ENOMEM. */
lt_model *lt_safetensors_load(const char *path, lt_err *err);

/* The same from bytes already in memory. Tensors take references to blob, so
 * the caller may drop its own reference once this returns. */
lt_model *lt_safetensors_parse(lt_blob *blob, lt_err *err);

/* Write every tensor of m (in its stored dtype, in model order, contiguous)
 * and every metadata entry to path. The header is padded with spaces to a
 * multiple of 8 bytes so the data is 8-byte aligned. The write is atomic: a
 * temporary file ".NAME.XXXXXX" in path's directory is written, synced and
 * renamed over path, so on failure path is untouched and the temporary file
 * removed. An existing file's permissions are kept; a new file gets 0644
 * less the umask. Returns 0, or LT_EIO (message names what failed and why),
 * LT_EINVAL (a tensor name that safetensors cannot hold: empty,
 * "__metadata__", or invalid UTF-8), LT_ENOMEM. */
int lt_safetensors_save(const lt_model *m, const char *path, lt_err *err);

/* One tensor as written: name, dtype, shape and nbytes bytes at data
 * (borrowed; data may be NULL for lt_safetensors_size). */
typedef struct lt_st_entry {
	const char *name;
	lt_dtype dtype;
	int ndim;
	const int64_t *shape;
	const void *data;
	uint64_t nbytes;
} lt_st_entry;

/* The same as lt_safetensors_save for a list of entries (written in that
 * order) and the metadata of meta_of (may be NULL). Two entries with one
 * name are LT_EINVAL. */
int lt_safetensors_write(const char *path, const lt_st_entry *e, size_t n, const lt_model *meta_of,
			 lt_err *err);

/* The exact size of the file lt_safetensors_save(m) would write. */
int lt_safetensors_model_size(const lt_model *m, uint64_t *bytes, lt_err *err);

/* The exact size in bytes of the file lt_safetensors_write would write. */
int lt_safetensors_size(const lt_st_entry *e, size_t n, const lt_model *meta_of, uint64_t *bytes,
			lt_err *err);

#endif
