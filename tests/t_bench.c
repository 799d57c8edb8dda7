/* The workbench: copy-on-write staging, commit / rollback / undo, marks
 * (atomicity), the journal, and preview (cache, deltas, fidelity). */
#include <math.h>
#include <string.h>

#include "core/mem.h"
#include "io/open.h"
#include "kern/prune.h"
#include "tap.h"
#include "testutil.h"
#include "work/bench.h"

/* FNV-1a over every tensor's f32 values and names: equal sums mean equal
 * models for these tests. */
static uint64_t checksum(lt_model *m)
{
	uint64_t h = 1469598103934665603u;
	for (size_t i = 0; i < lt_model_tensor_count(m); i++) {
		const char *name = lt_model_tensor_name(m, i);
		for (const char *p = name; *p; p++)
			h = (h ^ (uint8_t)*p) * 1099511628211u;
		lt_tensor *t = lt_model_tensor_at(m, i);
		const uint8_t *v = (const uint8_t *)lt_tensor_data(t, NULL);
		for (size_t j = 0; j < (size_t)lt_tensor_numel(t) * 4; j++)
			h = (h ^ v[j]) * 1099511628211u;
	}
	return h;
}

static int prune_stage(lt_bench *b, const char *name, double sparsity, lt_err *err)
{
	lt_prune_spec spec = {.sparsity = sparsity};
	lt_tensor *p = lt_prune_tensor(lt_model_tensor(lt_bench_staged(b), name), &spec, err);
	if (!p)
		return err->code;
	int rc = lt_bench_stage_tensor(b, name, p, err);
	lt_tensor_unref(p);
	return rc;
}

