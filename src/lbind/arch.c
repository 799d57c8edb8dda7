/* Lua architecture scripts: a sandboxed lua_State runs the script, then the
 * returned table is converted to architecture JSON with jansson.
 *
 * Everything that may raise a Lua error (opening the libraries, loading and
 * running the chunk) runs inside one lua_pcall, so an allocation failure can
 * never reach Lua's panic handler. The conversion afterwards only reads the
 * state with calls that cannot raise (lua_next, lua_rawgeti, lua_to*,
 * lua_checkstack) and with the collector stopped, so no script code runs
 * while tables are being walked. */
#include "lbind/arch.h"

#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "lbind/sandbox.h"

#define ARCH_FORMAT "lathe-arch-1"

/* What to run: a file (path) or a buffer (chunk). The limits are the
 * sandbox's (lbind/sandbox.c: capped allocator and count hook). */
struct script {
	const char *path;
	const char *chunk;
	size_t chunk_len;
	const char *chunkname;
	int load_status;    /* LUA_OK, or the status of a failed load */
};

/* ---- the sandbox ------------------------------------------------------- */

/* Message handler: no traceback. Strings already carry Lua's "CHUNK:LINE:"
 * prefix and pass through; other error objects are described, without
 * calling their metamethods, at the line of the innermost Lua function. */
static int sb_msgh(lua_State *L)
{
	if (lua_type(L, 1) == LUA_TSTRING)
		return 1;
	lua_Debug ar;
	for (int level = 1; lua_getstack(L, level, &ar); level++) {
		lua_getinfo(L, "Sl", &ar);
		if (ar.currentline > 0) {
			lua_pushfstring(L, "%s:%d: (error object is a %s value)", ar.short_src,
					ar.currentline, luaL_typename(L, 1));
			return 1;
		}
	}
	lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
	return 1;
}

static const char *const safe_base[] = {
	"assert", "error", "ipairs", "pairs", "next", "select", "tonumber", "tostring",
	"type", "pcall", "rawequal", "rawget", "rawlen", "rawset", "setmetatable",
	"getmetatable", "_G", "_VERSION", NULL,
};

static int is_safe_base(const char *name)
{
	for (int i = 0; safe_base[i]; i++)
		if (!strcmp(name, safe_base[i]))
			return 1;
	return 0;
}

/* Globals: the whitelisted base functions, string, table and math. */
static void open_safe_libs(lua_State *L)
{
	luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
	lua_pushnil(L);
	while (lua_next(L, -2)) {
		lua_pop(L, 1);
		if (lua_type(L, -1) != LUA_TSTRING || !is_safe_base(lua_tostring(L, -1))) {
			/* Clearing a field during traversal is allowed. */
			lua_pushvalue(L, -1);
			lua_pushnil(L);
			lua_rawset(L, -4);
		}
	}
	/* setmetatable refusing finalizers: Lua runs them with hooks off. */
	lua_pushcfunction(L, lt_sandbox_setmetatable);
	lua_setfield(L, -2, "setmetatable");
	lua_pop(L, 1);
	luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
	/* Pattern matching runs inside one C call, out of the instruction
	 * hook's reach, and a pathological pattern can run for hours; an
	 * architecture has no use for it. */
	static const char *const patterns[] = {"find", "match", "gmatch", "gsub"};
	for (size_t i = 0; i < sizeof patterns / sizeof *patterns; i++) {
		lua_pushnil(L);
		lua_setfield(L, -2, patterns[i]);
	}
	luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
	luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
	lua_pop(L, 3);
	/* string.rep and the table functions that loop in C, bounded. */
	lt_sandbox_guard_libs(L);
}

/* Protected body: set up the globals, load the script, run it. Returns the
 * script's first result, or the load error message with sc->load_status. */
static int sb_main(lua_State *L)
{
	struct script *sc = lua_touserdata(L, 1);
	lua_settop(L, 0);
	open_safe_libs(L);
	int st;
	if (sc->path) {
		st = luaL_loadfilex(L, sc->path, "t");
	} else {
		const char *name = sc->chunkname;
		if (!name)
			name = "=(architecture)";
		else if (name[0] != '=' && name[0] != '@')
			name = lua_pushfstring(L, "=%s", name);
		st = luaL_loadbufferx(L, sc->chunk, sc->chunk_len, name, "t");
	}
	if (st != LUA_OK) {
		sc->load_status = st;
		return 1;
	}
	/* The count hook is armed since lt_sandbox_newstate; no Lua code runs
	 * after the chunk. */
	lua_call(L, 0, 1);
	return 1;
}

