/*
 * front.c — the listening socket, first request heads, limits, deadlines, eviction; see
 * front.h.
 *
 * One table of connections, under one mutex: the accepting thread's (PENDING: sending a first
 * head; CLOSING: answered with an error, its rest drained before close so that the answer is
 * not lost to a reset) and libmicrohttpd's (HANDED to it, then HEAD, BODY, BUSY, IDLE as its
 * callbacks report). A held connection's socket is only ever shut down from here (to evict it
 * or end it at a deadline), under the mutex, while its entry exists: libmicrohttpd closes the
 * socket after NOTIFY_CLOSED has removed the entry, so a shutdown never reaches a reused fd.
 */
#define _GNU_SOURCE /* accept4 */
#include "front.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#ifdef ROE_HAVE_GNUTLS
#include <gnutls/gnutls.h>
#endif

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "openai.h"

enum { EVICT_SLACK = 16 };            /* held connections being evicted, over the limit meanwhile */
enum { N_OFFENDERS = 512 };           /* addresses remembered for having been evicted or timed out */
static const double OFFENDER_S = 30;  /* for this long */
static const double TICK_S = 0.1;      /* deadlines are checked this often */
static const double GRACE_S = 0.5;     /* a held connection this young is not evicted mid-request */
static const double LINGER_S = 1.0;    /* an answered error's connection is drained this long */

typedef enum cstate {
    C_FREE = 0,
    C_PENDING, /* ours: the first head is coming */
    C_TARPIT,  /* ours: a whole head from an offender while every slot is taken; its deadline ends it */
    C_CLOSING, /* ours: answered (an error), draining before close */
    C_HANDED,  /* libmicrohttpd's, no request line yet */
    C_HEAD,
    C_BODY,
    C_BUSY,
    C_IDLE,
    C_EVICTED, /* libmicrohttpd's, shut down by us; gone at its NOTIFY_CLOSED */
} cstate;

struct fconn {
    int fd;
    cstate st;
    int probe;   /* handed over as a probe (/health, /metrics) */
    int tls;
    int answered; /* a request of it was answered (IDLE is then keep-alive) */
    double t;    /* when st began */
    double t0;   /* accepted */
    struct MHD_Connection *c;
    struct sockaddr_storage sa;
    socklen_t salen;
    char addr[64]; /* the client address, for the per-address limit */
};

struct roe_front {
    struct roe_front_opts o;
    struct MHD_Daemon *d;
    int listen_fd;
    int port;
    int wake[2]; /* wakes the thread: quiesce, stop */
    int stopping, quiesce;
    pthread_t thread;
    int running;
    pthread_mutex_t mu; /* guards everything below */
    struct fconn *c;    /* [cap] */
    int cap;
    struct roe_front_stats st;
    char *buf; /* [max_header_bytes + 1] the thread's peek buffer */
    struct {
        char addr[64];
        double until;
    } offender[N_OFFENDERS]; /* addresses whose connections were evicted or timed out lately */
    int next_offender;
};

/* The connection of libmicrohttpd's thread that runs this code: set when its request line
 * arrives (roe_front_request_line), read by the logger (roe_front_replace_error) to find the
 * connection libmicrohttpd is about to answer. A thread-local because the logger is told
 * nothing else, and each of libmicrohttpd's threads serves one connection. */
static __thread struct MHD_Connection *tl_conn;

