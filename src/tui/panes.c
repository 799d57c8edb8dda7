/* The layer table and the plots of the selected layer. Drawing reads only
 * cached summaries: histograms are cheap and made here when a tensor
 * changes; spectra come from the worker. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/graph.h"
#include "core/mem.h"
#include "core/scheme.h"
#include "kern/density.h"
#include "kern/spectrum.h"
#include "kern/stats.h"
#include "lbind/lathe.h"
#include "work/sensitivity.h"
#include "tui/internal.h"

/* ---- layer table ---------------------------------------------------------- */

static const char *op_of(const lt_model *m, const char *name)
{
	const lt_graph *g = lt_model_graph(m);
	for (int i = 0; g && i < g->n_nodes; i++)
		for (int s = 0; s < LT_NODE_MAX_PARAMS; s++)
			if (g->nodes[i].params[s] && !strcmp(g->nodes[i].params[s], name))
				return lt_op_name(g->nodes[i].op);
	return "-";
}

/* What a cached summary of tensor x (named name) is valid for. Committed
 * tensors never change (a write to the stage clones a shared tensor
 * first), so for them the tensor itself is the key: stamp 0. A tensor the
 * stage owns alone can be written in place, so its summaries also carry
 * the stage version. */
static uint64_t stamp_of(const tui *t, const char *name, const lt_tensor *x)
{
	if (!t->bench || lt_model_tensor(lt_bench_committed(t->bench), name) == x)
		return 0;
	return lt_bench_version(t->bench) + 1;
}

/* Zero counts per tensor, cached by tensor and stamp (a reference keeps
 * the pointer from being reused while it is cached). */
#define ZCACHE 4096
static struct { lt_tensor *t; uint64_t stamp; int64_t zeros; } zcache[ZCACHE];

static int64_t zeros_of(const tui *t, lt_tensor *x, uint64_t stamp)
{
	size_t h = ((uintptr_t)x >> 4) % ZCACHE;
	if (zcache[h].t == x && zcache[h].stamp == stamp)
		return zcache[h].zeros;
	if (t->frozen)
		return -1; /* unknown until the kernel changing it ends */
	int64_t z = lt_tensor_count_zeros(x); /* stored bytes: no f32 copy */
	lt_tensor_unref(zcache[h].t);
	zcache[h].t = lt_tensor_ref(x);
	zcache[h].stamp = stamp;
	zcache[h].zeros = z;
	return z;
}

static int sort_key;

static int row_cmp(const void *a, const void *b)
{
	const tui_row *x = a, *y = b;
	switch (sort_key) {
	case 1: return (x->params < y->params) - (x->params > y->params);
	case 2: {
		double fx = x->params ? (double)x->zeros / (double)x->params : 0;
		double fy = y->params ? (double)y->zeros / (double)y->params : 0;
		return (fx < fy) - (fx > fy);
	}
	case 3: return (x->bytes < y->bytes) - (x->bytes > y->bytes);
	default: return 0; /* file order: qsort is not stable, so index decides */
	}
}

void tui_rows_free(tui *t)
{
	for (int i = 0; i < t->n_rows; i++)
		lt_free(t->rows[i].name);
	lt_free(t->rows);
	t->rows = NULL;
	t->n_rows = 0;
}

void tui_rows_rebuild(tui *t)
{
	const char *was = t->n_rows && t->sel < t->n_rows ? t->rows[t->sel].name : NULL;
	char keep[256] = "";
	if (was)
		snprintf(keep, sizeof keep, "%s", was);
	tui_rows_free(t);
	t->rows_version = t->bench ? lt_bench_version(t->bench) : 0;
	if (!t->bench)
		return;
	lt_model *m = lt_bench_staged(t->bench);
	size_t n = lt_model_tensor_count(m);
	t->rows = lt_calloc(n ? n : 1, sizeof *t->rows);
	if (!t->rows)
		return;
	for (size_t i = 0; i < n; i++) {
		lt_tensor *x = lt_model_tensor_at(m, i);
		tui_row *r = &t->rows[t->n_rows];
		if (!(r->name = lt_strdup(lt_model_tensor_name(m, i))))
			break;
		t->n_rows++;
		r->op = op_of(m, r->name);
		int nd = lt_tensor_ndim(x), k = 0;
		const int64_t *sh = lt_tensor_shape(x);
		k += snprintf(r->shape + k, sizeof r->shape - (size_t)k, "[");
		for (int d = 0; d < nd && k < (int)sizeof r->shape - 8; d++)
			k += snprintf(r->shape + k, sizeof r->shape - (size_t)k, d ? "x%lld" : "%lld",
				      (long long)sh[d]);
		snprintf(r->shape + k, sizeof r->shape - (size_t)k, "]");
		r->params = lt_tensor_numel(x);
		r->zeros = zeros_of(t, x, stamp_of(t, r->name, x));
		/* a quantized or shared tensor: its code width (the status line
		 * has the packed size, Huffman coding and sparsity included) */
		const lt_scheme *sc = lt_tensor_scheme(x);
		r->bits = sc ? sc->bits : (int)lt_dtype_size(lt_tensor_dtype(x)) * 8;
		r->bytes = ((size_t)r->params * (size_t)r->bits + 7) / 8;
	}
	sort_key = t->sort_key;
	if (t->sort_key)
		qsort(t->rows, (size_t)t->n_rows, sizeof *t->rows, row_cmp);
	t->sel = 0;
	for (int i = 0; keep[0] && i < t->n_rows; i++)
		if (!strcmp(t->rows[i].name, keep))
			t->sel = i;
}

const tui_row *tui_selected(const tui *t)
{
	return t->n_rows && t->sel >= 0 && t->sel < t->n_rows ? &t->rows[t->sel] : NULL;
}

/* Counts in at most 7 characters: 987654, 1.23M, 12.3M, 1.23G. */
static void fmt_count(int64_t v, char *out, size_t n)
{
	if (v >= 1000000000)
		snprintf(out, n, "%.3gG", (double)v / 1e9);
	else if (v >= 1000000)
		snprintf(out, n, "%.3gM", (double)v / 1e6);
	else
		snprintf(out, n, "%lld", (long long)v);
}

