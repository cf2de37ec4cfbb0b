/*
 * cpu_impl.h — private state of the CPU backend and the kernel entry points shared by
 * its files (one op family per file: matmul.c, attention.c, mla.c, elementwise.c).
 */
#ifndef ROE_CPU_IMPL_H
#define ROE_CPU_IMPL_H

#include "kernels/backend.h"

/* Widens `cols` elements of one weight row to fp32 (exact for BF16/F16/F32). */
typedef void (*roe_cpu_widen_fn)(const void *src, roe_dtype dtype, int cols, float *dst);
/* out[k] = dot(x, w[k]) for k < 4, each a fixed sequence of fp32 FMAs (batch-invariant). */
typedef void (*roe_cpu_dot4_fn)(const float *x, const float *const w[4], int cols, float out[4]);

/* Heads of one MLA attention work unit (kernels/cpu/mla.c): they share each position's reads. */
enum { ROE_CPU_MLA_HEADS = 8 };
/* the widest cached vector a kernel widens from bf16 at once (backend.h ROE_KV_MAX_WIDE) */
enum { ROE_CPU_KV_WIDE = ROE_KV_MAX_WIDE };

struct roe_cpu {
    int n_threads;
    int max_cols;
    int max_ctx;
    roe_cpu_isa isa;
    roe_cpu_widen_fn widen;
    roe_cpu_dot4_fn dot4;
    int vnni;         /* AVX-512 VNNI present: the block dtypes' AVX-512 path uses vpdpbusd */
    int pf_nta;       /* not Intel: the FP8/MXFP4 decode rows prefetch W non-temporally (on AMD 1.4x
                         the rate from memory) and stream one W row at a time; on Intel, where
                         prefetchnta read 0.5-0.8x as fast, they prefetch into L1/L2 and FP8 reads
                         four quarters of W side by side (docs/QUANTIZATION.md "FP8", "MXFP4") */
    int q_rows;       /* x rows a block-dtype matmul quantizes at once (more: W is read again) */
    float *wscratch;  /* [n_threads, 4, max_cols] widened weight rows */
    void *qscratch;   /* [q_rows] x rows quantized for a block dtype (matmul_q.c's struct qx) */
    roe_cpu_bf16 bf16;          /* bf16 W's matmul path (OFF: matmul.c's fp32 kernels; else matmul_bf16.c) */
    uint16_t *bf16_xscratch;    /* [2, ROE_CPU_BF16_MCHUNK, kpad(max_cols)] x rows split into bf16 hi/lo */
    uint16_t *bf16_wscratch;    /* per thread: [16, kpad(max_cols)] a short W block + 2 x [16, 32] k tails */
    int q_amx;        /* Q8/Q4 batched rows on AMX-INT8 tiles (matmul_q_amx.c; the same bits as without) */
    int8_t *qamx_xscratch; /* [q_rows rounded up to 16, row_blocks(max_cols), 32] x rows as A tiles */
    void *qamx_wscratch;   /* per thread: roe_cpu_qamx_thread_bytes (B tiles of 16 W rows, scales, sums) */
    float *ascratch;  /* attention scores: [n_threads, max_ctx] for attention.c, [n_threads,
                         ROE_CPU_MLA_HEADS, max_ctx] for mla.c (allocated for the larger) */
};

static inline struct roe_cpu *roe_cpu_of(roe_backend *be) { return (struct roe_cpu *)be->impl; }

/* Picks widen/dot4 for an ISA (AUTO: the best the CPU supports); returns the ISA used. */
roe_cpu_isa roe_cpu_select_isa(roe_cpu_isa want, roe_cpu_widen_fn *widen, roe_cpu_dot4_fn *dot4);
const char *roe_cpu_isa_name(roe_cpu_isa isa);

/* x rows the bf16 paths split at once (more: the next chunk, W read again). 128: the packed hi/lo
 * rows of a 2,048-column x (1 MB) stay in L2 beside a W tile row; 256 (2 MB) ran 1.4x slower. */
enum { ROE_CPU_BF16_MCHUNK = 128 };
/* matmul_bf16.c: the host's bf16 multipliers, and y = x W^T for a bf16 W on the path cpu->bf16. */
int roe_cpu_has_avx512bf16(void);
int roe_cpu_amx_tiles(unsigned edx_bits); /* CPUID.(7,0):EDX has edx_bits, and Linux's XTILEDATA permission */
int roe_cpu_amx_usable(void); /* AMX-BF16 usable (asked once) */
size_t roe_cpu_bf16_xscratch_bytes(int max_cols);
size_t roe_cpu_bf16_wscratch_bytes(int max_cols); /* per thread, the two k tails included */
void roe_cpu_matmul_bf16(struct roe_cpu *cpu, const float *x, int n, const struct roe_mat *w, float *y);

/* y = x W^T for a block-quantized W (Q8, Q4): matmul_q.c, batched rows on AMX in matmul_q_amx.c. */
void roe_cpu_matmul_q(struct roe_cpu *cpu, const float *x, int n, const struct roe_mat *w, float *y);
size_t roe_cpu_qscratch_bytes(int max_cols, int rows);
int roe_cpu_amx_int8_usable(void); /* CPUID AMX-TILE and AMX-INT8, and Linux's permission */
size_t roe_cpu_qamx_thread_bytes(int max_cols);
size_t roe_cpu_qamx_x_bytes(int max_cols, int rows);
/* y = x W^T for a block-scaled FP8 W (F8_E4M3 with tile_scale): matmul_fp8.c. */
void roe_cpu_matmul_fp8(struct roe_cpu *cpu, const float *x, int n, const struct roe_mat *w, float *y);
/* y = x W^T for an MXFP4 W (fp32 activations, the values decoded in the kernel): matmul_mxfp4.c. */
void roe_cpu_matmul_mxfp4(struct roe_cpu *cpu, const float *x, int n, const struct roe_mat *w, float *y);

