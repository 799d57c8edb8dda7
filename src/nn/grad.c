#include "nn/grad.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "core/mem.h"
#include "core/rng.h"
#include "kern/blas.h"
#include "nn/layers.h"
#include "nn/sparse.h"

struct param {
	const char *name;   /* borrowed from the graph */
	int64_t size;
	float *w;           /* the model tensor's own f32 storage */
	float *grad;        /* summed over threads */
	const float *mask;  /* or NULL */
};

/* Per node: indices into params (-1 = none) and batch-norm state. */
struct bind {
	int w, b;
	float *run_mean, *run_var;   /* batch norm running statistics */
	/* A masked linear weight sparse enough that its forward product runs
	 * through the sparse kernel: the mask's positions, values refreshed
	 * from the weight before every step (backward stays dense). */
	lt_sparse *sparse;
	int64_t nnz;
};

struct worker {
	struct lt_grad *g;
	float **val, **dval;   /* per value: max_b * numel */
	float **cols;          /* per conv node: im2col kept for backward */
	float *gemm, *dcols;   /* conv scratch */
	float *sparse_scratch;  /* the sparse kernel's, the largest layer's */
	float **pgrad;         /* per param: this thread's gradient */
	float **bn_mean, **bn_istd; /* per batch-norm node: C values */
	/* the current slice */
	const float *x;
	const uint8_t *labels;
	int64_t first, n, total;
	uint64_t seed;
	double loss;
	int64_t correct;
};

struct lt_grad {
	lt_model *model;
	const lt_graph *gr;
	int threads, max_b, max_batch, want_dx;
	int nparams;
	struct param *params;
	struct bind *bind;
	struct worker *work;
	float *dx;             /* dloss/dinput, max_batch * in_numel, when wanted */
};

static int is_bn(lt_op op)
{
	return op == LT_OP_BATCHNORM1D || op == LT_OP_BATCHNORM2D;
}

static int64_t conv_k(const lt_graph *gr, const lt_node *n)
{
	return lt_graph_value_shape(gr, n->inputs[0])[0] * n->kernel[0] * n->kernel[1];
}

static int64_t conv_ohw(const lt_node *n)
{
	return n->out_shape[1] * n->out_shape[2];
}

static int add_param(lt_grad *g, const char *name, int *slot, lt_err *err)
{
	lt_tensor *t = lt_model_tensor(g->model, name);
	if (!t)
		return lt_err_set(err, LT_EFORMAT, "missing tensor '%s'", name);
	float *w = lt_tensor_data_mut(t, err);
	if (!w)
		return err ? err->code : LT_ENOMEM;
	struct param *p = &g->params[g->nparams];
	p->name = name;
	p->size = lt_tensor_numel(t);
	p->w = w;
	if (!(p->grad = lt_alloc_aligned((size_t)p->size * sizeof(float))))
		return lt_err_set(err, LT_ENOMEM, "out of memory for gradients");
	lt_tensor *mask = lt_tensor_mask(t);
	if (mask && !(p->mask = lt_tensor_data(mask, err)))
		return err ? err->code : LT_ENOMEM;
	*slot = g->nparams++;
	return 0;
}

static float *mutable_tensor(lt_grad *g, const char *name, lt_err *err)
{
	lt_tensor *t = lt_model_tensor(g->model, name);
	if (!t) {
		lt_err_set(err, LT_EFORMAT, "missing tensor '%s'", name);
		return NULL;
	}
	return lt_tensor_data_mut(t, err);
}

