/* Inference throughput of lathe's forward pass, for `make bench`.
 *   bench_infer MODEL DATA_DIR BATCH IMAGES REPEATS
 * Loads IMAGES test images, runs the forward pass over them REPEATS times at
 * the given batch size and prints one line of JSON with the median time. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/clock.h"
#include "core/mem.h"
#include "data/dataset.h"
#include "io/open.h"
#include "kern/blas.h"
#include "nn/forward.h"
#include "bench_util.h"

int main(int argc, char **argv)
{
	lt_blas_autocore(argv);
	if (argc != 6) {
		fprintf(stderr, "usage: bench_infer MODEL DATA_DIR BATCH IMAGES REPEATS\n");
		return 2;
	}
	int batch = atoi(argv[3]), reps = atoi(argv[5]);
	int64_t images = atoll(argv[4]);
	lt_err err = {0};
	lt_model *m = lt_model_open(argv[1], &err);
	lt_dataset d = {0};
	if (!m || lt_fmnist_load(argv[2], NULL, LT_SPLIT_TEST, &d, &err)) {
		fprintf(stderr, "bench_infer: %s\n", err.msg);
		return 1;
	}
	const lt_graph *g = lt_model_graph(m);
	if (images > d.n)
		images = d.n;
	float *x = lt_malloc_array((size_t)images, (size_t)g->in_numel * sizeof(float));
	float *out = lt_malloc_array((size_t)images, (size_t)lt_graph_out_numel(g) * sizeof(float));
	lt_forward *f = lt_forward_new(m, 0, &err);
	if (!x || !out || !f ||
	    lt_dataset_get_batch(&d, 0, images, g->scale, g->mean, g->std, g->n_norm, x, &err)) {
		fprintf(stderr, "bench_infer: %s\n", err.msg[0] ? err.msg : "out of memory");
		return 1;
	}
	double *t = calloc((size_t)reps, sizeof *t);
	for (int r = -1; r < reps; r++) { /* one warm-up pass */
		double t0 = lt_seconds();
		for (int64_t i = 0; i < images; i += batch) {
			int64_t n = images - i < batch ? images - i : batch;
			if (lt_forward_run(f, x + i * g->in_numel, n, out + i * lt_graph_out_numel(g), &err)) {
				fprintf(stderr, "bench_infer: %s\n", err.msg);
				return 1;
			}
		}
		if (r >= 0)
			t[r] = lt_seconds() - t0;
	}
	qsort(t, (size_t)reps, sizeof *t, bench_cmp);
	double med = t[reps / 2];
	printf("{\"engine\": \"lathe\", \"batch\": %d, \"images\": %lld, \"median_s\": %.6f, "
	       "\"images_per_s\": %.1f, \"latency_us\": %.2f, \"core\": \"%s\"}\n",
	       batch, (long long)images, med, images / med, med / images * 1e6 * batch, lt_blas_core());
	free(t);
	lt_free(x);
	lt_free(out);
	lt_forward_free(f);
	lt_dataset_release(&d);
	lt_model_unref(m);
	return 0;
}
