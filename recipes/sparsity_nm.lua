-- sparsity_nm.lua: N:M sparsity. In every group of M consecutive input
-- weights at most N are non-zero (2:4 is what NVIDIA's sparse tensor cores
-- run at twice the speed of dense): the pattern is fixed, so hardware can
-- store the values plus a 2-bit index each and skip the zeros without
-- irregular memory access. Groups run along the inputs: each row of a
-- linear layer, and for a convolution M consecutive input channels at each
-- kernel position. Layers whose inputs M does not divide are left dense.
--
--   lathe run recipes/sparsity_nm.lua samples/lenet5.safetensors -o nm.safetensors
--   lathe run recipes/sparsity_nm.lua samples/lenet300.safetensors --set n=1 --set m=4
--
-- Parameters (change one with --set NAME=VALUE):
--   n        non-zeros kept per group                (default 2)
--   m        group size                              (default 4)
--   epochs   masked fine-tuning epochs, 0 = none     (default 2)
--   lr       fine-tuning learning rate (Adam)        (default 0.001)
--   limit    training images per epoch, 0 = all     (default 0)
local lathe = require "lathe"

local P = lathe.params{n = 2, m = 4, epochs = 2, lr = 1e-3, limit = 0}

local r = lathe.prune_nm(model, {n = P.n, m = P.m})
print(("%d:%d sparsity on %d layer(s)%s"):format(P.n, P.m, r.layers,
	#r.skipped > 0 and (" (left dense: " .. table.concat(r.skipped, ", ") .. ")") or ""))
local p = model:preview()
print(("accuracy %.2f%% (%+.2f), sparsity %.1f%%"):format(100 * p.accuracy, 100 * p.delta.accuracy,
	100 * p.sparsity))
model:commit(("%d:%d sparsity"):format(P.n, P.m))

if P.epochs > 0 then
	-- The masks keep the pattern: fine-tuning cannot revive a pruned weight.
	lathe.finetune(model, {epochs = P.epochs, lr = P.lr, limit = P.limit})
	print(("after masked fine-tuning: accuracy %.2f%%"):format(100 * model:preview().accuracy))
	model:commit("masked fine-tuning")
end
