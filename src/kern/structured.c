#include "kern/structured.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "core/mem.h"
#include "kern/prune.h"

/* ---- norms, selection, masks --------------------------------------- */

/* View w as [outer, units, inner] around dim, so unit u of outer block o
 * starts at (o * units + u) * inner. */
static int unit_view(lt_tensor *w, int dim, int64_t *outer, int64_t *units,
		     int64_t *inner, lt_err *err)
{
	int nd = lt_tensor_ndim(w);
	const int64_t *s = lt_tensor_shape(w);
	if (dim != 0 && dim != 1)
		return lt_err_set(err, LT_EINVAL, "units run along dim 0 (outputs) or 1 (inputs), not %d", dim);
	if (nd < 2)
		return lt_err_set(err, LT_EINVAL, "structured pruning needs a weight with 2 or more "
				  "dimensions (got %d)", nd);
	*outer = dim == 0 ? 1 : s[0];
	*units = s[dim];
	*inner = 1;
	for (int d = dim + 1; d < nd; d++)
		*inner *= s[d];
	return 0;
}

int lt_structured_norms(lt_tensor *w, int dim, int p, float *norms, lt_err *err)
{
	int64_t outer = 0, units = 0, inner = 0;
	int rc = unit_view(w, dim, &outer, &units, &inner, err);
	if (rc)
		return rc;
	if (p != 1 && p != 2)
		return lt_err_set(err, LT_EINVAL, "norm must be L1 or L2 (p = 1 or 2), not %d", p);
	const float *v = lt_tensor_data(w, err);
	if (!v)
		return LT_ENOMEM;
	for (int64_t u = 0; u < units; u++) {
		double acc = 0.0;
		for (int64_t o = 0; o < outer; o++) {
			const float *x = v + (o * units + u) * inner;
			for (int64_t i = 0; i < inner; i++)
				acc += p == 1 ? fabs((double)x[i]) : (double)x[i] * x[i];
		}
		norms[u] = (float)(p == 1 ? acc : sqrt(acc));
	}
	return 0;
}

/* unit[u] = 0 for the k smallest norms, 1 for the rest. Norms are never
 * negative, so magnitude selection orders them as they are. */
static int unit_mask(const float *norms, int64_t n, int64_t k, float **unit, lt_err *err)
{
	*unit = lt_malloc_array((size_t)(n ? n : 1), sizeof **unit);
	if (!*unit)
		return lt_err_set(err, LT_ENOMEM, "out of memory selecting units");
	int rc = lt_prune_magnitude_mask(norms, NULL, n, k, *unit, err);
	if (rc) {
		lt_free(*unit);
		*unit = NULL;
	}
	return rc;
}

int lt_structured_keep(const float *norms, int64_t n, int64_t k, int64_t *keep, lt_err *err)
{
	float *unit;
	int rc = unit_mask(norms, n, k, &unit, err);
	if (rc)
		return rc;
	int64_t j = 0;
	for (int64_t u = 0; u < n; u++)
		if (unit[u] != 0.0f)
			keep[j++] = u;
	lt_free(unit);
	return 0;
}

int lt_structured_mask(lt_tensor *w, int dim, int p, int64_t k, float *mask, lt_err *err)
{
	int64_t outer = 0, units = 0, inner = 0;
	int rc = unit_view(w, dim, &outer, &units, &inner, err);
	if (rc)
		return rc;
	if (k < 0 || k > units)
		return lt_err_set(err, LT_EINVAL, "cannot remove %" PRId64 " of %" PRId64 " units", k, units);
	const float *old = NULL;
	if (lt_tensor_mask(w) && !(old = lt_tensor_data(lt_tensor_mask(w), err)))
		return LT_ENOMEM;
	float *norms = lt_malloc_array((size_t)(units ? units : 1), sizeof *norms), *unit = NULL;
	if (!norms)
		return lt_err_set(err, LT_ENOMEM, "out of memory computing unit norms");
	if ((rc = lt_structured_norms(w, dim, p, norms, err)) ||
	    (rc = unit_mask(norms, units, k, &unit, err)))
		goto out;
	for (int64_t o = 0; o < outer; o++) {
		for (int64_t u = 0; u < units; u++) {
			int64_t at = (o * units + u) * inner;
			for (int64_t i = 0; i < inner; i++)
				mask[at + i] = unit[u] != 0.0f && !(old && old[at + i] == 0.0f) ? 1.0f : 0.0f;
		}
	}
out:
	lt_free(norms);
	lt_free(unit);
	return rc;
}

