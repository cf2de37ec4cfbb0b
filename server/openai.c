/* openai.c — OpenAI-compatible request parsing and response bodies; see openai.h. */
#include "openai.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/json.h"
#include "json_strict.h"
#include "utf8.h"

int roe_api_http_status(roe_error_kind k) {
    switch (k) {
    case ROE_KIND_OK: return 200;
    case ROE_KIND_BAD_REQUEST: return 400;
    case ROE_KIND_NOT_FOUND: return 404;
    case ROE_KIND_OVERLOADED: return 503; /* a full queue, as vLLM answers it (429: connections) */
    case ROE_KIND_UNAVAILABLE: return 503;
    case ROE_KIND_INTERNAL: return 500;
    }
    return 500;
}

/* The OpenAI `code` of a status a client may retry on: what to wait for, or go elsewhere for. */
static const char *retry_code(roe_status st) {
    switch (st) {
    case ROE_ERR_OVERLOADED: return "server_overloaded";
    case ROE_ERR_STOPPING: return "shutting_down";
    case ROE_ERR_UNAVAILABLE: return "engine_failed";
    default: return NULL;
    }
}

static void fill(struct roe_api_error *e, int http, const char *param, const char *fmt,
                 va_list ap) {
    e->http = http;
    e->type = http >= 500   ? "server_error"
              : http == 429 ? "rate_limit_error"
                            : "invalid_request_error";
    e->code = NULL;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    vsnprintf(e->message, sizeof e->message, fmt, ap);
}

/* Retry-After (seconds) of an answer a client may retry: a full queue or too many connections
 * clear within a second or so; a server stopping or without an engine needs longer (another
 * replica, or the restarted one). */
static int retry_after(roe_status st, int http) {
    if (st == ROE_ERR_OVERLOADED || http == 429) return 1;
    if (st == ROE_ERR_STOPPING || st == ROE_ERR_UNAVAILABLE) return 5;
    return 0;
}

int roe_api_fail(struct roe_api_error *e, roe_status st, const char *param, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fill(e, roe_api_http_status(roe_status_kind(st)), param, fmt, ap);
    va_end(ap);
    e->code = retry_code(st);
    e->retry_after = retry_after(st, e->http);
    return -1;
}

int roe_api_fail_http(struct roe_api_error *e, int http, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fill(e, http, NULL, fmt, ap);
    va_end(ap);
    e->retry_after = retry_after(ROE_OK, http);
    return -1;
}

/* The request parameter a field of roe_sreq_params comes from. */
static const char *param_name(roe_sreq_field f) {
    switch (f) {
    case ROE_SREQ_FIELD_NONE: return NULL;
    case ROE_SREQ_FIELD_PROMPT: return "prompt";
    case ROE_SREQ_FIELD_MAX_TOKENS: return "max_tokens";
    case ROE_SREQ_FIELD_STOP: return "prompt"; /* the stop tokens come with the prompt's template */
    case ROE_SREQ_FIELD_SAMPLING: return NULL; /* several fields; parse_sampling checks each */
    case ROE_SREQ_FIELD_ROSTER: return "roe_k";
    case ROE_SREQ_FIELD_N: return "n";
    case ROE_SREQ_FIELD_LOGPROBS: return "top_logprobs";
    case ROE_SREQ_FIELD_STOP_TEXT: return "stop";
    }
    return NULL;
}

void roe_api_refused(struct roe_api_error *e, roe_status st, roe_sreq_field bad) {
    roe_api_fail(e, st, param_name(bad), "%s", roe_error_message());
}

const char *roe_api_finish_name(roe_finish f) {
    return f == ROE_FINISH_EOS ? "stop" : "length";
}

static const char *type_name(const cJSON *v) {
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "null";
}

/* A field, or NULL when absent or null (OpenAI clients send null for "not given"). */
static const cJSON *field(const cJSON *o, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

/* 1: *out set; 0: absent; -1: wrong type or range (err filled). */
static int get_int(const cJSON *o, const char *name, double lo, double hi, long long *out,
                   struct roe_api_error *e) {
    const cJSON *v = field(o, name);
    if (!v) return 0;
    if (!cJSON_IsNumber(v))
        return roe_api_fail(e, ROE_ERR_INVALID_ARG, name, "'%s' must be an integer, not %s", name,
                            type_name(v));
    const double x = v->valuedouble;
    if (!isfinite(x) || x != floor(x))
        return roe_api_fail(e, ROE_ERR_INVALID_ARG, name, "'%s' must be an integer, not %g", name,
                            x);
    if (x < lo || x > hi)
        return roe_api_fail(e, ROE_ERR_INVALID_ARG, name, "'%s' = %.0f is outside [%.0f, %.0f]",
                            name, x, lo, hi);
    *out = (long long)x;
    return 1;
}

static int get_num(const cJSON *o, const char *name, double lo, double hi, double *out,
                   struct roe_api_error *e) {
    const cJSON *v = field(o, name);
    if (!v) return 0;
    if (!cJSON_IsNumber(v))
        return roe_api_fail(e, ROE_ERR_INVALID_ARG, name, "'%s' must be a number, not %s", name,
                            type_name(v));
    const double x = v->valuedouble;
    if (!(x >= lo && x <= hi))
        return roe_api_fail(e, ROE_ERR_INVALID_ARG, name, "'%s' = %g is outside [%g, %g]", name, x,
                            lo, hi);
    *out = x;
    return 1;
}

static int get_bool(const cJSON *o, const char *name, int *out, struct roe_api_error *e) {
    const cJSON *v = field(o, name);
    if (!v) return 0;
    if (!cJSON_IsBool(v))
        return roe_api_fail(e, ROE_ERR_INVALID_ARG, name, "'%s' must be true or false, not %s",
                            name, type_name(v));
    *out = cJSON_IsTrue(v);
    return 1;
}

static int get_str(const cJSON *o, const char *name, const char **out, struct roe_api_error *e) {
    const cJSON *v = field(o, name);
    if (!v) return 0;
    if (!cJSON_IsString(v))
        return roe_api_fail(e, ROE_ERR_INVALID_ARG, name, "'%s' must be a string, not %s", name,
                            type_name(v));
    *out = v->valuestring;
    return 1;
}

/* Function calling and structured output, which roe does not implement: refused by name
 * (a client that relies on them must not get free text as if they had been honoured); their
 * neutral values (no tools, tool_choice "none", response_format text) are accepted. */
static int check_tools(const cJSON *o, struct roe_api_error *e) {
    static const char *const lists[] = {"tools", "functions"};
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        const cJSON *v = field(o, lists[i]);
        if (v && !(cJSON_IsArray(v) && cJSON_GetArraySize(v) == 0))
            return roe_api_fail(e, ROE_ERR_INVALID_ARG, lists[i],
                                "'%s' (function calling) is not implemented by roe: send the "
                                "request without it",
                                lists[i]);
    }
    static const char *const choices[] = {"tool_choice", "function_call"};
    for (size_t i = 0; i < sizeof choices / sizeof choices[0]; i++) {
        const cJSON *v = field(o, choices[i]);
        if (v && !(cJSON_IsString(v) && strcmp(v->valuestring, "none") == 0))
            return roe_api_fail(e, ROE_ERR_INVALID_ARG, choices[i],
                                "'%s' is not implemented by roe (function calling): only \"none\" "
                                "is accepted",
                                choices[i]);
    }
    const cJSON *rf = field(o, "response_format");
    if (rf) {
        const cJSON *t = cJSON_IsObject(rf) ? field(rf, "type") : NULL;
        if (!(t && cJSON_IsString(t) && strcmp(t->valuestring, "text") == 0))
            return roe_api_fail(e, ROE_ERR_INVALID_ARG, "response_format",
                                "'response_format' %s is not implemented by roe (structured "
                                "output): only {\"type\": \"text\"} is accepted",
                                t && cJSON_IsString(t) ? t->valuestring : "of this form");
    }
    return 0;
}

