#include "nn/optim.h"

#include <math.h>
#include <string.h>

#include "core/mem.h"

struct lt_optim {
	lt_optim_cfg cfg;
	int n;
	int64_t *sizes;
	float **m, **v;   /* momentum buffers / Adam moments (NULL when unused) */
	int64_t t;        /* steps taken */
};

const char *lt_opt_name(lt_opt_kind k)
{
	return k == LT_OPT_SGD ? "sgd" : k == LT_OPT_ADAM ? "adam" : k == LT_OPT_ADAMW ? "adamw" : "?";
}

int lt_opt_parse(const char *name, lt_opt_kind *out)
{
	for (int k = LT_OPT_SGD; k <= LT_OPT_ADAMW; k++)
		if (!strcmp(name, lt_opt_name((lt_opt_kind)k))) {
			*out = (lt_opt_kind)k;
			return 0;
		}
	return LT_EINVAL;
}

void lt_optim_free(lt_optim *o)
{
	if (!o)
		return;
	for (int i = 0; i < o->n; i++) {
		if (o->m)
			lt_free(o->m[i]);
		if (o->v)
			lt_free(o->v[i]);
	}
	lt_free(o->m);
	lt_free(o->v);
	lt_free(o->sizes);
	lt_free(o);
}

lt_optim *lt_optim_new(const lt_optim_cfg *cfg, int n, const int64_t *sizes, lt_err *err)
{
	lt_optim_cfg c = *cfg;
	if (!(c.lr >= 0) || !(c.momentum >= 0 && c.momentum < 1) || !(c.weight_decay >= 0)) {
		lt_err_set(err, LT_EINVAL, "learning rate and weight decay must be >= 0 and momentum in [0, 1)");
		return NULL;
	}
	if (c.nesterov && (c.kind != LT_OPT_SGD || c.momentum <= 0)) {
		lt_err_set(err, LT_EINVAL, "Nesterov momentum needs SGD with momentum > 0");
		return NULL;
	}
	if (c.beta1 == 0)
		c.beta1 = 0.9f;
	if (c.beta2 == 0)
		c.beta2 = 0.999f;
	if (c.eps == 0)
		c.eps = 1e-8f;
	if (!(c.beta1 > 0 && c.beta1 < 1 && c.beta2 > 0 && c.beta2 < 1 && c.eps > 0)) {
		lt_err_set(err, LT_EINVAL, "Adam betas must be in (0, 1) and eps > 0");
		return NULL;
	}
	lt_optim *o = lt_calloc(1, sizeof *o);
	if (!o)
		goto nomem;
	o->cfg = c;
	o->n = n;
	o->sizes = lt_malloc_array((size_t)n, sizeof *o->sizes);
	if (!o->sizes)
		goto nomem;
	memcpy(o->sizes, sizes, (size_t)n * sizeof *sizes);
	int need_m = c.kind != LT_OPT_SGD || c.momentum > 0, need_v = c.kind != LT_OPT_SGD;
	if ((need_m && !(o->m = lt_calloc((size_t)n, sizeof *o->m))) ||
	    (need_v && !(o->v = lt_calloc((size_t)n, sizeof *o->v))))
		goto nomem;
	for (int i = 0; i < n; i++) {
		if ((need_m && !(o->m[i] = lt_calloc((size_t)sizes[i] + 1, sizeof(float)))) ||
		    (need_v && !(o->v[i] = lt_calloc((size_t)sizes[i] + 1, sizeof(float)))))
			goto nomem;
	}
	return o;
nomem:
	lt_optim_free(o);
	lt_err_set(err, LT_ENOMEM, "out of memory for optimiser state");
	return NULL;
}

/* The Adam loop runs over every parameter after every minibatch. It
 * vectorises (sqrtf without errno: configure's -fno-math-errno) and, on
 * AVX2 machines, runs 8 wide; no FMA contraction, so each step rounds as
 * PyTorch's does. */
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define OPTIM_LOOPS __attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
#endif
#ifndef OPTIM_LOOPS
#define OPTIM_LOOPS
#endif

/* One Adam update of n parameters (torch.optim.Adam's arithmetic). The
 * arrays do not overlap and the constants are locals, so it vectorises. */
OPTIM_LOOPS static void adam(float *restrict w, const float *restrict g, float *restrict m, float *restrict v,
			     int64_t n, float beta1, float beta2, float eps, float step, float sbc2)
{
	for (int64_t k = 0; k < n; k++) {
		m[k] = beta1 * m[k] + (1.0f - beta1) * g[k];
		v[k] = beta2 * v[k] + (1.0f - beta2) * g[k] * g[k];
		w[k] -= step * m[k] / (sqrtf(v[k]) / sbc2 + eps);
	}
}

void lt_optim_step(lt_optim *o, float *const *w, float *const *g, float lr)
{
	const lt_optim_cfg *c = &o->cfg;
	o->t++;
	float bc1 = 1.0f - powf(c->beta1, (float)o->t), bc2 = 1.0f - powf(c->beta2, (float)o->t);
	float step = lr / bc1, sbc2 = sqrtf(bc2);
	for (int i = 0; i < o->n; i++) {
		float *wi = w[i], *gi = g[i];
		int64_t n = o->sizes[i];
		if (c->kind == LT_OPT_ADAMW && c->weight_decay > 0)
			for (int64_t k = 0; k < n; k++)
				wi[k] *= 1.0f - lr * c->weight_decay;
		else if (c->weight_decay > 0)
			for (int64_t k = 0; k < n; k++)
				gi[k] += c->weight_decay * wi[k];
		if (c->kind == LT_OPT_SGD) {
			if (c->momentum > 0) {
				float *buf = o->m[i];
				for (int64_t k = 0; k < n; k++) {
					/* PyTorch starts the buffer at the first gradient */
					buf[k] = o->t == 1 ? gi[k] : c->momentum * buf[k] + gi[k];
					float d = c->nesterov ? gi[k] + c->momentum * buf[k] : buf[k];
					wi[k] -= lr * d;
				}
			} else {
				for (int64_t k = 0; k < n; k++)
					wi[k] -= lr * gi[k];
			}
		} else {
			adam(wi, gi, o->m[i], o->v[i], n, c->beta1, c->beta2, c->eps, step, sbc2);
		}
	}
}

float lt_sched_lr(lt_sched_kind kind, float base, int e, int epochs, int step_size, float gamma)
{
	switch (kind) {
	case LT_SCHED_STEP:
		return base * powf(gamma, (float)(e / (step_size > 0 ? step_size : 1)));
	case LT_SCHED_COSINE:
		return epochs > 0 ? (float)(base * 0.5 * (1.0 + cos(M_PI * e / epochs))) : base;
	default:
		return base;
	}
}

double lt_clip_grad_norm(float *const *g, const int64_t *sizes, int n, float max_norm)
{
	double sq = 0;
	for (int i = 0; i < n; i++)
		for (int64_t k = 0; k < sizes[i]; k++)
			sq += (double)g[i][k] * g[i][k];
	double norm = sqrt(sq);
	double coef = max_norm / (norm + 1e-6);
	if (max_norm > 0 && coef < 1)
		for (int i = 0; i < n; i++)
			for (int64_t k = 0; k < sizes[i]; k++)
				g[i][k] = (float)(g[i][k] * coef);
	return norm;
}
