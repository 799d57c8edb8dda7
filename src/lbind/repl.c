/* The Lua prompt: chunks, running, completion, history, the terminal loop. */
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <readline/readline.h>
#include <readline/history.h>

#include "lbind/lathe.h"
#include "lbind/repl.h"

/* ---- chunks ------------------------------------------------------------------ */

void lt_repl_chunk_init(lt_repl_chunk *c, const char *name, int absolute)
{
	memset(c, 0, sizeof *c);
	c->name = name;
	c->absolute = absolute;
}

void lt_repl_chunk_reset(lt_repl_chunk *c)
{
	c->pending = 0;
	c->len = 0;
	if (c->text)
		c->text[0] = '\0';
}

void lt_repl_chunk_free(lt_repl_chunk *c)
{
	free(c->text);
	c->text = NULL;
	c->len = c->cap = 0;
	c->pending = 0;
}

static int chunk_append(lt_repl_chunk *c, const char *s, size_t n)
{
	if (c->cap - c->len <= n) {
		size_t cap = c->cap ? c->cap : 128;
		while (cap - c->len <= n) {
			if (cap > SIZE_MAX / 2)
				return -1;
			cap *= 2;
		}
		char *t = realloc(c->text, cap);
		if (!t)
			return -1;
		c->text = t;
		c->cap = cap;
	}
	memcpy(c->text + c->len, s, n);
	c->len += n;
	c->text[c->len] = '\0';
	return 0;
}

#define NL8 "\n\n\n\n\n\n\n\n"
#define NL64 NL8 NL8 NL8 NL8 NL8 NL8 NL8 NL8

/* lua_load reader: PAD newlines (so that line numbers count input lines),
 * then the optional "return ", then the chunk. */
typedef struct chunk_reader {
	long pad;
	const char *part[2];
	size_t len[2];
	int i;
} chunk_reader;

static const char *read_chunk(lua_State *L, void *ud, size_t *size)
{
	(void)L;
	chunk_reader *r = ud;
	if (r->pad > 0) {
		*size = r->pad < 64 ? (size_t)r->pad : 64;
		r->pad -= (long)*size;
		return NL64;
	}
	while (r->i < 2) {
		int i = r->i++;
		if (r->len[i]) {
			*size = r->len[i];
			return r->part[i];
		}
	}
	*size = 0;
	return NULL;
}

static int compile(lua_State *L, const lt_repl_chunk *c, int with_return)
{
	chunk_reader r = {
		.pad = c->absolute ? c->first - 1 : 0,
		.part = {"return ", c->text},
		.len = {with_return ? 7 : 0, c->len},
	};
	return lua_load(L, read_chunk, &r, c->name, "t");
}

/* The syntax error on the stack says the chunk stopped too early. */
static int at_eof(lua_State *L)
{
	static const char mark[] = "<eof>";
	size_t n;
	const char *m = lua_tolstring(L, -1, &n);
	return m && n >= sizeof mark - 1 && !strcmp(m + n - (sizeof mark - 1), mark);
}

int lt_repl_feed(lua_State *L, lt_repl_chunk *c, const char *line)
{
	if (!c->pending) {
		c->len = 0;
		c->first = c->line + 1;
	}
	size_t n = strlen(line);
	for (const char *p = line; (p = memchr(p, '\n', n - (size_t)(p - line))); p++)
		c->line++;
	c->line++;
	if ((c->pending && chunk_append(c, "\n", 1)) || chunk_append(c, line, n)) {
		lt_repl_chunk_reset(c);
		lua_pushliteral(L, "not enough memory");
		return LT_REPL_ERROR;
	}
	c->pending = 0;
	if (compile(L, c, 1) == LUA_OK)
		return LT_REPL_COMPLETE;
	lua_pop(L, 1);
	int st = compile(L, c, 0);
	if (st == LUA_OK)
		return LT_REPL_COMPLETE;
	if (st == LUA_ERRSYNTAX && at_eof(L)) {
		lua_pop(L, 1);
		c->pending = 1;
		return LT_REPL_MORE;
	}
	return LT_REPL_ERROR;
}

int lt_repl_finish(lua_State *L, lt_repl_chunk *c)
{
	if (!c->pending)
		return LT_REPL_EMPTY;
	c->pending = 0;
	if (compile(L, c, 0) == LUA_OK) { /* cannot happen: it was incomplete */
		lua_pop(L, 1);
		lua_pushliteral(L, "incomplete statement at end of input");
	}
	return LT_REPL_ERROR;
}

/* ---- Ctrl-C ------------------------------------------------------------------ */

