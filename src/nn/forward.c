#include "nn/forward.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#include "core/mem.h"
#include "kern/blas.h"

/* Workspace per thread is sized for this many floats across all values. It
 * keeps a chunk's activations near L2 while giving GEMM wide enough
 * operands. */
#define CHUNK_FLOATS (1 << 22)
#define MAX_CHUNK 256

struct bound {             /* per-node parameters, f32 */
	const float *w, *b;
	float *bn_scale, *bn_shift; /* batchnorm folded to y = x*scale + shift */
};

struct worker {
	float **vals;          /* per value: chunk * numel floats (value 0 unused) */
	float *cols;           /* im2col scratch */
	float *gemm;           /* conv GEMM output before NCHW scatter */
};

struct lt_forward {
	lt_model *model;
	const lt_graph *g;
	int threads;
	int chunk;
	struct bound *bound;
	struct worker *work;
};

/* Floats of im2col scratch one sample needs for conv node n. */
static int64_t conv_cols(const lt_node *n)
{
	return n->in_features * n->kernel[0] * n->kernel[1] * n->out_shape[1] * n->out_shape[2];
}

/* Ops that pass their input through unchanged at inference share its buffer. */
static int is_identity(lt_op op)
{
	return op == LT_OP_FLATTEN || op == LT_OP_DROPOUT;
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
	int64_t cols = 0, gemm = 0;
	w->vals = lt_calloc((size_t)g->n_nodes + 1, sizeof *w->vals);
	if (!w->vals)
		return lt_err_set(err, LT_ENOMEM, "out of memory");
	for (int i = 0; i < g->n_nodes; i++) {
		const lt_node *n = &g->nodes[i];
		if (is_identity(n->op))
			continue;
		w->vals[i + 1] = lt_alloc_aligned((size_t)(f->chunk * n->out_numel) * sizeof(float));
		if (!w->vals[i + 1])
			return lt_err_set(err, LT_ENOMEM, "out of memory for activations");
		if (n->op == LT_OP_CONV2D) {
			int64_t c = conv_cols(n);
			cols = c > cols ? c : cols;
			gemm = n->out_numel > gemm ? n->out_numel : gemm;
		}
	}
	if (cols) {
		w->cols = lt_alloc_aligned((size_t)(f->chunk * cols) * sizeof(float));
		w->gemm = lt_alloc_aligned((size_t)(f->chunk * gemm) * sizeof(float));
		if (!w->cols || !w->gemm)
			return lt_err_set(err, LT_ENOMEM, "out of memory for convolution scratch");
	}
	return 0;
}

static void free_worker(const lt_graph *g, struct worker *w)
{
	if (w->vals)
		for (int i = 0; i <= g->n_nodes; i++)
			lt_free(w->vals[i]);
	lt_free(w->vals);
	lt_free(w->cols);
	lt_free(w->gemm);
}

void lt_forward_free(lt_forward *f)
{
	if (!f)
		return;
	if (f->bound)
		for (int i = 0; i < f->g->n_nodes; i++)
			lt_free(f->bound[i].bn_scale);
	if (f->work)
		for (int t = 0; t < f->threads; t++)
			free_worker(f->g, &f->work[t]);
	lt_free(f->bound);
	lt_free(f->work);
	lt_model_unref(f->model);
	lt_free(f);
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
	int64_t per_sample = g->in_numel;
	for (int i = 0; i < g->n_nodes; i++) {
		per_sample += g->nodes[i].out_numel;
		if (g->nodes[i].op == LT_OP_CONV2D)
			per_sample += conv_cols(&g->nodes[i]) + g->nodes[i].out_numel;
	}
	int64_t chunk = CHUNK_FLOATS / per_sample;
	f->chunk = chunk < 1 ? 1 : chunk > MAX_CHUNK ? MAX_CHUNK : (int)chunk;
	f->bound = lt_calloc((size_t)g->n_nodes, sizeof *f->bound);
	f->work = lt_calloc((size_t)f->threads, sizeof *f->work);
	if (!f->bound || !f->work) {
		lt_err_set(err, LT_ENOMEM, "out of memory");
		goto fail;
	}
	if (bind_params(f, err))
		goto fail;
	for (int t = 0; t < f->threads; t++)
		if (alloc_worker(f, &f->work[t], err))
			goto fail;
	return f;
fail:
	lt_forward_free(f);
	return NULL;
}

