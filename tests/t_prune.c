/* Pruning kernels against torch.nn.utils.prune (tests/fixtures/prune.safetensors,
 * made by gen_prune_fixtures.py), plus ties, masks that only grow, random
 * pruning and allocation failures. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "io/open.h"
#include "kern/prune.h"
#include "tap.h"
#include "testutil.h"

static lt_model *ref;

static int64_t ref_k(const char *name)
{
	char key[64];
	snprintf(key, sizeof key, "%s.k", name);
	int64_t k;
	memcpy(&k, lt_tensor_raw(lt_model_tensor(ref, key)), 8);
	return k;
}

static lt_tensor *ref_t(const char *name, const char *part)
{
	char key[64];
	snprintf(key, sizeof key, "%s.%s", name, part);
	return lt_model_tensor(ref, key);
}

static void against_torch(const char *name, double sparsity)
{
	lt_err err = {0};
	lt_tensor *w = ref_t(name, "w");
	int64_t n = lt_tensor_numel(w), k = ref_k(name);
	tap_ok(lt_prune_count(n, sparsity) == k, "%s: count %lld of %lld as torch rounds it", name,
	       (long long)lt_prune_count(n, sparsity), (long long)n);
	lt_prune_spec spec = {.method = LT_PRUNE_MAGNITUDE, .sparsity = sparsity};
	lt_tensor *p = lt_prune_tensor(w, &spec, &err);
	const float *m = p ? lt_tensor_data(lt_tensor_mask(p), &err) : NULL;
	const float *want = lt_tensor_data(ref_t(name, "mask"), &err);
	const float *pv = p ? lt_tensor_data(p, &err) : NULL, *wv = lt_tensor_data(w, &err);
	int same = m != NULL, zeroed = pv != NULL;
	for (int64_t i = 0; same && i < n; i++)
		same = m[i] == want[i];
	for (int64_t i = 0; zeroed && i < n; i++)
		zeroed = pv[i] == (m[i] != 0.0f ? wv[i] : 0.0f);
	tap_ok(same, "%s: mask equals torch's l1_unstructured", name);
	tap_ok(zeroed, "%s: values kept or zeroed by the mask", name);
	tap_ok(p && lt_tensor_count_zeros(p) == k, "%s: %lld zeros", name, (long long)k);
	lt_tensor_unref(p);
}

/* Global magnitude pruning of the three gNN weights against torch. */
static void global_against_torch(const char *tag)
{
	lt_err err = {0};
	char name[16];
	lt_prune_part parts[3];
	float *masks[3] = {0};
	int64_t total = 0;
	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof name, "w%d", i);
		lt_tensor *w = ref_t(tag, name);
		parts[i] = (lt_prune_part){lt_tensor_data(w, &err), NULL, lt_tensor_numel(w), NULL, NULL};
		parts[i].mask = masks[i] = malloc((size_t)parts[i].n * sizeof(float));
		total += parts[i].n;
	}
	int rc = lt_prune_magnitude_parts(parts, 3, ref_k(tag), &err);
	int same = rc == 0;
	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof name, "mask%d", i);
		const float *want = lt_tensor_data(ref_t(tag, name), &err);
		for (int64_t j = 0; same && j < parts[i].n; j++)
			same = masks[i][j] == want[j];
		free(masks[i]);
	}
	tap_ok(same, "%s: global selection over 3 tensors (%lld of %lld) equals torch's global_unstructured",
	       tag, (long long)ref_k(tag), (long long)total);

	/* The same through lt_prune_global on the tensors. */
	lt_tensor *in[3], *out[3];
	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof name, "w%d", i);
		in[i] = ref_t(tag, name);
	}
	int rc2 = lt_prune_global(in, 3, (double)ref_k(tag) / (double)total, out, &err);
	same = rc2 == 0;
	for (int i = 0; same && i < 3; i++) {
		snprintf(name, sizeof name, "mask%d", i);
		const float *want = lt_tensor_data(ref_t(tag, name), &err);
		const float *got = lt_tensor_data(lt_tensor_mask(out[i]), &err);
		const float *v = lt_tensor_data(out[i], &err), *w = lt_tensor_data(in[i], &err);
		for (int64_t j = 0; same && j < lt_tensor_numel(in[i]); j++)
			same = got[j] == want[j] && v[j] == (want[j] != 0.0f ? w[j] : 0.0f);
	}
	tap_ok(same, "%s: lt_prune_global gives torch's masks and the masked values", tag);
	for (int i = 0; rc2 == 0 && i < 3; i++)
		lt_tensor_unref(out[i]);
	int fails = 0, ok = 1;
	for (long i = 0; i < 12; i++) {
		lt_mem_fail_after(i);
		int r = lt_prune_global(in, 3, 0.5, out, &err);
		lt_mem_fail_after(-1);
		if (r) {
			fails++;
			ok &= r == LT_ENOMEM && !out[0] && !out[1] && !out[2];
		} else {
			for (int j = 0; j < 3; j++)
				lt_tensor_unref(out[j]);
		}
	}
	tap_ok(fails > 0 && ok, "%s: lt_prune_global allocation failures: LT_ENOMEM, no tensors (%d)", tag, fails);
}

