/* libFuzzer target: safetensors parsing plus the architecture in its
 * metadata. Build: see tests/fuzz/README.md. */
#include <stdint.h>
#include <string.h>

#include "core/blob.h"
#include "core/mem.h"
#include "core/model.h"
#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy = lt_malloc(size);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	lt_blob *blob = lt_blob_wrap(copy, size, NULL);
	if (!blob)
		return 0;
	lt_err err;
	lt_model *m = lt_safetensors_parse(blob, &err);
	if (m) {
		lt_model_load_arch(m, &err);
		for (size_t i = 0; i < lt_model_tensor_count(m); i++) {
			lt_tensor *t = lt_model_tensor_at(m, i);
			lt_tensor_count_zeros(t);
			lt_tensor_data(t, &err);
		}
	}
	lt_model_unref(m);
	lt_blob_unref(blob);
	return 0;
}
