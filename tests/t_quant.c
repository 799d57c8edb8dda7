/* Uniform quantization against PyTorch's observers and fake_quantize, its
 * .half() / .bfloat16(), and numpy's fixed point
 * (tests/fixtures/quant.safetensors, made by gen_quant_fixtures.py); plus
 * stochastic rounding, masks, refusals and allocation failures.
 *
 * The torch references are compared bit for bit: lathe computes scale and
 * zero point with the same float32 operations as the observer, and codes
 * with fake_quantize's x * (1 / scale) and round half to even; a value is
 * (q - zero_point) * scale, which fake_quantize forms in double and rounds
 * once to float, and lathe forms in float with one rounding of the same
 * exact product (an integer below 2^17 times a 24-bit scale). */
#include <float.h>
#include <stdint.h>
#include <string.h>

#include "core/clock.h"
#include "core/mem.h"
#include "io/open.h"
#include "kern/quant.h"
#include "tap.h"
#include "testutil.h"

static lt_model *ref;

static lt_tensor *tensor(const char *case_name, const char *what)
{
	char name[128];
	snprintf(name, sizeof name, "%s.%s", case_name, what);
	lt_tensor *t = lt_model_tensor(ref, name);
	if (!t) {
		fprintf(stderr, "quant.safetensors has no %s\n", name);
		exit(1);
	}
	return t;
}

static const float *values(lt_tensor *t)
{
	const float *v = lt_tensor_data(t, NULL);
	if (!v)
		abort();
	return v;
}

static int32_t raw_i32(lt_tensor *t, int64_t i)
{
	int32_t v;
	memcpy(&v, (const char *)lt_tensor_raw(t) + 4 * i, 4);
	return v;
}

static uint16_t raw_u16(lt_tensor *t, int64_t i)
{
	uint16_t v;
	memcpy(&v, (const char *)lt_tensor_raw(t) + 2 * i, 2);
	return v;
}

static int same_bits(float a, float b)
{
	return !memcmp(&a, &b, sizeof a);
}

/* out holds exactly what the scheme decodes to, element by element and
 * through lt_scheme_decode; masked elements are +0 with code 0. */
static int matches_scheme(const lt_scheme *s, const float *mask, const float *out)
{
	float *dec = malloc((size_t)(s->numel ? s->numel : 1) * sizeof *dec);
	int ok = 1;
	lt_scheme_decode(s, mask, dec);
	for (int64_t i = 0; ok && i < s->numel; i++) {
		int64_t g = i / s->group_len;
		if (mask && mask[i] == 0.0f)
			ok = s->codes[i] == 0 && same_bits(out[i], 0.0f);
		else
			ok = same_bits(out[i], lt_scheme_value(s, g, s->codes[i]));
		ok &= same_bits(out[i], dec[i]);
	}
	free(dec);
	return ok;
}

static lt_scheme *quant(lt_tensor *w, const float *mask, const lt_quant_spec *spec, float *out,
			lt_quant_stats *st, lt_err *err)
{
	return lt_quant_tensor(values(w), mask, lt_tensor_ndim(w), lt_tensor_shape(w), spec, out, st, err);
}

/* ---- against torch ------------------------------------------------------------ */

