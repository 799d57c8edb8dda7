-- prune_magnitude.lua: magnitude pruning, layer by layer. In every layer the
-- weights closest to zero are removed until the layer has the sparsity
-- asked for; a mask remembers them, so fine-tuning keeps them at zero.
--
--   lathe run recipes/prune_magnitude.lua samples/lenet300.safetensors -o pruned.safetensors
--   lathe run recipes/prune_magnitude.lua samples/lenet5.safetensors --set sparsity=0.7
--
-- Parameters (change one with --set NAME=VALUE):
--   sparsity  fraction of each layer's weights to remove    (default 0.9)
--   epochs    masked fine-tuning epochs afterwards, 0 = none (default 2)
--   lr        fine-tuning learning rate (Adam)               (default 0.001)
--   limit     training images per epoch, 0 = all 55,000     (default 0)
--
-- Why magnitude: a weight near zero contributes little to any output, so
-- removing it changes the network least (LeCun et al. 1990 and Han et al.
-- 2015 use this rule; it is the baseline every other criterion is compared
-- with). Biases are left alone: they are few and each one matters.
local lathe = require "lathe"
local util = require "lathe.util"

local P = lathe.params{sparsity = 0.9, epochs = 2, lr = 1e-3, limit = 0}

-- See what the cut costs before keeping it: previews evaluate the staged
-- model on the validation split next to the committed one.
for _, s in ipairs{0.5, 0.8, P.sparsity} do
	model:prune{sparsity = s}
	local p = model:preview()
	print(("sparsity %3.0f%%: accuracy %.2f%% (%+.2f), %s -> %s"):format(100 * s, 100 * p.accuracy,
		100 * p.delta.accuracy, util.bytes(p.committed.size), util.bytes(p.size)))
	model:rollback()
end

-- Keep the one asked for.
model:prune{sparsity = P.sparsity}
model:commit(("magnitude pruning to %g"):format(P.sparsity))

-- Masked fine-tuning: the surviving weights make up for the removed ones.
if P.epochs > 0 then
	lathe.finetune(model, {epochs = P.epochs, lr = P.lr, limit = P.limit})
	local p = model:preview()
	print(("after %d epoch(s) of masked fine-tuning: accuracy %.2f%% (%+.2f)"):format(P.epochs,
		100 * p.accuracy, 100 * p.delta.accuracy))
	model:commit("masked fine-tuning")
end
