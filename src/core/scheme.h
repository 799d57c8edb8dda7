/* How a tensor's values are coded after quantization or weight sharing.
 *
 * Computation always reads f32 values; a scheme kept beside them says which
 * small integer code each element came from and how a code turns back into
 * its value. Size accounting and the packed format read the codes, so the
 * size the workbench reports is the size of what it writes, and a packed
 * file decodes to exactly the values the model computed with.
 *
 * Every kind decodes through lt_scheme_value, so the quantizer, the
 * k-means clusterer and the packed-format reader cannot disagree on a
 * value. */
#ifndef LT_SCHEME_H
#define LT_SCHEME_H

#include <stdint.h>

#include "core/err.h"
#include "core/tensor.h"

typedef enum {
	/* q = code + qmin; value = (float)(q - zero_point[g]) * scale[g].
	 * Uniform affine (zero_point anywhere in [qmin, qmax]), symmetric
	 * (zero_point 0) and fixed-point Qm.n (scale 2^-n, zero_point 0). */
	LT_SCHEME_AFFINE,
	/* value = table[g * k + code]: k-means weight sharing (one group). */
	LT_SCHEME_CODEBOOK,
	/* code = the IEEE half or bfloat16 bit pattern (bits 16). */
	LT_SCHEME_F16,
	LT_SCHEME_BF16,
} lt_scheme_kind;

typedef struct lt_scheme {
	lt_scheme_kind kind;
	int bits;          /* code width, 1..16 */
	int64_t numel;     /* elements (= the tensor's) */
	int64_t groups;    /* 1 (per tensor) or shape[0] (per output channel) */
	int64_t group_len; /* numel / groups: elements are grouped by row-major order */
	int32_t qmin;      /* affine: the smallest integer level */
	float *scale;      /* affine: groups entries */
	int32_t *zero_point; /* affine: groups entries */
	int k;             /* codebook: entries per group */
	float *table;      /* codebook: groups * k entries */
	uint16_t *codes;   /* numel codes; where the tensor's mask is 0 the code
			    * is 0 and means nothing (the value is 0) */
} lt_scheme;

/* A scheme with its arrays allocated (codes zeroed; scale, zero_point and
 * table sized for the kind, the rest NULL). groups must divide numel; k is
 * used by LT_SCHEME_CODEBOOK only (1 <= k <= 2^bits). NULL with err on bad
 * sizes or no memory. */
lt_scheme *lt_scheme_new(lt_scheme_kind kind, int bits, int64_t numel, int64_t groups, int k,
			 lt_err *err);
/* A deep copy, or NULL with err. */
lt_scheme *lt_scheme_clone(const lt_scheme *s, lt_err *err);
/* NULL is a no-op. */
void lt_scheme_free(lt_scheme *s);

/* Decode every element into out (numel floats); where mask (numel, may be
 * NULL) is 0 the value is 0. */
void lt_scheme_decode(const lt_scheme *s, const float *mask, float *out);

/* The value code c decodes to in group g. */
static inline float lt_scheme_value(const lt_scheme *s, int64_t g, uint16_t c)
{
	switch (s->kind) {
	case LT_SCHEME_AFFINE: return (float)((int32_t)c + s->qmin - s->zero_point[g]) * s->scale[g];
	case LT_SCHEME_CODEBOOK: return s->table[g * s->k + c];
	case LT_SCHEME_F16: return lt_f16_to_f32(c);
	case LT_SCHEME_BF16: return lt_bf16_to_f32(c);
	}
	return 0.0f;
}

#endif
