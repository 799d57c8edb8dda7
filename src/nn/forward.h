/* Batched inference: runs a model's graph on preprocessed inputs.
 *
 * A forward plan binds a model's parameters (converted to f32 once) and owns
 * per-thread workspaces. Batches are split across threads by sample; inside
 * a thread, samples go through in chunks so activations stay in cache and
 * each layer is one GEMM per chunk. */
#ifndef LT_FORWARD_H
#define LT_FORWARD_H

#include <stdint.h>

#include "core/err.h"
#include "core/model.h"

typedef struct lt_forward lt_forward;

/* Plan for model m (which must have a graph; LT_ENOTSUP otherwise). threads
 * <= 0 means one per core. Keeps a reference to m; tensors replaced in m
 * afterwards need a new plan. */
lt_forward *lt_forward_new(lt_model *m, int threads, lt_err *err);
void lt_forward_free(lt_forward *f);

/* x: n samples of in_numel floats each (already preprocessed); out: n
 * samples of out_numel floats. */
int lt_forward_run(lt_forward *f, const float *x, int64_t n, float *out, lt_err *err);

/* Run only nodes [first, last): x holds value `first` of each sample
 * (lt_graph_value_numel floats; value 0 is the preprocessed input) and out
 * receives value `last`. Nodes from `first` on must read no earlier value
 * (lt_graph_is_cut), else LT_EINVAL. This lets a preview start from cached
 * activations of layers that did not change. */
int lt_forward_run_range(lt_forward *f, int first, int last, const float *x, int64_t n,
			 float *out, lt_err *err);

/* Activation sparsity. Outputs of node i with |y| < its threshold become
 * exact zeros (also what the following nodes see). The graph's thresholds
 * (lt_node.act_threshold) apply unless this call gives one per node (0:
 * none) for every later run; NULL goes back to the graph's. LT_EINVAL for
 * a negative or non-finite threshold or one on flatten/dropout, LT_ENOMEM. */
int lt_forward_set_act_threshold(lt_forward *f, const float *threshold, lt_err *err);
/* From now on count the non-zero outputs of every node (after any
 * threshold); lt_forward_activation_counts gives, per node, the non-zeros
 * and all outputs counted so far (summed over threads; read it between
 * runs). */
int lt_forward_count_activations(lt_forward *f, lt_err *err);
void lt_forward_activation_counts(const lt_forward *f, int64_t *nonzero, int64_t *total);

/* Calibration: from now on record each node's smallest and largest output;
 * lt_forward_ranges gives them (over all runs and threads; +inf / -inf
 * for a node not run yet). LT_ENOMEM. */
int lt_forward_observe_ranges(lt_forward *f, lt_err *err);
void lt_forward_ranges(const lt_forward *f, float *lo, float *hi);

/* Quantized activations: outputs of node i with scale[i] > 0 are fake-
 * quantized (lt_layers_fake_quant) to the levels qmin..qmax with that
 * scale and zero_point[i], after any threshold, in every later run. NULL
 * turns it off. LT_EINVAL for a negative or non-finite scale, one on
 * flatten/dropout, or qmin >= qmax; LT_ENOMEM. */
int lt_forward_set_act_quant(lt_forward *f, const float *scale, const int32_t *zero_point, int32_t qmin,
			     int32_t qmax, lt_err *err);

/* Linear layers whose weight is sparse enough to run through the sparse
 * kernel (nn/sparse.h) for some batch size; each call then picks sparse or
 * dense from the batch it gets (lt_sparse_pays). */
int lt_forward_sparse_layers(const lt_forward *f);

int64_t lt_forward_in_numel(const lt_forward *f);
int64_t lt_forward_out_numel(const lt_forward *f);
/* 1 when the graph ends in softmax (outputs are probabilities). */
int lt_forward_outputs_probs(const lt_forward *f);

#endif
