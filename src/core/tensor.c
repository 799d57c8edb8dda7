#include "core/tensor.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include "core/scheme.h"

struct lt_tensor {
	int refs;              /* atomic: a worker thread may hold references */
	lt_dtype dtype;
	int ndim;
	int64_t shape[LT_MAX_DIMS];
	int64_t numel;
	lt_blob *blob;     /* owner of raw, or NULL when raw == f32 and owned */
	const void *raw;   /* stored bytes in dtype */
	float *f32;        /* f32 view: == raw (aligned F32), or a conversion */
	int f32_owned;     /* f32 was allocated by us */
	lt_tensor *mask;   /* 0/1 values, same shape, or NULL */
	lt_scheme *scheme; /* the codes the values came from, or NULL */
};

static const struct {
	const char *name;
	size_t size;
} dtype_info[LT_DTYPE_COUNT] = {
	[LT_F64] = {"F64", 8},  [LT_F32] = {"F32", 4}, [LT_F16] = {"F16", 2},
	[LT_BF16] = {"BF16", 2}, [LT_I64] = {"I64", 8}, [LT_I32] = {"I32", 4},
	[LT_I16] = {"I16", 2},  [LT_I8] = {"I8", 1},   [LT_U8] = {"U8", 1},
	[LT_BOOL] = {"BOOL", 1}, [LT_U64] = {"U64", 8}, [LT_U32] = {"U32", 4},
	[LT_U16] = {"U16", 2},  [LT_F8_E4M3] = {"F8_E4M3", 1}, [LT_F8_E5M2] = {"F8_E5M2", 1},
};

const char *lt_dtype_name(lt_dtype d)
{
	return (unsigned)d < LT_DTYPE_COUNT ? dtype_info[d].name : "?";
}

size_t lt_dtype_size(lt_dtype d)
{
	return (unsigned)d < LT_DTYPE_COUNT ? dtype_info[d].size : 0;
}

int lt_dtype_parse(const char *name, lt_dtype *out)
{
	for (int d = 0; d < LT_DTYPE_COUNT; d++) {
		if (strcmp(name, dtype_info[d].name) == 0) {
			*out = (lt_dtype)d;
			return 0;
		}
	}
	return LT_EINVAL;
}

float lt_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
	if (exp == 0) {
		/* zero or subnormal: value = man * 2^-24 */
		float v = ldexpf((float)man, -24);
		return sign ? -v : v;
	} else if (exp == 31) {
		bits = sign | 0x7f800000u | (man << 13);
	} else {
		bits = sign | ((exp + 112) << 23) | (man << 13);
	}
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

uint16_t lt_f32_to_f16(float f)
{
	uint32_t x;
	memcpy(&x, &f, 4);
	uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
	uint32_t absx = x & 0x7fffffffu;
	if (absx >= 0x7f800000u) /* inf or nan (keep nan quiet) */
		return sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0);
	if (absx >= 0x477ff000u) /* rounds to >= 65520: overflow */
		return sign | 0x7c00;
	if (absx < 0x38800000u) {
		/* subnormal half: round absx * 2^24 to an integer, ties even */
		float a;
		memcpy(&a, &absx, 4);
		return sign | (uint16_t)lrintf(a * 16777216.0f);
	}
	uint32_t r = absx + 0xfffu + ((absx >> 13) & 1); /* ties to even */
	return sign | (uint16_t)((r - 0x38000000u) >> 13);
}

float lt_f8e4m3_to_f32(uint8_t b)
{
	int sign = b & 0x80, exp = (b >> 3) & 0xf, man = b & 7;
	float v;
	if (exp == 0xf && man == 7)
		v = NAN; /* the only special value of the "fn" variant */
	else if (exp == 0)
		v = ldexpf((float)man, -9); /* subnormal: man/8 * 2^-6 */
	else
		v = ldexpf((float)(8 + man), exp - 10); /* (1 + man/8) * 2^(exp-7) */
	return sign ? -v : v;
}

float lt_f8e5m2_to_f32(uint8_t b)
{
	/* E5M2 is the top byte of an IEEE half. */
	return lt_f16_to_f32((uint16_t)(b << 8));
}

