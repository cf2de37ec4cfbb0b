/*
 * test_engine.c — engine, generator, config, router and sampler units:
 *  - a decode step and a whole generation allocate nothing (counting allocator);
 *  - the engine rejects rows that break the cache contract, with messages;
 *  - config.json validation (one case per rule);
 *  - top-k order and ties; the sampler's greedy/top-k/top-p/seed behaviour.
 */
#include "harness.h"
#include "base/alloc.h"
#include "runtime/config.h"
#include "runtime/engine.h"
#include "runtime/generate.h"
#include "kernels/route_order.h"
#include "runtime/router.h"
#include "runtime/sampler.h"

static const char *FIXTURE = "tests/fixtures/qwen3_moe/model";

TEST(decode_allocates_nothing) {
    struct roe_model *m = NULL;
    ASSERT_OK(roe_model_load(FIXTURE, &m));
    struct roe_engine_opts o = roe_engine_opts_default();
    o.max_seqs = 3;
    o.max_ctx = 128;
    o.max_rows = 16;
    roe_engine *e = NULL;
    ASSERT_OK(roe_engine_create(m, &o, &e));
    roe_generator *g = NULL;
    ASSERT_OK(roe_generator_create(e, 3, 64, 1, &g));
    int32_t p0[] = {1, 2, 3, 4, 5}, p1[] = {9, 8, 7}, p2[] = {42};
    struct roe_request reqs[3] = {
        {.prompt = p0, .n_prompt = 5, .max_tokens = 64, .sampling = roe_sampling_default()},
        {.prompt = p1, .n_prompt = 3, .max_tokens = 40, .sampling = roe_sampling_default()},
        {.prompt = p2, .n_prompt = 1, .max_tokens = 64,
         .sampling = {.temperature = 0.8f, .top_k = 50, .top_p = 0.9f, .seed = 7}},
    };
    struct roe_result *res;
    struct roe_gen_timing tm;
    ASSERT_OK(roe_generator_run(g, reqs, 3, &res, &tm)); /* warm-up run */
    uint64_t before = roe_alloc_count();
    ASSERT_OK(roe_generator_run(g, reqs, 3, &res, &tm));
    uint64_t after = roe_alloc_count();
    ASSERT_EQ_INT(after - before, 0);
    ASSERT_EQ_INT(res[0].n_tokens, 64);
    ASSERT_TRUE(tm.decode_tokens > 100);
    /* and a bare decode step */
    struct roe_row row = {.seq = 0, .pos = roe_engine_seq_len(e, 0), .token = 3, .want_logits = 1};
    before = roe_alloc_count();
    ASSERT_OK(roe_engine_step(e, &row, 1, res[0].logits));
    ASSERT_EQ_INT(roe_alloc_count() - before, 0);
    roe_generator_free(g);
    roe_engine_free(e);
    roe_model_free(m);
}

