/* The packed format: bit-exact round trips of every scheme kind and index
 * encoding, the smallest encoding chosen, estimate == packed size,
 * streams written by hand against the documented format, the Deep
 * Compression size check, hostile descriptions and streams, refusals and
 * allocation failures. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/mem.h"
#include "core/rng.h"
#include "io/pack.h"
#include "kern/huffman.h"
#include "tap.h"

static lt_rng rng = {777};
static const char *const index_name[] = {"auto", "dense", "rel", "holes", "csr"};

static float normal(void)
{
	float u = lt_rng_uniform(&rng) + 1e-7f, v = lt_rng_uniform(&rng);
	return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

/* The documented presence rule, to compare against. */
static int want_present(const lt_pack_src *src, int64_t i)
{
	if (src->mask && src->mask[i] == 0.0f)
		return 0;
	if (src->flags & LT_PACK_ZEROS) {
		const lt_scheme *s = src->scheme;
		float x = s ? lt_scheme_value(s, i / s->group_len, s->codes[i]) : src->values[i];
		if (x == 0.0f)
			return 0;
	}
	return 1;
}

static int64_t numel_of(const lt_pack_src *src)
{
	int64_t n = 1;
	for (int i = 0; i < src->ndim; i++)
		n *= src->shape[i];
	return n;
}

/* Decode p's streams through a description parsed from its JSON. */
static int unpack_packed(const lt_packed *p, int64_t limit, float *v, float *m, lt_scheme **s, lt_err *err)
{
	lt_pack_desc d;
	int rc = lt_pack_desc_parse(p->json, p->json_len, limit, &d, err);
	if (rc)
		return rc;
	const uint8_t *st[3] = {p->stream[0], p->stream[1], p->stream[2]};
	size_t len[3] = {(size_t)p->desc.bytes[0], (size_t)p->desc.bytes[1], (size_t)p->desc.bytes[2]};
	return lt_unpack(&d, st, len, limit, v, m, s, err);
}

/* Pack, check estimate and description, unpack, compare bit for bit.
 * Returns the packed tensor (caller frees) or NULL. */
static lt_packed *roundtrip(const char *name, const lt_pack_src *src)
{
	lt_err err = {0};
	lt_packed *p = lt_pack(src, &err);
	if (!p) {
		tap_ok(0, "%s: packs (%s)", name, err.msg);
		return NULL;
	}
	uint64_t est = 0;
	lt_pack_desc d, ed;
	int rc = lt_pack_estimate(src, &ed, &est, &err);
	char *from_est = rc ? NULL : lt_pack_desc_json(&ed, NULL, &err);
	int prc = lt_pack_desc_parse(p->json, p->json_len, INT64_MAX, &d, &err);
	char *again = prc ? NULL : lt_pack_desc_json(&d, NULL, &err);
	int same = again && from_est && !strcmp(again, p->json) && !strcmp(from_est, p->json) &&
		   !memcmp(d.bytes, p->desc.bytes, sizeof d.bytes) && d.index == p->desc.index &&
		   d.present == p->desc.present;
	lt_free(from_est);
	tap_ok(rc == 0 && est == p->total && prc == 0 && same,
	       "%s: %s index, %lld of %lld present; estimate %llu == packed %llu bytes; descriptions agree",
	       name, index_name[p->desc.index], (long long)p->desc.present, (long long)p->desc.numel,
	       (unsigned long long)est, (unsigned long long)p->total);
	lt_free(again);

	int64_t n = numel_of(src);
	float *v = malloc((size_t)(n ? n : 1) * sizeof *v), *m = malloc((size_t)(n ? n : 1) * sizeof *m);
	lt_scheme *s = NULL;
	rc = unpack_packed(p, n, v, m, &s, &err);
	int exact = rc == 0, present = 0;
	const lt_scheme *in = src->scheme;
	for (int64_t i = 0; exact && i < n; i++) {
		int here = want_present(src, i);
		present += here;
		float want = 0.0f;
		if (here)
			want = in ? lt_scheme_value(in, i / in->group_len, in->codes[i]) : src->values[i];
		exact &= !memcmp(&v[i], &want, 4) && m[i] == (here ? 1.0f : 0.0f);
		if (in)
			exact &= s && s->codes[i] == (here ? in->codes[i] : 0);
	}
	if (exact && in) {
		exact = s->kind == in->kind && s->bits == in->bits && s->groups == in->groups;
		if (in->kind == LT_SCHEME_AFFINE)
			exact &= s->qmin == in->qmin &&
				 !memcmp(s->scale, in->scale, (size_t)in->groups * sizeof *s->scale) &&
				 !memcmp(s->zero_point, in->zero_point, (size_t)in->groups * sizeof *s->zero_point);
		if (in->kind == LT_SCHEME_CODEBOOK)
			exact &= s->k == in->k && !memcmp(s->table, in->table, (size_t)(in->groups * in->k) * 4);
	} else if (exact) {
		exact = s == NULL;
	}
	tap_ok(exact && present == p->desc.present, "%s: decodes bit-exactly (values, mask%s)%s%s", name,
	       in ? ", codes, table" : "", rc ? ": " : "", rc ? err.msg : "");
	lt_scheme_free(s);
	free(v);
	free(m);
	return p;
}

/* A mask with each element present with probability density. */
static float *random_mask(int64_t n, double density)
{
	float *m = malloc((size_t)(n ? n : 1) * sizeof *m);
	for (int64_t i = 0; i < n; i++)
		m[i] = lt_rng_uniform(&rng) < density ? 1.0f : 0.0f;
	return m;
}

/* A code from a discretised normal around the middle of k entries. */
static uint16_t peaked_code(int k, float spread)
{
	int c = (int)lroundf((float)(k - 1) / 2.0f + spread * normal());
	return (uint16_t)(c < 0 ? 0 : c >= k ? k - 1 : c);
}

