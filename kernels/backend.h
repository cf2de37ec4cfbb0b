/*
 * backend.h — the compute backend seam: what the engine asks of a device.
 *
 * A backend is a struct of function pointers (struct roe_backend_ops) behind a handle,
 * the way ggml separates ggml-backend.h from its implementations. The CPU backend lives
 * in kernels/cpu/, the CUDA one in kernels/cuda/. Kernels know tensors and shapes; they
 * know nothing of ranks, requests or file formats.
 *
 * Numerics contract (DESIGN.md "Numerics"): weights are read in their stored dtype and
 * widened to fp32; all arithmetic is fp32 with fp32 accumulation; and every op is
 * batch-invariant: row r's result depends only on row r's inputs, never on n or on
 * which other rows share the call, nor on the number of threads.
 *
 * Buffers. Activations, the KV cache and weights live in *backend memory*: allocated with
 * ops->alloc, filled with ops->upload / ops->mat_upload, read back with ops->download. For
 * the CPU backend that is host memory (alloc = an aligned malloc, upload/download =
 * memcpy, mat_upload = the host view itself: be->host_memory is 1), so the engine skips
 * the copies and the CPU path is what it was. For the CUDA backend it is device memory
 * and ops are queued on the backend's stream, in order: the host learns about a failure
 * (a sticky CUDA error) at the next ops->sync or ops->download, which return a status.
 *
 * Pointers to activations, caches and weights (struct roe_mat::data of a matrix given to
 * an op) are backend memory. Small index lists — ids, positions, row indices, block
 * tables (struct roe_kv_pages), gate weights, and the arrays inside struct roe_attn_args other
 * than q, k_self, v_self, the caches and out — are HOST arrays that the op reads (and uploads) before it returns, so
 * the caller may reuse them right after the call.
 *
 * Compute ops cannot fail (their inputs were validated at load time); they allocate
 * nothing.
 */
#ifndef ROE_BACKEND_H
#define ROE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "base/dtype.h"
#include "base/status.h"

/* A weight matrix [rows, cols], row-major: rows = output features, cols = input features
 * (Hugging Face Linear layout, y = x W^T). A vector is rows = 1. */
struct roe_mat {
    roe_dtype dtype;  /* F32, F16, BF16, F8_E4M3 (tile_scale), or a block-quantized Q8 / Q4 (base/dtype.h) */
    const void *data; /* rows * cols elements (block dtypes: rows x roe_dtype_row_bytes); not owned */
    int rows;
    int cols;
    /* Block dtypes only (NULL otherwise), not owned: [rows, roe_dtype_row_blocks] fp16 per-block
     * scales d, and (Q4) offsets m. A new block format (FP8 with block scales, MXFP4) puts its
     * per-block parameters here too and adds one widen/dot kernel (kernels/cpu/matmul_q.c). */
    const uint16_t *scales;
    const uint16_t *mins;
    /* F8_E4M3 only (NULL otherwise), not owned: the fp32 scale (weight_scale_inv) of each
     * ROE_FP8_TILE x ROE_FP8_TILE tile, [ceil((tile_row0 + rows) / 128), ceil(cols / 128)];
     * w[r][c] = e4m3 x tile_scale[(tile_row0 + r) / 128][c / 128]. tile_row0 (< 128) is where a
     * view of some rows starts within its first tile (MLA's per-head rows of kv_b_proj). */
    const float *tile_scale;
    int tile_row0;
    const uint8_t *e8m0; /* MXFP4 only: [rows, cols / 32] block exponents (scale 2^(e - 127)) */
};

/* Attention of n rows, each against the clean history of its own sequence plus its own
 * current K/V (the RoE clean-cache rule: ROE.md). */
/* The paged KV cache as the attention ops read it (runtime/kv_cache.h, docs/KV.md): history
 * position p of row r is at element offset roe_kv_page_off(pages, r, p, width) from the cache's
 * pointer (which the caller has moved to its layer's first row), rows of `width` elements of
 * pages.dtype. */
