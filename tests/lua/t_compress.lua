-- Quantization and weight sharing from Lua: lathe.quantize and lathe.share
-- stage coded tensors; fine-tuning trains shared values; refusals.
-- Run: lathe lua tests/lua/t_compress.lua
local T = dofile((arg[0]:match("^(.*/)") or "./") .. "tap.lua")
local lathe = require "lathe"

local m = assert(lathe.open(T.top .. "/samples/lenet300.safetensors"))
local w0 = m.fc2.weight:clone()

-- A tensor's values as one flat list.
local function flat(t)
	local out = {}
	local function walk(x)
		if type(x) == "table" then for _, y in ipairs(x) do walk(y) end else out[#out + 1] = x end
	end
	walk(t:totable())
	return out
end

-- The distinct values of a tensor (value -> count), and how many.
local function distinct(t)
	local seen, n = {}, 0
	for _, v in ipairs(flat(t)) do
		if not seen[v] then seen[v] = 0; n = n + 1 end
		seen[v] = seen[v] + 1
	end
	return seen, n
end

local function same(a, b)
	local x, y = flat(a), flat(b)
	if #x ~= #y then return false end
	for i = 1, #x do if x[i] ~= y[i] then return false end end
	return true
end

-- Uniform quantization: 2^bits levels at most, the error reported.
local r = m:quantize{bits = 4, layers = {"fc2"}}
local q = r["fc2.weight"]
T.ok(q and q.bits == 4, "quantize returns each tensor's figures", q and q.bits)
local _, n = distinct(m.fc2.weight)
T.ok(n <= 16, "4-bit affine: at most 16 distinct values", n)
T.ok(q.sqnr > 5 and q.sqnr < 40 and q.max_error > 0, "quantize reports SQNR and error", q.sqnr, q.max_error)
T.is(m.dirty, true, "quantization is staged")
local r8 = m:quantize{bits = 8, layers = {"fc2"}}
T.ok(r8["fc2.weight"].sqnr > q.sqnr + 20, "8 bits: about 6 dB per bit more than 4",
	r8["fc2.weight"].sqnr, q.sqnr)
m:rollback()
T.is(m.fc2.weight[1][1], w0[1][1], "rollback restores the values")

-- Symmetric per channel: zero stays exact, each row its own scale.
m:quantize{bits = 3, mode = "symmetric", per_channel = true, layers = {"fc2"}}
local ok = true
local w = m.fc2.weight
for i = 1, w.shape[1] do
	local _, rn = distinct(w[i])
	ok = ok and rn <= 8
end
T.ok(ok, "3-bit symmetric per channel: at most 8 values in each row")
m:rollback()

-- Fixed point Q1.6: multiples of 1/64 in [-2, 2).
m:quantize{format = "Q1.6", layers = {"fc3"}}
local grid = true
for v in pairs((distinct(m.fc3.weight))) do
	grid = grid and v * 64 == math.floor(v * 64) and v >= -2 and v < 2
end
T.ok(grid, "Q1.6: every value a multiple of 1/64 within [-2, 2)")
m:rollback()

-- Stochastic rounding is reproducible from its seed.
m:quantize{bits = 2, rounding = "stochastic", seed = 7, layers = {"fc3"}}
local a = m.fc3.weight:clone()
m:rollback()
m:quantize{bits = 2, rounding = "stochastic", seed = 7, layers = {"fc3"}}
T.ok(same(m.fc3.weight, a), "stochastic rounding: the same seed gives the same values")
m:rollback()
m:quantize{bits = 2, rounding = "stochastic", seed = 8, layers = {"fc3"}}
T.ok(not same(m.fc3.weight, a), "another seed gives other values")
m:rollback()

-- bf16: values are those of a bfloat16 cast.
m:quantize{mode = "bf16", layers = {"fc3"}}
local b16 = m.fc3.weight:clone()
m:rollback()
m:cast{dtype = "bf16", layers = {"fc3"}}
T.ok(same(m.fc3.weight, b16), "bf16 quantization equals lathe.cast to bf16")
m:rollback()

-- Weight sharing: k shared values, pruned weights stay zero and out.
lathe.prune(m, {sparsity = 0.9, layers = {"fc1"}})
m:commit("pruned")
local s = m:share{bits = 4, layers = {"fc1"}}
local f = s["fc1.weight"]
T.ok(f.k == 16 and f.converged and f.iterations > 0, "share: 16 clusters, converged", f.k, f.iterations)
T.is(f.shared, 23520, "share: only the 10 % kept weights are clustered")
local vals, vn = distinct(m.fc1.weight)
T.ok(vn <= 17 and vals[0] >= 211680, "share: 16 values and the zeros", vn, vals[0])
local before = m:eval{limit = 1000}.accuracy
m:finetune{epochs = 1, limit = 3000, lr = 1e-4}
local vals2, vn2 = distinct(m.fc1.weight)
T.ok(vn2 <= 17 and vals2[0] >= 211680, "fine-tuning trains the shared values: still 16 and the zeros", vn2)
local moved = false
for v in pairs(vals2) do if not vals[v] then moved = true end end
T.ok(moved, "and moves them")
T.ok(m:eval{limit = 1000}.accuracy > before - 0.05, "accuracy holds after centroid fine-tuning")
m:rollback()
m:share{k = 5, init = "density", layers = {"fc3"}}
local _, k5 = distinct(m.fc3.weight)
T.ok(k5 <= 5, "k = 5 with density initialisation", k5)
m:rollback()
m:share{bits = 2, init = "random", seed = 3, layers = {"fc3"}}
T.ok(select(2, distinct(m.fc3.weight)) <= 4, "random initialisation")
m:rollback()

-- The packed form: its measured size is the saved file's; it opens to the
-- same values.
m:share{bits = 4, layers = {"fc1", "fc2"}}
m:commit("shared")
local pk = m:packing{staged = false}
local f1 = pk.tensors["fc1.weight"]
T.ok(f1.packed and f1.kind == "codebook" and f1.bits == 4 and f1.present == 23520 and f1.huffman ~= nil,
	"packing: fc1.weight as a 4-bit codebook of its 23,520 kept weights", f1.kind, f1.bits, f1.present)
T.ok(pk.tensors["fc1.bias"].packed == false and pk.tensors["fc1.bias"].bytes == 1200, "packing: biases as values")
local out = T.tmp .. "/lathe-t_compress-" .. os.time() .. "-" .. math.random(1e9) .. ".safetensors"
local saved = m:save(out)
T.ok(saved.packed and saved.bytes == pk.bytes, "save: packed, as many bytes as packing said", saved.bytes, pk.bytes)
T.ok(pk.ratio > 15, "packing: over 15x smaller than f32", pk.ratio)
local back = assert(lathe.open(out))
T.ok(same(back.fc1.weight, m.fc1.weight) and same(back.fc3.weight, m.fc3.weight), "the packed file opens to the same values")
T.is(back:packing().bytes, pk.bytes, "and packs to the same size again")
back:close()
-- A shared model read back from its packed file has no masks: fine-tuning
-- its shared values keeps the pruned weights at zero all the same.
local again = assert(lathe.open(out))
local z0 = again.fc1.weight:stats().zeros
again:finetune{epochs = 1, limit = 500, lr = 1e-4, keep_zeros = false}
T.is(again.fc1.weight:stats().zeros, z0, "fine-tuning a shared model from a packed file keeps its zeros")
T.ok(select(2, distinct(again.fc1.weight)) <= 17, "and its 16 shared values")
again:close{discard = true}
local plain = m:save(out, {packed = false})
T.ok(not plain.packed and plain.bytes > 1000000, "save{packed = false}: values", plain.bytes)
os.remove(out)

-- Journal and refusals.
m:quantize{bits = 6, layers = {"fc3"}}
m:commit("q6")
local j = m:journal()
T.ok(j:find('lathe.quantize(model, {bits = 6, layers = {"fc3"}})', 1, true), "quantize is journalled", j)
T.raises(function() m:quantize{bits = 9} end, "2 to 8 bits", "bits checked")
T.raises(function() m:quantize{mode = "int4"} end, "mode is \"affine\"", "mode checked")
T.raises(function() m:quantize{mode = "fixed"} end, "Qm.n", "fixed point needs a format")
T.raises(function() m:quantize{format = "Q1.6", mode = "affine"} end, "format goes with mode", "format needs fixed")
T.raises(function() m:quantize{rounding = "up"} end, "nearest\" or \"stochastic", "rounding checked")
T.raises(function() m:quantize{bitz = 4} end, "unknown option 'bitz'", "options checked")
T.raises(function() m:share{} end, "give {bits = B}", "share needs bits or k")
T.raises(function() m:share{bits = 9} end, "bits must be 1 to 8", "share bits checked")
T.raises(function() m:share{k = 300} end, "k must be 2 to 256", "share k checked")
T.raises(function() m:share{bits = 2, init = "kmeans++"} end, "init is", "share init checked")
T.is(m.dirty, false, "refused calls stage nothing")
m:close()
T.done()
