#!/bin/bash
# lathe's benchmark (`make bench`): lathe against PyTorch, in one run, on
# this machine.
#
#   run.sh BUILDDIR [SRCDIR]
#
# Needs BUILDDIR/tests/bench/bench_infer, bench_sgemm, bench_conv, bench_svd,
# bench_train, bench_prune, bench_sparse and bench_kmeans (the bench target
# builds them); builds nothing itself.  SRCDIR (default: two
# levels above this script) holds samples/ with the models and their
# architectures.  The peers are tests/bench/peer.py (inference, sgemm, conv),
# peer_train.py (training), peer_svd.py, peer_prune.py, peer_kmeans.py and
# peer_deep_compression.py (the whole Deep Compression pipeline; lenet5 too
# with LATHE_BENCH_DC5=1) run with $LATHE_PEER_PYTHON (default
# /usr/bin/python3, which has PyTorch); the data set is $LATHE_DATA (default
# /usr/share/datasets/fashion-mnist; training needs its train-* files and is
# skipped, with a note, without them).  LATHE_BENCH_QUICK=1 shrinks every
# run, for checking the runner itself; LATHE_PEER_BUDGET_S (default 20) is
# the time each PyTorch measurement may take (see peer.py, peer_train.py).
#
# Prints markdown tables on stdout, progress on stderr, and keeps every raw
# JSON line in BUILDDIR/tests/bench/bench.jsonl.  Exit status: 0 on success
# (also when the peer is unavailable), 1 when something is missing or a
# benchmark fails, 2 on a usage error.  See tests/bench/README.md.

set -u

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: run.sh BUILDDIR [SRCDIR]" >&2
	exit 2
fi
HERE=$(cd "$(dirname "$0")" && pwd)
BUILDDIR=$(cd "$1" 2>/dev/null && pwd) || { echo "run.sh: no build directory '$1'" >&2; exit 1; }
SRCDIR=${2:-$HERE/../..}
SRCDIR=$(cd "$SRCDIR" 2>/dev/null && pwd) || { echo "run.sh: no source directory '${2:-}'" >&2; exit 1; }
INFER=$BUILDDIR/tests/bench/bench_infer
SGEMM=$BUILDDIR/tests/bench/bench_sgemm
CONV=$BUILDDIR/tests/bench/bench_conv
SVD=$BUILDDIR/tests/bench/bench_svd
PRUNE=$BUILDDIR/tests/bench/bench_prune
PEER_PRUNE=$HERE/peer_prune.py
KMEANS=$BUILDDIR/tests/bench/bench_kmeans
PEER_KMEANS=$HERE/peer_kmeans.py
PEER_SVD=$HERE/peer_svd.py
TRAIN=$BUILDDIR/tests/bench/bench_train
LATHE_BIN=$BUILDDIR/lathe
PREVIEW=$HERE/bench_preview.lua
PEER=$HERE/peer.py
PEER_TRAIN=$HERE/peer_train.py
PY=${LATHE_PEER_PYTHON:-/usr/bin/python3}
# The test split: $LATHE_DATA, Debian's package, or the slice bundled in samples/data.
DATA=${LATHE_DATA:-/usr/share/datasets/fashion-mnist}
if [ -z "${LATHE_DATA:-}" ] && [ ! -d "$DATA" ]; then
	DATA=$SRCDIR/samples/data
fi
START=$(date +%s)

for b in "$INFER" "$SGEMM" "$CONV" "$SVD" "$TRAIN" "$KMEANS" "$LATHE_BIN"; do
	if [ ! -x "$b" ]; then
		echo "run.sh: $b is missing (run 'make bench', which builds it)" >&2
		exit 1
	fi
done
for m in lenet300 lenet5; do
	for f in "$SRCDIR/samples/$m.safetensors" "$SRCDIR/samples/$m.arch.json"; do
		if [ ! -f "$f" ]; then
			echo "run.sh: $f is missing" >&2
			exit 1
		fi
	done
done
have_data=0
for f in "$DATA"/t10k-images-idx3-ubyte "$DATA"/t10k-images-idx3-ubyte.gz; do
	[ -f "$f" ] && have_data=1
done
if [ ! -d "$DATA" ] || [ $have_data = 0 ]; then
	echo "run.sh: Fashion-MNIST test set not found in $DATA" >&2
	echo "run.sh: (need t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz]; set LATHE_DATA)" >&2
	exit 1
fi
# Training needs the training split; without it the training table is
# skipped (the bundled samples/data has only the test and validation slices).
have_train=0
for f in "$DATA"/train-images-idx3-ubyte "$DATA"/train-images-idx3-ubyte.gz; do
	for g in "$DATA"/train-labels-idx1-ubyte "$DATA"/train-labels-idx1-ubyte.gz; do
		[ -f "$f" ] && [ -f "$g" ] && have_train=1
	done
done

# Sizes: 10,000 test images at batch 1000 (7 repeats), 2,000 at batch 1
# (5 repeats); the sgemm shape is lenet300's first layer at batch 1000.
BIG_IMAGES=10000 BIG_REPS=7 ONE_IMAGES=2000 ONE_REPS=5 GEMM_REPS=11 CONV_REPS=15
if [ "${LATHE_BENCH_QUICK:-0}" = 1 ]; then
	BIG_IMAGES=2000 BIG_REPS=3 ONE_IMAGES=200 ONE_REPS=3 GEMM_REPS=3 CONV_REPS=3
fi
# Convolutions (C H W OC K STRIDE PAD) at batch 64: lenet5's two layers and
# a 3x3 layer of a VGG/ResNet-style network.
CONV_SHAPES=("1 28 28 20 5 1 0" "20 12 12 50 5 1 0" "64 16 16 64 3 1 1")
CONV_NAMES=("lenet5 conv1" "lenet5 conv2" "3x3, 64 channels")
GM=1000 GK=784 GN=300
# Training: epochs over the 60,000 training images (a fraction: part of one
# epoch, extrapolated), lathe and each PyTorch run.
declare -A TRAIN_EPOCHS=([lenet300]=2 [lenet5]=1)
if [ "${LATHE_BENCH_QUICK:-0}" = 1 ]; then
	TRAIN_EPOCHS=([lenet300]=0.1 [lenet5]=0.05)
fi
NCPU=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo "?")

