/* Forward pass against PyTorch reference logits (tests/fixtures, made by
 * gen_fixtures.py with torch 1.13), at several batch sizes and threads. */
#include <math.h>
#include <string.h>

#include "core/mem.h"
#include "data/dataset.h"
#include "io/open.h"
#include "kern/prune.h"
#include "nn/forward.h"
#include "tap.h"
#include "testutil.h"


static void check_model(const char *name, const lt_dataset *d)
{
	char file[256], ref_file[256];
	lt_err err = {0};
	snprintf(file, sizeof file, "%s.safetensors", name);
	snprintf(ref_file, sizeof ref_file, "%s_ref.safetensors", name);
	lt_model *m = lt_model_open(fixture(file), &err);
	lt_model *ref = lt_model_open(fixture(ref_file), &err);
	tap_ok(m && ref && lt_model_graph(m), "%s: opens with a graph (%s)", name, err.msg);
	if (!m || !ref || !lt_model_graph(m)) {
		lt_model_unref(m);
		lt_model_unref(ref);
		return;
	}
	const lt_graph *g = lt_model_graph(m);
	lt_tensor *logits_t = lt_model_tensor(ref, "logits");
	const float *want = lt_tensor_data(logits_t, &err);
	int64_t n = d->n, k = lt_graph_out_numel(g);
	float *x = lt_malloc_array((size_t)(n * g->in_numel), sizeof *x);
	float *out = lt_malloc_array((size_t)(n * k), sizeof *out);
	lt_dataset_get_batch(d, 0, n, g->scale, g->mean, g->std, g->n_norm, x, &err);
	double scale = 0;
	for (int64_t i = 0; i < n * k; i++)
		scale = fmax(scale, fabs(want[i]));
	const int batches[] = {256, 1, 7, 100};
	const int threads[] = {2, 1, 2, 3};
	for (int c = 0; c < 4; c++) {
		lt_forward *f = lt_forward_new(m, threads[c], &err);
		memset(out, 0, sizeof(float) * (size_t)(n * k));
		for (int64_t i = 0; f && i < n; i += batches[c]) {
			int64_t b = n - i < batches[c] ? n - i : batches[c];
			lt_forward_run(f, x + i * g->in_numel, b, out + i * k, &err);
		}
		double worst = 0;
		for (int64_t i = 0; i < n * k; i++)
			worst = fmax(worst, fabs(out[i] - want[i]));
		tap_ok(f && worst <= 1e-4 * scale, "%s: batch %d, %d threads: max |diff| %.3g (scale %.3g)",
		       name, batches[c], threads[c], worst, scale);
		lt_forward_free(f);
	}
	lt_free(x);
	lt_free(out);
	lt_model_unref(m);
	lt_model_unref(ref);
}

