#include "core/graph.h"

#include <float.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include "core/tensor.h"

#define ARCH_FORMAT "lathe-arch-1"

static const char *const op_names[LT_OP_COUNT] = {
	[LT_OP_LINEAR] = "linear",       [LT_OP_CONV2D] = "conv2d",
	[LT_OP_MAXPOOL2D] = "maxpool2d", [LT_OP_AVGPOOL2D] = "avgpool2d",
	[LT_OP_RELU] = "relu",           [LT_OP_TANH] = "tanh",
	[LT_OP_SIGMOID] = "sigmoid",     [LT_OP_FLATTEN] = "flatten",
	[LT_OP_SOFTMAX] = "softmax",     [LT_OP_BATCHNORM1D] = "batchnorm1d",
	[LT_OP_BATCHNORM2D] = "batchnorm2d", [LT_OP_DROPOUT] = "dropout",
};

/* Keys each op accepts besides op, name and inputs; anything else is a typo
 * the user should hear about rather than a silently ignored setting. */
static const char *const op_keys[LT_OP_COUNT] = {
	[LT_OP_LINEAR] = "in_features out_features bias",
	[LT_OP_CONV2D] = "in_channels out_channels kernel_size stride padding bias",
	[LT_OP_MAXPOOL2D] = "kernel_size stride padding",
	[LT_OP_AVGPOOL2D] = "kernel_size stride padding",
	[LT_OP_RELU] = "", [LT_OP_TANH] = "", [LT_OP_SIGMOID] = "",
	[LT_OP_FLATTEN] = "",
	[LT_OP_SOFTMAX] = "dim",
	[LT_OP_BATCHNORM1D] = "num_features eps momentum",
	[LT_OP_BATCHNORM2D] = "num_features eps momentum",
	[LT_OP_DROPOUT] = "p",
};

const char *lt_op_name(lt_op op)
{
	return (unsigned)op < LT_OP_COUNT ? op_names[op] : "?";
}

int lt_op_parse(const char *name, lt_op *out)
{
	for (int i = 0; i < LT_OP_COUNT; i++) {
		if (strcmp(name, op_names[i]) == 0) {
			*out = (lt_op)i;
			return 0;
		}
	}
	return LT_EINVAL;
}

int lt_op_is_identity(lt_op op)
{
	return op == LT_OP_FLATTEN || op == LT_OP_DROPOUT;
}

int lt_graph_check_act_threshold(const lt_graph *g, int i, double t, lt_err *err)
{
	const lt_node *n = &g->nodes[i];
	if (!(t >= 0 && t <= FLT_MAX))
		return lt_err_set(err, LT_EINVAL, "activation threshold of layer '%s' must be 0 or more "
				  "(got %g)", n->name, t);
	if (t > 0 && lt_op_is_identity(n->op))
		return lt_err_set(err, LT_EINVAL, "layer '%s' (%s) passes its input through; threshold "
				  "the layer before it", n->name, lt_op_name(n->op));
	return 0;
}

static int key_allowed(lt_op op, const char *key)
{
	if (!strcmp(key, "op") || !strcmp(key, "name") || !strcmp(key, "inputs") ||
	    (!strcmp(key, "act_threshold") && !lt_op_is_identity(op)))
		return 1;
	size_t n = strlen(key);
	for (const char *p = op_keys[op]; *p;) {
		size_t len = strcspn(p, " ");
		if (len == n && n > 0 && !strncmp(p, key, n))
			return 1;
		p += len;
		p += strspn(p, " ");
	}
	return 0;
}

void lt_graph_free(lt_graph *g)
{
	if (!g)
		return;
	for (int i = 0; i < g->n_nodes; i++) {
		lt_free(g->nodes[i].name);
		for (int s = 0; s < LT_NODE_MAX_PARAMS; s++)
			lt_free(g->nodes[i].params[s]);
	}
	lt_free(g->nodes);
	lt_free(g);
}

