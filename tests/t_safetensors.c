/* Tests for src/io/safetensors: round trips, lazy conversion, strict
 * validation, atomic saving, allocation-failure sweeps. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/model.h"
#include "core/tensor.h"
#include "io/safetensors.h"
#include "tap.h"

static char tmpdir[4096];

/* ---- helpers ---- */

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		p[i] = (uint8_t)(v & 0xff);
}

/* A blob holding: le64 hlen_field, the header bytes (hdrlen of them), then
 * datalen bytes of data (copied from data, or a 0,1,2,... pattern). */
static lt_blob *raw_blob(uint64_t hlen_field, const char *hdr, size_t hdrlen,
			 const void *data, size_t datalen)
{
	size_t n = 8 + hdrlen + datalen;
	uint8_t *p = lt_malloc(n);
	if (!p)
		abort();
	put_le64(p, hlen_field);
	memcpy(p + 8, hdr, hdrlen);
	for (size_t i = 0; i < datalen; i++)
		p[8 + hdrlen + i] = data ? ((const uint8_t *)data)[i] : (uint8_t)i;
	lt_blob *b = lt_blob_wrap(p, n, NULL);
	if (!b)
		abort();
	return b;
}

static lt_blob *st_blob(const char *hdr, const void *data, size_t datalen)
{
	return raw_blob(strlen(hdr), hdr, strlen(hdr), data, datalen);
}

/* Blob of exactly n arbitrary bytes. */
static lt_blob *bytes_blob(const void *data, size_t n)
{
	uint8_t *p = lt_malloc(n);
	if (!p)
		abort();
	if (n)
		memcpy(p, data, n);
	return lt_blob_wrap(p, n, NULL);
}

/* Parse must fail with LT_EFORMAT and a message containing want. Takes the
 * blob's reference. */
static void expect_reject(const char *what, lt_blob *b, const char *want)
{
	lt_err err;
	lt_err_clear(&err);
	lt_model *m = lt_safetensors_parse(b, &err);
	lt_blob_unref(b);
	int good = !m && err.code == LT_EFORMAT && strstr(err.msg, want) != NULL;
	tap_ok(good, "reject %s: %s", what, err.msg);
	if (!good)
		tap_diag("expected a message containing '%s' (code %d)", want, err.code);
	lt_model_unref(m);
}

static lt_model *expect_accept(const char *what, lt_blob *b)
{
	lt_err err;
	lt_err_clear(&err);
	lt_model *m = lt_safetensors_parse(b, &err);
	lt_blob_unref(b);
	tap_ok(m != NULL, "accept %s%s%s", what, m ? "" : ": ", m ? "" : err.msg);
	return m;
}

static int shape_is(const lt_tensor *t, int ndim, const int64_t *shape)
{
	if (lt_tensor_ndim(t) != ndim)
		return 0;
	for (int i = 0; i < ndim; i++)
		if (lt_tensor_shape(t)[i] != shape[i])
			return 0;
	return 1;
}

static char *path_in(const char *name)
{
	static char buf[8][4200];
	static int k;
	char *p = buf[k++ % 8];
	snprintf(p, sizeof buf[0], "%s/%s", tmpdir, name);
	return p;
}

static unsigned char *read_file(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	fseek(f, 0, SEEK_SET);
	unsigned char *p = malloc(size > 0 ? (size_t)size : 1);
	if (p && fread(p, 1, (size_t)size, f) != (size_t)size) {
		free(p);
		p = NULL;
	}
	fclose(f);
	*n = (size_t)size;
	return p;
}

/* Names in tmpdir other than the ones expected; -1 if unreadable. */
static int stray_files(const char *const *expected, int n_expected)
{
	DIR *d = opendir(tmpdir);
	if (!d)
		return -1;
	int stray = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		int known = 0;
		for (int i = 0; i < n_expected; i++)
			known |= !strcmp(e->d_name, expected[i]);
		if (!known) {
			tap_diag("stray file %s", e->d_name);
			stray++;
		}
	}
	closedir(d);
	return stray;
}

/* ---- a model with one tensor of every dtype ---- */

static const int64_t rt_shapes[LT_DTYPE_COUNT][3] = {
	{2, 3}, {3}, {4, 1}, {5}, {2}, {1, 1}, {3}, {7}, {0, 4}, {6},
};
static const int rt_ndims[LT_DTYPE_COUNT] = {2, 1, 2, 1, 1, 2, 1, 1, 2, 1};