/* A new tensor with w's values where mask is 1 and zero elsewhere,
 * carrying mask (the caller keeps its reference); w's F16/BF16 dtype is
 * kept since zeroing loses nothing. */
static lt_tensor *zero_by_mask(lt_tensor *w, const float *wv, lt_tensor *mask, lt_err *err)
{
	lt_tensor *out = lt_tensor_new(lt_tensor_ndim(w), lt_tensor_shape(w), err);
	float *o = out ? lt_tensor_data_mut(out, err) : NULL;
	const float *m = lt_tensor_data(mask, err);
	if (!o || !m)
		goto fail;
	for (int64_t i = 0, n = lt_tensor_numel(w); i < n; i++)
		o[i] = m[i] != 0.0f ? wv[i] : 0.0f;
	lt_dtype dt = lt_tensor_dtype(w);
	if (dt == LT_F16 || dt == LT_BF16) {
		lt_tensor *half = lt_tensor_cast(out, dt, err);
		if (!half)
			goto fail;
		lt_tensor_unref(out);
		out = half;
	}
	if (lt_tensor_set_mask(out, mask, err))
		goto fail;
	return out;
fail:
	lt_tensor_unref(out);
	return NULL;
}

lt_tensor *lt_structured_prune_tensor(lt_tensor *w, int dim, int p, double amount, lt_err *err)
{
	int64_t outer = 0, units = 0, inner = 0;
	if (unit_view(w, dim, &outer, &units, &inner, err))
		return NULL;
	if (!(amount >= 0.0 && amount <= 1.0)) {
		lt_err_set(err, LT_EINVAL, "amount must be between 0 and 1 (got %g)", amount);
		return NULL;
	}
	const float *wv = lt_tensor_data(w, err);
	lt_tensor *mask = wv ? lt_tensor_new(lt_tensor_ndim(w), lt_tensor_shape(w), err) : NULL;
	float *m = mask ? lt_tensor_data_mut(mask, err) : NULL;
	lt_tensor *out = NULL;
	if (m && !lt_structured_mask(w, dim, p, lt_prune_count(units, amount), m, err))
		out = zero_by_mask(w, wv, mask, err);
	lt_tensor_unref(mask);
	return out;
}

/* ---- N:M ------------------------------------------------------------- */

/* Ordering key of a weight inside its group: masked ones below all. NaN
 * ranks on top so the order stays total and a group never keeps more
 * than N. */
static float nm_rank(const float *w, const float *old_mask, int64_t i)
{
	if (old_mask && old_mask[i] == 0.0f)
		return -1.0f;
	float a = fabsf(w[i]);
	return isnan(a) ? INFINITY : a;
}

int lt_structured_nm_mask(const float *w, const float *old_mask, int ndim,
			  const int64_t *shape, int n, int m, float *mask, lt_err *err)
{
	if (ndim != 2 && ndim != 4)
		return lt_err_set(err, LT_EINVAL, "N:M sparsity needs a linear [out, in] or conv "
				  "[out, in, kh, kw] weight (got %d dimensions)", ndim);
	if (n < 1 || n >= m)
		return lt_err_set(err, LT_EINVAL, "N:M needs 1 <= N < M (got %d:%d)", n, m);
	int64_t out = shape[0], in = shape[1], inner = ndim == 4 ? shape[2] * shape[3] : 1;
	if (in % m)
		return lt_err_set(err, LT_EINVAL, "%d:%d groups run along the %" PRId64 " %s, which %d "
				  "does not divide", n, m, in, ndim == 4 ? "input channels" : "inputs", m);
	for (int64_t o = 0; o < out; o++) {
		for (int64_t g = 0; g < in / m; g++) {
			for (int64_t s = 0; s < inner; s++) {
				int64_t base = (o * in + g * m) * inner + s;
				/* Kept when fewer than n group members outrank it
				 * (larger, or equal at a lower index). */
				for (int j = 0; j < m; j++) {
					float rj = nm_rank(w, old_mask, base + j * inner);
					int above = 0;
					for (int i = 0; i < m && above < n; i++) {
						float ri = nm_rank(w, old_mask, base + i * inner);
						above += ri > rj || (ri == rj && i < j);
					}
					mask[base + j * inner] = above < n && rj >= 0.0f ? 1.0f : 0.0f;
				}
			}
		}
	}
	return 0;
}

