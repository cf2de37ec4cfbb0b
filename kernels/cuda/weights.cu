/*
 * weights.cu — device-resident weight matrices: uploads (bf16 as is; F32/F16 rounded to
 * bf16, nearest even, on the host in chunks; FP8 and MXFP4 as the checkpoint stores them, data and
 * scales, for matmul_block.cu), random bf16 matrices generated on the device
 * (Philox keyed on (seed, element index): the same values whatever the launch shape), and
 * their release.
 */
#include <string.h>

#include "cuda_impl.h"

extern "C" {
#include "base/alloc.h"
#include "base/philox.h"
}

/* FP8 (e4m3 + fp32 tile scales) or MXFP4 (e2m1 + e8m0 exponents): the host's bytes and scales as
 * they are, in one allocation [data | pad to 256 | scales] so that mat_free's one cudaFree of
 * data releases both; the scales start 256-byte aligned (cudaMalloc's alignment), the data at
 * the allocation itself (the kernels load bytes and floats, nothing wider). FP8 keeps tile_row0
 * and its ceil((tile_row0 + rows) / 128) x ceil(cols / 128) scales. */
static roe_status upload_native(struct roe_cuda *cu, const struct roe_mat *host, struct roe_mat *dev) {
    const int fp8 = host->dtype == ROE_DTYPE_F8_E4M3;
    if (fp8 ? !host->tile_scale : !host->e8m0 || host->cols % ROE_QBLOCK != 0)
        return roe_fail(ROE_ERR_INVALID_ARG, "cuda: %s weights [%d, %d] without %s", roe_dtype_name(host->dtype),
                        host->rows, host->cols, fp8 ? "tile_scale (weight_scale_inv)" : "e8m0 scales of 32 columns");
    const size_t bytes = (size_t)host->rows * roe_dtype_row_bytes(host->dtype, (size_t)host->cols);
    const size_t tiles = (size_t)((host->tile_row0 + host->rows + ROE_FP8_TILE - 1) / ROE_FP8_TILE) *
                         (size_t)((host->cols + ROE_FP8_TILE - 1) / ROE_FP8_TILE);
    const size_t sbytes = fp8 ? tiles * sizeof(float) : (size_t)host->rows * (size_t)(host->cols / ROE_QBLOCK);
    const size_t off = (bytes + 255) / 256 * 256, total = off + sbytes;
    char *d = NULL;
    cudaError_t e = cudaMalloc((void **)&d, total ? total : 1);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return roe_fail(ROE_ERR_NOMEM, "%s: no device memory for %zu bytes of %s weights", cu->name, total,
                        roe_dtype_name(host->dtype));
    }
    e = cudaMemcpyAsync(d, host->data, bytes, cudaMemcpyHostToDevice, cu->stream);
    if (e == cudaSuccess)
        e = cudaMemcpyAsync(d + off, fp8 ? (const void *)host->tile_scale : (const void *)host->e8m0, sbytes,
                            cudaMemcpyHostToDevice, cu->stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(cu->stream);
    if (e != cudaSuccess) {
        cudaFree(d);
        return roe_fail(ROE_ERR_INTERNAL, "%s: uploading %zu bytes of %s weights and %s: %s", cu->name, bytes,
                        roe_dtype_name(host->dtype), fp8 ? "tile scales" : "e8m0 scales", cudaGetErrorString(e));
    }
    *dev = *host;
    dev->data = d;
    dev->scales = dev->mins = NULL;
    dev->tile_scale = fp8 ? (const float *)(d + off) : NULL;
    dev->e8m0 = fp8 ? NULL : (const uint8_t *)(d + off);
    return ROE_OK;
}