void tui_draw_table(tui *t, WINDOW *w)
{
	static const char *const sort_names[] = {"file order", "params", "% zeros", "bytes"};
	char title[64];
	snprintf(title, sizeof title, "Layers (s: sort by %s)", sort_names[t->sort_key]);
	tui_frame(t, w, PANE_TABLE, title);
	int hh, ww;
	getmaxyx(w, hh, ww);
	int inner = ww - 2, rows = hh - 3;
	/* Fixed columns: op 6, shape 14, params 7, %zero 6, bits 3, bytes 8
	 * (with a space before each). The name takes the rest; while it would
	 * get under 12, bytes, bits and op are dropped and shape narrowed. */
	int show_bytes = 1, show_bits = 1, show_op = 1, shape_w = 14;
	int fixed = 7 + 15 + 8 + 7 + 4 + 9;
	if (inner - fixed < 12)
		show_bytes = 0, fixed -= 9;
	if (inner - fixed < 12)
		show_bits = 0, fixed -= 4;
	if (inner - fixed < 12)
		show_op = 0, fixed -= 7;
	if (inner - fixed < 12)
		shape_w = 10, fixed -= 4;
	int nw = inner - fixed < 4 ? 4 : inner - fixed;
	char line[512];
	int k = snprintf(line, sizeof line, "%-*.*s", nw, nw, "name");
	if (show_op)
		k += snprintf(line + k, sizeof line - (size_t)k, " %-6.6s", "op");
	k += snprintf(line + k, sizeof line - (size_t)k, " %-*.*s %7s %6s", shape_w, shape_w, "shape",
		      "params", "%zero");
	if (show_bits)
		k += snprintf(line + k, sizeof line - (size_t)k, " %3s", "bit");
	if (show_bytes)
		snprintf(line + k, sizeof line - (size_t)k, " %8s", "bytes");
	wattron(w, A_BOLD);
	mvwaddnstr(w, 1, 1, line, inner);
	wattroff(w, A_BOLD);
	if (t->sel < t->top)
		t->top = t->sel;
	if (t->sel >= t->top + rows)
		t->top = t->sel - rows + 1;
	for (int i = 0; i < rows && t->top + i < t->n_rows; i++) {
		const tui_row *r = &t->rows[t->top + i];
		char p[24], b[24];
		fmt_count(r->params, p, sizeof p);
		fmt_count((int64_t)r->bytes, b, sizeof b);
		char zf[16] = "   ...";
		if (r->zeros >= 0)
			snprintf(zf, sizeof zf, "%6.1f", r->params ? 100.0 * (double)r->zeros / (double)r->params : 0);
		int len = (int)strlen(r->name);
		if (len > nw) { /* cut in the middle, with a mark: both ends tell layers apart */
			int head = (nw - 1) / 2, tail = nw - 1 - head;
			k = snprintf(line, sizeof line, "%.*s~%s", head, r->name, r->name + len - tail);
		} else
			k = snprintf(line, sizeof line, "%-*s", nw, r->name);
		if (show_op)
			k += snprintf(line + k, sizeof line - (size_t)k, " %-6.6s", r->op);
		k += snprintf(line + k, sizeof line - (size_t)k, " %-*.*s %7s %6s", shape_w, shape_w,
			      r->shape, p, zf);
		if (show_bits)
			k += snprintf(line + k, sizeof line - (size_t)k, " %3d", r->bits);
		if (show_bytes)
			snprintf(line + k, sizeof line - (size_t)k, " %8s", b);
		int selected = t->top + i == t->sel;
		if (selected)
			wattron(w, A_REVERSE);
		mvwaddnstr(w, 2 + i, 1, line, inner);
		if (selected)
			wattroff(w, A_REVERSE);
	}
	if (!t->n_rows)
		mvwaddnstr(w, 2, 1, "(no tensors)", inner);
}

int tui_table_key(tui *t, int key)
{
	int page = t->win[PANE_TABLE] ? getmaxy(t->win[PANE_TABLE]) - 3 : 10;
	switch (key) {
	case KEY_UP:
	case 'k': t->sel--; break;
	case KEY_DOWN:
	case 'j': t->sel++; break;
	case KEY_PPAGE: t->sel -= page; break;
	case KEY_NPAGE: t->sel += page; break;
	case KEY_HOME:
	case 'g': t->sel = 0; break;
	case KEY_END:
	case 'G': t->sel = t->n_rows - 1; break;
	case 's':
		t->sort_key = (t->sort_key + 1) % 4;
		t->rows_version = (uint64_t)-1; /* rebuild in the new order */
		break;
	default: return 0;
	}
	t->sel = t->sel >= t->n_rows ? t->n_rows - 1 : t->sel;
	t->sel = t->sel < 0 ? 0 : t->sel;
	t->heat_x = t->heat_y = 0;
	return 1;
}

/* ---- histogram -------------------------------------------------------------- */

/* The pair of tensors the plots show: committed and staged. */
static int selected_pair(tui *t, lt_tensor **c, lt_tensor **s)
{
	const tui_row *r = tui_selected(t);
	if (!r || !t->bench)
		return 0;
	*s = lt_model_tensor(lt_bench_staged(t->bench), r->name);
	*c = lt_model_tensor(lt_bench_committed(t->bench), r->name);
	if (!*c)
		*c = *s;
	return *s != NULL;
}

/* The selected tensors for a plot that fits its pane, or 0 after saying
 * in the pane why there is no plot. */
static int plot_ready(tui *t, WINDOW *w, int fits, lt_tensor **c, lt_tensor **s)
{
	int ww = getmaxx(w);
	if (!fits) {
		mvwaddnstr(w, 1, 1, "(pane too small)", ww - 2);
		return 0;
	}
	if (!selected_pair(t, c, s)) {
		mvwaddnstr(w, 1, 1, "(nothing to plot)", ww - 2);
		return 0;
	}
	return 1;
}

/* ---- summaries of the selection ------------------------------------------
 * The histogram, heatmap and filter views come from memos: one result per
 * key (the committed and staged tensors, the stage stamp, the pane's
 * parameters). Small tensors are summarised at once; larger ones on the
 * second worker (t->quick), so moving through a big model never waits for
 * them: the pane says "computing" until the result arrives, and a result
 * for a key the pane has left is dropped unread. While a REPL kernel
 * changes the model (t->frozen) nothing new is read from it: panes show
 * what is cached. */
#define INLINE_ELEMS (1 << 20) /* about 2 ms of reading */
#define MEMO_KEY 4
typedef int (*memo_fn)(lt_tensor *c, lt_tensor *s, const int64_t key[MEMO_KEY], void **out, lt_err *err);
typedef struct memo {
	lt_tensor *c, *s;           /* references (part of the key) */
	uint64_t stamp;
	int64_t key[MEMO_KEY];
	int state;                  /* 0 empty, 1 computing, 2 done, 3 failed */
	void *out;                  /* made by the memo_fn */
	void (*release)(void *);    /* frees out (NULL: free) */
	char error[120];
	unsigned gen;               /* atomic: bumped per key; stale jobs stop */
} memo;

struct memo_job {
	memo *m;
	unsigned gen;
	memo_fn fn;
	lt_tensor *c, *s;           /* references */
	int64_t key[MEMO_KEY];
	void *out;
};

static uint64_t summary_generation; /* bumped when a result arrives */

static void memo_release(const memo *m, void *out)
{
	(m->release ? m->release : free)(out);
}

static void memo_clear(memo *m)
{
	lt_tensor_unref(m->c);
	lt_tensor_unref(m->s);
	memo_release(m, m->out);
	*m = (memo){.release = m->release, .gen = m->gen};
}

static int memo_run(lt_job *job, void *arg, lt_err *err)
{
	struct memo_job *j = arg;
	if (lt_job_cancelled(job) || __atomic_load_n(&j->m->gen, __ATOMIC_ACQUIRE) != j->gen)
		return lt_err_set(err, LT_ECANCEL, "cancelled");
	return j->fn(j->c, j->s, j->key, &j->out, err);
}

