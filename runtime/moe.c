/*
 * moe.c — the MoE sublayer of one step (engine_impl.h): h += sum over a slot's top-k experts
 * of gate weight x FFN_expert(x).
 *
 * Routing: router logits (the backend's fp32 matmul) -> the family's gate on the host
 * (runtime/router.c; a device backend downloads [slots, E] logits first, so the expert choices,
 * clean and Gumbel, are a function of the logits alone and the same on every backend). RoE
 * samples still sharing their clean row's slot fork into a slot of their own where their noisy
 * routing picks other experts or weights (ROE.md "What we add" 2); a forked slot reuses its
 * parent's output for every expert the two share (same input, same expert: the same numbers).
 *
 * Then one of two paths:
 *   local     every expert is on this rank (a world of one, no exchange): the active pairs'
 *             rows gathered grouped by expert (ascending; pairs in order within an expert),
 *             one FFN per expert over its contiguous rows, then the backend's weighted sum
 *   exchange  several ranks (comm/dispatch.h): rows travel to their experts' owners, this
 *             rank's experts run over the rows of every rank (tasks), outputs come back; the
 *             weighted sum reads each pair's output where it landed (a device backend stages
 *             rows through host memory: correct, slow — docs/GPU.md)
 * Both sum a slot's k outputs in slot order with the same arithmetic (acc = 0; acc += y w;
 * h += acc, as the CPU kernel's moe_combine), and every FFN is batch-invariant, so a row's
 * result is the same bits on one rank or many, whoever computed its experts.
 */
#include <stdio.h>
#include <string.h>

#include "engine_impl.h"
#include "kernels/moe_sum.h"
#include "kernels/route_order.h"
#include "router.h"

/* The routing of a row at a layer: the clean gate, or the family's choice on noisy logits for
 * a noisy sample (router.h). */
static void route(roe_engine *e, int layer, const struct roe_row *r, const float *logits,
                  int32_t *idx, float *w) {
    const struct roe_model_config *c = &e->model->cfg;
    const float tau = r->roster && r->sample > 0 ? r->roster->tau[layer] : 0.0f;
    const float *bias = c->router == ROE_ROUTER_SIGMOID_GROUP ? e->score_bias + (size_t)layer * c->n_experts : NULL;
    if (tau > 0.0f) {
        struct roe_noise_key key = {.seed = r->seed, .pos = r->pos, .sample = r->sample, .layer = layer};
        roe_route_row_noisy(c, logits, bias, tau, r->roster->gate, key, e->rscratch, idx, w);
    } else
        roe_route_row(c, logits, bias, e->rscratch, idx, w);
}

/* Makes a new slot for row i, a copy of slot `parent` (its residual, normed input and router
 * logits), with its own routing. */
static void fork_slot(roe_engine *e, int i, int parent, const struct roe_row *r, const int32_t *sel,
                      const float *gw) {
    const struct roe_model_config *c = &e->model->cfg;
    roe_backend *be = e->be;
    const int H = c->hidden, E = c->n_experts, K = c->top_k, j = e->n_act++;
    be->ops->copy(be, e->h + (size_t)j * H, e->h + (size_t)parent * H, (size_t)H * sizeof(float));
    be->ops->copy(be, e->x + (size_t)j * H, e->x + (size_t)parent * H, (size_t)H * sizeof(float));
    memcpy(e->rlog + (size_t)j * E, e->rlog + (size_t)parent * E, (size_t)E * sizeof(float));
    memcpy(e->sel + (size_t)j * K, sel, (size_t)K * sizeof *sel);
    memcpy(e->gw + (size_t)j * K, gw, (size_t)K * sizeof *gw);
    e->slot_row[j] = i;
    e->row_slot[i] = j;
    e->fork_parent[j] = parent;
    e->pos[j] = r->pos;
}

/* Routes every live slot, then forks the RoE samples whose routing departs from their slot's. */
static roe_status route_slots(roe_engine *e, int layer, const struct roe_row *rows, int n_rows) {
    const struct roe_model_config *c = &e->model->cfg;
    roe_backend *be = e->be;
    const int E = c->n_experts, K = c->top_k;
    if (e->n_act) {
        be->ops->matmul_f32(be, e->x, e->n_act, &e->w->layers[layer].router, e->rlogits);
        if (c->router_bias) be->ops->add_bias(be, e->rlogits, e->n_act, &e->w->layers[layer].router_bias);
        if (!e->host_mem)
            ROE_TRY(be->ops->download(be, e->rlog, e->rlogits, (size_t)e->n_act * E * sizeof(float)));
    }
    for (int j = 0; j < e->n_act; j++) {
        route(e, layer, &rows[e->slot_row[j]], e->rlog + (size_t)j * E, e->sel + (size_t)j * K,
              e->gw + (size_t)j * K);
        e->fork_parent[j] = -1;
    }
    for (int i = 0; i < n_rows; i++) {
        const int j = e->row_slot[i];
        const struct roe_row *r = &rows[i];
        if (e->slot_row[j] == i || !r->roster || r->roster->tau[layer] <= 0.0f) continue;
        route(e, layer, r, e->rlog + (size_t)j * E, e->fsel, e->fgw);
        if (memcmp(e->fsel, e->sel + (size_t)j * K, (size_t)K * sizeof *e->fsel) != 0 ||
            memcmp(e->fgw, e->gw + (size_t)j * K, (size_t)K * sizeof *e->fgw) != 0)
            fork_slot(e, i, j, r, e->fsel, e->fgw);
    }
    return ROE_OK;
}

