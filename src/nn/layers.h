/* Layer kernels shared by inference (forward.c) and training (grad.c).
 * All work on b samples laid out one after another (NCHW per sample). */
#ifndef LT_LAYERS_H
#define LT_LAYERS_H

#include <stdint.h>

#include "core/graph.h"
#include "nn/sparse.h"

/* y[b, out] = x[b, in] W^T + bias (bias may be NULL). */
void lt_layers_linear(const lt_node *n, const float *w, const float *bias,
		      const float *x, float *y, int b);

/* The same through s, the weight's non-zeros (nnz of them), when the
 * sparse kernel pays for b samples (lt_sparse_pays); densely otherwise or
 * when s is NULL. scratch holds lt_sparse_scratch(s, b) floats. */
void lt_layers_linear_pruned(const lt_node *n, const float *w, const lt_sparse *s, int64_t nnz,
			     const float *bias, const float *x, float *y, int b, float *scratch);

/* Unfold b images into cols[K][b * OH * OW], K = C * KH * KW. */
void lt_layers_im2col(const lt_node *n, const int64_t *in_shape, const float *x,
		      float *cols, int b);

/* Convolution as im2col (into cols, kept for backward) + one GEMM (into
 * gemm, [OC][b * OH * OW]) + scatter to y in NCHW with the bias added. */
void lt_layers_conv2d(const lt_node *n, const float *w, const float *bias,
		      const int64_t *in_shape, const float *x, float *y, int b,
		      float *cols, float *gemm);

/* Max or average pooling (PyTorch semantics: NaN wins a max, the first of
 * equal maxima is the one taken, averages count padding). */
void lt_layers_pool(const lt_node *n, const int64_t *in_shape, const float *x, float *y, int b);

/* y = x * scale[c] + shift[c] per channel c (the leading item dimension). */
void lt_layers_affine(const float *scale, const float *shift, const int64_t *in_shape,
		      int in_ndim, const float *x, float *y, int b);

/* Elementwise ReLU, tanh or sigmoid over n values. */
void lt_layers_activation(lt_op op, const float *x, float *y, int64_t n);

/* Activation sparsity: y[k] with |y[k]| < t becomes an exact 0. */
void lt_layers_threshold(float *y, int64_t n, float t);

/* Fake quantization (torch.fake_quantize_per_tensor_affine): y[k] becomes
 * (clamp(zp + round(y[k] / scale), qmin, qmax) - zp) * scale, rounding
 * half to even. */
void lt_layers_fake_quant(float *y, int64_t n, float scale, int32_t zp, int32_t qmin, int32_t qmax);

/* Smallest and largest of y[0..n) folded into *lo, *hi. */
void lt_layers_range(const float *y, int64_t n, float *lo, float *hi);

/* Softmax over each sample's width values. */
void lt_layers_softmax(const float *x, float *y, int64_t width, int b);

#endif