static lt_scheme *codebook(int64_t numel, int k, int peaked)
{
	lt_err err;
	int bits = 1;
	while ((1 << bits) < k)
		bits++;
	lt_scheme *s = lt_scheme_new(LT_SCHEME_CODEBOOK, bits, numel, 1, k, &err);
	for (int i = 0; i < k; i++)
		s->table[i] = (float)(i - k / 2) * 0.01f;
	for (int64_t i = 0; i < numel; i++)
		s->codes[i] = peaked ? peaked_code(k, (float)k / 8.0f) : (uint16_t)lt_rng_below(&rng, (uint64_t)k);
	return s;
}

static void schemes(void)
{
	int64_t shape[2] = {64, 100};
	const int ks[] = {2, 3, 16, 64, 256};
	for (size_t t = 0; t < sizeof ks / sizeof *ks; t++) {
		lt_scheme *s = codebook(6400, ks[t], t % 2);
		float *mask = random_mask(6400, 0.3);
		lt_pack_src src = {.ndim = 2, .shape = shape, .scheme = s, .mask = mask};
		char name[64];
		snprintf(name, sizeof name, "codebook k=%d%s, 30 %% present", ks[t], t % 2 ? " peaked" : "");
		lt_packed_free(roundtrip(name, &src));
		free(mask);
		lt_scheme_free(s);
	}

	/* affine per output channel, filled by hand */
	lt_err err;
	int64_t ashape[3] = {32, 5, 10};
	lt_scheme *a = lt_scheme_new(LT_SCHEME_AFFINE, 4, 1600, 32, 0, &err);
	a->qmin = -8;
	for (int g = 0; g < 32; g++) {
		a->scale[g] = 0.001f * (float)(g + 1) + lt_rng_uniform(&rng) * 1e-4f;
		a->zero_point[g] = (int32_t)lt_rng_below(&rng, 16) - 8;
	}
	for (int i = 0; i < 1600; i++)
		a->codes[i] = (uint16_t)lt_rng_below(&rng, 16);
	float *mask = random_mask(1600, 0.5);
	lt_pack_src src = {.ndim = 3, .shape = ashape, .scheme = a, .mask = mask};
	lt_packed_free(roundtrip("affine 4-bit per channel [32,5,10], qmin -8, 50 % present", &src));
	src.mask = NULL;
	lt_packed_free(roundtrip("affine per channel, no mask (dense)", &src));
	/* the zero point's code means exactly 0: with LT_PACK_ZEROS it is absent */
	src.flags = LT_PACK_ZEROS;
	lt_packed *p = roundtrip("affine per channel, zeros absent", &src);
	int zeros = 0;
	for (int i = 0; i < 1600; i++)
		zeros += (int32_t)a->codes[i] + a->qmin == a->zero_point[i / 50];
	tap_ok(p && p->desc.present == 1600 - zeros, "affine: the %d codes at the zero point are left out", zeros);
	lt_packed_free(p);
	lt_scheme_free(a);
	free(mask);

	lt_scheme *a8 = lt_scheme_new(LT_SCHEME_AFFINE, 8, 6400, 1, 0, &err);
	a8->qmin = -128;
	a8->scale[0] = 0.0123f;
	a8->zero_point[0] = 3;
	for (int i = 0; i < 6400; i++)
		a8->codes[i] = (uint16_t)(128 + 3 + lroundf(12.0f * normal()));
	mask = random_mask(6400, 0.9);
	src = (lt_pack_src){.ndim = 2, .shape = shape, .scheme = a8, .mask = mask};
	lt_packed_free(roundtrip("affine 8-bit per tensor, 90 % present", &src));
	lt_scheme_free(a8);
	free(mask);

	/* f16 and bf16: the code is the bit pattern */
	for (int kind = LT_SCHEME_F16; kind <= LT_SCHEME_BF16; kind++) {
		lt_scheme *h = lt_scheme_new((lt_scheme_kind)kind, 16, 6400, 1, 0, &err);
		for (int i = 0; i < 6400; i++) {
			float x = 0.05f * normal();
			h->codes[i] = kind == LT_SCHEME_F16 ? lt_f32_to_f16(x) : lt_f32_to_bf16(x);
		}
		h->codes[5] = 0x8000; /* -0 stays -0 */
		mask = random_mask(6400, 0.4);
		mask[5] = 1.0f;
		src = (lt_pack_src){.ndim = 2, .shape = shape, .scheme = h, .mask = mask};
		lt_packed_free(roundtrip(kind == LT_SCHEME_F16 ? "f16, 40 % present" : "bf16, 40 % present", &src));
		lt_scheme_free(h);
		free(mask);
	}

	/* plain f32: with a mask, and with exact zeros (-0 too) absent */
	float *w = malloc(6400 * sizeof *w);
	mask = random_mask(6400, 0.2);
	for (int i = 0; i < 6400; i++)
		w[i] = mask[i] != 0.0f ? normal() : 0.0f;
	w[7] = NAN;
	mask[7] = 1.0f;
	src = (lt_pack_src){.ndim = 2, .shape = shape, .values = w, .mask = mask};
	lt_packed_free(roundtrip("plain f32 with a mask (NaN kept)", &src));
	w[9] = -0.0f;
	mask[9] = 1.0f;
	src.mask = NULL;
	src.flags = LT_PACK_ZEROS;
	p = roundtrip("plain f32, no mask, exact zeros absent", &src);
	int64_t nz = 0;
	for (int i = 0; i < 6400; i++)
		nz += w[i] != 0.0f;
	tap_ok(p && p->desc.present == nz && p->desc.index != LT_PACK_DENSE,
	       "plain f32 without a mask packs sparsely: %lld present", (long long)nz);
	lt_packed_free(p);
	src.flags = 0;
	p = roundtrip("plain f32, no mask, zeros kept", &src);
	tap_ok(p && p->desc.index == LT_PACK_DENSE && p->desc.bytes[LT_PACK_CODES] == 6400 * 4,
	       "without the flag every element is stored");
	lt_packed_free(p);
	free(w);
	free(mask);
}

