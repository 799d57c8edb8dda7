/* Bit streams, fixed-width symbols and length-limited canonical Huffman
 * codes: round trips, optimality against a plain Huffman merge and an
 * exhaustive search, hostile tables and streams, allocation failures, and
 * the coder's throughput (reported, not asserted). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/mem.h"
#include "core/rng.h"
#include "kern/huffman.h"
#include "tap.h"

static lt_rng rng = {20240611};

/* ---- references ---- */

/* Plain Huffman, the textbook way: leaves sorted by weight, merged
 * nodes appended to a second queue (their weights only grow), the two
 * lightest fronts merged each step. Gives the optimal total bits (the sum
 * of merged weights) and the tree height. */
static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

static void ref_huffman(const uint64_t *freq, uint32_t nsym, uint64_t *cost, int *height)
{
	uint64_t *leaf = malloc(nsym * sizeof *leaf), *node = malloc(nsym * sizeof *node);
	int *nh = malloc(nsym * sizeof *nh);
	uint32_t n = 0, li = 0, ni = 0, nn = 0;
	for (uint32_t s = 0; s < nsym; s++)
		if (freq[s])
			leaf[n++] = freq[s];
	qsort(leaf, n, sizeof *leaf, cmp_u64);
	*cost = n == 1 ? leaf[0] : 0; /* one symbol: one bit each */
	*height = n == 1 ? 1 : 0;
	for (uint32_t step = 0; n > 1 && step < n - 1; step++) {
		uint64_t w[2];
		int h[2];
		for (int k = 0; k < 2; k++) {
			if (li < n && (ni == nn || leaf[li] <= node[ni]))
				w[k] = leaf[li++], h[k] = 0;
			else
				w[k] = node[ni], h[k] = nh[ni++];
		}
		node[nn] = w[0] + w[1];
		nh[nn] = (h[0] > h[1] ? h[0] : h[1]) + 1;
		*cost += node[nn];
		*height = nh[nn++];
	}
	free(leaf);
	free(node);
	free(nh);
}

/* Kraft sum in units of 2^-LT_HUFF_MAX_LEN, and the longest length. */
static uint64_t kraft(const uint8_t *len, uint32_t nsym, int *maxlen)
{
	uint64_t k = 0;
	*maxlen = 0;
	for (uint32_t s = 0; s < nsym; s++)
		if (len[s]) {
			k += 1ull << (LT_HUFF_MAX_LEN - len[s]);
			if (len[s] > *maxlen)
				*maxlen = len[s];
		}
	return k;
}

/* Every used symbol freq[s] times, shuffled. */
static uint16_t *multiset(const uint64_t *freq, uint32_t nsym, int64_t *n)
{
	int64_t total = 0;
	for (uint32_t s = 0; s < nsym; s++)
		total += (int64_t)freq[s];
	uint16_t *sym = malloc((size_t)(total ? total : 1) * sizeof *sym);
	int64_t at = 0;
	for (uint32_t s = 0; s < nsym; s++)
		for (uint64_t k = 0; k < freq[s]; k++)
			sym[at++] = (uint16_t)s;
	for (int64_t i = total - 1; i > 0; i--) {
		int64_t j = (int64_t)lt_rng_below(&rng, (uint64_t)i + 1);
		uint16_t t = sym[i];
		sym[i] = sym[j];
		sym[j] = t;
	}
	*n = total;
	return sym;
}

/* Lengths, optimality, Kraft, table and stream round trips for one
 * histogram. */
