/*
 * roe_flags.h — the RoE flags every subcommand shares (generate, eval, tune, bench):
 *   --roe-k K  --roe-tau T  --roe-keep-clean L  --roe-profile FILE  --roe-gate clean|noisy
 *   --roe-adaptive H
 * Declared once here and turned into a struct roe_roster for the loaded model.
 */
#ifndef ROE_ROE_FLAGS_H
#define ROE_ROE_FLAGS_H

#include "args.h"
#include "runtime/config.h"
#include "runtime/roster.h"

struct roe_flags {
    int k;
    float tau;
    int keep_clean;
    const char *profile;
    const char *gate;
    float adaptive;
};

enum { ROE_FLAGS_N_SPECS = 6 };

void roe_flags_init(struct roe_flags *f);
/* Writes the 6 flag specs into specs[0..5]. */
void roe_flags_specs(struct roe_flags *f, struct roe_arg_spec *specs);
/* --roe-gate NAME (NULL: clean) -> *out; 0, or prints "roe CMD: ..." and returns 2. */
int roe_flags_gate(const char *name, const char *cmd, roe_gate_mode *out);
/* Builds the roster (profile file first, then --roe-k / --roe-gate / --roe-adaptive given
 * explicitly override it). Returns 0, or prints "roe CMD: ..." and returns 1 or 2. */
int roe_flags_roster(const struct roe_flags *f, const char *cmd, const struct roe_model_config *cfg,
                     struct roe_roster *out);

#endif
