#!/usr/bin/env python3
"""Generate tiny random MoE checkpoints and reference outputs with Hugging Face transformers.

For each fixture (olmoe, mixtral, qwen3_moe; qwen2_moe, qwen2_moe_b, glm4_moe, glm4_moe_b, gpt_oss,
gpt_oss_b, deepseek_v3, deepseek_v3_b: two shapes of each newer family; deepseek_v3_fp8, glm4_moe_fp8:
block-scaled FP8 checkpoints quantized by tools/fp8.py, the reference computed from the dequantized
weights (deepseek_v3_fp8_b and glm4_moe_fp8_b a second shape of each, the first in two shards);
gpt_oss_mx, gpt_oss_mx_b: gpt-oss with MXFP4 experts from this tool's own quantizer,
mxfp4_quantize) this writes, under
tests/fixtures/<fixture>/:

  model/            config.json + safetensors written by save_pretrained (some: 2 shards + index)
  reference.json    prompts, greedy continuations and metadata (see tests/fixtures/README.md)
  logits.f32        raw little-endian float32 logits [n_prompt_tokens, vocab] per case, concatenated

Procedure (deterministic, fixed torch seed per family):
  1. build the model from a config with attn_implementation="eager" and experts_implementation="eager"
     (the loops of the modeling files) in float32;
  2. re-initialise every parameter with a larger spread than the HF default (so that logits and
     routing are non-degenerate): norms 1 + 0.1*randn, embeddings randn, linears
     randn * gain / sqrt(fan_in), routers randn * router_gain / sqrt(hidden);
  3. round every parameter to the on-disk dtype and back to float32;
  4. reference = float32 forward of those rounded weights; greedy continuation = own loop of
     full-sequence forwards, argmax of the last position, no EOS stopping;
  5. save with save_pretrained in the on-disk dtype, reload with from_pretrained and check that
     the reloaded model reproduces the reference logits exactly;
  6. reject the seed (try the next one) when a greedy step or a router top-k choice is a near tie.

Usage:  .venv/bin/python tools/make_fixtures.py [--family NAME ...] [--out-root tests/fixtures]
"""

import argparse
import json
import os
import re
import shutil
import struct
import sys
import tempfile

import numpy as np
import torch
import transformers
from transformers import (AutoModelForCausalLM, DeepseekV3Config, Glm4MoeConfig, GptOssConfig, MixtralConfig, OlmoeConfig,
                          Qwen2MoeConfig, Qwen3MoeConfig)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp8  # noqa: E402  (tools/fp8.py: roe's own block-scaled FP8 quantizer)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMAND = ".venv/bin/python tools/make_fixtures.py"

N_GREEDY = 32
PROMPT_LENS = (32, 20)
MAX_FIXTURE_BYTES = 2 * 1024 * 1024
# Rejection thresholds for near ties (see module docstring, step 6).
GREEDY_MARGIN_REL = 2e-3   # top1 - top2 along the greedy path >= this * max|logit| of that step
ROUTER_GAP_ABS = 1e-3      # k-th minus (k+1)-th router logit, every token of every MoE layer

