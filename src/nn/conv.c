#include "nn/conv.h"

#include <assert.h>
#include <string.h>

#include "core/mem.h"
#include "kern/blas.h"
#include "nn/layers.h"
#include "nn/sparse.h"
#include "nn/simd.h"

#define LANES 8

/* Winograd output tile size: F(4x4, r x r) reads (4 + r - 1)^2 inputs. */
#define WINO_M 4
#define WINO_MAX_A 8
/* Winograd works on blocks of this many tiles (two vectors of lanes) and
 * multiplies this many output channels at once. */
#define WINO_TB 16
#define WINO_OCG 4
/* Direct convolution computes this many output channels per pass, so each
 * input load feeds that many accumulators. */
#define DIRECT_OC 4

struct lt_conv {
	lt_conv_method method;
	const lt_node *n;
	int64_t in_shape[3];
	int C, H, W, OC, OH, OW, KH, KW, SH, SW, PH, PW;
	const float *w, *bias;
	/* winograd */
	int a, th, tw;                     /* tile side a = m + r - 1; tiles per column/row */
	float at[WINO_M][WINO_MAX_A];      /* output transform A^T */
	float bt[WINO_MAX_A][WINO_MAX_A];  /* input transform B^T */
	float pair_sign[WINO_MAX_A];       /* B^T row of -p = sign * mirror of row of p */
	float *u;                          /* transformed weights [a*a][OC/4][C][4] */
	/* direct */
	float *wpk;                        /* [OC/4][C][KH][KW][4], zero-padded channels */
	int hp, wp;                        /* padded input plane */
	/* sparse */
	lt_sparse *sp;                     /* the non-zeros of w as [OC][C*KH*KW] */
	int64_t nnz;
};

const char *lt_conv_method_name(lt_conv_method m)
{
	switch (m) {
	case LT_CONV_IM2COL: return "im2col";
	case LT_CONV_SPARSE: return "sparse";
	case LT_CONV_DIRECT: return "direct";
	case LT_CONV_WINOGRAD: return "winograd";
	default: return "auto";
	}
}

lt_conv_method lt_conv_method_of(const lt_conv *c) { return c->method; }

static int64_t round8(int64_t v) { return (v + LANES - 1) / LANES * LANES; }

/* ---- Winograd ---------------------------------------------------------
 * Cook-Toom construction for F(m, r) on the points 0, 1, -1, 2, -2, 1/2,
 * -1/2 (the first a-1 of them) and infinity; these small points keep the
 * float32 error near 1e-6 relative for a <= 8. Transposing Toom-Cook's
 * polynomial product c = I (E_a a .* E_b b) gives the filter:
 * y = A^T [(G g) .* (B^T d)] with A^T = E_a^T, G = E_b and B^T = I^T, the
 * rows of I^T being the Lagrange numerators (their denominators moved into
 * G) and the product of all (x - p) for the point at infinity. */
static void wino_matrices(lt_conv *c, double g[WINO_MAX_A][WINO_MAX_A])
{
	static const double points[WINO_MAX_A - 1] = {0, 1, -1, 2, -2, 0.5, -0.5};
	int a = c->a, m = WINO_M, r = c->KH, np = a - 1;
	memset(c->at, 0, sizeof c->at);
	memset(c->bt, 0, sizeof c->bt);
	for (int j = 0; j < np; j++) {
		double p = points[j], den = 1, pw = 1;
		for (int i = 0; i < m; i++, pw *= p)
			c->at[i][j] = (float)pw;
		/* numerator poly: product over l != j of (x - p_l), ascending */
		double poly[WINO_MAX_A] = {1};
		int deg = 0;
		for (int l = 0; l < np; l++) {
			if (l == j)
				continue;
			den *= p - points[l];
			for (int t = ++deg; t >= 0; t--)
				poly[t] = (t ? poly[t - 1] : 0) - points[l] * poly[t];
		}
		for (int t = 0; t <= deg; t++)
			c->bt[j][t] = (float)poly[t];
		pw = 1;
		for (int k = 0; k < r; k++, pw *= p)
			g[j][k] = pw / den;
	}
	double poly[WINO_MAX_A + 1] = {1};
	for (int l = 0; l < np; l++)
		for (int t = l + 1; t >= 0; t--)
			poly[t] = (t ? poly[t - 1] : 0) - points[l] * poly[t];
	for (int t = 0; t < a; t++)
		c->bt[np][t] = (float)poly[t];
	c->at[m - 1][np] = 1;
	for (int k = 0; k < r; k++)
		g[np][k] = k == r - 1;
	/* With a symmetric point set (np odd: 0 and pairs), the row of -p
	 * mirrors the row of p (odd powers negated), up to a sign; every value
	 * here is exact, so the check is too. */
	for (int j = 1; np % 2 == 1 && j + 1 < np; j += 2) {
		c->pair_sign[j] = c->bt[j + 1][2] == c->bt[j][2] ? 1.0f : -1.0f;
		for (int k = 0; k < a; k++)
			assert(c->bt[j + 1][k] == c->pair_sign[j] * (k % 2 ? -c->bt[j][k] : c->bt[j][k]));
	}
}

