/* Sparse weights as sorted 8-row slices (a SELL-8 layout; see sparse.h).
 *
 * Why slices: 784 -> 300 at 8 % (lenet300's fc1), one thread, best of 41
 * runs, the same transposes and panels for every format:
 *                     b = 1     b = 1024
 *   CSR               15.6 us   1.29 ms
 *   4x1 blocks        11.1 us   3.10 ms  (3.5 stored values per weight)
 *   8-row slices       4.7 us   1.52 ms
 *   dense             17 us     5.8 ms   (sgemv / sgemm, medians)
 * For one sample, a CSR row is a short loop of scalar FMAs (63 at 8 %)
 * that ends in a mispredicted branch; a slice's step is 8 independent
 * lanes and its loop ends once per 8 rows. For batches the work per entry
 * is vector FMAs either way, and slices lose a little to CSR's contiguous
 * entries. Blocks store zeros: 4x1 ones 3.5 values per weight here, 1x8
 * ones would store 6 (a kept weight has few neighbours at 8 %). */
#include "nn/sparse.h"

#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "nn/simd.h"

#define LANES 8
/* Rows per slice: the lanes of the matrix-vector kernel. */
#define SLICE LANES

struct lt_sparse {
	int64_t rows, cols, nnz;
	int64_t nslices;
	int64_t *start;    /* [nslices + 1] first entry of each slice */
	int32_t *perm;     /* [nslices * SLICE] original row of each sorted row, -1 past the end */
	int32_t *len;      /* [nslices * SLICE] non-zeros of each sorted row */
	/* column of entry j of the slice's row i, at start + j * SLICE + i:
	 * 16 bits when cols <= 65536 (col16), else 32 (col32) */
	uint16_t *col16;
	int32_t *col32;
	float *val;        /* 0 in the padding */
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
	lt_free(s->col16);
	lt_free(s->col32);
	lt_free(s->val);
	lt_free(s);
}

static int cmp_key(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* perm = rows by count, longest first, ties in row order. */
static int sort_rows(const int32_t *count, int64_t rows, int64_t cols, int32_t *perm)
{
	int64_t *key = lt_malloc_array((size_t)rows, sizeof *key);
	if (!key)
		return LT_ENOMEM;
	for (int64_t r = 0; r < rows; r++)
		key[r] = (cols - count[r]) << 32 | r;
	qsort(key, (size_t)rows, sizeof *key, cmp_key);
	for (int64_t r = 0; r < rows; r++)
		perm[r] = (int32_t)(key[r] & 0xffffffff);
	lt_free(key);
	return 0;
}

static void set_col(lt_sparse *s, int64_t e, int32_t c)
{
	if (s->col16)
		s->col16[e] = (uint16_t)c;
	else
		s->col32[e] = c;
}

LT_INLINE int64_t col_at(const lt_sparse *s, int64_t e, const int narrow)
{
	return narrow ? s->col16[e] : s->col32[e];
}

/* Fill slice g's entries from w. Padding repeats the row's last column
 * with value 0: an exact zero from a value the row reads anyway. */
static void fill_slice(lt_sparse *s, const float *w, int64_t g)
{
	int64_t width = (s->start[g + 1] - s->start[g]) / SLICE;
	for (int i = 0; i < SLICE; i++) {
		int32_t r = s->perm[g * SLICE + i], last = 0;
		int64_t e = s->start[g] + i, end = e + width * SLICE;
		for (int64_t c = 0; r >= 0 && c < s->cols; c++) {
			float v = w[r * s->cols + c];
			if (v == 0.0f)
				continue;
			set_col(s, e, last = (int32_t)c);
			s->val[e] = v;
			e += SLICE;
		}
		for (; e < end; e += SLICE) {
			set_col(s, e, last);
			s->val[e] = 0.0f;
		}
	}
}

lt_sparse *lt_sparse_new(const float *w, int64_t rows, int64_t cols, lt_err *err)
{
	if (!w || rows < 1 || cols < 1) {
		lt_err_set(err, LT_EINVAL, "a sparse matrix needs weights, one row and one column at least; "
			   "got [%lld, %lld]", (long long)rows, (long long)cols);
		return NULL;
	}
	if (rows > INT32_MAX - SLICE || cols > INT32_MAX) {
		lt_err_set(err, LT_ERANGE, "sparse matrix [%lld, %lld] is too large for 32-bit indices",
			   (long long)rows, (long long)cols);
		return NULL;
	}
	int32_t *count = NULL;
	lt_sparse *s = lt_calloc(1, sizeof *s);
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
		for (int64_t c = 0; c < cols; c++)
			count[r] += w[r * cols + c] != 0.0f;
		s->nnz += count[r];
	}
	if (sort_rows(count, rows, cols, s->perm))
		goto nomem;
	for (int64_t p = rows; p < padded; p++)
		s->perm[p] = -1;
	int64_t entries = 0;
	for (int64_t g = 0; g < s->nslices; g++) {
		s->start[g] = entries;
		for (int i = 0; i < SLICE; i++) {
			int32_t r = s->perm[g * SLICE + i];
			s->len[g * SLICE + i] = r < 0 ? 0 : count[r];
		}
		entries += (int64_t)s->len[g * SLICE] * SLICE; /* its longest row */
	}
	s->start[s->nslices] = entries;
	/* 64-byte aligned, so each step's 8 values are one aligned load */
	if (entries > (int64_t)(SIZE_MAX / sizeof(float)))
		goto nomem;
	if (cols <= 1 << 16)
		s->col16 = lt_alloc_uninit((size_t)entries * sizeof *s->col16);
	else
		s->col32 = lt_alloc_uninit((size_t)entries * sizeof *s->col32);
	s->val = lt_alloc_uninit((size_t)entries * sizeof *s->val);
	if ((!s->col16 && !s->col32) || !s->val)
		goto nomem;
	for (int64_t g = 0; g < s->nslices; g++)
		fill_slice(s, w, g);
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
			if (r < 0)
				break;
			const float *wr = w + (int64_t)r * s->cols;
			int64_t e = s->start[g] + i;
			for (int32_t j = 0; j < s->len[g * SLICE + i]; j++, e += SLICE)
				s->val[e] = wr[s->col16 ? s->col16[e] : s->col32[e]];
		}
}