FAMILIES = {
    # OLMoE: MHA like the real model, q/k norm over the whole projection, clip_qkv active,
    # top-3 without renormalisation, bf16 on disk. rope_theta differs from each family's usual
    # value (OLMoE 1e4 -> 5e4, Mixtral 1e6 -> 1e4, Qwen3 1e4 default -> 1e6) so that a hard-coded
    # theta fails. config.json rewritten to the legacy
    # top-level "rope_theta" form that the published OLMoE checkpoints use.
    "olmoe": dict(
        config_cls=OlmoeConfig,
        config=dict(
            vocab_size=384,
            hidden_size=104,
            intermediate_size=48,
            num_hidden_layers=3,
            num_attention_heads=4,          # head_dim 26
            num_key_value_heads=4,
            max_position_embeddings=256,
            rms_norm_eps=1e-5,
            rope_parameters={"rope_type": "default", "rope_theta": 50000.0},  # not OLMoE's 10000
            clip_qkv=2.0,
            num_experts=8,
            num_experts_per_tok=3,
            norm_topk_prob=False,
            pad_token_id=1,
            bos_token_id=None,
            eos_token_id=383,
            tie_word_embeddings=False,
        ),
        dtype=torch.bfloat16,
        seed=1234,
        shards=1,
        legacy_rope_theta=True,
    ),
    # Mixtral: GQA (8 heads, 2 kv heads), head_dim null (= hidden/heads = 88/4 = 22),
    # top-2 renormalised, no sliding window, f32 on disk.
    "mixtral": dict(
        config_cls=MixtralConfig,
        config=dict(
            vocab_size=320,
            hidden_size=88,
            intermediate_size=48,
            num_hidden_layers=2,
            num_attention_heads=4,          # head_dim 22
            num_key_value_heads=2,
            max_position_embeddings=256,
            rms_norm_eps=1e-5,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},  # not Mixtral's 1e6
            sliding_window=None,
            num_local_experts=8,
            num_experts_per_tok=2,
            bos_token_id=1,
            eos_token_id=2,
            tie_word_embeddings=False,
        ),
        dtype=torch.float32,
        seed=2345,
        shards=1,
        legacy_rope_theta=False,
    ),
    # Qwen3-MoE: GQA (6 heads, 2 kv heads), explicit head_dim 16 != hidden/heads (72/6 = 12),
    # per-head q/k norm, top-2 renormalised, layer 1 dense (mlp_only_layers), f16 on disk,
    # saved as two shards.
    "qwen3_moe": dict(
        config_cls=Qwen3MoeConfig,
        config=dict(
            vocab_size=512,
            hidden_size=72,
            head_dim=16,
            intermediate_size=80,           # dense MLP layers
            moe_intermediate_size=40,       # each expert
            num_hidden_layers=3,
            num_attention_heads=6,
            num_key_value_heads=2,
            max_position_embeddings=512,
            rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            use_sliding_window=False,
            decoder_sparse_step=1,
            mlp_only_layers=[1],
            num_experts=8,
            num_experts_per_tok=2,
            norm_topk_prob=True,
            bos_token_id=None,
            eos_token_id=511,
            tie_word_embeddings=False,
        ),
        dtype=torch.float16,
        seed=3456,
        shards=2,
        legacy_rope_theta=False,
    ),
    # Qwen2-MoE: GQA 5:1 (head_dim 16), q/k/v biases, 12 experts top-3 without renormalisation, a
    # sigmoid-gated shared expert (56 wide), layer 1 dense (mlp_only_layers), a sliding window of 8
    # on layer 0 only (use_sliding_window, max_window_layers 2: layer_types is written), bf16 on
    # disk in two shards.
    "qwen2_moe": dict(
        config_cls=Qwen2MoeConfig,
        config=dict(
            vocab_size=352, hidden_size=80, intermediate_size=88, moe_intermediate_size=36,
            shared_expert_intermediate_size=56, num_hidden_layers=3, num_attention_heads=5,
            num_key_value_heads=1, max_position_embeddings=256, rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "default", "rope_theta": 20000.0},
            use_sliding_window=True, sliding_window=8, max_window_layers=2,
            decoder_sparse_step=1, mlp_only_layers=[1], num_experts=12, num_experts_per_tok=3,
            norm_topk_prob=False, qkv_bias=True, bos_token_id=None, eos_token_id=351, tie_word_embeddings=False,
        ),
        dtype=torch.bfloat16, seed=4567, shards=2, legacy_rope_theta=False,
    ),
    # Qwen2-MoE, another shape: MHA 4/4, 30 experts top-4 renormalised, decoder_sparse_step 2
    # (layers 1, 3 MoE; 0, 2 dense), no window, f32 on disk.
    "qwen2_moe_b": dict(
        config_cls=Qwen2MoeConfig,
        config=dict(
            vocab_size=301, hidden_size=64, intermediate_size=72, moe_intermediate_size=12,
            shared_expert_intermediate_size=40, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=4, max_position_embeddings=256, rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            decoder_sparse_step=2, mlp_only_layers=[], num_experts=30, num_experts_per_tok=4,
            norm_topk_prob=True, bos_token_id=None, eos_token_id=300, tie_word_embeddings=False,
        ),
        dtype=torch.float32, seed=5678, shards=1, legacy_rope_theta=False,
    ),
    # GLM-4.5: GQA 6:2 with an explicit head_dim 24 (!= 96/6), partial rotary 0.5 (12 of 24 dims),
    # per-head q/k norm, q/k/v biases, 16 experts in 4 groups (2 kept) with a random
    # e_score_correction_bias, top-4, routed_scaling_factor 2.5, one shared expert, layer 0 dense.
    # bf16 on disk, but the router weight and correction bias in F32 as the published
    # checkpoints keep them (_keep_in_fp32_modules_strict).
    "glm4_moe": dict(
        config_cls=Glm4MoeConfig,
        config=dict(
            vocab_size=320, hidden_size=96, head_dim=24, intermediate_size=104, moe_intermediate_size=32,
            num_hidden_layers=3, num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=256,
            rms_norm_eps=1e-5, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0,
                                                "partial_rotary_factor": 0.5},
            n_routed_experts=16, num_experts_per_tok=4, n_shared_experts=1, n_group=4, topk_group=2,
            routed_scaling_factor=2.5, first_k_dense_replace=1, norm_topk_prob=True, use_qk_norm=True,
            attention_bias=True, bos_token_id=None, eos_token_id=319, tie_word_embeddings=False,
        ),
        dtype=torch.bfloat16, seed=6789, shards=1, legacy_rope_theta=False,
        keep_fp32=("mlp.gate.weight", "mlp.gate.e_score_correction_bias"),
    ),
    # GLM-4.5, another shape, written as the published config.json is (top-level rope_theta and
    # partial_rotary_factor): MHA, no q/k norm, no biases, 40 experts in one group, top-6 not
    # renormalised, 2 shared experts, first 2 layers dense, f32 on disk in two shards. 40 sigmoid
    # scores in (0, 1) crowd: a 1e-3 margin on every one of ~200 decisions is never met, so the
    # margin asked is 1e-4 (C and transformers differ by ~1e-7 in these scores).
    "glm4_moe_b": dict(
        config_cls=Glm4MoeConfig,
        config=dict(
            vocab_size=299, hidden_size=64, head_dim=20, intermediate_size=48, moe_intermediate_size=8,
            num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
            rms_norm_eps=1e-5, rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                "partial_rotary_factor": 0.5},
            n_routed_experts=40, num_experts_per_tok=6, n_shared_experts=2, n_group=1, topk_group=1,
            routed_scaling_factor=1.0, first_k_dense_replace=2, norm_topk_prob=False, use_qk_norm=False,
            attention_bias=False, bos_token_id=None, eos_token_id=298, tie_word_embeddings=False,
        ),
        dtype=torch.float32, seed=7890, shards=2, legacy_rope="scaling", router_gap=1e-4,
    ),
    # gpt-oss: GQA 6:2, head_dim 16, biases on q/k/v/o, sinks, sliding window 6 on the even layers
    # (layer_types), YaRN x4 over 64 original positions (truncate false), router with a bias,
    # 8 experts top-2, the clamped SwiGLU with swiglu_limit 2.5 (the default 7 would never clamp
    # these activations) and expert biases; bf16 on disk, written as the published config.json
    # is (rope_scaling + top-level rope_theta).
    "gpt_oss": dict(
        config_cls=GptOssConfig,
        config=dict(
            vocab_size=384, hidden_size=90, head_dim=16, intermediate_size=40, num_hidden_layers=4,
            num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5,
            rope_parameters={"rope_type": "yarn", "rope_theta": 150000.0, "factor": 4.0, "beta_fast": 32.0,
                             "beta_slow": 1.0, "truncate": False, "original_max_position_embeddings": 64},
            sliding_window=6, num_local_experts=8, num_experts_per_tok=2, swiglu_limit=2.5,
            attention_bias=True, bos_token_id=None, eos_token_id=383, tie_word_embeddings=False,
        ),
        dtype=torch.bfloat16, seed=8901, shards=1, legacy_rope="scaling",
    ),
    # gpt-oss, another shape: MHA 4/4 head_dim 24, layer_types reversed (full first), default RoPE,
    # 32 experts top-4, swiglu_alpha 1.2, f32 on disk in two shards.
    "gpt_oss_b": dict(
        config_cls=GptOssConfig,
        config=dict(
            vocab_size=260, hidden_size=64, head_dim=24, intermediate_size=16, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256, rms_norm_eps=1e-5,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            layer_types=["full_attention", "sliding_attention"], sliding_window=5, num_local_experts=32,
            num_experts_per_tok=4, swiglu_alpha=1.2, swiglu_limit=3.0, attention_bias=True,
            bos_token_id=None, eos_token_id=259, tie_word_embeddings=False,
        ),
        dtype=torch.float32, seed=9012, shards=2, legacy_rope_theta=False,
    ),
    # gpt-oss with MXFP4 experts (quantization_config quant_method "mxfp4"): the experts quantized
    # by mxfp4_quantize below (e8m0 scale per 32 from the block max as the OCP MX spec says, values
    # rounded to the nearest e2m1, ties to even) and saved as *_blocks + *_scales; the reference is
    # transformers' fp32 forward of the dequantized weights (and from_pretrained of the MXFP4 files
    # dequantizes to exactly them). GQA 6:2, 7 experts top-2, hidden 96, intermediate 96 (3 x 32:
    # MXFP4 needs multiples of 32, not powers of two), bf16 elsewhere.
    "gpt_oss_mx": dict(
        config_cls=GptOssConfig,
        config=dict(
            vocab_size=352, hidden_size=96, head_dim=16, intermediate_size=96, num_hidden_layers=3,
            num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5,
            rope_parameters={"rope_type": "yarn", "rope_theta": 150000.0, "factor": 4.0, "beta_fast": 32.0,
                             "beta_slow": 1.0, "truncate": False, "original_max_position_embeddings": 64},
            sliding_window=6, num_local_experts=7, num_experts_per_tok=2, swiglu_limit=2.5,
            attention_bias=True, bos_token_id=None, eos_token_id=351, tie_word_embeddings=False,
        ),
        dtype=torch.bfloat16, seed=12345, shards=1, legacy_rope="scaling", mxfp4=True,
    ),
    # gpt-oss MXFP4, another shape: MHA 4/4 head_dim 24, 33 experts top-4, intermediate 160 (5 x 32),
    # hidden 64, default RoPE, f32 elsewhere, two shards.
    "gpt_oss_mx_b": dict(
        config_cls=GptOssConfig,
        config=dict(
            vocab_size=260, hidden_size=64, head_dim=24, intermediate_size=160, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256, rms_norm_eps=1e-5,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            layer_types=["full_attention", "sliding_attention"], sliding_window=5, num_local_experts=33,
            num_experts_per_tok=4, swiglu_alpha=1.2, swiglu_limit=3.0, attention_bias=True,
            bos_token_id=None, eos_token_id=259, tie_word_embeddings=False,
        ),
        dtype=torch.float32, seed=13456, shards=2, legacy_rope_theta=False, mxfp4=True,
    ),
    # DeepSeek-V3: multi-head latent attention with query LoRA (q_lora_rank 40, kv_lora_rank 24,
    # qk_nope 10 + qk_rope 8, v 14: odd sizes, none equal), 6 heads, interleaved RoPE pairs, YaRN
    # x4 over 64 original positions with mscale 0.707 / mscale_all_dim 1.0 (so both the cos/sin
    # scale and the softmax scale's mscale^2 differ from 1), 16 experts in 4 groups (2 kept) with a
    # random correction bias, top-4, routed_scaling_factor 2.5, one shared expert, layer 0 dense;
    # bf16 with the router and its bias in F32 (_keep_in_fp32_modules_strict), config.json written
    # as the published one is (top-level rope_theta, "rope_scaling" with "type": "yarn").
    "deepseek_v3": dict(
        config_cls=DeepseekV3Config,
        config=dict(
            vocab_size=320, hidden_size=88, intermediate_size=104, moe_intermediate_size=24, num_hidden_layers=3,
            num_attention_heads=6, num_key_value_heads=6, q_lora_rank=40, kv_lora_rank=24, qk_nope_head_dim=10,
            qk_rope_head_dim=8, v_head_dim=14, max_position_embeddings=256, rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "beta_fast": 32.0,
                             "beta_slow": 1.0, "mscale": 0.707, "mscale_all_dim": 1.0,
                             "original_max_position_embeddings": 64},
            n_routed_experts=16, num_experts_per_tok=4, n_shared_experts=1, n_group=4, topk_group=2,
            routed_scaling_factor=2.5, first_k_dense_replace=1, norm_topk_prob=True, rope_interleave=True,
            attention_bias=False, bos_token_id=None, eos_token_id=319, tie_word_embeddings=False,
        ),
        dtype=torch.bfloat16, seed=10123, shards=1, legacy_rope="scaling_type",
        keep_fp32=("mlp.gate.weight", "mlp.gate.e_score_correction_bias"),
    ),
    # DeepSeek-V3, another shape: no query LoRA (q_lora_rank null: q_proj), 5 heads, kv_lora_rank 20,
    # qk_nope 12 + qk_rope 6, v 9, rotate-half RoPE (rope_interleave false, default RoPE, theta 2e4),
    # biases on q/kv_a/o (attention_bias), 48 experts in 8 groups (3 kept), top-6 not renormalised,
    # routed_scaling_factor 1.5, 2 shared experts, first 2 of 4 layers dense; f32 in two shards.
    # 48 sigmoid scores crowd as GLM-4.5-b's 40 do: the router margin asked is 1e-4.
    "deepseek_v3_b": dict(
        config_cls=DeepseekV3Config,
        config=dict(
            vocab_size=301, hidden_size=64, intermediate_size=72, moe_intermediate_size=12, num_hidden_layers=4,
            num_attention_heads=5, num_key_value_heads=5, q_lora_rank=None, kv_lora_rank=20, qk_nope_head_dim=12,
            qk_rope_head_dim=6, v_head_dim=9, max_position_embeddings=256, rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "default", "rope_theta": 20000.0},
            n_routed_experts=48, num_experts_per_tok=6, n_shared_experts=2, n_group=8, topk_group=3,
            routed_scaling_factor=1.5, first_k_dense_replace=2, norm_topk_prob=False, rope_interleave=False,
            attention_bias=True, bos_token_id=None, eos_token_id=300, tie_word_embeddings=False,
        ),
        dtype=torch.float32, seed=11234, shards=2, legacy_rope_theta=False, router_gap=1e-4,
    ),
    # DeepSeek-V3 in block-scaled FP8 (tools/fp8.py: e4m3, fp32 weight_scale_inv per 128 x 128 tile,
    # quantization_config as the published checkpoint's): hidden 200 and q_lora_rank 136 (two
    # tiles, the second partial), dense intermediate 264 (three), kv_b_proj 4 heads x (16 + 24) =
    # 160 rows (head 3's rows cross the tile boundary at 128: matmul_heads on a view inside a tile),
    # 8 experts of 40 in 2 groups (1 kept), top-2, one shared expert, layer 0 dense. Linears FP8,
    # the rest bf16 with the router and its bias F32. The reference is transformers' fp32 forward
    # of the dequantized weights (fp8 value x scale, in fp32).
    "deepseek_v3_fp8": dict(
        config_cls=DeepseekV3Config,
        config=dict(
            vocab_size=256, hidden_size=200, intermediate_size=264, moe_intermediate_size=40, num_hidden_layers=3,
            num_attention_heads=4, num_key_value_heads=4, q_lora_rank=136, kv_lora_rank=48, qk_nope_head_dim=16,
            qk_rope_head_dim=8, v_head_dim=24, max_position_embeddings=256, rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "beta_fast": 32.0,
                             "beta_slow": 1.0, "mscale": 1.0, "mscale_all_dim": 1.0,
                             "original_max_position_embeddings": 64},
            n_routed_experts=8, num_experts_per_tok=2, n_shared_experts=1, n_group=2, topk_group=1,
            routed_scaling_factor=2.5, first_k_dense_replace=1, norm_topk_prob=True, rope_interleave=True,
            attention_bias=False, bos_token_id=None, eos_token_id=255, tie_word_embeddings=False,
        ),
        dtype=torch.bfloat16, seed=12345, shards=1, legacy_rope_theta=False, fp8=True,
        keep_fp32=("mlp.gate.weight", "mlp.gate.e_score_correction_bias"),
    ),
    # GLM-4.5-FP8's format on a GLM-4.5 shape: hidden 160, 4 heads of 40 (GQA 4:2), partial rotary
    # 0.5, q/k norm, q/k/v biases (bf16: biases are not quantized), dense intermediate 200, 8 experts
    # of 48 in 2 groups, top-2, one shared expert, layer 0 dense.
    "glm4_moe_fp8": dict(
        config_cls=Glm4MoeConfig,
        config=dict(
            vocab_size=256, hidden_size=160, head_dim=40, intermediate_size=200, moe_intermediate_size=48,
            num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
            rms_norm_eps=1e-5, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0,
                                                "partial_rotary_factor": 0.5},
            n_routed_experts=8, num_experts_per_tok=2, n_shared_experts=1, n_group=2, topk_group=1,
            routed_scaling_factor=2.5, first_k_dense_replace=1, norm_topk_prob=True, use_qk_norm=True,
            attention_bias=True, bos_token_id=None, eos_token_id=255, tie_word_embeddings=False,
        ),
        dtype=torch.bfloat16, seed=13456, shards=1, legacy_rope_theta=False, fp8=True,
        keep_fp32=("mlp.gate.weight", "mlp.gate.e_score_correction_bias"),
    ),
    # DeepSeek-V3 FP8, a second shape, in two shards with an index (a weight and its
    # weight_scale_inv in different shards: save_fp8): no query LoRA (q_proj [100, 136]: a partial
    # tile in both dimensions), 5 heads, kv_lora_rank 36, nope 12 + rope 8, v 20 (kv_b_proj 160
    # rows), rotate-half default RoPE, biases on q/kv_a/o (bf16, not quantized), hidden 136 (two
    # column tiles, the second 8 wide), 9 experts of 40 in 3 groups (2 kept), top-3 not
    # renormalised, x 1.5, 2 shared experts, layer 0 dense (144).
    "deepseek_v3_fp8_b": dict(
        config_cls=DeepseekV3Config,
        config=dict(
            vocab_size=288, hidden_size=136, intermediate_size=144, moe_intermediate_size=40, num_hidden_layers=3,
            num_attention_heads=5, num_key_value_heads=5, q_lora_rank=None, kv_lora_rank=36, qk_nope_head_dim=12,
            qk_rope_head_dim=8, v_head_dim=20, max_position_embeddings=256, rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "default", "rope_theta": 20000.0},
            n_routed_experts=9, num_experts_per_tok=3, n_shared_experts=2, n_group=3, topk_group=2,
            routed_scaling_factor=1.5, first_k_dense_replace=1, norm_topk_prob=False, rope_interleave=False,
            attention_bias=True, bos_token_id=None, eos_token_id=287, tie_word_embeddings=False,
        ),
        dtype=torch.bfloat16, seed=14567, shards=2, legacy_rope_theta=False, fp8=True,
        keep_fp32=("mlp.gate.weight", "mlp.gate.e_score_correction_bias"),
    ),
    # GLM-4.5 FP8, a second shape: 6 heads of 24 (GQA 6:2; q_proj [144, 136]: partial tiles), partial
    # rotary 0.5 (12 of 24), no q/k norm, no attention biases, hidden 136, dense intermediate 152, 7
    # experts of 56 in one group, top-3, x 1.0, one shared expert, layer 0 dense.
    "glm4_moe_fp8_b": dict(
        config_cls=Glm4MoeConfig,
        config=dict(
            vocab_size=272, hidden_size=136, head_dim=24, intermediate_size=152, moe_intermediate_size=56,
            num_hidden_layers=3, num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=256,
            rms_norm_eps=1e-5, rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                "partial_rotary_factor": 0.5},
            n_routed_experts=7, num_experts_per_tok=3, n_shared_experts=1, n_group=1, topk_group=1,
            routed_scaling_factor=1.0, first_k_dense_replace=1, norm_topk_prob=True, use_qk_norm=False,
            attention_bias=False, bos_token_id=None, eos_token_id=271, tie_word_embeddings=False,
        ),
        dtype=torch.bfloat16, seed=15678, shards=1, legacy_rope_theta=False, fp8=True,
        keep_fp32=("mlp.gate.weight", "mlp.gate.e_score_correction_bias"),
    ),
}

