/* placement.c — expert placement: contiguous default, files, validation; see placement.h. */
#include "placement.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/fileio.h"
#include "base/json.h"

void roe_placement_free(struct roe_placement *p) {
    if (!p) return;
    roe_free(p->owner);
    roe_free(p->local);
    roe_free(p->n_local);
    roe_free(p->base);
    roe_free(p->maps);
    roe_free(p);
}

static roe_status alloc_placement(const struct roe_model_config *cfg, int n_ranks, const char *source,
                                  struct roe_placement **out) {
    *out = NULL;
    if (n_ranks <= 0)
        return roe_fail(ROE_ERR_INVALID_ARG, "placement: %d ranks must be > 0", n_ranks);
    if (cfg->n_experts <= 0)
        return roe_fail(ROE_ERR_INVALID_ARG, "placement: model has no experts");
    struct roe_placement *p = roe_calloc(1, sizeof *p);
    if (!p) return roe_fail(ROE_ERR_NOMEM, "placement: out of memory");
    p->n_ranks = n_ranks;
    p->n_layers = cfg->n_layers;
    p->n_experts = cfg->n_experts;
    snprintf(p->source, sizeof p->source, "%s", source);
    const size_t LE = (size_t)cfg->n_layers * cfg->n_experts, L = (size_t)cfg->n_layers;
    p->owner = roe_malloc(LE * sizeof *p->owner);
    p->local = roe_malloc(LE * sizeof *p->local);
    p->n_local = roe_malloc(L * n_ranks * sizeof *p->n_local);
    p->base = roe_malloc(L * (n_ranks + 1) * sizeof *p->base);
    p->maps = roe_calloc(L, sizeof *p->maps);
    if (!p->owner || !p->local || !p->n_local || !p->base || !p->maps) {
        roe_placement_free(p);
        return roe_fail(ROE_ERR_NOMEM, "placement: out of memory for %d layers x %d experts",
                        cfg->n_layers, cfg->n_experts);
    }
    for (size_t i = 0; i < LE; i++) p->owner[i] = -1;
    *out = p;
    return ROE_OK;
}

/* Builds the per-layer layout maps once every MoE layer's owners are set. */
static roe_status finish(struct roe_placement *p, const struct roe_model_config *cfg) {
    const int E = p->n_experts, N = p->n_ranks;
    for (int l = 0; l < p->n_layers; l++) {
        if (!cfg->layer_is_moe[l]) continue;
        roe_status st = roe_layout_map_build(N, E, p->owner + (size_t)l * E, p->local + (size_t)l * E,
                                             p->n_local + (size_t)l * N, p->base + (size_t)l * (N + 1),
                                             &p->maps[l]);
        if (st != ROE_OK) return roe_fail_context(st, "%s, layer %d", p->source, l);
    }
    return ROE_OK;
}

roe_status roe_placement_contiguous(const struct roe_model_config *cfg, int n_ranks,
                                    struct roe_placement **out) {
    ROE_TRY(alloc_placement(cfg, n_ranks, "contiguous", out));
    struct roe_placement *p = *out;
    const int E = cfg->n_experts, q = E / n_ranks, extra = E % n_ranks;
    for (int l = 0; l < cfg->n_layers; l++) {
        if (!cfg->layer_is_moe[l]) continue;
        for (int r = 0, e = 0; r < n_ranks; r++)
            for (int i = 0; i < q + (r < extra); i++) p->owner[(size_t)l * E + e++] = r;
    }
    roe_status st = finish(p, cfg);
    if (st != ROE_OK) {
        roe_placement_free(p);
        *out = NULL;
    }
    return st;
}

