#!/bin/sh
# Files written by `lathe convert` load in PyTorch (tests/torch_check.py, a
# strict safetensors reader making torch tensors):
#  - plain convert of every fixture: loads; its tensors are bit for bit those
#    of the input; and, by torch_check.py FILE REFERENCE, the whole file
#    (tensors and metadata) matches the input;
#  - convert --dtype f16 / bf16: loads, every floating-point tensor is
#    torch.float16 / torch.bfloat16 and equal bit for bit to torch's own
#    cast of the input tensor (round to nearest even, overflow to inf,
#    underflow to signed zero), integer tensors unchanged;
#  - packed models (model:save{packed = true}): load as a set of tensors.
# Skips unless /usr/bin/python3 can import torch.

case $0 in */*) here=${0%/*} ;; *) here=. ;; esac
. "$here/lib.sh"

PY=/usr/bin/python3
CHECK=$TOP_SRCDIR/tests/torch_check.py
if [ ! -x "$PY" ] || ! "$PY" -c 'import torch' >/dev/null 2>&1; then
	skip_all "no PyTorch for $PY"
fi
if [ ! -r "$CHECK" ]; then
	echo "Bail out! $CHECK is missing"
	exit 1
fi


# One Python process runs every check (importing torch takes over a second):
# driver.py TESTS_DIR JOBS reads lines "DESC|KIND|ARGS..." from JOBS:
#   check|OUT[|REF]     torch_check.py's own main(): OUT loads strictly;
#                       with REF, its tensors and metadata match REF
#   same|OUT|SRC        same tensor names, dtypes, shapes, bytes as SRC
#   cast|OUT|SRC|f16    float tensors are SRC's cast by torch (bf16 alike),
#                       with that torch dtype; integer tensors unchanged
# and prints "PASS DESC" or "FAIL DESC" plus "DIAG ..." lines, then "DONE".
cat >"$T/driver.py" <<'PYEOF'
import contextlib
import io
import sys

import torch

sys.path.insert(0, sys.argv[1])
import torch_check as tc

TARGET = {"f16": ("F16", torch.float16), "bf16": ("BF16", torch.bfloat16)}


def compare(mode, out_path, src_path, target=None):
    out, _ = tc.load(out_path)
    src, _ = tc.load(src_path)
    have = {name: (dt, t) for name, dt, t in out}
    bad = []
    if sorted(have) != sorted(name for name, _, _ in src):
        bad.append("tensor names differ: %s vs %s"
                   % (sorted(have), sorted(n for n, _, _ in src)))
    for name, dt, t in src:
        if name not in have:
            continue
        odt, ot = have[name]
        want_dt, want = dt, t
        if mode == "cast" and dt in ("F64", "F32", "F16", "BF16"):
            want_dt, want = TARGET[target][0], t.to(TARGET[target][1])
            if ot.dtype != TARGET[target][1]:
                bad.append("%s: torch dtype %s, want %s" % (name, ot.dtype, TARGET[target][1]))
        if odt != want_dt:
            bad.append("%s: dtype %s, want %s" % (name, odt, want_dt))
        elif list(ot.shape) != list(want.shape):
            bad.append("%s: shape %s, want %s" % (name, list(ot.shape), list(want.shape)))
        elif tc.raw_bytes(ot) != tc.raw_bytes(want):
            diff = (ot.reshape(-1).double() != want.reshape(-1).double()).nonzero()
            i = int(diff[0]) if diff.numel() else 0
            bad.append("%s: values differ, first at %d: %r vs %r" % (
                name, i, ot.reshape(-1)[i].item(), want.reshape(-1)[i].item()))
    return bad


for line in open(sys.argv[2]):
    desc, kind, *args = line.rstrip("\n").split("|")
    try:
        if kind == "check":
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = tc.main(["torch_check.py"] + args)
            bad = [] if rc == 0 else (err.getvalue().splitlines() or ["exit status %d" % rc])
            if bad and len(args) == 2:  # show how the metadata differs
                try:
                    g, r = tc.load(args[0])[1] or {}, tc.load(args[1])[1] or {}
                    for k in sorted(set(g) | set(r)):
                        if g.get(k) != r.get(k):
                            bad.append("%s in OUT:   %.300s" % (k, g.get(k)))
                            bad.append("%s in INPUT: %.300s" % (k, r.get(k)))
                except tc.Bad:
                    pass
        else:
            bad = compare(kind, *args)
    except Exception as e:  # tc.Bad from a file that does not load, or worse
        bad = ["%s: %s" % (type(e).__name__, e)]
    print(("FAIL " if bad else "PASS ") + desc)
    for b in bad[:15]:
        print("DIAG " + b)
    sys.stdout.flush()
print("DONE")
PYEOF

: >"$T/jobs"
njobs=0
# job "DESC|KIND|ARGS...": queue one check for the driver.
job() {
	printf '%s\n' "$1" >>"$T/jobs"
	njobs=$((njobs + 1))
}

for m in mlp cnn allops allops_nsq mlp_f16 mlp_bf16 dtypes; do
	in=$FIXTURES/$m.safetensors
	out=$T/$m.safetensors
	run "$LATHE" convert "$in" -o "$out"
	if [ "$rc" -ne 0 ]; then
		not_ok "convert $m" "exit status $rc"
		diag_file "$T/err"
		continue
	fi
	job "convert $m: loads in torch|check|$out"
	job "convert $m: tensors bit for bit those of the input|same|$out|$in"
	job "convert $m: torch_check.py OUT INPUT (tensors and metadata equal)|check|$out|$in"
	for dt in f16 bf16; do
		out=$T/${m}_$dt.safetensors
		run "$LATHE" convert "$in" -o "$out" --dtype $dt
		if [ "$rc" -ne 0 ]; then
			not_ok "convert --dtype $dt $m" "exit status $rc"
			diag_file "$T/err"
			continue
		fi
		job "convert --dtype $dt $m: loads in torch|check|$out"
		job "convert --dtype $dt $m: torch dtype and values of torch's own cast|cast|$out|$in|$dt"
	done
done

# Packed files (quantized, shared, pruned and half-precision tensors as
# U8 streams; the rest as values) are still safetensors for torch.
for how in "lathe.share(model, {bits = 4})" "lathe.quantize(model, {bits = 5, per_channel = true})" \
	"lathe.prune(model, {sparsity = 0.9}); lathe.quantize(model, {mode = 'f16'})"; do
	out=$T/packed_$njobs.safetensors
	run "$LATHE" lua -m "$FIXTURES/cnn.safetensors" -e "$how; model:commit(); model:save('$out', {packed = true})"
	if [ "$rc" -ne 0 ]; then
		not_ok "packed: $how" "exit status $rc"
		diag_file "$T/err"
		continue
	fi
	job "packed after $how: loads in torch|check|$out"
done

_timeout "$SLOW_LIMIT" "$PY" "$T/driver.py" "$TOP_SRCDIR/tests" "$T/jobs" >"$T/results" 2>"$T/driver.err"
drc=$?
finished=0 seen=0
while IFS= read -r line; do
	case $line in
	"PASS "*) ok "${line#PASS }"; seen=$((seen + 1)) ;;
	"FAIL "*) not_ok "${line#FAIL }"; seen=$((seen + 1)) ;;
	"DIAG "*) diag "  ${line#DIAG }" ;;
	DONE) finished=1 ;;
	esac
done <"$T/results"
if [ "$finished" -ne 1 ] || [ "$seen" -ne "$njobs" ]; then
	not_ok "the torch checks ran to the end" "exit status $drc, $seen of $njobs results; stderr:"
	diag_file "$T/driver.err" 20
fi

# And torch_check.py as a program, once: the F16 copy of the CNN.
run_slow "$PY" "$CHECK" "$T/cnn_f16.safetensors"
if [ "$rc" -eq 0 ] && grep '^ok 8 tensors' "$T/out" >/dev/null; then
	ok "torch_check.py (as a program) loads the F16 CNN: 8 tensors"
else
	not_ok "torch_check.py (as a program) loads the F16 CNN: 8 tensors" "exit status $rc"
	diag_file "$T/out"
	diag_file "$T/err"
fi

finish
