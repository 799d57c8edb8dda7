/* Quantization and weight sharing from Lua: lathe.quantize and lathe.share
 * stage tensors whose values come from codes (core/scheme.h), so previews,
 * the status line and the packed format count their real size. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/scheme.h"
#include "internal.h"
#include "io/packed.h"
#include "kern/kmeans.h"
#include "kern/quant.h"
#include "lathe.h"
#include "work/ptq.h"

/* One target's result, made before anything is staged (a failure on the
 * third tensor must leave the first two unstaged). */
struct made {
	lt_tensor *t;
	lt_quant_stats st;
	lt_kmeans_stats km;
};

/* Userdata holding n results; its __gc drops the tensors, so a Lua error
 * between making and staging leaks nothing. */
static int made_gc(lua_State *L)
{
	size_t size = lua_rawlen(L, 1);
	struct made *m = lua_touserdata(L, 1);
	for (size_t i = 0; i < size / sizeof *m; i++) {
		lt_tensor_unref(m[i].t);
		m[i].t = NULL;
	}
	return 0;
}

static struct made *push_made(lua_State *L, lua_Integer n)
{
	size_t size = (size_t)(n ? n : 1) * sizeof(struct made);
	struct made *m = lua_newuserdatauv(L, size, 0);
	memset(m, 0, size);
	if (luaL_newmetatable(L, "lathe.made")) {
		lua_pushcfunction(L, made_gc);
		lua_setfield(L, -2, "__gc");
	}
	lua_setmetatable(L, -2);
	return m;
}

/* A new f32 tensor shaped like t carrying t's mask; its values are written
 * by the caller. */
static lt_tensor *like(lt_tensor *t, lt_err *err)
{
	lt_tensor *c = lt_tensor_new_uninit(lt_tensor_ndim(t), lt_tensor_shape(t), err);
	if (c && lt_tensor_mask(t) && lt_tensor_set_mask(c, lt_tensor_mask(t), err)) {
		lt_tensor_unref(c);
		return NULL;
	}
	return c;
}

static const float *mask_of(lt_tensor *t, lt_err *err)
{
	lt_tensor *m = lt_tensor_mask(t);
	return m ? lt_tensor_data(m, err) : NULL;
}

/* Keep the new tensor c (coded by s) as a result; without s, raise the
 * error that stopped it, naming the tensor (the userdata frees c). */
static void keep_made(lua_State *L, struct made *m, lt_tensor *c, lt_scheme *s, const char *name,
		      const char *fname, lt_err *err)
{
	m->t = c;
	if (!s) {
		lt_err_prefix(err, "%s", name);
		lt_lraise(L, fname, err);
	}
	lt_tensor_set_scheme(c, s, err); /* the tensor's element count: cannot fail */
}

/* Stage every result (shapes are the targets', so this cannot fail short
 * of memory), journal the call and return {name = {...}} built by fill. */
static int stage_all(lua_State *L, lt_bench *b, int list, struct made *made, const char *fname,
		     const char *journal, void (*fill)(lua_State *L, const struct made *m))
{
	lua_Integer n = (lua_Integer)lua_rawlen(L, list);
	lt_err err = {0};
	for (lua_Integer i = 0; i < n; i++) {
		lua_rawgeti(L, list, i + 1);
		int rc = lt_bench_stage_tensor(b, lua_tostring(L, -1), made[i].t, &err);
		lua_pop(L, 1);
		if (rc)
			return lt_lraise(L, fname, &err);
	}
	lt_journal_kernel(L, b, journal, 1, 2);
	lua_createtable(L, 0, (int)n);
	for (lua_Integer i = 0; i < n; i++) {
		lua_rawgeti(L, list, i + 1);
		lua_createtable(L, 0, 8);
		fill(L, &made[i]);
		lua_settable(L, -3);
	}
	return 1;
}

/* The error figures every result has. */
static void fill_error(lua_State *L, const struct made *m)
{
	const lt_scheme *s = lt_tensor_scheme(m->t);
	lt_set_int(L, "bits", s->bits);
	lt_set_num(L, "sqnr", m->st.sqnr_db);
	lt_set_num(L, "max_error", m->st.max_abs_err);
	lt_set_num(L, "mse", m->st.mse);
}

static void fill_quant(lua_State *L, const struct made *m)
{
	fill_error(L, m);
	lt_set_int(L, "saturated", m->st.saturated);
	lt_set_int(L, "zeroed", m->st.zeroed);
}

/* opts[key], one of names (NULL-terminated; def when absent): its index.
 * Raises naming the choices otherwise. */