/* Which pairs run: a pair of a slot that forked in this layer reuses its parent's output for
 * a shared expert. */
static void mark_pairs(roe_engine *e) {
    const int n = e->n_act, K = e->model->cfg.top_k;
    for (int p = 0; p < n * K; p++) {
        e->src_pair[p] = p;
        const int par = e->fork_parent[p / K];
        if (par >= 0)
            for (int s = 0; s < K; s++)
                if (e->sel[(size_t)par * K + s] == e->sel[p]) e->src_pair[p] = par * K + s;
        e->active[p] = e->src_pair[p] == p;
    }
}

/* The local path: gather by expert, one FFN per expert, the weighted sum. With the bf16 wire
 * (ROE_EP_WIRE) expert inputs and outputs are rounded to bf16 as the exchange rounds them, so
 * one process gives what any number of ranks give; on host memory only (a device runs the
 * local path unrounded: the exchange does not serve devices in one process either). */
static void moe_local(roe_engine *e, int layer) {
    const struct roe_model_config *c = &e->model->cfg;
    const struct roe_layer_weights *L = &e->w->layers[layer];
    roe_backend *be = e->be;
    const int n = e->n_act, K = c->top_k, E = c->n_experts, H = c->hidden;
    memset(e->e_count, 0, (size_t)(E + 1) * sizeof *e->e_count);
    for (int p = 0; p < n * K; p++)
        if (e->active[p]) e->e_count[e->sel[p] + 1]++;
    for (int x = 0; x < E; x++) e->e_count[x + 1] += e->e_count[x]; /* offsets */
    memcpy(e->e_cur, e->e_count, (size_t)E * sizeof *e->e_cur);
    for (int p = 0; p < n * K; p++)
        if (e->active[p]) {
            const int g = e->e_cur[e->sel[p]]++;
            e->g_src[g] = p / K;
            e->p_row[p] = g;
        }
    const int n_pairs = e->e_count[E];
    if (n_pairs) be->ops->copy_rows(be, e->ein, NULL, e->x, e->g_src, n_pairs, H);
    const int round = e->opts.wire == ROE_EP_WIRE_BF16 && e->host_mem;
    if (round) roe_bf16_round(e->ein, (size_t)n_pairs * H);
    for (int x = 0; x < E; x++) {
        const int first = e->e_count[x], m = e->e_count[x + 1] - first;
        if (!m) continue;
        roe__engine_ffn(e, &L->experts[x], e->ein + (size_t)first * H, m, e->eout + (size_t)first * H);
        e->stats.distinct_experts++;
    }
    if (round) roe_bf16_round(e->eout, (size_t)n_pairs * H);
    for (int p = 0; p < n * K; p++) e->y_row[p] = e->p_row[e->src_pair[p]];
    if (n) be->ops->moe_combine(be, e->h, n, H, K, e->eout, e->y_row, e->gw);
}

/* One expert task of the exchange: gathers its input rows (host memory, the exchange's), the
 * FFN, scatters the outputs; a device backend uploads the rows and downloads the outputs. */
static roe_status run_task(roe_engine *e, const struct roe_layer_weights *L, const struct roe_ep_task *t) {
    const int H = e->model->cfg.hidden, m = t->n;
    const float *const *in = roe_ep_in(e->ep);
    float *const *out = roe_ep_out(e->ep);
    roe_backend *be = e->be;
    float *hin = e->host_mem ? e->ein : e->st_in, *hout = e->host_mem ? e->tmp : e->st_in;
    for (int j = 0; j < m; j++)
        memcpy(hin + (size_t)j * H, in[t->first + j], (size_t)H * sizeof(float));
    if (!e->host_mem) be->ops->upload(be, e->ein, hin, (size_t)m * H * sizeof(float));
    roe__engine_ffn(e, &L->experts[t->expert], e->ein, m, e->tmp);
    if (!e->host_mem) ROE_TRY(be->ops->download(be, hout, e->tmp, (size_t)m * H * sizeof(float)));
    for (int j = 0; j < m; j++)
        memcpy(out[t->first + j], hout + (size_t)j * H, (size_t)H * sizeof(float));
    if (!t->part) e->stats.distinct_experts++; /* an expert split in two passes counts once */
    return ROE_OK;
}

