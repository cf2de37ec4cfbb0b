/*
 * model.h — a loaded model: its config, the mapped tensor store, and typed views of
 * every weight the forward pass reads, checked against the config at load time.
 *
 * Weights are not copied: a struct roe_mat points into the read-only mmap of the
 * safetensors file, in the file's dtype (bf16/f16/f32). The model owns the store. One
 * exception: gpt-oss's bf16/f32 experts are stored input-major ([E, H, 2I] and [E, I, H], for
 * x @ W); each expert a process holds is transposed once, in its dtype, into memory the model
 * owns (struct roe_expert_weights::owned), so the kernels see [out, in] like every other weight
 * and like gpt-oss's native MXFP4 layout. roe_model_open leaves them untransposed (not held);
 * roe_model_keep_experts transposes the experts its rank owns, roe_model_materialize all of
 * them, so a rank never holds a copy of another rank's experts. Likewise DeepSeek-V3's absorbed
 * key up-projection (struct roe_layer_weights::wuk_t) is made by both, not by roe_model_open.
 */
#ifndef ROE_MODEL_H
#define ROE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "kernels/backend.h" /* struct roe_mat */
#include "placement.h"
#include "safetensors.h"
#include "base/status.h"

struct roe_expert_weights {
    struct roe_mat gate;  /* [inter, hidden]; gpt-oss (ROE_ACT_SWIGLU_OAI): [2 inter, hidden], gate
                             and up rows interleaved (gate 2i, up 2i + 1) */
    struct roe_mat up;    /* [inter, hidden]; empty for gpt-oss */
    struct roe_mat down;  /* [hidden, inter] */
    struct roe_mat gate_bias; /* gpt-oss: [1, 2 inter] interleaved like gate; empty elsewhere */
    struct roe_mat down_bias; /* gpt-oss: [1, hidden] */
    void *owned;          /* gpt-oss bf16/f32: the transposed gate and down (roe_malloc_aligned) */
    struct roe_mat gate_t;    /* gpt-oss bf16/f32 before the transposition: [hidden, 2 inter] and */
    struct roe_mat down_t;    /* [inter, hidden] views into the checkpoint (gate, down: shapes only) */
};

/* Whether this process holds an expert's weights (another rank's are cleared). */
static inline int roe_expert_held(const struct roe_expert_weights *x) { return x->gate.data != NULL; }

struct roe_layer_weights {
    struct roe_mat attn_norm;  /* [1, hidden] input_layernorm */
    struct roe_mat wq;         /* [n_heads*head_dim, hidden] */
    struct roe_mat wk;         /* [n_kv_heads*head_dim, hidden] */
    struct roe_mat wv;         /* [n_kv_heads*head_dim, hidden] */
    struct roe_mat wo;         /* [hidden, n_heads*head_dim] */
    struct roe_mat q_norm;     /* [1, n_heads*head_dim] (OLMoE) or [1, head_dim] (Qwen3); empty if none */
    struct roe_mat k_norm;     /* [1, n_kv_heads*head_dim] or [1, head_dim] */
    struct roe_mat ffn_norm;   /* [1, hidden] post_attention_layernorm */
    struct roe_mat bq, bk, bv; /* [1, n_heads*head_dim], [1, n_kv_heads*head_dim] x 2: q/k/v biases (qkv_bias) */
    struct roe_mat bo;         /* [1, hidden] o_proj bias (gpt-oss) */
    struct roe_mat sinks;      /* [1, n_heads] attention sink logits (gpt-oss) */
    /* MoE layers */
    struct roe_mat router;     /* [n_experts, hidden] */
    struct roe_mat router_bias; /* [1, n_experts] gpt-oss: added to the router logits */
    struct roe_mat score_bias; /* [1, n_experts] GLM-4.5: e_score_correction_bias (choice only) */
    struct roe_expert_weights *experts; /* [n_experts]; an entry with data == NULL is not owned here */
    struct roe_expert_weights shared;   /* shared expert [shared_intermediate] (Qwen2, GLM-4.5), or empty */
    struct roe_mat shared_gate; /* [1, hidden] Qwen2-MoE: shared_expert_gate */
    /* dense MLP layers (Qwen3 mlp_only_layers, GLM-4.5 first_k_dense_replace) */
    struct roe_expert_weights dense;
    /* multi-head latent attention (DeepSeek-V3; config.h struct roe_mla_config): wq is q_b_proj
     * [heads*(nope+rope), q_lora_rank] (q_proj [.., hidden] without query LoRA), wo is o_proj
     * [hidden, heads*v] with bo its bias; wk, wv, bq, bk, bv stay empty */
    struct roe_mat wq_a;      /* [q_lora_rank, hidden] q_a_proj; empty without query LoRA */
    struct roe_mat bq_a;      /* [1, q_lora_rank] its bias (attention_bias) */
    struct roe_mat q_a_norm;  /* [1, q_lora_rank] q_a_layernorm */
    struct roe_mat wkv_a;     /* [kv_lora_rank + rope, hidden] kv_a_proj_with_mqa */
    struct roe_mat bkv_a;     /* [1, kv_lora_rank + rope] its bias (attention_bias) */
    struct roe_mat kv_a_norm; /* [1, kv_lora_rank] kv_a_layernorm */
    struct roe_mat wkv_b;     /* [heads*(nope+v), kv_lora_rank] kv_b_proj: per head, W_uk's nope rows
                                 then W_uv's v rows (the engine reads the W_uv rows) */
    struct roe_mat wuk_t;     /* [heads*kv_lora_rank, nope] derived: each head's W_uk transposed,
                                 in kv_b_proj's dtype (owned; roe_model_materialize makes it) */
    void *owned;              /* wuk_t's memory (roe_malloc_aligned) */
};

