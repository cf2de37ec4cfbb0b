/* argmax.cu — greedy sampling: out[r] = the first index of the largest value of x[r, V]
 * (the CPU sampler's rule: a later value must be strictly larger to win). One block per row. */
#include "cuda.h"
#include "cuda_impl.h"

enum { ROE_ARGMAX_THREADS = 256 };

__global__ void roe_k_argmax(const float *__restrict__ x, int vocab, int32_t *__restrict__ out) {
    __shared__ float bv[ROE_ARGMAX_THREADS];
    __shared__ int bi[ROE_ARGMAX_THREADS];
    const float *row = x + (size_t)blockIdx.x * vocab;
    float best = -INFINITY;
    int bidx = -1;
    for (int v = threadIdx.x; v < vocab; v += ROE_ARGMAX_THREADS)
        if (bidx < 0 || row[v] > best) {
            best = row[v];
            bidx = v;
        }
    bv[threadIdx.x] = best;
    bi[threadIdx.x] = bidx;
    __syncthreads();
    for (int half = ROE_ARGMAX_THREADS / 2; half > 0; half >>= 1) {
        if ((int)threadIdx.x < half) {
            const float ov = bv[threadIdx.x + half];
            const int oi = bi[threadIdx.x + half];
            if (oi >= 0 && (bi[threadIdx.x] < 0 || ov > bv[threadIdx.x] ||
                            (ov == bv[threadIdx.x] && oi < bi[threadIdx.x]))) {
                bv[threadIdx.x] = ov;
                bi[threadIdx.x] = oi;
            }
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = bi[0];
}

extern "C" void roe_cuda_argmax(roe_backend *be, const float *x, int n, int vocab, int32_t *out) {
    struct roe_cuda *cu = roe_cuda_of(be);
    if (n <= 0) return;
    roe_k_argmax<<<(unsigned)n, ROE_ARGMAX_THREADS, 0, cu->stream>>>(x, vocab, out);
    ROE_CUDA_LAUNCHED(cu, "argmax");
}