static void memo_done(void *arg, int rc, const lt_err *err)
{
	struct memo_job *j = arg;
	memo *m = j->m;
	if (j->gen == m->gen && m->state == 1) {
		if (rc == 0) {
			m->out = j->out, m->state = 2;
			j->out = NULL;
		} else if (rc == LT_ECANCEL) {
			memo_clear(m); /* ask again when drawn */
		} else {
			m->state = 3;
			snprintf(m->error, sizeof m->error, "%.110s", err->msg);
		}
		summary_generation++;
		if (lt_tui_current)
			lt_tui_current->dirty_all = 1;
	}
	memo_release(m, j->out);
	lt_tensor_unref(j->c);
	lt_tensor_unref(j->s);
	free(j);
}

/* The memo's result for this key, or NULL with why filled ("computing",
 * an error, or why nothing is read now). */
static void *memo_get(tui *t, memo *m, memo_fn fn, lt_tensor *c, lt_tensor *s, uint64_t stamp,
		      const int64_t key[MEMO_KEY], char *why, size_t n)
{
	if (m->c == c && m->s == s && m->stamp == stamp && !memcmp(m->key, key, sizeof m->key)) {
		if (m->state == 2)
			return m->out;
		snprintf(why, n, "%s", m->state == 3 ? m->error : "computing...");
		if (m->state != 0)
			return NULL;
	}
	if (t->frozen) {
		snprintf(why, n, "(shown when the running kernel ends)");
		return NULL;
	}
	memo_clear(m);
	__atomic_add_fetch(&m->gen, 1, __ATOMIC_RELEASE);
	m->c = lt_tensor_ref(c), m->s = lt_tensor_ref(s), m->stamp = stamp;
	memcpy(m->key, key, sizeof m->key);
	lt_err err = {0};
	int64_t elems = lt_tensor_numel(c) + (s != c ? lt_tensor_numel(s) : 0);
	if (elems <= INLINE_ELEMS || !t->quick) {
		if (fn(c, s, key, &m->out, &err))
			goto fail;
		m->state = 2;
		return m->out;
	}
	/* converted here (f16, bf16), so the worker only reads */
	if (!lt_tensor_data(c, &err) || !lt_tensor_data(s, &err))
		goto fail;
	struct memo_job *j = calloc(1, sizeof *j);
	if (!j) {
		lt_err_set(&err, LT_ENOMEM, "out of memory");
		goto fail;
	}
	*j = (struct memo_job){m, m->gen, fn, lt_tensor_ref(c), lt_tensor_ref(s), {0}, NULL};
	memcpy(j->key, key, sizeof j->key);
	if (lt_worker_submit(t->quick, "summary", memo_run, memo_done, j, &err)) {
		lt_tensor_unref(j->c);
		lt_tensor_unref(j->s);
		free(j);
		goto fail;
	}
	m->state = 1;
	snprintf(why, n, "computing...");
	return NULL;
fail:
	m->state = 3;
	snprintf(m->error, sizeof m->error, "%.110s", err.msg);
	snprintf(why, n, "%s", m->error);
	return NULL;
}

/* ---- histogram -------------------------------------------------------------- */

/* Both histograms over the committed tensor's range (so staged changes
 * show as movement within a fixed frame). key: bins, log_abs. */
typedef struct hist {
	double lo, hi;
	int bins;
	int64_t hc[512], hs[512];
} hist;

static int hist_summary(lt_tensor *c, lt_tensor *s, const int64_t key[MEMO_KEY], void **out, lt_err *err)
{
	int bins = (int)key[0], log_abs = (int)key[1];
	lt_stats st;
	int rc = lt_stats_compute(c, &st, err);
	if (rc)
		return rc;
	double lo = st.min, hi = st.max;
	if (st.n == st.nonfinite)
		return lt_err_set(err, LT_EINVAL, "(nothing to plot: no finite values)");
	if (log_abs) {
		double m = fmax(fabs(st.min), fabs(st.max));
		if (m <= 0)
			return lt_err_set(err, LT_EINVAL, "(all zero: no log scale)");
		hi = log10(m);
		lo = hi - 6;
	} else if (lo == hi) {
		lo -= 0.5, hi += 0.5;
	}
	hist *h = calloc(1, sizeof *h);
	if (!h)
		return lt_err_set(err, LT_ENOMEM, "out of memory");
	h->lo = lo, h->hi = hi, h->bins = bins;
	if ((rc = lt_stats_histogram(c, bins, lo, hi, log_abs, h->hc, err)) ||
	    (rc = lt_stats_histogram(s, bins, lo, hi, log_abs, h->hs, err))) {
		free(h);
		return rc;
	}
	*out = h;
	return 0;
}
static memo hist_memo;

static const char *const eighths[] = {" ", "\u2581", "\u2582", "\u2583", "\u2584", "\u2585", "\u2586", "\u2587", "\u2588"};

void tui_draw_hist(tui *t, WINDOW *w)
{
	char title[128];
	const tui_row *r = tui_selected(t);
	snprintf(title, sizeof title, "Histogram%s %s (l: %s)", t->hist_log ? " log10|w|" : "",
		 r ? r->name : "", t->hist_log ? "linear" : "log");
	tui_frame(t, w, PANE_HIST, title);
	int hh, ww;
	getmaxyx(w, hh, ww);
	int rows = hh - 4, bins = ww - 2;
	lt_tensor *c, *s;
	if (!plot_ready(t, w, rows >= 1 && bins >= 4, &c, &s))
		return;
	bins = bins > 512 ? 512 : bins;
	char why[128];
	const int64_t key[MEMO_KEY] = {bins, t->hist_log};
	const hist *h = memo_get(t, &hist_memo, hist_summary, c, s, stamp_of(t, r->name, s), key, why,
				 sizeof why);
	if (!h) {
		mvwaddnstr(w, 1, 1, why, ww - 2);
		return;
	}
	const int64_t *hc = h->hc, *hs = h->hs;
	double lo = h->lo, hi = h->hi;
	int64_t peak = 1;
	for (int i = 0; i < bins; i++)
		peak = hc[i] > peak ? hc[i] : hs[i] > peak ? hs[i] : peak;
	/* staged as filled bars, committed as a mark on top of its height */
	for (int i = 0; i < bins; i++) {
		double sv = (double)hs[i] / (double)peak * rows, cv = (double)hc[i] / (double)peak * rows;
		for (int y = 0; y < rows; y++) {
			double fill = sv - y;
			int row = hh - 3 - y;
			if (t->color)
				wattron(w, COLOR_PAIR(3));
			if (fill >= 1)
				mvwaddstr(w, row, 1 + i, t->utf8 ? eighths[8] : "#");
			else if (fill > 0)
				mvwaddstr(w, row, 1 + i, t->utf8 ? eighths[(int)(fill * 8)] : (fill >= 0.5 ? "#" : "."));
			if (t->color)
				wattroff(w, COLOR_PAIR(3));
			if (hc[i] != hs[i] && (int)cv == y && cv > 0) {
				if (t->color)
					wattron(w, COLOR_PAIR(4) | A_BOLD);
				mvwaddstr(w, row, 1 + i, t->utf8 ? "\u2594" : "-");
				if (t->color)
					wattroff(w, COLOR_PAIR(4) | A_BOLD);
			}
		}
	}
	char l[32], u[32];
	snprintf(l, sizeof l, t->hist_log ? "1e%.1f" : "%.3g", lo);
	snprintf(u, sizeof u, t->hist_log ? "1e%.1f" : "%.3g", hi);
	mvwprintw(w, hh - 2, 1, "%s", l);
	mvwprintw(w, hh - 2, ww - 1 - (int)strlen(u), "%s", u);
	char legend[64];
	snprintf(legend, sizeof legend, "peak %lld  %s staged %s committed", (long long)peak,
		 t->utf8 ? "\u2588" : "#", t->utf8 ? "\u2594" : "-");
	if ((int)strlen(legend) + (int)strlen(l) + (int)strlen(u) + 4 < ww)
		mvwaddstr(w, hh - 2, (ww - (int)strlen(legend)) / 2, legend);
}