/* ---- conversion to JSON ------------------------------------------------ */

enum ctx {
	CTX_ROOT,     /* the returned table */
	CTX_LAYERS,   /* root.layers: its entries are layer objects */
	CTX_OBJECT,   /* a table the format wants as an object (empty -> {}) */
	CTX_OTHER,    /* anything else (empty -> []) */
};

#define PATH_MAX_LEN 256

struct conv {
	lua_State *L;
	lt_err *err;
	/* Totals so far: a table or string used in several places is written
	 * each time, so without these a small script could expand to gigabytes
	 * ({a, a} nested 30 deep, or one long string listed many times). */
	size_t values, string_bytes;
	char path[PATH_MAX_LEN]; /* "layers[3].kernel_size" */
	size_t plen;
};

static const char *where(const struct conv *c)
{
	return c->plen ? c->path : "the returned table";
}

static void path_set_len(struct conv *c, size_t len)
{
	c->plen = len < sizeof c->path ? len : sizeof c->path - 1;
	c->path[c->plen] = '\0';
}

static void path_push_index(struct conv *c, lua_Integer i)
{
	int n = snprintf(c->path + c->plen, sizeof c->path - c->plen, "[%lld]", (long long)i);
	path_set_len(c, c->plen + (n > 0 ? (size_t)n : 0));
}

static int is_identifier(const char *s, size_t len)
{
	if (len == 0 || (s[0] >= '0' && s[0] <= '9'))
		return 0;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_'))
			return 0;
	}
	return 1;
}

static void path_push_key(struct conv *c, const char *key, size_t len)
{
	int n;
	size_t room = sizeof c->path - c->plen;
	if (is_identifier(key, len)) {
		n = snprintf(c->path + c->plen, room, "%s%.*s", c->plen ? "." : "", (int)(len > 64 ? 64 : len), key);
	} else {
		size_t cut = len;
		if (cut > 40) {
			cut = 37;
			while (cut > 0 && ((unsigned char)key[cut] & 0xC0) == 0x80)
				cut--; /* keep whole UTF-8 characters */
		}
		n = snprintf(c->path + c->plen, room, "[\"%.*s%s\"]", (int)cut, key, cut < len ? "..." : "");
	}
	path_set_len(c, c->plen + (n > 0 ? (size_t)n : 0));
}

/* Strict UTF-8 as JSON needs it: no overlong forms, surrogates or code points
 * above U+10FFFF (the same rules jansson applies). */
static int utf8_valid(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i];
		size_t len;
		uint32_t cp, min;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			len = 2, cp = c & 0x1F, min = 0x80;
		} else if ((c & 0xF0) == 0xE0) {
			len = 3, cp = c & 0x0F, min = 0x800;
		} else if ((c & 0xF8) == 0xF0) {
			len = 4, cp = c & 0x07, min = 0x10000;
		} else {
			return 0;
		}
		if (n - i < len)
			return 0;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return 0;
		i += len;
	}
	return 1;
}

static json_t *nomem(struct conv *c)
{
	lt_err_set(c->err, LT_ENOMEM, "out of memory converting the architecture to JSON");
	return NULL;
}

/* Key order: the ones a reader looks for first, then byte order. */
static const char *const leading_keys[] = {
	"format", "op", "name", "inputs", "input", "preprocess", "layers", NULL,
};

struct field {
	const char *key; /* borrowed from the Lua table, which stays on the stack */
	int rank;
	json_t *value;
};

static int key_rank(const char *key)
{
	int i;
	for (i = 0; leading_keys[i]; i++)
		if (!strcmp(key, leading_keys[i]))
			break;
	return i;
}

static int field_cmp(const void *pa, const void *pb)
{
	const struct field *a = pa, *b = pb;
	if (a->rank != b->rank)
		return a->rank < b->rank ? -1 : 1;
	return strcmp(a->key, b->key);
}

static json_t *conv_value(struct conv *c, int idx, int depth, enum ctx ctx);

