/* Singular-value spectra of weight matrices and the figures the workbench
 * derives from them (energy, ranks, the heavy-tail exponent alpha).
 *
 * A tensor is seen as a matrix: a 2-D [out, in] weight as it is, a weight
 * of 3 or more dimensions (a conv [out, in, kh, kw]) as [out, in*kh*kw].
 * A 1-D tensor has no spectrum.
 *
 * The singular values come from one of two LAPACK routes:
 *   LT_SVD_GESDD  sgesdd (divide and conquer, no vectors) on a float copy;
 *   LT_SVD_GRAM   the eigenvalues of the smaller Gram matrix A A^T or A^T A,
 *                 formed in double (dsyrk on a double copy) and solved by
 *                 dsyevd; sigma = sqrt(max(lambda, 0)).
 * Squaring the condition number costs the Gram route the singular values
 * below about 1e-7 sigma_max (they come out as rounding noise of that
 * size). Both routes keep every value >= 1e-4 sigma_max within 1e-3
 * relative of a float64 SVD of the same matrix (t_spectrum's fixtures,
 * including one with sigma from 1 to 1e-6: Gram 1e-9, sgesdd 8e-6 worst).
 * LT_SVD_AUTO picks per shape, see lt_spectrum_route. A Gram matrix formed
 * in float was measured to miss sigma >= 1e-4 sigma_max by up to 7 %
 * (1000x1000), so it is not offered. */
#ifndef LT_SPECTRUM_H
#define LT_SPECTRUM_H

#include <stdint.h>

#include "core/err.h"
#include "core/tensor.h"

typedef enum { LT_SVD_AUTO, LT_SVD_GESDD, LT_SVD_GRAM } lt_svd_route;

/* "auto", "gesdd", "gram". */
const char *lt_svd_route_name(lt_svd_route r);

/* The route LT_SVD_AUTO takes for a rows x cols matrix: GESDD when the
 * smaller side is below 128 and the longer below 256, GRAM otherwise.
 * Measured with tests/bench/bench_svd (2 cores, OpenBLAS 0.3.21 "Zen"):
 * sgesdd wins on small near-square matrices (64x64: 0.26 vs 0.54 ms;
 * 96x96: 0.64 vs 1.0 ms), where both cost under a millisecond and sgesdd
 * also resolves the tiny singular values; the Gram route wins once a side
 * is long or both are >= 128 (64x256: 0.61 vs 0.79 ms; 128x128: 0.71 vs
 * 1.2 ms; 500x800: 13 vs 22 ms; 1000x1000: 68 vs 75 ms; 768x3072: 53 vs
 * 104 ms; 3072x768: 53 vs 148 ms). */
lt_svd_route lt_spectrum_route(int64_t rows, int64_t cols);

/* The matrix view of t: rows = shape[0], cols = the product of the other
 * dimensions. LT_EINVAL for a tensor of fewer than 2 dimensions or with
 * an empty dimension. */
int lt_spectrum_view(const lt_tensor *t, int64_t *rows, int64_t *cols, lt_err *err);

/* Singular values of the row-major rows x cols matrix w, descending, into
 * sigma[min(rows, cols)]. OpenBLAS runs on every core (lt_cpu_count) for
 * the call and the previous thread setting is restored; do not call it
 * while other threads run BLAS work that relies on that setting.
 * LT_EINVAL (empty matrix, NaN or Inf in w), LT_ERANGE (a side beyond
 * LAPACK's int, or sizes that overflow), LT_ENOMEM, LT_ERANGE if LAPACK
 * does not converge. */
int lt_spectrum_singular_values(const float *w, int64_t rows, int64_t cols,
				lt_svd_route route, double *sigma, lt_err *err);

/* At least this many positive eigenvalues must lie in the fitted tail. */
#define LT_SPECTRUM_MIN_TAIL 10

enum {
	LT_SPECTRUM_ZERO = 1,     /* every value is 0: sigma all 0, ranks 0 */
	LT_SPECTRUM_NO_ALPHA = 2, /* fewer than LT_SPECTRUM_MIN_TAIL positive
				   * eigenvalues: alpha, lambda_min, ks are NaN */
};

