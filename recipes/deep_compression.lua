-- deep_compression.lua: the whole Deep Compression pipeline (Han, Mao &
-- Dally, ICLR 2016) on the two bundled LeNets: prune to the paper's
-- per-layer rates with masked fine-tuning, share weights by k-means
-- (LeNet-300-100: 6 bits everywhere; LeNet-5: 8 bits conv, 5 bits fc),
-- fine-tune the shared values, then save with sparse relative indices and
-- Huffman coding. Each stage's test accuracy and real file size are
-- printed, like the paper's tables.
--
--   lathe run recipes/deep_compression.lua samples/lenet300.safetensors -o out.safetensors
--   lathe run recipes/deep_compression.lua samples/lenet5.safetensors -o out.safetensors
--   lathe info out.safetensors         (how each tensor is stored)
--
-- Parameters (change one with --set NAME=VALUE):
--   steps         pruning steps on the way to the paper's rates   (default 4)
--   epochs        masked fine-tuning epochs after each step       (default 1)
--   final_epochs  fine-tuning epochs at the final rates (cosine)  (default 8)
--   lr            pruning fine-tuning learning rate (Adam)        (default 0.002)
--   share_epochs  epochs of fine-tuning the shared values         (default 3)
--   share_lr      learning rate for the shared values (Adam)      (default 0.0001)
--   bits          bits per weight for every layer, 0 = the paper's (default 0)
--   conv_bits     bits for conv layers, 0 = as above              (default 0)
--   fc_bits       bits for linear layers, 0 = as above            (default 0)
--   bias_bits     biases quantized to this many bits, 0 = f32     (default 8)
--   limit         training images per epoch, 0 = all 55,000      (default 0)
--
-- Sizes are those of the file lathe writes (lathe run -o): header,
-- architecture, biases and Huffman tables included, against the fp32
-- model file. Biases to 8 bits is our addition (the paper leaves biases
-- aside; here they are 6 % of what is left).
--
-- Measured on this machine (2 cores), full training split, 2026-11-23 (also
-- in BENCHMARKS.md): see the closing table of a run.
local lathe = require "lathe"
local paper = require "lathe.paper"
local util = require "lathe.util"

local P = lathe.params{steps = 4, epochs = 1, final_epochs = 8, lr = 2e-3, share_epochs = 3, share_lr = 1e-4,
	bits = 0, conv_bits = 0, fc_bits = 0, bias_bits = 8, limit = 0}
local t0 = os.time()

local net = paper.detect(model)
local layers = paper.layers(net)
local rows = {}
-- Test accuracy and the size of the file the committed model makes; the
-- first stage's file (the model as opened, fp32) is the reference.
local function stage(name)
	local acc = model:eval{split = "test"}.accuracy
	local size = model:packing{staged = false}.bytes
	rows[#rows + 1] = {name = name, acc = acc, size = size}
	print(("%-26s test accuracy %.2f %%, %s (%.1fx smaller)"):format(name, 100 * acc, util.bytes(size),
		rows[1].size / size))
end
stage("original (fp32)")

-- 1. Pruning (lathe.paper: gradual, masked fine-tuning after each step).
paper.prune(model, {steps = P.steps, epochs = P.epochs, final_epochs = P.final_epochs, lr = P.lr,
	limit = P.limit, log = function() end})
stage("pruned")

-- 2. Weight sharing: 2^bits shared values per layer, linear initialisation
-- (Han et al. section 3.2: it keeps centroids for the rare large weights).
-- Pruned weights take no part and stay zero.
for _, name in ipairs(layers) do
	local kind = model:layer(name).op == "conv2d" and P.conv_bits or P.fc_bits
	local bits = kind > 0 and kind or P.bits > 0 and P.bits or paper.BITS[net][name]
	model:layer(name):share{bits = bits, init = "linear"}
end
model:commit("weight sharing")
stage("shared")

-- 3. Fine-tune the shared values: each one moves by the summed gradient of
-- the weights that share it; the codes do not change. An epoch is kept
-- only if the validation accuracy improved.
local best = model:preview().accuracy
for e = 1, P.share_epochs do
	lathe.finetune(model, {epochs = 1, lr = P.share_lr, limit = P.limit, seed = 100 + e})
	local acc = model:preview().accuracy
	if acc > best then
		best = acc
		model:commit(("shared values, epoch %d"):format(e))
	else
		model:rollback()
	end
end
stage("shared values fine-tuned")

-- 4. Biases: few, but at f32 they would be a large part of what is left.
if P.bias_bits > 0 then
	for _, name in ipairs(layers) do
		if model:layer(name).bias then
			model:layer(name).bias:quantize{bits = P.bias_bits}
		end
	end
	model:commit(("biases to %d bits"):format(P.bias_bits))
	stage(("biases %d bits"):format(P.bias_bits))
end

-- The packed form, layer by layer (Huffman coding is chosen wherever it is
-- smaller, for the indices and for the codes).
local pk = model:packing{staged = false}
print(("\n%-6s %9s %8s %5s %10s %10s %9s"):format("layer", "weights", "kept", "bits", "index B", "codes B",
	"bits/w"))
for _, name in ipairs(layers) do
	local t = pk.tensors[name .. ".weight"]
	local n = model:layer(name).weight.numel
	if t.packed then
		print(("%-6s %9s %7.1f%% %5d %10s %10s %9.2f"):format(name, util.count(n), 100 * t.present / n, t.bits,
			util.count(t.index_bytes), util.count(t.code_bytes),
			8 * (t.index_bytes + t.code_bytes) / t.present))
	end
end
local first, last = rows[1], rows[#rows]
print(("\n%s: %s -> %s on disk (%.1fx smaller), test accuracy %.2f %% -> %.2f %% (%+.2f points), %d s")
	:format(net, util.bytes(first.size), util.bytes(last.size), first.size / last.size, 100 * first.acc,
		100 * last.acc, 100 * (last.acc - first.acc), os.time() - t0))
