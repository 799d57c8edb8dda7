/* Convolution plans (nn/conv.c): every method against PyTorch's conv2d
 * (tests/fixtures/conv.safetensors, made by gen_conv_fixtures.py) and
 * against a float64 loop on shapes the fixture does not cover; the
 * automatic choice; shapes a method refuses; bias-less layers; scratch
 * reuse; allocation failures. */
#include <math.h>
#include <string.h>

#include "core/mem.h"
#include "core/rng.h"
#include "io/open.h"
#include "nn/conv.h"
#include "tap.h"
#include "testutil.h"

/* Winograd F(4x4, 5x5) in float32 is off by ~4e-6 of the largest output;
 * im2col and direct by ~1e-7. */
#define TOL 3e-5

struct shape { int B, C, H, W, OC, KH, KW, SH, SW, PH, PW; };

static lt_node node_of(const struct shape *s)
{
	lt_node n = {.op = LT_OP_CONV2D, .in_features = s->C, .out_features = s->OC,
		     .kernel = {s->KH, s->KW}, .stride = {s->SH, s->SW},
		     .padding = {s->PH, s->PW}, .out_ndim = 3};
	n.out_shape[0] = s->OC;
	n.out_shape[1] = (s->H + 2 * s->PH - s->KH) / s->SH + 1;
	n.out_shape[2] = (s->W + 2 * s->PW - s->KW) / s->SW + 1;
	n.out_numel = n.out_shape[0] * n.out_shape[1] * n.out_shape[2];
	return n;
}

/* Largest |y - ref| over the largest |ref|; 1 when y has a non-finite value. */
static double rel_err(const float *y, const float *ref, size_t n)
{
	double worst = 0, scale = 0;
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(y[i]))
			return 1;
		worst = fmax(worst, fabs((double)y[i] - ref[i]));
		scale = fmax(scale, fabs((double)ref[i]));
	}
	return scale > 0 ? worst / scale : worst;
}

/* Runs method m on x and returns the relative error against ref, or -1
 * when the plan was refused (err filled). Runs twice through the same
 * scratch (filled with garbage first) to show nothing depends on its
 * contents. */
static double run_method(const struct shape *s, lt_conv_method m, const float *x, const float *w,
			 const float *b, const float *ref, lt_conv_method *chosen, lt_err *err)
{
	lt_node n = node_of(s);
	int64_t in_shape[3] = {s->C, s->H, s->W};
	lt_conv *c = lt_conv_new(&n, in_shape, w, b, m, err);
	if (!c)
		return -1;
	if (chosen)
		*chosen = lt_conv_method_of(c);
	size_t ny = (size_t)s->B * n.out_numel;
	size_t ns = (size_t)lt_conv_scratch(c, s->B);
	float *y = lt_malloc_array(ny, sizeof *y), *scratch = lt_malloc_array(ns ? ns : 1, sizeof(float));
	if (!y || !scratch)
		abort();
	for (size_t i = 0; i < ns; i++)
		scratch[i] = NAN;
	for (size_t i = 0; i < ny; i++)
		y[i] = NAN;
	lt_conv_run(c, x, y, s->B, scratch);
	lt_conv_run(c, x, y, s->B, scratch);
	double e = rel_err(y, ref, ny);
	lt_free(y);
	lt_free(scratch);
	lt_conv_free(c);
	return e;
}

static int fits(const struct shape *s, lt_conv_method m)
{
	switch (m) {
	case LT_CONV_DIRECT: return s->SW == 1;
	case LT_CONV_WINOGRAD:
		return s->SH == 1 && s->SW == 1 && s->KH == s->KW && s->KH >= 2 && s->KH <= 5;
	default: return 1;
	}
}

