-- lathe.gradual: gradual magnitude pruning on the cubic schedule of Zhu &
-- Gupta (2017, "To prune, or not to prune"), interleaved with masked
-- fine-tuning, so the network recovers between pruning steps instead of
-- losing everything at once.
--
--   local gradual = require "lathe.gradual"
--   local log = gradual.prune(model, {final = 0.9, steps = 4})
--
-- gradual.prune(model, opts) with options:
--   final     target sparsity in [0, 1] (required)
--   steps     pruning steps after the first (required, >= 1); the targets
--             are schedule.agp_steps{initial, final, steps}: s(0) = initial,
--             then final + (initial - final) * (1 - k/steps)^3, k = 1..steps
--   initial   sparsity of the first step (default 0: nothing pruned then)
--   layers    list of layer names (default: every layer whose weight has
--             two or more dimensions, as lathe.prune chooses)
--   global    rank the layers' weights together (default false: each layer
--             reaches the target on its own)
--   finetune  options for lathe.finetune after each step (default
--             {epochs = 1}); pruned weights stay zero (masks)
--   eval      options for model:preview after each step, or false to skip
--             measuring (default {}: the validation split)
--   on_step   function(entry) called after each step (for progress output)
--
-- Returns a list with one entry per step: {step = k, sparsity = s(k),
-- accuracy = preview accuracy or nil}. Every prune and fine-tune is staged
-- and journalled on its own; the caller commits (or rolls back) the result.

local lathe = require "lathe"
local schedule = require "lathe.schedule"
local util = require "lathe.util"

local gradual = {}

local OPTIONS = {
	final = { "number", required = true },
	steps = { "integer", required = true },
	initial = { "number", 0 },
	layers = { "table|nil" },
	global = { "boolean", false },
	finetune = { "table", {} },
	eval = { "table|boolean", {} },
	on_step = { "function|nil" },
}

function gradual.prune(model, opts)
	local fname = "gradual.prune"
	local o = util.check_options(opts, OPTIONS, fname)
	for _, k in ipairs{"initial", "final"} do
		if not (o[k] >= 0 and o[k] <= 1) then
			error(("%s: option '%s' must be in [0, 1] (got %s)"):format(fname, k, tostring(o[k])), 2)
		end
	end
	if o.steps < 1 then
		error(("%s: option 'steps' must be an integer >= 1 (got %d)"):format(fname, o.steps), 2)
	end
	if o.initial > o.final then
		-- masks only grow: a falling schedule would log sparsities never reached
		error(("%s: option 'initial' (%g) must not exceed 'final' (%g)"):format(fname, o.initial, o.final), 2)
	end
	local mt = type(model) == "userdata" and getmetatable(model)
	if not (type(mt) == "table" and mt.__name == "lathe.Model") then
		error(("%s: expected a model (got %s)"):format(fname,
			type(mt) == "table" and mt.__name or type(model)), 2)
	end
	local targets = schedule.agp_steps{initial = o.initial, final = o.final, steps = o.steps}
	local tune = util.copy(o.finetune)
	if tune.epochs == nil then tune.epochs = 1 end
	if o.eval == true then o.eval = {} end
	local log = {}
	for k, target in ipairs(targets) do
		if target > 0 then
			lathe.prune(model, {sparsity = target, layers = o.layers, global = o.global or nil})
		end
		-- The first step only prunes to initial: there is nothing to recover
		-- from before it.
		if k > 1 or target > 0 then
			lathe.finetune(model, tune)
		end
		local entry = {step = k - 1, sparsity = target}
		if o.eval then
			entry.accuracy = model:preview(o.eval).accuracy
		end
		log[#log + 1] = entry
		if o.on_step then o.on_step(entry) end
	end
	return log
end

return gradual
