/* Bit streams, fixed-width symbols and length-limited canonical Huffman
 * codes (see huffman.h). */
#include "kern/huffman.h"

#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

/* ---- bit writer ---------------------------------------------------------- */

void lt_bitw_init(lt_bitw *w, uint8_t *buf, size_t cap)
{
	*w = (lt_bitw){.buf = buf, .cap = cap};
}

/* Write `bytes` (at most 4) bytes of acc's low end. */
static void bitw_emit(lt_bitw *w, int bytes)
{
	if (w->buf) {
		for (int i = 0; i < bytes; i++) {
			if (w->pos + (size_t)i < w->cap)
				w->buf[w->pos + (size_t)i] = (uint8_t)(w->acc >> (8 * i));
			else
				w->overflow = 1;
		}
	}
	w->pos += (size_t)bytes;
}

void lt_bitw_flush32(lt_bitw *w)
{
	if (w->buf && w->pos + 4 <= w->cap) {
		uint32_t v = (uint32_t)w->acc;
		uint8_t *o = w->buf + w->pos;
		o[0] = (uint8_t)v;
		o[1] = (uint8_t)(v >> 8);
		o[2] = (uint8_t)(v >> 16);
		o[3] = (uint8_t)(v >> 24);
		w->pos += 4;
	} else {
		bitw_emit(w, 4);
	}
	w->acc >>= 32;
	w->n -= 32;
}

uint64_t lt_bitw_bits(const lt_bitw *w)
{
	return (uint64_t)w->pos * 8 + (uint64_t)w->n;
}

size_t lt_bitw_finish(lt_bitw *w)
{
	bitw_emit(w, (w->n + 7) / 8);
	w->acc = 0;
	w->n = 0;
	return w->pos;
}

/* ---- bit reader ---------------------------------------------------------- */

void lt_bitr_init(lt_bitr *r, const uint8_t *buf, size_t len)
{
	*r = (lt_bitr){.start = buf, .p = buf, .end = buf + len};
}

/* Top the buffer up to more than 56 bits, with zero bytes past the end. */
static void bitr_fill(lt_bitr *r)
{
	while (r->n <= 56) {
		if (r->p < r->end)
			r->acc |= (uint64_t)*r->p++ << r->n;
		else
			r->over++;
		r->n += 8;
	}
}

uint32_t lt_bitr_get(lt_bitr *r, int n)
{
	if (n == 0)
		return 0;
	if (r->n < n)
		bitr_fill(r);
	uint32_t v = (uint32_t)(r->acc & ((1ull << n) - 1));
	r->acc >>= n;
	r->n -= n;
	return v;
}

uint64_t lt_bitr_tell(const lt_bitr *r)
{
	return ((uint64_t)(r->p - r->start) + r->over) * 8 - (uint64_t)r->n;
}

int lt_bitr_overrun(const lt_bitr *r)
{
	return lt_bitr_tell(r) > (uint64_t)(r->end - r->start) * 8;
}

/* The shared end rule: `used` bits of a len-byte stream were consumed. */
static int stream_end(const uint8_t *buf, size_t len, uint64_t used, const char *what, lt_err *err)
{
	if (used > (uint64_t)len * 8)
		return lt_err_set(err, LT_EFORMAT, "%s ends early (%zu bytes hold fewer bits than it needs)",
				  what, len);
	uint64_t whole = (used + 7) / 8;
	if (whole < len)
		return lt_err_set(err, LT_EFORMAT, "%s has %llu bytes left over after its last symbol", what,
				  (unsigned long long)(len - whole));
	if (used % 8 && buf[len - 1] >> (used % 8))
		return lt_err_set(err, LT_EFORMAT, "%s has nonzero padding bits after its last symbol", what);
	return 0;
}

int lt_bitr_end(const lt_bitr *r, const char *what, lt_err *err)
{
	return stream_end(r->start, (size_t)(r->end - r->start), lt_bitr_tell(r), what, err);
}

/* ---- fixed width --------------------------------------------------------- */

