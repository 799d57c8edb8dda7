-- prune_finetune.lua: magnitude pruning, checked with a preview, then
-- masked fine-tuning to win back the accuracy it cost.
--
--   lathe run recipes/prune_finetune.lua samples/lenet300.safetensors -o pruned.safetensors
--   lathe run recipes/prune_finetune.lua samples/lenet5.safetensors --set sparsity=0.8
--
-- Parameters (change one with --set NAME=VALUE):
--   sparsity  fraction of each layer's weights to remove     (default 0.9)
--   epochs    passes of fine-tuning over the training images  (default 2)
--   lr        fine-tuning learning rate (Adam)                 (default 0.001)
--   limit     training images per epoch, 0 = all 55,000       (default 0)
--
-- Every change below is *staged*: the model you opened does not move until
-- model:commit(). model:preview() evaluates the staged model on the
-- validation split (5,000 images the model was not trained on) and
-- compares it with the committed one; model:rollback() throws the stage
-- away. If anything raises an error, lathe puts the model back exactly as
-- it was before the recipe started, and nothing is saved.
--
-- Fine-tuning needs the training images (Debian: dataset-fashion-mnist, or
-- --data DIR); the bundled slice only holds the validation and test splits.
local lathe = require "lathe"
local util = require "lathe.util"

local P = lathe.params{sparsity = 0.9, epochs = 2, lr = 1e-3, limit = 0}

local function report(what, p)
	print(("%-34s accuracy %6.2f%% (%+.2f)   %s -> %s (%.1fx)"):format(what,
		100 * p.accuracy, 100 * p.delta.accuracy, util.bytes(p.committed.size),
		util.bytes(p.size), p.ratio))
end

-- 1. Too much at once: 99 % of every layer. The preview shows the damage
--    before anything is kept, and rollback forgets it.
model:prune{sparsity = 0.99}
report("try 99% (rolled back)", model:preview())
model:rollback()

-- 2. Magnitude pruning: in every layer, the weights closest to zero go.
--    A mask remembers which ones, so that training keeps them at zero.
model:prune{sparsity = P.sparsity}
local p = model:preview()
report(("prune every layer to %d%%"):format(math.floor(100 * P.sparsity + 0.5)), p)
model:commit(("prune every layer to %d%%"):format(math.floor(100 * P.sparsity + 0.5)))

-- 3. Masked fine-tuning: a little training lets the surviving weights make
--    up for the removed ones. Pruned weights stay exactly zero.
lathe.finetune(model, {epochs = P.epochs, lr = P.lr, limit = P.limit})
report("after masked fine-tuning", model:preview())
model:commit("masked fine-tuning")

-- `lathe run` prints a table of the committed steps and, with -o, saves
-- the last one. In `lathe lua` you would call model:save("out.safetensors"),
-- and model:save_recipe("mine.lua") to keep these steps as a recipe.