static int opt_choice(lua_State *L, int opts, const char *fname, const char *key, const char *def,
		      const char *const *names)
{
	const char *v = lt_opt_string(L, opts, fname, key, def);
	for (int i = 0; names[i]; i++)
		if (!strcmp(v, names[i]))
			return i;
	char list[128] = "";
	for (int i = 0; names[i]; i++)
		snprintf(list + strlen(list), sizeof list - strlen(list), "%s\"%s\"", i ? (names[i + 1] ? ", " : " or ") : "",
			 names[i]);
	return luaL_error(L, "%s: %s is %s (got '%s')", fname, key, list, v);
}

/* "Q3.4" (sign + 3 integer + 4 fraction bits) into m, n. */
static int parse_qformat(const char *f, int *m, int *n)
{
	char tail;
	return f && (f[0] == 'Q' || f[0] == 'q') && sscanf(f + 1, "%d.%d%c", m, n, &tail) == 2 && *m >= 0 &&
	       *n >= 0;
}

/* lathe.quantize(target, {bits=8, mode="affine", per_channel=false,
 * rounding="nearest", seed=1, format="Qm.n", layers=, bias=}) */
int lt_l_quantize(lua_State *L)
{
	static const char *const names[] = {"bits", "mode", "per_channel", "rounding", "seed", "format",
		"layers", "bias", NULL};
	static const char *const modes[] = {"affine", "symmetric", "fixed", "f16", "bf16", NULL};
	static const lt_quant_mode mode_of[] = {LT_QUANT_AFFINE, LT_QUANT_SYMMETRIC, LT_QUANT_FIXED,
		LT_QUANT_F16, LT_QUANT_BF16};
	const char *fname = "lathe.quantize";
	lua_settop(L, 2);
	lt_check_target(L, 1, fname);
	lt_check_opts(L, 2, fname, names);
	lt_quant_spec spec = {0};
	const char *format = lt_opt_string(L, 2, fname, "format", NULL);
	spec.mode = mode_of[opt_choice(L, 2, fname, "mode", format ? "fixed" : "affine", modes)];
	if (spec.mode == LT_QUANT_FIXED) {
		if (!parse_qformat(format, &spec.m, &spec.n))
			return luaL_error(L, "%s: fixed point needs {format = \"Qm.n\"}: a sign bit, m integer and "
					  "n fraction bits, such as \"Q1.6\"", fname);
	} else if (format) {
		return luaL_error(L, "%s: format goes with mode \"fixed\"", fname);
	}
	lua_Integer bits = lt_opt_integer(L, 2, fname, "bits", spec.mode == LT_QUANT_AFFINE ||
						      spec.mode == LT_QUANT_SYMMETRIC ? 8 : 0);
	spec.bits = (int)bits;
	if (bits != spec.bits)
		return luaL_error(L, "%s: bits must be 2 to 8", fname);
	spec.per_channel = lt_opt_bool(L, 2, fname, "per_channel", 0);
	static const char *const roundings[] = {"nearest", "stochastic", NULL};
	static const lt_quant_rounding rounding_of[] = {LT_QUANT_NEAREST, LT_QUANT_STOCHASTIC};
	spec.rounding = rounding_of[opt_choice(L, 2, fname, "rounding", "nearest", roundings)];
	spec.seed = (uint64_t)lt_opt_integer(L, 2, fname, "seed", 1);
	lt_err err = {0};
	int32_t qmin, qmax;
	if (lt_quant_levels(&spec, &qmin, &qmax, &err))
		return lt_lraise(L, fname, &err);

	lt_bench *b = NULL;
	lt_collect_targets(L, 1, 2, fname, &b);
	int list = lua_gettop(L);
	lua_Integer n = (lua_Integer)lua_rawlen(L, list);
	if (n == 0)
		return luaL_error(L, "%s: nothing to quantize", fname);
	struct made *made = push_made(L, n);
	for (lua_Integer i = 0; i < n; i++) {
		lua_rawgeti(L, list, i + 1);
		const char *name = lua_tostring(L, -1);
		lt_tensor *t = lt_model_tensor(lt_bench_staged(b), name);
		const float *w = lt_tensor_data(t, &err), *mask = w ? mask_of(t, &err) : NULL;
		lt_tensor *c = w && (mask || !lt_tensor_mask(t)) ? like(t, &err) : NULL;
		float *out = c ? lt_tensor_data_mut(c, &err) : NULL;
		lt_scheme *s = out ? lt_quant_tensor(w, mask, lt_tensor_ndim(t), lt_tensor_shape(t), &spec, out,
						     &made[i].st, &err)
				   : NULL;
		keep_made(L, &made[i], c, s, name, fname, &err);
		lua_pop(L, 1);
	}
	return stage_all(L, b, list, made, fname, "quantize", fill_quant);
}

