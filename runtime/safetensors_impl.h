/*
 * safetensors_impl.h — what safetensors.c (one file) shares with safetensors_store.c
 * (a model directory): the strict JSON parse, type names for messages, and the name order
 * both use for their sorted tensor tables.
 */
#ifndef ROE_SAFETENSORS_IMPL_H
#define ROE_SAFETENSORS_IMPL_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "safetensors.h"

/* Parses exactly text[0..len) as one JSON value; messages name `path` and `what`. */
roe_status roe__st_json_parse(const char *path, const char *what, const char *text, size_t len,
                              cJSON **out);
/* The JSON type of a value, for messages ("an array"). */
const char *roe__st_json_type(const cJSON *j);

/* qsort order of `const struct roe_tensor *` by name, and the bsearch of a name in it. */
int roe__st_cmp_by_name(const void *a, const void *b);
int roe__st_cmp_key_name(const void *key, const void *elem);

#endif
