#include "kern/prune.h"

#include <math.h>
#include <string.h>

#include "core/mem.h"
#include "core/rng.h"

int64_t lt_prune_count(int64_t n, double sparsity)
{
	/* nearbyint rounds half to even in the default rounding mode, like
	 * Python's round() in torch's _compute_nparams_toprune. */
	double k = nearbyint((double)n * sparsity);
	if (k < 0)
		return 0;
	return k > (double)n ? n : (int64_t)k;
}

static void swapf(float *a, float *b)
{
	float t = *a;
	*a = *b;
	*b = t;
}

/* The k-th smallest (0-based) of a[0..n), reordering a. Median-of-three
 * quickselect with a three-way partition, so runs of equal values (zeros of
 * an already pruned tensor) cost one pass. */
static float select_kth(float *a, int64_t n, int64_t k)
{
	int64_t lo = 0, hi = n - 1;
	while (lo < hi) {
		int64_t mid = lo + (hi - lo) / 2;
		if (a[mid] < a[lo]) swapf(&a[mid], &a[lo]);
		if (a[hi] < a[lo]) swapf(&a[hi], &a[lo]);
		if (a[hi] < a[mid]) swapf(&a[hi], &a[mid]);
		float pivot = a[mid];
		/* [lo, lt) < pivot, [lt, i) == pivot, (gt, hi] > pivot */
		int64_t lt = lo, i = lo, gt = hi;
		while (i <= gt) {
			if (a[i] < pivot)
				swapf(&a[lt++], &a[i++]);
			else if (a[i] > pivot)
				swapf(&a[i], &a[gt--]);
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

int lt_prune_magnitude_mask(const float *w, const float *old_mask, int64_t n,
			    int64_t k, float *mask, lt_err *err)
{
	if (k < 0 || k > n)
		return lt_err_set(err, LT_EINVAL, "cannot prune %lld of %lld values",
				  (long long)k, (long long)n);
	/* Already-masked weights rank below everything (-1 < |w|). */
	int64_t held = 0;
	for (int64_t i = 0; i < n; i++)
		held += old_mask && old_mask[i] == 0.0f;
	if (k <= held) {
		for (int64_t i = 0; i < n; i++)
			mask[i] = old_mask && old_mask[i] == 0.0f ? 0.0f : 1.0f;
		return 0;
	}
	float *mag = lt_malloc_array((size_t)n, sizeof *mag);
	if (!mag)
		return lt_err_set(err, LT_ENOMEM, "out of memory selecting weights");
	for (int64_t i = 0; i < n; i++)
		mag[i] = old_mask && old_mask[i] == 0.0f ? -1.0f : fabsf(w[i]);
	float thr = select_kth(mag, n, k - 1);
	lt_free(mag);
	/* Everything strictly below the threshold goes; then equal values in
	 * index order until k are gone. */
	int64_t below = 0;
	for (int64_t i = 0; i < n; i++) {
		float m = old_mask && old_mask[i] == 0.0f ? -1.0f : fabsf(w[i]);
		below += m < thr;
	}
	int64_t ties = k - below;
	for (int64_t i = 0; i < n; i++) {
		float m = old_mask && old_mask[i] == 0.0f ? -1.0f : fabsf(w[i]);
		if (m < thr) {
			mask[i] = 0.0f;
		} else if (m == thr && ties > 0) {
			mask[i] = 0.0f;
			ties--;
		} else {
			mask[i] = 1.0f;
		}
	}
	return 0;
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
	lt_tensor *out = lt_tensor_new(lt_tensor_ndim(t), lt_tensor_shape(t), err);
	lt_tensor *mask = lt_tensor_new(lt_tensor_ndim(t), lt_tensor_shape(t), err);
	if (!out || !mask)
		goto fail;
	float *m = lt_tensor_data_mut(mask, err), *o = lt_tensor_data_mut(out, err);
	int rc = 0;
	int64_t k = lt_prune_count(n, spec->sparsity);
	if (spec->method == LT_PRUNE_RANDOM)
		rc = lt_prune_random_mask(old_mask, n, k, spec->seed, m, err);
	else if (spec->by_threshold)
		lt_prune_threshold_mask(w, old_mask, n, spec->threshold, m);
	else
		rc = lt_prune_magnitude_mask(w, old_mask, n, k, m, err);
	if (rc)
		goto fail;
	for (int64_t i = 0; i < n; i++)
		o[i] = m[i] != 0.0f ? w[i] : 0.0f;
	/* Zeroing loses nothing in a half-precision dtype: keep the file's. */
	lt_dtype dt = lt_tensor_dtype(t);
	if (dt == LT_F16 || dt == LT_BF16) {
		lt_tensor *half = lt_tensor_cast(out, dt, err);
		if (!half)
			goto fail;
		lt_tensor_unref(out);
		out = half;
	}
	if (lt_tensor_set_mask(out, mask, err))
		goto fail;
	lt_tensor_unref(mask);
	return out;
fail:
	lt_tensor_unref(out);
	lt_tensor_unref(mask);
	return NULL;
}
