/* libFuzzer target: IDX loading (plain and gzip) from a file. */
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "core/mem.h"
#include "io/idx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	snprintf(path, sizeof path, "/tmp/lathe-fuzz-idx.%d", (int)getpid());
	FILE *f = fopen(path, "wb");
	if (!f)
		return 0;
	fwrite(data, 1, size, f);
	fclose(f);
	lt_idx x;
	lt_err err;
	/* a small bound keeps bombs quick */
	if (lt_idx_load(path, (size_t)64 << 20, &x, &err) == 0) {
		float v[16];
		int64_t n = x.numel < 16 ? x.numel : 16;
		lt_idx_get_f32(&x, 0, n, v);
		lt_idx_release(&x);
	}
	unlink(path);
	return 0;
}
