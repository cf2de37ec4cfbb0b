/*
 * stop.h — stop strings: text that ends a generation where it appears, matched across token
 * boundaries, and how much of the text so far may still turn out to be the start of one.
 *
 * The text is the bytes of the generated tokens, special tokens left out (what a client is
 * shown). Each string is matched with its Knuth-Morris-Pratt automaton, fed byte by byte, so a
 * match that spans any number of tokens is found at the token that completes it, in O(1) state
 * per string and no copy of the text. The state also says how many bytes at the end of the text
 * are a prefix of some stop string (the longest partial match): a stream holds those back, so
 * the stop text never reaches the client, and sends them once the match fails.
 *
 * OpenAI's rule: the returned text ends where the first stop string to appear begins (the
 * stop string itself excluded); finish_reason "stop".
 */
#ifndef ROE_STOP_H
#define ROE_STOP_H

#include <stddef.h>

#include "base/status.h"

enum { ROE_STOP_MAX_STRINGS = 4, ROE_STOP_MAX_BYTES = 256 };

struct roe_stop_text {
    int n;
    int len[ROE_STOP_MAX_STRINGS];
    char s[ROE_STOP_MAX_STRINGS][ROE_STOP_MAX_BYTES];
    short fail[ROE_STOP_MAX_STRINGS][ROE_STOP_MAX_BYTES]; /* KMP failure function */
};

/* Where matching is: per string, the length of the longest text suffix that is its prefix. */
struct roe_stop_state {
    short k[ROE_STOP_MAX_STRINGS];
    long bytes; /* text bytes fed so far */
};

/* n strings (each 1 to ROE_STOP_MAX_BYTES bytes; n <= ROE_STOP_MAX_STRINGS). */
roe_status roe_stop_text_init(struct roe_stop_text *t, const char *const *s, const size_t *len, int n);

/* Feeds n more bytes of text. Returns the text offset at which the first completed stop string
 * begins (it may begin in earlier bytes), or -1 when none completed. */
long roe_stop_feed(const struct roe_stop_text *t, struct roe_stop_state *st, const char *b, size_t n);

/* Bytes at the end of the text fed so far that are a prefix of some stop string. */
int roe_stop_hold(const struct roe_stop_text *t, const struct roe_stop_state *st);

#endif
