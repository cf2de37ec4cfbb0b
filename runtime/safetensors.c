/*
 * safetensors.c — one memory-mapped safetensors file (roe_st_*) and the dtype table; the
 * store of a model directory is in safetensors_store.c. See safetensors.h.
 *
 * What a file must satisfy (the reference reader is huggingface/safetensors, Rust,
 * SafeTensors::read_metadata + Metadata::validate; we match it and are stricter where noted):
 *  - at least 8 bytes; header length N <= 100,000,000 (the reference's MAX_HEADER_SIZE)
 *    and 8 + N <= file size;
 *  - the header is UTF-8, one JSON object and nothing after it but whitespace (the
 *    reference writer pads with spaces to a multiple of 8);
 *  - `__metadata__`, optional and at most once, is an object of strings; every other key is
 *    a tensor {dtype, shape, data_offsets}; unknown keys inside an entry are ignored, as the
 *    reference does; a repeated dtype/shape/data_offsets key is rejected, as serde does;
 *  - stricter: a tensor name may appear only once (the reference's HashMap silently keeps
 *    the last one, so the file would mean different things to different readers);
 *  - element count x dtype size == end - begin, computed with overflow checks;
 *  - sorted by (begin, end), the tensors tile the data section exactly: the first starts
 *    at 0, each starts where the previous ends and the last ends at the end of the file.
 *    This is the reference rule (`s != start` -> InvalidOffset, and `buffer_end + 8 + n !=
 *    buffer_len` -> MetadataIncompleteBuffer): an overlap, a gap and trailing bytes are
 *    all errors, each reported by its own message. Zero-byte tensors may sit anywhere on
 *    that tiling, but not inside another tensor.
 *
 * Numbers: cJSON keeps every JSON number as a double, which holds each integer below 2^53
 * exactly. Dimensions and offsets must be integral and in [0, 2^53): a larger value could
 * have been rounded by the parse, and no real file needs one (an offset of 2^53 is an
 * 8 PiB file). "2.0" is accepted as 2 because the parsed value cannot tell it apart.
 *
 * The header is copied out of the mapping before cJSON sees it, so that an over-read by the
 * parser would hit an ASan-checked heap block rather than run off the end of the mapping.
 *
 * Alignment: the data section starts at byte 8 + N of a page-aligned mapping. The
 * reference writer pads N to a multiple of 8, so every tensor is aligned to its element
 * size; other writers need not. Such files are accepted; n_misaligned counts the tensors
 * whose data pointer is not a multiple of their element size (logged at debug level).
 * Readers of bf16/f32 data must then load through memcpy (x86 does not fault on unaligned
 * loads, but a misaligned `const uint16_t *` dereference is UB and UBSan reports it).
 */
#include "safetensors.h"
#include "safetensors_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/json.h"
#include "base/log.h"

enum {
    ROE_ST_MAX_HEADER = 100000000, /* bytes; the reference reader's MAX_HEADER_SIZE */
    ROE_ST_NAME_MAX = 200,         /* characters of a file-supplied name quoted in a message */
};
#define ROE_ST_INT_LIMIT 9007199254740992.0 /* 2^53: integers below it are exact doubles */

struct roe_st_file {
    char *path;                        /* owned; every tensor's `file` points here */
    const uint8_t *map;                /* the whole file, PROT_READ, MAP_PRIVATE */
    size_t map_size;                   /* file size in bytes */
    size_t header_len;                 /* N */
    const uint8_t *data;               /* map + 8 + N: the data section */
    size_t data_size;                  /* map_size - 8 - N */
    struct roe_tensor *tensors;        /* [n], sorted by (begin, end, name); names owned */
    const struct roe_tensor **by_name; /* [n], sorted by strcmp(name), for bsearch */
    size_t n;
    size_t n_misaligned; /* tensors whose data is not aligned to their element size */
};

/* ---- small helpers ---- */