/* ---- one sample: a slice's 8 rows are the 8 lanes ----------------------- */

/* acc += v[0..7] * x[c[0..7]]. 16-bit columns come four to a 64-bit load:
 * 11 loads a step instead of 17, which is what bounds this loop (fc1 of
 * lenet300 at 8 %: 5.2 against 6.1 us, best of 60). */
LT_INLINE void step(const float *x, const lt_sparse *s, int64_t e, lt_v8 *acc, const int narrow)
{
	lt_v8 vv, xv;
	if (narrow && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__) {
		uint64_t q0, q1;
		memcpy(&q0, s->col16 + e, sizeof q0);
		memcpy(&q1, s->col16 + e + 4, sizeof q1);
		xv = (lt_v8){x[q0 & 0xffff], x[q0 >> 16 & 0xffff], x[q0 >> 32 & 0xffff], x[q0 >> 48],
			     x[q1 & 0xffff], x[q1 >> 16 & 0xffff], x[q1 >> 32 & 0xffff], x[q1 >> 48]};
	} else {
		int64_t c[8];
		LT_UNROLL for (int i = 0; i < 8; i++)
			c[i] = col_at(s, e + i, narrow);
		xv = (lt_v8){x[c[0]], x[c[1]], x[c[2]], x[c[3]], x[c[4]], x[c[5]], x[c[6]], x[c[7]]};
	}
	memcpy(&vv, s->val + e, sizeof vv);
	*acc += vv * xv;
}

LT_INLINE void spmv(const lt_sparse *s, const float *x, const float *bias, float *y, int64_t g0, int64_t g1,
		      const int narrow)
{
	for (int64_t g = g0; g < g1; g++) {
		int64_t e = s->start[g], end = s->start[g + 1];
		/* two accumulators: a step takes less than an FMA's latency */
		lt_v8 a0 = {0}, a1 = {0};
		for (; e + 2 * SLICE <= end; e += 2 * SLICE) {
			step(x, s, e, &a0, narrow);
			step(x, s, e + SLICE, &a1, narrow);
		}
		if (e < end)
			step(x, s, e, &a0, narrow);
		a0 += a1;
		for (int i = 0; i < SLICE; i++) {
			int32_t r = s->perm[g * SLICE + i];
			if (r >= 0) /* an empty row's padding may have read a NaN */
				y[r] = (s->len[g * SLICE + i] ? a0[i] : 0.0f) + (bias ? bias[r] : 0.0f);
		}
	}
}

