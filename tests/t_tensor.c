/* Tensors: shapes, dtype conversions, copy on write, casts. */
#include <string.h>

#include "core/mem.h"
#include "core/tensor.h"
#include "tap.h"

static void test_f16(void)
{
	/* Known encodings (IEEE 754 binary16). */
	tap_ok(lt_f16_to_f32(0x3c00) == 1.0f, "f16 1.0");
	tap_ok(lt_f16_to_f32(0xc000) == -2.0f, "f16 -2.0");
	tap_ok(lt_f16_to_f32(0x7bff) == 65504.0f, "f16 max");
	tap_ok(lt_f16_to_f32(0x0001) == ldexpf(1, -24), "f16 smallest subnormal");
	tap_ok(isinf(lt_f16_to_f32(0x7c00)), "f16 inf");
	tap_ok(isnan(lt_f16_to_f32(0x7e00)), "f16 nan");
	tap_ok(lt_f32_to_f16(1.0f) == 0x3c00, "f32->f16 1.0");
	tap_ok(lt_f32_to_f16(65520.0f) == 0x7c00, "f32->f16 overflow to inf");
	tap_ok(lt_f32_to_f16(ldexpf(1, -25)) == 0x0000, "f32->f16 tie to even (0)");
	tap_ok(lt_f32_to_f16(ldexpf(3, -25)) == 0x0002, "f32->f16 tie to even (2)");
	/* Every finite half survives a round trip through f32. */
	int bad = 0;
	for (uint32_t h = 0; h < 0x10000; h++) {
		if ((h & 0x7c00) == 0x7c00)
			continue;
		bad += lt_f32_to_f16(lt_f16_to_f32((uint16_t)h)) != h;
	}
	tap_ok(bad == 0, "all finite f16 round-trip (%d bad)", bad);
}

static void test_bf16(void)
{
	tap_ok(lt_bf16_to_f32(0x3f80) == 1.0f, "bf16 1.0");
	tap_ok(lt_f32_to_bf16(1.0f) == 0x3f80, "f32->bf16 1.0");
	/* 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even gives 1. */
	tap_ok(lt_f32_to_bf16(1.0f + ldexpf(1, -8)) == 0x3f80, "bf16 tie to even");
	tap_ok(lt_f32_to_bf16(1.0f + ldexpf(3, -8)) == 0x3f82, "bf16 round up");
	tap_ok(isnan(lt_bf16_to_f32(lt_f32_to_bf16(NAN))), "bf16 keeps nan");
}

static void test_f8(void)
{
	tap_ok(lt_f8e4m3_to_f32(0x38) == 1.0f && lt_f8e4m3_to_f32(0xb8) == -1.0f, "f8 e4m3 1.0 and -1.0");
	tap_ok(lt_f8e4m3_to_f32(0x7e) == 448.0f, "f8 e4m3 max 448");
	tap_ok(lt_f8e4m3_to_f32(0x01) == ldexpf(1, -9), "f8 e4m3 smallest subnormal");
	tap_ok(isnan(lt_f8e4m3_to_f32(0x7f)) && lt_f8e4m3_to_f32(0x78) == 256.0f, "f8 e4m3 nan, no infinity");
	tap_ok(lt_f8e5m2_to_f32(0x3c) == 1.0f && lt_f8e5m2_to_f32(0x7b) == 57344.0f, "f8 e5m2 1.0 and max");
	tap_ok(isinf(lt_f8e5m2_to_f32(0x7c)) && lt_f8e5m2_to_f32(0x01) == ldexpf(1, -16), "f8 e5m2 inf, subnormal");
}

static void test_shapes(void)
{
	lt_err err = {0};
	int64_t n;
	int64_t big[2] = {INT64_MAX / 2, 3};
	tap_ok(lt_shape_numel(2, big, INT64_MAX, &n, &err) == LT_ERANGE, "numel overflow refused: %s", err.msg);
	int64_t neg[1] = {-1};
	tap_ok(lt_shape_numel(1, neg, INT64_MAX, &n, &err) == LT_EINVAL, "negative dim refused");
	int64_t z[3] = {4, 0, 5};
	tap_ok(lt_shape_numel(3, z, 10, &n, &err) == 0 && n == 0, "zero-size shape");
	tap_ok(lt_shape_numel(0, NULL, 10, &n, &err) == 0 && n == 1, "scalar has one element");
	tap_ok(lt_shape_numel(9, z, 10, &n, &err) == LT_ERANGE, "too many dims refused");
	char buf[32];
	int64_t s[2] = {300, 784};
	tap_ok(!strcmp(lt_shape_format(2, s, buf, sizeof buf), "[300, 784]"), "shape format");
}