/* u[xi][oc/4][ci][oc%4] = (G w[oc][ci] G^T) at xi, computed in double;
 * channels past OC (the last group's padding) stay zero. */
static int wino_plan(lt_conv *c, lt_err *err)
{
	double g[WINO_MAX_A][WINO_MAX_A] = {{0}};
	int a = c->a, r = c->KH;
	wino_matrices(c, g);
	c->th = (c->OH + WINO_M - 1) / WINO_M;
	c->tw = (c->OW + WINO_M - 1) / WINO_M;
	int G = (c->OC + WINO_OCG - 1) / WINO_OCG;
	c->u = lt_calloc((size_t)a * a * G * WINO_OCG * c->C, sizeof(float));
	if (!c->u)
		return lt_err_set(err, LT_ENOMEM, "out of memory for Winograd weights");
	for (int oc = 0; oc < c->OC; oc++)
		for (int ci = 0; ci < c->C; ci++) {
			const float *f = c->w + ((size_t)oc * c->C + ci) * r * r;
			double gf[WINO_MAX_A][WINO_MAX_A];
			for (int i = 0; i < a; i++)
				for (int l = 0; l < r; l++) {
					double s = 0;
					for (int k = 0; k < r; k++)
						s += g[i][k] * f[k * r + l];
					gf[i][l] = s;
				}
			for (int i = 0; i < a; i++)
				for (int j = 0; j < a; j++) {
					double s = 0;
					for (int l = 0; l < r; l++)
						s += gf[i][l] * g[j][l];
					c->u[(((size_t)(i * a + j) * G + oc / WINO_OCG) * c->C + ci) * WINO_OCG +
					     oc % WINO_OCG] = (float)s;
				}
		}
	return 0;
}

/* Where each tile of a block starts: its sample and top-left output pixel
 * (s < 0 past the last tile). */
struct tile { int s, y, x; };

static void decode_tiles(const lt_conv *c, int64_t t0, int64_t ntiles, struct tile tl[WINO_TB])
{
	int per = c->th * c->tw;
	for (int l = 0; l < WINO_TB; l++) {
		int64_t t = t0 + l;
		if (t >= ntiles) {
			tl[l] = (struct tile){-1, 0, 0};
			continue;
		}
		int rem = (int)(t % per);
		tl[l] = (struct tile){(int)(t / per), rem / c->tw * WINO_M, rem % c->tw * WINO_M};
	}
}

/* The Winograd transforms are instantiated per tile side a (see the
 * switches in wino_run), so their loops unroll completely and the zeros of
 * B^T and A^T cost multiplications, not branches. */

/* The finite points come in pairs p, -p (indices 1-2, 3-4, 5-6), which
 * the two transforms below use to save about a third of their work.
 * y = B^T x for a column of vectors (x[k] at x + k * xs, y[j] at y + j *
 * ys). When the point set is symmetric (0 and whole pairs: a = 6, 8), the
 * rows of a pair have the same even-power coefficients and opposite odd
 * ones, so with E and O the even and odd halves of the first row, the two
 * rows are E + O and sign * (E - O). */
