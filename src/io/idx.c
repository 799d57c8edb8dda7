#define ZLIB_CONST
#include "io/idx.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "core/mem.h"

static const struct {
	int code;
	const char *name;
	lt_dtype dtype;
	size_t size;
} idx_types[] = {
	{LT_IDX_U8, "u8", LT_U8, 1},    {LT_IDX_I8, "i8", LT_I8, 1},
	{LT_IDX_I16, "i16", LT_I16, 2}, {LT_IDX_I32, "i32", LT_I32, 4},
	{LT_IDX_F32, "f32", LT_F32, 4}, {LT_IDX_F64, "f64", LT_F64, 8},
};
#define N_TYPES (sizeof idx_types / sizeof idx_types[0])

const char *lt_idx_type_name(int type_code)
{
	for (size_t i = 0; i < N_TYPES; i++)
		if (idx_types[i].code == type_code)
			return idx_types[i].name;
	return "?";
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* "60000x28x28" into buf. */
static const char *dims_str(const lt_idx *x, char *buf, size_t size)
{
	size_t len = 0;
	buf[0] = '\0';
	for (int i = 0; i < x->ndim && len < size; i++) {
		int k = snprintf(buf + len, size - len, "%s%" PRId64, i ? "x" : "", x->dims[i]);
		if (k < 0)
			break;
		len += (size_t)k;
	}
	return buf;
}

/* Bytes 0-3: magic, type code, number of dims. */
static int parse_prefix(const uint8_t *p, lt_idx *x, lt_err *err)
{
	if (p[0] != 0 || p[1] != 0)
		return lt_err_set(err, LT_EFORMAT, "bad magic: first two bytes must be zero");
	size_t t = 0;
	while (t < N_TYPES && idx_types[t].code != p[2])
		t++;
	if (t == N_TYPES)
		return lt_err_set(err, LT_EFORMAT, "unknown element type 0x%02X", p[2]);
	x->type_code = idx_types[t].code;
	x->dtype = idx_types[t].dtype;
	x->elem_size = idx_types[t].size;
	if (p[3] == 0)
		return lt_err_set(err, LT_EFORMAT, "header has 0 dimensions (need 1 to %d)",
				  LT_MAX_DIMS);
	if (p[3] > LT_MAX_DIMS)
		return lt_err_set(err, LT_EFORMAT, "header has %d dimensions (at most %d supported)",
				  p[3], LT_MAX_DIMS);
	x->ndim = p[3];
	return 0;
}

/* The ndim sizes after the prefix; computes the payload size, refusing more
 * than cap bytes (checked before any multiplication can overflow). */
static int parse_dims(const uint8_t *p, uint64_t cap, lt_idx *x, lt_err *err)
{
	int any_zero = 0;
	for (int i = 0; i < x->ndim; i++) {
		x->dims[i] = be32(p + 4 * i);
		any_zero |= x->dims[i] == 0;
	}
	/* The product of the non-zero sizes must fit the cap even when another
	 * size is zero, so that item_numel below cannot overflow either. */
	uint64_t cap_elems = cap / x->elem_size, numel = 1;
	for (int i = 0; i < x->ndim; i++) {
		uint64_t d = (uint64_t)x->dims[i];
		if (d == 0)
			continue;
		if (numel > cap_elems / d) {
			char buf[128];
			return lt_err_set(err, LT_ERANGE,
					  "header says %s %s, which is more than the limit of %" PRIu64 " bytes",
					  dims_str(x, buf, sizeof buf), lt_idx_type_name(x->type_code), cap);
		}
		numel *= d;
	}
	if (any_zero)
		numel = 0;
	x->count = x->dims[0];
	x->item_numel = 1;
	for (int i = 1; i < x->ndim; i++)
		x->item_numel *= x->dims[i]; /* bounded by the check above */
	x->numel = (int64_t)numel;
	x->nbytes = (size_t)(numel * x->elem_size); /* <= cap <= SIZE_MAX */
	return 0;
}

static int size_mismatch(const lt_idx *x, size_t have, lt_err *err)
{
	char buf[128];
	return lt_err_set(err, LT_EFORMAT, "header says %s %s = %zu bytes but file has %zu bytes of data",
			  dims_str(x, buf, sizeof buf), lt_idx_type_name(x->type_code),
			  x->nbytes, have);
}

/* ---- gzip ---- */

struct gz {
	z_stream zs;
	const uint8_t *in;
	size_t size, pos; /* input consumed into zs so far */
	int ended;        /* last member finished and no input left */
};

static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
	(void)opaque;
	return lt_malloc_array(items, size);
}

