#!/bin/sh
# The workbench TUI (`lathe MODEL`) driven in tmux on the bundled lenet5:
# layer names and shapes, histogram, heatmap and spectrum drawn, the status
# line's accuracy equal to `lathe eval` on the validation split, a prune
# staged from the REPL changing the table and status line and a rollback
# restoring them, commit, the help overlay, an SVG export, 80x24 after a
# resize, NO_COLOR, the ASCII fallback outside UTF-8, quitting (asked when
# changes are staged); and without a terminal, the message pointing to
# `lathe run`.

case $0 in */*) here=${0%/*} ;; *) here=. ;; esac
. "$here/lib.sh"

MODEL=$TOP_SRCDIR/samples/lenet5.safetensors
DATA=$TOP_SRCDIR/samples/data

# ---- no terminal ----
run "$LATHE" "$MODEL"
if [ "$rc" = 2 ] && grep -F "lathe run" "$T/err" >/dev/null && [ "$(wc -l <"$T/err")" = 1 ]; then
	ok "no terminal: exit 2, one line pointing to 'lathe run'"
else
	not_ok "no terminal: exit 2, one line pointing to 'lathe run'" "exit $rc; stderr:"
	diag_file "$T/err"
fi
run env TERM=dumb "$LATHE" "$MODEL"
is "TERM=dumb: exit 2" "$rc" 2
check_usage "unknown option" "$LATHE" --frobnicate "$MODEL"
check_error_msg "a model that does not open: one line, exit 1" "lathe:" "$LATHE" --data "$DATA" "$T/none.safetensors"

if ! command -v tmux >/dev/null 2>&1; then
	skip "the TUI in tmux" "tmux not installed"
	finish
fi
. "$here/tmux.sh"

# start W H [ENV...]: a new session running `lathe --data DATA MODEL` at
# W x H, then "[exit STATUS]".
start() {
	_w=$1 _h=$2
	shift 2
	{
		# Ctrl-C goes to the whole foreground group: the shell must live
		# on to print the status.
		printf "trap : INT\ncd '%s' || exit 1\n" "$T"
		printf "env XDG_STATE_HOME='%s/state' INPUTRC=/dev/null" "$T"
		for _e; do
			printf " '%s'" "$_e"
		done
		printf " '%s' --data '%s' '%s' 2>'%s/stderr'\n" "$LATHE" "$DATA" "$MODEL" "$T"
		printf 'echo "[exit $?]"\nexec sleep 600\n'
	} >"$T/session.sh"
	[ -n "$SOCK" ] && tmux -L "$SOCK" kill-server >/dev/null 2>&1
	nsock=$((nsock + 1))
	SOCK=lathe-tui-$$-$nsock
	tmux -L "$SOCK" -f /dev/null new-session -d -x "$_w" -y "$_h" -s t "sh '$T/session.sh'"
}

# status: the last line of the screen.
status() {
	screen | awk 'NF { l = $0 } END { print l }'
}

# wait_status ERE: poll until the status line matches (kept in $T/status).
wait_status() {
	wait_for "$1" status
}

expect_status() {
	if wait_status "$2"; then
		ok "$1"
	else
		not_ok "$1" "status line: $(cat "$T/status")"
		screen >"$T/screen"
		diag_file "$T/screen" 40
	fi
}

# The accuracy the status line must show: lathe eval on the same split.
want=$("$LATHE" eval "$MODEL" --data "$DATA" --split val --json |
	sed -n 's/.*"top1": *\([0-9.]*\).*/\1/p' | head -n 1)
want=$(LC_ALL=C awk -v a="$want" 'BEGIN { printf "%.2f%%", 100 * a }')

start 120 40 LANG=C.UTF-8 LC_ALL=C.UTF-8
expect "layer table: names and shapes" 'conv2\.weight +conv2d +\[50x20x5x5\]'
expect "layer table: fc1 row" 'fc1\.weight +linear +\[500x800\] +400000'
expect_status "status line: accuracy equals lathe eval --split val ($want)" "acc $want \\|"
expect "histogram drawn (bars and axis)" 'Histogram conv1\.weight.*'
screen >"$T/screen"
if grep -E '│[ ▁▂▃▄▅▆▇█]*█[ ▁▂▃▄▅▆▇█]*│' "$T/screen" >/dev/null; then
	ok "histogram: bars on screen"
