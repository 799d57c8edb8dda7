#include "kern/density.h"

#include <inttypes.h>
#include <math.h>

#include "core/mem.h"

static int view_of(const lt_tensor *t, int64_t *rows, int64_t *cols, lt_err *err)
{
	int nd = lt_tensor_ndim(t);
	const int64_t *shape = lt_tensor_shape(t);
	if (nd == 0)
		return lt_err_set(err, LT_EINVAL, "a scalar has no density map");
	int64_t c = 1;
	for (int i = nd == 1 ? 0 : 1; i < nd; i++)
		c *= shape[i]; /* cannot overflow: the tensor exists */
	*rows = nd == 1 ? 1 : shape[0];
	*cols = c;
	if (*rows == 0 || c == 0)
		return lt_err_set(err, LT_EINVAL, "an empty tensor has no density map");
	return 0;
}

/* floor(j * n / g) without overflow (j <= g). */
static int64_t edge(int64_t j, int64_t n, int64_t g)
{
	return j * (n / g) + j * (n % g) / g;
}

/* Checks the view and grid and settles the grid actually used. */
static int grid(int64_t rows, int64_t cols, int *gw, int *gh, lt_err *err)
{
	if (rows < 1 || cols < 1)
		return lt_err_set(err, LT_EINVAL, "a %" PRId64 " x %" PRId64 " view has no density map",
				  rows, cols);
	if (*gw < 1 || *gh < 1)
		return lt_err_set(err, LT_EINVAL, "a density grid needs at least 1 x 1 cells (got %d x %d)",
				  *gw, *gh);
	if (*gw > cols)
		*gw = (int)cols;
	if (*gh > rows)
		*gh = (int)rows;
	return 0;
}

/* Elements in cell (j, i). */
static double cell_size(int64_t rows, int64_t cols, int gw, int gh, int j, int i)
{
	return (double)(edge(j + 1, rows, gh) - edge(j, rows, gh)) *
	       (double)(edge(i + 1, cols, gw) - edge(i, cols, gw));
}

/* The one pass over a view both maps make: per cell, two shares of its
 * elements. With b NULL, of a: non-zero, and (summed |a|) the mean |w|;
 * with b, of a against b: changed, and non-zero in a but zero in b. */
static void accumulate(const float *a, const float *b, int64_t rows, int64_t cols, int gw, int gh,
		       double *first, double *second)
{
	for (int j = 0; j < gh; j++) {
		double *f = first + (size_t)j * gw, *sc = second + (size_t)j * gw;
		for (int64_t r = edge(j, rows, gh); r < edge(j + 1, rows, gh); r++) {
			const float *ra = a + r * cols, *rb = b ? b + r * cols : NULL;
			for (int i = 0; i < gw; i++) {
				int64_t n = 0, z = 0;
				double s = 0;
				int64_t c0 = edge(i, cols, gw), c1 = edge(i + 1, cols, gw);
				if (rb) {
					for (int64_t c = c0; c < c1; c++) {
						n += !(ra[c] == rb[c]);
						z += ra[c] != 0.0f && rb[c] == 0.0f;
					}
					s = (double)z;
				} else {
					for (int64_t c = c0; c < c1; c++) {
						n += ra[c] != 0.0f;
						s += fabs((double)ra[c]);
					}
				}
				f[i] += (double)n;
				sc[i] += s;
			}
		}
		for (int i = 0; i < gw; i++) {
			double size = cell_size(rows, cols, gw, gh, j, i);
			f[i] /= size;
			sc[i] /= size;
		}
	}
}

/* Two zeroed arrays of `cells` doubles, or LT_ENOMEM (neither kept). */
static int two_arrays(size_t cells, double **x, double **y, const char *what, int gw, int gh, lt_err *err)
{
	*x = lt_calloc(cells, sizeof **x);
	*y = *x ? lt_calloc(cells, sizeof **y) : NULL;
	if (*y)
		return 0;
	lt_free(*x);
	*x = NULL;
	return lt_err_set(err, LT_ENOMEM, "out of memory for a %d x %d %s", gw, gh, what);
}

lt_density *lt_density_map(const float *w, int64_t rows, int64_t cols, int gw, int gh,
			   lt_err *err)
{
	if (grid(rows, cols, &gw, &gh, err))
		return NULL;
	lt_density *d = lt_calloc(1, sizeof *d);
	if (!d) {
		lt_err_set(err, LT_ENOMEM, "out of memory");
		return NULL;
	}
	if (two_arrays((size_t)gw * (size_t)gh, &d->nonzero, &d->mean_abs, "density map", gw, gh, err)) {
		lt_free(d);
		return NULL;
	}
	*d = (lt_density){rows, cols, gw, gh, d->nonzero, d->mean_abs};
	accumulate(w, NULL, rows, cols, gw, gh, d->nonzero, d->mean_abs);
	return d;
}