static void fill_share(lua_State *L, const struct made *m)
{
	if (!lt_tensor_scheme(m->t)) { /* nothing left to share: left as it was */
		lua_pushboolean(L, 1);
		lua_setfield(L, -2, "skipped");
		return;
	}
	fill_error(L, m);
	lt_set_int(L, "k", lt_tensor_scheme(m->t)->k);
	lt_set_int(L, "iterations", m->km.iterations);
	lua_pushboolean(L, m->km.converged);
	lua_setfield(L, -2, "converged");
	lt_set_int(L, "empty", m->km.empty);
	lt_set_int(L, "shared", m->km.included);
}

/* lathe.share(target, {bits=, k=, init="linear", seed=1, max_iter=0,
 * layers=, bias=}): k-means weight sharing; pruned weights (masked, or
 * exact zeros) stay out and stay zero. */
int lt_l_share(lua_State *L)
{
	static const char *const names[] = {"bits", "k", "init", "seed", "max_iter", "layers", "bias", NULL};
	const char *fname = "lathe.share";
	lua_settop(L, 2);
	lt_check_target(L, 1, fname);
	lt_check_opts(L, 2, fname, names);
	lt_kmeans_opts ko = {0};
	lua_Integer bits = lt_opt_integer(L, 2, fname, "bits", 0), k = lt_opt_integer(L, 2, fname, "k", 0);
	if ((bits != 0) == (k != 0))
		return luaL_error(L, "%s: give {bits = B} (1 to 8: 2^B shared values) or {k = K} (2 to 256)", fname);
	if (bits && (bits < 1 || bits > 8))
		return luaL_error(L, "%s: bits must be 1 to 8 (got %I)", fname, bits);
	if (k && (k < LT_KMEANS_MIN_K || k > LT_KMEANS_MAX_K))
		return luaL_error(L, "%s: k must be %d to %d (got %I)", fname, LT_KMEANS_MIN_K, LT_KMEANS_MAX_K, k);
	ko.k = bits ? 1 << bits : (int)k;
	static const char *const inits[] = {"linear", "density", "random", NULL};
	static const lt_kmeans_init init_of[] = {LT_KMEANS_LINEAR, LT_KMEANS_DENSITY, LT_KMEANS_RANDOM};
	ko.init = init_of[opt_choice(L, 2, fname, "init", "linear", inits)];
	ko.seed = (uint64_t)lt_opt_integer(L, 2, fname, "seed", 1);
	lua_Integer max_iter = lt_opt_integer(L, 2, fname, "max_iter", 0);
	if (max_iter < 0 || max_iter > LT_KMEANS_MAX_ITER)
		return luaL_error(L, "%s: max_iter must be 0 (until nothing moves) to %d", fname, LT_KMEANS_MAX_ITER);
	ko.max_iter = (int)max_iter;

	lt_bench *b = NULL;
	int whole = luaL_testudata(L, 1, LT_MT_MODEL) != NULL;
	lt_collect_targets(L, 1, 2, fname, &b);
	int list = lua_gettop(L);
	lua_Integer n = (lua_Integer)lua_rawlen(L, list);
	if (n == 0)
		return luaL_error(L, "%s: nothing to share", fname);
	struct made *made = push_made(L, n);
	lt_err err = {0};
	for (lua_Integer i = 0; i < n; i++) {
		lua_rawgeti(L, list, i + 1);
		const char *name = lua_tostring(L, -1);
		lt_tensor *t = lt_model_tensor(lt_bench_staged(b), name);
		int64_t numel = lt_tensor_numel(t);
		const float *w = lt_tensor_data(t, &err), *mask = w ? mask_of(t, &err) : NULL;
		/* Exact zeros of an unmasked tensor are pruned weights (a pruned
		 * file keeps no mask): they stay out, and a mask keeps them 0
		 * when the shared values are fine-tuned. */
		ko.skip_zeros = !lt_tensor_mask(t);
		lt_tensor *c = w && (mask || !lt_tensor_mask(t)) ? like(t, &err) : NULL;
		if (c && ko.skip_zeros && lt_tensor_count_zeros(t) > 0) {
			lt_tensor *zm = lt_tensor_new_uninit(lt_tensor_ndim(t), lt_tensor_shape(t), &err);
			float *z = zm ? lt_tensor_data_mut(zm, &err) : NULL;
			for (int64_t e = 0; z && e < numel; e++)
				z[e] = w[e] != 0.0f;
			if (!z || lt_tensor_set_mask(c, zm, &err)) {
				lt_tensor_unref(c);
				c = NULL;
			}
			lt_tensor_unref(zm);
		}
		float *out = c ? lt_tensor_data_mut(c, &err) : NULL;
		lt_scheme *s = NULL;
		/* a whole model: a layer with nothing left to share (pruned to
		 * the last weight) stays as it is */
		if (out && whole && lt_tensor_count_zeros(t) == numel) {
			lt_tensor_unref(c);
			made[i].t = lt_tensor_ref(t);
			lua_pop(L, 1);
			continue;
		}
		if (out && !lt_kmeans_1d(w, mask, numel, &ko, &s, out, &made[i].km, &err))
			lt_quant_error(w, out, lt_tensor_mask(c) ? lt_tensor_data(lt_tensor_mask(c), NULL) : NULL, numel,
				       &made[i].st);
		keep_made(L, &made[i], c, s, name, fname, &err);
		lua_pop(L, 1);
	}
	return stage_all(L, b, list, made, fname, "share", fill_share);
}

