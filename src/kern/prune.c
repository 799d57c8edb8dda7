#include "kern/prune.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/mem.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "kern/blas.h"

int64_t lt_prune_count(int64_t n, double sparsity)
{
	/* nearbyint rounds half to even in the default rounding mode, like
	 * Python's round() in torch's _compute_nparams_toprune. */
	double k = nearbyint((double)n * sparsity);
	if (k < 0)
		return 0;
	return k > (double)n ? n : (int64_t)k;
}

/* ---- magnitude selection ---------------------------------------------------
 * Every element gets a 32-bit rank key: 0 for elements a mask already
 * holds at zero (they go first), else the bits of |w| plus one (the bits
 * of a non-negative float order as the floats do; NaN ranks last). The
 * k-th smallest key is found by radix selection over digits of 11, 11 and
 * 10 bits (2048 bins: the counts stay in L1 cache, and the first pass
 * spreads them over four copies so repeated bins do not wait on each
 * other). The keys in the first digit's bin are then collected once (when
 * they are at most an eighth of all) and only they are counted for the
 * other digits; otherwise each digit reads everything again. Large inputs
 * without masks try a sample first (select_by_sample, below), which
 * usually needs one read pass in all. A last pass writes the masks: keys up to the
 * k-th pruned; then equal keys beyond the k needed are kept again, the
 * latest ones, so ties go to the lower index. Passes run on a few threads
 * over slices of the concatenated elements. */

static inline uint32_t rank_key(const float *w, const float *old_mask, int64_t i)
{
	if (old_mask && old_mask[i] == 0.0f)
		return 0;
	uint32_t bits;
	memcpy(&bits, &w[i], sizeof bits);
	return (bits & 0x7FFFFFFFu) + 1;
}

#define BINS 2048
#define MIN_SLICE (1 << 20) /* elements per thread below which one thread does it all */
#define MAX_SLICES 16
static const int level_shift[3] = {21, 10, 0}, level_bits[3] = {11, 11, 10};

struct select_ctx {
	lt_prune_part *parts;
	int n_parts;
	int64_t total;
	int slices;
	uint32_t *hist;             /* [slices][BINS]; a slice holds < 2^32 elements */
	uint32_t prefix;            /* digits of the k-th key found so far */
	uint32_t key;               /* the k-th key */
	int64_t surplus[MAX_SLICES]; /* keys equal to it each slice keeps after all */
	uint32_t *cand;             /* keys in the first level's bin, slice by slice */
	int64_t cand_at[MAX_SLICES + 1];
	int pass;                   /* 0-2 histogram levels, 3 write, 5 collect */
};

/* Level 0 without old mask: four interleaved histograms summed at the end. */
static void count_top(const float *w, int64_t from, int64_t to, uint32_t *h)
{
	uint32_t sub[4][BINS];
	memset(sub, 0, sizeof sub);
	const uint32_t *bits = (const uint32_t *)(const void *)w;
	int64_t i = from;
	for (; i + 4 <= to; i += 4) {
		sub[0][((bits[i] & 0x7FFFFFFFu) + 1) >> 21]++;
		sub[1][((bits[i + 1] & 0x7FFFFFFFu) + 1) >> 21]++;
		sub[2][((bits[i + 2] & 0x7FFFFFFFu) + 1) >> 21]++;
		sub[3][((bits[i + 3] & 0x7FFFFFFFu) + 1) >> 21]++;
	}
	for (; i < to; i++)
		sub[0][((bits[i] & 0x7FFFFFFFu) + 1) >> 21]++;
	for (int b = 0; b < BINS; b++)
		h[b] += sub[0][b] + sub[1][b] + sub[2][b] + sub[3][b];
}

/* The write pass without old mask, as loops the compiler can vectorise:
 * the arrays do not overlap, and out is decided once. */
static void keep_above(const float *restrict w, float *restrict mask, float *restrict out, int64_t from,
		       int64_t to, uint32_t kth)
{
	const uint32_t *restrict bits = (const uint32_t *)(const void *)w;
	if (out) {
		for (int64_t i = from; i < to; i++) {
			int keep = ((bits[i] & 0x7FFFFFFFu) + 1) > kth;
			mask[i] = keep ? 1.0f : 0.0f;
			out[i] = keep ? w[i] : 0.0f;
		}
	} else {
		for (int64_t i = from; i < to; i++)
			mask[i] = ((bits[i] & 0x7FFFFFFFu) + 1) > kth ? 1.0f : 0.0f;
	}
}

