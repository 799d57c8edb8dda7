-- The lathe.Tensor API: shapes, statistics against hand values, views,
-- elementwise updates, tables, errors. Run: lathe lua tests/lua/t_tensor.lua
local T = dofile((arg[0]:match("^(.*/)") or "./") .. "tap.lua")
local lathe = require "lathe"

-- Free tensors from tables.
local a = lathe.tensor{{1, -2, 3}, {0, 5, -6}}
T.is(tostring(a), "Tensor [2, 3] F32", "tostring of a free tensor")
T.is(#a, 6, "#t is the element count")
T.is(a.ndim, 2, "ndim")
T.is(a.shape[1] .. "x" .. a.shape[2], "2x3", "shape")
T.is(a:get(2, 3), -6.0, "get(i, j) is 1-based")
T.is(a[1][2], -2.0, "t[i][j] indexes rows then elements")
local flat = lathe.tensor({1, 2, 3, 4, 5, 6}, {3, 2})
T.is(flat:get(3, 1), 5.0, "flat list with an explicit shape")

-- Statistics (hand-computed).
local s = a:stats()
T.is(s.min, -6.0, "min")
T.is(s.max, 5.0, "max")
T.near(s.mean, 1 / 6, 1e-12, "mean")
T.is(s.zeros, 1, "zeros")
T.near(s.sparsity, 1 / 6, 1e-12, "sparsity")
T.is(s.l1, 17.0, "L1 norm")
T.near(s.l2, math.sqrt(75), 1e-12, "L2 norm")
T.is(s.linf, 6.0, "max norm")
T.near(s.std, math.sqrt(75 / 6 - (1 / 6) ^ 2), 1e-12, "population std")
T.near(a:norm(1), 17, 1e-9, "norm(1)")
T.near(a:norm(math.huge), 6, 1e-9, "norm(inf)")
T.is(a:sum(), 1.0, "sum")
T.is(a:percentile(50), 0.5, "median interpolates like numpy")
local q = a:percentile{0, 100}
T.ok(q[1] == -6 and q[2] == 5, "percentile list")
local h = a:histogram{bins = 4, min = -8, max = 8}
T.is(table.concat(h.counts, ","), "1,1,3,1", "histogram counts")
T.is(#h.edges, 5, "histogram edges")
local lh = lathe.tensor{0.002, 0.02, 0.2, 2, 0}:histogram{bins = 4, log = true, min = -3, max = 1}
T.is(table.concat(lh.counts, ","), "1,1,1,1", "log-|w| histogram skips zeros")

-- Views.
local r = a:rows(2)
T.is(tostring(r), "Tensor view [1, 3] F32", "rows(i) is a view")
T.is(r:get(1, 2), 5.0, "row view values")
local c = a:cols(2, 3)
T.is(#c, 4, "cols(2, 3) has 4 values")
T.is(c:get(2, 2), -6.0, "column view values")
c:mul(10)
T.is(a:get(2, 3), -60.0, "writing a view writes the tensor")
T.is(a:get(1, 1), 1.0, "outside the view unchanged")
local conv = lathe.zeros{4, 2, 3, 3}
local f = conv:filter(3)
T.is(f.ndim, 3, "filter(i) drops the first dimension")
f:fill(1)
T.is(conv:stats().l1, 18.0, "a filter is in*kh*kw values")
T.is(conv:cols(1, 9):stats().l1, 9.0, "cols of a conv see [out, in*kh*kw]")

-- Elementwise updates.
local e = lathe.tensor{1, 2, 3, 4}
e:add(1):mul(2)
T.is(table.concat(e:totable(), ","), "4.0,6.0,8.0,10.0", "add then mul, chained")
e:clamp(5, 9)
T.is(table.concat(e:totable(), ","), "5.0,6.0,8.0,9.0", "clamp")
e:apply(function(x) return -x end)
T.is(e:get(4), -9.0, "apply")
e:set(2, 0.5)
T.is(e:get(2), 0.5, "set")
e:assign{1, 1, 1, 1}
T.is(e:sum(), 4.0, "assign from a table")
e:assign(lathe.tensor{2, 2, 2, 2})
T.is(e:sum(), 8.0, "assign from a tensor")
local before = e:sum()
T.raises(function() e:apply(function(x) if x > 0 then error("boom") end return x end) end, "boom",
	"apply that raises ...")
T.is(e:sum(), before, "... changes nothing")
local copy = e:clone()
copy:fill(0)
T.is(e:sum(), before, "clone is independent")

-- Errors say what was expected.
T.raises(function() a:get(3, 1) end, "index 3 out of range (1..2)", "index out of range")
T.raises(function() a:get(1) end, "1 indices for a 2-dimensional tensor", "too few indices")
T.raises(function() a:rows(2, 1) end, "comes before", "reversed row range")
T.raises(function() a:histogram{bin = 3} end, "unknown option 'bin' (expected one of: bins, log, min, max)",
	"unknown option names the expected ones")
T.raises(function() a:histogram{bins = "x"} end, "option 'bins' must be an integer (got string)", "option type")
T.raises(function() lathe.tensor{{1, 2}, {3}} end, "table has 1 entries at depth 2", "ragged table")
T.raises(function() lathe.tensor{1, "x"} end, "expected a number, got string", "non-number")
T.raises(function() e:apply(function() return "x" end) end, "returned a string for element 1", "apply must return numbers")
T.raises(function() lathe.zeros{1e6, 1e6, 1e6} end, "lathe.zeros", "absurd shapes are refused")
T.raises(function() lathe.tensor(5) end, "table expected", "lathe.tensor wants a table")
local fr = lathe.tensor{1}
fr:free()
T.raises(function() return fr:sum() end, "freed tensor", "a freed tensor raises")
T.raises(function() lathe.prune(a, {sparsity = 0.5}) end, "free tensor is not part of a model", "kernels want model tensors")
T.done()
