-- lathe.util: small helpers for recipes and reports.
--
--   local util = require "lathe.util"
--
-- Formatting (all return strings; nan and inf print as "nan", "inf", "-inf"):
--   util.bytes(n)            size in binary units with three significant
--                            digits: 512 -> "512 B", 1536 -> "1.50 KiB",
--                            3355443 -> "3.20 MiB"; units up to EiB.
--                            Negative sizes keep their sign.
--   util.count(n)            integer with thousands separators:
--                            1234567 -> "1,234,567"; a non-integer keeps two
--                            decimals: 1234.5 -> "1,234.50".
--   util.percent(x [, digits])  fraction as a percentage, digits (default 1)
--                            decimals: 0.1234 -> "12.3 %".
--   util.ratio(x [, digits]) compression ratio, digits (default 1) decimals:
--                            12.34 -> "12.3x".
--
-- Numbers:
--   util.round(x [, digits]) x rounded to digits decimals (default 0; may be
--                            negative: round(1234, -2) == 1200), half away
--                            from zero as the number reads in decimal
--                            (round(1.005, 2) == 1.01). Integral results for
--                            digits <= 0 are Lua integers when they fit;
--                            nan and inf are returned unchanged.
--   util.clamp(x, lo, hi)    x limited to [lo, hi]; nan stays nan.
--                            Raises if lo > hi.
--
-- Tables (all use raw access: no __index, __newindex or __pairs):
--   util.keys(t)             list of t's keys in lathe's key order:
--                            numbers ascending, then strings in byte order,
--                            then other keys by their tostring().
--   util.sort_keys(list)     sorts a list of keys in place in that order and
--                            returns it (pretty printing uses it).
--   util.copy(t)             shallow copy; the metatable is not copied.
--   util.merge(defaults, overrides [, name])
--                            new table: defaults with overrides applied; how
--                            recipes validate their parameters. Raises,
--                            naming every offending key and listing the
--                            allowed ones, when overrides has a key that
--                            defaults lacks:
--                              "name: unknown parameter 'x' (allowed: a, b)"
--                            An override must have the type of its default,
--                            except that strings from a command line are
--                            converted when the default is a number ("0.5")
--                            or a boolean ("true"/"false"), and a default of
--                            false ("unset") accepts any value. name
--                            (default "parameters") prefixes messages; errors
--                            point at the caller of merge.
--   util.check_options(opts, spec, fname)
--                            validates an options table for function fname
--                            and returns a new table with defaults filled
--                            in (opts may be nil). spec maps each option
--                            name to its type, or to {type, default} or
--                            {type, required = true}. A type is a Lua type
--                            name, "integer" (a number with an integral
--                            value, converted to a Lua integer), "any", or
--                            alternatives joined by "|" ("table|boolean").
--                            Errors are raised at level 3, i.e. at the line
--                            that called fname:
--                              "fname: unknown option 'x' (expected one of: a, b)"
--                              "fname: option 'x' must be a number (got string)"
--                              "fname: option 'x' is required (a number)"

local util = {}

local type, tostring, tonumber, pcall, next, ipairs = type, tostring, tonumber, pcall, next, ipairs
local rawget, rawset, error = rawget, rawset, error
local mtype, floor, abs, huge, tointeger = math.type, math.floor, math.abs, math.huge, math.tointeger
local fmt, byte = string.format, string.byte
local concat, sort = table.concat, table.sort
-- os may be missing in the sandbox; then string order is computed bytewise.
local setlocale = type(os) == "table" and os.setlocale or nil

-- Raise "util.fn: bad argument #i (number expected, got string)" at the
-- line that called util.fn.
local function argcheck(cond, fname, i, expected, v)
	if not cond then
		error(fmt("util.%s: bad argument #%d (%s expected, got %s)",
			fname, i, expected, type(v)), 3)
	end
end

local function nonfinite(x)
	if x ~= x then return "nan" end
	if x == huge then return "inf" end
	if x == -huge then return "-inf" end
	return nil
end

-- bytes --------------------------------------------------------------------

local UNITS = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" }

function util.bytes(n)
	argcheck(type(n) == "number", "bytes", 1, "number", n)
	local nf = nonfinite(n)
	if nf then return nf .. " B" end
	local sign = n < 0 and "-" or ""
	local v = abs(n)
	if v < 1024 then
		if v == floor(v) then return fmt("%s%.0f B", sign, v) end
		return fmt("%s%.1f B", sign, v)
	end
	local u = 0
	-- 1023.5 KiB would print as "1024 KiB": move to the next unit instead.
	while (v >= 1023.5) and u < #UNITS do
		v = v / 1024
		u = u + 1
	end
	-- Three significant digits, choosing the format by the rounded value so
	-- that 9.996 prints as "10.0", not "10.00".
	local f
	if v < 9.995 then f = "%s%.2f %s"
	elseif v < 99.95 then f = "%s%.1f %s"
	else f = "%s%.0f %s" end
	return fmt(f, sign, v, UNITS[u])
end

-- count ----------------------------------------------------------------------

