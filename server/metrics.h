/*
 * metrics.h — GET /metrics: the scheduler's and the HTTP layer's counters in the Prometheus
 * text exposition format (version 0.0.4), every series labelled with model_name.
 *
 *   roe_requests_running / _waiting (gauges), roe_requests_total{outcome} (finished_stop,
 *   finished_length, cancelled, failed, refused), roe_prompt_tokens_total,
 *   roe_generation_tokens_total, roe_time_to_first_token_seconds,
 *   roe_inter_token_latency_seconds, roe_e2e_request_latency_seconds,
 *   roe_request_queue_time_seconds (histograms), roe_kv_cache_usage_ratio,
 *   roe_kv_cache_blocks{state} (admission's reservations), roe_kv_pool_blocks{state} (rank 0's
 *   block pool: held, free, cached, total), roe_prefix_cache_hit_tokens_total,
 *   roe_prefix_cache_query_tokens_total, roe_prefix_cache_evictions_total (docs/KV.md),
 *   roe_roe_samples_total (RoE sample rows run for generated
 *   tokens, clean rows included), roe_engine_rows_total{kind} (row-layers computed, and what a
 *   roster without dedup would compute), roe_steps_total, roe_heartbeats_total,
 * roe_engine_busy_seconds_total, roe_http_connections, roe_http_responses_total{code}.
 */
#ifndef ROE_SERVER_METRICS_H
#define ROE_SERVER_METRICS_H

#include <stdint.h>

#include "runtime/scheduler.h"
#include "strbuf.h"

enum { ROE_HTTP_CODES = 12 };

/* The HTTP layer's own counters. */
struct roe_http_stats {
    int connections; /* open: held by libmicrohttpd and still sending a first head */
    int pending;     /* still sending a first head */
    uint64_t responses[ROE_HTTP_CODES]; /* by the codes of roe_http_code_index */
    uint64_t evicted, timed_out, refused_address, refused_busy, malformed; /* front.h */
};

/* Index of an HTTP status among the counted ones (the last: any other). */
int roe_http_code_index(int code);
int roe_http_code_at(int index); /* 0 for "other" */

void roe_metrics_render(struct roe_strbuf *out, const char *model_name,
                        const struct roe_sched_stats *s, const struct roe_http_stats *h);

#endif
