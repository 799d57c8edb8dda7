#!/bin/sh
# lathe train: trains from a Lua architecture on a tiny dataset, saves a
# model that evaluates, is reproducible, refuses bad input cleanly, and
# writes nothing when interrupted.
case $0 in */*) here=${0%/*} ;; *) here=. ;; esac
. "$here/lib.sh"

# The 256-image slice doubles as a (tiny) training set.
D=$T/data
mkdir "$D"
for kind in images-idx3 labels-idx1; do
	src=$FIXTURES/slice-$kind-ubyte.gz
	ln -s "$src" "$D/train-$kind-ubyte.gz"
	ln -s "$src" "$D/t10k-$kind-ubyte.gz"
done
cat >"$T/mlp.lua" <<'LUA'
-- a small MLP for the tests
local hidden = 32
return {
  input = {784},
  preprocess = {scale = 255, mean = {0.2858}, std = {0.3529}},
  layers = {
    {op = "linear", name = "fc1", in_features = 784, out_features = hidden},
    {op = "relu"},
    {op = "dropout", p = 0.1},
    {op = "linear", name = "fc2", in_features = hidden, out_features = 10},
  },
}
LUA

run "$LATHE" train "$T/mlp.lua" --data "$D" -o "$T/m.safetensors" --epochs 3 --batch 32 --threads 1 --seed 4
is "train: exit 0" "$rc" 0
contains "train: one line per epoch" "$T/out" "epoch 3/3"
contains "train: reports test accuracy" "$T/out" "test accuracy"
run "$LATHE" info "$T/m.safetensors"
contains "the saved model has the graph" "$T/out" "fc1          linear"
contains "and says who trained it" "$T/out" "lathe.trained_by: lathe"
run "$LATHE" eval "$T/m.safetensors" --data "$D" --json
is "the saved model evaluates" "$rc" 0

# Same seed, one thread: the same bytes (the command line is recorded, so
# train in two directories with the same relative output name).
mkdir "$T/a" "$T/b"
(cd "$T/a" && "$LATHE" train "$T/mlp.lua" --data "$D" -o out.safetensors --epochs 2 --batch 16 --threads 1 --seed 9 >/dev/null)
(cd "$T/b" && "$LATHE" train "$T/mlp.lua" --data "$D" -o out.safetensors --epochs 2 --batch 16 --threads 1 --seed 9 >/dev/null)
check "same seed and one thread give a bit-identical file" cmp -s "$T/a/out.safetensors" "$T/b/out.safetensors"
(cd "$T/b" && "$LATHE" train "$T/mlp.lua" --data "$D" -o out.safetensors --epochs 2 --batch 16 --threads 1 --seed 10 >/dev/null)
if cmp -s "$T/a/out.safetensors" "$T/b/out.safetensors"; then
	not_ok "another seed gives other weights"
else
	ok "another seed gives other weights"
fi

# JSON architectures work too.
"$LATHE" info --json "$T/m.safetensors" >/dev/null
printf '{"input":[784],"layers":[{"op":"flatten"},{"op":"linear","name":"fc","in_features":784,"out_features":10}]}' >"$T/a.json"
run "$LATHE" train "$T/a.json" --data "$D" -o "$T/j.safetensors" --epochs 1 --opt sgd --nesterov --schedule step
is "JSON architecture, SGD with Nesterov: exit 0" "$rc" 0

# Bad input: one line, exit 1, nothing written.
printf 'return {input = {784}, layers = {{op = "linear", name = ' >"$T/syntax.lua"
check_error_msg "Lua syntax error names file and line" "syntax.lua:1:" \
	"$LATHE" train "$T/syntax.lua" --data "$D" -o "$T/x.safetensors"
printf 'os.execute("touch %s/pwned")\nreturn {}\n' "$T" >"$T/escape.lua"
check_error "an architecture cannot run os.execute" \
	"$LATHE" train "$T/escape.lua" --data "$D" -o "$T/x.safetensors"
check "... and nothing ran" test ! -e "$T/pwned"
printf 'while true do end\n' >"$T/loop.lua"
check_error_msg "an endless architecture script is stopped" "too long" \
	"$LATHE" train "$T/loop.lua" --data "$D" -o "$T/x.safetensors"
printf 'return {input = {784}, layers = {{op = "linear", name = "fc", in_features = 700, out_features = 10}}}\n' >"$T/shape.lua"
check_error_msg "shapes that do not chain are refused" "expects [700]" \
	"$LATHE" train "$T/shape.lua" --data "$D" -o "$T/x.safetensors"
check_error "missing architecture file" "$LATHE" train "$T/nope.lua" --data "$D" -o "$T/x.safetensors"
check_error "missing data directory" "$LATHE" train "$T/mlp.lua" --data "$T/nodata" -o "$T/x.safetensors"
check "no output was written by the failures" test ! -e "$T/x.safetensors"
check_usage "no -o" "$LATHE" train "$T/mlp.lua" --data "$D"
check_usage "bad optimiser" "$LATHE" train "$T/mlp.lua" -o "$T/x.safetensors" --opt rmsprop
check_usage "bad learning rate" "$LATHE" train "$T/mlp.lua" -o "$T/x.safetensors" --lr -1
check_usage "nesterov needs sgd" "$LATHE" train "$T/mlp.lua" -o "$T/x.safetensors" --nesterov
check_usage "bad schedule" "$LATHE" train "$T/mlp.lua" -o "$T/x.safetensors" --schedule linear

# Ctrl-C: stops cleanly, exit 130, and writes nothing.
"$LATHE" train "$T/mlp.lua" --data "$D" -o "$T/int.safetensors" --epochs 100000 --batch 8 \
	>"$T/int.out" 2>"$T/int.err" &
pid=$!
sleep 1
kill -INT "$pid"
wait "$pid"
rc=$?
is "interrupted training exits 130" "$rc" 130
contains "and says nothing was written" "$T/int.err" "nothing written"
check "no output file after the interrupt" test ! -e "$T/int.safetensors"
check "no temporary file left" sh -c "! ls -a '$T' | grep -q '^\\.int'"

finish
