/*
 * engine.c — the forward pass of one step over a batch of rows (see engine.h).
 *
 * Per layer (MODELS.md, "Common structure"):
 *   x = RMSNorm_in(h); q,k,v = x Wq, x Wk, x Wv; q/k norm (family); clip (OLMoE);
 *   RoPE; clean rows append k,v; attention; h += o Wo    (DeepSeek-V3: mla.c instead)
 *   x = RMSNorm_post(h); h += MoE(x) (moe.c) or MLP(x)
 * then the final norm and the LM head for the rows that want logits.
 *
 * Rows run in slots (engine_impl.h): a RoE sample row whose clean row is in the step starts
 * as an alias of the clean row's slot and forks where its routing departs (moe.c).
 *
 * Where the data lives (kernels/backend.h "Buffers"): activations, the KV cache and the
 * weights are backend memory. With the CPU backend that is host memory and nothing is
 * copied (be->host_memory). With a device backend (CUDA) the host plans and the device
 * computes; the host uploads only index lists (tokens, positions, pair rows, gate weights),
 * downloads the router logits per MoE layer (moe.c says why) and the logits at the end.
 */
#include "engine_impl.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "base/alloc.h"
#include "mor.h"
#include "router.h"
#include "rope.h"
#include "weights.h"

/* ---- the buffer table ---- */

/* The dimensions of the size formulas (engine_impl.h). */
enum dim { D_1, D_R, D_RK, D_S, D_H, D_QD, D_KD, D_E, D_E1, D_RS, D_K, D_I, D_V, D_HD2, D_LE, D_QL, D_HL, D_MS,
           D_MB, D_COUNT };

/* Where a buffer lives: backend memory, host memory, or host memory that only a backend
 * without host memory needs (staging copies; on the CPU those fields stay NULL). */
enum mem { MEM_BACKEND, MEM_HOST, MEM_STAGING };

struct buf_spec {
    size_t off;    /* offsetof(struct roe_engine, field) */
    enum mem mem;
    size_t elem;   /* bytes per element */
    enum dim a, b; /* elements: dim a x dim b */
};

#define BUF(field, mem, a, b) {offsetof(struct roe_engine, field), mem, sizeof *((struct roe_engine *)0)->field, a, b}

/* Every buffer of the engine and its size; engine_impl.h says what each holds. */
static const struct buf_spec ENGINE_BUFS[] = {
    BUF(h, MEM_BACKEND, D_R, D_H),        BUF(x, MEM_BACKEND, D_R, D_H),
    BUF(q, MEM_BACKEND, D_R, D_QD),       BUF(k, MEM_BACKEND, D_R, D_KD),
    BUF(v, MEM_BACKEND, D_R, D_KD),       BUF(att, MEM_BACKEND, D_R, D_QD),
    BUF(tmp, MEM_BACKEND, D_R, D_H),      BUF(rlogits, MEM_BACKEND, D_R, D_E),
    BUF(ein, MEM_BACKEND, D_RK, D_H),     BUF(egate, MEM_BACKEND, D_R, D_I),
    BUF(eup, MEM_BACKEND, D_R, D_I),      BUF(eout, MEM_BACKEND, D_RK, D_H),
    BUF(lrows, MEM_BACKEND, D_R, D_H),    BUF(dlogits, MEM_BACKEND, D_R, D_V),
    BUF(qa, MEM_BACKEND, D_R, D_QL),      BUF(qlat, MEM_BACKEND, D_R, D_HL),
    BUF(olat, MEM_BACKEND, D_R, D_HL),    BUF(mscr, MEM_BACKEND, D_R, D_MS),
    BUF(inv_freq, MEM_BACKEND, D_HD2, D_1),
    BUF(rlog, MEM_STAGING, D_R, D_E),     BUF(st_x, MEM_STAGING, D_R, D_H),
    BUF(st_in, MEM_STAGING, D_R, D_H),    BUF(st_out, MEM_STAGING, D_RK, D_H),
    BUF(st_y, MEM_STAGING, D_RK, D_H),    BUF(hlogits, MEM_STAGING, D_R, D_V),
    BUF(rope_host, MEM_HOST, D_HD2, D_1), BUF(score_bias, MEM_HOST, D_LE, D_1),
    BUF(rscratch, MEM_HOST, D_RS, D_1),
    BUF(shared_w, MEM_HOST, D_R, D_1),    BUF(shared_row, MEM_HOST, D_R, D_1),
    BUF(sel, MEM_HOST, D_RK, D_1),        BUF(gw, MEM_HOST, D_RK, D_1),
    BUF(fsel, MEM_HOST, D_K, D_1),        BUF(fgw, MEM_HOST, D_K, D_1),
    BUF(ypair, MEM_HOST, D_K, D_1),
    BUF(fork_parent, MEM_HOST, D_R, D_1), BUF(src_pair, MEM_HOST, D_RK, D_1),
    BUF(active, MEM_HOST, D_RK, D_1),     BUF(e_count, MEM_HOST, D_E1, D_1),
    BUF(e_cur, MEM_HOST, D_E, D_1),       BUF(g_src, MEM_HOST, D_RK, D_1),
    BUF(p_row, MEM_HOST, D_RK, D_1),      BUF(y_row, MEM_HOST, D_RK, D_1),
    BUF(kv_dst, MEM_HOST, D_R, D_1),      BUF(kv_src, MEM_HOST, D_R, D_1),
    BUF(l_src, MEM_HOST, D_R, D_1),       BUF(pos, MEM_HOST, D_R, D_1),
    BUF(hbegin, MEM_HOST, D_R, D_1),      BUF(hend, MEM_HOST, D_R, D_1),
    BUF(tokens, MEM_HOST, D_R, D_1),      BUF(btab, MEM_HOST, D_R, D_MB),
    BUF(btab_w, MEM_HOST, D_R, D_MB),
    BUF(slot_row, MEM_HOST, D_R, D_1),
    BUF(row_slot, MEM_HOST, D_R, D_1),    BUF(slot_lrow, MEM_HOST, D_R, D_1),
    BUF(seq_next, MEM_HOST, D_S, D_1),
};
enum { N_ENGINE_BUFS = sizeof ENGINE_BUFS / sizeof ENGINE_BUFS[0] };