LINEAR_GAIN = 1.5   # linear weights ~ N(0, (1.5/sqrt(fan_in))^2): std 0.15-0.22 at these sizes
ROUTER_GAIN = 2.5   # router logits have std ~2.5 -> top-k choices well separated
HEAD_GAIN = 2.0     # lm_head


BIAS_GAIN = 0.3     # q/k/v/o and expert biases ~ N(0, 0.3^2)
ROUTER_BIAS_GAIN = 0.5
SINK_GAIN = 2.0     # gpt-oss attention sinks ~ N(0, 2^2): some above the scores, some below
SCORE_BIAS_GAIN = 0.15  # GLM-4.5 e_score_correction_bias against sigmoid scores in (0, 1)


def init_params(model, hidden, transposed_experts=False):
    """Deterministic re-initialisation (caller seeds torch). transposed_experts: gpt-oss stores
    experts as [E, in, out] (x @ W), so fan_in is the middle dimension."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):  # input/post_attention layernorm, q_norm, k_norm, model.norm
                p.copy_(1.0 + 0.1 * torch.randn(p.shape))
            elif name == "model.embed_tokens.weight":
                p.copy_(torch.randn(p.shape))
            elif name.endswith("mlp.gate.weight") or name.endswith("mlp.router.weight"):  # router [E, hidden]
                p.copy_(torch.randn(p.shape) * (ROUTER_GAIN / hidden ** 0.5))
            elif name == "lm_head.weight":
                p.copy_(torch.randn(p.shape) * (HEAD_GAIN / hidden ** 0.5))
            elif name.endswith("self_attn.sinks"):
                p.copy_(torch.randn(p.shape) * SINK_GAIN)
            elif name.endswith("mlp.router.bias"):
                p.copy_(torch.randn(p.shape) * ROUTER_BIAS_GAIN)
            elif name.endswith(".bias") or name.endswith("_bias"):  # attention and expert biases
                p.copy_(torch.randn(p.shape) * BIAS_GAIN)
            elif p.dim() >= 2:  # [out, in] linears and fused experts [E, out, in] ([E, in, out] for gpt-oss)
                fan_in = p.shape[-2] if transposed_experts and p.dim() == 3 else p.shape[-1]
                p.copy_(torch.randn(p.shape) * (LINEAR_GAIN / fan_in ** 0.5))
            else:
                raise RuntimeError(f"unexpected parameter {name} {tuple(p.shape)}")
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.copy_(torch.randn(b.shape) * SCORE_BIAS_GAIN)


def kept_fp32(name, spec):
    return any(name.endswith(k) for k in spec.get("keep_fp32", ()))


def round_params(model, dtype, spec=None):
    """Rounds every parameter (and the persistent routing buffers) to the on-disk dtype and back,
    except those the spec keeps in fp32 on disk."""
    spec = spec or {}
    with torch.no_grad():
        for name, p in list(model.named_parameters()) + list(model.named_buffers()):
            if name.endswith("inv_freq") or kept_fp32(name, spec):
                continue
            p.copy_(p.to(dtype).to(torch.float32))


@torch.no_grad()
def forward(model, ids, router=False):
    out = model(torch.tensor([ids], dtype=torch.long), output_router_logits=router, use_cache=False)
    return out


@torch.no_grad()
def greedy(model, prompt, n):
    ids = list(prompt)
    out, margins, maxabs = [], [], []
    for _ in range(n):
        logits = forward(model, ids).logits[0, -1]
        top = torch.topk(logits, 2)
        margins.append(float(top.values[0] - top.values[1]))
        maxabs.append(float(logits.abs().max()))
        nxt = int(top.indices[0])
        out.append(nxt)
        ids.append(nxt)
    return out, margins, maxabs


@torch.no_grad()
def router_min_gap(model, ids, k):
    """Smallest gap between the k-th and (k+1)-th router logit over all tokens and MoE layers."""
    out = forward(model, ids, router=True)
    gaps = []
    for rl in out.router_logits:
        s = torch.sort(rl.float(), dim=-1, descending=True).values
        gaps.append(float((s[:, k - 1] - s[:, k]).min()))
    return min(gaps), len(out.router_logits)


@torch.no_grad()
def router_min_gap_hooked(model, ids, cfg):
    """The newer families' routers, captured by hooks (their router modules return the logits
    first): the smallest margin of any routing decision over every token and MoE layer. Softmax
    routers: k-th minus (k+1)-th logit. GLM-4.5: on sigmoid(logit) + e_score_correction_bias, the
    kept groups' margin (topk_group-th minus next group score) and the k-th minus (k+1)-th masked
    score."""
    logs = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: logs.append((mod, out[0].float())))
             for m in model.modules() if type(m).__name__.lower().endswith("topkrouter")]
    forward(model, ids)
    for h in hooks:
        h.remove()
    k, gaps = cfg.num_experts_per_tok, []
    for mod, rl in logs:
        if cfg.model_type not in ("glm4_moe", "deepseek_v3"):
            s_ = torch.sort(rl, dim=-1, descending=True).values
            gaps.append(float((s_[:, k - 1] - s_[:, k]).min()))
            continue
        choice = rl.sigmoid() + mod.e_score_correction_bias.float()
        G, tg = cfg.n_group, cfg.topk_group
        gs = choice.view(-1, G, choice.shape[-1] // G).topk(2, dim=-1)[0].sum(-1)
        if tg < G:
            sg = torch.sort(gs, dim=-1, descending=True).values
            gaps.append(float((sg[:, tg - 1] - sg[:, tg]).min()))
        keep = torch.zeros_like(gs).scatter_(1, gs.topk(tg, dim=-1)[1], 1).bool()
        mask = keep.unsqueeze(-1).expand(-1, G, choice.shape[-1] // G).reshape(choice.shape)
        sc = torch.sort(choice.masked_fill(~mask, float("-inf")), dim=-1, descending=True).values
        gaps.append(float((sc[:, k - 1] - sc[:, k]).min()))
    return min(gaps), len(logs)


class SwigluClampStats:
    """Counts the gpt-oss expert activations that the clamped SwiGLU clamps (gate above the
    limit, up outside [-limit, limit])."""

    def __init__(self, model):
        self.counts = {"gate": [0, 0], "up": [0, 0]}
        self.saved = []
        for m in model.modules():
            if type(m).__name__ == "GptOssExperts":
                orig = m._apply_gate
                self.saved.append((m, orig))
                m._apply_gate = self._wrap(m, orig)

    def _wrap(self, mod, orig):
        def fn(gate_up):
            g, u = gate_up[..., ::2], gate_up[..., 1::2]
            self.counts["gate"][0] += int((g > mod.limit).sum())
            self.counts["gate"][1] += g.numel()
            self.counts["up"][0] += int((u.abs() > mod.limit).sum())
            self.counts["up"][1] += u.numel()
            return orig(gate_up)
        return fn

    def remove(self):
        for m, orig in self.saved:
            m._apply_gate = orig


def param_counts(model, cfg):
    """Parameters the forward reads (HF parameters + the persistent correction biases) and the
    active ones per token: everything but the routed experts, plus top_k of each MoE layer's."""
    total = sum(p.numel() for p in model.parameters())
    total += sum(b.numel() for n, b in model.named_buffers() if n.endswith("e_score_correction_bias"))
    routed = sum(p.numel() for n, p in model.named_parameters() if ".mlp.experts." in n)
    n_experts = getattr(cfg, "num_local_experts", None) or getattr(cfg, "num_experts", None) or cfg.n_routed_experts
    return total, total - routed + routed * cfg.num_experts_per_tok // n_experts