const char *roe_front_reason(int http) {
    switch (http) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

/* ---- the table (f->mu held) ---- */

static int count(const roe_front *f, int held) {
    int n = 0;
    for (int i = 0; i < f->cap; i++) {
        const cstate s = f->c[i].st;
        n += held ? s >= C_HANDED : (s == C_PENDING || s == C_TARPIT);
    }
    return n;
}

/* Offenders: an address whose connection was evicted or ended at a deadline cannot make room
 * for itself by evicting others for a while (its whole heads wait in the tarpit instead), so
 * that clients that misbehave evict each other no more, and a client that behaves always can. */
static void offend(roe_front *f, const char *addr) {
    int k = -1;
    for (int i = 0; i < N_OFFENDERS && k < 0; i++)
        if (strcmp(f->offender[i].addr, addr) == 0) k = i;
    if (k < 0) {
        k = f->next_offender;
        f->next_offender = (f->next_offender + 1) % N_OFFENDERS;
        snprintf(f->offender[k].addr, sizeof f->offender[k].addr, "%s", addr);
    }
    f->offender[k].until = roe_now_s() + OFFENDER_S;
}

static int is_offender(const roe_front *f, const char *addr) {
    const double now = roe_now_s();
    for (int i = 0; i < N_OFFENDERS; i++)
        if (f->offender[i].until > now && strcmp(f->offender[i].addr, addr) == 0) return 1;
    return 0;
}

static int count_addr(const roe_front *f, const char *addr) {
    int n = 0;
    for (int i = 0; i < f->cap; i++)
        n += f->c[i].st != C_FREE && f->c[i].st != C_CLOSING && strcmp(f->c[i].addr, addr) == 0;
    return n;
}

static struct fconn *by_fd(roe_front *f, int fd) {
    for (int i = 0; i < f->cap; i++)
        if (f->c[i].st != C_FREE && f->c[i].fd == fd) return &f->c[i];
    return NULL;
}

static struct fconn *by_conn(roe_front *f, const struct MHD_Connection *c) {
    for (int i = 0; i < f->cap; i++)
        if (f->c[i].st >= C_HANDED && f->c[i].c == c) return &f->c[i];
    return NULL;
}

static struct fconn *free_entry(roe_front *f) {
    for (int i = 0; i < f->cap; i++)
        if (f->c[i].st == C_FREE) return &f->c[i];
    return NULL;
}

static void set_state(struct fconn *e, cstate s) {
    e->st = s;
    e->t = roe_now_s();
}

/* ---- answering from here ---- */

/* Writes all of b (a non-blocking socket: waits for room, at most a second). */
static void write_all(int fd, const char *b, size_t n) {
    const double until = roe_now_s() + 1.0;
    while (n > 0 && roe_now_s() < until) {
        const ssize_t w = send(fd, b, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            b += w;
            n -= (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            poll(&p, 1, 100);
        } else
            return;
    }
}

/* The bytes of an HTTP error response with an OpenAI-style JSON body (malloc'd, *n its length;
 * NULL: out of memory). */
static char *error_response(int http, const char *code, const char *msg, size_t *n) {
    struct roe_api_error e;
    roe_api_fail_http(&e, http, "%s", msg);
    if (code) e.code = code;
    char *body = roe_api_error_json(&e);
    if (!body) return NULL;
    char retry[40] = "";
    if (e.retry_after > 0) snprintf(retry, sizeof retry, "Retry-After: %d\r\n", e.retry_after);
    const size_t bl = strlen(body), cap = bl + 256;
    char *out = malloc(cap);
    if (out) {
        const int h = snprintf(out, cap,
                               "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                               "%sConnection: close\r\n\r\n",
                               http, roe_front_reason(http), bl, retry);
        memcpy(out + h, body, bl);
        *n = (size_t)h + bl;
    }
    free(body);
    return out;
}

/* Answers one of our connections with an error and starts its lingering close. */
static void refuse(roe_front *f, struct fconn *e, int http, const char *code, const char *msg) {
    size_t n = 0;
    char *r = error_response(http, code, msg, &n);
    /* what the client sent is read first: closing with unread data would reset the
     * connection and lose the answer */
    char sink[4096];
    while (recv(e->fd, sink, sizeof sink, MSG_DONTWAIT) > 0) {
    }
    if (r) write_all(e->fd, r, n);
    free(r);
    shutdown(e->fd, SHUT_WR);
    set_state(e, C_CLOSING);
    if (http == 429 && code && strcmp(code, "too_many_connections_from_address") == 0) f->st.refused_address++;
    else if (http == 429) f->st.refused_full++;
    else if (http == 408) f->st.timed_out++;
    else f->st.malformed++;
}

static void close_entry(struct fconn *e) {
    close(e->fd);
    memset(e, 0, sizeof *e);
}

/* ---- a first request head, read with MSG_PEEK ---- */

struct head {
    int probe;
    int http; /* 0: fine; else the status to refuse it with */
    const char *code;
    char msg[256];
};

static int is_tchar(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c);
}

/* The length of the head in b[0, n) through its empty line, or 0 if it is not whole yet. */
static size_t head_end(const char *b, size_t n) {
    for (size_t i = 0; i + 1 < n; i++) {
        if (b[i] != '\n') continue;
        if (b[i + 1] == '\n') return i + 2;
        if (b[i + 1] == '\r' && i + 2 < n && b[i + 2] == '\n') return i + 3;
    }
    return 0;
}

static int bad(struct head *h, int http, const char *code, const char *fmt, const char *arg) {
    h->http = http;
    h->code = code;
    snprintf(h->msg, sizeof h->msg, fmt, arg);
    return -1;
}

/* The request line "METHOD /target HTTP/1.x". */
static int request_line(const char *l, size_t n, struct head *h, int *http11) {
    const char *sp1 = memchr(l, ' ', n);
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - l)) : NULL;
    if (!sp1 || !sp2 || sp1 == l || sp2 == sp1 + 1 || memchr(sp2 + 1, ' ', n - (size_t)(sp2 + 1 - l)))
        return bad(h, 400, "malformed_request", "the request line is not 'METHOD /path HTTP/1.1'%s", "");
    for (const char *p = l; p < sp1; p++)
        if (!is_tchar(*p)) return bad(h, 400, "malformed_request", "the request method is not a token%s", "");
    for (const char *p = sp1 + 1; p < sp2; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return bad(h, 400, "malformed_request", "the request target has a control character%s", "");
    if (sp1[1] != '/') return bad(h, 400, "malformed_request", "the request target must be a path starting with '/'%s", "");
    const size_t vl = n - (size_t)(sp2 + 1 - l);
    const char *v = sp2 + 1;
    if (vl == 8 && memcmp(v, "HTTP/1.1", 8) == 0) *http11 = 1;
    else if (vl == 8 && memcmp(v, "HTTP/1.0", 8) == 0) *http11 = 0;
    else if (vl >= 5 && memcmp(v, "HTTP/", 5) == 0)
        return bad(h, 505, "http_version_not_supported", "%s", "this server speaks HTTP/1.0 and HTTP/1.1");
    else return bad(h, 400, "malformed_request", "the request line has no HTTP version%s", "");
    const size_t pl = (size_t)(sp2 - sp1 - 1);
    const char *q = memchr(sp1 + 1, '?', pl);
    const size_t path_len = q ? (size_t)(q - sp1 - 1) : pl;
    const int get = sp1 - l == 3 && memcmp(l, "GET", 3) == 0;
    h->probe = get && ((path_len == 7 && memcmp(sp1 + 1, "/health", 7) == 0) ||
                       (path_len == 8 && memcmp(sp1 + 1, "/metrics", 8) == 0));
    return 0;
}

