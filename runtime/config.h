/*
 * config.h — the model's hyper-parameters, parsed from a Hugging Face config.json.
 *
 * One struct for every supported family; the family decides the router's gate
 * function, the q/k norm flavour, the attention extras (biases, sinks, windows per layer),
 * the expert activation, shared experts and the tensor names (MODELS.md, docs/MODELS.md).
 * Validation of every field happens here, once, so the engine can trust the struct.
 */
#ifndef ROE_CONFIG_H
#define ROE_CONFIG_H

#include <stdint.h>

#include "base/status.h"

enum { ROE_MAX_LAYERS = 512, ROE_MAX_EOS = 8 };

typedef enum roe_family {
    ROE_FAMILY_OLMOE = 0,
    ROE_FAMILY_MIXTRAL,
    ROE_FAMILY_QWEN3_MOE,
    ROE_FAMILY_QWEN2_MOE,
    ROE_FAMILY_GLM4_MOE,
    ROE_FAMILY_GPT_OSS,
    ROE_FAMILY_DEEPSEEK_V3, /* DeepSeek-V3 / R1, Kimi K2: multi-head latent attention (struct roe_mla_config) */
    ROE_FAMILY_LLAMA,       /* plain dense Llama (LlamaForCausalLM): every layer a SwiGLU MLP */
    ROE_FAMILY_MOR_LLAMA,   /* Mixture-of-Recursions over a Llama block (struct roe_mor_config) */
} roe_family;

/* How router logits R become k experts and their weights (runtime/router.c, docs/ROE-ROUTING.md). */
typedef enum roe_router_kind {
    ROE_ROUTER_SOFTMAX = 0,   /* p = softmax(R) over all E, top-k of p, renormalised iff norm_topk_prob */
    ROE_ROUTER_TOPK_SOFTMAX,  /* gpt-oss: top-k of R (+ router bias), softmax over those k */
    ROE_ROUTER_SIGMOID_GROUP, /* GLM-4.5, DeepSeek-V3: s = sigmoid(R), chosen by s + bias in the
                                 best topk_group of n_group groups, weights s (renormalised iff
                                 norm_topk_prob) x routed_scaling_factor */
} roe_router_kind;

/* The experts' activation. */
typedef enum roe_expert_act {
    ROE_ACT_SWIGLU = 0, /* down(silu(gate x) * up x) */
    ROE_ACT_SWIGLU_OAI, /* gpt-oss: gate/up rows interleaved in one [2I, H] matrix with a bias;
                           g = min(gate, limit), u = clamp(up, -limit, limit),
                           y = (u + 1) * g * sigmoid(alpha * g); down has a bias */
} roe_expert_act;

typedef enum roe_rope_type {
    ROE_ROPE_DEFAULT = 0,
    ROE_ROPE_YARN,
} roe_rope_type;

/* RoPE as transformers' modeling_rope_utils computes it (runtime/rope.h turns it into the
 * per-pair inverse frequencies and the cos/sin scale). */
struct roe_rope_config {
    roe_rope_type type;
    float theta;
    int dim;                 /* rotated dimensions per head (partial rotary: < head_dim), even */
    /* YaRN */
    float factor;
    float beta_fast, beta_slow;
    float attention_factor;  /* <= 0: from factor (and mscale / mscale_all_dim) */
    float mscale, mscale_all_dim;
    int original_max_position;
    int truncate;
    int interleave;          /* pairs (2j, 2j + 1) rotate, written back as (j, j + dim/2): DeepSeek-V3's
                                rope_interleave (transformers' apply_rotary_pos_emb_interleave) */
};

/* Multi-head latent attention (DeepSeek-V2/V3, Kimi K2; transformers' DeepseekV3Attention):
 *   q = q_b(RMSNorm(q_a x)) (or q_proj x when q_lora_rank is null)    [heads, nope + rope]
 *   [c | k_rope] = kv_a x, c = RMSNorm(c)                             [kv_lora_rank | rope]
 *   k_h = [W_uk_h c | RoPE(k_rope)], v_h = W_uv_h c   (kv_b_proj = [W_uk_h; W_uv_h] per head)
 * The cache keeps [c | RoPE(k_rope)] per position; the engine absorbs W_uk into the query and
 * W_uv into the output (runtime/mla.c). head_dim is qk_rope_dim (the RoPE width), as transformers
 * sets it. */
