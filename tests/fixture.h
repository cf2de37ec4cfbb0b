/*
 * fixture.h — reads the transformers reference fixtures (tests/fixtures/README.md):
 * reference.json (prompt ids, greedy ids, logits shape and byte offset) + logits.f32.
 */
#ifndef ROE_TEST_FIXTURE_H
#define ROE_TEST_FIXTURE_H

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/fileio.h"

enum { FIX_MAX_CASES = 8, FIX_MAX_IDS = 256 };

struct fixture_case {
    int n_prompt;
    int32_t prompt[FIX_MAX_IDS];
    int n_greedy;
    int32_t greedy[FIX_MAX_IDS];
    int vocab;
    float max_abs_logit;
    float *logits; /* [n_prompt, vocab], malloc'd */
};

struct fixture {
    char model_dir[512];
    int n_cases;
    struct fixture_case cases[FIX_MAX_CASES];
};

static int fixture__ids(const cJSON *a, int32_t *out, int max) {
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        if (n < max) out[n] = (int32_t)e->valuedouble;
        n++;
    }
    return n < max ? n : max;
}

/* Loads dir/reference.json and dir/logits.f32. Returns 0 on success. */
static int fixture_load(const char *dir, struct fixture *f) {
    memset(f, 0, sizeof *f);
    char path[1024];
    snprintf(path, sizeof path, "%s/reference.json", dir);
    char *text = NULL;
    size_t len = 0;
    if (roe_file_read_all(path, 1 << 24, &text, &len) != ROE_OK) return -1;
    cJSON *root = cJSON_Parse(text);
    roe_free(text);
    if (!root) return -1;
    const cJSON *md = cJSON_GetObjectItem(root, "model_dir");
    snprintf(f->model_dir, sizeof f->model_dir, "%s", cJSON_IsString(md) ? md->valuestring : "");
    const cJSON *unit = cJSON_GetObjectItem(root, "logits_offset_unit");
    const int bytes = cJSON_IsString(unit) && strcmp(unit->valuestring, "bytes") == 0;
    snprintf(path, sizeof path, "%s/logits.f32", dir);
    char *blob = NULL;
    size_t blen = 0;
    if (roe_file_read_all(path, (size_t)1 << 30, &blob, &blen) != ROE_OK) {
        cJSON_Delete(root);
        return -1;
    }
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        if (f->n_cases >= FIX_MAX_CASES) break;
        struct fixture_case *k = &f->cases[f->n_cases++];
        k->n_prompt = fixture__ids(cJSON_GetObjectItem(c, "prompt_ids"), k->prompt, FIX_MAX_IDS);
        k->n_greedy = fixture__ids(cJSON_GetObjectItem(c, "greedy_ids"), k->greedy, FIX_MAX_IDS);
        const cJSON *shape = cJSON_GetObjectItem(c, "logits_shape");
        k->vocab = (int)cJSON_GetArrayItem(shape, 1)->valuedouble;
        k->max_abs_logit = (float)cJSON_GetObjectItem(c, "max_abs_logit")->valuedouble;
        size_t off = (size_t)cJSON_GetObjectItem(c, "logits_offset")->valuedouble;
        if (!bytes) off *= sizeof(float);
        size_t n = (size_t)k->n_prompt * k->vocab * sizeof(float);
        if (off + n > blen) {
            roe_free(blob);
            cJSON_Delete(root);
            return -1;
        }
        k->logits = malloc(n);
        memcpy(k->logits, blob + off, n);
    }
    roe_free(blob);
    cJSON_Delete(root);
    return f->n_cases > 0 ? 0 : -1;
}

static void fixture_free(struct fixture *f) {
    for (int i = 0; i < f->n_cases; i++) free(f->cases[i].logits);
}

#endif
