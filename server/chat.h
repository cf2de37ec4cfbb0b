/*
 * chat.h — turning chat messages into a prompt (POST /v1/chat/completions).
 *
 * A model's tokenizer_config.json may carry a Jinja `chat_template`. roe renders no Jinja:
 * it recognises the ChatML family (a template that uses <|im_start|> and <|im_end|>, as Qwen's
 * and many fine-tunes do) and renders it natively:
 *
 *   <|im_start|>{role}\n{content}<|im_end|>\n ... <|im_start|>assistant\n
 *
 * ending generation at <|im_end|> (when the tokenizer has it) as well as at eos. Any other
 * template, or none (the bundled model has none), uses the documented fallback:
 *
 *   {role}: {content}\n ... assistant:
 *
 * (role as given: system, user, assistant), which a base model continues as a dialogue.
 * `source` says which one is in use; `roe serve` logs it at start.
 *
 * Messages: an array of {"role": system|developer|user|assistant, "content": string, or an
 * array of {"type": "text", "text": string} parts, or null for an assistant turn}. No BOS is
 * added (as `roe generate` adds none).
 */
#ifndef ROE_SERVER_CHAT_H
#define ROE_SERVER_CHAT_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "base/status.h"
#include "runtime/tokenizer.h"
#include "strbuf.h"

typedef enum roe_chat_style {
    ROE_CHAT_FALLBACK = 0,
    ROE_CHAT_CHATML,
} roe_chat_style;

struct roe_chat_template {
    roe_chat_style style;
    int32_t stop_ids[2]; /* tokens that end an assistant turn besides eos */
    int n_stop;
    char source[160]; /* where the template came from, for the log */
};

/* Reads model_dir/tokenizer_config.json (absent: the fallback). A file that exists but is not
 * a JSON object is an error. tok may be NULL (no stop ids then). */
roe_status roe_chat_template_load(const char *model_dir, const roe_tokenizer *tok,
                                  struct roe_chat_template *t);

/* Decides the style from a template text (NULL: none). */
void roe_chat_template_from_text(const char *jinja, const roe_tokenizer *tok,
                                 struct roe_chat_template *t);

/* Renders messages into out. A malformed message is ROE_ERR_INVALID_ARG, with its index and
 * field in the message. */
roe_status roe_chat_render(const struct roe_chat_template *t, const cJSON *messages,
                           struct roe_strbuf *out);

#endif