struct roe_mla_config {
    int q_lora_rank;  /* 0: no query LoRA (q_proj) */
    int kv_lora_rank; /* the latent's width */
    int nope_dim;     /* qk_nope_head_dim */
    int rope_dim;     /* qk_rope_head_dim */
    int v_dim;        /* v_head_dim */
};

/* Mixture-of-Recursions (model_type "mor_llama"; docs/MODELS.md, ../shared/docs/MOR.md): the
 * checkpoint's num_hidden_layers L = 2 + n_recursion x block unrolled layers, middle_cycle sharing
 * (layer 0 unique, a block of `block` layers applied n_recursion times, the last layer unique).
 * The model holds ONE copy of each layer: roe_model_config::n_layers is the unique count 2 + block
 * (index 0: the first layer, 1 + j: the shared block's layer j, 1 + block: the last layer). */
enum { ROE_MOR_MAX_RECURSION = 16 };

typedef enum roe_mor_router {
    ROE_MOR_EXPERT_CHOICE = 0, /* router r: [1, d] on the input of recursion r, sigmoid; recursion r > 1
                                  runs iff recursion r - 1 ran and sigmoid(s_r) >= threshold */
    ROE_MOR_TOKEN_CHOICE,      /* one [n_recursion, d] router on layer 0's output, softmax, top-1: the
                                  token runs recursions 1..argmax + 1 */
} roe_mor_router;

typedef enum roe_mor_kv {
    ROE_MOR_KV_RECURSION_WISE = 0, /* a cache per (recursion, block layer); a token writes it only
                                      at the recursions it runs */
    ROE_MOR_KV_RECURSIVE_SHARING,  /* recursion 1's cache only; later recursions read it */
} roe_mor_kv;

struct roe_mor_config {
    int n_recursion;        /* N_r >= 1; 0: not a MoR model */
    int block;              /* B: layers of the shared block */
    int n_unrolled;         /* L = 2 + N_r B, the checkpoint's num_hidden_layers */
    roe_mor_router router;
    float alpha;            /* gate scale */
    float threshold;        /* expert choice: sigmoid(score) >= threshold continues */
    float capacity[ROE_MOR_MAX_RECURSION]; /* expert choice: training capacities (recorded) */
    roe_mor_kv kv;
};

typedef enum roe_qk_norm {
    ROE_QK_NORM_NONE = 0,
    ROE_QK_NORM_FULL,     /* OLMoE: RMSNorm over the whole projected q (k) [n_heads*head_dim] */
    ROE_QK_NORM_PER_HEAD, /* Qwen3: RMSNorm over each head [head_dim], weights shared by heads */
} roe_qk_norm;

struct roe_model_config {
    roe_family family;
    char model_type[32];
    int vocab_size;
    int hidden;           /* hidden_size */
    int n_layers;
    int n_heads;
    int n_kv_heads;
    int head_dim;
    int max_position;     /* max_position_embeddings: the longest sequence we accept */
    float rms_eps;
    float rope_theta;     /* = rope.theta */
    struct roe_rope_config rope;
    float clip_qkv;       /* 0: no clipping */
    roe_qk_norm qk_norm;
    int sliding_window;   /* the config's window (0: none); which layers use it: layer_window */
    int layer_window[ROE_MAX_LAYERS]; /* per layer: attend the last N positions (self included), 0: all */
    int tie_word_embeddings;
    int qkv_bias;         /* q/k/v projections have biases (Qwen2, GLM-4.5 attention_bias, gpt-oss) */
    int o_bias;           /* o_proj has a bias (gpt-oss) */
    int attn_sinks;       /* gpt-oss: one learned sink logit per head joins each softmax */
    int mla;              /* DeepSeek-V3: multi-head latent attention (mla_cfg); qkv_bias then means
                             q_a_proj and kv_a_proj_with_mqa have biases, o_bias o_proj (attention_bias) */
    struct roe_mla_config mla_cfg;

