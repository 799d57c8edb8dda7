-- TAP tests for lathe.schedule. Run: lathe lua tests/lua/t_schedule.lua

-- Harness: tests/lua/tap.lua -----------------------------------------------
local tap = dofile((arg[0]:match("^(.*/)") or "./") .. "tap.lua")
local report, show, ok, is, err, raises, here, located =
	tap.report, tap.show, tap.ok, tap.is, tap.err, tap.raises, tap.here, tap.located
local function near(got, want, desc) tap.near(got, want, 1e-12, desc) end
-- f(t) for t = a..b never goes the wrong way (dir 1: up, -1: down).
local function monotone(f, a, b, dir, step)
	local prev = f(a)
	for t = a + (step or 1), b, step or 1 do
		local v = f(t)
		if (v - prev) * dir < 0 then return false, t end
		prev = v
	end
	return true
end

local schedule = require "lathe.schedule"


local function run()
	-- agp: values computed by hand from s_t = s_f + (s_i - s_f)(1 - k/n)^3 ---
	local f = schedule.agp { initial = 0, final = 0.9, steps = 10 }
	is(f(0), 0, "agp: initial at start")
	is(f(-5), 0, "agp: initial before start")
	near(f(1), 0.2439, "agp: k=1 is 0.9 * (1 - 0.9^3) = 0.2439")
	near(f(5), 0.7875, "agp: k=5 is 0.9 * (1 - 0.5^3) = 0.7875")
	near(f(9), 0.8991, "agp: k=9 is 0.9 * (1 - 0.1^3) = 0.8991")
	is(f(10), 0.9, "agp: exactly final at the last step")
	is(f(1e9), 0.9, "agp: final long after")

	local g = schedule.agp { initial = 0.1, final = 0.8, start = 100, steps = 4, every = 10 }
	is(g(99), 0.1, "agp start/every: before start")
	is(g(100), 0.1, "agp start/every: k=0 is exactly initial")
	is(g(109), 0.1, "agp start/every: held until the next pruning step")
	near(g(110), 0.5046875, "agp start/every: k=1 is 0.8 - 0.7 * 0.75^3")
	near(g(115.5), 0.5046875, "agp start/every: fractional step held")
	near(g(120), 0.7125, "agp start/every: k=2 is 0.8 - 0.7 * 0.5^3")
	near(g(139), 0.7890625, "agp start/every: k=3 is 0.8 - 0.7 * 0.25^3")
	is(g(140), 0.8, "agp start/every: final at start + steps*every")
	ok(monotone(g, 0, 200, 1), "agp: non-decreasing when initial <= final")
	ok(monotone(schedule.agp { final = 0.95, steps = 37, every = 3 }, -5, 200, 1, 0.5),
		"agp: non-decreasing on a fine grid")
	local inside = true
	for t = 0, 200 do
		local v = g(t)
		if v < 0.1 or v > 0.8 then inside = false end
	end
	ok(inside, "agp: values stay within [initial, final]")
	local down = schedule.agp { initial = 0.8, final = 0.2, steps = 3 }
	ok(down(0) == 0.8 and down(3) == 0.2 and monotone(down, 0, 5, -1), "agp: initial > final falls")
	is(schedule.agp { final = 0.5, steps = 1 }(1), 0.5, "agp: one step")
	is(schedule.agp { final = 1, steps = 5 }(5), 1, "agp: final 1 allowed")
	ok(pcall(schedule.agp, { final = 0.5, steps = 4.0, every = 2.0 }), "agp: integral floats accepted")

	-- agp_steps ----------------------------------------------------------------
	local targets, at = schedule.agp_steps { initial = 0.1, final = 0.8, start = 100, steps = 4, every = 10 }
	is(#targets, 5, "agp_steps: steps + 1 targets")
	is(#at, 5, "agp_steps: steps + 1 step numbers")
	ok(targets[1] == 0.1 and targets[5] == 0.8, "agp_steps: first is initial, last is final")
	ok(at[1] == 100 and at[2] == 110 and at[5] == 140, "agp_steps: step numbers start + k*every")
	local match = true
	for i = 1, #targets do
		if g(at[i]) ~= targets[i] then match = false end
	end
	ok(match, "agp_steps: agrees with agp at every pruning step")
	near(targets[3], 0.7125, "agp_steps: middle target")

	-- agp option errors ----------------------------------------------------------
	local e, where = err(function() local _ = schedule.agp { final = 0.9, steps = 10, frequency = 2 } end), here()
	is(e and e:match(":%d+: (.*)$"),
		"schedule.agp: unknown option 'frequency' (expected one of: every, final, initial, start, steps)",
		"agp: unknown option named, allowed ones listed")
	located(e, where, "agp: unknown option error points at the caller")
	e, where = err(function() local _ = schedule.agp { final = "0.9", steps = 10 } end), here()
	is(e and e:match(":%d+: (.*)$"), "schedule.agp: option 'final' must be a number (got string)",
		"agp: wrong type")
	located(e, where, "agp: wrong type error points at the caller")
	e, where = err(function() local _ = schedule.agp { final = 1.5, steps = 10 } end), here()
	is(e and e:match(":%d+: (.*)$"), "schedule.agp: option 'final' must be in [0, 1] (got 1.5)",
		"agp: final out of range")
	located(e, where, "agp: range error points at the caller")
	e, where = err(function() local _ = schedule.agp_steps { final = 0.5, steps = 0 } end), here()
	is(e and e:match(":%d+: (.*)$"), "schedule.agp_steps: option 'steps' must be an integer >= 1 (got 0)",
		"agp_steps: steps 0")
	located(e, where, "agp_steps: range error points at the caller")
	raises(function() schedule.agp { steps = 10 } end, "schedule.agp: option 'final' is required (a number)",
		"agp: final required")
	raises(function() schedule.agp { final = 0.9 } end, "schedule.agp: option 'steps' is required (an integer)",
		"agp: steps required")
	raises(function() schedule.agp { final = 0.9, steps = 2.5 } end,
		"schedule.agp: option 'steps' must be an integer (got 2.5)", "agp: fractional steps")
	raises(function() schedule.agp { final = 0.9, steps = 10, every = 0 } end,
		"schedule.agp: option 'every' must be an integer >= 1 (got 0)", "agp: every 0")
	raises(function() schedule.agp { final = 0.9, steps = 10, start = -1 } end,
		"schedule.agp: option 'start' must be an integer >= 0 (got -1)", "agp: negative start")
	raises(function() schedule.agp { initial = -0.1, final = 0.9, steps = 10 } end,
		"schedule.agp: option 'initial' must be in [0, 1] (got -0.1)", "agp: negative initial")
	raises(function() schedule.agp { final = 0 / 0, steps = 10 } end,
		"schedule.agp: option 'final' must be in [0, 1]", "agp: nan final")
	raises(function() schedule.agp { 0.9 } end, "schedule.agp: unknown option [1]", "agp: positional value")
	raises(function() schedule.agp("0.9") end, "schedule.agp: options must be a table (got string)",
		"agp: options not a table")
	e, where = err(function() local _ = f("3") end), here()
	is(e and e:match(":%d+: (.*)$"), "schedule.agp: step must be a number (got string)", "agp: string step")
	located(e, where, "agp: bad step error points at the caller")
	raises(function() f(0 / 0) end, "schedule.agp: step must be a number (got nan)", "agp: nan step")

	-- linear ---------------------------------------------------------------------
	local lin = schedule.linear { from = 1, to = 0, steps = 4 }
	is(lin(0), 1, "linear: from at 0")
	is(lin(1), 0.75, "linear: quarter")
	is(lin(2), 0.5, "linear: half")
	is(lin(4), 0, "linear: to at steps")
	is(lin(5), 0, "linear: held after")
	is(lin(-3), 1, "linear: from before 0")
	ok(monotone(lin, -2, 10, -1, 0.25), "linear: monotone")
	near(schedule.linear { from = 0.001, to = 0.1, steps = 3 }(1), 0.034, "linear: rising")
	raises(function() schedule.linear { from = 1, steps = 4 } end, "schedule.linear: option 'to' is required",
		"linear: to required")
	raises(function() schedule.linear { from = 1, to = 1 / 0, steps = 4 } end,
		"schedule.linear: option 'to' must be a finite number (got inf)", "linear: inf rejected")

	-- cosine: PyTorch CosineAnnealingLR closed form, by hand ---------------------
	local cs = schedule.cosine { lr = 0.1, steps = 10 }
	is(cs(0), 0.1, "cosine: lr at 0")
	near(cs(1), 0.1 * (1 + 0.95105651629515357) / 2, "cosine: t=1 uses cos(18 deg)")
	near(cs(2), 0.1 * (1 + 0.80901699437494742) / 2, "cosine: t=2 uses cos(36 deg)")
	near(cs(5), 0.05, "cosine: half way is the mean")
	is(cs(10), 0, "cosine: min at steps")
	is(cs(25), 0, "cosine: held at min (no restart)")
	is(cs(-1), 0.1, "cosine: lr before 0")
	local cm = schedule.cosine { lr = 0.1, min = 0.01, steps = 4 }
	near(cm(1), 0.01 + 0.09 * (1 + math.sqrt(0.5)) / 2, "cosine with min: t=1 (cos 45 deg)")
	near(cm(2), 0.055, "cosine with min: t=2")
	near(cm(3), 0.01 + 0.09 * (1 - math.sqrt(0.5)) / 2, "cosine with min: t=3 (cos 135 deg)")
	is(cm(4), 0.01, "cosine with min: min at steps")
	ok(monotone(cm, 0, 8, -1, 0.1), "cosine: non-increasing")
	raises(function() schedule.cosine { lr = 0.1, steps = 10, eta_min = 0 } end,
		"schedule.cosine: unknown option 'eta_min' (expected one of: lr, min, steps)", "cosine: PyTorch's name rejected")
	raises(function() schedule.cosine { lr = -0.1, steps = 10 } end,
		"schedule.cosine: option 'lr' must be a finite number >= 0 (got -0.1)", "cosine: negative lr")

	-- step -------------------------------------------------------------------------
	local st = schedule.step { lr = 1, every = 3 }
	ok(st(0) == 1 and st(1) == 1 and st(2) == 1, "step: lr for the first period")
	near(st(3), 0.1, "step: default gamma 0.1 after one period")
	near(st(5), 0.1, "step: held within the period")
	near(st(6), 0.01, "step: two periods")
	is(st(-1), 1, "step: lr before 0")
	ok(monotone(st, 0, 30, -1), "step: non-increasing")
	near(schedule.step { lr = 0.5, gamma = 0.5, every = 1 }(3), 0.0625, "step: custom gamma")
	raises(function() schedule.step { lr = 1 } end, "schedule.step: option 'every' is required (an integer)",
		"step: every required")
	raises(function() schedule.step { lr = 1, every = 2, gamma = 0 } end,
		"schedule.step: option 'gamma' must be a finite number > 0 (got 0)", "step: gamma 0")

	-- exponential ---------------------------------------------------------------------
	local ex = schedule.exponential { lr = 0.5, gamma = 0.9 }
	is(ex(0), 0.5, "exponential: lr at 0")
	near(ex(1), 0.45, "exponential: one step")
	near(ex(2), 0.405, "exponential: two steps")
	near(ex(10), 0.5 * 0.3486784401, "exponential: ten steps")
	is(ex(-2), 0.5, "exponential: lr before 0")
	ok(monotone(ex, 0, 50, -1), "exponential: non-increasing for gamma < 1")
	raises(function() schedule.exponential { lr = 0.5 } end,
		"schedule.exponential: option 'gamma' is required (a number)", "exponential: gamma required")
	e, where = err(function() local _ = schedule.exponential { lr = 0.5, gamma = -1 } end), here()
	located(e, where, "exponential: range error points at the caller")
	raises(function() ex(nil) end, "schedule.exponential: step must be a number (got nil)", "exponential: nil step")
end

tap.run(run)
