-- lathe.schedule: sparsity and learning-rate schedules as plain functions of
-- the step number t (0, 1, 2, ...).
--
--   local schedule = require "lathe.schedule"
--
-- Each constructor takes one options table and returns function(t) -> value.
-- Unknown options, wrong types and out-of-range values raise an error naming
-- the option, at the line that called the constructor. The returned function
-- raises if t is not a number; t need not be an integer. Before the schedule
-- starts (t < 0, or t < start for agp) it gives its first value.
--
--   schedule.agp{final=, steps=, initial=0, start=0, every=1}
--     Gradual pruning, Zhu & Gupta 2017 ("To prune, or not to prune"):
--     pruning steps happen at t = start + k*every, k = 0..steps, and target
--       s(k) = final + (initial - final) * (1 - k/steps)^3
--     so sparsity rises fast at first and levels off at final. The function
--     gives the target of the last pruning step at or before t: initial
--     before start, final from start + steps*every on, constant in between
--     pruning steps. initial and final are fractions in [0, 1]; steps and
--     every are integers >= 1, start an integer >= 0. s(0) is exactly
--     initial and s(steps) exactly final.
--
--   schedule.agp_steps{...}  (same options as agp)
--     -> targets, at: two lists of length steps + 1 (k = 0..steps), the
--     target sparsity s(k) and the step start + k*every it applies at.
--     targets[1] == initial, targets[steps + 1] == final.
--
--   schedule.linear{from=, to=, steps=}
--     from + (to - from) * t/steps for 0 <= t <= steps; to after.
--
--   schedule.cosine{lr=, steps=, min=0}
--     PyTorch's CosineAnnealingLR (T_max = steps) without restarts:
--       min + (lr - min) * (1 + cos(pi * t/steps)) / 2   for 0 <= t <= steps,
--     then held at min (PyTorch's closed form would rise again).
--
--   schedule.step{lr=, every=, gamma=0.1}
--     PyTorch's StepLR: lr * gamma^floor(t/every).
--
--   schedule.exponential{lr=, gamma=}
--     PyTorch's ExponentialLR: lr * gamma^t.
--
-- lr and min must be finite and >= 0; gamma finite and > 0; from and to
-- finite; steps and every integers >= 1.

local util = require "lathe.util"

local schedule = {}

local type, tostring, error = type, tostring, error
local floor, cos, pi, huge = math.floor, math.cos, math.pi, math.huge
local fmt = string.format
local check = util.check_options

-- Raise "fname: option 'name' must be WHAT (got v)" at the line that called
-- the constructor: level 1 is need, 2 the constructor, 3 its caller (one
-- more when need is called through agp_validate).
local function need(cond, fname, name, what, v, level)
	if not cond then
		error(fmt("%s: option '%s' must be %s (got %s)", fname, name, what, tostring(v)), level or 3)
	end
end

local function finite(x)
	return x == x and x ~= huge and x ~= -huge
end

-- Wrap f so that a non-number step raises at the caller's line.
local function stepfn(fname, f)
	return function(t)
		if type(t) ~= "number" or t ~= t then
			error(fmt("%s: step must be a number (got %s)", fname,
				type(t) == "number" and "nan" or type(t)), 2)
		end
		return f(t)
	end
end

-- agp ----------------------------------------------------------------------

local AGP = {
	initial = { "number", 0 },
	final = { "number", required = true },
	start = { "integer", 0 },
	steps = { "integer", required = true },
	every = { "integer", 1 },
}

-- Target of pruning step k (0..steps).
local function agp_target(o, k)
	if k <= 0 then return o.initial end
	if k >= o.steps then return o.final end
	local r = 1 - k / o.steps
	return o.final + (o.initial - o.final) * (r * r * r)
end

-- Range checks shared by agp and agp_steps, called directly from them.
local function agp_validate(o, fname)
	need(finite(o.initial) and o.initial >= 0 and o.initial <= 1, fname, "initial", "in [0, 1]", o.initial, 4)
	need(finite(o.final) and o.final >= 0 and o.final <= 1, fname, "final", "in [0, 1]", o.final, 4)
	need(o.start >= 0, fname, "start", "an integer >= 0", o.start, 4)
	need(o.steps >= 1, fname, "steps", "an integer >= 1", o.steps, 4)
	need(o.every >= 1, fname, "every", "an integer >= 1", o.every, 4)
end

function schedule.agp(opts)
	local fname = "schedule.agp"
	local o = check(opts, AGP, fname)
	agp_validate(o, fname)
	return stepfn(fname, function(t)
		if t < o.start then return o.initial end
		return agp_target(o, floor((t - o.start) / o.every))
	end)
end

function schedule.agp_steps(opts)
	local fname = "schedule.agp_steps"
	local o = check(opts, AGP, fname)
	agp_validate(o, fname)
	local targets, at = {}, {}
	for k = 0, o.steps do
		targets[k + 1] = agp_target(o, k)
		at[k + 1] = o.start + k * o.every
	end
	return targets, at
end

-- learning rates ---------------------------------------------------------------

function schedule.linear(opts)
	local fname = "schedule.linear"
	local o = check(opts, {
		from = { "number", required = true },
		to = { "number", required = true },
		steps = { "integer", required = true },
	}, fname)
	need(finite(o.from), fname, "from", "a finite number", o.from)
	need(finite(o.to), fname, "to", "a finite number", o.to)
	need(o.steps >= 1, fname, "steps", "an integer >= 1", o.steps)
	local from, to, steps = o.from, o.to, o.steps
	return stepfn(fname, function(t)
		if t <= 0 then return from end
		if t >= steps then return to end
		return from + (to - from) * (t / steps)
	end)
end

function schedule.cosine(opts)
	local fname = "schedule.cosine"
	local o = check(opts, {
		lr = { "number", required = true },
		min = { "number", 0 },
		steps = { "integer", required = true },
	}, fname)
	need(finite(o.lr) and o.lr >= 0, fname, "lr", "a finite number >= 0", o.lr)
	need(finite(o.min) and o.min >= 0, fname, "min", "a finite number >= 0", o.min)
	need(o.steps >= 1, fname, "steps", "an integer >= 1", o.steps)
	local lr, min, steps = o.lr, o.min, o.steps
	return stepfn(fname, function(t)
		if t <= 0 then return lr end
		if t >= steps then return min end
		return min + (lr - min) * (1 + cos(pi * t / steps)) / 2
	end)
end

function schedule.step(opts)
	local fname = "schedule.step"
	local o = check(opts, {
		lr = { "number", required = true },
		gamma = { "number", 0.1 },
		every = { "integer", required = true },
	}, fname)
	need(finite(o.lr) and o.lr >= 0, fname, "lr", "a finite number >= 0", o.lr)
	need(finite(o.gamma) and o.gamma > 0, fname, "gamma", "a finite number > 0", o.gamma)
	need(o.every >= 1, fname, "every", "an integer >= 1", o.every)
	local lr, gamma, every = o.lr, o.gamma, o.every
	return stepfn(fname, function(t)
		if t <= 0 then return lr end
		return lr * gamma ^ floor(t / every)
	end)
end

function schedule.exponential(opts)
	local fname = "schedule.exponential"
	local o = check(opts, {
		lr = { "number", required = true },
		gamma = { "number", required = true },
	}, fname)
	need(finite(o.lr) and o.lr >= 0, fname, "lr", "a finite number >= 0", o.lr)
	need(finite(o.gamma) and o.gamma > 0, fname, "gamma", "a finite number > 0", o.gamma)
	local lr, gamma = o.lr, o.gamma
	return stepfn(fname, function(t)
		if t <= 0 then return lr end
		return lr * gamma ^ t
	end)
end

return schedule
