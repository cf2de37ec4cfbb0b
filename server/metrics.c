/* metrics.c — Prometheus text format; see metrics.h. */
#include "metrics.h"

#include <stdio.h>
#include <string.h>

static const int CODES[ROE_HTTP_CODES - 1] = {200, 400, 404, 405, 413, 429,
                                              431, 500, 503, 408, 415};

int roe_http_code_index(int code) {
    for (int i = 0; i < ROE_HTTP_CODES - 1; i++)
        if (CODES[i] == code) return i;
    return ROE_HTTP_CODES - 1;
}

int roe_http_code_at(int index) {
    return index < ROE_HTTP_CODES - 1 ? CODES[index] : 0;
}

struct ctx {
    struct roe_strbuf *out;
    char label[320]; /* model_name="..." escaped */
};

static void family(struct ctx *c, const char *name, const char *type, const char *help) {
    roe_strbuf_printf(c->out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void value(struct ctx *c, const char *name, const char *extra, double v) {
    roe_strbuf_printf(c->out, "%s{%s%s%s} %.17g\n", name, c->label, extra ? "," : "",
                      extra ? extra : "", v);
}

static void one(struct ctx *c, const char *name, const char *type, const char *help, double v) {
    family(c, name, type, help);
    value(c, name, NULL, v);
}

static void histogram(struct ctx *c, const char *name, const char *help,
                      const struct roe_histogram *h) {
    family(c, name, "histogram", help);
    uint64_t cum = 0;
    for (int i = 0; i < h->n; i++) {
        cum += h->count[i];
        roe_strbuf_printf(c->out, "%s_bucket{%s,le=\"%g\"} %llu\n", name, c->label, h->le[i],
                          (unsigned long long)cum);
    }
    roe_strbuf_printf(c->out, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, c->label,
                      (unsigned long long)h->total);
    roe_strbuf_printf(c->out, "%s_sum{%s} %.17g\n", name, c->label, h->sum);
    roe_strbuf_printf(c->out, "%s_count{%s} %llu\n", name, c->label, (unsigned long long)h->total);
}

/* Rank 0's KV block pool and prefix reuse (docs/KV.md). */
static void kv_pool(struct ctx *c, const struct roe_sched_stats *s) {
    family(c, "roe_kv_pool_blocks", "gauge",
           "Rank 0's KV block pool: blocks held by sequences, free, and cached (prefix blocks no "
           "sequence holds, evictable).");
    value(c, "roe_kv_pool_blocks", "state=\"held\"", s->pool_held);
    value(c, "roe_kv_pool_blocks", "state=\"free\"", s->pool_free);
    value(c, "roe_kv_pool_blocks", "state=\"cached\"", s->pool_cached);
    value(c, "roe_kv_pool_blocks", "state=\"total\"", s->pool_blocks);
    one(c, "roe_prefix_cache_hit_tokens_total", "counter",
        "Prompt positions found in the KV cache at admission (not computed again), on every rank.",
        (double)s->prefix_hit_tokens);
    one(c, "roe_prefix_cache_query_tokens_total", "counter",
        "Prompt positions looked up at admission (each prompt's length - 1), on every rank.",
        (double)s->prefix_query_tokens);
    one(c, "roe_prefix_cache_evictions_total", "counter",
        "Cached prefix blocks taken back for new ones (least recently used first).",
        (double)s->prefix_evictions);
    one(c, "roe_kv_preemptions_total", "counter",
        "Running sequences preempted when the KV blocks ran short (recomputed later, same tokens).",
        (double)s->preemptions);
}

void roe_metrics_render(struct roe_strbuf *out, const char *model_name,
                        const struct roe_sched_stats *s, const struct roe_http_stats *h) {
    struct ctx c = {.out = out};
    size_t w = (size_t)snprintf(c.label, sizeof c.label, "model_name=\"");
    for (const char *p = model_name; *p && w < sizeof c.label - 4; p++) {
        if (*p == '"' || *p == '\\') c.label[w++] = '\\';
        c.label[w++] = *p == '\n' ? ' ' : *p;
    }
    c.label[w++] = '"';
    c.label[w] = '\0';
    one(&c, "roe_requests_running", "gauge", "Requests in the running batch.", s->running);
    one(&c, "roe_requests_waiting", "gauge", "Requests waiting for admission.", s->waiting);
    one(&c, "roe_requests_max_running", "gauge", "Sequence slots of the engine.", s->max_seqs);
    one(&c, "roe_requests_max_waiting", "gauge", "Queue length beyond which requests get 503.",
        s->max_queue);
    family(&c, "roe_requests_total", "counter", "Requests by outcome.");
    value(&c, "roe_requests_total", "outcome=\"finished_stop\"", (double)s->finished_stop);
    value(&c, "roe_requests_total", "outcome=\"finished_length\"", (double)s->finished_length);
    value(&c, "roe_requests_total", "outcome=\"cancelled\"", (double)s->requests_cancelled);
    value(&c, "roe_requests_total", "outcome=\"failed\"", (double)s->requests_failed);
    value(&c, "roe_requests_total", "outcome=\"refused\"", (double)s->requests_refused);
    one(&c, "roe_prompt_tokens_total", "counter", "Prompt tokens run through the engine.",
        (double)s->prompt_tokens);
    one(&c, "roe_generation_tokens_total", "counter", "Tokens generated.",
        (double)s->generation_tokens);
    histogram(&c, "roe_time_to_first_token_seconds", "Time from arrival to the first token.",
              &s->ttft);
    histogram(&c, "roe_inter_token_latency_seconds", "Time between successive tokens of a request.",
              &s->itl);
    histogram(&c, "roe_e2e_request_latency_seconds",
              "Time from arrival to the end of finished requests.", &s->e2e);
    histogram(&c, "roe_request_queue_time_seconds", "Time from arrival to admission.",
              &s->queue_time);
    one(&c, "roe_kv_cache_usage_ratio", "gauge",
        "KV-cache blocks in use, as a fraction: held by sequences in rank 0's pool (with --kv-blocks: "
        "reserved by admitted requests).",
        s->kv_blocks_total ? (double)s->kv_blocks_used / s->kv_blocks_total : 0.0);
    family(&c, "roe_kv_cache_blocks", "gauge",
           "KV-cache blocks (of roe_kv_cache_block_size positions).");
    value(&c, "roe_kv_cache_blocks", "state=\"used\"", s->kv_blocks_used);
    value(&c, "roe_kv_cache_blocks", "state=\"total\"", s->kv_blocks_total);
    one(&c, "roe_kv_cache_block_size", "gauge", "Positions per KV-cache block.", s->block_size);
    kv_pool(&c, s);
    one(&c, "roe_roe_samples_total", "counter",
        "RoE sample rows run for generated tokens (the clean row included): K per token.",
        (double)s->roe_samples);
    family(&c, "roe_engine_rows_total", "counter",
           "Row-layers computed, and those a roster without shared clean rows would compute.");
    value(&c, "roe_engine_rows_total", "kind=\"computed\"", (double)s->rows_computed);
    value(&c, "roe_engine_rows_total", "kind=\"naive\"", (double)s->rows_naive);
    one(&c, "roe_steps_total", "counter", "Engine steps run.", (double)s->steps);
    one(&c, "roe_heartbeats_total", "counter",
        "Empty steps sent to the other ranks while idle (several ranks only).",
        (double)s->heartbeats);
    one(&c, "roe_engine_busy_seconds_total", "counter", "Time spent in engine steps.", s->busy_s);
    one(&c, "roe_http_connections", "gauge", "Open HTTP connections.", h->connections);
    one(&c, "roe_http_connections_pending", "gauge", "Connections still sending their first request head.",
        h->pending);
    family(&c, "roe_http_connections_closed_total", "counter",
           "Connections the server closed or refused: evicted for a faster client, past a deadline, "
           "over the per-address limit, with every slot busy, or with a malformed request.");
    value(&c, "roe_http_connections_closed_total", "reason=\"evicted\"", (double)h->evicted);
    value(&c, "roe_http_connections_closed_total", "reason=\"timeout\"", (double)h->timed_out);
    value(&c, "roe_http_connections_closed_total", "reason=\"per_address\"", (double)h->refused_address);
    value(&c, "roe_http_connections_closed_total", "reason=\"busy\"", (double)h->refused_busy);
    value(&c, "roe_http_connections_closed_total", "reason=\"malformed\"", (double)h->malformed);
    family(&c, "roe_http_responses_total", "counter", "HTTP responses by status code.");
    for (int i = 0; i < ROE_HTTP_CODES; i++) {
        char code[32];
        if (roe_http_code_at(i))
            snprintf(code, sizeof code, "code=\"%d\"", roe_http_code_at(i));
        else
            snprintf(code, sizeof code, "code=\"other\"");
        value(&c, "roe_http_responses_total", code, (double)h->responses[i]);
    }
}
