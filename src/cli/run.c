/* lathe run RECIPE.lua MODEL [--data DIR] [-o OUT] [--set NAME=VALUE ...]
 *           [--sandbox] [--timeout S] [--max-memory MIB] [--max-instructions N] */
#include <errno.h>
#include <libgen.h>
#include <lauxlib.h>
#include <lua.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/clock.h"
#include "core/units.h"
#include "io/open.h"
#include "lbind/lathe.h"
#include "lbind/sandbox.h"

static const char run_help[] =
	"usage: lathe run RECIPE.lua MODEL [-o OUT [--packed|--plain]] [--data DIR] [--set NAME=VALUE ...]\n"
	"                 [--sandbox] [--timeout S] [--max-memory MIB] [--max-instructions N]\n"
	"\n"
	"Run a compression recipe on MODEL without the workbench. The recipe sees the\n"
	"model as the global `model` and the API as `lathe` (also require \"lathe\");\n"
	"`lathe.params{name = default, ...}` returns its parameters with --set applied.\n"
	"Each commit is measured on the validation split; a table of the steps\n"
	"(accuracy, size, ratio) goes to stdout, progress to stderr.\n"
	"\n"
	"  -o OUT             save the committed model to OUT (atomically) at the end;\n"
	"                     packed (codes, sparse indices, Huffman: still\n"
	"                     safetensors) when that makes it smaller, else as values\n"
	"  --packed, --plain  save OUT packed (every tensor packing makes smaller), or\n"
	"                     as values, whatever the sizes\n"
	"  --data DIR         dataset directory (default: $LATHE_DATA, the bundled\n"
	"                     slice, /usr/share/datasets/fashion-mnist)\n"
	"  --set NAME=VALUE   set a recipe parameter (repeatable)\n"
	"  --sandbox          untrusted recipe: no os/io escape, no C modules or binary\n"
	"                     chunks, reads only MODEL and RECIPE, writes nothing (OUT\n"
	"                     is written by lathe afterwards), and limits:\n"
	"  --timeout S        wall-clock seconds (sandbox; default 600)\n"
	"  --max-memory MIB   Lua heap in MiB (sandbox; default 512)\n"
	"  --max-instructions N  Lua VM instructions (sandbox; default 2000000000)\n"
	"\n"
	"An error anywhere leaves nothing written: exit 1 with `lathe: RECIPE:LINE: message`.\n";

struct progress {
	int tty;
	double last;
	int shown;
};

static void on_progress(void *ud, const char *label, double fraction, const char *detail)
{
	struct progress *p = ud;
	if (!p->tty)
		return;
	double t = lt_seconds();
	if (!detail) {
		if (p->shown)
			fprintf(stderr, "\r\033[K");
		p->shown = 0;
		return;
	}
	if (t - p->last < 0.1)
		return;
	fprintf(stderr, "\r%s %3.0f%%  %s\033[K", label, 100 * fraction, detail);
	fflush(stderr);
	p->last = t;
	p->shown = 1;
}

static void on_sigint(int sig)
{
	(void)sig;
	lt_lua_interrupt();
}

/* Hook that turns Ctrl-C into a Lua error in pure-Lua loops. */
static void interrupt_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	if (lt_lua_interrupted())
		luaL_error(L, "interrupted");
}

/* The sandbox's hook cannot fire inside one long C call (a string pattern
 * over a huge subject): past the limit plus a grace period, end the process
 * with the usual one-line error. Saves are atomic, so nothing is torn. */
struct watchdog {
	double limit, grace;
	const char *recipe;
};

static void *watchdog_main(void *arg)
{
	struct watchdog *w = arg;
	double end = lt_seconds() + w->limit + w->grace;
	for (;;) {
		double left = end - lt_seconds();
		if (left <= 0)
			break;
		usleep(left > 1 ? 1000000 : (useconds_t)(left * 1e6) + 1);
	}
	char msg[512];
	int n = snprintf(msg, sizeof msg, "lathe: %s: time limit exceeded (%.0f s)\n", w->recipe, w->limit);
	if (n > 0 && write(2, msg, (size_t)n) < 0) {
		/* nothing more can be reported */
	}
	_exit(EXIT_FAIL);
	return NULL;
}

/* First line of a Lua error (the traceback follows on later lines),
 * prefixed with `where` unless it already names a place. */
static void print_lua_error(const char *where, const char *msg)
{
	const char *nl = strchr(msg, '\n');
	int len = nl ? (int)(nl - msg) : (int)strlen(msg);
	size_t wl = strlen(where);
	int placed = !strncmp(msg, where, wl) && msg[wl] == ':';
	fprintf(stderr, "lathe: %s%s%.*s\n", placed ? "" : where, placed ? "" : ": ", len, msg);
	const char *tb = getenv("LATHE_TRACEBACK");
	if (tb && *tb && strcmp(tb, "0") && nl)
		fprintf(stderr, "%s\n", nl + 1);
}

/* One line per step: what changed, accuracy (and change from step 0),
 * size and ratio. */
