-- l1_sparse_train.lua: sparsity learned by training. Adding lambda * sum|w|
-- to the loss pulls every weight towards zero; with proximal steps (after
-- each optimiser step, w = sign(w) * max(|w| - lr * lambda, 0)) weights
-- that do not earn their keep land on exactly zero, so the network decides
-- where to be sparse. The stronger lambda, the sparser and (eventually)
-- the less accurate: this recipe measures that trade-off, then keeps one.
--
--   lathe run recipes/l1_sparse_train.lua samples/lenet300.safetensors -o l1.safetensors
--   lathe run recipes/l1_sparse_train.lua samples/lenet300.safetensors --set keep=0.001
--
-- Parameters (change one with --set NAME=VALUE):
--   lambdas   strengths to compare, comma-separated  (default "0.0003,0.001,0.003,0.01")
--   keep      the strength to keep at the end, 0 = the sparsest within
--             budget of the starting accuracy       (default 0)
--   budget    accuracy you accept to lose (points)  (default 1.0)
--   epochs    training epochs per strength          (default 2)
--   lr        learning rate (SGD, momentum 0.9)     (default 0.02)
--   limit     training images per epoch, 0 = all    (default 0)
local lathe = require "lathe"

local P = lathe.params{lambdas = "0.0003,0.001,0.003,0.01", keep = 0, budget = 1.0, epochs = 2, lr = 0.02,
	limit = 0}

local base = model:preview().accuracy
local function train(lambda)
	-- keep_zeros = false: a weight L1 has zeroed may come back if the data
	-- wants it (masks would freeze it).
	lathe.finetune(model, {epochs = P.epochs, opt = "sgd", lr = P.lr, l1 = lambda, limit = P.limit,
		keep_zeros = false})
	local p = model:preview()
	return p.sparsity, p.accuracy
end

print(("%10s %9s %9s"):format("lambda", "sparsity", "accuracy"))
local best
for text in P.lambdas:gmatch("[^,]+") do
	local lambda = assert(tonumber(text), "lambdas: not a number: " .. text)
	local sparsity, acc = train(lambda)
	print(("%10g %8.1f%% %8.2f%%"):format(lambda, 100 * sparsity, 100 * acc))
	if 100 * (base - acc) <= P.budget and (not best or sparsity > best.sparsity) then
		best = {lambda = lambda, sparsity = sparsity}
	end
	model:rollback()
end

local lambda = P.keep > 0 and P.keep or (best and best.lambda)
if lambda then
	train(lambda)
	model:commit(("L1 sparse training, lambda %g"):format(lambda))
else
	print(("no strength stayed within %.1f points; nothing kept"):format(P.budget))
end
