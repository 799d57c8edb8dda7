#include "kern/spectrum.h"

#include <float.h>
#include <inttypes.h>
#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "kern/blas.h"

/* The Gram matrix is accumulated over panels of this many rows (or
 * columns) of the long side, converted to double one panel at a time, so
 * the route needs min^2 + min * PANEL doubles rather than a double copy
 * of the whole matrix. dsyrk runs at full speed with k = 1024. */
#define PANEL 1024

/* GESDD below these sides (see lt_spectrum_route). */
#define GESDD_MAX_MIN_SIDE 128
#define GESDD_MAX_LONG_SIDE 256

const char *lt_svd_route_name(lt_svd_route r)
{
	switch (r) {
	case LT_SVD_GESDD: return "gesdd";
	case LT_SVD_GRAM: return "gram";
	default: return "auto";
	}
}

lt_svd_route lt_spectrum_route(int64_t rows, int64_t cols)
{
	int64_t m = rows < cols ? rows : cols, l = rows < cols ? cols : rows;
	return m < GESDD_MAX_MIN_SIDE && l < GESDD_MAX_LONG_SIDE ? LT_SVD_GESDD : LT_SVD_GRAM;
}

int lt_spectrum_view(const lt_tensor *t, int64_t *rows, int64_t *cols, lt_err *err)
{
	int nd = lt_tensor_ndim(t);
	const int64_t *shape = lt_tensor_shape(t);
	if (nd < 2)
		return lt_err_set(err, LT_EINVAL, "a %d-D tensor has no spectrum (it needs a matrix: "
				  "[out, in] or a conv weight [out, in, kh, kw])", nd);
	int64_t c = 1;
	for (int i = 1; i < nd; i++)
		c *= shape[i]; /* cannot overflow: the tensor exists */
	if (shape[0] == 0 || c == 0)
		return lt_err_set(err, LT_EINVAL, "an empty tensor has no spectrum");
	*rows = shape[0];
	*cols = c;
	return 0;
}

static int check_matrix(const float *w, int64_t rows, int64_t cols, lt_err *err)
{
	if (rows < 1 || cols < 1)
		return lt_err_set(err, LT_EINVAL, "a %" PRId64 " x %" PRId64 " matrix has no spectrum",
				  rows, cols);
	if (rows > INT_MAX || cols > INT_MAX || rows > (int64_t)(SIZE_MAX / sizeof(double)) / cols)
		return lt_err_set(err, LT_ERANGE, "a %" PRId64 " x %" PRId64 " matrix is too large "
				  "for LAPACK", rows, cols);
	int64_t n = rows * cols;
	for (int64_t i = 0; i < n; i++)
		if (!isfinite(w[i]))
			return lt_err_set(err, LT_EINVAL, "the matrix has non-finite values (%g at [%" PRId64
					  ", %" PRId64 "]); its spectrum is not defined",
					  (double)w[i], i / cols, i % cols);
	return 0;
}

static int lapack_failed(lapack_int info, const char *what, lt_err *err)
{
	if (info == LAPACK_WORK_MEMORY_ERROR || info == LAPACK_TRANSPOSE_MEMORY_ERROR)
		return lt_err_set(err, LT_ENOMEM, "out of memory in LAPACK %s", what);
	if (info > 0)
		return lt_err_set(err, LT_ERANGE, "LAPACK %s did not converge (info %d)", what, (int)info);
	return lt_err_set(err, LT_EINVAL, "LAPACK %s rejected argument %d", what, (int)-info);
}

/* sgesdd without vectors. The row-major rows x cols matrix is, to LAPACK,
 * the column-major cols x rows matrix A^T, which has the same singular
 * values. */
