/* 1-D k-means weight sharing (see kmeans.h).
 *
 * The included values become 32-bit sort keys (the float bits made to
 * order as unsigned integers), sorted by radix: a first read counts them
 * by their top 11 bits, a second distributes them into those buckets, then
 * each bucket (usually small enough to stay in cache) is sorted by the
 * other 21 bits in two passes. Meanwhile running sums of each bucket's
 * values are kept at every 8th position, summed from the bucket's end
 * nearer zero; with the sums of whole buckets that gives, for any p, the
 * sum of the sorted values from p to the first non-negative one (or from
 * there to p): the prefix sums less the sum of the negative values, a
 * constant, so the sum of any run is a difference of two of them. Summed
 * outward from zero, they stay small where the values are small, and a
 * cluster's mean keeps its precision whatever lies far away (plain prefix
 * sums are largest around zero and would drown the small values there).
 * Threads share the reads by slices of the input and the bucket sorts by
 * runs of buckets; the order and the sums do not depend on how the work is
 * split. Memory: 4 bytes per included value, 1 for the checkpoints, and
 * scratch the size of the largest bucket.
 *
 * A Lloyd step then costs one search per boundary (the number of keys up
 * to the midpoint between neighbouring centroids) and one division per
 * cluster (the sums at the boundaries are kept). Boundaries drift
 * smoothly, so the search first counts a window of 32 keys where the last
 * move would take the boundary, and gallops from there when it is not in
 * it. Boundaries whose centroids did not move and centroids whose
 * boundaries did not move are not recomputed, so late steps, which move a
 * few clusters, cost little.
 * Codes are found per element through a table indexed by the key's top 16
 * bits (the first threshold above that range) and a short scan. */
#include "kern/kmeans.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#include "core/mem.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "kern/blas.h"

#define TOP_SHIFT 21
#define TOP_BINS 2048            /* buckets: the keys' top 11 bits */
#define CHECK_SHIFT 3            /* a running sum every 8 positions */
#define LOOKUP_SHIFT 16
#define LOOKUP_BINS 65536        /* code lookup: the keys' top 16 bits */
#define MAX_SLICES 8
#define MIN_SLICE (1 << 17)      /* elements per thread below which one thread does it all */
#define INERTIA_BLOCKS 256       /* inertia is summed per block, then in block order */

/* The bits of x as an unsigned integer ordered as the floats are
 * (negative: every bit flipped; positive: the sign bit set). x + 0.0f turns
 * -0 into +0 first, so equal floats have equal keys (and the key of -0,
 * 0x7FFFFFFF, never occurs). */
static inline uint32_t float_key(float x)
{
	uint32_t b;
	x += 0.0f;
	memcpy(&b, &x, sizeof b);
	return b ^ ((uint32_t)-(int32_t)(b >> 31) | 0x80000000u);
}

static inline float key_float(uint32_t k)
{
	uint32_t b = k ^ (((k >> 31) - 1) | 0x80000000u);
	float x;
	memcpy(&x, &b, sizeof x);
	return x;
}

/* ---- sorting ---------------------------------------------------------------- */

/* The included values, sorted, with their running sums. */
struct sorted {
	int64_t n;
	uint32_t *keys;                /* n keys, ascending */
	double *check;                 /* n/8 + 1: at p = 8q, the sum of the values of
					* p's bucket before p (bucket of non-negative
					* values) or from p on (negative values) */
	int64_t start[TOP_BINS + 1];   /* where each bucket begins */
	double base[TOP_BINS];         /* sum of the buckets between this one and zero */
	double positive;               /* sum of the non-negative values */
};

/* Buckets of negative values (key's top bit 0) come first. */
#define NEGATIVE(d) ((d) < TOP_BINS / 2)

/* The sum of the sorted values before p (0 <= p <= n) less the sum of all
 * the negative ones: minus the sum of the negative values from p on when p
 * is among them, else the sum of the non-negative values before p. From
 * the checkpoint next to p on the side of its bucket nearer zero, and at
 * most 7 values. */
