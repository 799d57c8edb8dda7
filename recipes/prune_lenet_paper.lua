-- prune_lenet_paper.lua: the pruning stage of Deep Compression (Han, Mao &
-- Dally, ICLR 2016, table 2 and 3) on the two bundled LeNets, for
-- Fashion-MNIST instead of MNIST: each layer keeps the share of its
-- weights the paper kept, reached gradually with masked fine-tuning.
--
--   lathe run recipes/prune_lenet_paper.lua samples/lenet300.safetensors -o lenet300-pruned.safetensors
--   lathe run recipes/prune_lenet_paper.lua samples/lenet5.safetensors -o lenet5-pruned.safetensors
--
-- Weights kept per layer (the paper's "Weights%"):
--   LeNet-300-100: fc1 8 %, fc2 9 %, fc3 26 %               (12x fewer weights)
--   LeNet-5:       conv1 66 %, conv2 12 %, fc1 8 %, fc2 19 % (12x fewer weights)
--
-- Parameters (change one with --set NAME=VALUE):
--   steps         pruning steps on the way to the final rates   (default 4)
--   epochs        fine-tuning epochs after each step              (default 1)
--   final_epochs  fine-tuning epochs at the final rates, cosine   (default 8)
--   lr            fine-tuning learning rate                       (default 0.002)
--   opt           optimiser: adam, adamw or sgd                   (default adam)
--   weight_decay  weight decay                                    (default 0)
--   batch         fine-tuning batch size                          (default 128)
--   limit         training images per epoch, 0 = all 55,000      (default 0)
--   test          measure the test split before and after        (default true)
--
-- Measured on this machine (2 cores) with the defaults and the full
-- training split, 2026-11-23 (also in BENCHMARKS.md):
--   LeNet-300-100: test accuracy 89.74 % -> 89.44 % (-0.30 points),
--                  21,776 of 266,200 weights kept (12.2x fewer), 43 s
--   LeNet-5:       test accuracy 91.80 % -> 91.51 % (-0.29 points),
--                  36,280 of 430,500 weights kept (11.9x fewer), about 8 min
-- (Han et al. report 12x fewer weights for both nets on MNIST, with no loss.)
--
-- Why gradually: removing 92 % of a layer at once destroys what the network
-- computes; removing a little, letting the remaining weights adapt, and
-- repeating loses far less. The sparsity of step k follows the cubic
-- schedule of Zhu & Gupta (2017): large steps first, small ones at the end,
-- when every weight left matters.
local lathe = require "lathe"
local schedule = require "lathe.schedule"
local util = require "lathe.util"

local P = lathe.params{steps = 4, epochs = 1, final_epochs = 8, lr = 2e-3, opt = "adam", weight_decay = 0.0,
	batch = 128, limit = 0, test = true}

local RATES = {
	["LeNet-300-100"] = {fc1 = 0.08, fc2 = 0.09, fc3 = 0.26},
	["LeNet-5"] = {conv1 = 0.66, conv2 = 0.12, fc1 = 0.08, fc2 = 0.19},
}

-- Which LeNet is this? The one whose layers the model has, all of them.
local function has_layers(rates)
	for name in pairs(rates) do
		if not pcall(model.layer, model, name) then return false end
	end
	return true
end
local net, keep
for name, rates in pairs(RATES) do
	if has_layers(rates) and #model == #util.keys(rates) then net, keep = name, rates end
end
assert(net, "this recipe expects LeNet-300-100 (fc1..fc3) or LeNet-5 (conv1, conv2, fc1, fc2)")
local layers = util.keys(keep)

local function test_accuracy()
	return P.test and model:eval{split = "test"}.accuracy or nil
end
local before = test_accuracy()
print(("%s: pruning to the Deep Compression rates in %d steps"):format(net, P.steps))

-- Each layer gets its own schedule towards 1 - keep.
local targets = {}
for _, name in ipairs(layers) do
	targets[name] = schedule.agp_steps{final = 1 - keep[name], steps = P.steps}
end
for k = 2, P.steps + 1 do
	for _, name in ipairs(layers) do
		model:layer(name):prune{sparsity = targets[name][k]}
	end
	lathe.finetune(model, {epochs = P.epochs, lr = P.lr, opt = P.opt, weight_decay = P.weight_decay,
		batch = P.batch, limit = P.limit, seed = k})
	local p = model:preview()
	print(("  step %d: validation accuracy %.2f %%"):format(k - 1, 100 * p.accuracy))
	model:commit(("step %d of %d"):format(k - 1, P.steps))
end

-- A last, longer fine-tuning at the final rates, the learning rate decaying
-- to zero (cosine) epoch by epoch. A pruned network overfits the training
-- images quickly, so each epoch is kept only if the validation accuracy
-- improved (the test split is never looked at to decide).
local lr_at = schedule.cosine{lr = P.lr, steps = P.final_epochs}
local best = model:preview().accuracy
for e = 1, P.final_epochs do
	lathe.finetune(model, {epochs = 1, lr = lr_at(e - 1), opt = P.opt, weight_decay = P.weight_decay,
		batch = P.batch, limit = P.limit, seed = P.steps + 1 + e})
	local acc = model:preview().accuracy
	if acc > best then
		best = acc
		model:commit(("fine-tuning epoch %d"):format(e))
	else
		model:rollback()
	end
end

-- The paper's table: weights per layer and the share kept.
print(("\n%-8s %10s %10s %8s"):format("layer", "weights", "kept", "kept %"))
local total, kept = 0, 0
for _, name in ipairs(layers) do
	local st = model:layer(name).weight:stats()
	total, kept = total + st.numel, kept + (st.numel - st.zeros)
	print(("%-8s %10s %10s %7.1f%%"):format(name, util.count(st.numel), util.count(st.numel - st.zeros),
		100 * (st.numel - st.zeros) / st.numel))
end
print(("%-8s %10s %10s %7.1f%%   (%.1fx fewer weights)"):format("total", util.count(total), util.count(kept),
	100 * kept / total, total / kept))
local after = test_accuracy()
if before then
	print(("test accuracy %.2f %% -> %.2f %% (%+.2f points)"):format(100 * before, 100 * after,
		100 * (after - before)))
end
