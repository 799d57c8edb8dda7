#include "tui/tui.h"

#include <errno.h>
#include <lauxlib.h>
#include <langinfo.h>
#include <locale.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/units.h"
#include "lbind/lathe.h"
#include "lbind/repl.h"
#include "nn/eval.h"
#include "tui/internal.h"

tui *lt_tui_current;

/* Preview starts this long after the last change, so a burst of changes
 * from one statement or a quick run of keys costs one evaluation. */
#define DEBOUNCE_S 0.25

static volatile sig_atomic_t got_sigint;

static void on_sigint(int sig)
{
	(void)sig;
	got_sigint = 1;
	/* A running statement stops: Lua code at its next instruction hook,
	 * C kernels at their next progress check. */
	if (lt_tui_current && lt_tui_current->running)
		lt_repl_interrupt(lt_tui_current->L);
}

double tui_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- measuring on the worker ------------------------------------------- */

struct measure_job {
	lt_model *model;       /* snapshot (a reference) */
	const lt_dataset *data;
	size_t baseline;
	int is_staged;
	uint64_t key;
	lt_metrics m;
	lt_job *job;
};

static int measure_progress(void *ud, int64_t done, int64_t total)
{
	struct measure_job *j = ud;
	return lt_job_progress(j->job, total ? (double)done / (double)total : 0) ? 1 : 0;
}

static int measure_run(lt_job *job, void *arg, lt_err *err)
{
	struct measure_job *j = arg;
	j->job = job;
	lt_eval_opts eo = {.progress = measure_progress, .progress_ud = j};
	return lt_model_measure(j->model, j->baseline, j->data, &eo, &j->m, err);
}

static void measure_done(void *arg, int rc, const lt_err *err)
{
	struct measure_job *j = arg;
	tui *t = lt_tui_current;
	if (t) {
		tui_measure *dst = j->is_staged ? &t->staged : &t->committed;
		if (dst->key == j->key && dst->state == 1) {
			if (rc == 0) {
				dst->m = j->m;
				dst->state = 2;
			} else {
				dst->state = rc == LT_ECANCEL ? 0 : 3;
				snprintf(dst->error, sizeof dst->error, "%.150s", err->msg);
			}
		}
		t->dirty_all = 1;
	}
	lt_model_unref(j->model);
	lt_free(j);
}

/* Snapshot m (its tensors converted to f32 here, so the worker only reads)
 * and measure it on the worker. */
static void measure(tui *t, lt_model *m, int is_staged, uint64_t key)
{
	tui_measure *dst = is_staged ? &t->staged : &t->committed;
	lt_err err = {0};
	for (size_t i = 0; i < lt_model_tensor_count(m); i++)
		if (!lt_tensor_data(lt_model_tensor_at(m, i), &err))
			goto fail;
	struct measure_job *j = lt_calloc(1, sizeof *j);
	if (!j || !(j->model = lt_model_copy(m, &err))) {
		lt_free(j);
		if (!err.msg[0])
			lt_err_set(&err, LT_ENOMEM, "out of memory");
		goto fail;
	}
	j->data = &t->val;
	j->baseline = lt_bench_baseline_bytes(t->bench);
	j->is_staged = is_staged;
	j->key = key;
	*dst = (tui_measure){.state = 1, .key = key};
	if (lt_worker_submit(t->worker, is_staged ? "preview (staged)" : "preview (committed)",
			     measure_run, measure_done, j, &err)) {
		lt_model_unref(j->model);
		lt_free(j);
		goto fail;
	}
	return;
fail:
	*dst = (tui_measure){.state = 3, .key = key};
	snprintf(dst->error, sizeof dst->error, "%.150s", err.msg);
}

/* Follow the bench: a new committed model or a changed stage gets measured
 * (the stage after a short pause). */
static void follow_bench(tui *t)
{
	lua_getglobal(t->L, "model");
	lt_bench *b = lt_lua_to_bench(t->L, -1);
	lua_pop(t->L, 1);
	if (b != t->bench) {
		t->bench = b;
		t->committed_model = NULL;
		t->seen_version = (uint64_t)-1;
		t->rows_version = (uint64_t)-1;
		t->dirty_all = 1;
	}
	if (!b)
		return;
	lt_model *c = lt_bench_committed(b);
	if (c != t->committed_model || t->committed.state == 0) { /* new, or cancelled */
		t->committed_model = c;
		measure(t, c, 0, (uint64_t)(uintptr_t)c ^ lt_bench_history_len(b));
		t->dirty_all = 1;
	}
	uint64_t v = lt_bench_version(b);
	if (v != t->seen_version) {
		t->seen_version = v;
		t->changed_at = tui_now();
		t->staged = (tui_measure){.key = v};
		t->dirty_all = 1;
	}
	if (lt_bench_dirty(b) && t->staged.state == 0 && t->staged.key == v &&
	    tui_now() - t->changed_at >= DEBOUNCE_S)
		measure(t, lt_bench_staged(b), 1, v);
}

