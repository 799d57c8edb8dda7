/* Backprop against PyTorch (tests/fixtures/grad_*.safetensors, made by
 * gen_grad_fixtures.py) and against finite differences. */
#include <string.h>

#include "core/mem.h"
#include "io/open.h"
#include "kern/prune.h"
#include "nn/grad.h"
#include "nn/train.h"
#include "tap.h"
#include "testutil.h"

/* max |a - b| relative to max |b| (absolute below `floor`). */
static double rel_err(const float *a, const float *b, int64_t n, double floor)
{
	double worst = 0, scale = floor;
	for (int64_t i = 0; i < n; i++)
		scale = fmax(scale, fabs(b[i]));
	for (int64_t i = 0; i < n; i++)
		worst = fmax(worst, fabs(a[i] - b[i]));
	return worst / scale;
}

static const float *ref(lt_model *m, const char *name)
{
	lt_tensor *t = lt_model_tensor(m, name);
	return t ? lt_tensor_data(t, NULL) : NULL;
}

static void check_case(const char *name, int threads)
{
	char file[128];
	snprintf(file, sizeof file, "grad_%s.safetensors", name);
	lt_err err = {0};
	lt_model *m = lt_model_open(fixture(file), &err);
	if (!m) {
		tap_ok(0, "%s: open: %s", name, err.msg);
		return;
	}
	lt_tensor *in = lt_model_tensor(m, "input"), *lab = lt_model_tensor(m, "labels");
	int64_t n = lt_tensor_shape(in)[0];
	const float *x = lt_tensor_data(in, &err), *lf = lt_tensor_data(lab, &err);
	uint8_t labels[64];
	for (int64_t i = 0; i < n; i++)
		labels[i] = (uint8_t)lf[i];
	/* Reference values are read before the step changes running stats. */
	lt_model *refs = lt_model_open(fixture(file), &err);
	lt_grad *g = lt_grad_new(m, threads, (int)n, &err);
	if (!g) {
		tap_ok(0, "%s: engine: %s", name, err.msg);
		lt_model_unref(m);
		lt_model_unref(refs);
		return;
	}
	lt_grad_want_input_grad(g, 1);
	double loss;
	int64_t correct;
	int rc = lt_grad_step(g, x, labels, n, 1, &loss, &correct, &err);
	double want = ref(refs, "loss")[0];
	tap_ok(rc == 0 && tap_close(loss, want, 1e-5, 1e-6), "%s (%d threads): loss %.7f vs PyTorch %.7f",
	       name, threads, loss, want);
	double worst = 0;
	const char *worst_name = "";
	for (int p = 0; p < lt_grad_nparams(g); p++) {
		char gname[256];
		snprintf(gname, sizeof gname, "grad.%s", lt_grad_param_name(g, p));
		const float *r = ref(refs, gname);
		/* biases right before a batch norm have zero gradient: compare
		 * those against an absolute floor */
		double e = r ? rel_err(lt_grad_param_grad(g, p), r, lt_grad_param_size(g, p), 1e-3) : 1;
		if (e > worst) {
			worst = e;
			worst_name = lt_grad_param_name(g, p);
		}
	}
	tap_ok(worst < 1e-4, "%s (%d threads): parameter gradients, worst %.2g (%s)", name, threads, worst,
	       worst_name);
	const float *dx = lt_grad_input_grad(g), *rdx = ref(refs, "grad.input");
	lt_tensor *tie = lt_model_tensor(refs, "tie_free");
	int64_t nin = lt_tensor_numel(in);
	double e = 0, scale = 1e-6;
	const float *tf = tie ? lt_tensor_data(tie, NULL) : NULL;
	for (int64_t i = 0; i < nin; i++)
		scale = fmax(scale, fabs(rdx[i]));
	for (int64_t i = 0; i < nin; i++)
		if (!tf || tf[i] != 0)
			e = fmax(e, fabs(dx[i] - rdx[i]));
	tap_ok(e / scale < 1e-4, "%s (%d threads): input gradient, worst %.2g", name, threads, e / scale);
	/* batch-norm running statistics after the training step */
	for (size_t i = 0; i < lt_model_tensor_count(refs); i++) {
		const char *tn = lt_model_tensor_name(refs, i);
		if (strncmp(tn, "after.", 6))
			continue;
		lt_tensor *mine = lt_model_tensor(m, tn + 6);
		double re = mine ? rel_err(lt_tensor_data(mine, NULL), ref(refs, tn),
					   lt_tensor_numel(mine), 1e-6) : 1;
		tap_ok(re < 1e-5, "%s: %s matches (%.2g)", name, tn + 6, re);
	}
	lt_grad_free(g);
	lt_model_unref(m);
	lt_model_unref(refs);
}

