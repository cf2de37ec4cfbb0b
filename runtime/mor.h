/*
 * mor.h — Mixture-of-Recursions in the engine (model_type "mor_llama": config.h struct
 * roe_mor_config; docs/MODELS.md "roe's engine for MoR", docs/KV.md "MoR"; the paper's rules in
 * ../shared/docs/MOR.md, the PyTorch reference tools/mor/mor_ref.py is the authority).
 *
 * A token runs: layer 0 -> recursion 1 .. its depth over the ONE shared block (B layers) -> the
 * last layer -> final norm -> LM head. Its depth: expert choice, recursion r > 1 runs iff r - 1 ran
 * and sigmoid(router_r . h) >= threshold (g_r = alpha sigmoid(.); h <- h + g_r Block(h)); token
 * choice, argmax of one softmax router on layer 0's output (middle recursions h <- Block(h), the
 * last h <- H^1 + g Block(h)).
 *
 * KV. Two block pools (runtime/kv_cache.h): the engine's main pool holds every token's layer 0 and
 * last layer (2 cache layers, positions as usual); the *block pool* holds the shared block's B
 * layers, one pool sequence per (sequence, recursion) (recursion-wise caching: pool sequence
 * seq N_r + r - 1) or per sequence (recursive sharing: recursion 1's only). A pool sequence is
 * COMPACTED: the tokens that ran recursion r, in order, so recursion r's attention covers exactly
 * them, and a (sequence, recursion) holds blocks only for the tokens that reached it — the memory
 * saved is blocks never taken (roe_engine_mor_kv_stats). RoPE uses the absolute position.
 *
 * Two ways to run: roe_engine_step (every row of the step through every recursion it takes, a
 * recursion at a time), and the tick API below (continuous depth-wise batching, the paper's §3.3):
 * tokens wait in a FIFO, enter free slots of the in-flight batch, every tick passes the shared block
 * ONCE over all in-flight tokens whatever their depth (each attending its own depth's cache), and
 * a token that leaves frees its slot for the next waiting one. Both give the same bits: every op is
 * row-independent (kernels/backend.h) and a row reads the same caches either way.
 */
#ifndef ROE_MOR_H
#define ROE_MOR_H

#include "engine.h"

/* ---- the engine's hooks (engine.c only) ---- */

/* The MoR state of a new engine: the main pool (e->kv, 2 layers), the block pool, buffers. */
roe_status roe__mor_create(roe_engine *e);
void roe__mor_free(roe_engine *e);
/* roe_engine_step for a MoR model (rows already checked). */
roe_status roe__mor_step(roe_engine *e, const struct roe_row *rows, int n, float *logits);
void roe__mor_reset_seq(roe_engine *e, int seq);
roe_status roe__mor_copy_seq(roe_engine *e, int dst, int src, int len);

/* ---- for users ---- */

/* Whether the engine runs a MoR model. */
int roe_engine_is_mor(const roe_engine *e);

/* Recursions the token at (seq, pos) ran (1..N_r), 0 if unknown (not computed by this engine). */
int roe_engine_mor_depth(const roe_engine *e, int seq, int pos);

/* KV blocks actually held, in bytes: the main pool's (layer 0 and the last layer) and the block
 * pool's, and the positions the main pool holds over all sequences: bytes per token = (main +
 * block) / tokens, against vanilla's 2 + N_r B layers (docs/KV.md "MoR"). */
struct roe_mor_kv_stats {
    double main_bytes, block_bytes; /* blocks held x bytes per block */
    double entry_bytes;             /* bytes of one position of one cache layer (K and V) */
    long tokens;                    /* positions held (main pool) */
    long block_entries;             /* (token, recursion) entries held in the block pool, compacted */
};
struct roe_mor_kv_stats roe_engine_mor_kv_stats(const roe_engine *e);

/* Row-recursions run since the engine was created (and steps / ticks): mean depth = this / tokens. */
long roe_engine_mor_recursions(const roe_engine *e);

/* Continuous depth-wise batching. Submit queues a decode row (FIFO): its sequence must have no
 * token in flight and row->pos must be its length (the next position); sample 0. A tick admits
 * queued rows into the free in-flight slots (at most `width` in flight, width <= max_rows), runs
 * their layer 0, passes the shared block once over every in-flight token, and finishes the tokens
 * that left (last layer, norm, LM head): done[0..*n_done) are their rows, logits[*n_done, V] (every
 * finished row has logits), depth[i] the recursions each ran. Fails with ROE_ERR_OVERLOADED when a
 * KV pool is short (nothing of the tick then ran). */
roe_status roe_engine_mor_submit(roe_engine *e, const struct roe_row *row);
roe_status roe_engine_mor_tick(roe_engine *e, int width, struct roe_row *done, int *depth, int *n_done,
                               float *logits);
/* Tokens queued and in flight. */
int roe_engine_mor_pending(const roe_engine *e);

#endif
