-- lathe.gradual: the AGP schedule's targets are reached step by step, with
-- fine-tuning in between; every step is journalled; options are checked.
-- Run: lathe lua tests/lua/t_gradual.lua (needs the training split).
local T = dofile((arg[0]:match("^(.*/)") or "./") .. "tap.lua")
local lathe = require "lathe"
local gradual = require "lathe.gradual"
local schedule = require "lathe.schedule"

local m = assert(lathe.open(T.top .. "/samples/lenet300.safetensors"))
T.raises(function() gradual.prune(m, {steps = 3}) end, "option 'final' is required", "final required")
T.raises(function() gradual.prune(m, {final = 0.9, steps = 3, epochs = 2}) end, "unknown option",
	"options checked")
T.raises(function() gradual.prune(m, {final = 1.5, steps = 3}) end, "t_gradual.lua:13: gradual.prune: option 'final' must be in [0, 1]",
	"final in [0, 1], reported at the caller's line")

T.raises(function() gradual.prune(m, {initial = 0.8, final = 0.5, steps = 2}) end, "must not exceed 'final'",
	"initial above final refused (masks only grow)")
T.raises(function() gradual.prune(m.fc1, {final = 0.5, steps = 2}) end, "expected a model (got lathe.Layer)",
	"the target must be a model")

local have_train = pcall(function() m:eval{split = "train", limit = 1} end)
if have_train then
	local seen = {}
	local log = gradual.prune(m, {final = 0.8, steps = 3, layers = {"fc1", "fc2"},
		finetune = {epochs = 1, limit = 500, lr = 1e-3}, eval = {limit = 500},
		on_step = function(e) seen[#seen + 1] = e.step end})
	local want = schedule.agp_steps{final = 0.8, steps = 3}
	T.is(#log, 4, "one entry per step, the first at the initial sparsity")
	local same = true
	for k, e in ipairs(log) do same = same and e.sparsity == want[k] end
	T.ok(same, "targets follow schedule.agp_steps")
	T.near(m.fc1.weight:stats().sparsity, 0.8, 1e-6, "fc1 ends at the final sparsity")
	T.near(m.fc2.weight:stats().sparsity, 0.8, 1e-6, "fc2 too")
	T.is(m.fc3.weight:stats().zeros, 0, "layers not named are left alone")
	T.ok(log[4].accuracy and log[4].accuracy > 0.5, "each step measured", log[4].accuracy)
	T.is(table.concat(seen, ","), "0,1,2,3", "on_step called after every step")
	m:commit("gradual")
	local j = m:journal()
	local prunes, tunes = 0, 0
	for _ in j:gmatch("lathe%.prune%(") do prunes = prunes + 1 end
	for _ in j:gmatch("lathe%.finetune%(") do tunes = tunes + 1 end
	T.ok(prunes == 3 and tunes == 3, "journal: 3 prunes and 3 fine-tunings", j)
else
	for _ = 1, 8 do T.ok(true, "# SKIP no training split") end
end
T.done()