static lt_model *every_dtype_model(void)
{
	lt_err err;
	lt_model *m = lt_model_new(&err);
	if (!m)
		abort();
	for (int d = 0; d < LT_DTYPE_COUNT; d++) {
		int64_t numel = 1;
		for (int i = 0; i < rt_ndims[d]; i++)
			numel *= rt_shapes[d][i];
		size_t nb = (size_t)numel * lt_dtype_size((lt_dtype)d);
		uint8_t *bytes = lt_malloc(nb);
		for (size_t i = 0; i < nb; i++)
			bytes[i] = (uint8_t)(31 * d + 7 * i + 1);
		lt_blob *b = lt_blob_wrap(bytes, nb, &err);
		char name[32];
		snprintf(name, sizeof name, "t_%s", lt_dtype_name((lt_dtype)d));
		lt_tensor *t = lt_tensor_from_bytes((lt_dtype)d, rt_ndims[d], rt_shapes[d], b, bytes, &err);
		if (!t || lt_model_add_tensor(m, name, t, &err))
			abort();
		lt_tensor_unref(t);
		lt_blob_unref(b);
	}
	/* A scalar too. */
	int64_t none[1] = {0};
	lt_tensor *s = lt_tensor_new(0, none, &err);
	lt_tensor_data_mut(s, &err)[0] = 2.5f;
	lt_model_add_tensor(m, "scalar", s, &err);
	lt_tensor_unref(s);
	lt_model_set_meta(m, "format", "pt", &err);
	lt_model_set_meta(m, "note", "caf\xc3\xa9 \"quoted\"\n\\", &err);
	lt_model_set_meta(m, "empty", "", &err);
	return m;
}

static int models_equal(const lt_model *a, const lt_model *b)
{
	if (lt_model_tensor_count(a) != lt_model_tensor_count(b) ||
	    lt_model_meta_count(a) != lt_model_meta_count(b))
		return 0;
	for (size_t i = 0; i < lt_model_tensor_count(a); i++) {
		const lt_tensor *x = lt_model_tensor_at(a, i), *y = lt_model_tensor_at(b, i);
		if (strcmp(lt_model_tensor_name(a, i), lt_model_tensor_name(b, i)) ||
		    lt_tensor_dtype(x) != lt_tensor_dtype(y) ||
		    !shape_is(y, lt_tensor_ndim(x), lt_tensor_shape(x)) ||
		    lt_tensor_nbytes(x) != lt_tensor_nbytes(y) ||
		    memcmp(lt_tensor_raw(x), lt_tensor_raw(y), lt_tensor_nbytes(x)))
			return 0;
	}
	for (size_t i = 0; i < lt_model_meta_count(a); i++) {
		const char *v = lt_model_meta(b, lt_model_meta_key(a, i));
		if (!v || strcmp(v, lt_model_meta_value(a, i)))
			return 0;
	}
	return 1;
}

/* ---- tests ---- */