/* Pass `pass` over elements [from, to) of a part: 0-2 histogram levels,
 * 3 the masks, 4 giving back *count surplus equal keys from the end, 5
 * collecting the first level's bin into c->cand from slot *count on. */
static void pass_range(const struct select_ctx *c, int pass, uint32_t *h, lt_prune_part *part, int64_t from,
		       int64_t to, int64_t *count)
{
	const float *w = part->w, *old = part->old_mask;
	if (pass == 0 && !old) {
		count_top(w, from, to, h);
	} else if (pass == 5) {
		/* the keys in the first level's bin, for the later levels */
		const uint32_t prefix = c->prefix;
		uint32_t *restrict dst = c->cand + *count;
		int64_t n = 0;
		if (!old) {
			/* branch-free: always store, advance on a match (one slot
			 * of slack per slice) */
			const uint32_t *restrict bits = (const uint32_t *)(const void *)w;
			for (int64_t i = from; i < to; i++) {
				uint32_t key = (bits[i] & 0x7FFFFFFFu) + 1;
				dst[n] = key;
				n += key >> 21 == prefix;
			}
		} else {
			for (int64_t i = from; i < to; i++) {
				uint32_t key = rank_key(w, old, i);
				if (key >> 21 == prefix)
					dst[n++] = key;
			}
		}
		*count += n;
	} else if (pass == 0) {
		for (int64_t i = from; i < to; i++)
			h[rank_key(w, old, i) >> 21]++;
	} else if (pass < 3) {
		/* locals: h may alias nothing here, but the compiler cannot know */
		const int shift = level_shift[pass], up = shift + level_bits[pass];
		const uint32_t digit = (1u << level_bits[pass]) - 1, prefix = c->prefix;
		if (!old) {
			const uint32_t *bits = (const uint32_t *)(const void *)w;
			for (int64_t i = from; i < to; i++) {
				uint32_t key = (bits[i] & 0x7FFFFFFFu) + 1;
				if (key >> up == prefix)
					h[key >> shift & digit]++;
			}
		} else {
			for (int64_t i = from; i < to; i++) {
				uint32_t key = rank_key(w, old, i);
				if (key >> up == prefix)
					h[key >> shift & digit]++;
			}
		}
	} else if (pass == 3) {
		uint32_t kth = c->key;
		float *mask = part->mask, *out = part->out;
		if (!old) {
			keep_above(w, mask, out, from, to, kth);
			return;
		}
		for (int64_t i = from; i < to; i++) {
			int keep = rank_key(w, old, i) > kth;
			mask[i] = keep ? 1.0f : 0.0f;
			if (out)
				out[i] = keep ? w[i] : 0.0f;
		}
	} else {
		uint32_t kth = c->key;
		for (int64_t i = to - 1; i >= from && *count > 0; i--)
			if (rank_key(w, old, i) == kth) {
				part->mask[i] = 1.0f;
				if (part->out)
					part->out[i] = w[i];
				--*count;
			}
	}
}

static void select_pass(void *arg, int s)
{
	struct select_ctx *c = arg;
	uint32_t *h = c->hist ? c->hist + (size_t)s * BINS : NULL;
	if (h && c->pass < 3)
		memset(h, 0, BINS * sizeof *h);
	int64_t lo = c->total * s / c->slices, hi = c->total * (s + 1) / c->slices, base = 0;
	int64_t at = c->pass == 5 ? c->cand_at[s] : 0; /* where collected keys go */
	for (int p = 0; p < c->n_parts && base < hi; p++) {
		lt_prune_part *part = &c->parts[p];
		int64_t from = lo > base ? lo - base : 0;
		int64_t to = hi - base < part->n ? hi - base : part->n;
		if (from < to)
			pass_range(c, c->pass, h, part, from, to, &at);
		base += part->n;
	}
	if (c->pass != 3 || c->surplus[s] == 0)
		return;
	/* pass 4, giving ties back: from the slice's end backwards, part by part */
	int64_t surplus = c->surplus[s], end = c->total;
	for (int p = c->n_parts - 1; p >= 0 && surplus > 0; p--) {
		lt_prune_part *part = &c->parts[p];
		int64_t start = end - part->n;
		int64_t from = lo > start ? lo - start : 0, to = hi < end ? hi - start : part->n;
		if (from < to)
			pass_range(c, 4, NULL, part, from, to, &surplus);
		end = start;
	}
}