void roe_cpu_matmul(roe_backend *be, const float *x, int n, const struct roe_mat *w, float *y);
void roe_cpu_attention(roe_backend *be, const struct roe_attn_args *a);
void roe_cpu_mla_attention(roe_backend *be, const struct roe_mla_args *a);
void roe_cpu_matmul_heads(roe_backend *be, const struct roe_matmul_heads_args *a);
void roe_cpu_rmsnorm(roe_backend *be, const float *x, int n, const struct roe_mat *w, float eps,
                     float *y);
void roe_cpu_rope(roe_backend *be, float *x, int n, int n_heads, int head_dim, const int *pos,
                  const struct roe_rope_args *r);
void roe_cpu_swiglu(roe_backend *be, const float *gate, const float *up, size_t count, float *out);
void roe_cpu_swiglu_oai(roe_backend *be, const float *gu, int n, int inter, float alpha, float limit,
                        float *out);
void roe_cpu_add_bias(roe_backend *be, float *y, int n, const struct roe_mat *b);
void roe_cpu_embed(roe_backend *be, const struct roe_mat *table, const int32_t *ids, int n,
                   float *out);
void roe_cpu_add(roe_backend *be, float *y, const float *x, size_t count);
void roe_cpu_clamp(roe_backend *be, float *x, size_t count, float lim);
void roe_cpu_kv_store(roe_backend *be, void *dst, roe_dtype dtype, const int64_t *dst_idx, const float *src,
                      const int64_t *src_idx, int n, int width);
void roe_cpu_copy_rows(roe_backend *be, float *dst, const int64_t *dst_idx, const float *src,
                       const int64_t *src_idx, int n, int width);
void roe_cpu_moe_combine(roe_backend *be, float *h, int n, int width, int top_k, const float *y,
                         const int *y_row, const float *w);

/* fp32 dot product of the attention kernels (attention.c, mla.c): 8 partial sums in a fixed
 * order, so a score depends on its two vectors only (batch- and thread-invariant). */
static inline float roe_cpu_dot_f32(const float *a, const float *b, int n) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
    for (int j = 0; i + j < n; j++) acc[j] += a[i + j] * b[i + j];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* roe_cpu_dot_f32 of a against the widened bf16 b: the same arithmetic (widening is exact), so
 * the same bits as widening b first, without the copy. */
static inline float roe_cpu_dot_bf16(const float *a, const uint16_t *b, int n) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * roe_bf16_to_f32(b[i + j]);
    for (int j = 0; i + j < n; j++) acc[j] += a[i + j] * roe_bf16_to_f32(b[i + j]);
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* An e4m3 byte's value (base/dtype.h roe_e4m3_to_f32, the NaN codes as 480 too) from its bits,
 * inline: the fp8 KV cache's reads. */
static inline float roe_cpu_e4m3(uint8_t b) {
    const uint32_t e = (b >> 3) & 15u, m = b & 7u;
    float f;
    if (e == 0) {
        f = (float)m * 0x1p-9f;
        return b & 0x80u ? -f : f;
    }
    const uint32_t u = ((uint32_t)(b & 0x80u) << 24) | ((e + 120u) << 23) | (m << 20);
    memcpy(&f, &u, sizeof f);
    return f;
}

/* The same for e4m3 bytes (an fp8 KV cache, scale 1.0), widened exactly. */
static inline float roe_cpu_dot_e4m3(const float *a, const uint8_t *b, int n) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * roe_cpu_e4m3(b[i + j]);
    for (int j = 0; i + j < n; j++) acc[j] += a[i + j] * roe_cpu_e4m3(b[i + j]);
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* Row r's history position pos of a paged cache (kernels/backend.h struct roe_kv_pages), plus
 * col, as fp32: in place for an F32 cache, else widened into buf[n] (exact). */
static inline const float *roe_cpu_kv_vec(const void *cache, const struct roe_kv_pages *pg, int r, int pos,
                                          int width, int col, int n, float *buf) {
    const int64_t off = roe_kv_page_off(pg, r, pos, width) + col;
    if (pg->dtype == ROE_DTYPE_F32) return (const float *)cache + off;
    if (pg->dtype == ROE_DTYPE_F8_E4M3) {
        const uint8_t *b = (const uint8_t *)cache + off;
        for (int i = 0; i < n; i++) buf[i] = roe_cpu_e4m3(b[i]);
        return buf;
    }
    const uint16_t *h = (const uint16_t *)cache + off;
    for (int i = 0; i < n; i++) buf[i] = roe_bf16_to_f32(h[i]);
    return buf;
}

/* Scalar widening of one element (used by the portable paths and by small vectors). */
static inline float roe_mat_get(const struct roe_mat *m, size_t i) {
    switch (m->dtype) {
    case ROE_DTYPE_BF16: return roe_bf16_to_f32(((const uint16_t *)m->data)[i]);
    case ROE_DTYPE_F16: return roe_f16_to_f32(((const uint16_t *)m->data)[i]);
    default: return ((const float *)m->data)[i];
    }
}

#endif