/* One fixture case T.TAG (TAG: a|s, bits, optional c). */
static void against_torch(const char *t, const char *tag)
{
	char name[64];
	lt_err err = {0};
	lt_tensor *w = tensor(t, "w");
	snprintf(name, sizeof name, "%s.%s", t, tag);
	lt_tensor *rscale = tensor(name, "scale"), *rzp = tensor(name, "zp"), *rrange = tensor(name, "range");
	lt_tensor *rv = tensor(name, "v");
	lt_quant_spec spec = {.mode = tag[0] == 'a' ? LT_QUANT_AFFINE : LT_QUANT_SYMMETRIC,
			      .bits = atoi(tag + 1), .per_channel = strchr(tag, 'c') != NULL};
	int64_t n = lt_tensor_numel(w);
	float *out = malloc((size_t)n * sizeof *out);
	lt_quant_stats st;
	lt_scheme *s = quant(w, NULL, &spec, out, &st, &err);
	if (!s) {
		tap_ok(0, "%s: %s", name, err.msg);
		tap_ok(0, "%s: values", name);
		free(out);
		return;
	}
	int32_t qmin, qmax;
	lt_quant_levels(&spec, &qmin, &qmax, &err);
	int64_t groups = lt_tensor_numel(rscale);
	int qp = s->groups == groups && s->kind == LT_SCHEME_AFFINE && s->bits == spec.bits && s->qmin == qmin &&
		 raw_i32(rrange, 0) == qmin && raw_i32(rrange, 1) == qmax;
	for (int64_t g = 0; qp && g < groups; g++)
		qp = same_bits(s->scale[g], values(rscale)[g]) && s->zero_point[g] == raw_i32(rzp, g);
	tap_ok(qp, "%s: range [%d, %d], %lld scale(s) and zero point(s) equal torch's observer (scale[0] %g, zp %d)",
	       name, qmin, qmax, (long long)groups, (double)s->scale[0], s->zero_point[0]);
	int64_t differ = 0, first = -1;
	for (int64_t i = 0; i < n; i++)
		if (!same_bits(out[i], values(rv)[i]) && differ++ == 0)
			first = i;
	int codes_ok = matches_scheme(s, NULL, out);
	for (int64_t i = 0; codes_ok && i < n; i++)
		codes_ok = s->codes[i] <= qmax - qmin;
	tap_ok(differ == 0 && codes_ok && st.count == n,
	       "%s: %lld values equal fake_quantize's bit for bit, and the scheme's decoding", name, (long long)n);
	if (differ)
		tap_diag("%lld differ; first at %lld: %.9g, torch %.9g (w %.9g)", (long long)differ, (long long)first,
			 (double)out[first], (double)values(rv)[first], (double)values(w)[first]);
	lt_scheme_free(s);
	free(out);
}

static void all_torch_cases(void)
{
	int cases = 0;
	for (size_t i = 0; i < lt_model_tensor_count(ref); i++) {
		const char *nm = lt_model_tensor_name(ref, i);
		size_t len = strlen(nm);
		if (len < 7 || strcmp(nm + len - 6, ".scale"))
			continue;
		char t[32], tag[32];
		const char *dot = strchr(nm, '.');
		snprintf(t, sizeof t, "%.*s", (int)(dot - nm), nm);
		snprintf(tag, sizeof tag, "%.*s", (int)(nm + len - 6 - dot - 1), dot + 1);
		against_torch(t, tag);
		cases++;
	}
	tap_ok(cases == 44, "%d torch cases in the fixture (per tensor and per channel, affine and symmetric, "
	       "2/3/4/8 bits, zeros, constants, ties)", cases);
}

/* ---- fp16 / bf16 ----------------------------------------------------------------- */

static void half_codes(void)
{
	lt_err err = {0};
	for (int bf = 0; bf < 2; bf++)
		for (int big = 0; big < 2; big++) {
			const char *fmt = bf ? "bf16" : "f16";
			lt_quant_spec spec = {.mode = bf ? LT_QUANT_BF16 : LT_QUANT_F16};
			lt_tensor *x = tensor(big ? "big" : "h", "x"), *want = tensor(big ? "big" : "h", fmt);
			int64_t n = lt_tensor_numel(x), differ = 0, sat = 0;
			float *out = malloc((size_t)n * sizeof *out);
			lt_quant_stats st;
			lt_scheme *s = quant(x, NULL, &spec, out, &st, &err);
			/* where torch overflows to +-inf, lathe saturates */
			const uint16_t inf = bf ? 0x7f80 : 0x7c00, top = bf ? 0x7f7f : 0x7bff;
			for (int64_t i = 0; s && i < n; i++) {
				uint16_t t = raw_u16(want, i);
				if ((t & 0x7fff) == inf) {
					t = (uint16_t)((t & 0x8000) | top);
					sat++;
				}
				differ += s->codes[i] != t;
			}
			if (big)
				tap_ok(s && differ == 0 && sat > 0 && st.saturated == sat,
				       "%s: %lld values torch turns into +-inf saturate to +-%g instead and are counted",
				       fmt, (long long)sat, (double)(bf ? lt_bf16_to_f32(top) : lt_f16_to_f32(top)));
			else
				tap_ok(s && differ == 0 && st.saturated == sat && s->bits == 16 &&
				       s->kind == (bf ? LT_SCHEME_BF16 : LT_SCHEME_F16),
				       "%s: %lld codes (subnormals, midpoints and their neighbours, +-0) equal torch's bit "
				       "patterns, but for %lld saturated (%lld differ)", fmt, (long long)n,
				       (long long)sat, (long long)differ);
			tap_ok(s && matches_scheme(s, NULL, out), "%s: values are the codes decoded%s", fmt,
			       big ? " (large values)" : "");
			lt_scheme_free(s);
			free(out);
		}
}