static json_t *conv_list(struct conv *c, int idx, lua_Integer n, int depth, enum ctx ctx)
{
	lua_State *L = c->L;
	json_t *arr = json_array();
	if (!arr)
		return nomem(c);
	size_t saved = c->plen;
	for (lua_Integer i = 1; i <= n; i++) {
		lua_rawgeti(L, idx, i);
		path_push_index(c, i);
		json_t *v = conv_value(c, lua_gettop(L), depth + 1, ctx == CTX_LAYERS ? CTX_OBJECT : CTX_OTHER);
		lua_pop(L, 1);
		if (!v) {
			json_decref(arr);
			return NULL;
		}
		path_set_len(c, saved);
		if (json_array_append_new(arr, v)) {
			json_decref(arr);
			return nomem(c);
		}
	}
	return arr;
}

static json_t *conv_object(struct conv *c, int idx, size_t count, int depth, enum ctx ctx)
{
	lua_State *L = c->L;
	int top = lua_gettop(L);
	size_t saved = c->plen, n = 0;
	json_t *obj = NULL;
	/* One spare slot for the "format" added at the top level. */
	struct field *fields = lt_malloc_array(count + 1, sizeof *fields);
	if (!fields)
		return nomem(c);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		size_t len;
		const char *key = lua_tolstring(L, -2, &len); /* a string: classified already */
		if (memchr(key, '\0', len) || !utf8_valid(key, len)) {
			lt_err_set(c->err, LT_EFORMAT, "%s: a key %s", where(c),
				   memchr(key, '\0', len) ? "contains a NUL byte" : "is not valid UTF-8");
			goto fail;
		}
		path_push_key(c, key, len);
		enum ctx sub = CTX_OTHER;
		if (ctx == CTX_ROOT && !strcmp(key, "layers"))
			sub = CTX_LAYERS;
		else if (ctx == CTX_ROOT && !strcmp(key, "preprocess"))
			sub = CTX_OBJECT;
		json_t *v = conv_value(c, lua_gettop(L), depth + 1, sub);
		if (!v)
			goto fail;
		path_set_len(c, saved);
		fields[n++] = (struct field){key, key_rank(key), v};
		lua_pop(L, 1);
	}
	if (ctx == CTX_ROOT) {
		int has_format = 0;
		for (size_t i = 0; i < n; i++)
			has_format |= !strcmp(fields[i].key, "format");
		if (!has_format) {
			json_t *v = json_string(ARCH_FORMAT);
			if (!v) {
				nomem(c);
				goto fail;
			}
			fields[n++] = (struct field){"format", key_rank("format"), v};
		}
	}
	qsort(fields, n, sizeof *fields, field_cmp);
	obj = json_object();
	if (!obj) {
		nomem(c);
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *v = fields[i].value;
		fields[i].value = NULL;
		if (json_object_set_new_nocheck(obj, fields[i].key, v)) { /* steals v */
			nomem(c);
			goto fail;
		}
	}
	lt_free(fields);
	lua_settop(L, top);
	return obj;
fail:
	for (size_t i = 0; i < n; i++)
		json_decref(fields[i].value);
	lt_free(fields);
	json_decref(obj);
	lua_settop(L, top);
	return NULL;
}