/* ---- drawing -------------------------------------------------------------- */

void tui_frame(tui *t, WINDOW *w, int pane, const char *title)
{
	werase(w);
	int focused = t->focus == pane;
	if (focused && t->color)
		wattron(w, COLOR_PAIR(1));
	if (t->utf8)
		box(w, 0, 0);
	else
		wborder(w, '|', '|', '-', '-', '+', '+', '+', '+');
	if (focused)
		wattron(w, A_BOLD);
	char label[256];
	snprintf(label, sizeof label, "%s%s%s", focused ? "[" : " ", title, focused ? "]" : " ");
	int room = getmaxx(w) - 4; /* keep both corners */
	if (room > 0)
		mvwaddnstr(w, 0, 2, label, room);
	wattroff(w, A_BOLD);
	if (focused && t->color)
		wattroff(w, COLOR_PAIR(1));
}

/* Screen columns of UTF-8 text whose characters are one column wide (the
 * arrows and blocks used here): the bytes that start a character. */
static int columns(const char *text)
{
	int c = 0;
	for (; *text; text++)
		c += (*text & 0xC0) != 0x80;
	return c;
}

/* "[#####.....] " for a fraction in [0, 1]: ten cells, ASCII so it reads
 * in any locale and in monochrome. */
static void progress_bar(double f, char *out, size_t n)
{
	int full = (int)(f * 10 + 0.5);
	full = full < 0 ? 0 : full > 10 ? 10 : full;
	snprintf(out, n, "[%.*s%.*s] ", full, "##########", 10 - full, "..........");
}

/* The status line: stage state first (the thing to know before pressing
 * c, r or u), then committed -> staged accuracy, size and sparsity, then
 * work in progress and the last notice. Narrow screens get the compact
 * form (no labels), and what still does not fit is cut at the right. */
static void draw_status(tui *t)
{
	int y = t->h - 1;
	move(y, 0);
	clrtoeol();
	if (t->color)
		attron(COLOR_PAIR(2));
	char line[640] = "", a[32], b[32];
	size_t n = 0;
	const char *arrow = t->utf8 ? "\u2192" : "->";
	if (t->work) {
		/* The model is being changed: its figures wait for the end. */
		double f;
		__atomic_load(&t->work->fraction, &f, __ATOMIC_RELAXED);
		progress_bar(f, a, sizeof a);
		snprintf(line, sizeof line, " BUSY | %s %s%3.0f%% (Esc or Ctrl-C stops)%s%s", t->work->label, a,
			 100 * f, t->message[0] ? " | " : "", t->message);
		mvaddnstr(y, 0, line, t->w);
		if (t->color)
			attroff(COLOR_PAIR(2));
		return;
	}
	for (int compact = 0; compact < 2; compact++) {
		n = 0;
		line[0] = '\0';
		if (!t->bench) {
			snprintf(line, sizeof line, " no model: model = lathe.open(PATH) in the REPL");
			break;
		}
		const tui_measure *c = &t->committed, *s = &t->staged;
		int dirty = lt_bench_dirty(t->bench);
		n += (size_t)snprintf(line + n, sizeof line - n, " %s", dirty ? "STAGED" : "clean");
		if (c->state == 2 && c->m.has_accuracy) {
			n += (size_t)snprintf(line + n, sizeof line - n, compact ? " | %.2f%%" : " | acc %.2f%%",
					      100 * c->m.accuracy);
			if (dirty && s->state == 2 && s->m.has_accuracy)
				n += (size_t)snprintf(line + n, sizeof line - n, " %s %.2f%% (%+.2f)", arrow,
						      100 * s->m.accuracy, 100 * (s->m.accuracy - c->m.accuracy));
			else if (dirty && s->state == 1)
				n += (size_t)snprintf(line + n, sizeof line - n, " %s ...", arrow);
			else if (dirty && s->state == 3)
				n += (size_t)snprintf(line + n, sizeof line - n, " %s failed: %.60s", arrow, s->error);
		} else if (c->state == 1) {
			n += (size_t)snprintf(line + n, sizeof line - n, " | acc ...");
		} else {
			n += (size_t)snprintf(line + n, sizeof line - n, " | acc n/a");
		}
		/* Counting zeros reads every tensor: once per model state, not
		 * once per status line. */
		lt_model *cmod = lt_bench_committed(t->bench), *smod = lt_bench_staged(t->bench);
		if (t->size_c_of != cmod) {
			if (lt_model_size_metrics(cmod, lt_bench_baseline_bytes(t->bench), &t->size_c, NULL))
				memset(&t->size_c, 0, sizeof t->size_c); /* out of memory: shown as 0 B */
			t->size_c_of = cmod;
		}
		if (t->size_s_of != smod || t->size_s_version != lt_bench_version(t->bench)) {
			if (lt_model_size_metrics(smod, lt_bench_baseline_bytes(t->bench), &t->size_s, NULL))
				memset(&t->size_s, 0, sizeof t->size_s);
			t->size_s_of = smod;
			t->size_s_version = lt_bench_version(t->bench);
		}
		const lt_metrics cm = t->size_c, sm = t->size_s;
		lt_format_bytes((double)cm.size, a, sizeof a);
		n += (size_t)snprintf(line + n, sizeof line - n, compact ? " | %s" : " | size %s", a);
		if (dirty) {
			lt_format_bytes((double)sm.size, b, sizeof b);
			n += (size_t)snprintf(line + n, sizeof line - n, " %s %s", arrow, b);
		}
		n += (size_t)snprintf(line + n, sizeof line - n, " (%.2fx)", sm.ratio);
		n += (size_t)snprintf(line + n, sizeof line - n, compact ? " | %.1f%% zeros" : " | sparsity %.1f%%",
				      sm.params ? 100.0 * (double)(sm.params - sm.nonzeros) / (double)sm.params : 0.0);
		char label[64];
		double frac = 0;
		if (lt_worker_status(t->worker, label, sizeof label, &frac, NULL) && n < sizeof line)
		{
			char bar[24];
			progress_bar(frac, bar, sizeof bar);
			n += (size_t)snprintf(line + n, sizeof line - n, " | %s %s%3.0f%%%s", label,
					      compact ? "" : bar, 100 * frac, compact ? "" : " (Esc cancels)");
		}
		int cols = columns(line);
		if (t->message[0]) {
			int len = (int)strlen(t->message), room = t->w - cols - 3;
			if (len > room && !compact && room >= 24) {
				/* A long notice keeps the labels: it is cut, with a mark. */
				int k = room - 1;
				while (k > 0 && (t->message[k] & 0xC0) == 0x80)
					k--;
				snprintf(line + n, sizeof line - n, " | %.*s~", k, t->message);
				break;
			}
			n += (size_t)snprintf(line + n, sizeof line - n, " | %s", t->message);
			cols += len + 3;
		}
		if (cols <= t->w)
			break;
	}
	mvaddnstr(y, 0, line, t->w);
	if (t->color)
		attroff(COLOR_PAIR(2));
}