def step_bytes_from_files(model_dir, cfg):
    """Weight bytes one decode step of one sequence reads, from the safetensors headers: every
    tensor but the routed experts' and the embedding table (one row of it), plus top_k routed
    experts of each MoE layer."""
    index = os.path.join(model_dir, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    sizes = {}
    for fn in files:
        with open(os.path.join(model_dir, fn), "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        for name, info in header.items():
            if name != "__metadata__":
                sizes[name] = (info["data_offsets"][1] - info["data_offsets"][0], info["dtype"], info["shape"])
    routed = sum(b for name, (b, _, _) in sizes.items() if ".mlp.experts." in name)
    dense = sum(b for name, (b, _, _) in sizes.items() if ".mlp.experts." not in name)
    emb_bytes, emb_dtype, emb_shape = sizes["model.embed_tokens.weight"]
    dense += emb_bytes // emb_shape[0] - emb_bytes
    n_experts = getattr(cfg, "num_local_experts", None) or getattr(cfg, "num_experts", None) or cfg.n_routed_experts
    return dense + routed * cfg.num_experts_per_tok // n_experts


class ClipStats:
    """Counts the q/k/v elements that OLMoE's clip_qkv clamps (values seen before the in-place clamp)."""

    def __init__(self, model, clip):
        self.clip = clip
        self.counts = {"q": [0, 0], "k": [0, 0], "v": [0, 0]}
        self.handles = []
        for layer in model.model.layers:
            a = layer.self_attn
            for key, mod in (("q", a.q_norm), ("k", a.k_norm), ("v", a.v_proj)):
                self.handles.append(mod.register_forward_hook(self._hook(key)))

    def _hook(self, key):
        def fn(_mod, _inp, out):
            self.counts[key][0] += int((out.abs() > self.clip).sum())
            self.counts[key][1] += out.numel()
        return fn

    def remove(self):
        for h in self.handles:
            h.remove()


# ---------------------------------------------------------------------------------------------
# Independent float64 numpy forward, written from the semantics documented in
# tests/fixtures/README.md and reading the safetensors files directly (own parser). Used as a
# self-check that the README describes what HF computes.

# ---- MXFP4 (OCP Microscaling v1.0, e2m1 elements, e8m0 scale per 32) ----

E2M1 = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])
MXFP4_MODULES_NOT_CONVERTED = ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens",
                               "lm_head"]


