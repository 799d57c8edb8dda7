/* Density, difference and filter maps against numpy
 * (tests/fixtures/spectrum.safetensors, made by gen_spectrum_fixtures.py). */
#include <stdint.h>
#include <string.h>

#include "core/mem.h"
#include "io/open.h"
#include "kern/density.h"
#include "tap.h"
#include "testutil.h"

static lt_model *ref;

static lt_tensor *get(const char *name)
{
	lt_tensor *t = lt_model_tensor(ref, name);
	if (t)
		lt_tensor_data(t, NULL); /* convert now, not inside a sweep */
	return t;
}

static double raw_f64(const char *name, int64_t i)
{
	double v;
	memcpy(&v, (const char *)lt_tensor_raw(lt_model_tensor(ref, name)) + 8 * i, 8);
	return v;
}

static int64_t raw_i64(const char *name, int64_t i)
{
	int64_t v;
	memcpy(&v, (const char *)lt_tensor_raw(lt_model_tensor(ref, name)) + 8 * i, 8);
	return v;
}

/* got[0..n) against the F64 reference `name` (also n entries). */
static int matches(const double *got, int64_t n, const char *name)
{
	if (lt_tensor_numel(lt_model_tensor(ref, name)) != n)
		return 0;
	for (int64_t i = 0; i < n; i++)
		if (!tap_close(got[i], raw_f64(name, i), 1e-12, 1e-15))
			return 0;
	return 1;
}

static void check_map(const char *c, int want_gw, int want_gh)
{
	char name[64], nz[64], ma[64];
	snprintf(name, sizeof name, "%s.w", c);
	snprintf(nz, sizeof nz, "%s.nonzero", c);
	snprintf(ma, sizeof ma, "%s.mean_abs", c);
	char grid[64];
	snprintf(grid, sizeof grid, "%s.grid", c);
	lt_err err = {0};
	lt_density *d = lt_density_of_tensor(get(name), (int)raw_i64(grid, 0), (int)raw_i64(grid, 1), &err);
	int64_t cells = d ? (int64_t)d->gw * d->gh : 0;
	tap_ok(d && d->gw == want_gw && d->gh == want_gh && matches(d->nonzero, cells, nz) &&
	       matches(d->mean_abs, cells, ma),
	       "%s: %lld x %lld view on a %d x %d grid (asked %lld x %lld): non-zero fraction and mean |w| "
	       "match numpy", c, d ? (long long)d->rows : -1LL, d ? (long long)d->cols : -1LL,
	       d ? d->gw : -1, d ? d->gh : -1, (long long)raw_i64(grid, 0), (long long)raw_i64(grid, 1));
	lt_density_free(d);
}

