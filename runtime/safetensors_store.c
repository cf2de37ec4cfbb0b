/*
 * safetensors_store.c — the tensor store of a model directory: a single model.safetensors,
 * or model.safetensors.index.json + the shards its weight_map names; see safetensors.h.
 *
 * A sharded directory is accepted only if the index and the shards agree exactly: every
 * weight_map file is a plain name in the directory (no '/', no '..') and opens as a valid
 * safetensors file (safetensors.c), every listed tensor is in the shard the index names,
 * no tensor is in two shards, and no shard holds a tensor the index omits. Files in the
 * directory that the index does not name are ignored.
 *
 * Lookup is a bsearch over all tensors sorted by name; roe_store_at iterates in a stable
 * order: shard by shard (sorted by file name), each in data-offset order.
 */
#include "safetensors.h"
#include "safetensors_impl.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/fileio.h"

enum {
    ROE_ST_MAX_INDEX = 100000000, /* bytes of model.safetensors.index.json */
    ROE_ST_NAME_MAX = 200,        /* characters of a file-supplied name quoted in a message */
};
#define ROE_ST_INDEX_NAME  "model.safetensors.index.json"
#define ROE_ST_SINGLE_NAME "model.safetensors"


struct roe_store {
    char *dir;
    roe_st_file **files; /* [n_files] owned; sharded: sorted by file name */
    size_t n_files;
    const struct roe_tensor **order;   /* [n]: file by file, each in data-offset order */
    const struct roe_tensor **by_name; /* [n], sorted by name */
    size_t n;
    struct roe_tensor *qt;             /* [n_qt] block-quantized tensors (st__quant_tensors), by name */
    size_t n_qt;
};

static const char *st__errstr(int err, char *buf, size_t n) {
    if (strerror_r(err, buf, n) != 0) snprintf(buf, n, "errno %d", err);
    return buf;
}

static char *st__join(const char *dir, const char *name) {
    size_t dl = strlen(dir), nl = strlen(name);
    int slash = dl > 0 && dir[dl - 1] == '/';
    char *p = roe_malloc(dl + nl + 2);
    if (p) snprintf(p, dl + nl + 2, "%s%s%s", dir, slash ? "" : "/", name);
    return p;
}

/* One weight_map entry: tensor name -> shard file name (both owned by the cJSON tree). */
struct st__entry {
    const char *name;
    const char *file;
};

static int st__cmp_entry(const void *a, const void *b) {
    return strcmp(((const struct st__entry *)a)->name, ((const struct st__entry *)b)->name);
}

static int st__cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A shard must be a file directly in the model directory. */
static int st__plain_name(const char *s) {
    return s[0] != '\0' && !strchr(s, '/') && !strstr(s, "..") && strcmp(s, ".") != 0;
}

/* Builds order/by_name over all files and rejects a tensor present in two files. */
static roe_status st__store_tables(roe_store *s, const char *where) {
    size_t total = 0;
    for (size_t i = 0; i < s->n_files; i++)
        total += roe_st_count(s->files[i]);
    s->order = roe_calloc(total, sizeof *s->order);
    s->by_name = roe_calloc(total, sizeof *s->by_name);
    if (!s->order || !s->by_name)
        return roe_fail(ROE_ERR_NOMEM, "%s: out of memory for %zu tensors", where, total);
    for (size_t i = 0; i < s->n_files; i++)
        for (size_t j = 0; j < roe_st_count(s->files[i]); j++)
            s->order[s->n++] = roe_st_at(s->files[i], j);
    memcpy(s->by_name, s->order, total * sizeof *s->order);
    qsort(s->by_name, total, sizeof *s->by_name, roe__st_cmp_by_name);
    for (size_t i = 1; i < total; i++) {
        const struct roe_tensor *a = s->by_name[i - 1], *b = s->by_name[i];
        if (strcmp(a->file, b->file) > 0) { /* qsort is not stable: name the files in order */
            const struct roe_tensor *t = a;
            a = b;
            b = t;
        }
        if (strcmp(a->name, b->name) == 0)
            return roe_fail(ROE_ERR_FORMAT, "%s: tensor '%.*s' is in both '%s' and '%s'", where,
                            ROE_ST_NAME_MAX, a->name, a->file, b->file);
    }
    return ROE_OK;
}