/* What SIGINT does: nothing of ours (the disposition lathe started with),
 * interrupt the running statement, or tell the terminal loop (through
 * sig_pipe) to clear the line. SIGWINCH also goes through the pipe. */
enum { SIGMODE_OFF, SIGMODE_RUN, SIGMODE_PROMPT };
static volatile sig_atomic_t sig_mode;
static volatile sig_atomic_t sig_hit;  /* Ctrl-C interrupted the last call */
static lua_State *volatile sig_L;
static int sig_pipe[2] = {-1, -1};
static struct sigaction sigint_orig;
static int sigint_saved;

static void stop_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	luaL_error(L, "interrupted");
}

void lt_repl_interrupt(lua_State *L)
{
	lt_lua_interrupt();
	/* Count and line events only: a call hook would also fire for the
	 * traceback handler and turn the error into "error in error handling". */
	if (L)
		lua_sethook(L, stop_hook, LUA_MASKCOUNT | LUA_MASKLINE, 1);
}

static void on_signal(int sig)
{
	int saved = errno;
	if (sig == SIGINT && sig_mode == SIGMODE_RUN) {
		/* A second Ctrl-C ends the process, as with the stock lua: the
		 * escape from C code that never returns to Lua. */
		struct sigaction dfl;
		memset(&dfl, 0, sizeof dfl);
		dfl.sa_handler = SIG_DFL;
		sigemptyset(&dfl.sa_mask);
		sigaction(SIGINT, &dfl, NULL);
		sig_hit = 1;
		lt_repl_interrupt(sig_L);
	} else if (sig_pipe[1] >= 0) {
		char b = sig == SIGINT ? 'C' : 'W';
		ssize_t w = write(sig_pipe[1], &b, 1);
		(void)w;
	}
	errno = saved;
}

/* Switch what SIGINT does; returns the previous mode. */
static int sigint_set(int mode, lua_State *L)
{
	int old = sig_mode;
	if (!sigint_saved) {
		sigaction(SIGINT, NULL, &sigint_orig);
		sigint_saved = 1;
	}
	/* Started with SIGINT ignored (a background job): leave it so. */
	if (sigint_orig.sa_handler == SIG_IGN)
		return old;
	sig_L = L;
	sig_mode = mode;
	if (mode == SIGMODE_OFF) {
		sigaction(SIGINT, &sigint_orig, NULL);
	} else {
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_signal;
		sa.sa_flags = SA_RESTART;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, NULL);
	}
	return old;
}

/* lua_pcall (through lt_lua_pcall when ATOMIC) with Ctrl-C handling. */
static int call(lua_State *L, int nargs, int nresults, int catch_sigint, int atomic)
{
	int old = SIGMODE_OFF;
	sig_hit = 0;
	if (catch_sigint)
		old = sigint_set(SIGMODE_RUN, L);
	int st = atomic ? lt_lua_pcall(L, nargs, nresults) : lua_pcall(L, nargs, nresults, 0);
	if (catch_sigint)
		sigint_set(old, L);
	/* After the handler is gone, so that no late signal re-arms it. */
	if (lua_gethook(L) == stop_hook)
		lua_sethook(L, NULL, 0, 0);
	return st;
}

int lt_repl_call(lua_State *L, int nargs, int nresults, int catch_sigint)
{
	lt_lua_interrupt_clear();
	return call(L, nargs, nresults, catch_sigint, 1);
}

/* Protected: the arguments, formatted and joined by tabs, as one string. */
static int format_results(lua_State *L)
{
	int n = lua_gettop(L), fmt = 0;
	luaL_checkstack(L, 6, NULL);
	lua_getglobal(L, "require");
	lua_pushliteral(L, "lathe.pretty");
	if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_istable(L, -1)) {
		lua_getfield(L, -1, "format");
		if (lua_isfunction(L, -1))
			fmt = lua_gettop(L);
	}
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	for (int i = 1; i <= n; i++) {
		if (i > 1)
			luaL_addchar(&b, '\t');
		if (fmt) {
			lua_pushvalue(L, fmt);
			lua_pushvalue(L, i);
			if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING) {
				luaL_addvalue(&b);
				continue;
			}
			lua_pop(L, 1);
		}
		luaL_tolstring(L, i, NULL);
		luaL_addvalue(&b);
	}
	luaL_pushresult(&b);
	return 1;
}