/* Index encodings: edge cases, long gaps, forced encodings and the choice. */
static void indexes(void)
{
	lt_err err;
	/* empty tensors and scalars */
	int64_t empty[2] = {0, 5};
	lt_scheme *s = codebook(0, 4, 0);
	lt_pack_src src = {.ndim = 2, .shape = empty, .scheme = s};
	lt_packed *p = roundtrip("empty [0,5] codebook", &src);
	tap_ok(p && p->desc.index == LT_PACK_DENSE && p->desc.bytes[0] == 0 && p->desc.bytes[1] == 0,
	       "empty: no index, no codes");
	lt_packed_free(p);
	lt_scheme_free(s);
	float one = 2.5f, off = 0.0f;
	src = (lt_pack_src){.ndim = 0, .values = &one};
	lt_packed_free(roundtrip("scalar f32", &src));
	src.mask = &off;
	lt_packed_free(roundtrip("scalar f32, pruned", &src));

	/* none present, all present, nearly all present */
	int64_t shape[2] = {100, 300};
	s = codebook(30000, 16, 1);
	float *mask = random_mask(30000, 0.0);
	src = (lt_pack_src){.ndim = 2, .shape = shape, .scheme = s, .mask = mask};
	p = roundtrip("none present", &src);
	tap_ok(p && p->desc.bytes[0] == 0 && p->desc.bytes[1] == 0, "none present: empty idx and codes streams");
	lt_packed_free(p);
	for (int i = 0; i < 30000; i++)
		mask[i] = 1.0f;
	p = roundtrip("all present", &src);
	tap_ok(p && p->desc.index == LT_PACK_DENSE, "all present: dense");
	lt_packed_free(p);
	for (int i = 0; i < 30000; i++)
		mask[i] = lt_rng_uniform(&rng) < 0.998f;
	p = roundtrip("99.8 % present", &src);
	tap_ok(p && p->desc.index == LT_PACK_HOLES && p->desc.bytes[0] < 300,
	       "99.8 %% present: the holes are indexed (%llu bytes)", p ? (unsigned long long)p->desc.bytes[0] : 0);
	lt_packed_free(p);
	free(mask);
	lt_scheme_free(s);

	/* long gaps: fillers */
	int64_t len1[1] = {300000};
	float *w = calloc(300000, sizeof *w);
	w[0] = 1.0f, w[100000] = 2.0f, w[200001] = -3.0f, w[299999] = 4.0f;
	src = (lt_pack_src){.ndim = 1, .shape = len1, .values = w, .flags = LT_PACK_ZEROS};
	p = roundtrip("4 of 300000 present (gaps of 100000)", &src);
	tap_ok(p && p->desc.index == LT_PACK_REL && p->desc.idx[0].n > 4,
	       "long gaps are bridged by fillers: %lld index symbols of %d bits for 4 elements",
	       p ? (long long)p->desc.idx[0].n : 0, p ? p->desc.gap_bits : 0);
	lt_packed_free(p);
	for (lt_pack_index f = LT_PACK_REL; f <= LT_PACK_HOLES; f++) {
		src.flags = LT_PACK_FORCE(f) | (src.flags & LT_PACK_ZEROS);
		char name[64];
		snprintf(name, sizeof name, "long gaps, %s forced", index_name[f]);
		lt_packed_free(roundtrip(name, &src));
	}
	src.flags = LT_PACK_FORCE(LT_PACK_CSR) | LT_PACK_ZEROS;
	tap_ok(!lt_pack(&src, &err) && err.code == LT_EINVAL, "CSR refused for a vector of 300000: %s", err.msg);
	free(w);

	/* every encoding forced on a few densities; auto is the smallest */
	const double dens[] = {0.01, 0.08, 0.5, 0.97};
	int64_t cshape[2] = {200, 150};
	for (size_t t = 0; t < sizeof dens / sizeof *dens; t++) {
		s = codebook(30000, 32, 1);
		mask = random_mask(30000, dens[t]);
		/* rows of varied fullness so CSR has something to find */
		for (int r = 0; r < 200; r += 7)
			for (int c = 0; c < 150; c++)
				mask[r * 150 + c] = 0.0f;
		src = (lt_pack_src){.ndim = 2, .shape = cshape, .scheme = s, .mask = mask};
		uint64_t best = UINT64_MAX, got = 0;
		int all = 1;
		for (lt_pack_index f = LT_PACK_REL; f <= LT_PACK_CSR; f++) {
			src.flags = LT_PACK_FORCE(f) | (src.flags & LT_PACK_ZEROS);
			char name[80];
			snprintf(name, sizeof name, "density %.2f, %s forced", dens[t], index_name[f]);
			p = roundtrip(name, &src);
			all &= p && p->desc.index == f;
			if (p && p->total < best)
				best = p->total;
			lt_packed_free(p);
		}
		src.flags = 0;
		all &= lt_pack_estimate(&src, NULL, &got, &err) == 0;
		tap_ok(all && got == best, "density %.2f: the chosen encoding is the smallest (%llu bytes)", dens[t],
		       (unsigned long long)got);
		free(mask);
		lt_scheme_free(s);
	}

	/* a part is never larger than its fixed-width form */
	s = codebook(30000, 256, 1);
	mask = random_mask(30000, 0.3);
	src = (lt_pack_src){.ndim = 2, .shape = cshape, .scheme = s, .mask = mask};
	p = lt_pack(&src, &err);
	int64_t b = p ? p->desc.gap_bits : 1;
	tap_ok(p && p->desc.codes.bytes <= lt_fixed_bytes(p->desc.present, 8) && p->desc.codes.huffman &&
	       p->desc.idx[0].bytes <= lt_fixed_bytes(p->desc.idx[0].n, (int)b),
	       "peaked 8-bit codes are Huffman coded: %llu bytes for %lld codes (fixed: %zu)",
	       p ? (unsigned long long)p->desc.codes.bytes : 0, p ? (long long)p->desc.present : 0,
	       lt_fixed_bytes(p ? p->desc.present : 0, 8));
	lt_packed_free(p);
	src.flags = LT_PACK_FORCE(LT_PACK_DENSE);
	tap_ok(!lt_pack(&src, &err) && err.code == LT_EINVAL, "dense refused with absent elements: %s", err.msg);
	free(mask);
	lt_scheme_free(s);
}