/* Central differences of the loss against backprop, on a few weights. */
static void finite_differences(const char *name)
{
	char file[128];
	snprintf(file, sizeof file, "grad_%s.safetensors", name);
	lt_err err = {0};
	lt_model *m = lt_model_open(fixture(file), &err);
	lt_tensor *in = lt_model_tensor(m, "input"), *lab = lt_model_tensor(m, "labels");
	int64_t n = lt_tensor_shape(in)[0];
	const float *x = lt_tensor_data(in, &err), *lf = lt_tensor_data(lab, &err);
	uint8_t labels[64];
	for (int64_t i = 0; i < n; i++)
		labels[i] = (uint8_t)lf[i];
	lt_grad *g = lt_grad_new(m, 1, (int)n, &err);
	double loss;
	lt_grad_step(g, x, labels, n, 1, &loss, NULL, &err);
	int bad = 0, checked = 0;
	for (int p = 0; p < lt_grad_nparams(g); p++) {
		int64_t size = lt_grad_param_size(g, p);
		float *w = lt_grad_param_value(g, p);
		float *analytic = lt_malloc_array((size_t)size, sizeof(float));
		memcpy(analytic, lt_grad_param_grad(g, p), (size_t)size * sizeof(float));
		for (int64_t k = 0; k < size; k += size / 5 + 1) {
			float keep = w[k], h = 2e-3f;
			double lp, lm;
			w[k] = keep + h;
			lt_grad_step(g, x, labels, n, 1, &lp, NULL, &err);
			w[k] = keep - h;
			lt_grad_step(g, x, labels, n, 1, &lm, NULL, &err);
			w[k] = keep;
			double fd = (lp - lm) / (2 * h);
			checked++;
			if (!tap_close(analytic[k], fd, 2e-2, 5e-4)) {
				bad++;
				tap_diag("%s %s[%lld]: backprop %.6g, finite difference %.6g", name,
					 lt_grad_param_name(g, p), (long long)k, analytic[k], fd);
			}
		}
		lt_free(analytic);
	}
	tap_ok(bad == 0 && checked > 0, "%s: %d gradients agree with finite differences", name, checked);
	lt_grad_free(g);
	lt_model_unref(m);
}

static void test_distill(void)
{
	lt_err err = {0};
	lt_model *m = lt_model_open(fixture("kd.safetensors"), &err);
	const float *s = ref(m, "student"), *t = ref(m, "teacher");
	float grad[30];
	const char *names[2][2] = {{"loss.T1", "grad.T1"}, {"loss.T4", "grad.T4"}};
	float temps[2] = {1, 4};
	for (int i = 0; i < 2; i++) {
		double l = lt_loss_distill(s, t, 6, 5, temps[i], grad);
		tap_ok(tap_close(l, ref(m, names[i][0])[0], 1e-5, 1e-7) &&
		       rel_err(grad, ref(m, names[i][1]), 30, 1e-7) < 1e-5,
		       "distillation loss and gradient at T=%g match PyTorch", temps[i]);
	}
	lt_model_unref(m);
}

/* A layer read by two later layers (one of them unused) must get the sum of
 * their gradients: here the unused branch contributes zero, so fc1's
 * gradient equals that of the same network without the branch. */
static void test_dag_and_limits(void)
{
	const char *base = "{\"input\":[6],\"layers\":[{\"op\":\"linear\",\"name\":\"fc1\",\"in_features\":6,"
			   "\"out_features\":5},%s{\"op\":\"linear\",\"name\":\"fc2\",\"in_features\":5,"
			   "\"out_features\":3%s}]}";
	char plain[512], branch[512];
	snprintf(plain, sizeof plain, base, "", "");
	snprintf(branch, sizeof branch, base, "{\"op\":\"relu\",\"name\":\"unused\"},", ",\"inputs\":[\"fc1\"]");
	lt_err err = {0};
	lt_model *a = lt_model_from_graph(lt_graph_from_json(plain, &err), 5, &err);
	lt_model *b = lt_model_from_graph(lt_graph_from_json(branch, &err), 5, &err);
	float x[12] = {1, -2, 3, 0.5f, -1, 2, 0, 1, -1, 2, 3, -4};
	uint8_t y[2] = {1, 2};
	lt_grad *ga = a ? lt_grad_new(a, 1, 2, &err) : NULL, *gb = b ? lt_grad_new(b, 1, 2, &err) : NULL;
	double la = 0, lb = 1;
	if (ga && gb) {
		lt_grad_step(ga, x, y, 2, 1, &la, NULL, &err);
		lt_grad_step(gb, x, y, 2, 1, &lb, NULL, &err);
	}
	int same = ga && gb && la == lb && lt_grad_nparams(ga) == lt_grad_nparams(gb);
	for (int p = 0; same && p < lt_grad_nparams(ga); p++)
		same = rel_err(lt_grad_param_grad(gb, p), lt_grad_param_grad(ga, p), lt_grad_param_size(ga, p), 1e-9) < 1e-6;
	tap_ok(same, "an unused branch leaves the gradients unchanged (%s)", err.msg);
	/* more samples than the engine was made for are refused */
	float big[18] = {0};
	uint8_t ybig[3] = {0};
	tap_ok(ga && lt_grad_step(ga, big, ybig, 3, 1, NULL, NULL, &err) == LT_EINVAL, "oversized minibatch: %s", err.msg);
	lt_grad_free(ga);
	lt_grad_free(gb);
	lt_model_unref(a);
	lt_model_unref(b);
	/* batch norm over one value per channel cannot take a single sample */
	lt_model *bn = lt_model_from_graph(lt_graph_from_json(
		"{\"input\":[4],\"layers\":[{\"op\":\"batchnorm1d\",\"name\":\"bn\",\"num_features\":4}]}", &err), 1, &err);
	lt_grad *gbn = bn ? lt_grad_new(bn, 1, 4, &err) : NULL;
	tap_ok(gbn && lt_grad_min_batch(gbn) == 2 && lt_grad_step(gbn, x, y, 1, 1, NULL, NULL, &err) == LT_EINVAL,
	       "batch norm on one sample refused: %s", err.msg);
	lt_grad_free(gbn);
	lt_model_unref(bn);
}

