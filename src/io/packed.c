/* Packed model files (see packed.h). */
#include "io/packed.h"

#include <stdio.h>
#include <string.h>

#include "core/blob.h"
#include "core/mem.h"
#include "core/scheme.h"
#include "io/safetensors.h"

/* A packed tensor's streams and description add this much to the header
 * beyond their bytes (three entries and a metadata key); packing must
 * save more than that to be chosen. */
#define ENTRY_OVERHEAD 200

/* Elements a packed tensor may decode to: 2^30 (4 GiB of f32). */
#define UNPACK_LIMIT (INT64_C(1) << 30)

/* One tensor on its way into a packed file. */
struct item {
	const char *name;
	lt_tensor *t;
	int packed;
	lt_scheme *own;          /* a scheme made for an F16/BF16 tensor */
	float *present;          /* 1 where the element is stored */
	lt_pack_src src;
	lt_pack_desc desc;
	uint64_t bytes;          /* streams + description */
	char *json;
	size_t json_len;
	uint8_t *blob;           /* when writing: the streams, one after another */
	char *sname;             /* NAME.packed */
	int64_t slen;            /* bytes of the streams */
};

static int is_float(lt_dtype d)
{
	return d == LT_F32 || d == LT_F16 || d == LT_BF16;
}

static uint32_t bits_of(float v)
{
	uint32_t u;
	memcpy(&u, &v, sizeof u);
	return u;
}

/* Build it->src: the scheme (the tensor's, or its half-precision storage
 * as one), and which elements are present. An element is absent exactly
 * when its value is +0, the value an absent element decodes to, so the
 * round trip is bit-exact whatever masks say (-0 is stored). A scheme must
 * decode to the tensor's values. */
static int prepare(struct item *it, lt_err *err)
{
	lt_tensor *t = it->t;
	int64_t n = lt_tensor_numel(t);
	const float *v = lt_tensor_data(t, err);
	if (!v)
		return err ? err->code : LT_ENOMEM;
	const lt_scheme *s = lt_tensor_scheme(t);
	if (!s && (lt_tensor_dtype(t) == LT_F16 || lt_tensor_dtype(t) == LT_BF16)) {
		int half = lt_tensor_dtype(t) == LT_F16;
		if (!(it->own = lt_scheme_new(half ? LT_SCHEME_F16 : LT_SCHEME_BF16, 16, n, 1, 0, err)))
			return err ? err->code : LT_ENOMEM;
		memcpy(it->own->codes, lt_tensor_raw(t), (size_t)n * sizeof *it->own->codes);
		s = it->own;
	}
	if (!(it->present = lt_malloc_array(n ? (size_t)n : 1, sizeof *it->present)))
		return lt_err_set(err, LT_ENOMEM, "out of memory packing '%s'", it->name);
	for (int64_t i = 0; i < n; i++)
		it->present[i] = bits_of(v[i]) != 0;
	if (s)
		for (int64_t g = 0, i = 0; g < s->groups; g++)
			for (int64_t e = 0; e < s->group_len; e++, i++)
				if (it->present[i] && bits_of(lt_scheme_value(s, g, s->codes[i])) != bits_of(v[i]))
					return lt_err_set(err, LT_EINVAL, "tensor '%s': element %lld is %g but its "
							  "code decodes to %g", it->name, (long long)i, (double)v[i],
							  (double)lt_scheme_value(s, g, s->codes[i]));
	it->src = (lt_pack_src){lt_tensor_ndim(t), lt_tensor_shape(t), s, s ? NULL : v, it->present, 0};
	return 0;
}

static void item_clear(struct item *it)
{
	lt_scheme_free(it->own);
	lt_free(it->present);
	lt_free(it->json);
	lt_free(it->blob);
	lt_free(it->sname);
	memset(it, 0, sizeof *it);
}

static void items_free(struct item *items, size_t n)
{
	for (size_t i = 0; items && i < n; i++)
		item_clear(&items[i]);
	lt_free(items);
}

/* The streams of a packed tensor, one after another, in it->blob. */
static int pack_streams(struct item *it, lt_err *err)
{
	lt_packed *p = lt_pack(&it->src, err);
	if (!p)
		return err ? err->code : LT_ENOMEM;
	if (!(it->blob = lt_malloc(it->slen ? (size_t)it->slen : 1))) {
		lt_packed_free(p);
		return lt_err_set(err, LT_ENOMEM, "out of memory packing '%s'", it->name);
	}
	size_t at = 0;
	for (int s = 0; s < LT_PACK_STREAMS; s++) {
		memcpy(it->blob + at, p->stream[s], (size_t)p->desc.bytes[s]);
		at += (size_t)p->desc.bytes[s];
	}
	lt_packed_free(p);
	return 0;
}

