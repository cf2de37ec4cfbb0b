/*
 * bench_mor.h — `roe bench --mor-batching depth|step`: greedy decode throughput of a MoR model
 * (runtime/mor.h) by continuous depth-wise batching (ticks: one pass of the shared block per tick
 * over tokens at every depth, early exits refilled FIFO) or by the plain step (every sequence's
 * token through its recursions a recursion at a time), and of any dense model by the plain step (the
 * vanilla comparison), through the same loop: prompts prefilled by plain steps (untimed), then
 * gen_len tokens per sequence timed. Reports tokens/s, mean depth and KV bytes per token held.
 */
#ifndef ROE_BENCH_MOR_H
#define ROE_BENCH_MOR_H

#include "session.h"

struct roe_bench_mor_opts {
    int batch, prompt_len, gen_len, json;
    int depth_batching; /* 1: ticks (MoR only); 0: plain steps */
};

/* Runs and prints; returns the exit code. */
int roe_bench_mor_run(const struct roe_session *s, const struct roe_bench_mor_opts *o);

#endif
