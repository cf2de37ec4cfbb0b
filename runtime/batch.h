/*
 * batch.h — the batching core: the one loop that turns sequences into engine steps and steps
 * into tokens. `roe generate` (generate.h), the server's continuous batching (scheduler.h)
 * and `roe bench` are thin users of it: they decide which sequences come in and when, and
 * what happens to the tokens.
 *
 * A sequence is admitted into a free cache slot with a home rank (cluster.h: the rank that
 * holds its KV cache and runs its rows), and leaves the batch when it ends (its end token, a
 * stop token, max_tokens, or a full context) or when its user removes it (a cancelled
 * request). Each roe_batch_step:
 *   compose   one RoE token group of K rows (the clean row and K-1 samples) for every
 *             sequence that has its prompt in the cache, so that a long prompt delays nobody's
 *             next token; then prompt chunks of the sequences still in prefill, first come
 *             first served, up to max_rows rows; a prompt's last position comes with its
 *             sequence's first token group, and a group never splits across steps. Adaptive K
 *             (roster.adaptive_entropy): the clean row runs alone first, and the K-1 samples
 *             follow in the next step only where its next-token entropy exceeds the threshold.
 *   run       one cluster step over every rank; each group is aggregated on its home rank
 *   sample    a token per finished group (sampler.h), handed to the user's on_token hook;
 *             a sequence that ends leaves the batch before its hook is called.
 * Per sequence, on request:
 *   prompt scores   (score_prompt) every prompt position runs as a token group too, and the
 *             distribution each gives for the next prompt token goes to on_prompt (echo with
 *             log-probabilities; the scores `roe eval` computes)
 *   forks     (fork_of) a sequence with another's prompt starts from its cache once that holds
 *             all of the prompt but its last position, on the same home rank, and runs its own
 *             last-position group: the prompt is computed once for n > 1 choices, and each
 *             choice gets exactly the tokens it would get alone with its seed
 *   prefix reuse  a sequence that is no fork and does not score its prompt starts at admission
 *             with the longest prefix of its prompt whose KV blocks its home holds (other
 *             sequences', kept in the cache: kv_cache.h, docs/KV.md), when its home is the
 *             coordinator; those positions are not computed again
 *   stop strings (stop_text, with the batch's tokenizer) text that ends the sequence, matched
 *             across tokens (stop.h); stop_at says where it begins
 * Blocks (docs/KV.md "Admission and preemption"): before each step, every running sequence's
 *   blocks up to its next token group must be free on its home (rank 0 knows every rank's pool:
 *   cluster.h roe_cluster_kv); where they are not, the youngest running sequence there is
 *   preempted: its blocks go back (full ones stay cached as prefix blocks) and it stays in the
 *   batch, parked, keeping its tokens; preempted sequences resume oldest first, as soon as their
 *   blocks and a watermark are free, from the longest cached prefix of their prompt and tokens,
 *   recomputing the rest, and go on with the tokens they would have had without the preemption.
 *   So sequences may be admitted beyond what the pool holds at once (roe_batch_fits says what
 *   fits now): none fails for lack of blocks, as long as each alone fits the pool.
 * Every group's scores are checked: NaN or Inf (overflowing weights or activations) fail the
 * sequence (on_fail) instead of being sampled.
 * The engine is batch-invariant and the sampler and the RoE noise are keyed on (seed,
 * position), so a sequence's tokens are the same bits whatever shares its steps, on any number
 * of ranks.
 *
 * Threads: one thread (the one that drives the engine) calls everything here.
 * Memory: every buffer is allocated by roe_batch_create for the engine's limits (with each
 * slot's known tokens: max_seqs x max_ctx int32); a step allocates nothing.
 */
#ifndef ROE_BATCH_H
#define ROE_BATCH_H

#include <stdint.h>

#include "base/status.h"
#include "cluster.h"
#include "engine.h"
#include "roster.h"
#include "sampler.h"
#include "stop.h"
#include "tokenizer.h"

typedef enum roe_finish {
    ROE_FINISH_LENGTH = 0, /* max_tokens reached, or the context is full */
    ROE_FINISH_EOS,        /* the model's end token, or one of the stop tokens */
} roe_finish;

/* One sequence. The user fills the request part, owns the struct and everything it points
 * to, and keeps them alive while the sequence is in the batch. */
struct roe_batch_seq {
    const int32_t *prompt;           /* [n_prompt] token ids, n_prompt >= 1 */
    int n_prompt;
    int max_tokens;                  /* >= 1 */
    int stop_at_eos;                 /* end after the model's end token */
    const int32_t *stop_ids;         /* [n_stop] more tokens that end it */
    int n_stop;
    struct roe_sampling sampling;    /* its seed also keys the RoE noise */
    const struct roe_roster *roster; /* NULL: the plain model */
    int score_prompt;                /* score every prompt position (hooks.on_prompt) */
    struct roe_batch_seq *fork_of;   /* NULL, or a sequence with the same prompt, admitted before
                                        this one and kept in the batch until this one forked */
    const struct roe_stop_text *stop_text; /* NULL: no stop strings */
    void *user;                      /* for the hooks */
    /* the core's, read-only for the user: valid from admission until the sequence leaves */
    int slot;                        /* its KV-cache slot */
    int home;                        /* its home rank */
    int fed;                         /* positions of its known context (prompt, then tokens
                                        emitted) in the cache or in this step */
    int n_tokens;                    /* tokens emitted */
    int32_t last;                    /* the last token emitted */
    int pending;                     /* adaptive K: the samples of the last position are owed */
    int cached;                      /* positions in the cache after the last step */
    int forked;                      /* fork_of: its cache has been copied (or it was preempted:
                                        it then resumes on its own) */
    int parked;                      /* preempted: holds no blocks, waits to recompute */
    int started;                     /* has had rows in a step */
    int refed;                       /* positions fed before its last preemption (recomputed) */
    int in_flight;                   /* depth_batching: its next token is queued or in flight */
    struct roe_stop_state stop;      /* stop strings: matching state (roe_stop_hold: held bytes) */
    long stop_at;                    /* a stop string begins at this text byte; -1: none */
    double cost;                     /* (prompt + max_tokens) x K: least-loaded homes */
};