static int svd_gesdd(const float *w, int64_t rows, int64_t cols, double *sigma, lt_err *err)
{
	int rc = LT_ENOMEM;
	lapack_int m = (lapack_int)cols, n = (lapack_int)rows, k = m < n ? m : n;
	float *a = lt_malloc_array((size_t)(rows * cols), sizeof *a);
	float *s = lt_malloc_array((size_t)k, sizeof *s);
	lapack_int *iwork = lt_malloc_array((size_t)k * 8, sizeof *iwork);
	float *work = NULL, query = 0;
	if (!a || !s || !iwork)
		goto nomem;
	memcpy(a, w, (size_t)(rows * cols) * sizeof *a);
	lapack_int info = LAPACKE_sgesdd_work(LAPACK_COL_MAJOR, 'N', m, n, a, m, s, NULL, 1,
					      NULL, 1, &query, -1, iwork);
	if (info) {
		rc = lapack_failed(info, "sgesdd", err);
		goto fail;
	}
	/* The float workspace size may round down; add a little. */
	lapack_int lwork = (lapack_int)query + 16;
	work = lt_malloc_array((size_t)lwork, sizeof *work);
	if (!work)
		goto nomem;
	info = LAPACKE_sgesdd_work(LAPACK_COL_MAJOR, 'N', m, n, a, m, s, NULL, 1, NULL, 1,
				   work, lwork, iwork);
	if (info) {
		rc = lapack_failed(info, "sgesdd", err);
		goto fail;
	}
	for (lapack_int i = 0; i < k; i++)
		sigma[i] = s[i];
	rc = 0;
	goto fail;
nomem:
	lt_err_set(err, LT_ENOMEM, "out of memory for the SVD of a %" PRId64 " x %" PRId64 " matrix",
		   rows, cols);
fail:
	lt_free(work);
	lt_free(iwork);
	lt_free(s);
	lt_free(a);
	return rc;
}

/* Eigenvalues of the smaller Gram matrix, formed in double. */
static int svd_gram(const float *w, int64_t rows, int64_t cols, double *sigma, lt_err *err)
{
	int rc = LT_ENOMEM;
	int wide = rows <= cols;                 /* G = A A^T, else A^T A */
	int64_t m = wide ? rows : cols;          /* side of G */
	int64_t len = wide ? cols : rows;        /* summed over */
	int64_t pk = len < PANEL ? len : PANEL;
	double *g = lt_malloc_array((size_t)(m * m), sizeof *g);
	double *panel = lt_malloc_array((size_t)(m * pk), sizeof *panel);
	double *ev = lt_malloc_array((size_t)m, sizeof *ev);
	double *work = NULL;
	lapack_int *iwork = NULL;
	if (!g || !panel || !ev)
		goto nomem;
	for (int64_t p0 = 0; p0 < len; p0 += pk) {
		int64_t k = len - p0 < pk ? len - p0 : pk;
		if (wide) {
			/* panel [m, k] = A[:, p0 .. p0+k) */
			for (int64_t i = 0; i < m; i++) {
				const float *src = w + i * cols + p0;
				double *dst = panel + i * k;
				for (int64_t j = 0; j < k; j++)
					dst[j] = src[j];
			}
		} else {
			/* panel [k, m] = A[p0 .. p0+k, :] */
			const float *src = w + p0 * cols;
			for (int64_t i = 0; i < k * m; i++)
				panel[i] = src[i];
		}
		lt_dsyrk(!wide, (int)m, (int)k, 1.0, panel, wide ? (int)k : (int)m,
			 p0 ? 1.0 : 0.0, g, (int)m);
	}
	lt_free(panel);
	panel = NULL;
	/* Row-major upper triangle = column-major lower triangle. */
	double wq = 0;
	lapack_int iq = 0, n = (lapack_int)m;
	lapack_int info = LAPACKE_dsyevd_work(LAPACK_COL_MAJOR, 'N', 'L', n, g, n, ev, &wq, -1, &iq, -1);
	if (info) {
		rc = lapack_failed(info, "dsyevd", err);
		goto fail;
	}
	lapack_int lwork = (lapack_int)wq + 1, liwork = iq > 1 ? iq : 1;
	work = lt_malloc_array((size_t)lwork, sizeof *work);
	iwork = lt_malloc_array((size_t)liwork, sizeof *iwork);
	if (!work || !iwork)
		goto nomem;
	info = LAPACKE_dsyevd_work(LAPACK_COL_MAJOR, 'N', 'L', n, g, n, ev, work, lwork, iwork, liwork);
	if (info) {
		rc = lapack_failed(info, "dsyevd", err);
		goto fail;
	}
	/* Ascending eigenvalues; rounding can make the smallest negative. */
	for (int64_t i = 0; i < m; i++)
		sigma[i] = sqrt(fmax(ev[m - 1 - i], 0.0));
	rc = 0;
	goto fail;
nomem:
	lt_err_set(err, LT_ENOMEM, "out of memory for the Gram matrix of a %" PRId64 " x %" PRId64
		   " matrix", rows, cols);
fail:
	lt_free(iwork);
	lt_free(work);
	lt_free(ev);
	lt_free(panel);
	lt_free(g);
	return rc;
}

