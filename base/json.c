/* json.c — see json.h. */
#include "json.h"

#include "alloc.h"

cJSON *roe_json_parse(const char *text, size_t len, const char **end, int *oom) {
    const uint64_t failed = roe_alloc_null_count();
    const char *stop = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &stop, 0);
    if (end) *end = stop;
    if (oom) *oom = !j && roe_alloc_null_count() != failed;
    return j;
}

cJSON *roe_json_put(int *ok, cJSON *parent, const char *key, cJSON *item) {
    if (item && parent && (key ? cJSON_AddItemToObject(parent, key, item) : cJSON_AddItemToArray(parent, item)))
        return item;
    cJSON_Delete(item);
    *ok = 0;
    return NULL;
}

char *roe_json_render(int ok, cJSON *root) {
    char *s = ok && root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return s;
}