/* ---- fixed point ---------------------------------------------------------------- */

static void fixed_point(void)
{
	lt_err err = {0};
	const int mn[2][2] = {{1, 6}, {3, 12}};
	for (int c = 0; c < 2; c++) {
		int m = mn[c][0], n = mn[c][1];
		char tag[16];
		snprintf(tag, sizeof tag, "q%d_%d", m, n);
		lt_tensor *x = tensor(tag, "x"), *want = tensor(tag, "v"), *sat = tensor(tag, "sat");
		int64_t cnt = lt_tensor_numel(x), want_sat;
		memcpy(&want_sat, lt_tensor_raw(sat), 8);
		float *out = malloc((size_t)cnt * sizeof *out);
		lt_quant_spec spec = {.mode = LT_QUANT_FIXED, .m = m, .n = n};
		lt_quant_stats st;
		lt_scheme *s = quant(x, NULL, &spec, out, &st, &err);
		int64_t differ = 0;
		for (int64_t i = 0; s && i < cnt; i++)
			differ += !same_bits(out[i], values(want)[i]);
		tap_ok(s && differ == 0 && st.saturated == want_sat,
		       "Q%d.%d: %lld values equal numpy's clip(rint(x * 2^%d)) * 2^-%d, %lld saturated", m, n,
		       (long long)cnt, n, n, (long long)st.saturated);
		tap_ok(s && s->bits == 1 + m + n && s->qmin == -(1 << (m + n)) && s->zero_point[0] == 0 &&
		       s->scale[0] == ldexpf(1.0f, -n) && matches_scheme(s, NULL, out),
		       "Q%d.%d: a %d-bit affine scheme, qmin %d, scale 2^-%d, zero point 0, values decode from codes",
		       m, n, 1 + m + n, -(1 << (m + n)), n);
		lt_scheme_free(s);
		free(out);
	}

	/* by hand: Q1.6 steps are 1/64, the range [-2, 2 - 1/64] */
	const float x[6] = {0.5078125f, 0.5234375f, 1.99f, 2.5f, -2.0f, -2.01f};
	const float want[6] = {0.5f, 0.53125f, 1.984375f, 1.984375f, -2.0f, -2.0f};
	int64_t shape[1] = {6};
	float out[6];
	lt_quant_spec q16 = {.mode = LT_QUANT_FIXED, .m = 1, .n = 6, .bits = 8};
	lt_quant_stats st;
	lt_scheme *s = lt_quant_tensor(x, NULL, 1, shape, &q16, out, &st, &err);
	int ok = s != NULL && !memcmp(out, want, sizeof out);
	tap_ok(ok && st.saturated == 2 && s->codes[0] == 32 + 128,
	       "Q1.6 by hand: 32.5/64 -> 32/64 and 33.5/64 -> 34/64 (ties to even); 2.5 and -2.01 saturate");
	lt_scheme_free(s);
}

/* ---- stochastic rounding ---------------------------------------------------------- */

/* 100000 copies of x0 after two elements that fix the range at [lo, hi]:
 * every value is the level just below or just above x0, and the mean error
 * is within 6 standard deviations of 0. Rounding to nearest, or down, would
 * be off by frac or 1 - frac levels: 100+ standard deviations. */
