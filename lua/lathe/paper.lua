-- lathe.paper: the Deep Compression settings for the two LeNets (Han, Mao &
-- Dally, ICLR 2016, tables 2 and 3) and its pruning stage, shared by
-- recipes/prune_lenet_paper.lua and recipes/deep_compression.lua.
--
--   local paper = require "lathe.paper"
--   local net = paper.detect(model)        -- "LeNet-300-100" or "LeNet-5"
--   paper.prune(model, {steps = 4, epochs = 1, final_epochs = 8, lr = 2e-3})
--
-- paper.KEEP[net]  share of weights each layer keeps ("Weights%")
-- paper.BITS[net]  bits per weight of k-means sharing (6 everywhere for
--                  LeNet-300-100; 8 for conv, 5 for fc layers of LeNet-5)
-- paper.detect(model) the net whose layers the model has (all of them), or
--                  raises
-- paper.prune(model, opts) prunes every layer to its KEEP share gradually
--                  (opts.steps steps on the cubic schedule of Zhu & Gupta,
--                  opts.epochs of masked fine-tuning after each), then
--                  fine-tunes opts.final_epochs more with a cosine learning
--                  rate, keeping an epoch only if the validation accuracy
--                  improved. Commits each step. opts.opt, weight_decay,
--                  batch, limit go to lathe.finetune; opts.log(line) prints.

local lathe = require "lathe"
local schedule = require "lathe.schedule"
local util = require "lathe.util"

local paper = {}

paper.KEEP = {
	["LeNet-300-100"] = {fc1 = 0.08, fc2 = 0.09, fc3 = 0.26},
	["LeNet-5"] = {conv1 = 0.66, conv2 = 0.12, fc1 = 0.08, fc2 = 0.19},
}

paper.BITS = {
	["LeNet-300-100"] = {fc1 = 6, fc2 = 6, fc3 = 6},
	["LeNet-5"] = {conv1 = 8, conv2 = 8, fc1 = 5, fc2 = 5},
}

function paper.detect(model)
	for net, keep in pairs(paper.KEEP) do
		local all = true
		for name in pairs(keep) do
			if not pcall(model.layer, model, name) then all = false end
		end
		if all and #model == #util.keys(keep) then return net end
	end
	error("expected LeNet-300-100 (fc1..fc3) or LeNet-5 (conv1, conv2, fc1, fc2)", 2)
end

-- The layer names of a net, sorted (a stable order for output).
function paper.layers(net)
	local names = util.keys(paper.KEEP[net])
	table.sort(names)
	return names
end

-- opts checked before any work: a mistake found after ten epochs wastes them.
local function check_prune_opts(opts)
	if type(opts) ~= "table" then error("paper.prune: give an options table", 3) end
	local function count(name, min)
		local v = opts[name]
		if math.type(v) ~= "integer" and not (type(v) == "number" and v == math.floor(v)) or v < min then
			error(("paper.prune: %s must be a whole number >= %d (got %s)"):format(name, min, tostring(v)), 3)
		end
	end
	count("steps", 1)
	count("epochs", 0)
	count("final_epochs", 0)
	if type(opts.lr) ~= "number" or not (opts.lr > 0) then
		error(("paper.prune: lr must be a number above 0 (got %s)"):format(tostring(opts.lr)), 3)
	end
end

function paper.prune(model, opts)
	check_prune_opts(opts)
	local net = paper.detect(model)
	local keep, log = paper.KEEP[net], opts.log or print
	local layers = paper.layers(net)
	local tune = {opt = opts.opt, weight_decay = opts.weight_decay, batch = opts.batch, limit = opts.limit}
	local function finetune(epochs, lr, seed)
		local o = util.copy(tune)
		o.epochs, o.lr, o.seed = epochs, lr, seed
		lathe.finetune(model, o)
	end
	-- Each layer gets its own schedule towards 1 - keep.
	local targets = {}
	for _, name in ipairs(layers) do
		targets[name] = schedule.agp_steps{final = 1 - keep[name], steps = opts.steps}
	end
	for k = 2, opts.steps + 1 do
		for _, name in ipairs(layers) do
			model:layer(name):prune{sparsity = targets[name][k]}
		end
		if opts.epochs > 0 then finetune(opts.epochs, opts.lr, k) end
		log(("  step %d: validation accuracy %.2f %%"):format(k - 1, 100 * model:preview().accuracy))
		model:commit(("step %d of %d"):format(k - 1, opts.steps))
	end
	-- A pruned network overfits the training images quickly, so each
	-- epoch is kept only if the validation accuracy improved (the test
	-- split is never looked at to decide).
	if opts.final_epochs == 0 then return net end
	local lr_at = schedule.cosine{lr = opts.lr, steps = opts.final_epochs}
	local best = model:preview().accuracy
	for e = 1, opts.final_epochs do
		finetune(1, lr_at(e - 1), opts.steps + 1 + e)
		local acc = model:preview().accuracy
		if acc > best then
			best = acc
			model:commit(("fine-tuning epoch %d"):format(e))
		else
			model:rollback()
		end
	end
	return net
end

return paper