/* The value of a header line "Name: value" whose name is `name` (NULL otherwise). */
static const char *header_value(const char *l, size_t n, const char *name, size_t *vl) {
    const size_t k = strlen(name);
    if (n <= k || l[k] != ':' || strncasecmp(l, name, k) != 0) return NULL;
    const char *v = l + k + 1, *end = l + n;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t')) end--;
    *vl = (size_t)(end - v);
    return v;
}

struct framing {
    int hosts, te;
    long long cl; /* -1: none */
};

/* One header line: its syntax, and the headers that frame the body. */
static int header_line(const char *l, size_t n, const struct roe_front_opts *o, struct framing *fr, struct head *h) {
    if (l[0] == ' ' || l[0] == '\t')
        return bad(h, 400, "malformed_request", "a header line is folded (starts with whitespace)%s", "");
    const char *colon = memchr(l, ':', n);
    if (!colon || colon == l) return bad(h, 400, "malformed_request", "a header line has no 'Name:'%s", "");
    for (const char *p = l; p < colon; p++)
        if (!is_tchar(*p)) return bad(h, 400, "malformed_request", "a header name is not a token%s", "");
    for (const char *p = colon + 1; p < l + n; p++)
        if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
            return bad(h, 400, "malformed_request", "a header value has a control character%s", "");
    size_t vl;
    const char *v;
    if (header_value(l, n, "host", &vl)) fr->hosts++;
    if ((v = header_value(l, n, "transfer-encoding", &vl))) {
        if (!(vl == 7 && strncasecmp(v, "chunked", 7) == 0))
            return bad(h, 501, "unsupported_transfer_encoding", "%s", "only 'Transfer-Encoding: chunked' is supported");
        fr->te = 1;
    }
    if ((v = header_value(l, n, "content-length", &vl))) {
        long long x = 0;
        if (vl == 0 || vl > 18) return bad(h, 400, "malformed_request", "Content-Length is not a byte count%s", "");
        for (size_t i = 0; i < vl; i++) {
            if (v[i] < '0' || v[i] > '9') return bad(h, 400, "malformed_request", "Content-Length is not a byte count%s", "");
            x = x * 10 + (v[i] - '0');
        }
        if (fr->cl >= 0 && fr->cl != x) return bad(h, 400, "malformed_request", "two different Content-Length headers%s", "");
        fr->cl = x;
        if ((unsigned long long)x > o->max_body_bytes) {
            char m[128];
            snprintf(m, sizeof m, "the request body (%lld bytes) exceeds the limit of %zu bytes", x, o->max_body_bytes);
            return bad(h, 413, "request_too_large", "%s", m);
        }
    }
    return 0;
}