static inline double prefix_at(const struct sorted *s, int64_t p)
{
	if (p == s->n)
		return s->positive;
	uint32_t d = s->keys[p] >> TOP_SHIFT;
	double acc = 0.0;
	if (NEGATIVE(d)) {
		int64_t to = (p + (1 << CHECK_SHIFT) - 1) >> CHECK_SHIFT << CHECK_SHIFT;
		if (to < s->start[d + 1])
			acc = s->check[to >> CHECK_SHIFT];
		else
			to = s->start[d + 1];
		for (int64_t i = to - 1; i >= p; i--)
			acc += key_float(s->keys[i]);
		return -(s->base[d] + acc);
	}
	int64_t from = p >> CHECK_SHIFT << CHECK_SHIFT;
	if (from >= s->start[d])
		acc = s->check[p >> CHECK_SHIFT];
	else
		from = s->start[d];
	for (int64_t i = from; i < p; i++)
		acc += key_float(s->keys[i]);
	return s->base[d] + acc;
}

struct build {
	const float *w, *mask;
	int64_t n;
	int skip_zeros;
	int slices;
	int pass;                    /* 0 count, 1 distribute, 2 bucket sorts */
	struct sorted *s;
	int64_t count[MAX_SLICES];   /* included keys per slice */
	int64_t bad[MAX_SLICES];     /* first non-finite included index per slice, or -1 */
	int split[MAX_SLICES + 1];   /* buckets [split[t], split[t+1]) sorted by slice t */
	uint32_t *scratch[MAX_SLICES]; /* the size of slice t's largest bucket */
	double total[TOP_BINS];      /* sum of each bucket's values */
	uint32_t hist[MAX_SLICES][TOP_BINS]; /* per slice: counts, then write offsets */
};

/* Pass 0 over slice t: count the included keys by top digit; note the
 * first non-finite value. Four sets of counts, so that runs of one bucket
 * do not wait on each other. */
static void count_slice(struct build *b, int t)
{
	int64_t lo = b->n * t / b->slices, hi = b->n * (t + 1) / b->slices, m = 0;
	uint32_t sub[4][TOP_BINS];
	const float *w = b->w, *mask = b->mask;
	memset(sub, 0, sizeof sub);
	b->bad[t] = -1;
	if (!mask && !b->skip_zeros) {
		/* every element, without a branch; a non-finite one is looked
		 * for afterwards */
		uint32_t nonfinite = 0;
		int64_t i = lo;
		for (; i + 4 <= hi; i += 4) {
			for (int j = 0; j < 4; j++) {
				uint32_t bits;
				memcpy(&bits, &w[i + j], sizeof bits);
				nonfinite |= (bits & 0x7F800000u) == 0x7F800000u;
				sub[j][float_key(w[i + j]) >> TOP_SHIFT]++;
			}
		}
		for (; i < hi; i++) {
			uint32_t bits;
			memcpy(&bits, &w[i], sizeof bits);
			nonfinite |= (bits & 0x7F800000u) == 0x7F800000u;
			sub[0][float_key(w[i]) >> TOP_SHIFT]++;
		}
		m = hi - lo;
		for (i = lo; nonfinite && i < hi; i++)
			if (!isfinite(w[i])) {
				b->bad[t] = i;
				break;
			}
	} else {
		for (int64_t i = lo; i < hi; i++) {
			float x = w[i];
			if ((mask && mask[i] == 0.0f) || (b->skip_zeros && x == 0.0f))
				continue;
			if (!isfinite(x)) {
				b->bad[t] = i;
				break;
			}
			sub[m++ & 3][float_key(x) >> TOP_SHIFT]++;
		}
	}
	b->count[t] = m;
	for (int d = 0; d < TOP_BINS; d++)
		b->hist[t][d] = sub[0][d] + sub[1][d] + sub[2][d] + sub[3][d];
}

/* Pass 1 over slice t: each included key to its bucket (offsets in hist[t]). */
static void distribute_slice(struct build *b, int t)
{
	int64_t lo = b->n * t / b->slices, hi = b->n * (t + 1) / b->slices;
	const float *w = b->w, *mask = b->mask;
	uint32_t *restrict keys = b->s->keys, *restrict at = b->hist[t];
	if (!mask && !b->skip_zeros) {
		for (int64_t i = lo; i < hi; i++) {
			uint32_t key = float_key(w[i]);
			keys[at[key >> TOP_SHIFT]++] = key;
		}
		return;
	}
	for (int64_t i = lo; i < hi; i++) {
		float x = w[i];
		if ((mask && mask[i] == 0.0f) || (b->skip_zeros && x == 0.0f))
			continue;
		uint32_t key = float_key(x);
		keys[at[key >> TOP_SHIFT]++] = key;
	}
}

/* Sort a[0..n), keys sharing their top 11 bits, by the low 21 bits (two
 * stable passes, 11 and 10 bits); tmp is scratch of n. */
