/* Sparse kernels against the dense path, one thread, for pruned layers.
 *   bench_sparse REPEATS [LENET300.safetensors]
 *   bench_sparse --crossover REPEATS
 * Cases: lenet300's layers (784->300->100->10) at Deep Compression's keep
 * rates (8 %, 9 %, 26 %) and at a uniform 8 % (92 % sparsity), one layer
 * at a time and the three in a row (no activations: they cost the same
 * either way), at batch 1 and 1000; lenet5's conv2 as im2col sees it
 * (weights [50, 500] times columns [500, b * 64]) at 12 % for b = 1, 8
 * (a forward pass's share), 64 and 128 (a fine-tuning batch). Masks are
 * random (a hash of the position); with a lenet300 file, its trained
 * weights pruned by magnitude at the same rates are timed as well (their
 * rows and columns are less even). Dense is lt_layers_linear, or lt_sgemm
 * for the conv. Dense and sparse runs alternate, REPEATS of each, every
 * run repeating the call for about a millisecond. One JSON line per case:
 * median seconds per call of each, the speedup (dense / sparse), what
 * lt_sparse_pays says (a chain uses the sparse form only where it pays,
 * as a forward pass would), and the largest difference between outputs.
 * --crossover: for several shapes and n, the speedup over a grid of
 * densities and the density where it falls below 1 (for sparse.c's rule). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/mem.h"
#include "io/open.h"
#include "kern/blas.h"
#include "nn/layers.h"
#include "nn/sparse.h"
#include "bench_util.h"

#define MAX_LAYERS 3

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return (x > y) - (x < y);
}

static uint64_t hash(uint64_t i)
{
	uint64_t h = (i + 1) * 0x9E3779B97F4A7C15ull;
	h ^= h >> 32;
	h *= 0xD6E8FEB86659FD93ull;
	h ^= h >> 32;
	return h;
}

static void *need(void *p)
{
	if (!p) {
		fprintf(stderr, "bench_sparse: out of memory\n");
		exit(1);
	}
	return p;
}

/* A layer: dense weights with zeros where pruned, and its sparse form. */
struct layer {
	int64_t rows, cols;
	float *w, *bias;
	lt_sparse *sp;
	lt_node node;
};

static void layer_init(struct layer *l, int64_t rows, int64_t cols, const float *src, double keep,
		       uint64_t seed)
{
	size_t n = (size_t)(rows * cols);
	l->rows = rows;
	l->cols = cols;
	l->w = need(lt_alloc_aligned(n * sizeof(float)));
	l->bias = need(lt_alloc_aligned((size_t)rows * sizeof(float)));
	for (size_t i = 0; i < n; i++)
		l->w[i] = src ? src[i] : bench_fill(i + seed);
	if (src) {
		/* magnitude: keep the largest |w|, like lt_prune_tensor */
		float *mag = need(malloc(n * sizeof(float)));
		for (size_t i = 0; i < n; i++)
			mag[i] = fabsf(src[i]);
		qsort(mag, n, sizeof(float), cmp_float);
		size_t cut = (size_t)llround((1.0 - keep) * (double)n);
		float thr = cut < n ? mag[cut] : INFINITY;
		for (size_t i = 0; i < n; i++)
			if (fabsf(l->w[i]) < thr)
				l->w[i] = 0.0f;
		free(mag);
	} else {
		for (size_t i = 0; i < n; i++)
			if ((double)(hash(i ^ (seed << 32)) >> 11) / 9007199254740992.0 >= keep)
				l->w[i] = 0.0f;
	}
	for (int64_t r = 0; r < rows; r++)
		l->bias[r] = 0.01f * (float)(r % 7);
	lt_err err = {0};
	l->sp = lt_sparse_new(l->w, rows, cols, &err);
	if (!l->sp) {
		fprintf(stderr, "bench_sparse: %s\n", err.msg);
		exit(1);
	}
	l->node = (lt_node){.op = LT_OP_LINEAR, .in_features = cols, .out_features = rows};
}

static void layer_free(struct layer *l)
{
	lt_free(l->w);
	lt_free(l->bias);
	lt_sparse_free(l->sp);
}

