/* quant.c — quantized weights at load time, and saving them; see quant.h. */
#include "quant.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/fileio.h"
#include "base/log.h"
#include "kernels/quant.h"

/* One matrix quantized here: its view now, and where its values came from (to save it). */
struct qentry {
    const void *src;     /* the original data (into the checkpoint's mapping) */
    size_t src_bytes;    /* rows * cols * element size of the original */
    struct roe_mat q;    /* q.data is the start of the entry's one allocation (owned) */
    int tied_lm_head;    /* the LM head of a tied model: quantized from the embedding table */
};

struct roe_quant {
    struct qentry *e;
    size_t n, cap;
};

int roe_weights_parse(const char *s, roe_weights *out) {
    static const char *names[] = {"bf16", "q8", "q4"};
    for (int i = 0; i < 3; i++)
        if (s && strcmp(s, names[i]) == 0) {
            *out = (roe_weights)i;
            return 1;
        }
    return 0;
}

const char *roe_weights_name(roe_weights w) {
    return w == ROE_WEIGHTS_Q8 ? "q8" : w == ROE_WEIGHTS_Q4 ? "q4" : "bf16";
}

void roe_quant_free(struct roe_quant *q) {
    if (!q) return;
    for (size_t i = 0; i < q->n; i++) roe_free_aligned((void *)q->e[i].q.data);
    roe_free(q->e);
    roe_free(q);
}

static void widen_row(const struct roe_mat *m, int r, float *dst) {
    const size_t o = (size_t)r * (size_t)m->cols;
    for (int c = 0; c < m->cols; c++) {
        switch (m->dtype) {
        case ROE_DTYPE_BF16: dst[c] = roe_bf16_to_f32(((const uint16_t *)m->data)[o + c]); break;
        case ROE_DTYPE_F16: dst[c] = roe_f16_to_f32(((const uint16_t *)m->data)[o + c]); break;
        case ROE_DTYPE_F8_E4M3: /* requantized from the dequantized values */
            dst[c] = roe_e4m3_to_f32(((const uint8_t *)m->data)[o + c]) *
                     m->tile_scale[(size_t)((m->tile_row0 + r) / ROE_FP8_TILE) *
                                       (size_t)((m->cols + ROE_FP8_TILE - 1) / ROE_FP8_TILE) + (size_t)(c / ROE_FP8_TILE)];
            break;
        default: dst[c] = ((const float *)m->data)[o + c]; break;
        }
    }
}

/* Replaces *mat by its quantization to t (rows in parallel), recorded in q. */
static roe_status quantize_mat(struct roe_quant *q, struct roe_mat *mat, roe_dtype t, int tied) {
    if (!mat->data || roe_dtype_is_block(mat->dtype)) return ROE_OK;
    if (q->n == q->cap) {
        const size_t cap = q->cap ? 2 * q->cap : 256;
        struct qentry *e = roe_realloc(q->e, cap * sizeof *e);
        if (!e) return roe_fail(ROE_ERR_NOMEM, "out of memory quantizing weights");
        q->e = e, q->cap = cap;
    }
    const int rows = mat->rows, cols = mat->cols;
    const size_t rb = roe_dtype_row_bytes(t, (size_t)cols), nb = roe_dtype_row_blocks(t, (size_t)cols);
    const size_t data = (size_t)rows * rb, par = (size_t)rows * nb * sizeof(uint16_t);
    char *p = roe_malloc_aligned(data + par * (t == ROE_DTYPE_Q4 ? 2 : 1));
    if (!p) return roe_fail(ROE_ERR_NOMEM, "out of memory for a %d x %d %s matrix", rows, cols, roe_dtype_name(t));
    struct roe_mat out = {.dtype = t, .data = p, .rows = rows, .cols = cols, .scales = (const uint16_t *)(void *)(p + data),
                          .mins = t == ROE_DTYPE_Q4 ? (const uint16_t *)(void *)(p + data + par) : NULL};
    int failed = 0;
#pragma omp parallel reduction(| : failed)
    {
        float *buf = roe_malloc((size_t)cols * sizeof(float));
        failed = !buf;
#pragma omp for schedule(static)
        for (int r = 0; r < rows; r++) {
            if (!buf) continue;
            widen_row(mat, r, buf);
            roe_quantize_row(t, buf, cols, p + (size_t)r * rb, (uint16_t *)out.scales + (size_t)r * nb,
                             out.mins ? (uint16_t *)out.mins + (size_t)r * nb : NULL);
        }
        roe_free(buf);
    }
    if (failed) {
        roe_free_aligned(p);
        return roe_fail(ROE_ERR_NOMEM, "out of memory quantizing weights");
    }
    q->e[q->n++] = (struct qentry){.src = mat->data, .src_bytes = (size_t)rows * cols * roe_dtype_size(mat->dtype),
                                   .q = out, .tied_lm_head = tied};
    *mat = out;
    return ROE_OK;
}