static int imax(int a, int b) { return a > b ? a : b; }
static int kv_block_size(const struct roe_engine_opts *o) {
    return o->kv_block_size > 0 ? o->kv_block_size : ROE_KV_BLOCK_DEFAULT;
}

/* The widest FFN activation of a row: routed experts (gpt-oss: gate and up interleaved, 2I),
 * dense MLPs, shared experts. */
static int ffn_width(const struct roe_model_config *c) {
    const int routed = c->expert_act == ROE_ACT_SWIGLU_OAI ? 2 * c->moe_intermediate : c->moe_intermediate;
    return imax(imax(routed, c->dense_intermediate), c->shared_intermediate);
}

/* The widest input of any matmul (the CPU backend's scratch, the CUDA backend's bf16 copy of x). */
static int matmul_cols(const struct roe_model_config *c) {
    const struct roe_mla_config *a = &c->mla_cfg;
    const int attn = c->mla ? imax(imax(a->q_lora_rank, c->n_heads * a->v_dim), imax(a->nope_dim, a->kv_lora_rank))
                            : c->n_heads * c->head_dim;
    return imax(imax(c->hidden, attn), ffn_width(c));
}

/* The value of each dimension for this model and these limits. */
static void buf_dims(const struct roe_model_config *c, const struct roe_engine_opts *o, size_t dim[D_COUNT]) {
    const int max_rows = o->max_rows, max_seqs = o->max_seqs;
    const int bs = kv_block_size(o);
    const size_t E = (size_t)imax(c->n_experts, 1), K = (size_t)imax(c->top_k, 1);
    const struct roe_mla_config *a = &c->mla_cfg;
    dim[D_1] = 1;
    dim[D_R] = (size_t)max_rows;
    dim[D_RK] = (size_t)max_rows * K;
    dim[D_S] = (size_t)max_seqs;
    dim[D_H] = (size_t)c->hidden;
    dim[D_QD] = (size_t)c->n_heads * (c->mla ? imax(a->nope_dim + a->rope_dim, a->v_dim) : c->head_dim);
    dim[D_KD] = c->mla ? (size_t)a->kv_lora_rank + a->rope_dim : (size_t)c->n_kv_heads * c->head_dim;
    dim[D_QL] = (size_t)a->q_lora_rank;
    dim[D_HL] = (size_t)c->n_heads * a->kv_lora_rank;
    dim[D_MS] = c->mla ? (size_t)imax(a->nope_dim, a->kv_lora_rank) + (size_t)imax(a->kv_lora_rank, a->v_dim) : 0;
    dim[D_E] = E;
    dim[D_E1] = E + 1;
    dim[D_RS] = roe_route_scratch_floats(c);
    dim[D_K] = K;
    dim[D_I] = (size_t)ffn_width(c);
    dim[D_V] = (size_t)c->vocab_size;
    dim[D_HD2] = (size_t)c->head_dim / 2;
    dim[D_LE] = (size_t)c->n_layers * E;
    dim[D_MB] = ((size_t)o->max_ctx + (size_t)bs - 1) / (size_t)bs;
}

static void **buf_field(roe_engine *e, const struct buf_spec *b) { return (void **)((char *)e + b->off); }

static roe_status alloc_buffers(roe_engine *e) {
    size_t dim[D_COUNT];
    buf_dims(&e->model->cfg, &e->opts, dim);
    for (int i = 0; i < N_ENGINE_BUFS; i++) {
        const struct buf_spec *b = &ENGINE_BUFS[i];
        size_t bytes;
        if (b->mem == MEM_STAGING && e->host_mem) continue;
        if (!roe_size_mul(dim[b->a], dim[b->b], &bytes) || !roe_size_mul(bytes, b->elem, &bytes))
            return roe_fail(ROE_ERR_INVALID_ARG, "engine: a buffer of %zu x %zu elements overflows",
                            dim[b->a], dim[b->b]);
        if (bytes == 0) bytes = b->elem;
        void *p = b->mem == MEM_BACKEND ? e->be->ops->alloc(e->be, bytes) : roe_malloc_aligned(bytes);
        if (!p)
            return roe_fail(ROE_ERR_NOMEM, "engine: out of %s memory for %d-row buffers (%zu bytes)",
                            b->mem == MEM_BACKEND ? e->be->name : "host", e->opts.max_rows, bytes);
        if (b->mem != MEM_BACKEND) memset(p, 0, bytes);
        *buf_field(e, b) = p;
    }
    if (e->host_mem) e->rlog = e->rlogits; /* the host routes the logits where they are */
    return ROE_OK;
}

static void free_buffers(roe_engine *e) {
    for (int i = 0; i < N_ENGINE_BUFS; i++) {
        const struct buf_spec *b = &ENGINE_BUFS[i];
        void **p = buf_field(e, b);
        if (!*p || (b->mem == MEM_STAGING && e->host_mem)) continue;
        if (b->mem == MEM_BACKEND) e->be->ops->free(e->be, *p);
        else roe_free_aligned(*p);
        *p = NULL;
    }
}

/* ---- creation ---- */

