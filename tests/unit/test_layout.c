/*
 * test_layout.c — the dispatch layout (comm/layout.h) on random routings: for several rank
 * counts, placements (uneven, ranks owning nothing), RoE-style masks and degenerate cases
 * (every row to one expert, no rows at all), every rank's send plan is checked against a
 * brute-force reading of the routing, and every receiver's task list against what the
 * senders' plans say they send.
 */
#include <stdint.h>

#include "comm/layout.h"
#include "harness.h"
#include "base/philox.h"

enum { MAXN = 6, MAXE = 64, MAXS = 48, MAXK = 8 };

static uint32_t rnd(uint64_t *state) {
    struct roe_philox_out o = roe_philox4x32((uint32_t)*state, (uint32_t)(*state >> 32), 7, 11, 0xC0FFEE, 3);
    (*state)++;
    return o.v[0];
}

struct rank_plan {
    int n_slots;
    int32_t sel[MAXS * MAXK];
    uint8_t active[MAXS * MAXK];
    int rows[MAXN], pairs[MAXN], row_off[MAXN + 1], pair_off[MAXN + 1];
    int row_slot[MAXS * MAXK], pair_id[MAXS * MAXK], pair_row[MAXS * MAXK], counts[MAXE];
};

static struct rank_plan plans[MAXN];

/* One scenario: N ranks, E experts, top-k K, owner map, slots per rank, masking mode
 * (0 none, 1 random RoE-style dedup, 2 NULL), `one`: every pair to expert 0 (K = 1). */
static int scenario(uint64_t seed, int N, int E, int K, const int *owner, int mask, int one) {
    int local[MAXE], n_local[MAXN], base[MAXN + 1];
    struct roe_layout_map m;
    if (roe_layout_map_build(N, E, owner, local, n_local, base, &m) != ROE_OK) {
        TEST__FAIL("map build: %s", roe_error_message());
        return 1;
    }
    uint64_t st = seed;
    /* every rank routes its own slots and plans its sends */
    for (int r = 0; r < N; r++) {
        struct rank_plan *P = &plans[r];
        P->n_slots = (int)(rnd(&st) % (MAXS + 1));
        if (rnd(&st) % 5 == 0) P->n_slots = 0; /* ranks with no rows */
        for (int j = 0; j < P->n_slots; j++) {
            for (int k = 0; k < K; k++) {
                int e;
                for (;;) { /* distinct experts within a slot */
                    e = one ? 0 : (int)(rnd(&st) % (uint32_t)E);
                    int dup = 0;
                    for (int q = 0; q < k; q++) dup |= P->sel[j * K + q] == e;
                    if (!dup) break;
                }
                P->sel[j * K + k] = e;
                /* RoE: a forked slot's pairs shared with its parent are computed once */
                P->active[j * K + k] = mask == 1 ? (rnd(&st) % 4 != 0) : 1;
            }
        }
        struct roe_layout_send out = {P->rows, P->pairs, P->row_off, P->pair_off, P->row_slot,
                                      P->pair_id, P->pair_row, P->counts};
        int scratch[2 * MAXN];
        roe_layout_plan_send(&m, P->n_slots, K, P->sel, mask == 2 ? NULL : P->active, &out, scratch);
        /* brute force: the sends to each destination */
        int total = 0;
        for (int d = 0; d < N; d++) {
            int want_rows = 0, want_pairs = 0, last_slot = -1;
            for (int j = 0; j < P->n_slots; j++) {
                int hit = 0;
                for (int k = 0; k < K; k++)
                    if (P->active[j * K + k] && owner[P->sel[j * K + k]] == d) {
                        hit = 1;
                        want_pairs++;
                    }
                if (!hit) continue;
                if (want_rows >= P->rows[d] || P->row_slot[P->row_off[d] + want_rows] != j) {
                    TEST__FAIL("seed %llu rank %d -> %d: row %d should be slot %d", (unsigned long long)seed,
                               r, d, want_rows, j);
                    return 1;
                }
                if (j <= last_slot) {
                    TEST__FAIL("rows to %d not ascending", d);
                    return 1;
                }
                last_slot = j;
                want_rows++;
            }
            if (want_rows != P->rows[d] || want_pairs != P->pairs[d]) {
                TEST__FAIL("seed %llu rank %d -> %d: %d rows %d pairs, want %d / %d", (unsigned long long)seed,
                           r, d, P->rows[d], P->pairs[d], want_rows, want_pairs);
                return 1;
            }
            if (P->row_off[d] != (d ? P->row_off[d - 1] + P->rows[d - 1] : 0) ||
                P->pair_off[d] != (d ? P->pair_off[d - 1] + P->pairs[d - 1] : 0)) {
                TEST__FAIL("offsets of destination %d", d);
                return 1;
            }
            int seen_x = -1, seen_slot = -1, per_x[MAXE] = {0};
            for (int i = P->pair_off[d]; i < P->pair_off[d] + P->pairs[d]; i++) {
                const int p = P->pair_id[i], j = p / K, e = P->sel[p], x = local[e];
                if (owner[e] != d || !P->active[p]) {
                    TEST__FAIL("pair %d (expert %d, owner %d) listed for rank %d", p, e, owner[e], d);
                    return 1;
                }
                if (x < seen_x || (x == seen_x && j <= seen_slot)) {
                    TEST__FAIL("pairs to %d not ordered by (local expert, slot)", d);
                    return 1;
                }
                seen_x = x;
                seen_slot = j;
                if (P->row_slot[P->row_off[d] + P->pair_row[i]] != j) {
                    TEST__FAIL("pair_row of pair %d does not point at slot %d", p, j);
                    return 1;
                }
                per_x[x]++;
            }
            for (int x = 0; x < n_local[d]; x++)
                if (per_x[x] != P->counts[base[d] + x]) {
                    TEST__FAIL("counts[%d, %d] = %d, want %d", d, x, P->counts[base[d] + x], per_x[x]);
                    return 1;
                }
            total += P->pairs[d];
        }
        int active = 0;
        for (int p = 0; p < P->n_slots * K; p++) active += P->active[p];
        if (total != active) {
            TEST__FAIL("rank %d: %d pairs planned, %d active", r, total, active);
            return 1;
        }
    }
    /* every receiver's task list against the senders' plans */
    for (int me = 0; me < N; me++) {
        const int X = n_local[me];
        int from[MAXN * MAXE], off[MAXE + 1], src[MAXN * MAXS * MAXK], idx[MAXN * MAXS * MAXK], sp[MAXN];
        for (int s = 0; s < N; s++)
            for (int x = 0; x < X; x++) from[s * X + x] = plans[s].counts[base[me] + x];
        int n = roe_layout_plan_recv(&m, me, from, off, src, idx, sp);
        int want = 0;
        for (int s = 0; s < N; s++) {
            want += plans[s].pairs[me];
            if (sp[s] != plans[s].pairs[me]) {
                TEST__FAIL("receiver %d: %d pairs from %d, sender says %d", me, sp[s], s, plans[s].pairs[me]);
                return 1;
            }
        }
        if (n != want || off[X] != n) {
            TEST__FAIL("receiver %d: %d entries, want %d", me, n, want);
            return 1;
        }
        static uint8_t used[MAXN][MAXS * MAXK];
        memset(used, 0, sizeof used);
        for (int x = 0; x < X; x++)
            for (int i = off[x]; i < off[x + 1]; i++) {
                const struct rank_plan *P = &plans[src[i]];
                if (idx[i] < 0 || idx[i] >= P->pairs[me]) {
                    TEST__FAIL("receiver %d: entry index %d outside %d", me, idx[i], P->pairs[me]);
                    return 1;
                }
                const int p = P->pair_id[P->pair_off[me] + idx[i]];
                if (owner[P->sel[p]] != me || local[P->sel[p]] != x || used[src[i]][idx[i]]++) {
                    TEST__FAIL("receiver %d: entry %d (from %d) is expert %d, task of local expert %d", me, i,
                               src[i], P->sel[p], x);
                    return 1;
                }
                if (i > off[x] && (src[i] < src[i - 1] || (src[i] == src[i - 1] && idx[i] <= idx[i - 1]))) {
                    TEST__FAIL("receiver %d: entries of expert %d not ordered by (source, index)", me, x);
                    return 1;
                }
            }
    }
    return 0;
}

