/*
 * tokenizer.h — byte-level BPE from a Hugging Face tokenizer.json.
 *
 * Supported: model.type "BPE" with the GPT-2 byte-to-unicode map (ByteLevel
 * pre-tokenizer/decoder), merges as "a b" strings or ["a","b"] pairs, ranked by list
 * order, ignore_merges, unk_token/fuse_unk/byte_fallback; pre-tokenizers ByteLevel
 * (use_regex: GPT-2 pattern) and Sequence[Split(Regex or String, any behaviour), ByteLevel]
 * (the regex is taken from the file, e.g. Qwen's), run through PCRE2 with Unicode
 * properties; normalizers null, NFC, NFD, NFKC, NFKD (utf8proc) or a Sequence of them;
 * added tokens (special or not, lstrip/rstrip/single_word/normalized) matched before
 * splitting. Anything else is rejected with a message naming the field.
 *
 * Contract: decode(encode(s)) == s for any valid UTF-8 s (without post-processing).
 * encode applies no post-processor (no BOS/EOS): it matches HF
 * `tokenizer.encode(s, add_special_tokens=False)`.
 */
#ifndef ROE_TOKENIZER_H
#define ROE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

typedef struct roe_tokenizer roe_tokenizer;

roe_status roe_tokenizer_load(const char *tokenizer_json_path, roe_tokenizer **out);
void roe_tokenizer_free(roe_tokenizer *t);

/* Encodes len bytes of UTF-8 text. *ids is allocated with roe_malloc (caller roe_free).
 * Invalid UTF-8 is ROE_ERR_INVALID_ARG with the byte offset in the message. */
roe_status roe_tokenizer_encode(const roe_tokenizer *t, const char *text, size_t len,
                                int32_t **ids, size_t *n_ids);

enum { ROE_DECODE_SKIP_SPECIAL = 1 };

/* Decodes ids to bytes (NUL-terminated; *len excludes the NUL); *text allocated with
 * roe_malloc. An id outside the vocabulary is ROE_ERR_INVALID_ARG. */
roe_status roe_tokenizer_decode(const roe_tokenizer *t, const int32_t *ids, size_t n, int flags,
                                char **text, size_t *len);

/* The raw bytes of one token (for streaming: may be an incomplete UTF-8 sequence).
 * The pointer is owned by the tokenizer. */
roe_status roe_tokenizer_token_bytes(const roe_tokenizer *t, int32_t id, const char **bytes,
                                     size_t *len);

int32_t roe_tokenizer_vocab_size(const roe_tokenizer *t); /* max id + 1, added tokens included */
int32_t roe_tokenizer_find(const roe_tokenizer *t, const char *token); /* id or -1 */
int roe_tokenizer_is_special(const roe_tokenizer *t, int32_t id);

#endif