static void sort_low(uint32_t *a, uint32_t *tmp, int64_t n)
{
	if (n <= 32) {
		for (int64_t i = 1; i < n; i++) {
			uint32_t v = a[i];
			int64_t j = i;
			for (; j > 0 && a[j - 1] > v; j--)
				a[j] = a[j - 1];
			a[j] = v;
		}
		return;
	}
	uint32_t h0[2048], h1[1024];
	memset(h0, 0, sizeof h0);
	memset(h1, 0, sizeof h1);
	for (int64_t i = 0; i < n; i++) {
		h0[a[i] & 2047]++;
		h1[a[i] >> 11 & 1023]++;
	}
	uint32_t *src = a, *dst = tmp;
	for (int level = 0; level < 2; level++) {
		uint32_t *h = level ? h1 : h0, mask = level ? 1023 : 2047;
		int shift = level ? 11 : 0, bins = level ? 1024 : 2048;
		if (h[src[0] >> shift & mask] == (uint32_t)n)
			continue; /* every key has this digit */
		uint32_t sum = 0;
		for (int d = 0; d < bins; d++) {
			uint32_t c = h[d];
			h[d] = sum;
			sum += c;
		}
		for (int64_t i = 0; i < n; i++) {
			uint32_t key = src[i];
			dst[h[key >> shift & mask]++] = key;
		}
		uint32_t *t = src;
		src = dst;
		dst = t;
	}
	if (src != a)
		memcpy(a, src, (size_t)n * sizeof *a);
}

/* Pass 2 for slice t: its run of buckets sorted, with their running sums. */
static void sort_buckets(struct build *b, int t)
{
	struct sorted *s = b->s;
	for (int d = b->split[t]; d < b->split[t + 1]; d++) {
		int64_t lo = s->start[d], hi = s->start[d + 1];
		sort_low(s->keys + lo, b->scratch[t], hi - lo);
		/* running sums from the end nearer zero (see prefix_at) */
		double acc = 0.0;
		if (NEGATIVE(d)) {
			for (int64_t p = hi - 1; p >= lo; p--) {
				acc += key_float(s->keys[p]);
				if (!(p & ((1 << CHECK_SHIFT) - 1)))
					s->check[p >> CHECK_SHIFT] = acc;
			}
		} else {
			for (int64_t p = lo; p < hi; p++) {
				if (!(p & ((1 << CHECK_SHIFT) - 1)))
					s->check[p >> CHECK_SHIFT] = acc;
				acc += key_float(s->keys[p]);
			}
		}
		b->total[d] = acc;
	}
}

static void build_pass(void *arg, int t)
{
	struct build *b = arg;
	if (b->pass == 0)
		count_slice(b, t);
	else if (b->pass == 1)
		distribute_slice(b, t);
	else
		sort_buckets(b, t);
}

static int slices_for(int64_t n)
{
	int cpus = lt_cpu_count();
	int64_t want = n / MIN_SLICE + 1;
	int slices = want < cpus ? (int)want : cpus;
	slices = slices > MAX_SLICES ? MAX_SLICES : slices;
	return slices < 1 ? 1 : slices;
}

static void sorted_free(struct sorted *s)
{
	if (!s)
		return;
	lt_free(s->keys);
	lt_free(s->check);
	lt_free(s);
}

/* *out: the included values of w sorted (free with sorted_free). Returns 0,
 * or an error code with err and *out NULL. */