LT_INLINE void apply_bt(const lt_conv *c, const lt_v8 *x, int xs, lt_v8 *y, int ys, const int a)
{
	const int np = a - 1; /* finite points; index np is infinity */
	const int paired = np % 2 == 1;
	LT_UNROLL for (int j = 0; j < a; j++) {
		if (paired && j % 2 == 1 && j + 1 < np) { /* first row of a pair */
			lt_v8 e = {0}, o = {0};
			LT_UNROLL for (int k = 0; k < a; k += 2)
				e += c->bt[j][k] * x[k * xs];
			LT_UNROLL for (int k = 1; k < a; k += 2)
				o += c->bt[j][k] * x[k * xs];
			y[j * ys] = e + o;
			y[(j + 1) * ys] = c->pair_sign[j] * (e - o);
		} else if (paired && j % 2 == 0 && j > 0 && j < np) {
			continue; /* second row of a pair, done with the first */
		} else {
			lt_v8 s = {0};
			LT_UNROLL for (int k = 0; k < a; k++)
				s += c->bt[j][k] * x[k * xs];
			y[j * ys] = s;
		}
	}
}

/* y = A^T x (WINO_M outputs from a inputs, strides as above). Columns of a
 * pair differ by the sign of odd powers: even rows take x_p + x_-p, odd
 * rows x_p - x_-p, each times the first column's coefficient. */
LT_INLINE void apply_at(const lt_conv *c, const lt_v8 *x, int xs, lt_v8 *y, int ys, const int a)
{
	const int np = a - 1;
	lt_v8 sum[WINO_MAX_A], dif[WINO_MAX_A];
	LT_UNROLL for (int j = 1; j + 1 < np; j += 2) {
		sum[j] = x[j * xs] + x[(j + 1) * xs];
		dif[j] = x[j * xs] - x[(j + 1) * xs];
	}
	LT_UNROLL for (int i = 0; i < WINO_M; i++) {
		lt_v8 s = {0};
		LT_UNROLL for (int j = 0; j < a; j++) {
			if (j % 2 == 1 && j + 1 < np)
				s += c->at[i][j] * (i % 2 ? dif[j] : sum[j]);
			else if (!(j % 2 == 0 && j > 0 && j < np))
				s += c->at[i][j] * x[j * xs];
		}
		y[i * ys] = s;
	}
}

/* vb[xi][ci][lane] = (B^T d B)[xi] of channel ci for the eight tiles tl
 * (one per lane); vb's lanes for one (xi, ci) are WINO_TB floats apart. */
LT_INLINE void wino_input(const lt_conv *c, const float *x, const struct tile *tl, float *vb, const int a)
{
	int C = c->C, H = c->H, W = c->W;
	for (int ci = 0; ci < C; ci++) {
		lt_v8 d[WINO_MAX_A][WINO_MAX_A], tmp[WINO_MAX_A][WINO_MAX_A];
		memset(d, 0, sizeof d);
		for (int l = 0; l < LANES; l++) {
			if (tl[l].s < 0)
				continue;
			const float *img = x + ((size_t)tl[l].s * C + ci) * H * W;
			int iy0 = tl[l].y - c->PH, ix0 = tl[l].x - c->PW;
			if (iy0 >= 0 && ix0 >= 0 && iy0 + a <= H && ix0 + a <= W) {
				/* inside the image: no bounds to test */
				const float *src = img + (size_t)iy0 * W + ix0;
				LT_UNROLL for (int i = 0; i < a; i++)
					LT_UNROLL for (int j = 0; j < a; j++)
						d[i][j][l] = src[(size_t)i * W + j];
				continue;
			}
			for (int i = 0; i < a; i++) {
				int iy = iy0 + i;
				if (iy < 0 || iy >= H)
					continue;
				for (int j = 0; j < a; j++) {
					int ix = ix0 + j;
					if (ix >= 0 && ix < W)
						d[i][j][l] = img[(size_t)iy * W + ix];
				}
			}
		}
		LT_UNROLL for (int j = 0; j < a; j++)
			apply_bt(c, &d[0][j], WINO_MAX_A, &tmp[0][j], WINO_MAX_A, a);
		LT_UNROLL for (int i = 0; i < a; i++) {
			lt_v8 row[WINO_MAX_A];
			apply_bt(c, tmp[i], 1, row, 1, a);
			LT_UNROLL for (int j = 0; j < a; j++)
				memcpy(vb + ((size_t)(i * a + j) * C + ci) * WINO_TB, &row[j], sizeof row[j]);
		}
	}
}

/* e[xi][q][t] = sum over ci of u[xi][oc q][ci] * vb[xi][ci][t] for the
 * WINO_M output channels of group g and the block's WINO_TB tiles: eight
 * accumulators (four channels x two lane groups) kept in registers. */