static int alloc_worker(lt_grad *g, struct worker *w, lt_err *err)
{
	const lt_graph *gr = g->gr;
	int nv = gr->n_nodes + 1;
	w->g = g;
	w->val = lt_calloc((size_t)nv, sizeof *w->val);
	w->dval = lt_calloc((size_t)nv, sizeof *w->dval);
	w->cols = lt_calloc((size_t)nv, sizeof *w->cols);
	w->bn_mean = lt_calloc((size_t)nv, sizeof *w->bn_mean);
	w->bn_istd = lt_calloc((size_t)nv, sizeof *w->bn_istd);
	w->pgrad = lt_calloc((size_t)g->nparams + 1, sizeof *w->pgrad);
	if (!w->val || !w->dval || !w->cols || !w->bn_mean || !w->bn_istd || !w->pgrad)
		return lt_err_set(err, LT_ENOMEM, "out of memory");
	size_t b = (size_t)g->max_b;
	int64_t gemm = 0, dcols = 0;
	for (int i = 0; i < gr->n_nodes; i++) {
		const lt_node *n = &gr->nodes[i];
		size_t numel = (size_t)n->out_numel;
		w->val[i + 1] = lt_alloc_aligned(b * numel * sizeof(float));
		w->dval[i + 1] = lt_alloc_aligned(b * numel * sizeof(float));
		if (!w->val[i + 1] || !w->dval[i + 1])
			return lt_err_set(err, LT_ENOMEM, "out of memory for activations");
		if (n->op == LT_OP_CONV2D) {
			int64_t kn = conv_k(gr, n) * conv_ohw(n);
			if (!(w->cols[i] = lt_alloc_aligned(b * (size_t)kn * sizeof(float))))
				return lt_err_set(err, LT_ENOMEM, "out of memory for convolution columns");
			dcols = kn > dcols ? kn : dcols;
			gemm = n->out_numel > gemm ? n->out_numel : gemm;
		}
		if (is_bn(n->op)) {
			w->bn_mean[i] = lt_alloc_aligned((size_t)n->in_features * sizeof(float));
			w->bn_istd[i] = lt_alloc_aligned((size_t)n->in_features * sizeof(float));
			if (!w->bn_mean[i] || !w->bn_istd[i])
				return lt_err_set(err, LT_ENOMEM, "out of memory");
		}
	}
	if (gemm && (!(w->gemm = lt_alloc_aligned(b * (size_t)gemm * sizeof(float))) ||
		     !(w->dcols = lt_alloc_aligned(b * (size_t)dcols * sizeof(float)))))
		return lt_err_set(err, LT_ENOMEM, "out of memory for convolution scratch");
	int64_t sparse = 0;
	for (int i = 0; i < gr->n_nodes; i++)
		if (g->bind[i].sparse) {
			int64_t need = lt_sparse_scratch(g->bind[i].sparse, g->max_b);
			sparse = need > sparse ? need : sparse;
		}
	if (sparse && !(w->sparse_scratch = lt_alloc_uninit((size_t)sparse * sizeof(float))))
		return lt_err_set(err, LT_ENOMEM, "out of memory for sparse scratch");
	for (int p = 0; p < g->nparams; p++) {
		/* thread 0 sums straight into the shared gradient */
		w->pgrad[p] = w == &g->work[0] ? g->params[p].grad
			      : lt_alloc_aligned((size_t)g->params[p].size * sizeof(float));
		if (!w->pgrad[p])
			return lt_err_set(err, LT_ENOMEM, "out of memory for gradients");
	}
	return 0;
}

static void free_worker(lt_grad *g, struct worker *w)
{
	int nv = g->gr->n_nodes + 1;
	for (int i = 0; i < nv; i++) {
		/* value 0 borrows the input and the engine's dx buffer */
		if (w->val && i > 0)
			lt_free(w->val[i]);
		if (w->dval && i > 0)
			lt_free(w->dval[i]);
		if (w->cols)
			lt_free(w->cols[i]);
		if (w->bn_mean)
			lt_free(w->bn_mean[i]);
		if (w->bn_istd)
			lt_free(w->bn_istd[i]);
	}
	if (w->pgrad && w != &g->work[0])
		for (int p = 0; p < g->nparams; p++)
			lt_free(w->pgrad[p]);
	lt_free(w->val);
	lt_free(w->dval);
	lt_free(w->cols);
	lt_free(w->bn_mean);
	lt_free(w->bn_istd);
	lt_free(w->pgrad);
	lt_free(w->gemm);
	lt_free(w->dcols);
	lt_free(w->sparse_scratch);
}

void lt_grad_free(lt_grad *g)
{
	if (!g)
		return;
	if (g->work)
		for (int t = 0; t < g->threads; t++)
			free_worker(g, &g->work[t]);
	if (g->params)
		for (int p = 0; p < g->nparams; p++)
			lt_free(g->params[p].grad);
	if (g->bind)
		for (int i = 0; i < g->gr->n_nodes; i++)
			lt_sparse_free(g->bind[i].sparse);
	lt_free(g->work);
	lt_free(g->params);
	lt_free(g->bind);
	lt_free(g->dx);
	lt_model_unref(g->model);
	lt_free(g);
}

