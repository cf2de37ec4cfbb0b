/* json.c — see json.h. */
#include "json.h"

#include "alloc.h"

/* cJSON (config.json, tokenizer.json, rosters, placements, HTTP bodies) allocates through
 * roe_malloc too, from before main() in every program that links this file (all of roe's:
 * the loaders parse through roe_json_parse): its allocations are counted and are injection
 * points like the runtime's own. roe_free is free(), so memory cJSON hands out may still be
 * released with free() (libmicrohttpd does, for response bodies). Here rather than in
 * alloc.c, so that the allocator needs no cJSON (tools/gpu_check.sh's ops-only build). */
__attribute__((constructor)) static void roe__route_cjson(void) {
    cJSON_Hooks h = {.malloc_fn = roe_malloc, .free_fn = roe_free};
    cJSON_InitHooks(&h);
}

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
