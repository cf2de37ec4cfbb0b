/* log.c — the global log sink; see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>

static roe_log_level roe__level = ROE_LOG_WARN;
static int roe__rank = 0;

void roe_log_set_level(roe_log_level level) { roe__level = level; }
roe_log_level roe_log_get_level(void) { return roe__level; }
void roe_log_set_rank(int rank) { roe__rank = rank; }

void roe_log(roe_log_level level, const char *subsystem, const char *fmt, ...) {
    static const char *names[] = {"error", "warn", "info", "debug"};
    if (level > roe__level) return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "roe[%d] %s %s: %s\n", roe__rank, names[level], subsystem, line);
}
