# Shared helpers for the command-line tests (tests/*.sh).  POSIX sh; sourced:
#
#	case $0 in */*) here=${0%/*} ;; *) here=. ;; esac
#	. "$here/lib.sh"
#
# Environment (set by `make check`; defaulted here for running by hand from
# the source tree, e.g. `sh tests/cli_info.sh`):
#	LATHE         the binary under test        ($TOP_BUILDDIR/lathe)
#	TOP_SRCDIR    source tree                  (the directory above this file)
#	TOP_BUILDDIR  build tree                   ($TOP_SRCDIR)
#	FIXTURES      committed test files         ($TOP_SRCDIR/tests/fixtures)
# Optional:
#	LATHE_TEST_VMEM_KIB  address-space cap for check_error, in KiB (see below)
#	LATHE_SANITIZED=1    the binary is an ASan/UBSan build: longer time limits
#
# Output is TAP for automake's tap-driver.sh: one "ok N - ..." or
# "not ok N - ..." line per check, "# ..." diagnostics, and the plan "1..N"
# printed by finish at the end.  Scripts always exit 0; the driver counts
# the failures.  Temporary files go to $T (a fresh mktemp -d directory,
# removed on exit), never to the source or build tree.

if [ -z "${here:-}" ]; then
	case $0 in */*) here=${0%/*} ;; *) here=. ;; esac
fi
TOP_SRCDIR=${TOP_SRCDIR:-$(cd "$here/.." && pwd)}
TOP_BUILDDIR=${TOP_BUILDDIR:-$TOP_SRCDIR}
LATHE=${LATHE:-$TOP_BUILDDIR/lathe}
FIXTURES=${FIXTURES:-$TOP_SRCDIR/tests/fixtures}
export LATHE TOP_SRCDIR TOP_BUILDDIR FIXTURES

# The tests say where the data is; a user's own setting must not leak in.
unset LATHE_DATA

# Seconds a single lathe command may take, and the longer budget for
# commands that do real work (evaluation of 10,000 images).
TIME_LIMIT=20
SLOW_LIMIT=120
if [ "${LATHE_SANITIZED:-0}" = 1 ]; then
	TIME_LIMIT=120
	SLOW_LIMIT=600
fi

tap_n=0
tap_failed=0

T=$(mktemp -d "${TMPDIR:-/tmp}/lathe-test.XXXXXX") || {
	echo "Bail out! cannot create a temporary directory"
	exit 1
}
trap 'rm -rf "$T"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 141' PIPE
trap 'exit 143' TERM

if [ ! -x "$LATHE" ]; then
	echo "Bail out! $LATHE is not an executable (build it first: make lathe)"
	exit 1
fi

# ---- TAP ----------------------------------------------------------------

# diag TEXT...: each argument (and each line in it) as a "# " comment.
diag() {
	for _d; do
		printf '%s\n' "$_d" | sed 's/^/# /'
	done
}

# diag_file FILE [MAXLINES]: the start of FILE as comments.
diag_file() {
	if [ -s "$1" ]; then
		awk -v m="${2:-10}" 'NR > m { exit }
			{ if (length($0) > 600) $0 = substr($0, 1, 600) "..."; print "#   | " $0 }' "$1"
	fi
}

# A '#' in a description would start a TAP directive; keep it out.
_tap_desc() {
	printf '%s' "$1" | tr '#\n' '_ '
}

# ok DESC
ok() {
	tap_n=$((tap_n + 1))
	echo "ok $tap_n - $(_tap_desc "$1")"
}

# not_ok DESC [DIAG...]
not_ok() {
	tap_n=$((tap_n + 1))
	tap_failed=$((tap_failed + 1))
	echo "not ok $tap_n - $(_tap_desc "$1")"
	shift
	diag "$@"
}

# skip DESC REASON
skip() {
	tap_n=$((tap_n + 1))
	echo "ok $tap_n - $(_tap_desc "$1") # SKIP $(_tap_desc "$2")"
}

# skip_all REASON: for a script that cannot run at all (before any test).
skip_all() {
	echo "1..0 # SKIP $(_tap_desc "$1")"
	exit 0
}

# check DESC CMD...: ok when CMD succeeds.
check() {
	_c_desc=$1
	shift
	if "$@"; then
		ok "$_c_desc"
	else
		not_ok "$_c_desc" "command failed: $*"
	fi
}

# is DESC GOT WANT: string equality.
is() {
	if [ "$2" = "$3" ]; then
		ok "$1"
	else
		not_ok "$1" "got:  '$2'" "want: '$3'"
	fi
}

# contains DESC FILE TEXT: FILE contains the fixed string TEXT.
contains() {
	if grep -F -e "$3" "$2" >/dev/null 2>&1; then
		ok "$1"
	else
		not_ok "$1" "'$3' not found in:"
		diag_file "$2" 20
	fi
}

# finish: print the plan and exit 0 (the driver counts failures from TAP).
finish() {
	echo "1..$tap_n"
	if [ "$tap_failed" -gt 0 ]; then
		diag "$tap_failed of $tap_n failed"
	fi
	exit 0
}

# ---- running commands -----------------------------------------------------

if command -v timeout >/dev/null 2>&1; then
	_timeout() { _t=$1; shift; timeout "$_t" "$@"; }
else
	_timeout() { shift; "$@"; }
fi

# run CMD...: run with the normal time limit; stdout in $T/out, stderr in
# $T/err, exit status in $rc.
run() {
	_timeout "$TIME_LIMIT" "$@" >"$T/out" 2>"$T/err"
	rc=$?
}

# run_slow CMD...: the same with the long time limit.
run_slow() {
	_timeout "$SLOW_LIMIT" "$@" >"$T/out" 2>"$T/err"
	rc=$?
}

# check_run DESC CMD...: run CMD and expect exit 0 with nothing on stderr
# (which also catches sanitizer reports).  Output stays in $T/out, $T/err.
check_run() {
	_cr_desc=$1
	shift
	run "$@"
	if [ "$rc" -eq 0 ] && [ ! -s "$T/err" ]; then
		ok "$_cr_desc"
	else
		not_ok "$_cr_desc" "command: $*" "exit status $rc (want 0, empty stderr); stderr:"
		diag_file "$T/err"
	fi
}

# ---- the address-space cap ----------------------------------------------
#
# check_error runs lathe under `ulimit -v` so that a loader that believes a
# size field and allocates it fails the test instead of the machine.  The
# cap cannot be a fixed small number: OpenBLAS reserves address space at
# start-up for every worker thread it starts (per pmap, a 128 MiB buffer
# and an 8 MiB stack: about 140 MiB a thread), and below what it needs
# `lathe --version` does not fail but hangs inside OpenBLAS (a worker
# thread spins when its buffer mmap fails; a plain C program calling
# openblas_get_corename() does the same).
#
# Measured on the development machine (2 cores, Debian's OpenBLAS 0.3.21,
# pthreads): start-up VSZ 182,008 KiB (178 MiB; 42,740 KiB with one thread);
# with `ulimit -v` below about 182,000 KiB lathe --version hangs.  So the cap
# is the start-up VSZ measured here, on this machine, plus 1 GiB: 1,230,584
# KiB (1.17 GiB) on that machine.  A single malformed file making lathe ask
# for more than 1 GiB beyond start-up is a bug, and it then exits 1 with an
# out-of-memory message instead of thrashing.
#
# The start-up VSZ is read from /proc/PID/status (VmPeak) while lathe is
# blocked reading a FIFO, i.e. after OpenBLAS start-up and the BLAS core
# re-exec.  Measuring also makes the cap fit an ASan build, which reserves
# about 20 TiB of shadow memory at start-up (the cap is then that + 1 GiB;
# the sanitizer builds pass under it).  Without /proc, or if measuring
# fails, the cap is 2,000,000 KiB.  LATHE_TEST_VMEM_KIB overrides it (0 or
# "unlimited": no cap).

# _startup_kib: print lathe's start-up VSZ in KiB, or fail.
_startup_kib() {
	[ -r /proc/self/status ] || return 1
	_fifo=$T/startup.fifo
	rm -f "$_fifo"
	mkfifo "$_fifo" 2>/dev/null || return 1
	# Open our end read-write, so that neither side blocks in open(); lathe
	# then blocks reading the FIFO until we close it.
	exec 9<>"$_fifo"
	"$LATHE" info "$_fifo" >/dev/null 2>&1 9>&- &
	_pid=$!
	_kib=
	_i=0
	while [ $_i -lt 200 ] && kill -0 "$_pid" 2>/dev/null; do
		# lathe's own descriptor on the FIFO, not fd 9 of the shell that
		# has forked but not yet exec'd it (its VmPeak is the shell's)
		if ls -l "/proc/$_pid/fd" 2>/dev/null | grep -v ' 9 -> ' | grep -F "$_fifo" >/dev/null; then
			_kib=$(awk '$1 == "VmPeak:" { print $2 }' "/proc/$_pid/status" 2>/dev/null)
			break
		fi
		sleep 0.05 2>/dev/null || sleep 1
		_i=$((_i + 1))
	done
	exec 9>&-          # EOF: lathe reads an empty file and exits 1
	_w=0
	while [ $_w -lt 100 ] && kill -0 "$_pid" 2>/dev/null; do
		sleep 0.05 2>/dev/null || sleep 1
		_w=$((_w + 1))
	done
	kill "$_pid" 2>/dev/null
	wait "$_pid" 2>/dev/null
	rm -f "$_fifo"
	case $_kib in '' | *[!0-9]*) return 1 ;; esac
	echo "$_kib"
}

# vmem_cap: set $VMEM_KIB (a number, or "unlimited") once, with a comment.
VMEM_KIB=
vmem_cap() {
	[ -n "$VMEM_KIB" ] && return 0
	if [ -n "${LATHE_TEST_VMEM_KIB:-}" ]; then
		VMEM_KIB=$LATHE_TEST_VMEM_KIB
		[ "$VMEM_KIB" = 0 ] && VMEM_KIB=unlimited
		diag "address-space cap from LATHE_TEST_VMEM_KIB: $VMEM_KIB KiB"
	elif _s=$(_startup_kib); then
		VMEM_KIB=$((_s + 1048576))
		diag "address-space cap $VMEM_KIB KiB (start-up VSZ $_s KiB + 1 GiB)"
	else
		VMEM_KIB=2000000
		diag "address-space cap $VMEM_KIB KiB (start-up VSZ not measurable here)"
	fi
}

# run_capped CMD...: run CMD with the time limit and the address-space cap;
# stdout in $T/out, stderr in $T/err, status in $rc.
run_capped() {
	vmem_cap
	(
		if [ "$VMEM_KIB" != unlimited ]; then
			ulimit -v "$VMEM_KIB" 2>/dev/null || :
		fi
		_timeout "$TIME_LIMIT" "$@"
	) >"$T/out" 2>"$T/err"
	rc=$?
}

# _describe_status: a few words on $rc.
_describe_status() {
	if [ "$rc" -eq 124 ]; then
		echo "exit status 124: timed out after $TIME_LIMIT s (hang?)"
	elif [ "$rc" -gt 128 ]; then
		echo "exit status $rc: killed by signal $((rc - 128))"
	else
		echo "exit status $rc"
	fi
}

# _sanitizer_text FILE: does FILE hold a sanitizer or UBSan report?
_sanitizer_text() {
	grep -E 'Sanitizer|runtime error' "$1" >/dev/null 2>&1
}

# check_error DESC CMD...
# check_error_msg DESC TEXT CMD...
#	Run CMD (capped: time and address space) and expect the contract for
#	bad input: exit status 1 (so no signal, no timeout), nothing on stdout,
#	and exactly one line on stderr of the form "lathe: WHAT: reason", with
#	no sanitizer report.  check_error_msg also wants the fixed string TEXT
#	in that line.  One TAP line either way; diagnostics on failure.
check_error() {
	_ce_desc=$1
	shift
	_check_error "$_ce_desc" "" "$@"
}

check_error_msg() {
	_ce_desc=$1
	_ce_text=$2
	shift 2
	_check_error "$_ce_desc" "$_ce_text" "$@"
}

_check_error() {
	_ce_desc=$1
	_ce_text=$2
	shift 2
	run_capped "$@"
	_ce_why=
	_ce_lines=$(awk 'END { print NR }' "$T/err")
	_ce_nl=$(wc -l <"$T/err" | tr -d ' ')
	if [ "$rc" -ne 1 ]; then
		_ce_why="$(_describe_status), want 1"
	elif [ -s "$T/out" ]; then
		_ce_why="stdout not empty ($(wc -c <"$T/out" | tr -d ' ') bytes)"
	elif _sanitizer_text "$T/err"; then
		_ce_why="sanitizer report on stderr"
	elif [ "$_ce_lines" -ne 1 ] || [ "$_ce_nl" -ne 1 ]; then
		_ce_why="stderr has $_ce_lines lines ($_ce_nl newlines), want exactly one line"
	elif ! grep -E '^lathe: .+: .+' "$T/err" >/dev/null; then
		_ce_why="stderr is not 'lathe: WHAT: reason'"
	elif [ -n "$_ce_text" ] && ! grep -F -e "$_ce_text" "$T/err" >/dev/null; then
		_ce_why="message lacks '$_ce_text'"
	fi
	if [ -z "$_ce_why" ]; then
		ok "$_ce_desc"
	else
		not_ok "$_ce_desc" "command: $*" "$_ce_why; stderr:"
		diag_file "$T/err"
		if [ -s "$T/out" ]; then
			diag "stdout:"
			diag_file "$T/out" 5
		fi
	fi
}

# check_usage DESC CMD...: a usage error: exit status 2, nothing on stdout,
# a message on stderr starting with "lathe: " or "usage: ", no sanitizer
# report, no signal, no hang.
check_usage() {
	_cu_desc=$1
	shift
	run_capped "$@"
	_cu_why=
	if [ "$rc" -ne 2 ]; then
		_cu_why="$(_describe_status), want 2"
	elif [ -s "$T/out" ]; then
		_cu_why="stdout not empty"
	elif [ ! -s "$T/err" ]; then
		_cu_why="stderr empty"
	elif _sanitizer_text "$T/err"; then
		_cu_why="sanitizer report on stderr"
	elif ! head -n 1 "$T/err" | grep -E '^(lathe: |usage: )' >/dev/null; then
		_cu_why="stderr does not start with 'lathe: ' or 'usage: '"
	fi
	if [ -z "$_cu_why" ]; then
		ok "$_cu_desc"
	else
		not_ok "$_cu_desc" "command: $*" "$_cu_why; stderr:"
		diag_file "$T/err"
	fi
}

# ---- data and JSON ---------------------------------------------------------

SYSTEM_DATA=/usr/share/datasets/fashion-mnist

# have_system_data: is the full Fashion-MNIST installed?
have_system_data() {
	[ -r "$SYSTEM_DATA/t10k-images-idx3-ubyte.gz" ] &&
		[ -r "$SYSTEM_DATA/t10k-labels-idx1-ubyte.gz" ]
}

# slice_dir: print a directory holding the bundled 256-image slice as the
# test split (symlinks in $T; made once).
slice_dir() {
	if [ ! -d "$T/slice" ]; then
		mkdir "$T/slice" &&
			ln -s "$FIXTURES/slice-images-idx3-ubyte.gz" "$T/slice/t10k-images-idx3-ubyte.gz" &&
			ln -s "$FIXTURES/slice-labels-idx1-ubyte.gz" "$T/slice/t10k-labels-idx1-ubyte.gz"
	fi
	echo "$T/slice"
}

# json_compact FILE: FILE without blanks and newlines (blanks inside
# strings go too; fine for matching numbers, names and structure, e.g.
# {"name":"fc1.weight","dtype":"F32","shape":[300,784]).
json_compact() {
	tr -d ' \t\r\n' <"$1"
}

# json_get KEY FILE [SECTION]: the value of KEY in the top-level object of
# the JSON in FILE, or with SECTION in the object "SECTION": {...} that is a
# member of the top-level object.  Strings are printed without quotes (the
# escapes \" \\ \/ \n \t decoded), numbers, true, false and null as
# written, objects and arrays as <{> and <[>.  Fails when KEY is absent.
# Only that one level is searched, so "accuracy" in eval's per_class list
# never matches a top-level "accuracy".
json_get() {
	awk -v key="$1" -v sect="${3:-}" '
	{ s = s $0 "\n" }
	END {
		n = length(s); nt = 0
		for (i = 1; i <= n; i++) {
			c = substr(s, i, 1)
			if (c == "\"") {
				v = ""
				for (i++; i <= n && (c = substr(s, i, 1)) != "\""; i++) {
					if (c == "\\") {
						c = substr(s, ++i, 1)
						if (c == "n") c = "\n"
						else if (c == "t") c = "\t"
						else if (c == "u") c = "\\u"
					}
					v = v c
				}
				tok[++nt] = "s" v
			} else if (index("{}[]:,", c)) {
				tok[++nt] = "p" c
			} else if (!index(" \t\r\n", c)) {
				v = c
				while (i < n && !index(" \t\r\n{}[]:,\"", substr(s, i + 1, 1)))
					v = v substr(s, ++i, 1)
				tok[++nt] = "l" v
			}
		}
		if (tok[1] != "p{") exit 1
		lo = 2
		if (sect != "") {
			d = 0
			for (j = 2; j <= nt; j++) {
				t = tok[j]
				if (t == "p{" || t == "p[") d++
				else if (t == "p}" || t == "p]") d--
				else if (d == 0 && t == "s" sect && tok[j + 1] == "p:" && tok[j + 2] == "p{") break
			}
			if (j > nt) exit 1
			lo = j + 3
		}
		d = 0
		for (j = lo; j <= nt; j++) {
			t = tok[j]
			if (t == "p{" || t == "p[") d++
			else if (t == "p}" || t == "p]") { if (--d < 0) exit 1 }
			else if (d == 0 && t == "s" key && tok[j + 1] == "p:") {
				v = tok[j + 2]
				if (v ~ /^p/) print "<" substr(v, 2) ">"
				else print substr(v, 2)
				exit 0
			}
		}
		exit 1
	}' "$2"
}

# json_valid FILE: parses as JSON (with python3 when there is one; else a
# rough check that it is one object with balanced braces and brackets).
json_valid() {
	if command -v python3 >/dev/null 2>&1; then
		python3 -c 'import json, sys; json.load(sys.stdin)' <"$1" 2>/dev/null
	else
		json_compact "$1" | awk '
			{ s = s $0 }
			END {
				if (substr(s, 1, 1) != "{" || substr(s, length(s), 1) != "}") exit 1
				gsub(/\\./, "", s); gsub(/"[^"]*"/, "", s)
				for (i = 1; i <= length(s); i++) {
					c = substr(s, i, 1)
					if (c == "{" || c == "[") d++
					else if (c == "}" || c == "]") { if (--d < 0) exit 1 }
				}
				exit d != 0
			}'
	fi
}

# ---- numbers -------------------------------------------------------------

# close_rel A B TOL: |A - B| <= TOL * |B| (both must be numbers).
close_rel() {
	awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN {
		if (a !~ /^-?[0-9.eE+-]+$/ || b !~ /^-?[0-9.eE+-]+$/) exit 1
		d = a - b; if (d < 0) d = -d
		m = b < 0 ? -b : b
		exit !(d <= t * m)
	}'
}

# count_of FRACTION N: FRACTION * N rounded to a whole number.
count_of() {
	awk -v f="$1" -v n="$2" 'BEGIN { printf "%d\n", f * n + 0.5 }'
}

# nocommas "266,610": 266610
nocommas() {
	printf '%s\n' "$1" | tr -d ,
}

# ---- writing binary files ------------------------------------------------

# bytes N...: write bytes with the given decimal values to stdout.
bytes() {
	for _b; do
		printf "\\$(printf '%03o' "$_b")"
	done
}

# le64 N: N as 8 little-endian bytes.
le64() {
	bytes $(awk -v n="$1" 'BEGIN { for (i = 0; i < 8; i++) { printf "%d ", n % 256; n = int(n / 256) } }')
}

# write_safetensors FILE HEADER_JSON DATA_FILE: a safetensors file from a
# header (padded with spaces to a multiple of 8) and raw data.
write_safetensors() {
	_ws_h=$2
	while [ $(((${#_ws_h} + 8) % 8)) -ne 0 ]; do
		_ws_h="$_ws_h "
	done
	{
		le64 ${#_ws_h}
		printf '%s' "$_ws_h"
		cat "$3"
	} >"$1"
}

# header_len FILE: the safetensors header length (first 8 bytes, LE).
header_len() {
	od -An -tu1 -N8 "$1" | awk '{ for (i = NF; i >= 1; i--) n = n * 256 + $i } END { print n + 0 }'
}

# data_part FILE OUT: the tensor data of a safetensors file (after the header).
data_part() {
	_dp_n=$(header_len "$1")
	tail -c +$((_dp_n + 9)) "$1" >"$2"
}
