-- activation_sparsity.lua: make the activations sparse, not the weights.
-- Outputs of the activation layers with |y| below a threshold become exact
-- zeros; the next layer then has fewer inputs to multiply (hardware and
-- sparse kernels that skip zero inputs profit, and so does a reader who
-- wants to see which units a class really uses).
--
--   lathe run recipes/activation_sparsity.lua samples/lenet300.safetensors -o sparse_act.safetensors
--   lathe run recipes/activation_sparsity.lua samples/lenet5.safetensors --set budget=0.5
--
-- Parameters (change one with --set NAME=VALUE):
--   budget    accuracy points the threshold may cost         (default 1.0)
--   epochs    fine-tuning epochs with the threshold, 0 = none (default 1)
--   lr        fine-tuning learning rate (Adam)               (default 0.0001)
--   limit     training images per epoch, 0 = all 55,000     (default 0)
--   val_limit validation images per measurement, 0 = all    (default 2000)
--
-- A ReLU already zeroes about half its outputs; a threshold zeroes the
-- small positive ones too. The threshold is part of the model (saved in
-- its architecture), so fine-tuning trains with it: outputs it removes pass
-- no gradient, and the network learns to do without them.
local lathe = require "lathe"

local P = lathe.params{budget = 1.0, epochs = 1, lr = 1e-4, limit = 0, val_limit = 2000}

-- Density of every activation layer's outputs: the share that is not zero.
local function densities(r)
	local parts = {}
	for _, a in ipairs(r.activations) do
		if a.op == "relu" or a.op == "tanh" or a.op == "sigmoid" then
			parts[#parts + 1] = ("%s %.0f%%"):format(a.name, 100 * a.density)
		end
	end
	return table.concat(parts, ", ")
end

local base = model:eval{limit = P.val_limit, activations = true}
print(("no threshold: accuracy %.2f%%, non-zero outputs: %s"):format(100 * base.accuracy, densities(base)))

-- Try thresholds from small to large (one for every activation layer) and
-- keep the largest that stays within the budget.
local chosen = 0
for _, t in ipairs{0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5} do
	local r = model:eval{limit = P.val_limit, threshold = t, activations = true}
	local loss = 100 * (base.accuracy - r.accuracy)
	print(("threshold %4.2f: accuracy %.2f%% (%+.2f), non-zero outputs: %s"):format(t, 100 * r.accuracy,
		-loss, densities(r)))
	if loss <= P.budget then chosen = t end
end
if chosen == 0 then
	print("no threshold stays within the budget; nothing staged")
	return
end

model:threshold_activations(chosen)
model:commit(("activation threshold %g"):format(chosen))

if P.epochs > 0 then
	lathe.finetune(model, {epochs = P.epochs, lr = P.lr, limit = P.limit})
	local r = model:eval{limit = P.val_limit, activations = true}
	print(("after %d epoch(s) with threshold %g: accuracy %.2f%% (%+.2f), non-zero outputs: %s"):format(
		P.epochs, chosen, 100 * r.accuracy, 100 * (r.accuracy - base.accuracy), densities(r)))
	model:commit("fine-tuning with the activation threshold")
end
