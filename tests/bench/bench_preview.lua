-- Preview timing (run by tests/bench/run.sh through `lathe lua`):
--   lathe lua bench_preview.lua MODEL DATA_DIR REPEATS LAYER
-- Stages a prune and times model:preview() on the 5,000 validation images:
--   full:   every layer pruned (the whole network is evaluated);
--   suffix: only LAYER pruned (evaluation starts from cached activations
--           of the layers before it; the first such preview fills the cache);
--   cached: the same stage previewed again (answered from the cache).
-- Prints one JSON line with median milliseconds.
local lathe = require "lathe"
local path, data, reps, layer = arg[1], arg[2], math.tointeger(tonumber(arg[3])), arg[4]
lathe.set_data(data)
local m = assert(lathe.open(path))

local function median(xs)
	table.sort(xs)
	local n = #xs
	return n % 2 == 1 and xs[(n + 1) // 2] or (xs[n // 2] + xs[n // 2 + 1]) / 2
end

local function timed(f)
	local t0 = lathe.clock()
	local r = f()
	return (lathe.clock() - t0) * 1e3, r
end

local open_ms, p0 = timed(function() return m:preview() end) -- committed figures, data load
local full, suffix, cached = {}, {}, {}
local first_suffix
for i = 1, reps do
	local s = 0.5 + 0.4 * i / reps -- a different stage each time: no cache hit
	m:prune{sparsity = s}
	full[#full + 1] = timed(function() return m:preview() end)
	cached[#cached + 1] = timed(function() return m:preview() end)
	m:rollback()
	m:prune{sparsity = s, layers = {layer}}
	local ms = timed(function() return m:preview() end)
	if i == 1 then first_suffix = ms else suffix[#suffix + 1] = ms end
	m:rollback()
end
print(('{"bench": "preview", "model": "%s", "images": %d, "layer": "%s", "repeats": %d, ' ..
	'"open_ms": %.1f, "full_ms": %.1f, "suffix_first_ms": %.1f, "suffix_ms": %.1f, "cached_ms": %.3f}')
	:format(path:match("([^/]*)%.safetensors$"), p0.images, layer, reps, open_ms, median(full),
		first_suffix, median(suffix), median(cached)))
