/*
 * openai.h — the OpenAI-compatible protocol: request bodies in, response bodies and
 * server-sent-event chunks out. Pure functions of their inputs (no HTTP, no threads), so the
 * tests can feed them any bytes.
 *
 * Requests (POST /v1/completions, /v1/chat/completions), fields checked for type and range:
 *   model (optional: the served name; another is 404 model_not_found), prompt (a string, token
 *   ids, or a batch of one of either) | messages (chat.h), max_tokens / max_completion_tokens
 *   (default 16 for completions; for chat, what the context leaves, at most the server's
 *   default), temperature [0, 2], top_p (0, 1], top_k (-1 or 0: off), seed (>= 0), stream,
 *   stream_options.include_usage, ignore_eos, return_token_ids (the prompt's and the
 *   completion's token ids in the response, as vLLM), stop (up to 4 strings, stop.h),
 *   stop_token_ids, n (choices: choice i samples with seed + i, the prompt computed once),
 *   logprobs (completions: top alternatives 0-20; chat: a flag) and top_logprobs (chat), echo
 *   (completions: the prompt's text first; with logprobs its tokens' log-probabilities, the
 *   first null), and the RoE fields
 *     roe_k (>= 1), roe_tau (>= 0, every MoE layer but the first and last roe_keep_clean),
 *     roe_keep_clean, roe_profile (a profile the server loaded), roe_gate ("clean"|"noisy"),
 *     roe_adaptive (entropy threshold, nats)
 *   which start from the server's default RoE settings. Fields roe does not implement (tools,
 *   tool_choice, functions, function_call, response_format but text, suffix, best_of > 1,
 *   include_stop_str_in_output, penalties, logit_bias; echo in chat) are refused with a 400
 *   naming them rather than ignored; unknown fields are ignored.
 * Strict input (json_strict.h): data after the JSON object, a key given twice, NUL (\u0000) or a
 * raw control character in a string are refused with 400 naming the field, never truncated or
 * resolved silently; a number the engine's float32 cannot hold (top_p 1e-50) is named too.
 * Errors: an HTTP status and an OpenAI-style body
 *   {"error": {"message": ..., "type": ..., "param": ..., "code": ...}}.
 * The HTTP status comes from the error's status (base/status.h) by its kind, in one table
 * (roe_api_http_status), and `param` from the field at fault, never from the message's words.
 */
#ifndef ROE_SERVER_OPENAI_H
#define ROE_SERVER_OPENAI_H

#include <stddef.h>
#include <stdint.h>

#include "chat.h"
#include "runtime/config.h"
#include "runtime/generate.h"
#include "runtime/roster.h"
#include "runtime/sampler.h"
#include "runtime/scheduler.h"
#include "runtime/stop.h"
#include "runtime/tokenizer.h"
#include "strbuf.h"

struct roe_api_profile {
    char name[128]; /* the file name without .json */
    struct roe_roster roster;
};

/* What the server serves; everything borrowed, read-only while serving. */
struct roe_api_config {
    const char *model_name;
    const struct roe_model_config *cfg;
    const roe_tokenizer *tok; /* NULL: prompts must be token ids, no chat */
    const struct roe_chat_template *chat;
    const struct roe_roster *default_roster;
    const struct roe_api_profile *profiles;
    int n_profiles;
    struct roe_sampling default_sampling;
    int max_ctx;            /* the engine's context, in positions */
    int default_max_tokens; /* chat without max_tokens: at most this many */
};

typedef enum roe_api_kind {
    ROE_API_COMPLETIONS = 0,
    ROE_API_CHAT,
} roe_api_kind;

struct roe_api_request {
    roe_api_kind kind;
    int stream;
    int include_usage;
    int return_token_ids;
    int echo;                      /* completions: the prompt's text before the completion */
    struct roe_sreq_params params; /* prompt points into `prompt`, roster into `roster`,
                                      stop_text into `stop` */
    int32_t *prompt;               /* roe_malloc'd */
    char *prompt_text;             /* echo of a text prompt: the text as given (roe_malloc'd) */
    struct roe_roster roster;
    struct roe_stop_text stop;
    int has_tok, vocab;            /* of the config it was parsed with */
};

struct roe_api_error {
    int http;         /* 400, 404, 413, 429, 500, 503 ... */
    const char *type; /* "invalid_request_error", ... (static) */
    const char *code; /* NULL or a static code ("model_not_found", "shutting_down") */
    char param[64];   /* the offending field, "" if none */
    char message[768];
    int retry_after;  /* seconds for a Retry-After header (429, 503); 0: none */
};

/* The HTTP status of each kind of error (base/status.h): the server's one mapping from a
 * status to HTTP. A full queue is 503 (retry later), as vLLM answers it. */
int roe_api_http_status(roe_error_kind k);

/* Fills an error from a status: the HTTP status of its kind, the type of that (server_error,
 * invalid_request_error), and for a status a client may retry on, the OpenAI code saying why
 * (ROE_ERR_OVERLOADED "server_overloaded", ROE_ERR_STOPPING "shutting_down",
 * ROE_ERR_UNAVAILABLE "engine_failed"). A printf-style message. Returns -1 for
 * `return roe_api_fail(...)`. */
