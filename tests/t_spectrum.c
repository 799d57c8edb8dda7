/* Singular values and spectral figures against numpy float64
 * (tests/fixtures/spectrum.safetensors, made by gen_spectrum_fixtures.py). */
#include <stdint.h>
#include <string.h>

#include "core/mem.h"
#include "io/open.h"
#include "kern/blas.h"
#include "kern/spectrum.h"
#include "tap.h"
#include "testutil.h"

static lt_model *ref;

static lt_tensor *tensor(const char *case_name, const char *what)
{
	char name[128];
	snprintf(name, sizeof name, "%s.%s", case_name, what);
	return lt_model_tensor(ref, name);
}

/* F64 references from the raw bytes (exact). */
static double raw_f64(lt_tensor *t, int64_t i)
{
	double v;
	memcpy(&v, (const char *)lt_tensor_raw(t) + 8 * i, 8);
	return v;
}

/* Both NaN, or close. */
static int same(double a, double b, double rtol, double atol)
{
	return (isnan(a) && isnan(b)) || tap_close(a, b, rtol, atol);
}

enum { F_SMAX, F_FRO2, F_STABLE, F_ERANK, F_ALPHA, F_LMIN, F_KS, F_TAIL, F_RANK, F_R90, F_R95, F_R99 };

static void check_case(const char *name, lt_svd_route route)
{
	lt_err err = {0};
	lt_tensor *w = tensor(name, "w"), *sig = tensor(name, "sigma"), *figs = tensor(name, "figs");
	lt_spectrum *s = lt_spectrum_of_tensor(w, route, &err);
	const char *rn = lt_svd_route_name(route);
	if (!s) {
		tap_ok(0, "%s (%s): %s", name, rn, err.msg);
		return;
	}
	int64_t k = lt_tensor_numel(sig);
	double smax = raw_f64(sig, 0), worst = 0, worst_abs = 0;
	for (int64_t i = 0; i < k; i++) {
		double want = raw_f64(sig, i), d = fabs(s->sigma[i] - want);
		if (want >= 1e-4 * smax)
			worst = fmax(worst, d / want);
		worst_abs = fmax(worst_abs, d / smax);
	}
	tap_ok(s->count == k && s->rows == lt_tensor_shape(w)[0] && worst < 1e-3 && worst_abs < 1e-6,
	       "%s (%s, ran %s): %lld singular values; sigma >= 1e-4 sigma_max within %.2g relative, "
	       "all within %.2g sigma_max", name, rn, lt_svd_route_name(s->route), (long long)k, worst,
	       worst_abs);
	for (int64_t i = 1; i < k; i++)
		if (s->sigma[i] > s->sigma[i - 1]) {
			tap_ok(0, "%s: singular values not descending at %lld", name, (long long)i);
			break;
		}
	double f[12];
	for (int i = 0; i < 12; i++)
		f[i] = raw_f64(figs, i);
	tap_ok(tap_close(s->sigma_max, f[F_SMAX], 1e-6, 0) && tap_close(s->fro2, f[F_FRO2], 1e-9, 0) &&
	       tap_close(s->stable_rank, f[F_STABLE], 1e-6, 0) &&
	       tap_close(s->effective_rank, f[F_ERANK], 1e-4, 0),
	       "%s (%s): sigma_max %.6g, ||W||_F^2 %.6g, stable rank %.6g, effective rank %.6g", name, rn,
	       s->sigma_max, s->fro2, s->stable_rank, s->effective_rank);
	tap_ok(s->rank == (int64_t)f[F_RANK] && s->rank90 == (int64_t)f[F_R90] &&
	       s->rank95 == (int64_t)f[F_R95] && s->rank99 == (int64_t)f[F_R99] &&
	       tap_close(s->cum_energy[k - 1], 1, 1e-12, 0),
	       "%s (%s): rank %lld, 90/95/99%% energy ranks %lld/%lld/%lld", name, rn, (long long)s->rank,
	       (long long)s->rank90, (long long)s->rank95, (long long)s->rank99);
	/* alpha depends on the smallest eigenvalues of the tail, which sgesdd
	 * resolves less finely than the double Gram route (on illcond, sigma
	 * near 1e-5 sigma_max: alpha 1e-6 relative off numpy). */
	int no_alpha = isnan(f[F_ALPHA]);
	double tol = s->route == LT_SVD_GESDD ? 1e-3 : 1e-6;
	tap_ok(same(s->alpha, f[F_ALPHA], tol, 0) && same(s->lambda_min, f[F_LMIN], 10 * tol, 0) &&
	       same(s->ks, f[F_KS], tol, 1e-9) && s->tail == (int64_t)f[F_TAIL] &&
	       !!(s->flags & LT_SPECTRUM_NO_ALPHA) == no_alpha,
	       "%s (%s): alpha %.9g (numpy %.9g; lambda_min %.4g, tail %lld, D %.4g)%s", name, rn,
	       s->alpha, f[F_ALPHA], s->lambda_min, (long long)s->tail, s->ks,
	       no_alpha ? ": too few eigenvalues" : "");
	lt_spectrum_free(s);
}

