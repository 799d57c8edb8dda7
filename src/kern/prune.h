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

/* Magnitude selection in one tensor (lt_prune_magnitude_parts with one
 * part): mask[i] = 0 for the k elements of smallest |w| (elements already
 * 0 in old_mask, if given, are taken first), 1 for the rest; ties at the
 * threshold go to the lower index. O(n). LT_ENOMEM, LT_EINVAL. */
int lt_prune_magnitude_mask(const float *w, const float *old_mask, int64_t n,
			    int64_t k, float *mask, lt_err *err);

/* One tensor's share of a selection over several: its values, the mask it
 * already has (NULL: none), the mask to write, and optionally out to
 * receive the values with the pruned ones zeroed (NULL: not written). */
typedef struct lt_prune_part {
	const float *w;
	const float *old_mask;
	int64_t n;
	float *mask;
	float *out;
} lt_prune_part;

/* Magnitude selection over all parts as one ranking (global magnitude
 * pruning, as torch.nn.utils.prune.global_unstructured with L1 importance):
 * the k smallest |w| of all parts together are pruned, elements already
 * masked first, equal values to the earlier part and lower index. Radix
 * selection: three passes, on several threads for large inputs; no copy.
 * LT_EINVAL for k outside 0..total, LT_ENOMEM. */
int lt_prune_magnitude_parts(lt_prune_part *parts, int n_parts, int64_t k, lt_err *err);

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

/* Global magnitude pruning: the n tensors ranked together, so that the
 * given fraction of all their elements becomes zero (each layer ends with
 * its own sparsity). out[i] receives a new tensor for in[i] (as
 * lt_prune_tensor makes them); on failure every out[i] is NULL.
 * LT_EINVAL (sparsity outside [0, 1]), LT_ENOMEM. */
int lt_prune_global(lt_tensor *const *in, int n, double sparsity, lt_tensor **out, lt_err *err);

#endif
