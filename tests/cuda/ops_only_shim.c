/*
 * ops_only_shim.c — for tools/gpu_check.sh's "ops-only" build of test_cuda_ops on a machine
 * without roe's library dependencies (cJSON, ...): the two dtype helpers the kernels need,
 * which otherwise come from runtime/safetensors.c (and its cJSON). Never part of the CMake
 * build.
 */
#include "runtime/safetensors.h"

const char *roe_dtype_name(roe_dtype t) {
    static const char *names[] = {"F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2"};
    return (unsigned)t < ROE_DTYPE_COUNT ? names[t] : "?";
}

size_t roe_dtype_size(roe_dtype t) {
    static const size_t sizes[] = {4, 2, 2, 8, 8, 4, 2, 1, 1, 1, 1, 1};
    return (unsigned)t < ROE_DTYPE_COUNT ? sizes[t] : 0;
}