size_t lt_fixed_bytes(int64_t n, int width)
{
	if (n < 0 || width < 0 || width > 32)
		return SIZE_MAX;
	uint64_t un = (uint64_t)n;
	if (width && un > (UINT64_MAX - 7) / (uint64_t)width)
		return SIZE_MAX;
	uint64_t b = (un * (uint64_t)width + 7) / 8;
	return b >= SIZE_MAX ? SIZE_MAX : (size_t)b;
}

void lt_fixed_pack(const uint16_t *sym, int64_t n, int width, uint8_t *out)
{
	lt_bitw w;
	lt_bitw_init(&w, out, lt_fixed_bytes(n, width));
	if (width == 0)
		return;
	for (int64_t i = 0; i < n; i++)
		lt_bitw_put(&w, sym[i], width);
	lt_bitw_finish(&w);
}

int lt_fixed_unpack(const uint8_t *in, size_t len, int64_t n, int width, uint32_t alphabet,
		    uint16_t *out, lt_err *err)
{
	if (width < 0 || width > 16 || n < 0)
		return lt_err_set(err, LT_EINVAL, "cannot unpack %lld symbols of %d bits", (long long)n, width);
	size_t need = lt_fixed_bytes(n, width);
	if (len != need)
		return lt_err_set(err, LT_EFORMAT, "%lld symbols of %d bits take %zu bytes, not %zu",
				  (long long)n, width, need, len);
	if (width == 0) {
		if (n > 0 && alphabet < 1)
			return lt_err_set(err, LT_EFORMAT, "zero-width symbols need an alphabet");
		memset(out, 0, (size_t)n * sizeof *out);
		return 0;
	}
	lt_bitr r;
	lt_bitr_init(&r, in, len);
	uint32_t bad = 0;
	int64_t i = 0;
	/* a top-up leaves more than 56 bits: that many symbols per top-up */
	const uint64_t mask = (1ull << width) - 1;
	const int per = 56 / width;
	for (; i + per <= n; i += per) {
		bitr_fill(&r);
		for (int k = 0; k < per; k++) {
			uint32_t v = (uint32_t)(r.acc & mask);
			r.acc >>= width;
			bad |= v >= alphabet;
			out[i + k] = (uint16_t)v;
		}
		r.n -= per * width;
	}
	for (; i < n; i++) {
		uint32_t v = lt_bitr_get(&r, width);
		bad |= v >= alphabet;
		out[i] = (uint16_t)v;
	}
	if (bad) {
		for (i = 0; i < n && out[i] < alphabet; i++)
			;
		return lt_err_set(err, LT_EFORMAT, "symbol %lld is %u, outside the alphabet of %u",
				  (long long)i, (unsigned)out[i], alphabet);
	}
	return stream_end(in, len, lt_bitr_tell(&r), "fixed-width stream", err);
}

/* ---- code lengths by package-merge ---------------------------------------
 * The coin collector's view (Larmore and Hirschberg): each used symbol is
 * a coin of each denomination 2^-1 .. 2^-maxlen, worth its count; a code
 * with lengths len[] is a choice of coins totalling n - 1 in which symbol
 * s has its len[s] largest denominations. The cheapest such choice comes
 * from building lists from the smallest denomination up: the list for
 * 2^-maxlen is the symbols sorted by count; each next list merges the
 * symbols with the pairs ("packages") of the list before. The first
 * 2n - 2 items of the last list are the choice. Since the symbols enter
 * every list in the same sorted order, the symbols taken at one level are
 * always a prefix of that order; the levels are walked back down,
 * counting how many symbols and packages the chosen prefix holds, and a
 * symbol's length is the number of levels whose prefix includes it. Only
 * one bit per list item (package or not) is kept per level. */

struct leaf {
	uint64_t w;
	uint32_t sym;
};

static int leaf_cmp(const void *a, const void *b)
{
	const struct leaf *x = a, *y = b;
	if (x->w != y->w)
		return x->w < y->w ? -1 : 1;
	return (x->sym > y->sym) - (x->sym < y->sym);
}

