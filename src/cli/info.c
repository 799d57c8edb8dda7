/* lathe info FILE [--json] */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "core/model.h"
#include "core/units.h"
#include "core/scheme.h"
#include "io/idx.h"
#include "io/open.h"
#include "io/packed.h"
#include "io/safetensors.h"

static const char info_help[] =
	"usage: lathe info FILE [--json]\n"
	"\n"
	"For a model (safetensors): every tensor's name, dtype, shape, parameters,\n"
	"share of zeros and bytes, with totals; when the file carries an\n"
	"architecture, the layer graph with output shapes and MACs per sample.\n"
	"A packed model (lathe's codes, sparse indices and Huffman streams) is\n"
	"decoded: each tensor shows how it is stored and its bytes on disk, and\n"
	"the total its ratio to the f32 model. Other models show what packing\n"
	"would make of them.\n"
	"For an IDX dataset file (optionally .gz): element type, dims, item count.\n"
	"\n"
	"  --json   one JSON object on stdout instead of tables\n";

/* 1234567 -> "1,234,567" (static rotating buffers, for table output). */
static const char *group(int64_t v)
{
	static char bufs[8][32];
	static int next;
	char *out = bufs[next++ % 8], tmp[32];
	int n = snprintf(tmp, sizeof tmp, "%" PRId64, v < 0 ? -v : v), o = 0;
	if (v < 0)
		out[o++] = '-';
	for (int i = 0; i < n; i++) {
		out[o++] = tmp[i];
		if ((n - i - 1) % 3 == 0 && i < n - 1)
			out[o++] = ',';
	}
	out[o] = '\0';
	return out;
}

static const char *human_bytes(double b)
{
	static char buf[4][32];
	static int next;
	return lt_format_bytes(b, buf[next++ % 4], sizeof buf[0]);
}

/* How a packed tensor is stored, in a few words: "codebook 6b, rel 5b". */
static const char *coding(const lt_packed_tensor *p, char *buf, size_t size)
{
	static const char *const kinds[] = {[LT_SCHEME_AFFINE] = "int", [LT_SCHEME_CODEBOOK] = "codebook",
		[LT_SCHEME_F16] = "f16", [LT_SCHEME_BF16] = "bf16"};
	static const char *const index[] = {[LT_PACK_DENSE] = "dense", [LT_PACK_REL] = "rel",
		[LT_PACK_HOLES] = "holes", [LT_PACK_CSR] = "csr"};
	const lt_pack_desc *d = &p->desc;
	int n = d->plain ? snprintf(buf, size, "f32")
			 : d->kind == LT_SCHEME_F16 || d->kind == LT_SCHEME_BF16
			 ? snprintf(buf, size, "%s", kinds[d->kind])
			 : snprintf(buf, size, "%s %db", kinds[d->kind], d->bits);
	if ((unsigned)d->index <= LT_PACK_CSR && index[d->index] && n > 0 && (size_t)n < size)
		n += snprintf(buf + n, size - (size_t)n, ", %s", index[d->index]);
	if ((d->index == LT_PACK_REL || d->index == LT_PACK_HOLES) && n > 0 && (size_t)n < size)
		n += snprintf(buf + n, size - (size_t)n, " %db", d->gap_bits);
	if ((d->codes.huffman || (d->n_idx && d->idx[0].huffman)) && n > 0 && (size_t)n < size)
		snprintf(buf + n, size - (size_t)n, ", huffman");
	return buf;
}

static json_t *shape_json(int ndim, const int64_t *shape)
{
	json_t *a = json_array();
	for (int i = 0; i < ndim; i++)
		json_array_append_new(a, json_integer(shape[i]));
	return a;
}

static int64_t param_count(const lt_model *m, const lt_node *n)
{
	int64_t total = 0;
	for (int s = 0; s < LT_NODE_MAX_PARAMS; s++) {
		lt_tensor *t = n->params[s] ? lt_model_tensor(m, n->params[s]) : NULL;
		if (t)
			total += lt_tensor_numel(t);
	}
	return total;
}

