#!/bin/sh
# lathe run --sandbox: hostile recipes end with exit status 1 and one line
# "lathe: ..." naming the cause, in bounded time, with no file outside the
# allowed set touched and no OUT written; the limits (instructions, memory,
# time) and their options; a benign recipe still runs and saves OUT.
case $0 in */*) here=${0%/*} ;; *) here=. ;; esac
. "$here/lib.sh"

M=$TOP_SRCDIR/samples/lenet5.safetensors
OUT=$T/out.safetensors
SENT=$T/sentinel
printf 'sentinel\n' >"$SENT"
# Small limits keep the loops short; the defaults get one test each.
LIM="--max-instructions 20000000"

# hostile DESC ERE RECIPE-TEXT [OPTIONS...]: run the recipe sandboxed with
# -o OUT and stdin from /dev/null; want exit status 1 (no signal, no
# timeout), exactly one stderr line "lathe: ..." matching ERE, no sanitizer
# report, the sentinel unchanged, no OUT and no $T/pwned.
hostile() {
	_h_desc=$1
	_h_re=$2
	printf '%s\n' "$3" >"$T/recipe.lua"
	shift 3
	_timeout "$TIME_LIMIT" "$LATHE" run --sandbox "$T/recipe.lua" "$M" -o "$OUT" "$@" \
		</dev/null >"$T/out" 2>"$T/err"
	rc=$?
	_h_why=
	_h_lines=$(awk 'END { print NR }' "$T/err")
	if [ "$rc" -ne 1 ]; then
		_h_why="$(_describe_status), want 1"
	elif _sanitizer_text "$T/err"; then
		_h_why="sanitizer report on stderr"
	elif [ "$_h_lines" -ne 1 ]; then
		_h_why="stderr has $_h_lines lines, want one"
	elif ! grep -E '^lathe: ' "$T/err" >/dev/null; then
		_h_why="stderr does not start with 'lathe: '"
	elif ! grep -E -e "$_h_re" "$T/err" >/dev/null; then
		_h_why="the message does not match /$_h_re/"
	elif [ "$(cat "$SENT")" != sentinel ]; then
		_h_why="the sentinel file changed"
	elif [ -e "$OUT" ]; then
		_h_why="OUT was written"
	elif [ -e "$T/pwned" ]; then
		_h_why="\$T/pwned was created"
	fi
	if [ -z "$_h_why" ]; then
		ok "$_h_desc"
	else
		not_ok "$_h_desc" "$_h_why; recipe:" "$(cat "$T/recipe.lua")" "stderr:"
		diag_file "$T/err"
	fi
	rm -f "$OUT" "$T/pwned"
	printf 'sentinel\n' >"$SENT"
}

# ---- limits ----------------------------------------------------------------
hostile "endless loop" 'recipe\.lua:1: instruction limit exceeded \(20000000\)' \
	'while true do end' $LIM
hostile "endless loop inside pcall" 'instruction limit exceeded' \
	'while true do pcall(function() while true do end end) end' $LIM
hostile "a pcall that swallowed the limit" 'instruction limit exceeded' \
	'local ok = pcall(function() while true do end end)
return ok' $LIM
hostile "a looping message handler" 'instruction limit exceeded' \
	'xpcall(function() while true do end end, function() while true do end end)' $LIM
hostile "__close of a coroutine the limit stopped" 'instruction limit exceeded' \
	'local co = coroutine.create(function()
  local x <close> = setmetatable({}, {__close = function() while true do end end})
  while true do end
end)
coroutine.resume(co)
coroutine.close(co)' $LIM
hostile "table.move over 2^40 elements (one C call)" 'instruction limit exceeded' \
	'table.move({}, 1, 2^40, 2)' $LIM
hostile "a backtracking string pattern" 'pattern too complex' \
	"return string.find(string.rep('a', 5000), '.-.-.-.-b')"
hostile "string.rep('x', 2^40)" 'resulting string too large' \
	"local s = string.rep('x', 2^40)"
hostile "string.rep('x', 2^30) against --max-memory 64" 'memory limit exceeded \(64 MiB\)' \
	"local s = string.rep('x', 2^30)" --max-memory 64
hostile "many tensors outside the Lua heap" 'lathe\.zeros: memory limit exceeded' \
	'local t = {} for i = 1, 1500 do t[i] = lathe.zeros{1000, 1000} end' --max-memory 64
hostile "many clones of a model tensor" 'clone: memory limit exceeded' \
	'local t = {} for i = 1, 1500 do t[i] = model.fc1.weight:clone() end' --max-memory 64
hostile "growing a table until memory runs out" 'memory limit exceeded \(64 MiB\)' \
	'local t = {} while true do t[#t + 1] = {} end' --max-memory 64
hostile "unbounded recursion" 'stack overflow|memory limit exceeded' \
	'local function f() return 1 + f() end f()'
hostile "deep coroutine recursion" 'C stack overflow' \
	'local function f()
  local co = coroutine.create(f)
  local ok, e = coroutine.resume(co)
  error(e, 0)
end
f()'
hostile "deep coroutine.wrap recursion" 'stack overflow' \
	'local function f() return coroutine.wrap(f)() end f()'

t0=$(date +%s)
hostile "--timeout 1 stops a loop" 'time limit exceeded \(1 s\)' 'while true do end' --timeout 1
t1=$(date +%s)
if [ $((t1 - t0)) -le 10 ]; then
	ok "--timeout 1 took $((t1 - t0)) s"
else
	not_ok "--timeout 1 took $((t1 - t0)) s"
fi

# The defaults: 2e9 instructions (about 10 s here) and 512 MiB.
printf 'while true do end\n' >"$T/loop.lua"
_timeout "$SLOW_LIMIT" "$LATHE" run --sandbox "$T/loop.lua" "$M" </dev/null >"$T/out" 2>"$T/err"
rc=$?
if [ "$rc" -eq 1 ] && grep -F 'instruction limit exceeded (2000000000)' "$T/err" >/dev/null; then
	ok "the default instruction limit"
else
	not_ok "the default instruction limit" "$(_describe_status)"
	diag_file "$T/err"
fi
hostile "the default memory limit" 'memory limit exceeded \(512 MiB\)' \
	"local t = {} for i = 1, 1e6 do t[i] = string.rep('x', 2^20 + i) end"

# ---- escapes ---------------------------------------------------------------
hostile "os.execute" 'os\.execute is not available in the sandbox' \
	"os.execute('touch $T/pwned')"
hostile "io.popen" 'io\.popen is not available in the sandbox' \
	"io.popen('touch $T/pwned')"
hostile "os.remove" 'os\.remove is not available' "os.remove('$SENT')"
hostile "os.getenv" 'os\.getenv is not available' "return os.getenv('HOME')"
hostile "io.open('/etc/passwd')" 'io\.open: /etc/passwd: reading is not allowed in the sandbox' \
	"local f = io.open('/etc/passwd') print(f:read('a'))"
hostile "dofile('/etc/passwd')" 'reading is not allowed' "dofile('/etc/passwd')"
hostile "writing a file outside the allowed set" 'writing is not allowed in the sandbox' \
	"local f = io.open('$SENT', 'w') f:write('pwned') f:close()"
hostile "appending through ../" 'writing is not allowed in the sandbox' \
	"local f = io.open('$T/../${T##*/}/sentinel', 'a') f:write('pwned') f:close()"
