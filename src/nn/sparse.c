#include "nn/sparse.h"

#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "nn/simd.h"

#define LANES 8
/* Rows per slice: one lane each in the matrix-vector kernel. */
#define SLICE 8


typedef int lt_i8 __attribute__((vector_size(32)));

struct lt_sparse {
	int64_t rows, cols, nnz;
	int64_t nslices;
	int64_t *start;    /* [nslices + 1] first entry of each slice */
	int32_t *perm;     /* [nslices * SLICE] original row of each sorted row, -1 past the end */
	int32_t *len;      /* [nslices * SLICE] non-zeros of each sorted row */
	int32_t *col;      /* [entries] column of entry j of lane i at start + j * SLICE + i */
	float *val;        /* [entries] 0 for padding */
};

int64_t lt_sparse_rows(const lt_sparse *s) { return s->rows; }
int64_t lt_sparse_cols(const lt_sparse *s) { return s->cols; }
int64_t lt_sparse_nnz(const lt_sparse *s) { return s->nnz; }

void lt_sparse_free(lt_sparse *s)
{
	if (!s)
		return;
	lt_free(s->start);
	lt_free(s->perm);
	lt_free(s->len);
	lt_free(s->col);
	lt_free(s->val);
	lt_free(s);
}

/* Longest rows first; equal lengths keep their order, so the layout does
 * not depend on qsort's. */
static const int32_t *sort_len;
static int by_len(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	if (sort_len[x] != sort_len[y])
		return sort_len[x] < sort_len[y] ? 1 : -1;
	return (x > y) - (x < y);
}

lt_sparse *lt_sparse_new(const float *w, int64_t rows, int64_t cols, lt_err *err)
{
	if (rows < 1 || cols < 1) {
		lt_err_set(err, LT_EINVAL, "sparse matrix needs at least one row and column, got [%lld, %lld]",
			   (long long)rows, (long long)cols);
		return NULL;
	}
	if (rows > INT32_MAX - SLICE || cols > INT32_MAX) {
		lt_err_set(err, LT_ERANGE, "sparse matrix [%lld, %lld] is too large for 32-bit indices",
			   (long long)rows, (long long)cols);
		return NULL;
	}
	lt_sparse *s = lt_calloc(1, sizeof *s);
	int32_t *count = NULL;
	if (!s)
		goto nomem;
	s->rows = rows;
	s->cols = cols;
	s->nslices = (rows + SLICE - 1) / SLICE;
	int64_t padded = s->nslices * SLICE;
	s->start = lt_malloc_array((size_t)s->nslices + 1, sizeof *s->start);
	s->perm = lt_malloc_array((size_t)padded, sizeof *s->perm);
	s->len = lt_calloc((size_t)padded, sizeof *s->len);
	count = lt_calloc((size_t)rows, sizeof *count);
	if (!s->start || !s->perm || !s->len || !count)
		goto nomem;
	for (int64_t r = 0; r < rows; r++) {
		const float *wr = w + r * cols;
		for (int64_t c = 0; c < cols; c++)
			count[r] += wr[c] != 0.0f;
		s->nnz += count[r];
		s->perm[r] = (int32_t)r;
	}
	sort_len = count;
	qsort(s->perm, (size_t)rows, sizeof *s->perm, by_len);
	for (int64_t p = rows; p < padded; p++)
		s->perm[p] = -1;
	int64_t entries = 0;
	for (int64_t g = 0; g < s->nslices; g++) {
		s->start[g] = entries;
		for (int i = 0; i < SLICE; i++) {
			int32_t r = s->perm[g * SLICE + i];
			s->len[g * SLICE + i] = r < 0 ? 0 : count[r];
		}
		entries += (int64_t)s->len[g * SLICE] * SLICE; /* the first row is the longest */
	}
	s->start[s->nslices] = entries;
	s->col = lt_malloc_array((size_t)entries + 1, sizeof *s->col);
	s->val = lt_malloc_array((size_t)entries + 1, sizeof *s->val);
	if (!s->col || !s->val)
		goto nomem;
	for (int64_t g = 0; g < s->nslices; g++) {
		int64_t width = (s->start[g + 1] - s->start[g]) / SLICE;
		for (int i = 0; i < SLICE; i++) {
			int32_t r = s->perm[g * SLICE + i];
			int32_t *ci = s->col + s->start[g] + i;
			float *vi = s->val + s->start[g] + i;
			int64_t j = 0;
			int32_t last = 0;
			for (int64_t c = 0; r >= 0 && c < cols; c++) {
				float v = w[(int64_t)r * cols + c];
				if (v == 0.0f)
					continue;
				ci[j * SLICE] = last = (int32_t)c;
				vi[j * SLICE] = v;
				j++;
			}
			/* Padding reads a column the row already reads, so it adds
			 * an exact zero without pulling in anything new. */
			for (; j < width; j++) {
				ci[j * SLICE] = last;
				vi[j * SLICE] = 0.0f;
			}
		}
	}
	lt_free(count);
	return s;
nomem:
	lt_free(count);
	lt_sparse_free(s);
	lt_err_set(err, LT_ENOMEM, "out of memory for a sparse [%lld, %lld] matrix", (long long)rows,
		   (long long)cols);
	return NULL;
}