static roe_status quantize_layer(struct roe_quant *q, const struct roe_model_config *c, struct roe_layer_weights *L,
                                 roe_dtype t) {
    /* MLA's kv_b_proj stays float: matmul_heads reads it per head (and wuk_t derived from it) */
    struct roe_mat *mats[] = {&L->wq,         &L->wk,          &L->wv,        &L->wo,          &L->wq_a,
                              &L->wkv_a,      &L->dense.gate,  &L->dense.up,  &L->dense.down,  &L->shared.gate,
                              &L->shared.up,  &L->shared.down};
    for (size_t k = 0; k < sizeof mats / sizeof mats[0]; k++) ROE_TRY(quantize_mat(q, mats[k], t, 0));
    for (int e = 0; L->experts && e < c->n_experts; e++) {
        ROE_TRY(quantize_mat(q, &L->experts[e].gate, t, 0));
        ROE_TRY(quantize_mat(q, &L->experts[e].up, t, 0));
        ROE_TRY(quantize_mat(q, &L->experts[e].down, t, 0));
    }
    return ROE_OK;
}

roe_status roe_model_quantize(struct roe_model *m, roe_weights w) {
    const struct roe_model_config *c = &m->cfg;
    /* a saved checkpoint: gpt-oss's experts stay float in it (input-major, transposed at load), and
     * are quantized here like the rest was before saving: the same function of the same floats */
    const roe_dtype stored = c->n_layers > 0 && roe_dtype_is_block(m->layers[0].wq.dtype) ? m->layers[0].wq.dtype : ROE_DTYPE_F32;
    if (w == ROE_WEIGHTS_BF16 && stored == ROE_DTYPE_F32) return ROE_OK;
    if (c->mxfp4) /* 4-bit experts already: requantizing would only add error (docs/QUANTIZATION.md) */
        return roe_fail(ROE_ERR_INVALID_ARG, "'%s' holds MXFP4 experts: it runs as stored (--weights bf16); --weights "
                        "%s is for float checkpoints", m->dir, roe_weights_name(w));
    const roe_dtype t = w == ROE_WEIGHTS_BF16 ? stored : w == ROE_WEIGHTS_Q8 ? ROE_DTYPE_Q8 : ROE_DTYPE_Q4;
    if (m->shapes_only)
        return roe_fail(ROE_ERR_UNSUPPORTED, "--weights %s: a model of random weights (--random-model) is bf16 only",
                        roe_weights_name(w));
    if (stored != ROE_DTYPE_F32 && stored != t)
        return roe_fail(ROE_ERR_INVALID_ARG,
                        "'%s' holds %s weights already: it runs as stored (--weights bf16); --weights %s needs the "
                        "float checkpoint", m->dir, roe_dtype_name(m->layers[0].wq.dtype), roe_weights_name(w));
    if (!m->quant && !(m->quant = roe_calloc(1, sizeof *m->quant)))
        return roe_fail(ROE_ERR_NOMEM, "out of memory");
    const double t0 = roe_now_s();
    for (int i = 0; i < c->n_layers; i++) ROE_TRY(quantize_layer(m->quant, c, &m->layers[i], t));
    const int tied = m->lm_head.data == m->embed.data;
    ROE_TRY(quantize_mat(m->quant, &m->lm_head, ROE_DTYPE_Q8, tied)); /* Q8 under q4 too: quant.h */
    if (m->quant->n == 0) { /* a checkpoint saved at t: everything as stored */
        roe_quant_free(m->quant);
        m->quant = NULL;
        return ROE_OK;
    }
    roe__model_account(m);
    ROE_LOG_INFO("quant", "%s: %zu matrices quantized to %s in %.1f s (%.0f MB held)", m->dir, m->quant->n,
            roe_weights_name(w), roe_now_s() - t0, m->held_bytes / 1e6);
    return ROE_OK;
}

