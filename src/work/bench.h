/* The workbench: a model with a stage, a history of commits and a journal.
 *
 * Every change goes to the stage, a model that shares all tensors with the
 * committed one until a change replaces one of them (copy-on-write per
 * tensor, so a large model does not double in memory). preview evaluates
 * the stage against the committed model; commit makes the stage the new
 * committed model and pushes a history step; rollback drops the stage;
 * undo returns to the previous step. Each step keeps the journal lines
 * (the Lua calls) that made it, so a session can be saved as a recipe.
 *
 * Marks make a unit of work atomic: lt_bench_mark_new before it,
 * lt_bench_restore if it fails, lt_bench_mark_free if it succeeds. A mark
 * holds references to the staged tensors, so anything written afterwards
 * is cloned first and the marked state survives untouched.
 *
 * Not thread-safe: one thread drives a bench. */
#ifndef LT_BENCH_H
#define LT_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/model.h"
#include "data/dataset.h"
#include "nn/eval.h"

typedef struct lt_bench lt_bench;

/* Metadata key where `lathe train` records test accuracy; a commit that
 * changes weights drops it, since it no longer holds. */
#define LT_META_TEST_ACCURACY "lathe.test_accuracy"

/* Size and (for models with a graph) accuracy of one model. */
typedef struct lt_metrics {
	int has_accuracy;     /* 0: weights-only, or not evaluated */
	double accuracy;      /* top-1, fraction */
	double loss;          /* mean cross-entropy */
	int64_t images;       /* evaluated */
	int64_t params;       /* elements of all tensors */
	int64_t nonzeros;
	size_t bytes;         /* stored bytes of all tensors, dense */
	size_t size;          /* the model's packed file, everything included
			       * (io/packed.h: codes, indices, Huffman coding;
			       * tensors that do not gain stay as values) */
	double ratio;         /* the model as opened, saved as values / size */
} lt_metrics;

/* Fidelity of one changed tensor, staged against committed. */
typedef struct lt_fidelity {
	char *name;
	double rel_frob;      /* ||W - W'||_F / ||W||_F */
	double rel_out;       /* ||(W - W')X||_F / ||WX||_F on random Gaussian X,
			       * W viewed as [shape[0], rest]; NaN for 1-D */
} lt_fidelity;

typedef struct lt_preview {
	lt_metrics staged, committed;
	int cached;           /* staged result came from the cache */
	size_t n_fidelity;
	lt_fidelity *fidelity; /* changed tensors in model order; lt_preview_free */
} lt_preview;

typedef struct lt_preview_opts {
	const lt_dataset *data;  /* NULL: size and fidelity only */
	const char *data_key;    /* identifies data in the cache ("val") */
	int threads;             /* 0 = one per core */
	int batch;               /* 0 = 1000 */
	lt_progress_fn progress; /* may cancel (LT_ECANCEL) */
	void *progress_ud;
} lt_preview_opts;

/* A history step. */
typedef struct lt_bench_step {
	int64_t id;           /* 0 = the model as opened */
	const char *message;  /* commit message ("" if none) */
	const char *calls;    /* journal: newline-terminated Lua calls */
	int has_metrics;      /* metrics below were measured for this state */
	lt_metrics metrics;
	int undoable;         /* its model is still held (undo can return here) */
} lt_bench_step;

/* A bench over m (takes a reference). NULL with err. */
lt_bench *lt_bench_new(lt_model *m, lt_err *err);
lt_bench *lt_bench_ref(lt_bench *b);
void lt_bench_unref(lt_bench *b);

/* Borrowed models. The staged one is what kernels read and change. */
lt_model *lt_bench_staged(const lt_bench *b);
lt_model *lt_bench_committed(const lt_bench *b);
/* Stored bytes of the model as opened (the baseline of every ratio). */
size_t lt_bench_baseline_bytes(const lt_bench *b);
/* A closed bench refuses further use from its front end (Lua objects that
 * outlive the model check it). */