lt_grad *lt_grad_new(lt_model *m, int threads, int max_batch, lt_err *err)
{
	const lt_graph *gr = lt_model_graph(m);
	if (!gr) {
		lt_err_set(err, LT_ENOTSUP, "the model has no graph (weights-only file): nothing to train");
		return NULL;
	}
	if (max_batch < 1) {
		lt_err_set(err, LT_EINVAL, "batch size must be at least 1");
		return NULL;
	}
	lt_grad *g = lt_calloc(1, sizeof *g);
	if (!g) {
		lt_err_set(err, LT_ENOMEM, "out of memory");
		return NULL;
	}
	g->model = lt_model_ref(m);
	g->gr = gr;
	g->threads = threads > 0 ? threads : lt_cpu_count();
	for (int i = 0; i < gr->n_nodes; i++)
		if (is_bn(gr->nodes[i].op))
			g->threads = 1; /* batch statistics span the whole minibatch */
	if (g->threads > max_batch)
		g->threads = max_batch;
	g->max_batch = max_batch;
	g->max_b = (max_batch + g->threads - 1) / g->threads;
	g->params = lt_calloc((size_t)gr->n_nodes * 2 + 1, sizeof *g->params);
	g->bind = lt_calloc((size_t)gr->n_nodes, sizeof *g->bind);
	g->work = lt_calloc((size_t)g->threads, sizeof *g->work);
	g->dx = lt_alloc_aligned((size_t)max_batch * (size_t)gr->in_numel * sizeof(float));
	if (!g->params || !g->bind || !g->work || !g->dx) {
		lt_err_set(err, LT_ENOMEM, "out of memory");
		goto fail;
	}
	for (int i = 0; i < gr->n_nodes; i++) {
		const lt_node *n = &gr->nodes[i];
		struct bind *b = &g->bind[i];
		b->w = b->b = -1;
		if (n->params[LT_P_WEIGHT] && add_param(g, n->params[LT_P_WEIGHT], &b->w, err))
			goto fail;
		if (n->params[LT_P_BIAS] && add_param(g, n->params[LT_P_BIAS], &b->b, err))
			goto fail;
		if (is_bn(n->op) && (!(b->run_mean = mutable_tensor(g, n->params[LT_P_MEAN], err)) ||
				     !(b->run_var = mutable_tensor(g, n->params[LT_P_VAR], err))))
			goto fail;
		const float *mask = n->op == LT_OP_LINEAR && b->w >= 0 ? g->params[b->w].mask : NULL;
		if (mask) {
			int64_t rows = n->out_features, cols = n->in_features;
			for (int64_t k = 0; k < rows * cols; k++)
				b->nnz += mask[k] != 0.0f;
			/* built from the mask (ones where kept) so the positions stay
			 * those of the mask, whatever the values do */
			if (lt_sparse_pays(rows, cols, b->nnz, g->max_b) &&
			    !(b->sparse = lt_sparse_new(mask, rows, cols, err)))
				goto fail;
		}
	}
	for (int t = 0; t < g->threads; t++)
		if (alloc_worker(g, &g->work[t], err))
			goto fail;
	return g;
fail:
	lt_grad_free(g);
	return NULL;
}

int lt_grad_sparse_layers(const lt_grad *g)
{
	int n = 0;
	for (int i = 0; i < g->gr->n_nodes; i++)
		n += g->bind[i].sparse != NULL;
	return n;
}

int lt_grad_min_batch(const lt_grad *g)
{
	/* A batch norm whose channels hold one value per sample (batchnorm1d
	 * on [C]) has no variance over a single sample; PyTorch refuses it too. */
	for (int i = 0; i < g->gr->n_nodes; i++) {
		const lt_node *n = &g->gr->nodes[i];
		if (is_bn(n->op) && n->out_numel == n->in_features)
			return 2;
	}
	return 1;
}

