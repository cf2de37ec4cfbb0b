/*
 * test_alloc_faults.c — allocation-failure injection, the SQLite way (base/alloc.h): for
 * n = 1, 2, ... the n-th roe_* allocation of an operation fails, until the operation runs
 * through without meeting an injected failure. At every failure point the operation must
 * end cleanly: a status other than OK with a message (or, where the failed allocation was
 * optional, a correct result), no handle left behind, nothing leaked (this test also runs in
 * the ASan build, where LeakSanitizer checks every path at exit), no crash. cJSON allocates
 * through roe_malloc (base/alloc.c), so its allocations are failure points too.
 *
 * Operations (labels unit and faults):
 *  - model load: the bundled model, the Qwen3 fixture (dense and MoE layers), GLM-4.5's (shared
 *    experts, a correction bias) and gpt-oss's (each expert transposed into memory of its own);
 *  - tokenizer load: the bundled tokenizer.json and the Qwen-style one (a PCRE2 split regex,
 *    NFC), each then encoding and decoding a text;
 *  - generation: engine create, generator create, and a run of a plain and a RoE K=4
 *    request to their end (a step itself allocates nothing: test_engine checks that), on OLMoE
 *    and on gpt-oss (its RoPE table, its wider FFN buffers);
 *  - a server request: the OpenAI body parsed (tokenizing the prompt), submitted to a running
 *    scheduler, generated, its text decoded and its response and stream chunks rendered.
 */
#include <pthread.h>

#include "harness.h"
#include "base/alloc.h"
#include "runtime/engine.h"
#include "runtime/generate.h"
#include "runtime/model.h"
#include "runtime/roster.h"
#include "runtime/scheduler.h"
#include "runtime/tokenizer.h"
#include "server/openai.h"

/* One run of an operation: a status; on OK it must have released what it made. */
typedef roe_status (*op_fn)(void *ctx);

/* Fails the n-th allocation of op for n = 1, 2, ... Returns the number of failure points
 * met (the operation's allocations), or -1 after printing what went wrong.
 * Operations that parse large JSON (a tokenizer.json: tens of thousands of cJSON nodes) have
 * too many points to visit each in CI (O(points^2) work: minutes, tens under ASan): past
 * SAMPLE_ALL points only every stride-th is injected, the stride chosen for about SAMPLE_ALL
 * runs, plus the last ones. ROE_ALLOC_FAULTS_ALL=1 visits every point (docs/RELIABILITY.md). */
enum { SAMPLE_ALL = 1500 };

static int fail_each(const char *what, op_fn op, void *ctx) {
    roe_error_clear();
    const uint64_t a0 = roe_alloc_count();
    if (op(ctx) != ROE_OK) {
        fprintf(stderr, "  %s: fails without an injected failure: %s\n", what, roe_error_message());
        return -1;
    }
    const uint64_t total = roe_alloc_count() - a0; /* an upper bound when runs differ */
    const char *all = getenv("ROE_ALLOC_FAULTS_ALL");
    const uint64_t stride = (all && *all == '1') || total <= SAMPLE_ALL ? 1 : (total + SAMPLE_ALL - 1) / SAMPLE_ALL;
    int points = 0;
    for (uint64_t n = 1; n < 2000000; n += (stride > 1 && n + 8 < total) ? stride : 1) {
        const uint64_t before = roe_alloc_failures();
        roe_error_clear();
        roe_alloc_fail_after(n, 0);
        roe_status st = op(ctx);
        roe_alloc_fail_after(0, 0);
        const int injected = roe_alloc_failures() > before;
        if (!injected) {
            if (st != ROE_OK) {
                fprintf(stderr, "  %s: fails without an injected failure: %s\n", what, roe_error_message());
                return -1;
            }
            if (stride > 1)
                fprintf(stderr, "  %s: %d of about %llu failure points (one in %llu), each clean\n", what, points,
                        (unsigned long long)total, (unsigned long long)stride);
            else
                fprintf(stderr, "  %s: %d failure points, each clean\n", what, points);
            return points;
        }
        points++;
        if (st != ROE_OK && st != ROE_ERR_NOMEM) { /* e.g. cJSON's NULL taken for bad JSON */
            fprintf(stderr, "  %s: allocation %llu failed, reported as %s: %s\n", what, (unsigned long long)n,
                    roe_status_name(st), roe_error_message());
            return -1;
        }
        if (st != ROE_OK && roe_error_message()[0] == '\0') {
            fprintf(stderr, "  %s: allocation %llu: %s without a message\n", what, (unsigned long long)n,
                    roe_status_name(st));
            return -1;
        }
    }
    fprintf(stderr, "  %s: never succeeded\n", what);
    return -1;
}