struct roe_kv_pages {
    roe_dtype dtype;      /* the cache's elements: F32, BF16 or F8_E4M3 (scale 1.0; widened to fp32
                             where read) */
    const int32_t *table; /* host [n_rows, stride]: row r's i-th block of block_size positions */
    int stride;           /* >= ceil(max hist_end / block_size) */
    int block_size;
    int64_t block_elems;  /* floats from one block to the next */
};

/* The widest vector an attention op reads from a bf16 cache at once: a head (attention) or a
 * whole [latent | rope key] (MLA). */
enum { ROE_KV_MAX_WIDE = 4096 };

static inline int64_t roe_kv_page_off(const struct roe_kv_pages *pg, int r, int pos, int width) {
    return (int64_t)pg->table[(size_t)r * (size_t)pg->stride + (size_t)(pos / pg->block_size)] * pg->block_elems +
           (int64_t)(pos % pg->block_size) * width;
}

struct roe_attn_args {
    int n_rows;
    int n_heads;
    int n_kv_heads;
    int head_dim;
    float scale;                /* usually 1/sqrt(head_dim) */
    const float *q;             /* [n_rows, n_heads*head_dim] */
    const float *k_self;        /* [n_rows, n_kv_heads*head_dim] the row's own current key */
    const float *v_self;        /* [n_rows, n_kv_heads*head_dim] */
    const void *k_cache;        /* backend: the paged cache's keys, from this layer's first row */
    const void *v_cache;        /* the same, values */
    struct roe_kv_pages pages;  /* where each row's history positions are in them */
    const int *hist_begin;      /* host [n_rows] first history position attended */
    const int *hist_end;        /* host [n_rows] one past the last (= the row's own position) */
    const struct roe_mat *sinks; /* [1, n_heads] one sink logit per head that joins each softmax's
                                    denominator (gpt-oss), or NULL */
    float *out;                 /* [n_rows, n_heads*head_dim] */
};

/* Multi-head latent attention with the up-projections absorbed (DeepSeek-V2/V3; runtime/mla.c):
 * every head of a row attends the same per-position vectors kv_j = [c_j | kr_j] (the latent, of
 * `latent` floats, and the roped key, of `rope_dim`), from its sequence's clean history
 * [hist_begin, hist_end) and then the row's own kv_self:
 *   s_j = scale * (q_lat . c_j + q_rope . kr_j),  p = softmax(s),  out = sum_j p_j c_j
 * (q_lat = W_uk^T q_nope and out is later multiplied by W_uv: the caller absorbs them). */
struct roe_mla_args {
    int n_rows;
    int n_heads;
    int latent;                  /* kv_lora_rank */
    int rope_dim;                /* qk_rope_head_dim */
    float scale;
    const float *q_lat;          /* [n_rows, n_heads, latent] */
    const float *q_rope;         /* row r, head h: rope_dim floats at q_rope + (r * n_heads + h) * q_rope_stride */
    int q_rope_stride;
    const float *kv_self;        /* [n_rows, latent + rope_dim] */
    const void *kv_cache;        /* backend: the paged cache [.., latent + rope_dim] from this layer's first row */
    struct roe_kv_pages pages;   /* where each row's history positions are in it */
    const int *hist_begin;       /* host [n_rows] */
    const int *hist_end;         /* host [n_rows] one past the last (= the row's own position) */
    float *out;                  /* [n_rows, n_heads, latent] */
};

/* One small matrix per head (MLA's absorbed up-projections): for row r < n_rows, head h < n_heads,
 *   y[(r * n_heads + h) * y_stride + o] = sum_i x[(r * n_heads + h) * x_stride + i] * W[h * head_rows + row0 + o][i]
 * for o < out, i < w.cols: head h's matrix is `out` rows of w, from row h * head_rows + row0.
 * `scratch` is backend memory of n_rows * (w.cols + out) floats (the CPU gathers a head's rows
 * there to reuse its matmul); outputs must not overlap inputs. Batch-invariant as matmul is. */
