#include "nn/train.h"

#include <math.h>
#include <string.h>

#include "core/clock.h"
#include "core/mem.h"
#include "core/scheme.h"
#include "core/rng.h"
#include "kern/kmeans.h"
#include "nn/eval.h"
#include "nn/grad.h"

static int add_filled(lt_model *m, const char *name, int ndim, const int64_t *shape,
		      float value, float bound, lt_rng *rng, lt_err *err)
{
	lt_tensor *t = lt_tensor_new(ndim, shape, err);
	if (!t)
		return err ? err->code : LT_ENOMEM;
	float *v = lt_tensor_data_mut(t, err);
	for (int64_t k = 0; k < lt_tensor_numel(t); k++)
		v[k] = bound > 0 ? (2.0f * lt_rng_uniform(rng) - 1.0f) * bound : value;
	int rc = lt_model_add_tensor(m, name, t, err);
	lt_tensor_unref(t);
	return rc;
}

lt_model *lt_model_from_graph(lt_graph *g, uint64_t seed, lt_err *err)
{
	lt_model *m = lt_model_new(err);
	if (!m) {
		lt_graph_free(g);
		return NULL;
	}
	lt_rng rng = {seed};
	for (int i = 0; i < g->n_nodes; i++) {
		const lt_node *n = &g->nodes[i];
		int rc = 0;
		if (n->op == LT_OP_LINEAR || n->op == LT_OP_CONV2D) {
			int64_t fan_in = n->in_features * (n->op == LT_OP_CONV2D ? n->kernel[0] * n->kernel[1] : 1);
			float bound = 1.0f / sqrtf((float)fan_in);
			int64_t w[4] = {n->out_features, n->in_features, n->kernel[0], n->kernel[1]};
			rc = add_filled(m, n->params[LT_P_WEIGHT], n->op == LT_OP_CONV2D ? 4 : 2, w, 0, bound, &rng, err);
			if (!rc && n->params[LT_P_BIAS])
				rc = add_filled(m, n->params[LT_P_BIAS], 1, &n->out_features, 0, bound, &rng, err);
		} else if (n->op == LT_OP_BATCHNORM1D || n->op == LT_OP_BATCHNORM2D) {
			const float init[4] = {1, 0, 0, 1}; /* weight, bias, mean, var */
			for (int s = 0; s < 4 && !rc; s++)
				rc = add_filled(m, n->params[s], 1, &n->in_features, init[s], 0, &rng, err);
		}
		if (rc) {
			lt_graph_free(g);
			lt_model_unref(m);
			return NULL;
		}
	}
	if (lt_model_set_graph(m, g, err)) {
		lt_graph_free(g);
		lt_model_unref(m);
		return NULL;
	}
	return m;
}

/* The proximal step of t * |w|: shrink towards zero by t, and to exactly
 * zero within t of it. */
static void soft_threshold(float *w, int64_t n, float t)
{
	for (int64_t k = 0; k < n; k++) {
		float a = fabsf(w[k]) - t;
		w[k] = a > 0 ? copysignf(a, w[k]) : 0.0f;
	}
}

/* A weight-shared parameter: the optimiser steps its codebook. */
struct shared {
	lt_scheme *s;  /* the tensor's scheme, held apart while training */
	const float *mask; /* which weights share: the engine's mask, or one
			    * made from the weights that are not 0 */
	float *own;    /* that made mask */
	float *w, *g;  /* the weights and their gradients in the engine */
	double *sum;   /* per shared value: the summed gradient */
};

/* Zero masked entries; values where the mask is 0 become exactly +0. */
static void apply_mask(float *restrict v, const float *restrict mask, int64_t n)
{
	/* a select, not a branch or a product (v * 0 would leave -0): the
	 * compiler vectorises it */
	for (int64_t k = 0; k < n; k++)
		v[k] = mask[k] != 0.0f ? v[k] : 0.0f;
}

