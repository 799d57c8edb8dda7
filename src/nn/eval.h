/* Classification metrics of a model on a dataset. */
#ifndef LT_EVAL_H
#define LT_EVAL_H

#include <stdint.h>

#include "core/err.h"
#include "core/model.h"
#include "data/dataset.h"

typedef struct lt_eval_result {
	int64_t n;              /* samples evaluated */
	int n_classes;
	int64_t correct1, correct5;
	double top1, top5;      /* fractions */
	double loss;            /* mean cross-entropy */
	int64_t *confusion;     /* [true][predicted], n_classes^2; lt_eval_result_free */
	int64_t *class_total;   /* per true class */
	double forward_seconds; /* time inside the forward pass only */
	double images_per_s;
} lt_eval_result;

/* Called after each batch; return nonzero to cancel (LT_ECANCEL). */
typedef int (*lt_progress_fn)(void *ud, int64_t done, int64_t total);

typedef struct lt_eval_opts {
	int batch;              /* samples per forward call (default 1000) */
	int threads;            /* 0 = one per core */
	int64_t limit;          /* 0 = all */
	lt_progress_fn progress;
	void *progress_ud;
	/* Optional: start at value from_value (a cut of the graph) with its
	 * activations for every item of the dataset in from_data (item i at
	 * from_data + i * lt_graph_value_numel), skipping the nodes before. */
	int from_value;
	const float *from_data;
	/* Optional activation sparsity: per node, outputs below the threshold
	 * become 0 (lt_forward_set_act_threshold); and when act_nonzero is set,
	 * act_nonzero[i] / act_total[i] receive node i's non-zero outputs and
	 * all its outputs over the evaluation (arrays of n_nodes). */
	const float *act_threshold;
	int64_t *act_nonzero, *act_total;
	/* Optional: act_lo / act_hi (n_nodes each) receive every node's
	 * output range over the evaluation (calibration); act_scale (n_nodes,
	 * 0 = none) with act_zero fake-quantizes node outputs to the levels
	 * act_qmin..act_qmax (lt_forward_set_act_quant). */
	float *act_lo, *act_hi;
	const float *act_scale;
	const int32_t *act_zero;
	int32_t act_qmin, act_qmax;
} lt_eval_opts;

/* Evaluate m (must have a graph) on d. Inputs are preprocessed as the
 * graph's "preprocess" says. Fills r (free with lt_eval_result_free). */
int lt_eval_run(lt_model *m, const lt_dataset *d, const lt_eval_opts *opts,
		lt_eval_result *r, lt_err *err);
void lt_eval_result_free(lt_eval_result *r);

/* Accumulate metrics for n outputs (logits, or probabilities when probs). */
void lt_eval_score(lt_eval_result *r, const float *out, const uint8_t *labels,
		   int64_t n, int probs);

#endif