/* The bin holding the k-th (0-based) of the counts summed over slices;
 * *below gets the count in earlier bins. */
static uint32_t find_bin(const struct select_ctx *c, int64_t k, int64_t *below)
{
	int64_t sum = 0;
	for (uint32_t b = 0; b < BINS; b++) {
		int64_t n = 0;
		for (int s = 0; s < c->slices; s++)
			n += c->hist[(size_t)s * BINS + b];
		if (sum + n > k) {
			*below = sum;
			return b;
		}
		sum += n;
	}
	*below = sum;
	return BINS - 1;
}

/* ---- selection by sampling ---------------------------------------------------
 * For large inputs without old masks one read pass usually suffices: a
 * sample of the keys brackets the k-th between two keys, wide enough (five
 * standard deviations of the sample's rank error, and more) that it misses
 * about once in a million; one pass counts the keys below the bracket and
 * collects those inside (a fraction of a percent); the k-th is then
 * selected among them. When the bracket misses, the radix passes above
 * run instead, so the result never depends on the sample. */

#define SAMPLE_BLOCKS 4096
#define SAMPLE_RUN 16 /* consecutive keys per block: one cache line each */
#define SAMPLE (SAMPLE_BLOCKS * SAMPLE_RUN)

struct bracket {
	struct select_ctx *c;
	uint32_t lo, hi;              /* candidates: lo <= key <= hi */
	int64_t below[MAX_SLICES];    /* keys < lo per slice */
	uint32_t *buf[MAX_SLICES];    /* candidates per slice */
	int64_t n[MAX_SLICES], cap[MAX_SLICES];
	int overflow;                 /* atomic */
};

static uint32_t key_at(const struct select_ctx *c, int64_t g)
{
	for (int p = 0; p < c->n_parts; p++) {
		if (g < c->parts[p].n)
			return rank_key(c->parts[p].w, c->parts[p].old_mask, g);
		g -= c->parts[p].n;
	}
	return UINT32_MAX;
}

/* In place: the k-th smallest (0-based) of a[0..n), three-way partitions. */
static uint32_t select_u32(uint32_t *a, int64_t n, int64_t k)
{
	int64_t lo = 0, hi = n - 1;
	while (lo < hi) {
		uint32_t x = a[lo], y = a[lo + (hi - lo) / 2], z = a[hi];
		uint32_t pivot = x < y ? (y < z ? y : x < z ? z : x) : (x < z ? x : y < z ? z : y);
		int64_t lt = lo, i = lo, gt = hi;
		while (i <= gt) {
			uint32_t v = a[i];
			if (v < pivot)
				a[i++] = a[lt], a[lt++] = v;
			else if (v > pivot)
				a[i] = a[gt], a[gt--] = v;
			else
				i++;
		}
		if (k < lt)
			hi = lt - 1;
		else if (k > gt)
			lo = gt + 1;
		else
			return pivot;
	}
	return a[k];
}

/* One slice: keys below the bracket counted, keys inside collected. Blocks
 * of 16 are tested with vector compares first; few hold a candidate. */
