/* env.c — the runtime's environment variables; see env.h. */
#include "env.h"

#include <stdlib.h>
#include <string.h>

const char *roe_env_model_dir(void) {
    const char *v = getenv("ROE_MODEL");
    return v && *v ? v : NULL;
}

roe_cpu_isa roe_env_cpu_isa(void) {
    const char *v = getenv("ROE_CPU_ISA");
    if (!v) return ROE_CPU_ISA_AUTO;
    if (strcmp(v, "avx512") == 0) return ROE_CPU_ISA_AVX512;
    if (strcmp(v, "avx2") == 0) return ROE_CPU_ISA_AVX2;
    if (strcmp(v, "portable") == 0) return ROE_CPU_ISA_PORTABLE;
    return ROE_CPU_ISA_AUTO;
}

roe_log_level roe_env_log_level(void) {
    const char *v = getenv("ROE_LOG");
    if (!v) return ROE_LOG_WARN;
    if (strcmp(v, "error") == 0) return ROE_LOG_ERROR;
    if (strcmp(v, "info") == 0) return ROE_LOG_INFO;
    if (strcmp(v, "debug") == 0) return ROE_LOG_DEBUG;
    return ROE_LOG_WARN;
}
