/*
 * cmd_generate.c — `roe generate`: prompts in, continuations out (text or --json with
 * tokens, text and timings). Several --prompt / --prompt-ids run as one batch.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "roe_flags.h"
#include "commands.h"
#include "base/alloc.h"
#include "base/env.h"
#include "engine_opts.h"
#include "json_out.h"
#include "runtime/aggregate.h"
#include "runtime/generate.h"
#include "session.h"

static const char *CMD = "generate";
static const char *SYNOPSIS =
    "[--model DIR] (--prompt TEXT | --prompt-ids IDS)... [--max-tokens N] [--temperature T]\n"
    "       [--top-k K] [--top-p P] [--seed S] [--ignore-eos] [--json] [--threads N] [--backend cpu|cuda]\n"
    "       [--weights bf16|q8|q4]\n"
    "       [--roe-k K] [--roe-tau T | --roe-profile FILE] [--roe-keep-clean L] [--roe-gate clean|noisy]\n"
    "       [--roe-adaptive H]";

/* "1,2, 3" or "1 2 3" -> ids (roe_malloc'd). */
static int parse_ids(const char *s, int32_t **out, int *n) {
    size_t cap = strlen(s) / 2 + 2;
    int32_t *ids = roe_malloc(cap * sizeof *ids);
    if (!ids) return -1;
    int k = 0;
    const char *p = s;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > 2147483647L) {
            roe_free(ids);
            return -1;
        }
        ids[k++] = (int32_t)v;
        p = end;
        if (*p && *p != ' ' && *p != ',' && *p != '\t' && *p != '\n') {
            roe_free(ids);
            return -1;
        }
    }
    *out = ids;
    *n = k;
    return 0;
}

static cJSON *ids_json(const int32_t *ids, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
    return a;
}

static char *decode_text(roe_tokenizer *tok, const int32_t *ids, int n) {
    if (!tok) return NULL;
    char *text = NULL;
    size_t len = 0;
    if (roe_tokenizer_decode(tok, ids, (size_t)n, 0, &text, &len) != ROE_OK) return NULL;
    return text;
}

struct gen_opts {
    const char *model_dir, *logits_out, *backend, *weights;
    struct roe_arg_list prompts, prompt_ids; /* interleaved by their order on the command line */
    int max_tokens, json, threads, ignore_eos, batch_rows;
    struct roe_sampling sampling;
    struct roe_flags rf;
    struct roe_kv_flags kv;
    roe_backend_kind kind;
};

