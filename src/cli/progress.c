#include "cli/cli.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "core/clock.h"

int cli_fail(const char *what, const lt_err *err)
{
	fprintf(stderr, "lathe: %s: %s\n", what, err && err->msg[0] ? err->msg : "failed");
	return EXIT_FAIL;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "lathe: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see 'lathe %s%s--help')\n", cmd ? cmd : "", cmd ? " " : "");
	return EXIT_USAGE;
}

int cli_parse_count(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
	char *end;
	if (!s || *s < '0' || *s > '9') /* no sign, no leading space */
		return -1;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (*end || errno == ERANGE || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

const char *cli_exe_dir(void)
{
	static char dir[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
	if (n <= 0)
		return ".";
	dir[n] = '\0';
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	return dir;
}

const char *cli_bundled(const char *name)
{
	static char path[PATH_MAX + 64];
	/* An uninstalled build keeps samples/ beside the binary (or in the
	 * source tree of a VPATH build, which ./configure records). */
	const char *roots[] = {cli_exe_dir(), LT_SRCDIR, LT_DATADIR};
	for (size_t i = 0; i < sizeof roots / sizeof *roots; i++) {
		snprintf(path, sizeof path, "%s/samples/%s", roots[i], name);
		if (access(path, R_OK) == 0)
			return path;
	}
	return NULL;
}

void cli_progress_start(cli_progress *p, const char *label)
{
	p->label = label;
	p->start = lt_seconds();
	p->shown = 0;
}

int cli_progress_update(void *ud, int64_t done, int64_t total)
{
	cli_progress *p = ud;
	double t = lt_seconds() - p->start;
	if (t < 1.0 || !isatty(STDERR_FILENO))
		return 0;
	double eta = done > 0 ? t * (double)(total - done) / (double)done : 0;
	fprintf(stderr, "\r%s %lld/%lld (%3.0f%%) %.1fs, eta %.1fs ", p->label,
		(long long)done, (long long)total, total ? 100.0 * done / total : 100.0, t, eta);
	fflush(stderr);
	p->shown = 1;
	return 0;
}

void cli_progress_end(cli_progress *p)
{
	if (p->shown)
		fprintf(stderr, "\r\033[K");
}
