/* bench_mor.c — `roe bench --mor-batching`: see bench_mor.h. */
#include "bench_mor.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/philox.h"
#include "runtime/engine.h"
#include "runtime/mor.h"

struct mor_run {
    int32_t *next;    /* [batch] each sequence's next input token */
    int *made;        /* [batch] tokens decoded */
    float *logits;    /* [max(batch, prompt_len), V] */
    struct roe_row *rows;
    int *depth;
    double decode_s;
    long tokens;
};

static int32_t argmax(const float *x, int n) {
    int32_t b = 0;
    for (int i = 1; i < n; i++) b = x[i] > x[b] ? i : b;
    return b;
}

/* Random prompts (Philox, the same as roe bench's), each prefilled in one step; next[q] the greedy token. */
static roe_status prefill(roe_engine *e, const struct roe_bench_mor_opts *o, struct mor_run *r, int V) {
    for (int q = 0; q < o->batch; q++) {
        for (int p = 0; p < o->prompt_len; p++)
            r->rows[p] = (struct roe_row){
                .seq = q, .pos = p, .want_logits = p == o->prompt_len - 1,
                .token = (int32_t)(roe_philox4x32((uint32_t)p, (uint32_t)q, 0, 0, 0xBE7C, 0).v[0] % (uint32_t)V)};
        ROE_TRY(roe_engine_step(e, r->rows, o->prompt_len, r->logits));
        r->next[q] = argmax(r->logits, V);
    }
    return ROE_OK;
}

/* gen_len tokens per sequence by plain steps: every sequence one token a step. */
static roe_status decode_steps(roe_engine *e, const struct roe_bench_mor_opts *o, struct mor_run *r, int V) {
    for (int g = 0; g < o->gen_len; g++) {
        for (int q = 0; q < o->batch; q++)
            r->rows[q] = (struct roe_row){.seq = q, .pos = o->prompt_len + g, .token = r->next[q], .want_logits = 1};
        ROE_TRY(roe_engine_step(e, r->rows, o->batch, r->logits));
        for (int q = 0; q < o->batch; q++) r->next[q] = argmax(r->logits + (size_t)q * V, V);
        r->tokens += o->batch;
    }
    return ROE_OK;
}

/* gen_len tokens per sequence by ticks of width batch: a finished token's successor is submitted
 * at once, so it waits in the FIFO and enters the next tick. */
static roe_status decode_ticks(roe_engine *e, const struct roe_bench_mor_opts *o, struct mor_run *r, int V) {
    for (int q = 0; q < o->batch; q++) {
        const struct roe_row row = {.seq = q, .pos = o->prompt_len, .token = r->next[q], .want_logits = 1};
        ROE_TRY(roe_engine_mor_submit(e, &row));
    }
    while (roe_engine_mor_pending(e) > 0) {
        int nd = 0;
        ROE_TRY(roe_engine_mor_tick(e, o->batch, r->rows, r->depth, &nd, r->logits));
        for (int i = 0; i < nd; i++) {
            const int q = r->rows[i].seq;
            r->tokens++;
            if (++r->made[q] == o->gen_len) continue;
            const struct roe_row row = {.seq = q, .pos = r->rows[i].pos + 1,
                                        .token = argmax(r->logits + (size_t)i * V, V), .want_logits = 1};
            ROE_TRY(roe_engine_mor_submit(e, &row));
        }
    }
    return ROE_OK;
}