TEST(engine_rejects_bad_rows) {
    struct roe_model *m = NULL;
    ASSERT_OK(roe_model_load(FIXTURE, &m));
    struct roe_engine_opts o = roe_engine_opts_default();
    o.max_seqs = 2;
    o.max_ctx = 16;
    o.max_rows = 4;
    roe_engine *e = NULL;
    ASSERT_OK(roe_engine_create(m, &o, &e));
    float logits[4 * 512];
    struct roe_row r = {.seq = 0, .pos = 0, .token = 1, .want_logits = 1};
    struct roe_row bad = r;
    bad.seq = 2;
    ASSERT_FAILS_WITH(roe_engine_step(e, &bad, 1, logits), ROE_ERR_INVALID_ARG, "sequence slot 2");
    bad = r;
    bad.token = 512;
    ASSERT_FAILS_WITH(roe_engine_step(e, &bad, 1, logits), ROE_ERR_INVALID_ARG, "outside the vocabulary");
    bad = r;
    bad.pos = 3;
    ASSERT_FAILS_WITH(roe_engine_step(e, &bad, 1, logits), ROE_ERR_INVALID_ARG, "its cache holds 0");
    bad = r;
    bad.pos = 16;
    ASSERT_FAILS_WITH(roe_engine_step(e, &bad, 1, logits), ROE_ERR_INVALID_ARG, "outside the context");
    bad = r;
    bad.sample = 1;
    bad.pos = 1;
    ASSERT_FAILS_WITH(roe_engine_step(e, &bad, 1, logits), ROE_ERR_INVALID_ARG, "needs a history");
    struct roe_row five[5] = {r, r, r, r, r};
    ASSERT_FAILS_WITH(roe_engine_step(e, five, 5, logits), ROE_ERR_INVALID_ARG, "at most 4");
    ASSERT_OK(roe_engine_step(e, &r, 1, logits));
    ASSERT_EQ_INT(roe_engine_seq_len(e, 0), 1);
    /* a context larger than the model's is refused at creation */
    o.max_ctx = m->cfg.max_position + 1;
    roe_engine *e2 = NULL;
    ASSERT_FAILS_WITH(roe_engine_create(m, &o, &e2), ROE_ERR_INVALID_ARG, "max_position_embeddings");
    roe_engine_free(e);
    roe_model_free(m);
}

static const char *BASE =
    "{\"model_type\": \"olmoe\", \"vocab_size\": 100, \"hidden_size\": 64, \"num_hidden_layers\": 2,"
    " \"num_attention_heads\": 4, \"num_experts\": 8, \"num_experts_per_tok\": 2,"
    " \"intermediate_size\": 32%s}";

static roe_status parse_with(const char *extra, struct roe_model_config *c) {
    char buf[2048];
    snprintf(buf, sizeof buf, BASE, extra);
    return roe_config_parse(buf, "config.json", c);
}