static void check_code(const char *name, const uint64_t *freq, uint32_t nsym)
{
	lt_err err = {0};
	uint8_t *len = malloc(nsym), *back = malloc(nsym);
	int rc = lt_huff_lengths(freq, nsym, LT_HUFF_MAX_LEN, len, &err);
	uint32_t used = 0;
	int lens_ok = rc == 0;
	for (uint32_t s = 0; s < nsym; s++) {
		used += freq[s] != 0;
		lens_ok &= (freq[s] != 0) == (len[s] != 0);
	}
	int maxlen;
	uint64_t k = kraft(len, nsym, &maxlen);
	tap_ok(lens_ok && maxlen <= LT_HUFF_MAX_LEN, "%s: lengths for exactly the %u used symbols, longest %d",
	       name, used, maxlen);
	if (used >= 2)
		tap_ok(k == 1ull << LT_HUFF_MAX_LEN, "%s: Kraft sum is 1", name);
	else
		tap_ok(maxlen == 1, "%s: a single symbol gets length 1", name);
	uint64_t ref, bits = lt_huff_bits(freq, len, nsym);
	int height;
	ref_huffman(freq, nsym, &ref, &height);
	if (height <= LT_HUFF_MAX_LEN)
		tap_ok(bits == ref, "%s: %llu bits, as plain Huffman (height %d, limit not binding)", name,
		       (unsigned long long)bits, height);
	else
		tap_ok(bits >= ref && bits <= ref + ref / 50, "%s: limit binds (Huffman height %d): %llu bits, "
		       "optimum without the limit %llu (+%.3f %%)", name, height, (unsigned long long)bits,
		       (unsigned long long)ref, 100.0 * (double)(bits - ref) / (double)ref);

	size_t tsize = lt_huff_table_size(len, nsym);
	uint8_t *tab = malloc(tsize);
	size_t tw = lt_huff_table_write(len, nsym, tab, tsize);
	rc = lt_huff_table_read(tab, tsize, nsym, back, &err);
	tap_ok(tw == tsize && rc == 0 && !memcmp(len, back, nsym), "%s: code table of %zu bytes reads back", name,
	       tsize);

	int64_t n;
	uint16_t *sym = multiset(freq, nsym, &n), *out = malloc((size_t)(n ? n : 1) * sizeof *out);
	size_t cap = (size_t)((bits + 7) / 8), written = 0;
	uint8_t *buf = malloc(cap ? cap : 1);
	rc = lt_huff_encode(sym, n, len, nsym, buf, cap, &written, &err);
	lt_huff_dec *d = lt_huff_dec_new(len, nsym, &err);
	int rc2 = d ? lt_huff_decode(d, buf, written, n, out, &err) : -1;
	tap_ok(rc == 0 && written == cap && rc2 == 0 && !memcmp(sym, out, (size_t)n * sizeof *out),
	       "%s: %lld symbols encode to exactly %zu bytes and decode back", name, (long long)n, cap);
	lt_huff_dec_free(d);
	free(len);
	free(back);
	free(tab);
	free(sym);
	free(out);
	free(buf);
}

static void distributions(void)
{
	uint64_t *f = calloc(LT_HUFF_MAX_SYMS, sizeof *f);
	for (int i = 0; i < 256; i++)
		f[i] = 1000;
	check_code("uniform 256", f, 256);
	memset(f, 0, 256 * sizeof *f);
	for (int i = 0; i < 40; i++)
		f[i] = (uint64_t)(100000.0 * pow(0.7, i)) + 1;
	check_code("geometric 40", f, 40);
	memset(f, 0, 256 * sizeof *f);
	f[17] = 12345;
	check_code("one symbol of 100", f, 100);
	f[17] = 3, f[60] = 999;
	check_code("two symbols", f, 100);
	for (uint32_t i = 0; i < LT_HUFF_MAX_SYMS; i++)
		f[i] = 1 + lt_rng_below(&rng, 60);
	check_code("65536 symbols", f, LT_HUFF_MAX_SYMS);
	for (uint32_t i = 0; i < LT_HUFF_MAX_SYMS; i++)
		f[i] = 40 + lt_rng_below(&rng, 30);
	check_code("65536 symbols, near uniform", f, LT_HUFF_MAX_SYMS);
	for (uint32_t i = 0; i < LT_HUFF_MAX_SYMS; i++)
		f[i] = i % 7 == 0 ? 1 + lt_rng_below(&rng, 5) : 0;
	check_code("every 7th of 65536", f, LT_HUFF_MAX_SYMS);
	/* Fibonacci counts: the plain Huffman tree is a path of depth n - 1 */
	memset(f, 0, LT_HUFF_MAX_SYMS * sizeof *f);
	f[0] = f[1] = 1;
	for (int i = 2; i < 30; i++)
		f[i] = f[i - 1] + f[i - 2];
	check_code("Fibonacci 30 (skewed)", f, 30);
	memset(f, 0, 30 * sizeof *f);
	for (int i = 0; i < 300; i++)
		f[i] = i < 280 ? 1 : (uint64_t)1 << (i - 280);
	check_code("300 symbols, 20 doubling (skewed)", f, 300);
	free(f);
}

/* Optimal length-limited codes by exhaustive search on small alphabets:
 * package-merge must reach the minimum over every length vector within
 * the limit whose Kraft sum is at most 1. */
