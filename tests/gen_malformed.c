/* gen_malformed DIR: write a corpus of malformed safetensors and IDX files
 * (plus a few valid safetensors files as positive controls) for the loaders'
 * error paths, and DIR/MANIFEST describing each file.
 *
 *   DIR/st_NN_what.safetensors    malformed safetensors
 *   DIR/idx_NN_what.idx[.gz]      malformed IDX (plain or gzip)
 *   DIR/ok_what.safetensors       valid safetensors, written by hand
 *
 * Files are built byte by byte here (not with lt_safetensors_save), so the
 * corpus does not depend on the code it tests. Exit 0, or 1 with a message. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const char *outdir;
static FILE *manifest;
static int n_st, n_idx, n_ok;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "gen_malformed: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		die("out of memory (%zu bytes)", n);
	return p;
}

/* ---- a growable byte buffer ---- */

struct buf {
	uint8_t *p;
	size_t n, cap;
};

static void buf_add(struct buf *b, const void *data, size_t n)
{
	if (b->n + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->n + n)
			cap *= 2;
		uint8_t *p = realloc(b->p, cap);
		if (!p)
			die("out of memory (%zu bytes)", cap);
		b->p = p;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->n, data, n);
	b->n += n;
}

static void buf_fill(struct buf *b, int byte, size_t n)
{
	uint8_t chunk[4096];
	memset(chunk, byte, sizeof chunk);
	while (n) {
		size_t k = n < sizeof chunk ? n : sizeof chunk;
		buf_add(b, chunk, k);
		n -= k;
	}
}

static void buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void buf_le64(struct buf *b, uint64_t v)
{
	uint8_t p[8];
	for (int i = 0; i < 8; i++, v >>= 8)
		p[i] = (uint8_t)(v & 0xff);
	buf_add(b, p, 8);
}

static void buf_be32(struct buf *b, uint32_t v)
{
	uint8_t p[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	buf_add(b, p, 4);
}

/* Deterministic pseudo-random bytes (xorshift), so the corpus is stable. */
static void buf_noise(struct buf *b, size_t n, uint32_t seed)
{
	uint32_t x = seed ? seed : 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		uint8_t c = (uint8_t)(x >> 24);
		buf_add(b, &c, 1);
	}
}

static void buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->n = b->cap = 0;
}

/* ---- output ---- */

static char *path_of(const char *name)
{
	size_t n = strlen(outdir) + strlen(name) + 2;
	char *p = xmalloc(n);
	snprintf(p, n, "%s/%s", outdir, name);
	return p;
}

static void write_file(const char *name, const void *data, size_t n, const char *what)
{
	char *path = path_of(name);
	FILE *f = fopen(path, "wb");
	if (!f)
		die("cannot create %s: %s", path, strerror(errno));
	if ((n && fwrite(data, 1, n, f) != n) || fflush(f) != 0) {
		int e = errno;
		fclose(f);
		die("cannot write %s: %s", path, strerror(e));
	}
	if (fclose(f) != 0)
		die("cannot write %s: %s", path, strerror(errno));
	if (fprintf(manifest, "%s\t%s\n", name, what) < 0)
		die("cannot write MANIFEST: %s", strerror(errno));
	free(path);
}

/* st_NN_slug.safetensors with the given whole-file bytes. */
static void st_bytes(const char *slug, const char *what, const void *data, size_t n)
{
	char name[160];
	snprintf(name, sizeof name, "st_%02d_%s.safetensors", ++n_st, slug);
	write_file(name, data, n, what);
}

/* A safetensors file: le64 hlen_field, hdrlen header bytes, then the data
 * (datalen bytes of noise when data is NULL). */
static void st_raw(const char *slug, const char *what, uint64_t hlen_field,
		   const void *hdr, size_t hdrlen, const void *data, size_t datalen)
{
	struct buf b = {0};
	buf_le64(&b, hlen_field);
	buf_add(&b, hdr, hdrlen);
	if (data)
		buf_add(&b, data, datalen);
	else
		buf_noise(&b, datalen, (uint32_t)(n_st + 17));
	st_bytes(slug, what, b.p, b.n);
	buf_free(&b);
}

/* The usual case: a header string with a correct length field. */
static void st(const char *slug, const char *what, const char *hdr, size_t datalen)
{
	st_raw(slug, what, strlen(hdr), hdr, strlen(hdr), NULL, datalen);
}

