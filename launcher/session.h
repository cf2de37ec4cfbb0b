/*
 * session.h — what every subcommand opens: the model directory (default: the bundled
 * model), its tokenizer when present, and an engine sized for the job. Turns library
 * statuses into one clear line on stderr.
 *
 * Under mpirun (a world of N > 1 ranks) the subcommand runs on rank 0 only; the session
 * places the experts (ROE_PLACEMENT or contiguous blocks), keeps rank 0's experts, and
 * when it opens the engine, opens the same model and engine on every other rank
 * (runtime/worker.h). The world communicator is process-wide, as MPI_COMM_WORLD is: main()
 * creates it and hands it over with roe_session_set_world.
 */
#ifndef ROE_SESSION_H
#define ROE_SESSION_H

#include "comm/comm.h"
#include "runtime/engine.h"
#include "runtime/model.h"
#include "runtime/placement.h"
#include "runtime/quant.h"
#include "runtime/rank.h"
#include "runtime/tokenizer.h"
#include "runtime/worker.h"

struct roe_session {
    const char *model_dir;
    struct roe_model *model;
    roe_tokenizer *tok;     /* NULL if the model directory has no tokenizer.json */
    struct roe_rank rank;   /* rank 0's share, opened as every rank opens its own */
    roe_engine *engine;     /* = rank.engine once open */
    struct roe_placement *placement; /* owned; NULL in a world of one without ROE_PLACEMENT */
    int warm;               /* set before opening the engine: every rank reads its weights */
    roe_weights weights;    /* set before opening the engine: every rank quantizes its share (--weights) */
    double liveness_s;      /* set before opening the engine: > 0, the bound on every wait for
                               another rank once open (ROE_COMM_TIMEOUT_S before) */
    double warmed_bytes;    /* what this rank read */
    struct roe_rank_info *ranks; /* owned, [world size] once the engine is open (rank 0: here) */
};

/* The world communicator (borrowed; main owns it). NULL before main sets it: one process. */
void roe_session_set_world(roe_comm *c);
roe_comm *roe_session_world(void);
int roe_session_world_size(void);

/* main(), after rank 0's command returned rc: ends the other ranks (or the whole job, when
 * communication failed). Returns the exit code. */
int roe_session_world_finish(int rc);

/* The bundled model's directory: $ROE_MODEL if set, else the build's default. */
const char *roe_default_model_dir(void);

/* Loads model (+ tokenizer). Returns 0, or prints "roe CMD: ..." and returns 1. */
int roe_session_open_model(struct roe_session *s, const char *cmd, const char *model_dir);
/* A model of the given shapes with no checkpoint, whose engine generates random weights on
 * the device (benchmarks): name "olmoe-1b7b" (built-in config) or a directory whose
 * config.json alone is read. One process only. No tokenizer. Returns 0, or prints and 1. */
int roe_session_open_random(struct roe_session *s, const char *cmd, const char *name);
/* --backend NAME (NULL: cpu) -> *out; 0, or prints "roe CMD: ..." and returns 2. */
int roe_session_backend(const char *cmd, const char *name, roe_backend_kind *out);
/* --weights NAME (NULL: bf16) -> s->weights; 0, or prints "roe CMD: ..." and returns 2. */
int roe_session_weights(struct roe_session *s, const char *cmd, const char *name);
/* Creates the engine; opts.max_ctx is clamped to the model's max_position. */
int roe_session_open_engine(struct roe_session *s, const char *cmd, struct roe_engine_opts opts);
void roe_session_close(struct roe_session *s);

/* Prints "roe CMD: <status message>" to stderr and returns 1. */
int roe_report(const char *cmd, roe_status st);

#endif