int64_t lt_forward_in_numel(const lt_forward *f) { return f->g->in_numel; }
int64_t lt_forward_out_numel(const lt_forward *f) { return lt_graph_out_numel(f->g); }

int lt_forward_outputs_probs(const lt_forward *f)
{
	return f->g->nodes[f->g->n_nodes - 1].op == LT_OP_SOFTMAX;
}

/* ---- layer kernels (b samples at a time) ------------------------------- */

static void linear(const lt_node *n, const struct bound *p, const float *x, float *y, int b)
{
	int in = (int)n->in_features, out = (int)n->out_features;
	float beta = 0.0f;
	if (p->b) {
		for (int s = 0; s < b; s++)
			memcpy(y + (size_t)s * out, p->b, (size_t)out * sizeof(float));
		beta = 1.0f;
	}
	/* GEMM packs all of W on every call; for a few samples that costs more
	 * than the product, and matrix-vector products are faster. */
	if (b <= 4) {
		for (int s = 0; s < b; s++)
			lt_sgemv(0, out, in, 1.0f, p->w, in, x + (size_t)s * in, beta, y + (size_t)s * out);
		return;
	}
	lt_sgemm(0, 1, b, out, in, 1.0f, x, in, p->w, in, beta, y, out);
}

/* cols[k][s*ohw + o] for k over (c, ky, kx): one GEMM then covers the whole
 * chunk. Out-of-image taps read as zero (padding). */
static void im2col(const lt_node *n, const int64_t *in_shape, const float *x, float *cols, int b)
{
	int C = (int)in_shape[0], H = (int)in_shape[1], W = (int)in_shape[2];
	int OH = (int)n->out_shape[1], OW = (int)n->out_shape[2];
	int KH = n->kernel[0], KW = n->kernel[1];
	int SH = n->stride[0], SW = n->stride[1], PH = n->padding[0], PW = n->padding[1];
	size_t ohw = (size_t)OH * OW, row = (size_t)b * ohw;
	for (int c = 0; c < C; c++)
		for (int ky = 0; ky < KH; ky++)
			for (int kx = 0; kx < KW; kx++) {
				float *dst = cols + ((size_t)(c * KH + ky) * KW + kx) * row;
				for (int s = 0; s < b; s++) {
					const float *img = x + ((size_t)s * C + c) * H * W;
					for (int oy = 0; oy < OH; oy++) {
						int iy = oy * SH - PH + ky;
						float *d = dst + s * ohw + (size_t)oy * OW;
						if (iy < 0 || iy >= H) {
							memset(d, 0, (size_t)OW * sizeof(float));
							continue;
						}
						const float *src = img + (size_t)iy * W;
						if (SW == 1 && PW == 0) {
							/* rows are short: a plain loop beats memcpy calls */
							for (int ox = 0; ox < OW; ox++)
								d[ox] = src[kx + ox];
							continue;
						}
						for (int ox = 0; ox < OW; ox++) {
							int ix = ox * SW - PW + kx;
							d[ox] = ix >= 0 && ix < W ? src[ix] : 0.0f;
						}
					}
				}
			}
}

