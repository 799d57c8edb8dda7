/* Weight statistics: summary numbers, percentiles and histograms of a
 * tensor's values, as the workbench shows them per layer. */
#ifndef LT_STATS_H
#define LT_STATS_H

#include <stdint.h>

#include "core/err.h"
#include "core/tensor.h"

typedef struct lt_stats {
	int64_t n;        /* values */
	int64_t zeros;    /* exactly zero (+0 or -0) */
	int64_t nonfinite;/* NaN or infinite; left out of every figure below */
	double min, max;
	double mean, std; /* population standard deviation (numpy's ddof=0) */
	double l1, l2;    /* sum |w|, sqrt(sum w^2) */
} lt_stats;

/* Summary of t's values (as f32). Accumulates in double. */
int lt_stats_compute(lt_tensor *t, lt_stats *out, lt_err *err);

/* Percentiles q[i] in [0, 100] of the finite values, with linear
 * interpolation between neighbours (numpy.percentile's default). Selection
 * runs in linear expected time on a copy; t is not changed. LT_EINVAL for
 * q outside [0, 100] or a tensor with no finite value. */
int lt_stats_percentiles(lt_tensor *t, const double *q, int nq, double *out, lt_err *err);

/* Histogram of the finite values over [lo, hi] in `bins` equal bins, the
 * last bin closed as numpy.histogram does; values outside are not counted.
 * With log_abs, the histogram is of log10|w| over the non-zero values
 * (lo and hi are then exponents). counts has `bins` entries. */
int lt_stats_histogram(lt_tensor *t, int bins, double lo, double hi, int log_abs,
		       int64_t *counts, lt_err *err);

#endif
