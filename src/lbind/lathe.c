/* The lathe module: entry point, per-state data, option checking, atomic
 * calls and the states the CLI runs recipes in. */
#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "core/clock.h"
#include "core/mem.h"
#include "lbind/internal.h"
#include "lbind/lathe.h"
#include "lbind/sandbox.h"

static volatile sig_atomic_t interrupted;

void lt_lua_interrupt(void) { interrupted = 1; }
void lt_lua_interrupt_clear(void) { interrupted = 0; }
int lt_lua_interrupted(void) { return interrupted; }

/* ---- per-state data --------------------------------------------------- */

#define LSTATE_KEY "lathe.state"

struct lstate {
	lt_bench **benches;   /* open models (a reference each) */
	size_t n, cap;
	char *data_dir;
	lt_dataset splits[LT_SPLIT_COUNT];
	int loaded[LT_SPLIT_COUNT];
	lt_lua_progress_fn progress;
	void *progress_ud;
	lt_lua_runner_fn runner;
	void *runner_ud;
	int commit_preview;   /* commit measures the stage (lathe run) */
	size_t tensor_bytes;  /* held by free tensors (counted in a sandbox) */
};

static int lstate_gc(lua_State *L)
{
	struct lstate *s = lua_touserdata(L, 1);
	for (size_t i = 0; i < s->n; i++)
		lt_bench_unref(s->benches[i]);
	lt_free(s->benches);
	s->benches = NULL;
	s->n = s->cap = 0;
	lt_free(s->data_dir);
	s->data_dir = NULL;
	for (int i = 0; i < LT_SPLIT_COUNT; i++)
		lt_dataset_release(&s->splits[i]);
	memset(s->loaded, 0, sizeof s->loaded);
	return 0;
}

struct lstate *lt_lstate(lua_State *L)
{
	if (lua_getfield(L, LUA_REGISTRYINDEX, LSTATE_KEY) == LUA_TUSERDATA) {
		struct lstate *s = lua_touserdata(L, -1);
		lua_pop(L, 1);
		return s;
	}
	lua_pop(L, 1);
	struct lstate *s = lua_newuserdatauv(L, sizeof *s, 0);
	memset(s, 0, sizeof *s);
	lua_createtable(L, 0, 1);
	lua_pushcfunction(L, lstate_gc);
	lua_setfield(L, -2, "__gc");
	lua_setmetatable(L, -2);
	lua_setfield(L, LUA_REGISTRYINDEX, LSTATE_KEY);
	return s;
}

int lt_lstate_add_bench(lua_State *L, lt_bench *b)
{
	struct lstate *s = lt_lstate(L);
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 4;
		lt_bench **p = lt_realloc(s->benches, cap * sizeof *p);
		if (!p)
			return LT_ENOMEM;
		s->benches = p;
		s->cap = cap;
	}
	s->benches[s->n++] = lt_bench_ref(b);
	return 0;
}

void lt_lstate_remove_bench(lua_State *L, lt_bench *b)
{
	struct lstate *s = lt_lstate(L);
	for (size_t i = 0; i < s->n; i++) {
		if (s->benches[i] == b) {
			lt_bench_unref(b);
			s->benches[i] = s->benches[--s->n];
			return;
		}
	}
}

void lt_lstate_check(lua_State *L, const char *fname, size_t bytes)
{
	if (!lt_sandbox_active(L))
		return;
	struct lstate *s = lt_lstate(L);
	size_t left = lt_sandbox_mem_left(L);
	if (s->tensor_bytes > left || bytes > left - s->tensor_bytes)
		luaL_error(L, "%s: memory limit exceeded (tensors would need %I MiB more than the sandbox has left)",
			   fname, (lua_Integer)((s->tensor_bytes + bytes - left) >> 20) + 1);
}

void lt_lstate_add_bytes(lua_State *L, size_t bytes)
{
	lt_lstate(L)->tensor_bytes += bytes;
}

