#include "nn/layers.h"

#include <math.h>
#include <string.h>

#include "kern/blas.h"
#include "nn/simd.h"

void lt_layers_linear(const lt_node *n, const float *w, const float *bias, const float *x, float *y, int b)
{
	int in = (int)n->in_features, out = (int)n->out_features;
	float beta = 0.0f;
	if (bias) {
		for (int s = 0; s < b; s++)
			memcpy(y + (size_t)s * out, bias, (size_t)out * sizeof(float));
		beta = 1.0f;
	}
	/* GEMM packs all of W on every call; for a few samples that costs more
	 * than the product, and matrix-vector products are faster. */
	if (b <= 4) {
		for (int s = 0; s < b; s++)
			lt_sgemv(0, out, in, 1.0f, w, in, x + (size_t)s * in, beta, y + (size_t)s * out);
		return;
	}
	lt_sgemm(0, 1, b, out, in, 1.0f, x, in, w, in, beta, y, out);
}

void lt_layers_linear_pruned(const lt_node *n, const float *w, const lt_sparse *s, int64_t nnz,
			     const float *bias, const float *x, float *y, int b, float *scratch)
{
	if (s && lt_sparse_pays(n->out_features, n->in_features, nnz, b))
		lt_sparse_linear(s, x, bias, y, b, scratch);
	else
		lt_layers_linear(n, w, bias, x, y, b);
}

/* cols[k][s*ohw + o] for k over (c, ky, kx): one GEMM then covers the whole
 * chunk. Out-of-image taps read as zero (padding). */
void lt_layers_im2col(const lt_node *n, const int64_t *in_shape, const float *x, float *cols, int b)
{
	int C = (int)in_shape[0], H = (int)in_shape[1], W = (int)in_shape[2];
	int OH = (int)n->out_shape[1], OW = (int)n->out_shape[2];
	int KH = n->kernel[0], KW = n->kernel[1];
	int SH = n->stride[0], SW = n->stride[1], PH = n->padding[0], PW = n->padding[1];
	size_t ohw = (size_t)OH * OW, row = (size_t)b * ohw;
	for (int c = 0; c < C; c++)
		for (int ky = 0; ky < KH; ky++)
			for (int kx = 0; kx < KW; kx++) {
				float *dst = cols + ((size_t)(c * KH + ky) * KW + kx) * row;
				for (int s = 0; s < b; s++) {
					const float *img = x + ((size_t)s * C + c) * H * W;
					for (int oy = 0; oy < OH; oy++) {
						int iy = oy * SH - PH + ky;
						float *d = dst + s * ohw + (size_t)oy * OW;
						if (iy < 0 || iy >= H) {
							memset(d, 0, (size_t)OW * sizeof(float));
							continue;
						}
						const float *src = img + (size_t)iy * W;
						if (SW == 1 && PW == 0) {
							/* rows are short: a plain loop beats memcpy calls */
							for (int ox = 0; ox < OW; ox++)
								d[ox] = src[kx + ox];
							continue;
						}
						for (int ox = 0; ox < OW; ox++) {
							int ix = ox * SW - PW + kx;
							d[ox] = ix >= 0 && ix < W ? src[ix] : 0.0f;
						}
					}
				}
			}
}

void lt_layers_conv2d(const lt_node *n, const float *w, const float *bias, const int64_t *in_shape,
		      const float *x, float *y, int b, float *cols, float *gemm)
{
	int K = (int)(in_shape[0] * n->kernel[0] * n->kernel[1]);
	int OC = (int)n->out_features;
	size_t ohw = (size_t)n->out_shape[1] * n->out_shape[2];
	int N = (int)(b * ohw);
	lt_layers_im2col(n, in_shape, x, cols, b);
	lt_sgemm(0, 0, OC, N, K, 1.0f, w, K, cols, N, 0.0f, gemm, N);
	/* [OC][s][ohw] -> [s][OC][ohw], adding the bias on the way. */
	for (int s = 0; s < b; s++)
		for (int oc = 0; oc < OC; oc++) {
			const float *src = gemm + (size_t)oc * N + s * ohw;
			float *dst = y + ((size_t)s * OC + oc) * ohw;
			float add = bias ? bias[oc] : 0.0f;
			for (size_t i = 0; i < ohw; i++)
				dst[i] = src[i] + add;
		}
}

/* Max or average pooling. Loops run over output columns innermost, with
 * the valid column range worked out per kernel tap, so there are no
 * per-element bounds tests and the compiler can vectorise. */
