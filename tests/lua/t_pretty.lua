-- TAP tests for lathe.pretty. Run: lathe lua tests/lua/t_pretty.lua

-- Harness: tests/lua/tap.lua -----------------------------------------------
local tap = dofile((arg[0]:match("^(.*/)") or "./") .. "tap.lua")
local report, show, ok, is, err, raises, here, located =
	tap.report, tap.show, tap.ok, tap.is, tap.err, tap.raises, tap.here, tap.located
local like = tap.like

local pretty = require "lathe.pretty"


local F = pretty.format

local function run()
	-- scalars ----------------------------------------------------------------
	is(F(nil), "nil", "nil")
	is(F(true), "true", "true")
	is(F(false), "false", "false")
	is(F(0), "0", "integer 0")
	is(F(-42), "-42", "negative integer")
	is(F(math.mininteger), "-9223372036854775808", "mininteger")
	is(F(3.0), "3.0", "integral float keeps .0")
	is(F(-0.0), "-0.0", "negative zero")
	is(F(0.0), "0.0", "float zero")
	is(F(0.1), "0.1", "0.1")
	is(F(1 / 3), "0.333333", "%.6g precision")
	is(F(100000.0), "100000.0", "100000.0 stays a float")
	is(F(1234567.0), "1.23457e+06", "large integral float in exponent form")
	is(F(1e100), "1e+100", "1e100")
	is(F(2.5e-7), "2.5e-07", "small float")
	is(F(1 / 0), "inf", "inf")
	is(F(-1 / 0), "-inf", "-inf")
	is(F(0 / 0), "nan", "nan")
	is(F(-(0 / 0)), "nan", "negated nan is still nan")

	-- strings ----------------------------------------------------------------
	is(F("abc"), '"abc"', "plain string quoted")
	is(F(""), '""', "empty string")
	is(F('say "hi"\\'), '"say \\"hi\\"\\\\"', "quote and backslash escaped")
	is(F("a\nb\tc\rd"), '"a\\nb\\tc\\rd"', "newline, tab, cr escaped on one line")
	is(F("\a\b\f\v"), '"\\a\\b\\f\\v"', "bell, backspace, form feed, vertical tab")
	is(F("x\0y"), '"x\\0y"', "NUL")
	is(F("\0" .. "1"), '"\\x001"', "NUL before a digit stays unambiguous")
	is(F("\27[31m"), '"\\x1b[31m"', "escape character")
	is(F("\127"), '"\\x7f"', "DEL")
	is(F("héllo"), '"héllo"', "two-byte UTF-8 as is")
	is(F("日本語"), '"日本語"', "three-byte UTF-8 as is")
	is(F("🙂"), '"🙂"', "four-byte UTF-8 as is")
	is(F("\xff\xfe"), '"\\xff\\xfe"', "invalid bytes escaped")
	is(F("\xe6\x97"), '"\\xe6\\x97"', "truncated sequence escaped")
	is(F("\xc0\xaf"), '"\\xc0\\xaf"', "overlong encoding escaped")
	is(F("\xed\xa0\x80"), '"\\xed\\xa0\\x80"', "surrogate escaped")
	is(F("\xf4\x90\x80\x80"), '"\\xf4\\x90\\x80\\x80"', "past U+10FFFF escaped")
	is(F("\xc2\x85"), '"\\xc2\\x85"', "C1 control escaped")
	is(F("é\xff" .. "é"), '"é\\xffé"', "one bad byte does not spoil its neighbours")
	local all = {}
	for b = 0, 255 do all[#all + 1] = string.char(b) end
	all = table.concat(all) .. "日本\xe6"
	local q = F(all)
	ok(not q:find("\n", 1, true), "every byte value: output is one line")
	local chunk = load("return " .. q)
	ok(chunk and chunk() == all, "every byte value: output reads back as the same string")
	for _, s in ipairs({ "a\nb", "\0\0001", "\\\"", "é\xc2\x85z" }) do
		local back = load("return " .. F(s))
		ok(back and back() == s, "reads back: " .. F(s))
	end

	-- tables, inline ---------------------------------------------------------
	is(F({}), "{}", "empty table")
	is(F({ 1, 2, 3 }), "{1, 2, 3}", "array")
	is(F({ x = 1 }), "{x = 1}", "identifier key bare")
	is(F({ 1, 2, x = 3 }), "{1, 2, x = 3}", "array part then keys")
	is(F({ [true] = 1, [2.5] = 2, b = 3, a = 4, [10] = 5, 1, [-1] = 6 }),
		"{1, [-1] = 6, [2.5] = 2, [10] = 5, a = 4, b = 3, [true] = 1}", "key order across types")
	is(F({ ["end"] = 1, ["a b"] = 2, ["1x"] = 3, _ok = 4, [""] = 5, ["é"] = 6 }),
		'{[""] = 5, ["1x"] = 3, _ok = 4, ["a b"] = 2, ["end"] = 1, ["é"] = 6}', "keys needing brackets")
	is(F({ B = 1, a = 2, Z = 3, _ = 4 }), "{B = 1, Z = 3, _ = 4, a = 2}", "string keys in byte order")
	is(F({ 1, nil, 3 }), "{1, [3] = 3}", "hole ends the array part")
	is(F({ [1] = "a", [3.0] = "c", [2] = "b" }), '{"a", "b", "c"}', "float keys normalised into the array")
	is(F({ [0.5] = 1, [1e100] = 2 }), "{[0.5] = 1, [1e+100] = 2}", "float keys")
	is(F({ a = { b = {} } }), "{a = {b = {}}}", "nested inline")
	is(F({ 1.0, "s", false }), '{1.0, "s", false}', "mixed values")
	like(F({ [{}] = 1 }), "^{%[table: [^%]]+%] = 1}$", "table as key")
	local badkey = setmetatable({}, { __tostring = function() error("boom") end })
	like(F({ [badkey] = 1 }), "^{%[<table: [^%]]+>%] = 1}$", "key with a raising __tostring")

	-- depth ------------------------------------------------------------------
	is(F({ { { { 1 } } } }), "{{{{... 1 item}}}}", "default depth 3")
	is(F({ a = { 1, 2 } }, { depth = 1 }), "{a = {... 2 items}}", "depth 1")
	is(F({ 1 }, { depth = 0 }), "{... 1 item}", "depth 0")
	is(F({ a = {} }, { depth = 1 }), "{a = {}}", "empty table past depth is just {}")
	is(F({ 1, 2 }, { depth = 0 }), "{... 2 items}", "plural items")
	local chain = {}
	local link = chain
	for _ = 1, 5000 do link.n = {}; link = link.n end
	local okd, deep_out = pcall(F, chain, { depth = 1e9 })
	ok(okd and deep_out:find("{... 1 item}", 1, true), "very deep chain with a huge depth: capped, quick",
		show(deep_out):sub(1, 200))

	-- items ------------------------------------------------------------------
	local hundred = {}
	for i = 1, 100 do hundred[i] = i end
	is(F(hundred, { items = 3 }), "{1, 2, 3, ... 97 more}", "items limit")
	is(F(hundred, { items = 0 }), "{... 100 more}", "items 0")
	is(F({ 1, 2, x = 1, y = 2 }, { items = 3 }), "{1, 2, x = 1, ... 1 more}", "items limit reaches into keys")
	local big = {}
	for i = 1, 20000 do big[i] = i; big["k" .. i] = i end
	local out = F(big)
	local lines = select(2, out:gsub("\n", "\n")) + 1
	is(lines, 43, "huge table: 40 entries, the rest counted")
	ok(out:find("\n  ... 39960 more\n}$"), "huge table: count of the rest", "tail: " .. show(out:sub(-40)))

	-- width and indentation -------------------------------------------------
	local s64, s65 = { s = string.rep("x", 64) }, { s = string.rep("x", 65) }
	is(#F(s64), 72, "exactly 72 columns stays inline")
	is(F(s65), '{\n  s = "' .. string.rep("x", 65) .. '"\n}', "73 columns breaks into lines")
	is(F({ 1, 2, 3 }, { width = 5 }), "{\n  1,\n  2,\n  3\n}", "narrow width")
	is(F({ a = { string.rep("y", 80) }, b = 1 }),
		'{\n  a = {\n    "' .. string.rep("y", 80) .. '"\n  },\n  b = 1\n}', "nested indentation")
	is(F({ a = { 1, 2 }, b = string.rep("z", 70) }),
		'{\n  a = {1, 2},\n  b = "' .. string.rep("z", 70) .. '"\n}', "short children inline inside a broken table")
	is(F({ 1, 2 }, { width = 3, indent = 4 }), "{\n    1,\n    2\n}", "indent as a number")
	is(F({ 1, 2 }, { width = 3, indent = "\t" }), "{\n\t1,\n\t2\n}", "indent as a string")
	is(F({ "日本語日本語日本語日本語日本語日本語日本語日本語日本語日本語日本語日本" }),
		'{"日本語日本語日本語日本語日本語日本語日本語日本語日本語日本語日本語日本"}',
		"width counts characters, not bytes")

	-- cycles and repeats ------------------------------------------------------
	local t = {}
	t.self = t
	is(F(t), "{self = <cycle>}", "self cycle")
	local a, b = {}, {}
	a.b, b.a = b, a
	is(F(a), "{b = {a = <cycle>}}", "two-table cycle")
	local shared = { 1 }
	is(F({ shared, shared }), "{{1}, {1}}", "a repeat off the path is printed again")
	local deep = {}
	deep.next = { next = { next = deep } }
	is(F(deep, { depth = 10 }), "{next = {next = {next = <cycle>}}}", "longer cycle")

	-- metatables -------------------------------------------------------------
	local trap = setmetatable({ 1, x = 2 }, {
		__index = function() error("__index called") end,
		__pairs = function() error("__pairs called") end,
		__len = function() error("__len called") end,
		__metatable = "locked",
	})
	is(F(trap), "{1, x = 2}", "no __index, __pairs or __len")
	is(F(setmetatable({}, { __tostring = function() return "<model lenet>" end })), "<model lenet>",
		"__tostring on a table is used")
	is(F({ setmetatable({}, { __tostring = function() return "T" end }) }), "{T}", "__tostring inside a table")
	like(F(setmetatable({}, { __tostring = function() error("bad") end })), "^<table: .+>$",
		"raising __tostring falls back to the address")
	like(F(setmetatable({}, { __tostring = function() return {} end })), "^<table: .+>$",
		"__tostring returning a table falls back to the address")
	is(F(setmetatable({ 1 }, { __name = "Thing" })), "{1}", "__name alone does not hide the contents")
	local pf = F(print)
	ok(pf:find("^function: ") or pf:find("^builtin: "), "C function", "got " .. pf)
	like(F(function() end), "^function: ", "Lua function")
	like(F(coroutine.create(function() end)), "^thread: ", "thread")
	if io and io.stdout then like(F(io.stdout), "^file %(", "userdata with __tostring") end
	if io and io.stdout then
		-- A closed file's __tostring still works; a userdata whose __tostring
		-- fails cannot be built from Lua, so the fallback is covered by tables.
		like(F({ io.stdout }), "^{file %(", "userdata inside a table")
	end

	-- never raises ------------------------------------------------------------
	local seed = 12345
	local function rnd(n)
		seed = (seed * 1103515245 + 12345) % 2147483648
		return seed % n + 1
	end
	local pool = { 0, -0.0, 1 / 0, 0 / 0, "s", "\0\xff", true, print, math.maxinteger, 2.5 }
	local function gen(d, nodes)
		local r = rnd(6)
		if d > 5 or r <= 2 then return pool[rnd(#pool)] end
		local tt = {}
		nodes[#nodes + 1] = tt
		for _ = 1, rnd(8) - 1 do
			local k = rnd(3) == 1 and gen(d + 1, nodes) or (rnd(2) == 1 and rnd(10) or "k" .. rnd(20))
			if k ~= nil and k == k then tt[k] = gen(d + 1, nodes) end
		end
		if rnd(4) == 1 then
			setmetatable(tt, { __index = error, __pairs = error, __len = error,
				__tostring = rnd(2) == 1 and error or nil })
		end
		if #nodes > 1 and rnd(3) == 1 then tt.back = nodes[rnd(#nodes)] end
		return tt
	end
	local all_ok, first = true, nil
	for _ = 1, 300 do
		local v = gen(0, {})
		for _, o in ipairs({ {}, { depth = 1, items = 2, width = 10 }, { depth = 5, width = 200 } }) do
			local okf, res = pcall(F, v, o)
			if not okf or type(res) ~= "string" then all_ok, first = false, res break end
		end
	end
	ok(all_ok, "random nested values with cycles and hostile metatables never raise", show(first))

	-- options ----------------------------------------------------------------
	local e, where = err(function() local _ = F(1, { depth = "x" }) end), here()
	is(e and e:match(":%d+: (.*)$"), "pretty.format: option 'depth' must be an integer (got string)",
		"bad option type")
	located(e, where, "bad option raised at the caller's line")
	raises(function() F(1, { colour = true }) end,
		"pretty.format: unknown option 'colour' (expected one of: depth, indent, items, width)", "unknown option")
	raises(function() F(1, { items = -1 }) end, "pretty.format: depth and items must be >= 0", "negative items")

	-- print ------------------------------------------------------------------
	-- pretty.print looks up the global print when called: capture it.
	local real_print, captured = print, {}
	_G.print = function(...) captured[#captured + 1] = table.concat({ ... }, "\t") end
	local okp, perr = pcall(function()
		pretty.print(nil, 1, "x", { a = 1 }, 2.0)
		pretty.print()
	end)
	_G.print = real_print
	ok(okp, "print does not raise", show(perr))
	is(captured[1], 'nil\t1\t"x"\t{a = 1}\t2.0', "print: formatted, tab-separated, nil shown")
	is(captured[2], "", "print with no arguments prints an empty line")

	-- table ------------------------------------------------------------------
	local T = pretty.table
	is(T({ { "a", 1 }, { "bbb", 22 } }), "a     1\nbbb  22", "list rows, numbers right-aligned")
	is(T({ { "fc1", 235200, 0.08 }, { "fc2", 30000, 0.09 }, { "total", 265200 } },
		{ headers = { "layer", "weights", "density" },
			format = { [3] = function(x) return string.format("%.0f%%", x * 100) end } }),
		"layer  weights  density\n" ..
		"-----  -------  -------\n" ..
		"fc1     235200       8%\n" ..
		"fc2      30000       9%\n" ..
		"total   265200",
		"headers, rule, format function, missing cell, no trailing spaces")
	is(T({ { name = "conv1", n = 500, r = 2.5 }, { name = "fc", n = 12345678 } },
		{ columns = { "name", "n", "r" }, format = { r = "%.1fx" } }),
		"name          n     r\n" ..
		"-----  --------  ----\n" ..
		"conv1       500  2.5x\n" ..
		"fc     12345678",
		"map rows with columns; headers default to column names; printf format")
	is(T({ { x = 1 } }, { columns = { "x", "y" }, headers = false, missing = "-" }), "1  -",
		"headers = false and missing text")
	is(T({ { 1, 2 }, { 3, 4 } }, { headers = { "a", "b" }, rule = false, sep = " | " }), "a | b\n1 | 2\n3 | 4",
		"rule = false, custom separator")
	is(T({ { "é", 1 }, { "ab", 2 } }), "é   1\nab  2", "UTF-8 cells align by characters")
	is(T({ { 1 }, { "x" } }), "1\nx", "mixed column is left-aligned")
	is(T({ { 1.5 }, { 10 } }), "1.5\n 10", "floats and integers in one column")
	is(T({}), "", "no rows")
	is(T({}, { columns = { "a" } }), "a\n-", "no rows, headers only")
	raises(function() T({ { name = "x" } }) end, "rows that are maps need opts.columns", "map rows need columns")
	raises(function() T({ 1 }) end, "pretty.table: row 1 is a number, not a table", "row must be a table")
	raises(function() T({ { "x" } }, { format = { [1] = "%d" } }) end,
		"pretty.table: format \"%d\" cannot print x", "printf format that cannot print the value")
	raises(function() T({ { 1 } }, { format = { [1] = 5 } }) end,
		"format for column 1 must be a string or function", "bad format entry")
	e, where = err(function() local _ = T({ { 1 } }, { colums = {} }) end), here()
	located(e, where, "table: bad option raised at the caller's line")
end

tap.run(run)