int lt_huff_lengths(const uint64_t *freq, uint32_t nsym, int maxlen, uint8_t *len, lt_err *err)
{
	if (nsym > LT_HUFF_MAX_SYMS || maxlen < 1 || maxlen > LT_HUFF_MAX_LEN)
		return lt_err_set(err, LT_EINVAL, "no Huffman code for %u symbols within %d bits", nsym, maxlen);
	memset(len, 0, nsym);
	uint32_t u = 0, last = 0;
	uint64_t total = 0;
	for (uint32_t s = 0; s < nsym; s++) {
		if (freq[s]) {
			u++;
			last = s;
			if (freq[s] > (1ull << 56) - total)
				return lt_err_set(err, LT_EINVAL, "symbol counts sum past 2^56");
			total += freq[s];
		}
	}
	if (u <= 1) {
		if (u == 1)
			len[last] = 1;
		return 0;
	}
	if (maxlen < 32 && u > (1u << maxlen))
		return lt_err_set(err, LT_EINVAL, "%u symbols cannot be coded in at most %d bits", u, maxlen);

	size_t cap = 2 * (size_t)u, words = (cap + 63) / 64;
	struct leaf *leaves = lt_malloc_array(u, sizeof *leaves);
	uint64_t *cur = lt_malloc_array(cap, sizeof *cur), *nxt = lt_malloc_array(cap, sizeof *nxt);
	uint64_t *pkg = lt_calloc((size_t)maxlen * words, sizeof *pkg); /* [level][item] package bits */
	int64_t *diff = lt_calloc((size_t)u + 1, sizeof *diff);
	if (!leaves || !cur || !nxt || !pkg || !diff) {
		lt_free(leaves);
		lt_free(cur);
		lt_free(nxt);
		lt_free(pkg);
		lt_free(diff);
		return lt_err_set(err, LT_ENOMEM, "out of memory building a Huffman code");
	}
	for (uint32_t s = 0, i = 0; s < nsym; s++)
		if (freq[s])
			leaves[i++] = (struct leaf){freq[s], s};
	qsort(leaves, u, sizeof *leaves, leaf_cmp);

	/* Level maxlen - 1 (0-based: list j is for depth j + 1) holds just the
	 * leaves; lists up to level 0 merge in the packages. */
	size_t n = u;
	for (uint32_t i = 0; i < u; i++)
		cur[i] = leaves[i].w;
	for (int lev = maxlen - 2; lev >= 0; lev--) {
		uint64_t *bits = pkg + (size_t)lev * words;
		size_t np = n / 2, a = 0, b = 0, k = 0;
		while (a < u || b < np) {
			uint64_t pw = b < np ? cur[2 * b] + cur[2 * b + 1] : 0;
			if (b >= np || (a < u && leaves[a].w <= pw)) {
				nxt[k++] = leaves[a++].w;
			} else {
				bits[k / 64] |= 1ull << (k % 64);
				nxt[k++] = pw;
				b++;
			}
		}
		n = k;
		uint64_t *t = cur;
		cur = nxt;
		nxt = t;
	}
	/* Walk down from the top list taking 2u - 2 items. */
	size_t take = cap - 2;
	for (int lev = 0; lev < maxlen; lev++) {
		size_t packages = 0;
		if (lev < maxlen - 1) {
			const uint64_t *bits = pkg + (size_t)lev * words;
			size_t full = take / 64;
			for (size_t i = 0; i < full; i++)
				packages += (size_t)__builtin_popcountll(bits[i]);
			if (take % 64)
				packages += (size_t)__builtin_popcountll(bits[full] & ((1ull << (take % 64)) - 1));
		}
		size_t leaves_taken = take - packages;
		diff[0]++;
		diff[leaves_taken]--;
		take = 2 * packages;
	}
	int64_t depth = 0;
	for (uint32_t i = 0; i < u; i++) {
		depth += diff[i];
		len[leaves[i].sym] = (uint8_t)depth;
	}
	lt_free(leaves);
	lt_free(cur);
	lt_free(nxt);
	lt_free(pkg);
	lt_free(diff);
	return 0;
}

