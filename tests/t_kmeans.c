/* k-means weight sharing against a plain numpy Lloyd loop
 * (tests/fixtures/kmeans.safetensors, made by gen_kmeans_fixtures.py) and a
 * direct C one on small arrays, plus precision beside large values, random
 * initialisation, exact convergence on a large input, exclusion,
 * degenerate inputs, centroid fine-tuning, refusals and allocation
 * failures. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/rng.h"
#include "io/open.h"
#include "kern/kmeans.h"
#include "tap.h"
#include "testutil.h"

static lt_model *ref;

static lt_tensor *ref_t(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static lt_tensor *ref_t(const char *fmt, ...)
{
	char key[96];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(key, sizeof key, fmt, ap);
	va_end(ap);
	return lt_model_tensor(ref, key);
}

/* An F64 reference copied out (the file does not align it to 8 bytes). */
static void ref_f64(lt_tensor *t, double *out)
{
	memcpy(out, lt_tensor_raw(t), lt_tensor_nbytes(t));
}

static int included(const float *w, const float *mask, int skip_zeros, int64_t i)
{
	return !(mask && mask[i] == 0.0f) && !(skip_zeros && w[i] == 0.0f);
}

static int same_bits(float a, float b)
{
	return !memcmp(&a, &b, sizeof a);
}

/* out and the scheme agree: table[code] bit for bit where included, +0.0f
 * and code 0 elsewhere; the scheme is a sorted one-group codebook. */
static int consistent(const lt_scheme *s, const float *w, const float *mask, int skip_zeros, int64_t n,
		      const float *out, int k)
{
	int bits = 0;
	while ((1 << bits) < k)
		bits++;
	int ok = s->kind == LT_SCHEME_CODEBOOK && s->k == k && s->bits == bits && s->groups == 1 &&
		 s->numel == n;
	for (int j = 1; ok && j < k; j++)
		ok = s->table[j - 1] <= s->table[j];
	for (int64_t i = 0; ok && i < n; i++) {
		if (included(w, mask, skip_zeros, i))
			ok = s->codes[i] < k && same_bits(out[i], lt_scheme_value(s, 0, s->codes[i]));
		else
			ok = s->codes[i] == 0 && same_bits(out[i], 0.0f);
	}
	return ok;
}

