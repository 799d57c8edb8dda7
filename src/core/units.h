/* Sizes as people read them, the same everywhere lathe prints one. */
#ifndef LT_UNITS_H
#define LT_UNITS_H

#include <stddef.h>

/* "512 B", "1.50 KiB", "3.20 MiB" ... up to TiB (binary units, two
 * decimals above bytes) into out (at most n bytes); returns out. */
char *lt_format_bytes(double bytes, char *out, size_t n);

#endif
