/* Structured pruning against PyTorch (tests/fixtures/structured.safetensors,
 * made by gen_structured_fixtures.py): ln_structured norms and masks, N:M
 * masks, and thinned models whose outputs must equal the same models
 * sliced by hand in torch. Plus ties, masks that only grow, refusals and
 * allocation failures. */
#include <string.h>
#include <unistd.h>

#include "core/mem.h"
#include "io/open.h"
#include "kern/prune.h"
#include "kern/structured.h"
#include "nn/forward.h"
#include "tap.h"
#include "testutil.h"

static lt_model *ref;

static lt_tensor *ref_t(const char *name, const char *part)
{
	char key[96];
	snprintf(key, sizeof key, "%s.%s", name, part);
	lt_tensor *t = lt_model_tensor(ref, key);
	if (!t) {
		printf("Bail out! fixture lacks %s\n", key);
		exit(1);
	}
	return t;
}

static int64_t ref_i64(const char *name, const char *part, int64_t i)
{
	int64_t v;
	memcpy(&v, (const char *)lt_tensor_raw(ref_t(name, part)) + 8 * i, 8);
	return v;
}

static int same_floats(const float *a, const float *b, int64_t n)
{
	for (int64_t i = 0; a && b && i < n; i++)
		if (a[i] != b[i])
			return 0;
	return a && b;
}

/* ---- ln_structured ---------------------------------------------------- */

static void ln_case(const char *name, int p, int dim, double amount)
{
	lt_err err = {0};
	lt_tensor *w = ref_t(name, "w");
	int64_t units = lt_tensor_shape(w)[dim], n = lt_tensor_numel(w);
	int64_t k = lt_prune_count(units, amount);
	tap_ok(k == ref_i64(name, "k", 0), "%s: removes %lld of %lld units as torch rounds %g",
	       name, (long long)k, (long long)units, amount);

	float norms[64];
	const float *want_n = lt_tensor_data(ref_t(name, "norms"), &err);
	int close = lt_structured_norms(w, dim, p, norms, &err) == 0;
	for (int64_t u = 0; close && u < units; u++)
		close = tap_close(norms[u], want_n[u], 1e-6, 0);
	tap_ok(close, "%s: L%d norms along dim %d equal torch.norm", name, p, dim);

	float *mask = lt_malloc_array((size_t)n, sizeof *mask);
	const float *want = lt_tensor_data(ref_t(name, "mask"), &err);
	tap_ok(lt_structured_mask(w, dim, p, k, mask, &err) == 0 && same_floats(mask, want, n),
	       "%s: mask equals torch's ln_structured", name);

	/* keep lists the units the mask leaves whole. */
	int64_t keep[64];
	int consistent = lt_structured_keep(norms, units, k, keep, &err) == 0;
	int64_t outer = dim == 0 ? 1 : lt_tensor_shape(w)[0], inner = n / outer / units;
	for (int64_t j = 0; consistent && j < units - k; j++)
		consistent = want[keep[j] * inner] == 1.0f && (j == 0 || keep[j] > keep[j - 1]);
	tap_ok(consistent, "%s: keep lists the %lld surviving units in order", name, (long long)(units - k));

	lt_tensor *pt = lt_structured_prune_tensor(w, dim, p, amount, &err);
	const float *pm = pt ? lt_tensor_data(lt_tensor_mask(pt), &err) : NULL;
	const float *pv = pt ? lt_tensor_data(pt, &err) : NULL, *wv = lt_tensor_data(w, &err);
	int zeroed = pv != NULL;
	for (int64_t i = 0; zeroed && i < n; i++)
		zeroed = pv[i] == (want[i] != 0.0f ? wv[i] : 0.0f);
	tap_ok(same_floats(pm, want, n) && zeroed, "%s: pruned tensor carries the mask, values zeroed", name);
	lt_tensor_unref(pt);
	lt_free(mask);
}

