#include "nn/forward.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#include "core/mem.h"
#include "kern/blas.h"
#include "nn/conv.h"
#include "nn/layers.h"
#include "nn/sparse.h"

/* Workspace per thread is sized for this many floats across all values: a
 * chunk is the batch a GEMM layer sees at once, wide enough to run near
 * full speed. */
#define CHUNK_FLOATS (1 << 22)
#define MAX_CHUNK 256
/* Per-sample nodes (see run_chunk) take this many samples per pass: enough
 * to fill Winograd's tile blocks, few enough that the activations one pass
 * writes are still in L2 when the next node reads them (lenet5's largest,
 * conv1's output, is 46 KB a sample; 16 samples measured ~15 % slower). */
#define PASS_SAMPLES 8

struct bound {             /* per-node parameters, f32 */
	const float *w, *b;
	float *bn_scale, *bn_shift; /* batchnorm folded to y = x*scale + shift */
	lt_conv *conv;              /* convolution plan */
	lt_sparse *sparse;          /* a pruned linear weight's non-zeros, when
				     * the sparse kernel beats the dense one
				     * for some batch (decided per call) */
	int64_t nnz;
};

struct worker {
	float **vals;          /* per value: chunk * numel floats (value 0 unused) */
	float *scratch;        /* convolution scratch, the largest plan's */
	float *sparse_scratch; /* the sparse kernels', the largest layer's */
	int64_t *nonzero;      /* per node, while counting activations */
	float *lo, *hi;        /* per node, while observing ranges */
};

struct lt_forward {
	lt_model *model;
	const lt_graph *g;
	int threads;
	int chunk;
	struct bound *bound;
	struct worker *work;
	float *act_threshold;  /* per node (0: none), replacing the graph's; or NULL */
	int counting;
	int64_t *seen;         /* per node: outputs produced while counting */
	int observing;         /* recording each node's output range */
	float *aq_scale;       /* per node: fake-quantize outputs (0: no), or NULL */
	int32_t *aq_zero;
	int32_t aq_qmin, aq_qmax;
	int solo;              /* this run is on the calling thread alone */
	struct assist *assist; /* the second core for one sample, once started */
	int assist_failed;
};

/* ---- a second core for one sample ------------------------------------------
 * A batch of one runs on the calling thread alone. For a large sparse
 * layer a helper thread computes half of the product. It polls for work
 * for a while after each job, since a sleep and wake-up would cost more
 * than the half it saves, then sleeps until the next one. */
#define ASSIST_MIN_NNZ 8192    /* below this the hand-over costs more than it saves */
#define ASSIST_POLLS 100000    /* about 50-100 us of polling before sleeping */
/* The calling thread's share: it starts first (the helper learns of the
 * job a cache-line transfer later), so it takes a little more. */
#define ASSIST_SPLIT 0.56

struct assist {
	pthread_t tid;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int sleeping;          /* atomic: the helper waits on cv (set under mu) */
	int quit;              /* atomic, set under mu */
	uint64_t seq, done;    /* atomic: jobs posted, jobs finished */
	uint64_t claimed;      /* atomic: the last job whose second share was taken */
	const lt_sparse *s;    /* the job, written before seq */
	const float *x, *bias;
	float *y;
};

