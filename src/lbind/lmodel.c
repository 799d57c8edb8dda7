/* lathe.Model and lathe.Layer: staging, preview, history, journal, and the
 * kernels that stage changes (prune, cast, finetune). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/mem.h"
#include "core/units.h"
#include "io/open.h"
#include "kern/blas.h"
#include "kern/prune.h"
#include "kern/structured.h"
#include "work/sensitivity.h"
#include "lbind/internal.h"
#include "lbind/lathe.h"
#include "lbind/sandbox.h"
#include "nn/eval.h"
#include "nn/train.h"

/* A layer: a named graph node with parameters, or (weights-only models) the
 * tensors sharing a name prefix. */
typedef struct llayer {
	lt_bench *bench;
	char *name;
} llayer;

lt_bench *lt_lua_to_bench(lua_State *L, int idx)
{
	lmodel *m = luaL_testudata(L, idx, LT_MT_MODEL);
	return m ? m->bench : NULL;
}

lmodel *lt_check_model(lua_State *L, int idx)
{
	return luaL_checkudata(L, idx, LT_MT_MODEL);
}

lt_bench *lt_model_bench(lua_State *L, lmodel *m)
{
	if (!m->bench)
		luaL_error(L, "attempt to use a closed model");
	return m->bench;
}

static lt_bench *check_bench(lua_State *L, int idx)
{
	return lt_model_bench(L, lt_check_model(L, idx));
}

/* ---- layers ----------------------------------------------------------- */

static const lt_node *find_node(lt_model *m, const char *name)
{
	lt_graph *g = lt_model_graph(m);
	for (int i = 0; g && i < g->n_nodes; i++)
		if (!strcmp(g->nodes[i].name, name))
			return &g->nodes[i];
	return NULL;
}

/* Prefix of a tensor name ("fc1" of "fc1.weight"); length, or 0 if none. */
static size_t name_prefix(const char *t)
{
	const char *dot = strrchr(t, '.');
	return dot && dot > t ? (size_t)(dot - t) : 0;
}

/* Does layer `name` exist in m (graph node with parameters, or a tensor
 * prefix of a weights-only model)? */
static int layer_exists(lt_model *m, const char *name)
{
	const lt_node *n = find_node(m, name);
	if (n)
		return n->params[LT_P_WEIGHT] != NULL;
	if (lt_model_graph(m))
		return 0;
	size_t len = strlen(name);
	for (size_t i = 0; i < lt_model_tensor_count(m); i++) {
		const char *t = lt_model_tensor_name(m, i);
		if (name_prefix(t) == len && !strncmp(t, name, len))
			return 1;
	}
	return 0;
}

static void push_layer(lua_State *L, lt_bench *b, const char *name)
{
	llayer *l = lua_newuserdatauv(L, sizeof *l, 0);
	memset(l, 0, sizeof *l);
	luaL_setmetatable(L, LT_MT_LAYER);
	if (!(l->name = lt_strdup(name)))
		luaL_error(L, "out of memory");
	l->bench = lt_bench_ref(b);
}

static llayer *check_layer(lua_State *L, int idx)
{
	llayer *l = luaL_checkudata(L, idx, LT_MT_LAYER);
	if (!l->bench)
		luaL_error(L, "attempt to use a freed layer");
	if (lt_bench_closed(l->bench))
		luaL_error(L, "layer '%s': its model was closed", l->name);
	if (!layer_exists(lt_bench_staged(l->bench), l->name))
		luaL_error(L, "layer '%s' no longer exists", l->name);
	return l;
}

/* Names of the layer's tensors, weight first (borrowed from the model). */
static int layer_tensors(lt_model *m, const char *layer, const char **out, int max)
{
	const lt_node *n = find_node(m, layer);
	int k = 0;
	if (n) {
		for (int s = 0; s < LT_NODE_MAX_PARAMS && k < max; s++)
			if (n->params[s])
				out[k++] = n->params[s];
		return k;
	}
	size_t len = strlen(layer);
	for (size_t i = 0; i < lt_model_tensor_count(m) && k < max; i++) {
		const char *t = lt_model_tensor_name(m, i);
		if (name_prefix(t) == len && !strncmp(t, layer, len))
			out[k++] = t;
	}
	/* Weight first, as for graph nodes. */
	for (int i = 1; i < k; i++) {
		if (!strcmp(out[i] + len, ".weight")) {
			const char *tmp = out[0];
			out[0] = out[i];
			out[i] = tmp;
		}
	}
	return k;
}

static void push_layer_list(lua_State *L, lt_bench *b)
{
	lt_model *m = lt_bench_staged(b);
	lt_graph *g = lt_model_graph(m);
	lua_newtable(L);
	int k = 0;
	if (g) {
		for (int i = 0; i < g->n_nodes; i++) {
			if (!g->nodes[i].params[LT_P_WEIGHT])
				continue;
			push_layer(L, b, g->nodes[i].name);
			lua_rawseti(L, -2, ++k);
		}
		return;
	}
	/* Weights-only: one layer per distinct prefix, in file order. */
	for (size_t i = 0; i < lt_model_tensor_count(m); i++) {
		const char *t = lt_model_tensor_name(m, i);
		size_t len = name_prefix(t);
		char name[512];
		if (!len || len >= sizeof name)
			continue;
		memcpy(name, t, len);
		name[len] = '\0';
		int seen = 0;
		for (size_t j = 0; j < i && !seen; j++) {
			const char *u = lt_model_tensor_name(m, j);
			seen = name_prefix(u) == len && !strncmp(u, t, len);
		}
		if (!seen) {
			push_layer(L, b, name);
			lua_rawseti(L, -2, ++k);
		}
	}
}

static const char *const layer_fields[] = {"name", "op", "weight", "bias", "tensors", "shape",
	"params", "macs", "in_features", "out_features", "kernel_size", "stride", "padding", NULL};

static void push_pair(lua_State *L, const int *v)
{
	lua_createtable(L, 2, 0);
	lua_pushinteger(L, v[0]);
	lua_rawseti(L, -2, 1);
	lua_pushinteger(L, v[1]);
	lua_rawseti(L, -2, 2);
}

static int layer_index(lua_State *L)
{
	llayer *l = check_layer(L, 1);
	const char *k = luaL_checkstring(L, 2);
	lua_getfield(L, lua_upvalueindex(1), k);
	if (!lua_isnil(L, -1))
		return 1;
	lt_model *m = lt_bench_staged(l->bench);
	const lt_node *n = find_node(m, l->name);
	const char *names[LT_NODE_MAX_PARAMS + 60];
	int nt = layer_tensors(m, l->name, names, (int)(sizeof names / sizeof *names));
	if (!strcmp(k, "name")) {
		lua_pushstring(L, l->name);
	} else if (!strcmp(k, "op")) {
		lua_pushstring(L, n ? lt_op_name(n->op) : "?");
	} else if (!strcmp(k, "weight") || !strcmp(k, "bias")) {
		const char *want = NULL;
		if (n) {
			want = n->params[!strcmp(k, "weight") ? LT_P_WEIGHT : LT_P_BIAS];
		} else {
			char buf[512];
			snprintf(buf, sizeof buf, "%s.%s", l->name, k);
			for (int i = 0; i < nt; i++)
				if (!strcmp(names[i], buf))
					want = names[i];
		}
		if (want)
			lt_push_bound_tensor(L, l->bench, want);
		else
			lua_pushnil(L);
	} else if (!strcmp(k, "tensors")) {
		lua_createtable(L, nt, 0);
		for (int i = 0; i < nt; i++) {
			lua_pushstring(L, names[i]);
			lua_rawseti(L, -2, i + 1);
		}
	} else if (!strcmp(k, "params")) {
		int64_t p = 0;
		for (int i = 0; i < nt; i++)
			p += lt_tensor_numel(lt_model_tensor(m, names[i]));
		lua_pushinteger(L, p);
	} else if (n && !strcmp(k, "shape")) {
		lua_createtable(L, n->out_ndim, 0);
		for (int d = 0; d < n->out_ndim; d++) {
			lua_pushinteger(L, n->out_shape[d]);
			lua_rawseti(L, -2, d + 1);
		}
	} else if (n && !strcmp(k, "macs")) {
		lua_pushinteger(L, n->macs);
	} else if (n && !strcmp(k, "in_features")) {
		lua_pushinteger(L, n->in_features);
	} else if (n && !strcmp(k, "out_features")) {
		lua_pushinteger(L, n->out_features);
	} else if (n && n->op == LT_OP_CONV2D && !strcmp(k, "kernel_size")) {
		push_pair(L, n->kernel);
	} else if (n && n->op == LT_OP_CONV2D && !strcmp(k, "stride")) {
		push_pair(L, n->stride);
	} else if (n && n->op == LT_OP_CONV2D && !strcmp(k, "padding")) {
		push_pair(L, n->padding);
	} else {
		lua_pushnil(L);
	}
	return 1;
}

static int layer_free(lua_State *L)
{
	llayer *l = luaL_checkudata(L, 1, LT_MT_LAYER);
	lt_bench_unref(l->bench);
	lt_free(l->name);
	l->bench = NULL;
	l->name = NULL;
	return 0;
}

static int layer_tostring(lua_State *L)
{
	llayer *l = luaL_checkudata(L, 1, LT_MT_LAYER);
	if (!l->bench) {
		lua_pushstring(L, "Layer (freed)");
		return 1;
	}
	lt_model *m = lt_bench_staged(l->bench);
	const lt_node *n = find_node(m, l->name);
	const char *names[LT_NODE_MAX_PARAMS + 60];
	int nt = layer_tensors(m, l->name, names, (int)(sizeof names / sizeof *names));
	char shape[128] = "?";
	lt_tensor *w = nt ? lt_model_tensor(m, names[0]) : NULL;
	if (w)
		lt_shape_format(lt_tensor_ndim(w), lt_tensor_shape(w), shape, sizeof shape);
	lua_pushfstring(L, "Layer %s (%s, weight %s)", l->name, n ? lt_op_name(n->op) : "?", shape);
	return 1;
}

static int layer_len(lua_State *L)
{
	llayer *l = check_layer(L, 1);
	lt_model *m = lt_bench_staged(l->bench);
	const char *names[LT_NODE_MAX_PARAMS + 60];
	int nt = layer_tensors(m, l->name, names, (int)(sizeof names / sizeof *names));
	int64_t p = 0;
	for (int i = 0; i < nt; i++)
		p += lt_tensor_numel(lt_model_tensor(m, names[i]));
	lua_pushinteger(L, p);
	return 1;
}


static int layer_prune(lua_State *L) { return lt_call_kernel(L, lt_l_prune); }
static int layer_prune_structured(lua_State *L) { return lt_call_kernel(L, lt_l_prune_structured); }
static int layer_prune_nm(lua_State *L) { return lt_call_kernel(L, lt_l_prune_nm); }
static int layer_cast(lua_State *L) { return lt_call_kernel(L, lt_l_cast); }
static int layer_quantize(lua_State *L) { return lt_call_kernel(L, lt_l_quantize); }
static int layer_share(lua_State *L) { return lt_call_kernel(L, lt_l_share); }

static int layer_stats(lua_State *L)
{
	llayer *l = check_layer(L, 1);
	lua_settop(L, 1);
	lua_getfield(L, 1, "weight");
	if (lua_isnil(L, -1))
		return luaL_error(L, "layer '%s' has no weight", l->name);
	lua_getfield(L, -1, "stats");
	lua_insert(L, -2);
	lua_call(L, 1, 1);
	return 1;
}

/* ---- targets of kernels ----------------------------------------------- */

/* The weight / bias tensor of a layer: the graph node's, or NAME.weight /
 * NAME.bias of a weights-only model. Borrowed name, or NULL. */