LT_HOT void lt_layers_pool(const lt_node *n, const int64_t *in_shape, const float *x, float *y, int b)
{
	int C = (int)in_shape[0], H = (int)in_shape[1], W = (int)in_shape[2];
	int OH = (int)n->out_shape[1], OW = (int)n->out_shape[2];
	int KH = n->kernel[0], KW = n->kernel[1], SH = n->stride[0], SW = n->stride[1];
	int PH = n->padding[0], PW = n->padding[1];
	int is_max = n->op == LT_OP_MAXPOOL2D;
	/* count_include_pad: windows never pass the padded border (no ceil
	 * mode), so the divisor is always the full window. */
	float inv = 1.0f / (float)(KH * KW);
	if (is_max && KH == 2 && KW == 2 && SH == 2 && SW == 2 && PH == 0 && PW == 0) {
		/* The common 2x2/2 max pool: four loads per output, no
		 * accumulator round trips (NaN still wins, as in PyTorch). */
		for (int64_t plane = 0; plane < (int64_t)b * C; plane++) {
			const float *img = x + plane * H * W;
			float *out = y + plane * OH * OW;
			for (int oy = 0; oy < OH; oy++) {
				const float *r0 = img + (size_t)(2 * oy) * W, *r1 = r0 + W;
				for (int ox = 0; ox < OW; ox++) {
					float m = r0[2 * ox], v = r0[2 * ox + 1];
					m = v > m || v != v ? v : m;
					v = r1[2 * ox];
					m = v > m || v != v ? v : m;
					v = r1[2 * ox + 1];
					out[oy * OW + ox] = v > m || v != v ? v : m;
				}
			}
		}
		return;
	}
	for (int64_t plane = 0; plane < (int64_t)b * C; plane++) {
		const float *img = x + plane * H * W;
		for (int oy = 0; oy < OH; oy++) {
			float *acc = y + (plane * OH + oy) * OW;
			for (int ox = 0; ox < OW; ox++)
				acc[ox] = is_max ? -INFINITY : 0.0f;
			for (int ky = 0; ky < KH; ky++) {
				int iy = oy * SH - PH + ky;
				if (iy < 0 || iy >= H)
					continue;
				const float *row = img + (size_t)iy * W;
				for (int kx = 0; kx < KW; kx++) {
					/* columns ox with 0 <= ox*SW - PW + kx < W */
					int lo = PW - kx > 0 ? (PW - kx + SW - 1) / SW : 0;
					int num = W - 1 + PW - kx; /* floor, not truncation */
					int hi = num < 0 ? 0 : num / SW + 1;
					hi = hi < OW ? hi : OW;
					int off = kx - PW;
					if (is_max) {
						for (int ox = lo; ox < hi; ox++) {
							float v = row[ox * SW + off];
							acc[ox] = v > acc[ox] || v != v ? v : acc[ox];
						}
					} else {
						for (int ox = lo; ox < hi; ox++)
							acc[ox] += row[ox * SW + off];
					}
				}
			}
			if (!is_max)
				for (int ox = 0; ox < OW; ox++)
					acc[ox] *= inv;
		}
	}
}

LT_HOT void lt_layers_affine(const float *scale, const float *shift, const int64_t *in_shape,
		      int in_ndim, const float *x, float *y, int b)
{
	int64_t C = in_shape[0], inner = 1;
	for (int d = 1; d < in_ndim; d++)
		inner *= in_shape[d];
	for (int s = 0; s < b; s++)
		for (int64_t c = 0; c < C; c++) {
			const float *src = x + ((size_t)s * C + c) * inner;
			float *dst = y + ((size_t)s * C + c) * inner;
			float sc = scale[c], sh = shift[c];
			for (int64_t i = 0; i < inner; i++)
				dst[i] = src[i] * sc + sh;
		}
}

void lt_layers_softmax(const float *x, float *y, int64_t width, int b)
{
	for (int s = 0; s < b; s++) {
		const float *v = x + s * width;
		float *o = y + s * width;
		float mx = -INFINITY, sum = 0.0f;
		for (int64_t i = 0; i < width; i++)
			mx = v[i] > mx ? v[i] : mx;
		for (int64_t i = 0; i < width; i++)
			sum += o[i] = expf(v[i] - mx);
		for (int64_t i = 0; i < width; i++)
			o[i] /= sum;
	}
}


LT_HOT void lt_layers_threshold(float *y, int64_t n, float t)
{
	for (int64_t k = 0; k < n; k++)
		y[k] = fabsf(y[k]) < t ? 0.0f : y[k];
}

LT_HOT void lt_layers_fake_quant(float *y, int64_t n, float scale, int32_t zp, int32_t qmin, int32_t qmax)
{
	float inv = 1.0f / scale, lo = (float)(qmin - zp), hi = (float)(qmax - zp);
	for (int64_t k = 0; k < n; k++) {
		float q = nearbyintf(y[k] * inv) + 0.0f; /* -0 -> +0, as torch's integer levels */
		q = q < lo ? lo : q > hi ? hi : q;
		y[k] = q * scale;
	}
}

LT_HOT void lt_layers_range(const float *y, int64_t n, float *lo, float *hi)
{
	float a = *lo, b = *hi;
	for (int64_t k = 0; k < n; k++) {
		a = y[k] < a ? y[k] : a;
		b = y[k] > b ? y[k] : b;
	}
	*lo = a;
	*hi = b;
}

LT_HOT void lt_layers_activation(lt_op op, const float *x, float *y, int64_t n)
{
	switch (op) {
	case LT_OP_RELU:
		for (int64_t k = 0; k < n; k++)
			y[k] = x[k] > 0.0f ? x[k] : 0.0f;
		break;
	case LT_OP_TANH:
		for (int64_t k = 0; k < n; k++)
			y[k] = tanhf(x[k]);
		break;
	case LT_OP_SIGMOID:
		for (int64_t k = 0; k < n; k++)
			y[k] = 1.0f / (1.0f + expf(-x[k]));
		break;
	default:
		break;
	}
}