lt_graph *lt_graph_clone(const lt_graph *g, lt_err *err)
{
	lt_graph *c = lt_malloc(sizeof *c);
	if (!c)
		goto nomem;
	*c = *g;
	c->nodes = lt_calloc((size_t)(g->n_nodes ? g->n_nodes : 1), sizeof *c->nodes);
	if (!c->nodes) {
		lt_free(c);
		goto nomem;
	}
	int ok = 1;
	for (int i = 0; i < g->n_nodes; i++) {
		lt_node *n = &c->nodes[i];
		*n = g->nodes[i];
		n->name = g->nodes[i].name ? lt_strdup(g->nodes[i].name) : NULL;
		ok &= !g->nodes[i].name || n->name != NULL;
		for (int s = 0; s < LT_NODE_MAX_PARAMS; s++) {
			n->params[s] = g->nodes[i].params[s] ? lt_strdup(g->nodes[i].params[s]) : NULL;
			ok &= !g->nodes[i].params[s] || n->params[s] != NULL;
		}
	}
	if (ok)
		return c;
	lt_graph_free(c);
nomem:
	lt_err_set(err, LT_ENOMEM, "out of memory copying the graph");
	return NULL;
}

/* ---- parsing ---------------------------------------------------------- */

struct parse {
	lt_err *err;
	const char *where; /* "layer 3 (conv1)" */
};

static int get_int(struct parse *ps, json_t *obj, const char *key, int64_t lo,
		   int64_t hi, int required, int64_t dflt, int64_t *out)
{
	json_t *v = json_object_get(obj, key);
	if (!v) {
		if (required)
			return lt_err_set(ps->err, LT_EFORMAT, "%s: missing '%s'", ps->where, key);
		*out = dflt;
		return 0;
	}
	if (!json_is_integer(v))
		return lt_err_set(ps->err, LT_EFORMAT, "%s: '%s' must be an integer", ps->where, key);
	int64_t x = json_integer_value(v);
	if (x < lo || x > hi)
		return lt_err_set(ps->err, LT_EFORMAT, "%s: '%s' = %" PRId64 " is outside %" PRId64 "..%" PRId64,
				  ps->where, key, x, lo, hi);
	*out = x;
	return 0;
}

/* An int or an [h, w] pair, as PyTorch accepts for kernel_size etc. */
static int get_pair(struct parse *ps, json_t *obj, const char *key, int lo, int hi,
		    int required, const int *dflt, int out[2])
{
	json_t *v = json_object_get(obj, key);
	if (!v) {
		if (required)
			return lt_err_set(ps->err, LT_EFORMAT, "%s: missing '%s'", ps->where, key);
		out[0] = dflt[0];
		out[1] = dflt[1];
		return 0;
	}
	json_t *items[2] = {v, v};
	if (json_is_array(v)) {
		if (json_array_size(v) != 2)
			return lt_err_set(ps->err, LT_EFORMAT, "%s: '%s' must be an integer or a pair",
					  ps->where, key);
		items[0] = json_array_get(v, 0);
		items[1] = json_array_get(v, 1);
	}
	for (int i = 0; i < 2; i++) {
		if (!json_is_integer(items[i]))
			return lt_err_set(ps->err, LT_EFORMAT, "%s: '%s' must be an integer or a pair",
					  ps->where, key);
		json_int_t x = json_integer_value(items[i]);
		if (x < lo || x > hi)
			return lt_err_set(ps->err, LT_EFORMAT, "%s: '%s' must be in %d..%d",
					  ps->where, key, lo, hi);
		out[i] = (int)x;
	}
	return 0;
}

static int get_real(struct parse *ps, json_t *obj, const char *key, double lo,
		    double hi, double dflt, float *out)
{
	json_t *v = json_object_get(obj, key);
	if (!v) {
		*out = (float)dflt;
		return 0;
	}
	if (!json_is_number(v))
		return lt_err_set(ps->err, LT_EFORMAT, "%s: '%s' must be a number", ps->where, key);
	double x = json_number_value(v);
	if (!(x >= lo && x <= hi))
		return lt_err_set(ps->err, LT_EFORMAT, "%s: '%s' must be in [%g, %g]", ps->where, key, lo, hi);
	*out = (float)x;
	return 0;
}

