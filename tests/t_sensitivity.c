/* Sensitivity analysis (src/work/sensitivity.c): every point equals a full
 * evaluation of the model with that one tensor pruned (the pruning itself
 * is checked against torch in t_prune, the evaluation in t_eval), the
 * stage is left alone, progress covers the sweep, cancelling stops it, bad
 * options are refused; and the greedy choice under an accuracy budget. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include "io/open.h"
#include "work/sensitivity.h"
#include "tap.h"
#include "testutil.h"

static int64_t last_done, last_total, calls, monotone = 1, cancel_after = -1;

static int watch(void *ud, int64_t done, int64_t total)
{
	(void)ud;
	monotone &= done * last_total >= last_done * total || calls == 0;
	last_done = done, last_total = total;
	calls++;
	return cancel_after >= 0 && calls > cancel_after;
}

/* Accuracy of m with tensor name pruned to sparsity, evaluated in full. */
static double full_eval(lt_model *m, const char *name, double sparsity, const lt_dataset *d)
{
	lt_err err = {0};
	lt_model *v = lt_model_copy(m, &err);
	lt_prune_spec spec = {.sparsity = sparsity};
	lt_tensor *p = lt_prune_tensor(lt_model_tensor(m, name), &spec, &err);
	lt_model_set_tensor(v, name, p, &err);
	lt_tensor_unref(p);
	lt_eval_opts eo = {.threads = 1};
	lt_eval_result r;
	double acc = lt_eval_run(v, d, &eo, &r, &err) ? NAN : r.top1;
	if (!isnan(acc))
		lt_eval_result_free(&r);
	lt_model_unref(v);
	return acc;
}

static void choose_tests(void)
{
	/* Two layers: A (1000 weights) loses 0.2 points at 50 %, 2 at 90 %;
	 * B (100 weights) 0.1 at 50 %, 0.3 at 90 %; C gains at every level. */
	char *names[] = {"A", "B", "C"};
	int64_t params[] = {1000, 100, 10};
	double levels[] = {0.5, 0.9};
	double acc[] = {0.898, 0.88, 0.899, 0.897, 0.91, 0.905};
	lt_sensitivity s = {.n_tensors = 3, .n_levels = 2, .tensors = names, .params = params,
			    .levels = levels, .baseline = 0.9, .accuracy = acc};
	double chosen[3];
	int64_t removed = lt_sensitivity_choose(&s, 0.005, chosen);
	tap_ok(chosen[0] == 0.5 && chosen[1] == 0.9 && chosen[2] == 0.9 && removed == 500 + 90 + 9,
	       "choose, budget 0.5 points: A 50 %%, B 90 %%, C (free) 90 %% -> %g %g %g, %lld removed",
	       chosen[0], chosen[1], chosen[2], (long long)removed);
	removed = lt_sensitivity_choose(&s, 0, chosen);
	tap_ok(chosen[0] == 0 && chosen[1] == 0 && chosen[2] == 0.9 && removed == 9,
	       "choose, budget 0: only the moves that cost nothing");
	removed = lt_sensitivity_choose(&s, 1, chosen);
	tap_ok(chosen[0] == 0.9 && chosen[1] == 0.9 && chosen[2] == 0.9, "choose, budget 100 points: everything");

	/* Random tables: the estimated drop never exceeds the budget. */
	uint64_t x = 12345;
	int ok = 1;
	for (int trial = 0; trial < 200; trial++) {
		double a[4 * 5], lv[5] = {0.2, 0.4, 0.6, 0.8, 0.95}, ch[4];
		int64_t pr[4];
		char *nm[4] = {"a", "b", "c", "d"};
		for (int i = 0; i < 20; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			a[i] = 0.8 + (double)(x % 1000) / 5000.0;
		}
		for (int i = 0; i < 4; i++)
			pr[i] = 100 + (int64_t)(x >> (8 * i) & 0xfff);
		lt_sensitivity r = {.n_tensors = 4, .n_levels = 5, .tensors = nm, .params = pr, .levels = lv,
				    .baseline = 0.9, .accuracy = a};
		double budget = (double)(trial % 10) / 200.0, spent = 0;
		lt_sensitivity_choose(&r, budget, ch);
		for (int i = 0; i < 4; i++)
			for (int j = 0; j < 5; j++)
				if (ch[i] == lv[j])
					spent += fmax(0, 0.9 - a[i * 5 + j]);
		ok &= spent <= budget + 1e-9;
	}
	tap_ok(ok, "choose: 200 random tables, the summed drop stays within the budget");
}

