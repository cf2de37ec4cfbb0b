/*
 * http.c — libmicrohttpd glue: routing, limits, waiting for a request's tokens, streaming;
 * see server.h.
 *
 * Connections come from the front (front.h: accepting, first heads, limits, deadlines,
 * eviction); libmicrohttpd's callbacks tell it where each request is (its socket context is the
 * front's entry). Per request, `struct hreq` (its request context) accumulates the body. A
 * streamed response owns a `struct stream` (freed with the response): the scheduler request,
 * each choice's text so far (output.h), and the SSE bytes not yet written.
 *
 * Timers: libmicrohttpd's idle timer (--timeout) runs only while it waits on the client; while
 * a request waits for the engine (a long queue, a slow step, a stalled rank) the timer is off,
 * so a stream is never cut by a server timer, only by the client not reading.
 *
 * A client that closes its sending side after the request (a half-close) is not gone: only a
 * reset or an error on the socket is. TCP cannot tell a half-close from a full close without
 * writing, so such a client is probed: a stream with an SSE comment now and then, a request
 * waiting for its whole answer (HTTP/1.1) with one interim "100 Continue", which every HTTP/1.1
 * client must parse and skip (RFC 9110, 15.2). A client that closed entirely answers the probe
 * with a reset, and its request is cancelled; one that only shut its side gets its answer.
 *
 * Errors: every answer that has a status behind it (a parse error, a scheduler refusal, a
 * failed request, an unknown endpoint) takes its HTTP status and code from that status alone
 * (openai.h: roe_api_fail), never from the message's words; only HTTP's own refusals (405,
 * 413, 429) are answered by number.
 */
#define _GNU_SOURCE /* POLLRDHUP: the client shut its end */
#include "server.h"

#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "front.h"
#include "metrics.h"
#include "output.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "utf8.h"

enum { DROP_FACTOR = 16 };         /* an oversized chunked body is read up to this x the limit */
enum { EVICT_SLACK = 16 };         /* front.c: held beyond the limits while evicted ones close */
static const double POLL_S = 0.05; /* how often a waiting connection checks its client */
static const double PING_S = 1.0;  /* a half-closed stream's client is probed this often */
static const double FAILED_LINGER_S = 1.5; /* after an engine failure: 503 to all, then close */

struct roe_server {
    struct MHD_Daemon *d;
    roe_front *front;
    const struct roe_api_config *api;
    roe_sched *sched;
    struct roe_server_opts o;
    atomic_int generating; /* generation requests not yet answered in full */
    atomic_int draining;
    atomic_ullong next_id;
    uint64_t id_salt;
    time_t started;
    pthread_mutex_t mu; /* guards http */
    struct roe_http_stats http;
};

typedef enum route {
    ROUTE_NONE = 0,
    ROUTE_COMPLETIONS,
    ROUTE_CHAT,
    ROUTE_TOKENIZE,
    ROUTE_DETOKENIZE,
    ROUTE_MODELS,
    ROUTE_MODEL, /* /v1/models/{id} */
    ROUTE_TOKENIZER_INFO,
    ROUTE_HEALTH,
    ROUTE_METRICS,
} route;

struct hreq {
    route route;
    void *front; /* the connection's entry in the front (front.h) */
    int http11;  /* the request is HTTP/1.1 (1xx answers allowed) */
    char model_id[256]; /* ROUTE_MODEL: the id asked for */
    struct roe_strbuf body;
    int too_big;
    int generating; /* counted in roe_server.generating */
    size_t dropped; /* bytes of an oversized body read and dropped */
};

struct stream {
    roe_server *srv;
    struct MHD_Connection *c;
    int fd;
    double pinged; /* the client shut its side: when it was last probed */
    roe_sreq *r;
    struct roe_api_request req;
    char id[48];
    long created;
    int seen;               /* tokens over every choice in the last view */
    struct roe_out o[ROE_SCHED_MAX_CHOICES]; /* each choice's text so far */
    struct roe_strbuf text; /* scratch: the text of one chunk */
    struct roe_strbuf out;  /* SSE bytes not yet handed to libmicrohttpd */
    size_t off;
    int first; /* the first chunks (chat: the role; echo: the prompt) are still to come */
    int done;  /* [DONE] is in out */
};

struct roe_server_opts roe_server_opts_default(void) {
    return (struct roe_server_opts){.host = "127.0.0.1",
                                    .port = 8000,
                                    .max_connections = 64,
                                    .max_body_bytes = 1u << 20,
                                    .max_header_bytes = 64u << 10,
                                    .timeout_s = 60,
                                    .max_per_address = 0, /* 0: max_connections */
                                    .header_timeout_s = 10,
                                    .body_timeout_s = 30};
}

int roe_server_port(const roe_server *s) {
    return roe_front_port(s->front);
}
void roe_server_draining(roe_server *s) {
    atomic_store(&s->draining, 1);
}