void lt_grad_want_input_grad(lt_grad *g, int on) { g->want_dx = on; }
const float *lt_grad_input_grad(const lt_grad *g) { return g->want_dx ? g->dx : NULL; }
int lt_grad_nparams(const lt_grad *g) { return g->nparams; }
const char *lt_grad_param_name(const lt_grad *g, int i) { return g->params[i].name; }
int64_t lt_grad_param_size(const lt_grad *g, int i) { return g->params[i].size; }
float *lt_grad_param_value(const lt_grad *g, int i) { return g->params[i].w; }
float *lt_grad_param_grad(const lt_grad *g, int i) { return g->params[i].grad; }
const float *lt_grad_param_mask(const lt_grad *g, int i) { return g->params[i].mask; }

/* ---- forward in training mode ----------------------------------------- */

static void bn_forward(struct worker *w, int i, const int64_t *shape, int ndim,
		       const float *x, float *y, int b)
{
	const lt_node *n = &w->g->gr->nodes[i];
	const struct bind *bd = &w->g->bind[i];
	const float *gamma = w->g->params[bd->w].w, *beta = w->g->params[bd->b].w;
	int64_t C = shape[0], inner = 1;
	for (int d = 1; d < ndim; d++)
		inner *= shape[d];
	double M = (double)b * inner;
	for (int64_t c = 0; c < C; c++) {
		double sum = 0, sq = 0;
		for (int s = 0; s < b; s++) {
			const float *v = x + ((size_t)s * C + c) * inner;
			for (int64_t k = 0; k < inner; k++)
				sum += v[k];
		}
		double mean = sum / M;
		for (int s = 0; s < b; s++) {
			const float *v = x + ((size_t)s * C + c) * inner;
			for (int64_t k = 0; k < inner; k++)
				sq += (v[k] - mean) * (v[k] - mean);
		}
		double var = sq / M;
		float istd = (float)(1.0 / sqrt(var + n->eps));
		w->bn_mean[i][c] = (float)mean;
		w->bn_istd[i][c] = istd;
		/* PyTorch keeps the unbiased variance in the running estimate. */
		bd->run_mean[c] = (1 - n->momentum) * bd->run_mean[c] + n->momentum * (float)mean;
		bd->run_var[c] = (1 - n->momentum) * bd->run_var[c] +
				 n->momentum * (float)(M > 1 ? sq / (M - 1) : var);
		for (int s = 0; s < b; s++) {
			const float *v = x + ((size_t)s * C + c) * inner;
			float *o = y + ((size_t)s * C + c) * inner;
			for (int64_t k = 0; k < inner; k++)
				o[k] = ((v[k] - (float)mean) * istd) * gamma[c] + beta[c];
		}
	}
}

/* Keep element e of sample (global position) s in dropout layer i? */
static int dropout_keep(uint64_t seed, int i, int64_t s, int64_t e, int64_t numel, float p)
{
	return lt_hash_uniform(seed, (uint64_t)i, (uint64_t)(s * numel + e)) >= p;
}

static void forward_train(struct worker *w)
{
	lt_grad *g = w->g;
	const lt_graph *gr = g->gr;
	int b = (int)w->n;
	w->val[0] = (float *)w->x;
	for (int i = 0; i < gr->n_nodes; i++) {
		const lt_node *n = &gr->nodes[i];
		const struct bind *bd = &g->bind[i];
		int v = n->inputs[0];
		const float *x = w->val[v];
		float *y = w->val[i + 1];
		const int64_t *shape = lt_graph_value_shape(gr, v);
		int64_t numel = (int64_t)b * n->out_numel;
		const float *wt = bd->w >= 0 ? g->params[bd->w].w : NULL;
		const float *bias = bd->b >= 0 ? g->params[bd->b].w : NULL;
		switch (n->op) {
		case LT_OP_LINEAR:
			lt_layers_linear_pruned(n, wt, bd->sparse, bd->nnz, bias, x, y, b, w->sparse_scratch);
			break;
		case LT_OP_CONV2D: lt_layers_conv2d(n, wt, bias, shape, x, y, b, w->cols[i], w->gemm); break;
		case LT_OP_MAXPOOL2D:
		case LT_OP_AVGPOOL2D: lt_layers_pool(n, shape, x, y, b); break;
		case LT_OP_RELU:
		case LT_OP_TANH:
		case LT_OP_SIGMOID: lt_layers_activation(n->op, x, y, numel); break;
		case LT_OP_SOFTMAX: lt_layers_softmax(x, y, n->out_numel, b); break;
		case LT_OP_FLATTEN: memcpy(y, x, (size_t)numel * sizeof(float)); break;
		case LT_OP_DROPOUT: {
			float scale = n->p < 1 ? 1.0f / (1.0f - n->p) : 0.0f;
			for (int s = 0; s < b; s++)
				for (int64_t e = 0; e < n->out_numel; e++) {
					int64_t k = s * n->out_numel + e;
					y[k] = dropout_keep(w->seed, i, w->first + s, e, n->out_numel, n->p) ? x[k] * scale : 0.0f;
				}
			break;
		}
		case LT_OP_BATCHNORM1D:
		case LT_OP_BATCHNORM2D:
			bn_forward(w, i, shape, lt_graph_value_ndim(gr, v), x, y, b);
			break;
		default:
			break;
		}
		if (n->act_threshold > 0)
			lt_layers_threshold(y, numel, n->act_threshold);
	}
}

