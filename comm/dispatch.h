/*
 * dispatch.h — expert-parallel dispatch and combine for one MoE layer (DESIGN.md "One
 * step, as data"): rows go to the ranks owning their chosen experts and their expert
 * outputs come back. Model-agnostic: it moves fp32 rows and hands out work lists; the
 * caller (the engine) runs the expert FFNs.
 *
 * One layer, in order:
 *   roe_ep_begin     layout (layout.h) -> headers (rows, pairs per local expert, pair
 *                    indices) and rows sent together (nonblocking) -> the headers in
 *   roe_ep_next_now  with overlap on, the tasks computable before the rows arrive, one at a
 *                    time (each call also moves the transfers along):
 *                     - early: while another rank is late (no header from it opts.early_us
 *                       after this rank's were sent: its attention had more rows), each
 *                       local expert on this rank's own pairs, until the headers come;
 *                     - now: local experts whose every pair comes from this rank, computed
 *                       while the other rows travel
 *   roe_ep_wait      the rows have arrived
 *   tasks "rest"     the other local experts, each over its rows from every rank at once
 *                    (one pass over the expert's weights), or, for one that ran early, over
 *                    the other ranks' rows (task.part = 1: a second pass over its weights,
 *                    which is why early tasks start only once a wait has begun)
 *   roe_ep_combine   all-to-all-v of the outputs back to the rows' home ranks; afterwards
 *                    roe_ep_pair_out(ep)[pair] points at FFN_expert(x[slot]) for every
 *                    active pair (in `out`, or where it arrived: no copy)
 * Every rank must run every layer's sequence, even with zero slots.
 *
 * Wire format, for each (source, destination):
 *   header:  int32 rows (or the run's length), pairs per local expert of the destination,
 *            then the row of each pair, in the destination's pair order; sent to every
 *            other rank, every layer. Rows of at most opts.inline_bytes (16 KB by default:
 *            the decode regime) follow in the same message, 64-byte aligned
 *   rows:    otherwise a message of its own, sent with the header: rows x hidden (f32 or
 *            bf16). Either the distinct rows the destination needs, packed; or, when they are
 *            nearly all of a contiguous run of slots (f32 wire, at most 1/4 extra), that run
 *            sent straight from x: no packing copy
 *   outputs: pairs x hidden (f32 or bf16), in the destination's pair order (layout.h)
 * At decode sizes a layer thus sends one message per peer each way, as a raw all-to-all-v of
 * the same bytes would; larger rows take a second message, whose receive is posted once the
 * header has said its size.
 * With the bf16 wire every expert input and output is rounded to bf16, local ones too, so
 * results do not depend on the placement; they differ from the f32 wire (the default,
 * which is bit-exact: the same numbers as one process).
 *
 * A task is one local expert (global id) and a range of entries; entry i reads its input
 * row at in[i] and writes its output row at out[i] (fp32, hidden floats each). Pointers
 * stay valid until the next roe_ep_begin.
 *
 * Buffers are allocated by roe_ep_create for the given bounds; a layer allocates nothing.
 * Counts received from peers are checked against the bounds (a peer cannot overflow us).
 */
#ifndef ROE_DISPATCH_H
#define ROE_DISPATCH_H

#include <stdint.h>

#include "comm.h"
#include "layout.h"

typedef enum roe_ep_wire {
    ROE_EP_WIRE_F32 = 0,
    ROE_EP_WIRE_BF16,
} roe_ep_wire;

struct roe_ep_opts {
    int hidden;
    int top_k;
    int n_experts;
    int max_slots;      /* slots this rank dispatches per layer */
    int max_recv_rows;  /* rows it may receive per layer from all other ranks together */
    int max_recv_pairs; /* pairs it may receive per layer from all other ranks together */
    roe_ep_wire wire;
    int overlap;        /* 1: hand out "now" (and early) tasks before the rows arrive */
    int early_us;       /* microseconds to wait for a late rank's headers before early tasks:
                           0 at once, < 0 never (as ROE_EP_EARLY_US) */
    int inline_bytes;   /* rows for one rank of at most this many bytes travel inside the
                           header message; 0 never (every rows message on its own) */
};

/* The defaults: F32 wire, overlap on, early_us 100, inline_bytes 16384 (dispatch.c says
 * why); the sizes (hidden ... max_recv_pairs) are 0, for the caller to set. */
struct roe_ep_opts roe_ep_opts_default(void);

struct roe_ep_task {
    int expert; /* global expert id */
    int first;  /* entries [first, first + n) of roe_ep_in / roe_ep_out */
    int n;
    int part;   /* 1: the expert already ran on other pairs of this layer (an early task) */
};

/* Bytes moved by the last layer (this rank's view), for benchmarks. */
struct roe_ep_stats {
    double count_bytes;    /* count exchange, sent */
    double dispatch_bytes; /* rows + pair indices sent to other ranks */
    double combine_bytes;  /* outputs sent back to other ranks */
    int remote_pairs;      /* pairs this rank computed for other ranks */
    int sent_pairs;        /* pairs this rank sent to other ranks */
    int early_tasks;       /* experts run on own rows before the headers came (another rank late) */
    int row_sends;         /* ranks this rank sent rows to */
    int inline_sends;      /* ... of which inside the header message */
};

typedef struct roe_ep roe_ep;

const char *roe_ep_wire_name(roe_ep_wire w);

/* The communicator is borrowed and must outlive the exchange. */
roe_status roe_ep_create(roe_comm *comm, const struct roe_ep_opts *opts, roe_ep **out);
void roe_ep_free(roe_ep *ep);

/* x[n_slots, hidden] the slots' inputs; sel[n_slots * top_k] their experts; active NULL or
 * [n_slots * top_k]; out[n_slots * top_k, hidden] receives each active pair's output. x and
 * out must stay valid until roe_ep_combine returns. `what` names the layer in messages. */
roe_status roe_ep_begin(roe_ep *ep, const struct roe_layout_map *map, const float *x, int n_slots,
                        const int32_t *sel, const uint8_t *active, float *out, const char *what);
/* The next task to run before roe_ep_wait, or *task = NULL when there is none left; moves
 * the transfers along each time. */
roe_status roe_ep_next_now(roe_ep *ep, const struct roe_ep_task **task);
roe_status roe_ep_wait(roe_ep *ep);
int roe_ep_tasks_rest(const roe_ep *ep, const struct roe_ep_task **tasks);
const float *const *roe_ep_in(const roe_ep *ep);
float *const *roe_ep_out(const roe_ep *ep);
roe_status roe_ep_combine(roe_ep *ep);
/* After roe_ep_combine: [n_slots * top_k] the output row of each active pair. */
const float *const *roe_ep_pair_out(const roe_ep *ep);

struct roe_ep_stats roe_ep_last_stats(const roe_ep *ep);
/* Bytes the last layer sent to each rank ([size] each): rows + indices, outputs. */
void roe_ep_last_bytes(const roe_ep *ep, size_t *dispatch, size_t *combine);

#endif