lt_tensor *lt_structured_nm_tensor(lt_tensor *w, int n, int m, lt_err *err)
{
	const float *wv = lt_tensor_data(w, err), *old = NULL;
	if (!wv)
		return NULL;
	if (lt_tensor_mask(w) && !(old = lt_tensor_data(lt_tensor_mask(w), err)))
		return NULL;
	lt_tensor *mask = lt_tensor_new(lt_tensor_ndim(w), lt_tensor_shape(w), err);
	float *mv = mask ? lt_tensor_data_mut(mask, err) : NULL;
	lt_tensor *out = NULL;
	if (mv && !lt_structured_nm_mask(wv, old, lt_tensor_ndim(w), lt_tensor_shape(w), n, m, mv, err))
		out = zero_by_mask(w, wv, mask, err);
	lt_tensor_unref(mask);
	return out;
}

/* ---- thinning -------------------------------------------------------- */

/* One node on the path from the layer losing outputs to the layer losing
 * inputs, with the kept indices of the value it reads (for the first node,
 * of the value it writes). */
struct step {
	int node;
	const int64_t *idx;
	int64_t n;
};

struct thin {
	const lt_graph *g;
	struct step *steps;     /* [n_nodes + 1]: a path visits each node once */
	int n_steps;
	int64_t *owned[2];      /* index sets made by flatten mappings */
};

static int passes_channels(lt_op op)
{
	switch (op) {
	case LT_OP_RELU: case LT_OP_TANH: case LT_OP_SIGMOID: case LT_OP_DROPOUT:
	case LT_OP_MAXPOOL2D: case LT_OP_AVGPOOL2D:
	case LT_OP_BATCHNORM1D: case LT_OP_BATCHNORM2D:
		return 1;
	default:
		return 0;
	}
}

/* Features per channel of value v: 1 for a flat value, H*W for [C, H, W]. */
static int64_t per_channel(const lt_graph *g, int v)
{
	const int64_t *s = lt_graph_value_shape(g, v);
	return lt_graph_value_ndim(g, v) < 2 || s[0] == 0 ? 1 : lt_graph_value_numel(g, v) / s[0];
}

static int64_t *own_set(struct thin *t, int64_t n, lt_err *err)
{
	int slot = t->owned[0] ? 1 : 0;
	if (t->owned[slot]) {
		/* A second expanding flatten would need a reshape between. */
		lt_err_set(err, LT_ENOTSUP, "more than one flatten of a multi-dimensional value on the path");
		return NULL;
	}
	t->owned[slot] = lt_malloc_array((size_t)(n ? n : 1), sizeof **t->owned);
	if (!t->owned[slot])
		lt_err_set(err, LT_ENOMEM, "out of memory mapping channels");
	return t->owned[slot];
}

/* Walk up from layer x (dim 1) to the linear or conv2d producing its inputs;
 * *prod gets its index and *chan / *n_chan the outputs it keeps. */
static int find_producer(struct thin *t, int x, const int64_t *keep, int64_t n_keep,
			 int *prod, const int64_t **chan, int64_t *n_chan, lt_err *err)
{
	const lt_graph *g = t->g;
	const int64_t *set = keep;
	int64_t n = n_keep;
	for (int v = g->nodes[x].inputs[0];; v = g->nodes[v - 1].inputs[0]) {
		if (v == 0)
			return lt_err_set(err, LT_ENOTSUP, "the inputs of layer '%s' are the model's input, "
					  "which cannot be thinned", g->nodes[x].name);
		const lt_node *q = &g->nodes[v - 1];
		if (q->op == LT_OP_LINEAR || q->op == LT_OP_CONV2D) {
			*prod = v - 1;
			*chan = set;
			*n_chan = n;
			return 0;
		}
		if (q->op == LT_OP_FLATTEN && per_channel(g, q->inputs[0]) > 1) {
			int64_t hw = per_channel(g, q->inputs[0]);
			int whole = n % hw == 0;
			for (int64_t j = 0; whole && j < n; j++)
				whole = set[j] % hw == j % hw && set[j] - set[j - j % hw] == j % hw;
			if (!whole)
				return lt_err_set(err, LT_EINVAL, "the kept inputs of layer '%s' must be whole "
						  "channels: blocks of %" PRId64 " columns after '%s'",
						  g->nodes[x].name, hw, q->name);
			int64_t *c = own_set(t, n / hw, err);
			if (!c)
				return err ? err->code : LT_ENOMEM;
			for (int64_t j = 0; j < n / hw; j++)
				c[j] = set[j * hw] / hw;
			set = c;
			n /= hw;
		} else if (q->op == LT_OP_SOFTMAX) {
			return lt_err_set(err, LT_ENOTSUP, "softmax '%s' normalises over the inputs of layer "
					  "'%s'; removing some would change the others", q->name, g->nodes[x].name);
		} else if (q->op != LT_OP_FLATTEN && !passes_channels(q->op)) {
			return lt_err_set(err, LT_ENOTSUP, "layer '%s' (%s) cannot pass thinned units",
					  q->name, lt_op_name(q->op));
		}
	}
}

