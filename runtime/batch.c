/* batch.c — the batching core: admission, step composition, sampling, retirement; see batch.h. */
#include "batch.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "aggregate.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "mor.h"

typedef enum group_kind {
    GROUP_FULL = 0,   /* clean row + K-1 samples: aggregate and emit */
    GROUP_CLEAN_ONLY, /* adaptive phase A: the clean row decides whether samples follow */
    GROUP_SAMPLES,    /* adaptive phase B: the K-1 samples of the position just cleaned */
    GROUP_PROMPT,     /* score_prompt: a prompt position's K rows, scored for the next prompt token */
} group_kind;

struct group {
    struct roe_batch_seq *s;
    int n;
    int pos;
    group_kind kind;
};

struct roe_batch {
    roe_engine *e;
    roe_cluster *cl;
    roe_sampler *sampler;
    struct roe_batch_opts o;
    int S, R, ctx, V, L, N;
    const int *eos; /* [n_eos] the model's end-of-sequence ids */
    int n_eos;
    int rr;                     /* round-robin cursor */
    struct roe_batch_seq **seqs; /* [S] in admission order */
    int n_seqs;
    int32_t *hist;              /* [S, ctx] each slot's known tokens: its prompt, then those emitted */
    int watermark;              /* blocks kept free when a sequence starts or resumes */
    long preemptions;
    uint8_t *slot_used;         /* [S] */
    double *load;               /* [N] work in flight per rank */
    struct roe_row *rows;       /* [R] the step's rows */
    struct group *groups;       /* [R] its token groups */
    struct roe_group *cgroups;  /* [R] the same, as the cluster reduces them */
    float *z;                   /* [R, V] each group's aggregated scores (depth batching: a tick's logits) */
    /* depth_batching (batch.h): on when the engine runs MoR in one process */
    int depth;
    int mor;                    /* a MoR engine: worst-case reservation, no preemption (demand) */
    struct roe_batch_seq **slot_seq; /* [S] the sequence in each slot (NULL: free or draining) */
    struct roe_batch_seq **dq;  /* [S] tokens to submit once the step's plain rows ran */
    int n_dq;
    struct roe_row *done;       /* [R] a tick's finished rows */
};

enum { SLOT_FREE = 0, SLOT_USED = 1, SLOT_DRAINING = 2 }; /* draining: removed, its token still in flight */

struct roe_batch_opts roe_batch_opts_default(void) {
    return (struct roe_batch_opts){.policy = ROE_HOME_ROUND_ROBIN};
}

/* The batch's arrays (S = max_seqs, R = max_rows, V = vocabulary, N = ranks). */
#define BATCH_ARRAYS(b)                                                                            \
    {ROE_ARRAY((b)->seqs, (b)->S),   ROE_ARRAY((b)->slot_used, (b)->S), ROE_ARRAY((b)->load, (b)->N), \
     ROE_ARRAY((b)->rows, (b)->R),   ROE_ARRAY((b)->groups, (b)->R),    ROE_ARRAY((b)->cgroups, (b)->R), \
     ROE_ARRAY((b)->z, (size_t)(b)->R * (b)->V), ROE_ARRAY((b)->hist, (size_t)(b)->S * (b)->ctx), \
     ROE_ARRAY((b)->slot_seq, (b)->S), ROE_ARRAY((b)->dq, (b)->S), ROE_ARRAY((b)->done, (b)->R)}

void roe_batch_free(roe_batch *b) {
    if (!b) return;
    const struct roe_array arrays[] = BATCH_ARRAYS(b);
    roe_arrays_free(arrays, ROE_N_OF(arrays));
    roe_sampler_free(b->sampler);
    roe_cluster_free(b->cl);
    roe_free(b);
}