/* Streams written by hand from the format's description decode as meant:
 * shape [3,4], elements 1, 2, 8 and 11 present, plain f32. */
static void by_hand(void)
{
	lt_err err = {0};
	const float vals[4] = {1.5f, -2.0f, 0.25f, 8.0f};
	uint8_t codes[16];
	memcpy(codes, vals, 16); /* little-endian host */
	const int pos[4] = {1, 2, 8, 11};
	float want[12] = {0};
	for (int i = 0; i < 4; i++)
		want[pos[i]] = vals[i];

	/* rel, 2 bits: gaps 1, 0, 5, 2; 5 = filler (3) + 2 */
	uint16_t rel[5] = {1, 0, 3, 2, 2}, rows[3] = {2, 0, 2}, cols[4] = {1, 2, 0, 3};
	uint8_t idx[4] = {0};
	lt_fixed_pack(rel, 5, 2, idx);
	const char *json_rel = "{\"pack\":1,\"shape\":[3,4],\"kind\":\"f32\",\"present\":4,\"index\":\"rel\","
			       "\"gap_bits\":2,\"idx\":[{\"n\":5,\"alphabet\":4,\"width\":2,\"bytes\":2}],"
			       "\"codes\":{\"n\":4,\"width\":32,\"bytes\":16},\"table\":0}";
	lt_pack_desc d;
	float out[12], m[12];
	const uint8_t *st[3] = {idx, codes, NULL};
	size_t len[3] = {2, 16, 0};
	int rc = lt_pack_desc_parse(json_rel, strlen(json_rel), 12, &d, &err);
	rc = rc ? rc : lt_unpack(&d, st, len, 12, out, m, NULL, &err);
	tap_ok(rc == 0 && !memcmp(out, want, sizeof want), "relative index written by hand (with a filler) decodes%s%s",
	       rc ? ": " : "", rc ? err.msg : "");

	/* csr: row lengths 2, 0, 2 in 2 bits; columns 1, 2, 0, 3 in 2 bits */
	lt_fixed_pack(rows, 3, 2, idx);
	lt_fixed_pack(cols, 4, 2, idx + 1);
	const char *json_csr = "{\"pack\":1,\"shape\":[3,4],\"kind\":\"f32\",\"present\":4,\"index\":\"csr\","
			       "\"idx\":[{\"n\":3,\"alphabet\":3,\"width\":2,\"bytes\":1},"
			       "{\"n\":4,\"alphabet\":4,\"width\":2,\"bytes\":1}],"
			       "\"codes\":{\"n\":4,\"width\":32,\"bytes\":16},\"table\":0}";
	rc = lt_pack_desc_parse(json_csr, strlen(json_csr), 12, &d, &err);
	rc = rc ? rc : lt_unpack(&d, st, len, 12, out, m, NULL, &err);
	tap_ok(rc == 0 && !memcmp(out, want, sizeof want), "CSR written by hand decodes%s%s", rc ? ": " : "",
	       rc ? err.msg : "");
	/* columns out of order within a row */
	uint16_t bad_cols[4] = {2, 1, 0, 3};
	lt_fixed_pack(bad_cols, 4, 2, idx + 1);
	rc = lt_unpack(&d, st, len, 12, out, m, NULL, &err);
	tap_ok(rc == LT_EFORMAT && strstr(err.msg, "column"), "CSR columns out of order refused: %s", err.msg);
	/* row lengths summing past present */
	uint16_t bad_rows[3] = {2, 1, 2};
	lt_fixed_pack(bad_rows, 3, 2, idx);
	lt_fixed_pack(cols, 4, 2, idx + 1);
	rc = lt_unpack(&d, st, len, 12, out, m, NULL, &err);
	tap_ok(rc == LT_EFORMAT, "CSR rows holding 5 of 4 elements refused: %s", err.msg);

	/* rel ending with a filler; rel past the end; holes leaving a wrong count */
	rc = lt_pack_desc_parse(json_rel, strlen(json_rel), 12, &d, &err);
	uint16_t tail[5] = {1, 0, 3, 2, 3};
	lt_fixed_pack(tail, 5, 2, idx);
	d.present = 3;
	d.idx[0].n = 5;
	tap_ok(lt_unpack(&d, st, len, 12, out, m, NULL, &err) == LT_EFORMAT,
	       "a description edited to disagree with its codes part refused: %s", err.msg);
	d.present = 4;
	tap_ok(lt_unpack(&d, st, len, 12, out, m, NULL, &err) == LT_EFORMAT && strstr(err.msg, "filler"),
	       "a relative index ending with a filler refused: %s", err.msg);
	uint16_t past[5] = {3, 3, 3, 2, 0};
	lt_fixed_pack(past, 5, 2, idx);
	tap_ok(lt_unpack(&d, st, len, 12, out, m, NULL, &err) == LT_EFORMAT && strstr(err.msg, "places"),
	       "a relative index running past the last element refused: %s", err.msg);
	d.index = LT_PACK_HOLES; /* 8 holes needed, 5 symbols give at most 4 */
	lt_fixed_pack(rel, 5, 2, idx);
	tap_ok(lt_unpack(&d, st, len, 12, out, m, NULL, &err) == LT_EFORMAT,
	       "a holes index that leaves the wrong count refused: %s", err.msg);
}