static void bracket_pass(void *arg, int s)
{
	struct bracket *b = arg;
	const struct select_ctx *c = b->c;
	int64_t lo = c->total * s / c->slices, hi = c->total * (s + 1) / c->slices, base = 0;
	const uint32_t klo = b->lo, span = b->hi - b->lo;
	int64_t below = 0, n = 0, cap = b->cap[s];
	uint32_t *buf = b->buf[s];
	for (int p = 0; p < c->n_parts && base < hi; p++) {
		const uint32_t *bits = (const uint32_t *)(const void *)c->parts[p].w;
		int64_t from = lo > base ? lo - base : 0;
		int64_t to = hi - base < c->parts[p].n ? hi - base : c->parts[p].n;
		base += c->parts[p].n;
		int64_t i = from;
		for (; i + 16 <= to; i += 16) {
			uint32_t any = 0, under = 0;
			for (int j = 0; j < 16; j++) {
				uint32_t key = (bits[i + j] & 0x7FFFFFFFu) + 1;
				under += key < klo;
				any |= key - klo <= span;
			}
			below += under;
			if (!any)
				continue;
			for (int j = 0; j < 16; j++) {
				uint32_t key = (bits[i + j] & 0x7FFFFFFFu) + 1;
				if (key - klo <= span && n < cap)
					buf[n++] = key;
				else if (key - klo <= span)
					__atomic_store_n(&b->overflow, 1, __ATOMIC_RELAXED);
			}
		}
		for (; i < to; i++) {
			uint32_t key = (bits[i] & 0x7FFFFFFFu) + 1;
			below += key < klo;
			if (key - klo <= span && n < cap)
				buf[n++] = key;
			else if (key - klo <= span)
				__atomic_store_n(&b->overflow, 1, __ATOMIC_RELAXED);
		}
	}
	b->below[s] = below;
	b->n[s] = n;
}

/* Sets c->key and c->surplus for the k-th key (k < total) and returns 1,
 * or returns 0 when the caller must select by radix passes (the bracket
 * missed, or memory ran short). */
static int select_by_sample(struct select_ctx *c, int64_t k)
{
	uint32_t *sample = lt_malloc_array(SAMPLE, sizeof *sample);
	struct bracket b = {.c = c};
	int done = 0;
	if (!sample)
		return 0;
	for (int64_t blk = 0; blk < SAMPLE_BLOCKS; blk++) {
		int64_t at = (int64_t)(((double)blk + 0.5) * (double)c->total / SAMPLE_BLOCKS) - SAMPLE_RUN / 2;
		at = at < 0 ? 0 : at > c->total - SAMPLE_RUN ? c->total - SAMPLE_RUN : at;
		for (int j = 0; j < SAMPLE_RUN; j++)
			sample[blk * SAMPLE_RUN + j] = key_at(c, at + j);
	}
	double p = (double)k / (double)c->total, sd = sqrt(SAMPLE * p * (1 - p));
	int64_t r_lo = (int64_t)floor(p * SAMPLE - 5 * sd) - 64, r_hi = (int64_t)ceil(p * SAMPLE + 5 * sd) + 64;
	b.lo = r_lo <= 0 ? 0 : select_u32(sample, SAMPLE, r_lo);
	b.hi = r_hi >= SAMPLE - 1 ? UINT32_MAX : select_u32(sample, SAMPLE, r_hi);
	lt_free(sample);
	/* room for three times the share the bracket should hold */
	double share = (double)(r_hi - r_lo + 1) / SAMPLE;
	for (int s = 0; s < c->slices; s++) {
		int64_t len = c->total * (s + 1) / c->slices - c->total * s / c->slices;
		b.cap[s] = (int64_t)(3 * share * (double)len) + 4096;
		b.cap[s] = b.cap[s] > len ? len : b.cap[s];
		if (!(b.buf[s] = lt_malloc_array((size_t)(b.cap[s] ? b.cap[s] : 1), sizeof *b.buf[s])))
			goto out;
	}
	lt_parallel_run(c->slices, bracket_pass, &b);
	int64_t below = 0, n = 0;
	for (int s = 0; s < c->slices; s++)
		below += b.below[s], n += b.n[s];
	if (b.overflow || k < below || k >= below + n)
		goto out; /* the k-th is not among the candidates */
	/* the k-th key among the candidates (a copy: the slices' lists stay
	 * in index order for the ties) */
	uint32_t *all = lt_malloc_array((size_t)n, sizeof *all);
	if (!all)
		goto out;
	for (int s = 0, at = 0; s < c->slices; at += (int)b.n[s], s++)
		memcpy(all + at, b.buf[s], (size_t)b.n[s] * sizeof *all);
	c->key = select_u32(all, n, k - below);
	lt_free(all);
	/* keys below it, then ties to prune, in slice order */
	int64_t rank = k - below;
	int64_t eq[MAX_SLICES];
	for (int s = 0; s < c->slices; s++) {
		int64_t less = 0;
		eq[s] = 0;
		for (int64_t i = 0; i < b.n[s]; i++)
			less += b.buf[s][i] < c->key, eq[s] += b.buf[s][i] == c->key;
		rank -= less;
	}
	for (int s = 0; s < c->slices; s++) {
		int64_t pruned = rank < eq[s] ? rank : eq[s];
		c->surplus[s] = eq[s] - pruned;
		rank -= pruned;
	}
	done = 1;
out:
	for (int s = 0; s < c->slices; s++)
		lt_free(b.buf[s]);
	return done;
}

