/* Packed model files (io/packed.c): bit-exact round trips of every kind of
 * tensor, the measured size equal to the file written, metadata and
 * architecture kept, the automatic choice of form, and hostile files. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/scheme.h"
#include "io/open.h"
#include "io/packed.h"
#include "io/safetensors.h"
#include "kern/kmeans.h"
#include "kern/quant.h"
#include "tap.h"
#include "testutil.h"

static char dir[] = "/tmp/lathe-t_packed-XXXXXX";

static const char *tmp(const char *name)
{
	static char path[2][4200];
	static int k;
	char *p = path[k++ % 2];
	snprintf(p, sizeof path[0], "%s/%s", dir, name);
	return p;
}

static uint64_t file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static lt_tensor *filled(int ndim, const int64_t *shape, unsigned seed, double zeros)
{
	lt_tensor *t = lt_tensor_new(ndim, shape, NULL);
	float *v = lt_tensor_data_mut(t, NULL);
	srand(seed);
	for (int64_t i = 0; i < lt_tensor_numel(t); i++) {
		double u = rand() / (double)RAND_MAX, g = (rand() / (double)RAND_MAX - 0.5) * 0.2;
		v[i] = u < zeros ? 0.0f : (float)g;
	}
	return t;
}

/* A model of every kind of tensor the packer meets. */
static lt_model *zoo(void)
{
	lt_err err = {0};
	lt_model *m = lt_model_new(&err);
	int64_t s2[2] = {64, 100}, s4[4] = {8, 3, 5, 5}, s1[1] = {1000}, s0[1] = {1000};

	/* k-means shared, pruned 90 % (mask) */
	lt_tensor *a = filled(2, s2, 1, 0.9);
	lt_tensor *mask = lt_tensor_new(2, s2, &err);
	float *mv = lt_tensor_data_mut(mask, &err);
	const float *av = lt_tensor_data(a, &err);
	for (int64_t i = 0; i < 6400; i++)
		mv[i] = av[i] != 0.0f;
	lt_tensor_set_mask(a, mask, &err);
	lt_kmeans_opts ko = {.k = 16};
	lt_scheme *s = NULL;
	lt_kmeans_1d(av, mv, 6400, &ko, &s, lt_tensor_data_mut(a, &err), NULL, &err);
	lt_tensor_set_scheme(a, s, &err);
	lt_model_add_tensor(m, "shared.weight", a, &err);

	/* affine per channel, 5 bits, conv-shaped, no zeros to speak of */
	lt_tensor *b = filled(4, s4, 2, 0.0);
	lt_quant_spec qs = {.mode = LT_QUANT_AFFINE, .bits = 5, .per_channel = 1};
	const float *bv = lt_tensor_data(b, &err);
	lt_tensor *bq = lt_tensor_new(4, s4, &err);
	s = lt_quant_tensor(bv, NULL, 4, s4, &qs, lt_tensor_data_mut(bq, &err), NULL, &err);
	lt_tensor_set_scheme(bq, s, &err);
	lt_model_add_tensor(m, "conv.weight", bq, &err);

	/* plain f32 with zeros and a -0 (must come back as -0) */
	lt_tensor *c = filled(2, s2, 3, 0.7);
	lt_tensor_data_mut(c, &err)[5] = -0.0f;
	lt_model_add_tensor(m, "sparse.weight", c, &err);

	/* f16 storage with zeros */
	lt_tensor *d = filled(1, s1, 4, 0.5);
	lt_tensor *dh = lt_tensor_cast(d, LT_F16, &err);
	lt_model_add_tensor(m, "half.bias", dh, &err);

	/* all zeros, and a dense f32 left as it is */
	lt_tensor *z = lt_tensor_new(1, s0, &err);
	lt_model_add_tensor(m, "zero.bias", z, &err);
	lt_tensor *e = filled(1, s0, 5, 0.0);
	lt_model_add_tensor(m, "dense.bias", e, &err);
	lt_model_set_meta(m, "note", "kept \"as\" is", &err);
	lt_tensor *all[] = {a, mask, b, bq, c, d, dh, z, e};
	for (size_t i = 0; i < sizeof all / sizeof *all; i++)
		lt_tensor_unref(all[i]);
	return m;
}