void lt_lstate_release_bytes(lua_State *L, size_t bytes)
{
	struct lstate *s = lt_lstate(L);
	s->tensor_bytes -= bytes < s->tensor_bytes ? bytes : s->tensor_bytes;
}

const char *lt_lstate_data_dir(lua_State *L)
{
	return lt_lstate(L)->data_dir;
}

void lt_lstate_dataset(lua_State *L, const char *split_name, int64_t limit, lt_dataset *view)
{
	struct lstate *s = lt_lstate(L);
	lt_split split;
	if (lt_split_parse(split_name, &split))
		luaL_error(L, "unknown split '%s' (expected val, test, train or train-full)", split_name);
	if (!s->loaded[split]) {
		static const char *const fallback[] = {LT_SRCDIR "/samples/data", LT_DATADIR "/samples/data", NULL};
		lt_err err;
		if (lt_fmnist_load(s->data_dir, fallback, split, &s->splits[split], &err))
			lt_lraise(L, "data", &err);
		s->loaded[split] = 1;
	}
	/* A shallow view: the cache keeps ownership. */
	*view = s->splits[split];
	if (limit > 0 && limit < view->n)
		view->n = limit;
}

void lt_lua_set_progress(lua_State *L, lt_lua_progress_fn fn, void *ud)
{
	struct lstate *s = lt_lstate(L);
	s->progress = fn;
	s->progress_ud = ud;
}

void lt_lua_progress(lua_State *L, const char *label, double fraction, const char *detail)
{
	struct lstate *s = lt_lstate(L);
	if (s->progress)
		s->progress(s->progress_ud, label, fraction, detail);
}

void lt_lua_set_runner(lua_State *L, lt_lua_runner_fn fn, void *ud)
{
	struct lstate *s = lt_lstate(L);
	s->runner = fn;
	s->runner_ud = ud;
}

int lt_lua_run_work(lua_State *L, lt_lua_work *w)
{
	struct lstate *s = lt_lstate(L);
	w->offloaded = 0;
	return s->runner ? s->runner(s->runner_ud, w) : w->run(w);
}

void lt_lua_work_progress(lua_State *L, lt_lua_work *w, double fraction, const char *detail)
{
	__atomic_store(&w->fraction, &fraction, __ATOMIC_RELAXED);
	if (!__atomic_load_n(&w->offloaded, __ATOMIC_ACQUIRE))
		lt_lua_progress(L, w->label, fraction, detail);
}

void lt_lua_set_commit_preview(lua_State *L, int on)
{
	lt_lstate(L)->commit_preview = on;
}

int lt_lua_commit_preview(lua_State *L)
{
	return lt_lstate(L)->commit_preview;
}

/* ---- errors and options ----------------------------------------------- */

int lt_lraise(lua_State *L, const char *fname, const lt_err *err)
{
	if (err->code == LT_ECANCEL)
		return luaL_error(L, "%s: interrupted", fname);
	return luaL_error(L, "%s: %s", fname, err->msg);
}

void lt_check_opts(lua_State *L, int idx, const char *fname, const char *const *names)
{
	if (lua_isnoneornil(L, idx))
		return;
	if (!lua_istable(L, idx))
		luaL_error(L, "%s: options must be a table (got %s)", fname, luaL_typename(L, idx));
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		int known = 0;
		if (lua_type(L, -1) == LUA_TSTRING)
			for (int i = 0; names[i] && !known; i++)
				known = !strcmp(names[i], lua_tostring(L, -1));
		if (!known) {
			luaL_Buffer b;
			luaL_buffinit(L, &b);
			for (int i = 0; names[i]; i++) {
				if (i)
					luaL_addstring(&b, ", ");
				luaL_addstring(&b, names[i]);
			}
			luaL_pushresult(&b);
			const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : luaL_typename(L, -2);
			luaL_error(L, "%s: unknown option '%s' (expected one of: %s)", fname, key, lua_tostring(L, -1));
		}
	}
}

