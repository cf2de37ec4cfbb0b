/*
 * cmd_bench.c — `roe bench`: prefill and decode throughput on random prompts, with the
 * bytes each decode step must read (dense weights the step touches + every distinct
 * expert chosen by any row + the KV history), so that bench/ scripts can compare the
 * achieved read rate with the machine's memory bandwidth (PERFORMANCE-GOALS.md).
 *
 * The sequences run through the batching core (runtime/batch.h) like any generation, with
 * prefill first (no decode step until every prompt is in: steps are all prefill or all
 * decode) and greedy sampling; under mpirun sequence b is homed on rank b mod N and the
 * experts live on their owners. Dense weights are read once per rank that has rows, which
 * the bytes-per-step figure counts.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_opts.h"
#include "args.h"
#include "bench_mor.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "base/env.h"
#include "base/philox.h"
#include "commands.h"
#include "roe_flags.h"
#include "runtime/batch.h"
#include "session.h"

static const char *SYNOPSIS =
    "[--model DIR | --random-model olmoe-1b7b|DIR] [--batch B] [--prompt-len P] [--gen-len G] [--threads N]\n"
    "       [--batch-rows N] [--no-warm] [--json] [--backend cpu|cuda] [--weights bf16|q8|q4] [--copy-bytes N]\n"
    "       [--mor-batching depth|step] [--mor-full-depth]\n"
    "       [--roe-k K] [--roe-tau T | --roe-profile FILE] [--roe-keep-clean L] [--roe-gate G]";

struct bench_opts {
    const char *model_dir, *backend, *random_model, *weights, *mor_batching;
    int batch, prompt_len, gen_len, threads, json, no_warm, mor_full_depth, batch_rows;
    float copy_bytes;
    struct roe_flags rf;
    struct roe_kv_flags kv;
};

/* What the run measured. */
struct bench_result {
    long preemptions;     /* sequences preempted for KV blocks (docs/KV.md) */
    int max_parked;       /* most sequences waiting for KV blocks after a step (0: all ran at once) */
    double prefill_s;
    long n_prefill;       /* prompt tokens */
    int steps;            /* decode steps timed (gen_len) */
    double *step_s;       /* [gen_len] */
    double *step_bytes;   /* [gen_len] */
    int *step_experts;    /* [gen_len] */
    long rows_computed, rows_naive;
    double copy_gbs;
};

static int parse_opts(int argc, char **argv, struct bench_opts *o) {
    *o = (struct bench_opts){.batch = 1, .prompt_len = 16, .gen_len = 16, .batch_rows = 512};
    roe_flags_init(&o->rf);
    enum { N_OWN = 14 };
    struct roe_arg_spec specs[N_OWN + ROE_FLAGS_N_SPECS + ROE_KV_FLAGS_N_SPECS] = {
        {"--model", ROE_ARG_STRING, &o->model_dir, "model directory (default: the bundled model)", 0, 0},
        {"--batch", ROE_ARG_INT, &o->batch, "concurrent sequences (1)", 1, 4096},
        {"--prompt-len", ROE_ARG_INT, &o->prompt_len, "prompt tokens per sequence (16)", 1, 1 << 20},
        {"--gen-len", ROE_ARG_INT, &o->gen_len, "decode steps (16)", 1, 1 << 20},
        {"--threads", ROE_ARG_INT, &o->threads, "CPU threads (0 = all cores)", 0, 1024},
        {"--batch-rows", ROE_ARG_INT, &o->batch_rows,
         "rows per engine step, so prompt tokens per prefill step (512, as llama.cpp's -ub; at least batch x K)", 1,
         1 << 16},
        {"--no-warm", ROE_ARG_FLAG, &o->no_warm, "do not pre-read the weights", 0, 0},
        {"--json", ROE_ARG_FLAG, &o->json, "print JSON", 0, 0},
        {"--backend", ROE_ARG_STRING, &o->backend, "cpu (default) or cuda", 0, 0},
        {"--random-model", ROE_ARG_STRING, &o->random_model,
         "random bf16 weights generated on the device for these shapes (olmoe-1b7b, or a model "
         "directory's config.json); --backend cuda", 0, 0},
        {"--weights", ROE_ARG_STRING, &o->weights, "bf16 (the checkpoint as stored) | q8 | q4: quantized at load", 0, 0},
        {"--copy-bytes", ROE_ARG_FLOAT, &o->copy_bytes,
         "also time a backend copy of this many bytes (memory bandwidth, same run; 0 = off)", 0, 64e9},
        {"--mor-batching", ROE_ARG_STRING, &o->mor_batching,
         "decode loop of launcher/bench_mor.h: depth (MoR: continuous depth-wise batching) or step (plain steps; "
         "any dense model)", 0, 0},
        {"--mor-full-depth", ROE_ARG_FLAG, &o->mor_full_depth, "MoR: every token runs every recursion", 0, 0},
    };
    roe_flags_specs(&o->rf, specs + N_OWN);
    roe_kv_flags_specs(&o->kv, specs + N_OWN + ROE_FLAGS_N_SPECS);
    const int rc = roe_args_parse("bench", SYNOPSIS, specs, (int)(sizeof specs / sizeof specs[0]), argc, argv, 2);
    if (rc) return rc == 1 ? -1 : rc; /* -1: --help was printed */
    if (o->mor_batching && strcmp(o->mor_batching, "depth") != 0 && strcmp(o->mor_batching, "step") != 0) {
        fprintf(stderr, "roe bench: --mor-batching '%s': expected depth or step\n", o->mor_batching);
        return 2;
    }
    if ((o->mor_batching || o->mor_full_depth) && roe_session_world_size() > 1) {
        fprintf(stderr, "roe bench: --mor-batching and --mor-full-depth run in one process (not under mpirun)\n");
        return 2;
    }
    if (o->random_model && o->model_dir) {
        fprintf(stderr, "roe bench: --model and --random-model exclude each other\n");
        return 2;
    }
    return 0;
}