static void ok_file(const char *slug, const char *what, const char *hdr,
		    const void *data, size_t datalen)
{
	struct buf b = {0};
	size_t hlen = strlen(hdr), padded = (hlen + 7) & ~(size_t)7;
	buf_le64(&b, padded);
	buf_str(&b, hdr);
	buf_fill(&b, ' ', padded - hlen);
	buf_add(&b, data, datalen);
	char name[160];
	snprintf(name, sizeof name, "ok_%s.safetensors", slug);
	write_file(name, b.p, b.n, what);
	n_ok++;
	buf_free(&b);
}

static void idx_bytes(const char *slug, const char *ext, const char *what,
		      const void *data, size_t n)
{
	char name[160];
	snprintf(name, sizeof name, "idx_%02d_%s.%s", ++n_idx, slug, ext);
	write_file(name, data, n, what);
}

/* Escape s as the inside of a JSON string (quotes and backslashes only:
 * the strings used here hold no control characters). */
static void json_escape(const char *s, char *out, size_t size)
{
	size_t o = 0;
	for (; *s && o + 3 < size; s++) {
		if (*s == '"' || *s == '\\')
			out[o++] = '\\';
		out[o++] = *s;
	}
	out[o] = '\0';
}

/* ---- gzip helpers ---- */

static void gzip_buf(const struct buf *in, struct buf *out)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK)
		die("deflateInit2 failed");
	z.next_in = in->p;
	z.avail_in = (uInt)in->n;
	uint8_t chunk[16384];
	int rc;
	do {
		z.next_out = chunk;
		z.avail_out = sizeof chunk;
		rc = deflate(&z, Z_FINISH);
		if (rc == Z_STREAM_ERROR)
			die("deflate failed");
		buf_add(out, chunk, sizeof chunk - z.avail_out);
	} while (rc != Z_STREAM_END);
	deflateEnd(&z);
}

/* Raw-deflate len bytes with the given flush mode on z, appending to out. */
static void deflate_chunk(z_stream *z, const uint8_t *data, size_t len, int flush, struct buf *out)
{
	uint8_t chunk[16384];
	z->next_in = (uint8_t *)data;
	z->avail_in = (uInt)len;
	do {
		z->next_out = chunk;
		z->avail_out = sizeof chunk;
		if (deflate(z, flush) == Z_STREAM_ERROR)
			die("deflate failed");
		buf_add(out, chunk, sizeof chunk - z->avail_out);
	} while (z->avail_out == 0 || z->avail_in > 0);
}

/* A valid gzip member whose content is `prefix` followed by zeros, total
 * bytes in all, without compressing all of them: each 1 MiB chunk of zeros
 * ends with a full flush (which empties the compressor's history), so every
 * such chunk compresses to the same bytes and is written by copying. The
 * CRC is combined per chunk. */
static void gzip_zero_bomb(const uint8_t *prefix, size_t plen, uint64_t total, struct buf *out)
{
	const size_t CH = 1u << 20;
	uint8_t *zeros = xmalloc(CH);
	memset(zeros, 0, CH);
	if (total % CH || plen > CH || total / CH < 3)
		die("bad bomb size");
	uint64_t nchunks = total / CH;

	z_stream z;
	memset(&z, 0, sizeof z);
	if (deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY) != Z_OK)
		die("deflateInit2 failed");

	/* First chunk: prefix + zeros. */
	uint8_t *first = xmalloc(CH);
	memset(first, 0, CH);
	memcpy(first, prefix, plen);
	struct buf a = {0}, b1 = {0}, b2 = {0}, fin = {0};
	deflate_chunk(&z, first, CH, Z_FULL_FLUSH, &a);
	deflate_chunk(&z, zeros, CH, Z_FULL_FLUSH, &b1);
	deflate_chunk(&z, zeros, CH, Z_FULL_FLUSH, &b2);
	if (b1.n != b2.n || memcmp(b1.p, b2.p, b1.n))
		die("zlib does not repeat its output after a full flush");
	deflate_chunk(&z, NULL, 0, Z_FINISH, &fin);
	deflateEnd(&z);

	static const uint8_t gz_header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 0xff};
	buf_add(out, gz_header, sizeof gz_header);
	buf_add(out, a.p, a.n);
	uLong crc = crc32(0L, first, (uInt)CH);
	uLong crc_zero = crc32(0L, zeros, (uInt)CH);
	for (uint64_t i = 1; i < nchunks; i++) {
		buf_add(out, b1.p, b1.n);
		crc = crc32_combine(crc, crc_zero, (z_off_t)CH);
	}
	buf_add(out, fin.p, fin.n);
	uint8_t trailer[8];
	uint32_t isize = (uint32_t)(total & 0xffffffffu);
	for (int i = 0; i < 4; i++) {
		trailer[i] = (uint8_t)(crc >> (8 * i));
		trailer[4 + i] = (uint8_t)(isize >> (8 * i));
	}
	buf_add(out, trailer, 8);
	buf_free(&a);
	buf_free(&b1);
	buf_free(&b2);
	buf_free(&fin);
	free(first);
	free(zeros);
}