/* The index's "weight_map" object, or a message saying what the index is instead. */
static roe_status st__weight_map(const char *idx, const cJSON *root, const cJSON **wm) {
    if (!cJSON_IsObject(root))
        return roe_fail(ROE_ERR_FORMAT, "%s: index is a JSON %s, expected an object with \"weight_map\"", idx,
                        roe__st_json_type(root));
    *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!*wm)
        return roe_fail(ROE_ERR_FORMAT, "%s: index has no \"weight_map\" object (tensor name -> shard file name)",
                        idx);
    if (!cJSON_IsObject(*wm))
        return roe_fail(ROE_ERR_FORMAT, "%s: \"weight_map\" is a JSON %s, expected an object", idx,
                        roe__st_json_type(*wm));
    return ROE_OK;
}

/* ents[m] = the weight_map entries sorted by tensor name (each named once), names[m] their
 * shard files in entry order; every shard a plain file name. */
static roe_status st__entries(const char *idx, const cJSON *wm, struct st__entry *ents, const char **names,
                              size_t m) {
    const int nm = ROE_ST_NAME_MAX;
    size_t k = 0;
    for (const cJSON *e = wm->child; e; e = e->next, k++) {
        if (!cJSON_IsString(e))
            return roe_fail(ROE_ERR_FORMAT, "%s: weight_map['%.*s'] is a JSON %s, expected a file name", idx, nm,
                            e->string, roe__st_json_type(e));
        if (!st__plain_name(e->valuestring))
            return roe_fail(ROE_ERR_FORMAT,
                            "%s: weight_map['%.*s'] = '%.*s' is not a plain file name in the model "
                            "directory (no '/', no '..')",
                            idx, nm, e->string, nm, e->valuestring);
        ents[k] = (struct st__entry){e->string, e->valuestring};
        names[k] = e->valuestring;
    }
    qsort(ents, m, sizeof *ents, st__cmp_entry);
    for (size_t i = 1; i < m; i++)
        if (strcmp(ents[i - 1].name, ents[i].name) == 0)
            return roe_fail(ROE_ERR_FORMAT, "%s: weight_map lists tensor '%.*s' twice", idx, nm, ents[i].name);
    return ROE_OK;
}

/* Opens the distinct shards of names[m] (sorted and deduplicated in place: the store's file
 * order, s->files[s->n_files]). */
static roe_status st__open_shards(roe_store *s, const char *idx, const char **names, size_t m) {
    size_t nf = 0;
    qsort(names, m, sizeof *names, st__cmp_str);
    for (size_t i = 0; i < m; i++)
        if (nf == 0 || strcmp(names[nf - 1], names[i]) != 0) names[nf++] = names[i];
    s->files = roe_calloc(nf, sizeof *s->files);
    if (!s->files) return roe_fail(ROE_ERR_NOMEM, "%s: out of memory for %zu shards", idx, nf);
    s->n_files = nf;
    for (size_t i = 0; i < nf; i++) {
        char *p = st__join(s->dir, names[i]);
        roe_status st = p ? roe_st_open(p, &s->files[i])
                          : roe_fail(ROE_ERR_NOMEM, "out of memory joining '%s'", names[i]);
        roe_free(p);
        if (st != ROE_OK)
            return roe_fail_context(st, "%s: shard '%.*s' named in weight_map", idx, ROE_ST_NAME_MAX, names[i]);
    }
    return ROE_OK;
}

/* The index and the shards agree: every listed tensor is in the shard the index names
 * (names[] = the shards, as st__open_shards left them) ... */