TEST(config_validation) {
    struct roe_model_config c;
    ASSERT_OK(parse_with("", &c));
    ASSERT_EQ_INT(c.head_dim, 16);
    ASSERT_EQ_INT(c.n_kv_heads, 4);
    ASSERT_EQ_INT(c.qk_norm, ROE_QK_NORM_FULL);
    ASSERT_NEAR(c.rope_theta, 10000.0, 0);
    ASSERT_OK(parse_with(", \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 500000}", &c));
    ASSERT_NEAR(c.rope_theta, 500000.0, 0);
    ASSERT_FAILS_WITH(parse_with(", \"rope_scaling\": {\"rope_type\": \"longrope\", \"factor\": 4}", &c),
                      ROE_ERR_UNSUPPORTED, "rope_type 'longrope' is not supported");
    ASSERT_FAILS_WITH(parse_with(", \"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 4}", &c),
                      ROE_ERR_UNSUPPORTED, "rope_type 'dynamic'");
    /* YaRN: original_max_position_embeddings defaults to max_position_embeddings, factor is read */
    ASSERT_OK(parse_with(", \"max_position_embeddings\": 512, \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4}", &c));
    ASSERT_EQ_INT(c.rope.type, ROE_ROPE_YARN);
    ASSERT_EQ_INT(c.rope.original_max_position, 512);
    ASSERT_NEAR(c.rope.factor, 4.0, 0);
    ASSERT_EQ_INT(c.rope.truncate, 1);
    ASSERT_EQ_INT(c.rope.dim, 16);
    ASSERT_FAILS_WITH(parse_with(", \"partial_rotary_factor\": 0.5", &c), ROE_ERR_UNSUPPORTED,
                      "partial_rotary_factor 0.5 is not supported for olmoe");
    ASSERT_FAILS_WITH(parse_with(", \"num_key_value_heads\": 3", &c), ROE_ERR_FORMAT, "not a multiple");
    ASSERT_FAILS_WITH(roe_config_parse("{\"model_type\": \"olmoe\", \"vocab_size\": 100, \"hidden_size\": 64,"
                                       " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_experts\": 8,"
                                       " \"num_experts_per_tok\": 9, \"intermediate_size\": 32}", "k.json", &c),
                      ROE_ERR_FORMAT, "'num_experts_per_tok' = 9 is out of range [1, 8]");
    ASSERT_FAILS_WITH(parse_with(", \"hidden_act\": \"gelu\"", &c), ROE_ERR_UNSUPPORTED, "gelu");
    ASSERT_FAILS_WITH(parse_with(", \"attention_bias\": true", &c), ROE_ERR_UNSUPPORTED, "attention_bias");
    ASSERT_FAILS_WITH(parse_with(", \"max_position_embeddings\": -1", &c), ROE_ERR_FORMAT, "max_position_embeddings");
    ASSERT_FAILS_WITH(parse_with(", \"rms_norm_eps\": \"small\"", &c), ROE_ERR_FORMAT, "rms_norm_eps");
    ASSERT_FAILS_WITH(parse_with(", \"eos_token_id\": 100", &c), ROE_ERR_FORMAT, "eos_token_id");
    /* a list of end ids: every one kept (issue 18), the first as eos_token_id */
    ASSERT_OK(parse_with(", \"eos_token_id\": [7, 9, 7, 11]", &c));
    ASSERT_EQ_INT(c.eos_token_id, 7);
    ASSERT_EQ_INT(c.n_eos, 3);
    ASSERT_EQ_INT(c.eos_ids[2], 11);
    ASSERT_FAILS_WITH(parse_with(", \"eos_token_id\": [7, 100]", &c), ROE_ERR_FORMAT, "or a list of them");
    ASSERT_FAILS_WITH(parse_with(", \"eos_token_id\": [7, 1.5]", &c), ROE_ERR_FORMAT, "eos_token_id");
    ASSERT_FAILS_WITH(roe_config_parse("{\"model_type\": \"gpt2\"}", "x.json", &c), ROE_ERR_UNSUPPORTED,
                      "model_type 'gpt2' is not supported");
    ASSERT_FAILS_WITH(roe_config_parse("[1]", "x.json", &c), ROE_ERR_FORMAT, "not a JSON object");
    ASSERT_FAILS_WITH(roe_config_parse("{\"model_type\": \"mixtral\", \"vocab_size\": 10}", "x.json", &c),
                      ROE_ERR_FORMAT, "missing required field 'hidden_size'");
    /* qwen3: sparse step and mlp_only_layers */
    ASSERT_OK(roe_config_parse(
        "{\"model_type\": \"qwen3_moe\", \"vocab_size\": 10, \"hidden_size\": 8, \"num_hidden_layers\": 4,"
        " \"num_attention_heads\": 2, \"num_local_experts\": 4, \"num_experts_per_tok\": 2,"
        " \"moe_intermediate_size\": 4, \"intermediate_size\": 16, \"decoder_sparse_step\": 2,"
        " \"mlp_only_layers\": [3], \"head_dim\": 6}", "q.json", &c));
    ASSERT_EQ_INT(c.layer_is_moe[0], 0);
    ASSERT_EQ_INT(c.layer_is_moe[1], 1);
    ASSERT_EQ_INT(c.layer_is_moe[2], 0);
    ASSERT_EQ_INT(c.layer_is_moe[3], 0);
    ASSERT_EQ_INT(c.head_dim, 6);
    ASSERT_EQ_INT(c.n_experts, 4);
}

static const char *GLM =
    "{\"model_type\": \"glm4_moe\", \"vocab_size\": 100, \"hidden_size\": 64, \"num_hidden_layers\": 3,"
    " \"num_attention_heads\": 4, \"head_dim\": 24, \"n_routed_experts\": 16, \"num_experts_per_tok\": 4,"
    " \"moe_intermediate_size\": 8, \"intermediate_size\": 32%s}";
static const char *OSS =
    "{\"model_type\": \"gpt_oss\", \"vocab_size\": 100, \"hidden_size\": 64, \"num_hidden_layers\": 4,"
    " \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"num_local_experts\": 8,"
    " \"num_experts_per_tok\": 2, \"intermediate_size\": 32%s}";
