#include "core/mem.h"

#include <stdlib.h>
#include <string.h>

/* Countdown for failure injection; negative means off. Not atomic: the
 * sweeps that use it run single-threaded. */
static long fail_countdown = -1;
static long alloc_count;

static int should_fail(void)
{
	alloc_count++;
	if (fail_countdown < 0)
		return 0;
	if (fail_countdown == 0)
		return 1;
	fail_countdown--;
	return 0;
}

long lt_mem_fail_after(long n)
{
	long made = alloc_count;
	alloc_count = 0;
	fail_countdown = n;
	return made;
}

void *lt_malloc(size_t n)
{
	return should_fail() ? NULL : malloc(n ? n : 1);
}

void *lt_calloc(size_t count, size_t size)
{
	return should_fail() ? NULL : calloc(count ? count : 1, size ? size : 1);
}

void *lt_realloc(void *p, size_t n)
{
	return should_fail() ? NULL : realloc(p, n ? n : 1);
}

void *lt_malloc_array(size_t count, size_t size)
{
	if (size && count > (size_t)-1 / size)
		return NULL;
	return lt_malloc(count * size);
}

void *lt_alloc_uninit(size_t n)
{
	if (should_fail())
		return NULL;
	void *p = NULL;
	size_t rounded = (n + 63) & ~(size_t)63;
	if (rounded < n || posix_memalign(&p, 64, rounded ? rounded : 64))
		return NULL;
	return p;
}

void *lt_alloc_aligned(size_t n)
{
	void *p = lt_alloc_uninit(n);
	if (p)
		memset(p, 0, n);
	return p;
}

char *lt_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = lt_malloc(n);
	if (d)
		memcpy(d, s, n);
	return d;
}

void lt_free(void *p)
{
	free(p);
}