static void unbiased(const char *what, lt_quant_spec spec, float lo, float hi, float x0)
{
	lt_err err = {0};
	const int64_t n = 100002;
	float *w = malloc((size_t)n * sizeof *w), *out = malloc((size_t)n * sizeof *out);
	w[0] = lo;
	w[1] = hi;
	for (int64_t i = 2; i < n; i++)
		w[i] = x0;
	lt_scheme *s = lt_quant_tensor(w, NULL, 1, &n, &spec, out, NULL, &err);
	if (!s) {
		tap_ok(0, "stochastic %s: %s", what, err.msg);
		free(w);
		free(out);
		return;
	}
	double scale = s->scale[0], y = (double)x0 / scale;
	double below = floor(y) * scale, above = ceil(y) * scale, p = y - floor(y);
	double sum = 0;
	int64_t ups = 0, bad = 0;
	for (int64_t i = 2; i < n; i++) {
		double v = out[i];
		if (fabs(v - below) < 1e-3 * scale)
			;
		else if (fabs(v - above) < 1e-3 * scale)
			ups++;
		else
			bad++;
		sum += v - x0;
	}
	int64_t draws = n - 2;
	double mean = sum / (double)draws, sd = scale * sqrt(p * (1 - p) / (double)draws);
	double frac = (double)ups / (double)draws, sd_frac = sqrt(p * (1 - p) / (double)draws);
	tap_ok(bad == 0 && fabs(mean) < 6 * sd && fabs(frac - p) < 6 * sd_frac,
	       "stochastic %s: x0 = %.4f is %.3f levels up; all values floor or ceil, ceil %.4f of the time "
	       "(p %.4f), mean error %.3g (bound %.3g; nearest or floor would be %.3g)", what, (double)x0,
	       p, frac, p, mean, 6 * sd, scale * (p < 0.5 ? p : 1 - p));
	lt_scheme_free(s);
	free(w);
	free(out);
}

static void stochastic(void)
{
	lt_err err = {0};
	lt_quant_spec a8 = {.mode = LT_QUANT_AFFINE, .bits = 8, .rounding = LT_QUANT_STOCHASTIC, .seed = 1};
	lt_quant_spec s4 = {.mode = LT_QUANT_SYMMETRIC, .bits = 4, .rounding = LT_QUANT_STOCHASTIC, .seed = 2};
	lt_quant_spec q34 = {.mode = LT_QUANT_FIXED, .m = 3, .n = 4, .rounding = LT_QUANT_STOCHASTIC, .seed = 3};
	unbiased("affine 8 bits", a8, -1.0f, 1.0f, 0.3f);
	unbiased("symmetric 4 bits", s4, -1.0f, 1.0f, -0.77f);
	unbiased("Q3.4", q34, 0.0f, 0.0f, 1.3f);

	/* per element: the floor or the ceiling of x / scale, on real weights */
	lt_tensor *w = tensor("fc", "w");
	int64_t n = lt_tensor_numel(w);
	const float *x = values(w);
	float *o1 = malloc((size_t)n * sizeof *o1), *o2 = malloc((size_t)n * sizeof *o2);
	float *o3 = malloc((size_t)n * sizeof *o3);
	lt_quant_spec sp = {.mode = LT_QUANT_AFFINE, .bits = 4, .per_channel = 1,
			    .rounding = LT_QUANT_STOCHASTIC, .seed = 42};
	lt_scheme *a = quant(w, NULL, &sp, o1, NULL, &err), *b = quant(w, NULL, &sp, o2, NULL, &err);
	sp.seed = 43;
	lt_scheme *c = quant(w, NULL, &sp, o3, NULL, &err);
	int ok = a && b && c;
	for (int64_t i = 0; ok && i < n; i++) {
		int64_t g = i / a->group_len;
		float inv = 1.0f / a->scale[g];
		int32_t q = a->codes[i] + a->qmin, z = a->zero_point[g];
		float y = x[i] * inv;
		int32_t lo = (int32_t)floorf(y) + z, hi = (int32_t)ceilf(y) + z;
		lo = lo < 0 ? 0 : lo > 15 ? 15 : lo;
		hi = hi < 0 ? 0 : hi > 15 ? 15 : hi;
		ok = q == lo || q == hi;
	}
	tap_ok(ok && matches_scheme(a, NULL, o1), "stochastic per channel: every level is the floor or the ceiling "
	       "of x / scale, values decode from codes");
	tap_ok(a && b && !memcmp(a->codes, b->codes, (size_t)n * 2) && !memcmp(o1, o2, (size_t)n * 4),
	       "stochastic: the same seed gives the same codes");
	int64_t differ = 0;
	for (int64_t i = 0; a && c && i < n; i++)
		differ += a->codes[i] != c->codes[i];
	tap_ok(differ > n / 10, "stochastic: another seed gives other codes (%lld of %lld differ)",
	       (long long)differ, (long long)n);
	/* same scales as nearest: rounding does not change the range */
	lt_quant_spec near = sp;
	near.rounding = LT_QUANT_NEAREST;
	lt_scheme *d = quant(w, NULL, &near, o3, NULL, &err);
	ok = a && d && !memcmp(a->scale, d->scale, (size_t)a->groups * 4) &&
	     !memcmp(a->zero_point, d->zero_point, (size_t)a->groups * 4);
	tap_ok(ok, "stochastic and nearest rounding share scales and zero points");
	lt_scheme_free(a);
	lt_scheme_free(b);
	lt_scheme_free(c);
	lt_scheme_free(d);
	free(o1);
	free(o2);
	free(o3);
}