def mxfp4_quantize(w):
    """w [..., n] (n % 32 == 0) -> (blocks uint8 [..., n/32, 16], scales uint8 [..., n/32]).
    Per block of 32: shared exponent X = floor(log2(max|w|)) - 2 (e2m1's largest exponent; OCP MX
    spec 6.3), clamped to the e8m0 range [-127, 127] (an all-zero block: X = 0); each w / 2^X
    rounded to the nearest e2m1 value, ties to the even mantissa, saturating at 6. Value 2j of a
    block is the low nibble of byte j (transformers' convert_moe_packed_tensors)."""
    w = np.asarray(w, dtype=np.float64)
    v = w.reshape(*w.shape[:-1], w.shape[-1] // 32, 32)
    amax = np.abs(v).max(axis=-1)
    with np.errstate(divide="ignore"):
        x = np.where(amax > 0, np.floor(np.log2(np.where(amax > 0, amax, 1.0))) - 2, 0)
    x = np.clip(x, -127, 127)
    a = np.minimum(np.abs(v) / np.exp2(x)[..., None], 6.0)
    d = np.abs(a[..., None] - E2M1)                    # distance to each magnitude
    best = d.min(axis=-1, keepdims=True)
    tie_even = np.where(d == best, np.arange(8) % 2, 9)  # among the nearest, the even code
    code = np.argmin(tie_even + np.where(d == best, 0, 100), axis=-1)
    code = np.where((v < 0) & (code > 0), code | 8, code).astype(np.uint8)
    blocks = (code[..., 0::2] | (code[..., 1::2] << 4)).astype(np.uint8)
    return blocks, (x + 127).astype(np.uint8)


def mxfp4_dequantize(blocks, scales):
    """The inverse: float64 [..., n/32 * 32] = e2m1 * 2^(scale - 127)."""
    lut = np.concatenate([E2M1, -E2M1])
    lo, hi = lut[blocks & 15], lut[blocks >> 4]
    v = np.stack([lo, hi], axis=-1).reshape(*blocks.shape[:-1], 32)
    v = v * np.exp2(scales.astype(np.float64) - 127)[..., None]
    return v.reshape(*blocks.shape[:-2], -1)


def mxfp4_experts(model):
    """Quantizes every gpt-oss expert matrix in place (stored [E, in, out]: blocks along in)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("mlp.experts.gate_up_proj") or name.endswith("mlp.experts.down_proj"):
                w = p.detach().double().numpy().transpose(0, 2, 1)  # [E, out, in]
                deq = mxfp4_dequantize(*mxfp4_quantize(w)).transpose(0, 2, 1)
                p.copy_(torch.from_numpy(np.ascontiguousarray(deq)).float())


def mxfp4_rewrite(model_dir):
    """Replaces the saved (already MXFP4-exact) expert matrices of every shard by NAME_blocks and
    NAME_scales, and writes quantization_config into config.json."""
    from safetensors.torch import load_file, save_file
    index = os.path.join(model_dir, "model.safetensors.index.json")
    shards = sorted(f for f in os.listdir(model_dir) if f.endswith(".safetensors"))
    weight_map = {}
    for fn in shards:
        path = os.path.join(model_dir, fn)
        t = load_file(path)
        out = {}
        for name, a in t.items():
            if name.endswith("mlp.experts.gate_up_proj") or name.endswith("mlp.experts.down_proj"):
                w = a.double().numpy().transpose(0, 2, 1)
                blocks, scales = mxfp4_quantize(w)
                if not np.array_equal(mxfp4_dequantize(blocks, scales), w):
                    raise RuntimeError(f"{name}: not MXFP4-exact after mxfp4_experts")
                out[name + "_blocks"] = torch.from_numpy(np.ascontiguousarray(blocks))
                out[name + "_scales"] = torch.from_numpy(np.ascontiguousarray(scales))
            else:
                out[name] = a
        save_file(out, path, metadata={"format": "pt"})
        os.chmod(path, 0o644)
        weight_map.update({n: fn for n in out})
    if os.path.exists(index):
        with open(index) as f:
            idx = json.load(f)
        idx["weight_map"] = dict(sorted(weight_map.items()))
        with open(index, "w") as f:
            json.dump(idx, f, indent=2)
            f.write("\n")
    cfg_path = os.path.join(model_dir, "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["quantization_config"] = {"quant_method": "mxfp4", "modules_to_not_convert": MXFP4_MODULES_NOT_CONVERTED}
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


def mxfp4_reload(model_dir, cfg):
    """The MXFP4 checkpoint as transformers reads it: every tensor of the files, the experts
    dequantized by transformers' own convert_moe_packed_tensors (what from_pretrained does with
    Mxfp4Config(dequantize=True); from_pretrained itself needs accelerate, absent here)."""
    from safetensors.torch import load_file
    from transformers.integrations.mxfp4 import convert_moe_packed_tensors
    state = {}
    for fn in sorted(f for f in os.listdir(model_dir) if f.endswith(".safetensors")):
        state.update(load_file(os.path.join(model_dir, fn)))
    for name in [n for n in state if n.endswith("_blocks")]:
        base = name[:-len("_blocks")]
        state[base] = convert_moe_packed_tensors(state.pop(name), state.pop(base + "_scales"), dtype=torch.float32)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", experts_implementation="eager",
                                             dtype=torch.float32)
    missing, unexpected = model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    if unexpected or [k for k in missing if not k.endswith("inv_freq")]:
        raise RuntimeError(f"mxfp4 reload: missing {missing}, unexpected {unexpected}")
    return model.eval()


def read_safetensors_dir(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    tensors = {}
    for fn in files:
        with open(os.path.join(model_dir, fn), "rb") as f:
            buf = f.read()
        (n,) = struct.unpack("<Q", buf[:8])
        header = json.loads(buf[8:8 + n])
        data = buf[8 + n:]
        for name, info in header.items():
            if name == "__metadata__":
                continue
            b, e = info["data_offsets"]
            raw = data[b:e]
            dt = info["dtype"]
            if dt == "BF16":
                a = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
            elif dt == "F16":
                a = np.frombuffer(raw, "<f2")
            elif dt == "F32":
                a = np.frombuffer(raw, "<f4")
            elif dt == "F8_E4M3":
                a = fp8.E4M3_VALUES[np.frombuffer(raw, np.uint8)]
            elif dt == "U8":  # MXFP4 blocks / scales, decoded below
                a = np.frombuffer(raw, np.uint8)
            else:
                raise ValueError(dt)
            assert name not in tensors, name
            tensors[name] = (a if dt == "U8" else a.astype(np.float64)).reshape(info["shape"])
    for name in [n for n in tensors if n.endswith("_scale_inv")]:  # FP8: value x its tile's scale, in float64
        w, sc = tensors[name[:-len("_scale_inv")]], tensors.pop(name)
        w *= np.repeat(np.repeat(sc, fp8.BLOCK, 0), fp8.BLOCK, 1)[:w.shape[0], :w.shape[1]]
    for name in [n for n in tensors if n.endswith("_blocks")]:  # [E, out, in/32, 16] -> [E, in, out]
        base = name[:-len("_blocks")]
        tensors[base] = mxfp4_dequantize(tensors.pop(name), tensors.pop(base + "_scales")).transpose(0, 2, 1)
    return tensors


def np_rmsnorm(x, w, eps):
    return w * (x / np.sqrt((x * x).mean(-1, keepdims=True) + eps))


def np_rope(x, theta, inv_freq=None, scale=1.0):
    """x: [T, H, d]; HF "rotate half" over the first 2 * len(inv_freq) dims (partial rotary
    passes the rest through): dimension j pairs with j + rot/2; cos, sin scaled by `scale`."""
    T, _, d = x.shape
    if inv_freq is None:
        inv_freq = theta ** (-np.arange(0, d, 2, dtype=np.float64) / d)
    rot = 2 * len(inv_freq)
    ang = np.arange(T, dtype=np.float64)[:, None] * inv_freq[None, :]
    cos = np.concatenate([np.cos(ang), np.cos(ang)], -1)[:, None, :] * scale
    sin = np.concatenate([np.sin(ang), np.sin(ang)], -1)[:, None, :] * scale
    xr, xp = x[..., :rot], x[..., rot:]
    x1, x2 = xr[..., : rot // 2], xr[..., rot // 2:]
    return np.concatenate([xr * cos + np.concatenate([-x2, x1], -1) * sin, xp], -1)


def np_rope_params(cfg, hd):
    """inv_freq and the cos/sin scale, in float64, from config.json as modeling_rope_utils reads
    it: default or YaRN; top-level (legacy) or rope_parameters fields; partial rotary."""
    rp = dict(cfg.get("rope_scaling") or {})
    rp.update(cfg.get("rope_parameters") or {})
    theta = rp.get("rope_theta", cfg.get("rope_theta"))
    partial = rp.get("partial_rotary_factor", cfg.get("partial_rotary_factor", 1.0))
    dim = int(hd * partial)
    kind = rp.get("rope_type", rp.get("type", "default"))
    extrap = 1.0 / theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim)
    if kind == "default":
        return extrap, 1.0
    assert kind == "yarn", kind
    factor, orig = rp["factor"], rp.get("original_max_position_embeddings", cfg["max_position_embeddings"])
    bf, bs = rp.get("beta_fast") or 32, rp.get("beta_slow") or 1
    corr = lambda rot: dim * np.log(orig / (rot * 2 * np.pi)) / (2 * np.log(theta))
    low, high = corr(bf), corr(bs)
    if rp.get("truncate", True):
        low, high = np.floor(low), np.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = np.clip((np.arange(dim // 2, dtype=np.float64) - low) / (high - low), 0, 1)
    e = 1 - ramp
    inv = extrap / factor * (1 - e) + extrap * e
    mscale = lambda m: 0.1 * m * np.log(factor) + 1.0 if factor > 1 else 1.0
    scale = rp.get("attention_factor")
    if scale is None:
        scale = mscale(rp["mscale"]) / mscale(rp["mscale_all_dim"]) if rp.get("mscale") and rp.get("mscale_all_dim") \
            else mscale(1.0)
    return inv, scale


def np_mla_softmax_scale(cfg):
    """DeepSeek-V3's softmax scale: qk_head_dim^-0.5, times mscale(factor, mscale_all_dim)^2 for YaRN."""
    rp = dict(cfg.get("rope_scaling") or {})
    rp.update(cfg.get("rope_parameters") or {})
    scale = (cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]) ** -0.5
    if rp.get("rope_type", rp.get("type", "default")) != "default" and rp.get("mscale_all_dim"):
        f = rp["factor"]
        m = 0.1 * rp["mscale_all_dim"] * np.log(f) + 1.0 if f > 1 else 1.0
        scale *= m * m
    return scale