else
	not_ok "histogram: bars on screen" "screen:"
	diag_file "$T/screen" 40
fi
press j j
expect "spectrum of conv2.weight drawn (ranks at 90/95/99 % energy)" 'r90/95/99 [0-9]+/[0-9]+/[0-9]+'
expect "heatmap of conv2.weight drawn (view and cells)" '\[50x500\] cells [0-9]+x[0-9]+'
expect "title names the selected tensor" 'selected: conv2\.weight'

# mouse: a click on a row selects its layer; a click on a pane focuses it
click 5 7
expect "mouse: a click on the fc1.weight row selects it" 'selected: fc1\.weight'
click 110 18
expect "mouse: a click on the spectrum focuses it" '\[Singular values fc1\.weight'
click 5 5
expect "mouse: a click on the table focuses it and selects conv2.weight" 'selected: conv2\.weight'
expect "mouse: the table has the focus again" '\[Layers'

# heatmap: zoom, then pan a quarter of the view per key
press Tab Tab
pause
press +
pause
press Right
# at zoom 1x the grid is the view and cannot pan: an offset shows both
expect "heatmap: zoom, then pan by a quarter of the view" 'cells [0-9]+x[0-9]+ at ([2-9]|[1-9][0-9]+),0'
press -
press BTab BTab
pause

# stage a prune from the REPL
press :
pause
press C-u
keys 'model:prune{sparsity=0.9}'
press Enter
expect_status "staged prune: status starts with STAGED" '^ STAGED \|'
expect_status "staged prune: committed -> staged accuracy with its change" "acc $want → [0-9.]+% \\(-[0-9.]+\\)"
expect_status "staged prune: size -> staged size (ratio)" 'size [0-9.]+ [KM]iB → [0-9.]+ [KM]iB \([0-9.]+x\)'
expect "table: % zeros of conv2.weight is 90.0" 'conv2\.weight +conv2d +\[50x20x5x5\] +25000 +90\.0'
expect "REPL: the result of the statement is shown" 'zeros = '
# a second change to a tensor the stage already owns (written in place)
keys 'model:prune{sparsity=0.95}'
press Enter
expect "table follows a second prune of the same stage (95.0 % zeros)" 'conv2\.weight +conv2d +\[50x20x5x5\] +25000 +95\.0'
# weight sharing: the status line has the size of the packed file (95 %
# pruned and 4-bit codes: far below 200 KiB)
keys 'model:share{bits = 4}'
press Enter
expect_status "status: the packed size of the shared model" 'size 1\.6[0-9] MiB → [0-9]{2,3}\.[0-9]+ KiB \([0-9.]+x\)'

# back to the panes, roll back (asked first)
press Escape
sleep 0.3
press r
expect_status "rollback asks first" 'Roll back'
press y
expect_status "rollback restores the status line" "^ clean \\| acc $want \\| size [0-9.]+ MiB \\(1\\.00x\\) \\| sparsity 0\\.0%"
expect "rollback restores the table" 'conv2\.weight +conv2d +\[50x20x5x5\] +25000 +0\.0'

# help overlay
press '?'
expect "? shows the keys" 'commit / roll back / undo'
press x
pause

# c, u with nothing to act on say so, without a question
press c
expect_status "c with nothing staged: says so" 'nothing is staged'
press u
expect_status "u before any commit: says so" 'nothing to undo'

# Enter enlarges the focused plot, and Enter again brings the others back
press Tab
pause
press Enter
sleep 0.3
screen >"$T/screen"
if grep -F 'Histogram' "$T/screen" >/dev/null && ! grep -F 'Singular values' "$T/screen" >/dev/null; then
	ok "Enter on the histogram enlarges it"
else
	not_ok "Enter on the histogram enlarges it" "screen:"
	diag_file "$T/screen" 40
fi
press Enter
expect "Enter again: the other plots are back" 'Singular values'
press BTab
pause