/* Checks a whole head b[0, n) as libmicrohttpd would parse it (and the framing it would trust). */
static int check_head(const char *b, size_t n, const struct roe_front_opts *o, struct head *h) {
    memset(h, 0, sizeof *h);
    size_t i = 0;
    while (i < n && (b[i] == '\r' || b[i] == '\n')) i++; /* empty lines before a request are allowed */
    int http11 = 0, line = 0;
    struct framing fr = {.cl = -1};
    while (i < n) {
        const char *nl = memchr(b + i, '\n', n - i);
        if (!nl) break;
        size_t len = (size_t)(nl - (b + i));
        if (len && b[i + len - 1] == '\r') len--;
        if (memchr(b + i, '\r', len)) return bad(h, 400, "malformed_request", "a bare CR inside a header line%s", "");
        if (len == 0) break; /* the empty line: the end */
        if (line++ == 0 ? request_line(b + i, len, h, &http11) : header_line(b + i, len, o, &fr, h)) return -1;
        i = (size_t)(nl - b) + 1;
    }
    if (line == 0) return bad(h, 400, "malformed_request", "an empty request%s", "");
    if (http11 && fr.hosts != 1) return bad(h, 400, "malformed_request", "%s", "an HTTP/1.1 request needs exactly one Host header");
    if (fr.te && fr.cl >= 0)
        return bad(h, 400, "malformed_request", "%s", "Content-Length and Transfer-Encoding together are ambiguous");
    return 0;
}

/* ---- admission ---- */

/* The held connection to evict for a newcomer: one waiting on its client (idle, or still
 * sending a request past a short grace), an offender's first, then the oldest; NULL: every
 * held connection is the server's work. */
static struct fconn *evictable(roe_front *f) {
    const double now = roe_now_s();
    struct fconn *best = NULL;
    int best_off = 0;
    for (int i = 0; i < f->cap; i++) {
        struct fconn *e = &f->c[i];
        const int waiting = e->st == C_IDLE || ((e->st == C_HANDED || e->st == C_HEAD || e->st == C_BODY) &&
                                                now - e->t >= GRACE_S);
        if (!waiting) continue;
        const int off = is_offender(f, e->addr);
        if (!best || off > best_off || (off == best_off && e->t < best->t)) best = e, best_off = off;
    }
    return best;
}

static void evict(roe_front *f, struct fconn *e) {
    shutdown(e->fd, SHUT_RDWR); /* libmicrohttpd sees the end and closes it */
    set_state(e, C_EVICTED);
    offend(f, e->addr);
    f->st.evicted++;
}

/* A whole, valid first head (or a TLS connection, at once): to libmicrohttpd, if it has room.
 * Called with f->mu held; returns with it held. */