static int get_opt(lua_State *L, int idx, const char *key)
{
	if (lua_isnoneornil(L, idx))
		return 0;
	lua_getfield(L, idx, key);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return 0;
	}
	return 1;
}

double lt_opt_number(lua_State *L, int idx, const char *fname, const char *key, double def)
{
	if (!get_opt(L, idx, key))
		return def;
	int ok;
	double x = lua_tonumberx(L, -1, &ok);
	if (!ok || lua_type(L, -1) != LUA_TNUMBER)
		luaL_error(L, "%s: option '%s' must be a number (got %s)", fname, key, luaL_typename(L, -1));
	lua_pop(L, 1);
	return x;
}

lua_Integer lt_opt_integer(lua_State *L, int idx, const char *fname, const char *key, lua_Integer def)
{
	if (!get_opt(L, idx, key))
		return def;
	int ok;
	lua_Integer x = lua_tointegerx(L, -1, &ok);
	if (!ok || lua_type(L, -1) != LUA_TNUMBER)
		luaL_error(L, "%s: option '%s' must be an integer (got %s)", fname, key,
			   lua_type(L, -1) == LUA_TNUMBER ? "a fraction" : luaL_typename(L, -1));
	lua_pop(L, 1);
	return x;
}

const char *lt_opt_string(lua_State *L, int idx, const char *fname, const char *key, const char *def)
{
	if (!get_opt(L, idx, key))
		return def;
	if (lua_type(L, -1) != LUA_TSTRING)
		luaL_error(L, "%s: option '%s' must be a string (got %s)", fname, key, luaL_typename(L, -1));
	const char *s = lua_tostring(L, -1);
	lua_pop(L, 1); /* still referenced by the options table */
	return s;
}

int lt_opt_bool(lua_State *L, int idx, const char *fname, const char *key, int def)
{
	if (!get_opt(L, idx, key))
		return def;
	if (!lua_isboolean(L, -1))
		luaL_error(L, "%s: option '%s' must be true or false (got %s)", fname, key, luaL_typename(L, -1));
	int b = lua_toboolean(L, -1);
	lua_pop(L, 1);
	return b;
}

/* ---- string builder --------------------------------------------------- */

static int sbuf_gc(lua_State *L)
{
	lt_sbuf *b = lua_touserdata(L, 1);
	lt_free(b->p);
	b->p = NULL;
	return 0;
}

lt_sbuf *lt_sbuf_new(lua_State *L)
{
	lt_sbuf *b = lua_newuserdatauv(L, sizeof *b, 0);
	memset(b, 0, sizeof *b);
	if (luaL_newmetatable(L, "lathe.sbuf")) {
		lua_pushcfunction(L, sbuf_gc);
		lua_setfield(L, -2, "__gc");
	}
	lua_setmetatable(L, -2);
	return b;
}

void lt_sbuf_add(lua_State *L, lt_sbuf *b, const char *s, size_t len)
{
	if (b->n + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->n + len + 1)
			cap *= 2;
		char *p = lt_realloc(b->p, cap);
		if (!p)
			luaL_error(L, "out of memory");
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, len);
	b->n += len;
	b->p[b->n] = '\0';
}

void lt_sbuf_adds(lua_State *L, lt_sbuf *b, const char *s)
{
	lt_sbuf_add(L, b, s, strlen(s));
}

void lt_sbuf_addc(lua_State *L, lt_sbuf *b, char c)
{
	lt_sbuf_add(L, b, &c, 1);
}

void lt_sbuf_result(lua_State *L, lt_sbuf *b, int idx)
{
	idx = lua_absindex(L, idx);
	lua_pushlstring(L, b->p ? b->p : "", b->n);
	lua_replace(L, idx);
}

/* ---- journal values --------------------------------------------------- */

