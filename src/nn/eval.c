#include "nn/eval.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "core/clock.h"
#include "core/mem.h"
#include "nn/forward.h"

void lt_eval_score(lt_eval_result *r, const float *out, const uint8_t *labels,
		   int64_t n, int probs)
{
	int k = r->n_classes;
	for (int64_t s = 0; s < n; s++) {
		const float *v = out + s * k;
		int y = labels[s], above = 0, pred = 0;
		for (int c = 0; c < k; c++) {
			above += v[c] > v[y];
			if (v[c] > v[pred])
				pred = c;
		}
		int hit = v[y] == v[y]; /* a NaN score is never a hit */
		double loss;
		if (probs) {
			loss = -log(fmax(v[y], DBL_MIN));
		} else {
			double mx = v[pred], sum = 0;
			for (int c = 0; c < k; c++)
				sum += exp((double)v[c] - mx);
			loss = mx + log(sum) - v[y];
		}
		r->loss += loss;
		r->correct1 += hit && above == 0;
		r->correct5 += hit && above < 5;
		r->confusion[y * k + pred]++;
		r->class_total[y]++;
	}
	r->n += n;
}

void lt_eval_result_free(lt_eval_result *r)
{
	lt_free(r->confusion);
	lt_free(r->class_total);
	r->confusion = r->class_total = NULL;
}

int lt_eval_run(lt_model *m, const lt_dataset *d, const lt_eval_opts *opts,
		lt_eval_result *r, lt_err *err)
{
	memset(r, 0, sizeof *r);
	const lt_graph *g = lt_model_graph(m);
	if (!g)
		return lt_err_set(err, LT_ENOTSUP,
				  "the model has no graph (weights-only file): nothing to evaluate");
	int from = opts && opts->from_data ? opts->from_value : 0;
	int64_t in_numel = lt_graph_value_numel(g, from);
	if (!from && d->item_numel != g->in_numel) {
		char want[96];
		return lt_err_set(err, LT_EINVAL, "model expects input %s (%lld values) but the dataset has %lld values per item",
				  lt_shape_format(g->in_ndim, g->in_shape, want, sizeof want),
				  (long long)g->in_numel, (long long)d->item_numel);
	}
	int64_t k = lt_graph_out_numel(g);
	for (int64_t i = 0; i < d->n; i++)
		if (d->labels[i] >= k)
			return lt_err_set(err, LT_EINVAL, "label %d of item %lld is outside the model's %lld outputs",
					  d->labels[i], (long long)i, (long long)k);
	int batch = opts && opts->batch > 0 ? opts->batch : 1000;
	int64_t total = opts && opts->limit > 0 && opts->limit < d->n ? opts->limit : d->n;
	if (batch > total)
		batch = total > 0 ? (int)total : 1; /* no buffer larger than the work */
	float *x = NULL, *out = NULL;
	int rc = 0;
	lt_forward *f = lt_forward_new(m, opts ? opts->threads : 0, err);
	if (!f)
		return err ? err->code : LT_ENOMEM;
	if (opts && ((opts->act_threshold && (rc = lt_forward_set_act_threshold(f, opts->act_threshold, err))) ||
		     (opts->act_nonzero && (rc = lt_forward_count_activations(f, err))) ||
		     (opts->act_lo && (rc = lt_forward_observe_ranges(f, err))) ||
		     (opts->act_scale && (rc = lt_forward_set_act_quant(f, opts->act_scale, opts->act_zero,
									  opts->act_qmin, opts->act_qmax, err))))) {
		lt_forward_free(f);
		return rc;
	}
	r->n_classes = (int)k;
	r->confusion = lt_calloc((size_t)(k * k), sizeof *r->confusion);
	r->class_total = lt_calloc((size_t)k, sizeof *r->class_total);
	x = from ? NULL : lt_malloc_array((size_t)batch * (size_t)g->in_numel, sizeof *x);
	out = lt_malloc_array((size_t)batch * (size_t)k, sizeof *out);
	if (!r->confusion || !r->class_total || (!x && !from) || !out) {
		rc = lt_err_set(err, LT_ENOMEM, "out of memory for batch %d and a %lld-class confusion matrix",
				batch, (long long)k);
		goto fail;
	}
	for (int64_t first = 0; first < total; first += batch) {
		int64_t n = total - first < batch ? total - first : batch;
		const float *in = from ? opts->from_data + first * in_numel : x;
		if (!from && (rc = lt_dataset_get_batch(d, first, n, g->scale, g->mean, g->std, g->n_norm, x, err)))
			goto fail;
		double t0 = lt_seconds();
		if ((rc = lt_forward_run_range(f, from, g->n_nodes, in, n, out, err)))
			goto fail;
		r->forward_seconds += lt_seconds() - t0;
		lt_eval_score(r, out, d->labels + first, n, lt_forward_outputs_probs(f));
		if (opts && opts->progress && opts->progress(opts->progress_ud, first + n, total)) {
			rc = lt_err_set(err, LT_ECANCEL, "cancelled");
			goto fail;
		}
	}
	if (r->n) {
		r->top1 = (double)r->correct1 / r->n;
		r->top5 = (double)r->correct5 / r->n;
		r->loss /= r->n;
	}
	r->images_per_s = r->forward_seconds > 0 ? r->n / r->forward_seconds : 0;
	if (opts && opts->act_nonzero)
		lt_forward_activation_counts(f, opts->act_nonzero, opts->act_total);
	if (opts && opts->act_lo)
		lt_forward_ranges(f, opts->act_lo, opts->act_hi);
	lt_free(x);
	lt_free(out);
	lt_forward_free(f);
	return 0;
fail:
	lt_free(x);
	lt_free(out);
	lt_forward_free(f);
	lt_eval_result_free(r);
	return rc;
}