static void every_method(const char *what, const struct shape *s, const float *x, const float *w,
			 const float *b, const float *ref)
{
	for (lt_conv_method m = LT_CONV_AUTO; m <= LT_CONV_SPARSE; m++) {
		lt_err err = {0};
		lt_conv_method chosen = m;
		double e = run_method(s, m, x, w, b, ref, &chosen, &err);
		if (!fits(s, m)) {
			tap_ok(e < 0 && err.code == LT_EINVAL && err.msg[0], "%s: %s refused (%s)", what,
			       lt_conv_method_name(m), err.msg);
			continue;
		}
		tap_ok(e >= 0 && e <= TOL, "%s: %s%s%s matches (relative error %.2g)", what,
		       lt_conv_method_name(m), m == LT_CONV_AUTO ? " -> " : "",
		       m == LT_CONV_AUTO ? lt_conv_method_name(chosen) : "", e);
	}
}

static void against_torch(void)
{
	lt_err err = {0};
	lt_model *ref = lt_model_open(fixture("conv.safetensors"), &err);
	tap_ok(ref != NULL, "conv.safetensors opens (%s)", err.msg);
	if (!ref)
		return;
	for (int i = 0;; i++) {
		char key[32];
		snprintf(key, sizeof key, "%d", i);
		const char *strides = lt_model_meta(ref, key);
		if (!strides)
			break;
		struct shape s;
		lt_tensor *t[4];
		const char *part[4] = {"x", "w", "b", "y"};
		const float *p[4];
		for (int k = 0; k < 4; k++) {
			snprintf(key, sizeof key, "%d.%s", i, part[k]);
			t[k] = lt_model_tensor(ref, key);
			p[k] = t[k] ? lt_tensor_data(t[k], &err) : NULL;
			if (!p[k])
				abort();
		}
		const int64_t *xs = lt_tensor_shape(t[0]), *ws = lt_tensor_shape(t[1]);
		s = (struct shape){(int)xs[0], (int)xs[1], (int)xs[2], (int)xs[3], (int)ws[0], (int)ws[2],
				   (int)ws[3], 0, 0, 0, 0};
		if (sscanf(strides, "%d %d %d %d", &s.SH, &s.SW, &s.PH, &s.PW) != 4)
			abort();
		char what[96];
		snprintf(what, sizeof what, "torch case %d (%dx%dx%d -> %d, %dx%d, stride %d,%d, pad %d,%d)", i,
			 s.C, s.H, s.W, s.OC, s.KH, s.KW, s.SH, s.SW, s.PH, s.PW);
		every_method(what, &s, p[0], p[1], p[2], p[3]);
	}
	lt_model_unref(ref);
}

/* The definition, in double. */
static void reference(const struct shape *s, const float *x, const float *w, const float *b, float *y)
{
	lt_node n = node_of(s);
	int OH = (int)n.out_shape[1], OW = (int)n.out_shape[2];
	for (int i = 0; i < s->B; i++)
		for (int oc = 0; oc < s->OC; oc++)
			for (int oy = 0; oy < OH; oy++)
				for (int ox = 0; ox < OW; ox++) {
					double acc = b ? b[oc] : 0;
					for (int c = 0; c < s->C; c++)
						for (int ky = 0; ky < s->KH; ky++)
							for (int kx = 0; kx < s->KW; kx++) {
								int iy = oy * s->SH - s->PH + ky, ix = ox * s->SW - s->PW + kx;
								if (iy < 0 || iy >= s->H || ix < 0 || ix >= s->W)
									continue;
								acc += (double)x[(((size_t)i * s->C + c) * s->H + iy) * s->W + ix] *
								       w[(((size_t)oc * s->C + c) * s->KH + ky) * s->KW + kx];
							}
					y[(((size_t)i * s->OC + oc) * OH + oy) * OW + ox] = (float)acc;
				}
}

static float *random_array(lt_rng *r, size_t n, float scale)
{
	float *a = lt_malloc_array(n, sizeof *a);
	if (!a)
		abort();
	for (size_t i = 0; i < n; i++)
		a[i] = (float)(lt_rng_uniform(r) * 2 - 1) * scale;
	return a;
}