OUT=$BUILDDIR/tests/bench/bench.jsonl
if ! : >"$OUT" 2>/dev/null; then
	OUT=$(mktemp "${TMPDIR:-/tmp}/lathe-bench.XXXXXX") || exit 1
fi
ERR=$(mktemp "${TMPDIR:-/tmp}/lathe-bench-err.XXXXXX") || exit 1
FAILS=$(mktemp "${TMPDIR:-/tmp}/lathe-bench-fails.XXXXXX") || exit 1
CAPS=$(mktemp "${TMPDIR:-/tmp}/lathe-bench-caps.XXXXXX") || exit 1
SVDOUT=$(mktemp "${TMPDIR:-/tmp}/lathe-bench-svd.XXXXXX") || exit 1
trap 'rm -f "$ERR" "$FAILS" "$CAPS" "$SVDOUT"' EXIT

peer_ok=0
if "$PY" -c 'import torch' >/dev/null 2>&1; then
	peer_ok=1
fi

# jget KEY JSON: the value of a top-level string or number field.
jget() {
	printf '%s\n' "$2" | sed -n \
		-e "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" \
		-e "t" \
		-e "s/.*\"$1\": *\([-+0-9.eE]*\).*/\1/p"
}

# run WHAT CMD...: run one benchmark, echo its JSON line (empty on failure,
# which is noted in $FAILS since this runs in a command substitution).
run() {
	local what=$1 line rc
	shift
	echo "  $what" >&2
	line=$("$@" 2>"$ERR")
	rc=$?
	line=$(printf '%s\n' "$line" | grep '^{' | tail -n 1)
	if [ $rc -ne 0 ] || [ -z "$line" ]; then
		echo "run.sh: $what failed (exit $rc):" >&2
		sed 's/^/    /' "$ERR" >&2
		echo "$what" >>"$FAILS"
		return 0
	fi
	printf '%s\n' "$line" >>"$OUT"
	printf '%s\n' "$line"
}

# fmt FORMAT VALUE: printf a number, or "-" when there is none.
fmt() {
	# shellcheck disable=SC2059 # the format is the point
	if [ -z "$2" ]; then printf -- '-'; else LC_ALL=C printf -- "$1" "$2"; fi
}

# ratio A B: A/B to two decimals, or "-".
ratio() {
	if [ -z "$1" ] || [ -z "$2" ]; then printf -- '-'; return; fi
	LC_ALL=C awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else printf "-" }'
}

# capped JSON: " (N imgs, R reps)" (and a note later) if the peer, short of
# time on a busy machine, timed fewer images or repeats than asked.
capped() {
	local imgs reps
	imgs=$(jget images_asked "$1")
	reps=$(jget repeats_asked "$1")
	[ -n "$imgs" ] || [ -n "$reps" ] || return 0
	echo x >>"$CAPS"
	if [ "$imgs" != "$(jget images "$1")" ]; then
		printf ' (%s imgs, %s reps)' "$(jget images "$1")" "$(jget repeats "$1")"
	else
		printf ' (%s reps)' "$(jget repeats "$1")"
	fi
}

# timed JSON ASKED: " (P ep)" if the run timed only the fraction P of an
# epoch, " (N of M ep)" if it timed fewer epochs than asked (noted in $CAPS
# unless the fraction is what was asked, as with LATHE_BENCH_QUICK=1).
timed() {
	local part asked n
	part=$(jget partial "$1")
	asked=$(jget epochs_asked "$1")
	if [ -n "$part" ]; then
		LC_ALL=C awk -v p="$part" 'BEGIN { printf " (%.2f ep)", p }'
		LC_ALL=C awk -v p="$part" -v a="$2" 'BEGIN { exit !(a >= 1 || p < 0.95 * a) }' && echo x >>"$CAPS"
	elif [ -n "$asked" ]; then
		n=$(printf '%s\n' "$1" | sed -n 's/.*"epoch_s": *\[\([^]]*\)\].*/\1/p' | awk -F, '{ print NF }')
		printf ' (%s of %s ep)' "$n" "$asked"
		echo x >>"$CAPS"
	fi
}

echo "lathe benchmark: $(date -u '+%Y-%m-%d %H:%M UTC'), $NCPU CPUs, data $DATA" >&2
[ $peer_ok = 1 ] || echo "run.sh: $PY cannot import torch: peer unavailable" >&2

# ---- sgemm --------------------------------------------------------------
echo "sgemm ${GM}x${GK}x${GN}:" >&2
declare -A G
for t in 1 2; do
	G[auto$t]=$(run "lathe sgemm, $t thread(s)" "$SGEMM" $GM $GK $GN $t $GEMM_REPS)
	G[presc$t]=$(run "lathe sgemm, $t thread(s), OPENBLAS_CORETYPE=Prescott" \
		env OPENBLAS_CORETYPE=Prescott "$SGEMM" $GM $GK $GN $t $GEMM_REPS)
	if [ $peer_ok = 1 ]; then
		G[torch$t]=$(run "torch.mm, $t thread(s)" "$PY" "$PEER" --sgemm $GM $GK $GN $t $GEMM_REPS)
	else
		G[torch$t]=
	fi
done

# ---- convolution --------------------------------------------------------
declare -A CV
for i in "${!CONV_SHAPES[@]}"; do
	echo "convolution ${CONV_NAMES[$i]} (${CONV_SHAPES[$i]}), batch 64:" >&2
	# shellcheck disable=SC2086 # the shape is five numbers
	CV[$i/lathe]=$(run "lathe, every method, 1 thread" "$CONV" ${CONV_SHAPES[$i]} 64 $CONV_REPS)
	for t in 1 2; do
		if [ $peer_ok = 1 ]; then
			# shellcheck disable=SC2086
			CV[$i/torch$t]=$(run "torch conv2d, $t thread(s)" "$PY" "$PEER" --conv ${CONV_SHAPES[$i]} 64 $t $CONV_REPS)
		else
			CV[$i/torch$t]=
		fi
	done
done