static const char *st__errstr(int err, char *buf, size_t n) {
    if (strerror_r(err, buf, n) != 0) snprintf(buf, n, "errno %d", err);
    return buf;
}

/* Shared with safetensors_store.c (declared there; there is no private header). */
const char *roe__st_json_type(const cJSON *j) {
    if (cJSON_IsObject(j)) return "object";
    if (cJSON_IsArray(j)) return "array";
    if (cJSON_IsString(j)) return "string";
    if (cJSON_IsNumber(j)) return "number";
    if (cJSON_IsBool(j)) return "boolean";
    if (cJSON_IsNull(j)) return "null";
    return "invalid value";
}

/* A JSON scalar as it may appear in a message: 2.5, -3, "abc", or "a JSON array". */
static const char *st__json_show(const cJSON *j, char *buf, size_t n) {
    if (cJSON_IsNumber(j))
        snprintf(buf, n, "%.17g", j->valuedouble);
    else if (cJSON_IsString(j))
        snprintf(buf, n, "\"%.32s\"", j->valuestring);
    else
        snprintf(buf, n, "a JSON %s", roe__st_json_type(j));
    return buf;
}

/* JSON number -> exact integer in [0, 2^53); returns NULL or why it is not one. */
static const char *st__json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return "is not a number";
    double d = j->valuedouble;
    if (d < 0) return "is negative";
    if (d != floor(d)) return "is not an integer";
    if (d >= ROE_ST_INT_LIMIT) return "is too large";
    *out = (uint64_t)d;
    return NULL;
}

static const char *st__shape_str(const int64_t *shape, int ndim, char *buf, size_t n) {
    size_t at = 0;
    at += (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (at < n) snprintf(buf + at, n - at, "]");
    return buf;
}

static uint64_t st__le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Returns 1 if s[0..n) is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF),
 * else 0 with the offset of the first bad sequence in *bad. */
static int st__utf8_valid(const uint8_t *s, size_t n, size_t *bad) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            break;
        }
        if (len > n - i) break;
        size_t k = 1;
        for (; k < len && (s[i + k] & 0xC0) == 0x80; k++)
            cp = (cp << 6) | (s[i + k] & 0x3F);
        if (k < len || cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) break;
        i += len;
    }
    *bad = i;
    return i == n;
}

/* Where a parse error means the text was cut short rather than malformed: the opening
 * quote of a string left open at the end, else the last byte if brackets are left open;
 * SIZE_MAX if everything is closed. (cJSON reports an error in an unterminated string
 * just after its opening quote, and one at the very end as len - 1.) */
static size_t st__json_cut(const char *text, size_t len) {
    size_t depth = 0, str_start = 0;
    int in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
            str_start = i;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if ((c == '}' || c == ']') && depth > 0) {
            depth--;
        }
    }
    if (in_str) return str_start;
    return depth > 0 ? len - 1 : SIZE_MAX;
}

/* Parses exactly text[0..len) as one JSON value followed by nothing but whitespace.
 * `what` ("header", "index") and `path` go into the messages. */
roe_status roe__st_json_parse(const char *path, const char *what, const char *text, size_t len,
                              cJSON **out) {
    const char *end = NULL;
    *out = NULL;
    if (len == 0)
        return roe_fail(ROE_ERR_FORMAT, "%s: %s is empty, expected a JSON object", path, what);
    int oom = 0;
    cJSON *j = roe_json_parse(text, len, &end, &oom);
    if (oom) return roe_fail(ROE_ERR_NOMEM, "%s: out of memory parsing its %s (%zu bytes of JSON)", path, what, len);
    size_t at = end ? (size_t)(end - text) : 0;
    if (!j && at >= st__json_cut(text, len))
        return roe_fail(ROE_ERR_FORMAT,
                        "%s: %s JSON is truncated: its %zu bytes end inside a string or with "
                        "brackets still open (parsing stopped at byte %zu)",
                        path, what, len, at);
    if (j) {
        while (at < len && text[at] && strchr(" \t\r\n", text[at]))
            at++;
        if (at == len) {
            *out = j;
            return ROE_OK;
        }
        cJSON_Delete(j);
    }
    char near[24];
    size_t k = 0;
    for (; k < sizeof near - 1 && at + k < len; k++) {
        char c = text[at + k];
        near[k] = (c >= 0x20 && c < 0x7f) ? c : '.';
    }
    near[k] = '\0';
    return roe_fail(ROE_ERR_FORMAT, "%s: %s is not valid JSON: %s at byte %zu of %zu, near '%s'",
                    path, what, j ? "unexpected data after the JSON value" : "syntax error", at,
                    len, near);
}