LT_INLINE void wino_product(const lt_conv *c, const float *vb, int g, float *e, const int a)
{
	int C = c->C, G = (c->OC + WINO_OCG - 1) / WINO_OCG;
	for (int xi = 0; xi < a * a; xi++) {
		const float *v = vb + (size_t)xi * C * WINO_TB;
		const float *w = c->u + ((size_t)xi * G + g) * C * WINO_OCG;
		lt_v8 a00 = {0}, a01 = {0}, a10 = {0}, a11 = {0}, a20 = {0}, a21 = {0}, a30 = {0}, a31 = {0};
		for (int ci = 0; ci < C; ci++, v += WINO_TB, w += WINO_OCG) {
			lt_v8 v0, v1;
			memcpy(&v0, v, sizeof v0);
			memcpy(&v1, v + LANES, sizeof v1);
			a00 += v0 * w[0], a01 += v1 * w[0];
			a10 += v0 * w[1], a11 += v1 * w[1];
			a20 += v0 * w[2], a21 += v1 * w[2];
			a30 += v0 * w[3], a31 += v1 * w[3];
		}
		float *dst = e + (size_t)xi * WINO_OCG * WINO_TB;
		memcpy(dst, &a00, sizeof a00), memcpy(dst + 8, &a01, sizeof a01);
		memcpy(dst + 16, &a10, sizeof a10), memcpy(dst + 24, &a11, sizeof a11);
		memcpy(dst + 32, &a20, sizeof a20), memcpy(dst + 40, &a21, sizeof a21);
		memcpy(dst + 48, &a30, sizeof a30), memcpy(dst + 56, &a31, sizeof a31);
	}
}

/* y = A^T e A + bias for output channel oc of the eight tiles tl, clipped
 * where the last tiles overhang the output. e's lanes for one xi are
 * stride floats apart. */
LT_INLINE void wino_output(const lt_conv *c, const float *e, size_t stride, int oc,
			const struct tile *tl, float *y, const int a)
{
	int OC = c->OC, OH = c->OH, OW = c->OW;
	lt_v8 m[WINO_MAX_A][WINO_MAX_A], tmp[WINO_M][WINO_MAX_A], out[WINO_M][WINO_M];
	LT_UNROLL for (int k = 0; k < a; k++)
		LT_UNROLL for (int l = 0; l < a; l++)
			memcpy(&m[k][l], e + (size_t)(k * a + l) * stride, sizeof m[k][l]);
	LT_UNROLL for (int l = 0; l < a; l++)
		apply_at(c, &m[0][l], WINO_MAX_A, &tmp[0][l], WINO_MAX_A, a);
	lt_v8 add = (lt_v8){0} + (c->bias ? c->bias[oc] : 0.0f);
	LT_UNROLL for (int i = 0; i < WINO_M; i++) {
		apply_at(c, tmp[i], 1, out[i], 1, a);
		LT_UNROLL for (int j = 0; j < WINO_M; j++)
			out[i][j] += add;
	}
	for (int l = 0; l < LANES; l++) {
		if (tl[l].s < 0)
			continue;
		float *plane = y + ((size_t)tl[l].s * OC + oc) * OH * OW;
		if (tl[l].y + WINO_M <= OH && tl[l].x + WINO_M <= OW) {
			float *dst = plane + (size_t)tl[l].y * OW + tl[l].x;
			LT_UNROLL for (int i = 0; i < WINO_M; i++)
				LT_UNROLL for (int j = 0; j < WINO_M; j++)
					dst[(size_t)i * OW + j] = out[i][j][l];
			continue;
		}
		for (int i = 0; i < WINO_M && tl[l].y + i < OH; i++)
			for (int j = 0; j < WINO_M && tl[l].x + j < OW; j++)
				plane[(size_t)(tl[l].y + i) * OW + tl[l].x + j] = out[i][j][l];
	}
}

/* Block by block of WINO_TB tiles: transform the input once, then per
 * group of output channels multiply and transform back. The block's data
 * stays in L1/L2 and no GEMM call is made for these short reductions. */
