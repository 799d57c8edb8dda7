/* IDX reader: every element type plain and gzip, every malformation, gzip
 * bombs, allocation failures. Files are written into a fresh temp dir. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "core/blob.h"
#include "core/err.h"
#include "core/mem.h"
#include "io/idx.h"
#include "tap.h"
#include "testutil.h"

static char tmpdir[256];

/* ---- building files ---- */

static const char *path_of(const char *name)
{
	static char path[2][512];
	static int which;
	which ^= 1;
	snprintf(path[which], sizeof path[which], "%s/%s", tmpdir, name);
	return path[which];
}

static void write_file(const char *name, const void *data, size_t n)
{
	FILE *f = fopen(path_of(name), "wb");
	if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
		perror(name);
		exit(99);
	}
}

/* gzip-compress data (in one member) into out. */
static void gzip_buf(const void *data, size_t n, int level, struct buf *out)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		abort();
	size_t bound = deflateBound(&z, (uLong)n) + 64;
	uint8_t *tmp = malloc(bound);
	if (!tmp)
		abort();
	z.next_in = (Bytef *)(uintptr_t)data;
	z.avail_in = (uInt)n;
	z.next_out = tmp;
	z.avail_out = (uInt)bound;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END)
		abort();
	put(out, tmp, bound - z.avail_out);
	deflateEnd(&z);
	free(tmp);
}

static void write_gz(const char *name, const void *data, size_t n)
{
	struct buf g = {0};
	gzip_buf(data, n, 6, &g);
	write_file(name, g.p, g.n);
	free(g.p);
}

/* A valid gzip file whose content is prefix followed by mib MiB of zeros,
 * built from one full-flushed deflate chunk repeated, so a multi-GiB stream
 * costs a few MB of disk and no time to make. */