static void report(const struct roe_session *s, const struct roe_bench_mor_opts *o, const struct mor_run *r,
                   long recursions) {
    const struct roe_model_config *c = &s->model->cfg;
    const int mor = roe_engine_is_mor(s->engine);
    const struct roe_mor_kv_stats ks = roe_engine_mor_kv_stats(s->engine);
    const struct roe_kv_cache *kv = roe_engine_kv(s->engine);
    const double layer = 2.0 * c->n_kv_heads * c->head_dim * (double)kv->elem;
    const int unrolled = mor ? c->mor.n_unrolled : c->n_layers;
    long tokens = 0;
    for (int q = 0; q < o->batch; q++) tokens += roe_engine_seq_len(s->engine, q);
    const double held = mor ? (ks.main_bytes + ks.block_bytes) / (double)ks.tokens
                            : (double)(kv->n_blocks - kv->n_free - kv->n_lru) *
                                  (double)roe_kv_block_bytes(kv->n_layers, kv->block_size, kv->kv_dim, 2, kv->elem) / tokens;
    const double exact = mor ? ((double)ks.tokens * 2 + (double)ks.block_entries * c->mor.block) * layer / ks.tokens
                             : layer * c->n_layers;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", s->model_dir);
    cJSON_AddStringToObject(root, "model_type", c->model_type);
    cJSON_AddStringToObject(root, "mode", o->depth_batching ? "depth_batching" : "step");
    cJSON_AddBoolToObject(root, "full_depth", roe_engine_get_opts(s->engine)->mor_full_depth);
    cJSON_AddNumberToObject(root, "batch", o->batch);
    cJSON_AddNumberToObject(root, "prompt_len", o->prompt_len);
    cJSON_AddNumberToObject(root, "gen_len", o->gen_len);
    cJSON_AddNumberToObject(root, "decode_tokens_per_s", (double)r->tokens / r->decode_s);
    cJSON_AddNumberToObject(root, "decode_s", r->decode_s);
    cJSON_AddNumberToObject(root, "mean_depth", mor ? (double)recursions / (double)r->tokens : 0.0);
    cJSON_AddNumberToObject(root, "kv_bytes_per_token_held", held);
    cJSON_AddNumberToObject(root, "kv_bytes_per_token_entries", exact);
    cJSON_AddNumberToObject(root, "kv_bytes_per_token_vanilla", layer * unrolled);
    if (o->json) {
        char *out = cJSON_Print(root);
        if (out) printf("%s\n", out);
        free(out);
    } else
        printf("decode (%s%s): batch %d, %.1f tokens/s, mean depth %.2f; KV %.0f B/token held (%.0f in entries, "
               "vanilla %.0f, %.2fx) [%s]\n", o->depth_batching ? "depth-wise batching" : "plain step",
               roe_engine_get_opts(s->engine)->mor_full_depth ? ", full depth" : "", o->batch,
               (double)r->tokens / r->decode_s, mor ? (double)recursions / (double)r->tokens : 0.0, held, exact,
               layer * unrolled, exact / (layer * unrolled), roe_engine_backend_name(s->engine));
    cJSON_Delete(root);
}

int roe_bench_mor_run(const struct roe_session *s, const struct roe_bench_mor_opts *o) {
    roe_engine *e = s->engine;
    const int V = s->model->cfg.vocab_size;
    if (o->depth_batching && !roe_engine_is_mor(e)) {
        fprintf(stderr, "roe bench: --mor-batching depth needs a mor_llama model (%s is %s)\n", s->model_dir,
                s->model->cfg.model_type);
        return 2;
    }
    const int rows = o->batch > o->prompt_len ? o->batch : o->prompt_len;
    struct mor_run r = {.next = roe_calloc((size_t)o->batch, sizeof(int32_t)), .made = roe_calloc((size_t)o->batch, sizeof(int)),
                        .logits = roe_malloc((size_t)rows * V * sizeof(float)),
                        .rows = roe_calloc((size_t)rows, sizeof(struct roe_row)),
                        .depth = roe_calloc((size_t)rows, sizeof(int))};
    roe_status st = r.next && r.made && r.logits && r.rows && r.depth ? prefill(e, o, &r, V)
                                                                      : roe_fail(ROE_ERR_NOMEM, "bench: out of memory");
    const long rec0 = roe_engine_mor_recursions(e);
    const double t0 = roe_now_s();
    if (st == ROE_OK) st = o->depth_batching ? decode_ticks(e, o, &r, V) : decode_steps(e, o, &r, V);
    r.decode_s = roe_now_s() - t0;
    if (st == ROE_OK) report(s, o, &r, roe_engine_mor_recursions(e) - rec0);
    void *p[] = {r.next, r.made, r.logits, r.rows, r.depth};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) roe_free(p[i]);
    return st == ROE_OK ? 0 : roe_report("bench", st);
}