# ---- singular values ----------------------------------------------------
# A BERT-base-sized matrix (768x3072), its transpose, and lenet5's fc1.
SVD_SHAPES=("768 3072" "3072 768" "500 800")
SVD_REPS=7
[ "${LATHE_BENCH_QUICK:-0}" = 1 ] && SVD_REPS=3
declare -A SV
for i in "${!SVD_SHAPES[@]}"; do
	echo "singular values ${SVD_SHAPES[$i]}:" >&2
	# shellcheck disable=SC2086 # two numbers
	SV[$i/lathe]=$(run "lathe spectrum kernel" "$SVD" ${SVD_SHAPES[$i]} $SVD_REPS "$SVDOUT")
	for t in 1 2; do
		if [ $peer_ok = 1 ]; then
			chk=()
			[ $t = 1 ] && chk=(--check "$SVDOUT")
			# shellcheck disable=SC2086
			SV[$i/numpy$t]=$(run "numpy.linalg.svd, $t thread(s)" "$PY" "$PEER_SVD" ${SVD_SHAPES[$i]} $SVD_REPS $t "${chk[@]}")
		else
			SV[$i/numpy$t]=
		fi
	done
done

# ---- magnitude pruning --------------------------------------------------
# A 4096x4096 float32 matrix to 90 %: lathe's kernel (selection, mask and
# pruned copy) against numpy's partition + mask + multiply.
PRUNE_REPS=7
[ "${LATHE_BENCH_QUICK:-0}" = 1 ] && PRUNE_REPS=3
echo "magnitude pruning 4096x4096 to 90 %:" >&2
PR_L=$(run "lathe prune kernel" "$PRUNE" 4096 4096 0.9 $PRUNE_REPS)
PR_N1= PR_N2=
if [ $peer_ok = 1 ]; then
	PR_N1=$(run "numpy partition + mask, 1 thread" "$PY" "$PEER_PRUNE" 4096 4096 0.9 $PRUNE_REPS 1)
	PR_N2=$(run "numpy partition + mask, 2 threads" "$PY" "$PEER_PRUNE" 4096 4096 0.9 $PRUNE_REPS 2)
fi

# ---- 1-D k-means ---------------------------------------------------------
# 1,000,000 weights into 64 clusters from the linear initialisation, until
# a step changes nothing (weight sharing): lathe's kernel against numpy with
# the same algorithm (sort once, cumulative sums, searchsorted per step;
# the plain vectorised Lloyd loop takes about two minutes, so it is not run).
KM_REPS=9
[ "${LATHE_BENCH_QUICK:-0}" = 1 ] && KM_REPS=3
echo "k-means 1M weights, 64 clusters:" >&2
KM_L=$(run "lathe k-means" "$KMEANS" 1000000 64 $KM_REPS)
KM_N1= KM_N2=
if [ $peer_ok = 1 ]; then
	KM_N1=$(run "numpy k-means (sorted), 1 thread" "$PY" "$PEER_KMEANS" 1000000 64 $KM_REPS 1 --sorted)
	KM_N2=$(run "numpy k-means (sorted), 2 threads" "$PY" "$PEER_KMEANS" 1000000 64 $KM_REPS 2 --sorted)
fi

# ---- TUI redraws ---------------------------------------------------------
# `:redraws N` in the workbench at 200x60 inside tmux (the terminal), with
# conv2.weight selected so every plot has content.
REDRAWS=300
TUIR=
if command -v tmux >/dev/null 2>&1; then
	echo "TUI: $REDRAWS full redraws at 200x60 in tmux:" >&2
	sock=lathe-bench-$$
	tmux -L "$sock" -f /dev/null new-session -d -x 200 -y 60 -s b \
		"'$LATHE_BIN' --data '$DATA' '$SRCDIR/samples/lenet5.safetensors'; sleep 600"
	sleep 2
	tmux -L "$sock" send-keys -t b j j
	sleep 2
	tmux -L "$sock" send-keys -t b :
	sleep 0.3
	tmux -L "$sock" send-keys -t b C-u ":redraws $REDRAWS" Enter
	for _ in $(seq 1 100); do
		TUIR=$(tmux -L "$sock" capture-pane -p -t b | grep -o 'redraws: .* per second' | head -n 1)
		[ -n "$TUIR" ] && break
		sleep 0.3
	done
	tmux -L "$sock" kill-server >/dev/null 2>&1
	[ -n "$TUIR" ] || echo "run.sh: the TUI redraw benchmark gave no result" >&2
	[ -n "$TUIR" ] || echo "tui redraws" >>"$FAILS"
	[ -n "$TUIR" ] && printf '{"bench": "tui_redraws", "result": "%s"}\n' "$TUIR" >>"$OUT"
else
	echo "run.sh: tmux not installed: TUI redraw benchmark skipped" >&2
fi

# ---- TUI on a large model -------------------------------------------------
# A weights-only file with BERT-base shapes (109 M parameters) and one
# 4096x4096 matrix, written to a temporary file by big_model.py: time until
# the layer table shows, then select the 4096x4096 matrix (its spectrum
# takes seconds), run a statement (the worker is stopped first: the time it
# waited), move through 30 layers 50 ms apart (each new selection's
# summaries), and read `:latency`.
BIGOPEN= BIGLAT= BIGSTOP=
if command -v tmux >/dev/null 2>&1 && "$PY" -c 'import numpy' 2>/dev/null; then
	big=$(mktemp /tmp/lathe-bench-big-XXXXXX.safetensors)
	echo "TUI on a large model: writing $big" >&2
	if "$PY" "$SRCDIR/tests/bench/big_model.py" "$big" --wide 4096; then
		sock=lathe-bench-big-$$
		t0=$(date +%s.%N)
		tmux -L "$sock" -f /dev/null new-session -d -x 200 -y 60 -s b \
			"'$LATHE_BIN' --data '$DATA' '$big'; sleep 600"
		for _ in $(seq 1 400); do
			tmux -L "$sock" capture-pane -p -t b | grep -q 'selected: embeddings' && break
			sleep 0.02
		done
		BIGOPEN=$(echo "$(date +%s.%N) - $t0" | bc)
		sleep 1
		tmux -L "$sock" send-keys -t b End
		sleep 0.7
		tmux -L "$sock" send-keys -t b :
		sleep 0.3
		tmux -L "$sock" send-keys -t b C-u "print('statement ran')" Enter
		sleep 1
		tmux -L "$sock" send-keys -t b C-]
		for _ in $(seq 1 30); do
			tmux -L "$sock" send-keys -t b k
			sleep 0.05
		done
		sleep 1
		tmux -L "$sock" send-keys -t b :
		sleep 0.3
		tmux -L "$sock" send-keys -t b C-u ":latency" Enter
		for _ in $(seq 1 50); do
			BIGLAT=$(tmux -L "$sock" capture-pane -p -t b | grep -o 'latency: [0-9]* key batches.*ms' | head -n 1)
			BIGSTOP=$(tmux -L "$sock" capture-pane -p -t b | grep -o 'latency: the worker was stopped.*ms' | head -n 1)
			[ -n "$BIGLAT" ] && break
			sleep 0.2
		done
		tmux -L "$sock" kill-server >/dev/null 2>&1
	fi
	rm -f "$big"
	[ -n "$BIGLAT" ] || echo "run.sh: the large-model TUI benchmark gave no result" >&2
	[ -n "$BIGLAT" ] || echo "tui large model" >>"$FAILS"
	[ -n "$BIGLAT" ] && printf '{"bench": "tui_big", "open_s": %s, "keys": "%s", "stop": "%s"}\n' \
		"$BIGOPEN" "$BIGLAT" "$BIGSTOP" >>"$OUT"