static void hand_over(roe_front *f, struct fconn *e, int probe) {
    const int held = count(f, 1), limit = f->o.max_connections;
    if (held >= limit && !(probe && held < limit + ROE_FRONT_PROBE_EXTRA)) {
        if (!e->tls && is_offender(f, e->addr)) {
            set_state(e, C_TARPIT); /* no answer; its header deadline ends it (408) */
            return;
        }
        struct fconn *v = evictable(f);
        if (!v || held >= limit + EVICT_SLACK) {
            if (e->tls) { /* nothing to say in plain text to a TLS client */
                close_entry(e);
                f->st.refused_full++;
                return;
            }
            char m[160];
            snprintf(m, sizeof m, "too many connections: the server serves %d at a time and every one is busy; retry later",
                     limit);
            refuse(f, e, 429, "too_many_connections", m);
            return;
        }
        evict(f, v);
    }
    e->probe = probe;
    set_state(e, C_HANDED);
    const int fd = e->fd;
    struct sockaddr_storage sa = e->sa;
    const socklen_t salen = e->salen;
    /* libmicrohttpd calls roe_front_attach from inside, which takes the mutex */
    pthread_mutex_unlock(&f->mu);
    const enum MHD_Result ok = MHD_add_connection(f->d, fd, (const struct sockaddr *)&sa, salen);
    pthread_mutex_lock(&f->mu);
    if (ok != MHD_YES) { /* it closed the socket */
        struct fconn *x = by_fd(f, fd);
        if (x && x->st == C_HANDED && !x->c) memset(x, 0, sizeof *x);
        ROE_LOG_WARN("http", "libmicrohttpd refused a connection: %s", strerror(errno));
    }
}

/* A pending connection's bytes: a whole head is checked and handed over. */
static void on_readable(roe_front *f, struct fconn *e) {
    const ssize_t n = recv(e->fd, f->buf, f->o.max_header_bytes, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        close_entry(e); /* the client left */
        return;
    }
    if (n < 0) return;
    const size_t end = head_end(f->buf, (size_t)n);
    if (!end) {
        if ((size_t)n >= f->o.max_header_bytes) {
            char m[128];
            snprintf(m, sizeof m, "the request line and headers exceed the limit of %zu bytes", f->o.max_header_bytes);
            refuse(f, e, 431, "request_header_too_large", m);
        }
        return;
    }
    struct head h;
    if (check_head(f->buf, end, &f->o, &h) != 0) {
        refuse(f, e, h.http, h.code, h.msg);
        return;
    }
    hand_over(f, e, h.probe);
}

static void on_accept(roe_front *f, int fd, const struct sockaddr_storage *sa, socklen_t salen) {
    char addr[64] = "?";
    if (sa->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, addr, sizeof addr);
    else if (sa->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, addr, sizeof addr);
    pthread_mutex_lock(&f->mu);
    struct fconn *e = free_entry(f);
    if (!e || (count(f, 0) >= f->o.max_pending && !f->o.tls)) { /* the oldest slow head makes room */
        struct fconn *old = NULL;
        for (int i = 0; i < f->cap; i++)
            if ((f->c[i].st == C_PENDING || f->c[i].st == C_TARPIT) && (!old || f->c[i].t0 < old->t0)) old = &f->c[i];
        if (old) {
            offend(f, old->addr);
            close_entry(old);
            f->st.evicted++;
        }
        e = e ? e : free_entry(f);
    }
    if (!e) { /* every entry is held by libmicrohttpd or closing: no room at all */
        close(fd);
        f->st.refused_full++;
        pthread_mutex_unlock(&f->mu);
        return;
    }
    *e = (struct fconn){.fd = fd, .tls = f->o.tls, .sa = *sa, .salen = salen};
    snprintf(e->addr, sizeof e->addr, "%s", addr);
    e->t0 = roe_now_s();
    set_state(e, C_PENDING);
    if (f->o.max_per_address > 0 && count_addr(f, addr) > f->o.max_per_address) {
        char m[160];
        snprintf(m, sizeof m, "too many connections from %s: at most %d at a time; retry later", addr, f->o.max_per_address);
        if (e->tls) {
            close_entry(e);
            f->st.refused_address++;
        } else
            refuse(f, e, 429, "too_many_connections_from_address", m);
    } else if (e->tls)
        hand_over(f, e, 0);
    pthread_mutex_unlock(&f->mu);
}

/* ---- deadlines ---- */

/* A held connection past its deadline: a request under way is told 408 (nothing of its
 * answer has gone out: the client is still sending it), then the connection ends. */
