/* Pruning kernels: choose which weights become zero and return a new tensor
 * holding the pruned values and the mask that keeps them at zero.
 *
 * Sparsity is always the fraction of the WHOLE tensor that ends up zero
 * (not a fraction of what is left, as repeated torch.nn.utils.prune calls
 * compute), so a schedule can ask for 50 %, then 75 %, then 90 %. Weights
 * an existing mask already holds at zero stay pruned: a mask only grows. */
#ifndef LT_PRUNE_H
#define LT_PRUNE_H

#include <stdint.h>

#include "core/err.h"
#include "core/tensor.h"

/* Number of elements to prune for a sparsity in [0, 1] out of n: n *
 * sparsity rounded half to even, as torch.nn.utils.prune rounds amounts. */
int64_t lt_prune_count(int64_t n, double sparsity);

/* Magnitude selection: mask[i] = 0 for the k elements of smallest |w|
 * (elements already 0 in old_mask, if given, are taken first), 1 for the
 * rest. Ties at the threshold go to the lower index, so the result is
 * deterministic. O(n) expected (quickselect on a copy of |w|).
 * LT_ENOMEM, LT_EINVAL (k outside 0..n). */
int lt_prune_magnitude_mask(const float *w, const float *old_mask, int64_t n,
			    int64_t k, float *mask, lt_err *err);

/* mask[i] = 0 where |w[i]| < threshold or old_mask[i] == 0. */
void lt_prune_threshold_mask(const float *w, const float *old_mask, int64_t n,
			     float threshold, float *mask);

/* Random selection of k elements (old_mask zeros first), deterministic in
 * seed. LT_ENOMEM, LT_EINVAL. */
int lt_prune_random_mask(const float *old_mask, int64_t n, int64_t k,
			 uint64_t seed, float *mask, lt_err *err);

typedef enum { LT_PRUNE_MAGNITUDE, LT_PRUNE_RANDOM } lt_prune_method;

typedef struct lt_prune_spec {
	lt_prune_method method;
	int by_threshold;   /* magnitude only: prune |w| < threshold */
	double sparsity;    /* otherwise: fraction of the tensor to zero */
	float threshold;
	uint64_t seed;      /* random */
} lt_prune_spec;

/* A new tensor: t's values with the selected elements zeroed, carrying the
 * combined mask. t is not changed. NULL with err (LT_EINVAL for a sparsity
 * outside [0, 1] or a negative threshold, LT_ENOMEM). */
lt_tensor *lt_prune_tensor(lt_tensor *t, const lt_prune_spec *spec, lt_err *err);

#endif
