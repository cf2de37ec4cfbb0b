/*
 * test_server_protocol.c — the pure pieces of `roe serve` (server/):
 *  - UTF-8: ill-formed bytes become U+FFFD per maximal subpart, and sanitizing a byte stream
 *    piece by piece (every cut, every token split) gives exactly the text of the whole;
 *  - chat: ChatML recognised from a template and rendered, the fallback otherwise, bad
 *    messages refused with their index;
 *  - OpenAI requests: fields, defaults, RoE settings, and each kind of bad request with its
 *    status and param;
 *  - /metrics: Prometheus text with cumulative histogram buckets;
 *  - errors: each status's kind and each kind's HTTP status; a scheduler's refusals (full
 *    queue, stopping, a field at fault) as the server answers them.
 */
#include "harness.h"
#include "base/alloc.h"
#include "runtime/engine.h"
#include "runtime/model.h"
#include "runtime/roster.h"
#include "server/chat.h"
#include "server/metrics.h"
#include "server/openai.h"
#include "server/utf8.h"

static char *sanitize_all(const char *s, size_t n) {
    struct roe_strbuf b = {0};
    roe_utf8_sanitize(s, n, 1, &b);
    roe_strbuf_append(&b, "", 0);
    return b.p;
}

TEST(utf8_replacement) {
    struct {
        const char *in;
        size_t n;
        const char *want;
    } cases[] = {
        {"abc", 3, "abc"},
        {"\xC3\xA9", 2, "\xC3\xA9"},                 /* é */
        {"\xF0\x9F\x98\x80", 4, "\xF0\x9F\x98\x80"}, /* an emoji */
        {"a\xFF"
         "b",
         3,
         "a\xEF\xBF\xBD"
         "b"}, /* a byte that starts nothing */
        {"\xC3"
         "a",
         2,
         "\xEF\xBF\xBD"
         "a"},                           /* truncated, then ASCII */
        {"\xE2\x82", 2, "\xEF\xBF\xBD"}, /* truncated at the end: one U+FFFD */
        {"\xF0\x9F\x98", 3, "\xEF\xBF\xBD"},
        {"\xED\xA0\x80", 3, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* a surrogate: three */
        {"\xC0\xAF", 2, "\xEF\xBF\xBD\xEF\xBF\xBD"},                 /* overlong */
        {"x\0y", 3, "x\xEF\xBF\xBDy"},                               /* NUL */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = sanitize_all(cases[i].in, cases[i].n);
        if (strcmp(got, cases[i].want) != 0)
            TEST__FAIL("case %zu: got '%s', want '%s'", i, got, cases[i].want);
        roe_free(got);
    }
    ASSERT_TRUE(roe_utf8_valid("h\xC3\xA9llo", 6));
    ASSERT_TRUE(!roe_utf8_valid("h\xC3", 2));
}

TEST(utf8_streamed_equals_whole) {
    /* valid and broken characters mixed; every way of cutting it in two or three pieces */
    static const char text[] =
        "ab\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80x\xE2\x82y\xFF\xF0\x9F\x98\xC3";
    const size_t n = sizeof text - 1;
    char *whole = sanitize_all(text, n);
    for (size_t c1 = 0; c1 <= n; c1++)
        for (size_t c2 = c1; c2 <= n; c2++) {
            struct roe_strbuf raw = {0}, out = {0};
            const size_t cuts[3] = {c1, c2, n};
            size_t fed = 0;
            for (int k = 0; k < 3; k++) {
                roe_strbuf_append(&raw, text + fed, cuts[k] - fed);
                fed = cuts[k];
                const size_t used = roe_utf8_sanitize(raw.p ? raw.p : "", raw.len, k == 2, &out);
                roe_strbuf_consume(&raw, used);
            }
            roe_strbuf_append(&out, "", 0);
            if (strcmp(out.p, whole) != 0)
                TEST__FAIL("cut at %zu, %zu: '%s' != '%s'", c1, c2, out.p, whole);
            ASSERT_EQ_INT(raw.len, 0);
            roe_strbuf_free(&raw);
            roe_strbuf_free(&out);
        }
    roe_free(whole);
}

static char *render(const struct roe_chat_template *t, const char *json, roe_status *st) {
    cJSON *m = cJSON_Parse(json);
    struct roe_strbuf b = {0};
    *st = roe_chat_render(t, m, &b);
    cJSON_Delete(m);
    roe_strbuf_append(&b, "", 0);
    return b.p;
}

TEST(chat_templates) {
    struct roe_chat_template t;
    roe_chat_template_from_text(
        "{% for m in messages %}<|im_start|>{{m.role}}\n{{m.content}}<|im_end|>\n{% endfor %}",
        NULL, &t);
    ASSERT_EQ_INT(t.style, ROE_CHAT_CHATML);
    roe_status st;
    char *s = render(
        &t,
        "[{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": "
        "[{\"type\": \"text\", \"text\": \"Hi\"}, {\"type\": \"text\", \"text\": \"!\"}]}]",
        &st);
    ASSERT_OK(st);
    ASSERT_EQ_STR(s, "<|im_start|>system\nBe "
                     "brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n");
    roe_free(s);
    roe_chat_template_from_text(
        "{{ bos_token }}{% for m in messages %}[INST] {{ m.content }} [/INST]{% endfor %}", NULL,
        &t);
    ASSERT_EQ_INT(t.style, ROE_CHAT_FALLBACK);
    roe_chat_template_from_text(NULL, NULL, &t);
    s = render(
        &t,
        "[{\"role\": \"developer\", \"content\": \"Add.\"}, {\"role\": \"user\", \"content\": "
        "\"2+2\"}, "
        "{\"role\": \"assistant\", \"content\": null}, {\"role\": \"user\", \"content\": \"3+3\"}]",
        &st);
    ASSERT_OK(st);
    ASSERT_EQ_STR(s, "system: Add.\nuser: 2+2\nassistant: \nuser: 3+3\nassistant:");
    roe_free(s);
    const char *bad[] = {"[]",
                         "{}",
                         "[{\"content\": \"x\"}]",
                         "[{\"role\": \"bard\", \"content\": \"x\"}]",
                         "[{\"role\": \"user\", \"content\": 3}]",
                         "[{\"role\": \"user\"}]",
                         "[{\"role\": \"user\", \"content\": [{\"type\": \"image_url\"}]}]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s = render(&t, bad[i], &st);
        if (st != ROE_ERR_INVALID_ARG) TEST__FAIL("messages %s accepted", bad[i]);
        roe_free(s);
    }
    ASSERT_OK(roe_chat_template_load("tests/fixtures/olmoe/model", NULL,
                                     &t)); /* no tokenizer_config.json */
    ASSERT_EQ_INT(t.style, ROE_CHAT_FALLBACK);
}

struct api_rig {
    struct roe_model *m;
    struct roe_roster def;
    struct roe_api_profile prof;
    struct roe_chat_template chat;
    struct roe_api_config c;
};

static int api_open(struct api_rig *r) {
    memset(r, 0, sizeof *r);
    if (roe_model_load("tests/fixtures/olmoe/model", &r->m) != ROE_OK) return -1;
    roe_roster_plain(&r->def);
    if (roe_roster_uniform(&r->prof.roster, &r->m->cfg, 6, 0.3f, 0, ROE_GATE_NOISY) != ROE_OK)
        return -1;
    snprintf(r->prof.name, sizeof r->prof.name, "six");
    roe_chat_template_from_text(NULL, NULL, &r->chat);
    r->c = (struct roe_api_config){.model_name = "tiny",
                                   .cfg = &r->m->cfg,
                                   .tok = NULL,
                                   .chat = &r->chat,
                                   .default_roster = &r->def,
                                   .profiles = &r->prof,
                                   .n_profiles = 1,
                                   .default_sampling = roe_sampling_default(),
                                   .max_ctx = 64,
                                   .default_max_tokens = 20};
    return 0;
}

static int parse(struct api_rig *r, roe_api_kind kind, const char *body, struct roe_api_request *q,
                 struct roe_api_error *e) {
    return roe_api_parse(&r->c, kind, body, strlen(body), q, e);
}

TEST(openai_requests) {
    struct api_rig r;
    ASSERT_TRUE(api_open(&r) == 0);
    struct roe_api_request q;
    struct roe_api_error e;
    ASSERT_EQ_INT(
        parse(&r, ROE_API_COMPLETIONS, "{\"model\": \"tiny\", \"prompt\": [1, 2, 3]}", &q, &e), 0);
    ASSERT_EQ_INT(q.params.n_prompt, 3);
    ASSERT_EQ_INT(q.params.max_tokens, 16); /* the completions default */
    ASSERT_EQ_INT(q.params.stop_at_eos, 1);
    ASSERT_EQ_INT(q.stream, 0);
    ASSERT_EQ_INT(q.params.roster->k, 1);
    roe_api_request_free(&q);
    ASSERT_EQ_INT(parse(&r, ROE_API_COMPLETIONS,
                        "{\"model\": \"tiny\", \"prompt\": [7], \"max_tokens\": 5, "
                        "\"temperature\": 0.5, \"top_p\": 0.9, "
                        "\"top_k\": -1, \"seed\": 42, \"stream\": true, \"stream_options\": "
                        "{\"include_usage\": true}, "
                        "\"ignore_eos\": true, \"roe_k\": 4, \"roe_tau\": 0.5, \"roe_keep_clean\": "
                        "0, \"n\": 1, "
                        "\"stop\": null, \"user\": \"x\", \"unknown_field\": [1]}",
                        &q, &e),
                  0);
    ASSERT_EQ_INT(q.params.max_tokens, 5);
    ASSERT_NEAR(q.params.sampling.temperature, 0.5, 1e-7);
    ASSERT_EQ_INT(q.params.sampling.top_k, 0);
    ASSERT_EQ_INT(q.params.sampling.seed, 42);
    ASSERT_EQ_INT(q.stream, 1);
    ASSERT_EQ_INT(q.include_usage, 1);
    ASSERT_EQ_INT(q.params.stop_at_eos, 0);
    ASSERT_EQ_INT(q.params.roster->k, 4);
    ASSERT_TRUE(roe_roster_is_noisy(q.params.roster, r.m->cfg.n_layers));
    roe_api_request_free(&q);
    ASSERT_EQ_INT(
        parse(&r, ROE_API_COMPLETIONS,
              "{\"model\": \"tiny\", \"prompt\": [7], \"roe_profile\": \"six.json\", \"roe_k\": 3}",
              &q, &e),
        0);
    ASSERT_EQ_INT(q.params.roster->k, 3);
    ASSERT_EQ_INT(q.params.roster->gate, ROE_GATE_NOISY);
    roe_api_request_free(&q);
    /* chat without a tokenizer is refused; a prompt filling the context too */
    ASSERT_EQ_INT(
        parse(&r, ROE_API_CHAT,
              "{\"model\": \"tiny\", \"messages\": [{\"role\": \"user\", \"content\": \"a\"}]}", &q,
              &e),
        -1);
    ASSERT_TRUE(strstr(e.message, "no tokenizer") != NULL);
    struct {
        const char *body;
        int http;
        const char *param;
    } bad[] = {
        {"{\"model\": \"tiny\", \"prompt\": [1]", 400, ""},
        {"[]", 400, ""},
        {"{\"model\": \"big\", \"prompt\": [1]}", 404, "model"},
        {"{\"model\": \"tiny\"}", 400, "prompt"},
        {"{\"model\": \"tiny\", \"prompt\": []}", 400, "prompt"},
        {"{\"model\": \"tiny\", \"prompt\": [1.5]}", 400, "prompt"},
        {"{\"model\": \"tiny\", \"prompt\": [\"a\", \"b\"]}", 400, "prompt"},
        {"{\"model\": \"tiny\", \"prompt\": \"text\"}", 400, "prompt"}, /* no tokenizer */
        {"{\"model\": \"tiny\", \"prompt\": [1], \"max_tokens\": 64}", 400, "prompt"},
        {"{\"model\": \"tiny\", \"prompt\": [1], \"max_tokens\": -1}", 400, "max_tokens"},
        {"{\"model\": \"tiny\", \"prompt\": [1], \"max_tokens\": true}", 400, "max_tokens"},
        {"{\"model\": \"tiny\", \"prompt\": [1], \"top_p\": 0}", 400, "top_p"},
        {"{\"model\": \"tiny\", \"prompt\": [1], \"seed\": -3}", 400, "seed"},
        {"{\"model\": \"tiny\", \"prompt\": [1], \"stream_options\": 1}", 400, "stream_options"},
        {"{\"model\": \"tiny\", \"prompt\": [1], \"logprobs\": 21}", 400, "logprobs"},
        {"{\"model\": \"tiny\", \"prompt\": [1], \"logprobs\": -1}", 400, "logprobs"},
        {"{\"model\": \"tiny\", \"prompt\": [1], \"n\": 0}", 400, "n"},
        {"{\"model\": \"tiny\", \"prompt\": [1], \"stop\": \"x\"}", 400, "stop"}, /* no tokenizer */
        {"{\"model\": \"tiny\", \"prompt\": [1], \"stop\": 5}", 400, "stop"},
        {"{\"model\": \"tiny\", \"prompt\": [1], \"stop_token_ids\": [99999]}", 400, "stop_token_ids"},
        {"{\"model\": \"tiny\", \"prompt\": [1], \"best_of\": 2}", 400, "best_of"},
        {"{\"model\": \"tiny\", \"prompt\": [1], \"presence_penalty\": 0.5}", 400,
         "presence_penalty"},
        {"{\"model\": \"tiny\", \"prompt\": [1], \"roe_k\": 0}", 400, "roe_k"},
        {"{\"model\": \"tiny\", \"prompt\": [1], \"roe_keep_clean\": 1}", 400, "roe_keep_clean"},
        {"{\"model\": \"tiny\", \"prompt\": [1], \"roe_profile\": \"six\", \"roe_tau\": 0.2}", 400,
         "roe_tau"},
        {"{\"model\": \"tiny\", \"prompt\": [1], \"roe_adaptive\": -1}", 400, "roe_adaptive"},
        /* what roe does not implement is refused by name, never ignored (finding 5) */
        {"{\"prompt\": [1], \"tools\": [{\"type\": \"function\"}]}", 400, "tools"},
        {"{\"prompt\": [1], \"tool_choice\": \"auto\"}", 400, "tool_choice"},
        {"{\"prompt\": [1], \"tool_choice\": {\"type\": \"function\"}}", 400, "tool_choice"},
        {"{\"prompt\": [1], \"functions\": [{\"name\": \"f\"}]}", 400, "functions"},
        {"{\"prompt\": [1], \"response_format\": {\"type\": \"json_object\"}}", 400,
         "response_format"},
        {"{\"prompt\": [1], \"response_format\": \"json\"}", 400, "response_format"},
        {"{\"prompt\": [1], \"suffix\": \"x\"}", 400, "suffix"},
        /* strict input (issue 18, finding 4): nothing the client sent is dropped silently */
        {"{\"model\": \"tiny\", \"prompt\": [1]} {\"x\": 1}", 400, ""},
        {"{\"model\": \"tiny\", \"prompt\": [1]}x", 400, ""},
        {"{\"model\": \"tiny\", \"prompt\": [1]}\\u0000", 400, ""},
        {"{\"model\": \"tiny\", \"prompt\": [1], \"max_tokens\": 2, \"max_tokens\": 3}", 400,
         "max_tokens"},
        {"{\"model\": \"tiny\", \"prompt\": [1], \"stream_options\": {\"include_usage\": true, "
         "\"include_usage\": false}}",
         400, "stream_options"},
        {"{\"model\": \"tiny\", \"prompt\": \"a\\u0000b\"}", 400, "prompt"},
        {"{\"model\": \"tiny\", \"prompt\": \"a\tb\"}", 400, "prompt"},
        /* a number float32 cannot hold is named, not turned into 0 */
        {"{\"model\": \"tiny\", \"prompt\": [1], \"top_p\": 1e-50}", 400, "top_p"},
        /* roe_keep_clean that leaves no noisy layer: said in the request's own terms */
        {"{\"model\": \"tiny\", \"prompt\": [1], \"roe_k\": 2, \"roe_tau\": 0.5, "
         "\"roe_keep_clean\": 9}",
         400, "roe_keep_clean"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&e, 0, sizeof e);
        if (parse(&r, ROE_API_COMPLETIONS, bad[i].body, &q, &e) != -1) {
            TEST__FAIL("accepted: %s", bad[i].body);
            roe_api_request_free(&q);
            continue;
        }
        if (e.http != bad[i].http || strcmp(e.param, bad[i].param) != 0)
            TEST__FAIL("%s: HTTP %d param '%s' (%s), want %d '%s'", bad[i].body, e.http, e.param,
                       e.message, bad[i].http, bad[i].param);
        /* messages speak the request's language: no flag or C names */
        if (strstr(e.message, "--") || strstr(e.message, "roe_roster") || strstr(e.message, "keep_clean ="))
            TEST__FAIL("%s: an internal name in '%s'", bad[i].body, e.message);
    }
    /* 'model' is optional (finding 8); the neutral values of tools and response_format pass */
    ASSERT_EQ_INT(parse(&r, ROE_API_COMPLETIONS,
                        "{\"prompt\": [1], \"tools\": [], \"tool_choice\": \"none\", "
                        "\"response_format\": {\"type\": \"text\"}}",
                        &q, &e),
                  0);
    roe_api_request_free(&q);
    /* a full queue is 503 with Retry-After; too many connections 429 with it too */
    roe_api_fail(&e, ROE_ERR_OVERLOADED, NULL, "full");
    ASSERT_EQ_INT(e.http, 503);
    ASSERT_EQ_INT(e.retry_after, 1);
    roe_api_fail_http(&e, 429, "busy");
    ASSERT_EQ_INT(e.retry_after, 1);
    roe_api_fail(&e, ROE_ERR_STOPPING, NULL, "stopping");
    ASSERT_TRUE(e.http == 503 && e.retry_after > 0);
    roe_api_fail(&e, ROE_ERR_INVALID_ARG, "x", "bad");
    ASSERT_EQ_INT(e.retry_after, 0);
    /* the messages of the strict checks say where */
    ASSERT_EQ_INT(parse(&r, ROE_API_CHAT,
                        "{\"model\": \"tiny\", \"messages\": [{\"role\": \"user\", \"content\": "
                        "\"a\\u0000\"}]}",
                        &q, &e),
                  -1);
    ASSERT_EQ_STR(e.param, "messages");
    ASSERT_TRUE(strstr(e.message, "messages[0].content") != NULL);
    ASSERT_TRUE(strstr(e.message, "NUL") != NULL);
    ASSERT_EQ_INT(parse(&r, ROE_API_CHAT,
                        "{\"model\": \"tiny\", \"messages\": [{\"role\": \"user\", \"role\": "
                        "\"system\", \"content\": \"a\"}]}",
                        &q, &e),
                  -1);
    ASSERT_EQ_STR(e.param, "messages");
    ASSERT_TRUE(strstr(e.message, "'role'") != NULL && strstr(e.message, "messages[0]") != NULL);
    {   /* many keys: the sorted check finds the duplicate among them */
        struct roe_strbuf b = {0};
        roe_strbuf_puts(&b, "{\"model\": \"tiny\", \"prompt\": [1], \"x\": {");
        for (int i = 0; i < 500; i++) roe_strbuf_printf(&b, "\"k%d\": %d, ", i % 499, i);
        roe_strbuf_puts(&b, "\"end\": 0}}");
        ASSERT_EQ_INT(roe_api_parse(&r.c, ROE_API_COMPLETIONS, b.p, b.len, &q, &e), -1);
        ASSERT_EQ_STR(e.param, "x");
        ASSERT_TRUE(strstr(e.message, "'k0'") != NULL);
        roe_strbuf_free(&b);
    }
    /* a NUL byte after the object (the body's length says it is there) is trailing data */
    ASSERT_EQ_INT(roe_api_parse(&r.c, ROE_API_COMPLETIONS, "{\"model\": \"tiny\", \"prompt\": [1]}\0",
                                33, &q, &e),
                  -1);
    ASSERT_TRUE(strstr(e.message, "after its JSON object") != NULL);
    char *js = roe_api_error_json(&e);
    cJSON *o = cJSON_Parse(js);
    ASSERT_TRUE(cJSON_IsString(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "error"), "message")));
    ASSERT_TRUE(cJSON_IsString(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "error"), "type")));
    cJSON_Delete(o);
    free(js);
    roe_model_free(r.m);
}