int roe__st_cmp_by_name(const void *a, const void *b) {
    const struct roe_tensor *x = *(const struct roe_tensor *const *)a;
    const struct roe_tensor *y = *(const struct roe_tensor *const *)b;
    return strcmp(x->name, y->name);
}

int roe__st_cmp_key_name(const void *key, const void *elem) {
    return strcmp((const char *)key, (*(const struct roe_tensor *const *)elem)->name);
}

/* (begin, end, name); data pointers of one file are comparable. */
static int st__cmp_by_offset(const void *a, const void *b) {
    const struct roe_tensor *x = a, *y = b;
    if (x->data != y->data) return (const uint8_t *)x->data < (const uint8_t *)y->data ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* ---- one file ---- */

static roe_status st__check_metadata(const roe_st_file *f, const cJSON *meta) {
    if (!cJSON_IsObject(meta))
        return roe_fail(ROE_ERR_FORMAT,
                        "%s: __metadata__ is a JSON %s, expected an object of strings", f->path,
                        roe__st_json_type(meta));
    for (const cJSON *m = meta->child; m; m = m->next) {
        if (!cJSON_IsString(m))
            return roe_fail(ROE_ERR_FORMAT,
                            "%s: __metadata__['%.*s'] is a JSON %s, expected a string", f->path,
                            ROE_ST_NAME_MAX, m->string, roe__st_json_type(m));
    }
    return ROE_OK;
}

/* The entry's dtype/shape/data_offsets; a repeated key is an error, unknown keys are skipped. */
static roe_status st__entry_fields(const roe_st_file *f, const cJSON *e, const cJSON **dtype,
                                   const cJSON **shape, const cJSON **offsets) {
    *dtype = *shape = *offsets = NULL;
    for (const cJSON *k = e->child; k; k = k->next) {
        const cJSON **slot = strcmp(k->string, "dtype") == 0          ? dtype
                             : strcmp(k->string, "shape") == 0        ? shape
                             : strcmp(k->string, "data_offsets") == 0 ? offsets
                                                                      : NULL;
        if (!slot) continue;
        if (*slot)
            return roe_fail(ROE_ERR_FORMAT, "%s: tensor '%.*s': key \"%s\" appears twice", f->path,
                            ROE_ST_NAME_MAX, e->string, k->string);
        *slot = k;
    }
    return ROE_OK;
}

static roe_status st__entry_dtype(const roe_st_file *f, const char *name, const cJSON *jd, struct roe_tensor *t) {
    const char *path = f->path;
    const int nm = ROE_ST_NAME_MAX;
    if (!jd)
        return roe_fail(ROE_ERR_FORMAT, "%s: tensor '%.*s': missing \"dtype\"", path, nm, name);
    if (!cJSON_IsString(jd))
        return roe_fail(ROE_ERR_FORMAT,
                        "%s: tensor '%.*s': \"dtype\" is a JSON %s, expected a string", path, nm,
                        name, roe__st_json_type(jd));
    if (!roe_dtype_parse(jd->valuestring, &t->dtype))
        return roe_fail(ROE_ERR_UNSUPPORTED,
                        "%s: tensor '%.*s': unknown dtype '%.32s' (supported: F64 F32 F16 BF16 I64 "
                        "I32 I16 I8 U8 BOOL F8_E4M3 F8_E5M2)",
                        path, nm, name, jd->valuestring);
    return ROE_OK;
}

static roe_status st__entry_shape(const roe_st_file *f, const char *name, const cJSON *js, struct roe_tensor *t) {
    const char *path = f->path;
    const int nm = ROE_ST_NAME_MAX;
    char show[64];
    if (!js)
        return roe_fail(ROE_ERR_FORMAT, "%s: tensor '%.*s': missing \"shape\"", path, nm, name);
    if (!cJSON_IsArray(js))
        return roe_fail(ROE_ERR_FORMAT,
                        "%s: tensor '%.*s': \"shape\" is a JSON %s, expected an array of integers",
                        path, nm, name, roe__st_json_type(js));
    int ndim = cJSON_GetArraySize(js);
    if (ndim > ROE_TENSOR_MAX_DIMS)
        return roe_fail(ROE_ERR_UNSUPPORTED,
                        "%s: tensor '%.*s': shape has %d dimensions, at most %d are supported",
                        path, nm, name, ndim, (int)ROE_TENSOR_MAX_DIMS);
    t->ndim = ndim;
    int d = 0;
    for (const cJSON *x = js->child; x; x = x->next, d++) {
        uint64_t v = 0;
        const char *why = st__json_uint(x, &v);
        if (why)
            return roe_fail(ROE_ERR_FORMAT,
                            "%s: tensor '%.*s': shape[%d] = %s %s; dimensions are integers in "
                            "[0, 2^53)",
                            path, nm, name, d, st__json_show(x, show, sizeof show), why);
        t->shape[d] = (int64_t)v;
    }
    return ROE_OK;
}

/* off = [begin, end) within the data section. */
static roe_status st__entry_offsets(const roe_st_file *f, const char *name, const cJSON *jo, uint64_t off[2]) {
    const char *path = f->path;
    const int nm = ROE_ST_NAME_MAX;
    char show[64];
    if (!jo)
        return roe_fail(ROE_ERR_FORMAT, "%s: tensor '%.*s': missing \"data_offsets\"", path, nm,
                        name);
    if (!cJSON_IsArray(jo))
        return roe_fail(ROE_ERR_FORMAT,
                        "%s: tensor '%.*s': \"data_offsets\" is a JSON %s, expected [begin, end]",
                        path, nm, name, roe__st_json_type(jo));
    int n_off = cJSON_GetArraySize(jo);
    if (n_off != 2)
        return roe_fail(ROE_ERR_FORMAT,
                        "%s: tensor '%.*s': data_offsets has %d element%s, expected 2 [begin, end]",
                        path, nm, name, n_off, n_off == 1 ? "" : "s");
    for (int i = 0; i < 2; i++) {
        const cJSON *x = cJSON_GetArrayItem(jo, i);
        const char *why = st__json_uint(x, &off[i]);
        if (why)
            return roe_fail(ROE_ERR_FORMAT,
                            "%s: tensor '%.*s': data_offsets[%d] = %s %s; offsets are integers in "
                            "[0, 2^53)",
                            path, nm, name, i, st__json_show(x, show, sizeof show), why);
    }
    const uint64_t begin = off[0], end = off[1];
    if (begin > end)
        return roe_fail(ROE_ERR_FORMAT,
                        "%s: tensor '%.*s': data_offsets [%llu, %llu) have begin > end", path, nm,
                        name, (unsigned long long)begin, (unsigned long long)end);
    if (end > f->data_size)
        return roe_fail(ROE_ERR_FORMAT,
                        "%s: tensor '%.*s': data_offsets [%llu, %llu) exceed data section of %zu "
                        "bytes",
                        path, nm, name, (unsigned long long)begin, (unsigned long long)end,
                        f->data_size);
    return ROE_OK;
}

/* The byte size of t's shape and dtype, overflow-checked, must be end - begin; an empty
 * shape is a scalar (1 element). */
static roe_status st__entry_size(const roe_st_file *f, const char *name, struct roe_tensor *t, uint64_t begin,
                                 uint64_t end) {
    const char *path = f->path;
    const int nm = ROE_ST_NAME_MAX, ndim = t->ndim;
    char shp[ROE_TENSOR_MAX_DIMS * 24 + 4];
    size_t elems = 1, bytes = 0, esize = roe_dtype_size(t->dtype);
    for (int i = 0; i < ndim; i++) {
        if (!roe_size_mul(elems, (size_t)t->shape[i], &elems))
            return roe_fail(ROE_ERR_FORMAT,
                            "%s: tensor '%.*s': shape %s: element count overflows 64 bits", path,
                            nm, name, st__shape_str(t->shape, ndim, shp, sizeof shp));
    }
    if (!roe_size_mul(elems, esize, &bytes))
        return roe_fail(ROE_ERR_FORMAT,
                        "%s: tensor '%.*s': shape %s x %s (%zu bytes): byte size overflows 64 bits",
                        path, nm, name, st__shape_str(t->shape, ndim, shp, sizeof shp),
                        roe_dtype_name(t->dtype), esize);
    if (bytes != end - begin)
        return roe_fail(ROE_ERR_FORMAT,
                        "%s: tensor '%.*s': shape %s x %s (%zu bytes) = %zu bytes but data_offsets "
                        "[%llu, %llu) hold %llu bytes",
                        path, nm, name, st__shape_str(t->shape, ndim, shp, sizeof shp),
                        roe_dtype_name(t->dtype), esize, bytes, (unsigned long long)begin,
                        (unsigned long long)end, (unsigned long long)(end - begin));
    t->nbytes = bytes;
    return ROE_OK;
}

/* Validates one header entry against the data section and fills *t (name excepted). */
static roe_status st__read_entry(const roe_st_file *f, const cJSON *e, struct roe_tensor *t) {
    const char *name = e->string;
    const cJSON *jd, *js, *jo;
    if (!cJSON_IsObject(e))
        return roe_fail(ROE_ERR_FORMAT,
                        "%s: tensor '%.*s': entry is a JSON %s, expected an object "
                        "{dtype, shape, data_offsets}",
                        f->path, (int)ROE_ST_NAME_MAX, name, roe__st_json_type(e));
    ROE_TRY(st__entry_fields(f, e, &jd, &js, &jo));
    ROE_TRY(st__entry_dtype(f, name, jd, t));
    ROE_TRY(st__entry_shape(f, name, js, t));
    uint64_t off[2] = {0, 0};
    ROE_TRY(st__entry_offsets(f, name, jo, off));
    ROE_TRY(st__entry_size(f, name, t, off[0], off[1]));
    t->file = f->path;
    t->data = f->data + off[0];
    return ROE_OK;
}

static roe_status st__read_header(roe_st_file *f) {
    const char *path = f->path;
    char *text = NULL;
    cJSON *root = NULL;
    roe_status st = ROE_OK;
    uint64_t n = st__le64(f->map);
    if (n > ROE_ST_MAX_HEADER)
        return roe_fail(ROE_ERR_FORMAT, "%s: header length %llu exceeds the limit of %d bytes",
                        path, (unsigned long long)n, (int)ROE_ST_MAX_HEADER);
    if (n > f->map_size - 8)
        return roe_fail(ROE_ERR_FORMAT,
                        "%s: header length %llu runs past the end of the file (8 + %llu > file "
                        "size %zu)",
                        path, (unsigned long long)n, (unsigned long long)n, f->map_size);
    f->header_len = (size_t)n;
    f->data = f->map + 8 + f->header_len;
    f->data_size = f->map_size - 8 - f->header_len;
    size_t bad = 0;
    if (!st__utf8_valid(f->map + 8, f->header_len, &bad))
        return roe_fail(ROE_ERR_FORMAT, "%s: header is not valid UTF-8 (bad byte 0x%02x at %zu)",
                        path, f->map[8 + bad], bad);

    text = roe_malloc(f->header_len);
    if (!text)
        return roe_fail(ROE_ERR_NOMEM, "%s: out of memory copying the %zu-byte header", path,
                        f->header_len);
    memcpy(text, f->map + 8, f->header_len);
    ROE_CHECK(roe__st_json_parse(path, "header", text, f->header_len, &root));
    if (!cJSON_IsObject(root)) {
        st = roe_fail(ROE_ERR_FORMAT,
                      "%s: header is a JSON %s, expected an object {name: {dtype, shape, "
                      "data_offsets}}",
                      path, roe__st_json_type(root));
        goto fail;
    }

    size_t n_entries = 0;
    int seen_meta = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") != 0) {
            n_entries++;
            continue;
        }
        if (seen_meta) {
            st = roe_fail(ROE_ERR_FORMAT, "%s: __metadata__ appears twice in the header", path);
            goto fail;
        }
        seen_meta = 1;
        ROE_CHECK(st__check_metadata(f, e));
    }
    f->tensors = roe_calloc(n_entries, sizeof *f->tensors);
    f->by_name = roe_calloc(n_entries, sizeof *f->by_name);
    if (!f->tensors || !f->by_name) {
        st = roe_fail(ROE_ERR_NOMEM, "%s: out of memory for %zu tensors", path, n_entries);
        goto fail;
    }
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) continue;
        struct roe_tensor *t = &f->tensors[f->n];
        ROE_CHECK(st__read_entry(f, e, t));
        t->name = roe_strdup(e->string);
        if (!t->name) {
            st = roe_fail(ROE_ERR_NOMEM, "%s: out of memory for tensor names", path);
            goto fail;
        }
        f->n++;
    }
