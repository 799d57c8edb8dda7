/* Training-mode forward and backward passes over a minibatch.
 *
 * The engine binds a model's parameters (their f32 storage, written in place
 * by the optimiser) and owns per-thread activations and gradients. A
 * minibatch is split across threads by sample; each thread accumulates its
 * own parameter gradients, which are then summed in a fixed order, so a run
 * is reproducible for a given thread count. Batch normalisation needs the
 * statistics of the whole minibatch, so graphs with it run on one thread
 * (OpenBLAS then uses every core). */
#ifndef LT_GRAD_H
#define LT_GRAD_H

#include <stdint.h>

#include "core/err.h"
#include "core/model.h"

typedef struct lt_grad lt_grad;

/* Engine for m (needs a graph) and minibatches of up to max_batch samples.
 * threads <= 0: one per core. Keeps a reference to m. */
lt_grad *lt_grad_new(lt_model *m, int threads, int max_batch, lt_err *err);
void lt_grad_free(lt_grad *g);

/* Forward (training mode: batch statistics, dropout) and backward for n
 * samples x with labels; the loss is the mean cross-entropy (the graph's
 * outputs are logits, or probabilities when it ends in softmax). Parameter
 * gradients are overwritten; batch-norm running statistics are updated.
 * dropout_seed makes the dropout masks (a function of seed, layer, sample
 * position in the minibatch and element). Fills the mean loss and the
 * number of top-1 hits. */
int lt_grad_step(lt_grad *g, const float *x, const uint8_t *labels, int64_t n,
		 uint64_t dropout_seed, double *loss, int64_t *correct, lt_err *err);

/* Smallest minibatch the graph can train on: 2 when a batch norm has one
 * value per channel and sample (no variance over a single sample), else 1. */
int lt_grad_min_batch(const lt_grad *g);
/* Masked linear layers whose forward product runs through the sparse
 * kernel (nn/sparse.h) at this engine's batch per thread. */
int lt_grad_sparse_layers(const lt_grad *g);

/* Also compute dloss/dinput on the next steps (for tests; off by default). */
void lt_grad_want_input_grad(lt_grad *g, int on);
/* dloss/dinput of the last step, n * in_numel values (NULL unless wanted). */
const float *lt_grad_input_grad(const lt_grad *g);

/* The trainable parameters (weights and biases; not running statistics), in
 * graph order. */
int lt_grad_nparams(const lt_grad *g);
const char *lt_grad_param_name(const lt_grad *g, int i);
int64_t lt_grad_param_size(const lt_grad *g, int i);
float *lt_grad_param_value(const lt_grad *g, int i);  /* the model's storage */
float *lt_grad_param_grad(const lt_grad *g, int i);
/* The parameter's mask (0/1 values) or NULL. */
const float *lt_grad_param_mask(const lt_grad *g, int i);

/* Distillation loss T^2 * KL(softmax(teacher/T) || softmax(student/T)),
 * mean over n rows of k logits; grad (n*k, may be NULL) gets d/dstudent. */
double lt_loss_distill(const float *student, const float *teacher, int64_t n, int k,
		       float T, float *grad);

#endif