/* What one step did. */
struct roe_batch_step_info {
    int rows;              /* rows run (0: nothing to run) */
    int groups;            /* token groups */
    long prompt_tokens;    /* prompt positions fed */
    long samples;          /* RoE rows run for generated tokens (clean rows included) */
    long positions;        /* sum over token groups of their position (KV history read) */
    long kv_rows;          /* cached K/V rows the groups read, over every layer (windows applied) */
    long rows_naive;       /* row-layers a roster computing every sample fully would run */
    long recomputed;       /* positions recomputed after a preemption */
    int preempted;         /* sequences preempted before the step (their blocks were short) */
    int resumed;           /* preempted sequences that started again */
    struct roe_step_stats stats; /* every rank's engine statistics, summed */
    double seconds;        /* the cluster step, wall clock */
};

struct roe_batch_hooks {
    void *ctx;
    /* After the step ran, before any token of it is handed out (NULL: none). */
    void (*on_step)(void *ctx, const struct roe_batch_step_info *info);
    /* A token for s (s->n_tokens counts it), picked from the scores z[vocab]. `ended`: s has
     * left the batch (its slot is free; the core no longer touches s), with `finish`. */
    void (*on_token)(void *ctx, struct roe_batch_seq *s, int32_t token, const float *z, int ended,
                     roe_finish finish);
    /* score_prompt: z[vocab] is the distribution at prompt position pos, for token pos + 1
     * (NULL: scores are computed and dropped). */
    void (*on_prompt)(void *ctx, struct roe_batch_seq *s, int pos, const float *z);
    /* s failed (non-finite scores) and has left the batch; why is a message for people. NULL:
     * roe_batch_step returns the failure instead (the sequences stay in the batch). */
    void (*on_fail)(void *ctx, struct roe_batch_seq *s, roe_status code, const char *why);
};

struct roe_batch_opts {
    roe_home_policy policy;     /* homes of sequences admitted without one (round-robin) */
    int prefill_first;          /* no token group of a decoding sequence while another is in
                                   prefill (benchmarks: steps are all prefill or all decode) */
    const roe_tokenizer *tok;   /* the text of tokens, for stop strings (borrowed; NULL: none) */
    int depth_batching;         /* a MoR engine in one process (runtime/mor.h): decoding tokens of
                                   plain-model sequences (K = 1, no prompt scores) go through
                                   continuous depth-wise batching, one tick a step, each token
                                   emitted in the step it leaves the shared block; prompts and other
                                   sequences by plain steps beside it. No effect elsewhere. */
    struct roe_batch_hooks hooks;
};

struct roe_batch_opts roe_batch_opts_default(void);

typedef struct roe_batch roe_batch;

/* The engine (and its communicator) must outlive the batch. */
roe_status roe_batch_create(roe_engine *engine, const struct roe_batch_opts *opts, roe_batch **out);
void roe_batch_free(roe_batch *b);

/* Admits s into a free slot, homed on `home` (-1: by the policy; a fork: its parent's); its
 * cache slot empties. ROE_ERR_INVALID_ARG if no slot is free, the home is not a rank, a fork's
 * parent is not in the batch or has another prompt, stop strings come without a tokenizer, or
 * the prompt is empty or fills the context. */
roe_status roe_batch_admit(roe_batch *b, struct roe_batch_seq *s, int home);
/* Takes s out of the batch (its slot, load and KV blocks freed: its full blocks stay cached for
 * later prefixes); nothing if it is not in it. */
void roe_batch_remove(roe_batch *b, struct roe_batch_seq *s);

/* Whether s (the request part filled; n - 1 forks of it would follow) could be admitted now on
 * `home` (-1: the one the policy picks next) by KV blocks: the blocks of its prompt that the
 * cache does not hold (and the cached ones no sequence holds), one per fork, plus a watermark of
 * 1% of the pool must be free beyond what the running sequences still need up to their next
 * token; and no preempted sequence may be waiting (they go first). The slots are the caller's
 * to check (roe_batch_free_slots). */
int roe_batch_fits(const roe_batch *b, const struct roe_batch_seq *s, int n, int home);
/* Sequences preempted and waiting to recompute (in the batch, holding their slots). */
int roe_batch_parked(const roe_batch *b);
/* Preemptions so far. */
long roe_batch_preemptions(const roe_batch *b);
/* Positions found in the KV cache of `rank` (prefix hits) so far; rank -1: every rank's. */
long roe_batch_prefix_hit_tokens(const roe_batch *b, int rank);
/* Positions looked up there (each lookup's length - 1). */
long roe_batch_prefix_query_tokens(const roe_batch *b, int rank);

/* One step; info (may be NULL) receives what it did. On failure the sequences stay in the
 * batch: the caller decides (cluster.h: with several ranks the job must end). */
roe_status roe_batch_step(roe_batch *b, struct roe_batch_step_info *info);
/* Several ranks: an empty step, so that the others' bounded waits do not expire. */
roe_status roe_batch_heartbeat(roe_batch *b);

int roe_batch_count(const roe_batch *b);                      /* sequences in the batch */
struct roe_batch_seq *roe_batch_at(const roe_batch *b, int i); /* in admission order */
int roe_batch_ranks(const roe_batch *b);
int roe_batch_free_slots(const roe_batch *b);

#endif