/* ---- model load ---- */

static roe_status op_model_load(void *ctx) {
    struct roe_model *m = (struct roe_model *)1;
    roe_status st = roe_model_load(ctx, &m);
    if (st != ROE_OK) return m == NULL ? st : roe_fail(ROE_ERR_INTERNAL, "a failed load left a model");
    roe_model_free(m);
    return ROE_OK;
}

TEST(model_load) {
    ASSERT_TRUE(fail_each("model load (bundled)", op_model_load, "models/olmoe-tiny") > 10);
    ASSERT_TRUE(fail_each("model load (qwen3 fixture)", op_model_load, "tests/fixtures/qwen3_moe/model") > 10);
    ASSERT_TRUE(fail_each("model load (glm4_moe fixture)", op_model_load, "tests/fixtures/glm4_moe/model") > 10);
    ASSERT_TRUE(fail_each("model load (gpt_oss fixture)", op_model_load, "tests/fixtures/gpt_oss/model") > 32);
    /* MXFP4 experts: views of the mapping, no copies */
    ASSERT_TRUE(fail_each("model load (gpt_oss_mx fixture)", op_model_load, "tests/fixtures/gpt_oss_mx/model") > 10);
    /* MLA: each layer's absorbed kv_b_proj in memory of its own */
    ASSERT_TRUE(fail_each("model load (deepseek_v3 fixture)", op_model_load, "tests/fixtures/deepseek_v3/model") > 12);
    /* FP8: the tile scales bound beside each matrix, W_uk^T dequantized into its own memory */
    ASSERT_TRUE(fail_each("model load (deepseek_v3_fp8 fixture)", op_model_load, "tests/fixtures/deepseek_v3_fp8/model") > 12);
}

/* ---- tokenizer load, encode, decode ---- */

static const char TEXT[] = "Q: 4821 + 379 = ? A: caf\xC3\xA9 <|endoftext|>  \xE4\xBD\xA0\xE5\xA5\xBD\n\tdon't";

static roe_status op_tokenizer(void *ctx) {
    roe_tokenizer *t = (roe_tokenizer *)1;
    roe_status st = roe_tokenizer_load(ctx, &t);
    if (st != ROE_OK) return t == NULL ? st : roe_fail(ROE_ERR_INTERNAL, "a failed load left a tokenizer");
    int32_t *ids = NULL;
    size_t n = 0;
    char *back = NULL;
    size_t len = 0;
    st = roe_tokenizer_encode(t, TEXT, sizeof TEXT - 1, &ids, &n);
    if (st == ROE_OK) {
        st = roe_tokenizer_decode(t, ids, n, 0, &back, &len);
        if (st == ROE_OK && (len != sizeof TEXT - 1 || memcmp(back, TEXT, len) != 0))
            st = roe_fail(ROE_ERR_INTERNAL, "decode(encode(text)) != text");
    } else if (ids)
        st = roe_fail(ROE_ERR_INTERNAL, "a failed encode left ids");
    roe_free(back);
    roe_free(ids);
    roe_tokenizer_free(t);
    return st;
}

TEST(tokenizer_load) {
    ASSERT_TRUE(fail_each("tokenizer (bundled)", op_tokenizer, "models/olmoe-tiny/tokenizer.json") > 10);
    ASSERT_TRUE(fail_each("tokenizer (qwen-style)", op_tokenizer, "tests/data/tokenizer/qwenstyle/tokenizer.json") >
                10);
    /* SentencePiece style (normalizers, byte fallback, the decoder chain) and three Split regexes */
    ASSERT_TRUE(fail_each("tokenizer (llama2-style)", op_tokenizer,
                          "tests/data/tokenizer/families/llama2/tokenizer.json") > 10);
    ASSERT_TRUE(fail_each("tokenizer (deepseek-v3-style)", op_tokenizer,
                          "tests/data/tokenizer/families/deepseek_v3/tokenizer.json") > 10);
}

