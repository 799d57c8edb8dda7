-- TAP tests for lathe.util. Run: lathe lua tests/lua/t_util.lua

-- Harness: tests/lua/tap.lua -----------------------------------------------
local tap = dofile((arg[0]:match("^(.*/)") or "./") .. "tap.lua")
local report, show, ok, is, err, raises, here, located =
	tap.report, tap.show, tap.ok, tap.is, tap.err, tap.raises, tap.here, tap.located
local near = tap.near
local function list_is(got, want, desc)
	local parts = {}
	for i = 1, math.max(#got, #want) do
		if not (got[i] == want[i] or (got[i] ~= got[i] and want[i] ~= want[i])) then
			report(false, desc, "at " .. i .. ": got " .. show(got[i]) .. ", expected " .. show(want[i]))
			return
		end
		parts[i] = show(got[i])
	end
	report(true, desc)
end

local util = require "lathe.util"

-- A second copy loaded without os.setlocale (as in the sandbox) compares
-- strings byte by byte instead of with the C library.
local util_bytewise = util
if type(os) == "table" then
	local saved = os.setlocale
	os.setlocale = nil
	package.loaded["lathe.util"] = nil
	local okload, mod = pcall(require, "lathe.util")
	os.setlocale = saved
	package.loaded["lathe.util"] = util
	util_bytewise = okload and mod or nil
end


local function run()
	-- bytes ----------------------------------------------------------------
	is(util.bytes(0), "0 B", "bytes: 0")
	is(util.bytes(1), "1 B", "bytes: 1")
	is(util.bytes(1023), "1023 B", "bytes: 1023 stays in bytes")
	is(util.bytes(1024), "1.00 KiB", "bytes: 1024 is 1.00 KiB")
	is(util.bytes(1536), "1.50 KiB", "bytes: 1536 is 1.50 KiB")
	is(util.bytes(10 * 1024), "10.0 KiB", "bytes: three significant digits at 10")
	is(util.bytes(100 * 1024), "100 KiB", "bytes: three significant digits at 100")
	is(util.bytes(9.996 * 1024), "10.0 KiB", "bytes: 9.996 KiB rounds to 10.0, not 10.00")
	is(util.bytes(1048575), "1.00 MiB", "bytes: 1023.999 KiB moves up to MiB")
	is(util.bytes(math.floor(3.2 * 2^20)), "3.20 MiB", "bytes: MiB")
	is(util.bytes(2^30), "1.00 GiB", "bytes: GiB")
	is(util.bytes(5.5 * 2^40), "5.50 TiB", "bytes: TiB")
	is(util.bytes(2^60), "1.00 EiB", "bytes: EiB")
	is(util.bytes(2^70), "1024 EiB", "bytes: past the last unit stays in EiB")
	is(util.bytes(-2048), "-2.00 KiB", "bytes: negative")
	is(util.bytes(0.5), "0.5 B", "bytes: fractional byte")
	is(util.bytes(1 / 0), "inf B", "bytes: inf")
	is(util.bytes(0 / 0), "nan B", "bytes: nan")
	raises(function() util.bytes("1") end, "util.bytes: bad argument #1 (number expected, got string)",
		"bytes: string raises")

	-- count ----------------------------------------------------------------
	is(util.count(0), "0", "count: 0")
	is(util.count(999), "999", "count: 999")
	is(util.count(1000), "1,000", "count: 1000")
	is(util.count(1234567), "1,234,567", "count: 1234567")
	is(util.count(-1234567), "-1,234,567", "count: negative")
	is(util.count(-999), "-999", "count: negative without separator")
	is(util.count(123456), "123,456", "count: no leading comma")
	is(util.count(3.0), "3", "count: integral float")
	is(util.count(1234.5), "1,234.50", "count: fraction kept")
	is(util.count(1e20), "100,000,000,000,000,000,000", "count: float past 2^63")
	is(util.count(math.maxinteger), "9,223,372,036,854,775,807", "count: maxinteger")
	is(util.count(math.mininteger), "-9,223,372,036,854,775,808", "count: mininteger")
	is(util.count(0 / 0), "nan", "count: nan")
	raises(function() util.count({}) end, "number expected, got table", "count: table raises")

	-- percent / ratio --------------------------------------------------------
	is(util.percent(0.1234), "12.3 %", "percent: default one decimal")
	is(util.percent(0.5, 0), "50 %", "percent: zero decimals")
	is(util.percent(1 / 3, 2), "33.33 %", "percent: two decimals")
	is(util.percent(0), "0.0 %", "percent: zero")
	is(util.percent(1), "100.0 %", "percent: one")
	is(util.percent(0 / 0), "nan %", "percent: nan")
	raises(function() util.percent(0.5, 2.5) end, "integer expected, got 2.5", "percent: fractional digits raise")
	raises(function() util.percent("0.5") end, "number expected, got string", "percent: string raises")
	is(util.ratio(12.34), "12.3x", "ratio: default")
	is(util.ratio(49, 0), "49x", "ratio: zero decimals")
	is(util.ratio(1 / 0), "inf x", "ratio: inf")

	-- round ------------------------------------------------------------------
	is(util.round(2.5), 3, "round: half away from zero")
	is(util.round(-2.5), -3, "round: negative half away from zero")
	is(util.round(2.4), 2, "round: down")
	is(math.type(util.round(3.7)), "integer", "round: integral result is an integer")
	is(math.type(util.round(-0.4)), "integer", "round: -0.4 gives integer 0")
	is(util.round(1.005, 2), 1.01, "round: 1.005 -> 1.01 as it reads")
	is(util.round(2.675, 2), 2.68, "round: 2.675 -> 2.68")
	is(util.round(0.1 + 0.2, 1), 0.3, "round: 0.1 + 0.2 -> 0.3 exactly")
	is(util.round(1234, -2), 1200, "round: negative digits")
	is(util.round(1250, -2), 1300, "round: negative digits, half up")
	is(math.type(util.round(1234, -2)), "integer", "round: negative digits give integers")
	is(util.round(7), 7, "round: integer unchanged")
	is(math.type(util.round(7, 2)), "integer", "round: integer with digits stays integer")
	is(util.round(2^53 + 0.0), 2^53, "round: huge float unchanged")
	is(util.round(1e300, 2), 1e300, "round: 1e300 unchanged")
	is(util.round(0 / 0), 0 / 0, "round: nan")
	is(util.round(-1 / 0), -1 / 0, "round: -inf")
	raises(function() util.round(1, "2") end, "util.round: bad argument #2 (integer expected, got string)",
		"round: string digits raise")

	-- clamp ------------------------------------------------------------------
	is(util.clamp(5, 0, 10), 5, "clamp: inside")
	is(util.clamp(-1, 0, 10), 0, "clamp: below")
	is(util.clamp(11, 0, 10), 10, "clamp: above")
	is(util.clamp(1 / 0, 0, 1), 1, "clamp: inf")
	is(util.clamp(5, 5, 5), 5, "clamp: empty-width range")
	is(util.clamp(0 / 0, 0, 1), 0 / 0, "clamp: nan stays nan")
	raises(function() util.clamp(1, 2, 1) end, "util.clamp: empty range (lo 2 > hi 1)", "clamp: lo > hi raises")

	-- keys / sort_keys ---------------------------------------------------------
	local mixed = { 10, 20, 30, [-1] = 1, [0] = 1, [2.5] = 1, [100] = 1,
		b = 1, B = 1, a = 1, _ = 1, [true] = 1, [false] = 1 }
	list_is(util.keys(mixed), { -1, 0, 1, 2, 2.5, 3, 100, "B", "_", "a", "b", false, true },
		"keys: numbers, then strings in byte order, then others")
	list_is(util.sort_keys({ "é", "z", "a", "Z" }), { "Z", "a", "z", "é" },
		"sort_keys: byte order, whatever the locale")
	list_is(util_bytewise.sort_keys({ "é", "z", "ab", "a", "Z", "", "a\0" }), { "", "Z", "a", "a\0", "ab", "z", "é" },
		"sort_keys: bytewise comparison without os")
	list_is(util.keys({}), {}, "keys: empty table")
	local trap = setmetatable({ x = 1 }, {
		__index = function() error("__index called") end,
		__pairs = function() error("__pairs called") end,
	})
	list_is(util.keys(trap), { "x" }, "keys: no __index or __pairs")
	local badkey = setmetatable({}, { __tostring = function() error("boom") end })
	ok(pcall(util.keys, { [badkey] = 1, [print] = 2, x = 3 }), "keys: a key with a raising __tostring")
	raises(function() util.keys("x") end, "util.keys: bad argument #1 (table expected, got string)",
		"keys: non-table raises")

	-- copy -------------------------------------------------------------------
	local inner = {}
	local src = setmetatable({ 1, 2, a = inner }, { __pairs = function() error("__pairs called") end })
	local c = util.copy(src)
	ok(c ~= src and c[1] == 1 and c[2] == 2 and c.a == inner, "copy: shallow, same nested table")
	is(getmetatable(c), nil, "copy: metatable not copied")

	-- merge ------------------------------------------------------------------
	local defaults = { sparsity = 0.5, epochs = 3, verbose = false, layers = { "fc1" }, name = "x", fast = true }
	local m = util.merge(defaults, { sparsity = 0.9 })
	ok(m.sparsity == 0.9 and m.epochs == 3 and m ~= defaults, "merge: override applied to a new table")
	is(defaults.sparsity, 0.5, "merge: defaults untouched")
	m = util.merge(defaults)
	ok(m ~= defaults and m.epochs == 3, "merge: nil overrides give a copy")
	m = util.merge(defaults, { sparsity = "0.75", fast = "false", epochs = "7" })
	ok(m.sparsity == 0.75 and m.fast == false and m.epochs == 7, "merge: command-line strings converted")
	m = util.merge(defaults, { verbose = { 1 } })
	is(type(m.verbose), "table", "merge: a false default accepts any type")
	local e, where = err(function() local _ = util.merge(defaults, { sparsty = 1, epoch = 2 }, "prune") end), here()
	is(e and e:match(":%d+: (.*)$"),
		"prune: unknown parameters 'epoch', 'sparsty' (allowed: epochs, fast, layers, name, sparsity, verbose)",
		"merge: names every unknown key and lists the allowed ones")
	located(e, where, "merge: error points at the caller")
	raises(function() util.merge(defaults, { bogus = 1 }) end, "parameters: unknown parameter 'bogus' (allowed:",
		"merge: default name")
	raises(function() util.merge(defaults, { epochs = "many" }) end,
		"parameter 'epochs' must be a number like its default (got string \"many\")", "merge: type mismatch")
	raises(function() util.merge(defaults, { layers = "fc1" }) end,
		"parameter 'layers' must be a table like its default (got string", "merge: table default")
	raises(function() util.merge(defaults, { [1] = 2 }) end, "unknown parameter [1]", "merge: positional key")

	-- check_options --------------------------------------------------------------
	local spec = { lr = "number", steps = { "integer", 10 }, name = { "string", required = true },
		flag = "table|boolean", any = "any" }
	local function api(opts)
		local o = util.check_options(opts, spec, "api")
		return o
	end
	local input = { lr = 0.1, name = "n" }
	local o = api(input)
	ok(o ~= input and o.lr == 0.1 and o.steps == 10 and o.name == "n", "check_options: defaults filled")
	is(input.steps, nil, "check_options: input not modified")
	o = api({ name = "n", steps = 4.0 })
	is(math.type(o.steps), "integer", "check_options: integral float converted to integer")
	o = api({ name = "n", flag = true, any = print })
	ok(o.flag == true and o.any == print, "check_options: alternatives and any")
	e, where = err(function() local _ = api({ name = "n", lx = 1 }) end), here()
	is(e and e:match(":%d+: (.*)$"), "api: unknown option 'lx' (expected one of: any, flag, lr, name, steps)",
		"check_options: unknown option message")
	located(e, where, "check_options: unknown option raised at level 3 (the caller of api)")
	e, where = err(function() local _ = api({ name = "n", lr = "fast" }) end), here()
	is(e and e:match(":%d+: (.*)$"), "api: option 'lr' must be a number (got string)",
		"check_options: wrong type message")
	located(e, where, "check_options: wrong type raised at the caller of api")
	raises(function() api({ name = "n", steps = 2.5 }) end, "api: option 'steps' must be an integer (got 2.5)",
		"check_options: non-integral number for an integer")
	raises(function() api({ name = "n", flag = 1 }) end, "api: option 'flag' must be a table or a boolean (got 1)",
		"check_options: alternatives in the message")
	e, where = err(function() local _ = api({}) end), here()
	is(e and e:match(":%d+: (.*)$"), "api: option 'name' is required (a string)", "check_options: required option")
	located(e, where, "check_options: required raised at the caller of api")
	raises(function() api("x") end, "api: options must be a table (got string)", "check_options: non-table options")
	raises(function() api({ "positional" }) end, "api: unknown option [1]", "check_options: positional entry")
	o = util.check_options(nil, { a = { "number", 1 } }, "f")
	is(o.a, 1, "check_options: nil opts use defaults")
end

tap.run(run)
