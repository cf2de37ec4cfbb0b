/*
 * fuzz_openai.c — HTTP request bodies of `roe serve` (POST /v1/completions and
 * /v1/chat/completions) through roe_api_parse, as the server calls it: a request, or an
 * error with an HTTP status, a message and a well-formed error body. A parsed request is
 * rendered back (the whole response and the streamed chunks) and freed.
 *
 * Input: byte 0 picks the endpoint (bit 0: chat) and the server (bit 1: the bundled model
 * with its fallback chat template; else the Qwen-style tokenizer with a ChatML template);
 * the rest is the body, handed over without a terminating NUL as the server holds it.
 */
#include <string.h>

#include "fuzz_common.h"
#include "base/alloc.h"
#include "runtime/config.h"
#include "runtime/roster.h"
#include "server/openai.h"

static struct roe_model_config cfg;
static roe_tokenizer *toks[2];
static struct roe_chat_template chats[2];
static struct roe_roster def;
static struct roe_api_profile prof;
static struct roe_api_config apis[2];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_quiet();
    if (roe_config_load(ROE_SOURCE_DIR "/models/olmoe-tiny", &cfg) != ROE_OK ||
        roe_tokenizer_load(ROE_SOURCE_DIR "/models/olmoe-tiny/tokenizer.json", &toks[0]) != ROE_OK ||
        roe_tokenizer_load(ROE_SOURCE_DIR "/tests/data/tokenizer/qwenstyle/tokenizer.json", &toks[1]) != ROE_OK ||
        roe_roster_uniform(&prof.roster, &cfg, 4, 0.3f, 1, ROE_GATE_NOISY) != ROE_OK) {
        fprintf(stderr, "fuzz_openai: %s\n", roe_error_message());
        abort();
    }
    roe_roster_plain(&def);
    snprintf(prof.name, sizeof prof.name, "four");
    roe_chat_template_from_text(NULL, toks[0], &chats[0]);
    roe_chat_template_from_text("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
                                "{% endfor %}<|im_start|>assistant\n",
                                toks[1], &chats[1]);
    for (int i = 0; i < 2; i++)
        apis[i] = (struct roe_api_config){.model_name = "olmoe-tiny",
                                          .cfg = &cfg,
                                          .tok = toks[i],
                                          .chat = &chats[i],
                                          .default_roster = &def,
                                          .profiles = &prof,
                                          .n_profiles = 1,
                                          .default_sampling = roe_sampling_default(),
                                          .max_ctx = 256,
                                          .default_max_tokens = 32};
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const struct roe_api_config *c = &apis[(data[0] >> 1) & 1];
    const roe_api_kind kind = data[0] & 1 ? ROE_API_CHAT : ROE_API_COMPLETIONS;
    char *body = malloc(size - 1 ? size - 1 : 1); /* exactly the body: reads past it are caught */
    if (!body) return 0;
    memcpy(body, data + 1, size - 1);
    struct roe_api_request q;
    struct roe_api_error e;
    memset(&e, 0, sizeof e);
    if (roe_api_parse(c, kind, body, size - 1, &q, &e) == 0) {
        if (q.params.n_prompt < 1 || q.params.max_tokens < 1 ||
            q.params.n_prompt + q.params.max_tokens > c->max_ctx)
            abort();
        for (int i = 0; i < q.params.n_prompt; i++)
            if (q.params.prompt[i] < 0) abort();
        /* the prompt stands in for generated tokens, with made-up log-probabilities */
        static float lp[1 << 12], top_lp[1 << 12];
        static int32_t top_id[1 << 12];
        const int n = q.params.n_prompt < 64 ? q.params.n_prompt : 64, top = q.params.top_logprobs;
        const struct roe_api_logprobs gen = {.ids = q.prompt, .n = n, .top = top, .lp = lp, .top_id = top_id, .top_lp = top_lp};
        const struct roe_api_choice ch = {.text = "ok \xC3\xA9", .finish = "length", .gen = gen,
                                          .prompt = q.params.prompt_logprobs ? gen : (struct roe_api_logprobs){0}};
        char *resp = roe_api_response_json(c, &q, "cmpl-fuzz", 0, &ch, 1, n);
        free(resp);
        struct roe_strbuf sb = {0};
        const struct roe_api_choice first = {.text = "x", .role = 1, .gen = gen}, fin = {.text = "", .finish = "stop"};
        roe_api_stream_chunk(&sb, c, &q, "cmpl-fuzz", 0, &first);
        roe_api_stream_chunk(&sb, c, &q, "cmpl-fuzz", 0, &fin);
        roe_api_stream_usage(&sb, c, &q, "cmpl-fuzz", 0, 2);
        roe_strbuf_free(&sb);
        roe_api_request_free(&q);
    } else {
        if (e.http < 400 || e.http > 599 || e.message[0] == '\0') abort();
        char *j = roe_api_error_json(&e);
        free(j);
    }
    free(body);
    return 0;
}