static void draw_title(tui *t)
{
	move(0, 0);
	clrtoeol();
	attron(A_REVERSE);
	char title[256];
	const tui_row *r = tui_selected(t);
	const char *name = !t->bench ? "(no model)" : t->bench == t->opened ? t->path : "model (set in the REPL)";
	const char *base = strrchr(name, '/');
	snprintf(title, sizeof title, " lathe | %s | %d tensors | selected: %s", base ? base + 1 : name,
		 t->n_rows, r ? r->name : "-");
	mvaddnstr(0, 0, title, t->w);
	for (int x = (int)strlen(title); x < t->w; x++)
		addch(' ');
	const char *hint = " ? help  q quit ";
	if (t->w > (int)strlen(title) + (int)strlen(hint))
		mvaddstr(0, t->w - (int)strlen(hint), hint);
	attroff(A_REVERSE);
}

static const char *const help_lines[] = {
	"lathe workbench: keys",
	"",
	"  Tab / Shift-Tab   next / previous pane",
	"  Up Down  j k      move in the layer table",
	"  PgUp PgDn Home End  page through the table",
	"  s                 sort the table (file order, params, % zeros, bytes)",
	"  Enter             focus: enlarge the focused plot / back",
	"  : or /            into the REPL (a line starting with ':' is a command)",
	"  Esc or Ctrl-]     REPL: back to the panes; anywhere: cancel work",
	"  Ctrl-C            interrupt a running statement or preview",
	"  c  r  u           commit / roll back / undo (asks first)",
	"  l                 histogram: linear or log10|w|",
	"  m                 heatmap: committed, staged, changed, per filter",
	"  + -  arrows       heatmap: zoom and pan",
	"  v                 spectrum pane: singular values / last sensitivity sweep",
	"  q                 quit (asks if changes are staged)",
	"  mouse             click a layer or a pane",
	"",
	"REPL: the Lua API of lathe-lua(3); `model` is the open model.",
	"  :export svg PATH [hist|heat|spec|sens]   save a plot as SVG",
	"  :redraws N, :latency   timings;  :q quit (:q! drops staged changes)",
	"press any key",
};

