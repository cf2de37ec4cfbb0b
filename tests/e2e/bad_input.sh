#!/usr/bin/env bash
# Bad input gives a clear message and a non-zero exit, never a crash or a hang.
. "$(dirname "$0")/lib.bash"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
M=tests/fixtures/olmoe/model

expect_fail "unknown command" "unknown command 'frobnicate'" "$ROE" frobnicate
expect_fail "no command" "usage" "$ROE"
expect_fail "unknown flag" "unknown option '--bogus'" "$ROE" generate --model $M --prompt-ids 1 --bogus
expect_fail "flag without value" "needs a value" "$ROE" generate --model $M --prompt-ids
expect_fail "bad integer" "expected an integer" "$ROE" generate --model $M --prompt-ids 1 --max-tokens ten
expect_fail "out of range" "must be in" "$ROE" generate --model $M --prompt-ids 1 --top-p 1.5
expect_fail "no prompt" "no prompt" "$ROE" generate --model $M
expect_fail "kv memory not a size" "--kv-memory '12x': expected bytes" "$ROE" generate --model $M --prompt-ids 1 --kv-memory 12x
expect_fail "kv memory a fraction above 1" "--kv-memory '1.5': expected bytes" "$ROE" generate --model $M --prompt-ids 1 --kv-memory 1.5
expect_fail "kv memory below one context" "--kv-memory of 1024 bytes holds 0 blocks" "$ROE" generate --model $M --prompt-ids 1 --kv-memory 1K
expect_fail "kv block size 0" "--kv-block-size" "$ROE" generate --model $M --prompt-ids 1 --kv-block-size 0
expect_fail "empty prompt ids" "prompt 0 is empty" "$ROE" generate --model $M --prompt-ids ""
expect_fail "malformed prompt ids" "expected comma-separated token ids" "$ROE" generate --model $M --prompt-ids 1,x,3
expect_fail "token id outside vocab" "outside the vocabulary" "$ROE" generate --model $M --prompt-ids 1,99999
expect_fail "text prompt without tokenizer" "has no tokenizer.json" "$ROE" generate --model $M --prompt hello
expect_fail "missing model dir" "does not exist" "$ROE" generate --model "$tmp/nope" --prompt-ids 1
expect_fail "inspect missing model dir" "does not exist" "$ROE" inspect --model "$tmp/nope"
mkdir "$tmp/empty"
expect_fail "model dir without files" "config.json" "$ROE" inspect --model "$tmp/empty"
# a prompt longer than the context (max_position_embeddings of the fixture)
maxpos=$(grep -o '"max_position_embeddings": [0-9]*' $M/config.json | grep -o '[0-9]*$')
long=$(seq 1 $((maxpos + 5)) | sed 's/.*/7/' | paste -sd, -)
expect_fail "prompt longer than context" "context" "$ROE" generate --model $M --prompt-ids "$long"
# unknown model_type
mkdir "$tmp/gpt2" && cp $M/* "$tmp/gpt2/" && sed -i 's/"model_type": "olmoe"/"model_type": "gpt2"/' "$tmp/gpt2/config.json"
expect_fail "unknown model_type" "model_type 'gpt2' is not supported" "$ROE" inspect --model "$tmp/gpt2"
# config.json that is not JSON
mkdir "$tmp/badcfg" && cp $M/* "$tmp/badcfg/" && echo '{"model_type": ' > "$tmp/badcfg/config.json"
expect_fail "config not JSON" "not a JSON object" "$ROE" inspect --model "$tmp/badcfg"
# a config that disagrees with the tensors (hidden size)
mkdir "$tmp/shape" && cp $M/* "$tmp/shape/" && sed -i 's/"hidden_size": [0-9]*/"hidden_size": 96/' "$tmp/shape/config.json"
expect_fail "tensor shape vs config" "expected" "$ROE" inspect --model "$tmp/shape"
# a truncated safetensors file
mkdir "$tmp/trunc" && cp $M/* "$tmp/trunc/" && truncate -s 5000 "$tmp/trunc/model.safetensors"
expect_fail "truncated safetensors" "model.safetensors" "$ROE" generate --model "$tmp/trunc" --prompt-ids 1
# a corrupt header length
mkdir "$tmp/hdr" && cp $M/* "$tmp/hdr/" && printf '\xff\xff\xff\xff\xff\xff\xff\x7f' | dd of="$tmp/hdr/model.safetensors" conv=notrunc 2>/dev/null
expect_fail "corrupt header length" "model.safetensors" "$ROE" inspect --model "$tmp/hdr"
# a missing tensor (rename it in the header: same length, so the file stays well-formed)
mkdir "$tmp/miss" && cp $M/* "$tmp/miss/" && sed -i 's/model.norm.weight/model.norm.weighx/' "$tmp/miss/model.safetensors"
expect_fail "missing tensor" "missing tensor 'model.norm.weight'" "$ROE" inspect --model "$tmp/miss"
# the newer families: malformed routing and layout fields, missing or misshapen tensors
G=tests/fixtures/glm4_moe/model O=tests/fixtures/gpt_oss/model Q=tests/fixtures/qwen2_moe_b/model
mkdir "$tmp/tg" && cp $G/* "$tmp/tg/" && sed -i 's/"topk_group": 2/"topk_group": 5/' "$tmp/tg/config.json"
expect_fail "glm4_moe: topk_group > n_group" "topk_group 5 exceeds n_group 4" "$ROE" inspect --model "$tmp/tg"
mkdir "$tmp/ng" && cp $G/* "$tmp/ng/" && sed -i 's/"n_group": 4/"n_group": 3/' "$tmp/ng/config.json"
expect_fail "glm4_moe: n_group not dividing the experts" "n_group 3 must divide the 16 experts" "$ROE" inspect --model "$tmp/ng"
mkdir "$tmp/sb" && cp $G/* "$tmp/sb/" && sed -i 's/layers.1.mlp.gate.e_score_correction_bias/layers.1.mlp.gate.e_score_correction_bixs/' "$tmp/sb/model.safetensors"
expect_fail "glm4_moe: missing correction bias" "missing tensor 'model.layers.1.mlp.gate.e_score_correction_bias'" "$ROE" inspect --model "$tmp/sb"
mkdir "$tmp/pr" && cp $G/* "$tmp/pr/" && sed -i 's/"partial_rotary_factor": 0.5/"partial_rotary_factor": 0.3/' "$tmp/pr/config.json"
expect_fail "glm4_moe: odd partial rotary width" "gives 7 rotary dimensions" "$ROE" inspect --model "$tmp/pr"
mkdir "$tmp/sk" && cp $O/* "$tmp/sk/" && sed -i 's/layers.2.self_attn.sinks/layers.2.self_attn.sinkx/' "$tmp/sk/model.safetensors"
expect_fail "gpt_oss: missing sinks" "missing tensor 'model.layers.2.self_attn.sinks'" "$ROE" inspect --model "$tmp/sk"
mkdir "$tmp/gu" && cp $O/* "$tmp/gu/" && sed -i 's/"intermediate_size": 40/"intermediate_size": 41/' "$tmp/gu/config.json"
expect_fail "gpt_oss: experts of another width" "tensor 'model.layers.0.mlp.experts.gate_up_proj' has shape [8, 90, 80], expected [8, 90, 82]" \
    "$ROE" inspect --model "$tmp/gu"
mkdir "$tmp/lt" && cp $O/* "$tmp/lt/" && sed -i '0,/"sliding_attention"/s//"chunked_attention"/' "$tmp/lt/config.json"
expect_fail "gpt_oss: unknown layer type" "layer_types[0] 'chunked_attention' is not supported" "$ROE" inspect --model "$tmp/lt"
mkdir "$tmp/yf" && cp $O/* "$tmp/yf/" && sed -i 's/"factor": 4.0/"factor": 0.5/' "$tmp/yf/config.json"
expect_fail "gpt_oss: YaRN factor below 1" "'factor' = 0.5 is out of range" "$ROE" inspect --model "$tmp/yf"
mkdir "$tmp/rt" && cp $O/* "$tmp/rt/" && sed -i 's/"rope_type": "yarn"/"rope_type": "llama3"/' "$tmp/rt/config.json"
expect_fail "gpt_oss: unsupported RoPE" "rope_scaling.rope_type 'llama3' is not supported (only 'default' and 'yarn' RoPE)" \
    "$ROE" inspect --model "$tmp/rt"
mkdir "$tmp/sg" && cp $Q/* "$tmp/sg/" && sed -i 's/layers.3.mlp.shared_expert_gate.weight/layers.3.mlp.shared_expert_gatx.weight/' "$tmp/sg/model.safetensors"
expect_fail "qwen2_moe: missing shared expert gate" "missing tensor 'model.layers.3.mlp.shared_expert_gate.weight'" "$ROE" inspect --model "$tmp/sg"
# gpt_oss with MXFP4 experts: a missing part, parts of the wrong dtype or shape, the config's quant_method
X=tests/fixtures/gpt_oss_mx/model XE='model.layers.1.mlp.experts'
mkdir "$tmp/mxs" && cp $X/* "$tmp/mxs/" && sed -i "s/$XE.down_proj_scales/$XE.down_proj_scalez/" "$tmp/mxs/model.safetensors"
expect_fail "gpt_oss MXFP4: missing scales" "missing tensor '$XE.down_proj_scales'" "$ROE" inspect --model "$tmp/mxs"
mkdir "$tmp/mxb" && cp $X/* "$tmp/mxb/" && sed -i "s/$XE.gate_up_proj_blocks/$XE.gate_up_proj_blockz/" "$tmp/mxb/model.safetensors"
expect_fail "gpt_oss MXFP4: missing blocks" "missing tensor '$XE.gate_up_proj_blocks'" "$ROE" inspect --model "$tmp/mxb"
mkdir "$tmp/mxd" && cp $X/* "$tmp/mxd/" && sed -i "s/\"$XE.down_proj_scales\":{\"dtype\":\"U8\"/\"$XE.down_proj_scales\":{\"dtype\":\"I8\"/" "$tmp/mxd/model.safetensors"
expect_fail "gpt_oss MXFP4: scales of another dtype" "tensor '$XE.down_proj_scales' has dtype I8 (MXFP4 scales are U8)" \
    "$ROE" inspect --model "$tmp/mxd"
mkdir "$tmp/mxh" && cp $X/* "$tmp/mxh/" && sed -i "s/\"$XE.gate_up_proj_scales\":{\"dtype\":\"U8\",\"shape\":\[7,192,3\]/\"$XE.gate_up_proj_scales\":{\"dtype\":\"U8\",\"shape\":[21,64,3]/" "$tmp/mxh/model.safetensors"
expect_fail "gpt_oss MXFP4: scales of another shape" "tensor '$XE.gate_up_proj_scales' has shape [21, 64, 3], expected [7, 192, 3]" \
    "$ROE" inspect --model "$tmp/mxh"
mkdir "$tmp/mx16" && cp $X/* "$tmp/mx16/" && sed -i "s/\"$XE.down_proj_blocks\":{\"dtype\":\"U8\",\"shape\":\[7,96,3,16\]/\"$XE.down_proj_blocks\":{\"dtype\":\"U8\",\"shape\":[7,96,48,1]/" "$tmp/mx16/model.safetensors"
expect_fail "gpt_oss MXFP4: blocks not of 16 bytes" "tensor '$XE.down_proj_blocks' has shape [7, 96, 48, 1]: its last dimension must be 16" \
    "$ROE" inspect --model "$tmp/mx16"
mkdir "$tmp/mxq" && cp $X/* "$tmp/mxq/" && sed -i 's/"quant_method": "mxfp4"/"quant_method": "awq_x"/' "$tmp/mxq/config.json"
expect_fail "gpt_oss MXFP4: unknown quant_method" "quantization_config.quant_method 'awq_x' is not supported" "$ROE" inspect --model "$tmp/mxq"
mkdir "$tmp/mxc" && cp $X/* "$tmp/mxc/" && sed -i 's/"quantization_config"/"quantization_confix"/' "$tmp/mxc/config.json"
expect_fail "gpt_oss MXFP4: blocks without quantization_config" "is an MXFP4 tensor but config.json has no quantization_config" \
    "$ROE" inspect --model "$tmp/mxc"
expect_fail "gpt_oss MXFP4: --weights q4" "holds MXFP4 experts: it runs as stored" "$ROE" generate --model $X --weights q4 --prompt-ids 1
# deepseek_v3: MLA's widths against each other and the tensors, the routing fields
D=tests/fixtures/deepseek_v3/model
dcase() { # dcase NAME WANT SED_EXPR [FILE]: a copy of the fixture with one edit must be refused
    local d; d=$(mktemp -d -p "$tmp")
    cp $D/* "$d/" && sed -i "$3" "$d/${4:-config.json}"
    expect_fail "deepseek_v3: $1" "$2" "$ROE" inspect --model "$d"
}
dcase "topk_group > n_group" "topk_group 5 exceeds n_group 4" 's/"topk_group": 2/"topk_group": 5/'
dcase "q_lora_rank against q_a_proj" "tensor 'model.layers.0.self_attn.q_a_proj.weight' has shape [40, 88], expected [32, 88]" \
    's/"q_lora_rank": 40/"q_lora_rank": 32/'
dcase "q_lora_rank null with q_a_proj" "q_lora_rank is null but layer 0 has a q_a_proj and no q_proj" 's/"q_lora_rank": 40/"q_lora_rank": null/'
dcase "kv_lora_rank against kv_a_proj" "tensor 'model.layers.0.self_attn.kv_a_proj_with_mqa.weight' has shape [32, 88], expected [28, 88]" \
    's/"kv_lora_rank": 24/"kv_lora_rank": 20/'
dcase "odd qk_rope_head_dim" "qk_rope_head_dim 7 must be even" 's/"qk_rope_head_dim": 8/"qk_rope_head_dim": 7/'
dcase "qk_head_dim inconsistent" "qk_head_dim 19 is not qk_nope_head_dim 10 + qk_rope_head_dim 8" 's/"qk_head_dim": 18/"qk_head_dim": 19/'
dcase "v_head_dim against kv_b_proj" "tensor 'model.layers.0.self_attn.kv_b_proj.weight' has shape [144, 24], expected [150, 24]" \
    's/"v_head_dim": 14/"v_head_dim": 15/'
dcase "grouped kv heads" "num_key_value_heads 3 must equal num_attention_heads 6 for deepseek_v3" 's/"num_key_value_heads": 6/"num_key_value_heads": 3/'
dcase "another gate" "scoring_func 'softmax' is not supported for deepseek_v3" 's/"routed_scaling_factor"/"scoring_func": "softmax", "routed_scaling_factor"/'
dcase "missing kv_a_layernorm" "missing tensor 'model.layers.2.self_attn.kv_a_layernorm.weight'" \
    's/layers.2.self_attn.kv_a_layernorm.weight/layers.2.self_attn.kv_a_layernorm.weighx/' model.safetensors
dcase "missing correction bias" "missing tensor 'model.layers.1.mlp.gate.e_score_correction_bias'" \
    's/layers.1.mlp.gate.e_score_correction_bias/layers.1.mlp.gate.e_score_correction_bixs/' model.safetensors
mkdir "$tmp/ql" && cp tests/fixtures/deepseek_v3_b/model/* "$tmp/ql/" && sed -i 's/"q_lora_rank": null/"q_lora_rank": 16/' "$tmp/ql/config.json"
expect_fail "deepseek_v3: q_lora_rank with q_proj" "q_lora_rank is 16 but layer 0 has a q_proj and no q_a_proj" "$ROE" inspect --model "$tmp/ql"
# FP8 block-scaled checkpoints: the scales, the quantization_config, FP8 where none is declared
F=tests/fixtures/deepseek_v3_fp8/model
fcase() { # fcase NAME WANT SED_EXPR [FILE]: a copy of the FP8 fixture with one edit must be refused
    local d; d=$(mktemp -d -p "$tmp")
    cp $F/* "$d/" && sed -i "$3" "$d/${4:-config.json}"
    expect_fail "fp8: $1" "$2" "$ROE" inspect --model "$d"
}
fcase "missing weight_scale_inv" \
    "FP8 tensor 'model.layers.1.self_attn.kv_b_proj.weight' has no 'model.layers.1.self_attn.kv_b_proj.weight_scale_inv'" \
    's/layers.1.self_attn.kv_b_proj.weight_scale_inv/layers.1.self_attn.kv_b_proj.weight_scale_inx/' model.safetensors
fcase "scales of the wrong shape" \
    "'model.layers.0.self_attn.q_a_proj.weight_scale_inv' is F32 [1, 4], expected F32 [2, 2]" \
    's/"model.layers.0.self_attn.q_a_proj.weight_scale_inv":{"dtype":"F32","shape":\[2,2\]/"model.layers.0.self_attn.q_a_proj.weight_scale_inv":{"dtype":"F32","shape":[1,4]/' \
    model.safetensors
fcase "scales of the wrong dtype" "'model.layers.0.self_attn.q_a_proj.weight_scale_inv' is I32 [2, 2], expected F32 [2, 2]" \
    's/"model.layers.0.self_attn.q_a_proj.weight_scale_inv":{"dtype":"F32"/"model.layers.0.self_attn.q_a_proj.weight_scale_inv":{"dtype":"I32"/' \
    model.safetensors
fcase "unknown quant_method" "quantization_config.quant_method 'awq' is not supported" 's/"quant_method": "fp8"/"quant_method": "awq"/'
fcase "fmt e5m2" "quantization_config.fmt 'e5m2' is not supported (only 'e4m3')" 's/"fmt": "e4m3"/"fmt": "e5m2"/'
fcase "static activations" "quantization_config.activation_scheme 'static' is not supported" \
    's/"activation_scheme": "dynamic"/"activation_scheme": "static"/'
fcase "weight_block_size [64, 128]" "quantization_config.weight_block_size must be [128, 128]" '0,/128,/s/128,/64,/'
fcase "FP8 tensors without quantization_config" \
    "is F8_E4M3 but config.json has no quantization_config" 's/"quantization_config"/"quantization_configx"/'
# --backend cuda no longer refuses FP8 or MXFP4 checkpoints (kernels/cuda/matmul_block.cu): here it
# stops on the missing device or CUDA, never on the format (with a GPU it runs)
for fm in "FP8:$F" "MXFP4:tests/fixtures/gpt_oss_mx/model"; do
    out=$(timeout 120 "$ROE" generate --model "${fm#*:}" --prompt-ids 1,2,3 --max-tokens 1 --backend cuda 2>&1 >/dev/null)
    case "$out" in
        *"holds ${fm%%:*}"* | *"${fm%%:*} kernel"*) fail "--backend cuda still refuses ${fm%%:*} weights: $out" ;;
        *) pass "--backend cuda takes ${fm%%:*} weights (${out:-ran})" ;;
    esac
done
expect_fail "fp8: roe quantize refuses an FP8 checkpoint" "is an FP8 checkpoint: roe quantize does not save it" \
    "$ROE" quantize --model $F --weights q8 --out "$tmp/fq"
# a bad environment knob (base/env.c's table) stops every command before it reads anything:
# exit status exactly 2, as a bad flag, and one line naming the variable, value and what is accepted
# Mixture-of-Recursions (mor_llama) and llama: the mor object's fields, routers, the one shared block
MR=tests/fixtures/mor_ec/model MT=tests/fixtures/mor_tc/model
mor_cfg() { # mor_cfg DIR FROM SED-EXPR: a copy of FROM with config.json edited
    mkdir "$tmp/mor_$1" && cp "$2"/* "$tmp/mor_$1/" && sed -i "$3" "$tmp/mor_$1/config.json"
}
mor_cfg nr0 $MR 's/"num_recursion": 3/"num_recursion": 0/'
expect_fail "mor: num_recursion 0" "mor: field 'num_recursion' = 0 is out of range [1, 16]" "$ROE" inspect --model "$tmp/mor_nr0"
mor_cfg nr5 $MR 's/"num_recursion": 3/"num_recursion": 5/'
expect_fail "mor: layers not 2 + N_r B" "num_hidden_layers 8 is not 2 + num_recursion (5)" "$ROE" inspect --model "$tmp/mor_nr5"
mor_cfg shr $MR 's/"middle_cycle"/"cycle"/'
expect_fail "mor: cycle sharing" "field 'sharing' = 'cycle' is not supported (supported: middle_cycle)" "$ROE" inspect --model "$tmp/mor_shr"
mor_cfg rt $MR 's/"expert_choice"/"top_k"/'
expect_fail "mor: unknown router_type" "field 'router_type' = 'top_k' is not supported" "$ROE" inspect --model "$tmp/mor_rt"
mor_cfg rf $MR 's/"sigmoid"/"softmax"/'
expect_fail "mor: router_func" "router_func 'softmax' is not supported with router_type 'expert_choice'" "$ROE" inspect --model "$tmp/mor_rf"
mor_cfg th $MR 's/"threshold": 0.5/"threshold": 1.5/'
expect_fail "mor: threshold above 1" "mor: field 'threshold' = 1.5 is out of range [0, 1]" "$ROE" inspect --model "$tmp/mor_th"
mor_cfg kvm $MR 's/"recursion_wise"/"paged"/'
expect_fail "mor: kv_mode" "field 'kv_mode' = 'paged' is not supported" "$ROE" inspect --model "$tmp/mor_kvm"
mor_cfg cap $MR 's/0.3333/0/'
expect_fail "mor: capacity 0" "capacity[2] must be a number in (0, 1]" "$ROE" inspect --model "$tmp/mor_cap"
mor_cfg nomor tests/fixtures/llama/model 's/"model_type": "llama"/"model_type": "mor_llama"/'
expect_fail "mor: no mor object" "model_type mor_llama needs an object field 'mor'" "$ROE" inspect --model "$tmp/mor_nomor"
mor_cfg ec2tc $MT 's/"token_choice"/"expert_choice"/; s/"softmax"/"sigmoid"/'
expect_fail "mor: token-choice router read as expert choice" "model.layers.1.mor_router.router.weight" "$ROE" inspect --model "$tmp/mor_ec2tc"
mkdir "$tmp/nort" && cp $MR/* "$tmp/nort/" && sed -i 's/layers.2.mor_router.router.weight/layers.2.mor_router.router.weighx/' "$tmp/nort/model.safetensors"
expect_fail "mor: missing router" "missing tensor 'model.layers.2.mor_router.router.weight'" "$ROE" inspect --model "$tmp/nort"
mkdir "$tmp/blk" && cp $MR/* "$tmp/blk/" && sed -i 's/layers.1.block.1.mlp.up_proj/layers.1.block.1.mlp.up_prox/' "$tmp/blk/model.safetensors"
expect_fail "mor: missing shared-block tensor" "missing tensor 'model.layers.1.block.1.mlp.up_proj.weight'" "$ROE" inspect --model "$tmp/blk"
# recursion 2 with weights of its own (a copy of block layer 0 that is block layer 1's): not one shared block
mkdir "$tmp/cp" && cp $MR/* "$tmp/cp/" && sed -i 's/layers.1.block.1.input_layernorm/layers.2.block.0.input_layernorm/' "$tmp/cp/model.safetensors"
expect_fail "mor: recursion 2 differs from the shared block" "tensor 'model.layers.2.block.0.input_layernorm.weight' differs" "$ROE" inspect --model "$tmp/cp"
expect_fail "mor: RoE K > 1" "has no MoE layer" "$ROE" generate --model $MR --prompt-ids 1,2 --roe-k 4 --roe-tau 0.3
expect_fail "bench: depth-wise batching of a dense model" "--mor-batching depth needs a mor_llama model" "$ROE" bench --model tests/fixtures/llama/model --batch 2 --prompt-len 4 --gen-len 2 --mor-batching depth
expect_fail "bench: unknown --mor-batching" "--mor-batching 'sideways': expected depth or step" "$ROE" bench --model $MR --mor-batching sideways
mor_cfg lb tests/fixtures/llama/model 's/"hidden_act": "silu"/"mlp_bias": true, "hidden_act": "silu"/'
expect_fail "llama: mlp_bias" "mlp_bias = true is not supported for llama" "$ROE" inspect --model "$tmp/mor_lb"
bad_env() { # bad_env VAR=VALUE MESSAGE
    local err rc
    err=$(env "$1" timeout 60 "$ROE" generate --model $M --prompt-ids 1 2>&1 >/dev/null)
    rc=$?
    if [ $rc -ne 2 ]; then fail "bad $1: exit $rc, expected 2: $err"; return; fi
    case "$err" in
        "roe: $2") pass "bad $1 (exit 2: $err)" ;;
        *) fail "bad $1: message is not 'roe: $2': $err" ;;
    esac
}
bad_env ROE_CPU_ISA=bogus "ROE_CPU_ISA='bogus' is not one of: avx512, avx2, portable"
bad_env ROE_CPU_BF16=AMX "ROE_CPU_BF16='AMX' is not one of: amx, avx512bf16, off"
bad_env ROE_CPU_INT8=vnni "ROE_CPU_INT8='vnni' is not one of: amx, off"
bad_env ROE_LOG=bogus "ROE_LOG='bogus' is not one of: error, warn, info, debug"
bad_env ROE_COMM=carrier-pigeon "ROE_COMM='carrier-pigeon' is not one of: auto, self, mpi"
bad_env ROE_COMM_TIMEOUT_S=-1 "ROE_COMM_TIMEOUT_S='-1' is not a number in [0.001, 10000000]"
bad_env ROE_COMM_TIMEOUT_S=60s "ROE_COMM_TIMEOUT_S='60s' is not a number in [0.001, 10000000]"
bad_env ROE_LIVENESS_S=0.1 "ROE_LIVENESS_S='0.1' is not a number in [0.5, 1000000]"
bad_env ROE_HOME_POLICY=random "ROE_HOME_POLICY='random' is not one of: round-robin, least-loaded"
bad_env ROE_EP_WIRE=f64 "ROE_EP_WIRE='f64' is not one of: f32, bf16"
bad_env ROE_EP_OVERLAP=maybe "ROE_EP_OVERLAP='maybe' is not 0 or 1"
bad_env ROE_EP_EARLY_US=abc "ROE_EP_EARLY_US='abc' is not an integer in [0, 10000000]"
bad_env ROE_EP_EARLY_US=12abc "ROE_EP_EARLY_US='12abc' is not an integer in [0, 10000000]"
bad_env ROE_EP_EARLY_US=10000001 "ROE_EP_EARLY_US='10000001' is not an integer in [0, 10000000]"
bad_env ROE_TEST_CONTROL_VERSION=-1 "ROE_TEST_CONTROL_VERSION='-1' is not an integer in [0, 2147483647]"
# empty is unset; the launcher's variables are read, not checked: a non-number is no crash
if out=$(env ROE_LOG= ROE_CPU_ISA= ROE_EP_EARLY_US= OMPI_COMM_WORLD_LOCAL_RANK=x OMPI_COMM_WORLD_LOCAL_SIZE=y \
        timeout 60 "$ROE" generate --model $M --prompt-ids 1 --max-tokens 1 2>&1); then
    pass "empty ROE_* = unset, non-numeric OMPI_COMM_WORLD_LOCAL_*: runs"
else fail "empty ROE_* / non-numeric OMPI_COMM_WORLD_LOCAL_*: $out"; fi
finish
