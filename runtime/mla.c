/*
 * mla.c — multi-head latent attention (DeepSeek-V2/V3, Kimi K2; transformers' DeepseekV3Attention)
 * over the live slots of a step (engine_impl.h), with the clean cache holding the compressed
 * latent and the rope key, never full K/V (config.h struct roe_mla_config):
 *
 *   x = RMSNorm_in(h)
 *   q = q_b(RMSNorm(q_a x)) (or q_proj x)        [heads, nope | rope]  RoPE on the rope part
 *   [c | kr] = kv_a x, c = RMSNorm(c)            [latent | rope]       RoPE on kr; the clean slots
 *                                                                      append [c | kr] to the cache
 *   q_lat_h = W_uk_h^T q_nope_h                  absorbed: q_nope . (W_uk c) = (W_uk^T q_nope) . c
 *   o_h = sum_j softmax_j(scale (q_lat_h . c_j + q_rope_h . kr_j)) c_j      (mla_attention)
 *   h += o_proj([W_uv_h o_h]_h)                  absorbed: sum p (W_uv c) = W_uv (sum p c)
 *
 * W_uk_h and W_uv_h are head h's rows of kv_b_proj (nope rows, then v rows); W_uk^T is the model's
 * wuk_t (runtime/model.h). scale = (nope + rope)^-0.5 times YaRN's mscale_all_dim correction
 * (runtime/rope.h). Transformers instead decompresses the cache into every head's K and V and
 * attends them; the two are equal in exact arithmetic, and the fixtures hold the results to
 * transformers' within 1e-4 of max|logit|.
 *
 * Prefill and decode take this one path: a row's result must not depend on how a prompt is cut
 * into steps or on the rows beside it (the engine's batch invariance, test_golden), and
 * decompressing the history for a chunk while decode rows absorb would give other bits for the
 * same position. What absorbing costs a long prefill is in docs/MODELS.md.
 */
#include "engine_impl.h"

void roe__mla_layer(roe_engine *e, int layer, const struct roe_row *rows) {
    const struct roe_model_config *c = &e->model->cfg;
    const struct roe_mla_config *a = &c->mla_cfg;
    const struct roe_layer_weights *L = &e->w->layers[layer];
    roe_backend *be = e->be;
    const int n = e->n_act, nh = c->n_heads, H = c->hidden;
    const int R = a->kv_lora_rank, qk = a->nope_dim + a->rope_dim, W = R + a->rope_dim;

    be->ops->rmsnorm(be, e->h, n, &L->attn_norm, c->rms_eps, e->x);
    /* the query [n, heads, nope | rope] */
    const float *xq = e->x;
    if (a->q_lora_rank) {
        be->ops->matmul(be, e->x, n, &L->wq_a, e->qa);
        if (c->qkv_bias) be->ops->add_bias(be, e->qa, n, &L->bq_a);
        be->ops->rmsnorm(be, e->qa, n, &L->q_a_norm, c->rms_eps, e->qa);
        xq = e->qa;
    }
    be->ops->matmul(be, xq, n, &L->wq, e->q);
    /* [latent | rope key] [n, W]; the norm covers the latent only, row by row */
    be->ops->matmul(be, e->x, n, &L->wkv_a, e->k);
    if (c->qkv_bias) be->ops->add_bias(be, e->k, n, &L->bkv_a);
    for (int j = 0; j < n; j++)
        be->ops->rmsnorm(be, e->k + (size_t)j * W, 1, &L->kv_a_norm, c->rms_eps, e->k + (size_t)j * W);
    struct roe_rope_args rq = e->rope, rk = e->rope;
    rq.offset = a->nope_dim;
    rk.offset = R;
    be->ops->rope(be, e->q, n, nh, qk, e->pos, &rq);
    be->ops->rope(be, e->k, n, 1, W, e->pos, &rk);
    /* the clean slots append; every slot attends its history and itself */
    const int n_clean = roe__engine_history(e, layer, rows);
    if (n_clean) be->ops->kv_store(be, e->kv.k, e->kv.dtype, e->kv_dst, e->k, e->kv_src, n_clean, W);
    const struct roe_matmul_heads_args absorb_q = {
        .n_rows = n, .n_heads = nh, .x = e->q, .x_stride = qk, .w = &L->wuk_t, .head_rows = R, .row0 = 0,
        .out = R, .y = e->qlat, .y_stride = R, .scratch = e->mscr,
    };
    be->ops->matmul_heads(be, &absorb_q);
    const struct roe_mla_args att = {
        .n_rows = n, .n_heads = nh, .latent = R, .rope_dim = a->rope_dim, .scale = e->mla_scale,
        .q_lat = e->qlat, .q_rope = e->q + a->nope_dim, .q_rope_stride = qk, .kv_self = e->k,
        .kv_cache = roe_kv_layer_ptr(&e->kv, e->kv.k, layer), .pages = roe__engine_pages(e), .hist_begin = e->hbegin, .hist_end = e->hend, .out = e->olat,
    };
    be->ops->mla_attention(be, &att);
    const struct roe_matmul_heads_args absorb_v = {
        .n_rows = n, .n_heads = nh, .x = e->olat, .x_stride = R, .w = &L->wkv_b, .head_rows = a->nope_dim + a->v_dim,
        .row0 = a->nope_dim, .out = a->v_dim, .y = e->att, .y_stride = a->v_dim, .scratch = e->mscr,
    };
    be->ops->matmul_heads(be, &absorb_v);
    be->ops->matmul(be, e->att, n, &L->wo, e->tmp);
    if (c->o_bias) be->ops->add_bias(be, e->tmp, n, &L->bo);
    be->ops->add(be, e->h, e->tmp, (size_t)n * H);
}