/* Decide how each tensor is stored; with `write`, also make the streams. */
static struct item *plan(lt_model *m, int write, lt_err *err)
{
	size_t n = lt_model_tensor_count(m);
	struct item *items = lt_calloc(n ? n : 1, sizeof *items);
	if (!items) {
		lt_err_set(err, LT_ENOMEM, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		struct item *it = &items[i];
		it->name = lt_model_tensor_name(m, i);
		it->t = lt_model_tensor_at(m, i);
		/* coded, half (its 16-bit patterns may Huffman-code smaller) or
		 * holding zeros: worth trying */
		lt_dtype dt = lt_tensor_dtype(it->t);
		if (!is_float(dt) || (!lt_tensor_scheme(it->t) && dt == LT_F32 && lt_tensor_count_zeros(it->t) == 0))
			continue;
		if (prepare(it, err) || lt_pack_estimate(&it->src, &it->desc, &it->bytes, err))
			goto fail;
		if (it->bytes + ENTRY_OVERHEAD >= lt_tensor_nbytes(it->t)) {
			item_clear(it);
			it->name = lt_model_tensor_name(m, i);
			it->t = lt_model_tensor_at(m, i);
			continue;
		}
		it->packed = 1;
		if (!(it->json = lt_pack_desc_json(&it->desc, &it->json_len, err)))
			goto fail;
		size_t len = strlen(it->name) + sizeof LT_PACKED_SUFFIX;
		if (!(it->sname = lt_malloc(len))) {
			lt_err_set(err, LT_ENOMEM, "out of memory");
			goto fail;
		}
		snprintf(it->sname, len, "%s%s", it->name, LT_PACKED_SUFFIX);
		for (int s = 0; s < LT_PACK_STREAMS; s++)
			it->slen += (int64_t)it->desc.bytes[s];
		if (write && (pack_streams(it, err)))
			goto fail;
	}
	return items;
fail:
	items_free(items, n);
	return NULL;
}

/* The file's metadata: m's (with its architecture up to date) and one
 * description per packed tensor. */
static lt_model *file_meta(lt_model *m, const struct item *items, size_t n, lt_err *err)
{
	lt_model *meta = lt_model_new(err);
	if (!meta)
		return NULL;
	for (size_t i = 0; i < lt_model_meta_count(m); i++) {
		const char *k = lt_model_meta_key(m, i);
		if (strncmp(k, LT_PACKED_META_PREFIX, strlen(LT_PACKED_META_PREFIX)) &&
		    lt_model_set_meta(meta, k, lt_model_meta_value(m, i), err))
			goto fail;
	}
	const lt_graph *g = lt_model_graph(m);
	if (g && !lt_model_graph_in_meta(m)) {
		char *json = lt_graph_to_json(g, err);
		int rc = !json || lt_model_set_meta(meta, LT_ARCH_META_KEY, json, err);
		lt_free(json);
		if (rc)
			goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		if (!items[i].packed)
			continue;
		size_t len = strlen(LT_PACKED_META_PREFIX) + strlen(items[i].name) + 1;
		char *key = lt_malloc(len);
		if (!key) {
			lt_err_set(err, LT_ENOMEM, "out of memory");
			goto fail;
		}
		snprintf(key, len, "%s%s", LT_PACKED_META_PREFIX, items[i].name);
		int rc = lt_model_set_meta(meta, key, items[i].json, err);
		lt_free(key);
		if (rc)
			goto fail;
	}
	return meta;
fail:
	lt_model_unref(meta);
	return NULL;
}

/* The safetensors entries of the packed file (caller frees). */
static lt_st_entry *entries(const struct item *items, size_t n, size_t *count, lt_err *err)
{
	lt_st_entry *e = lt_malloc_array(n + 1, sizeof *e);
	if (!e) {
		lt_err_set(err, LT_ENOMEM, "out of memory");
		return NULL;
	}
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		const struct item *it = &items[i];
		if (!it->packed) {
			e[k++] = (lt_st_entry){it->name, lt_tensor_dtype(it->t), lt_tensor_ndim(it->t),
					       lt_tensor_shape(it->t), lt_tensor_raw(it->t), lt_tensor_nbytes(it->t)};
			continue;
		}
		/* even empty (nothing present), so the tensor keeps its place */
		e[k++] = (lt_st_entry){it->sname, LT_U8, 1, &it->slen, it->blob, (uint64_t)it->slen};
	}
	*count = k;
	return e;
}

