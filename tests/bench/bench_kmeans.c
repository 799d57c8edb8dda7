/* 1-D k-means weight sharing through lathe's kernel.
 *   bench_kmeans N K REPEATS
 * Fills N float32 weights with normal values (sd 0.05, Box-Muller on
 * bench_util.h's hash fill; peer_kmeans.py makes the same array), times
 * lt_kmeans_1d into K clusters from the linear initialisation to exact
 * convergence (one warm-up call, then REPEATS timed calls; each includes
 * the sort, every Lloyd step, the codes and the shared values written to
 * an output array) and prints one JSON line with the median seconds, the
 * Lloyd steps and the inertia. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/clock.h"
#include "kern/blas.h"
#include "kern/kmeans.h"
#include "bench_util.h"

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: bench_kmeans N K REPEATS\n");
		return 2;
	}
	int64_t n = atoll(argv[1]);
	int k = atoi(argv[2]), reps = atoi(argv[3]);
	if (n < 1 || reps < 1 || reps > 100) {
		fprintf(stderr, "bench_kmeans: N must be 1 or more, REPEATS 1 to 100\n");
		return 1;
	}
	float *w = malloc((size_t)n * sizeof *w), *out = malloc((size_t)n * sizeof *out);
	if (!w || !out) {
		fprintf(stderr, "bench_kmeans: out of memory\n");
		return 1;
	}
	for (int64_t i = 0; i < n; i++) {
		/* u1 in (0, 1], u2 in [0, 1), both exact in float32 */
		double u1 = 0.5 - (double)bench_fill((uint64_t)(2 * i));
		double u2 = (double)bench_fill((uint64_t)(2 * i + 1)) + 0.5;
		w[i] = (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2) * 0.05);
	}
	lt_kmeans_opts opt = {.k = k, .init = LT_KMEANS_LINEAR};
	lt_kmeans_stats st = {0};
	lt_err err = {0};
	double times[100];
	for (int r = -1; r < reps; r++) {
		lt_scheme *s;
		double t0 = lt_seconds();
		int rc = lt_kmeans_1d(w, NULL, n, &opt, &s, out, &st, &err);
		double dt = lt_seconds() - t0;
		if (rc) {
			fprintf(stderr, "bench_kmeans: %s\n", err.msg);
			return 1;
		}
		if (r >= 0)
			times[r] = dt;
		lt_scheme_free(s);
	}
	qsort(times, (size_t)reps, sizeof *times, bench_cmp);
	printf("{\"bench\": \"kmeans\", \"n\": %lld, \"k\": %d, \"init\": \"linear\", \"threads\": %d, "
	       "\"median_s\": %.6f, \"iterations\": %d, \"converged\": %d, \"inertia\": %.9g}\n", (long long)n, k,
	       lt_cpu_count(), times[reps / 2], st.iterations, st.converged, st.inertia);
	free(w);
	free(out);
	return 0;
}