static const char *QWEN2 =
    "{\"model_type\": \"qwen2_moe\", \"vocab_size\": 100, \"hidden_size\": 64, \"num_hidden_layers\": 4,"
    " \"num_attention_heads\": 4, \"num_experts\": 8, \"num_experts_per_tok\": 2,"
    " \"moe_intermediate_size\": 8%s}";

static roe_status parse_fam(const char *base, const char *extra, struct roe_model_config *c) {
    char buf[2048];
    snprintf(buf, sizeof buf, base, extra);
    return roe_config_parse(buf, "config.json", c);
}

/* The newer families: their class defaults, and every malformed routing or layout field refused
 * with a message naming it. */
TEST(config_new_families) {
    struct roe_model_config c;
    /* GLM-4.5: Glm4MoeConfig's defaults (1 group, 1 dense layer, 1 shared expert, partial 0.5) */
    ASSERT_OK(parse_fam(GLM, "", &c));
    ASSERT_EQ_INT(c.family, ROE_FAMILY_GLM4_MOE);
    ASSERT_EQ_INT(c.router, ROE_ROUTER_SIGMOID_GROUP);
    ASSERT_EQ_INT(c.n_group, 1);
    ASSERT_EQ_INT(c.topk_group, 1);
    ASSERT_EQ_INT(c.norm_topk_prob, 1);
    ASSERT_NEAR(c.routed_scaling, 1.0, 0);
    ASSERT_EQ_INT(c.layer_is_moe[0], 0);
    ASSERT_EQ_INT(c.layer_is_moe[1], 1);
    ASSERT_EQ_INT(c.shared_intermediate, 8);
    ASSERT_EQ_INT(c.rope.dim, 12);
    ASSERT_EQ_INT(c.qk_norm, ROE_QK_NORM_NONE);
    ASSERT_EQ_INT(c.qkv_bias, 0);
    ASSERT_OK(parse_fam(GLM, ", \"n_group\": 4, \"topk_group\": 2, \"routed_scaling_factor\": 2.5, \"use_qk_norm\": true,"
                             " \"attention_bias\": true, \"n_shared_experts\": 2, \"first_k_dense_replace\": 0,"
                             " \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 1e6, \"partial_rotary_factor\": 0.25}", &c));
    ASSERT_EQ_INT(c.n_group, 4);
    ASSERT_EQ_INT(c.topk_group, 2);
    ASSERT_NEAR(c.routed_scaling, 2.5, 0);
    ASSERT_EQ_INT(c.qk_norm, ROE_QK_NORM_PER_HEAD);
    ASSERT_EQ_INT(c.qkv_bias, 1);
    ASSERT_EQ_INT(c.o_bias, 0);
    ASSERT_EQ_INT(c.shared_intermediate, 16);
    ASSERT_EQ_INT(c.layer_is_moe[0], 1);
    ASSERT_EQ_INT(c.rope.dim, 6);
    ASSERT_FAILS_WITH(parse_fam(GLM, ", \"n_group\": 4, \"topk_group\": 5", &c), ROE_ERR_FORMAT,
                      "topk_group 5 exceeds n_group 4");
    ASSERT_FAILS_WITH(parse_fam(GLM, ", \"n_group\": 3", &c), ROE_ERR_FORMAT,
                      "n_group 3 must divide the 16 experts into groups of at least 2");
    ASSERT_FAILS_WITH(parse_fam(GLM, ", \"n_group\": 16", &c), ROE_ERR_FORMAT, "groups of at least 2");
    ASSERT_FAILS_WITH(parse_fam(GLM, ", \"n_group\": 0", &c), ROE_ERR_FORMAT, "'n_group' = 0 is out of range");
    ASSERT_FAILS_WITH(parse_fam(GLM, ", \"n_group\": 8, \"topk_group\": 1", &c), ROE_ERR_FORMAT,
                      "num_experts_per_tok 4 exceeds the 2 experts of the topk_group 1 groups");
    ASSERT_FAILS_WITH(parse_fam(GLM, ", \"routed_scaling_factor\": \"big\"", &c), ROE_ERR_FORMAT,
                      "'routed_scaling_factor' must be a number");
    ASSERT_FAILS_WITH(parse_fam(GLM, ", \"first_k_dense_replace\": 4", &c), ROE_ERR_FORMAT,
                      "'first_k_dense_replace' = 4 is out of range [0, 3]");
    ASSERT_FAILS_WITH(parse_fam(GLM, ", \"partial_rotary_factor\": 0.3", &c), ROE_ERR_FORMAT,
                      "gives 7 rotary dimensions (must be even");
    /* gpt-oss: GptOssConfig's defaults (head_dim 64, alternating windows of 128, YaRN x32) */
    ASSERT_OK(parse_fam(OSS, "", &c));
    ASSERT_EQ_INT(c.head_dim, 64);
    ASSERT_EQ_INT(c.layer_window[0], 128);
    ASSERT_EQ_INT(c.layer_window[1], 0);
    ASSERT_EQ_INT(c.layer_window[2], 128);
    ASSERT_EQ_INT(c.rope.type, ROE_ROPE_YARN);
    ASSERT_NEAR(c.rope.factor, 32.0, 0);
    ASSERT_EQ_INT(c.rope.original_max_position, 4096);
    ASSERT_EQ_INT(c.rope.truncate, 0);
    ASSERT_NEAR(c.rope.theta, 150000.0, 0);
    ASSERT_EQ_INT(c.qkv_bias && c.o_bias && c.attn_sinks && c.router_bias, 1);
    ASSERT_EQ_INT(c.router, ROE_ROUTER_TOPK_SOFTMAX);
    ASSERT_EQ_INT(c.expert_act, ROE_ACT_SWIGLU_OAI);
    ASSERT_NEAR(c.swiglu_alpha, 1.702, 1e-6);
    ASSERT_NEAR(c.swiglu_limit, 7.0, 0);
    ASSERT_OK(parse_fam(OSS, ", \"head_dim\": null, \"sliding_window\": 4, \"layer_types\": [\"full_attention\","
                             " \"sliding_attention\", \"full_attention\", \"full_attention\"], \"rope_scaling\": {\"rope_type\":"
                             " \"default\"}, \"rope_theta\": 500000", &c));
    ASSERT_EQ_INT(c.head_dim, 16);
    ASSERT_EQ_INT(c.layer_window[0], 0);
    ASSERT_EQ_INT(c.layer_window[1], 4);
    ASSERT_EQ_INT(c.layer_window[3], 0);
    ASSERT_EQ_INT(c.rope.type, ROE_ROPE_DEFAULT);
    ASSERT_NEAR(c.rope.theta, 500000.0, 0);
    ASSERT_OK(parse_fam(OSS, ", \"rope_scaling\": null", &c)); /* null is "not given": YaRN x32, as in transformers */
    ASSERT_EQ_INT(c.rope.type, ROE_ROPE_YARN);
    ASSERT_FAILS_WITH(parse_fam(OSS, ", \"layer_types\": [\"full_attention\"]", &c), ROE_ERR_FORMAT,
                      "'layer_types' must be an array of 4 strings");
    ASSERT_FAILS_WITH(parse_fam(OSS, ", \"layer_types\": [\"full_attention\", \"chunked_attention\", \"full_attention\","
                                     " \"full_attention\"]", &c),
                      ROE_ERR_UNSUPPORTED, "layer_types[1] 'chunked_attention' is not supported");
    ASSERT_FAILS_WITH(parse_fam(OSS, ", \"sliding_window\": 0", &c), ROE_ERR_FORMAT,
                      "layer 0 is sliding_attention (the default layer_types) but sliding_window is 0");
    ASSERT_FAILS_WITH(parse_fam(OSS, ", \"sliding_window\": null, \"layer_types\": [\"full_attention\","
                                     " \"sliding_attention\", \"full_attention\", \"full_attention\"]", &c),
                      ROE_ERR_FORMAT, "layer_types[1] is sliding_attention but sliding_window is 0");
    ASSERT_FAILS_WITH(parse_fam(OSS, ", \"swiglu_limit\": 0", &c), ROE_ERR_FORMAT, "'swiglu_limit' = 0 is out of range");
    ASSERT_FAILS_WITH(parse_fam(OSS, ", \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 0.5}", &c),
                      ROE_ERR_FORMAT, "'factor' = 0.5 is out of range");
    /* Qwen2-MoE: q/k/v biases by default, sigmoid-gated shared expert, windows on even layers
     * below max_window_layers when use_sliding_window */
    ASSERT_OK(parse_fam(QWEN2, "", &c));
    ASSERT_EQ_INT(c.qkv_bias, 1);
    ASSERT_EQ_INT(c.o_bias, 0);
    ASSERT_EQ_INT(c.shared_gate, 1);
    ASSERT_EQ_INT(c.shared_intermediate, 5632);
    ASSERT_EQ_INT(c.layer_window[0], 0);
    ASSERT_OK(parse_fam(QWEN2, ", \"use_sliding_window\": true, \"sliding_window\": 16, \"max_window_layers\": 3,"
                               " \"qkv_bias\": false, \"shared_expert_intermediate_size\": 24, \"decoder_sparse_step\": 2,"
                               " \"intermediate_size\": 40", &c));
    ASSERT_EQ_INT(c.layer_window[0], 16);
    ASSERT_EQ_INT(c.layer_window[1], 0);
    ASSERT_EQ_INT(c.layer_window[2], 16);
    ASSERT_EQ_INT(c.layer_window[3], 0);
    ASSERT_EQ_INT(c.qkv_bias, 0);
    ASSERT_EQ_INT(c.shared_intermediate, 24);
    ASSERT_EQ_INT(c.layer_is_moe[0], 0);
    ASSERT_EQ_INT(c.layer_is_moe[1], 1);
    ASSERT_FAILS_WITH(parse_fam(QWEN2, ", \"attention_bias\": 7", &c), ROE_ERR_FORMAT, "'attention_bias' must be true or false");
    ASSERT_FAILS_WITH(parse_fam(QWEN2, ", \"mlp_only_layers\": [4]", &c), ROE_ERR_FORMAT,
                      "mlp_only_layers entry must be a layer index in [0, 4)");
}

