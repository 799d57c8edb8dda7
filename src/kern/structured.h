/* Structured pruning: whole units (neurons, filters, channels) chosen by
 * norm, either zeroed through a mask or cut out of the model ("thinning")
 * so that it becomes a smaller dense model with fewer MACs; and N:M
 * sparsity masks (at most N non-zeros in every group of M weights).
 *
 * Units of a weight tensor along dim 0 are its rows (Linear [out, in]) or
 * filters (Conv [out, in, kh, kw]); along dim 1 its input columns or input
 * channels, as dim= in torch.nn.utils.prune.ln_structured. Amounts are
 * fractions of the units, rounded as lt_prune_count rounds them. */
#ifndef LT_STRUCTURED_H
#define LT_STRUCTURED_H

#include <stdint.h>

#include "core/err.h"
#include "core/model.h"
#include "core/tensor.h"

/* norms[u] = the L1 (p = 1) or L2 (p = 2) norm of unit u of w along dim
 * (0 or 1), over every other dimension; norms holds shape[dim] floats.
 * Sums run in double. w needs at least 2 dimensions. LT_EINVAL (bad dim,
 * p or tensor), LT_ENOMEM (converting w to f32). */
int lt_structured_norms(lt_tensor *w, int dim, int p, float *norms, lt_err *err);

/* The n - k units to keep when the k of smallest norm go, in increasing
 * index order, into keep. Ties at the threshold remove the lower index
 * first (as lt_prune_magnitude_mask does). O(n) expected. LT_EINVAL (k
 * outside 0..n), LT_ENOMEM. */
int lt_structured_keep(const float *norms, int64_t n, int64_t k, int64_t *keep,
		       lt_err *err);

/* Mask over the whole of w (numel floats): 0 over the k units of smallest
 * norm along dim, 1 elsewhere; with no mask on w this is torch's
 * ln_structured mask. Where w already carries a mask its zeros stay zero
 * (masks only grow); norms are taken from w's values, which are zero there.
 * Errors as lt_structured_norms, and LT_EINVAL for k outside 0..units. */
int lt_structured_mask(lt_tensor *w, int dim, int p, int64_t k, float *mask,
		       lt_err *err);

/* "Zero but do not thin": a new tensor holding w's values with the units
 * lt_structured_mask removes for amount (fraction of the units, in [0, 1])
 * set to zero, carrying the combined mask. F16/BF16 weights keep their
 * dtype. w is not changed. NULL with err (LT_EINVAL, LT_ENOMEM). */
lt_tensor *lt_structured_prune_tensor(lt_tensor *w, int dim, int p, double amount,
				      lt_err *err);

/* Thinning. A new model (m is not changed; untouched tensors are shared)
 * in which the linear or conv2d layer named layer keeps only the units
 * listed in keep (n_keep strictly increasing indices):
 *   dim 0: its outputs (rows, filters and bias entries). Everything
 *     downstream shrinks with them: batchnorm features on the path, then
 *     the input columns of the next linear or the input channels of the
 *     next conv2d. Activations, pooling and dropout pass channels through;
 *     a flatten of [C, H, W] maps channel c to input features
 *     c*H*W .. c*H*W + H*W - 1 of the next linear.
 *   dim 1: its inputs (columns or input channels). The layer upstream
 *     that produces them loses the matching outputs, exactly as with dim
 *     0 on that layer; after a flatten the kept columns must be whole
 *     channel blocks.
 * Masks of sliced tensors are sliced alike; F16/BF16 tensors keep their
 * dtype. The graph's attributes, shapes and MACs are recomputed and the
 * LT_ARCH_META_KEY metadata is rewritten to describe the new graph, so a
 * saved file reopens with the new shapes. NULL with err:
 *   LT_ENOTSUP: no graph; a value on the path feeds several layers or is
 *     unused; a softmax on the path; the units are the model's outputs
 *     (the classes); the inputs come straight from the model input; a
 *     tensor on the path is shared by several layers;
 *   LT_EINVAL: no such layer, not linear/conv2d, dim not 0 or 1, keep
 *     empty, unsorted or out of range, columns after a flatten that split
 *     a channel;
 *   LT_ENOMEM. */
lt_model *lt_structured_thin(const lt_model *m, const char *layer, int dim,
			     const int64_t *keep, int64_t n_keep, lt_err *err);

/* N:M mask of a weight of shape [out, in] (ndim 2) or [out, in, kh, kw]
 * (ndim 4). Groups are M consecutive inputs: in each row of a linear, and
 * for a conv M consecutive input channels at each (out, ky, kx), as
 * NVIDIA's ASP groups them. Each group keeps its N largest |w| (ties keep
 * the lower index); weights already 0 in old_mask (may be NULL) rank below
 * every other and stay 0, so the mask only grows and every group ends with
 * at most N non-zeros. in must be a multiple of M: a shorter tail group is
 * not an N:M pattern sparse hardware can run, so it is refused rather than
 * approximated. Needs 1 <= N < M. LT_EINVAL. O(numel * M), no allocation. */
int lt_structured_nm_mask(const float *w, const float *old_mask, int ndim,
			  const int64_t *shape, int n, int m, float *mask, lt_err *err);

/* A new tensor: w's values zeroed by lt_structured_nm_mask combined with
 * w's own mask, carrying that mask. F16/BF16 weights keep their dtype. w
 * is not changed. NULL with err (LT_EINVAL, LT_ENOMEM). */
lt_tensor *lt_structured_nm_tensor(lt_tensor *w, int n, int m, lt_err *err);

#endif
