/* env.c — the runtime's environment variables; see env.h. */
#include "env.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

int roe_env_comm(void) {
    const char *v = getenv("ROE_COMM");
    if (!v || !*v || strcmp(v, "auto") == 0) return ROE_ENV_COMM_AUTO;
    if (strcmp(v, "self") == 0) return ROE_ENV_COMM_SELF;
    if (strcmp(v, "mpi") == 0) return ROE_ENV_COMM_MPI;
    return -1;
}

int roe_env_launched_by_mpirun(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") != NULL || getenv("PMIX_RANK") != NULL ||
           getenv("PMI_RANK") != NULL;
}

int roe_env_local_rank(void) {
    const char *v = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    return v ? atoi(v) : 0;
}

int roe_env_default_threads(void) {
    const char *omp = getenv("OMP_NUM_THREADS");
    const int local = roe_env_local_size();
    if ((omp && *omp) || local <= 1) return 0;
    const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus > local ? (int)(cpus / local) : 1;
}

int roe_env_cores_shared(void) {
    const char *omp = getenv("OMP_NUM_THREADS");
    const int threads = omp && atoi(omp) > 0 ? atoi(omp) : 1; /* unset: roe_env_default_threads */
    return (long)roe_env_local_size() * threads > sysconf(_SC_NPROCESSORS_ONLN);
}

int roe_env_local_size(void) {
    const char *v = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    return v && atoi(v) > 0 ? atoi(v) : 1;
}

double roe_env_comm_timeout_s(void) {
    const char *v = getenv("ROE_COMM_TIMEOUT_S");
    if (!v || !*v) return 60.0;
    char *end = NULL;
    double t = strtod(v, &end);
    return end && !*end && t > 0 && t < 1e7 ? t : -1.0;
}

static const char *nonempty(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

const char *roe_env_placement(void) { return nonempty("ROE_PLACEMENT"); }
const char *roe_env_home_policy(void) { return nonempty("ROE_HOME_POLICY"); }
const char *roe_env_ep_wire(void) { return nonempty("ROE_EP_WIRE"); }

int roe_env_ep_overlap(void) {
    const char *v = getenv("ROE_EP_OVERLAP");
    return !(v && strcmp(v, "0") == 0);
}

int roe_env_ep_early_us(void) {
    const char *v = getenv("ROE_EP_EARLY_US");
    if (!v || !*v) return 0;
    char *end = NULL;
    const long us = strtol(v, &end, 10);
    if (*end || us < 0 || us > 10000000) return 0; /* malformed: the default */
    return us == 0 ? -1 : (int)us;
}

int roe_env_test_control_version(void) {
    const char *v = getenv("ROE_TEST_CONTROL_VERSION");
    return v ? atoi(v) : 0;
}
