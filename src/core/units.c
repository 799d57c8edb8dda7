#include "core/units.h"

#include <stdio.h>

char *lt_format_bytes(double bytes, char *out, size_t n)
{
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	int u = 0;
	/* 1023.999 KiB would print as "1024.00 KiB": move up a unit instead */
	while (bytes >= 1023.995 && u < 4) {
		bytes /= 1024;
		u++;
	}
	snprintf(out, n, u ? "%.2f %s" : "%.0f %s", bytes, unit[u]);
	return out;
}
