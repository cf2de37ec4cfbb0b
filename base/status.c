/* status.c — per-thread error message behind roe_fail(); see status.h. */
#include "status.h"

#include <stdio.h>
#include <string.h>

enum { ROE_ERROR_MAX = 1024 };

/* The only per-thread state in the runtime: like errno, it is the error channel. */
static _Thread_local char roe__error[ROE_ERROR_MAX];

roe_status roe_fail(roe_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(roe__error, sizeof roe__error, fmt, ap);
    va_end(ap);
    return s;
}

roe_status roe_fail_context(roe_status s, const char *fmt, ...) {
    char prefix[ROE_ERROR_MAX];
    char old[ROE_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, roe__error, sizeof old);
    snprintf(roe__error, sizeof roe__error, "%.400s: %.600s", prefix, old);
    return s;
}

const char *roe_error_message(void) { return roe__error; }

void roe_error_clear(void) { roe__error[0] = '\0'; }

const char *roe_status_name(roe_status s) {
    switch (s) {
    case ROE_OK: return "ok";
    case ROE_ERR_INVALID_ARG: return "invalid argument";
    case ROE_ERR_IO: return "I/O error";
    case ROE_ERR_FORMAT: return "format error";
    case ROE_ERR_UNSUPPORTED: return "unsupported";
    case ROE_ERR_NOMEM: return "out of memory";
    case ROE_ERR_COMM: return "communication error";
    case ROE_ERR_TIMEOUT: return "timeout";
    case ROE_ERR_INTERNAL: return "internal error";
    case ROE_ERR_NOT_FOUND: return "not found";
    case ROE_ERR_OVERLOADED: return "overloaded";
    case ROE_ERR_STOPPING: return "stopping";
    case ROE_ERR_UNAVAILABLE: return "unavailable";
    case ROE_STATUS_COUNT: break;
    }
    return "unknown status";
}

roe_error_kind roe_status_kind(roe_status s) {
    switch (s) {
    case ROE_OK: return ROE_KIND_OK;
    case ROE_ERR_INVALID_ARG:
    case ROE_ERR_FORMAT:
    case ROE_ERR_UNSUPPORTED: return ROE_KIND_BAD_REQUEST;
    case ROE_ERR_NOT_FOUND: return ROE_KIND_NOT_FOUND;
    case ROE_ERR_OVERLOADED: return ROE_KIND_OVERLOADED;
    case ROE_ERR_STOPPING:
    case ROE_ERR_UNAVAILABLE: return ROE_KIND_UNAVAILABLE;
    case ROE_ERR_NOMEM:
    case ROE_ERR_IO:
    case ROE_ERR_COMM:
    case ROE_ERR_TIMEOUT:
    case ROE_ERR_INTERNAL: return ROE_KIND_INTERNAL;
    case ROE_STATUS_COUNT: break;
    }
    return ROE_KIND_INTERNAL; /* not a status: never the caller's fault */
}