static const char *layer_param(lt_model *m, const char *layer, int slot)
{
	const lt_node *n = find_node(m, layer);
	if (n)
		return n->params[slot];
	char want[512];
	snprintf(want, sizeof want, "%s.%s", layer, slot == LT_P_WEIGHT ? "weight" : "bias");
	for (size_t i = 0; i < lt_model_tensor_count(m); i++)
		if (!strcmp(lt_model_tensor_name(m, i), want))
			return lt_model_tensor_name(m, i);
	return NULL;
}

/* Append the tensors of layer `name` to the list at index list. */
static int add_layer_targets(lua_State *L, lt_model *m, const char *name, int with_bias, int list, int k)
{
	const char *w = layer_param(m, name, LT_P_WEIGHT), *b = layer_param(m, name, LT_P_BIAS);
	if (w) {
		lua_pushstring(L, w);
		lua_rawseti(L, list, ++k);
	}
	if (with_bias && b) {
		lua_pushstring(L, b);
		lua_rawseti(L, list, ++k);
	}
	return k;
}

/* Whether the options table at opts (or nil) sets key. */
static int has_opt(lua_State *L, int opts, const char *key)
{
	if (lua_isnoneornil(L, opts))
		return 0;
	int set = lua_getfield(L, opts, key) != LUA_TNIL;
	lua_pop(L, 1);
	return set;
}

/* The tensors a kernel acts on: a bound tensor, a layer's weight (and bias
 * with bias = true), or the weights of a model's layers: all those with a
 * weight of two or more dimensions (not batch or layer norms), or exactly
 * the layers named in opts.layers. Pushes a list of names. */
void lt_collect_targets(lua_State *L, int target, int opts, const char *fname, lt_bench **bench)
{
	int with_bias = lt_opt_bool(L, opts, fname, "bias", 0);
	int has_layers = has_opt(L, opts, "layers");
	lua_newtable(L);
	int list = lua_gettop(L), k = 0;
	if (has_layers && !luaL_testudata(L, target, LT_MT_MODEL))
		luaL_error(L, "%s: option 'layers' applies to a model, not to a %s", fname,
			   luaL_testudata(L, target, LT_MT_LAYER) ? "layer" : "tensor");
	ltensor *t = luaL_testudata(L, target, LT_MT_TENSOR);
	if (t) {
		lt_tensor_target(L, t);
		if (!t->bench)
			luaL_error(L, "%s: a free tensor is not part of a model (use the model's tensors)", fname);
		if (t->is_view)
			luaL_error(L, "%s: apply it to a whole tensor, not a view", fname);
		*bench = t->bench;
		lua_pushstring(L, t->name);
		lua_rawseti(L, list, ++k);
		return;
	}
	lt_model *m;
	if (luaL_testudata(L, target, LT_MT_LAYER)) {
		llayer *l = check_layer(L, target);
		*bench = l->bench;
		m = lt_bench_staged(l->bench);
		if (!layer_param(m, l->name, LT_P_WEIGHT))
			luaL_error(L, "%s: layer '%s' has no weight tensor", fname, l->name);
		add_layer_targets(L, m, l->name, with_bias, list, 0);
		return;
	}
	*bench = check_bench(L, target);
	m = lt_bench_staged(*bench);
	if (has_layers) {
		lua_getfield(L, opts, "layers");
		if (!lua_istable(L, -1))
			luaL_error(L, "%s: option 'layers' must be a list of layer names", fname);
		int only = lua_gettop(L);
		for (lua_Integer i = 1; i <= (lua_Integer)lua_rawlen(L, only); i++) {
			lua_rawgeti(L, only, i);
			const char *name = lua_tostring(L, -1);
			if (!name || !layer_exists(m, name))
				luaL_error(L, "%s: no layer named '%s'", fname, name ? name : "?");
			if (!layer_param(m, name, LT_P_WEIGHT))
				luaL_error(L, "%s: layer '%s' has no weight tensor", fname, name);
			k = add_layer_targets(L, m, name, with_bias, list, k);
			lua_pop(L, 1);
		}
		lua_settop(L, list);
		return;
	}
	push_layer_list(L, *bench);
	int layers = lua_gettop(L);
	for (lua_Integer i = 1; i <= (lua_Integer)lua_rawlen(L, layers); i++) {
		lua_rawgeti(L, layers, i);
		llayer *l = lua_touserdata(L, -1);
		const char *w = layer_param(m, l->name, LT_P_WEIGHT);
		if (w && lt_tensor_ndim(lt_model_tensor(m, w)) >= 2)
			k = add_layer_targets(L, m, l->name, with_bias, list, k);
		lua_pop(L, 1);
	}
	lua_settop(L, list);
}

/* The first argument of a kernel must be something it can act on. */
void lt_check_target(lua_State *L, int idx, const char *fname)
{
	if (!luaL_testudata(L, idx, LT_MT_TENSOR) && !luaL_testudata(L, idx, LT_MT_LAYER) &&
	    !luaL_testudata(L, idx, LT_MT_MODEL))
		luaL_error(L, "%s: expected a model, layer or tensor (got %s)", fname, luaL_typename(L, idx));
}

/* Journal `lathe.FNAME(<target>, <opts>)`. */
void lt_journal_kernel(lua_State *L, lt_bench *b, const char *fname, int target, int opts)
{
	target = lua_absindex(L, target);
	opts = lua_absindex(L, opts);
	lt_sbuf *buf = lt_sbuf_new(L);
	lt_sbuf_adds(L, buf, "lathe.");
	lt_sbuf_adds(L, buf, fname);
	lt_sbuf_addc(L, buf, '(');
	lt_journal_value(L, buf, target, 0);
	if (!lua_isnoneornil(L, opts)) {
		lt_sbuf_adds(L, buf, ", ");
		lt_journal_value(L, buf, opts, 0);
	}
	lt_sbuf_addc(L, buf, ')');
	lt_sbuf_result(L, buf, -1);
	lt_journal_note(L, b, lua_tostring(L, -1));
	lua_pop(L, 1);
}

/* lathe.prune(target, {sparsity= | threshold=, method=, seed=, layers=, bias=,
 * global=}) */
int lt_l_prune(lua_State *L)
{
	static const char *const names[] = {"sparsity", "threshold", "method", "seed", "layers", "bias",
		"global", NULL};
	const char *fname = "lathe.prune";
	lua_settop(L, 2);
	lt_check_target(L, 1, fname);
	lt_check_opts(L, 2, fname, names);
	if (lua_isnil(L, 2))
		return luaL_error(L, "%s: give {sparsity = S} (a fraction 0..1) or {threshold = T}", fname);
	lt_prune_spec spec = {0};
	const char *method = lt_opt_string(L, 2, fname, "method", "magnitude");
	if (!strcmp(method, "magnitude"))
		spec.method = LT_PRUNE_MAGNITUDE;
	else if (!strcmp(method, "random"))
		spec.method = LT_PRUNE_RANDOM;
	else
		return luaL_error(L, "%s: unknown method '%s' (expected magnitude or random)", fname, method);
	lua_getfield(L, 2, "sparsity");
	lua_getfield(L, 2, "threshold");
	int has_sparsity = !lua_isnil(L, -2), has_threshold = !lua_isnil(L, -1);
	lua_pop(L, 2);
	if (has_sparsity == has_threshold)
		return luaL_error(L, "%s: give exactly one of sparsity and threshold", fname);
	double sparsity = lt_opt_number(L, 2, fname, "sparsity", 0);
	double threshold = lt_opt_number(L, 2, fname, "threshold", 0);
	if (has_threshold && spec.method == LT_PRUNE_RANDOM)
		return luaL_error(L, "%s: random pruning takes a sparsity, not a threshold", fname);
	if (!(sparsity >= 0 && sparsity <= 1))
		return luaL_error(L, "%s: sparsity must be between 0 and 1 (got %f)", fname, sparsity);
	if (!(threshold >= 0 && threshold <= HUGE_VAL))
		return luaL_error(L, "%s: threshold must be 0 or more (got %f)", fname, threshold);
	spec.by_threshold = has_threshold;
	spec.sparsity = spec.by_threshold ? 0 : sparsity;
	spec.threshold = (float)threshold;
	spec.seed = (uint64_t)lt_opt_integer(L, 2, fname, "seed", 1);
	int global = lt_opt_bool(L, 2, fname, "global", 0);
	if (global && (has_threshold || spec.method != LT_PRUNE_MAGNITUDE))
		return luaL_error(L, "%s: global = true ranks magnitudes across the tensors: give a sparsity "
				  "(with method = \"magnitude\")", fname);
	lt_bench *b = NULL;
	lt_collect_targets(L, 1, 2, fname, &b);
	int list = lua_gettop(L);
	lua_Integer n = (lua_Integer)lua_rawlen(L, list);
	if (n == 0)
		return luaL_error(L, "%s: nothing to prune (no layer with weights selected)", fname);
	/* All new tensors first, then stage them: a failure stages nothing. */
	lt_tensor **made = lua_newuserdatauv(L, (size_t)n * sizeof *made, 0);
	memset(made, 0, (size_t)n * sizeof *made);
	lt_err err = {0};
	int rc = 0;
	int64_t zeros = 0, total = 0;
	lt_tensor **from = lua_newuserdatauv(L, (size_t)n * sizeof *from, 0);
	for (lua_Integer i = 0; i < n; i++) {
		lua_rawgeti(L, list, i + 1);
		from[i] = lt_model_tensor(lt_bench_staged(b), lua_tostring(L, -1));
		lua_pop(L, 1);
	}
	if (global)
		rc = lt_prune_global(from, (int)n, spec.sparsity, made, &err);
	for (lua_Integer i = 0; i < n && !rc && !global; i++) {
		lt_prune_spec s = spec;
		s.seed = spec.seed + (uint64_t)i; /* a different stream per tensor */
		if (!(made[i] = lt_prune_tensor(from[i], &s, &err)))
			rc = err.code;
	}
	for (lua_Integer i = 0; i < n && !rc; i++) {
		lua_rawgeti(L, list, i + 1);
		rc = lt_bench_stage_tensor(b, lua_tostring(L, -1), made[i], &err);
		lua_pop(L, 1);
		zeros += lt_tensor_count_zeros(made[i]);
		total += lt_tensor_numel(made[i]);
	}
	for (lua_Integer i = 0; i < n; i++)
		lt_tensor_unref(made[i]);
	if (rc)
		return lt_lraise(L, fname, &err);
	lt_journal_kernel(L, b, "prune", 1, 2);
	lua_createtable(L, 0, 4);
	lua_pushvalue(L, list);
	lua_setfield(L, -2, "tensors");
	/* each tensor's own sparsity (they differ under global = true) */
	lua_createtable(L, 0, (int)n);
	for (lua_Integer i = 0; i < n; i++) {
		lua_rawgeti(L, list, i + 1);
		lt_tensor *t = lt_model_tensor(lt_bench_staged(b), lua_tostring(L, -1));
		int64_t len = lt_tensor_numel(t);
		lua_pushnumber(L, len ? (double)lt_tensor_count_zeros(t) / (double)len : 0.0);
		lua_settable(L, -3);
	}
	lua_setfield(L, -2, "sparsities");
	lua_pushinteger(L, zeros);
	lua_setfield(L, -2, "zeros");
	lua_pushnumber(L, total ? (double)zeros / (double)total : 0.0);
	lua_setfield(L, -2, "sparsity");
	return 1;
}

void lt_set_num(lua_State *L, const char *k, double v)
{
	lua_pushnumber(L, v);
	lua_setfield(L, -2, k);
}

void lt_set_int(lua_State *L, const char *k, int64_t v)
{
	lua_pushinteger(L, v);
	lua_setfield(L, -2, k);
}

/* Progress of work run through lt_lua_run_work: report the fraction done,
 * and ask to stop (nonzero) once Ctrl-C has interrupted Lua. */