static int pan_step(const tui *t, int across)
{
	WINDOW *w = t->win[PANE_HEAT];
	int n = w ? (across ? getmaxx(w) - 2 : getmaxy(w) - 3) / 4 : 1;
	return n > 1 ? n : 1;
}

int tui_plot_key(tui *t, int pane, int key)
{
	if (pane == PANE_HIST && key == 'l') {
		t->hist_log = !t->hist_log;
		return 1;
	}
	if (pane == PANE_SPEC && key == 'v') {
		if (lt_lua_last_sensitivity(t->L))
			t->spec_view = !t->spec_view;
		else
			snprintf(t->message, sizeof t->message, "no sensitivity analysis yet: run "
				 "lathe.sensitivity(model) in the REPL");
		return 1;
	}
	if (pane == PANE_HEAT) {
		switch (key) {
		case 'm': t->heat_mode = (t->heat_mode + 1) % 4; return 1; /* 3 only for conv */
		case '+': t->heat_zoom = t->heat_zoom < 6 ? t->heat_zoom + 1 : 6; return 1;
		case '-': t->heat_zoom = t->heat_zoom > 0 ? t->heat_zoom - 1 : 0; return 1;
		/* a quarter of the visible cells per key (one tile row in the
		 * per-filter view) */
		case KEY_LEFT: t->heat_x -= pan_step(t, 1); return 1;
		case KEY_RIGHT: t->heat_x += pan_step(t, 1); return 1;
		case KEY_UP: t->heat_y -= t->heat_mode == 3 ? 1 : pan_step(t, 0); return 1;
		case KEY_DOWN: t->heat_y += t->heat_mode == 3 ? 1 : pan_step(t, 0); return 1;
		default: return 0;
		}
	}
	return 0;
}

/* ---- heatmap ------------------------------------------------------------------ */

static const char *const ramp_utf8[] = {" ", "\u2591", "\u2592", "\u2593", "\u2588"};
static const char *const ramp_ascii[] = {" ", ".", ":", "+", "#"};

/* Glyph for a fraction in [0, 1]: blank only for exactly 0, full only for
 * exactly 1, so an empty or a dense block is never mistaken for a mix. */
static const char *ramp(const tui *t, double f)
{
	int k = f <= 0 ? 0 : f >= 1 ? 4 : 1 + (int)(f * 2.999);
	return t->utf8 ? ramp_utf8[k] : ramp_ascii[k];
}

/* The grid a heatmap shows: cells of the whole view at zoom 2^z, of which
 * the pane shows a window starting at (heat_x, heat_y). key: mode (0
 * committed, 1 staged, 2 changed), grid width, grid height. */
typedef struct heat {
	int cw, ch;         /* grid actually used */
	int64_t rows, cols;
	double cells[];     /* [ch*cw] */
} heat;

static heat *heat_new(const double *cells, int gw, int gh, int64_t rows, int64_t cols)
{
	size_t n = (size_t)gw * (size_t)gh;
	heat *h = malloc(sizeof *h + n * sizeof *cells);
	if (!h)
		return NULL;
	memcpy(h->cells, cells, n * sizeof *cells);
	h->cw = gw, h->ch = gh, h->rows = rows, h->cols = cols;
	return h;
}

static int heat_summary(lt_tensor *c, lt_tensor *s, const int64_t key[MEMO_KEY], void **out, lt_err *err)
{
	int mode = (int)key[0], gw = (int)key[1], gh = (int)key[2];
	heat *h = NULL;
	if (mode == 2) {
		lt_density_diff *d = lt_density_diff_of(c, s, gw, gh, err);
		if (!d)
			return err->code;
		h = heat_new(d->changed, d->gw, d->gh, d->rows, d->cols);
		lt_density_diff_free(d);
	} else {
		lt_density *d = lt_density_of_tensor(mode ? s : c, gw, gh, err);
		if (!d)
			return err->code;
		h = heat_new(d->nonzero, d->gw, d->gh, d->rows, d->cols);
		lt_density_free(d);
	}
	if (!h)
		return lt_err_set(err, LT_ENOMEM, "out of memory");
	*out = h;
	return 0;
}
static memo heat_memo;

/* The per-filter map of the staged tensor (c is s). */
static int filter_summary(lt_tensor *c, lt_tensor *s, const int64_t key[MEMO_KEY], void **out, lt_err *err)
{
	(void)c, (void)key;
	lt_filter_map *f = lt_filter_map_of(s, err);
	*out = f;
	return f ? 0 : err->code;
}
static void filter_release(void *f)
{
	lt_filter_map_free(f);
}
static memo filter_memo = {.release = filter_release};

/* Per-filter view of a staged conv weight: one kh x kw tile per output
 * filter, each cell the share of input channels non-zero at that kernel
 * position (a pruned filter is a blank tile). Rows of tiles scroll with
 * the arrows. */
static void draw_filters(tui *t, WINDOW *w, lt_tensor *s, int vw, int vh)
{
	char why[128];
	const int64_t key[MEMO_KEY] = {0};
	const lt_filter_map *f = memo_get(t, &filter_memo, filter_summary, s, s,
					  stamp_of(t, tui_selected(t)->name, s), key, why, sizeof why);
	if (!f) {
		mvwaddnstr(w, 1, 1, why, vw);
		return;
	}
	int tw = (int)f->kw + 1, th = (int)f->kh + 1;
	int per_row = vw / tw > 0 ? vw / tw : 1;
	int64_t tile_rows = (f->out + per_row - 1) / per_row;
	int shown = vh / th > 0 ? vh / th : 1;
	int64_t maxy = tile_rows - shown > 0 ? tile_rows - shown : 0;
	t->heat_y = t->heat_y < 0 ? 0 : t->heat_y > maxy ? (int)maxy : t->heat_y;
	int64_t first = (int64_t)t->heat_y * per_row, last = first;
	for (int64_t o = first; o < f->out; o++) {
		int64_t tr = o / per_row - t->heat_y;
		if (tr >= shown)
			break;
		last = o + 1;
		int x0 = 1 + (int)(o % per_row) * tw, y0 = 1 + (int)tr * th;
		for (int64_t ky = 0; ky < f->kh && y0 + ky < 1 + vh; ky++)
			for (int64_t kx = 0; kx < f->kw; kx++) {
				if (t->color)
					wattron(w, COLOR_PAIR(3));
				mvwaddstr(w, y0 + (int)ky, x0 + (int)kx, ramp(t, f->tiles[(o * f->kh + ky) * f->kw + kx]));
				if (t->color)
					wattroff(w, COLOR_PAIR(3));
			}
	}
	char foot[96];
	snprintf(foot, sizeof foot, "filters %lld-%lld of %lld%s", (long long)first + 1, (long long)last,
		 (long long)f->out, tile_rows > shown ? " (Up/Down scroll)" : "");
	mvwaddnstr(w, 1 + vh, 1, foot, vw);
}

