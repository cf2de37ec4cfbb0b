/*
 * env.h — every environment variable roe reads, declared in one table (env.c): for each knob
 * its name, type, accepted values, default and a line of help. `roe env` prints the table.
 *
 * Validation is in one place: roe_env_check() tests every set knob against the table, and the
 * launcher calls it before anything else (a bad value: exit status 2, one line naming the
 * variable, the value and what is accepted). The getters below therefore treat a bad value as
 * a broken invariant: they stop the program naming it, never fall back to the default
 * silently. An empty value is the same as unset.
 *
 * base/ knows no type above it: a choice comes back as its index in the table (the enums
 * below, in the table's order), an integer, a double or a string; the layers above map them
 * (ROE_CPU_ISA to roe_cpu_isa: kernels/backend.c).
 *
 * Read here too, but not roe's knobs (listed by `roe env`, not validated; a malformed one
 * reads as unset): Open MPI's launcher sets OMPI_COMM_WORLD_SIZE / PMIX_RANK / PMI_RANK
 * (started by mpirun?), OMPI_COMM_WORLD_LOCAL_RANK (the rank's index on its node: its GPU),
 * OMPI_COMM_WORLD_LOCAL_SIZE (ranks on this node: more than cores means they share); the
 * user sets OpenMP's OMP_NUM_THREADS.
 */
#ifndef ROE_ENV_H
#define ROE_ENV_H

#include <stddef.h>

#include "base/log.h"
#include "base/status.h"

typedef enum roe_env_type {
    ROE_ENV_STRING = 0,
    ROE_ENV_PATH,   /* a file or directory, opened (and its absence reported) by its user */
    ROE_ENV_CHOICE, /* one of the knob's words */
    ROE_ENV_INT,    /* a decimal integer in [min, max] */
    ROE_ENV_NUMBER, /* a decimal number in [min, max] */
    ROE_ENV_BOOL,   /* 0 or 1 */
} roe_env_type;

enum { ROE_ENV_MAX_CHOICES = 6 };

struct roe_env_knob {
    const char *name;
    roe_env_type type;
    const char *choices[ROE_ENV_MAX_CHOICES + 1]; /* CHOICE: the words, NULL-terminated */
    double min, max;                              /* INT, NUMBER: the range, both ends in */
    const char *def;  /* the value when unset; NULL: none (the help says what then) */
    const char *help; /* one line */
    int secret;       /* `roe env` says whether it is set, never its value */
};

/* A knob's value: the fields its type uses. */
struct roe_env_value {
    const char *str; /* the text (the default's when unset); NULL: unset without a default */
    long long i;     /* CHOICE: the word's index (-1 unset without a default); INT; BOOL 0 or 1 */
    double num;      /* NUMBER */
};

/* The table (static storage), *n knobs. */
const struct roe_env_knob *roe_env_knobs(int *n);
/* The knob called `name`; NULL if the table has none. */
const struct roe_env_knob *roe_env_knob(const char *name);
/* What k accepts, in words ("one of: f32, bf16", "an integer in [0, 10000000]"), into buf. */
void roe_env_describe(const struct roe_env_knob *k, char *buf, size_t size);
/* `text` as k's value (NULL or "": unset, then the default). ROE_ERR_INVALID_ARG, with
 * "NAME='text' is not <what k accepts>", if k does not accept it. */
roe_status roe_env_parse(const struct roe_env_knob *k, const char *text, struct roe_env_value *out);
/* Every knob of the table as set in the environment: the first bad one's status and message. */
roe_status roe_env_check(void);
/* The knob `name`'s current value. A name not in the table, or a value roe_env_check() would
 * reject, stops the program with a message (the launcher has checked before anything reads). */
struct roe_env_value roe_env_get(const char *name);

/* The variables read from the launcher and OpenMP, for `roe env`: static, *n of them. */
struct roe_env_foreign {
    const char *name;
    const char *help;
};
const struct roe_env_foreign *roe_env_foreign(int *n);

/* ROE_COMM's words, in the table's order. */
typedef enum roe_env_comm_kind {
    ROE_ENV_COMM_AUTO = 0,
    ROE_ENV_COMM_SELF,
    ROE_ENV_COMM_MPI,
} roe_env_comm_kind;

/* ROE_CPU_ISA's words, in the table's order (kernels/backend.c maps them to roe_cpu_isa). */
typedef enum roe_env_isa {
    ROE_ENV_ISA_AVX512 = 0,
    ROE_ENV_ISA_AVX2,
    ROE_ENV_ISA_PORTABLE,
} roe_env_isa;

/* ROE_CPU_BF16's words, in the table's order (kernels/backend.c maps them to roe_cpu_bf16). */
typedef enum roe_env_bf16 {
    ROE_ENV_BF16_AMX = 0,
    ROE_ENV_BF16_DPBF16,
    ROE_ENV_BF16_OFF,
} roe_env_bf16;

/* ROE_CPU_INT8's words, in the table's order (kernels/backend.c maps them to roe_cpu_int8). */
typedef enum roe_env_int8 {
    ROE_ENV_INT8_AMX = 0,
    ROE_ENV_INT8_OFF,
} roe_env_int8;

/* The knobs as their users want them (each one's meaning: the table in env.c). */
const char *roe_env_model_dir(void);     /* ROE_MODEL; NULL if unset */
roe_log_level roe_env_log_level(void);   /* ROE_LOG */
roe_env_comm_kind roe_env_comm(void);    /* ROE_COMM */
double roe_env_comm_timeout_s(void);
double roe_env_liveness_s(void); /* ROE_LIVENESS_S: roe serve's bound on waits for a rank */
const char *roe_env_api_key(void); /* ROE_API_KEY: roe serve's key (NULL: unset) */     /* ROE_COMM_TIMEOUT_S, > 0 */
const char *roe_env_placement(void);     /* ROE_PLACEMENT; NULL if unset */
const char *roe_env_home_policy(void);   /* ROE_HOME_POLICY's word */
const char *roe_env_ep_wire(void);       /* ROE_EP_WIRE's word: "f32" or "bf16" */
int roe_env_ep_overlap(void);            /* ROE_EP_OVERLAP: 1 or 0 */
/* ROE_EP_EARLY_US as struct roe_engine_opts.ep_early_us means it: microseconds, 0 at once */
int roe_env_ep_early_us(void);
int roe_env_test_control_version(void);  /* ROE_TEST_CONTROL_VERSION; 0: the build's own */

/* Launcher and OpenMP variables: malformed reads as unset. */
int roe_env_launched_by_mpirun(void);    /* 1 if Open MPI / PMIx started this process */
int roe_env_local_rank(void);            /* OMPI_COMM_WORLD_LOCAL_RANK, 0 if unset */
int roe_env_local_size(void);            /* OMPI_COMM_WORLD_LOCAL_SIZE, 1 if unset */
/* Threads per rank when neither a flag nor OMP_NUM_THREADS says: with several ranks on this
 * node, the online CPUs divided among them (at least 1), so ranks do not oversubscribe the
 * cores; 0 (OpenMP's default) otherwise. */
int roe_env_default_threads(void);
/* 1 if this node's ranks and their threads want more cores than it has online (then
 * waiting ranks give their core up). */
int roe_env_cores_shared(void);

#endif