static int report(lt_model *m, const struct item *items, size_t n, uint64_t file_bytes, lt_packed_report *r,
		  lt_err *err)
{
	memset(r, 0, sizeof *r);
	if (!(r->t = lt_calloc(n ? n : 1, sizeof *r->t)))
		return lt_err_set(err, LT_ENOMEM, "out of memory");
	r->n = n;
	r->file_bytes = file_bytes;
	for (size_t i = 0; i < n; i++) {
		lt_packed_tensor *p = &r->t[i];
		p->name = lt_model_tensor_name(m, i);
		p->packed = items[i].packed;
		p->plain_bytes = lt_tensor_nbytes(items[i].t);
		p->bytes = p->packed ? items[i].bytes : p->plain_bytes;
		if (p->packed)
			p->desc = items[i].desc;
		r->f32_bytes += (uint64_t)lt_tensor_numel(items[i].t) * 4;
	}
	return 0;
}

/* Measure, or write when path is not NULL. */
static int run(lt_model *m, const char *path, lt_packed_report *r, lt_err *err)
{
	size_t n = lt_model_tensor_count(m), count = 0;
	int rc;
	uint64_t bytes = 0;
	lt_model *meta = NULL;
	lt_st_entry *e = NULL;
	struct item *items = plan(m, path != NULL, err);
	if (!items)
		return err ? err->code : LT_ENOMEM;
	if (!(meta = file_meta(m, items, n, err)) || !(e = entries(items, n, &count, err))) {
		rc = err ? err->code : LT_ENOMEM;
		goto done;
	}
	if ((rc = lt_safetensors_size(e, count, meta, &bytes, err)))
		goto done;
	if (path && (rc = lt_safetensors_write(path, e, count, meta, err)))
		goto done;
	if (r)
		rc = report(m, items, n, bytes, r, err);
done:
	lt_free(e);
	lt_model_unref(meta);
	items_free(items, n);
	return rc;
}

int lt_packed_measure(lt_model *m, lt_packed_report *r, lt_err *err)
{
	return run(m, NULL, r, err);
}

int lt_packed_save(lt_model *m, const char *path, lt_packed_report *r, lt_err *err)
{
	return run(m, path, r, err);
}

void lt_packed_report_free(lt_packed_report *r)
{
	if (!r)
		return;
	lt_free(r->t);
	memset(r, 0, sizeof *r);
}

int lt_packed_has(const lt_model *m)
{
	for (size_t i = 0; i < lt_model_meta_count(m); i++)
		if (!strncmp(lt_model_meta_key(m, i), LT_PACKED_META_PREFIX, strlen(LT_PACKED_META_PREFIX)))
			return 1;
	return 0;
}

/* The description key ("lathe.pack:" + NAME, lt_malloc'd) of the packed
 * tensor whose streams `name` (NAME.packed) holds, or NULL (also when out of
 * memory: the tensor is then kept as it is and the check for descriptions
 * without streams fails). */
static char *stream_owner(const lt_model *m, const char *name)
{
	size_t n = strlen(name), k = strlen(LT_PACKED_SUFFIX);
	if (n <= k || strcmp(name + n - k, LT_PACKED_SUFFIX))
		return NULL;
	size_t len = strlen(LT_PACKED_META_PREFIX) + n - k + 1;
	char *key = lt_malloc(len);
	if (!key)
		return NULL;
	snprintf(key, len, "%s%.*s", LT_PACKED_META_PREFIX, (int)(n - k), name);
	if (lt_model_meta(m, key))
		return key;
	lt_free(key);
	return NULL;
}

/* Decode the packed tensor described by key (LT_PACKED_META_PREFIX + name)
 * from m's streams into a new tensor. */
