/*
 * engine.h — the step engine: one forward pass over a batch of rows.
 *
 * A row is one (sequence, position, sample) triple (DESIGN.md "One step, as data").
 * Sample 0 is the clean path: it appends its K/V to the sequence's cache slot. Every
 * row attends to its sequence's clean history [0, pos) plus its own current K/V.
 * Within one step, clean rows of a sequence must extend its cache contiguously
 * (positions len, len+1, ... in order); any row at position p needs the clean history
 * [0, p) to exist by the time it runs (earlier steps, or clean rows of this step).
 *
 * RoE samples (sample > 0) of a token share the clean row's computation until the first
 * layer where their routing differs (ROE.md "What we add" 2): a sample row with its
 * clean row in the same step starts as an alias of it and forks, copying the clean
 * row's state, at the MoE layer where its noisy routing first picks other experts or
 * weights; at that layer the (row, expert) pairs it shares with the clean row are
 * computed once. This is exact: results are bit-identical with dedup off.
 *
 * Expert parallelism (DESIGN.md "Process model"): with a communicator of N ranks and a
 * placement, each rank's engine runs the rows of the sequences it is home to (attention,
 * routing, the weighted sum) and the experts it owns, for the rows of every rank: each
 * MoE layer dispatches rows to the experts' owners and combines their outputs back
 * (comm/dispatch.h). Every rank must call roe_engine_step for every step, even with no
 * rows, because every rank takes part in every MoE layer's exchange; and the rows of one
 * step over all ranks together must not exceed max_rows (the receive buffers' bound).
 * Results are bit-identical to one process: the kernels are batch-invariant, and a row's
 * experts are summed on its home rank in its own slot order.
 *
 * The engine owns every buffer it needs, sized at creation for max_rows rows, so a step
 * allocates nothing and cannot fail except on invalid rows, a failing peer, or a KV block
 * pool too short for its clean rows (ROE_ERR_OVERLOADED before anything runs: kv_cache.h).
 */
#ifndef ROE_ENGINE_H
#define ROE_ENGINE_H

#include <stdint.h>

#include "comm/comm.h"
#include "comm/dispatch.h"
#include "kernels/backend.h"
#include "kv_cache.h"
#include "model.h"
#include "placement.h"
#include "roster.h"
#include "base/status.h"

struct roe_row {
    int seq;          /* KV-cache slot of the row's sequence, in [0, max_seqs) */
    int pos;          /* position of this token in its sequence */
    int32_t token;    /* input token id */
    int sample;       /* 0: clean (appends K/V); > 0: a RoE sample (reads only) */
    int want_logits;  /* compute this row's logits */
    uint64_t seed;    /* request seed: keys the Gumbel noise of RoE samples */
    const struct roe_roster *roster; /* the request's RoE settings; NULL: plain routing */
};

/* kv_dtype: the checkpoint's attention dtype decides (roe_engine_kv_dtype). */
#define ROE_KV_DTYPE_AUTO ROE_DTYPE_COUNT

struct roe_engine_opts {
    int max_seqs;     /* KV-cache slots */
    int max_ctx;      /* positions per slot (<= the model's max_position) */
    int max_rows;     /* rows per step */
    int n_threads;    /* 0: all cores */
    roe_cpu_isa isa;  /* CPU kernel path (AUTO) */
    int no_dedup;     /* compute every RoE sample row from the start (for tests) */
    roe_comm *comm;   /* borrowed; NULL: a world of one process */
    const struct roe_placement *placement; /* borrowed; NULL: every expert here (one rank) */
    roe_ep_wire wire; /* dtype of rows on the wire (F32: bit-exact) */
    int no_overlap;   /* do not compute local-only experts while rows are in flight */
    int ep_early_us;  /* wait for a late rank's headers before early tasks (us): 0 at once,
                         < 0 never */
    roe_backend_kind backend; /* CPU (default) or CUDA */
    int device;       /* CUDA device ordinal */
    uint64_t random_seed; /* a shapes-only model (roe_model_shapes): seed of its random weights */
    size_t kv_bytes;  /* the KV block pool (docs/KV.md); 0: max_seqs full contexts */
    int kv_block_size;/* positions per KV block; 0: ROE_KV_BLOCK_DEFAULT */
    uint64_t kv_scramble; /* != 0: blocks handed out in a seeded random order (tests) */
    roe_dtype kv_dtype;   /* KV elements: F32 (the default here: exact), BF16, or ROE_KV_DTYPE_AUTO
                             (the launcher's default, as vLLM's "auto"): BF16 where the checkpoint's
                             attention weights are 16 bits or narrower, F32 for an F32 checkpoint */
    int no_prefix_cache;  /* never reuse cached blocks of another sequence's prompt */
    int kv_full_windows;  /* sliding-window layers cache every position like the others (the cache
                             before docs/KV.md "Sliding windows"; tests compare against it) */
    int mor_full_depth;   /* MoR: every token runs every recursion (benchmarks: depth routing off) */
};

