#include "core/mem.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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

/* Large blocks are placed on 2 MiB boundaries and offered to the kernel
 * as huge pages: first touching a 64 MB tensor then takes 32 page faults
 * instead of 16,384 (measured: magnitude pruning of a 4096 x 4096 matrix
 * spent most of its time faulting in fresh memory). */
#define HUGE_PAGE ((size_t)2 << 20)
#define HUGE_FROM ((size_t)8 << 20)

void *lt_alloc_uninit(size_t n)
{
	if (should_fail())
		return NULL;
	void *p = NULL;
	size_t align = n >= HUGE_FROM ? HUGE_PAGE : 64;
	size_t rounded = (n + align - 1) & ~(align - 1);
	if (rounded < n || posix_memalign(&p, align, rounded ? rounded : align))
		return NULL;
#ifdef MADV_HUGEPAGE
	if (align == HUGE_PAGE)
		madvise(p, rounded, MADV_HUGEPAGE); /* a hint: refusal changes nothing */
#endif
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
