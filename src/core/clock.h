/* Monotonic wall-clock seconds, for progress and throughput figures. */
#ifndef LT_CLOCK_H
#define LT_CLOCK_H

#include <time.h>

static inline double lt_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

#endif
