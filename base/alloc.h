/*
 * alloc.h — the runtime's allocator: every heap allocation of library code goes
 * through roe_malloc / roe_calloc / roe_realloc / roe_free.
 *
 * Two reasons, both from SQLite's playbook:
 *  - counting: tests assert that a decode step allocates nothing (roe_alloc_count()
 *    before and after);
 *  - fault injection: roe_alloc_fail_after(n) makes the n-th next allocation (and all
 *    after it, if `sticky`) return NULL, so every error path can be exercised.
 * The counters are process-wide atomics: they are test instrumentation, not state.
 * cJSON's allocations go through these functions too (base/json.c sets its hooks before main()).
 * roe_malloc returns NULL on failure; callers turn that into ROE_ERR_NOMEM with a
 * message naming what they were allocating.
 */
#ifndef ROE_ALLOC_H
#define ROE_ALLOC_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

void *roe_malloc(size_t n);
void *roe_calloc(size_t count, size_t size);
void *roe_realloc(void *p, size_t n);
void roe_free(void *p);
char *roe_strdup(const char *s);
char *roe_strndup(const char *s, size_t n);

/* Cache-line (64 B) aligned allocation for kernel buffers; free with roe_free_aligned. */
void *roe_malloc_aligned(size_t n);
void roe_free_aligned(void *p);

/* The arrays of one object, allocated and freed together from one table: each entry says
 * where its pointer goes and how many elements of what size. ROE_ARRAY(field, count) makes
 * an entry for a pointer field. Every array is 64-byte aligned and zeroed; on failure
 * roe_arrays_alloc frees what it got and says ROE_ERR_NOMEM, naming `what`. */
struct roe_array {
    void *ptr;    /* the address of the pointer field */
    size_t count; /* elements (0: one, so that the pointer is never NULL) */
    size_t size;  /* bytes each */
};
#define ROE_ARRAY(field, n) {(void *)&(field), (size_t)(n), sizeof *(field)}
#define ROE_N_OF(a) (sizeof(a) / sizeof((a)[0]))
roe_status roe_arrays_alloc(const struct roe_array *t, size_t n, const char *what);
void roe_arrays_free(const struct roe_array *t, size_t n);

/* Number of successful allocations since process start (all roe_* allocators). */
uint64_t roe_alloc_count(void);

/* Fault injection: the n-th allocation from now fails (n >= 1); with sticky != 0 all
 * later ones fail too. n == 0 disables injection. Returns nothing; see
 * roe_alloc_failures() for how many were injected. */
void roe_alloc_fail_after(uint64_t n, int sticky);
uint64_t roe_alloc_failures(void);

/* Number of allocations that returned NULL (injected or real) since process start: a
 * library that reports failure without saying why (cJSON) ran out of memory if this moved
 * during the call (runtime/json.h). */
uint64_t roe_alloc_null_count(void);

/* Overflow-checked size arithmetic: returns 0 and leaves *out untouched on overflow. */
static inline int roe_size_mul(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}
static inline int roe_size_add(size_t a, size_t b, size_t *out) {
    if (b > SIZE_MAX - a) return 0;
    *out = a + b;
    return 1;
}

#endif