/* Fields roe does not implement: refused by name rather than silently ignored. */
static int check_unsupported(const cJSON *o, struct roe_api_error *e) {
    long long n = 1;
    if (get_int(o, "best_of", 1, 1e6, &n, e) < 0) return -1;
    if (n != 1)
        return roe_api_fail(e, ROE_ERR_INVALID_ARG, "best_of",
                            "'best_of' = %lld is not implemented (only 1; 'n' gives several choices)", n);
    int b = 0;
    if (get_bool(o, "include_stop_str_in_output", &b, e) < 0) return -1;
    if (b)
        return roe_api_fail(e, ROE_ERR_INVALID_ARG, "include_stop_str_in_output",
                            "'include_stop_str_in_output' is not implemented: the text ends before the "
                            "stop string");
    if (field(o, "suffix"))
        return roe_api_fail(e, ROE_ERR_INVALID_ARG, "suffix",
                            "'suffix' (insertion) is not implemented by roe: send the request "
                            "without it");
    const cJSON *lb = field(o, "logit_bias");
    if (lb && !(cJSON_IsObject(lb) && !lb->child))
        return roe_api_fail(e, ROE_ERR_INVALID_ARG, "logit_bias", "'logit_bias' is not supported");
    static const char *const penalties[] = {"presence_penalty", "frequency_penalty",
                                            "repetition_penalty"};
    for (size_t i = 0; i < sizeof penalties / sizeof penalties[0]; i++) {
        double x = 0;
        if (get_num(o, penalties[i], -1e9, 1e9, &x, e) < 0) return -1;
        if (x != 0.0 && !(i == 2 && x == 1.0))
            return roe_api_fail(e, ROE_ERR_INVALID_ARG, penalties[i],
                                "'%s' = %g is not supported (only the neutral value)", penalties[i],
                                x);
    }
    return 0;
}

/* The prompt of a completion request: a string, token ids, or an array of one string. */
static int parse_prompt(const struct roe_api_config *c, const cJSON *o, struct roe_api_request *out,
                        struct roe_api_error *e) {
    const cJSON *p = field(o, "prompt");
    if (!p) return roe_api_fail(e, ROE_ERR_INVALID_ARG, "prompt", "'prompt' is required");
    /* a batch of one prompt (lm-evaluation-harness sends [[ids]]) is that prompt */
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 && (cJSON_IsString(p->child) || cJSON_IsArray(p->child)))
        p = p->child;
    if (cJSON_IsString(p) && cJSON_IsTrue(field(o, "echo"))) {
        out->prompt_text = roe_malloc(strlen(p->valuestring) + 1);
        if (!out->prompt_text) return roe_api_fail(e, ROE_ERR_NOMEM, "prompt", "out of memory for the prompt");
        strcpy(out->prompt_text, p->valuestring);
    }
    if (cJSON_IsString(p)) {
        if (!c->tok)
            return roe_api_fail(
                e, ROE_ERR_INVALID_ARG, "prompt",
                "this model has no tokenizer.json: give 'prompt' as an array of token ids");
        size_t n = 0;
        roe_status st =
            roe_tokenizer_encode(c->tok, p->valuestring, strlen(p->valuestring), &out->prompt, &n);
        if (st == ROE_ERR_NOMEM)
            return roe_api_fail(e, ROE_ERR_NOMEM, "prompt", "out of memory tokenizing the prompt");
        if (st != ROE_OK)
            return roe_api_fail(e, ROE_ERR_INVALID_ARG, "prompt",
                                "'prompt' cannot be tokenized: %s", roe_error_message());
        if (n == 0) return roe_api_fail(e, ROE_ERR_INVALID_ARG, "prompt", "'prompt' is empty");
        if (n > (size_t)1 << 30)
            return roe_api_fail(e, ROE_ERR_INVALID_ARG, "prompt", "'prompt' is too long");
        out->params.n_prompt = (int)n;
        return 0;
    }
    if (!cJSON_IsArray(p))
        return roe_api_fail(e, ROE_ERR_INVALID_ARG, "prompt",
                            "'prompt' must be a string or an array of token ids, not %s",
                            type_name(p));
    const int n = cJSON_GetArraySize(p);
    if (n == 0) return roe_api_fail(e, ROE_ERR_INVALID_ARG, "prompt", "'prompt' is empty");
    if (cJSON_IsString(p->child) || cJSON_IsArray(p->child))
        return roe_api_fail(e, ROE_ERR_INVALID_ARG, "prompt",
                            "batched prompts are not supported: send one request per prompt");
    out->prompt = roe_malloc((size_t)n * sizeof *out->prompt);
    if (!out->prompt)
        return roe_api_fail(e, ROE_ERR_NOMEM, "prompt", "out of memory for %d prompt tokens", n);
    const cJSON *it;
    int i = 0;
    cJSON_ArrayForEach(it, p) {
        if (!cJSON_IsNumber(it))
            return roe_api_fail(e, ROE_ERR_INVALID_ARG, "prompt",
                                "'prompt'[%d] must be a token id, not %s", i, type_name(it));
        const double x = it->valuedouble;
        if (x != floor(x) || x < 0 || x >= c->cfg->vocab_size)
            return roe_api_fail(e, ROE_ERR_INVALID_ARG, "prompt",
                                "'prompt'[%d] = %g is not a token id in [0, %d)", i, x,
                                c->cfg->vocab_size);
        out->prompt[i++] = (int32_t)x;
    }
    out->params.n_prompt = n;
    return 0;
}

