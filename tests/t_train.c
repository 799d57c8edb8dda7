/* Training loop: initialisation, masks, reproducibility, dropout, and that
 * a few epochs on real data learn something. */
#include <string.h>

#include "core/mem.h"
#include "data/dataset.h"
#include "io/open.h"
#include "nn/eval.h"
#include "nn/grad.h"
#include "nn/train.h"
#include "tap.h"
#include "testutil.h"

static const char mlp[] =
	"{\"input\":[784],\"preprocess\":{\"mean\":0.2858,\"std\":0.3529},\"layers\":["
	"{\"op\":\"linear\",\"name\":\"fc1\",\"in_features\":784,\"out_features\":64},{\"op\":\"relu\"},"
	"{\"op\":\"dropout\",\"p\":0.2},"
	"{\"op\":\"linear\",\"name\":\"fc2\",\"in_features\":64,\"out_features\":10}]}";

static lt_model *fresh(uint64_t seed)
{
	return lt_model_from_graph(lt_graph_from_json(mlp, NULL), seed, NULL);
}

static int same_weights(lt_model *a, lt_model *b)
{
	for (size_t i = 0; i < lt_model_tensor_count(a); i++) {
		lt_tensor *x = lt_model_tensor_at(a, i), *y = lt_model_tensor_at(b, i);
		if (memcmp(lt_tensor_data(x, NULL), lt_tensor_data(y, NULL), lt_tensor_nbytes(x)))
			return 0;
	}
	return 1;
}

static int stop_now(void *ud, const lt_train_status *st)
{
	(void)ud;
	return st->batch == 2;
}

