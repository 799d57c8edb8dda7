/* lathe train ARCH --data DIR -o OUT [options] */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "cli/cli.h"
#include "core/clock.h"
#include "core/mem.h"
#include "data/dataset.h"
#include "io/open.h"
#include "lbind/arch.h"
#include "nn/eval.h"
#include "nn/train.h"

static const char train_help[] =
	"usage: lathe train ARCH -o OUT [--data DIR] [--epochs N] [--batch N]\n"
	"                   [--lr X] [--opt adam|adamw|sgd] [--momentum X] [--nesterov]\n"
	"                   [--weight-decay X] [--schedule const|step|cosine]\n"
	"                   [--step-size N] [--gamma X] [--clip X] [--seed N]\n"
	"                   [--threads N] [--val]\n"
	"\n"
	"Train the architecture in ARCH (a Lua file returning a table of layers,\n"
	"or the same as JSON) on Fashion-MNIST and save the model to OUT.\n"
	"\n"
	"  --data DIR        dataset directory (default: $LATHE_DATA, then\n"
	"                    /usr/share/datasets/fashion-mnist)\n"
	"  --epochs N        passes over the training set (default 10)\n"
	"  --batch N         minibatch size (default 128)\n"
	"  --lr X            learning rate (default 0.001 for Adam/AdamW, 0.01 for SGD)\n"
	"  --opt NAME        adam (default), adamw or sgd\n"
	"  --momentum X      SGD momentum (default 0.9)\n"
	"  --nesterov        Nesterov momentum (SGD)\n"
	"  --weight-decay X  L2 (SGD, Adam) or decoupled decay (AdamW); default 0\n"
	"  --schedule S      const (default), step (times --gamma every --step-size\n"
	"                    epochs) or cosine (to zero over the run)\n"
	"  --clip X          clip the gradient's L2 norm to X\n"
	"  --seed N          seed for initialisation, shuffling and dropout (default 0);\n"
	"                    the same seed and --threads 1 give bit-identical weights\n"
	"  --threads N       threads (default: one per core)\n"
	"  --val             train on the first 55,000 images and report accuracy on\n"
	"                    the 5,000 validation images after each epoch (default:\n"
	"                    train on all 60,000)\n"
	"\n"
	"Ctrl-C stops after the current step; nothing is written then.\n";

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

struct prog {
	int tty;
	double last;
};

static int on_progress(void *ud, const lt_train_status *st)
{
	struct prog *p = ud;
	if (st->batch >= 0) {
		double t = lt_seconds();
		if (p->tty && t - p->last > 0.1) {
			double eta = st->seconds / st->batch * (st->batches - st->batch);
			fprintf(stderr, "\repoch %d/%d  batch %lld/%lld  loss %.4f  acc %.2f%%  %.0f img/s  eta %.0fs \033[K",
				st->epoch, st->epochs, (long long)st->batch, (long long)st->batches, st->loss,
				100 * st->acc, st->samples_per_s, eta);
			fflush(stderr);
			p->last = t;
		}
		return interrupted;
	}
	if (p->tty)
		fprintf(stderr, "\r\033[K");
	printf("epoch %d/%d  loss %.4f  train acc %.2f%%", st->epoch, st->epochs, st->loss, 100 * st->acc);
	if (st->val_acc >= 0)
		printf("  val acc %.2f%%  val loss %.4f", 100 * st->val_acc, st->val_loss);
	printf("  lr %.3g  %.1f s  %.0f img/s\n", st->lr, st->seconds, st->samples_per_s);
	fflush(stdout);
	return interrupted;
}

/* The architecture as JSON: Lua files run in a sandbox, others are JSON. */
static char *read_arch(const char *path, lt_err *err)
{
	size_t n = strlen(path);
	if (n > 4 && !strcmp(path + n - 4, ".lua"))
		return lt_lua_arch_to_json(path, err);
	FILE *f = fopen(path, "rb");
	if (!f) {
		lt_err_set(err, LT_EIO, "cannot open: %m");
		return NULL;
	}
	char *buf = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (len + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			char *nb = cap > (16u << 20) ? NULL : lt_realloc(buf, cap);
			if (!nb) {
				lt_free(buf);
				fclose(f);
				lt_err_set(err, LT_ERANGE, "architecture file too large (16 MiB at most)");
				return NULL;
			}
			buf = nb;
		}
		size_t got = fread(buf + len, 1, 4096, f);
		len += got;
		if (got < 4096)
			break;
	}
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		lt_free(buf);
		lt_err_set(err, LT_EIO, "read error");
		return NULL;
	}
	buf[len] = '\0';
	return buf;
}