/* What one timed call runs: a chain of linear layers on b samples, or the
 * conv matmul, dense or sparse. */
struct job {
	struct layer *l;
	int nl;
	int64_t b;             /* samples (linear) or columns n (matmul) */
	int matmul;
	int picked;            /* the sparse form only where lt_sparse_pays */
	const float *x;
	float *buf[MAX_LAYERS];
	float *scratch;
};

static int pays(const struct layer *l, int64_t b)
{
	return lt_sparse_pays(l->rows, l->cols, lt_sparse_nnz(l->sp), b);
}

static void run(const struct job *j, int sparse_form)
{
	const float *in = j->x;
	for (int i = 0; i < j->nl; i++) {
		const struct layer *l = &j->l[i];
		int sparse = sparse_form && (!j->picked || pays(l, j->b));
		if (j->matmul && sparse)
			lt_sparse_matmul(l->sp, in, j->b, NULL, j->buf[i], j->scratch);
		else if (j->matmul)
			lt_sgemm(0, 0, (int)l->rows, (int)j->b, (int)l->cols, 1.0f, l->w, (int)l->cols, in,
				 (int)j->b, 0.0f, j->buf[i], (int)j->b);
		else if (sparse)
			lt_sparse_linear(l->sp, in, l->bias, j->buf[i], j->b, j->scratch);
		else
			lt_layers_linear(&l->node, l->w, l->bias, in, j->buf[i], (int)j->b);
		in = j->buf[i];
	}
}

static double run_many(const struct job *j, int sparse, int inner)
{
	double t0 = lt_seconds();
	for (int k = 0; k < inner; k++)
		run(j, sparse);
	return (lt_seconds() - t0) / inner;
}

/* Largest difference between the dense and sparse outputs, relative to
 * the largest dense output. */
static double check(const struct job *j)
{
	const struct layer *last = &j->l[j->nl - 1];
	size_t n = (size_t)(last->rows * j->b);
	float *want = need(malloc(n * sizeof(float)));
	run(j, 0);
	memcpy(want, j->buf[j->nl - 1], n * sizeof(float));
	run(j, 1);
	double big = 0, diff = 0;
	for (size_t i = 0; i < n; i++) {
		big = fmax(big, fabs(want[i]));
		diff = fmax(diff, fabs(want[i] - j->buf[j->nl - 1][i]));
	}
	free(want);
	return big > 0 ? diff / big : diff;
}

/* Median seconds per call of the dense and the sparse form, alternating
 * REPS runs of each; *err gets the largest difference between their
 * outputs relative to the largest dense output. */
static void measure(struct job *j, int reps, double *dense_s, double *sparse_s, double *err)
{
	const struct layer *l = j->l;
	int64_t scratch = 0;
	for (int i = 0; i < j->nl; i++) {
		j->buf[i] = need(lt_alloc_aligned((size_t)(l[i].rows * j->b) * sizeof(float)));
		int64_t s = lt_sparse_scratch(l[i].sp, j->b);
		scratch = s > scratch ? s : scratch;
	}
	size_t nx = (size_t)(l[0].cols * j->b);
	float *x = need(lt_alloc_aligned(nx * sizeof(float)));
	for (size_t i = 0; i < nx; i++)
		x[i] = bench_fill(i * 7 + 3);
	j->x = x;
	j->scratch = scratch ? need(lt_alloc_aligned((size_t)scratch * sizeof(float))) : NULL;
	*err = check(j);
	/* enough calls per run to last about a millisecond */
	double one = fmax(run_many(j, 0, 1), run_many(j, 1, 1));
	int inner = one > 1e-3 ? 1 : (int)(1e-3 / fmax(one, 1e-8)) + 1;
	double *td = need(calloc((size_t)reps, sizeof *td)), *ts = need(calloc((size_t)reps, sizeof *ts));
	for (int r = 0; r < reps; r++) {
		int first = r % 2;
		ts[r] = first ? run_many(j, 1, inner) : 0;
		td[r] = run_many(j, 0, inner);
		if (!first)
			ts[r] = run_many(j, 1, inner);
	}
	qsort(td, (size_t)reps, sizeof *td, bench_cmp);
	qsort(ts, (size_t)reps, sizeof *ts, bench_cmp);
	*dense_s = td[reps / 2];
	*sparse_s = ts[reps / 2];
	for (int i = 0; i < j->nl; i++)
		lt_free(j->buf[i]);
	lt_free(x);
	lt_free(j->scratch);
	free(td);
	free(ts);
}