void tui_draw_heat(tui *t, WINDOW *w)
{
	static const char *const modes[] = {"committed", "staged", "changed", "per filter (staged)"};
	lt_tensor *c, *s;
	int have = selected_pair(t, &c, &s);
	if (t->heat_mode == 3 && (!have || lt_tensor_ndim(s) != 4))
		t->heat_mode = 0; /* the filter view is for conv weights only */
	char title[128];
	if (t->heat_mode == 3)
		snprintf(title, sizeof title, "Non-zeros %s (m: mode)", modes[t->heat_mode]);
	else
		snprintf(title, sizeof title, "Non-zeros %s (m: mode, +/-: zoom %dx)", modes[t->heat_mode],
			 1 << t->heat_zoom);
	tui_frame(t, w, PANE_HEAT, title);
	int hh, ww;
	getmaxyx(w, hh, ww);
	int vw = ww - 2, vh = hh - 3;
	char why[128] = "(nothing to show)";
	if (have && t->heat_mode == 3 && vw > 2 && vh > 1) {
		draw_filters(t, w, s, vw, vh);
		return;
	}
	const heat *hmap = NULL;
	if (vw >= 2 && vh >= 1 && have) {
		const int64_t key[MEMO_KEY] = {t->heat_mode, (int64_t)vw << t->heat_zoom,
					       (int64_t)vh << t->heat_zoom};
		hmap = memo_get(t, &heat_memo, heat_summary, c, s, stamp_of(t, tui_selected(t)->name, s), key,
				why, sizeof why);
	}
	if (!hmap) {
		mvwaddnstr(w, 1, 1, why, ww - 2);
		return;
	}
	/* pan within the zoomed grid */
	int maxx = hmap->cw - vw > 0 ? hmap->cw - vw : 0, maxy = hmap->ch - vh > 0 ? hmap->ch - vh : 0;
	t->heat_x = t->heat_x < 0 ? 0 : t->heat_x > maxx ? maxx : t->heat_x;
	t->heat_y = t->heat_y < 0 ? 0 : t->heat_y > maxy ? maxy : t->heat_y;
	for (int y = 0; y < vh && y + t->heat_y < hmap->ch; y++)
		for (int x = 0; x < vw && x + t->heat_x < hmap->cw; x++) {
			double f = hmap->cells[(size_t)(y + t->heat_y) * (size_t)hmap->cw + (size_t)(x + t->heat_x)];
			if (t->color)
				wattron(w, COLOR_PAIR(t->heat_mode == 2 ? 5 : 3));
			mvwaddstr(w, 1 + y, 1 + x, ramp(t, f));
			if (t->color)
				wattroff(w, COLOR_PAIR(t->heat_mode == 2 ? 5 : 3));
		}
	char foot[128];
	snprintf(foot, sizeof foot, "[%lldx%lld] cells %dx%d at %d,%d  %s0 %s1", (long long)hmap->rows,
		 (long long)hmap->cols, hmap->cw, hmap->ch, t->heat_x, t->heat_y, ramp(t, 0), ramp(t, 1));
	mvwaddnstr(w, hh - 2, 1, foot, ww - 2);
}

/* ---- spectrum ------------------------------------------------------------------- */

/* Spectra by tensor, made on the worker. A slot holds a reference to its
 * tensor, so the pointer stays unique while cached. */
#define SPEC_CACHE 32
typedef struct spec_slot {
	lt_tensor *t;
	uint64_t stamp;
	int state;          /* 1 running, 2 done, 3 failed */
	lt_spectrum *s;
	char error[120];
	double used;
} spec_slot;
static spec_slot scache[SPEC_CACHE];

struct spec_job {
	lt_tensor *t;       /* a reference */
	uint64_t stamp;
	lt_spectrum *s;
};

static int spec_values(void *arg, void *out, size_t size, lt_err *err)
{
	(void)size;
	struct spec_job *j = arg;
	int64_t rows, cols;
	const float *w = lt_spectrum_view(j->t, &rows, &cols, err) ? NULL : lt_tensor_data(j->t, err);
	return w ? lt_spectrum_singular_values(w, rows, cols, LT_SVD_AUTO, out, err) : err->code;
}

/* Large matrices are factored in a child process: cancelling (a new
 * selection, Esc, a REPL statement waiting for the worker) kills it at
 * once instead of waiting for the LAPACK call in progress. */
static int spec_run(lt_job *job, void *arg, lt_err *err)
{
	struct spec_job *j = arg;
	if (lt_job_cancelled(job))
		return lt_err_set(err, LT_ECANCEL, "cancelled");
	int64_t rows, cols;
	const float *w = lt_spectrum_view(j->t, &rows, &cols, err) ? NULL : lt_tensor_data(j->t, err);
	if (!w)
		return err->code;
	int64_t k = rows < cols ? rows : cols;
	if ((double)rows * (double)cols * (double)k < 3e7) {
		j->s = lt_spectrum_compute(w, rows, cols, LT_SVD_AUTO, err);
		return j->s ? 0 : err->code;
	}
	double *sigma = malloc((size_t)k * sizeof *sigma);
	if (!sigma)
		return lt_err_set(err, LT_ENOMEM, "out of memory for %" PRId64 " singular values", k);
	int rc = lt_job_in_child(job, spec_values, j, sigma, (size_t)k * sizeof *sigma, err);
	if (!rc && !(j->s = lt_spectrum_from_values(sigma, rows, cols, lt_spectrum_fro2(w, rows, cols),
						  lt_spectrum_route(rows, cols), err)))
		rc = err->code;
	free(sigma);
	return rc;
}

static uint64_t spec_generation; /* bumped when a spectrum arrives */

static void spec_done(void *arg, int rc, const lt_err *err)
{
	struct spec_job *j = arg;
	spec_generation++;
	for (int i = 0; i < SPEC_CACHE; i++)
		if (scache[i].t == j->t && scache[i].stamp == j->stamp && scache[i].state == 1) {
			if (rc == 0) {
				scache[i].s = j->s, scache[i].state = 2;
				j->s = NULL;
			} else if (rc == LT_ECANCEL) {
				lt_tensor_unref(scache[i].t); /* ask again when drawn */
				scache[i].t = NULL, scache[i].state = 0;
			} else {
				scache[i].state = 3;
				snprintf(scache[i].error, sizeof scache[i].error, "%.110s", err->msg);
			}
		}
	if (lt_tui_current)
		lt_tui_current->dirty_all = 1;
	lt_spectrum_free(j->s);
	lt_tensor_unref(j->t);
	free(j);
}