/* The reference rule by sorting: key (masked first, then |w|, then the
 * global index); the first k are pruned. */
typedef struct { int masked; float mag; int64_t index; } ranked;
static int ranked_cmp(const void *a, const void *b)
{
	const ranked *x = a, *y = b;
	if (x->masked != y->masked)
		return y->masked - x->masked;
	if (x->mag != y->mag)
		return (x->mag > y->mag) - (x->mag < y->mag);
	return (x->index > y->index) - (x->index < y->index);
}

/* Large inputs go through several threads: compare with the sort. */
static void large_against_sort(void)
{
	lt_err err = {0};
	const int64_t len[3] = {1500000, 7, 2100001};
	int64_t total = len[0] + len[1] + len[2];
	float *w[3], *old[3], *mask[3], *out[3];
	lt_prune_part parts[3];
	ranked *r = malloc((size_t)total * sizeof *r);
	uint64_t x = 88172645463325252ull;
	int64_t g = 0;
	for (int p = 0; p < 3; p++) {
		w[p] = malloc((size_t)len[p] * sizeof(float));
		old[p] = malloc((size_t)len[p] * sizeof(float));
		mask[p] = malloc((size_t)len[p] * sizeof(float));
		out[p] = malloc((size_t)len[p] * sizeof(float));
		for (int64_t i = 0; i < len[p]; i++, g++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			/* few distinct magnitudes: many ties across slices and parts */
			w[p][i] = (float)((int)(x % 2001) - 1000) / 64.0f;
			old[p][i] = x % 97 == 0 ? 0.0f : 1.0f;
			r[g] = (ranked){old[p][i] == 0.0f, fabsf(w[p][i]), g};
		}
		parts[p] = (lt_prune_part){w[p], old[p], len[p], mask[p], out[p]};
	}
	qsort(r, (size_t)total, sizeof *r, ranked_cmp);
	const int64_t ks[] = {0, 1, total / 3, total * 9 / 10, total - 1, total};
	for (size_t c = 0; c < sizeof ks / sizeof *ks; c++) {
		int64_t k = ks[c];
		int rc = lt_prune_magnitude_parts(parts, 3, k, &err);
		char *want = calloc((size_t)total, 1);
		int64_t held = 0;
		for (int64_t i = 0; i < total; i++)
			held += r[i].masked;
		for (int64_t i = 0; i < (k > held ? k : held); i++)
			want[r[i].index] = 1;
		int same = rc == 0, outs = rc == 0;
		for (int p = 0, gi = 0; p < 3; p++)
			for (int64_t i = 0; i < len[p]; i++, gi++) {
				same &= (mask[p][i] == 0.0f) == want[gi];
				outs &= out[p][i] == (mask[p][i] != 0.0f ? w[p][i] : 0.0f);
			}
		tap_ok(same && outs, "%lld elements in 3 parts, ties and old masks, k = %lld: masks and values as "
		       "the sorted reference", (long long)total, (long long)k);
		free(want);
	}
	for (int p = 0; p < 3; p++) {
		free(w[p]);
		free(old[p]);
		free(mask[p]);
		free(out[p]);
	}
	free(r);
	tap_ok(lt_prune_magnitude_parts(parts, 0, 1, &err) == LT_EINVAL, "k above the total refused: %s", err.msg);
}

/* Without old masks large inputs are selected from a sample's bracket; a
 * sample that misleads (every sampled run large, the rest small) must fall
 * back to the radix passes and give the same exact result. */