int lt_repl_exec(lua_State *L, int catch_sigint)
{
	int base = lua_gettop(L) - 1;
	int st = lt_repl_call(L, 0, LUA_MULTRET, catch_sigint);
	if (st != LUA_OK) {
		/* Only the message, whatever was left under it. */
		if (lua_gettop(L) > base + 1) {
			lua_replace(L, base + 1);
			lua_settop(L, base + 1);
		}
		return st;
	}
	int n = lua_gettop(L) - base;
	if (n == 0) {
		lua_pushnil(L);
		return LUA_OK;
	}
	if (!lua_checkstack(L, 1)) {
		lua_settop(L, base);
		lua_pushliteral(L, "too many results to print");
		return LUA_ERRRUN;
	}
	lua_pushcfunction(L, format_results);
	lua_insert(L, base + 1);
	return call(L, n, 1, catch_sigint, 0);
}

/* ---- error messages -------------------------------------------------------------- */

size_t lt_repl_error_split(const char *msg, const char **traceback)
{
	static const char mark[] = "\nstack traceback:";
	const char *last = NULL;
	/* The handler appends the traceback: the last mark is ours. */
	for (const char *p = msg; (p = strstr(p, mark)); p++)
		last = p;
	*traceback = last ? last + 1 : NULL;
	return last ? (size_t)(last - msg) : strlen(msg);
}

/* Does the message carry a "chunk:LINE: " position? */
static int has_position(const char *m, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		if (m[i] != ':')
			continue;
		size_t j = i + 1;
		while (j < n && m[j] >= '0' && m[j] <= '9')
			j++;
		if (j > i + 1 && j + 1 < n && m[j] == ':' && m[j + 1] == ' ')
			return 1;
	}
	return 0;
}

void lt_repl_print_error(FILE *f, const char *prefix, const char *where, const char *msg,
			 int traceback)
{
	const char *tb;
	if (!msg)
		msg = "(error object is not a string)";
	size_t n = lt_repl_error_split(msg, &tb);
	if (sig_hit && isatty(fileno(f)))
		fputc('\n', f); /* after the "^C" the terminal echoed */
	if (prefix)
		fputs(prefix, f);
	if (where && !has_position(msg, n))
		fprintf(f, "%s: ", where);
	for (size_t i = 0; i < n; i++)
		fputc(msg[i] == '\n' || msg[i] == '\r' ? ' ' : msg[i], f);
	fputc('\n', f);
	if (traceback && tb)
		fprintf(f, "%s\n", tb);
	fflush(f);
}

/* ---- completion -------------------------------------------------------------------- */

#define MAX_STEPS 32   /* steps in a path like a.b[1].c */
#define MAX_DEPTH 8    /* __index chains followed */
#define SET 2          /* stack index of the set of names in complete_p */

static const char *const keywords[] = {
	"and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
	"in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
	NULL
};

static int is_namechar(int ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '_';
}

static int is_keyword(const char *s, size_t n)
{
	for (int i = 0; keywords[i]; i++)
		if (strlen(keywords[i]) == n && !memcmp(keywords[i], s, n))
			return 1;
	return 0;
}

/* A Lua name: what may follow '.' */
static int is_name(const char *s, size_t n)
{
	if (n == 0 || (s[0] >= '0' && s[0] <= '9'))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!is_namechar((unsigned char)s[i]))
			return 0;
	return !is_keyword(s, n);
}

typedef struct step {
	const char *s;     /* string key (into the line), or NULL */
	size_t n;
	lua_Integer i;     /* integer key when s is NULL */
} step;

typedef struct completion {
	const char *frag;  /* the name typed so far */
	size_t flen;
	int global;        /* complete globals and keywords */
	int method;        /* after ':': functions only */
	step steps[MAX_STEPS];
	int nsteps;
} completion;

/* Where the path that ends at E starts: back over names, dots and
 * balanced [...], stopping at an unmatched '[' or at "..". */
static size_t path_begin(const char *s, size_t e)
{
	size_t i = e;
	int depth = 0;
	while (i > 0) {
		char ch = s[i - 1];
		if (depth > 0) {
			depth += ch == ']' ? 1 : ch == '[' ? -1 : 0;
		} else if (ch == ']') {
			depth++;
		} else if (ch == '.' && i >= 2 && s[i - 2] == '.') {
			break;
		} else if (!is_namechar((unsigned char)ch) && ch != '.') {
			break;
		}
		i--;
	}
	return i;
}

