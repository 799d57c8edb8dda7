/* Post-training int8 preview against torch.ao.quantization
 * (tests/fixtures/ptq_<model>.safetensors, made by gen_ptq_fixtures.py):
 * calibrated ranges, activation levels, logits of the int8 model; then
 * lt_ptq_run's figures, activation fake quantization against a by-hand
 * loop, and refusals. */
#include <math.h>
#include <string.h>

#include "core/mem.h"
#include "io/open.h"
#include "nn/forward.h"
#include "nn/layers.h"
#include "tap.h"
#include "testutil.h"
#include "work/ptq.h"

static const float *ref(lt_model *r, const char *name)
{
	lt_tensor *t = lt_model_tensor(r, name);
	return t ? lt_tensor_data(t, NULL) : NULL;
}

/* The node whose output node i reads (through flatten): what the range
 * and levels of layer i are about. The references name layers that read
 * another layer, so this is never the input. */
static int producer(const lt_graph *g, int i)
{
	int v = g->nodes[i].inputs[0];
	while (v > 0 && lt_op_is_identity(g->nodes[v - 1].op))
		v = g->nodes[v - 1].inputs[0];
	return v - 1;
}

static void against_torch(const char *model, lt_dataset *d)
{
	lt_err err = {0};
	char file[64];
	snprintf(file, sizeof file, "ptq_%s.safetensors", model);
	char mname[64];
	snprintf(mname, sizeof mname, "%s.safetensors", model);
	lt_model *m = lt_model_open(sample(mname), &err), *r = lt_model_open(fixture(file), &err);
	if (!m || !r) {
		tap_ok(0, "%s: open the model and its reference: %s", model, err.msg);
		lt_model_unref(m);
		lt_model_unref(r);
		return;
	}
	const lt_graph *g = lt_model_graph(m);
	int n = g->n_nodes;
	float *lo = lt_calloc((size_t)n * 3, sizeof *lo), *hi = lo + n, *scale = hi + n;
	int32_t *zero = lt_calloc((size_t)n, sizeof *zero);
	int64_t k = lt_graph_out_numel(g);
	float *logits = lt_malloc_array((size_t)(d->n * k), sizeof *logits);
	float *x = lt_malloc_array((size_t)(d->n * g->in_numel), sizeof *x);
	lt_dataset_get_batch(d, 0, d->n, g->scale, g->mean, g->std, g->n_norm, x, &err);

	/* calibration: every node's range over the 256 images */
	lt_forward *f = lt_forward_new(m, 2, &err);
	int rc = f ? lt_forward_observe_ranges(f, &err) : -1;
	if (!rc)
		rc = lt_forward_run(f, x, d->n, logits, &err);
	if (!rc)
		lt_forward_ranges(f, lo, hi);
	lt_forward_free(f);
	double worst = 0;
	int checked = 0;
	for (int i = 0; !rc && i < n; i++) {
		char key[96];
		snprintf(key, sizeof key, "range.%s", g->nodes[i].name);
		const float *want = ref(r, key);
		if (!want)
			continue;
		int p = producer(g, i);
		double e = fmax(fabs(lo[p] - want[0]), fabs(hi[p] - want[1])) / fmax(1.0, fabs(want[1]));
		worst = fmax(worst, e);
		checked++;
	}
	tap_ok(!rc && checked > 0 && worst < 1e-5, "%s: %d calibrated ranges as torch's MinMaxObserver (worst %.2g)",
	       model, checked, worst);

	/* the int8 model's logits, activations fake-quantized at the levels */
	lt_model *q = rc ? NULL : lt_ptq_quantize(m, lo, hi, scale, zero, &err);
	int levels_ok = q != NULL;
	for (int i = 0; q && i < n; i++) {
		char key[96];
		snprintf(key, sizeof key, "act.%s", g->nodes[i].name);
		const float *want = ref(r, key);
		if (!want)
			continue;
		int p = producer(g, i);
		levels_ok &= fabsf(scale[p] - want[0]) <= 1e-6f * want[0] && zero[p] == (int32_t)want[1];
	}
	tap_ok(levels_ok, "%s: activation scales and zero points as torch computes them", model);
	f = q ? lt_forward_new(q, 2, &err) : NULL;
	rc = f ? lt_forward_set_act_quant(f, scale, zero, 0, 255, &err) : -1;
	if (!rc)
		rc = lt_forward_run(f, x, d->n, logits, &err);
	const float *want = ref(r, "logits.int8");
	double e = 0, top = 0;
	int64_t flips = 0;
	for (int64_t s = 0; !rc && s < d->n; s++) {
		int a = 0, b = 0;
		for (int64_t c = 0; c < k; c++) {
			e = fmax(e, fabs(logits[s * k + c] - want[s * k + c]));
			top = fmax(top, fabs(want[s * k + c]));
			a = logits[s * k + c] > logits[s * k + a] ? (int)c : a;
			b = want[s * k + c] > want[s * k + b] ? (int)c : b;
		}
		flips += a != b;
	}
	/* An activation within rounding of a level boundary may land on the
	 * next level: a difference of one step (scale) in that element, so the
	 * tolerance is a few steps' worth of the logits' scale. */
	tap_ok(!rc && e <= 2e-2 * top && flips == 0, "%s: int8 logits match torch's (max |diff| %.3g of %.3g, "
	       "%lld predictions differ)", model, e, top, (long long)flips);
	lt_forward_free(f);

	/* the preview's figures on the same images */
	lt_ptq_opts o = {.calibration = d, .data = d, .per_layer = 1, .threads = 2};
	lt_ptq_result res;
	rc = lt_ptq_run(m, &o, &res, &err);
	const float *lab = ref(r, "labels"), *lf = ref(r, "logits.float");
	int64_t right_f = 0, right_q = 0;
	for (int64_t s = 0; s < d->n; s++) {
		int a = 0, b = 0;
		for (int64_t c = 0; c < k; c++) {
			a = lf[s * k + c] > lf[s * k + a] ? (int)c : a;
			b = want[s * k + c] > want[s * k + b] ? (int)c : b;
		}
		right_f += a == (int)lab[s];
		right_q += b == (int)lab[s];
	}
	tap_ok(!rc && res.baseline == (double)right_f / (double)d->n && res.accuracy == (double)right_q / (double)d->n,
	       "%s: preview accuracy %.4f -> %.4f as torch's %.4f -> %.4f", model, rc ? 0 : res.baseline,
	       rc ? 0 : res.accuracy, (double)right_f / (double)d->n, (double)right_q / (double)d->n);
	int layers_ok = !rc && res.n_layers > 0;
	for (int i = 0; layers_ok && i < res.n_layers; i++)
		layers_ok = !isnan(res.layers[i].accuracy) && res.layers[i].accuracy > 0 &&
			    (i == 0 ? !strcmp(res.layers[i].input, "input") && isnan(res.layers[i].lo)
				    : res.layers[i].lo <= res.layers[i].hi);
	tap_ok(layers_ok, "%s: a figure for every layer alone, ranges for what it reads", model);
	if (!rc)
		lt_ptq_result_free(&res);
	lt_model_unref(q);
	lt_free(lo);
	lt_free(zero);
	lt_free(logits);
	lt_free(x);
	lt_model_unref(m);
	lt_model_unref(r);
}