static int work_progress(lua_State *L, lt_lua_work *w, int64_t done, int64_t total, const char *detail)
{
	if (lt_lua_interrupted())
		return 1;
	lt_lua_work_progress(L, w, total ? (double)done / (double)total : 1.0, detail);
	return 0;
}

/* ---- structured pruning and N:M -------------------------------------- */

const char *lt_kind_of(lua_State *L, int idx)
{
	if (luaL_testudata(L, idx, LT_MT_MODEL))
		return "a model";
	if (luaL_testudata(L, idx, LT_MT_LAYER))
		return "a layer";
	if (luaL_testudata(L, idx, LT_MT_TENSOR))
		return "a tensor";
	return luaL_typename(L, idx);
}

/* Names of the linear / conv2d layers a structured kernel acts on: the
 * target layer, the layers named in opts.layers, or (a whole model) every
 * one but the layer that cannot take the change (skip: the last for
 * outputs, the first for inputs, -1 none). Pushes a list. */
static int structured_layers(lua_State *L, int target, int opts, const char *fname, int skip, lt_bench **b)
{
	lua_newtable(L);
	int list = lua_gettop(L), k = 0;
	lt_model *m;
	if (luaL_testudata(L, target, LT_MT_LAYER)) {
		if (has_opt(L, opts, "layers"))
			luaL_error(L, "%s: option 'layers' applies to a model, not to a layer", fname);
		llayer *l = check_layer(L, target);
		*b = l->bench;
		lua_pushstring(L, l->name);
		lua_rawseti(L, list, ++k);
		return list;
	}
	if (!luaL_testudata(L, target, LT_MT_MODEL))
		luaL_error(L, "%s: expected a model or a layer (got %s)", fname, lt_kind_of(L, target));
	*b = check_bench(L, target);
	m = lt_bench_staged(*b);
	const lt_graph *g = lt_model_graph(m);
	if (!g)
		luaL_error(L, "%s: the model has no architecture (weights only)", fname);
	if (has_opt(L, opts, "layers")) {
		lua_getfield(L, opts, "layers");
		if (!lua_istable(L, -1))
			luaL_error(L, "%s: option 'layers' must be a list of layer names", fname);
		for (lua_Integer i = 1; i <= (lua_Integer)lua_rawlen(L, -1); i++) {
			lua_rawgeti(L, -1, i);
			const char *name = lua_tostring(L, -1);
			if (!name || !layer_exists(m, name))
				luaL_error(L, "%s: no layer named '%s'", fname, name ? name : "?");
			lua_rawseti(L, list, ++k);
		}
		lua_pop(L, 1);
		return list;
	}
	int first = -1, last = -1;
	for (int i = 0; i < g->n_nodes; i++)
		if (g->nodes[i].op == LT_OP_LINEAR || g->nodes[i].op == LT_OP_CONV2D) {
			first = first < 0 ? i : first;
			last = i;
		}
	for (int i = 0; i < g->n_nodes; i++)
		if ((g->nodes[i].op == LT_OP_LINEAR || g->nodes[i].op == LT_OP_CONV2D) &&
		    !(skip == 0 && i == last) && !(skip == 1 && i == first)) {
			lua_pushstring(L, g->nodes[i].name);
			lua_rawseti(L, list, ++k);
		}
	return list;
}

/* lathe.prune_structured(target, {amount=, dim=0, norm=1, thin=true,
 * layers=}): remove (or zero) whole neurons / filters (dim 0) or input
 * columns / channels (dim 1) of smallest L1 or L2 norm. */
int lt_l_prune_structured(lua_State *L)
{
	static const char *const names[] = {"amount", "dim", "norm", "thin", "layers", NULL};
	const char *fname = "lathe.prune_structured";
	lua_settop(L, 2);
	lt_check_opts(L, 2, fname, names);
	double amount = lt_opt_number(L, 2, fname, "amount", NAN);
	if (!(amount >= 0 && amount <= 1))
		return luaL_error(L, "%s: give {amount = A}, the fraction of units to remove (0..1)", fname);
	lua_Integer dim = lt_opt_integer(L, 2, fname, "dim", 0), norm = lt_opt_integer(L, 2, fname, "norm", 1);
	if ((dim != 0 && dim != 1) || (norm != 1 && norm != 2))
		return luaL_error(L, "%s: dim must be 0 (outputs) or 1 (inputs), norm 1 or 2", fname);
	int thin = lt_opt_bool(L, 2, fname, "thin", 1);
	lt_bench *b = NULL;
	int list = structured_layers(L, 1, 2, fname, (int)dim, &b);
	lua_Integer n = (lua_Integer)lua_rawlen(L, list);
	if (n == 0)
		return luaL_error(L, "%s: no layer to prune", fname);
	lt_model *cur = lt_model_ref(lt_bench_staged(b));
	const lt_graph *g0 = lt_model_graph(cur);
	int64_t macs0 = g0 ? lt_graph_macs(g0) : 0, params0 = lt_model_param_count(cur);
	lt_err err = {0};
	int rc = 0;
	lua_createtable(L, 0, (int)n); /* per layer: units before and after */
	int units = lua_gettop(L);
	for (lua_Integer i = 1; i <= n && !rc; i++) {
		lua_rawgeti(L, list, i);
		const char *layer = lua_tostring(L, -1);
		const char *wname = layer_param(cur, layer, LT_P_WEIGHT);
		lt_tensor *w = wname ? lt_model_tensor(cur, wname) : NULL;
		if (!w || lt_tensor_ndim(w) < 2) {
			lt_model_unref(cur);
			return luaL_error(L, "%s: layer '%s' has no weight of 2 or more dimensions", fname, layer);
		}
		int64_t count = lt_tensor_shape(w)[dim], k = lt_prune_count(count, amount);
		float *nv = lua_newuserdatauv(L, (size_t)count * sizeof *nv, 0);
		int64_t *keep = lua_newuserdatauv(L, (size_t)count * sizeof *keep, 0);
		lt_model *next = NULL;
		if (thin) {
			if (!(rc = lt_structured_norms(w, (int)dim, (int)norm, nv, &err)) &&
			    !(rc = lt_structured_keep(nv, count, k, keep, &err)) &&
			    !(next = lt_structured_thin(cur, layer, (int)dim, keep, count - k, &err)))
				rc = err.code;
		} else {
			lt_tensor *z = lt_structured_prune_tensor(w, (int)dim, (int)norm, amount, &err);
			if (!z || !(next = lt_model_copy(cur, &err)) || lt_model_set_tensor(next, wname, z, &err))
				rc = err.code;
			lt_tensor_unref(z);
		}
		lua_pop(L, 2);
		if (!rc) {
			lt_model_unref(cur);
			cur = next;
		} else {
			lt_model_unref(next);
			char named[300];
			snprintf(named, sizeof named, "'%s'", layer);
			if (!strstr(err.msg, named)) /* the kernel may have named it already */
				lt_err_prefix(&err, "layer '%s'", layer);
		}
		lua_createtable(L, 2, 0);
		lua_pushinteger(L, count);
		lua_rawseti(L, -2, 1);
		lua_pushinteger(L, count - k); /* units left (or left non-zero) */
		lua_rawseti(L, -2, 2);
		lua_setfield(L, units, layer);
		lua_pop(L, 1);
	}
	if (rc) {
		lt_model_unref(cur);
		return lt_lraise(L, fname, &err); /* nothing staged */
	}
	lt_bench_stage_model(b, cur);
	const lt_graph *g1 = lt_model_graph(cur);
	int64_t macs1 = g1 ? lt_graph_macs(g1) : 0, params1 = lt_model_param_count(cur);
	lt_model_unref(cur);
	lt_journal_kernel(L, b, "prune_structured", 1, 2);
	lua_createtable(L, 0, 6);
	lua_pushvalue(L, list);
	lua_setfield(L, -2, "layers");
	lua_pushvalue(L, units);
	lua_setfield(L, -2, "units");
	lt_set_int(L, "params_before", params0);
	lt_set_int(L, "params", params1);
	lt_set_int(L, "macs_before", macs0);
	lt_set_int(L, "macs", macs1);
	return 1;
}

/* lathe.prune_nm(target, {n = 2, m = 4, layers=}): at most n non-zeros in
 * every group of m consecutive inputs. On a whole model, layers whose
 * inputs m does not divide are left out (listed in `skipped`). */
int lt_l_prune_nm(lua_State *L)
{
	static const char *const names[] = {"n", "m", "layers", NULL};
	const char *fname = "lathe.prune_nm";
	lua_settop(L, 2);
	lt_check_opts(L, 2, fname, names);
	lua_Integer nn = lt_opt_integer(L, 2, fname, "n", 2), mm = lt_opt_integer(L, 2, fname, "m", 4);
	if (nn < 1 || mm > 64 || nn >= mm)
		return luaL_error(L, "%s: needs 1 <= n < m <= 64 (got %I:%I)", fname, nn, mm);
	/* a whole model without a list leaves out layers m does not divide */
	int whole = luaL_testudata(L, 1, LT_MT_MODEL) && !has_opt(L, 2, "layers");
	lt_bench *b = NULL;
	int list = structured_layers(L, 1, 2, fname, -1, &b);
	lua_Integer n = (lua_Integer)lua_rawlen(L, list);
	lt_model *m = lt_bench_staged(b);
	lt_tensor **made = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *made, 0);
	memset(made, 0, (size_t)(n ? n : 1) * sizeof *made);
	lua_newtable(L);
	int skipped = lua_gettop(L), ns = 0;
	lt_err err = {0};
	int rc = 0;
	for (lua_Integer i = 0; i < n && !rc; i++) {
		lua_rawgeti(L, list, i + 1);
		const char *layer = lua_tostring(L, -1);
		const char *wname = layer_param(m, layer, LT_P_WEIGHT);
		lt_tensor *w = wname ? lt_model_tensor(m, wname) : NULL;
		int in = w && lt_tensor_ndim(w) >= 2 ? (int)lt_tensor_shape(w)[1] : 0;
		if (whole && (!w || in % mm)) {
			lua_rawseti(L, skipped, ++ns); /* pops the name */
			continue;
		}
		if (!(made[i] = w ? lt_structured_nm_tensor(w, (int)nn, (int)mm, &err) : NULL)) {
			if (!w)
				lt_err_set(&err, LT_EINVAL, "layer '%s' has no weight", layer);
			else
				lt_err_prefix(&err, "layer '%s'", layer);
			rc = err.code;
		}
		lua_pop(L, 1);
	}
	for (lua_Integer i = 0; i < n && !rc; i++) {
		if (!made[i])
			continue;
		lua_rawgeti(L, list, i + 1);
		rc = lt_bench_stage_tensor(b, layer_param(m, lua_tostring(L, -1), LT_P_WEIGHT), made[i], &err);
		lua_pop(L, 1);
	}
	int staged = 0;
	for (lua_Integer i = 0; i < n; i++) {
		staged += made[i] != NULL;
		lt_tensor_unref(made[i]);
	}
	if (rc)
		return lt_lraise(L, fname, &err);
	if (!staged)
		return luaL_error(L, "%s: no layer has inputs that %I divides", fname, mm);
	lt_journal_kernel(L, b, "prune_nm", 1, 2);
	lua_createtable(L, 0, 2);
	lua_pushvalue(L, skipped);
	lua_setfield(L, -2, "skipped");
	lua_pushinteger(L, staged);
	lua_setfield(L, -2, "layers");
	return 1;
}

/* ---- sensitivity ------------------------------------------------------ */


/* The layer (graph node) whose weight a tensor is, or the tensor's name. */
static const char *layer_of(lt_model *m, const char *tensor)
{
	const lt_graph *g = lt_model_graph(m);
	for (int i = 0; g && i < g->n_nodes; i++)
		if (g->nodes[i].params[LT_P_WEIGHT] && !strcmp(g->nodes[i].params[LT_P_WEIGHT], tensor))
			return g->nodes[i].name;
	return tensor;
}

