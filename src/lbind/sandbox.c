/* The sandbox for untrusted Lua (see sandbox.h for the rules).
 *
 * One mechanism serves recipes and architecture scripts: a lua_Alloc with a
 * byte budget whose ud is the struct sandbox (so any C code holding L finds
 * it through lua_getallocf), and a count hook for the instruction and time
 * limits. lt_sandbox_restrict adds the recipe policy on top: stubs for what
 * escapes the process, path checks for what opens files, and C wrappers for
 * the library functions that can loop for a long time inside one C call,
 * where the hook cannot see them. */
#include "lbind/sandbox.h"

#include <ctype.h>
#include <errno.h>
#include <lauxlib.h>
#include <limits.h>
#include <lualib.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/clock.h"
#include "core/mem.h"

#define MSG_MAX 64

struct sandbox {
	size_t limit;          /* bytes */
	size_t used;           /* bytes the state holds, as Lua sees them */
	long long insn_limit;
	long long insns;       /* counted so far, in hook steps and charges */
	double time_limit;     /* seconds */
	double start;          /* lt_seconds() at creation */
	int hits;              /* LT_SANDBOX_HIT_* */
	int restricted;
	size_t written;        /* bytes the script wrote to files */
	char tripped[MSG_MAX]; /* first limit hit, or "" */
	char **read, **write;  /* canonical paths, NULL-terminated */
	char **dirs;           /* lua_dirs as given, NULL-terminated */
};

/* ---- limits --------------------------------------------------------------- */

static void limit_msg(const struct sandbox *sb, int kind, char *buf)
{
	if (kind == LT_SANDBOX_HIT_MEM && sb->limit % ((size_t)1 << 20) == 0)
		snprintf(buf, MSG_MAX, "memory limit exceeded (%zu MiB)", sb->limit >> 20);
	else if (kind == LT_SANDBOX_HIT_MEM)
		snprintf(buf, MSG_MAX, "memory limit exceeded (%zu bytes)", sb->limit);
	else if (kind == LT_SANDBOX_HIT_INSN)
		snprintf(buf, MSG_MAX, "instruction limit exceeded (%lld)", sb->insn_limit);
	else
		snprintf(buf, MSG_MAX, "time limit exceeded (%g s)", sb->time_limit);
}

static void trip(struct sandbox *sb, int kind)
{
	if (!sb->tripped[0])
		limit_msg(sb, kind, sb->tripped);
	sb->hits |= kind;
}

static int stopped(const struct sandbox *sb)
{
	return sb->hits & (LT_SANDBOX_HIT_INSN | LT_SANDBOX_HIT_TIME);
}

/* Charge n instructions and look at the clock; 1 once a limit is hit. */
static int charge(struct sandbox *sb, long long n)
{
	if (n > 0)
		sb->insns = n > LLONG_MAX - sb->insns ? LLONG_MAX : sb->insns + n;
	if (!stopped(sb)) {
		if (sb->insns > sb->insn_limit)
			trip(sb, LT_SANDBOX_HIT_INSN);
		else if (lt_seconds() - sb->start > sb->time_limit)
			trip(sb, LT_SANDBOX_HIT_TIME);
	}
	return stopped(sb) != 0;
}

/* lua_Alloc with a byte budget; memory comes from lt_realloc so that the
 * failure-injection tests reach Lua's allocations too. */
static void *sb_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct sandbox *sb = ud;
	if (!ptr)
		osize = 0; /* osize then encodes the object type */
	if (nsize == 0) {
		lt_free(ptr);
		sb->used -= osize;
		return NULL;
	}
	if (nsize > osize && nsize - osize > sb->limit - sb->used) {
		trip(sb, LT_SANDBOX_HIT_MEM);
		return NULL;
	}
	void *p = lt_realloc(ptr, nsize);
	if (!p) {
		if (nsize <= osize) {
			/* A shrink that failed: the old block is big enough. */
			sb->used -= osize - nsize;
			return ptr;
		}
		sb->hits |= LT_SANDBOX_HIT_NOMEM;
		return NULL;
	}
	sb->used = sb->used - osize + nsize;
	return p;
}

static struct sandbox *sandbox_of(lua_State *L)
{
	void *ud = NULL;
	return lua_getallocf(L, &ud) == sb_alloc ? ud : NULL;
}

static void sb_hook(lua_State *L, lua_Debug *ar);

static void arm(lua_State *L, const struct sandbox *sb)
{
	lua_sethook(L, sb_hook, LUA_MASKCOUNT, stopped(sb) ? 1 : LT_SANDBOX_HOOK_STEP);
}

static void stop_msg(const struct sandbox *sb, char *buf)
{
	limit_msg(sb, sb->hits & LT_SANDBOX_HIT_INSN ? LT_SANDBOX_HIT_INSN : LT_SANDBOX_HIT_TIME, buf);
}

/* Count hook. Once a limit is hit it fires on every instruction of this
 * thread (and of any other at its next step) and raises each time, so a
 * pcall in the script cannot swallow the error and go on. */
static void sb_hook(lua_State *L, lua_Debug *ar)
{
	struct sandbox *sb = sandbox_of(L);
	if (!sb || (!stopped(sb) && !charge(sb, LT_SANDBOX_HOOK_STEP)))
		return;
	char msg[MSG_MAX];
	stop_msg(sb, msg);
	arm(L, sb);
	if (lua_getinfo(L, "Sl", ar) && ar->currentline > 0)
		lua_pushfstring(L, "%s:%d: %s", ar->short_src, ar->currentline, msg);
	else
		lua_pushstring(L, msg);
	lua_error(L);
}

/* The same check from C functions called by the script: charge n and raise
 * when a limit is hit, with the position of the calling Lua code. */
static void tick(lua_State *L, long long n)
{
	struct sandbox *sb = sandbox_of(L);
	if (!sb || !charge(sb, n))
		return;
	char msg[MSG_MAX];
	stop_msg(sb, msg);
	arm(L, sb);
	luaL_error(L, "%s", msg);
}

/* A count of elements, saturated, for tick. */
static long long count_of(lua_Unsigned n)
{
	return n > (lua_Unsigned)LLONG_MAX ? LLONG_MAX : (long long)n;
}

/* ---- paths ---------------------------------------------------------------- */

