/* roster.c — RoE profiles: defaults, validation, JSON in and out; see roster.h. */
#include "roster.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/fileio.h"
#include "base/json.h"

const char *roe_gate_mode_name(roe_gate_mode g) { return g == ROE_GATE_NOISY ? "noisy" : "clean"; }

void roe_roster_plain(struct roe_roster *r) {
    memset(r, 0, sizeof *r);
    r->k = 1;
}

int roe_roster_is_noisy(const struct roe_roster *r, int n_layers) {
    if (!r || r->k <= 1) return 0;
    for (int l = 0; l < n_layers; l++)
        if (r->tau[l] > 0.0f) return 1;
    return 0;
}

roe_status roe_roster_validate(const struct roe_roster *r, const struct roe_model_config *cfg) {
    if (r->k < 1 || r->k > ROE_MAX_SAMPLES)
        return roe_fail(ROE_ERR_INVALID_ARG, "RoE K = %d is outside [1, %d]", r->k, ROE_MAX_SAMPLES);
    if (r->k > 1 && roe_config_n_moe_layers(cfg) == 0) /* docs/MODELS.md "roe's engine for MoR" */
        return roe_fail(ROE_ERR_INVALID_ARG, "RoE K = %d: %s has no MoE layer, so RoE has no router to add noise to "
                        "(MoR's depth router is not one: RoE does not apply; run with K = 1)", r->k, cfg->model_type);
    for (int l = 0; l < cfg->n_layers; l++) {
        if (!(r->tau[l] >= 0.0f && r->tau[l] <= 10.0f))
            return roe_fail(ROE_ERR_INVALID_ARG, "RoE tau of layer %d = %g is outside [0, 10]", l, r->tau[l]);
        if (r->tau[l] > 0.0f && !cfg->layer_is_moe[l])
            return roe_fail(ROE_ERR_INVALID_ARG, "RoE tau of layer %d = %g, but layer %d has no router",
                            l, r->tau[l], l);
    }
    if (r->gate != ROE_GATE_CLEAN && r->gate != ROE_GATE_NOISY)
        return roe_fail(ROE_ERR_INVALID_ARG, "RoE gate mode %d is not clean or noisy", (int)r->gate);
    if (!(r->adaptive_entropy >= 0.0f && r->adaptive_entropy < 1e6f))
        return roe_fail(ROE_ERR_INVALID_ARG, "RoE adaptive entropy threshold %g must be >= 0",
                        r->adaptive_entropy);
    return ROE_OK;
}

roe_status roe_roster_uniform(struct roe_roster *r, const struct roe_model_config *cfg, int k,
                              float tau, int keep_clean, roe_gate_mode gate) {
    roe_roster_plain(r);
    r->k = k;
    r->keep_clean = keep_clean;
    r->gate = gate;
    if (keep_clean < 0)
        return roe_fail(ROE_ERR_INVALID_ARG, "--roe-keep-clean %d must be >= 0", keep_clean);
    const int n_moe = roe_config_n_moe_layers(cfg);
    for (int l = 0, m = 0; l < cfg->n_layers; l++) {
        if (!cfg->layer_is_moe[l]) continue;
        r->tau[l] = (m >= keep_clean && m < n_moe - keep_clean) ? tau : 0.0f;
        m++;
    }
    return roe_roster_validate(r, cfg);
}

