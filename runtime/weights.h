/*
 * weights.h — the model's weights as a backend holds them.
 *
 * For a backend whose memory is the host's (the CPU), the engine reads the model's own
 * views of the mmapped checkpoint and nothing here is used. For a device backend the
 * weights are copied to device memory once, at engine creation: every dense weight and the
 * experts this rank owns (ROE_CPU/HBM budget: DESIGN.md "Process model"), each a bf16
 * matrix (kernels/backend.h, mat_upload). A tied LM head stays one copy.
 *
 * A *shapes-only* model (roe_model_shapes: a config, no checkpoint) gets random bf16
 * weights generated on the device instead (mat_random), for benchmarks of models whose
 * files are not at hand; values are uniform in [-1/sqrt(cols), 1/sqrt(cols)].
 */
#ifndef ROE_WEIGHTS_H
#define ROE_WEIGHTS_H

#include "kernels/backend.h"
#include "model.h"
#include "placement.h"
#include "base/status.h"

/* *out: a model struct (cfg copied; store, dir NULL) whose matrices are backend memory.
 * pl NULL: every expert. Free with roe_weights_free on the same backend. */
roe_status roe_weights_create(roe_backend *be, const struct roe_model *m,
                              const struct roe_placement *pl, int rank, uint64_t seed,
                              struct roe_model **out);
void roe_weights_free(roe_backend *be, struct roe_model *w);

#endif
