#!/bin/sh
# The command-line contract: usage errors exit 2; bad files exit 1 with one
# line "lathe: WHAT: reason" and nothing on stdout, never a crash or a hang;
# convert writes atomically (nothing left behind, an existing OUT untouched
# on failure), casts with --dtype and round-trips tensors byte for byte;
# --help and --version; the OpenBLAS core choice (OPENBLAS_CORETYPE wins,
# LATHE_BLAS_AUTOCORE=0 turns the automatic choice off).

case $0 in */*) here=${0%/*} ;; *) here=. ;; esac
. "$here/lib.sh"

F=$FIXTURES
S=$(slice_dir)
MLP=$F/mlp.safetensors

# tensors_json FILE: the "tensors":[...] part of `lathe info --json FILE`,
# without blanks (empty when that fails).
tensors_json() {
	"$LATHE" info --json "$1" >"$T/tj.json" 2>/dev/null || return 0
	json_compact "$T/tj.json" | awk '{
		i = index($0, "\"tensors\":["); j = index($0, "],\"totals\":")
		if (i && j > i) print substr($0, i, j - i + 1)
	}'
}

# ---- usage errors: exit 2 ----
check_usage "no arguments" "$LATHE"
check_usage "unknown command" "$LATHE" frobnicate
check_usage "unknown top-level option" "$LATHE" --frobnicate
check_usage "info: no FILE" "$LATHE" info
check_usage "info: two FILEs" "$LATHE" info "$MLP" "$MLP"
check_usage "info: unknown option" "$LATHE" info --frobnicate "$MLP"
check_usage "eval: unknown option" "$LATHE" eval "$MLP" --frobnicate
check_usage "eval: two MODELs" "$LATHE" eval "$MLP" "$MLP"
check_usage "eval: --data without a value" "$LATHE" eval "$MLP" --data
for v in 0 abc -1 5x "" 1.5 +3 99999999999999999999; do
	check_usage "eval: --limit '$v'" "$LATHE" eval "$MLP" --data "$S" --limit "$v"
done
check_usage "eval: --batch 0" "$LATHE" eval "$MLP" --data "$S" --batch 0
check_usage "eval: --batch 1048577 (above the limit)" "$LATHE" eval "$MLP" --data "$S" --batch 1048577
check_usage "eval: --threads 0" "$LATHE" eval "$MLP" --data "$S" --threads 0
check_usage "eval: --threads 1025 (above the limit)" "$LATHE" eval "$MLP" --data "$S" --threads 1025
check_usage "eval: --split nope" "$LATHE" eval "$MLP" --data "$S" --split nope
check_usage "convert: no -o" "$LATHE" convert "$MLP"
check_usage "convert: -o without a value" "$LATHE" convert "$MLP" -o
check_usage "convert: -o but no MODEL" "$LATHE" convert -o "$T/u1.safetensors"
check_usage "convert: --dtype int8" "$LATHE" convert "$MLP" -o "$T/u2.safetensors" --dtype int8
check_usage "convert: unknown option" "$LATHE" convert "$MLP" -o "$T/u3.safetensors" --frobnicate
if [ -e "$T/u1.safetensors" ] || [ -e "$T/u2.safetensors" ] || [ -e "$T/u3.safetensors" ]; then
	not_ok "convert usage errors write nothing"
else
	ok "convert usage errors write nothing"
fi

# ---- bad files: exit 1, one line ----
mkdir "$T/dir"
: >"$T/empty"
printf 'hello, this is a text file\nwith two lines\n' >"$T/text.txt"
# a PNG signature, an IHDR chunk header and garbage
{ bytes 137 80 78 71 13 10 26 10  0 0 0 13; printf 'IHDR'; bytes 0 0 1 0 0 0 1 0 8 6 0 0 0 31 21 196 137 255 0 1 2 3; } >"$T/garbage.png"
# the first 1000 bytes (header and some data), 500 (inside the header), and
# a cut gzip stream
dd if="$MLP" of="$T/truncated.safetensors" bs=1000 count=1 2>/dev/null
dd if="$MLP" of="$T/truncated-header.safetensors" bs=500 count=1 2>/dev/null
dd if="$F/slice-images-idx3-ubyte.gz" of="$T/truncated-idx3-ubyte.gz" bs=3000 count=1 2>/dev/null
for f in "$T/missing" "$T/dir" /dev/null "$T/empty" "$T/text.txt" "$T/garbage.png" \
	"$T/truncated.safetensors" "$T/truncated-header.safetensors" "$T/truncated-idx3-ubyte.gz"; do
	case $f in "$T"/*) name=${f##*/} ;; *) name=$f ;; esac
	check_error "info $name" "$LATHE" info "$f"
	check_error "info --json $name" "$LATHE" info --json "$f"
	check_error "eval $name" "$LATHE" eval "$f" --data "$S"
	check_error "convert $name" "$LATHE" convert "$f" -o "$T/never.safetensors"
