/*
 * cmd_tune.c — `roe tune`: searches the per-layer RoE temperatures on a validation set
 * with TPE (runtime/tune.h): the first and last L MoE layers stay at 0, the others range
 * over [0, T]; the objective is the task's metric (text: NLL per token; arith/choice:
 * accuracy). Writes the best profile as JSON (configs/README.md).
 */
#include <cjson/cJSON.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "roe_flags.h"
#include "base/alloc.h"
#include "base/env.h"
#include "runtime/eval.h"
#include "runtime/tune.h"
#include "session.h"

static const char *SYNOPSIS =
    "[--model DIR] --data FILE --roe-k K [--max-tau T] [--roe-keep-clean L] [--roe-gate G]\n"
    "       [--trials N] [--limit N] [--seed S] [--out FILE]";

int roe_cmd_tune(int argc, char **argv) {
    const char *cmd = "tune";
    const char *model_dir = NULL, *data = NULL, *out_path = NULL, *gate = NULL;
    int k = 0, keep = 1, trials = 24, limit = 0, threads = 0;
    float max_tau = 0.5f;
    uint64_t seed = 0;
    const struct roe_arg_spec specs[] = {
        {"--model", ROE_ARG_STRING, &model_dir, "model directory (default: the bundled model)", 0, 0},
        {"--data", ROE_ARG_STRING, &data, "validation JSONL set (text, arith or choice)", 0, 0},
        {"--roe-k", ROE_ARG_INT, &k, "RoE samples per token", 2, ROE_MAX_SAMPLES},
        {"--max-tau", ROE_ARG_FLOAT, &max_tau, "upper end of each layer's tau (0.5)", 1e-3, 10},
        {"--roe-keep-clean", ROE_ARG_INT, &keep, "first/last L MoE layers fixed at 0 (1)", 0, ROE_MAX_LAYERS},
        {"--roe-gate", ROE_ARG_STRING, &gate, "clean|noisy (clean)", 0, 0},
        {"--trials", ROE_ARG_INT, &trials, "evaluations (24)", 1, 10000},
        {"--limit", ROE_ARG_INT, &limit, "use the first N items of the set (0 = all)", 0, 1 << 30},
        {"--seed", ROE_ARG_U64, &seed, "search and RoE noise seed (0)", 0, 0},
        {"--out", ROE_ARG_STRING, &out_path, "profile to write (configs/roe-<model>-k<K>.json)", 0, 0},
        {"--threads", ROE_ARG_INT, &threads, "CPU threads (0 = all cores)", 0, 1024},
    };
    int rc = roe_args_parse(cmd, SYNOPSIS, specs, (int)(sizeof specs / sizeof specs[0]), argc, argv, 2);
    if (rc) return rc == 1 ? 0 : rc;
    if (!data || k < 2) {
        fprintf(stderr, "roe tune: --data FILE and --roe-k K (>= 2) are required (see 'roe tune --help')\n");
        return 2;
    }
    roe_gate_mode gm = ROE_GATE_CLEAN;
    if (gate && strcmp(gate, "noisy") == 0) gm = ROE_GATE_NOISY;
    else if (gate && strcmp(gate, "clean") != 0) {
        fprintf(stderr, "roe tune: --roe-gate '%s': expected clean or noisy\n", gate);
        return 2;
    }
    roe_task task;
    roe_status st = roe_eval_detect(data, &task);
    if (st != ROE_OK) return roe_report(cmd, st);

    struct roe_session s;
    int ret = 1;
    roe_tpe *tpe = NULL;
    char *json = NULL;
    if (roe_session_open_model(&s, cmd, model_dir)) goto done;
    if (!s.tok) {
        fprintf(stderr, "roe tune: model '%s' has no tokenizer.json\n", s.model_dir);
        goto done;
    }
    const struct roe_model_config *c = &s.model->cfg;
    int moe[ROE_MAX_LAYERS], n_moe = 0;
    for (int l = 0; l < c->n_layers; l++)
        if (c->layer_is_moe[l]) moe[n_moe++] = l;
    const int dims = n_moe - 2 * keep;
    if (dims < 1) {
        fprintf(stderr, "roe tune: --roe-keep-clean %d leaves no MoE layer to tune (the model has %d)\n", keep, n_moe);
        ret = 2;
        goto done;
    }
    struct roe_engine_opts eo = roe_engine_opts_default();
    eo.max_seqs = 16;
    eo.max_ctx = c->max_position < 2048 ? c->max_position : 2048;
    eo.max_rows = k > 256 ? k : 256;
    eo.n_threads = threads;
    eo.isa = roe_env_cpu_isa();
    if (roe_session_open_engine(&s, cmd, eo)) goto done;
    st = roe_tpe_create(dims, 0.0, max_tau, trials, trials < 8 ? trials : 8, seed, &tpe);
    if (st != ROE_OK) {
        roe_report(cmd, st);
        goto done;
    }
    double x[ROE_MAX_LAYERS], best_x[ROE_MAX_LAYERS], best_y = 0;
    struct roe_roster roster;
    for (int t = 0; t < trials; t++) {
        roe_tpe_propose(tpe, x);
        roe_roster_plain(&roster);
        roster.k = k;
        roster.keep_clean = keep;
        roster.gate = gm;
        for (int d = 0; d < dims; d++) roster.tau[moe[keep + d]] = (float)x[d];
        struct roe_eval_opts o = {.roster = &roster, .seed = seed, .limit = limit, .arith_max_new = 12};
        struct roe_eval_result r;
        st = roe_eval_run(s.engine, s.tok, data, task, &o, &r);
        if (st != ROE_OK) {
            roe_report(cmd, st);
            goto done;
        }
        const double y = task == ROE_TASK_TEXT ? r.nll_per_token : -r.accuracy;
        roe_tpe_observe(tpe, x, y);
        roe_tpe_best(tpe, best_x, &best_y);
        fprintf(stderr, "roe tune: trial %d/%d: %s %.5f (best %.5f), tau [", t + 1, trials,
                task == ROE_TASK_TEXT ? "nll" : "accuracy", task == ROE_TASK_TEXT ? y : -y,
                task == ROE_TASK_TEXT ? best_y : -best_y);
        for (int d = 0; d < dims; d++) fprintf(stderr, "%s%.3f", d ? " " : "", x[d]);
        fprintf(stderr, "], %.1f s\n", r.seconds);
    }
    roe_roster_plain(&roster);
    roster.k = k;
    roster.keep_clean = keep;
    roster.gate = gm;
    for (int d = 0; d < dims; d++) roster.tau[moe[keep + d]] = (float)best_x[d];
    st = roe_roster_to_json(&roster, c, &json);
    if (st != ROE_OK) {
        roe_report(cmd, st);
        goto done;
    }
    char def[1024];
    if (!out_path) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s", s.model_dir);
        snprintf(def, sizeof def, "configs/roe-%s-k%d.json", basename(dir), k);
        out_path = def;
    }
    FILE *f = fopen(out_path, "w");
    if (!f || fprintf(f, "%s\n", json) < 0 || fclose(f) != 0) {
        fprintf(stderr, "roe tune: cannot write '%s'\n", out_path);
        goto done;
    }
    printf("%s: best %s %.5f after %d trials; profile written to %s\n", data,
           task == ROE_TASK_TEXT ? "nll/token" : "accuracy", task == ROE_TASK_TEXT ? best_y : -best_y,
           trials, out_path);
    ret = 0;
done:
    roe_free(json);
    roe_tpe_free(tpe);
    roe_session_close(&s);
    return ret;
}