static void against_numpy(const char *data, int k)
{
	static const char *tags[2] = {"lin", "den"};
	lt_err err = {0};
	lt_tensor *wt = ref_t("%s.w", data), *mt = ref_t("%s.mask", data);
	const float *w = lt_tensor_data(wt, &err), *mask = mt ? lt_tensor_data(mt, &err) : NULL;
	int64_t n = lt_tensor_numel(wt);
	int skip = !strcmp(data, "pruned");
	float *out = malloc((size_t)n * sizeof *out);
	for (int v = 0; v < 2; v++) {
		const char *tag = tags[v];
		lt_kmeans_opts opt = {.k = k, .init = v ? LT_KMEANS_DENSITY : LT_KMEANS_LINEAR,
				      .skip_zeros = skip};
		double c0[LT_KMEANS_MAX_K], c[LT_KMEANS_MAX_K], inertia;
		ref_f64(ref_t("%s.k%d.%s.c0", data, k, tag), c0);
		ref_f64(ref_t("%s.k%d.%s.c", data, k, tag), c);
		ref_f64(ref_t("%s.k%d.%s.inertia", data, k, tag), &inertia);
		lt_tensor *ct = ref_t("%s.k%d.%s.codes", data, k, tag);
		const float *codes = lt_tensor_data(ct, &err);
		int64_t iters;
		memcpy(&iters, lt_tensor_raw(ref_t("%s.k%d.%s.iters", data, k, tag)), sizeof iters);

		double init[LT_KMEANS_MAX_K], worst = 0.0;
		int rc = lt_kmeans_init_centroids(w, mask, n, &opt, init, &err);
		for (int j = 0; !rc && j < k; j++)
			worst = fmax(worst, fabs(init[j] - c0[j]) / fmax(fabs(c0[j]), 1e-30));
		tap_ok(!rc && worst <= 1e-15, "%s k=%d %s: initial centroids as numpy's %s (worst %.1e)", data, k,
		       tag, v ? "quantile" : "linspace", worst);

		lt_scheme *s = NULL;
		lt_kmeans_stats st;
		rc = lt_kmeans_1d(w, mask, n, &opt, &s, out, &st, &err);
		if (rc) {
			tap_ok(0, "%s k=%d %s: clustering failed: %s", data, k, tag, err.msg);
			continue;
		}
		worst = 0.0;
		for (int j = 0; j < k; j++)
			worst = fmax(worst, fabs(s->table[j] - c[j]) / fmax(fabs(c[j]), 1e-30));
		tap_ok(worst <= 1e-5 && st.converged && st.iterations == iters,
		       "%s k=%d %s: centroids as numpy's Lloyd (worst %.1e), converged in %d steps (numpy %lld)",
		       data, k, tag, worst, st.iterations, (long long)iters);

		/* codes, in index order over the included elements; a
		 * disagreement must be a tie between the two centroids */
		int64_t m = 0, differ = 0, untied = 0, counts[LT_KMEANS_MAX_K] = {0};
		for (int64_t i = 0; i < n; i++) {
			if (!included(w, mask, skip, i))
				continue;
			int want = (int)codes[m++];
			counts[want]++;
			if (s->codes[i] != want) {
				double da = fabs(w[i] - c[want]), db = fabs(w[i] - c[s->codes[i]]);
				differ++;
				untied += fabs(da - db) > 1e-12 * fmax(da, 1e-30);
			}
		}
		int empty = 0;
		for (int j = 0; j < k; j++)
			empty += counts[j] == 0;
		tap_ok(m == st.included && untied == 0 && st.empty == empty,
		       "%s k=%d %s: %lld codes as numpy's (%lld differ, on exact ties), %d empty clusters", data,
		       k, tag, (long long)m, (long long)differ, st.empty);
		tap_ok(tap_close(st.inertia, inertia, 1e-6, 1e-12), "%s k=%d %s: inertia %.9g (numpy %.9g)", data,
		       k, tag, st.inertia, inertia);
		tap_ok(consistent(s, w, mask, skip, n, out, k),
		       "%s k=%d %s: shared values are lt_scheme_value of the codes, 0 where excluded", data, k,
		       tag);
		lt_scheme_free(s);
	}
	free(out);
}