static int parse_messages(const struct roe_api_config *c, const cJSON *o,
                          struct roe_api_request *out, struct roe_api_error *e) {
    const cJSON *m = field(o, "messages");
    if (!m) return roe_api_fail(e, ROE_ERR_INVALID_ARG, "messages", "'messages' is required");
    if (!c->tok)
        return roe_api_fail(
            e, ROE_ERR_INVALID_ARG, "messages",
            "this model has no tokenizer.json: chat is unavailable, use /v1/completions");
    struct roe_strbuf text = {0};
    roe_status st = roe_chat_render(c->chat, m, &text);
    if (st != ROE_OK) {
        roe_strbuf_free(&text);
        return roe_api_fail(e, st == ROE_ERR_NOMEM ? ROE_ERR_NOMEM : ROE_ERR_INVALID_ARG,
                            "messages", "%s", roe_error_message());
    }
    size_t n = 0;
    st = roe_tokenizer_encode(c->tok, text.p, text.len, &out->prompt, &n);
    roe_strbuf_free(&text);
    if (st != ROE_OK)
        return roe_api_fail(e, st == ROE_ERR_NOMEM ? ROE_ERR_NOMEM : ROE_ERR_INVALID_ARG,
                            "messages", "'messages' cannot be tokenized: %s", roe_error_message());
    if (n > (size_t)1 << 30)
        return roe_api_fail(e, ROE_ERR_INVALID_ARG, "messages", "'messages' are too long");
    out->params.n_prompt = (int)n;
    for (int i = 0; i < c->chat->n_stop; i++)
        out->params.stop_ids[out->params.n_stop++] = c->chat->stop_ids[i];
    return 0;
}

static const struct roe_api_profile *find_profile(const struct roe_api_config *c,
                                                  const char *name) {
    for (int i = 0; i < c->n_profiles; i++) {
        const char *p = c->profiles[i].name;
        const size_t n = strlen(p);
        if (strcmp(p, name) == 0 || (strncmp(p, name, n) == 0 && strcmp(name + n, ".json") == 0))
            return &c->profiles[i];
    }
    return NULL;
}

/* The request's roster: the server's default, a named profile, or a uniform tau, then the
 * single fields on top. */
static int parse_roe(const struct roe_api_config *c, const cJSON *o, struct roe_api_request *out,
                     struct roe_api_error *e) {
    struct roe_roster *r = &out->roster;
    *r = *c->default_roster;
    const char *profile = NULL, *gate = NULL;
    long long k = 0, keep = 1;
    double tau = 0, adaptive = 0;
    int has_profile, has_tau, has_k, has_keep, has_gate, has_adaptive;
    if ((has_profile = get_str(o, "roe_profile", &profile, e)) < 0) return -1;
    if ((has_k = get_int(o, "roe_k", 1, ROE_MAX_SAMPLES, &k, e)) < 0) return -1;
    if ((has_tau = get_num(o, "roe_tau", 0, 10, &tau, e)) < 0) return -1;
    if ((has_keep = get_int(o, "roe_keep_clean", 0, ROE_MAX_LAYERS, &keep, e)) < 0) return -1;
    if ((has_gate = get_str(o, "roe_gate", &gate, e)) < 0) return -1;
    if ((has_adaptive = get_num(o, "roe_adaptive", 0, 1e6, &adaptive, e)) < 0) return -1;
    roe_gate_mode g = r->gate;
    if (has_gate) {
        if (strcmp(gate, "clean") == 0)
            g = ROE_GATE_CLEAN;
        else if (strcmp(gate, "noisy") == 0)
            g = ROE_GATE_NOISY;
        else
            return roe_api_fail(e, ROE_ERR_INVALID_ARG, "roe_gate",
                                "'roe_gate' must be \"clean\" or \"noisy\", not \"%.40s\"", gate);
    }
    if (has_profile && has_tau)
        return roe_api_fail(e, ROE_ERR_INVALID_ARG, "roe_tau",
                            "give either 'roe_tau' or 'roe_profile', not both");
    if (has_profile) {
        const struct roe_api_profile *p = find_profile(c, profile);
        if (!p) {
            char names[512] = "";
            size_t w = 0;
            for (int i = 0; i < c->n_profiles && w < sizeof names - 1; i++)
                w += (size_t)snprintf(names + w, sizeof names - w, "%s%s", i ? ", " : "",
                                      c->profiles[i].name);
            return roe_api_fail(
                e, ROE_ERR_INVALID_ARG, "roe_profile",
                "'roe_profile' \"%.100s\" is not one this server loaded (%s)", profile,
                c->n_profiles ? names : "none: start it with --roe-profile-dir DIR");
        }
        *r = p->roster;
    }
    if (!has_gate) g = r->gate; /* the profile's, or the server's */
    if (has_tau) {
        roe_status st =
            roe_roster_uniform(r, c->cfg, has_k ? (int)k : r->k, (float)tau, (int)keep, g);
        if (st != ROE_OK)
            return roe_api_fail(e, ROE_ERR_INVALID_ARG, "roe_tau", "'roe_tau' = %g: %s", tau,
                                roe_error_message());
        const int n_moe = roe_config_n_moe_layers(c->cfg);
        if (tau > 0 && 2 * keep >= n_moe)
            return roe_api_fail(e, ROE_ERR_INVALID_ARG, has_keep ? "roe_keep_clean" : "roe_tau",
                                "'roe_keep_clean' = %lld%s keeps every one of the model's %d MoE "
                                "layers clean (it counts from each end), so 'roe_tau' would "
                                "change nothing: lower 'roe_keep_clean'",
                                keep, has_keep ? "" : " (the default)", n_moe);
    } else if (has_keep)
        return roe_api_fail(e, ROE_ERR_INVALID_ARG, "roe_keep_clean",
                            "'roe_keep_clean' applies to 'roe_tau': give both");
    if (has_k) {
        r->k = (int)k;
        if (k > 1 && !roe_roster_is_noisy(r, c->cfg->n_layers))
            return roe_api_fail(
                e, ROE_ERR_INVALID_ARG, "roe_k",
                "'roe_k' = %lld needs 'roe_tau' or 'roe_profile': the server's default RoE "
                "settings "
                "have tau 0 everywhere, where K samples are the plain model K times",
                k);
    }
    r->gate = g;
    if (has_adaptive) r->adaptive_entropy = (float)adaptive;
    if (roe_roster_validate(r, c->cfg) != ROE_OK)
        return roe_api_fail(e, ROE_ERR_INVALID_ARG, "roe_k", "RoE settings: %s",
                            roe_error_message());
    out->params.roster = r;
    return 0;
}