int lt_prune_magnitude_parts(lt_prune_part *parts, int n_parts, int64_t k, lt_err *err)
{
	struct select_ctx c = {.parts = parts, .n_parts = n_parts};
	int64_t held = 0;
	for (int p = 0; p < n_parts; p++) {
		c.total += parts[p].n;
		for (int64_t i = 0; parts[p].old_mask && i < parts[p].n; i++)
			held += parts[p].old_mask[i] == 0.0f;
	}
	if (k < 0 || k > c.total)
		return lt_err_set(err, LT_EINVAL, "cannot prune %lld of %lld values",
				  (long long)k, (long long)c.total);
	k = k > held ? k : held; /* masks only grow */
	int cpus = lt_cpu_count();
	c.slices = (int)(c.total / MIN_SLICE) + 1;
	c.slices = c.slices > cpus ? cpus : c.slices > MAX_SLICES ? MAX_SLICES : c.slices;
	c.slices = c.slices < 1 ? 1 : c.slices;
	/* 32-bit counts: no slice may hold 2^32 elements */
	if (c.total / MAX_SLICES >= (int64_t)UINT32_MAX)
		return lt_err_set(err, LT_ERANGE, "cannot rank %lld values at once", (long long)c.total);
	while (c.total / c.slices >= (int64_t)UINT32_MAX)
		c.slices++;
	int masked = 0;
	for (int p = 0; p < n_parts; p++)
		masked |= parts[p].old_mask != NULL;
	if (k == c.total) {
		c.key = UINT32_MAX; /* every key is below: all pruned (NaN too) */
	} else if (c.total >= MIN_SLICE && !masked && select_by_sample(&c, k)) {
		/* c.key and c.surplus are set */
	} else {
		c.hist = lt_malloc_array((size_t)c.slices * BINS, sizeof *c.hist);
		if (!c.hist)
			return lt_err_set(err, LT_ENOMEM, "out of memory selecting weights");
		/* One digit per level: the bin holding the k-th among the keys
		 * that share the digits found before. */
		int64_t rank = k, below;
		c.pass = 0;
		lt_parallel_run(c.slices, select_pass, &c);
		uint32_t digit = find_bin(&c, rank, &below);
		rank -= below;
		c.prefix = digit;
		/* The keys in that bin are usually a few percent: collected once,
		 * the next levels count them instead of reading everything again. */
		int64_t n_cand = 0;
		for (int s = 0; s < c.slices; s++) {
			c.cand_at[s] = n_cand + s; /* a slot of slack after each slice's keys */
			n_cand += c.hist[(size_t)s * BINS + digit];
		}
		c.cand_at[c.slices] = n_cand + c.slices;
		if (n_cand <= c.total / 8 &&
		    (c.cand = lt_malloc_array((size_t)(n_cand + c.slices), sizeof *c.cand))) {
			c.pass = 5;
			lt_parallel_run(c.slices, select_pass, &c);
			for (int level = 1; level < 3; level++) {
				int shift = level_shift[level], up = shift + level_bits[level];
				uint32_t mask = (1u << level_bits[level]) - 1, h1[BINS] = {0};
				int64_t sum = 0;
				for (int s = 0; s < c.slices; s++)
					for (int64_t i = c.cand_at[s]; i < c.cand_at[s + 1] - 1; i++)
						if (c.cand[i] >> up == c.prefix)
							h1[c.cand[i] >> shift & mask]++;
				for (digit = 0; digit < BINS && sum + h1[digit] <= rank; digit++)
					sum += h1[digit];
				rank -= sum;
				c.prefix = c.prefix << level_bits[level] | digit;
			}
			/* each slice's keys equal to the k-th, from its own segment */
			for (int s = 0; s < c.slices; s++) {
				int64_t here = 0;
				for (int64_t i = c.cand_at[s]; i < c.cand_at[s + 1] - 1; i++)
					here += c.cand[i] == c.prefix;
				c.hist[(size_t)s * BINS] = (uint32_t)here; /* read below as the equal-key counts */
			}
			digit = 0;
			lt_free(c.cand);
			c.cand = NULL;
		} else {
			for (c.pass = 1; c.pass < 3; c.pass++) {
				lt_parallel_run(c.slices, select_pass, &c);
				digit = find_bin(&c, rank, &below);
				rank -= below;
				c.prefix = c.prefix << level_bits[c.pass] | digit;
			}
		}
		c.key = c.prefix;
		/* rank keys equal to the k-th are still to prune, handed out in
		 * slice order: the rest of each slice's equal keys are its
		 * surplus (hist[s][digit] holds each slice's equal keys). */
		for (int s = 0; s < c.slices; s++) {
			int64_t here = c.hist[(size_t)s * BINS + digit], pruned = rank < here ? rank : here;
			c.surplus[s] = here - pruned;
			rank -= pruned;
		}
		lt_free(c.hist);
		c.hist = NULL;
	}
	c.pass = 3;
	lt_parallel_run(c.slices, select_pass, &c);
	return 0;
}

