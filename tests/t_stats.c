/* Weight statistics against numpy (tests/fixtures/stats.safetensors, made
 * by gen_stats_fixtures.py). */
#include <string.h>

#include "core/mem.h"
#include "io/open.h"
#include "kern/stats.h"
#include "tap.h"
#include "testutil.h"

static lt_model *ref;

static const float *get(const char *name)
{
	lt_tensor *t = lt_model_tensor(ref, name);
	return t ? lt_tensor_data(t, NULL) : NULL;
}

/* F64 / I64 references are read from the raw bytes (exact). */
static double raw_f64(const char *name, int i)
{
	double v;
	memcpy(&v, (const char *)lt_tensor_raw(lt_model_tensor(ref, name)) + 8 * i, 8);
	return v;
}

static int64_t raw_i64(const char *name, int i)
{
	int64_t v;
	memcpy(&v, (const char *)lt_tensor_raw(lt_model_tensor(ref, name)) + 8 * i, 8);
	return v;
}

static void check_hist(lt_tensor *w, const char *name, int bins, double lo, double hi, int log_abs)
{
	lt_err err = {0};
	int64_t counts[64];
	int rc = lt_stats_histogram(w, bins, lo, hi, log_abs, counts, &err);
	int same = rc == 0;
	for (int i = 0; same && i < bins; i++)
		same = counts[i] == raw_i64(name, i);
	tap_ok(same, "%s: %d bins match numpy.histogram", name, bins);
}

int main(void)
{
	lt_err err = {0};
	ref = lt_model_open(fixture("stats.safetensors"), &err);
	if (!ref)
		tap_skip_all("stats.safetensors missing");
	lt_tensor *w = lt_model_tensor(ref, "w");
	lt_stats s;
	tap_ok(lt_stats_compute(w, &s, &err) == 0 && s.n == 101 * 99, "summary computed");
	double want[7];
	for (int i = 0; i < 7; i++)
		want[i] = raw_f64("summary", i);
	tap_ok(s.min == want[0] && s.max == want[1], "min and max exact");
	tap_ok(tap_close(s.mean, want[2], 1e-9, 1e-12) && tap_close(s.std, want[3], 1e-9, 0),
	       "mean %.9g and std %.9g match numpy", s.mean, s.std);
	tap_ok(tap_close(s.l1, want[4], 1e-9, 0) && tap_close(s.l2, want[5], 1e-9, 0), "L1 and L2 norms");
	tap_ok(s.zeros == (int64_t)want[6] && s.nonfinite == 0, "%lld zeros", (long long)s.zeros);

	size_t bytes = (size_t)lt_tensor_numel(w) * sizeof(float);
	float *before = lt_malloc(bytes);
	memcpy(before, get("w"), bytes);
	double q[9], pct[9];
	for (int i = 0; i < 9; i++)
		q[i] = raw_f64("q", i);
	int rc = lt_stats_percentiles(w, q, 9, pct, &err);
	double worst = 0;
	for (int i = 0; i < 9; i++)
		worst = fmax(worst, fabs(pct[i] - raw_f64("pct", i)));
	tap_ok(rc == 0 && worst < 1e-12, "9 percentiles match numpy.percentile (max diff %.2g)", worst);
	tap_ok(memcmp(before, get("w"), bytes) == 0, "selection works on a copy: the tensor is unchanged");
	lt_free(before);

	check_hist(w, "hist", 20, s.min, s.max, 0);
	check_hist(w, "hist_sym", 16, -1, 1, 0);
	check_hist(w, "loghist", 12, -6, 0, 1);

	double bad = 101;
	tap_ok(lt_stats_percentiles(w, &bad, 1, pct, &err) == LT_EINVAL, "percentile above 100 refused: %s", err.msg);
	int64_t c[2];
	tap_ok(lt_stats_histogram(w, 0, 0, 1, 0, c, &err) == LT_EINVAL &&
	       lt_stats_histogram(w, 2, 1, 1, 0, c, &err) == LT_EINVAL, "empty range or no bins refused");

	/* NaN and infinities are counted and left out. */
	int64_t shape[1] = {5};
	lt_tensor *t = lt_tensor_new(1, shape, &err);
	float *v = lt_tensor_data_mut(t, &err);
	v[0] = NAN, v[1] = INFINITY, v[2] = 1, v[3] = 3, v[4] = 0;
	lt_stats_compute(t, &s, &err);
	double med = 50, m;
	lt_stats_percentiles(t, &med, 1, &m, &err);
	tap_ok(s.nonfinite == 2 && s.max == 3 && tap_close(s.mean, 4.0 / 3, 1e-12, 0) && m == 1,
	       "non-finite values are left out (mean %.3f, median %g)", s.mean, m);
	v[2] = v[3] = v[4] = NAN;
	tap_ok(lt_stats_percentiles(t, &med, 1, &m, &err) == LT_EINVAL, "no finite value: %s", err.msg);
	lt_tensor_unref(t);
	lt_model_unref(ref);
	return tap_done();
}