void lt_sparse_refresh(lt_sparse *s, const float *w)
{
	for (int64_t g = 0; g < s->nslices; g++)
		for (int i = 0; i < SLICE; i++) {
			int32_t r = s->perm[g * SLICE + i];
			const float *wr = w + (int64_t)(r < 0 ? 0 : r) * s->cols;
			int64_t e = s->start[g] + i;
			for (int32_t j = 0; j < s->len[g * SLICE + i]; j++, e += SLICE)
				s->val[e] = wr[s->col[e]];
		}
}

/* ---- one sample: a slice's 8 rows are the 8 lanes ----------------------- */

/* acc += v[0..7] * x[c[0..7]] */
LT_INLINE void step(const float *x, const int32_t *c, const float *v, lt_v8 *acc)
{
	lt_v8 vv, xv = {x[c[0]], x[c[1]], x[c[2]], x[c[3]], x[c[4]], x[c[5]], x[c[6]], x[c[7]]};
	memcpy(&vv, v, sizeof vv);
	*acc += vv * xv;
}

LT_INLINE void spmv(const lt_sparse *s, const float *x, const float *bias, float *y)
{
	for (int64_t g = 0; g < s->nslices; g++) {
		const int32_t *c = s->col + s->start[g];
		const float *v = s->val + s->start[g];
		int64_t steps = (s->start[g + 1] - s->start[g]) / SLICE, j = 0;
		/* two accumulators: a step takes less than an FMA's latency */
		lt_v8 a0 = {0}, a1 = {0};
		for (; j + 2 <= steps; j += 2, c += 2 * SLICE, v += 2 * SLICE) {
			step(x, c, v, &a0);
			step(x, c + SLICE, v + SLICE, &a1);
		}
		if (j < steps)
			step(x, c, v, &a0);
		a0 += a1;
		for (int i = 0; i < SLICE; i++) {
			int32_t r = s->perm[g * SLICE + i];
			if (r >= 0)
				y[r] = a0[i] + (bias ? bias[r] : 0.0f);
		}
	}
}

/* ---- blocks of samples or columns ----------------------------------------
 * The operand is a panel P [cols][8 * NV] (a block of samples transposed,
 * or of im2col columns), so an entry (row, col, val) adds val * P[col] to
 * the row's NV vectors. H rows of a slice go at once, each with its own
 * accumulators, so H * NV FMAs per step are independent. */

enum { TO_SAMPLES, TO_ROWS };

LT_INLINE void slices(const lt_sparse *s, const float *P, int64_t ldp, const float *bias,
		      float *out, int64_t ldo, int width, const int H, const int NV, const int mode)
{
	for (int64_t g = 0; g < s->nslices; g++) {
		int64_t steps = (s->start[g + 1] - s->start[g]) / SLICE;
		for (int h = 0; h < SLICE; h += H) {
			const int32_t *c = s->col + s->start[g] + h;
			const float *v = s->val + s->start[g] + h;
			lt_v8 acc[H][NV];
			LT_UNROLL for (int i = 0; i < H; i++)
				LT_UNROLL for (int k = 0; k < NV; k++)
					acc[i][k] = (lt_v8){0};
			for (int64_t j = 0; j < steps; j++, c += SLICE, v += SLICE)
				LT_UNROLL for (int i = 0; i < H; i++) {
					const float *p = P + (int64_t)c[i] * ldp;
					lt_v8 vi = (lt_v8){0} + v[i];
					LT_UNROLL for (int k = 0; k < NV; k++) {
						lt_v8 t;
						memcpy(&t, p + k * LANES, sizeof t);
						acc[i][k] += vi * t;
					}
				}
			for (int i = 0; i < H; i++) {
				int32_t r = s->perm[g * SLICE + h + i];
				if (r < 0)
					break; /* the rest of the slice is padding too */
				float add = bias ? bias[r] : 0.0f;
				if (mode == TO_SAMPLES) {
					for (int l = 0; l < width; l++)
						out[l * ldo + r] = acc[i][l / LANES][l % LANES] + add;
				} else if (width == NV * LANES) {
					LT_UNROLL for (int k = 0; k < NV; k++) {
						lt_v8 t = acc[i][k] + add;
						memcpy(out + r * ldo + k * LANES, &t, sizeof t);
					}
				} else {
					for (int l = 0; l < width; l++)
						out[r * ldo + l] = acc[i][l / LANES][l % LANES] + add;
				}
			}
		}
	}
}