int main(void)
{
	lt_model *m2;
	lt_err err = {0};
	lt_dataset d = {0};
	if (load_slice(&d, &err))
		tap_skip_all("fixture slice missing");

	/* Initialisation: PyTorch's bounds, deterministic in the seed. */
	lt_model *a = fresh(7), *b = fresh(7), *c = fresh(8);
	const float *w = lt_tensor_data(lt_model_tensor(a, "fc1.weight"), NULL);
	double mx = 0;
	for (int i = 0; i < 64 * 784; i++)
		mx = fmax(mx, fabs(w[i]));
	tap_ok(mx <= 1 / sqrt(784.0) && mx > 0.9 / sqrt(784.0), "fc1 init within +-1/sqrt(784) (max %.4f)", mx);
	tap_ok(same_weights(a, b) && !same_weights(a, c), "initialisation depends only on the seed");

	/* Same seed, one thread: bit-identical weights after training. */
	lt_train_cfg cfg = {.epochs = 2, .batch = 32, .threads = 1, .seed = 3};
	cfg.opt.kind = LT_OPT_ADAM;
	cfg.opt.lr = 1e-3f;
	int rc1 = lt_train_run(a, &d, NULL, &cfg, NULL, NULL, &err);
	int rc2 = lt_train_run(b, &d, NULL, &cfg, NULL, NULL, &err);
	tap_ok(rc1 == 0 && rc2 == 0 && same_weights(a, b), "same seed and one thread: identical weights (%s)", err.msg);
	/* ...and with two threads the run is reproducible too. */
	lt_model *a2 = fresh(7), *b2 = fresh(7);
	cfg.threads = 2;
	lt_train_run(a2, &d, NULL, &cfg, NULL, NULL, &err);
	lt_train_run(b2, &d, NULL, &cfg, NULL, NULL, &err);
	tap_ok(same_weights(a2, b2), "two threads: reproducible as well");
	lt_model_unref(a2);
	lt_model_unref(b2);

	/* Masks: masked weights stay exactly zero through training. */
	lt_model *m = fresh(1);
	lt_tensor *fc1 = lt_model_tensor(m, "fc1.weight");
	int64_t shape[2] = {64, 784};
	lt_tensor *mask = lt_tensor_new(2, shape, &err);
	float *mv = lt_tensor_data_mut(mask, &err);
	for (int i = 0; i < 64 * 784; i++)
		mv[i] = (i % 3) == 0; /* keep a third */
	lt_tensor_set_mask(fc1, mask, &err);
	cfg = (lt_train_cfg){.epochs = 3, .batch = 16, .seed = 5};
	cfg.opt.kind = LT_OPT_SGD;
	cfg.opt.lr = 0.05f;
	cfg.opt.momentum = 0.9f;
	cfg.opt.weight_decay = 1e-3f; /* decay must not revive pruned weights */
	int rc = lt_train_run(m, &d, NULL, &cfg, NULL, NULL, &err);
	const float *fw = lt_tensor_data(fc1, NULL);
	int64_t nonzero_masked = 0, moved = 0;
	const float *init = lt_tensor_data(lt_model_tensor(c, "fc1.weight"), NULL);
	for (int i = 0; i < 64 * 784; i++) {
		if (mv[i] == 0)
			nonzero_masked += fw[i] != 0.0f || signbit(fw[i]);
		else
			moved += fw[i] != init[i];
	}
	tap_ok(rc == 0 && nonzero_masked == 0, "masked weights are exactly +0 after training (%lld not)",
	       (long long)nonzero_masked);
	tap_ok(moved > 0, "unmasked weights were trained");
	lt_tensor_unref(mask);
	lt_model_unref(m);

	/* Learning: a few epochs on 256 images fit them well. */
	m = fresh(2);
	cfg = (lt_train_cfg){.epochs = 15, .batch = 32, .seed = 2, .sched = LT_SCHED_COSINE};
	cfg.opt.kind = LT_OPT_ADAMW;
	cfg.opt.lr = 3e-3f;
	cfg.opt.weight_decay = 1e-4f;
	cfg.clip_norm = 5.0f;
	lt_eval_result before, after;
	lt_eval_run(m, &d, NULL, &before, &err);
	rc = lt_train_run(m, &d, NULL, &cfg, NULL, NULL, &err);
	lt_eval_run(m, &d, NULL, &after, &err);
	tap_ok(rc == 0 && after.loss < before.loss / 3 && after.top1 > 0.9,
	       "training fits the slice: loss %.3f -> %.3f, top-1 %.2f -> %.2f", before.loss, after.loss,
	       before.top1, after.top1);
	lt_eval_result_free(&before);
	lt_eval_result_free(&after);

	/* Dropout in training: about p of the activations are dropped, and the
	 * rest scaled by 1/(1-p); the same seed gives the same loss. */
	lt_grad *g = lt_grad_new(m, 1, 64, &err);
	float *x = lt_malloc_array(64 * 784, sizeof(float));
	lt_dataset_get_batch(&d, 0, 64, 255, (float[]){0.2858f}, (float[]){0.3529f}, 1, x, &err);
	double l1, l2, l3;
	lt_grad_step(g, x, d.labels, 64, 11, &l1, NULL, &err);
	lt_grad_step(g, x, d.labels, 64, 11, &l2, NULL, &err);
	lt_grad_step(g, x, d.labels, 64, 12, &l3, NULL, &err);
	tap_ok(l1 == l2 && l1 != l3, "dropout masks follow the seed (%.5f %.5f %.5f)", l1, l2, l3);
	lt_grad_free(g);
	lt_free(x);

	/* With batch norm, a last minibatch of one sample is skipped, not an
	 * error (256 = 255 + 1). */
	lt_model *bnm = lt_model_from_graph(lt_graph_from_json(
		"{\"input\":[784],\"layers\":[{\"op\":\"linear\",\"name\":\"fc\",\"in_features\":784,"
		"\"out_features\":10},{\"op\":\"batchnorm1d\",\"name\":\"bn\",\"num_features\":10}]}", NULL), 1, NULL);
	lt_train_cfg bcfg = {.epochs = 1, .batch = 255, .threads = 1};
	bcfg.opt.kind = LT_OPT_ADAM;
	bcfg.opt.lr = 1e-3f;
	tap_ok(bnm && lt_train_run(bnm, &d, NULL, &bcfg, NULL, NULL, &err) == 0,
	       "batch norm: a trailing one-sample minibatch is skipped (%s)", err.msg);
	lt_model_unref(bnm);

	/* Errors: a weights-only model cannot be trained. */
	lt_model *wo = lt_model_new(&err);
	tap_ok(lt_train_run(wo, &d, NULL, &cfg, NULL, NULL, &err) == LT_ENOTSUP, "weights-only: %s", err.msg);
	lt_model_unref(wo);
	/* a progress callback that asks to stop ends the run with ECANCEL */
	m2 = fresh(4);
	cfg.epochs = 1;
	tap_ok(lt_train_run(m2, &d, NULL, &cfg, stop_now, NULL, &err) == LT_ECANCEL, "stopping: %s", err.msg);
	lt_model_unref(m2);

	/* L1 by proximal steps: one full-batch SGD step with l1 equals the
	 * plain step followed by soft-thresholding the weights by lr * l1
	 * (biases untouched), the reference formula. */
	lt_model *p1 = fresh(9), *p0 = fresh(9);
	lt_train_cfg pc = {.epochs = 1, .batch = (int)d.n, .threads = 1, .seed = 2};
	pc.opt.kind = LT_OPT_SGD;
	pc.opt.lr = 0.5f;
	pc.l1 = 2e-3f;
	int prc = lt_train_run(p1, &d, NULL, &pc, NULL, NULL, &err);
	pc.l1 = 0;
	prc |= lt_train_run(p0, &d, NULL, &pc, NULL, NULL, &err);
	int same = prc == 0;
	int64_t zeroed = 0;
	for (size_t i = 0; i < lt_model_tensor_count(p0); i++) {
		lt_tensor *t0 = lt_model_tensor_at(p0, i), *t1 = lt_model_tensor_at(p1, i);
		const float *v0 = lt_tensor_data(t0, NULL), *v1 = lt_tensor_data(t1, NULL);
		float thr = lt_tensor_ndim(t0) >= 2 ? 0.5f * 2e-3f : 0.0f;
		for (int64_t k = 0; k < lt_tensor_numel(t0); k++) {
			float a0 = fabsf(v0[k]) - thr, want = a0 > 0 ? copysignf(a0, v0[k]) : 0.0f;
			same &= thr > 0 ? v1[k] == want : v1[k] == v0[k];
			zeroed += v1[k] == 0.0f && v0[k] != 0.0f;
		}
	}
	tap_ok(same && zeroed > 0, "l1: one SGD step equals the plain step then soft-thresholding by lr*l1 "
	       "(%lld weights set to 0)", (long long)zeroed);
	lt_model_unref(p0);
	lt_model_unref(p1);
	/* Sparsity rises with the strength. */
	double sp[3];
	const float strengths[3] = {0, 1e-3f, 1e-2f};
	for (int j = 0; j < 3; j++) {
		lt_model *q = fresh(11);
		lt_train_cfg qc = {.epochs = 3, .batch = 32, .threads = 1, .seed = 4, .l1 = strengths[j]};
		qc.opt.kind = LT_OPT_SGD;
		qc.opt.lr = 0.1f;
		lt_train_run(q, &d, NULL, &qc, NULL, NULL, &err);
		lt_tensor *fw1 = lt_model_tensor(q, "fc1.weight");
		sp[j] = (double)lt_tensor_count_zeros(fw1) / (double)lt_tensor_numel(fw1);
		lt_model_unref(q);
	}
	tap_ok(sp[0] == 0 && sp[1] > sp[0] && sp[2] > sp[1], "l1: fc1 sparsity grows with the strength "
	       "(%.3f, %.3f, %.3f)", sp[0], sp[1], sp[2]);
	pc.l1 = -1;
	lt_model *p2 = fresh(9);
	tap_ok(lt_train_run(p2, &d, NULL, &pc, NULL, NULL, &err) == LT_EINVAL && strstr(err.msg, "L1"),
	       "a negative L1 strength is refused: %s", err.msg);
	lt_model_unref(p2);

	lt_model_unref(m);
	lt_model_unref(a);
	lt_model_unref(b);
	lt_model_unref(c);
	lt_dataset_release(&d);
	return tap_done();
}
