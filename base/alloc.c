/* alloc.c — counting, fault-injectable allocator; see alloc.h. */
#include "alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_uint_fast64_t roe__n_alloc;
static atomic_uint_fast64_t roe__fail_countdown; /* 0: off; 1: next allocation fails */
static atomic_int roe__fail_sticky;
static atomic_uint_fast64_t roe__n_failed;
static atomic_uint_fast64_t roe__n_null; /* allocations not satisfied, injected or real */

/* Returns 1 if this allocation must fail (injected). */
static int roe__inject(void) {
    uint_fast64_t c = atomic_load(&roe__fail_countdown);
    if (c == 0) return 0;
    if (c == 1) {
        if (!atomic_load(&roe__fail_sticky)) atomic_store(&roe__fail_countdown, 0);
        atomic_fetch_add(&roe__n_failed, 1);
        return 1;
    }
    atomic_fetch_sub(&roe__fail_countdown, 1);
    return 0;
}

static void *roe__counted(void *p) {
    atomic_fetch_add(p ? &roe__n_alloc : &roe__n_null, 1);
    return p;
}

static void *roe__refused(void) {
    atomic_fetch_add(&roe__n_null, 1);
    return NULL;
}

void *roe_malloc(size_t n) {
    if (roe__inject()) return roe__refused();
    return roe__counted(malloc(n ? n : 1));
}

void *roe_calloc(size_t count, size_t size) {
    if (roe__inject()) return roe__refused();
    return roe__counted(calloc(count ? count : 1, size ? size : 1));
}

void *roe_realloc(void *p, size_t n) {
    if (roe__inject()) return roe__refused();
    return roe__counted(realloc(p, n ? n : 1));
}

void roe_free(void *p) { free(p); }

char *roe_strndup(const char *s, size_t n) {
    char *d = roe_malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *roe_strdup(const char *s) { return roe_strndup(s, strlen(s)); }

void *roe_malloc_aligned(size_t n) {
    if (roe__inject()) return roe__refused();
    void *p = NULL;
    size_t rounded = (n + 63) & ~(size_t)63;
    if (rounded < n || posix_memalign(&p, 64, rounded ? rounded : 64) != 0) return roe__refused();
    return roe__counted(p);
}

void roe_free_aligned(void *p) { free(p); }

roe_status roe_arrays_alloc(const struct roe_array *t, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++) {
        size_t bytes;
        if (!roe_size_mul(t[i].count ? t[i].count : 1, t[i].size, &bytes) ||
            !(*(void **)t[i].ptr = roe_malloc_aligned(bytes))) {
            roe_arrays_free(t, i);
            return roe_fail(ROE_ERR_NOMEM, "%s: out of memory for %zu x %zu bytes", what, t[i].count, t[i].size);
        }
        memset(*(void **)t[i].ptr, 0, bytes);
    }
    return ROE_OK;
}

void roe_arrays_free(const struct roe_array *t, size_t n) {
    for (size_t i = 0; i < n; i++) {
        roe_free_aligned(*(void **)t[i].ptr);
        *(void **)t[i].ptr = NULL;
    }
}

uint64_t roe_alloc_count(void) { return atomic_load(&roe__n_alloc); }

void roe_alloc_fail_after(uint64_t n, int sticky) {
    atomic_store(&roe__fail_sticky, sticky);
    atomic_store(&roe__fail_countdown, n);
}

uint64_t roe_alloc_failures(void) { return atomic_load(&roe__n_failed); }

uint64_t roe_alloc_null_count(void) { return atomic_load(&roe__n_null); }
