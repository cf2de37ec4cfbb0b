/*
 * fuzz_config.c — config.json text through roe_config_parse: a validated config (every
 * field in range, so the engine can trust it) or a status with a message.
 */
#include <string.h>

#include "fuzz_common.h"
#include "base/alloc.h"
#include "runtime/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_quiet();
    char *text = malloc(size + 1); /* the parser reads NUL-terminated text, as the loader gives it */
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    struct roe_model_config c;
    roe_status st = roe_config_parse(text, "fuzz/config.json", &c);
    fuzz_check_rejection(st);
    if (st == ROE_OK) {
        /* what the engine relies on */
        if (c.hidden <= 0 || c.n_layers <= 0 || c.n_layers > ROE_MAX_LAYERS || c.n_heads <= 0 ||
            c.n_kv_heads <= 0 || c.head_dim <= 0 || c.vocab_size <= 0 || c.n_experts < 0 || c.top_k <= 0 ||
            c.n_heads % c.n_kv_heads != 0 || c.max_position <= 0)
            abort();
        /* MoE layers need experts and k of them; dense layers (Qwen3's mlp_only_layers, or a
         * Qwen3 config without experts) need a dense FFN width */
        for (int i = 0; i < c.n_layers; i++) {
            if (c.layer_is_moe[i] && (c.n_experts < 1 || c.top_k > c.n_experts || c.moe_intermediate <= 0))
                abort();
            if (!c.layer_is_moe[i] && c.dense_intermediate <= 0) abort();
        }
        if (roe_config_n_moe_layers(&c) > c.n_layers) abort();
    }
    free(text);
    return 0;
}
