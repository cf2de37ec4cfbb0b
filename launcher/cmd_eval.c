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
#include "engine_opts.h"
#include "json_out.h"
#include "roe_flags.h"
#include "base/env.h"
#include "runtime/eval.h"
#include "session.h"

static const char *CMD = "eval";
static const char *SYNOPSIS =
    "[--model DIR] --data FILE [--task text|arith|choice] [--limit N] [--seed S] [--json]\n"
    "       [--weights bf16|q8|q4]\n"
    "       [--roe-k K] [--roe-tau T | --roe-profile FILE] [--roe-keep-clean L] [--roe-gate G]\n"
    "       [--roe-adaptive H] [--kv-dtype f32|bf16|fp8] [--kv-memory SIZE] [--kv-block-size N]";

static cJSON *result_json(const struct roe_eval_result *r) {
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
        /* the averaging gain (ROE.md): the samples' own mean loss minus the averaged prediction's */
        cJSON_AddNumberToObject(o, "sample_nll_per_token", r->sample_nll_per_token);
        cJSON_AddNumberToObject(o, "averaging_gain", r->sample_nll_per_token - r->nll_per_token);
        ci = cJSON_AddArrayToObject(o, "averaging_gain_ci95");
        cJSON_AddItemToArray(ci, cJSON_CreateNumber(r->gain_ci[0]));
        cJSON_AddItemToArray(ci, cJSON_CreateNumber(r->gain_ci[1]));
        if (r->optimum_items) { /* synthetic text of known distribution */
            cJSON_AddNumberToObject(o, "optimum_items", r->optimum_items);
            cJSON_AddNumberToObject(o, "optimum_nll_per_token", r->optimum_nll_per_token);
            cJSON_AddNumberToObject(o, "gap_to_optimum", r->optimum_model_nll_per_token - r->optimum_nll_per_token);
        }
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

struct eval_opts {
    const char *model_dir, *data, *task_name, *weights;
    int limit, json, threads, batch_rows;
    uint64_t seed;
    struct roe_flags rf;
    struct roe_kv_flags kv;
};

/* 0: evaluate; 1: --help was printed (exit 0); 2: bad command line, said on stderr. */
static int parse_options(int argc, char **argv, struct eval_opts *o) {
    memset(o, 0, sizeof *o);
    o->batch_rows = 256;
    roe_flags_init(&o->rf);
    struct roe_arg_spec specs[9 + ROE_FLAGS_N_SPECS + ROE_KV_FLAGS_N_SPECS] = {
        {"--model", ROE_ARG_STRING, &o->model_dir, "model directory (default: the bundled model)", 0, 0},
        {"--data", ROE_ARG_STRING, &o->data, "JSONL evaluation set", 0, 0},
        {"--weights", ROE_ARG_STRING, &o->weights, "bf16 (the checkpoint as stored) | q8 | q4: quantized at load", 0, 0},
        {"--task", ROE_ARG_STRING, &o->task_name, "text|arith|choice (default: from the first line)", 0, 0},
        {"--limit", ROE_ARG_INT, &o->limit, "evaluate the first N items (0 = all)", 0, 1 << 30},
        {"--seed", ROE_ARG_U64, &o->seed, "RoE noise seed (0)", 0, 0},
        {"--json", ROE_ARG_FLAG, &o->json, "print JSON (default: one summary line)", 0, 0},
        {"--threads", ROE_ARG_INT, &o->threads, "CPU threads (0 = all cores)", 0, 1024},
        {"--batch-rows", ROE_ARG_INT, &o->batch_rows, "rows per engine step (256)", 1, 1 << 16},
    };
    roe_flags_specs(&o->rf, specs + 9);
    roe_kv_flags_specs(&o->kv, specs + 9 + ROE_FLAGS_N_SPECS);
    int rc = roe_args_parse(CMD, SYNOPSIS, specs, (int)(sizeof specs / sizeof specs[0]), argc, argv, 2);
    if (rc) return rc;
    if (!o->data) {
        fprintf(stderr, "roe eval: --data FILE is required (see 'roe eval --help')\n");
        return 2;
    }
    return 0;
}

/* --task, or the kind of the set's first line. Returns 0, or prints and returns 1 or 2. */
static int resolve_task(const struct eval_opts *o, roe_task *task) {
    const char *name = o->task_name;
    if (!name) {
        roe_status st = roe_eval_detect(o->data, task);
        return st != ROE_OK ? roe_report(CMD, st) : 0;
    }
    if (strcmp(name, "text") == 0) *task = ROE_TASK_TEXT;
    else if (strcmp(name, "arith") == 0) *task = ROE_TASK_ARITH;
    else if (strcmp(name, "choice") == 0) *task = ROE_TASK_CHOICE;
    else {
        fprintf(stderr, "roe eval: --task '%s': expected text, arith or choice\n", name);
        return 2;
    }
    return 0;
}

/* --json: the result, the set, the model and the roster; else one summary line. */
static void print_result(const struct eval_opts *o, const struct roe_session *s,
                         const struct roe_roster *roster, roe_task task,
                         const struct roe_eval_result *r) {
    if (o->json) {
        cJSON *root = result_json(r);
        cJSON_AddStringToObject(root, "data", o->data);
        cJSON_AddStringToObject(root, "model", s->model_dir);
        cJSON *ro = roe_json_add_roster(root, roster);
        cJSON_AddNumberToObject(ro, "seed", (double)o->seed);
        roe_json_add_tau(ro, roster, s->model->cfg.n_layers);
        roe_json_print(root);
        cJSON_Delete(root);
    } else if (task == ROE_TASK_TEXT)
        printf("%s: perplexity %.4f [%.4f, %.4f], nll/token %.5f, %ld tokens, %d passages, K=%d, %.1f s\n",
               o->data, r->perplexity, r->ppl_ci[0], r->ppl_ci[1], r->nll_per_token, r->tokens, r->items,
               roster->k, r->seconds);
    else
        printf("%s: %s %.4f [%.4f, %.4f], %d items, K=%d, %.1f s\n", o->data,
               task == ROE_TASK_ARITH ? "exact match" : "accuracy", r->accuracy, r->acc_ci[0], r->acc_ci[1],
               r->items, roster->k, r->seconds);
}

static int evaluate(const struct eval_opts *o, roe_task task) {
    struct roe_session s;
    struct roe_roster roster;
    int rc = roe_session_open_model(&s, CMD, o->model_dir);
    if (!rc) rc = roe_session_weights(&s, CMD, o->weights);
    if (!rc && !s.tok) {
        fprintf(stderr, "roe eval: model '%s' has no tokenizer.json\n", s.model_dir);
        rc = 1;
    }
    if (!rc) rc = roe_flags_roster(&o->rf, CMD, &s.model->cfg, &roster);
    if (!rc) {
        const int max_pos = s.model->cfg.max_position;
        struct roe_engine_opts eo = roe_launcher_engine_opts(
            16, max_pos < 2048 ? max_pos : 2048, o->batch_rows, roster.k, o->threads);
        rc = roe_kv_flags_apply(&o->kv, CMD, &eo);
        if (!o->kv.dtype) eo.kv_dtype = ROE_DTYPE_F32; /* eval measures: the exact cache unless asked */
        if (!rc && roe_session_open_engine(&s, CMD, eo)) rc = 1;
    }
    if (!rc) {
        struct roe_eval_opts eo = {.roster = &roster, .seed = o->seed, .limit = o->limit,
                                   .arith_max_new = 12, .progress = isatty(2)};
        struct roe_eval_result r;
        roe_status st = roe_eval_run(s.engine, s.tok, o->data, task, &eo, &r);
        if (st != ROE_OK) rc = roe_report(CMD, st);
        else print_result(o, &s, &roster, task, &r);
    }
    roe_session_close(&s);
    return rc;
}

int roe_cmd_eval(int argc, char **argv) {
    struct eval_opts o;
    roe_task task;
    int rc = parse_options(argc, argv, &o);
    if (rc) return rc == 1 ? 0 : rc;
    if ((rc = resolve_task(&o, &task))) return rc;
    return evaluate(&o, task);
}
