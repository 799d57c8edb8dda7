/* Post-training int8 preview (see ptq.h). */
#include "work/ptq.h"

#include <math.h>
#include <string.h>

#include "core/mem.h"
#include "kern/quant.h"

/* Progress over the whole run: evaluations report their own images. */
struct prog {
	const lt_ptq_opts *o;
	int64_t done, total;
};

static int eval_progress(void *ud, int64_t done, int64_t total)
{
	(void)total;
	struct prog *p = ud;
	return p->o->progress ? p->o->progress(p->o->progress_ud, p->done + done, p->total) : 0;
}

static int evaluate(lt_model *m, const lt_dataset *d, lt_eval_opts *eo, struct prog *p, double *acc,
		    lt_err *err)
{
	lt_eval_result r;
	eo->progress = eval_progress;
	eo->progress_ud = p;
	int rc = lt_eval_run(m, d, eo, &r, err);
	if (rc)
		return rc;
	*acc = r.top1;
	p->done += r.n;
	lt_eval_result_free(&r);
	return 0;
}

/* The node whose output node i reads, through flatten/dropout (which pass
 * it on unchanged); -1 for the network input. */
static int producer(const lt_graph *g, int i)
{
	int v = g->nodes[i].inputs[0];
	while (v > 0 && lt_op_is_identity(g->nodes[v - 1].op))
		v = g->nodes[v - 1].inputs[0];
	return v - 1;
}

/* Replace the weight `name` of c by its int8 form (per output channel,
 * symmetric; pruned weights stay 0). */
static int quantize_weight(lt_model *c, const char *name, lt_err *err)
{
	static const lt_quant_spec spec = {.mode = LT_QUANT_SYMMETRIC, .bits = 8, .per_channel = 1};
	lt_tensor *w = lt_model_tensor(c, name);
	const float *v = lt_tensor_data(w, err);
	const float *mask = lt_tensor_mask(w) ? lt_tensor_data(lt_tensor_mask(w), err) : NULL;
	if (!v || (lt_tensor_mask(w) && !mask))
		return err ? err->code : LT_ENOMEM;
	lt_tensor *q = lt_tensor_new_uninit(lt_tensor_ndim(w), lt_tensor_shape(w), err);
	float *out = q ? lt_tensor_data_mut(q, err) : NULL;
	lt_scheme *s = out ? lt_quant_tensor(v, mask, lt_tensor_ndim(w), lt_tensor_shape(w), &spec, out, NULL, err)
			   : NULL;
	int rc = s ? lt_model_set_tensor(c, name, q, err) : err ? err->code : LT_ENOMEM;
	lt_scheme_free(s);
	lt_tensor_unref(q);
	return rc;
}

lt_model *lt_ptq_quantize(lt_model *m, const float *lo, const float *hi, float *scale, int32_t *zero,
			   lt_err *err)
{
	const lt_graph *g = lt_model_graph(m);
	if (!g) {
		lt_err_set(err, LT_ENOTSUP, "the model has no architecture (weights only)");
		return NULL;
	}
	for (int i = 0; i < g->n_nodes; i++) {
		scale[i] = 0;
		zero[i] = 0;
	}
	lt_model *c = lt_model_copy(m, err);
	for (int i = 0; c && i < g->n_nodes; i++) {
		const lt_node *nd = &g->nodes[i];
		if ((nd->op != LT_OP_LINEAR && nd->op != LT_OP_CONV2D) || !nd->params[LT_P_WEIGHT])
			continue;
		if (quantize_weight(c, nd->params[LT_P_WEIGHT], err)) {
			lt_model_unref(c);
			return NULL;
		}
		int p = producer(g, i);
		if (p >= 0 && lo[p] <= hi[p] && isfinite(lo[p]) && isfinite(hi[p]))
			lt_quant_qparams(lo[p], hi[p], 0, 255, 0, &scale[p], &zero[p]);
	}
	return c;
}

void lt_ptq_result_free(lt_ptq_result *r)
{
	for (int i = 0; r->layers && i < r->n_layers; i++) {
		lt_free(r->layers[i].name);
		lt_free(r->layers[i].input);
	}
	lt_free(r->layers);
	memset(r, 0, sizeof *r);
}