static int get_bool(struct parse *ps, json_t *obj, const char *key, int dflt, int *out)
{
	json_t *v = json_object_get(obj, key);
	if (!v) {
		*out = dflt;
		return 0;
	}
	if (!json_is_boolean(v))
		return lt_err_set(ps->err, LT_EFORMAT, "%s: '%s' must be true or false", ps->where, key);
	*out = json_is_true(v);
	return 0;
}

static int set_param(lt_node *n, int slot, const char *suffix, lt_err *err)
{
	size_t len = strlen(n->name) + strlen(suffix) + 2;
	n->params[slot] = lt_malloc(len);
	if (!n->params[slot])
		return lt_err_set(err, LT_ENOMEM, "out of memory");
	snprintf(n->params[slot], len, "%s.%s", n->name, suffix);
	return 0;
}

static int parse_attrs(struct parse *ps, json_t *l, lt_node *n)
{
	int rc = 0, bias = 1;
	int64_t v;
	static const int zero[2] = {0, 0};
	switch (n->op) {
	case LT_OP_LINEAR:
		if ((rc = get_int(ps, l, "in_features", 1, INT32_MAX, 1, 0, &n->in_features)) ||
		    (rc = get_int(ps, l, "out_features", 1, INT32_MAX, 1, 0, &n->out_features)) ||
		    (rc = get_bool(ps, l, "bias", 1, &bias)))
			return rc;
		break;
	case LT_OP_CONV2D:
		if ((rc = get_int(ps, l, "in_channels", 1, INT32_MAX, 1, 0, &n->in_features)) ||
		    (rc = get_int(ps, l, "out_channels", 1, INT32_MAX, 1, 0, &n->out_features)) ||
		    (rc = get_pair(ps, l, "kernel_size", 1, 1 << 16, 1, NULL, n->kernel)) ||
		    (rc = get_pair(ps, l, "stride", 1, 1 << 16, 0, (const int[2]){1, 1}, n->stride)) ||
		    (rc = get_pair(ps, l, "padding", 0, 1 << 16, 0, zero, n->padding)) ||
		    (rc = get_bool(ps, l, "bias", 1, &bias)))
			return rc;
		break;
	case LT_OP_MAXPOOL2D:
	case LT_OP_AVGPOOL2D:
		if ((rc = get_pair(ps, l, "kernel_size", 1, 1 << 16, 1, NULL, n->kernel)) ||
		    (rc = get_pair(ps, l, "stride", 1, 1 << 16, 0, n->kernel, n->stride)) ||
		    (rc = get_pair(ps, l, "padding", 0, 1 << 16, 0, zero, n->padding)))
			return rc;
		/* PyTorch's rule: padding at most half the kernel. */
		if (n->padding[0] * 2 > n->kernel[0] || n->padding[1] * 2 > n->kernel[1])
			return lt_err_set(ps->err, LT_EFORMAT, "%s: padding must be at most half of kernel_size",
					  ps->where);
		break;
	case LT_OP_SOFTMAX:
		if ((rc = get_int(ps, l, "dim", -1, 1, 0, 1, &v)))
			return rc;
		if (v == 0)
			return lt_err_set(ps->err, LT_EFORMAT, "%s: softmax over the batch (dim 0) is not supported",
					  ps->where);
		break;
	case LT_OP_BATCHNORM1D:
	case LT_OP_BATCHNORM2D:
		if ((rc = get_int(ps, l, "num_features", 1, INT32_MAX, 1, 0, &n->in_features)) ||
		    (rc = get_real(ps, l, "eps", 0, 1, 1e-5, &n->eps)) ||
		    (rc = get_real(ps, l, "momentum", 0, 1, 0.1, &n->momentum)))
			return rc;
		if (!(n->eps > 0))
			return lt_err_set(ps->err, LT_EFORMAT, "%s: 'eps' must be positive", ps->where);
		n->out_features = n->in_features;
		break;
	case LT_OP_DROPOUT:
		if ((rc = get_real(ps, l, "p", 0, 1, 0.5, &n->p)))
			return rc;
		break;
	default:
		break;
	}
	if ((rc = get_real(ps, l, "act_threshold", 0, FLT_MAX, 0, &n->act_threshold)))
		return rc;
	if (n->op == LT_OP_LINEAR || n->op == LT_OP_CONV2D) {
		if ((rc = set_param(n, LT_P_WEIGHT, "weight", ps->err)) ||
		    (bias && (rc = set_param(n, LT_P_BIAS, "bias", ps->err))))
			return rc;
	} else if (n->op == LT_OP_BATCHNORM1D || n->op == LT_OP_BATCHNORM2D) {
		if ((rc = set_param(n, LT_P_WEIGHT, "weight", ps->err)) ||
		    (rc = set_param(n, LT_P_BIAS, "bias", ps->err)) ||
		    (rc = set_param(n, LT_P_MEAN, "running_mean", ps->err)) ||
		    (rc = set_param(n, LT_P_VAR, "running_var", ps->err)))
			return rc;
	}
	return 0;
}