/* The group-limited router (GLM-4.5 / DeepSeek-V3), against the rule written out by hand. */
TEST(group_router) {
    struct roe_model_config c = {.n_experts = 8, .top_k = 3, .norm_topk_prob = 1, .router = ROE_ROUTER_SIGMOID_GROUP,
                                 .n_group = 4, .topk_group = 2, .routed_scaling = 2.5f};
    /* groups {0,1} {2,3} {4,5} {6,7}; the bias lifts expert 7 */
    const float logits[8] = {2.0f, -1.0f, 0.5f, 0.4f, 3.0f, -3.0f, -0.5f, -2.0f};
    const float bias[8] = {0, 0, 0, 0, 0, 0, 0, 0.9f};
    float scratch[64], w[3];
    int32_t idx[3];
    roe_route_row(&c, logits, bias, scratch, idx, w);
    /* choice = sigmoid + bias: 0.881 0.269 | 0.622 0.599 | 0.953 0.047 | 0.378 1.019
     * group scores 1.150, 1.221, 1.000, 1.397 -> groups 3 and 1 kept; top-3 of {2, 3, 6, 7}: 7, 2, 3 */
    ASSERT_EQ_INT(idx[0], 2);
    ASSERT_EQ_INT(idx[1], 3);
    ASSERT_EQ_INT(idx[2], 7);
    const double s[3] = {1 / (1 + exp(-0.5)), 1 / (1 + exp(-0.4)), 1 / (1 + exp(2.0))}, z = s[0] + s[1] + s[2];
    for (int j = 0; j < 3; j++) ASSERT_NEAR(w[j], 2.5 * s[j] / z, 1e-6); /* unbiased sigmoid, renormalised, scaled */
    /* the rejected groups are -inf, not 0: with every score negative a 0 would win */
    c.norm_topk_prob = 0;
    c.routed_scaling = 1.0f;
    const float neg[8] = {-9, -9, -1, -2, -9, -9, -9, -9}, nb[8] = {-2, -2, -2, -2, -2, -2, -2, -2};
    c.topk_group = 1;
    c.top_k = 2;
    roe_route_row(&c, neg, nb, scratch, idx, w);
    ASSERT_EQ_INT(idx[0], 2);
    ASSERT_EQ_INT(idx[1], 3);
    ASSERT_NEAR(w[0], 1 / (1 + exp(1.0)), 1e-6);
    /* gpt-oss: top-k of the logits, softmax over those k */
    struct roe_model_config g = {.n_experts = 5, .top_k = 2, .router = ROE_ROUTER_TOPK_SOFTMAX};
    const float gl[5] = {0.1f, 1.5f, -0.3f, 1.0f, 0.2f};
    roe_route_row(&g, gl, NULL, scratch, idx, w);
    ASSERT_EQ_INT(idx[0], 1);
    ASSERT_EQ_INT(idx[1], 3);
    ASSERT_NEAR(w[0], 1 / (1 + exp(-0.5)), 1e-6);
    ASSERT_NEAR(w[0] + w[1], 1.0, 1e-6);
}

