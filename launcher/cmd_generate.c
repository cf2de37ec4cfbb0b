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
#include "runtime/generate.h"
#include "session.h"

static const char *SYNOPSIS =
    "[--model DIR] (--prompt TEXT | --prompt-ids IDS)... [--max-tokens N] [--temperature T]\n"
    "       [--top-k K] [--top-p P] [--seed S] [--ignore-eos] [--json] [--threads N] [--backend cpu|cuda]\n"
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

int roe_cmd_generate(int argc, char **argv) {
    const char *cmd = "generate";
    const char *model_dir = NULL, *logits_out = NULL, *backend = NULL;
    struct roe_arg_list prompts = {0}, prompt_ids = {0};
    int max_tokens = 64, json = 0, threads = 0, ignore_eos = 0, batch_rows = 128;
    struct roe_sampling sampling = roe_sampling_default();
    struct roe_flags rf;
    roe_flags_init(&rf);
    struct roe_arg_spec specs[14 + ROE_FLAGS_N_SPECS] = {
        {"--model", ROE_ARG_STRING, &model_dir, "model directory (default: the bundled model)", 0, 0},
        {"--prompt", ROE_ARG_LIST, &prompts, "prompt text (repeatable: one sequence each)", 0, 0},
        {"--prompt-ids", ROE_ARG_LIST, &prompt_ids, "prompt as token ids, '1,2,3' (repeatable)", 0, 0},
        {"--max-tokens", ROE_ARG_INT, &max_tokens, "tokens to generate per prompt (64)", 0, 1 << 20},
        {"--temperature", ROE_ARG_FLOAT, &sampling.temperature, "0 = greedy (default)", 0, 100},
        {"--top-k", ROE_ARG_INT, &sampling.top_k, "sample among the k most likely (0 = off)", 0, 1 << 24},
        {"--top-p", ROE_ARG_FLOAT, &sampling.top_p, "nucleus sampling mass (1 = off)", 1e-6, 1},
        {"--seed", ROE_ARG_U64, &sampling.seed, "sampling seed (0)", 0, 0},
        {"--ignore-eos", ROE_ARG_FLAG, &ignore_eos, "do not stop at the end-of-sequence token", 0, 0},
        {"--json", ROE_ARG_FLAG, &json, "print JSON: tokens, text, timings", 0, 0},
        {"--threads", ROE_ARG_INT, &threads, "CPU threads (0 = all cores)", 0, 1024},
        {"--batch-rows", ROE_ARG_INT, &batch_rows, "rows per engine step (128)", 1, 1 << 16},
        {"--logits-out", ROE_ARG_STRING, &logits_out, "write the scores of each generated token (f32)", 0, 0},
        {"--backend", ROE_ARG_STRING, &backend, "cpu (default) or cuda (device: local rank % devices)", 0, 0},
    };
    roe_flags_specs(&rf, specs + 14);
    const int n_specs = (int)(sizeof specs / sizeof specs[0]);
    int rc = roe_args_parse(cmd, SYNOPSIS, specs, n_specs, argc, argv, 2);
    if (rc) return rc == 1 ? 0 : rc;
    const int n_req = prompts.n + prompt_ids.n;
    roe_backend_kind kind;
    if ((rc = roe_session_backend(cmd, backend, &kind))) return rc;
    if (n_req == 0) {
        fprintf(stderr, "roe generate: no prompt: give --prompt TEXT or --prompt-ids IDS\n");
        return 2;
    }

    struct roe_session s;
    struct roe_request *reqs = roe_calloc((size_t)n_req, sizeof *reqs);
    int32_t **owned = roe_calloc((size_t)n_req, sizeof *owned);
    int ret = 1;
    roe_generator *gen = NULL;
    if (!reqs || !owned) {
        fprintf(stderr, "roe generate: out of memory\n");
        goto done_nosession;
    }
    if (roe_session_open_model(&s, cmd, model_dir)) goto done;
    struct roe_roster roster;
    rc = roe_flags_roster(&rf, cmd, &s.model->cfg, &roster);
    if (rc) {
        ret = rc;
        goto done;
    }

    /* prompts in command-line order */
    int ip = 0, ii = 0, max_prompt = 0;
    for (int r = 0; r < n_req; r++) {
        int take_text = ii >= prompt_ids.n || (ip < prompts.n && prompts.order[ip] < prompt_ids.order[ii]);
        int32_t *ids = NULL;
        int n = 0;
        if (take_text) {
            const char *text = prompts.items[ip++];
            if (!s.tok) {
                fprintf(stderr, "roe generate: model '%s' has no tokenizer.json: give --prompt-ids\n", s.model_dir);
                goto done;
            }
            size_t nn = 0;
            roe_status st = roe_tokenizer_encode(s.tok, text, strlen(text), &ids, &nn);
            if (st != ROE_OK) {
                roe_report(cmd, st);
                goto done;
            }
            n = (int)nn;
            if (n == 0) {
                roe_free(ids);
                fprintf(stderr, "roe generate: prompt %d is empty\n", r);
                ret = 2;
                goto done;
            }
        } else {
            const char *spec = prompt_ids.items[ii++];
            if (parse_ids(spec, &ids, &n) != 0) {
                fprintf(stderr, "roe generate: --prompt-ids '%s': expected comma-separated token ids\n", spec);
                ret = 2;
                goto done;
            }
            if (n == 0) {
                roe_free(ids);
                fprintf(stderr, "roe generate: prompt %d is empty\n", r);
                ret = 2;
                goto done;
            }
        }
        owned[r] = ids;
        reqs[r] = (struct roe_request){.prompt = ids, .n_prompt = n, .max_tokens = max_tokens,
                                       .stop_at_eos = !ignore_eos, .sampling = sampling,
                                       .roster = &roster};
        if (n > max_prompt) max_prompt = n;
    }
    const int max_pos = s.model->cfg.max_position;
    if (max_prompt >= max_pos) {
        fprintf(stderr,
                "roe generate: a prompt has %d tokens, more than the model's context of %d positions "
                "allows (max_position_embeddings, one position is needed to generate)\n",
                max_prompt, max_pos);
        ret = 2;
        goto done;
    }
    struct roe_engine_opts eo = roe_engine_opts_default();
    eo.max_seqs = n_req;
    eo.max_ctx = max_prompt + max_tokens + 1;
    eo.max_rows = batch_rows > roster.k ? batch_rows : roster.k;
    eo.n_threads = threads;
    eo.isa = roe_env_cpu_isa();
    eo.backend = kind;
    if (roe_session_open_engine(&s, cmd, eo)) goto done;
    roe_status st = roe_generator_create(s.engine, n_req, max_tokens, logits_out != NULL, &gen);
    if (st != ROE_OK) {
        roe_report(cmd, st);
        goto done;
    }
    struct roe_result *res = NULL;
    struct roe_gen_timing tm;
    st = roe_generator_run(gen, reqs, n_req, &res, &tm);
    if (st != ROE_OK) {
        roe_report(cmd, st);
        goto done;
    }
    if (logits_out) {
        FILE *f = fopen(logits_out, "wb");
        int okw = f != NULL;
        for (int r = 0; okw && r < n_req; r++)
            okw = fwrite(res[r].logits, sizeof(float), (size_t)res[r].n_tokens * s.model->cfg.vocab_size, f) ==
                  (size_t)res[r].n_tokens * s.model->cfg.vocab_size;
        if (f && fclose(f) != 0) okw = 0;
        if (!okw) {
            fprintf(stderr, "roe generate: cannot write --logits-out '%s': %s\n", logits_out, strerror(errno));
            goto done;
        }
    }
    const double prefill_tps = tm.prefill_s > 0 ? tm.prefill_tokens / tm.prefill_s : 0.0;
    const double decode_tps = tm.decode_s > 0 ? tm.decode_tokens / tm.decode_s : 0.0;
    if (json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "model", s.model_dir);
        cJSON_AddStringToObject(root, "model_type", s.model->cfg.model_type);
        cJSON_AddStringToObject(root, "backend", roe_engine_backend_name(s.engine));
        cJSON *arr = cJSON_AddArrayToObject(root, "results");
        for (int r = 0; r < n_req; r++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemToObject(o, "prompt_ids", ids_json(reqs[r].prompt, reqs[r].n_prompt));
            cJSON_AddItemToObject(o, "tokens", ids_json(res[r].tokens, res[r].n_tokens));
            char *text = decode_text(s.tok, res[r].tokens, res[r].n_tokens);
            if (text) cJSON_AddStringToObject(o, "text", text);
            else cJSON_AddNullToObject(o, "text");
            roe_free(text);
            cJSON_AddStringToObject(o, "finish_reason", res[r].finish == ROE_FINISH_EOS ? "stop" : "length");
            cJSON_AddItemToArray(arr, o);
        }
        cJSON *ro = cJSON_AddObjectToObject(root, "roe");
        cJSON_AddNumberToObject(ro, "k", roster.k);
        cJSON_AddStringToObject(ro, "gate", roe_gate_mode_name(roster.gate));
        cJSON_AddNumberToObject(ro, "adaptive_entropy", roster.adaptive_entropy);
        cJSON *tau = cJSON_AddArrayToObject(ro, "tau");
        for (int l = 0; l < s.model->cfg.n_layers; l++) cJSON_AddItemToArray(tau, cJSON_CreateNumber(roster.tau[l]));
        cJSON_AddNumberToObject(ro, "samples_per_token", tm.tokens ? (double)tm.samples / tm.tokens : 0.0);
        cJSON_AddNumberToObject(ro, "rows_computed", (double)tm.rows_computed);
        cJSON_AddNumberToObject(ro, "rows_naive", (double)tm.rows_naive);
        cJSON *t = cJSON_AddObjectToObject(root, "timings");
        cJSON_AddNumberToObject(t, "prefill_s", tm.prefill_s);
        cJSON_AddNumberToObject(t, "decode_s", tm.decode_s);
        cJSON_AddNumberToObject(t, "prefill_tokens", (double)tm.prefill_tokens);
        cJSON_AddNumberToObject(t, "decode_tokens", (double)tm.decode_tokens);
        cJSON_AddNumberToObject(t, "prefill_tokens_per_s", prefill_tps);
        cJSON_AddNumberToObject(t, "decode_tokens_per_s", decode_tps);
        cJSON_AddNumberToObject(t, "steps", (double)tm.steps);
        char *out = cJSON_Print(root);
        if (out) printf("%s\n", out);
        free(out);
        cJSON_Delete(root);
    } else {
        for (int r = 0; r < n_req; r++) {
            if (n_req > 1) printf("--- [%d]\n", r);
            char *text = decode_text(s.tok, res[r].tokens, res[r].n_tokens);
            if (text) printf("%s\n", text);
            else {
                for (int j = 0; j < res[r].n_tokens; j++) printf("%s%d", j ? " " : "", res[r].tokens[j]);
                printf("\n");
            }
            roe_free(text);
        }
        fprintf(stderr, "roe generate: prefill %ld tokens in %.3f s (%.1f tok/s), decode %ld tokens in %.3f s (%.1f tok/s), backend %s\n",
                tm.prefill_tokens, tm.prefill_s, prefill_tps, tm.decode_tokens, tm.decode_s, decode_tps,
                roe_engine_backend_name(s.engine));
    }
    ret = 0;
done:
    roe_generator_free(gen);
    roe_session_close(&s);
done_nosession:
    for (int r = 0; owned && r < n_req; r++) roe_free(owned[r]);
    roe_free(owned);
    roe_free(reqs);
    return ret;
}