static int is_identifier(const char *s)
{
	static const char *const reserved[] = {"and", "break", "do", "else", "elseif", "end", "false",
		"for", "function", "goto", "if", "in", "local", "nil", "not", "or", "repeat", "return",
		"then", "true", "until", "while", NULL};
	if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
		return 0;
	for (const char *p = s; *p; p++)
		if (!(*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
			return 0;
	for (int i = 0; reserved[i]; i++)
		if (!strcmp(s, reserved[i]))
			return 0;
	return 1;
}

static int key_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void lt_journal_value(lua_State *L, lt_sbuf *b, int idx, int depth)
{
	idx = lua_absindex(L, idx);
	char num[64];
	if (depth > 16)
		luaL_error(L, "journal: tables nest too deeply to record");
	switch (lua_type(L, idx)) {
	case LUA_TNIL:
		lt_sbuf_adds(L, b, "nil");
		return;
	case LUA_TBOOLEAN:
		lt_sbuf_adds(L, b, lua_toboolean(L, idx) ? "true" : "false");
		return;
	case LUA_TNUMBER:
		if (lua_isinteger(L, idx)) {
			snprintf(num, sizeof num, LUA_INTEGER_FMT, lua_tointeger(L, idx));
		} else {
			double x = lua_tonumber(L, idx);
			if (isnan(x))
				snprintf(num, sizeof num, "(0/0)");
			else if (isinf(x))
				snprintf(num, sizeof num, x > 0 ? "math.huge" : "-math.huge");
			else
				/* %.17g reads back to the same double; keep a float a float. */
				snprintf(num, sizeof num, "%.17g%s", x,
					 x == floor(x) && fabs(x) < 1e16 ? ".0" : "");
		}
		lt_sbuf_adds(L, b, num);
		return;
	case LUA_TSTRING: {
		/* Quoted with escapes, so any byte survives. */
		size_t len;
		const char *s = lua_tolstring(L, idx, &len);
		lt_sbuf_addc(L, b, '"');
		for (size_t i = 0; i < len; i++) {
			unsigned char c = (unsigned char)s[i];
			if (c == '"' || c == '\\') {
				lt_sbuf_addc(L, b, '\\');
				lt_sbuf_addc(L, b, (char)c);
			} else if (c < 32 || c == 127) {
				snprintf(num, sizeof num, "\\%03d", c);
				lt_sbuf_adds(L, b, num);
			} else {
				lt_sbuf_addc(L, b, (char)c);
			}
		}
		lt_sbuf_addc(L, b, '"');
		return;
	}
	case LUA_TTABLE: {
		luaL_checkstack(L, 8, "journal");
		lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
		lt_sbuf_addc(L, b, '{');
		for (lua_Integer i = 1; i <= n; i++) {
			if (i > 1)
				lt_sbuf_adds(L, b, ", ");
			lua_rawgeti(L, idx, i);
			lt_journal_value(L, b, -1, depth + 1);
			lua_pop(L, 1);
		}
		/* String keys in sorted order so the text does not depend on
		 * table iteration order. */
		size_t nk = 0, cap = 8;
		const char **keys = lt_malloc(cap * sizeof *keys);
		if (!keys)
			luaL_error(L, "out of memory");
		lua_pushnil(L);
		while (lua_next(L, idx)) {
			lua_pop(L, 1);
			if (lua_type(L, -1) == LUA_TNUMBER && lua_isinteger(L, -1) &&
			    lua_tointeger(L, -1) >= 1 && lua_tointeger(L, -1) <= n)
				continue;
			if (lua_type(L, -1) != LUA_TSTRING) {
				lt_free(keys);
				luaL_error(L, "journal: only string keys and list items can be recorded");
			}
			if (nk == cap) {
				const char **p = lt_realloc(keys, 2 * cap * sizeof *keys);
				if (!p) {
					lt_free(keys);
					luaL_error(L, "out of memory");
				}
				keys = p;
				cap *= 2;
			}
			keys[nk++] = lua_tostring(L, -1); /* anchored by the table */
		}
		qsort(keys, nk, sizeof *keys, key_cmp);
		for (size_t i = 0; i < nk; i++) {
			if (i > 0 || n > 0)
				lt_sbuf_adds(L, b, ", ");
			if (is_identifier(keys[i])) {
				lt_sbuf_adds(L, b, keys[i]);
			} else {
				lt_sbuf_addc(L, b, '[');
				lua_pushstring(L, keys[i]);
				lt_journal_value(L, b, -1, depth + 1);
				lua_pop(L, 1);
				lt_sbuf_addc(L, b, ']');
			}
			lt_sbuf_adds(L, b, " = ");
			lua_getfield(L, idx, keys[i]);
			lt_journal_value(L, b, -1, depth + 1);
			lua_pop(L, 1);
		}
		lt_free(keys);
		lt_sbuf_addc(L, b, '}');
		return;
	}
	case LUA_TUSERDATA: {
		ltensor *t = luaL_testudata(L, idx, LT_MT_TENSOR);
		if (t && t->bench) {
			lt_sbuf_adds(L, b, "model");
			lt_sbuf_adds(L, b, t->expr);
			return;
		}
		if (luaL_testudata(L, idx, LT_MT_MODEL)) {
			lt_sbuf_adds(L, b, "model");
			return;
		}
		if (luaL_testudata(L, idx, LT_MT_LAYER)) {
			lua_getfield(L, idx, "name");
			lt_sbuf_adds(L, b, "model:layer(");
			lt_journal_value(L, b, -1, depth + 1);
			lua_pop(L, 1);
			lt_sbuf_addc(L, b, ')');
			return;
		}
		if (t) {
			/* A free tensor: its values, exactly. */
			lua_getfield(L, idx, "totable");
			lua_pushvalue(L, idx);
			lua_call(L, 1, 1);
			lt_sbuf_adds(L, b, "lathe.tensor(");
			lt_journal_value(L, b, -1, depth + 1);
			lt_sbuf_addc(L, b, ')');
			lua_pop(L, 1);
			return;
		}
	}
	/* fall through */
	default:
		luaL_error(L, "journal: a %s cannot be written into a recipe", luaL_typename(L, idx));
	}
}

void lt_journal_note(lua_State *L, lt_bench *bench, const char *call)
{
	lt_err err;
	if (lt_bench_note(bench, call, &err))
		lt_lraise(L, "journal", &err);
}

/* ---- atomic calls ----------------------------------------------------- */

/* Does msg start with a "CHUNK:LINE:" position? */
static int has_position(const char *msg)
{
	for (const char *p = msg; *p && *p != '\n'; p++) {
		if (*p != ':' || !(p[1] >= '0' && p[1] <= '9'))
			continue;
		const char *q = p + 1;
		while (*q >= '0' && *q <= '9')
			q++;
		if (*q == ':')
			return 1;
	}
	return 0;
}

static int msgh(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);
	if (!msg) {
		if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
			return 1;
		msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
	}
	/* Errors raised by C functions carry no position: name the innermost
	 * Lua line, so a recipe's user sees RECIPE:LINE for every error. */
	lua_Debug ar;
	for (int level = 1; !has_position(msg) && lua_getstack(L, level, &ar); level++) {
		lua_getinfo(L, "Sl", &ar);
		if (ar.currentline > 0) {
			msg = lua_pushfstring(L, "%s:%d: %s", ar.short_src, ar.currentline, msg);
			break;
		}
	}
	luaL_traceback(L, L, msg, 1);
	return 1;
}

/* Every open bench with a mark taken before a call. The reference keeps a
 * bench alive through the call (the recipe may close or drop it). */
struct held {
	lt_bench *bench;
	lt_bench_mark *mark;
};

/* Restore (on failure) or release the marks of held[0..n). */
static void settle(struct held *held, size_t n, int failed)
{
	for (size_t i = 0; i < n; i++) {
		if (failed)
			lt_bench_restore(held[i].bench, held[i].mark);
		else
			lt_bench_mark_free(held[i].mark);
		lt_bench_unref(held[i].bench);
	}
	lt_free(held);
}

static int atomic_call(lua_State *L, int nargs, int nresults, int msgh_idx)
{
	struct lstate *s = lt_lstate(L);
	size_t n = s->n, marked = 0;
	lt_err err;
	struct held *held = n ? lt_calloc(n, sizeof *held) : NULL;
	int ok = !n || held;
	for (; ok && marked < n; marked++) {
		held[marked].bench = lt_bench_ref(s->benches[marked]);
		if (!(held[marked].mark = lt_bench_mark_new(held[marked].bench, &err))) {
			lt_bench_unref(held[marked].bench);
			ok = 0;
			break;
		}
	}
	if (!ok) {
		settle(held, marked, 0);
		lua_pop(L, nargs + 1);
		lua_pushstring(L, "out of memory marking the open models");
		return LUA_ERRMEM;
	}
	int st = lua_pcall(L, nargs, nresults, msgh_idx);
	settle(held, n, st != LUA_OK);
	return st;
}

int lt_lua_pcall(lua_State *L, int nargs, int nresults)
{
	int base = lua_gettop(L) - nargs;
	lua_pushcfunction(L, msgh);
	lua_insert(L, base);
	int st = atomic_call(L, nargs, nresults, base);
	lua_remove(L, base);
	if (lt_sandbox_tripped(L) && (st == LUA_OK || st == LUA_ERRMEM)) {
		/* A limit was hit and a pcall in the recipe swallowed it, or the
		 * memory limit refused an allocation (Lua then skips the message
		 * handler): say which limit. */
		lua_settop(L, base - 1);
		lua_pushstring(L, lt_sandbox_tripped(L));
		st = LUA_ERRRUN;
	}
	return st;
}

/* lathe.atomic(f, ...): call f; if it raises, every open model is put back
 * as it was and the error is raised again. */
static int l_atomic(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TFUNCTION);
	int nargs = lua_gettop(L) - 1;
	int st = atomic_call(L, nargs, LUA_MULTRET, 0);
	if (st != LUA_OK)
		return lua_error(L);
	return lua_gettop(L);
}

