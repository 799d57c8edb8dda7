/* Training speed of lathe, for `make bench`.
 *   bench_train ARCH.json DATA_DIR EPOCHS [THREADS]
 * Builds the architecture in ARCH.json with fresh parameters (seed 0), then
 * trains it on the 60,000 Fashion-MNIST training images in DATA_DIR with
 * Adam (lr 1e-3) at batch 128, as `lathe train` does, and prints one line of
 * JSON with the time of each epoch and their median.  THREADS defaults to 0,
 * lathe's default of one thread per core.
 *
 * EPOCHS may be a fraction below 1 (e.g. 0.1), for quick checks: then one
 * epoch is started, stopped after that fraction of its minibatches, and its
 * time is extrapolated to the whole epoch; the JSON says "partial": the
 * fraction actually run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/graph.h"
#include "core/mem.h"
#include "data/dataset.h"
#include "kern/blas.h"
#include "nn/train.h"
#include "bench_util.h"

struct rec {
	int64_t stop_at;   /* partial epoch: stop after this many batches, else 0 */
	int64_t batches;   /* minibatches in a full epoch */
	int64_t done;      /* minibatches run in the partial epoch */
	int n;
	double *epoch_s;
	double partial_s;
	double loss, acc;  /* running means of the last epoch (or part) */
};

static int on_progress(void *ud, const lt_train_status *st)
{
	struct rec *r = ud;
	r->batches = st->batches;
	r->loss = st->loss;
	r->acc = st->acc;
	if (st->batch < 0) {
		r->epoch_s[r->n++] = st->seconds;
		return 0;
	}
	if (r->stop_at > 0 && st->batch >= r->stop_at) {
		r->done = st->batch;
		r->partial_s = st->seconds;
		return 1; /* ends the run with LT_ECANCEL, which is expected here */
	}
	return 0;
}

/* The whole file as a NUL-terminated string, or NULL. */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t len = 0, cap = 0, got;
	do {
		if (len + 4096 + 1 > cap) {
			cap = cap ? 2 * cap : 8192;
			char *nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
		}
		got = fread(buf + len, 1, 4096, f);
		len += got;
	} while (got == 4096);
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		free(buf);
		return NULL;
	}
	buf[len] = '\0';
	return buf;
}

/* "samples/lenet5.arch.json" -> "lenet5" (into out). */
static void model_name(const char *path, char *out, size_t size)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	size_t n = strcspn(base, ".");
	if (n == 0)
		n = strlen(base);
	snprintf(out, size, "%.*s", (int)n, base);
	for (char *p = out; *p; p++)
		if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
			*p = '_';
}

int main(int argc, char **argv)
{
	lt_blas_autocore(argv);
	if (argc != 4 && argc != 5) {
		fprintf(stderr, "usage: bench_train ARCH.json DATA_DIR EPOCHS [THREADS]\n");
		return 2;
	}
	char *end;
	double epochs_arg = strtod(argv[3], &end);
	int threads = argc == 5 ? atoi(argv[4]) : 0;
	if (*end || !(epochs_arg > 0 && epochs_arg <= 1000) || threads < 0 ||
	    (epochs_arg > 1 && epochs_arg != (int)epochs_arg)) {
		fprintf(stderr, "bench_train: EPOCHS must be a whole number, or a fraction below 1; "
				"THREADS a count (0 = one per core)\n");
		return 2;
	}
	char *json = slurp(argv[1]);
	if (!json) {
		fprintf(stderr, "bench_train: %s: cannot read: %m\n", argv[1]);
		return 1;
	}
	lt_err err = {0};
	lt_graph *g = lt_graph_from_json(json, &err);
	free(json);
	if (!g) {
		fprintf(stderr, "bench_train: %s: %s\n", argv[1], err.msg);
		return 1;
	}
	lt_model *m = lt_model_from_graph(g, 0, &err);
	if (!m) {
		fprintf(stderr, "bench_train: %s: %s\n", argv[1], err.msg);
		return 1;
	}
	lt_dataset d = {0};
	if (lt_fmnist_load(argv[2], NULL, LT_SPLIT_TRAIN_FULL, &d, &err)) {
		fprintf(stderr, "bench_train: %s\n", err.msg);
		lt_model_unref(m);
		return 1;
	}

	int partial = epochs_arg < 1;
	int epochs = partial ? 1 : (int)epochs_arg;
	lt_train_cfg cfg = {.epochs = epochs, .batch = 128, .threads = threads, .seed = 0,
			    .sched = LT_SCHED_CONST};
	cfg.opt.kind = LT_OPT_ADAM;
	cfg.opt.lr = 1e-3f;
	struct rec r = {0};
	r.epoch_s = calloc((size_t)epochs, sizeof *r.epoch_s);
	if (partial) {
		int64_t batches = (d.n + cfg.batch - 1) / cfg.batch;
		r.stop_at = (int64_t)(epochs_arg * (double)batches + 0.5);
		if (r.stop_at < 1)
			r.stop_at = 1;
		if (r.stop_at >= batches)
			r.stop_at = 0; /* the whole epoch after all */
	}
	int rc = lt_train_run(m, &d, NULL, &cfg, on_progress, &r, &err);
	if (rc && !(rc == LT_ECANCEL && r.done > 0)) {
		fprintf(stderr, "bench_train: %s\n", err.msg);
		return 1;
	}
	double frac = 1;
	if (r.done > 0) { /* extrapolate the partial epoch */
		frac = (double)r.done / (double)r.batches;
		r.epoch_s[r.n++] = r.partial_s / frac;
	}

	char name[256];
	model_name(argv[1], name, sizeof name);
	printf("{\"engine\": \"lathe\", \"model\": \"%s\", \"batch\": %d, \"opt\": \"adam\", "
	       "\"images\": %lld, \"epoch_s\": [",
	       name, cfg.batch, (long long)d.n);
	for (int i = 0; i < r.n; i++)
		printf("%s%.3f", i ? ", " : "", r.epoch_s[i]);
	double *sorted = calloc((size_t)r.n, sizeof *sorted);
	memcpy(sorted, r.epoch_s, (size_t)r.n * sizeof *sorted);
	qsort(sorted, (size_t)r.n, sizeof *sorted, bench_cmp);
	double med = sorted[r.n / 2]; /* upper median for even counts, as bench_infer */
	printf("], \"median_epoch_s\": %.3f, \"images_per_s\": %.1f, ", med, (double)d.n / med);
	if (r.done > 0)
		printf("\"partial\": %.4f, ", frac);
	printf("\"loss\": %.4f, \"train_acc\": %.4f, \"threads\": %d, \"core\": \"%s\"}\n",
	       r.loss, r.acc, threads > 0 ? threads : lt_cpu_count(), lt_blas_core());
	free(sorted);
	free(r.epoch_s);
	lt_dataset_release(&d);
	lt_model_unref(m);
	return 0;
}
