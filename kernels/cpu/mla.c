/*
 * mla.c — multi-head latent attention (struct roe_mla_args) and the per-head matmuls that absorb
 * MLA's up-projections (struct roe_matmul_heads_args), on the CPU.
 *
 * Attention. Every head of a row attends the same cached vectors kv_j = [c_j | kr_j]; a work unit
 * is (row, block of ROE_CPU_MLA_HEADS heads), so each position's vector is read once per block,
 * not once per head:
 *   1. s[h][j] = scale * (q_lat_h . c_j + q_rope_h . kr_j)   j over the history, then the row
 *   2. per head: p = softmax(s) (fp32, max-subtracted)
 *   3. out_h = sum_j p_j c_j                                    j ascending
 * Each (row, head)'s arithmetic is fixed whatever the block, the rows beside it or the threads,
 * so results are batch- and thread-invariant, as kernels/cpu/attention.c's.
 *
 * Per-head matmuls: head h's input rows are gathered into the caller's scratch (one row: read in
 * place), multiplied by its slice of the weight through the backend's matmul, and scattered to
 * their strided places: the matmul's numerics, hence its batch invariance.
 */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "cpu_impl.h"

/* Position j of row r's span: its cached vector (a bf16 one widened into wide), or (j == len) the
 * row's own. */
static inline const float *span_vec(const struct roe_mla_args *a, int r, int j, int begin, int len, float *wide) {
    const int W = a->latent + a->rope_dim;
    return j < len ? roe_cpu_kv_vec(a->kv_cache, &a->pages, r, begin + j, W, 0, W, wide) : a->kv_self + (size_t)r * W;
}

/* Heads [h0, h0 + nb) of row r; s is [ROE_CPU_MLA_HEADS, stride] scores. */
static void attend_block(const struct roe_mla_args *a, int r, int h0, int nb, float *s, int stride) {
    const int R = a->latent, nh = a->n_heads;
    const int begin = a->hist_begin[r], len = a->hist_end[r] - begin;
    float wide[ROE_CPU_KV_WIDE];
    for (int j = 0; j <= len; j++) {
        const float *kv = span_vec(a, r, j, begin, len, wide);
        for (int b = 0; b < nb; b++) {
            const size_t rh = (size_t)r * nh + (size_t)(h0 + b);
            const float lat = roe_cpu_dot_f32(a->q_lat + rh * R, kv, R);
            const float *qr = a->q_rope + rh * a->q_rope_stride;
            const float rot = roe_cpu_dot_f32(qr, kv + R, a->rope_dim);
            s[(size_t)b * stride + j] = (lat + rot) * a->scale;
        }
    }
    for (int b = 0; b < nb; b++) {
        float *sb = s + (size_t)b * stride, mx = -INFINITY, sum = 0.0f;
        for (int j = 0; j <= len; j++) mx = sb[j] > mx ? sb[j] : mx;
        for (int j = 0; j <= len; j++) {
            sb[j] = expf(sb[j] - mx);
            sum += sb[j];
        }
        const float inv = 1.0f / sum;
        for (int j = 0; j <= len; j++) sb[j] *= inv;
        memset(a->out + ((size_t)r * nh + (size_t)(h0 + b)) * R, 0, (size_t)R * sizeof(float));
    }
    for (int j = 0; j <= len; j++) {
        const float *c = span_vec(a, r, j, begin, len, wide);
        for (int b = 0; b < nb; b++) {
            float *o = a->out + ((size_t)r * nh + (size_t)(h0 + b)) * R;
            const float pj = s[(size_t)b * stride + j];
            for (int d = 0; d < R; d++) o[d] += pj * c[d];
        }
    }
}

void roe_cpu_mla_attention(roe_backend *be, const struct roe_mla_args *a) {
    struct roe_cpu *cpu = roe_cpu_of(be);
    const int blocks = (a->n_heads + ROE_CPU_MLA_HEADS - 1) / ROE_CPU_MLA_HEADS;
    const int units = a->n_rows * blocks, stride = cpu->max_ctx;
    const size_t per_thread = (size_t)ROE_CPU_MLA_HEADS * (size_t)stride;
    size_t work = 0; /* multiply-adds, to decide whether a team pays off */
    for (int r = 0; r < a->n_rows; r++)
        work += (size_t)(a->hist_end[r] - a->hist_begin[r] + 1) * a->n_heads * (2 * a->latent + a->rope_dim);
    if (units > 1 && work >= ((size_t)1 << 16)) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(cpu->n_threads)
        for (int u = 0; u < units; u++) {
            const int r = u / blocks, h0 = (u % blocks) * ROE_CPU_MLA_HEADS;
            const int nb = a->n_heads - h0 < ROE_CPU_MLA_HEADS ? a->n_heads - h0 : ROE_CPU_MLA_HEADS;
            attend_block(a, r, h0, nb, cpu->ascratch + (size_t)omp_get_thread_num() * per_thread, stride);
        }
    } else
        for (int u = 0; u < units; u++) {
            const int r = u / blocks, h0 = (u % blocks) * ROE_CPU_MLA_HEADS;
            const int nb = a->n_heads - h0 < ROE_CPU_MLA_HEADS ? a->n_heads - h0 : ROE_CPU_MLA_HEADS;
            attend_block(a, r, h0, nb, cpu->ascratch, stride);
        }
}

void roe_cpu_matmul_heads(roe_backend *be, const struct roe_matmul_heads_args *a) {
    const int n = a->n_rows, nh = a->n_heads, cols = a->w->cols, out = a->out;
    const size_t es = roe_dtype_size(a->w->dtype);
    float *xs = a->scratch, *ys = a->scratch + (size_t)n * cols;
    for (int h = 0; h < nh; h++) {
        const size_t row = (size_t)h * a->head_rows + (size_t)a->row0;
        struct roe_mat wh = {.dtype = a->w->dtype, .data = (const char *)a->w->data + row * cols * es, .rows = out,
                             .cols = cols};
        if (a->w->tile_scale) { /* FP8: the view starts at its row's tile of scales */
            const size_t t = (size_t)a->w->tile_row0 + row, nt = ((size_t)cols + ROE_FP8_TILE - 1) / ROE_FP8_TILE;
            wh.tile_scale = a->w->tile_scale + t / ROE_FP8_TILE * nt;
            wh.tile_row0 = (int)(t % ROE_FP8_TILE);
        }
        if (n == 1) { /* the row's input and output are contiguous already */
            be->ops->matmul(be, a->x + (size_t)h * a->x_stride, 1, &wh, a->y + (size_t)h * a->y_stride);
            continue;
        }
        for (int r = 0; r < n; r++)
            memcpy(xs + (size_t)r * cols, a->x + ((size_t)r * nh + h) * a->x_stride, (size_t)cols * sizeof(float));
        be->ops->matmul(be, xs, n, &wh, ys);
        for (int r = 0; r < n; r++)
            memcpy(a->y + ((size_t)r * nh + h) * a->y_stride, ys + (size_t)r * out, (size_t)out * sizeof(float));
    }
}