/* What json_strict.h found, as the error naming the field it is in. */
static void strict_error(const struct roe_json_problem *p, size_t len, struct roe_api_error *e) {
    const char *param = p->param[0] ? p->param : NULL;
    const char *in = p->path[0] ? p->path : "the request body";
    switch (p->kind) {
    case ROE_JSON_TRAILING:
        roe_api_fail(e, ROE_ERR_INVALID_ARG, NULL,
                     "the request body has data after its JSON object (at byte %zu of %zu): send "
                     "exactly one JSON object",
                     p->at, len);
        break;
    case ROE_JSON_DUPLICATE:
        roe_api_fail(e, ROE_ERR_INVALID_ARG, param,
                     "the key '%s' appears more than once in %s: give each field once", p->key, in);
        break;
    case ROE_JSON_NUL:
        roe_api_fail(e, ROE_ERR_INVALID_ARG, param,
                     "%s contains a NUL character (\\u0000, at byte %zu): roe does not accept NUL "
                     "in text",
                     in, p->at);
        break;
    case ROE_JSON_CONTROL:
        roe_api_fail(e, ROE_ERR_INVALID_ARG, param,
                     "%s contains a raw control character (byte %zu): JSON requires it escaped", in,
                     p->at);
        break;
    default:
        roe_api_fail(e, ROE_ERR_NOMEM, NULL, "out of memory checking the request body");
        break;
    }
}