/* ---- the corpus ---- */

#define T1(dt, shp, offs) "{\"t\":{\"dtype\":" dt ",\"shape\":" shp ",\"data_offsets\":" offs "}}"

/* A linear layer's arch JSON wrapped as __metadata__, for the arch cases. */
static void st_arch(const char *slug, const char *what, const char *arch, int with_bias,
		    const char *weight_shape)
{
	char esc[1024], hdr[2048];
	json_escape(arch, esc, sizeof esc);
	size_t wbytes = 10 * 784 * 4;
	if (with_bias)
		snprintf(hdr, sizeof hdr,
			 "{\"__metadata__\":{\"format\":\"pt\",\"lathe.arch\":\"%s\"},"
			 "\"fc1.weight\":{\"dtype\":\"F32\",\"shape\":%s,\"data_offsets\":[0,%zu]},"
			 "\"fc1.bias\":{\"dtype\":\"F32\",\"shape\":[10],\"data_offsets\":[%zu,%zu]}}",
			 esc, weight_shape, wbytes, wbytes, wbytes + 40);
	else
		snprintf(hdr, sizeof hdr,
			 "{\"__metadata__\":{\"format\":\"pt\",\"lathe.arch\":\"%s\"},"
			 "\"fc1.weight\":{\"dtype\":\"F32\",\"shape\":%s,\"data_offsets\":[0,%zu]}}",
			 esc, weight_shape, wbytes);
	/* Small F32 values rather than noise, so only the arch is wrong. */
	size_t n = wbytes + (with_bias ? 40 : 0);
	uint8_t *data = xmalloc(n);
	for (size_t i = 0; i < n / 4; i++) {
		float v = (float)((int)(i % 17) - 8) / 64.0f;
		memcpy(data + 4 * i, &v, 4);
	}
	st_raw(slug, what, strlen(hdr), hdr, strlen(hdr), data, n);
	free(data);
}