int lt_prune_magnitude_mask(const float *w, const float *old_mask, int64_t n,
			    int64_t k, float *mask, lt_err *err)
{
	lt_prune_part part = {w, old_mask, n, mask, NULL};
	return lt_prune_magnitude_parts(&part, 1, k, err);
}

void lt_prune_threshold_mask(const float *w, const float *old_mask, int64_t n,
			     float threshold, float *mask)
{
	for (int64_t i = 0; i < n; i++)
		mask[i] = (old_mask && old_mask[i] == 0.0f) || fabsf(w[i]) < threshold ? 0.0f : 1.0f;
}

int lt_prune_random_mask(const float *old_mask, int64_t n, int64_t k,
			 uint64_t seed, float *mask, lt_err *err)
{
	if (k < 0 || k > n)
		return lt_err_set(err, LT_EINVAL, "cannot prune %lld of %lld values",
				  (long long)k, (long long)n);
	int64_t *live = lt_malloc_array((size_t)(n ? n : 1), sizeof *live);
	if (!live)
		return lt_err_set(err, LT_ENOMEM, "out of memory selecting weights");
	int64_t n_live = 0, held = 0;
	for (int64_t i = 0; i < n; i++) {
		int gone = old_mask && old_mask[i] == 0.0f;
		mask[i] = gone ? 0.0f : 1.0f;
		held += gone;
		if (!gone)
			live[n_live++] = i;
	}
	/* Partial Fisher-Yates: the first k - held of live become a uniform
	 * random subset. */
	lt_rng r = {seed};
	for (int64_t j = 0; j < k - held; j++) {
		int64_t pick = j + (int64_t)lt_rng_below(&r, (uint64_t)(n_live - j));
		int64_t tmp = live[j];
		live[j] = live[pick];
		live[pick] = tmp;
		mask[live[j]] = 0.0f;
	}
	lt_free(live);
	return 0;
}

/* A new f32 tensor and mask of t's shape to fill (both NULL with err). */
static int new_pruned(const lt_tensor *t, lt_tensor **out, lt_tensor **mask, lt_err *err)
{
	/* every element of both is written by the selection */
	*out = lt_tensor_new_uninit(lt_tensor_ndim(t), lt_tensor_shape(t), err);
	*mask = *out ? lt_tensor_new_uninit(lt_tensor_ndim(t), lt_tensor_shape(t), err) : NULL;
	if (*mask)
		return 0;
	lt_tensor_unref(*out);
	*out = NULL;
	return err ? err->code : LT_ENOMEM;
}

/* out (filled) in t's dtype with the mask attached; consumes out and mask.
 * Zeroing loses nothing in a half-precision dtype: keep the file's. */
static lt_tensor *finish_pruned(const lt_tensor *t, lt_tensor *out, lt_tensor *mask, lt_err *err)
{
	lt_dtype dt = lt_tensor_dtype(t);
	if (dt == LT_F16 || dt == LT_BF16) {
		lt_tensor *half = lt_tensor_cast(out, dt, err);
		lt_tensor_unref(out);
		out = half;
	}
	if (out && lt_tensor_set_mask(out, mask, err)) {
		lt_tensor_unref(out);
		out = NULL;
	}
	lt_tensor_unref(mask);
	return out;
}