static int has_params(lt_op op)
{
	return op == LT_OP_LINEAR || op == LT_OP_CONV2D ||
	       op == LT_OP_BATCHNORM1D || op == LT_OP_BATCHNORM2D;
}

/* Resolve the "inputs" names of layer i to value ids (default: previous). */
static int parse_inputs(struct parse *ps, json_t *l, lt_graph *g, int i)
{
	lt_node *n = &g->nodes[i];
	json_t *in = json_object_get(l, "inputs");
	if (!in) {
		n->n_inputs = 1;
		n->inputs[0] = i;
		return 0;
	}
	/* Every op so far reads exactly one value. */
	if (!json_is_array(in) || json_array_size(in) != 1)
		return lt_err_set(ps->err, LT_EFORMAT, "%s: 'inputs' must list exactly one earlier layer",
				  ps->where);
	json_t *s = json_array_get(in, 0);
	if (!json_is_string(s))
		return lt_err_set(ps->err, LT_EFORMAT, "%s: 'inputs' must hold layer names", ps->where);
	const char *want = json_string_value(s);
	n->n_inputs = 1;
	if (!strcmp(want, "input")) {
		n->inputs[0] = 0;
		return 0;
	}
	for (int j = 0; j < i; j++) {
		if (!strcmp(g->nodes[j].name, want)) {
			n->inputs[0] = j + 1;
			return 0;
		}
	}
	return lt_err_set(ps->err, LT_EFORMAT, "%s: input '%s' is not an earlier layer", ps->where, want);
}

static int parse_preprocess(lt_graph *g, json_t *pre, lt_err *err)
{
	struct parse ps = {err, "preprocess"};
	g->scale = 255.0f;
	g->n_norm = 0;
	if (!pre)
		return 0;
	if (!json_is_object(pre))
		return lt_err_set(err, LT_EFORMAT, "'preprocess' must be an object");
	const char *key;
	json_t *v;
	json_object_foreach(pre, key, v) {
		if (strcmp(key, "scale") && strcmp(key, "mean") && strcmp(key, "std"))
			return lt_err_set(err, LT_EFORMAT, "preprocess: unknown key '%s'", key);
	}
	int rc = get_real(&ps, pre, "scale", 1e-30, 1e30, 255.0, &g->scale);
	if (rc)
		return rc;
	json_t *mean = json_object_get(pre, "mean"), *std = json_object_get(pre, "std");
	if (!mean && !std)
		return 0;
	size_t nm = json_is_array(mean) ? json_array_size(mean) : 1;
	size_t ns = json_is_array(std) ? json_array_size(std) : 1;
	if (!mean || !std || nm != ns || nm == 0 || nm > 16)
		return lt_err_set(err, LT_EFORMAT, "preprocess: 'mean' and 'std' must both be given, "
				  "as numbers or equal-length lists of at most 16");
	for (size_t c = 0; c < nm; c++) {
		json_t *a = json_is_array(mean) ? json_array_get(mean, c) : mean;
		json_t *b = json_is_array(std) ? json_array_get(std, c) : std;
		if (!json_is_number(a) || !json_is_number(b) || !(json_number_value(b) > 0))
			return lt_err_set(err, LT_EFORMAT, "preprocess: 'mean' must be numbers and 'std' positive numbers");
		g->mean[c] = (float)json_number_value(a);
		g->std[c] = (float)json_number_value(b);
	}
	g->n_norm = (int)nm;
	return 0;
}

