/*
 * env.c — the table of roe's environment knobs, their parser and the getters; see env.h.
 *
 * A knob is added here and nowhere else: its row is what `roe env` prints, what
 * roe_env_check() validates at start-up and what its getter reads. A default goes through the
 * same parser as a set value (tests/unit/test_env.c parses every one).
 */
#include "env.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct roe_env_knob KNOBS[] = {
    {.name = "ROE_MODEL", .type = ROE_ENV_PATH,
     .help = "model directory of commands run without --model (unset: the bundled model)"},
    {.name = "ROE_CPU_ISA", .type = ROE_ENV_CHOICE, .choices = {"avx512", "avx2", "portable"},
     .help = "force a CPU kernel path (unset: the best this CPU supports)"},
    {.name = "ROE_CPU_BF16", .type = ROE_ENV_CHOICE, .choices = {"amx", "avx512bf16", "off"},
     .help = "bf16 weights' matmul on the avx512 path: AMX tiles, AVX512-BF16 dot products or the "
             "fp32 FMA kernels (unset: the best this CPU supports)"},
    {.name = "ROE_CPU_INT8", .type = ROE_ENV_CHOICE, .choices = {"amx", "off"},
     .help = "Q8/Q4 weights' batched rows on the avx512 path: AMX-INT8 tiles or the VNNI kernels (the "
             "same results; unset: AMX where this CPU has it)"},
    {.name = "ROE_LOG", .type = ROE_ENV_CHOICE, .choices = {"error", "warn", "info", "debug"},
     .def = "warn", .help = "log level"},
    {.name = "ROE_COMM", .type = ROE_ENV_CHOICE, .choices = {"auto", "self", "mpi"},
     .def = "auto", .help = "transport between ranks (auto: mpi when started by mpirun)"},
    {.name = "ROE_COMM_TIMEOUT_S", .type = ROE_ENV_NUMBER, .min = 0.001, .max = 1e7, .def = "60",
     .help = "bound in seconds on every wait for another rank, MPI_Init and MPI_Finalize too"},
    {.name = "ROE_LIVENESS_S", .type = ROE_ENV_NUMBER, .min = 0.5, .max = 1e6, .def = "5",
     .help = "roe serve on several ranks: once the model is open, the bound in seconds on every wait "
             "for another rank (idle, the coordinator sends a heartbeat every quarter of it), so a "
             "dead rank is found within it"},
    {.name = "ROE_API_KEY", .type = ROE_ENV_STRING, .secret = 1,
     .help = "roe serve: the API key clients must send (Authorization: Bearer KEY), as --api-key "
             "(which takes precedence); unset: none"},
    {.name = "ROE_PLACEMENT", .type = ROE_ENV_PATH,
     .help = "expert placement file (configs/README.md; unset: contiguous blocks per rank)"},
    {.name = "ROE_HOME_POLICY", .type = ROE_ENV_CHOICE, .choices = {"round-robin", "least-loaded"},
     .def = "round-robin",
     .help = "home rank of each sequence: in turn, or the least loaded (prompt + tokens x K)"},
    {.name = "ROE_EP_WIRE", .type = ROE_ENV_CHOICE, .choices = {"f32", "bf16"}, .def = "f32",
     .help = "rows sent to experts: f32 (bit-exact) or bf16 (half the bytes, rounded)"},
    {.name = "ROE_EP_OVERLAP", .type = ROE_ENV_BOOL, .def = "1",
     .help = "run local experts while other ranks' rows are in flight (0: wait for every row)"},
    {.name = "ROE_EP_EARLY_US", .type = ROE_ENV_INT, .min = 0, .max = 1e7, .def = "100",
     .help = "microseconds a rank waits for a late rank before running its own rows (0: at once)"},
    {.name = "ROE_TEST_CONTROL_VERSION", .type = ROE_ENV_INT, .min = 0, .max = INT_MAX, .def = "0",
     .help = "tests only: speak this control-plane version, not the build's own (0: the build's)"},
};
enum { N_KNOBS = sizeof KNOBS / sizeof KNOBS[0] };