struct roe_engine_opts roe_engine_opts_default(void) {
    struct roe_engine_opts o = {.max_seqs = 1, .max_ctx = 2048, .max_rows = 64, .n_threads = 0,
                                .isa = ROE_CPU_ISA_AUTO, .ep_early_us = roe_ep_opts_default().early_us,
                                .backend = ROE_BACKEND_CPU, .device = 0};
    return o;
}

void roe_engine_free(roe_engine *e) {
    if (!e) return;
    roe__mor_free(e);
    roe_kv_cache_free(&e->kv);
    roe_kv_cache_free(&e->kv_win);
    if (e->be) {
        free_buffers(e);
        roe_weights_free(e->be, e->owned_w);
    }
    roe_backend_free(e->be);
    roe_ep_free(e->ep);
    roe_placement_free(e->owned_pl);
    roe_comm_free(e->owned_comm);
    roe_free(e);
}

static roe_status check_opts(const struct roe_model_config *c, const struct roe_engine_opts *o) {
    if (o->max_seqs <= 0 || o->max_rows <= 0 || o->max_ctx <= 0)
        return roe_fail(ROE_ERR_INVALID_ARG, "engine: max_seqs %d, max_rows %d, max_ctx %d must be > 0",
                        o->max_seqs, o->max_rows, o->max_ctx);
    if (o->kv_block_size < 0 || o->kv_block_size > (1 << 20))
        return roe_fail(ROE_ERR_INVALID_ARG, "engine: --kv-block-size %d is outside [1, 1048576]", o->kv_block_size);
    const int wide = c->mla ? roe_config_kv_width(c) : c->head_dim; /* what a kernel widens at once */
    if ((o->kv_dtype == ROE_DTYPE_BF16 || o->kv_dtype == ROE_DTYPE_F8_E4M3) && wide > ROE_KV_MAX_WIDE)
        return roe_fail(ROE_ERR_UNSUPPORTED, "engine: --kv-dtype %s reads vectors of %d elements, more than %d",
                        o->kv_dtype == ROE_DTYPE_BF16 ? "bf16" : "fp8", wide, ROE_KV_MAX_WIDE);
    if (o->max_ctx > c->max_position)
        return roe_fail(ROE_ERR_INVALID_ARG,
                        "engine: context of %d positions exceeds the model's max_position_embeddings %d",
                        o->max_ctx, c->max_position);
    return ROE_OK;
}

static roe_status open_backend(roe_engine *e) {
    const struct roe_model_config *c = &e->model->cfg;
    struct roe_backend_opts bo = {
        .n_threads = e->opts.n_threads,
        .max_cols = matmul_cols(c),
        .max_ctx = e->opts.max_ctx,
        .isa = e->opts.isa,
        .device = e->opts.device,
        .max_rows = e->opts.max_rows * imax(c->top_k, 1),
        .max_kv_table = (size_t)e->opts.max_rows *
                        (((size_t)e->opts.max_ctx + (size_t)kv_block_size(&e->opts) - 1) / (size_t)kv_block_size(&e->opts)),
    };
    ROE_TRY(roe_backend_create(e->opts.backend, &bo, &e->be));
    e->host_mem = e->be->host_memory;
    if (e->model->shapes_only && e->host_mem)
        return roe_fail(ROE_ERR_UNSUPPORTED, "engine: a model without weights (random weights) runs on "
                                             "a device backend only (--backend cuda)");
    return ROE_OK;
}

/* The communicator and the placement: given, or a world of one holding every expert. */
static roe_status open_placement(roe_engine *e) {
    const struct roe_model_config *c = &e->model->cfg;
    e->comm = e->opts.comm;
    if (!e->comm) {
        ROE_TRY(roe_comm_self_create(NULL, &e->owned_comm));
        e->comm = e->owned_comm;
    }
    const int me = roe_comm_rank(e->comm), N = roe_comm_size(e->comm);
    e->pl = e->opts.placement;
    if (c->n_experts > 0 && !e->pl) {
        if (N != 1) return roe_fail(ROE_ERR_INVALID_ARG, "engine: %d ranks but no expert placement", N);
        ROE_TRY(roe_placement_contiguous(c, 1, &e->owned_pl));
        e->pl = e->owned_pl;
    }
    if (e->pl && (e->pl->n_ranks != N || e->pl->n_layers != c->n_layers || e->pl->n_experts != c->n_experts))
        return roe_fail(ROE_ERR_INVALID_ARG,
                        "engine: placement for %d ranks, %d layers, %d experts; the job has %d ranks and "
                        "the model %d layers, %d experts",
                        e->pl->n_ranks, e->pl->n_layers, e->pl->n_experts, N, c->n_layers, c->n_experts);
    if (e->pl && !e->model->shapes_only) /* every expert this rank owns must be in the model */
        for (int l = 0; l < c->n_layers; l++)
            for (int x = 0; c->layer_is_moe[l] && x < c->n_experts; x++)
                if (roe_placement_owner(e->pl, l, x) == me && !e->model->layers[l].experts[x].gate.data)
                    return roe_fail(ROE_ERR_INVALID_ARG,
                                    "engine: rank %d owns expert %d of layer %d, but the model does not hold it",
                                    me, x, l);
    return ROE_OK;
}

/* The expert exchange, with several ranks only: a world of one runs its experts locally. */
static roe_status open_exchange(roe_engine *e) {
    const struct roe_model_config *c = &e->model->cfg;
    if (c->n_experts == 0 || roe_comm_size(e->comm) == 1) return ROE_OK;
    struct roe_ep_opts eo = roe_ep_opts_default();
    eo.hidden = c->hidden;
    eo.top_k = c->top_k;
    eo.n_experts = c->n_experts;
    eo.max_slots = e->opts.max_rows;
    eo.max_recv_rows = e->opts.max_rows;
    eo.max_recv_pairs = e->opts.max_rows * c->top_k;
    eo.wire = e->opts.wire;
    eo.overlap = !e->opts.no_overlap;
    eo.early_us = e->opts.ep_early_us;
    return roe_ep_create(e->comm, &eo, &e->ep);
}