static void z_free(voidpf opaque, voidpf p)
{
	(void)opaque;
	lt_free(p);
}

/* Inflate up to n bytes into dst; *got says how many came out. Fewer than n
 * only when the stream ended (g->ended). Reads at most n bytes of output, so
 * the caller bounds what a hostile stream can produce. */
static int gz_read(struct gz *g, uint8_t *dst, size_t n, size_t *got, lt_err *err)
{
	size_t done = 0;
	while (done < n && !g->ended) {
		if (g->zs.avail_in == 0 && g->pos < g->size) {
			size_t chunk = g->size - g->pos;
			if (chunk > (size_t)1 << 30)
				chunk = (size_t)1 << 30;
			g->zs.next_in = g->in + g->pos;
			g->zs.avail_in = (uInt)chunk;
			g->pos += chunk;
		}
		size_t want = n - done;
		if (want > (size_t)1 << 30)
			want = (size_t)1 << 30;
		g->zs.next_out = dst + done;
		g->zs.avail_out = (uInt)want;
		int ret = inflate(&g->zs, Z_NO_FLUSH);
		done += want - g->zs.avail_out;
		switch (ret) {
		case Z_OK:
			break;
		case Z_STREAM_END: {
			/* Another gzip member may follow (concatenated files). */
			size_t off = g->pos - g->zs.avail_in;
			if (off == g->size) {
				g->ended = 1;
				break;
			}
			if (off + 1 < g->size && g->in[off] == 0x1f && g->in[off + 1] == 0x8b) {
				if (inflateReset(&g->zs) != Z_OK)
					return lt_err_set(err, LT_EFORMAT, "corrupt gzip data: cannot reset stream");
				break;
			}
			return lt_err_set(err, LT_EFORMAT, "corrupt gzip data: %zu unexpected bytes after the stream",
					  g->size - off);
		}
		case Z_BUF_ERROR:
			if (g->zs.avail_in == 0 && g->pos == g->size)
				return lt_err_set(err, LT_EFORMAT, "truncated gzip stream");
			return lt_err_set(err, LT_EFORMAT, "corrupt gzip data: no progress");
		case Z_MEM_ERROR:
			return lt_err_set(err, LT_ENOMEM, "out of memory while inflating");
		case Z_NEED_DICT:
			return lt_err_set(err, LT_EFORMAT, "corrupt gzip data: needs a preset dictionary");
		default:
			return lt_err_set(err, LT_EFORMAT, "corrupt gzip data: %s",
					  g->zs.msg ? g->zs.msg : "invalid stream");
		}
	}
	*got = done;
	return 0;
}

static int load_gz(const lt_blob *file, uint64_t cap, lt_idx *x, lt_err *err)
{
	struct gz g;
	memset(&g, 0, sizeof g);
	g.in = lt_blob_data(file);
	g.size = lt_blob_size(file);
	g.zs.zalloc = z_alloc;
	g.zs.zfree = z_free;
	uint8_t head[4 + 4 * LT_MAX_DIMS], *buf = NULL;
	size_t got = 0;
	int rc;

	switch (inflateInit2(&g.zs, 15 + 32)) {
	case Z_OK:
		break;
	case Z_MEM_ERROR:
		return lt_err_set(err, LT_ENOMEM, "out of memory");
	default:
		return lt_err_set(err, LT_EFORMAT, "cannot start inflating: %s",
				  g.zs.msg ? g.zs.msg : "zlib error");
	}
	if ((rc = gz_read(&g, head, 4, &got, err)))
		goto fail;
	if (got < 4) {
		rc = lt_err_set(err, LT_EFORMAT, "decompressed data too short for an IDX header (%zu bytes)", got);
		goto fail;
	}
	if ((rc = parse_prefix(head, x, err)))
		goto fail;
	size_t dims_len = 4 * (size_t)x->ndim;
	if ((rc = gz_read(&g, head + 4, dims_len, &got, err)))
		goto fail;
	if (got < dims_len) {
		rc = lt_err_set(err, LT_EFORMAT, "decompressed data ends inside the IDX header (%zu bytes)",
				4 + got);
		goto fail;
	}
	if ((rc = parse_dims(head + 4, cap, x, err)))
		goto fail;
	if (!(buf = lt_malloc(x->nbytes))) {
		rc = lt_err_set(err, LT_ENOMEM, "out of memory for %zu bytes of data", x->nbytes);
		goto fail;
	}
	if ((rc = gz_read(&g, buf, x->nbytes, &got, err)))
		goto fail;
	if (got < x->nbytes) {
		rc = size_mismatch(x, got, err);
		goto fail;
	}
	/* One byte more must not exist; this also reads the gzip trailer, so
	 * the CRC and length are checked. */
	uint8_t extra;
	if ((rc = gz_read(&g, &extra, 1, &got, err)))
		goto fail;
	if (got) {
		char dbuf[128];
		rc = lt_err_set(err, LT_EFORMAT,
				"header says %s %s = %zu bytes but the decompressed file has more data than that",
				dims_str(x, dbuf, sizeof dbuf), lt_idx_type_name(x->type_code), x->nbytes);
		goto fail;
	}
	inflateEnd(&g.zs);
	x->compressed = 1;
	if (!(x->blob = lt_blob_wrap(buf, x->nbytes, err)))
		return LT_ENOMEM; /* buf freed by lt_blob_wrap */
	x->data = lt_blob_data(x->blob);
	return 0;
fail:
	lt_free(buf);
	inflateEnd(&g.zs);
	return rc;
}

