/*
 * server.h — the HTTP front end of `roe serve` (libmicrohttpd), on the coordinator.
 *
 * Endpoints: POST /v1/completions, POST /v1/chat/completions (openai.h; "stream": true answers
 * with server-sent events ending in "data: [DONE]"), GET /v1/models and /v1/models/{id}, POST
 * /tokenize and /detokenize, GET /tokenizer_info, GET /health (503 while shutting down),
 * GET /metrics (metrics.h).
 *
 * Threads: the front's accepting thread (front.h: every connection until its first request
 * head is whole, in one poll loop), and libmicrohttpd's thread per connection it hands over
 * (bounded). A connection thread parses the request, submits it to the scheduler
 * (scheduler.h) and waits for its tokens on the request's own condition variable — the
 * scheduler thread never waits for a client: it appends tokens to the request's buffer and
 * moves on. A streamed response is written by libmicrohttpd's content-reader callback on the
 * connection's thread as tokens arrive. While waiting, a connection thread checks every 50 ms
 * whether its client is gone (reset; a half-close is probed, see http.c); if so it cancels the
 * request, which frees its slot at the next step boundary.
 *
 * Limits (every one bounded, each refusal an OpenAI-style JSON error body, with Retry-After on
 * 429 and 503; front.h has the policy):
 *   max_connections    connections with a request under way; beyond, one waiting on its client
 *                      (idle, or still sending) is closed for a newcomer, else 429. /health and
 *                      /metrics are served beyond it
 *   max_per_address    open connections from one address; beyond: 429
 *   header_timeout_s   a request's line and headers, whole (408 beyond); body_timeout_s its
 *                      body after them
 *   timeout_s          a client that neither sends nor reads this long is closed (the timer
 *                      stops while a request waits for the engine)
 *   max_body_bytes     larger request bodies get 413 (from Content-Length before reading
 *                      them, or while reading a chunked body)
 *   max_header_bytes   the request line and headers: 431 beyond
 *   the scheduler's queue (max_queue): 503 when full
 *
 * Access: with an API key, every route but /health (and /metrics, unless public_metrics) needs
 * "Authorization: Bearer <key>", compared in constant time; without it, 401 in OpenAI's shape
 * (code invalid_api_key, WWW-Authenticate: Bearer), before the body is read. With a certificate
 * and key, HTTPS only (libmicrohttpd's GnuTLS).
 */
#ifndef ROE_SERVER_SERVER_H
#define ROE_SERVER_SERVER_H

#include <stddef.h>

#include "openai.h"
#include "runtime/scheduler.h"
#include "base/status.h"

struct roe_server_opts {
    const char *host; /* address to bind ("127.0.0.1", "0.0.0.0", "::") */
    int port;         /* 0: any free port (see roe_server_port) */
    int max_connections;
    int max_per_address;     /* open connections from one address (0: max_connections) */
    size_t max_body_bytes;
    size_t max_header_bytes;
    int timeout_s;           /* idle: a client that neither sends nor reads */
    double header_timeout_s; /* a request's headers, from its first byte (or the connection) */
    double body_timeout_s;   /* a request's body, after its headers */
    const char *api_key;     /* NULL: none; else every route but /health (and /metrics unless
                                public_metrics) needs "Authorization: Bearer <api_key>" (401) */
    int public_metrics;
    const char *tls_cert_pem, *tls_key_pem; /* both: HTTPS (libmicrohttpd's GnuTLS), PEM text */
};

struct roe_server_opts roe_server_opts_default(void);

typedef struct roe_server roe_server;

/* Starts listening. api and sched are borrowed and must outlive the server. */
roe_status roe_server_start(const struct roe_server_opts *o, const struct roe_api_config *api,
                            roe_sched *sched, roe_server **out);
int roe_server_port(const roe_server *s);
/* Marks the server as shutting down: /health answers 503 (requests are refused by the
 * scheduler once it stops). */
void roe_server_draining(roe_server *s);
/* Stops listening, lets the responses under way finish sending (at most drain_s seconds:
 * a client that stopped reading cannot hold the exit), closes every connection and frees the
 * server. Every request must have ended: stop the scheduler first. After an engine failure
 * (roe_sched_failed) it answers 503 to everything, /health included, for a second and a half
 * first. */
void roe_server_stop(roe_server *s, double drain_s);

#endif
