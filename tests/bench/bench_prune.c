/* Magnitude pruning of a large matrix through lathe's kernel.
 *   bench_prune ROWS COLS SPARSITY REPEATS
 * Fills a ROWS x COLS float32 matrix with the hash fill of bench_svd
 * (peer_prune.py makes the same matrix), times lt_prune_tensor to
 * SPARSITY (one warm-up call, then REPEATS timed calls: selection, the
 * mask and the pruned copy, as numpy's partition + mask + multiply) and
 * prints one JSON line with the median seconds and the zeros made. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/clock.h"
#include "kern/blas.h"
#include "kern/prune.h"
#include "bench_util.h"

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: bench_prune ROWS COLS SPARSITY REPEATS\n");
		return 2;
	}
	int64_t shape[2] = {atoll(argv[1]), atoll(argv[2])};
	double sparsity = atof(argv[3]);
	int reps = atoi(argv[4]);
	lt_err err = {0};
	lt_tensor *t = lt_tensor_new(2, shape, &err);
	float *w = t ? lt_tensor_data_mut(t, &err) : NULL;
	if (!w || reps < 1 || reps > 100) {
		fprintf(stderr, "bench_prune: %s\n", w ? "REPEATS must be 1 to 100" : err.msg);
		return 1;
	}
	for (int64_t i = 0; i < shape[0] * shape[1]; i++)
		w[i] = bench_fill((uint64_t)i);
	lt_prune_spec spec = {.sparsity = sparsity};
	double times[100];
	int64_t zeros = 0;
	for (int r = -1; r < reps; r++) {
		double t0 = lt_seconds();
		lt_tensor *p = lt_prune_tensor(t, &spec, &err);
		double dt = lt_seconds() - t0;
		if (!p) {
			fprintf(stderr, "bench_prune: %s\n", err.msg);
			return 1;
		}
		if (r >= 0)
			times[r] = dt;
		zeros = lt_tensor_count_zeros(p);
		lt_tensor_unref(p);
	}
	qsort(times, (size_t)reps, sizeof *times, bench_cmp);
	printf("{\"bench\": \"prune\", \"rows\": %lld, \"cols\": %lld, \"sparsity\": %g, \"threads\": %d, "
	       "\"median_s\": %.6f, \"zeros\": %lld}\n", (long long)shape[0], (long long)shape[1], sparsity,
	       lt_cpu_count(), times[reps / 2], (long long)zeros);
	lt_tensor_unref(t);
	return 0;
}
