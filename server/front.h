/*
 * front.h — the server's front door: the listening socket, each connection until its first
 * request head is whole, and every connection's life in libmicrohttpd as far as limits,
 * deadlines and eviction need it. Private to server/ (http.c drives it).
 *
 * Why a front of our own: libmicrohttpd gives a connection a thread as soon as it is accepted
 * and lets a client that trickles one byte a second keep it (its timeout is an idle timer);
 * with --max-connections slots, that many slow clients shut everyone out. It also answers a
 * malformed or oversized request with an HTML page of its own. So:
 *
 *   accept     one thread, poll()ing every connection that has not sent a whole request head
 *              yet (no thread each). An address over --max-connections-per-address is answered
 *              429 at once; when the connections still sending their head fill their table
 *              (max_pending), the oldest is dropped: a slow client makes room for a fast one.
 *   head       read with MSG_PEEK (libmicrohttpd reads it again), bounded by max_header_bytes
 *              (431) and header_timeout (408); checked as libmicrohttpd would (request line,
 *              HTTP/1.0 or 1.1, header syntax, Host, Content-Length against max_body_bytes,
 *              no Transfer-Encoding but chunked): every refusal an OpenAI-style JSON error.
 *   admit      a whole, valid head is handed to libmicrohttpd (MHD_add_connection) when fewer
 *              than max_connections connections are held there; GET /health and /metrics are
 *              handed over beyond that (up to PROBE_EXTRA more), so they answer while every
 *              slot is taken. Otherwise the oldest held connection that is waiting on its
 *              client (idle between requests, or still sending a body) is evicted to make room;
 *              only when every slot is busy with the server's own work is the answer 429 with
 *              Retry-After.
 *   deadlines  a held connection's client must send the rest of a request within
 *              body_timeout (bodies) or header_timeout (a keep-alive connection's next head,
 *              TLS connections' first), and between requests is given idle_timeout; past it,
 *              the connection is closed (408 when a request was under way). A connection that
 *              waits for the server (generation) has no deadline here, and libmicrohttpd's idle
 *              timer is stopped while it does (http.c): only a client that does not read is
 *              timed out.
 *   errors     libmicrohttpd's own error pages (a malformed or oversized request on a
 *              keep-alive connection) are replaced: its logger says which status it is about to
 *              send, and the front writes the JSON error first, on the connection of that thread
 *              (recorded when its request line arrived), then closes the connection's write side
 *              so that the HTML never follows.
 * With TLS (libmicrohttpd's GnuTLS) heads cannot be read here: connections are handed over
 * at once, and the deadlines, limits and eviction apply to them in libmicrohttpd. The one
 * error page left to libmicrohttpd is then a TLS connection's first request line in an HTTP
 * version other than 1.x (or longer than the header limit): its logger speaks before any
 * callback has told which connection it is about.
 */
#ifndef ROE_SERVER_FRONT_H
#define ROE_SERVER_FRONT_H

#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

enum { ROE_FRONT_PROBE_EXTRA = 16 }; /* held beyond max_connections for /health and /metrics */

struct roe_front_opts {
    const char *host;
    int port;
    int max_connections;  /* connections held in libmicrohttpd for requests */
    int max_per_address;  /* open connections from one client address (0: no limit) */
    int max_pending;      /* connections still sending their first head */
    double header_timeout_s, body_timeout_s, idle_timeout_s;
    size_t max_header_bytes, max_body_bytes;
    int tls;
};

/* What the front did, for /metrics. */
struct roe_front_stats {
    int pending, held;
    uint64_t evicted;        /* connections closed to make room */
    uint64_t timed_out;      /* closed past a deadline */
    uint64_t refused_address; /* 429: too many connections from one address */
    uint64_t refused_full;   /* 429: every slot busy */
    uint64_t malformed;      /* refused heads (400, 413, 431, 505, ...) */
};

typedef struct roe_front roe_front;

/* Binds and listens (host, port), and starts the accepting thread, which hands connections to
 * d (started with MHD_USE_NO_LISTEN_SOCKET; it must outlive the front's thread: stop the
 * front first, then the daemon, then free the front). */
roe_status roe_front_start(const struct roe_front_opts *o, struct MHD_Daemon *d, roe_front **out);
int roe_front_port(const roe_front *f);
/* Stops accepting (the listening socket closes); connections under way go on. */
void roe_front_quiesce(roe_front *f);
/* Stops the thread and closes the connections it still holds (not libmicrohttpd's). */
void roe_front_stop(roe_front *f);
void roe_front_free(roe_front *f);
void roe_front_get_stats(roe_front *f, struct roe_front_stats *out);

/* ---- libmicrohttpd's side (from http.c's callbacks) ---- */

typedef enum roe_front_state {
    ROE_FRONT_HEAD = 1, /* a request line is in, its headers are not */
    ROE_FRONT_BODY,     /* headers in, the body still coming */
    ROE_FRONT_BUSY,     /* the whole request is in: the server answers */
    ROE_FRONT_IDLE,     /* answered; waiting for the next request */
} roe_front_state;

/* NOTIFY_STARTED (the accepting thread, inside MHD_add_connection): the connection's
 * context for the other calls (NULL: unknown; the calls ignore it). */
void *roe_front_attach(roe_front *f, struct MHD_Connection *c);
void roe_front_detach(roe_front *f, void *ctx); /* NOTIFY_CLOSED */
/* The URI callback, on the connection's thread: its request line is in. */
void roe_front_request_line(roe_front *f, struct MHD_Connection *c);
void roe_front_set_state(roe_front *f, void *ctx, roe_front_state st);
/* The logger saw libmicrohttpd about to answer `http` with a page of its own on this thread's
 * connection: writes the JSON error instead (see the top). */
void roe_front_replace_error(roe_front *f, int http);

/* Writes b[0, n) on held connection c from its own thread, before libmicrohttpd writes
 * anything of the answer (plain, or through its TLS session). */
void roe_front_send(roe_front *f, struct MHD_Connection *c, const char *b, size_t n);

/* The HTTP reason phrase of a status ("Too Many Requests"). */
const char *roe_front_reason(int http);

#endif