static void print_summary(lt_bench *b)
{
	size_t n = lt_bench_history_len(b);
	const lt_bench_step *s0 = lt_bench_history_at(b, 0);
	int have0 = s0->has_metrics && s0->metrics.has_accuracy;
	double acc0 = have0 ? s0->metrics.accuracy : 0;
	printf("%-4s  %-36s  %9s  %8s  %10s  %7s  %8s\n", "step", "change", "accuracy", "delta",
	       "size", "ratio", "sparsity");
	for (size_t i = 0; i < n; i++) {
		const lt_bench_step *s = lt_bench_history_at(b, i);
		char what[40], acc[16] = "-", delta[16] = "", size[24] = "-", ratio[16] = "-", sp[16] = "-";
		const char *text = *s->message ? s->message : s->calls;
		size_t len = strcspn(text, "\n");
		if (len > 35)
			snprintf(what, sizeof what, "%.32s...", text);
		else
			snprintf(what, sizeof what, "%.*s", (int)len, text);
		if (s->has_metrics) {
			const lt_metrics *m = &s->metrics;
			if (m->has_accuracy) {
				snprintf(acc, sizeof acc, "%.2f%%", 100 * m->accuracy);
				if (i && have0)
					snprintf(delta, sizeof delta, "%+.2f", 100 * (m->accuracy - acc0));
			}
			lt_format_bytes((double)m->size, size, sizeof size);
			snprintf(ratio, sizeof ratio, "%.2fx", m->ratio);
			snprintf(sp, sizeof sp, "%.1f%%",
				 m->params ? 100.0 * (1.0 - (double)m->nonzeros / (double)m->params) : 0.0);
		}
		printf("%-4zu  %-36s  %9s  %8s  %10s  %7s  %8s\n", i, what, acc, delta, size, ratio, sp);
	}
	fflush(stdout);
}

