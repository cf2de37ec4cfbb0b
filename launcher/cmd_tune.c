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
#include "engine_opts.h"
#include "runtime/eval.h"
#include "runtime/tune.h"
#include "session.h"

static const char *CMD = "tune";
static const char *SYNOPSIS =
    "[--model DIR] --data FILE --roe-k K [--max-tau T] [--roe-keep-clean L] [--roe-gate G]\n"
    "       [--trials N] [--limit N] [--seed S] [--out FILE]";

struct tune_opts {
    const char *model_dir, *data, *out_path, *gate;
    int k, keep, trials, limit, threads;
    float max_tau;
    uint64_t seed;
    roe_gate_mode gate_mode; /* from gate */
};

/* 0: tune; 1: --help was printed (exit 0); 2: bad command line, said on stderr. */
static int parse_options(int argc, char **argv, struct tune_opts *o) {
    memset(o, 0, sizeof *o);
    o->keep = 1;
    o->trials = 24;
    o->max_tau = 0.5f;
    const struct roe_arg_spec specs[] = {
        {"--model", ROE_ARG_STRING, &o->model_dir, "model directory (default: the bundled model)", 0, 0},
        {"--data", ROE_ARG_STRING, &o->data, "validation JSONL set (text, arith or choice)", 0, 0},
        {"--roe-k", ROE_ARG_INT, &o->k, "RoE samples per token", 2, ROE_MAX_SAMPLES},
        {"--max-tau", ROE_ARG_FLOAT, &o->max_tau, "upper end of each layer's tau (0.5)", 1e-3, 10},
        {"--roe-keep-clean", ROE_ARG_INT, &o->keep, "first/last L MoE layers fixed at 0 (1)", 0, ROE_MAX_LAYERS},
        {"--roe-gate", ROE_ARG_STRING, &o->gate, "clean|noisy (clean)", 0, 0},
        {"--trials", ROE_ARG_INT, &o->trials, "evaluations (24)", 1, 10000},
        {"--limit", ROE_ARG_INT, &o->limit, "use the first N items of the set (0 = all)", 0, 1 << 30},
        {"--seed", ROE_ARG_U64, &o->seed, "search and RoE noise seed (0)", 0, 0},
        {"--out", ROE_ARG_STRING, &o->out_path, "profile to write (configs/roe-<model>-k<K>.json)", 0, 0},
        {"--threads", ROE_ARG_INT, &o->threads, "CPU threads (0 = all cores)", 0, 1024},
    };
    int rc = roe_args_parse(CMD, SYNOPSIS, specs, (int)(sizeof specs / sizeof specs[0]), argc, argv, 2);
    if (rc) return rc;
    if (!o->data || o->k < 2) {
        fprintf(stderr, "roe tune: --data FILE and --roe-k K (>= 2) are required (see 'roe tune --help')\n");
        return 2;
    }
    return roe_flags_gate(o->gate, CMD, &o->gate_mode);
}

/* The MoE layers the search varies: all but the first and last `keep` (which stay at 0). */
static int tuned_layers(const struct roe_model_config *c, int keep, int *tuned, int *dims) {
    int moe[ROE_MAX_LAYERS], n_moe = 0;
    for (int l = 0; l < c->n_layers; l++)
        if (c->layer_is_moe[l]) moe[n_moe++] = l;
    *dims = n_moe - 2 * keep;
    if (*dims < 1) {
        fprintf(stderr, "roe tune: --roe-keep-clean %d leaves no MoE layer to tune (the model has %d)\n", keep, n_moe);
        return 2;
    }
    for (int d = 0; d < *dims; d++) tuned[d] = moe[keep + d];
    return 0;
}

/* The roster of one point x of the search space: tau x[d] at layer tuned[d], 0 elsewhere. */
static void point_roster(const struct tune_opts *o, const int *tuned, int dims, const double *x,
                         struct roe_roster *roster) {
    roe_roster_plain(roster);
    roster->k = o->k;
    roster->keep_clean = o->keep;
    roster->gate = o->gate_mode;
    for (int d = 0; d < dims; d++) roster->tau[tuned[d]] = (float)x[d];
}

/* The search minimises y: the NLL per token (text) or minus the accuracy (arith, choice).
 * Back to the task's metric for printing. */
static double to_metric(roe_task task, double y) { return task == ROE_TASK_TEXT ? y : -y; }