float lt_bf16_to_f32(uint16_t h)
{
	uint32_t bits = (uint32_t)h << 16;
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

uint16_t lt_f32_to_bf16(float f)
{
	uint32_t x;
	memcpy(&x, &f, 4);
	if ((x & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((x >> 16) | 0x40);
	x += 0x7fffu + ((x >> 16) & 1);
	return (uint16_t)(x >> 16);
}

int lt_shape_numel(int ndim, const int64_t *shape, int64_t limit,
		   int64_t *numel, lt_err *err)
{
	if (ndim < 0 || ndim > LT_MAX_DIMS)
		return lt_err_set(err, LT_ERANGE, "%d dimensions (at most %d supported)",
				  ndim, LT_MAX_DIMS);
	int64_t n = 1;
	for (int i = 0; i < ndim; i++) {
		if (shape[i] < 0)
			return lt_err_set(err, LT_EINVAL, "negative dimension %" PRId64, shape[i]);
		if (shape[i] != 0 && n > limit / shape[i])
			return lt_err_set(err, LT_ERANGE, "shape too large (more than %" PRId64 " elements)", limit);
		n *= shape[i];
	}
	if (n > limit)
		return lt_err_set(err, LT_ERANGE, "shape too large (more than %" PRId64 " elements)", limit);
	*numel = n;
	return 0;
}

static lt_tensor *tensor_alloc(int ndim, const int64_t *shape, lt_err *err)
{
	int64_t numel;
	if (lt_shape_numel(ndim, shape, INT64_MAX / 8, &numel, err))
		return NULL;
	lt_tensor *t = lt_calloc(1, sizeof *t);
	if (!t) {
		lt_err_set(err, LT_ENOMEM, "out of memory");
		return NULL;
	}
	t->refs = 1;
	t->ndim = ndim;
	t->numel = numel;
	if (ndim)
		memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
	return t;
}

static lt_tensor *new_f32(int ndim, const int64_t *shape, int zeroed, lt_err *err)
{
	lt_tensor *t = tensor_alloc(ndim, shape, err);
	if (!t)
		return NULL;
	size_t bytes = (size_t)t->numel * 4;
	if ((uint64_t)t->numel > SIZE_MAX / 4 ||
	    !(t->f32 = zeroed ? lt_alloc_aligned(bytes) : lt_alloc_uninit(bytes))) {
		lt_err_set(err, LT_ENOMEM, "out of memory for %" PRId64 " values", t->numel);
		lt_free(t);
		return NULL;
	}
	t->f32_owned = 1;
	t->dtype = LT_F32;
	t->raw = t->f32;
	return t;
}

lt_tensor *lt_tensor_new(int ndim, const int64_t *shape, lt_err *err)
{
	return new_f32(ndim, shape, 1, err);
}

lt_tensor *lt_tensor_new_uninit(int ndim, const int64_t *shape, lt_err *err)
{
	return new_f32(ndim, shape, 0, err);
}

lt_tensor *lt_tensor_from_bytes(lt_dtype dtype, int ndim, const int64_t *shape,
				lt_blob *blob, const void *data, lt_err *err)
{
	if ((unsigned)dtype >= LT_DTYPE_COUNT) {
		lt_err_set(err, LT_EINVAL, "unknown dtype");
		return NULL;
	}
	lt_tensor *t = tensor_alloc(ndim, shape, err);
	if (!t)
		return NULL;
	t->dtype = dtype;
	t->blob = lt_blob_ref(blob);
	t->raw = data;
	return t;
}

int lt_tensor_shared(const lt_tensor *t)
{
	return __atomic_load_n(&t->refs, __ATOMIC_ACQUIRE) > 1;
}

lt_tensor *lt_tensor_clone(lt_tensor *t, lt_err *err)
{
	lt_tensor *c;
	/* Still the file's bytes (converted or not) unless written. */
	if (t->blob && !(t->f32_owned && t->raw == (const void *)t->f32)) {
		c = lt_tensor_from_bytes(t->dtype, t->ndim, t->shape, t->blob, t->raw, err);
	} else {
		c = lt_tensor_new(t->ndim, t->shape, err);
		if (c)
			memcpy(c->f32, t->f32, (size_t)t->numel * sizeof(float));
	}
	if (c && t->mask)
		c->mask = lt_tensor_ref(t->mask);
	if (c && t->scheme && !(c->scheme = lt_scheme_clone(t->scheme, err))) {
		lt_tensor_unref(c);
		return NULL;
	}
	return c;
}

lt_tensor *lt_tensor_ref(lt_tensor *t)
{
	if (t)
		__atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED);
	return t;
}

void lt_tensor_unref(lt_tensor *t)
{
	if (!t || __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	if (t->f32_owned)
		lt_free(t->f32);
	lt_tensor_unref(t->mask);
	lt_scheme_free(t->scheme);
	lt_blob_unref(t->blob);
	lt_free(t);
}

int lt_tensor_ndim(const lt_tensor *t) { return t->ndim; }
const int64_t *lt_tensor_shape(const lt_tensor *t) { return t->shape; }
int64_t lt_tensor_numel(const lt_tensor *t) { return t->numel; }
lt_dtype lt_tensor_dtype(const lt_tensor *t) { return t->dtype; }
const void *lt_tensor_raw(const lt_tensor *t) { return t->raw ? t->raw : (const void *)""; }

size_t lt_tensor_nbytes(const lt_tensor *t)
{
	return (size_t)t->numel * lt_dtype_size(t->dtype);
}

/* Convert n stored values to f32. Reads go through memcpy because mapped
 * storage need not be aligned. */
static void convert_to_f32(lt_dtype dtype, const uint8_t *src, float *dst, int64_t n)
{
	switch (dtype) {
	case LT_F32: memcpy(dst, src, (size_t)n * 4); break;
	case LT_F64:
		for (int64_t i = 0; i < n; i++) { double v; memcpy(&v, src + 8 * i, 8); dst[i] = (float)v; }
		break;
	case LT_F16:
		for (int64_t i = 0; i < n; i++) { uint16_t v; memcpy(&v, src + 2 * i, 2); dst[i] = lt_f16_to_f32(v); }
		break;
	case LT_BF16:
		for (int64_t i = 0; i < n; i++) { uint16_t v; memcpy(&v, src + 2 * i, 2); dst[i] = lt_bf16_to_f32(v); }
		break;
	case LT_I64:
		for (int64_t i = 0; i < n; i++) { int64_t v; memcpy(&v, src + 8 * i, 8); dst[i] = (float)v; }
		break;
	case LT_I32:
		for (int64_t i = 0; i < n; i++) { int32_t v; memcpy(&v, src + 4 * i, 4); dst[i] = (float)v; }
		break;
	case LT_I16:
		for (int64_t i = 0; i < n; i++) { int16_t v; memcpy(&v, src + 2 * i, 2); dst[i] = (float)v; }
		break;
	case LT_I8:
		for (int64_t i = 0; i < n; i++) dst[i] = (float)(int8_t)src[i];
		break;
	case LT_U8:
		for (int64_t i = 0; i < n; i++) dst[i] = (float)src[i];
		break;
	case LT_BOOL:
		for (int64_t i = 0; i < n; i++) dst[i] = src[i] ? 1.0f : 0.0f;
		break;
	case LT_U64:
		for (int64_t i = 0; i < n; i++) { uint64_t v; memcpy(&v, src + 8 * i, 8); dst[i] = (float)v; }
		break;
	case LT_U32:
		for (int64_t i = 0; i < n; i++) { uint32_t v; memcpy(&v, src + 4 * i, 4); dst[i] = (float)v; }
		break;
	case LT_U16:
		for (int64_t i = 0; i < n; i++) { uint16_t v; memcpy(&v, src + 2 * i, 2); dst[i] = (float)v; }
		break;
	case LT_F8_E4M3:
		for (int64_t i = 0; i < n; i++) dst[i] = lt_f8e4m3_to_f32(src[i]);
		break;
	case LT_F8_E5M2:
		for (int64_t i = 0; i < n; i++) dst[i] = lt_f8e5m2_to_f32(src[i]);
		break;
	default: break;
	}
}

const float *lt_tensor_data(lt_tensor *t, lt_err *err)
{
	if (t->f32)
		return t->f32;
	if (t->dtype == LT_F32 && ((uintptr_t)t->raw & 3) == 0) {
		t->f32 = (float *)t->raw; /* zero copy; never written through */
		return t->f32;
	}
	float *f = lt_alloc_aligned((size_t)t->numel * 4);
	if (!f) {
		lt_err_set(err, LT_ENOMEM, "out of memory converting %" PRId64 " values", t->numel);
		return NULL;
	}
	convert_to_f32(t->dtype, t->raw, f, t->numel);
	t->f32 = f;
	t->f32_owned = 1;
	return f;
}

float *lt_tensor_data_mut(lt_tensor *t, lt_err *err)
{
	if (!lt_tensor_data(t, err))
		return NULL;
	if (!t->f32_owned) {
		float *f = lt_alloc_aligned((size_t)t->numel * 4);
		if (!f) {
			lt_err_set(err, LT_ENOMEM, "out of memory copying %" PRId64 " values", t->numel);
			return NULL;
		}
		memcpy(f, t->f32, (size_t)t->numel * 4);
		t->f32 = f;
		t->f32_owned = 1;
	}
	/* From now on the f32 copy is the stored value. The blob stays
	 * referenced: pointers handed out before still point into it. */
	lt_scheme_free(t->scheme);
	t->scheme = NULL;
	t->dtype = LT_F32;
	t->raw = t->f32;
	return t->f32;
}

/* Count elements of type T (read through memcpy: storage may be unaligned)
 * whose value masked by MASK is zero. */
#define COUNT_ZEROS(T, MASK)                                                 \
	do {                                                                 \
		for (int64_t i = 0; i < t->numel; i++) {                     \
			T v;                                                 \
			memcpy(&v, p + i * (int64_t)sizeof(T), sizeof(T));   \
			z += (v & (MASK)) == 0;                              \
		}                                                            \
	} while (0)

int64_t lt_tensor_count_zeros(const lt_tensor *t)
{
	/* Counted in the stored dtype (an F64 1e-300 is not zero although it
	 * rounds to 0 in f32), straight from the stored bytes, so counting
	 * never caches a conversion: `lathe info` on a multi-GB model must not
	 * double its memory. Floats: -0 counts, so the sign bit is masked. */
	int64_t z = 0;
	const uint8_t *p = t->raw;
	switch (t->dtype) {
	case LT_F64: COUNT_ZEROS(uint64_t, 0x7fffffffffffffffu); break;
	case LT_F32: COUNT_ZEROS(uint32_t, 0x7fffffffu); break;
	case LT_F16:
	case LT_BF16: COUNT_ZEROS(uint16_t, 0x7fffu); break;
	case LT_I64:
	case LT_U64: COUNT_ZEROS(uint64_t, ~(uint64_t)0); break;
	case LT_I32:
	case LT_U32: COUNT_ZEROS(uint32_t, ~(uint32_t)0); break;
	case LT_I16:
	case LT_U16: COUNT_ZEROS(uint16_t, 0xffffu); break;
	case LT_F8_E4M3:
	case LT_F8_E5M2: COUNT_ZEROS(uint8_t, 0x7fu); break;
	default: COUNT_ZEROS(uint8_t, 0xffu); break; /* I8, U8, BOOL */
	}
	return z;
}

char *lt_shape_format(int ndim, const int64_t *shape, char *buf, size_t size)
{
	size_t used = 0;
	used += (size_t)snprintf(buf, size, "[");
	for (int i = 0; i < ndim && used < size; i++)
		used += (size_t)snprintf(buf + used, size - used, "%s%" PRId64, i ? ", " : "", shape[i]);
	if (used < size)
		snprintf(buf + used, size - used, "]");
	return buf;
}

lt_tensor *lt_tensor_cast(lt_tensor *t, lt_dtype dtype, lt_err *err)
{
	if (dtype != LT_F32 && dtype != LT_F16 && dtype != LT_BF16) {
		lt_err_set(err, LT_EINVAL, "cannot cast to %s (only F32, F16, BF16)", lt_dtype_name(dtype));
		return NULL;
	}
	const float *src = lt_tensor_data(t, err);
	if (!src)
		return NULL;
	size_t n = (size_t)t->numel, size = lt_dtype_size(dtype);
	uint8_t *buf = lt_alloc_aligned(n * size);
	if (!buf) {
		lt_err_set(err, LT_ENOMEM, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (dtype == LT_F32) {
			memcpy(buf + 4 * i, &src[i], 4);
		} else {
			uint16_t h = dtype == LT_F16 ? lt_f32_to_f16(src[i]) : lt_f32_to_bf16(src[i]);
			memcpy(buf + 2 * i, &h, 2);
		}
	}
	lt_blob *blob = lt_blob_wrap(buf, n * size, err);
	if (!blob)
		return NULL;
	lt_tensor *out = lt_tensor_from_bytes(dtype, t->ndim, t->shape, blob, buf, err);
	lt_blob_unref(blob);
	return out;
}

int lt_tensor_set_mask(lt_tensor *t, lt_tensor *mask, lt_err *err)
{
	if (mask) {
		int same = mask->ndim == t->ndim && mask != t;
		for (int i = 0; same && i < t->ndim; i++)
			same = mask->shape[i] == t->shape[i];
		if (!same)
			return lt_err_set(err, LT_EINVAL, "a mask must have the tensor's shape");
	}
	lt_tensor_ref(mask);
	lt_tensor_unref(t->mask);
	t->mask = mask;
	return 0;
}

int lt_tensor_set_scheme(lt_tensor *t, lt_scheme *s, lt_err *err)
{
	if (s && s->numel != t->numel)
		return lt_err_set(err, LT_EINVAL, "a coding scheme for %lld elements cannot describe a tensor of %lld",
				  (long long)s->numel, (long long)t->numel);
	lt_scheme_free(t->scheme);
	t->scheme = s;
	return 0;
}

lt_scheme *lt_tensor_scheme(const lt_tensor *t)
{
	return t->scheme;
}

lt_scheme *lt_tensor_take_scheme(lt_tensor *t)
{
	lt_scheme *s = t->scheme;
	t->scheme = NULL;
	return s;
}

lt_tensor *lt_tensor_mask(const lt_tensor *t)
{
	return t->mask;
}