/* One layer (its sparse form whatever lt_sparse_pays says: "pays" shows
 * what that would be), or a chain of layers, each sparse only where
 * lt_sparse_pays says so ("pays" counts them), as a forward pass would. */
static void bench(const char *name, struct layer *l, int nl, int64_t b, int matmul, int reps)
{
	struct job j = {.l = l, .nl = nl, .b = b, .matmul = matmul, .picked = nl > 1};
	int64_t nnz = 0, dense = 0;
	int npays = 0;
	for (int i = 0; i < nl; i++) {
		nnz += lt_sparse_nnz(l[i].sp);
		dense += l[i].rows * l[i].cols;
		npays += pays(&l[i], b);
	}
	double d, s, err;
	measure(&j, reps, &d, &s, &err);
	printf("{\"bench\": \"sparse\", \"case\": \"%s\", \"op\": \"%s\", \"layers\": %d, "
	       "\"%s\": %lld, \"threads\": 1, \"density\": %.4f, \"nnz\": %lld, \"dense_s\": %.3e, "
	       "\"sparse_s\": %.3e, \"speedup\": %.2f, \"pays\": %d, \"max_rel_err\": %.1e}\n",
	       name, matmul ? "matmul" : "linear", nl, matmul ? "n" : "batch", (long long)b,
	       (double)nnz / (double)dense, (long long)nnz, d, s, d / s, npays, err);
	fflush(stdout);
}

/* The density where the sparse form stops paying for one shape and n:
 * speedups over a grid of densities, and the crossover interpolated
 * between the last density that paid and the first that did not. */
static void crossover(int64_t rows, int64_t cols, int64_t n, int matmul, int reps)
{
	static const double grid[] = {0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.7};
	enum { NGRID = sizeof grid / sizeof grid[0] };
	double speed[NGRID], cross = -1;
	int done = 0;
	for (int g = 0; g < NGRID; g++, done++) {
		struct layer l;
		layer_init(&l, rows, cols, NULL, grid[g], 5);
		struct job j = {.l = &l, .nl = 1, .b = n, .matmul = matmul};
		double d, s, err;
		measure(&j, reps, &d, &s, &err);
		speed[g] = d / s;
		layer_free(&l);
		if (cross < 0 && speed[g] < 1)
			cross = g == 0 ? 0
				       : grid[g - 1] + (grid[g] - grid[g - 1]) * (speed[g - 1] - 1) /
							      (speed[g - 1] - speed[g]);
		if (g > 0 && speed[g] < 1 && speed[g - 1] < 1) {
			done++;
			break; /* well past it */
		}
	}
	printf("{\"bench\": \"sparse_crossover\", \"op\": \"%s\", \"rows\": %lld, \"cols\": %lld, "
	       "\"n\": %lld, \"crossover\": %.3f, \"speedup\": {",
	       matmul ? "matmul" : "linear", (long long)rows, (long long)cols, (long long)n,
	       cross < 0 ? 1.0 : cross);
	for (int g = 0; g < done; g++)
		printf("%s\"%.2f\": %.2f", g ? ", " : "", grid[g], speed[g]);
	printf("}}\n");
	fflush(stdout);
}

static void crossovers(int reps)
{
	static const int64_t lin[][2] = {{300, 784}, {100, 300}, {10, 100}, {500, 800}, {10, 500},
					 {1024, 1024}};
	static const int64_t batches[] = {1, 2, 3, 4, 8, 32, 128, 1000};
	for (size_t i = 0; i < sizeof lin / sizeof lin[0]; i++)
		for (size_t k = 0; k < sizeof batches / sizeof batches[0]; k++)
			crossover(lin[i][0], lin[i][1], batches[k], 0, reps);
	/* im2col: lenet5 conv1 and conv2, a 3x3 layer with 64 channels */
	static const int64_t mm[][2] = {{20, 25}, {50, 500}, {64, 576}};
	static const int64_t ns[] = {64, 576, 4096};
	for (size_t i = 0; i < sizeof mm / sizeof mm[0]; i++)
		for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++)
			crossover(mm[i][0], mm[i][1], ns[k], 1, reps);
}

