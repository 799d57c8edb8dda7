#!/bin/sh
# lathe.so loads into a stock lua5.4 through require "lathe": the same
# API, and the pure-Lua helpers from lua/ on package.path.
case $0 in */*) here=${0%/*} ;; *) here=. ;; esac
. "$here/lib.sh"

LUA=$(command -v lua5.4 || true)
SO=$TOP_BUILDDIR/lathe.so
[ -n "$LUA" ] || skip_all "no lua5.4 interpreter (apt-get install lua5.4)"
[ -r "$SO" ] || skip_all "$SO not built"
# An ASan-instrumented module cannot load into the uninstrumented interpreter.
[ "${LATHE_SANITIZED:-0}" = 1 ] && skip_all "sanitizer build: lua5.4 is not instrumented"
# A directory holding only lathe.so, so cpath finds nothing else.
mkdir "$T/cpath"
ln -s "$SO" "$T/cpath/lathe.so"
export LUA_CPATH="$T/cpath/?.so;;"
export LUA_PATH="$TOP_SRCDIR/lua/?.lua;;"
cd "$TOP_SRCDIR" || exit 1

run "$LUA" -e 'print(require("lathe").open("samples/lenet5.safetensors"))'
is "lua5.4: require lathe and open the sample" "$(cat "$T/out")" \
	"Model samples/lenet5.safetensors (8 tensors, 431080 parameters)"
[ "$rc" = 0 ] || diag_file "$T/err"
run "$LUA" -e '
local lathe = require "lathe"
local m = assert(lathe.open("samples/lenet300.safetensors"))
m:prune{sparsity = 0.8, layers = {"fc1"}}
local p = m:preview{limit = 500}
print(table.concat({p.images, tostring(p.sparsity > 0.7), tostring(m.dirty), #m:history()}, " "))
m:commit("x")
print(#m:history() .. " " .. require("lathe.util").bytes(1536))'
is "lua5.4: staging, preview and commit work" "$(tr '\n' ' ' <"$T/out")" "500 true true 1 2 1.50 KiB "
[ "$rc" = 0 ] || diag_file "$T/err"
run "$LUA" -e 'local lathe = require "lathe"; lathe.prune(42, {})'
is "lua5.4: errors are Lua errors" "$rc" 1
contains "lua5.4: message says what was expected" "$T/err" "expected a model, layer or tensor"
finish