static void test_round_trip(void)
{
	lt_err err;
	lt_model *m = every_dtype_model();
	const char *path = path_in("rt.safetensors");
	umask(022);
	int rc = lt_safetensors_save(m, path, &err);
	tap_ok(rc == 0, "save every dtype%s%s", rc ? ": " : "", rc ? err.msg : "");

	struct stat st = {0};
	stat(path, &st);
	tap_ok((st.st_mode & 07777) == 0644,
	       "new file gets 0644 under umask 022 (got %o)", (unsigned)(st.st_mode & 07777));

	size_t n;
	unsigned char *raw = read_file(path, &n);
	uint64_t hlen = 0;
	for (int i = 7; raw && i >= 0; i--)
		hlen = hlen << 8 | raw[i];
	tap_ok(raw && hlen % 8 == 0 && 8 + hlen + lt_model_nbytes(m) == n,
	       "header padded to a multiple of 8 (%llu), data contiguous", (unsigned long long)hlen);
	tap_ok(raw && raw[8] == '{' && (raw[8 + hlen - 1] == '}' || raw[8 + hlen - 1] == ' '),
	       "header is a JSON object padded with spaces");
	free(raw);

	lt_model *back = lt_safetensors_load(path, &err);
	tap_ok(back != NULL, "load it back%s%s", back ? "" : ": ", back ? "" : err.msg);
	tap_ok(back && models_equal(m, back), "same names, order, dtypes, shapes, bytes, metadata");
	tap_ok(back && lt_model_graph(back) == NULL, "load does not build a graph");
	tap_ok(back && lt_model_meta_count(back) == 3 && !strcmp(lt_model_meta_key(back, 0), "format"),
	       "metadata kept in order");

	/* Saving over the file the model is mapped from must work: the old
	 * mapping survives the rename. */
	rc = back ? lt_safetensors_save(back, path, &err) : -1;
	tap_ok(rc == 0, "save a loaded model over its own file");
	lt_model *again = lt_safetensors_load(path, &err);
	tap_ok(again && back && models_equal(back, again) && models_equal(m, again),
	       "re-saved file is identical in content");

	/* Existing permissions are kept. */
	chmod(path, 0600);
	rc = lt_safetensors_save(m, path, &err);
	st.st_mode = 0;
	stat(path, &st);
	tap_ok(rc == 0 && (st.st_mode & 07777) == 0600,
	       "existing file keeps mode 0600 (got %o)", (unsigned)(st.st_mode & 07777));
	umask(027);
	const char *p2 = path_in("rt2.safetensors");
	rc = lt_safetensors_save(m, p2, &err);
	st.st_mode = 0;
	stat(p2, &st);
	tap_ok(rc == 0 && (st.st_mode & 07777) == 0640,
	       "new file gets 0640 under umask 027 (got %o)", (unsigned)(st.st_mode & 07777));
	umask(022);
	unlink(p2);

	/* A bare file name saves into the current directory. */
	char cwd[4096];
	if (getcwd(cwd, sizeof cwd) && chdir(tmpdir) == 0) {
		rc = lt_safetensors_save(m, "rel.safetensors", &err);
		tap_ok(rc == 0 && access("rel.safetensors", F_OK) == 0, "save to a bare file name");
		unlink("rel.safetensors");
		if (chdir(cwd) != 0)
			tap_diag("cannot return to %s", cwd);
	}

	/* Empty model. */
	lt_model *empty = lt_model_new(&err);
	const char *p3 = path_in("empty.safetensors");
	rc = lt_safetensors_save(empty, p3, &err);
	raw = read_file(p3, &n);
	tap_ok(rc == 0 && raw && n == 16 && !memcmp(raw + 8, "{}      ", 8),
	       "empty model saves as '{}' padded to 8 bytes");
	free(raw);
	lt_model *eback = lt_safetensors_load(p3, &err);
	tap_ok(eback && lt_model_tensor_count(eback) == 0 && lt_model_meta_count(eback) == 0,
	       "empty model loads back");
	unlink(p3);

	lt_model_unref(eback);
	lt_model_unref(empty);
	lt_model_unref(again);
	lt_model_unref(back);
	lt_model_unref(m);
	unlink(path);
}

static void test_bad_names_on_save(void)
{
	lt_err err;
	const char *path = path_in("names.safetensors");
	static const char *bad[] = {"", "__metadata__", "bad\xff" "name", "over\xc0\xafong"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		lt_model *m = lt_model_new(&err);
		int64_t shape[1] = {2};
		lt_tensor *t = lt_tensor_new(1, shape, &err);
		lt_model_add_tensor(m, bad[i], t, &err);
		lt_tensor_unref(t);
		int rc = lt_safetensors_save(m, path, &err);
		tap_ok(rc == LT_EINVAL && access(path, F_OK) != 0,
		       "save refuses tensor name #%zu: %s", i, err.msg);
		lt_model_unref(m);
	}
	lt_model *m = lt_model_new(&err);
	lt_model_set_meta(m, "k", "v\xed\xa0\x80", &err); /* a surrogate */
	int rc = lt_safetensors_save(m, path, &err);
	tap_ok(rc == LT_EINVAL && access(path, F_OK) != 0, "save refuses invalid UTF-8 metadata: %s", err.msg);
	lt_model_unref(m);
	tap_ok(stray_files(NULL, 0) == 0, "no temporary files left behind");
}

