/* The REPL pane: GNU Readline's callback interface fed one byte at a time
 * from the pane's keys, displayed by our own redisplay function into the
 * pane, running chunks in the workbench's Lua state with the same pieces
 * as `lathe lua` (lbind/repl.h): multi-line chunks, expressions printed,
 * completion, shared history. print() writes to the pane's scrollback. */
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "lbind/lathe.h"
#include "lbind/repl.h"
#include "tui/internal.h"

static tui *rt;                   /* the TUI the readline callbacks serve */
static int stash[16], n_stash;    /* bytes waiting for rl_getc */
static lt_repl_chunk chunk;
static char *hist_path;
static int leave;                 /* on_line asks to give focus back */

void tui_repl_print(tui *t, const char *text)
{
	/* One scrollback entry per line; tabs become spaces. */
	const char *p = text;
	do {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		char *line = malloc(n + 1);
		if (!line)
			return;
		for (size_t i = 0; i < n; i++)
			line[i] = p[i] == '\t' ? ' ' : p[i];
		line[n] = '\0';
		int slot = (t->first_line + t->n_lines) % SCROLLBACK;
		if (t->n_lines == SCROLLBACK) {
			free(t->lines[t->first_line]);
			t->first_line = (t->first_line + 1) % SCROLLBACK;
			slot = (t->first_line + t->n_lines - 1) % SCROLLBACK;
		} else {
			t->n_lines++;
		}
		t->lines[slot] = line;
		p = nl ? nl + 1 : NULL;
	} while (p);
	t->scroll = 0;
	t->dirty_all = 1;
}

/* print(...) into the scrollback, tostring'd and tab-separated. */
static int l_print(lua_State *L)
{
	int n = lua_gettop(L);
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	for (int i = 1; i <= n; i++) {
		if (i > 1)
			luaL_addchar(&b, '\t');
		luaL_tolstring(L, i, NULL);
		luaL_addvalue(&b);
	}
	luaL_pushresult(&b);
	if (rt)
		tui_repl_print(rt, lua_tostring(L, -1));
	return 0;
}

static int rl_getc_stash(FILE *f)
{
	(void)f;
	if (!n_stash)
		return EOF;
	int c = stash[0];
	memmove(stash, stash + 1, (size_t)--n_stash * sizeof *stash);
	return c;
}

static int rl_input_avail(void) { return n_stash > 0; }

static void rl_redisplay_pane(void)
{
	if (rt)
		rt->dirty_all = 1;
}

