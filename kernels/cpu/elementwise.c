/* elementwise.c — RMSNorm, RoPE, SwiGLU and the embedding gather on the CPU. */
#include <assert.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "cpu_impl.h"
#include "kernels/moe_sum.h"
#include "kernels/quant.h"

static void rmsnorm_row(const float *xr, const struct roe_mat *w, float eps, float *yr) {
    const int dim = w->cols;
    double ss = 0.0; /* double: the mean of squares is the one long reduction here */
    for (int i = 0; i < dim; i++) ss += (double)xr[i] * xr[i];
    const float inv = 1.0f / sqrtf((float)(ss / dim) + eps);
    for (int i = 0; i < dim; i++) yr[i] = roe_mat_get(w, (size_t)i) * (xr[i] * inv);
}

/* Elementwise work of at least this many values runs on the backend's threads (a row's or an
 * element's arithmetic does not depend on which thread does it); below, a fork costs more. */
enum { PAR_MIN = 1 << 16 };

void roe_cpu_rmsnorm(roe_backend *be, const float *x, int n, const struct roe_mat *w, float eps,
                     float *y) {
    const int dim = w->cols;
    if (n > 1 && (size_t)n * (size_t)dim >= PAR_MIN) {
#pragma omp parallel for schedule(static) num_threads(roe_cpu_of(be)->n_threads)
        for (int r = 0; r < n; r++) rmsnorm_row(x + (size_t)r * dim, w, eps, y + (size_t)r * dim);
    } else
        for (int r = 0; r < n; r++) rmsnorm_row(x + (size_t)r * dim, w, eps, y + (size_t)r * dim);
}

/* HF rotate_half over r->dim dimensions of each head from r->offset: j pairs with j + dim/2, at
 * angle pos * inv_freq[j] (runtime/rope.c: fp32 as transformers computes it); cos and sin scaled
 * as transformers scales them (x 1 is exact, so unscaled RoPE is unchanged). */
static void rope_half(float *x, int n, int n_heads, int head_dim, const int *pos, const struct roe_rope_args *rp) {
    const int half = rp->dim / 2;
    for (int r = 0; r < n; r++) {
        for (int j = 0; j < half; j++) {
            const float ang = (float)pos[r] * rp->inv_freq[j];
            const float c = cosf(ang) * rp->scale, s = sinf(ang) * rp->scale;
            for (int h = 0; h < n_heads; h++) {
                float *v = x + ((size_t)r * n_heads + h) * head_dim + rp->offset;
                const float a = v[j], b = v[j + half];
                v[j] = a * c - b * s;
                v[j + half] = b * c + a * s;
            }
        }
    }
}

/* apply_rotary_pos_emb_interleave: the pair (2j, 2j + 1) rotates by angle j and lands at
 * (j, j + dim/2). Each head's rotary part is read into `in` first (the writes overlap the reads);
 * a row's cos and sin are computed once for all its heads. */
enum { ROPE_MAX_INTERLEAVED = 1024 }; /* runtime/config.c caps qk_rope_head_dim at this */
static void rope_interleaved(float *x, int n, int n_heads, int head_dim, const int *pos,
                             const struct roe_rope_args *rp) {
    const int half = rp->dim / 2;
    float in[ROPE_MAX_INTERLEAVED], cs[ROPE_MAX_INTERLEAVED / 2], sn[ROPE_MAX_INTERLEAVED / 2];
    for (int r = 0; r < n; r++) {
        for (int j = 0; j < half; j++) {
            const float ang = (float)pos[r] * rp->inv_freq[j];
            cs[j] = cosf(ang) * rp->scale;
            sn[j] = sinf(ang) * rp->scale;
        }
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)r * n_heads + h) * head_dim + rp->offset;
            memcpy(in, v, (size_t)rp->dim * sizeof *v);
            for (int j = 0; j < half; j++) {
                const float a = in[2 * j], b = in[2 * j + 1];
                v[j] = a * cs[j] - b * sn[j];
                v[j + half] = b * cs[j] + a * sn[j];
            }
        }
    }
}

void roe_cpu_rope(roe_backend *be, float *x, int n, int n_heads, int head_dim, const int *pos,
                  const struct roe_rope_args *rp) {
    assert(rp->offset + rp->dim <= head_dim && (!rp->interleave || rp->dim <= ROPE_MAX_INTERLEAVED));
    if (rp->interleave) rope_interleaved(x, n, n_heads, head_dim, pos, rp);
    else rope_half(x, n, n_heads, head_dim, pos, rp);
}

void roe_cpu_swiglu(roe_backend *be, const float *gate, const float *up, size_t count, float *out) {
    if (count >= PAR_MIN) {
#pragma omp parallel for schedule(static) num_threads(roe_cpu_of(be)->n_threads)
        for (size_t i = 0; i < count; i++) out[i] = (gate[i] / (1.0f + expf(-gate[i]))) * up[i];
    } else
        for (size_t i = 0; i < count; i++) out[i] = (gate[i] / (1.0f + expf(-gate[i]))) * up[i];
}

