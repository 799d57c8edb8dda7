#include "core/blob.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/mem.h"

struct lt_blob {
	int refs;              /* atomic: a worker thread may hold references */
	int mapped; /* munmap on release, else lt_free */
	uint8_t *data;
	size_t size;
};

lt_blob *lt_blob_map_file(const char *path, lt_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		lt_err_set(err, LT_EIO, "%s", strerror(errno));
		return NULL;
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		lt_err_set(err, LT_EIO, "%s", strerror(errno));
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		lt_err_set(err, LT_EIO, "is a directory");
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		lt_err_set(err, LT_EIO, "not a regular file");
		goto fail;
	}
	lt_blob *b = lt_calloc(1, sizeof *b);
	if (!b) {
		lt_err_set(err, LT_ENOMEM, "out of memory");
		goto fail;
	}
	b->refs = 1;
	b->mapped = 1;
	b->size = (size_t)st.st_size;
	if (b->size > 0) {
		void *p = mmap(NULL, b->size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (p == MAP_FAILED) {
			lt_err_set(err, LT_EIO, "cannot map file: %s", strerror(errno));
			lt_free(b);
			goto fail;
		}
		b->data = p;
	}
	close(fd);
	return b;
fail:
	close(fd);
	return NULL;
}

lt_blob *lt_blob_wrap(void *data, size_t size, lt_err *err)
{
	lt_blob *b = lt_calloc(1, sizeof *b);
	if (!b) {
		lt_free(data);
		lt_err_set(err, LT_ENOMEM, "out of memory");
		return NULL;
	}
	b->refs = 1;
	b->data = data;
	b->size = size;
	return b;
}

const uint8_t *lt_blob_data(const lt_blob *b)
{
	return b->data;
}

size_t lt_blob_size(const lt_blob *b)
{
	return b->size;
}

lt_blob *lt_blob_ref(lt_blob *b)
{
	if (b)
		__atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
	return b;
}

void lt_blob_unref(lt_blob *b)
{
	if (!b || __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	if (b->mapped) {
		if (b->size)
			munmap(b->data, b->size);
	} else {
		lt_free(b->data);
	}
	lt_free(b);
}
