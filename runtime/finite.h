/*
 * finite.h — NaN and infinities in a checkpoint's tensors (roe inspect --check-weights).
 *
 * A weight that is NaN or infinite makes every score NaN downstream (the engine then fails the
 * request: batch.h); this finds which tensor holds it. Values are tested by their bit patterns
 * (exponent all ones), so a scan reads the mapping once and converts nothing. Integer tensors
 * have no such values, but for MXFP4's e8m0 scales (U8 NAME_scales), where 0xff is NaN.
 */
#ifndef ROE_FINITE_H
#define ROE_FINITE_H

#include <stddef.h>

#include "safetensors.h"

struct roe_nonfinite {
    size_t nan, inf; /* how many */
    size_t first;    /* flat index of the first one */
};

/* Counts t's NaN and infinite values. Returns 1 if there is any. */
int roe_tensor_nonfinite(const struct roe_tensor *t, struct roe_nonfinite *out);

#endif