/* Canonical form of path in out: realpath() of an existing file, or of the
 * directory plus the base name for one that does not exist yet. -1 for
 * anything else: "", a dangling symlink (opening it for writing would
 * create its target), a missing directory, a base name "." or "..". */
static int canon(const char *path, char out[PATH_MAX])
{
	struct stat st;
	if (!path || !*path)
		return -1;
	if (realpath(path, out))
		return 0;
	if (errno != ENOENT || lstat(path, &st) == 0)
		return -1;
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
		return -1;
	char dir[PATH_MAX], rdir[PATH_MAX];
	size_t dlen = slash ? (size_t)(slash - path) : 0;
	if (dlen >= sizeof dir)
		return -1;
	if (!slash)
		strcpy(dir, ".");
	else if (dlen == 0)
		strcpy(dir, "/");
	else
		memcpy(dir, path, dlen), dir[dlen] = '\0';
	if (!realpath(dir, rdir))
		return -1;
	int n = snprintf(out, PATH_MAX, "%s/%s", strcmp(rdir, "/") ? rdir : "", base);
	return n > 0 && n < PATH_MAX ? 0 : -1;
}

static void free_list(char **list)
{
	for (size_t i = 0; list && list[i]; i++)
		lt_free(list[i]);
	lt_free(list);
}

/* A NULL-terminated lt_malloc'd copy of src (canonicalised entries when
 * canonical, dropping those that do not resolve). -1 when out of memory. */
static int copy_list(char ***dst, const char *const *src, int canonical)
{
	size_t n = 0, k = 0;
	while (src && src[n])
		n++;
	char **list = lt_calloc(n + 1, sizeof *list);
	if (!list)
		return -1;
	*dst = list;
	for (size_t i = 0; i < n; i++) {
		char buf[PATH_MAX];
		if (canonical && canon(src[i], buf))
			continue;
		if (!(list[k] = lt_strdup(canonical ? buf : src[i])))
			return -1;
		k++;
	}
	return 0;
}

static int listed(char *const *list, const char *path)
{
	for (size_t i = 0; list && list[i]; i++)
		if (!strcmp(list[i], path))
			return 1;
	return 0;
}

static void free_sandbox(struct sandbox *sb)
{
	if (!sb)
		return;
	free_list(sb->read);
	free_list(sb->write);
	free_list(sb->dirs);
	lt_free(sb);
}

/* ---- the public calls ---------------------------------------------------- */

static int sb_panic(lua_State *L)
{
	/* An error outside any pcall: a bug in the caller. Lua aborts next. */
	const char *msg = lua_tostring(L, -1);
	fprintf(stderr, "lathe: unprotected error in the Lua sandbox: %s\n", msg ? msg : "(not a string)");
	return 0;
}

lua_State *lt_sandbox_newstate(const lt_sandbox_cfg *cfg, lt_err *err)
{
	static const lt_sandbox_cfg defaults;
	if (!cfg)
		cfg = &defaults;
	if (cfg->insn_limit < 0 || !(cfg->time_limit >= 0)) {
		lt_err_set(err, LT_EINVAL, "sandbox limits must not be negative");
		return NULL;
	}
	struct sandbox *sb = lt_calloc(1, sizeof *sb);
	if (!sb)
		goto nomem;
	sb->limit = cfg->mem_limit ? cfg->mem_limit : LT_SANDBOX_MEM_LIMIT;
	sb->insn_limit = cfg->insn_limit ? cfg->insn_limit : LT_SANDBOX_INSN_LIMIT;
	sb->time_limit = cfg->time_limit > 0 ? cfg->time_limit : LT_SANDBOX_TIME_LIMIT;
	if (copy_list(&sb->read, cfg->read_paths, 1) || copy_list(&sb->write, cfg->write_paths, 1) ||
	    copy_list(&sb->dirs, cfg->lua_dirs, 0))
		goto nomem;
	lua_State *L = lua_newstate(sb_alloc, sb);
	if (!L) {
		if (sb->hits & LT_SANDBOX_HIT_MEM) {
			lt_err_set(err, LT_ERANGE, "a memory limit of %zu bytes is too small for a Lua state",
				   sb->limit);
			free_sandbox(sb);
			return NULL;
		}
		goto nomem;
	}
	lua_atpanic(L, sb_panic);
	sb->start = lt_seconds();
	arm(L, sb);
	return L;
nomem:
	free_sandbox(sb);
	lt_err_set(err, LT_ENOMEM, "out of memory creating the Lua sandbox");
	return NULL;
}

int lt_sandbox_active(lua_State *L)
{
	return L && sandbox_of(L) != NULL;
}

int lt_sandbox_allows(lua_State *L, const char *path, int write)
{
	struct sandbox *sb = sandbox_of(L);
	char buf[PATH_MAX];
	if (!sb)
		return 1;
	if (canon(path, buf))
		return 0;
	return listed(sb->write, buf) || (!write && listed(sb->read, buf));
}

size_t lt_sandbox_mem_left(lua_State *L)
{
	struct sandbox *sb = sandbox_of(L);
	if (!sb)
		return SIZE_MAX;
	return sb->used < sb->limit ? sb->limit - sb->used : 0;
}

int lt_sandbox_charge(lua_State *L, long n)
{
	struct sandbox *sb = sandbox_of(L);
	return sb && charge(sb, n) ? -1 : 0;
}

const char *lt_sandbox_tripped(lua_State *L)
{
	struct sandbox *sb = sandbox_of(L);
	return sb && sb->tripped[0] ? sb->tripped : NULL;
}

int lt_sandbox_hits(lua_State *L)
{
	struct sandbox *sb = sandbox_of(L);
	return sb ? sb->hits : 0;
}

void lt_sandbox_close(lua_State *L)
{
	if (!L)
		return;
	struct sandbox *sb = sandbox_of(L);
	lua_close(L); /* the allocator still needs sb here */
	free_sandbox(sb);
}

/* ---- base functions ------------------------------------------------------ */

/* A removed function: says why instead of being a nil to call. */
static int sb_stub(lua_State *L)
{
	return luaL_error(L, "%s is not available in the sandbox", lua_tostring(L, lua_upvalueindex(1)));
}

/* Raise unless the string at idx names a file the script may open. */
static void check_path(lua_State *L, const char *fn, int idx, int write)
{
	size_t len;
	const char *path = luaL_checklstring(L, idx, &len);
	if (strlen(path) != len || !lt_sandbox_allows(L, path, write))
		luaL_error(L, "%s: %s: %s is not allowed in the sandbox", fn, path, write ? "writing" : "reading");
}