/* Loss over this thread's samples; writes dloss/doutput (already divided by
 * the whole minibatch size) into the last value's gradient. */
static void loss_grad(struct worker *w)
{
	const lt_graph *gr = w->g->gr;
	int k = (int)lt_graph_out_numel(gr);
	int probs = gr->nodes[gr->n_nodes - 1].op == LT_OP_SOFTMAX;
	const float *out = w->val[gr->n_nodes];
	float *d = w->dval[gr->n_nodes];
	double inv = 1.0 / (double)w->total;
	w->loss = 0;
	w->correct = 0;
	for (int64_t s = 0; s < w->n; s++) {
		const float *o = out + s * k;
		float *ds = d + s * k;
		int y = w->labels[s], pred = 0;
		for (int c = 1; c < k; c++)
			if (o[c] > o[pred])
				pred = c;
		w->correct += pred == y && o[y] == o[y]; /* a NaN output is never a hit */
		if (probs) {
			double p = fmax(o[y], 1e-30); /* keeps the gradient finite */
			w->loss += -log(p);
			memset(ds, 0, (size_t)k * sizeof(float));
			ds[y] = (float)(-inv / p);
		} else {
			double mx = o[pred], sum = 0;
			for (int c = 0; c < k; c++)
				sum += exp((double)o[c] - mx);
			w->loss += mx + log(sum) - o[y];
			for (int c = 0; c < k; c++)
				ds[c] = (float)(exp((double)o[c] - mx) / sum * inv);
			ds[y] -= (float)inv;
		}
	}
}

/* ---- backward ---------------------------------------------------------- */

/* Every backward kernel adds its input gradient into dx (zeroed first). */
static void col2im(const lt_node *n, const int64_t *in_shape, const float *cols, float *dx, int b)
{
	int C = (int)in_shape[0], H = (int)in_shape[1], W = (int)in_shape[2];
	int OH = (int)n->out_shape[1], OW = (int)n->out_shape[2];
	int KH = n->kernel[0], KW = n->kernel[1];
	int SH = n->stride[0], SW = n->stride[1], PH = n->padding[0], PW = n->padding[1];
	size_t ohw = (size_t)OH * OW, row = (size_t)b * ohw;
	for (int c = 0; c < C; c++)
		for (int ky = 0; ky < KH; ky++)
			for (int kx = 0; kx < KW; kx++) {
				const float *src = cols + ((size_t)(c * KH + ky) * KW + kx) * row;
				for (int s = 0; s < b; s++) {
					float *img = dx + ((size_t)s * C + c) * H * W;
					for (int oy = 0; oy < OH; oy++) {
						int iy = oy * SH - PH + ky;
						if (iy < 0 || iy >= H)
							continue;
						const float *d = src + s * ohw + (size_t)oy * OW;
						float *dst = img + (size_t)iy * W;
						for (int ox = 0; ox < OW; ox++) {
							int ix = ox * SW - PW + kx;
							if (ix >= 0 && ix < W)
								dst[ix] += d[ox];
						}
					}
				}
			}
}

