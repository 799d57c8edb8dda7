-- A small TAP harness for the Lua API tests (loaded with dofile).
local T = {n = 0, failed = 0}

local function show(v)
	if type(v) == "string" then return string.format("%q", v) end
	return tostring(v)
end

function T.ok(cond, desc, diag)
	T.n = T.n + 1
	if cond then
		print(("ok %d - %s"):format(T.n, desc))
	else
		T.failed = T.failed + 1
		print(("not ok %d - %s"):format(T.n, desc))
		if diag then print("# " .. tostring(diag):gsub("\n", "\n# ")) end
	end
end

function T.is(got, want, desc)
	T.ok(got == want, desc, "got " .. show(got) .. ", expected " .. show(want))
end

function T.near(got, want, tol, desc)
	T.ok(type(got) == "number" and math.abs(got - want) <= tol, desc,
		"got " .. show(got) .. ", expected " .. show(want) .. " +- " .. tol)
end

-- f must raise an error whose message contains text.
function T.raises(f, text, desc)
	local ok, e = pcall(f)
	e = tostring(e)
	T.ok(not ok and e:find(text, 1, true) ~= nil, desc,
		ok and "did not raise" or "got " .. show(e) .. ", expected to contain " .. show(text))
end

function T.done()
	print("1.." .. T.n)
end

-- Paths of the source tree (TOP_SRCDIR from make check, else relative).
T.top = os.getenv("TOP_SRCDIR") or (arg and arg[0] and arg[0]:match("^(.*)/tests/lua/") ) or "."
T.tmp = os.getenv("TMPDIR") or "/tmp"

-- FNV-1a over a model's committed tensors (values via totable would be
-- slow for big ones; the sample models are small enough).
function T.checksum(model, staged)
	local h = 0
	for _, name in ipairs(model:tensors()) do
		local t = model:tensor(name)
		local s = t:stats()
		h = h ~ math.floor(s.l1 * 1e6) ~ math.floor(s.l2 * 1e9) ~ s.zeros
	end
	return h
end

return T