static void expire_held(roe_front *f, struct fconn *e, const char *what, double limit) {
    if ((e->st == C_HEAD || e->st == C_BODY) && !e->tls) {
        size_t n = 0;
        char m[160];
        snprintf(m, sizeof m, "the request's %s did not arrive within %.0f s", what, limit);
        char *r = error_response(408, "request_timeout", m, &n);
        if (r) write_all(e->fd, r, n);
        free(r);
    }
    shutdown(e->fd, SHUT_RDWR);
    set_state(e, C_EVICTED);
    offend(f, e->addr);
    f->st.timed_out++;
}

static void reap(roe_front *f) {
    const double now = roe_now_s();
    const struct roe_front_opts *o = &f->o;
    for (int i = 0; i < f->cap; i++) {
        struct fconn *e = &f->c[i];
        const double age = now - e->t;
        switch (e->st) {
        case C_PENDING:
        case C_TARPIT:
            if (now - e->t0 > o->header_timeout_s) {
                char m[128];
                snprintf(m, sizeof m, "the request's headers did not arrive within %.0f s", o->header_timeout_s);
                offend(f, e->addr);
                refuse(f, e, 408, "request_timeout", m);
            }
            break;
        case C_CLOSING:
            if (age > LINGER_S) close_entry(e);
            break;
        case C_HANDED: /* TLS: the handshake and the first request line */
            if (age > o->header_timeout_s) expire_held(f, e, "headers", o->header_timeout_s);
            break;
        case C_HEAD:
            if (age > o->header_timeout_s) expire_held(f, e, "headers", o->header_timeout_s);
            break;
        case C_BODY:
            if (age > o->body_timeout_s) expire_held(f, e, "body", o->body_timeout_s);
            break;
        case C_IDLE:
            if (age > o->idle_timeout_s) expire_held(f, e, "next request", o->idle_timeout_s);
            break;
        default: break;
        }
    }
}

/* ---- the thread ---- */

/* Closing connections' late bytes are read and dropped; at their end they close. */
static void drain(struct fconn *e) {
    char sink[4096];
    const ssize_t n = recv(e->fd, sink, sizeof sink, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) close_entry(e);
}

static void accept_all(roe_front *f) {
    for (;;) {
        struct sockaddr_storage sa;
        socklen_t salen = sizeof sa;
        const int fd = accept4(f->listen_fd, (struct sockaddr *)&sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return; /* EAGAIN: all taken; EMFILE and the like: the next tick retries */
        on_accept(f, fd, &sa, salen);
    }
}

static void *front_thread(void *arg) {
    roe_front *f = arg;
    struct pollfd *p = roe_calloc((size_t)f->cap + 2, sizeof *p);
    int *idx = roe_calloc((size_t)f->cap + 2, sizeof *idx);
    while (p && idx) {
        pthread_mutex_lock(&f->mu);
        if (f->stopping) {
            pthread_mutex_unlock(&f->mu);
            break;
        }
        int n = 0;
        p[n++] = (struct pollfd){.fd = f->wake[0], .events = POLLIN};
        p[n++] = (struct pollfd){.fd = f->quiesce ? -1 : f->listen_fd, .events = POLLIN};
        for (int i = 0; i < f->cap; i++)
            if (f->c[i].st == C_PENDING || f->c[i].st == C_CLOSING) {
                idx[n] = i;
                p[n++] = (struct pollfd){.fd = f->c[i].fd, .events = POLLIN};
            }
        pthread_mutex_unlock(&f->mu);
        poll(p, (nfds_t)n, (int)(TICK_S * 1000));
        if (p[0].revents & POLLIN) {
            char b[16];
            while (read(f->wake[0], b, sizeof b) > 0) {
            }
        }
        if (p[1].revents & POLLIN) accept_all(f);
        pthread_mutex_lock(&f->mu);
        for (int k = 2; k < n; k++) {
            struct fconn *e = &f->c[idx[k]];
            if (!(p[k].revents & (POLLIN | POLLHUP | POLLERR)) || e->fd != p[k].fd) continue;
            if (e->st == C_PENDING)
                on_readable(f, e);
            else if (e->st == C_CLOSING)
                drain(e);
        }
        reap(f);
        pthread_mutex_unlock(&f->mu);
    }
    roe_free(p);
    roe_free(idx);
    return NULL;
}

/* ---- start and stop ---- */

static roe_status listen_on(roe_front *f) {
    char service[16];
    snprintf(service, sizeof service, "%d", f->o.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    const int gai = getaddrinfo(f->o.host, service, &hints, &ai);
    if (gai != 0 || !ai)
        return roe_fail(ROE_ERR_INVALID_ARG, "server: cannot resolve host '%s': %s", f->o.host, gai_strerror(gai));
    const int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const int one = 1;
    int err = 0;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 511) != 0)
        err = errno;
    freeaddrinfo(ai);
    if (err) {
        if (fd >= 0) close(fd);
        return roe_fail(ROE_ERR_IO, "server: cannot listen on %s port %d: %s", f->o.host, f->o.port, strerror(err));
    }
    struct sockaddr_storage sa;
    socklen_t salen = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &salen);
    f->port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                             : ((struct sockaddr_in *)&sa)->sin_port);
    f->listen_fd = fd;
    return ROE_OK;
}

