/* Shared by the files of the workbench TUI (not installed). */
#ifndef LT_TUI_INTERNAL_H
#define LT_TUI_INTERNAL_H

#include <curses.h>
#include <lua.h>
#include <stdint.h>

#include "core/model.h"
#include "data/dataset.h"
#include "job/worker.h"
#include "work/bench.h"

enum { PANE_TABLE, PANE_HIST, PANE_HEAT, PANE_SPEC, PANE_REPL, PANE_COUNT };
/* tui_export_svg only: the last sensitivity sweep (shown in the spectrum pane) */
enum { PLOT_SENS = PANE_COUNT };

/* One row of the layer table: a tensor of the staged model. */
typedef struct tui_row {
	char *name;            /* owned copy: the stage it came from may be gone */
	const char *op;        /* layer op, "-" for tensors outside the graph */
	char shape[40];
	int64_t params, zeros;
	int bits;
	size_t bytes;
} tui_row;

/* Accuracy and size of one model state, measured on the worker. */
typedef struct tui_measure {
	int state;             /* 0 none, 1 running, 2 done, 3 failed */
	uint64_t key;          /* what was measured (version, or committed id) */
	lt_metrics m;
	char error[160];
} tui_measure;

#define SCROLLBACK 500

typedef struct tui {
	lua_State *L;
	lt_bench *bench;       /* the global `model`'s bench (borrowed) */
	lt_bench *opened;      /* the bench of the file named on the command line */
	const char *path;      /* that file */
	lt_worker *worker;     /* previews, spectra, REPL kernels */
	lt_worker *quick;      /* summaries of the selection (short jobs) */
	lt_dataset val;        /* validation split (n == 0 when not found) */

	int w, h;              /* screen size */
	int utf8, color;
	WINDOW *win[PANE_COUNT];
	int focus, maximized;  /* maximized: a plot pane filling the right side */
	int help, quit;
	int dirty_all;         /* something changed: run a drawing pass */
	int redraw_all;        /* draw every pane, whatever its signature */

	/* layer table */
	tui_row *rows;
	int n_rows, sel, top, sort_key;
	uint64_t rows_version;

	/* plots */
	int hist_log;
	int heat_mode;         /* 0 committed, 1 staged, 2 difference */
	int heat_zoom, heat_x, heat_y;
	int spec_view;         /* 1: the last sensitivity sweep instead */
	const void *sens_seen; /* the sweep last switched to */

	/* status */
	uint64_t seen_version;
	double changed_at;     /* when the stage last changed (debounce) */
	tui_measure staged, committed;
	const lt_model *committed_model;
	/* sizes on the status line, counted once per model state */
	lt_metrics size_c, size_s;
	const lt_model *size_c_of, *size_s_of;
	uint64_t size_s_version;

	/* REPL */
	char *lines[SCROLLBACK];
	int n_lines, first_line, scroll;
	int running;           /* a statement is running */
	char message[200];     /* one-line notice in the status line */

	/* A kernel started from the REPL runs on the worker (fine-tuning,
	 * evaluation): the panes stay live but read nothing new from the model
	 * (frozen), and keys that would run Lua wait in typeahead. */
	struct lt_lua_work *work;
	int frozen;
	int typeahead[256], n_typeahead;

	/* Key latency: from input becoming readable to the screen updated. */
	double key_lat[4096];
	int n_key_lat;
	int untimed;           /* the keys being answered waited on something
				* else (a Lua statement, a y/n question) */
	double quiesce_max;    /* longest wait for the worker to stop */
	int n_quiesce;
} tui;

extern tui *lt_tui_current;

/* panes.c */
void tui_rows_rebuild(tui *t);
void tui_rows_free(tui *t);
void tui_draw_table(tui *t, WINDOW *w);
void tui_draw_hist(tui *t, WINDOW *w);
void tui_draw_heat(tui *t, WINDOW *w);
void tui_draw_spec(tui *t, WINDOW *w);
int tui_table_key(tui *t, int key);
int tui_plot_key(tui *t, int pane, int key);
const tui_row *tui_selected(const tui *t);
/* What a pane shows, as numbers: it is drawn again when they change.
 * sig[0] is filled by the caller (focus, size). */
#define TUI_SIG 10
void tui_pane_sig(tui *t, int pane, uint64_t sig[TUI_SIG]);
void tui_caches_free(void);
int tui_export_svg(tui *t, int pane, const char *path, char *msg, size_t size);

/* repl_pane.c */
int tui_repl_open(tui *t);
void tui_repl_close(tui *t);
void tui_repl_draw(tui *t, WINDOW *w);
/* Feed one key to readline (REPL focus). Returns 1 when the REPL wants to
 * give focus back to the panes. */
int tui_repl_key(tui *t, int key);
void tui_repl_print(tui *t, const char *text);
void tui_repl_sig(tui *t, uint64_t sig[TUI_SIG]);

/* tui.c */
void tui_draw_all(tui *t);
/* Stop the worker's jobs and wait until it is idle (timed for :latency). */
void tui_quiesce(tui *t);
/* ":latency": the key latencies and worker waits measured so far. */
void tui_latency_report(tui *t);
void tui_frame(tui *t, WINDOW *w, int pane, const char *title);
double tui_now(void);
/* Called while Lua runs (progress of long kernels): redraw the status
 * line, and let Esc / Ctrl-C interrupt. */
void tui_pump(tui *t, const char *label, double fraction);

#endif