TEST(models_and_tokenize) {
    struct api_rig r;
    ASSERT_TRUE(api_open(&r) == 0);
    struct roe_api_error e;
    char *js = roe_api_models_json(&r.c, 5);
    cJSON *o = cJSON_Parse(js);
    ASSERT_EQ_STR(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "data"), 0), "id")->valuestring,
                  "tiny");
    cJSON_Delete(o);
    free(js);
    ASSERT_EQ_INT(roe_api_model_json(&r.c, 5, "tiny", &js, &e), 0);
    o = cJSON_Parse(js);
    ASSERT_EQ_STR(cJSON_GetObjectItem(o, "object")->valuestring, "model");
    ASSERT_EQ_INT(cJSON_GetObjectItem(o, "max_model_len")->valueint, 64);
    cJSON_Delete(o);
    free(js);
    ASSERT_EQ_INT(roe_api_model_json(&r.c, 5, "gpt-4", &js, &e), -1);
    ASSERT_TRUE(e.http == 404 && strcmp(e.code, "model_not_found") == 0);
    struct roe_api_tokenize t;
    const char *body = "{\"prompt\": [3, 4, 5]}";
    ASSERT_EQ_INT(roe_api_parse_tokenize(&r.c, body, strlen(body), &t, &e), 0);
    js = roe_api_tokenize_json(&r.c, &t);
    o = cJSON_Parse(js);
    ASSERT_EQ_INT(cJSON_GetObjectItem(o, "count")->valueint, 3);
    ASSERT_EQ_INT(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "tokens"), 2)->valueint, 5);
    cJSON_Delete(o);
    free(js);
    roe_api_tokenize_free(&t);
    body = "{\"prompt\": [1], \"model\": \"other\"}";
    ASSERT_EQ_INT(roe_api_parse_tokenize(&r.c, body, strlen(body), &t, &e), -1);
    ASSERT_EQ_INT(e.http, 404);
    body = "{\"tokens\": [1]}"; /* no tokenizer in this rig */
    ASSERT_EQ_INT(roe_api_detokenize(&r.c, body, strlen(body), &js, &e), -1);
    ASSERT_EQ_STR(e.param, "tokens");
    roe_model_free(r.m);
}