/* ---- generation ---- */

struct gen_ctx {
    const struct roe_model *m;
    struct roe_roster roe4;
};

static roe_status op_generate(void *ctx) {
    struct gen_ctx *g = ctx;
    struct roe_engine_opts o = roe_engine_opts_default();
    o.max_seqs = 2;
    o.max_ctx = 32;
    o.max_rows = 16;
    o.n_threads = 1;
    roe_engine *e = NULL;
    roe_generator *gen = NULL;
    const int32_t prompt[5] = {5, 17, 3, 99, 42};
    struct roe_request q[2] = {
        {.prompt = prompt, .n_prompt = 5, .max_tokens = 4, .sampling = roe_sampling_default()},
        {.prompt = prompt, .n_prompt = 3, .max_tokens = 3, .sampling = roe_sampling_default(), .roster = &g->roe4},
    };
    q[1].sampling.temperature = 0.8f;
    q[1].sampling.seed = 7;
    struct roe_result *res = NULL;
    struct roe_gen_timing t;
    roe_status st = roe_engine_create(g->m, &o, &e);
    if (st == ROE_OK) st = roe_generator_create(e, 2, 4, 1, &gen);
    if (st == ROE_OK) st = roe_generator_run(gen, q, 2, &res, &t);
    if (st == ROE_OK && (res[0].n_tokens != 4 || res[1].n_tokens != 3))
        st = roe_fail(ROE_ERR_INTERNAL, "generated %d and %d tokens", res[0].n_tokens, res[1].n_tokens);
    roe_generator_free(gen);
    roe_engine_free(e);
    return st;
}

TEST(generation) {
    const char *dirs[4] = {"tests/fixtures/olmoe/model", "tests/fixtures/gpt_oss/model",
                           "tests/fixtures/deepseek_v3/model", "tests/fixtures/gpt_oss_mx/model"};
    for (int i = 0; i < 4; i++) {
        struct gen_ctx g;
        struct roe_model *m = NULL;
        ASSERT_OK(roe_model_load(dirs[i], &m));
        g.m = m;
        ASSERT_OK(roe_roster_uniform(&g.roe4, &m->cfg, 4, 0.5f, 1, ROE_GATE_NOISY));
        ASSERT_TRUE(fail_each(dirs[i], op_generate, &g) > 5);
        roe_model_free(m);
    }
}

/* ---- a server request ---- */

struct srv_ctx {
    struct roe_api_config api;
    roe_sched *s;
    const roe_tokenizer *tok;
    const char *body;
    roe_api_kind kind;
};

static roe_status op_request(void *ctx) {
    struct srv_ctx *c = ctx;
    struct roe_api_request q;
    struct roe_api_error e;
    memset(&e, 0, sizeof e);
    if (roe_api_parse(&c->api, c->kind, c->body, strlen(c->body), &q, &e) != 0) {
        if (e.http != 500) return roe_fail(ROE_ERR_INTERNAL, "parse: HTTP %d: %s", e.http, e.message);
        return roe_fail(ROE_ERR_NOMEM, "parse: HTTP %d: %s", e.http, e.message); /* the server's 500 */
    }
    roe_sreq *r = NULL;
    roe_status st = roe_sched_submit(c->s, &q.params, &r, NULL);
    if (st != ROE_OK) {
        roe_api_request_free(&q);
        return r == NULL ? st : roe_fail(ROE_ERR_INTERNAL, "a refused submit left a request");
    }
    struct roe_sreq_view v;
    for (int i = 0; i < 600; i++) { /* bounded: 60 s */
        roe_sreq_wait(r, 1 << 30, 0.1, &v);
        if (v.end != ROE_SREQ_RUNNING) break;
    }
    if (v.end == ROE_SREQ_FAILED)
        st = roe_fail(ROE_ERR_NOMEM, "request failed: %s", v.error ? v.error : "(no message)");
    else if (v.end != ROE_SREQ_FINISHED || v.n_tokens != q.params.max_tokens)
        st = roe_fail(ROE_ERR_INTERNAL, "request ended %d with %d tokens", (int)v.end, v.n_tokens);
    char *text = NULL;
    size_t len = 0;
    if (st == ROE_OK) st = roe_tokenizer_decode(c->tok, v.tokens, (size_t)v.n_tokens, 0, &text, &len);
    if (st == ROE_OK) {
        struct roe_strbuf sse = {0};
        const struct roe_api_choice ch = {.text = text, .role = 1, .gen = {.ids = v.tokens, .n = v.n_tokens}},
                                    fin = {.text = "", .finish = "length"};
        roe_api_stream_chunk(&sse, &c->api, &q, "cmpl-1", 0, &ch);
        roe_api_stream_chunk(&sse, &c->api, &q, "cmpl-1", 0, &fin);
        roe_api_stream_usage(&sse, &c->api, &q, "cmpl-1", 0, v.n_tokens);
        if (sse.oom) st = roe_fail(ROE_ERR_NOMEM, "rendering the stream");
        roe_strbuf_free(&sse);
        const struct roe_api_choice whole = {.text = text, .finish = "length", .gen = {.ids = v.tokens, .n = v.n_tokens}};
        char *body = roe_api_response_json(&c->api, &q, "cmpl-1", 0, &whole, 1, v.n_tokens);
        if (!body && st == ROE_OK) st = roe_fail(ROE_ERR_NOMEM, "rendering the response");
        free(body);
    }
    roe_free(text);
    roe_sreq_release(r);
    roe_api_request_free(&q);
    return st;
}