/* Call upvalue 1 (the original function) with the arguments given; returns
 * all its results. */
static int call_original(lua_State *L)
{
	int n = lua_gettop(L);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, n, LUA_MULTRET);
	return lua_gettop(L);
}

/* load(chunk, name, mode, env) with mode "t". A binary string chunk is an
 * error rather than nil + message, so load(bytecode)() says why it fails. */
static int sb_load(lua_State *L)
{
	int env = lua_gettop(L) >= 4; /* the original tells an absent env from nil */
	if (lua_type(L, 1) == LUA_TSTRING && lua_tostring(L, 1)[0] == LUA_SIGNATURE[0])
		return luaL_error(L, "load: binary chunks are not allowed in the sandbox");
	lua_settop(L, 4);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_pushvalue(L, 1);
	lua_pushvalue(L, 2);
	lua_pushliteral(L, "t");
	if (env)
		lua_pushvalue(L, 4);
	lua_call(L, env ? 4 : 3, LUA_MULTRET);
	return lua_gettop(L) - 4;
}

/* loadfile(name, mode, env): text only, allowed paths or stdin. */
static int sb_loadfile(lua_State *L)
{
	int env = lua_gettop(L) >= 3;
	if (!lua_isnoneornil(L, 1))
		check_path(L, "loadfile", 1, 0);
	lua_settop(L, 3);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_pushvalue(L, 1);
	lua_pushliteral(L, "t");
	if (env)
		lua_pushvalue(L, 3);
	lua_call(L, env ? 3 : 2, LUA_MULTRET);
	return lua_gettop(L) - 3;
}

static int dofile_done(lua_State *L, int status, lua_KContext ctx)
{
	(void)status;
	(void)ctx;
	return lua_gettop(L) - 1;
}

/* dofile(name): text only, allowed paths or stdin. */
static int sb_dofile(lua_State *L)
{
	const char *name = luaL_optstring(L, 1, NULL);
	if (name)
		check_path(L, "dofile", 1, 0);
	lua_settop(L, 1);
	if (luaL_loadfilex(L, name, "t") != LUA_OK)
		return lua_error(L);
	lua_callk(L, 0, LUA_MULTRET, 0, dofile_done);
	return dofile_done(L, LUA_OK, 0);
}

/* setmetatable without __gc: Lua runs finalizers with hooks off, so one
 * that loops would hang the process beyond every limit (during a
 * collection, or in lua_close). A __gc field added to the metatable later
 * has no effect in Lua 5.4, so checking here is enough for the script's own
 * tables; sb_getmetatable covers the metatables C code made. */
int lt_sandbox_setmetatable(lua_State *L)
{
	int t = lua_type(L, 2);
	luaL_checktype(L, 1, LUA_TTABLE);
	luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
	if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
		return luaL_error(L, "cannot change a protected metatable");
	if (t == LUA_TTABLE) {
		lua_pushliteral(L, "__gc");
		if (lua_rawget(L, 2) != LUA_TNIL)
			return luaL_error(L, "finalizers (__gc) are not allowed in the sandbox");
	}
	lua_settop(L, 2);
	lua_setmetatable(L, 1);
	return 1;
}

static const char proxy_key = 0; /* registry: metatable -> read-only stand-in */

static int refuse_write(lua_State *L)
{
	return luaL_error(L, "this metatable has a finalizer and is read-only in the sandbox");
}

/* getmetatable that hands out a read-only stand-in (a userdata whose reads
 * go through to the real one) for a metatable with __gc, i.e. lathe's
 * userdata and the io library's files: replacing their __gc would run
 * script code with hooks off. The same metatable always gives the same
 * stand-in. */
static int sb_getmetatable(lua_State *L)
{
	luaL_checkany(L, 1);
	if (!lua_getmetatable(L, 1)) {
		lua_pushnil(L);
		return 1;
	}
	if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
		return 1;
	lua_pushliteral(L, "__gc");
	if (lua_rawget(L, -2) == LUA_TNIL) {
		lua_pop(L, 1);
		return 1;
	}
	lua_pop(L, 1);
	int mt = lua_gettop(L);
	if (lua_rawgetp(L, LUA_REGISTRYINDEX, &proxy_key) != LUA_TTABLE) {
		lua_pop(L, 1);
		lua_newtable(L);
		lua_createtable(L, 0, 1);
		lua_pushliteral(L, "k");
		lua_setfield(L, -2, "__mode");
		lua_setmetatable(L, -2);
		lua_pushvalue(L, -1);
		lua_rawsetp(L, LUA_REGISTRYINDEX, &proxy_key);
	}
	int cache = lua_gettop(L);
	lua_pushvalue(L, mt);
	if (lua_rawget(L, cache) == LUA_TUSERDATA)
		return 1;
	lua_pop(L, 1);
	lua_newuserdatauv(L, 0, 0); /* not a table: rawset cannot write to it either */
	lua_createtable(L, 0, 3);
	lua_pushvalue(L, mt);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, refuse_write);
	lua_setfield(L, -2, "__newindex");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, -2);
	lua_pushvalue(L, mt);
	lua_pushvalue(L, -2);
	lua_rawset(L, cache);
	return 1;
}

/* ---- threads and message handlers -------------------------------------------
 *
 * Lua turns hooks off while a hook runs and turns them back on when it
 * returns, or when a pcall catches what it raised. Two kinds of script code
 * can run in between: the message handler of an xpcall, which Lua calls
 * while raising the hook's error, and the __close methods of a coroutine
 * that the hook's error killed (hooks stay off in a dead thread), run by
 * coroutine.close or by wrap's cleanup. Both would run unmetered, so once a
 * limit has stopped the script they are not run at all. */

/* The script's message handler (upvalue 1), skipped once stopped. */
static int guarded_handler(lua_State *L)
{
	struct sandbox *sb = sandbox_of(L);
	if (sb && stopped(sb))
		return 1; /* the error as it is */
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, 1);
	return 1;
}

/* Results of sb_xpcall, directly or as its continuation after a yield:
 * true and the function's results (above index base), or false and the
 * error. */
static int xpcall_finish(lua_State *L, int status, lua_KContext base)
{
	if (status == LUA_OK || status == LUA_YIELD)
		return lua_gettop(L) - (int)base;
	lua_pushboolean(L, 0);
	lua_insert(L, -2);
	return 2;
}