lt_tensor *lt_prune_tensor(lt_tensor *t, const lt_prune_spec *spec, lt_err *err)
{
	if (!spec->by_threshold && !(spec->sparsity >= 0.0 && spec->sparsity <= 1.0)) {
		lt_err_set(err, LT_EINVAL, "sparsity must be between 0 and 1 (got %g)", spec->sparsity);
		return NULL;
	}
	if (spec->by_threshold && !(spec->threshold >= 0.0f)) {
		lt_err_set(err, LT_EINVAL, "threshold must be 0 or more (got %g)", (double)spec->threshold);
		return NULL;
	}
	const float *w = lt_tensor_data(t, err);
	if (!w)
		return NULL;
	lt_tensor *old = lt_tensor_mask(t);
	const float *old_mask = NULL;
	if (old && !(old_mask = lt_tensor_data(old, err)))
		return NULL;
	int64_t n = lt_tensor_numel(t);
	lt_tensor *out, *mask;
	if (new_pruned(t, &out, &mask, err))
		return NULL;
	float *m = lt_tensor_data_mut(mask, err), *o = lt_tensor_data_mut(out, err);
	int rc = 0;
	int64_t k = lt_prune_count(n, spec->sparsity);
	lt_prune_part part = {w, old_mask, n, m, o};
	if (spec->method == LT_PRUNE_RANDOM)
		rc = lt_prune_random_mask(old_mask, n, k, spec->seed, m, err);
	else if (spec->by_threshold)
		lt_prune_threshold_mask(w, old_mask, n, spec->threshold, m);
	else
		rc = lt_prune_magnitude_parts(&part, 1, k, err); /* writes o too */
	if (rc) {
		lt_tensor_unref(out);
		lt_tensor_unref(mask);
		return NULL;
	}
	if (spec->method == LT_PRUNE_RANDOM || spec->by_threshold)
		for (int64_t i = 0; i < n; i++)
			o[i] = m[i] != 0.0f ? w[i] : 0.0f;
	return finish_pruned(t, out, mask, err);
}

int lt_prune_global(lt_tensor *const *in, int n, double sparsity, lt_tensor **out, lt_err *err)
{
	if (!(sparsity >= 0.0 && sparsity <= 1.0))
		return lt_err_set(err, LT_EINVAL, "sparsity must be between 0 and 1 (got %g)", sparsity);
	int rc = 0;
	int64_t total = 0;
	for (int i = 0; i < n; i++)
		out[i] = NULL;
	lt_tensor **mask = lt_calloc((size_t)(n > 0 ? n : 1), sizeof *mask);
	lt_prune_part *parts = lt_calloc((size_t)(n > 0 ? n : 1), sizeof *parts);
	if (!mask || !parts) {
		rc = lt_err_set(err, LT_ENOMEM, "out of memory selecting weights");
		goto done;
	}
	for (int i = 0; i < n && !rc; i++) {
		const float *w = lt_tensor_data(in[i], err);
		lt_tensor *old = lt_tensor_mask(in[i]);
		const float *old_mask = old ? lt_tensor_data(old, err) : NULL;
		if (!w || (old && !old_mask) || (rc = new_pruned(in[i], &out[i], &mask[i], err))) {
			rc = rc ? rc : err ? err->code : LT_ENOMEM;
			break;
		}
		parts[i] = (lt_prune_part){w, old_mask, lt_tensor_numel(in[i]),
					   lt_tensor_data_mut(mask[i], NULL), lt_tensor_data_mut(out[i], NULL)};
		total += parts[i].n;
	}
	if (!rc)
		rc = lt_prune_magnitude_parts(parts, n, lt_prune_count(total, sparsity), err);
	for (int i = 0; i < n && !rc; i++) {
		out[i] = finish_pruned(in[i], out[i], mask[i], err);
		mask[i] = NULL;
		if (!out[i])
			rc = err ? err->code : LT_ENOMEM;
	}
done:
	for (int i = 0; mask && i < n; i++) {
		lt_tensor_unref(mask[i]);
		if (rc) {
			lt_tensor_unref(out[i]);
			out[i] = NULL;
		}
	}
	lt_free(mask);
	lt_free(parts);
	return rc;
}
