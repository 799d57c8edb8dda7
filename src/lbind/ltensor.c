/* lathe.Tensor: statistics, views, elementwise updates, tables. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/mem.h"
#include "kern/stats.h"
#include "lbind/internal.h"
#include "lbind/sandbox.h"

#define TOTABLE_MAX 1000000   /* elements a table conversion may hold */

static void contiguous(ltensor *v, int ndim, const int64_t *shape)
{
	v->ndim = ndim;
	int64_t s = 1;
	for (int d = ndim - 1; d >= 0; d--) {
		v->shape[d] = shape[d];
		v->strides[d] = s;
		s *= shape[d];
	}
	v->offset = 0;
}

static ltensor *push_shell(lua_State *L)
{
	ltensor *v = lua_newuserdatauv(L, sizeof *v, 0);
	memset(v, 0, sizeof *v);
	luaL_setmetatable(L, LT_MT_TENSOR);
	return v;
}

ltensor *lt_push_free_tensor(lua_State *L, lt_tensor *t)
{
	ltensor *v = push_shell(L);
	v->own = lt_tensor_ref(t);
	contiguous(v, lt_tensor_ndim(t), lt_tensor_shape(t));
	/* Counted as f32, what it becomes once written. */
	v->charged = (size_t)lt_tensor_numel(t) * sizeof(float);
	lt_lstate_add_bytes(L, v->charged);
	return v;
}

ltensor *lt_push_bound_tensor(lua_State *L, lt_bench *b, const char *name)
{
	lt_tensor *t = lt_model_tensor(lt_bench_staged(b), name);
	if (!t)
		luaL_error(L, "no tensor named '%s'", name);
	ltensor *v = push_shell(L);
	char *n = lt_strdup(name);
	lt_sbuf *e = lt_sbuf_new(L);
	lt_sbuf_adds(L, e, ":tensor(");
	lua_pushstring(L, name);
	lt_journal_value(L, e, -1, 0);
	lua_pop(L, 1);
	lt_sbuf_adds(L, e, ")");
	lt_sbuf_result(L, e, -1);
	char *x = lt_strdup(lua_tostring(L, -1));
	lua_pop(L, 1);
	if (!n || !x) {
		lt_free(n);
		lt_free(x);
		luaL_error(L, "out of memory");
	}
	v->bench = lt_bench_ref(b);
	v->name = n;
	v->expr = x;
	contiguous(v, lt_tensor_ndim(t), lt_tensor_shape(t));
	return v;
}

ltensor *lt_check_tensor(lua_State *L, int idx)
{
	ltensor *v = luaL_checkudata(L, idx, LT_MT_TENSOR);
	if (!v->own && !v->bench)
		luaL_error(L, "attempt to use a freed tensor");
	return v;
}

static int64_t view_numel(const ltensor *v)
{
	int64_t n = 1;
	for (int d = 0; d < v->ndim; d++)
		n *= v->shape[d];
	return n;
}

lt_tensor *lt_tensor_target(lua_State *L, ltensor *v)
{
	lt_tensor *t = v->own;
	if (!t) {
		if (lt_bench_closed(v->bench))
			luaL_error(L, "tensor '%s': its model was closed", v->name);
		t = lt_model_tensor(lt_bench_staged(v->bench), v->name);
		if (!t)
			luaL_error(L, "tensor '%s' no longer exists", v->name);
	}
	/* A view must still fit (a structural change may have shrunk it). */
	int64_t last = v->offset;
	for (int d = 0; d < v->ndim; d++)
		last += (v->shape[d] - 1) * v->strides[d];
	if (view_numel(v) > 0 && last >= lt_tensor_numel(t))
		luaL_error(L, "this view no longer fits tensor '%s'", v->name ? v->name : "?");
	if (!v->is_view && (v->ndim != lt_tensor_ndim(t) ||
			    memcmp(v->shape, lt_tensor_shape(t), (size_t)v->ndim * sizeof(int64_t))))
		contiguous(v, lt_tensor_ndim(t), lt_tensor_shape(t));
	return t;
}

/* Flat index of the k-th element of the view (row-major order). */
static int64_t flat_index(const ltensor *v, int64_t k)
{
	int64_t at = v->offset;
	for (int d = v->ndim - 1; d >= 0; d--) {
		at += (k % v->shape[d]) * v->strides[d];
		k /= v->shape[d];
	}
	return at;
}

static const float *read_data(lua_State *L, ltensor *v)
{
	lt_err err;
	const float *p = lt_tensor_data(lt_tensor_target(L, v), &err);
	if (!p)
		lt_lraise(L, "tensor", &err);
	return p;
}