/* Deep Compression's LeNet-300-100 first layer: 8 % of 300 x 784 kept,
 * 6-bit shared weights whose histogram is peaked. */
static void deep_compression(void)
{
	lt_err err = {0};
	int64_t shape[2] = {300, 784};
	const int64_t n = 300 * 784;
	lt_scheme *s = codebook(n, 64, 1);
	float *mask = random_mask(n, 0.08);
	lt_pack_src src = {.ndim = 2, .shape = shape, .scheme = s, .mask = mask};
	double t0 = lt_seconds();
	lt_packed *p = roundtrip("300x784, 8 % present, 6-bit peaked codebook", &src);
	double t1 = lt_seconds();
	double ratio = p ? (double)(n * 4) / (double)p->total : 0;
	tap_ok(p && p->total * 30 < (uint64_t)(n * 4), "Deep Compression size: %llu bytes of %lld fp32 bytes",
	       p ? (unsigned long long)p->total : 0, (long long)n * 4);
	if (p)
		tap_diag("ratio %.1fx: idx %llu bytes (%s, %d-bit gaps, %s), codes %llu (%s), table %llu, "
			 "description %zu; %.2f bits per present weight; pack+unpack %.1f ms",
			 ratio, (unsigned long long)p->desc.bytes[0], index_name[p->desc.index], p->desc.gap_bits,
			 p->desc.idx[0].huffman ? "Huffman" : "fixed", (unsigned long long)p->desc.bytes[1],
			 p->desc.codes.huffman ? "Huffman" : "fixed", (unsigned long long)p->desc.bytes[2],
			 p->json_len, 8.0 * (double)p->total / (double)p->desc.present, 1e3 * (t1 - t0));
	if (p)
		tap_diag("description: %s", p->json);
	lt_packed_free(p);
	(void)err;
	free(mask);
	lt_scheme_free(s);
}

/* Hostile descriptions and streams: errors, never a crash or a big
 * allocation. */
