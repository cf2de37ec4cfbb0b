/* layout.c — the dispatch layout, a pure function; see layout.h. */
#include "layout.h"

#include <string.h>

roe_status roe_layout_map_build(int n_ranks, int n_experts, const int *owner, int *local,
                                int *n_local, int *base, struct roe_layout_map *out) {
    if (n_ranks <= 0 || n_experts <= 0)
        return roe_fail(ROE_ERR_INVALID_ARG, "layout: %d ranks, %d experts must be > 0", n_ranks, n_experts);
    memset(n_local, 0, (size_t)n_ranks * sizeof *n_local);
    for (int e = 0; e < n_experts; e++) {
        if (owner[e] < 0 || owner[e] >= n_ranks)
            return roe_fail(ROE_ERR_INVALID_ARG, "layout: expert %d is placed on rank %d, outside [0, %d)",
                            e, owner[e], n_ranks);
        local[e] = n_local[owner[e]]++; /* ascending ids within each rank */
    }
    base[0] = 0;
    for (int r = 0; r < n_ranks; r++) base[r + 1] = base[r] + n_local[r];
    *out = (struct roe_layout_map){.n_ranks = n_ranks, .n_experts = n_experts, .owner = owner,
                                   .local = local, .n_local = n_local, .base = base};
    return ROE_OK;
}

void roe_layout_plan_send(const struct roe_layout_map *m, int n_slots, int top_k,
                          const int32_t *sel, const uint8_t *active, struct roe_layout_send *out,
                          int *scratch) {
    const int N = m->n_ranks, B = m->base[N];
    int *mark = scratch;       /* [N] last slot counted towards each destination */
    int *cur = scratch + N;    /* [N] that slot's row index at the destination */
    int *pos = out->counts;    /* counts, then reused as bucket cursors below */
    memset(out->rows, 0, (size_t)N * sizeof *out->rows);
    memset(out->pairs, 0, (size_t)N * sizeof *out->pairs);
    memset(out->counts, 0, (size_t)B * sizeof *out->counts);
    for (int d = 0; d < N; d++) mark[d] = -1;
    /* pass 1: rows and pairs per destination, pairs per bucket */
    for (int j = 0; j < n_slots; j++)
        for (int k = 0; k < top_k; k++) {
            const int p = j * top_k + k;
            if (active && !active[p]) continue;
            const int e = sel[p], d = m->owner[e];
            out->counts[m->base[d] + m->local[e]]++;
            out->pairs[d]++;
            if (mark[d] != j) {
                mark[d] = j;
                out->rows[d]++;
            }
        }
    out->row_off[0] = out->pair_off[0] = 0;
    for (int d = 0; d < N; d++) {
        out->row_off[d + 1] = out->row_off[d] + out->rows[d];
        out->pair_off[d + 1] = out->pair_off[d] + out->pairs[d];
    }
    /* pass 2: a stable counting sort of the pairs by bucket (destination, local expert);
     * buckets are laid out in (d, x) order, so pair_off[d] is where d's first bucket starts.
     * The cursors need the counts, which the caller reads afterwards: keep them in cur-like
     * temporary form by converting counts to starts and back. */
    int acc = 0;
    for (int b = 0; b < B; b++) { /* counts -> bucket starts */
        const int c = pos[b];
        pos[b] = acc;
        acc += c;
    }
    for (int d = 0; d < N; d++) {
        mark[d] = -1;
        cur[d] = 0;
    }
    int *rows_seen = out->rows; /* reused as a running row count, restored below */
    memset(rows_seen, 0, (size_t)N * sizeof *rows_seen);
    for (int j = 0; j < n_slots; j++)
        for (int k = 0; k < top_k; k++) {
            const int p = j * top_k + k;
            if (active && !active[p]) continue;
            const int e = sel[p], d = m->owner[e];
            if (mark[d] != j) {
                mark[d] = j;
                cur[d] = rows_seen[d]++;
                out->row_slot[out->row_off[d] + cur[d]] = j;
            }
            const int at = pos[m->base[d] + m->local[e]]++;
            out->pair_id[at] = p;
            out->pair_row[at] = cur[d];
        }
    /* bucket cursors now sit at each bucket's end: recover the counts */
    for (int b = B - 1; b >= 0; b--) pos[b] -= b ? pos[b - 1] : 0;
    /* rows_seen[d] == rows[d] already */
}

int roe_layout_plan_recv(const struct roe_layout_map *m, int me, const int *from, int *task_off,
                         int *task_src, int *task_idx, int *src_pairs) {
    const int N = m->n_ranks, X = m->n_local[me];
    /* src_pairs[s] runs as the count of s's pairs for the experts before x, which is where
     * expert x's pairs begin in s's list (sorted by local expert); after the last expert it
     * is s's total */
    for (int s = 0; s < N; s++) src_pairs[s] = 0;
    int n = 0;
    for (int x = 0; x < X; x++) {
        task_off[x] = n;
        for (int s = 0; s < N; s++) {
            const int start = src_pairs[s], c = from[s * X + x];
            for (int j = 0; j < c; j++) {
                task_src[n] = s;
                task_idx[n] = start + j;
                n++;
            }
            src_pairs[s] = start + c;
        }
    }
    task_off[X] = n;
    return n;
}