/* `:export svg PATH [pane]` and `:q`; anything else after ':' is an error. */
static void command(tui *t, const char *line)
{
	char verb[32] = "", kind[32] = "", path[1024] = "", pane[32] = "";
	int n = sscanf(line + 1, "%31s %31s %1023s %31s", verb, kind, path, pane);
	if (n >= 1 && (!strcmp(verb, "q") || !strcmp(verb, "quit"))) {
		if (t->bench && lt_bench_dirty(t->bench) && strcmp(verb, "q!") != 0)
			tui_repl_print(t, "changes are staged: commit or roll back first, or :q! to quit and lose them");
		else
			t->quit = 1;
		return;
	}
	if (n >= 1 && !strcmp(verb, "q!")) {
		t->quit = 1;
		return;
	}
	if (n >= 3 && !strcmp(verb, "export") && !strcmp(kind, "svg")) {
		int p = t->maximized ? t->maximized : PANE_HIST;
		if (n == 4)
			p = !strcmp(pane, "heat") ? PANE_HEAT : !strcmp(pane, "spec") ? PANE_SPEC
				: !strcmp(pane, "hist") ? PANE_HIST : !strcmp(pane, "sens") ? PLOT_SENS : -1;
		else if (p == PANE_SPEC && t->spec_view)
			p = PLOT_SENS; /* the sensitivity plot is what the pane shows */
		char msg[300];
		if (p < 0)
			snprintf(msg, sizeof msg, "export: unknown plot '%s' (hist, heat, spec or sens)", pane);
		else
			tui_export_svg(t, p, path, msg, sizeof msg);
		tui_repl_print(t, msg);
		return;
	}
	if (n >= 2 && !strcmp(verb, "redraws")) {
		/* How fast this terminal takes a full redraw: every pane drawn
		 * from its caches and the whole screen sent (clearok: no
		 * shortcut from an unchanged screen), N times. */
		long count = strtol(kind, NULL, 10);
		if (count < 1 || count > 100000) {
			tui_repl_print(t, "redraws: give a count from 1 to 100000");
			return;
		}
		double t0 = tui_now();
		for (long i = 0; i < count; i++) {
			for (int p = 0; p < PANE_COUNT; p++)
				if (t->win[p])
					touchwin(t->win[p]);
			touchwin(stdscr);
			clearok(curscr, TRUE);
			t->redraw_all = 1;
			tui_draw_all(t);
		}
		double dt = tui_now() - t0;
		char msg[160];
		snprintf(msg, sizeof msg, "redraws: %ld full redraws of %dx%d in %.1f ms: %.0f per second",
			 count, t->w, t->h, dt * 1e3, (double)count / dt);
		tui_repl_print(t, msg);
		return;
	}
	if (!strcmp(verb, "latency")) {
		tui_latency_report(t);
		return;
	}
	tui_repl_print(t, "commands: :export svg PATH [hist|heat|spec|sens], :redraws N, :latency, :q, :q!");
}

static void run_chunk(tui *t)
{
	lua_State *L = t->L;
	/* The statement may use OpenBLAS (evaluation, fine-tuning), whose
	 * thread setting is global: the worker's jobs wait until it is done
	 * (the measurements restart after it). */
	tui_quiesce(t);
	t->untimed = 1;
	t->running = 1;
	int rc = lt_repl_exec(L, 0);
	t->running = 0;
	/* A new sensitivity sweep is shown at once (v goes back). */
	const void *sweep = lt_lua_last_sensitivity(L);
	if (sweep && sweep != t->sens_seen)
		t->spec_view = 1;
	t->sens_seen = sweep;
	t->message[0] = '\0';
	if (rc == LUA_OK) {
		if (lua_isstring(L, -1))
			tui_repl_print(t, lua_tostring(L, -1));
	} else {
		const char *msg = lua_tostring(L, -1), *tb;
		size_t n = msg ? lt_repl_error_split(msg, &tb) : 0;
		char *one = malloc(n + 8);
		if (one) {
			snprintf(one, n + 8, "error: %.*s", (int)n, msg ? msg : "");
			tui_repl_print(t, one);
			free(one);
		}
	}
	lua_pop(L, 1);
}

static void on_line(char *line)
{
	tui *t = rt;
	if (!line) { /* Ctrl-D on an empty line: back to the panes */
		leave = 1;
		return;
	}
	char echo[64 + 1024];
	snprintf(echo, sizeof echo, "%s%s", chunk.pending ? ">> " : "> ", line);
	tui_repl_print(t, echo);
	if (!chunk.pending && line[0] == ':') {
		lt_repl_history_add(line);
		command(t, line);
		free(line);
		rl_set_prompt("> ");
		return;
	}
	int rc = lt_repl_feed(t->L, &chunk, line);
	free(line);
	if (rc == LT_REPL_MORE) {
		rl_set_prompt(">> ");
		return;
	}
	lt_repl_history_add(chunk.text);
	rl_set_prompt("> ");
	if (rc == LT_REPL_ERROR) {
		char msg[512];
		snprintf(msg, sizeof msg, "error: %s", lua_tostring(t->L, -1));
		lua_pop(t->L, 1);
		tui_repl_print(t, msg);
		return;
	}
	run_chunk(t);
}

/* Stash a whole key's bytes before readline reads any, so an escape
 * sequence is seen as one key, not Esc followed by text. */
