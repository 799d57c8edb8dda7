/* lathe lua [-m MODEL] [--data DIR] [--sandbox] [-i] [-e STAT] [SCRIPT [ARGS...]] */
#include <errno.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "lbind/lathe.h"
#include "lbind/sandbox.h"
#include "lbind/repl.h"

static const char lua_help[] =
	"usage: lathe lua [-m MODEL] [--data DIR] [--sandbox] [-i] [-e STAT]...\n"
	"                 [SCRIPT [ARGS...]]\n"
	"\n"
	"Run a Lua 5.4 script with the `lathe` module loaded, or a Lua prompt.\n"
	"\n"
	"  -m MODEL      first of all, model = lathe.open(MODEL)\n"
	"  --data DIR    directory with the IDX files (default: $LATHE_DATA, the\n"
	"                bundled slice, then /usr/share/datasets/fashion-mnist)\n"
	"  --sandbox     limits, and no os/io escape: only MODEL and SCRIPT can be\n"
	"                read, nothing written\n"
	"  -e STAT       run the statement STAT (in order, after -m)\n"
	"  -i            the prompt after SCRIPT and -e\n"
	"  --            end of options\n"
	"\n"
	"SCRIPT ('-': standard input) gets ARGS as `...` and in the global `arg`\n"
	"(arg[0] is SCRIPT, arg[1] the first of ARGS; the words before SCRIPT\n"
	"are at negative indices). Source only: compiled chunks are refused. An\n"
	"error ends lathe with status 1 and one line 'lathe: SCRIPT:LINE: message'\n"
	"(and a traceback when LATHE_TRACEBACK=1).\n"
	"\n"
	"With neither SCRIPT nor -e, or with -i, statements are read from standard\n"
	"input. An expression prints its value. On a terminal: line editing,\n"
	"Tab to complete names and fields, history in\n"
	"$XDG_STATE_HOME/lathe/history (~/.local/state/lathe/history), Ctrl-C to\n"
	"interrupt, Ctrl-D to leave. Piped: no prompts, an error is one line\n"
	"'lathe: stdin:LINE: message' on stderr, and the exit status is 1 if any\n"
	"statement failed.\n";

/* Protected: the global `arg` (as the stock lua makes it). */
typedef struct args {
	int argc, script;
	char **argv;
} args;

static int make_arg(lua_State *L)
{
	const args *a = lua_touserdata(L, 1);
	lua_createtable(L, a->argc - a->script, a->script + 1);
	lua_pushliteral(L, "lathe");
	lua_rawseti(L, -2, -a->script - 1);
	for (int i = 0; i < a->argc; i++) {
		lua_pushstring(L, a->argv[i]);
		lua_rawseti(L, -2, i - a->script);
	}
	lua_setglobal(L, "arg");
	return 0;
}

/* Protected: model = lathe.open(path), raising lathe.open's nil, message. */
static int open_model(lua_State *L)
{
	if (lua_getglobal(L, "lathe") != LUA_TTABLE) {
		lua_pushliteral(L, "the lathe module is missing");
		return lua_error(L);
	}
	lua_getfield(L, -1, "open");
	lua_pushvalue(L, 1);
	lua_call(L, 1, 2);
	if (lua_isnil(L, -2)) {
		if (!lua_isstring(L, -1))
			lua_pushliteral(L, "cannot open the model");
		return lua_error(L);
	}
	lua_pop(L, 1);
	lua_setglobal(L, "model");
	return 0;
}

/* Print the error on top of L as "lathe: [WHERE: ]message"; returns EXIT_FAIL. */
static int lua_fail(lua_State *L, const char *where, int traceback)
{
	lt_repl_print_error(stderr, "lathe: ", where, lua_tostring(L, -1), traceback);
	lua_pop(L, 1);
	return EXIT_FAIL;
}

static int run_script(lua_State *L, char **argv, int argc, int script, const lt_repl_cfg *cfg)
{
	const char *path = strcmp(argv[script], "-") ? argv[script] : NULL;
	const char *where = path ? path : "stdin";
	if (path) {
		/* "lathe: x.lua: No such file or directory" rather than Lua's
		 * "cannot open x.lua: ..." */
		FILE *f = fopen(path, "r");
		if (!f) {
			fprintf(stderr, "lathe: %s: %s\n", path, strerror(errno));
			return EXIT_FAIL;
		}
		fclose(f);
	}
	if (luaL_loadfilex(L, path, "t") != LUA_OK)
		return lua_fail(L, where, 0);
	int n = argc - script - 1;
	if (!lua_checkstack(L, n)) {
		lua_pop(L, 1);
		fprintf(stderr, "lathe: %s: too many arguments\n", where);
		return EXIT_FAIL;
	}
	for (int i = script + 1; i < argc; i++)
		lua_pushstring(L, argv[i]);
	if (lt_repl_call(L, n, 0, cfg->catch_sigint) != LUA_OK)
		return lua_fail(L, where, cfg->traceback);
	return EXIT_OK;
}

