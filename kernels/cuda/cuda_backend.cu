/* cuda_backend.cu — the CUDA backend's vtable, memory, staging and device choice. */
#include <assert.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "cuda.h"
#include "cuda_impl.h"

extern "C" {
#include "base/alloc.h"
}

/* cuBLAS, loaded once per process (never unloaded: handles may outlive a backend's peers). */
static pthread_once_t cublas_once = PTHREAD_ONCE_INIT;
static struct roe_cublas_api cublas_fns;
static char cublas_error[512];

#define ROE_STR_(x) #x
#define ROE_STR(x) ROE_STR_(x)

static void load_cublas(void) {
    /* the soname of the toolkit we compiled against, then its directory (no rpath for dlopen) */
    const char *names[] = {"libcublas.so." ROE_STR(CUBLAS_VER_MAJOR),
#ifdef ROE_CUDA_LIB_DIR
                           ROE_CUDA_LIB_DIR "/libcublas.so." ROE_STR(CUBLAS_VER_MAJOR),
#endif
                           "libcublas.so"};
    void *lib = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !lib; i++) lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(cublas_error, sizeof cublas_error, "cannot load cuBLAS (%s): %s", names[0], dlerror());
        return;
    }
    struct roe_cublas_api f;
    f.create = (decltype(f.create))dlsym(lib, "cublasCreate_v2");
    f.destroy = (decltype(f.destroy))dlsym(lib, "cublasDestroy_v2");
    f.set_stream = (decltype(f.set_stream))dlsym(lib, "cublasSetStream_v2");
    f.set_math_mode = (decltype(f.set_math_mode))dlsym(lib, "cublasSetMathMode");
    f.gemm_ex = (decltype(f.gemm_ex))dlsym(lib, "cublasGemmEx");
    f.status_string = (decltype(f.status_string))dlsym(lib, "cublasGetStatusString");
    if (!f.create || !f.destroy || !f.set_stream || !f.set_math_mode || !f.gemm_ex || !f.status_string) {
        snprintf(cublas_error, sizeof cublas_error, "%s lacks a function roe needs (cublasGemmEx, ...)", names[0]);
        return;
    }
    cublas_fns = f;
}

/* The loaded API, or NULL with the reason recorded. */
static const struct roe_cublas_api *roe_cuda_load_cublas(void) {
    pthread_once(&cublas_once, load_cublas);
    if (!cublas_fns.gemm_ex) {
        roe_fail(ROE_ERR_UNSUPPORTED, "cuda backend: %s", cublas_error);
        return NULL;
    }
    return &cublas_fns;
}

void roe_cuda_note(struct roe_cuda *cu, cudaError_t e, const char *where) {
    if (e == cudaSuccess || cu->err != cudaSuccess || cu->blas_err != CUBLAS_STATUS_SUCCESS) return;
    cu->err = e;
    snprintf(cu->err_where, sizeof cu->err_where, "%s", where);
}

void roe_cuda_stage(struct roe_cuda *cu, int n, const void *const *ptrs, const size_t *bytes,
                    void **dev) {
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        off = (off + 15) & ~(size_t)15;
        assert(off + bytes[i] <= cu->stage_bytes);
        if (bytes[i]) memcpy(cu->hstage + off, ptrs[i], bytes[i]);
        dev[i] = cu->dstage + off;
        off += bytes[i];
    }
    if (off)
        roe_cuda_note(cu, cudaMemcpyAsync(cu->dstage, cu->hstage, off, cudaMemcpyHostToDevice, cu->stream),
                      "staging index arrays");
}

/* The first recorded failure as a status; clears nothing (the context is unusable after a
 * sticky error anyway). */
static roe_status cuda_status(struct roe_cuda *cu, const char *what) {
    if (cu->blas_err != CUBLAS_STATUS_SUCCESS)
        return roe_fail(ROE_ERR_INTERNAL, "%s: %s: cuBLAS: %s (%d)", cu->name, cu->err_where,
                        cu->blas_api.status_string(cu->blas_err), (int)cu->blas_err);
    if (cu->err != cudaSuccess)
        return roe_fail(ROE_ERR_INTERNAL, "%s: %s: %s (%s)", cu->name, cu->err_where,
                        cudaGetErrorString(cu->err), cudaGetErrorName(cu->err));
    (void)what;
    return ROE_OK;
}

static roe_status cuda_sync(roe_backend *be) {
    struct roe_cuda *cu = roe_cuda_of(be);
    roe_cuda_note(cu, cudaStreamSynchronize(cu->stream), "synchronising the stream");
    return cuda_status(cu, "sync");
}

static void *cuda_alloc(roe_backend *be, size_t bytes) {
    struct roe_cuda *cu = roe_cuda_of(be);
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) {
        (void)cudaGetLastError(); /* an allocation failure is not sticky: clear it */
        return NULL;
    }
    (void)cu;
    return p;
}

