/* IDX files (the MNIST / Fashion-MNIST container), plain or gzip-compressed.
 *
 * Layout (all big-endian): two zero bytes, a type code, the number of
 * dimensions, one u32 size per dimension, then exactly
 * product(sizes) * element-size bytes of row-major data.
 *
 * A plain file is mapped (mmap) and its payload is used in place. A gzip file
 * (recognised by its magic bytes 1f 8b, whatever its name) is inflated into
 * one buffer of exactly the size the header announces: the stream is never
 * allowed to produce more than header + payload bytes, so a gzip bomb fails
 * after at most one extra byte and never allocates past the bound. */
#ifndef LT_IDX_H
#define LT_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "core/blob.h"
#include "core/err.h"
#include "core/tensor.h"

/* Default cap on the payload size (product of the dims * element size). */
#define LT_IDX_MAX_BYTES ((uint64_t)4 << 30)

/* IDX element type codes. */
enum {
	LT_IDX_U8 = 0x08,
	LT_IDX_I8 = 0x09,
	LT_IDX_I16 = 0x0B,
	LT_IDX_I32 = 0x0C,
	LT_IDX_F32 = 0x0D,
	LT_IDX_F64 = 0x0E,
};

/* A loaded IDX file. The payload stays big-endian; read it with
 * lt_idx_get_f32 or byte by byte (u8/i8 need no conversion). */
typedef struct lt_idx {
	int type_code;          /* LT_IDX_* */
	lt_dtype dtype;         /* LT_U8, LT_I8, LT_I16, LT_I32, LT_F32, LT_F64 */
	size_t elem_size;       /* bytes per element: 1, 2, 4 or 8 */
	int ndim;               /* 1 .. LT_MAX_DIMS */
	int64_t dims[LT_MAX_DIMS];
	int64_t count;          /* dims[0]: number of items */
	int64_t item_numel;     /* product of dims[1..ndim-1] (1 when ndim is 1) */
	int64_t numel;          /* count * item_numel */
	size_t nbytes;          /* numel * elem_size */
	int compressed;         /* 1 if the file was gzip */
	lt_blob *blob;          /* owns the bytes data points into */
	const uint8_t *data;    /* nbytes of big-endian payload */
} lt_idx;

/* Load an IDX file into *out (caller releases it with lt_idx_release).
 * max_bytes caps the payload size (0 means LT_IDX_MAX_BYTES; a larger value
 * is clamped to it). Plain files are mapped, not copied; gzip files are
 * inflated into a buffer of exactly the payload size.
 * Errors: LT_EIO (open/map), LT_EFORMAT (bad header, short or overlong data,
 * corrupt or truncated gzip), LT_ERANGE (payload over the cap or size
 * overflow), LT_ENOMEM. The message is one sentence without the file name;
 * prefix it with lt_err_prefix. On failure *out is zeroed. */
int lt_idx_load(const char *path, size_t max_bytes, lt_idx *out, lt_err *err);

/* Release what lt_idx_load gave; zeroes *x. A zeroed struct or NULL is a
 * no-op. */
void lt_idx_release(lt_idx *x);

/* Convert the n scalar elements starting at flat (row-major) element index
 * first to f32 in out. Item i of the file starts at element i * item_numel.
 * Returns 0, or LT_ERANGE if the range is outside the payload (out is then
 * untouched). f64 values are rounded to the nearest f32; i32 values beyond
 * 2^24 are rounded. */
int lt_idx_get_f32(const lt_idx *x, int64_t first, int64_t n, float *out);

/* "u8", "i8", "i16", "i32", "f32", "f64", or "?" for an unknown code. */
const char *lt_idx_type_name(int type_code);

#endif