static void against_loop(const char *what, struct shape s, int with_bias)
{
	lt_rng r = {99};
	lt_node n = node_of(&s);
	size_t nx = (size_t)s.B * s.C * s.H * s.W, nw = (size_t)s.OC * s.C * s.KH * s.KW;
	float *x = random_array(&r, nx, 1), *w = random_array(&r, nw, 0.3f);
	float *b = with_bias ? random_array(&r, (size_t)s.OC, 1) : NULL;
	float *ref = lt_malloc_array((size_t)s.B * n.out_numel, sizeof *ref);
	if (!ref)
		abort();
	reference(&s, x, w, b, ref);
	every_method(what, &s, x, w, b, ref);
	lt_free(x);
	lt_free(w);
	lt_free(b);
	lt_free(ref);
}

static void automatic_choice(void)
{
	static const struct {
		struct shape s;
		lt_conv_method want;
		const char *why;
	} cases[] = {
		{{1, 1, 28, 28, 20, 5, 5, 1, 1, 0, 0}, LT_CONV_DIRECT, "one input channel"},
		{{1, 20, 12, 12, 50, 5, 5, 1, 1, 0, 0}, LT_CONV_WINOGRAD, "lenet5 conv2"},
		{{1, 64, 16, 16, 64, 3, 3, 1, 1, 1, 1}, LT_CONV_WINOGRAD, "3x3, 64 channels"},
		{{1, 16, 9, 9, 8, 3, 3, 2, 2, 1, 1}, LT_CONV_IM2COL, "stride 2, 144 taps"},
		{{1, 64, 4, 4, 64, 1, 1, 1, 1, 0, 0}, LT_CONV_DIRECT, "1x1, 64 channels"},
		{{1, 256, 4, 4, 64, 1, 1, 1, 1, 0, 0}, LT_CONV_IM2COL, "1x1, 256 channels"},
		{{1, 64, 3, 3, 64, 3, 3, 1, 1, 0, 0}, LT_CONV_IM2COL, "a single output pixel"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		lt_node n = node_of(&cases[i].s);
		int64_t in_shape[3] = {cases[i].s.C, cases[i].s.H, cases[i].s.W};
		size_t nw = (size_t)cases[i].s.OC * cases[i].s.C * cases[i].s.KH * cases[i].s.KW;
		float *w = lt_malloc_array(nw, sizeof *w);
		for (size_t j = 0; j < nw; j++)
			w[j] = 1.0f; /* dense */
		lt_conv *c = lt_conv_new(&n, in_shape, w, NULL, LT_CONV_AUTO, NULL);
		tap_ok(c && lt_conv_method_of(c) == cases[i].want, "auto: %s -> %s (got %s)", cases[i].why,
		       lt_conv_method_name(cases[i].want), c ? lt_conv_method_name(lt_conv_method_of(c)) : "none");
		lt_conv_free(c);
		/* pruned to 5 %: where im2col would run, the sparse product does */
		for (size_t j = 0; j < nw; j++)
			w[j] = j % 20 == 0 ? 1.0f : 0.0f;
		c = lt_conv_new(&n, in_shape, w, NULL, LT_CONV_AUTO, NULL);
		lt_conv_method want = cases[i].want == LT_CONV_IM2COL ? LT_CONV_SPARSE : cases[i].want;
		tap_ok(c && lt_conv_method_of(c) == want, "auto, 95 %% pruned: %s -> %s (got %s)", cases[i].why,
		       lt_conv_method_name(want), c ? lt_conv_method_name(lt_conv_method_of(c)) : "none");
		lt_conv_free(c);
		lt_free(w);
	}
}

/* The sparse method on pruned weights against the float64 loop. */
static void sparse_against_loop(const char *what, struct shape s)
{
	lt_rng r = {7};
	lt_node n = node_of(&s);
	size_t nx = (size_t)s.B * s.C * s.H * s.W, nw = (size_t)s.OC * s.C * s.KH * s.KW;
	float *x = random_array(&r, nx, 1), *w = random_array(&r, nw, 0.3f), *b = random_array(&r, (size_t)s.OC, 1);
	for (size_t j = 0; j < nw; j++)
		if (lt_rng_below(&r, 10) != 0)
			w[j] = 0.0f; /* about 90 % pruned */
	float *ref = lt_malloc_array((size_t)s.B * n.out_numel, sizeof *ref);
	reference(&s, x, w, b, ref);
	lt_err err = {0};
	lt_conv_method chosen;
	double e = run_method(&s, LT_CONV_SPARSE, x, w, b, ref, &chosen, &err);
	tap_ok(e >= 0 && e <= TOL, "%s, 90 %% pruned: sparse matches (relative error %.2g)", what, e);
	e = run_method(&s, LT_CONV_AUTO, x, w, b, ref, &chosen, &err);
	tap_ok(e >= 0 && e <= TOL && chosen == LT_CONV_SPARSE, "%s, 90 %% pruned: auto -> %s matches (%.2g)", what,
	       lt_conv_method_name(chosen), e);
	lt_free(x);
	lt_free(w);
	lt_free(b);
	lt_free(ref);
}

static void allocation_failures(void)
{
	struct shape shapes[2] = {{2, 8, 9, 9, 6, 3, 3, 1, 1, 1, 1}, {2, 2, 9, 9, 6, 3, 3, 1, 1, 1, 1}};
	lt_conv_method methods[2] = {LT_CONV_WINOGRAD, LT_CONV_DIRECT};
	for (int k = 0; k < 2; k++) {
		lt_node n = node_of(&shapes[k]);
		int64_t in_shape[3] = {shapes[k].C, shapes[k].H, shapes[k].W};
		float *w = lt_calloc((size_t)6 * shapes[k].C * 9, sizeof *w);
		int failed_cleanly = 1, sites = 0;
		for (long i = 0;; i++) {
			lt_err err = {0};
			lt_mem_fail_after(i);
			lt_conv *c = lt_conv_new(&n, in_shape, w, NULL, methods[k], &err);
			lt_mem_fail_after(-1);
			if (c) {
				lt_conv_free(c);
				sites = (int)i;
				break;
			}
			failed_cleanly &= err.code == LT_ENOMEM && err.msg[0];
		}
		tap_ok(failed_cleanly && sites > 0, "%s: each of %d allocation failures reported as ENOMEM",
		       lt_conv_method_name(methods[k]), sites);
		lt_free(w);
	}
}

int main(void)
{
	against_torch();
	/* Shapes beyond the fixture: tiles cut by the output's edge in both
	 * directions, batches that leave the last tile block part-filled,
	 * channel counts of 1 and 5, padding wider than the kernel's reach. */
	against_loop("5x5 on 17x19, pad 2, batch 3",
		     (struct shape){3, 9, 17, 19, 5, 5, 5, 1, 1, 2, 2}, 1);
	against_loop("3x3 on 5x6, pad 1, one filter, no bias",
		     (struct shape){1, 8, 5, 6, 1, 3, 3, 1, 1, 1, 1}, 0);
	against_loop("2x2 on 4x4, batch 7", (struct shape){7, 10, 4, 4, 3, 2, 2, 1, 1, 0, 0}, 1);
	against_loop("4x4 on 6x5, pad (0, 3)", (struct shape){2, 8, 6, 5, 6, 4, 4, 1, 1, 0, 3}, 1);
	against_loop("stride (3, 1), 3x2 kernel", (struct shape){2, 2, 10, 9, 5, 3, 2, 3, 1, 1, 0}, 0);
	against_loop("1x1, 12 channels", (struct shape){3, 12, 5, 7, 9, 1, 1, 1, 1, 0, 0}, 1);
	automatic_choice();
	sparse_against_loop("stride 2, 3x3, 32 -> 24 channels", (struct shape){3, 32, 13, 11, 24, 3, 3, 2, 2, 1, 1});
	sparse_against_loop("1x1, 256 -> 40 channels", (struct shape){2, 256, 5, 6, 40, 1, 1, 1, 1, 0, 0});
	allocation_failures();
	return tap_done();
}