static void write_zero_bomb(const char *name, const struct buf *prefix, long mib)
{
	static uint8_t zeros[1 << 20];
	uint8_t *tmp = malloc(1 << 21);
	struct buf a = {0}, chunk = {0}, out = {0};
	z_stream z;
	memset(&z, 0, sizeof z);
	if (!tmp || deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY) != Z_OK)
		abort();
	struct buf *dst[3] = {&a, &chunk, &out};
	const void *src[3] = {prefix->p, zeros, NULL};
	size_t len[3] = {prefix->n, sizeof zeros, 0};
	int flush[3] = {Z_FULL_FLUSH, Z_FULL_FLUSH, Z_FINISH};
	static const uint8_t gzhead[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
	for (int s = 0; s < 3; s++) {
		z.next_in = (Bytef *)(uintptr_t)src[s];
		z.avail_in = (uInt)len[s];
		z.next_out = tmp;
		z.avail_out = 1 << 21;
		deflate(&z, flush[s]);
		if (z.avail_in != 0)
			abort();
		put(dst[s], tmp, (1 << 21) - z.avail_out);
	}
	deflateEnd(&z);
	uLong crc = crc32(0, prefix->p, (uInt)prefix->n);
	uLong zcrc = crc32(0, zeros, sizeof zeros);
	struct buf file = {0};
	put(&file, gzhead, sizeof gzhead);
	put(&file, a.p, a.n);
	for (long i = 0; i < mib; i++) {
		put(&file, chunk.p, chunk.n);
		crc = crc32_combine(crc, zcrc, sizeof zeros);
	}
	put(&file, out.p, out.n);
	uint32_t isize = (uint32_t)(prefix->n + ((uint64_t)mib << 20));
	uint8_t trailer[8];
	for (int i = 0; i < 4; i++) {
		trailer[i] = (uint8_t)(crc >> (8 * i));
		trailer[4 + i] = (uint8_t)(isize >> (8 * i));
	}
	put(&file, trailer, 8);
	write_file(name, file.p, file.n);
	free(tmp);
	free(a.p);
	free(chunk.p);
	free(out.p);
	free(file.p);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long max_rss_kb(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

/* Load name and expect failure with code; optionally check the message. */
static void expect_fail(const char *name, size_t max_bytes, int code, const char *msg_part,
			const char *what)
{
	lt_idx x;
	lt_err err;
	lt_err_clear(&err);
	memset(&x, 0x55, sizeof x);
	int rc = lt_idx_load(path_of(name), max_bytes, &x, &err);
	int zeroed = x.blob == NULL && x.data == NULL && x.ndim == 0;
	tap_ok(rc == code && err.code == code && zeroed &&
	       (!msg_part || strstr(err.msg, msg_part)) && !strstr(err.msg, tmpdir),
	       "%s: rc %d (want %d), \"%s\"", what, rc, code, err.msg);
	lt_idx_release(&x);
}

/* ---- element types ---- */

struct typecase {
	int code;
	lt_dtype dtype;
	int size;
	const char *name;
	double values[6];
};

static const struct typecase types[] = {
	{LT_IDX_U8, LT_U8, 1, "u8", {0, 1, 127, 128, 200, 255}},
	{LT_IDX_I8, LT_I8, 1, "i8", {0, 1, -1, 127, -128, -5}},
	{LT_IDX_I16, LT_I16, 2, "i16", {0, -1, 32767, -32768, 256, -300}},
	{LT_IDX_I32, LT_I32, 4, "i32", {0, -1, 2147483520.0, -2147483648.0, 65536, -16777216}},
	{LT_IDX_F32, LT_F32, 4, "f32", {0, -0.5, 1.5, 3.4e38, -1e-38, 0.1}},
	{LT_IDX_F64, LT_F64, 8, "f64", {0, -2.25, 1e30, 0.1, -7, 1.0 / 3.0}},
};

static uint64_t encode(const struct typecase *t, double v)
{
	switch (t->code) {
	case LT_IDX_U8:
		return (uint8_t)v;
	case LT_IDX_I8:
		return (uint8_t)(int8_t)v;
	case LT_IDX_I16:
		return (uint16_t)(int16_t)v;
	case LT_IDX_I32:
		return (uint32_t)(int32_t)v;
	case LT_IDX_F32: {
		float f = (float)v;
		uint32_t u;
		memcpy(&u, &f, 4);
		return u;
	}
	default: {
		uint64_t u;
		memcpy(&u, &v, 8);
		return u;
	}
	}
}

static void test_types(void)
{
	for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
		const struct typecase *t = &types[ti];
		tap_ok(strcmp(lt_idx_type_name(t->code), t->name) == 0, "type name %s", t->name);
		/* Shapes: [6], [2,3], [3,1,2]. */
		static const uint32_t shapes[3][3] = {{6}, {2, 3}, {3, 1, 2}};
		for (int s = 0; s < 3; s++) {
			int ndim = s + 1;
			struct buf b = {0};
			put_header(&b, t->code, ndim, shapes[s]);
			size_t head = b.n;
			for (int i = 0; i < 6; i++)
				put_be(&b, encode(t, t->values[i]), t->size);
			for (int gz = 0; gz < 3; gz++) {
				/* gz 2: gzip content under a name without .gz. */
				char name[64];
				snprintf(name, sizeof name, "%s-%dd%s", t->name, ndim,
					 gz == 1 ? ".gz" : gz == 2 ? ".idx" : "");
				if (gz)
					write_gz(name, b.p, b.n);
				else
					write_file(name, b.p, b.n);
				lt_idx x;
				lt_err err;
				lt_err_clear(&err);
				int rc = lt_idx_load(path_of(name), 0, &x, &err);
				if (rc) {
					tap_ok(0, "%s loads: %s", name, err.msg);
					continue;
				}
				int shape_ok = x.ndim == ndim && x.type_code == t->code &&
					       x.dtype == t->dtype && x.elem_size == (size_t)t->size &&
					       x.count == shapes[s][0] && x.numel == 6 &&
					       x.item_numel == 6 / shapes[s][0] &&
					       x.nbytes == (size_t)(6 * t->size) &&
					       x.compressed == (gz != 0);
				for (int i = 0; i < ndim; i++)
					shape_ok &= x.dims[i] == shapes[s][i];
				float out[6];
				int vals_ok = lt_idx_get_f32(&x, 0, 6, out) == 0;
				for (int i = 0; i < 6; i++)
					vals_ok &= out[i] == (float)t->values[i];
				int part_ok = lt_idx_get_f32(&x, 4, 2, out) == 0 &&
					      out[0] == (float)t->values[4] && out[1] == (float)t->values[5];
				int in_place = gz || x.data == lt_blob_data(x.blob) + head;
				int bytes_ok = memcmp(x.data, b.p + head, 6 * (size_t)t->size) == 0;
				tap_ok(shape_ok && vals_ok && part_ok && in_place && bytes_ok,
				       "%s: shape %d, values %d, slice %d, mapped in place %d, bytes %d",
				       name, shape_ok, vals_ok, part_ok, in_place, bytes_ok);
				lt_idx_release(&x);
			}
			free(b.p);
		}
	}
}

static void test_get_f32_range(void)
{
	struct buf b = {0};
	uint32_t dims[2] = {2, 2};
	put_header(&b, LT_IDX_U8, 2, dims);
	put_be(&b, 0x01020304, 4);
	write_file("range", b.p, b.n);
	free(b.p);
	lt_idx x;
	lt_err err;
	if (lt_idx_load(path_of("range"), 0, &x, &err)) {
		tap_ok(0, "range file loads: %s", err.msg);
		return;
	}
	float out[4] = {-1, -1, -1, -1};
	tap_ok(lt_idx_get_f32(&x, 3, 2, out) == LT_ERANGE && out[0] == -1, "get_f32 past the end: ERANGE");
	tap_ok(lt_idx_get_f32(&x, -1, 1, out) == LT_ERANGE, "get_f32 negative first: ERANGE");
	tap_ok(lt_idx_get_f32(&x, 4, 0, out) == 0, "get_f32 empty range at the end: ok");
	tap_ok(lt_idx_get_f32(&x, 1, 3, out) == 0 && out[0] == 2 && out[2] == 4, "get_f32 tail");
	lt_idx_release(&x);
	lt_idx_release(&x); /* zeroed: no-op */
	lt_idx_release(NULL);
	tap_ok(1, "release twice and NULL are no-ops");
}

/* ---- malformations ---- */

static void write_both(const char *name, const struct buf *b)
{
	char gzname[128];
	write_file(name, b->p, b->n);
	snprintf(gzname, sizeof gzname, "%s.gz", name);
	write_gz(gzname, b->p, b->n);
}

static void expect_both(const char *name, int code, const char *msg_part, const char *what)
{
	char gzname[128], gzwhat[128];
	expect_fail(name, 0, code, msg_part, what);
	snprintf(gzname, sizeof gzname, "%s.gz", name);
	snprintf(gzwhat, sizeof gzwhat, "%s (gzip)", what);
	expect_fail(gzname, 0, code, msg_part, gzwhat);
}

static void test_malformed(void)
{
	struct buf b = {0};
	uint32_t dims[9] = {2, 3, 1, 1, 1, 1, 1, 1, 1};

	write_file("empty", "", 0);
	expect_fail("empty", 0, LT_EFORMAT, "empty", "empty file");
	write_gz("empty-content.gz", "", 0);
	expect_fail("empty-content.gz", 0, LT_EFORMAT, "too short for an IDX header",
		    "gzip of nothing");

	write_both("short-head", &(struct buf){(uint8_t *)"\0\0\x08", 3, 3});
	expect_both("short-head", LT_EFORMAT, "too short", "3-byte file");

	b.n = 0;
	put(&b, "\x01\x00\x08\x01", 4);
	put_be(&b, 1, 4);
	put(&b, "x", 1);
	write_both("magic", &b);
	expect_both("magic", LT_EFORMAT, "bad magic: first two bytes must be zero", "bad magic");

	b.n = 0;
	put_header(&b, 0x07, 1, dims);
	put(&b, "xy", 2);
	write_both("type07", &b);
	expect_both("type07", LT_EFORMAT, "unknown element type 0x07", "unknown type");

	b.n = 0;
	put_header(&b, LT_IDX_U8, 0, dims);
	write_both("zero-dims", &b);
	expect_both("zero-dims", LT_EFORMAT, "0 dimensions", "0 dims");

	b.n = 0;
	put_header(&b, LT_IDX_U8, 9, dims);
	put(&b, "123456", 6);
	write_both("nine-dims", &b);
	expect_both("nine-dims", LT_EFORMAT, "9 dimensions", "9 dims");

	b.n = 0;
	put_header(&b, LT_IDX_U8, 2, dims);
	b.n -= 2;
	write_both("cut-head", &b);
	expect_both("cut-head", LT_EFORMAT, "inside the IDX header", "file ends inside the dims");

	/* The exact message callers see for short data. */
	b.n = 0;
	uint32_t mnist[3] = {60000, 28, 28};
	put_header(&b, LT_IDX_U8, 3, mnist);
	for (int i = 0; i < 1000; i++)
		put(&b, "\x7f", 1);
	write_both("short-data", &b);
	expect_both("short-data", LT_EFORMAT,
		    "header says 60000x28x28 u8 = 47040000 bytes but file has 1000 bytes of data",
		    "short data");

	b.n = 0;
	put_header(&b, LT_IDX_I16, 2, dims);
	for (int i = 0; i < 6; i++)
		put_be(&b, (uint64_t)i, 2);
	put(&b, "\0", 1);
	write_file("trailing", b.p, b.n);
	expect_fail("trailing", 0, LT_EFORMAT, "header says 2x3 i16 = 12 bytes but file has 13 bytes",
		    "one trailing byte");
	write_gz("trailing.gz", b.p, b.n);
	expect_fail("trailing.gz", 0, LT_EFORMAT, "more data than that", "one trailing byte (gzip)");
	b.n -= 2;
	write_both("odd-short", &b);
	expect_both("odd-short", LT_EFORMAT, "= 12 bytes but file has 11 bytes", "one byte short");

	/* 65536^4 = 2^64 wraps to 0 in naive arithmetic, which would match the
	 * empty payload. */
	b.n = 0;
	uint32_t wrap[4] = {65536, 65536, 65536, 65536};
	put_header(&b, LT_IDX_U8, 4, wrap);
	write_both("wrap", &b);
	expect_both("wrap", LT_ERANGE, "more than the limit", "dims product wraps 2^64");
	b.n = 0;
	uint32_t huge[8] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu,
			    0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};
	put_header(&b, LT_IDX_F64, 8, huge);
	write_both("huge", &b);
	expect_both("huge", LT_ERANGE, "more than the limit", "8 dims of 2^32-1 f64");
	b.n = 0;
	uint32_t zhuge[3] = {0, 0xffffffffu, 0xffffffffu};
	put_header(&b, LT_IDX_I32, 3, zhuge);
	write_both("zero-huge", &b);
	expect_both("zero-huge", LT_ERANGE, "more than the limit", "0 items of a giant shape");
	b.n = 0;
	uint32_t cap5g[2] = {5, 1u << 30};
	put_header(&b, LT_IDX_U8, 2, cap5g);
	write_both("over-4g", &b);
	expect_both("over-4g", LT_ERANGE, "limit of 4294967296 bytes", "5 GiB over default cap");

	/* Zero items is a valid, empty file. */
	b.n = 0;
	uint32_t none[3] = {0, 28, 28};
	put_header(&b, LT_IDX_U8, 3, none);
	write_both("no-items", &b);
	for (int gz = 0; gz < 2; gz++) {
		lt_idx x;
		lt_err err;
		int rc = lt_idx_load(path_of(gz ? "no-items.gz" : "no-items"), 0, &x, &err);
		tap_ok(rc == 0 && x.count == 0 && x.item_numel == 784 && x.nbytes == 0,
		       "0x28x28 loads as 0 items of 784%s", gz ? " (gzip)" : "");
		if (!rc)
			lt_idx_release(&x);
	}

	/* Caller cap. */
	b.n = 0;
	uint32_t ten[2] = {10, 10};
	put_header(&b, LT_IDX_U8, 2, ten);
	for (int i = 0; i < 100; i++)
		put(&b, "\1", 1);
	write_both("cap", &b);
	expect_fail("cap", 99, LT_ERANGE, "limit of 99 bytes", "100 bytes over a 99-byte cap");
	expect_fail("cap.gz", 99, LT_ERANGE, "limit of 99 bytes", "100 bytes over a 99-byte cap (gzip)");
	lt_idx x;
	lt_err err;
	int rc = lt_idx_load(path_of("cap.gz"), 100, &x, &err);
	tap_ok(rc == 0, "100 bytes under a 100-byte cap");
	if (!rc)
		lt_idx_release(&x);

	expect_fail("does-not-exist", 0, LT_EIO, NULL, "missing file");
	expect_fail("", 0, LT_EIO, "directory", "directory");

	/* ---- gzip damage, on a good file of 2x3 i16 ---- */
	b.n = 0;
	put_header(&b, LT_IDX_I16, 2, dims);
	for (int i = 0; i < 6; i++)
		put_be(&b, (uint64_t)(i * 1000), 2);
	struct buf g = {0};
	gzip_buf(b.p, b.n, 9, &g);
	write_file("cut1.gz", g.p, g.n - 1);
	expect_fail("cut1.gz", 0, LT_EFORMAT, "truncated gzip stream", "gzip missing its last byte");
	write_file("cut8.gz", g.p, g.n - 8);
	expect_fail("cut8.gz", 0, LT_EFORMAT, "truncated gzip stream", "gzip missing its trailer");
	write_file("cut-half.gz", g.p, g.n / 2);
	expect_fail("cut-half.gz", 0, LT_EFORMAT, "truncated gzip stream", "gzip cut in half");
	write_file("cut-magic.gz", g.p, 2);
	expect_fail("cut-magic.gz", 0, LT_EFORMAT, "truncated gzip stream", "gzip magic only");

	uint8_t *bad = malloc(g.n + 4);
	memcpy(bad, g.p, g.n);
	bad[g.n - 8] ^= 0xff; /* CRC */
	write_file("crc.gz", bad, g.n);
	expect_fail("crc.gz", 0, LT_EFORMAT, "corrupt gzip data: incorrect data check", "bad CRC");
	memcpy(bad, g.p, g.n);
	bad[g.n - 4] ^= 0x01; /* ISIZE */
	write_file("isize.gz", bad, g.n);
	expect_fail("isize.gz", 0, LT_EFORMAT, "corrupt gzip data: incorrect length check", "bad length");
	memcpy(bad, g.p, g.n);
	bad[10] = 0xff; /* first deflate block header: reserved block type 3 */
	write_file("body.gz", bad, g.n);
	expect_fail("body.gz", 0, LT_EFORMAT, "corrupt gzip data: ", "corrupt deflate body");
	memcpy(bad, g.p, g.n);
	bad[2] = 7; /* compression method */
	write_file("method.gz", bad, g.n);
	expect_fail("method.gz", 0, LT_EFORMAT, "corrupt gzip data: ", "unknown gzip method");
	memcpy(bad, g.p, g.n);
	memcpy(bad + g.n, "junk", 4);
	write_file("junk.gz", bad, g.n + 4);
	expect_fail("junk.gz", 0, LT_EFORMAT, "4 unexpected bytes after the stream", "junk after gzip");
	free(bad);

	/* Two members (cat a.gz b.gz) are one file. */
	struct buf two = {0};
	gzip_buf(b.p, 7, 6, &two);
	gzip_buf(b.p + 7, b.n - 7, 6, &two);
	write_file("two.gz", two.p, two.n);
	rc = lt_idx_load(path_of("two.gz"), 0, &x, &err);
	float out[6];
	tap_ok(rc == 0 && lt_idx_get_f32(&x, 0, 6, out) == 0 && out[5] == 5000,
	       "two concatenated gzip members load as one file");
	if (!rc)
		lt_idx_release(&x);
	free(two.p);
	free(g.p);
	free(b.p);
}

