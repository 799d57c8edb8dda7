/* Lua architecture scripts: the samples, the JSON conversion rules, the
 * sandbox (globals, time and memory limits, binary chunks) and allocation
 * failures. */
#include <lauxlib.h>
#include <lua.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "core/graph.h"
#include "core/mem.h"
#include "lbind/arch.h"
#include "tap.h"
#include "testutil.h"

static char tmpdir[4096];


static const char *tmpfile_path(const char *name)
{
	static char path[4200];
	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	return path;
}

/* Whole file as a NUL-terminated string (malloc'd), or NULL. */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *s = NULL;
	size_t n = 0;
	if (fseek(f, 0, SEEK_END) == 0) {
		long len = ftell(f);
		if (len >= 0 && fseek(f, 0, SEEK_SET) == 0 && (s = malloc((size_t)len + 1))) {
			n = fread(s, 1, (size_t)len, f);
			s[n] = '\0';
		}
	}
	fclose(f);
	return s;
}

static void spit(const char *path, const char *text)
{
	FILE *f = fopen(path, "wb");
	if (!f || fputs(text, f) < 0 || fclose(f)) {
		perror(path);
		exit(99);
	}
}

static int64_t param_count(const lt_graph *g)
{
	int64_t total = 0;
	for (int i = 0; i < g->n_nodes; i++) {
		const lt_node *n = &g->nodes[i];
		int has_bias = n->params[LT_P_BIAS] != NULL;
		if (n->op == LT_OP_LINEAR)
			total += n->in_features * n->out_features + (has_bias ? n->out_features : 0);
		else if (n->op == LT_OP_CONV2D)
			total += n->out_features * n->in_features * n->kernel[0] * n->kernel[1] +
				 (has_bias ? n->out_features : 0);
	}
	return total;
}

/* Graph JSON after a parse/serialise round, or NULL. */
static char *canonical(const char *arch_json)
{
	lt_err err = {0};
	lt_graph *g = lt_graph_from_json(arch_json, &err);
	char *s = g ? lt_graph_to_json(g, &err) : NULL;
	lt_graph_free(g);
	return s;
}

static void test_sample(const char *lua_name, const char *json_name, int64_t macs, int64_t params)
{
	lt_err err = {0};
	char *json = lt_lua_arch_to_json(sample(lua_name), &err);
	tap_ok(json != NULL, "%s converts (%s)", lua_name, err.msg);
	if (!json)
		return;
	lt_graph *g = lt_graph_from_json(json, &err);
	tap_ok(g != NULL, "%s: lt_graph_from_json accepts it (%s)", lua_name, err.msg);
	if (g) {
		tap_ok(lt_graph_macs(g) == macs, "%s: %lld MACs per sample", lua_name, (long long)lt_graph_macs(g));
		tap_ok(lt_graph_out_numel(g) == 10, "%s: 10 outputs", lua_name);
		tap_ok(param_count(g) == params, "%s: %lld parameters, as its comments say", lua_name,
		       (long long)param_count(g));
		tap_ok(g->n_norm == 1 && g->mean[0] == 0.2858f && g->std[0] == 0.3529f && g->scale == 255.0f,
		       "%s: preprocess mean 0.2858 std 0.3529 scale 255", lua_name);
	}
	char *ref_text = slurp(sample(json_name));
	char *a = canonical(json), *b = ref_text ? canonical(ref_text) : NULL;
	tap_ok(a && b && !strcmp(a, b), "%s gives the same graph as %s", lua_name, json_name);
	if (a && b && strcmp(a, b))
		tap_diag("lua:  %s\n# json: %s", a, b);
	lt_free(a);
	lt_free(b);
	free(ref_text);
	lt_graph_free(g);
	lt_free(json);
}

