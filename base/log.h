/*
 * log.h — leveled logging with a subsystem tag and the rank on every line.
 * The sink (stderr) and the level are the only process-wide state of the runtime.
 * Never log inside hot loops.
 */
#ifndef ROE_LOG_H
#define ROE_LOG_H

typedef enum roe_log_level {
    ROE_LOG_ERROR = 0,
    ROE_LOG_WARN = 1,
    ROE_LOG_INFO = 2,
    ROE_LOG_DEBUG = 3,
} roe_log_level;

void roe_log_set_level(roe_log_level level);
roe_log_level roe_log_get_level(void);
void roe_log_set_rank(int rank);

void roe_log(roe_log_level level, const char *subsystem, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define ROE_LOG_ERROR(sub, ...) roe_log(ROE_LOG_ERROR, sub, __VA_ARGS__)
#define ROE_LOG_WARN(sub, ...) roe_log(ROE_LOG_WARN, sub, __VA_ARGS__)
#define ROE_LOG_INFO(sub, ...) roe_log(ROE_LOG_INFO, sub, __VA_ARGS__)
#define ROE_LOG_DEBUG(sub, ...) roe_log(ROE_LOG_DEBUG, sub, __VA_ARGS__)

#endif
