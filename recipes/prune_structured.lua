-- prune_structured.lua: structured pruning. Whole neurons (rows of a linear
-- layer) or filters (of a convolution) with the smallest L1 norm are cut
-- out, and the next layer loses the inputs they fed: the result is a
-- smaller *dense* model, faster on any hardware, not a model full of zeros
-- that only sparse kernels can exploit (Li et al. 2017, "Pruning Filters
-- for Efficient ConvNets").
--
--   lathe run recipes/prune_structured.lua samples/lenet300.safetensors -o thin.safetensors
--   lathe run recipes/prune_structured.lua samples/lenet5.safetensors --set amount=0.3
--   lathe info thin.safetensors        (the new shapes and MACs)
--
-- Parameters (change one with --set NAME=VALUE):
--   amount   fraction of each hidden layer's neurons / filters to remove (default 0.5)
--   norm     1 (L1) or 2 (L2) norm to rank them by                        (default 1)
--   epochs   fine-tuning epochs afterwards, 0 = none                      (default 2)
--   lr       fine-tuning learning rate (Adam)                             (default 0.001)
--   limit    training images per epoch, 0 = all 55,000                   (default 0)
--
-- The output layer keeps its units: they are the classes.
local lathe = require "lathe"
local util = require "lathe.util"

local P = lathe.params{amount = 0.5, norm = 1, epochs = 2, lr = 1e-3, limit = 0}

local r = model:prune_structured{amount = P.amount, norm = P.norm}
for _, name in ipairs(r.layers) do
	print(("%-8s %4d -> %4d units"):format(name, r.units[name][1], r.units[name][2]))
end
print(("parameters %s -> %s, multiply-adds per image %s -> %s"):format(util.count(r.params_before),
	util.count(r.params), util.count(r.macs_before), util.count(r.macs)))
local p = model:preview()
print(("accuracy %.2f%% (%+.2f) before fine-tuning"):format(100 * p.accuracy, 100 * p.delta.accuracy))
model:commit(("remove %g of the hidden units by L%d norm"):format(P.amount, P.norm))

if P.epochs > 0 then
	-- No masks are needed: the removed units are gone, not zeroed.
	lathe.finetune(model, {epochs = P.epochs, lr = P.lr, limit = P.limit})
	print(("after fine-tuning: accuracy %.2f%%"):format(100 * model:preview().accuracy))
	model:commit("fine-tuning")
end
