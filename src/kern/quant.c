/* Uniform quantization (see quant.h).
 *
 * One pass per group finds the range (affine and symmetric only); then
 * each group is coded in blocks: a vectorisable loop writes a block's
 * codes, and a second loop over the same block, still in cache, decodes
 * them through lt_scheme_value (so the values cannot differ from what the
 * scheme decodes to) and measures the error. */
#include "kern/quant.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/rng.h"

#define BLOCK 4096                          /* elements coded, then decoded */
#define MAX_NUMEL ((int64_t)1 << 40)
#define ROUND_MAGIC 12582912.0f             /* 1.5 * 2^23, see round_even */

static const char *const mode_name[] = {"affine", "symmetric", "fixed-point", "fp16", "bf16"};

int lt_quant_levels(const lt_quant_spec *spec, int32_t *qmin, int32_t *qmax, lt_err *err)
{
	int b = spec->bits;
	if ((unsigned)spec->mode > LT_QUANT_BF16)
		return lt_err_set(err, LT_EINVAL, "unknown quantization mode %d", (int)spec->mode);
	if ((unsigned)spec->rounding > LT_QUANT_STOCHASTIC)
		return lt_err_set(err, LT_EINVAL, "unknown rounding %d", (int)spec->rounding);
	if (spec->per_channel && spec->mode != LT_QUANT_AFFINE && spec->mode != LT_QUANT_SYMMETRIC)
		return lt_err_set(err, LT_EINVAL, "per-channel scales apply to affine and symmetric "
				  "quantization only, not %s", mode_name[spec->mode]);
	switch (spec->mode) {
	case LT_QUANT_AFFINE:
	case LT_QUANT_SYMMETRIC:
		if (b < 2 || b > 8)
			return lt_err_set(err, LT_EINVAL, "%s quantization takes 2 to 8 bits (got %d)",
					  mode_name[spec->mode], b);
		*qmin = spec->mode == LT_QUANT_AFFINE ? 0 : -(1 << (b - 1));
		*qmax = spec->mode == LT_QUANT_AFFINE ? (1 << b) - 1 : (1 << (b - 1)) - 1;
		return 0;
	case LT_QUANT_FIXED:
		if (spec->m < 0 || spec->n < 0)
			return lt_err_set(err, LT_EINVAL, "fixed point Q%d.%d: m and n must be 0 or more",
					  spec->m, spec->n);
		if (spec->m > 15 || spec->n > 15 || 1 + spec->m + spec->n < 2 || 1 + spec->m + spec->n > 16)
			return lt_err_set(err, LT_EINVAL, "fixed point Q%d.%d would be %lld bit%s wide (sign + m + n); "
					  "it takes 2 to 16 bits", spec->m, spec->n,
					  1 + (long long)spec->m + (long long)spec->n, spec->m + spec->n ? "s" : "");
		if (b != 0 && b != 1 + spec->m + spec->n)
			return lt_err_set(err, LT_EINVAL, "fixed point Q%d.%d has %d bits (sign + m + n), not %d",
					  spec->m, spec->n, 1 + spec->m + spec->n, b);
		*qmin = -(1 << (spec->m + spec->n));
		*qmax = (1 << (spec->m + spec->n)) - 1;
		return 0;
	case LT_QUANT_F16:
	case LT_QUANT_BF16:
		if (b != 0 && b != 16)
			return lt_err_set(err, LT_EINVAL, "%s codes have 16 bits, not %d", mode_name[spec->mode], b);
		if (spec->rounding != LT_QUANT_NEAREST)
			return lt_err_set(err, LT_EINVAL, "%s rounds to nearest even only (stochastic rounding "
					  "is for integer and fixed-point codes)", mode_name[spec->mode]);
		*qmin = 0;
		*qmax = 65535;
		return 0;
	}
	return lt_err_set(err, LT_EINVAL, "unknown quantization mode %d", (int)spec->mode); /* not reached */
}

void lt_quant_qparams(float lo, float hi, int32_t qmin, int32_t qmax, int symmetric,
		      float *scale, int32_t *zero_point)
{
	/* float32 throughout, as the observer's tensors are */
	lo = lo < 0.0f ? lo : 0.0f;
	hi = hi > 0.0f ? hi : 0.0f;
	if (symmetric) {
		float a = -lo > hi ? -lo : hi;
		float s = a / ((float)(qmax - qmin) / 2.0f); /* the halves (127.5 ...) are exact */
		*scale = s > FLT_EPSILON ? s : FLT_EPSILON;
		*zero_point = 0;
		return;
	}
	float s = (hi - lo) / (float)(qmax - qmin);
	s = s > FLT_EPSILON ? s : FLT_EPSILON;
	/* lo / s lies in [-(qmax - qmin) - 1, 0] (it is -0 for s = inf) */
	int32_t z = qmin - (int32_t)nearbyintf(lo / s);
	*scale = s;
	*zero_point = z < qmin ? qmin : z > qmax ? qmax : z;
}

