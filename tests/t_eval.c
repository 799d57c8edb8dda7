/* Metrics: scoring rules on hand-made outputs, and whole evaluations that
 * must reproduce PyTorch's accuracy, top-5 and loss on the fixture slice. */
#include <string.h>

#include "core/mem.h"
#include "data/dataset.h"
#include "io/open.h"
#include "nn/eval.h"
#include "tap.h"
#include "testutil.h"


static void test_scoring(void)
{
	int64_t conf[9] = {0}, tot[3] = {0};
	lt_eval_result r = {.n_classes = 3, .confusion = conf, .class_total = tot};
	/* sample 0: right; sample 1: wrong (true 2, predicted 0). */
	float logits[6] = {2, 1, 0, 3, 0, 1};
	uint8_t labels[2] = {0, 2};
	lt_eval_score(&r, logits, labels, 2, 0);
	tap_ok(r.correct1 == 1 && r.correct5 == 2 && conf[0] == 1 && conf[2 * 3 + 0] == 1 &&
	       tot[0] == 1 && tot[2] == 1, "top-1, top-5, confusion");
	double l0 = log(exp(2) + exp(1) + exp(0)) - 2, l1 = log(exp(3) + exp(0) + exp(1)) - 1;
	tap_ok(tap_close(r.loss, l0 + l1, 1e-6, 1e-9), "cross-entropy from logits");
	/* Probabilities: loss is -log p[label]. */
	int64_t conf2[4] = {0}, tot2[2] = {0};
	lt_eval_result p = {.n_classes = 2, .confusion = conf2, .class_total = tot2};
	float probs[2] = {0.25f, 0.75f};
	uint8_t y = 1;
	lt_eval_score(&p, probs, &y, 1, 1);
	tap_ok(tap_close(p.loss, -log(0.75), 1e-6, 0) && p.correct1 == 1, "loss from probabilities");
	/* Large logits do not overflow. */
	int64_t conf3[4] = {0}, tot3[2] = {0};
	lt_eval_result big = {.n_classes = 2, .confusion = conf3, .class_total = tot3};
	float huge[2] = {1e30f, -1e30f};
	y = 0;
	lt_eval_score(&big, huge, &y, 1, 0);
	tap_ok(isfinite(big.loss) && big.loss == 0, "stable for huge logits");
	/* NaN outputs (a diverged model) are never counted as hits. */
	int64_t conf4[4] = {0}, tot4[2] = {0};
	lt_eval_result bad = {.n_classes = 2, .confusion = conf4, .class_total = tot4};
	float nans[2] = {NAN, NAN};
	lt_eval_score(&bad, nans, &y, 1, 0);
	tap_ok(bad.correct1 == 0 && bad.correct5 == 0, "NaN outputs score no hit");
}

static double meta_num(lt_model *m, const char *key)
{
	const char *v = lt_model_meta(m, key);
	return v ? atof(v) : -1;
}

int main(void)
{
	test_scoring();
	lt_err err = {0};
	lt_dataset d = {0};
	if (load_slice(&d, &err)) {
		tap_ok(0, "load the fixture slice: %s", err.msg);
		return tap_done();
	}
	const char *models[] = {"mlp", "cnn", "allops", "allops_nsq", "mlp_f16", "mlp_bf16"};
	for (size_t i = 0; i < sizeof models / sizeof *models; i++) {
		char file[128];
		snprintf(file, sizeof file, "%s.safetensors", models[i]);
		lt_model *m = lt_model_open(fixture(file), &err);
		snprintf(file, sizeof file, "%s_ref.safetensors", models[i]);
		lt_model *ref = lt_model_open(fixture(file), &err);
		lt_eval_result r = {0};
		lt_eval_opts o = {.batch = 64};
		int rc = m && ref ? lt_eval_run(m, &d, &o, &r, &err) : -1;
		tap_ok(rc == 0 && r.n == 256 &&
		       tap_close(r.top1, meta_num(ref, "accuracy"), 0, 1e-6) &&
		       tap_close(r.top5, meta_num(ref, "top5"), 0, 1e-6) &&
		       tap_close(r.loss, meta_num(ref, "loss"), 1e-4, 1e-6),
		       "%s: top-1 %.6f top-5 %.6f loss %.6f match PyTorch (%s)", models[i], r.top1, r.top5,
		       r.loss, err.msg);
		int64_t sum = 0;
		for (int c = 0; rc == 0 && c < r.n_classes * r.n_classes; c++)
			sum += r.confusion[c];
		tap_ok(rc == 0 && sum == 256, "%s: confusion matrix sums to 256", models[i]);
		lt_eval_result_free(&r);
		lt_model_unref(m);
		lt_model_unref(ref);
	}

	lt_model *m = lt_model_open(fixture("mlp.safetensors"), &err);
	lt_eval_result r;
	lt_eval_opts lim = {.batch = 10, .limit = 25};
	tap_ok(lt_eval_run(m, &d, &lim, &r, &err) == 0 && r.n == 25, "limit");
	lt_eval_result_free(&r);
	d.labels[3] = 12; /* outside the model's 10 outputs */
	tap_ok(lt_eval_run(m, &d, NULL, &r, &err) == LT_EINVAL && strstr(err.msg, "label 12"),
	       "bad label refused: %s", err.msg);
	lt_model_unref(m);

	lt_model *w = lt_model_open(fixture("dtypes.safetensors"), &err);
	tap_ok(lt_eval_run(w, &d, NULL, &r, &err) == LT_ENOTSUP, "weights-only: %s", err.msg);
	lt_model_unref(w);
	lt_dataset_release(&d);
	return tap_done();
}