/* xpcall(f, msgh, ...) with msgh guarded; yields inside f still work. */
static int sb_xpcall(lua_State *L)
{
	int n = lua_gettop(L);
	luaL_checktype(L, 2, LUA_TFUNCTION);
	lua_pushvalue(L, 2);
	lua_pushcclosure(L, guarded_handler, 1);
	lua_replace(L, 2);
	lua_pushboolean(L, 1);
	lua_pushvalue(L, 1);
	lua_rotate(L, 3, 2); /* f, handler, true, f, args... */
	int st = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, xpcall_finish);
	return xpcall_finish(L, st, 2);
}

/* A new thread running the function at index 1, its hook armed (Lua 5.4
 * copies the creator's hook, but arming here does not depend on it). */
static lua_State *new_thread(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TFUNCTION);
	lua_State *co = lua_newthread(L);
	lua_pushvalue(L, 1);
	lua_xmove(L, co, 1);
	struct sandbox *sb = sandbox_of(L);
	if (sb)
		arm(co, sb);
	return co;
}

static int sb_cocreate(lua_State *L)
{
	new_thread(L);
	return 1;
}

/* The function coroutine.wrap returns: resume upvalue 1 with the
 * arguments; on an error close the thread's to-be-closed variables (unless
 * stopped, see above) and raise it here. */
static int sb_cowrapped(lua_State *L)
{
	lua_State *co = lua_tothread(L, lua_upvalueindex(1));
	int n = lua_gettop(L), nres;
	if (!lua_checkstack(co, n))
		return luaL_error(L, "too many arguments to resume");
	lua_xmove(L, co, n);
	int st = lua_resume(co, L, n, &nres);
	if (st == LUA_OK || st == LUA_YIELD) {
		if (!lua_checkstack(L, nres + 1)) {
			lua_pop(co, nres);
			return luaL_error(L, "too many results to resume");
		}
		lua_xmove(co, L, nres);
		return nres;
	}
	lua_xmove(co, L, 1);
	struct sandbox *sb = sandbox_of(L);
	st = lua_status(co);
	if (sb && stopped(sb))
		arm(L, sb);
	else if (st != LUA_OK && st != LUA_YIELD) {
		st = lua_resetthread(co); /* its error, or one from a __close */
		lua_xmove(co, L, 1);
	}
	if (st != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
		luaL_where(L, 1);
		lua_insert(L, -2);
		lua_concat(L, 2);
	}
	return lua_error(L);
}

static int sb_cowrap(lua_State *L)
{
	new_thread(L);
	lua_pushcclosure(L, sb_cowrapped, 1);
	return 1;
}

/* coroutine.resume: once a limit stopped the script (in the coroutine,
 * say), the resumer stops at its next instruction too. */
static int sb_coresume(lua_State *L)
{
	int n = call_original(L);
	struct sandbox *sb = sandbox_of(L);
	if (sb && stopped(sb))
		arm(L, sb);
	return n;
}

/* coroutine.close, refused once stopped (see above). */
static int sb_coclose(lua_State *L)
{
	tick(L, 0);
	return call_original(L);
}

/* ---- io ------------------------------------------------------------------- */

static int mode_ok(const char *m)
{
	if (!*m || !strchr("rwa", *m++))
		return 0;
	if (*m == '+')
		m++;
	return strspn(m, "b") == strlen(m);
}

static int sb_io_open(lua_State *L)
{
	luaL_checkstring(L, 1);
	const char *mode = luaL_optstring(L, 2, "r");
	luaL_argcheck(L, mode_ok(mode), 2, "invalid mode");
	check_path(L, "io.open", 1, strpbrk(mode, "wa+") != NULL);
	return call_original(L);
}

static int sb_io_lines(lua_State *L)
{
	if (!lua_isnoneornil(L, 1))
		check_path(L, "io.lines", 1, 0);
	return call_original(L);
}

static int sb_io_input(lua_State *L)
{
	if (lua_type(L, 1) == LUA_TSTRING)
		check_path(L, "io.input", 1, 0);
	return call_original(L);
}

static int sb_io_output(lua_State *L)
{
	if (lua_type(L, 1) == LUA_TSTRING)
		check_path(L, "io.output", 1, 1);
	return call_original(L);
}

/* Files other than stdout and stderr get at most LT_SANDBOX_WRITE_LIMIT
 * bytes from the script's writes, so that a loop cannot fill the disk
 * through an allowed path before the time limit. */

static size_t write_size(lua_State *L, int first)
{
	size_t total = 0;
	for (int i = first; i <= lua_gettop(L); i++) {
		size_t len = 0;
		if (lua_type(L, i) == LUA_TSTRING)
			lua_tolstring(L, i, &len);
		else if (lua_type(L, i) == LUA_TNUMBER)
			len = 32; /* at least its formatted length */
		total += len;
	}
	return total;
}

/* 1 for stdout, stderr, and anything that is not a file (the original
 * method raises then). */
static int std_stream(lua_State *L, int idx)
{
	luaL_Stream *p = luaL_testudata(L, idx, LUA_FILEHANDLE);
	return !p || p->f == stdout || p->f == stderr;
}

static void charge_write(lua_State *L, size_t n)
{
	struct sandbox *sb = sandbox_of(L);
	if (!sb)
		return;
	if (n > LT_SANDBOX_WRITE_LIMIT - sb->written)
		luaL_error(L, "write: more than %d MiB written to files (sandbox limit)",
			   (int)(LT_SANDBOX_WRITE_LIMIT >> 20));
	sb->written += n;
}

/* file:write(...) */
static int sb_file_write(lua_State *L)
{
	if (!std_stream(L, 1))
		charge_write(L, write_size(L, 2));
	return call_original(L);
}

/* io.write(...), to the default output (upvalue 2: the original io.output) */
static int sb_io_write(lua_State *L)
{
	lua_pushvalue(L, lua_upvalueindex(2));
	lua_call(L, 0, 1);
	int std = std_stream(L, -1);
	lua_pop(L, 1);
	if (!std)
		charge_write(L, write_size(L, 1));
	return call_original(L);
}

/* ---- string --------------------------------------------------------------- */

enum { PAT_FIND, PAT_MATCH, PAT_GMATCH, PAT_GSUB };

