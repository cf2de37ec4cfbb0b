/*
 * cmd_eval.c — `roe eval`: NLL / perplexity, greedy exact match or multiple-choice
 * accuracy on a JSONL set (runtime/eval.h), plain or with RoE; JSON results with 95%
 * confidence intervals; a progress bar when stderr is a terminal.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "roe_flags.h"
#include "base/env.h"
#include "runtime/eval.h"
#include "session.h"

static const char *SYNOPSIS =
    "[--model DIR] --data FILE [--task text|arith|choice] [--limit N] [--seed S] [--json]\n"
    "       [--roe-k K] [--roe-tau T | --roe-profile FILE] [--roe-keep-clean L] [--roe-gate G]\n"
    "       [--roe-adaptive H]";

cJSON *roe_eval_result_json(const struct roe_eval_result *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "task", roe_task_name(r->task));
    cJSON_AddNumberToObject(o, "items", r->items);
    cJSON *ci;
    if (r->task == ROE_TASK_TEXT) {
        cJSON_AddNumberToObject(o, "tokens", (double)r->tokens);
        cJSON_AddNumberToObject(o, "nll_per_token", r->nll_per_token);
        ci = cJSON_AddArrayToObject(o, "nll_per_token_ci95");
        cJSON_AddItemToArray(ci, cJSON_CreateNumber(r->nll_ci[0]));
        cJSON_AddItemToArray(ci, cJSON_CreateNumber(r->nll_ci[1]));
        cJSON_AddNumberToObject(o, "perplexity", r->perplexity);
        ci = cJSON_AddArrayToObject(o, "perplexity_ci95");
        cJSON_AddItemToArray(ci, cJSON_CreateNumber(r->ppl_ci[0]));
        cJSON_AddItemToArray(ci, cJSON_CreateNumber(r->ppl_ci[1]));
    } else {
        cJSON_AddNumberToObject(o, r->task == ROE_TASK_ARITH ? "exact_match" : "accuracy", r->accuracy);
        ci = cJSON_AddArrayToObject(o, r->task == ROE_TASK_ARITH ? "exact_match_ci95" : "accuracy_ci95");
        cJSON_AddItemToArray(ci, cJSON_CreateNumber(r->acc_ci[0]));
        cJSON_AddItemToArray(ci, cJSON_CreateNumber(r->acc_ci[1]));
        if (r->task == ROE_TASK_CHOICE) {
            cJSON_AddNumberToObject(o, "accuracy_norm", r->accuracy_norm);
            ci = cJSON_AddArrayToObject(o, "accuracy_norm_ci95");
            cJSON_AddItemToArray(ci, cJSON_CreateNumber(r->acc_norm_ci[0]));
            cJSON_AddItemToArray(ci, cJSON_CreateNumber(r->acc_norm_ci[1]));
        }
    }
    cJSON_AddNumberToObject(o, "samples_per_position", r->samples_per_position);
    cJSON_AddNumberToObject(o, "rows_computed", (double)r->stats.rows_computed);
    cJSON_AddNumberToObject(o, "rows_naive", (double)r->stats.rows_naive);
    cJSON_AddNumberToObject(o, "seconds", r->seconds);
    return o;
}

int roe_cmd_eval(int argc, char **argv) {
    const char *cmd = "eval";
    const char *model_dir = NULL, *data = NULL, *task_name = NULL;
    int limit = 0, json = 0, threads = 0, batch_rows = 256;
    uint64_t seed = 0;
    struct roe_flags rf;
    roe_flags_init(&rf);
    struct roe_arg_spec specs[8 + ROE_FLAGS_N_SPECS] = {
        {"--model", ROE_ARG_STRING, &model_dir, "model directory (default: the bundled model)", 0, 0},
        {"--data", ROE_ARG_STRING, &data, "JSONL evaluation set", 0, 0},
        {"--task", ROE_ARG_STRING, &task_name, "text|arith|choice (default: from the first line)", 0, 0},
        {"--limit", ROE_ARG_INT, &limit, "evaluate the first N items (0 = all)", 0, 1 << 30},
        {"--seed", ROE_ARG_U64, &seed, "RoE noise seed (0)", 0, 0},
        {"--json", ROE_ARG_FLAG, &json, "print JSON (default: one summary line)", 0, 0},
        {"--threads", ROE_ARG_INT, &threads, "CPU threads (0 = all cores)", 0, 1024},
        {"--batch-rows", ROE_ARG_INT, &batch_rows, "rows per engine step (256)", 1, 1 << 16},
    };
    roe_flags_specs(&rf, specs + 8);
    int rc = roe_args_parse(cmd, SYNOPSIS, specs, (int)(sizeof specs / sizeof specs[0]), argc, argv, 2);
    if (rc) return rc == 1 ? 0 : rc;
    if (!data) {
        fprintf(stderr, "roe eval: --data FILE is required (see 'roe eval --help')\n");
        return 2;
    }
    roe_task task;
    if (task_name) {
        if (strcmp(task_name, "text") == 0) task = ROE_TASK_TEXT;
        else if (strcmp(task_name, "arith") == 0) task = ROE_TASK_ARITH;
        else if (strcmp(task_name, "choice") == 0) task = ROE_TASK_CHOICE;
        else {
            fprintf(stderr, "roe eval: --task '%s': expected text, arith or choice\n", task_name);
            return 2;
        }
    } else {
        roe_status st = roe_eval_detect(data, &task);
        if (st != ROE_OK) return roe_report(cmd, st);
    }
    struct roe_session s;
    int ret = 1;
    if (roe_session_open_model(&s, cmd, model_dir)) goto done;
    if (!s.tok) {
        fprintf(stderr, "roe eval: model '%s' has no tokenizer.json\n", s.model_dir);
        goto done;
    }
    struct roe_roster roster;
    rc = roe_flags_roster(&rf, cmd, &s.model->cfg, &roster);
    if (rc) {
        ret = rc;
        goto done;
    }
    struct roe_engine_opts eo = roe_engine_opts_default();
    eo.max_seqs = 16;
    eo.max_ctx = s.model->cfg.max_position < 2048 ? s.model->cfg.max_position : 2048;
    eo.max_rows = batch_rows > roster.k ? batch_rows : roster.k;
    eo.n_threads = threads;
    eo.isa = roe_env_cpu_isa();
    if (roe_session_open_engine(&s, cmd, eo)) goto done;
    struct roe_eval_opts o = {.roster = &roster, .seed = seed, .limit = limit, .arith_max_new = 12,
                              .progress = isatty(2)};
    struct roe_eval_result r;
    roe_status st = roe_eval_run(s.engine, s.tok, data, task, &o, &r);
    if (st != ROE_OK) {
        roe_report(cmd, st);
        goto done;
    }
    cJSON *root = roe_eval_result_json(&r);
    cJSON_AddStringToObject(root, "data", data);
    cJSON_AddStringToObject(root, "model", s.model_dir);
    cJSON *ro = cJSON_AddObjectToObject(root, "roe");
    cJSON_AddNumberToObject(ro, "k", roster.k);
    cJSON_AddStringToObject(ro, "gate", roe_gate_mode_name(roster.gate));
    cJSON_AddNumberToObject(ro, "adaptive_entropy", roster.adaptive_entropy);
    cJSON_AddNumberToObject(ro, "seed", (double)seed);
    cJSON *tau = cJSON_AddArrayToObject(ro, "tau");
    for (int l = 0; l < s.model->cfg.n_layers; l++) cJSON_AddItemToArray(tau, cJSON_CreateNumber(roster.tau[l]));
    if (json) {
        char *out = cJSON_Print(root);
        if (out) printf("%s\n", out);
        free(out);
    } else if (task == ROE_TASK_TEXT)
        printf("%s: perplexity %.4f [%.4f, %.4f], nll/token %.5f, %ld tokens, %d passages, K=%d, %.1f s\n",
               data, r.perplexity, r.ppl_ci[0], r.ppl_ci[1], r.nll_per_token, r.tokens, r.items, roster.k, r.seconds);
    else
        printf("%s: %s %.4f [%.4f, %.4f]%s, %d items, K=%d, %.1f s\n", data,
               task == ROE_TASK_ARITH ? "exact match" : "accuracy", r.accuracy, r.acc_ci[0], r.acc_ci[1],
               task == ROE_TASK_CHOICE ? "" : "", r.items, roster.k, r.seconds);
    cJSON_Delete(root);
    ret = 0;
done:
    roe_session_close(&s);
    return ret;
}
