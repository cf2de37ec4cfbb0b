/*
 * cmd_bench.c — `roe bench`: prefill and decode throughput on random prompts, with the
 * bytes each decode step must read (dense weights the step touches + every distinct
 * expert chosen by any row + the KV history), so that bench/ scripts can compare the
 * achieved read rate with the machine's memory bandwidth (PERFORMANCE-GOALS.md).
 *
 * Steps go through the cluster (runtime/cluster.h), so under mpirun the sequences are
 * spread over their home ranks (round-robin) and the experts over their owners; the RoE
 * groups are aggregated on the home ranks. Dense weights are read once per rank that has
 * rows, which the bytes-per-step figure counts.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "roe_flags.h"
#include "runtime/cluster.h"
#include "commands.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "base/env.h"
#include "base/philox.h"
#include "session.h"

static const char *SYNOPSIS =
    "[--model DIR | --random-model olmoe-1b7b|DIR] [--batch B] [--prompt-len P] [--gen-len G] [--threads N]\n"
    "       [--no-warm] [--json] [--backend cpu|cuda] [--copy-bytes N]\n"
    "       [--roe-k K] [--roe-tau T | --roe-profile FILE] [--roe-keep-clean L] [--roe-gate G]";

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int32_t argmax(const float *z, int n) {
    int32_t b = 0;
    for (int i = 1; i < n; i++)
        if (z[i] > z[b]) b = i;
    return b;
}

int roe_cmd_bench(int argc, char **argv) {
    const char *cmd = "bench";
    const char *model_dir = NULL, *backend = NULL, *random_model = NULL;
    int batch = 1, prompt_len = 16, gen_len = 16, threads = 0, json = 0, no_warm = 0;
    float copy_bytes = 0;
    struct roe_flags rf;
    roe_flags_init(&rf);
    struct roe_arg_spec specs[10 + ROE_FLAGS_N_SPECS] = {
        {"--model", ROE_ARG_STRING, &model_dir, "model directory (default: the bundled model)", 0, 0},
        {"--batch", ROE_ARG_INT, &batch, "concurrent sequences (1)", 1, 4096},
        {"--prompt-len", ROE_ARG_INT, &prompt_len, "prompt tokens per sequence (16)", 1, 1 << 20},
        {"--gen-len", ROE_ARG_INT, &gen_len, "decode steps (16)", 1, 1 << 20},
        {"--threads", ROE_ARG_INT, &threads, "CPU threads (0 = all cores)", 0, 1024},
        {"--no-warm", ROE_ARG_FLAG, &no_warm, "do not pre-read the weights", 0, 0},
        {"--json", ROE_ARG_FLAG, &json, "print JSON", 0, 0},
        {"--backend", ROE_ARG_STRING, &backend, "cpu (default) or cuda", 0, 0},
        {"--random-model", ROE_ARG_STRING, &random_model,
         "random bf16 weights generated on the device for these shapes (olmoe-1b7b, or a model "
         "directory's config.json); --backend cuda", 0, 0},
        {"--copy-bytes", ROE_ARG_FLOAT, &copy_bytes,
         "also time a backend copy of this many bytes (memory bandwidth, same run; 0 = off)", 0, 64e9},
    };
    roe_flags_specs(&rf, specs + 10);
    int rc = roe_args_parse(cmd, SYNOPSIS, specs, (int)(sizeof specs / sizeof specs[0]), argc, argv, 2);
    if (rc) return rc == 1 ? 0 : rc;
    roe_backend_kind kind;
    if ((rc = roe_session_backend(cmd, backend, &kind))) return rc;
    if (random_model && model_dir) {
        fprintf(stderr, "roe bench: --model and --random-model exclude each other\n");
        return 2;
    }
    struct roe_session s;
    if (random_model ? roe_session_open_random(&s, cmd, random_model) : roe_session_open_model(&s, cmd, model_dir)) {
        roe_session_close(&s);
        return 1;
    }
    const struct roe_model *m = s.model;
    const struct roe_model_config *c = &m->cfg;
    struct roe_roster roster;
    rc = roe_flags_roster(&rf, cmd, c, &roster);
    if (rc) {
        roe_session_close(&s);
        return rc;
    }
    const int K = roster.k;
    if (prompt_len + gen_len + 1 > c->max_position) {
        fprintf(stderr, "roe bench: --prompt-len %d + --gen-len %d exceeds the model's context of %d\n",
                prompt_len, gen_len, c->max_position);
        roe_session_close(&s);
        return 2;
    }
    struct roe_engine_opts eo = roe_engine_opts_default();
    eo.max_seqs = batch;
    eo.max_ctx = prompt_len + gen_len + 1;
    eo.max_rows = batch * K > 128 ? batch * K : 128;
    eo.n_threads = threads;
    eo.isa = roe_env_cpu_isa();
    eo.backend = kind;
    eo.random_seed = 0x0E1B7Bu;
    s.warm = !no_warm && !random_model; /* every rank reads the weights it holds */
    if (roe_session_open_engine(&s, cmd, eo)) {
        roe_session_close(&s);
        return 1;
    }
    const double warmed = s.warmed_bytes;
    const int V = c->vocab_size, R = eo.max_rows, N = roe_session_world_size();
    roe_cluster *cl = NULL;
    struct roe_group *groups = roe_calloc((size_t)R, sizeof *groups);
    struct roe_row *rows = roe_calloc((size_t)R, sizeof *rows);
    float *logits = roe_malloc_aligned((size_t)R * V * sizeof(float));
    int32_t *last = roe_calloc((size_t)batch, sizeof *last);
    double *step_s = roe_calloc((size_t)gen_len, sizeof *step_s);
    long rows_computed = 0, rows_naive = 0;
    double *step_bytes = roe_calloc((size_t)gen_len, sizeof *step_bytes);
    int *step_experts = roe_calloc((size_t)gen_len, sizeof *step_experts);
    int ret = 1;
    if (!rows || !logits || !last || !step_s || !step_bytes || !step_experts || !groups) {
        fprintf(stderr, "roe bench: out of memory\n");
        goto done;
    }
    roe_status cst = roe_cluster_create(s.engine, &cl);
    for (int b = 0; b < batch && cst == ROE_OK; b++) cst = roe_cluster_reset_seq(cl, b, b % N);
    if (cst != ROE_OK) {
        roe_report(cmd, cst);
        goto done;
    }
    /* prefill: random prompts (Philox, fixed key), packed R rows per step */
    double t0 = roe_now_s();
    long n_prefill = 0;
    int seq = 0, pos = 0;
    while (seq < batch) {
        int n = 0;
        while (n < R && seq < batch) {
            struct roe_philox_out r = roe_philox4x32((uint32_t)pos, (uint32_t)seq, 0, 0, 0xBE7C, 0);
            rows[n++] = (struct roe_row){.seq = seq, .pos = pos, .token = (int32_t)(r.v[0] % (uint32_t)V),
                                         .want_logits = pos == prompt_len - 1};
            if (++pos == prompt_len) { pos = 0; seq++; }
        }
        int ng = 0;
        for (int j = 0; j < n; j++)
            if (rows[j].want_logits) groups[ng++] = (struct roe_group){.first = j, .n = 1, .mode = ROE_GROUP_LOGITS};
        roe_status st = roe_cluster_step(cl, rows, n, groups, ng, logits, NULL);
        if (st != ROE_OK) { roe_report(cmd, st); goto done; }
        for (int k = 0; k < ng; k++) last[rows[groups[k].first].seq] = argmax(logits + (size_t)k * V, V);
        n_prefill += n;
    }
    double prefill_s = roe_now_s() - t0;
    /* decode: one group of K rows (clean + K-1 RoE samples) per sequence per step, then the
     * aggregation and a greedy pick, all timed */
    const size_t emb_row = (size_t)c->hidden * roe_dtype_size(m->embed.dtype);
    const double dense_read = (double)m->dense_bytes - (c->tie_word_embeddings ? 0.0 : (double)roe_mat_bytes(&m->embed)) + (double)emb_row;
    const double kv_row = 2.0 * sizeof(float) * c->n_layers * (double)c->n_kv_heads * c->head_dim;
    const int ranks_with_rows = batch < N ? batch : N; /* each reads the dense weights */
    for (int g = 0; g < gen_len; g++) {
        const int p = prompt_len + g;
        for (int b = 0; b < batch; b++)
            for (int k = 0; k < K; k++)
                rows[b * K + k] = (struct roe_row){.seq = b, .pos = p, .token = last[b], .sample = k,
                                                   .want_logits = 1, .seed = (uint64_t)b, .roster = &roster};
        for (int b = 0; b < batch; b++) /* each sequence's K rows, aggregated on its home rank */
            groups[b] = (struct roe_group){.first = b * K, .n = K, .mode = ROE_GROUP_MEAN};
        struct roe_step_stats ss;
        double ts = roe_now_s();
        roe_status st = roe_cluster_step(cl, rows, batch * K, groups, batch, logits, &ss);
        if (st != ROE_OK) { roe_report(cmd, st); goto done; }
        for (int b = 0; b < batch; b++) last[b] = argmax(logits + (size_t)b * V, V);
        step_s[g] = roe_now_s() - ts;
        rows_computed += ss.rows_computed;
        rows_naive += ss.rows_naive;
        step_experts[g] = ss.distinct_experts;
        step_bytes[g] = dense_read * ranks_with_rows + (double)step_experts[g] * m->expert_bytes + kv_row * p * batch;
    }
    double total = 0, bytes = 0, experts = 0;
    for (int g = 0; g < gen_len; g++) { total += step_s[g]; bytes += step_bytes[g]; experts += step_experts[g]; }
    double copy_gbs = 0.0;
    if (copy_bytes > 0) { /* the memory bandwidth, measured in the same run (read + written bytes / s) */
        copy_gbs = roe_backend_copy_gbs(roe_engine_backend(s.engine), (size_t)copy_bytes, 20);
        if (copy_gbs <= 0.0) { roe_report(cmd, ROE_ERR_INTERNAL); goto done; }
    }
    double med[1];
    qsort(step_s, (size_t)gen_len, sizeof *step_s, cmp_double);
    med[0] = step_s[gen_len / 2];
    const double mean_step = total / gen_len, mean_bytes = bytes / gen_len;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", s.model_dir);
    cJSON_AddStringToObject(root, "backend", roe_engine_backend_name(s.engine));
    cJSON_AddNumberToObject(root, "batch", batch);
    cJSON_AddNumberToObject(root, "ranks", N);
    cJSON *rk = cJSON_AddArrayToObject(root, "rank_resident_bytes");
    for (int r = 0; r < N; r++) cJSON_AddItemToArray(rk, cJSON_CreateNumber((double)s.ranks[r].resident_bytes));
    /* measured: checkpoint pages each rank touched, after warming (before the timed steps) */
    cJSON *rm = cJSON_AddArrayToObject(root, "rank_mapped_resident_bytes");
    for (int r = 0; r < N; r++) cJSON_AddItemToArray(rm, cJSON_CreateNumber((double)s.ranks[r].mapped_resident));
    cJSON_AddNumberToObject(root, "roe_k", K);
    cJSON_AddNumberToObject(root, "rows_computed_per_step", (double)rows_computed / gen_len);
    cJSON_AddNumberToObject(root, "rows_naive_per_step", (double)rows_naive / gen_len);
    cJSON_AddNumberToObject(root, "prompt_len", prompt_len);
    cJSON_AddNumberToObject(root, "gen_len", gen_len);
    cJSON_AddNumberToObject(root, "warmed_bytes", warmed);
    cJSON_AddNumberToObject(root, "prefill_tokens_per_s", n_prefill / prefill_s);
    cJSON_AddNumberToObject(root, "decode_step_mean_s", mean_step);
    cJSON_AddNumberToObject(root, "decode_step_median_s", med[0]);
    cJSON_AddNumberToObject(root, "decode_tokens_per_s", batch / mean_step);
    cJSON_AddNumberToObject(root, "bytes_per_step", mean_bytes);
    cJSON_AddNumberToObject(root, "distinct_experts_per_step", experts / gen_len);
    cJSON_AddNumberToObject(root, "achieved_read_gbs", mean_bytes / mean_step / 1e9);
    if (copy_bytes > 0) {
        cJSON_AddNumberToObject(root, "copy_bytes", (double)(size_t)copy_bytes);
        cJSON_AddNumberToObject(root, "copy_gbs", copy_gbs);
        /* the step's required reads per second over the copy's (read + written) bytes per second */
        cJSON_AddNumberToObject(root, "bandwidth_ratio", mean_bytes / mean_step / 1e9 / copy_gbs);
    }
    if (json) {
        char *out = cJSON_Print(root);
        if (out) printf("%s\n", out);
        free(out);
    } else
        printf("decode: %d rank(s), batch %d, K %d, %.3f ms/step (median %.3f), %.2f tokens/s, %.1f MB read/step "
               "(%.1f distinct experts), %.2f GB/s achieved; prefill %.1f tokens/s [%s]\n",
               N, batch, K, mean_step * 1e3, med[0] * 1e3, batch / mean_step, mean_bytes / 1e6,
               experts / gen_len, mean_bytes / mean_step / 1e9, n_prefill / prefill_s,
               roe_engine_backend_name(s.engine));
    cJSON_Delete(root);
    ret = 0;
done:
    roe_cluster_free(cl);
    roe_free(groups);
    roe_free(rows);
    roe_free_aligned(logits);
    roe_free(last);
    roe_free(step_s);
    roe_free(step_bytes);
    roe_free(step_experts);
    roe_session_close(&s);
    return ret;
}