LT_INLINE void wino_blocks(const lt_conv *c, const float *x, float *y, int b, float *scratch, const int a)
{
	int64_t ntiles = (int64_t)b * c->th * c->tw;
	int G = (c->OC + WINO_OCG - 1) / WINO_OCG;
	float *vb = scratch, *e = scratch + (size_t)a * a * c->C * WINO_TB;
	for (int64_t t0 = 0; t0 < ntiles; t0 += WINO_TB) {
		struct tile tl[WINO_TB];
		decode_tiles(c, t0, ntiles, tl);
		wino_input(c, x, tl, vb, a);
		wino_input(c, x, tl + LANES, vb + LANES, a);
		for (int g = 0; g < G; g++) {
			wino_product(c, vb, g, e, a);
			for (int q = 0; q < WINO_OCG && g * WINO_OCG + q < c->OC; q++)
				for (int h = 0; h < WINO_TB / LANES; h++)
					wino_output(c, e + q * WINO_TB + h * LANES, WINO_OCG * WINO_TB,
						    g * WINO_OCG + q, tl + h * LANES, y, a);
		}
	}
}

LT_HOT static void wino_run(const lt_conv *c, const float *x, float *y, int b, float *scratch)
{
	switch (c->a) {
	case 5: wino_blocks(c, x, y, b, scratch, 5); break;
	case 6: wino_blocks(c, x, y, b, scratch, 6); break;
	case 7: wino_blocks(c, x, y, b, scratch, 7); break;
	default: wino_blocks(c, x, y, b, scratch, 8); break;
	}
}

/* ---- Direct ----------------------------------------------------------- */

static int direct_plan(lt_conv *c, lt_err *err)
{
	int groups = (c->OC + DIRECT_OC - 1) / DIRECT_OC, taps = c->C * c->KH * c->KW;
	c->wpk = lt_malloc_array((size_t)groups * taps * DIRECT_OC, sizeof(float));
	if (!c->wpk)
		return lt_err_set(err, LT_ENOMEM, "out of memory for convolution weights");
	for (int g = 0; g < groups; g++)
		for (int t = 0; t < taps; t++)
			for (int q = 0; q < DIRECT_OC; q++) {
				int oc = g * DIRECT_OC + q;
				c->wpk[((size_t)g * taps + t) * DIRECT_OC + q] =
					oc < c->OC ? c->w[(size_t)oc * taps + t] : 0.0f;
			}
	/* The padded plane also covers the last vector's overhang. */
	c->hp = c->H + 2 * c->PH;
	int need = (int)round8(c->OW) + c->KW - 1;
	c->wp = c->W + 2 * c->PW > need ? c->W + 2 * c->PW : need;
	return 0;
}

/* Output rows oy .. oy+rows-1, columns ox .. ox+7, channels of group g:
 * rows x DIRECT_OC vectors accumulated in registers over every tap, each
 * input load feeding DIRECT_OC of them, each weight `rows`. */
LT_INLINE void direct_tile(const lt_conv *c, const float *p, const float *wg, const float *bias,
			float *y, int g, int oy, int ox, const int rows)
{
	int C = c->C, KH = c->KH, KW = c->KW, OH = c->OH, OW = c->OW;
	size_t down = (size_t)c->SH * c->wp;
	lt_v8 acc[2][DIRECT_OC];
	LT_UNROLL for (int r = 0; r < rows; r++)
		LT_UNROLL for (int q = 0; q < DIRECT_OC; q++)
			acc[r][q] = (lt_v8){0} + bias[q];
	const float *wt = wg;
	for (int ci = 0; ci < C; ci++)
		for (int ky = 0; ky < KH; ky++) {
			const float *row = p + ((size_t)ci * c->hp + oy * c->SH + ky) * c->wp + ox;
			for (int kx = 0; kx < KW; kx++, wt += DIRECT_OC)
				LT_UNROLL for (int r = 0; r < rows; r++) {
					lt_v8 xv;
					memcpy(&xv, row + r * down + kx, sizeof xv);
					LT_UNROLL for (int q = 0; q < DIRECT_OC; q++)
						acc[r][q] += xv * wt[q];
				}
		}
	int n = OW - ox < LANES ? OW - ox : LANES;
	LT_UNROLL for (int r = 0; r < rows; r++)
		LT_UNROLL for (int q = 0; q < DIRECT_OC; q++) {
			if (g * DIRECT_OC + q >= c->OC)
				break;
			float *dst = y + ((size_t)(g * DIRECT_OC + q) * OH + oy + r) * OW + ox;
			if (n == LANES)
				memcpy(dst, &acc[r][q], sizeof acc[r][q]);
			else
				for (int l = 0; l < n; l++)
					dst[l] = acc[r][q][l];
		}
}