else
	echo "run.sh: tmux or numpy missing: large-model TUI benchmark skipped" >&2
fi

# ---- inference ----------------------------------------------------------
declare -A R
ROWS=""
for model in lenet300 lenet5; do
	for batch in 1000 1; do
		if [ $batch = 1 ]; then n=$ONE_IMAGES reps=$ONE_REPS; else n=$BIG_IMAGES reps=$BIG_REPS; fi
		f=$SRCDIR/samples/$model.safetensors
		echo "$model, batch $batch, $n images, $reps repeats:" >&2
		key=$model/$batch
		ROWS="$ROWS $key"
		R[$key/lathe]=$(run "lathe $model, batch $batch" "$INFER" "$f" "$DATA" $batch $n $reps)
		for t in 1 2; do
			if [ $peer_ok = 1 ]; then
				R[$key/torch$t]=$(run "pytorch $model, batch $batch, $t thread(s)" "$PY" "$PEER" "$f" "$DATA" $batch $n $reps $t)
			else
				R[$key/torch$t]=
			fi
		done
	done
done

# ---- pruned lenet300: sparse kernels against the dense form ------------------
# The bundled lenet300 pruned by magnitude to 92 % in every layer (written
# to a temporary file by lathe itself), run by the same forward pass: its
# linear layers go through the sparse kernel when lt_sparse_pays says so.
SPARSE_MODEL=$(mktemp /tmp/lathe-bench-l300-92-XXXXXX.safetensors)
declare -A SP
if "$LATHE_BIN" lua -m "$SRCDIR/samples/lenet300.safetensors" \
	-e "lathe.prune(model, {sparsity = 0.92}); model:commit(); model:save('$SPARSE_MODEL')" >/dev/null 2>"$ERR"; then
	for batch in 1000 1; do
		if [ $batch = 1 ]; then n=$ONE_IMAGES reps=$ONE_REPS; else n=$BIG_IMAGES reps=$BIG_REPS; fi
		echo "lenet300 pruned to 92 %, batch $batch:" >&2
		SP[$batch/dense]=$(run "dense lenet300, batch $batch" "$INFER" "$SRCDIR/samples/lenet300.safetensors" "$DATA" $batch $n $reps)
		SP[$batch/sparse]=$(run "92 % pruned lenet300, batch $batch" "$INFER" "$SPARSE_MODEL" "$DATA" $batch $n $reps)
	done
else
	echo "run.sh: could not write the pruned lenet300:" >&2
	sed 's/^/    /' "$ERR" >&2
	echo "pruned lenet300" >>"$FAILS"
fi
rm -f "$SPARSE_MODEL"

# ---- preview ------------------------------------------------------------
# model:preview() on the 5,000 validation images (needs the training file,
# whose last 5,000 images are the validation split, or a val-* file).
declare -A P
PREVIEW_REPS=7
[ "${LATHE_BENCH_QUICK:-0}" = 1 ] && PREVIEW_REPS=3
declare -A SUFFIX_LAYER=([lenet300]=fc2 [lenet5]=fc1)
for model in lenet300 lenet5; do
	f=$SRCDIR/samples/$model.safetensors
	echo "$model, preview of 5,000 validation images, $PREVIEW_REPS repeats:" >&2
	P[$model/lathe]=$(run "lathe preview $model" "$LATHE_BIN" lua "$PREVIEW" "$f" "$DATA" $PREVIEW_REPS ${SUFFIX_LAYER[$model]})
	for t in 1 2; do
		if [ $peer_ok = 1 ]; then
			P[$model/torch$t]=$(run "pytorch eval $model, 5000 images, $t thread(s)" "$PY" "$PEER" "$f" "$DATA" 1000 5000 $PREVIEW_REPS $t)
		else
			P[$model/torch$t]=
		fi
	done
done

# ---- training -----------------------------------------------------------
declare -A T
if [ $have_train = 1 ]; then
	for model in lenet300 lenet5; do
		ep=${TRAIN_EPOCHS[$model]}
		a=$SRCDIR/samples/$model.arch.json
		echo "$model, training, $ep epoch(s), batch 128, Adam:" >&2
		T[$model/lathe]=$(run "lathe train $model" "$TRAIN" "$a" "$DATA" "$ep")
		for t in 1 2; do
			if [ $peer_ok = 1 ]; then
				T[$model/torch$t]=$(run "pytorch train $model, $t thread(s)" "$PY" "$PEER_TRAIN" "$a" "$DATA" "$ep" $t)
			else
				T[$model/torch$t]=
			fi
		done
	done
else
	echo "run.sh: no training split (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz]) in $DATA: training skipped" >&2
fi

# ---- deep compression pipeline -------------------------------------------
# recipes/deep_compression.lua through `lathe run` (wall time of the whole
# command, default threads) against peer_deep_compression.py, the same
# pipeline in PyTorch, at 1 and 2 threads. One run each: a run takes about
# half a minute to a minute for lenet300 (several for lenet5), so more do not
# fit. lenet300 only; LATHE_BENCH_DC5=1 adds lenet5. Needs the training
# split. LATHE_BENCH_QUICK=1: 2,000 training images per epoch and 1 final
# pruning epoch on both sides.
PEER_DC=$HERE/peer_deep_compression.py
DC_MODELS=lenet300
[ "${LATHE_BENCH_DC5:-0}" = 1 ] && DC_MODELS="lenet300 lenet5"
DC_LATHE_SET=() DC_PEER_QUICK=()
if [ "${LATHE_BENCH_QUICK:-0}" = 1 ]; then
	DC_LATHE_SET=(--set limit=2000 --set final_epochs=1) DC_PEER_QUICK=(--quick)