/* Widens a host vector (the checkpoint's dtype) to fp32. */
static void widen_host(const struct roe_mat *v, float *out) {
    for (int i = 0; i < v->cols; i++)
        out[i] = v->dtype == ROE_DTYPE_BF16  ? roe_bf16_to_f32(((const uint16_t *)v->data)[i])
                 : v->dtype == ROE_DTYPE_F16 ? roe_f16_to_f32(((const uint16_t *)v->data)[i])
                                             : ((const float *)v->data)[i];
}

/* What the engine computes once from the model: the RoPE table (runtime/rope.h) in backend
 * memory, and each MoE layer's score correction bias in fp32 for the host router. */
static void fill_tables(roe_engine *e) {
    const struct roe_model_config *c = &e->model->cfg;
    e->rope = (struct roe_rope_args){.dim = c->rope.dim, .inv_freq = e->inv_freq, .interleave = c->rope.interleave};
    e->rope.scale = roe_rope_table(c, e->rope_host);
    if (c->mla) e->mla_scale = roe_rope_mla_softmax_scale(c);
    e->be->ops->upload(e->be, e->inv_freq, e->rope_host, (size_t)(c->rope.dim / 2) * sizeof(float));
    for (int l = 0; l < c->n_layers; l++) {
        const struct roe_mat *b = &e->model->layers[l].score_bias;
        if (b->data) widen_host(b, e->score_bias + (size_t)l * c->n_experts);
    }
}

roe_dtype roe_engine_kv_dtype(const struct roe_model *model, roe_dtype kv_dtype) {
    if (kv_dtype != ROE_KV_DTYPE_AUTO) return kv_dtype;
    if (model->cfg.n_layers == 0) return ROE_DTYPE_F32;
    const struct roe_layer_weights *L = &model->layers[0]; /* what writes K and V (MLA: kv_a) */
    const roe_dtype t = model->cfg.mla ? L->wkv_a.dtype : L->wk.dtype;
    return t == ROE_DTYPE_F32 ? ROE_DTYPE_F32 : ROE_DTYPE_BF16;
}

/* The sliding-window layers' pool: blocks enough that no sequence runs short, each holding its
 * window (roe_kv_keep_from: up to window / block_size + 2 blocks) and this step's rows (at most
 * max_rows / block_size + 1 more a sequence with rows, max_rows in all), and never more than
 * max_seqs full contexts. */
static int window_pool_blocks(const struct roe_engine_opts *o, int window) {
    const int64_t bs = kv_block_size(o), full = ((int64_t)o->max_ctx + bs - 1) / bs;
    const int64_t per = (window + bs - 1) / bs + 3, n = o->max_seqs * per + (o->max_rows + bs - 1) / bs;
    return (int)(n < o->max_seqs * full ? n : o->max_seqs * full);
}

/* The KV pools (docs/KV.md "Sliding windows"): one for every layer; with a window on every
 * layer it gives back what falls out of the window; a model that mixes full and sliding-window
 * layers (gpt-oss) gets a second pool for the windowed ones, sized by the window, and --kv-memory
 * (kv_bytes) is what both take together. */
static roe_status open_kv(roe_engine *e) {
    const struct roe_model_config *c = &e->model->cfg;
    const struct roe_engine_opts *o = &e->opts;
    int n_win = 0, window = 0;
    for (int l = 0; l < c->n_layers && !c->mla && !o->kv_full_windows; l++)
        if (c->layer_window[l] > 0) {
            n_win++;
            window = imax(window, c->layer_window[l]);
        }
    const int split = n_win > 0 && n_win < c->n_layers;
    int n_in[2] = {0, 0};
    for (int l = 0; l < c->n_layers; l++) {
        e->kv_in_win[l] = (unsigned char)(split && c->layer_window[l] > 0);
        e->kv_index[l] = n_in[e->kv_in_win[l]]++;
    }
    struct roe_kv_cache_opts ko = {
        .max_seqs = o->max_seqs, .n_layers = n_in[0], .max_ctx = o->max_ctx,
        .kv_dim = c->mla ? roe_config_kv_width(c) : c->n_kv_heads * c->head_dim, .n_vecs = c->mla ? 1 : 2,
        .block_size = o->kv_block_size, .dtype = o->kv_dtype, .bytes = o->kv_bytes,
        .scramble = o->kv_scramble, .no_prefix = o->no_prefix_cache, .window = split ? 0 : window};
    if (split) {
        struct roe_kv_cache_opts wo = ko;
        wo.n_layers = n_in[1];
        wo.window = window;
        wo.min_blocks = window_pool_blocks(o, window);
        wo.bytes = (size_t)wo.min_blocks *
                   roe_kv_block_bytes(wo.n_layers, kv_block_size(o), wo.kv_dim, wo.n_vecs, roe_dtype_size(wo.dtype));
        if (o->kv_bytes && o->kv_bytes <= wo.bytes)
            return roe_fail(ROE_ERR_INVALID_ARG,
                            "engine: --kv-memory of %zu bytes: the %d sliding-window layers' pool alone takes %zu "
                            "(window %d, %d sequences)", o->kv_bytes, n_in[1], wo.bytes, window, o->max_seqs);
        if (o->kv_bytes) ko.bytes = o->kv_bytes - wo.bytes;
        ROE_TRY(roe_kv_cache_init(&e->kv_win, e->be, &wo));
    }
    return roe_kv_cache_init(&e->kv, e->be, &ko);
}