int lt_ptq_run(lt_model *m, const lt_ptq_opts *o, lt_ptq_result *r, lt_err *err)
{
	memset(r, 0, sizeof *r);
	const lt_graph *g = lt_model_graph(m);
	if (!g)
		return lt_err_set(err, LT_ENOTSUP, "the model has no architecture (weights only): nothing to evaluate");
	if (!o->data || !o->data->n || !o->calibration || !o->calibration->n)
		return lt_err_set(err, LT_EINVAL, "int8 preview needs images to calibrate on and to evaluate");
	int n = g->n_nodes, rc = 0;
	lt_model *c = NULL;
	float *lo = lt_malloc_array((size_t)n * 3, sizeof *lo), *hi = lo ? lo + n : NULL, *scale = lo ? hi + n : NULL;
	int32_t *zero = lt_calloc((size_t)n, sizeof *zero);
	int *layer_of = lt_malloc_array((size_t)n, sizeof *layer_of);
	if (!lo || !zero || !layer_of || !(r->layers = lt_calloc((size_t)n, sizeof *r->layers))) {
		rc = lt_err_set(err, LT_ENOMEM, "out of memory");
		goto done;
	}
	for (int i = 0; i < n; i++) {
		const lt_node *nd = &g->nodes[i];
		layer_of[i] = -1;
		if ((nd->op != LT_OP_LINEAR && nd->op != LT_OP_CONV2D) || !nd->params[LT_P_WEIGHT])
			continue;
		int p = producer(g, i);
		lt_ptq_layer *l = &r->layers[r->n_layers];
		l->name = lt_strdup(nd->name);
		l->input = lt_strdup(p < 0 ? "input" : g->nodes[p].name);
		l->accuracy = NAN;
		layer_of[i] = r->n_layers++;
		if (!l->name || !l->input) {
			rc = lt_err_set(err, LT_ENOMEM, "out of memory");
			goto done;
		}
	}
	if (!r->n_layers) {
		rc = lt_err_set(err, LT_ENOTSUP, "the model has no linear or conv layer to quantize");
		goto done;
	}
	int64_t images = o->data->n, calib = o->calibration->n;
	struct prog pr = {o, 0, calib + images * (2 + (o->per_layer ? r->n_layers : 0))};
	r->images = images;
	r->calibrated = calib;

	/* Float accuracy, and the ranges of every node's output. */
	lt_eval_opts eo = {.threads = o->threads};
	if ((rc = evaluate(m, o->data, &eo, &pr, &r->baseline, err)))
		goto done;
	eo = (lt_eval_opts){.threads = o->threads, .act_lo = lo, .act_hi = hi};
	double unused;
	if ((rc = evaluate(m, o->calibration, &eo, &pr, &unused, err)))
		goto done;

	for (int i = 0; i < n; i++) {
		if (layer_of[i] < 0)
			continue;
		int p = producer(g, i);
		r->layers[layer_of[i]].lo = p < 0 ? NAN : lo[p];
		r->layers[layer_of[i]].hi = p < 0 ? NAN : hi[p];
	}
	/* Everything quantized. */
	if (!(c = lt_ptq_quantize(m, lo, hi, scale, zero, err))) {
		rc = err ? err->code : LT_ENOMEM;
		goto done;
	}
	eo = (lt_eval_opts){.threads = o->threads, .act_scale = scale, .act_zero = zero, .act_qmin = 0,
			    .act_qmax = 255};
	if ((rc = evaluate(c, o->data, &eo, &pr, &r->accuracy, err)))
		goto done;

	/* Each layer alone: its weights and the activations it reads. */
	for (int i = 0; o->per_layer && i < n; i++) {
		if (layer_of[i] < 0)
			continue;
		lt_model_unref(c);
		if (!(c = lt_model_copy(m, err))) {
			rc = err ? err->code : LT_ENOMEM;
			goto done;
		}
		if ((rc = quantize_weight(c, g->nodes[i].params[LT_P_WEIGHT], err)))
			goto done;
		float *one = lo; /* the ranges are no longer needed: reuse as scales */
		for (int k = 0; k < n; k++)
			one[k] = 0;
		int p = producer(g, i);
		if (p >= 0)
			one[p] = scale[p];
		eo = (lt_eval_opts){.threads = o->threads, .act_scale = one, .act_zero = zero, .act_qmin = 0,
				    .act_qmax = 255};
		if ((rc = evaluate(c, o->data, &eo, &pr, &r->layers[layer_of[i]].accuracy, err)))
			goto done;
	}
done:
	lt_model_unref(c);
	lt_free(lo);
	lt_free(zero);
	lt_free(layer_of);
	if (rc)
		lt_ptq_result_free(r);
	return rc;
}