/* Runs the exchange for the active pairs; afterwards roe_ep_pair_out(e->ep)[p] is active pair
 * p's output. */
static roe_status exchange_experts(roe_engine *e, int layer) {
    const struct roe_layer_weights *L = &e->w->layers[layer];
    const int n = e->n_act, H = e->model->cfg.hidden;
    char what[32];
    snprintf(what, sizeof what, "layer %d", layer);
    const float *x = e->x;
    float *out = e->eout;
    if (!e->host_mem) { /* the exchange moves host rows */
        ROE_TRY(e->be->ops->download(e->be, e->st_x, e->x, (size_t)n * H * sizeof(float)));
        x = e->st_x;
        out = e->st_out;
    }
    ROE_TRY(roe_ep_begin(e->ep, &e->pl->maps[layer], x, n, e->sel, e->active, out, what));
    /* what can run before the other ranks' rows are here: this rank's own rows while a late
     * rank's headers are awaited, experts fed only by this rank's rows while the rows travel */
    const struct roe_ep_task *t;
    for (;;) {
        ROE_TRY(roe_ep_next_now(e->ep, &t));
        if (!t) break;
        ROE_TRY(run_task(e, L, t));
    }
    ROE_TRY(roe_ep_wait(e->ep));
    const int n_rest = roe_ep_tasks_rest(e->ep, &t);
    for (int i = 0; i < n_rest; i++) ROE_TRY(run_task(e, L, &t[i]));
    return roe_ep_combine(e->ep);
}

/* The exchange path's weighted sum, from each pair's output where it landed. Host memory: in
 * place, the arithmetic of the CPU kernels' moe_combine (kernels/moe_sum.h). A device: gathered in pair order and
 * summed there by moe_combine. */
static void combine_landed(roe_engine *e) {
    const int n = e->n_act, H = e->model->cfg.hidden, K = e->model->cfg.top_k;
    const float *const *yp = roe_ep_pair_out(e->ep);
    if (!e->host_mem) {
        for (int p = 0; p < n * K; p++) {
            memcpy(e->st_y + (size_t)p * H, yp[e->src_pair[p]], (size_t)H * sizeof(float));
            e->y_row[p] = p;
        }
        if (n) {
            e->be->ops->upload(e->be, e->eout, e->st_y, (size_t)n * K * H * sizeof(float));
            e->be->ops->moe_combine(e->be, e->h, n, H, K, e->eout, e->y_row, e->gw);
        }
        return;
    }
    for (int j = 0; j < n; j++) {
        for (int s = 0; s < K; s++) e->ypair[s] = yp[e->src_pair[(size_t)j * K + s]];
        roe_moe_sum_row(e->h + (size_t)j * H, H, K, e->ypair, e->gw + (size_t)j * K);
    }
}

/* The shared expert (Qwen2-MoE, GLM-4.5): dense, so it runs on the home rank like attention,
 * over the slots that did not fork in this layer (a fork's normed input is its parent's: it sums
 * its parent's output), and h += w * Shared(x) with w = sigmoid(shared_expert_gate . x) (Qwen2)
 * or 1 (GLM-4.5), through the weighted sum of one "expert" per slot. */
static roe_status shared_expert(roe_engine *e, int layer) {
    const struct roe_model_config *c = &e->model->cfg;
    const struct roe_layer_weights *L = &e->w->layers[layer];
    roe_backend *be = e->be;
    const int n = e->n_act, H = c->hidden;
    int n0 = 0; /* forks are appended after the slots they forked from */
    while (n0 < n && e->fork_parent[n0] < 0) n0++;
    if (!n) return ROE_OK;
    roe__engine_ffn(e, &L->shared, e->x, n0, e->tmp);
    if (c->shared_gate) {
        be->ops->matmul_f32(be, e->x, n0, &L->shared_gate, e->rlogits); /* [n0, 1] */
        if (!e->host_mem) ROE_TRY(be->ops->download(be, e->rlog, e->rlogits, (size_t)n0 * sizeof(float)));
    }
    for (int j = 0; j < n; j++) {
        e->shared_row[j] = j < n0 ? j : e->fork_parent[j];
        e->shared_w[j] = c->shared_gate ? roe_route_sigmoid(e->rlog[e->shared_row[j]]) : 1.0f;
    }
    be->ops->moe_combine(be, e->h, n, H, 1, e->tmp, e->shared_row, e->shared_w);
    return ROE_OK;
}

roe_status roe__moe_layer(roe_engine *e, int layer, const struct roe_row *rows, int n_rows) {
    ROE_TRY(route_slots(e, layer, rows, n_rows));
    mark_pairs(e);
    if (!e->ep) moe_local(e, layer);
    else {
        ROE_TRY(exchange_experts(e, layer));
        combine_landed(e);
    }
    return e->model->cfg.shared_intermediate ? shared_expert(e, layer) : ROE_OK;
}