function util.count(n)
	argcheck(type(n) == "number", "count", 1, "number", n)
	local nf = nonfinite(n)
	if nf then return nf end
	local s
	if mtype(n) == "integer" then
		s = fmt("%d", n)
	elseif n == floor(n) then
		s = fmt("%.0f", n)
	else
		s = fmt("%.2f", n)
	end
	local sign, int, rest = s:match("^(%-?)(%d+)(.*)$")
	-- Group from the right: reverse, add a comma after every third digit.
	int = int:reverse():gsub("(%d%d%d)", "%1,"):reverse()
	if int:sub(1, 1) == "," then int = int:sub(2) end
	return sign .. int .. rest
end

-- percent / ratio ------------------------------------------------------------

local function digits_arg(d, fname)
	if d == nil then return 1 end
	if mtype(d) ~= "integer" then
		local i = type(d) == "number" and tointeger(d)
		if not i then
			error(fmt("util.%s: bad argument #2 (integer expected, got %s)",
				fname, type(d) == "number" and tostring(d) or type(d)), 3)
		end
		d = i
	end
	if d < 0 or d > 17 then
		error(fmt("util.%s: bad argument #2 (digits must be 0..17, got %d)", fname, d), 3)
	end
	return d
end

function util.percent(x, digits)
	argcheck(type(x) == "number", "percent", 1, "number", x)
	local d = digits_arg(digits, "percent")
	local nf = nonfinite(x)
	if nf then return nf .. " %" end
	return fmt("%." .. d .. "f %%", x * 100)
end

function util.ratio(x, digits)
	argcheck(type(x) == "number", "ratio", 1, "number", x)
	local d = digits_arg(digits, "ratio")
	local nf = nonfinite(x)
	if nf then return nf .. " x" end
	return fmt("%." .. d .. "fx", x)
end

-- round / clamp --------------------------------------------------------------

function util.round(x, digits)
	argcheck(type(x) == "number", "round", 1, "number", x)
	digits = digits or 0
	local d = type(digits) == "number" and tointeger(digits) or nil
	argcheck(d ~= nil, "round", 2, "integer", digits)
	if x ~= x or x == huge or x == -huge then return x end
	if mtype(x) == "integer" and d >= 0 then return x end
	if d > 300 or d < -300 then return x end
	local scale = 10.0 ^ abs(d)
	local y = d >= 0 and x * scale or x / scale
	-- Past 2^52 every float is already integral.
	if abs(y) >= 2^52 then return x end
	-- Reading y back at 15 significant digits washes out the binary error of
	-- x * scale, so 1.005 * 100 = 100.49999999999999 rounds as 100.5.
	local yr = tonumber(fmt("%.15g", y))
	local r = floor(abs(yr) + 0.5)
	if yr < 0 then r = -r end
	local out = d >= 0 and r / scale or r * scale
	if d <= 0 then
		local i = tointeger(out)
		if i then return i end
	end
	return out
end

function util.clamp(x, lo, hi)
	argcheck(type(x) == "number", "clamp", 1, "number", x)
	argcheck(type(lo) == "number", "clamp", 2, "number", lo)
	argcheck(type(hi) == "number", "clamp", 3, "number", hi)
	if not (lo <= hi) then
		error(fmt("util.clamp: empty range (lo %s > hi %s)", tostring(lo), tostring(hi)), 2)
	end
	if x ~= x then return x end
	if x < lo then return lo end
	if x > hi then return hi end
	return x
end

-- key order --------------------------------------------------------------------

-- Byte-order string comparison. Lua's < uses strcoll, which follows the
-- locale (lathe sets one for ncurses), so it is used only under C/POSIX.
local function bytes_less(a, b)
	if a == b then return false end
	local n = #a < #b and #a or #b
	local i = 1
	while i <= n do
		local x, y = byte(a, i), byte(b, i)
		if x ~= y then return x < y end
		i = i + 1
	end
	return #a < #b
end

local function native_less(a, b) return a < b end

local C_LOCALES = { C = true, POSIX = true, ["C.UTF-8"] = true, ["C.utf8"] = true }

local function string_less()
	if setlocale then
		local ok, loc = pcall(setlocale, nil, "collate")
		if ok and C_LOCALES[loc] then return native_less end
	end
	return bytes_less
end

-- tostring that never raises (a bad __tostring falls back to the address).
local function safe_tostring(v)
	local ok, s = pcall(tostring, v)
	if ok and type(s) == "string" then return s end
	return fmt("<%s: %p>", type(v), v)
end

