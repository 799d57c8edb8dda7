#!/bin/sh
# lathe run: a recipe prunes, previews, commits, fine-tunes and saves; the
# summary and the saved model are right; errors in recipes give
# `lathe: RECIPE:LINE: message`, exit 1 and write nothing; a failing
# statement changes nothing (checksums of every tensor); the journal saved
# by save_recipe replays to a bit-identical model; --set parameters.
case $0 in */*) here=${0%/*} ;; *) here=. ;; esac
. "$here/lib.sh"

M=$TOP_SRCDIR/samples/lenet300.safetensors
M5=$TOP_SRCDIR/samples/lenet5.safetensors
R=$TOP_SRCDIR/recipes/prune_finetune.lua
# Fine-tuning needs the training split: Debian's dataset package.
HAVE_TRAIN=0
[ -r /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && HAVE_TRAIN=1

run "$LATHE" run --help
is "run --help: exit 0" "$rc" 0
contains "run --help: usage" "$T/out" "usage: lathe run RECIPE.lua MODEL"
check_usage "run: no arguments" "$LATHE" run
check_usage "run: one argument" "$LATHE" run "$R"
check_usage "run: unknown option" "$LATHE" run "$R" "$M" --frobnicate
check_usage "run: --set without =" "$LATHE" run "$R" "$M" --set sparsity
check_usage "run: limits need --sandbox" "$LATHE" run "$R" "$M" --timeout 5

# ---- the example recipe, headless -----------------------------------------
if [ $HAVE_TRAIN = 1 ]; then
	run_slow "$LATHE" run "$R" "$M" -o "$T/out.safetensors"
	is "example recipe: exit 0" "$rc" 0
	[ "$rc" = 0 ] || diag_file "$T/err" 20
	contains "summary header" "$T/out" "step  change"
	contains "summary: step 0 as opened" "$T/out" "0     opened"
	contains "summary: the prune step" "$T/out" "prune every layer to 90%"
	contains "summary: the fine-tune step" "$T/out" "masked fine-tuning"
	# Accuracy after fine-tuning within 3 points of the original on val.
	acc0=$(awk '$1 == "0" { sub("%", "", $3); print $3 }' "$T/out")
	accn=$(awk '$1 ~ /^[0-9]+$/ { a = $0 } END { split(a, f, /  +/); print a }' "$T/out" |
		grep -o '[0-9.]*%' | head -1 | tr -d %)
	if awk -v a="$acc0" -v b="$accn" 'BEGIN { exit !(a - b < 3 && b > 80) }'; then
		ok "fine-tuned accuracy $accn % close to the original $acc0 %"
	else
		not_ok "fine-tuned accuracy $accn % close to the original $acc0 %"
		diag_file "$T/out" 10
	fi
	run "$LATHE" info "$T/out.safetensors" --json
	sp=$(awk '/"totals"/ { t = 1 } t && /"params"/ { gsub(/[^0-9]/, ""); p = $0 }
		t && /"zeros"/ { gsub(/[^0-9]/, ""); z = $0 } END { if (p) printf "%.3f", z / p }' "$T/out")
	if awk -v s="$sp" 'BEGIN { exit !(s > 0.85) }'; then
		ok "saved model is sparse ($sp)"
	else
		not_ok "saved model is sparse" "sparsity '$sp'"
	fi
	run "$LATHE" eval "$T/out.safetensors" --split test --limit 1000
	is "saved model evaluates" "$rc" 0
	PY=/usr/bin/python3
	if [ -x "$PY" ] && "$PY" -c 'import torch' >/dev/null 2>&1; then
		run "$PY" "$TOP_SRCDIR/tests/torch_check.py" "$T/out.safetensors"
		is "saved model loads in PyTorch" "$rc" 0
		[ "$rc" = 0 ] || diag_file "$T/err"
	else
		skip "saved model loads in PyTorch" "no torch"
	fi
	# The same recipe in `lathe lua`, statement by statement from stdin.
	printf 'dofile(os.getenv("R"))\nmodel:save(os.getenv("OUT"))\nprint(#model:history())\n' >"$T/in.lua"
	R=$R OUT=$T/lua.safetensors _timeout "$SLOW_LIMIT" "$LATHE" lua -m "$M" <"$T/in.lua" >"$T/out" 2>"$T/err"
	rc=$?
	is "example recipe in lathe lua: exit 0" "$rc" 0
	contains "lathe lua: the recipe committed its two steps" "$T/out" "3"
	if [ -x "$PY" ] && "$PY" -c 'import torch' >/dev/null 2>&1; then
		run "$PY" "$TOP_SRCDIR/tests/torch_check.py" "$T/lua.safetensors"
		is "model saved from lathe lua loads in PyTorch" "$rc" 0
	else
		skip "model saved from lathe lua loads in PyTorch" "no torch"
	fi
else
	for d in "example recipe" summary prune fine-tune accuracy sparse evaluates torch lua lua-steps lua-torch; do
		skip "example recipe: $d" "no training split (apt-get install dataset-fashion-mnist)"
	done
fi

# ---- errors: one line with RECIPE:LINE, nothing written -------------------
printf 'local x = 1\nmodel:prune{sparsity = 0.5}\nerror("stop here")\n' >"$T/e1.lua"
check_error_msg "error() names RECIPE:LINE" "$T/e1.lua:3: stop here" \
	"$LATHE" run "$T/e1.lua" "$M" -o "$T/e1.safetensors"
test -e "$T/e1.safetensors" && not_ok "failed recipe wrote nothing" || ok "failed recipe wrote nothing"
printf '\nmodel:prune{sparsty = 0.5}\n' >"$T/e2.lua"
check_error_msg "kernel option error names the recipe line" \
	"$T/e2.lua:2: lathe.prune: unknown option 'sparsty' (expected one of:" "$LATHE" run "$T/e2.lua" "$M"
printf 'model:prune{sparsity = 0.5\n' >"$T/e3.lua"
check_error_msg "syntax error" "$T/e3.lua:2:" "$LATHE" run "$T/e3.lua" "$M"
check_error_msg "missing model" "no/such.safetensors" "$LATHE" run "$T/e1.lua" "$T/no/such.safetensors"
check_error_msg "missing recipe" "no/such.lua" "$LATHE" run "$T/no/such.lua" "$M"
printf 'local t = model:tensor("fc1.weight")\nt:get(1, 999)\n' >"$T/e4.lua"
check_error_msg "index error" "e4.lua:2: index 999 out of range (1..784)" "$LATHE" run "$T/e4.lua" "$M"
printf '\033Lua' >"$T/bin.lua"
check_error_msg "binary recipe refused" "binary" "$LATHE" run "$T/bin.lua" "$M"

# ---- Ctrl-C: a clean error, nothing written --------------------------------
printf 'model:prune{sparsity = 0.5}\nmodel:commit()\nwhile true do end\n' >"$T/loop.lua"
"$LATHE" run "$T/loop.lua" "$M" -o "$T/loop.safetensors" >"$T/out" 2>"$T/err" &
pid=$!
# Wait until the recipe is inside its loop (the prune and commit take a moment).
i=0
while [ $i -lt 50 ] && kill -0 $pid 2>/dev/null; do sleep 0.1; i=$((i + 1)); [ $i -ge 10 ] && break; done
kill -INT $pid 2>/dev/null
wait $pid
rc=$?
is "Ctrl-C in a recipe: exit 1" "$rc" 1
contains "Ctrl-C: says interrupted with the recipe line" "$T/err" "loop.lua:3: interrupted"
test -e "$T/loop.safetensors" && not_ok "Ctrl-C: nothing written" || ok "Ctrl-C: nothing written"

# ---- parameters -------------------------------------------------------------
cat >"$T/p.lua" <<'LUA'
local P = lathe.params{sparsity = 0.5, name = "x", on = false}
print(math.type(P.sparsity) or type(P.sparsity), P.sparsity, P.name, P.on)
LUA
run "$LATHE" run "$T/p.lua" "$M" --set sparsity=0.25 --set name=hello --set on=true
contains "--set converts to the default's type" "$T/out" "float	0.25	hello	true"
run "$LATHE" run "$T/p.lua" "$M"
contains "defaults without --set" "$T/out" "float	0.5	x	false"
check_error_msg "--set of an undeclared parameter" "the recipe has no parameter 'sparsty'" \
	"$LATHE" run "$T/p.lua" "$M" --set sparsty=0.3
check_error_msg "--set with a bad number" "expected a number" "$LATHE" run "$T/p.lua" "$M" --set sparsity=lots
printf 'local P = lathe.params{epochs = 2}\nprint(math.type(P.epochs), P.epochs)\n' >"$T/pint.lua"
check_error_msg "--set of a fraction for an integer parameter" "expected a whole number" \
	"$LATHE" run "$T/pint.lua" "$M" --set epochs=1.5
run "$LATHE" run "$T/pint.lua" "$M" --set epochs=3
contains "--set of a whole number stays an integer" "$T/out" "integer	3"
check_error_msg "-o in a missing directory fails before the recipe runs" "cannot write there" \
	"$LATHE" run "$T/pint.lua" "$M" -o "$T/no/such/dir/out.safetensors"
check_usage "-o may not be the recipe" "$LATHE" run "$T/pint.lua" "$M" -o "$T/pint.lua"
printf 'local x = 1\n' >"$T/noparams.lua"
check_error_msg "--set for a recipe without parameters" "declares no parameters" \
	"$LATHE" run "$T/noparams.lua" "$M" --set a=1

# ---- staged but not committed ------------------------------------------------
printf 'model:prune{sparsity = 0.5}\n' >"$T/staged.lua"
run "$LATHE" run "$T/staged.lua" "$M" -o "$T/staged.safetensors"
contains "uncommitted changes: a warning" "$T/err" "left staged changes uncommitted"
if cmp -s "$M" "$T/staged.safetensors"; then
	ok "uncommitted changes are not saved (output equals the input)"
else
	not_ok "uncommitted changes are not saved"
fi

# ---- atomicity: checksums of every tensor around a failing statement -------
# The statements go through `lathe lua` (each one atomic, as in the REPL)
# and through lathe.atomic.
cat >"$T/atomic.lua" <<LUA
-- FNV-style hash of every value of every staged tensor, bit for bit.
function checksum(m)
	local h = 0
	local function walk(x)
		if type(x) == "table" then
			for _, y in ipairs(x) do walk(y) end
		else
			h = (h ~ string.unpack("<I4", string.pack("<f", x))) * 1099511628211
		end
	end
	for _, name in ipairs(m:tensors()) do walk(m:tensor(name):totable()) end
	return h
end
m = assert(lathe.open("$M5"))
m:prune{sparsity = 0.3, layers = {"fc2"}}
m:commit("before")
m:tensor("conv1.bias"):add(1)
before = checksum(m) .. "/" .. #m:history() .. "/" .. tostring(m.dirty)
LUA
cat >"$T/atomic.in" <<'LUA'
dofile(os.getenv("ATOMIC"))
m:prune{sparsity = 0.9}; m:commit("doomed"); m:undo(); m:undo(); m.fc1.weight:fill(7); error("fail on purpose")
after = checksum(m) .. "/" .. #m:history() .. "/" .. tostring(m.dirty)
print(before == after and "SAME" or ("DIFFERENT " .. before .. " " .. after))
ok, e = pcall(lathe.atomic, function() m:prune{sparsity = 0.99}; m:commit(); m.conv1.weight:mul(0); error("again") end)
after = checksum(m) .. "/" .. #m:history() .. "/" .. tostring(m.dirty)
print(before == after and "SAME" or ("DIFFERENT " .. before .. " " .. after))
LUA
ATOMIC=$T/atomic.lua _timeout "$SLOW_LIMIT" "$LATHE" lua <"$T/atomic.in" >"$T/out" 2>"$T/err"
rc=$?
contains "a failing REPL statement is reported" "$T/err" "fail on purpose"
if [ "$(grep -c '^SAME$' "$T/out")" = 2 ]; then
	ok "failing statement and lathe.atomic: every tensor, the history and the stage as before"
else
	not_ok "failing statement leaves every tensor as before"
	diag_file "$T/out"
	diag_file "$T/err"
fi

# ---- journal replay is bit-identical ----------------------------------------
FT=
[ $HAVE_TRAIN = 1 ] && FT='lathe.finetune(model, {epochs = 1, limit = 600, batch = 64, lr = 1e-3})'
cat >"$T/session.lua" <<LUA
local lathe = require "lathe"
model:prune{sparsity = 0.6, layers = {"fc1"}}
lathe.prune(model.fc2, {sparsity = 0.3, method = "random", seed = 9})
model:commit("step one")
model:tensor("fc3.weight"):rows(2, 4):mul(0.5)
model:tensor("fc3.bias"):apply(function(x) return x * x - 0.125 end)
model:tensor("fc2.bias"):set(3, 1 / 3)
model:commit()
model:prune{sparsity = 0.99}
model:commit("undone")
model:undo()
model.fc1:cast{dtype = "bf16"}
$FT
model:commit("last")
model:save_recipe(os.getenv("OUTDIR") .. "/replay.lua")
LUA
OUTDIR=$T run_slow "$LATHE" run "$T/session.lua" "$M" -o "$T/a.safetensors"
is "session recipe: exit 0" "$rc" 0
[ "$rc" = 0 ] || diag_file "$T/err"
contains "saved journal replays steps" "$T/replay.lua" 'model:commit("step one")'
if grep -F 'undone' "$T/replay.lua" >/dev/null; then
	not_ok "an undone step is not in the journal"
else
	ok "an undone step is not in the journal"
fi
run_slow "$LATHE" run "$T/replay.lua" "$M" -o "$T/b.safetensors"
is "replay: exit 0" "$rc" 0
[ "$rc" = 0 ] || diag_file "$T/err"
if cmp -s "$T/a.safetensors" "$T/b.safetensors"; then
	ok "replaying the journal gives a bit-identical file"
else
	not_ok "replaying the journal gives a bit-identical file"
	diag_file "$T/replay.lua" 40
fi
# -o saves packed when that is smaller (quantized, shared or pruned), as
# values otherwise; --packed / --plain force the form.
cat >"$T/q.lua" <<'LUA'
lathe.quantize(model, {bits = 4})
model:commit("4 bits")
LUA
run_slow "$LATHE" run "$T/q.lua" "$M" -o "$T/q.safetensors"
is "quantized: exit 0" "$rc" 0
contains "quantized: saved packed" "$T/err" "saved $T/q.safetensors ("
contains "quantized: says it is packed" "$T/err" ", packed)"
run "$LATHE" info "$T/q.safetensors"
contains "info: a packed file says so" "$T/out" "packed safetensors, 6 tensors, 266,610 parameters"
contains "info: how fc1.weight is stored" "$T/out" "int 4b"
run_slow "$LATHE" run "$T/q.lua" "$M" -o "$T/q_plain.safetensors" --plain
is "--plain: exit 0" "$rc" 0
run "$LATHE" info "$T/q_plain.safetensors"
contains "--plain: values (f32)" "$T/out" "fc1.weight  F32   [300, 784]"
contains "--plain: info tells what packing would give" "$T/out" "packed (lathe run -o, model:save) it would take"
cat >"$T/noop.lua" <<'LUA'
model:commit("nothing")
LUA
run_slow "$LATHE" run "$T/noop.lua" "$M" -o "$T/noop.safetensors"
if grep -F ", packed)" "$T/err" >/dev/null; then
	not_ok "a dense model is saved as values"
else
	ok "a dense model is saved as values"
fi
run_slow "$LATHE" run "$T/noop.lua" "$M" -o "$T/forced.safetensors" --packed
if grep -F ", packed)" "$T/err" >/dev/null; then
	not_ok "--packed on a dense model: nothing gains, so nothing is packed"
else
	ok "--packed on a dense model: nothing gains, so nothing is packed"
fi
run "$LATHE" eval "$T/forced.safetensors" --limit 200
is "--packed: the file evaluates" "$rc" 0
run "$LATHE" run "$T/noop.lua" "$M" --packed
is "--packed without -o: usage error" "$rc" 2
contains "--packed without -o: says why" "$T/err" "there is no -o"
finish