static roe_status st__check_listed(const roe_store *s, const char *idx, const struct st__entry *ents, size_t m,
                                   const char **names) {
    const int nm = ROE_ST_NAME_MAX;
    for (size_t i = 0; i < m; i++) {
        const struct roe_tensor *t = roe_store_find(s, ents[i].name);
        const char **fi = bsearch(&ents[i].file, names, s->n_files, sizeof *names, st__cmp_str);
        assert(fi); /* names holds every entry's file */
        if (!t)
            return roe_fail(ROE_ERR_FORMAT, "%s: weight_map puts tensor '%.*s' in '%s', but no shard contains it",
                            idx, nm, ents[i].name, ents[i].file);
        if (roe_st_find(s->files[fi - names], ents[i].name) != t)
            return roe_fail(ROE_ERR_FORMAT, "%s: weight_map puts tensor '%.*s' in '%s', but it is in '%s'", idx,
                            nm, ents[i].name, ents[i].file, t->file);
    }
    /* ... and, names being unique on both sides, any surplus is a tensor the index omits */
    if (s->n > m) {
        for (size_t i = 0; i < s->n; i++) {
            struct st__entry key = {s->order[i]->name, NULL};
            if (bsearch(&key, ents, m, sizeof *ents, st__cmp_entry)) continue;
            return roe_fail(ROE_ERR_FORMAT,
                            "%s: tensor '%.*s' in '%s' is not listed in weight_map (%zu tensors in "
                            "the shards, %zu listed)",
                            idx, nm, s->order[i]->name, s->order[i]->file, s->n, m);
        }
    }
    return ROE_OK;
}

static roe_status st__store_sharded(roe_store *s, const char *idx) {
    roe_status st;
    char *text = NULL;
    size_t len = 0, m = 0;
    cJSON *root = NULL;
    const cJSON *wm = NULL;
    struct st__entry *ents = NULL;
    const char **names = NULL;
    ROE_CHECK(roe_file_read_all(idx, ROE_ST_MAX_INDEX, &text, &len));
    ROE_CHECK(roe__st_json_parse(idx, "index", text, len, &root));
    ROE_CHECK(st__weight_map(idx, root, &wm));
    m = (size_t)cJSON_GetArraySize(wm);
    ents = roe_calloc(m, sizeof *ents);
    names = roe_calloc(m, sizeof *names);
    if (!ents || !names) {
        st = roe_fail(ROE_ERR_NOMEM, "%s: out of memory for %zu weight_map entries", idx, m);
        goto fail;
    }
    ROE_CHECK(st__entries(idx, wm, ents, names, m));
    ROE_CHECK(st__open_shards(s, idx, names, m));
    ROE_CHECK(st__store_tables(s, idx));
    ROE_CHECK(st__check_listed(s, idx, ents, m, names));
fail:
    roe_free(names);
    roe_free(ents);
    cJSON_Delete(root);
    roe_free(text);
    return st;
}

static int st__cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const struct roe_tensor *)a)->name, ((const struct roe_tensor *)b)->name);
}

static const struct roe_tensor *st__raw_find(const roe_store *s, const char *base, const char *suffix) {
    char name[512];
    if ((size_t)snprintf(name, sizeof name, "%s%s", base, suffix) >= sizeof name) return NULL;
    const struct roe_tensor **p = bsearch(name, s->by_name, s->n, sizeof *s->by_name, roe__st_cmp_key_name);
    return p ? *p : NULL;
}

/* One block-quantized tensor from its stored parts (runtime/quant.h "Files"): checks every
 * shape and dtype, then *q is the logical tensor (name owned by the store). */