uint64_t lt_huff_bits(const uint64_t *freq, const uint8_t *len, uint32_t nsym)
{
	uint64_t bits = 0;
	for (uint32_t s = 0; s < nsym; s++)
		bits += freq[s] * len[s];
	return bits;
}

int lt_huff_check(const uint8_t *len, uint32_t nsym, lt_err *err)
{
	if (nsym > LT_HUFF_MAX_SYMS)
		return lt_err_set(err, LT_EINVAL, "a Huffman alphabet of %u symbols is over the limit of %u",
				  nsym, LT_HUFF_MAX_SYMS);
	uint64_t kraft = 0; /* in units of 2^-LT_HUFF_MAX_LEN */
	uint32_t used = 0;
	for (uint32_t s = 0; s < nsym; s++) {
		if (len[s] > LT_HUFF_MAX_LEN)
			return lt_err_set(err, LT_EFORMAT, "code length %u of symbol %u is over the limit of %d",
					  len[s], s, LT_HUFF_MAX_LEN);
		if (len[s]) {
			used++;
			kraft += 1ull << (LT_HUFF_MAX_LEN - len[s]);
		}
	}
	const uint64_t one = 1ull << LT_HUFF_MAX_LEN;
	if (used == 0)
		return lt_err_set(err, LT_EFORMAT, "the code table has no symbols");
	if (used == 1) {
		if (kraft != one / 2)
			return lt_err_set(err, LT_EFORMAT, "a code of one symbol must have length 1");
		return 0;
	}
	if (kraft > one)
		return lt_err_set(err, LT_EFORMAT, "the code lengths are over-subscribed (Kraft sum %.6g > 1)",
				  (double)kraft / (double)one);
	if (kraft < one)
		return lt_err_set(err, LT_EFORMAT, "the code lengths are incomplete (Kraft sum %.6g < 1)",
				  (double)kraft / (double)one);
	return 0;
}

static uint32_t reverse(uint32_t v, int n)
{
	uint32_t r = 0;
	for (int i = 0; i < n; i++, v >>= 1)
		r = r << 1 | (v & 1);
	return r;
}

/* First canonical code (MSB-first value) of each length 1..MAX. */
static void first_codes(const uint32_t *count, uint32_t *first)
{
	uint32_t code = 0;
	first[0] = 0;
	for (int l = 1; l <= LT_HUFF_MAX_LEN; l++) {
		code = (code + count[l - 1]) << 1;
		first[l] = code;
	}
}

void lt_huff_codes(const uint8_t *len, uint32_t nsym, uint32_t *code)
{
	uint32_t count[LT_HUFF_MAX_LEN + 1] = {0}, next[LT_HUFF_MAX_LEN + 1];
	for (uint32_t s = 0; s < nsym; s++)
		count[len[s]]++;
	count[0] = 0;
	first_codes(count, next);
	for (uint32_t s = 0; s < nsym; s++)
		code[s] = len[s] ? reverse(next[len[s]]++, len[s]) : 0;
}

/* ---- the code-length table -----------------------------------------------
 * Tokens, each starting with the bits shown (first bit first); prev is the
 * last nonzero length (0 at the start):
 *   0            this symbol's length is prev
 *   1 0 s        prev + 1 (s = 0) or prev - 1 (s = 1)
 *   1 1 0 g      a run of r >= 1 unused symbols, r in Elias gamma code:
 *                z zero bits, a one, then the low z bits of r (r < 2^(z+1))
 *   1 1 1 v      length v, 5 bits (1..LT_HUFF_MAX_LEN) */

