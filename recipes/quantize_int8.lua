-- quantize_int8.lua: post-training int8 quantization. First a preview: the
-- model evaluated with int8 weights (one scale per output channel,
-- symmetric) and uint8 activations (ranges calibrated on a few hundred
-- validation images), then each layer quantized alone to see which are
-- fragile. Then the weights are quantized for real and the model saved:
-- with its codes, a quarter of the fp32 bytes.
--
--   lathe run recipes/quantize_int8.lua samples/lenet5.safetensors -o int8.safetensors
--   lathe run recipes/quantize_int8.lua samples/lenet300.safetensors --set bits=4
--
-- Parameters (change one with --set NAME=VALUE):
--   bits         weight bits for the staged quantization, 2..8  (default 8)
--   calibration  validation images that set activation ranges   (default 512)
--   val_limit    validation images per measurement, 0 = all      (default 0)
--
-- Why per channel: output channels of one layer can differ in scale by 10x
-- or more; one scale for the whole tensor would waste most levels of the
-- small ones (Krishnamoorthi 2018, "Quantizing deep convolutional networks
-- for efficient inference", section 3). Activations share one scale per
-- tensor because they change with every input.
local lathe = require "lathe"
local util = require "lathe.util"

local P = lathe.params{bits = 8, calibration = 512, val_limit = 0}

local r = model:int8_preview{calibration = P.calibration, limit = P.val_limit}
print(("int8 weights and activations: accuracy %.2f%% -> %.2f%% (%+.2f points), %d calibration images")
	:format(100 * r.baseline, 100 * r.accuracy, 100 * r.delta, r.calibration))
print("each layer alone (its weights and the activations it reads):")
for _, l in ipairs(r.layers) do
	local range = l.lo and ("input range %.3g .. %.3g"):format(l.lo, l.hi) or "reads the image (8-bit already)"
	print(("  %-8s %+6.2f points   %s"):format(l.name, 100 * l.delta, range))
end

-- Stage the weights at the bits asked for and see the size it gives.
local q = model:quantize{bits = P.bits, mode = "symmetric", per_channel = true}
local names = util.keys(q)
table.sort(names)
for _, name in ipairs(names) do
	local s = q[name]
	print(("  %-12s %d bits, SQNR %5.1f dB, max error %.3g"):format(name, s.bits, s.sqnr, s.max_error))
end
local p = model:preview{limit = P.val_limit}
print(("%d-bit weights: accuracy %.2f%% (%+.2f), %s -> %s (%s smaller)"):format(P.bits, 100 * p.accuracy,
	100 * p.delta.accuracy, util.bytes(p.committed.size), util.bytes(p.size), util.ratio(p.ratio)))
model:commit(("int%d weights, per channel"):format(P.bits))
