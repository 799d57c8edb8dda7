-- prune_global.lua: global magnitude pruning. Instead of removing the same
-- share from every layer, all weights of the chosen layers are ranked
-- together and the smallest go, wherever they are (as PyTorch's
-- torch.nn.utils.prune.global_unstructured does). Large, redundant layers
-- end up sparser than small, sensitive ones, without choosing by hand.
--
--   lathe run recipes/prune_global.lua samples/lenet300.safetensors -o pruned.safetensors
--   lathe run recipes/prune_global.lua samples/lenet5.safetensors --set sparsity=0.85
--
-- Parameters (change one with --set NAME=VALUE):
--   sparsity  fraction of all weights to remove              (default 0.9)
--   epochs    masked fine-tuning epochs afterwards, 0 = none (default 2)
--   lr        fine-tuning learning rate (Adam)               (default 0.001)
--   limit     training images per epoch, 0 = all 55,000     (default 0)
--
-- One caveat: weights of different layers live on different scales, so a
-- global ranking can empty a layer whose weights are all small. The table
-- below shows what each layer kept.
local lathe = require "lathe"

local P = lathe.params{sparsity = 0.9, epochs = 2, lr = 1e-3, limit = 0}

-- The same overall sparsity, layer by layer, for comparison.
model:prune{sparsity = P.sparsity}
local uniform = model:preview()
model:rollback()

local r = model:prune{sparsity = P.sparsity, global = true}
local global = model:preview()
print(("%.0f%% of all weights removed:"):format(100 * P.sparsity))
print(("  the same share in every layer: accuracy %.2f%%"):format(100 * uniform.accuracy))
print(("  ranked globally:               accuracy %.2f%%"):format(100 * global.accuracy))
print("sparsity each layer reached:")
for _, name in ipairs(r.tensors) do
	print(("  %-14s %5.1f%%"):format(name, 100 * r.sparsities[name]))
end
model:commit(("global magnitude pruning to %g"):format(P.sparsity))

if P.epochs > 0 then
	lathe.finetune(model, {epochs = P.epochs, lr = P.lr, limit = P.limit})
	print(("after masked fine-tuning: accuracy %.2f%%"):format(100 * model:preview().accuracy))
	model:commit("masked fine-tuning")
end