TEST(openai_responses) {
    struct api_rig r;
    ASSERT_TRUE(api_open(&r) == 0);
    struct roe_api_request q;
    struct roe_api_error e;
    ASSERT_EQ_INT(parse(&r, ROE_API_COMPLETIONS,
                        "{\"model\": \"tiny\", \"prompt\": [1, 2], \"return_token_ids\": true}", &q,
                        &e),
                  0);
    const int32_t toks[] = {5, 6};
    const struct roe_api_choice one = {.text = "hi \"there\"", .finish = "stop", .gen = {.ids = toks, .n = 2}};
    char *js = roe_api_response_json(&r.c, &q, "cmpl-1", 7, &one, 1, 2);
    cJSON *o = cJSON_Parse(js);
    const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 0);
    ASSERT_EQ_STR(cJSON_GetObjectItem(ch, "text")->valuestring, "hi \"there\"");
    ASSERT_EQ_STR(cJSON_GetObjectItem(ch, "finish_reason")->valuestring, "stop");
    ASSERT_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(ch, "token_ids")), 2);
    ASSERT_EQ_INT(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "usage"), "total_tokens")->valueint,
                  4);
    cJSON_Delete(o);
    free(js);
    struct roe_strbuf sse = {0};
    const struct roe_api_choice first = {.text = "a", .role = 1, .gen = {.ids = toks, .n = 1}};
    roe_api_stream_chunk(&sse, &r.c, &q, "cmpl-1", 7, &first);
    roe_api_stream_usage(&sse, &r.c, &q, "cmpl-1", 7, 2);
    ASSERT_TRUE(strncmp(sse.p, "data: {", 7) == 0);
    ASSERT_TRUE(strstr(sse.p, "}\n\ndata: {") != NULL);
    ASSERT_TRUE(strstr(sse.p, "\"choices\":[]") != NULL);
    ASSERT_TRUE(sse.len > 2 && strcmp(sse.p + sse.len - 2, "\n\n") == 0);
    roe_strbuf_free(&sse);
    roe_api_request_free(&q);
    roe_model_free(r.m);
}