static void feed(const char *bytes)
{
	for (const char *p = bytes; *p; p++)
		if (n_stash < (int)(sizeof stash / sizeof *stash))
			stash[n_stash++] = (unsigned char)*p;
	while (n_stash && rt)
		rl_callback_read_char();
}

/* Completion candidates go to the scrollback, a line of them. */
static void show_matches(char **matches, int num, int max_len)
{
	(void)max_len;
	if (!rt)
		return;
	size_t cap = 0;
	for (int i = 1; i <= num; i++)
		cap += strlen(matches[i]) + 2;
	char *line = malloc(cap + 1);
	if (!line)
		return;
	/* as many lines as the pane's width needs */
	size_t width = rt->win[PANE_REPL] ? (size_t)getmaxx(rt->win[PANE_REPL]) - 2 : 78, len = 0;
	line[0] = '\0';
	for (int i = 1; i <= num; i++) {
		size_t m = strlen(matches[i]);
		if (len && len + 2 + m > width) {
			tui_repl_print(rt, line);
			line[0] = '\0', len = 0;
		}
		if (len)
			strcat(line, "  "), len += 2;
		strcat(line, matches[i]), len += m;
	}
	if (len)
		tui_repl_print(rt, line);
	free(line);
}

int tui_repl_open(tui *t)
{
	rt = t;
	lua_pushcfunction(t->L, l_print);
	lua_setglobal(t->L, "print");
	rl_catch_signals = 0;
	rl_catch_sigwinch = 0;
	rl_change_environment = 0;
	rl_prep_term_function = NULL;
	rl_deprep_term_function = NULL;
	rl_getc_function = rl_getc_stash;
	rl_input_available_hook = rl_input_avail;
	rl_redisplay_function = rl_redisplay_pane;
	rl_completion_display_matches_hook = show_matches;
	rl_completion_query_items = -1;
	rl_outstream = fopen("/dev/null", "w"); /* readline must never draw itself */
	lt_repl_rl_setup(t->L);
	lt_repl_chunk_init(&chunk, "=repl", 0);
	hist_path = lt_repl_history_path();
	lt_err err = {0};
	if (hist_path && lt_repl_history_load(hist_path, &err))
		tui_repl_print(t, err.msg);
	rl_callback_handler_install("> ", on_line);
	return 0;
}

void tui_repl_close(tui *t)
{
	rl_callback_handler_remove();
	lt_err err = {0};
	if (hist_path && lt_repl_history_save(hist_path, &err))
		fprintf(stderr, "lathe: %s\n", err.msg);
	free(hist_path);
	hist_path = NULL;
	lt_repl_chunk_free(&chunk);
	if (rl_outstream && rl_outstream != stdout)
		fclose(rl_outstream);
	rl_outstream = NULL;
	(void)t;
	rt = NULL;
}

/* Keys ncurses decoded go back to readline as the sequences it binds. */
static const char *key_sequence(int key)
{
	switch (key) {
	case KEY_UP: return "\033[A";
	case KEY_DOWN: return "\033[B";
	case KEY_RIGHT: return "\033[C";
	case KEY_LEFT: return "\033[D";
	case KEY_HOME: return "\033[H";
	case KEY_END: return "\033[F";
	case KEY_DC: return "\033[3~";
	case KEY_BACKSPACE: return "\177";
	case KEY_ENTER: return "\r";
	default: return NULL;
	}
}

