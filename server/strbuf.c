/* strbuf.c — growable byte buffer; see strbuf.h. */
#include "strbuf.h"

#include <stdio.h>
#include <string.h>

#include "base/alloc.h"

static int grow(struct roe_strbuf *b, size_t extra) {
    if (b->oom) return 0;
    size_t need;
    if (!roe_size_add(b->len, extra, &need) || !roe_size_add(need, 1, &need)) {
        b->oom = 1;
        return 0;
    }
    if (need <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = roe_realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return 0;
    }
    b->p = p;
    b->cap = cap;
    return 1;
}

void roe_strbuf_append(struct roe_strbuf *b, const char *s, size_t n) {
    if (!grow(b, n)) return;
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void roe_strbuf_puts(struct roe_strbuf *b, const char *s) {
    roe_strbuf_append(b, s, strlen(s));
}

void roe_strbuf_printf(struct roe_strbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char tmp[512];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = 1;
        return;
    }
    if ((size_t)n < sizeof tmp) {
        roe_strbuf_append(b, tmp, (size_t)n);
        return;
    }
    if (!grow(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void roe_strbuf_consume(struct roe_strbuf *b, size_t n) {
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->p, b->p + n, b->len - n);
        b->len -= n;
    }
    if (b->p) b->p[b->len] = '\0';
}

void roe_strbuf_free(struct roe_strbuf *b) {
    roe_free(b->p);
    *b = (struct roe_strbuf){0};
}