static void test_lazy_values(void)
{
	/* F16: 1, -2, 0.5, 65504; BF16: 1, -3; F64: 1.5, -2.25; I32: -7, 100000;
	 * U8: 0, 255; BOOL: 0, 1, 2; I64: -5; I16: -300; I8: -128. */
	uint8_t data[64];
	size_t o = 0;
	uint16_t f16[4] = {0x3c00, 0xc000, 0x3800, 0x7bff};
	for (int i = 0; i < 4; i++, o += 2)
		data[o] = (uint8_t)(f16[i] & 0xff), data[o + 1] = (uint8_t)(f16[i] >> 8);
	uint16_t bf[2] = {0x3f80, 0xc040};
	for (int i = 0; i < 2; i++, o += 2)
		data[o] = (uint8_t)(bf[i] & 0xff), data[o + 1] = (uint8_t)(bf[i] >> 8);
	double f64[2] = {1.5, -2.25};
	memcpy(data + o, f64, 16), o += 16;                 /* test hosts are little-endian */
	int32_t i32[2] = {-7, 100000};
	memcpy(data + o, i32, 8), o += 8;
	data[o++] = 0, data[o++] = 255;                     /* U8 */
	data[o++] = 0, data[o++] = 1, data[o++] = 2;        /* BOOL */
	int64_t i64 = -5;
	memcpy(data + o, &i64, 8), o += 8;
	int16_t i16 = -300;
	memcpy(data + o, &i16, 2), o += 2;
	data[o++] = 0x80;                                   /* I8 */
	tap_ok(o == 52, "sample buffer is %zu bytes", o);
	const char *hdr =
		"{\"h\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]},"
		"\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[8,12]},"
		"\"d\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[12,28]},"
		"\"i\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[28,36]},"
		"\"u\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[36,38]},"
		"\"z\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[38,41]},"
		"\"l\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[41,49]},"
		"\"s\":{\"dtype\":\"I16\",\"shape\":[],\"data_offsets\":[49,51]},"
		"\"c\":{\"dtype\":\"I8\",\"shape\":[1,1],\"data_offsets\":[51,52]}}";
	lt_model *m = expect_accept("one tensor per dtype", st_blob(hdr, data, 52));
	if (!m)
		return;
	static const struct {
		const char *name;
		int n;
		float v[4];
	} want[] = {
		{"h", 4, {1, -2, 0.5f, 65504}}, {"b", 2, {1, -3}}, {"d", 2, {1.5f, -2.25f}},
		{"i", 2, {-7, 100000}}, {"u", 2, {0, 255}}, {"z", 3, {0, 1, 1}},
		{"l", 1, {-5}}, {"s", 1, {-300}}, {"c", 1, {-128}},
	};
	for (size_t k = 0; k < sizeof want / sizeof *want; k++) {
		lt_err err;
		lt_tensor *t = lt_model_tensor(m, want[k].name);
		const float *f = t ? lt_tensor_data(t, &err) : NULL;
		int good = f && lt_tensor_numel(t) == want[k].n;
		for (int i = 0; good && i < want[k].n; i++)
			good = f[i] == want[k].v[i];
		tap_ok(good, "%s tensor '%s' converts to the right f32 values",
		       t ? lt_dtype_name(lt_tensor_dtype(t)) : "?", want[k].name);
	}
	tap_ok(!strcmp(lt_model_tensor_name(m, 0), "h") && !strcmp(lt_model_tensor_name(m, 8), "c"),
	       "tensors in data-offset order");
	lt_model_unref(m);
}