/* ---- masks ------------------------------------------------------------------------ */

static void masks(void)
{
	lt_err err = {0};
	lt_tensor *t = tensor("fc", "w");
	int64_t n = lt_tensor_numel(t), len = lt_tensor_shape(t)[1];
	float *w = malloc((size_t)n * sizeof *w), *zeroed = malloc((size_t)n * sizeof *zeroed);
	float *mask = malloc((size_t)n * sizeof *mask);
	float *o1 = malloc((size_t)n * sizeof *o1), *o2 = malloc((size_t)n * sizeof *o2);
	memcpy(w, values(t), (size_t)n * sizeof *w);
	int64_t kept = 0;
	for (int64_t i = 0; i < n; i++) {
		/* every third element pruned, and all of row 5 */
		mask[i] = i % 3 == 0 || i / len == 5 ? 0.0f : 1.0f;
		zeroed[i] = mask[i] != 0.0f ? w[i] : 0.0f;
		kept += mask[i] != 0.0f;
		/* what lies under the mask must not matter, not even NaN */
		if (mask[i] == 0.0f)
			w[i] = i % 2 ? 1e30f : -1e30f;
	}
	w[3] = NAN;
	w[6] = INFINITY;
	const lt_quant_spec specs[] = {
		{.mode = LT_QUANT_AFFINE, .bits = 4, .per_channel = 1},
		{.mode = LT_QUANT_SYMMETRIC, .bits = 8},
		{.mode = LT_QUANT_AFFINE, .bits = 3, .rounding = LT_QUANT_STOCHASTIC, .seed = 9},
		{.mode = LT_QUANT_FIXED, .m = 2, .n = 5},
		{.mode = LT_QUANT_F16},
		{.mode = LT_QUANT_BF16},
	};
	const char *names[] = {"affine 4 bits per channel", "symmetric 8 bits", "affine 3 bits stochastic",
			       "Q2.5", "fp16", "bf16"};
	for (size_t k = 0; k < sizeof specs / sizeof *specs; k++) {
		lt_quant_stats st;
		lt_scheme *s = lt_quant_tensor(w, mask, 2, lt_tensor_shape(t), &specs[k], o1, &st, &err);
		lt_scheme *z = lt_quant_tensor(zeroed, NULL, 2, lt_tensor_shape(t), &specs[k], o2, NULL, &err);
		int ok = s && z && st.count == kept && matches_scheme(s, mask, o1);
		for (int64_t i = 0; ok && i < n; i++)
			ok = mask[i] == 0.0f ? s->codes[i] == 0 && same_bits(o1[i], 0.0f)
					     : s->codes[i] == z->codes[i] && same_bits(o1[i], o2[i]);
		for (int64_t g = 0; ok && s->scale && g < s->groups; g++)
			ok = same_bits(s->scale[g], z->scale[g]) && s->zero_point[g] == z->zero_point[g];
		tap_ok(ok, "mask, %s: pruned elements code 0 value +0, left out of the range (huge, inf and NaN "
		       "under the mask change nothing); the rest as the zeroed tensor unmasked", names[k]);
		if (k == 0)
			tap_ok(ok && s->scale[5] == FLT_EPSILON && s->zero_point[5] == 0,
			       "mask: a channel pruned entirely gets scale eps and zero point 0, as all zeros");
		lt_scheme_free(s);
		lt_scheme_free(z);
	}
	free(w);
	free(zeroed);
	free(mask);
	free(o1);
	free(o2);
}

/* ---- errors, statistics, shapes ------------------------------------------------------ */