static lt_tensor *matrix(int64_t rows, int64_t cols)
{
	int64_t shape[2] = {rows, cols};
	return lt_tensor_new(2, shape, NULL);
}

static void check_vector_view(int64_t rows, int64_t cols)
{
	lt_err err = {0};
	lt_tensor *t = matrix(rows, cols);
	float *v = lt_tensor_data_mut(t, &err);
	double norm2 = 0;
	for (int64_t i = 0; i < rows * cols; i++) {
		v[i] = (float)(i % 5) - 1.5f;
		norm2 += (double)v[i] * v[i];
	}
	for (int r = LT_SVD_GESDD; r <= LT_SVD_GRAM; r++) {
		lt_spectrum *s = lt_spectrum_of_tensor(t, (lt_svd_route)r, &err);
		tap_ok(s && s->count == 1 && tap_close(s->sigma[0], sqrt(norm2), 1e-6, 0) &&
		       s->rank == 1 && s->rank90 == 1 && s->rank99 == 1 &&
		       tap_close(s->stable_rank, 1, 1e-6, 0) && s->effective_rank == 1 &&
		       isnan(s->alpha) && (s->flags & LT_SPECTRUM_NO_ALPHA),
		       "%lld x %lld (%s): one singular value, the norm %.6g; alpha not defined",
		       (long long)rows, (long long)cols, lt_svd_route_name((lt_svd_route)r),
		       s ? s->sigma[0] : -1.0);
		lt_spectrum_free(s);
	}
	lt_tensor_unref(t);
}

/* lambda_i = F^-1((i + 0.5) / n) for the Pareto law with exponent a. */
static void pareto(double *lam, int n, double a)
{
	for (int i = 0; i < n; i++)
		lam[i] = pow(1.0 - (i + 0.5) / n, -1.0 / (a - 1.0));
}