static lt_tensor *decode(const lt_model *m, const char *key, const char *json, lt_err *err)
{
	const char *name = key + strlen(LT_PACKED_META_PREFIX);
	lt_pack_desc d;
	const uint8_t *stream[LT_PACK_STREAMS] = {0};
	size_t len[LT_PACK_STREAMS] = {0};
	lt_scheme *s = NULL;
	lt_tensor *t = NULL;
	if (lt_pack_desc_parse(json, strlen(json), UNPACK_LIMIT, &d, err))
		goto fail;
	size_t n = strlen(name) + sizeof LT_PACKED_SUFFIX;
	char *sname = lt_malloc(n);
	if (!sname) {
		lt_err_set(err, LT_ENOMEM, "out of memory");
		goto fail;
	}
	snprintf(sname, n, "%s%s", name, LT_PACKED_SUFFIX);
	lt_tensor *st = lt_model_tensor(m, sname);
	lt_free(sname);
	if (st && (lt_tensor_dtype(st) != LT_U8 || lt_tensor_ndim(st) != 1)) {
		lt_err_set(err, LT_EFORMAT, "its streams are not a U8 vector");
		goto fail;
	}
	/* the streams one after another, as long as the description says */
	size_t have = st ? lt_tensor_nbytes(st) : 0, at = 0;
	const uint8_t *bytes = st ? lt_tensor_raw(st) : NULL;
	for (int i = 0; i < LT_PACK_STREAMS; i++) {
		if (d.bytes[i] > have - at) {
			lt_err_set(err, LT_EFORMAT, "its streams hold %zu bytes, fewer than its description says",
				   have);
			goto fail;
		}
		stream[i] = bytes ? bytes + at : NULL;
		len[i] = (size_t)d.bytes[i];
		at += len[i];
	}
	if (at != have) {
		lt_err_set(err, LT_EFORMAT, "its streams hold %zu bytes, more than its description says", have);
		goto fail;
	}
	if (!(t = lt_tensor_new_uninit(d.ndim, d.shape, err)))
		goto fail;
	float *v = lt_tensor_data_mut(t, err);
	if (!v || lt_unpack(&d, stream, len, UNPACK_LIMIT, v, NULL, d.plain ? NULL : &s, err))
		goto fail;
	if (s && (s->kind == LT_SCHEME_F16 || s->kind == LT_SCHEME_BF16)) {
		/* half precision comes back stored as such: its codes are the bytes */
		lt_blob *blob = lt_blob_wrap(s->codes, (size_t)s->numel * sizeof *s->codes, err);
		s->codes = NULL;
		lt_tensor *h = blob ? lt_tensor_from_bytes(s->kind == LT_SCHEME_F16 ? LT_F16 : LT_BF16, d.ndim, d.shape,
							   blob, lt_blob_data(blob), err)
				    : NULL;
		lt_blob_unref(blob);
		lt_scheme_free(s);
		s = NULL;
		lt_tensor_unref(t);
		if (!(t = h))
			goto fail;
	}
	if (s)
		lt_tensor_set_scheme(t, s, NULL); /* made for this shape: cannot fail */
	return t;
fail:
	lt_tensor_unref(t);
	lt_err_prefix(err, "packed tensor '%s'", name);
	return NULL;
}

lt_model *lt_packed_unpack(lt_model *m, lt_err *err)
{
	lt_model *out = lt_model_new(err);
	if (!out)
		return NULL;
	size_t nm = lt_model_meta_count(m);
	for (size_t i = 0; i < nm; i++) {
		const char *k = lt_model_meta_key(m, i);
		if (strncmp(k, LT_PACKED_META_PREFIX, strlen(LT_PACKED_META_PREFIX)) &&
		    lt_model_set_meta(out, k, lt_model_meta_value(m, i), err))
			goto fail;
	}
	/* A packed tensor takes the place of its first stream. */
	for (size_t i = 0; i < lt_model_tensor_count(m); i++) {
		const char *name = lt_model_tensor_name(m, i);
		char *key = stream_owner(m, name);
		if (!key) {
			if (lt_model_add_tensor(out, name, lt_model_tensor_at(m, i), err))
				goto fail;
			continue;
		}
		const char *owner = key + strlen(LT_PACKED_META_PREFIX);
		lt_tensor *t = lt_model_tensor(out, owner) ? NULL : decode(m, key, lt_model_meta(m, key), err);
		int rc = t ? lt_model_add_tensor(out, owner, t, err) : !lt_model_tensor(out, owner);
		lt_tensor_unref(t);
		lt_free(key);
		if (rc)
			goto fail;
	}
	/* Every description must have found its streams (an all-absent
	 * tensor has none: it is decoded here). */
	for (size_t i = 0; i < nm; i++) {
		const char *k = lt_model_meta_key(m, i);
		if (strncmp(k, LT_PACKED_META_PREFIX, strlen(LT_PACKED_META_PREFIX)))
			continue;
		const char *owner = k + strlen(LT_PACKED_META_PREFIX);
		if (lt_model_tensor(out, owner))
			continue;
		lt_tensor *t = decode(m, k, lt_model_meta_value(m, i), err);
		if (!t)
			goto fail;
		int rc = lt_model_add_tensor(out, owner, t, err);
		lt_tensor_unref(t);
		if (rc)
			goto fail;
	}
	return out;
fail:
	lt_model_unref(out);
	return NULL;
}