int cmd_run(int argc, char **argv)
{
	const char *recipe = NULL, *model_path = NULL, *out = NULL, *data = NULL;
	int sandbox = 0;
	double timeout = 0;
	int64_t max_mib = 0, max_insn = 0;
	lt_save_form form = LT_SAVE_AUTO;
	const char **sets = calloc((size_t)argc, sizeof *sets);
	int nsets = 0;
	if (!sets)
		return cli_usage_error("run", "out of memory");
	int rc = EXIT_USAGE;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int has_val = i + 1 < argc;
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(run_help, stdout);
			free(sets);
			return EXIT_OK;
		} else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
			if (!has_val)
				goto missing;
			out = argv[++i];
		} else if (!strcmp(a, "--data")) {
			if (!has_val)
				goto missing;
			data = argv[++i];
		} else if (!strcmp(a, "--set")) {
			if (!has_val)
				goto missing;
			const char *s = argv[++i], *eq = strchr(s, '=');
			if (!eq || eq == s) {
				cli_usage_error("run", "--set wants NAME=VALUE (got '%s')", s);
				goto done;
			}
			sets[nsets++] = s;
		} else if (!strcmp(a, "--sandbox")) {
			sandbox = 1;
		} else if (!strcmp(a, "--packed")) {
			form = LT_SAVE_PACKED;
		} else if (!strcmp(a, "--plain")) {
			form = LT_SAVE_PLAIN;
		} else if (!strcmp(a, "--timeout")) {
			if (!has_val)
				goto missing;
			char *end;
			timeout = strtod(argv[++i], &end);
			if (*end || !(timeout > 0 && timeout <= 86400 * 7)) {
				cli_usage_error("run", "--timeout wants seconds, more than 0 and at most 604800 (got '%s')", argv[i]);
				goto done;
			}
		} else if (!strcmp(a, "--max-memory")) {
			if (!has_val)
				goto missing;
			if (cli_parse_count(argv[++i], 1, 1 << 20, &max_mib)) {
				cli_usage_error("run", "--max-memory wants MiB from 1 to 1048576 (got '%s')", argv[i]);
				goto done;
			}
		} else if (!strcmp(a, "--max-instructions")) {
			if (!has_val)
				goto missing;
			if (cli_parse_count(argv[++i], 1000, INT64_MAX / 2, &max_insn)) {
				cli_usage_error("run", "--max-instructions wants a count of 1000 or more (got '%s')", argv[i]);
				goto done;
			}
		} else if (a[0] == '-' && a[1]) {
			cli_usage_error("run", "unknown option '%s'", a);
			goto done;
		} else if (!recipe) {
			recipe = a;
		} else if (!model_path) {
			model_path = a;
		} else {
			cli_usage_error("run", "unexpected argument '%s'", a);
			goto done;
		}
	}
	if (!recipe || !model_path) {
		cli_usage_error("run", "give a recipe and a model: lathe run RECIPE.lua MODEL");
		goto done;
	}
	if (out) {
		/* Find out now, not after a long recipe, that OUT cannot be
		 * written: its directory must exist and be writable. */
		char *dir = strdup(out);
		int ok = dir && access(dirname(dir), W_OK) == 0;
		int e = errno;
		free(dir);
		if (!ok) {
			fprintf(stderr, "lathe: %s: cannot write there: %s\n", out, strerror(e));
			rc = EXIT_FAIL;
			goto done;
		}
		/* Saving over the recipe would destroy it; realpath sees through
		 * other spellings of the same file. */
		char *a = realpath(recipe, NULL), *b = realpath(out, NULL);
		int same = a && b && !strcmp(a, b);
		free(a);
		free(b);
		if (same) {
			cli_usage_error("run", "-o %s is the recipe itself", out);
			goto done;
		}
	}
	if (form != LT_SAVE_AUTO && !out) {
		cli_usage_error("run", "--packed and --plain say how to save -o OUT; there is no -o");
		goto done;
	}
	if (!sandbox && (timeout > 0 || max_mib || max_insn)) {
		cli_usage_error("run", "--timeout, --max-memory and --max-instructions go with --sandbox");
		goto done;
	}
	rc = EXIT_FAIL;

	/* A sandboxed recipe may read its model and itself and write nothing:
	 * OUT is written by lathe after the recipe succeeded, so a failing
	 * recipe cannot leave a half-written OUT behind. */
	const char *reads[] = {model_path, recipe, NULL};
	const char *writes[] = {sandbox ? NULL : out, NULL};
	lt_lua_opts opts = {.data_dir = data, .sandbox = sandbox, .read_paths = reads,
			    .write_paths = writes, .mem_limit = (size_t)max_mib << 20,
			    .insn_limit = (long)max_insn, .time_limit = timeout};
	lt_err err;
	lua_State *L = lt_lua_open(&opts, &err);
	if (!L) {
		cli_fail("lua", &err);
		goto done;
	}
	struct progress prog = {.tty = isatty(2)};
	lt_lua_set_progress(L, on_progress, &prog);
	lt_lua_set_commit_preview(L, 1);
	if (sandbox) {
		static struct watchdog w;
		w.limit = timeout > 0 ? timeout : 600;
		w.grace = 5;
		w.recipe = recipe;
		pthread_t tid;
		if (pthread_create(&tid, NULL, watchdog_main, &w) == 0)
			pthread_detach(tid);
	} else {
		signal(SIGINT, on_sigint);
		lua_sethook(L, interrupt_hook, LUA_MASKCOUNT, 10000);
	}

	/* --set values, read by lathe.params. */
	lua_createtable(L, 0, nsets);
	for (int i = 0; i < nsets; i++) {
		const char *eq = strchr(sets[i], '=');
		lua_pushlstring(L, sets[i], (size_t)(eq - sets[i]));
		lua_pushstring(L, eq + 1);
		lua_settable(L, -3);
	}
	lua_setfield(L, LUA_REGISTRYINDEX, "lathe.set");

	/* model = lathe.open(MODEL) */
	lua_getglobal(L, "lathe");
	lua_getfield(L, -1, "open");
	lua_remove(L, -2);
	lua_pushstring(L, model_path);
	if (lt_lua_pcall(L, 1, 2) != LUA_OK) {
		print_lua_error(model_path, lua_tostring(L, -1));
		goto close;
	}
	if (lua_isnil(L, -2)) {
		fprintf(stderr, "lathe: %s\n", lua_tostring(L, -1));
		goto close;
	}
	lua_pop(L, 1);
	lt_bench *bench = lt_lua_to_bench(L, -1);
	lua_setglobal(L, "model");

	int st = luaL_loadfilex(L, recipe, "t");
	if (st != LUA_OK) {
		print_lua_error(recipe, lua_tostring(L, -1));
		goto close;
	}
	if (lt_lua_pcall(L, 0, 0) != LUA_OK) {
		print_lua_error(recipe, lua_tostring(L, -1));
		goto close;
	}
	if (nsets && lua_getfield(L, LUA_REGISTRYINDEX, "lathe.params_used") == LUA_TNIL) {
		fprintf(stderr, "lathe: %s: --set given, but the recipe declares no parameters "
			"(it never calls lathe.params)\n", recipe);
		goto close;
	}
	if (lt_bench_dirty(bench))
		fprintf(stderr, "lathe: warning: %s left staged changes uncommitted; they are not "
			"in the summary%s\n", recipe, out ? " or the saved model" : "");
	print_summary(bench);
	if (out) {
		int packed;
		if (lt_model_save_as(lt_bench_committed(bench), out, form, &packed, &err)) {
			cli_fail(out, &err);
			goto close;
		}
		struct stat saved;
		char size[24];
		lt_format_bytes(stat(out, &saved) == 0 ? (double)saved.st_size : 0.0, size, sizeof size);
		fprintf(stderr, "saved %s (%s%s)\n", out, size, packed ? ", packed" : "");
	}
	rc = EXIT_OK;
close:
	if (lt_sandbox_active(L))
		lt_sandbox_close(L);
	else
		lua_close(L);
done:
	free(sets);
	return rc;
missing:
	cli_usage_error("run", "%s needs a value", argv[argc - 1]);
	goto done;
}