static const struct roe_env_foreign FOREIGN[] = {
    {"OMPI_COMM_WORLD_SIZE", "set by mpirun: this process is one rank of a job"},
    {"PMIX_RANK", "set by a PMIx launcher: this process is one rank of a job"},
    {"PMI_RANK", "set by a PMI launcher: this process is one rank of a job"},
    {"OMPI_COMM_WORLD_RANK", "set by mpirun: the rank named when MPI_Init or MPI_Finalize stalls"},
    {"OMPI_COMM_WORLD_LOCAL_RANK", "set by mpirun: the rank's index on its node (its GPU)"},
    {"OMPI_COMM_WORLD_LOCAL_SIZE", "set by mpirun: ranks on this node (they share its cores)"},
    {"OMP_NUM_THREADS", "OpenMP threads per rank (unset: the node's cores shared by its ranks)"},
};

const struct roe_env_knob *roe_env_knobs(int *n) {
    *n = N_KNOBS;
    return KNOBS;
}

const struct roe_env_foreign *roe_env_foreign(int *n) {
    *n = (int)(sizeof FOREIGN / sizeof FOREIGN[0]);
    return FOREIGN;
}

const struct roe_env_knob *roe_env_knob(const char *name) {
    for (int i = 0; i < N_KNOBS; i++)
        if (strcmp(KNOBS[i].name, name) == 0) return &KNOBS[i];
    return NULL;
}

void roe_env_describe(const struct roe_env_knob *k, char *buf, size_t size) {
    switch (k->type) {
    case ROE_ENV_CHOICE: {
        size_t used = (size_t)snprintf(buf, size, "one of:");
        for (int i = 0; k->choices[i] && used < size; i++)
            used += (size_t)snprintf(buf + used, size - used, "%s %s", i ? "," : "", k->choices[i]);
        break;
    }
    case ROE_ENV_INT: snprintf(buf, size, "an integer in [%.15g, %.15g]", k->min, k->max); break;
    case ROE_ENV_NUMBER: snprintf(buf, size, "a number in [%.15g, %.15g]", k->min, k->max); break;
    case ROE_ENV_BOOL: snprintf(buf, size, "0 or 1"); break;
    case ROE_ENV_PATH: snprintf(buf, size, "a path"); break;
    default: snprintf(buf, size, "a string"); break;
    }
}

/* The whole text as a decimal integer: no leading space, no trailing garbage, no overflow. */
static int parse_int(const char *s, long long *out) {
    char *end = NULL;
    errno = 0;
    *out = strtoll(s, &end, 10);
    return !isspace((unsigned char)*s) && end != s && !*end && errno == 0;
}

/* The whole text as a number (NaN and infinities then fail every range). */
static int parse_number(const char *s, double *out) {
    char *end = NULL;
    errno = 0;
    *out = strtod(s, &end);
    return !isspace((unsigned char)*s) && end != s && !*end && errno == 0;
}

roe_status roe_env_parse(const struct roe_env_knob *k, const char *text,
                         struct roe_env_value *out) {
    const char *s = text && *text ? text : k->def;
    *out = (struct roe_env_value){.str = s, .i = -1};
    if (!s) return ROE_OK; /* unset, and no default: the knob's user knows what that means */
    int ok = 1;
    switch (k->type) {
    case ROE_ENV_CHOICE:
        for (int i = 0; k->choices[i] && out->i < 0; i++)
            if (strcmp(s, k->choices[i]) == 0) out->i = i;
        ok = out->i >= 0;
        break;
    case ROE_ENV_BOOL:
        ok = strcmp(s, "0") == 0 || strcmp(s, "1") == 0;
        out->i = s[0] == '1';
        break;
    case ROE_ENV_INT: ok = parse_int(s, &out->i) && out->i >= k->min && out->i <= k->max; break;
    case ROE_ENV_NUMBER:
        ok = parse_number(s, &out->num) && out->num >= k->min && out->num <= k->max;
        break;
    default: break; /* a string or a path: any text */
    }
    if (ok) return ROE_OK;
    char what[256];
    roe_env_describe(k, what, sizeof what);
    return roe_fail(ROE_ERR_INVALID_ARG, "%s='%.200s' is not %s", k->name, s, what);
}

