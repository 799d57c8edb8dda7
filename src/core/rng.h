/* Small deterministic random numbers: seeded streams (shuffles, init) and a
 * counter-based hash (dropout masks) whose value depends only on its inputs,
 * so results do not depend on how work is split across threads. */
#ifndef LT_RNG_H
#define LT_RNG_H

#include <stdint.h>

typedef struct lt_rng {
	uint64_t s;
} lt_rng;

/* splitmix64 step: a full-period 64-bit generator, fine for shuffling and
 * initialisation (not for cryptography). */
static inline uint64_t lt_rng_next(lt_rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

/* Uniform in [0, 1) with 24 random bits (exact in f32). */
static inline float lt_rng_uniform(lt_rng *r)
{
	return (float)(lt_rng_next(r) >> 40) * (1.0f / 16777216.0f);
}

/* Uniform integer in [0, n) without modulo bias worth caring about for
 * n far below 2^64. */
static inline uint64_t lt_rng_below(lt_rng *r, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)lt_rng_next(r) * n) >> 64);
}

/* Hash of (a, b, c) to a uniform float in [0, 1). */
static inline float lt_hash_uniform(uint64_t a, uint64_t b, uint64_t c)
{
	lt_rng r = {a ^ (b * 0xd1342543de82ef95u) ^ (c * 0xaf251af3b0f025b5u)};
	lt_rng_next(&r);
	return lt_rng_uniform(&r);
}

#endif