static void test_accept(void)
{
	lt_model *m;
	m = expect_accept("no tensors", st_blob("{}", NULL, 0));
	tap_ok(m && lt_model_tensor_count(m) == 0, "'{}' has no tensors");
	lt_model_unref(m);

	m = expect_accept("metadata only", st_blob("{\"__metadata__\":{\"a\":\"1\",\"b\":\"\"}}", NULL, 0));
	tap_ok(m && lt_model_tensor_count(m) == 0 && lt_model_meta_count(m) == 2 &&
	       !strcmp(lt_model_meta(m, "a"), "1"), "__metadata__ is metadata, not a tensor");
	lt_model_unref(m);

	m = expect_accept("header padded with spaces",
			  st_blob("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}   ", NULL, 4));
	lt_model_unref(m);

	m = expect_accept("zero-size tensors",
			  st_blob("{\"e\":{\"dtype\":\"F32\",\"shape\":[2,0],\"data_offsets\":[2,2]},"
				  "\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
				  "\"z\":{\"dtype\":\"F64\",\"shape\":[0],\"data_offsets\":[0,0]}}", NULL, 2));
	tap_ok(m && lt_model_tensor_count(m) == 3 && !strcmp(lt_model_tensor_name(m, 0), "z") &&
	       !strcmp(lt_model_tensor_name(m, 1), "a") && !strcmp(lt_model_tensor_name(m, 2), "e") &&
	       lt_tensor_numel(lt_model_tensor(m, "e")) == 0, "zero-size tensors sort by offset");
	lt_model_unref(m);

	/* The blob may be dropped by the caller; tensors keep it alive. */
	lt_blob *b = st_blob("{\"x\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "\x2a\0\0\0", 4);
	lt_blob_ref(b);
	m = expect_accept("a blob the caller releases", b);
	lt_blob_unref(b);
	lt_err err;
	const float *f = m ? lt_tensor_data(lt_model_tensor(m, "x"), &err) : NULL;
	tap_ok(f && f[0] == 42.0f, "tensor keeps the blob alive");
	lt_model_unref(m);

	m = expect_accept("UTF-8 names", st_blob("{\"\xce\xbb.w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", NULL, 1));
	tap_ok(m && lt_model_tensor(m, "\xce\xbb.w"), "UTF-8 tensor name kept");
	lt_model_unref(m);
}

#define T1(dt, shp, offs) "{\"t\":{\"dtype\":" dt ",\"shape\":" shp ",\"data_offsets\":" offs "}}"

static void test_reject(void)
{
	uint8_t junk[16] = {0};
	expect_reject("empty file", bytes_blob(junk, 0), "too short");
	expect_reject("7-byte file", bytes_blob(junk, 7), "too short");
	expect_reject("header length 0", raw_blob(0, "", 0, NULL, 10), "header length is 0");
	{
		static const char text[] = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin\n";
		expect_reject("a text file", bytes_blob((const uint8_t *)text, sizeof text - 1),
			      "not a safetensors file");
	}
	expect_reject("header length 2^63", raw_blob(1ull << 63, "{}", 2, NULL, 0), "exceeds the limit");
	expect_reject("header length over the cap",
		      raw_blob(LT_SAFETENSORS_MAX_HEADER + 1ull, "{}", 2, NULL, 0), "exceeds the limit");
	expect_reject("header longer than the file", raw_blob(100, "{}", 2, NULL, 10), "that follow it");
	expect_reject("truncated JSON", st_blob("{\"t\":", NULL, 0), "not valid JSON");
	expect_reject("header of spaces", st_blob("        ", NULL, 0), "not valid JSON");
	expect_reject("JSON array", st_blob("[1,2]", NULL, 0), "not a JSON object");
	expect_reject("JSON string", st_blob("\"x\"", NULL, 0), "not a JSON object");
	expect_reject("duplicate key",
		      st_blob("{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
			      "\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", NULL, 2),
		      "duplicate");
	expect_reject("invalid UTF-8", st_blob("{\"t\xff\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", NULL, 1),
		      "not valid JSON");
	expect_reject("overlong UTF-8", st_blob("{\"__metadata__\":{\"k\":\"\xc0\xaf\"}}", NULL, 0),
		      "not valid JSON");
	{
		const char h[] = "{\"__metadata__\":{\"k\":\"v\"}}\0   ";
		expect_reject("NUL after the object", raw_blob(sizeof h - 1, h, sizeof h - 1, NULL, 0), "NUL");
		const char h2[] = "{\"__metadata__\":{\"k\":\"a\0b\"}}";
		expect_reject("NUL inside a string", raw_blob(sizeof h2 - 1, h2, sizeof h2 - 1, NULL, 0), "NUL");
	}
	expect_reject("control byte in a string", st_blob("{\"k\":\"\x1b[2J\"}", NULL, 0),
		      "control character 0x1b");
	expect_reject("escaped NUL in a string", st_blob("{\"__metadata__\":{\"k\":\"a\\u0000b\"}}", NULL, 0),
		      "not valid JSON");
	{
		size_t deep = 100000;
		char *h = malloc(deep + 1);
		memset(h, '[', deep);
		h[deep] = '\0';
		expect_reject("100000 nested arrays", st_blob(h, NULL, 0), "not valid JSON");
		memset(h, '{', 1);
		for (size_t i = 1; i + 6 < deep; i += 6)
			memcpy(h + i, "\"a\":[{", 6);
		expect_reject("deeply nested objects", st_blob(h, NULL, 0), "not valid JSON");
		free(h);
	}
	expect_reject("entry not an object", st_blob("{\"t\":[1,2]}", NULL, 0), "entry is not a JSON object");
	expect_reject("entry is null", st_blob("{\"t\":null}", NULL, 0), "entry is not a JSON object");
	expect_reject("unknown key",
		      st_blob("{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"offset\":0}}", NULL, 1),
		      "unknown key 'offset'");
	expect_reject("missing dtype", st_blob("{\"t\":{\"shape\":[1],\"data_offsets\":[0,1]}}", NULL, 1),
		      "missing \"dtype\"");
	expect_reject("missing shape", st_blob("{\"t\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", NULL, 1),
		      "missing \"shape\"");
	expect_reject("missing data_offsets", st_blob("{\"t\":{\"dtype\":\"U8\",\"shape\":[1]}}", NULL, 1),
		      "missing \"data_offsets\"");
	expect_reject("unknown dtype", st_blob(T1("\"Q4_K\"", "[1]", "[0,1]"), NULL, 1),
		      "unknown dtype 'Q4_K'");
	expect_reject("lowercase dtype", st_blob(T1("\"f32\"", "[1]", "[0,4]"), NULL, 4), "unknown dtype 'f32'");
	expect_reject("dtype not a string", st_blob(T1("4", "[1]", "[0,4]"), NULL, 4), "dtype is not a string");
	expect_reject("shape not an array", st_blob(T1("\"U8\"", "4", "[0,4]"), NULL, 4), "shape is not an array");
	expect_reject("negative shape", st_blob(T1("\"U8\"", "[-1]", "[0,0]"), NULL, 0), "shape[0] is not a non-negative");
	expect_reject("float in shape", st_blob(T1("\"U8\"", "[2,1.0]", "[0,2]"), NULL, 2), "shape[1] is not a non-negative");
	expect_reject("string in shape", st_blob(T1("\"U8\"", "[\"2\"]", "[0,2]"), NULL, 2), "shape[0] is not a non-negative");
	expect_reject("9 dimensions", st_blob(T1("\"U8\"", "[1,1,1,1,1,1,1,1,1]", "[0,1]"), NULL, 1),
		      "9 dimensions");
	expect_reject("shape product overflows",
		      st_blob(T1("\"U8\"", "[4294967296,4294967296,4294967296]", "[0,1]"), NULL, 1), "too large");
	expect_reject("byte size overflows",
		      st_blob(T1("\"F64\"", "[1152921504606846976,4]", "[0,1]"), NULL, 1), "overflows");
	expect_reject("huge integer", st_blob(T1("\"U8\"", "[99999999999999999999]", "[0,1]"), NULL, 1),
		      "not valid JSON");
	expect_reject("offsets not an array", st_blob(T1("\"U8\"", "[1]", "0"), NULL, 1), "two integers");
	expect_reject("three offsets", st_blob(T1("\"U8\"", "[1]", "[0,1,2]"), NULL, 1), "two integers");
	expect_reject("one offset", st_blob(T1("\"U8\"", "[1]", "[0]"), NULL, 1), "two integers");
	expect_reject("float offset", st_blob(T1("\"U8\"", "[1]", "[0,1.0]"), NULL, 1), "two integers");
	expect_reject("negative offset", st_blob(T1("\"U8\"", "[1]", "[-1,0]"), NULL, 1), "negative");
	expect_reject("offsets reversed", st_blob(T1("\"U8\"", "[1]", "[1,0]"), NULL, 1), "begin after");
	expect_reject("offsets past the end", st_blob(T1("\"U8\"", "[4]", "[0,4]"), NULL, 3), "beyond the 3-byte");
	expect_reject("span too small", st_blob(T1("\"F32\"", "[2]", "[0,4]"), NULL, 4), "needs 8");
	expect_reject("span too large", st_blob(T1("\"F16\"", "[2]", "[0,8]"), NULL, 8), "needs 4");
	expect_reject("tensors overlap",
		      st_blob("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
			      "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[2,6]}}", NULL, 6),
		      "'a' and 'b' overlap");
	expect_reject("same offsets twice",
		      st_blob("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
			      "\"b\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}", NULL, 4),
		      "overlap");
	expect_reject("zero-size tensor inside another",
		      st_blob("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
			      "\"z\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[2,2]}}", NULL, 4),
		      "overlap");
	expect_reject("gap between tensors",
		      st_blob("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
			      "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[3,5]}}", NULL, 5),
		      "gap between tensors 'a' and 'b'");
	expect_reject("gap before the first tensor", st_blob(T1("\"U8\"", "[2]", "[1,3]"), NULL, 3), "gap before");
	expect_reject("trailing bytes", st_blob(T1("\"U8\"", "[2]", "[0,2]"), NULL, 5), "trailing bytes");
	expect_reject("data but no tensors", st_blob("{}", NULL, 4), "trailing bytes");
	expect_reject("metadata not an object", st_blob("{\"__metadata__\":[\"a\"]}", NULL, 0),
		      "\"__metadata__\" is not a JSON object");
	expect_reject("metadata null", st_blob("{\"__metadata__\":null}", NULL, 0), "not a JSON object");
	expect_reject("metadata number value", st_blob("{\"__metadata__\":{\"a\":\"x\",\"n\":3}}", NULL, 0),
		      "key 'n' is not a string");
	expect_reject("metadata object value", st_blob("{\"__metadata__\":{\"o\":{}}}", NULL, 0),
		      "key 'o' is not a string");
	expect_reject("empty tensor name", st_blob("{\"\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", NULL, 1),
		      "empty name");
	expect_reject("control bytes in a name are not echoed",
		      st_blob("{\"\\u001b[2J\":5}", NULL, 0), "'?[2J': entry");
}

/* Saving into a directory that does not exist fails and creates nothing. */
static void test_save_missing_dir(void)
{
	lt_err err;
	lt_model *m = every_dtype_model();
	const char *dir = path_in("nodir");
	const char *path = path_in("nodir/x.safetensors");
	lt_err_clear(&err);
	int rc = lt_safetensors_save(m, path, &err);
	tap_ok(rc == LT_EIO && strstr(err.msg, "nodir") && strstr(err.msg, "No such file"),
	       "save into a missing directory fails: %s", err.msg);
	tap_ok(access(dir, F_OK) != 0 && stray_files(NULL, 0) == 0, "and creates nothing");
	rc = lt_safetensors_save(m, path_in("dir/"), &err);
	tap_ok(rc != 0, "save to a path ending in '/' fails: %s", err.msg);
	mkdir(path_in("adir"), 0755);
	rc = lt_safetensors_save(m, path_in("adir"), &err);
	tap_ok(rc == LT_EIO && access(path_in("adir"), F_OK) == 0, "save over a directory fails: %s", err.msg);
	rmdir(path_in("adir"));
	lt_model_unref(m);
}

/* Failures during save must leave an existing file byte-identical and no
 * temporary file behind. */
static void test_save_atomic(void)
{
	lt_err err;
	const char *path = path_in("keep.safetensors");
	static const char *const keep[] = {"keep.safetensors"};
	lt_model *orig = lt_model_new(&err);
	lt_model_set_meta(orig, "who", "original", &err);
	if (lt_safetensors_save(orig, path, &err))
		tap_ok(0, "save the original: %s", err.msg);
	size_t n0;
	unsigned char *before = read_file(path, &n0);

	lt_model *m = every_dtype_model();
	long k;
	int bad_fail = 0, changed = 0, strays = 0;
	for (k = 0; k < 10000; k++) {
		lt_err_clear(&err);
		lt_mem_fail_after(k);
		int rc = lt_safetensors_save(m, path, &err);
		lt_mem_fail_after(-1);
		if (rc == 0)
			break;
		if (rc != LT_ENOMEM || err.msg[0] == '\0') {
			bad_fail++;
			tap_diag("k=%ld rc=%d %s", k, rc, err.msg);
		}
		size_t n1;
		unsigned char *after = read_file(path, &n1);
		if (!after || n1 != n0 || memcmp(before, after, n0))
			changed++;
		free(after);
		strays += stray_files(keep, 1);
	}
	tap_ok(k > 0 && k < 10000, "save allocation sweep finished after %ld failures", k);
	tap_ok(bad_fail == 0, "every failed save reports ENOMEM with a message");
	tap_ok(changed == 0, "the original file is byte-identical after every failed save");
	tap_ok(strays == 0, "no temporary files remain");
	lt_model *back = lt_safetensors_load(path, &err);
	tap_ok(back && models_equal(m, back), "the final save wrote the new model");
	lt_model_unref(back);

	/* A write that fails in the kernel (file size limit: EFBIG). */
	if (lt_safetensors_save(orig, path, &err))
		tap_ok(0, "restore the original: %s", err.msg);
	struct rlimit old, lim;
	getrlimit(RLIMIT_FSIZE, &old);
	lim = old;
	lim.rlim_cur = 64;
	void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
	if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
		lt_err_clear(&err);
		int rc = lt_safetensors_save(m, path, &err);
		setrlimit(RLIMIT_FSIZE, &old);
		tap_ok(rc == LT_EIO && strstr(err.msg, "cannot write") && strstr(err.msg, path),
		       "a failing write is reported: %s", err.msg);
		size_t n1;
		unsigned char *after = read_file(path, &n1);
		tap_ok(after && n1 == n0 && !memcmp(before, after, n0), "and the original is untouched");
		free(after);
		tap_ok(stray_files(keep, 1) == 0, "and the temporary file is removed");
	} else {
		tap_ok(1, "# SKIP cannot lower RLIMIT_FSIZE");
	}
	signal(SIGXFSZ, prev);

	free(before);
	lt_model_unref(m);
	lt_model_unref(orig);
	unlink(path);
}

