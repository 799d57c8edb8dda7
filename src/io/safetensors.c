#include "io/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/mem.h"

#define META_KEY "__metadata__"

/* One tensor entry of the header, validated. */
struct entry {
	const char *name;   /* borrowed from the parsed JSON */
	size_t order;       /* position in the header: tie-break for sorting */
	lt_dtype dtype;
	int ndim;
	int64_t shape[LT_MAX_DIMS];
	uint64_t begin, end;
};

/* Strict UTF-8 (no overlong forms, surrogates or code points past U+10FFFF),
 * the rule jansson applies. Names are checked before building the header so
 * that a bad name is reported as such rather than as a failed allocation. */
static int utf8_valid(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	while (*s) {
		unsigned c = *s;
		int more;
		uint32_t cp, min;
		if (c < 0x80) {
			s++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			more = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			more = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			more = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return 0;
		}
		s++;
		for (int i = 0; i < more; i++, s++) {
			if ((*s & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (*s & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
	}
	return 1;
}

/* A name made safe for an error message: control bytes become '?' (names
 * come from untrusted files and may reach a terminal), so do all non-ASCII
 * bytes if the name is not valid UTF-8, and long names are cut at a
 * character boundary, marked with "...". */
static const char *show(const char *s, char *buf, size_t size)
{
	size_t n = strlen(s), max = size - 4, i;
	int cut = n > max, ascii_only = !utf8_valid(s);
	if (cut) {
		n = max;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		buf[i] = c < 0x20 || c == 0x7f || (c >= 0x80 && ascii_only) ? '?' : (char)c;
	}
	if (cut) {
		memcpy(buf + i, "...", 3);
		i += 3;
	}
	buf[i] = '\0';
	return buf;
}

#define NAME_BUF 72

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		p[i] = (uint8_t)(v & 0xff);
}

static const char *supported_dtypes(void)
{
	return "F64 F32 F16 BF16 F8_E4M3 F8_E5M2 I64 I32 I16 I8 U64 U32 U16 U8 BOOL";
}

/* Validate one tensor entry against a data buffer of bufsize bytes. */
static int parse_entry(const char *name, json_t *val, size_t bufsize,
		       struct entry *e, lt_err *err)
{
	char nb[NAME_BUF];
	const char *key;
	json_t *v, *dtype = NULL, *shape = NULL, *offs = NULL;

	if (name[0] == '\0')
		return lt_err_set(err, LT_EFORMAT, "a tensor has an empty name");
	if (!json_is_object(val))
		return lt_err_set(err, LT_EFORMAT, "tensor '%s': entry is not a JSON object",
				  show(name, nb, sizeof nb));
	json_object_foreach(val, key, v) {
		if (strcmp(key, "dtype") == 0) {
			dtype = v;
		} else if (strcmp(key, "shape") == 0) {
			shape = v;
		} else if (strcmp(key, "data_offsets") == 0) {
			offs = v;
		} else {
			char kb[NAME_BUF];
			return lt_err_set(err, LT_EFORMAT, "tensor '%s': unknown key '%s'",
					  show(name, nb, sizeof nb), show(key, kb, sizeof kb));
		}
	}
	if (!dtype || !shape || !offs)
		return lt_err_set(err, LT_EFORMAT, "tensor '%s': missing \"%s\"",
				  show(name, nb, sizeof nb),
				  !dtype ? "dtype" : !shape ? "shape" : "data_offsets");

	e->name = name;
	if (!json_is_string(dtype))
		return lt_err_set(err, LT_EFORMAT, "tensor '%s': dtype is not a string",
				  show(name, nb, sizeof nb));
	if (lt_dtype_parse(json_string_value(dtype), &e->dtype)) {
		char db[NAME_BUF];
		return lt_err_set(err, LT_EFORMAT, "tensor '%s': unknown dtype '%s' (supported: %s)",
				  show(name, nb, sizeof nb),
				  show(json_string_value(dtype), db, sizeof db), supported_dtypes());
	}

	if (!json_is_array(shape))
		return lt_err_set(err, LT_EFORMAT, "tensor '%s': shape is not an array",
				  show(name, nb, sizeof nb));
	if (json_array_size(shape) > LT_MAX_DIMS)
		return lt_err_set(err, LT_EFORMAT, "tensor '%s': shape has %zu dimensions (at most %d supported)",
				  show(name, nb, sizeof nb), json_array_size(shape), LT_MAX_DIMS);
	e->ndim = (int)json_array_size(shape);
	for (int i = 0; i < e->ndim; i++) {
		json_t *d = json_array_get(shape, (size_t)i);
		if (!json_is_integer(d) || json_integer_value(d) < 0)
			return lt_err_set(err, LT_EFORMAT,
					  "tensor '%s': shape[%d] is not a non-negative integer",
					  show(name, nb, sizeof nb), i);
		e->shape[i] = (int64_t)json_integer_value(d);
	}

	json_t *b = json_array_get(offs, 0), *en = json_array_get(offs, 1);
	if (!json_is_array(offs) || json_array_size(offs) != 2 ||
	    !json_is_integer(b) || !json_is_integer(en))
		return lt_err_set(err, LT_EFORMAT, "tensor '%s': data_offsets is not an array of two integers",
				  show(name, nb, sizeof nb));
	json_int_t bv = json_integer_value(b), ev = json_integer_value(en);
	if (bv < 0 || ev < 0)
		return lt_err_set(err, LT_EFORMAT, "tensor '%s': data_offsets [%" JSON_INTEGER_FORMAT
				  ", %" JSON_INTEGER_FORMAT "] are negative",
				  show(name, nb, sizeof nb), bv, ev);
	if (bv > ev)
		return lt_err_set(err, LT_EFORMAT, "tensor '%s': data_offsets [%" JSON_INTEGER_FORMAT
				  ", %" JSON_INTEGER_FORMAT "] begin after they end",
				  show(name, nb, sizeof nb), bv, ev);
	e->begin = (uint64_t)bv;
	e->end = (uint64_t)ev;
	if (e->end > bufsize)
		return lt_err_set(err, LT_EFORMAT, "tensor '%s': data_offsets end %" PRIu64
				  " is beyond the %zu-byte data buffer",
				  show(name, nb, sizeof nb), e->end, bufsize);

	int64_t numel;
	lt_err sub;
	char sb[128];
	if (lt_shape_numel(e->ndim, e->shape, INT64_MAX, &numel, &sub))
		return lt_err_set(err, LT_EFORMAT, "tensor '%s': shape %s is too large",
				  show(name, nb, sizeof nb),
				  lt_shape_format(e->ndim, e->shape, sb, sizeof sb));
	size_t esize = lt_dtype_size(e->dtype);
	if ((uint64_t)numel > UINT64_MAX / esize)
		return lt_err_set(err, LT_EFORMAT, "tensor '%s': byte size of shape %s overflows",
				  show(name, nb, sizeof nb),
				  lt_shape_format(e->ndim, e->shape, sb, sizeof sb));
	uint64_t need = (uint64_t)numel * esize;
	if (e->end - e->begin != need)
		return lt_err_set(err, LT_EFORMAT, "tensor '%s': data_offsets span %" PRIu64
				  " bytes but shape %s of %s needs %" PRIu64,
				  show(name, nb, sizeof nb), e->end - e->begin,
				  lt_shape_format(e->ndim, e->shape, sb, sizeof sb),
				  lt_dtype_name(e->dtype), need);
	return 0;
}

static int cmp_entry(const void *pa, const void *pb)
{
	const struct entry *a = pa, *b = pb;
	if (a->begin != b->begin)
		return a->begin < b->begin ? -1 : 1;
	if (a->end != b->end)
		return a->end < b->end ? -1 : 1;
	return a->order < b->order ? -1 : a->order > b->order;
}

/* Entries sorted by offset must cover [0, bufsize) exactly, in order. */
static int check_tiling(const struct entry *ents, size_t n, size_t bufsize, lt_err *err)
{
	char na[NAME_BUF], nb[NAME_BUF];
	uint64_t at = 0;
	for (size_t i = 0; i < n; i++) {
		const struct entry *e = &ents[i];
		if (e->begin < at)
			return lt_err_set(err, LT_EFORMAT, "tensors '%s' and '%s' overlap",
					  show(ents[i - 1].name, na, sizeof na),
					  show(e->name, nb, sizeof nb));
		if (e->begin > at) {
			if (i == 0)
				return lt_err_set(err, LT_EFORMAT,
						  "gap before the first tensor '%s' (bytes 0 to %" PRIu64 " unused)",
						  show(e->name, nb, sizeof nb), e->begin);
			return lt_err_set(err, LT_EFORMAT,
					  "gap between tensors '%s' and '%s' (bytes %" PRIu64 " to %" PRIu64 " unused)",
					  show(ents[i - 1].name, na, sizeof na),
					  show(e->name, nb, sizeof nb), at, e->begin);
		}
		at = e->end;
	}
	if (at != bufsize)
		return lt_err_set(err, LT_EFORMAT,
				  "trailing bytes: the data buffer is %zu bytes but the tensors end at %" PRIu64,
				  bufsize, at);
	return 0;
}

static int check_meta(json_t *meta, lt_err *err)
{
	const char *key;
	json_t *v;
	if (!json_is_object(meta))
		return lt_err_set(err, LT_EFORMAT, "\"%s\" is not a JSON object", META_KEY);
	json_object_foreach(meta, key, v) {
		char kb[NAME_BUF];
		if (!json_is_string(v))
			return lt_err_set(err, LT_EFORMAT, "\"%s\" value for key '%s' is not a string",
					  META_KEY, show(key, kb, sizeof kb));
	}
	return 0;
}

lt_model *lt_safetensors_parse(lt_blob *blob, lt_err *err)
{
	const uint8_t *p = lt_blob_data(blob);
	size_t size = lt_blob_size(blob);
	json_t *root = NULL, *meta = NULL, *val;
	struct entry *ents = NULL;
	lt_model *m = NULL;
	lt_tensor *t = NULL;
	const char *key;
	size_t n = 0;

	if (size < 8) {
		lt_err_set(err, LT_EFORMAT, "file is %zu bytes, too short to hold the 8-byte header length", size);
		goto fail;
	}
	uint64_t hlen = get_le64(p);
	if (hlen == 0) {
		lt_err_set(err, LT_EFORMAT, "header length is 0");
		goto fail;
	}
	/* Another kind of file (text, another format) reads as an absurd
	 * length: say what it is rather than what the length is. */
	if ((hlen > LT_SAFETENSORS_MAX_HEADER || hlen > size - 8) && size > 8 && p[8] != '{') {
		lt_err_set(err, LT_EFORMAT, "not a safetensors file (it should start with an 8-byte header "
			   "length and a JSON header beginning with '{')");
		goto fail;
	}
	if (hlen > LT_SAFETENSORS_MAX_HEADER) {
		lt_err_set(err, LT_EFORMAT, "header length %" PRIu64 " exceeds the limit of %u bytes",
			   hlen, LT_SAFETENSORS_MAX_HEADER);
		goto fail;
	}
	if (hlen > size - 8) {
		lt_err_set(err, LT_EFORMAT, "header length %" PRIu64 " exceeds the %zu bytes that follow it",
			   hlen, size - 8);
		goto fail;
	}
	const char *hdr = (const char *)p + 8;
	const uint8_t *buf = p + 8 + hlen;
	size_t bufsize = size - 8 - (size_t)hlen;

	/* jansson stops at a NUL byte as if the input ended there. */
	if (memchr(hdr, '\0', (size_t)hlen)) {
		lt_err_set(err, LT_EFORMAT, "header contains a NUL byte");
		goto fail;
	}
	json_error_t jerr;
	root = json_loadb(hdr, (size_t)hlen, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!root) {
		if (json_error_code(&jerr) == json_error_out_of_memory)
			lt_err_set(err, LT_ENOMEM, "out of memory parsing the header");
		else {
			char tb[JSON_ERROR_TEXT_LENGTH + 4]; /* the text quotes file bytes */
			lt_err_set(err, LT_EFORMAT, "header is not valid JSON: %s (byte %d)",
				   show(jerr.text, tb, sizeof tb), jerr.position);
		}
		goto fail;
	}
	if (!json_is_object(root)) {
		lt_err_set(err, LT_EFORMAT, "header is not a JSON object");
		goto fail;
	}

	ents = lt_malloc_array(json_object_size(root) + 1, sizeof *ents);
	if (!ents) {
		lt_err_set(err, LT_ENOMEM, "out of memory");
		goto fail;
	}
	json_object_foreach(root, key, val) {
		if (strcmp(key, META_KEY) == 0) {
			meta = val;
			continue;
		}
		if (parse_entry(key, val, bufsize, &ents[n], err))
			goto fail;
		ents[n].order = n;
		n++;
	}
	if (meta && check_meta(meta, err))
		goto fail;
	qsort(ents, n, sizeof *ents, cmp_entry);
	if (check_tiling(ents, n, bufsize, err))
		goto fail;

	if (!(m = lt_model_new(err)))
		goto fail;
	for (size_t i = 0; i < n; i++) {
		t = lt_tensor_from_bytes(ents[i].dtype, ents[i].ndim, ents[i].shape, blob,
					 buf + ents[i].begin, err);
		if (!t || lt_model_add_tensor(m, ents[i].name, t, err))
			goto fail;
		lt_tensor_unref(t);
		t = NULL;
	}
	if (meta) {
		json_object_foreach(meta, key, val) {
			if (lt_model_set_meta(m, key, json_string_value(val), err))
				goto fail;
		}
	}
	lt_free(ents);
	json_decref(root);
	return m;
fail:
	lt_tensor_unref(t);
	lt_model_unref(m);
	lt_free(ents);
	json_decref(root);
	return NULL;
}

lt_model *lt_safetensors_load(const char *path, lt_err *err)
{
	lt_blob *blob = lt_blob_map_file(path, err);
	if (!blob)
		return NULL;
	lt_model *m = lt_safetensors_parse(blob, err);
	lt_blob_unref(blob); /* the tensors hold their own references */
	return m;
}

/* ---- writing ---- */

static int check_name(const char *what, const char *name, lt_err *err)
{
	char nb[NAME_BUF];
	if (!utf8_valid(name))
		return lt_err_set(err, LT_EINVAL, "%s '%s' is not valid UTF-8",
				  what, show(name, nb, sizeof nb));
	return 0;
}

/* The header JSON for these entries and metadata, padded with spaces to a
 * multiple of 8 bytes, in an lt_malloc'd buffer (caller frees). */
static int build_header(const lt_st_entry *e, size_t n, const lt_model *meta_of, char **out,
			size_t *outlen, lt_err *err)
{
	int rc;
	char *text = NULL;
	json_t *root = json_object(), *meta = NULL, *ent = NULL, *shape, *offs;
	if (!root)
		goto nomem;

	size_t nmeta = meta_of ? lt_model_meta_count(meta_of) : 0;
	if (nmeta) {
		for (size_t i = 0; i < nmeta; i++) {
			if ((rc = check_name("metadata key", lt_model_meta_key(meta_of, i), err)) ||
			    (rc = check_name("metadata value", lt_model_meta_value(meta_of, i), err)))
				goto fail;
		}
		/* set_new takes meta's reference even when it fails */
		if (json_object_set_new(root, META_KEY, meta = json_object()))
			goto nomem;
		for (size_t i = 0; i < nmeta; i++)
			if (json_object_set_new(meta, lt_model_meta_key(meta_of, i),
						json_string(lt_model_meta_value(meta_of, i))))
				goto nomem;
	}

	uint64_t off = 0;
	for (size_t i = 0; i < n; i++) {
		const char *name = e[i].name;
		if (name[0] == '\0') {
			rc = lt_err_set(err, LT_EINVAL, "a tensor has an empty name");
			goto fail;
		}
		if (strcmp(name, META_KEY) == 0) {
			rc = lt_err_set(err, LT_EINVAL, "tensor name '%s' is reserved", META_KEY);
			goto fail;
		}
		if ((rc = check_name("tensor name", name, err)))
			goto fail;
		if (json_object_get(root, name)) {
			rc = lt_err_set(err, LT_EINVAL, "two tensors are named '%s'", name);
			goto fail;
		}
		uint64_t nbytes = e[i].nbytes;
		if (nbytes > (uint64_t)INT64_MAX - off) {
			rc = lt_err_set(err, LT_ERANGE, "tensors total more than 2^63 bytes");
			goto fail;
		}
		/* Each set_new/append_new takes its value's reference, also on
		 * failure, and a NULL value just fails: no leaks either way. */
		if (json_object_set_new(root, name, ent = json_object()) ||
		    json_object_set_new(ent, "dtype", json_string(lt_dtype_name(e[i].dtype))) ||
		    json_object_set_new(ent, "shape", shape = json_array()) ||
		    json_object_set_new(ent, "data_offsets", offs = json_array()))
			goto nomem;
		for (int d = 0; d < e[i].ndim; d++)
			if (json_array_append_new(shape, json_integer(e[i].shape[d])))
				goto nomem;
		if (json_array_append_new(offs, json_integer((json_int_t)off)) ||
		    json_array_append_new(offs, json_integer((json_int_t)(off + nbytes))))
			goto nomem;
		off += nbytes;
	}

	size_t len = json_dumpb(root, NULL, 0, JSON_COMPACT);
	if (len == 0)
		goto nomem;
	size_t padded = (len + 7) & ~(size_t)7;
	if (!(text = lt_malloc(padded)))
		goto nomem;
	if (json_dumpb(root, text, len, JSON_COMPACT) != len)
		goto nomem;
	memset(text + len, ' ', padded - len);
	json_decref(root);
	*out = text;
	*outlen = padded;
	return 0;
nomem:
	rc = lt_err_set(err, LT_ENOMEM, "out of memory building the header");
fail:
	lt_free(text);
	json_decref(root);
	return rc;
}

int lt_safetensors_size(const lt_st_entry *e, size_t n, const lt_model *meta_of, uint64_t *bytes,
			lt_err *err)
{
	char *header;
	size_t hlen;
	int rc = build_header(e, n, meta_of, &header, &hlen, err);
	if (rc)
		return rc;
	lt_free(header);
	uint64_t total = 8 + hlen;
	for (size_t i = 0; i < n; i++)
		total += e[i].nbytes;
	*bytes = total;
	return 0;
}

/* The entries of m's tensors, in model order (caller frees). */
static lt_st_entry *model_entries(const lt_model *m, lt_err *err)
{
	size_t n = lt_model_tensor_count(m);
	lt_st_entry *e = lt_malloc_array(n ? n : 1, sizeof *e);
	if (!e) {
		lt_err_set(err, LT_ENOMEM, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		lt_tensor *t = lt_model_tensor_at(m, i);
		e[i] = (lt_st_entry){lt_model_tensor_name(m, i), lt_tensor_dtype(t), lt_tensor_ndim(t),
				     lt_tensor_shape(t), lt_tensor_raw(t), lt_tensor_nbytes(t)};
	}
	return e;
}

static int write_all(int fd, const void *data, size_t n)
{
	const char *p = data;
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (w == 0) {
			errno = EIO;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The process umask, read without changing it where Linux allows (changing
 * it briefly would race with other threads creating files). */
static mode_t current_umask(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	if (f) {
		char line[128];
		unsigned mask;
		while (fgets(line, sizeof line, f)) {
			if (sscanf(line, "Umask: %o", &mask) == 1) {
				fclose(f);
				return (mode_t)mask;
			}
		}
		fclose(f);
	}
	mode_t mask = umask(022);
	umask(mask);
	return mask;
}

/* Split path into its directory ("." if none) and a temporary file template
 * ".NAME.XXXXXX" in that directory; both lt_malloc'd. */
static int temp_paths(const char *path, char **dir, char **tmpl, lt_err *err)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	size_t dlen = slash ? (size_t)(slash - path) : 0;
	if (*base == '\0')
		return lt_err_set(err, LT_EINVAL, "cannot write %s: no file name", path);
	*dir = lt_malloc(dlen + 2);
	*tmpl = lt_malloc(dlen + strlen(base) + 10);
	if (!*dir || !*tmpl) {
		lt_free(*dir);
		lt_free(*tmpl);
		*dir = *tmpl = NULL;
		return lt_err_set(err, LT_ENOMEM, "out of memory");
	}
	if (!slash)
		strcpy(*dir, ".");
	else if (dlen == 0)
		strcpy(*dir, "/");
	else {
		memcpy(*dir, path, dlen);
		(*dir)[dlen] = '\0';
	}
	sprintf(*tmpl, "%.*s%s.%s.XXXXXX", (int)dlen, path, slash ? "/" : "", base);
	return 0;
}

int lt_safetensors_model_size(const lt_model *m, uint64_t *bytes, lt_err *err)
{
	lt_st_entry *e = model_entries(m, err);
	if (!e)
		return err ? err->code : LT_ENOMEM;
	int rc = lt_safetensors_size(e, lt_model_tensor_count(m), m, bytes, err);
	lt_free(e);
	return rc;
}

int lt_safetensors_save(const lt_model *m, const char *path, lt_err *err)
{
	lt_st_entry *e = model_entries(m, err);
	if (!e)
		return err ? err->code : LT_ENOMEM;
	int rc = lt_safetensors_write(path, e, lt_model_tensor_count(m), m, err);
	lt_free(e);
	return rc;
}

int lt_safetensors_write(const char *path, const lt_st_entry *e, size_t n, const lt_model *meta_of,
			 lt_err *err)
{
	char *header = NULL, *dir = NULL, *tmp = NULL;
	size_t hlen = 0;
	int fd = -1, created = 0, rc;
	struct stat st;
	mode_t mode;

	if ((rc = build_header(e, n, meta_of, &header, &hlen, err)))
		goto fail;
	if ((rc = temp_paths(path, &dir, &tmp, err)))
		goto fail;

	if (stat(path, &st) == 0) {
		if (!S_ISREG(st.st_mode)) {
			rc = lt_err_set(err, LT_EIO, "cannot write %s: not a regular file", path);
			goto fail;
		}
		mode = st.st_mode & 07777;
	} else if (errno == ENOENT) {
		mode = 0644 & ~current_umask();
	} else {
		rc = lt_err_set(err, LT_EIO, "cannot write %s: %s", path, strerror(errno));
		goto fail;
	}

	fd = mkstemp(tmp);
	if (fd < 0) {
		rc = lt_err_set(err, LT_EIO, "cannot write %s: cannot create a temporary file in %s: %s",
				path, dir, strerror(errno));
		goto fail;
	}
	created = 1;
	if (fchmod(fd, mode) != 0) {
		rc = lt_err_set(err, LT_EIO, "cannot set permissions of %s: %s", tmp, strerror(errno));
		goto fail;
	}

	uint8_t len8[8];
	put_le64(len8, hlen);
	if (write_all(fd, len8, 8) || write_all(fd, header, hlen))
		goto write_fail;
	for (size_t i = 0; i < n; i++)
		if (write_all(fd, e[i].data, e[i].nbytes))
			goto write_fail;
	if (fsync(fd) != 0) {
		rc = lt_err_set(err, LT_EIO, "cannot sync %s: %s", path, strerror(errno));
		goto fail;
	}
	int c = close(fd);
	fd = -1;
	if (c != 0)
		goto write_fail;
	if (rename(tmp, path) != 0) {
		rc = lt_err_set(err, LT_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
		goto fail;
	}
	created = 0;

	/* Make the rename itself durable. Past this point the new file is in
	 * place, so a failure is still reported but nothing is undone. */
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		rc = lt_err_set(err, LT_EIO, "wrote %s but cannot open directory %s to sync it: %s",
				path, dir, strerror(errno));
		goto fail;
	}
	if (fsync(dfd) != 0 && errno != EINVAL && errno != ENOTSUP) {
		rc = lt_err_set(err, LT_EIO, "wrote %s but cannot sync directory %s: %s",
				path, dir, strerror(errno));
		close(dfd);
		goto fail;
	}
	close(dfd);
	lt_free(header);
	lt_free(dir);
	lt_free(tmp);
	return 0;

write_fail:
	rc = lt_err_set(err, LT_EIO, "cannot write %s: %s", path, strerror(errno));
fail:
	if (fd >= 0)
		close(fd);
	if (created)
		unlink(tmp);
	lt_free(header);
	lt_free(dir);
	lt_free(tmp);
	return rc;
}
