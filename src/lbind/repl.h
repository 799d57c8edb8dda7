/* The Lua prompt of `lathe lua`: chunks fed a line at a time, statements
 * run and their results formatted, names completed, history kept.
 *
 * The pieces are separate so that a driver other than the terminal loop
 * (the TUI's REPL pane, which feeds readline through its callback
 * interface) can reuse them: lt_repl_feed/lt_repl_exec turn input lines
 * into results, lt_repl_complete finds completions, lt_repl_history_* keep
 * the history file. lt_repl_run is the terminal (or piped) loop built on
 * them.
 *
 * All functions run on the thread that owns the lua_State. */
#ifndef LT_LBIND_REPL_H
#define LT_LBIND_REPL_H

#include <lua.h>
#include <stddef.h>
#include <stdio.h>

#include "core/err.h"

/* At most this many history entries are kept (in memory and on disk). */
#define LT_REPL_HISTORY_MAX 1000

/* ---- chunks --------------------------------------------------------------- */

/* Lines of input being gathered into one chunk. Initialise with
 * lt_repl_chunk_init; read text/len (the pending chunk, lines joined by
 * '\n') and first; the rest is private. */
typedef struct lt_repl_chunk {
	char *text;        /* NUL-terminated; valid until the next feed or reset */
	size_t len, cap;
	long first;        /* input line number where this chunk starts */
	long line;         /* input lines fed so far */
	int pending;       /* 1: incomplete, waiting for more lines */
	int absolute;      /* positions in messages count input lines */
	const char *name;  /* chunk name for lua_load (e.g. "=stdin"), borrowed */
} lt_repl_chunk;

/* What lt_repl_feed and lt_repl_finish report. */
enum {
	LT_REPL_COMPLETE = 0,  /* a compiled function is on the stack */
	LT_REPL_MORE = 1,      /* incomplete: feed the next line (prompt ">> ") */
	LT_REPL_ERROR = 2,     /* syntax error: its message is on the stack */
	LT_REPL_EMPTY = 3,     /* lt_repl_finish: nothing was pending */
};

/* Set up C for chunks named NAME (a lua_load chunk name such as "=stdin";
 * borrowed, must outlive C). ABSOLUTE: 1 to make positions in messages and
 * debug information count input lines since the start (piped input, where
 * "stdin:12:" should mean the twelfth line), 0 to count from each chunk's
 * first line as the stock lua prompt does. */
void lt_repl_chunk_init(lt_repl_chunk *c, const char *name, int absolute);
/* Forget a pending incomplete chunk (Ctrl-C at the ">> " prompt). */
void lt_repl_chunk_reset(lt_repl_chunk *c);
/* Free C's buffer; C can be initialised again. */
void lt_repl_chunk_free(lt_repl_chunk *c);

/* Add LINE (without its newline; it may itself hold newlines, e.g. a
 * multi-line history entry) to the chunk and compile what is there: first
 * as "return " .. chunk, so that expressions print their values, then as
 * statements. A syntax error whose message ends in "<eof>" means the chunk
 * is incomplete. Returns LT_REPL_COMPLETE (function pushed), LT_REPL_MORE
 * (nothing pushed) or LT_REPL_ERROR (message pushed, one line, no
 * traceback). After COMPLETE or ERROR, c->text still holds the whole chunk
 * (for history) until the next feed, which starts a new chunk. */
int lt_repl_feed(lua_State *L, lt_repl_chunk *c, const char *line);

/* End of input: LT_REPL_EMPTY if no chunk is pending, else LT_REPL_ERROR
 * with the syntax error for the incomplete chunk pushed (and the chunk
 * ended). */
int lt_repl_finish(lua_State *L, lt_repl_chunk *c);

/* ---- running ---------------------------------------------------------------- */

/* lt_lua_pcall (traceback handler, models restored on error) for a chunk:
 * clears the interrupt flag first and removes the interrupt hook after.
 * CATCH_SIGINT: 1 to let Ctrl-C interrupt the call (a SIGINT handler that
 * calls lt_repl_interrupt is installed for its duration; the previous
 * SIGINT disposition comes back after). 0 leaves signals alone, for
 * callers with their own handling and for the sandbox, which owns the
 * hook. Returns the lua_pcall status; on error the message with its
 * traceback is on the stack. */
int lt_repl_call(lua_State *L, int nargs, int nresults, int catch_sigint);

/* Run the function lt_repl_feed pushed (with lt_repl_call) and replace it
 * with one value: a string with its results, each formatted by
 * require("lathe.pretty").format (tostring when that cannot be had) and
 * separated by tabs, or nil when there were none. On error returns the
 * status with the message (and traceback) pushed instead. */
int lt_repl_exec(lua_State *L, int catch_sigint);

/* Stop the Lua code running in L: a count and line hook raises the error
 * "interrupted" (it stays armed until lt_repl_call returns, so a pcall in
 * the script cannot swallow it), and lt_lua_interrupt asks C kernels to
 * stop. Async-signal-safe: meant for a SIGINT handler. Never while the
 * sandbox owns the hook. */
