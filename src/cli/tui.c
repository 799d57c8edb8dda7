/* lathe [--data DIR] [MODEL]: the interactive workbench. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "tui/tui.h"

static const char tui_help[] =
	"usage: lathe [--data DIR] [MODEL]\n"
	"\n"
	"The interactive workbench on MODEL (default: the bundled sample,\n"
	"samples/lenet5.safetensors): the layer table, histogram, sparsity heatmap\n"
	"and singular-value spectrum of the selected layer, committed -> staged\n"
	"accuracy and size, and a Lua REPL (the API of lathe-lua(3), with `model`\n"
	"the open model). Press ? for the keys.\n"
	"\n"
	"  --data DIR    directory with the IDX files (default: $LATHE_DATA, the\n"
	"                bundled slice, then /usr/share/datasets/fashion-mnist)\n"
	"\n"
	"It needs a terminal; for scripts use 'lathe run' or 'lathe lua'.\n";

int cmd_tui(int argc, char **argv)
{
	lt_tui_opts o = {0};
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(tui_help, stdout);
			return EXIT_OK;
		} else if (!strcmp(argv[i], "--data")) {
			if (++i >= argc)
				return cli_usage_error(NULL, "--data needs a directory");
			o.data_dir = argv[i];
		} else if (argv[i][0] == '-' && argv[i][1]) {
			return cli_usage_error(NULL, "unknown option '%s'", argv[i]);
		} else if (o.model_path) {
			return cli_usage_error(NULL, "one MODEL at a time ('%s' and '%s')", o.model_path, argv[i]);
		} else {
			o.model_path = argv[i];
		}
	}
	char bundled[4096];
	if (!o.model_path) {
		const char *found = cli_bundled("lenet5.safetensors");
		if (!found) {
			fprintf(stderr, "lathe: the bundled sample is not installed; give a MODEL\n");
			return EXIT_FAIL;
		}
		snprintf(bundled, sizeof bundled, "%s", found);
		o.model_path = bundled;
	}
	return lt_tui_run(&o);
}