static void cuda_free(roe_backend *be, void *p) {
    if (p) (void)cudaFree(p); /* synchronises the device: allocation is start-up work */
}

static void cuda_upload(roe_backend *be, void *dst, const void *src, size_t bytes) {
    struct roe_cuda *cu = roe_cuda_of(be);
    if (bytes)
        roe_cuda_note(cu, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cu->stream), "upload");
}

static roe_status cuda_download(roe_backend *be, void *dst, const void *src, size_t bytes) {
    struct roe_cuda *cu = roe_cuda_of(be);
    if (bytes)
        roe_cuda_note(cu, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cu->stream), "download");
    return cuda_sync(be);
}

static void cuda_copy(roe_backend *be, void *dst, const void *src, size_t bytes) {
    struct roe_cuda *cu = roe_cuda_of(be);
    if (bytes)
        roe_cuda_note(cu, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cu->stream), "copy");
}

static void cuda_destroy(roe_backend *be) {
    struct roe_cuda *cu = roe_cuda_of(be);
    if (cu) {
        if (cu->stream) (void)cudaStreamSynchronize(cu->stream);
        if (cu->blas) cu->blas_api.destroy(cu->blas);
        if (cu->xb) cudaFree(cu->xb);
        if (cu->dstage) cudaFree(cu->dstage);
        if (cu->hstage) roe_free(cu->hstage);
        if (cu->stream) cudaStreamDestroy(cu->stream);
        roe_free(cu);
    }
    roe_free(be);
}

static const struct roe_backend_ops roe_cuda_ops = {
    /* .matmul = */ roe_cuda_matmul,
    /* .rmsnorm = */ roe_cuda_rmsnorm,
    /* .rope = */ roe_cuda_rope,
    /* .attention = */ roe_cuda_attention,
    /* .swiglu = */ roe_cuda_swiglu,
    /* .swiglu_oai = */ roe_cuda_swiglu_oai,
    /* .add_bias = */ roe_cuda_add_bias,
    /* .embed = */ roe_cuda_embed,
    /* .matmul_f32 = */ roe_cuda_matmul_f32,
    /* .add = */ roe_cuda_add,
    /* .clamp = */ roe_cuda_clamp,
    /* .copy_rows = */ roe_cuda_copy_rows,
    /* .kv_store = */ roe_cuda_kv_store,
    /* .moe_combine = */ roe_cuda_moe_combine,
    /* .mla_attention = */ roe_cuda_mla_attention,
    /* .matmul_heads = */ roe_cuda_matmul_heads,
    /* .alloc = */ cuda_alloc,
    /* .free = */ cuda_free,
    /* .upload = */ cuda_upload,
    /* .download = */ cuda_download,
    /* .copy = */ cuda_copy,
    /* .sync = */ cuda_sync,
    /* .mat_upload = */ roe_cuda_mat_upload,
    /* .mat_random = */ roe_cuda_mat_random,
    /* .mat_free = */ roe_cuda_mat_free,
    /* .destroy = */ cuda_destroy,
};

extern "C" int roe_backend_cuda_device_count(void) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        roe_fail(ROE_ERR_UNSUPPORTED, "no CUDA device: cudaGetDeviceCount returned %s (%s)",
                 cudaGetErrorName(e), cudaGetErrorString(e));
        (void)cudaGetLastError();
        return -1;
    }
    if (n == 0) roe_fail(ROE_ERR_UNSUPPORTED, "no CUDA device: cudaGetDeviceCount returned 0 devices");
    return n;
}