static void conv_backward(struct worker *w, int i, const int64_t *shape, int need_dx, int b)
{
	lt_grad *g = w->g;
	const lt_node *n = &g->gr->nodes[i];
	const struct bind *bd = &g->bind[i];
	int K = (int)conv_k(g->gr, n), OC = (int)n->out_features;
	size_t ohw = (size_t)conv_ohw(n);
	int N = (int)(b * ohw);
	const float *dy = w->dval[i + 1];
	float *gs = w->gemm; /* dy gathered to [OC][s*ohw + p] */
	for (int s = 0; s < b; s++)
		for (int oc = 0; oc < OC; oc++)
			memcpy(gs + (size_t)oc * N + s * ohw, dy + ((size_t)s * OC + oc) * ohw, ohw * sizeof(float));
	lt_sgemm(0, 1, OC, K, N, 1.0f, gs, N, w->cols[i], N, 1.0f, w->pgrad[bd->w], K);
	if (bd->b >= 0) {
		float *db = w->pgrad[bd->b];
		for (int oc = 0; oc < OC; oc++) {
			float acc = 0;
			for (int k = 0; k < N; k++)
				acc += gs[(size_t)oc * N + k];
			db[oc] += acc;
		}
	}
	if (need_dx) {
		lt_sgemm(1, 0, K, N, OC, 1.0f, g->params[bd->w].w, K, gs, N, 0.0f, w->dcols, N);
		col2im(n, shape, w->dcols, w->dval[n->inputs[0]], b);
	}
}

static void pool_backward(const lt_node *n, const int64_t *shape, const float *x,
			  const float *dy, float *dx, int b)
{
	int C = (int)shape[0], H = (int)shape[1], W = (int)shape[2];
	int OH = (int)n->out_shape[1], OW = (int)n->out_shape[2];
	int KH = n->kernel[0], KW = n->kernel[1];
	int is_max = n->op == LT_OP_MAXPOOL2D;
	float inv = 1.0f / (float)(KH * KW);
	for (int64_t plane = 0; plane < (int64_t)b * C; plane++) {
		const float *img = x + plane * H * W;
		float *dimg = dx + plane * H * W;
		for (int oy = 0; oy < OH; oy++)
			for (int ox = 0; ox < OW; ox++) {
				float d = dy[(plane * OH + oy) * OW + ox];
				int y0 = oy * n->stride[0] - n->padding[0], x0 = ox * n->stride[1] - n->padding[1];
				int best = -1;
				float bv = -INFINITY;
				for (int ky = 0; ky < KH; ky++) {
					int iy = y0 + ky;
					if (iy < 0 || iy >= H)
						continue;
					for (int kx = 0; kx < KW; kx++) {
						int ix = x0 + kx;
						if (ix < 0 || ix >= W)
							continue;
						if (!is_max) {
							dimg[iy * W + ix] += d * inv;
						} else {
							float v = img[iy * W + ix];
							/* the same scan as the forward pass: first maximum wins */
							if (best < 0 || v > bv || v != v) {
								best = iy * W + ix;
								bv = v;
								if (v != v)
									goto found;
							}
						}
					}
				}
			found:
				if (is_max && best >= 0)
					dimg[best] += d;
			}
	}
}

static void bn_backward(struct worker *w, int i, const int64_t *shape, int ndim,
			const float *x, const float *dy, float *dx, int b)
{
	lt_grad *g = w->g;
	const struct bind *bd = &g->bind[i];
	const float *gamma = g->params[bd->w].w;
	float *dgamma = w->pgrad[bd->w], *dbeta = w->pgrad[bd->b];
	int64_t C = shape[0], inner = 1;
	for (int d = 1; d < ndim; d++)
		inner *= shape[d];
	double M = (double)b * inner;
	for (int64_t c = 0; c < C; c++) {
		float mean = w->bn_mean[i][c], istd = w->bn_istd[i][c];
		double sdy = 0, sdyx = 0;
		for (int s = 0; s < b; s++) {
			const float *v = x + ((size_t)s * C + c) * inner, *d = dy + ((size_t)s * C + c) * inner;
			for (int64_t k = 0; k < inner; k++) {
				sdy += d[k];
				sdyx += d[k] * (v[k] - mean) * istd;
			}
		}
		dgamma[c] += (float)sdyx;
		dbeta[c] += (float)sdy;
		if (!dx)
			continue;
		float scale = gamma[c] * istd;
		float a = (float)(sdy / M), bb = (float)(sdyx / M);
		for (int s = 0; s < b; s++) {
			const float *v = x + ((size_t)s * C + c) * inner, *d = dy + ((size_t)s * C + c) * inner;
			float *o = dx + ((size_t)s * C + c) * inner;
			for (int64_t k = 0; k < inner; k++)
				o[k] += scale * (d[k] - a - (v[k] - mean) * istd * bb);
		}
	}
}