static void sampled_against_sort(void)
{
	lt_err err = {0};
	const int64_t n = 3 << 20, period = n / 4096;
	float *w = malloc((size_t)n * sizeof *w), *mask = malloc((size_t)n * sizeof *mask);
	ranked *r = malloc((size_t)n * sizeof *r);
	char *want = malloc((size_t)n);
	for (int trap = 0; trap < 2; trap++) {
		uint64_t x = 0x2545F4914F6CDD1Dull;
		for (int64_t i = 0; i < n; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			/* 5000 distinct magnitudes: many ties at every threshold */
			w[i] = (float)((int)(x % 10001) - 5000) / 1024.0f;
			int64_t off = i % period - period / 2;
			if (trap)
				w[i] = off >= -12 && off < 12 ? 100.0f + w[i] : w[i] / 100.0f;
			r[i] = (ranked){0, fabsf(w[i]), i};
		}
		qsort(r, (size_t)n, sizeof *r, ranked_cmp);
		int same = 1;
		const int64_t ks[] = {1, n / 2, n * 9 / 10, n - 2};
		for (size_t c = 0; c < sizeof ks / sizeof *ks; c++) {
			lt_prune_part part = {w, NULL, n, mask, NULL};
			int rc = lt_prune_magnitude_parts(&part, 1, ks[c], &err);
			memset(want, 0, (size_t)n);
			for (int64_t i = 0; i < ks[c]; i++)
				want[r[i].index] = 1;
			same &= rc == 0;
			for (int64_t i = 0; same && i < n; i++)
				same &= (mask[i] == 0.0f) == want[i];
		}
		tap_ok(same, "%lld elements, no old mask, ties, %s: masks as the sorted reference at 4 sparsities",
		       (long long)n, trap ? "a sample that misleads (radix fallback)" : "selected from a sample");
	}
	free(w);
	free(mask);
	free(r);
	free(want);
}