/* gpt-oss (GptOssExperts._apply_gate): gate = gu[..., ::2].clamp(max=limit), up =
 * gu[..., 1::2].clamp(-limit, limit), (up + 1) * gate * sigmoid(gate * alpha). */
void roe_cpu_swiglu_oai(roe_backend *be, const float *gu, int n, int inter, float alpha, float limit,
                        float *out) {
    for (int r = 0; r < n; r++) {
        const float *in = gu + (size_t)r * 2 * inter;
        float *o = out + (size_t)r * inter;
        for (int i = 0; i < inter; i++) {
            const float g = fminf(in[2 * i], limit), u = fminf(fmaxf(in[2 * i + 1], -limit), limit);
            o[i] = (u + 1.0f) * (g / (1.0f + expf(-(g * alpha))));
        }
    }
}

void roe_cpu_add_bias(roe_backend *be, float *y, int n, const struct roe_mat *b) {
    const int cols = b->cols;
    for (int r = 0; r < n; r++)
        for (int i = 0; i < cols; i++) y[(size_t)r * cols + i] += roe_mat_get(b, (size_t)i);
}

void roe_cpu_embed(roe_backend *be, const struct roe_mat *table, const int32_t *ids, int n,
                   float *out) {
    struct roe_cpu *cpu = roe_cpu_of(be);
    const int cols = table->cols;
    const size_t es = roe_dtype_size(table->dtype);
    if (roe_dtype_is_block(table->dtype)) { /* a quantized table (a tied LM head): its values */
        const size_t rb = roe_dtype_row_bytes(table->dtype, (size_t)cols), nb = roe_dtype_row_blocks(table->dtype, (size_t)cols);
        for (int r = 0; r < n; r++)
            roe_dequantize_row(table->dtype, (const char *)table->data + (size_t)ids[r] * rb,
                               table->scales + (size_t)ids[r] * nb, table->mins ? table->mins + (size_t)ids[r] * nb : NULL,
                               cols, out + (size_t)r * cols);
        return;
    }
    for (int r = 0; r < n; r++) {
        const char *src = (const char *)table->data + (size_t)ids[r] * cols * es;
        cpu->widen(src, table->dtype, cols, out + (size_t)r * cols);
    }
}

void roe_cpu_add(roe_backend *be, float *y, const float *x, size_t count) {
    for (size_t i = 0; i < count; i++) y[i] += x[i];
}

void roe_cpu_clamp(roe_backend *be, float *x, size_t count, float lim) {
    for (size_t i = 0; i < count; i++) x[i] = fminf(fmaxf(x[i], -lim), lim);
}

void roe_cpu_copy_rows(roe_backend *be, float *dst, const int64_t *dst_idx, const float *src,
                       const int64_t *src_idx, int n, int width) {
    for (int i = 0; i < n; i++)
        memcpy(dst + (size_t)(dst_idx ? dst_idx[i] : i) * width,
               src + (size_t)(src_idx ? src_idx[i] : i) * width, (size_t)width * sizeof(float));
}

void roe_cpu_kv_store(roe_backend *be, void *dst, roe_dtype dtype, const int64_t *dst_idx, const float *src,
                      const int64_t *src_idx, int n, int width) {
    if (dtype == ROE_DTYPE_F32) {
        roe_cpu_copy_rows(be, (float *)dst, dst_idx, src, src_idx, n, width);
        return;
    }
    for (int i = 0; i < n; i++) {
        const size_t at = (size_t)(dst_idx ? dst_idx[i] : i) * width;
        const float *x = src + (size_t)(src_idx ? src_idx[i] : i) * width;
        if (dtype == ROE_DTYPE_F8_E4M3) { /* a scale of 1.0 (docs/KV.md) */
            uint8_t *d = (uint8_t *)dst + at;
            for (int c = 0; c < width; c++) d[c] = roe_f32_to_e4m3(x[c]);
            continue;
        }
        uint16_t *d = (uint16_t *)dst + at;
        for (int c = 0; c < width; c++) d[c] = roe_f32_to_bf16(x[c]);
    }
}

/* kernels/moe_sum.h: the same arithmetic as the engine's weighted sum over pair pointers. */
void roe_cpu_moe_combine(roe_backend *be, float *h, int n, int width, int top_k, const float *y,
                         const int *y_row, const float *w) {
    const float *yp[top_k]; /* top_k <= n_experts: a few hundred pointers at most */
    for (int j = 0; j < n; j++) {
        for (int s = 0; s < top_k; s++) yp[s] = y + (size_t)y_row[(size_t)j * top_k + s] * width;
        roe_moe_sum_row(h + (size_t)j * width, width, top_k, yp, w + (size_t)j * top_k);
    }
}
