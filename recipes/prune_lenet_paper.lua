-- prune_lenet_paper.lua: the pruning stage of Deep Compression (Han, Mao &
-- Dally, ICLR 2016, table 2 and 3) on the two bundled LeNets, for
-- Fashion-MNIST instead of MNIST: each layer keeps the share of its
-- weights the paper kept, reached gradually with masked fine-tuning.
--
--   lathe run recipes/prune_lenet_paper.lua samples/lenet300.safetensors -o lenet300-pruned.safetensors
--   lathe run recipes/prune_lenet_paper.lua samples/lenet5.safetensors -o lenet5-pruned.safetensors
--
-- Weights kept per layer (the paper's "Weights%"):
--   LeNet-300-100: fc1 8 %, fc2 9 %, fc3 26 %               (12x fewer weights)
--   LeNet-5:       conv1 66 %, conv2 12 %, fc1 8 %, fc2 19 % (12x fewer weights)
--
-- Parameters (change one with --set NAME=VALUE):
--   steps         pruning steps on the way to the final rates   (default 4)
--   epochs        fine-tuning epochs after each step              (default 1)
--   final_epochs  fine-tuning epochs at the final rates, cosine   (default 8)
--   lr            fine-tuning learning rate                       (default 0.002)
--   opt           optimiser: adam, adamw or sgd                   (default adam)
--   weight_decay  weight decay                                    (default 0)
--   batch         fine-tuning batch size                          (default 128)
--   limit         training images per epoch, 0 = all 55,000      (default 0)
--   test          measure the test split before and after        (default true)
--
-- Measured on this machine (2 cores) with the defaults and the full
-- training split, 2026-11-23 (also in BENCHMARKS.md):
--   LeNet-300-100: test accuracy 89.74 % -> 89.44 % (-0.30 points),
--                  21,776 of 266,200 weights kept (12.2x fewer), 43 s
--   LeNet-5:       test accuracy 91.80 % -> 91.51 % (-0.29 points),
--                  36,280 of 430,500 weights kept (11.9x fewer), about 8 min
-- (Han et al. report 12x fewer weights for both nets on MNIST, with no loss.)
--
-- Why gradually: removing 92 % of a layer at once destroys what the network
-- computes; removing a little, letting the remaining weights adapt, and
-- repeating loses far less. The sparsity of step k follows the cubic
-- schedule of Zhu & Gupta (2017): large steps first, small ones at the end,
-- when every weight left matters.
local lathe = require "lathe"
local paper = require "lathe.paper"
local util = require "lathe.util"

local P = lathe.params{steps = 4, epochs = 1, final_epochs = 8, lr = 2e-3, opt = "adam", weight_decay = 0.0,
	batch = 128, limit = 0, test = true}

local net = paper.detect(model)
local layers = paper.layers(net)

local function test_accuracy()
	return P.test and model:eval{split = "test"}.accuracy or nil
end
local before = test_accuracy()
print(("%s: pruning to the Deep Compression rates in %d steps"):format(net, P.steps))
-- Each layer follows its own cubic schedule to its rate, with masked
-- fine-tuning after every step, then a longer fine-tuning (lathe.paper).
paper.prune(model, P)

-- The paper's table: weights per layer and the share kept.
print(("\n%-8s %10s %10s %8s"):format("layer", "weights", "kept", "kept %"))
local total, kept = 0, 0
for _, name in ipairs(layers) do
	local st = model:layer(name).weight:stats()
	total, kept = total + st.numel, kept + (st.numel - st.zeros)
	print(("%-8s %10s %10s %7.1f%%"):format(name, util.count(st.numel), util.count(st.numel - st.zeros),
		100 * (st.numel - st.zeros) / st.numel))
end
print(("%-8s %10s %10s %7.1f%%   (%.1fx fewer weights)"):format("total", util.count(total), util.count(kept),
	100 * kept / total, total / kept))
local after = test_accuracy()
if before then
	print(("test accuracy %.2f %% -> %.2f %% (%+.2f points)"):format(100 * before, 100 * after,
		100 * (after - before)))
end