static void test_ln(void)
{
	ln_case("lin_l1_d0", 1, 0, 0.3);
	ln_case("lin_l2_d0", 2, 0, 0.375);
	ln_case("lin_l1_d1", 1, 1, 0.45);
	ln_case("lin_l2_d1", 2, 1, 0.6);
	ln_case("conv_l1_d0", 1, 0, 0.5);
	ln_case("conv_l2_d0", 2, 0, 0.25);
	ln_case("conv_l1_d1", 1, 1, 0.5);
	ln_case("conv_l2_d1", 2, 1, 0.75);

	/* torch prunes half of what is left the second time; lathe's amount is
	 * of all units, and the already-zero units go first. */
	lt_err err = {0};
	lt_tensor *w = ref_t("iter", "w");
	int64_t n = lt_tensor_numel(w), k = ref_i64("iter", "k", 0);
	lt_tensor *p1 = lt_structured_prune_tensor(w, 0, 2, 0.5, &err);
	lt_tensor *p2 = p1 ? lt_structured_prune_tensor(p1, 0, 2, (double)k / 16.0, &err) : NULL;
	const float *m2 = p2 ? lt_tensor_data(lt_tensor_mask(p2), &err) : NULL;
	tap_ok(same_floats(m2, lt_tensor_data(ref_t("iter", "mask"), &err), n),
	       "iterative: 50 %% then %lld of 16 rows equals torch's two ln_structured calls", (long long)k);
	lt_tensor *p3 = p2 ? lt_structured_prune_tensor(p2, 0, 2, 0.25, &err) : NULL;
	tap_ok(p3 && lt_tensor_count_zeros(p3) == lt_tensor_count_zeros(p2),
	       "a smaller amount on a pruned tensor brings nothing back");
	lt_tensor_unref(p1);
	lt_tensor_unref(p2);
	lt_tensor_unref(p3);

	/* Ties: equal norms remove the lower indices first. */
	float eq[5] = {2, 2, 2, 2, 2};
	int64_t keep[5];
	tap_ok(lt_structured_keep(eq, 5, 2, keep, &err) == 0 && keep[0] == 2 && keep[1] == 3 && keep[2] == 4,
	       "tied norms: the lower indices go first");
	tap_ok(lt_structured_keep(eq, 5, 6, keep, &err) == LT_EINVAL, "keep: k > n refused: %s", err.msg);

	/* Amount 0 and 1, f16 kept, bad arguments. */
	lt_tensor *lw = ref_t("lin_l1_d0", "w");
	lt_tensor *a0 = lt_structured_prune_tensor(lw, 0, 1, 0.0, &err);
	lt_tensor *a1 = lt_structured_prune_tensor(lw, 1, 2, 1.0, &err);
	tap_ok(a0 && a1 && lt_tensor_count_zeros(a0) == 0 && lt_tensor_count_zeros(a1) == lt_tensor_numel(lw),
	       "amount 0 removes nothing, amount 1 every unit");
	lt_tensor_unref(a0);
	lt_tensor_unref(a1);
	lt_tensor *h = lt_tensor_cast(lw, LT_F16, &err);
	lt_tensor *ph = h ? lt_structured_prune_tensor(h, 0, 1, 0.3, &err) : NULL;
	tap_ok(ph && lt_tensor_dtype(ph) == LT_F16 && lt_tensor_mask(ph) && lt_tensor_count_zeros(ph) == 4 * 20,
	       "f16 weights stay F16 with a mask");
	lt_tensor_unref(h);
	lt_tensor_unref(ph);
	float nb[64];
	tap_ok(lt_structured_norms(lw, 2, 1, nb, &err) == LT_EINVAL && strstr(err.msg, "dim"), "dim 2 refused: %s", err.msg);
	tap_ok(lt_structured_norms(lw, 0, 3, nb, &err) == LT_EINVAL && strstr(err.msg, "L1 or L2"), "p 3 refused: %s", err.msg);
	lt_tensor *vec = lt_tensor_new(1, (int64_t[]){8}, &err);
	tap_ok(lt_structured_norms(vec, 0, 1, nb, &err) == LT_EINVAL, "a 1-D tensor refused: %s", err.msg);
	lt_tensor_unref(vec);
	tap_ok(!lt_structured_prune_tensor(lw, 0, 1, 1.5, &err) && err.code == LT_EINVAL, "amount 1.5 refused: %s", err.msg);
	tap_ok(!lt_structured_prune_tensor(lw, 0, 1, NAN, &err) && err.code == LT_EINVAL, "NaN amount refused");
	float *mk = lt_malloc_array((size_t)lt_tensor_numel(lw), sizeof *mk);
	tap_ok(lt_structured_mask(lw, 0, 1, 13, mk, &err) == LT_EINVAL, "mask: k > units refused: %s", err.msg);
	lt_free(mk);
}

/* ---- N:M ---------------------------------------------------------------- */