/* The activation fake quantization against a loop in double. */
static void fake_quant(void)
{
	float y[1000], want[1000];
	const float scale = 0.05f;
	const int32_t zp = 17;
	for (int i = 0; i < 1000; i++) {
		y[i] = (float)(i - 300) * 0.0125f; /* many exact half-steps */
		double q = nearbyint((double)(y[i] * (1.0f / scale))) + zp;
		q = q < 0 ? 0 : q > 255 ? 255 : q;
		want[i] = (float)(q - zp) * scale;
	}
	lt_layers_fake_quant(y, 1000, scale, zp, 0, 255);
int bad = -1;
	for (int i = 999; i >= 0; i--)
		bad = y[i] != want[i] ? i : bad;
	tap_ok(bad < 0, "fake quantization: levels, ties to even and clamping as torch's formula (first "
	       "difference at %d: %g vs %g)", bad, bad < 0 ? 0.0 : (double)y[bad], bad < 0 ? 0.0 : (double)want[bad]);
}

int main(void)
{
	lt_err err = {0};
	lt_dataset d;
	if (load_slice(&d, &err)) {
		tap_ok(0, "load the fixture slice: %s", err.msg);
		return tap_done();
	}
	against_torch("lenet300", &d);
	against_torch("lenet5", &d);
	fake_quant();

	lt_model *m = lt_model_open(sample("lenet300.safetensors"), &err);
	lt_ptq_result r;
	lt_dataset empty = d;
	empty.n = 0;
	lt_ptq_opts o = {.calibration = &empty, .data = &d};
	tap_ok(m && lt_ptq_run(m, &o, &r, &err) == LT_EINVAL && strstr(err.msg, "calibrate"),
	       "no calibration images: %s", err.msg);
	lt_forward *f = m ? lt_forward_new(m, 1, &err) : NULL;
	float sc[5] = {0, 0, 0, 0, -1};
	int32_t z[5] = {0};
	tap_ok(f && lt_forward_set_act_quant(f, sc, z, 0, 255, &err) == LT_EINVAL, "a negative scale is refused: %s",
	       err.msg);
	sc[4] = 0;
	tap_ok(f && lt_forward_set_act_quant(f, sc, z, 5, 5, &err) == LT_EINVAL, "empty levels are refused: %s",
	       err.msg);
	lt_forward_free(f);
	lt_model_unref(m);
	lt_dataset_release(&d);
	return tap_done();
}
