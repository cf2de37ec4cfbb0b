/*
 * json_strict.h — what cJSON lets through and a request body must not have.
 *
 * cJSON parses a prefix of its input (the rest is never looked at), keeps every duplicate key
 * (cJSON_GetObjectItem finds the first), accepts raw control characters inside strings, and
 * turns the escape \u0000 into a NUL byte that ends its C string (the rest of the string is
 * silently lost). A request body is checked for each of these before any field is read, so
 * that nothing the client sent is dropped or reinterpreted without a word:
 *   trailing     anything but whitespace after the top-level value
 *   duplicate    a key twice in one object (at any depth), compared after unescaping
 *   nul          \u0000 inside a string (roe refuses NUL rather than truncate the text)
 *   control      a raw byte below 0x20 inside a string (JSON requires it escaped)
 * Each problem names the top-level field it is in (the request parameter a client can fix)
 * and, for nested ones, the path (messages[1].content).
 */
#ifndef ROE_SERVER_JSON_STRICT_H
#define ROE_SERVER_JSON_STRICT_H

#include <stddef.h>

#include "base/json.h"

typedef enum roe_json_problem_kind {
    ROE_JSON_OK = 0,
    ROE_JSON_TRAILING,
    ROE_JSON_DUPLICATE,
    ROE_JSON_NUL,
    ROE_JSON_CONTROL,
    ROE_JSON_NOMEM,
} roe_json_problem_kind;

struct roe_json_problem {
    roe_json_problem_kind kind;
    char param[64]; /* the top-level field it is in ("" for the body itself) */
    char path[160]; /* where: "messages[1].content", or the duplicated key's object */
    char key[64];   /* ROE_JSON_DUPLICATE: the key */
    size_t at;      /* byte offset in the body (TRAILING, NUL, CONTROL) */
};

/* Checks body[0, len), which cJSON parsed into root, ending at byte `end`. Returns 0 when
 * clean, -1 with *p filled otherwise. */
int roe_json_strict_check(const char *body, size_t len, size_t end, const cJSON *root,
                          struct roe_json_problem *p);

#endif