/* Does %cl (cl a letter for a class, else a literal) match byte c? */
static int escape_has(int cl, int c)
{
	int r;
	switch (tolower(cl)) {
	case 'a': r = isalpha(c); break;
	case 'c': r = iscntrl(c); break;
	case 'd': r = isdigit(c); break;
	case 'g': r = isgraph(c); break;
	case 'l': r = islower(c); break;
	case 'p': r = ispunct(c); break;
	case 's': r = isspace(c); break;
	case 'u': r = isupper(c); break;
	case 'w': r = isalnum(c); break;
	case 'x': r = isxdigit(c); break;
	default: return cl == c;
	}
	return isupper(cl) ? !r : r != 0;
}

/* Does the single-character class p[0..len) ('.', "%a", "[^,]", 'x')
 * match byte c? */
static int class_has(const char *p, size_t len, int c)
{
	if (p[0] == '.' && len == 1)
		return 1;
	if (p[0] == '%')
		return escape_has((unsigned char)p[1], c);
	if (p[0] != '[')
		return (unsigned char)p[0] == c;
	const char *q = p + 1, *end = p + len - 1; /* end: the closing ']' */
	int neg = q < end && *q == '^', found = 0;
	q += neg;
	while (q < end) {
		if (*q == '%' && q + 1 < end) {
			found |= escape_has((unsigned char)q[1], c);
			q += 2;
		} else if (q + 2 < end && q[1] == '-') {
			found |= (unsigned char)q[0] <= c && c <= (unsigned char)q[2];
			q += 3;
		} else {
			found |= (unsigned char)*q++ == c;
		}
	}
	return neg ? !found : found;
}

/* End of the single-character class at p, or NULL when malformed. */
static const char *class_end(const char *p, const char *end)
{
	if (*p == '%')
		return p + 1 < end ? p + 2 : NULL;
	if (*p != '[')
		return p + 1;
	const char *q = p + 1;
	if (q < end && *q == '^')
		q++;
	for (;;) { /* the first character is always in the set, even ']' */
		if (q >= end)
			return NULL;
		if (*q++ == '%' && q++ >= end)
			return NULL;
		if (q >= end)
			return NULL;
		if (*q == ']')
			return q + 1;
	}
}

struct runs {
	const char *cls[8];
	size_t len[8];
	double run[8];
	int n;
};

/* Longest stretch of consecutive subject bytes in the class (cached per
 * class text, as patterns often repeat "%s*"). Adds n to *work. */
static double longest_run(struct runs *rc, const unsigned char *s, size_t n, const char *cls, size_t len,
			  double *work)
{
	for (int i = 0; i < rc->n; i++)
		if (rc->len[i] == len && !memcmp(rc->cls[i], cls, len))
			return rc->run[i];
	unsigned char in[256];
	for (int c = 0; c < 256; c++)
		in[c] = (unsigned char)class_has(cls, len, c);
	size_t best = 0, cur = 0;
	for (size_t i = 0; i < n; i++) {
		cur = in[s[i]] ? cur + 1 : 0;
		if (cur > best)
			best = cur;
	}
	*work += (double)n;
	if (rc->n < 8) {
		rc->cls[rc->n] = cls;
		rc->len[rc->n] = len;
		rc->run[rc->n++] = (double)best;
	}
	return (double)best;
}

/* An upper bound of the steps Lua's matcher can take for pattern p on
 * subject s. The matcher backtracks: each item with '*', '+' or '-' tries
 * up to (run + 1) lengths, where run is the longest stretch of the subject
 * in its class, and '?' tries 2; so item i is reached at most (product of
 * the earlier items' choices) times per start, and costs its own scan
 * each time. Unanchored calls start at every position (gsub and gmatch up
 * to twice, for empty matches). %b and back-references scan up to the
 * whole subject. Stops early (returns HUGE_VAL) once past the budget. */
static double pattern_cost(const char *subject, size_t n, const char *p, size_t m, int kind, int plain)
{
	const unsigned char *s = (const unsigned char *)subject;
	const char *end = p + m;
	double dn = (double)n, budget = LT_SANDBOX_PATTERN_BUDGET;
	double starts = kind == PAT_GMATCH || kind == PAT_GSUB ? 2 * (dn + 1) : dn + 1;
	if (plain)
		return starts * (double)(m + 1);
	/* gmatch takes '^' literally (it would stop the iteration) */
	if (kind != PAT_GMATCH && p < end && *p == '^')
		starts = 1, p++;
	double reach = 1, work = 0, scan = 0;
	struct runs rc = {.n = 0};
	while (p < end) {
		const char *ep;
		double cost = 1, choices = 1;
		if (*p == '(' || *p == ')' || (*p == '$' && p + 1 == end)) {
			ep = p + 1;
		} else if (*p == '%' && p + 1 < end && p[1] == 'b') {
			if (end - p < 4)
				break; /* malformed: Lua raises when it gets here */
			ep = p + 4;
			cost = dn + 1;
		} else if (*p == '%' && p + 1 < end && p[1] == 'f') {
			if (p + 2 >= end || p[2] != '[' || !(ep = class_end(p + 2, end)))
				break;
			cost = (double)(ep - p);
		} else if (*p == '%' && p + 1 < end && isdigit((unsigned char)p[1])) {
			ep = p + 2;
			cost = dn + 1;
		} else {
			if (!(ep = class_end(p, end)))
				break;
			double width = (double)(ep - p); /* a bracket class is tested item by item */
			cost = width;
			if (ep < end && strchr("*+-?", *ep)) {
				if (*ep == '?') {
					choices = 2;
				} else {
					double run = longest_run(&rc, s, n, p, (size_t)(ep - p), &scan);
					choices = run + 1;
					cost = width * (run + 1);
				}
				ep++;
			}
		}
		work += reach * cost;
		reach *= choices;
		p = ep;
		if (starts * (work + reach) + scan > budget)
			return HUGE_VAL;
	}
	return starts * (work + reach) + scan;
}

/* find, match, gmatch and gsub (upvalue 2 says which): refuse a call whose
 * worst case is beyond the budget, since the hook cannot stop the matcher,
 * and look at the clock before and after. Upvalue 1: the original. */