TEST(topk_order_and_ties) {
    float x[] = {0.1f, 0.5f, 0.5f, 0.9f, -1.0f, 0.5f};
    int32_t idx[3] = {0};
    roe_route_topk(x, 6, 3, idx);
    ASSERT_EQ_INT(idx[0], 3);
    ASSERT_EQ_INT(idx[1], 1); /* ties: lower index first */
    ASSERT_EQ_INT(idx[2], 2);
    struct roe_model_config c = {.n_experts = 4, .top_k = 2, .norm_topk_prob = 1};
    float logits[] = {0.0f, 2.0f, 1.0f, -1.0f}, probs[32], w[2];
    roe_route_row(&c, logits, NULL, probs, idx, w);
    ASSERT_EQ_INT(idx[0], 1);
    ASSERT_EQ_INT(idx[1], 2);
    ASSERT_NEAR(w[0] + w[1], 1.0, 1e-6);
    ASSERT_NEAR(w[0] / w[1], exp(1.0), 1e-5);
    c.norm_topk_prob = 0; /* OLMoE: softmax over all E, weights sum to < 1 */
    roe_route_row(&c, logits, NULL, probs, idx, w);
    double z = 1 + exp(2) + exp(1) + exp(-1);
    ASSERT_NEAR(w[0], exp(2) / z, 1e-6);
    ASSERT_NEAR(w[1], exp(1) / z, 1e-6);
}

