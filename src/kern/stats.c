#include "kern/stats.h"

#include <math.h>
#include <string.h>

#include "core/mem.h"

int lt_stats_compute(lt_tensor *t, lt_stats *out, lt_err *err)
{
	const float *v = lt_tensor_data(t, err);
	if (!v)
		return err ? err->code : LT_ENOMEM;
	int64_t n = lt_tensor_numel(t), finite = 0;
	lt_stats s = {.n = n, .min = INFINITY, .max = -INFINITY};
	/* Welford's update keeps the variance accurate for large tensors. */
	double mean = 0, m2 = 0;
	for (int64_t i = 0; i < n; i++) {
		double x = v[i];
		if (!isfinite(x)) {
			s.nonfinite++;
			continue;
		}
		s.zeros += x == 0.0;
		s.min = x < s.min ? x : s.min;
		s.max = x > s.max ? x : s.max;
		s.l1 += fabs(x);
		s.l2 += x * x;
		finite++;
		double d = x - mean;
		mean += d / (double)finite;
		m2 += d * (x - mean);
	}
	s.l2 = sqrt(s.l2);
	if (finite) {
		s.mean = mean;
		s.std = sqrt(m2 / (double)finite);
	} else {
		s.min = s.max = NAN;
	}
	*out = s;
	return 0;
}

/* Put the k-th smallest of a[0..n) at a[k], smaller ones before it
 * (Hoare partitioning around a median of three; expected linear time). */
static void select_kth(float *a, int64_t n, int64_t k)
{
	int64_t lo = 0, hi = n - 1;
	while (lo < hi) {
		int64_t mid = lo + (hi - lo) / 2;
		float x = a[lo], y = a[mid], z = a[hi];
		float pivot = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
		int64_t i = lo, j = hi;
		while (i <= j) {
			while (a[i] < pivot)
				i++;
			while (a[j] > pivot)
				j--;
			if (i <= j) {
				float t = a[i];
				a[i++] = a[j];
				a[j--] = t;
			}
		}
		if (k <= j)
			hi = j;
		else if (k >= i)
			lo = i;
		else
			return;
	}
}

/* Smallest value of a[from..n). */
static float min_from(const float *a, int64_t from, int64_t n)
{
	float m = a[from];
	for (int64_t i = from + 1; i < n; i++)
		m = a[i] < m ? a[i] : m;
	return m;
}

int lt_stats_percentiles(lt_tensor *t, const double *q, int nq, double *out, lt_err *err)
{
	for (int i = 0; i < nq; i++)
		if (!(q[i] >= 0 && q[i] <= 100))
			return lt_err_set(err, LT_EINVAL, "percentiles must be between 0 and 100 (got %g)", q[i]);
	const float *v = lt_tensor_data(t, err);
	if (!v)
		return err ? err->code : LT_ENOMEM;
	int64_t n = lt_tensor_numel(t), m = 0;
	float *a = lt_malloc_array((size_t)(n ? n : 1), sizeof *a);
	if (!a)
		return lt_err_set(err, LT_ENOMEM, "out of memory for %lld values", (long long)n);
	for (int64_t i = 0; i < n; i++)
		if (isfinite(v[i]))
			a[m++] = v[i];
	if (m == 0) {
		lt_free(a);
		return lt_err_set(err, LT_EINVAL, "the tensor has no finite value");
	}
	for (int i = 0; i < nq; i++) {
		double h = (double)(m - 1) * q[i] / 100.0;
		int64_t k = (int64_t)floor(h);
		double frac = h - (double)k;
		select_kth(a, m, k);
		double lo = a[k], hi = k + 1 < m ? min_from(a, k + 1, m) : lo;
		out[i] = lo + frac * (hi - lo);
	}
	lt_free(a);
	return 0;
}

int lt_stats_histogram(lt_tensor *t, int bins, double lo, double hi, int log_abs,
		       int64_t *counts, lt_err *err)
{
	if (bins < 1 || !(hi > lo) || !isfinite(lo) || !isfinite(hi))
		return lt_err_set(err, LT_EINVAL, "a histogram needs at least one bin and a range lo < hi");
	const float *v = lt_tensor_data(t, err);
	if (!v)
		return err ? err->code : LT_ENOMEM;
	memset(counts, 0, (size_t)bins * sizeof *counts);
	/* numpy's rule: the bin from the scaled position, then moved by one
	 * where rounding put a value on the wrong side of an edge; edges are
	 * lo + j * step, the last exactly hi (numpy.linspace). */
	double step = (hi - lo) / bins, scale = bins / (hi - lo);
	for (int64_t i = 0, n = lt_tensor_numel(t); i < n; i++) {
		double x = v[i];
		if (!isfinite(x) || (log_abs && x == 0.0))
			continue;
		if (log_abs)
			x = log10(fabs(x));
		if (x < lo || x > hi)
			continue;
		int64_t b = (int64_t)((x - lo) * scale);
		if (b >= bins)
			b = bins - 1; /* hi itself falls in the last bin */
		if (b > 0 && x < lo + (double)b * step)
			b--;
		else if (b < bins - 1 && x >= lo + (double)(b + 1) * step)
			b++;
		counts[b]++;
	}
	return 0;
}
