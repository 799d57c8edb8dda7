/* Optimisers, schedules and clipping against PyTorch 1.13
 * (tests/fixtures/optim.safetensors, made by gen_grad_fixtures.py). */
#include <string.h>

#include "io/open.h"
#include "nn/optim.h"
#include "tap.h"
#include "testutil.h"

static lt_model *ref;

static const float *get(const char *name)
{
	lt_tensor *t = lt_model_tensor(ref, name);
	return t ? lt_tensor_data(t, NULL) : NULL;
}

static void check(const char *prefix, lt_optim_cfg cfg)
{
	lt_err err = {0};
	int64_t size = 10;
	lt_optim *o = lt_optim_new(&cfg, 1, &size, &err);
	float w[10], g[10];
	memcpy(w, get("w0"), sizeof w);
	double worst = 0;
	for (int k = 0; k < 5; k++) {
		char name[32];
		snprintf(name, sizeof name, "g.%d", k);
		memcpy(g, get(name), sizeof g);
		float *wp = w, *gp = g;
		lt_optim_step(o, &wp, &gp, cfg.lr);
		snprintf(name, sizeof name, "%s.%d", prefix, k);
		const float *want = get(name);
		for (int i = 0; i < 10; i++)
			worst = fmax(worst, fabs(w[i] - want[i]) / fmax(1e-3, fabs(want[i])));
	}
	tap_ok(o && worst < 2e-5, "%s: 5 steps match PyTorch (worst relative %.2g)", prefix, worst);
	lt_optim_free(o);
}

int main(void)
{
	lt_err err = {0};
	ref = lt_model_open(fixture("optim.safetensors"), &err);
	if (!ref)
		tap_skip_all("optim.safetensors missing");
	check("sgd", (lt_optim_cfg){.kind = LT_OPT_SGD, .lr = 0.1f});
	check("sgdm", (lt_optim_cfg){.kind = LT_OPT_SGD, .lr = 0.1f, .momentum = 0.9f});
	check("nesterov", (lt_optim_cfg){.kind = LT_OPT_SGD, .lr = 0.1f, .momentum = 0.9f, .nesterov = 1});
	check("sgdwd", (lt_optim_cfg){.kind = LT_OPT_SGD, .lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.01f});
	check("adam", (lt_optim_cfg){.kind = LT_OPT_ADAM, .lr = 0.01f});
	check("adamwd", (lt_optim_cfg){.kind = LT_OPT_ADAM, .lr = 0.01f, .weight_decay = 0.1f});
	check("adamw", (lt_optim_cfg){.kind = LT_OPT_ADAMW, .lr = 0.01f, .weight_decay = 0.1f});

	const char *gnames[2][3] = {{"clip.g", "clip.out", "clip.norm"}, {"clip.g2", "clip.out2", "clip.norm2"}};
	for (int c = 0; c < 2; c++) {
		float g[10];
		memcpy(g, get(gnames[c][0]), sizeof g);
		float *gp = g;
		int64_t size = 10;
		double norm = lt_clip_grad_norm(&gp, &size, 1, 1.0f);
		double worst = 0;
		for (int i = 0; i < 10; i++)
			worst = fmax(worst, fabs(g[i] - get(gnames[c][1])[i]));
		tap_ok(tap_close(norm, get(gnames[c][2])[0], 1e-5, 0) && worst < 1e-6,
		       "clip_grad_norm_ case %d: norm %.4f, max diff %.2g", c + 1, norm, worst);
	}
	double ws = 0, wc = 0;
	for (int e = 0; e < 20; e++) {
		ws = fmax(ws, fabs(lt_sched_lr(LT_SCHED_STEP, 0.1f, e, 20, 5, 0.5f) - get("steplr")[e]));
		wc = fmax(wc, fabs(lt_sched_lr(LT_SCHED_COSINE, 0.1f, e, 20, 0, 0) - get("cosine")[e]));
	}
	tap_ok(ws < 1e-7, "StepLR schedule matches (%.2g)", ws);
	tap_ok(wc < 1e-6, "cosine schedule matches (%.2g)", wc);

	int64_t size = 4;
	lt_optim_cfg bad = {.kind = LT_OPT_ADAM, .lr = 0.1f, .nesterov = 1};
	tap_ok(!lt_optim_new(&bad, 1, &size, &err) && err.code == LT_EINVAL, "nesterov with Adam refused: %s", err.msg);
	bad = (lt_optim_cfg){.kind = LT_OPT_SGD, .lr = -1};
	tap_ok(!lt_optim_new(&bad, 1, &size, &err), "negative learning rate refused");
	lt_opt_kind k;
	tap_ok(lt_opt_parse("adamw", &k) == 0 && k == LT_OPT_ADAMW && lt_opt_parse("rmsprop", &k) == LT_EINVAL,
	       "optimiser names");
	lt_model_unref(ref);
	return tap_done();
}