roe_status roe_batch_create(roe_engine *engine, const struct roe_batch_opts *opts, roe_batch **out) {
    *out = NULL;
    const struct roe_engine_opts *eo = roe_engine_get_opts(engine);
    const struct roe_model_config *c = &roe_engine_model(engine)->cfg;
    roe_batch *b = roe_calloc(1, sizeof *b);
    if (!b) return roe_fail(ROE_ERR_NOMEM, "batch: out of memory");
    roe_status st;
    b->e = engine;
    b->o = *opts;
    b->S = eo->max_seqs;
    b->R = eo->max_rows;
    b->ctx = eo->max_ctx;
    b->V = c->vocab_size;
    b->L = c->n_layers;
    b->eos = c->eos_ids;
    b->n_eos = c->n_eos;
    ROE_CHECK(roe_sampler_create(b->V, &b->sampler));
    ROE_CHECK(roe_cluster_create(engine, &b->cl));
    b->N = roe_cluster_size(b->cl);
    const struct roe_array arrays[] = BATCH_ARRAYS(b);
    ROE_CHECK(roe_arrays_alloc(arrays, ROE_N_OF(arrays), "batch"));
    /* vLLM's watermark: 1% of the pool (at least a block) stays free when sequences start */
    b->watermark = roe_cluster_kv(b->cl, 0)->n_blocks / 100;
    if (b->watermark < 1) b->watermark = 1;
    b->mor = roe_engine_is_mor(engine);
    b->depth = opts->depth_batching && b->mor && b->N == 1;
    *out = b;
    return ROE_OK;
fail:
    roe_batch_free(b);
    return st;
}

int roe_batch_count(const roe_batch *b) { return b->n_seqs; }
struct roe_batch_seq *roe_batch_at(const roe_batch *b, int i) { return b->seqs[i]; }
int roe_batch_ranks(const roe_batch *b) { return b->N; }
int roe_batch_free_slots(const roe_batch *b) {
    int n = 0;
    for (int i = 0; i < b->S; i++) n += b->slot_used[i] == SLOT_FREE;
    return n;
}

long roe_batch_preemptions(const roe_batch *b) { return b->preemptions; }

long roe_batch_prefix_query_tokens(const roe_batch *b, int rank) {
    long n = 0;
    for (int r = 0; r < b->N; r++)
        if (rank < 0 || r == rank) n += roe_cluster_kv(b->cl, r)->query_tokens;
    return n;
}

long roe_batch_prefix_hit_tokens(const roe_batch *b, int rank) {
    long n = 0;
    for (int r = 0; r < b->N; r++)
        if (rank < 0 || r == rank) n += roe_cluster_kv(b->cl, r)->hit_tokens;
    return n;
}

int roe_batch_parked(const roe_batch *b) {
    int n = 0;
    for (int i = 0; i < b->n_seqs; i++) n += b->seqs[i]->parked;
    return n;
}

static int roster_k(const struct roe_batch_seq *s) { return s->roster ? s->roster->k : 1; }
static int is_adaptive(const struct roe_batch_seq *s) {
    return s->roster && s->roster->k > 1 && s->roster->adaptive_entropy > 0.0f;
}

/* The home the policy gives the next sequence (pick_home: and moves the round-robin on). */
static int next_home(const roe_batch *b) {
    if (b->N == 1) return 0;
    if (b->o.policy == ROE_HOME_ROUND_ROBIN) return b->rr % b->N;
    int best = 0;
    for (int k = 1; k < b->N; k++)
        if (b->load[k] < b->load[best]) best = k;
    return best;
}

static int pick_home(roe_batch *b) {
    const int h = next_home(b);
    if (b->N > 1 && b->o.policy == ROE_HOME_ROUND_ROBIN) b->rr++;
    return h;
}

/* ---- blocks: admission and preemption (docs/KV.md "Admission and preemption") ---- */

/* The position of s's next token group: its known context (prompt, then the tokens emitted
 * but the last) is in the cache below it, and its input is the last known token. */
static int next_pos(const struct roe_batch_seq *s) { return s->n_prompt + s->n_tokens - 1; }
static const int32_t *known(const roe_batch *b, const struct roe_batch_seq *s) {
    return b->hist + (size_t)s->slot * b->ctx;
}