roe_status roe_engine_create(const struct roe_model *model, const struct roe_engine_opts *opts_in,
                             roe_engine **out) {
    *out = NULL;
    const struct roe_model_config *c = &model->cfg;
    struct roe_engine_opts resolved = *opts_in;
    resolved.kv_dtype = roe_engine_kv_dtype(model, opts_in->kv_dtype);
    const struct roe_engine_opts *opts = &resolved;
    ROE_TRY(check_opts(c, opts));
    roe_engine *e = roe_calloc(1, sizeof *e);
    if (!e) return roe_fail(ROE_ERR_NOMEM, "engine: out of memory");
    e->model = model;
    e->w = model;
    e->opts = *opts;
    roe_status st;
    ROE_CHECK(open_backend(e));
    ROE_CHECK(open_placement(e));
    if (c->mla && !model->shapes_only && !model->layers[0].wuk_t.data) {
        st = roe_fail(ROE_ERR_INVALID_ARG, "engine: %s's absorbed kv_b_proj is not made (roe_model_materialize "
                      "or roe_model_keep_experts first)", c->model_type);
        goto fail;
    }
    if (!e->host_mem) { /* the weights, resident on the device */
        ROE_CHECK(roe_weights_create(e->be, model, e->pl, roe_comm_rank(e->comm), opts->random_seed,
                                     &e->owned_w));
        e->w = e->owned_w;
    }
    ROE_CHECK(open_exchange(e));
    if (c->mor.n_recursion) { /* its own two pools (runtime/mor.h) */
        ROE_CHECK(roe__mor_create(e));
        ROE_CHECK(alloc_buffers(e));
        fill_tables(e);
        *out = e;
        return ROE_OK;
    }
    ROE_CHECK(open_kv(e));
    ROE_CHECK(alloc_buffers(e));
    fill_tables(e);
    *out = e;
    return ROE_OK;
fail:
    roe_engine_free(e);
    return st;
}

static int has_win(const roe_engine *e) { return e->kv_win.n_layers > 0; }
/* The pool that caches `layer` (its index there: kv_index). */
static struct roe_kv_cache *layer_kv(roe_engine *e, int layer) { return e->kv_in_win[layer] ? &e->kv_win : &e->kv; }

void roe_engine_reset_seq(roe_engine *e, int seq) {
    if (seq < 0 || seq >= e->opts.max_seqs) return;
    roe_kv_cache_reset(&e->kv, seq);
    if (has_win(e)) roe_kv_cache_reset(&e->kv_win, seq);
    if (e->mor) roe__mor_reset_seq(e, seq);
}
roe_status roe_engine_copy_seq(roe_engine *e, int dst, int src, int len) {
    const int S = e->opts.max_seqs;
    if (dst < 0 || dst >= S || src < 0 || src >= S || dst == src || len < 0 || len > e->kv.len[src])
        return roe_fail(ROE_ERR_INVALID_ARG, "engine: cannot copy %d positions of slot %d (holding %d) into slot %d",
                        len, src, src >= 0 && src < S ? e->kv.len[src] : -1, dst);
    if (e->mor) return roe__mor_copy_seq(e, dst, src, len);
    ROE_TRY(roe_kv_cache_copy(&e->kv, dst, src, len));
    if (!has_win(e)) return ROE_OK;
    const roe_status st = roe_kv_cache_copy(&e->kv_win, dst, src, len);
    if (st != ROE_OK) roe_kv_cache_reset(&e->kv, dst);
    return st;
}
int roe_engine_seq_len(const roe_engine *e, int seq) { return e->kv.len[seq]; }
int roe_engine_prefix_match(roe_engine *e, int seq, const int32_t *tokens, int n) {
    if (seq < 0 || seq >= e->opts.max_seqs || n > e->opts.max_ctx || e->kv.len[seq] != 0) return 0;
    if (!has_win(e)) { /* whole blocks, then the leading positions of a block that continues them */
        const int held = roe_kv_cache_match(&e->kv, seq, tokens, n);
        int32_t src;
        const int m = e->mor ? 0 : roe_kv_cache_partial_probe(&e->kv, seq, tokens, n, &src);
        return m > 0 && roe_engine_prefix_extend(e, seq, src, m) == ROE_OK ? held + m : held;
    }
    /* both pools must hold the same prefix: the full layers' every block, the windowed layers'
     * the blocks of the window at that length (roe_kv_cache_probe) */
    if (e->kv.no_prefix || e->kv.len[seq] != 0 || n <= 1) return 0;
    const int held = roe_kv_cache_probe(&e->kv_win, tokens, roe_kv_cache_probe(&e->kv, tokens, n - 1));
    roe_kv_cache_take(&e->kv_win, seq, tokens, held, n - 1);
    return roe_kv_cache_take(&e->kv, seq, tokens, held, n - 1);
}
roe_status roe_engine_prefix_adopt(roe_engine *e, int seq, int pool, int lo, uint64_t before, const int32_t *blocks,
                                   int n) {
    if (seq < 0 || seq >= e->opts.max_seqs || pool < 0 || pool > 1 || (pool == 1 && !has_win(e)))
        return roe_fail(ROE_ERR_FORMAT, "engine: no pool %d to adopt a prefix of sequence %d in", pool, seq);
    return roe_kv_cache_adopt_from(pool ? &e->kv_win : &e->kv, seq, lo, before, blocks, n);
}
roe_status roe_engine_prefix_extend(roe_engine *e, int seq, int32_t src, int m) {
    if (seq < 0 || seq >= e->opts.max_seqs || has_win(e) || e->mor)
        return roe_fail(ROE_ERR_FORMAT, "engine: sequence %d cannot take a partial cached block here", seq);
    return roe_kv_cache_extend(&e->kv, seq, src, m);
}
const struct roe_model *roe_engine_model(const roe_engine *e) { return e->model; }
const struct roe_engine_opts *roe_engine_get_opts(const roe_engine *e) { return &e->opts; }
const char *roe_engine_backend_name(const roe_engine *e) { return e->be->name; }
size_t roe_engine_kv_bytes(const roe_engine *e) {
    return roe_kv_cache_bytes(&e->kv) + (has_win(e) ? roe_kv_cache_bytes(&e->kv_win) : 0);
}
const struct roe_kv_cache *roe_engine_kv(const roe_engine *e) { return &e->kv; }
const struct roe_kv_cache *roe_engine_kv_window(const roe_engine *e) { return has_win(e) ? &e->kv_win : NULL; }
struct roe_step_stats roe_engine_last_stats(const roe_engine *e) { return e->stats; }
roe_comm *roe_engine_comm(const roe_engine *e) { return e->comm; }
roe_backend *roe_engine_backend(const roe_engine *e) { return e->be; }
void roe__engine_set_driven(roe_engine *e, int on) { e->driven = on; }