struct sens_ctx {
	lua_State *L;
	lt_lua_work work;
	lt_bench *bench;
	const lt_sensitivity_opts *o;
	lt_sensitivity *result;
	lt_err *err;
};

static int sens_progress(void *ud, int64_t done, int64_t total)
{
	struct sens_ctx *c = ud;
	return work_progress(c->L, &c->work, done, total, NULL);
}

static int sens_work(lt_lua_work *w)
{
	struct sens_ctx *c = w->arg;
	c->result = lt_sensitivity_run(c->bench, c->o, c->err);
	return c->result ? 0 : c->err->code;
}

/* The last sweep, for displays (the workbench plots it): a userdata in the
 * registry owning the C result. */
#define LAST_SENSITIVITY "lathe.last_sensitivity"

static int sens_gc(lua_State *L)
{
	lt_sensitivity **p = lua_touserdata(L, 1);
	lt_sensitivity_free(*p);
	*p = NULL;
	return 0;
}

static void keep_last(lua_State *L, lt_sensitivity *s)
{
	lt_sensitivity **p = lua_newuserdatauv(L, sizeof *p, 0);
	*p = s;
	lua_createtable(L, 0, 1);
	lua_pushcfunction(L, sens_gc);
	lua_setfield(L, -2, "__gc");
	lua_setmetatable(L, -2);
	lua_setfield(L, LUA_REGISTRYINDEX, LAST_SENSITIVITY);
}

const lt_sensitivity *lt_lua_last_sensitivity(lua_State *L)
{
	lua_getfield(L, LUA_REGISTRYINDEX, LAST_SENSITIVITY);
	lt_sensitivity **p = lua_touserdata(L, -1);
	lua_pop(L, 1);
	return p ? *p : NULL;
}

/* tostring of a sensitivity table: accuracy per layer and sparsity. */
static int sens_tostring(lua_State *L)
{
	lt_sbuf *b = lt_sbuf_new(L);
	char cell[96];
	lua_getfield(L, 1, "baseline");
	snprintf(cell, sizeof cell, "sensitivity (accuracy %%, baseline %.2f):\n%-24s %9s",
		 100 * lua_tonumber(L, -1), "layer", "params");
	lua_pop(L, 1);
	lt_sbuf_adds(L, b, cell);
	lua_getfield(L, 1, "sparsities");
	for (lua_Integer j = 1; j <= (lua_Integer)lua_rawlen(L, -1); j++) {
		lua_rawgeti(L, -1, j);
		snprintf(cell, sizeof cell, " %5.0f%%", 100 * lua_tonumber(L, -1));
		lua_pop(L, 1);
		lt_sbuf_adds(L, b, cell);
	}
	lua_pop(L, 1);
	lua_getfield(L, 1, "layers");
	for (lua_Integer i = 1; i <= (lua_Integer)lua_rawlen(L, -1); i++) {
		lua_rawgeti(L, -1, i);
		lua_getfield(L, -1, "name");
		lua_getfield(L, -2, "params");
		snprintf(cell, sizeof cell, "\n%-24.24s %9lld", lua_tostring(L, -2), (long long)lua_tointeger(L, -1));
		lua_pop(L, 2);
		lt_sbuf_adds(L, b, cell);
		lua_getfield(L, -1, "accuracy");
		for (lua_Integer j = 1; j <= (lua_Integer)lua_rawlen(L, -1); j++) {
			lua_rawgeti(L, -1, j);
			snprintf(cell, sizeof cell, " %6.2f", 100 * lua_tonumber(L, -1));
			lua_pop(L, 1);
			lt_sbuf_adds(L, b, cell);
		}
		lua_pop(L, 2);
	}
	lua_pop(L, 1);
	lt_sbuf_result(L, b, -1);
	return 1;
}

/* lathe.sensitivity(model, {sparsities=, layers=, method=, seed=, split=,
 * limit=, threads=, batch=}): each layer's weight pruned alone to each
 * sparsity, accuracy measured; the stage is not changed. */
int lt_l_sensitivity(lua_State *L)
{
	static const char *const names[] = {"sparsities", "layers", "method", "seed", "split", "limit",
		"threads", "batch", NULL};
	const char *fname = "lathe.sensitivity";
	lua_settop(L, 2);
	if (!luaL_testudata(L, 1, LT_MT_MODEL))
		return luaL_error(L, "%s: expected a model (got %s)", fname, lt_kind_of(L, 1));
	lt_check_opts(L, 2, fname, names);
	lt_sensitivity_opts o = {.method = LT_PRUNE_MAGNITUDE};
	const char *method = lt_opt_string(L, 2, fname, "method", "magnitude");
	if (!strcmp(method, "random"))
		o.method = LT_PRUNE_RANDOM;
	else if (strcmp(method, "magnitude"))
		return luaL_error(L, "%s: unknown method '%s' (expected magnitude or random)", fname, method);
	o.seed = (uint64_t)lt_opt_integer(L, 2, fname, "seed", 1);
	static const double default_levels[] = {0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98};
	double levels[64];
	int nl = 0;
	if (has_opt(L, 2, "sparsities")) {
		lua_getfield(L, 2, "sparsities");
		if (!lua_istable(L, -1) || lua_rawlen(L, -1) < 1 || lua_rawlen(L, -1) > 64)
			return luaL_error(L, "%s: sparsities must be a list of 1 to 64 fractions", fname);
		for (nl = 0; nl < (int)lua_rawlen(L, -1); nl++) {
			lua_rawgeti(L, -1, nl + 1);
			int isnum;
			levels[nl] = lua_tonumberx(L, -1, &isnum);
			lua_pop(L, 1);
			if (!isnum)
				return luaL_error(L, "%s: sparsities[%d] is not a number", fname, nl + 1);
		}
		lua_pop(L, 1);
	} else {
		nl = (int)(sizeof default_levels / sizeof *default_levels);
		memcpy(levels, default_levels, sizeof default_levels);
	}
	o.levels = levels;
	o.n_levels = nl;
	const char *split = lt_opt_string(L, 2, fname, "split", "val");
	lua_Integer limit = lt_opt_integer(L, 2, fname, "limit", 0);
	lua_Integer threads = lt_opt_integer(L, 2, fname, "threads", 0);
	lua_Integer batch = lt_opt_integer(L, 2, fname, "batch", 1000);
	if (limit < 0 || threads < 0 || threads > 256 || batch < 1 || batch > 1000000)
		return luaL_error(L, "%s: limit must be 0 (all) or more, threads 0 (one per core) to 256, "
				  "batch 1 to 1000000", fname);
	lt_bench *b = NULL;
	lt_collect_targets(L, 1, 2, fname, &b);
	int list = lua_gettop(L);
	o.n_tensors = (int)lua_rawlen(L, list);
	const char **tensors = lua_newuserdatauv(L, (size_t)(o.n_tensors ? o.n_tensors : 1) * sizeof *tensors, 0);
	for (int i = 0; i < o.n_tensors; i++) {
		lua_rawgeti(L, list, i + 1);
		tensors[i] = lua_tostring(L, -1); /* anchored by list */
		lua_pop(L, 1);
	}
	o.tensors = tensors;
	lt_model *stage = lt_bench_staged(b);
	if (!lt_model_graph(stage))
		return luaL_error(L, "%s: the model has no architecture (weights only), so it cannot be evaluated",
				  fname);
	lt_dataset view;
	lt_lstate_dataset(L, split, limit, &view);
	char key[512];
	snprintf(key, sizeof key, "%s:%lld:%s", split, (long long)view.n, view.source ? view.source : "");
	struct sens_ctx ctx = {.L = L, .work = {.label = "sensitivity", .run = sens_work}, .bench = b, .o = &o};
	lt_err err;
	ctx.work.arg = &ctx;
	ctx.err = &err;
	o.eval = (lt_preview_opts){.data = &view, .data_key = key, .threads = (int)threads, .batch = (int)batch,
				   .progress = sens_progress, .progress_ud = &ctx};
	int rc = lt_lua_run_work(L, &ctx.work);
	lt_lua_progress(L, "sensitivity", 1.0, NULL);
	if (rc)
		return lt_lraise(L, fname, &err);
	lt_sensitivity *s = ctx.result;

	lua_createtable(L, 0, 5);
	lt_set_num(L, "baseline", s->baseline);
	lt_set_int(L, "images", s->images);
	lua_pushstring(L, split);
	lua_setfield(L, -2, "split");
	lua_createtable(L, nl, 0);
	for (int j = 0; j < nl; j++) {
		lua_pushnumber(L, s->levels[j]);
		lua_rawseti(L, -2, j + 1);
	}
	lua_setfield(L, -2, "sparsities");
	lua_createtable(L, s->n_tensors, 0);
	for (int i = 0; i < s->n_tensors; i++) {
		lua_createtable(L, 0, 4);
		lua_pushstring(L, layer_of(stage, s->tensors[i]));
		lua_setfield(L, -2, "name");
		lua_pushstring(L, s->tensors[i]);
		lua_setfield(L, -2, "tensor");
		lt_set_int(L, "params", s->params[i]);
		lua_createtable(L, nl, 0);
		for (int j = 0; j < nl; j++) {
			lua_pushnumber(L, s->accuracy[(size_t)i * (size_t)nl + (size_t)j]);
			lua_rawseti(L, -2, j + 1);
		}
		lua_setfield(L, -2, "accuracy");
		lua_rawseti(L, -2, i + 1);
	}
	lua_setfield(L, -2, "layers");
	lua_createtable(L, 0, 1);
	lua_pushcfunction(L, sens_tostring);
	lua_setfield(L, -2, "__tostring");
	lua_setmetatable(L, -2);
	keep_last(L, s);
	return 1;
}

/* lathe.choose_sparsities(result, {budget = 0.01}) -> {layer = sparsity},
 * weights removed: the greedy choice of lt_sensitivity_choose over a table
 * as lathe.sensitivity returns it. */
int lt_l_choose_sparsities(lua_State *L)
{
	static const char *const names[] = {"budget", NULL};
	const char *fname = "lathe.choose_sparsities";
	lua_settop(L, 2);
	luaL_checktype(L, 1, LUA_TTABLE);
	lt_check_opts(L, 2, fname, names);
	double budget = lt_opt_number(L, 2, fname, "budget", NAN);
	if (!(budget >= 0 && budget <= 1))
		return luaL_error(L, "%s: give {budget = B}, the accuracy you accept to lose as a fraction "
				  "(0.01 is one point)", fname);
	lt_sensitivity s = {0};
	lua_getfield(L, 1, "baseline");
	lua_getfield(L, 1, "sparsities");
	lua_getfield(L, 1, "layers");
	if (!lua_isnumber(L, -3) || !lua_istable(L, -2) || !lua_istable(L, -1))
		return luaL_error(L, "%s: expected the table lathe.sensitivity returns", fname);
	s.baseline = lua_tonumber(L, -3);
	s.n_levels = (int)lua_rawlen(L, -2);
	s.n_tensors = (int)lua_rawlen(L, -1);
	s.levels = lua_newuserdatauv(L, (size_t)(s.n_levels + 1) * sizeof *s.levels, 0);
	s.params = lua_newuserdatauv(L, (size_t)(s.n_tensors + 1) * sizeof *s.params, 0);
	s.accuracy = lua_newuserdatauv(L, (size_t)(s.n_tensors * s.n_levels + 1) * sizeof *s.accuracy, 0);
	double *chosen = lua_newuserdatauv(L, (size_t)(s.n_tensors + 1) * sizeof *chosen, 0);
	int layers = lua_gettop(L) - 4, levels = layers - 1;
	for (int j = 0; j < s.n_levels; j++) {
		lua_rawgeti(L, levels, j + 1);
		s.levels[j] = lua_tonumber(L, -1);
		lua_pop(L, 1);
	}
	for (int i = 0; i < s.n_tensors; i++) {
		lua_rawgeti(L, layers, i + 1);
		lua_getfield(L, -1, "params");
		lua_getfield(L, -2, "accuracy");
		if (!lua_isinteger(L, -2) || !lua_istable(L, -1) || (int)lua_rawlen(L, -1) != s.n_levels)
			return luaL_error(L, "%s: layers[%d] needs params and one accuracy per sparsity", fname, i + 1);
		s.params[i] = lua_tointeger(L, -2);
		for (int j = 0; j < s.n_levels; j++) {
			lua_rawgeti(L, -1, j + 1);
			s.accuracy[(size_t)i * (size_t)s.n_levels + (size_t)j] = lua_tonumber(L, -1);
			lua_pop(L, 1);
		}
		lua_pop(L, 3);
	}
	int64_t removed = lt_sensitivity_choose(&s, budget, chosen);
	lua_createtable(L, 0, s.n_tensors);
	for (int i = 0; i < s.n_tensors; i++) {
		lua_rawgeti(L, layers, i + 1);
		lua_getfield(L, -1, "name");
		lua_pushnumber(L, chosen[i]);
		lua_settable(L, -4);
		lua_pop(L, 1);
	}
	lua_pushinteger(L, removed);
	return 2;
}