fi

# dc_lathe MODEL: run the recipe on MODEL (saved to a temporary file) and
# print one JSON line: wall seconds, the figures of the recipe's closing line
# ("... (34.6x smaller), test accuracy 89.74 % -> 89.44 % (-0.30 points),
# 29 s") and the saved file's size. Exit 1 without the closing line.
# shellcheck disable=SC2317 # called through run
dc_lathe() {
	local out log t0 t1 rc fig size
	out=$(mktemp /tmp/lathe-bench-dc-XXXXXX.safetensors) || return 1
	t0=$(date +%s.%N)
	log=$("$LATHE_BIN" run "$SRCDIR/recipes/deep_compression.lua" "$1" -o "$out" --data "$DATA" "${DC_LATHE_SET[@]}")
	rc=$?
	t1=$(date +%s.%N)
	size=$(stat -c %s "$out" 2>/dev/null)
	rm -f "$out"
	fig=$(printf '%s\n' "$log" | sed -n 's/.* on disk (\([0-9.]*\)x smaller), test accuracy \([0-9.]*\) % -> \([0-9.]*\) % (\([-+0-9.]*\) points), \([0-9]*\) s$/\1 \2 \3 \4 \5/p' | tail -n 1)
	if [ "$rc" -ne 0 ] || [ -z "$fig" ] || [ -z "$size" ]; then
		printf '%s\n' "$log" | tail -n 5 >&2
		echo "dc_lathe: no closing line or no saved file (exit $rc)" >&2
		return 1
	fi
	# shellcheck disable=SC2086 # five numbers
	set -- "$1" $fig
	LC_ALL=C awk -v m="$(basename "$1" .safetensors)" -v t0="$t0" -v t1="$t1" -v fr="$2" -v a0="$3" -v a1="$4" \
		-v d="$5" -v rs="$6" -v size="$size" -v fp32="$(stat -c %s "$1")" -v thr="$NCPU" 'BEGIN {
		printf "{\"bench\": \"deep_compression\", \"engine\": \"lathe\", \"model\": \"%s\", \"threads\": \"%s\", ", m, thr
		printf "\"seconds\": %.3f, \"recipe_s\": %d, \"test_accuracy_before\": %.4f, \"test_accuracy_after\": %.4f, ", t1 - t0, rs, a0 / 100, a1 / 100
		printf "\"points\": %s, \"file_bytes\": %d, \"fp32_bytes\": %d, \"ratio\": %s}\n", d, size, fp32, fr
	}'
}

# dc_peer CAP MODEL THREADS: the peer, stopped after CAP seconds (0: no
# limit); a stopped run prints {"stopped_s": CAP} instead of its result.
# shellcheck disable=SC2317 # called through run
dc_peer() {
	local cap=$1 rc
	shift
	if [ "$cap" = 0 ]; then
		"$PY" "$PEER_DC" "$@" "${DC_PEER_QUICK[@]}"
		return
	fi
	timeout "$cap" "$PY" "$PEER_DC" "$@" "${DC_PEER_QUICK[@]}"
	rc=$?
	[ "$rc" = 124 ] || return "$rc"
	printf '{"bench": "deep_compression", "engine": "torch", "threads": %s, "stopped_s": %s}\n' "$3" "$cap"
}

# PyTorch at 2 threads on 2 busy cores can take ten times as long as at 1
# (a lenet300 run took 383 s against 30 s): that run is stopped after four
# times the 1-thread run's seconds plus 30 (at least 60 s) and shown as such.
declare -A DC
if [ $have_train = 1 ]; then
	for model in $DC_MODELS; do
		f=$SRCDIR/samples/$model.safetensors
		echo "$model, Deep Compression pipeline, one run each:" >&2
		DC[$model/lathe]=$(run "lathe run recipes/deep_compression.lua $model" dc_lathe "$f")
		if [ $peer_ok = 1 ]; then
			DC[$model/torch1]=$(run "pytorch deep compression $model, 1 thread" dc_peer 0 "$f" "$DATA" 1)
			cap=$(LC_ALL=C awk -v s="$(jget seconds "${DC[$model/torch1]}")" \
				'BEGIN { c = s == "" ? 0 : int(4 * s + 30); print (s != "" && c < 60) ? 60 : c }')
			lim="stopped after ${cap:-0} s"
			[ "${cap:-0}" = 0 ] && lim="no time limit"
			DC[$model/torch2]=$(run "pytorch deep compression $model, 2 threads ($lim)" \
				dc_peer "${cap:-0}" "$f" "$DATA" 2)
		else
			DC[$model/torch1]='' DC[$model/torch2]=''
		fi
	done
else
	echo "run.sh: no training split in $DATA: Deep Compression pipeline skipped" >&2
fi

# best_of T1 T2: the smaller of two times (1 and 2 threads; either may be
# empty) in $best, its thread count in $bt.
best_of() {
	best='' bt=''
	for t in 1 2; do
		v=$([ $t = 1 ] && echo "$1" || echo "$2")
		[ -n "$v" ] || continue
		if [ -z "$best" ] || LC_ALL=C awk -v v="$v" -v b="$best" 'BEGIN { exit !(v < b) }'; then
			best=$v bt=$t
		fi
	done
}

