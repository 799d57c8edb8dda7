/* Allocation wrappers. Tests sweep allocation failures through a countdown:
 * after lt_mem_fail_after(n), the (n+1)-th allocation returns NULL. */
#ifndef LT_MEM_H
#define LT_MEM_H

#include <stddef.h>

void *lt_malloc(size_t n);
void *lt_calloc(size_t count, size_t size);
void *lt_realloc(void *p, size_t n);
/* malloc'd copy of s; caller frees. NULL on failure. */
char *lt_strdup(const char *s);
/* n*size bytes if that does not overflow, else NULL. */
void *lt_malloc_array(size_t count, size_t size);
/* Memory aligned to 64 bytes (cache line / AVX-512), zero-filled; free with
 * lt_free like the others. */
void *lt_alloc_aligned(size_t n);
/* Like lt_alloc_aligned without the zero fill, for buffers always written
 * before they are read: their pages are then first touched (and faulted
 * in) by whichever thread writes them, not all by the allocating one. */
void *lt_alloc_uninit(size_t n);
void lt_free(void *p);

/* Test hook: fail every allocation after the next n succeed; n < 0 turns
 * failure injection off. Returns how many allocations have been made since
 * the last call (so a sweep knows when it has covered every site). */
long lt_mem_fail_after(long n);

#endif
