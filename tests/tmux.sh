# tmux helpers shared by the tests that drive lathe on a terminal
# (cli_repl.sh, tui.sh). Sourced after lib.sh, once tmux is known to exist.
# Each test script starts its sessions with its own start function, which
# sets SOCK (a socket per session) and runs a session named t.

# A socket per session: a new server on the socket of one that is still
# shutting down fails to start.
SOCK=
nsock=0
trap 'tmux -L "$SOCK" kill-server >/dev/null 2>&1; rm -rf "$T"' EXIT
unset TMUX
# The servers' sockets go under $T, removed at exit.
TMUX_TMPDIR=$T
export TMUX_TMPDIR
TICKS=$((TIME_LIMIT * 10))

pause() {
	sleep 0.1 2>/dev/null || sleep 1
}

# screen: the pane (with its scrollback) on stdout.
screen() {
	tmux -L "$SOCK" capture-pane -p -S - -t t 2>/dev/null
}

# wait_for ERE [SOURCE]: poll until a line of SOURCE's output (a command;
# default screen, the whole pane) matches, keeping the last output in
# $T/SOURCE (time limit $TIME_LIMIT).
wait_for() {
	_wf_src=${2:-screen}
	_wf_i=0
	while [ $_wf_i -lt $TICKS ]; do
		$_wf_src >"$T/$_wf_src"
		grep -E -e "$1" "$T/$_wf_src" >/dev/null && return 0
		pause
		_wf_i=$((_wf_i + 1))
	done
	return 1
}

# keys TEXT: type TEXT literally.  press KEY...: tmux key names.
keys() {
	tmux -L "$SOCK" send-keys -t t -l "$1"
}
press() {
	tmux -L "$SOCK" send-keys -t t "$@"
}

# click X Y: press and release mouse button 1 at column X, row Y (from 0),
# as an xterm reports it (X10 encoding, which kmous names for tmux's TERM).
_chr() {
	printf "\\$(printf '%03o' "$1")"
}
click() {
	tmux -L "$SOCK" send-keys -t t -l "$(printf '\033[M ')$(_chr $((33 + $1)))$(_chr $((33 + $2)))"
	tmux -L "$SOCK" send-keys -t t -l "$(printf '\033[M#')$(_chr $((33 + $1)))$(_chr $((33 + $2)))"
}

# expect DESC ERE: one TAP line for wait_for.
expect() {
	if wait_for "$2"; then
		ok "$1"
	else
		not_ok "$1" "no line matching '$2' on the screen:"
		diag_file "$T/screen" 40
	fi
}

# no_sanitizer DESC: no sanitizer report on the screen.
no_sanitizer() {
	screen >"$T/screen"
	if grep -E 'Sanitizer|runtime error' "$T/screen" >/dev/null; then
		not_ok "$1" "screen:"
		diag_file "$T/screen" 40
	else
		ok "$1"
	fi
}

