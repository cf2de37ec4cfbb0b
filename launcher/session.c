/* session.c — opening the model, tokenizer and engine for a subcommand; see session.h. */
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/env.h"
#include "runtime/fileio.h"

const char *roe_default_model_dir(void) {
    const char *env = roe_env_model_dir();
    return env ? env : ROE_DEFAULT_MODEL_DIR;
}

int roe_report(const char *cmd, roe_status st) {
    fprintf(stderr, "roe %s: %s\n", cmd, roe_error_message()[0] ? roe_error_message() : roe_status_name(st));
    return 1;
}

int roe_session_open_model(struct roe_session *s, const char *cmd, const char *model_dir) {
    memset(s, 0, sizeof *s);
    s->model_dir = model_dir ? model_dir : roe_default_model_dir();
    roe_status st = roe_model_load(s->model_dir, &s->model);
    if (st != ROE_OK) return roe_report(cmd, st);
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", s->model_dir);
    if (roe_is_file(path)) {
        st = roe_tokenizer_load(path, &s->tok);
        if (st != ROE_OK) return roe_report(cmd, st);
    }
    return 0;
}

int roe_session_open_engine(struct roe_session *s, const char *cmd, struct roe_engine_opts opts) {
    if (opts.max_ctx > s->model->cfg.max_position) opts.max_ctx = s->model->cfg.max_position;
    roe_status st = roe_engine_create(s->model, &opts, &s->engine);
    if (st != ROE_OK) return roe_report(cmd, st);
    return 0;
}

void roe_session_close(struct roe_session *s) {
    roe_engine_free(s->engine);
    roe_tokenizer_free(s->tok);
    roe_model_free(s->model);
    memset(s, 0, sizeof *s);
}