static void refused(const lt_quant_spec *spec, const float *w, int ndim, const int64_t *shape, int code,
		    const char *needle, const char *what)
{
	lt_err err = {0};
	float out[64];
	lt_scheme *s = lt_quant_tensor(w, NULL, ndim, shape, spec, out, NULL, &err);
	tap_ok(!s && err.code == code && strstr(err.msg, needle), "refused: %s: %s", what, err.msg);
	lt_scheme_free(s);
}

static void refusals(void)
{
	float w[32];
	for (int i = 0; i < 32; i++)
		w[i] = (float)i / 7.0f - 2.0f;
	int64_t sh[2] = {4, 8};
	lt_quant_spec b1 = {.mode = LT_QUANT_AFFINE, .bits = 1}, b9 = {.mode = LT_QUANT_SYMMETRIC, .bits = 9};
	refused(&b1, w, 2, sh, LT_EINVAL, "2 to 8 bits (got 1)", "1-bit affine");
	refused(&b9, w, 2, sh, LT_EINVAL, "2 to 8 bits (got 9)", "9-bit symmetric");
	lt_quant_spec q99 = {.mode = LT_QUANT_FIXED, .m = 9, .n = 9};
	refused(&q99, w, 2, sh, LT_EINVAL, "Q9.9 would be 19 bits wide", "Q9.9");
	lt_quant_spec q00 = {.mode = LT_QUANT_FIXED};
	refused(&q00, w, 2, sh, LT_EINVAL, "Q0.0 would be 1 bit wide", "Q0.0");
	lt_quant_spec qneg = {.mode = LT_QUANT_FIXED, .m = -1, .n = 4};
	refused(&qneg, w, 2, sh, LT_EINVAL, "0 or more", "Q-1.4");
	lt_quant_spec qbits = {.mode = LT_QUANT_FIXED, .m = 1, .n = 6, .bits = 16};
	refused(&qbits, w, 2, sh, LT_EINVAL, "has 8 bits", "Q1.6 said to have 16 bits");
	lt_quant_spec pc0 = {.mode = LT_QUANT_AFFINE, .bits = 8, .per_channel = 1};
	refused(&pc0, w, 0, sh, LT_EINVAL, "scalar", "per channel on a 0-d tensor");
	lt_quant_spec pch = {.mode = LT_QUANT_F16, .per_channel = 1};
	refused(&pch, w, 2, sh, LT_EINVAL, "affine and symmetric quantization only", "per-channel fp16");
	lt_quant_spec sbf = {.mode = LT_QUANT_BF16, .rounding = LT_QUANT_STOCHASTIC};
	refused(&sbf, w, 2, sh, LT_EINVAL, "nearest even only", "stochastic bf16");
	lt_quant_spec bad = {.mode = (lt_quant_mode)99, .bits = 8};
	refused(&bad, w, 2, sh, LT_EINVAL, "unknown quantization mode 99", "mode 99");
	lt_quant_spec a8 = {.mode = LT_QUANT_AFFINE, .bits = 8};
	int64_t neg[2] = {4, -8};
	refused(&a8, w, 2, neg, LT_EINVAL, "negative", "a negative dimension");

	w[21] = NAN;
	refused(&a8, w, 2, sh, LT_EINVAL, "element [2, 5] (index 21) is NaN", "NaN in affine");
	pc0.mode = LT_QUANT_SYMMETRIC;
	refused(&pc0, w, 2, sh, LT_EINVAL, "element [2, 5] (index 21) is NaN", "NaN in symmetric per channel");
	w[21] = 0.0f;
	w[30] = INFINITY;
	lt_quant_spec q16 = {.mode = LT_QUANT_FIXED, .m = 1, .n = 6};
	refused(&q16, w, 2, sh, LT_EINVAL, "element [3, 6] (index 30) is +inf", "+inf in Q1.6");
	w[30] = -INFINITY;
	lt_quant_spec h = {.mode = LT_QUANT_F16};
	refused(&h, w, 2, sh, LT_EINVAL, "element [3, 6] (index 30) is -inf", "-inf in fp16");
	w[30] = 0.0f;
	w[0] = -3e38f;
	w[1] = 3e38f;
	refused(&a8, w, 2, sh, LT_ERANGE, "too wide", "affine over [-3e38, 3e38]");
	pc0.mode = LT_QUANT_AFFINE;
	refused(&pc0, w, 2, sh, LT_ERANGE, "channel 0 spans", "per-channel affine over [-3e38, 3e38]");
	lt_err err = {0};
	float out[32];
	lt_quant_spec s8 = {.mode = LT_QUANT_SYMMETRIC, .bits = 8};
	lt_scheme *s = lt_quant_tensor(w, NULL, 2, sh, &s8, out, NULL, &err);
	tap_ok(s && isfinite(s->scale[0]), "symmetric over [-3e38, 3e38] has a finite scale");
	lt_scheme_free(s);
}

