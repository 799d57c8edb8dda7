#!/bin/sh
# lathe eval: every fixture model on the bundled 256-image slice against the
# PyTorch references in fixtures/<model>_ref.safetensors (top-1 and top-5
# equal image for image, loss within 1e-4 relative, per-class counts);
# --limit, --batch, --threads; the text report; the data search path;
# clean failures (no such split, weights-only model, bad dataset files);
# and, when the full Fashion-MNIST is installed, the bundled sample's
# recorded test accuracy.

case $0 in */*) here=${0%/*} ;; *) here=. ;; esac
. "$here/lib.sh"

F=$FIXTURES
S=$(slice_dir)
N=256

# ---- each fixture model against its reference ----
for m in mlp cnn allops allops_nsq mlp_f16 mlp_bf16; do
	run "$LATHE" info --json "$F/${m}_ref.safetensors"
	cp "$T/out" "$T/ref.json"
	ref_acc=$(json_get accuracy "$T/ref.json" metadata)
	ref_top5=$(json_get top5 "$T/ref.json" metadata)
	ref_loss=$(json_get loss "$T/ref.json" metadata)
	ref_correct=$(json_get class_correct "$T/ref.json" metadata)
	ref_total=$(json_get class_total "$T/ref.json" metadata)
	if [ -z "$ref_acc" ] || [ -z "$ref_top5" ] || [ -z "$ref_loss" ]; then
		not_ok "$m: reference metadata readable" "accuracy '$ref_acc' top5 '$ref_top5' loss '$ref_loss'"
		continue
	fi

	run "$LATHE" eval "$F/$m.safetensors" --data "$S" --json
	if [ "$rc" -ne 0 ] || [ -s "$T/err" ]; then
		not_ok "$m: eval --json exits 0 with nothing on stderr" "exit status $rc; stderr:"
		diag_file "$T/err"
		continue
	fi
	ok "$m: eval --json exits 0 with nothing on stderr"
	cp "$T/out" "$T/eval.json"
	check "$m: eval --json output is valid JSON" json_valid "$T/eval.json"
	is "$m: images" "$(json_get images "$T/eval.json")" $N
	top1=$(json_get top1 "$T/eval.json")
	top5=$(json_get top5 "$T/eval.json")
	loss=$(json_get loss "$T/eval.json")
	is "$m: top-1 correct images equal the reference ($ref_acc)" \
		"$(count_of "$top1" $N)" "$(count_of "$ref_acc" $N)"
	is "$m: top-5 correct images equal the reference ($ref_top5)" \
		"$(count_of "$top5" $N)" "$(count_of "$ref_top5" $N)"
	if close_rel "$loss" "$ref_loss" 1e-4; then
		ok "$m: loss $loss within 1e-4 relative of $ref_loss"
	else
		not_ok "$m: loss within 1e-4 relative of the reference" "got '$loss', reference '$ref_loss'"
	fi
	# per_class: {"class":c,"accuracy":a,"count":n} -> correct = a*n
	json_compact "$T/eval.json" | tr '{' '\n' |
		sed -n 's/^"class":\([0-9]*\),"accuracy":\([^,]*\),"count":\([0-9]*\)}.*/\1 \2 \3/p' |
		awk '{ c = c sep int($2 * $3 + 0.5); t = t sep $3; sep = "," } END { print c " " t }' >"$T/pc"
	is "$m: per-class correct and total counts equal the reference" \
		"$(cat "$T/pc")" "$ref_correct $ref_total"
done

# ---- the text report (mlp) ----
check_run "mlp: eval text report exits 0" "$LATHE" eval "$F/mlp.safetensors" --data "$S"
cp "$T/out" "$T/mlp.txt"
# 0.859375 -> 85.94%, top-5 1.0 -> 100.00%
contains "mlp: text report has top-1 85.94% and top-5 100.00%" "$T/mlp.txt" "top-1: 85.94%   top-5: 100.00%"
contains "mlp: text report names the test split and 256 images" "$T/mlp.txt" "(test split: 256 of 256 images)"
# Row 1 (Trouser) of the reference: class_correct 32 of class_total 32.
contains "mlp: per-class line for Trouser" "$T/mlp.txt" "100.00%  (32/32)"
rows=$(awk '/^confusion/ { on = 1; next } on && NF == 11 && $1 ~ /^[0-9]$/ { n++; for (i = 2; i <= 11; i++) s += $i } END { print n + 0, s + 0 }' "$T/mlp.txt")
is "mlp: confusion matrix has 10 rows summing to 256" "$rows" "10 256"