roe_status roe_front_start(const struct roe_front_opts *o, struct MHD_Daemon *d, roe_front **out) {
    *out = NULL;
    roe_front *f = roe_calloc(1, sizeof *f);
    if (!f) return roe_fail(ROE_ERR_NOMEM, "server: out of memory");
    f->o = *o;
    f->d = d;
    f->listen_fd = f->wake[0] = f->wake[1] = -1;
    f->cap = o->max_pending + o->max_connections + ROE_FRONT_PROBE_EXTRA + EVICT_SLACK + 64; /* + closing */
    f->c = roe_calloc((size_t)f->cap, sizeof *f->c);
    f->buf = roe_malloc(o->max_header_bytes + 1);
    pthread_mutex_init(&f->mu, NULL);
    roe_status st = !f->c || !f->buf ? roe_fail(ROE_ERR_NOMEM, "server: out of memory for %d connections", f->cap)
                                     : listen_on(f);
    if (st == ROE_OK && pipe2(f->wake, O_NONBLOCK | O_CLOEXEC) != 0)
        st = roe_fail(ROE_ERR_IO, "server: cannot create a pipe: %s", strerror(errno));
    if (st == ROE_OK && pthread_create(&f->thread, NULL, front_thread, f) != 0)
        st = roe_fail(ROE_ERR_IO, "server: cannot start the accepting thread");
    if (st != ROE_OK) {
        roe_front_free(f);
        return st;
    }
    f->running = 1;
    *out = f;
    return ROE_OK;
}

int roe_front_port(const roe_front *f) { return f->port; }

static void wake(roe_front *f) {
    const char b = 1;
    if (write(f->wake[1], &b, 1) < 0) { /* a full pipe already wakes it */
    }
}

void roe_front_quiesce(roe_front *f) {
    pthread_mutex_lock(&f->mu);
    f->quiesce = 1;
    pthread_mutex_unlock(&f->mu);
    wake(f);
}

void roe_front_stop(roe_front *f) {
    if (!f || !f->running) return;
    pthread_mutex_lock(&f->mu);
    f->stopping = 1;
    pthread_mutex_unlock(&f->mu);
    wake(f);
    pthread_join(f->thread, NULL);
    f->running = 0;
    for (int i = 0; i < f->cap; i++)
        if (f->c[i].st == C_PENDING || f->c[i].st == C_TARPIT || f->c[i].st == C_CLOSING) close_entry(&f->c[i]);
}

void roe_front_free(roe_front *f) {
    if (!f) return;
    roe_front_stop(f);
    if (f->listen_fd >= 0) close(f->listen_fd);
    for (int i = 0; i < 2; i++)
        if (f->wake[i] >= 0) close(f->wake[i]);
    pthread_mutex_destroy(&f->mu);
    roe_free(f->c);
    roe_free(f->buf);
    roe_free(f);
}

void roe_front_get_stats(roe_front *f, struct roe_front_stats *out) {
    pthread_mutex_lock(&f->mu);
    *out = f->st;
    out->pending = count(f, 0);
    out->held = count(f, 1);
    pthread_mutex_unlock(&f->mu);
}

/* ---- libmicrohttpd's side ---- */