static int load_plain(lt_blob *file, uint64_t cap, lt_idx *x, lt_err *err)
{
	const uint8_t *p = lt_blob_data(file);
	size_t size = lt_blob_size(file);
	int rc;
	if (size == 0)
		return lt_err_set(err, LT_EFORMAT, "file is empty");
	if (size < 4)
		return lt_err_set(err, LT_EFORMAT, "file too short for an IDX header (%zu bytes)", size);
	if ((rc = parse_prefix(p, x, err)))
		return rc;
	size_t head = 4 + 4 * (size_t)x->ndim;
	if (size < head)
		return lt_err_set(err, LT_EFORMAT, "file ends inside the IDX header (%zu bytes)", size);
	if ((rc = parse_dims(p + 4, cap, x, err)))
		return rc;
	if (size - head != x->nbytes)
		return size_mismatch(x, size - head, err);
	x->blob = lt_blob_ref(file);
	x->data = p + head;
	return 0;
}

int lt_idx_load(const char *path, size_t max_bytes, lt_idx *out, lt_err *err)
{
	uint64_t cap = max_bytes && max_bytes < LT_IDX_MAX_BYTES ? max_bytes : LT_IDX_MAX_BYTES;
	if (cap > SIZE_MAX)
		cap = SIZE_MAX;
	memset(out, 0, sizeof *out);
	lt_idx x;
	memset(&x, 0, sizeof x);
	lt_blob *file = lt_blob_map_file(path, err);
	if (!file)
		return err ? err->code : LT_EIO;
	const uint8_t *p = lt_blob_data(file);
	int rc;
	if (lt_blob_size(file) >= 2 && p[0] == 0x1f && p[1] == 0x8b)
		rc = load_gz(file, cap, &x, err);
	else
		rc = load_plain(file, cap, &x, err);
	lt_blob_unref(file);
	if (rc)
		return rc;
	*out = x;
	return 0;
}

void lt_idx_release(lt_idx *x)
{
	if (!x)
		return;
	lt_blob_unref(x->blob);
	memset(x, 0, sizeof *x);
}

int lt_idx_get_f32(const lt_idx *x, int64_t first, int64_t n, float *out)
{
	if (first < 0 || n < 0 || first > x->numel || n > x->numel - first)
		return LT_ERANGE;
	const uint8_t *p = x->data + (size_t)first * x->elem_size;
	size_t m = (size_t)n;
	switch (x->type_code) {
	case LT_IDX_U8:
		for (size_t i = 0; i < m; i++)
			out[i] = (float)p[i];
		break;
	case LT_IDX_I8:
		for (size_t i = 0; i < m; i++)
			out[i] = (float)(int8_t)p[i];
		break;
	case LT_IDX_I16:
		for (size_t i = 0; i < m; i++)
			out[i] = (float)(int16_t)(uint16_t)(p[2 * i] << 8 | p[2 * i + 1]);
		break;
	case LT_IDX_I32:
		for (size_t i = 0; i < m; i++)
			out[i] = (float)(int32_t)be32(p + 4 * i);
		break;
	case LT_IDX_F32:
		for (size_t i = 0; i < m; i++) {
			uint32_t u = be32(p + 4 * i);
			memcpy(&out[i], &u, 4);
		}
		break;
	case LT_IDX_F64:
		for (size_t i = 0; i < m; i++) {
			uint64_t u = be64(p + 8 * i);
			double d;
			memcpy(&d, &u, 8);
			out[i] = (float)d;
		}
		break;
	default:
		return LT_EINVAL;
	}
	return 0;
}
