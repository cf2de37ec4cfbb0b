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
 * Buffers: for the CPU backend every float pointer is host memory. All ops are
 * synchronous and cannot fail (their inputs were validated at load time); they
 * allocate nothing.
 */
#ifndef ROE_BACKEND_H
#define ROE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/safetensors.h" /* roe_dtype */
#include "runtime/status.h"

/* A weight matrix [rows, cols], row-major: rows = output features, cols = input features
 * (Hugging Face Linear layout, y = x W^T). A vector is rows = 1. */
struct roe_mat {
    roe_dtype dtype;  /* F32, F16 or BF16 */
    const void *data; /* rows * cols elements; not owned */
    int rows;
    int cols;
};

/* Attention of n rows, each against the clean history of its own sequence plus its own
 * current K/V (the RoE clean-cache rule: ROE.md). */
struct roe_attn_args {
    int n_rows;
    int n_heads;
    int n_kv_heads;
    int head_dim;
    float scale;                /* usually 1/sqrt(head_dim) */
    const float *q;             /* [n_rows, n_heads*head_dim] */
    const float *k_self;        /* [n_rows, n_kv_heads*head_dim] the row's own current key */
    const float *v_self;        /* [n_rows, n_kv_heads*head_dim] */
    const float *const *k_hist; /* [n_rows] -> [positions, n_kv_heads*head_dim] cached keys */
    const float *const *v_hist; /* [n_rows] -> same layout, values */
    const int *hist_begin;      /* [n_rows] first history position attended */
    const int *hist_end;        /* [n_rows] one past the last (= the row's own position) */
    float *out;                 /* [n_rows, n_heads*head_dim] */
};

typedef enum roe_cpu_isa {
    ROE_CPU_ISA_AUTO = 0,
    ROE_CPU_ISA_PORTABLE,
    ROE_CPU_ISA_AVX2,
    ROE_CPU_ISA_AVX512,
} roe_cpu_isa;

struct roe_backend_opts {
    int n_threads;     /* 0: OpenMP default */
    int max_cols;      /* the widest input dimension any matmul will see */
    int max_ctx;       /* the longest attention span (history + 1) */
    roe_cpu_isa isa;   /* CPU only: force a kernel path (tests compare them) */
};

typedef struct roe_backend roe_backend;

struct roe_backend_ops {
    /* y[n, w.rows] = x[n, w.cols] . w^T */
    void (*matmul)(roe_backend *be, const float *x, int n, const struct roe_mat *w, float *y);
    /* y[n, dim] = w * x / sqrt(mean(x^2) + eps), dim = w.cols; y may alias x */
    void (*rmsnorm)(roe_backend *be, const float *x, int n, const struct roe_mat *w, float eps,
                    float *y);
    /* HF "rotate half" RoPE in place on x[n, n_heads, head_dim] at positions pos[n] */
    void (*rope)(roe_backend *be, float *x, int n, int n_heads, int head_dim, const int *pos,
                 float theta);
    void (*attention)(roe_backend *be, const struct roe_attn_args *a);
    /* out[i] = silu(gate[i]) * up[i], i < count; out may alias gate */
    void (*swiglu)(roe_backend *be, const float *gate, const float *up, size_t count, float *out);
    /* out[n, table.cols] = table[ids[i]] widened to fp32 */
    void (*embed)(roe_backend *be, const struct roe_mat *table, const int32_t *ids, int n,
                  float *out);
    void (*destroy)(roe_backend *be);
};

struct roe_backend {
    const struct roe_backend_ops *ops;
    const char *name; /* "cpu-avx512", "cuda", ... */
    void *impl;       /* owned by the backend */
};

roe_status roe_backend_cpu_create(const struct roe_backend_opts *opts, roe_backend **out);
void roe_backend_free(roe_backend *be);

#endif