/* Every matrix of a layer outside its routed experts (norms, attention, biases, router, shared
 * and dense MLPs), by offset and name: what counts bytes, warms pages and makes device copies
 * walks this table, so a new tensor is counted everywhere. */
struct roe_layer_mat {
    size_t off;       /* offsetof(struct roe_layer_weights, ...) */
    const char *name;
    int derived;      /* a copy the model made of another tensor (MLA's wuk_t): uploaded and warmed,
                         but its bytes and parameters are the original's, counted there */
};
extern const struct roe_layer_mat roe_layer_mats[];
extern const int roe_n_layer_mats;
static inline struct roe_mat *roe_layer_mat(struct roe_layer_weights *L, int i) {
    return (struct roe_mat *)((char *)L + roe_layer_mats[i].off);
}

/* The matrices of one routed expert, the same way. */
extern const struct roe_layer_mat roe_expert_mats[];
extern const int roe_n_expert_mats;
static inline struct roe_mat *roe_expert_mat(struct roe_expert_weights *x, int i) {
    return (struct roe_mat *)((char *)x + roe_expert_mats[i].off);
}

struct roe_model {
    struct roe_model_config cfg;
    char *dir;                 /* owned */
    roe_store *store;          /* owned */
    struct roe_mat embed;      /* [vocab, hidden] */
    struct roe_mat final_norm; /* [1, hidden] */
    struct roe_mat lm_head;    /* [vocab, hidden] (= embed if tied) */
    struct roe_layer_weights *layers; /* [n_layers], owned (MoR: the unique layers, config.h) */
    /* MoR routers (cfg.mor): expert choice, recursion r's [1, hidden] at mor_router[r - 1]; token
     * choice, the one [n_recursion, hidden] at mor_router[0]. Host memory (the host decides depths). */
    struct roe_mat mor_router[ROE_MOR_MAX_RECURSION];
    size_t dense_bytes;        /* bytes of every non-expert weight (shared experts included) */
    size_t expert_bytes;       /* bytes of one routed expert of a MoE layer (its matrices and biases) */
    size_t n_params;           /* elements of every weight the forward reads */
    size_t expert_params;      /* elements of one routed expert */
    size_t held_bytes;         /* weights this process reads: dense + the experts it holds */
    long held_experts;         /* (MoE layer, expert) pairs it holds */
    int shapes_only;           /* roe_model_shapes: shapes and dtypes, no data (store NULL) */
    struct roe_quant *quant;   /* owned: weights quantized at load (runtime/quant.h); NULL if none */
};

/* Loads dir/config.json and the safetensors, binds and checks every tensor the forward
 * needs (presence, dtype in {F32,F16,BF16}, shape against the config). Every expert held. */
roe_status roe_model_load(const char *dir, struct roe_model **out);

/* roe_model_load without transposing gpt-oss's input-major experts (shapes and checks only;
 * such experts are not held until roe_model_keep_experts or roe_model_materialize): for
 * inspecting a model, and for a rank that keeps only its own experts. */
roe_status roe_model_open(const char *dir, struct roe_model **out);

/* Transposes every expert roe_model_open left input-major (a no-op for other models). */
roe_status roe_model_materialize(struct roe_model *m);
void roe_model_free(struct roe_model *m);

/* A model of this config with no checkpoint: every view has its shape and dtype BF16 but
 * data NULL (shapes_only = 1). Engines on a device backend fill it with random weights
 * (runtime/weights.h); the CPU backend refuses it. For benchmarks. */
roe_status roe_model_shapes(const struct roe_model_config *cfg, struct roe_model **out);

/* Keeps only the experts `rank` owns under the placement: the others' views are cleared
 * (data == NULL), so nothing ever reads them, and its own are transposed where roe_model_open
 * left them input-major. The safetensors files stay mapped whole, but a mapping is lazy: pages
 * never touched are never read from disk nor resident, so the rank's memory holds the dense
 * weights and its own experts only (roe_model_warm touches exactly those). Updates held_bytes /
 * held_experts. Fails only out of memory for a transposition. */
roe_status roe_model_keep_experts(struct roe_model *m, const struct roe_placement *pl, int rank);

/* Reads every page of the weights this process holds (so timed steps read memory, not the
 * disk); returns the bytes touched. */
double roe_model_warm(const struct roe_model *m);

/* Bytes of mapped files resident in this process (RssFile of /proc/self/status: the
 * checkpoint pages it has touched); 0 where the system does not say. */
size_t roe_mapped_resident_bytes(void);

/* Recomputes dense_bytes, expert_bytes (of the first expert held) and held_bytes from the
 * views (held_experts < 0: every expert). For runtime/quant.c, after it replaced views. */
void roe__model_account(struct roe_model *m);

/* Bytes of a matrix's data (block dtypes: with their scales). */
size_t roe_mat_bytes(const struct roe_mat *m);

/* What one token costs (roe inspect, benchmarks): the parameters it uses (every non-expert
 * weight, shared experts included, and top_k routed experts of each MoE layer), and the weight
 * bytes one decode step of one sequence reads (the same, but one row of an untied embedding
 * table). */
size_t roe_model_active_params(const struct roe_model *m);
double roe_model_step_weight_bytes(const struct roe_model *m);

/* Bytes of the clean KV cache per token, fp32 as the engine keeps them (runtime/kv_cache.h): K
 * and V of every layer, or MLA's latent and rope key. */
size_t roe_model_kv_bytes_per_token(const struct roe_model_config *c);

/* What full K and V would cost per token (fp32): MLA's heads x (qk_nope + qk_rope + v) per layer,
 * the cache itself for the other families. */
size_t roe_model_kv_bytes_per_token_full(const struct roe_model_config *c);

#endif