def np_rope_pairs(x, inv_freq, scale, interleave):
    """x: [T, H, d], every dim rotated. interleave: the pair of angle j is (2j, 2j+1), written to
    (j, j + d/2) (apply_rotary_pos_emb_interleave); else rotate half."""
    if not interleave:
        return np_rope(x, None, inv_freq, scale)
    T = x.shape[0]
    ang = np.arange(T, dtype=np.float64)[:, None] * inv_freq[None, :]
    cos, sin = (np.cos(ang) * scale)[:, None, :], (np.sin(ang) * scale)[:, None, :]
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)


def np_mla_attention(cfg, W, p, h, inv_freq, scale):
    """DeepSeek-V3's attention written the way transformers computes it (the latent decompressed
    into every head's K and V), not the absorbed form roe computes."""
    T, nh, eps = h.shape[0], cfg["num_attention_heads"], cfg["rms_norm_eps"]
    nope, rope, vd, R = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"], cfg["kv_lora_rank"]

    def lin(x, name):
        y = x @ W[p + name + ".weight"].T
        return y + W[p + name + ".bias"] if p + name + ".bias" in W else y

    if cfg.get("q_lora_rank"):
        qa = np_rmsnorm(lin(h, "self_attn.q_a_proj"), W[p + "self_attn.q_a_layernorm.weight"], eps)
        q = lin(qa, "self_attn.q_b_proj")
    else:
        q = lin(h, "self_attn.q_proj")
    q = q.reshape(T, nh, nope + rope)
    ckv = lin(h, "self_attn.kv_a_proj_with_mqa")
    c = np_rmsnorm(ckv[:, :R], W[p + "self_attn.kv_a_layernorm.weight"], eps)
    il = cfg.get("rope_interleave", True)
    q_rot = np_rope_pairs(q[:, :, nope:], inv_freq, scale, il)
    k_rot = np_rope_pairs(ckv[:, None, R:], inv_freq, scale, il)
    kv = (c @ W[p + "self_attn.kv_b_proj.weight"].T).reshape(T, nh, nope + vd)
    k = np.concatenate([kv[:, :, :nope], np.broadcast_to(k_rot, (T, nh, rope))], -1)
    qf = np.concatenate([q[:, :, :nope], q_rot], -1)
    sm = np_mla_softmax_scale(cfg)
    mask = np.where(np.arange(T)[None, :] <= np.arange(T)[:, None], 0.0, -np.inf)
    out = np.zeros((T, nh, vd))
    for hh in range(nh):
        sc = qf[:, hh] @ k[:, hh].T * sm + mask
        sc = np.exp(sc - sc.max(-1, keepdims=True))
        sc /= sc.sum(-1, keepdims=True)
        out[:, hh] = sc @ kv[:, hh, nope:]
    return lin(out.reshape(T, nh * vd), "self_attn.o_proj")


def np_silu(x):
    return x / (1.0 + np.exp(-x))


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_mlp(W, pre, h):
    return (np_silu(h @ W[pre + "gate_proj.weight"].T) * (h @ W[pre + "up_proj.weight"].T)) @ W[pre + "down_proj.weight"].T