TEST(metrics_text) {
    static const double le[] = {0.1, 1.0};
    struct roe_sched_stats s = {.running = 2,
                                .waiting = 1,
                                .kv_blocks_total = 10,
                                .kv_blocks_used = 5,
                                .generation_tokens = 42};
    roe_histogram_init(&s.ttft, le, 2);
    roe_histogram_init(&s.itl, le, 2);
    roe_histogram_init(&s.e2e, le, 2);
    roe_histogram_init(&s.queue_time, le, 2);
    roe_histogram_observe(&s.ttft, 0.05);
    roe_histogram_observe(&s.ttft, 0.5);
    roe_histogram_observe(&s.ttft, 5.0);
    struct roe_http_stats h = {0};
    h.responses[roe_http_code_index(429)] = 3;
    struct roe_strbuf out = {0};
    roe_metrics_render(&out, "m\"x", &s, &h);
    ASSERT_TRUE(strstr(out.p, "roe_requests_running{model_name=\"m\\\"x\"} 2\n") != NULL);
    ASSERT_TRUE(strstr(out.p, "roe_kv_cache_usage_ratio{model_name=\"m\\\"x\"} 0.5\n") != NULL);
    ASSERT_TRUE(strstr(out.p, "roe_generation_tokens_total{model_name=\"m\\\"x\"} 42\n") != NULL);
    ASSERT_TRUE(
        strstr(out.p,
               "roe_time_to_first_token_seconds_bucket{model_name=\"m\\\"x\",le=\"0.1\"} 1\n") !=
        NULL);
    ASSERT_TRUE(
        strstr(out.p,
               "roe_time_to_first_token_seconds_bucket{model_name=\"m\\\"x\",le=\"1\"} 2\n") !=
        NULL);
    ASSERT_TRUE(
        strstr(out.p,
               "roe_time_to_first_token_seconds_bucket{model_name=\"m\\\"x\",le=\"+Inf\"} 3\n") !=
        NULL);
    ASSERT_TRUE(strstr(out.p, "roe_time_to_first_token_seconds_count{model_name=\"m\\\"x\"} 3\n") !=
                NULL);
    ASSERT_TRUE(strstr(out.p, "# TYPE roe_inter_token_latency_seconds histogram\n") != NULL);
    ASSERT_TRUE(strstr(out.p, "roe_http_responses_total{model_name=\"m\\\"x\",code=\"429\"} 3\n") !=
                NULL);
    roe_strbuf_free(&out);
}