/* The single node reading value v; refuses chains that split or end. */
static int sole_consumer(const lt_graph *g, int v, const char *layer, lt_err *err)
{
	int who = -1, count = 0;
	for (int i = v; i < g->n_nodes; i++) {
		for (int k = 0; k < g->nodes[i].n_inputs; k++) {
			if (g->nodes[i].inputs[k] == v) {
				who = i;
				count++;
			}
		}
	}
	if (count == 1)
		return who;
	if (count > 1)
		return lt_err_set(err, LT_ENOTSUP, "the output of layer '%s' feeds %d layers; thinning "
				  "follows only a single chain", g->nodes[v - 1].name, count);
	if (v == g->n_nodes)
		return lt_err_set(err, LT_ENOTSUP, "the units of layer '%s' are the model's outputs "
				  "(the classes) and cannot be removed", layer);
	return lt_err_set(err, LT_ENOTSUP, "the output of layer '%s' is not used by any layer",
			  g->nodes[v - 1].name);
}

/* Walk down from layer p, which keeps outputs chan, to the next linear or
 * conv2d, recording every node whose tensors or features change. */
static int plan_down(struct thin *t, int p, const int64_t *chan, int64_t n_chan,
		     const char *layer, lt_err *err)
{
	const lt_graph *g = t->g;
	const int64_t *set = chan;
	int64_t n = n_chan;
	t->steps[t->n_steps++] = (struct step){p, chan, n_chan};
	for (int v = p + 1;;) {
		int c = sole_consumer(g, v, layer, err);
		if (c < 0)
			return c;
		const lt_node *q = &g->nodes[c];
		if (q->op == LT_OP_FLATTEN && per_channel(g, v) > 1) {
			int64_t hw = per_channel(g, v);
			int64_t *f = own_set(t, n * hw, err);
			if (!f)
				return err ? err->code : LT_ENOMEM;
			for (int64_t j = 0; j < n; j++)
				for (int64_t s = 0; s < hw; s++)
					f[j * hw + s] = set[j] * hw + s;
			set = f;
			n *= hw;
		} else if (q->op == LT_OP_LINEAR || q->op == LT_OP_CONV2D) {
			t->steps[t->n_steps++] = (struct step){c, set, n};
			return 0;
		} else if (q->op == LT_OP_BATCHNORM1D || q->op == LT_OP_BATCHNORM2D) {
			t->steps[t->n_steps++] = (struct step){c, set, n};
		} else if (q->op == LT_OP_SOFTMAX) {
			if (c == g->n_nodes - 1)
				return lt_err_set(err, LT_ENOTSUP, "the units of layer '%s' are the model's "
						  "outputs (the classes) and cannot be removed", layer);
			return lt_err_set(err, LT_ENOTSUP, "softmax '%s' normalises over the units of layer "
					  "'%s'; removing some would change the others", q->name, layer);
		} else if (q->op != LT_OP_FLATTEN && !passes_channels(q->op)) {
			return lt_err_set(err, LT_ENOTSUP, "layer '%s' (%s) cannot pass thinned units",
					  q->name, lt_op_name(q->op));
		}
		v = c + 1;
	}
}

/* A new tensor: t's slices idx[0..n) along dim (0 or 1), with its mask
 * sliced alike and an F16/BF16 dtype kept. */