static void test_parse_sweep(void)
{
	const char *hdr =
		"{\"__metadata__\":{\"format\":\"pt\",\"lathe.arch\":\"{}\"},"
		"\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
		"\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[16,20]},"
		"\"e\":{\"dtype\":\"I8\",\"shape\":[0],\"data_offsets\":[20,20]}}";
	lt_blob *blob = st_blob(hdr, NULL, 20);
	long k;
	int bad = 0;
	lt_model *m = NULL;
	for (k = 0; k < 10000; k++) {
		lt_err err;
		lt_err_clear(&err);
		lt_mem_fail_after(k);
		m = lt_safetensors_parse(blob, &err);
		lt_mem_fail_after(-1);
		if (m)
			break;
		if (err.code == LT_OK || err.msg[0] == '\0') {
			bad++;
			tap_diag("k=%ld: no error set", k);
		}
	}
	tap_ok(m && k > 3, "parse allocation sweep finished after %ld failures", k);
	tap_ok(bad == 0, "every failed parse returns NULL with err set");
	tap_ok(m && lt_model_tensor_count(m) == 3 && lt_model_meta_count(m) == 2, "and then succeeds fully");
	lt_model_unref(m);

	/* A sweep over a rejected file must also fail cleanly at every step. */
	lt_blob *badb = st_blob("{\"__metadata__\":{\"a\":\"b\"},\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", NULL, 2);
	int weird = 0;
	for (k = 0; k < 10000; k++) {
		lt_err err;
		lt_err_clear(&err);
		lt_mem_fail_after(k);
		m = lt_safetensors_parse(badb, &err);
		lt_mem_fail_after(-1);
		if (m || (err.code != LT_ENOMEM && err.code != LT_EFORMAT))
			weird++;
		lt_model_unref(m);
		if (err.code == LT_EFORMAT)
			break;
	}
	tap_ok(weird == 0 && k < 10000, "rejected file fails cleanly under allocation failures");
	lt_blob_unref(badb);
	lt_blob_unref(blob);
}