/* ---- coding one block ------------------------------------------------------- */

/* What a block's integer coder needs: x * inv rounded is the level r
 * relative to the zero point, kept in [ylo, yhi] = [qmin - zp, qmax - zp];
 * the code is r - ylo. */
struct levels {
	float inv, ylo, yhi;
	int stochastic;
	uint64_t seed;
};

/* t rounded to an integer, ties to even, for |t| < 2^22: adding 1.5 * 2^23
 * leaves no fraction bits, so the addition rounds in the current (default,
 * nearest-even) mode. Unlike nearbyintf it vectorises without SSE4.1. */
static inline float round_even(float t)
{
	return (t + ROUND_MAGIC) - ROUND_MAGIC;
}

/* One element's level: y rounded to nearest, first clamped to [ylo - 1,
 * yhi + 1] (NaN goes to ylo - 1), which keeps round_even exact and still
 * tells a saturated level apart; rounding is monotone and ylo, yhi are
 * integers, so clamping before rounding gives fake_quantize's clamp after.
 * Returns the code and sets *sat to 1 when the level had to be clamped. */
static inline uint16_t level_code(float y, const struct levels *lv, int *sat)
{
	const float lo1 = lv->ylo - 1.0f, hi1 = lv->yhi + 1.0f;
	float t = y >= lo1 ? y : lo1;
	t = t <= hi1 ? t : hi1;
	float r = round_even(t);
	*sat = (r < lv->ylo) | (r > lv->yhi);
	r = r < lv->ylo ? lv->ylo : r;
	r = r > lv->yhi ? lv->yhi : r;
	return (uint16_t)(int32_t)(r - lv->ylo);
}

/* floor(y + u), u uniform in [0, 1): with f = y rounded to nearest and
 * d = y - f (exact, |d| <= 1/2), the level moves from f one step towards
 * y with probability |d|, which is the same distribution; P(move) = |d|
 * to within 2^-24 (u's resolution), and it never lands beyond floor(y) or
 * ceil(y). u < |d| compares bit patterns (both are >= 0): a float compare
 * and select here would stop GCC vectorising (-ftrapping-math), and
 * branches on random data mispredict half the time. */
static inline uint16_t stochastic_code(float y, float u, const struct levels *lv, int *sat)
{
	const float lo1 = lv->ylo - 1.0f, hi1 = lv->yhi + 1.0f;
	y = y >= lo1 ? y : lo1;
	y = y <= hi1 ? y : hi1;
	float f = round_even(y), d = y - f, a = fabsf(d);
	uint32_t ub, ab;
	memcpy(&ub, &u, sizeof ub);
	memcpy(&ab, &a, sizeof ab);
	return level_code(f + copysignf((float)(ub < ab), d), lv, sat);
}

/* Codes of x[0..n) (n <= BLOCK; element index `at` onwards of the tensor)
 * into code[0..n); masked elements get 0. Returns how many saturated. */
static int64_t code_levels(const float *restrict x, const float *restrict mask, int64_t n, int64_t at,
			   const struct levels *lv, uint16_t *restrict code)
{
	int64_t sat = 0;
	int s;
	if (lv->stochastic) {
		/* the draws first: the hash is scalar 64-bit work, the rest vectorises */
		float u[BLOCK];
		for (int64_t i = 0; i < n; i++)
			u[i] = lt_hash_uniform(lv->seed, (uint64_t)(at + i), 0);
		if (mask) {
			for (int64_t i = 0; i < n; i++) {
				uint16_t c = stochastic_code(x[i] * lv->inv, u[i], lv, &s);
				int keep = mask[i] != 0.0f;
				code[i] = (uint16_t)(c * keep);
				sat += keep & s;
			}
		} else {
			for (int64_t i = 0; i < n; i++) {
				code[i] = stochastic_code(x[i] * lv->inv, u[i], lv, &s);
				sat += s;
			}
		}
		return sat;
	}
	if (mask) {
		for (int64_t i = 0; i < n; i++) {
			uint16_t c = level_code(x[i] * lv->inv, lv, &s);
			int keep = mask[i] != 0.0f;
			code[i] = (uint16_t)(c * keep);
			sat += keep & s;
		}
	} else {
		for (int64_t i = 0; i < n; i++) {
			code[i] = level_code(x[i] * lv->inv, lv, &s);
			sat += s;
		}
	}
	return sat;
}