int main(void)
{
	lt_err err = {0};
	ref = lt_model_open(fixture("spectrum.safetensors"), &err);
	if (!ref)
		tap_skip_all("spectrum.safetensors missing");
	static const char *const cases[] = {"a40x70", "a70x40", "conv", "rankdef", "illcond", "heavy"};
	for (int c = 0; c < 6; c++) {
		lt_tensor_data(tensor(cases[c], "w"), NULL); /* convert before any sweep */
		for (int r = LT_SVD_AUTO; r <= LT_SVD_GRAM; r++)
			check_case(cases[c], (lt_svd_route)r);
	}

	/* The shape rule (lt_spectrum_route's comment has the timings). */
	tap_ok(lt_spectrum_route(20, 25) == LT_SVD_GESDD && lt_spectrum_route(8, 27) == LT_SVD_GESDD &&
	       lt_spectrum_route(64, 64) == LT_SVD_GESDD && lt_spectrum_route(127, 255) == LT_SVD_GESDD &&
	       lt_spectrum_route(128, 128) == LT_SVD_GRAM && lt_spectrum_route(64, 256) == LT_SVD_GRAM &&
	       lt_spectrum_route(3072, 768) == LT_SVD_GRAM && lt_spectrum_route(1, 100000) == LT_SVD_GRAM,
	       "route rule: gesdd for small near-square matrices, gram otherwise");
	lt_spectrum *s = lt_spectrum_of_tensor(tensor("heavy", "w"), LT_SVD_AUTO, &err);
	tap_ok(s && s->route == LT_SVD_GESDD, "auto runs gesdd on 80 x 160");
	lt_spectrum_free(s);

	/* OpenBLAS threads: every core during the call, then as before. */
	int before = lt_blas_threads();
	lt_blas_set_threads(1);
	s = lt_spectrum_of_tensor(tensor("a40x70", "w"), LT_SVD_GRAM, &err);
	tap_ok(s && lt_blas_threads() == 1, "the OpenBLAS thread setting is restored");
	lt_spectrum_free(s);
	lt_blas_set_threads(before);

	check_vector_view(1, 300);
	check_vector_view(300, 1);
	check_vector_view(1, 1);

	lt_tensor *z = matrix(30, 200);
	for (int r = LT_SVD_GESDD; r <= LT_SVD_GRAM; r++) {
		s = lt_spectrum_of_tensor(z, (lt_svd_route)r, &err);
		int zeros = s != NULL;
		for (int64_t i = 0; s && i < s->count; i++)
			zeros &= s->sigma[i] == 0 && s->cum_energy[i] == 0;
		tap_ok(zeros && s->count == 30 && (s->flags & LT_SPECTRUM_ZERO) && s->rank == 0 &&
		       s->rank90 == 0 && s->stable_rank == 0 && s->effective_rank == 0 && isnan(s->alpha),
		       "all-zero 30 x 200 (%s): sigma 0, ranks 0, no alpha", lt_svd_route_name((lt_svd_route)r));
		lt_spectrum_free(s);
	}

	/* Errors. */
	int64_t n1 = 10;
	lt_tensor *vec = lt_tensor_new(1, &n1, &err);
	s = lt_spectrum_of_tensor(vec, LT_SVD_AUTO, &err);
	tap_ok(!s && err.code == LT_EINVAL && strstr(err.msg, "1-D"), "1-D tensor refused: %s", err.msg);
	lt_tensor_unref(vec);
	float *zv = lt_tensor_data_mut(z, &err);
	zv[7 * 200 + 3] = NAN;
	s = lt_spectrum_of_tensor(z, LT_SVD_AUTO, &err);
	tap_ok(!s && err.code == LT_EINVAL && strstr(err.msg, "non-finite") && strstr(err.msg, "[7, 3]"),
	       "NaN refused: %s", err.msg);
	zv[7 * 200 + 3] = -INFINITY;
	double sig[1];
	tap_ok(lt_spectrum_singular_values(zv, 30, 200, LT_SVD_GRAM, sig, &err) == LT_EINVAL,
	       "infinity refused: %s", err.msg);
	lt_tensor_unref(z);
	float one = 1;
	tap_ok(!lt_spectrum_compute(&one, 0, 5, LT_SVD_AUTO, &err) && err.code == LT_EINVAL,
	       "empty matrix refused: %s", err.msg);
	tap_ok(!lt_spectrum_compute(&one, (int64_t)1 << 40, (int64_t)1 << 40, LT_SVD_AUTO, &err) &&
	       err.code == LT_ERANGE, "2^40 x 2^40 refused before reading: %s", err.msg);
	tap_ok(!lt_spectrum_compute(&one, (int64_t)INT32_MAX + 1, 1, LT_SVD_AUTO, &err) &&
	       err.code == LT_ERANGE, "a side beyond LAPACK's int refused: %s", err.msg);

	/* The power-law fit on its own. */
	double lam[2000], a, xmin, ks;
	int64_t tail;
	pareto(lam, 2000, 2.5);
	int rc = lt_spectrum_fit_alpha(lam, 2000, &a, &xmin, &ks, &tail, &err);
	tap_ok(rc == 0 && fabs(a - 2.5) < 0.05 && ks < 0.02 && tail >= 1000,
	       "Pareto quantiles with alpha 2.5: fitted %.4f (x_min %.4g, tail %lld, D %.3g)", a, xmin,
	       (long long)tail, ks);
	for (int i = 0; i < 2000; i++)
		lam[i] *= 1e-3;
	double a2, xmin2, ks2;
	int64_t tail2;
	lt_spectrum_fit_alpha(lam, 2000, &a2, &xmin2, &ks2, &tail2, &err);
	tap_ok(tap_close(a2, a, 1e-9, 0) && tail2 == tail && tap_close(xmin2, xmin * 1e-3, 1e-9, 0),
	       "alpha is scale invariant (%.9g vs %.9g)", a2, a);
	double few[12] = {5, 4, 3, 2, 1, 0.5, 0.25, 0.1, 0.05, 0, -1, 0};
	rc = lt_spectrum_fit_alpha(few, 12, &a, &xmin, &ks, &tail, &err);
	tap_ok(rc == 0 && isnan(a) && isnan(xmin) && tail == 0, "9 positive values: no alpha");
	double flat[20];
	for (int i = 0; i < 20; i++)
		flat[i] = 2;
	rc = lt_spectrum_fit_alpha(flat, 20, &a, &xmin, &ks, &tail, &err);
	tap_ok(rc == 0 && isnan(a) && tail == 0, "20 equal values: no alpha");

	/* Allocation failures: NULL with LT_ENOMEM until every site passed. */
	for (int r = LT_SVD_GESDD; r <= LT_SVD_GRAM; r++) {
		int fails = 0, ok = 1;
		for (long i = 0; i < 50; i++) {
			lt_mem_fail_after(i);
			s = lt_spectrum_of_tensor(tensor("heavy", "w"), (lt_svd_route)r, &err);
			lt_mem_fail_after(-1);
			if (s) {
				lt_spectrum_free(s);
				break;
			}
			fails++;
			ok &= err.code == LT_ENOMEM;
		}
		tap_ok(fails > 0 && ok, "%s: each of %d allocation failures gives LT_ENOMEM",
		       lt_svd_route_name((lt_svd_route)r), fails);
	}
	lt_model_unref(ref);
	return tap_done();
}