/* NAME { .NAME | [INTEGER] | ["STRING"] } between B and E into cp->steps. */
static int parse_path(const char *s, size_t b, size_t e, completion *cp)
{
	size_t i = b;
	cp->nsteps = 0;
	while (i < e) {
		if (cp->nsteps == MAX_STEPS)
			return -1;
		step *st = &cp->steps[cp->nsteps++];
		if (cp->nsteps == 1 || s[i] == '.') {
			if (cp->nsteps > 1)
				i++;
			size_t j = i;
			while (j < e && is_namechar((unsigned char)s[j]))
				j++;
			if (!is_name(s + i, j - i))
				return -1;
			st->s = s + i;
			st->n = j - i;
			i = j;
			continue;
		}
		if (s[i] != '[' || ++i >= e)
			return -1;
		if (s[i] == '"' || s[i] == '\'') {
			char q = s[i++];
			size_t j = i;
			while (j < e && s[j] != q && s[j] != '\\')
				j++;
			if (j >= e || s[j] != q)
				return -1;
			st->s = s + i;
			st->n = j - i;
			i = j + 1;
		} else {
			int neg = s[i] == '-';
			size_t j = i + neg, d = 0;
			lua_Integer v = 0;
			for (; j < e && s[j] >= '0' && s[j] <= '9'; j++, d++)
				v = v * 10 + (s[j] - '0');
			if (d == 0 || d > 18)
				return -1;
			st->s = NULL;
			st->i = neg ? -v : v;
			i = j;
		}
		if (i >= e || s[i] != ']')
			return -1;
		i++;
	}
	return cp->nsteps ? 0 : -1;
}

/* Push t[name] without metamethods; returns its type. */
static int rawfield(lua_State *L, int t, const char *name)
{
	lua_pushstring(L, name);
	return lua_rawget(L, t);
}

/* Push what getmetatable(v) returns, if that is a table (1); else push
 * nothing (0). */
static int visible_mt(lua_State *L, int v)
{
	if (!lua_getmetatable(L, v))
		return 0;
	int t = rawfield(L, lua_gettop(L), "__metatable");
	if (t == LUA_TNIL) {
		lua_pop(L, 1);
		return 1;
	}
	if (t == LUA_TTABLE) {
		lua_remove(L, -2);
		return 1;
	}
	lua_pop(L, 2);
	return 0;
}

/* Push the list of names the C function __names of metatable MT gives
 * for V (a lathe model's layer names), or nil. Only C functions run. */
static void dynamic_names(lua_State *L, int mt, int v)
{
	int top = lua_gettop(L);
	if (rawfield(L, mt, "__names") == LUA_TFUNCTION && lua_iscfunction(L, -1)) {
		lua_pushvalue(L, v);
		if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_istable(L, -1))
			return; /* the list is at top + 1 */
	}
	lua_settop(L, top);
	lua_pushnil(L);
}

/* May the C __index of metatable MT be called for key K of V? Only for
 * the lathe types, which list their fields in __fields (and __names): for
 * those fields, and for integer keys (model[1] is a layer). */
static int getter_key(lua_State *L, int mt, int v, int k)
{
	int top = lua_gettop(L), ok = 0;
	if (rawfield(L, mt, "__fields") == LUA_TTABLE) {
		ok = lua_isinteger(L, k);
		for (lua_Integer i = 1; !ok && lua_rawgeti(L, top + 1, i) != LUA_TNIL; i++) {
			ok = lua_rawequal(L, -1, k);
			lua_pop(L, 1);
		}
		lua_settop(L, top);
		dynamic_names(L, mt, v);
		for (lua_Integer i = 1; !ok && lua_istable(L, top + 1) && lua_rawgeti(L, top + 1, i) != LUA_TNIL; i++) {
			ok = lua_rawequal(L, -1, k);
			lua_pop(L, 1);
		}
	}
	lua_settop(L, top);
	return ok;
}

/* Push v[k] as far as it can be had without running Lua code, or nil. */
static void peek(lua_State *L, int v, int k, int depth)
{
	luaL_checkstack(L, 8, NULL);
	int top = lua_gettop(L);
	if (lua_type(L, v) == LUA_TTABLE) {
		lua_pushvalue(L, k);
		if (lua_rawget(L, v) != LUA_TNIL)
			return;
		lua_settop(L, top);
	}
	if (depth < MAX_DEPTH && visible_mt(L, v)) {
		int mt = top + 1, index = top + 2;
		int t = rawfield(L, mt, "__index");
		if (t == LUA_TTABLE) {
			peek(L, index, k, depth + 1);
			if (!lua_isnil(L, -1))
				goto found;
			lua_pop(L, 1);
		}
		if (lua_type(L, k) == LUA_TSTRING && rawfield(L, mt, "__methods") == LUA_TTABLE) {
			lua_pushvalue(L, k);
			if (lua_rawget(L, -2) != LUA_TNIL)
				goto found;
		}
		lua_settop(L, index);
		/* The getter of a lathe type is C code of ours, without side
		 * effects; no other __index function runs. */
		if (lua_iscfunction(L, index) && getter_key(L, mt, v, k)) {
			lua_pushvalue(L, index);
			lua_pushvalue(L, v);
			lua_pushvalue(L, k);
			if (lua_pcall(L, 2, 1, 0) == LUA_OK)
				goto found;
		}
	}
	lua_settop(L, top);
	lua_pushnil(L);
	return;
found:
	lua_replace(L, top + 1);
	lua_settop(L, top + 1);
}