int tui_repl_key(tui *t, int key)
{
	leave = 0;
	if (key == 27) { /* Esc alone leaves; Esc + key is Meta for readline */
		int next = getch(); /* non-blocking: Meta sequences arrive together */
		if (next == ERR)
			return 1;
		char seq[3] = {27, (char)next, 0};
		feed(seq);
		return leave;
	}
	if (key == 29) /* Ctrl-] */
		return 1;
	if (key == KEY_PPAGE || key == KEY_NPAGE) {
		int page = getmaxy(t->win[PANE_REPL]) - 3;
		t->scroll += key == KEY_PPAGE ? page : -page;
		t->scroll = t->scroll < 0 ? 0 : t->scroll > t->n_lines ? t->n_lines : t->scroll;
		return 0;
	}
	if (key == 3) { /* Ctrl-C as a key (no signal): clear the line */
		rl_free_line_state();
		rl_callback_sigcleanup();
		lt_repl_chunk_reset(&chunk);
		rl_replace_line("", 0);
		rl_set_prompt("> ");
		return 0;
	}
	const char *seq = key_sequence(key);
	if (seq) {
		feed(seq);
	} else if (key >= 0 && key < 256) {
		char one[2] = {(char)key, 0};
		if (key == 0) /* NUL cannot be stashed through a C string */
			return 0;
		feed(one);
	}
	return leave;
}

/* Display width of the first n bytes of s (UTF-8). */
static int width_of(const char *s, size_t n)
{
	mbstate_t st = {0};
	int w = 0;
	for (size_t i = 0; i < n;) {
		wchar_t wc;
		size_t k = mbrtowc(&wc, s + i, n - i, &st);
		if (k == (size_t)-1 || k == (size_t)-2 || k == 0) {
			w++, i++;
			memset(&st, 0, sizeof st);
			continue;
		}
		int cw = wcwidth(wc);
		w += cw > 0 ? cw : 0;
		i += k;
	}
	return w;
}

void tui_repl_draw(tui *t, WINDOW *w)
{
	tui_frame(t, w, PANE_REPL, t->focus == PANE_REPL ? "REPL  Esc: panes  PgUp/PgDn: scroll" : "REPL  (: or / to type)");
	int hh, ww;
	getmaxyx(w, hh, ww);
	int rows = hh - 3; /* border, input line */
	int last = t->n_lines - t->scroll;
	int first = last - rows < 0 ? 0 : last - rows;
	for (int i = first, y = 1; i < last; i++, y++) {
		const char *line = t->lines[(t->first_line + i) % SCROLLBACK];
		if (!strncmp(line, "error: ", 7) && t->color)
			wattron(w, COLOR_PAIR(5));
		mvwaddnstr(w, y, 1, line, ww - 2);
		if (t->color)
			wattroff(w, COLOR_PAIR(5));
	}
	/* input line: prompt + buffer, scrolled so the cursor shows */
	const char *prompt = rl_display_prompt ? rl_display_prompt : "> ";
	const char *buf = rl_line_buffer ? rl_line_buffer : "";
	int pw = width_of(prompt, strlen(prompt)), cw = width_of(buf, (size_t)rl_point);
	int avail = ww - 2 - pw;
	int skip = cw >= avail ? cw - avail + 1 : 0;
	int y = hh - 2;
	mvwaddnstr(w, y, 1, prompt, ww - 2);
	/* skip whole bytes until the skipped width is reached */
	size_t off = 0;
	while (buf[off] && width_of(buf, off) < skip)
		off++;
	mvwaddnstr(w, y, 1 + pw, buf + off, avail > 0 ? avail : 0);
	if (t->focus == PANE_REPL)
		wmove(w, y, 1 + pw + cw - width_of(buf, off));
}

void tui_repl_sig(tui *t, uint64_t sig[TUI_SIG])
{
	sig[1] = (uint64_t)t->n_lines | (uint64_t)t->first_line << 20 | (uint64_t)t->scroll << 40;
	sig[2] = (uint64_t)rl_point;
	uint64_t h = 1469598103934665603ull; /* FNV-1a of the line and prompt */
	for (const char *p = rl_line_buffer ? rl_line_buffer : ""; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	for (const char *p = rl_display_prompt ? rl_display_prompt : ""; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	sig[3] = h;
	/* the newest line may have been replaced in a full scrollback */
	sig[4] = t->n_lines ? (uint64_t)(uintptr_t)t->lines[(t->first_line + t->n_lines - 1) % SCROLLBACK] : 0;
}
