/*
 * test_block_dot.c — the CUDA FP8 / MXFP4 matmul's arithmetic, emulated on the host (runs with or
 * without a GPU). kernels/cuda/matmul_block.cu runs kernels/block_dot.h's lane functions on 16
 * lanes per output and reduces them with __shfl_xor 8, 4, 2, 1; here the same functions run over
 * 16 emulated lanes with the same xor tree and the kernel's index arithmetic (W row
 * h * head_rows + row0 + o, x and y at (r * n_heads + h) * stride), and must give the CPU backend's
 * matmul and matmul_heads bit for bit:
 *  - the widenings (every e4m3 byte, every e2m1 code, every e8m0 exponent) against their definitions;
 *  - FP8: odd shapes, partial tiles, views starting inside a tile (tile_row0), batches 1..9;
 *  - FP8 matmul_heads (MLA's kv_b_proj: heads crossing tile boundaries);
 *  - MXFP4: odd row counts, 32..4096 columns, extreme exponents, batches 1..9.
 * What this cannot check is the device itself (nvcc's code, the launch, the upload):
 * tests/cuda/test_cuda_ops.c does, against the same CPU bits, when a GPU is lent.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kernels/backend.h"
#include "kernels/block_dot.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t urand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}
static float frand(void) { return (float)(urand() * (1.0 / 4294967296.0)) * 2.0f - 1.0f; }

/* The kernel's launch, one output at a time: the 16 lanes' values, then __shfl_xor's tree (each
 * step, lane i adds lane i ^ off's value to its own, all lanes at once). */
struct emu_args {
    const float *x;
    int x_stride, n_rows, n_heads, head_rows, row0, out;
    float *y;
    int y_stride;
};
static void emulate(const struct roe_mat *w, const struct emu_args *a) {
    for (int r = 0; r < a->n_rows; r++)
        for (int h = 0; h < a->n_heads; h++)
            for (int o = 0; o < a->out; o++) {
                const size_t rh = (size_t)r * a->n_heads + h, wrow = (size_t)h * a->head_rows + a->row0 + o;
                const float *x = a->x + rh * a->x_stride;
                float v[16], t[16];
                for (int l = 0; l < 16; l++)
                    v[l] = w->dtype == ROE_DTYPE_MXFP4
                               ? roe_bd_mxfp4_lane(w->data, w->e8m0, wrow, w->cols, x, l)
                               : roe_bd_fp8_lane(w->data, w->tile_scale, w->tile_row0, wrow, w->cols, x, l);
                for (int off = 8; off > 0; off >>= 1) {
                    for (int l = 0; l < 16; l++) t[l] = v[l] + v[l ^ off];
                    memcpy(v, t, sizeof v);
                }
                a->y[rh * a->y_stride + o] = v[0];
            }
}

static roe_backend *cpu_be(int max_cols) {
    struct roe_backend_opts o = {.n_threads = 1, .max_cols = max_cols, .max_ctx = 16, .max_rows = 16};
    roe_backend *be = NULL;
    return roe_backend_cpu_create(&o, &be) == ROE_OK ? be : NULL;
}

static int bits_equal(const float *a, const float *b, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0) {
            TEST__FAIL("%s: output %zu is %.9g on the emulated device, %.9g on the CPU", what, i, a[i], b[i]);
            return 0;
        }
    return 1;
}