/* ---- gzip bombs ---- */

static void test_bombs(void)
{
	struct buf b = {0};
	/* The builder itself: 2 MiB of zeros loads when the header says so. */
	uint32_t ok_dims[3] = {2, 1024, 1024};
	put_header(&b, LT_IDX_U8, 3, ok_dims);
	write_zero_bomb("zeros2m.gz", &b, 2);
	lt_idx x;
	lt_err err;
	int rc = lt_idx_load(path_of("zeros2m.gz"), 0, &x, &err);
	int zeros = rc == 0 && x.nbytes == 2 << 20;
	for (size_t i = 0; zeros && i < x.nbytes; i++)
		zeros &= x.data[i] == 0;
	tap_ok(zeros, "repeated-chunk gzip of 2 MiB zeros is valid: %s", rc ? err.msg : "ok");
	if (!rc)
		lt_idx_release(&x);

	/* 4 GiB of zeros behind headers claiming 10 bytes and 1 MiB. */
	static const uint32_t claims[2][2] = {{1, 10}, {1024, 1024}};
	static const char *const names[2] = {"bomb10.gz", "bomb1m.gz"};
	for (int c = 0; c < 2; c++) {
		b.n = 0;
		put_header(&b, LT_IDX_U8, 2, claims[c]);
		write_zero_bomb(names[c], &b, 4096);
	}
	for (int c = 0; c < 2; c++) {
		struct stat st;
		stat(path_of(names[c]), &st);
		double t0 = now();
		lt_mem_fail_after(-1);
		rc = lt_idx_load(path_of(names[c]), 0, &x, &err);
		double dt = now() - t0;
		long allocs = lt_mem_fail_after(-1);
		tap_ok(rc == LT_EFORMAT && strstr(err.msg, "more data than that"),
		       "bomb (%lld-byte file, 4 GiB inflated) claiming %ux%u u8: \"%s\"",
		       (long long)st.st_size, claims[c][0], claims[c][1], err.msg);
		tap_ok(dt < 0.5, "bomb rejected in %.3f s", dt);
		tap_ok(allocs <= 8, "bomb: %ld allocations", allocs);
	}
	/* Peak memory of the loads alone: a child's peak starts at its RSS at
	 * fork, so the builder's buffers above do not hide anything. */
	int fds[2];
	long grew = -1;
	if (pipe(fds) == 0) {
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0) {
			long rss0 = max_rss_kb();
			for (int c = 0; c < 2; c++)
				if (lt_idx_load(path_of(names[c]), 0, &x, NULL) == 0)
					lt_idx_release(&x);
			long d = max_rss_kb() - rss0;
			_exit(write(fds[1], &d, sizeof d) == sizeof d ? 0 : 1);
		}
		close(fds[1]);
		if (pid > 0 && read(fds[0], &grew, sizeof grew) != sizeof grew)
			grew = -1;
		close(fds[0]);
		if (pid > 0)
			waitpid(pid, NULL, 0);
	}
	tap_ok(grew >= 0 && grew < 16 * 1024, "peak memory grew by %ld KiB loading 4 GiB bombs", grew);

	/* A header over the cap is refused before anything is inflated. */
	b.n = 0;
	uint32_t big[2] = {4096, 1 << 20};
	put_header(&b, LT_IDX_U8, 2, big);
	write_zero_bomb("bomb-cap.gz", &b, 64);
	expect_fail("bomb-cap.gz", 1 << 20, LT_ERANGE, "limit of 1048576 bytes",
		    "bomb whose header claims 4 GiB, cap 1 MiB");
	free(b.p);
}