/* lathe.cast(target, {dtype = "f16" | "bf16" | "f32", layers=, bias=}) */
int lt_l_cast(lua_State *L)
{
	static const char *const names[] = {"dtype", "layers", "bias", NULL};
	const char *fname = "lathe.cast";
	lua_settop(L, 2);
	lt_check_target(L, 1, fname);
	lt_check_opts(L, 2, fname, names);
	const char *dt = lt_opt_string(L, 2, fname, "dtype", NULL);
	if (!dt)
		return luaL_error(L, "%s: give {dtype = \"f16\"} (f16, bf16 or f32)", fname);
	lt_dtype dtype;
	if (!strcmp(dt, "f16"))
		dtype = LT_F16;
	else if (!strcmp(dt, "bf16"))
		dtype = LT_BF16;
	else if (!strcmp(dt, "f32"))
		dtype = LT_F32;
	else
		return luaL_error(L, "%s: unknown dtype '%s' (expected f16, bf16 or f32)", fname, dt);
	lt_bench *b = NULL;
	lt_collect_targets(L, 1, 2, fname, &b);
	int list = lua_gettop(L);
	lua_Integer n = (lua_Integer)lua_rawlen(L, list);
	lt_tensor **made = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *made, 0);
	memset(made, 0, (size_t)(n ? n : 1) * sizeof *made);
	lt_err err = {0};
	int rc = 0;
	for (lua_Integer i = 0; i < n && !rc; i++) {
		lua_rawgeti(L, list, i + 1);
		lt_tensor *t = lt_model_tensor(lt_bench_staged(b), lua_tostring(L, -1));
		lua_pop(L, 1);
		if (!(made[i] = lt_tensor_cast(t, dtype, &err)) ||
		    (lt_tensor_mask(t) && lt_tensor_set_mask(made[i], lt_tensor_mask(t), &err)))
			rc = err.code;
	}
	for (lua_Integer i = 0; i < n && !rc; i++) {
		lua_rawgeti(L, list, i + 1);
		rc = lt_bench_stage_tensor(b, lua_tostring(L, -1), made[i], &err);
		lua_pop(L, 1);
	}
	for (lua_Integer i = 0; i < n; i++)
		lt_tensor_unref(made[i]);
	if (rc)
		return lt_lraise(L, fname, &err);
	lt_journal_kernel(L, b, "cast", 1, 2);
	lua_pushvalue(L, list);
	return 1;
}

/* ---- fine-tuning ------------------------------------------------------ */

/* Fine-tuning as work for lt_lua_run_work (it may run on another thread:
 * nothing here touches Lua but through lt_lua_work_progress). */
struct train_ctx {
	lua_State *L;
	int epochs;
	lt_lua_work work;
	lt_model *stage;
	const lt_dataset *data;
	const lt_train_cfg *cfg;
	lt_err *err;
};

static int train_progress(void *ud, const lt_train_status *st)
{
	struct train_ctx *c = ud;
	if (lt_lua_interrupted())
		return 1;
	char detail[128];
	/* st->epoch counts from 1 */
	double done = st->batch < 0 ? st->epoch
				    : st->epoch - 1 + (double)st->batch / (double)(st->batches ? st->batches : 1);
	snprintf(detail, sizeof detail, "epoch %d/%d  loss %.4f  acc %.2f%%", st->epoch, st->epochs,
		 st->loss, 100 * st->acc);
	lt_lua_work_progress(c->L, &c->work, done / (double)c->epochs, detail);
	return 0;
}

static int train_work(lt_lua_work *w)
{
	struct train_ctx *c = w->arg;
	return lt_train_run(c->stage, c->data, NULL, c->cfg, train_progress, c, c->err);
}

/* lathe.finetune(model, {epochs=1, lr=, opt="adam", batch=128, seed=1,
 * split="train", limit=0, momentum=0.9, weight_decay=0, schedule="const",
 * threads=}): train the staged model; pruned (masked) weights stay 0. */
int lt_l_finetune(lua_State *L)
{
	static const char *const names[] = {"epochs", "lr", "opt", "batch", "seed", "split", "limit",
		"momentum", "weight_decay", "schedule", "threads", "keep_zeros", "l1", NULL};
	const char *fname = "lathe.finetune";
	lua_settop(L, 2);
	lmodel *lm = luaL_testudata(L, 1, LT_MT_MODEL);
	if (!lm)
		return luaL_error(L, "%s: expected a model (got %s)", fname, lt_kind_of(L, 1));
	lt_bench *b = lt_model_bench(L, lm);
	lt_check_opts(L, 2, fname, names);
	lt_model *stage = lt_bench_staged(b);
	if (!lt_model_graph(stage))
		return luaL_error(L, "%s: the model has no architecture (weights only), so it cannot be trained", fname);
	lt_train_cfg cfg = {0};
	const char *opt = lt_opt_string(L, 2, fname, "opt", "adam");
	if (lt_opt_parse(opt, &cfg.opt.kind))
		return luaL_error(L, "%s: unknown opt '%s' (expected adam, adamw or sgd)", fname, opt);
	lua_Integer epochs = lt_opt_integer(L, 2, fname, "epochs", 1);
	lua_Integer batch = lt_opt_integer(L, 2, fname, "batch", 128);
	lua_Integer threads = lt_opt_integer(L, 2, fname, "threads", lt_cpu_count());
	lua_Integer limit = lt_opt_integer(L, 2, fname, "limit", 0);
	double lr = lt_opt_number(L, 2, fname, "lr", cfg.opt.kind == LT_OPT_SGD ? 0.01 : 0.001);
	if (epochs < 1 || epochs > 100000)
		return luaL_error(L, "%s: epochs must be 1 to 100000 (got %I)", fname, epochs);
	if (batch < 1 || batch > 65536)
		return luaL_error(L, "%s: batch must be 1 to 65536 (got %I)", fname, batch);
	if (threads < 1 || threads > 256)
		return luaL_error(L, "%s: threads must be 1 to 256 (got %I)", fname, threads);
	if (limit < 0)
		return luaL_error(L, "%s: limit must be 0 (all) or more (got %I)", fname, limit);
	if (!(lr > 0 && lr < HUGE_VAL))
		return luaL_error(L, "%s: lr must be above 0 (got %f)", fname, lr);
	cfg.epochs = (int)epochs;
	cfg.batch = (int)batch;
	cfg.threads = (int)threads;
	cfg.seed = (uint64_t)lt_opt_integer(L, 2, fname, "seed", 1);
	cfg.opt.lr = (float)lr;
	if (cfg.opt.kind != LT_OPT_SGD && !isnan(lt_opt_number(L, 2, fname, "momentum", NAN)))
		return luaL_error(L, "%s: option 'momentum' applies to opt = \"sgd\" only", fname);
	cfg.opt.momentum = cfg.opt.kind == LT_OPT_SGD ? (float)lt_opt_number(L, 2, fname, "momentum", 0.9) : 0;
	int keep_zeros = lt_opt_bool(L, 2, fname, "keep_zeros", 1);
	cfg.opt.weight_decay = (float)lt_opt_number(L, 2, fname, "weight_decay", 0);
	double l1 = lt_opt_number(L, 2, fname, "l1", 0);
	if (!(l1 >= 0 && l1 < HUGE_VAL))
		return luaL_error(L, "%s: l1 must be 0 (off) or more (got %f)", fname, l1);
	cfg.l1 = (float)l1;
	const char *sched = lt_opt_string(L, 2, fname, "schedule", "const");
	if (!strcmp(sched, "const"))
		cfg.sched = LT_SCHED_CONST;
	else if (!strcmp(sched, "cosine"))
		cfg.sched = LT_SCHED_COSINE;
	else
		return luaL_error(L, "%s: unknown schedule '%s' (expected const or cosine)", fname, sched);
	const char *split = lt_opt_string(L, 2, fname, "split", "train");
	lt_dataset data;
	lt_lstate_dataset(L, split, limit, &data);

	/* Training writes every parameter: make them the stage's own first. */
	lt_err err = {0};
	for (size_t i = 0; i < lt_model_tensor_count(stage); i++)
		if (!lt_bench_writable(b, lt_model_tensor_name(stage, i), &err))
			return lt_lraise(L, fname, &err);
	/* Weights that are exactly zero without a mask (a pruned model saved
	 * and opened again: files carry no masks) stay zero too. */
	lt_graph *g = lt_model_graph(stage);
	for (int i = 0; keep_zeros && i < g->n_nodes; i++) {
		const char *wn = g->nodes[i].params[LT_P_WEIGHT];
		lt_tensor *w = wn ? lt_model_tensor(stage, wn) : NULL;
		if (!w || lt_tensor_ndim(w) < 2 || lt_tensor_mask(w) || !lt_tensor_count_zeros(w))
			continue;
		const float *wv = lt_tensor_data(w, &err);
		lt_tensor *mask = wv ? lt_tensor_new(lt_tensor_ndim(w), lt_tensor_shape(w), &err) : NULL;
		float *mv = mask ? lt_tensor_data_mut(mask, &err) : NULL;
		if (!mv) {
			lt_tensor_unref(mask);
			return lt_lraise(L, fname, &err);
		}
		for (int64_t j = 0; j < lt_tensor_numel(w); j++)
			mv[j] = wv[j] != 0.0f;
		int rc = lt_tensor_set_mask(w, mask, &err);
		lt_tensor_unref(mask);
		if (rc)
			return lt_lraise(L, fname, &err);
	}
	struct train_ctx ctx = {L, cfg.epochs, {.label = "finetune", .run = train_work}, stage, &data, &cfg, &err};
	ctx.work.arg = &ctx;
	int rc = lt_lua_run_work(L, &ctx.work);
	lt_lua_progress(L, "finetune", 1.0, NULL);
	if (rc)
		/* The stage is half-trained; the atomic call around the statement
		 * (lt_lua_pcall, lathe.atomic) puts it back. */
		return lt_lraise(L, fname, &err);

	/* Journal with every setting spelled out, so replay is identical even
	 * if defaults (or the core count) differ. */
	lua_createtable(L, 0, 11);
	lua_pushinteger(L, cfg.epochs); lua_setfield(L, -2, "epochs");
	lua_pushnumber(L, lr); lua_setfield(L, -2, "lr");
	lua_pushstring(L, opt); lua_setfield(L, -2, "opt");
	lua_pushinteger(L, cfg.batch); lua_setfield(L, -2, "batch");
	lua_pushinteger(L, (lua_Integer)cfg.seed); lua_setfield(L, -2, "seed");
	lua_pushstring(L, split); lua_setfield(L, -2, "split");
	lua_pushinteger(L, limit); lua_setfield(L, -2, "limit");
	if (cfg.opt.kind == LT_OPT_SGD) {
		lua_pushnumber(L, lt_opt_number(L, 2, fname, "momentum", 0.9));
		lua_setfield(L, -2, "momentum");
	}
	lua_pushnumber(L, lt_opt_number(L, 2, fname, "weight_decay", 0)); lua_setfield(L, -2, "weight_decay");
	lua_pushstring(L, sched); lua_setfield(L, -2, "schedule");
	lua_pushinteger(L, cfg.threads); lua_setfield(L, -2, "threads");
	lua_pushboolean(L, keep_zeros); lua_setfield(L, -2, "keep_zeros");
	if (l1 > 0) {
		lua_pushnumber(L, l1);
		lua_setfield(L, -2, "l1");
	}
	lt_journal_kernel(L, b, "finetune", 1, lua_gettop(L));
	lua_pop(L, 1);
	lua_pushboolean(L, 1);
	return 1;
}