static roe_status st__quant_one(const roe_store *s, const struct roe_tensor *b, struct roe_tensor *q) {
    const size_t bl = strlen(b->name) - strlen("_blocks");
    char base[512];
    if (bl >= sizeof base) return roe_fail(ROE_ERR_FORMAT, "%s: tensor name '%.200s...' is too long", b->file, b->name);
    memcpy(base, b->name, bl);
    base[bl] = 0;
    const int q8 = b->dtype == ROE_DTYPE_I8, nd = b->ndim;
    const struct roe_tensor *sc = st__raw_find(s, base, "_scales"), *mn = st__raw_find(s, base, "_mins");
    if (!q8 && b->dtype != ROE_DTYPE_U8)
        return roe_fail(ROE_ERR_FORMAT, "%s: '%s' has dtype %s (block-quantized blocks are I8 for Q8, U8 for Q4)",
                        b->file, b->name, roe_dtype_name(b->dtype));
    if (nd < 3 || b->shape[nd - 1] != (q8 ? 32 : 16) || b->shape[nd - 2] % (q8 ? 2 : 4) != 0)
        return roe_fail(ROE_ERR_FORMAT, "%s: '%s' must be [..., rows, blocks, %d] with blocks a multiple of %d",
                        b->file, b->name, q8 ? 32 : 16, q8 ? 2 : 4);
    if (!sc || (!q8 && !mn) || (q8 && mn))
        return roe_fail(ROE_ERR_FORMAT, "%s: '%s' needs %s_scales%s and no other part", b->file, b->name, base,
                        q8 ? "" : " and _mins");
    const struct roe_tensor *parts[2] = {sc, mn};
    for (int k = 0; k < 2 && parts[k]; k++) {
        const struct roe_tensor *p = parts[k];
        int ok = p->dtype == ROE_DTYPE_F16 && p->ndim == nd - 1 && (uintptr_t)p->data % 2 == 0;
        for (int d = 0; ok && d < nd - 1; d++) ok = p->shape[d] == b->shape[d];
        if (!ok)
            return roe_fail(ROE_ERR_FORMAT, "%s: '%s' must be F16 of %s's shape less its last dimension, 2-byte aligned",
                            p->file, p->name, b->name);
    }
    if (st__raw_find(s, base, ""))
        return roe_fail(ROE_ERR_FORMAT, "%s: both '%s' and its quantized parts are present", b->file, base);
    *q = *b;
    q->name = roe_strdup(base);
    if (!q->name) return roe_fail(ROE_ERR_NOMEM, "out of memory");
    q->dtype = q8 ? ROE_DTYPE_Q8 : ROE_DTYPE_Q4;
    q->ndim = nd - 1;
    q->shape[nd - 2] = b->shape[nd - 2] * 32;
    q->scales = sc->data;
    q->mins = mn ? mn->data : NULL;
    return ROE_OK;
}

/* An MXFP4 tensor of a gpt-oss checkpoint (U8 NAME_blocks, no NAME_mins, NAME_scales absent or
 * not F16): its parts stay raw tensors, bound and checked by runtime/model.c (bind_mx), which
 * names what is wrong with them. roe's Q4 always has NAME_mins and F16 scales. */
static int st__mxfp4_part(const roe_store *s, const struct roe_tensor *b, size_t bl) {
    char base[512];
    if (b->dtype != ROE_DTYPE_U8 || bl >= sizeof base) return 0;
    memcpy(base, b->name, bl);
    base[bl] = 0;
    const struct roe_tensor *sc = st__raw_find(s, base, "_scales");
    return !st__raw_find(s, base, "_mins") && (!sc || sc->dtype != ROE_DTYPE_F16);
}

static int st__is_quant_blocks(const roe_store *s, const struct roe_tensor *b) {
    const size_t sl = strlen("_blocks"), l = strlen(b->name);
    return l > sl && strcmp(b->name + l - sl, "_blocks") == 0 && !st__mxfp4_part(s, b, l - sl);
}

/* The store's block-quantized tensors: NAME_blocks + NAME_scales (+ NAME_mins) found by
 * roe_store_find as one tensor NAME of dtype Q8 / Q4. */