/* Parses one [[experts of rank 0], [experts of rank 1], ...] array into layer l's owners. */
static roe_status parse_map(const cJSON *a, const char *origin, const char *where, int n_ranks,
                            int E, int *owner) {
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n_ranks)
        return roe_fail(ROE_ERR_FORMAT, "%s: %s must be an array of %d expert lists (one per rank)",
                        origin, where, n_ranks);
    for (int e = 0; e < E; e++) owner[e] = -1;
    int r = 0;
    const cJSON *list;
    cJSON_ArrayForEach(list, a) {
        if (!cJSON_IsArray(list))
            return roe_fail(ROE_ERR_FORMAT, "%s: %s[%d] must be a list of expert ids", origin, where, r);
        const cJSON *v;
        cJSON_ArrayForEach(v, list) {
            if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < E) || /* range before the cast */
                v->valuedouble != (double)(int)v->valuedouble)
                return roe_fail(ROE_ERR_FORMAT, "%s: %s[%d]: expert id %g is not an integer in [0, %d)",
                                origin, where, r, cJSON_IsNumber(v) ? v->valuedouble : -1.0, E);
            const int e = (int)v->valuedouble;
            if (owner[e] >= 0)
                return roe_fail(ROE_ERR_FORMAT, "%s: %s: expert %d is placed on both rank %d and rank %d",
                                origin, where, e, owner[e], r);
            owner[e] = r;
        }
        r++;
    }
    for (int e = 0; e < E; e++)
        if (owner[e] < 0)
            return roe_fail(ROE_ERR_FORMAT, "%s: %s: expert %d is placed on no rank", origin, where, e);
    return ROE_OK;
}

roe_status roe_placement_parse(const char *json, const char *origin, const struct roe_model_config *cfg,
                               int n_ranks, struct roe_placement **out) {
    *out = NULL;
    roe_status st = ROE_OK;
    struct roe_placement *p = NULL;
    int oom = 0;
    cJSON *root = roe_json_parse(json, strlen(json), NULL, &oom);
    if (!cJSON_IsObject(root)) {
        st = oom ? roe_fail(ROE_ERR_NOMEM, "%s: out of memory parsing the placement", origin)
                 : roe_fail(ROE_ERR_FORMAT, "%s: placement is not a JSON object", origin);
        goto fail;
    }
    const cJSON *ranks = cJSON_GetObjectItemCaseSensitive(root, "ranks");
    if (!cJSON_IsNumber(ranks) || !(fabs(ranks->valuedouble) < 1e9) || /* range before the cast */
        ranks->valuedouble != (double)(int)ranks->valuedouble) {
        st = roe_fail(ROE_ERR_FORMAT, "%s: 'ranks' must be an integer", origin);
        goto fail;
    }
    if ((int)ranks->valuedouble != n_ranks) {
        st = roe_fail(ROE_ERR_INVALID_ARG, "%s: placement is for %d ranks, but the job has %d", origin,
                      (int)ranks->valuedouble, n_ranks);
        goto fail;
    }
    const cJSON *experts = cJSON_GetObjectItemCaseSensitive(root, "experts");
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers");
    if (!experts && !layers) {
        st = roe_fail(ROE_ERR_FORMAT, "%s: placement needs 'experts' (every layer) or 'layers'", origin);
        goto fail;
    }
    if (layers && !cJSON_IsObject(layers)) {
        st = roe_fail(ROE_ERR_FORMAT, "%s: 'layers' must be an object {\"layer index\": [[...], ...]}", origin);
        goto fail;
    }
    ROE_CHECK(alloc_placement(cfg, n_ranks, origin, &p));
    const int E = cfg->n_experts;
    for (int l = 0; l < cfg->n_layers; l++) {
        if (!cfg->layer_is_moe[l]) continue;
        char key[16], where[48];
        snprintf(key, sizeof key, "%d", l);
        const cJSON *m = layers ? cJSON_GetObjectItemCaseSensitive(layers, key) : NULL;
        if (m) snprintf(where, sizeof where, "layers[\"%d\"]", l);
        else snprintf(where, sizeof where, "experts (layer %d)", l);
        if (!m) m = experts;
        if (!m) {
            st = roe_fail(ROE_ERR_FORMAT, "%s: MoE layer %d has no map: add it to 'layers' or give 'experts'",
                          origin, l);
            goto fail;
        }
        ROE_CHECK(parse_map(m, origin, where, n_ranks, E, p->owner + (size_t)l * E));
    }
    if (layers) {
        const cJSON *it;
        cJSON_ArrayForEach(it, layers) {
            char *end = NULL;
            long l = strtol(it->string, &end, 10);
            if (!*it->string || *end || l < 0 || l >= cfg->n_layers || !cfg->layer_is_moe[l]) {
                st = roe_fail(ROE_ERR_FORMAT, "%s: layers[\"%s\"] is not a MoE layer of this model (%d layers)",
                              origin, it->string, cfg->n_layers);
                goto fail;
            }
        }
    }
    ROE_CHECK(finish(p, cfg));
    cJSON_Delete(root);
    *out = p;
    return ROE_OK;
fail:
    cJSON_Delete(root);
    roe_placement_free(p);
    return st;
}