/* Each status's kind, each kind's HTTP status, and the OpenAI error a status gives: the one
 * mapping the server answers by (it never reads the message). */
TEST(error_kinds_to_http) {
    struct {
        roe_status st;
        roe_error_kind kind;
        int http;
        const char *type, *code;
    } cases[] = {
        {ROE_ERR_INVALID_ARG, ROE_KIND_BAD_REQUEST, 400, "invalid_request_error", NULL},
        {ROE_ERR_FORMAT, ROE_KIND_BAD_REQUEST, 400, "invalid_request_error", NULL},
        {ROE_ERR_UNSUPPORTED, ROE_KIND_BAD_REQUEST, 400, "invalid_request_error", NULL},
        {ROE_ERR_NOT_FOUND, ROE_KIND_NOT_FOUND, 404, "invalid_request_error", NULL},
        {ROE_ERR_OVERLOADED, ROE_KIND_OVERLOADED, 503, "server_error", "server_overloaded"},
        {ROE_ERR_STOPPING, ROE_KIND_UNAVAILABLE, 503, "server_error", "shutting_down"},
        {ROE_ERR_UNAVAILABLE, ROE_KIND_UNAVAILABLE, 503, "server_error", "engine_failed"},
        {ROE_ERR_NOMEM, ROE_KIND_INTERNAL, 500, "server_error", NULL},
        {ROE_ERR_IO, ROE_KIND_INTERNAL, 500, "server_error", NULL},
        {ROE_ERR_COMM, ROE_KIND_INTERNAL, 500, "server_error", NULL},
        {ROE_ERR_TIMEOUT, ROE_KIND_INTERNAL, 500, "server_error", NULL},
        {ROE_ERR_INTERNAL, ROE_KIND_INTERNAL, 500, "server_error", NULL},
    };
    const int n = (int)(sizeof cases / sizeof cases[0]);
    ASSERT_EQ_INT(n, ROE_ERR_UNAVAILABLE); /* every error status has its row */
    for (int i = 0; i < n; i++) {
        struct roe_api_error e;
        ASSERT_EQ_INT(roe_api_fail(&e, cases[i].st, "x", "%s", "why"), -1);
        if (roe_status_kind(cases[i].st) != cases[i].kind || e.http != cases[i].http ||
            strcmp(e.type, cases[i].type) != 0 || (e.code == NULL) != (cases[i].code == NULL) ||
            (e.code && strcmp(e.code, cases[i].code) != 0))
            TEST__FAIL("%s: kind %d, HTTP %d, type %s, code %s; want kind %d, %d, %s, %s",
                       roe_status_name(cases[i].st), (int)roe_status_kind(cases[i].st), e.http,
                       e.type, e.code ? e.code : "null", (int)cases[i].kind, cases[i].http,
                       cases[i].type, cases[i].code ? cases[i].code : "null");
        ASSERT_EQ_STR(e.param, "x");
        ASSERT_EQ_STR(e.message, "why");
    }
    ASSERT_EQ_INT(roe_status_kind(ROE_OK), ROE_KIND_OK);
    ASSERT_EQ_INT(roe_api_http_status(ROE_KIND_OK), 200);
    ASSERT_EQ_INT(roe_status_kind((roe_status)1000), ROE_KIND_INTERNAL); /* not a status */
    struct roe_api_error e;
    roe_api_fail_http(&e, 429, "too many: %d", 3);
    ASSERT_EQ_INT(e.http, 429);
    ASSERT_EQ_STR(e.type, "rate_limit_error");
    ASSERT_EQ_STR(e.message, "too many: 3");
    roe_api_fail_http(&e, 413, "big");
    ASSERT_EQ_STR(e.type, "invalid_request_error");
}

