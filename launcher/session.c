/* session.c — opening the model, tokenizer and engine for a subcommand; see session.h. */
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <limits.h>

#include "base/alloc.h"
#include "base/env.h"
#include "base/fileio.h"

static roe_comm *roe__world; /* see session.h: process-wide, like MPI_COMM_WORLD */

void roe_session_set_world(roe_comm *c) { roe__world = c; }
roe_comm *roe_session_world(void) { return roe__world; }
int roe_session_world_size(void) { return roe__world ? roe_comm_size(roe__world) : 1; }

int roe_session_world_finish(int rc) {
    roe_comm *c = roe__world;
    if (!c || roe_comm_size(c) == 1) return rc;
    if (roe_comm_failed(c)) {
        fprintf(stderr, "roe: rank 0: communication between ranks failed (see above): ending every rank\n");
        roe_comm_abort(c, rc ? rc : 1);
    }
    roe_status st = roe_workers_exit(c, rc);
    if (st != ROE_OK) {
        fprintf(stderr, "roe: %s\n", roe_error_message());
        roe_comm_abort(c, 1);
    }
    return rc;
}

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
    roe_status st = roe_model_open(s->model_dir, &s->model); /* roe_rank_open keeps this rank's experts */
    if (st != ROE_OK) return roe_report(cmd, st);
    const int N = roe_session_world_size();
    const char *pfile = roe_env_placement();
    if (s->model->cfg.n_experts > 0 && N > 1) { /* one process holds every expert */
        st = pfile ? roe_placement_load(pfile, &s->model->cfg, N, &s->placement)
                   : roe_placement_contiguous(&s->model->cfg, N, &s->placement);
        if (st != ROE_OK) return roe_report(cmd, st); /* the engine keeps rank 0's experts */
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", s->model_dir);
    if (roe_is_file(path)) {
        st = roe_tokenizer_load(path, &s->tok);
        if (st != ROE_OK) return roe_report(cmd, st);
    }
    return 0;
}

/* allenai/OLMoE-1B-7B-0924's config.json (the fields roe reads): 6.9B parameters, 1.3B active */
static const char *OLMOE_1B7B_CONFIG =
    "{\"model_type\": \"olmoe\", \"vocab_size\": 50304, \"hidden_size\": 2048, \"intermediate_size\": 1024,"
    " \"num_hidden_layers\": 16, \"num_attention_heads\": 16, \"num_key_value_heads\": 16,"
    " \"max_position_embeddings\": 4096, \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0,"
    " \"clip_qkv\": null, \"num_experts\": 64, \"num_experts_per_tok\": 8, \"norm_topk_prob\": false,"
    " \"tie_word_embeddings\": false, \"bos_token_id\": null, \"eos_token_id\": 50279, \"pad_token_id\": 1}";

int roe_session_open_random(struct roe_session *s, const char *cmd, const char *name) {
    memset(s, 0, sizeof *s);
    struct roe_model_config cfg;
    roe_status st = strcmp(name, "olmoe-1b7b") == 0
                        ? roe_config_parse(OLMOE_1B7B_CONFIG, "built-in olmoe-1b7b", &cfg)
                        : roe_config_load(name, &cfg);
    if (st != ROE_OK) return roe_report(cmd, st);
    if (roe_session_world_size() > 1) {
        fprintf(stderr, "roe %s: --random-model runs in one process only: under mpirun each rank "
                        "would draw other random weights\n", cmd);
        return 1;
    }
    st = roe_model_shapes(&cfg, &s->model);
    if (st != ROE_OK) return roe_report(cmd, st);
    s->model_dir = strcmp(name, "olmoe-1b7b") == 0 ? "random:olmoe-1b7b" : name;
    return 0;
}

int roe_session_backend(const char *cmd, const char *name, roe_backend_kind *out) {
    *out = ROE_BACKEND_CPU;
    if (!name || strcmp(name, "cpu") == 0) return 0;
    if (strcmp(name, "cuda") == 0) {
        *out = ROE_BACKEND_CUDA;
        return 0;
    }
    if (strcmp(name, "cpu-staged") == 0) { /* tests: the device path on CPU kernels */
        *out = ROE_BACKEND_CPU_STAGED;
        return 0;
    }
    fprintf(stderr, "roe %s: --backend '%s' is not cpu or cuda\n", cmd, name);
    return 2;
}

int roe_session_weights(struct roe_session *s, const char *cmd, const char *name) {
    if (!name) name = "bf16";
    if (roe_weights_parse(name, &s->weights)) return 0;
    fprintf(stderr, "roe %s: --weights '%s' is not bf16, q8 or q4\n", cmd, name);
    return 2;
}

/* Rank 0's share of the session, opened as every worker opens its own (runtime/rank.h). */
static roe_status open_rank(struct roe_session *s, struct roe_engine_opts *opts, struct roe_session_spec *spec,
                            char abs[PATH_MAX]) {
    if (opts->max_ctx > s->model->cfg.max_position) opts->max_ctx = s->model->cfg.max_position;
    opts->wire = strcmp(roe_env_ep_wire(), "bf16") == 0 ? ROE_EP_WIRE_BF16 : ROE_EP_WIRE_F32;
    opts->no_overlap = !roe_env_ep_overlap();
    /* every rank opens the same directory: give them an absolute path */
    const char *dir = realpath(s->model_dir, abs) ? abs : s->model_dir;
    *spec = roe_session_spec_of(dir, opts, s->placement, &s->model->cfg, s->warm);
    spec->weights = (int)s->weights;
    spec->liveness_s = s->liveness_s;
    ROE_TRY(roe_rank_open(&s->rank, s->model, spec, roe__world, opts->random_seed));
    s->engine = s->rank.engine;
    /* the others run the kernel path this rank resolved (AUTO: the best this CPU has) */
    spec->isa = roe_rank_isa_of_backend(roe_engine_backend_name(s->engine));
    return ROE_OK;
}

int roe_session_open_engine(struct roe_session *s, const char *cmd, struct roe_engine_opts opts) {
    struct roe_session_spec spec;
    char abs[PATH_MAX];
    roe_status st = open_rank(s, &opts, &spec, abs);
    if (st != ROE_OK) return roe_report(cmd, st);
    const int N = roe_session_world_size();
    s->ranks = roe_calloc((size_t)N, sizeof *s->ranks);
    if (!s->ranks) return roe_report(cmd, roe_fail(ROE_ERR_NOMEM, "out of memory"));
    s->ranks[0].resident_bytes = s->model->held_bytes;
    snprintf(s->ranks[0].backend, sizeof s->ranks[0].backend, "%s", roe_engine_backend_name(s->engine));
    if (N > 1 && (st = roe_workers_open(roe__world, &spec)) != ROE_OK) return roe_report(cmd, st);
    if (s->warm) s->warmed_bytes = roe_model_warm(s->model); /* while the others warm theirs */
    s->ranks[0].mapped_resident = roe_mapped_resident_bytes();
    if (N > 1 && (st = roe_workers_opened(roe__world, s->ranks)) != ROE_OK) return roe_report(cmd, st);
    if (N > 1 && s->liveness_s > 0) roe_comm_set_timeout(roe__world, s->liveness_s); /* as the workers did */
    return 0;
}

void roe_session_close(struct roe_session *s) {
    roe_rank_close(&s->rank);
    roe_placement_free(s->placement);
    roe_free(s->ranks);
    roe_tokenizer_free(s->tok);
    roe_model_free(s->model);
    memset(s, 0, sizeof *s);
}