/* The positions s may hold at most: its prompt and max_tokens, within the context. */
static int worst_len(const roe_batch *b, const struct roe_batch_seq *s) {
    const long n = (long)s->n_prompt + s->max_tokens;
    return n < b->ctx ? (int)n : b->ctx;
}

/* Blocks s still needs on its home to run up to its next token group: its known context and
 * that group's position (a fork before its copy: one, the copy of its parent's partial last
 * block or its own first block; a parked sequence: none). */
static int demand(const roe_batch *b, const struct roe_batch_seq *s) {
    if (s->parked) return 0;
    if (b->mor) /* MoR: its blocks up to its last possible position, held from its admission on */
        return roe_kv_cache_blocks_needed(roe_cluster_kv(b->cl, s->home), s->slot, worst_len(b, s));
    if (s->fork_of && !s->forked) return 1;
    return roe_kv_cache_blocks_needed(roe_cluster_kv(b->cl, s->home), s->slot, next_pos(s) + 1);
}

/* Blocks free on `home` beyond what its running sequences still need (may be negative). */
static int spare(const roe_batch *b, int home) {
    int need = 0;
    for (int i = 0; i < b->n_seqs; i++)
        if (b->seqs[i]->home == home) need += demand(b, b->seqs[i]);
    return roe_kv_cache_available(roe_cluster_kv(b->cl, home)) - need;
}

/* Whether s may start from cached blocks of other sequences: not a fork waiting for its parent,
 * and no prompt position left to score (echo needs every position's scores). */
static int may_reuse(const struct roe_batch_seq *s) {
    return (!s->fork_of || s->forked) && (!s->score_prompt || s->n_tokens > 0);
}

/* Blocks s takes when it starts (or resumes) on `home` with `n` known tokens: those of its
 * positions up to its first token group that the cache does not hold, and the cached ones that
 * no sequence holds (they stop being evictable). */
static int start_blocks(const roe_batch *b, const struct roe_batch_seq *s, const int32_t *tokens, int n, int home) {
    const int bs = roe_cluster_kv(b->cl, home)->block_size;
    if (b->mor) return (worst_len(b, s) + bs - 1) / bs; /* (no prefix reuse in MoR's pools) */
    int unref = 0;
    const int hit = may_reuse(s) ? roe_cluster_prefix_probe(b->cl, home, tokens, n, &unref) : 0;
    return (n + bs - 1) / bs - hit / bs + unref;
}

int roe_batch_fits(const roe_batch *b, const struct roe_batch_seq *s, int n, int home) {
    if (roe_batch_parked(b) > 0) return 0; /* preempted sequences go first */
    if (home < 0) home = next_home(b);
    const int one = start_blocks(b, s, s->prompt, s->n_prompt, home);
    const int need = b->mor ? one * n : one + (n - 1); /* forks: a block each (MoR: their worst case) */
    return need + b->watermark <= spare(b, home);
}

/* Preempts s: its blocks go back (its full blocks stay cached, so recomputing them is a prefix
 * hit while nothing evicts them), and it waits, in its place in the batch, to recompute its known
 * context and go on. Its tokens so far and its stop-string state are kept; since the engine is
 * batch-invariant and sampling and RoE noise are keyed on (seed, position), it goes on with the
 * tokens it would have had. */
static roe_status preempt(roe_batch *b, struct roe_batch_seq *s, struct roe_batch_step_info *info) {
    ROE_TRY(roe_cluster_reset_seq(b->cl, s->slot, s->home));
    if (s->fed > s->refed) s->refed = s->fed;
    if (s->started) {
        b->preemptions++;
        info->preempted++;
    }
    s->parked = 1;
    s->fed = s->cached = s->pending = 0;
    s->forked = 1; /* a fork resumes on its own: its parent may be gone by then */
    return ROE_OK;
}

/* Parked s starts again from the longest cached prefix of its known context. */
static void resume(roe_batch *b, struct roe_batch_seq *s) {
    s->parked = 0;
    if (may_reuse(s)) s->fed = s->cached = roe_cluster_prefix_seq(b->cl, s->slot, known(b, s), next_pos(s) + 1);
}

