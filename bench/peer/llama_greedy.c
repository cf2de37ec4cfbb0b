/*
 * llama_greedy.c — greedy tokens from llama.cpp for bench/peer_llamacpp.sh (not built by CMake:
 * the script compiles it against a llama.cpp build). Token ids in, token ids out, so the
 * comparison with `roe generate --prompt-ids` involves no tokenizer.
 *
 *   llama_greedy MODEL.gguf 1,2,3 N_TOKENS [THREADS]   ->   one line: the N generated ids, comma-separated
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama.h"

static void quiet(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: llama_greedy MODEL.gguf IDS N [THREADS]\n");
        return 2;
    }
    llama_token ids[4096];
    int n = 0;
    for (char *p = argv[2]; *p && n < 4096;) {
        ids[n++] = (llama_token)strtol(p, &p, 10);
        if (*p == ',') p++;
    }
    const int gen = atoi(argv[3]), threads = argc > 4 ? atoi(argv[4]) : 1;
    llama_log_set(quiet, NULL);
    llama_backend_init();
    struct llama_model *model = llama_model_load_from_file(argv[1], llama_model_default_params());
    if (!model) return 1;
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)(n + gen + 8);
    cp.n_batch = cp.n_ctx;
    cp.n_threads = cp.n_threads_batch = threads;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) return 1;
    const int V = llama_vocab_n_tokens(llama_model_get_vocab(model));
    struct llama_batch b = llama_batch_get_one(ids, n);
    for (int t = 0; t < gen; t++) {
        if (llama_decode(ctx, b) != 0) return 1;
        const float *lg = llama_get_logits_ith(ctx, -1);
        llama_token best = 0;
        for (int v = 1; v < V; v++)
            if (lg[v] > lg[best]) best = v;
        printf("%s%d", t ? "," : "", best);
        ids[0] = best;
        b = llama_batch_get_one(ids, 1);
    }
    printf("\n");
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