struct roe_matmul_heads_args {
    int n_rows;
    int n_heads;
    const float *x;
    int x_stride;
    const struct roe_mat *w;     /* [n_heads * head_rows, cols] (rows: the whole matrix) */
    int head_rows;
    int row0;
    int out;
    float *y;
    int y_stride;
    float *scratch;
};

/* RoPE (transformers' "rotate half"): of each head, the `dim` dimensions from `offset` on rotate
 * (partial rotary when dim < head_dim; the rest pass through), dimension j < dim/2 paired with
 * j + dim/2 at angle pos * inv_freq[j], with cos and sin multiplied by `scale` (YaRN's attention
 * factor, else 1). `interleave` (DeepSeek-V3's rope_interleave): the pair of angle j is the input's
 * (2j, 2j + 1), and its two results are written to j and j + dim/2, as transformers'
 * apply_rotary_pos_emb_interleave writes them. inv_freq is backend memory [dim/2] (runtime/rope.h
 * computes it once). */
struct roe_rope_args {
    int dim;
    float scale;
    const float *inv_freq;
    int offset;    /* first rotated dimension of a head (MLA: the rope part follows the nope part) */
    int interleave;
};

typedef enum roe_cpu_isa {
    ROE_CPU_ISA_AUTO = 0,
    ROE_CPU_ISA_PORTABLE,
    ROE_CPU_ISA_AVX2,
    ROE_CPU_ISA_AVX512,
} roe_cpu_isa;

/* $ROE_CPU_ISA (base/env.h) as a roe_cpu_isa: AUTO when unset. */
roe_cpu_isa roe_env_cpu_isa(void);

/* The bf16-weight matmul of the AVX-512 path (kernels/cpu/matmul_bf16.c): AMX tiles,
 * AVX512-BF16 dot products, or the fp32 FMA kernels (OFF). AUTO: $ROE_CPU_BF16, else the best
 * the CPU (and, for AMX, the kernel's permission) allows. A path the host lacks falls back. */
typedef enum roe_cpu_bf16 {
    ROE_CPU_BF16_AUTO = 0,
    ROE_CPU_BF16_OFF,
    ROE_CPU_BF16_DPBF16,
    ROE_CPU_BF16_AMX,
} roe_cpu_bf16;

/* $ROE_CPU_BF16 (base/env.h) as a roe_cpu_bf16: AUTO when unset. */
roe_cpu_bf16 roe_env_cpu_bf16(void);

/* The batched rows of Q8/Q4 weights (kernels/cpu/matmul_q_amx.c): AMX-INT8 tiles, or the
 * AVX-512 VNNI tiles (OFF). The same bits either way. AUTO: $ROE_CPU_INT8, else AMX where the
 * CPU and the kernel's permission allow it. */
typedef enum roe_cpu_int8 {
    ROE_CPU_INT8_AUTO = 0,
    ROE_CPU_INT8_OFF,
    ROE_CPU_INT8_AMX,
} roe_cpu_int8;

/* $ROE_CPU_INT8 (base/env.h) as a roe_cpu_int8: AUTO when unset. */
roe_cpu_int8 roe_env_cpu_int8(void);

struct roe_backend_opts {
    int n_threads;     /* 0: OpenMP default */
    int max_cols;      /* the widest input dimension any matmul will see */
    int max_ctx;       /* the longest attention span (history + 1) */
    roe_cpu_isa isa;   /* CPU only: force a kernel path (tests compare them) */
    roe_cpu_bf16 bf16; /* CPU only: force the bf16 matmul's path (AUTO: $ROE_CPU_BF16 or the best) */
    roe_cpu_int8 int8; /* CPU only: force the Q8/Q4 batched rows' path (AUTO: $ROE_CPU_INT8 or the best) */
    int device;        /* CUDA only: the device ordinal (the launcher picks local rank % devices) */
    int max_rows;      /* CUDA only: the most rows any op will see (sizes the staging buffers) */
    size_t max_kv_table; /* CUDA only: the most block-table entries an attention op will see
                            (struct roe_kv_pages: rows x stride) */
};