done
if [ -e "$T/never.safetensors" ]; then
	not_ok "failed converts created no output"
else
	ok "failed converts created no output"
fi
check_error_msg "info of a missing file names the file" "$T/missing" "$LATHE" info "$T/missing"

# ---- convert: atomic output ----
check_error "convert into a directory that does not exist" \
	"$LATHE" convert "$MLP" -o "$T/nodir/out.safetensors"
if [ -e "$T/nodir" ]; then not_ok "... and creates nothing"; else ok "... and creates nothing"; fi
check_error "convert with -o naming a directory" "$LATHE" convert "$MLP" -o "$T/dir"
is "... and leaves the directory empty" "$(ls -A "$T/dir")" ""

mkdir "$T/keep"
cp "$F/cnn.safetensors" "$T/keep/out.safetensors"
check_error "convert of a bad input over an existing OUT" \
	"$LATHE" convert "$T/garbage.png" -o "$T/keep/out.safetensors"
check "... leaves OUT byte-identical" cmp -s "$T/keep/out.safetensors" "$F/cnn.safetensors"
check_error "convert of a truncated input over an existing OUT" \
	"$LATHE" convert "$T/truncated.safetensors" -o "$T/keep/out.safetensors"
check "... leaves OUT byte-identical" cmp -s "$T/keep/out.safetensors" "$F/cnn.safetensors"
is "... and no temporary file beside it" "$(ls -A "$T/keep")" out.safetensors

# A write that fails half-way: a file size limit of 100 KiB (the model is
# 1 MiB); SIGXFSZ ignored so that write() fails with EFBIG.
(
	trap '' XFSZ
	ulimit -f 200 2>/dev/null || exit 77
	exec "$LATHE" convert "$MLP" -o "$T/keep/out.safetensors"
) >"$T/out" 2>"$T/err"
rc=$?
if [ "$rc" -eq 77 ]; then
	skip "convert failing half-way through the write" "ulimit -f not available"
else
	lines=$(awk 'END { print NR }' "$T/err")
	if [ "$rc" -eq 1 ] && [ "$lines" -eq 1 ] && grep '^lathe: ' "$T/err" >/dev/null; then
		ok "convert failing half-way (file too large): exit 1, one line"
	else
		not_ok "convert failing half-way (file too large): exit 1, one line" "exit status $rc; stderr:"
		diag_file "$T/err"
	fi
	check "... leaves the existing OUT byte-identical" cmp -s "$T/keep/out.safetensors" "$F/cnn.safetensors"
	is "... and no temporary file beside it" "$(ls -A "$T/keep")" out.safetensors
fi