static void expect_json(const char *chunk, const char *want, const char *what)
{
	lt_err err = {0};
	char *json = lt_lua_arch_string_to_json(chunk, "t.lua", &err);
	tap_ok(json && !strcmp(json, want), "%s", what);
	if (!json)
		tap_diag("error: %s", err.msg);
	else if (strcmp(json, want))
		tap_diag("got  %s\n# want %s", json, want);
	lt_free(json);
}

static void expect_error(const char *chunk, const char *name, int code, const char *needle, const char *what)
{
	lt_err err = {0};
	char *json = lt_lua_arch_string_to_json(chunk, name, &err);
	tap_ok(!json && err.code == code && strstr(err.msg, needle), "%s: \"%s\"", what, err.msg);
	if (json)
		tap_diag("unexpectedly converted: %s", json);
	lt_free(json);
}

#define OK_ARCH "{input = {784}, layers = {{op = 'relu'}}}"

static void test_conversion(void)
{
	expect_json("return {layers = {{op = 'relu'}}, input = {28 * 28 / 1},\n"
		    "  preprocess = {std = {0.3529}, scale = 255.0, mean = {0.2858}}}",
		    "{\"format\":\"lathe-arch-1\",\"input\":[784],\"preprocess\":{\"mean\":[0.2858],"
		    "\"scale\":255,\"std\":[0.3529]},\"layers\":[{\"op\":\"relu\"}]}",
		    "keys in a fixed order, format added, integral floats become integers");
	expect_json("return {layers = {{stride = {1, 2}, bias = false, kernel_size = 3, in_channels = 1,"
		    " name = 'c', op = 'conv2d', out_channels = 2, inputs = {'input'}}}}",
		    "{\"format\":\"lathe-arch-1\",\"layers\":[{\"op\":\"conv2d\",\"name\":\"c\","
		    "\"inputs\":[\"input\"],\"bias\":false,\"in_channels\":1,\"kernel_size\":3,"
		    "\"out_channels\":2,\"stride\":[1,2]}]}",
		    "layer keys: op, name, inputs first, then by name; booleans");
	expect_json("return {}", "{\"format\":\"lathe-arch-1\"}", "{} at the top is an object");
	expect_json("return {input = {}, preprocess = {}, layers = {{}, {op = 'relu', inputs = {}, x = {}}}}",
		    "{\"format\":\"lathe-arch-1\",\"input\":[],\"preprocess\":{},"
		    "\"layers\":[{},{\"op\":\"relu\",\"inputs\":[],\"x\":[]}]}",
		    "{} is an object for preprocess and a layer, a list elsewhere");
	expect_json("return {format = 'lathe-arch-1', x = 0.1, y = -0.0, z = math.maxinteger, w = 1e300}",
		    "{\"format\":\"lathe-arch-1\",\"w\":1e300,\"x\":0.1,\"y\":0,\"z\":9223372036854775807}",
		    "format kept when given; reals, integers");
	expect_json("return {format = 'other', name = 'caf\\u{E9}'}",
		    "{\"format\":\"other\",\"name\":\"caf\xc3\xa9\"}",
		    "a wrong format is left for lt_graph_from_json; UTF-8 passes");
	expect_json("local t = setmetatable({}, {__index = function() return 1 end})\n"
		    "return {input = t}", "{\"format\":\"lathe-arch-1\",\"input\":[]}",
		    "metatables are ignored (raw access)");

	/* Depth: the returned table is level 1. */
	expect_json("local r = {} local t = r for i = 1, 30 do t.x = {} t = t.x end return {d = r}",
		    "{\"format\":\"lathe-arch-1\",\"d\":"
		    "{\"x\":{\"x\":{\"x\":{\"x\":{\"x\":{\"x\":{\"x\":{\"x\":{\"x\":{\"x\":"
		    "{\"x\":{\"x\":{\"x\":{\"x\":{\"x\":{\"x\":{\"x\":{\"x\":{\"x\":{\"x\":"
		    "{\"x\":{\"x\":{\"x\":{\"x\":{\"x\":{\"x\":{\"x\":{\"x\":{\"x\":{\"x\":[]"
		    "}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}",
		    "32 levels of tables are allowed");
	expect_error("local r = {} local t = r for i = 1, 31 do t.x = {} t = t.x end return {d = r}",
		     "t.lua", LT_EFORMAT, "d.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x: "
		     "tables nest more than 32 deep", "33 levels are refused, naming the path");
	expect_error("local t = {input = {784}} t.layers = {t} return t", "t.lua", LT_EFORMAT,
		     "(is there a cycle?)", "a cycle is caught by the depth limit");

	expect_error("return {layers = {{op = 'relu'}, {op = 'x'}, {op = 'conv2d', kernel_size = {5, x = 1}}}}",
		     "t.lua", LT_EFORMAT, "layers[3].kernel_size: a table cannot mix list items and named fields",
		     "mixed keys");
	expect_error("local a = {1} for i = 1, 25 do a = {a, a} end return {x = a}", "t.lua", LT_ERANGE,
		     "too large for JSON (more than 1000000 values", "a shared table doubling 25 times");
	expect_error("local s = string.rep('x', 1 << 20) local t = {} for i = 1, 100 do t[i] = s end\n"
		     "return {x = t}", "t.lua", LT_ERANGE, "more than 64 MiB of strings",
		     "one long string listed 100 times");
	expect_error("return {1, 2}", "t.lua", LT_EFORMAT, "must return a table with named fields",
		     "a list at the top");
	expect_error("return {input = {1, nil, 3}}", "t.lua", LT_EFORMAT,
		     "input: list positions must run 1..n without gaps", "a list with a gap");
	expect_error("return {input = {[0] = 1, 2}}", "t.lua", LT_EFORMAT,
		     "input: list positions must run 1..n without gaps (found 0", "a list from 0");
	expect_error("return {input = {[1.5] = 1}}", "t.lua", LT_EFORMAT,
		     "input: keys must be names or list positions 1..n (found a fractional number key)",
		     "a fractional key");
	expect_error("return {input = {[true] = 1}}", "t.lua", LT_EFORMAT, "(found a boolean key)",
		     "a boolean key");
	expect_error("return {layers = {{op = 'dropout', p = 0/0}}}", "t.lua", LT_EFORMAT,
		     "layers[1].p: NaN cannot be written as JSON", "NaN");
	expect_error("return {preprocess = {scale = -math.huge}}", "t.lua", LT_EFORMAT,
		     "preprocess.scale: infinity cannot be written as JSON", "infinity");
	expect_error("return {layers = {{op = 'relu', f = function() end}}}", "t.lua", LT_EFORMAT,
		     "layers[1].f: a function cannot be written as JSON", "a function value");
	expect_error("return {layers = {{op = 'relu', name = 'a\\xffb'}}}", "t.lua", LT_EFORMAT,
		     "layers[1].name: string is not valid UTF-8", "invalid UTF-8");
	expect_error("return {layers = {{op = 'relu', name = 'a\\0b'}}}", "t.lua", LT_EFORMAT,
		     "layers[1].name: string contains a NUL byte", "a NUL byte");
	expect_error("return {layers = {{['\\xc0\\x80'] = 1}}}", "t.lua", LT_EFORMAT,
		     "layers[1]: a key is not valid UTF-8", "an overlong UTF-8 key");
	expect_error("return {layers = {{['two words'] = {x = function() end}}}}", "t.lua", LT_EFORMAT,
		     "layers[1][\"two words\"].x: a function", "odd keys are quoted in paths");
}

