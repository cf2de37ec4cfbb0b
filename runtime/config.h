/*
 * config.h — the model's hyper-parameters, parsed from a Hugging Face config.json.
 *
 * One struct for every supported family; the family decides the router's gate
 * function, the q/k norm flavour and the tensor names (see MODELS.md). Validation of
 * every field happens here, once, so the engine can trust the struct.
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
} roe_family;

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
    float rope_theta;
    float clip_qkv;       /* 0: no clipping */
    roe_qk_norm qk_norm;
    int sliding_window;   /* 0: full causal attention */
    int tie_word_embeddings;

    int n_experts;
    int top_k;
    int moe_intermediate; /* per-expert FFN width */
    int dense_intermediate; /* width of dense MLP layers (Qwen3 mlp_only_layers), 0 if none */
    int norm_topk_prob;   /* renormalise the k gate weights to sum to 1 */
    uint8_t layer_is_moe[ROE_MAX_LAYERS];

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

#endif