TEST(widenings) {
    for (int b = 0; b < 256; b++) {
        const float dev = roe_bd_e4m3((uint8_t)b) * 256.0f, host = roe_e4m3_to_f32((uint8_t)b);
        if (memcmp(&dev, &host, sizeof dev) != 0) TEST__FAIL("e4m3 0x%02x: %.9g, the CPU's %.9g", b, dev, host);
    }
    ASSERT_TRUE(roe_bd_e4m3(0x7f) * 256.0f == 480.0f && roe_bd_e4m3(0x01) == ldexpf(1.0f, -17));
    static const int lut[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
    for (unsigned c = 0; c < 16; c++) {
        if (roe_bd_e2m1x2(c) != (float)lut[c]) TEST__FAIL("e2m1 code %u: %g, want %d", c, roe_bd_e2m1x2(c), lut[c]);
        if (lut[c] == 0 && signbit(roe_bd_e2m1x2(c))) TEST__FAIL("e2m1 code %u is -0 (the CPU's integer table gives +0)", c);
    }
    for (int e = 0; e < 255; e++)
        if (roe_bd_mx_scale((uint8_t)e) != ldexpf(1.0f, e - 128)) TEST__FAIL("e8m0 %d: %g", e, roe_bd_mx_scale((uint8_t)e));
    ASSERT_TRUE(isnan(roe_bd_mx_scale(255)));
}

/* Random e4m3 bytes (no NaN; subnormals every 11th column) and signed tile scales. */
static struct roe_mat fp8_make(int rows, int cols, int row0) {
    const int nt = (cols + 127) / 128, tr = (row0 + rows + 127) / 128;
    uint8_t *q = malloc((size_t)rows * cols);
    float *s = malloc((size_t)tr * nt * sizeof(float));
    for (int i = 0; i < tr * nt; i++) s[i] = ldexpf(0.5f + 0.5f * fabsf(frand()), -8 - (int)(urand() % 5)) * (i % 5 == 3 ? -1.0f : 1.0f);
    for (size_t i = 0; i < (size_t)rows * cols; i++) {
        uint8_t b = (uint8_t)urand();
        if ((b & 0x7f) == 0x7f) b ^= 1;
        q[i] = i % 11 == 0 ? b & 0x87 : b;
    }
    return (struct roe_mat){.dtype = ROE_DTYPE_F8_E4M3, .data = q, .rows = rows, .cols = cols, .tile_scale = s,
                            .tile_row0 = row0};
}

/* Random MXFP4 codes with exponents around 127, and the extremes 0, 1, 2 and 254 now and then. */
static struct roe_mat mx_make(int rows, int cols) {
    const size_t nb = (size_t)rows * (cols / 32);
    uint8_t *q = malloc(nb * 16), *e = malloc(nb);
    for (size_t i = 0; i < nb * 16; i++) q[i] = (uint8_t)urand();
    static const uint8_t ext[4] = {0, 1, 2, 254};
    for (size_t i = 0; i < nb; i++) e[i] = i % 7 == 5 ? ext[urand() % 4] : (uint8_t)(120 + urand() % 12);
    return (struct roe_mat){.dtype = ROE_DTYPE_MXFP4, .data = q, .rows = rows, .cols = cols, .e8m0 = e};
}

static void mat_free(struct roe_mat *m) {
    free((void *)m->data), free((void *)m->tile_scale), free((void *)m->e8m0);
}

/* y = x W^T for batches 9 down to 1 on the CPU and emulated, bit for bit. */
static void check_matmul(const struct roe_mat *w, const char *what) {
    const int rows = w->rows, cols = w->cols, N = 9;
    float *x = malloc((size_t)N * cols * sizeof(float)), *y = malloc((size_t)N * rows * sizeof(float));
    float *g = malloc((size_t)N * rows * sizeof(float));
    for (int i = 0; i < N * cols; i++) x[i] = frand() * (i % 13 == 0 ? 8.0f : 1.0f);
    roe_backend *be = cpu_be(cols);
    ASSERT_TRUE(be != NULL);
    char name[96];
    for (int n = N; n >= 1; n--) {
        be->ops->matmul(be, x, n, w, y);
        const struct emu_args a = {x, cols, n, 1, 0, 0, rows, g, rows};
        emulate(w, &a);
        snprintf(name, sizeof name, "%s [%d, %d] tile_row0 %d, batch %d", what, rows, cols, w->tile_row0, n);
        if (!bits_equal(g, y, (size_t)n * rows, name)) break;
    }
    roe_backend_free(be);
    free(x), free(y), free(g);
}

TEST(fp8_matmul) {
    const int shapes[][3] = {{37, 300, 0}, {130, 129, 0}, {5, 1000, 0}, {9, 17, 0}, {260, 256, 0},
                             {4, 7, 0},    {70, 515, 100}, {33, 640, 127}, {1, 130, 5}, {16, 16, 0}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        struct roe_mat w = fp8_make(shapes[s][0], shapes[s][1], shapes[s][2]);
        check_matmul(&w, "fp8");
        mat_free(&w);
    }
}

/* Heads of 40 rows, 24 read from row 16 on, cross the 128-row tiles (MLA's kv_b_proj for W_uv). */
TEST(fp8_matmul_heads) {
    const int nh = 7, head_rows = 40, row0 = 16, out = 24, cols = 200, n = 3;
    struct roe_mat w = fp8_make(nh * head_rows, cols, 0);
    float *x = malloc((size_t)n * nh * cols * sizeof(float)), *y = malloc((size_t)n * nh * out * sizeof(float));
    float *g = malloc((size_t)n * nh * out * sizeof(float)), *scr = malloc((size_t)n * (cols + out) * sizeof(float));
    for (int i = 0; i < n * nh * cols; i++) x[i] = frand();
    roe_backend *be = cpu_be(cols);
    ASSERT_TRUE(be != NULL);
    const struct roe_matmul_heads_args a = {.n_rows = n, .n_heads = nh, .x = x, .x_stride = cols, .w = &w,
                                            .head_rows = head_rows, .row0 = row0, .out = out, .y = y,
                                            .y_stride = out, .scratch = scr};
    be->ops->matmul_heads(be, &a);
    const struct emu_args e = {x, cols, n, nh, head_rows, row0, out, g, out};
    emulate(&w, &e);
    bits_equal(g, y, (size_t)n * nh * out, "fp8 matmul_heads");
    roe_backend_free(be);
    free(x), free(y), free(g), free(scr);
    mat_free(&w);
}

TEST(mxfp4_matmul) {
    const int shapes[][2] = {{1, 32}, {3, 64}, {17, 96}, {130, 2880}, {5, 4096}, {33, 160}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        struct roe_mat w = mx_make(shapes[s][0], shapes[s][1]);
        check_matmul(&w, "mxfp4");
        mat_free(&w);
    }
}

int main(void) {
    RUN(widenings);
    RUN(fp8_matmul);
    RUN(fp8_matmul_heads);
    RUN(mxfp4_matmul);
    return test_summary();
}