# ---- options ----
run "$LATHE" eval "$F/mlp.safetensors" --data "$S" --limit 100 --json
cp "$T/out" "$T/l100.json"
is "--limit 100: images = 100" "$(json_get images "$T/l100.json")" 100
sum=$(json_compact "$T/l100.json" | tr '{' '\n' | sed -n 's/.*"count":\([0-9]*\)}.*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
is "--limit 100: per-class counts sum to 100" "$sum" 100
run "$LATHE" eval "$F/mlp.safetensors" --data "$S" --limit 1000 --json
is "--limit beyond the split: all 256 images" "$(json_get images "$T/out")" $N

run "$LATHE" eval "$F/cnn.safetensors" --data "$S" --json
base_top1=$(json_get top1 "$T/out")
base_top5=$(json_get top5 "$T/out")
base_loss=$(json_get loss "$T/out")
for opt in "--batch 1" "--batch 7" "--batch 1000" "--threads 1" "--threads 3 --batch 10"; do
	run "$LATHE" eval "$F/cnn.safetensors" --data "$S" --json $opt
	t1=$(json_get top1 "$T/out")
	t5=$(json_get top5 "$T/out")
	l=$(json_get loss "$T/out")
	if [ "$rc" -eq 0 ] && [ "$t1" = "$base_top1" ] && [ "$t5" = "$base_top5" ] &&
		close_rel "$l" "$base_loss" 1e-5; then
		ok "cnn $opt: same top-1/top-5/loss as the default"
	else
		not_ok "cnn $opt: same top-1/top-5/loss as the default" \
			"exit status $rc; top1 $t1 top5 $t5 loss $l; default $base_top1 $base_top5 $base_loss"
		diag_file "$T/err"
	fi
done
run "$LATHE" eval "$F/mlp.safetensors" --data "$S" --json --batch 7 --threads 1
is "--batch 7 --threads 1 are reported" \
	"$(json_get batch "$T/out") $(json_get threads "$T/out")" "7 1"

# ---- where the data comes from ----
export LATHE_DATA="$T/nonexistent:$S"
run "$LATHE" eval "$F/mlp.safetensors" --json
unset LATHE_DATA
is "LATHE_DATA search path: skips a missing directory, uses the slice" \
	"$rc $(json_get images "$T/out")" "0 $N"
run "$LATHE" eval --data "$S" --json
case $(json_get model "$T/out") in
*/samples/lenet5.safetensors) ok "no MODEL: the bundled samples/lenet5.safetensors" ;;
*) not_ok "no MODEL: the bundled samples/lenet5.safetensors" "exit status $rc; model '$(json_get model "$T/out")'"
	diag_file "$T/err" ;;
esac

# ---- clean failures ----
check_error_msg "--split val on the slice: no val files, suggests the package" \
	dataset-fashion-mnist "$LATHE" eval "$F/mlp.safetensors" --data "$S" --split val
contains "--split val on the slice: message mentions --data" "$T/err" "--data"
check_error "--split train on the slice: no train files" \
	"$LATHE" eval "$F/mlp.safetensors" --data "$S" --split train
check_error "--data DIR that does not exist" \
	"$LATHE" eval "$F/mlp.safetensors" --data "$T/nonexistent"
check_error_msg "weights-only model (mlp_ref)" weights-only \
	"$LATHE" eval "$F/mlp_ref.safetensors" --data "$S"
check_error_msg "weights-only model (dtypes)" weights-only \
	"$LATHE" eval "$F/dtypes.safetensors" --data "$S"
check_error "an IDX file as the model" \
	"$LATHE" eval "$F/slice-images-idx3-ubyte.gz" --data "$S"