static void gen_safetensors(void)
{
	static const char *const good_arch =
		"{\"format\":\"lathe-arch-1\",\"input\":[784],\"layers\":[{\"op\":\"linear\","
		"\"name\":\"fc1\",\"in_features\":784,\"out_features\":10,\"bias\":true}]}";

	/* The length field and framing. */
	st_bytes("empty", "empty file (0 bytes)", "", 0);
	st_bytes("7-bytes", "7-byte file: header length field truncated", "\x10\0\0\0\0\0\0", 7);
	st_bytes("length-only", "8-byte file: header length 16 but no header", "\x10\0\0\0\0\0\0\0", 8);
	st_raw("length-zero", "header length 0", 0, "", 0, NULL, 16);
	st_raw("length-2e63", "header length 2^63", 1ull << 63, "{}", 2, NULL, 0);
	st_raw("length-max", "header length 2^64-1", UINT64_MAX, "{}", 2, NULL, 0);
	st_raw("length-over-cap", "header length 100000001 (just over the 100 MB cap)",
	       100000001ull, "{}", 2, NULL, 0);
	{
		const char *h = T1("\"U8\"", "[4]", "[0,4]");
		st_raw("length-past-eof", "header length 10 bytes longer than the rest of the file",
		       strlen(h) + 10, h, strlen(h), NULL, 4);
	}

	/* JSON well-formedness. */
	st("json-truncated", "header is truncated JSON", "{\"t\":{\"dtype\":\"U8\",\"sha", 0);
	st("json-array", "header is a JSON array, not an object", "[{\"dtype\":\"U8\"}]", 0);
	st("json-string", "header is a JSON string, not an object", "\"weights\"", 0);
	st("json-spaces", "header of only spaces", "                ", 0);
	st("json-duplicate-key", "duplicate tensor name in the header",
	   "{\"t\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
	   "\"t\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]}}", 4);
	st("json-bad-utf8", "invalid UTF-8 (byte 0xff) in a tensor name",
	   "{\"w\xff\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2);
	st("json-overlong-utf8", "overlong UTF-8 encoding of '/' in a metadata value",
	   "{\"__metadata__\":{\"k\":\"\xc0\xaf\"}}", 0);
	{
		const char h[] = "{\"t\":{\"dtype\":\"U8\",\0\"shape\":[2],\"data_offsets\":[0,2]}}";
		st_raw("json-nul-inside", "NUL byte inside the header JSON",
		       sizeof h - 1, h, sizeof h - 1, NULL, 2);
		const char h2[] = "{}\0\0\0\0\0\0";
		st_raw("json-nul-after", "NUL bytes after the header object (jansson treats NUL as end of input)",
		       sizeof h2 - 1, h2, sizeof h2 - 1, NULL, 0);
	}
	st("json-escaped-nul", "\\u0000 escape inside a metadata value",
	   "{\"__metadata__\":{\"k\":\"a\\u0000b\"}}", 0);
	{
		size_t deep = 100000;
		char *h = xmalloc(deep + 1);
		memset(h, '[', deep);
		h[deep] = '\0';
		st("json-deep-nesting", "100000 nested '[' (parser depth bomb)", h, 0);
		free(h);
	}
	st("json-huge-integer", "shape integer larger than 2^64",
	   T1("\"U8\"", "[99999999999999999999999]", "[0,1]"), 1);

	/* Entries. */
	st("entry-not-object", "tensor entry is a JSON array, not an object", "{\"t\":[0,4]}", 4);
	st("entry-empty-name", "tensor with an empty name",
	   "{\"\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2);
	st("entry-missing-dtype", "entry without \"dtype\"", "{\"t\":{\"shape\":[2],\"data_offsets\":[0,2]}}", 2);
	st("entry-missing-shape", "entry without \"shape\"", "{\"t\":{\"dtype\":\"U8\",\"data_offsets\":[0,2]}}", 2);
	st("entry-missing-offsets", "entry without \"data_offsets\"", "{\"t\":{\"dtype\":\"U8\",\"shape\":[2]}}", 2);
	st("entry-unknown-key", "entry with an extra key \"offset\"",
	   "{\"t\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2],\"offset\":0}}", 2);
	st("dtype-unknown", "unknown dtype \"Q4_K\"", T1("\"Q4_K\"", "[2]", "[0,2]"), 2);
	st("dtype-lowercase", "dtype spelled \"f32\" (names are upper case)", T1("\"f32\"", "[1]", "[0,4]"), 4);
	st("dtype-not-string", "dtype is a number", T1("4", "[1]", "[0,4]"), 4);
	st("shape-negative", "negative dimension in shape", T1("\"U8\"", "[-2]", "[0,0]"), 0);
	st("shape-float", "float 2.0 in shape", T1("\"U8\"", "[2.0]", "[0,2]"), 2);
	st("shape-not-array", "shape is a number", T1("\"U8\"", "2", "[0,2]"), 2);
	st("shape-9-dims", "shape with 9 dimensions (limit 8)", T1("\"U8\"", "[1,1,1,1,1,1,1,1,1]", "[0,1]"), 1);
	st("shape-overflow", "shape product 2^96 overflows u64",
	   T1("\"U8\"", "[4294967296,4294967296,4294967296]", "[0,1]"), 1);
	st("shape-bytes-overflow", "2^62 F64 elements: byte size 2^65 overflows u64",
	   T1("\"F64\"", "[1152921504606846976,4]", "[0,8]"), 8);
	st("offsets-reversed", "data_offsets [4, 0] (begin after end)", T1("\"U8\"", "[4]", "[4,0]"), 4);
	st("offsets-negative", "data_offsets [-4, 0]", T1("\"U8\"", "[4]", "[-4,0]"), 4);
	st("offsets-float", "data_offsets with a float", T1("\"U8\"", "[4]", "[0,4.0]"), 4);
	st("offsets-three", "data_offsets with three integers", T1("\"U8\"", "[4]", "[0,4,8]"), 8);
	st("offsets-past-end", "data_offsets end 64 beyond an 8-byte buffer", T1("\"U8\"", "[64]", "[0,64]"), 8);
	st("span-mismatch", "F32 [3] needs 12 bytes but data_offsets span 8", T1("\"F32\"", "[3]", "[0,8]"), 8);

	/* Layout of the buffer. */
	st("overlap", "tensors a [0,8] and b [4,12] overlap",
	   "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
	   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12);
	st("aliased", "two tensors with the same data_offsets",
	   "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
	   "\"b\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
	st("gap", "4 unused bytes between tensors a and b",
	   "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
	   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", 20);
	st("gap-at-start", "first tensor starts at byte 4", T1("\"F32\"", "[1]", "[4,8]"), 8);
	st("trailing-bytes", "16 bytes after the last tensor", T1("\"F32\"", "[2]", "[0,8]"), 24);
	st("no-tensors-trailing", "header {} followed by 8 data bytes", "{}", 8);

	/* Metadata. */
	st("meta-not-object", "__metadata__ is an array", "{\"__metadata__\":[\"format\",\"pt\"]}", 0);
	st("meta-non-string", "__metadata__ value is a number", "{\"__metadata__\":{\"format\":\"pt\",\"epochs\":10}}", 0);
	st("meta-nested-object", "__metadata__ value is an object", "{\"__metadata__\":{\"lathe.arch\":{\"format\":\"lathe-arch-1\"}}}", 0);

	/* Architecture metadata (well-formed safetensors, bad lathe.arch). */
	st_arch("arch-invalid-json", "lathe.arch is not valid JSON (truncated)",
		"{\"format\":\"lathe-arch-1\",\"input\":[784],\"layers\":[{\"op\":\"linear\"", 1, "[10,784]");
	st_arch("arch-missing-tensor", "lathe.arch linear fc1 with bias, but fc1.bias is absent",
		good_arch, 0, "[10,784]");
	st_arch("arch-unknown-op", "lathe.arch layer with unknown op \"transmogrify\"",
		"{\"format\":\"lathe-arch-1\",\"input\":[784],\"layers\":[{\"op\":\"transmogrify\","
		"\"name\":\"fc1\",\"in_features\":784,\"out_features\":10,\"bias\":true}]}", 1, "[10,784]");
	st_arch("arch-wrong-shape", "lathe.arch needs fc1.weight [10, 784] but the file has [784, 10]",
		good_arch, 1, "[784,10]");
	st_arch("arch-bad-format", "lathe.arch with format \"lathe-arch-99\"",
		"{\"format\":\"lathe-arch-99\",\"input\":[784],\"layers\":[{\"op\":\"linear\","
		"\"name\":\"fc1\",\"in_features\":784,\"out_features\":10,\"bias\":true}]}", 1, "[10,784]");
	st_arch("arch-not-object", "lathe.arch is a JSON array", "[1,2,3]", 1, "[10,784]");
}

static void gen_ok(void)
{
	/* Weights only, F32: a 784 -> 10 linear layer. */
	{
		size_t nw = 10 * 784, n = nw + 10;
		float *v = xmalloc(n * sizeof *v);
		for (size_t i = 0; i < n; i++)
			v[i] = (float)((int)(i * 7919 % 201) - 100) / 1000.0f;
		char hdr[512];
		snprintf(hdr, sizeof hdr,
			 "{\"__metadata__\":{\"format\":\"pt\"},"
			 "\"fc1.weight\":{\"dtype\":\"F32\",\"shape\":[10,784],\"data_offsets\":[0,%zu]},"
			 "\"fc1.bias\":{\"dtype\":\"F32\",\"shape\":[10],\"data_offsets\":[%zu,%zu]}}",
			 nw * 4, nw * 4, n * 4);
		ok_file("weights_f32", "valid: weights only, F32 fc1.weight [10,784] and fc1.bias [10]",
			hdr, v, n * 4);

		/* The same with a valid architecture. */
		char esc[1024], hdr2[2048];
		json_escape("{\"format\":\"lathe-arch-1\",\"input\":[784],\"layers\":[{\"op\":\"linear\","
			    "\"name\":\"fc1\",\"in_features\":784,\"out_features\":10,\"bias\":true}]}",
			    esc, sizeof esc);
		snprintf(hdr2, sizeof hdr2,
			 "{\"__metadata__\":{\"format\":\"pt\",\"lathe.arch\":\"%s\"},"
			 "\"fc1.weight\":{\"dtype\":\"F32\",\"shape\":[10,784],\"data_offsets\":[0,%zu]},"
			 "\"fc1.bias\":{\"dtype\":\"F32\",\"shape\":[10],\"data_offsets\":[%zu,%zu]}}",
			 esc, nw * 4, nw * 4, n * 4);
		ok_file("arch_linear", "valid: F32 linear 784 -> 10 with a lathe.arch graph",
			hdr2, v, n * 4);
		free(v);
	}
	/* Mixed dtypes; header order differs from data order. */
	{
		uint8_t d[12 + 8 + 24];
		uint16_t bf[6] = {0x3f80, 0xc000, 0x3f00, 0x0000, 0x8000, 0x4049}; /* 1 -2 .5 0 -0 3.14 */
		uint16_t hf[4] = {0x3c00, 0xbc00, 0x7bff, 0x0001};                 /* 1 -1 65504 2^-24 */
		int64_t iv[3] = {-1, 0, 1ll << 40};
		for (int i = 0; i < 6; i++)
			d[2 * i] = (uint8_t)bf[i], d[2 * i + 1] = (uint8_t)(bf[i] >> 8);
		for (int i = 0; i < 4; i++)
			d[12 + 2 * i] = (uint8_t)hf[i], d[12 + 2 * i + 1] = (uint8_t)(hf[i] >> 8);
		for (int i = 0; i < 3; i++)
			for (int k = 0; k < 8; k++)
				d[20 + 8 * i + k] = (uint8_t)((uint64_t)iv[i] >> (8 * k));
		ok_file("bf16_f16_i64",
			"valid: BF16 [2,3], F16 [4], I64 [3], listed out of data order",
			"{\"steps\":{\"dtype\":\"I64\",\"shape\":[3],\"data_offsets\":[20,44]},"
			"\"b\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,12]},"
			"\"h\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[12,20]},"
			"\"__metadata__\":{\"note\":\"mixed dtypes\"}}",
			d, sizeof d);
	}
	ok_file("no_tensors", "valid: header {} and no tensors", "{}", "", 0);
	ok_file("zero_size", "valid: a zero-size tensor [0,3] next to a U8 scalar",
		"{\"empty\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[1,1]},"
		"\"s\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[0,1]}}", "\x2a", 1);
}

/* IDX header: 0, 0, type, ndim, then big-endian u32 sizes. */
static void idx_header(struct buf *b, uint8_t type, int ndim, const uint32_t *dims)
{
	uint8_t magic[4] = {0, 0, type, (uint8_t)ndim};
	buf_add(b, magic, 4);
	for (int i = 0; i < ndim; i++)
		buf_be32(b, dims[i]);
}

static void gen_idx(void)
{
	struct buf b = {0};
	static const uint32_t img[3] = {100, 28, 28};

	idx_bytes("empty", "idx", "empty file", "", 0);
	idx_bytes("magic-truncated", "idx", "3 bytes: magic number cut short", "\0\0\x08", 3);
	idx_header(&b, 0x08, 1, (uint32_t[]){4});
	b.p[0] = 0x1f;
	buf_add(&b, "\1\2\3\4", 4);
	idx_bytes("nonzero-magic", "idx", "first magic byte is 0x1f, not 0", b.p, b.n);
	buf_free(&b);

	idx_header(&b, 0x0a, 1, (uint32_t[]){4});
	buf_add(&b, "\1\2\3\4", 4);
	idx_bytes("bad-type", "idx", "type code 0x0a (valid: 08 09 0b 0c 0d 0e)", b.p, b.n);
	buf_free(&b);

	idx_header(&b, 0x08, 0, NULL);
	buf_add(&b, "\1", 1);
	idx_bytes("zero-dims", "idx", "0 dimensions", b.p, b.n);
	buf_free(&b);

	{
		uint32_t ones[200];
		for (int i = 0; i < 200; i++)
			ones[i] = 1;
		idx_header(&b, 0x08, 200, ones);
		buf_add(&b, "\1", 1);
		idx_bytes("200-dims", "idx", "200 dimensions of size 1", b.p, b.n);
		buf_free(&b);
	}

	idx_header(&b, 0x08, 1, (uint32_t[]){0});
	b.p[3] = 3; /* claims 3 dims, gives 1 */
	idx_bytes("dims-truncated", "idx", "claims 3 dimensions but the file ends after the first size", b.p, b.n);
	buf_free(&b);

	idx_header(&b, 0x0e, 3, (uint32_t[]){0xffffffffu, 0xffffffffu, 0xffffffffu});
	buf_fill(&b, 0, 64);
	idx_bytes("dims-overflow", "idx", "f64 with dims 2^32-1 x 3: element and byte counts overflow", b.p, b.n);
	buf_free(&b);

	idx_header(&b, 0x08, 3, (uint32_t[]){60000, 60000, 60000});
	buf_fill(&b, 0, 100);
	idx_bytes("huge-dims-tiny-data", "idx", "u8 60000x60000x60000 (2e14 bytes claimed) with 100 data bytes", b.p, b.n);
	buf_free(&b);

	idx_header(&b, 0x08, 3, img);
	buf_noise(&b, 100 * 28 * 28 - 1, 5);
	idx_bytes("data-short", "idx", "u8 100x28x28 one byte short", b.p, b.n);
	buf_free(&b);

	idx_header(&b, 0x0d, 2, (uint32_t[]){10, 3});
	buf_fill(&b, 0, 10 * 3 * 4 + 2);
	idx_bytes("data-trailing", "idx", "f32 10x3 with 2 trailing bytes", b.p, b.n);
	buf_free(&b);

	idx_header(&b, 0x0c, 1, (uint32_t[]){5});
	buf_fill(&b, 0, 5 * 4 - 2);
	idx_bytes("i32-partial-element", "idx", "i32 [5] with 18 data bytes (last element partial)", b.p, b.n);
	buf_free(&b);

	/* gzip cases */
	{
		struct buf raw = {0}, gz = {0};
		idx_header(&raw, 0x08, 3, img);
		buf_noise(&raw, 100 * 28 * 28, 9); /* noise: compresses poorly, so truncation bites */
		gzip_buf(&raw, &gz);
		idx_bytes("gz-truncated", "idx.gz", "valid gzip of u8 100x28x28 cut in the middle of the deflate stream",
			  gz.p, gz.n / 2);
		size_t n = gz.n;
		gz.p[n - 8] ^= 0x55; /* CRC32 is the trailer's first 4 bytes */
		idx_bytes("gz-bad-crc", "idx.gz", "gzip of a valid u8 100x28x28 IDX with a corrupt CRC32", gz.p, n);
		gz.p[n - 8] ^= 0x55;
		gz.p[n - 4] ^= 0x01; /* ISIZE */
		idx_bytes("gz-bad-isize", "idx.gz", "gzip of a valid u8 100x28x28 IDX with a wrong length trailer", gz.p, n);
		buf_free(&gz);

		raw.n -= 10; /* valid gzip, short content */
		gzip_buf(&raw, &gz);
		idx_bytes("gz-data-short", "idx.gz", "valid gzip whose u8 100x28x28 IDX content is 10 bytes short", gz.p, gz.n);
		buf_free(&gz);
		buf_free(&raw);
	}
	idx_bytes("gz-not-gzip", "idx.gz", "plain text with a .gz name", "this is not gzip data\n", 22);
	idx_bytes("gz-empty", "idx.gz", "empty file with a .gz name", "", 0);
	idx_bytes("gz-header-only", "idx.gz", "10-byte gzip header and nothing else",
		  "\x1f\x8b\x08\0\0\0\0\0\0\xff", 10);
	{
		struct buf gz = {0};
		uint8_t hdr[16];
		struct buf h = {0};
		idx_header(&h, 0x08, 3, (uint32_t[]){60000, 28, 28});
		memcpy(hdr, h.p, 16);
		buf_free(&h);
		gzip_zero_bomb(hdr, 16, 3ull << 30, &gz);
		idx_bytes("gz-bomb", "idx.gz",
			  "gzip bomb: header claims u8 60000x28x28 (47 MB) but inflates to 3 GiB", gz.p, gz.n);
		buf_free(&gz);
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: gen_malformed DIR\n");
		return 1;
	}
	outdir = argv[1];
	char *mpath = path_of("MANIFEST");
	manifest = fopen(mpath, "w");
	if (!manifest)
		die("cannot create %s: %s", mpath, strerror(errno));

	gen_safetensors();
	gen_ok();
	gen_idx();

	if (fclose(manifest) != 0)
		die("cannot write %s: %s", mpath, strerror(errno));
	free(mpath);
	if (n_st < 35 || n_idx < 12 || n_ok < 3)
		die("corpus too small (%d safetensors, %d idx, %d valid)", n_st, n_idx, n_ok);
	return 0;
}