/* The cached spectrum of x, starting its job if there is none. */
static spec_slot *spectrum_of(tui *t, lt_tensor *x, uint64_t stamp)
{
	int victim = 0;
	for (int i = 0; i < SPEC_CACHE; i++) {
		if (scache[i].t == x && scache[i].stamp == stamp) {
			scache[i].used = tui_now();
			return &scache[i];
		}
		if (scache[i].state != 1 && scache[i].used < scache[victim].used)
			victim = i;
	}
	if (scache[victim].state == 1 || t->frozen)
		return NULL; /* every slot busy, or nothing may be read now */
	if (!lt_tensor_data(x, NULL)) /* converted here, so the worker only reads */
		return NULL;
	struct spec_job *j = calloc(1, sizeof *j);
	if (!j)
		return NULL;
	spec_slot *sl = &scache[victim];
	lt_tensor_unref(sl->t);
	lt_spectrum_free(sl->s);
	*sl = (spec_slot){.t = lt_tensor_ref(x), .stamp = stamp, .state = 1, .used = tui_now()};
	j->t = lt_tensor_ref(x);
	j->stamp = stamp;
	char label[96];
	snprintf(label, sizeof label, "spectrum %s", tui_selected(t) ? tui_selected(t)->name : "");
	if (lt_worker_submit(t->worker, label, spec_run, spec_done, j, NULL)) {
		lt_tensor_unref(j->t);
		free(j);
		lt_tensor_unref(sl->t);
		*sl = (spec_slot){0};
		return NULL;
	}
	return sl;
}

/* Row of the plot for log10(sigma / sigma_max) in [lo, 0]. */
static int spec_row(double v, double lo, int top, int rows)
{
	double f = (v - lo) / -lo;
	f = f < 0 ? 0 : f > 1 ? 1 : f;
	return top + (int)((1 - f) * (rows - 1) + 0.5);
}

/* ---- sensitivity --------------------------------------------------------------
 * The last lathe.sensitivity sweep, in the spectrum's place (v toggles):
 * accuracy against sparsity, one curve per layer drawn with its letter,
 * each starting at the unpruned accuracy; the selected layer on top, bold. */
static void draw_sens(tui *t, WINDOW *w, const lt_sensitivity *sv)
{
	tui_frame(t, w, PANE_SPEC, "Sensitivity (v: spectrum)");
	int hh, ww;
	getmaxyx(w, hh, ww);
	int rows = hh - 4, left = 7, cols = ww - 2 - left;
	if (rows < 3 || cols < 8 || sv->n_tensors < 1) {
		mvwaddnstr(w, 1, 1, "(pane too small)", ww - 2);
		return;
	}
	double lo = sv->baseline, hi = sv->baseline;
	for (int i = 0; i < sv->n_tensors * sv->n_levels; i++)
		lo = fmin(lo, sv->accuracy[i]), hi = fmax(hi, sv->accuracy[i]);
	if (hi - lo < 0.01)
		lo = hi - 0.01;
	mvwprintw(w, 1, 1, "%5.1f%%", 100 * hi);
	mvwprintw(w, rows, 1, "%5.1f%%", 100 * lo);
	const tui_row *r = tui_selected(t);
	int sel = -1;
	for (int i = 0; r && i < sv->n_tensors; i++)
		if (!strcmp(sv->tensors[i], r->name))
			sel = i;
	/* the selected layer last, so it is on top */
	for (int k = 0; k < sv->n_tensors; k++) {
		int i = sel < 0 ? k : k == sv->n_tensors - 1 ? sel : k >= sel ? k + 1 : k;
		const double *acc = sv->accuracy + (size_t)i * (size_t)sv->n_levels;
		char mark[2] = {(char)(i < 26 ? 'a' + i : i < 52 ? 'A' + i - 26 : '*'), 0};
		int attr = (t->color ? COLOR_PAIR(3 + i % 5) : 0) | (i == sel ? A_BOLD : 0);
		wattron(w, attr);
		for (int x = 0; x < cols; x++) {
			double sp = (double)x / (double)(cols - 1), a = sv->baseline;
			double x0 = 0, a0 = sv->baseline; /* the segment holding sp */
			int j = 0;
			while (j < sv->n_levels && sv->levels[j] < sp)
				x0 = sv->levels[j], a0 = acc[j], j++;
			if (j == sv->n_levels)
				break; /* beyond the last level measured */
			double x1 = sv->levels[j], a1 = acc[j];
			a = x1 > x0 ? a0 + (a1 - a0) * (sp - x0) / (x1 - x0) : a1;
			int y = 1 + (int)((hi - a) / (hi - lo) * (rows - 1) + 0.5);
			mvwaddstr(w, y, 1 + left + x, mark);
		}
		/* the measured points themselves, where columns may step over them */
		for (int j = 0; j < sv->n_levels; j++) {
			int x = (int)(sv->levels[j] * (cols - 1) + 0.5);
			int y = 1 + (int)((hi - acc[j]) / (hi - lo) * (rows - 1) + 0.5);
			mvwaddstr(w, y, 1 + left + x, mark);
		}
		wattroff(w, attr);
	}
	mvwaddstr(w, rows + 1, 1 + left, "0%");
	mvwaddstr(w, rows + 1, ww - 6, "100%");
	/* legend: letter and layer, as many as fit */
	int x = 1;
	for (int i = 0; i < sv->n_tensors && x < ww - 4; i++) {
		char item[80];
		const char *name = sv->tensors[i];
		size_t len = strlen(name);
		if (len > 7 && !strcmp(name + len - 7, ".weight"))
			len -= 7; /* the layer's name */
		snprintf(item, sizeof item, "%c %.*s  ", i < 26 ? 'a' + i : i < 52 ? 'A' + i - 26 : '*', (int)len, name);
		int n = (int)strlen(item);
		if (x + n > ww - 1)
			n = ww - 1 - x;
		if (i == sel)
			wattron(w, A_BOLD);
		mvwaddnstr(w, hh - 2, x, item, n);
		if (i == sel)
			wattroff(w, A_BOLD);
		x += n;
	}
}