/* lathe.params(defaults): the recipe's parameters: defaults overridden by
 * `lathe run --set NAME=VALUE` (values converted to the default's type). */
static int l_params(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	lua_newtable(L); /* 2: result */
	lua_pushnil(L);
	while (lua_next(L, 1)) {
		if (lua_type(L, -2) != LUA_TSTRING)
			return luaL_error(L, "lathe.params: parameter names must be strings");
		lua_pushvalue(L, -2);
		lua_insert(L, -2);
		lua_settable(L, 2);
	}
	if (lua_getfield(L, LUA_REGISTRYINDEX, "lathe.set") != LUA_TTABLE) {
		lua_pop(L, 1);
		return 1;
	}
	int set = lua_gettop(L);
	lua_pushboolean(L, 1);
	lua_setfield(L, LUA_REGISTRYINDEX, "lathe.params_used");
	lua_pushnil(L);
	while (lua_next(L, set)) {
		const char *name = lua_tostring(L, -2), *text = lua_tostring(L, -1);
		lua_getfield(L, 1, name);
		int type = lua_type(L, -1);
		lua_pop(L, 1);
		if (type == LUA_TNIL) {
			/* Name the declared parameters in sorted order. */
			const char *names[64];
			int nn = 0;
			lua_pushnil(L);
			while (lua_next(L, 1)) {
				lua_pop(L, 1);
				if (nn < 64)
					names[nn++] = lua_tostring(L, -1); /* anchored by the table */
			}
			qsort(names, (size_t)nn, sizeof *names, key_cmp);
			char have[512] = "";
			size_t used = 0;
			for (int i = 0; i < nn; i++) {
				int w = snprintf(have + used, sizeof have - used, "%s%s", used ? ", " : "", names[i]);
				if (w > 0 && (size_t)w < sizeof have - used)
					used += (size_t)w;
			}
			return luaL_error(L, "--set %s: the recipe has no parameter '%s' (it has: %s)", name,
					  name, used ? have : "none");
		}
		if (type == LUA_TNUMBER) {
			lua_getfield(L, 1, name);
			int want_int = lua_isinteger(L, -1);
			lua_pop(L, 1);
			if (!lua_stringtonumber(L, text))
				return luaL_error(L, "--set %s=%s: expected a number", name, text);
			if (want_int) {
				/* An integer default wants a whole number (epochs=1.5 is a slip). */
				lua_Integer iv;
				if (!lua_isinteger(L, -1)) {
					lua_Number x = lua_tonumber(L, -1);
					if (x != floor(x) || !lua_numbertointeger(x, &iv))
						return luaL_error(L, "--set %s=%s: expected a whole number "
								  "(the default is an integer)", name, text);
					lua_pop(L, 1);
					lua_pushinteger(L, iv);
				}
			}
		} else if (type == LUA_TBOOLEAN) {
			if (!strcmp(text, "true") || !strcmp(text, "1"))
				lua_pushboolean(L, 1);
			else if (!strcmp(text, "false") || !strcmp(text, "0"))
				lua_pushboolean(L, 0);
			else
				return luaL_error(L, "--set %s=%s: expected true or false", name, text);
		} else if (type == LUA_TSTRING) {
			lua_pushstring(L, text);
		} else {
			return luaL_error(L, "--set %s: parameter is a %s and cannot be set from the command line",
					  name, lua_typename(L, type));
		}
		lua_setfield(L, 2, name);
		lua_pop(L, 1);
	}
	lua_settop(L, 2);
	return 1;
}

