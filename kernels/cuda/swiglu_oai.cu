/* swiglu_oai.cu — gpt-oss's clamped SwiGLU over interleaved gate/up rows gu[n, 2 inter]:
 * g = min(gate, limit), u = clamp(up, -limit, limit), out[n, inter] = (u + 1) * g * sigmoid(alpha g)
 * (device expf: tolerance 1e-5 normalised against the CPU op). out must not alias gu. */
#include "cuda_impl.h"

__global__ void roe_k_swiglu_oai(const float *__restrict__ gu, size_t count, int inter, float alpha,
                                 float limit, float *__restrict__ out) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x) {
        const size_t r = i / (size_t)inter, c = i % (size_t)inter;
        const float *in = gu + r * 2 * (size_t)inter + 2 * c;
        const float g = fminf(in[0], limit), u = fminf(fmaxf(in[1], -limit), limit);
        out[i] = (u + 1.0f) * (g / (1.0f + expf(-(g * alpha))));
    }
}

void roe_cuda_swiglu_oai(roe_backend *be, const float *gu, int n, int inter, float alpha, float limit,
                         float *out) {
    struct roe_cuda *cu = roe_cuda_of(be);
    const size_t count = (size_t)n * (size_t)inter;
    if (!count) return;
    unsigned blocks = roe_cuda_blocks(count, 256);
    if (blocks > 65535u) blocks = 65535u;
    roe_k_swiglu_oai<<<blocks, 256, 0, cu->stream>>>(gu, count, inter, alpha, limit, out);
    ROE_CUDA_LAUNCHED(cu, "swiglu_oai");
}