static int sort_values(const float *w, const float *mask, int64_t n, int skip_zeros, int slices,
		       struct sorted **out, lt_err *err)
{
	int rc;
	struct build *b = lt_calloc(1, sizeof *b);
	struct sorted *s = lt_calloc(1, sizeof *s);
	*out = NULL;
	if (!b || !s)
		goto nomem;
	*b = (struct build){.w = w, .mask = mask, .n = n, .skip_zeros = skip_zeros, .slices = slices, .s = s};
	b->pass = 0;
	lt_parallel_run(slices, build_pass, b);
	int64_t total = 0, bad = -1;
	for (int t = 0; t < slices; t++) {
		total += b->count[t];
		if (bad < 0)
			bad = b->bad[t];
	}
	if (bad >= 0) {
		rc = lt_err_set(err, LT_EINVAL, "element %lld is %s: k-means needs finite values",
				(long long)bad, isnan(w[bad]) ? "NaN" : "infinite");
		goto fail;
	}
	if (total == 0) {
		rc = lt_err_set(err, LT_EINVAL, "nothing to cluster: every element is %s",
				mask && skip_zeros ? "masked or zero" : mask ? "masked" : "zero");
		goto fail;
	}
	if (total > (int64_t)UINT32_MAX) {
		rc = lt_err_set(err, LT_ERANGE, "cannot cluster %lld values at once (at most %lu)",
				(long long)total, (unsigned long)UINT32_MAX);
		goto fail;
	}
	s->n = total;
	if (!(s->keys = lt_malloc_array((size_t)total, sizeof *s->keys)) ||
	    !(s->check = lt_malloc_array((size_t)(total >> CHECK_SHIFT) + 1, sizeof *s->check)))
		goto nomem;
	/* bucket starts, each slice's write offsets, and runs of buckets of
	 * about equal counts for the sorts, with scratch for the largest */
	int64_t at = 0, largest[MAX_SLICES] = {0};
	int t_split = 1;
	b->split[0] = 0;
	for (int d = 0; d < TOP_BINS; d++) {
		s->start[d] = at;
		while (t_split < slices && at >= total * t_split / slices)
			b->split[t_split++] = d;
		for (int t = 0; t < slices; t++) {
			uint32_t c = b->hist[t][d];
			b->hist[t][d] = (uint32_t)at;
			at += c;
		}
		if (at - s->start[d] > largest[t_split - 1])
			largest[t_split - 1] = at - s->start[d];
	}
	s->start[TOP_BINS] = at;
	while (t_split <= slices)
		b->split[t_split++] = TOP_BINS;
	for (int t = 0; t < slices; t++)
		if (largest[t] > 32 && !(b->scratch[t] = lt_malloc_array((size_t)largest[t], sizeof(uint32_t))))
			goto nomem;
	b->pass = 1;
	lt_parallel_run(slices, build_pass, b);
	b->pass = 2;
	lt_parallel_run(slices, build_pass, b);
	/* bucket sums outward from zero */
	double acc = 0.0;
	for (int d = TOP_BINS / 2 - 1; d >= 0; d--) {
		s->base[d] = acc;
		acc += b->total[d];
	}
	acc = 0.0;
	for (int d = TOP_BINS / 2; d < TOP_BINS; d++) {
		s->base[d] = acc;
		acc += b->total[d];
	}
	s->positive = acc;
	for (int t = 0; t < slices; t++)
		lt_free(b->scratch[t]);
	lt_free(b);
	*out = s;
	return 0;
nomem:
	rc = lt_err_set(err, LT_ENOMEM, "out of memory sorting %lld values", (long long)n);
fail:
	for (int t = 0; b && t < slices; t++)
		lt_free(b->scratch[t]);
	lt_free(b);
	sorted_free(s);
	return rc;
}

/* The number of keys <= key in a[0..n), searched from hint (0..n) by
 * galloping and bisection. */