/* Before a step is composed: on every home, the running sequences' demand must be free, else
 * the youngest running sequence there is preempted until it is (the oldest always fits: one
 * context fits the pool); then parked sequences resume, oldest first, while their blocks and the
 * watermark are free. */
static roe_status make_room(roe_batch *b, struct roe_batch_step_info *info) {
    for (int h = 0; h < b->N; h++)
        while (spare(b, h) < 0) {
            int young = -1;
            for (int i = 0; i < b->n_seqs; i++)
                if (b->seqs[i]->home == h && !b->seqs[i]->parked) young = i;
            if (young < 0) return roe_fail(ROE_ERR_INTERNAL, "batch: rank %d's blocks are short with nothing running", h);
            if (b->mor) /* its worst case was free at admission (demand): never short */
                return roe_fail(ROE_ERR_INTERNAL, "batch: a MoR engine's main pool is short on rank %d", h);
            ROE_TRY(preempt(b, b->seqs[young], info));
        }
    for (int i = 0; i < b->n_seqs; i++) {
        struct roe_batch_seq *s = b->seqs[i];
        if (!s->parked) continue;
        if (start_blocks(b, s, known(b, s), next_pos(s) + 1, s->home) + b->watermark > spare(b, s->home)) break;
        resume(b, s);
        info->resumed++;
    }
    return ROE_OK;
}

static int in_batch(const roe_batch *b, const struct roe_batch_seq *s) {
    for (int i = 0; i < b->n_seqs; i++)
        if (b->seqs[i] == s) return 1;
    return 0;
}

roe_status roe_batch_admit(roe_batch *b, struct roe_batch_seq *s, int home) {
    if (b->n_seqs == b->S)
        return roe_fail(ROE_ERR_INVALID_ARG, "batch: all %d sequence slots are taken", b->S);
    const struct roe_batch_seq *p = s->fork_of;
    if (p && (!in_batch(b, p) || p->n_prompt != s->n_prompt ||
              memcmp(p->prompt, s->prompt, (size_t)s->n_prompt * sizeof *s->prompt) != 0))
        return roe_fail(ROE_ERR_INVALID_ARG, "batch: a fork's parent must be in the batch, with the same prompt");
    if (s->stop_text && !b->o.tok)
        return roe_fail(ROE_ERR_INVALID_ARG, "batch: stop strings need a tokenizer");
    if (p) home = p->home;
    if (home >= b->N)
        return roe_fail(ROE_ERR_INVALID_ARG, "batch: home rank %d is outside [0, %d)", home, b->N);
    int slot = 0;
    while (slot < b->S && b->slot_used[slot])
        slot++;
    if (slot == b->S) /* depth batching: a removed sequence's last token still runs in its slot */
        return roe_fail(ROE_ERR_OVERLOADED, "batch: every free slot waits for a token in flight");
    if (s->n_prompt < 1 || s->n_prompt >= b->ctx)
        return roe_fail(ROE_ERR_INVALID_ARG, "batch: a prompt of %d tokens in a context of %d", s->n_prompt, b->ctx);
    if (home < 0) home = pick_home(b);
    ROE_TRY(roe_cluster_reset_seq(b->cl, slot, home));
    b->slot_used[slot] = SLOT_USED;
    b->slot_seq[slot] = s;
    s->in_flight = 0;
    s->slot = slot;
    s->home = home;
    s->fed = s->n_tokens = s->pending = s->cached = s->forked = 0;
    s->parked = s->started = s->refed = 0;
    memcpy(b->hist + (size_t)slot * b->ctx, s->prompt, (size_t)s->n_prompt * sizeof *s->prompt);
    if (may_reuse(s)) /* a cached prefix of the prompt (kv_cache.h): not recomputed */
        s->fed = s->cached = roe_cluster_prefix_seq(b->cl, slot, s->prompt, s->n_prompt);
    s->last = -1;
    memset(&s->stop, 0, sizeof s->stop);
    s->stop_at = -1;
    s->cost = (double)(s->n_prompt + s->max_tokens) * roster_k(s);
    b->load[home] += s->cost;
    b->seqs[b->n_seqs++] = s;
    return ROE_OK;
}