int lt_spectrum_singular_values(const float *w, int64_t rows, int64_t cols,
				lt_svd_route route, double *sigma, lt_err *err)
{
	int rc = check_matrix(w, rows, cols, err);
	if (rc)
		return rc;
	if (route == LT_SVD_AUTO)
		route = lt_spectrum_route(rows, cols);
	int64_t m = rows < cols ? rows : cols;
	if (route == LT_SVD_GRAM && m > (int64_t)(SIZE_MAX / sizeof(double)) / m)
		return lt_err_set(err, LT_ERANGE, "the Gram matrix of a %" PRId64 " x %" PRId64
				  " matrix is too large", rows, cols);
	int threads = lt_blas_threads();
	lt_blas_set_threads(lt_cpu_count());
	rc = route == LT_SVD_GRAM ? svd_gram(w, rows, cols, sigma, err)
				  : svd_gesdd(w, rows, cols, sigma, err);
	lt_blas_set_threads(threads);
	return rc;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* D for the tail x[0..m) (ascending, x[0] = xmin) and exponent alpha:
 * the empirical CDF steps from i/m to (i+1)/m at x[i]; the fitted CDF is
 * continuous, so the supremum is at one side of a step. Ties are handled:
 * the step of a run of equal values is covered by its first and last. */
static double ks_distance(const double *lx, int64_t m, double alpha)
{
	double d = 0, lmin = lx[0];
	for (int64_t i = 0; i < m; i++) {
		double p = 1.0 - exp((1.0 - alpha) * (lx[i] - lmin));
		double below = (double)i / (double)m, above = (double)(i + 1) / (double)m;
		d = fmax(d, fmax(p - below, above - p));
	}
	return d;
}

int lt_spectrum_fit_alpha(const double *lambda, int64_t n, double *alpha,
			  double *xmin, double *ks, int64_t *tail, lt_err *err)
{
	*alpha = *xmin = *ks = NAN;
	*tail = 0;
	double *lx = lt_malloc_array((size_t)(n ? n : 1), sizeof *lx);
	if (!lx)
		return lt_err_set(err, LT_ENOMEM, "out of memory fitting %" PRId64 " eigenvalues", n);
	int64_t p = 0;
	for (int64_t i = 0; i < n; i++)
		if (lambda[i] > 0 && isfinite(lambda[i]))
			lx[p++] = lambda[i];
	qsort(lx, (size_t)p, sizeof *lx, cmp_double);
	for (int64_t i = 0; i < p; i++)
		lx[i] = log(lx[i]);
	double best = INFINITY;
	for (int64_t j = 0; j + LT_SPECTRUM_MIN_TAIL <= p; j++) {
		if (j > 0 && lx[j] == lx[j - 1])
			continue; /* same x_min as the candidate before */
		int64_t m = p - j;
		double sum = 0;
		for (int64_t i = j; i < p; i++)
			sum += lx[i] - lx[j];
		if (!(sum > 0))
			continue; /* every tail value equal: no finite alpha */
		double a = 1.0 + (double)m / sum;
		double d = ks_distance(lx + j, m, a);
		if (d < best) {
			best = d;
			*alpha = a;
			*xmin = exp(lx[j]);
			*ks = d;
			*tail = m;
		}
	}
	lt_free(lx);
	return 0;
}

lt_spectrum *lt_spectrum_from_values(const double *sigma, int64_t rows, int64_t cols, double fro2,
				     lt_svd_route route, lt_err *err)
{
	if (rows < 1 || cols < 1) {
		lt_err_set(err, LT_EINVAL, "a %" PRId64 " x %" PRId64 " matrix has no spectrum", rows, cols);
		return NULL;
	}
	int64_t k = rows < cols ? rows : cols, big = rows < cols ? cols : rows;
	lt_spectrum *s = lt_calloc(1, sizeof *s);
	double *lambda = NULL;
	if (!s)
		goto nomem;
	s->rows = rows;
	s->cols = cols;
	s->count = k;
	s->route = route;
	s->fro2 = fro2;
	s->sigma = lt_malloc_array((size_t)k, sizeof *s->sigma);
	s->cum_energy = lt_malloc_array((size_t)k, sizeof *s->cum_energy);
	lambda = lt_malloc_array((size_t)k, sizeof *lambda);
	if (!s->sigma || !s->cum_energy || !lambda)
		goto nomem;
	memcpy(s->sigma, sigma, (size_t)k * sizeof *sigma);

	double e = 0, sum = 0, smax = s->sigma[0];
	for (int64_t i = 0; i < k; i++) {
		e += s->sigma[i] * s->sigma[i];
		sum += s->sigma[i];
		s->cum_energy[i] = e;
	}
	s->sigma_max = smax;
	if (smax == 0) {
		/* The zero matrix: no energy, no rank, no power law. */
		memset(s->cum_energy, 0, (size_t)k * sizeof *s->cum_energy);
		s->flags = LT_SPECTRUM_ZERO | LT_SPECTRUM_NO_ALPHA;
		s->alpha = s->lambda_min = s->ks = NAN;
		lt_free(lambda);
		return s;
	}
	for (int64_t i = 0; i < k; i++)
		s->cum_energy[i] /= e;
	s->cum_energy[k - 1] = 1.0;
	const double frac[3] = {0.90, 0.95, 0.99};
	int64_t *rank[3] = {&s->rank90, &s->rank95, &s->rank99};
	for (int f = 0; f < 3; f++) {
		int64_t r = 0;
		while (r < k - 1 && s->cum_energy[r] < frac[f])
			r++;
		*rank[f] = r + 1;
	}
	double tol = smax * (double)big * FLT_EPSILON;
	for (int64_t i = 0; i < k; i++)
		s->rank += s->sigma[i] > tol;
	s->stable_rank = s->fro2 / (smax * smax);
	double h = 0;
	for (int64_t i = 0; i < k; i++) {
		double pi = s->sigma[i] / sum;
		if (pi > 0)
			h -= pi * log(pi);
	}
	s->effective_rank = exp(h);

	/* Only eigenvalues of the numerical rank enter the fit: below the
	 * tolerance they are rounding noise (exact zeros in theory). */
	for (int64_t i = 0; i < s->rank; i++)
		lambda[i] = s->sigma[i] * s->sigma[i] / (double)big;
	if (lt_spectrum_fit_alpha(lambda, s->rank, &s->alpha, &s->lambda_min, &s->ks, &s->tail, err))
		goto fail;
	if (s->tail == 0)
		s->flags |= LT_SPECTRUM_NO_ALPHA;
	lt_free(lambda);
	return s;
nomem:
	lt_err_set(err, LT_ENOMEM, "out of memory for the spectrum of a %" PRId64 " x %" PRId64
		   " matrix", rows, cols);
fail:
	lt_free(lambda);
	lt_spectrum_free(s);
	return NULL;
}

double lt_spectrum_fro2(const float *w, int64_t rows, int64_t cols)
{
	double fro2 = 0;
	for (int64_t i = 0, n = rows * cols; i < n; i++)
		fro2 += (double)w[i] * w[i];
	return fro2;
}

lt_spectrum *lt_spectrum_compute(const float *w, int64_t rows, int64_t cols,
				 lt_svd_route route, lt_err *err)
{
	if (check_matrix(w, rows, cols, err))
		return NULL;
	if (route == LT_SVD_AUTO)
		route = lt_spectrum_route(rows, cols);
	int64_t k = rows < cols ? rows : cols;
	double *sigma = lt_malloc_array((size_t)k, sizeof *sigma);
	if (!sigma) {
		lt_err_set(err, LT_ENOMEM, "out of memory for the spectrum of a %" PRId64 " x %" PRId64
			   " matrix", rows, cols);
		return NULL;
	}
	lt_spectrum *s = NULL;
	if (!lt_spectrum_singular_values(w, rows, cols, route, sigma, err))
		s = lt_spectrum_from_values(sigma, rows, cols, lt_spectrum_fro2(w, rows, cols), route, err);
	lt_free(sigma);
	return s;
}

lt_spectrum *lt_spectrum_of_tensor(lt_tensor *t, lt_svd_route route, lt_err *err)
{
	int64_t rows, cols;
	if (lt_spectrum_view(t, &rows, &cols, err))
		return NULL;
	const float *w = lt_tensor_data(t, err);
	if (!w)
		return NULL;
	return lt_spectrum_compute(w, rows, cols, route, err);
}

void lt_spectrum_free(lt_spectrum *s)
{
	if (!s)
		return;
	lt_free(s->sigma);
	lt_free(s->cum_energy);
	lt_free(s);
}