static void conv2d(const lt_node *n, const struct bound *p, const int64_t *in_shape,
		   const float *x, float *y, int b, struct worker *w)
{
	int K = (int)(in_shape[0] * n->kernel[0] * n->kernel[1]);
	int OC = (int)n->out_features;
	size_t ohw = (size_t)n->out_shape[1] * n->out_shape[2];
	int N = (int)(b * ohw);
	im2col(n, in_shape, x, w->cols, b);
	lt_sgemm(0, 0, OC, N, K, 1.0f, p->w, K, w->cols, N, 0.0f, w->gemm, N);
	/* [OC][s][ohw] -> [s][OC][ohw], adding the bias on the way. */
	for (int s = 0; s < b; s++)
		for (int oc = 0; oc < OC; oc++) {
			const float *src = w->gemm + (size_t)oc * N + s * ohw;
			float *dst = y + ((size_t)s * OC + oc) * ohw;
			float bias = p->b ? p->b[oc] : 0.0f;
			for (size_t i = 0; i < ohw; i++)
				dst[i] = src[i] + bias;
		}
}

/* Max or average pooling. Loops run over output columns innermost, with
 * the valid column range worked out per kernel tap, so there are no
 * per-element bounds tests and the compiler can vectorise. */
static void pool(const lt_node *n, const int64_t *in_shape, const float *x, float *y, int b)
{
	int C = (int)in_shape[0], H = (int)in_shape[1], W = (int)in_shape[2];
	int OH = (int)n->out_shape[1], OW = (int)n->out_shape[2];
	int KH = n->kernel[0], KW = n->kernel[1], SH = n->stride[0], SW = n->stride[1];
	int PH = n->padding[0], PW = n->padding[1];
	int is_max = n->op == LT_OP_MAXPOOL2D;
	/* count_include_pad: windows never pass the padded border (no ceil
	 * mode), so the divisor is always the full window. */
	float inv = 1.0f / (float)(KH * KW);
	for (int64_t plane = 0; plane < (int64_t)b * C; plane++) {
		const float *img = x + plane * H * W;
		for (int oy = 0; oy < OH; oy++) {
			float *acc = y + (plane * OH + oy) * OW;
			for (int ox = 0; ox < OW; ox++)
				acc[ox] = is_max ? -INFINITY : 0.0f;
			for (int ky = 0; ky < KH; ky++) {
				int iy = oy * SH - PH + ky;
				if (iy < 0 || iy >= H)
					continue;
				const float *row = img + (size_t)iy * W;
				for (int kx = 0; kx < KW; kx++) {
					/* columns ox with 0 <= ox*SW - PW + kx < W */
					int lo = PW - kx > 0 ? (PW - kx + SW - 1) / SW : 0;
					int hi = (W - 1 + PW - kx) / SW + 1;
					hi = hi < OW ? hi : OW;
					int off = kx - PW;
					if (is_max) {
						for (int ox = lo; ox < hi; ox++) {
							float v = row[ox * SW + off];
							acc[ox] = v > acc[ox] || v != v ? v : acc[ox];
						}
					} else {
						for (int ox = lo; ox < hi; ox++)
							acc[ox] += row[ox * SW + off];
					}
				}
			}
			if (!is_max)
				for (int ox = 0; ox < OW; ox++)
					acc[ox] *= inv;
		}
	}
}

static void batchnorm(const lt_node *n, const struct bound *p, const int64_t *in_shape,
		      int in_ndim, const float *x, float *y, int b)
{
	int64_t C = in_shape[0], inner = 1;
	for (int d = 1; d < in_ndim; d++)
		inner *= in_shape[d];
	for (int s = 0; s < b; s++)
		for (int64_t c = 0; c < C; c++) {
			const float *src = x + ((size_t)s * C + c) * inner;
			float *dst = y + ((size_t)s * C + c) * inner;
			float sc = p->bn_scale[c], sh = p->bn_shift[c];
			for (int64_t i = 0; i < inner; i++)
				dst[i] = src[i] * sc + sh;
		}
	(void)n;
}

static void softmax(const float *x, float *y, int64_t width, int b)
{
	for (int s = 0; s < b; s++) {
		const float *v = x + s * width;
		float *o = y + s * width;
		float mx = -INFINITY, sum = 0.0f;
		for (int64_t i = 0; i < width; i++)
			mx = v[i] > mx ? v[i] : mx;
		for (int64_t i = 0; i < width; i++)
			sum += o[i] = expf(v[i] - mx);
		for (int64_t i = 0; i < width; i++)
			o[i] /= sum;
	}
}