static int infer(lt_graph *g, lt_err *err);

lt_graph *lt_graph_from_json(const char *text, lt_err *err)
{
	json_error_t jerr;
	json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	lt_graph *g = NULL;
	if (!root) {
		lt_err_set(err, LT_EFORMAT, "invalid JSON at line %d: %s", jerr.line, jerr.text);
		return NULL;
	}
	if (!json_is_object(root)) {
		lt_err_set(err, LT_EFORMAT, "must be a JSON object");
		goto fail;
	}
	const char *key;
	json_t *v;
	json_object_foreach(root, key, v) {
		if (strcmp(key, "format") && strcmp(key, "input") && strcmp(key, "layers") &&
		    strcmp(key, "preprocess")) {
			lt_err_set(err, LT_EFORMAT, "unknown key '%s'", key);
			goto fail;
		}
	}
	json_t *fmt = json_object_get(root, "format");
	if (fmt && (!json_is_string(fmt) || strcmp(json_string_value(fmt), ARCH_FORMAT))) {
		lt_err_set(err, LT_EFORMAT, "unsupported format (expected \"%s\")", ARCH_FORMAT);
		goto fail;
	}
	g = lt_calloc(1, sizeof *g);
	if (!g) {
		lt_err_set(err, LT_ENOMEM, "out of memory");
		goto fail;
	}
	json_t *input = json_object_get(root, "input");
	if (!json_is_array(input) || json_array_size(input) < 1 || json_array_size(input) > 3) {
		lt_err_set(err, LT_EFORMAT, "'input' must be the per-sample shape, e.g. [784] or [1, 28, 28]");
		goto fail;
	}
	g->in_ndim = (int)json_array_size(input);
	for (int d = 0; d < g->in_ndim; d++) {
		json_t *x = json_array_get(input, (size_t)d);
		if (!json_is_integer(x) || json_integer_value(x) < 1 || json_integer_value(x) > (1 << 24)) {
			lt_err_set(err, LT_EFORMAT, "'input' dimensions must be positive integers");
			goto fail;
		}
		g->in_shape[d] = json_integer_value(x);
	}
	if (parse_preprocess(g, json_object_get(root, "preprocess"), err))
		goto fail;
	json_t *layers = json_object_get(root, "layers");
	if (!json_is_array(layers) || json_array_size(layers) == 0) {
		lt_err_set(err, LT_EFORMAT, "'layers' must be a non-empty list");
		goto fail;
	}
	if (json_array_size(layers) > 100000) {
		lt_err_set(err, LT_ERANGE, "too many layers");
		goto fail;
	}
	size_t count = json_array_size(layers);
	g->nodes = lt_calloc(count, sizeof *g->nodes);
	if (!g->nodes) {
		lt_err_set(err, LT_ENOMEM, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < count; i++) {
		json_t *l = json_array_get(layers, i);
		lt_node *n = &g->nodes[i];
		char where[160];
		struct parse ps = {err, where};
		snprintf(where, sizeof where, "layer %zu", i + 1);
		if (!json_is_object(l)) {
			lt_err_set(err, LT_EFORMAT, "%s: must be an object", where);
			goto fail;
		}
		g->n_nodes = (int)i + 1; /* so lt_graph_free frees this node */
		json_t *op = json_object_get(l, "op");
		if (!json_is_string(op) || lt_op_parse(json_string_value(op), &n->op)) {
			lt_err_set(err, LT_EFORMAT, "%s: unknown op %s%s%s", where,
				   json_is_string(op) ? "'" : "", json_is_string(op) ? json_string_value(op) : "(missing)",
				   json_is_string(op) ? "'" : "");
			goto fail;
		}
		json_t *name = json_object_get(l, "name");
		if (name && (!json_is_string(name) || !*json_string_value(name))) {
			lt_err_set(err, LT_EFORMAT, "%s: 'name' must be a non-empty string", where);
			goto fail;
		}
		if (!name && has_params(n->op)) {
			lt_err_set(err, LT_EFORMAT, "%s: %s needs a 'name' (its tensors are NAME.weight, ...)",
				   where, lt_op_name(n->op));
			goto fail;
		}
		char auto_name[32];
		snprintf(auto_name, sizeof auto_name, "%s%zu", lt_op_name(n->op), i + 1);
		n->name = lt_strdup(name ? json_string_value(name) : auto_name);
		if (!n->name) {
			lt_err_set(err, LT_ENOMEM, "out of memory");
			goto fail;
		}
		for (size_t j = 0; j < i; j++) {
			if (!strcmp(g->nodes[j].name, n->name)) {
				lt_err_set(err, LT_EFORMAT, "%s: duplicate layer name '%s'", where, n->name);
				goto fail;
			}
		}
		snprintf(where, sizeof where, "layer %zu (%s)", i + 1, n->name);
		json_object_foreach(l, key, v) {
			if (!key_allowed(n->op, key)) {
				if (!strcmp(key, "act_threshold"))
					lt_err_set(err, LT_EFORMAT, "%s: %s passes its input through and takes no "
						   "'act_threshold'; put it on the layer before", where,
						   lt_op_name(n->op));
				else
					lt_err_set(err, LT_EFORMAT, "%s: unknown key '%s' for %s", where, key,
						   lt_op_name(n->op));
				goto fail;
			}
		}
		if (parse_attrs(&ps, l, n) || parse_inputs(&ps, l, g, (int)i))
			goto fail;
	}
	if (infer(g, err))
		goto fail;
	json_decref(root);
	return g;
fail:
	lt_graph_free(g);
	json_decref(root);
	return NULL;
}

/* ---- shape inference -------------------------------------------------- */

static const lt_node *value_node(const lt_graph *g, int v)
{
	return v > 0 ? &g->nodes[v - 1] : NULL;
}

int lt_graph_value_ndim(const lt_graph *g, int v)
{
	return v > 0 ? value_node(g, v)->out_ndim : g->in_ndim;
}

const int64_t *lt_graph_value_shape(const lt_graph *g, int v)
{
	return v > 0 ? value_node(g, v)->out_shape : g->in_shape;
}

int64_t lt_graph_value_numel(const lt_graph *g, int v)
{
	return v > 0 ? value_node(g, v)->out_numel : g->in_numel;
}

int64_t lt_graph_out_numel(const lt_graph *g)
{
	return lt_graph_value_numel(g, g->n_nodes);
}

int64_t lt_graph_macs(const lt_graph *g)
{
	int64_t macs = 0;
	for (int i = 0; i < g->n_nodes; i++)
		macs += g->nodes[i].macs;
	return macs;
}

/* Output extent of a sliding window, or < 1 if the window does not fit. */
static int64_t window_out(int64_t in, int k, int s, int p)
{
	int64_t span = in + 2 * (int64_t)p - k;
	return span < 0 ? 0 : span / s + 1;
}

/* *out = product of f[0..n), or 1 if it would overflow int64. */
static int mul_overflows(int64_t *out, int n, const int64_t *f)
{
	int64_t p = 1;
	for (int i = 0; i < n; i++)
		if (__builtin_mul_overflow(p, f[i], &p))
			return 1;
	*out = p;
	return 0;
}

static int infer(lt_graph *g, lt_err *err)
{
	/* Per-sample activations are capped so batch buffers stay addressable. */
	const int64_t limit = (int64_t)1 << 31;
	if (lt_shape_numel(g->in_ndim, g->in_shape, limit, &g->in_numel, err)) {
		if (err)
			err->code = LT_EFORMAT;
		return lt_err_prefix(err, "input");
	}
	for (int i = 0; i < g->n_nodes; i++) {
		lt_node *n = &g->nodes[i];
		int v = n->inputs[0];
		int nd = lt_graph_value_ndim(g, v);
		const int64_t *s = lt_graph_value_shape(g, v);
		char shp[96];
		lt_shape_format(nd, s, shp, sizeof shp);
		n->out_ndim = nd;
		memcpy(n->out_shape, s, sizeof n->out_shape);
		n->macs = 0;
		switch (n->op) {
		case LT_OP_LINEAR:
			if (nd != 1 || s[0] != n->in_features)
				return lt_err_set(err, LT_EFORMAT, "layer %d (%s): linear expects [%" PRId64 "] but receives %s%s",
						  i + 1, n->name, n->in_features, shp, nd > 1 ? " (add a flatten layer)" : "");
			n->out_shape[0] = n->out_features;
			if (mul_overflows(&n->macs, 2, (int64_t[]){n->in_features, n->out_features}))
				return lt_err_set(err, LT_EFORMAT, "layer %d (%s): too large", i + 1, n->name);
			break;
		case LT_OP_CONV2D:
		case LT_OP_MAXPOOL2D:
		case LT_OP_AVGPOOL2D: {
			if (nd != 3)
				return lt_err_set(err, LT_EFORMAT, "layer %d (%s): %s expects [C, H, W] but receives %s",
						  i + 1, n->name, lt_op_name(n->op), shp);
			if (n->op == LT_OP_CONV2D && s[0] != n->in_features)
				return lt_err_set(err, LT_EFORMAT, "layer %d (%s): conv2d expects %" PRId64 " channels but receives %s",
						  i + 1, n->name, n->in_features, shp);
			int64_t oh = window_out(s[1], n->kernel[0], n->stride[0], n->padding[0]);
			int64_t ow = window_out(s[2], n->kernel[1], n->stride[1], n->padding[1]);
			if (oh < 1 || ow < 1)
				return lt_err_set(err, LT_EFORMAT, "layer %d (%s): kernel %dx%d does not fit input %s",
						  i + 1, n->name, n->kernel[0], n->kernel[1], shp);
			if (n->op == LT_OP_CONV2D) {
				n->out_shape[0] = n->out_features;
				int64_t f[6] = {n->out_features, oh, ow, n->in_features, n->kernel[0], n->kernel[1]};
				if (mul_overflows(&n->macs, 6, f))
					return lt_err_set(err, LT_EFORMAT, "layer %d (%s): too large", i + 1, n->name);
			}
			n->out_shape[1] = oh;
			n->out_shape[2] = ow;
			break;
		}
		case LT_OP_FLATTEN:
			n->out_ndim = 1;
			n->out_shape[0] = lt_graph_value_numel(g, v);
			break;
		case LT_OP_SOFTMAX:
			if (nd != 1)
				return lt_err_set(err, LT_EFORMAT, "layer %d (%s): softmax expects a flat vector but receives %s",
						  i + 1, n->name, shp);
			break;
		case LT_OP_BATCHNORM1D:
		case LT_OP_BATCHNORM2D: {
			int want = n->op == LT_OP_BATCHNORM1D ? nd == 1 || nd == 2 : nd == 3;
			if (!want || s[0] != n->in_features)
				return lt_err_set(err, LT_EFORMAT, "layer %d (%s): %s(%" PRId64 ") does not accept %s",
						  i + 1, n->name, lt_op_name(n->op), n->in_features, shp);
			break;
		}
		default:
			break;
		}
		if (lt_shape_numel(n->out_ndim, n->out_shape, limit, &n->out_numel, err)) {
			/* An architecture that cannot be run is a format error. */
			if (err)
				err->code = LT_EFORMAT;
			lt_err_prefix(err, "layer %d (%s)", i + 1, n->name);
			return LT_EFORMAT;
		}
	}
	return 0;
}

/* ---- serialising ------------------------------------------------------ */

static json_t *pair(const int v[2])
{
	return json_pack("[ii]", v[0], v[1]);
}

char *lt_graph_to_json(const lt_graph *g, lt_err *err)
{
	json_t *root = json_object(), *layers = json_array(), *input = json_array();
	char *out = NULL;
	int bad = !root || !layers || !input;
	for (int d = 0; !bad && d < g->in_ndim; d++)
		bad |= json_array_append_new(input, json_integer(g->in_shape[d]));
	bad |= json_object_set_new(root, "format", json_string(ARCH_FORMAT));
	bad |= json_object_set(root, "input", input);
	if (!bad && (g->n_norm || g->scale != 255.0f)) {
		json_t *pre = json_object(), *mean = json_array(), *std = json_array();
		bad |= !pre || !mean || !std;
		for (int c = 0; !bad && c < g->n_norm; c++) {
			bad |= json_array_append_new(mean, json_real(g->mean[c]));
			bad |= json_array_append_new(std, json_real(g->std[c]));
		}
		bad |= json_object_set_new(pre, "scale", json_real(g->scale));
		if (g->n_norm) {
			bad |= json_object_set(pre, "mean", mean);
			bad |= json_object_set(pre, "std", std);
		}
		bad |= json_object_set_new(root, "preprocess", pre);
		json_decref(mean);
		json_decref(std);
	}
	for (int i = 0; !bad && i < g->n_nodes; i++) {
		const lt_node *n = &g->nodes[i];
		json_t *l = json_object();
		bad |= !l;
		bad |= json_object_set_new(l, "op", json_string(lt_op_name(n->op)));
		bad |= json_object_set_new(l, "name", json_string(n->name));
		if (n->inputs[0] != i) {
			const char *src = n->inputs[0] ? g->nodes[n->inputs[0] - 1].name : "input";
			bad |= json_object_set_new(l, "inputs", json_pack("[s]", src));
		}
		switch (n->op) {
		case LT_OP_LINEAR:
			bad |= json_object_set_new(l, "in_features", json_integer(n->in_features));
			bad |= json_object_set_new(l, "out_features", json_integer(n->out_features));
			bad |= json_object_set_new(l, "bias", json_boolean(n->params[LT_P_BIAS] != NULL));
			break;
		case LT_OP_CONV2D:
			bad |= json_object_set_new(l, "in_channels", json_integer(n->in_features));
			bad |= json_object_set_new(l, "out_channels", json_integer(n->out_features));
			bad |= json_object_set_new(l, "bias", json_boolean(n->params[LT_P_BIAS] != NULL));
			/* fall through */
		case LT_OP_MAXPOOL2D:
		case LT_OP_AVGPOOL2D:
			bad |= json_object_set_new(l, "kernel_size", pair(n->kernel));
			bad |= json_object_set_new(l, "stride", pair(n->stride));
			bad |= json_object_set_new(l, "padding", pair(n->padding));
			break;
		case LT_OP_BATCHNORM1D:
		case LT_OP_BATCHNORM2D:
			bad |= json_object_set_new(l, "num_features", json_integer(n->in_features));
			bad |= json_object_set_new(l, "eps", json_real(n->eps));
			bad |= json_object_set_new(l, "momentum", json_real(n->momentum));
			break;
		case LT_OP_DROPOUT:
			bad |= json_object_set_new(l, "p", json_real(n->p));
			break;
		default:
			break;
		}
		if (n->act_threshold > 0)
			bad |= json_object_set_new(l, "act_threshold", json_real(n->act_threshold));
		bad |= json_array_append_new(layers, l);
	}
	bad |= json_object_set(root, "layers", layers);
	if (!bad) {
		char *s = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(9));
		if (s) {
			out = lt_strdup(s);
			free(s);
		}
	}
	if (!out)
		lt_err_set(err, LT_ENOMEM, "out of memory writing architecture JSON");
	json_decref(input);
	json_decref(layers);
	json_decref(root);
	return out;
}

int lt_graph_is_cut(const lt_graph *g, int v)
{
	for (int i = v; i < g->n_nodes; i++)
		for (int k = 0; k < g->nodes[i].n_inputs; k++)
			if (g->nodes[i].inputs[k] < v)
				return 0;
	return 1;
}