int main(void)
{
	lt_err err = {0};
	ref = lt_model_open(fixture("spectrum.safetensors"), &err);
	if (!ref)
		tap_skip_all("spectrum.safetensors missing");
	check_map("dens", 8, 5);
	check_map("small", 4, 3);
	check_map("fconv", 5, 4);

	lt_filter_map *f = lt_filter_map_of(get("fconv.w"), &err);
	tap_ok(f && f->out == 6 && f->in == 4 && f->kh == 3 && f->kw == 3 && matches(f->tiles, 54, "fconv.tiles") &&
	       matches(f->kernel_nonzero, 24, "fconv.kernel"),
	       "filter map of [6, 4, 3, 3]: tiles and per-kernel fractions match numpy");
	int empty = f != NULL;
	for (int p = 0; f && p < 9; p++)
		empty &= f->tiles[2 * 9 + p] == 0 && f->tiles[p] == (p ? 0.75 : 0.0);
	tap_ok(empty, "pruned filter 2 is an empty tile; position (0, 0) is dark, the rest 3/4 (channel 1 pruned)");
	lt_filter_map_free(f);

	lt_density_diff *dd = lt_density_diff_of(get("diff.a"), get("diff.b"), 8, 5, &err);
	tap_ok(dd && dd->gw == 8 && dd->gh == 5 && matches(dd->changed, 40, "diff.changed") &&
	       matches(dd->zeroed, 40, "diff.zeroed"),
	       "difference map: changed and zeroed fractions match numpy");
	lt_density_diff_free(dd);
	dd = lt_density_diff_of(get("diff.a"), get("diff.a"), 3, 3, &err);
	int none = dd != NULL;
	for (int i = 0; dd && i < 9; i++)
		none &= dd->changed[i] == 0 && dd->zeroed[i] == 0;
	tap_ok(none, "a tensor against itself: nothing changed");
	lt_density_diff_free(dd);

	/* 1-D: one row; a grid taller than the view shrinks to it. */
	int64_t n = 10;
	lt_tensor *v = lt_tensor_new(1, &n, &err);
	float *x = lt_tensor_data_mut(v, &err);
	for (int i = 0; i < 10; i++)
		x[i] = i < 5 ? 0.0f : -2.0f;
	lt_density *d = lt_density_of_tensor(v, 2, 4, &err);
	tap_ok(d && d->rows == 1 && d->cols == 10 && d->gw == 2 && d->gh == 1 && d->nonzero[0] == 0 &&
	       d->nonzero[1] == 1 && d->mean_abs[1] == 2, "1-D [10] as one row, grid 2 x 1");
	lt_density_free(d);
	int64_t col[2] = {7, 1};
	lt_tensor *c = lt_tensor_new(2, col, &err);
	d = lt_density_of_tensor(c, 5, 3, &err);
	tap_ok(d && d->gw == 1 && d->gh == 3 && d->nonzero[0] == 0, "7 x 1 view: grid 1 x 3 (rows 0-1, 2-3, 4-6)");
	lt_density_free(d);

	/* Errors. */
	tap_ok(!lt_density_of_tensor(v, 0, 3, &err) && err.code == LT_EINVAL, "0-wide grid refused: %s", err.msg);
	tap_ok(!lt_density_diff_of(v, c, 2, 2, &err) && err.code == LT_EINVAL && strstr(err.msg, "[7, 1]"),
	       "shape mismatch refused: %s", err.msg);
	tap_ok(!lt_filter_map_of(c, &err) && err.code == LT_EINVAL, "filter map of a 2-D tensor refused: %s",
	       err.msg);
	lt_tensor *s = lt_tensor_new(0, NULL, &err);
	tap_ok(s && !lt_density_of_tensor(s, 2, 2, &err) && err.code == LT_EINVAL, "scalar refused: %s", err.msg);
	lt_tensor_unref(s);
	int64_t e[2] = {0, 4};
	lt_tensor *empty_t = lt_tensor_new(2, e, &err);
	tap_ok(empty_t && !lt_density_of_tensor(empty_t, 2, 2, &err) && err.code == LT_EINVAL,
	       "empty tensor refused: %s", err.msg);
	lt_tensor_unref(empty_t);
	float one = 1;
	tap_ok(!lt_density_map(&one, 1, 1, -1, 2, &err) && err.code == LT_EINVAL, "negative grid refused");
	lt_tensor_unref(v);
	lt_tensor_unref(c);

	/* Allocation failures: NULL with LT_ENOMEM until every site passed. */
	int fails = 0, ok = 1;
	for (long i = 0; i < 20; i++) {
		lt_mem_fail_after(i);
		d = lt_density_of_tensor(get("dens.w"), 8, 5, &err);
		dd = d ? lt_density_diff_of(get("diff.a"), get("diff.b"), 8, 5, &err) : NULL;
		f = dd ? lt_filter_map_of(get("fconv.w"), &err) : NULL;
		lt_mem_fail_after(-1);
		int done = f != NULL;
		lt_density_free(d);
		lt_density_diff_free(dd);
		lt_filter_map_free(f);
		if (done)
			break;
		fails++;
		ok &= err.code == LT_ENOMEM;
	}
	tap_ok(fails == 9 && ok, "each of %d allocation failures gives LT_ENOMEM", fails);
	lt_model_unref(ref);
	return tap_done();
}