fail:
    cJSON_Delete(root);
    roe_free(text);
    return st;
}

/* Names unique; sorted by offset, the tensors tile [0, data_size) exactly (see the top). */
static roe_status st__check_layout(roe_st_file *f) {
    const char *path = f->path;
    const int nm = ROE_ST_NAME_MAX;
    qsort(f->tensors, f->n, sizeof *f->tensors, st__cmp_by_offset);
    for (size_t i = 0; i < f->n; i++)
        f->by_name[i] = &f->tensors[i];
    qsort(f->by_name, f->n, sizeof *f->by_name, roe__st_cmp_by_name);
    for (size_t i = 1; i < f->n; i++) {
        if (strcmp(f->by_name[i - 1]->name, f->by_name[i]->name) == 0)
            return roe_fail(ROE_ERR_FORMAT, "%s: tensor '%.*s' appears twice in the header", path,
                            nm, f->by_name[i]->name);
    }
    size_t pos = 0;
    const struct roe_tensor *prev = NULL;
    for (size_t i = 0; i < f->n; i++) {
        const struct roe_tensor *t = &f->tensors[i];
        size_t begin = (size_t)((const uint8_t *)t->data - f->data);
        if (begin < pos)
            return roe_fail(
                ROE_ERR_FORMAT, "%s: tensors '%.*s' [%zu, %zu) and '%.*s' [%zu, %zu) overlap", path,
                nm, prev->name, pos - prev->nbytes, pos, nm, t->name, begin, begin + t->nbytes);
        if (begin > pos && prev)
            return roe_fail(ROE_ERR_FORMAT,
                            "%s: %zu-byte gap [%zu, %zu) in the data section between tensors "
                            "'%.*s' and '%.*s'; tensors must cover it without gaps, as the "
                            "reference safetensors reader requires",
                            path, begin - pos, pos, begin, nm, prev->name, nm, t->name);
        if (begin > pos)
            return roe_fail(ROE_ERR_FORMAT,
                            "%s: %zu-byte gap [0, %zu) in the data section before the first "
                            "tensor '%.*s'; tensors must cover it without gaps, as the reference "
                            "safetensors reader requires",
                            path, begin, begin, nm, t->name);
        pos = begin + t->nbytes;
        prev = t;
        if (t->nbytes && (uintptr_t)t->data % roe_dtype_size(t->dtype) != 0) f->n_misaligned++;
    }
    if (pos != f->data_size)
        return roe_fail(ROE_ERR_FORMAT,
                        "%s: tensors end at byte %zu of a %zu-byte data section: %zu trailing "
                        "bytes belong to no tensor (the reference safetensors reader rejects this)",
                        path, pos, f->data_size, f->data_size - pos);
    if (f->n_misaligned)
        ROE_LOG_DEBUG("safetensors",
                      "%s: %zu of %zu tensors are not aligned to their element size (header "
                      "length %zu is not a multiple of 8); reads of them are unaligned",
                      path, f->n_misaligned, f->n, f->header_len);
    return ROE_OK;
}