/* The model and an engine sized for the run; 0, or the exit code. */
static int open_bench(const struct bench_opts *o, struct roe_session *s, struct roe_roster *roster) {
    const char *cmd = "bench";
    roe_backend_kind kind;
    int rc = roe_session_backend(cmd, o->backend, &kind);
    if (rc) return rc;
    if (o->random_model ? roe_session_open_random(s, cmd, o->random_model) : roe_session_open_model(s, cmd, o->model_dir))
        return 1;
    if ((rc = roe_session_weights(s, cmd, o->weights))) return rc;
    const struct roe_model_config *c = &s->model->cfg;
    if ((rc = roe_flags_roster(&o->rf, cmd, c, roster))) return rc;
    if (o->prompt_len + o->gen_len + 1 > c->max_position) {
        fprintf(stderr, "roe bench: --prompt-len %d + --gen-len %d exceeds the model's context of %d\n",
                o->prompt_len, o->gen_len, c->max_position);
        return 2;
    }
    struct roe_engine_opts eo = roe_engine_opts_default();
    eo.max_seqs = o->batch;
    eo.max_ctx = o->prompt_len + o->gen_len + 1;
    eo.max_rows = o->batch * roster->k > o->batch_rows ? o->batch * roster->k : o->batch_rows;
    eo.n_threads = o->threads;
    eo.isa = roe_env_cpu_isa();
    eo.backend = kind;
    eo.random_seed = 0x0E1B7Bu;
    eo.mor_full_depth = o->mor_full_depth;
    if (o->mor_batching) eo.max_rows = o->batch > o->prompt_len ? o->batch : o->prompt_len;
    if ((rc = roe_kv_flags_apply(&o->kv, cmd, &eo))) return rc;
    s->warm = !o->no_warm && !o->random_model; /* every rank reads the weights it holds */
    return roe_session_open_engine(s, cmd, eo) ? 1 : 0;
}