# ---- convert: round trip and casts ----
mkdir "$T/rt"
for m in mlp cnn allops allops_nsq mlp_f16 mlp_bf16 dtypes; do
	in=$F/$m.safetensors out=$T/rt/$m.safetensors
	run "$LATHE" convert "$in" -o "$out"
	if [ "$rc" -ne 0 ] || [ -s "$T/out" ] || [ -s "$T/err" ]; then
		not_ok "convert $m: exit 0, silent" "exit status $rc; stderr:"
		diag_file "$T/err"
		continue
	fi
	ok "convert $m: exit 0, silent"
	data_part "$in" "$T/a.data"
	data_part "$out" "$T/b.data"
	check "convert $m: tensor data byte-identical" cmp -s "$T/a.data" "$T/b.data"
	tensors_json "$in" >"$T/a.tensors"
	tensors_json "$out" >"$T/b.tensors"
	check "convert $m: same tensor list (names, dtypes, shapes, zeros, bytes)" cmp -s "$T/a.tensors" "$T/b.tensors"
	[ "$m" = dtypes ] && continue
	run "$LATHE" eval "$in" --data "$S" --json
	a=$(json_get top1 "$T/out")
	run "$LATHE" eval "$out" --data "$S" --json
	is "convert $m: same top-1 on the slice" "$(json_get top1 "$T/out")" "$a"
done
run "$LATHE" convert "$T/rt/allops.safetensors" -o "$T/rt/allops2.safetensors"
check "convert of a converted file is byte-identical (stable output)" \
	cmp -s "$T/rt/allops.safetensors" "$T/rt/allops2.safetensors"
is "convert leaves no temporary files" "$(ls -A "$T/rt" | grep -v '\.safetensors$')" ""
cp "$F/cnn.safetensors" "$T/inplace.safetensors"
run "$LATHE" convert "$T/inplace.safetensors" -o "$T/inplace.safetensors"
data_part "$T/inplace.safetensors" "$T/b.data"
data_part "$F/cnn.safetensors" "$T/a.data"
if [ "$rc" -eq 0 ] && cmp -s "$T/a.data" "$T/b.data"; then
	ok "convert in place (OUT = MODEL) keeps the tensors"
else
	not_ok "convert in place (OUT = MODEL) keeps the tensors" "exit status $rc"
	diag_file "$T/err"
fi

run "$LATHE" eval "$F/cnn.safetensors" --data "$S" --json
base=$(json_get top1 "$T/out")
for c in f16:F16 bf16:BF16; do
	dt=${c%:*} DT=${c#*:}
	out=$T/cnn_$dt.safetensors
	run "$LATHE" convert "$F/cnn.safetensors" -o "$out" --dtype "$dt"
	is "convert --dtype $dt: exit 0" "$rc" 0
	run "$LATHE" info "$out"
	n=$(awk -v d="$DT" '$1 ~ /\.(weight|bias)$/ && $2 == d' "$T/out" | wc -l | tr -d ' ')
	is "convert --dtype $dt: info shows all 8 tensors as $DT" "$n" 8
	# 431,080 parameters x 2 bytes
	total=$(awk '$1 == "total" { print $2, $4 }' "$T/out")
	is "convert --dtype $dt: 431,080 parameters in 862,160 bytes" "$total" "431,080 862,160"
	run "$LATHE" eval "$out" --data "$S" --json
	t=$(json_get top1 "$T/out")
	if [ "$rc" -eq 0 ] && awk -v a="$t" -v b="$base" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && d <= 0.02) }'; then
		ok "convert --dtype $dt: top-1 $t within 2 points of F32 $base"
	else
		not_ok "convert --dtype $dt: top-1 within 2 points of F32" "exit status $rc; top-1 '$t', F32 $base"
		diag_file "$T/err"
	fi
done
run "$LATHE" convert "$T/cnn_f16.safetensors" -o "$T/cnn_back.safetensors" --dtype f32
run "$LATHE" info "$T/cnn_back.safetensors"
n=$(awk '$1 ~ /\.(weight|bias)$/ && $2 == "F32"' "$T/out" | wc -l | tr -d ' ')
is "convert --dtype f32 of the F16 copy: all 8 tensors F32 again" "$n" 8

# ---- --help, --version ----
for c in "" info eval convert; do
	run "$LATHE" $c --help
	if [ "$rc" -eq 0 ] && [ ! -s "$T/err" ] && grep "^usage: lathe${c:+ $c}" "$T/out" >/dev/null; then
		ok "lathe${c:+ $c} --help: exit 0, usage on stdout"
	else
		not_ok "lathe${c:+ $c} --help: exit 0, usage on stdout" "exit status $rc"
		diag_file "$T/out" 3
		diag_file "$T/err" 3
	fi