static void test_errors(void)
{
	expect_error("return {\n  input = {784},\n  layers = {op = }\n}", "syn.lua", LT_EFORMAT,
		     "syn.lua:3:", "syntax error names chunk and line");
	expect_error("local x\nreturn x.y", "rt.lua", LT_EFORMAT,
		     "rt.lua:2: attempt to index a nil value (local 'x')", "runtime error");
	expect_error("\nerror('bad width')", "e.lua", LT_EFORMAT, "e.lua:2: bad width", "error() with a message");
	expect_error("error({})", "obj.lua", LT_EFORMAT, "obj.lua:1: (error object is a table value)",
		     "error() with a table");
	expect_error("error(setmetatable({}, {__tostring = function() while true do end end}))", "obj.lua",
		     LT_EFORMAT, "(error object is a table value)", "__tostring of an error object is not called");
	expect_error("return x.y", NULL, LT_EFORMAT, "(architecture):1:", "default chunk name");
	expect_error("return x.y", "@dir/f.lua", LT_EFORMAT, "dir/f.lua:1:", "'@' chunk names pass through");
	expect_error("local t = {}", "n.lua", LT_EFORMAT, "the architecture script must return a table (got nil)",
		     "returns nothing");
	expect_error("return nil", "n.lua", LT_EFORMAT, "must return a table (got nil)", "returns nil");
	expect_error("return 42", "n.lua", LT_EFORMAT, "must return a table (got number)", "returns a number");
	expect_error("return 'x', {}", "n.lua", LT_EFORMAT, "(got string)", "only the first result counts");
	expect_error("\x1bLuaT", "bin.luac", LT_EFORMAT, "bin.luac is a precompiled Lua chunk",
		     "a binary chunk in a string is refused");

	lt_err err = {0};
	char *json = lt_lua_arch_to_json(tmpfile_path("missing.lua"), &err);
	tap_ok(!json && err.code == LT_EIO && strstr(err.msg, "missing.lua"), "missing file: \"%s\"", err.msg);
	lt_free(json);

	spit(tmpfile_path("shebang.lua"), "#!/usr/bin/env lathe\nreturn " OK_ARCH "\n");
	json = lt_lua_arch_to_json(tmpfile_path("shebang.lua"), &err);
	tap_ok(json != NULL, "a #! first line is skipped (%s)", json ? "" : err.msg);
	lt_free(json);

	spit(tmpfile_path("bad.lua"), "return {\n\n  layers = {{op = 'relu'},\n}");
	json = lt_lua_arch_to_json(tmpfile_path("bad.lua"), &err);
	tap_ok(!json && err.code == LT_EFORMAT && strstr(err.msg, "bad.lua:4:"),
	       "file syntax error names the file and line: \"%s\"", err.msg);
	lt_free(json);
}