void lt_repl_interrupt(lua_State *L);

/* ---- error messages ----------------------------------------------------------- */

/* Length of the message part of an error MSG left by lt_lua_pcall (before
 * its "\nstack traceback:"), and in *TRACEBACK the traceback ("stack
 * traceback:..."), or NULL when there is none. */
size_t lt_repl_error_split(const char *msg, const char **traceback);

/* Print an error message on F as one line: PREFIX (e.g. "lathe: ", may be
 * NULL), then "WHERE: " if WHERE is not NULL and the message has no
 * "chunk:line:" position of its own, then the message with its newlines
 * made spaces. With TRACEBACK, the traceback follows on the next lines.
 * MSG may be NULL (a non-string error object). After a call that Ctrl-C
 * interrupted, on a terminal, it starts on a new line (after the "^C" the
 * terminal echoed). */
void lt_repl_print_error(FILE *f, const char *prefix, const char *where, const char *msg,
			 int traceback);

/* ---- completion ------------------------------------------------------------------ */

/* Completions for the name that ends at byte POINT of LINE. The name
 * starts at *START (the run of [A-Za-z0-9_] before POINT); what precedes
 * it decides the candidates:
 *   - "path." or "path:" where path is NAME, then ".NAME", "[INTEGER]" or
 *     "[\"STRING\"]" steps (e.g. model.layers[1]:): the keys of that value.
 *     The path is looked up with rawget, in tables given as __index (and
 *     __methods) by metatables, and, for the names a metatable lists in
 *     __fields, by calling its __index when that is a C function (the
 *     lathe userdata); no other metamethod runs.
 *   - anything else: global names and Lua keywords.
 * The keys of a value are its string keys that are names (not keywords),
 * then for metatables (as getmetatable sees them, so __metatable is
 * respected): the keys of __index when it is a table (following chains),
 * of __methods, and the names in the __fields array. After ':' only
 * functions and __methods. Names starting with "__" only when the typed
 * prefix starts with "__". Everything runs under lua_pcall: completion
 * never raises.
 * Returns a sorted NULL-terminated array of malloc'd names (each a
 * complete replacement for LINE[*START..POINT)), or NULL when there are
 * none (or memory ran out). Free with lt_repl_free_matches. */
char **lt_repl_complete(lua_State *L, const char *line, size_t point, size_t *start);
void lt_repl_free_matches(char **matches);

/* Point readline's completion at lt_repl_complete for L (word breaks at
 * everything but name characters; nothing appended after a match; no file
 * name completion) and set rl_readline_name to "lathe" for ~/.inputrc.
 * L is remembered until the next call. */
void lt_repl_rl_setup(lua_State *L);

/* ---- history ----------------------------------------------------------------------- */

/* The history file: $XDG_STATE_HOME/lathe/history, or
 * $HOME/.local/state/lathe/history (XDG_STATE_HOME must be absolute to
 * count). Malloc'd, caller frees; NULL without a usable HOME. */
char *lt_repl_history_path(void);

/* Load PATH into readline's history (at most LT_REPL_HISTORY_MAX entries;
 * multi-line entries survive, as entries are stored with timestamps). A
 * missing file is not an error. 0, or LT_EIO with err. */
int lt_repl_history_load(const char *path, lt_err *err);

/* Add a chunk as one history entry, unless it is blank or repeats the
 * last entry. */
void lt_repl_history_add(const char *text);

/* Write the history to PATH, creating its directories (mode 0700). The
 * entries added in this process are appended to what the file holds now,
 * so that sessions running side by side do not lose each other's lines;
 * the oldest go beyond LT_REPL_HISTORY_MAX. 0, or LT_EIO with err. */
int lt_repl_history_save(const char *path, lt_err *err);

/* ---- the loop ------------------------------------------------------------------------- */

typedef struct lt_repl_cfg {
	const char *history;  /* history file for the terminal prompt, or NULL */
	int catch_sigint;     /* Ctrl-C interrupts statements (0 in the sandbox) */
	int traceback;        /* print tracebacks after error messages */
} lt_repl_cfg;

/* Read statements from stdin until end of input and run them in L.
 * On a terminal: GNU Readline with the prompts "> " and ">> ", completion,
 * history (loaded from and saved to cfg->history; a file that cannot be
 * read or written is a one-line warning), Ctrl-C to clear the line or
 * interrupt a statement, Ctrl-D on an empty line to leave. Results go to
 * stdout, errors to stderr, and the prompt goes on; returns 0.
 * Otherwise (piped input): no prompts; results on stdout, each error on
 * stderr as one line "lathe: stdin:LINE: message", LINE counting input
 * lines; returns 1 if any chunk failed (syntax or run time), else 0. */
int lt_repl_run(lua_State *L, const lt_repl_cfg *cfg);

#endif