TEST(sampler) {
    roe_sampler *s = NULL;
    ASSERT_OK(roe_sampler_create(5, &s));
    float z[5] = {1.0f, 3.0f, 2.0f, -1.0f, 0.0f};
    struct roe_sampling g = roe_sampling_default();
    ASSERT_EQ_INT(roe_sampler_pick(s, &g, z, 0), 1);
    /* top-k 1 is greedy whatever the temperature and seed */
    struct roe_sampling k1 = {.temperature = 5.0f, .top_k = 1, .top_p = 1.0f, .seed = 3};
    for (int p = 0; p < 50; p++) ASSERT_EQ_INT(roe_sampler_pick(s, &k1, z, p), 1);
    /* top-p keeps the smallest head with mass >= p: with p tiny only the argmax */
    struct roe_sampling tp = {.temperature = 1.0f, .top_k = 0, .top_p = 1e-4f, .seed = 9};
    for (int p = 0; p < 50; p++) ASSERT_EQ_INT(roe_sampler_pick(s, &tp, z, p), 1);
    /* sampling follows softmax(z/T): empirical frequencies over positions */
    struct roe_sampling t1 = {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .seed = 1};
    int counts[5] = {0};
    const int N = 20000;
    for (int p = 0; p < N; p++) counts[roe_sampler_pick(s, &t1, z, p)]++;
    double zs = 0;
    for (int i = 0; i < 5; i++) zs += exp(z[i]);
    for (int i = 0; i < 5; i++) ASSERT_NEAR(counts[i] / (double)N, exp(z[i]) / zs, 0.015);
    /* same seed and position, same token; the draw depends on the seed */
    struct roe_sampling t2 = t1;
    t2.seed = 2;
    int same = 0;
    for (int p = 0; p < 200; p++) {
        ASSERT_EQ_INT(roe_sampler_pick(s, &t1, z, p), roe_sampler_pick(s, &t1, z, p));
        same += roe_sampler_pick(s, &t1, z, p) == roe_sampler_pick(s, &t2, z, p);
    }
    ASSERT_TRUE(same < 180);
    struct roe_sampling badp = {.temperature = 1.0f, .top_p = 0.0f};
    ASSERT_FAILS_WITH(roe_sampling_validate(&badp), ROE_ERR_INVALID_ARG, "top-p");
    roe_sampler_free(s);
}