static roe_status st__quant_tensors(roe_store *s) {
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++) n += st__is_quant_blocks(s, s->by_name[i]);
    if (!n) return ROE_OK;
    s->qt = roe_calloc(n, sizeof *s->qt);
    if (!s->qt) return roe_fail(ROE_ERR_NOMEM, "out of memory for %zu quantized tensors", n);
    for (size_t i = 0; i < s->n; i++)
        if (st__is_quant_blocks(s, s->by_name[i])) ROE_TRY(st__quant_one(s, s->by_name[i], &s->qt[s->n_qt++]));
    qsort(s->qt, s->n_qt, sizeof *s->qt, st__cmp_tensor_name);
    return ROE_OK;
}

roe_status roe_store_open(const char *dir, roe_store **out) {
    roe_status st;
    roe_store *s = NULL;
    char *idx = NULL, *single = NULL;
    char err[128];
    struct stat sb;
    if (!out) return roe_fail(ROE_ERR_INVALID_ARG, "roe_store_open: out is NULL");
    *out = NULL;
    if (!dir) return roe_fail(ROE_ERR_INVALID_ARG, "roe_store_open: dir is NULL");
    if (stat(dir, &sb) != 0) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR)
            return roe_fail(ROE_ERR_IO, "model directory '%s' does not exist", dir);
        return roe_fail(ROE_ERR_IO, "cannot access model directory '%s': %s", dir,
                        st__errstr(e, err, sizeof err));
    }
    if (!S_ISDIR(sb.st_mode))
        return roe_fail(ROE_ERR_IO, "model directory '%s' is not a directory", dir);

    s = roe_calloc(1, sizeof *s);
    if (!s || !(s->dir = roe_strdup(dir)) || !(idx = st__join(dir, ROE_ST_INDEX_NAME)) ||
        !(single = st__join(dir, ROE_ST_SINGLE_NAME))) {
        st = roe_fail(ROE_ERR_NOMEM, "model directory '%s': out of memory", dir);
        goto fail;
    }
    if (stat(idx, &sb) == 0) {
        ROE_CHECK(st__store_sharded(s, idx));
    } else if (stat(single, &sb) == 0) {
        s->files = roe_calloc(1, sizeof *s->files);
        if (!s->files) {
            st = roe_fail(ROE_ERR_NOMEM, "model directory '%s': out of memory", dir);
            goto fail;
        }
        s->n_files = 1;
        ROE_CHECK(roe_st_open(single, &s->files[0]));
        ROE_CHECK(st__store_tables(s, single));
    } else {
        st = roe_fail(ROE_ERR_IO, "model directory '%s' has neither %s nor %s", dir,
                      ROE_ST_INDEX_NAME, ROE_ST_SINGLE_NAME);
        goto fail;
    }
    ROE_CHECK(st__quant_tensors(s));
    roe_free(idx);
    roe_free(single);
    *out = s;
    return ROE_OK;
fail:
    roe_free(idx);
    roe_free(single);
    roe_store_close(s);
    return st;
}

void roe_store_close(roe_store *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n_files; i++)
        roe_st_close(s->files[i]);
    roe_free(s->files);
    roe_free(s->order);
    roe_free(s->by_name);
    for (size_t i = 0; i < s->n_qt; i++) roe_free((char *)s->qt[i].name);
    roe_free(s->qt);
    roe_free(s->dir);
    roe_free(s);
}

const struct roe_tensor *roe_store_find(const roe_store *s, const char *name) {
    if (!s || !name || s->n == 0) return NULL;
    const struct roe_tensor **p =
        bsearch(name, s->by_name, s->n, sizeof *s->by_name, roe__st_cmp_key_name);
    if (p) return *p;
    const struct roe_tensor key = {.name = name};
    return s->n_qt ? bsearch(&key, s->qt, s->n_qt, sizeof *s->qt, st__cmp_tensor_name) : NULL;
}

size_t roe_store_count(const roe_store *s) {
    return s ? s->n : 0;
}

const struct roe_tensor *roe_store_at(const roe_store *s, size_t i) {
    return s && i < s->n ? s->order[i] : NULL;
}

size_t roe_store_n_files(const roe_store *s) {
    return s ? s->n_files : 0;
}