static void backward(struct worker *w)
{
	lt_grad *g = w->g;
	const lt_graph *gr = g->gr;
	int b = (int)w->n;
	for (int p = 0; p < g->nparams; p++)
		memset(w->pgrad[p], 0, (size_t)g->params[p].size * sizeof(float));
	/* dloss/dinput goes to the engine's buffer when wanted */
	w->dval[0] = g->want_dx ? g->dx + w->first * gr->in_numel : NULL;
	/* Gradients are summed into each value, since a value may feed several
	 * layers; values nothing reads keep a zero gradient. The last value's
	 * gradient comes from the loss. */
	for (int v = 0; v < gr->n_nodes; v++)
		if (w->dval[v])
			memset(w->dval[v], 0, (size_t)b * (size_t)lt_graph_value_numel(gr, v) * sizeof(float));
	for (int i = gr->n_nodes - 1; i >= 0; i--) {
		const lt_node *n = &gr->nodes[i];
		const struct bind *bd = &g->bind[i];
		int v = n->inputs[0];
		int need_dx = w->dval[v] != NULL;
		const float *x = w->val[v], *y = w->val[i + 1], *dy = w->dval[i + 1];
		float *dx = w->dval[v];
		const int64_t *shape = lt_graph_value_shape(gr, v);
		int64_t numel = (int64_t)b * lt_graph_value_numel(gr, v);
		/* A thresholded output passed on nothing where it became 0. */
		if (n->act_threshold > 0)
			for (int64_t k = 0; k < (int64_t)b * n->out_numel; k++)
				w->dval[i + 1][k] = y[k] == 0.0f ? 0.0f : dy[k];
		switch (n->op) {
		case LT_OP_LINEAR: {
			int in = (int)n->in_features, out = (int)n->out_features;
			lt_sgemm(1, 0, out, in, b, 1.0f, dy, out, x, in, 1.0f, w->pgrad[bd->w], in);
			if (bd->b >= 0) {
				float *db = w->pgrad[bd->b];
				for (int s = 0; s < b; s++)
					for (int o = 0; o < out; o++)
						db[o] += dy[(size_t)s * out + o];
			}
			if (need_dx)
				lt_sgemm(0, 0, b, in, out, 1.0f, dy, out, g->params[bd->w].w, in, 1.0f, dx, in);
			break;
		}
		case LT_OP_CONV2D: conv_backward(w, i, shape, need_dx, b); break;
		case LT_OP_MAXPOOL2D:
		case LT_OP_AVGPOOL2D:
			if (need_dx)
				pool_backward(n, shape, x, dy, dx, b);
			break;
		case LT_OP_RELU:
			for (int64_t k = 0; need_dx && k < numel; k++)
				dx[k] += y[k] > 0.0f ? dy[k] : 0.0f;
			break;
		case LT_OP_TANH:
			for (int64_t k = 0; need_dx && k < numel; k++)
				dx[k] += dy[k] * (1.0f - y[k] * y[k]);
			break;
		case LT_OP_SIGMOID:
			for (int64_t k = 0; need_dx && k < numel; k++)
				dx[k] += dy[k] * y[k] * (1.0f - y[k]);
			break;
		case LT_OP_SOFTMAX:
			for (int s = 0; need_dx && s < b; s++) {
				int64_t k = n->out_numel;
				const float *ys = y + s * k, *ds = dy + s * k;
				double dot = 0;
				for (int64_t c = 0; c < k; c++)
					dot += (double)ds[c] * ys[c];
				for (int64_t c = 0; c < k; c++)
					dx[s * k + c] += ys[c] * (ds[c] - (float)dot);
			}
			break;
		case LT_OP_FLATTEN:
			for (int64_t k = 0; need_dx && k < numel; k++)
				dx[k] += dy[k];
			break;
		case LT_OP_DROPOUT: {
			float scale = n->p < 1 ? 1.0f / (1.0f - n->p) : 0.0f;
			for (int s = 0; need_dx && s < b; s++)
				for (int64_t e = 0; e < n->out_numel; e++) {
					int64_t k = s * n->out_numel + e;
					dx[k] += dropout_keep(w->seed, i, w->first + s, e, n->out_numel, n->p) ? dy[k] * scale : 0.0f;
				}
			break;
		}
		case LT_OP_BATCHNORM1D:
		case LT_OP_BATCHNORM2D:
			bn_backward(w, i, shape, lt_graph_value_ndim(gr, v), x, dy, need_dx ? dx : NULL, b);
			break;
		default:
			break;
		}
	}
}