/* ---- models ----------------------------------------------------------- */

int lt_l_open(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	if (!lt_sandbox_allows(L, path, 0))
		return luaL_error(L, "lathe.open: %s: reading this file is not allowed in the sandbox", path);
	lmodel *lm = lua_newuserdatauv(L, sizeof *lm, 0);
	memset(lm, 0, sizeof *lm);
	luaL_setmetatable(L, LT_MT_MODEL);
	lt_err err;
	lt_model *m = lt_model_open(path, &err);
	if (!m) {
		lua_pushnil(L);
		lua_pushfstring(L, "%s: %s", path, err.msg);
		return 2;
	}
	lt_bench *b = lt_bench_new(m, &err);
	lt_model_unref(m);
	if (!b || !(lm->path = lt_strdup(path)) || lt_lstate_add_bench(L, b)) {
		lt_bench_unref(b);
		return luaL_error(L, "lathe.open: out of memory");
	}
	lm->bench = b;
	return 1;
}

/* Drop the model value's reference. Collection only releases it: layers
 * and tensors taken from the model keep its data alive and usable. An
 * explicit close (or a to-be-closed variable) also closes the bench, so
 * they refuse further use. */
static void release(lua_State *L, lmodel *lm, int close)
{
	if (lm->bench) {
		lt_lstate_remove_bench(L, lm->bench);
		if (close)
			lt_bench_close(lm->bench);
		lt_bench_unref(lm->bench);
	}
	lt_free(lm->path);
	lm->bench = NULL;
	lm->path = NULL;
}

static int m_gc(lua_State *L)
{
	release(L, luaL_checkudata(L, 1, LT_MT_MODEL), 0);
	return 0;
}

/* model:close([{discard = true}]): staged changes are not dropped
 * silently; a <close> variable's scope end (__close) always releases. */
static int m_close(lua_State *L)
{
	static const char *const names[] = {"discard", NULL};
	lmodel *lm = luaL_checkudata(L, 1, LT_MT_MODEL);
	lt_check_opts(L, 2, "model:close", names);
	if (lm->bench && lt_bench_dirty(lm->bench) && !lt_opt_bool(L, 2, "model:close", "discard", 0))
		return luaL_error(L, "model:close: changes are staged; commit or roll back first, or "
				  "close{discard = true} to drop them");
	release(L, lm, 1);
	return 0;
}

static int m_close_scope(lua_State *L)
{
	release(L, luaL_checkudata(L, 1, LT_MT_MODEL), 1);
	return 0;
}


static void push_metrics(lua_State *L, const lt_metrics *m)
{
	lua_createtable(L, 0, 10);
	if (m->has_accuracy) {
		lt_set_num(L, "accuracy", m->accuracy);
		lt_set_num(L, "loss", m->loss);
		lt_set_int(L, "images", m->images);
	}
	lt_set_int(L, "params", m->params);
	lt_set_int(L, "nonzeros", m->nonzeros);
	lt_set_num(L, "sparsity", m->params ? 1.0 - (double)m->nonzeros / (double)m->params : 0.0);
	lt_set_int(L, "bytes", (int64_t)m->bytes);
	lt_set_int(L, "size", (int64_t)m->size);
	lt_set_num(L, "ratio", m->ratio);
}

/* Evaluation (a preview or m:eval) as work for lt_lua_run_work: like
 * fine-tuning, it may run on another thread. */
struct eval_ctx {
	lua_State *L;
	lt_lua_work work;
	lt_bench *bench;              /* preview */
	lt_preview_opts *po;
	lt_preview *p;
	lt_model *model;              /* eval */
	const lt_dataset *data;
	lt_eval_opts *eo;
	lt_eval_result *r;
	lt_err *err;
};

/* Evaluation progress: report it, and stop on Ctrl-C. */
static int eval_progress(void *ud, int64_t done, int64_t total)
{
	struct eval_ctx *c = ud;
	char detail[64];
	snprintf(detail, sizeof detail, "%lld/%lld images", (long long)done, (long long)total);
	return work_progress(c->L, &c->work, done, total, detail);
}

static int preview_work(lt_lua_work *w)
{
	struct eval_ctx *c = w->arg;
	return lt_bench_preview(c->bench, c->po, c->p, c->err);
}

static int eval_work(lt_lua_work *w)
{
	struct eval_ctx *c = w->arg;
	return lt_eval_run(c->model, c->data, c->eo, c->r, c->err);
}

/* Metrics of the stage and of the committed model on a split. */
static void run_preview(lua_State *L, lt_bench *b, int opts, const char *fname, lt_preview *p)
{
	static const char *const names[] = {"split", "limit", "threads", "batch", NULL};
	lt_check_opts(L, opts, fname, names);
	const char *split = lt_opt_string(L, opts, fname, "split", "val");
	lua_Integer limit = lt_opt_integer(L, opts, fname, "limit", 0);
	lua_Integer threads = lt_opt_integer(L, opts, fname, "threads", 0);
	lua_Integer batch = lt_opt_integer(L, opts, fname, "batch", 1000);
	if (limit < 0 || threads < 0 || threads > 256 || batch < 1 || batch > 1000000)
		luaL_error(L, "%s: limit must be 0 (all) or more, threads 0 (one per core) to 256, "
			   "batch 1 to 1000000", fname);
	struct eval_ctx ctx = {.L = L, .work = {.label = "evaluating", .run = preview_work}};
	ctx.work.arg = &ctx;
	lt_preview_opts po = {.threads = (int)threads, .batch = (int)batch,
			      .progress = eval_progress, .progress_ud = &ctx};
	lt_dataset view;
	char key[512];
	if (lt_model_graph(lt_bench_committed(b)) || lt_model_graph(lt_bench_staged(b))) {
		lt_lstate_dataset(L, split, limit, &view);
		/* The source names the files, so another --data is another key. */
		snprintf(key, sizeof key, "%s:%lld:%s", split, (long long)view.n, view.source ? view.source : "");
		po.data = &view;
		po.data_key = key;
	}
	lt_err err;
	ctx.bench = b, ctx.po = &po, ctx.p = p, ctx.err = &err;
	int rc = lt_lua_run_work(L, &ctx.work);
	lt_lua_progress(L, "evaluating", 1.0, NULL);
	if (rc)
		lt_lraise(L, fname, &err);
}

static void push_delta(lua_State *L, const lt_metrics *s, const lt_metrics *c)
{
	lua_createtable(L, 0, 8);
	if (s->has_accuracy && c->has_accuracy) {
		lt_set_num(L, "accuracy", s->accuracy - c->accuracy);
		lt_set_num(L, "loss", s->loss - c->loss);
	}
	lt_set_int(L, "params", s->params - c->params);
	lt_set_int(L, "nonzeros", s->nonzeros - c->nonzeros);
	lt_set_int(L, "bytes", (int64_t)s->bytes - (int64_t)c->bytes);
	lt_set_int(L, "size", (int64_t)s->size - (int64_t)c->size);
	lt_set_num(L, "ratio", s->ratio - c->ratio);
	lua_setfield(L, -2, "delta");
}

static int preview_tostring(lua_State *L)
{
	lua_getfield(L, 1, "committed");
	int c = lua_gettop(L);
	lua_getfield(L, 1, "accuracy");
	lua_getfield(L, c, "accuracy");
	lua_getfield(L, 1, "size");
	lua_getfield(L, c, "size");
	lua_getfield(L, 1, "ratio");
	double size = lua_tonumber(L, c + 3), csize = lua_tonumber(L, c + 4), ratio = lua_tonumber(L, c + 5);
	char acc[128] = "";
	if (!lua_isnil(L, c + 1) && !lua_isnil(L, c + 2)) {
		double a = lua_tonumber(L, c + 1), ca = lua_tonumber(L, c + 2);
		snprintf(acc, sizeof acc, "accuracy %.2f%% -> %.2f%% (%+.2f), ", 100 * ca, 100 * a, 100 * (a - ca));
	}
	/* Without accuracy, the largest output error tells how far it moved. */
	if (!*acc && lua_getfield(L, 1, "fidelity") == LUA_TTABLE) {
		double worst = -1;
		const char *where = NULL;
		for (lua_Integer i = 1; i <= (lua_Integer)lua_rawlen(L, -1); i++) {
			lua_rawgeti(L, -1, i);
			lua_getfield(L, -1, "output");
			if (lua_isnil(L, -1)) {
				lua_pop(L, 1);
				lua_getfield(L, -1, "frobenius");
			}
			double e = lua_tonumber(L, -1);
			lua_getfield(L, -2, "tensor");
			if (e > worst) {
				worst = e;
				where = lua_tostring(L, -1); /* anchored by the preview table */
			}
			lua_pop(L, 3);
		}
		if (where)
			snprintf(acc, sizeof acc, "largest relative error %.4f (%.40s), ", worst, where);
	}
	char buf[256], from[32], to[32];
	snprintf(buf, sizeof buf, "preview: %ssize %s -> %s (%.2fx)", acc,
		 lt_format_bytes(csize, from, sizeof from), lt_format_bytes(size, to, sizeof to), ratio);
	lua_pushstring(L, buf);
	return 1;
}