/* The view's values copied into a new contiguous f32 tensor. */
static lt_tensor *materialize(lua_State *L, ltensor *v)
{
	const float *p = read_data(L, v);
	lt_tensor *t = lt_tensor_target(L, v);
	if (!v->is_view)
		return lt_tensor_ref(t);
	lt_err err;
	lt_tensor *c = lt_tensor_new(v->ndim, v->shape, &err);
	if (!c)
		lt_lraise(L, "tensor", &err);
	float *o = lt_tensor_data_mut(c, &err);
	int64_t n = view_numel(v);
	for (int64_t k = 0; k < n; k++)
		o[k] = p[flat_index(v, k)];
	return c;
}

/* Begin a write: the writable f32 data of the target. */
static float *write_begin(lua_State *L, ltensor *v)
{
	lt_err err;
	lt_tensor *t = lt_tensor_target(L, v);
	v->write_dtype = lt_tensor_dtype(t);
	if (v->bench && !(t = lt_bench_writable(v->bench, v->name, &err)))
		lt_lraise(L, "tensor", &err);
	float *p = lt_tensor_data_mut(t, &err);
	if (!p)
		lt_lraise(L, "tensor", &err);
	return p;
}

/* End a write: pruned (masked) elements stay zero; bound writes are
 * journalled as `model<expr>:method(args)` with the arguments at
 * [first, last] of the stack. */
static void write_end(lua_State *L, ltensor *v, const char *method, int first, int last)
{
	lt_tensor *t = lt_tensor_target(L, v);
	lt_tensor *mask = lt_tensor_mask(t);
	if (mask) {
		lt_err err;
		const float *m = lt_tensor_data(mask, &err);
		float *p = lt_tensor_data_mut(t, &err);
		if (!m || !p)
			lt_lraise(L, "tensor", &err);
		/* Only the view was written. */
		for (int64_t k = 0, n = view_numel(v); k < n; k++) {
			int64_t i = flat_index(v, k);
			if (m[i] == 0.0f)
				p[i] = 0.0f;
		}
	}
	if (!v->bench)
		return;
	/* A model tensor keeps its half-precision dtype: the new values are
	 * rounded to it, as they would be when saved. */
	if (v->write_dtype == LT_F16 || v->write_dtype == LT_BF16) {
		lt_err err;
		lt_tensor *h = lt_tensor_cast(t, v->write_dtype, &err);
		int rc = !h || (mask && lt_tensor_set_mask(h, mask, &err)) ||
			 lt_bench_stage_tensor(v->bench, v->name, h, &err);
		lt_tensor_unref(h);
		if (rc)
			lt_lraise(L, "tensor", &err);
	}
	lt_sbuf *b = lt_sbuf_new(L);
	lt_sbuf_adds(L, b, "model");
	lt_sbuf_adds(L, b, v->expr);
	lt_sbuf_addc(L, b, ':');
	lt_sbuf_adds(L, b, method);
	lt_sbuf_addc(L, b, '(');
	for (int i = first; i <= last; i++) {
		if (i > first)
			lt_sbuf_adds(L, b, ", ");
		lt_journal_value(L, b, i, 0);
	}
	lt_sbuf_addc(L, b, ')');
	lt_sbuf_result(L, b, -1);
	lt_journal_note(L, v->bench, lua_tostring(L, -1));
	lua_pop(L, 1);
}

/* ---- shape and views -------------------------------------------------- */

static void push_shape(lua_State *L, const ltensor *v)
{
	lua_createtable(L, v->ndim, 0);
	for (int d = 0; d < v->ndim; d++) {
		lua_pushinteger(L, v->shape[d]);
		lua_rawseti(L, -2, d + 1);
	}
}

/* A new view value sharing v's target. */
static ltensor *push_view(lua_State *L, ltensor *v, const char *suffix)
{
	ltensor *w = push_shell(L);
	if (v->own) {
		w->own = lt_tensor_ref(v->own);
	} else {
		size_t n = strlen(v->expr) + strlen(suffix) + 1;
		w->expr = lt_malloc(n);
		w->name = lt_strdup(v->name);
		if (!w->expr || !w->name)
			luaL_error(L, "out of memory");
		snprintf(w->expr, n, "%s%s", v->expr, suffix);
		w->bench = lt_bench_ref(v->bench);
	}
	w->is_view = 1;
	w->offset = v->offset;
	w->ndim = v->ndim;
	memcpy(w->shape, v->shape, sizeof w->shape);
	memcpy(w->strides, v->strides, sizeof w->strides);
	return w;
}

static int64_t check_index(lua_State *L, int arg, int64_t n, const char *what)
{
	lua_Integer i = luaL_checkinteger(L, arg);
	if (i < 1 || i > n)
		luaL_error(L, "%s %I out of range (1..%I)", what, (lua_Integer)i, (lua_Integer)n);
	return i;
}

