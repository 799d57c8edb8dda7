-- lathe.pretty: readable one-line or indented text for any Lua value, and
-- aligned text tables for reports.
--
--   local pretty = require "lathe.pretty"
--
--   pretty.format(value [, opts]) -> string
--     Never raises on any value and never runs __index, __pairs or __len
--     (tables are read with next and rawget). opts (all optional):
--       depth  (3)   table levels expanded; the top table is level 1. A deeper
--                    non-empty table prints as {... 12 items}. At most 100
--                    (output grows with the square of the depth).
--       items  (40)  entries shown per table, then "... N more".
--       width  (72)  a table that fits on one line within this many columns
--                    (counting its indentation) prints inline,
--                    {1, 2, x = 3}; otherwise one entry per line.
--       indent ("  ") string, or number of spaces, per nesting level.
--     Bad opts raise an error at the caller's line.
--     Entries: the array part 1..n first, without keys; then other number
--     keys ascending, string keys in byte order, then other keys by
--     tostring(). Identifier keys print bare (name = 1), others in brackets
--     (["a b"] = 1, [2.5] = 1, [true] = 1).
--     Strings: double-quoted on one line; \ " and control characters are
--     escaped (\n, \t, \r, \a, \b, \f, \v, \0, else \xNN), as are bytes that
--     are not valid UTF-8; valid UTF-8 text prints as is.
--     Numbers: integers as is; floats with %.6g, plus ".0" when that would
--     look like an integer (3.0, -0.0, 100000.0); inf, -inf, nan.
--     A table already on the path from the root prints as <cycle> (the same
--     table reached twice by different paths prints twice).
--     A table whose metatable has __tostring prints as tostring() gives.
--     Userdata, functions and threads print as tostring() gives; if
--     __tostring raises or returns a non-string, as <type: address>.
--
--   pretty.print(...)
--     Prints each argument formatted with the default options, separated by
--     tabs, through the global print (lathe routes it to the REPL pane).
--     Strings are quoted; nil arguments are shown.
--
--   pretty.table(rows [, opts]) -> string
--     An aligned text table, one line per row, no trailing newline or
--     trailing spaces. rows is a list of lists (columns 1..n), or a list of
--     maps with opts.columns naming the keys to show, in order. opts:
--       columns  list of keys; required for map rows.
--       headers  list of header strings; true: the column keys; false:
--                none. Default: the column keys when opts.columns is given,
--                none otherwise.
--       format   per-column formats, keyed by column key or position: a
--                printf format ("%.2f") or a function(value, row) returning
--                the cell text. Default: strings as is, numbers as in
--                pretty.format, nil as opts.missing.
--       missing  ("") text for a nil cell.
--       sep      ("  ") between columns.
--       rule     (true) a line of dashes under the headers.
--     Columns whose values are all numbers (nils aside) are right-aligned,
--     header included; others left-aligned. Widths count UTF-8 characters.

local util = require "lathe.util"

local pretty = {}

local type, tostring, pcall, next, rawget, select = type, tostring, pcall, next, rawget, select
local mtype, floor, huge = math.type, math.floor, math.huge
local fmt, byte, sub, rep, find = string.format, string.byte, string.sub, string.rep, string.find
local concat = table.concat
local utf8len = utf8.len
-- debug.getmetatable sees through __metatable; the sandbox may lack debug.
local getmt = type(debug) == "table" and debug.getmetatable or getmetatable

local function safe_tostring(v)
	local ok, s = pcall(tostring, v)
	if ok and type(s) == "string" then return s end
	return fmt("<%s: %p>", type(v), v)
end

-- Display width: UTF-8 characters, or bytes when not valid UTF-8.
local function width_of(s)
	return utf8len(s) or #s
end

-- Numbers ------------------------------------------------------------------

