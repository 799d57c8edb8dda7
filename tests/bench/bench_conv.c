/* Convolution methods head to head, for `make bench`.
 *   bench_conv C H W OC K STRIDE PAD BATCH REPEATS
 * Times one thread running each method that fits the shape (im2col,
 * direct, winograd) on BATCH images and prints one JSON line: the method
 * the automatic choice takes ("auto") and, per method, the median seconds
 * ("<method>_s") and the rate in multiply-accumulates of the plain
 * convolution ("<method>_gmacs", so methods compare directly). */
#include <stdio.h>
#include <stdlib.h>

#include "core/clock.h"
#include "core/mem.h"
#include "kern/blas.h"
#include "nn/conv.h"
#include "bench_util.h"

int main(int argc, char **argv)
{
	lt_blas_autocore(argv);
	if (argc != 10) {
		fprintf(stderr, "usage: bench_conv C H W OC K STRIDE PAD BATCH REPEATS\n");
		return 2;
	}
	int C = atoi(argv[1]), H = atoi(argv[2]), W = atoi(argv[3]), OC = atoi(argv[4]);
	int K = atoi(argv[5]), S = atoi(argv[6]), P = atoi(argv[7]), B = atoi(argv[8]);
	int reps = atoi(argv[9]);
	if (C < 1 || H < 1 || W < 1 || OC < 1 || K < 1 || S < 1 || P < 0 || B < 1 || reps < 1 ||
	    H + 2 * P < K || W + 2 * P < K) {
		fprintf(stderr, "bench_conv: bad shape\n");
		return 2;
	}
	lt_node n = {.op = LT_OP_CONV2D, .in_features = C, .out_features = OC,
		     .kernel = {K, K}, .stride = {S, S}, .padding = {P, P}, .out_ndim = 3};
	n.out_shape[0] = OC;
	n.out_shape[1] = (H + 2 * P - K) / S + 1;
	n.out_shape[2] = (W + 2 * P - K) / S + 1;
	n.out_numel = OC * n.out_shape[1] * n.out_shape[2];
	int64_t in_shape[3] = {C, H, W};
	size_t nin = (size_t)B * C * H * W, nw = (size_t)OC * C * K * K;
	float *x = lt_alloc_aligned(nin * sizeof(float)), *w = lt_alloc_aligned(nw * sizeof(float));
	float *bias = lt_alloc_aligned((size_t)OC * sizeof(float));
	float *y = lt_alloc_aligned((size_t)B * n.out_numel * sizeof(float));
	double *t = calloc((size_t)reps, sizeof *t);
	if (!x || !w || !bias || !y || !t)
		return 1;
	for (size_t i = 0; i < nin; i++) x[i] = (float)(i % 17) * 0.05f;
	for (size_t i = 0; i < nw; i++) w[i] = (float)((int)(i % 11) - 5) * 0.01f;
	for (int i = 0; i < OC; i++) bias[i] = 0.1f * (float)i;
	lt_blas_set_threads(1);
	double macs = (double)B * n.out_numel * C * K * K;
	lt_conv *chosen = lt_conv_new(&n, in_shape, w, bias, LT_CONV_AUTO, NULL);
	if (!chosen)
		return 1;
	printf("{\"shape\": \"%dx%dx%d->%d k%d s%d p%d\", \"batch\": %d, \"threads\": 1, \"auto\": \"%s\"",
	       C, H, W, OC, K, S, P, B, lt_conv_method_name(lt_conv_method_of(chosen)));
	lt_conv_free(chosen);
	for (lt_conv_method m = LT_CONV_IM2COL; m <= LT_CONV_WINOGRAD; m++) {
		lt_conv *c = lt_conv_new(&n, in_shape, w, bias, m, NULL);
		if (!c)
			continue; /* the method does not fit this shape */
		float *scratch = lt_alloc_aligned((size_t)lt_conv_scratch(c, B) * sizeof(float));
		if (!scratch)
			return 1;
		lt_conv_run(c, x, y, B, scratch); /* warm up */
		for (int r = 0; r < reps; r++) {
			double t0 = lt_seconds();
			lt_conv_run(c, x, y, B, scratch);
			t[r] = lt_seconds() - t0;
		}
		qsort(t, (size_t)reps, sizeof *t, bench_cmp);
		printf(", \"%s_s\": %.3e, \"%s_gmacs\": %.2f", lt_conv_method_name(m), t[reps / 2],
		       lt_conv_method_name(m), macs / t[reps / 2] / 1e9);
		lt_free(scratch);
		lt_conv_free(c);
	}
	printf("}\n");
	lt_free(x);
	lt_free(w);
	lt_free(bias);
	lt_free(y);
	free(t);
	return 0;
}
