/* Sparse weights for pruned Linear and Conv2d layers: only the non-zeros of
 * a dense row-major [rows, cols] matrix (rows = output features or
 * channels, cols = input features or C * KH * KW), multiplied without
 * touching the pruned zeros.
 *
 * Format: rows sorted by non-zero count and cut into slices of 8; a slice
 * stores its rows' entries interleaved (entry j of each of its 8 rows, then
 * entry j + 1), each row padded with zeros to the slice's longest. One step
 * then feeds 8 independent accumulators, and there is one loop per slice
 * instead of one per row (see sparse.c for the measurements behind it).
 * An entry is a float and a 16-bit column (32-bit past 65536 columns).
 *
 * Non-finite inputs: a NaN or infinity in x reaches only the outputs of
 * rows that keep a weight in its column (as NaN or an infinity), where the
 * dense product also spreads it through the pruned zeros. */
#ifndef LT_SPARSE_H
#define LT_SPARSE_H

#include <stdint.h>

#include "core/err.h"

typedef struct lt_sparse lt_sparse;

/* The non-zeros of w [rows][cols] (values equal to zero, -0 included, are
 * dropped). w is copied, not kept. NULL with err on failure: LT_EINVAL for
 * no w or rows or cols < 1; LT_ERANGE for more than 2^31 - 9 rows or
 * 2^31 - 1 columns (indices are 32-bit); LT_ENOMEM. Caller frees with
 * lt_sparse_free (NULL is a no-op). */
lt_sparse *lt_sparse_new(const float *w, int64_t rows, int64_t cols, lt_err *err);
void lt_sparse_free(lt_sparse *s);

int64_t lt_sparse_rows(const lt_sparse *s);
int64_t lt_sparse_cols(const lt_sparse *s);
/* Non-zeros kept (padding not counted). */
int64_t lt_sparse_nnz(const lt_sparse *s);

/* Take new values from w [rows][cols] at the positions kept at creation,
 * in O(nnz): for fine-tuning, where the mask is fixed and the values move.
 * Values of w elsewhere are ignored; a kept position that became zero is
 * kept as a stored zero. */
void lt_sparse_refresh(lt_sparse *s, const float *w);

/* Floats of scratch lt_sparse_linear (n samples) or lt_sparse_matmul (n
 * columns) needs, at most cols * 32; the same bound serves both. 0 for
 * n = 1. */
int64_t lt_sparse_scratch(const lt_sparse *s, int64_t n);

/* y[b][rows] = x[b][cols] A^T + bias (bias [rows] or NULL); y must not
 * overlap x. scratch holds lt_sparse_scratch(s, b) floats (NULL when that
 * is 0). Several threads may share one lt_sparse, each with its own
 * scratch (but not with lt_sparse_refresh running). */
void lt_sparse_linear(const lt_sparse *s, const float *x, const float *bias, float *y,
		      int64_t b, float *scratch);

/* One sample (b = 1), a share of the rows: the slices whose entries start
 * in [from, to) of all entries (fractions; 0 and 1 are the ends), so that
 * threads can compute one product together, each writing only its rows of
 * y. Shares that meet (one's to is the next's from) cover every row once. */
void lt_sparse_linear1_share(const lt_sparse *s, const float *x, const float *bias, float *y, double from,
			     double to);

/* C[rows][n] = A B + bias[row] for B [cols][n] (im2col columns, n = b *
 * OH * OW); bias may be NULL; C must not overlap B. scratch as for
 * lt_sparse_linear with b = n. */
void lt_sparse_matmul(const lt_sparse *s, const float *B, int64_t n, const float *bias,
		      float *C, float *scratch);

/* Whether the sparse kernels beat the dense path (lt_layers_linear, or the
 * im2col GEMM) for a [rows, cols] matrix with nnz non-zeros applied to n
 * samples (linear) or columns (matmul) per call, on the measurements in
 * sparse.c. Cheap: callers whose n varies may ask per call. */
int lt_sparse_pays(int64_t rows, int64_t cols, int64_t nnz, int64_t n);

#endif