static void exhaustive(void)
{
	int trials = 0, ok = 1;
	for (uint32_t n = 2; n <= 8; n++) {
		for (int lim = 1; lim <= 5; lim++) {
			if ((1u << lim) < n)
				continue;
			for (int t = 0; t < 6; t++) {
				uint64_t f[8];
				uint8_t len[8];
				for (uint32_t i = 0; i < n; i++)
					f[i] = t % 2 ? 1 + lt_rng_below(&rng, 100)
						     : (uint64_t)1 << lt_rng_below(&rng, 16);
				lt_err err;
				if (lt_huff_lengths(f, n, lim, len, &err)) {
					ok = 0;
					continue;
				}
				uint64_t got = lt_huff_bits(f, len, n), best = UINT64_MAX;
				int v[8] = {0};
				for (;;) {
					double kr = 0;
					uint64_t cost = 0;
					for (uint32_t i = 0; i < n; i++) {
						kr += 1.0 / (double)(1u << (v[i] + 1));
						cost += f[i] * (uint64_t)(v[i] + 1);
					}
					if (kr <= 1.0 && cost < best)
						best = cost;
					uint32_t i = 0;
					while (i < n && ++v[i] == lim)
						v[i++] = 0;
					if (i == n)
						break;
				}
				int mx = 0;
				for (uint32_t i = 0; i < n; i++)
					mx = len[i] > mx ? len[i] : mx;
				ok &= got == best && mx <= lim;
				trials++;
			}
		}
	}
	tap_ok(ok, "package-merge equals an exhaustive search of length-limited codes (%d cases, 2-8 symbols, "
	       "limits 1-5)", trials);
	lt_err err;
	uint64_t f[5] = {1, 1, 1, 1, 1};
	uint8_t len[5];
	tap_ok(lt_huff_lengths(f, 5, 2, len, &err) == LT_EINVAL, "5 symbols in 2 bits refused: %s", err.msg);
}

static void bits_and_fixed(void)
{
	lt_err err = {0};
	enum { N = 3000 };
	static uint32_t v[N];
	static int w[N];
	lt_bitw bw, cw;
	static uint8_t buf[N * 4 + 8];
	lt_bitw_init(&bw, buf, sizeof buf);
	lt_bitw_init(&cw, NULL, 0);
	for (int i = 0; i < N; i++) {
		w[i] = (int)lt_rng_below(&rng, 33);
		v[i] = w[i] ? (uint32_t)lt_rng_next(&rng) & (uint32_t)((1ull << w[i]) - 1) : 0;
		lt_bitw_put(&bw, v[i], w[i]);
		lt_bitw_put(&cw, 0xffffffffu, w[i]); /* counting only */
	}
	uint64_t nbits = lt_bitw_bits(&bw);
	size_t bytes = lt_bitw_finish(&bw), counted = lt_bitw_finish(&cw);
	lt_bitr r;
	lt_bitr_init(&r, buf, bytes);
	int same = 1;
	for (int i = 0; i < N; i++)
		same &= lt_bitr_get(&r, w[i]) == v[i];
	tap_ok(same && bytes == (nbits + 7) / 8 && counted == bytes && lt_bitr_end(&r, "stream", &err) == 0,
	       "bit writer/reader: %d fields of 0-32 bits round trip, %zu bytes; counting agrees", N, bytes);
	(void)lt_bitr_get(&r, 9);
	tap_ok(lt_bitr_overrun(&r) && lt_bitr_end(&r, "the stream", &err) == LT_EFORMAT,
	       "reading past the end is reported: %s", err.msg);

	static uint16_t sym[1001], out[1001];
	static uint8_t packed[2100], sink[8];
	const int64_t ns[] = {0, 1, 7, 1000, 1001};
	int all = 1, refused = 1;
	for (int width = 1; width <= 16; width++) {
		for (size_t t = 0; t < sizeof ns / sizeof *ns; t++) {
			int64_t n = ns[t];
			for (int64_t i = 0; i < n; i++)
				sym[i] = (uint16_t)lt_rng_below(&rng, 1u << width);
			if (n)
				sym[n - 1] = (uint16_t)((1u << width) - 1);
			size_t nb = lt_fixed_bytes(n, width);
			lt_fixed_pack(sym, n, width, packed);
			int rc = lt_fixed_unpack(packed, nb, n, width, 1u << width, out, &err);
			all &= nb == (size_t)((n * width + 7) / 8) && rc == 0 &&
			       !memcmp(sym, out, (size_t)n * sizeof *out);
			if (n) {
				/* the largest symbol is outside an alphabet one smaller */
				uint32_t all_syms = 1u << width;
				refused &= lt_fixed_unpack(packed, nb, n, width, all_syms - 1, out, &err) == LT_EFORMAT;
				refused &= lt_fixed_unpack(packed, nb - 1, n, width, all_syms, out, &err) == LT_EFORMAT;
			}
			packed[nb] = 0;
			refused &= lt_fixed_unpack(packed, nb + 1, n, width, 1u << width, out, &err) == LT_EFORMAT;
			if ((n * width) % 8) {
				packed[nb - 1] |= 0x80;
				refused &= lt_fixed_unpack(packed, nb, n, width, 1u << width, out, &err) == LT_EFORMAT;
			}
		}
	}
	tap_ok(all, "fixed width: widths 1-16, 0 to 1001 symbols, round trip in ceil(n*w/8) bytes");
	tap_ok(refused, "fixed width: a symbol past the alphabet, a byte short, a byte over, nonzero padding "
	       "are refused (%s)", err.msg);
	memset(out, 0xff, sizeof out);
	tap_ok(lt_fixed_bytes(50, 0) == 0 && lt_fixed_unpack(sink, 0, 50, 0, 1, out, &err) == 0 && out[49] == 0,
	       "width 0: 50 symbols of a one-symbol alphabet take no bytes");
}