int main(void)
{
	lt_err err = {0};
	ref = lt_model_open(fixture("prune.safetensors"), &err);
	if (!ref)
		tap_skip_all("prune.safetensors missing");
	against_torch("fc30", 0.3);
	against_torch("fc90", 0.9);
	against_torch("fc123", 0.123);
	against_torch("conv66", 0.66);
	against_torch("vec50", 0.5);
	global_against_torch("g60");
	global_against_torch("g93");
	large_against_sort();
	sampled_against_sort();

	/* torch prunes 60 % of what is left; lathe's sparsity is of the whole
	 * tensor, so the same mask comes from the total. */
	lt_tensor *w = ref_t("iter", "w");
	int64_t n = lt_tensor_numel(w), k = ref_k("iter");
	lt_prune_spec s1 = {.sparsity = 0.5}, s2 = {.sparsity = (double)k / (double)n};
	lt_tensor *p1 = lt_prune_tensor(w, &s1, &err);
	lt_tensor *p2 = p1 ? lt_prune_tensor(p1, &s2, &err) : NULL;
	const float *m2 = p2 ? lt_tensor_data(lt_tensor_mask(p2), &err) : NULL;
	const float *want = lt_tensor_data(ref_t("iter", "mask"), &err);
	int same = m2 != NULL;
	for (int64_t i = 0; same && i < n; i++)
		same = m2[i] == want[i];
	tap_ok(same, "iterative: 50 %% then %.4f total equals torch's two l1_unstructured calls", s2.sparsity);

	/* A mask only grows: asking for less sparsity keeps what was pruned. */
	lt_prune_spec less = {.sparsity = 0.1};
	lt_tensor *p3 = p2 ? lt_prune_tensor(p2, &less, &err) : NULL;
	tap_ok(p3 && lt_tensor_count_zeros(p3) == k, "lower sparsity on a pruned tensor prunes nothing back");
	/* Zero weights that are not masked rank like any small weight. */
	lt_tensor_unref(p1);
	lt_tensor_unref(p2);
	lt_tensor_unref(p3);

	/* Ties: all equal magnitudes -> the first k in index order go. */
	int64_t shape[1] = {10};
	lt_tensor *flat = lt_tensor_new(1, shape, &err);
	float *fv = lt_tensor_data_mut(flat, &err);
	for (int i = 0; i < 10; i++)
		fv[i] = i % 2 ? 0.5f : -0.5f;
	lt_prune_spec s4 = {.sparsity = 0.4};
	lt_tensor *p4 = lt_prune_tensor(flat, &s4, &err);
	const float *m4 = lt_tensor_data(lt_tensor_mask(p4), &err);
	tap_ok(m4[0] == 0 && m4[3] == 0 && m4[4] == 1 && m4[9] == 1, "ties go to the lower index");
	lt_tensor_unref(p4);

	/* Threshold. */
	lt_prune_spec s5 = {.by_threshold = 1, .threshold = 0.5f};
	lt_tensor *p5 = lt_prune_tensor(flat, &s5, &err);
	tap_ok(p5 && lt_tensor_count_zeros(p5) == 0, "threshold: |w| < t pruned, |w| == t kept");
	lt_tensor_unref(p5);
	s5.threshold = 0.51f;
	p5 = lt_prune_tensor(flat, &s5, &err);
	tap_ok(p5 && lt_tensor_count_zeros(p5) == 10, "threshold above every |w| prunes all");
	lt_tensor_unref(p5);

	/* Edge sparsities and bad input. */
	lt_prune_spec s0 = {.sparsity = 0.0}, s1full = {.sparsity = 1.0}, bad = {.sparsity = 1.5};
	lt_tensor *p6 = lt_prune_tensor(w, &s0, &err), *p7 = lt_prune_tensor(w, &s1full, &err);
	tap_ok(p6 && lt_tensor_count_zeros(p6) == 0, "sparsity 0 prunes nothing");
	tap_ok(p7 && lt_tensor_count_zeros(p7) == n, "sparsity 1 prunes everything");
	lt_tensor_unref(p6);
	lt_tensor_unref(p7);
	tap_ok(!lt_prune_tensor(w, &bad, &err) && err.code == LT_EINVAL && strstr(err.msg, "between 0 and 1"),
	       "sparsity 1.5 refused: %s", err.msg);
	bad.sparsity = NAN;
	tap_ok(!lt_prune_tensor(w, &bad, &err) && err.code == LT_EINVAL, "NaN sparsity refused");

	/* Random: exact count, deterministic per seed, different across seeds. */
	lt_prune_spec r1 = {.method = LT_PRUNE_RANDOM, .sparsity = 0.7, .seed = 3};
	lt_prune_spec r2 = r1;
	r2.seed = 4;
	lt_tensor *a = lt_prune_tensor(w, &r1, &err), *b = lt_prune_tensor(w, &r1, &err);
	lt_tensor *c = lt_prune_tensor(w, &r2, &err);
	const float *ma = lt_tensor_data(lt_tensor_mask(a), &err), *mb = lt_tensor_data(lt_tensor_mask(b), &err);
	const float *mc = lt_tensor_data(lt_tensor_mask(c), &err);
	tap_ok(lt_tensor_count_zeros(a) == lt_prune_count(n, 0.7), "random: exact count");
	tap_ok(!memcmp(ma, mb, (size_t)n * 4), "random: same seed, same mask");
	tap_ok(memcmp(ma, mc, (size_t)n * 4) != 0, "random: another seed, another mask");
	lt_tensor_unref(a);
	lt_tensor_unref(b);
	lt_tensor_unref(c);

	/* f16 weights stay f16 (zeros are exact). */
	lt_tensor *h = lt_tensor_cast(w, LT_F16, &err);
	lt_tensor *ph = lt_prune_tensor(h, &s1, &err);
	tap_ok(ph && lt_tensor_dtype(ph) == LT_F16 && lt_tensor_mask(ph), "pruning f16 keeps F16 and the mask");
	lt_tensor_unref(h);
	lt_tensor_unref(ph);

	/* Allocation failures: NULL with LT_ENOMEM, never a crash or a leak. */
	int fails = 0, ok = 1;
	for (long i = 0; i < 8; i++) {
		lt_mem_fail_after(i);
		lt_tensor *q = lt_prune_tensor(w, &s1, &err);
		lt_mem_fail_after(-1);
		if (!q) {
			fails++;
			ok &= err.code == LT_ENOMEM;
		}
		lt_tensor_unref(q);
	}
	tap_ok(fails > 0 && ok, "allocation failures give LT_ENOMEM (%d sweeps failed)", fails);

	lt_tensor_unref(flat);
	lt_model_unref(ref);
	return tap_done();
}