/* The body as a JSON object (NULL: *e says why). */
static cJSON *parse_object(const char *body, size_t len, struct roe_api_error *e) {
    const char *end = NULL;
    int oom = 0;
    cJSON *o = roe_json_parse(body, len, &end, &oom);
    if (!o && oom) {
        roe_api_fail(e, ROE_ERR_NOMEM, NULL, "out of memory parsing the request body (%zu bytes)",
                     len);
        return NULL;
    }
    if (!o) {
        const size_t at = end && end >= body ? (size_t)(end - body) : 0;
        roe_api_fail(e, ROE_ERR_INVALID_ARG, NULL,
                     "the request body is not valid JSON (at byte %zu of %zu)", at, len);
        return NULL;
    }
    if (!cJSON_IsObject(o)) {
        roe_api_fail(e, ROE_ERR_INVALID_ARG, NULL, "the request body must be a JSON object, not %s",
                     type_name(o));
        cJSON_Delete(o);
        return NULL;
    }
    struct roe_json_problem p;
    if (roe_json_strict_check(body, len, (size_t)(end - body), o, &p) != 0) {
        strict_error(&p, len, e);
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* 'model', when given, must name the model this server serves: another name is not found
 * (404). Absent, it is that model (as vLLM, SGLang and llama-server take it). */
static int check_model(const struct roe_api_config *c, const cJSON *o, struct roe_api_error *e) {
    const char *model = NULL;
    if (get_str(o, "model", &model, e) < 0) return -1;
    if (model && strcmp(model, c->model_name) != 0) {
        roe_api_fail(e, ROE_ERR_NOT_FOUND, "model",
                     "the model \"%.200s\" does not exist: this server serves \"%s\"", model,
                     c->model_name);
        e->code = "model_not_found";
        return -1;
    }
    return 0;
}

/* temperature, top_p, top_k and seed over the server's defaults. */
static int parse_sampling(const struct roe_api_config *c, const cJSON *o, struct roe_sampling *s,
                          struct roe_api_error *e) {
    *s = c->default_sampling;
    double x;
    long long v;
    int got;
    if ((got = get_num(o, "temperature", 0, 2, &x, e)) < 0) return -1;
    if (got) s->temperature = (float)x;
    if ((got = get_num(o, "top_p", 0, 1, &x, e)) < 0) return -1;
    if (got && x == 0)
        return roe_api_fail(e, ROE_ERR_INVALID_ARG, "top_p", "'top_p' must be in (0, 1]");
    /* sampling is float32: a top_p below its smallest normal value would become 0 (refused
     * later under another name) or a denormal; say so here, naming the field */
    if (got && x < FLT_MIN)
        return roe_api_fail(e, ROE_ERR_INVALID_ARG, "top_p",
                            "'top_p' = %g is too small: roe samples in float32, whose smallest "
                            "normal value is %g (for greedy decoding use 'temperature': 0)",
                            x, (double)FLT_MIN);
    if (got) s->top_p = (float)x;
    if ((got = get_int(o, "top_k", -1, 1 << 30, &v, e)) < 0) return -1;
    if (got) s->top_k = v < 0 ? 0 : (int)v;
    if ((got = get_int(o, "seed", 0, 9007199254740991.0, &v, e)) < 0) return -1;
    if (got) s->seed = (uint64_t)v;
    return 0;
}

/* max_tokens (chat: or max_completion_tokens), within what the context leaves after the
 * prompt; absent: 16 for completions, for chat what the context leaves up to the server's
 * default. */
static int parse_length(const struct roe_api_config *c, const cJSON *o, roe_api_kind kind,
                        struct roe_sreq_params *p, struct roe_api_error *e) {
    const int chat = kind == ROE_API_CHAT, room = c->max_ctx - p->n_prompt;
    const char *what = chat ? "messages" : "prompt";
    long long mt = -1;
    int got;
    if ((got = get_int(o, "max_tokens", 1, 1 << 30, &mt, e)) < 0) return -1;
    if (!got && chat && (got = get_int(o, "max_completion_tokens", 1, 1 << 30, &mt, e)) < 0)
        return -1;
    if (p->n_prompt >= c->max_ctx || (got && mt > room))
        return roe_api_fail(e, ROE_ERR_INVALID_ARG, what,
                            "this model's maximum context length is %d tokens, but %lld were "
                            "requested (%d in the %s, %lld to generate): shorten the %s or lower "
                            "max_tokens",
                            c->max_ctx, (long long)p->n_prompt + (got ? mt : 1), p->n_prompt, what,
                            got ? mt : 1LL, what);
    if (!got)
        mt = chat ? (room < c->default_max_tokens ? room : c->default_max_tokens)
                  : (room < 16 ? room : 16);
    p->max_tokens = (int)mt;
    return 0;
}

/* n, and log-probabilities: completions' logprobs (top alternatives, 0 to 20) with echo (the
 * prompt's text and, with logprobs, its tokens' log-probabilities); chat's logprobs (a flag)
 * and top_logprobs. */
static int parse_choices(const cJSON *o, roe_api_kind kind, struct roe_api_request *out,
                         struct roe_api_error *e) {
    struct roe_sreq_params *p = &out->params;
    long long n = 1, top = 0;
    if (get_int(o, "n", 1, 1 << 20, &n, e) < 0) return -1;
    p->n = (int)n;
    const cJSON *lp = field(o, "logprobs");
    if (kind == ROE_API_COMPLETIONS) {
        if (get_bool(o, "echo", &out->echo, e) < 0) return -1;
        if (lp && !cJSON_IsFalse(lp) && get_int(o, "logprobs", 0, ROE_SCHED_MAX_TOP_LOGPROBS, &top, e) < 0)
            return -1;
        p->logprobs = lp && !cJSON_IsFalse(lp);
        p->top_logprobs = (int)top;
        p->prompt_logprobs = out->echo && p->logprobs;
        return 0;
    }
    if (field(o, "echo"))
        return roe_api_fail(e, ROE_ERR_INVALID_ARG, "echo", "'echo' is for /v1/completions, not chat");
    if (get_bool(o, "logprobs", &p->logprobs, e) < 0 ||
        get_int(o, "top_logprobs", 0, ROE_SCHED_MAX_TOP_LOGPROBS, &top, e) < 0)
        return -1;
    if (top > 0 && !p->logprobs)
        return roe_api_fail(e, ROE_ERR_INVALID_ARG, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
    p->top_logprobs = (int)top;
    return 0;
}

/* stop: a string or up to 4 (matched in the text, stop.h); stop_token_ids (vLLM's): more ids
 * that end generation. */
static int parse_stop(const cJSON *o, struct roe_api_request *out, struct roe_api_error *e) {
    const cJSON *v = field(o, "stop");
    const char *strs[ROE_STOP_MAX_STRINGS];
    size_t lens[ROE_STOP_MAX_STRINGS];
    int n = 0;
    if (v && !cJSON_IsString(v) && !cJSON_IsArray(v))
        return roe_api_fail(e, ROE_ERR_INVALID_ARG, "stop", "'stop' must be a string or an array of strings, not %s",
                            type_name(v));
    if (v && cJSON_GetArraySize(v) > ROE_STOP_MAX_STRINGS)
        return roe_api_fail(e, ROE_ERR_INVALID_ARG, "stop", "'stop' has %d strings: at most %d",
                            cJSON_GetArraySize(v), ROE_STOP_MAX_STRINGS);
    const cJSON *it = v && cJSON_IsArray(v) ? v->child : v;
    for (; it; it = cJSON_IsArray(v) ? it->next : NULL) {
        if (!cJSON_IsString(it))
            return roe_api_fail(e, ROE_ERR_INVALID_ARG, "stop", "'stop'[%d] must be a string, not %s", n, type_name(it));
        lens[n] = strlen(it->valuestring);
        strs[n++] = it->valuestring;
        if (lens[n - 1] == 0 || lens[n - 1] > ROE_STOP_MAX_BYTES)
            return roe_api_fail(e, ROE_ERR_INVALID_ARG, "stop", "'stop' string %d has %zu bytes: each needs 1 to %d",
                                n - 1, lens[n - 1], ROE_STOP_MAX_BYTES);
    }
    if (n && !out->has_tok)
        return roe_api_fail(e, ROE_ERR_INVALID_ARG, "stop", "this model has no tokenizer.json: 'stop' strings cannot be matched");
    roe_stop_text_init(&out->stop, strs, lens, n); /* checked above */
    out->params.stop_text = n ? &out->stop : NULL;
    const cJSON *ids = field(o, "stop_token_ids");
    if (ids && !cJSON_IsArray(ids))
        return roe_api_fail(e, ROE_ERR_INVALID_ARG, "stop_token_ids", "'stop_token_ids' must be an array of token ids");
    struct roe_sreq_params *p = &out->params;
    cJSON_ArrayForEach(it, ids) {
        if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || it->valuedouble < 0 ||
            it->valuedouble >= out->vocab)
            return roe_api_fail(e, ROE_ERR_INVALID_ARG, "stop_token_ids", "'stop_token_ids' must hold token ids in [0, %d)",
                                out->vocab);
        if (p->n_stop == ROE_SCHED_MAX_STOP)
            return roe_api_fail(e, ROE_ERR_INVALID_ARG, "stop_token_ids", "at most %d stop tokens in all",
                                ROE_SCHED_MAX_STOP);
        p->stop_ids[p->n_stop++] = (int32_t)it->valuedouble;
    }
    return 0;
}

/* ignore_eos, stream, return_token_ids, stream_options.include_usage. */
static int parse_options(const cJSON *o, struct roe_api_request *out, struct roe_api_error *e) {
    int ignore_eos = 0;
    if (get_bool(o, "ignore_eos", &ignore_eos, e) < 0) return -1;
    out->params.stop_at_eos = !ignore_eos;
    if (ignore_eos) out->params.n_stop = 0; /* the chat template's end tokens too */
    if (get_bool(o, "stream", &out->stream, e) < 0) return -1;
    if (get_bool(o, "return_token_ids", &out->return_token_ids, e) < 0) return -1;
    const cJSON *so = field(o, "stream_options");
    if (!so) return 0;
    if (!cJSON_IsObject(so))
        return roe_api_fail(e, ROE_ERR_INVALID_ARG, "stream_options",
                            "'stream_options' must be an object, not %s", type_name(so));
    return get_bool(so, "include_usage", &out->include_usage, e) < 0 ? -1 : 0;
}

int roe_api_parse(const struct roe_api_config *c, roe_api_kind kind, const char *body, size_t len,
                  struct roe_api_request *out, struct roe_api_error *e) {
    memset(out, 0, sizeof *out);
    out->kind = kind;
    cJSON *o = parse_object(body, len, e);
    if (!o) return -1;
    struct roe_sreq_params *p = &out->params;
    int rc = -1;
    out->has_tok = c->tok != NULL;
    out->vocab = c->cfg->vocab_size;
    if (check_model(c, o, e) < 0 || check_unsupported(o, e) < 0 || check_tools(o, e) < 0)
        goto done;
    if ((kind == ROE_API_CHAT ? parse_messages(c, o, out, e) : parse_prompt(c, o, out, e)) < 0)
        goto done;
    p->prompt = out->prompt;
    if (parse_sampling(c, o, &p->sampling, e) < 0 || parse_length(c, o, kind, p, e) < 0 ||
        parse_options(o, out, e) < 0 || parse_choices(o, kind, out, e) < 0 || parse_stop(o, out, e) < 0 ||
        parse_roe(c, o, out, e) < 0)
        goto done;
    rc = 0;
done:
    cJSON_Delete(o);
    if (rc != 0) roe_api_request_free(out);
    return rc;
}

void roe_api_request_free(struct roe_api_request *r) {
    roe_free(r->prompt);
    r->prompt = NULL;
    roe_free(r->prompt_text);
    r->prompt_text = NULL;
    r->params.prompt = NULL;
}

/* Every renderer below builds with roe_json_put (runtime/json.h): out of memory, a response
 * is NULL (the caller answers 500 or drops the stream), never a leak or a partial object. */
#define PUT(parent, key, item) roe_json_put(&ok, (parent), (key), (item))

char *roe_api_error_json(const struct roe_api_error *e) {
    int ok = 1;
    cJSON *root = cJSON_CreateObject(), *err = PUT(root, "error", cJSON_CreateObject());
    PUT(err, "message", cJSON_CreateString(e->message));
    PUT(err, "type", cJSON_CreateString(e->type ? e->type : "invalid_request_error"));
    PUT(err, "param", e->param[0] ? cJSON_CreateString(e->param) : cJSON_CreateNull());
    PUT(err, "code", e->code ? cJSON_CreateString(e->code) : cJSON_CreateNull());
    return roe_json_render(ok, root);
}

static cJSON *ids_json(int *okp, const int32_t *ids, int n) {
    int ok = 1;
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n && ok; i++) PUT(a, NULL, cJSON_CreateNumber(ids[i]));
    if (!ok) {
        cJSON_Delete(a);
        a = NULL;
    }
    *okp &= ok;
    return a;
}

static cJSON *head(int *okp, const struct roe_api_config *c, const char *id, long created, const char *object) {
    int ok = 1;
    cJSON *root = cJSON_CreateObject();
    PUT(root, "id", cJSON_CreateString(id));
    PUT(root, "object", cJSON_CreateString(object));
    PUT(root, "created", cJSON_CreateNumber((double)created));
    PUT(root, "model", cJSON_CreateString(c->model_name));
    *okp &= ok && root;
    return root;
}

static void add_usage(int *okp, cJSON *root, const struct roe_api_request *r, int completion_tokens) {
    int ok = 1;
    cJSON *u = PUT(root, "usage", cJSON_CreateObject());
    PUT(u, "prompt_tokens", cJSON_CreateNumber(r->params.n_prompt));
    PUT(u, "completion_tokens", cJSON_CreateNumber(completion_tokens));
    PUT(u, "total_tokens", cJSON_CreateNumber(r->params.n_prompt + completion_tokens));
    *okp &= ok;
}

/* The text of token bytes, as valid UTF-8 (a JSON string must be). */
static cJSON *text_of(const char *b, size_t n) {
    struct roe_strbuf t = {0};
    roe_utf8_sanitize(b, n, 1, &t);
    roe_strbuf_append(&t, "", 0);
    cJSON *s = t.oom ? NULL : cJSON_CreateString(t.p ? t.p : "");
    roe_strbuf_free(&t);
    return s;
}

/* A token's text for log-probabilities: its bytes as valid UTF-8 (a piece of a character is
 * U+FFFD; chat's entries carry the bytes too). */
static cJSON *token_text(const struct roe_api_config *c, int32_t id) {
    const char *b = "";
    size_t n = 0;
    char num[16];
    if (!c->tok || roe_tokenizer_token_bytes(c->tok, id, &b, &n) != ROE_OK) {
        snprintf(num, sizeof num, "%d", id);
        b = num;
        n = strlen(num);
    }
    return text_of(b, n);
}

/* Code points in s (what text_offset counts, as Python's len does). */
static long n_chars(const char *s) {
    long n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* One chat log-probability entry: {"token", "logprob", "bytes"}. */
static cJSON *chat_entry(int *okp, const struct roe_api_config *c, int32_t id, double lp) {
    int ok = 1;
    cJSON *o = cJSON_CreateObject();
    roe_json_put(&ok, o, "token", token_text(c, id));
    roe_json_put(&ok, o, "logprob", cJSON_CreateNumber(lp));
    cJSON *bytes = roe_json_put(&ok, o, "bytes", cJSON_CreateArray());
    const char *b = "";
    size_t n = 0;
    if (c->tok) roe_tokenizer_token_bytes(c->tok, id, &b, &n);
    for (size_t i = 0; i < n && ok; i++) roe_json_put(&ok, bytes, NULL, cJSON_CreateNumber((unsigned char)b[i]));
    *okp &= ok && o;
    return o;
}

/* Completions' {tok: lp} of the top alternatives, and the token itself when not among them
 * (as OpenAI's legacy format has it; a text two ids share is given once). */
static cJSON *top_dict(int *okp, const struct roe_api_config *c, int32_t id, float lp, const int32_t *ti,
                       const float *tl, int top) {
    int ok = 1;
    cJSON *d = cJSON_CreateObject();
    for (int j = 0; j <= top && ok; j++) {
        const int32_t t = j < top ? ti[j] : id;
        if (j == top && top == 0) break;
        cJSON *k = token_text(c, t);
        if (k && !cJSON_GetObjectItemCaseSensitive(d, k->valuestring))
            roe_json_put(&ok, d, k->valuestring, cJSON_CreateNumber(j < top ? tl[j] : lp));
        cJSON_Delete(k);
    }
    *okp &= ok && d;
    return d;
}

/* Appends tokens ids[0, n) with their log-probabilities to a logprobs object (null_first: the
 * first has none, a prompt's first token). */
static void add_logprobs(int *okp, const struct roe_api_config *c, roe_api_kind kind, cJSON *lp,
                         const struct roe_api_logprobs *x, long *offset) {
    int ok = 1;
    for (int i = 0; i < x->n && ok; i++) {
        const int none = i == 0 && x->null_first;
        const int32_t *ti = x->top_id + (size_t)i * x->top;
        const float *tl = x->top_lp + (size_t)i * x->top;
        if (kind == ROE_API_CHAT) {
            cJSON *e = roe_json_put(&ok, cJSON_GetObjectItem(lp, "content"), NULL, chat_entry(&ok, c, x->ids[i], x->lp[i]));
            cJSON *alts = roe_json_put(&ok, e, "top_logprobs", cJSON_CreateArray());
            for (int j = 0; j < x->top && ok; j++) roe_json_put(&ok, alts, NULL, chat_entry(&ok, c, ti[j], tl[j]));
            continue;
        }
        cJSON *t = roe_json_put(&ok, cJSON_GetObjectItem(lp, "tokens"), NULL, token_text(c, x->ids[i]));
        roe_json_put(&ok, cJSON_GetObjectItem(lp, "token_logprobs"), NULL,
                     none ? cJSON_CreateNull() : cJSON_CreateNumber(x->lp[i]));
        roe_json_put(&ok, cJSON_GetObjectItem(lp, "top_logprobs"), NULL,
                     none ? cJSON_CreateNull() : top_dict(&ok, c, x->ids[i], x->lp[i], ti, tl, x->top));
        roe_json_put(&ok, cJSON_GetObjectItem(lp, "text_offset"), NULL, cJSON_CreateNumber((double)*offset));
        if (t) *offset += n_chars(t->valuestring);
    }
    *okp &= ok;
}

/* The choice's "logprobs": null unless asked; the prompt's part (echo) first. */
static cJSON *logprobs_json(int *okp, const struct roe_api_config *c, const struct roe_api_request *r,
                            const struct roe_api_choice *ch) {
    if (!r->params.logprobs) return cJSON_CreateNull();
    int ok = 1;
    cJSON *lp = cJSON_CreateObject();
    if (r->kind == ROE_API_CHAT)
        roe_json_put(&ok, lp, "content", cJSON_CreateArray());
    else {
        static const char *const keys[] = {"tokens", "token_logprobs", "top_logprobs", "text_offset"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) roe_json_put(&ok, lp, keys[i], cJSON_CreateArray());
    }
    long local = 0, *offset = ch->text_offset ? ch->text_offset : &local;
    if (ch->prompt.n) add_logprobs(&ok, c, r->kind, lp, &ch->prompt, offset);
    add_logprobs(&ok, c, r->kind, lp, &ch->gen, offset);
    *okp &= ok && lp;
    return lp;
}

char *roe_api_response_json(const struct roe_api_config *c, const struct roe_api_request *r,
                            const char *id, long created, const struct roe_api_choice *choices, int n,
                            int completion_tokens) {
    const int chat = r->kind == ROE_API_CHAT;
    int ok = 1;
    cJSON *root = head(&ok, c, id, created, chat ? "chat.completion" : "text_completion");
    cJSON *arr = PUT(root, "choices", cJSON_CreateArray());
    for (int i = 0; i < n && ok; i++) {
        const struct roe_api_choice *ch = &choices[i];
        cJSON *choice = PUT(arr, NULL, cJSON_CreateObject());
        PUT(choice, "index", cJSON_CreateNumber(ch->index));
        if (chat) {
            cJSON *m = PUT(choice, "message", cJSON_CreateObject());
            PUT(m, "role", cJSON_CreateString("assistant"));
            PUT(m, "content", cJSON_CreateString(ch->text));
        } else
            PUT(choice, "text", cJSON_CreateString(ch->text));
        PUT(choice, "logprobs", logprobs_json(&ok, c, r, ch));
        PUT(choice, "finish_reason", cJSON_CreateString(ch->finish ? ch->finish : "length"));
        if (r->return_token_ids) PUT(choice, "token_ids", ids_json(&ok, ch->gen.ids, ch->gen.n));
    }
    if (r->return_token_ids) PUT(root, "prompt_token_ids", ids_json(&ok, r->prompt, r->params.n_prompt));
    add_usage(&ok, root, r, completion_tokens);
    return roe_json_render(ok, root);
}

/* One server-sent event "data: s\n\n" (s NULL: out of memory, the stream says so). */
static void put_data(struct roe_strbuf *out, char *s) {
    if (!s) {
        out->oom = 1;
        return;
    }
    roe_strbuf_puts(out, "data: ");
    roe_strbuf_puts(out, s);
    roe_strbuf_puts(out, "\n\n");
    free(s);
}

void roe_api_stream_chunk(struct roe_strbuf *out, const struct roe_api_config *c,
                          const struct roe_api_request *r, const char *id, long created,
                          const struct roe_api_choice *ch) {
    const int chat = r->kind == ROE_API_CHAT;
    int ok = 1;
    cJSON *root = head(&ok, c, id, created, chat ? "chat.completion.chunk" : "text_completion");
    cJSON *choice = PUT(PUT(root, "choices", cJSON_CreateArray()), NULL, cJSON_CreateObject());
    PUT(choice, "index", cJSON_CreateNumber(ch->index));
    if (chat) {
        cJSON *d = PUT(choice, "delta", cJSON_CreateObject());
        if (ch->role) PUT(d, "role", cJSON_CreateString("assistant"));
        if (ch->text) PUT(d, "content", cJSON_CreateString(ch->text));
    } else
        PUT(choice, "text", cJSON_CreateString(ch->text ? ch->text : ""));
    PUT(choice, "logprobs", ch->gen.n || ch->prompt.n ? logprobs_json(&ok, c, r, ch) : cJSON_CreateNull());
    PUT(choice, "finish_reason", ch->finish ? cJSON_CreateString(ch->finish) : cJSON_CreateNull());
    if (r->return_token_ids) PUT(choice, "token_ids", ids_json(&ok, ch->gen.ids, ch->gen.n));
    if (r->return_token_ids && ch->role)
        PUT(root, "prompt_token_ids", ids_json(&ok, r->prompt, r->params.n_prompt));
    put_data(out, roe_json_render(ok, root));
}

void roe_api_stream_usage(struct roe_strbuf *out, const struct roe_api_config *c,
                          const struct roe_api_request *r, const char *id, long created,
                          int completion_tokens) {
    int ok = 1;
    cJSON *root = head(&ok, c, id, created, r->kind == ROE_API_CHAT ? "chat.completion.chunk" : "text_completion");
    PUT(root, "choices", cJSON_CreateArray());
    add_usage(&ok, root, r, completion_tokens);
    put_data(out, roe_json_render(ok, root));
}

#undef PUT

void roe_api_stream_error(struct roe_strbuf *out, const struct roe_api_error *e) {
    put_data(out, roe_api_error_json(e));
}

/* ---- /v1/models, /tokenize, /detokenize ---- */

static cJSON *model_object(int *okp, const struct roe_api_config *c, long created) {
    int ok = 1;
    cJSON *m = cJSON_CreateObject();
    roe_json_put(&ok, m, "id", cJSON_CreateString(c->model_name));
    roe_json_put(&ok, m, "object", cJSON_CreateString("model"));
    roe_json_put(&ok, m, "created", cJSON_CreateNumber((double)created));
    roe_json_put(&ok, m, "owned_by", cJSON_CreateString("roe"));
    roe_json_put(&ok, m, "root", cJSON_CreateString(c->model_name));
    roe_json_put(&ok, m, "max_model_len", cJSON_CreateNumber(c->max_ctx));
    *okp &= ok && m;
    return m;
}

char *roe_api_models_json(const struct roe_api_config *c, long created) {
    int ok = 1;
    cJSON *root = cJSON_CreateObject();
    roe_json_put(&ok, root, "object", cJSON_CreateString("list"));
    roe_json_put(&ok, roe_json_put(&ok, root, "data", cJSON_CreateArray()), NULL,
                 model_object(&ok, c, created));
    return roe_json_render(ok, root);
}

int roe_api_model_json(const struct roe_api_config *c, long created, const char *id, char **out,
                       struct roe_api_error *e) {
    *out = NULL;
    if (strcmp(id, c->model_name) != 0) {
        roe_api_fail(e, ROE_ERR_NOT_FOUND, "model",
                     "the model \"%.200s\" does not exist: this server serves \"%s\"", id,
                     c->model_name);
        e->code = "model_not_found";
        return -1;
    }
    int ok = 1;
    *out = roe_json_render(ok, model_object(&ok, c, created)); /* NULL: out of memory */
    return 0;
}

/* A special token's text ("<|endoftext|>"), or null. */
static cJSON *special_text(const struct roe_api_config *c, int id) {
    const char *b;
    size_t n;
    if (id < 0 || !c->tok || roe_tokenizer_token_bytes(c->tok, id, &b, &n) != ROE_OK) return cJSON_CreateNull();
    return text_of(b, n);
}

char *roe_api_tokenizer_info_json(const struct roe_api_config *c) {
    int ok = 1;
    cJSON *root = cJSON_CreateObject();
    roe_json_put(&ok, root, "tokenizer_class", cJSON_CreateString(c->tok ? "byte-level BPE" : "none"));
    roe_json_put(&ok, root, "eos_token", special_text(c, c->cfg->eos_token_id));
    roe_json_put(&ok, root, "bos_token", special_text(c, c->cfg->bos_token_id));
    roe_json_put(&ok, root, "pad_token", cJSON_CreateNull());
    roe_json_put(&ok, root, "model_max_length", cJSON_CreateNumber(c->max_ctx));
    roe_json_put(&ok, root, "vocab_size", cJSON_CreateNumber(c->cfg->vocab_size));
    return roe_json_render(ok, root);
}

int roe_api_parse_tokenize(const struct roe_api_config *c, const char *body, size_t len,
                           struct roe_api_tokenize *out, struct roe_api_error *e) {
    memset(out, 0, sizeof *out);
    cJSON *o = parse_object(body, len, e);
    if (!o) return -1;
    struct roe_api_request q = {.kind = ROE_API_COMPLETIONS};
    int rc = -1, add_special = 1, gen_prompt = 1;
    if (check_model(c, o, e) < 0 || get_bool(o, "add_special_tokens", &add_special, e) < 0 ||
        get_bool(o, "return_token_strs", &out->return_strs, e) < 0 ||
        get_bool(o, "add_generation_prompt", &gen_prompt, e) < 0)
        goto done;
    if (!gen_prompt) {
        roe_api_fail(e, ROE_ERR_INVALID_ARG, "add_generation_prompt",
                     "'add_generation_prompt': false is not implemented: roe's chat rendering "
                     "always ends with the assistant's turn");
        goto done;
    }
    const int chat = field(o, "messages") != NULL;
    if (chat && field(o, "prompt")) {
        roe_api_fail(e, ROE_ERR_INVALID_ARG, "messages", "give either 'prompt' or 'messages', not both");
        goto done;
    }
    if ((chat ? parse_messages(c, o, &q, e) : parse_prompt(c, o, &q, e)) < 0) goto done;
    out->ids = q.prompt;
    out->n = q.params.n_prompt;
    q.prompt = NULL;
    rc = 0;
done:
    roe_api_request_free(&q);
    cJSON_Delete(o);
    return rc;
}

void roe_api_tokenize_free(struct roe_api_tokenize *t) {
    roe_free(t->ids);
    t->ids = NULL;
}

char *roe_api_tokenize_json(const struct roe_api_config *c, const struct roe_api_tokenize *t) {
    int ok = 1;
    cJSON *root = cJSON_CreateObject();
    roe_json_put(&ok, root, "count", cJSON_CreateNumber(t->n));
    roe_json_put(&ok, root, "max_model_len", cJSON_CreateNumber(c->max_ctx));
    roe_json_put(&ok, root, "tokens", ids_json(&ok, t->ids, t->n));
    if (t->return_strs) {
        cJSON *a = roe_json_put(&ok, root, "token_strs", cJSON_CreateArray());
        for (int i = 0; i < t->n && ok; i++) {
            const char *b = "";
            size_t n = 0;
            if (c->tok) roe_tokenizer_token_bytes(c->tok, t->ids[i], &b, &n);
            roe_json_put(&ok, a, NULL, text_of(b, n));
        }
    }
    return roe_json_render(ok, root);
}

int roe_api_detokenize(const struct roe_api_config *c, const char *body, size_t len, char **out,
                       struct roe_api_error *e) {
    *out = NULL;
    cJSON *o = parse_object(body, len, e);
    if (!o) return -1;
    int rc = -1;
    int32_t *ids = NULL;
    const cJSON *t = field(o, "tokens");
    if (check_model(c, o, e) < 0) goto done;
    if (!c->tok) {
        roe_api_fail(e, ROE_ERR_INVALID_ARG, "tokens", "this model has no tokenizer.json: nothing to detokenize with");
        goto done;
    }
    if (!t || !cJSON_IsArray(t)) {
        roe_api_fail(e, ROE_ERR_INVALID_ARG, "tokens", "'tokens' must be an array of token ids%s",
                     t ? "" : " (it is required)");
        goto done;
    }
    const int n = cJSON_GetArraySize(t);
    ids = roe_malloc((size_t)(n ? n : 1) * sizeof *ids);
    if (!ids) {
        roe_api_fail(e, ROE_ERR_NOMEM, "tokens", "out of memory for %d tokens", n);
        goto done;
    }
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, t) {
        const double x = cJSON_IsNumber(it) ? it->valuedouble : -1;
        if (x != floor(x) || x < 0 || x >= roe_tokenizer_vocab_size(c->tok)) {
            roe_api_fail(e, ROE_ERR_INVALID_ARG, "tokens", "'tokens'[%d] is not a token id in [0, %d)", i,
                         roe_tokenizer_vocab_size(c->tok));
            goto done;
        }
        ids[i++] = (int32_t)x;
    }
    char *text = NULL;
    size_t tl = 0;
    if (roe_tokenizer_decode(c->tok, ids, (size_t)n, 0, &text, &tl) != ROE_OK) {
        roe_api_fail(e, ROE_ERR_NOMEM, "tokens", "%s", roe_error_message());
        goto done;
    }
    int ok = 1;
    cJSON *root = cJSON_CreateObject();
    roe_json_put(&ok, root, "prompt", text_of(text, tl));
    roe_free(text);
    *out = roe_json_render(ok, root); /* NULL: out of memory (the caller answers 500) */
    rc = 0;
done:
    roe_free(ids);
    cJSON_Delete(o);
    return rc;
}
