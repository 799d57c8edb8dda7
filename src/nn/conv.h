/* Convolution for inference. A plan picks, per layer, the method that suits
 * its shape and keeps what that method precomputes (transformed weights):
 *   im2col   unfold + one GEMM (layers.c); the general method;
 *   direct   taps accumulated in vector registers; for small reductions
 *            (first layers: 1-3 input channels), where a GEMM with K <= 75
 *            spends its time unfolding;
 *   winograd F(4x4, r x r) for stride-1 square kernels r = 2..5: 4x (3x3)
 *            to 6.25x (5x5) fewer multiplications, error ~4e-6 of the
 *            largest output. Each output mixes a whole 4 + r - 1 square of
 *            input, so a NaN or infinity in the input spreads to the 4x4
 *            tile around it (a plain convolution confines it to the
 *            outputs that read it).
 *   sparse   im2col + the sparse product of nn/sparse.h, for pruned
 *            weights where im2col would run: the automatic choice when
 *            the weights' density makes it pay (lt_sparse_pays); Winograd
 *            and direct layers keep their method.
 * Training keeps im2col because backward reuses the unfolded input. */
#ifndef LT_CONV_H
#define LT_CONV_H

#include <stdint.h>

#include "core/err.h"
#include "core/graph.h"

typedef enum {
	LT_CONV_AUTO,
	LT_CONV_IM2COL,
	LT_CONV_DIRECT,
	LT_CONV_WINOGRAD,
	LT_CONV_SPARSE,
} lt_conv_method;

typedef struct lt_conv lt_conv;

/* Plan conv node n reading in_shape [C, H, W], with weights w
 * [OC][C][KH][KW] and bias [OC] (may be NULL). w and bias are borrowed and
 * must outlive the plan; n too. LT_CONV_AUTO chooses; asking for a method
 * the shape does not allow fails with LT_EINVAL. NULL on failure. */
lt_conv *lt_conv_new(const lt_node *n, const int64_t *in_shape, const float *w,
		     const float *bias, lt_conv_method method, lt_err *err);
void lt_conv_free(lt_conv *c);

lt_conv_method lt_conv_method_of(const lt_conv *c);
/* "im2col", "direct", "winograd", "sparse" ("auto" for LT_CONV_AUTO). */
const char *lt_conv_method_name(lt_conv_method m);

/* Floats of scratch lt_conv_run needs for b samples. */
int64_t lt_conv_scratch(const lt_conv *c, int b);

/* y[b][OC][OH][OW] = conv(x[b][C][H][W]) + bias. scratch holds at least
 * lt_conv_scratch(c, b) floats. Several threads may run one plan at once,
 * each with its own scratch. */
void lt_conv_run(const lt_conv *c, const float *x, float *y, int b, float *scratch);

#endif
