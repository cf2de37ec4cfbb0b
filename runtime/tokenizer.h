/*
 * tokenizer.h — BPE from a Hugging Face tokenizer.json, encoding and decoding exactly as the
 * `tokenizers` library does (checked against it for the GPT-2, GPT-NeoX/OLMoE, Llama 3,
 * Qwen2, gpt-oss (o200k), DeepSeek-V3 and Llama 2/Mixtral (SentencePiece) styles).
 *
 * Supported: model.type "BPE", byte level (a ByteLevel pre-tokenizer: the GPT-2 byte map) or
 * over characters (SentencePiece style), merges as "a b" strings or ["a","b"] pairs, ranked
 * by list order, ignore_merges, unk_token/fuse_unk/byte_fallback; normalizers NFC, NFD, NFKC,
 * NFKD, Prepend, Replace; pre-tokenizers ByteLevel, Split (Regex or String, any behaviour),
 * Metaspace; decoders ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace (each also
 * null or a Sequence). Split regexes are Oniguruma's, translated for PCRE2 with Unicode 16
 * property classes (tokenizer_regex.c); added tokens (special or not, lstrip/rstrip/
 * single_word/normalized) are matched before splitting. Anything else is rejected with a
 * message naming the field. "truncation" and "padding" are loaded and ignored (a warning).
 *
 * encode applies no post-processor (no BOS/EOS): it matches HF
 * `tokenizer.encode(s, add_special_tokens=False)`; decode matches `tokenizer.decode(ids)`,
 * so decode(encode(s)) == s wherever the tokenizer is lossless (byte-level BPE without a
 * normalizer, for one).
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

/* Decodes ids to text as Hugging Face's decode does (valid UTF-8, NUL-terminated; *len
 * excludes the NUL); *text allocated with roe_malloc. An id outside the vocabulary is
 * ROE_ERR_INVALID_ARG. */
roe_status roe_tokenizer_decode(const roe_tokenizer *t, const int32_t *ids, size_t n, int flags,
                                char **text, size_t *len);

/* The raw bytes of one token (for streaming: may be an incomplete UTF-8 sequence): the
 * decoder's per-token steps applied to it ("Ġthe" -> " the", "▁the" -> " the", "<0x0A>" ->
 * "\n"). The pointer is owned by the tokenizer. */
roe_status roe_tokenizer_token_bytes(const roe_tokenizer *t, int32_t id, const char **bytes,
                                     size_t *len);
/* The token as the tokenizer.json spells it ("Ġthe", "▁the", "<0x0A>", "<|endoftext|>"). */
roe_status roe_tokenizer_token_text(const roe_tokenizer *t, int32_t id, const char **text,
                                    size_t *len);

int32_t roe_tokenizer_vocab_size(const roe_tokenizer *t); /* max id + 1, added tokens included */
int32_t roe_tokenizer_find(const roe_tokenizer *t, const char *token); /* id or -1 */
int roe_tokenizer_is_special(const roe_tokenizer *t, int32_t id);

#endif