/* fp16 / bf16 bit patterns of x[0..n); an overflow to infinity saturates
 * to the largest finite value. Returns how many saturated. */
static int64_t code_half(const float *restrict x, const float *restrict mask, int64_t n, int bf16,
			 uint16_t *restrict code)
{
	const uint16_t inf = bf16 ? 0x7f80 : 0x7c00, top = bf16 ? 0x7f7f : 0x7bff;
	int64_t sat = 0;
	for (int64_t i = 0; i < n; i++) {
		if (mask && mask[i] == 0.0f) {
			code[i] = 0;
			continue;
		}
		uint16_t h = bf16 ? lt_f32_to_bf16(x[i]) : lt_f32_to_f16(x[i]);
		/* x is finite here unless the caller is about to refuse it */
		if ((h & 0x7fff) == inf && isfinite(x[i])) {
			h = (uint16_t)((h & 0x8000) | top);
			sat++;
		}
		code[i] = h;
	}
	return sat;
}

/* v where keep is nonzero, else +0: by clearing bits, since GCC does not
 * vectorise a float select under the default -ftrapping-math. */
static inline float keep_if(float v, int keep)
{
	uint32_t b;
	memcpy(&b, &v, sizeof b);
	b &= -(uint32_t)(keep != 0);
	memcpy(&v, &b, sizeof v);
	return v;
}

/* Values of the codes c[0..n) of group g (+0 where m, if given, is 0).
 * Each is lt_scheme_value itself, so it cannot differ from what the
 * scheme decodes to. It reads a local copy of the scheme, which stores to
 * out cannot change, and the affine loops are separate: there the kind is
 * known, the scale and zero point stay in registers, and they vectorise. */
static void decode_block(const lt_scheme *s, int64_t g, const uint16_t *restrict c, const float *restrict m,
			 float *restrict out, int64_t n)
{
	const lt_scheme k = *s;
	switch (k.kind) {
	case LT_SCHEME_AFFINE:
		if (m)
			for (int64_t i = 0; i < n; i++)
				out[i] = keep_if(lt_scheme_value(&k, g, c[i]), m[i] != 0.0f);
		else
			for (int64_t i = 0; i < n; i++)
				out[i] = lt_scheme_value(&k, g, c[i]);
		break;
	case LT_SCHEME_F16:
	case LT_SCHEME_BF16:
	case LT_SCHEME_CODEBOOK:
		for (int64_t i = 0; i < n; i++)
			out[i] = m && m[i] == 0.0f ? 0.0f : lt_scheme_value(&k, g, c[i]);
		break;
	}
}

/* ---- error summary ------------------------------------------------------------ */

struct err_acc {
	int64_t count, zeroed;
	double signal, noise, max_err;
};

/* One element of the error sums; x and q are +0 where masked. */
static inline void measure_one(float xf, float qf, int keep, double *signal, double *noise, double *max_err,
			       int64_t *count, int64_t *zeroed)
{
	double x = xf, e = x - (double)qf;
	*signal += x * x;
	*noise += e * e;
	*max_err = fabs(e) > *max_err ? fabs(e) : *max_err;
	*zeroed += (xf != 0.0f) & (qf == 0.0f);
	*count += keep;
}

/* Sums over w[0..n) where mask (may be NULL) is not 0, in four lanes that
 * the compiler can keep in vector registers. */
static void measure(const float *restrict w, const float *restrict q, const float *restrict mask, int64_t n,
		    struct err_acc *a)
{
	double signal[4] = {0}, noise[4] = {0}, max_err[4] = {0};
	int64_t count[4] = {0}, zeroed[4] = {0};
	int64_t i = 0;
	if (mask) {
		for (; i + 4 <= n; i += 4)
			for (int j = 0; j < 4; j++) {
				int keep = mask[i + j] != 0.0f;
				measure_one(keep_if(w[i + j], keep), keep_if(q[i + j], keep), keep, &signal[j],
					    &noise[j], &max_err[j], &count[j], &zeroed[j]);
			}
	} else {
		for (; i + 4 <= n; i += 4)
			for (int j = 0; j < 4; j++)
				measure_one(w[i + j], q[i + j], 1, &signal[j], &noise[j], &max_err[j], &count[j],
					    &zeroed[j]);
	}
	for (; i < n; i++) {
		int keep = !mask || mask[i] != 0.0f;
		measure_one(keep_if(w[i], keep), keep_if(q[i], keep), keep, &signal[0], &noise[0], &max_err[0],
			    &count[0], &zeroed[0]);
	}
	for (int j = 0; j < 4; j++) {
		a->signal += signal[j];
		a->noise += noise[j];
		a->max_err = max_err[j] > a->max_err ? max_err[j] : a->max_err;
		a->count += count[j];
		a->zeroed += zeroed[j];
	}
}