struct roe_engine_opts roe_engine_opts_default(void);

typedef struct roe_engine roe_engine;

/* The engine borrows the model, the communicator and the placement (which must outlive
 * it). With a placement, the model need hold only this rank's experts. */
/* The KV element type opts->kv_dtype gives for this model (ROE_KV_DTYPE_AUTO resolved). */
roe_dtype roe_engine_kv_dtype(const struct roe_model *model, roe_dtype kv_dtype);

roe_status roe_engine_create(const struct roe_model *model, const struct roe_engine_opts *opts,
                             roe_engine **out);
void roe_engine_free(roe_engine *e);

/* Runs n <= max_rows rows. logits receives [number of rows with want_logits, vocab] in
 * row order (may be NULL if none wants logits). */
roe_status roe_engine_step(roe_engine *e, const struct roe_row *rows, int n, float *logits);

/* Checks n rows against o's limits (max_rows, max_seqs, max_ctx), the vocabulary and the
 * cache contract above, given each sequence's clean history length len[max_seqs]; next is
 * scratch [max_seqs]. The engine checks its rows with it, the cluster every rank's. */
roe_status roe_rows_check(const struct roe_row *rows, int n, const struct roe_engine_opts *o, int vocab,
                          const int *len, int *next);

/* Forgets a sequence slot's history (its cache length becomes 0). */
void roe_engine_reset_seq(roe_engine *e, int seq);
/* Slot dst starts as the first len positions of slot src's history (kv_cache.h: full blocks
 * shared, a partial one copied). Returns ROE_ERR_INVALID_ARG if a slot is out of range, they are
 * the same, or src holds fewer; ROE_ERR_OVERLOADED if no block is free for the copy. */
roe_status roe_engine_copy_seq(roe_engine *e, int dst, int src, int len);
int roe_engine_seq_len(const roe_engine *e, int seq);
/* Empty slot seq starts with the longest prefix of tokens[0, n) whose blocks the cache holds
 * (kv_cache.h roe_kv_cache_match: whole blocks, at least one position left to compute) and,
 * without a window pool, the leading positions of a cached block that continues it
 * (roe_kv_cache_partial_probe, copied); returns the positions it now holds (0: none). */
int roe_engine_prefix_match(roe_engine *e, int seq, const int32_t *tokens, int n);
/* Makes the empty slot seq start holding a cached prefix of n blocks in `pool` (0: roe_engine_kv,
 * 1: roe_engine_kv_window), of which it holds blocks lo..n-1 = blocks[0, n - lo) (kv_cache.h
 * roe_kv_cache_adopt_from: `before` is block lo - 1's chain hash; lo > 0 only with a window): a
 * prefix the coordinator found in its mirrors of this rank's pools (cluster.h). */
roe_status roe_engine_prefix_adopt(roe_engine *e, int seq, int pool, int lo, uint64_t before, const int32_t *blocks,
                                   int n);

/* Slot seq, holding a prefix of whole blocks, takes the first m positions of cached block src
 * that continues it (kv_cache.h roe_kv_cache_extend: copied into a block of its own); no window
 * pool, no MoR. roe_engine_prefix_match does this itself; the coordinator logs it for a rank. */
roe_status roe_engine_prefix_extend(roe_engine *e, int seq, int32_t src, int m);

const struct roe_model *roe_engine_model(const roe_engine *e);
const struct roe_engine_opts *roe_engine_get_opts(const roe_engine *e);
const char *roe_engine_backend_name(const roe_engine *e);
/* The engine's backend (borrowed): for benchmarks that time device work. */
roe_backend *roe_engine_backend(const roe_engine *e);
size_t roe_engine_kv_bytes(const roe_engine *e);
/* The KV block pool (borrowed, read-only): block size, blocks free and held. */
const struct roe_kv_cache *roe_engine_kv(const roe_engine *e);
/* The sliding-window layers' own pool (docs/KV.md "Sliding windows"), or NULL when they share
 * roe_engine_kv's (no window, every layer windowed, MLA, or kv_full_windows). */
const struct roe_kv_cache *roe_engine_kv_window(const roe_engine *e);

/* Per-step statistics of the last step (for benchmarks and --json). */
struct roe_step_stats {
    int rows;
    int distinct_experts; /* (layer, expert) pairs this rank ran, summed over MoE layers */
    long rows_computed;   /* row-layers computed (after dedup) */
    long rows_naive;      /* row-layers a roster without dedup computes: rows * layers */
};
struct roe_step_stats roe_engine_last_stats(const roe_engine *e);

/* This rank's communicator (a private self one when none was given). */
roe_comm *roe_engine_comm(const roe_engine *e);

/* For runtime/cluster.c only: marks the steps it drives. With more than one rank an engine
 * refuses other steps, since a rank stepping alone would wait for peers that are not. */
void roe__engine_set_driven(roe_engine *e, int on);

#endif
