/* output.c — tokens to response text, stop strings cut and held; see output.h. */
#include "output.h"

#include "utf8.h"

void roe_out_token_bytes(const roe_tokenizer *tok, const int32_t *t, int from, int to,
                         struct roe_strbuf *out) {
    for (int i = from; i < to; i++) {
        if (!tok) {
            roe_strbuf_printf(out, "%s%d", i ? " " : "", t[i]); /* no tokenizer: the ids */
            continue;
        }
        const char *b;
        size_t n;
        if (roe_tokenizer_is_special(tok, t[i]) || roe_tokenizer_token_bytes(tok, t[i], &b, &n) != ROE_OK)
            continue;
        roe_strbuf_append(out, b, n);
    }
}

void roe_out_take(const roe_tokenizer *tok, struct roe_out *o, const struct roe_sreq_choice_view *v,
                  struct roe_strbuf *text) {
    const size_t before = o->raw.len;
    roe_out_token_bytes(tok, v->tokens, o->sent, v->n_tokens, &o->raw);
    o->bytes += (long)(o->raw.len - before);
    o->sent = v->n_tokens;
    /* the text may go as far as: the stop string's start; everything at the end; else all but
     * what may still begin a stop string */
    long limit = v->ended ? (v->stop_at >= 0 ? v->stop_at : o->bytes) : o->bytes - v->hold;
    if (limit < o->fed) limit = o->fed; /* never: the hold only grows with new bytes */
    size_t n = (size_t)(limit - o->fed);
    if (n > o->raw.len) n = o->raw.len;
    const size_t used = roe_utf8_sanitize(o->raw.p ? o->raw.p : "", n, v->ended, text);
    roe_strbuf_consume(&o->raw, used);
    o->fed += (long)used;
}

void roe_out_free(struct roe_out *o) {
    roe_strbuf_free(&o->raw);
}