static int t_rows(lua_State *L)
{
	ltensor *v = lt_check_tensor(L, 1);
	lt_tensor_target(L, v);
	if (v->ndim < 1)
		return luaL_error(L, "rows: a scalar has no rows");
	int64_t i = check_index(L, 2, v->shape[0], "row");
	int64_t j = lua_isnoneornil(L, 3) ? i : check_index(L, 3, v->shape[0], "row");
	if (j < i)
		return luaL_error(L, "rows: last row %I comes before first row %I", (lua_Integer)j, (lua_Integer)i);
	char sfx[64];
	snprintf(sfx, sizeof sfx, ":rows(%lld, %lld)", (long long)i, (long long)j);
	ltensor *w = push_view(L, v, sfx);
	w->offset += (i - 1) * v->strides[0];
	w->shape[0] = j - i + 1;
	return 1;
}

static int t_cols(lua_State *L)
{
	ltensor *v = lt_check_tensor(L, 1);
	lt_tensor_target(L, v);
	if (v->ndim < 2)
		return luaL_error(L, "cols: needs a tensor of 2 or more dimensions (this one has %d)", v->ndim);
	if (v->ndim > 2 && v->is_view)
		return luaL_error(L, "cols: take columns of the whole tensor, then narrow rows");
	int64_t ncols = view_numel(v) / (v->shape[0] ? v->shape[0] : 1);
	int64_t i = check_index(L, 2, ncols, "column");
	int64_t j = lua_isnoneornil(L, 3) ? i : check_index(L, 3, ncols, "column");
	if (j < i)
		return luaL_error(L, "cols: last column %I comes before first column %I", (lua_Integer)j, (lua_Integer)i);
	char sfx[64];
	snprintf(sfx, sizeof sfx, ":cols(%lld, %lld)", (long long)i, (long long)j);
	ltensor *w = push_view(L, v, sfx);
	/* [out, in, kh, kw] is seen as [out, in*kh*kw]. */
	int64_t row_stride = v->ndim > 2 ? ncols : v->strides[0];
	int64_t col_stride = v->ndim > 2 ? 1 : v->strides[1];
	w->ndim = 2;
	w->shape[1] = j - i + 1;
	w->strides[0] = row_stride;
	w->strides[1] = col_stride;
	w->offset += (i - 1) * col_stride;
	return 1;
}

/* t:filter(i) / t[i]: the i-th slice along the first dimension, without
 * that dimension (a conv filter [in, kh, kw], a row of a matrix). */
static int sub_view(lua_State *L, ltensor *v, int arg)
{
	lt_tensor_target(L, v);
	if (v->ndim < 2)
		return luaL_error(L, "filter: needs a tensor of 2 or more dimensions");
	int64_t i = check_index(L, arg, v->shape[0], "index");
	char sfx[48];
	snprintf(sfx, sizeof sfx, ":filter(%lld)", (long long)i);
	ltensor *w = push_view(L, v, sfx);
	w->offset += (i - 1) * v->strides[0];
	w->ndim = v->ndim - 1;
	memmove(w->shape, v->shape + 1, (size_t)w->ndim * sizeof(int64_t));
	memmove(w->strides, v->strides + 1, (size_t)w->ndim * sizeof(int64_t));
	return 1;
}

static int t_filter(lua_State *L)
{
	return sub_view(L, lt_check_tensor(L, 1), 2);
}

static int64_t element_at(lua_State *L, ltensor *v, int first, const char *fname)
{
	int n = lua_gettop(L) - first + 1;
	if (n != v->ndim)
		luaL_error(L, "%s: %d indices for a %d-dimensional tensor", fname, n, v->ndim);
	int64_t at = v->offset;
	for (int d = 0; d < v->ndim; d++)
		at += (check_index(L, first + d, v->shape[d], "index") - 1) * v->strides[d];
	return at;
}

static int t_get(lua_State *L)
{
	ltensor *v = lt_check_tensor(L, 1);
	const float *p = read_data(L, v);
	int64_t at = element_at(L, v, 2, "get");
	lua_pushnumber(L, p[at]);
	return 1;
}

static int t_set(lua_State *L)
{
	ltensor *v = lt_check_tensor(L, 1);
	lt_tensor_target(L, v);
	int top = lua_gettop(L);
	if (top != v->ndim + 2)
		return luaL_error(L, "set: expected %d indices and a value", v->ndim);
	float x = (float)luaL_checknumber(L, top);
	lua_pop(L, 1);
	int64_t at = element_at(L, v, 2, "set");
	lua_pushnumber(L, x);
	float *p = write_begin(L, v);
	p[at] = x;
	write_end(L, v, "set", 2, top);
	return 0;
}

/* ---- elementwise updates ---------------------------------------------- */

typedef float (*unary_fn)(float x, float a, float b);
static float op_fill(float x, float a, float b) { (void)x; (void)b; return a; }
static float op_mul(float x, float a, float b) { (void)b; return x * a; }
static float op_add(float x, float a, float b) { (void)b; return x + a; }
static float op_clamp(float x, float a, float b) { return x < a ? a : x > b ? b : x; }