static int same_bits(lt_tensor *x, lt_tensor *y)
{
	if (lt_tensor_numel(x) != lt_tensor_numel(y) || lt_tensor_ndim(x) != lt_tensor_ndim(y) ||
	    memcmp(lt_tensor_shape(x), lt_tensor_shape(y), (size_t)lt_tensor_ndim(x) * sizeof(int64_t)))
		return 0;
	if (lt_tensor_dtype(x) == lt_tensor_dtype(y))
		return !memcmp(lt_tensor_raw(x), lt_tensor_raw(y), lt_tensor_nbytes(x));
	const float *a = lt_tensor_data(x, NULL), *b = lt_tensor_data(y, NULL);
	return !memcmp(a, b, (size_t)lt_tensor_numel(x) * sizeof *a);
}

static void round_trip(void)
{
	lt_err err = {0};
	lt_model *m = zoo();
	lt_packed_report r;
	int rc = lt_packed_measure(m, &r, &err);
	tap_ok(!rc, "measure the zoo (%s)", err.msg);
	rc = lt_packed_save(m, tmp("zoo.safetensors"), NULL, &err);
	tap_ok(!rc && file_size(tmp("zoo.safetensors")) == r.file_bytes,
	       "the measured size is the file's: %llu bytes", (unsigned long long)file_size(tmp("zoo.safetensors")));
	const char *want_packed[] = {"shared.weight", "conv.weight", "sparse.weight", "half.bias", "zero.bias"};
	int packed_ok = r.n == lt_model_tensor_count(m);
	for (size_t i = 0; packed_ok && i < r.n; i++) {
		int want = 0;
		for (size_t k = 0; k < sizeof want_packed / sizeof *want_packed; k++)
			want |= !strcmp(r.t[i].name, want_packed[k]);
		packed_ok = r.t[i].packed == want;
	}
	tap_ok(packed_ok, "coded, sparse and half tensors are packed; the dense one stays as it is");
	lt_packed_report_free(&r);

	lt_model *back = lt_model_open(tmp("zoo.safetensors"), &err);
	tap_ok(back && lt_model_tensor_count(back) == lt_model_tensor_count(m), "it opens with its %zu tensors (%s)",
	       lt_model_tensor_count(m), err.msg);
	for (size_t i = 0; back && i < lt_model_tensor_count(m); i++) {
		const char *name = lt_model_tensor_name(m, i);
		lt_tensor *x = lt_model_tensor_at(m, i), *y = lt_model_tensor(back, name);
		tap_ok(y && !strcmp(lt_model_tensor_name(back, i), name) && same_bits(x, y),
		       "%s comes back bit for bit, in its place", name);
	}
	if (back) {
		const lt_scheme *sa = lt_tensor_scheme(lt_model_tensor(back, "shared.weight"));
		const lt_scheme *sb = lt_tensor_scheme(lt_model_tensor(back, "conv.weight"));
		tap_ok(sa && sa->kind == LT_SCHEME_CODEBOOK && sa->k == 16 && sb && sb->kind == LT_SCHEME_AFFINE &&
		       sb->bits == 5 && sb->groups == 8, "schemes come back (codebook of 16, 5-bit affine per channel)");
		tap_ok(lt_tensor_dtype(lt_model_tensor(back, "half.bias")) == LT_F16, "a half tensor comes back as F16");
		tap_ok(lt_model_meta(back, "note") && !strcmp(lt_model_meta(back, "note"), "kept \"as\" is") &&
		       !lt_packed_has(back), "metadata kept; the pack entries are gone from the opened model");
		/* saved again: the same bytes */
		rc = lt_packed_save(back, tmp("zoo2.safetensors"), NULL, &err);
		FILE *f1 = fopen(tmp("zoo.safetensors"), "rb"), *f2 = fopen(tmp("zoo2.safetensors"), "rb");
		int same = !rc && f1 && f2;
		for (int c1, c2; same;) {
			c1 = fgetc(f1), c2 = fgetc(f2);
			same = c1 == c2;
			if (c1 == EOF)
				break;
		}
		if (f1)
			fclose(f1);
		if (f2)
			fclose(f2);
		tap_ok(same, "packing the opened model again writes the same file");
	}
	lt_model_unref(back);

	/* the raw file is a set of safetensors tensors */
	lt_model *raw = lt_safetensors_load(tmp("zoo.safetensors"), &err);
	tap_ok(raw && lt_model_tensor(raw, "shared.weight.packed") &&
	       lt_tensor_dtype(lt_model_tensor(raw, "shared.weight.packed")) == LT_U8 &&
	       lt_model_meta(raw, "lathe.pack:shared.weight") && lt_model_tensor(raw, "dense.bias"),
	       "on disk: NAME.packed U8 streams, lathe.pack:NAME descriptions, the rest as values");
	lt_model_unref(raw);

	/* automatic form: packed only when smaller */
	int packed = -1;
	rc = lt_model_save_as(m, tmp("auto.safetensors"), LT_SAVE_AUTO, &packed, &err);
	tap_ok(!rc && packed == 1, "auto: the zoo is saved packed");
	lt_model *plain = lt_model_new(&err);
	int64_t sh[1] = {100};
	lt_tensor *t = filled(1, sh, 9, 0.0);
	lt_model_add_tensor(plain, "w", t, &err);
	lt_tensor_unref(t);
	rc = lt_model_save_as(plain, tmp("plain.safetensors"), LT_SAVE_AUTO, &packed, &err);
	tap_ok(!rc && packed == 0, "auto: a dense model is saved as values");
	rc = lt_model_save_as(m, tmp("forced.safetensors"), LT_SAVE_PLAIN, &packed, &err);
	lt_model *fp = rc ? NULL : lt_model_open(tmp("forced.safetensors"), &err);
	tap_ok(fp && packed == 0 && same_bits(lt_model_tensor(fp, "shared.weight"), lt_model_tensor(m, "shared.weight")),
	       "plain: values as they are");
	lt_model_unref(fp);
	lt_model_unref(plain);

	/* a scheme that no longer describes its values is refused */
	lt_tensor *bad = lt_tensor_clone(lt_model_tensor(m, "conv.weight"), &err);
	lt_scheme *keep = lt_tensor_take_scheme(bad);
	lt_tensor_data_mut(bad, &err)[3] += 1.0f;
	lt_tensor_set_scheme(bad, keep, &err);
	lt_model_set_tensor(m, "conv.weight", bad, &err);
	lt_tensor_unref(bad);
	rc = lt_packed_measure(m, &r, &err);
	tap_ok(rc == LT_EINVAL && strstr(err.msg, "conv.weight") && strstr(err.msg, "decodes to"),
	       "codes that do not match the values are refused: %s", err.msg);
	lt_model_unref(m);
}