static void table_put(const uint8_t *len, uint32_t nsym, lt_bitw *w)
{
	int prev = 0;
	for (uint32_t s = 0; s < nsym;) {
		int l = len[s];
		if (l == 0) {
			uint32_t r = 1;
			while (s + r < nsym && len[s + r] == 0)
				r++;
			int z = 31 - __builtin_clz(r);
			lt_bitw_put(w, 3, 3); /* 1 1 0 */
			lt_bitw_put(w, 1u << z, z + 1);
			lt_bitw_put(w, r & ((1u << z) - 1), z);
			s += r;
			continue;
		}
		if (l == prev)
			lt_bitw_put(w, 0, 1);
		else if (l == prev + 1 || l == prev - 1)
			lt_bitw_put(w, 1 | (unsigned)(l < prev) << 2, 3); /* 1 0 s */
		else {
			lt_bitw_put(w, 7, 3); /* 1 1 1 */
			lt_bitw_put(w, (uint32_t)l, 5);
		}
		prev = l;
		s++;
	}
}

size_t lt_huff_table_size(const uint8_t *len, uint32_t nsym)
{
	lt_bitw w;
	lt_bitw_init(&w, NULL, 0);
	table_put(len, nsym, &w);
	return lt_bitw_finish(&w);
}

size_t lt_huff_table_write(const uint8_t *len, uint32_t nsym, uint8_t *out, size_t cap)
{
	lt_bitw w;
	lt_bitw_init(&w, out, cap);
	table_put(len, nsym, &w);
	size_t n = lt_bitw_finish(&w);
	return w.overflow ? 0 : n;
}

int lt_huff_table_read(const uint8_t *in, size_t size, uint32_t nsym, uint8_t *len, lt_err *err)
{
	if (nsym > LT_HUFF_MAX_SYMS)
		return lt_err_set(err, LT_EFORMAT, "a Huffman alphabet of %u symbols is over the limit of %u",
				  nsym, LT_HUFF_MAX_SYMS);
	lt_bitr r;
	lt_bitr_init(&r, in, size);
	int prev = 0;
	for (uint32_t s = 0; s < nsym;) {
		if (lt_bitr_overrun(&r))
			return lt_err_set(err, LT_EFORMAT, "the code table ends early (at symbol %u of %u)", s, nsym);
		int l;
		if (!lt_bitr_get(&r, 1)) {
			l = prev;
		} else if (!lt_bitr_get(&r, 1)) {
			l = lt_bitr_get(&r, 1) ? prev - 1 : prev + 1;
		} else if (!lt_bitr_get(&r, 1)) {
			int z = 0;
			while (z <= 16 && !lt_bitr_get(&r, 1))
				z++;
			if (z > 16)
				return lt_err_set(err, LT_EFORMAT, "the code table has a run over 2^17 symbols");
			uint32_t run = 1u << z | lt_bitr_get(&r, z);
			if (run > nsym - s)
				return lt_err_set(err, LT_EFORMAT, "the code table's run of %u unused symbols "
						  "passes the end of the %u-symbol alphabet", run, nsym);
			memset(len + s, 0, run);
			s += run;
			continue;
		} else {
			l = (int)lt_bitr_get(&r, 5);
		}
		if (l < 1 || l > LT_HUFF_MAX_LEN)
			return lt_err_set(err, LT_EFORMAT, "the code table gives symbol %u length %d (1 to %d allowed)",
					  s, l, LT_HUFF_MAX_LEN);
		len[s++] = (uint8_t)l;
		prev = l;
	}
	int rc = lt_bitr_end(&r, "the code table", err);
	return rc ? rc : lt_huff_check(len, nsym, err);
}

int lt_huff_encode(const uint16_t *sym, int64_t n, const uint8_t *len, uint32_t nsym,
		   uint8_t *out, size_t cap, size_t *written, lt_err *err)
{
	*written = 0;
	if (nsym > LT_HUFF_MAX_SYMS)
		return lt_err_set(err, LT_EINVAL, "a Huffman alphabet of %u symbols is over the limit of %u",
				  nsym, LT_HUFF_MAX_SYMS);
	uint32_t *code = lt_malloc_array(nsym ? nsym : 1, sizeof *code);
	if (!code)
		return lt_err_set(err, LT_ENOMEM, "out of memory for Huffman codes");
	lt_huff_codes(len, nsym, code);
	lt_bitw w;
	lt_bitw_init(&w, out, cap);
	int rc = 0;
	for (int64_t i = 0; i < n; i++) {
		uint32_t s = sym[i];
		if (s >= nsym || !len[s]) {
			rc = lt_err_set(err, LT_EINVAL, "symbol %u (at %lld) has no code word", s, (long long)i);
			break;
		}
		lt_bitw_put(&w, code[s], len[s]);
	}
	size_t bytes = lt_bitw_finish(&w);
	if (!rc && w.overflow)
		rc = lt_err_set(err, LT_EINVAL, "%zu bytes of Huffman code do not fit in %zu", bytes, cap);
	if (!rc)
		*written = bytes;
	lt_free(code);
	return rc;
}