static void finish_stats(const struct err_acc *a, int64_t saturated, lt_quant_stats *st)
{
	st->count = a->count;
	st->saturated = saturated;
	st->zeroed = a->zeroed;
	st->max_abs_err = a->max_err;
	st->mse = a->count ? a->noise / (double)a->count : 0.0;
	st->sqnr_db = a->noise > 0 ? 10.0 * log10(a->signal / a->noise) : INFINITY;
}

void lt_quant_error(const float *w, const float *q, const float *mask, int64_t n, lt_quant_stats *st)
{
	struct err_acc a = {0};
	measure(w, q, mask, n, &a);
	finish_stats(&a, 0, st);
}

/* ---- whole tensors ------------------------------------------------------------ */

/* Range of x[0..n) where mask is not 0, widened to hold 0 (masked elements
 * count as 0: the range holds it anyway). Returns nonzero if an element
 * that counts is not finite. Eight running extremes per loop turn so the
 * compiler can keep them in vector registers. */
static int group_range(const float *restrict x, const float *restrict mask, int64_t n, float *lo, float *hi)
{
	float l[8] = {0}, h[8] = {0};
	int bad[8] = {0};
	int64_t i = 0;
	if (mask) {
		/* a masked element's bits are cleared (to +0) rather than chosen
		 * by a branch, which GCC does not vectorise here */
		const uint32_t *restrict bits = (const uint32_t *)(const void *)x;
		for (; i + 8 <= n; i += 8)
			for (int j = 0; j < 8; j++) {
				uint32_t b = bits[i + j] & -(uint32_t)(mask[i + j] != 0.0f);
				float v;
				memcpy(&v, &b, sizeof v);
				l[j] = v < l[j] ? v : l[j];
				h[j] = v > h[j] ? v : h[j];
				bad[j] |= !(fabsf(v) <= FLT_MAX);
			}
	} else {
		for (; i + 8 <= n; i += 8)
			for (int j = 0; j < 8; j++) {
				float v = x[i + j];
				l[j] = v < l[j] ? v : l[j];
				h[j] = v > h[j] ? v : h[j];
				bad[j] |= !(fabsf(v) <= FLT_MAX);
			}
	}
	for (; i < n; i++) {
		float v = mask && mask[i] == 0.0f ? 0.0f : x[i];
		l[0] = v < l[0] ? v : l[0];
		h[0] = v > h[0] ? v : h[0];
		bad[0] |= !(fabsf(v) <= FLT_MAX);
	}
	for (int j = 1; j < 8; j++) {
		l[0] = l[j] < l[0] ? l[j] : l[0];
		h[0] = h[j] > h[0] ? h[j] : h[0];
		bad[0] |= bad[j];
	}
	*lo = l[0];
	*hi = h[0];
	return bad[0];
}

/* The error for the first unmasked non-finite element of w[from..from+n). */
static int refuse_nonfinite(const float *w, const float *mask, int64_t from, int64_t n, int ndim,
			    const int64_t *shape, lt_err *err)
{
	int64_t i = from;
	while (i < from + n - 1 && ((mask && mask[i] == 0.0f) || isfinite(w[i])))
		i++;
	char idx[LT_MAX_DIMS * 24 + 4] = "[";
	size_t len = 1;
	int64_t rest = i, sub[LT_MAX_DIMS];
	for (int d = ndim - 1; d >= 0; d--) {
		sub[d] = shape[d] ? rest % shape[d] : 0;
		rest = shape[d] ? rest / shape[d] : 0;
	}
	for (int d = 0; d < ndim; d++)
		len += (size_t)snprintf(idx + len, sizeof idx - len, "%s%" PRId64, d ? ", " : "", sub[d]);
	snprintf(idx + len, sizeof idx - len, "]");
	return lt_err_set(err, LT_EINVAL, "element %s (index %" PRId64 ") is %s: only finite values can be quantized",
			  idx, i, isnan(w[i]) ? "NaN" : w[i] > 0 ? "+inf" : "-inf");
}