static void nm_case(const char *name, int n, int m)
{
	lt_err err = {0};
	lt_tensor *w = ref_t(name, "w");
	lt_tensor *p = lt_structured_nm_tensor(w, n, m, &err);
	const float *pm = p ? lt_tensor_data(lt_tensor_mask(p), &err) : NULL;
	tap_ok(same_floats(pm, lt_tensor_data(ref_t(name, "mask"), &err), lt_tensor_numel(w)),
	       "%s: %d:%d mask equals torch.topk per group%s%s", name, n, m, p ? "" : ": ", p ? "" : err.msg);
	tap_ok(p && lt_tensor_count_zeros(p) == lt_tensor_numel(w) / m * (m - n),
	       "%s: exactly %d of every %d weights zeroed", name, m - n, m);
	lt_tensor_unref(p);
}

static void test_nm(void)
{
	nm_case("nm_lin24", 2, 4);
	nm_case("nm_lin48", 4, 8);
	nm_case("nm_lin13", 1, 3);
	nm_case("nm_conv24", 2, 4);

	lt_err err = {0};
	float mask[8];
	const int64_t row[2] = {2, 4};
	/* Ties keep the lower index; an old mask's zeros rank last and stay. */
	const float w[8] = {1, 1, 1, 1, 4, 3, 2, 1};
	const float old[8] = {1, 1, 1, 1, 0, 1, 1, 1};
	tap_ok(lt_structured_nm_mask(w, NULL, 2, row, 2, 4, mask, &err) == 0 &&
	       same_floats(mask, (const float[]){1, 1, 0, 0, 1, 1, 0, 0}, 8),
	       "2:4 ties keep the lower indices");
	tap_ok(lt_structured_nm_mask(w, old, 2, row, 2, 4, mask, &err) == 0 &&
	       same_floats(mask, (const float[]){1, 1, 0, 0, 0, 1, 1, 0}, 8),
	       "2:4 with an old mask: its zeros stay, the next largest are kept");
	const float old3[8] = {0, 0, 0, 1, 1, 1, 1, 1};
	tap_ok(lt_structured_nm_mask(w, old3, 2, row, 2, 4, mask, &err) == 0 &&
	       same_floats(mask, (const float[]){0, 0, 0, 1, 1, 1, 0, 0}, 8),
	       "2:4 where the old mask leaves fewer than N: only those stay");
	const float wn[4] = {NAN, 1, 2, 3};
	tap_ok(lt_structured_nm_mask(wn, NULL, 2, (const int64_t[]){1, 4}, 2, 4, mask, &err) == 0 &&
	       same_floats(mask, (const float[]){1, 0, 0, 1}, 4), "a NaN counts as largest; still N kept");

	/* The refusals: a tail group, N >= M, N < 1, other ranks. */
	const int64_t odd[2] = {2, 6};
	float big[12] = {0};
	tap_ok(lt_structured_nm_mask(big, NULL, 2, odd, 2, 4, big, &err) == LT_EINVAL &&
	       strstr(err.msg, "6 inputs, which 4 does not divide"), "in = 6 with M = 4 refused: %s", err.msg);
	tap_ok(lt_structured_nm_mask(big, NULL, 4, (const int64_t[]){1, 1, 2, 2}, 2, 4, big, &err) == LT_EINVAL &&
	       strstr(err.msg, "input channels"), "a conv with 1 input channel refused: %s", err.msg);
	tap_ok(lt_structured_nm_mask(big, NULL, 2, row, 4, 4, mask, &err) == LT_EINVAL, "4:4 refused: %s", err.msg);
	tap_ok(lt_structured_nm_mask(big, NULL, 2, row, 0, 4, mask, &err) == LT_EINVAL, "0:4 refused");
	tap_ok(lt_structured_nm_mask(big, NULL, 3, (const int64_t[]){1, 4, 1}, 2, 4, mask, &err) == LT_EINVAL,
	       "a 3-D tensor refused: %s", err.msg);

	/* A masked tensor: masks only grow, and at most N survive per group. */
	lt_tensor *lw = ref_t("nm_lin24", "w");
	lt_tensor *un = lt_structured_prune_tensor(lw, 1, 1, 0.25, &err);
	lt_tensor *nm = un ? lt_structured_nm_tensor(un, 2, 4, &err) : NULL;
	const float *m0 = un ? lt_tensor_data(lt_tensor_mask(un), &err) : NULL;
	const float *m1 = nm ? lt_tensor_data(lt_tensor_mask(nm), &err) : NULL;
	int grows = m0 && m1, at_most = m1 != NULL;
	for (int64_t i = 0; grows && i < lt_tensor_numel(lw); i++)
		grows = m1[i] <= m0[i];
	for (int64_t g = 0; at_most && g < lt_tensor_numel(lw) / 4; g++)
		at_most = m1[4 * g] + m1[4 * g + 1] + m1[4 * g + 2] + m1[4 * g + 3] <= 2;
	tap_ok(grows && at_most, "N:M over a column-pruned tensor keeps its zeros, <= 2 per group");
	lt_tensor_unref(un);
	lt_tensor_unref(nm);

	lt_tensor *h = lt_tensor_cast(lw, LT_F16, &err);
	lt_tensor *ph = h ? lt_structured_nm_tensor(h, 2, 4, &err) : NULL;
	tap_ok(ph && lt_tensor_dtype(ph) == LT_F16 && lt_tensor_count_zeros(ph) == 64, "N:M on f16 stays F16");
	lt_tensor_unref(h);
	lt_tensor_unref(ph);
}