static int parse_real(const char *s, double lo, double hi, double *out)
{
	char *end;
	if (!s || !*s)
		return -1;
	double v = strtod(s, &end);
	if (*end || !(v >= lo && v <= hi))
		return -1;
	*out = v;
	return 0;
}

int cmd_train(int argc, char **argv)
{
	const char *arch = NULL, *data = NULL, *out = NULL, *sched = "const", *optname = "adam";
	int64_t epochs = 10, batch = 128, threads = 0, seed = 0, step_size = 10;
	double lr = -1, momentum = 0.9, wd = 0, gamma = 0.1, clip = 0;
	int nesterov = 0, use_val = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE()                                                                   \
	do {                                                                           \
		if (!v)                                                                \
			return cli_usage_error("train", "option '%s' needs a value", a); \
		i++;                                                                   \
	} while (0)
#define COUNT(var, lo, hi)                                                             \
	do {                                                                           \
		NEED_VALUE();                                                          \
		if (cli_parse_count(v, lo, hi, &var))                                  \
			return cli_usage_error("train", "%s needs a whole number from %lld to %lld, not '%s'", \
					       a, (long long)(lo), (long long)(hi), v); \
	} while (0)
#define REAL(var, lo, hi)                                                              \
	do {                                                                           \
		NEED_VALUE();                                                          \
		if (parse_real(v, lo, hi, &var))                                       \
			return cli_usage_error("train", "%s needs a number from %g to %g, not '%s'", \
					       a, (double)(lo), (double)(hi), v);      \
	} while (0)
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(train_help, stdout);
			return EXIT_OK;
		} else if (!strcmp(a, "--data")) {
			NEED_VALUE();
			data = v;
		} else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
			NEED_VALUE();
			out = v;
		} else if (!strcmp(a, "--epochs")) {
			COUNT(epochs, 1, 100000);
		} else if (!strcmp(a, "--batch")) {
			COUNT(batch, 1, 65536);
		} else if (!strcmp(a, "--threads")) {
			COUNT(threads, 1, 1024);
		} else if (!strcmp(a, "--seed")) {
			COUNT(seed, 0, INT64_MAX);
		} else if (!strcmp(a, "--step-size")) {
			COUNT(step_size, 1, 100000);
		} else if (!strcmp(a, "--lr")) {
			REAL(lr, 0, 100);
		} else if (!strcmp(a, "--momentum")) {
			REAL(momentum, 0, 0.9999);
		} else if (!strcmp(a, "--weight-decay")) {
			REAL(wd, 0, 100);
		} else if (!strcmp(a, "--gamma")) {
			REAL(gamma, 0, 1);
		} else if (!strcmp(a, "--clip")) {
			REAL(clip, 0, 1e30);
		} else if (!strcmp(a, "--opt")) {
			NEED_VALUE();
			optname = v;
		} else if (!strcmp(a, "--schedule")) {
			NEED_VALUE();
			sched = v;
		} else if (!strcmp(a, "--nesterov")) {
			nesterov = 1;
		} else if (!strcmp(a, "--val")) {
			use_val = 1;
		} else if (a[0] == '-' && a[1]) {
			return cli_usage_error("train", "unknown option '%s'", a);
		} else if (arch) {
			return cli_usage_error("train", "one ARCH at a time");
		} else {
			arch = a;
		}
	}
	if (!arch || !out)
		return cli_usage_error("train", "need ARCH and -o OUT");
	lt_train_cfg cfg = {.epochs = (int)epochs, .batch = (int)batch, .threads = (int)threads,
			    .seed = (uint64_t)seed, .step_size = (int)step_size, .gamma = (float)gamma,
			    .clip_norm = (float)clip};
	if (lt_opt_parse(optname, &cfg.opt.kind))
		return cli_usage_error("train", "--opt must be adam, adamw or sgd, not '%s'", optname);
	if (!strcmp(sched, "const"))
		cfg.sched = LT_SCHED_CONST;
	else if (!strcmp(sched, "step"))
		cfg.sched = LT_SCHED_STEP;
	else if (!strcmp(sched, "cosine"))
		cfg.sched = LT_SCHED_COSINE;
	else
		return cli_usage_error("train", "--schedule must be const, step or cosine, not '%s'", sched);
	if (nesterov && cfg.opt.kind != LT_OPT_SGD)
		return cli_usage_error("train", "--nesterov needs --opt sgd");
	cfg.opt.lr = (float)(lr >= 0 ? lr : cfg.opt.kind == LT_OPT_SGD ? 0.01 : 0.001);
	cfg.opt.momentum = cfg.opt.kind == LT_OPT_SGD ? (float)momentum : 0;
	cfg.opt.nesterov = nesterov;
	cfg.opt.weight_decay = (float)wd;

	lt_err err = {0};
	char *json = read_arch(arch, &err);
	if (!json)
		return cli_fail(arch, &err);
	lt_graph *g = lt_graph_from_json(json, &err);
	lt_free(json);
	if (!g)
		return cli_fail(arch, &err);
	lt_model *m = lt_model_from_graph(g, (uint64_t)seed, &err);
	if (!m)
		return cli_fail(arch, &err);
	lt_dataset train = {0}, val = {0}, test = {0};
	int rc = lt_fmnist_load(data, NULL, use_val ? LT_SPLIT_TRAIN : LT_SPLIT_TRAIN_FULL, &train, &err);
	if (!rc && use_val)
		rc = lt_fmnist_load(data, NULL, LT_SPLIT_VAL, &val, &err);
	if (!rc)
		rc = lt_fmnist_load(data, NULL, LT_SPLIT_TEST, &test, &err);
	if (rc) {
		lt_model_unref(m);
		lt_dataset_release(&train);
		lt_dataset_release(&val);
		return cli_fail(data ? data : "data", &err);
	}
	struct sigaction sa = {.sa_handler = on_sigint}, old;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old);
	struct prog p = {isatty(STDERR_FILENO), 0};
	printf("training %s: %lld images, %s, lr %g, batch %d, %d epochs, seed %lld\n", arch,
	       (long long)train.n, lt_opt_name(cfg.opt.kind), cfg.opt.lr, cfg.batch, cfg.epochs,
	       (long long)seed);
	fflush(stdout);
	double t0 = lt_seconds();
	rc = lt_train_run(m, &train, use_val ? &val : NULL, &cfg, on_progress, &p, &err);
	double took = lt_seconds() - t0;
	sigaction(SIGINT, &old, NULL);
	lt_eval_result r = {0};
	if (!rc) {
		lt_eval_opts eo = {.batch = 1000, .threads = (int)threads};
		rc = lt_eval_run(m, &test, &eo, &r, &err);
	}
	if (!rc) {
		char buf[1024];
		snprintf(buf, sizeof buf, "%.4f", r.top1);
		rc = lt_model_set_meta(m, "lathe.test_accuracy", buf, &err);
		snprintf(buf, sizeof buf, "lathe %s train", PACKAGE_VERSION);
		rc = rc ? rc : lt_model_set_meta(m, "lathe.trained_by", buf, &err);
		int used = snprintf(buf, sizeof buf, "lathe train");
		for (int i = 1; i < argc && used < (int)sizeof buf; i++)
			used += snprintf(buf + used, sizeof buf - (size_t)used, " %s", argv[i]);
		rc = rc ? rc : lt_model_set_meta(m, "lathe.train_command", buf, &err);
		rc = rc ? rc : lt_model_save(m, out, &err);
	}
	lt_dataset_release(&train);
	lt_dataset_release(&val);
	lt_dataset_release(&test);
	lt_model_unref(m);
	if (rc == LT_ECANCEL) {
		fprintf(stderr, "%slathe: train: %s; nothing written\n", p.tty ? "\r\033[K" : "", err.msg);
		return 130;
	}
	if (rc)
		return cli_fail(out, &err);
	printf("test accuracy %.2f%% (%lld images); %.1f s; saved %s\n", 100 * r.top1, (long long)r.n, took, out);
	lt_eval_result_free(&r);
	return EXIT_OK;
}