/* Add the string at IDX to the set if it completes the fragment. */
static void add_name(lua_State *L, int idx, const completion *cp)
{
	size_t n;
	const char *s = lua_tolstring(L, idx, &n);
	if (n < cp->flen || memcmp(s, cp->frag, cp->flen) || !is_name(s, n))
		return;
	if (n >= 2 && s[0] == '_' && s[1] == '_' &&
	    !(cp->flen >= 2 && cp->frag[0] == '_' && cp->frag[1] == '_'))
		return;
	lua_pushvalue(L, idx);
	lua_pushboolean(L, 1);
	lua_rawset(L, SET);
}

static void add_keys(lua_State *L, int t, const completion *cp, int functions_only)
{
	lua_pushnil(L);
	while (lua_next(L, t)) {
		if (lua_type(L, -2) == LUA_TSTRING && (!functions_only || lua_isfunction(L, -1)))
			add_name(L, lua_gettop(L) - 1, cp);
		lua_pop(L, 1);
	}
}

/* Add the names of V's keys (see lt_repl_complete). */
static void collect(lua_State *L, int v, const completion *cp, int depth)
{
	luaL_checkstack(L, 8, NULL);
	int top = lua_gettop(L);
	if (lua_type(L, v) == LUA_TTABLE)
		add_keys(L, v, cp, cp->method);
	if (depth < MAX_DEPTH && visible_mt(L, v)) {
		int mt = top + 1;
		if (rawfield(L, mt, "__index") == LUA_TTABLE)
			collect(L, mt + 1, cp, depth + 1);
		lua_settop(L, mt);
		if (rawfield(L, mt, "__methods") == LUA_TTABLE)
			add_keys(L, mt + 1, cp, 0);
		lua_settop(L, mt);
		if (!cp->method && rawfield(L, mt, "__fields") == LUA_TTABLE)
			for (lua_Integer i = 1; lua_rawgeti(L, mt + 1, i) != LUA_TNIL; i++) {
				if (lua_type(L, -1) == LUA_TSTRING)
					add_name(L, lua_gettop(L), cp);
				lua_pop(L, 1);
			}
		lua_settop(L, mt);
		if (!cp->method) {
			dynamic_names(L, mt, v);
			for (lua_Integer i = 1; lua_istable(L, mt + 1) && lua_rawgeti(L, mt + 1, i) != LUA_TNIL; i++) {
				if (lua_type(L, -1) == LUA_TSTRING)
					add_name(L, lua_gettop(L), cp);
				lua_pop(L, 1);
			}
		}
	}
	lua_settop(L, top);
}