# ---- report -------------------------------------------------------------
echo
echo "### Inference: lathe vs PyTorch (median of repeats)"
echo
echo "lathe runs with its default threads (all $NCPU CPUs); PyTorch at 1 and 2 threads."
echo "Batch 1000: images/s over the images, ratio = lathe / PyTorch best (>1: lathe faster)."
echo "Batch 1: latency per image in µs, ratio = PyTorch best / lathe (>1: lathe faster)."
echo
echo "| model | batch | images | lathe | PyTorch 1 thread | PyTorch 2 threads | PyTorch best | ratio |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for key in $ROWS; do
	model=${key%/*} batch=${key#*/}
	L=${R[$key/lathe]} T1=${R[$key/torch1]} T2=${R[$key/torch2]}
	images=$(jget images "$L")
	[ -n "$images" ] || images=$(jget images "$T1")
	if [ "$batch" = 1 ]; then
		field=latency_us form='%.1f µs'
	else
		field=images_per_s form='%.0f img/s'
	fi
	l=$(jget $field "$L") t1=$(jget $field "$T1") t2=$(jget $field "$T2")
	# The better PyTorch figure: higher throughput, or lower latency.
	best='' bt=''
	lat=0
	[ "$batch" = 1 ] && lat=1
	for t in 1 2; do
		v=$([ $t = 1 ] && echo "$t1" || echo "$t2")
		[ -n "$v" ] || continue
		if [ -z "$best" ] || LC_ALL=C awk -v v="$v" -v b="$best" -v lat=$lat \
			'BEGIN { exit !(lat ? v < b : v > b) }'; then
			best=$v bt=$t
		fi
	done
	if [ $peer_ok = 0 ]; then
		p1="peer unavailable" p2="peer unavailable" pb="peer unavailable" r="-"
	else
		p1=$(fmt "$form" "$t1")$(capped "$T1")
		p2=$(fmt "$form" "$t2")$(capped "$T2")
		if [ -n "$best" ]; then pb="$(fmt "$form" "$best") ($bt thr)"; else pb="-"; fi
		if [ "$batch" = 1 ]; then r=$(ratio "$best" "$l"); else r=$(ratio "$l" "$best"); fi
	fi
	echo "| $model | $batch | ${images:--} | $(fmt "$form" "$l") | $p1 | $p2 | $pb | $r |"
done
if [ -s "$CAPS" ]; then
	echo
	echo "(N imgs, R reps): PyTorch was so slow here (a busy machine) that, to keep within"
	echo "its time budget (\$LATHE_PEER_BUDGET_S, default 20 s), it timed only N images"
	echo "or R repeats (at least 3). Figures are still per image, just noisier."
fi

echo
echo "### Preview: staged model on the 5,000 validation images (median ms)"
echo
echo "lathe's model:preview() after a staged prune: *full* = every layer pruned, so the whole"
echo "network runs; *suffix* = only the named layer pruned, so evaluation starts from cached"
echo "activations of the layers before it (the first such preview fills that cache: *first*);"
echo "*cached* = the same stage again. The peer is PyTorch evaluating the same model on 5,000"
echo "images at batch 1000 (what a preview costs without staging); ratio = PyTorch best / lathe full."
echo
echo "| model | lathe full | suffix (layer) | first suffix | cached | PyTorch 1 thread | PyTorch 2 threads | ratio (full) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for model in lenet300 lenet5; do
	L=${P[$model/lathe]}
	best=''
	for t in 1 2; do
		v=$(jget images_per_s "${P[$model/torch$t]}")
		[ -n "$v" ] || continue
		ms=$(LC_ALL=C awk -v v="$v" 'BEGIN { printf "%.1f", 5000 / v * 1000 }')
		eval "pt$t=\$ms"
		if [ -z "$best" ] || LC_ALL=C awk -v a="$ms" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$ms; fi
	done
	if [ $peer_ok = 1 ]; then
		p1="$(fmt '%s ms' "${pt1:-}")" p2="$(fmt '%s ms' "${pt2:-}")" r=$(ratio "$best" "$(jget full_ms "$L")")
	else
		p1="peer unavailable" p2="peer unavailable" r="-"
	fi
	echo "| $model | $(fmt '%.1f ms' "$(jget full_ms "$L")") | $(fmt '%.1f ms' "$(jget suffix_ms "$L")") ($(jget layer "$L")) | $(fmt '%.1f ms' "$(jget suffix_first_ms "$L")") | $(fmt '%.2f ms' "$(jget cached_ms "$L")") | $p1 | $p2 | $r |"
	unset pt1 pt2
done

echo
echo "### Convolution methods (batch 64, median GMAC/s)"
echo
echo "Rate in multiply-accumulates of the plain convolution, so methods compare directly"
echo "(Winograd does fewer). lathe runs each method that fits on 1 thread; *auto* is the one"
echo "it picks. PyTorch: torch.nn.functional.conv2d at 1 and 2 threads. ratio = lathe auto"
echo "(1 thread) / PyTorch best (>1: lathe faster)."
echo
echo "| layer | shape | lathe auto | im2col | direct | winograd | PyTorch 1 thread | PyTorch 2 threads | ratio |"
echo "|---|---|---|---:|---:|---:|---:|---:|---:|"
for i in "${!CONV_SHAPES[@]}"; do
	L=${CV[$i/lathe]}
	auto=$(jget auto "$L")
	la=$(jget "${auto:-none}_gmacs" "$L")
	t1=$(jget gmacs "${CV[$i/torch1]}") t2=$(jget gmacs "${CV[$i/torch2]}")
	best=$(printf '%s\n' "$t1" "$t2" | grep . | sort -g | tail -n 1)
	if [ $peer_ok = 1 ]; then
		p1=$(fmt %.1f "$t1") p2=$(fmt %.1f "$t2") r=$(ratio "$la" "$best")
	else
		p1="peer unavailable" p2="peer unavailable" r="-"
	fi
	echo "| ${CONV_NAMES[$i]} | $(jget shape "$L") | ${auto:--} $(fmt %.1f "$la") | $(fmt %.1f "$(jget im2col_gmacs "$L")") | $(fmt %.1f "$(jget direct_gmacs "$L")") | $(fmt %.1f "$(jget winograd_gmacs "$L")") | $p1 | $p2 | $r |"
done

echo
echo "### Singular values (median seconds)"
echo
echo "lathe's spectrum kernel (the route it picks for the shape, on every core) against"
echo "numpy.linalg.svd(compute_uv=False) at 1 and 2 OpenBLAS threads; ratio = numpy best / lathe."
echo "max rel. error: of lathe's values >= 1e-4 sigma_max against numpy's float64 SVD."
echo
echo "| shape | lathe route | lathe | numpy 1 thread | numpy 2 threads | ratio | max rel. error |"
echo "|---|---|---:|---:|---:|---:|---:|"
for i in "${!SVD_SHAPES[@]}"; do
	L=${SV[$i/lathe]}
	n1=$(jget median_s "${SV[$i/numpy1]}") n2=$(jget median_s "${SV[$i/numpy2]}")
	best=$(printf '%s\n' "$n1" "$n2" | grep . | sort -g | head -n 1)
	echo "| ${SVD_SHAPES[$i]/ /x} | $(jget route "$L") | $(fmt %.4f "$(jget median_s "$L")") | $(fmt %.4f "$n1") | $(fmt %.4f "$n2") | $(ratio "$best" "$(jget median_s "$L")") | $(fmt %.1e "$(jget max_rel_err "${SV[$i/numpy1]}")") |"