/* ---- decoding --------------------------------------------------------------
 * A primary table indexed by the next pbits bits (as they lie in the bit
 * buffer, first bit lowest) gives symbol and length for every code word
 * of at most pbits bits. Longer code words, rare by construction (each has
 * probability below 2^-pbits), are finished canonically one bit at a time
 * from the per-length first codes. */

/* the decoding loop takes two code words per refill of 56 bits */
_Static_assert(2 * LT_HUFF_MAX_LEN <= 56, "two code words must fit a refill");

#define ENTRY_LONG 0u     /* length field 0: the code word is longer */
#define ENTRY_BAD 31u     /* length field 31: no code word starts so */

struct lt_huff_dec {
	uint32_t nsym;
	int maxlen, pbits;
	uint32_t *tab;  /* 1 << pbits entries: symbol << 8 | length */
	uint16_t *sorted; /* used symbols by (length, symbol) */
	uint32_t first[LT_HUFF_MAX_LEN + 1], count[LT_HUFF_MAX_LEN + 1], offset[LT_HUFF_MAX_LEN + 1];
};

void lt_huff_dec_free(lt_huff_dec *d)
{
	if (!d)
		return;
	lt_free(d->tab);
	lt_free(d->sorted);
	lt_free(d);
}

lt_huff_dec *lt_huff_dec_new(const uint8_t *len, uint32_t nsym, lt_err *err)
{
	if (lt_huff_check(len, nsym, err))
		return NULL;
	lt_huff_dec *d = lt_calloc(1, sizeof *d);
	if (!d)
		goto nomem;
	d->nsym = nsym;
	uint32_t used = 0;
	for (uint32_t s = 0; s < nsym; s++) {
		d->count[len[s]]++;
		if (len[s] > d->maxlen)
			d->maxlen = len[s];
	}
	d->count[0] = 0;
	for (int l = 1; l <= LT_HUFF_MAX_LEN; l++) {
		d->offset[l] = used;
		used += d->count[l];
	}
	first_codes(d->count, d->first);
	/* Big alphabets get a bigger primary table so most code words still
	 * resolve in one look-up (16K entries, 64 KiB, fit in L2). */
	int want = used > 1024 ? 14 : 11;
	d->pbits = d->maxlen < want ? d->maxlen : want;
	d->tab = lt_malloc_array((size_t)1 << d->pbits, sizeof *d->tab);
	d->sorted = lt_malloc_array(used, sizeof *d->sorted);
	if (!d->tab || !d->sorted)
		goto nomem;
	uint32_t fill[LT_HUFF_MAX_LEN + 1];
	memcpy(fill, d->offset, sizeof fill);
	for (uint32_t s = 0; s < nsym; s++)
		if (len[s])
			d->sorted[fill[len[s]]++] = (uint16_t)s;
	size_t size = (size_t)1 << d->pbits;
	for (size_t i = 0; i < size; i++)
		d->tab[i] = ENTRY_BAD;
	uint32_t next[LT_HUFF_MAX_LEN + 1];
	memcpy(next, d->first, sizeof next);
	for (int l = 1; l <= d->maxlen; l++) {
		for (uint32_t j = 0; j < d->count[l]; j++) {
			uint32_t s = d->sorted[d->offset[l] + j], c = next[l]++;
			if (l <= d->pbits) {
				uint32_t r = reverse(c, l);
				for (size_t f = r; f < size; f += (size_t)1 << l)
					d->tab[f] = s << 8 | (uint32_t)l;
			} else {
				d->tab[reverse(c >> (l - d->pbits), d->pbits)] = ENTRY_LONG;
			}
		}
	}
	return d;
nomem:
	lt_huff_dec_free(d);
	lt_err_set(err, LT_ENOMEM, "out of memory for a Huffman decoder");
	return NULL;
}

