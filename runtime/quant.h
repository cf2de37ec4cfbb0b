/*
 * quant.h — quantized weights from any checkpoint: the `--weights bf16|q8|q4` choice,
 * block quantization of a loaded model's matrices at load time, and saving the result as a
 * checkpoint that loads without quantizing again (`roe quantize`). docs/QUANTIZATION.md.
 *
 * Which matrices: every matmul weight the forward reads — attention q/k/v/o, the experts and
 * dense MLPs (gate, up, down) and the LM head; under q4 the LM head is Q8 (as llama.cpp's
 * Q4_K_M keeps its output matrix at 6 bits: quality, measured in docs/QUANTIZATION.md). Not:
 * the embedding table (a gather of one row per token), the norms, and the routers (their
 * logits take discrete decisions; llama.cpp keeps ffn_gate_inp unquantized too). A matrix
 * already stored in a block dtype (a checkpoint `roe quantize` wrote) stays as it is.
 *
 * Files: a quantized matrix NAME of a checkpoint is stored as
 *   NAME_blocks  I8 [..., rows, blocks, 32] (Q8) or U8 [..., rows, blocks, 16] (Q4)
 *   NAME_scales  F16 [..., rows, blocks]       the d of each block
 *   NAME_mins    F16 [..., rows, blocks]       Q4 only: the m of each block
 * (blocks = roe_dtype_row_blocks: padded with zero blocks), which the store presents as one
 * tensor NAME of dtype Q8 / Q4 (runtime/safetensors.h); every other tensor is copied as is.
 */
#ifndef ROE_QUANT_RT_H
#define ROE_QUANT_RT_H

#include "base/status.h"
#include "model.h"

typedef enum roe_weights {
    ROE_WEIGHTS_BF16 = 0, /* the checkpoint's own float weights, unconverted (bf16 in real ones) */
    ROE_WEIGHTS_Q8,
    ROE_WEIGHTS_Q4,
} roe_weights;

/* "bf16" | "q8" | "q4" -> *out: 1, or 0 if s is none of them. */
int roe_weights_parse(const char *s, roe_weights *out);
const char *roe_weights_name(roe_weights w);

/* Quantizes the matrices the model holds (the dense ones and its experts: call after
 * roe_model_keep_experts) to `w`, in memory the model owns; updates the byte counts. BF16:
 * nothing. A model whose matrices are already in a block dtype is left as it is. */
roe_status roe_model_quantize(struct roe_model *m, roe_weights w);

/* Writes m (loaded whole, then quantized) as a checkpoint in directory `out` (created; must not
 * hold a model already): model.safetensors with every tensor of m's store, the quantized ones
 * as blocks + scales (+ mins), and a copy of every other file of m's directory (config.json,
 * tokenizer...). */
roe_status roe_model_save(const struct roe_model *m, roe_weights w, const char *out);

/* The model's quantized storage (struct roe_model.quant). */
struct roe_quant;
void roe_quant_free(struct roe_quant *q);

#endif
