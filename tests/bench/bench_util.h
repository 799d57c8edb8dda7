/* Shared by the benchmark drivers: the comparison for medians, and the
 * hash fill the Python peers (peer_svd.py, peer_prune.py) reproduce bit
 * for bit. */
#ifndef LT_BENCH_UTIL_H
#define LT_BENCH_UTIL_H

#include <stdint.h>

/* qsort order for doubles (times). */
static inline int bench_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Element i: a 64-bit multiply-xorshift hash of i + 1, top 24 bits as a
 * uniform value in [-0.5, 0.5), exact in float32. */
static inline float bench_fill(uint64_t i)
{
	uint64_t h = (i + 1) * 0x9E3779B97F4A7C15ull;
	h ^= h >> 32;
	h *= 0xD6E8FEB86659FD93ull;
	h ^= h >> 32;
	return (float)(h >> 40) / 16777216.0f - 0.5f;
}

#endif