/* ---- thinning --------------------------------------------------------- */

/* The fixture's model PREFIX as a model of its own (tensors "PREFIX/x"). */
static lt_model *load_model(const char *prefix)
{
	lt_err err = {0};
	lt_model *m = lt_model_new(&err);
	size_t len = strlen(prefix);
	for (size_t i = 0; m && i < lt_model_tensor_count(ref); i++) {
		const char *name = lt_model_tensor_name(ref, i);
		if (!strncmp(name, prefix, len) && name[len] == '/')
			lt_model_add_tensor(m, name + len + 1, lt_model_tensor_at(ref, i), &err);
	}
	char key[64];
	snprintf(key, sizeof key, "%s.arch", prefix);
	if (!m || lt_model_set_meta(m, LT_ARCH_META_KEY, lt_model_meta(ref, key), &err) ||
	    lt_model_load_arch(m, &err)) {
		printf("Bail out! model %s: %s\n", prefix, err.msg);
		exit(1);
	}
	return m;
}

/* Runs m on PREFIX.x against CASE.y: 1 when every output is within 1e-5
 * relative (plus 1e-6 absolute, for outputs near 0); *worst gets the
 * largest |out - want| / |want| seen. */
static int run_against(lt_model *m, const char *prefix, const char *case_name, double *worst)
{
	lt_err err = {0};
	lt_tensor *xt = ref_t(prefix, "x"), *yt = ref_t(case_name, "y");
	int64_t n = lt_tensor_shape(xt)[0], k = lt_tensor_shape(yt)[1];
	lt_forward *f = lt_forward_new(m, 1, &err);
	float *out = lt_malloc_array((size_t)(n * k), sizeof *out);
	const float *want = lt_tensor_data(yt, &err);
	int ok = 0;
	*worst = INFINITY;
	if (f && out && lt_forward_out_numel(f) == k &&
	    !lt_forward_run(f, lt_tensor_data(xt, &err), n, out, &err)) {
		ok = 1;
		*worst = 0;
		for (int64_t i = 0; i < n * k; i++) {
			ok &= tap_close(out[i], want[i], 1e-5, 1e-6);
			*worst = fmax(*worst, fabs(out[i] - want[i]) / fabs(want[i]));
		}
	} else {
		tap_diag("%s: %s", case_name, err.msg);
	}
	lt_free(out);
	lt_forward_free(f);
	return ok;
}

/* What a thinning must leave alone: tensors (by identity), metadata, graph. */
struct snapshot {
	size_t n;
	lt_tensor *t[32];
	char *json, *meta;
	int in_meta;
};

static char *graph_json(lt_model *m)
{
	lt_err err = {0};
	return lt_model_graph(m) ? lt_graph_to_json(lt_model_graph(m), &err) : NULL;
}

