/* sgemm throughput through lathe's BLAS door, for `make bench`.
 *   bench_sgemm M K N THREADS REPEATS
 * Times C[M,N] = A[M,K] B[K,N] and prints one JSON line with the median
 * GFLOP/s and the OpenBLAS core that ran it. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/clock.h"
#include "core/mem.h"
#include "kern/blas.h"
#include "bench_util.h"

int main(int argc, char **argv)
{
	lt_blas_autocore(argv);
	if (argc != 6) {
		fprintf(stderr, "usage: bench_sgemm M K N THREADS REPEATS\n");
		return 2;
	}
	int m = atoi(argv[1]), k = atoi(argv[2]), n = atoi(argv[3]);
	int threads = atoi(argv[4]), reps = atoi(argv[5]);
	float *a = lt_alloc_aligned(sizeof(float) * m * k), *b = lt_alloc_aligned(sizeof(float) * k * n);
	float *c = lt_alloc_aligned(sizeof(float) * m * n);
	double *t = calloc((size_t)reps, sizeof *t);
	if (!a || !b || !c || !t)
		return 1;
	for (long i = 0; i < (long)m * k; i++) a[i] = (float)(i % 13) * 0.1f;
	for (long i = 0; i < (long)k * n; i++) b[i] = (float)(i % 7) * 0.1f;
	lt_blas_set_threads(threads);
	/* Each sample repeats the product enough times to last ~20 ms. */
	int inner = 1;
	double t0 = lt_seconds();
	lt_sgemm(0, 0, m, n, k, 1, a, k, b, n, 0, c, n);
	double one = lt_seconds() - t0;
	if (one > 0 && one < 0.02)
		inner = (int)(0.02 / one) + 1;
	for (int r = 0; r < reps; r++) {
		t0 = lt_seconds();
		for (int i = 0; i < inner; i++)
			lt_sgemm(0, 0, m, n, k, 1, a, k, b, n, 0, c, n);
		t[r] = (lt_seconds() - t0) / inner;
	}
	qsort(t, (size_t)reps, sizeof *t, bench_cmp);
	printf("{\"m\": %d, \"k\": %d, \"n\": %d, \"threads\": %d, \"median_s\": %.3e, "
	       "\"gflops\": %.1f, \"core\": \"%s\", \"chosen_by\": \"%s\"}\n",
	       m, k, n, threads, t[reps / 2], 2.0 * m * k * n / t[reps / 2] / 1e9, lt_blas_core(),
	       lt_blas_core_origin());
	lt_free(a);
	lt_free(b);
	lt_free(c);
	free(t);
	return 0;
}