typedef struct lt_spectrum {
	int64_t rows, cols;     /* the matrix view */
	int64_t count;          /* min(rows, cols) */
	double *sigma;          /* [count] singular values, descending (owned) */
	double *cum_energy;     /* [count] sum_{j<=i} sigma_j^2 / sum sigma^2
				 * (all 0 for the zero matrix; owned) */
	double sigma_max;
	double fro2;            /* ||W||_F^2, summed over w in double */
	int64_t rank;           /* sigma_i > sigma_max * max(rows, cols) *
				 * FLT_EPSILON (numpy.linalg.matrix_rank's
				 * tolerance for float32 input) */
	int64_t rank90, rank95, rank99; /* smallest k with cum_energy[k-1] >=
					 * 0.90 / 0.95 / 0.99 */
	double stable_rank;     /* fro2 / sigma_max^2 (0 for the zero matrix) */
	double effective_rank;  /* exp(-sum p_i ln p_i), p_i = sigma_i /
				 * sum sigma (Roy & Vetterli 2007); 0 for the
				 * zero matrix */
	/* Power law p(lambda) ~ lambda^-alpha fitted to the eigenvalues
	 * lambda_i = sigma_i^2 / max(rows, cols) of the correlation matrix
	 * W^T W / N, as WeightWatcher reports it (alpha does not depend on
	 * the normalisation; lambda_min does). See lt_spectrum_fit_alpha. */
	double alpha, lambda_min, ks;
	int64_t tail;           /* eigenvalues >= lambda_min (0 without alpha) */
	unsigned flags;         /* LT_SPECTRUM_* */
	lt_svd_route route;     /* the route that ran */
} lt_spectrum;

/* Spectrum and figures of the rows x cols matrix w (errors as
 * lt_spectrum_singular_values). Free with lt_spectrum_free. NULL with err. */
lt_spectrum *lt_spectrum_compute(const float *w, int64_t rows, int64_t cols,
				 lt_svd_route route, lt_err *err);

/* The same from singular values already computed (sigma[0..min(rows,
 * cols)), descending, as lt_spectrum_singular_values gives them) and the
 * squared Frobenius norm fro2 of the matrix; route is recorded. Lets a
 * caller compute the values elsewhere (a child process that can be killed)
 * and the figures here. */
lt_spectrum *lt_spectrum_from_values(const double *sigma, int64_t rows, int64_t cols, double fro2,
				     lt_svd_route route, lt_err *err);

/* Sum of squares of w[0..rows*cols), accumulated in double. */
double lt_spectrum_fro2(const float *w, int64_t rows, int64_t cols);

/* The same for a tensor's matrix view (lt_spectrum_view); values as f32. */
lt_spectrum *lt_spectrum_of_tensor(lt_tensor *t, lt_svd_route route, lt_err *err);

/* NULL is a no-op. */
void lt_spectrum_free(lt_spectrum *s);

/* Continuous power-law fit (Clauset, Shalizi & Newman 2009, SIAM Review
 * 51:661) to the positive values of lambda[0..n) (any order; zeros and
 * negatives are left out): for each distinct value x_min that leaves at
 * least LT_SPECTRUM_MIN_TAIL values >= x_min, the maximum-likelihood
 * exponent alpha = 1 + m / sum ln(x_i / x_min) over those m values, and the
 * Kolmogorov-Smirnov distance D = sup |S(x) - P(x)| between their empirical
 * CDF S and the fitted P(x) = 1 - (x / x_min)^(1 - alpha), taken on both
 * sides of every step of S. The x_min with the smallest D wins (the
 * smaller x_min on a tie), as the `powerlaw` package that WeightWatcher
 * uses chooses it (that package evaluates S only below each step, so its D
 * can be smaller by up to 1/m). Candidates whose tail values are all equal
 * are skipped. Returns 0 with *alpha, *xmin, *ks, *tail set, or 0 with
 * NaNs and *tail = 0 when no candidate qualifies. LT_ENOMEM. */
int lt_spectrum_fit_alpha(const double *lambda, int64_t n, double *alpha,
			  double *xmin, double *ks, int64_t *tail, lt_err *err);

#endif
