/* lathe eval [MODEL] [--data DIR] [--split val|test] ...  and  lathe convert */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/model.h"
#include "data/dataset.h"
#include "io/open.h"
#include "kern/blas.h"
#include "nn/eval.h"

static const char eval_help[] =
	"usage: lathe eval [MODEL] [--data DIR] [--split val|test] [--limit N]\n"
	"                  [--batch N] [--threads N] [--json]\n"
	"\n"
	"Classify a Fashion-MNIST split with MODEL (default: the bundled\n"
	"samples/lenet5.safetensors) and report top-1 and top-5 accuracy, mean\n"
	"cross-entropy loss, per-class accuracy, the confusion matrix and the\n"
	"forward-pass throughput.\n"
	"\n"
	"  --data DIR    directory with the IDX files (default: $LATHE_DATA, the\n"
	"                bundled slice, then /usr/share/datasets/fashion-mnist)\n"
	"  --split S     test (default), val (last 5,000 training images), train\n"
	"  --limit N     only the first N images of the split\n"
	"  --batch N     images per forward pass (default 1000)\n"
	"  --threads N   worker threads (default: one per core)\n"
	"  --json        one JSON object on stdout\n";

static const char *opt_value(int argc, char **argv, int *i, const char *cmd, int *bad)
{
	if (*i + 1 >= argc) {
		cli_usage_error(cmd, "option '%s' needs a value", argv[*i]);
		*bad = 1;
		return NULL;
	}
	return argv[++*i];
}

static void print_report(const char *model, const lt_dataset *d, lt_split split,
			 const lt_eval_result *r, int batch, int threads)
{
	int k = r->n_classes;
	int named = k == LT_FMNIST_CLASSES;
	printf("model: %s\n", model);
	printf("data:  %s (%s split: %lld of %lld images)\n", d->source, lt_split_name(split),
	       (long long)r->n, (long long)d->n);
	printf("top-1: %.2f%%   top-5: %.2f%%   loss: %.4f\n", 100 * r->top1, 100 * r->top5, r->loss);
	printf("speed: %.0f images/s (forward pass, batch %d, threads %d)\n", r->images_per_s, batch, threads);
	printf("\nper class:\n");
	for (int c = 0; c < k; c++) {
		int64_t tot = r->class_total[c], ok = r->confusion[c * k + c];
		printf("  %2d %-12s %7.2f%%  (%lld/%lld)\n", c, named ? lt_fmnist_class_name(c) : "",
		       tot ? 100.0 * ok / tot : 0.0, (long long)ok, (long long)tot);
	}
	if (k > 20)
		return; /* a confusion matrix this wide would not read on a terminal */
	printf("\nconfusion (rows: true class, columns: predicted):\n     ");
	for (int c = 0; c < k; c++)
		printf("%6d", c);
	printf("\n");
	for (int t = 0; t < k; t++) {
		printf("  %2d ", t);
		for (int p = 0; p < k; p++)
			printf("%6lld", (long long)r->confusion[t * k + p]);
		printf("\n");
	}
}

static void print_json(const char *model, const lt_dataset *d, lt_split split,
		       const lt_eval_result *r, int batch, int threads)
{
	int k = r->n_classes;
	json_t *classes = json_array(), *conf = json_array();
	for (int c = 0; c < k; c++) {
		int64_t tot = r->class_total[c], ok = r->confusion[c * k + c];
		json_array_append_new(classes, json_pack("{s:i,s:f,s:I}", "class", c,
			"accuracy", tot ? (double)ok / tot : 0.0, "count", (json_int_t)tot));
		json_t *row = json_array();
		for (int p = 0; p < k; p++)
			json_array_append_new(row, json_integer(r->confusion[c * k + p]));
		json_array_append_new(conf, row);
	}
	json_t *root = json_pack("{s:s,s:s,s:s,s:I,s:f,s:f,s:f,s:f,s:f,s:i,s:i,s:o,s:o}",
		"model", model, "data", d->source, "split", lt_split_name(split),
		"images", (json_int_t)r->n, "top1", r->top1, "top5", r->top5, "loss", r->loss,
		"images_per_s", r->images_per_s, "forward_seconds", r->forward_seconds,
		"batch", batch, "threads", threads, "per_class", classes, "confusion", conf);
	char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
	if (s)
		puts(s);
	free(s);
	json_decref(root);
}