def np_route(cfg, mt, W, p, logits):
    """(experts, weights) of one token's router logits, per family (MODELS.md)."""
    k = cfg["num_experts_per_tok"]
    if mt == "gpt_oss":
        top = np.argsort(-logits, kind="stable")[:k]
        w = np.exp(logits[top] - logits[top].max())
        return top, w / w.sum()
    if mt in ("glm4_moe", "deepseek_v3"):
        s = np_sigmoid(logits)
        c = s + W[p + "mlp.gate.e_score_correction_bias"]
        G, tg = cfg["n_group"], cfg["topk_group"]
        gs = np.sort(c.reshape(G, -1), -1)[:, -2:].sum(-1)
        keep = np.argsort(-gs, kind="stable")[:tg]
        masked = np.full_like(c, -np.inf)
        for g in keep:
            masked[g * (len(c) // G):(g + 1) * (len(c) // G)] = c[g * (len(c) // G):(g + 1) * (len(c) // G)]
        top = np.argsort(-masked, kind="stable")[:k]
        w = s[top]
        if cfg["norm_topk_prob"]:
            w = w / (w.sum() + 1e-20)
        return top, w * cfg["routed_scaling_factor"]
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    top = np.argsort(-probs, kind="stable")[:k]
    w = probs[top]
    renorm = True if mt == "mixtral" else cfg["norm_topk_prob"]
    return top, (w / w.sum() if renorm else w)


def np_expert(cfg, mt, W, p, ename, e, x):
    if mt == "gpt_oss":  # [H, 2I] interleaved, biases, clamped SwiGLU
        gu = x @ W[p + "mlp.experts.gate_up_proj"][e] + W[p + "mlp.experts.gate_up_proj_bias"][e]
        lim, alpha = cfg.get("swiglu_limit", 7.0), cfg.get("swiglu_alpha", 1.702)
        g, u = np.minimum(gu[::2], lim), np.clip(gu[1::2], -lim, lim)
        a = (u + 1) * g * np_sigmoid(alpha * g)
        return a @ W[p + "mlp.experts.down_proj"][e] + W[p + "mlp.experts.down_proj_bias"][e]
    a = np_silu(W[ename(e, "gate")] @ x) * (W[ename(e, "up")] @ x)
    return W[ename(e, "down")] @ a


def np_is_sparse(cfg, mt, i, E):
    if mt in ("glm4_moe", "deepseek_v3"):
        return i >= cfg["first_k_dense_replace"]
    if mt in ("qwen3_moe", "qwen2_moe"):
        return (i not in cfg["mlp_only_layers"]) and E > 0 and (i + 1) % cfg["decoder_sparse_step"] == 0
    return True


def np_window(cfg, mt, i):
    """Positions a query at layer i attends back (itself included); None: all."""
    if mt in ("gpt_oss", "qwen2_moe"):
        return cfg["sliding_window"] if cfg["layer_types"][i] == "sliding_attention" else None
    if mt == "qwen3_moe" and not cfg.get("use_sliding_window"):
        return None
    return cfg.get("sliding_window")


def np_attention(cfg, mt, W, p, h, inv_freq, scale, i):
    H, nh, nkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or H // nh
    eps, T = cfg["rms_norm_eps"], h.shape[0]
    proj = {}
    for n in "qkv":
        proj[n] = h @ W[p + f"self_attn.{n}_proj.weight"].T
        if p + f"self_attn.{n}_proj.bias" in W:
            proj[n] = proj[n] + W[p + f"self_attn.{n}_proj.bias"]
    q, kk, v = proj["q"], proj["k"], proj["v"]
    if mt == "olmoe":  # norm over the whole projection, then clip q, k, v
        q = np_rmsnorm(q, W[p + "self_attn.q_norm.weight"], eps)
        kk = np_rmsnorm(kk, W[p + "self_attn.k_norm.weight"], eps)
        if cfg.get("clip_qkv") is not None:
            c = cfg["clip_qkv"]
            q, kk, v = np.clip(q, -c, c), np.clip(kk, -c, c), np.clip(v, -c, c)
    q, kk, v = q.reshape(T, nh, hd), kk.reshape(T, nkv, hd), v.reshape(T, nkv, hd)
    if mt == "qwen3_moe" or (mt == "glm4_moe" and cfg.get("use_qk_norm")):  # per-head norm over head_dim
        q = np_rmsnorm(q, W[p + "self_attn.q_norm.weight"], eps)
        kk = np_rmsnorm(kk, W[p + "self_attn.k_norm.weight"], eps)
    q, kk = np_rope(q, None, inv_freq, scale), np_rope(kk, None, inv_freq, scale)
    win = np_window(cfg, mt, i)
    qi, ki = np.arange(T)[:, None], np.arange(T)[None, :]
    mask = np.where((ki <= qi) & ((win is None) | (ki > qi - (win or 0))), 0.0, -np.inf)
    out = np.zeros((T, nh, hd))
    for hh in range(nh):
        g = hh // (nh // nkv)
        sc = q[:, hh] @ kk[:, g].T / np.sqrt(hd) + mask
        if mt == "gpt_oss":  # the sink joins the softmax, then is dropped
            sc = np.concatenate([sc, np.full((T, 1), W[p + "self_attn.sinks"][hh])], -1)
        sc = np.exp(sc - sc.max(-1, keepdims=True))
        sc /= sc.sum(-1, keepdims=True)
        out[:, hh] = sc[:, :T] @ v[:, g]
    o = out.reshape(T, nh * hd) @ W[p + "self_attn.o_proj.weight"].T
    if p + "self_attn.o_proj.bias" in W:
        o = o + W[p + "self_attn.o_proj.bias"]
    return o


def np_moe(cfg, mt, W, p, h):
    if mt == "mixtral":
        gate = W.get(p + "block_sparse_moe.gate.weight")
        ename = lambda e, w: f"{p}block_sparse_moe.experts.{e}.{ {'gate': 'w1', 'up': 'w3', 'down': 'w2'}[w] }.weight"
    else:
        gate = W.get(p + ("mlp.router.weight" if mt == "gpt_oss" else "mlp.gate.weight"))
        ename = lambda e, w: f"{p}mlp.experts.{e}.{w}_proj.weight"
    logits = h @ gate.T
    if mt == "gpt_oss":
        logits = logits + W[p + "mlp.router.bias"]
    y = np.zeros_like(h)
    for t in range(h.shape[0]):
        top, wts = np_route(cfg, mt, W, p, logits[t])
        for e, wt in zip(top, wts):
            y[t] += wt * np_expert(cfg, mt, W, p, ename, e, h[t])
    if mt == "qwen2_moe":
        y += np_sigmoid(h @ W[p + "mlp.shared_expert_gate.weight"].T) * np_mlp(W, p + "mlp.shared_expert.", h)
    elif mt in ("glm4_moe", "deepseek_v3"):
        y += np_mlp(W, p + "mlp.shared_experts.", h)
    return y


def numpy_forward(model_dir, ids):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    W = read_safetensors_dir(model_dir)
    mt = cfg["model_type"]
    H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    hd = cfg["qk_rope_head_dim"] if mt == "deepseek_v3" else cfg.get("head_dim") or H // nh
    eps = cfg["rms_norm_eps"]
    inv_freq, scale = np_rope_params(cfg, hd)
    E = cfg.get("num_experts") or cfg.get("num_local_experts") or cfg.get("n_routed_experts")
    x = W["model.embed_tokens.weight"][ids]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = np_rmsnorm(x, W[p + "input_layernorm.weight"], eps)
        if mt == "deepseek_v3":
            x = x + np_mla_attention(cfg, W, p, h, inv_freq, scale)
        else:
            x = x + np_attention(cfg, mt, W, p, h, inv_freq, scale, i)
        h = np_rmsnorm(x, W[p + "post_attention_layernorm.weight"], eps)
        sparse = any(k.startswith(p + "mlp.experts.") or k.startswith(p + "block_sparse_moe.") for k in W)
        assert sparse == np_is_sparse(cfg, mt, i, E), (i, sparse)
        x = x + (np_moe(cfg, mt, W, p, h) if sparse else np_mlp(W, p + "mlp.", h))
    x = np_rmsnorm(x, W["model.norm.weight"], eps)
    return x @ W["lm_head.weight"].T


def dir_size(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    return total


def rewrite_legacy_rope(model_dir, type_key=False):
    """config.json as the published gpt-oss / GLM-4.5 files are: top-level rope_theta (and
    partial_rotary_factor), the scaling in "rope_scaling" (null for default RoPE)."""
    cfg_path = os.path.join(model_dir, "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    rp = cfg.pop("rope_parameters")
    cfg["rope_theta"] = rp.pop("rope_theta")
    if "partial_rotary_factor" in rp:
        cfg["partial_rotary_factor"] = rp.pop("partial_rotary_factor")
    cfg["rope_scaling"] = None if rp.get("rope_type", "default") == "default" else rp
    if type_key and cfg["rope_scaling"]:  # DeepSeek-V3's published file says "type", not "rope_type"
        rp["type"] = rp.pop("rope_type")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


def fp8_prepare(model, spec):
    """FP8 fixtures: saves the (rounded) model, quantizes its linears with tools/fp8.py, and returns the
    model reloaded from a dequantized fp32 copy (whose forward is the reference) with what the FP8
    checkpoint will hold (spec["_fp8"]: tensors, config.json, generation_config.json). The
    dequantization is checked bit for bit against transformers' own (finegrained_fp8)."""
    from safetensors.torch import load_file, save_file
    from transformers.integrations.finegrained_fp8 import _dequantize_fp8_weight
    tmp = tempfile.mkdtemp(prefix="roe-fp8-")
    try:
        save_model(model, dict(spec, fp8=False, shards=1), tmp)
        saved = load_file(os.path.join(tmp, "model.safetensors"))
        out, deq = {}, {}
        for name, t in saved.items():
            if not fp8.is_quantized_linear(name, t.dim()):
                out[name], deq[name] = t, t.float()
                continue
            q, sc = fp8.quantize(t.float().numpy())
            out[name] = torch.from_numpy(q).view(torch.float8_e4m3fn)
            out[name + "_scale_inv"] = torch.from_numpy(sc)
            deq[name] = torch.from_numpy(fp8.dequantize(q, sc))
            theirs = _dequantize_fp8_weight(out[name], out[name + "_scale_inv"], [fp8.BLOCK, fp8.BLOCK], torch.float32)
            if not torch.equal(theirs, deq[name]):
                raise RuntimeError(f"{name}: tools/fp8.py's dequantization differs from transformers'")
        save_file(deq, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        with open(os.path.join(tmp, "config.json")) as f:
            cfg = json.load(f)
        cfg["quantization_config"] = dict(fp8.QUANT_CONFIG)
        files = {fn: open(os.path.join(tmp, fn)).read() for fn in os.listdir(tmp) if fn.endswith(".json")}
        files["config.json"] = json.dumps(cfg, indent=2, sort_keys=True) + "\n"
        spec["_fp8"] = dict(tensors=out, files=files)
        ref = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32, attn_implementation="eager",
                                                   experts_implementation="eager")
        ref.eval()
        return ref
    finally:
        shutil.rmtree(tmp)


def save_fp8(spec, model_dir):
    """Writes the FP8 checkpoint: one file, or (shards 2) two shards and model.safetensors.index.json
    as save_pretrained lays them out, cut after the first quantized weight past half the bytes so that
    its weight_scale_inv lands in the other shard (a loader must find a scale wherever the index says)."""
    from safetensors.torch import save_file
    if os.path.isdir(model_dir):
        shutil.rmtree(model_dir)
    os.makedirs(model_dir)
    tensors = spec["_fp8"]["tensors"]
    files = ["model.safetensors"]
    if spec["shards"] == 1:
        save_file(tensors, os.path.join(model_dir, "model.safetensors"), metadata={"format": "pt"})
    else:
        assert spec["shards"] == 2, spec["shards"]
        names = list(tensors)  # a weight, then its weight_scale_inv (fp8_prepare's order)
        total = sum(t.numel() * t.element_size() for t in tensors.values())
        acc, cut = 0, None
        for i, n in enumerate(names):
            acc += tensors[n].numel() * tensors[n].element_size()
            if acc >= total // 2 and i + 1 < len(names) and names[i + 1] == n + "_scale_inv":
                cut = i + 1
                break
        if cut is None:
            raise RuntimeError("no weight to cut the FP8 checkpoint after")
        files = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
        parts = [names[:cut], names[cut:]]
        weight_map = {}
        for fn, part in zip(files, parts):
            save_file({n: tensors[n] for n in part}, os.path.join(model_dir, fn), metadata={"format": "pt"})
            weight_map.update({n: fn for n in part})
        with open(os.path.join(model_dir, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2, sort_keys=True)
            f.write("\n")
    for fn, text in spec["_fp8"]["files"].items():
        with open(os.path.join(model_dir, fn), "w") as f:
            f.write(text)
    for fn in os.listdir(model_dir):
        os.chmod(os.path.join(model_dir, fn), 0o644)
    return files


def save_model(model, spec, model_dir):
    if spec.get("fp8"):
        return save_fp8(spec, model_dir)
    if os.path.isdir(model_dir):
        shutil.rmtree(model_dir)
    keep = {n: t.detach().clone() for n, t in list(model.named_parameters()) + list(model.named_buffers())
            if kept_fp32(n, spec)}
    to_save = model.to(spec["dtype"])
    for n, t in list(to_save.named_parameters()) + list(to_save.named_buffers()):
        if n in keep:
            t.data = keep[n]
    try:
        if spec["shards"] == 1:
            to_save.save_pretrained(model_dir)
        else:
            total = sum(p.numel() * p.element_size() for p in to_save.parameters())
            # greedy shard filling: a limit a bit above total/2 gives exactly 2 shards
            for frac in (0.55, 0.6, 0.52, 0.7, 0.51):
                if os.path.isdir(model_dir):
                    shutil.rmtree(model_dir)
                to_save.save_pretrained(model_dir, max_shard_size=int(total * frac))
                shards = [f for f in os.listdir(model_dir) if f.endswith(".safetensors")]
                if len(shards) == spec["shards"]:
                    break
            else:
                raise RuntimeError("could not obtain the requested number of shards")
    finally:
        model.to(torch.float32)
    for fn in os.listdir(model_dir):
        os.chmod(os.path.join(model_dir, fn), 0o644)  # safetensors writes 0600
    shards = sorted(f for f in os.listdir(model_dir) if f.endswith(".safetensors"))
    if len(shards) != spec["shards"]:
        raise RuntimeError(f"expected {spec['shards']} shard(s), got {shards}")
    if spec.get("legacy_rope") in ("scaling", "scaling_type"):
        rewrite_legacy_rope(model_dir, type_key=spec["legacy_rope"] == "scaling_type")
    if spec.get("legacy_rope_theta"):
        cfg_path = os.path.join(model_dir, "config.json")
        with open(cfg_path) as f:
            cfg = json.load(f)
        rp = cfg.pop("rope_parameters")
        assert rp.get("rope_type", "default") == "default", rp
        cfg["rope_theta"] = rp["rope_theta"]
        cfg["rope_scaling"] = None
        with open(cfg_path, "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
            f.write("\n")
    return shards


def build(family, spec, seed):
    cfg = spec["config_cls"](**spec["config"])
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", experts_implementation="eager",
                                             dtype=torch.float32)
    model.eval()
    torch.manual_seed(seed)
    init_params(model, cfg.hidden_size, transposed_experts=cfg.model_type == "gpt_oss")
    round_params(model, spec["dtype"], spec)
    if spec.get("fp8"):
        model = fp8_prepare(model, spec)
    if spec.get("mxfp4"):
        mxfp4_experts(model)
    return model, cfg


def make_family(family, out_root):
    spec = FAMILIES[family]
    fam_dir = os.path.join(out_root, family)
    model_dir = os.path.join(fam_dir, "model")
    os.makedirs(fam_dir, exist_ok=True)

    for attempt in range(50):
        seed = spec["seed"] + attempt
        model, cfg = build(family, spec, seed)
        k = cfg.num_experts_per_tok
        gen = torch.Generator().manual_seed(seed + 7919)
        cases = []
        ok = True
        why = ""
        for plen in PROMPT_LENS:
            prompt = torch.randint(0, cfg.vocab_size, (plen,), generator=gen).tolist()
            logits = forward(model, prompt).logits[0].float().contiguous()
            greedy_ids, margins, maxabs = greedy(model, prompt, N_GREEDY)
            full = prompt + greedy_ids[:-1]
            # the full-sequence logits at the prompt positions must equal the prompt-only forward
            # (causal model); the router check covers every position the C engine will see
            if family in ("olmoe", "mixtral", "qwen3_moe"):
                gap, n_moe = router_min_gap(model, full, k)
            else:
                gap, n_moe = router_min_gap_hooked(model, full, cfg)
            rel = min(m / a for m, a in zip(margins, maxabs))
            if rel < GREEDY_MARGIN_REL:
                ok, why = False, f"greedy near tie (rel margin {rel:.2e})"
            if gap < spec.get("router_gap", ROUTER_GAP_ABS):
                ok, why = False, f"router near tie (gap {gap:.2e})"
            cases.append(dict(prompt=prompt, logits=logits, greedy=greedy_ids, margins=margins,
                              maxabs=maxabs, router_gap=gap, n_moe=n_moe))
        if ok:
            break
        print(f"[{family}] seed {seed} rejected: {why}", file=sys.stderr)
    else:
        raise RuntimeError(f"{family}: no acceptable seed")

    clip_info = None
    if getattr(cfg, "clip_qkv", None) is not None:
        cs = ClipStats(model, cfg.clip_qkv)
        forward(model, cases[0]["prompt"])
        cs.remove()
        clip_info = {key: {"clipped": c[0], "total": c[1]} for key, c in cs.counts.items()}
        if all(c[0] == 0 for c in cs.counts.values()):
            raise RuntimeError("clip_qkv clips nothing: lower it")

    clamp_info = None
    if cfg.model_type == "gpt_oss":
        cs = SwigluClampStats(model)
        forward(model, cases[0]["prompt"])
        cs.remove()
        clamp_info = {key: {"clamped": c[0], "total": c[1]} for key, c in cs.counts.items()}
        if any(c[0] == 0 for c in cs.counts.values()):
            raise RuntimeError(f"swiglu_limit clamps nothing: {clamp_info}")

    n_params, n_active = param_counts(model, cfg)
    shards = save_model(model, spec, model_dir)
    if spec.get("mxfp4"):
        mxfp4_rewrite(model_dir)

    # reload what was written and check it reproduces the reference exactly (FP8: transformers
    # dequantizes only on a GPU or with accelerate; fp8_prepare checked its dequantization instead,
    # and the numpy forward below reads the FP8 files)
    if spec.get("mxfp4"):
        reloaded = mxfp4_reload(model_dir, cfg)
    elif spec.get("fp8"):
        reloaded = model
    else:
        reloaded = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager",
                                                        experts_implementation="eager")
    reloaded.eval()
    for c in cases:
        lr = forward(reloaded, c["prompt"]).logits[0].float()
        diff = float((lr - c["logits"]).abs().max())
        if diff != 0.0:
            raise RuntimeError(f"{family}: reloaded checkpoint differs from reference by {diff}")
        gr, _, _ = greedy(reloaded, c["prompt"], 4)
        assert gr == c["greedy"][:4]

    # independent numpy float64 forward of the files on disk
    for c in cases:
        ref_np = numpy_forward(model_dir, c["prompt"])
        err = float(np.abs(ref_np - c["logits"].numpy()).max())
        rel = err / float(np.abs(ref_np).max())
        if rel > 1e-5:
            raise RuntimeError(f"{family}: numpy re-implementation differs: max|diff| {err} (rel {rel})")
        c["numpy_rel_err"] = rel

    # logits.f32 and reference.json
    ref_cases = []
    offset = 0
    with open(os.path.join(fam_dir, "logits.f32"), "wb") as f:
        for c in cases:
            arr = c["logits"].numpy().astype("<f4")
            f.write(arr.tobytes())
            ref_cases.append({
                "prompt_ids": c["prompt"],
                "logits_offset": offset,
                "logits_shape": list(arr.shape),
                "greedy_ids": c["greedy"],
                "max_abs_logit": float(np.abs(arr).max()),
                "greedy_min_margin": min(c["margins"]),
                "greedy_min_rel_margin": min(m / a for m, a in zip(c["margins"], c["maxabs"])),
                "router_min_topk_gap": c["router_gap"],
                "numpy_f64_max_rel_diff": c["numpy_rel_err"],
            })
            offset += arr.nbytes
    ref = {
        "family": family,
        "model_type": cfg.model_type,
        "parameters": n_params,
        "active_parameters": n_active,
        "bytes_per_decode_step": step_bytes_from_files(model_dir, cfg),
        "model_dir": f"tests/fixtures/{family}/model",
        "logits_file": f"tests/fixtures/{family}/logits.f32",
        "logits_offset_unit": "bytes",
        "logits_dtype": "float32 little-endian, row-major [n_prompt_tokens, vocab]",
        "weights_dtype_on_disk": ("float8_e4m3fn linears with 128x128 weight_scale_inv, the rest " if spec.get("fp8") else "")
        + str(spec["dtype"]).replace("torch.", "") + (", experts MXFP4" if spec.get("mxfp4") else ""),
        "safetensors_files": shards,
        "seed": seed,
        "cases": ref_cases,
        "tolerance_hint": "fp32 forward of the on-disk weights upcast to fp32: expect max|diff| <= 1e-4 * max_abs_logit",
        "clip_qkv_stats_case0": clip_info,
        "swiglu_clamp_stats_case0": clamp_info,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "command": f"{COMMAND} --family {family}",
    }
    text = json.dumps(ref, indent=1)
    # one line per list of numbers
    text = re.sub(r"\[\s*([-0-9.e, \n]+?)\s*\]", lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text)
    with open(os.path.join(fam_dir, "reference.json"), "w") as f:
        f.write(text + "\n")
    assert json.loads(text) == json.loads(json.dumps(ref))

    size = dir_size(fam_dir)
    if size >= MAX_FIXTURE_BYTES:
        raise RuntimeError(f"{family}: fixture is {size} bytes (limit {MAX_FIXTURE_BYTES})")

    print(f"[{family}] seed {seed}, {sum(p.numel() for p in model.parameters())} params, "
          f"{str(spec['dtype'])[6:]} on disk, shards {shards}, fixture {size} bytes")
    for i, c in enumerate(ref_cases):
        print(f"[{family}]   case {i}: prompt {len(c['prompt_ids'])} tokens, max|logit| {c['max_abs_logit']:.4f}, "
              f"greedy min margin {c['greedy_min_margin']:.4f} "
              f"(rel {c['greedy_min_rel_margin']:.4f}), router min top-k gap {c['router_min_topk_gap']:.4f}")
    if clamp_info:
        print(f"[{family}]   swiglu_limit={cfg.swiglu_limit}: " + ", ".join(
            f"{k} {v['clamped']}/{v['total']}" for k, v in clamp_info.items()))
    if clip_info:
        print(f"[{family}]   clip_qkv={cfg.clip_qkv}: " + ", ".join(
            f"{k} {v['clipped']}/{v['total']}" for k, v in clip_info.items()))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", action="append", choices=sorted(FAMILIES), help="default: all")
    ap.add_argument("--out-root", default=os.path.join(REPO_ROOT, "tests", "fixtures"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    for fam in args.family or list(FAMILIES):
        make_family(fam, args.out_root)


if __name__ == "__main__":
    main()