/* ---- responses ---- */

static void count_response(roe_server *s, int code) {
    pthread_mutex_lock(&s->mu);
    s->http.responses[roe_http_code_index(code)]++;
    pthread_mutex_unlock(&s->mu);
}

/* Queues body (malloc'd; taken over, NULL: out of memory) with the given status. */
static enum MHD_Result respond_full(roe_server *s, struct MHD_Connection *c, int code, char *body,
                                    const char *type, int close, int retry_after) {
    if (!body) {
        static const char oom[] =
            "{\"error\": {\"message\": \"out of memory\", \"type\": \"server_error\", "
            "\"param\": null, \"code\": null}}";
        code = 500;
        body = strdup(oom);
        if (!body) return MHD_NO;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (close) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (code == 405) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, POST");
    if (retry_after > 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, v);
    }
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)code, resp);
    MHD_destroy_response(resp);
    count_response(s, code);
    return ret;
}

static enum MHD_Result respond(roe_server *s, struct MHD_Connection *c, int code, char *body,
                               const char *type, int close) {
    return respond_full(s, c, code, body, type, close, 0);
}

static enum MHD_Result respond_error(roe_server *s, struct MHD_Connection *c,
                                     const struct roe_api_error *e, int close) {
    return respond_full(s, c, e->http, roe_api_error_json(e), "application/json", close,
                        e->retry_after);
}