TEST(random_routings) {
    uint64_t st = 42;
    int runs = 0;
    for (int it = 0; it < 400; it++) {
        const int N = 1 + (int)(rnd(&st) % MAXN);
        const int Es[] = {1, 2, 3, 8, 16, 64};
        const int E = Es[rnd(&st) % 6];
        const int K = 1 + (int)(rnd(&st) % (uint32_t)(E < MAXK ? E : MAXK));
        int owner[MAXE];
        const int kind = (int)(rnd(&st) % 3);
        for (int e = 0; e < E; e++) /* contiguous, random, or all on one rank */
            owner[e] = kind == 0 ? (int)((long)e * N / E) : kind == 1 ? (int)(rnd(&st) % (uint32_t)N) : N - 1;
        if (scenario(st * 7919u + (uint64_t)it, N, E, K, owner, (int)(rnd(&st) % 3), 0)) return;
        runs++;
    }
    ASSERT_EQ_INT(runs, 400);
}

TEST(every_row_to_one_expert) {
    const int owner[8] = {0, 0, 1, 1, 2, 2, 3, 3};
    for (int N = 1; N <= 4; N++) {
        int o[8];
        for (int e = 0; e < 8; e++) o[e] = owner[e] % N;
        if (scenario(1000 + (uint64_t)N, N, 8, 1, o, 0, 1)) return;
    }
    /* the one expert on a rank that has no rows of its own */
    int o3[8] = {2, 0, 0, 1, 1, 1, 1, 1};
    if (scenario(77, 3, 8, 1, o3, 2, 1)) return;
}

TEST(empty_ranks_and_no_slots) {
    /* 6 ranks, 3 experts: ranks 3..5 own nothing */
    int owner[3] = {0, 1, 2};
    for (int s = 0; s < 20; s++)
        if (scenario(500 + (uint64_t)s, 6, 3, 2, owner, 1, 0)) return;
    int local[3], n_local[6], base[7];
    struct roe_layout_map m;
    ASSERT_OK(roe_layout_map_build(6, 3, owner, local, n_local, base, &m));
    ASSERT_EQ_INT(n_local[4], 0);
    ASSERT_EQ_INT(base[6], 3);
    /* zero slots: nothing to anyone */
    struct rank_plan *P = &plans[0];
    struct roe_layout_send out = {P->rows, P->pairs, P->row_off, P->pair_off, P->row_slot, P->pair_id,
                                  P->pair_row, P->counts};
    int scratch[12];
    roe_layout_plan_send(&m, 0, 2, P->sel, NULL, &out, scratch);
    for (int d = 0; d < 6; d++) ASSERT_EQ_INT(P->rows[d] + P->pairs[d], 0);
    int bad[3] = {0, 6, 1};
    ASSERT_FAILS_WITH(roe_layout_map_build(6, 3, bad, local, n_local, base, &m), ROE_ERR_INVALID_ARG,
                      "expert 1 is placed on rank 6");
}

int main(void) {
    RUN(random_routings);
    RUN(every_row_to_one_expert);
    RUN(empty_ranks_and_no_slots);
    return test_summary();
}
