/* Sensitivity analysis: prune one layer at a time to a list of sparsities
 * and measure validation accuracy, to see which layers tolerate pruning;
 * and a greedy choice of per-layer sparsities under an accuracy budget. */
#ifndef LT_SENSITIVITY_H
#define LT_SENSITIVITY_H

#include <stdint.h>

#include "kern/prune.h"
#include "work/bench.h"

typedef struct lt_sensitivity {
	int n_tensors, n_levels;
	char **tensors;          /* the weights swept, in the order asked */
	int64_t *params;         /* elements of each */
	double *levels;          /* sparsities, ascending */
	double baseline;         /* accuracy of the model swept */
	double *accuracy;        /* [tensor * n_levels + level] */
	int64_t images;          /* evaluated per point */
} lt_sensitivity;

typedef struct lt_sensitivity_opts {
	const char *const *tensors; /* weight tensors of the staged model */
	int n_tensors;
	const double *levels;       /* sparsities in [0, 1], ascending, distinct */
	int n_levels;
	lt_prune_method method;     /* magnitude or random */
	uint64_t seed;              /* random */
	lt_preview_opts eval;       /* data (required), data_key, threads, batch;
				     * progress over the whole sweep (may cancel) */
} lt_sensitivity_opts;

/* Sweep the staged model of b: for every tensor and level, the staged
 * model with only that tensor pruned to that sparsity (masks only grow, as
 * in lt_prune_tensor), evaluated from cached activations of the layers
 * before it. The stage is not changed. NULL with err: LT_EINVAL (no data,
 * unknown tensor, bad levels), LT_ENOTSUP (no graph), LT_ECANCEL, LT_ENOMEM. */
lt_sensitivity *lt_sensitivity_run(lt_bench *b, const lt_sensitivity_opts *o, lt_err *err);
void lt_sensitivity_free(lt_sensitivity *s);

/* Per-tensor sparsities (chosen[i], one of the levels or 0) that remove as
 * many weights as the greedy rule finds while the sum of the per-layer
 * accuracy drops (baseline - accuracy, counted from 0 when a layer gains)
 * stays within budget (a fraction: 0.01 is one point). Each step takes the
 * move, to any higher level of one tensor, with the most weights removed
 * per unit of drop (moves that cost nothing first). Drops are measured one
 * layer at a time, so the joint drop is only estimated: preview the
 * result. Returns the weights the choice removes. */
int64_t lt_sensitivity_choose(const lt_sensitivity *s, double budget, double *chosen);

#endif