/* Table bytes built from tokens, for the hostile cases. */
static size_t tokens(uint8_t *buf, size_t cap, const uint32_t *tok, int n)
{
	lt_bitw w;
	lt_bitw_init(&w, buf, cap);
	for (int i = 0; i < n; i += 2)
		lt_bitw_put(&w, tok[i], (int)tok[i + 1]);
	return lt_bitw_finish(&w);
}

static void hostile_tables(void)
{
	lt_err err = {0};
	uint8_t len[16], buf[64];
	const uint8_t over[3] = {1, 1, 1}, incomplete[2] = {1, 2}, long_len[2] = {1, 21}, none[3] = {0, 0, 0};
	tap_ok(lt_huff_check(over, 3, &err) == LT_EFORMAT && strstr(err.msg, "over-subscribed"),
	       "over-subscribed lengths refused: %s", err.msg);
	tap_ok(lt_huff_check(incomplete, 2, &err) == LT_EFORMAT && strstr(err.msg, "incomplete"),
	       "incomplete lengths refused: %s", err.msg);
	tap_ok(lt_huff_check(long_len, 2, &err) == LT_EFORMAT, "a length over the limit refused: %s", err.msg);
	tap_ok(lt_huff_check(none, 3, &err) == LT_EFORMAT, "a table without symbols refused: %s", err.msg);
	tap_ok(!lt_huff_dec_new(over, 3, &err) && err.code == LT_EFORMAT, "no decoder for a bad table");

	/* serialised: 111 + 5 bits explicit, 0 repeat, 10s step, 110 gamma run */
	size_t n = tokens(buf, sizeof buf, (const uint32_t[]){7, 3, 1, 5, 0, 1, 0, 1}, 8); /* 1 1 1 */
	tap_ok(lt_huff_table_read(buf, n, 3, len, &err) == LT_EFORMAT && strstr(err.msg, "over-subscribed"),
	       "serialised over-subscribed table refused: %s", err.msg);
	n = tokens(buf, sizeof buf, (const uint32_t[]){7, 3, 21, 5, 7, 3, 1, 5}, 8);
	tap_ok(lt_huff_table_read(buf, n, 2, len, &err) == LT_EFORMAT && strstr(err.msg, "length 21"),
	       "serialised length 21 refused: %s", err.msg);
	n = tokens(buf, sizeof buf, (const uint32_t[]){7, 3, 1, 5, 3, 3, 0, 2, 3, 2}, 10); /* run of 7 */
	tap_ok(lt_huff_table_read(buf, n, 5, len, &err) == LT_EFORMAT && strstr(err.msg, "run"),
	       "a run past the alphabet refused: %s", err.msg);
	n = tokens(buf, sizeof buf, (const uint32_t[]){7, 3, 1, 5, 0, 1}, 6);
	tap_ok(lt_huff_table_read(buf, n, 2, len, &err) == 0 && len[0] == 1 && len[1] == 1,
	       "a good two-symbol table reads");
	buf[n] = 0;
	tap_ok(lt_huff_table_read(buf, n + 1, 2, len, &err) == LT_EFORMAT && strstr(err.msg, "left over"),
	       "a table with a byte left over refused: %s", err.msg);
	buf[1] |= 0x80; /* 9 bits used: bits 9-15 are padding */
	tap_ok(lt_huff_table_read(buf, n, 2, len, &err) == LT_EFORMAT && strstr(err.msg, "padding"),
	       "a table with nonzero padding refused: %s", err.msg);
	tap_ok(lt_huff_table_read(buf, 0, 2, len, &err) == LT_EFORMAT, "an empty table for 2 symbols refused: %s",
	       err.msg);
	n = tokens(buf, sizeof buf, (const uint32_t[]){5, 3}, 2); /* 1 0 1: step down from 0 */
	tap_ok(lt_huff_table_read(buf, n, 2, len, &err) == LT_EFORMAT, "a step to length -1 refused: %s", err.msg);
	n = tokens(buf, sizeof buf, (const uint32_t[]){3, 3, 0, 17, 1, 1}, 6); /* 17 zeros: gamma too long */
	tap_ok(lt_huff_table_read(buf, n, 16, len, &err) == LT_EFORMAT, "an over-long run code refused: %s",
	       err.msg);

	/* Every truncation of a real table, and random bytes as tables. */
	uint64_t f[300];
	uint8_t good[300], got[300];
	for (int i = 0; i < 300; i++)
		f[i] = i % 5 ? lt_rng_below(&rng, 1000) : 0;
	lt_huff_lengths(f, 300, LT_HUFF_MAX_LEN, good, &err);
	size_t ts = lt_huff_table_size(good, 300);
	uint8_t *t = malloc(ts);
	lt_huff_table_write(good, 300, t, ts);
	int all = 1;
	for (size_t cut = 0; cut < ts; cut++) {
		uint8_t *c = malloc(cut ? cut : 1); /* exact size: ASan sees any read past it */
		memcpy(c, t, cut);
		all &= lt_huff_table_read(c, cut, 300, got, &err) == LT_EFORMAT;
		free(c);
	}
	tap_ok(all, "a %zu-byte table cut at every length is refused (%s)", ts, err.msg);
	int accepted = 0;
	for (int trial = 0; trial < 20000; trial++) {
		size_t sz = 1 + lt_rng_below(&rng, 12);
		uint8_t *c = malloc(sz);
		for (size_t i = 0; i < sz; i++)
			c[i] = (uint8_t)lt_rng_next(&rng);
		uint32_t ns = 1 + (uint32_t)lt_rng_below(&rng, 40);
		accepted += lt_huff_table_read(c, sz, ns, got, &err) == 0;
		free(c);
	}
	tap_ok(1, "20000 random byte strings as tables: no crash, %d happened to be valid codes", accepted);
	free(t);
}