function util.sort_keys(list)
	argcheck(type(list) == "table", "sort_keys", 1, "table", list)
	local nums, nans, strs, others = {}, {}, {}, {}
	local i = 1
	while true do
		local k = rawget(list, i)
		if k == nil then break end
		local tk = type(k)
		if tk == "number" then
			if k ~= k then nans[#nans + 1] = k else nums[#nums + 1] = k end
		elseif tk == "string" then
			strs[#strs + 1] = k
		else
			-- Decorate once: tostring may be slow or differ between calls.
			others[#others + 1] = { k = k, s = safe_tostring(k) }
		end
		i = i + 1
	end
	local less = string_less()
	sort(nums)
	sort(strs, less)
	sort(others, function(a, b) return less(a.s, b.s) end)
	local n = 0
	for _, part in ipairs({ nums, nans, strs }) do
		for j = 1, #part do n = n + 1; rawset(list, n, part[j]) end
	end
	for j = 1, #others do n = n + 1; rawset(list, n, others[j].k) end
	return list
end

function util.keys(t)
	argcheck(type(t) == "table", "keys", 1, "table", t)
	local list = {}
	for k in next, t do list[#list + 1] = k end
	return util.sort_keys(list)
end

function util.copy(t)
	argcheck(type(t) == "table", "copy", 1, "table", t)
	local c = {}
	for k, v in next, t do c[k] = v end
	return c
end

-- Quote a key for messages: strings as 'x', others as [tostring].
local function keyname(k)
	if type(k) == "string" then return "'" .. k .. "'" end
	return "[" .. safe_tostring(k) .. "]"
end

local function keylist(t)
	local ks = util.keys(t)
	for i = 1, #ks do ks[i] = type(ks[i]) == "string" and ks[i] or "[" .. safe_tostring(ks[i]) .. "]" end
	return concat(ks, ", ")
end

-- merge ------------------------------------------------------------------------

local function coerce(default, v)
	local td, tv = type(default), type(v)
	if td == tv or default == false then return true, v end
	if tv == "string" then
		if td == "number" then
			local n = tonumber(v)
			if n then return true, n end
		elseif td == "boolean" then
			if v == "true" then return true, true end
			if v == "false" then return true, false end
		end
	end
	return false
end

function util.merge(defaults, overrides, name)
	argcheck(type(defaults) == "table", "merge", 1, "table", defaults)
	argcheck(overrides == nil or type(overrides) == "table", "merge", 2, "table or nil", overrides)
	argcheck(name == nil or type(name) == "string", "merge", 3, "string or nil", name)
	name = name or "parameters"
	local out = util.copy(defaults)
	if overrides == nil then return out end
	local unknown = {}
	for k in next, overrides do
		if rawget(defaults, k) == nil then unknown[#unknown + 1] = k end
	end
	if #unknown > 0 then
		util.sort_keys(unknown)
		for i = 1, #unknown do unknown[i] = keyname(unknown[i]) end
		error(fmt("%s: unknown parameter%s %s (allowed: %s)", name,
			#unknown > 1 and "s" or "", concat(unknown, ", "), keylist(defaults)), 2)
	end
	for _, k in ipairs(util.keys(overrides)) do
		local d, v = rawget(defaults, k), rawget(overrides, k)
		local ok, cv = coerce(d, v)
		if not ok then
			error(fmt("%s: parameter %s must be a %s like its default (got %s %s)",
				name, keyname(k), type(d), type(v),
				type(v) == "string" and fmt("%q", v) or safe_tostring(v)), 2)
		end
		out[k] = cv
	end
	return out
end

-- check_options ------------------------------------------------------------------

local function article(t)
	return (t:match("^[aeiou]") and "an " or "a ") .. t
end

-- "number|nil" -> "a number or nil"
local function describe(ty)
	local parts = {}
	for alt in ty:gmatch("[^|]+") do
		parts[#parts + 1] = (alt == "nil" or alt == "any") and alt or article(alt)
	end
	return concat(parts, " or ")
end

-- Returns ok, converted value.
local function type_ok(ty, v)
	for alt in ty:gmatch("[^|]+") do
		if alt == "any" or type(v) == alt then return true, v end
		if alt == "integer" and type(v) == "number" then
			local i = tointeger(v)
			if i then return true, i end
		end
	end
	return false
end

function util.check_options(opts, spec, fname)
	fname = fname or "options"
	if type(spec) ~= "table" then
		error(fmt("util.check_options: bad argument #2 (table expected, got %s)", type(spec)), 2)
	end
	if opts ~= nil and type(opts) ~= "table" then
		error(fmt("%s: options must be a table (got %s)", fname, type(opts)), 3)
	end
	opts = opts or {}
	for _, k in ipairs(util.keys(opts)) do
		if type(k) ~= "string" or rawget(spec, k) == nil then
			error(fmt("%s: unknown option %s (expected one of: %s)", fname, keyname(k), keylist(spec)), 3)
		end
	end
	local out = {}
	for _, k in ipairs(util.keys(spec)) do
		local s = rawget(spec, k)
		local ty, default, required
		if type(s) == "table" then
			ty, default, required = s[1], s[2], s.required
		else
			ty = s
		end
		local v = rawget(opts, k)
		if v == nil then
			if required then
				error(fmt("%s: option '%s' is required (%s)", fname, k, describe(ty)), 3)
			end
			v = default
		else
			local ok, cv = type_ok(ty, v)
			if not ok then
				local got = type(v)
				-- "must be an integer (got 2.5)" says more than "(got number)".
				if got == "number" then got = tostring(v) end
				error(fmt("%s: option '%s' must be %s (got %s)", fname, k, describe(ty), got), 3)
			end
			v = cv
		end
		out[k] = v
	end
	return out
end

return util