int main(void)
{
	lt_err err = {0};
	lt_model *m = lt_model_open(fixture("cnn.safetensors"), &err);
	lt_dataset data;
	if (!m || load_slice(&data, &err))
		tap_skip_all("cnn.safetensors or the data slice missing");
	lt_bench *b = lt_bench_new(m, &err);
	const char *tensors[] = {"conv2.weight", "fc1.weight"};
	const double levels[] = {0.5, 0.9, 0.99};
	lt_sensitivity_opts o = {.tensors = tensors, .n_tensors = 2, .levels = levels, .n_levels = 3,
				 .eval = {.data = &data, .data_key = "slice", .threads = 1, .progress = watch}};
	uint64_t version = lt_bench_version(b);
	lt_sensitivity *s = lt_sensitivity_run(b, &o, &err);
	tap_ok(s != NULL, "a sweep of 2 tensors x 3 sparsities runs (%s)", err.msg);
	if (!s)
		return tap_done();
	lt_eval_opts eo = {.threads = 1};
	lt_eval_result r;
	tap_ok(lt_eval_run(m, &data, &eo, &r, &err) == 0 && r.top1 == s->baseline && s->images == data.n,
	       "baseline equals an evaluation of the model (%.4f on %lld images)", s->baseline,
	       (long long)s->images);
	lt_eval_result_free(&r);
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 3; j++) {
			double want = full_eval(m, tensors[i], levels[j], &data);
			double got = s->accuracy[i * 3 + j];
			tap_ok(got == want, "%s at %g: %.4f, as a full evaluation of that pruned model (%.4f)",
			       tensors[i], levels[j], got, want);
		}
	tap_ok(s->accuracy[0] > s->accuracy[2] && s->params[1] == 400000 && !strcmp(s->tensors[1], "fc1.weight"),
	       "accuracy falls with sparsity; names and sizes recorded");
	tap_ok(!lt_bench_dirty(b) && lt_bench_version(b) == version &&
	       lt_tensor_count_zeros(lt_model_tensor(lt_bench_staged(b), "fc1.weight")) == 0,
	       "the stage is left as it was");
	tap_ok(monotone && calls > 7 && last_done == last_total, "progress rises to the whole sweep (%lld calls)",
	       (long long)calls);
	lt_sensitivity_free(s);

	/* Cancelling through progress. */
	calls = 0, last_done = last_total = 0, cancel_after = 3;
	s = lt_sensitivity_run(b, &o, &err);
	tap_ok(!s && err.code == LT_ECANCEL, "a progress callback that says stop cancels: %s", err.msg);
	cancel_after = -1;

	/* Refusals. */
	const double bad_levels[] = {0.5, 0.5};
	const char *bad_tensor[] = {"nope.weight"};
	lt_sensitivity_opts bad = o;
	bad.levels = bad_levels;
	bad.n_levels = 2;
	tap_ok(!lt_sensitivity_run(b, &bad, &err) && err.code == LT_EINVAL && strstr(err.msg, "ascending"),
	       "repeated sparsities refused: %s", err.msg);
	bad = o;
	bad.tensors = bad_tensor;
	bad.n_tensors = 1;
	tap_ok(!lt_sensitivity_run(b, &bad, &err) && err.code == LT_EINVAL && strstr(err.msg, "nope.weight"),
	       "unknown tensor refused: %s", err.msg);
	bad = o;
	bad.eval.data = NULL;
	tap_ok(!lt_sensitivity_run(b, &bad, &err) && err.code == LT_EINVAL, "no data refused: %s", err.msg);

	/* Allocation failures: NULL with an error, the stage untouched. */
	int fails = 0, ok = 1;
	o.eval.progress = NULL;
	o.n_levels = 1;
	int tries = 0;
	for (long i = 0; i < 100000; i = i ? i * 2 : 1, tries++) {
		lt_mem_fail_after(i);
		lt_sensitivity *q = lt_sensitivity_run(b, &o, &err);
		lt_mem_fail_after(-1);
		if (!q) {
			fails++;
			ok &= err.code == LT_ENOMEM;
		}
		lt_sensitivity_free(q);
	}
	tap_ok(fails > 0 && fails < tries && ok && !lt_bench_dirty(b),
	       "allocation failures give LT_ENOMEM (%d of %d sweeps failed)", fails, tries);

	choose_tests();
	lt_bench_unref(b);
	lt_model_unref(m);
	lt_dataset_release(&data);
	return tap_done();
}
