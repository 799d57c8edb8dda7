#include "work/sensitivity.h"

#include <math.h>
#include <string.h>

#include "core/mem.h"

void lt_sensitivity_free(lt_sensitivity *s)
{
	if (!s)
		return;
	for (int i = 0; s->tensors && i < s->n_tensors; i++)
		lt_free(s->tensors[i]);
	lt_free(s->tensors);
	lt_free(s->params);
	lt_free(s->levels);
	lt_free(s->accuracy);
	lt_free(s);
}

/* Progress of one evaluation scaled into the whole sweep. */
struct sweep_progress {
	const lt_preview_opts *outer;
	int64_t point, points;
};

static int point_progress(void *ud, int64_t done, int64_t total)
{
	struct sweep_progress *p = ud;
	if (!p->outer->progress)
		return 0;
	const int64_t scale = 1000000;
	int64_t within = total > 0 ? done * scale / total : scale;
	return p->outer->progress(p->outer->progress_ud, p->point * scale + within, p->points * scale);
}

static int check_opts(const lt_model *stage, const lt_sensitivity_opts *o, lt_err *err)
{
	if (!lt_model_graph(stage))
		return lt_err_set(err, LT_ENOTSUP, "the model has no architecture (weights only), so it cannot "
				  "be evaluated");
	if (!o->eval.data || o->eval.data->n == 0)
		return lt_err_set(err, LT_EINVAL, "sensitivity needs data to evaluate on (a validation split)");
	if (o->n_tensors < 1 || o->n_levels < 1)
		return lt_err_set(err, LT_EINVAL, "sensitivity needs at least one tensor and one sparsity");
	for (int j = 0; j < o->n_levels; j++) {
		if (!(o->levels[j] >= 0 && o->levels[j] <= 1))
			return lt_err_set(err, LT_EINVAL, "sparsities must be between 0 and 1 (got %g)", o->levels[j]);
		if (j && !(o->levels[j] > o->levels[j - 1]))
			return lt_err_set(err, LT_EINVAL, "sparsities must be distinct and ascending (%g after %g)",
					  o->levels[j], o->levels[j - 1]);
	}
	for (int i = 0; i < o->n_tensors; i++) {
		if (!lt_model_tensor(stage, o->tensors[i]))
			return lt_err_set(err, LT_EINVAL, "no tensor named '%s'", o->tensors[i]);
		for (int j = 0; j < i; j++)
			if (!strcmp(o->tensors[i], o->tensors[j]))
				return lt_err_set(err, LT_EINVAL, "'%s' is asked for twice", o->tensors[i]);
	}
	return 0;
}

lt_sensitivity *lt_sensitivity_run(lt_bench *b, const lt_sensitivity_opts *o, lt_err *err)
{
	lt_model *stage = lt_bench_staged(b), *variant = NULL;
	if (check_opts(stage, o, err))
		return NULL;
	lt_sensitivity *s = lt_calloc(1, sizeof *s);
	if (!s)
		goto nomem;
	s->n_tensors = o->n_tensors;
	s->n_levels = o->n_levels;
	s->tensors = lt_calloc((size_t)o->n_tensors, sizeof *s->tensors);
	s->params = lt_malloc_array((size_t)o->n_tensors, sizeof *s->params);
	s->levels = lt_malloc_array((size_t)o->n_levels, sizeof *s->levels);
	s->accuracy = lt_malloc_array((size_t)o->n_tensors * (size_t)o->n_levels, sizeof *s->accuracy);
	if (!s->tensors || !s->params || !s->levels || !s->accuracy)
		goto nomem;
	memcpy(s->levels, o->levels, (size_t)o->n_levels * sizeof *s->levels);
	for (int i = 0; i < o->n_tensors; i++) {
		if (!(s->tensors[i] = lt_strdup(o->tensors[i])))
			goto nomem;
		s->params[i] = lt_tensor_numel(lt_model_tensor(stage, o->tensors[i]));
	}

	/* The baseline is point 0; then tensor by tensor, level by level, so
	 * each tensor's prefix activations are computed once. */
	struct sweep_progress sp = {&o->eval, 0, 1 + (int64_t)o->n_tensors * o->n_levels};
	lt_preview_opts eo = o->eval;
	eo.progress = point_progress;
	eo.progress_ud = &sp;
	lt_metrics m;
	if (lt_bench_measure_from(b, stage, stage, &eo, &m, err))
		goto fail;
	s->baseline = m.accuracy;
	s->images = m.images;
	if (!(variant = lt_model_copy(stage, err)))
		goto fail;
	for (int i = 0; i < o->n_tensors; i++) {
		lt_tensor *orig = lt_model_tensor(stage, o->tensors[i]);
		for (int j = 0; j < o->n_levels; j++) {
			sp.point++;
			lt_prune_spec spec = {.method = o->method, .sparsity = o->levels[j], .seed = o->seed + (uint64_t)i};
			lt_tensor *pruned = lt_prune_tensor(orig, &spec, err);
			if (!pruned)
				goto fail;
			int rc = lt_model_set_tensor(variant, o->tensors[i], pruned, err);
			lt_tensor_unref(pruned);
			if (rc || lt_bench_measure_from(b, stage, variant, &eo, &m, err))
				goto fail;
			s->accuracy[(size_t)i * (size_t)o->n_levels + (size_t)j] = m.accuracy;
		}
		if (lt_model_set_tensor(variant, o->tensors[i], orig, err))
			goto fail;
	}
	lt_model_unref(variant);
	return s;
nomem:
	lt_err_set(err, LT_ENOMEM, "out of memory for a sensitivity analysis");
fail:
	lt_model_unref(variant);
	lt_sensitivity_free(s);
	return NULL;
}

int64_t lt_sensitivity_choose(const lt_sensitivity *s, double budget, double *chosen)
{
	int n = s->n_tensors, L = s->n_levels;
	int at[n > 0 ? n : 1]; /* level index + 1 per tensor; 0 = unpruned */
	double spent = 0;
	int64_t removed = 0;
	for (int i = 0; i < n; i++)
		at[i] = 0, chosen[i] = 0;
	for (;;) {
		int best_i = -1, best_j = -1;
		double best_ratio = -1, best_gain = 0, best_cost = 0;
		for (int i = 0; i < n; i++) {
			double now = at[i] ? s->levels[at[i] - 1] : 0;
			double drop_now = at[i] ? fmax(0, s->baseline - s->accuracy[(size_t)i * L + at[i] - 1]) : 0;
			for (int j = at[i]; j < L; j++) {
				double cost = fmax(0, s->baseline - s->accuracy[(size_t)i * L + j]) - drop_now;
				double gain = (double)s->params[i] * (s->levels[j] - now);
				if (gain <= 0 || spent + cost > budget + 1e-12)
					continue;
				/* moves that cost nothing first (the largest), then the
				 * most weights per unit of accuracy */
				double ratio = cost <= 0 ? INFINITY : gain / cost;
				if (ratio > best_ratio || (ratio == best_ratio && gain > best_gain)) {
					best_ratio = ratio, best_gain = gain, best_cost = cost;
					best_i = i, best_j = j;
				}
			}
		}
		if (best_i < 0)
			break;
		at[best_i] = best_j + 1;
		spent += best_cost;
	}
	for (int i = 0; i < n; i++) {
		chosen[i] = at[i] ? s->levels[at[i] - 1] : 0;
		removed += (int64_t)llround((double)s->params[i] * chosen[i]);
	}
	return removed;
}