/* Transpose of the 8x8 block at x (rows ldx apart) into xt (rows ldt
 * apart), in registers. */
LT_INLINE void transpose8x8(const float *x, int64_t ldx, float *xt, int64_t ldt)
{
	lt_v8 r0, r1, r2, r3, r4, r5, r6, r7;
	memcpy(&r0, x, sizeof r0);
	memcpy(&r1, x + ldx, sizeof r1);
	memcpy(&r2, x + 2 * ldx, sizeof r2);
	memcpy(&r3, x + 3 * ldx, sizeof r3);
	memcpy(&r4, x + 4 * ldx, sizeof r4);
	memcpy(&r5, x + 5 * ldx, sizeof r5);
	memcpy(&r6, x + 6 * ldx, sizeof r6);
	memcpy(&r7, x + 7 * ldx, sizeof r7);
	const lt_i8 lo = {0, 8, 1, 9, 4, 12, 5, 13}, hi = {2, 10, 3, 11, 6, 14, 7, 15};
	lt_v8 t0 = __builtin_shuffle(r0, r1, lo), t1 = __builtin_shuffle(r0, r1, hi);
	lt_v8 t2 = __builtin_shuffle(r2, r3, lo), t3 = __builtin_shuffle(r2, r3, hi);
	lt_v8 t4 = __builtin_shuffle(r4, r5, lo), t5 = __builtin_shuffle(r4, r5, hi);
	lt_v8 t6 = __builtin_shuffle(r6, r7, lo), t7 = __builtin_shuffle(r6, r7, hi);
	const lt_i8 lo2 = {0, 1, 8, 9, 4, 5, 12, 13}, hi2 = {2, 3, 10, 11, 6, 7, 14, 15};
	lt_v8 u0 = __builtin_shuffle(t0, t2, lo2), u1 = __builtin_shuffle(t0, t2, hi2);
	lt_v8 u2 = __builtin_shuffle(t1, t3, lo2), u3 = __builtin_shuffle(t1, t3, hi2);
	lt_v8 u4 = __builtin_shuffle(t4, t6, lo2), u5 = __builtin_shuffle(t4, t6, hi2);
	lt_v8 u6 = __builtin_shuffle(t5, t7, lo2), u7 = __builtin_shuffle(t5, t7, hi2);
	const lt_i8 lo4 = {0, 1, 2, 3, 8, 9, 10, 11}, hi4 = {4, 5, 6, 7, 12, 13, 14, 15};
	r0 = __builtin_shuffle(u0, u4, lo4);
	r1 = __builtin_shuffle(u1, u5, lo4);
	r2 = __builtin_shuffle(u2, u6, lo4);
	r3 = __builtin_shuffle(u3, u7, lo4);
	r4 = __builtin_shuffle(u0, u4, hi4);
	r5 = __builtin_shuffle(u1, u5, hi4);
	r6 = __builtin_shuffle(u2, u6, hi4);
	r7 = __builtin_shuffle(u3, u7, hi4);
	memcpy(xt, &r0, sizeof r0);
	memcpy(xt + ldt, &r1, sizeof r1);
	memcpy(xt + 2 * ldt, &r2, sizeof r2);
	memcpy(xt + 3 * ldt, &r3, sizeof r3);
	memcpy(xt + 4 * ldt, &r4, sizeof r4);
	memcpy(xt + 5 * ldt, &r5, sizeof r5);
	memcpy(xt + 6 * ldt, &r6, sizeof r6);
	memcpy(xt + 7 * ldt, &r7, sizeof r7);
}

/* x[nb][cols] (rows ldx apart) -> xt[cols][8] (rows ldt apart); samples
 * past nb read as zero. */
LT_INLINE void transpose8(const float *x, int64_t ldx, int nb, int64_t cols, float *xt, int64_t ldt)
{
	int64_t c = 0;
	if (nb >= LANES)
		for (; c + LANES <= cols; c += LANES)
			transpose8x8(x + c, ldx, xt + c * ldt, ldt);
	for (; c < cols; c++)
		for (int i = 0; i < LANES; i++)
			xt[c * ldt + i] = i < nb ? x[i * ldx + c] : 0.0f;
}