/* Built apart from the block kernels: inlined next to them, the narrow
 * loop ran out of registers and took 9.4 us instead of 5.2. */
LT_HOT static void spmv16(const lt_sparse *s, const float *x, const float *bias, float *y, int64_t g0, int64_t g1)
{
	spmv(s, x, bias, y, g0, g1, 1);
}

LT_HOT static void spmv32(const lt_sparse *s, const float *x, const float *bias, float *y, int64_t g0, int64_t g1)
{
	spmv(s, x, bias, y, g0, g1, 0);
}

/* The first slice whose entries start at or after `at`. */
static int64_t slice_at(const lt_sparse *s, int64_t at)
{
	int64_t lo = 0, hi = s->nslices;
	while (lo < hi) {
		int64_t mid = lo + (hi - lo) / 2;
		if (s->start[mid] < at)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void lt_sparse_linear1_share(const lt_sparse *s, const float *x, const float *bias, float *y, double from,
			     double to)
{
	int64_t total = s->start[s->nslices];
	int64_t g0 = from <= 0 ? 0 : slice_at(s, (int64_t)(from * (double)total));
	int64_t g1 = to >= 1 ? s->nslices : slice_at(s, (int64_t)(to * (double)total));
	if (s->col16)
		spmv16(s, x, bias, y, g0, g1);
	else
		spmv32(s, x, bias, y, g0, g1);
}

/* ---- blocks of samples or columns ----------------------------------------
 * The operand is a panel P [cols][8 * NV] (a block of samples transposed,
 * or of im2col columns), so an entry (row, col, val) adds val * P[col] to
 * the row's NV vectors. H rows of a slice go at once, each with its own
 * accumulators, so H * NV FMAs per step are independent. */

enum { TO_SAMPLES, TO_ROWS };

LT_INLINE void slices(const lt_sparse *s, const float *P, int64_t ldp, const float *bias, float *out,
		      int64_t ldo, int width, const int H, const int NV, const int mode, const int narrow)
{
	for (int64_t g = 0; g < s->nslices; g++) {
		int64_t steps = (s->start[g + 1] - s->start[g]) / SLICE;
		for (int h = 0; h < SLICE; h += H) {
			int64_t e = s->start[g] + h;
			lt_v8 acc[H][NV];
			LT_UNROLL for (int i = 0; i < H; i++)
				LT_UNROLL for (int k = 0; k < NV; k++)
					acc[i][k] = (lt_v8){0};
			/* one row at a time needs no padding */
			int64_t n = H == 1 ? s->len[g * SLICE + h] : steps;
			for (int64_t j = 0; j < n; j++, e += SLICE)
				LT_UNROLL for (int i = 0; i < H; i++) {
					const float *p = P + col_at(s, e + i, narrow) * ldp;
					lt_v8 vi = (lt_v8){0} + s->val[e + i];
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
				if (!s->len[g * SLICE + h + i]) /* its padding may have read a NaN */
					LT_UNROLL for (int k = 0; k < NV; k++)
						acc[i][k] = (lt_v8){0};
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

/* Row i of x (rows ldx apart), or zeros from row nb on. */
LT_INLINE void row8(const float *x, int64_t ldx, int i, int nb, lt_v8 *r)
{
	if (i < nb)
		memcpy(r, x + i * ldx, sizeof *r);
	else
		*r = (lt_v8){0};
}

/* Transpose of the 8x8 block at x (rows ldx apart; rows from nb on read
 * as zero) into xt (rows ldt apart), in registers. */
LT_INLINE void transpose8x8(const float *x, int64_t ldx, int nb, float *xt, int64_t ldt)
{
	lt_v8 r0, r1, r2, r3, r4, r5, r6, r7;
	row8(x, ldx, 0, nb, &r0);
	row8(x, ldx, 1, nb, &r1);
	row8(x, ldx, 2, nb, &r2);
	row8(x, ldx, 3, nb, &r3);
	row8(x, ldx, 4, nb, &r4);
	row8(x, ldx, 5, nb, &r5);
	row8(x, ldx, 6, nb, &r6);
	row8(x, ldx, 7, nb, &r7);
	/* interleave pairs of rows, then pairs of pairs, then 128-bit halves */
#define LO(a, b) __builtin_shufflevector(a, b, 0, 8, 1, 9, 4, 12, 5, 13)
#define HI(a, b) __builtin_shufflevector(a, b, 2, 10, 3, 11, 6, 14, 7, 15)
	lt_v8 t0 = LO(r0, r1), t1 = HI(r0, r1), t2 = LO(r2, r3), t3 = HI(r2, r3);
	lt_v8 t4 = LO(r4, r5), t5 = HI(r4, r5), t6 = LO(r6, r7), t7 = HI(r6, r7);
#undef LO
#undef HI
#define LO(a, b) __builtin_shufflevector(a, b, 0, 1, 8, 9, 4, 5, 12, 13)
#define HI(a, b) __builtin_shufflevector(a, b, 2, 3, 10, 11, 6, 7, 14, 15)
	lt_v8 u0 = LO(t0, t2), u1 = HI(t0, t2), u2 = LO(t1, t3), u3 = HI(t1, t3);
	lt_v8 u4 = LO(t4, t6), u5 = HI(t4, t6), u6 = LO(t5, t7), u7 = HI(t5, t7);
#undef LO
#undef HI
#define LO(a, b) __builtin_shufflevector(a, b, 0, 1, 2, 3, 8, 9, 10, 11)
#define HI(a, b) __builtin_shufflevector(a, b, 4, 5, 6, 7, 12, 13, 14, 15)
	r0 = LO(u0, u4), r1 = LO(u1, u5), r2 = LO(u2, u6), r3 = LO(u3, u7);
	r4 = HI(u0, u4), r5 = HI(u1, u5), r6 = HI(u2, u6), r7 = HI(u3, u7);
#undef LO
#undef HI
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
	if (nb <= 0) {
		for (; c < cols; c++)
			memset(xt + c * ldt, 0, LANES * sizeof(float));
		return;
	}
	for (; c + LANES <= cols; c += LANES)
		transpose8x8(x + c, ldx, nb, xt + c * ldt, ldt);
	for (; c < cols; c++)
		for (int i = 0; i < LANES; i++)
			xt[c * ldt + i] = i < nb ? x[i * ldx + c] : 0.0f;
}

/* Widest block: 32 samples or columns, four vectors per row. */
#define BLOCK (4 * LANES)
/* im2col columns are read in place up to this many (rows of B under 4 KiB
 * apart) and copied into a panel beyond: lenet5's conv2 at 12 % took
 * 0.13 ms in place and 0.13-0.15 ms packed at n = 512, but 2.5-5.2 ms in
 * place and 1.4-2.0 ms packed at n = 4096 (bench_sparse against a build
 * that never packed). */
#define PACK_MIN_N 1024

int64_t lt_sparse_scratch(const lt_sparse *s, int64_t n)
{
	if (n <= 1)
		return 0;
	/* the panel of the widest block blocks() runs for n */
	return s->cols * (n <= LANES ? LANES : n <= 2 * LANES ? 2 * LANES : BLOCK);
}

/* One block of width <= 8 * NV samples (TO_SAMPLES: x rows ld apart) or
 * columns (TO_ROWS: B rows ld apart). */
LT_INLINE void block(const lt_sparse *s, const float *src, int64_t ld, int width, const float *bias,
		     float *out, int64_t ldo, float *panel, const int NV, const int H, const int mode,
		     const int narrow)
{
	const int nb = NV * LANES;
	if (mode == TO_SAMPLES) {
		for (int q = 0; q < NV; q++)
			transpose8(src + q * LANES * ld, ld, width - q * LANES, s->cols, panel + q * LANES, nb);
	} else if (width == nb && ld < PACK_MIN_N) {
		slices(s, src, ld, bias, out, ldo, width, H, NV, mode, narrow);
		return;
	} else {
		for (int64_t k = 0; k < s->cols; k++) {
			memcpy(panel + k * nb, src + k * ld, sizeof(float) * (size_t)width);
			if (width < nb)
				memset(panel + k * nb + width, 0, sizeof(float) * (size_t)(nb - width));
		}
	}
	slices(s, panel, nb, bias, out, ldo, width, H, NV, mode, narrow);
}

/* n samples or columns in blocks of BLOCK, the last one as narrow as it
 * can be. Rows per pass (H) for each width, measured at 784 -> 300, 8 %:
 * one vector (b = 8): H = 8 17 us, 4 18 us, 2 21 us, 1 28 us;
 * two (b = 16): H = 4 29 us, 2 29 us, 1 35 us;
 * four (b = 128): H = 2 161 us, 1 157 us (best of 41). */
LT_INLINE void blocks(const lt_sparse *s, const float *src, int64_t n, const float *bias, float *out,
		      float *panel, const int mode, const int narrow)
{
	/* TO_SAMPLES: x [n][cols] -> y [n][rows]; TO_ROWS: B [cols][n] -> C [rows][n] */
	int64_t ld = mode == TO_SAMPLES ? s->cols : n, ldo = mode == TO_SAMPLES ? s->rows : n;
	for (int64_t c0 = 0; c0 < n;) {
		int width = (int)(n - c0 < BLOCK ? n - c0 : BLOCK);
		const float *sb = mode == TO_SAMPLES ? src + c0 * ld : src + c0;
		float *ob = mode == TO_SAMPLES ? out + c0 * ldo : out + c0;
		if (width > 2 * LANES)
			block(s, sb, ld, width, bias, ob, ldo, panel, 4, 1, mode, narrow);
		else if (width > LANES)
			block(s, sb, ld, width, bias, ob, ldo, panel, 2, 2, mode, narrow);
		else
			block(s, sb, ld, width, bias, ob, ldo, panel, 1, 8, mode, narrow);
		c0 += width;
	}
}

LT_HOT void lt_sparse_linear(const lt_sparse *s, const float *x, const float *bias, float *y,
			     int64_t b, float *scratch)
{
	/* From three samples on, one 8-wide block beats a matrix-vector pass
	 * per sample (784 -> 300 at 8 %, b = 3: 11 us against 19 us). At
	 * b = 2 it depends: 11 against 13 us there, 0.4 against 0.3 us for
	 * 500 -> 10 at 5 %, where the block wastes 6 of 16 rows. */
	if (b <= 2) {
		for (int64_t i = 0; i < b; i++) {
			if (s->col16)
				spmv16(s, x + i * s->cols, bias, y + i * s->rows, 0, s->nslices);
			else
				spmv32(s, x + i * s->cols, bias, y + i * s->rows, 0, s->nslices);
		}
	} else if (s->col16) {
		blocks(s, x, b, bias, y, scratch, TO_SAMPLES, 1);
	} else {
		blocks(s, x, b, bias, y, scratch, TO_SAMPLES, 0);
	}
}

LT_HOT void lt_sparse_matmul(const lt_sparse *s, const float *B, int64_t n, const float *bias,
			     float *C, float *scratch)
{
	if (n == 1 && s->col16)
		spmv16(s, B, bias, C, 0, s->nslices);
	else if (n == 1)
		spmv32(s, B, bias, C, 0, s->nslices);
	else if (n > 1 && s->col16)
		blocks(s, B, n, bias, C, scratch, TO_ROWS, 1);
	else if (n > 1)
		blocks(s, B, n, bias, C, scratch, TO_ROWS, 0);
}

/* Densities below which the sparse kernels win, by n (samples for linear,
 * columns for matmul): at or under the lowest crossover of two runs of
 *   tests/bench/bench_sparse --crossover 5
 * on a 2-core AMD EPYC (Zen 3 under KVM, OpenBLAS 0.3.21 Zen kernels, one
 * thread), over [300, 784], [100, 300], [10, 100], [500, 800], [10, 500]
 * and [1024, 1024] linear, [20, 25], [50, 500], [64, 576] matmul:
 *   n = 1, 2       0.15-0.28 (against sgemv per sample)
 *   n = 3, 4       0.14-0.65 (sgemv per sample; lowest for 10 rows)
 *   n = 8          0.68 to over 0.7 (sgemm, which packs all of W per call)
 *   n = 32-1000    linear 0.25-0.61, over 0.7 for 10 rows at n = 32
 *   n = 64-4096    matmul 0.20-0.53, [20, 25] 0.58 to over 0.7
 * Near the crossover the two run within 20 % of each other, so being off
 * by a few points costs little. */
int lt_sparse_pays(int64_t rows, int64_t cols, int64_t nnz, int64_t n)
{
	static const struct {
		int64_t max_n;
		double density;
	} rule[] = {{4, 0.12}, {16, 0.5}, {INT64_MAX, 0.2}};
	if (rows < 1 || cols < 1 || n < 1)
		return 0;
	double density = (double)nnz / ((double)rows * (double)cols);
	size_t i = 0;
	while (n > rule[i].max_n)
		i++;
	return density < rule[i].density;
}