/* Answers an error of status st: its HTTP status and code by the status alone (openai.h). */
static enum MHD_Result fail(roe_server *s, struct MHD_Connection *c, roe_status st,
                            const char *param, int close, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static enum MHD_Result fail(roe_server *s, struct MHD_Connection *c, roe_status st,
                            const char *param, int close, const char *fmt, ...) {
    struct roe_api_error e;
    char msg[sizeof e.message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    roe_api_fail(&e, st, param, "%s", msg);
    return respond_error(s, c, &e, close);
}

/* Answers an error of HTTP itself (405, 413, 429), closing the connection. */
static enum MHD_Result reject(roe_server *s, struct MHD_Connection *c, int http, const char *fmt,
                              ...) __attribute__((format(printf, 4, 5)));
static enum MHD_Result reject(roe_server *s, struct MHD_Connection *c, int http, const char *fmt,
                              ...) {
    struct roe_api_error e;
    char msg[sizeof e.message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    roe_api_fail_http(&e, http, "%s", msg);
    if (http == 429) e.code = "too_many_connections";
    return respond_error(s, c, &e, 1);
}

/* ---- the client's socket ---- */

static int conn_fd(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

/* 1 if the client is gone: its connection was reset or failed. (A client that shut down only
 * its sending side, or sent more bytes — a pipelined request — is still there.) *shut: it shut
 * its sending side (a half-close, or a full close not yet known as one). */
static int client_gone(int fd, int *shut) {
    *shut = 0;
    if (fd < 0) return 0;
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return 0;
    if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) return 1;
    if (p.revents & POLLRDHUP) *shut = 1;
    else if (p.revents & POLLIN) {
        char b;
        const ssize_t k = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return 1;
        *shut = k == 0;
    }
    return 0;
}

/* libmicrohttpd's idle timer, off while the request waits for the engine (see the top). */
static void idle_timer(const roe_server *s, struct MHD_Connection *c, int on) {
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, on ? (unsigned)s->o.timeout_s : 0u);
}

/* ---- generation ---- */

static void new_id(roe_server *s, const struct roe_api_request *req, char *id, size_t n) {
    const unsigned long long k = atomic_fetch_add(&s->next_id, 1);
    snprintf(id, n, "%s-%08llx%08llx", req->kind == ROE_API_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)(s->id_salt & 0xffffffffu), k);
}

/* The echo of a completion's prompt: its text as given, or its ids' text. */
static void echo_text(const roe_server *s, const struct roe_api_request *req, struct roe_strbuf *text) {
    if (!req->echo) return;
    struct roe_strbuf raw = {0};
    if (req->prompt_text)
        roe_strbuf_puts(&raw, req->prompt_text);
    else
        roe_out_token_bytes(s->api->tok, req->prompt, 0, req->params.n_prompt, &raw);
    roe_utf8_sanitize(raw.p ? raw.p : "", raw.len, 1, text);
    roe_strbuf_free(&raw);
}

/* The log-probabilities of choice v's tokens [from, to) (none unless asked). */
static struct roe_api_logprobs gen_logprobs(const struct roe_api_request *req, const struct roe_sreq_choice_view *v,
                                            int from, int to) {
    const int top = req->params.top_logprobs, lp = req->params.logprobs;
    return (struct roe_api_logprobs){.ids = v->tokens + from, .n = to - from, .top = top,
                                     .lp = lp ? v->logprobs + from : NULL,
                                     .top_id = lp ? v->top_ids + (size_t)from * top : NULL,
                                     .top_lp = lp ? v->top_logprobs + (size_t)from * top : NULL};
}

/* The prompt's log-probabilities (echo with logprobs; the first token has none). */
static struct roe_api_logprobs prompt_logprobs(const struct roe_api_request *req, const struct roe_sreq_view *v) {
    if (!req->params.prompt_logprobs) return (struct roe_api_logprobs){0};
    return (struct roe_api_logprobs){.ids = req->prompt, .n = req->params.n_prompt, .top = v->top_logprobs,
                                     .lp = v->prompt_logprobs, .top_id = v->prompt_top_ids,
                                     .top_lp = v->prompt_top_logprobs, .null_first = 1};
}

/* A failed request's error, by its status (scheduler.h): 503 when the server stopped before it
 * ended or cannot go on (a rank or the engine failed), 500 when a step failed. */
static void failed_error(const struct roe_sreq_view *v, struct roe_api_error *e) {
    roe_api_fail(e, v->code != ROE_OK ? v->code : ROE_ERR_INTERNAL, NULL, "%s",
                 v->error[0] ? v->error : "the request failed");
}

/* Waits for a non-streamed request's end, watching the client (probed once if it shut its
 * side, when it speaks HTTP/1.1: see the top). 0: ended; -1: the client left (the request is
 * cancelled). */
static int wait_end(roe_server *s, struct MHD_Connection *c, int http11, roe_sreq *r, struct roe_sreq_view *v) {
    static const char probe[] = "HTTP/1.1 100 Continue\r\n\r\n";
    const int fd = conn_fd(c);
    int have = 0, shut, probed = 0;
    for (;;) {
        roe_sreq_wait(r, have, POLL_S, v);
        if (v->end != ROE_SREQ_RUNNING) return 0;
        have = v->total_tokens;
        const int gone = client_gone(fd, &shut);
        if (shut && !probed && http11) {
            probed = 1;
            roe_front_send(s->front, c, probe, sizeof probe - 1);
        }
        if (gone) {
            roe_sreq_cancel(r);
            return -1;
        }
    }
}

/* The body of a finished request: every choice's text (after the echo), tokens and
 * log-probabilities (NULL: out of memory). */
static char *finished_body(roe_server *s, const struct roe_api_request *req, const struct roe_sreq_view *v) {
    struct roe_strbuf text[ROE_SCHED_MAX_CHOICES] = {{0}};
    struct roe_api_choice ch[ROE_SCHED_MAX_CHOICES];
    int oom = 0, completion = 0;
    for (int i = 0; i < v->n_choices; i++) {
        const struct roe_sreq_choice_view *c = &v->choice[i];
        struct roe_out o = {0};
        echo_text(s, req, &text[i]);
        roe_out_take(s->api->tok, &o, c, &text[i]);
        roe_strbuf_append(&text[i], "", 0);
        oom |= o.raw.oom || text[i].oom;
        roe_out_free(&o);
        completion += c->n_tokens;
        ch[i] = (struct roe_api_choice){.index = i, .text = text[i].p ? text[i].p : "",
                                        .finish = roe_api_finish_name(c->finish),
                                        .gen = gen_logprobs(req, c, 0, c->n_tokens),
                                        .prompt = prompt_logprobs(req, v)};
    }
    char id[48];
    new_id(s, req, id, sizeof id);
    char *body = oom ? NULL : roe_api_response_json(s->api, req, id, (long)time(NULL), ch, v->n_choices, completion);
    for (int i = 0; i < v->n_choices; i++) roe_strbuf_free(&text[i]);
    return body;
}

static enum MHD_Result complete(roe_server *s, struct MHD_Connection *c, int http11,
                                struct roe_api_request *req, roe_sreq *r) {
    struct roe_sreq_view v;
    idle_timer(s, c, 0);
    const int gone = wait_end(s, c, http11, r, &v) < 0;
    idle_timer(s, c, 1); /* and restarted: the answer goes out now */
    if (gone) {
        roe_sreq_release(r);
        return MHD_NO; /* nobody to answer: close the connection */
    }
    enum MHD_Result ret;
    if (v.end == ROE_SREQ_FINISHED) {
        ret = respond(s, c, 200, finished_body(s, req, &v), "application/json", 0);
    } else {
        struct roe_api_error e;
        if (v.end == ROE_SREQ_CANCELLED)
            roe_api_fail(&e, ROE_ERR_INTERNAL, NULL, "the request was cancelled");
        else
            failed_error(&v, &e);
        ret = respond_error(s, c, &e, 0);
    }
    roe_sreq_release(r);
    return ret;
}

/* The first chunks, before any token: chat announces the assistant in each choice; echo sends
 * the prompt's text (and its log-probabilities). */
static void first_chunks(struct stream *st, const struct roe_sreq_view *v) {
    roe_server *s = st->srv;
    const int chat = st->req.kind == ROE_API_CHAT;
    for (int i = 0; i < v->n_choices && (chat || st->req.echo); i++) {
        st->text.len = 0;
        echo_text(s, &st->req, &st->text);
        roe_strbuf_append(&st->text, "", 0);
        const struct roe_api_choice ch = {.index = i, .role = chat, .text = chat ? NULL : st->text.p,
                                          .prompt = prompt_logprobs(&st->req, v), .text_offset = &st->o[i].text_offset};
        roe_api_stream_chunk(&st->out, s->api, &st->req, st->id, st->created, &ch);
    }
    st->first = 0;
}

/* Choice i's news as a chunk: its new text (and tokens), then, once it ended, its finish. */
static void choice_chunk(struct stream *st, const struct roe_sreq_view *v, int i) {
    roe_server *s = st->srv;
    struct roe_out *o = &st->o[i];
    const struct roe_sreq_choice_view *c = &v->choice[i];
    if (o->finished) return;
    const int from = o->sent;
    st->text.len = 0;
    roe_out_take(s->api->tok, o, c, &st->text);
    roe_strbuf_append(&st->text, "", 0);
    const int new_tokens = c->n_tokens > from;
    const int chat = st->req.kind == ROE_API_CHAT;
    if (st->text.len > 0 || (new_tokens && (st->req.return_token_ids || st->req.params.logprobs))) {
        const struct roe_api_choice ch = {.index = i, .text = st->text.p, .gen = gen_logprobs(&st->req, c, from, c->n_tokens),
                                          .text_offset = &o->text_offset};
        roe_api_stream_chunk(&st->out, s->api, &st->req, st->id, st->created, &ch);
    }
    if (!c->ended) return;
    const struct roe_api_choice fin = {.index = i, .text = chat ? NULL : "", .finish = roe_api_finish_name(c->finish),
                                       .gen = {.ids = c->tokens, .n = 0}};
    roe_api_stream_chunk(&st->out, s->api, &st->req, st->id, st->created, &fin);
    o->finished = 1;
}

/* Turns what the request has produced since the last call into SSE events in st->out.
 * Returns 0, or -1 if the stream must end without [DONE] (the request was cancelled). */
static int produce(struct stream *st, const struct roe_sreq_view *v) {
    roe_server *s = st->srv;
    if (st->first) first_chunks(st, v);
    st->seen = v->total_tokens;
    if (v->end == ROE_SREQ_CANCELLED) return -1;
    if (v->end != ROE_SREQ_FAILED)
        for (int i = 0; i < v->n_choices; i++) choice_chunk(st, v, i);
    if (v->end == ROE_SREQ_RUNNING) return 0;
    if (v->end == ROE_SREQ_FINISHED) {
        if (st->req.include_usage)
            roe_api_stream_usage(&st->out, s->api, &st->req, st->id, st->created, v->total_tokens);
    } else {
        struct roe_api_error e;
        failed_error(v, &e);
        roe_api_stream_error(&st->out, &e);
    }
    roe_strbuf_puts(&st->out, "data: [DONE]\n\n");
    st->done = 1;
    return 0;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    struct stream *st = cls;
    (void)pos;
    while (st->off == st->out.len) {
        st->off = 0;
        st->out.len = 0;
        if (st->done) return MHD_CONTENT_READER_END_OF_STREAM;
        const int opening = st->first && (st->req.kind == ROE_API_CHAT || st->req.echo);
        struct roe_sreq_view v;
        idle_timer(st->srv, st->c, 0);
        const int news = roe_sreq_wait(st->r, st->seen, opening ? 0.0 : POLL_S, &v) || opening;
        if (news) {
            if (produce(st, &v) < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
            int oom = st->out.oom || st->text.oom;
            for (int i = 0; i < v.n_choices; i++) oom |= st->o[i].raw.oom;
            if (oom) {
                roe_sreq_cancel(st->r);
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
            continue;
        }
        int shut;
        if (client_gone(st->fd, &shut)) {
            roe_sreq_cancel(st->r);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        /* a client that shut its side: a comment line now and then finds out whether it is still
         * reading (writing to a closed one fails, and libmicrohttpd then frees the stream) */
        const double now = roe_now_s();
        if (shut && now - st->pinged >= PING_S) {
            st->pinged = now;
            roe_strbuf_puts(&st->out, ": ping\n\n");
        }
    }
    idle_timer(st->srv, st->c, 1); /* bytes go out: the client must read them */
    size_t n = st->out.len - st->off;
    if (n > max) n = max;
    memcpy(buf, st->out.p + st->off, n);
    st->off += n;
    return (ssize_t)n;
}

/* When libmicrohttpd drops the response: at its end, or when the client went away. */
static void stream_free(void *cls) {
    struct stream *st = cls;
    roe_sreq_cancel(st->r); /* a no-op for a request that has ended */
    roe_sreq_release(st->r);
    roe_api_request_free(&st->req);
    for (int i = 0; i < ROE_SCHED_MAX_CHOICES; i++) roe_out_free(&st->o[i]);
    roe_strbuf_free(&st->text);
    roe_strbuf_free(&st->out);
    roe_free(st);
}

static enum MHD_Result start_stream(roe_server *s, struct MHD_Connection *c,
                                    struct roe_api_request *req, roe_sreq *r) {
    struct stream *st = roe_calloc(1, sizeof *st);
    if (!st) {
        roe_sreq_cancel(r);
        roe_sreq_release(r);
        roe_api_request_free(req);
        return fail(s, c, ROE_ERR_NOMEM, NULL, 0, "out of memory for a stream");
    }
    st->srv = s;
    st->c = c;
    st->fd = conn_fd(c);
    st->r = r;
    st->req = *req; /* takes the prompt over */
    memset(req, 0, sizeof *req);
    st->created = (long)time(NULL);
    st->first = 1;
    new_id(s, &st->req, st->id, sizeof st->id);
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 << 10, stream_read, st, stream_free);
    if (!resp) {
        stream_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    count_response(s, 200);
    return ret;
}

static enum MHD_Result generate(roe_server *s, struct MHD_Connection *c, struct hreq *h) {
    struct roe_api_request req;
    struct roe_api_error e;
    if (roe_api_parse(s->api, h->route == ROUTE_CHAT ? ROE_API_CHAT : ROE_API_COMPLETIONS,
                      h->body.p ? h->body.p : "", h->body.len, &req, &e) != 0)
        return respond_error(s, c, &e, 0);
    roe_sreq *r = NULL;
    roe_sreq_field bad;
    roe_status st = roe_sched_submit(s->sched, &req.params, &r, &bad);
    if (st != ROE_OK) {
        roe_api_refused(&e, st, bad);
        roe_api_request_free(&req);
        return respond_error(s, c, &e, 0);
    }
    if (req.stream) return start_stream(s, c, &req, r);
    enum MHD_Result ret = complete(s, c, h->http11, &req, r);
    roe_api_request_free(&req);
    return ret;
}

/* ---- the other endpoints ---- */

static enum MHD_Result models(roe_server *s, struct MHD_Connection *c, const struct hreq *h) {
    if (h->route == ROUTE_MODELS) /* a NULL body: respond() answers 500 */
        return respond(s, c, 200, roe_api_models_json(s->api, (long)s->started), "application/json", 0);
    char *body = NULL;
    struct roe_api_error e;
    if (roe_api_model_json(s->api, (long)s->started, h->model_id, &body, &e) != 0)
        return respond_error(s, c, &e, 0);
    return respond(s, c, 200, body, "application/json", 0);
}

static enum MHD_Result tokenize(roe_server *s, struct MHD_Connection *c, const struct hreq *h) {
    const char *body = h->body.p ? h->body.p : "";
    struct roe_api_error e;
    if (h->route == ROUTE_DETOKENIZE) {
        char *out = NULL;
        if (roe_api_detokenize(s->api, body, h->body.len, &out, &e) != 0) return respond_error(s, c, &e, 0);
        return respond(s, c, 200, out, "application/json", 0);
    }
    struct roe_api_tokenize t;
    if (roe_api_parse_tokenize(s->api, body, h->body.len, &t, &e) != 0) return respond_error(s, c, &e, 0);
    char *out = roe_api_tokenize_json(s->api, &t);
    roe_api_tokenize_free(&t);
    return respond(s, c, 200, out, "application/json", 0);
}

static enum MHD_Result metrics(roe_server *s, struct MHD_Connection *c) {
    struct roe_sched_stats st;
    roe_sched_get_stats(s->sched, &st);
    struct roe_http_stats h;
    pthread_mutex_lock(&s->mu);
    h = s->http;
    pthread_mutex_unlock(&s->mu);
    struct roe_front_stats fs;
    roe_front_get_stats(s->front, &fs);
    h.connections = fs.held + fs.pending;
    h.pending = fs.pending;
    h.evicted = fs.evicted;
    h.timed_out = fs.timed_out;
    h.refused_address = fs.refused_address;
    h.refused_busy = fs.refused_full;
    h.malformed = fs.malformed;
    struct roe_strbuf out = {0};
    roe_metrics_render(&out, s->api->model_name, &st, &h);
    char *body = NULL;
    if (!out.oom && out.p) body = strdup(out.p);
    roe_strbuf_free(&out);
    return respond(s, c, 200, body, "text/plain; version=0.0.4; charset=utf-8", 0);
}

/* ---- libmicrohttpd callbacks ---- */

static route route_of(const char *url, struct hreq *h) {
    static const char model_prefix[] = "/v1/models/";
    if (strcmp(url, "/v1/completions") == 0) return ROUTE_COMPLETIONS;
    if (strcmp(url, "/v1/chat/completions") == 0) return ROUTE_CHAT;
    if (strcmp(url, "/tokenize") == 0) return ROUTE_TOKENIZE;
    if (strcmp(url, "/detokenize") == 0) return ROUTE_DETOKENIZE;
    if (strcmp(url, "/tokenizer_info") == 0) return ROUTE_TOKENIZER_INFO;
    if (strcmp(url, "/v1/models") == 0) return ROUTE_MODELS;
    if (strncmp(url, model_prefix, sizeof model_prefix - 1) == 0 && url[sizeof model_prefix - 1]) {
        snprintf(h->model_id, sizeof h->model_id, "%s", url + sizeof model_prefix - 1);
        return ROUTE_MODEL;
    }
    if (strcmp(url, "/health") == 0) return ROUTE_HEALTH;
    if (strcmp(url, "/metrics") == 0) return ROUTE_METRICS;
    return ROUTE_NONE;
}

/* Requests with a body: generation and the tokenizer's. */
static int is_post_route(route r) {
    return r == ROUTE_COMPLETIONS || r == ROUTE_CHAT || r == ROUTE_TOKENIZE || r == ROUTE_DETOKENIZE;
}

/* 1 if got[0, n) is the key, in time that depends on the key's length alone (never on how
 * much of a guess is right). */
static int key_matches(const char *want, const char *got, size_t n) {
    const size_t wl = strlen(want);
    unsigned diff = wl != n;
    for (size_t i = 0; i < wl; i++) diff |= (unsigned char)want[i] ^ (unsigned char)(i < n ? got[i] : 0);
    return diff == 0;
}

/* The API key check (none without a key; /health, and /metrics when public, are open). */
static int authorized(const roe_server *s, struct MHD_Connection *c, route r) {
    if (!s->o.api_key || r == ROUTE_HEALTH || (r == ROUTE_METRICS && s->o.public_metrics)) return 1;
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!v || strncasecmp(v, "Bearer ", 7) != 0) return 0;
    v += 7;
    while (*v == ' ') v++;
    size_t n = strlen(v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t')) n--;
    return key_matches(s->o.api_key, v, n);
}

static enum MHD_Result unauthorized(roe_server *s, struct MHD_Connection *c) {
    struct roe_api_error e;
    roe_api_fail_http(&e, 401,
                      "a valid API key is required: send it as 'Authorization: Bearer <key>' (the key "
                      "the server was started with, --api-key or ROE_API_KEY)");
    e.code = "invalid_api_key";
    char *body = roe_api_error_json(&e);
    struct MHD_Response *resp = body ? MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close"); /* its body is not read */
    const enum MHD_Result ret = MHD_queue_response(c, 401, resp);
    MHD_destroy_response(resp);
    count_response(s, 401);
    return ret;
}

/* The headers are in: decides what can be decided before the body (h is new). */
static enum MHD_Result on_headers(roe_server *s, struct MHD_Connection *c, struct hreq *h,
                                  const char *url, const char *method) {
    h->route = route_of(url, h);
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    h->front = ci ? ci->socket_context : NULL;
    roe_front_set_state(s->front, h->front, strcmp(method, "POST") == 0 ? ROE_FRONT_BODY : ROE_FRONT_BUSY);
    if (!authorized(s, c, h->route)) return unauthorized(s, c);
    const int post = strcmp(method, "POST") == 0, get = strcmp(method, "GET") == 0;
    if (h->route == ROUTE_NONE)
        return fail(s, c, ROE_ERR_NOT_FOUND, NULL, !post && !get ? 1 : 0, "no such endpoint: %s %.200s",
                    method, url);
    const int want_post = is_post_route(h->route);
    if ((want_post && !post) || (!want_post && !get))
        return reject(s, c, 405, "%s takes %s, not %s", url, want_post ? "POST" : "GET", method);
    if (!want_post) return MHD_YES;
    if (h->route == ROUTE_COMPLETIONS || h->route == ROUTE_CHAT) {
        h->generating = 1;
        atomic_fetch_add(&s->generating, 1);
    }
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        errno = 0;
        const unsigned long long n = strtoull(cl, &end, 10);
        if (errno || *end || n > s->o.max_body_bytes)
            return reject(s, c, 413, "the request body (%s bytes) exceeds the limit of %zu bytes", cl,
                          s->o.max_body_bytes);
    }
    return MHD_YES;
}

/* A piece of the body. */
static enum MHD_Result on_body(roe_server *s, struct hreq *h, const char *upload, size_t *upload_size) {
    if (!h->too_big && h->body.len + *upload_size > s->o.max_body_bytes) {
        h->too_big = 1;
        roe_strbuf_free(&h->body);
    }
    /* a chunked body over the limit is read and dropped, so that the client, still sending,
     * gets to read the 413 (clients give up on a connection closed under their upload); a
     * bounded amount only, then the connection is closed */
    if (h->too_big)
        h->dropped += *upload_size;
    else
        roe_strbuf_append(&h->body, upload, *upload_size);
    *upload_size = 0;
    return h->dropped > DROP_FACTOR * s->o.max_body_bytes ? MHD_NO : MHD_YES;
}

/* The whole request is in: the answer. */
static enum MHD_Result on_complete(roe_server *s, struct MHD_Connection *c, struct hreq *h) {
    roe_front_set_state(s->front, h->front, ROE_FRONT_BUSY);
    if (h->too_big)
        return reject(s, c, 413, "the request body exceeds the limit of %zu bytes", s->o.max_body_bytes);
    if (h->body.oom) return fail(s, c, ROE_ERR_NOMEM, NULL, 1, "out of memory for the request body");
    switch (h->route) {
    case ROUTE_MODELS:
    case ROUTE_MODEL: return models(s, c, h);
    case ROUTE_TOKENIZE:
    case ROUTE_DETOKENIZE: return tokenize(s, c, h);
    case ROUTE_METRICS: return metrics(s, c);
    case ROUTE_TOKENIZER_INFO: return respond(s, c, 200, roe_api_tokenizer_info_json(s->api), "application/json", 0);
    case ROUTE_HEALTH:
        if (roe_sched_failed(s->sched))
            return fail(s, c, ROE_ERR_UNAVAILABLE, NULL, 0, "the engine failed (a rank died or stopped answering): the server is stopping");
        if (atomic_load(&s->draining))
            return fail(s, c, ROE_ERR_STOPPING, NULL, 0, "the server is shutting down");
        return respond(s, c, 200, strdup("{\"status\": \"ok\"}"), "application/json", 0);
    default: return generate(s, c, h);
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **req_cls) {
    roe_server *s = cls;
    struct hreq *h = *req_cls;
    if (!h) {
        h = roe_calloc(1, sizeof *h);
        if (!h) return MHD_NO;
        *req_cls = h;
        h->http11 = strcmp(version, MHD_HTTP_VERSION_1_1) == 0;
        return on_headers(s, c, h, url, method);
    }
    if (*upload_size) return on_body(s, h, upload, upload_size);
    return on_complete(s, c, h);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode why) {
    roe_server *s = cls;
    (void)c;
    (void)why;
    struct hreq *h = *req_cls;
    if (!h) return;
    roe_front_set_state(s->front, h->front, ROE_FRONT_IDLE);
    if (h->generating) atomic_fetch_sub(&s->generating, 1);
    roe_strbuf_free(&h->body);
    roe_free(h);
    *req_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_cls,
                          enum MHD_ConnectionNotificationCode what) {
    roe_server *s = cls;
    if (what == MHD_CONNECTION_NOTIFY_STARTED)
        *socket_cls = roe_front_attach(s->front, c);
    else {
        roe_front_detach(s->front, *socket_cls);
        *socket_cls = NULL;
    }
}

/* A request line is in (libmicrohttpd's thread of that connection). */
static void *on_request_line(void *cls, const char *uri, struct MHD_Connection *c) {
    roe_server *s = cls;
    (void)uri;
    roe_front_request_line(s->front, c);
    return NULL; /* the request context stays NULL until on_request */
}

static void on_log(void *cls, const char *fmt, va_list ap) {
    roe_server *s = cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    const size_t n = strlen(msg);
    if (n && msg[n - 1] == '\n') msg[n - 1] = '\0';
    /* libmicrohttpd is about to send an HTML error page of its own (its words, 0.9.75 and
     * later): the front answers in JSON first (front.h) */
    static const char mark[] = "(HTTP response code is ";
    const char *at = strstr(msg, mark);
    if (at && s->front) roe_front_replace_error(s->front, atoi(at + sizeof mark - 1));
    ROE_LOG_INFO("http", "%s", msg);
}

static roe_status check_opts(const struct roe_server_opts *o) {
    if ((o->tls_cert_pem == NULL) != (o->tls_key_pem == NULL))
        return roe_fail(ROE_ERR_INVALID_ARG, "server: TLS needs both a certificate and its key");
    if (o->tls_cert_pem && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        return roe_fail(ROE_ERR_UNSUPPORTED, "server: this libmicrohttpd was built without TLS (GnuTLS)");
    if (o->api_key && !o->api_key[0]) return roe_fail(ROE_ERR_INVALID_ARG, "server: the API key is empty");
    if (o->port < 0 || o->port > 65535 || o->max_connections < 1 || o->max_body_bytes < 1 || o->timeout_s < 1 ||
        o->max_header_bytes < 4096 || o->max_per_address < 0 || !(o->header_timeout_s > 0) ||
        !(o->body_timeout_s > 0))
        return roe_fail(ROE_ERR_INVALID_ARG,
                        "server: port %d, max connections %d (per address %d), body limit %zu, header limit %zu, "
                        "timeouts %d / %g / %g s: need a port in [0, 65535], at least 1 connection, 1 byte of "
                        "body, 4096 bytes of headers, positive timeouts",
                        o->port, o->max_connections, o->max_per_address, o->max_body_bytes, o->max_header_bytes,
                        o->timeout_s, o->header_timeout_s, o->body_timeout_s);
    return ROE_OK;
}

/* libmicrohttpd without a listening socket of its own: the front hands it connections. */
static struct MHD_Daemon *start_daemon(roe_server *s) {
    const struct roe_server_opts *o = &s->o;
    const int tls = o->tls_cert_pem != NULL;
    const unsigned flags = MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                           MHD_USE_ITC | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET | (tls ? MHD_USE_TLS : 0);
    /* its memory per connection: more than a head the front lets through, so that it never
     * refuses one (later heads on a kept-alive connection over the limit get its 431, in JSON) */
    const size_t mem = o->max_header_bytes + (32u << 10);
    return MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_log, s, /* first: every message */
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)(o->max_connections + ROE_FRONT_PROBE_EXTRA + EVICT_SLACK),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o->timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, mem,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
        MHD_OPTION_URI_LOG_CALLBACK, on_request_line, s,
        /* the certificate last: without TLS, the list ends before it */
        tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, o->tls_cert_pem, MHD_OPTION_HTTPS_MEM_KEY, o->tls_key_pem,
        MHD_OPTION_END);
}

roe_status roe_server_start(const struct roe_server_opts *o, const struct roe_api_config *api,
                            roe_sched *sched, roe_server **out) {
    *out = NULL;
    ROE_TRY(check_opts(o));
    roe_server *s = roe_calloc(1, sizeof *s);
    if (!s) return roe_fail(ROE_ERR_NOMEM, "server: out of memory");
    s->api = api;
    s->sched = sched;
    s->o = *o;
    s->id_salt = (uint64_t)(roe_now_s() * 1e6);
    s->started = time(NULL);
    pthread_mutex_init(&s->mu, NULL);
    s->d = start_daemon(s);
    roe_status st = ROE_OK;
    if (!s->d)
        st = roe_fail(ROE_ERR_IO, "server: libmicrohttpd could not start%s: %s",
                      o->tls_cert_pem ? " (is the certificate or key not valid PEM, or not a pair?)" : "",
                      errno ? strerror(errno) : "see the log above");
    const struct roe_front_opts fo = {
        .host = o->host, .port = o->port, .max_connections = o->max_connections,
        .max_per_address = o->max_per_address ? o->max_per_address : o->max_connections,
        .max_pending = 4 * o->max_connections > 64 ? 4 * o->max_connections : 64,
        .header_timeout_s = o->header_timeout_s, .body_timeout_s = o->body_timeout_s,
        .idle_timeout_s = o->timeout_s, .max_header_bytes = o->max_header_bytes, .max_body_bytes = o->max_body_bytes,
        .tls = o->tls_cert_pem != NULL};
    if (st == ROE_OK) st = roe_front_start(&fo, s->d, &s->front);
    if (st != ROE_OK) {
        if (s->d) MHD_stop_daemon(s->d);
        pthread_mutex_destroy(&s->mu);
        roe_free(s);
        return st;
    }
    *out = s;
    return ROE_OK;
}

void roe_server_stop(roe_server *s, double drain_s) {
    if (!s) return;
    atomic_store(&s->draining, 1);
    const double t0 = roe_now_s(), until = t0 + drain_s;
    /* the engine failed: for a moment more, every request (and /health) is answered 503, so
     * that load balancers and clients hear why rather than find the port closed */
    if (roe_sched_failed(s->sched))
        while (roe_now_s() < t0 + FAILED_LINGER_S && roe_now_s() < until) {
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    /* no new connections; the responses under way (their requests have ended) finish sending */
    roe_front_quiesce(s->front);
    while (atomic_load(&s->generating) > 0 && roe_now_s() < until) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&s->generating) > 0)
        ROE_LOG_WARN("http", "closing %d response(s) still being sent after %.0f s",
                     atomic_load(&s->generating), drain_s);
    roe_front_stop(s->front); /* its thread hands connections to the daemon: it goes first */
    MHD_stop_daemon(s->d);
    roe_front_free(s->front);
    pthread_mutex_destroy(&s->mu);
    roe_free(s);
}