static lt_tensor *slice_tensor(lt_tensor *t, const char *name, int dim, const int64_t *idx,
			       int64_t n, lt_err *err)
{
	int nd = lt_tensor_ndim(t);
	const int64_t *s = lt_tensor_shape(t);
	if (nd <= dim || idx[n - 1] >= s[dim]) {
		char shp[96];
		lt_err_set(err, LT_EINVAL, "tensor '%s' has shape %s, which does not match its layer",
			   name, lt_shape_format(nd, s, shp, sizeof shp));
		return NULL;
	}
	int64_t shape[LT_MAX_DIMS], outer = dim == 0 ? 1 : s[0], units = s[dim], inner = 1;
	memcpy(shape, s, (size_t)nd * sizeof *shape);
	shape[dim] = n;
	for (int d = dim + 1; d < nd; d++)
		inner *= s[d];
	lt_tensor *src[2] = {t, lt_tensor_mask(t)}, *dst[2] = {NULL, NULL};
	for (int k = 0; k < 2 && src[k]; k++) {
		const float *from = lt_tensor_data(src[k], err);
		float *to = NULL;
		if (!from || !(dst[k] = lt_tensor_new(nd, shape, err)) ||
		    !(to = lt_tensor_data_mut(dst[k], err)))
			goto fail;
		for (int64_t o = 0; o < outer; o++)
			for (int64_t j = 0; j < n; j++)
				memcpy(to + (o * n + j) * inner, from + (o * units + idx[j]) * inner,
				       (size_t)inner * sizeof *to);
	}
	lt_dtype dt = lt_tensor_dtype(t);
	if (dt == LT_F16 || dt == LT_BF16) {
		lt_tensor *half = lt_tensor_cast(dst[0], dt, err);
		if (!half)
			goto fail;
		lt_tensor_unref(dst[0]);
		dst[0] = half;
	}
	if (dst[1] && lt_tensor_set_mask(dst[0], dst[1], err))
		goto fail;
	lt_tensor_unref(dst[1]);
	return dst[0];
fail:
	lt_tensor_unref(dst[0]);
	lt_tensor_unref(dst[1]);
	return NULL;
}

/* Replace tensor slot of node in c by its slice; a tensor read by another
 * layer too cannot shrink for one of them. */
static int slice_param(lt_model *c, const lt_graph *g, int node, int slot, int dim,
		       const int64_t *idx, int64_t n, lt_err *err)
{
	const char *name = g->nodes[node].params[slot];
	if (!name)
		return 0;
	for (int i = 0; i < g->n_nodes; i++)
		for (int s = 0; s < LT_NODE_MAX_PARAMS; s++)
			if ((i != node || s != slot) && g->nodes[i].params[s] &&
			    !strcmp(g->nodes[i].params[s], name))
				return lt_err_set(err, LT_ENOTSUP, "tensor '%s' is shared by layers '%s' and "
						  "'%s'", name, g->nodes[node].name, g->nodes[i].name);
	lt_tensor *t = lt_model_tensor(c, name);
	if (!t)
		return lt_err_set(err, LT_EINVAL, "layer '%s' needs tensor '%s', which the model lacks",
				  g->nodes[node].name, name);
	lt_tensor *s = slice_tensor(t, name, dim, idx, n, err);
	if (!s)
		return err ? err->code : LT_ENOMEM;
	int rc = lt_model_set_tensor(c, name, s, err);
	lt_tensor_unref(s);
	return rc;
}

/* Apply the plan to c (a copy of the model) and to its graph clone e. */
static int apply(lt_model *c, lt_graph *e, const struct thin *t, lt_err *err)
{
	const lt_graph *g = t->g;
	int rc = 0;
	for (int k = 0; k < t->n_steps && !rc; k++) {
		const struct step *st = &t->steps[k];
		lt_node *n = &e->nodes[st->node];
		if (k == 0) {
			n->out_features = st->n;
			if (!(rc = slice_param(c, g, st->node, LT_P_WEIGHT, 0, st->idx, st->n, err)))
				rc = slice_param(c, g, st->node, LT_P_BIAS, 0, st->idx, st->n, err);
		} else if (k == t->n_steps - 1) {
			n->in_features = st->n;
			rc = slice_param(c, g, st->node, LT_P_WEIGHT, 1, st->idx, st->n, err);
		} else {
			n->in_features = n->out_features = st->n;
			for (int s = 0; s < LT_NODE_MAX_PARAMS && !rc; s++)
				rc = slice_param(c, g, st->node, s, 0, st->idx, st->n, err);
		}
	}
	return rc;
}