/* m:preview{split="val", limit=0, threads=0, batch=1000} */
static int m_preview(lua_State *L)
{
	lt_bench *b = check_bench(L, 1);
	lua_settop(L, 2);
	lt_preview p;
	run_preview(L, b, 2, "preview", &p);
	push_metrics(L, &p.staged);
	push_metrics(L, &p.committed);
	lua_setfield(L, -2, "committed");
	push_delta(L, &p.staged, &p.committed);
	lua_pushboolean(L, p.cached);
	lua_setfield(L, -2, "cached");
	lua_pushboolean(L, lt_bench_dirty(b));
	lua_setfield(L, -2, "staged");
	lua_pushstring(L, lt_opt_string(L, 2, "preview", "split", "val"));
	lua_setfield(L, -2, "split");
	lua_createtable(L, (int)p.n_fidelity, 0);
	for (size_t i = 0; i < p.n_fidelity; i++) {
		lua_createtable(L, 0, 3);
		lua_pushstring(L, p.fidelity[i].name);
		lua_setfield(L, -2, "tensor");
		lt_set_num(L, "frobenius", p.fidelity[i].rel_frob);
		if (!isnan(p.fidelity[i].rel_out))
			lt_set_num(L, "output", p.fidelity[i].rel_out);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	lt_preview_free(&p);
	lua_setfield(L, -2, "fidelity");
	lua_createtable(L, 0, 1);
	lua_pushcfunction(L, preview_tostring);
	lua_setfield(L, -2, "__tostring");
	lua_setmetatable(L, -2);
	return 1;
}

/* m:commit([message]) -> step id */
static int m_commit(lua_State *L)
{
	lt_bench *b = check_bench(L, 1);
	const char *msg = luaL_optstring(L, 2, "");
	lt_metrics metrics, *mp = NULL;
	if (lt_lua_commit_preview(L) && lt_bench_dirty(b)) {
		lua_settop(L, 2);
		lt_preview p;
		run_preview(L, b, 3, "commit", &p);
		metrics = p.staged;
		mp = &metrics;
		lt_bench_annotate_head(b, &p.committed);
		lt_preview_free(&p);
	}
	/* The journal line comes first so it is part of this step. */
	lt_sbuf *buf = lt_sbuf_new(L);
	lt_sbuf_adds(L, buf, "model:commit(");
	if (*msg) {
		lua_pushstring(L, msg);
		lt_journal_value(L, buf, -1, 0);
		lua_pop(L, 1);
	}
	lt_sbuf_addc(L, buf, ')');
	lt_sbuf_result(L, buf, -1);
	lt_journal_note(L, b, lua_tostring(L, -1));
	lua_pop(L, 1);
	lt_err err;
	if (lt_bench_commit(b, msg, mp, &err))
		return lt_lraise(L, "commit", &err);
	lua_pushinteger(L, (lua_Integer)lt_bench_history_len(b) - 1);
	return 1;
}

static int m_rollback(lua_State *L)
{
	lt_bench *b = check_bench(L, 1);
	int had = lt_bench_dirty(b);
	lt_bench_rollback(b);
	lua_pushboolean(L, had);
	return 1;
}

static int m_undo(lua_State *L)
{
	lt_bench *b = check_bench(L, 1);
	lt_err err;
	if (lt_bench_undo(b, &err))
		return lt_lraise(L, "undo", &err);
	lua_pushinteger(L, (lua_Integer)lt_bench_history_len(b) - 1);
	return 1;
}

static int m_history(lua_State *L)
{
	lt_bench *b = check_bench(L, 1);
	size_t n = lt_bench_history_len(b);
	lua_createtable(L, (int)n, 0);
	for (size_t i = 0; i < n; i++) {
		const lt_bench_step *s = lt_bench_history_at(b, i);
		if (s->has_metrics)
			push_metrics(L, &s->metrics);
		else
			lua_createtable(L, 0, 4);
		lt_set_int(L, "step", s->id);
		lua_pushstring(L, s->message);
		lua_setfield(L, -2, "message");
		lua_pushstring(L, s->calls);
		lua_setfield(L, -2, "calls");
		lua_pushboolean(L, s->undoable);
		lua_setfield(L, -2, "undoable");
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	return 1;
}

/* The journal as recipe text. */
static void push_journal(lua_State *L, lmodel *lm)
{
	lt_bench *b = lt_model_bench(L, lm);
	luaL_Buffer buf;
	luaL_buffinit(L, &buf);
	char head[512];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	char when[32];
	strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", &tm);
	snprintf(head, sizeof head,
		 "-- lathe recipe: the committed steps of a session on %s (%s).\n"
		 "-- Replay it on a fresh copy of that model:\n"
		 "--   lathe run THIS_FILE.lua MODEL.safetensors -o OUT.safetensors\n"
		 "local lathe = require \"lathe\"\n"
		 "assert(model, \"run me with: lathe run RECIPE.lua MODEL\")\n",
		 lm->path, when);
	luaL_addstring(&buf, head);
	size_t n = lt_bench_history_len(b);
	for (size_t i = 1; i < n; i++) {
		const lt_bench_step *s = lt_bench_history_at(b, i);
		snprintf(head, sizeof head, "\n-- step %lld\n", (long long)s->id);
		luaL_addstring(&buf, head);
		luaL_addstring(&buf, s->calls);
	}
	luaL_pushresult(&buf);
}

static int m_journal(lua_State *L)
{
	push_journal(L, lt_check_model(L, 1));
	return 1;
}

static int m_save_recipe(lua_State *L)
{
	lmodel *lm = lt_check_model(L, 1);
	const char *path = luaL_checkstring(L, 2);
	if (!lt_sandbox_allows(L, path, 1))
		return luaL_error(L, "save_recipe: %s: writing this file is not allowed in the sandbox", path);
	push_journal(L, lm);
	size_t len;
	const char *text = lua_tolstring(L, -1, &len);
	/* Temp file + rename, as model saves do: never a half-written recipe. */
	lua_pushfstring(L, "%s.tmp", path);
	const char *tmp = lua_tostring(L, -1);
	FILE *f = fopen(tmp, "wb");
	if (!f)
		return luaL_error(L, "save_recipe: %s: cannot create: %s", path, strerror(errno));
	int ok = fwrite(text, 1, len, f) == len;
	ok &= fflush(f) == 0;
	ok &= fclose(f) == 0;
	if (!ok || rename(tmp, path)) {
		int e = errno;
		remove(tmp);
		return luaL_error(L, "save_recipe: %s: cannot write: %s", path, strerror(e));
	}
	return 0;
}

/* m:save(path, {staged=false}) */
/* m:save(path, {staged=false, packed=}): packed true or false forces the
 * form; by default the model is packed when that makes the file smaller
 * (quantized, shared or pruned tensors).
 * Returns {bytes = file size, packed = bool}. */
static int m_save(lua_State *L)
{
	static const char *const names[] = {"staged", "packed", NULL};
	lt_bench *b = check_bench(L, 1);
	const char *path = luaL_checkstring(L, 2);
	lt_check_opts(L, 3, "save", names);
	int staged = lt_opt_bool(L, 3, "save", "staged", 0);
	lt_save_form form = !has_opt(L, 3, "packed") ? LT_SAVE_AUTO
			    : lt_opt_bool(L, 3, "save", "packed", 0) ? LT_SAVE_PACKED : LT_SAVE_PLAIN;
	if (!lt_sandbox_allows(L, path, 1))
		return luaL_error(L, "save: %s: writing this file is not allowed in the sandbox", path);
	lt_err err;
	int packed;
	if (lt_model_save_as(staged ? lt_bench_staged(b) : lt_bench_committed(b), path, form, &packed, &err))
		return luaL_error(L, "save: %s: %s", path, err.msg);
	struct stat st;
	lua_createtable(L, 0, 2);
	lt_set_int(L, "bytes", stat(path, &st) == 0 ? (int64_t)st.st_size : -1);
	lua_pushboolean(L, packed);
	lua_setfield(L, -2, "packed");
	return 1;
}

/* Activation thresholds from the value at idx into thr (one per node,
 * already holding the current ones): a number sets every activation layer
 * (relu, tanh, sigmoid), a table {layer = t} the layers it names. Each is
 * checked (lt_graph_check_act_threshold). */
static void read_thresholds(lua_State *L, int idx, const lt_graph *g, const char *fname, float *thr)
{
	idx = lua_absindex(L, idx);
	lt_err err = {0};
	if (lua_type(L, idx) == LUA_TNUMBER) {
		double t = lua_tonumber(L, idx);
		for (int i = 0; i < g->n_nodes; i++)
			if (g->nodes[i].op == LT_OP_RELU || g->nodes[i].op == LT_OP_TANH ||
			    g->nodes[i].op == LT_OP_SIGMOID) {
				if (lt_graph_check_act_threshold(g, i, t, &err))
					luaL_error(L, "%s: %s", fname, err.msg);
				thr[i] = (float)t;
			}
		return;
	}
	if (!lua_istable(L, idx))
		luaL_error(L, "%s: threshold must be a number or a table {layer = t}", fname);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		if (lua_type(L, -2) != LUA_TSTRING)
			luaL_error(L, "%s: threshold: give {layer = t} with layer names as keys", fname);
		const char *name = lua_tostring(L, -2);
		int i = 0;
		while (i < g->n_nodes && strcmp(g->nodes[i].name, name))
			i++;
		if (i == g->n_nodes) {
			char names[256] = "";
			for (int j = 0; j < g->n_nodes; j++)
				if (!lt_op_is_identity(g->nodes[j].op) && strlen(names) + strlen(g->nodes[j].name) + 8 < sizeof names)
					snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
						 *names ? ", " : "", g->nodes[j].name);
			luaL_error(L, "%s: threshold: no layer named '%s' (layers: %s)", fname, name, names);
		}
		if (lua_type(L, -1) != LUA_TNUMBER)
			luaL_error(L, "%s: threshold of '%s' must be a number", fname, name);
		if (lt_graph_check_act_threshold(g, i, lua_tonumber(L, -1), &err))
			luaL_error(L, "%s: %s", fname, err.msg);
		thr[i] = (float)lua_tonumber(L, -1);
		lua_pop(L, 1);
	}
}

/* A node-sized array (anchored on the stack) holding g's thresholds. */
static float *graph_thresholds(lua_State *L, const lt_graph *g)
{
	float *thr = lua_newuserdatauv(L, (size_t)(g->n_nodes ? g->n_nodes : 1) * sizeof *thr, 0);
	for (int i = 0; i < g->n_nodes; i++)
		thr[i] = g->nodes[i].act_threshold;
	return thr;
}

/* {layer = t} of every thresholded layer of g. */
static void push_thresholds(lua_State *L, const lt_graph *g)
{
	lua_newtable(L);
	for (int i = 0; i < g->n_nodes; i++)
		if (g->nodes[i].act_threshold > 0)
			lt_set_num(L, g->nodes[i].name, g->nodes[i].act_threshold);
}

/* lathe.threshold_activations(model, t | {layer = t, ...}): stage activation
 * thresholds (activation sparsity) in the model's architecture; 0 removes
 * one. Previews, evaluation, fine-tuning and saved files all carry them.
 * Returns every threshold now staged. */
int lt_l_threshold_activations(lua_State *L)
{
	const char *fname = "lathe.threshold_activations";
	lua_settop(L, 2);
	if (!luaL_testudata(L, 1, LT_MT_MODEL))
		return luaL_error(L, "%s: expected a model (got %s)", fname, lt_kind_of(L, 1));
	lt_bench *b = check_bench(L, 1);
	const lt_graph *g = lt_model_graph(lt_bench_staged(b));
	if (!g)
		return luaL_error(L, "%s: the model has no architecture (weights only)", fname);
	if (lua_isnil(L, 2))
		return luaL_error(L, "%s: give a threshold for every activation layer or {layer = t}", fname);
	float *thr = graph_thresholds(L, g);
	read_thresholds(L, 2, g, fname, thr);
	int same = 1;
	for (int i = 0; i < g->n_nodes; i++)
		same &= thr[i] == g->nodes[i].act_threshold;
	if (same) { /* nothing to stage */
		push_thresholds(L, g);
		return 1;
	}
	lt_err err = {0};
	lt_model *c = lt_model_copy(lt_bench_staged(b), &err);
	lt_graph *e = c ? lt_graph_clone(g, &err) : NULL;
	if (e)
		for (int i = 0; i < e->n_nodes; i++)
			e->nodes[i].act_threshold = thr[i];
	if (!e || lt_model_set_graph(c, e, &err)) {
		lt_graph_free(e);
		lt_model_unref(c);
		return lt_lraise(L, fname, &err);
	}
	lt_bench_stage_model(b, c);
	lt_model_unref(c);
	lt_journal_kernel(L, b, "threshold_activations", 1, 2);
	push_thresholds(L, lt_model_graph(lt_bench_staged(b)));
	return 1;
}