/* ---- saving ---- */

/* One tensor of the file written: a source tensor copied, or one part of a quantized one. */
enum part { PART_RAW, PART_BLOCKS, PART_SCALES, PART_MINS };

struct otensor {
    char name[320];
    roe_dtype dtype; /* the file dtype */
    int ndim;
    int64_t shape[ROE_TENSOR_MAX_DIMS];
    size_t bytes;
    enum part part;
    const struct roe_tensor *src;    /* PART_RAW */
    const struct qentry *const *ent; /* the other parts: the matrices, in row order */
    size_t n_ent;
    uint64_t off;
};

static int cmp_src(const void *a, const void *b) {
    const struct qentry *x = *(const struct qentry *const *)a, *y = *(const struct qentry *const *)b;
    return x->src < y->src ? -1 : x->src > y->src;
}

/* The entries (sorted by src) that tile tensor t exactly, as [first, first + n): 1, or 0 when
 * t was not quantized (or only in part: then it is copied as is). */
static int tiling(const struct qentry *const *by_src, size_t n, const struct roe_tensor *t, size_t *first, size_t *cnt) {
    const char *b = t->data, *e = b + t->nbytes;
    size_t i = 0;
    while (i < n && (const char *)by_src[i]->src < b) i++;
    const char *at = b;
    size_t k = i;
    for (; k < n && (const char *)by_src[k]->src < e; k++) {
        if (by_src[k]->src != at || by_src[k]->tied_lm_head || t->ndim < 2 ||
            by_src[k]->q.cols != t->shape[t->ndim - 1])
            return 0;
        at += by_src[k]->src_bytes;
    }
    *first = i, *cnt = k - i;
    return k > i && at == e;
}

static void add_parts(struct otensor *o, size_t *n, const char *name, const struct roe_tensor *t,
                      const struct qentry *const *ent, size_t cnt) {
    const struct roe_mat *q = &ent[0]->q;
    const int nd = t ? t->ndim : 2;
    const int64_t rows_lead = t ? 1 : q->rows;
    const size_t nb = roe_dtype_row_blocks(q->dtype, (size_t)q->cols);
    size_t rows = 0;
    for (size_t i = 0; i < cnt; i++) rows += (size_t)ent[i]->q.rows;
    for (int p = PART_BLOCKS; p <= PART_MINS; p++) {
        if (p == PART_MINS && !q->mins) continue;
        struct otensor *x = &o[(*n)++];
        memset(x, 0, sizeof *x);
        snprintf(x->name, sizeof x->name, "%s%s", name, p == PART_BLOCKS ? "_blocks" : p == PART_SCALES ? "_scales" : "_mins");
        x->part = (enum part)p;
        x->ent = ent, x->n_ent = cnt;
        x->ndim = nd + (p == PART_BLOCKS);
        for (int d = 0; d < nd - 1; d++) x->shape[d] = t ? t->shape[d] : rows_lead;
        x->shape[nd - 1] = (int64_t)nb;
        if (p == PART_BLOCKS) x->shape[nd] = q->dtype == ROE_DTYPE_Q8 ? 32 : 16;
        x->dtype = p != PART_BLOCKS ? ROE_DTYPE_F16 : q->dtype == ROE_DTYPE_Q8 ? ROE_DTYPE_I8 : ROE_DTYPE_U8;
        x->bytes = p == PART_BLOCKS ? rows * roe_dtype_row_bytes(q->dtype, (size_t)q->cols) : rows * nb * 2;
    }
}

