/* Training: parameter initialisation and the epoch loop (shuffle, minibatch
 * steps, masks, optimiser, schedule, validation). */
#ifndef LT_TRAIN_H
#define LT_TRAIN_H

#include <stdint.h>

#include "core/err.h"
#include "core/model.h"
#include "data/dataset.h"
#include "nn/optim.h"

/* A new model with the graph g (ownership passes, also on failure) and
 * freshly initialised parameters, as PyTorch 1.13 initialises them:
 * weights and biases of Linear/Conv2d uniform in +-1/sqrt(fan_in), batch
 * norm weight 1, bias 0, running mean 0, variance 1. Deterministic in seed. */
lt_model *lt_model_from_graph(lt_graph *g, uint64_t seed, lt_err *err);

typedef struct lt_train_cfg {
	lt_optim_cfg opt;
	int epochs;          /* default 10 */
	int batch;           /* default 128 */
	int threads;         /* 0 = one per core */
	uint64_t seed;
	lt_sched_kind sched;
	int step_size;       /* LT_SCHED_STEP */
	float gamma;         /* LT_SCHED_STEP */
	float clip_norm;     /* 0 = no clipping */
	/* L1-regularised sparse training by proximal soft-thresholding: the
	 * loss gains l1 * sum |w| over the weights of 2 or more dimensions
	 * (not biases or norms), applied after each optimiser step as
	 * w = sign(w) * max(|w| - lr * l1, 0), which sets small weights to
	 * exactly zero (a subgradient step would only make them oscillate).
	 * 0 = off. */
	float l1;
} lt_train_cfg;

/* Progress after each minibatch (batch < 0 at the end of an epoch, with
 * val_acc set when a validation set is given, else -1). Return nonzero to
 * stop; the run then ends with LT_ECANCEL after the current step, leaving
 * the model consistent (the last completed step). */
typedef struct lt_train_status {
	int epoch, epochs;
	int64_t batch, batches;
	double loss, acc;    /* running means over the epoch so far */
	double lr;
	double seconds;      /* since the epoch began */
	double samples_per_s;
	double val_acc, val_loss;
} lt_train_status;
typedef int (*lt_train_fn)(void *ud, const lt_train_status *st);

/* Train m (which must have a graph) in place on train; evaluate on val (may
 * be NULL) after each epoch. */
int lt_train_run(lt_model *m, const lt_dataset *train, const lt_dataset *val,
		 const lt_train_cfg *cfg, lt_train_fn progress, void *ud, lt_err *err);

#endif
