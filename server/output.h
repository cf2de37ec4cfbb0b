/*
 * output.h — a request's tokens as response text, choice by choice, for the whole response or
 * for a stream: the bytes of the tokens (special tokens left out; without a tokenizer, the ids)
 * turned into valid UTF-8 (utf8.h), cut where a stop string began (the stop text never goes
 * out), and, while the choice runs, holding back the bytes that may still begin one (stop.h).
 * A stream sends, as tokens come, exactly the text the whole response would hold.
 */
#ifndef ROE_SERVER_OUTPUT_H
#define ROE_SERVER_OUTPUT_H

#include <stdint.h>

#include "runtime/scheduler.h"
#include "runtime/tokenizer.h"
#include "strbuf.h"

struct roe_out {
    int sent;              /* tokens taken */
    long bytes;            /* text bytes of those tokens */
    long fed;              /* text bytes turned into text */
    struct roe_strbuf raw; /* bytes [fed, bytes), not yet text */
    long text_offset;      /* completions' logprobs: characters of the tokens listed so far */
    int logged;            /* tokens whose log-probabilities went out */
    int finished;          /* its last chunk is out */
};

/* The bytes of tokens t[from, to), special tokens left out (tok NULL: the ids, spaced). */
void roe_out_token_bytes(const roe_tokenizer *tok, const int32_t *t, int from, int to,
                         struct roe_strbuf *out);

/* Takes choice v's new tokens and appends to text what may go out now: everything once it
 * ended (up to the stop string when one ended it), else all but the held bytes and an
 * incomplete character. */
void roe_out_take(const roe_tokenizer *tok, struct roe_out *o, const struct roe_sreq_choice_view *v,
                  struct roe_strbuf *text);

void roe_out_free(struct roe_out *o);

#endif
