/* Singular values through lathe's spectrum kernel, every route.
 *   bench_svd ROWS COLS REPEATS [SIGMA_OUT]
 * Fills a ROWS x COLS float32 matrix with the hash fill below (peer_svd.py
 * makes the same matrix bit for bit), times each route (one warm-up call,
 * then REPEATS timed calls) and prints one JSON line: the shape, the route
 * LT_SVD_AUTO picks, the median seconds per route, and the OpenBLAS threads
 * the kernel used (every core). With SIGMA_OUT, the singular values of the
 * chosen route are written there, one per line (%.17g), for
 * `peer_svd.py ... --check SIGMA_OUT`. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/clock.h"
#include "core/mem.h"
#include "kern/blas.h"
#include "kern/spectrum.h"
#include "bench_util.h"

static double time_route(const float *a, int64_t rows, int64_t cols, lt_svd_route route,
			 int reps, double *sigma, double *t)
{
	lt_err err = {0};
	if (lt_spectrum_singular_values(a, rows, cols, route, sigma, &err)) {
		fprintf(stderr, "bench_svd: %s\n", err.msg);
		exit(1);
	}
	for (int r = 0; r < reps; r++) {
		double t0 = lt_seconds();
		lt_spectrum_singular_values(a, rows, cols, route, sigma, &err);
		t[r] = lt_seconds() - t0;
	}
	qsort(t, (size_t)reps, sizeof *t, bench_cmp);
	return t[reps / 2];
}

int main(int argc, char **argv)
{
	lt_blas_autocore(argv);
	if (argc != 4 && argc != 5) {
		fprintf(stderr, "usage: bench_svd ROWS COLS REPEATS [SIGMA_OUT]\n");
		return 2;
	}
	int64_t rows = atoll(argv[1]), cols = atoll(argv[2]);
	int reps = atoi(argv[3]);
	if (rows < 1 || cols < 1 || reps < 1) {
		fprintf(stderr, "bench_svd: ROWS, COLS and REPEATS must be positive\n");
		return 2;
	}
	int64_t k = rows < cols ? rows : cols;
	float *a = lt_malloc_array((size_t)(rows * cols), sizeof *a);
	double *sigma = lt_malloc_array((size_t)k, sizeof *sigma);
	double *t = calloc((size_t)reps, sizeof *t);
	if (!a || !sigma || !t)
		return 1;
	for (int64_t i = 0; i < rows * cols; i++)
		a[i] = bench_fill((uint64_t)i);
	lt_svd_route chosen = lt_spectrum_route(rows, cols);
	/* The chosen route last, so sigma holds its values. */
	lt_svd_route other = chosen == LT_SVD_GRAM ? LT_SVD_GESDD : LT_SVD_GRAM;
	double t_other = time_route(a, rows, cols, other, reps, sigma, t);
	double t_chosen = time_route(a, rows, cols, chosen, reps, sigma, t);
	double gesdd = chosen == LT_SVD_GESDD ? t_chosen : t_other;
	double gram = chosen == LT_SVD_GRAM ? t_chosen : t_other;
	printf("{\"bench\": \"svd\", \"rows\": %lld, \"cols\": %lld, \"route\": \"%s\", "
	       "\"gesdd_s\": %.4e, \"gram_s\": %.4e, \"median_s\": %.4e, \"repeats\": %d, "
	       "\"threads\": %d, \"core\": \"%s\"}\n",
	       (long long)rows, (long long)cols, lt_svd_route_name(chosen), gesdd, gram, t_chosen,
	       reps, lt_cpu_count(), lt_blas_core());
	if (argc == 5) {
		FILE *f = fopen(argv[4], "w");
		if (!f) {
			perror(argv[4]);
			return 1;
		}
		for (int64_t i = 0; i < k; i++)
			fprintf(f, "%.17g\n", sigma[i]);
		if (fclose(f)) {
			perror(argv[4]);
			return 1;
		}
	}
	lt_free(a);
	lt_free(sigma);
	free(t);
	return 0;
}