static int sb_pattern(lua_State *L)
{
	int kind = (int)lua_tointeger(L, lua_upvalueindex(2));
	size_t n, m;
	const char *s = luaL_checklstring(L, 1, &n);
	const char *p = luaL_checklstring(L, 2, &m);
	int plain = kind == PAT_FIND && lua_toboolean(L, 4);
	if (pattern_cost(s, n, p, m, kind, plain) > LT_SANDBOX_PATTERN_BUDGET)
		return luaL_error(L, "pattern too complex for a subject of %I bytes (sandbox limit)", (lua_Integer)n);
	tick(L, 0);
	int nres = call_original(L);
	tick(L, 0);
	return nres;
}

/* string.rep with an empty result returns at once: Lua 5.4 would loop n
 * times copying nothing (string.rep("", 2^62)). Other sizes are bounded
 * by the memory limit. */
static int sb_rep(lua_State *L)
{
	size_t l, lsep;
	luaL_checklstring(L, 1, &l);
	lua_Integer n = luaL_checkinteger(L, 2);
	luaL_optlstring(L, 3, "", &lsep);
	if (n <= 0 || (l == 0 && (lsep == 0 || n == 1))) {
		lua_pushliteral(L, "");
		return 1;
	}
	return call_original(L);
}

/* ---- table ---------------------------------------------------------------- */

/* The table functions of Lua 5.4 loop in C over a length that can be made
 * huge cheaply (a __len metamethod, or a border of a sparse table such as
 * {[1]=1, [2]=1, [4]=1, ..., [2^40]=1}), so these versions charge their
 * element count to the instruction limit before they start, look at the
 * clock while they run, and read the length once. */

enum { TAB_R = 1, TAB_W = 2, TAB_L = 4 };

static int has_metafield(lua_State *L, const char *name)
{
	lua_pushstring(L, name);
	int t = lua_rawget(L, -2);
	lua_pop(L, 1);
	return t != LUA_TNIL;
}

/* A table, or a value whose metatable provides what the call needs. */
static void check_tab(lua_State *L, int idx, int need)
{
	if (lua_type(L, idx) == LUA_TTABLE)
		return;
	int ok = lua_getmetatable(L, idx);
	if (ok) {
		ok = (!(need & TAB_R) || has_metafield(L, "__index")) &&
		     (!(need & TAB_W) || has_metafield(L, "__newindex")) &&
		     (!(need & TAB_L) || has_metafield(L, "__len"));
		lua_pop(L, 1);
	}
	if (!ok)
		luaL_checktype(L, idx, LUA_TTABLE);
}

/* Look at the clock every 64Ki elements. */
static void pace(lua_State *L, lua_Unsigned i)
{
	if ((i & 0xFFFF) == 0xFFFF)
		tick(L, 0);
}

static int sb_tinsert(lua_State *L)
{
	check_tab(L, 1, TAB_R | TAB_W | TAB_L);
	lua_Integer e = (lua_Integer)((lua_Unsigned)luaL_len(L, 1) + 1u); /* first empty slot */
	lua_Integer pos;
	switch (lua_gettop(L)) {
	case 2:
		pos = e;
		break;
	case 3:
		pos = luaL_checkinteger(L, 2);
		luaL_argcheck(L, (lua_Unsigned)pos - 1u < (lua_Unsigned)e, 2, "position out of bounds");
		tick(L, count_of((lua_Unsigned)e - (lua_Unsigned)pos));
		for (lua_Integer i = e; i > pos; i--) { /* shift up */
			lua_geti(L, 1, i - 1);
			lua_seti(L, 1, i);
			pace(L, (lua_Unsigned)i);
		}
		break;
	default:
		return luaL_error(L, "wrong number of arguments to 'insert'");
	}
	lua_seti(L, 1, pos); /* the value is on top */
	return 0;
}

static int sb_tremove(lua_State *L)
{
	check_tab(L, 1, TAB_R | TAB_W | TAB_L);
	lua_Integer size = luaL_len(L, 1);
	lua_Integer pos = luaL_optinteger(L, 2, size);
	if (pos != size) /* an explicit position must be in [1, size + 1] */
		luaL_argcheck(L, (lua_Unsigned)pos - 1u <= (lua_Unsigned)size, 2, "position out of bounds");
	if (pos < size)
		tick(L, count_of((lua_Unsigned)size - (lua_Unsigned)pos));
	lua_geti(L, 1, pos);
	for (; pos < size; pos++) { /* shift down */
		lua_geti(L, 1, pos + 1);
		lua_seti(L, 1, pos);
		pace(L, (lua_Unsigned)pos);
	}
	lua_pushnil(L);
	lua_seti(L, 1, pos);
	return 1;
}

static int sb_tmove(lua_State *L)
{
	lua_Integer f = luaL_checkinteger(L, 2);
	lua_Integer e = luaL_checkinteger(L, 3);
	lua_Integer t = luaL_checkinteger(L, 4);
	int dst = lua_isnoneornil(L, 5) ? 1 : 5;
	check_tab(L, 1, TAB_R);
	check_tab(L, dst, TAB_W);
	if (e >= f) {
		luaL_argcheck(L, f > 0 || e < LUA_MAXINTEGER + f, 3, "too many elements to move");
		lua_Integer n = e - f; /* one less than the count */
		luaL_argcheck(L, t <= LUA_MAXINTEGER - n, 4, "destination wrap around");
		tick(L, count_of((lua_Unsigned)n + 1u));
		/* Overlapping ranges in one table go backwards. */
		int backward = t > f && t <= e && (dst == 1 || lua_compare(L, 1, dst, LUA_OPEQ));
		for (lua_Integer i = 0; i <= n; i++) {
			lua_Integer k = backward ? n - i : i;
			lua_geti(L, 1, f + k);
			lua_seti(L, dst, t + k);
			pace(L, (lua_Unsigned)i);
		}
	}
	lua_pushvalue(L, dst);
	return 1;
}

static int sb_tconcat(lua_State *L)
{
	size_t lsep;
	check_tab(L, 1, TAB_R | TAB_L);
	const char *sep = luaL_optlstring(L, 2, "", &lsep);
	lua_Integer i = luaL_optinteger(L, 3, 1);
	lua_Integer last = lua_isnoneornil(L, 4) ? luaL_len(L, 1) : luaL_checkinteger(L, 4);
	luaL_Buffer b;
	if (i <= last)
		tick(L, count_of((lua_Unsigned)last - (lua_Unsigned)i + 1u));
	luaL_buffinit(L, &b);
	for (; i <= last; i++) {
		lua_geti(L, 1, i);
		if (!lua_isstring(L, -1))
			return luaL_error(L, "invalid value (at index %I) in table for 'concat'", i);
		luaL_addvalue(&b);
		if (i == last)
			break; /* also keeps i + 1 from overflowing */
		luaL_addlstring(&b, sep, lsep);
		pace(L, (lua_Unsigned)i);
	}
	luaL_pushresult(&b);
	return 1;
}