roe_status roe_roster_parse(const char *json, const char *origin, const struct roe_model_config *cfg,
                            struct roe_roster *r) {
    roe_roster_plain(r);
    roe_status st = ROE_OK;
    int oom = 0;
    cJSON *root = roe_json_parse(json, strlen(json), NULL, &oom);
    if (!cJSON_IsObject(root)) {
        st = oom ? roe_fail(ROE_ERR_NOMEM, "%s: out of memory parsing it", origin)
                 : roe_fail(ROE_ERR_FORMAT, "%s: not a JSON object", origin);
        goto out;
    }
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(root, "k");
    if (k && !(cJSON_IsNumber(k) && fabs(k->valuedouble) < 1e9 && k->valuedouble == floor(k->valuedouble))) {
        st = roe_fail(ROE_ERR_FORMAT, "%s: 'k' must be an integer", origin);
        goto out;
    }
    const int kk = k ? (int)k->valuedouble : 1;
    int keep = 0;
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(root, "keep_clean");
    if (l) {
        if (!cJSON_IsNumber(l) || !(l->valuedouble >= 0 && l->valuedouble < 1e9)) {
            st = roe_fail(ROE_ERR_FORMAT, "%s: 'keep_clean' must be a non-negative integer", origin);
            goto out;
        }
        keep = (int)l->valuedouble;
    }
    roe_gate_mode gate = ROE_GATE_CLEAN;
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(root, "gate");
    if (g) {
        if (cJSON_IsString(g) && strcmp(g->valuestring, "clean") == 0) gate = ROE_GATE_CLEAN;
        else if (cJSON_IsString(g) && strcmp(g->valuestring, "noisy") == 0) gate = ROE_GATE_NOISY;
        else {
            st = roe_fail(ROE_ERR_FORMAT, "%s: 'gate' must be \"clean\" or \"noisy\"", origin);
            goto out;
        }
    }
    const cJSON *tau = cJSON_GetObjectItemCaseSensitive(root, "tau");
    if (cJSON_IsNumber(tau)) {
        st = roe_roster_uniform(r, cfg, kk, (float)tau->valuedouble, keep, gate);
        if (st != ROE_OK) roe_fail_context(st, "%s", origin);
    } else if (cJSON_IsArray(tau)) {
        if (cJSON_GetArraySize(tau) != cfg->n_layers) {
            st = roe_fail(ROE_ERR_FORMAT, "%s: 'tau' has %d entries, the model has %d layers", origin,
                          cJSON_GetArraySize(tau), cfg->n_layers);
            goto out;
        }
        r->k = kk;
        r->keep_clean = keep;
        r->gate = gate;
        int i = 0;
        const cJSON *t;
        cJSON_ArrayForEach(t, tau) {
            if (!cJSON_IsNumber(t)) {
                st = roe_fail(ROE_ERR_FORMAT, "%s: tau[%d] is not a number", origin, i);
                goto out;
            }
            r->tau[i++] = (float)t->valuedouble;
        }
    } else if (tau) {
        st = roe_fail(ROE_ERR_FORMAT, "%s: 'tau' must be a number or an array of one per layer", origin);
        goto out;
    } else r->k = kk;
    if (st != ROE_OK) goto out;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "adaptive_entropy");
    if (a) {
        if (!cJSON_IsNumber(a)) {
            st = roe_fail(ROE_ERR_FORMAT, "%s: 'adaptive_entropy' must be a number", origin);
            goto out;
        }
        r->adaptive_entropy = (float)a->valuedouble;
    }
    st = roe_roster_validate(r, cfg);
    if (st != ROE_OK) roe_fail_context(st, "%s", origin);
out:
    cJSON_Delete(root);
    return st;
}

roe_status roe_roster_load(const char *path, const struct roe_model_config *cfg, struct roe_roster *r) {
    char *text = NULL;
    size_t len = 0;
    ROE_TRY(roe_file_read_all(path, 1 << 20, &text, &len));
    roe_status st = roe_roster_parse(text, path, cfg, r);
    roe_free(text);
    return st;
}

roe_status roe_roster_to_json(const struct roe_roster *r, const struct roe_model_config *cfg, char **out) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model_type", cfg->model_type);
    cJSON_AddNumberToObject(root, "k", r->k);
    cJSON_AddNumberToObject(root, "keep_clean", r->keep_clean);
    cJSON_AddStringToObject(root, "gate", roe_gate_mode_name(r->gate));
    cJSON_AddNumberToObject(root, "adaptive_entropy", r->adaptive_entropy);
    cJSON *tau = cJSON_AddArrayToObject(root, "tau");
    for (int l = 0; l < cfg->n_layers; l++) {
        char buf[32];
        snprintf(buf, sizeof buf, "%.4g", r->tau[l]);
        cJSON_AddItemToArray(tau, cJSON_CreateRaw(buf));
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return roe_fail(ROE_ERR_NOMEM, "writing a RoE profile: out of memory");
    *out = roe_strdup(text);
    cJSON_free(text);
    return *out ? ROE_OK : roe_fail(ROE_ERR_NOMEM, "writing a RoE profile: out of memory");
}
