/* engine_opts.c — the engine options of a subcommand; see engine_opts.h. */
#include "engine_opts.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/env.h"

struct roe_engine_opts roe_launcher_engine_opts(int max_seqs, int max_ctx, int rows, int k,
                                                int n_threads) {
    struct roe_engine_opts eo = roe_engine_opts_default();
    eo.max_seqs = max_seqs;
    eo.max_ctx = max_ctx;
    eo.max_rows = rows > k ? rows : k;
    eo.n_threads = n_threads;
    eo.isa = roe_env_cpu_isa();
    return eo;
}

void roe_kv_flags_specs(struct roe_kv_flags *f, struct roe_arg_spec *s) {
    s[0] = (struct roe_arg_spec){"--kv-memory", ROE_ARG_STRING, &f->memory,
                                 "KV block pool per rank: bytes (K/M/G/T suffix) or a fraction of available "
                                 "memory (default: every slot's full context)", 0, 0};
    s[1] = (struct roe_arg_spec){"--kv-block-size", ROE_ARG_INT, &f->block_size, "positions per KV block (16)", 1,
                                 1 << 20};
    s[2] = (struct roe_arg_spec){"--kv-dtype", ROE_ARG_STRING, &f->dtype,
                                 "KV cache elements: auto (default: bf16, f32 for an f32 checkpoint), bf16, "
                                 "f32 (exact) or fp8 (e4m3, scale 1.0)", 0, 0};
}

/* MemAvailable of /proc/meminfo in bytes, 0 if unknown. */
static size_t mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    fclose(f);
    return (size_t)kb * 1024u;
}

int roe_kv_parse_memory(const char *text, size_t avail, size_t *out) {
    char *end = NULL;
    const double v = strtod(text, &end);
    if (end == text || !(v > 0.0) || !isfinite(v)) return -1;
    double mul = 1.0;
    const char *units = "KMGT";
    if (*end && strchr(units, *end)) {
        for (const char *u = units; u <= strchr(units, *end); u++) mul *= 1024.0;
        end++;
        if (*end == 'i' && end[1] == 'B') end += 2;
        else if (*end == 'B') end++;
    } else if (v < 1.0) { /* a fraction of what is available */
        if (*end || avail == 0) return -1;
        *out = (size_t)(v * (double)avail);
        return 0;
    }
    if (*end || v * mul > 1e18 || (mul == 1.0 && v != floor(v))) return -1; /* no half bytes */
    *out = (size_t)(v * mul);
    return 0;
}

int roe_kv_flags_apply(const struct roe_kv_flags *f, const char *cmd, struct roe_engine_opts *eo) {
    eo->kv_block_size = f->block_size;
    eo->kv_dtype = ROE_KV_DTYPE_AUTO;
    if (f->dtype && strcmp(f->dtype, "f32") == 0) eo->kv_dtype = ROE_DTYPE_F32;
    else if (f->dtype && strcmp(f->dtype, "bf16") == 0) eo->kv_dtype = ROE_DTYPE_BF16;
    else if (f->dtype && strcmp(f->dtype, "fp8") == 0) eo->kv_dtype = ROE_DTYPE_F8_E4M3;
    else if (f->dtype && strcmp(f->dtype, "auto") != 0) {
        fprintf(stderr, "roe %s: --kv-dtype '%s': expected auto, bf16, f32 or fp8\n", cmd, f->dtype);
        return 2;
    }
    if (!f->memory) return 0;
    if (roe_kv_parse_memory(f->memory, mem_available(), &eo->kv_bytes) != 0 || eo->kv_bytes == 0) {
        fprintf(stderr,
                "roe %s: --kv-memory '%s': expected bytes with an optional K, M, G or T suffix (\"512M\", "
                "\"1.5G\") or a fraction of the available memory in (0, 1) (\"0.5\")\n",
                cmd, f->memory);
        return 2;
    }
    return 0;
}