static json_t *conv_table(struct conv *c, int idx, int depth, enum ctx ctx)
{
	lua_State *L = c->L;
	if (depth > LT_LUA_ARCH_MAX_DEPTH) {
		lt_err_set(c->err, LT_EFORMAT, "%s: tables nest more than %d deep (is there a cycle?)",
			   where(c), LT_LUA_ARCH_MAX_DEPTH);
		return NULL;
	}
	/* Key, value and a nested table's key and value, plus slack. */
	if (!lua_checkstack(L, 6))
		return nomem(c);

	/* Classify the keys: all 1..n (a list) or all strings (an object). */
	size_t n_int = 0, n_str = 0;
	lua_Integer lo = 0, hi = 0;
	const char *odd = NULL;
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		int kt = lua_type(L, -1);
		if (kt == LUA_TSTRING) {
			n_str++;
		} else if (kt == LUA_TNUMBER && lua_isinteger(L, -1)) {
			lua_Integer k = lua_tointeger(L, -1);
			if (n_int == 0 || k < lo)
				lo = k;
			if (n_int == 0 || k > hi)
				hi = k;
			n_int++;
		} else if (!odd) {
			odd = kt == LUA_TNUMBER ? "fractional number" : lua_typename(L, kt);
		}
	}
	if (odd) {
		lt_err_set(c->err, LT_EFORMAT, "%s: keys must be names or list positions 1..n (found a %s key)",
			   where(c), odd);
		return NULL;
	}
	if (n_int && n_str) {
		lt_err_set(c->err, LT_EFORMAT, "%s: a table cannot mix list items and named fields", where(c));
		return NULL;
	}
	if (n_int) {
		if (lo < 1 || hi < 0 || (uint64_t)hi != n_int) {
			lt_err_set(c->err, LT_EFORMAT,
				   "%s: list positions must run 1..n without gaps (found %lld among %zu items)",
				   where(c), (long long)(lo < 1 ? lo : hi), n_int);
			return NULL;
		}
		if (ctx == CTX_ROOT) {
			lt_err_set(c->err, LT_EFORMAT, "the architecture script must return a table with named "
				   "fields (input, layers, ...), not a list");
			return NULL;
		}
		return conv_list(c, idx, hi, depth, ctx);
	}
	if (n_str || ctx == CTX_ROOT || ctx == CTX_OBJECT)
		return conv_object(c, idx, n_str, depth, ctx);
	json_t *arr = json_array(); /* {} where the format wants a list */
	return arr ? arr : nomem(c);
}

static json_t *conv_value(struct conv *c, int idx, int depth, enum ctx ctx)
{
	lua_State *L = c->L;
	json_t *v;
	if (++c->values > LT_LUA_ARCH_MAX_VALUES) {
		lt_err_set(c->err, LT_ERANGE, "the returned table is too large for JSON (more than %ld values; "
			   "a table used in several places counts each time)", (long)LT_LUA_ARCH_MAX_VALUES);
		return NULL;
	}
	switch (lua_type(L, idx)) {
	case LUA_TBOOLEAN:
		v = json_boolean(lua_toboolean(L, idx));
		break;
	case LUA_TNUMBER:
		if (lua_isinteger(L, idx)) {
			v = json_integer((json_int_t)lua_tointeger(L, idx));
		} else {
			double d = lua_tonumber(L, idx);
			if (isnan(d) || isinf(d)) {
				lt_err_set(c->err, LT_EFORMAT, "%s: %s cannot be written as JSON", where(c),
					   isnan(d) ? "NaN" : "infinity");
				return NULL;
			}
			/* 2^53: every integer below it is exact in a double. */
			if (d == floor(d) && fabs(d) < 9007199254740992.0)
				v = json_integer((json_int_t)d);
			else
				v = json_real(d);
		}
		break;
	case LUA_TSTRING: {
		size_t len;
		const char *s = lua_tolstring(L, idx, &len);
		c->string_bytes += len;
		if (c->string_bytes > LT_LUA_ARCH_MEM_LIMIT) {
			lt_err_set(c->err, LT_ERANGE, "the returned table is too large for JSON (more than %d MiB "
				   "of strings; a string used in several places counts each time)",
				   (int)(LT_LUA_ARCH_MEM_LIMIT >> 20));
			return NULL;
		}
		if (memchr(s, '\0', len)) {
			lt_err_set(c->err, LT_EFORMAT, "%s: string contains a NUL byte", where(c));
			return NULL;
		}
		if (!utf8_valid(s, len)) {
			lt_err_set(c->err, LT_EFORMAT, "%s: string is not valid UTF-8", where(c));
			return NULL;
		}
		v = json_stringn_nocheck(s, len);
		break;
	}
	case LUA_TTABLE:
		return conv_table(c, idx, depth, ctx);
	default:
		lt_err_set(c->err, LT_EFORMAT, "%s: a %s cannot be written as JSON", where(c),
			   luaL_typename(L, idx));
		return NULL;
	}
	return v ? v : nomem(c);
}

/* ---- driver ------------------------------------------------------------ */

/* The string chunk's name as messages show it. */
static const char *chunk_label(const struct script *sc)
{
	const char *name = sc->chunkname;
	if (!name)
		return "the script";
	return name[0] == '=' || name[0] == '@' ? name + 1 : name;
}