static void test_lazy_and_cow(void)
{
	lt_err err = {0};
	/* An unaligned, borrowed F32 buffer: read converts, write copies. */
	uint8_t *raw = lt_malloc(4 * 6 + 1);
	float vals[6] = {1, -2, 0, 3.5f, 0, -0.0f};
	memcpy(raw + 1, vals, sizeof vals);
	lt_blob *b = lt_blob_wrap(raw, 25, &err);
	int64_t shape[2] = {2, 3};
	lt_tensor *t = lt_tensor_from_bytes(LT_F32, 2, shape, b, raw + 1, &err);
	lt_blob_unref(b); /* the tensor keeps the blob alive */
	tap_ok(t && lt_tensor_numel(t) == 6 && lt_tensor_nbytes(t) == 24, "borrowed tensor");
	tap_ok(lt_tensor_count_zeros(t) == 3, "count zeros counts -0");
	const float *f = lt_tensor_data(t, &err);
	tap_ok(f && f[3] == 3.5f && f[1] == -2, "unaligned f32 converted");
	lt_blob_ref(b);
	float *w = lt_tensor_data_mut(t, &err);
	w[0] = 42;
	tap_ok(lt_tensor_data(t, &err)[0] == 42 && lt_tensor_dtype(t) == LT_F32, "writes are visible");
	float first;
	memcpy(&first, raw + 1, 4);
	tap_ok(first == 1.0f, "shared source untouched by the write (copy on write)");
	lt_blob_unref(b);
	lt_tensor_unref(t);

	/* BF16 storage converted lazily, cast back exactly. */
	uint16_t h[4] = {0x3f80, 0xc000, 0x0000, 0x4049};
	uint16_t *hb = lt_malloc(sizeof h);
	memcpy(hb, h, sizeof h);
	b = lt_blob_wrap(hb, sizeof h, &err);
	int64_t s4[1] = {4};
	t = lt_tensor_from_bytes(LT_BF16, 1, s4, b, hb, &err);
	lt_blob_unref(b);
	f = lt_tensor_data(t, &err);
	tap_ok(f[0] == 1 && f[1] == -2 && f[2] == 0, "bf16 lazily converted");
	lt_tensor *c = lt_tensor_cast(t, LT_BF16, &err);
	tap_ok(c && !memcmp(lt_tensor_raw(c), h, sizeof h), "bf16 -> f32 -> bf16 exact");
	lt_tensor_unref(c);
	c = lt_tensor_cast(t, LT_I8, &err);
	tap_ok(!c && err.code == LT_EINVAL, "cast to int refused: %s", err.msg);
	lt_tensor_unref(t);
}

static void test_dtypes(void)
{
	lt_dtype d;
	tap_ok(lt_dtype_parse("BF16", &d) == 0 && d == LT_BF16 && lt_dtype_size(d) == 2, "parse BF16");
	tap_ok(lt_dtype_parse("Q4_K", &d) == LT_EINVAL && lt_dtype_parse("F8_E4M3", &d) == 0 && d == LT_F8_E4M3, "unknown dtype refused, FP8 known");
	int all = 1;
	for (int i = 0; i < LT_DTYPE_COUNT; i++)
		all &= lt_dtype_parse(lt_dtype_name((lt_dtype)i), &d) == 0 && d == (lt_dtype)i;
	tap_ok(all, "every dtype name round-trips");
}

static void test_alloc_failures(void)
{
	int64_t shape[2] = {3, 4};
	int ok = 1;
	for (long k = 0; k < 4; k++) {
		lt_err err = {0};
		lt_mem_fail_after(k);
		lt_tensor *t = lt_tensor_new(2, shape, &err);
		lt_mem_fail_after(-1);
		if (!t)
			ok &= err.code == LT_ENOMEM;
		lt_tensor_unref(t);
	}
	tap_ok(ok, "allocation failures reported as ENOMEM");
}

int main(void)
{
	test_f16();
	test_bf16();
	test_f8();
	test_shapes();
	test_lazy_and_cow();
	test_dtypes();
	test_alloc_failures();
	return tap_done();
}