/* ---- the step ---- */

roe_status roe_rows_check(const struct roe_row *rows, int n, const struct roe_engine_opts *o, int vocab,
                          const int *len, int *next) {
    if (n < 0 || n > o->max_rows)
        return roe_fail(ROE_ERR_INVALID_ARG, "step of %d rows: the engine holds at most %d", n, o->max_rows);
    for (int i = 0; i < n; i++) {
        const struct roe_row *r = &rows[i];
        if (r->seq < 0 || r->seq >= o->max_seqs)
            return roe_fail(ROE_ERR_INVALID_ARG, "row %d: sequence slot %d is outside [0, %d)", i, r->seq,
                            o->max_seqs);
        if (r->token < 0 || r->token >= vocab)
            return roe_fail(ROE_ERR_INVALID_ARG, "row %d: token id %d is outside the vocabulary [0, %d)", i,
                            r->token, vocab);
        if (r->pos < 0 || r->pos >= o->max_ctx)
            return roe_fail(ROE_ERR_INVALID_ARG, "row %d: position %d is outside the context of %d positions",
                            i, r->pos, o->max_ctx);
        if (r->sample < 0) return roe_fail(ROE_ERR_INVALID_ARG, "row %d: negative sample index %d", i, r->sample);
        next[r->seq] = len[r->seq];
    }
    for (int i = 0; i < n; i++) { /* next: the clean history as this step extends it */
        const struct roe_row *r = &rows[i];
        if (r->sample == 0 && r->pos != next[r->seq])
            return roe_fail(ROE_ERR_INVALID_ARG, "row %d: clean row of sequence %d at position %d, but its cache holds %d",
                            i, r->seq, r->pos, next[r->seq]);
        if (r->sample > 0 && r->pos > next[r->seq])
            return roe_fail(ROE_ERR_INVALID_ARG, "row %d: sample row of sequence %d at position %d needs a history of %d",
                            i, r->seq, r->pos, r->pos);
        if (r->sample == 0) next[r->seq]++;
    }
    return ROE_OK;
}

/* The block tables of the slots not planned yet (RoE forks of this step take new slots, with
 * their clean row's position, so the stride holds them). */
static void plan_forks(roe_engine *e, const struct roe_row *rows) {
    for (int j = e->btab_n; j < e->n_act; j++) {
        const int seq = rows[e->slot_row[j]].seq;
        memcpy(e->btab + (size_t)j * e->btab_stride, e->kv.table + (size_t)seq * e->kv.max_blocks,
               (size_t)e->btab_stride * sizeof(int32_t));
        if (has_win(e))
            memcpy(e->btab_w + (size_t)j * e->btab_stride, e->kv_win.table + (size_t)seq * e->kv_win.max_blocks,
                   (size_t)e->btab_stride * sizeof(int32_t));
    }
    e->btab_n = e->n_act;
}

/* Each live slot's block table, as far as its history reaches, into btab. */
static void plan_pages(roe_engine *e, const struct roe_row *rows) {
    const int bs = e->kv.block_size;
    int stride = 1;
    for (int j = 0; j < e->n_act; j++) {
        const int nb = (rows[e->slot_row[j]].pos + bs - 1) / bs;
        stride = nb > stride ? nb : stride;
    }
    e->btab_stride = stride;
    e->btab_n = 0;
    plan_forks(e, rows);
}

int roe__engine_history(roe_engine *e, int layer, const struct roe_row *rows) {
    const struct roe_model_config *c = &e->model->cfg;
    int n_clean = 0;
    plan_forks(e, rows);
    for (int j = 0; j < e->n_act; j++) {
        const struct roe_row *r = &rows[e->slot_row[j]];
        if (r->sample == 0) { /* the clean cache: only sample 0 appends */
            e->kv_dst[n_clean] = roe_kv_row(layer_kv(e, layer), r->seq, e->kv_index[layer], r->pos);
            e->kv_src[n_clean++] = j;
        }
        e->hend[j] = r->pos;
        e->hbegin[j] = roe_config_history_begin(c, layer, r->pos);
    }
    return n_clean;
}

struct roe_kv_pages roe__engine_pages(const roe_engine *e) {
    return (struct roe_kv_pages){.dtype = e->kv.dtype, .table = e->btab, .stride = e->btab_stride, .block_size = e->kv.block_size,
                                 .block_elems = roe_kv_block_elems(&e->kv)};
}