static void hostile_streams(void)
{
	lt_err err = {0};
	uint64_t f[10] = {50, 30, 20, 10, 8, 5, 3, 2, 1, 1};
	uint8_t len[10];
	lt_huff_lengths(f, 10, LT_HUFF_MAX_LEN, len, &err);
	uint16_t sym[60], out[60];
	for (int i = 0; i < 60; i++)
		sym[i] = (uint16_t)(i * 7 % 10);
	uint8_t buf[64];
	size_t n = 0;
	lt_huff_encode(sym, 60, len, 10, buf, sizeof buf, &n, &err);
	lt_huff_dec *d = lt_huff_dec_new(len, 10, &err);
	int all = 1;
	for (size_t cut = 0; cut < n; cut++) {
		uint8_t *c = malloc(cut ? cut : 1);
		memcpy(c, buf, cut);
		all &= lt_huff_decode(d, c, cut, 60, out, &err) == LT_EFORMAT;
		free(c);
	}
	tap_ok(all, "a %zu-byte stream of 60 symbols cut at every length is refused (%s)", n, err.msg);
	uint8_t *x = malloc(n + 1);
	memcpy(x, buf, n);
	x[n] = 0;
	tap_ok(lt_huff_decode(d, x, n + 1, 60, out, &err) == LT_EFORMAT && strstr(err.msg, "left over"),
	       "a stream with a byte left over is refused: %s", err.msg);
	tap_ok(lt_huff_decode(d, x, n, 59, out, &err) == LT_EFORMAT, "decoding one symbol fewer leaves bits: %s",
	       err.msg);
	uint16_t *many = malloc(1000000 * sizeof *many);
	tap_ok(lt_huff_decode(d, x, n, 1000000, many, &err) == LT_EFORMAT && strstr(err.msg, "ends early"),
	       "asking for far more symbols stops at the end: %s", err.msg);
	free(many);
	int errors = 0, flips = 0;
	for (size_t bit = 0; bit < n * 8; bit++) {
		memcpy(x, buf, n);
		x[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		errors += lt_huff_decode(d, x, n, 60, out, &err) != 0;
		flips++;
	}
	tap_ok(1, "%d single-bit flips of the stream: no crash, %d refused, the rest decode to other symbols",
	       flips, errors);
	lt_huff_dec_free(d);
	free(x);

	/* a whole part (table + payload) flipped and cut */
	size_t ts = lt_huff_table_size(len, 10);
	uint8_t *part = malloc(ts + n);
	lt_huff_table_write(len, 10, part, ts);
	memcpy(part + ts, buf, n);
	tap_ok(lt_huff_decode_part(part, ts + n, ts, 10, 60, out, &err) == 0 && !memcmp(out, sym, sizeof sym),
	       "a part (table then payload) decodes");
	errors = 0;
	for (size_t bit = 0; bit < (ts + n) * 8; bit++) {
		part[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		errors += lt_huff_decode_part(part, ts + n, ts, 10, 60, out, &err) != 0;
		part[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	tap_ok(errors > 0, "%zu single-bit flips of the part: no crash, %d refused", (ts + n) * 8, errors);
	all = 1;
	for (size_t cut = 0; cut < ts + n; cut++) {
		uint8_t *c = malloc(cut ? cut : 1);
		memcpy(c, part, cut);
		all &= lt_huff_decode_part(c, cut, cut < ts ? cut : ts, 10, 60, out, &err) != 0;
		all &= lt_huff_decode_part(c, cut, ts, 10, 60, out, &err) != 0;
		free(c);
	}
	tap_ok(all, "the part cut at every length is refused");
	free(part);

	/* one symbol: code 0; a 1 bit is no code word */
	uint8_t one[4] = {0, 0, 1, 0}, zero = 0, ones = 0x04;
	d = lt_huff_dec_new(one, 4, &err);
	tap_ok(d && lt_huff_decode(d, &zero, 1, 8, out, &err) == 0 && out[7] == 2, "a one-symbol code decodes");
	tap_ok(lt_huff_decode(d, &ones, 1, 8, out, &err) == LT_EFORMAT && strstr(err.msg, "not a code word"),
	       "a one-symbol code refuses a 1 bit: %s", err.msg);
	lt_huff_dec_free(d);

	/* random garbage: tables and payloads */
	uint16_t *big = malloc(4096 * sizeof *big);
	int ok = 0;
	for (int trial = 0; trial < 5000; trial++) {
		size_t sz = lt_rng_below(&rng, 40);
		uint8_t *c = malloc(sz ? sz : 1);
		for (size_t i = 0; i < sz; i++)
			c[i] = (uint8_t)lt_rng_next(&rng);
		ok += lt_huff_decode_part(c, sz, lt_rng_below(&rng, sz + 1), 1 + (uint32_t)lt_rng_below(&rng, 300),
					  (int64_t)lt_rng_below(&rng, 4096), big, &err) == 0;
		free(c);
	}
	tap_ok(1, "5000 random parts: no crash (%d decoded)", ok);
	free(big);
}

static void throughput(void)
{
	lt_err err = {0};
	const int64_t n = 10 * 1000 * 1000;
	struct {
		const char *name;
		uint32_t nsym;
		double decay;
	} cases[] = {{"6-bit codes, peaked", 64, 0.0}, {"4096 symbols, Zipf", 4096, 1.0}};
	for (int c = 0; c < 2; c++) {
		uint32_t ns = cases[c].nsym;
		double *cum = malloc(ns * sizeof *cum), sum = 0;
		for (uint32_t s = 0; s < ns; s++) {
			double p = cases[c].decay > 0 ? 1.0 / (s + 1.0) : exp(-0.5 * pow(((double)s - 31.5) / 5.0, 2));
			cum[s] = (sum += p);
		}
		uint16_t *sym = malloc((size_t)n * sizeof *sym), *out = malloc((size_t)n * sizeof *out);
		uint64_t *f = calloc(ns, sizeof *f);
		for (int64_t i = 0; i < n; i++) {
			double u = lt_rng_uniform(&rng) * sum;
			uint32_t lo = 0, hi = ns - 1;
			while (lo < hi) {
				uint32_t mid = (lo + hi) / 2;
				if (cum[mid] < u)
					lo = mid + 1;
				else
					hi = mid;
			}
			sym[i] = (uint16_t)lo;
			f[lo]++;
		}
		uint8_t *len = malloc(ns);
		lt_huff_lengths(f, ns, LT_HUFF_MAX_LEN, len, &err);
		size_t cap = (size_t)((lt_huff_bits(f, len, ns) + 7) / 8), written;
		uint8_t *buf = malloc(cap);
		double t0 = lt_seconds();
		int rc = lt_huff_encode(sym, n, len, ns, buf, cap, &written, &err);
		double t1 = lt_seconds();
		lt_huff_dec *d = lt_huff_dec_new(len, ns, &err);
		double t2 = lt_seconds();
		int rc2 = lt_huff_decode(d, buf, written, n, out, &err);
		double t3 = lt_seconds();
		tap_ok(rc == 0 && rc2 == 0 && !memcmp(sym, out, (size_t)n * sizeof *out),
		       "%s: 10M symbols round trip (%.2f bits each)", cases[c].name, 8.0 * (double)written / (double)n);
		tap_diag("%s: encode %.0f M symbols/s, decode %.0f M symbols/s", cases[c].name,
			 (double)n / (t1 - t0) / 1e6, (double)n / (t3 - t2) / 1e6);
		lt_huff_dec_free(d);
		free(cum);
		free(sym);
		free(out);
		free(f);
		free(len);
		free(buf);
	}
}

static void alloc_failures(void)
{
	lt_err err = {0};
	uint64_t *f = malloc(LT_HUFF_MAX_SYMS * sizeof *f);
	for (uint32_t i = 0; i < LT_HUFF_MAX_SYMS; i++)
		f[i] = 1 + i % 97;
	uint8_t *len = malloc(LT_HUFF_MAX_SYMS);
	int fails = 0, ok = 1, rc = -1;
	for (long i = 0; rc != 0; i++) {
		lt_mem_fail_after(i);
		rc = lt_huff_lengths(f, LT_HUFF_MAX_SYMS, LT_HUFF_MAX_LEN, len, &err);
		lt_mem_fail_after(-1);
		if (rc) {
			fails++;
			ok &= rc == LT_ENOMEM;
		}
	}
	tap_ok(fails > 0 && ok, "lt_huff_lengths: %d allocation failures give LT_ENOMEM", fails);
	uint16_t sym[100], out[100];
	for (int i = 0; i < 100; i++)
		sym[i] = (uint16_t)(i * 655);
	size_t ts = lt_huff_table_size(len, LT_HUFF_MAX_SYMS), n = 0;
	uint8_t *part = malloc(ts + 400);
	lt_huff_table_write(len, LT_HUFF_MAX_SYMS, part, ts);
	lt_huff_encode(sym, 100, len, LT_HUFF_MAX_SYMS, part + ts, 400, &n, &err);
	fails = 0, ok = 1, rc = -1;
	for (long i = 0; rc != 0; i++) {
		lt_mem_fail_after(i);
		rc = lt_huff_decode_part(part, ts + n, ts, LT_HUFF_MAX_SYMS, 100, out, &err);
		lt_mem_fail_after(-1);
		if (rc) {
			fails++;
			ok &= rc == LT_ENOMEM;
		}
	}
	tap_ok(fails > 0 && ok && !memcmp(sym, out, sizeof sym),
	       "lt_huff_decode_part: %d allocation failures give LT_ENOMEM, then it decodes", fails);
	lt_mem_fail_after(0);
	rc = lt_huff_encode(sym, 100, len, LT_HUFF_MAX_SYMS, part + ts, 400, &n, &err);
	lt_mem_fail_after(-1);
	tap_ok(rc == LT_ENOMEM, "lt_huff_encode without memory: %s", err.msg);
	free(f);
	free(len);
	free(part);
}

int main(void)
{
	bits_and_fixed();
	distributions();
	exhaustive();
	hostile_tables();
	hostile_streams();
	alloc_failures();
	throughput();
	return tap_done();
}
