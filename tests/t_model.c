/* Models: named tensors, metadata, and graph validation against tensors. */
#include <string.h>

#include "core/model.h"
#include "tap.h"

static lt_tensor *tensor2(int64_t a, int64_t b)
{
	int64_t s[2] = {a, b};
	return lt_tensor_new(b ? 2 : 1, s, NULL);
}

static const char arch[] =
	"{\"input\":[4],\"layers\":[{\"op\":\"linear\",\"name\":\"fc\",\"in_features\":4,\"out_features\":3}]}";

int main(void)
{
	lt_err err = {0};
	lt_model *m = lt_model_new(&err);
	lt_tensor *w = tensor2(3, 4), *b = tensor2(3, 0);
	tap_ok(lt_model_add_tensor(m, "fc.weight", w, &err) == 0, "add weight");
	tap_ok(lt_model_add_tensor(m, "fc.weight", w, &err) == LT_EINVAL, "duplicate name refused: %s", err.msg);
	tap_ok(lt_model_tensor_count(m) == 1 && lt_model_tensor(m, "fc.weight") == w, "lookup");
	tap_ok(lt_model_param_count(m) == 12 && lt_model_nbytes(m) == 48, "totals");

	tap_ok(lt_model_set_meta(m, "k", "v1", &err) == 0 && lt_model_set_meta(m, "k", "v2", &err) == 0 &&
	       lt_model_meta_count(m) == 1 && !strcmp(lt_model_meta(m, "k"), "v2"), "metadata replace");
	tap_ok(lt_model_meta(m, "nope") == NULL, "missing metadata is NULL");

	/* The graph needs fc.bias, which is absent: refused, model unchanged. */
	lt_model_set_meta(m, LT_ARCH_META_KEY, arch, &err);
	tap_ok(lt_model_load_arch(m, &err) == LT_EFORMAT && strstr(err.msg, "fc.bias") &&
	       lt_model_graph(m) == NULL, "missing tensor refused: %s", err.msg);
	lt_tensor *bad = tensor2(4, 0);
	lt_model_add_tensor(m, "fc.bias", bad, &err);
	tap_ok(lt_model_load_arch(m, &err) == LT_EFORMAT && strstr(err.msg, "shape [4]") &&
	       strstr(err.msg, "needs [3]"), "wrong shape refused: %s", err.msg);
	tap_ok(lt_model_set_tensor(m, "fc.bias", b, &err) == 0 && lt_model_load_arch(m, &err) == 0 &&
	       lt_model_graph(m) != NULL, "valid graph accepted (%s)", err.msg);

	lt_model_set_meta(m, LT_ARCH_META_KEY, "{\"input\":[4],\"layers\":[{\"op\":\"warp\"}]}", &err);
	const lt_graph *before = lt_model_graph(m);
	tap_ok(lt_model_load_arch(m, &err) == LT_EFORMAT && lt_model_graph(m) == before &&
	       strstr(err.msg, "architecture"), "bad arch leaves the old graph: %s", err.msg);

	lt_model *weights_only = lt_model_new(&err);
	tap_ok(lt_model_load_arch(weights_only, &err) == 0 && !lt_model_graph(weights_only),
	       "no arch: weights-only");
	lt_model_unref(weights_only);
	lt_tensor_unref(w);
	lt_tensor_unref(b);
	lt_tensor_unref(bad);
	lt_model_unref(m);
	return tap_done();
}
