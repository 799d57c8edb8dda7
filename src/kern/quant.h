/* Uniform quantization kernels: integer (affine, symmetric), fixed-point
 * Qm.n, and half-precision (fp16, bf16) coding of f32 weights.
 *
 * Every call returns an lt_scheme (core/scheme.h) holding each element's
 * code, and writes the values those codes decode to. The values are those
 * lt_scheme_value gives, bit for bit, so a packed file decodes to exactly
 * what the model computed with.
 *
 * Integer ranges. For b bits:
 *   affine     unsigned [0, 2^b - 1]           (torch.quint8 for b = 8)
 *   symmetric  signed   [-2^(b-1), 2^(b-1) - 1] (torch.qint8 for b = 8),
 *              zero point always 0
 * Scale and zero point follow torch.ao.quantization's MinMaxObserver and
 * PerChannelMinMaxObserver (PyTorch 1.13) with quant_min/quant_max set to
 * those ranges, computed in float32 as they are there:
 *   lo = min(min(x), 0), hi = max(max(x), 0)
 *   affine:    scale = max((hi - lo) / (qmax - qmin), eps)
 *              zero_point = clamp(qmin - round(lo / scale), qmin, qmax)
 *   symmetric: scale = max(max(-lo, hi) / ((qmax - qmin) / 2), eps)
 * with eps = FLT_EPSILON (torch.finfo(float32).eps) and round half to
 * even. Note that symmetric with the signed range cannot reach +max(|x|)
 * exactly: the top level is (2^(b-1) - 1) * scale (as in torch).
 * Quantizing follows torch.fake_quantize_per_{tensor,channel}_affine:
 *   q = clamp(zero_point + round(x * (1 / scale)), qmin, qmax)
 *   value = (q - zero_point) * scale
 * with round half to even (nearest) or floor(x * (1 / scale) + u), u
 * uniform in [0, 1) (stochastic: always the level just below or just
 * above, the upper one with probability equal to the fraction to within
 * 2^-24, so E[value] = x inside the range).
 * The scheme stores code = q - qmin.
 *
 * Fixed point Qm.n: a sign bit, m integer and n fraction bits (1 + m + n
 * bits, 2..16): q = clamp(round(x * 2^n), -2^(m+n), 2^(m+n) - 1), scale
 * 2^-n, zero point 0; the same affine scheme.
 *
 * fp16 / bf16: the code is the IEEE binary16 / bfloat16 bit pattern, round
 * to nearest even (as torch's .half() / .bfloat16()). A finite value too
 * large for the format saturates to the largest finite one (+-65504 for
 * fp16, +-3.3895e38 for bf16), counted in lt_quant_stats.saturated, where
 * torch would give +-inf.
 *
 * Masks: where mask (may be NULL) is 0 the element is left out of the
 * range statistics and gets code 0 and value +0, so pruned weights stay
 * exactly zero. A group with no element left in it is treated as all zeros.
 *
 * Only finite values can be quantized: an unmasked NaN or +-inf in the
 * input is refused, naming the element. */
#ifndef LT_QUANT_H
#define LT_QUANT_H

#include <stdint.h>

#include "core/err.h"
#include "core/scheme.h"

typedef enum {
	LT_QUANT_AFFINE,    /* asymmetric, unsigned range, bits 2..8 */
	LT_QUANT_SYMMETRIC, /* signed range, zero point 0, bits 2..8 */
	LT_QUANT_FIXED,     /* Qm.n */
	LT_QUANT_F16,       /* IEEE half */
	LT_QUANT_BF16,      /* bfloat16 */
} lt_quant_mode;

typedef enum {
	LT_QUANT_NEAREST,    /* round half to even */
	LT_QUANT_STOCHASTIC, /* floor(y + u): affine, symmetric and fixed only */
} lt_quant_rounding;

typedef struct lt_quant_spec {
	lt_quant_mode mode;
	int bits;        /* affine, symmetric: 2..8. Fixed: 0 or 1 + m + n.
			  * fp16, bf16: 0 or 16 */
	int per_channel; /* affine, symmetric: one scale and zero point per
			  * slice along dim 0 (per output channel) */
	lt_quant_rounding rounding;
	uint64_t seed;   /* stochastic: element i draws u from
			  * lt_hash_uniform(seed, i, 0), so the codes depend
			  * on the seed only, not on threads or timing */
	int m, n;        /* fixed: integer and fraction bits (m, n >= 0) */
} lt_quant_spec;

/* What quantization did, over the unmasked elements. */
typedef struct lt_quant_stats {
	int64_t count;      /* unmasked elements */
	int64_t saturated;  /* clamped to the end of the range (or, for fp16
			     * and bf16, to the largest finite value). In
			     * symmetric mode the largest positive value
			     * usually is: it lies at qmax + 1/2 levels */
	int64_t zeroed;     /* non-zero inputs whose value became 0 */
	double max_abs_err; /* max |x - value| */
	double mse;         /* mean (x - value)^2; 0 when count is 0 */
	double sqnr_db;     /* 10 log10(sum x^2 / sum (x - value)^2): +inf
			     * when the error is 0 (all values exact) */
} lt_quant_stats;

/* The integer range [*qmin, *qmax] spec uses (see above; for fp16 and
 * bf16, [0, 65535], the bit patterns). 0, or LT_EINVAL with err naming
 * what is wrong with spec (bits out of range, Qm.n too wide, a mode or
 * rounding that does not exist, per-channel or stochastic rounding where
 * they have no meaning). */
int lt_quant_levels(const lt_quant_spec *spec, int32_t *qmin, int32_t *qmax, lt_err *err);

/* Scale and zero point for a range [lo, hi] (lo <= 0 <= hi; a range not
 * holding 0 is widened to hold it) and the integer range [qmin, qmax],
 * exactly as MinMaxObserver's calculate_qparams computes them: affine when
 * symmetric is 0, else symmetric (zero point 0). lo and hi must be
 * finite; *scale is +inf when hi - lo overflows float. */
void lt_quant_qparams(float lo, float hi, int32_t qmin, int32_t qmax, int symmetric,
		      float *scale, int32_t *zero_point);

/* Quantize w, an f32 tensor of ndim dimensions (0..LT_MAX_DIMS) and the
 * given shape, as spec says. mask (same element count, may be NULL) keeps
 * elements where it is 0 at code 0 and value 0, out of the range. Writes
 * the decoded value of every element to out (numel floats, overlapping
 * neither w nor mask) and, when st is not NULL, the error summary (as
 * lt_quant_error gives it, with saturated set). Per-channel groups are the
 * slices along dim 0 (groups = shape[0], or 1 if shape[0] is 0); otherwise
 * there is one group. w, mask and spec are only read during the call.
 * Returns a new scheme the caller owns (lt_scheme_free), or NULL with err:
 * LT_EINVAL for a bad spec (see lt_quant_levels), per-channel on a 0-d
 * tensor, a negative dimension, or an unmasked NaN/inf (the message names
 * the element); LT_ERANGE for too many dimensions or elements, or a range
 * too wide for a float scale; LT_ENOMEM. On failure out may have been partly written. */
lt_scheme *lt_quant_tensor(const float *w, const float *mask, int ndim, const int64_t *shape,
			   const lt_quant_spec *spec, float *out, lt_quant_stats *st, lt_err *err);

/* Error summary of q against w over the n elements where mask (may be
 * NULL) is not 0, into *st (every field; saturated left 0). Sums in
 * double. Works for any pair of arrays (k-means codebooks too). */
void lt_quant_error(const float *w, const float *q, const float *mask, int64_t n, lt_quant_stats *st);

#endif