/* Rank 0's KV block pool after the run (docs/KV.md): its shape and how it was used. */
static void add_kv(cJSON *root, const roe_engine *e, long preemptions, int max_parked) {
    const struct roe_kv_cache *kv = roe_engine_kv(e), *kw = roe_engine_kv_window(e);
    cJSON *o = cJSON_AddObjectToObject(root, "kv_cache");
    if (!o) return;
    if (kw) { /* the sliding-window layers' own pool (docs/KV.md "Sliding windows") */
        cJSON_AddNumberToObject(o, "window", kw->window);
        cJSON_AddNumberToObject(o, "window_pool_bytes", (double)roe_kv_cache_bytes(kw));
        cJSON_AddNumberToObject(o, "window_blocks_total", kw->n_blocks);
        cJSON_AddNumberToObject(o, "window_blocks_held", kw->n_blocks - kw->n_free - kw->n_lru);
    }
    cJSON_AddStringToObject(o, "dtype", kv->dtype == ROE_DTYPE_BF16 ? "bf16" : kv->dtype == ROE_DTYPE_F8_E4M3 ? "fp8" : "f32");
    cJSON_AddNumberToObject(o, "block_size", kv->block_size);
    cJSON_AddNumberToObject(o, "pool_bytes", (double)roe_kv_cache_bytes(kv));
    cJSON_AddNumberToObject(o, "blocks_total", kv->n_blocks);
    cJSON_AddNumberToObject(o, "blocks_held", kv->n_blocks - kv->n_free - kv->n_lru);
    cJSON_AddNumberToObject(o, "blocks_free", kv->n_free);
    cJSON_AddNumberToObject(o, "blocks_cached", kv->n_lru);
    cJSON_AddNumberToObject(o, "prefix_hit_tokens", (double)kv->hit_tokens);
    cJSON_AddNumberToObject(o, "prefix_query_tokens", (double)kv->query_tokens);
    cJSON_AddNumberToObject(o, "prefix_hit_rate", kv->query_tokens ? (double)kv->hit_tokens / kv->query_tokens : 0.0);
    cJSON_AddNumberToObject(o, "prefix_evictions", (double)kv->evictions);
    cJSON_AddNumberToObject(o, "preemptions", (double)preemptions);
    cJSON_AddNumberToObject(o, "max_parked", max_parked);
}

/* MLA: a decode step reads each layer's W_uk through wuk_t (runtime/mla.c: derived at load, in
 * the float dtype: fp32 for an FP8 checkpoint, so 4x the FP8 bytes; not in dense_bytes) and only
 * the W_uv rows of kv_b_proj (dense_bytes counts all of it): what the step reads beyond dense_bytes. */
static double mla_decode_extra_bytes(const struct roe_model *m) {
    const struct roe_model_config *c = &m->cfg;
    if (!c->mla) return 0.0;
    const struct roe_mla_config *a = &c->mla_cfg;
    double d = 0.0;
    for (int l = 0; l < c->n_layers; l++) {
        const struct roe_layer_weights *L = &m->layers[l];
        if (!L->wuk_t.data || !L->wkv_b.data) continue;
        d += (double)roe_mat_bytes(&L->wuk_t) -
             (double)roe_mat_bytes(&L->wkv_b) * a->nope_dim / (double)(a->nope_dim + a->v_dim);
    }
    return d;
}

/* Bytes of the KV cache per token as this engine holds them (roe_model_kv_bytes_per_token counts
 * fp32 elements; the cache is bf16 by default, --kv-dtype). */
static double kv_bytes_per_token(const struct roe_session *s) {
    const double elem = (double)roe_dtype_size(roe_engine_kv(s->engine)->dtype);
    return (double)roe_model_kv_bytes_per_token(&s->model->cfg) / sizeof(float) * elem;
}

/* Bytes a decode step must read (see the top of the file). */
static double step_bytes(const struct roe_session *s, int batch, const struct roe_batch_step_info *info) {
    const struct roe_model *m = s->model;
    const struct roe_model_config *c = &m->cfg;
    const double emb_row = (double)c->hidden * roe_dtype_size(m->embed.dtype);
    const double dense = (double)m->dense_bytes - (c->tie_word_embeddings ? 0.0 : (double)roe_mat_bytes(&m->embed)) +
                         emb_row + mla_decode_extra_bytes(m);
    const double kv_row = kv_bytes_per_token(s) / c->n_layers; /* one layer's cached row */
    const int N = roe_session_world_size(), ranks_with_rows = batch < N ? batch : N;
    return dense * ranks_with_rows + (double)info->stats.distinct_experts * m->expert_bytes + kv_row * info->kv_rows;
}

/* Random prompts (Philox, fixed key) admitted as greedy sequences, sequence b on rank b mod N. */
static roe_status admit_all(roe_batch *b, const struct bench_opts *o, const struct roe_roster *roster,
                            int vocab, int32_t *prompts, struct roe_batch_seq *seqs) {
    const int N = roe_batch_ranks(b);
    for (int q = 0; q < o->batch; q++) {
        int32_t *p = prompts + (size_t)q * o->prompt_len;
        for (int pos = 0; pos < o->prompt_len; pos++)
            p[pos] = (int32_t)(roe_philox4x32((uint32_t)pos, (uint32_t)q, 0, 0, 0xBE7C, 0).v[0] % (uint32_t)vocab);
        struct roe_sampling greedy = roe_sampling_default();
        greedy.temperature = 0.0f;
        greedy.seed = (uint64_t)q;
        seqs[q] = (struct roe_batch_seq){.prompt = p, .n_prompt = o->prompt_len, .max_tokens = o->gen_len + 1,
                                         .sampling = greedy, .roster = roster};
        ROE_TRY(roe_batch_admit(b, &seqs[q], q % N));
    }
    return ROE_OK;
}

