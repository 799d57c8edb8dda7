/* Architecture JSON: parsing, shape inference, MACs, round trip, errors. */
#include <math.h>
#include <string.h>

#include "core/graph.h"
#include "core/mem.h"
#include "tap.h"

static const char lenet5[] =
	"{\"format\":\"lathe-arch-1\",\"input\":[1,28,28],"
	"\"preprocess\":{\"scale\":255,\"mean\":[0.286],\"std\":[0.353]},\"layers\":["
	"{\"op\":\"conv2d\",\"name\":\"conv1\",\"in_channels\":1,\"out_channels\":20,\"kernel_size\":5},"
	"{\"op\":\"maxpool2d\",\"kernel_size\":2},{\"op\":\"relu\"},"
	"{\"op\":\"conv2d\",\"name\":\"conv2\",\"in_channels\":20,\"out_channels\":50,\"kernel_size\":[5,5],\"stride\":[1,1]},"
	"{\"op\":\"maxpool2d\",\"kernel_size\":[2,2],\"stride\":2},{\"op\":\"relu\"},{\"op\":\"flatten\"},"
	"{\"op\":\"linear\",\"name\":\"fc1\",\"in_features\":800,\"out_features\":500},{\"op\":\"relu\"},"
	"{\"op\":\"dropout\",\"p\":0.5},"
	"{\"op\":\"linear\",\"name\":\"fc2\",\"in_features\":500,\"out_features\":10,\"bias\":false}]}";

static void expect_error(const char *json, const char *needle, const char *what)
{
	lt_err err = {0};
	lt_graph *g = lt_graph_from_json(json, &err);
	tap_ok(!g && err.code == LT_EFORMAT && strstr(err.msg, needle), "%s: \"%s\"", what, err.msg);
	lt_graph_free(g);
}

#define LAYERS(l) "{\"input\":[1,28,28],\"layers\":[" l "]}"