/* ---- post-training int8 preview ---------------------------------------- */

struct ptq_ctx {
	lua_State *L;
	lt_lua_work work;
	lt_model *model;
	lt_ptq_opts *o;
	lt_ptq_result *r;
	lt_err *err;
};

static int ptq_progress(void *ud, int64_t done, int64_t total)
{
	struct ptq_ctx *c = ud;
	if (lt_lua_interrupted())
		return 1;
	char detail[64];
	snprintf(detail, sizeof detail, "%lld/%lld images", (long long)done, (long long)total);
	lt_lua_work_progress(c->L, &c->work, total ? (double)done / (double)total : 1.0, detail);
	return 0;
}

static int ptq_work(lt_lua_work *w)
{
	struct ptq_ctx *c = w->arg;
	return lt_ptq_run(c->model, c->o, c->r, c->err);
}

/* lathe.int8_preview(model, {calibration=512, split="val", limit=0,
 * per_layer=true, staged=true, threads=0}): accuracy with int8 weights
 * and uint8 activations, and each layer's share of the loss. */
int lt_l_int8_preview(lua_State *L)
{
	static const char *const names[] = {"calibration", "split", "limit", "per_layer", "staged", "threads",
		NULL};
	const char *fname = "lathe.int8_preview";
	lua_settop(L, 2);
	if (!luaL_testudata(L, 1, LT_MT_MODEL))
		return luaL_error(L, "%s: expected a model (got %s)", fname, lt_kind_of(L, 1));
	lt_bench *b = lt_model_bench(L, lt_check_model(L, 1));
	lt_check_opts(L, 2, fname, names);
	lua_Integer calib = lt_opt_integer(L, 2, fname, "calibration", 512);
	lua_Integer limit = lt_opt_integer(L, 2, fname, "limit", 0);
	lua_Integer threads = lt_opt_integer(L, 2, fname, "threads", 0);
	if (calib < 1 || limit < 0 || threads < 0 || threads > 256)
		return luaL_error(L, "%s: calibration must be 1 or more images, limit 0 (all) or more, threads 0 "
				  "(one per core) to 256", fname);
	const char *split = lt_opt_string(L, 2, fname, "split", "val");
	lt_model *m = lt_opt_bool(L, 2, fname, "staged", 1) ? lt_bench_staged(b) : lt_bench_committed(b);
	if (!lt_model_graph(m))
		return luaL_error(L, "%s: the model has no architecture (weights only)", fname);
	lt_dataset cal, data;
	lt_lstate_dataset(L, "val", calib, &cal);
	lt_lstate_dataset(L, split, limit, &data);
	lt_ptq_opts o = {.calibration = &cal, .data = &data, .per_layer = lt_opt_bool(L, 2, fname, "per_layer", 1),
			 .threads = (int)threads, .progress = ptq_progress};
	lt_ptq_result r;
	lt_err err = {0};
	struct ptq_ctx ctx = {L, {.label = "int8 preview", .run = ptq_work}, m, &o, &r, &err};
	ctx.work.arg = &ctx;
	o.progress_ud = &ctx;
	int rc = lt_lua_run_work(L, &ctx.work);
	lt_lua_progress(L, "int8 preview", 1.0, NULL);
	if (rc)
		return lt_lraise(L, fname, &err);
	lua_createtable(L, 0, 6);
	lt_set_num(L, "baseline", r.baseline);
	lt_set_num(L, "accuracy", r.accuracy);
	lt_set_num(L, "delta", r.accuracy - r.baseline);
	lt_set_int(L, "images", r.images);
	lt_set_int(L, "calibration", r.calibrated);
	lua_createtable(L, r.n_layers, 0);
	for (int i = 0; i < r.n_layers; i++) {
		const lt_ptq_layer *l = &r.layers[i];
		lua_createtable(L, 0, 6);
		lua_pushstring(L, l->name);
		lua_setfield(L, -2, "name");
		lua_pushstring(L, l->input);
		lua_setfield(L, -2, "input");
		if (!isnan(l->lo)) {
			lt_set_num(L, "lo", l->lo);
			lt_set_num(L, "hi", l->hi);
		}
		if (!isnan(l->accuracy)) {
			lt_set_num(L, "accuracy", l->accuracy);
			lt_set_num(L, "delta", l->accuracy - r.baseline);
		}
		lua_rawseti(L, -2, i + 1);
	}
	lua_setfield(L, -2, "layers");
	lt_ptq_result_free(&r);
	return 1;
}