void tui_draw_spec(tui *t, WINDOW *w)
{
	const lt_sensitivity *sv = t->spec_view ? lt_lua_last_sensitivity(t->L) : NULL;
	if (sv) {
		draw_sens(t, w, sv);
		return;
	}
	const tui_row *r = tui_selected(t);
	char title[128];
	snprintf(title, sizeof title, "Singular values %s (log)", r ? r->name : "");
	tui_frame(t, w, PANE_SPEC, title);
	int hh, ww;
	getmaxyx(w, hh, ww);
	int rows = hh - 4, cols = ww - 8;
	lt_tensor *c, *s;
	if (!plot_ready(t, w, rows >= 2 && cols >= 4, &c, &s))
		return;
	if (lt_tensor_ndim(s) < 2) {
		mvwaddnstr(w, 1, 1, "a 1-D tensor has no spectrum", ww - 2);
		return;
	}
	spec_slot *sc = spectrum_of(t, c, 0);
	spec_slot *ss = s == c ? sc : spectrum_of(t, s, stamp_of(t, tui_selected(t)->name, s));
	if (!sc || !ss || sc->state == 1 || ss->state == 1) {
		mvwaddnstr(w, 1, 1, t->frozen && (!sc || !ss) ? "(shown when the running kernel ends)"
							       : "computing...", ww - 2);
		return;
	}
	if (sc->state == 3 || ss->state == 3) {
		mvwaddnstr(w, 1, 1, sc->state == 3 ? sc->error : ss->error, ww - 2);
		return;
	}
	const lt_spectrum *a = sc->s, *b = ss->s;
	if (a->sigma_max <= 0) {
		mvwaddnstr(w, 1, 1, "all zero", ww - 2);
		return;
	}
	/* y: log10(sigma / committed sigma_max) down to the smallest shown */
	double lo = -1;
	for (int64_t i = 0; i < a->count; i++)
		if (a->sigma[i] > 0)
			lo = fmin(lo, log10(a->sigma[i] / a->sigma_max));
	lo = fmax(lo, -8);
	int left = 7;
	mvwprintw(w, 1, 1, "%5s", "1");
	mvwprintw(w, 1 + rows - 1, 1, "1e%-3.0f", lo);
	for (int x = 0; x < cols; x++) {
		int64_t i = (int64_t)((double)x / cols * (double)a->count);
		if (i >= a->count)
			break;
		/* energy curve (linear, 0 at the bottom, 1 at the top) */
		int ey = 1 + (int)((1 - a->cum_energy[i]) * (rows - 1) + 0.5);
		if (t->color)
			wattron(w, COLOR_PAIR(7));
		mvwaddstr(w, ey, left + x, t->utf8 ? "\u00b7" : ".");
		if (t->color)
			wattroff(w, COLOR_PAIR(7));
		if (a->sigma[i] > 0) {
			if (t->color)
				wattron(w, COLOR_PAIR(4));
			mvwaddstr(w, spec_row(log10(a->sigma[i] / a->sigma_max), lo, 1, rows), left + x, "o");
			if (t->color)
				wattroff(w, COLOR_PAIR(4));
		}
		if (b != a && i < b->count && b->sigma[i] > 0) {
			if (t->color)
				wattron(w, COLOR_PAIR(3) | A_BOLD);
			mvwaddstr(w, spec_row(log10(b->sigma[i] / a->sigma_max), lo, 1, rows), left + x, "*");
			if (t->color)
				wattroff(w, COLOR_PAIR(3) | A_BOLD);
		}
	}
	/* rank marks at 90/95/99 % energy (of the staged spectrum) */
	const int64_t marks[3] = {b->rank90, b->rank95, b->rank99};
	const char *names[3] = {"9", "5", "!"};
	for (int k = 0; k < 3; k++) {
		int x = (int)((double)(marks[k] - 1) / (double)b->count * cols);
		if (x >= 0 && x < cols)
			mvwaddstr(w, hh - 3, left + x, names[k]);
	}
	char foot[160];
	snprintf(foot, sizeof foot, "r90/95/99 %lld/%lld/%lld  stable %.1f  eff %.1f  alpha %.2f%s",
		 (long long)b->rank90, (long long)b->rank95, (long long)b->rank99, b->stable_rank,
		 b->effective_rank, b->alpha, b != a ? "  o committed * staged" : "");
	mvwaddnstr(w, hh - 2, 1, foot, ww - 2);
}

/* ---- SVG export ------------------------------------------------------------------- */

static void svg_text(FILE *f, double x, double y, const char *anchor, const char *s)
{
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\">", x, y, anchor);
	for (; *s; s++)
		switch (*s) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		default: fputc(*s, f);
		}
	fputs("</text>\n", f);
}

/* Plots as standalone SVG (no scripts, no external references), drawn from
 * the same data as the panes at a resolution of their own. */
