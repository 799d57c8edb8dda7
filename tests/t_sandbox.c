/* The recipe sandbox: hostile chunks end in a clean error (limits, escapes,
 * binary chunks, finalizers), files outside the allowed set stay untouched,
 * ordinary Lua still works, path canonicalisation refuses ../ and symlink
 * tricks, and allocation failures are handled. */
#include <dirent.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/mem.h"
#include "lbind/arch.h"
#include "lbind/lathe.h"
#include "lbind/sandbox.h"
#include "tap.h"

/* Seconds any one hostile chunk may take (valgrind and ASan included). */
#define SLOW 60.0

static char tmpdir[4096];
static char p_data[4200], p_script[4200], p_bin[4200], p_out[4200], p_out2[4200], p_out3[4200];
static char p_lib[4200], p_sentinel[4200];

static const char *tmp(const char *name)
{
	static char path[4][4200];
	static int k;
	k = (k + 1) % 4;
	snprintf(path[k], sizeof path[k], "%s/%s", tmpdir, name);
	return path[k];
}

static void spit(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(text, 1, len, f) != len || fclose(f)) {
		perror(path);
		exit(99);
	}
}

static void spits(const char *path, const char *text)
{
	spit(path, text, strlen(text));
}

/* Whole file (static buffer), or "" if missing. */
static const char *slurp(const char *path)
{
	static char buf[4096];
	FILE *f = fopen(path, "rb");
	size_t n = 0;
	if (f) {
		n = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	return buf;
}

static int exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	int n = 0;
	struct dirent *e;
	while (d && (e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	if (d)
		closedir(d);
	return n;
}

static const char *read_paths[4], *write_paths[4], *lua_dirs[2];

static lt_sandbox_cfg test_cfg(void)
{
	read_paths[0] = p_data;
	read_paths[1] = p_script;
	read_paths[2] = p_bin;
	write_paths[0] = p_out;
	write_paths[1] = p_out2;
	write_paths[2] = p_out3;
	lua_dirs[0] = p_lib;
	return (lt_sandbox_cfg){
		.mem_limit = (size_t)32 << 20,
		.insn_limit = 20000000L,
		.time_limit = 120,
		.read_paths = read_paths,
		.write_paths = write_paths,
		.lua_dirs = lua_dirs,
	};
}

static int setup_body(lua_State *L)
{
	luaL_openlibs(L);
	luaL_requiref(L, "lathe", luaopen_lathe, 1);
	return 0;
}

static int set_globals(lua_State *L)
{
	const char *names[] = {"TMP", "READ", "SCRIPT", "BIN", "WRITE", "WRITE2", "WRITE3", "SENTINEL"};
	const char *vals[] = {tmpdir, p_data, p_script, p_bin, p_out, p_out2, p_out3, p_sentinel};
	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		lua_pushstring(L, vals[i]);
		lua_setglobal(L, names[i]);
	}
	char code[1024];
	FILE *f = fopen(p_bin, "rb");
	size_t n = f ? fread(code, 1, sizeof code, f) : 0;
	if (f)
		fclose(f);
	lua_pushlstring(L, code, n);
	lua_setglobal(L, "BYTECODE");
	return 0;
}

/* A restricted state as `lathe run --sandbox` makes it; exits on failure. */
static lua_State *open_sb(const lt_sandbox_cfg *cfg)
{
	lt_err err = {0};
	lua_State *L = lt_sandbox_newstate(cfg, &err);
	if (!L) {
		printf("Bail out! lt_sandbox_newstate: %s\n", err.msg);
		exit(99);
	}
	lua_pushcfunction(L, setup_body);
	int st = lua_pcall(L, 0, 0, 0);
	if (st == LUA_OK && !lt_sandbox_restrict(L, &err)) {
		lua_pushcfunction(L, set_globals);
		st = lua_pcall(L, 0, 0, 0);
	}
	if (st != LUA_OK || err.code) {
		printf("Bail out! sandbox setup: %s\n", err.msg);
		exit(99);
	}
	return L;
}

/* Run chunk as "t.lua"; the error message (or "") goes to msg. */
static int run(lua_State *L, const char *chunk, char *msg, size_t size)
{
	int st = luaL_loadbufferx(L, chunk, strlen(chunk), "=t.lua", "t");
	if (st == LUA_OK)
		st = lua_pcall(L, 0, 0, 0);
	snprintf(msg, size, "%s", st == LUA_OK ? "" : lua_tostring(L, -1) ? lua_tostring(L, -1) : "(not a string)");
	lua_settop(L, 0);
	return st;
}

/* Does msg contain one of the '|'-separated needles? */
static int mentions(const char *msg, const char *needles)
{
	char buf[256];
	snprintf(buf, sizeof buf, "%s", needles);
	for (char *save = NULL, *n = strtok_r(buf, "|", &save); n; n = strtok_r(NULL, "|", &save))
		if (strstr(msg, n))
			return 1;
	return 0;
}

/* msg on one line and not too long, for a TAP description. */
static const char *oneline(const char *msg)
{
	static char buf[300];
	size_t n = strlen(msg), keep = n > 250 ? 250 : n;
	strcpy(buf, n > keep ? "..." : "");
	strncat(buf, msg + n - keep, keep);
	for (char *p = buf; *p; p++)
		if (*p == '\n' || *p == '\t')
			*p = ' ';
	return buf;
}

/* Run a hostile chunk in a fresh state: it must fail within SLOW seconds
 * with one of needles in the message, and trip (a limit's message
 * containing trip), or not (trip NULL), or either (trip ""). */
static void expect_fail_cfg(const lt_sandbox_cfg *cfg, const char *chunk, const char *needles, const char *trip,
			    const char *what)
{
	static char msg[16384];
	lua_State *L = open_sb(cfg);
	double t0 = lt_seconds();
	int st = run(L, chunk, msg, sizeof msg);
	double secs = lt_seconds() - t0;
	const char *tr = lt_sandbox_tripped(L);
	int trip_ok = !trip ? !tr : !*trip || (tr && strstr(tr, trip));
	tap_ok(st != LUA_OK && mentions(msg, needles) && trip_ok && secs < SLOW, "%s: \"%s\" (%.2f s)", what,
	       oneline(msg), secs);
	if (!trip_ok)
		tap_diag("tripped: %s", tr ? tr : "(none)");
	lt_sandbox_close(L);
}

static void expect_fail(const char *chunk, const char *needle, const char *trip, const char *what)
{
	lt_sandbox_cfg cfg = test_cfg();
	expect_fail_cfg(&cfg, chunk, needle, trip, what);
}

static void expect_ok(lua_State *L, const char *chunk, const char *what)
{
	char msg[1024];
	int st = run(L, chunk, msg, sizeof msg);
	tap_ok(st == LUA_OK, "%s", what);
	if (st != LUA_OK)
		tap_diag("error: %s", msg);
}

/* ---- allowed things ------------------------------------------------------ */

static const char benign[] =
	"for _, n in ipairs{'print', 'pcall', 'xpcall', 'collectgarbage', 'require', 'load', 'loadfile',\n"
	"  'dofile', 'setmetatable', 'getmetatable', 'string', 'table', 'math', 'utf8', 'coroutine',\n"
	"  'os', 'io', 'package', 'lathe', 'tostring', 'select', 'rawget', 'next'} do\n"
	"  assert(_G[n] ~= nil, n)\n"
	"end\n"
	"assert(debug == nil and package.loaded.debug == nil)\n"
	"for _, n in ipairs{'clock', 'time', 'date', 'difftime'} do assert(type(os[n]) == 'function') end\n"
	"local t = {}\n"
	"for i = 1, 10 do table.insert(t, i) end\n"
	"table.insert(t, 1, 0)\n"
	"assert(#t == 11 and t[1] == 0 and t[11] == 10)\n"
	"assert(table.remove(t, 1) == 0 and table.remove(t) == 10 and #t == 9)\n"
	"assert(table.remove({}) == nil)\n"
	"assert(table.concat(t, ',') == '1,2,3,4,5,6,7,8,9')\n"
	"assert(table.concat(t, '-', 2, 4) == '2-3-4' and table.concat({}, 'x') == '')\n"
	"assert(table.concat({1, 2.5, 'a'}) == '12.5a')\n"
	"table.move(t, 1, 3, 2)\n"
	"assert(table.concat(t, ',') == '1,1,2,3,5,6,7,8,9')\n"
	"table.move(t, 3, 5, 1)\n"
	"assert(table.concat(t, ',') == '2,3,5,3,5,6,7,8,9')\n"
	"local u = table.move({1, 2, 3}, 1, 3, 2, {9})\n"
	"assert(table.concat(u, ',') == '9,1,2,3')\n"
	"local r = {} for i = 1, 500 do r[i] = (i * 7919) % 211 end\n"
	"table.sort(r) for i = 2, 500 do assert(r[i - 1] <= r[i]) end\n"
	"table.sort(r, function(a, b) return a > b end) for i = 2, 500 do assert(r[i - 1] >= r[i]) end\n"
	"local w = {'pear', 'apple', 'fig', 'kiwi'} table.sort(w)\n"
	"assert(table.concat(w, ' ') == 'apple fig kiwi pear')\n"
	"assert(not pcall(table.sort, {1, 'x', 2}))\n"
	"assert(not pcall(table.insert, {}, 5, 1) and not pcall(table.insert, {}, 1, 2, 3))\n"
	"assert(not pcall(table.concat, {1, {}, 3}))\n"
	"assert(select('#', table.unpack({1, 2, 3})) == 3)\n"
	"assert(('hello world'):gsub('o', '0') == 'hell0 w0rld')\n"
	"assert(('key = value'):match('^(%w+)%s*=%s*(%w+)$') == 'key')\n"
	"local n = 0 for _ in ('a b c'):gmatch('%a') do n = n + 1 end assert(n == 3)\n"
	"assert(('x.y.z'):find('.', 1, true) == 2 and ('fc1.weight'):match('^(.-)%.weight$') == 'fc1')\n"
	"assert(('[a]'):find('[]]') == 3 and ('f(x)'):match('%b()') == '(x)')\n"
	"assert(string.rep('ab', 3, ',') == 'ab,ab,ab' and string.rep('', 5) == '' and string.rep('x', 0) == '')\n"
	"assert(string.rep('', 3, '-') == '--' and string.rep('', 1, '-') == '')\n"
	"assert(string.format('%5.2f', 3.14159) == ' 3.14')\n"
	"local s = string.rep('word ', 20000)\n"
	"assert(select(2, s:gsub('%s+', ' ')) == 20000 and #s:upper() == 100000)\n"
	"assert(math.floor(2.5) == 2 and math.max(1, 3) == 3 and utf8.len('caf\\u{E9}') == 4)\n"
	"assert(type(os.time()) == 'number' and type(os.clock()) == 'number' and os.date('!%Y', 0) == '1970')\n"
	"local ok, e = pcall(error, 'boom') assert(not ok and e == 'boom')\n"
	"assert(select(2, xpcall(error, function(m) return 'handled ' .. m end, 'x')) == 'handled x')\n"
	"assert(select('#', xpcall(function(...) return ... end, print, 1, 2, 3)) == 4)\n"
	"function debug_handler(m) return 'h: ' .. tostring(m) end\n"
	"assert(select(2, xpcall(function() local t = nil return t.x end, debug_handler)):find('^h: '))\n"
	"local co = coroutine.create(function(a) local b = coroutine.yield(a + 1) return b * 2 end)\n"
	"assert(select(2, coroutine.resume(co, 1)) == 2 and select(2, coroutine.resume(co, 5)) == 10)\n"
	"local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end)\n"
	"assert(gen() == 1 and gen() == 2 and gen() == 3)\n"
	"local mt = {__index = function(_, k) return k .. '!' end}\n"
	"local obj = setmetatable({}, mt) assert(obj.hi == 'hi!' and getmetatable(obj) == mt)\n"
	"assert(getmetatable('').__index == string)\n"
	"local fmt = getmetatable(io.stdout)\n"
	"assert(fmt == getmetatable(io.stderr) and fmt.__name == 'FILE*' and type(fmt.__index.write) == 'function')\n"
	"assert(getmetatable(setmetatable({}, {__metatable = 'locked'})) == 'locked')\n"
	"collectgarbage() assert(collectgarbage('count') > 0)\n"
	"assert(load('return 1 + 1')() == 2)\n"
	"local env = {} load('x = 5', 'c', 't', env)() assert(env.x == 5)\n"
	"local w2 = coroutine.wrap(function()\n"
	"  return xpcall(function() return coroutine.yield(1) + 1 end, debug_handler) end)\n"
	"assert(w2() == 1) local ok2, v2 = w2(41) assert(ok2 and v2 == 42)\n"
	"local closed = false\n"
	"local w3 = coroutine.wrap(function()\n"
	"  local x <close> = setmetatable({}, {__close = function() closed = true end}) error('oops') end)\n"
	"local ok3, e3 = pcall(w3) assert(not ok3 and e3:find('oops') and closed)\n"
	"assert(not pcall(coroutine.wrap(function() end), 1) or true)\n"
	"local w4 = coroutine.wrap(function() end) w4() assert(select(2, pcall(w4)):find('dead coroutine'))\n"
	"local co5 = coroutine.create(function() local y <close> = setmetatable({}, {__close = function() closed = 5 end})\n"
	"  coroutine.yield() end) coroutine.resume(co5) assert(coroutine.close(co5) and closed == 5)\n"
	"local parts = {'return ', '7'} local i = 0\n"
	"assert(load(function() i = i + 1 return parts[i] end)() == 7)\n";

static const char files_ok[] =
	"local f = assert(io.open(READ)) local txt = f:read('a') f:close() assert(txt == 'hello\\n')\n"
	"local n = 0 for line in io.lines(READ) do n = n + 1 end assert(n == 1)\n"
	"io.input(READ) assert(io.read('l') == 'hello') io.close(io.input()) io.input(io.stdin)\n"
	"assert(dofile(SCRIPT) == 42 and loadfile(SCRIPT)() == 42)\n"
	"local g = assert(io.open(WRITE, 'w')) g:write('written') g:close()\n"
	"assert(io.open(WRITE):read('a') == 'written')\n"
	"io.output(WRITE) io.write('via output') io.close() io.output(io.stdout)\n"
	"local m = require 'mymod' assert(m.answer == 42 and require 'mymod' == m)\n"
	"assert(require('pkg.sub').name == 'sub')\n"
	"assert(require('os') == os and require('io') == io and package.loaded.string == string)\n"
	"assert(package.cpath == '' and package.path == '' and #package.searchers == 2)\n"
	"package.preload.pre = function() return 'preloaded' end assert(require 'pre' == 'preloaded')\n";

static void test_allowed(void)
{
	lt_sandbox_cfg cfg = test_cfg();
	lua_State *L = open_sb(&cfg);
	tap_ok(lt_sandbox_active(L) && lt_sandbox_tripped(L) == NULL && lt_sandbox_hits(L) == 0,
	       "a fresh sandbox is active and has tripped nothing");
	expect_ok(L, benign, "string, table, math, utf8, os.time, pcall, coroutines, metatables, load work");
	expect_ok(L, files_ok, "allowed files read and written; require from lua_dirs and preload");
	tap_ok(!strcmp(slurp(p_out), "via output"), "the allowed write path holds what was written");
	tap_ok(lt_sandbox_tripped(L) == NULL, "nothing tripped");

	expect_ok(L, "collectgarbage() collectgarbage('stop')", "collect, then stop the collector");
	size_t before = lt_sandbox_mem_left(L);
	expect_ok(L, "big = string.rep('x', 4 << 20)", "a 4 MiB string fits in 32 MiB");
	size_t after = lt_sandbox_mem_left(L);
	tap_ok(before <= ((size_t)32 << 20) && after + (4 << 20) <= before, "mem_left falls by the string (%zu -> %zu)",
	       before, after);
	expect_ok(L, "collectgarbage('restart')", "restart the collector");
	expect_ok(L, "big = nil collectgarbage()", "and it can be freed");
	tap_ok(lt_sandbox_mem_left(L) > after + (3 << 20), "mem_left rises again");
	lt_sandbox_close(L);

	lua_State *plain = luaL_newstate();
	lt_err err = {0};
	tap_ok(!lt_sandbox_active(plain) && lt_sandbox_mem_left(plain) == SIZE_MAX && !lt_sandbox_tripped(plain) &&
	       lt_sandbox_allows(plain, "/etc/passwd", 1) && lt_sandbox_charge(plain, 1L << 40) == 0,
	       "a plain state is not sandboxed");
	tap_ok(lt_sandbox_restrict(plain, &err) == LT_EINVAL, "restrict refuses a plain state: \"%s\"", err.msg);
	lt_sandbox_close(plain);
	lt_sandbox_close(NULL);

	lt_sandbox_cfg bad = {.insn_limit = -1};
	tap_ok(!lt_sandbox_newstate(&bad, &err) && err.code == LT_EINVAL, "a negative limit: \"%s\"", err.msg);
	lt_sandbox_cfg tiny = {.mem_limit = 100};
	tap_ok(!lt_sandbox_newstate(&tiny, &err) && err.code == LT_ERANGE, "a tiny memory limit: \"%s\"", err.msg);

	L = lt_sandbox_newstate(NULL, &err);
	tap_ok(L && lt_sandbox_mem_left(L) <= LT_SANDBOX_MEM_LIMIT && lt_sandbox_mem_left(L) > LT_SANDBOX_MEM_LIMIT - (1 << 20),
	       "defaults: 512 MiB");
	tap_ok(lt_sandbox_charge(L, 1999999000L) == 0 && !lt_sandbox_tripped(L), "charging up to the limit is fine");
	int charged = lt_sandbox_charge(L, 2000);
	const char *tr = lt_sandbox_tripped(L);
	tap_ok(charged == -1 && tr && !strcmp(tr, "instruction limit exceeded (2000000000)") &&
	       lt_sandbox_hits(L) == LT_SANDBOX_HIT_INSN && lt_sandbox_charge(L, 0) == -1,
	       "beyond it the instruction limit trips and stays tripped: \"%s\"", tr ? tr : "(none)");
	lt_sandbox_close(L);
}

/* ---- paths ---------------------------------------------------------------- */

static void test_paths(void)
{
	lt_sandbox_cfg cfg = test_cfg();
	lua_State *L = open_sb(&cfg);
	char buf[8400];
	tap_ok(lt_sandbox_allows(L, p_data, 0) && !lt_sandbox_allows(L, p_data, 1), "a read path: read, not write");
	tap_ok(lt_sandbox_allows(L, p_out, 1) && lt_sandbox_allows(L, p_out, 0), "a write path: write and read back");
	snprintf(buf, sizeof buf, "%s/lib/../data.txt", tmpdir);
	tap_ok(lt_sandbox_allows(L, buf, 0), "dir/../file is the same file");
	snprintf(buf, sizeof buf, "%s/./data.txt", tmpdir);
	tap_ok(lt_sandbox_allows(L, buf, 0), "dir/./file is the same file");
	snprintf(buf, sizeof buf, "%s/nodir/../data.txt", tmpdir);
	tap_ok(!lt_sandbox_allows(L, buf, 0), "a missing directory before .. matches nothing");
	snprintf(buf, sizeof buf, "%s/../../../../../../../../etc/passwd", tmpdir);
	tap_ok(!lt_sandbox_allows(L, buf, 0) && !lt_sandbox_allows(L, "/etc/passwd", 0), "../ up to /etc/passwd");
	tap_ok(!lt_sandbox_allows(L, NULL, 0) && !lt_sandbox_allows(L, "", 0) && !lt_sandbox_allows(L, tmpdir, 0),
	       "NULL, \"\" and the directory itself are refused");

	if (symlink("/etc/passwd", tmp("link")) == 0)
		tap_ok(!lt_sandbox_allows(L, tmp("link"), 0), "a symlink to /etc/passwd is refused");
	else
		tap_ok(0, "symlink");
	if (symlink(p_data, tmp("tolink")) == 0)
		tap_ok(lt_sandbox_allows(L, tmp("tolink"), 0) && !lt_sandbox_allows(L, tmp("tolink"), 1),
		       "a symlink to an allowed file is that file (read only)");
	else
		tap_ok(0, "symlink");
	if (symlink(tmpdir, tmp("dirlink")) == 0) {
		snprintf(buf, sizeof buf, "%s/dirlink/out.txt", tmpdir);
		tap_ok(lt_sandbox_allows(L, buf, 1), "through a symlinked directory to an allowed file");
	} else {
		tap_ok(0, "symlink");
	}

	/* Allowed names that become symlinks after the sandbox was set up. */
	int made = symlink(p_sentinel, p_out2) == 0 && symlink(tmp("evil"), p_out3) == 0;
	tap_ok(made && !lt_sandbox_allows(L, p_out2, 1) && !lt_sandbox_allows(L, p_out3, 1),
	       "an allowed name replaced by a symlink (to a file, or dangling) is refused");
	char msg[1024];
	int st = run(L, "local f = io.open(WRITE2, 'w') f:write('pwned') f:close()", msg, sizeof msg);
	tap_ok(st != LUA_OK && strstr(msg, "writing is not allowed"), "io.open through it fails: \"%s\"", msg);
	st = run(L, "local f = io.open(WRITE3, 'w') f:write('pwned') f:close()", msg, sizeof msg);
	tap_ok(st != LUA_OK && strstr(msg, "not allowed") && !exists(tmp("evil")),
	       "a dangling one does not create its target: \"%s\"", msg);
	unlink(p_out2);
	unlink(p_out3);
	lt_sandbox_close(L);

	/* A write path given as a symlink is resolved when the sandbox is made:
	 * the user named that file. */
	if (symlink(p_out, tmp("outlink")) == 0) {
		const char *wp[] = {tmp("outlink"), NULL};
		lt_sandbox_cfg c2 = {.write_paths = wp};
		lt_err err;
		L = lt_sandbox_newstate(&c2, &err);
		tap_ok(L && lt_sandbox_allows(L, p_out, 1) && lt_sandbox_allows(L, tmp("outlink"), 1),
		       "a symlink given as a write path allows its target");
		lt_sandbox_close(L);
	} else {
		tap_ok(0, "symlink");
	}
}

/* ---- hostile chunks ---------------------------------------------------------- */

static void test_limits(void)
{
	expect_fail("while true do end", "t.lua:1: instruction limit exceeded (20000000)",
		    "instruction limit exceeded (20000000)", "an endless loop");
	expect_fail("while true do pcall(function() while true do end end) end", "instruction limit exceeded",
		    "instruction limit", "an endless loop inside pcall, in a loop");
	expect_fail("local ok = pcall(function() while true do end end)\nreturn ok", "instruction limit exceeded",
		    "instruction limit", "a pcall that swallowed the limit cannot return");
	lt_sandbox_cfg small = test_cfg();
	small.insn_limit = 2000000; /* each round of this one is slow under valgrind */
	expect_fail_cfg(&small, "local function f() return pcall(f) end\nwhile true do f() end", "instruction limit",
			"instruction limit", "nested pcalls");
	expect_fail("while true do xpcall(function() while true do end end, function() while true do end end) end",
		    "limit", "instruction limit", "a looping message handler");
	expect_fail("table.sort({3, 2, 1, 5, 4}, function(a, b) while true do end end)", "instruction limit",
		    "instruction limit", "a Lua callback from C");
	expect_fail("local co = coroutine.create(function() while true do end end)\n"
		    "print('# resume:', coroutine.resume(co))\nwhile true do end", "instruction limit",
		    "instruction limit", "an endless loop in a coroutine, then in the main thread");
	expect_fail("local f = coroutine.wrap(function() while true do end end)\npcall(f)\nlocal x = 1", "instruction limit",
		    "instruction limit", "a wrapped coroutine swallowed by pcall");
	expect_fail("load(function() while true do end end)", "instruction limit", "instruction limit",
		    "a load reader that never returns");
	/* Code Lua would run with hooks off: a message handler called while the
	 * hook raises, __close in a thread the hook's error killed. */
	expect_fail("xpcall(function() while true do end end, function() while true do end end)",
		    "instruction limit", "instruction limit", "a looping message handler, once");
	expect_fail("local co = coroutine.create(function()\n"
		    "  local x <close> = setmetatable({}, {__close = function() while true do end end})\n"
		    "  while true do end end)\ncoroutine.resume(co)\ncoroutine.close(co)",
		    "instruction limit", "instruction limit", "__close of a stopped coroutine: coroutine.close");
	expect_fail("local f = coroutine.wrap(function()\n"
		    "  local x <close> = setmetatable({}, {__close = function() while true do end end})\n"
		    "  while true do end end)\npcall(f)\nlocal y = 1",
		    "instruction limit", "instruction limit", "__close of a stopped coroutine: wrap's cleanup");
	expect_fail("local co = coroutine.create(function() while true do end end)\nassert(not coroutine.resume(co))\n"
		    "local y = 1", "t.lua:2: instruction limit", "instruction limit",
		    "the resumer stops at once after the coroutine was stopped");
	lt_sandbox_cfg cfg = test_cfg();
	cfg.insn_limit = 0; /* the default: 2e9, not reached in 0.3 s */
	cfg.time_limit = 0.3;
	expect_fail_cfg(&cfg, "while true do end", "time limit exceeded (0.3 s)", "time limit exceeded (0.3 s)",
			"the time limit");
	expect_fail_cfg(&cfg, "while true do pcall(string.rep, 'x', 100) end", "time limit", "time limit",
			"the time limit with C calls in the loop");

	expect_fail("return string.rep('x', 2^40)", "resulting string too large", NULL, "string.rep('x', 2^40)");
	expect_fail("return string.rep('x', 2^30)", "not enough memory", "memory limit exceeded (32 MiB)",
		    "string.rep('x', 2^30)");
	expect_fail("local t = {} while true do t[#t + 1] = {} end", "not enough memory", "memory limit",
		    "growing a table until memory runs out");
	expect_fail("local s = 'x' while true do s = s .. s end", "not enough memory", "memory limit",
		    "a doubling string");
	expect_fail("local ok = pcall(string.rep, 'x', 2^30)\nerror('after: ' .. tostring(ok))", "after: false",
		    "memory limit", "a refused allocation caught by pcall is remembered");
	expect_fail("local function f() return 1 + f() end f()", "overflow|not enough memory", "", "unbounded recursion");
	expect_fail("local function f() return coroutine.wrap(f)() end f()", "C stack overflow", NULL,
		    "deep coroutine recursion (wrap)");
	expect_fail("local function f() local co = coroutine.create(f) local ok, e = coroutine.resume(co)\n"
		    "  error(e, 0) end f()", "C stack overflow", NULL, "deep coroutine recursion (resume)");
	expect_fail("local t = setmetatable({}, {__index = function(t, k) return t[k + 1] end}) return t[1]",
		    "overflow|not enough memory", "", "recursion through __index");
	expect_fail("table.move({}, 1, 2^40, 2)", "instruction limit", "instruction limit", "table.move over 2^40");
	expect_fail("table.insert(setmetatable({}, {__len = function() return math.maxinteger - 1 end}), 1, 0)",
		    "instruction limit", "instruction limit", "table.insert under a huge __len");
	expect_fail("local t = {} for i = 50, 3, -1 do t[1 << i] = 1 end t[1] = 1 t[2] = 1 t[4] = 1\n"
		    "assert(#t == 1 << 50)\ntable.remove(t, 1)", "t.lua:3: instruction limit",
		    "instruction limit", "table.remove on a sparse table with a huge border");
	expect_fail("table.concat(setmetatable({}, {__index = table.concat}), '', 1, 2^50)", "instruction limit",
		    "instruction limit", "table.concat of 2^50 empty strings");
	expect_fail("table.sort(setmetatable({}, {__len = function() return 2^31 - 2 end, __index = tostring}))",
		    "instruction limit", "instruction limit", "table.sort of a huge fake length");
	expect_fail("return string.find(string.rep('a', 3000), '.-.-.-.-b')", "pattern too complex for a subject of 3000",
		    NULL, "a backtracking pattern");
	expect_fail("local s = string.rep('a', 40)\nreturn s:match(string.rep('a?', 40) .. s)", "pattern too complex",
		    NULL, "an exponential pattern");
	expect_fail("local s = string.rep('a', 1e6)\nreturn s:find(string.rep('a', 5e5) .. 'b', 1, true)",
		    "pattern too complex", NULL, "a plain find that is quadratic");
	expect_fail("local s = string.rep('a', 1e5)\nfor w in s:gmatch('(a*)(a*)b') do end", "pattern too complex",
		    NULL, "gmatch");
	expect_fail("assert(string.rep('', 2^62) == '')\nassert(string.rep('', 2^62, '') == '')\nerror('fast')",
		    "t.lua:3: fast", NULL, "string.rep of an empty string returns at once");
}

static void test_escapes(int entries)
{
	expect_fail("os.execute('touch ' .. TMP .. '/x')", "t.lua:1: os.execute is not available in the sandbox",
		    NULL, "os.execute");
	expect_fail("io.popen('touch ' .. TMP .. '/x')", "io.popen is not available in the sandbox", NULL, "io.popen");
	expect_fail("io.tmpfile()", "io.tmpfile is not available", NULL, "io.tmpfile");
	expect_fail("os.remove(SENTINEL)", "os.remove is not available", NULL, "os.remove");
	expect_fail("os.rename(SENTINEL, TMP .. '/x')", "os.rename is not available", NULL, "os.rename");
	expect_fail("os.exit(0)", "os.exit is not available", NULL, "os.exit");
	expect_fail("return os.getenv('HOME')", "os.getenv is not available", NULL, "os.getenv");
	expect_fail("return os.tmpname()", "os.tmpname is not available", NULL, "os.tmpname");
	expect_fail("os.setlocale('C')", "os.setlocale is not available", NULL, "os.setlocale");
	expect_fail("io.open('/etc/passwd')", "io.open: /etc/passwd: reading is not allowed in the sandbox", NULL,
		    "io.open('/etc/passwd')");
	expect_fail("for l in io.lines('/etc/passwd') do end", "io.lines: /etc/passwd: reading is not allowed", NULL,
		    "io.lines('/etc/passwd')");
	expect_fail("io.input('/etc/passwd')", "io.input: /etc/passwd: reading is not allowed", NULL,
		    "io.input('/etc/passwd')");
	expect_fail("dofile('/etc/passwd')", "dofile: /etc/passwd: reading is not allowed", NULL, "dofile");
	expect_fail("loadfile('/etc/passwd')", "loadfile: /etc/passwd: reading is not allowed", NULL, "loadfile");
	expect_fail("io.open(TMP .. '/x', 'w')", "writing is not allowed", NULL, "io.open(other, 'w')");
	expect_fail("io.open(SENTINEL, 'a')", "writing is not allowed", NULL, "io.open(sentinel, 'a')");
	expect_fail("io.open(READ, 'r+')", "writing is not allowed", NULL, "io.open(read path, 'r+')");
	expect_fail("io.open(READ, 'w')", "writing is not allowed", NULL, "io.open(read path, 'w')");
	expect_fail("io.output(TMP .. '/x')", "io.output: ", NULL, "io.output(other)");
	expect_fail("io.open(TMP .. '/lib/../x', 'w')", "writing is not allowed", NULL, "io.open with ../");
	expect_fail("io.open(WRITE .. '\\0x', 'w')", "writing is not allowed", NULL, "a path with a NUL byte");
	expect_fail("io.open(WRITE, 'wx')", "invalid mode", NULL, "an invalid mode");
	expect_fail("local f = io.open(WRITE, 'w') local s = string.rep('x', 1 << 23)\n"
		    "for i = 1, 200 do f:seek('set', 0) f:write(s) end", "t.lua:2: write: more than 1024 MiB written",
		    NULL, "file:write beyond the write limit");
	expect_fail("io.output(WRITE) local s = string.rep('x', 1 << 23)\n"
		    "io.stdout:write('') io.stderr:write('') for i = 1, 200 do io.output():seek('set', 0) io.write(s) end",
		    "t.lua:2: write: more than 1024 MiB written", NULL, "io.write beyond the write limit");
	expect_fail("local function f() end load(string.dump(f))()", "string.dump is not available", NULL,
		    "load(string.dump(f))");
	expect_fail("load('\\27Lua\\x54\\0\\x19\\x93\\r\\n\\x1a\\n')()", "load: binary chunks are not allowed", NULL,
		    "a binary chunk in a string");
	expect_fail("assert(load(BYTECODE))()", "binary chunks are not allowed", NULL, "real bytecode in a string");
	expect_fail("local done\nassert(load(function() if not done then done = true return BYTECODE end end))()",
		    "attempt to load a binary chunk (mode is 't')", NULL, "bytecode from a reader function");
	expect_fail("assert(load(BYTECODE, 'x', 'b'))()", "binary chunks are not allowed", NULL, "mode 'b' asked for");
	expect_fail("assert(loadfile(BIN))()", "attempt to load a binary chunk", NULL, "loadfile of a bytecode file");
	expect_fail("dofile(BIN)", "attempt to load a binary chunk", NULL, "dofile of a bytecode file");
	expect_fail("require('os').execute('touch ' .. TMP .. '/x')", "os.execute is not available", NULL,
		    "require 'os' gives the restricted os");
	expect_fail("package.loaded.io.popen('id')", "io.popen is not available", NULL, "package.loaded.io");
	expect_fail("require 'debug'", "module 'debug' not found", NULL, "require 'debug'");
	expect_fail("return debug.getinfo(1)", "attempt to index a nil value (global 'debug')", NULL, "no debug library");
	expect_fail("package.loadlib('/lib/x86_64-linux-gnu/libc.so.6', '*')", "package.loadlib is not available", NULL,
		    "package.loadlib");
	expect_fail("return package.searchpath('passwd', '/etc/?')", "package.searchpath is not available", NULL,
		    "package.searchpath");
	expect_fail("require 'lpeg'", "module 'lpeg' not found", NULL, "a C module");
	expect_fail("require '../data'", "not a plain module name", NULL, "require with ../");
	expect_fail("require 'broken'", "error loading module 'broken'", NULL, "a module with a syntax error");
	expect_fail("package.cpath = '/usr/lib/x86_64-linux-gnu/lua/5.4/?.so' require 'lpeg'", "not found", NULL,
		    "setting package.cpath has no effect");
	expect_fail("setmetatable({}, {__gc = function() while true do end end})",
		    "finalizers (__gc) are not allowed in the sandbox", NULL, "a __gc finalizer loop");
	expect_fail("getmetatable(io.stdout).__gc = function() while true do end end", "read-only in the sandbox", NULL,
		    "replacing the finalizer of a C object");
	expect_fail("rawset(getmetatable(io.stdout), '__gc', print)", "bad argument #1 to 'rawset'", NULL,
		    "rawset on the stand-in");
	expect_fail("setmetatable(getmetatable(io.stdout), {})", "got userdata", NULL,
		    "setmetatable on the stand-in");
	expect_fail("local mt = {} local t = setmetatable({}, mt)\n"
		    "mt.__gc = function() while true do end end t = nil collectgarbage() error('inert')",
		    "t.lua:2: inert", NULL, "a __gc added later is inert");
	tap_ok(!strcmp(slurp(p_sentinel), "sentinel\n"), "the sentinel file is untouched");
	tap_ok(count_entries(tmpdir) == entries, "no file was created (%d entries, as before)", count_entries(tmpdir));
}

/* The state after a trip: the instruction limit is sticky, the memory limit
 * lets small things run. */
static void test_after(void)
{
	lt_sandbox_cfg cfg = test_cfg();
	lua_State *L = open_sb(&cfg);
	char msg[1024];
	run(L, "while true do end", msg, sizeof msg);
	int st = run(L, "return 1", msg, sizeof msg);
	tap_ok(st != LUA_OK && strstr(msg, "instruction limit"), "after the instruction limit nothing runs: \"%s\"", msg);
	lua_State *co = lua_newthread(L);
	int nres;
	luaL_loadstring(co, "local x = 0 for i = 1, 10 do x = x + i end return x");
	st = lua_resume(co, L, 0, &nres);
	tap_ok(st == LUA_ERRRUN && strstr(lua_tostring(co, -1), "instruction limit"),
	       "nor in a thread made from C afterwards");
	lt_sandbox_close(L);

	L = open_sb(&cfg);
	co = lua_newthread(L);
	luaL_loadstring(co, "while true do end");
	st = lua_resume(co, L, 0, &nres);
	tap_ok(st == LUA_ERRRUN && strstr(lua_tostring(co, -1), "instruction limit"),
	       "a thread made from C has the hook: \"%s\"", lua_tostring(co, -1));
	lt_sandbox_close(L);

	L = open_sb(&cfg);
	run(L, "s = string.rep('x', 2^30)", msg, sizeof msg);
	st = run(L, "local t = {} for i = 1, 100 do t[i] = i end assert(#t == 100)", msg, sizeof msg);
	tap_ok(st == LUA_OK && lt_sandbox_tripped(L) && (lt_sandbox_hits(L) & LT_SANDBOX_HIT_MEM),
	       "after the memory limit small things run, and the hit is remembered");
	lt_sandbox_close(L);
}

/* Architecture scripts share the allocator, the hook and the bounded
 * string and table functions. */
static void test_arch(void)
{
	lt_err err = {0};
	double t0 = lt_seconds();
	char *json = lt_lua_arch_string_to_json("table.move({}, 1, 2^40, 2) return {}", "a.lua", &err);
	tap_ok(!json && err.code == LT_ERANGE && strstr(err.msg, "a.lua:1: architecture script ran too long") &&
	       lt_seconds() - t0 < SLOW, "arch: table.move over 2^40 is stopped: \"%s\"", err.msg);
	lt_free(json);
	json = lt_lua_arch_string_to_json("local t = {3, 1, 2} table.sort(t) table.insert(t, 4)\n"
					  "return {input = {#string.rep('', 2^62), table.concat(t, ',')}}", "a.lua", &err);
	tap_ok(json && !strcmp(json, "{\"format\":\"lathe-arch-1\",\"input\":[0,\"1,2,3,4\"]}"),
	       "arch: the bounded string and table functions work: %s", json ? json : err.msg);
	lt_free(json);
	json = lt_lua_arch_string_to_json("return {x = string.rep('x', 1 << 27)}", "a.lua", &err);
	tap_ok(!json && err.code == LT_ERANGE && strstr(err.msg, "more than 64 MiB"), "arch: the memory limit: \"%s\"",
	       err.msg);
	lt_free(json);
}

/* Every allocation failure while making, restricting and using a sandbox
 * ends in a clean failure (no crash, leak or panic). */
static void test_sweep(void)
{
	const char *chunk = "local m = require 'mymod' local t = {} for i = 1, 50 do table.insert(t, 'x' .. i) end\n"
			    "table.sort(t) assert(table.concat(t):find('x1x10') and m.answer == 42)\n"
			    "local f = io.open(READ) f:close() local co = coroutine.wrap(function() return 1 end) co()\n"
			    "return getmetatable(io.stdout).__name";
	long n, made = 0, bad = 0;
	for (n = 0; n < 100000; n++) {
		lt_err err = {0};
		lt_sandbox_cfg cfg = test_cfg();
		char msg[1024] = "";
		lt_mem_fail_after(n);
		lua_State *L = lt_sandbox_newstate(&cfg, &err);
		int ok = 0, st = LUA_OK;
		if (L) {
			lua_pushcfunction(L, setup_body);
			st = lua_pcall(L, 0, 0, 0);
			if (st == LUA_OK && lt_sandbox_restrict(L, &err) == 0) {
				lua_pushcfunction(L, set_globals);
				st = lua_pcall(L, 0, 0, 0);
				if (st == LUA_OK)
					st = run(L, chunk, msg, sizeof msg);
				ok = st == LUA_OK;
			}
		}
		made = lt_mem_fail_after(-1);
		if (!ok) {
			int clean = !L ? err.code == LT_ENOMEM
				       : st == LUA_ERRMEM || strstr(msg, "not enough memory") || err.code == LT_ENOMEM;
			if (!clean && bad++ < 3)
				tap_diag("fail after %ld: status %d \"%s\" \"%s\"", n, st, msg, err.msg);
		}
		lt_sandbox_close(L);
		if (ok && made <= n)
			break;
	}
	tap_ok(bad == 0 && made <= n, "sweep: %ld allocation failures, each a clean error", n);
}

static int writer(lua_State *L, const void *p, size_t n, void *ud)
{
	(void)L;
	return fwrite(p, 1, n, ud) == n ? 0 : 1;
}

static void make_files(void)
{
	snprintf(p_data, sizeof p_data, "%s/data.txt", tmpdir);
	snprintf(p_script, sizeof p_script, "%s/script.lua", tmpdir);
	snprintf(p_bin, sizeof p_bin, "%s/bin.luac", tmpdir);
	snprintf(p_out, sizeof p_out, "%s/out.txt", tmpdir);
	snprintf(p_out2, sizeof p_out2, "%s/out2.txt", tmpdir);
	snprintf(p_out3, sizeof p_out3, "%s/out3.txt", tmpdir);
	snprintf(p_lib, sizeof p_lib, "%s/lib", tmpdir);
	snprintf(p_sentinel, sizeof p_sentinel, "%s/sentinel", tmpdir);
	spits(p_data, "hello\n");
	spits(p_script, "return 42\n");
	spits(p_sentinel, "sentinel\n");
	if (mkdir(p_lib, 0700) || mkdir(tmp("lib/pkg"), 0700)) {
		perror(p_lib);
		exit(99);
	}
	spits(tmp("lib/mymod.lua"), "return {answer = 42}\n");
	spits(tmp("lib/pkg/sub.lua"), "return {name = 'sub'}\n");
	spits(tmp("lib/broken.lua"), "return {\n");
	lua_State *L = luaL_newstate();
	FILE *f = fopen(p_bin, "wb");
	if (!L || !f || luaL_loadstring(L, "return 1") != LUA_OK || lua_dump(L, writer, f, 0) || fclose(f)) {
		perror(p_bin);
		exit(99);
	}
	lua_close(L);
}

int main(void)
{
	const char *base = getenv("TMPDIR");
	snprintf(tmpdir, sizeof tmpdir, "%s/t_sandbox.XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 99;
	}
	make_files();
	test_allowed();
	test_paths();
	int entries = count_entries(tmpdir);
	test_limits();
	test_escapes(entries);
	test_after();
	test_arch();
	test_sweep();

	const char *files[] = {"data.txt", "script.lua", "bin.luac", "out.txt", "sentinel", "link", "tolink",
			       "dirlink", "outlink", "lib/mymod.lua", "lib/pkg/sub.lua", "lib/broken.lua", "x", "evil"};
	for (size_t i = 0; i < sizeof files / sizeof *files; i++)
		unlink(tmp(files[i]));
	rmdir(tmp("lib/pkg"));
	rmdir(p_lib);
	rmdir(tmpdir);
	return tap_done();
}