static void update(lua_State *L, ltensor *v, unary_fn f, float a, float b, const char *method, int nargs)
{
	float *p = write_begin(L, v);
	int64_t n = view_numel(v);
	for (int64_t k = 0; k < n; k++) {
		int64_t at = flat_index(v, k);
		p[at] = f(p[at], a, b);
	}
	write_end(L, v, method, 2, 1 + nargs);
}

static int t_fill(lua_State *L)
{
	ltensor *v = lt_check_tensor(L, 1);
	update(L, v, op_fill, (float)luaL_checknumber(L, 2), 0, "fill", 1);
	lua_settop(L, 1);
	return 1;
}

static int t_mul(lua_State *L)
{
	ltensor *v = lt_check_tensor(L, 1);
	update(L, v, op_mul, (float)luaL_checknumber(L, 2), 0, "mul", 1);
	lua_settop(L, 1);
	return 1;
}

static int t_add(lua_State *L)
{
	ltensor *v = lt_check_tensor(L, 1);
	update(L, v, op_add, (float)luaL_checknumber(L, 2), 0, "add", 1);
	lua_settop(L, 1);
	return 1;
}

static int t_clamp(lua_State *L)
{
	ltensor *v = lt_check_tensor(L, 1);
	float lo = (float)luaL_checknumber(L, 2), hi = (float)luaL_checknumber(L, 3);
	if (!(lo <= hi))
		return luaL_error(L, "clamp: low %f is above high %f", (double)lo, (double)hi);
	update(L, v, op_clamp, lo, hi, "clamp", 2);
	lua_settop(L, 1);
	return 1;
}

/* Flat list of the view's values as a Lua table (for the journal). */
static void push_flat(lua_State *L, ltensor *v)
{
	const float *p = read_data(L, v);
	int64_t n = view_numel(v);
	lua_createtable(L, (int)(n < INT32_MAX ? n : 0), 0);
	for (int64_t k = 0; k < n; k++) {
		lua_pushnumber(L, p[flat_index(v, k)]);
		lua_rawseti(L, -2, k + 1);
	}
}

/* t:apply(f): x = f(x) for every element, in row-major order. The journal
 * records the resulting values, since a function cannot be written out. */
static int t_apply(lua_State *L)
{
	ltensor *v = lt_check_tensor(L, 1);
	luaL_checktype(L, 2, LUA_TFUNCTION);
	lt_tensor_target(L, v);
	int64_t n = view_numel(v);
	/* Compute all values first: f may raise, and then nothing changes. */
	float *tmp = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof(float), 0);
	for (int64_t k = 0; k < n; k++) {
		const float *p = read_data(L, v);
		lua_pushvalue(L, 2);
		lua_pushnumber(L, p[flat_index(v, k)]);
		lua_call(L, 1, 1);
		int ok;
		lua_Number x = lua_tonumberx(L, -1, &ok);
		if (!ok)
			return luaL_error(L, "apply: the function returned a %s for element %I (expected a number)",
					  luaL_typename(L, -1), (lua_Integer)(k + 1));
		tmp[k] = (float)x;
		lua_pop(L, 1);
	}
	float *p = write_begin(L, v);
	for (int64_t k = 0; k < n; k++)
		p[flat_index(v, k)] = tmp[k];
	push_flat(L, v);
	write_end(L, v, "assign", lua_gettop(L), lua_gettop(L));
	lua_settop(L, 1);
	return 1;
}

/* Read a nested table of numbers into out[] in row-major order, checking
 * it has exactly the shape (or is a flat list of numel values). */
static int64_t read_nested(lua_State *L, int idx, int depth, int ndim, const int64_t *shape,
			   float *out, int64_t at)
{
	lua_Integer n = (lua_Integer)luaL_len(L, idx);
	if (n != shape[depth])
		luaL_error(L, "table has %I entries at depth %d where the shape says %I",
			   n, depth + 1, (lua_Integer)shape[depth]);
	for (lua_Integer i = 1; i <= n; i++) {
		lua_geti(L, idx, i);
		if (depth + 1 < ndim) {
			if (!lua_istable(L, -1))
				luaL_error(L, "expected a table at depth %d, got %s", depth + 2, luaL_typename(L, -1));
			at = read_nested(L, lua_gettop(L), depth + 1, ndim, shape, out, at);
		} else {
			int ok;
			lua_Number x = lua_tonumberx(L, -1, &ok);
			if (!ok)
				luaL_error(L, "expected a number, got %s", luaL_typename(L, -1));
			out[at++] = (float)x;
		}
		lua_pop(L, 1);
	}
	return at;
}