/* Run every node on b samples starting at x; the last value goes to out. */
static void run_chunk(lt_forward *f, struct worker *w, const float *x, float *out, int b)
{
	const lt_graph *g = f->g;
	const float *val[g->n_nodes + 1];
	val[0] = x;
	for (int i = 0; i < g->n_nodes; i++) {
		const lt_node *n = &g->nodes[i];
		int v = n->inputs[0];
		const float *in = val[v];
		const int64_t *shape = lt_graph_value_shape(g, v);
		int64_t numel = (int64_t)b * n->out_numel;
		float *y = i == g->n_nodes - 1 ? out : w->vals[i + 1];
		switch (n->op) {
		case LT_OP_LINEAR: linear(n, &f->bound[i], in, y, b); break;
		case LT_OP_CONV2D: conv2d(n, &f->bound[i], shape, in, y, b, w); break;
		case LT_OP_MAXPOOL2D:
		case LT_OP_AVGPOOL2D: pool(n, shape, in, y, b); break;
		case LT_OP_RELU:
			for (int64_t k = 0; k < numel; k++)
				y[k] = in[k] > 0.0f ? in[k] : 0.0f;
			break;
		case LT_OP_TANH:
			for (int64_t k = 0; k < numel; k++)
				y[k] = tanhf(in[k]);
			break;
		case LT_OP_SIGMOID:
			for (int64_t k = 0; k < numel; k++)
				y[k] = 1.0f / (1.0f + expf(-in[k]));
			break;
		case LT_OP_SOFTMAX: softmax(in, y, n->out_numel, b); break;
		case LT_OP_BATCHNORM1D:
		case LT_OP_BATCHNORM2D:
			batchnorm(n, &f->bound[i], shape, lt_graph_value_ndim(g, v), in, y, b);
			break;
		case LT_OP_FLATTEN:
		case LT_OP_DROPOUT: /* identity at inference */
			if (y == out)
				memcpy(y, in, (size_t)numel * sizeof(float));
			else
				y = (float *)in;
			break;
		default:
			break;
		}
		val[i + 1] = y;
	}
}

struct span {
	lt_forward *f;
	struct worker *w;
	const float *x;
	float *out;
	int64_t n;
};

static void *run_span(void *arg)
{
	struct span *s = arg;
	int64_t in = s->f->g->in_numel, on = lt_graph_out_numel(s->f->g);
	for (int64_t done = 0; done < s->n; done += s->f->chunk) {
		int b = (int)(s->n - done < s->f->chunk ? s->n - done : s->f->chunk);
		run_chunk(s->f, s->w, s->x + done * in, s->out + done * on, b);
	}
	return NULL;
}

int lt_forward_run(lt_forward *f, const float *x, int64_t n, float *out, lt_err *err)
{
	if (n <= 0)
		return 0;
	/* Split by sample; a thread gets at least one chunk so small batches
	 * (batch 1 latency) skip thread start-up entirely. */
	int64_t want = (n + f->chunk - 1) / f->chunk;
	int T = want < f->threads ? (int)want : f->threads;
	struct span spans[T];
	pthread_t tid[T];
	int started = 0;
	int64_t in = f->g->in_numel, on = lt_graph_out_numel(f->g);
	/* Our threads split the batch, so each GEMM runs on one core. Setting
	 * this is not free (OpenBLAS re-plans its pool), so only when needed. */
	if (lt_blas_threads() != 1)
		lt_blas_set_threads(1);
	for (int t = 0; t < T; t++) {
		int64_t lo = n * t / T, hi = n * (t + 1) / T;
		spans[t] = (struct span){f, &f->work[t], x + lo * in, out + lo * on, hi - lo};
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
	(void)err;
	return 0;
}