int roe_api_fail(struct roe_api_error *e, roe_status st, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* An error of HTTP itself, with no status behind it: 405 (the method), 413 (the body's size),
 * 429 (too many connections; type rate_limit_error). */
int roe_api_fail_http(struct roe_api_error *e, int http, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The error for a request roe_sched_submit refused with st (its message: roe_error_message()),
 * naming the request parameter of the field at fault: a bad field is 400, a full queue or a
 * stop 503, no memory 500. */
void roe_api_refused(struct roe_api_error *e, roe_status st, roe_sreq_field bad);

/* Parses and checks a request body. 0: *out is filled (free with roe_api_request_free);
 * -1: *err says why. */
int roe_api_parse(const struct roe_api_config *c, roe_api_kind kind, const char *body, size_t len,
                  struct roe_api_request *out, struct roe_api_error *err);
void roe_api_request_free(struct roe_api_request *r);

/* {"error": {...}} as a malloc'd string (NULL when out of memory). */
char *roe_api_error_json(const struct roe_api_error *e);

/* Tokens with their log-probabilities (logprobs; lp NULL: none): lp[n], and the top
 * alternatives top_id/top_lp[n, top]. null_first: the first token has none (a prompt's first). */
struct roe_api_logprobs {
    const int32_t *ids;
    const float *lp;
    const int32_t *top_id;
    const float *top_lp;
    int n, top;
    int null_first;
};

/* A choice of a response, or of one streamed chunk. */
struct roe_api_choice {
    int index;
    const char *text;             /* valid UTF-8 (chat chunk: NULL for no content) */
    const char *finish;           /* "stop" / "length"; NULL: a chunk of a choice still running */
    int role;                     /* chat stream: the first chunk announces the assistant */
    struct roe_api_logprobs gen;  /* the generated tokens it covers (ids also for token_ids) */
    struct roe_api_logprobs prompt; /* echo with logprobs: the prompt's tokens, first (n = 0: none) */
    long *text_offset;            /* completions' text_offset: where the next token starts (a
                                     stream keeps it across chunks); NULL: from 0 */
};

/* The whole (non-streamed) response, malloc'd: n choices, usage with completion_tokens. */
char *roe_api_response_json(const struct roe_api_config *c, const struct roe_api_request *r,
                            const char *id, long created, const struct roe_api_choice *choices, int n,
                            int completion_tokens);

/* Appends one SSE event "data: {...}\n\n" to out: a chunk of one choice (its text, the
 * assistant's role on chat's first, the finish on its last), with its tokens' log-probabilities
 * and ids when asked. */
void roe_api_stream_chunk(struct roe_strbuf *out, const struct roe_api_config *c,
                          const struct roe_api_request *r, const char *id, long created,
                          const struct roe_api_choice *ch);
/* The usage chunk (choices empty) of stream_options.include_usage. */
void roe_api_stream_usage(struct roe_strbuf *out, const struct roe_api_config *c,
                          const struct roe_api_request *r, const char *id, long created,
                          int completion_tokens);
/* An error in the stream (after the headers went out), as vLLM sends it. */
void roe_api_stream_error(struct roe_strbuf *out, const struct roe_api_error *e);

const char *roe_api_finish_name(roe_finish f);

/* GET /v1/models: the list of the one model served; GET /v1/models/{id}: that model, or 404
 * model_not_found (-1, *e filled). Bodies malloc'd (NULL: out of memory). */
char *roe_api_models_json(const struct roe_api_config *c, long created);
int roe_api_model_json(const struct roe_api_config *c, long created, const char *id, char **out,
                       struct roe_api_error *e);

/* POST /tokenize and /detokenize, as vLLM has them. /tokenize takes {"prompt": text or ids} or
 * {"messages": [...]} (rendered by the chat template, as /v1/chat/completions would), with
 * "return_token_strs" (each token's text) and "add_special_tokens" (accepted; roe's tokenizer
 * adds none, as its completions do not); it answers {"count", "max_model_len", "tokens"
 * [, "token_strs"]}: exactly the ids a completion request with that prompt would run.
 * /detokenize takes {"tokens": [ids]} and answers {"prompt": text}. "model" is optional. */
/* GET /tokenizer_info (vLLM's): eos/bos/pad tokens' text, model_max_length, vocab_size. */
char *roe_api_tokenizer_info_json(const struct roe_api_config *c);
struct roe_api_tokenize {
    int32_t *ids; /* roe_malloc'd */
    int n;
    int return_strs;
};
int roe_api_parse_tokenize(const struct roe_api_config *c, const char *body, size_t len,
                           struct roe_api_tokenize *out, struct roe_api_error *e);
void roe_api_tokenize_free(struct roe_api_tokenize *t);
char *roe_api_tokenize_json(const struct roe_api_config *c, const struct roe_api_tokenize *t);
/* 0: *out is the response body (NULL: out of memory); -1: *e says why. */
int roe_api_detokenize(const struct roe_api_config *c, const char *body, size_t len, char **out,
                       struct roe_api_error *e);

#endif
