/*
 * strbuf.h — a growable byte buffer for the server's texts (response bodies, SSE events,
 * rendered prompts). Always NUL-terminated; memory from roe_malloc. A failed append sets
 * `oom` and leaves the buffer as it was, so a caller checks once at the end.
 */
#ifndef ROE_SERVER_STRBUF_H
#define ROE_SERVER_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

struct roe_strbuf {
    char *p; /* [cap], NUL-terminated at len */
    size_t len;
    size_t cap;
    int oom;
};

void roe_strbuf_append(struct roe_strbuf *b, const char *s, size_t n);
void roe_strbuf_puts(struct roe_strbuf *b, const char *s);
void roe_strbuf_printf(struct roe_strbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Drops the first n bytes. */
void roe_strbuf_consume(struct roe_strbuf *b, size_t n);
void roe_strbuf_free(struct roe_strbuf *b);

#endif
