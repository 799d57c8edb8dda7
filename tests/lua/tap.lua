-- The TAP harness of the Lua tests, loaded by each with
--   local tap = dofile((arg[0]:match("^(.*/)") or "./") .. "tap.lua")
-- Checks record results; tap.run(f) runs the test body f with strict
-- globals (reading or writing an undeclared global raises), adds a check
-- that no global was created, and prints the plan and the results.
local tap = {}
local results = {}
local globals_before = {}
for k in next, _G do globals_before[k] = true end

-- The script's file name, for tap.located ("t_util.lua").
local script = arg and arg[0] and arg[0]:match("([^/]*)$") or "?"

local function show(v)
	if type(v) == "string" then return string.format("%q", v) end
	if math.type(v) == "float" then return string.format("%.17g", v) end
	return tostring(v)
end
tap.show = show

function tap.report(pass, desc, diag)
	results[#results + 1] = {pass = pass, desc = desc, diag = diag}
end
local report = tap.report

function tap.ok(cond, desc, diag) report(not not cond, desc, diag) end

-- Equal values (NaN counts as equal to NaN).
function tap.is(got, want, desc)
	report(got == want or (got ~= got and want ~= want), desc, "got " .. show(got) .. ", expected " .. show(want))
end

function tap.like(got, pattern, desc)
	report(type(got) == "string" and got:find(pattern) ~= nil, desc,
		"got " .. show(got) .. ", expected to match " .. show(pattern))
end

function tap.near(got, want, tol, desc)
	report(type(got) == "number" and math.abs(got - want) <= tol, desc,
		"got " .. show(got) .. ", expected " .. show(want) .. " +- " .. tol)
end

-- The error message of f, or nil if it did not raise.
function tap.err(f)
	local okk, e = pcall(f)
	if okk then return nil end
	return tostring(e)
end

-- f must raise an error whose message contains text.
function tap.raises(f, text, desc)
	local e = tap.err(f)
	report(e ~= nil and e:find(text, 1, true) ~= nil, desc,
		e == nil and "did not raise" or "got " .. show(e) .. ", expected to contain " .. show(text))
end

-- "source:line:" of the caller's current line (nil without debug).
function tap.here()
	local info = debug and debug.getinfo(2, "Sl")
	return info and (info.short_src .. ":" .. info.currentline .. ":") or nil
end

-- The message e must start at `where` (from tap.here on the raising line):
-- the error level is right. Without debug, any line of this script will do.
function tap.located(e, where, desc)
	if where == nil then
		report(e ~= nil and e:find(script:gsub("%p", "%%%0") .. ":%d+:") ~= nil, desc, "got " .. show(e))
	else
		report(e ~= nil and e:sub(1, #where) == where, desc,
			"got " .. show(e) .. ", expected prefix " .. show(where))
	end
end

-- Print the plan and every result.
function tap.done()
	print("1.." .. #results)
	for i, r in ipairs(results) do
		print((r.pass and "ok " or "not ok ") .. i .. " - " .. r.desc)
		if not r.pass and r.diag then
			for line in (tostring(r.diag) .. "\n"):gmatch("(.-)\n") do print("# " .. line) end
		end
	end
end

-- Run the body f in strict mode, check no globals leaked, then tap.done().
function tap.run(f)
	local strict = getmetatable(_G) == nil
	if strict then
		setmetatable(_G, {
			__index = function(_, k) error("read of undeclared global " .. tostring(k), 2) end,
			__newindex = function(_, k) error("write of undeclared global " .. tostring(k), 2) end,
		})
	end
	local okrun, msg = xpcall(f, function(m) return debug and debug.traceback(tostring(m), 2) or tostring(m) end)
	if strict then setmetatable(_G, nil) end
	if not okrun then report(false, "test script ran to the end", msg) end
	local leaked = {}
	for k in next, _G do
		if not globals_before[k] then leaked[#leaked + 1] = tostring(k) end
	end
	table.sort(leaked)
	report(#leaked == 0, "no globals created", "new globals: " .. table.concat(leaked, ", "))
	tap.done()
end

-- Paths of the source tree (TOP_SRCDIR from make check, else relative).
tap.top = os.getenv("TOP_SRCDIR") or (arg and arg[0] and arg[0]:match("^(.*)/tests/lua/")) or "."
tap.tmp = os.getenv("TMPDIR") or "/tmp"

return tap
