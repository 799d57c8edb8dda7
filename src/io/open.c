#include "io/open.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "core/mem.h"
#include "io/packed.h"
#include "io/safetensors.h"

lt_file_kind lt_file_sniff(const char *path, lt_err *err)
{
	unsigned char head[16] = {0};
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		lt_err_set(err, LT_EIO, "%s", strerror(errno));
		return LT_FILE_UNKNOWN;
	}
	ssize_t got = read(fd, head, sizeof head);
	int saved = errno;
	close(fd);
	if (got < 0) {
		lt_err_set(err, LT_EIO, "%s", strerror(saved));
		return LT_FILE_UNKNOWN;
	}
	/* safetensors: u64 header length, then a JSON object. */
	if (got >= 9 && head[8] == '{')
		return LT_FILE_SAFETENSORS;
	/* IDX: two zero bytes, a type code, a dimension count; or gzip. */
	if (got >= 4 && head[0] == 0 && head[1] == 0 &&
	    (head[2] == 0x08 || head[2] == 0x09 || (head[2] >= 0x0b && head[2] <= 0x0e)))
		return LT_FILE_IDX;
	if (got >= 2 && head[0] == 0x1f && head[1] == 0x8b)
		return LT_FILE_IDX;
	/* Names decide only between formats whose bytes are already broken, so
	 * the user hears the real reason from the right parser. */
	size_t n = strlen(path);
	if (n > 12 && !strcmp(path + n - 12, ".safetensors"))
		return LT_FILE_SAFETENSORS;
	if (strstr(path, "idx") || strstr(path, "ubyte"))
		return LT_FILE_IDX;
	if (got == 0)
		lt_err_set(err, LT_EFORMAT, "empty file");
	else
		lt_err_set(err, LT_EFORMAT, "not a safetensors model or IDX dataset");
	return LT_FILE_UNKNOWN;
}

lt_model *lt_model_open(const char *path, lt_err *err)
{
	lt_model *m = lt_safetensors_load(path, err);
	if (!m)
		return NULL;
	if (lt_packed_has(m)) { /* lathe's packed form: decode it */
		lt_model *u = lt_packed_unpack(m, err);
		lt_model_unref(m);
		if (!(m = u))
			return NULL;
	}
	if (lt_model_load_arch(m, err)) {
		lt_model_unref(m);
		return NULL;
	}
	return m;
}

int lt_model_save(lt_model *m, const char *path, lt_err *err)
{
	lt_graph *g = lt_model_graph(m);
	if (g && !lt_model_graph_in_meta(m)) {
		char *json = lt_graph_to_json(g, err);
		if (!json)
			return err ? err->code : LT_ENOMEM;
		int rc = lt_model_set_meta(m, LT_ARCH_META_KEY, json, err);
		lt_free(json);
		if (rc)
			return rc;
	}
	return lt_safetensors_save(m, path, err);
}

int lt_model_save_as(lt_model *m, const char *path, lt_save_form form, int *packed, lt_err *err)
{
	int pack = form == LT_SAVE_PACKED;
	if (packed)
		*packed = 0;
	if (form == LT_SAVE_AUTO) {
		lt_packed_report r = {0};
		uint64_t plain;
		int rc = lt_packed_measure(m, &r, err);
		if (rc || (rc = lt_safetensors_model_size(m, &plain, err))) {
			lt_packed_report_free(&r);
			return rc;
		}
		pack = r.file_bytes < plain;
		lt_packed_report_free(&r);
	}
	if (!pack) {
		if (packed)
			*packed = 0;
		return lt_model_save(m, path, err);
	}
	/* "packed" when some tensor is: a packed file of nothing worth packing
	 * is the plain file */
	lt_packed_report r = {0};
	int rc = lt_packed_save(m, path, &r, err);
	for (size_t i = 0; packed && i < r.n; i++)
		*packed |= r.t[i].packed;
	if (packed && r.n == 0)
		*packed = 0;
	lt_packed_report_free(&r);
	return rc;
}