/* Protected: the set of completions for the completion at index 1. */
static int complete_p(lua_State *L)
{
	const completion *cp = lua_touserdata(L, 1);
	lua_settop(L, 1);
	lua_newtable(L); /* SET */
	lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
	if (cp->global) {
		collect(L, 3, cp, 0);
		for (int i = 0; keywords[i]; i++)
			if (!strncmp(keywords[i], cp->frag, cp->flen)) {
				lua_pushboolean(L, 1);
				lua_setfield(L, SET, keywords[i]);
			}
	} else {
		for (int i = 0; i < cp->nsteps && !lua_isnil(L, 3); i++) {
			const step *st = &cp->steps[i];
			if (st->s)
				lua_pushlstring(L, st->s, st->n);
			else
				lua_pushinteger(L, st->i);
			peek(L, 3, 4, 0);
			lua_replace(L, 3);
			lua_settop(L, 3);
		}
		if (!lua_isnil(L, 3))
			collect(L, 3, cp, 0);
	}
	lua_settop(L, SET);
	return 1;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void lt_repl_free_matches(char **m)
{
	if (!m)
		return;
	for (size_t i = 0; m[i]; i++)
		free(m[i]);
	free(m);
}

char **lt_repl_complete(lua_State *L, const char *line, size_t point, size_t *start)
{
	size_t s = point;
	while (s > 0 && is_namechar((unsigned char)line[s - 1]))
		s--;
	*start = s;
	completion cp;
	memset(&cp, 0, sizeof cp);
	cp.frag = line + s;
	cp.flen = point - s;
	if (cp.flen && line[s] >= '0' && line[s] <= '9')
		return NULL; /* a number */
	char c = s ? line[s - 1] : 0, c2 = s >= 2 ? line[s - 2] : 0;
	if ((c == '.' && c2 != '.') || (c == ':' && c2 != ':')) {
		cp.method = c == ':';
		if (parse_path(line, path_begin(line, s - 1), s - 1, &cp))
			return NULL;
	} else {
		cp.global = 1;
	}
	if (!lua_checkstack(L, 4))
		return NULL;
	lua_pushcfunction(L, complete_p);
	lua_pushlightuserdata(L, &cp);
	if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
		lua_pop(L, 1);
		return NULL;
	}
	size_t n = 0, k = 0;
	lua_pushnil(L);
	while (lua_next(L, -2)) {
		n++;
		lua_pop(L, 1);
	}
	char **m = n ? calloc(n + 1, sizeof *m) : NULL;
	if (m) {
		lua_pushnil(L);
		while (lua_next(L, -2)) {
			lua_pop(L, 1);
			if (!(m[k] = strdup(lua_tostring(L, -1)))) {
				lua_pop(L, 1);
				break;
			}
			k++;
		}
	}
	lua_pop(L, 1);
	if (!m || k < n) {
		lt_repl_free_matches(m);
		return NULL;
	}
	qsort(m, n, sizeof *m, cmp_str);
	return m;
}

/* ---- readline ------------------------------------------------------------------------ */

static lua_State *rl_lua;
static char **rl_found;     /* lt_repl_complete's answer, handed out by rl_next */
static size_t rl_taken;

static char *rl_next(const char *text, int state)
{
	(void)text;
	(void)state;
	return rl_found && rl_found[rl_taken] ? rl_found[rl_taken++] : NULL;
}

static char **rl_attempt(const char *text, int start, int end)
{
	rl_attempted_completion_over = 1; /* never file names */
	rl_completion_append_character = '\0';
	size_t s;
	char **m = rl_lua ? lt_repl_complete(rl_lua, rl_line_buffer, (size_t)end, &s) : NULL;
	if (!m)
		return NULL;
	if (s != (size_t)start) {
		lt_repl_free_matches(m);
		return NULL;
	}
	rl_found = m;
	rl_taken = 0;
	/* Readline takes the strings it was given, and adds their common
	 * prefix in front. */
	char **r = rl_completion_matches(text, rl_next);
	for (size_t i = rl_taken; m[i]; i++)
		free(m[i]);
	free(m);
	rl_found = NULL;
	return r;
}

void lt_repl_rl_setup(lua_State *L)
{
	static char breaks[128];
	if (!breaks[0]) {
		size_t n = 0;
		for (int ch = 1; ch < 128; ch++)
			if (!is_namechar(ch))
				breaks[n++] = (char)ch;
	}
	rl_lua = L;
	rl_readline_name = "lathe";
	rl_basic_word_break_characters = breaks;
	rl_completer_word_break_characters = breaks;
	rl_attempted_completion_function = rl_attempt;
	rl_completion_append_character = '\0';
}

/* ---- history ---------------------------------------------------------------------------- */

static int hist_added;  /* entries lt_repl_history_add made in this process */

static void hist_setup(void)
{
	static int done;
	if (done)
		return;
	done = 1;
	/* A "#TIME" line starts each entry in the file, which is how the lines
	 * of a multi-line chunk are told apart from separate entries. */
	history_comment_char = '#';
	history_write_timestamps = 1;
	history_multiline_entries = 1;
	stifle_history(LT_REPL_HISTORY_MAX);
}

char *lt_repl_history_path(void)
{
	const char *x = getenv("XDG_STATE_HOME"), *home = getenv("HOME"), *base, *sub;
	if (x && x[0] == '/') {
		base = x;
		sub = "/lathe/history";
	} else if (home && home[0] == '/') {
		base = home;
		sub = "/.local/state/lathe/history";
	} else {
		return NULL;
	}
	size_t n = strlen(base) + strlen(sub) + 1;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s%s", base, sub);
	return p;
}

