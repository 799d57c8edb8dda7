/* The `lathe` Lua module and the Lua states the CLI runs recipes in.
 *
 * luaopen_lathe is the module entry point (also of lathe.so for a stock
 * lua5.4). lt_lua_open makes a state for `lathe run` and `lathe lua`: the
 * standard libraries, `lathe` as a global and in package.loaded, and
 * package.path extended with lathe's pure-Lua helpers (lua/). */
#ifndef LT_LBIND_LATHE_H
#define LT_LBIND_LATHE_H

#include <lua.h>

#include "core/err.h"
#include "work/bench.h"

int luaopen_lathe(lua_State *L);

typedef struct lt_lua_opts {
	const char *data_dir;   /* --data, or NULL: $LATHE_DATA, bundled, system */
	int sandbox;            /* 1: limits and no os/io escape (lbind/sandbox.h) */
	const char *const *read_paths;   /* sandbox: files a recipe may read */
	const char *const *write_paths;  /* sandbox: files a recipe may write */
	size_t mem_limit;       /* sandbox: Lua heap bytes (0 = default) */
	long insn_limit;        /* sandbox: VM instructions (0 = default) */
	double time_limit;      /* sandbox: wall seconds (0 = default) */
} lt_lua_opts;

/* A new state as described above, or NULL with err. Close with lua_close. */
lua_State *lt_lua_open(const lt_lua_opts *opts, lt_err *err);

/* lua_pcall with a traceback handler that also makes the call atomic: every
 * model opened in this state is put back exactly as it was (stage, commits,
 * journal) when the call raises an error. On error the message (with
 * traceback) is left on the stack, as lua_pcall does. */
int lt_lua_pcall(lua_State *L, int nargs, int nresults);

/* Ask long C kernels started from Lua (evaluation, fine-tuning) to stop
 * at their next progress check and raise "interrupted". Async-signal-safe:
 * call it from a SIGINT handler. lt_lua_interrupt_clear re-arms. */
void lt_lua_interrupt(void);
void lt_lua_interrupt_clear(void);

/* Nonzero once lt_lua_interrupt was called (and not cleared). */
int lt_lua_interrupted(void);

/* Progress of long kernels (fine-tuning, evaluation): label ("finetune"),
 * fraction done in [0, 1], and a short detail ("epoch 1/2 loss 0.31").
 * The module itself never prints; the CLI installs a callback. */
typedef void (*lt_lua_progress_fn)(void *ud, const char *label, double fraction, const char *detail);
void lt_lua_set_progress(lua_State *L, lt_lua_progress_fn fn, void *ud);
void lt_lua_progress(lua_State *L, const char *label, double fraction, const char *detail);

/* Long kernels started from Lua (fine-tuning, evaluation, previews) run
 * through lt_lua_run_work. Without a runner that is a plain call on the
 * calling thread. A front end that must stay responsive (the TUI)
 * installs a runner that runs the work on another thread and keeps its
 * screen alive until it ends. The work never touches Lua; it reports
 * progress with lt_lua_work_progress, which a runner may read from its own
 * thread (fraction). */
typedef struct lt_lua_work lt_lua_work;
struct lt_lua_work {
	const char *label;            /* "finetune", "evaluating" */
	int (*run)(lt_lua_work *w);   /* the kernel: 0 or an LT_E* code */
	void *arg;
	double fraction;              /* progress in [0, 1], atomic */
	int offloaded;                /* set by a runner that runs it elsewhere */
};
typedef int (*lt_lua_runner_fn)(void *ud, lt_lua_work *w);
void lt_lua_set_runner(lua_State *L, lt_lua_runner_fn fn, void *ud);
/* w->run(w), through the runner when one is installed; its result. */
int lt_lua_run_work(lua_State *L, lt_lua_work *w);
/* For the work's progress callbacks: record the fraction, and when the
 * work runs on the Lua thread, also report it with lt_lua_progress. */
void lt_lua_work_progress(lua_State *L, lt_lua_work *w, double fraction, const char *detail);

/* With on, every commit measures the stage first (accuracy on the
 * validation split, sizes) so the history has figures for each step, as
 * `lathe run`'s summary shows. */
void lt_lua_set_commit_preview(lua_State *L, int on);
int lt_lua_commit_preview(lua_State *L);

/* The last sensitivity sweep run in this state (lathe.sensitivity), or
 * NULL; valid until the next sweep. */
struct lt_sensitivity;
const struct lt_sensitivity *lt_lua_last_sensitivity(lua_State *L);

/* The bench of the Model value at idx (borrowed), or NULL if it is not an
 * open model. */
lt_bench *lt_lua_to_bench(lua_State *L, int idx);

/* Directories searched for lathe's pure-Lua helpers, in order
 * (NULL-terminated, static). */
const char *const *lt_lua_helper_dirs(void);

#endif
