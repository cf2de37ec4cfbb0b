/*
 * env.h — every environment variable the runtime reads, declared in one place.
 *
 *   ROE_MODEL        default model directory (instead of the bundled one)
 *   ROE_CPU_ISA      force a CPU kernel path: avx512, avx2 or portable
 *   ROE_LOG          log level: error, warn, info, debug
 */
#ifndef ROE_ENV_H
#define ROE_ENV_H

#include "kernels/backend.h"
#include "log.h"

const char *roe_env_model_dir(void);     /* NULL if unset */
roe_cpu_isa roe_env_cpu_isa(void);       /* AUTO if unset or unknown */
roe_log_level roe_env_log_level(void);   /* WARN if unset */

#endif