/* ---- types ------------------------------------------------------------ */

void lt_make_type(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods,
		  lua_CFunction index, const char *const *fields)
{
	luaL_newmetatable(L, name);
	luaL_setfuncs(L, meta, 0);
	lua_newtable(L);
	luaL_setfuncs(L, methods, 0);
	lua_pushvalue(L, -1);
	lua_setfield(L, -3, "__methods");
	lua_pushcclosure(L, index, 1);
	lua_setfield(L, -2, "__index");
	lua_createtable(L, 0, 0);
	for (int i = 0; fields[i]; i++) {
		lua_pushstring(L, fields[i]);
		lua_rawseti(L, -2, i + 1);
	}
	lua_setfield(L, -2, "__fields");
	lua_pop(L, 1);
}

int lt_call_kernel(lua_State *L, lua_CFunction kernel)
{
	lua_settop(L, 2);
	lua_pushcfunction(L, kernel);
	lua_insert(L, 1);
	lua_call(L, 2, 1);
	return 1;
}

/* ---- module ----------------------------------------------------------- */

static int l_set_data(lua_State *L)
{
	const char *dir = luaL_optstring(L, 1, NULL);
	if (lt_sandbox_active(L))
		return luaL_error(L, "lathe.set_data: not allowed in the sandbox (use --data)");
	struct lstate *s = lt_lstate(L);
	char *copy = dir ? lt_strdup(dir) : NULL;
	if (dir && !copy)
		return luaL_error(L, "out of memory");
	lt_free(s->data_dir);
	s->data_dir = copy;
	for (int i = 0; i < LT_SPLIT_COUNT; i++) {
		lt_dataset_release(&s->splits[i]);
		s->loaded[i] = 0;
	}
	return 0;
}

