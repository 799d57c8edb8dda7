/* Optimisers (SGD with momentum/Nesterov, Adam, AdamW), weight decay,
 * learning-rate schedules and gradient clipping, following PyTorch 1.13's
 * update rules so that recipes carry over. */
#ifndef LT_OPTIM_H
#define LT_OPTIM_H

#include <stdint.h>

#include "core/err.h"

typedef enum { LT_OPT_SGD, LT_OPT_ADAM, LT_OPT_ADAMW } lt_opt_kind;
typedef enum { LT_SCHED_CONST, LT_SCHED_STEP, LT_SCHED_COSINE } lt_sched_kind;

typedef struct lt_optim_cfg {
	lt_opt_kind kind;
	float lr;
	float momentum;      /* SGD */
	int nesterov;        /* SGD, needs momentum > 0 */
	float weight_decay;  /* SGD/Adam: L2 added to the gradient; AdamW: decoupled */
	float beta1, beta2, eps; /* Adam/AdamW (0 = PyTorch defaults) */
} lt_optim_cfg;

const char *lt_opt_name(lt_opt_kind k);
int lt_opt_parse(const char *name, lt_opt_kind *out);

typedef struct lt_optim lt_optim;

/* State for n parameter arrays of the given sizes. NULL with err on a bad
 * configuration (negative lr, nesterov without momentum, ...) or ENOMEM. */
lt_optim *lt_optim_new(const lt_optim_cfg *cfg, int n, const int64_t *sizes, lt_err *err);
void lt_optim_free(lt_optim *o);

/* One step for every parameter: w[i] -= update(g[i]) at learning rate lr.
 * g may be modified (weight decay is folded into it). */
void lt_optim_step(lt_optim *o, float *const *w, float *const *g, float lr);

/* Learning rate for epoch e (0-based) of `epochs` under a schedule. */
float lt_sched_lr(lt_sched_kind kind, float base, int e, int epochs, int step_size, float gamma);

/* Scale the gradients so that their joint L2 norm is at most max_norm (as
 * torch.nn.utils.clip_grad_norm_). Returns the norm before clipping. */
double lt_clip_grad_norm(float *const *g, const int64_t *sizes, int n, float max_norm);

#endif