int lt_train_run(lt_model *m, const lt_dataset *train, const lt_dataset *val,
		 const lt_train_cfg *cfg_in, lt_train_fn progress, void *ud, lt_err *err)
{
	lt_train_cfg cfg = *cfg_in;
	if (cfg.epochs <= 0)
		cfg.epochs = 10;
	if (cfg.batch <= 0)
		cfg.batch = 128;
	if (!(cfg.l1 >= 0 && isfinite(cfg.l1)))
		return lt_err_set(err, LT_EINVAL, "the L1 strength must be 0 or more (got %g)", (double)cfg.l1);
	const lt_graph *gr = lt_model_graph(m);
	if (!gr)
		return lt_err_set(err, LT_ENOTSUP, "the model has no graph (weights-only file): nothing to train");
	if (train->item_numel != gr->in_numel)
		return lt_err_set(err, LT_EINVAL, "the model expects %lld values per input but the data has %lld",
				  (long long)gr->in_numel, (long long)train->item_numel);
	if (train->n < 1)
		return lt_err_set(err, LT_EINVAL, "the training set is empty");
	for (int64_t i = 0; i < train->n; i++)
		if (train->labels[i] >= lt_graph_out_numel(gr))
			return lt_err_set(err, LT_EINVAL, "label %d is outside the model's %lld outputs",
					  train->labels[i], (long long)lt_graph_out_numel(gr));
	int batch = cfg.batch > train->n ? (int)train->n : cfg.batch;
	int rc = 0;
	lt_optim *opt = NULL;
	int64_t *order = NULL, *sizes = NULL;
	char *l1_on = NULL;
	float *x = NULL, **wv = NULL, **gv = NULL;
	uint8_t *y = NULL;
	struct shared *sh = NULL;
	int np = 0;
	/* Weight-shared tensors (k-means codebooks) train their shared values:
	 * their schemes are held apart while the engine writes the weights. */
	size_t nt = lt_model_tensor_count(m);
	lt_scheme **held = lt_calloc(nt ? nt : 1, sizeof *held);
	if (!held)
		return lt_err_set(err, LT_ENOMEM, "out of memory");
	for (size_t i = 0; i < nt; i++) {
		lt_scheme *s = lt_tensor_scheme(lt_model_tensor_at(m, i));
		if (s && s->kind == LT_SCHEME_CODEBOOK && s->groups == 1)
			held[i] = lt_tensor_take_scheme(lt_model_tensor_at(m, i));
	}
	lt_grad *g = lt_grad_new(m, cfg.threads, batch, err);
	if (!g) {
		rc = err ? err->code : LT_ENOMEM;
		goto done;
	}
	if (train->n < lt_grad_min_batch(g)) {
		rc = lt_err_set(err, LT_EINVAL, "batch normalisation needs at least 2 training samples");
		goto done;
	}
	np = lt_grad_nparams(g);
	sizes = lt_malloc_array((size_t)np + 1, sizeof *sizes);
	l1_on = lt_malloc_array((size_t)np + 1, sizeof *l1_on);
	wv = lt_malloc_array((size_t)np + 1, sizeof *wv);
	gv = lt_malloc_array((size_t)np + 1, sizeof *gv);
	sh = lt_calloc((size_t)np + 1, sizeof *sh);
	order = lt_malloc_array((size_t)train->n, sizeof *order);
	x = lt_malloc_array((size_t)batch * (size_t)gr->in_numel, sizeof *x);
	y = lt_malloc((size_t)batch);
	if (!sizes || !l1_on || !wv || !gv || !sh || !order || !x || !y) {
		rc = lt_err_set(err, LT_ENOMEM, "out of memory");
		goto done;
	}
	for (int p = 0; p < np; p++) {
		sizes[p] = lt_grad_param_size(g, p);
		/* L1 applies to weights of 2+ dimensions, not biases or norms */
		lt_tensor *pt = lt_model_tensor(m, lt_grad_param_name(g, p));
		l1_on[p] = cfg.l1 > 0 && pt && lt_tensor_ndim(pt) >= 2;
		wv[p] = lt_grad_param_value(g, p);
		gv[p] = lt_grad_param_grad(g, p);
		/* masked weights start at zero, and stay there */
		if (lt_grad_param_mask(g, p))
			apply_mask(wv[p], lt_grad_param_mask(g, p), sizes[p]);
		for (size_t i = 0; i < nt; i++)
			if (held[i] && !strcmp(lt_model_tensor_name(m, i), lt_grad_param_name(g, p)))
				sh[p].s = held[i];
		if (!sh[p].s)
			continue;
		/* the optimiser steps the k shared values, from the summed
		 * gradients of the weights that share each */
		sh[p].w = wv[p];
		sh[p].g = gv[p];
		if (!(sh[p].sum = lt_malloc_array((size_t)sh[p].s->k, sizeof *sh[p].sum)) ||
		    !(gv[p] = lt_malloc_array((size_t)sh[p].s->k, sizeof *gv[p]))) {
			gv[p] = NULL;
			rc = lt_err_set(err, LT_ENOMEM, "out of memory");
			goto done;
		}
		/* Without a mask (a shared tensor read from a packed file), the
		 * zeros are the pruned weights: no code of theirs is a cluster's,
		 * so they must stay out and stay 0. */
		sh[p].mask = lt_grad_param_mask(g, p);
		if (!sh[p].mask) {
			if (!(sh[p].own = lt_malloc_array((size_t)sizes[p], sizeof *sh[p].own))) {
				rc = lt_err_set(err, LT_ENOMEM, "out of memory");
				goto done;
			}
			for (int64_t k = 0; k < sizes[p]; k++)
				sh[p].own[k] = sh[p].w[k] != 0.0f;
			sh[p].mask = sh[p].own;
		}
		wv[p] = sh[p].s->table;
		sizes[p] = sh[p].s->k;
		l1_on[p] = 0;
		lt_kmeans_apply(sh[p].s, sh[p].mask, sh[p].w);
	}
	if (!(opt = lt_optim_new(&cfg.opt, np, sizes, err))) {
		rc = err ? err->code : LT_ENOMEM;
		goto done;
	}
	lt_rng rng = {cfg.seed ^ 0x5eedf00dd15ea5e5u};
	for (int64_t i = 0; i < train->n; i++)
		order[i] = i;
	int64_t batches = (train->n + batch - 1) / batch;
	uint64_t step_no = 0;
	for (int e = 0; e < cfg.epochs; e++) {
		/* Fisher-Yates with the run's generator: same seed, same order. */
		for (int64_t i = train->n - 1; i > 0; i--) {
			int64_t j = (int64_t)lt_rng_below(&rng, (uint64_t)i + 1), t = order[i];
			order[i] = order[j];
			order[j] = t;
		}
		float lr = lt_sched_lr(cfg.sched, cfg.opt.lr, e, cfg.epochs, cfg.step_size, cfg.gamma);
		double t0 = lt_seconds(), loss_sum = 0;
		int64_t hits = 0, seen = 0;
		for (int64_t bi = 0; bi < batches; bi++) {
			int64_t first = bi * batch, n = train->n - first < batch ? train->n - first : batch;
			if (n < lt_grad_min_batch(g))
				continue; /* a last sample alone cannot be batch-normalised */
			for (int64_t s = 0; s < n; s++) {
				int64_t idx = order[first + s];
				if ((rc = lt_dataset_get_batch(train, idx, 1, gr->scale, gr->mean, gr->std,
							       gr->n_norm, x + s * gr->in_numel, err)))
					goto done;
				y[s] = train->labels[idx];
			}
			double loss;
			int64_t correct;
			if ((rc = lt_grad_step(g, x, y, n, cfg.seed + step_no++, &loss, &correct, err)))
				goto done;
			if (!isfinite(loss)) {
				rc = lt_err_set(err, LT_ERANGE, "the loss diverged (%g) in epoch %d; try a smaller learning rate",
						loss, e + 1);
				goto done;
			}
			for (int p = 0; p < np; p++) {
				if (sh[p].s) {
					lt_kmeans_grad(sh[p].s, sh[p].mask, sh[p].g, sh[p].sum);
					for (int c = 0; c < sh[p].s->k; c++)
						gv[p][c] = (float)sh[p].sum[c];
				} else if (lt_grad_param_mask(g, p)) {
					apply_mask(gv[p], lt_grad_param_mask(g, p), sizes[p]);
				}
			}
			if (cfg.clip_norm > 0)
				lt_clip_grad_norm(gv, sizes, np, cfg.clip_norm);
			lt_optim_step(opt, wv, gv, lr);
			for (int p = 0; p < np; p++) {
				if (l1_on[p])
					soft_threshold(wv[p], sizes[p], lr * cfg.l1);
				if (sh[p].s)
					lt_kmeans_apply(sh[p].s, sh[p].mask, sh[p].w);
				else if (lt_grad_param_mask(g, p))
					apply_mask(wv[p], lt_grad_param_mask(g, p), sizes[p]);
			}
			loss_sum += loss * n;
			hits += correct;
			seen += n;
			double dt = lt_seconds() - t0;
			lt_train_status st = {e + 1, cfg.epochs, bi + 1, batches, loss_sum / seen,
					      (double)hits / seen, lr, dt, dt > 0 ? seen / dt : 0, -1, -1};
			if (progress && progress(ud, &st)) {
				rc = lt_err_set(err, LT_ECANCEL, "interrupted in epoch %d", e + 1);
				goto done;
			}
		}
		double dt = lt_seconds() - t0;
		lt_train_status st = {e + 1, cfg.epochs, -1, batches, loss_sum / seen, (double)hits / seen,
				      lr, dt, dt > 0 ? seen / dt : 0, -1, -1};
		if (val) {
			lt_eval_result r;
			lt_eval_opts eo = {.batch = 1000, .threads = cfg.threads};
			if ((rc = lt_eval_run(m, val, &eo, &r, err)))
				goto done;
			st.val_acc = r.top1;
			st.val_loss = r.loss;
			lt_eval_result_free(&r);
		}
		if (progress && progress(ud, &st)) {
			rc = lt_err_set(err, LT_ECANCEL, "interrupted after epoch %d", e + 1);
			goto done;
		}
	}
done:
	/* the shared tensors get their schemes back, trained or not */
	for (size_t i = 0; i < nt; i++)
		if (held[i])
			lt_tensor_set_scheme(lt_model_tensor_at(m, i), held[i], NULL);
	for (int p = 0; sh && p < np; p++)
		if (sh[p].s) {
			lt_free(sh[p].sum);
			lt_free(sh[p].own);
			lt_free(gv[p]);
		}
	lt_free(held);
	lt_free(sh);
	lt_free(l1_on);
	lt_optim_free(opt);
	lt_grad_free(g);
	lt_free(sizes);
	lt_free(wv);
	lt_free(gv);
	lt_free(order);
	lt_free(x);
	lt_free(y);
	return rc;
}