/* The pages of `layer`'s pool. */
static struct roe_kv_pages layer_pages(const roe_engine *e, int layer) {
    struct roe_kv_pages pg = roe__engine_pages(e);
    if (e->kv_in_win[layer]) {
        pg.table = e->btab_w;
        pg.block_elems = roe_kv_block_elems(&e->kv_win);
    }
    return pg;
}

/* Blocks for every clean row of the step (next: each sequence's length after it), before
 * anything runs: a pool too short fails the step whole. */
static roe_status reserve_blocks(roe_engine *e, const struct roe_row *rows, int n) {
    for (int i = 0; i < n; i++)
        if (rows[i].sample == 0) {
            ROE_TRY(roe_kv_cache_reserve(&e->kv, rows[i].seq, e->seq_next[rows[i].seq]));
            if (has_win(e)) ROE_TRY(roe_kv_cache_reserve(&e->kv_win, rows[i].seq, e->seq_next[rows[i].seq]));
        }
    return ROE_OK;
}

/* Attention sublayer over the active slots. */
static void attention_layer(roe_engine *e, int layer, const struct roe_row *rows) {
    const struct roe_model_config *c = &e->model->cfg;
    const struct roe_layer_weights *L = &e->w->layers[layer];
    roe_backend *be = e->be;
    const int n = e->n_act;
    const int H = c->hidden, hd = c->head_dim, nh = c->n_heads, nkv = c->n_kv_heads;
    const int qd = nh * hd, kd = nkv * hd;

    be->ops->rmsnorm(be, e->h, n, &L->attn_norm, c->rms_eps, e->x);
    be->ops->matmul(be, e->x, n, &L->wq, e->q);
    be->ops->matmul(be, e->x, n, &L->wk, e->k);
    be->ops->matmul(be, e->x, n, &L->wv, e->v);
    if (c->qkv_bias) { /* Qwen2, GLM-4.5, gpt-oss: inside the projections, before any norm */
        be->ops->add_bias(be, e->q, n, &L->bq);
        be->ops->add_bias(be, e->k, n, &L->bk);
        be->ops->add_bias(be, e->v, n, &L->bv);
    }
    if (c->qk_norm == ROE_QK_NORM_FULL) {
        be->ops->rmsnorm(be, e->q, n, &L->q_norm, c->rms_eps, e->q);
        be->ops->rmsnorm(be, e->k, n, &L->k_norm, c->rms_eps, e->k);
    } else if (c->qk_norm == ROE_QK_NORM_PER_HEAD) {
        be->ops->rmsnorm(be, e->q, n * nh, &L->q_norm, c->rms_eps, e->q);
        be->ops->rmsnorm(be, e->k, n * nkv, &L->k_norm, c->rms_eps, e->k);
    }
    if (c->clip_qkv > 0.0f) { /* OLMoE clamps after the q/k norm */
        be->ops->clamp(be, e->q, (size_t)n * qd, c->clip_qkv);
        be->ops->clamp(be, e->k, (size_t)n * kd, c->clip_qkv);
        be->ops->clamp(be, e->v, (size_t)n * kd, c->clip_qkv);
    }
    be->ops->rope(be, e->q, n, nh, hd, e->pos, &e->rope);
    be->ops->rope(be, e->k, n, nkv, hd, e->pos, &e->rope);

    const int n_clean = roe__engine_history(e, layer, rows);
    const struct roe_kv_cache *kv = layer_kv(e, layer);
    if (n_clean) {
        be->ops->kv_store(be, kv->k, kv->dtype, e->kv_dst, e->k, e->kv_src, n_clean, kd);
        be->ops->kv_store(be, kv->v, kv->dtype, e->kv_dst, e->v, e->kv_src, n_clean, kd);
    }
    struct roe_attn_args a = {
        .n_rows = n, .n_heads = nh, .n_kv_heads = nkv, .head_dim = hd,
        .scale = 1.0f / sqrtf((float)hd),
        .q = e->q, .k_self = e->k, .v_self = e->v, .k_cache = roe_kv_layer_ptr(kv, kv->k, e->kv_index[layer]),
        .v_cache = roe_kv_layer_ptr(kv, kv->v, e->kv_index[layer]), .pages = layer_pages(e, layer),
        .hist_begin = e->hbegin, .hist_end = e->hend, .sinks = c->attn_sinks ? &L->sinks : NULL,
        .out = e->att,
    };
    be->ops->attention(be, &a);
    be->ops->matmul(be, e->att, n, &L->wo, e->tmp);
    if (c->o_bias) be->ops->add_bias(be, e->tmp, n, &L->bo);
    be->ops->add(be, e->h, e->tmp, (size_t)n * H);
}

/* Assigns rows to slots: clean and independent rows get their own; a RoE sample whose
 * clean row (same sequence and position, sample 0) is in the step starts as its alias. */
static void assign_slots(roe_engine *e, const struct roe_row *rows, int n) {
    e->n_act = 0;
    for (int i = 0; i < n; i++) e->row_slot[i] = -1;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++) {
            const struct roe_row *r = &rows[i];
            if (r->sample > 0 && !e->opts.no_dedup) {
                int parent = -1;
                for (int j = 0; j < n && parent < 0; j++)
                    if (rows[j].sample == 0 && rows[j].seq == r->seq && rows[j].pos == r->pos) parent = j;
                if (parent >= 0) {
                    if (pass == 1) e->row_slot[i] = e->row_slot[parent];
                    continue;
                }
            }
            if (pass == 1) continue;
            const int j = e->n_act++;
            e->slot_row[j] = i;
            e->row_slot[i] = j;
            e->pos[j] = r->pos;
            e->tokens[j] = r->token;
        }
}