static void test_load_errors(void)
{
	lt_err err;
	lt_model *m = lt_safetensors_load(path_in("missing.safetensors"), &err);
	tap_ok(!m && err.code == LT_EIO, "missing file: %s", err.msg);
	m = lt_safetensors_load(tmpdir, &err);
	tap_ok(!m && err.code == LT_EIO, "directory: %s", err.msg);
	FILE *f = fopen(path_in("seven"), "wb");
	fwrite("\x02\0\0\0\0\0\0", 1, 7, f);
	fclose(f);
	m = lt_safetensors_load(path_in("seven"), &err);
	tap_ok(!m && err.code == LT_EFORMAT, "7-byte file: %s", err.msg);
	unlink(path_in("seven"));
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static long rss_kib(void)
{
	/* current resident set from /proc (ru_maxrss only ever grows) */
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* A 10 GiB model (a sparse file: no disk used) must open at once and cost
 * no memory until a tensor is read: the mapping is lazy. */
static void test_huge_lazy(void)
{
	const char *path = path_in("huge.safetensors");
	const uint64_t n = (uint64_t)10 << 30 >> 2; /* F32 elements in 10 GiB */
	char hdr[256];
	int len = snprintf(hdr, sizeof hdr,
			   "{\"big\":{\"dtype\":\"F32\",\"shape\":[%llu],\"data_offsets\":[0,%llu]}}",
			   (unsigned long long)n, (unsigned long long)(n * 4));
	while (len % 8)
		hdr[len++] = ' ';
	uint8_t head[8];
	put_le64(head, (uint64_t)len);
	FILE *f = fopen(path, "wb");
	int made = f && fwrite(head, 1, 8, f) == 8 && fwrite(hdr, 1, (size_t)len, f) == (size_t)len &&
		   fflush(f) == 0 && ftruncate(fileno(f), (off_t)(8 + len + n * 4)) == 0;
	if (f)
		fclose(f);
	if (!made) {
		tap_ok(1, "# SKIP cannot make a sparse 10 GiB file here");
		unlink(path);
		return;
	}
	long before = rss_kib();
	double t0 = now_s();
	lt_err err = {0};
	lt_model *m = lt_safetensors_load(path, &err);
	double took = now_s() - t0;
	long grew = rss_kib() - before;
	tap_ok(m && lt_model_tensor_count(m) == 1 && took < 0.5,
	       "10 GiB file opens in %.3f s (%s)", took, err.msg);
	tap_ok(grew < 16 * 1024, "opening it costs %ld KiB of memory", grew);
	lt_model_unref(m);
	unlink(path);
}

int main(void)
{
	/* Route jansson through lt_malloc so the sweeps reach its allocations. */
	json_set_alloc_funcs(lt_malloc, lt_free);
	const char *base = getenv("TMPDIR");
	snprintf(tmpdir, sizeof tmpdir, "%s/t_safetensors.XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(tmpdir))
		tap_skip_all("cannot create a temporary directory");

	test_round_trip();
	test_bad_names_on_save();
	test_lazy_values();
	test_accept();
	test_reject();
	test_save_missing_dir();
	test_save_atomic();
	test_parse_sweep();
	test_load_errors();
	test_huge_lazy();

	tap_ok(stray_files(NULL, 0) == 0, "temporary directory is empty at the end");
	rmdir(tmpdir);
	return tap_done();
}
