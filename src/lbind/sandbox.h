/* The sandbox for untrusted Lua: recipes run with `lathe run --sandbox` and
 * `lathe lua --sandbox`, and (through the allocator, the hook and
 * lt_sandbox_guard_libs) the architecture scripts of lbind/arch.c.
 *
 * Limits (each 0 in lt_sandbox_cfg means the default):
 *   memory       LT_SANDBOX_MEM_LIMIT, 512 MiB of Lua heap, enforced by the
 *                state's allocator: a request beyond it is refused and Lua
 *                raises "not enough memory". Later requests that fit still
 *                succeed; the hit is remembered (lt_sandbox_tripped).
 *   instructions LT_SANDBOX_INSN_LIMIT, 2,000,000,000 VM instructions
 *                (about 10 s of a tight loop), counted by a count hook every
 *                LT_SANDBOX_HOOK_STEP instructions in every thread; the table
 *                functions that loop in C count each element as one.
 *   time         LT_SANDBOX_TIME_LIMIT, 600 s of wall time from
 *                lt_sandbox_newstate, checked by the same hook and by the C
 *                wrappers below.
 *   file writes  LT_SANDBOX_WRITE_LIMIT, 1 GiB written by io.write and
 *                file:write to files other than stdout and stderr, so that a
 *                loop cannot fill the disk through an allowed path; past it
 *                each write raises (not a limit that trips).
 * Once the instruction or time limit is hit, the hook raises an error
 * ("recipe.lua:3: instruction limit exceeded (2000000000)") and is re-armed
 * to fire on every instruction, in every thread, so a pcall in the script
 * can catch the error but not go on; the message stays available from
 * lt_sandbox_tripped, and a caller must treat a tripped state as failed.
 *
 * Lua runs some script code with hooks off, where no limit could stop it:
 * finalizers (always), the message handler of an xpcall while the hook's
 * error is being raised, and __close methods of a coroutine that the hook's
 * error killed. The first is refused, the others are skipped once a limit
 * has stopped the script (see xpcall and coroutine below).
 *
 * lt_sandbox_restrict then turns the standard globals into these (call it
 * once; a second call does nothing):
 *   base      kept, except: load, loadfile and dofile accept text chunks only
 *             (mode forced to "t"; load raises on a binary string chunk);
 *             loadfile and dofile read only allowed paths (or stdin);
 *             setmetatable refuses a metatable with a __gc field (refused,
 *             not neutered: a finalizer could loop forever); getmetatable
 *             returns a read-only stand-in (a userdata whose fields read
 *             through) for a metatable that has __gc, i.e. lathe's and io's
 *             userdata, so a script cannot put its own finalizer there;
 *             xpcall does not call its message handler once stopped; debug
 *             is removed (nil); print, collectgarbage, require stay.
 *   string    dump removed; find, match, gmatch and gsub run only when an
 *             upper bound of the matcher's steps for this pattern on this
 *             subject is within LT_SANDBOX_PATTERN_BUDGET (2e8, about half a
 *             second), as the matcher runs in one C call the hook cannot
 *             interrupt; otherwise they raise "pattern too complex for a
 *             subject of N bytes (sandbox limit)". The bound multiplies, per
 *             start position, the choices of each '*', '+', '-' (the longest
 *             run of the subject in that item's class, plus one) and '?'
 *             (two), so ordinary patterns on lines and names pass, while
 *             backtracking ones, or unanchored patterns starting with ".*"
 *             on subjects above about 10 KB, are refused. rep of an empty
 *             result returns at once (Lua 5.4 would loop n times).
 *   table     insert, remove, move, concat and sort are the sandbox's own
 *             (sort is a heapsort), reading the length once and charging
 *             their element count to the instruction limit before they
 *             start (Lua's loop in C for as long as a __len or a sparse
 *             table's border says).
 *   coroutine create and wrap arm the hook in the new thread; resume and
 *             wrapped functions stop their caller at once when the
 *             coroutine was stopped; close raises once stopped, and wrap
 *             then skips its cleanup of the dead coroutine.
 *   os        only clock, time, date and difftime.
 *   io        write, read, close, type and the standard streams; open, lines,
 *             input and output with a file name are restricted to allowed
 *             paths; popen and tmpfile removed.
 *   package   cpath and path are ""; searchers are the preload searcher and
 *             one that loads DIR/NAME.lua (dots become '/') from the
 *             configured lua_dirs only, as text; loadlib and searchpath
 *             removed. `require "os"` gives the restricted os table.
 * "Removed" functions (other than debug) are stubs that raise
 * "os.execute is not available in the sandbox", so a script learns why.
 * Refused paths raise "io.open: /etc/passwd: reading is not allowed in the
 * sandbox".
 *
 * Paths: a file may be read if it is one of read_paths or write_paths, and
 * written if it is one of write_paths. Both sides are compared in canonical
 * form: realpath() of an existing file, or realpath() of the directory plus
 * the base name for a file that does not exist yet; a dangling symlink, a
 * missing directory or a base name of "." or ".." matches nothing, so
 * "../" and symlink tricks cannot reach another file. (A file swapped by
 * another process between the check and the open is out of scope.)
 *
 * Caveats: io.read on stdin blocks outside every limit (run with stdin
 * redirected); other single C calls (os.date with a huge format, parsing a
 * huge chunk) are bounded by the memory limit only; lathe's own C bindings
 * must call lt_sandbox_allows, lt_sandbox_mem_left and lt_sandbox_charge. */