static void *sched_thread(void *arg) {
    roe_sched_run(arg);
    return NULL;
}

TEST(server_request) {
    struct roe_model *m = NULL;
    roe_tokenizer *tok = NULL;
    roe_engine *e = NULL;
    struct srv_ctx c;
    memset(&c, 0, sizeof c);
    ASSERT_OK(roe_model_load("models/olmoe-tiny", &m));
    ASSERT_OK(roe_tokenizer_load("models/olmoe-tiny/tokenizer.json", &tok));
    struct roe_engine_opts o = roe_engine_opts_default();
    o.max_seqs = 2;
    o.max_ctx = 64;
    o.max_rows = 16;
    o.n_threads = 1;
    ASSERT_OK(roe_engine_create(m, &o, &e));
    struct roe_sched_opts so = roe_sched_opts_default();
    ASSERT_OK(roe_sched_create(e, &so, &c.s));
    pthread_t th;
    ASSERT_TRUE(pthread_create(&th, NULL, sched_thread, c.s) == 0);
    struct roe_roster def;
    roe_roster_plain(&def);
    struct roe_chat_template chat;
    roe_chat_template_from_text(NULL, tok, &chat);
    c.tok = tok;
    c.api = (struct roe_api_config){.model_name = "olmoe-tiny",
                                    .cfg = &m->cfg,
                                    .tok = tok,
                                    .chat = &chat,
                                    .default_roster = &def,
                                    .default_sampling = roe_sampling_default(),
                                    .max_ctx = 64,
                                    .default_max_tokens = 4};
    c.kind = ROE_API_COMPLETIONS;
    c.body = "{\"model\": \"olmoe-tiny\", \"prompt\": \"Q: 4821 + 379 = ? A:\", \"max_tokens\": 4, "
             "\"ignore_eos\": true, \"roe_k\": 3, \"roe_tau\": 0.5, \"stream\": true, \"return_token_ids\": true}";
    int n1 = fail_each("server request (completion, RoE K=3)", op_request, &c);
    c.kind = ROE_API_CHAT;
    c.body = "{\"model\": \"olmoe-tiny\", \"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, "
             "{\"role\": \"user\", \"content\": \"Q: 7 + 8 = ? A:\"}], \"max_tokens\": 3, \"ignore_eos\": true}";
    int n2 = fail_each("server request (chat)", op_request, &c);
    roe_sched_stop(c.s, 0);
    pthread_join(th, NULL);
    roe_sched_free(c.s);
    roe_engine_free(e);
    roe_tokenizer_free(tok);
    roe_model_free(m);
    ASSERT_TRUE(n1 > 3);
    ASSERT_TRUE(n2 > 3);
}

int main(void) {
    RUN(model_load);
    RUN(tokenizer_load);
    RUN(generation);
    RUN(server_request);
    return test_summary();
}
