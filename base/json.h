/*
 * json.h — cJSON parsing that tells running out of memory from bad JSON.
 *
 * cJSON returns NULL for both; a loader that reported "not valid JSON" when malloc failed
 * would send the user looking for a syntax error that is not there. cJSON allocates through
 * roe_malloc (runtime/alloc.c), which counts every allocation it could not satisfy: a parse
 * that failed while that count moved ran out of memory.
 */
#ifndef ROE_JSON_H
#define ROE_JSON_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* cJSON_ParseWithLengthOpts(text, len, end, 0); on NULL, *oom says whether an allocation
 * failed meanwhile (then the text may be fine). end and oom may be NULL. */
cJSON *roe_json_parse(const char *text, size_t len, const char **end, int *oom);

/* Building JSON out of memory: cJSON's Add* functions return NULL or false and leave the new
 * item unowned (a leak) and the document silently incomplete. roe_json_put attaches item to
 * parent (under key; appended when key is NULL, parent an array) and returns it; when item or
 * parent is NULL or the attach fails it deletes item, clears *ok and returns NULL.
 * roe_json_render prints root (unformatted) only if ok, and deletes it either way: a document
 * goes out whole or not at all (NULL: out of memory). */
cJSON *roe_json_put(int *ok, cJSON *parent, const char *key, cJSON *item);
char *roe_json_render(int ok, cJSON *root);

#endif