roe_status roe_cuda_mat_upload(roe_backend *be, const struct roe_mat *host, struct roe_mat *dev) {
    struct roe_cuda *cu = roe_cuda_of(be);
    memset(dev, 0, sizeof *dev);
    if (host->dtype == ROE_DTYPE_F8_E4M3 || host->dtype == ROE_DTYPE_MXFP4) return upload_native(cu, host, dev);
    const size_t n = (size_t)host->rows * host->cols;
    if (host->dtype != ROE_DTYPE_BF16 && host->dtype != ROE_DTYPE_F32 && host->dtype != ROE_DTYPE_F16)
        return roe_fail(ROE_ERR_UNSUPPORTED, "cuda: weights of dtype %s", roe_dtype_name(host->dtype));
    void *d = NULL;
    cudaError_t e = cudaMalloc(&d, (n ? n : 1) * sizeof(uint16_t));
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return roe_fail(ROE_ERR_NOMEM, "%s: no device memory for %zu bytes of weights", cu->name,
                        n * sizeof(uint16_t));
    }
    /* on the backend's stream: it is non-blocking, so a copy on the legacy default stream
     * would not be ordered before the kernels that read the weights. From pageable memory the
     * call returns once the bytes are staged, so tmp can be refilled at once. */
    if (host->dtype == ROE_DTYPE_BF16) {
        e = cudaMemcpyAsync(d, host->data, n * sizeof(uint16_t), cudaMemcpyHostToDevice, cu->stream);
    } else {
        const size_t chunk = (size_t)1 << 22;
        uint16_t *tmp = (uint16_t *)roe_malloc((n < chunk ? (n ? n : 1) : chunk) * sizeof(uint16_t));
        if (!tmp) {
            cudaFree(d);
            return roe_fail(ROE_ERR_NOMEM, "cuda: out of host memory converting weights to bf16");
        }
        for (size_t o = 0; o < n && e == cudaSuccess; o += chunk) {
            const size_t m = n - o < chunk ? n - o : chunk;
            for (size_t i = 0; i < m; i++)
                tmp[i] = roe_f32_to_bf16(host->dtype == ROE_DTYPE_F32
                                             ? ((const float *)host->data)[o + i]
                                             : roe_f16_to_f32(((const uint16_t *)host->data)[o + i]));
            e = cudaMemcpyAsync((uint16_t *)d + o, tmp, m * sizeof(uint16_t), cudaMemcpyHostToDevice, cu->stream);
        }
        roe_free(tmp);
    }
    if (e == cudaSuccess) e = cudaStreamSynchronize(cu->stream);
    if (e != cudaSuccess) {
        cudaFree(d);
        return roe_fail(ROE_ERR_INTERNAL, "%s: uploading %zu bytes of weights: %s", cu->name,
                        n * sizeof(uint16_t), cudaGetErrorString(e));
    }
    dev->dtype = ROE_DTYPE_BF16;
    dev->data = d;
    dev->rows = host->rows;
    dev->cols = host->cols;
    return ROE_OK;
}

__global__ void roe_k_random_bf16(__nv_bfloat16 *w, size_t n, float scale, uint32_t k0, uint32_t k1) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        struct roe_philox_out r = roe_philox4x32((uint32_t)i, (uint32_t)(i >> 32), 0x52414E44u, 0u, k0, k1);
        const float u = roe_u32_to_unit(r.v[0]);
        w[i] = __float2bfloat16_rn((2.0f * u - 1.0f) * scale);
    }
}

roe_status roe_cuda_mat_random(roe_backend *be, int rows, int cols, float scale, uint64_t seed,
                               struct roe_mat *dev) {
    struct roe_cuda *cu = roe_cuda_of(be);
    memset(dev, 0, sizeof *dev);
    const size_t n = (size_t)rows * cols;
    void *d = NULL;
    if (cudaMalloc(&d, (n ? n : 1) * sizeof(__nv_bfloat16)) != cudaSuccess) {
        (void)cudaGetLastError();
        return roe_fail(ROE_ERR_NOMEM, "%s: no device memory for a random [%d, %d] bf16 matrix", cu->name,
                        rows, cols);
    }
    unsigned blocks = roe_cuda_blocks(n ? n : 1, 256);
    if (blocks > 65535u) blocks = 65535u;
    roe_k_random_bf16<<<blocks, 256, 0, cu->stream>>>((__nv_bfloat16 *)d, n, scale, (uint32_t)seed,
                                                      (uint32_t)(seed >> 32));
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) {
        cudaFree(d);
        return roe_fail(ROE_ERR_INTERNAL, "%s: random weights: %s", cu->name, cudaGetErrorString(e));
    }
    dev->dtype = ROE_DTYPE_BF16;
    dev->data = d;
    dev->rows = rows;
    dev->cols = cols;
    return ROE_OK;
}

void roe_cuda_mat_free(roe_backend *be, struct roe_mat *dev) {
    if (dev->data) (void)cudaFree((void *)dev->data);
    memset(dev, 0, sizeof *dev);
}