int main(void)
{
	lt_err err = {0};
	lt_graph *g = lt_graph_from_json(lenet5, &err);
	tap_ok(g != NULL, "LeNet-5 parses (%s)", err.msg);
	if (!g)
		return tap_done();
	tap_ok(g->n_nodes == 11, "11 layers");
	const lt_node *c1 = &g->nodes[0], *c2 = &g->nodes[3];
	tap_ok(c1->out_shape[0] == 20 && c1->out_shape[1] == 24 && c1->out_shape[2] == 24, "conv1 -> [20,24,24]");
	tap_ok(c1->macs == 20 * 24 * 24 * 25, "conv1 MACs");
	tap_ok(c2->macs == 50LL * 8 * 8 * 500, "conv2 MACs");
	tap_ok(g->nodes[6].out_ndim == 1 && g->nodes[6].out_shape[0] == 800, "flatten -> [800]");
	tap_ok(lt_graph_macs(g) == 288000 + 1600000 + 400000 + 5000, "total MACs %lld", (long long)lt_graph_macs(g));
	tap_ok(lt_graph_out_numel(g) == 10, "10 outputs");
	tap_ok(!strcmp(g->nodes[0].params[LT_P_WEIGHT], "conv1.weight") &&
	       !strcmp(g->nodes[0].params[LT_P_BIAS], "conv1.bias"), "parameter names");
	tap_ok(g->nodes[10].params[LT_P_BIAS] == NULL, "bias:false has no bias tensor");
	tap_ok(g->n_norm == 1 && fabsf(g->mean[0] - 0.286f) < 1e-7 && g->scale == 255, "preprocess");
	tap_ok(g->nodes[1].stride[0] == 2, "pool stride defaults to kernel");

	char *json = lt_graph_to_json(g, &err);
	lt_graph *g2 = json ? lt_graph_from_json(json, &err) : NULL;
	char *json2 = g2 ? lt_graph_to_json(g2, &err) : NULL;
	tap_ok(json2 && !strcmp(json, json2), "JSON round trip is stable");
	tap_ok(g2 && lt_graph_macs(g2) == lt_graph_macs(g) && g2->nodes[10].params[LT_P_BIAS] == NULL,
	       "round trip keeps the graph");
	lt_free(json);
	lt_free(json2);
	lt_graph_free(g2);
	lt_graph_free(g);

	/* DAG wiring: a layer may read any earlier value by name. */
	g = lt_graph_from_json(LAYERS("{\"op\":\"relu\",\"name\":\"a\"},{\"op\":\"tanh\",\"name\":\"b\",\"inputs\":[\"input\"]},"
				      "{\"op\":\"sigmoid\",\"inputs\":[\"a\"]}"), &err);
	tap_ok(g && g->nodes[1].inputs[0] == 0 && g->nodes[2].inputs[0] == 1, "explicit inputs resolve (%s)", err.msg);
	lt_graph_free(g);

	g = lt_graph_from_json("{\"input\":[3,8,8],\"layers\":[{\"op\":\"conv2d\",\"name\":\"c\",\"in_channels\":3,"
			       "\"out_channels\":4,\"kernel_size\":[3,2],\"stride\":[2,1],\"padding\":[1,0]},"
			       "{\"op\":\"batchnorm2d\",\"name\":\"bn\",\"num_features\":4},"
			       "{\"op\":\"avgpool2d\",\"kernel_size\":2,\"padding\":1}]}", &err);
	tap_ok(g && g->nodes[0].out_shape[1] == 4 && g->nodes[0].out_shape[2] == 7 &&
	       g->nodes[2].out_shape[1] == 3 && g->nodes[2].out_shape[2] == 4,
	       "non-square kernel, stride, padding shapes (%s)", err.msg);
	tap_ok(g && g->nodes[1].eps == 1e-5f && g->nodes[1].params[LT_P_VAR] &&
	       !strcmp(g->nodes[1].params[LT_P_VAR], "bn.running_var"), "batchnorm defaults and tensors");
	lt_graph_free(g);

	expect_error("{\"input\":[784],", "invalid JSON", "truncated JSON");
	expect_error("[1,2]", "object", "not an object");
	expect_error(LAYERS("{\"op\":\"gelu\"}"), "unknown op 'gelu'", "unknown op");
	expect_error(LAYERS("{\"name\":\"x\"}"), "unknown op (missing)", "missing op");
	expect_error(LAYERS("{\"op\":\"relu\",\"inplace\":true}"), "unknown key 'inplace'", "unknown key");
	expect_error(LAYERS("{\"op\":\"relu\",\"\":1}"), "unknown key ''", "empty key (once hung the parser)");
	expect_error(LAYERS("{\"op\":\"maxpool2d\",\"kernel_size\":2,\"stride_\":1}"), "unknown key 'stride_'", "key extending a known one");
	expect_error(LAYERS("{\"op\":\"linear\",\"in_features\":784,\"out_features\":10}"), "needs a 'name'", "unnamed linear");
	expect_error(LAYERS("{\"op\":\"linear\",\"name\":\"fc\",\"in_features\":784,\"out_features\":10}"),
		     "add a flatten layer", "linear on an image");
	expect_error(LAYERS("{\"op\":\"conv2d\",\"name\":\"c\",\"in_channels\":1,\"out_channels\":2,\"kernel_size\":29}"),
		     "does not fit", "kernel larger than input");
	expect_error(LAYERS("{\"op\":\"conv2d\",\"name\":\"c\",\"in_channels\":3,\"out_channels\":2,\"kernel_size\":3}"),
		     "expects 3 channels", "channel mismatch");
	expect_error(LAYERS("{\"op\":\"relu\",\"name\":\"a\"},{\"op\":\"relu\",\"name\":\"a\"}"), "duplicate layer name",
		     "duplicate names");
	expect_error(LAYERS("{\"op\":\"relu\",\"inputs\":[\"later\"]},{\"op\":\"relu\",\"name\":\"later\"}"),
		     "not an earlier layer", "forward reference");
	expect_error(LAYERS("{\"op\":\"maxpool2d\",\"kernel_size\":2,\"padding\":2}"), "half of kernel_size",
		     "pool padding too large");
	expect_error(LAYERS("{\"op\":\"conv2d\",\"name\":\"c\",\"in_channels\":1,\"out_channels\":2,\"kernel_size\":-1}"),
		     "kernel_size", "negative kernel");
	expect_error(LAYERS("{\"op\":\"dropout\",\"p\":1.5}"), "'p' must be in", "dropout p out of range");
	expect_error(LAYERS("{\"op\":\"softmax\"}"), "flat vector", "softmax on an image");
	expect_error("{\"input\":[784],\"layers\":[]}", "non-empty", "no layers");
	expect_error("{\"input\":[0],\"layers\":[{\"op\":\"relu\"}]}", "positive", "zero input dim");
	expect_error("{\"input\":[784],\"layers\":[{\"op\":\"relu\"}],\"preprocess\":{\"mean\":1}}", "both",
		     "mean without std");
	expect_error("{\"input\":[784],\"layers\":[{\"op\":\"relu\"}],\"preprocess\":{\"mean\":0,\"std\":0}}",
		     "positive", "zero std");
	expect_error("{\"format\":\"other\",\"input\":[784],\"layers\":[{\"op\":\"relu\"}]}", "unsupported format",
		     "foreign format");
	expect_error("{\"input\":[65536,65536,65536],\"layers\":[{\"op\":\"relu\"}]}", "", "huge activations");
	/* activation thresholds: any layer but the identities; kept by a round trip */
	lt_graph *tg = lt_graph_from_json(LAYERS("{\"op\":\"flatten\"},{\"op\":\"linear\",\"name\":\"fc\","
		"\"in_features\":784,\"out_features\":10,\"act_threshold\":0.25},{\"op\":\"relu\",\"act_threshold\":0.5}"), &err);
	char *tj = tg ? lt_graph_to_json(tg, &err) : NULL;
	lt_graph *tg2 = tj ? lt_graph_from_json(tj, &err) : NULL;
	tap_ok(tg2 && tg2->nodes[1].act_threshold == 0.25f && tg2->nodes[2].act_threshold == 0.5f &&
	       tg2->nodes[0].act_threshold == 0, "act_threshold parses and survives a round trip (%s)", err.msg);
	tap_ok(tj && !strstr(strstr(tj, "flatten"), "act_threshold\":0,"), "no threshold is written where there is none");
	tap_ok(tg && lt_graph_check_act_threshold(tg, 0, 0.1, &err) == LT_EINVAL && strstr(err.msg, "passes its input"),
	       "a threshold on flatten is refused: %s", err.msg);
	tap_ok(tg && lt_graph_check_act_threshold(tg, 2, -0.1, &err) == LT_EINVAL &&
	       lt_graph_check_act_threshold(tg, 2, NAN, &err) == LT_EINVAL &&
	       lt_graph_check_act_threshold(tg, 2, INFINITY, &err) == LT_EINVAL &&
	       lt_graph_check_act_threshold(tg, 2, 0, &err) == 0, "negative, NaN and infinite thresholds are refused");
	lt_free(tj);
	lt_graph_free(tg);
	lt_graph_free(tg2);
	expect_error(LAYERS("{\"op\":\"flatten\",\"act_threshold\":0.1}"), "takes no 'act_threshold'",
		     "a threshold on flatten in JSON");
	expect_error(LAYERS("{\"op\":\"relu\",\"act_threshold\":-1}"), "'act_threshold' must be in",
		     "a negative threshold in JSON");
	expect_error(LAYERS("{\"op\":\"relu\",\"act_threshold\":\"big\"}"), "must be a number",
		     "a threshold that is not a number");

	/* Allocation failures never crash and always report. */
	int ok = 1, finished = 0;
	for (long k = 0; k < 400 && !finished; k++) {
		lt_mem_fail_after(k);
		lt_graph *h = lt_graph_from_json(lenet5, &err);
		lt_mem_fail_after(-1);
		finished = h != NULL;
		ok &= finished || err.code == LT_ENOMEM;
		lt_graph_free(h);
	}
	tap_ok(ok && finished, "allocation-failure sweep over parsing");
	return tap_done();
}
