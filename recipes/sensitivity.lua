-- sensitivity.lua: which layers tolerate pruning? Each layer is pruned
-- alone to several sparsities and the validation accuracy measured (the
-- others untouched), as Han et al. 2015 (figure 6) do before choosing
-- per-layer rates. Then a greedy rule picks a sparsity per layer that
-- removes as many weights as it can while the summed accuracy drops stay
-- within a budget; the pick is pruned, previewed and fine-tuned.
--
--   lathe run recipes/sensitivity.lua samples/lenet5.safetensors -o pruned.safetensors
--   lathe run recipes/sensitivity.lua samples/lenet300.safetensors --set budget=0.5
--
-- In the workbench (`lathe samples/lenet5.safetensors`) the same
-- lathe.sensitivity(model) call draws one curve per layer in the spectrum
-- pane (v switches back).
--
-- Parameters (change one with --set NAME=VALUE):
--   budget     accuracy you accept to lose, in points          (default 1.0)
--   val_limit  validation images per measurement, 0 = all 5,000 (default 0)
--   epochs     masked fine-tuning epochs afterwards, 0 = none  (default 1)
--   lr         fine-tuning learning rate (Adam)                (default 0.001)
--   limit      training images per epoch, 0 = all 55,000      (default 0)
local lathe = require "lathe"

local P = lathe.params{budget = 1.0, val_limit = 0, epochs = 1, lr = 1e-3, limit = 0}

local r = lathe.sensitivity(model, {sparsities = {0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98}, limit = P.val_limit})
print(r)

local chosen, removed = lathe.choose_sparsities(r, {budget = P.budget / 100})
print(("\nchosen within %.1f points (%d weights removed):"):format(P.budget, removed))
for _, layer in ipairs(r.layers) do
	local s = chosen[layer.name]
	print(("  %-10s %4.0f%%"):format(layer.name, 100 * s))
	if s > 0 then model:layer(layer.name):prune{sparsity = s} end
end
-- The budget adds up drops measured one layer at a time; together they can
-- cost more (or less): the preview tells.
local p = model:preview{limit = P.val_limit}
print(("all together: accuracy %.2f%% (%+.2f), sparsity %.1f%%"):format(100 * p.accuracy,
	100 * p.delta.accuracy, 100 * p.sparsity))
model:commit(("per-layer sparsities within %.1f points"):format(P.budget))

if P.epochs > 0 then
	lathe.finetune(model, {epochs = P.epochs, lr = P.lr, limit = P.limit})
	print(("after masked fine-tuning: accuracy %.2f%%"):format(100 * model:preview{limit = P.val_limit}.accuracy))
	model:commit("masked fine-tuning")
end
