/*
 * fuzz_safetensors.c — a safetensors file (8-byte header length, JSON header, data) through
 * roe_st_open: any bytes must give either a validated file whose every tensor lies inside
 * the mapping, or a status with a message. Every tensor's first and last byte is read, so a
 * bounds check that let a tensor past the mapping faults here.
 */
#include <string.h>

#include "fuzz_common.h"
#include "runtime/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_quiet();
    roe_st_file *f = NULL;
    roe_status st = roe_st_open(fuzz_as_file(data, size), &f);
    fuzz_check_rejection(st);
    if (st != ROE_OK) {
        if (f) abort(); /* the contract: *out is NULL on failure */
        return 0;
    }
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < roe_st_count(f); i++) {
        const struct roe_tensor *t = roe_st_at(f, i);
        size_t elems = 1;
        for (int d = 0; d < t->ndim; d++) elems *= (size_t)t->shape[d];
        if (elems * roe_dtype_size(t->dtype) != t->nbytes) abort();
        if (t->nbytes) sink ^= ((const uint8_t *)t->data)[0] ^ ((const uint8_t *)t->data)[t->nbytes - 1];
        if (roe_st_find(f, t->name) != t) abort();
    }
    (void)sink;
    roe_st_close(f);
    return 0;
}