/* Widest block: 32 samples or columns, four vectors per row. */
#define BLOCK (4 * LANES)
/* im2col columns are read in place up to this many (rows of B under 4 KiB
 * apart) and copied into a panel beyond: lenet5's conv2 at 12 % took
 * 0.13 ms in place and 0.13-0.15 ms packed at n = 512, but 2.5-5.2 ms in
 * place and 1.4-2.0 ms packed at n = 4096 (bench_sparse, NOPACK runs). */
#define PACK_MIN_N 1024

int64_t lt_sparse_scratch(const lt_sparse *s, int64_t n)
{
	if (n <= 1)
		return 0;
	int64_t w = n < BLOCK ? (n + LANES - 1) / LANES * LANES : BLOCK;
	return s->cols * w;
}

/* One block of width <= 8 * NV samples (TO_SAMPLES: x rows ld apart) or
 * columns (TO_ROWS: B rows ld apart). */
LT_INLINE void block(const lt_sparse *s, const float *src, int64_t ld, int width, const float *bias,
		     float *out, int64_t ldo, float *panel, const int NV, const int H, const int mode)
{
	const int nb = NV * LANES;
	if (mode == TO_SAMPLES) {
		for (int q = 0; q < NV; q++)
			transpose8(src + q * LANES * ld, ld, width - q * LANES, s->cols, panel + q * LANES, nb);
	} else if (width == nb && ld < PACK_MIN_N) {
		slices(s, src, ld, bias, out, ldo, width, H, NV, mode);
		return;
	} else {
		for (int64_t k = 0; k < s->cols; k++) {
			memcpy(panel + k * nb, src + k * ld, sizeof(float) * (size_t)width);
			memset(panel + k * nb + width, 0, sizeof(float) * (size_t)(nb - width));
		}
	}
	slices(s, panel, nb, bias, out, ldo, width, H, NV, mode);
}

/* n samples or columns in blocks of BLOCK, the last one as narrow as it
 * can be. Rows per pass (H) for each width, measured at 784 -> 300, 8 %:
 * one vector (b = 8): H = 8 17 us, 4 18 us, 2 21 us, 1 28 us;
 * two (b = 16): H = 4 29 us, 2 29 us, 1 35 us;
 * four (b = 128): H = 2 161 us, 1 157 us (best of 41). */
LT_INLINE void blocks(const lt_sparse *s, const float *src, int64_t n, const float *bias, float *out,
		      float *panel, const int mode)
{
	/* TO_SAMPLES: x [n][cols] -> y [n][rows]; TO_ROWS: B [cols][n] -> C [rows][n] */
	int64_t ld = mode == TO_SAMPLES ? s->cols : n, ldo = mode == TO_SAMPLES ? s->rows : n;
	for (int64_t c0 = 0; c0 < n;) {
		int width = (int)(n - c0 < BLOCK ? n - c0 : BLOCK);
		const float *sb = mode == TO_SAMPLES ? src + c0 * ld : src + c0;
		float *ob = mode == TO_SAMPLES ? out + c0 * ldo : out + c0;
		if (width > 2 * LANES)
			block(s, sb, ld, width, bias, ob, ldo, panel, 4, 1, mode);
		else if (width > LANES)
			block(s, sb, ld, width, bias, ob, ldo, panel, 2, 2, mode);
		else
			block(s, sb, ld, width, bias, ob, ldo, panel, 1, 8, mode);
		c0 += width;
	}
}

LT_HOT void lt_sparse_linear(const lt_sparse *s, const float *x, const float *bias, float *y,
			     int64_t b, float *scratch)
{
	/* Two samples: two matrix-vector passes beat one 8-wide block
	 * (12 us against 14 us at 784 -> 300, 8 %); from three on, the block. */
	if (b <= 2) {
		for (int64_t i = 0; i < b; i++)
			spmv(s, x + i * s->cols, bias, y + i * s->rows);
		return;
	}
	blocks(s, x, b, bias, y, scratch, TO_SAMPLES);
}

LT_HOT void lt_sparse_matmul(const lt_sparse *s, const float *B, int64_t n, const float *bias,
			     float *C, float *scratch)
{
	if (n == 1)
		spmv(s, B, bias, C);
	else if (n > 1)
		blocks(s, B, n, bias, C, scratch, TO_ROWS);
}

int lt_sparse_pays(int64_t rows, int64_t cols, int64_t nnz, int64_t n)
{
	(void)n;
	return nnz * 4 < rows * cols;
}
