#!/bin/sh
# lathe lua: script mode (the arg table and `...`, exit status, one-line
# errors with SCRIPT:LINE, syntax errors, binary chunks refused, -e, -m,
# -i, options), the prompt fed through a pipe (expressions printed,
# multi-line chunks, errors with the input line, going on after an error,
# exit status), and the readline prompt driven in tmux (printing, the ">> "
# continuation prompt, Tab completion of globals and fields, Ctrl-C,
# Ctrl-D, the history file and recalling a multi-line entry in a new
# session).

case $0 in */*) here=${0%/*} ;; *) here=. ;; esac
. "$here/lib.sh"

F=$FIXTURES

# ---- script mode ----
cat >"$T/args.lua" <<'EOF'
print(select('#', ...), ...)
print(arg[0], arg[1], arg[2], arg[-1], arg[-2], arg[-3], #arg)
EOF
check_run "script: runs, exit 0" "$LATHE" lua "$T/args.lua" a "b c"
is "script: ... holds ARGS" "$(sed -n 1p "$T/out")" "$(printf '2\ta\tb c')"
is "script: arg[0] is SCRIPT, arg[1..] ARGS, interpreter words below 0" \
	"$(sed -n 2p "$T/out")" "$(printf '%s\ta\tb c\tlua\tlathe\tnil\t2' "$T/args.lua")"

check_run "script: options before SCRIPT are negative indices" \
	"$LATHE" lua -e 'x = 1' "$T/args.lua" q
is "script: arg[-1], arg[-2] are the -e option" "$(sed -n 2p "$T/out")" \
	"$(printf '%s\tq\tnil\tx = 1\t-e\tlua\t1' "$T/args.lua")"

run sh -c 'printf "print(...)\n" | "$LATHE" lua - x y'
is "script '-' reads stdin, ARGS as ..." "$rc $(cat "$T/out")" "$(printf '0 x\ty')"

printf 'os.exit(3)\n' >"$T/exit3.lua"
run "$LATHE" lua "$T/exit3.lua"
is "script: os.exit(3) exits 3" "$rc" 3

cd "$T" || exit 1
printf 'local x = 1\nerror("boom")\n' >err.lua
check_error_msg "runtime error: one line 'lathe: SCRIPT:LINE: message', exit 1" \
	"lathe: err.lua:2: boom" "$LATHE" lua err.lua
run env LATHE_TRACEBACK=1 "$LATHE" lua err.lua
if [ "$rc" -eq 1 ] && [ "$(sed -n 1p "$T/err")" = "lathe: err.lua:2: boom" ] &&
	sed -n 2p "$T/err" | grep -F 'stack traceback:' >/dev/null &&
	grep -F 'err.lua:2: in main chunk' "$T/err" >/dev/null; then
	ok "LATHE_TRACEBACK=1: the traceback follows the one-line message"
else
	not_ok "LATHE_TRACEBACK=1: the traceback follows the one-line message" "exit status $rc; stderr:"
	diag_file "$T/err"
fi
printf 'local t = {}\nlocal function f()\n  return t.x.y\nend\nf()\n' >nil.lua
check_error_msg "runtime error inside a function: its line" "lathe: nil.lua:3: attempt to index" \
	"$LATHE" lua nil.lua
printf 'error("multi\\nline")\n' >ml.lua
check_error_msg "error message with a newline: still one line" "lathe: ml.lua:1: multi line" \
	"$LATHE" lua ml.lua
printf 'error("plain", 0)\n' >pos.lua
check_error_msg "error without a position: still names SCRIPT" "lathe: pos.lua" \
	"$LATHE" lua pos.lua
printf 'x = = 1\n' >syn.lua
check_error_msg "syntax error: 'lathe: SCRIPT:LINE: message'" "lathe: syn.lua:1: unexpected symbol" \
	"$LATHE" lua syn.lua
printf 'local a = 1\nif a then\n' >eof.lua
check_error_msg "syntax error at end of file" "lathe: eof.lua:3: 'end' expected" \
	"$LATHE" lua eof.lua
run "$LATHE" lua -e 'local f = io.open("bin.luac", "wb") f:write(string.dump(load("return 1"))) f:close()'
if [ "$rc" -eq 0 ] && [ -s bin.luac ]; then
	check_error_msg "binary chunk refused" "binary chunk" "$LATHE" lua bin.luac
else
	not_ok "binary chunk refused" "could not write bin.luac (exit status $rc)"
	diag_file "$T/err"
fi
check_error_msg "missing script: 'lathe: SCRIPT: reason'" "lathe: nosuch.lua: No such file" \
	"$LATHE" lua nosuch.lua
run sh -c 'printf "error(\"in stdin\")\n" | "$LATHE" lua -'
is "script from stdin: error names stdin" "$rc $(cat "$T/err")" "1 lathe: stdin:1: in stdin"
cd - >/dev/null || exit 1

# ---- -e, -i, -m, options ----
run sh -c 'echo "print(\"from stdin\")" | "$LATHE" lua -e "print(6 * 7)"'
is "-e runs the statement and exits; no prompt without -i" "$rc $(cat "$T/out")" "0 42"
check_run "-e twice, in order" "$LATHE" lua -e 'x = 2' -e 'print(x * 3)'
is "-e twice: output" "$(cat "$T/out")" 6
check_error_msg "-e error: '(command line):1:'" "lathe: (command line):1: oops" \
	"$LATHE" lua -e 'error("oops")'
run sh -c 'printf "x * 2\n" | "$LATHE" lua -i -e "x = 21"'
is "-i: the prompt after -e (piped)" "$rc $(cat "$T/out")" "0 42"
printf 'y = 5\n' >"$T/set.lua"
run sh -c 'printf "y + 1\n" | "$LATHE" lua -i "$1"' sh "$T/set.lua"
is "-i: the prompt after SCRIPT" "$rc $(cat "$T/out")" "0 6"
run sh -c 'printf "print(1)\n" | "$LATHE" lua -i "$1"' sh "$T/err.lua"
is "-i: no prompt when SCRIPT fails" "$rc $(cat "$T/out")" "1 "

check_error_msg "-m MODEL that does not exist: 'lathe: MODEL: message'" \
	"lathe: $T/nosuch.safetensors: " "$LATHE" lua -m "$T/nosuch.safetensors" -e 'print(1)'
run "$LATHE" lua -m "$F/mlp.safetensors" -e 'print(model ~= nil)'
is "-m MODEL: model = lathe.open(MODEL) before -e" "$rc $(cat "$T/out")" "0 true"

run "$LATHE" lua --help
if [ "$rc" -eq 0 ] && grep -F 'usage: lathe lua' "$T/out" >/dev/null && [ ! -s "$T/err" ]; then
	ok "--help: usage on stdout, exit 0"
else
	not_ok "--help: usage on stdout, exit 0" "exit status $rc"
fi
check_usage "unknown option" "$LATHE" lua --bogus
check_usage "-e without a value" "$LATHE" lua -e
check_usage "-m without a value" "$LATHE" lua -m
check_usage "--data without a value" "$LATHE" lua --data
check_run "-- ends options" "$LATHE" lua -- "$T/args.lua" -x
is "-- ends options: -x is an argument" "$(sed -n 1p "$T/out")" "$(printf '1\t-x')"

# ---- the prompt, piped ----
cat >"$T/session.lua" <<'EOF'
1 + 1
x = 3
x, x * 2
function f(a)
  local b = a * 10
  return b
end
f(4)
error("bad")
print("after")
local t = {
  1,
EOF
printf '  2}\nfunction g()\n  error("in g")\nend\n' >>"$T/session.lua"
printf 'g()\nreturn = 1\n"still here"\n' >>"$T/session.lua"
run sh -c '"$LATHE" lua <"$1"' sh "$T/session.lua"
printf '2\n3\t6\n40\nafter\n' >"$T/want"
if [ "$(sed -n 1,4p "$T/out")" = "$(cat "$T/want")" ]; then
	ok "piped: expressions print without return; statements print nothing; multi-line function"
else
	not_ok "piped: expressions print without return; statements print nothing; multi-line function" \
		"stdout:"
	diag_file "$T/out"
fi
case $(sed -n 5p "$T/out") in
*still\ here*) ok "piped: goes on after errors" ;;
*) not_ok "piped: goes on after errors" "stdout:"; diag_file "$T/out" ;;
esac
is "piped: exit status 1 when a statement failed" "$rc" 1
is "piped: runtime error as 'lathe: stdin:LINE: message'" "$(sed -n 1p "$T/err")" "lathe: stdin:9: bad"
is "piped: error in a function defined earlier: its input line" \
	"$(sed -n 2p "$T/err")" "lathe: stdin:15: in g"
case $(sed -n 3p "$T/err") in
"lathe: stdin:18: "*) ok "piped: syntax error with its input line" ;;
*) not_ok "piped: syntax error with its input line" "stderr:"; diag_file "$T/err" ;;
esac
is "piped: one line per error" "$(awk 'END { print NR }' "$T/err")" 3

run sh -c 'printf "x = 1\nx + 1\nfor i = 1, 2 do\n  print(i)\nend\n" | "$LATHE" lua'
if [ "$rc" -eq 0 ] && [ ! -s "$T/err" ] && [ "$(cat "$T/out")" = "$(printf '2\n1\n2')" ]; then
	ok "piped: exit 0 when every statement ran"
else
	not_ok "piped: exit 0 when every statement ran" "exit status $rc; stdout:"
	diag_file "$T/out"
	diag_file "$T/err"
fi
run sh -c 'printf "print(1)\nfunction h()\n" | "$LATHE" lua'
is "piped: incomplete chunk at end of input is an error" "$rc $(cat "$T/err")" \
	"1 lathe: stdin:2: 'end' expected near <eof>"
run sh -c 'printf "print(1)\n" | env XDG_STATE_HOME="$1/st" "$LATHE" lua' sh "$T"
if [ -e "$T/st" ]; then
	not_ok "piped: no history file"
else
	ok "piped: no history file"
fi

run sh -c 'printf "local x = 1\nerror(\"tb\")\n" | LATHE_TRACEBACK=1 "$LATHE" lua'
if [ "$(sed -n 1p "$T/err")" = "lathe: stdin:2: tb" ] && sed -n 2p "$T/err" | grep -F 'stack traceback:' >/dev/null; then
	ok "piped: LATHE_TRACEBACK=1 adds the traceback"
else
	not_ok "piped: LATHE_TRACEBACK=1 adds the traceback" "stderr:"
	diag_file "$T/err"
fi

check_run "--sandbox: -e runs" "$LATHE" lua --sandbox -e 'print(1 + 1)'
is "--sandbox: -e output" "$(cat "$T/out")" 2
run sh -c 'printf "2 * 3\n" | "$LATHE" lua --sandbox'
is "--sandbox: the piped prompt" "$rc $(cat "$T/out")" "0 6"

# ---- the readline prompt in tmux ----
if ! command -v tmux >/dev/null 2>&1; then
	skip "readline prompt in tmux" "tmux not installed"
	finish
fi

. "$here/tmux.sh"

# wait_prompt [PROMPT]: poll until the last non-empty line of the pane is
# the prompt ">" (or PROMPT), i.e. readline waits for input.  Keys typed
# before that may meet the terminal in its normal mode (echoed twice, or a
# Ctrl-D lost).
wait_prompt() {
	_wp_i=0
	while [ $_wp_i -lt $TICKS ]; do
		screen >"$T/screen"
		[ "$(awk 'NF { l = $0 } END { sub(/ +$/, "", l); print l }' "$T/screen")" = "${1:->}" ] &&
			return 0
		pause
		_wp_i=$((_wp_i + 1))
	done
	return 1
}

# start STATE_DIR STDERR [ARGS...]: a new session running `lathe lua ARGS`
# on a terminal (stderr to the file STDERR unless that is empty), then
# "[exit STATUS]".  Paths must not hold single quotes.
start() {
	_st_state=$1
	_st_err=$2
	shift 2
	{
		# Ctrl-C goes to the whole foreground group: the shell must
		# live on to print the status (a trap, unlike '', is not
		# inherited as "ignored" by lathe).
		printf "trap : INT\ncd '%s' || exit 1\n" "$T"
		printf "INPUTRC=/dev/null XDG_STATE_HOME='%s' '%s' lua" "$_st_state" "$LATHE"
		for _st_a; do
			printf " '%s'" "$_st_a"
		done
		[ -n "$_st_err" ] && printf " 2>'%s'" "$_st_err"
		printf '\necho "[exit $?]"\nexec sleep 600\n'
	} >"$T/session.sh"
	[ -n "$SOCK" ] && tmux -L "$SOCK" kill-server >/dev/null 2>&1
	nsock=$((nsock + 1))
	SOCK=lathe-test-$$-$nsock
	tmux -L "$SOCK" -f /dev/null new-session -d -x 120 -y 40 -s t "sh '$T/session.sh'"
}

# expect_prompt DESC [PROMPT]: one TAP line for wait_prompt.
expect_prompt() {
	if wait_prompt "${2:->}"; then
		ok "$1"
	else
		not_ok "$1" "the last line is not '${2:->}':"
		diag_file "$T/screen" 40
	fi
}

start "$T/state" ""
expect_prompt "tty: prompt '> '"
keys '1+2'
press Enter
expect "tty: expression printed" '^3$'
wait_prompt
keys 'function f(a)'
press Enter
expect_prompt "tty: continuation prompt '>> '" '>>'
keys 'return a*2'
press Enter
wait_prompt '>>'
keys 'end'
press Enter
wait_prompt
keys 'f(21)'
press Enter
expect "tty: multi-line function defined and called" '^42$'
wait_prompt

keys 'stri'
press Tab
expect "tty: Tab completes a global (stri -> string)" '^> string$'
keys '.up'
press Tab
expect "tty: Tab completes a table field (string.up -> string.upper)" '^> string\.upper$'
keys '("ab")'
press Enter
expect "tty: completed call runs" 'AB'
wait_prompt
keys 'string.re'
press Tab Tab
expect "tty: Tab Tab lists fields (string.re: rep, reverse)" '^rep +reverse'
wait_prompt '> string.re'
press C-u
wait_prompt
keys 'abc'
wait_prompt '> abc'
press C-c
expect "tty: Ctrl-C at the prompt clears the line" '^> abc\^C$'
wait_prompt
keys 'print("spin") while true do end'
press Enter
wait_for '^spin$'
press C-c
expect "tty: Ctrl-C interrupts a running statement" 'interrupted$'
expect_prompt "tty: the prompt comes back after Ctrl-C"
keys 'for i = 1, 2 do'
press Enter
wait_prompt '>>'
press C-c
expect_prompt "tty: Ctrl-C at '>> ' goes back to '> '"
keys '"fresh"'
press Enter
expect "tty: Ctrl-C at '>> ' dropped the pending chunk" '^"?fresh"?$'
wait_prompt
keys '7*7'
press Enter
expect "tty: the prompt goes on" '^49$'
wait_prompt
press C-d
expect "tty: Ctrl-D on an empty line exits 0" '^\[exit 0\]$'
no_sanitizer "tty: no sanitizer report"

H=$T/state/lathe/history
if [ -f "$H" ] && grep -x -F '7*7' "$H" >/dev/null && grep -x -F 'return a*2' "$H" >/dev/null &&
	! grep -F 'abc' "$H" >/dev/null; then
	ok "tty: history written to \$XDG_STATE_HOME/lathe/history (not cancelled lines)"
else
	not_ok "tty: history written to \$XDG_STATE_HOME/lathe/history (not cancelled lines)" "file:"
	diag_file "$H" 30
fi
is "tty: history directory mode 700, file 600" \
	"$(stat -c %a "$T/state/lathe" 2>/dev/null) $(stat -c %a "$H" 2>/dev/null)" "700 600"

# A new session: Up recalls the last entry; five more Ups the function
# (one entry of three lines).
start "$T/state" ""
wait_prompt
press Up
expect "tty: Up recalls history from the previous session" '^> 7\*7$'
press Up Up Up Up Up
expect "tty: a multi-line chunk comes back as one entry" '^> function f\(a\)$'
press Enter
wait_prompt
keys 'f(5)'
press Enter
expect "tty: the recalled chunk runs" '^10$'
wait_prompt
press C-d
wait_for '^\[exit 0\]$'
no_sanitizer "tty: second session: no sanitizer report"

# Completion of the lathe userdata: methods (__methods) and fields (__fields).
start "$T/state" "" -m "$F/mlp.safetensors"
wait_prompt
keys 'model:pru'
press Tab
expect "tty: Tab completes a model method (model:pru -> model:prune)" '^> model:prune$'
press C-u
wait_prompt
keys 'model.pat'
press Tab
expect "tty: Tab completes a model field (model.pat -> model.path)" '^> model\.path$'
press Enter
expect "tty: the completed field reads" 'mlp\.safetensors'
wait_prompt
# Layer names (the model's __names) and fields through them.
keys 'model.fc'
press Tab
press Tab
expect "tty: Tab Tab lists the layers (model.fc: fc1 fc2 ...)" 'fc1 +fc2'
press C-u
wait_prompt
keys 'model.fc1.w'
press Tab
expect "tty: Tab completes through a layer (model.fc1.w -> model.fc1.weight)" '^> model\.fc1\.weight$'
press C-u
wait_prompt
press C-d
wait_for '^\[exit 0\]$'
no_sanitizer "tty: model session: no sanitizer report"

# Ctrl-C stops a script: one-line error, exit 1.
printf 'print("spin")\nwhile true do end\n' >"$T/spin.lua"
start "$T/state" "" spin.lua
wait_for '^spin$'
press C-c
expect "tty: Ctrl-C interrupts a script with a one-line error" '^lathe: spin\.lua.*interrupted$'
expect "tty: an interrupted script exits 1" '^\[exit 1\]$'

# A history file that cannot be written: one warning line, exit 0.
: >"$T/notadir"
start "$T/notadir" "$T/hist.err"
wait_prompt
keys '1'
press Enter
wait_for '^1$'
wait_prompt
press C-d
expect "tty: unwritable history still exits 0" '^\[exit 0\]$'
if [ "$(awk 'END { print NR }' "$T/hist.err")" = 1 ] &&
	grep -E '^lathe: warning: .*history' "$T/hist.err" >/dev/null; then
	ok "tty: unwritable history is a one-line warning"
else
	not_ok "tty: unwritable history is a one-line warning" "stderr:"
	diag_file "$T/hist.err"
fi

tmux -L "$SOCK" kill-server >/dev/null 2>&1
finish