hostile "io.output to another file" 'writing is not allowed in the sandbox' \
	"io.output('$T/pwned') io.write('x')"
hostile "model:save outside the allowed set" 'not allowed in the sandbox' \
	"model:save('$T/pwned')"
ln -s "$SENT" "$T/link"
hostile "reading through a symlink to another file" 'reading is not allowed in the sandbox' \
	"print(io.open('$T/link'):read('a'))"
rm -f "$T/link"
hostile "load(string.dump(f))" 'string\.dump is not available in the sandbox' \
	'local function f() end
load(string.dump(f))()'
hostile "a binary chunk in a string" 'binary chunks are not allowed' \
	"load('\\27Lua\\x54\\0\\x19\\x93\\r\\n\\x1a\\n')()"
hostile "require 'os' gives the restricted os" 'os\.execute is not available' \
	"require('os').execute('touch $T/pwned')"
hostile "package.loadlib" 'package\.loadlib is not available' \
	"package.loadlib('libc.so.6', '*')"
hostile "a C module" "module 'lpeg' not found" \
	"package.cpath = '/usr/lib/x86_64-linux-gnu/lua/5.4/?.so' require 'lpeg'"
hostile "no debug library" "global 'debug'" 'debug.sethook()'
hostile "a __gc finalizer loop" 'finalizers \(__gc\) are not allowed in the sandbox' \
	'setmetatable({}, {__gc = function() while true do end end})'
hostile "replacing the model's finalizer" 'read-only in the sandbox' \
	'getmetatable(model).__gc = function() while true do end end'

# ---- a benign recipe --------------------------------------------------------
cat >"$T/benign.lua" <<EOF
local n = 0
for w in ("prune quantize share"):gmatch("%a+") do n = n + 1 end
local t = {} for i = 1, 100 do table.insert(t, (i * 37) % 101) end
table.sort(t)
local co = coroutine.wrap(function() coroutine.yield(t[1]) end)
local f = assert(io.open("$T/benign.lua")) local src = f:read("a") f:close()
local m = assert(io.open("$M", "rb")) local head = m:read(8) m:close()
assert(#src > 0 and #head == 8 and pcall(error, "x") == false)
print("benign", n, co(), type(model), type(lathe))
EOF
_timeout "$TIME_LIMIT" "$LATHE" run --sandbox "$T/benign.lua" "$M" -o "$OUT" </dev/null >"$T/out" 2>"$T/err"
rc=$?
# (stderr may say where OUT was saved, but must not report an error)
if [ "$rc" -eq 0 ] && ! grep -E '^lathe: |Sanitizer|runtime error' "$T/err" >/dev/null; then
	ok "a benign recipe runs in the sandbox"
else
	not_ok "a benign recipe runs in the sandbox" "$(_describe_status); stderr:"
	diag_file "$T/err"
fi
if grep -E '^benign	3	1	userdata	table$' "$T/out" >/dev/null; then
	ok "it reads its own file and the model, and prints"
else
	not_ok "it reads its own file and the model, and prints" "stdout:"
	diag_file "$T/out"
fi
if [ -s "$OUT" ]; then
	ok "it may write OUT"
else
	not_ok "it may write OUT"
fi
is "the sentinel is untouched" "$(cat "$SENT")" sentinel

finish
