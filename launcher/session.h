/*
 * session.h — what every subcommand opens: the model directory (default: the bundled
 * model), its tokenizer when present, and an engine sized for the job. Turns library
 * statuses into one clear line on stderr.
 */
#ifndef ROE_SESSION_H
#define ROE_SESSION_H

#include "runtime/engine.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"

struct roe_session {
    const char *model_dir;
    struct roe_model *model;
    roe_tokenizer *tok;     /* NULL if the model directory has no tokenizer.json */
    roe_engine *engine;
};

/* The bundled model's directory: $ROE_MODEL if set, else the build's default. */
const char *roe_default_model_dir(void);

/* Loads model (+ tokenizer). Returns 0, or prints "roe CMD: ..." and returns 1. */
int roe_session_open_model(struct roe_session *s, const char *cmd, const char *model_dir);
/* Creates the engine; opts.max_ctx is clamped to the model's max_position. */
int roe_session_open_engine(struct roe_session *s, const char *cmd, struct roe_engine_opts opts);
void roe_session_close(struct roe_session *s);

/* Prints "roe CMD: <status message>" to stderr and returns 1. */
int roe_report(const char *cmd, roe_status st);

#endif