/* Shape of a nested table: lengths along the first entries. */
static int table_shape(lua_State *L, int idx, int64_t *shape)
{
	int nd = 0;
	lua_pushvalue(L, idx);
	while (lua_istable(L, -1)) {
		if (nd == LT_MAX_DIMS)
			luaL_error(L, "table nests deeper than %d levels", LT_MAX_DIMS);
		shape[nd++] = (int64_t)luaL_len(L, -1);
		if (shape[nd - 1] == 0)
			break;
		lua_geti(L, -1, 1);
		lua_remove(L, -2);
	}
	lua_pop(L, 1);
	return nd;
}

static int t_assign(lua_State *L)
{
	ltensor *v = lt_check_tensor(L, 1);
	lt_tensor_target(L, v);
	int64_t n = view_numel(v);
	float *tmp = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof(float), 0);
	if (lua_istable(L, 2)) {
		lua_Integer len = (lua_Integer)luaL_len(L, 2);
		lua_geti(L, 2, 1);
		int nested = lua_istable(L, -1);
		lua_pop(L, 1);
		if (nested || v->ndim <= 1 || len != n) {
			read_nested(L, 2, 0, v->ndim, v->shape, tmp, 0);
		} else {
			int64_t flat = n;
			read_nested(L, 2, 0, 1, &flat, tmp, 0);
		}
	} else {
		ltensor *src = lt_check_tensor(L, 2);
		lt_tensor_target(L, src);
		if (view_numel(src) != n)
			return luaL_error(L, "assign: source has %I values, target %I",
					  (lua_Integer)view_numel(src), (lua_Integer)n);
		const float *q = read_data(L, src);
		for (int64_t k = 0; k < n; k++)
			tmp[k] = q[flat_index(src, k)];
	}
	float *p = write_begin(L, v);
	for (int64_t k = 0; k < n; k++)
		p[flat_index(v, k)] = tmp[k];
	if (lua_istable(L, 2)) {
		write_end(L, v, "assign", 2, 2);
	} else {
		push_flat(L, v);
		write_end(L, v, "assign", lua_gettop(L), lua_gettop(L));
	}
	lua_settop(L, 1);
	return 1;
}

/* ---- conversions ------------------------------------------------------ */

static void push_nested(lua_State *L, const float *p, ltensor *v, int depth, int64_t *k)
{
	if (depth == v->ndim) {
		lua_pushnumber(L, p[flat_index(v, (*k)++)]);
		return;
	}
	lua_createtable(L, (int)v->shape[depth], 0);
	for (int64_t i = 0; i < v->shape[depth]; i++) {
		push_nested(L, p, v, depth + 1, k);
		lua_rawseti(L, -2, i + 1);
	}
}

static int t_totable(lua_State *L)
{
	ltensor *v = lt_check_tensor(L, 1);
	int64_t n = view_numel(v);
	if (n > TOTABLE_MAX)
		return luaL_error(L, "totable: %I values is too many for a table (at most %d); take a view "
				  "with rows/cols first", (lua_Integer)n, TOTABLE_MAX);
	const float *p = read_data(L, v);
	int64_t k = 0;
	luaL_checkstack(L, v->ndim + 4, "totable");
	push_nested(L, p, v, 0, &k);
	return 1;
}

static int t_clone(lua_State *L)
{
	ltensor *v = lt_check_tensor(L, 1);
	lt_lstate_check(L, "clone", (size_t)view_numel(v) * 2 * sizeof(float));
	lt_tensor *m = materialize(L, v);
	lt_err err;
	lt_tensor *c = lt_tensor_clone(m, &err);
	lt_tensor_unref(m);
	if (!c)
		return lt_lraise(L, "clone", &err);
	lt_push_free_tensor(L, c);
	lt_tensor_unref(c);
	return 1;
}

static int t_mask(lua_State *L)
{
	ltensor *v = lt_check_tensor(L, 1);
	lt_tensor *m = lt_tensor_mask(lt_tensor_target(L, v));
	if (!m) {
		lua_pushnil(L);
		return 1;
	}
	lt_lstate_check(L, "mask", (size_t)lt_tensor_numel(m) * sizeof(float));
	lt_err err;
	lt_tensor *c = lt_tensor_clone(m, &err);
	if (!c)
		return lt_lraise(L, "mask", &err);
	lt_push_free_tensor(L, c);
	lt_tensor_unref(c);
	if (v->is_view) {
		/* The same window of the mask. */
		ltensor *w = lt_check_tensor(L, -1);
		w->is_view = 1;
		w->offset = v->offset;
		w->ndim = v->ndim;
		memcpy(w->shape, v->shape, sizeof w->shape);
		memcpy(w->strides, v->strides, sizeof w->strides);
	}
	return 1;
}

/* ---- statistics ------------------------------------------------------- */