static void *run_worker(void *arg)
{
	struct worker *w = arg;
	if (w->n > 0) {
		forward_train(w);
		loss_grad(w);
		backward(w);
	} else {
		for (int p = 0; p < w->g->nparams; p++)
			memset(w->pgrad[p], 0, (size_t)w->g->params[p].size * sizeof(float));
		w->loss = 0;
		w->correct = 0;
	}
	return NULL;
}

int lt_grad_step(lt_grad *g, const float *x, const uint8_t *labels, int64_t n,
		 uint64_t dropout_seed, double *loss, int64_t *correct, lt_err *err)
{
	if (n < 1 || n > g->max_batch)
		return lt_err_set(err, LT_EINVAL, "minibatch of %lld samples (1 to %d allowed)",
				  (long long)n, g->max_batch);
	if (n < lt_grad_min_batch(g))
		return lt_err_set(err, LT_EINVAL, "batch normalisation needs at least 2 values per channel "
				  "in a minibatch (got one sample)");
	int T = g->threads;
	/* The weights moved since the last step: the sparse forms follow. */
	for (int i = 0; i < g->gr->n_nodes; i++)
		if (g->bind[i].sparse)
			lt_sparse_refresh(g->bind[i].sparse, g->params[g->bind[i].w].w);
	/* One data thread: let OpenBLAS use every core; several: one each. */
	int want_blas = T == 1 ? lt_cpu_count() : 1;
	if (lt_blas_threads() != want_blas)
		lt_blas_set_threads(want_blas);
	pthread_t tid[T];
	int started = 0;
	for (int t = 0; t < T; t++) {
		struct worker *w = &g->work[t];
		int64_t lo = n * t / T, hi = n * (t + 1) / T;
		w->x = x + lo * g->gr->in_numel;
		w->labels = labels + lo;
		w->first = lo;
		w->n = hi - lo;
		w->total = n;
		w->seed = dropout_seed;
	}
	for (int t = 1; t < T; t++) {
		if (pthread_create(&tid[t], NULL, run_worker, &g->work[t]) != 0)
			break;
		started = t;
	}
	run_worker(&g->work[0]);
	for (int t = started + 1; t < T; t++)
		run_worker(&g->work[t]);
	for (int t = 1; t <= started; t++)
		pthread_join(tid[t], NULL);
	/* Sum in a fixed order so a run is reproducible. */
	double total = g->work[0].loss;
	int64_t hits = g->work[0].correct;
	for (int t = 1; t < T; t++) {
		total += g->work[t].loss;
		hits += g->work[t].correct;
		for (int p = 0; p < g->nparams; p++) {
			float *dst = g->params[p].grad;
			const float *src = g->work[t].pgrad[p];
			for (int64_t k = 0; k < g->params[p].size; k++)
				dst[k] += src[k];
		}
	}
	if (loss)
		*loss = total / (double)n;
	if (correct)
		*correct = hits;
	return 0;
}

double lt_loss_distill(const float *student, const float *teacher, int64_t n, int k,
		       float T, float *grad)
{
	double total = 0;
	for (int64_t s = 0; s < n; s++) {
		const float *a = student + s * k, *t = teacher + s * k;
		double ma = -INFINITY, mt = -INFINITY, za = 0, zt = 0;
		for (int c = 0; c < k; c++) {
			ma = fmax(ma, a[c] / T);
			mt = fmax(mt, t[c] / T);
		}
		for (int c = 0; c < k; c++) {
			za += exp(a[c] / T - ma);
			zt += exp(t[c] / T - mt);
		}
		for (int c = 0; c < k; c++) {
			double lps = a[c] / T - ma - log(za), lpt = t[c] / T - mt - log(zt);
			double pt = exp(lpt), ps = exp(lps);
			total += pt * (lpt - lps);
			if (grad)
				grad[s * k + c] = (float)(T * (ps - pt) / (double)n);
		}
	}
	return (double)T * T * total / (double)n;
}