/* 0: run; 1: --help was printed (exit 0); 2: bad command line, said on stderr. */
static int parse_options(int argc, char **argv, struct gen_opts *o) {
    memset(o, 0, sizeof *o);
    o->max_tokens = 64;
    o->batch_rows = 128;
    o->sampling = roe_sampling_default();
    roe_flags_init(&o->rf);
    struct roe_arg_spec specs[15 + ROE_FLAGS_N_SPECS + ROE_KV_FLAGS_N_SPECS] = {
        {"--model", ROE_ARG_STRING, &o->model_dir, "model directory (default: the bundled model)", 0, 0},
        {"--prompt", ROE_ARG_LIST, &o->prompts, "prompt text (repeatable: one sequence each)", 0, 0},
        {"--prompt-ids", ROE_ARG_LIST, &o->prompt_ids, "prompt as token ids, '1,2,3' (repeatable)", 0, 0},
        {"--max-tokens", ROE_ARG_INT, &o->max_tokens, "tokens to generate per prompt (64)", 0, 1 << 20},
        {"--temperature", ROE_ARG_FLOAT, &o->sampling.temperature, "0 = greedy (default)", 0, 100},
        {"--top-k", ROE_ARG_INT, &o->sampling.top_k, "sample among the k most likely (0 = off)", 0, 1 << 24},
        {"--top-p", ROE_ARG_FLOAT, &o->sampling.top_p, "nucleus sampling mass (1 = off)", 1e-6, 1},
        {"--seed", ROE_ARG_U64, &o->sampling.seed, "sampling seed (0)", 0, 0},
        {"--ignore-eos", ROE_ARG_FLAG, &o->ignore_eos, "do not stop at the end-of-sequence token", 0, 0},
        {"--json", ROE_ARG_FLAG, &o->json, "print JSON: tokens, text, timings", 0, 0},
        {"--threads", ROE_ARG_INT, &o->threads, "CPU threads (0 = all cores)", 0, 1024},
        {"--batch-rows", ROE_ARG_INT, &o->batch_rows, "rows per engine step (128)", 1, 1 << 16},
        {"--logits-out", ROE_ARG_STRING, &o->logits_out,
         "write each generated position's log-probabilities (f32 [tokens, vocab], log softmax of the "
         "scores it was picked from, plain or RoE)", 0, 0},
        {"--backend", ROE_ARG_STRING, &o->backend, "cpu (default) or cuda (device: local rank % devices)", 0, 0},
        {"--weights", ROE_ARG_STRING, &o->weights, "bf16 (the checkpoint as stored) | q8 | q4: quantized at load", 0, 0},
    };
    roe_flags_specs(&o->rf, specs + 15);
    roe_kv_flags_specs(&o->kv, specs + 15 + ROE_FLAGS_N_SPECS);
    const int n_specs = (int)(sizeof specs / sizeof specs[0]);
    int rc = roe_args_parse(CMD, SYNOPSIS, specs, n_specs, argc, argv, 2);
    if (rc) return rc;
    if ((rc = roe_session_backend(CMD, o->backend, &o->kind))) return rc;
    if (o->prompts.n + o->prompt_ids.n == 0) {
        fprintf(stderr, "roe generate: no prompt: give --prompt TEXT or --prompt-ids IDS\n");
        return 2;
    }
    return 0;
}

/* Prompt r as token ids (*ids roe_malloc'd, non-empty): text through the tokenizer, or
 * an --prompt-ids list. Returns the exit code of a failure, said on stderr, or 0. */
static int prompt_tokens(const struct roe_session *s, int r, const char *text, const char *id_list,
                         int32_t **ids, int *n) {
    if (text) {
        if (!s->tok) {
            fprintf(stderr, "roe generate: model '%s' has no tokenizer.json: give --prompt-ids\n", s->model_dir);
            return 1;
        }
        size_t nn = 0;
        roe_status st = roe_tokenizer_encode(s->tok, text, strlen(text), ids, &nn);
        if (st != ROE_OK) return roe_report(CMD, st);
        *n = (int)nn;
    } else if (parse_ids(id_list, ids, n) != 0) {
        fprintf(stderr, "roe generate: --prompt-ids '%s': expected comma-separated token ids\n", id_list);
        return 2;
    }
    if (*n == 0) {
        roe_free(*ids);
        fprintf(stderr, "roe generate: prompt %d is empty\n", r);
        return 2;
    }
    return 0;
}

/* One request per prompt, in command-line order (owned[r] takes prompt r's ids); every
 * prompt must leave the model's context a position to generate in. */
static int build_requests(const struct gen_opts *o, const struct roe_session *s,
                          const struct roe_roster *roster, struct roe_request *reqs, int32_t **owned,
                          int *max_prompt) {
    const struct roe_arg_list *texts = &o->prompts, *lists = &o->prompt_ids;
    int ip = 0, ii = 0;
    *max_prompt = 0;
    for (int r = 0; r < texts->n + lists->n; r++) {
        int take_text = ii >= lists->n || (ip < texts->n && texts->order[ip] < lists->order[ii]);
        const char *text = take_text ? texts->items[ip++] : NULL;
        const char *id_list = take_text ? NULL : lists->items[ii++];
        int32_t *ids = NULL;
        int n = 0;
        int rc = prompt_tokens(s, r, text, id_list, &ids, &n);
        if (rc) return rc;
        owned[r] = ids;
        reqs[r] = (struct roe_request){.prompt = ids, .n_prompt = n, .max_tokens = o->max_tokens,
                                       .stop_at_eos = !o->ignore_eos, .sampling = o->sampling,
                                       .roster = roster};
        if (n > *max_prompt) *max_prompt = n;
    }
    const int max_pos = s->model->cfg.max_position;
    if (*max_prompt >= max_pos) {
        fprintf(stderr,
                "roe generate: a prompt has %d tokens, more than the model's context of %d positions "
                "allows (max_position_embeddings, one position is needed to generate)\n",
                *max_prompt, max_pos);
        return 2;
    }
    return 0;
}

