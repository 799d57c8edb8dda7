/* Weight sharing by 1-D k-means (Deep Compression, Han et al. 2016): the
 * values of a tensor are clustered into k shared values (a codebook of 2 to
 * 256 entries, 1 to 8 bits per weight) and every weight becomes the index of
 * its cluster.
 *
 * The result is what a plain Lloyd loop in double reaches from the same
 * initial centroids (the means can differ in their last bits, as sums in
 * another order do): assign every value to its nearest centroid (a value
 * exactly between two goes to the lower one, as an argmin picks the first),
 * move every centroid to the mean of its values, and stop when a step
 * changes nothing. In one dimension the clusters are runs of the sorted
 * values, so the values are sorted once and summed into prefix sums; a step
 * is then k searches for the midpoints between neighbouring centroids and k
 * divisions, whatever the number of values.
 *
 * Conventions:
 * - Centroids are kept sorted ascending; codes and the table follow that
 *   order.
 * - A cluster left empty keeps its centroid (it may capture values again in
 *   a later step). Only an empty cluster can fall out of order; the
 *   centroids are then sorted again before the next step. Of equal
 *   centroids the first takes the values (as an argmin), the others stay
 *   empty.
 * - Means are computed in double from the prefix sums and stored in the
 *   table as the nearest f32. Codes are nearest in the double centroids,
 *   as |x - c| computed in double decides: a value on a midpoint, or so
 *   near that the two distances round equal, goes where a plain Lloyd loop
 *   in double sends it (the lower cluster).
 * - "Excluded" elements (mask 0, or exactly +-0 with skip_zeros) take no
 *   part: they have code 0 (which means nothing, as lt_scheme says) and the
 *   shared value 0. */
#ifndef LT_KMEANS_H
#define LT_KMEANS_H

#include <stdint.h>

#include "core/err.h"
#include "core/scheme.h"

#define LT_KMEANS_MIN_K 2
#define LT_KMEANS_MAX_K 256
/* Steps allowed when lt_kmeans_opts.max_iter is 0. Exact convergence can
 * take thousands of steps (1 M normal values from linear initialisation:
 * about 2,500 into 64 clusters, 5,000 into 256); each costs microseconds. */
#define LT_KMEANS_MAX_ITER 100000

typedef enum {
	/* k centroids evenly spaced from the smallest to the largest included
	 * value: numpy.linspace(min, max, k). */
	LT_KMEANS_LINEAR,
	/* Han's density initialisation (the y axis of the CDF spaced evenly):
	 * the quantiles of the included values at numpy.linspace(0, 1, k), with
	 * linear interpolation between the sorted values as numpy.quantile's
	 * default ("linear") method, in double: position h = (n-1) q, value
	 * v[floor h] + t (v[floor h + 1] - v[floor h]) with t = h - floor h
	 * (computed as v[floor h + 1] - (1-t) (...) for t >= 0.5, as numpy). */
	LT_KMEANS_DENSITY,
	/* k distinct values of the included elements, drawn with lt_rng from
	 * the seed: each draw picks one element uniformly among those whose
	 * value is not yet taken (so frequent values are likelier, as random
	 * observations are). With fewer than k distinct values every one is
	 * taken and the remaining entries repeat the largest value (they stay
	 * empty clusters). */
	LT_KMEANS_RANDOM,
} lt_kmeans_init;

typedef struct lt_kmeans_opts {
	int k;               /* clusters, LT_KMEANS_MIN_K..LT_KMEANS_MAX_K */
	lt_kmeans_init init;
	int max_iter;        /* most Lloyd steps; 0 means LT_KMEANS_MAX_ITER */
	int skip_zeros;      /* exclude elements exactly +-0 (pruned weights in a
			      * file without mask). Nothing records them: to
			      * fine-tune, give lt_kmeans_grad and lt_kmeans_apply
			      * a mask that is 0 where w is 0. */
	uint64_t seed;       /* LT_KMEANS_RANDOM */
} lt_kmeans_opts;

typedef struct lt_kmeans_stats {
	int64_t included;    /* elements clustered */
	int iterations;      /* Lloyd steps made (the last changed nothing when
			      * converged) */
	int converged;       /* 1: a step changed nothing; 0: max_iter ran out,
			      * and codes are nearest to the last centroids */
	int empty;           /* clusters without an element at the end */
	double inertia;      /* sum over included elements of (w - shared)^2,
			      * with the f32 shared values, accumulated in double
			      * in a fixed order (the same on any thread count) */
} lt_kmeans_stats;

/* Cluster the n values w (f32) into opt->k clusters. mask (n entries, may
 * be NULL) excludes elements where it is 0; so does opt->skip_zeros for
 * elements exactly 0.
 *
 * *scheme receives a new LT_SCHEME_CODEBOOK scheme (one group, bits =
 * ceil(log2 k), k table entries sorted ascending, a code for every
 * element, 0 for excluded ones); the caller frees it with lt_scheme_free.
 * out (n floats, may be NULL, may be w itself) receives the shared values:
 * table[code] for included elements, bit for bit what lt_scheme_value
 * gives, and 0.0f for excluded ones. stats (may be NULL) receives the
 * figures above.
 *
 * Runs on a few threads for large n; the result does not depend on how
 * many. Returns 0, or with err, *scheme NULL and out not written:
 * LT_EINVAL for k outside 2..256, a negative max_iter, an unknown init, no
 * element left to cluster ("nothing to cluster") or a NaN or infinite
 * included value (the message names the first such index); LT_ERANGE for
 * 2^32 or more included elements; LT_ENOMEM. */
int lt_kmeans_1d(const float *w, const float *mask, int64_t n, const lt_kmeans_opts *opt,
		 lt_scheme **scheme, float *out, lt_kmeans_stats *stats, lt_err *err);

/* The initial centroids lt_kmeans_1d starts from for the same arguments:
 * opt->k values in double, sorted ascending, into centroids. Sorts the
 * values like lt_kmeans_1d does. The same errors. */
int lt_kmeans_init_centroids(const float *w, const float *mask, int64_t n, const lt_kmeans_opts *opt,
			     double *centroids, lt_err *err);

/* Centroid fine-tuning (Deep Compression, section 3.1): the gradient of a
 * shared value is the sum of the gradients of the weights that share it.
 * grad holds d loss / d w for s->numel weights; table_grad (s->k entries,
 * written) receives per code the sum over elements with mask != 0 (mask may
 * be NULL) of grad, accumulated in double. s must be a one-group codebook
 * scheme (as lt_kmeans_1d makes). Borrows everything; cannot fail. */
void lt_kmeans_grad(const lt_scheme *s, const float *mask, const float *grad, double *table_grad);

/* Rewrite the weights from the table after it changed: w[i] =
 * lt_scheme_value(s, 0, s->codes[i]) where mask (may be NULL) is not 0,
 * else 0.0f. s->numel entries of w are written. Cannot fail. */
void lt_kmeans_apply(const lt_scheme *s, const float *mask, float *w);

#endif