static int t_stats(lua_State *L)
{
	ltensor *v = lt_check_tensor(L, 1);
	lt_tensor *m = materialize(L, v);
	lt_stats s;
	lt_err err;
	int rc = lt_stats_compute(m, &s, &err);
	lt_tensor_unref(m);
	if (rc)
		return lt_lraise(L, "stats", &err);
	lua_createtable(L, 0, 12);
	lua_pushinteger(L, s.n); lua_setfield(L, -2, "numel");
	lua_pushinteger(L, s.zeros); lua_setfield(L, -2, "zeros");
	lua_pushnumber(L, s.n ? (double)s.zeros / (double)s.n : 0.0); lua_setfield(L, -2, "sparsity");
	lua_pushinteger(L, s.nonfinite); lua_setfield(L, -2, "nonfinite");
	lua_pushnumber(L, s.min); lua_setfield(L, -2, "min");
	lua_pushnumber(L, s.max); lua_setfield(L, -2, "max");
	lua_pushnumber(L, s.mean); lua_setfield(L, -2, "mean");
	lua_pushnumber(L, s.std); lua_setfield(L, -2, "std");
	lua_pushnumber(L, s.l1); lua_setfield(L, -2, "l1");
	lua_pushnumber(L, s.l2); lua_setfield(L, -2, "l2");
	lua_pushnumber(L, fmax(fabs(s.min), fabs(s.max))); lua_setfield(L, -2, "linf");
	return 1;
}

static int t_percentile(lua_State *L)
{
	ltensor *v = lt_check_tensor(L, 1);
	int many = lua_istable(L, 2);
	int nq = many ? (int)luaL_len(L, 2) : 1;
	if (nq < 1 || nq > 1000)
		return luaL_error(L, "percentile: give 1 to 1000 percentiles");
	double q[1000], out[1000];
	for (int i = 0; i < nq; i++) {
		if (many)
			lua_geti(L, 2, i + 1);
		else
			lua_pushvalue(L, 2);
		int ok;
		q[i] = lua_tonumberx(L, -1, &ok);
		if (!ok)
			return luaL_error(L, "percentile: expected numbers between 0 and 100");
		lua_pop(L, 1);
	}
	lt_tensor *m = materialize(L, v);
	lt_err err;
	int rc = lt_stats_percentiles(m, q, nq, out, &err);
	lt_tensor_unref(m);
	if (rc)
		return lt_lraise(L, "percentile", &err);
	if (!many) {
		lua_pushnumber(L, out[0]);
		return 1;
	}
	lua_createtable(L, nq, 0);
	for (int i = 0; i < nq; i++) {
		lua_pushnumber(L, out[i]);
		lua_rawseti(L, -2, i + 1);
	}
	return 1;
}

static int t_histogram(lua_State *L)
{
	static const char *const names[] = {"bins", "log", "min", "max", NULL};
	ltensor *v = lt_check_tensor(L, 1);
	lt_check_opts(L, 2, "histogram", names);
	lua_Integer bins = lt_opt_integer(L, 2, "histogram", "bins", 20);
	int log_abs = lt_opt_bool(L, 2, "histogram", "log", 0);
	if (bins < 1 || bins > 100000)
		return luaL_error(L, "histogram: bins must be 1 to 100000 (got %I)", bins);
	lt_tensor *m = materialize(L, v);
	lt_err err;
	lt_stats s;
	if (lt_stats_compute(m, &s, &err)) {
		lt_tensor_unref(m);
		return lt_lraise(L, "histogram", &err);
	}
	double lo = s.min, hi = s.max;
	if (log_abs) {
		double amax = fmax(fabs(s.min), fabs(s.max));
		/* Default range: eight decades below the largest magnitude. */
		hi = amax > 0 ? ceil(log10(amax)) : 0;
		lo = hi - 8;
	}
	lo = lt_opt_number(L, 2, "histogram", "min", lo);
	hi = lt_opt_number(L, 2, "histogram", "max", hi);
	if (!(hi > lo))
		hi = lo + 1; /* all values equal: one unit-wide range */
	int64_t *counts = lt_calloc((size_t)bins, sizeof *counts);
	if (!counts) {
		lt_tensor_unref(m);
		return luaL_error(L, "histogram: out of memory");
	}
	int rc = lt_stats_histogram(m, (int)bins, lo, hi, log_abs, counts, &err);
	lt_tensor_unref(m);
	if (rc) {
		lt_free(counts);
		return lt_lraise(L, "histogram", &err);
	}
	lua_createtable(L, 0, 4);
	lua_createtable(L, (int)bins, 0);
	for (lua_Integer i = 0; i < bins; i++) {
		lua_pushinteger(L, counts[i]);
		lua_rawseti(L, -2, i + 1);
	}
	lt_free(counts);
	lua_setfield(L, -2, "counts");
	lua_createtable(L, (int)bins + 1, 0);
	for (lua_Integer i = 0; i <= bins; i++) {
		lua_pushnumber(L, lo + (hi - lo) * (double)i / (double)bins);
		lua_rawseti(L, -2, i + 1);
	}
	lua_setfield(L, -2, "edges");
	lua_pushboolean(L, log_abs);
	lua_setfield(L, -2, "log");
	return 1;
}