done
check_run "lathe --version: exit 0" "$LATHE" --version
contains "lathe --version: names lathe" "$T/out" "lathe "
contains "lathe --version: names the OpenBLAS core" "$T/out" "OpenBLAS core: "

# ---- the OpenBLAS core ----
# version_with VAR=VALUE...: lathe --version with exactly these of the
# variables that steer the core choice.
version_with() {
	(
		unset OPENBLAS_CORETYPE LATHE_BLAS_AUTOCORE LATHE_BLAS_AUTOCORE_DONE LATHE_BLAS_ASSUME_CORE
		for _a; do export "$_a"; done
		_timeout "$TIME_LIMIT" "$LATHE" --version
	) >"$T/out" 2>"$T/err"
	rc=$?
	sed -n 's/^OpenBLAS core: //p' "$T/out"
}
core=$(version_with OPENBLAS_CORETYPE=Prescott)
case $core in
"Prescott (chosen by user"*) ok "OPENBLAS_CORETYPE=Prescott: Prescott, chosen by user" ;;
*) not_ok "OPENBLAS_CORETYPE=Prescott: Prescott, chosen by user" "exit status $rc; got '$core'" ;;
esac
core=$(version_with OPENBLAS_CORETYPE=Prescott LATHE_BLAS_ASSUME_CORE=Prescott)
case $core in
"Prescott (chosen by user"*) ok "OPENBLAS_CORETYPE is never overridden, even where lathe would re-choose" ;;
*) not_ok "OPENBLAS_CORETYPE is never overridden, even where lathe would re-choose" "got '$core'" ;;
esac
core=$(version_with LATHE_BLAS_AUTOCORE=0)
case $core in
*"(chosen by openblas"*) ok "LATHE_BLAS_AUTOCORE=0: chosen by openblas ($core)" ;;
*) not_ok "LATHE_BLAS_AUTOCORE=0: chosen by openblas" "exit status $rc; got '$core'" ;;
esac
core=$(version_with LATHE_BLAS_AUTOCORE=0 LATHE_BLAS_ASSUME_CORE=Prescott)
case $core in
*"(chosen by openblas"*) ok "LATHE_BLAS_AUTOCORE=0: no re-choice even for a generic core" ;;
*) not_ok "LATHE_BLAS_AUTOCORE=0: no re-choice even for a generic core" "got '$core'" ;;
esac
# On an AVX2+FMA CPU, a generic core (here pretended) is replaced.
if grep -w avx2 /proc/cpuinfo >/dev/null 2>&1 && grep -w fma /proc/cpuinfo >/dev/null 2>&1; then
	core=$(version_with LATHE_BLAS_ASSUME_CORE=Prescott)
	case $core in
	*"(chosen by openblas"* | *"(chosen by user"* | "") not_ok "generic core on an AVX2 CPU: lathe chooses another" "exit status $rc; got '$core'" ;;
	Haswell* | Zen* | SkylakeX*) ok "generic core on an AVX2 CPU: lathe chooses another ($core)" ;;
	*) not_ok "generic core on an AVX2 CPU: lathe chooses another" "got '$core'" ;;
	esac
else
	skip "generic core on an AVX2 CPU: lathe chooses another" "no AVX2+FMA here"
fi
# The generic kernels give the same answers.
(
	unset LATHE_BLAS_AUTOCORE LATHE_BLAS_AUTOCORE_DONE LATHE_BLAS_ASSUME_CORE
	OPENBLAS_CORETYPE=Prescott
	export OPENBLAS_CORETYPE
	_timeout "$TIME_LIMIT" "$LATHE" eval "$F/cnn.safetensors" --data "$S" --json
) >"$T/out" 2>"$T/err"
is "eval with OPENBLAS_CORETYPE=Prescott: same top-1" "$(json_get top1 "$T/out")" "$base"

finish