static int64_t search_le(const uint32_t *a, int64_t n, uint32_t key, int64_t hint)
{
	int64_t lo, hi, step = 1;
	if (hint < n && a[hint] <= key) {
		/* the answer is above hint: probe hint+1, +2, +4, ... */
		lo = hint + 1;
		for (;;) {
			hi = lo + step - 1;
			if (hi >= n) {
				hi = n;
				break;
			}
			if (a[hi] > key)
				break;
			lo = hi + 1;
			step <<= 1;
		}
	} else {
		/* at or below hint: probe hint-1, -2, -4, ... */
		hi = hint;
		for (;;) {
			lo = hi - step;
			if (lo < 0) {
				lo = 0;
				break;
			}
			if (a[lo] <= key) {
				lo++;
				break;
			}
			hi = lo;
			step <<= 1;
		}
	}
	/* a[lo-1] <= key (or lo = 0) and a[hi] > key (or hi = n) */
	while (lo < hi) {
		int64_t mid = lo + (hi - lo) / 2;
		if (a[mid] <= key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

#define WINDOW 32

/* The same, first trying the WINDOW keys around hint: when the answer is
 * among them, counting them (without branches) gives it. */
static inline int64_t count_le(const uint32_t *a, int64_t n, uint32_t key, int64_t hint)
{
	int64_t lo = hint - WINDOW / 2;
	lo = lo < 0 ? 0 : lo;
	if (lo + WINDOW < n && (lo == 0 || a[lo - 1] <= key) && a[lo + WINDOW] > key) {
		int count = 0;
		for (int i = 0; i < WINDOW; i++)
			count += a[lo + i] <= key;
		return lo + count;
	}
	return search_le(a, n, key, hint);
}

static void sort_doubles(double *c, int k)
{
	for (int i = 1; i < k; i++) {
		double v = c[i];
		int j = i;
		for (; j > 0 && c[j - 1] > v; j--)
			c[j] = c[j - 1];
		c[j] = v;
	}
}

/* ---- initialisation ------------------------------------------------------------ */

static void init_linear(const struct sorted *s, int k, double *c)
{
	/* numpy.linspace(lo, hi, k): j * step + lo, the last exactly hi */
	double lo = key_float(s->keys[0]), hi = key_float(s->keys[s->n - 1]);
	double delta = hi - lo, step = delta / (k - 1);
	for (int j = 0; j < k; j++)
		c[j] = step != 0.0 ? j * step + lo : (j / (double)(k - 1)) * delta + lo;
	c[k - 1] = hi;
}

static void init_density(const struct sorted *s, int k, double *c)
{
	const int64_t n = s->n;
	const double step = 1.0 / (k - 1);
	for (int j = 0; j < k; j++) {
		double q = j == k - 1 ? 1.0 : j * step + 0.0;
		double h = (double)(n - 1) * q;
		if (h >= (double)(n - 1)) {
			c[j] = key_float(s->keys[n - 1]);
			continue;
		}
		int64_t p = (int64_t)floor(h);
		double t = h - (double)p;
		double a = key_float(s->keys[p]), b = key_float(s->keys[p + 1]), d = b - a;
		c[j] = t >= 0.5 ? b - d * (1.0 - t) : a + d * t;
	}
	sort_doubles(c, k); /* already sorted but for rounding */
}

static void init_random(const struct sorted *s, int k, uint64_t seed, double *c)
{
	/* taken runs of equal keys, [from[i], to[i]) in ascending order */
	int64_t from[LT_KMEANS_MAX_K], to[LT_KMEANS_MAX_K], left = s->n;
	int taken = 0;
	lt_rng r = {seed};
	while (taken < k && left > 0) {
		/* the pos-th key not yet taken */
		int64_t pos = (int64_t)lt_rng_below(&r, (uint64_t)left);
		int at = 0;
		for (; at < taken && pos >= from[at]; at++)
			pos += to[at] - from[at];
		uint32_t key = s->keys[pos];
		int64_t lo = key ? count_le(s->keys, s->n, key - 1, pos) : 0;
		int64_t hi = count_le(s->keys, s->n, key, pos);
		memmove(from + at + 1, from + at, (size_t)(taken - at) * sizeof *from);
		memmove(to + at + 1, to + at, (size_t)(taken - at) * sizeof *to);
		from[at] = lo;
		to[at] = hi;
		c[taken++] = key_float(key);
		left -= hi - lo;
	}
	for (; taken < k; taken++)
		c[taken] = key_float(s->keys[s->n - 1]);
	sort_doubles(c, k);
}

static void init_centroids(const struct sorted *s, const lt_kmeans_opts *opt, double *c)
{
	if (opt->init == LT_KMEANS_LINEAR)
		init_linear(s, opt->k, c);
	else if (opt->init == LT_KMEANS_DENSITY)
		init_density(s, opt->k, c);
	else
		init_random(s, opt->k, opt->seed, c);
}

/* ---- Lloyd steps ------------------------------------------------------------------ */

struct lloyd {
	const struct sorted *s;
	int k;
	double c[LT_KMEANS_MAX_K];          /* centroids, ascending */
	int64_t edge[LT_KMEANS_MAX_K + 1];  /* cluster j: sorted positions [edge[j], edge[j+1]) */
	double sum[LT_KMEANS_MAX_K + 1];    /* prefix_at(edge[j]) */
	int64_t step[LT_KMEANS_MAX_K + 1];  /* how far edge[j] moved last time */
	uint32_t thr[LT_KMEANS_MAX_K];      /* cluster j: keys in (thr[j-1], thr[j]]; thr[k-1] = max */
};

/* Whether x goes to centroid a rather than b (a < b) as an argmin over
 * |x - c| in double decides it: the first on a tie. */
static inline int nearer_lower(float x, double a, double b)
{
	return fabs((double)x - a) <= fabs((double)x - b);
}

/* The key of the largest float that goes to a rather than b (a < b): a
 * value x goes to a exactly when its key is at most this one. The
 * distances as an argmin computes them decide, so that values on or near
 * the midpoint go where a plain Lloyd loop sends them. Between a and b
 * that choice is monotone in x, and the answer is nearly always the float
 * nearest the midpoint or the one below it; otherwise (the distances
 * can round equal over a long stretch, e.g. for tiny x between -1 and 1) a
 * bisection over the keys between a and b finds it. */
static uint32_t boundary_key(double a, double b)
{
	uint32_t lo, hi, key = float_key((float)(0.5 * (a + b)));
	int below = nearer_lower(key_float(key - 1), a, b), at = nearer_lower(key_float(key), a, b);
	int above = nearer_lower(key_float(key + 1), a, b);
	if (below && !above)
		return key - !at; /* the usual case, without a branch */
	if (above) {
		float fb = (float)b; /* the smallest float >= b */
		if ((double)fb < b)
			fb = nextafterf(fb, INFINITY);
		lo = key + 1;
		hi = float_key(fb);
		if (nearer_lower(key_float(hi), a, b))
			return hi;
	} else {
		float fa = (float)a; /* the largest float <= a */
		if ((double)fa > a)
			fa = nextafterf(fa, -INFINITY);
		lo = float_key(fa);
		hi = key - 1;
	}
	/* lo goes to a, hi does not (the unused key of -0 decodes to -0,
	 * which goes where +0 goes, so it is never the answer) */
	while (hi - lo > 1) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (nearer_lower(key_float(mid), a, b))
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* Boundary j (the upper end of cluster j) for the current centroids;
 * returns 1 if it moved. Equal centroids: an argmin gives a value to the
 * first of them, so the boundary is the midpoint between c[j] and the next
 * centroid that differs (and the later equal ones get nothing). */
static int place_boundary(struct lloyd *L, int j)
{
	int i = j + 1;
	while (i < L->k && L->c[i] == L->c[j])
		i++;
	uint32_t key = i < L->k ? boundary_key(L->c[j], L->c[i]) : UINT32_MAX;
	/* boundaries drift smoothly: expect the same move as last time */
	int64_t hint = L->edge[j + 1] + L->step[j + 1];
	hint = hint < L->edge[j] ? L->edge[j] : hint > L->s->n ? L->s->n : hint;
	int64_t e = count_le(L->s->keys, L->s->n, key, hint);
	int moved = e != L->edge[j + 1];
	L->step[j + 1] = e - L->edge[j + 1];
	L->thr[j] = key;
	L->edge[j + 1] = e;
	if (moved)
		L->sum[j + 1] = prefix_at(L->s, e);
	return moved;
}

/* Lloyd steps from L->c until one changes nothing or max_iter ran out;
 * then the boundaries and thresholds of the final centroids.
 *
 * Only what can have changed is recomputed: a boundary when one of its two
 * centroids moved, a centroid when one of its boundaries moved. Every
 * boundary is placed again after the centroids had to be sorted, and while
 * two are equal (a boundary then depends on centroids further away). */
static void run_lloyd(struct lloyd *L, int max_iter, int *iterations, int *converged)
{
	const int k = L->k;
	const struct sorted *s = L->s;
	unsigned char cmoved[LT_KMEANS_MAX_K], emoved[LT_KMEANS_MAX_K + 1];
	int full = 1;  /* every centroid recomputed (first step, after a sort) */
	int equal = 1; /* every boundary placed (some centroids may be equal) */
	const double at0 = prefix_at(s, 0);
	for (int j = 0; j < k; j++) {
		L->edge[j] = 0;
		L->sum[j] = at0;
		L->step[j] = 0;
	}
	L->edge[k] = s->n;
	L->sum[k] = prefix_at(s, s->n);
	L->thr[k - 1] = UINT32_MAX;
	*converged = 0;
	*iterations = max_iter;
	for (int it = 1; it <= max_iter; it++) {
		emoved[0] = emoved[k] = 0;
		for (int j = 0; j < k - 1; j++)
			emoved[j + 1] = (full || equal || cmoved[j] || cmoved[j + 1]) && place_boundary(L, j);
		int any = 0;
		for (int j = 0; j < k; j++) {
			cmoved[j] = 0;
			int64_t lo = L->edge[j], hi = L->edge[j + 1];
			if ((!full && !emoved[j] && !emoved[j + 1]) || hi == lo)
				continue; /* the same mean as before, or empty: kept */
			double v = (L->sum[j + 1] - L->sum[j]) / (double)(hi - lo);
			if (v != L->c[j]) {
				L->c[j] = v;
				cmoved[j] = 1;
				any = 1;
			}
		}
		if (!any) {
			*iterations = it;
			*converged = 1;
			break;
		}
		/* Only a moved centroid can be out of order or equal to a
		 * neighbour (an empty cluster's kept one): look around those,
		 * or everywhere while equal ones remain. */
		int unsorted = 0, was_equal = equal;
		equal = 0;
		for (int j = 0; j < k - 1; j++) {
			if (!was_equal && !cmoved[j] && !cmoved[j + 1])
				continue;
			unsorted |= L->c[j] > L->c[j + 1];
			equal |= L->c[j] == L->c[j + 1];
		}
		full = unsorted;
		if (unsorted) {
			sort_doubles(L->c, k);
			equal = 1; /* look everywhere after the next step */
		}
	}
	for (int j = 0; j < k - 1; j++)
		place_boundary(L, j);
}

/* ---- codes ------------------------------------------------------------------------ */

struct assign {
	const float *w, *mask;
	float *out;
	uint16_t *codes;
	int skip_zeros;
	int64_t n, block;
	int blocks, slices;
	const uint32_t *thr;
	const float *table;
	const uint8_t *first;        /* LOOKUP_BINS: the first code a key's top 16 bits allow */
	double inertia[INERTIA_BLOCKS];
};

static void assign_slice(void *arg, int t)
{
	struct assign *a = arg;
	const float *w = a->w, *mask = a->mask, *table = a->table;
	const uint32_t *thr = a->thr;
	const uint8_t *first = a->first;
	float *out = a->out;
	uint16_t *codes = a->codes;
	for (int blk = a->blocks * t / a->slices; blk < a->blocks * (t + 1) / a->slices; blk++) {
		int64_t lo = blk * a->block, hi = lo + a->block < a->n ? lo + a->block : a->n;
		double acc = 0.0;
		for (int64_t i = lo; i < hi; i++) {
			float x = w[i];
			if ((mask && mask[i] == 0.0f) || (a->skip_zeros && x == 0.0f)) {
				codes[i] = 0;
				if (out)
					out[i] = 0.0f;
				continue;
			}
			uint32_t key = float_key(x);
			unsigned c = first[key >> LOOKUP_SHIFT];
			while (key > thr[c])
				c++;
			codes[i] = (uint16_t)c;
			float v = table[c];
			if (out)
				out[i] = v;
			double d = (double)x - (double)v;
			acc += d * d;
		}
		a->inertia[blk] = acc;
	}
}

/* ---- entry points ------------------------------------------------------------------ */

static int check_opts(const lt_kmeans_opts *opt, int64_t n, lt_err *err)
{
	if (opt->k < LT_KMEANS_MIN_K || opt->k > LT_KMEANS_MAX_K)
		return lt_err_set(err, LT_EINVAL, "k-means needs %d to %d clusters (got %d)", LT_KMEANS_MIN_K,
				  LT_KMEANS_MAX_K, opt->k);
	if (opt->max_iter < 0)
		return lt_err_set(err, LT_EINVAL,
				  "the iteration limit must be 0 (the default) or more (got %d)", opt->max_iter);
	if (opt->init != LT_KMEANS_LINEAR && opt->init != LT_KMEANS_DENSITY && opt->init != LT_KMEANS_RANDOM)
		return lt_err_set(err, LT_EINVAL, "unknown k-means initialisation %d", (int)opt->init);
	if (n < 0)
		return lt_err_set(err, LT_EINVAL, "cannot cluster %lld elements", (long long)n);
	if (n == 0)
		return lt_err_set(err, LT_EINVAL, "nothing to cluster: the tensor is empty");
	return 0;
}

int lt_kmeans_init_centroids(const float *w, const float *mask, int64_t n, const lt_kmeans_opts *opt,
			     double *centroids, lt_err *err)
{
	int rc = check_opts(opt, n, err);
	if (rc)
		return rc;
	struct sorted *s;
	if ((rc = sort_values(w, mask, n, opt->skip_zeros, slices_for(n), &s, err)))
		return rc;
	init_centroids(s, opt, centroids);
	sorted_free(s);
	return 0;
}

int lt_kmeans_1d(const float *w, const float *mask, int64_t n, const lt_kmeans_opts *opt,
		 lt_scheme **scheme, float *out, lt_kmeans_stats *stats, lt_err *err)
{
	*scheme = NULL;
	int rc = check_opts(opt, n, err);
	if (rc)
		return rc;
	const int k = opt->k, slices = slices_for(n);
	int bits = 1;
	while ((1 << bits) < k)
		bits++;
	struct lloyd *L = NULL;
	struct assign *a = NULL;
	uint8_t *first = NULL;
	lt_scheme *sc = NULL;
	struct sorted *s;
	if ((rc = sort_values(w, mask, n, opt->skip_zeros, slices, &s, err)))
		return rc;
	if (!(L = lt_calloc(1, sizeof *L)) || !(a = lt_calloc(1, sizeof *a)) ||
	    !(first = lt_malloc(LOOKUP_BINS))) {
		rc = lt_err_set(err, LT_ENOMEM, "out of memory for k-means");
		goto done;
	}
	if (!(sc = lt_scheme_new(LT_SCHEME_CODEBOOK, bits, n, 1, k, err))) {
		rc = LT_ENOMEM; /* the arguments are valid */
		goto done;
	}
	L->s = s;
	L->k = k;
	init_centroids(s, opt, L->c);
	int iterations, converged;
	run_lloyd(L, opt->max_iter ? opt->max_iter : LT_KMEANS_MAX_ITER, &iterations, &converged);
	for (int j = 0; j < k; j++)
		sc->table[j] = (float)L->c[j];

	/* first[b]: thresholds whose top 16 bits are below b lie below every
	 * key with top bits b, so its code is at least their number */
	for (int b = 0, j = 0; b < LOOKUP_BINS; b++) {
		while (j < k - 1 && (L->thr[j] >> LOOKUP_SHIFT) < (uint32_t)b)
			j++;
		first[b] = (uint8_t)j;
	}
	a->w = w;
	a->mask = mask;
	a->out = out;
	a->codes = sc->codes;
	a->skip_zeros = opt->skip_zeros;
	a->n = n;
	a->block = (n + INERTIA_BLOCKS - 1) / INERTIA_BLOCKS;
	a->block = a->block < 4096 ? 4096 : a->block;
	a->blocks = (int)((n + a->block - 1) / a->block);
	a->slices = slices < a->blocks ? slices : a->blocks;
	a->thr = L->thr;
	a->table = sc->table;
	a->first = first;
	lt_parallel_run(a->slices, assign_slice, a);
	if (stats) {
		*stats = (lt_kmeans_stats){.included = s->n, .iterations = iterations, .converged = converged};
		for (int blk = 0; blk < a->blocks; blk++)
			stats->inertia += a->inertia[blk];
		for (int j = 0; j < k; j++)
			stats->empty += L->edge[j + 1] == L->edge[j];
	}
	*scheme = sc;
	sc = NULL;
done:
	lt_scheme_free(sc);
	lt_free(first);
	lt_free(a);
	lt_free(L);
	sorted_free(s);
	return rc;
}

void lt_kmeans_grad(const lt_scheme *s, const float *mask, const float *grad, double *table_grad)
{
	assert(s->kind == LT_SCHEME_CODEBOOK && s->groups == 1 && s->k <= LT_KMEANS_MAX_K);
	/* four sets of sums, so that runs of one code do not wait on each other */
	double acc[4][LT_KMEANS_MAX_K];
	const uint16_t *c = s->codes;
	const int64_t n = s->numel;
	int64_t i = 0;
	memset(acc, 0, sizeof acc);
	if (!mask) {
		for (; i + 4 <= n; i += 4)
			for (int j = 0; j < 4; j++)
				acc[j][c[i + j]] += grad[i + j];
	} else {
		for (; i + 4 <= n; i += 4)
			for (int j = 0; j < 4; j++)
				acc[j][c[i + j]] += mask[i + j] != 0.0f ? (double)grad[i + j] : 0.0;
	}
	for (; i < n; i++)
		acc[0][c[i]] += !mask || mask[i] != 0.0f ? (double)grad[i] : 0.0;
	for (int j = 0; j < s->k; j++)
		table_grad[j] = (acc[0][j] + acc[1][j]) + (acc[2][j] + acc[3][j]);
}

void lt_kmeans_apply(const lt_scheme *s, const float *mask, float *w)
{
	assert(s->kind == LT_SCHEME_CODEBOOK && s->groups == 1);
	const uint16_t *c = s->codes;
	const float *table = s->table;
	if (!mask) {
		for (int64_t i = 0; i < s->numel; i++)
			w[i] = table[c[i]];
	} else {
		for (int64_t i = 0; i < s->numel; i++)
			w[i] = mask[i] != 0.0f ? table[c[i]] : 0.0f;
	}
}