int lt_repl_history_load(const char *path, lt_err *err)
{
	hist_setup();
	int e = read_history(path);
	if (e && e != ENOENT && e != ENOTDIR) /* no file yet: not an error */
		return lt_err_set(err, LT_EIO, "%s: %s", path, strerror(e));
	return 0;
}

void lt_repl_history_add(const char *text)
{
	if (!text || !text[strspn(text, " \t\r\n")])
		return;
	hist_setup();
	HIST_ENTRY **list = history_list();
	if (list && history_length > 0 && !strcmp(list[history_length - 1]->line, text))
		return;
	add_history(text);
	hist_added++;
}

/* Make the directories above the file PATH (mode 0700); 0 or an errno. */
static int make_dirs(const char *path)
{
	char *p = strdup(path);
	if (!p)
		return ENOMEM;
	for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		if (mkdir(p, 0700) && errno != EEXIST) {
			int e = errno;
			free(p);
			return e;
		}
		*s = '/';
	}
	free(p);
	return 0;
}

int lt_repl_history_save(const char *path, lt_err *err)
{
	hist_setup();
	int e = make_dirs(path);
	if (e)
		return lt_err_set(err, LT_EIO, "%s: %s", path, strerror(e));
	/* Take this session's entries out, reread the file (other sessions may
	 * have written since), put them back after it. */
	int n = hist_added < history_length ? hist_added : history_length;
	HIST_ENTRY **mine = n > 0 ? calloc((size_t)n, sizeof *mine) : NULL;
	if (mine) {
		for (int i = n - 1; i >= 0; i--)
			mine[i] = remove_history(history_length - 1);
		clear_history();
		e = read_history(path);
		for (int i = 0; i < n; i++) {
			if (mine[i]) {
				add_history(mine[i]->line);
				add_history_time(mine[i]->timestamp);
				free_history_entry(mine[i]);
			}
		}
		free(mine);
		if (e && e != ENOENT && e != ENOTDIR) /* keep what could not be read */
			return lt_err_set(err, LT_EIO, "%s: %s", path, strerror(e));
	}
	hist_added = 0;
	e = write_history(path);
	if (e)
		return lt_err_set(err, LT_EIO, "%s: %s", path, strerror(e));
	return 0;
}

/* ---- the terminal loop ------------------------------------------------------------------ */

/* Readline's line handler gets no user pointer. */
static struct {
	lua_State *L;
	const lt_repl_cfg *cfg;
	lt_repl_chunk chunk;
	int done;
} tty;

/* Run or report what lt_repl_feed/lt_repl_finish left (COMPLETE or
 * ERROR): results to stdout, errors to stderr, as "lathe: WHERE: message"
 * for piped input, as the bare message on a terminal (WHERE NULL).
 * Returns 1 if it failed. */
static int settle(lua_State *L, const lt_repl_cfg *cfg, int st, const char *where)
{
	if (st == LT_REPL_COMPLETE) {
		st = lt_repl_exec(L, cfg->catch_sigint);
		if (st == LUA_OK) {
			if (lua_type(L, -1) == LUA_TSTRING) {
				fputs(lua_tostring(L, -1), stdout);
				fputc('\n', stdout);
			}
			fflush(stdout);
			lua_pop(L, 1);
			return 0;
		}
	}
	fflush(stdout);
	lt_repl_print_error(stderr, where ? "lathe: " : NULL, where, lua_tostring(L, -1),
			    cfg->traceback);
	lua_pop(L, 1);
	return 1;
}

static void tty_line(char *line)
{
	int st;
	if (!line) {
		fputc('\n', stdout);
		st = lt_repl_finish(tty.L, &tty.chunk);
		if (st == LT_REPL_EMPTY) {
			/* Removing the handler here keeps readline from showing
			 * another prompt. */
			rl_callback_handler_remove();
			tty.done = 1;
			return;
		}
	} else {
		st = lt_repl_feed(tty.L, &tty.chunk, line);
		free(line);
		if (st == LT_REPL_MORE) {
			rl_set_prompt(">> ");
			return;
		}
	}
	lt_repl_history_add(tty.chunk.text);
	rl_set_prompt("> ");
	/* The sandbox owns the hook: there Ctrl-C keeps its default action
	 * while a statement runs (at the prompt it clears the line, so that
	 * the terminal is never left in readline's mode). */
	int off = !tty.cfg->catch_sigint;
	if (off)
		sigint_set(SIGMODE_OFF, tty.L);
	settle(tty.L, tty.cfg, st, NULL);
	if (off)
		sigint_set(SIGMODE_PROMPT, tty.L);
}

