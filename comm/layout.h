/*
 * layout.h — the dispatch layout of expert parallelism: a pure function from (rows, the
 * experts each chose, where experts live) to who sends what to whom and how the receiver
 * groups it. No transport, no model: unit-tested on random routings (tests/unit/test_layout.c).
 *
 * Vocabulary. A *slot* is one row's activation on its home rank (RoE samples that still
 * share their clean row's state are one slot). A *pair* (slot, k) asks expert sel[slot*K+k]
 * to process the slot; pairs already computed elsewhere (RoE: identical (row, expert)
 * pairs) are masked out by `active`. Experts are numbered globally 0..E-1; the rank that
 * owns expert e knows it as its local expert local[e] (experts of a rank in ascending id).
 *
 * Sender side (roe_layout_plan_send), for each destination rank d:
 *   rows[d]        distinct slots with at least one active pair owned by d, ascending;
 *                  each is sent once whatever number of d's experts it chose
 *   pairs[d]       active pairs owned by d, ordered by (d's local expert, slot)
 *   pair_row[i]    the position of pair i's slot among rows[d] (what d is told per pair)
 *   counts         pairs per (d, local expert): what the count exchange tells d
 * All lists are concatenated by destination in rank order (offsets row_off / pair_off).
 *
 * Receiver side (roe_layout_plan_recv): from the counts every source sent (pairs per local
 * expert), the task list of each local expert: entries (source, index in that source's
 * pair list), ordered by source rank then index. Every expert's rows are thus computed in
 * an order fixed by the routing alone, and each row's output travels back to its home,
 * which sums a row's experts in its own slot order (bit-identical to one process).
 */
#ifndef ROE_LAYOUT_H
#define ROE_LAYOUT_H

#include <stdint.h>

#include "base/status.h"

/* Where one MoE layer's experts live. Arrays are borrowed. */
struct roe_layout_map {
    int n_ranks;
    int n_experts;
    const int *owner;   /* [n_experts] rank owning expert e */
    const int *local;   /* [n_experts] e's index among its owner's experts (ascending ids) */
    const int *n_local; /* [n_ranks] experts owned by each rank (0 allowed) */
    const int *base;    /* [n_ranks + 1] prefix sums of n_local: bucket of (d, x) = base[d] + x */
};

/* Fills local[E], n_local[N], base[N+1] from owner[E]; fails on an owner outside [0, N). */
roe_status roe_layout_map_build(int n_ranks, int n_experts, const int *owner, int *local,
                                int *n_local, int *base, struct roe_layout_map *out);

/* Output arrays of the sender's plan, sized by the caller (capacities in comments). */
struct roe_layout_send {
    int *rows;     /* [n_ranks] distinct slots to each destination */
    int *pairs;    /* [n_ranks] pairs to each destination */
    int *row_off;  /* [n_ranks + 1] */
    int *pair_off; /* [n_ranks + 1] */
    int *row_slot; /* [n_slots * min(top_k, n_ranks)] the slots, by destination, ascending */
    int *pair_id;  /* [n_slots * top_k] pair = slot * top_k + k, by destination, local expert, slot */
    int *pair_row; /* [n_slots * top_k] index of the pair's slot among its destination's rows */
    int *counts;   /* [base[n_ranks]] pairs per (destination, local expert) */
};

/* sel[n_slots * top_k] holds expert ids (distinct within a slot); active may be NULL (all
 * pairs active). scratch: [2 * n_ranks] ints. */
void roe_layout_plan_send(const struct roe_layout_map *m, int n_slots, int top_k,
                          const int32_t *sel, const uint8_t *active, struct roe_layout_send *out,
                          int *scratch);

/* The receiver's plan for rank `me`. from[s * n_local + x] = pairs source s sends for local
 * expert x (n_local = m->n_local[me]). Outputs:
 *   task_off[n_local + 1]   entries of local expert x are [task_off[x], task_off[x + 1])
 *   task_src[total]         source rank of each entry
 *   task_idx[total]         index of the entry in that source's pair list
 *   src_pairs[n_ranks]      pairs from each source (sum over x)
 * Returns the total number of entries. */
int roe_layout_plan_recv(const struct roe_layout_map *m, int me, const int *from, int *task_off,
                         int *task_src, int *task_idx, int *src_pairs);

#endif