#ifndef LT_LBIND_SANDBOX_H
#define LT_LBIND_SANDBOX_H

#include <lua.h>
#include <stddef.h>

#include "core/err.h"

#define LT_SANDBOX_MEM_LIMIT ((size_t)512 << 20)   /* bytes of Lua heap */
#define LT_SANDBOX_INSN_LIMIT 2000000000L          /* VM instructions */
#define LT_SANDBOX_TIME_LIMIT 600.0                /* wall seconds */
#define LT_SANDBOX_HOOK_STEP 1000                  /* instructions per hook call */
#define LT_SANDBOX_PATTERN_BUDGET 2e8              /* matcher steps per call */
#define LT_SANDBOX_WRITE_LIMIT ((size_t)1 << 30)   /* bytes written to files */

typedef struct lt_sandbox_cfg {
	size_t mem_limit;     /* bytes of Lua heap; 0 = default 512 MiB */
	long insn_limit;      /* VM instructions; 0 = default 2,000,000,000 */
	double time_limit;    /* wall seconds; 0 = default 600 */
	const char *const *read_paths;   /* NULL-terminated or NULL: files that io.open/io.lines/dofile/loadfile and lathe may read */
	const char *const *write_paths;  /* NULL-terminated or NULL: files that may be written */
	const char *const *lua_dirs;     /* NULL-terminated or NULL: `require` loads NAME from DIR/NAME.lua (dots -> '/') in these dirs only */
} lt_sandbox_cfg;

/* Which limits were hit (lt_sandbox_hits). */
enum {
	LT_SANDBOX_HIT_MEM = 1,    /* the memory limit refused a request */
	LT_SANDBOX_HIT_INSN = 2,   /* the instruction limit */
	LT_SANDBOX_HIT_TIME = 4,   /* the time limit */
	LT_SANDBOX_HIT_NOMEM = 8,  /* not a limit: the process allocator failed */
};

/* A new state whose allocator enforces cfg's memory limit (memory comes from
 * lt_realloc) and whose main thread has the count hook armed; the clock for
 * the time limit starts now. cfg (NULL: all defaults) and its strings are
 * copied; the allowed paths are canonicalised now (an entry that cannot be
 * resolved allows nothing). Only the allocator and hook are set up: the
 * caller opens libraries (inside a pcall: an unprotected error prints one
 * line on stderr and aborts), then calls lt_sandbox_restrict. Close with
 * lt_sandbox_close. Returns NULL with err on failure: LT_ENOMEM, LT_EINVAL
 * for a negative limit, LT_ERANGE for a memory limit too small for a state. */
lua_State *lt_sandbox_newstate(const lt_sandbox_cfg *cfg, lt_err *err);

/* Strip and wrap the globals as described above. Call once, after
 * luaL_openlibs and after the lathe module is loaded; libraries that are not
 * loaded are skipped. Returns 0, or LT_EINVAL if L is not a sandbox state,
 * LT_ENOMEM if the memory limit or the process ran out (err filled); the
 * state must then be closed. */
int lt_sandbox_restrict(lua_State *L, lt_err *err);

/* 1 if L (or the state it is a thread of) came from lt_sandbox_newstate. */
int lt_sandbox_active(lua_State *L);

/* 1 if L is not sandboxed, or path may be read (write = 0) or written
 * (write = 1) under the rules above; 0 otherwise (also for NULL or ""). Does
 * not raise; path is borrowed. For lathe's C bindings that open files. */
int lt_sandbox_allows(lua_State *L, const char *path, int write);

/* Bytes the Lua heap may still grow by (SIZE_MAX when not sandboxed), so
 * that C bindings can refuse a huge allocation before making it. */
size_t lt_sandbox_mem_left(lua_State *L);

/* Count n units of work done in C (e.g. elements of a loop) against the
 * instruction limit and check the time limit. Returns 0 while within both,
 * -1 once one of them is hit (then or earlier). Does not raise; 0 when not
 * sandboxed. For long C loops in bindings, so that they stop in time. */
int lt_sandbox_charge(lua_State *L, long n);

/* Message of the first limit hit ("instruction limit exceeded (2000000000)",
 * "memory limit exceeded (512 MiB)", "time limit exceeded (600 s)"), or NULL
 * (also when not sandboxed). Sticky: a run whose state tripped must fail
 * even if a pcall in the script swallowed the error. Owned by the sandbox,
 * valid until lt_sandbox_close. */
const char *lt_sandbox_tripped(lua_State *L);

/* LT_SANDBOX_HIT_* bits of everything hit so far (0 when not sandboxed). */
int lt_sandbox_hits(lua_State *L);

/* setmetatable(t, mt) refusing a mt with a __gc field (see above); the
 * function restrict installs, exported so arch.c's sandbox shares it. */
int lt_sandbox_setmetatable(lua_State *L);

/* The string and table parts of lt_sandbox_restrict alone, for a state
 * whose globals are set up otherwise (arch.c): in the global string and
 * table libraries, if loaded, the functions that loop in one C call (the
 * pattern functions present, rep, insert, remove, move, concat, sort) are
 * replaced by the bounded versions and dump by a stub. Raises on memory
 * errors: call it inside a pcall. */
void lt_sandbox_guard_libs(lua_State *L);

/* lua_close(L), then free the sandbox if L is one; any state is accepted,
 * NULL is a no-op. L must be the main thread. */
void lt_sandbox_close(lua_State *L);

#endif
