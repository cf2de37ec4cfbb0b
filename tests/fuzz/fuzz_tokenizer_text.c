/*
 * fuzz_tokenizer_text.c — encode and decode of the real tokenizers (the bundled model's
 * byte-level BPE, the Qwen-style one of tests/data: a PCRE2 split regex and an NFC
 * normalizer, and two of tests/data/tokenizer/families: Llama 2 SentencePiece style with
 * Prepend/Replace, byte fallback and the Replace/ByteFallback/Fuse/Strip decoders, and o200k's
 * regex with its Unicode 16 classes).
 *
 * Input: byte 0 picks the tokenizer (bits 0 and 2) and the operation (bit 1); the rest is
 *   encode: text. Valid UTF-8 must encode to in-vocabulary ids; with the bundled tokenizer
 *           (no normalizer) decode(encode(s)) == s (the contract of tokenizer.h). Invalid
 *           UTF-8 must be refused with a status.
 *   decode: little-endian int32 ids (in or out of the vocabulary), with and without
 *           skipping special tokens; and each id's raw bytes.
 */
#include <string.h>

#include "fuzz_common.h"
#include "base/alloc.h"
#include "runtime/tokenizer.h"
#include "runtime/tokenizer_impl.h" /* roe__utf8_valid */

static roe_tokenizer *toks[4];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_quiet();
    static const char *paths[4] = {ROE_SOURCE_DIR "/models/olmoe-tiny/tokenizer.json",
                                   ROE_SOURCE_DIR "/tests/data/tokenizer/qwenstyle/tokenizer.json",
                                   ROE_SOURCE_DIR "/tests/data/tokenizer/families/llama2/tokenizer.json",
                                   ROE_SOURCE_DIR "/tests/data/tokenizer/families/o200k/tokenizer.json"};
    for (int i = 0; i < 4; i++)
        if (roe_tokenizer_load(paths[i], &toks[i]) != ROE_OK) {
            fprintf(stderr, "fuzz_tokenizer_text: %s\n", roe_error_message());
            abort();
        }
    return 0;
}

static void check_encode(const roe_tokenizer *t, int roundtrip, const char *s, size_t n) {
    int32_t *ids = NULL;
    size_t n_ids = 0;
    roe_status st = roe_tokenizer_encode(t, s, n, &ids, &n_ids);
    fuzz_check_rejection(st);
    if (st != ROE_OK) {
        if (ids) abort();
        return;
    }
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= roe_tokenizer_vocab_size(t)) abort();
    char *back = NULL;
    size_t len = 0;
    st = roe_tokenizer_decode(t, ids, n_ids, 0, &back, &len);
    if (st != ROE_OK) abort(); /* ids from encode always decode */
    if (roundtrip && (len != n || memcmp(back, s, n) != 0)) {
        fprintf(stderr, "decode(encode(s)) != s (%zu bytes in, %zu out)\n", n, len);
        abort();
    }
    roe_free(back);
    roe_free(ids);
}

static void check_decode(const roe_tokenizer *t, const uint8_t *p, size_t n) {
    const size_t n_ids = n / 4;
    int32_t *ids = malloc(n_ids ? n_ids * sizeof *ids : 1);
    if (!ids) return;
    for (size_t i = 0; i < n_ids; i++) {
        uint32_t v = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
                     (uint32_t)p[4 * i + 3] << 24;
        /* mostly in range, so decode gets past the id check */
        ids[i] = (v & 0x80000000u) ? (int32_t)v : (int32_t)(v % (uint32_t)(roe_tokenizer_vocab_size(t) + 2));
    }
    for (int flags = 0; flags <= ROE_DECODE_SKIP_SPECIAL; flags += ROE_DECODE_SKIP_SPECIAL) {
        char *text = NULL;
        size_t len = 0;
        roe_status st = roe_tokenizer_decode(t, ids, n_ids, flags, &text, &len);
        fuzz_check_rejection(st);
        if (st == ROE_OK && (!text || text[len] != '\0')) abort();
        size_t bad;
        if (st == ROE_OK && !roe__utf8_valid(text, len, &bad)) abort(); /* decode gives text, as HF's String */
        roe_free(text);
    }
    for (size_t i = 0; i < n_ids; i++) {
        const char *b = NULL;
        size_t len = 0;
        fuzz_check_rejection(roe_tokenizer_token_bytes(t, ids[i], &b, &len));
    }
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const int which = (data[0] & 1) | (data[0] >> 1 & 2);
    const roe_tokenizer *t = toks[which];
    if (data[0] & 2)
        check_decode(t, data + 1, size - 1);
    else
        check_encode(t, which == 0, (const char *)data + 1, size - 1);
    return 0;
}
