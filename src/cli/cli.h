/* Shared pieces of the command-line front end (not part of liblathe). */
#ifndef LT_CLI_H
#define LT_CLI_H

#include <stdint.h>

#include "core/err.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* Print "lathe: WHAT: reason" on stderr; returns EXIT_FAIL. */
int cli_fail(const char *what, const lt_err *err);
/* Print "lathe: message (see 'lathe CMD --help')" on stderr; returns EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parse a positive integer option value; 0 on success. */
int cli_parse_count(const char *s, int64_t lo, int64_t hi, int64_t *out);

/* Directory holding the running binary (for the uninstalled tree). */
const char *cli_exe_dir(void);
/* Path of a bundled file (samples/NAME): the source tree next to an
 * uninstalled binary first, then the installed data directory. Static
 * buffer; NULL if not found. */
const char *cli_bundled(const char *name);

/* A progress line on stderr, shown only on a terminal and only once the
 * work has taken more than a second. */
typedef struct cli_progress {
	const char *label;
	double start;
	int shown;
} cli_progress;
void cli_progress_start(cli_progress *p, const char *label);
int cli_progress_update(void *p, int64_t done, int64_t total);
void cli_progress_end(cli_progress *p);

int cmd_info(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_lua(int argc, char **argv);
int cmd_tui(int argc, char **argv);

#endif