#define FAIL_IF(cond, ...)                                                                         \
    do {                                                                                           \
        if (cond) {                                                                                \
            st = roe_fail(__VA_ARGS__);                                                            \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

extern "C" roe_status roe_backend_cuda_create(const struct roe_backend_opts *opts, roe_backend **out) {
    *out = NULL;
    roe_status st = ROE_OK;
    if (opts->max_cols <= 0 || opts->max_rows <= 0 || opts->max_ctx <= 0 || opts->device < 0)
        return roe_fail(ROE_ERR_INVALID_ARG, "cuda backend: max_cols %d, max_rows %d, max_ctx %d, device %d",
                        opts->max_cols, opts->max_rows, opts->max_ctx, opts->device);
    const int n_dev = roe_backend_cuda_device_count();
    if (n_dev <= 0) return ROE_ERR_UNSUPPORTED; /* the message says why */
    const struct roe_cublas_api *blas = roe_cuda_load_cublas();
    if (!blas) return ROE_ERR_UNSUPPORTED;
    roe_backend *be = (roe_backend *)roe_calloc(1, sizeof *be);
    struct roe_cuda *cu = (struct roe_cuda *)roe_calloc(1, sizeof *cu);
    cudaError_t e;
    cublasStatus_t bs;
    cudaDeviceProp prop;
    if (!be || !cu) {
        roe_free(be);
        roe_free(cu);
        return roe_fail(ROE_ERR_NOMEM, "cuda backend: out of memory");
    }
    be->ops = &roe_cuda_ops;
    be->impl = cu;
    be->host_memory = 0;
    cu->blas_api = *blas;
    cu->device = opts->device % n_dev;
    cu->max_rows = opts->max_rows;
    cu->max_cols = opts->max_cols;
    e = cudaSetDevice(cu->device);
    FAIL_IF(e != cudaSuccess, ROE_ERR_INTERNAL, "cudaSetDevice(%d): %s", cu->device, cudaGetErrorString(e));
    e = cudaGetDeviceProperties(&prop, cu->device);
    FAIL_IF(e != cudaSuccess, ROE_ERR_INTERNAL, "cudaGetDeviceProperties(%d): %s", cu->device,
            cudaGetErrorString(e));
    FAIL_IF(prop.major < 8, ROE_ERR_UNSUPPORTED,
            "cuda:%d %s is compute capability %d.%d; roe's CUDA kernels need 8.0 or newer (bf16)",
            cu->device, prop.name, prop.major, prop.minor);
    snprintf(cu->name, sizeof cu->name, "cuda:%d %.80s", cu->device, prop.name);
    be->name = cu->name;
    e = cudaStreamCreateWithFlags(&cu->stream, cudaStreamNonBlocking);
    FAIL_IF(e != cudaSuccess, ROE_ERR_INTERNAL, "cudaStreamCreate: %s", cudaGetErrorString(e));
    bs = cu->blas_api.create(&cu->blas);
    FAIL_IF(bs != CUBLAS_STATUS_SUCCESS, ROE_ERR_INTERNAL, "cublasCreate: %s", cu->blas_api.status_string(bs));
    bs = cu->blas_api.set_stream(cu->blas, cu->stream);
    FAIL_IF(bs != CUBLAS_STATUS_SUCCESS, ROE_ERR_INTERNAL, "cublasSetStream: %s", cu->blas_api.status_string(bs));
    /* fp32 accumulation, never reduced-precision reductions (cuBLAS default keeps them off
     * for COMPUTE_32F; said explicitly) */
    bs = cu->blas_api.set_math_mode(cu->blas, CUBLAS_DEFAULT_MATH);
    FAIL_IF(bs != CUBLAS_STATUS_SUCCESS, ROE_ERR_INTERNAL, "cublasSetMathMode: %s", cu->blas_api.status_string(bs));
    e = cudaMalloc(&cu->xb, (size_t)opts->max_rows * opts->max_cols * sizeof(__nv_bfloat16));
    FAIL_IF(e != cudaSuccess, ROE_ERR_NOMEM, "cuda backend: no device memory for a [%d, %d] bf16 scratch",
            opts->max_rows, opts->max_cols);
    /* the largest op's index arrays: attention (2 ints per row and the block tables), copy_rows
     * (2 int64 per row), moe_combine (int + float per pair) */
    cu->stage_bytes = (size_t)opts->max_rows * 32 + opts->max_kv_table * sizeof(int32_t) + 256;
    cu->hstage = (unsigned char *)roe_malloc(cu->stage_bytes);
    e = cudaMalloc(&cu->dstage, cu->stage_bytes);
    FAIL_IF(!cu->hstage || e != cudaSuccess, ROE_ERR_NOMEM, "cuda backend: no memory for %zu staging bytes",
            cu->stage_bytes);
    *out = be;
    return ROE_OK;
fail:
    (void)cudaGetLastError();
    cuda_destroy(be);
    return st;
}

extern "C" double roe_cuda_time_copy(roe_backend *be, void *dst, const void *src, size_t bytes, int reps) {
    struct roe_cuda *cu = roe_cuda_of(be);
    cudaEvent_t a = NULL, b = NULL;
    float ms = 0.0f;
    double out = -1.0;
    if (cudaEventCreate(&a) != cudaSuccess || cudaEventCreate(&b) != cudaSuccess) goto done;
    if (cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cu->stream) != cudaSuccess) goto done;
    if (cudaEventRecord(a, cu->stream) != cudaSuccess) goto done;
    for (int i = 0; i < reps; i++)
        if (cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cu->stream) != cudaSuccess) goto done;
    if (cudaEventRecord(b, cu->stream) != cudaSuccess || cudaEventSynchronize(b) != cudaSuccess ||
        cudaEventElapsedTime(&ms, a, b) != cudaSuccess)
        goto done;
    out = (double)ms * 1e-3 / (reps > 0 ? reps : 1);
done:
    if (out < 0.0) {
        cudaError_t e = cudaGetLastError();
        roe_fail(ROE_ERR_INTERNAL, "%s: timing a device copy of %zu bytes: %s", cu->name, bytes,
                 cudaGetErrorString(e));
    }
    if (a) cudaEventDestroy(a);
    if (b) cudaEventDestroy(b);
    return out;
}