/* Which backend an engine runs on. */
typedef enum roe_backend_kind {
    ROE_BACKEND_CPU = 0,
    ROE_BACKEND_CUDA,
    /* Tests: the CPU kernels behind the device-memory contract (host_memory = 0, weights
     * copied by mat_upload, every upload/download/copy a real copy), so the engine's device
     * path (staging, index lists, gather/combine) runs, and must give the CPU's results bit
     * for bit, on a machine without a GPU. */
    ROE_BACKEND_CPU_STAGED,
} roe_backend_kind;

typedef struct roe_backend roe_backend;

struct roe_backend_ops {
    /* y[n, w.rows] = x[n, w.cols] . w^T */
    void (*matmul)(roe_backend *be, const float *x, int n, const struct roe_mat *w, float *y);
    /* y[n, dim] = w * x / sqrt(mean(x^2) + eps), dim = w.cols; y may alias x */
    void (*rmsnorm)(roe_backend *be, const float *x, int n, const struct roe_mat *w, float eps,
                    float *y);
    /* RoPE (struct roe_rope_args) in place on x[n, n_heads, head_dim] at host positions pos[n] */
    void (*rope)(roe_backend *be, float *x, int n, int n_heads, int head_dim, const int *pos,
                 const struct roe_rope_args *r);
    void (*attention)(roe_backend *be, const struct roe_attn_args *a);
    /* out[i] = silu(gate[i]) * up[i], i < count; out may alias gate */
    void (*swiglu)(roe_backend *be, const float *gate, const float *up, size_t count, float *out);
    /* gpt-oss's clamped SwiGLU over interleaved rows gu[n, 2 inter] (gate at 2i, up at 2i + 1):
     * g = min(gate, limit), u = clamp(up, -limit, limit), out[n, inter] = (u + 1) * g * sigmoid(alpha g).
     * out must not alias gu. */
    void (*swiglu_oai)(roe_backend *be, const float *gu, int n, int inter, float alpha, float limit,
                       float *out);
    /* y[r, :] += b for every row r < n, rows of b.cols (a bias vector [1, cols]) */
    void (*add_bias)(roe_backend *be, float *y, int n, const struct roe_mat *b);
    /* out[n, table.cols] = table[ids[i]] widened to fp32; ids is a host array */
    void (*embed)(roe_backend *be, const struct roe_mat *table, const int32_t *ids, int n,
                  float *out);
    /* Like matmul, but the activations are never rounded below fp32 (CUDA: its own kernel
     * instead of cuBLAS on bf16 inputs). For small matrices whose outputs take discrete
     * decisions: the router. On the CPU it is matmul. */
    void (*matmul_f32)(roe_backend *be, const float *x, int n, const struct roe_mat *w, float *y);
    /* y[i] += x[i], i < count */
    void (*add)(roe_backend *be, float *y, const float *x, size_t count);
    /* x[i] = min(max(x[i], -lim), lim) */
    void (*clamp)(roe_backend *be, float *x, size_t count, float lim);
    /* dst row (dst_idx ? dst_idx[i] : i) = src row (src_idx ? src_idx[i] : i) for i < n,
     * rows of `width` floats; the index arrays are host arrays; rows must not overlap. */
    void (*copy_rows)(roe_backend *be, float *dst, const int64_t *dst_idx, const float *src,
                      const int64_t *src_idx, int n, int width);
    /* The KV-cache append: row dst_idx[i] of dst (rows of `width` elements of dtype F32 or BF16,
     * rounded to nearest even) = src row src_idx[i], i < n; host index arrays. */
    void (*kv_store)(roe_backend *be, void *dst, roe_dtype dtype, const int64_t *dst_idx, const float *src,
                     const int64_t *src_idx, int n, int width);
    /* The MoE weighted sum: for each row j < n, acc = sum over s < top_k, in that order, of
     * y[y_row[j*top_k+s]] * w[j*top_k+s] (acc starting at 0), then h[j] += acc. y_row and w
     * are host arrays [n * top_k]. */
    void (*moe_combine)(roe_backend *be, float *h, int n, int width, int top_k, const float *y,
                        const int *y_row, const float *w);
    /* MLA's latent attention (struct roe_mla_args) */
    void (*mla_attention)(roe_backend *be, const struct roe_mla_args *a);
    /* a matmul per head (struct roe_matmul_heads_args) */
    void (*matmul_heads)(roe_backend *be, const struct roe_matmul_heads_args *a);

