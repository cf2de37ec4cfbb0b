/*
 * fuzz_tokenizer_load.c — tokenizer.json through roe_tokenizer_load: a tokenizer or a status
 * with a message. A tokenizer that loads then encodes a fixed text (special tokens,
 * non-ASCII, spaces) and decodes the ids back: neither may fail except with a status, and
 * every id it produces must decode.
 */
#include <string.h>

#include "fuzz_common.h"
#include "base/alloc.h"
#include "runtime/tokenizer.h"

static const char sample[] = "Hello, world! caf\xC3\xA9  <|endoftext|> 12345 \xE4\xBD\xA0\xE5\xA5\xBD\n\tx";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_quiet();
    roe_tokenizer *t = NULL;
    roe_status st = roe_tokenizer_load(fuzz_as_file(data, size), &t);
    fuzz_check_rejection(st);
    if (st != ROE_OK) {
        if (t) abort();
        return 0;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    st = roe_tokenizer_encode(t, sample, sizeof sample - 1, &ids, &n);
    fuzz_check_rejection(st);
    if (st == ROE_OK) {
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= roe_tokenizer_vocab_size(t)) abort();
        char *text = NULL;
        size_t len = 0;
        st = roe_tokenizer_decode(t, ids, n, 0, &text, &len);
        fuzz_check_rejection(st);
        roe_free(text);
        roe_free(ids);
    }
    roe_tokenizer_free(t);
    return 0;
}