static int check_keep(const lt_node *x, int dim, const int64_t *keep, int64_t n_keep, lt_err *err)
{
	int64_t units = dim == 0 ? x->out_features : x->in_features;
	const char *what = dim == 0 ? "outputs" : "inputs";
	if (n_keep < 1)
		return lt_err_set(err, LT_EINVAL, "layer '%s' must keep at least one of its %s", x->name, what);
	for (int64_t j = 0; j < n_keep; j++) {
		if (keep[j] < 0 || keep[j] >= units)
			return lt_err_set(err, LT_EINVAL, "layer '%s' has %" PRId64 " %s; cannot keep %s %" PRId64,
					  x->name, units, what, dim == 0 ? "output" : "input", keep[j]);
		if (j > 0 && keep[j] <= keep[j - 1])
			return lt_err_set(err, LT_EINVAL, "the units to keep must be in increasing order "
					  "without repeats (%" PRId64 " follows %" PRId64 ")", keep[j], keep[j - 1]);
	}
	return 0;
}

lt_model *lt_structured_thin(const lt_model *m, const char *layer, int dim,
			     const int64_t *keep, int64_t n_keep, lt_err *err)
{
	const lt_graph *g = lt_model_graph(m);
	struct thin t = {g, NULL, 0, {NULL, NULL}};
	lt_model *c = NULL;
	lt_graph *e = NULL, *fresh = NULL;
	char *json = NULL;
	if (!g) {
		lt_err_set(err, LT_ENOTSUP, "the model has no architecture; thinning needs its layer graph");
		return NULL;
	}
	int x = -1;
	for (int i = 0; i < g->n_nodes && x < 0; i++)
		if (!strcmp(g->nodes[i].name, layer))
			x = i;
	if (x < 0) {
		lt_err_set(err, LT_EINVAL, "no layer named '%s'", layer);
		return NULL;
	}
	if (g->nodes[x].op != LT_OP_LINEAR && g->nodes[x].op != LT_OP_CONV2D) {
		lt_err_set(err, LT_EINVAL, "layer '%s' is %s; only linear and conv2d layers have units "
			   "to remove", layer, lt_op_name(g->nodes[x].op));
		return NULL;
	}
	if (dim != 0 && dim != 1) {
		lt_err_set(err, LT_EINVAL, "units run along dim 0 (outputs) or 1 (inputs), not %d", dim);
		return NULL;
	}
	if (check_keep(&g->nodes[x], dim, keep, n_keep, err))
		return NULL;
	if (!(t.steps = lt_malloc_array((size_t)g->n_nodes + 1, sizeof *t.steps))) {
		lt_err_set(err, LT_ENOMEM, "out of memory planning the thinning");
		return NULL;
	}
	int p = x;
	const int64_t *chan = keep;
	int64_t n_chan = n_keep;
	if ((dim == 1 && find_producer(&t, x, keep, n_keep, &p, &chan, &n_chan, err)) ||
	    plan_down(&t, p, chan, n_chan, g->nodes[p].name, err))
		goto fail;
	if (!(c = lt_model_copy(m, err)) || !(e = lt_graph_clone(g, err)) || apply(c, e, &t, err))
		goto fail;
	/* Shapes and MACs come from parsing the new architecture, which is
	 * also what a saved file will say. */
	if (!(json = lt_graph_to_json(e, err)))
		goto fail;
	if (!(fresh = lt_graph_from_json(json, err))) {
		lt_err_prefix(err, "thinned architecture");
		goto fail;
	}
	if (lt_model_set_graph(c, fresh, err))
		goto fail;
	fresh = NULL;
	if (lt_model_set_meta(c, LT_ARCH_META_KEY, json, err))
		goto fail;
	lt_free(json);
	lt_graph_free(e);
	lt_free(t.steps);
	lt_free(t.owned[0]);
	lt_free(t.owned[1]);
	return c;
fail:
	lt_free(json);
	lt_graph_free(fresh);
	lt_graph_free(e);
	lt_model_unref(c);
	lt_free(t.steps);
	lt_free(t.owned[0]);
	lt_free(t.owned[1]);
	return NULL;
}