/* Offsets: the blocks first (whole 64-byte rows: each stays 64-byte aligned), then tensors of
 * 4-byte and wider elements, then 2-byte, then 1-byte ones, so every tensor is aligned to its
 * element size with no gap between tensors (safetensors allows none). */
static uint64_t place(struct otensor *o, size_t n) {
    uint64_t off = 0;
    for (int cls = 0; cls < 4; cls++)
        for (size_t i = 0; i < n; i++) {
            const size_t es = o[i].part == PART_BLOCKS ? 0 : roe_dtype_size(o[i].dtype);
            const int c = o[i].part == PART_BLOCKS ? 0 : es >= 4 ? 1 : es == 2 ? 2 : 3;
            if (c != cls) continue;
            o[i].off = off;
            off += o[i].bytes;
        }
    return off;
}

static char *header_json(const struct otensor *o, size_t n, roe_weights w, const char *src) {
    cJSON *root = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(root, "__metadata__");
    cJSON_AddStringToObject(meta, "format", "pt");
    cJSON_AddStringToObject(meta, "roe.weights", roe_weights_name(w));
    cJSON_AddStringToObject(meta, "roe.source", src);
    for (size_t i = 0; i < n; i++) {
        cJSON *e = cJSON_AddObjectToObject(root, o[i].name), *sh = cJSON_AddArrayToObject(e, "shape");
        cJSON *of = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddStringToObject(e, "dtype", roe_dtype_name(o[i].dtype));
        for (int d = 0; d < o[i].ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)o[i].shape[d]));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)o[i].off));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(o[i].off + o[i].bytes)));
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static int write_part(FILE *f, const struct otensor *x) {
    if (x->part == PART_RAW) return fwrite(x->src->data, 1, x->bytes, f) == x->bytes;
    for (size_t i = 0; i < x->n_ent; i++) {
        const struct roe_mat *q = &x->ent[i]->q;
        const size_t nb = roe_dtype_row_blocks(q->dtype, (size_t)q->cols);
        const void *p = x->part == PART_BLOCKS ? q->data : x->part == PART_SCALES ? (const void *)q->scales : (const void *)q->mins;
        const size_t bytes = x->part == PART_BLOCKS ? (size_t)q->rows * roe_dtype_row_bytes(q->dtype, (size_t)q->cols)
                                                    : (size_t)q->rows * nb * 2;
        if (fwrite(p, 1, bytes, f) != bytes) return 0;
    }
    return 1;
}