/* gpt-oss's input-major experts: roe_model_open leaves them untransposed and not held (inspect
 * reads nothing of them); keep_experts transposes exactly this rank's; an engine refuses a model
 * whose experts are not held; roe_model_load holds them all, the same bytes either way. */
TEST(gpt_oss_experts_held_per_rank) {
    const char *dir = "tests/fixtures/gpt_oss/model";
    struct roe_model *m = NULL, *full = NULL;
    ASSERT_OK(roe_model_open(dir, &m));
    const int E = m->cfg.n_experts;
    for (int e = 0; e < E; e++) ASSERT_TRUE(!roe_expert_held(&m->layers[0].experts[e]) && !m->layers[0].experts[e].owned);
    struct roe_engine_opts o = roe_engine_opts_default();
    o.max_ctx = 64;
    roe_engine *eng = NULL;
    ASSERT_FAILS_WITH(roe_engine_create(m, &o, &eng), ROE_ERR_INVALID_ARG, "the model does not hold it");
    struct roe_placement *pl = NULL;
    ASSERT_OK(roe_placement_contiguous(&m->cfg, 2, &pl));
    ASSERT_OK(roe_model_keep_experts(m, pl, 1));
    ASSERT_OK(roe_model_load(dir, &full));
    ASSERT_EQ_INT(m->held_experts, (long)m->cfg.n_layers * E / 2);
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int e = 0; e < E; e++) {
            const struct roe_expert_weights *x = &m->layers[l].experts[e], *y = &full->layers[l].experts[e];
            ASSERT_EQ_INT(roe_expert_held(x), roe_placement_owner(pl, l, e) == 1);
            ASSERT_TRUE(roe_expert_held(y));
            if (roe_expert_held(x))
                ASSERT_TRUE(memcmp(x->gate.data, y->gate.data, roe_mat_bytes(&y->gate)) == 0 &&
                            memcmp(x->down.data, y->down.data, roe_mat_bytes(&y->down)) == 0);
        }
    roe_placement_free(pl);
    roe_model_free(m);
    roe_model_free(full);
}

int main(void) {
    RUN(decode_allocates_nothing);
    RUN(engine_rejects_bad_rows);
    RUN(config_validation);
    RUN(config_new_families);
    RUN(group_router);
    RUN(gpt_oss_experts_held_per_rank);
    RUN(topk_order_and_ties);
    RUN(sampler);
    return test_summary();
}