local function number(x)
	if mtype(x) == "integer" then return fmt("%d", x) end
	if x ~= x then return "nan" end
	if x == huge then return "inf" end
	if x == -huge then return "-inf" end
	local s = fmt("%.6g", x)
	-- Keep floats recognisable: 3.0 is not 3.
	if x == floor(x) and not find(s, "[%.e]") then s = s .. ".0" end
	return s
end

-- Strings ------------------------------------------------------------------

local ESC = {
	[0] = "\\0", [7] = "\\a", [8] = "\\b", [9] = "\\t", [10] = "\\n",
	[11] = "\\v", [12] = "\\f", [13] = "\\r", [34] = '\\"', [92] = "\\\\",
}

-- Length of the valid UTF-8 sequence starting at i (lead byte c >= 0x80),
-- or nil. Rejects overlong forms, surrogates and code points past U+10FFFF.
local function utf8_seq(s, i, c)
	local n, lo, hi
	if c >= 0xC2 and c <= 0xDF then n, lo, hi = 2, 0x80, 0xBF
	elseif c == 0xE0 then n, lo, hi = 3, 0xA0, 0xBF
	elseif c == 0xED then n, lo, hi = 3, 0x80, 0x9F
	elseif c >= 0xE1 and c <= 0xEF then n, lo, hi = 3, 0x80, 0xBF
	elseif c == 0xF0 then n, lo, hi = 4, 0x90, 0xBF
	elseif c >= 0xF1 and c <= 0xF3 then n, lo, hi = 4, 0x80, 0xBF
	elseif c == 0xF4 then n, lo, hi = 4, 0x80, 0x8F
	else return nil end
	local c2 = byte(s, i + 1)
	if not c2 or c2 < lo or c2 > hi then return nil end
	for j = i + 2, i + n - 1 do
		local cj = byte(s, j)
		if not cj or cj < 0x80 or cj > 0xBF then return nil end
	end
	-- C1 controls (U+0080..U+009F) would act on the terminal: escape them.
	if c == 0xC2 and c2 < 0xA0 then return nil end
	return n
end

local function quote(s)
	-- Fast path: plain printable ASCII.
	if not find(s, '[\0-\31"\\\127-\255]') then return '"' .. s .. '"' end
	local out, n, i, len = {}, 0, 1, #s
	while i <= len do
		local c = byte(s, i)
		local piece, step = nil, 1
		if ESC[c] then
			piece = ESC[c]
			-- "\0" followed by a digit would read as another escape.
			if c == 0 then
				local d = byte(s, i + 1)
				if d and d >= 48 and d <= 57 then piece = "\\x00" end
			end
		elseif c < 32 or c == 127 then
			piece = fmt("\\x%02x", c)
		elseif c < 128 then
			piece = sub(s, i, i)
		else
			local k = utf8_seq(s, i, c)
			if k then piece, step = sub(s, i, i + k - 1), k
			else piece = fmt("\\x%02x", c) end
		end
		n = n + 1
		out[n] = piece
		i = i + step
	end
	return '"' .. concat(out) .. '"'
end

-- Keys -----------------------------------------------------------------------

local RESERVED = {}
for w in ([[and break do else elseif end false for function goto if in
	local nil not or repeat return then true until while]]):gmatch("%a+") do
	RESERVED[w] = true
end

local function key_text(k)
	local tk = type(k)
	if tk == "string" then
		if find(k, "^[A-Za-z_][A-Za-z0-9_]*$") and not RESERVED[k] then
			return k .. " = "
		end
		return "[" .. quote(k) .. "] = "
	elseif tk == "number" then
		return "[" .. number(k) .. "] = "
	end
	return "[" .. safe_tostring(k) .. "] = "
end

-- Values ---------------------------------------------------------------------

-- tostring() of a table with a __tostring metamethod, or nil.
local function table_tostring(t)
	local ok, mt = pcall(getmt, t)
	if not ok or type(mt) ~= "table" or rawget(mt, "__tostring") == nil then
		return nil
	end
	return safe_tostring(t)
end