/* "a\"b" -> "a\\\"b": how a description's text appears inside the
 * header, as a JSON string (static buffer per call slot). */
static const char *escaped(const char *s, int slot)
{
	static char buf[2][512];
	size_t k = 0;
	for (; *s && k + 2 < sizeof buf[0]; s++) {
		if (*s == '"')
			buf[slot][k++] = '\\';
		buf[slot][k++] = *s;
	}
	buf[slot][k] = 0;
	return buf[slot];
}

/* Copy a packed file with the first `find` in its header replaced by
 * `repl` (looked for as written, then as it appears inside a metadata
 * string), the header padded to a multiple of 8 again. */
static int rewrite(const char *from, const char *to, const char *find, const char *repl)
{
	FILE *f = fopen(from, "rb");
	if (!f)
		return -1;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = malloc((size_t)n + 1);
	size_t got = fread(b, 1, (size_t)n, f);
	fclose(f);
	uint64_t hl = 0;
	memcpy(&hl, b, 8);
	char *h = malloc(hl + 1);
	memcpy(h, b + 8, hl);
	h[hl] = 0;
	char *at = strstr(h, find);
	if (!at && (at = strstr(h, escaped(find, 0)))) {
		find = escaped(find, 0);
		repl = escaped(repl, 1);
	}
	if (!at || got != (size_t)n) {
		free(b);
		free(h);
		return -1;
	}
	size_t nh = hl - strlen(find) + strlen(repl);
	char *h2 = malloc(nh + 8);
	size_t pre = (size_t)(at - h);
	memcpy(h2, h, pre);
	memcpy(h2 + pre, repl, strlen(repl));
	memcpy(h2 + pre + strlen(repl), at + strlen(find), hl - pre - strlen(find));
	/* keep the length a multiple of 8 with spaces */
	while (nh % 8)
		h2[nh++] = ' ';
	f = fopen(to, "wb");
	uint64_t nl = nh;
	fwrite(&nl, 8, 1, f);
	fwrite(h2, 1, nh, f);
	fwrite(b + 8 + hl, 1, (size_t)n - 8 - hl, f);
	fclose(f);
	free(b);
	free(h);
	free(h2);
	return 0;
}