static int t_sum(lua_State *L)
{
	ltensor *v = lt_check_tensor(L, 1);
	const float *p = read_data(L, v);
	double s = 0;
	for (int64_t k = 0, n = view_numel(v); k < n; k++)
		s += p[flat_index(v, k)];
	lua_pushnumber(L, s);
	return 1;
}

static int t_norm(lua_State *L)
{
	ltensor *v = lt_check_tensor(L, 1);
	double pw = luaL_optnumber(L, 2, 2.0);
	if (!(pw > 0))
		return luaL_error(L, "norm: p must be positive (got %f); use math.huge for the max norm", pw);
	const float *p = read_data(L, v);
	double s = 0;
	for (int64_t k = 0, n = view_numel(v); k < n; k++) {
		double a = fabs((double)p[flat_index(v, k)]);
		s = isinf(pw) ? fmax(s, a) : s + pow(a, pw);
	}
	lua_pushnumber(L, isinf(pw) ? s : pow(s, 1.0 / pw));
	return 1;
}

/* ---- metamethods ------------------------------------------------------ */

static int t_free(lua_State *L)
{
	ltensor *v = luaL_checkudata(L, 1, LT_MT_TENSOR);
	lt_lstate_release_bytes(L, v->charged);
	v->charged = 0;
	lt_tensor_unref(v->own);
	lt_bench_unref(v->bench);
	lt_free(v->name);
	lt_free(v->expr);
	v->own = NULL;
	v->bench = NULL;
	v->name = v->expr = NULL;
	return 0;
}

static int t_tostring(lua_State *L)
{
	ltensor *v = luaL_checkudata(L, 1, LT_MT_TENSOR);
	if (!v->own && !v->bench) {
		lua_pushstring(L, "Tensor (freed)");
		return 1;
	}
	lt_tensor *t = lt_tensor_target(L, v);
	char shape[128];
	lt_shape_format(v->ndim, v->shape, shape, sizeof shape);
	if (v->bench)
		lua_pushfstring(L, "Tensor %s%s %s %s (staged)", v->name, v->is_view ? " view" : "",
				shape, lt_dtype_name(lt_tensor_dtype(t)));
	else
		lua_pushfstring(L, "Tensor %s%s %s", v->is_view ? "view " : "", shape,
				lt_dtype_name(lt_tensor_dtype(t)));
	return 1;
}

static int t_len(lua_State *L)
{
	ltensor *v = lt_check_tensor(L, 1);
	lt_tensor_target(L, v);
	lua_pushinteger(L, view_numel(v));
	return 1;
}

static int t_prune(lua_State *L) { return lt_call_kernel(L, lt_l_prune); }
static int t_cast(lua_State *L) { return lt_call_kernel(L, lt_l_cast); }
static int t_quantize(lua_State *L) { return lt_call_kernel(L, lt_l_quantize); }
static int t_share(lua_State *L) { return lt_call_kernel(L, lt_l_share); }

static const char *const fields[] = {"shape", "ndim", "numel", "dtype", "name", "is_view", NULL};

static int t_index(lua_State *L)
{
	ltensor *v = lt_check_tensor(L, 1);
	if (lua_type(L, 2) == LUA_TNUMBER) {
		lt_tensor_target(L, v);
		if (v->ndim == 1) {
			const float *p = read_data(L, v);
			int64_t i = check_index(L, 2, v->shape[0], "index");
			lua_pushnumber(L, p[v->offset + (i - 1) * v->strides[0]]);
			return 1;
		}
		return sub_view(L, v, 2);
	}
	const char *k = luaL_checkstring(L, 2);
	lua_getfield(L, lua_upvalueindex(1), k);
	if (!lua_isnil(L, -1))
		return 1;
	lt_tensor *t = lt_tensor_target(L, v);
	if (!strcmp(k, "shape"))
		push_shape(L, v);
	else if (!strcmp(k, "ndim"))
		lua_pushinteger(L, v->ndim);
	else if (!strcmp(k, "numel"))
		lua_pushinteger(L, view_numel(v));
	else if (!strcmp(k, "dtype"))
		lua_pushstring(L, lt_dtype_name(lt_tensor_dtype(t)));
	else if (!strcmp(k, "name"))
		v->name ? (void)lua_pushstring(L, v->name) : lua_pushnil(L);
	else if (!strcmp(k, "is_view"))
		lua_pushboolean(L, v->is_view);
	else
		lua_pushnil(L);
	return 1;
}