/* One sample from its padded input p, two output rows at a time. */
LT_HOT static void direct_sample(const lt_conv *c, const float *p, float *y)
{
	int taps = c->C * c->KH * c->KW, groups = (c->OC + DIRECT_OC - 1) / DIRECT_OC;
	for (int g = 0; g < groups; g++) {
		const float *wg = c->wpk + (size_t)g * taps * DIRECT_OC;
		float bias[DIRECT_OC];
		for (int q = 0; q < DIRECT_OC; q++)
			bias[q] = c->bias && g * DIRECT_OC + q < c->OC ? c->bias[g * DIRECT_OC + q] : 0.0f;
		int oy = 0;
		for (; oy + 2 <= c->OH; oy += 2)
			for (int ox = 0; ox < c->OW; ox += LANES)
				direct_tile(c, p, wg, bias, y, g, oy, ox, 2);
		for (; oy < c->OH; oy++)
			for (int ox = 0; ox < c->OW; ox += LANES)
				direct_tile(c, p, wg, bias, y, g, oy, ox, 1);
	}
}

static void direct_run(const lt_conv *c, const float *x, float *y, int b, float *scratch)
{
	size_t plane = (size_t)c->hp * c->wp, in = (size_t)c->C * c->H * c->W;
	size_t out = (size_t)c->OC * c->OH * c->OW;
	memset(scratch, 0, (size_t)c->C * plane * sizeof(float));
	for (int s = 0; s < b; s++) {
		/* borders stay zero from the memset; only the image is rewritten */
		for (int ci = 0; ci < c->C; ci++)
			for (int iy = 0; iy < c->H; iy++)
				memcpy(scratch + ci * plane + (size_t)(iy + c->PH) * c->wp + c->PW,
				       x + s * in + ((size_t)ci * c->H + iy) * c->W, (size_t)c->W * sizeof(float));
		direct_sample(c, scratch, y + s * out);
	}
}

/* ---- Plans ------------------------------------------------------------ */

static int winograd_fits(const lt_conv *c)
{
	return c->SH == 1 && c->SW == 1 && c->KH == c->KW && c->KH >= 2 &&
	       c->KH + WINO_M - 1 <= WINO_MAX_A;
}

/* Multiplications decide: Winograd when it needs under half of the direct
 * count (its transforms and narrow GEMMs cost the rest), and only with
 * enough channels for its GEMMs; direct for short reductions; im2col
 * otherwise. */
static lt_conv_method choose(const lt_conv *c)
{
	int64_t direct = (int64_t)c->OH * c->OW * c->C * c->KH * c->KW * c->OC;
	if (winograd_fits(c) && c->C >= 8 && c->OC >= 8) {
		int64_t a = c->KH + WINO_M - 1;
		int64_t wino = (int64_t)((c->OH + WINO_M - 1) / WINO_M) * ((c->OW + WINO_M - 1) / WINO_M) *
			       a * a * c->C * c->OC;
		if (2 * wino < direct)
			return LT_CONV_WINOGRAD;
	}
	if (c->SW == 1 && c->C * c->KH * c->KW <= 75)
		return LT_CONV_DIRECT;
	int64_t k = (int64_t)c->C * c->KH * c->KW, nnz = 0;
	for (int64_t i = 0; i < c->OC * k; i++)
		nnz += c->w[i] != 0.0f;
	/* a few samples' columns, as the forward pass's chunks give it */
	if (lt_sparse_pays(c->OC, k, nnz, (int64_t)c->OH * c->OW * 8))
		return LT_CONV_SPARSE;
	return LT_CONV_IM2COL;
}