roe_status roe_env_check(void) {
    for (int i = 0; i < N_KNOBS; i++) {
        struct roe_env_value v;
        ROE_TRY(roe_env_parse(&KNOBS[i], getenv(KNOBS[i].name), &v));
    }
    return ROE_OK;
}

struct roe_env_value roe_env_get(const char *name) {
    const struct roe_env_knob *k = roe_env_knob(name);
    struct roe_env_value v = {0};
    if (!k) {
        fprintf(stderr, "roe: %s is read but not declared in base/env.c's table\n", name);
        abort();
    }
    if (roe_env_parse(k, getenv(name), &v) != ROE_OK) {
        /* not bad input but a program that skipped roe_env_check(): never run on garbage */
        fprintf(stderr, "roe: %s\n", roe_error_message());
        abort();
    }
    return v;
}

const char *roe_env_model_dir(void) { return roe_env_get("ROE_MODEL").str; }
const char *roe_env_placement(void) { return roe_env_get("ROE_PLACEMENT").str; }
const char *roe_env_home_policy(void) { return roe_env_get("ROE_HOME_POLICY").str; }
const char *roe_env_ep_wire(void) { return roe_env_get("ROE_EP_WIRE").str; }
double roe_env_comm_timeout_s(void) { return roe_env_get("ROE_COMM_TIMEOUT_S").num; }
double roe_env_liveness_s(void) { return roe_env_get("ROE_LIVENESS_S").num; }
const char *roe_env_api_key(void) { return roe_env_get("ROE_API_KEY").str; }
roe_env_comm_kind roe_env_comm(void) { return (roe_env_comm_kind)roe_env_get("ROE_COMM").i; }
int roe_env_ep_overlap(void) { return (int)roe_env_get("ROE_EP_OVERLAP").i; }
int roe_env_ep_early_us(void) { return (int)roe_env_get("ROE_EP_EARLY_US").i; }
int roe_env_test_control_version(void) { return (int)roe_env_get("ROE_TEST_CONTROL_VERSION").i; }

roe_log_level roe_env_log_level(void) {
    /* in the table's order */
    static const roe_log_level level[] = {ROE_LOG_ERROR, ROE_LOG_WARN, ROE_LOG_INFO, ROE_LOG_DEBUG};
    return level[roe_env_get("ROE_LOG").i];
}

/* A launcher's or OpenMP's integer: its leading digits (OMP_NUM_THREADS may be a list, "4,2"),
 * or def when unset or not a number in [0, INT_MAX]: not ours to reject, and never a crash. */
static int foreign_int(const char *name, int def) {
    const char *v = getenv(name);
    if (!v || !*v) return def;
    char *end = NULL;
    errno = 0;
    const long x = strtol(v, &end, 10);
    return end == v || errno || x < 0 || x > INT_MAX ? def : (int)x;
}

int roe_env_launched_by_mpirun(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") != NULL || getenv("PMIX_RANK") != NULL ||
           getenv("PMI_RANK") != NULL;
}

int roe_env_local_rank(void) { return foreign_int("OMPI_COMM_WORLD_LOCAL_RANK", 0); }

int roe_env_local_size(void) {
    const int n = foreign_int("OMPI_COMM_WORLD_LOCAL_SIZE", 1);
    return n > 0 ? n : 1;
}

int roe_env_default_threads(void) {
    const char *omp = getenv("OMP_NUM_THREADS");
    const int local = roe_env_local_size();
    if ((omp && *omp) || local <= 1) return 0;
    const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus > local ? (int)(cpus / local) : 1;
}

int roe_env_cores_shared(void) {
    const int omp = foreign_int("OMP_NUM_THREADS", 1);
    const int threads = omp > 0 ? omp : 1; /* unset: roe_env_default_threads */
    return (long)roe_env_local_size() * threads > sysconf(_SC_NPROCESSORS_ONLN);
}