void roe_batch_remove(roe_batch *b, struct roe_batch_seq *s) {
    int i = 0;
    while (i < b->n_seqs && b->seqs[i] != s)
        i++;
    if (i == b->n_seqs) return;
    memmove(b->seqs + i, b->seqs + i + 1, (size_t)(b->n_seqs - i - 1) * sizeof *b->seqs);
    b->n_seqs--;
    b->slot_seq[s->slot] = NULL;
    b->load[s->home] -= s->cost;
    for (int k = 0; k < b->n_dq; k++) /* not submitted yet: forgotten */
        if (b->dq[k] == s) b->dq[k--] = b->dq[--b->n_dq], s->in_flight = 0;
    if (s->in_flight) { /* the slot is free once the engine gives its token back (tick_deliver) */
        b->slot_used[s->slot] = SLOT_DRAINING;
        return;
    }
    b->slot_used[s->slot] = SLOT_FREE;
    /* its KV blocks go back to the pool now (its full blocks stay cached for later prefixes) */
    (void)roe_cluster_reset_seq(b->cl, s->slot, s->home);
}

/* ---- composing a step ---- */

struct compose {
    int nr, ng;
    struct roe_batch_step_info *info;
};

/* Adds s's next token group (position p, input token t) to the step. */
static void add_group(roe_batch *b, struct roe_batch_seq *s, int p, int32_t t, group_kind kind,
                      struct compose *cp) {
    const int s0 = kind == GROUP_SAMPLES ? 1 : 0, s1 = kind == GROUP_CLEAN_ONLY ? 1 : roster_k(s);
    b->groups[cp->ng] = (struct group){.s = s, .n = s1 - s0, .pos = p, .kind = kind};
    /* FULL: the K rows' mean; CLEAN_ONLY: the clean row, kept on the home rank in case its
     * samples follow; SAMPLES: the kept clean row with the K-1 samples */
    b->cgroups[cp->ng++] = (struct roe_group){
        .first = cp->nr, .n = s1 - s0,
        .mode = ROE_GROUP_MEAN | (kind == GROUP_CLEAN_ONLY ? ROE_GROUP_STORE_CLEAN : 0) |
                (kind == GROUP_SAMPLES ? ROE_GROUP_WITH_CLEAN : 0)};
    for (int smp = s0; smp < s1; smp++)
        b->rows[cp->nr++] = (struct roe_row){.seq = s->slot, .pos = p, .token = t, .sample = smp,
                                             .want_logits = 1, .seed = s->sampling.seed,
                                             .roster = s->roster};
    cp->info->positions += p;
    cp->info->kv_rows += roe_config_kv_rows_read(&roe_engine_model(b->e)->cfg, p);
}

/* s's next token group, if s has its whole prompt but the last position in the cache and the
 * group fits in the step. */
static void try_group(roe_batch *b, struct roe_batch_seq *s, struct compose *cp) {
    if (s->parked || s->fed < next_pos(s) || s->in_flight) return;
    const int k = roster_k(s);
    const group_kind kind = s->pending ? GROUP_SAMPLES : is_adaptive(s) ? GROUP_CLEAN_ONLY : GROUP_FULL;
    const int need = kind == GROUP_SAMPLES ? k - 1 : kind == GROUP_CLEAN_ONLY ? 1 : k;
    if (cp->nr + need > b->R) return; /* the group waits for the next step, whole */
    /* the group predicts token n_tokens from the input at position n_prompt + n_tokens - 1:
     * the last prompt token first, then each token emitted; adaptive samples (phase B) run at
     * the position their clean row ran at in the step before */
    const int p = next_pos(s);
    const int32_t t = known(b, s)[p];
    if (s->fed == p) { /* (the samples of adaptive K follow their clean row: fed is past p) */
        s->fed++;
        if (p >= s->refed && p < s->n_prompt) cp->info->prompt_tokens++;
    }
    s->started = 1;
    if (kind != GROUP_SAMPLES) cp->info->rows_naive += (long)k * b->L;
    if (b->depth && k == 1 && !s->score_prompt) { /* to the depth-wise batch, after the step's rows */
        s->in_flight = 1;
        b->dq[b->n_dq++] = s;
        return;
    }
    add_group(b, s, p, t, kind, cp);
}