/* Steps until every sequence has its gen_len + 1 tokens, timing each: prefill steps (with
 * prompt tokens) together, decode steps one by one. */
static roe_status run_steps(roe_batch *b, const struct roe_session *s, const struct bench_opts *o,
                            struct bench_result *r) {
    struct roe_batch_step_info info;
    while (roe_batch_count(b) > 0) {
        const double t0 = roe_now_s();
        ROE_TRY(roe_batch_step(b, &info));
        const double dt = roe_now_s() - t0;
        if (roe_batch_parked(b) > r->max_parked) r->max_parked = roe_batch_parked(b);
        if (info.prompt_tokens > 0) {
            r->prefill_s += dt;
            r->n_prefill += info.prompt_tokens;
        } else if (r->steps < o->gen_len) {
            r->step_s[r->steps] = dt;
            r->step_experts[r->steps] = info.stats.distinct_experts;
            r->step_bytes[r->steps++] = step_bytes(s, o->batch, &info);
            r->rows_computed += info.stats.rows_computed;
            r->rows_naive += info.stats.rows_naive;
        }
    }
    return ROE_OK;
}

static roe_status run_bench(const struct roe_session *s, const struct bench_opts *o,
                            const struct roe_roster *roster, struct bench_result *r) {
    roe_batch *b = NULL;
    const struct roe_batch_opts bo = {.prefill_first = 1};
    int32_t *prompts = roe_malloc((size_t)o->batch * o->prompt_len * sizeof *prompts);
    struct roe_batch_seq *seqs = roe_calloc((size_t)o->batch, sizeof *seqs);
    roe_status st = prompts && seqs ? roe_batch_create(s->engine, &bo, &b)
                                    : roe_fail(ROE_ERR_NOMEM, "bench: out of memory for %d prompts", o->batch);
    if (st == ROE_OK) st = admit_all(b, o, roster, s->model->cfg.vocab_size, prompts, seqs);
    if (st == ROE_OK) st = run_steps(b, s, o, r);
    if (b) r->preemptions = roe_batch_preemptions(b);
    roe_batch_free(b);
    roe_free(prompts);
    roe_free(seqs);
    if (st == ROE_OK && o->copy_bytes > 0) { /* memory bandwidth, same run: (read + written) bytes / s */
        r->copy_gbs = roe_backend_copy_gbs(roe_engine_backend(s->engine), (size_t)o->copy_bytes, 20);
        if (r->copy_gbs <= 0.0) st = ROE_ERR_INTERNAL;
    }
    return st;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void add_array(cJSON *root, const char *name, const struct roe_session *s, int mapped) {
    cJSON *a = cJSON_AddArrayToObject(root, name);
    for (int q = 0; q < roe_session_world_size(); q++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber((double)(mapped ? s->ranks[q].mapped_resident
                                                                   : s->ranks[q].resident_bytes)));
}

static void report(const struct roe_session *s, const struct bench_opts *o, int K, struct bench_result *r) {
    const int n = r->steps > 0 ? r->steps : 1, N = roe_session_world_size();
    double total = 0, bytes = 0, experts = 0;
    for (int g = 0; g < r->steps; g++) {
        total += r->step_s[g];
        bytes += r->step_bytes[g];
        experts += r->step_experts[g];
    }
    qsort(r->step_s, (size_t)r->steps, sizeof *r->step_s, cmp_double);
    const double med = r->step_s[r->steps / 2], mean_step = total / n, mean_bytes = bytes / n;
    const char *backend = roe_engine_backend_name(s->engine);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", s->model_dir);
    cJSON_AddStringToObject(root, "backend", backend);
    cJSON_AddNumberToObject(root, "batch", o->batch);
    cJSON_AddNumberToObject(root, "ranks", N);
    add_array(root, "rank_resident_bytes", s, 0);
    /* measured: checkpoint pages each rank touched, after warming (before the timed steps) */
    add_array(root, "rank_mapped_resident_bytes", s, 1);
    cJSON_AddNumberToObject(root, "roe_k", K);
    cJSON_AddNumberToObject(root, "rows_computed_per_step", (double)r->rows_computed / n);
    cJSON_AddNumberToObject(root, "rows_naive_per_step", (double)r->rows_naive / n);
    cJSON_AddNumberToObject(root, "prompt_len", o->prompt_len);
    cJSON_AddNumberToObject(root, "gen_len", o->gen_len);
    cJSON_AddNumberToObject(root, "warmed_bytes", s->warmed_bytes);
    cJSON_AddNumberToObject(root, "prefill_tokens_per_s", r->n_prefill / r->prefill_s);
    cJSON_AddNumberToObject(root, "decode_step_mean_s", mean_step);
    cJSON_AddNumberToObject(root, "decode_step_median_s", med);
    cJSON_AddNumberToObject(root, "decode_tokens_per_s", o->batch / mean_step);
    cJSON_AddNumberToObject(root, "bytes_per_step", mean_bytes);
    cJSON_AddNumberToObject(root, "distinct_experts_per_step", experts / n);
    cJSON_AddNumberToObject(root, "achieved_read_gbs", mean_bytes / mean_step / 1e9);
    const double kv_elem_ratio = kv_bytes_per_token(s) / (double)roe_model_kv_bytes_per_token(&s->model->cfg);
    cJSON_AddNumberToObject(root, "kv_bytes_per_token", kv_bytes_per_token(s));
    cJSON_AddNumberToObject(root, "kv_bytes_per_token_full_kv",
                            (double)roe_model_kv_bytes_per_token_full(&s->model->cfg) * kv_elem_ratio);
    add_kv(root, s->engine, r->preemptions, r->max_parked);
    if (o->copy_bytes > 0) {
        cJSON_AddNumberToObject(root, "copy_bytes", (double)(size_t)o->copy_bytes);
        cJSON_AddNumberToObject(root, "copy_gbs", r->copy_gbs);
        /* the step's required reads per second over the copy's (read + written) bytes per second */
        cJSON_AddNumberToObject(root, "bandwidth_ratio", mean_bytes / mean_step / 1e9 / r->copy_gbs);
    }
    if (o->json) {
        char *out = cJSON_Print(root);
        if (out) printf("%s\n", out);
        free(out);
    } else
        printf("decode: %d rank(s), batch %d, K %d, %.3f ms/step (median %.3f), %.2f tokens/s, %.1f MB read/step "
               "(%.1f distinct experts), %.2f GB/s achieved; prefill %.1f tokens/s [%s]\n",
               N, o->batch, K, mean_step * 1e3, med * 1e3, o->batch / mean_step, mean_bytes / 1e6, experts / n,
               mean_bytes / mean_step / 1e9, r->n_prefill / r->prefill_s, backend);
    cJSON_Delete(root);
}

int roe_cmd_bench(int argc, char **argv) {
    struct bench_opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    struct roe_session s;
    struct roe_roster roster;
    memset(&s, 0, sizeof s);
    if ((rc = open_bench(&o, &s, &roster))) {
        roe_session_close(&s);
        return rc;
    }
    if (o.mor_batching) {
        const struct roe_bench_mor_opts mo = {.batch = o.batch, .prompt_len = o.prompt_len, .gen_len = o.gen_len,
                                              .json = o.json, .depth_batching = strcmp(o.mor_batching, "depth") == 0};
        rc = roe_bench_mor_run(&s, &mo);
        roe_session_close(&s);
        return rc;
    }
    struct bench_result r = {.step_s = roe_calloc((size_t)o.gen_len, sizeof(double)),
                             .step_bytes = roe_calloc((size_t)o.gen_len, sizeof(double)),
                             .step_experts = roe_calloc((size_t)o.gen_len, sizeof(int))};
    roe_status st = r.step_s && r.step_bytes && r.step_experts
                        ? run_bench(&s, &o, &roster, &r)
                        : roe_fail(ROE_ERR_NOMEM, "bench: out of memory for %d steps", o.gen_len);
    if (st == ROE_OK) report(&s, &o, roster.k, &r);
    else roe_report("bench", st);
    roe_free(r.step_s);
    roe_free(r.step_bytes);
    roe_free(r.step_experts);
    roe_session_close(&s);
    return st == ROE_OK ? 0 : 1;
}