lt_scheme *lt_quant_tensor(const float *w, const float *mask, int ndim, const int64_t *shape,
			   const lt_quant_spec *spec, float *out, lt_quant_stats *st, lt_err *err)
{
	int32_t qmin, qmax;
	int64_t numel;
	if (lt_quant_levels(spec, &qmin, &qmax, err) || lt_shape_numel(ndim, shape, MAX_NUMEL, &numel, err))
		return NULL;
	if (spec->per_channel && ndim == 0) {
		lt_err_set(err, LT_EINVAL, "per-channel quantization needs a tensor with at least one "
			   "dimension (this one is a scalar)");
		return NULL;
	}
	int64_t groups = spec->per_channel && shape[0] > 0 ? shape[0] : 1;
	int half = spec->mode == LT_QUANT_F16 || spec->mode == LT_QUANT_BF16;
	int bits = spec->mode == LT_QUANT_FIXED ? 1 + spec->m + spec->n : half ? 16 : spec->bits;
	lt_scheme *s = lt_scheme_new(spec->mode == LT_QUANT_F16 ? LT_SCHEME_F16
				     : spec->mode == LT_QUANT_BF16 ? LT_SCHEME_BF16 : LT_SCHEME_AFFINE,
				     bits, numel, groups, 1, err);
	if (!s)
		return NULL;
	const int64_t len = s->group_len;
	s->qmin = half ? 0 : qmin;

	/* scales and zero points */
	for (int64_t g = 0; g < groups && !half; g++) {
		if (spec->mode == LT_QUANT_FIXED) {
			s->scale[g] = ldexpf(1.0f, -spec->n);
			s->zero_point[g] = 0;
			continue;
		}
		float lo, hi;
		if (group_range(w + g * len, mask ? mask + g * len : NULL, len, &lo, &hi)) {
			refuse_nonfinite(w, mask, g * len, len, ndim, shape, err);
			goto fail;
		}
		lt_quant_qparams(lo, hi, qmin, qmax, spec->mode == LT_QUANT_SYMMETRIC, &s->scale[g], &s->zero_point[g]);
		if (!isfinite(s->scale[g])) {
			if (groups > 1)
				lt_err_set(err, LT_ERANGE, "channel %" PRId64 " spans [%g, %g], too wide a range "
					   "for a float32 scale", g, (double)lo, (double)hi);
			else
				lt_err_set(err, LT_ERANGE, "the values span [%g, %g], too wide a range for a "
					   "float32 scale", (double)lo, (double)hi);
			goto fail;
		}
	}

	/* codes, then values and error, block by block */
	struct err_acc acc = {0};
	int64_t saturated = 0;
	for (int64_t g = 0; g < groups; g++) {
		struct levels lv = {0};
		if (!half) {
			lv.inv = 1.0f / s->scale[g]; /* as fake_quantize: x * (1 / scale) */
			lv.ylo = (float)(qmin - s->zero_point[g]);
			lv.yhi = (float)(qmax - s->zero_point[g]);
			lv.stochastic = spec->rounding == LT_QUANT_STOCHASTIC;
			lv.seed = spec->seed;
		}
		for (int64_t b = 0; b < len; b += BLOCK) {
			int64_t at = g * len + b, n = len - b < BLOCK ? len - b : BLOCK;
			const float *x = w + at, *m = mask ? mask + at : NULL;
			uint16_t *c = s->codes + at;
			if (half)
				saturated += code_half(x, m, n, spec->mode == LT_QUANT_BF16, c);
			else
				saturated += code_levels(x, m, n, at, &lv, c);
			/* fixed and half modes have no range pass: check the block
			 * here, while it is in cache (its extremes are not used) */
			float lo, hi;
			if (spec->mode != LT_QUANT_AFFINE && spec->mode != LT_QUANT_SYMMETRIC &&
			    group_range(x, m, n, &lo, &hi)) {
				refuse_nonfinite(w, mask, at, n, ndim, shape, err);
				goto fail;
			}
			decode_block(s, g, c, m, out + at, n);
			if (st)
				measure(x, out + at, m, n, &acc);
		}
	}
	if (st)
		finish_stats(&acc, saturated, st);
	return s;
fail:
	lt_scheme_free(s);
	return NULL;
}