roe_status roe_st_open(const char *path, roe_st_file **out) {
    roe_status st;
    roe_st_file *f = NULL;
    int fd = -1;
    char err[128];
    if (!out) return roe_fail(ROE_ERR_INVALID_ARG, "roe_st_open: out is NULL");
    *out = NULL;
    if (!path) return roe_fail(ROE_ERR_INVALID_ARG, "roe_st_open: path is NULL");

    f = roe_calloc(1, sizeof *f);
    if (!f || !(f->path = roe_strdup(path))) {
        st = roe_fail(ROE_ERR_NOMEM, "%s: out of memory opening the file", path);
        goto fail;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        st = roe_fail(ROE_ERR_IO, "%s: cannot open: %s", path, st__errstr(errno, err, sizeof err));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = roe_fail(ROE_ERR_IO, "%s: cannot open: not a regular file", path);
        goto fail;
    }
    if (sb.st_size == 0) {
        st = roe_fail(ROE_ERR_FORMAT,
                      "%s: file is empty (a safetensors file starts with an 8-byte header length)",
                      path);
        goto fail;
    }
    if (sb.st_size < 8) {
        st = roe_fail(ROE_ERR_FORMAT,
                      "%s: file is %lld bytes, shorter than the 8-byte header length", path,
                      (long long)sb.st_size);
        goto fail;
    }
    /* Private read-only mapping: the weights are never copied. A file truncated by another
     * process while mapped would SIGBUS on access; model files are not expected to change. */
    void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        st = roe_fail(ROE_ERR_IO, "%s: cannot map %lld bytes: %s", path, (long long)sb.st_size,
                      st__errstr(errno, err, sizeof err));
        goto fail;
    }
    f->map = map;
    f->map_size = (size_t)sb.st_size;
    close(fd); /* the mapping keeps the file */
    fd = -1;
    ROE_CHECK(st__read_header(f));
    ROE_CHECK(st__check_layout(f));
    *out = f;
    return ROE_OK;
fail:
    if (fd >= 0) close(fd);
    roe_st_close(f);
    return st;
}

void roe_st_close(roe_st_file *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n; i++)
        roe_free((void *)f->tensors[i].name);
    roe_free(f->tensors);
    roe_free(f->by_name);
    if (f->map) munmap((void *)f->map, f->map_size);
    roe_free(f->path);
    roe_free(f);
}

size_t roe_st_count(const roe_st_file *f) {
    return f ? f->n : 0;
}

const struct roe_tensor *roe_st_at(const roe_st_file *f, size_t i) {
    return f && i < f->n ? &f->tensors[i] : NULL;
}

const struct roe_tensor *roe_st_find(const roe_st_file *f, const char *name) {
    if (!f || !name || f->n == 0) return NULL;
    const struct roe_tensor **p =
        bsearch(name, f->by_name, f->n, sizeof *f->by_name, roe__st_cmp_key_name);
    return p ? *p : NULL;
}