# Dataset directories with wrong files.
# baddata NAME IMAGES LABELS: a directory with those as the test split.
baddata() {
	mkdir "$T/$1"
	ln -s "$2" "$T/$1/t10k-images-idx3-ubyte${2##*ubyte}"
	ln -s "$3" "$T/$1/t10k-labels-idx1-ubyte${3##*ubyte}"
	echo "$T/$1"
}
# labels: 256 x 10 (out of range), 255 x 1 (count mismatch)
{ bytes 0 0 8 1  0 0 1 0; i=0; while [ $i -lt 256 ]; do bytes 10; i=$((i + 1)); done; } >"$T/lab10-ubyte"
{ bytes 0 0 8 1  0 0 0 255; i=0; while [ $i -lt 255 ]; do bytes 1; i=$((i + 1)); done; } >"$T/lab255-ubyte"
printf 'not an idx file\n' >"$T/text-ubyte"
img=$F/slice-images-idx3-ubyte.gz
lab=$F/slice-labels-idx1-ubyte.gz
check_error "dataset: labels file used as images" \
	"$LATHE" eval "$F/mlp.safetensors" --data "$(baddata d1 "$lab" "$lab")"
check_error "dataset: images file used as labels" \
	"$LATHE" eval "$F/mlp.safetensors" --data "$(baddata d2 "$img" "$img")"
check_error "dataset: a label of 10" \
	"$LATHE" eval "$F/mlp.safetensors" --data "$(baddata d3 "$img" "$T/lab10-ubyte")"
check_error "dataset: 256 images but 255 labels" \
	"$LATHE" eval "$F/mlp.safetensors" --data "$(baddata d4 "$img" "$T/lab255-ubyte")"
check_error "dataset: text file as images" \
	"$LATHE" eval "$F/mlp.safetensors" --data "$(baddata d5 "$T/text-ubyte" "$lab")"

# ---- the bundled sample on the full test set ----
lenet5=$TOP_SRCDIR/samples/lenet5.safetensors
if have_system_data; then
	run "$LATHE" info --json "$lenet5"
	want=$(json_get lathe.test_accuracy "$T/out" metadata)
	want_pct=$(awk -v a="$want" 'BEGIN { printf "%.2f%%", a * 100 }')
	run_slow "$LATHE" eval "$lenet5" --data "$SYSTEM_DATA"
	if [ "$rc" -eq 0 ] && [ ! -s "$T/err" ] && [ -n "$want" ] &&
		grep -F "top-1: $want_pct " "$T/out" >/dev/null &&
		grep -F "(test split: 10000 of 10000 images)" "$T/out" >/dev/null; then
		ok "lenet5 sample on the full test set: top-1 $want_pct = lathe.test_accuracy $want"
	else
		not_ok "lenet5 sample on the full test set: top-1 equals lathe.test_accuracy ($want)" \
			"exit status $rc; want 'top-1: $want_pct' over 10000 images; output:"
		diag_file "$T/out" 4
		diag_file "$T/err"
	fi
	# The splits: val is the last 5,000 training images, train the first
	# 55,000, train-full all 60,000, test the 10,000 t10k images.
	for sp in "val train-images-idx3-ubyte.gz[55000:60000]" \
		"train train-images-idx3-ubyte.gz[0:55000]" \
		"train-full train-images-idx3-ubyte.gz[0:60000]" \
		"test t10k-images-idx3-ubyte.gz[0:10000]"; do
		set -f; set -- $sp; set +f
		run_slow "$LATHE" eval "$F/mlp.safetensors" --data "$SYSTEM_DATA" --split "$1" --limit 10 --json
		is "--split $1 on the full dataset: $2, 10 images" \
			"$rc $(json_get split "$T/out") $(json_get data "$T/out") $(json_get images "$T/out")" \
			"0 $1 $SYSTEM_DATA/$2 10"
	done
else
	skip "lenet5 sample on the full test set" "no $SYSTEM_DATA"
	skip "--split val, train, train-full, test on the full dataset" "no $SYSTEM_DATA"
fi

finish