int main(void)
{
	lt_err err = {0};
	lt_model *m = lt_model_open(fixture("mlp.safetensors"), &err);
	if (!m)
		tap_skip_all("mlp.safetensors missing");
	const char *w0 = lt_model_tensor_name(m, 0);
	uint64_t orig = checksum(m);
	lt_bench *b = lt_bench_new(m, &err);
	tap_ok(b && !lt_bench_dirty(b), "new bench is clean");
	tap_ok(lt_bench_staged(b) != lt_bench_committed(b) &&
	       lt_model_tensor_at(lt_bench_staged(b), 0) == lt_model_tensor_at(lt_bench_committed(b), 0),
	       "stage shares the committed tensors until written");

	/* Copy on write: only the written tensor is copied. */
	uint64_t v0 = lt_bench_version(b);
	lt_tensor *t = lt_bench_writable(b, w0, &err);
	float *d = t ? lt_tensor_data_mut(t, &err) : NULL;
	if (d)
		d[0] += 1.0f;
	tap_ok(d && lt_bench_dirty(b) && lt_bench_version(b) != v0, "writing marks the stage changed");
	tap_ok(checksum(lt_bench_committed(b)) == orig && checksum(m) == orig, "committed model untouched");
	tap_ok(lt_model_tensor_at(lt_bench_staged(b), 1) == lt_model_tensor_at(lt_bench_committed(b), 1),
	       "untouched tensors still shared");
	tap_ok(lt_bench_writable(b, w0, &err) == t, "a tensor the stage owns is written in place");
	tap_ok(!lt_bench_writable(b, "nope", &err) && err.code == LT_EINVAL, "unknown tensor: %s", err.msg);

	lt_bench_rollback(b);
	tap_ok(!lt_bench_dirty(b) && checksum(lt_bench_staged(b)) == orig, "rollback restores the stage");

	/* Shape checks. */
	int64_t shape[1] = {3};
	lt_tensor *small = lt_tensor_new(1, shape, &err);
	tap_ok(lt_bench_stage_tensor(b, w0, small, &err) == LT_EINVAL && strstr(err.msg, "cannot stage"),
	       "staging a tensor of another shape refused: %s", err.msg);
	lt_tensor_unref(small);

	/* Commit, journal, history, undo. */
	tap_ok(prune_stage(b, w0, 0.5, &err) == 0 && lt_bench_note(b, "lathe.prune(x)", &err) == 0,
	       "stage a prune and its journal line");
	uint64_t pruned = checksum(lt_bench_staged(b));
	tap_ok(lt_bench_commit(b, "half", NULL, &err) == 0 && !lt_bench_dirty(b), "commit");
	tap_ok(checksum(lt_bench_committed(b)) == pruned && checksum(m) == orig,
	       "committed = what was staged; the opened model is untouched");
	tap_ok(lt_bench_history_len(b) == 2 && !strcmp(lt_bench_history_at(b, 1)->calls, "lathe.prune(x)\n") &&
	       !strcmp(lt_bench_history_at(b, 1)->message, "half"), "history holds the step and its calls");
	tap_ok(prune_stage(b, w0, 0.9, &err) == 0 && lt_bench_commit(b, "ninety", NULL, &err) == 0, "second commit");
	tap_ok(lt_bench_undo(b, &err) == 0 && checksum(lt_bench_committed(b)) == pruned &&
	       lt_bench_history_len(b) == 2, "undo returns to the first commit");
	tap_ok(lt_bench_undo(b, &err) == 0 && checksum(lt_bench_committed(b)) == orig, "undo again: as opened");
	tap_ok(lt_bench_undo(b, &err) == LT_EINVAL && strstr(err.msg, "nothing to undo"), "nothing more to undo");

	/* Marks: a failed unit of work is put back exactly, even across
	 * commits and undos. */
	tap_ok(prune_stage(b, w0, 0.3, &err) == 0, "stage before a mark");
	uint64_t st_before = checksum(lt_bench_staged(b)), cm_before = checksum(lt_bench_committed(b));
	size_t hist_before = lt_bench_history_len(b);
	lt_bench_mark *mk = lt_bench_mark_new(b, &err);
	t = lt_bench_writable(b, w0, &err);
	lt_tensor_data_mut(t, &err)[5] = 42.0f;
	lt_bench_commit(b, "doomed", NULL, &err);
	prune_stage(b, lt_model_tensor_name(m, 1), 0.8, &err);
	lt_bench_commit(b, "doomed 2", NULL, &err);
	lt_bench_undo(b, &err);
	t = lt_bench_writable(b, w0, &err);
	lt_tensor_data_mut(t, &err)[7] = -3.0f;
	lt_bench_restore(b, mk);
	tap_ok(checksum(lt_bench_staged(b)) == st_before && checksum(lt_bench_committed(b)) == cm_before &&
	       lt_bench_history_len(b) == hist_before && lt_bench_dirty(b),
	       "restore: stage, committed model and history exactly as marked");
	mk = lt_bench_mark_new(b, &err);
	prune_stage(b, w0, 0.6, &err);
	uint64_t done_work = checksum(lt_bench_staged(b));
	lt_bench_mark_free(mk);
	tap_ok(done_work != st_before && checksum(lt_bench_staged(b)) == done_work,
	       "a freed mark leaves the work done after it");
	lt_bench_rollback(b);

	/* Undo limit: older steps keep their journal but not their model. */
	lt_bench_set_undo_limit(b, 2);
	for (int i = 0; i < 4; i++) {
		prune_stage(b, w0, 0.1 * (i + 1), &err);
		lt_bench_note(b, "step", &err);
		lt_bench_commit(b, "", NULL, &err);
	}
	size_t n = lt_bench_history_len(b);
	tap_ok(n == 5 && !lt_bench_history_at(b, 1)->undoable && lt_bench_history_at(b, 3)->undoable,
	       "undo limit 2: old steps released, journal kept");
	tap_ok(lt_bench_undo(b, &err) == 0 && lt_bench_undo(b, &err) == 0 && lt_bench_undo(b, &err) == LT_EINVAL &&
	       strstr(err.msg, "undo limit"), "cannot undo past the limit: %s", err.msg);

	/* Preview: accuracy on a slice, deltas, cache, fidelity. */
	lt_dataset data;
	tap_ok(load_slice(&data, &err) == 0, "fixture slice loads");
	lt_bench *pb = lt_bench_new(m, &err);
	lt_preview_opts po = {.data = &data, .data_key = "slice", .threads = 1};
	lt_preview p;
	int prc0 = lt_bench_preview(pb, &po, &p, &err);
	tap_ok(prc0 == 0 && p.staged.has_accuracy &&
	       p.staged.accuracy == p.committed.accuracy && p.n_fidelity == 0,
	       "clean stage previews as the committed model (%.4f)", p.committed.accuracy);
	lt_preview_free(&p);
	prune_stage(pb, w0, 0.95, &err);
	tap_ok(lt_bench_preview(pb, &po, &p, &err) == 0 && !p.cached, "preview after a change evaluates");
	double acc = p.staged.accuracy;
	tap_ok(p.staged.nonzeros < p.committed.nonzeros && p.staged.size < p.committed.size &&
	       p.staged.ratio > 1.0 && p.staged.bytes == p.committed.bytes,
	       "sizes: fewer non-zeros, smaller size estimate, ratio %.2f", p.staged.ratio);
	tap_ok(p.n_fidelity == 1 && !strcmp(p.fidelity[0].name, w0) && p.fidelity[0].rel_frob > 0 &&
	       p.fidelity[0].rel_frob < 1 && p.fidelity[0].rel_out > 0, "fidelity of the changed tensor (%.3f, %.3f)",
	       p.fidelity[0].rel_frob, p.fidelity[0].rel_out);
	lt_preview_free(&p);
	tap_ok(lt_bench_preview(pb, &po, &p, &err) == 0 && p.cached && p.staged.accuracy == acc,
	       "unchanged stage: cached result");
	lt_preview_free(&p);
	lt_bench_commit(pb, "", NULL, &err);
	tap_ok(lt_bench_preview(pb, &po, &p, &err) == 0 && p.committed.accuracy == acc && p.cached,
	       "after commit the committed figures come from the stage's cache");
	lt_preview_free(&p);

	/* A change to the last layer starts from cached activations; the
	 * figures match a full evaluation of the staged model. */
	lt_graph *g = lt_model_graph(m);
	const char *last_w = g->nodes[g->n_nodes - 1].params[LT_P_WEIGHT];
	for (int round = 0; round < 2; round++) {
		prune_stage(pb, last_w, 0.5 + 0.2 * round, &err);
		int prc2 = lt_bench_preview(pb, &po, &p, &err);
		lt_eval_opts eo = {.threads = 1};
		lt_eval_result full;
		int erc = lt_eval_run(lt_bench_staged(pb), &data, &eo, &full, &err);
		tap_ok(prc2 == 0 && erc == 0 && p.staged.accuracy == full.top1 && fabs(p.staged.loss - full.loss) < 1e-6,
		       "preview from cached activations = full evaluation (round %d: %.4f, loss %.6f vs %.6f)",
		       round, p.staged.accuracy, p.staged.loss, full.loss);
		lt_eval_result_free(&full);
		lt_preview_free(&p);
		lt_bench_rollback(pb);
	}

	/* Across commits and cuts: commit a change to the last layer, then
	 * change a middle layer, then the last again (that cut is computed
	 * from the middle one's cached activations). Each equals a full run. */
	int mid = -1;
	for (int i = g->n_nodes - 2; i > 0 && mid < 0; i--)
		if (g->nodes[i].params[LT_P_WEIGHT])
			mid = i;
	const char *plan[3] = {last_w, mid > 0 ? g->nodes[mid].params[LT_P_WEIGHT] : last_w, last_w};
	for (int step = 0; step < 3; step++) {
		prune_stage(pb, plan[step], 0.3 + 0.1 * step, &err);
		int prc3 = lt_bench_preview(pb, &po, &p, &err);
		lt_eval_opts eo = {.threads = 1};
		lt_eval_result full;
		int erc = lt_eval_run(lt_bench_staged(pb), &data, &eo, &full, &err);
		tap_ok(prc3 == 0 && erc == 0 && p.staged.accuracy == full.top1 && fabs(p.staged.loss - full.loss) < 1e-6,
		       "cached activations across commits, step %d (%s): %.4f = %.4f", step, plan[step],
		       p.staged.accuracy, full.top1);
		lt_eval_result_free(&full);
		lt_preview_free(&p);
		if (step == 0)
			lt_bench_commit(pb, "", NULL, &err);
		else
			lt_bench_rollback(pb);
	}

	/* Fidelity against hand-computed values: scaling W by s gives
	 * relative errors |1 - s| exactly. */
	lt_bench *fb = lt_bench_new(m, &err);
	t = lt_bench_writable(fb, w0, &err);
	float *tv = lt_tensor_data_mut(t, &err);
	for (int64_t i = 0; i < lt_tensor_numel(t); i++)
		tv[i] *= 0.75f;
	lt_preview_opts none = {0};
	int prc = lt_bench_preview(fb, &none, &p, &err);
	if (prc)
		tap_diag("preview: %s", err.msg);
	tap_ok(prc == 0 && p.n_fidelity == 1 && fabs(p.fidelity[0].rel_frob - 0.25) < 1e-6 &&
	       fabs(p.fidelity[0].rel_out - 0.25) < 1e-5 && !p.staged.has_accuracy,
	       "scaled by 0.75: relative errors 0.25 (%.7f, %.7f)",
	       p.n_fidelity ? p.fidelity[0].rel_frob : NAN, p.n_fidelity ? p.fidelity[0].rel_out : NAN);
	lt_preview_free(&p);

	/* Allocation failures while marking and committing leave the bench usable. */
	int ok = 1;
	for (long i = 0; i < 12; i++) {
		lt_mem_fail_after(i);
		lt_bench_mark *k = lt_bench_mark_new(fb, &err);
		int rc = lt_bench_commit(fb, "x", NULL, &err);
		lt_mem_fail_after(-1);
		if (k)
			lt_bench_restore(fb, k);
		ok &= rc == 0 || rc == LT_ENOMEM;
	}
	tap_ok(ok && lt_bench_dirty(fb) == 1, "allocation failures: errors, no corruption");

	/* A commit that changes weights drops the recorded test accuracy; the
	 * other metadata stays, in order. */
	lt_model_set_meta(m, LT_META_TEST_ACCURACY, "0.9", &err);
	lt_model_set_meta(m, "z.after", "kept", &err);
	lt_bench *mb = lt_bench_new(m, &err);
	lt_bench_commit(mb, "no change", NULL, &err);
	tap_ok(lt_model_meta(lt_bench_committed(mb), LT_META_TEST_ACCURACY) != NULL,
	       "a commit without weight changes keeps the recorded accuracy");
	prune_stage(mb, w0, 0.5, &err);
	lt_bench_commit(mb, "pruned", NULL, &err);
	lt_model *cm = lt_bench_committed(mb);
	tap_ok(!lt_model_meta(cm, LT_META_TEST_ACCURACY) && !strcmp(lt_model_meta(cm, "z.after"), "kept") &&
	       !strcmp(lt_model_meta_key(cm, lt_model_meta_count(cm) - 1), "z.after") &&
	       lt_model_meta(m, LT_META_TEST_ACCURACY), "changed weights: the accuracy key is dropped, the rest kept");
	lt_bench_unref(mb);

	lt_bench_unref(fb);
	lt_bench_unref(pb);
	lt_bench_unref(b);
	lt_dataset_release(&data);
	lt_model_unref(m);
	return tap_done();
}