    int n_experts;
    int top_k;
    int moe_intermediate; /* per-expert FFN width */
    int dense_intermediate; /* width of dense MLP layers (Qwen3 mlp_only_layers), 0 if none */
    int norm_topk_prob;   /* renormalise the k gate weights to sum to 1 */
    roe_router_kind router;
    int router_bias;      /* gpt-oss: the router has a bias */
    int n_group;          /* SIGMOID_GROUP: expert groups (1: none) */
    int topk_group;       /* SIGMOID_GROUP: groups a token may use */
    float routed_scaling; /* SIGMOID_GROUP: routed_scaling_factor (1 elsewhere) */
    roe_expert_act expert_act;
    float swiglu_alpha, swiglu_limit; /* ROE_ACT_SWIGLU_OAI */
    int shared_intermediate; /* width of the shared expert of every MoE layer, 0 if none */
    int shared_gate;      /* Qwen2-MoE: the shared expert's output is scaled by sigmoid(w . x) */
    uint8_t layer_is_moe[ROE_MAX_LAYERS];
    int fp8;              /* quantization_config {"quant_method": "fp8", "fmt": "e4m3", "weight_block_size":
                             [128, 128]}: linears may be F8_E4M3 with weight_scale_inv (docs/MODELS.md "FP8") */
    int mxfp4;            /* quantization_config.quant_method "mxfp4" (gpt-oss): the experts are
                             *_blocks + *_scales, kept as MXFP4 (ROE_DTYPE_MXFP4) */

    struct roe_mor_config mor; /* ROE_FAMILY_MOR_LLAMA only (mor.n_recursion > 0) */

    int bos_token_id;     /* -1 if none */
    int eos_token_id;     /* -1 if none (the first of eos_ids) */
    int eos_ids[ROE_MAX_EOS]; /* every end-of-sequence id: config.json's eos_token_id (an id or a
                                 list) and generation_config.json's, in that order, no repeats */
    int n_eos;
};

/* Parses dir/config.json, then dir/generation_config.json's eos_token_id if the file exists (its
 * ids join eos_ids, as Hugging Face's generate ends at them). Unknown model_type ->
 * ROE_ERR_UNSUPPORTED naming it. */
roe_status roe_config_load(const char *dir, struct roe_model_config *out);

/* Parses config JSON text (for tests); `origin` names the source in messages. */
roe_status roe_config_parse(const char *json, const char *origin, struct roe_model_config *out);

const char *roe_family_name(roe_family f);
int roe_config_n_moe_layers(const struct roe_model_config *c);

/* The first cached position a row at `pos` attends at `layer`: 0, or with a window of w
 * positions (itself included) pos - w + 1. */
static inline int roe_config_history_begin(const struct roe_model_config *c, int layer, int pos) {
    const int w = c->layer_window[layer];
    return w > 0 && pos - w + 1 > 0 ? pos - w + 1 : 0;
}

/* Floats the engine caches per position and layer: the latent and the rope key (MLA), else K
 * and V of every kv head. */
static inline int roe_config_kv_width(const struct roe_model_config *c) {
    return c->mla ? c->mla_cfg.kv_lora_rank + c->mla_cfg.rope_dim : 2 * c->n_kv_heads * c->head_dim;
}

/* Floats per position and layer of full K and V (what a cache of decompressed K/V would hold:
 * MLA's heads x (qk_nope + qk_rope + v); the cache itself elsewhere). */
static inline long roe_config_kv_width_full(const struct roe_model_config *c) {
    if (!c->mla) return roe_config_kv_width(c);
    return (long)c->n_heads * (c->mla_cfg.nope_dim + c->mla_cfg.rope_dim + c->mla_cfg.v_dim);
}

/* Cache layers (K and V of one position) a MoR token holds (docs/KV.md "MoR"): recursive sharing
 * 2 + B (layer 0, recursion 1's block, the last layer); recursion-wise 2 + B x the recursions it
 * ran: with `full` every one (2 + N_r B, a vanilla model of the same unrolled depth), else at the
 * training capacities, 2 + B x sum(capacity) (the paper's (N_r + 1) / (2 N_r) of vanilla's block
 * layers for capacities N_r/N_r, .., 1/N_r). */
static inline double roe_config_mor_kv_layers(const struct roe_model_config *c, roe_mor_kv kv, int full) {
    const struct roe_mor_config *m = &c->mor;
    double ran = 0.0;
    for (int r = 0; r < m->n_recursion; r++) ran += kv == ROE_MOR_KV_RECURSIVE_SHARING ? (r == 0) : full ? 1.0 : m->capacity[r];
    return 2.0 + (double)m->block * ran;
}

/* Cached K/V rows a row at `pos` reads, summed over the layers (windows applied). */
long roe_config_kv_rows_read(const struct roe_model_config *c, int pos);

#endif