/* A fork waits until its parent's cache holds the prompt but its last position (a step ago),
 * then starts from it: 1 when s may run (it is no fork, or it has forked). */
static int fork_ready(roe_batch *b, struct roe_batch_seq *s, roe_status *st) {
    if (!s->fork_of || s->forked) return 1;
    const struct roe_batch_seq *p = s->fork_of;
    if (p->cached < s->n_prompt - 1) return 0;
    *st = roe_cluster_fork_seq(b->cl, s->slot, p->slot, s->n_prompt - 1);
    if (*st != ROE_OK) return 0;
    s->forked = 1;
    s->fed = s->cached = s->n_prompt - 1;
    return 1;
}

/* s's known context below its next token group: plain rows, or with score_prompt a scored
 * group for each prompt position not scored yet (a preempted sequence recomputes the rest). */
static void prompt_rows(roe_batch *b, struct roe_batch_seq *s, struct compose *cp) {
    const int k = roster_k(s);
    const int32_t *t = known(b, s);
    while (s->fed < next_pos(s) && cp->nr < b->R) {
        const int p = s->fed;
        if (s->score_prompt && p >= s->refed && p < s->n_prompt - 1) {
            if (cp->nr + k > b->R) break;
            add_group(b, s, p, t[p], GROUP_PROMPT, cp);
            cp->info->rows_naive += (long)k * b->L;
        } else {
            b->rows[cp->nr++] = (struct roe_row){.seq = s->slot, .pos = p, .token = t[p]};
            cp->info->rows_naive += b->L;
        }
        if (p >= s->refed && p < s->n_prompt) cp->info->prompt_tokens++;
        else cp->info->recomputed++;
        s->fed++;
        s->started = 1;
    }
}

/* Whether s is decoding: it has its known context in the cache and has emitted a token, or its
 * adaptive samples are owed (fed is then one past its group's position). Otherwise, unless
 * parked, it is in prefill (or recomputing after a preemption), its first group still to come. */
static int decoding(const struct roe_batch_seq *s) {
    return !s->parked && (s->fed > next_pos(s) || (s->fed == next_pos(s) && s->n_tokens > 0));
}

/* Token groups of the decoding sequences, then prompt chunks first come first served. */
static roe_status compose(roe_batch *b, struct compose *cp) {
    ROE_TRY(make_room(b, cp->info));
    int prefilling = 0;
    for (int i = 0; i < b->n_seqs; i++) prefilling |= !b->seqs[i]->parked && !decoding(b->seqs[i]);
    if (!(b->o.prefill_first && prefilling))
        for (int i = 0; i < b->n_seqs; i++)
            if (decoding(b->seqs[i])) try_group(b, b->seqs[i], cp);
    roe_status st = ROE_OK;
    for (int i = 0; i < b->n_seqs && cp->nr < b->R; i++) {
        struct roe_batch_seq *s = b->seqs[i];
        if (s->parked || decoding(s)) continue;
        if (!fork_ready(b, s, &st)) {
            if (st != ROE_OK) return st;
            continue;
        }
        prompt_rows(b, s, cp);
        try_group(b, s, cp);
    }
    return ROE_OK;
}

/* ---- after the step ---- */

/* 1 if token t completes one of s's stop strings (s->stop_at: where it begins). */
static int stop_text(const roe_batch *b, struct roe_batch_seq *s, int32_t t) {
    const char *bytes;
    size_t n;
    if (!s->stop_text || roe_tokenizer_is_special(b->o.tok, t) ||
        roe_tokenizer_token_bytes(b->o.tok, t, &bytes, &n) != ROE_OK)
        return 0;
    s->stop_at = roe_stop_feed(s->stop_text, &s->stop, bytes, n);
    return s->stop_at >= 0;
}

