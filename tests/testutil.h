/* Helpers shared by the module tests: a growable byte buffer for building
 * files (IDX, safetensors) in memory, and fixture paths. */
#ifndef LT_TESTUTIL_H
#define LT_TESTUTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"

struct buf {
	uint8_t *p;
	size_t n, cap;
};

static void put(struct buf *b, const void *data, size_t n) __attribute__((unused));
static void put(struct buf *b, const void *data, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			abort();
	}
	memcpy(b->p + b->n, data, n);
	b->n += n;
}

/* v as `bytes` big-endian bytes (IDX headers and payloads). */
static void put_be(struct buf *b, uint64_t v, int bytes) __attribute__((unused));
static void put_be(struct buf *b, uint64_t v, int bytes)
{
	uint8_t tmp[8];
	for (int i = 0; i < bytes; i++)
		tmp[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
	put(b, tmp, (size_t)bytes);
}

/* IDX magic (two zero bytes, type code, dimension count) and dims. */
static void put_header(struct buf *b, int type, int ndim, const uint32_t *dims) __attribute__((unused));
static void put_header(struct buf *b, int type, int ndim, const uint32_t *dims)
{
	uint8_t h[4] = {0, 0, (uint8_t)type, (uint8_t)ndim};
	put(b, h, 4);
	for (int i = 0; i < ndim; i++)
		put_be(b, dims[i], 4);
}

/* $FIXTURES/name (tests/fixtures when unset). Static buffer. */
static const char *fixture(const char *name) __attribute__((unused));
static const char *fixture(const char *name)
{
	static char path[4096];
	const char *dir = getenv("FIXTURES");
	snprintf(path, sizeof path, "%s/%s", dir ? dir : "tests/fixtures", name);
	return path;
}

/* The 256-image Fashion-MNIST fixture slice; 0, or an error in err. */
static int load_slice(lt_dataset *d, lt_err *err) __attribute__((unused));
static int load_slice(lt_dataset *d, lt_err *err)
{
	char images[4096];
	snprintf(images, sizeof images, "%s", fixture("slice-images-idx3-ubyte.gz"));
	return lt_dataset_load_idx(images, fixture("slice-labels-idx1-ubyte.gz"), 10, 0, -1, d, err);
}

/* The samples directory: $SAMPLES, $TOP_SRCDIR/samples (make check) or the
 * source tree's samples when run by hand from the top directory. */
static const char *sample(const char *name) __attribute__((unused));
static const char *sample(const char *name)
{
	static char path[4096];
	const char *dir = getenv("SAMPLES"), *top = getenv("TOP_SRCDIR");
	if (dir && *dir)
		snprintf(path, sizeof path, "%s/%s", dir, name);
	else if (top && *top)
		snprintf(path, sizeof path, "%s/samples/%s", top, name);
	else
#ifdef LT_SRCDIR
		snprintf(path, sizeof path, "%s/samples/%s", LT_SRCDIR, name);
#else
		snprintf(path, sizeof path, "samples/%s", name);
#endif
	return path;
}

#endif
