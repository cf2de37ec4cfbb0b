/* roe_flags.c — the shared RoE flags; see roe_flags.h. */
#include "roe_flags.h"

#include <stdio.h>
#include <string.h>

void roe_flags_init(struct roe_flags *f) {
    memset(f, 0, sizeof *f);
    f->k = 0;          /* 0: not given (1, or the profile's) */
    f->tau = -1.0f;    /* < 0: not given */
    f->keep_clean = 1; /* the paper keeps the first and last L in {1, 3, 5} clean */
    f->adaptive = -1.0f;
}

void roe_flags_specs(struct roe_flags *f, struct roe_arg_spec *s) {
    s[0] = (struct roe_arg_spec){"--roe-k", ROE_ARG_INT, &f->k, "RoE samples per token (1 = plain model)", 1, ROE_MAX_SAMPLES};
    s[1] = (struct roe_arg_spec){"--roe-tau", ROE_ARG_FLOAT, &f->tau, "Gumbel temperature for the middle MoE layers", 0, 10};
    s[2] = (struct roe_arg_spec){"--roe-keep-clean", ROE_ARG_INT, &f->keep_clean, "first/last L MoE layers kept at tau 0 (1)", 0, ROE_MAX_LAYERS};
    s[3] = (struct roe_arg_spec){"--roe-profile", ROE_ARG_STRING, &f->profile, "RoE profile JSON (configs/README.md)", 0, 0};
    s[4] = (struct roe_arg_spec){"--roe-gate", ROE_ARG_STRING, &f->gate, "gate weights of sampled experts: clean|noisy", 0, 0};
    s[5] = (struct roe_arg_spec){"--roe-adaptive", ROE_ARG_FLOAT, &f->adaptive, "extra samples only above this clean entropy (nats)", 0, 1e6};
}

int roe_flags_gate(const char *name, const char *cmd, roe_gate_mode *out) {
    *out = ROE_GATE_CLEAN;
    if (!name || strcmp(name, "clean") == 0) return 0;
    if (strcmp(name, "noisy") == 0) {
        *out = ROE_GATE_NOISY;
        return 0;
    }
    fprintf(stderr, "roe %s: --roe-gate '%s': expected clean or noisy\n", cmd, name);
    return 2;
}

int roe_flags_roster(const struct roe_flags *f, const char *cmd, const struct roe_model_config *cfg,
                     struct roe_roster *out) {
    roe_gate_mode gate;
    if (roe_flags_gate(f->gate, cmd, &gate)) return 2;
    if (f->profile && f->tau >= 0.0f) {
        fprintf(stderr, "roe %s: give either --roe-tau or --roe-profile, not both\n", cmd);
        return 2;
    }
    roe_status st;
    if (f->profile) {
        st = roe_roster_load(f->profile, cfg, out);
        if (st != ROE_OK) {
            fprintf(stderr, "roe %s: %s\n", cmd, roe_error_message());
            return 1;
        }
        if (f->k > 0) out->k = f->k;
        if (f->gate) out->gate = gate;
    } else {
        const int k = f->k > 0 ? f->k : 1;
        if (k > 1 && f->tau < 0.0f) {
            fprintf(stderr, "roe %s: --roe-k %d needs --roe-tau T or --roe-profile FILE\n", cmd, k);
            return 2;
        }
        st = roe_roster_uniform(out, cfg, k, f->tau > 0.0f ? f->tau : 0.0f, f->keep_clean, gate);
        if (st != ROE_OK) {
            fprintf(stderr, "roe %s: %s\n", cmd, roe_error_message());
            return 2;
        }
    }
    if (f->adaptive >= 0.0f) out->adaptive_entropy = f->adaptive;
    st = roe_roster_validate(out, cfg);
    if (st != ROE_OK) {
        fprintf(stderr, "roe %s: %s\n", cmd, roe_error_message());
        return 2;
    }
    return 0;
}