/* Picks s's next token from z, works out whether s ended, and hands it to the user. */
static void emit(roe_batch *b, struct roe_batch_seq *s, const float *z) {
    const int pos = s->n_prompt + s->n_tokens;
    const int32_t t = roe_sampler_pick(b->sampler, &s->sampling, z, pos);
    int end = 0;
    roe_finish fin = ROE_FINISH_LENGTH;
    for (int j = 0; s->stop_at_eos && j < b->n_eos && !end; j++)
        if (t == b->eos[j]) end = 1, fin = ROE_FINISH_EOS;
    for (int j = 0; j < s->n_stop && !end; j++)
        if (t == s->stop_ids[j]) end = 1, fin = ROE_FINISH_EOS;
    b->hist[(size_t)s->slot * b->ctx + pos] = t; /* pos < ctx: the sequence ends at ctx - 1 */
    s->n_tokens++;
    s->last = t;
    if (!end && stop_text(b, s, t)) end = 1, fin = ROE_FINISH_EOS;
    if (!end && (s->n_tokens >= s->max_tokens || pos + 1 >= b->ctx)) end = 1;
    if (end) roe_batch_remove(b, s);
    if (b->o.hooks.on_token) b->o.hooks.on_token(b->o.hooks.ctx, s, t, z, end, fin);
}

/* The index of the first score that is NaN or infinite, or -1. */
static int non_finite(const float *z, int n) {
    for (int v = 0; v < n; v++)
        if (!isfinite(z[v])) return v;
    return -1;
}

/* A group's scores with NaN or Inf: the sequence fails instead of sampling garbage (the model's
 * weights or activations overflowed). 1 if g's sequence failed (and left the batch). */
static int check_scores(roe_batch *b, const struct group *g, const float *z, roe_status *st) {
    const int v = non_finite(z, b->V);
    if (v < 0) return 0;
    struct roe_batch_seq *s = g->s;
    char why[256];
    snprintf(why, sizeof why,
             "the model produced non-finite scores (%s for token %d) at position %d: its weights or "
             "activations overflowed (roe inspect --check-weights scans a checkpoint for NaN/Inf)",
             isnan(z[v]) ? "NaN" : "Inf", v, g->pos);
    if (!b->o.hooks.on_fail) {
        *st = roe_fail(ROE_ERR_INTERNAL, "%s", why);
        return 1;
    }
    roe_batch_remove(b, s);
    b->o.hooks.on_fail(b->o.hooks.ctx, s, ROE_ERR_INTERNAL, why);
    return 1;
}

/* Hands out the step's groups: prompt scores, adaptive decisions, tokens. */
static roe_status deliver(roe_batch *b, int ng) {
    roe_status st = ROE_OK;
    for (int gi = 0; gi < ng; gi++) {
        const struct group *g = &b->groups[gi];
        struct roe_batch_seq *s = g->s;
        const float *z = b->z + (size_t)gi * b->V; /* every group's output is one vocab row */
        if (!in_batch(b, s)) continue; /* failed at an earlier group of this step */
        if (check_scores(b, g, z, &st)) {
            if (st != ROE_OK) return st;
            continue;
        }
        if (g->kind == GROUP_PROMPT) {
            if (b->o.hooks.on_prompt) b->o.hooks.on_prompt(b->o.hooks.ctx, s, g->pos, z);
            continue;
        }
        if (g->kind == GROUP_CLEAN_ONLY && roe_entropy(z, b->V) > (double)s->roster->adaptive_entropy) {
            s->pending = 1; /* the samples run next step; the token waits for them */
            continue;
        }
        s->pending = 0;
        emit(b, s, z);
    }
    return ROE_OK;
}

/* Depth batching: the queued tokens submitted and one tick, its logits after the step's groups'
 * (z from row ng on); *nd tokens left the shared block (b->done). */