/* lathe.clock(): seconds on a monotonic clock, for timing recipes. */
static int l_clock(lua_State *L)
{
	lua_pushnumber(L, lt_seconds());
	return 1;
}

static const luaL_Reg lathe_funcs[] = {
	{"clock", l_clock},
	{"open", lt_l_open},
	{"tensor", lt_l_tensor_new},
	{"zeros", lt_l_zeros},
	{"prune", lt_l_prune},
	{"cast", lt_l_cast},
	{"finetune", lt_l_finetune},
	{"sensitivity", lt_l_sensitivity},
	{"prune_structured", lt_l_prune_structured},
	{"prune_nm", lt_l_prune_nm},
	{"threshold_activations", lt_l_threshold_activations},
	{"quantize", lt_l_quantize},
	{"share", lt_l_share},
	{"int8_preview", lt_l_int8_preview},
	{"choose_sparsities", lt_l_choose_sparsities},
	{"atomic", l_atomic},
	{"params", l_params},
	{"set_data", l_set_data},
	{NULL, NULL}
};

int luaopen_lathe(lua_State *L)
{
	lt_lstate(L);
	lt_open_tensor(L);
	lt_open_model(L);
	luaL_newlib(L, lathe_funcs);
	lua_pushstring(L, PACKAGE_VERSION);
	lua_setfield(L, -2, "version");
	/* The compression kernels, for discovery (completion, docs). */
	static const char *const kernels[] = {"prune", "prune_structured", "prune_nm", "threshold_activations",
		"quantize", "share", "cast", "finetune", NULL};
	lua_createtable(L, 3, 0);
	for (int i = 0; kernels[i]; i++) {
		lua_pushstring(L, kernels[i]);
		lua_rawseti(L, -2, i + 1);
	}
	lua_setfield(L, -2, "kernels");
	return 1;
}

