/* Tensors: a shape, a storage dtype, and f32 values for computation.
 *
 * A tensor read from a file keeps the file's bytes in their own dtype and
 * converts them to f32 on first use (lt_tensor_data), so opening a large
 * model costs nothing until a tensor is touched. Writing through
 * lt_tensor_data_mut gives the tensor its own f32 storage (copy on write). */
#ifndef LT_TENSOR_H
#define LT_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "core/blob.h"
#include "core/err.h"

typedef enum {
	LT_F64, LT_F32, LT_F16, LT_BF16,
	LT_I64, LT_I32, LT_I16, LT_I8, LT_U8, LT_BOOL,
	LT_U64, LT_U32, LT_U16,
	LT_F8_E4M3, LT_F8_E5M2, /* OCP 8-bit floats ("fn" E4M3: no infinities) */
	LT_DTYPE_COUNT
} lt_dtype;

#define LT_MAX_DIMS 8

/* Safetensors spelling ("F32", "BF16", ...). */
const char *lt_dtype_name(lt_dtype d);
/* Parse a safetensors dtype name; 0 on success, LT_EINVAL if unknown. */
int lt_dtype_parse(const char *name, lt_dtype *out);
size_t lt_dtype_size(lt_dtype d);

/* Scalar conversions used by loaders and writers. */
float lt_f16_to_f32(uint16_t h);
uint16_t lt_f32_to_f16(float f);      /* round to nearest even */
float lt_bf16_to_f32(uint16_t h);
float lt_f8e4m3_to_f32(uint8_t b);
float lt_f8e5m2_to_f32(uint8_t b);
uint16_t lt_f32_to_bf16(float f);     /* round to nearest even */

typedef struct lt_tensor lt_tensor;

/* Multiply out a shape, failing (LT_ERANGE) if the count overflows int64 or
 * exceeds limit elements. ndim 0 is a scalar (1 element). */
int lt_shape_numel(int ndim, const int64_t *shape, int64_t limit,
		   int64_t *numel, lt_err *err);

/* New zero-filled f32 tensor. NULL with err on bad shape or no memory. */
lt_tensor *lt_tensor_new(int ndim, const int64_t *shape, lt_err *err);
/* The same with the values left undefined, for kernels that write every
 * element (zeroing a large tensor first costs as much as writing it). */
lt_tensor *lt_tensor_new_uninit(int ndim, const int64_t *shape, lt_err *err);

/* Tensor over bytes owned by blob (a new blob reference is taken). data must
 * hold numel * lt_dtype_size(dtype) bytes inside the blob; it need not be
 * aligned. Values are converted to f32 only when first read. */
lt_tensor *lt_tensor_from_bytes(lt_dtype dtype, int ndim, const int64_t *shape,
				lt_blob *blob, const void *data, lt_err *err);

lt_tensor *lt_tensor_ref(lt_tensor *t);
/* Drop a reference; NULL is a no-op. */
void lt_tensor_unref(lt_tensor *t);

int lt_tensor_ndim(const lt_tensor *t);
const int64_t *lt_tensor_shape(const lt_tensor *t);
int64_t lt_tensor_numel(const lt_tensor *t);
/* The dtype the values are stored in (F32 once written through _mut). */
lt_dtype lt_tensor_dtype(const lt_tensor *t);
/* Bytes of storage in the stored dtype. */
size_t lt_tensor_nbytes(const lt_tensor *t);
/* Raw stored bytes (in lt_tensor_dtype) for writers; never NULL. */
const void *lt_tensor_raw(const lt_tensor *t);

/* f32 values, converting on first call. NULL with err only when the
 * conversion buffer cannot be allocated. Borrowed; valid until the tensor is
 * released or written through _mut. */
const float *lt_tensor_data(lt_tensor *t, lt_err *err);
/* Writable f32 values owned by this tensor (copies shared storage first). */
float *lt_tensor_data_mut(lt_tensor *t, lt_err *err);

/* Count of elements equal to zero (+0 or -0) in the stored dtype. Reads the
 * stored bytes without caching a conversion, so it costs no lasting memory. */
int64_t lt_tensor_count_zeros(const lt_tensor *t);

/* "[300, 784]" into buf; returns buf. */
char *lt_shape_format(int ndim, const int64_t *shape, char *buf, size_t size);



/* 1 when more than one owner holds t (a model, a snapshot, a Lua value):
 * such a tensor must be cloned, not written, so the others keep seeing
 * the old values. This is what makes staging copy-on-write. */
int lt_tensor_shared(const lt_tensor *t);

/* A new tensor with t's shape, dtype, values and mask. Storage read from a
 * file stays shared until one of the two is written. NULL with err. */
lt_tensor *lt_tensor_clone(lt_tensor *t, lt_err *err);

/* Masks: a tensor may carry a 0/1 mask of the same shape (f32). Where the
 * mask is 0 the value must stay exactly 0: training zeroes those gradients
 * and weights after every step. set takes a reference (NULL removes);
 * LT_EINVAL if shapes differ. get returns it borrowed, or NULL. */
int lt_tensor_set_mask(lt_tensor *t, lt_tensor *mask, lt_err *err);
lt_tensor *lt_tensor_mask(const lt_tensor *t);

/* Coding schemes (core/scheme.h): a quantized or weight-shared tensor
 * keeps the codes its values came from, so sizes and the packed format are
 * exact. set takes ownership of s (NULL removes; LT_EINVAL, with s still
 * the caller's, if its element count differs). Any write through
 * lt_tensor_data_mut drops the scheme: the codes would no longer describe
 * the values. A clone gets its own copy. */
struct lt_scheme;
int lt_tensor_set_scheme(lt_tensor *t, struct lt_scheme *s, lt_err *err);
struct lt_scheme *lt_tensor_scheme(const lt_tensor *t);
/* Detach the scheme (the caller owns it) so that the tensor can be written
 * without losing it; NULL if there is none. */
struct lt_scheme *lt_tensor_take_scheme(lt_tensor *t);

/* A new tensor holding t's values stored as dtype (F32, F16 or BF16; others
 * give LT_EINVAL). Rounds to nearest even. */
lt_tensor *lt_tensor_cast(lt_tensor *t, lt_dtype dtype, lt_err *err);
#endif