static void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static void *assist_main(void *arg)
{
	struct assist *a = arg;
	uint64_t seen = 0;
	for (;;) {
		uint64_t seq;
		for (long i = 0; (seq = __atomic_load_n(&a->seq, __ATOMIC_ACQUIRE)) == seen && i < ASSIST_POLLS; i++)
			relax();
		if (seq == seen) {
			pthread_mutex_lock(&a->mu);
			__atomic_store_n(&a->sleeping, 1, __ATOMIC_SEQ_CST);
			while ((seq = __atomic_load_n(&a->seq, __ATOMIC_SEQ_CST)) == seen &&
			       !__atomic_load_n(&a->quit, __ATOMIC_ACQUIRE))
				pthread_cond_wait(&a->cv, &a->mu);
			__atomic_store_n(&a->sleeping, 0, __ATOMIC_SEQ_CST);
			pthread_mutex_unlock(&a->mu);
		}
		if (__atomic_load_n(&a->quit, __ATOMIC_ACQUIRE))
			return NULL;
		seen = seq;
		/* the caller may have taken the share itself (we were late) */
		uint64_t was = seq - 1;
		if (!__atomic_compare_exchange_n(&a->claimed, &was, seq, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			continue;
		lt_sparse_linear1_share(a->s, a->x, a->bias, a->y, ASSIST_SPLIT, 1);
		__atomic_store_n(&a->done, seq, __ATOMIC_RELEASE);
	}
}

static struct assist *assist_start(lt_forward *f)
{
	if (f->assist || f->assist_failed)
		return f->assist;
	struct assist *a = lt_calloc(1, sizeof *a);
	if (a && !pthread_mutex_init(&a->mu, NULL)) {
		if (!pthread_cond_init(&a->cv, NULL)) {
			if (!pthread_create(&a->tid, NULL, assist_main, a))
				return f->assist = a;
			pthread_cond_destroy(&a->cv);
		}
		pthread_mutex_destroy(&a->mu);
	}
	lt_free(a);
	f->assist_failed = 1; /* one core it is */
	return NULL;
}

static void assist_stop(struct assist *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->mu);
	__atomic_store_n(&a->quit, 1, __ATOMIC_RELEASE);
	__atomic_store_n(&a->seq, a->seq + 1, __ATOMIC_RELEASE);
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
	pthread_join(a->tid, NULL);
	pthread_cond_destroy(&a->cv);
	pthread_mutex_destroy(&a->mu);
	lt_free(a);
}

/* y = x A^T + bias for one sample, half on each core. */
static void linear_pair(struct assist *a, const lt_sparse *s, const float *x, const float *bias, float *y)
{
	a->s = s, a->x = x, a->bias = bias, a->y = y;
	uint64_t seq = a->seq + 1; /* only this thread posts */
	/* sequentially consistent with the helper's store of sleeping and its
	 * load of seq: one of the two sees the other, so no wake-up is lost */
	__atomic_store_n(&a->seq, seq, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&a->sleeping, __ATOMIC_SEQ_CST)) {
		pthread_mutex_lock(&a->mu);
		pthread_cond_signal(&a->cv);
		pthread_mutex_unlock(&a->mu);
	}
	lt_sparse_linear1_share(s, x, bias, y, 0, ASSIST_SPLIT);
	/* If the helper has not started (descheduled: another process holds
	 * the other core), take its share rather than wait for it. */
	uint64_t was = seq - 1;
	if (__atomic_compare_exchange_n(&a->claimed, &was, seq, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		lt_sparse_linear1_share(s, x, bias, y, ASSIST_SPLIT, 1);
		return;
	}
	while (__atomic_load_n(&a->done, __ATOMIC_ACQUIRE) != seq)
		relax();
}

static int bind_params(lt_forward *f, lt_err *err)
{
	const lt_graph *g = f->g;
	for (int i = 0; i < g->n_nodes; i++) {
		const lt_node *n = &g->nodes[i];
		struct bound *b = &f->bound[i];
		const float *p[LT_NODE_MAX_PARAMS] = {0};
		for (int s = 0; s < LT_NODE_MAX_PARAMS; s++) {
			if (!n->params[s])
				continue;
			lt_tensor *t = lt_model_tensor(f->model, n->params[s]);
			if (!t)
				return lt_err_set(err, LT_EFORMAT, "missing tensor '%s'", n->params[s]);
			if (!(p[s] = lt_tensor_data(t, err)))
				return err ? err->code : LT_ENOMEM;
		}
		b->w = p[LT_P_WEIGHT];
		b->b = p[LT_P_BIAS];
		if (n->op == LT_OP_LINEAR) {
			int64_t rows = n->out_features, cols = n->in_features;
			lt_tensor *wt = lt_model_tensor(f->model, n->params[LT_P_WEIGHT]);
			b->nnz = rows * cols - lt_tensor_count_zeros(wt);
			if ((lt_sparse_pays(rows, cols, b->nnz, 1) || lt_sparse_pays(rows, cols, b->nnz, MAX_CHUNK)) &&
			    !(b->sparse = lt_sparse_new(b->w, rows, cols, err)))
				return err ? err->code : LT_ENOMEM;
		}
		if (n->op == LT_OP_CONV2D &&
		    !(b->conv = lt_conv_new(n, lt_graph_value_shape(g, n->inputs[0]), b->w, b->b,
					    LT_CONV_AUTO, err)))
			return err ? err->code : LT_ENOMEM;
		if (n->op == LT_OP_BATCHNORM1D || n->op == LT_OP_BATCHNORM2D) {
			int64_t c = n->in_features;
			b->bn_scale = lt_malloc_array((size_t)c * 2, sizeof(float));
			if (!b->bn_scale)
				return lt_err_set(err, LT_ENOMEM, "out of memory");
			b->bn_shift = b->bn_scale + c;
			for (int64_t k = 0; k < c; k++) {
				float sc = p[LT_P_WEIGHT][k] / sqrtf(p[LT_P_VAR][k] + n->eps);
				b->bn_scale[k] = sc;
				b->bn_shift[k] = p[LT_P_BIAS][k] - p[LT_P_MEAN][k] * sc;
			}
		}
	}
	return 0;
}

static int alloc_worker(lt_forward *f, struct worker *w, lt_err *err)
{
	const lt_graph *g = f->g;
	int64_t scratch = 0;
	w->vals = lt_calloc((size_t)g->n_nodes + 1, sizeof *w->vals);
	if (!w->vals)
		return lt_err_set(err, LT_ENOMEM, "out of memory");
	int64_t sparse_scratch = 0;
	for (int i = 0; i < g->n_nodes; i++) {
		const lt_node *n = &g->nodes[i];
		if (f->bound[i].sparse) {
			int64_t need = lt_sparse_scratch(f->bound[i].sparse, f->chunk);
			sparse_scratch = need > sparse_scratch ? need : sparse_scratch;
		}
		if (lt_op_is_identity(n->op))
			continue;
		w->vals[i + 1] = lt_alloc_uninit((size_t)(f->chunk * n->out_numel) * sizeof(float));
		if (!w->vals[i + 1])
			return lt_err_set(err, LT_ENOMEM, "out of memory for activations");
		if (f->bound[i].conv) {
			int64_t c = lt_conv_scratch(f->bound[i].conv, f->chunk);
			scratch = c > scratch ? c : scratch;
		}
	}
	if (scratch && !(w->scratch = lt_alloc_uninit((size_t)scratch * sizeof(float))))
		return lt_err_set(err, LT_ENOMEM, "out of memory for convolution scratch");
	if (sparse_scratch && !(w->sparse_scratch = lt_alloc_uninit((size_t)sparse_scratch * sizeof(float))))
		return lt_err_set(err, LT_ENOMEM, "out of memory for sparse scratch");
	return 0;
}

static void free_worker(const lt_graph *g, struct worker *w)
{
	if (w->vals)
		for (int i = 0; i <= g->n_nodes; i++)
			lt_free(w->vals[i]);
	lt_free(w->vals);
	lt_free(w->scratch);
	lt_free(w->sparse_scratch);
	lt_free(w->nonzero);
	lt_free(w->lo);
}

void lt_forward_free(lt_forward *f)
{
	if (!f)
		return;
	if (f->bound)
		for (int i = 0; i < f->g->n_nodes; i++) {
			lt_free(f->bound[i].bn_scale);
			lt_conv_free(f->bound[i].conv);
			lt_sparse_free(f->bound[i].sparse);
		}
	if (f->work)
		for (int t = 0; t < f->threads; t++)
			free_worker(f->g, &f->work[t]);
	assist_stop(f->assist);
	lt_free(f->bound);
	lt_free(f->work);
	lt_free(f->act_threshold);
	lt_free(f->seen);
	lt_free(f->aq_scale);
	lt_model_unref(f->model);
	lt_free(f);
}

int lt_forward_set_act_threshold(lt_forward *f, const float *threshold, lt_err *err)
{
	int n = f->g->n_nodes;
	lt_free(f->act_threshold);
	f->act_threshold = NULL;
	if (!threshold)
		return 0;
	for (int i = 0; i < n; i++) {
		int rc = lt_graph_check_act_threshold(f->g, i, threshold[i], err);
		if (rc)
			return rc;
	}
	if (!(f->act_threshold = lt_malloc_array((size_t)n, sizeof *f->act_threshold)))
		return lt_err_set(err, LT_ENOMEM, "out of memory");
	memcpy(f->act_threshold, threshold, (size_t)n * sizeof *threshold);
	return 0;
}

int lt_forward_count_activations(lt_forward *f, lt_err *err)
{
	int n = f->g->n_nodes;
	if (!f->seen && !(f->seen = lt_calloc((size_t)n, sizeof *f->seen)))
		return lt_err_set(err, LT_ENOMEM, "out of memory");
	for (int t = 0; t < f->threads; t++)
		if (!f->work[t].nonzero && !(f->work[t].nonzero = lt_calloc((size_t)n, sizeof(int64_t))))
			return lt_err_set(err, LT_ENOMEM, "out of memory");
	f->counting = 1;
	return 0;
}

int lt_forward_observe_ranges(lt_forward *f, lt_err *err)
{
	int n = f->g->n_nodes;
	for (int t = 0; t < f->threads; t++) {
		struct worker *w = &f->work[t];
		if (!w->lo && !(w->lo = lt_malloc_array((size_t)n * 2, sizeof *w->lo)))
			return lt_err_set(err, LT_ENOMEM, "out of memory");
		w->hi = w->lo + n;
		for (int i = 0; i < n; i++) {
			w->lo[i] = INFINITY;
			w->hi[i] = -INFINITY;
		}
	}
	f->observing = 1;
	return 0;
}

void lt_forward_ranges(const lt_forward *f, float *lo, float *hi)
{
	for (int i = 0; i < f->g->n_nodes; i++) {
		lo[i] = INFINITY;
		hi[i] = -INFINITY;
		for (int t = 0; f->observing && t < f->threads; t++) {
			lo[i] = f->work[t].lo[i] < lo[i] ? f->work[t].lo[i] : lo[i];
			hi[i] = f->work[t].hi[i] > hi[i] ? f->work[t].hi[i] : hi[i];
		}
	}
}

int lt_forward_set_act_quant(lt_forward *f, const float *scale, const int32_t *zero_point, int32_t qmin,
			     int32_t qmax, lt_err *err)
{
	int n = f->g->n_nodes;
	lt_free(f->aq_scale);
	f->aq_scale = NULL;
	if (!scale)
		return 0;
	if (qmin >= qmax)
		return lt_err_set(err, LT_EINVAL, "activation levels %d..%d are empty", (int)qmin, (int)qmax);
	for (int i = 0; i < n; i++) {
		if (!(scale[i] >= 0 && scale[i] < INFINITY))
			return lt_err_set(err, LT_EINVAL, "activation scale of layer '%s' must be 0 (none) or positive",
					  f->g->nodes[i].name);
		if (scale[i] > 0 && lt_op_is_identity(f->g->nodes[i].op))
			return lt_err_set(err, LT_EINVAL, "layer '%s' (%s) passes its input through; quantize the "
					  "layer before it", f->g->nodes[i].name, lt_op_name(f->g->nodes[i].op));
	}
	if (!(f->aq_scale = lt_malloc_array((size_t)n, sizeof *f->aq_scale + sizeof *f->aq_zero)))
		return lt_err_set(err, LT_ENOMEM, "out of memory");
	f->aq_zero = (int32_t *)(f->aq_scale + n);
	memcpy(f->aq_scale, scale, (size_t)n * sizeof *scale);
	memcpy(f->aq_zero, zero_point, (size_t)n * sizeof *zero_point);
	f->aq_qmin = qmin;
	f->aq_qmax = qmax;
	return 0;
}

void lt_forward_activation_counts(const lt_forward *f, int64_t *nonzero, int64_t *total)
{
	for (int i = 0; i < f->g->n_nodes; i++) {
		nonzero[i] = 0;
		total[i] = f->counting ? f->seen[i] : 0;
		for (int t = 0; f->counting && t < f->threads; t++)
			nonzero[i] += f->work[t].nonzero[i];
	}
}

lt_forward *lt_forward_new(lt_model *m, int threads, lt_err *err)
{
	const lt_graph *g = lt_model_graph(m);
	if (!g) {
		lt_err_set(err, LT_ENOTSUP, "the model has no graph (weights-only file): nothing to evaluate");
		return NULL;
	}
	lt_forward *f = lt_calloc(1, sizeof *f);
	if (!f) {
		lt_err_set(err, LT_ENOMEM, "out of memory");
		return NULL;
	}
	f->model = lt_model_ref(m);
	f->g = g;
	f->threads = threads > 0 ? threads : lt_cpu_count();
	f->bound = lt_calloc((size_t)g->n_nodes, sizeof *f->bound);
	f->work = lt_calloc((size_t)f->threads, sizeof *f->work);
	if (!f->bound || !f->work) {
		lt_err_set(err, LT_ENOMEM, "out of memory");
		goto fail;
	}
	if (bind_params(f, err))
		goto fail;
	/* im2col's scratch grows with the chunk, the other methods' is fixed;
	 * both are charged per sample as at the largest chunk. */
	int64_t per_sample = g->in_numel, scratch = 0;
	for (int i = 0; i < g->n_nodes; i++) {
		per_sample += g->nodes[i].out_numel;
		if (f->bound[i].conv) {
			int64_t c = (lt_conv_scratch(f->bound[i].conv, MAX_CHUNK) + MAX_CHUNK - 1) / MAX_CHUNK;
			scratch = c > scratch ? c : scratch;
		}
	}
	int64_t chunk = CHUNK_FLOATS / (per_sample + scratch);
	f->chunk = chunk < 1 ? 1 : chunk > MAX_CHUNK ? MAX_CHUNK : (int)chunk;
	for (int t = 0; t < f->threads; t++)
		if (alloc_worker(f, &f->work[t], err))
			goto fail;
	return f;
fail:
	lt_forward_free(f);
	return NULL;
}

int lt_forward_sparse_layers(const lt_forward *f)
{
	int n = 0;
	for (int i = 0; i < f->g->n_nodes; i++)
		n += f->bound[i].sparse != NULL;
	return n;
}

int64_t lt_forward_in_numel(const lt_forward *f) { return f->g->in_numel; }
int64_t lt_forward_out_numel(const lt_forward *f) { return lt_graph_out_numel(f->g); }

int lt_forward_outputs_probs(const lt_forward *f)
{
	return f->g->nodes[f->g->n_nodes - 1].op == LT_OP_SOFTMAX;
}

/* Node i on samples [s0, s0 + b) of a chunk whose values start at val. */
static void run_node(lt_forward *f, struct worker *w, int i, float **val, int s0, int b)
{
	const lt_graph *g = f->g;
	const lt_node *n = &g->nodes[i];
	int v = n->inputs[0];
	const int64_t *shape = lt_graph_value_shape(g, v);
	const float *in = val[v] + s0 * lt_graph_value_numel(g, v);
	float *y = val[i + 1] + s0 * n->out_numel;
	int64_t numel = (int64_t)b * n->out_numel;
	switch (n->op) {
	case LT_OP_LINEAR: {
		const struct bound *bd = &f->bound[i];
		struct assist *a = NULL;
		if (bd->sparse && b == 1 && f->solo && f->threads > 1 && bd->nnz >= ASSIST_MIN_NNZ &&
		    lt_sparse_pays(n->out_features, n->in_features, bd->nnz, 1) && (a = assist_start(f)))
			linear_pair(a, bd->sparse, in, bd->b, y);
		else
			lt_layers_linear_pruned(n, bd->w, bd->sparse, bd->nnz, bd->b, in, y, b, w->sparse_scratch);
		break;
	}
	case LT_OP_CONV2D: lt_conv_run(f->bound[i].conv, in, y, b, w->scratch); break;
	case LT_OP_MAXPOOL2D:
	case LT_OP_AVGPOOL2D: lt_layers_pool(n, shape, in, y, b); break;
	case LT_OP_RELU:
	case LT_OP_TANH:
	case LT_OP_SIGMOID: lt_layers_activation(n->op, in, y, numel); break;
	case LT_OP_SOFTMAX: lt_layers_softmax(in, y, n->out_numel, b); break;
	case LT_OP_BATCHNORM1D:
	case LT_OP_BATCHNORM2D:
		lt_layers_affine(f->bound[i].bn_scale, f->bound[i].bn_shift, shape,
				 lt_graph_value_ndim(g, v), in, y, b);
		break;
	case LT_OP_FLATTEN:
	case LT_OP_DROPOUT: /* identity at inference: shares its input unless it is the output */
		if (y != in)
			memcpy(y, in, (size_t)numel * sizeof(float));
		break;
	default:
		break;
	}
	/* Activation sparsity: small outputs become exact zeros; counted. */
	float thr = f->act_threshold ? f->act_threshold[i] : n->act_threshold;
	if (thr > 0)
		lt_layers_threshold(y, numel, thr);
	if (f->aq_scale && f->aq_scale[i] > 0)
		lt_layers_fake_quant(y, numel, f->aq_scale[i], f->aq_zero[i], f->aq_qmin, f->aq_qmax);
	if (f->observing)
		lt_layers_range(y, numel, &w->lo[i], &w->hi[i]);
	if (f->counting) {
		int64_t nz = 0;
		for (int64_t k = 0; k < numel; k++)
			nz += y[k] != 0.0f;
		w->nonzero[i] += nz;
		__atomic_add_fetch(&f->seen[i], numel, __ATOMIC_RELAXED);
	}
}

/* Nodes whose cost does not grow with the batch they see: everything but
 * GEMMs, which want many samples at once to run at full speed. */
static int works_per_sample(const lt_forward *f, int i)
{
	const lt_node *n = &f->g->nodes[i];
	if (n->op == LT_OP_LINEAR)
		return 0;
	return n->op != LT_OP_CONV2D || lt_conv_method_of(f->bound[i].conv) != LT_CONV_IM2COL;
}

/* Run nodes [first, last) on b samples whose value `first` starts at x;
 * value `last` goes to out. A run of per-sample nodes goes through the
 * chunk a few samples at a time, so each activation is read back while it
 * is still in cache; GEMM nodes take the whole chunk. */
static void run_chunk(lt_forward *f, struct worker *w, int first, int last, const float *x,
		      float *out, int b)
{
	const lt_graph *g = f->g;
	float *val[g->n_nodes + 1];
	val[first] = (float *)x;
	if (first == last)
		memcpy(out, x, (size_t)b * (size_t)lt_graph_value_numel(g, first) * sizeof(float));
	for (int i = first; i < last; i++)
		val[i + 1] = i == last - 1 ? out : lt_op_is_identity(g->nodes[i].op) ? val[g->nodes[i].inputs[0]]
									 : w->vals[i + 1];
	for (int i = first; i < last;) {
		int j = i + 1, step = b;
		if (works_per_sample(f, i)) {
			while (j < last && works_per_sample(f, j))
				j++;
			step = PASS_SAMPLES;
		}
		for (int s0 = 0; s0 < b; s0 += step)
			for (int k = i; k < j; k++)
				run_node(f, w, k, val, s0, b - s0 < step ? b - s0 : step);
		i = j;
	}
}

struct span {
	lt_forward *f;
	struct worker *w;
	int first, last;
	const float *x;
	float *out;
	int64_t n;
};

static void *run_span(void *arg)
{
	struct span *s = arg;
	int64_t in = lt_graph_value_numel(s->f->g, s->first), on = lt_graph_value_numel(s->f->g, s->last);
	for (int64_t done = 0; done < s->n; done += s->f->chunk) {
		int b = (int)(s->n - done < s->f->chunk ? s->n - done : s->f->chunk);
		run_chunk(s->f, s->w, s->first, s->last, s->x + done * in, s->out + done * on, b);
	}
	return NULL;
}

int lt_forward_run(lt_forward *f, const float *x, int64_t n, float *out, lt_err *err)
{
	return lt_forward_run_range(f, 0, f->g->n_nodes, x, n, out, err);
}

int lt_forward_run_range(lt_forward *f, int first, int last, const float *x, int64_t n,
			 float *out, lt_err *err)
{
	if (first < 0 || last > f->g->n_nodes || first > last || !lt_graph_is_cut(f->g, first))
		return lt_err_set(err, LT_EINVAL, "cannot run nodes %d..%d on their own", first, last);
	if (n <= 0)
		return 0;
	/* Split by sample; a thread gets at least one chunk so small batches
	 * (batch 1 latency) skip thread start-up entirely. */
	int64_t want = (n + f->chunk - 1) / f->chunk;
	int T = want < f->threads ? (int)want : f->threads;
	struct span spans[T];
	pthread_t tid[T];
	int started = 0;
	int64_t in = lt_graph_value_numel(f->g, first), on = lt_graph_value_numel(f->g, last);
	/* Our threads split the batch, so each GEMM runs on one core. Setting
	 * this is not free (OpenBLAS re-plans its pool), so only when needed. */
	if (lt_blas_threads() != 1)
		lt_blas_set_threads(1);
	f->solo = T == 1;
	for (int t = 0; t < T; t++) {
		int64_t lo = n * t / T, hi = n * (t + 1) / T;
		spans[t] = (struct span){f, &f->work[t], first, last, x + lo * in, out + lo * on, hi - lo};
	}
	for (int t = 1; t < T; t++) {
		if (pthread_create(&tid[t], NULL, run_span, &spans[t]) != 0)
			break;
		started = t;
	}
	/* Spans whose thread could not start run here, after our own. */
	run_span(&spans[0]);
	for (int t = started + 1; t < T; t++)
		run_span(&spans[t]);
	for (int t = 1; t <= started; t++)
		pthread_join(tid[t], NULL);
	return 0;
}