/* A masked 92 % sparse mlp: the forward runs through the sparse kernel;
 * loss and gradients equal the dense engine's on the same zeroed weights
 * without a mask (float sums in another order: 1e-5). */
static void sparse_forward(void)
{
	lt_err err = {0};
	lt_dataset d;
	lt_model *masked = lt_model_open(fixture("mlp.safetensors"), &err);
	lt_model *plain = lt_model_open(fixture("mlp.safetensors"), &err);
	if (!masked || !plain || load_slice(&d, &err)) {
		tap_ok(0, "sparse forward: fixtures (%s)", err.msg);
		return;
	}
	const lt_graph *g = lt_model_graph(masked);
	lt_prune_spec spec = {.sparsity = 0.92};
	for (int i = 0; i < g->n_nodes; i++) {
		const char *wn = g->nodes[i].params[LT_P_WEIGHT];
		lt_tensor *p = wn ? lt_prune_tensor(lt_model_tensor(masked, wn), &spec, &err) : NULL;
		if (!p)
			continue;
		lt_model_set_tensor(masked, wn, p, &err);
		lt_tensor *bare = lt_tensor_clone(p, &err); /* same values, no mask */
		lt_tensor_set_mask(bare, NULL, &err);
		lt_model_set_tensor(plain, wn, bare, &err);
		lt_tensor_unref(bare);
		lt_tensor_unref(p);
	}
	int n = 64;
	float *x = lt_malloc_array((size_t)n * (size_t)g->in_numel, sizeof *x);
	lt_dataset_get_batch(&d, 0, n, g->scale, g->mean, g->std, g->n_norm, x, &err);
	lt_grad *a = lt_grad_new(masked, 1, n, &err), *b = lt_grad_new(plain, 1, n, &err);
	double la = 0, lb = 0;
	int ok = a && b && lt_grad_sparse_layers(a) >= 2 && lt_grad_sparse_layers(b) == 0 &&
		 !lt_grad_step(a, x, d.labels, n, 1, &la, NULL, &err) && !lt_grad_step(b, x, d.labels, n, 1, &lb, NULL, &err);
	double worst = 0;
	for (int p = 0; ok && p < lt_grad_nparams(a); p++) {
		const float *ga = lt_grad_param_grad(a, p), *gb = lt_grad_param_grad(b, p);
		const float *mask = lt_grad_param_mask(a, p);
		for (int64_t k = 0; k < lt_grad_param_size(a, p); k++)
			if (!mask || mask[k] != 0.0f) /* the engine zeroes masked gradients later */
				worst = fmax(worst, fabs(ga[k] - gb[k]));
	}
	tap_ok(ok && fabs(la - lb) < 1e-5 && worst < 1e-5, "masked 92 %% mlp: %d layers through the sparse kernel; "
	       "loss %.6f vs dense %.6f, gradients within %.2g", a ? lt_grad_sparse_layers(a) : -1, la, lb, worst);
	lt_grad_free(a);
	lt_grad_free(b);
	lt_free(x);
	lt_dataset_release(&d);
	lt_model_unref(masked);
	lt_model_unref(plain);
}

int main(void)
{
	const char *cases[] = {"linear", "conv", "pool", "bn", "softmax", "threshold", "lenet5"};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		check_case(cases[i], 1);
		check_case(cases[i], 2);
	}
	finite_differences("linear");
	finite_differences("conv");
	finite_differences("pool");
	finite_differences("bn");
	finite_differences("softmax");
	finite_differences("threshold");
	test_distill();
	test_dag_and_limits();
	sparse_forward();
	return tap_done();
}