static roe_status write_file(const char *path, struct otensor *o, size_t n, roe_weights w, const char *src) {
    place(o, n);
    char *hdr = header_json(o, n, w, src);
    if (!hdr) return roe_fail(ROE_ERR_NOMEM, "out of memory for the header of %s", path);
    const size_t hl = strlen(hdr), padded = (8 + hl + 63) / 64 * 64 - 8; /* the data 64-byte aligned */
    FILE *f = fopen(path, "wb");
    if (!f) {
        cJSON_free(hdr);
        return roe_fail(ROE_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    }
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    int ok = fwrite(len, 1, 8, f) == 8 && fwrite(hdr, 1, hl, f) == hl;
    for (size_t i = hl; ok && i < padded; i++) ok = fputc(' ', f) != EOF;
    cJSON_free(hdr);
    for (int cls = 0; ok && cls < 4; cls++) /* in offset order: place()'s classes */
        for (size_t i = 0; ok && i < n; i++) {
            const size_t es = o[i].part == PART_BLOCKS ? 0 : roe_dtype_size(o[i].dtype);
            if ((o[i].part == PART_BLOCKS ? 0 : es >= 4 ? 1 : es == 2 ? 2 : 3) == cls) ok = write_part(f, &o[i]);
        }
    if (fclose(f) != 0) ok = 0;
    return ok ? ROE_OK : roe_fail(ROE_ERR_IO, "writing %s failed: %s", path, strerror(errno));
}

static roe_status copy_file(const char *from, const char *to) {
    char *buf = NULL;
    size_t len = 0;
    ROE_TRY(roe_file_read_all(from, (size_t)1 << 30, &buf, &len));
    FILE *f = fopen(to, "wb");
    int ok = f && fwrite(buf, 1, len, f) == len;
    if (f && fclose(f) != 0) ok = 0;
    roe_free(buf);
    return ok ? ROE_OK : roe_fail(ROE_ERR_IO, "cannot write %s: %s", to, strerror(errno));
}

/* Every regular file of the model directory but its safetensors (config, tokenizer...). */
static roe_status copy_others(const char *dir, const char *out) {
    DIR *d = opendir(dir);
    if (!d) return roe_fail(ROE_ERR_IO, "cannot list %s: %s", dir, strerror(errno));
    roe_status st = ROE_OK;
    for (struct dirent *e; st == ROE_OK && (e = readdir(d));) {
        const size_t l = strlen(e->d_name);
        char from[4096], to[4096];
        snprintf(from, sizeof from, "%s/%s", dir, e->d_name);
        snprintf(to, sizeof to, "%s/%s", out, e->d_name);
        if (!roe_is_file(from) || (l > 12 && strcmp(e->d_name + l - 12, ".safetensors") == 0) ||
            strcmp(e->d_name, "model.safetensors.index.json") == 0)
            continue;
        st = copy_file(from, to);
    }
    closedir(d);
    return st;
}

roe_status roe_model_save(const struct roe_model *m, roe_weights w, const char *out) {
    if (!m->store) return roe_fail(ROE_ERR_INVALID_ARG, "a model without a checkpoint cannot be saved");
    if (m->cfg.fp8) /* its scales and quantization_config would be copied beside the new blocks */
        return roe_fail(ROE_ERR_UNSUPPORTED, "'%s' is an FP8 checkpoint: roe quantize does not save it (run it as "
                        "stored, or requantize at load with --weights q8/q4)", m->dir);
    if (mkdir(out, 0755) != 0 && errno != EEXIST) return roe_fail(ROE_ERR_IO, "cannot create %s: %s", out, strerror(errno));
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    if (roe_is_file(path)) return roe_fail(ROE_ERR_INVALID_ARG, "%s exists: give an empty or new directory", path);
    const size_t nq = m->quant ? m->quant->n : 0, nt = roe_store_count(m->store);
    const struct qentry **by_src = roe_calloc(nq + 1, sizeof *by_src);
    struct otensor *o = roe_calloc(3 * (nt + 1), sizeof *o);
    roe_status st = ROE_OK;
    if (!by_src || !o) {
        st = roe_fail(ROE_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < nq; i++) by_src[i] = &m->quant->e[i];
    qsort(by_src, nq, sizeof *by_src, cmp_src);
    size_t n = 0;
    for (size_t i = 0; i < nt; i++) {
        const struct roe_tensor *t = roe_store_at(m->store, i);
        size_t first, cnt;
        if (tiling(by_src, nq, t, &first, &cnt)) {
            add_parts(o, &n, t->name, t, by_src + first, cnt);
            continue;
        }
        struct otensor *x = &o[n++];
        snprintf(x->name, sizeof x->name, "%s", t->name);
        x->dtype = t->dtype, x->ndim = t->ndim, x->bytes = t->nbytes, x->part = PART_RAW, x->src = t;
        memcpy(x->shape, t->shape, sizeof x->shape);
    }
    for (size_t i = 0; i < nq; i++) /* a tied LM head, quantized from the embedding: its own tensor */
        if (by_src[i]->tied_lm_head) add_parts(o, &n, "lm_head.weight", NULL, by_src + i, 1);
    ROE_CHECK(write_file(path, o, n, w, m->dir));
    ROE_CHECK(copy_others(m->dir, out));
fail:
out:
    roe_free(by_src);
    roe_free(o);
    return st;
}