static int same_str(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

static void snap(lt_model *m, struct snapshot *s)
{
	const char *meta = lt_model_meta(m, LT_ARCH_META_KEY);
	s->n = lt_model_tensor_count(m);
	for (size_t i = 0; i < s->n && i < 32; i++)
		s->t[i] = lt_model_tensor_at(m, i);
	s->json = graph_json(m);
	s->meta = meta ? lt_strdup(meta) : NULL;
	s->in_meta = lt_model_graph_in_meta(m);
}

static int unchanged(lt_model *m, struct snapshot *s)
{
	int same = lt_model_tensor_count(m) == s->n && lt_model_graph_in_meta(m) == s->in_meta;
	for (size_t i = 0; same && i < s->n; i++)
		same = lt_model_tensor_at(m, i) == s->t[i];
	char *json = graph_json(m);
	same = same && same_str(json, s->json) && same_str(lt_model_meta(m, LT_ARCH_META_KEY), s->meta);
	lt_free(json);
	return same;
}

static void unsnap(struct snapshot *s)
{
	lt_free(s->json);
	lt_free(s->meta);
}

/* The metadata JSON parses to a graph equal to the model's. */
static int meta_matches(lt_model *m)
{
	lt_err err = {0};
	const lt_graph *g = lt_model_graph(m);
	lt_graph *p = lt_graph_from_json(lt_model_meta(m, LT_ARCH_META_KEY), &err);
	int same = p && p->n_nodes == g->n_nodes && lt_graph_macs(p) == lt_graph_macs(g);
	for (int i = 0; same && i < g->n_nodes; i++) {
		const lt_node *a = &g->nodes[i], *b = &p->nodes[i];
		same = a->op == b->op && !strcmp(a->name, b->name) && a->in_features == b->in_features &&
		       a->out_features == b->out_features && a->out_numel == b->out_numel &&
		       a->macs == b->macs && !memcmp(a->out_shape, b->out_shape, sizeof a->out_shape);
	}
	lt_graph_free(p);
	return same;
}

static char tmpdir[256];

static void thin_case(const char *case_name, const char *layer, int dim)
{
	lt_err err = {0};
	char prefix[8];
	snprintf(prefix, sizeof prefix, "%.3s", case_name);
	lt_model *m = load_model(prefix);
	struct snapshot s;
	snap(m, &s);
	lt_tensor *kt = ref_t(case_name, "keep");
	int64_t n_keep = lt_tensor_numel(kt), keep[64];
	for (int64_t j = 0; j < n_keep; j++)
		keep[j] = ref_i64(case_name, "keep", j);
	int64_t macs0 = lt_graph_macs(lt_model_graph(m)), params0 = lt_model_param_count(m);

	lt_model *t = lt_structured_thin(m, layer, dim, keep, n_keep, &err);
	tap_ok(t != NULL, "%s: %s dim %d thinned to %lld%s%s", case_name, layer, dim, (long long)n_keep,
	       t ? "" : ": ", t ? "" : err.msg);
	if (!t) {
		unsnap(&s);
		lt_model_unref(m);
		return;
	}
	int64_t macs = lt_graph_macs(lt_model_graph(t));
	tap_ok(macs == ref_i64(case_name, "macs", 0) && macs < macs0 && lt_model_param_count(t) < params0,
	       "%s: MACs %lld -> %lld as torch's, fewer parameters", case_name, (long long)macs0, (long long)macs);
	double worst, w0;
	int same = run_against(t, prefix, case_name, &worst);
	tap_ok(same, "%s: outputs equal torch's sliced model within 1e-5 (worst relative %.2g)", case_name, worst);
	tap_ok(unchanged(m, &s) && run_against(m, prefix, prefix, &w0), "%s: the input model is unchanged",
	       case_name);
	tap_ok(meta_matches(t), "%s: %s in the metadata parses to the new graph", case_name, LT_ARCH_META_KEY);

	/* Saved and reopened, it is the same smaller model. */
	char path[300];
	snprintf(path, sizeof path, "%s/%s.safetensors", tmpdir, case_name);
	lt_model *back = NULL;
	if (!lt_model_save(t, path, &err))
		back = lt_model_open(path, &err);
	tap_ok(back && lt_graph_macs(lt_model_graph(back)) == macs && run_against(back, prefix, case_name, &w0),
	       "%s: saved and reopened with the new shapes%s%s", case_name, back ? "" : ": ", back ? "" : err.msg);
	unlink(path);
	lt_model_unref(back);
	lt_model_unref(t);
	unsnap(&s);
	lt_model_unref(m);
}

static int dims_are(lt_model *m, const char *name, int nd, const int64_t *want)
{
	lt_tensor *t = lt_model_tensor(m, name);
	return t && lt_tensor_ndim(t) == nd && !memcmp(lt_tensor_shape(t), want, (size_t)nd * sizeof *want);
}

/* Masks (here: |w| > 0.2, weights zeroed elsewhere) follow the slices, so
 * every sliced tensor still has mask == (w != 0); half dtypes stay. */
static void test_masks(void)
{
	lt_err err = {0};
	lt_model *m = load_model("cnn");
	const char *names[] = {"conv1.weight", "conv1.bias", "conv2.weight", "fc1.weight"};
	for (int i = 0; i < 4; i++) {
		lt_tensor *w = lt_tensor_clone(lt_model_tensor(m, names[i]), &err);
		lt_tensor *mk = lt_tensor_new(lt_tensor_ndim(w), lt_tensor_shape(w), &err);
		float *v = lt_tensor_data_mut(w, &err), *mv = lt_tensor_data_mut(mk, &err);
		for (int64_t j = 0; j < lt_tensor_numel(w); j++) {
			mv[j] = fabsf(v[j]) > 0.2f;
			v[j] = mv[j] != 0.0f ? v[j] : 0.0f;
		}
		if (i == 3) {
			lt_tensor *half = lt_tensor_cast(w, LT_BF16, &err);
			lt_tensor_unref(w);
			w = half;
		}
		lt_tensor_set_mask(w, mk, &err);
		lt_model_set_tensor(m, names[i], w, &err);
		lt_tensor_unref(w);
		lt_tensor_unref(mk);
	}
	int64_t k1[] = {0, 2, 3, 5}, k2[] = {1, 2, 4, 6, 7};
	lt_model *a = lt_structured_thin(m, "conv1", 0, k1, 4, &err);
	lt_model *b = a ? lt_structured_thin(a, "conv2", 0, k2, 5, &err) : NULL;
	int ok = b != NULL;
	for (int i = 0; ok && i < 4; i++) {
		lt_tensor *w = lt_model_tensor(b, names[i]), *mk = lt_tensor_mask(w);
		const float *v = lt_tensor_data(w, &err), *mv = mk ? lt_tensor_data(mk, &err) : NULL;
		ok = mv && lt_tensor_numel(mk) == lt_tensor_numel(w);
		for (int64_t j = 0; ok && j < lt_tensor_numel(w); j++)
			ok = mv[j] == (v[j] != 0.0f);
	}
	tap_ok(ok, "masks are sliced with their tensors%s%s", b ? "" : ": ", b ? "" : err.msg);
	tap_ok(b && dims_are(b, "conv1.weight", 4, (const int64_t[]){4, 2, 3, 3}) &&
	       dims_are(b, "bn1.running_var", 1, (const int64_t[]){4}) &&
	       dims_are(b, "conv2.weight", 4, (const int64_t[]){5, 4, 2, 2}) &&
	       dims_are(b, "fc1.weight", 2, (const int64_t[]){12, 20}) &&
	       dims_are(b, "fc2.weight", 2, (const int64_t[]){5, 12}),
	       "two thinnings in a row: conv1 [4,2,3,3], bn1 [4], conv2 [5,4,2,2], fc1 [12,20]");
	tap_ok(b && lt_tensor_dtype(lt_model_tensor(b, "fc1.weight")) == LT_BF16 &&
	       lt_tensor_dtype(lt_model_tensor(b, "conv2.weight")) == LT_F32, "a BF16 tensor stays BF16");
	tap_ok(b && lt_model_tensor(b, "bn1.num_batches_tracked") == lt_model_tensor(m, "bn1.num_batches_tracked"),
	       "untouched tensors are shared, not copied");
	lt_model_unref(a);
	lt_model_unref(b);
	lt_model_unref(m);
}

/* A model from JSON with zero weights of the right shapes. */
static lt_model *from_arch(const char *json)
{
	lt_err err = {0};
	lt_graph *g = lt_graph_from_json(json, &err);
	lt_model *m = lt_model_new(&err);
	for (int i = 0; g && i < g->n_nodes; i++) {
		const lt_node *n = &g->nodes[i];
		if (n->op != LT_OP_LINEAR)
			continue;
		lt_tensor *w = lt_tensor_new(2, (int64_t[]){n->out_features, n->in_features}, &err);
		lt_tensor *b = lt_tensor_new(1, &n->out_features, &err);
		lt_model_add_tensor(m, n->params[LT_P_WEIGHT], w, &err);
		lt_model_add_tensor(m, n->params[LT_P_BIAS], b, &err);
		lt_tensor_unref(w);
		lt_tensor_unref(b);
	}
	if (!g || lt_model_set_graph(m, g, &err)) {
		printf("Bail out! %s\n", err.msg);
		exit(1);
	}
	return m;
}

static void refused(lt_model *m, const char *layer, int dim, const int64_t *keep, int64_t n,
		    int code, const char *says, const char *what)
{
	lt_err err = {0};
	struct snapshot s;
	snap(m, &s);
	lt_model *t = lt_structured_thin(m, layer, dim, keep, n, &err);
	tap_ok(!t && err.code == code && strstr(err.msg, says) && unchanged(m, &s), "%s refused: %s", what, err.msg);
	lt_model_unref(t);
	unsnap(&s);
}

static void test_refusals(void)
{
	lt_model *cnn = load_model("cnn"), *mlp = load_model("mlp");
	int64_t k3[] = {0, 1, 2}, bad_order[] = {2, 1}, dup[] = {1, 1}, far[] = {0, 6};
	int64_t split[] = {0, 1, 2, 3, 5, 6, 7, 8}; /* channel 1 misses column 4 */
	refused(cnn, "fc2", 0, k3, 3, LT_ENOTSUP, "classes", "the last layer's outputs");
	refused(mlp, "fc3", 0, k3, 3, LT_ENOTSUP, "classes", "outputs before the final softmax");
	refused(cnn, "conv1", 1, k3 + 1, 1, LT_ENOTSUP, "model's input", "inputs of the first conv");
	refused(mlp, "fc1", 1, k3, 3, LT_ENOTSUP, "model's input", "inputs of the first linear");
	refused(cnn, "fc1", 1, split, 8, LT_EINVAL, "whole channels", "columns splitting a channel");
	refused(cnn, "conv1", 0, k3, 0, LT_EINVAL, "at least one", "keeping no units");
	refused(cnn, "conv1", 0, bad_order, 2, LT_EINVAL, "increasing", "unsorted units");
	refused(cnn, "conv1", 0, dup, 2, LT_EINVAL, "increasing", "repeated units");
	refused(cnn, "conv1", 0, far, 2, LT_EINVAL, "cannot keep output 6", "a unit out of range");
	refused(cnn, "nosuch", 0, k3, 3, LT_EINVAL, "no layer named", "an unknown layer");
	refused(cnn, "relu1", 0, k3, 3, LT_EINVAL, "only linear and conv2d", "a relu");
	refused(cnn, "conv1", 2, k3, 3, LT_EINVAL, "dim 0", "dim 2");

	lt_model *branch = from_arch("{\"input\":[4],\"layers\":["
		"{\"op\":\"linear\",\"name\":\"a\",\"in_features\":4,\"out_features\":6},"
		"{\"op\":\"relu\",\"name\":\"r\"},"
		"{\"op\":\"linear\",\"name\":\"b\",\"inputs\":[\"a\"],\"in_features\":6,\"out_features\":3}]}");
	refused(branch, "a", 0, k3, 3, LT_ENOTSUP, "feeds 2 layers", "a value read by two layers");
	lt_model *soft = from_arch("{\"input\":[4],\"layers\":["
		"{\"op\":\"linear\",\"name\":\"a\",\"in_features\":4,\"out_features\":6},"
		"{\"op\":\"softmax\",\"name\":\"s\"},"
		"{\"op\":\"linear\",\"name\":\"b\",\"in_features\":6,\"out_features\":3}]}");
	refused(soft, "b", 1, k3, 3, LT_ENOTSUP, "normalises", "units under a softmax");

	/* Tied weights: b reads a's weight too, so it cannot shrink for a. */
	lt_err err = {0};
	lt_model *tied = from_arch("{\"input\":[6],\"layers\":["
		"{\"op\":\"linear\",\"name\":\"a\",\"in_features\":6,\"out_features\":6},"
		"{\"op\":\"relu\",\"name\":\"r\"},"
		"{\"op\":\"linear\",\"name\":\"b\",\"in_features\":6,\"out_features\":6},"
		"{\"op\":\"linear\",\"name\":\"c\",\"in_features\":6,\"out_features\":2}]}");
	lt_graph *g = lt_graph_clone(lt_model_graph(tied), &err);
	lt_free(g->nodes[2].params[LT_P_WEIGHT]);
	g->nodes[2].params[LT_P_WEIGHT] = lt_strdup("a.weight");
	if (lt_model_set_graph(tied, g, &err))
		lt_graph_free(g);
	refused(tied, "a", 0, k3, 3, LT_ENOTSUP, "shared by layers", "a tensor two layers share");

	lt_model *wo = lt_model_new(&err);
	refused(wo, "fc1", 0, k3, 3, LT_ENOTSUP, "no architecture", "a weights-only model");

	/* Keeping every unit is allowed and changes nothing but the copy. */
	int64_t all[6] = {0, 1, 2, 3, 4, 5};
	lt_model *same = lt_structured_thin(cnn, "conv1", 0, all, 6, &err);
	double worst;
	tap_ok(same && lt_graph_macs(lt_model_graph(same)) == lt_graph_macs(lt_model_graph(cnn)) &&
	       run_against(same, "cnn", "cnn", &worst), "keeping every unit gives an equal model");
	lt_model_unref(same);

	lt_model_unref(branch);
	lt_model_unref(soft);
	lt_model_unref(tied);
	lt_model_unref(wo);
	lt_model_unref(mlp);
	lt_model_unref(cnn);
}

/* ---- allocation failures ---------------------------------------------- */

static void sweep_thin(const char *what, const char *prefix, const char *layer, int dim,
		       const int64_t *keep, int64_t n)
{
	lt_model *m = load_model(prefix);
	struct snapshot s;
	snap(m, &s);
	int bad = 0, done = 0;
	long i;
	for (i = 0; i < 100000 && !done; i++) {
		lt_err err = {0};
		lt_mem_fail_after(i);
		lt_model *t = lt_structured_thin(m, layer, dim, keep, n, &err);
		lt_mem_fail_after(-1);
		done = t != NULL;
		bad |= !t && err.code != LT_ENOMEM;
		bad |= !unchanged(m, &s);
		bad |= t && lt_graph_macs(lt_model_graph(t)) >= lt_graph_macs(lt_model_graph(m));
		lt_model_unref(t);
	}
	tap_ok(done && !bad, "allocation sweep over %s: %ld sites, each LT_ENOMEM, input unchanged",
	       what, i - 1);
	unsnap(&s);
	lt_model_unref(m);
}

static void sweep_kernels(void)
{
	lt_tensor *w = ref_t("conv_l2_d1", "w");
	lt_tensor *h = lt_tensor_cast(w, LT_F16, NULL);
	lt_tensor *src[2] = {w, h};
	int bad = 0, sites = 0;
	for (int which = 0; which < 4; which++) {
		int done = 0;
		for (long i = 0; i < 1000 && !done; i++) {
			lt_err err = {0};
			lt_tensor *t = which < 2 ? lt_tensor_clone(src[which], NULL) : NULL;
			lt_mem_fail_after(i);
			lt_tensor *p = which < 2 ? lt_structured_prune_tensor(t, 1, 2, 0.5, &err)
						 : lt_structured_nm_tensor(which == 2 ? w : h, 2, 3, &err);
			lt_mem_fail_after(-1);
			done = p != NULL;
			bad |= !p && err.code != LT_ENOMEM;
			sites++;
			lt_tensor_unref(p);
			lt_tensor_unref(t);
		}
		bad |= !done;
	}
	tap_ok(!bad, "allocation sweeps over prune_tensor and nm_tensor (f32, f16): LT_ENOMEM (%d runs)", sites);
	lt_tensor_unref(h);
}

int main(void)
{
	lt_err err = {0};
	ref = lt_model_open(fixture("structured.safetensors"), &err);
	if (!ref)
		tap_skip_all("structured.safetensors missing");
	const char *base = getenv("TMPDIR");
	snprintf(tmpdir, sizeof tmpdir, "%s/t_structured.XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 99;
	}

	test_ln();
	test_nm();

	lt_model *cnn = load_model("cnn"), *mlp = load_model("mlp");
	double w1, w2;
	int same = run_against(cnn, "cnn", "cnn", &w1);
	same &= run_against(mlp, "mlp", "mlp", &w2);
	tap_ok(same, "the unthinned models match torch (worst relative %.2g, %.2g)", w1, w2);
	lt_model_unref(cnn);
	lt_model_unref(mlp);
	thin_case("cnn_conv1_out", "conv1", 0);
	thin_case("cnn_conv2_out", "conv2", 0);
	thin_case("cnn_fc1_out", "fc1", 0);
	thin_case("cnn_conv2_in", "conv2", 1);
	thin_case("cnn_fc1_in", "fc1", 1);
	thin_case("mlp_fc1_out", "fc1", 0);
	thin_case("mlp_fc2_in", "fc2", 1);
	thin_case("mlp_fc2_out", "fc2", 0);
	test_masks();
	test_refusals();

	int64_t k[] = {0, 1, 2, 3, 12, 13, 14, 15}; /* channels 0 and 3 */
	sweep_thin("cnn fc1 inputs (whole channels)", "cnn", "fc1", 1, k, 8);
	int64_t km[] = {1, 2, 5, 8};
	sweep_thin("mlp fc1 outputs (batchnorm)", "mlp", "fc1", 0, km, 4);
	sweep_kernels();

	if (rmdir(tmpdir) != 0)
		tap_diag("could not remove %s", tmpdir);
	lt_model_unref(ref);
	return tap_done();
}