static const int64_t L300[4] = {784, 300, 100, 10};

/* lenet300 at the keep rates: each layer alone and the chain, at batch 1
 * and 1000. src holds the trained weights (NULL: random masks). */
static void lenet300(const char *name, const double *keep, const float *const *src, int reps)
{
	struct layer l[MAX_LAYERS];
	for (int i = 0; i < MAX_LAYERS; i++)
		layer_init(&l[i], L300[i + 1], L300[i], src ? src[i] : NULL, keep[i], (uint64_t)i + 1);
	static const int64_t batches[2] = {1, 1000};
	for (int k = 0; k < 2; k++) {
		char what[128];
		for (int i = 0; i < MAX_LAYERS; i++) {
			snprintf(what, sizeof what, "%s fc%d", name, i + 1);
			bench(what, &l[i], 1, batches[k], 0, reps);
		}
		bench(name, l, MAX_LAYERS, batches[k], 0, reps);
	}
	for (int i = 0; i < MAX_LAYERS; i++)
		layer_free(&l[i]);
}

int main(int argc, char **argv)
{
	lt_blas_autocore(argv);
	int sweep = argc > 1 && !strcmp(argv[1], "--crossover");
	if (sweep ? argc != 3 : argc != 2 && argc != 3) {
		fprintf(stderr, "usage: bench_sparse REPEATS [LENET300.safetensors]\n"
				"       bench_sparse --crossover REPEATS\n");
		return 2;
	}
	int reps = atoi(argv[1 + sweep]);
	if (reps < 1) {
		fprintf(stderr, "bench_sparse: REPEATS must be at least 1\n");
		return 2;
	}
	lt_blas_set_threads(1);
	if (sweep) {
		crossovers(reps);
		return 0;
	}
	static const double dc[MAX_LAYERS] = {0.08, 0.09, 0.26}, flat[MAX_LAYERS] = {0.08, 0.08, 0.08};
	lt_model *m = NULL;
	const float *src[MAX_LAYERS];
	if (argc == 3) {
		lt_err err = {0};
		m = lt_model_open(argv[2], &err);
		for (int i = 0; m && i < MAX_LAYERS; i++) {
			char key[32];
			snprintf(key, sizeof key, "fc%d.weight", i + 1);
			lt_tensor *t = lt_model_tensor(m, key);
			int fits = t && lt_tensor_numel(t) == L300[i] * L300[i + 1];
			src[i] = fits ? lt_tensor_data(t, &err) : NULL;
			if (!src[i]) {
				if (!fits)
					lt_err_set(&err, LT_EFORMAT, "no %s of [%lld, %lld]", key,
						   (long long)L300[i + 1], (long long)L300[i]);
				lt_model_unref(m);
				m = NULL;
			}
		}
		if (!m) {
			fprintf(stderr, "bench_sparse: %s: %s\n", argv[2], err.msg);
			return 1;
		}
	}
	lenet300("lenet300 dc", dc, NULL, reps);
	lenet300("lenet300 92%", flat, NULL, reps);
	if (m)
		lenet300("lenet300 dc magnitude", dc, src, reps);
	lt_model_unref(m);
	/* conv2 as im2col sees it: b images of 8x8 outputs; b = 8 is what a
	 * forward pass gives it at once, 128 a fine-tuning batch */
	struct layer conv2;
	layer_init(&conv2, 50, 500, NULL, 0.12, 9);
	static const int64_t imgs[] = {1, 8, 64, 128};
	for (size_t k = 0; k < sizeof imgs / sizeof imgs[0]; k++)
		bench("lenet5 conv2", &conv2, 1, imgs[k] * 64, 1, reps);
	layer_free(&conv2);
	return 0;
}
