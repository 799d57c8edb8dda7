/* lathe: command-line entry point. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "cli/cli.h"
#include "kern/blas.h"
#include "tui/tui.h"

static void usage(FILE *out)
{
	fputs("usage: lathe [--data DIR] [MODEL]\n"
	      "       lathe COMMAND [ARGS]\n"
	      "\n"
	      "Look inside neural networks and make them smaller. Without a command,\n"
	      "the interactive workbench on MODEL (default: the bundled sample,\n"
	      "samples/lenet5.safetensors); press ? there for its keys.\n"
	      "\n"
	      "commands:\n"
	      "  info FILE [--json]          tensors, shapes, parameters, sparsity, sizes,\n"
	      "                              graph and MACs (models); type and dims (IDX)\n"
	      "  eval [MODEL] [--data DIR] [--split val|test] [--limit N] [--batch N]\n"
	      "       [--threads N] [--json] top-1/top-5 accuracy, loss, per-class\n"
	      "                              accuracy, confusion matrix, images/s\n"
	      "  convert MODEL -o OUT [--dtype f32|f16|bf16]\n"
	      "                              re-save a model (atomically), casting floats\n"
	      "  train ARCH -o OUT [--data DIR] [--epochs N] [--batch N] [--lr X]\n"
	      "        [--opt adam|adamw|sgd] [--seed N] [--val] ...\n"
	      "                              train a model in C and save it\n"
	      "  run RECIPE.lua MODEL [-o OUT] [--data DIR] [--set NAME=VALUE ...] [--sandbox]\n"
	      "                              run a compression recipe (Lua) headless\n"
	      "  lua [-m MODEL] [SCRIPT]     Lua with the lathe module; a prompt without SCRIPT\n"
	      "\n"
	      "  --help                      this text ('lathe COMMAND --help' for one command)\n"
	      "  --version                   version and the BLAS kernels in use\n"
	      "\n"
	      "With no MODEL, eval uses the bundled sample (samples/lenet5.safetensors).\n"
	      "See lathe(1) and, for the Lua API, lathe-lua(3).\n",
	      out);
}

static void version(void)
{
	printf("lathe %s\n", PACKAGE_VERSION);
	printf("OpenBLAS core: %s (chosen by %s; %d threads)\n", lt_blas_core(),
	       lt_blas_core_origin(), lt_blas_threads());
}

int main(int argc, char **argv)
{
	/* Before anything touches BLAS: pick OpenBLAS's kernels for this CPU. */
	lt_blas_autocore(argv);
	const char *cmd = argc < 2 ? NULL : argv[1];
	/* Commands first, so a file named like one (the lua/ directory of a
	 * source tree) does not hide it; then the workbench. */
	if (!cmd || !strcmp(cmd, "--data"))
		return cmd_tui(argc - 1, argv + 1);
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		usage(stdout);
		return EXIT_OK;
	}
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
		version();
		return EXIT_OK;
	}
	if (!strcmp(cmd, "info"))
		return cmd_info(argc - 1, argv + 1);
	if (!strcmp(cmd, "eval"))
		return cmd_eval(argc - 1, argv + 1);
	if (!strcmp(cmd, "convert"))
		return cmd_convert(argc - 1, argv + 1);
	if (!strcmp(cmd, "train"))
		return cmd_train(argc - 1, argv + 1);
	if (!strcmp(cmd, "run"))
		return cmd_run(argc - 1, argv + 1);
	if (!strcmp(cmd, "lua"))
		return cmd_lua(argc - 1, argv + 1);
	if (access(cmd, F_OK) == 0)
		return cmd_tui(argc - 1, argv + 1);
	if (cmd[0] == '-')
		return cli_usage_error(NULL, "unknown option '%s'", cmd);
	if (strchr(cmd, '/') || strchr(cmd, '.')) {
		fprintf(stderr, "lathe: %s: no such file\n", cmd);
		return EXIT_FAIL;
	}
	return cli_usage_error(NULL, "unknown command '%s' (and no file of that name)", cmd);
}