int cmd_eval(int argc, char **argv)
{
	const char *model = NULL, *data = NULL;
	lt_split split = LT_SPLIT_TEST;
	int64_t limit = 0, batch = 1000, threads = 0;
	int json = 0, bad = 0;
	for (int i = 1; i < argc && !bad; i++) {
		const char *a = argv[i], *v;
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(eval_help, stdout);
			return EXIT_OK;
		} else if (!strcmp(a, "--json")) {
			json = 1;
		} else if (!strcmp(a, "--data")) {
			data = opt_value(argc, argv, &i, "eval", &bad);
		} else if (!strcmp(a, "--split")) {
			if ((v = opt_value(argc, argv, &i, "eval", &bad)) && lt_split_parse(v, &split))
				return cli_usage_error("eval", "unknown split '%s' (val, test, train, train-full)", v);
		} else if (!strcmp(a, "--limit") || !strcmp(a, "--batch") || !strcmp(a, "--threads")) {
			int64_t *dst = a[2] == 'l' ? &limit : a[2] == 'b' ? &batch : &threads;
			int64_t hi = a[2] == 't' ? 1024 : a[2] == 'b' ? 1 << 20 : INT64_MAX;
			if ((v = opt_value(argc, argv, &i, "eval", &bad)) && cli_parse_count(v, 1, hi, dst))
				return cli_usage_error("eval", "%s needs a whole number from 1 to %lld, not '%s'",
						       a, (long long)hi, v);
		} else if (a[0] == '-' && a[1]) {
			return cli_usage_error("eval", "unknown option '%s'", a);
		} else if (model) {
			return cli_usage_error("eval", "one MODEL at a time");
		} else {
			model = a;
		}
	}
	if (bad)
		return EXIT_USAGE;
	char sample[4096];
	if (!model) {
		/* cli_bundled returns a static buffer: keep a copy. */
		const char *found = cli_bundled("lenet5.safetensors");
		if (!found) {
			lt_err e;
			lt_err_set(&e, LT_EIO, "bundled sample not found; give a MODEL");
			return cli_fail("eval", &e);
		}
		snprintf(sample, sizeof sample, "%s", found);
		model = sample;
	}

	lt_err err = {0};
	lt_model *m = lt_model_open(model, &err);
	if (!m)
		return cli_fail(model, &err);
	if (!lt_model_graph(m)) {
		lt_model_unref(m);
		lt_err_set(&err, LT_ENOTSUP, "weights-only model (no '%s' architecture): "
			   "it can be analysed but not evaluated", LT_ARCH_META_KEY);
		return cli_fail(model, &err);
	}
	char bundled[4096];
	snprintf(bundled, sizeof bundled, "%s", cli_bundled("data") ? cli_bundled("data") : "");
	const char *fallback[] = {bundled[0] ? bundled : NULL, NULL};
	lt_dataset d = {0};
	if (lt_fmnist_load(data, fallback, split, &d, &err)) {
		lt_model_unref(m);
		return cli_fail(data ? data : "data", &err);
	}
	if (!threads)
		threads = lt_cpu_count();
	cli_progress prog;
	cli_progress_start(&prog, "eval");
	lt_eval_opts opts = {.batch = (int)batch, .threads = (int)threads, .limit = limit,
			     .progress = cli_progress_update, .progress_ud = &prog};
	lt_eval_result r;
	int rc = lt_eval_run(m, &d, &opts, &r, &err);
	cli_progress_end(&prog);
	if (rc) {
		lt_dataset_release(&d);
		lt_model_unref(m);
		return cli_fail(model, &err);
	}
	if (json)
		print_json(model, &d, split, &r, (int)batch, (int)threads);
	else
		print_report(model, &d, split, &r, (int)batch, (int)threads);
	lt_eval_result_free(&r);
	lt_dataset_release(&d);
	lt_model_unref(m);
	return EXIT_OK;
}

static const char convert_help[] =
	"usage: lathe convert MODEL -o OUT [--dtype f32|f16|bf16]\n"
	"\n"
	"Write MODEL to OUT as safetensors, atomically (OUT is replaced only when\n"
	"the new file is complete). With --dtype, floating-point tensors are cast\n"
	"(round to nearest even); integer tensors are kept as they are.\n";

int cmd_convert(int argc, char **argv)
{
	const char *in = NULL, *out = NULL, *dt = NULL;
	int bad = 0;
	for (int i = 1; i < argc && !bad; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(convert_help, stdout);
			return EXIT_OK;
		} else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
			out = opt_value(argc, argv, &i, "convert", &bad);
		} else if (!strcmp(a, "--dtype")) {
			dt = opt_value(argc, argv, &i, "convert", &bad);
		} else if (a[0] == '-' && a[1]) {
			return cli_usage_error("convert", "unknown option '%s'", a);
		} else if (in) {
			return cli_usage_error("convert", "one MODEL at a time");
		} else {
			in = a;
		}
	}
	if (bad)
		return EXIT_USAGE;
	if (!in || !out)
		return cli_usage_error("convert", "need MODEL and -o OUT");
	lt_dtype target = LT_F32;
	int cast = dt != NULL;
	if (dt) {
		char up[8] = {0};
		for (int i = 0; dt[i] && i < 7; i++)
			up[i] = (char)(dt[i] >= 'a' && dt[i] <= 'z' ? dt[i] - 32 : dt[i]);
		if (strlen(dt) > 4 || lt_dtype_parse(up, &target) ||
		    (target != LT_F32 && target != LT_F16 && target != LT_BF16))
			return cli_usage_error("convert", "--dtype must be f32, f16 or bf16, not '%s'", dt);
	}
	lt_err err = {0};
	lt_model *m = lt_model_open(in, &err);
	if (!m)
		return cli_fail(in, &err);
	for (size_t i = 0; cast && i < lt_model_tensor_count(m); i++) {
		lt_tensor *t = lt_model_tensor_at(m, i);
		lt_dtype d = lt_tensor_dtype(t);
		if (d != LT_F64 && d != LT_F32 && d != LT_F16 && d != LT_BF16 &&
		    d != LT_F8_E4M3 && d != LT_F8_E5M2)
			continue;
		lt_tensor *c = lt_tensor_cast(t, target, &err);
		if (!c || lt_model_set_tensor(m, lt_model_tensor_name(m, i), c, &err)) {
			lt_tensor_unref(c);
			lt_model_unref(m);
			return cli_fail(in, &err);
		}
		lt_tensor_unref(c);
	}
	int rc = lt_model_save(m, out, &err);
	lt_model_unref(m);
	/* save's messages already name the file */
	return rc ? cli_fail("convert", &err) : EXIT_OK;
}