# export a plot as SVG from the REPL
press /
pause
keys ":export svg $T/hist.svg hist"
press Enter
expect "export reports the file" "exported histogram"
if [ -s "$T/hist.svg" ] && head -n 2 "$T/hist.svg" | grep -F '<svg' >/dev/null &&
	tail -n 1 "$T/hist.svg" | grep -F '</svg>' >/dev/null; then
	ok "export: a complete SVG file"
else
	not_ok "export: a complete SVG file" "file:"
	diag_file "$T/hist.svg" 5
fi
keys ":export svg $T/spec.svg spec"
press Enter
expect "export of the spectrum" "exported spectrum"
# a sensitivity sweep runs on the worker and its curves replace the
# spectrum (v goes back); it exports like the other plots
keys 'r = lathe.sensitivity(model, {sparsities = {0.5, 0.9, 0.99}, limit = 500})'
press Enter
expect "sensitivity: its curves are drawn" 'Sensitivity \(v: spectrum\)'
expect "sensitivity: a legend names the layers" 'a conv1 +b conv2'
keys ":export svg $T/sens.svg sens"
press Enter
expect "export of the sensitivity plot" "exported the sensitivity analysis"
if grep -c '<polyline' "$T/sens.svg" 2>/dev/null | grep -qx 4 && tail -n 1 "$T/sens.svg" | grep -q '</svg>'; then
	ok "sensitivity SVG: one curve per layer, complete"
else
	not_ok "sensitivity SVG: one curve per layer, complete" "file:"
	diag_file "$T/sens.svg" 5
fi
press C-]
sleep 0.3
press Tab Tab Tab
pause
press v
expect "v on the plot goes back to the spectrum" 'Singular values conv2\.weight'
press BTab BTab BTab
pause
press :
pause
keys ":latency"
press Enter
expect ":latency reports how fast keys were answered" 'latency: [0-9]+ key batches answered: median [0-9.]+ ms'

# Ctrl-C interrupts a statement that would run for ever
keys 'while true do end'
press Enter
sleep 0.5
press C-c
expect "Ctrl-C interrupts a running statement" 'error: repl:1: interrupted'

# fine-tuning runs on the worker: the status line shows its progress bar,
# Ctrl-C stops it and the stage is as before
keys 'model:finetune{epochs=20, split="val"}'
press Enter
expect_status "fine-tuning: a progress bar while it runs" '^ BUSY \| finetune \[[#.]{10}\] +[0-9]+%'
# while it runs, keys that only look are answered (the panes read nothing
# new from the model), and a statement typed meanwhile waits its turn
press C-]
selected() { screen | sed -n 's/.*selected: \([^ ]*\).*/\1/p' | head -n 1; }
sel_before=$(selected)
press j
i=0
while [ "$(selected)" = "$sel_before" ] && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
sel_after=$(selected)
if [ -n "$sel_before" ] && [ "$sel_before" != "$sel_after" ]; then
	ok "while fine-tuning: j moves the selection ($sel_before -> $sel_after)"
else
	not_ok "while fine-tuning: j moves the selection" "before '$sel_before', after '$sel_after'"
fi
expect "while fine-tuning: the panes say when they will show the new layer" 'shown when the running kernel ends'
expect_status "while fine-tuning: still busy" '^ BUSY \| finetune'
press :
keys 'print("typed " .. "ahead")'
press Enter
sleep 0.3
if screen | grep -F 'typed ahead' >/dev/null; then
	not_ok "while fine-tuning: a typed statement waits" "it ran during the fine-tuning"
else
	ok "while fine-tuning: a typed statement waits"
fi
press C-c
expect "fine-tuning: Ctrl-C stops it" 'lathe\.finetune: interrupted'
expect "the statement typed during the fine-tuning runs after it" 'typed ahead'
expect_status "fine-tuning stopped: the stage is clean again" '^ clean \|'
press Escape
sleep 0.3

# commit, then the status shows the new committed state
press :
pause
press C-u
keys 'model:prune{sparsity=0.5}'
press Enter
expect_status "second prune staged" 'STAGED'
press Escape
sleep 0.3
press c
expect_status "commit asks first" 'Commit the staged'
press y
expect_status "after commit: clean, sparsity near 50 %" '^ clean \|.*sparsity 49\.[0-9]%'