static void shapes_and_stats(void)
{
	lt_err err = {0};
	float w[6] = {0.5f, -1.0f, 0.25f, 2.0f, -0.125f, 1.0f}, out[6];
	lt_quant_spec pc = {.mode = LT_QUANT_AFFINE, .bits = 8, .per_channel = 1};
	lt_quant_spec pt = {.mode = LT_QUANT_SYMMETRIC, .bits = 4};
	int64_t empty[2] = {4, 0}, none[1] = {0};
	lt_scheme *s = lt_quant_tensor(w, NULL, 2, empty, &pc, out, NULL, &err);
	tap_ok(s && s->numel == 0 && s->groups == 4 && s->scale[3] == FLT_EPSILON,
	       "a [4, 0] tensor per channel: 4 empty groups");
	lt_scheme_free(s);
	s = lt_quant_tensor(w, NULL, 1, none, &pt, out, NULL, &err);
	tap_ok(s && s->numel == 0 && s->groups == 1, "a [0] tensor per tensor");
	lt_scheme_free(s);
	lt_quant_stats st;
	s = lt_quant_tensor(w, NULL, 0, NULL, &pt, out, &st, &err);
	/* 0.5 alone: scale 0.5 / 7.5; 0.5 is level 7.5 -> 8, clamped to 7 */
	tap_ok(s && s->numel == 1 && same_bits(out[0], 7.0f * (0.5f / 7.5f)) && st.count == 1,
	       "a 0-d tensor per tensor: %g -> %g (the top level of 4-bit symmetric is 7 of 7.5 steps; "
	       "%lld saturated)", (double)w[0], (double)out[0], (long long)st.saturated);
	lt_scheme_free(s);

	/* the error summary */
	const float x[5] = {1.0f, 2.0f, 0.0f, 4.0f, 0.5f}, q[5] = {1.0f, 2.5f, 0.0f, 3.0f, 0.0f};
	const float m[5] = {1, 1, 1, 1, 0};
	lt_quant_error(x, q, m, 5, &st);
	tap_ok(st.count == 4 && st.zeroed == 0 && st.max_abs_err == 1.0 && st.mse == 1.25 / 4 &&
	       tap_close(st.sqnr_db, 10 * log10(21 / 1.25), 1e-12, 0),
	       "lt_quant_error: count %lld, max %g, mse %g, SQNR %.3f dB", (long long)st.count, st.max_abs_err,
	       st.mse, st.sqnr_db);
	lt_quant_error(x, q, NULL, 5, &st);
	tap_ok(st.count == 5 && st.zeroed == 1 && st.max_abs_err == 1.0, "lt_quant_error without mask: 0.5 -> 0 "
	       "counted as zeroed");
	lt_quant_error(x, x, NULL, 5, &st);
	tap_ok(st.mse == 0 && isinf(st.sqnr_db) && st.sqnr_db > 0, "exact values: SQNR +inf");

	/* through lt_quant_tensor: the same figures as lt_quant_error */
	lt_tensor *t = tensor("pt", "w");
	int64_t n = lt_tensor_numel(t);
	float *o = malloc((size_t)n * sizeof *o);
	lt_quant_spec a4 = {.mode = LT_QUANT_AFFINE, .bits = 4};
	lt_quant_stats st2;
	s = quant(t, NULL, &a4, o, &st, &err);
	lt_quant_error(values(t), o, NULL, n, &st2);
	double max_step = s ? 0.5 * s->scale[0] : 0;
	tap_ok(s && st.count == n && st.mse == st2.mse && st.max_abs_err == st2.max_abs_err &&
	       st.sqnr_db == st2.sqnr_db && st.zeroed == st2.zeroed && st.max_abs_err <= max_step * 1.0001 &&
	       st.sqnr_db > 15 && st.sqnr_db < 30,
	       "pt affine 4 bits: max error %.4g <= scale / 2, SQNR %.2f dB, %lld zeroed", st.max_abs_err,
	       st.sqnr_db, (long long)st.zeroed);
	lt_scheme_free(s);
	free(o);
}

