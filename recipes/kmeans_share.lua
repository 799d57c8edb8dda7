-- kmeans_share.lua: weight sharing by k-means (Han et al. 2016, "Deep
-- Compression", section 3). Each layer's weights are clustered into 2^bits
-- shared values; every weight keeps only the index of its cluster. Then the
-- shared values are fine-tuned: the gradient of a shared value is the sum
-- of the gradients of the weights that share it, so the network adjusts the
-- codebook, not the weights one by one.
--
--   lathe run recipes/kmeans_share.lua samples/lenet300.safetensors -o shared.safetensors
--   lathe run recipes/kmeans_share.lua samples/lenet5.safetensors --set bits=3 --set init=density
--
-- Parameters (change one with --set NAME=VALUE):
--   bits       bits per weight: 2^bits shared values per layer (default 4)
--   init       centroid initialisation: linear, density, random (default linear)
--   epochs     fine-tuning epochs of the shared values, 0 = none (default 1)
--   lr         fine-tuning learning rate (Adam)                 (default 0.0001)
--   limit      training images per epoch, 0 = all 55,000        (default 0)
--   val_limit  validation images per measurement, 0 = all       (default 0)
--
-- Why linear initialisation: it spreads centroids over the whole range, so
-- the few large weights (which matter most) keep a centroid of their own;
-- density initialisation crowds centroids where most weights are, near
-- zero (Han et al. 2016, figure 4 and section 3.2).
local lathe = require "lathe"
local util = require "lathe.util"

local P = lathe.params{bits = 4, init = "linear", epochs = 1, lr = 1e-4, limit = 0, val_limit = 0}

local r = model:share{bits = P.bits, init = P.init}
local names = util.keys(r)
table.sort(names)
for _, name in ipairs(names) do
	local s = r[name]
	print(("%-12s %3d shared values for %s weights, %d k-means steps, SQNR %.1f dB"):format(name, s.k,
		util.count(s.shared), s.iterations, s.sqnr))
end
local p = model:preview{limit = P.val_limit}
print(("shared at %d bits: accuracy %.2f%% (%+.2f), %s -> %s"):format(P.bits, 100 * p.accuracy,
	100 * p.delta.accuracy, util.bytes(p.committed.size), util.bytes(p.size)))
model:commit(("k-means sharing, %d bits"):format(P.bits))

if P.epochs > 0 then
	-- Fine-tuning a shared model trains the shared values (the codes stay).
	lathe.finetune(model, {epochs = P.epochs, lr = P.lr, limit = P.limit})
	p = model:preview{limit = P.val_limit}
	print(("after fine-tuning the shared values: accuracy %.2f%% (%+.2f)"):format(100 * p.accuracy,
		100 * p.delta.accuracy))
	model:commit("centroid fine-tuning")
end