/* n values of a normal distribution (sd 0.05), deterministic in seed. */
static float *normal_values(int64_t n, uint64_t seed)
{
	float *w = malloc((size_t)n * sizeof *w);
	lt_rng r = {seed};
	for (int64_t i = 0; i < n; i++) {
		double u = 1.0 - lt_rng_uniform(&r), v = lt_rng_uniform(&r);
		w[i] = (float)(0.05 * sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
	}
	return w;
}

/* A plain Lloyd loop from the given sorted centroids: argmin over |x - c|
 * in double (the first on a tie), means by direct sums, empty clusters
 * kept, centroids sorted, until unchanged. Returns the steps. */
static int direct_lloyd(const float *x, int64_t n, int k, double *c, int *codes)
{
	int it;
	for (it = 1;; it++) {
		int64_t cnt[LT_KMEANS_MAX_K] = {0};
		double sum[LT_KMEANS_MAX_K] = {0}, nc[LT_KMEANS_MAX_K];
		for (int64_t i = 0; i < n; i++) {
			int best = 0;
			for (int j = 1; j < k; j++)
				if (fabs((double)x[i] - c[j]) < fabs((double)x[i] - c[best]))
					best = j;
			codes[i] = best;
			cnt[best]++;
			sum[best] += x[i];
		}
		for (int j = 0; j < k; j++)
			nc[j] = cnt[j] ? sum[j] / (double)cnt[j] : c[j];
		for (int i = 1; i < k; i++) {
			double v = nc[i];
			int j = i;
			for (; j > 0 && nc[j - 1] > v; j--)
				nc[j] = nc[j - 1];
			nc[j] = v;
		}
		if (!memcmp(nc, c, (size_t)k * sizeof *c))
			return it;
		memcpy(c, nc, (size_t)k * sizeof *c);
	}
}

/* Small random arrays whose sums are exact in double (so the order of
 * summation cannot matter): values on grids with many exact midpoints,
 * subnormals, signed zeros among a few others; every init, k up to 41.
 * Centroids, codes and steps must equal the direct loop's exactly. */
static void against_direct_loop(void)
{
	lt_err err = {0};
	lt_rng r = {99};
	int trials = 0, same = 0;
	for (int t = 0; t < 600; t++) {
		int64_t n = 1 + (int64_t)lt_rng_below(&r, 300);
		int k = 2 + (int)lt_rng_below(&r, 40), kind = (int)lt_rng_below(&r, 4);
		float *x = malloc((size_t)n * sizeof *x);
		int *codes = malloc((size_t)n * sizeof *codes);
		for (int64_t i = 0; i < n; i++) {
			if (kind == 0)
				x[i] = (float)((int)lt_rng_below(&r, 9) - 4);
			else if (kind == 1)
				x[i] = (float)((int)lt_rng_below(&r, 200) - 100) / 8.0f;
			else if (kind == 2)
				x[i] = (lt_rng_uniform(&r) - 0.5f) * 1e-38f;
			else
				x[i] = lt_rng_below(&r, 4) == 0 ? lt_rng_uniform(&r)
				       : lt_rng_below(&r, 2) ? 0.0f : -0.0f;
		}
		lt_kmeans_opts opt = {.k = k, .init = (lt_kmeans_init)(t % 3), .seed = (uint64_t)t};
		double c[LT_KMEANS_MAX_K];
		lt_scheme *s = NULL;
		lt_kmeans_stats st;
		int ok = !lt_kmeans_init_centroids(x, NULL, n, &opt, c, &err) &&
			 !lt_kmeans_1d(x, NULL, n, &opt, &s, NULL, &st, &err);
		int it = ok ? direct_lloyd(x, n, k, c, codes) : 0;
		ok = ok && st.converged && st.iterations == it;
		for (int j = 0; ok && j < k; j++)
			ok = s->table[j] == (float)c[j];
		for (int64_t i = 0; ok && i < n; i++)
			ok = s->codes[i] == codes[i];
		if (!ok && trials - same < 3)
			tap_diag("trial %d (kind %d, n %lld, k %d, init %d) differs", t, kind, (long long)n, k,
				 t % 3);
		trials++;
		same += ok;
		lt_scheme_free(s);
		free(x);
		free(codes);
	}
	tap_ok(same == trials,
	       "%d of %d small random arrays exactly as a direct Lloyd loop (centroids, codes, steps)", same,
	       trials);
}

/* Small values beside large ones: their cluster's mean keeps its precision
 * (plain prefix sums would lose it to the sum of the large values). */
static void precision(void)
{
	lt_err err = {0};
	const int64_t n = 1000000, small = 1000;
	float *w = malloc((size_t)n * sizeof *w);
	lt_rng r = {8};
	double want = 0.0;
	for (int64_t i = 0; i < n; i++) {
		float u = lt_rng_uniform(&r);
		if (i < small) {
			w[i] = 1e-6f + 1e-6f * u;
			want += w[i];
		} else {
			w[i] = (i % 2 ? -1000.0f : 999.0f) - u;
		}
	}
	want /= (double)small;
	lt_kmeans_opts opt = {.k = 3, .init = LT_KMEANS_LINEAR};
	lt_scheme *s = NULL;
	lt_kmeans_stats st;
	int rc = lt_kmeans_1d(w, NULL, n, &opt, &s, NULL, &st, &err);
	tap_ok(!rc && st.converged && fabs(s->table[1] - want) <= 1e-6 * want,
	       "1000 values near 1e-6 among a million near +-1000: their mean %.9g (direct %.9g)",
	       rc ? 0.0 : s->table[1], want);
	lt_scheme_free(s);
	free(w);
}

/* Random initialisation: reproducible, distinct data values; with fewer
 * distinct values than k, all of them. */
static void random_init(void)
{
	lt_err err = {0};
	const int64_t n = 5000;
	float *w = normal_values(n, 11);
	lt_kmeans_opts opt = {.k = 32, .init = LT_KMEANS_RANDOM, .seed = 5};
	double a[LT_KMEANS_MAX_K], b[LT_KMEANS_MAX_K], c[LT_KMEANS_MAX_K];
	int rc = lt_kmeans_init_centroids(w, NULL, n, &opt, a, &err);
	rc |= lt_kmeans_init_centroids(w, NULL, n, &opt, b, &err);
	opt.seed = 6;
	rc |= lt_kmeans_init_centroids(w, NULL, n, &opt, c, &err);
	int data = !rc, distinct = !rc;
	for (int j = 0; !rc && j < 32; j++) {
		int found = 0;
		for (int64_t i = 0; i < n && !found; i++)
			found = (double)w[i] == a[j];
		data &= found;
		distinct &= j == 0 || a[j - 1] < a[j];
	}
	tap_ok(!rc && !memcmp(a, b, 32 * sizeof *a) && memcmp(a, c, 32 * sizeof *a),
	       "random init: the same seed draws the same centroids, another seed others");
	tap_ok(data && distinct, "random init: 32 distinct values of the data, sorted");

	lt_scheme *s1 = NULL, *s2 = NULL;
	lt_kmeans_stats st;
	opt.seed = 5;
	rc = lt_kmeans_1d(w, NULL, n, &opt, &s1, NULL, &st, &err);
	rc |= lt_kmeans_1d(w, NULL, n, &opt, &s2, NULL, NULL, &err);
	tap_ok(!rc && st.converged && !memcmp(s1->table, s2->table, 32 * sizeof(float)) &&
	       !memcmp(s1->codes, s2->codes, (size_t)n * sizeof *s1->codes),
	       "random init: clustering reproducible (%d steps, no out array)", st.iterations);
	lt_scheme_free(s1);
	lt_scheme_free(s2);

	/* 5 distinct values (one of them -0 and +0), k = 8 */
	const float few[12] = {3, 1, -0.0f, 2, 3, 3, 0, -1, 1, 2, 2, 3};
	opt = (lt_kmeans_opts){.k = 8, .init = LT_KMEANS_RANDOM, .seed = 1};
	rc = lt_kmeans_init_centroids(few, NULL, 12, &opt, a, &err);
	const double want[8] = {-1, 0, 1, 2, 3, 3, 3, 3};
	tap_ok(!rc && !memcmp(a, want, sizeof want),
	       "random init, 5 distinct values for k = 8: all of them, the rest repeat the largest");
	float out[12];
	rc = lt_kmeans_1d(few, NULL, 12, &opt, &s1, out, &st, &err);
	int exact = !rc;
	for (int i = 0; exact && i < 12; i++)
		exact = out[i] == few[i];
	tap_ok(exact && st.inertia == 0.0 && st.empty == 3 && st.converged && st.iterations == 1,
	       "every value its own cluster: inertia 0, 3 empty, converged at once");
	lt_scheme_free(s1);
	free(w);
}

/* A large input (several threads): the result is a fixed point. Codes are
 * the nearest table entry (up to the f32 rounding of the table), each
 * entry is the mean of its values, and a limit one step short stops
 * unconverged. */
static void exact_convergence(void)
{
	lt_err err = {0};
	const int64_t n = 400000;
	float *w = normal_values(n, 3), *mask = malloc((size_t)n * sizeof *mask), *out = malloc((size_t)n * 4);
	for (int64_t i = 0; i < n; i++) {
		mask[i] = i % 7 == 3 ? 0.0f : 1.0f;
		if (i % 7 == 3)
			w[i] = i % 2 ? NAN : 1e30f; /* masked: never looked at */
	}
	lt_kmeans_opts opt = {.k = 64, .init = LT_KMEANS_LINEAR};
	lt_scheme *s = NULL;
	lt_kmeans_stats st;
	int rc = lt_kmeans_1d(w, mask, n, &opt, &s, out, &st, &err);
	if (rc) {
		tap_ok(0, "400k masked values: %s", err.msg);
		return;
	}
	double sum[LT_KMEANS_MAX_K] = {0};
	int64_t cnt[LT_KMEANS_MAX_K] = {0}, far = 0, included_n = 0;
	for (int64_t i = 0; i < n; i++) {
		if (mask[i] == 0.0f)
			continue;
		included_n++;
		int c = s->codes[i], best = 0;
		for (int j = 1; j < 64; j++)
			if (fabsf(w[i] - s->table[j]) < fabsf(w[i] - s->table[best]))
				best = j;
		double db = fabs((double)w[i] - s->table[best]), dc = fabs((double)w[i] - s->table[c]);
		far += dc - db > 1e-6 * fabs(s->table[c]) + 1e-12;
		sum[c] += w[i];
		cnt[c]++;
	}
	int means = 1;
	for (int j = 0; j < 64; j++)
		means &= cnt[j] ? fabs(sum[j] / (double)cnt[j] - s->table[j]) <= 1e-6 * fabs(s->table[j]) :
				  st.empty > 0;
	tap_ok(st.converged && st.included == included_n && far == 0 && means,
	       "400k values, 1 in 7 masked (NaN, 1e30): a fixed point after %d steps (codes nearest, "
	       "entries the means)", st.iterations);
	tap_ok(consistent(s, w, mask, 0, n, out, 64), "400k values: shared values match the scheme");

	lt_scheme *s2 = NULL;
	lt_kmeans_stats st2;
	opt.max_iter = st.iterations - 1;
	rc = lt_kmeans_1d(w, mask, n, &opt, &s2, NULL, &st2, &err);
	tap_ok(!rc && !st2.converged && st2.iterations == st.iterations - 1,
	       "limit of %d steps: stops unconverged", opt.max_iter);
	lt_scheme_free(s2);
	opt.max_iter = st.iterations;
	rc = lt_kmeans_1d(w, mask, n, &opt, &s2, NULL, &st2, &err);
	tap_ok(!rc && st2.converged && !memcmp(s2->table, s->table, 64 * sizeof(float)) &&
	       !memcmp(s2->codes, s->codes, (size_t)n * sizeof *s->codes) && st2.inertia == st.inertia,
	       "limit of %d steps: converged, the same result", opt.max_iter);
	lt_scheme_free(s2);

	/* the same values without the masked ones give the same clustering */
	float *packed = malloc((size_t)n * sizeof *packed);
	int64_t m = 0;
	for (int64_t i = 0; i < n; i++)
		if (mask[i] != 0.0f)
			packed[m++] = w[i];
	opt.max_iter = 0;
	rc = lt_kmeans_1d(packed, NULL, m, &opt, &s2, NULL, &st2, &err);
	tap_ok(!rc && !memcmp(s2->table, s->table, 64 * sizeof(float)) &&
	       tap_close(st2.inertia, st.inertia, 1e-12, 0) && st2.iterations == st.iterations,
	       "masking equals leaving the values out");
	lt_scheme_free(s2);
	free(packed);

	/* fine-tuning: gradient sums against a direct loop; apply */
	float *g = normal_values(n, 4);
	double tg[LT_KMEANS_MAX_K], direct[LT_KMEANS_MAX_K] = {0};
	lt_kmeans_grad(s, mask, g, tg);
	for (int64_t i = 0; i < n; i++)
		if (mask[i] != 0.0f)
			direct[s->codes[i]] += g[i];
	double worst = 0.0;
	for (int j = 0; j < 64; j++)
		worst = fmax(worst, fabs(tg[j] - direct[j]));
	tap_ok(worst <= 1e-12, "gradient of the shared values: per-code sums (off by %.1e)", worst);
	lt_kmeans_grad(s, NULL, g, tg);
	double all = 0.0, direct_all = 0.0;
	for (int j = 0; j < 64; j++)
		all += tg[j];
	for (int64_t i = 0; i < n; i++)
		direct_all += g[i];
	tap_ok(fabs(all - direct_all) <= 1e-9, "without a mask every element counts (masked ones under code 0)");
	for (int j = 0; j < 64; j++)
		s->table[j] -= (float)(0.01 * tg[j]);
	lt_kmeans_apply(s, mask, out);
	float *dec = malloc((size_t)n * sizeof *dec);
	lt_scheme_decode(s, mask, dec);
	int same = !memcmp(out, dec, (size_t)n * sizeof *out);
	for (int64_t i = 0; same && i < n; i++)
		same = same_bits(out[i], mask[i] != 0.0f ? lt_scheme_value(s, 0, s->codes[i]) : 0.0f);
	tap_ok(same, "weights rewritten from a changed table: lt_scheme_value bit for bit, 0 where masked");
	lt_kmeans_apply(s, NULL, out);
	same = 1;
	for (int64_t i = 0; same && i < n; i++)
		same = same_bits(out[i], s->table[s->codes[i]]);
	tap_ok(same, "rewritten without a mask: every element from the table");
	free(dec);
	free(g);
	lt_scheme_free(s);
	free(w);
	free(mask);
	free(out);
}

static void small_cases(void)
{
	lt_err err = {0};
	lt_scheme *s = NULL;
	lt_kmeans_stats st;
	float out[8];

	/* exact zeros excluded (both signs), the rest in two clusters */
	const float z[8] = {0, 1, 2, -0.0f, 10, 11, 0, 12};
	lt_kmeans_opts opt = {.k = 2, .init = LT_KMEANS_LINEAR, .skip_zeros = 1};
	int rc = lt_kmeans_1d(z, NULL, 8, &opt, &s, out, &st, &err);
	tap_ok(!rc && s->table[0] == 1.5f && s->table[1] == 11.0f && st.included == 5 &&
	       same_bits(out[0], 0.0f) && same_bits(out[3], 0.0f) && s->codes[3] == 0 && out[4] == 11.0f &&
	       st.inertia == 2.5, "skip_zeros: +0 and -0 left out (shared value +0), {1,2} and {10,11,12}");
	lt_scheme_free(s);
	opt.skip_zeros = 0;
	rc = lt_kmeans_1d(z, NULL, 8, &opt, &s, out, &st, &err);
	tap_ok(!rc && st.included == 8 && s->table[0] == 0.6f && s->table[1] == 11.0f,
	       "without skip_zeros the zeros are values like any other");
	lt_scheme_free(s);

	/* a value exactly on a midpoint goes to the lower cluster */
	const float t[5] = {0, 1, 2, 3, 4};
	opt = (lt_kmeans_opts){.k = 2, .init = LT_KMEANS_LINEAR, .max_iter = 1};
	rc = lt_kmeans_1d(t, NULL, 5, &opt, &s, out, &st, &err);
	tap_ok(!rc && s->table[0] == 1.0f && s->table[1] == 3.5f && !st.converged && st.iterations == 1,
	       "a value on the midpoint (2 between 0 and 4) goes to the lower cluster: {0,1,2} {3,4}");
	lt_scheme_free(s);

	/* tiny values between -1 and 1: |x + 1| and |x - 1| round equal up to
	 * about 1e-16, so an argmin sends them to the lower cluster */
	const float tiny[6] = {-1, 1, 1e-30f, 1e-20f, 1e-17f, 1e-15f};
	double c[2] = {-1, 1};
	int codes[6];
	int it = direct_lloyd(tiny, 6, 2, c, codes);
	opt = (lt_kmeans_opts){.k = 2, .init = LT_KMEANS_LINEAR};
	rc = lt_kmeans_1d(tiny, NULL, 6, &opt, &s, out, &st, &err);
	tap_ok(!rc && st.iterations == it && s->table[0] == (float)c[0] && s->table[1] == (float)c[1] &&
	       s->codes[4] == codes[4] && s->codes[5] == codes[5],
	       "distances that round equal near a midpoint: decided as an argmin decides (%d steps)", it);
	lt_scheme_free(s);

	/* more clusters than distinct values */
	const float d[5] = {1, 2, 1, 2, 2};
	opt = (lt_kmeans_opts){.k = 4, .init = LT_KMEANS_LINEAR};
	rc = lt_kmeans_1d(d, NULL, 5, &opt, &s, out, &st, &err);
	tap_ok(!rc && s->table[0] == 1.0f && s->table[3] == 2.0f && s->codes[0] == 0 && s->codes[1] == 3 &&
	       st.empty == 2 && st.inertia == 0.0 && st.converged && s->bits == 2,
	       "k = 4 over 2 distinct values: 2 empty clusters keep their centroids, inertia 0");
	lt_scheme_free(s);

	/* all values equal: every init, every code 0 */
	float same[100];
	for (int i = 0; i < 100; i++)
		same[i] = 0.7f;
	static const lt_kmeans_init inits[3] = {LT_KMEANS_LINEAR, LT_KMEANS_DENSITY, LT_KMEANS_RANDOM};
	for (int v = 0; v < 3; v++) {
		float o[100];
		opt = (lt_kmeans_opts){.k = 16, .init = inits[v]};
		rc = lt_kmeans_1d(same, NULL, 100, &opt, &s, o, &st, &err);
		int ok = !rc && st.converged && st.iterations == 1 && st.empty == 15 && st.inertia == 0.0;
		for (int i = 0; ok && i < 100; i++)
			ok = s->codes[i] == 0 && o[i] == 0.7f;
		for (int j = 0; ok && j < 16; j++)
			ok = s->table[j] == 0.7f;
		tap_ok(ok, "100 equal values, init %d: one cluster, every code 0, 15 empty", v);
		lt_scheme_free(s);
	}

	/* one value */
	const float one[1] = {-3.25f};
	opt = (lt_kmeans_opts){.k = 2, .init = LT_KMEANS_DENSITY};
	rc = lt_kmeans_1d(one, NULL, 1, &opt, &s, out, &st, &err);
	tap_ok(!rc && s->table[0] == -3.25f && s->table[1] == -3.25f && s->codes[0] == 0 && out[0] == -3.25f &&
	       st.included == 1 && s->bits == 1, "n = 1: both centroids the value, code 0");
	lt_scheme_free(s);

	/* 256 clusters: 8 bits; 3 clusters: 2 bits */
	float *w = normal_values(3000, 9);
	float *o = malloc(3000 * sizeof *o);
	opt = (lt_kmeans_opts){.k = 256, .init = LT_KMEANS_DENSITY};
	rc = lt_kmeans_1d(w, NULL, 3000, &opt, &s, o, &st, &err);
	tap_ok(!rc && s->bits == 8 && s->k == 256 && consistent(s, w, NULL, 0, 3000, o, 256),
	       "k = 256: 8-bit codes");
	lt_scheme_free(s);
	opt.k = 3;
	rc = lt_kmeans_1d(w, NULL, 3000, &opt, &s, o, &st, &err);
	tap_ok(!rc && s->bits == 2 && consistent(s, w, NULL, 0, 3000, o, 3), "k = 3: 2-bit codes");
	lt_scheme_free(s);
	/* out may be w itself */
	memcpy(o, w, 3000 * sizeof *o);
	rc = lt_kmeans_1d(o, NULL, 3000, &opt, &s, o, &st, &err);
	int ok = !rc;
	for (int i = 0; ok && i < 3000; i++)
		ok = same_bits(o[i], s->table[s->codes[i]]);
	tap_ok(ok, "out may be w: rewritten in place");
	lt_scheme_free(s);
	free(w);
	free(o);
}

static void refusals(void)
{
	lt_err err = {0};
	lt_scheme *s = (lt_scheme *)&err; /* must come back NULL */
	float w[6] = {1, 2, 3, 4, 5, 6}, mask[6] = {0};
	lt_kmeans_opts opt = {.k = 1};
	double c[LT_KMEANS_MAX_K];
	int rc = lt_kmeans_1d(w, NULL, 6, &opt, &s, NULL, NULL, &err);
	tap_ok(rc == LT_EINVAL && !s && strstr(err.msg, "2 to 256"), "k = 1 refused: %s", err.msg);
	opt.k = 257;
	rc = lt_kmeans_1d(w, NULL, 6, &opt, &s, NULL, NULL, &err);
	tap_ok(rc == LT_EINVAL && strstr(err.msg, "got 257"), "k = 257 refused: %s", err.msg);
	opt = (lt_kmeans_opts){.k = 4, .max_iter = -1};
	rc = lt_kmeans_1d(w, NULL, 6, &opt, &s, NULL, NULL, &err);
	tap_ok(rc == LT_EINVAL, "negative max_iter refused: %s", err.msg);
	opt = (lt_kmeans_opts){.k = 4, .init = (lt_kmeans_init)9};
	rc = lt_kmeans_init_centroids(w, NULL, 6, &opt, c, &err);
	tap_ok(rc == LT_EINVAL && strstr(err.msg, "initialisation"), "unknown init refused: %s", err.msg);
	opt = (lt_kmeans_opts){.k = 4};
	rc = lt_kmeans_1d(w, NULL, 0, &opt, &s, NULL, NULL, &err);
	tap_ok(rc == LT_EINVAL && strstr(err.msg, "nothing to cluster"), "no elements: %s", err.msg);
	rc = lt_kmeans_1d(w, mask, 6, &opt, &s, NULL, NULL, &err);
	tap_ok(rc == LT_EINVAL && !s && strstr(err.msg, "nothing to cluster"), "everything masked: %s", err.msg);
	float zeros[3] = {0, -0.0f, 0};
	opt.skip_zeros = 1;
	rc = lt_kmeans_1d(zeros, NULL, 3, &opt, &s, NULL, NULL, &err);
	tap_ok(rc == LT_EINVAL && strstr(err.msg, "nothing to cluster"), "only zeros, skipped: %s", err.msg);
	opt.skip_zeros = 0;
	w[4] = NAN;
	rc = lt_kmeans_1d(w, NULL, 6, &opt, &s, NULL, NULL, &err);
	tap_ok(rc == LT_EINVAL && !s && strstr(err.msg, "element 4 is NaN"), "NaN refused: %s", err.msg);
	rc = lt_kmeans_1d(w, NULL, 6, &opt, &s, NULL, NULL, NULL);
	tap_ok(rc == LT_EINVAL && !s, "the same without an lt_err: LT_EINVAL");
	w[2] = -INFINITY;
	rc = lt_kmeans_init_centroids(w, NULL, 6, &opt, c, &err);
	tap_ok(rc == LT_EINVAL && strstr(err.msg, "element 2 is infinite"), "the first of NaN and -inf named: %s",
	       err.msg);
	mask[1] = 1;
	mask[2] = 0;
	rc = lt_kmeans_1d(w, mask, 6, &opt, &s, NULL, NULL, &err);
	tap_ok(rc == 0 && s, "non-finite values under the mask are fine");
	lt_scheme_free(s);

	/* large input (several slices): the lowest bad index is named */
	const int64_t n = 600000;
	float *big = normal_values(n, 1);
	big[n - 10] = NAN;
	big[n / 2 + 3] = INFINITY;
	big[n / 3] = -INFINITY;
	rc = lt_kmeans_1d(big, NULL, n, &opt, &s, NULL, NULL, &err);
	char want[64];
	snprintf(want, sizeof want, "element %lld is infinite", (long long)(n / 3));
	tap_ok(rc == LT_EINVAL && strstr(err.msg, want), "600k values: %s", err.msg);
	free(big);
}

/* Allocation failures: LT_ENOMEM, no scheme, no leak (ASan), until the
 * countdown passes every allocation. */
static void alloc_failures(void)
{
	lt_err err = {0};
	const int64_t n = 400000;
	float *w = normal_values(n, 2), *mask = malloc((size_t)n * sizeof *mask);
	for (int64_t i = 0; i < n; i++)
		mask[i] = i % 3 ? 1.0f : 0.0f;
	lt_kmeans_opts opt = {.k = 16, .init = LT_KMEANS_DENSITY};
	int fails = 0, ok = 1, done = 0;
	for (long i = 0; i < 64 && !done; i++) {
		lt_scheme *s = NULL;
		lt_mem_fail_after(i);
		int rc = lt_kmeans_1d(w, mask, n, &opt, &s, NULL, NULL, &err);
		lt_mem_fail_after(-1);
		if (rc) {
			fails++;
			ok &= rc == LT_ENOMEM && !s;
		} else {
			done = 1;
		}
		lt_scheme_free(s);
	}
	tap_ok(done && fails > 3 && ok, "lt_kmeans_1d: %d allocation failures give LT_ENOMEM, then success",
	       fails);
	fails = 0;
	done = 0;
	double c[LT_KMEANS_MAX_K];
	for (long i = 0; i < 64 && !done; i++) {
		lt_mem_fail_after(i);
		int rc = lt_kmeans_init_centroids(w, NULL, n, &opt, c, &err);
		lt_mem_fail_after(-1);
		if (rc) {
			fails++;
			ok &= rc == LT_ENOMEM;
		} else {
			done = 1;
		}
	}
	tap_ok(done && fails > 2 && ok, "lt_kmeans_init_centroids: %d allocation failures give LT_ENOMEM", fails);
	free(w);
	free(mask);
}

int main(void)
{
	lt_err err = {0};
	ref = lt_model_open(fixture("kmeans.safetensors"), &err);
	if (!ref)
		tap_skip_all("kmeans.safetensors missing");
	against_numpy("normal", 16);
	against_numpy("normal", 256);
	against_numpy("pruned", 2);
	against_numpy("pruned", 32);
	against_numpy("heavy", 64);
	against_numpy("dups", 8);
	against_numpy("dups", 64);
	against_numpy("masked", 16);
	against_numpy("spike", 16);
	against_direct_loop();
	precision();
	random_init();
	exact_convergence();
	small_cases();
	refusals();
	alloc_failures();
	lt_model_unref(ref);
	return tap_done();
}
