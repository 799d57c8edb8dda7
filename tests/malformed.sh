#!/bin/sh
# The malformed-file corpus (tests/gen_malformed.c writes it): every bad
# safetensors file (st_*) and bad IDX file (idx_*) must make lathe exit 1
# with one line "lathe: WHAT: reason", nothing on stdout, no crash, no hang
# and no more than the address-space cap (see lib.sh):
#	info FILE                          st_* and idx_*
#	eval FILE --data SLICE             st_* (FILE as the model)
#	eval MLP --data DIR                idx_* as the test images, then as
#	                                   the test labels, of a dataset directory
# Every valid control file (ok_*) must give exit 0 for info and info --json.
# With LATHE_VALGRIND=1 and valgrind installed, a few malformed files also
# run under valgrind (memcheck errors or definite leaks fail).

case $0 in */*) here=${0%/*} ;; *) here=. ;; esac
. "$here/lib.sh"

GEN=$TOP_BUILDDIR/tests/gen_malformed
if [ ! -x "$GEN" ]; then
	skip_all "$GEN not built (make check builds it)"
fi
C=$T/corpus
mkdir "$C"
if ! "$GEN" "$C" >"$T/gen.out" 2>&1; then
	echo "Bail out! gen_malformed failed: $(head -n 1 "$T/gen.out")"
	exit 1
fi
S=$(slice_dir)
F=$FIXTURES

# what NAME: the corpus MANIFEST's description of NAME.
what() {
	awk -F '\t' -v n="$1" '$1 == n { print $2; exit }' "$C/MANIFEST"
}

n_st=0 n_idx=0 n_ok=0
for f in "$C"/st_*; do
	[ -e "$f" ] || continue
	n_st=$((n_st + 1))
	name=${f##*/}
	check_error "info $name ($(what "$name"))" "$LATHE" info "$f"
	check_error "eval $name" "$LATHE" eval "$f" --data "$S"
done

for f in "$C"/idx_*; do
	[ -e "$f" ] || continue
	n_idx=$((n_idx + 1))
	name=${f##*/}
	check_error "info $name ($(what "$name"))" "$LATHE" info "$f"
	# The same file as a dataset's images, then as its labels; a .gz name
	# keeps its suffix, so lathe reads it as gzip.
	case $name in *.gz) gz=.gz ;; *) gz= ;; esac
	d=$T/data-$n_idx
	mkdir "$d" "$d/images" "$d/labels"
	ln -s "$f" "$d/images/t10k-images-idx3-ubyte$gz"
	ln -s "$F/slice-labels-idx1-ubyte.gz" "$d/images/t10k-labels-idx1-ubyte.gz"
	ln -s "$F/slice-images-idx3-ubyte.gz" "$d/labels/t10k-images-idx3-ubyte.gz"
	ln -s "$f" "$d/labels/t10k-labels-idx1-ubyte$gz"
	check_error "eval with $name as the test images" \
		"$LATHE" eval "$F/mlp.safetensors" --data "$d/images"
	check_error "eval with $name as the test labels" \
		"$LATHE" eval "$F/mlp.safetensors" --data "$d/labels"
done

for f in "$C"/ok_*; do
	[ -e "$f" ] || continue
	n_ok=$((n_ok + 1))
	name=${f##*/}
	run_capped "$LATHE" info "$f"
	if [ "$rc" -eq 0 ] && [ -s "$T/out" ] && [ ! -s "$T/err" ]; then
		ok "info $name ($(what "$name")): exit 0"
	else
		not_ok "info $name ($(what "$name")): exit 0" "exit status $rc; stderr:"
		diag_file "$T/err"
	fi
	run_capped "$LATHE" info --json "$f"
	if [ "$rc" -eq 0 ] && [ ! -s "$T/err" ] && json_valid "$T/out"; then
		ok "info --json $name: exit 0, valid JSON"
	else
		not_ok "info --json $name: exit 0, valid JSON" "exit status $rc; stderr:"
		diag_file "$T/err"
	fi
done

# The corpus must not have shrunk to nothing (gen_malformed checks its own
# minimum too).
if [ "$n_st" -ge 35 ] && [ "$n_idx" -ge 12 ] && [ "$n_ok" -ge 3 ]; then
	ok "corpus: $n_st safetensors, $n_idx IDX, $n_ok valid files"
else
	not_ok "corpus: at least 35 safetensors, 12 IDX and 3 valid files" "got $n_st, $n_idx, $n_ok"
fi

# ---- under valgrind (opt-in) ----
if [ "${LATHE_VALGRIND:-0}" != 1 ]; then
	skip "valgrind on malformed files" "set LATHE_VALGRIND=1 to run"
elif ! command -v valgrind >/dev/null 2>&1; then
	skip "valgrind on malformed files" "valgrind not installed"
elif [ "${LATHE_SANITIZED:-0}" = 1 ]; then
	skip "valgrind on malformed files" "sanitizer build"
else
	for spec in "info st_19_json-deep-nesting.safetensors" \
		"info st_42_overlap.safetensors" \
		"info idx_13_gz-truncated.idx.gz" \
		"eval st_52_arch-missing-tensor.safetensors"; do
		set -- $spec
		if [ ! -e "$C/$2" ]; then
			skip "valgrind: $1 $2" "not in the corpus"
			continue
		fi
		if [ "$1" = eval ]; then extra="--data $S"; else extra=; fi
		_timeout "$SLOW_LIMIT" valgrind -q --error-exitcode=99 --leak-check=full \
			--errors-for-leak-kinds=definite "$LATHE" "$1" "$C/$2" $extra \
			>"$T/out" 2>"$T/err"
		rc=$?
		if [ "$rc" -eq 1 ] && ! grep '^==[0-9]*==' "$T/err" >/dev/null; then
			ok "valgrind: $1 $2: exit 1, no memcheck errors or definite leaks"
		else
			not_ok "valgrind: $1 $2: exit 1, no memcheck errors or definite leaks" "exit status $rc (99: valgrind errors)"
			diag_file "$T/err" 30
		fi
	done
fi

finish