static const luaL_Reg methods[] = {
	{"rows", t_rows}, {"cols", t_cols}, {"filter", t_filter},
	{"get", t_get}, {"set", t_set},
	{"fill", t_fill}, {"mul", t_mul}, {"add", t_add}, {"clamp", t_clamp},
	{"apply", t_apply}, {"assign", t_assign},
	{"totable", t_totable}, {"clone", t_clone}, {"mask", t_mask},
	{"stats", t_stats}, {"percentile", t_percentile}, {"histogram", t_histogram},
	{"sum", t_sum}, {"norm", t_norm},
	{"prune", t_prune}, {"cast", t_cast}, {"quantize", t_quantize}, {"share", t_share},
	{"free", t_free},
	{NULL, NULL}
};

static const luaL_Reg meta[] = {
	{"__gc", t_free}, {"__close", t_free}, {"__tostring", t_tostring}, {"__len", t_len},
	{NULL, NULL}
};

void lt_open_tensor(lua_State *L)
{
	lt_make_type(L, LT_MT_TENSOR, meta, methods, t_index, fields);
}

/* Most elements a new tensor may have: what the sandbox has left, and
 * never more than physical memory, so an absurd shape is a clear error
 * rather than a failed (or, under overcommit, deferred) allocation. */
static int64_t numel_limit(lua_State *L)
{
	size_t left = lt_sandbox_mem_left(L);
	long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
	if (pages > 0 && page > 0 && (double)pages * (double)page < (double)left)
		left = (size_t)pages * (size_t)page;
	return (int64_t)(left / sizeof(float));
}

/* lathe.tensor(table) / lathe.tensor(table, shape): a free tensor from a
 * nested table of numbers, or a flat list with an explicit shape. */
int lt_l_tensor_new(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	int64_t shape[LT_MAX_DIMS];
	int nd;
	if (lua_istable(L, 2)) {
		nd = (int)luaL_len(L, 2);
		if (nd < 1 || nd > LT_MAX_DIMS)
			return luaL_error(L, "lathe.tensor: a shape has 1 to %d dimensions", LT_MAX_DIMS);
		for (int d = 0; d < nd; d++) {
			lua_geti(L, 2, d + 1);
			int ok;
			lua_Integer x = lua_tointegerx(L, -1, &ok);
			if (!ok || x < 0)
				return luaL_error(L, "lathe.tensor: shape entries must be non-negative integers");
			shape[d] = x;
			lua_pop(L, 1);
		}
	} else {
		nd = table_shape(L, 1, shape);
	}
	int64_t numel;
	lt_err err;
	if (lt_shape_numel(nd, shape, numel_limit(L), &numel, &err))
		return lt_lraise(L, "lathe.tensor", &err);
	lt_lstate_check(L, "lathe.tensor", (size_t)numel * sizeof(float));
	lt_tensor *t = lt_tensor_new(nd, shape, &err);
	if (!t)
		return lt_lraise(L, "lathe.tensor", &err);
	ltensor *v = lt_push_free_tensor(L, t);
	lt_tensor_unref(t);
	float *p = lt_tensor_data_mut(v->own, &err);
	if (lua_istable(L, 2)) {
		int64_t flat = numel;
		if ((int64_t)luaL_len(L, 1) != numel)
			return luaL_error(L, "lathe.tensor: %I values for a shape of %I elements",
					  (lua_Integer)luaL_len(L, 1), (lua_Integer)numel);
		read_nested(L, 1, 0, 1, &flat, p, 0);
	} else {
		read_nested(L, 1, 0, nd, shape, p, 0);
	}
	return 1;
}

/* lathe.zeros(shape): a free tensor of zeros. */
int lt_l_zeros(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_createtable(L, 0, 0);
	int64_t shape[LT_MAX_DIMS];
	int nd = (int)luaL_len(L, 1);
	if (nd < 1 || nd > LT_MAX_DIMS)
		return luaL_error(L, "lathe.zeros: a shape has 1 to %d dimensions", LT_MAX_DIMS);
	for (int d = 0; d < nd; d++) {
		lua_geti(L, 1, d + 1);
		int ok;
		lua_Integer x = lua_tointegerx(L, -1, &ok);
		if (!ok || x < 0)
			return luaL_error(L, "lathe.zeros: shape entries must be non-negative integers");
		shape[d] = x;
		lua_pop(L, 1);
	}
	int64_t numel;
	lt_err err;
	if (lt_shape_numel(nd, shape, numel_limit(L), &numel, &err))
		return lt_lraise(L, "lathe.zeros", &err);
	lt_lstate_check(L, "lathe.zeros", (size_t)numel * sizeof(float));
	lt_tensor *t = lt_tensor_new(nd, shape, &err);
	if (!t)
		return lt_lraise(L, "lathe.zeros", &err);
	lt_push_free_tensor(L, t);
	lt_tensor_unref(t);
	return 1;
}
