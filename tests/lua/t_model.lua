-- The lathe.Model API: layers, staging, preview, commit / rollback / undo,
-- history and journal, atomicity, saving, weights-only fidelity.
-- Run: lathe lua tests/lua/t_model.lua
local T = dofile((arg[0]:match("^(.*/)") or "./") .. "tap.lua")
local lathe = require "lathe"

local path = T.top .. "/samples/lenet5.safetensors"
local m = assert(lathe.open(path))
T.ok(tostring(m):find("^Model .*lenet5.safetensors %(8 tensors, 431080 parameters%)"), "tostring", tostring(m))
T.is(#m, 4, "#model counts layers with weights")
T.is(m.layers[1].name, "conv1", "layers in graph order")
T.is(m.conv2.op, "conv2d", "a layer by name")
T.is(m:layer("fc1").weight.shape[2], 800, "layer weight shape")
T.is(m.fc2.bias.name, "fc2.bias", "bias tensor")
T.is(#m.fc1, 400500, "#layer counts its parameters")
T.is(m.conv1.macs, 288000, "layer MACs")
T.is(m.conv1.kernel_size[1], 5, "conv attributes")
T.is(#m:tensors(), 8, "tensor names")
T.is(m:info().params, 431080, "info: params")
T.is(m:info().macs, 2293000, "info: MACs")

local nope, msg = lathe.open(T.top .. "/no/such/file.safetensors")
T.ok(nope == nil and msg:find("no/such/file.safetensors"), "a missing file gives nil, message", msg)
T.raises(function() m:layer("fc9") end, "no layer named 'fc9'", "unknown layer")
T.raises(function() m:tensor("fc9.weight") end, "no tensor named 'fc9.weight'", "unknown tensor")

-- Preview of a clean stage equals the committed model.
local p0 = m:preview{limit = 500}
T.ok(p0.accuracy and p0.accuracy == p0.committed.accuracy and p0.delta.accuracy == 0, "clean preview")
T.is(p0.images, 500, "limit respected")
T.is(p0.ratio, 1.0, "ratio 1 as opened")

-- Stage a prune: the committed model does not move.
local fc1 = m.fc1.weight
local before = fc1:stats()
local r = lathe.prune(m.fc1, {sparsity = 0.9})
T.near(r.sparsity, 0.9, 1e-9, "prune returns the sparsity it reached")
T.ok(m.dirty, "stage is dirty")
T.near(fc1:stats().sparsity, 0.9, 1e-9, "a bound tensor shows the staged values")
T.is(m:info{staged = false}.nonzeros, m:info{staged = false}.params, "committed sizes unchanged")
local p1 = m:preview{limit = 500}
T.ok(not p1.cached and p1.nonzeros < p1.committed.nonzeros and p1.ratio > 1, "preview sees the prune")
T.ok(p1.delta.accuracy == p1.accuracy - p1.committed.accuracy, "delta = staged - committed")
T.is(#p1.fidelity, 1, "fidelity lists the changed tensor")
T.is(p1.fidelity[1].tensor, "fc1.weight", "fidelity names it")
T.ok(m:preview{limit = 500}.cached, "an unchanged stage is answered from the cache")
T.ok(tostring(p1):find("^preview: accuracy"), "preview prints a summary", tostring(p1))

-- Rollback.
T.is(m:rollback(), true, "rollback reports it dropped changes")
T.is(fc1:stats().l1, before.l1, "rollback restores the values")
T.ok(not m.dirty, "clean after rollback")

-- Commit, history, undo.
m:prune{sparsity = 0.5, layers = {"fc1", "conv2"}}
T.is(m:commit("half of fc1 and conv2"), 1, "commit returns the step")
T.near(m.conv2.weight:stats().sparsity, 0.5, 1e-9, "model-wide prune limited to layers")
T.is(m.conv1.weight:stats().zeros, 0, "other layers untouched")
m.fc2:prune{sparsity = 0.2}
m:tensor("fc2.bias"):mul(0.5)
m:commit()
local h = m:history()
T.is(#h, 3, "history: opened + 2 steps")
T.is(h[2].message, "half of fc1 and conv2", "step message")
T.ok(h[3].calls:find('model:tensor%("fc2.bias"%):mul%(0.5%)'), "journal records the tensor update", h[3].calls)
T.ok(h[3].calls:find('lathe.prune%(model:layer%("fc2"%), {sparsity = 0.20000000000000001}%)'),
	"journal records the kernel call exactly", h[3].calls)
T.is(m:undo(), 1, "undo returns to step 1")
T.is(m.fc2.weight:stats().zeros, 0, "undone step is gone")
T.is(#m:history(), 2, "history shortened")

-- Atomicity: a failing unit changes nothing, even after staging and committing.
local function sum() return m.fc1.weight:stats().l1 + m.conv1.weight:stats().l1 end
local s0, h0 = sum(), #m:history()
local ok, e = pcall(lathe.atomic, function()
	m:prune{sparsity = 0.99}
	m:commit("doomed")
	m.conv1.weight:fill(3)
	error("recipe failed")
end)
T.ok(not ok and e:find("recipe failed"), "lathe.atomic re-raises", e)
T.ok(sum() == s0 and #m:history() == h0 and not m.dirty, "and the model is exactly as before")

-- Option errors.
T.raises(function() m:prune{sparsty = 0.5} end, "unknown option 'sparsty'", "misspelt option")
T.raises(function() m:prune{sparsity = 1.5} end, "between 0 and 1", "sparsity range")
T.raises(function() m:prune{sparsity = 0.5, threshold = 0.1} end, "exactly one of sparsity and threshold", "both")
T.raises(function() m:prune{sparsity = 0.5, layers = {"fc7"}} end, "no layer named 'fc7'", "unknown layer in list")
T.raises(function() lathe.prune(42, {sparsity = 0.5}) end, "expected a model, layer or tensor (got number)", "target type")
T.raises(function() m:preview{split = "nope"} end, "unknown split 'nope'", "bad split")
T.raises(function() m:cast{dtype = "f8"} end, "unknown dtype 'f8'", "bad dtype")

-- Cast, journal, save and reload.
m:cast{dtype = "f16", layers = {"fc1"}}
T.is(m.fc1.weight.dtype, "F16", "cast stages f16")
m:commit("fc1 to f16")
local out = T.tmp .. "/lathe-t_model-" .. os.time() .. "-" .. math.random(1e9) .. ".safetensors"
m:save(out)
local back = assert(lathe.open(out))
T.is(back.fc1.weight.dtype, "F16", "saved model keeps the dtype")
T.is(back.fc1.weight:stats().l1, m.fc1.weight:stats().l1, "saved values")
T.is(back:eval{limit = 200}.accuracy, m:eval{limit = 200}.accuracy, "saved model evaluates the same")
local j = m:journal()
T.ok(j:find("lathe.cast%(model, {dtype = \"f16\", layers = {\"fc1\"}}%)"), "journal has the cast", j)
back:close()
os.remove(out)
T.raises(function() back:info() end, "closed model", "a closed model raises")

-- Fine-tuning (needs the training split): masks hold, and weights that are
-- exactly zero in a reopened file stay zero (files carry no masks).
local have_train = pcall(function() m:eval{split = "train", limit = 1} end)
if have_train then
	local f = assert(lathe.open(T.top .. "/samples/lenet300.safetensors"))
	f:prune{sparsity = 0.8, layers = {"fc1"}}
	f:commit()
	local saved = T.tmp .. "/lathe-t_model-kz-" .. os.time() .. "-" .. math.random(1e9) .. ".safetensors"
	f:save(saved)
	local g = assert(lathe.open(saved))
	os.remove(saved)
	local z = g.fc1.weight:stats().zeros
	lathe.finetune(g, {epochs = 1, limit = 1000})
	T.is(g.fc1.weight:stats().zeros, z, "fine-tuning a reopened pruned model keeps its zeros")
	T.ok(g.fc2.weight:stats().l1 ~= f.fc2.weight:stats().l1, "fine-tuning changed the other weights")
	T.raises(function() lathe.finetune(g, {momentum = 0.5}) end, "applies to opt = \"sgd\" only", "momentum without sgd")
	T.raises(function() lathe.finetune(g, {epoch = 1}) end, "unknown option 'epoch'", "finetune options checked")
	T.raises(function() g.fc1:prune{sparsity = 0.5, layers = {"fc2"}} end, "applies to a model, not to a layer",
		"layers option only for a model")
	local layer, tensor = g.fc1, g.fc2.weight
	T.raises(function() g:close() end, "changes are staged", "close refuses to drop staged changes")
	T.ok(g.fc1.weight:stats().zeros == z, "the model is still open after the refusal")
	T.raises(function() g:close{discrad = true} end, "unknown option 'discrad'", "close options checked")
	g:close{discard = true}
	T.raises(function() return layer.weight end, "its model was closed", "a layer of a closed model raises")
	T.raises(function() tensor:mul(2) end, "its model was closed", "a tensor of a closed model raises")
	T.ok(pcall(function() return f.fc1.weight:stats() end), "other models stay usable")
else
	for i = 1, 8 do T.ok(true, "# SKIP no training split") end
end

-- Global magnitude pruning: one ranking over the chosen layers.
do
	local g = assert(lathe.open(path))
	local res = lathe.prune(g, {sparsity = 0.8, global = true, layers = {"conv2", "fc1", "fc2"}})
	local z, n = 0, 0
	for _, name in ipairs({"conv2.weight", "fc1.weight", "fc2.weight"}) do
		local st = g:tensor(name):stats()
		z, n = z + st.zeros, n + st.numel
	end
	T.near(z / n, 0.8, 1e-6, "global: 80 % of the three weights together")
	T.ok(res.sparsities["fc1.weight"] > res.sparsities["conv2.weight"],
		"global: the large fc1 ends sparser than conv2", res.sparsities["fc1.weight"])
	local t2 = {}
	for _, name in ipairs({"conv2.weight", "fc1.weight", "fc2.weight"}) do
		local st = g:tensor(name)
		local mn = math.huge
		local function walk(t)
			for _, v in ipairs(t) do
				if type(v) == "table" then walk(v) elseif v ~= 0 then mn = math.min(mn, math.abs(v)) end
			end
		end
		walk(st:totable())
		t2[#t2 + 1] = mn
	end
	T.ok(math.abs(t2[1] - t2[2]) < 0.02 and math.abs(t2[2] - t2[3]) < 0.02,
		"global: the smallest kept magnitude is about the same in every layer", table.concat(t2, " "))
	T.raises(function() lathe.prune(g, {threshold = 0.1, global = true}) end, "global = true ranks",
		"global needs a sparsity")
	T.raises(function() lathe.prune(g, {sparsity = 0.5, method = "random", global = true}) end,
		"global = true ranks", "global is for magnitude")
	g:commit()
	T.ok(g:journal():find("global = true"), "global pruning is journalled", g:journal())
	g:close()
end

-- Sensitivity: each layer alone, the stage untouched; the greedy choice.
do
	local s = assert(lathe.open(path))
	local r = lathe.sensitivity(s, {sparsities = {0.5, 0.9}, layers = {"conv1", "fc1"}, limit = 300})
	T.is(#r.layers, 2, "sensitivity: one entry per layer")
	T.is(r.layers[2].name, "fc1", "sensitivity: layer names")
	T.is(r.layers[2].tensor, "fc1.weight", "sensitivity: tensor names")
	T.is(r.images, 300, "sensitivity: limit respected")
	T.is(#r.layers[1].accuracy, 2, "sensitivity: one accuracy per sparsity")
	T.is(s.dirty, false, "sensitivity leaves the stage clean")
	lathe.prune(s.fc1, {sparsity = 0.9})
	T.near(s:preview{limit = 300}.accuracy, r.layers[2].accuracy[2], 1e-12,
		"sensitivity point equals a preview of that prune")
	s:rollback()
	T.ok(tostring(r):find("fc1%s+400000"), "sensitivity prints a table", tostring(r))
	T.is(s:sensitivity{sparsities = {0.5}, layers = {"fc2"}, limit = 100}.layers[1].name, "fc2",
		"model:sensitivity{} as a method")
	local chosen, removed = lathe.choose_sparsities(r, {budget = 1})
	T.is(chosen.fc1, 0.9, "choose with a wide budget takes the highest sparsity")
	T.is(removed, math.floor(400000 * 0.9 + 500 * 0.9 + 0.5), "choose counts the weights removed")
	chosen = lathe.choose_sparsities(r, {budget = 0})
	T.ok(chosen.conv1 == 0 or r.layers[1].accuracy[1] >= r.baseline, "budget 0 only takes free moves")
	T.raises(function() lathe.choose_sparsities(r, {}) end, "give {budget = B}", "choose needs a budget")
	T.raises(function() lathe.choose_sparsities({}, {budget = 0.1}) end, "expected the table",
		"choose checks its table")
	T.raises(function() lathe.sensitivity(s, {sparsities = {0.9, 0.5}}) end, "ascending",
		"sensitivity checks its sparsities")
	T.raises(function() lathe.sensitivity(s, {sparsity = 0.5}) end, "unknown option 'sparsity'",
		"sensitivity options checked")
	T.raises(function() lathe.sensitivity(s, {layers = {"fc1", "fc1"}}) end, "asked for twice",
		"sensitivity refuses a layer twice")
	s:close()
end

-- Structured pruning: thinning makes a smaller dense model.
do
	local mlp = assert(lathe.open(T.top .. "/samples/lenet300.safetensors"))
	local acc0 = mlp:preview{limit = 500}.accuracy
	local r = lathe.prune_structured(mlp, {amount = 0.5})
	T.is(r.units.fc1[2], 150, "structured: fc1 keeps half its neurons")
	T.is(r.units.fc2[2], 50, "structured: fc2 keeps half")
	T.is(r.units.fc3, nil, "structured: the output layer (classes) is left alone")
	T.is(mlp.fc2.weight.shape[2], 150, "structured: fc2's inputs shrink with fc1's outputs")
	T.is(mlp.fc3.weight.shape[2], 50, "structured: fc3's inputs shrink with fc2's outputs")
	T.ok(r.macs < r.macs_before / 2 + 1000, "structured: MACs fall", r.macs)
	T.is(mlp:info().macs, r.macs, "structured: model info has the new MACs")
	local p = mlp:preview{limit = 500}
	T.ok(p.accuracy > 0.3 and p.accuracy < acc0, "structured: the thinned model evaluates", p.accuracy)
	mlp:rollback()
	T.is(mlp.fc1.weight.shape[1], 300, "structured: rollback restores the shapes")
	lathe.prune_structured(mlp.fc1, {amount = 0.25, norm = 2, thin = false})
	T.is(mlp.fc1.weight.shape[1], 300, "structured, thin = false: shapes kept")
	T.near(mlp.fc1.weight:stats().sparsity, 0.25, 1e-9, "structured, thin = false: a quarter of the rows zero")
	mlp:rollback()
	T.raises(function() lathe.prune_structured(mlp.fc3, {amount = 0.5}) end, "output",
		"structured: the classes cannot be removed")
	T.raises(function() lathe.prune_structured(mlp, {}) end, "give {amount = A}", "structured needs an amount")
	T.raises(function() lathe.prune_structured(mlp, {amount = 0.5, dim = 2}) end, "dim must be 0",
		"structured: dim checked")
	T.is(mlp.dirty, false, "structured: a refused call stages nothing")
	lathe.prune_structured(mlp, {amount = 0.5, dim = 1, layers = {"fc2"}})
	T.is(mlp.fc1.weight.shape[1], 150, "structured, dim 1: fc2's inputs go with fc1's outputs")
	mlp:commit("thin")
	T.ok(mlp:journal():find("lathe.prune_structured"), "structured pruning is journalled")
	mlp:close()
end

-- N:M: at most n non-zeros in every m inputs.
do
	local c = assert(lathe.open(path))
	local r = lathe.prune_nm(c, {n = 2, m = 4})
	T.is(r.skipped[1], "conv1", "N:M on a model skips layers m does not divide")
	T.near(c.fc1.weight:stats().sparsity, 0.5, 1e-9, "N:M 2:4: half of fc1 zero")
	local row = c.fc1.weight:totable()[1]
	local ok = true
	for g = 1, #row, 4 do
		local nz = 0
		for j = g, g + 3 do if row[j] ~= 0 then nz = nz + 1 end end
		ok = ok and nz <= 2
	end
	T.ok(ok, "N:M 2:4: every group of 4 has at most 2 non-zeros")
	T.raises(function() lathe.prune_nm(c.conv1, {n = 2, m = 4}) end, "does not divide",
		"N:M on a layer m does not divide is refused")
	T.raises(function() lathe.prune_nm(c, {n = 4, m = 4}) end, "1 <= n < m", "N:M checks n < m")
	c:rollback()
	c:close()
end

-- Activation sparsity: densities per layer, thresholds on chosen layers.
do
	local a = assert(lathe.open(T.top .. "/samples/lenet300.safetensors"))
	local r0 = a:eval{limit = 500, activations = true}
	local relu
	for _, x in ipairs(r0.activations) do if x.op == "relu" then relu = relu or x end end
	T.ok(relu and relu.density > 0 and relu.density < 1, "activations: a relu's density", relu and relu.density)
	local r1 = a:eval{limit = 500, threshold = 1.0}
	local relu1
	for _, x in ipairs(r1.activations) do if x.name == relu.name then relu1 = x end end
	T.ok(relu1.density < relu.density and relu1.threshold == 1.0, "activations: a threshold lowers the density")
	local every = {}
	for _, x in ipairs(r0.activations) do if x.op == "relu" then every[x.name] = 1.0 end end
	local r2 = a:eval{limit = 500, threshold = every}
	T.is(r2.accuracy, r1.accuracy, "activations: a number is the same threshold on every activation layer")
	local r3 = a:eval{limit = 500, threshold = {[relu.name] = 1.0}}
	T.ok(r3.activations[#r3.activations].threshold == 0, "activations: a table thresholds only the layers named")
	T.raises(function() a:eval{threshold = {nope = 1}} end, "no layer named 'nope'", "threshold layer checked")
	T.raises(function() a:eval{threshold = -1} end, "0 or more", "threshold must be 0 or more")
	T.raises(function() a:eval{threshold = "0.5"} end, "must be a number or a table", "threshold is not a string")
	T.raises(function() a:eval{threshold = {0.5}} end, "layer names as keys", "threshold keys are layer names")
	T.raises(function() a:eval{limit = -1} end, "limit must be 0 (all) or more", "eval limit checked")

	-- Staged thresholds: previews, eval, fine-tuning and saved files see them.
	local v = a:eval{split = "val", limit = 500, threshold = {[relu.name] = 1.0}}
	local before = a:preview{limit = 500}
	local staged = a:threshold_activations{[relu.name] = 1.0}
	T.is(staged[relu.name], 1.0, "threshold_activations returns what is staged")
	T.is(a.dirty, true, "a threshold is a staged change")
	local p = a:preview{limit = 500}
	T.is(p.accuracy, v.accuracy, "the preview sees the staged threshold (= eval with it)")
	T.is(p.committed.accuracy, before.accuracy, "the committed model has none")
	local e = a:eval{limit = 500, activations = true}
	local d
	for _, x in ipairs(e.activations) do if x.name == relu.name then d = x end end
	T.ok(d.threshold == 1.0 and d.density == relu1.density, "eval of the stage uses it",
		d.threshold, d.density, relu1.density)
	T.is(a:eval{limit = 500, threshold = 0}.accuracy, r0.accuracy, "an eval threshold replaces the staged one")
	a:rollback()
	T.is(next(a:threshold_activations{}), nil, "rollback drops it")
	T.is(a.dirty, false, "restating the thresholds stages nothing")
	a:threshold_activations(1.0)
	a:finetune{epochs = 1, limit = 200, lr = 1e-4}
	a:commit()
	local path = os.tmpname()
	a:save(path)
	local back = assert(lathe.open(path))
	local t = back:threshold_activations{}
	local n = 0
	for _ in pairs(t) do n = n + 1 end
	T.ok(n == 2 and t[relu.name] == 1.0, "a saved model carries its thresholds", n)
	T.is(back:eval{limit = 500}.accuracy, a:eval{limit = 500}.accuracy, "and evaluates the same")
	back:threshold_activations{[relu.name] = 0}
	t = back:threshold_activations{}
	T.ok(t[relu.name] == nil, "0 removes one")
	T.raises(function() a:threshold_activations{flatten = 1} end, "no layer named 'flatten' (layers: ",
		"thresholds name layers and list them")
	T.raises(function() a:threshold_activations(-1) end, "0 or more", "threshold_activations checks values")
	T.raises(function() a:threshold_activations() end, "give a threshold", "threshold_activations needs one")
	T.raises(function() lathe.threshold_activations(a.fc1, 1) end, "expected a model", "a model, not a layer")
	back:close{discard = true}
	os.remove(path)
	a:close()
end

-- Weights-only: fidelity instead of accuracy.
local w = assert(lathe.open(T.top .. "/tests/fixtures/weights_only.safetensors"))
T.is(w.has_graph, false, "weights-only model")
T.is(#w.layers, 2, "layers from name prefixes (enc, dec)")
w.enc.weight:mul(0.5)
local pw = w:preview()
T.ok(pw.accuracy == nil, "no accuracy without an architecture")
T.near(pw.fidelity[1].frobenius, 0.5, 1e-6, "relative Frobenius error")
T.near(pw.fidelity[1].output, 0.5, 1e-5, "relative output error")
T.raises(function() w:finetune{} end, "weights only", "no training without an architecture")
T.done()