static int dump_writer(lua_State *L, const void *p, size_t n, void *ud)
{
	(void)L;
	return fwrite(p, 1, n, ud) == n ? 0 : 1;
}

static void test_binary_file(void)
{
	const char *path = tmpfile_path("arch.luac");
	lua_State *L = luaL_newstate();
	FILE *f = fopen(path, "wb");
	if (!L || !f || luaL_loadstring(L, "return " OK_ARCH) != LUA_OK || lua_dump(L, dump_writer, f, 0) ||
	    fclose(f)) {
		perror(path);
		exit(99);
	}
	lua_close(L);
	lt_err err = {0};
	char *json = lt_lua_arch_to_json(path, &err);
	tap_ok(!json && err.code == LT_EFORMAT && strstr(err.msg, "precompiled"),
	       "a precompiled chunk file is refused: \"%s\"", err.msg);
	lt_free(json);
}

static void test_sandbox(void)
{
	expect_json("for _, name in ipairs{'io', 'os', 'package', 'debug', 'coroutine', 'utf8', 'load',\n"
		    "  'loadfile', 'dofile', 'require', 'collectgarbage', 'print', 'xpcall', 'warn',\n"
		    "  'loadstring', 'module', 'setfenv'} do\n"
		    "  assert(rawget(_G, name) == nil, name)\n"
		    "end\n"
		    "for _, name in ipairs{'assert', 'error', 'ipairs', 'pairs', 'next', 'select', 'tonumber',\n"
		    "  'tostring', 'type', 'pcall', 'rawequal', 'rawget', 'rawlen', 'rawset', 'setmetatable',\n"
		    "  'getmetatable', 'string', 'table', 'math'} do\n"
		    "  assert(rawget(_G, name) ~= nil, name)\n"
		    "end\n"
		    "return {n = select('#', string.format('%d', math.floor(2.5)), table.concat({1, 2}))}",
		    "{\"format\":\"lathe-arch-1\",\"n\":2}", "only the safe globals exist");

	const char *mark = tmpfile_path("pwned");
	char chunk[8192];
	snprintf(chunk, sizeof chunk, "os.execute('touch %s')\nreturn " OK_ARCH, mark);
	expect_error(chunk, "x.lua", LT_EFORMAT, "x.lua:1: attempt to index a nil value (global 'os')",
		     "os.execute is unreachable");
	snprintf(chunk, sizeof chunk, "local f = io.open('%s', 'w') f:write('x') f:close()\nreturn {}", mark);
	expect_error(chunk, "x.lua", LT_EFORMAT, "attempt to index a nil value (global 'io')",
		     "io.open is unreachable");
	snprintf(chunk, sizeof chunk, "require('os').execute('touch %s')", mark);
	expect_error(chunk, "x.lua", LT_EFORMAT, "attempt to call a nil value (global 'require')",
		     "require is unreachable");
	snprintf(chunk, sizeof chunk, "load(\"os.execute('touch %s')\")()", mark);
	expect_error(chunk, "x.lua", LT_EFORMAT, "attempt to call a nil value (global 'load')",
		     "load is unreachable");
	expect_error("dofile('/etc/passwd')", "x.lua", LT_EFORMAT, "attempt to call a nil value (global 'dofile')",
		     "dofile is unreachable");
	/* a pathological pattern would run for hours inside one C call */
	expect_error("return string.find(string.rep('a', 3000), '.-.-.-.-b')", "x.lua", LT_EFORMAT,
		     "attempt to call a nil value (field 'find')", "string patterns are unavailable");
	expect_error("loadfile('/etc/passwd')", "x.lua", LT_EFORMAT, "(global 'loadfile')",
		     "loadfile is unreachable");
	expect_error("print('hello')", "x.lua", LT_EFORMAT, "(global 'print')", "print is unreachable");
	expect_error("collectgarbage()", "x.lua", LT_EFORMAT, "(global 'collectgarbage')",
		     "collectgarbage is unreachable");
	tap_ok(access(mark, F_OK) != 0, "none of them touched the file system");

	expect_error("local n = 0\nwhile true do n = n + 1 end", "loop.lua", LT_ERANGE,
		     "loop.lua:2: architecture script ran too long", "an endless loop is stopped");
	expect_error("while true do pcall(function() while true do end end) end", "loop.lua", LT_ERANGE,
		     "ran too long", "pcall cannot swallow the time limit");
	expect_error("local function f() return pcall(f) end\nwhile true do f() end", "loop.lua", LT_ERANGE,
		     "ran too long", "nor can nested pcalls");
	expect_error("table.sort({3, 2, 1, 5, 4}, function(a, b) while true do end end)", "sort.lua", LT_ERANGE,
		     "ran too long", "a Lua callback from C is stopped too");
	expect_error("setmetatable({}, {__gc = function() while true do end end})\nreturn {}", "gc.lua",
		     LT_EFORMAT, "gc.lua:1: finalizers (__gc) are not allowed",
		     "finalizers (which run without hooks) are refused");
	expect_json("local mt = {} local t = setmetatable({}, mt)\n"
		    "mt.__gc = function() while true do end end\n"
		    "t = nil for i = 1, 1000 do local x = {i} end\n"
		    "return {mt = getmetatable(setmetatable({}, {__index = mt})) ~= nil}",
		    "{\"format\":\"lathe-arch-1\",\"mt\":true}",
		    "a __gc added later is inert; setmetatable still works");
	expect_json("setmetatable({}, setmetatable({}, {__index = function() error('x') end}))\n"
		    "return {}", "{\"format\":\"lathe-arch-1\"}", "the __gc check reads the metatable raw");
	expect_error("local t = setmetatable({}, {__metatable = 'locked'})\nsetmetatable(t, {})",
		     "gc.lua", LT_EFORMAT, "gc.lua:2: cannot change a protected metatable",
		     "setmetatable's own checks are kept");

	expect_error("return {s = string.rep('x', 1 << 30)}", "m.lua", LT_ERANGE,
		     "used more than 64 MiB of memory", "string.rep bomb hits the memory cap");
	expect_error("local s = 'x' while true do s = s .. s end", "m.lua", LT_ERANGE,
		     "used more than 64 MiB of memory", "a doubling string hits the memory cap");
	expect_error("local t = {} while true do t[#t + 1] = string.rep('y', 100000) .. #t end", "m.lua", LT_ERANGE,
		     "used more than 64 MiB of memory", "a growing table hits the memory cap");
	expect_json("assert(not pcall(string.rep, 'x', 1 << 30))\nreturn {}", "{\"format\":\"lathe-arch-1\"}",
		    "a refused allocation caught by pcall lets the script go on");
	expect_error("local function f() return 1 + f() end\nreturn f()", "so.lua", LT_ERANGE, "memory",
		     "runaway recursion hits the memory cap");
}

