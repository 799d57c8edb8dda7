-- quantize_fixed_point.lua: weights in fixed point Qm.n, as DSPs and
-- microcontrollers without a float unit store them: a sign bit, m integer
-- bits and n fraction bits, so every weight is a multiple of 2^-n within
-- [-2^m, 2^m). No scale to store: the format itself is the scale.
--
--   lathe run recipes/quantize_fixed_point.lua samples/lenet300.safetensors -o q.safetensors
--   lathe run recipes/quantize_fixed_point.lua samples/lenet5.safetensors --set total=6
--
-- Parameters (change one with --set NAME=VALUE):
--   total      bits per weight, sign included (1 + m + n)   (default 8)
--   val_limit  validation images per measurement, 0 = all  (default 0)
--
-- The recipe tries every split of the bits between integer and fraction
-- and keeps the most accurate: too few integer bits and large weights
-- saturate; too few fraction bits and small ones round to zero.
local lathe = require "lathe"
local util = require "lathe.util"

local P = lathe.params{total = 8, val_limit = 0}
if P.total < 2 or P.total > 16 then error("total must be 2 to 16 bits") end

local best, best_acc
for m = 0, P.total - 1 do
	local fmt = ("Q%d.%d"):format(m, P.total - 1 - m)
	local r = model:quantize{format = fmt}
	local saturated, worst = 0, 0
	for _, s in pairs(r) do
		saturated = saturated + s.saturated
		worst = math.max(worst, s.max_error)
	end
	local p = model:preview{limit = P.val_limit}
	print(("%-6s accuracy %.2f%% (%+.2f), %d weights saturated, max error %.3g"):format(fmt, 100 * p.accuracy,
		100 * p.delta.accuracy, saturated, worst))
	if not best_acc or p.accuracy > best_acc then best, best_acc = fmt, p.accuracy end
	model:rollback()
end

model:quantize{format = best}
local p = model:preview{limit = P.val_limit}
print(("kept %s: accuracy %.2f%% (%+.2f), %s -> %s"):format(best, 100 * p.accuracy, 100 * p.delta.accuracy,
	util.bytes(p.committed.size), util.bytes(p.size)))
model:commit(("fixed point %s"):format(best))