/* --logits-out: every generated position's log-probabilities, log softmax of the scores it was
 * picked from (the plain model's logits, or the RoE aggregate: one convention whatever K). */
static int write_logits(const char *path, const struct roe_result *res, int n_req, int vocab) {
    FILE *f = fopen(path, "wb");
    float *row = roe_malloc((size_t)vocab * sizeof *row);
    int okw = f != NULL && row != NULL;
    for (int r = 0; okw && r < n_req; r++)
        for (int t = 0; okw && t < res[r].n_tokens; t++) {
            roe_log_softmax(res[r].logits + (size_t)t * vocab, vocab, row);
            okw = fwrite(row, sizeof(float), (size_t)vocab, f) == (size_t)vocab;
        }
    roe_free(row);
    if (f && fclose(f) != 0) okw = 0;
    if (!okw) {
        fprintf(stderr, "roe generate: cannot write --logits-out '%s': %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}

static double tokens_per_s(long tokens, double seconds) {
    return seconds > 0 ? tokens / seconds : 0.0;
}

static void print_json(const struct roe_session *s, const struct roe_roster *roster,
                       const struct roe_request *reqs, const struct roe_result *res, int n_req,
                       const struct roe_gen_timing *tm) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", s->model_dir);
    cJSON_AddStringToObject(root, "model_type", s->model->cfg.model_type);
    cJSON_AddStringToObject(root, "backend", roe_engine_backend_name(s->engine));
    cJSON *arr = cJSON_AddArrayToObject(root, "results");
    for (int r = 0; r < n_req; r++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "prompt_ids", ids_json(reqs[r].prompt, reqs[r].n_prompt));
        cJSON_AddItemToObject(o, "tokens", ids_json(res[r].tokens, res[r].n_tokens));
        char *text = decode_text(s->tok, res[r].tokens, res[r].n_tokens);
        if (text) cJSON_AddStringToObject(o, "text", text);
        else cJSON_AddNullToObject(o, "text");
        roe_free(text);
        cJSON_AddStringToObject(o, "finish_reason", res[r].finish == ROE_FINISH_EOS ? "stop" : "length");
        cJSON_AddItemToArray(arr, o);
    }
    cJSON *ro = roe_json_add_roster(root, roster);
    roe_json_add_tau(ro, roster, s->model->cfg.n_layers);
    cJSON_AddNumberToObject(ro, "samples_per_token", tm->tokens ? (double)tm->samples / tm->tokens : 0.0);
    cJSON_AddNumberToObject(ro, "rows_computed", (double)tm->rows_computed);
    cJSON_AddNumberToObject(ro, "rows_naive", (double)tm->rows_naive);
    cJSON *t = cJSON_AddObjectToObject(root, "timings");
    cJSON_AddNumberToObject(t, "prefill_s", tm->prefill_s);
    cJSON_AddNumberToObject(t, "decode_s", tm->decode_s);
    cJSON_AddNumberToObject(t, "prefill_tokens", (double)tm->prefill_tokens);
    cJSON_AddNumberToObject(t, "decode_tokens", (double)tm->decode_tokens);
    cJSON_AddNumberToObject(t, "prefill_tokens_per_s", tokens_per_s(tm->prefill_tokens, tm->prefill_s));
    cJSON_AddNumberToObject(t, "decode_tokens_per_s", tokens_per_s(tm->decode_tokens, tm->decode_s));
    cJSON_AddNumberToObject(t, "steps", (double)tm->steps);
    cJSON_AddNumberToObject(t, "preemptions", (double)tm->preemptions);
    cJSON_AddNumberToObject(t, "prefix_hit_tokens", (double)tm->prefix_hit_tokens);
    cJSON_AddNumberToObject(t, "prefix_hit_tokens_other_ranks", (double)tm->prefix_hit_tokens_other_ranks);
    roe_json_print(root);
    cJSON_Delete(root);
}

/* Each continuation as text (token ids without a tokenizer) on stdout; timings on stderr. */
static void print_text(const struct roe_session *s, const struct roe_result *res, int n_req,
                       const struct roe_gen_timing *tm) {
    for (int r = 0; r < n_req; r++) {
        if (n_req > 1) printf("--- [%d]\n", r);
        char *text = decode_text(s->tok, res[r].tokens, res[r].n_tokens);
        if (text) printf("%s\n", text);
        else {
            for (int j = 0; j < res[r].n_tokens; j++) printf("%s%d", j ? " " : "", res[r].tokens[j]);
            printf("\n");
        }
        roe_free(text);
    }
    fprintf(stderr, "roe generate: prefill %ld tokens in %.3f s (%.1f tok/s), decode %ld tokens in %.3f s (%.1f tok/s), backend %s\n",
            tm->prefill_tokens, tm->prefill_s, tokens_per_s(tm->prefill_tokens, tm->prefill_s),
            tm->decode_tokens, tm->decode_s, tokens_per_s(tm->decode_tokens, tm->decode_s),
            roe_engine_backend_name(s->engine));
}

/* Runs the requests as one batch on the open engine, then writes and prints the results. */
static int run_batch(const struct gen_opts *o, const struct roe_session *s,
                     const struct roe_roster *roster, const struct roe_request *reqs, int n_req) {
    roe_generator *gen = NULL;
    struct roe_result *res = NULL;
    struct roe_gen_timing tm;
    roe_status st = roe_generator_create(s->engine, n_req, o->max_tokens, o->logits_out != NULL, &gen);
    if (st == ROE_OK) st = roe_generator_run(gen, reqs, n_req, &res, &tm);
    int rc = st != ROE_OK ? roe_report(CMD, st) : 0;
    if (!rc && o->logits_out) rc = write_logits(o->logits_out, res, n_req, s->model->cfg.vocab_size);
    if (!rc && o->json) print_json(s, roster, reqs, res, n_req, &tm);
    else if (!rc) print_text(s, res, n_req, &tm);
    roe_generator_free(gen);
    return rc;
}

static int generate(const struct gen_opts *o, struct roe_request *reqs, int32_t **owned, int n_req) {
    struct roe_session s;
    struct roe_roster roster;
    roe_roster_plain(&roster);
    int max_prompt = 0;
    int rc = roe_session_open_model(&s, CMD, o->model_dir);
    if (!rc) rc = roe_session_weights(&s, CMD, o->weights);
    if (!rc) rc = roe_flags_roster(&o->rf, CMD, &s.model->cfg, &roster);
    if (!rc) rc = build_requests(o, &s, &roster, reqs, owned, &max_prompt);
    if (!rc) {
        struct roe_engine_opts eo = roe_launcher_engine_opts(n_req, max_prompt + o->max_tokens + 1,
                                                             o->batch_rows, roster.k, o->threads);
        eo.backend = o->kind;
        rc = roe_kv_flags_apply(&o->kv, CMD, &eo);
        if (!rc && roe_session_open_engine(&s, CMD, eo)) rc = 1;
    }
    if (!rc) rc = run_batch(o, &s, &roster, reqs, n_req);
    roe_session_close(&s);
    return rc;
}

int roe_cmd_generate(int argc, char **argv) {
    struct gen_opts o;
    int rc = parse_options(argc, argv, &o);
    if (rc) return rc == 1 ? 0 : rc;
    const int n_req = o.prompts.n + o.prompt_ids.n;
    struct roe_request *reqs = roe_calloc((size_t)n_req, sizeof *reqs);
    int32_t **owned = roe_calloc((size_t)n_req, sizeof *owned);
    if (reqs && owned) rc = generate(&o, reqs, owned, n_req);
    else {
        fprintf(stderr, "roe generate: out of memory\n");
        rc = 1;
    }
    for (int r = 0; owned && r < n_req; r++) roe_free(owned[r]);
    roe_free(owned);
    roe_free(reqs);
    return rc;
}