/* ---- allocation failures ---------------------------------------------------------------- */

static void alloc_failures(void)
{
	lt_tensor *t = tensor("conv", "w");
	int64_t n = lt_tensor_numel(t);
	float *o = malloc((size_t)n * sizeof *o);
	values(t); /* converted (and cached) before allocations start failing */
	const lt_quant_spec specs[] = {
		{.mode = LT_QUANT_AFFINE, .bits = 4, .per_channel = 1},
		{.mode = LT_QUANT_FIXED, .m = 2, .n = 5, .rounding = LT_QUANT_STOCHASTIC},
		{.mode = LT_QUANT_BF16},
	};
	for (size_t k = 0; k < sizeof specs / sizeof *specs; k++) {
		int fails = 0, ok = 1, done = 0;
		for (long i = 0; i < 100 && !done; i++) {
			lt_err err = {0};
			lt_mem_fail_after(i);
			lt_scheme *s = quant(t, NULL, &specs[k], o, NULL, &err);
			long made = lt_mem_fail_after(-1);
			if (s) {
				done = made <= i; /* every allocation succeeded */
				ok &= matches_scheme(s, NULL, o);
			} else {
				fails++;
				ok &= err.code == LT_ENOMEM && strstr(err.msg, "out of memory") != NULL;
			}
			lt_scheme_free(s);
		}
		tap_ok(done && fails > 0 && ok, "allocation failures (mode %d): %d sweeps gave LT_ENOMEM, then success",
		       (int)specs[k].mode, fails);
	}
	free(o);
}

/* A few million elements in each mode: timing only (informative). */
static void timing(void)
{
	lt_err err = {0};
	const int64_t n = 4 << 20, shape[2] = {1024, 4096};
	float *w = malloc((size_t)n * sizeof *w), *o = malloc((size_t)n * sizeof *o);
	float *mask = malloc((size_t)n * sizeof *mask);
	uint64_t x = 0x9e3779b97f4a7c15u;
	for (int64_t i = 0; i < n; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		w[i] = (float)((int64_t)(x % 20001) - 10000) * 1e-4f;
		mask[i] = x % 5 ? 1.0f : 0.0f;
	}
	const lt_quant_spec specs[] = {
		{.mode = LT_QUANT_AFFINE, .bits = 8},
		{.mode = LT_QUANT_SYMMETRIC, .bits = 4, .per_channel = 1},
		{.mode = LT_QUANT_AFFINE, .bits = 8, .rounding = LT_QUANT_STOCHASTIC},
		{.mode = LT_QUANT_FIXED, .m = 1, .n = 6},
		{.mode = LT_QUANT_F16},
	};
	const char *names[] = {"affine 8 bits", "symmetric 4 bits per channel", "affine 8 bits stochastic",
			       "Q1.6", "fp16"};
	int ok = 1;
	lt_scheme_free(lt_quant_tensor(w, NULL, 2, shape, &specs[0], o, NULL, &err)); /* touch o's pages */
	for (size_t k = 0; k < sizeof specs / sizeof *specs; k++)
		for (int masked = 0; masked < 2; masked++) {
			lt_quant_stats st;
			double t0 = lt_seconds();
			lt_scheme *s = lt_quant_tensor(w, masked ? mask : NULL, 2, shape, &specs[k], o, &st, &err);
			double dt = lt_seconds() - t0;
			ok &= s != NULL;
			tap_diag("%s%s: %lld elements in %.1f ms (%.2f ns each), SQNR %.1f dB", names[k],
				 masked ? ", masked" : "", (long long)n, dt * 1e3, dt * 1e9 / (double)n, st.sqnr_db);
			lt_scheme_free(s);
		}
	tap_ok(ok, "4M elements in each mode, with and without a mask");
	free(w);
	free(o);
	free(mask);
}

int main(void)
{
	lt_err err = {0};
	ref = lt_model_open(fixture("quant.safetensors"), &err);
	if (!ref)
		tap_skip_all("quant.safetensors missing");
	all_torch_cases();
	half_codes();
	fixed_point();
	stochastic();
	masks();
	refusals();
	shapes_and_stats();
	alloc_failures();
	timing();
	lt_model_unref(ref);
	return tap_done();
}