/* Every allocation failure gives LT_ENOMEM (or, when nothing failed, the
 * same JSON), never a crash, a leak or a different error. */
static void sweep(const char *chunk, const char *what)
{
	lt_err err = {0};
	char *want = lt_lua_arch_string_to_json(chunk, "s.lua", &err);
	if (!want) {
		tap_ok(0, "sweep %s: reference run fails (%s)", what, err.msg);
		return;
	}
	long n, made = 0, bad = 0;
	for (n = 0; n < 200000; n++) {
		lt_err e = {0};
		lt_mem_fail_after(n);
		char *got = lt_lua_arch_string_to_json(chunk, "s.lua", &e);
		made = lt_mem_fail_after(-1);
		if (got) {
			if (strcmp(got, want) && bad++ < 3)
				tap_diag("fail after %ld: different JSON", n);
			lt_free(got);
		} else if (e.code != LT_ENOMEM && bad++ < 3) {
			tap_diag("fail after %ld: code %d \"%s\"", n, e.code, e.msg);
		}
		if (got && made <= n)
			break;
	}
	tap_ok(bad == 0 && made <= n, "sweep %s: %ld allocation failures, each LT_ENOMEM or harmless", what, n);
	lt_free(want);
}

int main(void)
{
	const char *base = getenv("TMPDIR");
	snprintf(tmpdir, sizeof tmpdir, "%s/t_luaarch.XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 99;
	}
	test_sample("lenet300.arch.lua", "lenet300.arch.json", 266200, 266610);
	test_sample("lenet5.arch.lua", "lenet5.arch.json", 2293000, 431080);
	test_conversion();
	test_errors();
	test_binary_file();
	test_sandbox();

	char *lenet5 = slurp(sample("lenet5.arch.lua"));
	if (lenet5)
		sweep(lenet5, "lenet5.arch.lua");
	else
		tap_ok(0, "read %s", sample("lenet5.arch.lua"));
	free(lenet5);
	sweep("local t = {} for i = 1, 200 do t[i] = {op = 'relu', name = 'r' .. i} end\n"
	      "return {input = {784}, layers = t, preprocess = {mean = {0.5}, std = {0.25}}}", "200 layers");

	const char *files[] = {"missing.lua", "shebang.lua", "bad.lua", "arch.luac", "pwned"};
	for (size_t i = 0; i < sizeof files / sizeof *files; i++)
		unlink(tmpfile_path(files[i]));
	rmdir(tmpdir);
	return tap_done();
}