roe_status roe_placement_load(const char *path, const struct roe_model_config *cfg, int n_ranks,
                              struct roe_placement **out) {
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    ROE_TRY(roe_file_read_all(path, 64 << 20, &text, &len));
    roe_status st = roe_placement_parse(text, path, cfg, n_ranks, out);
    roe_free(text);
    return st;
}

roe_status roe_placement_from_owner(const struct roe_model_config *cfg, int n_ranks,
                                    const int *owner, size_t n_owner, const char *source,
                                    struct roe_placement **out) {
    const size_t LE = (size_t)cfg->n_layers * cfg->n_experts;
    *out = NULL;
    if (n_owner != LE)
        return roe_fail(ROE_ERR_FORMAT, "placement from %s: %zu owners, expected %d layers x %d experts",
                        source, n_owner, cfg->n_layers, cfg->n_experts);
    ROE_TRY(alloc_placement(cfg, n_ranks, source, out));
    struct roe_placement *p = *out;
    for (int l = 0; l < cfg->n_layers; l++)
        for (int e = 0; e < cfg->n_experts; e++) {
            const int o = owner[(size_t)l * cfg->n_experts + e];
            p->owner[(size_t)l * cfg->n_experts + e] = cfg->layer_is_moe[l] ? o : -1;
        }
    roe_status st = finish(p, cfg);
    if (st != ROE_OK) {
        roe_placement_free(p);
        *out = NULL;
    }
    return st;
}

void roe_placement_describe(const struct roe_placement *p, int layer, int rank, char *buf, size_t cap) {
    size_t o = 0;
    int first = 1;
    buf[0] = '\0';
    const int *own = p->owner + (size_t)layer * p->n_experts;
    for (int e = 0; e < p->n_experts && o + 24 < cap; e++) {
        if (own[e] != rank) continue;
        int f = e;
        while (e + 1 < p->n_experts && own[e + 1] == rank) e++;
        if (f == e) o += (size_t)snprintf(buf + o, cap - o, "%s%d", first ? "" : ", ", f);
        else o += (size_t)snprintf(buf + o, cap - o, "%s%d-%d", first ? "" : ", ", f, e);
        first = 0;
    }
    if (first) snprintf(buf, cap, "none");
}

long roe_placement_count(const struct roe_placement *p, int rank) {
    long n = 0;
    for (size_t i = 0; i < (size_t)p->n_layers * p->n_experts; i++) n += p->owner[i] == rank;
    return n;
}

int roe_placement_uniform(const struct roe_placement *p, const struct roe_model_config *cfg) {
    int first = -1;
    for (int l = 0; l < p->n_layers; l++) {
        if (!cfg->layer_is_moe[l]) continue;
        if (first < 0) first = l;
        else if (memcmp(p->owner + (size_t)l * p->n_experts, p->owner + (size_t)first * p->n_experts,
                        (size_t)p->n_experts * sizeof *p->owner) != 0)
            return 0;
    }
    return 1;
}