# resize to 80x24: every pane keeps its title, the status line its figures
tmux -L "$SOCK" resize-window -t t -x 80 -y 24 >/dev/null 2>&1
wait_status '^ clean \| (acc )?[0-9.]+% \|' || true
screen >"$T/screen"
missing=
for title in Layers Histogram Non-zeros Singular REPL; do
	grep -F "$title" "$T/screen" >/dev/null || missing="$missing $title"
done
if [ -z "$missing" ] && status | grep -E '^ clean \| (acc )?[0-9.]+% \|' >/dev/null; then
	ok "80x24: every pane's title and the status line are on screen"
else
	not_ok "80x24: every pane's title and the status line are on screen" "missing:$missing; screen:"
	diag_file "$T/screen" 30
fi
expect "80x24: layer names still readable" 'conv1\.weight'

# quit: asks when staged, q then y leaves with status 0
press :
pause
press C-u
keys 'model:prune{sparsity=0.6}'
press Enter
expect_status "staged again" 'STAGED'
press Escape
sleep 0.3
press :
pause
keys ':q'
press Enter
expect ":q with staged changes is refused" 'changes are staged: commit or roll back first'
press Escape
sleep 0.3
press q
expect_status "q with staged changes asks first" 'Quit anyway'
press n
sleep 0.3
expect_status "n: stays" 'STAGED'
press q
sleep 0.2
press y
expect "q, y: exits with status 0" '^\[exit 0\]'
if [ -s "$T/stderr" ]; then
	not_ok "nothing on stderr" "stderr:"
	diag_file "$T/stderr"
else
	ok "nothing on stderr"
fi

# colours: some SGR colour codes normally, none with NO_COLOR
colours() {
	# colour set: 30-37 / 40-47, 256-colour 38;/48; (39 and 49 are resets)
	tmux -L "$SOCK" capture-pane -p -e -t t | grep -cE '\[(3[0-7]|4[0-7])m|\[(38|48);' || true
}
start 100 30 LANG=C.UTF-8 LC_ALL=C.UTF-8
wait_status 'acc ' >/dev/null
n=$(colours)
if [ "$n" -gt 0 ]; then ok "colours used by default ($n lines)"; else not_ok "colours used by default"; fi
start 100 30 LANG=C.UTF-8 LC_ALL=C.UTF-8 NO_COLOR=1
wait_status 'acc ' >/dev/null
n=$(colours)
if [ "$n" = 0 ]; then ok "NO_COLOR: no colour codes"; else not_ok "NO_COLOR: no colour codes" "$n lines with colour"; fi

# ASCII fallback outside a UTF-8 locale
start 100 30 LANG=C LC_ALL=C
expect "C locale: ASCII frames" '^\+-.*Layers'
screen >"$T/screen"
if LC_ALL=C grep -n "$(printf '[\200-\377]')" "$T/screen" >/dev/null; then
	not_ok "C locale: no non-ASCII bytes on screen" "screen:"
	diag_file "$T/screen" 30
else
	ok "C locale: no non-ASCII bytes on screen"
fi
press q
expect "clean model: q quits at once" '^\[exit 0\]'

# the per-filter heatmap: filters zeroed from the REPL show as blank tiles
start 100 40 LANG=C LC_ALL=C
wait_status 'acc ' >/dev/null
press :
pause
press C-u
keys 'model:layer("conv2").weight:rows(1,5):fill(0)'
press Enter
expect_status "five filters zeroed: staged" '^ STAGED'
press Escape
sleep 0.3
press j j Tab Tab
pause
press m m
expect "heatmap: the per-filter view (staged, changed, per filter)" 'per filter'
expect "per-filter view: says which filters it shows" 'filters 1-[0-9]+ of 50'
# Tiles are 5x5 with a one-column gap; the first five (zeroed) are blank.
screen >"$T/screen"
# Five blank 6-column tiles, then the sixth filter's row of the tile.
if [ "$(grep -cE '\|\| {30}#####' "$T/screen")" -ge 3 ]; then
	ok "per-filter view: zeroed filters blank, others dense"
else
	not_ok "per-filter view: zeroed filters blank, others dense" "screen:"
	diag_file "$T/screen" 40
fi

finish