lt_density *lt_density_of_tensor(lt_tensor *t, int gw, int gh, lt_err *err)
{
	int64_t rows, cols;
	if (view_of(t, &rows, &cols, err))
		return NULL;
	const float *w = lt_tensor_data(t, err);
	return w ? lt_density_map(w, rows, cols, gw, gh, err) : NULL;
}

void lt_density_free(lt_density *d)
{
	if (!d)
		return;
	lt_free(d->nonzero);
	lt_free(d->mean_abs);
	lt_free(d);
}

lt_density_diff *lt_density_diff_of(lt_tensor *committed, lt_tensor *staged, int gw, int gh,
				    lt_err *err)
{
	int nd = lt_tensor_ndim(committed);
	if (nd != lt_tensor_ndim(staged))
		goto shape;
	for (int k = 0; k < nd; k++)
		if (lt_tensor_shape(committed)[k] != lt_tensor_shape(staged)[k])
			goto shape;
	int64_t rows, cols;
	if (view_of(committed, &rows, &cols, err) || grid(rows, cols, &gw, &gh, err))
		return NULL;
	const float *a = lt_tensor_data(committed, err), *b;
	if (!a || !(b = lt_tensor_data(staged, err)))
		return NULL;
	lt_density_diff *d = lt_calloc(1, sizeof *d);
	if (!d) {
		lt_err_set(err, LT_ENOMEM, "out of memory");
		return NULL;
	}
	if (two_arrays((size_t)gw * (size_t)gh, &d->changed, &d->zeroed, "difference map", gw, gh, err)) {
		lt_free(d);
		return NULL;
	}
	*d = (lt_density_diff){rows, cols, gw, gh, d->changed, d->zeroed};
	accumulate(a, b, rows, cols, gw, gh, d->changed, d->zeroed);
	return d;
shape:;
	char s1[128], s2[128];
	lt_err_set(err, LT_EINVAL, "committed %s and staged %s tensors differ in shape",
		   lt_shape_format(lt_tensor_ndim(committed), lt_tensor_shape(committed), s1, sizeof s1),
		   lt_shape_format(lt_tensor_ndim(staged), lt_tensor_shape(staged), s2, sizeof s2));
	return NULL;
}

void lt_density_diff_free(lt_density_diff *d)
{
	if (!d)
		return;
	lt_free(d->changed);
	lt_free(d->zeroed);
	lt_free(d);
}

lt_filter_map *lt_filter_map_of(lt_tensor *t, lt_err *err)
{
	const int64_t *s = lt_tensor_shape(t);
	if (lt_tensor_ndim(t) != 4 || lt_tensor_numel(t) == 0) {
		char buf[128];
		lt_err_set(err, LT_EINVAL, "a filter map needs a non-empty conv weight [out, in, kh, kw] "
			   "(got %s)", lt_shape_format(lt_tensor_ndim(t), s, buf, sizeof buf));
		return NULL;
	}
	const float *w = lt_tensor_data(t, err);
	if (!w)
		return NULL;
	int64_t out = s[0], in = s[1], kk = s[2] * s[3];
	lt_filter_map *f = lt_calloc(1, sizeof *f);
	if (!f || !(f->tiles = lt_calloc((size_t)(out * kk), sizeof *f->tiles)) ||
	    !(f->kernel_nonzero = lt_calloc((size_t)(out * in), sizeof *f->kernel_nonzero))) {
		lt_filter_map_free(f);
		lt_err_set(err, LT_ENOMEM, "out of memory for the filter map of %" PRId64 " filters", out);
		return NULL;
	}
	f->out = out;
	f->in = in;
	f->kh = s[2];
	f->kw = s[3];
	for (int64_t o = 0; o < out; o++) {
		double *tile = f->tiles + o * kk;
		for (int64_t i = 0; i < in; i++) {
			const float *k = w + (o * in + i) * kk;
			int64_t n = 0;
			for (int64_t p = 0; p < kk; p++) {
				int nz = k[p] != 0.0f;
				n += nz;
				tile[p] += nz;
			}
			f->kernel_nonzero[o * in + i] = (double)n / (double)kk;
		}
		for (int64_t p = 0; p < kk; p++)
			tile[p] /= (double)in;
	}
	return f;
}

void lt_filter_map_free(lt_filter_map *f)
{
	if (!f)
		return;
	lt_free(f->tiles);
	lt_free(f->kernel_nonzero);
	lt_free(f);
}