static int run(const char *model, const char *data, int sandbox, int interactive,
	       const char **stats, int nstat, char **argv, int argc, int script)
{
	const char *tb = getenv("LATHE_TRACEBACK");
	lt_repl_cfg cfg = {
		.catch_sigint = !sandbox,
		.traceback = tb && *tb && strcmp(tb, "0"),
	};
	const char *reads[3] = {NULL, NULL, NULL}, *writes[1] = {NULL};
	int nr = 0;
	if (model)
		reads[nr++] = model;
	if (script && strcmp(argv[script], "-"))
		reads[nr++] = argv[script];
	lt_lua_opts opts = {.data_dir = data, .sandbox = sandbox, .read_paths = reads,
			    .write_paths = writes};
	lt_err err = {0};
	lua_State *L = lt_lua_open(&opts, &err);
	if (!L)
		return cli_fail("lua", &err);

	int rc = EXIT_OK;
	args a = {argc, script, argv};
	lua_pushcfunction(L, make_arg);
	lua_pushlightuserdata(L, &a);
	if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
		rc = lua_fail(L, NULL, 0);
		goto done;
	}
	if (model) {
		lua_pushcfunction(L, open_model);
		lua_pushstring(L, model);
		if (lt_repl_call(L, 1, 0, cfg.catch_sigint) != LUA_OK) {
			/* "lathe: MODEL: message", unless the message names MODEL. */
			const char *msg = lua_tostring(L, -1);
			size_t n = strlen(model);
			if (!msg || strncmp(msg, model, n) || msg[n] != ':')
				fprintf(stderr, "lathe: %s: ", model);
			else
				fputs("lathe: ", stderr);
			lt_repl_print_error(stderr, NULL, NULL, msg, cfg.traceback);
			lua_pop(L, 1);
			rc = EXIT_FAIL;
			goto done;
		}
	}
	for (int i = 0; i < nstat; i++) {
		if (luaL_loadbufferx(L, stats[i], strlen(stats[i]), "=(command line)", "t") != LUA_OK ||
		    lt_repl_call(L, 0, 0, cfg.catch_sigint) != LUA_OK) {
			rc = lua_fail(L, "(command line)", cfg.traceback);
			goto done;
		}
	}
	if (script && (rc = run_script(L, argv, argc, script, &cfg)) != EXIT_OK)
		goto done;
	if (interactive || (!script && !nstat)) {
		char *hist = isatty(STDIN_FILENO) ? lt_repl_history_path() : NULL;
		cfg.history = hist;
		rc = lt_repl_run(L, &cfg) ? EXIT_FAIL : EXIT_OK;
		free(hist);
	}
done:
	lt_sandbox_close(L); /* any state: also frees a sandbox's own data */
	return rc;
}

int cmd_lua(int argc, char **argv)
{
	const char *model = NULL, *data = NULL;
	int sandbox = 0, interactive = 0, script = 0, nstat = 0, rc;
	const char **stats = calloc((size_t)argc, sizeof *stats);
	if (!stats) {
		lt_err e;
		lt_err_set(&e, LT_ENOMEM, "out of memory");
		return cli_fail("lua", &e);
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-' || !strcmp(a, "-")) {
			script = i;
			break;
		}
		if (!strcmp(a, "--")) {
			if (i + 1 < argc)
				script = i + 1;
			break;
		}
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(lua_help, stdout);
			rc = EXIT_OK;
			goto out;
		} else if (!strcmp(a, "-i")) {
			interactive = 1;
		} else if (!strcmp(a, "--sandbox")) {
			sandbox = 1;
		} else if (!strncmp(a, "-e", 2) || !strncmp(a, "-m", 2) || !strcmp(a, "--data")) {
			/* -e STAT and -eSTAT, like the stock lua; likewise -m. */
			const char *v = a[1] != '-' && a[2] ? a + 2 : i + 1 < argc ? argv[++i] : NULL;
			if (!v) {
				rc = cli_usage_error("lua", "option '%s' needs a value", a);
				goto out;
			}
			if (a[1] == 'e')
				stats[nstat++] = v;
			else if (a[1] == 'm')
				model = v;
			else
				data = v;
		} else {
			rc = cli_usage_error("lua", "unknown option '%s'", a);
			goto out;
		}
	}
	rc = run(model, data, sandbox, interactive, stats, nstat, argv, argc, script);
out:
	free(stats);
	return rc;
}