static roe_status tick_run(roe_batch *b, int ng, struct roe_batch_step_info *info, int *nd) {
    *nd = 0;
    for (int k = 0; k < b->n_dq; k++) {
        struct roe_batch_seq *s = b->dq[k];
        const struct roe_row r = {.seq = s->slot, .pos = s->n_prompt + s->n_tokens - 1, .want_logits = 1,
                                  .token = s->n_tokens == 0 ? s->prompt[s->n_prompt - 1] : s->last};
        const roe_status st = roe_cluster_mor_submit(b->cl, &r);
        if (st != ROE_OK) { /* the rest never reach the engine */
            for (int j = k; j < b->n_dq; j++) b->dq[j]->in_flight = 0;
            b->n_dq = 0;
            return st;
        }
        info->positions += r.pos;
        info->samples++;
    }
    b->n_dq = 0;
    const int width = b->R - ng < b->S ? b->R - ng : b->S; /* its logits fit z after the groups' */
    if (roe_engine_mor_pending(b->e) == 0 || width < 1) return ROE_OK;
    const double t0 = roe_now_s();
    ROE_TRY(roe_cluster_mor_tick(b->cl, width, b->done, nd, b->z + (size_t)ng * b->V));
    info->seconds += roe_now_s() - t0;
    info->rows += roe_engine_last_stats(b->e).rows;
    info->stats.rows_computed += roe_engine_last_stats(b->e).rows_computed;
    return ROE_OK;
}

/* The tokens a tick finished, emitted like finished groups (a removed sequence's: its slot freed). */
static roe_status tick_deliver(roe_batch *b, int ng, int nd) {
    roe_status st = ROE_OK;
    for (int i = 0; i < nd && st == ROE_OK; i++) {
        const int slot = b->done[i].seq;
        struct roe_batch_seq *s = b->slot_seq[slot];
        if (b->slot_used[slot] == SLOT_DRAINING) {
            b->slot_used[slot] = SLOT_FREE;
            (void)roe_cluster_reset_seq(b->cl, slot, 0); /* its KV blocks go back (roe_batch_remove) */
            continue;
        }
        s->in_flight = 0;
        s->cached = s->fed;
        const struct group g = {.s = s, .n = 1, .pos = b->done[i].pos, .kind = GROUP_FULL};
        const float *z = b->z + (size_t)(ng + i) * b->V;
        if (!check_scores(b, &g, z, &st)) emit(b, s, z);
    }
    return st;
}

roe_status roe_batch_step(roe_batch *b, struct roe_batch_step_info *info) {
    struct roe_batch_step_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    struct compose cp = {.info = info};
    ROE_TRY(compose(b, &cp));
    info->rows = cp.nr;
    info->groups = cp.ng;
    if (cp.nr > 0) {
        const double t0 = roe_now_s();
        ROE_TRY(roe_cluster_step(b->cl, b->rows, cp.nr, b->cgroups, cp.ng, b->z, &info->stats));
        info->seconds = roe_now_s() - t0;
        for (int i = 0; i < b->n_seqs; i++)
            if (!b->seqs[i]->in_flight) b->seqs[i]->cached = b->seqs[i]->fed;
        for (int gi = 0; gi < cp.ng; gi++) info->samples += b->groups[gi].kind == GROUP_PROMPT ? 0 : b->groups[gi].n;
    }
    int nd = 0;
    if (b->depth) ROE_TRY(tick_run(b, cp.ng, info, &nd));
    if (cp.nr == 0 && info->rows == 0) return ROE_OK;
    /* the step's figures first: a user that sees a sequence end may read them at once */
    if (b->o.hooks.on_step) b->o.hooks.on_step(b->o.hooks.ctx, info);
    ROE_TRY(deliver(b, cp.ng));
    return tick_deliver(b, cp.ng, nd);
}

roe_status roe_batch_heartbeat(roe_batch *b) {
    return roe_cluster_step(b->cl, NULL, 0, NULL, 0, b->z, NULL);
}