const char *const *lt_lua_helper_dirs(void)
{
	static const char *const dirs[] = {LT_SRCDIR "/lua", LT_LUADIR, NULL};
	return dirs;
}

/* package.path gets lathe's helper directories first. */
static void set_path(lua_State *L)
{
	lua_getglobal(L, "package");
	if (!lua_istable(L, -1)) {
		lua_pop(L, 1);
		return;
	}
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	for (const char *const *d = lt_lua_helper_dirs(); *d; d++) {
		luaL_addstring(&b, *d);
		luaL_addstring(&b, "/?.lua;");
	}
	lua_getfield(L, -2, "path");
	luaL_addvalue(&b);
	luaL_pushresult(&b);
	lua_setfield(L, -2, "path");
	lua_pop(L, 1);
}

static int open_libs(lua_State *L)
{
	luaL_openlibs(L);
	set_path(L);
	luaL_requiref(L, "lathe", luaopen_lathe, 1);
	lua_pop(L, 1);
	return 0;
}

lua_State *lt_lua_open(const lt_lua_opts *opts, lt_err *err)
{
	lua_State *L;
	if (opts && opts->sandbox) {
		lt_sandbox_cfg cfg = {.read_paths = opts->read_paths, .write_paths = opts->write_paths,
				      .lua_dirs = lt_lua_helper_dirs(), .mem_limit = opts->mem_limit,
				      .insn_limit = opts->insn_limit, .time_limit = opts->time_limit};
		if (!(L = lt_sandbox_newstate(&cfg, err)))
			return NULL;
	} else if (!(L = luaL_newstate())) {
		lt_err_set(err, LT_ENOMEM, "cannot create a Lua state");
		return NULL;
	}
	lua_pushcfunction(L, open_libs);
	if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
		lt_err_set(err, LT_ENOMEM, "cannot set up Lua: %s", lua_tostring(L, -1));
		goto fail;
	}
	if (opts && opts->data_dir) {
		struct lstate *s = lt_lstate(L);
		if (!(s->data_dir = lt_strdup(opts->data_dir))) {
			lt_err_set(err, LT_ENOMEM, "out of memory");
			goto fail;
		}
	}
	if (opts && opts->sandbox && lt_sandbox_restrict(L, err))
		goto fail;
	return L;
fail:
	if (lt_sandbox_active(L))
		lt_sandbox_close(L);
	else
		lua_close(L);
	return NULL;
}