/* ---- the packed form ---------------------------------------------------- */

/* model:packing{staged=true}: how the model would be saved packed, tensor
 * by tensor, and the file's exact size. */
int lt_l_packing(lua_State *L)
{
	static const char *const names[] = {"staged", NULL};
	const char *fname = "packing";
	lua_settop(L, 2);
	lt_bench *b = lt_model_bench(L, lt_check_model(L, 1));
	lt_check_opts(L, 2, fname, names);
	lt_model *m = lt_opt_bool(L, 2, fname, "staged", 1) ? lt_bench_staged(b) : lt_bench_committed(b);
	lt_packed_report r = {0};
	lt_err err = {0};
	if (lt_packed_measure(m, &r, &err))
		return lt_lraise(L, fname, &err);
	static const char *const kinds[] = {[LT_SCHEME_AFFINE] = "affine", [LT_SCHEME_CODEBOOK] = "codebook",
		[LT_SCHEME_F16] = "f16", [LT_SCHEME_BF16] = "bf16"};
	static const char *const index[] = {[LT_PACK_DENSE] = "dense", [LT_PACK_REL] = "rel",
		[LT_PACK_HOLES] = "holes", [LT_PACK_CSR] = "csr"};
	lua_createtable(L, 0, 4);
	lt_set_int(L, "bytes", (lua_Integer)r.file_bytes);
	lt_set_int(L, "f32_bytes", (lua_Integer)r.f32_bytes);
	lt_set_num(L, "ratio", r.file_bytes ? (double)r.f32_bytes / (double)r.file_bytes : 0.0);
	lua_createtable(L, 0, (int)r.n);
	for (size_t i = 0; i < r.n; i++) {
		const lt_packed_tensor *t = &r.t[i];
		lua_createtable(L, 0, 8);
		lt_set_int(L, "bytes", (lua_Integer)t->bytes);
		lt_set_int(L, "plain_bytes", (lua_Integer)t->plain_bytes);
		lua_pushboolean(L, t->packed);
		lua_setfield(L, -2, "packed");
		if (t->packed) {
			const lt_pack_desc *d = &t->desc;
			lua_pushstring(L, d->plain ? "f32" : kinds[d->kind]);
			lua_setfield(L, -2, "kind");
			lt_set_int(L, "bits", d->plain ? 32 : d->bits);
			lt_set_int(L, "present", d->present);
			lua_pushstring(L, (unsigned)d->index <= LT_PACK_CSR && index[d->index] ? index[d->index] : "?");
			lua_setfield(L, -2, "index");
			if (d->index == LT_PACK_REL || d->index == LT_PACK_HOLES)
				lt_set_int(L, "gap_bits", d->gap_bits);
			uint64_t idx = d->bytes[LT_PACK_IDX], codes = d->bytes[LT_PACK_CODES];
			lt_set_int(L, "index_bytes", (lua_Integer)idx);
			lt_set_int(L, "code_bytes", (lua_Integer)codes);
			lt_set_int(L, "table_bytes", (lua_Integer)d->bytes[LT_PACK_TABLE]);
			lua_pushboolean(L, d->codes.huffman || (d->n_idx && d->idx[0].huffman));
			lua_setfield(L, -2, "huffman");
		}
		lua_setfield(L, -2, t->name);
	}
	lua_setfield(L, -2, "tensors");
	lt_packed_report_free(&r);
	return 1;
}
