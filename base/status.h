/*
 * status.h — the one status type of the runtime.
 *
 * Every library function that can fail returns an roe_status. The human-readable
 * reason (what, which, why) is recorded with roe_fail() in a per-thread buffer, the
 * way errno works, and read back with roe_error_message(). Library code never calls
 * exit(); only launcher/ turns a status into an exit code.
 *
 * Foreign error codes (errno, MPI, CUDA, NCCL) are translated at the boundary where
 * they are received, never passed through.
 *
 * Each status has a kind (roe_status_kind): what the one who asked can do about it. A front
 * end decides from the kind (the HTTP server maps each kind to one HTTP status), never from
 * the message, which is for people.
 */
#ifndef ROE_STATUS_H
#define ROE_STATUS_H

#include <stdarg.h>

typedef enum roe_status {
    ROE_OK = 0,
    ROE_ERR_INVALID_ARG, /* a caller's argument or a user's flag is out of range */
    ROE_ERR_IO,          /* open/read/mmap failed */
    ROE_ERR_FORMAT,      /* a file or message is malformed */
    ROE_ERR_UNSUPPORTED, /* well-formed but not something we implement (model_type, dtype) */
    ROE_ERR_NOMEM,       /* an allocation failed */
    ROE_ERR_COMM,        /* a peer or transport failed */
    ROE_ERR_TIMEOUT,     /* a bounded wait expired */
    ROE_ERR_INTERNAL,    /* a backend reported a failure that is not the caller's fault */
    ROE_ERR_NOT_FOUND,   /* the thing named (a model, an endpoint) does not exist here */
    ROE_ERR_OVERLOADED,  /* at capacity (a queue is full): the same request may succeed later */
    ROE_ERR_STOPPING,    /* shutting down: no new work, and work not yet started is dropped */
    ROE_ERR_UNAVAILABLE, /* a part the service needs failed (a rank, the engine): it cannot go on */
    ROE_STATUS_COUNT     /* not a status: one past the last (a peer's code is checked against it) */
} roe_status;

/* What a status means to the one who asked: whether the request was at fault, and whether
 * trying again (later, or elsewhere) can help. */
typedef enum roe_error_kind {
    ROE_KIND_OK = 0,
    ROE_KIND_BAD_REQUEST, /* the input is wrong: INVALID_ARG, FORMAT, UNSUPPORTED; do not retry */
    ROE_KIND_NOT_FOUND,   /* NOT_FOUND */
    ROE_KIND_OVERLOADED,  /* OVERLOADED: retry later */
    ROE_KIND_UNAVAILABLE, /* STOPPING, UNAVAILABLE: this service will not do it; retry elsewhere */
    ROE_KIND_INTERNAL,    /* NOMEM, IO, COMM, TIMEOUT, INTERNAL: our failure, not the input's */
} roe_error_kind;

/* The kind of a status (an unknown value is internal). */
roe_error_kind roe_status_kind(roe_status s);

/* Records a formatted message for the calling thread and returns `s`, so that
 * `return roe_fail(ROE_ERR_FORMAT, "%s: tensor %s: ...", path, name);` reads naturally. */
roe_status roe_fail(roe_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes the current message with more context ("loading model: " + old message). */
roe_status roe_fail_context(roe_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The last message recorded by roe_fail on this thread ("" if none). */
const char *roe_error_message(void);
void roe_error_clear(void);

/* A short name for the status ("format error"). */
const char *roe_status_name(roe_status s);

/* Propagate a failing status unchanged (the message is already recorded). */
#define ROE_TRY(expr)                                                                              \
    do {                                                                                           \
        roe_status roe__s = (expr);                                                                \
        if (roe__s != ROE_OK) return roe__s;                                                       \
    } while (0)

/* Propagate to a cleanup label: requires `roe_status st;` and a `fail:` label in scope. */
#define ROE_CHECK(expr)                                                                            \
    do {                                                                                           \
        st = (expr);                                                                               \
        if (st != ROE_OK) goto fail;                                                               \
    } while (0)

#endif
