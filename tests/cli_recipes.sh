#!/bin/sh
# The compression recipes of recipes/ run headless on the bundled samples with
# small settings (a few hundred training images, one epoch) and do what
# their header says: exit 0, the result printed, the saved model smaller or
# sparser as promised and still evaluating. Fine-tuning needs the training
# split (Debian's dataset-fashion-mnist); without it they are skipped.
case $0 in */*) here=${0%/*} ;; *) here=. ;; esac
. "$here/lib.sh"

R=$TOP_SRCDIR/recipes
M3=$TOP_SRCDIR/samples/lenet300.safetensors
M5=$TOP_SRCDIR/samples/lenet5.safetensors
HAVE_TRAIN=0
[ -r /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && HAVE_TRAIN=1
if [ $HAVE_TRAIN = 0 ]; then
	skip "pruning recipes" "no training split (apt-get install dataset-fashion-mnist)"
	finish
fi

# recipe NAME MODEL [--set ...]: run it, saving to $T/NAME.safetensors.
recipe() {
	_name=$1 _model=$2
	shift 2
	run_slow "$LATHE" run "$R/$_name.lua" "$_model" -o "$T/$_name.safetensors" "$@"
	is "$_name: exit 0" "$rc" 0
	[ "$rc" = 0 ] || diag_file "$T/err" 20
}

# sparsity FILE: the fraction of zeros in FILE (lathe info --json).
sparsity() {
	"$LATHE" info "$1" --json | awk '/"totals"/ { t = 1 } t && /"params"/ { gsub(/[^0-9]/, ""); p = $0 }
		t && /"zeros"/ { gsub(/[^0-9]/, ""); z = $0; t = 0 } END { if (p) printf "%.4f", z / p }'
}

# at_least DESC VALUE MIN
at_least() {
	if awk -v v="$2" -v m="$3" 'BEGIN { exit !(v != "" && v + 0 >= m) }'; then
		ok "$1 ($2)"
	else
		not_ok "$1" "got '$2', want at least $3"
	fi
}

recipe prune_magnitude "$M3" --set limit=500 --set epochs=1
contains "prune_magnitude: previews three sparsities" "$T/out" "sparsity  90%: accuracy"
contains "prune_magnitude: fine-tunes" "$T/out" "after 1 epoch(s) of masked fine-tuning"
at_least "prune_magnitude: the saved model is sparse" "$(sparsity "$T/prune_magnitude.safetensors")" 0.89

recipe prune_global "$M3" --set limit=500 --set epochs=1
contains "prune_global: compares with the same share per layer" "$T/out" "ranked globally:"
contains "prune_global: per-layer sparsities" "$T/out" "fc1.weight"
at_least "prune_global: the saved model is sparse" "$(sparsity "$T/prune_global.safetensors")" 0.89

recipe prune_gradual "$M3" --set limit=300 --set steps=2 --set final=0.8
contains "prune_gradual: one line per step" "$T/out" "step 2: sparsity  80.0%"
at_least "prune_gradual: the saved model is sparse" "$(sparsity "$T/prune_gradual.safetensors")" 0.79

recipe prune_structured "$M3" --set limit=500 --set epochs=1
contains "prune_structured: fc1 halves" "$T/out" "fc1       300 ->  150 units"
run "$LATHE" info "$T/prune_structured.safetensors"
contains "prune_structured: lathe info shows the thinner fc2" "$T/out" "[50, 150]"
run "$LATHE" eval "$T/prune_structured.safetensors" --split test --limit 500
is "prune_structured: the thinned model evaluates" "$rc" 0

recipe sparsity_nm "$M5" --set limit=200 --set epochs=1
contains "sparsity_nm: conv1 left dense" "$T/out" "left dense: conv1"
at_least "sparsity_nm: about half the weights zero" "$(sparsity "$T/sparsity_nm.safetensors")" 0.45

recipe l1_sparse_train "$M3" --set limit=1000 --set epochs=1 --set lambdas=0.001,0.01 --set budget=100
contains "l1_sparse_train: a table of strengths" "$T/out" "0.01"
at_least "l1_sparse_train: the kept model has zeros" "$(sparsity "$T/l1_sparse_train.safetensors")" 0.001

recipe activation_sparsity "$M3" --set limit=500 --set val_limit=500 --set budget=5
contains "activation_sparsity: a line per threshold" "$T/out" "threshold 1.50: accuracy"
contains "activation_sparsity: fine-tunes with it" "$T/out" "after 1 epoch(s) with threshold"
run "$LATHE" info "$T/activation_sparsity.safetensors"
contains "activation_sparsity: the saved model carries the threshold" "$T/out" "relu2        relu         [300]                       0              0  outputs |y| <"

recipe sensitivity "$M5" --set val_limit=300 --set limit=200 --set budget=2
contains "sensitivity: the table" "$T/out" "sensitivity (accuracy %"
contains "sensitivity: the choice" "$T/out" "chosen within 2.0 points"
contains "sensitivity: the joint preview" "$T/out" "all together: accuracy"

# Quantization and weight sharing: files packed (the codes make them small)
# that open and evaluate.
packed_ratio() {
	"$LATHE" info "$1" --json | awk -F: '/"ratio"/ { gsub(/[ ,]/, "", $2); print $2 }'
}
recipe quantize_int8 "$M5" --set calibration=100 --set val_limit=300
contains "quantize_int8: the int8 preview" "$T/out" "int8 weights and activations: accuracy"
contains "quantize_int8: each layer alone" "$T/out" "conv2 "
at_least "quantize_int8: the saved file is about 4x smaller than f32" "$(packed_ratio "$T/quantize_int8.safetensors")" 3.5
recipe quantize_fixed_point "$M3" --set total=6 --set val_limit=300
contains "quantize_fixed_point: every split of the bits" "$T/out" "Q5.0"
contains "quantize_fixed_point: the best kept" "$T/out" "kept Q"
recipe kmeans_share "$M3" --set bits=3 --set limit=300 --set val_limit=300
contains "kmeans_share: 8 shared values per layer" "$T/out" "fc1.weight     8 shared values"
contains "kmeans_share: fine-tunes them" "$T/out" "after fine-tuning the shared values"
at_least "kmeans_share: 3-bit codes, about 10x smaller" "$(packed_ratio "$T/kmeans_share.safetensors")" 8
recipe deep_compression "$M3" --set steps=1 --set final_epochs=1 --set share_epochs=1 --set limit=300
contains "deep_compression: a line per stage" "$T/out" "shared values fine-tuned"
contains "deep_compression: the per-layer table" "$T/out" "fc1      235,200     8.0%     6"
contains "deep_compression: the closing line" "$T/out" "LeNet-300-100: 1.02 MiB ->"
at_least "deep_compression: the saved file is over 30x smaller" "$(packed_ratio "$T/deep_compression.safetensors")" 30
run "$LATHE" eval "$T/deep_compression.safetensors" --split test --limit 500
is "deep_compression: the packed model evaluates" "$rc" 0

recipe prune_lenet_paper "$M3" --set limit=300 --set steps=2 --set final_epochs=1 --set test=false
contains "prune_lenet_paper: fc1 keeps 8 %" "$T/out" "fc1         235,200     18,816     8.0%"
contains "prune_lenet_paper: fc3 keeps 26 %" "$T/out" "fc3           1,000        260    26.0%"
recipe prune_lenet_paper "$M5" --set limit=200 --set steps=1 --set final_epochs=1 --set test=false
contains "prune_lenet_paper on LeNet-5: conv1 keeps 66 %" "$T/out" "conv1           500        330    66.0%"
contains "prune_lenet_paper on LeNet-5: conv2 keeps 12 %" "$T/out" "conv2        25,000      3,000    12.0%"
finish