static void draw_help(tui *t)
{
	int n = (int)(sizeof help_lines / sizeof *help_lines), wd = 0;
	for (int i = 0; i < n; i++)
		wd = (int)strlen(help_lines[i]) > wd ? (int)strlen(help_lines[i]) : wd;
	int hh = n + 2 < t->h ? n + 2 : t->h, ww = wd + 4 < t->w ? wd + 4 : t->w;
	WINDOW *w = newwin(hh, ww, (t->h - hh) / 2, (t->w - ww) / 2);
	if (!w)
		return;
	werase(w);
	if (t->utf8)
		box(w, 0, 0);
	else
		wborder(w, '|', '|', '-', '-', '+', '+', '+', '+');
	for (int i = 0; i < n && i + 1 < hh - 1; i++)
		mvwaddnstr(w, i + 1, 2, help_lines[i], ww - 3);
	wnoutrefresh(w);
	delwin(w);
}

/* Window rectangles for the current size. */
static void layout(tui *t)
{
	getmaxyx(stdscr, t->h, t->w);
	for (int i = 0; i < PANE_COUNT; i++)
		if (t->win[i]) {
			delwin(t->win[i]);
			t->win[i] = NULL;
		}
	int rh = t->h / 4 < 6 ? 6 : t->h / 4;
	int mh = t->h - 2 - rh;
	if (mh < 6) { /* tiny terminal: everything gets a sliver */
		rh = (t->h - 2) / 2;
		mh = t->h - 2 - rh;
	}
	int tw = t->w * 45 / 100;
	tw = tw < 44 ? 44 : tw > 72 ? 72 : tw;
	if (tw > t->w - 20)
		tw = t->w / 2;
	int rw = t->w - tw;
	t->win[PANE_TABLE] = newwin(mh, tw, 1, 0);
	t->win[PANE_REPL] = newwin(rh, t->w, 1 + mh, 0);
	if (t->maximized >= PANE_HIST && t->maximized <= PANE_SPEC) {
		for (int p = PANE_HIST; p <= PANE_SPEC; p++)
			t->win[p] = p == t->maximized ? newwin(mh, rw, 1, tw) : NULL;
	} else {
		int hh = mh / 2;
		t->win[PANE_HIST] = newwin(hh, rw, 1, tw);
		if (rw >= 64) {
			t->win[PANE_HEAT] = newwin(mh - hh, rw / 2, 1 + hh, tw);
			t->win[PANE_SPEC] = newwin(mh - hh, rw - rw / 2, 1 + hh, tw + rw / 2);
		} else {
			int h2 = (mh - hh) / 2;
			t->win[PANE_HEAT] = newwin(h2, rw, 1 + hh, tw);
			t->win[PANE_SPEC] = newwin(mh - hh - h2, rw, 1 + hh + h2, tw);
		}
	}
	for (int i = 0; i < PANE_COUNT; i++)
		if (t->win[i])
			keypad(t->win[i], TRUE);
	t->dirty_all = 1;
	t->redraw_all = 1;
}

void tui_draw_all(tui *t)
{
	if (t->rows_version != (t->bench ? lt_bench_version(t->bench) : 0) || !t->rows)
		tui_rows_rebuild(t);
	/* stdscr (title, status) first: its refresh would otherwise paint its
	 * blank middle over the panes. */
	draw_title(t);
	draw_status(t);
	wnoutrefresh(stdscr);
	/* A pane is drawn again only when what it shows changed (its
	 * signature), or after a resize or the help overlay covered it. */
	static void (*const draw[PANE_COUNT])(tui *, WINDOW *) = {
		tui_draw_table, tui_draw_hist, tui_draw_heat, tui_draw_spec, tui_repl_draw};
	static uint64_t last[PANE_COUNT][TUI_SIG];
	for (int p = 0; p < PANE_COUNT; p++) {
		if (!t->win[p])
			continue;
		uint64_t sig[TUI_SIG] = {0};
		sig[0] = (uint64_t)(t->focus == p) | (uint64_t)getmaxx(t->win[p]) << 8 |
			 (uint64_t)getmaxy(t->win[p]) << 24 | (uint64_t)t->utf8 << 40;
		if (p == PANE_REPL)
			tui_repl_sig(t, sig);
		else
			tui_pane_sig(t, p, sig);
		if (t->redraw_all || memcmp(sig, last[p], sizeof sig)) {
			draw[p](t, t->win[p]);
			memcpy(last[p], sig, sizeof sig);
			if (p != PANE_REPL)
				wnoutrefresh(t->win[p]);
		}
	}
	/* The REPL last, so the cursor ends in its input line; the help
	 * overlay above everything (the cursor is hidden then). */
	if (t->win[PANE_REPL])
		wnoutrefresh(t->win[PANE_REPL]);
	if (t->help)
		draw_help(t);
	t->redraw_all = t->help; /* what the overlay covers is drawn again after it */
	curs_set(t->focus == PANE_REPL && !t->help ? 1 : 0);
	doupdate();
	t->dirty_all = 0;
}