static void set_run_error(const struct script *sc, lua_State *L, int st, lt_err *err)
{
	const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "unknown error";
	int hits = lt_sandbox_hits(L);
	if ((hits & LT_SANDBOX_HIT_MEM) && (st == LUA_ERRMEM || st == LUA_ERRERR)) {
		lt_err_set(err, LT_ERANGE, "architecture script used more than %d MiB of memory",
			   (int)(LT_LUA_ARCH_MEM_LIMIT >> 20));
	} else if (st == LUA_ERRMEM || (st == LUA_ERRERR && (hits & LT_SANDBOX_HIT_NOMEM))) {
		lt_err_set(err, LT_ENOMEM, "out of memory running the architecture script");
	} else if (hits & (LT_SANDBOX_HIT_INSN | LT_SANDBOX_HIT_TIME)) {
		/* Keep the hook's "CHUNK:LINE: " and say it in this module's words. */
		int insn = hits & LT_SANDBOX_HIT_INSN;
		const char *at = strstr(msg, insn ? "instruction limit exceeded" : "time limit exceeded");
		if (insn)
			lt_err_set(err, LT_ERANGE, "%.*sarchitecture script ran too long (more than %d million "
				   "instructions)", at ? (int)(at - msg) : 0, msg, (int)(LT_LUA_ARCH_INSN_LIMIT / 1000000));
		else
			lt_err_set(err, LT_ERANGE, "%.*sarchitecture script ran too long (more than %g seconds)",
				   at ? (int)(at - msg) : 0, msg, LT_LUA_ARCH_TIME_LIMIT);
	} else if (st == LUA_ERRFILE) {
		lt_err_set(err, LT_EIO, "%s", msg);
	} else if (!strncmp(msg, "attempt to load a binary chunk", 30)) {
		lt_err_set(err, LT_EFORMAT, "%s is a precompiled Lua chunk; architecture scripts must be source text",
			   sc->path ? sc->path : chunk_label(sc));
	} else {
		lt_err_set(err, LT_EFORMAT, "%s", msg);
	}
}

static char *run(struct script *sc, lt_err *err)
{
	char *out = NULL;
	json_t *root = NULL;
	const lt_sandbox_cfg cfg = {
		.mem_limit = LT_LUA_ARCH_MEM_LIMIT,
		.insn_limit = LT_LUA_ARCH_INSN_LIMIT,
		.time_limit = LT_LUA_ARCH_TIME_LIMIT,
	};
	lua_State *L = lt_sandbox_newstate(&cfg, err);
	if (!L) {
		lt_err_set(err, LT_ENOMEM, "out of memory starting the architecture script");
		return NULL;
	}
	/* Light C functions and userdata: these pushes cannot fail. */
	lua_pushcfunction(L, sb_msgh);
	lua_pushcfunction(L, sb_main);
	lua_pushlightuserdata(L, sc);
	int st = lua_pcall(L, 1, 1, 1);
	if (st == LUA_OK)
		st = sc->load_status;
	if (st != LUA_OK) {
		set_run_error(sc, L, st, err);
		goto done;
	}
	if (!lua_istable(L, -1)) {
		lt_err_set(err, LT_EFORMAT, "the architecture script must return a table (got %s)",
			   luaL_typename(L, -1));
		goto done;
	}
	/* No collection may run while tables are walked (there are no
	 * finalizers, but nothing is lost by making sure). */
	lua_gc(L, LUA_GCSTOP);
	struct conv c = {.L = L, .err = err};
	root = conv_value(&c, lua_gettop(L), 1, CTX_ROOT);
	if (!root)
		goto done;
	size_t flags = JSON_COMPACT | JSON_REAL_PRECISION(15);
	size_t size = json_dumpb(root, NULL, 0, flags);
	out = size ? lt_malloc(size + 1) : NULL;
	if (out && json_dumpb(root, out, size, flags) != size) {
		lt_free(out);
		out = NULL;
	}
	if (!out) {
		lt_err_set(err, LT_ENOMEM, "out of memory writing architecture JSON");
		goto done;
	}
	out[size] = '\0';
done:
	json_decref(root);
	lt_sandbox_close(L);
	return out;
}

char *lt_lua_arch_to_json(const char *path, lt_err *err)
{
	struct script sc = {.path = path};
	return run(&sc, err);
}

char *lt_lua_arch_string_to_json(const char *chunk, const char *chunkname, lt_err *err)
{
	struct script sc = {.chunk = chunk, .chunk_len = strlen(chunk), .chunkname = chunkname};
	return run(&sc, err);
}