done

echo
echo "### Pruned lenet300 (92 % of every layer's weights zero) against its dense form"
echo
echo "Same forward pass, same images; the pruned layers run through the sparse kernel."
echo
echo "| batch | dense | pruned, sparse kernels | speed-up |"
echo "|---:|---:|---:|---:|"
for batch in 1 1000; do
	D=${SP[$batch/dense]} S=${SP[$batch/sparse]}
	if [ $batch = 1 ]; then
		echo "| 1 | $(fmt %.2f "$(jget latency_us "$D")") µs | $(fmt %.2f "$(jget latency_us "$S")") µs | $(ratio "$(jget latency_us "$D")" "$(jget latency_us "$S")") |"
	else
		echo "| 1000 | $(fmt %.0f "$(jget images_per_s "$D")") img/s | $(fmt %.0f "$(jget images_per_s "$S")") img/s | $(ratio "$(jget images_per_s "$S")" "$(jget images_per_s "$D")") |"
	fi
done

echo
echo "### Magnitude pruning, 4096x4096 float32 to 90 % (median seconds)"
echo
PN1=$(jget median_s "$PR_N1") PN2=$(jget median_s "$PR_N2")
best_of "$PN1" "$PN2"
PNB=$best
echo "| lathe (2 threads) | numpy, 1 thread | numpy, 2 threads | ratio (numpy best / lathe) |"
echo "|---:|---:|---:|---:|"
echo "| $(fmt %.4f "$(jget median_s "$PR_L")") | $(fmt %.4f "$PN1") | $(fmt %.4f "$PN2") | $(ratio "$PNB" "$(jget median_s "$PR_L")") |"

echo
echo "### 1-D k-means, 1,000,000 weights into 64 clusters (median seconds)"
echo
echo "Linear initialisation, until a step changes nothing; numpy runs the same algorithm (sorted"
echo "values, cumulative sums, searchsorted per step). Both report their steps and inertia."
echo
KN1=$(jget median_s "$KM_N1") KN2=$(jget median_s "$KM_N2")
best_of "$KN1" "$KN2"
KNB=$best
echo "| lathe | steps | numpy, 1 thread | numpy, 2 threads | ratio (numpy best / lathe) |"
echo "|---:|---:|---:|---:|---:|"
echo "| $(fmt %.4f "$(jget median_s "$KM_L")") | $(jget iterations "$KM_L") | $(fmt %.4f "$KN1") | $(fmt %.4f "$KN2") | $(ratio "$KNB" "$(jget median_s "$KM_L")") |"

echo
echo "### TUI"
echo
if [ -n "$TUIR" ]; then
	echo "Full redraws of the workbench (every pane drawn and the whole screen sent) at 200x60 in"
	echo "tmux, lenet5 with conv2.weight selected: $TUIR."
else
	echo "Not measured (tmux missing or the run failed)."
fi
echo
if [ -n "$BIGLAT" ]; then
	echo "A weights-only model of BERT-base shapes plus one 4096x4096 matrix (126 M parameters,"
	echo "tests/bench/big_model.py, not committed) at 200x60: the layer table on screen"
	echo "$(fmt %.2f "$BIGOPEN") s after start (tmux polled every 20 ms). With the 4096x4096"
	echo "spectrum being computed, a REPL statement stopped the worker first — ${BIGSTOP#latency: }."
	echo "Then 30 moves through the layers 50 ms apart, each starting the new layer's summaries:"
	echo "${BIGLAT#latency: } (from input readable to the screen updated)."
else
	echo "Large model: not measured (tmux or numpy missing, or the run failed)."
fi

echo
echo "### sgemm ${GM}x${GK}x${GN} (float32, median GFLOP/s)"
echo
echo "| engine | threads | OpenBLAS core (chosen by) | GFLOP/s |"
echo "|---|---:|---|---:|"
for t in 1 2; do
	L=${G[auto$t]}
	echo "| lathe (automatic core) | $t | $(jget core "$L") ($(jget chosen_by "$L")) | $(fmt %.1f "$(jget gflops "$L")") |"
done
for t in 1 2; do
	L=${G[presc$t]}
	echo "| lathe, OPENBLAS_CORETYPE=Prescott | $t | $(jget core "$L") ($(jget chosen_by "$L")) | $(fmt %.1f "$(jget gflops "$L")") |"
done
for t in 1 2; do
	if [ $peer_ok = 1 ]; then
		L=${G[torch$t]}
		echo "| PyTorch torch.mm | $t | $(jget core "$L") | $(fmt %.1f "$(jget gflops "$L")") |"
	else
		echo "| PyTorch torch.mm | $t | peer unavailable | - |"
	fi
done
echo
for t in 1 2; do
	echo "- $t thread(s): automatic core / Prescott = $(ratio "$(jget gflops "${G[auto$t]}")" "$(jget gflops "${G[presc$t]}")")"
done
if [ $peer_ok = 1 ]; then
	lb=$(printf '%s\n' "$(jget gflops "${G[auto1]}")" "$(jget gflops "${G[auto2]}")" | sort -g | tail -n 1)
	tb=$(printf '%s\n' "$(jget gflops "${G[torch1]}")" "$(jget gflops "${G[torch2]}")" | sort -g | tail -n 1)
	echo "- lathe best / torch.mm best = $(ratio "$lb" "$tb") (same OpenBLAS library underneath, if the two cores match)"
else
	echo "- PyTorch: peer unavailable ($PY cannot import torch)"
fi

echo
echo "### Training (seconds per epoch, batch 128, Adam, 60,000 images)"
echo
if [ $have_train = 0 ]; then
	echo "Skipped: no training split in $DATA (needs train-images-idx3-ubyte[.gz] and"
	echo "train-labels-idx1-ubyte[.gz]; set LATHE_DATA or install dataset-fashion-mnist)."
