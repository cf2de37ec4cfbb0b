/*
 * model.h — a loaded model: its config, the mapped tensor store, and typed views of
 * every weight the forward pass reads, checked against the config at load time.
 *
 * Weights are never copied: a struct roe_mat points into the read-only mmap of the
 * safetensors file, in the file's dtype (bf16/f16/f32). The model owns the store.
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
    struct roe_mat gate;  /* [inter, hidden] */
    struct roe_mat up;    /* [inter, hidden] */
    struct roe_mat down;  /* [hidden, inter] */
};

struct roe_layer_weights {
    struct roe_mat attn_norm;  /* [1, hidden] input_layernorm */
    struct roe_mat wq;         /* [n_heads*head_dim, hidden] */
    struct roe_mat wk;         /* [n_kv_heads*head_dim, hidden] */
    struct roe_mat wv;         /* [n_kv_heads*head_dim, hidden] */
    struct roe_mat wo;         /* [hidden, n_heads*head_dim] */
    struct roe_mat q_norm;     /* [1, n_heads*head_dim] (OLMoE) or [1, head_dim] (Qwen3); empty if none */
    struct roe_mat k_norm;     /* [1, n_kv_heads*head_dim] or [1, head_dim] */
    struct roe_mat ffn_norm;   /* [1, hidden] post_attention_layernorm */
    /* MoE layers */
    struct roe_mat router;     /* [n_experts, hidden] */
    struct roe_expert_weights *experts; /* [n_experts]; an entry with data == NULL is not owned here */
    /* dense MLP layers (Qwen3 mlp_only_layers) */
    struct roe_expert_weights dense;
};

struct roe_model {
    struct roe_model_config cfg;
    char *dir;                 /* owned */
    roe_store *store;          /* owned */
    struct roe_mat embed;      /* [vocab, hidden] */
    struct roe_mat final_norm; /* [1, hidden] */
    struct roe_mat lm_head;    /* [vocab, hidden] (= embed if tied) */
    struct roe_layer_weights *layers; /* [n_layers], owned */
    size_t dense_bytes;        /* bytes of every non-expert weight */
    size_t expert_bytes;       /* bytes of one expert (gate + up + down) of a MoE layer */
    size_t held_bytes;         /* weights this process reads: dense + the experts it holds */
    long held_experts;         /* (MoE layer, expert) pairs it holds */
    int shapes_only;           /* roe_model_shapes: shapes and dtypes, no data (store NULL) */
    struct roe_quant *quant;   /* owned: weights quantized at load (runtime/quant.h); NULL if none */
};

/* Loads dir/config.json and the safetensors, binds and checks every tensor the forward
 * needs (presence, dtype in {F32,F16,BF16}, shape against the config). */
roe_status roe_model_load(const char *dir, struct roe_model **out);
void roe_model_free(struct roe_model *m);

/* A model of this config with no checkpoint: every view has its shape and dtype BF16 but
 * data NULL (shapes_only = 1). Engines on a device backend fill it with random weights
 * (runtime/weights.h); the CPU backend refuses it. For benchmarks. */
roe_status roe_model_shapes(const struct roe_model_config *cfg, struct roe_model **out);

/* Keeps only the experts `rank` owns under the placement: the others' views are cleared
 * (data == NULL), so nothing ever reads them. The safetensors files stay mapped whole, but
 * a mapping is lazy: pages never touched are never read from disk nor resident, so the
 * rank's memory holds the dense weights and its own experts only (roe_model_warm touches
 * exactly those). Updates held_bytes / held_experts. */
void roe_model_keep_experts(struct roe_model *m, const struct roe_placement *pl, int rank);

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

#endif