int tui_export_svg(tui *t, int pane, const char *path, char *msg, size_t size)
{
	lt_tensor *c, *s;
	const tui_row *r = tui_selected(t);
	if (!r || !selected_pair(t, &c, &s)) {
		snprintf(msg, size, "export: no layer selected");
		return -1;
	}
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f) {
		snprintf(msg, size, "export: cannot write %.200s: %s", path, strerror(errno));
		return -1;
	}
	const double W = 720, H = 400, L = 60, R = 20, T = 40, B = 50, pw = W - L - R, ph = H - T - B;
	fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		   "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
		   "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n"
		   "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", W, H, W, H);
	char title[300];
	int rc = 0;
	const lt_sensitivity *sv = pane == PLOT_SENS ? lt_lua_last_sensitivity(t->L) : NULL;
	if (pane == PLOT_SENS) {
		if (!sv) {
			rc = -1;
		} else {
			static const char *const color[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
				"#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
			double lo = sv->baseline, hi = sv->baseline;
			for (int i = 0; i < sv->n_tensors * sv->n_levels; i++)
				lo = fmin(lo, sv->accuracy[i]), hi = fmax(hi, sv->accuracy[i]);
			if (hi - lo < 0.01)
				lo = hi - 0.01;
			snprintf(title, sizeof title, "Sensitivity: accuracy (%%) when one layer is pruned, %lld images",
				 (long long)sv->images);
			for (int i = 0; i < sv->n_tensors; i++) {
				const char *col = color[i % 10];
				fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"%.2f,%.2f", col,
					L, T + ph * (hi - sv->baseline) / (hi - lo));
				for (int j = 0; j < sv->n_levels; j++)
					fprintf(f, " %.2f,%.2f", L + pw * sv->levels[j],
						T + ph * (hi - sv->accuracy[(size_t)i * sv->n_levels + j]) / (hi - lo));
				fprintf(f, "\"/>\n");
				char lab[120];
				snprintf(lab, sizeof lab, "%.100s", sv->tensors[i]);
				fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"10\" height=\"3\" fill=\"%s\"/>\n",
					L + 10, T + 12 + 14.0 * i, col);
				svg_text(f, L + 24, T + 16 + 14.0 * i, "start", lab);
			}
			char a[32], b[32];
			snprintf(a, sizeof a, "%.1f", 100 * hi);
			snprintf(b, sizeof b, "%.1f", 100 * lo);
			svg_text(f, L - 6, T + 10, "end", a);
			svg_text(f, L - 6, T + ph, "end", b);
			svg_text(f, L, H - B + 18, "start", "sparsity 0");
			svg_text(f, L + pw, H - B + 18, "end", "1");
		}
	} else if (pane == PANE_HIST) {
		enum { BINS = 100 };
		const int64_t key[MEMO_KEY] = {BINS, t->hist_log};
		hist *h = NULL;
		if (hist_summary(c, s, key, (void **)&h, NULL)) {
			rc = -1;
		} else {
			const int64_t *hc = h->hc, *hs = h->hs;
			int64_t peak = 1;
			for (int i = 0; i < BINS; i++)
				peak = hc[i] > peak ? hc[i] : hs[i] > peak ? hs[i] : peak;
			snprintf(title, sizeof title, "Histogram of %s%s (staged bars, committed outline)", r->name,
				 t->hist_log ? ", log10|w|" : "");
			for (int i = 0; i < BINS; i++) {
				double x = L + pw * i / BINS, bw = pw / BINS, hgt = ph * (double)hs[i] / (double)peak;
				fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"#3a7ebf\"/>\n",
					x, T + ph - hgt, bw, hgt);
			}
			fprintf(f, "<polyline fill=\"none\" stroke=\"black\" stroke-width=\"1\" points=\"");
			for (int i = 0; i < BINS; i++) {
				double x = L + pw * i / BINS, y = T + ph - ph * (double)hc[i] / (double)peak;
				fprintf(f, "%.2f,%.2f %.2f,%.2f ", x, y, x + pw / BINS, y);
			}
			fprintf(f, "\"/>\n");
			char a[32], b[32];
			snprintf(a, sizeof a, t->hist_log ? "1e%.1f" : "%.3g", h->lo);
			snprintf(b, sizeof b, t->hist_log ? "1e%.1f" : "%.3g", h->hi);
			svg_text(f, L, H - B + 18, "start", a);
			svg_text(f, L + pw, H - B + 18, "end", b);
		}
		free(h);
	} else if (pane == PANE_HEAT) {
		lt_density *d = lt_density_of_tensor(t->heat_mode == 0 ? c : s, 96, 48, NULL);
		if (!d) {
			rc = -1;
		} else {
			snprintf(title, sizeof title, "Non-zero density of %s (%s), %lldx%lld in %dx%d cells", r->name,
				 t->heat_mode == 0 ? "committed" : "staged", (long long)d->rows, (long long)d->cols,
				 d->gw, d->gh);
			double cw = pw / d->gw, ch = ph / d->gh;
			for (int y = 0; y < d->gh; y++)
				for (int x = 0; x < d->gw; x++) {
					int g = 255 - (int)(255 * d->nonzero[y * d->gw + x]);
					fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" "
						   "fill=\"rgb(%d,%d,%d)\"/>\n", L + x * cw, T + y * ch, cw + 0.05, ch + 0.05,
						g, g, g);
				}
			svg_text(f, L, H - B + 18, "start", "white = all zero, black = dense");
			lt_density_free(d);
		}
	} else {
		lt_err err = {0};
		lt_spectrum *a = lt_spectrum_of_tensor(c, LT_SVD_AUTO, &err);
		lt_spectrum *b = a && s != c ? lt_spectrum_of_tensor(s, LT_SVD_AUTO, &err) : NULL;
		if (!a || (s != c && !b) || a->sigma_max <= 0) {
			rc = -1;
		} else {
			snprintf(title, sizeof title, "Singular values of %s (log scale; grey: cumulative energy)",
				 r->name);
			double lo = -1;
			for (int64_t i = 0; i < a->count; i++)
				if (a->sigma[i] > 0)
					lo = fmin(lo, log10(a->sigma[i] / a->sigma_max));
			lo = fmax(lo, -8);
			const lt_spectrum *sp[2] = {a, b};
			const char *color[2] = {"black", "#d9480f"};
			fprintf(f, "<polyline fill=\"none\" stroke=\"#999\" points=\"");
			for (int64_t i = 0; i < a->count; i++)
				fprintf(f, "%.2f,%.2f ", L + pw * (double)i / (double)a->count, T + ph * (1 - a->cum_energy[i]));
			fprintf(f, "\"/>\n");
			for (int k = 0; k < 2; k++) {
				if (!sp[k])
					continue;
				fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" points=\"", color[k]);
				for (int64_t i = 0; i < sp[k]->count; i++) {
					if (sp[k]->sigma[i] <= 0)
						break;
					double v = fmax(log10(sp[k]->sigma[i] / a->sigma_max), lo);
					fprintf(f, "%.2f,%.2f ", L + pw * (double)i / (double)a->count, T + ph * v / lo);
				}
				fprintf(f, "\"/>\n");
			}
			char lab[64];
			snprintf(lab, sizeof lab, "1e%.0f", lo);
			svg_text(f, L - 6, T + ph, "end", lab);
			svg_text(f, L - 6, T + 10, "end", "1");
			snprintf(lab, sizeof lab, "rank at 99%% energy: %lld of %lld", (long long)(b ? b : a)->rank99,
				 (long long)a->count);
			svg_text(f, L, H - B + 18, "start", b ? "black: committed, orange: staged" : "");
			svg_text(f, L + pw, H - B + 18, "end", lab);
		}
		lt_spectrum_free(a);
		lt_spectrum_free(b);
	}
	if (rc == 0) {
		fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"black\"/>\n",
			L, T, pw, ph);
		svg_text(f, W / 2, 24, "middle", title);
		fputs("</svg>\n", f);
	}
	if (fclose(f) != 0 || rc != 0 || rename(tmp, path) != 0) {
		if (rc == 0)
			snprintf(msg, size, "export: cannot write %.200s: %s", path, strerror(errno));
		else if (pane == PLOT_SENS)
			snprintf(msg, size, "export: no sensitivity analysis yet (run lathe.sensitivity(model))");
		else
			snprintf(msg, size, "export: nothing to plot for %s", r->name);
		unlink(tmp);
		return -1;
	}
	if (pane == PLOT_SENS)
		snprintf(msg, size, "exported the sensitivity analysis to %.200s", path);
	else
		snprintf(msg, size, "exported %s of %s to %.200s", pane == PANE_HIST ? "histogram" :
			 pane == PANE_HEAT ? "heatmap" : "spectrum", r->name, path);
	return 0;
}

void tui_caches_free(void)
{
	for (int i = 0; i < ZCACHE; i++) {
		lt_tensor_unref(zcache[i].t);
		zcache[i].t = NULL;
	}
	memo_clear(&hist_memo);
	memo_clear(&heat_memo);
	memo_clear(&filter_memo);
	for (int i = 0; i < SPEC_CACHE; i++) {
		lt_tensor_unref(scache[i].t);
		lt_spectrum_free(scache[i].s);
		scache[i] = (spec_slot){0};
	}
}

void tui_pane_sig(tui *t, int pane, uint64_t sig[TUI_SIG])
{
	lt_tensor *c = NULL, *st = NULL;
	const tui_row *r = tui_selected(t);
	if (pane != PANE_TABLE && selected_pair(t, &c, &st)) {
		sig[1] = (uint64_t)(uintptr_t)c;
		sig[2] = (uint64_t)(uintptr_t)st;
		sig[3] = stamp_of(t, r->name, st);
	}
	switch (pane) {
	case PANE_TABLE:
		sig[1] = t->rows_version;
		sig[2] = (uint64_t)t->sel | (uint64_t)t->top << 32;
		sig[3] = (uint64_t)t->sort_key | (uint64_t)t->n_rows << 8;
		for (int i = 0; i < t->n_rows; i++) /* % zeros of every row */
			sig[4] = sig[4] * 31 + (uint64_t)t->rows[i].zeros;
		break;
	case PANE_HIST: sig[4] = (uint64_t)t->hist_log | (uint64_t)summary_generation << 8; break;
	case PANE_HEAT:
		sig[4] = (uint64_t)t->heat_mode | (uint64_t)t->heat_zoom << 8 | (uint64_t)summary_generation << 16;
		sig[5] = (uint64_t)(uint32_t)t->heat_x | (uint64_t)(uint32_t)t->heat_y << 32;
		break;
	case PANE_SPEC:
		sig[4] = spec_generation;
		sig[5] = (uint64_t)(uintptr_t)lt_lua_last_sensitivity(t->L) | (uint64_t)t->spec_view;
		break;
	default: break;
	}
	sig[8] = (uint64_t)t->frozen;
	sig[9] = (uint64_t)t->sel;
}