int main(void)
{
	lt_err err = {0};
	lt_dataset d = {0};
	if (load_slice(&d, &err)) {
		tap_ok(0, "load the fixture slice: %s", err.msg);
		return tap_done();
	}
	const char *models[] = {"mlp", "cnn", "allops", "allops_nsq", "mlp_f16", "mlp_bf16"};
	for (size_t i = 0; i < sizeof models / sizeof *models; i++)
		check_model(models[i], &d);

	/* Pooling a one-pixel-wide image with stride 2 and padding must stay
	 * inside each sample (a rounding bug once read the next sample). */
	lt_graph *pg = lt_graph_from_json("{\"input\":[1,1,1],\"layers\":[{\"op\":\"maxpool2d\",\"kernel_size\":3,"
					  "\"stride\":2,\"padding\":1},{\"op\":\"flatten\"}]}", &err);
	lt_model *pm = lt_model_new(&err);
	float px[2] = {-5, 100}, py[2] = {0, 0};
	int prc = pg ? lt_model_set_graph(pm, pg, &err) : -1;
	lt_forward *pf = prc == 0 ? lt_forward_new(pm, 1, &err) : NULL;
	if (pf)
		lt_forward_run(pf, px, 2, py, &err);
	tap_ok(pf && py[0] == -5 && py[1] == 100, "1-pixel max pool keeps each sample's value (%g %g)", py[0], py[1]);
	lt_forward_free(pf);
	lt_model_unref(pm);

	/* Activation sparsity on the mlp (fc1 relu fc2 relu fc3): counts equal
	 * a count of the value itself, and a threshold on relu2's output
	 * equals running the model to it, zeroing |v| < t there by hand and
	 * running the rest from that value. */
	lt_model *am = lt_model_open(fixture("mlp.safetensors"), &err);
	const lt_graph *ag = am ? lt_model_graph(am) : NULL;
	if (ag) {
		int relu = 1; /* node 1 = relu after fc1, its output is value 2 */
		int64_t n = d.n, vn = lt_graph_value_numel(ag, relu + 1), k = lt_graph_out_numel(ag);
		float *x = lt_malloc_array((size_t)(n * ag->in_numel), sizeof *x);
		float *v = lt_malloc_array((size_t)(n * vn), sizeof *v);
		float *want = lt_malloc_array((size_t)(n * k), sizeof *want), *got = lt_malloc_array((size_t)(n * k), sizeof *got);
		lt_dataset_get_batch(&d, 0, n, ag->scale, ag->mean, ag->std, ag->n_norm, x, &err);
		lt_forward *af = lt_forward_new(am, 2, &err);
		lt_forward_run_range(af, 0, relu + 1, x, n, v, &err);
		int64_t nz = 0;
		for (int64_t i = 0; i < n * vn; i++)
			nz += v[i] != 0.0f;
		const float t = 0.5f;
		for (int64_t i = 0; i < n * vn; i++)
			v[i] = fabsf(v[i]) < t ? 0.0f : v[i];
		lt_forward_run_range(af, relu + 1, ag->n_nodes, v, n, want, &err);
		lt_forward_free(af);

		af = lt_forward_new(am, 2, &err);
		int64_t *nonzero = lt_calloc((size_t)ag->n_nodes, sizeof *nonzero);
		int64_t *total = lt_calloc((size_t)ag->n_nodes, sizeof *total);
		lt_forward_count_activations(af, &err);
		lt_forward_run(af, x, n, got, &err);
		lt_forward_activation_counts(af, nonzero, total);
		tap_ok(nonzero[relu] == nz && total[relu] == n * vn, "activation counts: relu1 %lld of %lld non-zero, "
		       "as counted by hand (%lld)", (long long)nonzero[relu], (long long)total[relu], (long long)nz);
		float *thr = lt_calloc((size_t)ag->n_nodes, sizeof *thr);
		thr[relu] = t;
		int trc = lt_forward_set_act_threshold(af, thr, &err);
		lt_forward_run(af, x, n, got, &err);
		tap_ok(trc == 0 && !memcmp(got, want, (size_t)(n * k) * sizeof *got),
		       "activation threshold 0.5 on relu1 equals zeroing that value by hand");
		thr[relu] = -1;
		tap_ok(lt_forward_set_act_threshold(af, thr, &err) == LT_EINVAL, "a negative threshold is refused: %s",
		       err.msg);
		lt_forward_free(af);
		/* The same threshold staged in the graph; an override replaces it. */
		lt_model *tm = lt_model_copy(am, &err);
		lt_graph *tg = tm ? lt_graph_clone(ag, &err) : NULL;
		if (tg)
			tg->nodes[relu].act_threshold = t;
		if (tg && lt_model_set_graph(tm, tg, &err))
			lt_graph_free(tg);
		af = tm ? lt_forward_new(tm, 2, &err) : NULL;
		memset(got, 0, (size_t)(n * k) * sizeof *got);
		if (af)
			lt_forward_run(af, x, n, got, &err);
		tap_ok(af && !memcmp(got, want, (size_t)(n * k) * sizeof *got),
		       "a threshold in the graph equals the same threshold given to the pass");
		thr[relu] = 0;
		float *plain = lt_malloc_array((size_t)(n * k), sizeof *plain);
		lt_forward *pf0 = lt_forward_new(am, 2, &err);
		lt_forward_run(pf0, x, n, plain, &err);
		lt_forward_free(pf0);
		if (af) {
			lt_forward_set_act_threshold(af, thr, &err);
			lt_forward_run(af, x, n, got, &err);
		}
		tap_ok(af && !memcmp(got, plain, (size_t)(n * k) * sizeof *got),
		       "an override of 0 lifts the graph's threshold");
		if (af) {
			lt_forward_set_act_threshold(af, NULL, &err);
			lt_forward_run(af, x, n, got, &err);
		}
		tap_ok(af && !memcmp(got, want, (size_t)(n * k) * sizeof *got), "no override: the graph's again");
		lt_free(plain);
		lt_model_unref(tm);
		lt_free(thr);
		lt_free(nonzero);
		lt_free(total);
		lt_forward_free(af);
		lt_free(x);
		lt_free(v);
		lt_free(want);
		lt_free(got);
	}
	lt_model_unref(am);

	/* Pruned linear layers run through the sparse kernel (nn/sparse.c):
	 * the mlp with 92 % of every weight removed against a float64 loop. */
	lt_model *sm = lt_model_open(fixture("mlp.safetensors"), &err);
	const lt_graph *sg = sm ? lt_model_graph(sm) : NULL;
	if (sg) {
		lt_prune_spec spec = {.sparsity = 0.92};
		for (int i = 0; i < sg->n_nodes; i++) {
			const char *wn = sg->nodes[i].params[LT_P_WEIGHT];
			lt_tensor *p = wn ? lt_prune_tensor(lt_model_tensor(sm, wn), &spec, &err) : NULL;
			if (p)
				lt_model_set_tensor(sm, wn, p, &err);
			lt_tensor_unref(p);
		}
		int64_t n = d.n, k = lt_graph_out_numel(sg);
		float *x = lt_malloc_array((size_t)(n * sg->in_numel), sizeof *x);
		float *got = lt_malloc_array((size_t)(n * k), sizeof *got);
		double *a = lt_malloc_array(1024, sizeof *a), *bb = lt_malloc_array(1024, sizeof *bb);
		lt_dataset_get_batch(&d, 0, n, sg->scale, sg->mean, sg->std, sg->n_norm, x, &err);
		double worst = 0, scale = 0;
		for (int64_t s = 0; s < n; s++) {
			/* linear, relu, linear, relu, linear in double */
			int64_t width = sg->in_numel;
			for (int64_t j = 0; j < width; j++)
				a[j] = x[s * width + j];
			for (int i = 0; i < sg->n_nodes; i++) {
				const lt_node *nd = &sg->nodes[i];
				if (nd->op == LT_OP_RELU) {
					for (int64_t j = 0; j < width; j++)
						a[j] = a[j] > 0 ? a[j] : 0;
					continue;
				}
				const float *wv = lt_tensor_data(lt_model_tensor(sm, nd->params[LT_P_WEIGHT]), &err);
				const float *bv = lt_tensor_data(lt_model_tensor(sm, nd->params[LT_P_BIAS]), &err);
				for (int64_t o = 0; o < nd->out_features; o++) {
					double acc = bv[o];
					for (int64_t j = 0; j < width; j++)
						acc += (double)wv[o * width + j] * a[j];
					bb[o] = acc;
				}
				width = nd->out_features;
				memcpy(a, bb, (size_t)width * sizeof *a);
			}
			for (int64_t c = 0; c < k; c++)
				scale = fmax(scale, fabs(a[c]));
			for (int64_t c = 0; c < k; c++)
				got[s * k + c] = (float)a[c];
		}
		/* batch 1 on two threads: the second core takes half of fc1 */
		const int sb[] = {1, 1, 3, 17, 256}, st[] = {1, 2, 2, 1, 2};
		for (int c = 0; c < 5; c++) {
			lt_forward *sf = lt_forward_new(sm, st[c], &err);
			float *out = lt_malloc_array((size_t)(n * k), sizeof *out);
			for (int64_t i = 0; sf && i < n; i += sb[c]) {
				int64_t bsz = n - i < sb[c] ? n - i : sb[c];
				lt_forward_run(sf, x + i * sg->in_numel, bsz, out + i * k, &err);
			}
			worst = 0;
			for (int64_t i = 0; i < n * k; i++)
				worst = fmax(worst, fabs(out[i] - got[i]));
			tap_ok(sf && lt_forward_sparse_layers(sf) == 3 && worst <= 1e-5 * scale,
			       "92 %% pruned mlp, its 3 linear layers sparse, batch %d, %d thread(s): max |diff| %.3g "
			       "against float64 (scale %.3g)", sb[c], st[c], worst, scale);
			lt_free(out);
			lt_forward_free(sf);
		}
		lt_free(x);
		lt_free(got);
		lt_free(a);
		lt_free(bb);
	}
	lt_model_unref(sm);

	{
		lt_model *dm = lt_model_open(fixture("mlp.safetensors"), &err);
		lt_forward *df = dm ? lt_forward_new(dm, 1, &err) : NULL;
		tap_ok(df && lt_forward_sparse_layers(df) == 0, "a dense mlp plans no sparse layer");
		lt_forward_free(df);
		lt_model_unref(dm);
	}

	/* A weights-only model cannot be planned. */
	lt_model *w = lt_model_open(fixture("dtypes.safetensors"), &err);
	lt_forward *f = w ? lt_forward_new(w, 1, &err) : NULL;
	tap_ok(w && !f && err.code == LT_ENOTSUP && strstr(err.msg, "weights-only"),
	       "weights-only model: %s", err.msg);
	lt_model_unref(w);

	/* Allocation failures while planning are reported, never crash. */
	lt_model *m = lt_model_open(fixture("cnn.safetensors"), &err);
	int ok = m != NULL, finished = 0;
	for (long k = 0; m && k < 200 && !finished; k++) {
		lt_mem_fail_after(k);
		f = lt_forward_new(m, 2, &err);
		lt_mem_fail_after(-1);
		finished = f != NULL;
		ok &= finished || err.code == LT_ENOMEM;
		lt_forward_free(f);
	}
	tap_ok(ok && finished, "allocation-failure sweep over planning");
	lt_model_unref(m);
	lt_dataset_release(&d);
	return tap_done();
}