/* TPE over the tuned layers' tau, one evaluation of the set per trial; the best point out. */
static int search(const struct tune_opts *o, const struct roe_session *s, roe_task task,
                  const int *tuned, int dims, double *best_x, double *best_y) {
    roe_tpe *tpe = NULL;
    const int n_init = o->trials < 8 ? o->trials : 8;
    roe_status st = roe_tpe_create(dims, 0.0, o->max_tau, o->trials, n_init, o->seed, &tpe);
    for (int t = 0; st == ROE_OK && t < o->trials; t++) {
        double x[ROE_MAX_LAYERS];
        struct roe_roster roster;
        roe_tpe_propose(tpe, x);
        point_roster(o, tuned, dims, x, &roster);
        struct roe_eval_opts eo = {.roster = &roster, .seed = o->seed, .limit = o->limit,
                                   .arith_max_new = 12};
        struct roe_eval_result r;
        st = roe_eval_run(s->engine, s->tok, o->data, task, &eo, &r);
        if (st != ROE_OK) break;
        const double y = task == ROE_TASK_TEXT ? r.nll_per_token : -r.accuracy;
        roe_tpe_observe(tpe, x, y);
        roe_tpe_best(tpe, best_x, best_y);
        fprintf(stderr, "roe tune: trial %d/%d: %s %.5f (best %.5f), tau [", t + 1, o->trials,
                task == ROE_TASK_TEXT ? "nll" : "accuracy", to_metric(task, y), to_metric(task, *best_y));
        for (int d = 0; d < dims; d++) fprintf(stderr, "%s%.3f", d ? " " : "", x[d]);
        fprintf(stderr, "], %.1f s\n", r.seconds);
    }
    const int rc = st != ROE_OK ? roe_report(CMD, st) : 0;
    roe_tpe_free(tpe);
    return rc;
}

/* Writes the roster of best_x to --out (default configs/roe-<model>-k<K>.json), says where. */
static int save_best(const struct tune_opts *o, const struct roe_session *s, roe_task task,
                     const int *tuned, int dims, const double *best_x, double best_y) {
    struct roe_roster roster;
    point_roster(o, tuned, dims, best_x, &roster);
    char *json = NULL;
    roe_status st = roe_roster_to_json(&roster, &s->model->cfg, &json);
    if (st != ROE_OK) {
        const int rc = roe_report(CMD, st);
        roe_free(json);
        return rc;
    }
    char def[1024];
    const char *out_path = o->out_path;
    if (!out_path) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s", s->model_dir);
        snprintf(def, sizeof def, "configs/roe-%s-k%d.json", basename(dir), o->k);
        out_path = def;
    }
    FILE *f = fopen(out_path, "w");
    const int written = f && fprintf(f, "%s\n", json) >= 0 && fclose(f) == 0;
    roe_free(json);
    if (!written) {
        fprintf(stderr, "roe tune: cannot write '%s'\n", out_path);
        return 1;
    }
    printf("%s: best %s %.5f after %d trials; profile written to %s\n", o->data,
           task == ROE_TASK_TEXT ? "nll/token" : "accuracy", to_metric(task, best_y), o->trials, out_path);
    return 0;
}

static int tune(const struct tune_opts *o, roe_task task) {
    struct roe_session s;
    int tuned[ROE_MAX_LAYERS], dims = 0;
    double best_x[ROE_MAX_LAYERS], best_y = 0;
    int rc = roe_session_open_model(&s, CMD, o->model_dir);
    if (!rc && !s.tok) {
        fprintf(stderr, "roe tune: model '%s' has no tokenizer.json\n", s.model_dir);
        rc = 1;
    }
    if (!rc) rc = tuned_layers(&s.model->cfg, o->keep, tuned, &dims);
    if (!rc) {
        const int max_pos = s.model->cfg.max_position;
        const struct roe_engine_opts eo =
            roe_launcher_engine_opts(16, max_pos < 2048 ? max_pos : 2048, 256, o->k, o->threads);
        if (roe_session_open_engine(&s, CMD, eo)) rc = 1;
    }
    if (!rc) rc = search(o, &s, task, tuned, dims, best_x, &best_y);
    if (!rc) rc = save_best(o, &s, task, tuned, dims, best_x, best_y);
    roe_session_close(&s);
    return rc;
}

int roe_cmd_tune(int argc, char **argv) {
    struct tune_opts o;
    int rc = parse_options(argc, argv, &o);
    if (rc) return rc == 1 ? 0 : rc;
    roe_task task;
    roe_status st = roe_eval_detect(o.data, &task);
    if (st != ROE_OK) return roe_report(CMD, st);
    return tune(&o, task);
}