lt_conv *lt_conv_new(const lt_node *n, const int64_t *in_shape, const float *w,
		     const float *bias, lt_conv_method method, lt_err *err)
{
	lt_conv *c = lt_calloc(1, sizeof *c);
	if (!c) {
		lt_err_set(err, LT_ENOMEM, "out of memory");
		return NULL;
	}
	*c = (lt_conv){
		.n = n, .in_shape = {in_shape[0], in_shape[1], in_shape[2]},
		.C = (int)in_shape[0], .H = (int)in_shape[1], .W = (int)in_shape[2],
		.OC = (int)n->out_features, .OH = (int)n->out_shape[1], .OW = (int)n->out_shape[2],
		.KH = n->kernel[0], .KW = n->kernel[1], .SH = n->stride[0], .SW = n->stride[1],
		.PH = n->padding[0], .PW = n->padding[1], .w = w, .bias = bias,
	};
	c->a = c->KH + WINO_M - 1;
	if (method == LT_CONV_AUTO)
		method = choose(c);
	c->method = method;
	switch (method) {
	case LT_CONV_WINOGRAD:
		if (!winograd_fits(c)) {
			lt_err_set(err, LT_EINVAL, "Winograd needs stride 1 and a square kernel of 2 to %d",
				   WINO_MAX_A - WINO_M + 1);
			goto fail;
		}
		if (wino_plan(c, err))
			goto fail;
		break;
	case LT_CONV_DIRECT:
		if (c->SW != 1) {
			lt_err_set(err, LT_EINVAL, "direct convolution needs a horizontal stride of 1");
			goto fail;
		}
		if (direct_plan(c, err))
			goto fail;
		break;
	case LT_CONV_IM2COL: break;
	case LT_CONV_SPARSE:
		if (!(c->sp = lt_sparse_new(w, c->OC, (int64_t)c->C * c->KH * c->KW, err)))
			goto fail;
		break;
	default:
		lt_err_set(err, LT_EINVAL, "unknown convolution method %d", (int)method);
		goto fail;
	}
	return c;
fail:
	lt_conv_free(c);
	return NULL;
}

void lt_conv_free(lt_conv *c)
{
	if (!c)
		return;
	lt_free(c->u);
	lt_free(c->wpk);
	lt_sparse_free(c->sp);
	lt_free(c);
}

int64_t lt_conv_scratch(const lt_conv *c, int b)
{
	int64_t ohw = (int64_t)c->OH * c->OW;
	switch (c->method) {
	case LT_CONV_WINOGRAD:
		return (int64_t)c->a * c->a * (c->C + WINO_OCG) * WINO_TB;
	case LT_CONV_DIRECT: return (int64_t)c->C * c->hp * c->wp;
	case LT_CONV_SPARSE:
		return ((int64_t)c->C * c->KH * c->KW + c->OC) * b * ohw + lt_sparse_scratch(c->sp, b * ohw);
	default: return ((int64_t)c->C * c->KH * c->KW + c->OC) * b * ohw;
	}
}

/* im2col, the sparse product into [OC][b * OH * OW], then each sample's
 * channels to NCHW with the bias. */
static void sparse_run(const lt_conv *c, const float *x, float *y, int b, float *scratch)
{
	int64_t ohw = (int64_t)c->OH * c->OW, n = b * ohw, k = (int64_t)c->C * c->KH * c->KW;
	float *cols = scratch, *prod = cols + k * n, *rest = prod + c->OC * n;
	lt_layers_im2col(c->n, c->in_shape, x, cols, b);
	lt_sparse_matmul(c->sp, cols, n, NULL, prod, rest);
	for (int s = 0; s < b; s++)
		for (int o = 0; o < c->OC; o++) {
			const float *src = prod + o * n + s * ohw;
			float *dst = y + ((int64_t)s * c->OC + o) * ohw;
			float bias = c->bias ? c->bias[o] : 0.0f;
			for (int64_t i = 0; i < ohw; i++)
				dst[i] = src[i] + bias;
		}
}

void lt_conv_run(const lt_conv *c, const float *x, float *y, int b, float *scratch)
{
	if (b <= 0)
		return;
	switch (c->method) {
	case LT_CONV_WINOGRAD: wino_run(c, x, y, b, scratch); break;
	case LT_CONV_DIRECT: direct_run(c, x, y, b, scratch); break;
	case LT_CONV_SPARSE: sparse_run(c, x, y, b, scratch); break;
	default: {
		int64_t cols = (int64_t)c->C * c->KH * c->KW * b * c->OH * c->OW;
		lt_layers_conv2d(c->n, c->w, c->bias, c->in_shape, x, y, b, scratch, scratch + cols);
	}
	}
}