static void hostile(void)
{
	lt_err err = {0};
	int64_t shape[2] = {20, 30};
	lt_scheme *s = codebook(600, 16, 1);
	float *mask = random_mask(600, 0.3);
	lt_pack_src src = {.ndim = 2, .shape = shape, .scheme = s, .mask = mask};
	lt_packed *p = lt_pack(&src, &err);
	float *v = malloc(600 * sizeof *v), *m = malloc(600 * sizeof *m);
	const uint8_t *st[3] = {p->stream[0], p->stream[1], p->stream[2]};
	size_t len[3] = {(size_t)p->desc.bytes[0], (size_t)p->desc.bytes[1], (size_t)p->desc.bytes[2]};
	lt_pack_desc d;

	const char *json = p->json;
	const struct {
		const char *from, *to, *what;
	} edits[] = {
		{"\"pack\":1", "\"pack\":2", "version 2"},
		{"\"kind\":\"codebook\"", "\"kind\":\"zip\"", "unknown kind"},
		{"\"k\":16,", "", "missing k"},
		{"\"k\":16", "\"k\":16,\"qmin\":0", "qmin on a codebook"},
		{"\"k\":16", "\"k\":\"16\"", "k as a string"},
		{"\"k\":16", "\"k\":16,\"extra\":1", "an unknown key"},
		{"\"shape\":[20,30]", "\"shape\":[20,30,1,1,1,1,1,1,1]", "9 dimensions"},
		{"\"shape\":[20,30]", "\"shape\":[2000000000,2000000000]", "a huge shape"},
		{"\"shape\":[20,30]", "\"shape\":[20,-30]", "a negative dimension"},
		{"\"shape\":[20,30]", "\"shape\":[20,30.5]", "a fractional dimension"},
		{"\"pack\":1", "\"pack\":1,\"pack\":1", "a duplicate key"},
	};
	for (size_t e = 0; e < sizeof edits / sizeof *edits; e++) {
		char buf[1024];
		const char *hit = strstr(json, edits[e].from);
		if (!hit) {
			tap_ok(0, "edit '%s' applies", edits[e].what);
			continue;
		}
		snprintf(buf, sizeof buf, "%.*s%s%s", (int)(hit - json), json, edits[e].to,
			 hit + strlen(edits[e].from));
		int rc = lt_pack_desc_parse(buf, strlen(buf), 1 << 20, &d, &err);
		tap_ok(rc == LT_EFORMAT || rc == LT_ERANGE, "%s refused: %s", edits[e].what, err.msg);
	}
	/* values of the wrong type */
	const char *const keyval[][2] = {{"table", "[64]"}, {"present", "180.5"}, {"index", "2"}, {"shape", "{}"},
					 {"gap_bits", "null"}, {"pack", "true"}};
	for (size_t e = 0; e < sizeof keyval / sizeof *keyval; e++) {
		char key[32], buf[1024];
		snprintf(key, sizeof key, "\"%s\":", keyval[e][0]);
		const char *at = strstr(json, key);
		if (!at) {
			tap_ok(0, "key %s present", key);
			continue;
		}
		const char *end = at + strlen(key);
		if (*end == '[')
			end = strchr(end, ']') + 1;
		else if (*end == '"')
			end = strchr(end + 1, '"') + 1;
		else
			while (*end && *end != ',' && *end != '}')
				end++;
		snprintf(buf, sizeof buf, "%.*s%s%s%s", (int)(at - json), json, key, keyval[e][1], end);
		int rc = lt_pack_desc_parse(buf, strlen(buf), 1 << 20, &d, &err);
		tap_ok(rc == LT_EFORMAT, "%s %s refused: %s", key, keyval[e][1], err.msg);
	}
	char wrapped[1024], codes_arr[1024];
	snprintf(wrapped, sizeof wrapped, "[%s]", json);
	tap_ok(lt_pack_desc_parse(wrapped, strlen(wrapped), 1 << 20, &d, &err) == LT_EFORMAT &&
	       strstr(err.msg, "not a JSON object"), "an array instead of an object refused: %s", err.msg);
	const char *c0 = strstr(json, "\"codes\":"), *c1 = strchr(c0, '}');
	snprintf(codes_arr, sizeof codes_arr, "%.*s\"codes\":[1]%s", (int)(c0 - json), json, c1 + 1);
	tap_ok(lt_pack_desc_parse(codes_arr, strlen(codes_arr), 1 << 20, &d, &err) == LT_EFORMAT &&
	       strstr(err.msg, "not a JSON object"), "codes as an array refused: %s", err.msg);
	/* groups * k * 4 bytes of table wraps to 0 in 64 bits */
	const char *wrap = "{\"pack\":1,\"shape\":[281474976710656],\"kind\":\"codebook\",\"bits\":16,"
			   "\"groups\":281474976710656,\"k\":65536,\"present\":0,\"index\":\"rel\",\"gap_bits\":1,"
			   "\"idx\":[{\"n\":0,\"alphabet\":2,\"width\":1,\"bytes\":0}],"
			   "\"codes\":{\"n\":0,\"alphabet\":1,\"width\":0,\"bytes\":0},\"table\":0}";
	tap_ok(lt_pack_desc_parse(wrap, strlen(wrap), INT64_MAX, &d, &err) == LT_EFORMAT,
	       "a table size that wraps around 2^64 refused: %s", err.msg);
	tap_ok(lt_pack_desc_parse(json, p->json_len, 599, &d, &err) == LT_ERANGE,
	       "a shape over the element limit refused: %s", err.msg);
	tap_ok(lt_pack_desc_parse("{\"pack\":1\0}", 11, 1000, &d, &err) == LT_EFORMAT, "a NUL byte refused: %s",
	       err.msg);
	tap_ok(lt_pack_desc_parse("{\"pack\":", 8, 1000, &d, &err) == LT_EFORMAT, "cut JSON refused: %s", err.msg);

	/* stream lengths that disagree, every stream cut and flipped */
	lt_pack_desc good;
	lt_pack_desc_parse(json, p->json_len, 600, &good, &err);
	int all = 1;
	for (int i = 0; i < 3; i++) {
		size_t l2[3] = {len[0], len[1], len[2]};
		if (!len[i])
			continue;
		l2[i] = len[i] - 1;
		all &= lt_unpack(&good, st, l2, 600, v, m, NULL, &err) == LT_EFORMAT;
		l2[i] = len[i] + 1;
		all &= lt_unpack(&good, st, l2, 600, v, m, NULL, &err) == LT_EFORMAT;
	}
	tap_ok(all, "streams a byte short or long refused: %s", err.msg);
	/* a part shortened consistently in the description: symbols run out */
	lt_pack_desc cut = good;
	cut.idx[0].bytes--;
	cut.bytes[0]--;
	size_t lcut[3] = {len[0] - 1, len[1], len[2]};
	tap_ok(cut.idx[0].bytes > cut.idx[0].table_bytes &&
	       lt_unpack(&cut, st, lcut, 600, v, m, NULL, &err) == LT_EFORMAT,
	       "an index part a byte short (description and stream agreeing) refused: %s", err.msg);
	/* a description claiming many symbols in a tiny stream is refused
	 * before anything is allocated for them */
	lt_pack_desc big = good;
	big.codes.n = big.present = 1000000;
	tap_ok(lt_unpack(&big, st, len, 1 << 20, v, m, NULL, &err) == LT_EFORMAT, "a million codes claimed in "
	       "a tensor of 600 refused: %s", err.msg);
	int64_t bshape[2] = {1 << 20, 1 << 20};
	memcpy(big.shape, bshape, sizeof bshape);
	big.numel = (int64_t)1 << 40;
	tap_ok(lt_unpack(&big, st, len, 1 << 24, v, m, NULL, &err) == LT_ERANGE, "a shape of 2^40 elements "
	       "over a limit of 2^24 refused: %s", err.msg);

	/* affine zero points from the table stream are range checked */
	lt_err e2;
	lt_scheme *a = lt_scheme_new(LT_SCHEME_AFFINE, 4, 600, 20, 0, &e2);
	for (int g = 0; g < 20; g++)
		a->scale[g] = 1.0f;
	lt_pack_src asrc = {.ndim = 2, .shape = shape, .scheme = a};
	lt_packed *ap = lt_pack(&asrc, &err);
	uint8_t *table = malloc(ap->desc.bytes[2]);
	memcpy(table, ap->stream[2], ap->desc.bytes[2]);
	table[80 + 3] = 0x80; /* zero point of group 0: INT32_MIN */
	const uint8_t *ast[3] = {ap->stream[0], ap->stream[1], table};
	size_t alen[3] = {(size_t)ap->desc.bytes[0], (size_t)ap->desc.bytes[1], (size_t)ap->desc.bytes[2]};
	tap_ok(lt_unpack(&ap->desc, ast, alen, 600, v, m, NULL, &err) == LT_EFORMAT && strstr(err.msg, "zero point"),
	       "an affine zero point of INT32_MIN refused: %s", err.msg);
	free(table);
	lt_packed_free(ap);
	lt_scheme_free(a);

	free(v);
	free(m);
	lt_packed_free(p);
	lt_scheme_free(s);
	free(mask);
}

