/* libFuzzer target: architecture JSON parsing, shape inference and the
 * round trip back to JSON. */
#include <stdint.h>
#include <string.h>

#include "core/graph.h"
#include "core/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = lt_malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	lt_err err;
	lt_graph *g = lt_graph_from_json(text, &err);
	if (g) {
		char *json = lt_graph_to_json(g, &err);
		lt_graph *g2 = json ? lt_graph_from_json(json, &err) : NULL;
		lt_graph_free(g2);
		lt_free(json);
	}
	lt_graph_free(g);
	lt_free(text);
	return 0;
}