static inline uint64_t load_le64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

/* A code word longer than pbits at the low end of acc (which holds at
 * least maxlen bits): its symbol, and its length in *l (0 if none). */
static uint32_t decode_long(const lt_huff_dec *d, uint64_t acc, int *l)
{
	uint32_t code = reverse((uint32_t)(acc & ((1u << d->pbits) - 1)), d->pbits);
	for (int k = d->pbits + 1; k <= d->maxlen; k++) {
		code = code << 1 | (uint32_t)(acc >> (k - 1) & 1);
		uint32_t at = code - d->first[k];
		if (at < d->count[k]) {
			*l = k;
			return d->sorted[d->offset[k] + at];
		}
	}
	*l = 0;
	return 0;
}

int lt_huff_decode(const lt_huff_dec *d, const uint8_t *in, size_t size, int64_t n, uint16_t *out,
		   lt_err *err)
{
	const uint8_t *p = in, *end = in + size;
	const uint32_t *tab = d->tab;
	const uint64_t pmask = ((uint64_t)1 << d->pbits) - 1;
	uint64_t acc = 0;
	int cnt = 0;
	size_t over = 0;
	int64_t i = 0;
	while (i < n) {
		if (end - p >= 8) {
			acc |= load_le64(p) << cnt;
			p += (63 - cnt) >> 3;
			cnt |= 56;
		} else {
			while (cnt <= 56) {
				if (p < end)
					acc |= (uint64_t)*p++ << cnt;
				else
					over++;
				cnt += 8;
			}
			/* nine phantom bytes: the bits read have passed the end */
			if (over > 8)
				break;
		}
		/* at least 56 bits: two code words of up to 20 bits */
		for (int k = 0; k < 2 && i < n; k++) {
			uint32_t e = tab[acc & pmask];
			uint32_t l = e & 31;
			if (l - 1 < (uint32_t)LT_HUFF_MAX_LEN) {
				out[i++] = (uint16_t)(e >> 8);
				acc >>= l;
				cnt -= (int)l;
			} else {
				int ll = 0;
				uint32_t s = l == ENTRY_LONG ? decode_long(d, acc, &ll) : 0;
				if (!ll)
					return lt_err_set(err, LT_EFORMAT, "symbol %lld of the Huffman stream is "
							  "not a code word", (long long)i);
				out[i++] = (uint16_t)s;
				acc >>= ll;
				cnt -= ll;
			}
		}
	}
	uint64_t used = ((uint64_t)(p - in) + over) * 8 - (uint64_t)cnt;
	if (i < n)
		return lt_err_set(err, LT_EFORMAT, "the Huffman stream ends early (%lld of %lld symbols, "
				  "%zu bytes)", (long long)i, (long long)n, size);
	return stream_end(in, size, used, "the Huffman stream", err);
}

int lt_huff_decode_part(const uint8_t *in, size_t size, size_t table_bytes, uint32_t nsym, int64_t n,
			uint16_t *out, lt_err *err)
{
	if (table_bytes > size)
		return lt_err_set(err, LT_EFORMAT, "a %zu-byte code table does not fit in %zu bytes",
				  table_bytes, size);
	uint8_t *len = lt_malloc(nsym ? nsym : 1);
	if (!len)
		return lt_err_set(err, LT_ENOMEM, "out of memory for a code table");
	lt_huff_dec *d = NULL;
	int rc = lt_huff_table_read(in, table_bytes, nsym, len, err);
	if (!rc && !(d = lt_huff_dec_new(len, nsym, err)))
		rc = err ? err->code : LT_ENOMEM;
	if (!rc)
		rc = lt_huff_decode(d, in + table_bytes, size - table_bytes, n, out, err);
	lt_huff_dec_free(d);
	lt_free(len);
	return rc;
}