static void hostile(void)
{
	lt_err err = {0};
	lt_model *m = zoo();
	lt_packed_save(m, tmp("h.safetensors"), NULL, &err);
	lt_model_unref(m);
	static const struct {
		const char *find, *repl, *want, *what;
	} cases[] = {
		{"\"shape\":[64,100],\"kind\":\"codebook\"", "\"shape\":[64,50],\"kind\":\"codebook\"", "shared.weight",
		 "a shape smaller than its streams say"},
		{"\"shape\":[64,100],\"kind\":\"codebook\"", "\"shape\":[65536,65536],\"kind\":\"codebook\"",
		 "shared.weight", "a shape beyond the decoding limit"},
		{"\"kind\":\"codebook\"", "\"kind\":\"zip\"", "shared.weight", "an unknown kind"},
		{"\"pack\":1", "\"pack\":7", "", "an unknown format version"},
		{"shared.weight.packed", "shared.weight.pakked", "shared.weight", "streams under another name"},
		{"\"present\":", "\"present\":1", "", "a wrong count of present elements"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char name[32];
		snprintf(name, sizeof name, "bad%zu.safetensors", i);
		if (rewrite(tmp("h.safetensors"), tmp(name), cases[i].find, cases[i].repl)) {
			tap_ok(0, "%s: could not build the file", cases[i].what);
			continue;
		}
		lt_model *b = lt_model_open(tmp(name), &err);
		tap_ok(!b && (err.code == LT_EFORMAT || err.code == LT_ERANGE) && strstr(err.msg, cases[i].want),
		       "%s is refused: %s", cases[i].what, err.msg);
		lt_model_unref(b);
	}
	/* streams cut short: every length from 0 to the whole file */
	FILE *f = fopen(tmp("h.safetensors"), "rb");
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = malloc((size_t)n);
	size_t got = fread(b, 1, (size_t)n, f);
	fclose(f);
	int bad = 0;
	for (long cut = 0; got == (size_t)n && cut < n; cut += 37) {
		/* flip a byte in the data part instead of cutting (cutting is the
		 * safetensors parser's business): the decoder meets garbage */
		char *c = malloc((size_t)n);
		memcpy(c, b, (size_t)n);
		c[n - 1 - cut % (n / 2)] ^= 0x5a;
		f = fopen(tmp("flip.safetensors"), "wb");
		fwrite(c, 1, (size_t)n, f);
		fclose(f);
		free(c);
		lt_model *x = lt_model_open(tmp("flip.safetensors"), &err);
		bad += x == NULL && err.code != LT_EFORMAT && err.code != LT_ERANGE;
		lt_model_unref(x);
	}
	free(b);
	tap_ok(bad == 0, "flipped bytes in the streams: decoded or refused, never another failure");
}

int main(void)
{
	if (!mkdtemp(dir)) {
		tap_ok(0, "make a temporary directory");
		return tap_done();
	}
	round_trip();
	hostile();
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		tap_diag("could not remove %s", dir);
	return tap_done();
}