    /* Memory (see "Buffers" above). alloc returns NULL when out of memory. */
    void *(*alloc)(roe_backend *be, size_t bytes);
    void (*free)(roe_backend *be, void *p);
    void (*upload)(roe_backend *be, void *dst, const void *src, size_t bytes);
    /* waits for the queued work, then copies; a failure of that work is the status */
    roe_status (*download)(roe_backend *be, void *dst, const void *src, size_t bytes);
    void (*copy)(roe_backend *be, void *dst, const void *src, size_t bytes);
    roe_status (*sync)(roe_backend *be);
    /* A backend-resident copy of a host matrix (*dev), freed with mat_free. CPU: *dev =
     * *host (no copy, nothing to free). CUDA: a bf16 copy (F32/F16 rounded to nearest even). */
    roe_status (*mat_upload)(roe_backend *be, const struct roe_mat *host, struct roe_mat *dev);
    /* A backend-resident [rows, cols] bf16 matrix of random values, uniform in
     * [-scale, scale] from (seed, element index): for benchmarks of models whose weights are
     * not on disk. CPU: ROE_ERR_UNSUPPORTED. */
    roe_status (*mat_random)(roe_backend *be, int rows, int cols, float scale, uint64_t seed,
                             struct roe_mat *dev);
    void (*mat_free)(roe_backend *be, struct roe_mat *dev);
    void (*destroy)(roe_backend *be);
};

struct roe_backend {
    const struct roe_backend_ops *ops;
    const char *name; /* "cpu-avx512", "cuda", ... */
    int host_memory;  /* 1: backend memory is host memory (the CPU backend) */
    void *impl;       /* owned by the backend */
};

roe_status roe_backend_cpu_create(const struct roe_backend_opts *opts, roe_backend **out);
roe_status roe_backend_cpu_staged_create(const struct roe_backend_opts *opts, roe_backend **out);
/* The CUDA backend (kernels/cuda/). In a build without CUDA, or on a machine without a
 * device, ROE_ERR_UNSUPPORTED with a message saying which ("no CUDA device:
 * cudaGetDeviceCount returned ..."). */
roe_status roe_backend_cuda_create(const struct roe_backend_opts *opts, roe_backend **out);
/* Devices visible to this process: >= 0, or -1 with a message when the CUDA runtime
 * fails (or this build has no CUDA: then the message says so). */
int roe_backend_cuda_device_count(void);
roe_status roe_backend_create(roe_backend_kind kind, const struct roe_backend_opts *opts,
                              roe_backend **out);
const char *roe_backend_kind_name(roe_backend_kind kind);
/* Memory bandwidth of a backend: a copy of `bytes` within backend memory, once to warm up,
 * then `reps` times: (read + written bytes) / second / 1e9. <= 0 on failure (message set). */
double roe_backend_copy_gbs(roe_backend *be, size_t bytes, int reps);
void roe_backend_free(roe_backend *be);

#endif