/* ---- allocation failures ---- */

static void sweep(const char *name, int want_rc)
{
	long n;
	int bad_code = 0, done = 0;
	for (n = 0; n < 1000 && !done; n++) {
		lt_idx x;
		lt_err err;
		lt_err_clear(&err);
		lt_mem_fail_after(n);
		int rc = lt_idx_load(path_of(name), 0, &x, &err);
		long made = lt_mem_fail_after(-1);
		if (made <= n) {
			/* No allocation failed: the real outcome. */
			done = 1;
			bad_code |= rc != want_rc;
		} else if (rc != LT_ENOMEM && rc != want_rc) {
			bad_code = 1;
			tap_diag("%s: failing allocation %ld gave %d: %s", name, n, rc, err.msg);
		}
		if (rc == 0)
			lt_idx_release(&x);
	}
	tap_ok(done && !bad_code, "allocation sweep over %s: %ld sites, each ENOMEM", name, n - 1);
}

int main(void)
{
	const char *base = getenv("TMPDIR");
	snprintf(tmpdir, sizeof tmpdir, "%s/t_idx.XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 99;
	}
	test_bombs();
	test_types();
	test_get_f32_range();
	test_malformed();
	sweep("u8-3d", 0);
	sweep("f64-2d.gz", 0);
	sweep("i32-1d.idx", 0);
	sweep("short-data.gz", LT_EFORMAT);
	sweep("trailing.gz", LT_EFORMAT);

	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		tap_diag("could not remove %s", tmpdir);
	return tap_done();
}