else
	echo "Median seconds per epoch over the 60,000 training images (shuffle, minibatches, steps;"
	echo "loading the data is not timed). lathe runs with its default threads (all $NCPU CPUs);"
	echo "PyTorch at 1 and 2 threads. ratio = PyTorch best / lathe (>1: lathe faster)."
	echo
	echo "| model | epochs | lathe | PyTorch 1 thread | PyTorch 2 threads | PyTorch best | ratio |"
	echo "|---|---:|---:|---:|---:|---:|---:|"
	: >"$CAPS"
	for model in lenet300 lenet5; do
		L=${T[$model/lathe]} T1=${T[$model/torch1]} T2=${T[$model/torch2]}
		l=$(jget median_epoch_s "$L") t1=$(jget median_epoch_s "$T1") t2=$(jget median_epoch_s "$T2")
		best_of "$t1" "$t2"
		if [ $peer_ok = 0 ]; then
			p1="peer unavailable" p2="peer unavailable" pb="peer unavailable" r="-"
		else
			p1=$(fmt '%.2f s' "$t1")$(timed "$T1" "${TRAIN_EPOCHS[$model]}")
			p2=$(fmt '%.2f s' "$t2")$(timed "$T2" "${TRAIN_EPOCHS[$model]}")
			if [ -n "$best" ]; then pb="$(fmt '%.2f s' "$best") ($bt thr)"; else pb="-"; fi
			r=$(ratio "$best" "$l")
		fi
		echo "| $model | ${TRAIN_EPOCHS[$model]} | $(fmt '%.2f s' "$l")$(timed "$L" "${TRAIN_EPOCHS[$model]}") | $p1 | $p2 | $pb | $r |"
	done
	if [ -s "$CAPS" ]; then
		echo
		echo "(P ep): that run timed only the fraction P of an epoch and extrapolated it;"
		echo "(N of M ep): it timed N of the M epochs asked. PyTorch does so to keep within its"
		echo "time budget (\$LATHE_PEER_BUDGET_S, default 20 s) when its epochs take longer than"
		echo "that (lenet5 always does). Minibatches cost the same all through an epoch, so the"
		echo "figures stay comparable, just noisier."
	fi
fi

echo
echo "### Deep Compression pipeline (wall seconds, one run each)"
echo
if [ $have_train = 0 ]; then
	echo "Skipped: no training split in $DATA (needs train-images-idx3-ubyte[.gz] and"
	echo "train-labels-idx1-ubyte[.gz]; set LATHE_DATA or install dataset-fashion-mnist)."
else
	echo "recipes/deep_compression.lua (prune to the paper's rates in 4 steps + 8 cosine epochs,"
	echo "k-means sharing, 3 epochs on the shared values, biases to 8 bits) run by \`lathe run\` with"
	echo "its default threads (all $NCPU CPUs), against tests/bench/peer_deep_compression.py, the same"
	echo "pipeline in PyTorch (torch.nn.utils.prune, numpy k-means, autograd on the shared values)"
	echo "at 1 and 2 threads. lathe: the whole command (loading, each stage's test accuracy and size,"
	echo "writing the file); PyTorch: its four stages only. ratio = PyTorch best / lathe (>1: lathe"
	echo "faster). One run each (a run lasts a minute or more): on a busy machine single figures"
	echo "can move by 2x or more, 2 threads most. The 2-thread run is stopped after 4x the 1-thread"
	echo "run's time + 30 s (at least 60 s): \"> N s (stopped)\"."
	[ "${LATHE_BENCH_QUICK:-0}" = 1 ] && echo "LATHE_BENCH_QUICK=1: 2,000 training images per epoch, 1 final pruning epoch."
	echo
	echo "| model | lathe | PyTorch 1 thread | PyTorch 2 threads | PyTorch best | ratio |"
	echo "|---|---:|---:|---:|---:|---:|"
	for model in $DC_MODELS; do
		l=$(jget seconds "${DC[$model/lathe]}")
		t1=$(jget seconds "${DC[$model/torch1]}") t2=$(jget seconds "${DC[$model/torch2]}")
		best_of "$t1" "$t2"
		if [ $peer_ok = 0 ]; then
			p1="peer unavailable" p2="peer unavailable" pb="peer unavailable" r="-"
		else
			p1=$(fmt '%.1f s' "$t1") p2=$(fmt '%.1f s' "$t2")
			st=$(jget stopped_s "${DC[$model/torch1]}")
			[ -n "$st" ] && p1="> $st s (stopped)"
			st=$(jget stopped_s "${DC[$model/torch2]}")
			[ -n "$st" ] && p2="> $st s (stopped)"
			if [ -n "$best" ]; then pb="$(fmt '%.1f s' "$best") ($bt thr)"; else pb="-"; fi
			r=$(ratio "$best" "$l")
		fi
		echo "| $model | $(fmt '%.1f s' "$l") | $p1 | $p2 | $pb | $r |"
	done
	echo
	echo "Test accuracy before -> after (points), and size: lathe's saved file (header and"
	echo "architecture included) against the PyTorch peer's own estimate of its packed streams"
	echo "(Huffman-coded relative indices and codes, codebooks, 8-bit biases; no header); ratio ="
	echo "fp32 model file / that size."
	echo
	echo "| model | engine | test accuracy | size | ratio |"
	echo "|---|---|---:|---:|---:|"
	for model in $DC_MODELS; do
		for e in lathe torch1 torch2; do
			L=${DC[$model/$e]}
			case $e in
			lathe) name="lathe" size=$(jget file_bytes "$L") ;;
			torch1) name="PyTorch, 1 thread" size=$(jget packed_bytes "$L") ;;
			torch2) name="PyTorch, 2 threads" size=$(jget packed_bytes "$L") ;;
			esac
			if [ "$e" != lathe ] && [ $peer_ok = 0 ]; then
				echo "| $model | $name | peer unavailable | - | - |"
				continue
			fi
			if [ -n "$(jget stopped_s "$L")" ]; then
				echo "| $model | $name | stopped after $(jget stopped_s "$L") s | - | - |"
				continue
			fi
			a0=$(jget test_accuracy_before "$L") a1=$(jget test_accuracy_after "$L")
			if [ -n "$a0" ] && [ -n "$a1" ]; then
				acc=$(LC_ALL=C awk -v a="$a0" -v b="$a1" 'BEGIN { printf "%.2f %% -> %.2f %% (%+.2f)", 100 * a, 100 * b, 100 * (b - a) }')
			else
				acc=-
			fi
			echo "| $model | $name | $acc | $(fmt '%d B' "$size") | $(fmt '%.1fx' "$(jget ratio "$L")") |"
		done
	done
fi

END=$(date +%s)
echo
echo "Run time $((END - START)) s; raw results in $OUT."
if [ -s "$FAILS" ]; then
	echo "run.sh: some benchmarks failed (see above)" >&2
	exit 1
fi
exit 0