local function scalar(v)
	local tv = type(v)
	if tv == "string" then return quote(v) end
	if tv == "number" then return number(v) end
	if tv == "nil" or tv == "boolean" then return tostring(v) end
	return safe_tostring(v)
end

local render

-- t's first `limit` entries as {key text, value} pairs, and the total count.
-- Array part first, then the other keys sorted (all of them: the shown ones
-- must not depend on next()'s order).
local function entries(t, limit)
	local n = 0
	while rawget(t, n + 1) ~= nil do n = n + 1 end
	local others = {}
	for k in next, t do
		if not (mtype(k) == "integer" and k >= 1 and k <= n) then
			others[#others + 1] = k
		end
	end
	local total = n + #others
	local list = {}
	if limit == 0 then return list, total end
	for i = 1, n < limit and n or limit do list[i] = { "", rawget(t, i) } end
	if #list < limit and #others > 0 then
		util.sort_keys(others)
		for j = 1, #others do
			if #list >= limit then break end
			local k = others[j]
			list[#list + 1] = { key_text(k), rawget(t, k) }
		end
	end
	return list, total
end

local function plural(n, word)
	return fmt("%d %s%s", n, word, n == 1 and "" or "s")
end

-- level: nesting of t (0 = top); col: column where t starts; tail: columns
-- needed after it on its line (a comma).
function render(v, st, level, col, tail)
	if type(v) ~= "table" then return scalar(v) end
	local s = table_tostring(v)
	if s then return s end
	if st.path[v] then return "<cycle>" end
	if level >= st.depth then
		local _, total = entries(v, 0)
		if total == 0 then return "{}" end
		return "{... " .. plural(total, "item") .. "}"
	end
	local list, total = entries(v, st.items)
	if total == 0 then return "{}" end

	st.path[v] = true
	local pad = rep(st.indent, level + 1)
	local parts, multiline = {}, false
	for i = 1, #list do
		local k, val = list[i][1], list[i][2]
		local text = k .. render(val, st, level + 1, #pad + width_of(k), 1)
		if find(text, "\n", 1, true) then multiline = true end
		parts[i] = text
	end
	st.path[v] = nil
	if total > #list then parts[#parts + 1] = "... " .. (total - #list) .. " more" end

	if not multiline then
		local line = "{" .. concat(parts, ", ") .. "}"
		if col + width_of(line) + tail <= st.width then return line end
	end
	return "{\n" .. pad .. concat(parts, ",\n" .. pad) .. "\n" .. rep(st.indent, level) .. "}"
end

local FORMAT_OPTS = {
	depth = { "integer", 3 },
	items = { "integer", 40 },
	width = { "integer", 72 },
	indent = { "string|integer", "  " },
}

function pretty.format(value, opts)
	local o = util.check_options(opts, FORMAT_OPTS, "pretty.format")
	if o.depth < 0 or o.items < 0 then
		error("pretty.format: depth and items must be >= 0", 2)
	end
	local indent = o.indent
	if type(indent) == "number" then
		if indent < 0 or indent > 64 then error("pretty.format: indent must be 0..64 spaces", 2) end
		indent = rep(" ", indent)
	end
	-- Each level re-concatenates its subtree and indents it further, so
	-- the cost grows with depth^3: cap it at a depth no reader wants anyway.
	local st = { depth = o.depth < 100 and o.depth or 100, items = o.items, width = o.width, indent = indent, path = {} }
	return render(value, st, 0, 0, 0)
end

function pretty.print(...)
	local n = select("#", ...)
	local parts = {}
	for i = 1, n do parts[i] = pretty.format((select(i, ...))) end
	print(concat(parts, "\t"))
end

-- Tables -------------------------------------------------------------------

local TABLE_OPTS = {
	columns = "table",
	headers = "table|boolean",
	format = "table",
	missing = { "string", "" },
	sep = { "string", "  " },
	rule = { "boolean", true },
}

local function cell_text(v, f, row, missing)
	if f ~= nil and v ~= nil then
		if type(f) == "function" then return safe_tostring(f(v, row)) end
		local ok, s = pcall(fmt, f, v)
		if not ok then
			error(fmt("pretty.table: format %q cannot print %s: %s", f, safe_tostring(v), s), 3)
		end
		return s
	end
	if v == nil then return missing end
	if type(v) == "string" then return v end
	if type(v) == "number" then return number(v) end
	return safe_tostring(v)
end

function pretty.table(rows, opts)
	if type(rows) ~= "table" then
		error(fmt("pretty.table: bad argument #1 (table expected, got %s)", type(rows)), 2)
	end
	local o = util.check_options(opts, TABLE_OPTS, "pretty.table")
	local nrows = 0
	while rawget(rows, nrows + 1) ~= nil do nrows = nrows + 1 end

	local cols = o.columns
	if cols == nil then
		-- List rows: as many columns as the longest row.
		local ncols = 0
		for r = 1, nrows do
			local row = rows[r]
			if type(row) ~= "table" then
				error(fmt("pretty.table: row %d is a %s, not a table", r, type(row)), 2)
			end
			local n = 0
			for k in next, row do
				if mtype(k) ~= "integer" or k < 1 then
					error(fmt("pretty.table: row %d has key %s; rows that are maps need opts.columns",
						r, (key_text(k):gsub(" = $", ""))), 2)
				end
				if k > n then n = k end
			end
			if n > ncols then ncols = n end
		end
		cols = {}
		for i = 1, ncols do cols[i] = i end
	end
	local ncols = #cols

	local headers = o.headers
	if headers == nil then
		headers = false
		if o.columns then
			headers = {}
			for i = 1, ncols do headers[i] = tostring(cols[i]) end
		end
	elseif headers == true then
		headers = {}
		for i = 1, ncols do headers[i] = tostring(cols[i]) end
	end

	local fmts = o.format or {}
	local cells, widths, numeric = {}, {}, {}
	for c = 1, ncols do
		widths[c], numeric[c] = 0, nil
		local f = fmts[cols[c]]
		if f == nil then f = fmts[c] end
		if f ~= nil and type(f) ~= "string" and type(f) ~= "function" then
			error(fmt("pretty.table: format for column %s must be a string or function (got %s)",
				tostring(cols[c]), type(f)), 2)
		end
		for r = 1, nrows do
			local row = rows[r]
			if type(row) ~= "table" then
				error(fmt("pretty.table: row %d is a %s, not a table", r, type(row)), 2)
			end
			local v = row[cols[c]]
			if v ~= nil then numeric[c] = (numeric[c] ~= false) and type(v) == "number" end
			local text = cell_text(v, f, row, o.missing)
			cells[r] = cells[r] or {}
			cells[r][c] = text
			local w = width_of(text)
			if w > widths[c] then widths[c] = w end
		end
		if headers then
			local h = headers[c] ~= nil and tostring(headers[c]) or ""
			local w = width_of(h)
			if w > widths[c] then widths[c] = w end
		end
	end

	local function line(texts)
		local out = {}
		for c = 1, ncols do
			local t = texts[c] or ""
			local padn = widths[c] - width_of(t)
			if numeric[c] then out[c] = rep(" ", padn) .. t
			else out[c] = t .. rep(" ", padn) end
		end
		return (concat(out, o.sep):gsub("%s+$", ""))
	end

	local lines = {}
	if headers then
		local hs = {}
		for c = 1, ncols do hs[c] = headers[c] ~= nil and tostring(headers[c]) or "" end
		lines[#lines + 1] = line(hs)
		if o.rule then
			local dashes = {}
			for c = 1, ncols do dashes[c] = rep("-", widths[c]) end
			lines[#lines + 1] = concat(dashes, o.sep)
		end
	end
	for r = 1, nrows do lines[#lines + 1] = line(cells[r]) end
	return concat(lines, "\n")
end

return pretty