void tui_pump(tui *t, const char *label, double fraction)
{
	static double last;
	double now = tui_now();
	if (now - last < 0.05)
		return;
	last = now;
	char bar[24];
	progress_bar(fraction, bar, sizeof bar);
	snprintf(t->message, sizeof t->message, "%s %s%3.0f%% (Esc or Ctrl-C stops)", label, bar,
		 100 * fraction);
	draw_status(t);
	wnoutrefresh(stdscr);
	doupdate();
	/* Esc stops the statement (Ctrl-C arrives as SIGINT). Other keys wait.
	 * (Input is always non-blocking: nodelay is set once at start.) */
	int ch = getch();
	if (ch == 27)
		lt_lua_interrupt();
	else if (ch != ERR)
		ungetch(ch);
}

/* ---- key latency -------------------------------------------------------------
 * From input becoming readable to the screen showing the answer, per batch
 * of keys read together; `:latency` reports them. Batches that ran a Lua
 * statement are left out (that time is the statement's). */
static void note_latency(tui *t, double t0)
{
	if (t->untimed) {
		t->untimed = 0;
		return;
	}
	int cap = (int)(sizeof t->key_lat / sizeof *t->key_lat);
	t->key_lat[t->n_key_lat++ % cap] = tui_now() - t0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

void tui_latency_report(tui *t)
{
	int cap = (int)(sizeof t->key_lat / sizeof *t->key_lat);
	int n = t->n_key_lat < cap ? t->n_key_lat : cap;
	char msg[200];
	if (!n) {
		tui_repl_print(t, "latency: no keys answered yet");
	} else {
		double v[sizeof t->key_lat / sizeof *t->key_lat];
		memcpy(v, t->key_lat, (size_t)n * sizeof *v);
		qsort(v, (size_t)n, sizeof *v, cmp_double);
		snprintf(msg, sizeof msg, "latency: %d key batches answered: median %.1f ms, 95%% %.1f ms, max %.1f ms",
			 n, 1e3 * v[n / 2], 1e3 * v[(n * 95) / 100 < n ? (n * 95) / 100 : n - 1], 1e3 * v[n - 1]);
		tui_repl_print(t, msg);
	}
	snprintf(msg, sizeof msg, "latency: the worker was stopped for a statement %d time(s); longest wait %.1f ms",
		 t->n_quiesce, 1e3 * t->quiesce_max);
	tui_repl_print(t, msg);
}

void tui_quiesce(tui *t)
{
	double t0 = tui_now();
	int busy = lt_worker_status(t->worker, NULL, 0, NULL, NULL);
	lt_worker_quiesce(t->worker);
	lt_worker_quiesce(t->quick);
	if (busy) {
		double dt = tui_now() - t0;
		t->quiesce_max = dt > t->quiesce_max ? dt : t->quiesce_max;
		t->n_quiesce++;
	}
}

/* ---- long kernels from the REPL on the worker ----------------------------
 * Fine-tuning, previews and evaluations started from Lua run on the worker
 * thread while this loop keeps the workbench alive: the status line shows
 * their progress, Esc and Ctrl-C stop them, and keys that only look
 * (moving, panes, zoom, help, mouse) are answered as usual. The panes read
 * nothing new from the model meanwhile (frozen: the work is changing it),
 * and keys that would run Lua (REPL input, c, r, u, q) wait in typeahead
 * until the work ends. */
struct offload {
	lt_lua_work *w;
	int rc, ran, done;
};

static int offload_run(lt_job *job, void *arg, lt_err *err)
{
	(void)job, (void)err;
	struct offload *o = arg;
	o->rc = o->w->run(o->w);
	o->ran = 1;
	return 0;
}

static void offload_done(void *arg, int rc, const lt_err *err)
{
	(void)rc, (void)err;
	((struct offload *)arg)->done = 1;
}

/* Keys that only change what is shown; the rest would run Lua. */
static int looks_only(const tui *t, int ch)
{
	if (ch == KEY_RESIZE || ch == KEY_MOUSE || t->help)
		return 1;
	if (t->focus == PANE_REPL)
		return ch == 29; /* Ctrl-]: back to the panes */
	return ch != 'c' && ch != 'r' && ch != 'u' && ch != 'q';
}

static void handle_key(tui *t, int ch);
static void note_latency(tui *t, double t0);

static int tui_runner(void *ud, lt_lua_work *w)
{
	tui *t = ud;
	struct offload o = {.w = w};
	__atomic_store_n(&w->offloaded, 1, __ATOMIC_RELEASE);
	if (lt_worker_submit(t->worker, w->label, offload_run, offload_done, &o, NULL)) {
		__atomic_store_n(&w->offloaded, 0, __ATOMIC_RELEASE);
		return w->run(w);
	}
	t->work = w;
	t->frozen = 1;
	t->dirty_all = 1;
	while (!o.done) {
		tui_draw_all(t);
		struct pollfd fds[3] = {{STDIN_FILENO, POLLIN, 0}, {lt_worker_fd(t->worker), POLLIN, 0},
					{lt_worker_fd(t->quick), POLLIN, 0}};
		poll(fds, 3, 50);
		double t0 = tui_now();
		lt_worker_collect(t->worker);
		lt_worker_collect(t->quick);
		int ch, keys = 0;
		while ((ch = getch()) != ERR) {
			keys++;
			if (ch == 27 || ch == 3) {
				lt_lua_interrupt();
				snprintf(t->message, sizeof t->message, "stopping %s...", w->label);
			} else if (ch == 29 && t->focus == PANE_REPL) {
				t->focus = PANE_TABLE;
				t->dirty_all = 1;
			} else if (looks_only(t, ch)) {
				handle_key(t, ch);
			} else if (t->n_typeahead < (int)(sizeof t->typeahead / sizeof *t->typeahead)) {
				t->typeahead[t->n_typeahead++] = ch;
			}
		}
		if (keys) {
			tui_draw_all(t);
			note_latency(t, t0);
		}
	}
	t->work = NULL;
	t->frozen = 0;
	/* Cancelled before it started (the worker was shutting down): run it
	 * here, so the caller always gets the work's own result. */
	int rc = o.ran ? o.rc : w->run(w);
	__atomic_store_n(&w->offloaded, 0, __ATOMIC_RELEASE);
	t->rows_version = (uint64_t)-1; /* zero counts skipped while frozen */
	t->redraw_all = t->dirty_all = 1;
	return rc;
}

static void lua_progress(void *ud, const char *label, double fraction, const char *detail)
{
	(void)detail;
	tui_pump(ud, label, fraction);
}

/* ---- keys ------------------------------------------------------------------- */

/* y/n question on the status line. */
static int confirm(tui *t, const char *question)
{
	move(t->h - 1, 0);
	clrtoeol();
	attron(A_BOLD);
	mvaddnstr(t->h - 1, 0, question, t->w);
	attroff(A_BOLD);
	refresh();
	t->untimed = 1;
	int ch;
	do {
		struct pollfd in = {STDIN_FILENO, POLLIN, 0};
		poll(&in, 1, -1);
		ch = getch();
	} while (ch == ERR || ch == KEY_RESIZE || ch == KEY_MOUSE);
	t->dirty_all = 1;
	return ch == 'y' || ch == 'Y';
}

/* model:commit() / rollback() / undo() through Lua, so the journal and
 * history stay as the REPL would leave them. Called from C, the method's
 * errors carry no chunk position. */
static void run_method(tui *t, const char *method)
{
	tui_quiesce(t);
	lua_getglobal(t->L, "model");
	if (lua_getfield(t->L, -1, method) != LUA_TFUNCTION) {
		lua_pop(t->L, 2);
		snprintf(t->message, sizeof t->message, "model has no %s", method);
		return;
	}
	lua_insert(t->L, -2); /* method, model */
	if (lt_lua_pcall(t->L, 1, 0) == LUA_OK) {
		snprintf(t->message, sizeof t->message, "%s", !strcmp(method, "commit") ? "committed"
							     : !strcmp(method, "undo") ? "undone" : "rolled back");
	} else {
		const char *msg = lua_tostring(t->L, -1);
		const char *tb;
		size_t n = msg ? lt_repl_error_split(msg, &tb) : 0;
		snprintf(t->message, sizeof t->message, "%.*s", (int)n, msg ? msg : "error");
		lua_pop(t->L, 1);
	}
	t->dirty_all = 1;
}

static void mouse(tui *t)
{
	MEVENT ev;
	if (getmouse(&ev) != OK || !(ev.bstate & (BUTTON1_CLICKED | BUTTON1_PRESSED | BUTTON1_RELEASED)))
		return;
	for (int p = 0; p < PANE_COUNT; p++) {
		WINDOW *w = t->win[p];
		if (!w || !wenclose(w, ev.y, ev.x))
			continue;
		t->focus = p;
		if (p == PANE_TABLE) {
			int by, bx;
			getbegyx(w, by, bx);
			(void)bx;
			int row = ev.y - by - 2 + t->top; /* border and header */
			if (row >= 0 && row < t->n_rows)
				t->sel = row;
		}
		t->dirty_all = 1;
		return;
	}
}

static void pane_key(tui *t, int ch)
{
	switch (ch) {
	case 'q':
		if (!t->bench || !lt_bench_dirty(t->bench) ||
		    confirm(t, "Changes are staged. Quit anyway and lose them? (y/n)"))
			t->quit = 1;
		return;
	case '?': t->help = 1; break;
	case '\t': t->focus = (t->focus + 1) % PANE_COUNT; break;
	case KEY_BTAB: t->focus = (t->focus + PANE_COUNT - 1) % PANE_COUNT; break;
	case ':':
	case '/':
		t->focus = PANE_REPL;
		break;
	case '\n':
	case '\r': /* nonl(): Enter arrives as CR */
	case KEY_ENTER:
		if (t->focus >= PANE_HIST && t->focus <= PANE_SPEC)
			t->maximized = t->maximized ? 0 : t->focus;
		else if (t->focus == PANE_TABLE)
			t->focus = PANE_HIST;
		layout(t);
		break;
	case 'c':
	case 'r':
		if (!t->bench || !lt_bench_dirty(t->bench))
			snprintf(t->message, sizeof t->message, "nothing is staged");
		else if (ch == 'c' ? confirm(t, "Commit the staged changes? (y/n)")
				   : confirm(t, "Roll back (drop) the staged changes? (y/n)"))
			run_method(t, ch == 'c' ? "commit" : "rollback");
		break;
	case 'u':
		if (!t->bench || lt_bench_history_len(t->bench) < 2)
			snprintf(t->message, sizeof t->message, "nothing to undo (no commit yet)");
		else if (confirm(t, "Undo the last commit (and drop staged changes)? (y/n)"))
			run_method(t, "undo");
		break;
	case 27:
		lt_worker_cancel_all(t->worker);
		snprintf(t->message, sizeof t->message, "cancelled");
		break;
	case KEY_MOUSE: mouse(t); break;
	default:
		if (t->focus == PANE_TABLE ? tui_table_key(t, ch) : tui_plot_key(t, t->focus, ch))
			break;
		if (t->focus != PANE_TABLE && tui_table_key(t, ch))
			break;
		return;
	}
	t->dirty_all = 1;
}

static void handle_key(tui *t, int ch)
{
	if (ch == KEY_RESIZE) {
		layout(t);
		return;
	}
	if (t->help) {
		t->help = 0;
		t->dirty_all = 1;
		return;
	}
	t->message[0] = '\0';
	if (t->focus == PANE_REPL && ch != KEY_MOUSE) {
		if (tui_repl_key(t, ch))
			t->focus = PANE_TABLE;
		t->dirty_all = 1;
		return;
	}
	pane_key(t, ch);
}

/* ---- setup ------------------------------------------------------------------ */

static int open_model(tui *t, const char *path)
{
	lua_getglobal(t->L, "lathe");
	lua_getfield(t->L, -1, "open");
	lua_remove(t->L, -2);
	lua_pushstring(t->L, path);
	if (lt_lua_pcall(t->L, 1, 2) != LUA_OK) {
		fprintf(stderr, "lathe: %s\n", lua_tostring(t->L, -1));
		return -1;
	}
	if (lua_isnil(t->L, -2)) {
		fprintf(stderr, "lathe: %s\n", lua_isstring(t->L, -1) ? lua_tostring(t->L, -1) : path);
		return -1;
	}
	lua_pop(t->L, 1);
	t->opened = lt_lua_to_bench(t->L, -1);
	t->path = path;
	lua_setglobal(t->L, "model");
	return 0;
}

static void init_colors(tui *t)
{
	t->color = has_colors() && !getenv("NO_COLOR");
	if (!t->color)
		return;
	start_color();
	use_default_colors();
	init_pair(1, COLOR_CYAN, -1);    /* focused frame */
	init_pair(2, COLOR_BLACK, COLOR_CYAN); /* status line */
	init_pair(3, COLOR_CYAN, -1);    /* staged */
	init_pair(4, COLOR_WHITE, -1);   /* committed */
	init_pair(5, COLOR_RED, -1);     /* removed / worse */
	init_pair(6, COLOR_GREEN, -1);   /* better */
	init_pair(7, COLOR_YELLOW, -1);  /* marks */
}

int lt_tui_run(const lt_tui_opts *opts)
{
	const char *term = getenv("TERM");
	int no_terminal = !isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO) || !term || !*term ||
			  !strcmp(term, "dumb");
	setlocale(LC_ALL, "");
	tui st = {0}, *t = &st;
	lt_err err = {0};
	lt_lua_opts lo = {.data_dir = opts->data_dir};
	/* The model first: a bad file is an error (exit 1) wherever it runs. */
	t->L = lt_lua_open(&lo, &err);
	if (!t->L) {
		fprintf(stderr, "lathe: %s\n", err.msg);
		return 1;
	}
	if (open_model(t, opts->model_path)) {
		lua_close(t->L);
		return 1;
	}
	if (no_terminal) {
		lua_close(t->L);
		fprintf(stderr, "lathe: the workbench needs a terminal (%s); for scripts use "
				"'lathe run RECIPE.lua %s' or 'lathe lua -m %s'\n",
			!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO) ? "standard input and output must be one"
			: !term || !*term ? "TERM is not set" : "TERM is 'dumb'",
			opts->model_path, opts->model_path);
		return 2;
	}
	if (!(t->worker = lt_worker_new(&err)) || !(t->quick = lt_worker_new(&err))) {
		fprintf(stderr, "lathe: %s\n", err.msg);
		lt_worker_free(t->worker);
		lua_close(t->L);
		return 1;
	}
	const char *fallback[] = {LT_SRCDIR "/samples/data", LT_DATADIR "/samples/data", NULL};
	char no_data[LT_ERR_MSG_MAX + 64] = "";
	if (lt_fmnist_load(opts->data_dir, fallback, LT_SPLIT_VAL, &t->val, &err))
		snprintf(no_data, sizeof no_data, "no accuracy (no validation data): %s", err.msg);
	t->utf8 = !strcmp(nl_langinfo(CODESET), "UTF-8");
	lt_tui_current = t;
	t->seen_version = (uint64_t)-1;
	t->heat_mode = 1; /* staged: what a change just did shows at once */

	if (!initscr()) {
		fprintf(stderr, "lathe: cannot start the terminal screen\n");
		return 1;
	}
	cbreak();
	noecho();
	nonl();
	keypad(stdscr, TRUE);
	nodelay(stdscr, TRUE);
	set_escdelay(25);
	mousemask(BUTTON1_CLICKED | BUTTON1_PRESSED, NULL);
	mouseinterval(0);
	init_colors(t);
	struct sigaction sa = {0}, old;
	sa.sa_handler = on_sigint;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old);
	lt_lua_set_progress(t->L, lua_progress, t);
	lt_lua_set_runner(t->L, tui_runner, t);
	tui_repl_open(t);
	if (no_data[0])
		tui_repl_print(t, no_data);
	tui_repl_print(t, "lathe workbench: `model` is the open model; ? for keys, : for the REPL");
	layout(t);

	int was_busy = 0;
	while (!t->quit) {
		follow_bench(t);
		if (got_sigint) {
			got_sigint = 0;
			lt_worker_cancel_all(t->worker);
			if (t->focus == PANE_REPL)
				tui_repl_key(t, 3); /* as at a shell prompt: drop the line */
			snprintf(t->message, sizeof t->message, "cancelled");
			t->dirty_all = 1;
		}
		/* Keys typed while a REPL kernel ran, in order. */
		if (t->n_typeahead) {
			int keys[sizeof t->typeahead / sizeof *t->typeahead], n = t->n_typeahead;
			memcpy(keys, t->typeahead, (size_t)n * sizeof *keys);
			t->n_typeahead = 0;
			for (int i = 0; i < n && !t->quit; i++)
				handle_key(t, keys[i]);
		}
		/* Draw when something changed; while the worker runs, its
		 * progress is on the status line, so then every turn. */
		int busy = lt_worker_status(t->worker, NULL, 0, NULL, NULL);
		if (t->dirty_all || busy || was_busy)
			tui_draw_all(t);
		was_busy = busy;
		struct pollfd fds[3] = {{STDIN_FILENO, POLLIN, 0}, {lt_worker_fd(t->worker), POLLIN, 0},
					{lt_worker_fd(t->quick), POLLIN, 0}};
		int waiting = t->bench && lt_bench_dirty(t->bench) && t->staged.state == 0;
		int rc = poll(fds, 3, busy ? 100 : waiting ? 50 : 1000);
		if (rc < 0 && errno != EINTR)
			break;
		double t0 = tui_now();
		if (fds[1].revents & POLLIN)
			lt_worker_collect(t->worker);
		if (fds[2].revents & POLLIN)
			lt_worker_collect(t->quick);
		/* Always ask: a resize (SIGWINCH interrupts poll) only shows as
		 * KEY_RESIZE from getch. */
		int ch, keys = 0;
		while (!t->quit && (ch = getch()) != ERR) {
			handle_key(t, ch);
			keys++;
		}
		if (keys && !t->quit) {
			tui_draw_all(t);
			note_latency(t, t0);
		}
	}
	tui_repl_close(t);
	lt_worker_free(t->quick);
	lt_worker_free(t->worker);
	endwin();
	sigaction(SIGINT, &old, NULL);
	lt_tui_current = NULL;
	tui_caches_free();
	for (int i = 0; i < SCROLLBACK; i++)
		free(t->lines[i]);
	tui_rows_free(t);
	lt_dataset_release(&t->val);
	lua_close(t->L);
	return 0;
}