/* m:eval{split=, limit=, staged=, threads=, batch=, threshold=, activations=} */
static int m_eval(lua_State *L)
{
	static const char *const names[] = {"split", "limit", "staged", "threads", "batch", "threshold",
		"activations", NULL};
	lt_bench *b = check_bench(L, 1);
	lua_settop(L, 2);
	lt_check_opts(L, 2, "eval", names);
	lt_model *m = lt_opt_bool(L, 2, "eval", "staged", 1) ? lt_bench_staged(b) : lt_bench_committed(b);
	const lt_graph *g = lt_model_graph(m);
	if (!g)
		return luaL_error(L, "eval: the model has no architecture (weights only)");
	lua_Integer limit = lt_opt_integer(L, 2, "eval", "limit", 0);
	if (limit < 0)
		return luaL_error(L, "eval: limit must be 0 (all) or more (got %I)", limit);
	lt_dataset view;
	lt_lstate_dataset(L, lt_opt_string(L, 2, "eval", "split", "val"), limit, &view);
	struct eval_ctx ctx = {.L = L, .work = {.label = "evaluating", .run = eval_work}};
	ctx.work.arg = &ctx;
	lt_eval_opts eo = {.batch = (int)lt_opt_integer(L, 2, "eval", "batch", 1000),
			   .threads = (int)lt_opt_integer(L, 2, "eval", "threads", 0),
			   .progress = eval_progress, .progress_ud = &ctx};
	if (eo.batch < 1 || eo.threads < 0 || eo.threads > 256)
		return luaL_error(L, "eval: batch must be positive and threads 0 (one per core) to 256");
	if (has_opt(L, 2, "threshold")) { /* replaces the model's own for this evaluation */
		float *thr = graph_thresholds(L, g);
		lua_getfield(L, 2, "threshold");
		read_thresholds(L, -1, g, "eval", thr);
		lua_pop(L, 1);
		eo.act_threshold = thr;
	}
	if (eo.act_threshold || lt_opt_bool(L, 2, "eval", "activations", 0)) {
		eo.act_nonzero = lua_newuserdatauv(L, (size_t)g->n_nodes * sizeof *eo.act_nonzero, 0);
		eo.act_total = lua_newuserdatauv(L, (size_t)g->n_nodes * sizeof *eo.act_total, 0);
	}
	lt_eval_result r;
	lt_err err;
	ctx.model = m, ctx.data = &view, ctx.eo = &eo, ctx.r = &r, ctx.err = &err;
	int rc = lt_lua_run_work(L, &ctx.work);
	lt_lua_progress(L, "evaluating", 1.0, NULL);
	if (rc)
		return lt_lraise(L, "eval", &err);
	lua_createtable(L, 0, 7);
	lt_set_num(L, "accuracy", r.top1);
	lt_set_num(L, "top5", r.top5);
	lt_set_num(L, "loss", r.loss);
	lt_set_int(L, "images", r.n);
	lua_createtable(L, r.n_classes, 0);
	for (int c = 0; c < r.n_classes; c++) {
		int64_t right = r.confusion[(size_t)c * r.n_classes + c];
		lua_pushnumber(L, r.class_total[c] ? (double)right / (double)r.class_total[c] : 0.0);
		lua_rawseti(L, -2, c + 1);
	}
	lua_setfield(L, -2, "per_class");
	lt_eval_result_free(&r);
	if (eo.act_nonzero) {
		/* activation density of every layer: non-zero outputs / outputs */
		lua_createtable(L, g->n_nodes, 0);
		for (int i = 0; i < g->n_nodes; i++) {
			lua_createtable(L, 0, 4);
			lua_pushstring(L, g->nodes[i].name);
			lua_setfield(L, -2, "name");
			lua_pushstring(L, lt_op_name(g->nodes[i].op));
			lua_setfield(L, -2, "op");
			lt_set_num(L, "density", eo.act_total[i] ? (double)eo.act_nonzero[i] / (double)eo.act_total[i] : 0.0);
			lt_set_num(L, "threshold", eo.act_threshold ? eo.act_threshold[i] : g->nodes[i].act_threshold);
			lua_rawseti(L, -2, i + 1);
		}
		lua_setfield(L, -2, "activations");
	}
	return 1;
}

static int m_layer(lua_State *L)
{
	lt_bench *b = check_bench(L, 1);
	const char *name = luaL_checkstring(L, 2);
	if (!layer_exists(lt_bench_staged(b), name))
		return luaL_error(L, "no layer named '%s'", name);
	push_layer(L, b, name);
	return 1;
}

static int m_tensor(lua_State *L)
{
	lt_bench *b = check_bench(L, 1);
	lt_push_bound_tensor(L, b, luaL_checkstring(L, 2));
	return 1;
}

static int m_tensors(lua_State *L)
{
	lt_model *m = lt_bench_staged(check_bench(L, 1));
	size_t n = lt_model_tensor_count(m);
	lua_createtable(L, (int)n, 0);
	for (size_t i = 0; i < n; i++) {
		lua_pushstring(L, lt_model_tensor_name(m, i));
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	return 1;
}

/* m:info{staged=true}: sizes (no evaluation). */
static int m_info(lua_State *L)
{
	static const char *const names[] = {"staged", NULL};
	lt_bench *b = check_bench(L, 1);
	lt_check_opts(L, 2, "info", names);
	lt_model *m = lt_opt_bool(L, 2, "info", "staged", 1) ? lt_bench_staged(b) : lt_bench_committed(b);
	lt_metrics mt;
	lt_err err;
	if (lt_model_size_metrics(m, lt_bench_baseline_bytes(b), &mt, &err))
		return lt_lraise(L, "info", &err);
	push_metrics(L, &mt);
	lt_graph *g = lt_model_graph(m);
	if (g)
		lt_set_int(L, "macs", lt_graph_macs(g));
	lua_pushboolean(L, g != NULL);
	lua_setfield(L, -2, "has_graph");
	lt_set_int(L, "tensors", (int64_t)lt_model_tensor_count(m));
	return 1;
}

static int m_dirty(lua_State *L)
{
	lua_pushboolean(L, lt_bench_dirty(check_bench(L, 1)));
	return 1;
}

static int m_prune(lua_State *L) { return lt_call_kernel(L, lt_l_prune); }
static int m_sensitivity(lua_State *L) { return lt_l_sensitivity(L); }
static int m_prune_structured(lua_State *L) { return lt_call_kernel(L, lt_l_prune_structured); }
static int m_prune_nm(lua_State *L) { return lt_call_kernel(L, lt_l_prune_nm); }
static int m_threshold_activations(lua_State *L) { return lt_call_kernel(L, lt_l_threshold_activations); }
static int m_cast(lua_State *L) { return lt_call_kernel(L, lt_l_cast); }
static int m_quantize(lua_State *L) { return lt_call_kernel(L, lt_l_quantize); }
static int m_share(lua_State *L) { return lt_call_kernel(L, lt_l_share); }
static int m_int8_preview(lua_State *L) { return lt_call_kernel(L, lt_l_int8_preview); }
static int m_finetune(lua_State *L) { return lt_call_kernel(L, lt_l_finetune); }

static int m_tostring(lua_State *L)
{
	lmodel *lm = luaL_checkudata(L, 1, LT_MT_MODEL);
	if (!lm->bench) {
		lua_pushstring(L, "Model (closed)");
		return 1;
	}
	lt_model *m = lt_bench_staged(lm->bench);
	char params[32];
	snprintf(params, sizeof params, "%lld", (long long)lt_model_param_count(m));
	lua_pushfstring(L, "Model %s (%d tensors, %s parameters%s%s)", lm->path,
			(int)lt_model_tensor_count(m), params,
			lt_model_graph(m) ? "" : ", weights only",
			lt_bench_dirty(lm->bench) ? ", staged changes" : "");
	return 1;
}

static int m_len(lua_State *L)
{
	push_layer_list(L, check_bench(L, 1));
	lua_pushinteger(L, (lua_Integer)lua_rawlen(L, -1));
	return 1;
}

/* __names: the model's layer names, which m.NAME also reads (for
 * completion; the REPL calls it). */
static int m_names(lua_State *L)
{
	lmodel *lm = lt_check_model(L, 1);
	lua_newtable(L);
	if (!lm->bench || lt_bench_closed(lm->bench))
		return 1;
	lt_model *m = lt_bench_staged(lm->bench);
	lt_graph *g = lt_model_graph(m);
	int k = 0;
	for (int i = 0; g && i < g->n_nodes; i++) {
		if (!g->nodes[i].params[LT_P_WEIGHT])
			continue;
		lua_pushstring(L, g->nodes[i].name);
		lua_rawseti(L, -2, ++k);
	}
	if (!g) {
		push_layer_list(L, lm->bench);
		for (lua_Integer i = 1; i <= (lua_Integer)lua_rawlen(L, -1); i++) {
			lua_rawgeti(L, -1, i);
			lua_pushstring(L, ((llayer *)lua_touserdata(L, -1))->name);
			lua_rawseti(L, -4, ++k);
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
	}
	return 1;
}

static const char *const model_fields[] = {"path", "layers", "dirty", "has_graph", "version", NULL};

/* m.key: a method, a field, or a layer by name (methods win). */
static int m_index(lua_State *L)
{
	lmodel *lm = lt_check_model(L, 1);
	if (lua_type(L, 2) == LUA_TSTRING) {
		lua_getfield(L, lua_upvalueindex(1), lua_tostring(L, 2));
		if (!lua_isnil(L, -1))
			return 1;
	}
	lt_bench *b = lt_model_bench(L, lm);
	if (lua_type(L, 2) == LUA_TNUMBER) {
		push_layer_list(L, b);
		lua_rawgeti(L, -1, luaL_checkinteger(L, 2));
		return 1;
	}
	const char *k = luaL_checkstring(L, 2);
	if (!strcmp(k, "path"))
		lua_pushstring(L, lm->path);
	else if (!strcmp(k, "layers"))
		push_layer_list(L, b);
	else if (!strcmp(k, "dirty"))
		lua_pushboolean(L, lt_bench_dirty(b));
	else if (!strcmp(k, "has_graph"))
		lua_pushboolean(L, lt_model_graph(lt_bench_staged(b)) != NULL);
	else if (!strcmp(k, "version"))
		lua_pushinteger(L, (lua_Integer)lt_bench_version(b));
	else if (layer_exists(lt_bench_staged(b), k))
		push_layer(L, b, k);
	else
		lua_pushnil(L);
	return 1;
}

static const luaL_Reg model_methods[] = {
	{"preview", m_preview}, {"commit", m_commit}, {"rollback", m_rollback}, {"undo", m_undo},
	{"history", m_history}, {"journal", m_journal}, {"save_recipe", m_save_recipe},
	{"save", m_save}, {"eval", m_eval}, {"info", m_info}, {"is_dirty", m_dirty},
	{"layer", m_layer}, {"tensor", m_tensor}, {"tensors", m_tensors},
	{"prune", m_prune}, {"cast", m_cast}, {"finetune", m_finetune}, {"sensitivity", m_sensitivity},
	{"quantize", m_quantize}, {"share", m_share}, {"int8_preview", m_int8_preview},
	{"packing", lt_l_packing},
	{"prune_structured", m_prune_structured}, {"prune_nm", m_prune_nm},
	{"threshold_activations", m_threshold_activations},
	{"close", m_close},
	{NULL, NULL}
};

static const luaL_Reg model_meta[] = {
	{"__gc", m_gc}, {"__close", m_close_scope}, {"__tostring", m_tostring}, {"__len", m_len},
	{NULL, NULL}
};

static const luaL_Reg layer_methods[] = {
	{"prune", layer_prune}, {"prune_structured", layer_prune_structured}, {"prune_nm", layer_prune_nm},
	{"cast", layer_cast}, {"quantize", layer_quantize}, {"share", layer_share},
	{"stats", layer_stats}, {"free", layer_free},
	{NULL, NULL}
};

static const luaL_Reg layer_meta[] = {
	{"__gc", layer_free}, {"__close", layer_free}, {"__tostring", layer_tostring}, {"__len", layer_len},
	{NULL, NULL}
};

void lt_open_model(lua_State *L)
{
	lt_make_type(L, LT_MT_MODEL, model_meta, model_methods, m_index, model_fields);
	luaL_getmetatable(L, LT_MT_MODEL);
	lua_pushcfunction(L, m_names);
	lua_setfield(L, -2, "__names");
	lua_pop(L, 1);
	lt_make_type(L, LT_MT_LAYER, layer_meta, layer_methods, layer_index, layer_fields);
}