/* t[a] < t[b], by the comparator at index 2 or by '<'. */
static int sort_less(lua_State *L, int cmp, lua_Integer a, lua_Integer b)
{
	int r;
	if (cmp) {
		lua_pushvalue(L, 2);
		lua_geti(L, 1, a);
		lua_geti(L, 1, b);
		lua_call(L, 2, 1);
		r = lua_toboolean(L, -1);
		lua_pop(L, 1);
	} else {
		lua_geti(L, 1, a);
		lua_geti(L, 1, b);
		r = lua_compare(L, -2, -1, LUA_OPLT);
		lua_pop(L, 2);
	}
	return r;
}

static void sort_swap(lua_State *L, lua_Integer a, lua_Integer b)
{
	lua_geti(L, 1, a);
	lua_geti(L, 1, b);
	lua_seti(L, 1, a);
	lua_seti(L, 1, b);
}

/* Move t[root] down the max-heap t[1..n]. */
static void sift_down(lua_State *L, int cmp, lua_Integer root, lua_Integer n, lua_Unsigned *steps)
{
	for (;;) {
		lua_Integer child = 2 * root;
		if (child > n)
			return;
		if (child < n && sort_less(L, cmp, child, child + 1))
			child++;
		if (!sort_less(L, cmp, root, child))
			return;
		sort_swap(L, root, child);
		root = child;
		pace(L, ++*steps);
	}
}

/* A heapsort: O(n log n) comparisons whatever the input, so its cost can be
 * charged up front. Like Lua's sort it is not stable. */
static int sb_tsort(lua_State *L)
{
	check_tab(L, 1, TAB_R | TAB_W | TAB_L);
	lua_Integer n = luaL_len(L, 1);
	if (n > 1) {
		luaL_argcheck(L, n < INT_MAX, 1, "array too big");
		int cmp = !lua_isnoneornil(L, 2);
		if (cmp)
			luaL_checktype(L, 2, LUA_TFUNCTION);
		lua_settop(L, 2);
		tick(L, (long long)((double)n * (2 * log2((double)n) + 2)));
		lua_Unsigned steps = 0;
		for (lua_Integer i = n / 2; i >= 1; i--)
			sift_down(L, cmp, i, n, &steps);
		for (lua_Integer last = n; last > 1; last--) {
			sort_swap(L, 1, last);
			sift_down(L, cmp, 1, last - 1, &steps);
		}
	}
	return 0;
}

/* ---- package -------------------------------------------------------------- */

/* Module names: dot-separated words of letters, digits, '_' and '-'. */
static int module_name_ok(const char *name, size_t len)
{
	if (len == 0 || strlen(name) != len || name[0] == '.' || name[len - 1] == '.' || strstr(name, ".."))
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("_-.", name[i]))
			return 0;
	return 1;
}

/* The searcher for `require`: DIR/NAME.lua in the configured directories,
 * text only. Returns the loader and the file name, or a message. */
static int sb_searcher(lua_State *L)
{
	struct sandbox *sb = sandbox_of(L);
	size_t len;
	const char *name = luaL_checklstring(L, 1, &len);
	if (!module_name_ok(name, len)) {
		lua_pushfstring(L, "no module '%s' in the sandbox (not a plain module name)", name);
		return 1;
	}
	const char *rel = luaL_gsub(L, name, ".", "/"); /* index 2 */
	luaL_Buffer msg;
	luaL_buffinit(L, &msg);
	for (size_t i = 0; sb && sb->dirs[i]; i++) {
		const char *path = lua_pushfstring(L, "%s/%s.lua", sb->dirs[i], rel);
		FILE *f = fopen(path, "r");
		if (f) {
			fclose(f);
			if (luaL_loadfilex(L, path, "t") != LUA_OK)
				return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, path,
						  lua_tostring(L, -1));
			lua_insert(L, -2); /* loader, file name */
			return 2;
		}
		lua_pushfstring(L, "%sno file '%s'", i ? "\n\t" : "", path);
		lua_remove(L, -2);
		luaL_addvalue(&msg);
	}
	if (!sb || !sb->dirs[0])
		luaL_addstring(&msg, "no Lua directories in the sandbox");
	luaL_pushresult(&msg);
	return 1;
}

/* ---- restrict --------------------------------------------------------------- */

/* t[name] = closure of fn over the current t[name] (and up extra
 * upvalues already pushed), if t[name] is a function. */
static void wrap_field(lua_State *L, int t, const char *name, lua_CFunction fn, int extra)
{
	if (lua_getfield(L, t, name) != LUA_TFUNCTION) {
		lua_pop(L, 1 + extra);
		return;
	}
	if (extra)
		lua_insert(L, -1 - extra); /* the original goes first */
	lua_pushcclosure(L, fn, 1 + extra);
	lua_setfield(L, t, name);
}

static void stub_field(lua_State *L, int t, const char *lib, const char *name)
{
	lua_pushfstring(L, "%s%s%s", lib, *lib ? "." : "", name);
	lua_pushcclosure(L, sb_stub, 1);
	lua_setfield(L, t, name);
}

static int in_list(const char *name, const char *const *list)
{
	for (; *list; list++)
		if (!strcmp(name, *list))
			return 1;
	return 0;
}

/* Replace every function of the library table at t that is not in keep by
 * a stub (also those a later Lua adds). */
static void stub_others(lua_State *L, int t, const char *lib, const char *const *keep)
{
	lua_pushnil(L);
	while (lua_next(L, t)) {
		int is_fn = lua_type(L, -1) == LUA_TFUNCTION;
		lua_pop(L, 1);
		if (is_fn && lua_type(L, -1) == LUA_TSTRING && !in_list(lua_tostring(L, -1), keep))
			stub_field(L, t, lib, lua_tostring(L, -1)); /* changing an existing field is allowed */
	}
}