static int info_model(const char *path, int json)
{
	lt_err err = {0};
	lt_model *m = lt_model_open(path, &err);
	if (!m)
		return cli_fail(path, &err);
	size_t nt = lt_model_tensor_count(m);
	int64_t params = lt_model_param_count(m), zeros = 0;
	size_t bytes = lt_model_nbytes(m);
	int64_t *tz = calloc(nt ? nt : 1, sizeof *tz);
	if (!tz) {
		lt_model_unref(m);
		lt_err_set(&err, LT_ENOMEM, "out of memory");
		return cli_fail(path, &err);
	}
	for (size_t i = 0; i < nt; i++)
		zeros += tz[i] = lt_tensor_count_zeros(lt_model_tensor_at(m, i));
	const lt_graph *g = lt_model_graph(m);
	/* How the model is, or would be, packed (the same choices as saving). */
	lt_model *raw = lt_safetensors_load(path, &err);
	int packed = raw && lt_packed_has(raw);
	lt_model_unref(raw);
	struct stat st;
	uint64_t disk = stat(path, &st) == 0 && st.st_size > 0 ? (uint64_t)st.st_size : 1;
	lt_packed_report pr = {0};
	uint64_t plain = 0;
	if (lt_packed_measure(m, &pr, &err) || lt_safetensors_model_size(m, &plain, &err)) {
		free(tz);
		lt_packed_report_free(&pr);
		lt_model_unref(m);
		return cli_fail(path, &err);
	}

	if (json) {
		json_t *root = json_object(), *tensors = json_array(), *meta = json_object();
		json_object_set_new(root, "file", json_string(path));
		json_object_set_new(root, "kind", json_string("model"));
		for (size_t i = 0; i < nt; i++) {
			lt_tensor *t = lt_model_tensor_at(m, i);
			char how[96];
			json_t *e = json_pack("{s:s,s:s,s:o,s:I,s:I,s:I}",
				"name", lt_model_tensor_name(m, i), "dtype", lt_dtype_name(lt_tensor_dtype(t)),
				"shape", shape_json(lt_tensor_ndim(t), lt_tensor_shape(t)),
				"params", (json_int_t)lt_tensor_numel(t), "zeros", (json_int_t)tz[i],
				"bytes", (json_int_t)lt_tensor_nbytes(t));
			if (e && pr.t[i].packed)
				json_object_set_new(e, "packed", json_pack("{s:s,s:I}", "coding",
					coding(&pr.t[i], how, sizeof how), "bytes", (json_int_t)pr.t[i].bytes));
			json_array_append_new(tensors, e);
		}
		json_object_set_new(root, "tensors", tensors);
		json_object_set_new(root, "packed", json_pack("{s:b,s:I,s:I,s:I,s:I,s:f}", "file", packed,
			"file_bytes", (json_int_t)disk, "packed_bytes", (json_int_t)pr.file_bytes,
			"plain_bytes", (json_int_t)plain, "f32_bytes", (json_int_t)pr.f32_bytes,
			"ratio", (double)pr.f32_bytes / (double)(packed ? disk : pr.file_bytes)));
		json_object_set_new(root, "totals", json_pack("{s:I,s:I,s:I,s:I}",
			"tensors", (json_int_t)nt, "params", (json_int_t)params,
			"zeros", (json_int_t)zeros, "bytes", (json_int_t)bytes));
		if (g) {
			json_t *layers = json_array();
			for (int i = 0; i < g->n_nodes; i++) {
				const lt_node *n = &g->nodes[i];
				json_t *l = json_pack("{s:s,s:s,s:o,s:I,s:I}",
					"name", n->name, "op", lt_op_name(n->op),
					"output", shape_json(n->out_ndim, n->out_shape),
					"params", (json_int_t)param_count(m, n), "macs", (json_int_t)n->macs);
				if (l && n->act_threshold > 0)
					json_object_set_new(l, "act_threshold", json_real(n->act_threshold));
				json_array_append_new(layers, l);
			}
			json_object_set_new(root, "graph", json_pack("{s:o,s:o,s:I}",
				"input", shape_json(g->in_ndim, g->in_shape), "layers", layers,
				"macs", (json_int_t)lt_graph_macs(g)));
		} else {
			json_object_set_new(root, "graph", json_null());
		}
		for (size_t i = 0; i < lt_model_meta_count(m); i++)
			json_object_set_new(meta, lt_model_meta_key(m, i), json_string(lt_model_meta_value(m, i)));
		json_object_set_new(root, "metadata", meta);
		char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (s)
			puts(s);
		free(s);
		json_decref(root);
		free(tz);
		lt_packed_report_free(&pr);
		lt_model_unref(m);
		return s ? EXIT_OK : EXIT_FAIL;
	}

	if (packed) /* the file's own size: another writer may have chosen otherwise */
		printf("%s: packed safetensors, %s tensors, %s parameters, %s on disk (%s bytes; f32 %s, "
		       "%.1fx smaller)\n", path, group((int64_t)nt), group(params), human_bytes((double)disk),
		       group((int64_t)disk), human_bytes((double)pr.f32_bytes), (double)pr.f32_bytes / (double)disk);
	else
		printf("%s: safetensors, %s tensors, %s parameters, %s (%s bytes)\n", path,
		       group((int64_t)nt), group(params), human_bytes((double)bytes), group((int64_t)bytes));
	size_t w = 6;
	for (size_t i = 0; i < nt; i++) {
		size_t l = strlen(lt_model_tensor_name(m, i));
		w = l > w ? l : w;
	}
	w = w > 48 ? 48 : w;
	if (packed) {
		printf("\n%-*s  %-20s %12s %8s  %-30s %10s %12s\n", (int)w, "tensor", "shape", "params", "zeros",
		       "stored as", "bytes", "f32 bytes");
		for (size_t i = 0; i < nt; i++) {
			lt_tensor *t = lt_model_tensor_at(m, i);
			char shp[64], how[96];
			int64_t n = lt_tensor_numel(t);
			printf("%-*s  %-20s %12s %7.2f%%  %-30s %10s %12s\n", (int)w, lt_model_tensor_name(m, i),
			       lt_shape_format(lt_tensor_ndim(t), lt_tensor_shape(t), shp, sizeof shp), group(n),
			       n ? 100.0 * tz[i] / n : 0.0,
			       pr.t[i].packed ? coding(&pr.t[i], how, sizeof how) : lt_dtype_name(lt_tensor_dtype(t)),
			       group((int64_t)pr.t[i].bytes), group(n * 4));
		}
		printf("%-*s  %-20s %12s %7.2f%%  %-30s %10s %12s\n", (int)w, "file", "", group(params),
		       params ? 100.0 * zeros / params : 0.0, "(header included)", group((int64_t)disk),
		       group((int64_t)pr.f32_bytes));
	} else {
		printf("\n%-*s  %-5s %-20s %12s %8s %12s\n", (int)w, "tensor", "dtype", "shape", "params", "zeros",
		       "bytes");
		for (size_t i = 0; i < nt; i++) {
			lt_tensor *t = lt_model_tensor_at(m, i);
			char shp[64];
			int64_t n = lt_tensor_numel(t);
			printf("%-*s  %-5s %-20s %12s %7.2f%% %12s\n", (int)w, lt_model_tensor_name(m, i),
			       lt_dtype_name(lt_tensor_dtype(t)),
			       lt_shape_format(lt_tensor_ndim(t), lt_tensor_shape(t), shp, sizeof shp),
			       group(n), n ? 100.0 * tz[i] / n : 0.0, group((int64_t)lt_tensor_nbytes(t)));
		}
		printf("%-*s  %-5s %-20s %12s %7.2f%% %12s\n", (int)w, "total", "", "", group(params),
		       params ? 100.0 * zeros / params : 0.0, group((int64_t)bytes));
		if (pr.file_bytes < plain)
			printf("packed (lathe run -o, model:save) it would take %s (%.1fx smaller than f32)\n",
			       human_bytes((double)pr.file_bytes), (double)pr.f32_bytes / (double)pr.file_bytes);
	}

	if (g) {
		char shp[64];
		printf("\ngraph: %d layers, input %s, %s MACs per sample\n", g->n_nodes,
		       lt_shape_format(g->in_ndim, g->in_shape, shp, sizeof shp), group(lt_graph_macs(g)));
		printf("%-12s %-12s %-16s %12s %14s\n", "layer", "op", "output", "params", "MACs");
		for (int i = 0; i < g->n_nodes; i++) {
			const lt_node *n = &g->nodes[i];
			printf("%-12s %-12s %-16s %12s %14s", n->name, lt_op_name(n->op),
			       lt_shape_format(n->out_ndim, n->out_shape, shp, sizeof shp),
			       group(param_count(m, n)), group(n->macs));
			if (n->act_threshold > 0)
				printf("  outputs |y| < %g -> 0", (double)n->act_threshold);
			putchar('\n');
		}
	} else {
		printf("\ngraph: none (weights-only: analysis works; evaluation needs an architecture in '%s')\n",
		       LT_ARCH_META_KEY);
	}
	if (lt_model_meta_count(m)) {
		printf("\nmetadata:\n");
		for (size_t i = 0; i < lt_model_meta_count(m); i++) {
			const char *k = lt_model_meta_key(m, i), *v = lt_model_meta_value(m, i);
			if (!strcmp(k, LT_ARCH_META_KEY))
				printf("  %s: (architecture, %zu bytes of JSON)\n", k, strlen(v));
			else
				printf("  %s: %.*s%s\n", k, 200, v, strlen(v) > 200 ? "..." : "");
		}
	}
	free(tz);
	lt_packed_report_free(&pr);
	lt_model_unref(m);
	return EXIT_OK;
}

