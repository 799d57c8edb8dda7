/* Architectures written in Lua: run a script in a sandbox and turn the table
 * it returns into architecture JSON ("lathe-arch-1", see lt_graph_from_json).
 *
 * The script is a plain Lua text file ending in `return { input = ...,
 * layers = {...} }` with the same keys as the JSON format. It runs in a fresh
 * lua_State that has only the safe base functions (assert error ipairs pairs
 * next select tonumber tostring type pcall rawequal rawget rawlen rawset
 * setmetatable getmetatable, plus _G and _VERSION) and the string, table and
 * math libraries (without the pattern functions find, match, gmatch and
 * gsub, which run in one C call out of the instruction limit's reach): no
 * io, os, package, debug, coroutine, load, loadfile, dofile, require,
 * collectgarbage or print. It may use at most 64 MiB of
 * memory, about 10 million VM instructions and 60 seconds (the allocator and
 * count hook of lbind/sandbox.h, which also supplies string.rep and the
 * table functions that loop in C: they count elements as instructions);
 * binary chunks are refused.
 * Finalizers are refused too (setmetatable raises on a __gc field), because
 * Lua runs them with hooks off.
 *
 * Conversion of the returned value (tables are read raw: metatables, __index
 * and __pairs are ignored):
 *   - a table whose keys are exactly the integers 1..n -> JSON array;
 *   - a table whose keys are all strings -> JSON object; keys are written
 *     "format", "op", "name", "inputs", "input", "preprocess", "layers" first,
 *     then the rest in byte order, so the output is the same on every run;
 *   - an empty table {} -> an object where the format wants one (the returned
 *     table itself, its "preprocess", and each entry of its "layers"), an
 *     empty array everywhere else (input, inputs, layers, mean, std ...);
 *   - Lua integers -> JSON integers; floats -> JSON reals, except that a
 *     float with an integral value below 2^53 in magnitude (255.0, 28*28/1)
 *     becomes an integer, since shapes must be integers and every real-valued
 *     key also accepts integers; reals are written with 15 significant digits
 *     (every decimal literal of up to 15 digits survives exactly);
 *   - booleans -> true/false; strings -> JSON strings (must be valid UTF-8
 *     without NUL bytes);
 *   - anything else (functions, userdata, threads, NaN, infinities, keys that
 *     are neither strings nor 1..n, a list with gaps, a table mixing list items
 *     and named fields, nesting deeper than 32 tables, which also catches
 *     cycles) is an LT_EFORMAT error naming the place, e.g.
 *     "layers[3].kernel_size: ...". Positions are Lua's (1-based).
 * A table or string that appears in several places is written out each time;
 * the output is limited to 1,000,000 values and 64 MiB of strings (LT_ERANGE).
 * "format": "lathe-arch-1" is added to the top-level object when missing.
 * Nothing else is checked here: pass the JSON to lt_graph_from_json, which
 * reports unknown ops, keys and impossible shapes.
 *
 * Errors (err->code):
 *   LT_EIO      the file cannot be opened or read ("cannot open PATH: ...");
 *   LT_EFORMAT  syntax and runtime errors, in Lua's "CHUNK:LINE: message"
 *               form; a binary chunk; a script that does not return a table
 *               ("the architecture script must return a table (got nil)");
 *               a value that cannot be written as JSON;
 *   LT_ERANGE   the script ran too long ("CHUNK:LINE: architecture script ran
 *               too long (more than 10 million instructions)", or "... 60
 *               seconds") or used more than 64 MiB, or the
 *               returned table is too large to write out;
 *   LT_ENOMEM   the process itself ran out of memory. */
#ifndef LT_LBIND_ARCH_H
#define LT_LBIND_ARCH_H

#include "core/err.h"

/* Limits of the sandbox. */
#define LT_LUA_ARCH_MEM_LIMIT ((size_t)64 << 20)   /* bytes */
#define LT_LUA_ARCH_INSN_LIMIT 10000000L           /* VM instructions */
#define LT_LUA_ARCH_TIME_LIMIT 60.0                /* wall seconds */
#define LT_LUA_ARCH_MAX_DEPTH 32                   /* nested tables */
#define LT_LUA_ARCH_MAX_VALUES 1000000L            /* JSON values written */

/* Run the Lua file at path (text only) in the sandbox and convert the table it
 * returns to architecture JSON. Returns a NUL-terminated string allocated
 * with lt_malloc (caller frees with lt_free), or NULL with err filled. */
char *lt_lua_arch_to_json(const char *path, lt_err *err);

/* The same for a script held in memory. chunkname names it in messages: a
 * name starting with '@' or '=' is passed to Lua unchanged, any other is
 * shown as given ("arch.lua" gives "arch.lua:3: ..."); NULL means
 * "=(architecture)". Returns lt_malloc'd JSON (caller frees with lt_free)
 * or NULL with err filled. */
char *lt_lua_arch_string_to_json(const char *chunk, const char *chunkname, lt_err *err);

#endif