/* Push the global library table name, or return 0 (nothing pushed). */
static int get_lib(lua_State *L, const char *name)
{
	if (lua_getglobal(L, name) == LUA_TTABLE)
		return lua_gettop(L);
	lua_pop(L, 1);
	return 0;
}

static void restrict_base(lua_State *L)
{
	lua_pushglobaltable(L);
	int g = lua_gettop(L);
	wrap_field(L, g, "load", sb_load, 0);
	wrap_field(L, g, "loadfile", sb_loadfile, 0);
	lua_pushcfunction(L, sb_dofile);
	lua_setfield(L, g, "dofile");
	lua_pushcfunction(L, sb_xpcall);
	lua_setfield(L, g, "xpcall");
	lua_pushcfunction(L, lt_sandbox_setmetatable);
	lua_setfield(L, g, "setmetatable");
	lua_pushcfunction(L, sb_getmetatable);
	lua_setfield(L, g, "getmetatable");
	lua_pushnil(L);
	lua_setfield(L, g, LUA_DBLIBNAME);
	lua_pop(L, 1);
}

static void restrict_string(lua_State *L)
{
	static const char *const names[] = {"find", "match", "gmatch", "gsub"};
	int t = get_lib(L, LUA_STRLIBNAME);
	if (!t)
		return;
	stub_field(L, t, LUA_STRLIBNAME, "dump");
	for (int k = PAT_FIND; k <= PAT_GSUB; k++) {
		lua_pushinteger(L, k);
		wrap_field(L, t, names[k], sb_pattern, 1);
	}
	wrap_field(L, t, "rep", sb_rep, 0);
	lua_pop(L, 1);
}

static void restrict_table(lua_State *L)
{
	static const luaL_Reg fns[] = {
		{"insert", sb_tinsert}, {"remove", sb_tremove}, {"move", sb_tmove},
		{"concat", sb_tconcat}, {"sort", sb_tsort}, {NULL, NULL},
	};
	int t = get_lib(L, LUA_TABLIBNAME);
	if (!t)
		return;
	luaL_setfuncs(L, fns, 0);
	lua_pop(L, 1);
}

static void restrict_coroutine(lua_State *L)
{
	int t = get_lib(L, LUA_COLIBNAME);
	if (!t)
		return;
	lua_pushcfunction(L, sb_cocreate);
	lua_setfield(L, t, "create");
	lua_pushcfunction(L, sb_cowrap);
	lua_setfield(L, t, "wrap");
	wrap_field(L, t, "resume", sb_coresume, 0);
	wrap_field(L, t, "close", sb_coclose, 0);
	lua_pop(L, 1);
}

static void restrict_os(lua_State *L)
{
	static const char *const keep[] = {"clock", "time", "date", "difftime", NULL};
	int t = get_lib(L, LUA_OSLIBNAME);
	if (!t)
		return;
	stub_others(L, t, LUA_OSLIBNAME, keep);
	lua_pop(L, 1);
}

static void restrict_io(lua_State *L)
{
	static const char *const keep[] = {"write", "read", "close", "type", "open", "lines", "input", "output", NULL};
	int t = get_lib(L, LUA_IOLIBNAME);
	if (!t)
		return;
	stub_others(L, t, LUA_IOLIBNAME, keep);
	lua_getfield(L, t, "output"); /* the original, for sb_io_write */
	wrap_field(L, t, "write", sb_io_write, 1);
	wrap_field(L, t, "open", sb_io_open, 0);
	wrap_field(L, t, "lines", sb_io_lines, 0);
	wrap_field(L, t, "input", sb_io_input, 0);
	wrap_field(L, t, "output", sb_io_output, 0);
	if (luaL_getmetatable(L, LUA_FILEHANDLE) == LUA_TTABLE &&
	    lua_getfield(L, -1, "__index") == LUA_TTABLE)
		wrap_field(L, lua_gettop(L), "write", sb_file_write, 0);
	lua_settop(L, t - 1);
}

static void restrict_package(lua_State *L)
{
	int t = get_lib(L, LUA_LOADLIBNAME);
	if (!t)
		return;
	stub_field(L, t, LUA_LOADLIBNAME, "loadlib");
	stub_field(L, t, LUA_LOADLIBNAME, "searchpath");
	lua_pushliteral(L, "");
	lua_setfield(L, t, "path");
	lua_pushliteral(L, "");
	lua_setfield(L, t, "cpath");
	lua_createtable(L, 2, 0);
	if (lua_getfield(L, t, "searchers") == LUA_TTABLE && lua_rawgeti(L, -1, 1) == LUA_TFUNCTION) {
		lua_rawseti(L, -3, 1); /* the preload searcher */
		lua_pop(L, 1);
		lua_pushcfunction(L, sb_searcher);
		lua_rawseti(L, -2, 2);
	} else {
		lua_settop(L, t + 1);
		lua_pushcfunction(L, sb_searcher);
		lua_rawseti(L, -2, 1);
	}
	lua_setfield(L, t, "searchers");
	if (lua_getfield(L, t, "loaded") == LUA_TTABLE) {
		lua_pushnil(L);
		lua_setfield(L, -2, LUA_DBLIBNAME);
	}
	lua_settop(L, t - 1);
}

void lt_sandbox_guard_libs(lua_State *L)
{
	restrict_string(L);
	restrict_table(L);
}

static int restrict_body(lua_State *L)
{
	lua_settop(L, 0);
	restrict_base(L);
	lt_sandbox_guard_libs(L);
	restrict_coroutine(L);
	restrict_os(L);
	restrict_io(L);
	restrict_package(L);
	return 0;
}

int lt_sandbox_restrict(lua_State *L, lt_err *err)
{
	struct sandbox *sb = L ? sandbox_of(L) : NULL;
	if (!sb)
		return lt_err_set(err, LT_EINVAL, "not a sandboxed Lua state");
	if (sb->restricted)
		return 0;
	int top = lua_gettop(L);
	lua_pushcfunction(L, restrict_body);
	int st = lua_pcall(L, 0, 0, 0);
	if (st != LUA_OK) {
		const char *msg = lua_tostring(L, -1);
		int code = st == LUA_ERRMEM ? LT_ENOMEM : LT_EINVAL;
		lt_err_set(err, code, "cannot set up the Lua sandbox: %s", msg ? msg : "unknown error");
		lua_settop(L, top);
		return code;
	}
	sb->restricted = 1;
	return 0;
}