void roe__engine_ffn(roe_engine *e, const struct roe_expert_weights *w, const float *in, int m,
                     float *out) {
    roe_backend *be = e->be;
    if (w->gate_bias.data) { /* gpt-oss: gate and up interleaved in one matrix, biases, clamped */
        const struct roe_model_config *c = &e->model->cfg;
        const int I = w->down.cols;
        be->ops->matmul(be, in, m, &w->gate, e->egate); /* [m, 2I] */
        be->ops->add_bias(be, e->egate, m, &w->gate_bias);
        be->ops->swiglu_oai(be, e->egate, m, I, c->swiglu_alpha, c->swiglu_limit, e->eup);
        be->ops->matmul(be, e->eup, m, &w->down, out);
        be->ops->add_bias(be, out, m, &w->down_bias);
        return;
    }
    const int I = w->gate.rows;
    be->ops->matmul(be, in, m, &w->gate, e->egate);
    be->ops->matmul(be, in, m, &w->up, e->eup);
    be->ops->swiglu(be, e->egate, e->eup, (size_t)m * I, e->egate);
    be->ops->matmul(be, e->egate, m, &w->down, out);
}

/* The final norm and the LM head, once per distinct slot that a row wanting logits maps to;
 * logits[i] for the i-th such row, in row order. */
roe_status roe__engine_lm_head(roe_engine *e, const struct roe_row *rows, int n, float *logits) {
    const struct roe_model *m = e->w;
    const struct roe_model_config *c = &e->model->cfg;
    roe_backend *be = e->be;
    const int H = c->hidden, V = c->vocab_size;
    int nl = 0;
    for (int j = 0; j < e->n_act; j++) e->slot_lrow[j] = -1;
    for (int i = 0; i < n; i++) {
        const int j = e->row_slot[i];
        if (!rows[i].want_logits || e->slot_lrow[j] >= 0) continue;
        e->slot_lrow[j] = nl;
        e->l_src[nl++] = j;
    }
    if (nl == 0) return be->ops->sync(be); /* a device reports its failures here */
    be->ops->copy_rows(be, e->lrows, NULL, e->h, e->l_src, nl, H);
    be->ops->rmsnorm(be, e->lrows, nl, &m->final_norm, c->rms_eps, e->lrows);
    if (e->host_mem && nl == e->n_act && nl == n) { /* every row distinct and wanting logits: write in place */
        be->ops->matmul(be, e->lrows, nl, &m->lm_head, logits);
        return ROE_OK;
    }
    be->ops->matmul(be, e->lrows, nl, &m->lm_head, e->dlogits);
    const float *dl = e->dlogits;
    if (!e->host_mem) {
        ROE_TRY(be->ops->download(be, e->hlogits, e->dlogits, (size_t)nl * V * sizeof(float)));
        dl = e->hlogits;
    }
    for (int i = 0, o = 0; i < n; i++)
        if (rows[i].want_logits)
            memcpy(logits + (size_t)o++ * V, dl + (size_t)e->slot_lrow[e->row_slot[i]] * V,
                   (size_t)V * sizeof(float));
    return ROE_OK;
}

roe_status roe_engine_step(roe_engine *e, const struct roe_row *rows, int n, float *logits) {
    if (roe_comm_size(e->comm) > 1 && !e->driven)
        return roe_fail(ROE_ERR_UNSUPPORTED,
                        "engine step on rank %d of %d outside a cluster step: with several ranks every step "
                        "must go through runtime/cluster.h (this command does not run under mpirun yet)",
                        roe_comm_rank(e->comm), roe_comm_size(e->comm));
    ROE_TRY(roe_rows_check(rows, n, &e->opts, e->model->cfg.vocab_size, e->kv.len, e->seq_next));
    if (e->mor) return roe__mor_step(e, rows, n, logits);
    ROE_TRY(reserve_blocks(e, rows, n));
    const struct roe_model *m = e->w;
    const struct roe_model_config *c = &e->model->cfg;
    roe_backend *be = e->be;
    e->stats = (struct roe_step_stats){.rows = n, .rows_naive = (long)n * c->n_layers};
    /* alone, an empty step is nothing; with other ranks it still serves their MoE rows */
    if (n == 0 && !e->ep) return ROE_OK;
    assign_slots(e, rows, n);
    plan_pages(e, rows);
    if (e->n_act) be->ops->embed(be, &m->embed, e->tokens, e->n_act, e->h);
    for (int l = 0; l < c->n_layers; l++) {
        if (e->n_act) {
            if (c->mla) roe__mla_layer(e, l, rows);
            else attention_layer(e, l, rows);
            be->ops->rmsnorm(be, e->h, e->n_act, &m->layers[l].ffn_norm, c->rms_eps, e->x);
        }
        if (c->layer_is_moe[l]) ROE_TRY(roe__moe_layer(e, l, rows, n));
        else if (e->n_act) {
            roe__engine_ffn(e, &m->layers[l].dense, e->x, e->n_act, e->tmp);
            be->ops->add(be, e->h, e->tmp, (size_t)e->n_act * c->hidden);
        }
        e->stats.rows_computed += e->n_act;
    }
    for (int i = 0; i < n; i++)
        if (rows[i].sample == 0) {
            roe_kv_cache_note(&e->kv, rows[i].seq, rows[i].pos, rows[i].token);
            e->kv.len[rows[i].seq]++;
            if (has_win(e)) {
                roe_kv_cache_note(&e->kv_win, rows[i].seq, rows[i].pos, rows[i].token);
                e->kv_win.len[rows[i].seq]++;
            }
        }
    return roe__engine_lm_head(e, rows, n, logits);
}