/* Ctrl-C at the prompt: abandon the line (and any pending chunk). */
static void tty_cancel(void)
{
	rl_free_line_state();
	rl_callback_sigcleanup();
	rl_point = rl_end;
	rl_redisplay();
	rl_echo_signal_char(SIGINT);
	rl_crlf();
	rl_replace_line("", 0);
	lt_repl_chunk_reset(&tty.chunk);
	rl_set_prompt("> ");
	rl_on_new_line();
	rl_redisplay();
}

static void tty_signals(void)
{
	char buf[64];
	ssize_t n;
	int cancel = 0, resize = 0;
	while ((n = read(sig_pipe[0], buf, sizeof buf)) > 0)
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == 'C')
				cancel = 1;
			else
				resize = 1;
		}
	if (resize)
		rl_resize_terminal();
	if (cancel)
		tty_cancel();
}

static void warn(const char *what, const lt_err *err)
{
	fflush(stdout);
	fprintf(stderr, "lathe: warning: %s: %s\n", what, err->msg);
}

static int run_tty(lua_State *L, const lt_repl_cfg *cfg)
{
	lt_err err = {0};
	if (cfg->history && lt_repl_history_load(cfg->history, &err))
		warn("history not loaded", &err);
	if (pipe(sig_pipe) == 0) {
		for (int i = 0; i < 2; i++) {
			fcntl(sig_pipe[i], F_SETFL, fcntl(sig_pipe[i], F_GETFL) | O_NONBLOCK);
			fcntl(sig_pipe[i], F_SETFD, FD_CLOEXEC);
		}
	} else {
		sig_pipe[0] = sig_pipe[1] = -1;
	}
	struct sigaction sa, old_winch;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGWINCH, &sa, &old_winch);
	int old_int = sigint_set(SIGMODE_PROMPT, L);

	/* Signals are ours (through sig_pipe), not readline's. */
	rl_catch_signals = 0;
	rl_catch_sigwinch = 0;
	lt_repl_rl_setup(L);
	tty.L = L;
	tty.cfg = cfg;
	tty.done = 0;
	lt_repl_chunk_init(&tty.chunk, "=stdin", 0);
	rl_callback_handler_install("> ", tty_line);
	while (!tty.done) {
		struct pollfd fd[2] = {{STDIN_FILENO, POLLIN, 0}, {sig_pipe[0], POLLIN, 0}};
		int r = poll(fd, sig_pipe[0] >= 0 ? 2 : 1, -1);
		if (r < 0 && errno != EINTR)
			break;
		if (sig_pipe[0] >= 0)
			tty_signals();
		if (r > 0 && (fd[0].revents & POLLNVAL))
			break;
		if (r > 0 && fd[0].revents)
			rl_callback_read_char();
	}
	rl_callback_handler_remove();

	sigint_set(old_int, L);
	sigaction(SIGWINCH, &old_winch, NULL);
	for (int i = 0; i < 2; i++) {
		if (sig_pipe[i] >= 0)
			close(sig_pipe[i]);
		sig_pipe[i] = -1;
	}
	if (cfg->history && lt_repl_history_save(cfg->history, &err))
		warn("history not saved", &err);
	clear_history();
	lt_repl_chunk_free(&tty.chunk);
	rl_lua = NULL;
	return 0;
}

/* ---- piped input -------------------------------------------------------------------------- */

static int run_piped(lua_State *L, const lt_repl_cfg *cfg)
{
	lt_repl_chunk c;
	lt_repl_chunk_init(&c, "=stdin", 1);
	char *buf = NULL, where[40];
	size_t cap = 0;
	int failed = 0;
	for (;;) {
		ssize_t n = getline(&buf, &cap, stdin);
		int st;
		if (n < 0) {
			st = lt_repl_finish(L, &c);
		} else {
			if (n > 0 && buf[n - 1] == '\n')
				buf[n - 1] = '\0';
			st = lt_repl_feed(L, &c, buf);
		}
		if (st == LT_REPL_COMPLETE || st == LT_REPL_ERROR) {
			snprintf(where, sizeof where, "stdin:%ld", c.first);
			failed |= settle(L, cfg, st, where);
		}
		if (n < 0)
			break;
	}
	if (ferror(stdin)) {
		fprintf(stderr, "lathe: stdin: %s\n", strerror(errno));
		failed = 1;
	}
	free(buf);
	lt_repl_chunk_free(&c);
	return failed;
}

int lt_repl_run(lua_State *L, const lt_repl_cfg *cfg)
{
	return isatty(STDIN_FILENO) ? run_tty(L, cfg) : run_piped(L, cfg);
}