/* Generic hostility for one packed tensor: every integer of its JSON
 * replaced by other values, and every bit of its streams flipped. Errors
 * or other values, never a crash (run under ASan and UBSan). */
static void fuzz_packed(const char *name, const lt_packed *p)
{
	lt_err err = {0};
	lt_pack_desc d;
	lt_scheme *back = NULL;
	const uint8_t *st[3] = {p->stream[0], p->stream[1], p->stream[2]};
	size_t len[3] = {(size_t)p->desc.bytes[0], (size_t)p->desc.bytes[1], (size_t)p->desc.bytes[2]};
	const char *json = p->json;
	const long long repl[] = {0, 1, -1, 2, 7, 16, 65535, 65536, 65537, 1LL << 31, 1LL << 40, 1LL << 62};
	int tried = 0, refused = 0;
	for (size_t at = 0; json[at]; at++) {
		if (!(json[at] >= '0' && json[at] <= '9') || (at && json[at - 1] >= '0' && json[at - 1] <= '9'))
			continue;
		size_t end = at;
		while (json[end] >= '0' && json[end] <= '9')
			end++;
		long long orig = atoll(json + at);
		long long extra[2] = {orig - 1, orig + 1};
		for (size_t r = 0; r < sizeof repl / sizeof *repl + 2; r++) {
			long long x = r < 2 ? extra[r] : repl[r - 2];
			if (x == orig)
				continue;
			char buf[1024];
			snprintf(buf, sizeof buf, "%.*s%lld%s", (int)at, json, x, json + end);
			tried++;
			int rc = lt_pack_desc_parse(buf, strlen(buf), 1 << 20, &d, &err);
			if (!rc) {
				/* a description that still holds together: the streams decide */
				float *v = malloc((size_t)(d.numel ? d.numel : 1) * sizeof *v);
				float *m = malloc((size_t)(d.numel ? d.numel : 1) * sizeof *m);
				rc = lt_unpack(&d, st, len, 1 << 20, v, m, &back, &err);
				lt_scheme_free(back);
				back = NULL;
				free(v);
				free(m);
			}
			refused += rc != 0;
		}
	}
	tap_ok(refused > 0, "%s: %d descriptions with one integer changed: %d refused, the rest consistent, no crash",
	       name, tried, refused);

	int errors = 0, flips = 0;
	float *v = malloc((size_t)(p->desc.numel ? p->desc.numel : 1) * sizeof *v);
	float *m = malloc((size_t)(p->desc.numel ? p->desc.numel : 1) * sizeof *m);
	for (int i = 0; i < 3; i++) {
		uint8_t *copy = malloc(len[i] ? len[i] : 1);
		for (size_t bit = 0; bit < len[i] * 8; bit++) {
			memcpy(copy, st[i], len[i]);
			copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			const uint8_t *s2[3] = {st[0], st[1], st[2]};
			s2[i] = copy;
			errors += lt_unpack(&p->desc, s2, len, 1 << 20, v, m, NULL, &err) != 0;
			flips++;
		}
		free(copy);
	}
	tap_ok(1, "%s: %d single-bit flips in the streams (idx %s, codes %s): no crash, %d refused", name, flips,
	       p->desc.n_idx && p->desc.idx[0].huffman ? "Huffman" : "fixed",
	       p->desc.codes.huffman ? "Huffman" : "fixed",
	       errors);
	free(v);
	free(m);
}

static void fuzz_all(void)
{
	lt_err err;
	int64_t shape[2] = {20, 30};
	lt_scheme *s = codebook(600, 16, 1);
	float *mask = random_mask(600, 0.3);
	const lt_pack_index force[] = {LT_PACK_AUTO, LT_PACK_REL, LT_PACK_HOLES, LT_PACK_CSR};
	for (size_t f = 0; f < sizeof force / sizeof *force; f++) {
		lt_pack_src src = {.ndim = 2, .shape = shape, .scheme = s, .mask = mask,
				   .flags = LT_PACK_FORCE(force[f])};
		lt_packed *p = lt_pack(&src, &err);
		char name[64];
		snprintf(name, sizeof name, "codebook, %s index", index_name[p->desc.index]);
		fuzz_packed(name, p);
		lt_packed_free(p);
	}
	/* sparse: Huffman-coded gaps */
	int64_t sshape[2] = {50, 100};
	lt_scheme *sp = codebook(5000, 8, 1);
	float *smask = random_mask(5000, 0.04);
	lt_pack_src ssrc = {.ndim = 2, .shape = sshape, .scheme = sp, .mask = smask};
	lt_packed *sp_p = lt_pack(&ssrc, &err);
	tap_ok(sp_p && sp_p->desc.idx[0].huffman, "4 %% present: the gaps are Huffman coded");
	fuzz_packed("codebook, 4 % present", sp_p);
	lt_packed_free(sp_p);
	lt_scheme_free(sp);
	free(smask);

	lt_scheme *a = lt_scheme_new(LT_SCHEME_AFFINE, 3, 600, 20, 0, &err);
	a->qmin = -4;
	for (int i = 0; i < 600; i++)
		a->codes[i] = (uint16_t)lt_rng_below(&rng, 8);
	for (int g = 0; g < 20; g++)
		a->scale[g] = 0.5f, a->zero_point[g] = -1;
	lt_pack_src src = {.ndim = 2, .shape = shape, .scheme = a, .flags = LT_PACK_ZEROS};
	lt_packed *p = lt_pack(&src, &err);
	fuzz_packed("affine, zeros absent", p);
	lt_packed_free(p);
	float w[600];
	for (int i = 0; i < 600; i++)
		w[i] = mask[i] * (float)i;
	src = (lt_pack_src){.ndim = 2, .shape = shape, .values = w, .flags = LT_PACK_ZEROS};
	p = lt_pack(&src, &err);
	fuzz_packed("plain f32", p);
	lt_packed_free(p);
	lt_scheme_free(a);
	lt_scheme_free(s);
	free(mask);
}