/* A scheduler's refusals, as the server answers them: the status and the field at fault
 * decide the HTTP status, the code and the param. */
TEST(scheduler_refusals_to_http) {
    struct api_rig r;
    ASSERT_TRUE(api_open(&r) == 0);
    struct roe_engine_opts eo = roe_engine_opts_default();
    eo.max_seqs = 1;
    eo.max_ctx = 64;
    eo.max_rows = 8;
    eo.n_threads = 1;
    roe_engine *eng = NULL;
    ASSERT_OK(roe_engine_create(r.m, &eo, &eng));
    struct roe_sched_opts so = roe_sched_opts_default();
    so.max_queue = 1;
    so.kv_blocks = 2; /* of 16 positions */
    roe_sched *s = NULL;
    ASSERT_OK(roe_sched_create(eng, &so, &s)); /* not running: a request stays queued */
    const int32_t prompt[] = {1, 2, 3}, outside[] = {1, 999};
    struct roe_sreq_params p = {
        .prompt = prompt, .n_prompt = 3, .max_tokens = 4, .sampling = roe_sampling_default()};
    struct roe_roster k9;
    ASSERT_OK(roe_roster_uniform(&k9, &r.m->cfg, 9, 0.5f, 0, ROE_GATE_CLEAN));
    roe_sreq *a = NULL, *b = NULL;
    roe_sreq_field bad;
    ASSERT_OK(roe_sched_submit(s, &p, &a, &bad));
    struct {
        int max_tokens;
        const int32_t *prompt;
        const struct roe_roster *roster;
        int http;
        const char *param, *code, *words;
    } cases[] = {
        {4, prompt, NULL, 503, "", "server_overloaded", "at capacity"}, /* a is queued */
        {40, prompt, NULL, 400, "max_tokens", NULL, "KV blocks"},       /* 43 positions */
        {4, outside, NULL, 400, "prompt", NULL, "outside the vocabulary"},
        {4, prompt, &k9, 400, "roe_k", NULL, "rows per step"}, /* K = 9, steps of 8 rows */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        p.max_tokens = cases[i].max_tokens;
        p.prompt = cases[i].prompt;
        p.n_prompt = cases[i].prompt == prompt ? 3 : 2;
        p.roster = cases[i].roster;
        struct roe_api_error e;
        const roe_status st = roe_sched_submit(s, &p, &b, &bad); /* before `bad` is read */
        roe_api_refused(&e, st, bad);
        ASSERT_TRUE(b == NULL);
        if (e.http != cases[i].http || strcmp(e.param, cases[i].param) != 0 ||
            (e.code == NULL) != (cases[i].code == NULL) || !strstr(e.message, cases[i].words))
            TEST__FAIL("case %zu: HTTP %d param '%s' code %s (%s); want %d '%s' %s", i, e.http,
                       e.param, e.code ? e.code : "null", e.message, cases[i].http, cases[i].param,
                       cases[i].code ? cases[i].code : "null");
    }
    roe_sched_stop(s, 0);
    p = (struct roe_sreq_params){
        .prompt = prompt, .n_prompt = 3, .max_tokens = 4, .sampling = roe_sampling_default()};
    struct roe_api_error e;
    const roe_status st = roe_sched_submit(s, &p, &b, &bad);
    roe_api_refused(&e, st, bad);
    ASSERT_EQ_INT(e.http, 503);
    ASSERT_EQ_STR(e.code, "shutting_down");
    ASSERT_EQ_STR(e.param, "");
    ASSERT_OK(roe_sched_run(s)); /* stopping: the queued request fails, as unavailable */
    struct roe_sreq_view v;
    roe_sreq_wait(a, 0, 0.0, &v);
    ASSERT_EQ_INT(v.end, ROE_SREQ_FAILED);
    roe_api_fail(&e, v.code, NULL, "%s", v.error);
    ASSERT_EQ_INT(e.http, 503);
    ASSERT_EQ_STR(e.code, "shutting_down");
    roe_sreq_release(a);
    roe_sched_free(s);
    roe_engine_free(eng);
    roe_model_free(r.m);
}

int main(void) {
    RUN(utf8_replacement);
    RUN(utf8_streamed_equals_whole);
    RUN(chat_templates);
    RUN(openai_requests);
    RUN(openai_responses);
    RUN(models_and_tokenize);
    RUN(metrics_text);
    RUN(error_kinds_to_http);
    RUN(scheduler_refusals_to_http);
    return test_summary();
}