void *roe_front_attach(roe_front *f, struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return NULL;
    pthread_mutex_lock(&f->mu);
    struct fconn *e = by_fd(f, ci->connect_fd);
    if (e && e->st == C_HANDED) e->c = c;
    pthread_mutex_unlock(&f->mu);
    return e && e->c == c ? e : NULL;
}

void roe_front_detach(roe_front *f, void *ctx) {
    if (!ctx) return;
    pthread_mutex_lock(&f->mu);
    memset(ctx, 0, sizeof(struct fconn)); /* libmicrohttpd closes the socket itself, next */
    pthread_mutex_unlock(&f->mu);
}

void roe_front_request_line(roe_front *f, struct MHD_Connection *c) {
    tl_conn = c;
    pthread_mutex_lock(&f->mu);
    struct fconn *e = by_conn(f, c);
    if (e && e->st != C_EVICTED) set_state(e, C_HEAD);
    pthread_mutex_unlock(&f->mu);
}

void roe_front_set_state(roe_front *f, void *ctx, roe_front_state st) {
    if (!ctx) return;
    static const cstate map[] = {[ROE_FRONT_HEAD] = C_HEAD, [ROE_FRONT_BODY] = C_BODY, [ROE_FRONT_BUSY] = C_BUSY,
                                 [ROE_FRONT_IDLE] = C_IDLE};
    pthread_mutex_lock(&f->mu);
    struct fconn *e = ctx;
    if (e->st >= C_HANDED && e->st != C_EVICTED) set_state(e, map[st]);
    pthread_mutex_unlock(&f->mu);
}

/* Sends bytes on a held connection from its own thread: plain, or through its TLS session. */
static void send_raw(struct MHD_Connection *c, int fd, int tls, const char *b, size_t n) {
#ifdef ROE_HAVE_GNUTLS
    if (tls) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        gnutls_session_t s = ci ? (gnutls_session_t)ci->tls_session : NULL;
        const double until = roe_now_s() + 1.0;
        while (s && n > 0 && roe_now_s() < until) {
            const ssize_t w = gnutls_record_send(s, b, n);
            if (w > 0) {
                b += w;
                n -= (size_t)w;
            } else if (w != GNUTLS_E_AGAIN && w != GNUTLS_E_INTERRUPTED)
                break;
        }
        return;
    }
#else
    (void)c;
    if (tls) return;
#endif
    write_all(fd, b, n);
}

void roe_front_send(roe_front *f, struct MHD_Connection *c, const char *b, size_t n) {
    pthread_mutex_lock(&f->mu);
    const struct fconn *e = by_conn(f, c);
    const int fd = e ? e->fd : -1, tls = e ? e->tls : 0;
    pthread_mutex_unlock(&f->mu);
    if (fd >= 0) send_raw(c, fd, tls, b, n);
}

void roe_front_replace_error(roe_front *f, int http) {
    struct MHD_Connection *c = tl_conn;
    if (!c || http < 400) return;
    pthread_mutex_lock(&f->mu);
    struct fconn *e = by_conn(f, c);
    const int fd = e ? e->fd : -1, tls = e ? e->tls : 0;
    if (e) f->st.malformed++;
    pthread_mutex_unlock(&f->mu);
    if (fd < 0) return;
    static const struct {
        int http;
        const char *code, *msg;
    } why[] = {
        {400, "malformed_request", "the HTTP request is malformed"},
        {413, "request_too_large", "the request body is too large (Content-Length or a chunk)"},
        {414, "request_header_too_large", "the request target is too long"},
        {431, "request_header_too_large", "the request line and headers are too large"},
        {505, "http_version_not_supported", "this server speaks HTTP/1.0 and HTTP/1.1"},
    };
    const char *code = "malformed_request", *msg = "the HTTP request cannot be served";
    for (size_t i = 0; i < sizeof why / sizeof why[0]; i++)
        if (why[i].http == http) code = why[i].code, msg = why[i].msg;
    size_t n = 0;
    char *r = error_response(http, code, msg, &n);
    if (r) send_raw(c, fd, tls, r, n);
    free(r);
    shutdown(fd, SHUT_WR); /* libmicrohttpd's own page fails to send: the connection closes */
}
