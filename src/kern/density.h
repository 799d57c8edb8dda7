/* Density maps for the sparsity heatmap: a tensor's matrix view reduced
 * to a small grid of cells, each summarising a rectangular block.
 *
 * The view: a 2-D [out, in] weight as it is; 3 or more dimensions (a conv
 * [out, in, kh, kw]) as [out, in*kh*kw]; a 1-D tensor as one row [1, n].
 * A grid of gw cells across and gh down splits the view's rows into gh and
 * its columns into gw blocks as evenly as possible: cell row j covers view
 * rows [floor(j*rows/gh), floor((j+1)*rows/gh)), columns likewise. A view
 * smaller than the grid shrinks it (gw <= cols, gh <= rows), so every cell
 * covers at least one value; the struct reports the grid actually used.
 * Cell values are row-major: cell (j, i) is at [j*gw + i].
 *
 * "Non-zero" means != 0.0 (+0 and -0 are zero; NaN counts as non-zero).
 * A NaN or Inf in a block makes that cell's mean |w| NaN or Inf. */
#ifndef LT_DENSITY_H
#define LT_DENSITY_H

#include <stdint.h>

#include "core/err.h"
#include "core/tensor.h"

typedef struct lt_density {
	int64_t rows, cols;  /* the view */
	int gw, gh;          /* cells across and down, as used */
	double *nonzero;     /* [gh*gw] fraction of non-zero values (owned) */
	double *mean_abs;    /* [gh*gw] mean |w| (owned) */
} lt_density;

/* Density map of the row-major rows x cols matrix w on a grid of at most
 * gw x gh cells. NULL with err: LT_EINVAL (an empty view, gw or gh < 1),
 * LT_ENOMEM. Free with lt_density_free. */
lt_density *lt_density_map(const float *w, int64_t rows, int64_t cols, int gw, int gh,
			   lt_err *err);

/* The same for a tensor's view (values as f32). */
lt_density *lt_density_of_tensor(lt_tensor *t, int gw, int gh, lt_err *err);

/* NULL is a no-op. */
void lt_density_free(lt_density *d);

/* What a stage changes: committed and staged tensors of the same shape,
 * compared per cell on the same grid as lt_density_map. */
typedef struct lt_density_diff {
	int64_t rows, cols;
	int gw, gh;
	double *changed;     /* [gh*gw] fraction with staged != committed (as
			      * floats: -0 == +0; a NaN on either side counts
			      * as changed) (owned) */
	double *zeroed;      /* [gh*gw] fraction that was non-zero and is now
			      * zero (owned) */
} lt_density_diff;

/* NULL with err: LT_EINVAL (shapes differ, empty view, bad grid),
 * LT_ENOMEM. Free with lt_density_diff_free. */
lt_density_diff *lt_density_diff_of(lt_tensor *committed, lt_tensor *staged, int gw, int gh,
				    lt_err *err);

/* NULL is a no-op. */
void lt_density_diff_free(lt_density_diff *d);

/* Per-filter view of a conv weight [out, in, kh, kw], for spotting
 * structured pruning: one kh x kw tile per output filter, each tile cell
 * the fraction of the `in` input channels whose weight at that kernel
 * position is non-zero (a pruned filter is an empty tile; a pruned kernel
 * position is a dark cell in every tile). kernel_nonzero gives the other
 * cut: per (filter, input channel) the fraction of the kh*kw weights that
 * are non-zero (a pruned input channel is an empty column). */
typedef struct lt_filter_map {
	int64_t out, in, kh, kw;
	double *tiles;           /* [out*kh*kw]: tile o at [o*kh*kw], row-major
				  * kh x kw (owned) */
	double *kernel_nonzero;  /* [out*in] row-major (owned) */
} lt_filter_map;

/* NULL with err: LT_EINVAL unless t is 4-D and non-empty, LT_ENOMEM.
 * Free with lt_filter_map_free. */
lt_filter_map *lt_filter_map_of(lt_tensor *t, lt_err *err);

/* NULL is a no-op. */
void lt_filter_map_free(lt_filter_map *f);

#endif