static int info_idx(const char *path, int json)
{
	lt_err err = {0};
	lt_idx x;
	if (lt_idx_load(path, 0, &x, &err))
		return cli_fail(path, &err);
	if (json) {
		json_t *root = json_pack("{s:s,s:s,s:s,s:o,s:I,s:b}", "file", path, "kind", "idx",
					 "type", lt_idx_type_name(x.type_code),
					 "dims", shape_json(x.ndim, x.dims), "items", (json_int_t)x.count,
					 "compressed", x.compressed);
		char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (s)
			puts(s);
		free(s);
		json_decref(root);
	} else {
		char shp[96];
		printf("%s: IDX%s, element type %s, dims %s, %s items of %s values\n", path,
		       x.compressed ? " (gzip)" : "", lt_idx_type_name(x.type_code),
		       lt_shape_format(x.ndim, x.dims, shp, sizeof shp), group(x.count), group(x.item_numel));
	}
	lt_idx_release(&x);
	return EXIT_OK;
}

int cmd_info(int argc, char **argv)
{
	const char *path = NULL;
	int json = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(info_help, stdout);
			return EXIT_OK;
		} else if (!strcmp(argv[i], "--json")) {
			json = 1;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			return cli_usage_error("info", "unknown option '%s'", argv[i]);
		} else if (path) {
			return cli_usage_error("info", "one FILE at a time");
		} else {
			path = argv[i];
		}
	}
	if (!path)
		return cli_usage_error("info", "missing FILE");
	lt_err err = {0};
	switch (lt_file_sniff(path, &err)) {
	case LT_FILE_SAFETENSORS: return info_model(path, json);
	case LT_FILE_IDX: return info_idx(path, json);
	default: return cli_fail(path, &err);
	}
}