static void refusals(void)
{
	lt_err err = {0};
	int64_t shape[2] = {10, 10};
	lt_scheme *s = codebook(100, 10, 0);
	s->codes[42] = 12;
	lt_pack_src src = {.ndim = 2, .shape = shape, .scheme = s};
	tap_ok(!lt_pack(&src, &err) && err.code == LT_EINVAL && strstr(err.msg, "element 42"),
	       "a code outside the codebook refused: %s", err.msg);
	float mask[100];
	for (int i = 0; i < 100; i++)
		mask[i] = 1.0f;
	mask[42] = 0.0f;
	src.mask = mask;
	lt_packed *p = lt_pack(&src, &err);
	tap_ok(p != NULL, "the same code at a pruned element is not read");
	lt_packed_free(p);
	int64_t other[2] = {10, 11};
	src.shape = other;
	tap_ok(!lt_pack(&src, &err) && err.code == LT_EINVAL, "a scheme of another size refused: %s", err.msg);
	src = (lt_pack_src){.ndim = 2, .shape = shape};
	tap_ok(!lt_pack(&src, &err) && err.code == LT_EINVAL, "a plain tensor without values refused: %s", err.msg);
	float w[100] = {0};
	src.values = w;
	src.flags = 0x100;
	tap_ok(!lt_pack(&src, &err) && err.code == LT_EINVAL, "unknown flags refused: %s", err.msg);
	src.flags = 0;
	src.ndim = 9;
	uint64_t bytes;
	tap_ok(lt_pack_estimate(&src, NULL, &bytes, &err) == LT_EINVAL, "9 dimensions refused: %s", err.msg);
	lt_scheme_free(s);
	lt_err e2;
	lt_scheme *a = lt_scheme_new(LT_SCHEME_AFFINE, 8, 100, 1, 0, &e2);
	a->zero_point[0] = 1 << 30 | 1;
	src = (lt_pack_src){.ndim = 2, .shape = shape, .scheme = a};
	tap_ok(!lt_pack(&src, &err) && err.code == LT_EINVAL, "an affine zero point past 2^30 refused: %s", err.msg);
	lt_scheme_free(a);
}

/* Allocation failures: LT_ENOMEM every time, no leaks, then success. */
static void alloc_failures(void)
{
	lt_err err = {0};
	int64_t shape[2] = {40, 50};
	lt_scheme *s = codebook(2000, 64, 1);
	float *mask = random_mask(2000, 0.2);
	const lt_pack_index idx[] = {LT_PACK_AUTO, LT_PACK_CSR};
	for (int t = 0; t < 2; t++) {
		lt_pack_src src = {.ndim = 2, .shape = shape, .scheme = s, .mask = mask,
				   .flags = LT_PACK_FORCE(idx[t])};
		lt_packed *p = NULL;
		int fails = 0, ok = 1;
		for (long i = 0; !p; i++) {
			lt_mem_fail_after(i);
			p = lt_pack(&src, &err);
			lt_mem_fail_after(-1);
			if (!p) {
				fails++;
				ok &= err.code == LT_ENOMEM;
			}
		}
		tap_ok(fails > 0 && ok, "lt_pack (%s): %d allocation failures give LT_ENOMEM", index_name[idx[t]],
		       fails);
		uint64_t bytes = 0;
		int rc = -1;
		fails = 0, ok = 1;
		for (long i = 0; rc; i++) {
			lt_mem_fail_after(i);
			rc = lt_pack_estimate(&src, NULL, &bytes, &err);
			lt_mem_fail_after(-1);
			if (rc) {
				fails++;
				ok &= rc == LT_ENOMEM;
			}
		}
		tap_ok(fails > 0 && ok && bytes == p->total, "lt_pack_estimate: %d allocation failures give LT_ENOMEM",
		       fails);
		lt_pack_desc d;
		lt_pack_desc_parse(p->json, p->json_len, 2000, &d, &err);
		const uint8_t *st[3] = {p->stream[0], p->stream[1], p->stream[2]};
		size_t len[3] = {(size_t)p->desc.bytes[0], (size_t)p->desc.bytes[1], (size_t)p->desc.bytes[2]};
		float v[2000], m[2000];
		lt_scheme *back = NULL;
		rc = -1;
		fails = 0, ok = 1;
		for (long i = 0; rc; i++) {
			lt_mem_fail_after(i);
			rc = lt_unpack(&d, st, len, 2000, v, m, &back, &err);
			lt_mem_fail_after(-1);
			if (rc) {
				fails++;
				ok &= rc == LT_ENOMEM && back == NULL;
			}
		}
		tap_ok(fails > 0 && ok && back, "lt_unpack: %d allocation failures give LT_ENOMEM", fails);
		lt_scheme_free(back);
		lt_packed_free(p);
	}
	free(mask);
	lt_scheme_free(s);
}

int main(void)
{
	schemes();
	indexes();
	by_hand();
	deep_compression();
	hostile();
	fuzz_all();
	refusals();
	alloc_failures();
	return tap_done();
}
