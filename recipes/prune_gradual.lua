-- prune_gradual.lua: gradual pruning (Zhu & Gupta 2017, "To prune, or not
-- to prune"). The sparsity rises over several steps on a cubic schedule,
--   s(k) = final + (initial - final) * (1 - k / steps)^3,
-- with fine-tuning after each step: big cuts while there is plenty of
-- redundancy, small ones at the end when every weight left matters.
--
--   lathe run recipes/prune_gradual.lua samples/lenet300.safetensors -o pruned.safetensors
--   lathe run recipes/prune_gradual.lua samples/lenet5.safetensors --set final=0.8 --set steps=3
--
-- Parameters (change one with --set NAME=VALUE):
--   final    sparsity at the end                        (default 0.95)
--   steps    pruning steps after the first               (default 5)
--   epochs   fine-tuning epochs after each step          (default 1)
--   lr       fine-tuning learning rate (Adam)            (default 0.001)
--   limit    training images per epoch, 0 = all 55,000  (default 0)
--
-- Compare with a one-shot prune to the same sparsity (printed first).
local lathe = require "lathe"
local gradual = require "lathe.gradual"

local P = lathe.params{final = 0.95, steps = 5, epochs = 1, lr = 1e-3, limit = 0}

model:prune{sparsity = P.final}
print(("one shot to %.0f%%, no fine-tuning: accuracy %.2f%%"):format(100 * P.final,
	100 * model:preview().accuracy))
model:rollback()

gradual.prune(model, {final = P.final, steps = P.steps,
	finetune = {epochs = P.epochs, lr = P.lr, limit = P.limit},
	on_step = function(e)
		print(("step %d: sparsity %5.1f%%, accuracy %.2f%%"):format(e.step, 100 * e.sparsity,
			100 * e.accuracy))
	end})
model:commit(("gradual pruning to %g in %d steps"):format(P.final, P.steps))
