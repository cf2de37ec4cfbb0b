/*
 * roster.h — Roster of Experts settings of a request (ROE.md): K samples per token, a
 * per-layer Gumbel temperature, the gate-weight rule, and adaptive K.
 *
 * Sample 0 is always the clean path (tau = 0 everywhere). Sample s > 0 routes layer l
 * with TopK(R + tau[l] * G, k), G ~ Gumbel(0, 1) drawn from Philox keyed on
 * (seed, position, sample, layer, expert) — see roe_gumbel().
 */
#ifndef ROE_ROSTER_H
#define ROE_ROSTER_H

#include <stdint.h>

#include "config.h"
#include "base/status.h"

typedef enum roe_gate_mode {
    ROE_GATE_CLEAN = 0, /* the model's gate function on the clean logits R at the chosen experts */
    ROE_GATE_NOISY,     /* the model's gate function on R + tau * G */
} roe_gate_mode;

enum { ROE_MAX_SAMPLES = 256 };

struct roe_roster {
    int k;                      /* samples per token; 1 = the plain model */
    float tau[ROE_MAX_LAYERS];  /* per-layer temperature (0 in the clean layers) */
    int keep_clean;             /* L: first and last L MoE layers kept at tau 0 (informational) */
    roe_gate_mode gate;
    float adaptive_entropy;     /* > 0: extra samples only where the clean next-token entropy
                                   (nats) exceeds it; <= 0: always K */
};

/* K = 1, tau = 0: the plain model. */
void roe_roster_plain(struct roe_roster *r);

/* One tau for every MoE layer except the first and last `keep_clean` MoE layers. */
roe_status roe_roster_uniform(struct roe_roster *r, const struct roe_model_config *cfg, int k,
                              float tau, int keep_clean, roe_gate_mode gate);

/* Loads a profile (JSON, schema in configs/README.md) for a model with cfg's layers. */
roe_status roe_roster_load(const char *path, const struct roe_model_config *cfg, struct roe_roster *r);
roe_status roe_roster_parse(const char *json, const char *origin, const struct roe_model_config *cfg,
                            struct roe_roster *r);
/* Writes a profile as JSON text (roe_malloc'd). */
roe_status roe_roster_to_json(const struct roe_roster *r, const struct roe_model_config *cfg,
                              char **out);

roe_status roe_roster_validate(const struct roe_roster *r, const struct roe_model_config *cfg);
const char *roe_gate_mode_name(roe_gate_mode g);

/* 1 if any layer has tau > 0 and k > 1 (sample rows can differ from the clean row). */
int roe_roster_is_noisy(const struct roe_roster *r, int n_layers);

#endif
