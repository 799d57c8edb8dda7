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
 * k-th smallest key is found by radix selection, two histogram passes of
 * 16 bits each, and a third pass writes the masks: keys below it are
 * pruned, then equal keys in index order until k are gone. Passes run on
 * a few threads over slices of the concatenated elements. */

static inline uint32_t rank_key(const float *w, const float *old_mask, int64_t i)
{
	if (old_mask && old_mask[i] == 0.0f)
		return 0;
	uint32_t bits;
	memcpy(&bits, &w[i], sizeof bits);
	return (bits & 0x7FFFFFFFu) + 1;
}

#define BINS 65536
#define MIN_SLICE (1 << 20) /* elements per thread below which one thread does it all */
#define MAX_SLICES 16

struct select_ctx {
	lt_prune_part *parts;
	int n_parts;
	int64_t total;
	int slices;
	int64_t *hist;              /* [slices][BINS] */
	uint32_t top;               /* pass 2: the high half of the k-th key */
	uint32_t key;               /* pass 3: the k-th key */
	int64_t ties_left[MAX_SLICES]; /* pass 3: equal keys each slice prunes */
	int pass;
};

/* Calls on every element of slice s: (part, index, key). */
#define FOR_SLICE(c, s, body)                                                         \
	do {                                                                          \
		int64_t lo_ = (c)->total * (s) / (c)->slices;                         \
		int64_t hi_ = (c)->total * ((s) + 1) / (c)->slices, base_ = 0;        \
		for (int p_ = 0; p_ < (c)->n_parts && base_ < hi_; p_++) {            \
			lt_prune_part *part = &(c)->parts[p_];                        \
			int64_t from_ = lo_ > base_ ? lo_ - base_ : 0;                \
			int64_t to_ = hi_ - base_ < part->n ? hi_ - base_ : part->n;  \
			for (int64_t i = from_; i < to_; i++) {                       \
				uint32_t key = rank_key(part->w, part->old_mask, i); \
				body;                                                 \
			}                                                             \
			base_ += part->n;                                             \
		}                                                                     \
	} while (0)

static void select_pass(void *arg, int s)
{
	struct select_ctx *c = arg;
	int64_t *h = c->hist + (size_t)s * BINS;
	if (c->pass == 1) {
		memset(h, 0, BINS * sizeof *h);
		FOR_SLICE(c, s, h[key >> 16]++);
	} else if (c->pass == 2) {
		memset(h, 0, BINS * sizeof *h);
		uint32_t top = c->top;
		FOR_SLICE(c, s, if (key >> 16 == top) h[key & 0xFFFF]++);
	} else {
		uint32_t kth = c->key;
		int64_t ties = c->ties_left[s];
		FOR_SLICE(c, s, {
			int pruned = key < kth || (key == kth && ties > 0);
			ties -= key == kth && pruned;
			part->mask[i] = pruned ? 0.0f : 1.0f;
			if (part->out)
				part->out[i] = pruned ? 0.0f : part->w[i];
		});
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
	if (k == c.total) {
		c.key = UINT32_MAX; /* every key is below: all pruned (NaN too) */
	} else {
		c.hist = lt_malloc_array((size_t)c.slices * BINS, sizeof *c.hist);
		if (!c.hist)
			return lt_err_set(err, LT_ENOMEM, "out of memory selecting weights");
		int64_t below_top, below_low;
		c.pass = 1;
		lt_parallel_run(c.slices, select_pass, &c);
		c.top = find_bin(&c, k, &below_top);
		c.pass = 2;
		lt_parallel_run(c.slices, select_pass, &c);
		uint32_t low = find_bin(&c, k - below_top, &below_low);
		c.key = c.top << 16 | low;
		/* The k - below equal keys to prune, handed out in slice order. */
		int64_t ties = k - below_top - below_low;
		for (int s = 0; s < c.slices; s++) {
			int64_t here = c.hist[(size_t)s * BINS + low];
			c.ties_left[s] = ties < here ? ties : here;
			ties -= c.ties_left[s];
		}
		lt_free(c.hist);
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
	*out = lt_tensor_new(lt_tensor_ndim(t), lt_tensor_shape(t), err);
	*mask = *out ? lt_tensor_new(lt_tensor_ndim(t), lt_tensor_shape(t), err) : NULL;
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