void lt_bench_close(lt_bench *b);
int lt_bench_closed(const lt_bench *b);
/* 1 when the stage holds changes. */
int lt_bench_dirty(const lt_bench *b);
/* Changes whenever the stage does (any write, rollback, commit, undo). */
uint64_t lt_bench_version(const lt_bench *b);

/* Staged tensor `name`, made exclusive to the stage so the caller may write
 * it through lt_tensor_data_mut (cloned first when shared). Marks the stage
 * changed. Borrowed. NULL with err (LT_EINVAL: no such tensor). */
lt_tensor *lt_bench_writable(lt_bench *b, const char *name, lt_err *err);
/* Stage t (takes a reference) in place of tensor `name`; same shape
 * required (LT_EINVAL). */
int lt_bench_stage_tensor(lt_bench *b, const char *name, lt_tensor *t, lt_err *err);
/* Append a journal line (a Lua call) to the staged changes. */
/* A structural change: m (a new model, e.g. a thinned copy of the stage
 * with other shapes and graph) becomes the stage; takes a reference.
 * Previews evaluate it in full; commit, rollback and undo work as usual. */
void lt_bench_stage_model(lt_bench *b, lt_model *m);
int lt_bench_note(lt_bench *b, const char *call, lt_err *err);
/* Journal lines of the stage so far ("" if none). */
const char *lt_bench_staged_calls(const lt_bench *b);

/* Commit the stage (even an unchanged one: a step with no calls is a
 * checkpoint). metrics, if not NULL, are recorded with the step. */
int lt_bench_commit(lt_bench *b, const char *message, const lt_metrics *metrics, lt_err *err);
/* Record metrics for the current (committed) step if it has none yet. */
void lt_bench_annotate_head(lt_bench *b, const lt_metrics *metrics);
/* Drop staged changes. */
void lt_bench_rollback(lt_bench *b);
/* Drop staged changes and return to the step before the last commit.
 * LT_EINVAL when there is nothing to undo (message says why). */
int lt_bench_undo(lt_bench *b, lt_err *err);
/* Keep at most n undo levels (older steps stay in the journal but their
 * models are released). Default 32; 0 = unlimited. */
void lt_bench_set_undo_limit(lt_bench *b, int n);

/* History: step 0 (as opened) .. the current step. Borrowed. */
size_t lt_bench_history_len(const lt_bench *b);
const lt_bench_step *lt_bench_history_at(const lt_bench *b, size_t i);

/* Evaluate staged and committed models on opts->data (if any; models
 * without a graph get no accuracy) plus sizes and fidelity. Results are
 * cached per model state and data_key, so an unchanged stage answers at
 * once. Fills out (lt_preview_free). */
int lt_bench_preview(lt_bench *b, const lt_preview_opts *opts, lt_preview *out, lt_err *err);
void lt_preview_free(lt_preview *p);

/* Size metrics (no accuracy) of any model against a baseline size. */
int lt_model_size_metrics(lt_model *m, size_t baseline_bytes, lt_metrics *out, lt_err *err);
/* Size metrics and, when data has items and m a graph, accuracy and loss
 * on data (eo: batch, threads, progress; may cancel). 0, or an error of
 * the evaluation. */
int lt_model_measure(lt_model *m, size_t baseline_bytes, const lt_dataset *data,
		     const lt_eval_opts *eo, lt_metrics *out, lt_err *err);

/* Accuracy and size of variant, a model with base's graph that differs
 * from it only from some node on: evaluated from base's activations at the
 * first node that differs (cached per o->data_key, within a memory budget),
 * else in full. For sweeps over variants of one model. */
int lt_bench_measure_from(lt_bench *b, lt_model *base, lt_model *variant, const lt_preview_opts *o,
			  lt_metrics *out, lt_err *err);

/* Atomicity. */
typedef struct lt_bench_mark lt_bench_mark;
lt_bench_mark *lt_bench_mark_new(lt_bench *b, lt_err *err);
/* Put b back as it was when mk was made; frees mk. */
void lt_bench_restore(lt_bench *b, lt_bench_mark *mk);
void lt_bench_mark_free(lt_bench_mark *mk);

#endif
