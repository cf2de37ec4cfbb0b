/*
 * tokenizer_impl.h — private layout of the BPE tokenizer (see tokenizer.h).
 *
 * Byte level (a ByteLevel pre-tokenizer), the tokenizer works in byte space: the GPT-2
 * byte-to-unicode map is applied to the vocabulary once at load (each vocab string is turned
 * back into the bytes it stands for), so encode never builds the mapped unicode strings
 * Hugging Face builds. The two are equivalent because the map is a bijection between bytes and
 * 256 code points and BPE only ever sees strings made of those code points. Without ByteLevel
 * (SentencePiece style) BPE runs on the text's characters, with "<0xXX>" byte fallback.
 *
 * Files:
 *   tokenizer.c             public API: the encode pipeline, decode, accessors, free
 *   tokenizer_load.c        tokenizer.json -> struct roe_tokenizer: model, vocab, merges, added
 *   tokenizer_load_steps.c  its normalizer, pre-tokenizer and decoder (every field checked)
 *   tokenizer_bpe.c         hash tables and the BPE merge loop
 *   tokenizer_text.c        UTF-8, the byte map, normalizers, regex splitting, added-token trie
 *   tokenizer_regex.c       Oniguruma patterns translated for PCRE2
 *   tokenizer_unicode.c     Unicode 16 sets (tokenizer_unicode_data.h, generated) as classes
 *   tokenizer_decode.c      the decoder chain, and each token's piece
 *
 * The pipeline is Hugging Face's for `encode(s, add_special_tokens=False)`:
 *   raw text -> split on added tokens with normalized=false (matched on raw text)
 *   -> each gap: normalize -> split on added tokens with normalized=true
 *   -> each gap: pre-tokenizer steps (Split..., Metaspace, ByteLevel) -> BPE per piece.
 */
#ifndef ROE_TOKENIZER_IMPL_H
#define ROE_TOKENIZER_IMPL_H

#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cjson/cJSON.h>

#include "base/status.h"
#include "tokenizer.h"

enum {
    ROE__TOK_MAX_ID = (1 << 24) - 1, /* ids above this are rejected at load (bounds the tables) */
    ROE__TOK_MAX_STEPS = 8,          /* pre-tokenizer steps */
    ROE__TOK_MAX_NORMS = 8,          /* normalizer steps */
    ROE__TOK_MAX_DECODERS = 8,       /* decoder steps */
};

/* ---- hash tables (tokenizer_bpe.c) ------------------------------------------------------ */

/* Byte string -> int32, open addressing with linear probing. Keys are not copied: they
 * must outlive the map (they live in the tokenizer's arena). Fixed capacity chosen at
 * init from the expected count, so lookups never see a full table. */
struct roe__strmap_slot {
    const char *key; /* NULL: empty slot */
    uint32_t len;
    int32_t value;
};
typedef struct roe__strmap {
    struct roe__strmap_slot *slots; /* [cap] */
    size_t cap;                     /* power of two, >= 2 * max_count */
    size_t count, max_count;
} roe__strmap;

roe_status roe__strmap_init(roe__strmap *m, size_t max_count, const char *what);
void roe__strmap_free(roe__strmap *m);
/* Inserts key -> value; if the key is present returns 0 and leaves it unchanged (its value
 * in *old if old != NULL), else returns 1. The caller guarantees count < max_count. */
int roe__strmap_put(roe__strmap *m, const char *key, size_t len, int32_t value, int32_t *old);
int32_t roe__strmap_get(const roe__strmap *m, const char *key, size_t len); /* -1: absent */

/* uint64 -> (int32 a, int32 b): merge pairs (left << 32 | right) -> (rank, merged id), and
 * trie edges (node << 8 | byte) -> (child, unused). */
struct roe__u64map_slot {
    uint64_t key; /* UINT64_MAX: empty slot */
    int32_t a, b;
};
typedef struct roe__u64map {
    struct roe__u64map_slot *slots; /* [cap] */
    size_t cap;
    size_t count, max_count;
} roe__u64map;

roe_status roe__u64map_init(roe__u64map *m, size_t max_count, const char *what);
void roe__u64map_free(roe__u64map *m);
void roe__u64map_put(roe__u64map *m, uint64_t key, int32_t a, int32_t b); /* overwrites */
const struct roe__u64map_slot *roe__u64map_get(const roe__u64map *m, uint64_t key);

/* ---- the tokenizer ------------------------------------------------------------------------ */

enum roe__tok_kind { ROE__TOK_HOLE = 0, ROE__TOK_VOCAB = 1, ROE__TOK_ADDED = 2 };

struct roe__token {
    const char *text; /* the string the decoder starts from: the vocab spelling, or an added
                         token's content (its normalized form if `normalized` changes it) */
    const char *bytes; /* the token's own piece: the decoder steps that act on one token at a
                          time (ByteLevel, Replace, ByteFallback, Metaspace) applied to text;
                          for streaming, may be part of a UTF-8 character */
    uint32_t n_text, n_bytes;
    uint8_t kind;     /* enum roe__tok_kind */
    uint8_t special;  /* text is the content of a special added token (skipped on request) */
    uint8_t in_vocab; /* in model.vocab (the BPE model knows it) */
};

struct roe__added {
    char *content; /* as in the file (owned, roe_malloc) */
    size_t n_content;
    char *match; /* the string matched in the text: content, or normalized content if
                    `normalized` (owned, roe_malloc) */
    size_t n_match;
    int32_t id;
    uint8_t special, lstrip, rstrip, single_word, normalized;
};

/* Leftmost-longest matcher over the added tokens of one kind (raw or normalized): a byte
 * trie, like the Aho-Corasick automaton Hugging Face builds with MatchKind::LeftmostLongest. */
typedef struct roe__trie {
    roe__u64map edges; /* (node << 8 | byte) -> child node */
    int32_t *terminal; /* [n_nodes] index into t->added of the token ending here, or -1 */
    int32_t n_nodes;   /* node 0 is the root */
    uint8_t first[32]; /* bitmap of the first bytes of the patterns */
    int n_patterns;
} roe__trie;

enum roe__split_behavior {
    ROE__SPLIT_REMOVED,
    ROE__SPLIT_ISOLATED,
    ROE__SPLIT_MERGED_WITH_PREVIOUS,
    ROE__SPLIT_MERGED_WITH_NEXT,
    ROE__SPLIT_CONTIGUOUS,
};

enum roe__step_kind { ROE__STEP_SPLIT, ROE__STEP_BYTELEVEL, ROE__STEP_METASPACE };
enum roe__prepend { ROE__PREPEND_ALWAYS, ROE__PREPEND_FIRST, ROE__PREPEND_NEVER };

struct roe__pretok_step {
    int kind;       /* enum roe__step_kind */
    pcre2_code *re; /* Split pattern; the GPT-2 pattern for ByteLevel with use_regex; the
                       replacement for Metaspace with split; else NULL */
    int behavior;   /* enum roe__split_behavior (ByteLevel: Isolated; Metaspace: MergedWithNext) */
    int invert;
    int add_prefix_space; /* ByteLevel */
    int prepend;          /* Metaspace: enum roe__prepend */
    char rep[4];          /* Metaspace: the replacement character's UTF-8 */
    uint8_t n_rep;
};

/* Normalizer steps: Unicode forms (utf8proc), Prepend, Replace. */
enum roe__norm_kind { ROE__NORM_UNICODE, ROE__NORM_PREPEND, ROE__NORM_REPLACE };
struct roe__norm {
    int kind;
    int opts;       /* UNICODE: utf8proc option set */
    char *text;     /* PREPEND: the prefix; REPLACE: the content (owned, roe_malloc) */
    size_t n_text;
    pcre2_code *re; /* REPLACE: the pattern */
};

/* Decoder steps, applied to the list of token strings in order (Hugging Face's
 * Decoder::decode_chain, then the pieces joined). */
enum roe__dec_kind {
    ROE__DEC_BYTELEVEL,
    ROE__DEC_REPLACE,
    ROE__DEC_BYTEFALLBACK,
    ROE__DEC_FUSE,
    ROE__DEC_STRIP,
    ROE__DEC_METASPACE,
};
struct roe__decoder {
    int kind;
    pcre2_code *re; /* REPLACE: the pattern */
    char *text;     /* REPLACE: the content (owned, roe_malloc) */
    size_t n_text;
    uint32_t cp;    /* STRIP: the character stripped; METASPACE: the replacement */
    size_t start, stop; /* STRIP: at most this many from each end */
    int prepend;        /* METASPACE: enum roe__prepend */
};

struct roe_tokenizer {
    char *arena; /* vocab strings as spelled in the file, then their decoded bytes */
    size_t arena_len, arena_used;

    struct roe__token *tokens; /* [n_tokens] indexed by id; holes have kind HOLE */
    int32_t n_tokens;          /* max id + 1 */
    roe__strmap by_text;       /* token as spelled in tokenizer.json -> id (find) */

    /* model (BPE, byte space) */
    int byte_level;           /* the pre-tokenizer has ByteLevel: BPE runs on bytes (each
                                 standing for its mapped char); else on the text's chars */
    int32_t byte_id[256];     /* byte level: id of the one-byte token, -1 if the vocab lacks it */
    roe__u64map char_id;      /* chars: code point -> id of the one-char vocab token */
    int32_t byte_tok[256];    /* chars: id of "<0xXX>" for byte XX, -1 if absent */
    int32_t fallback[256][2]; /* byte_fallback: ids of "<0xXX>" for the UTF-8 of the mapped
                                 char of each byte; fallback_n 0 if not all present */
    uint8_t fallback_n[256];
    roe__u64map merges;      /* (left << 32 | right) -> (rank, merged id) */
    roe__strmap vocab_bytes; /* byte level: decoded bytes -> id; built only for ignore_merges */
    int32_t unk_id;          /* -1: none */
    int fuse_unk, byte_fallback, ignore_merges;

    /* added tokens */
    struct roe__added *added; /* [n_added] */
    int32_t n_added;
    roe__trie trie_raw;  /* normalized = false: matched on the raw text */
    roe__trie trie_norm; /* normalized = true: matched on the normalized text */

    /* normalizer steps, applied in order */
    int n_norms;
    struct roe__norm norms[ROE__TOK_MAX_NORMS];

    /* pre-tokenizer */
    int n_steps;
    struct roe__pretok_step steps[ROE__TOK_MAX_STEPS];

    /* decoder: null joins the token strings with " " (Hugging Face's rule) */
    int has_decoder;
    int n_decoders;
    struct roe__decoder decoders[ROE__TOK_MAX_DECODERS];

    char *pieces; /* the tokens' pieces (roe__token.bytes), one block */

    pcre2_general_context *pcre_gctx; /* routes PCRE2 allocations to roe_malloc */

    /* GPT-2 byte <-> unicode map */
    uint16_t byte_to_cp[256];
    int16_t cp_to_byte[324]; /* code points 0..323; -1 if not in the map */
};

/* ---- text utilities (tokenizer_text.c) --------------------------------------------------- */

/* Returns 1 if s[0..n) is valid UTF-8 (no overlongs, surrogates or code points above
 * U+10FFFF); else 0 with the offset of the first bad byte in *bad. */
int roe__utf8_valid(const char *s, size_t n, size_t *bad);
/* Decodes the code point at s[i] of valid UTF-8; returns its byte length. */
size_t roe__utf8_decode(const char *s, size_t n, size_t i, uint32_t *cp);
/* Start of the code point that ends right before s[i] (i > 0). */
size_t roe__utf8_prev(const char *s, size_t i);
size_t roe__utf8_encode(uint32_t cp, char out[4]);

void roe__bytemap_init(uint16_t byte_to_cp[256], int16_t cp_to_byte[324]);

/* The utf8proc option set for a normalizer type name ("NFC", ...), or -1. */
int roe__norm_options(const char *type);

/* A growable buffer owned by one encode call. */
struct roe__buf {
    char *p;
    size_t cap;
};
roe_status roe__buf_reserve(struct roe__buf *b, size_t n);
/* Replaces the malformed parts of s[0..n) by U+FFFD as Rust's String::from_utf8_lossy does
 * (one per maximal invalid subpart), appending to b at *w. */
roe_status roe__utf8_lossy(const char *s, size_t n, struct roe__buf *b, size_t *w);

/* Applies the normalizer steps to s[0..n); *out points into one of the two buffers (or to
 * s itself when nothing changes). md: match data for Replace patterns (NULL: made here). */
roe_status roe__normalize(const roe_tokenizer *t, const char *s, size_t n, struct roe__buf ucs[2],
                          const char **out, size_t *n_out);

/* ---- Unicode sets and regexes (tokenizer_unicode.c, tokenizer_regex.c) ------------------- */

enum { ROE__UCP_MAX = 0x110000, ROE__USET_WORDS = ROE__UCP_MAX / 64 };
/* A set of code points, one bit each (139 KB: made while compiling a pattern, not after). */
typedef struct roe__uset {
    uint64_t *bits; /* [ROE__USET_WORDS] */
} roe__uset;
roe_status roe__uset_init(roe__uset *s);
void roe__uset_free(roe__uset *s);
void roe__uset_clear(roe__uset *s);
int roe__uset_has(const roe__uset *s, uint32_t cp);
int roe__uset_empty(const roe__uset *s); /* surrogates ignored */
void roe__uset_add_range(roe__uset *s, uint32_t first, uint32_t last);
/* Adds the property named name[0..len) (general categories short or long, one-letter groups,
 * LC, Any, a few scripts; Oniguruma's loose matching of names); 0 if unknown. */
int roe__uset_add_property(roe__uset *s, const char *name, size_t len);
void roe__uset_add_class(roe__uset *s, char which); /* 'w' \w, 'd' \d, 's' \s of Oniguruma */
void roe__uset_invert(roe__uset *s);
void roe__uset_or(roe__uset *dst, const roe__uset *src);

/* How a set may be spelled for the PCRE2 we run with: */
enum {
    ROE__UCD_RANGES = 0, /* PCRE2's Unicode version is unknown to us: code point ranges only */
    ROE__UCD_OLD = 1,    /* PCRE2 has the older tables we hold a delta for (Unicode 14) */
    ROE__UCD_SAME = 2,   /* PCRE2 has our tables' version */
};
int roe__ucd_pcre2_mode(void);
const char *roe__ucd_version(void); /* "16.0.0" */
int roe__ucd_gc(uint32_t cp);        /* general category index (tokenizer_unicode_data.h) */
/* Appends the body of a PCRE2 class (no brackets) matching exactly s to b at *w. */
roe_status roe__uset_spell(const roe__uset *s, int mode, struct roe__buf *b, size_t *w);

int roe__is_whitespace(uint32_t cp); /* Unicode White_Space (Rust char::is_whitespace, regex \s) */
int roe__is_word(uint32_t cp); /* Rust regex's \w (UTS #18 Word, Unicode 16), for single_word */
/* A character `tokenizers`' normalizers (Unicode 9 data) treat as an inert starter although
 * newer data (utf8proc's) gives it a combining class, decomposition or composition. */
int roe__is_norm_barrier(uint32_t cp);

/* Oniguruma pattern -> PCRE2 pattern (see tokenizer_regex.c); *out allocated (roe_free). */
roe_status roe__regex_translate(const char *pattern, size_t len, int mode, char **out, size_t *out_len);
/* Compiles a tokenizer regex (translated) or a literal string. On failure the message names
 * `field`. */
roe_status roe__regex_compile(const roe_tokenizer *t, const char *path, const char *field,
                              const char *pattern, int literal, pcre2_code **out);

/* One piece of a split: [start, end) with its match flag. */
struct roe__span {
    size_t start, end;
    int is_match;
};
struct roe__spans {
    struct roe__span *v;
    size_t n, cap;
};
roe_status roe__spans_push(struct roe__spans *s, size_t start, size_t end, int is_match);

/* Pattern::find_matches: s[0..n) covered by alternating gaps and matches of re. */
roe_status roe__find_matches(const pcre2_code *re, pcre2_match_data *md, const char *s, size_t n,
                             struct roe__spans *out);
/* Hugging Face's NormalizedString::split(pattern, behavior) on s[0..n): fills `out` with the
 * resulting pieces (empty ones dropped). */
roe_status roe__regex_split(const struct roe__pretok_step *step, pcre2_match_data *md,
                            const char *s, size_t n, struct roe__spans *out);

roe_status roe__trie_build(roe__trie *trie, const roe_tokenizer *t, int normalized);
void roe__trie_free(roe__trie *trie);
/* Leftmost-longest match of any pattern in s[from..n): returns 1 with [*ms, *me) and the
 * index into t->added, or 0. */
int roe__trie_find(const roe__trie *trie, const char *s, size_t n, size_t from, size_t *ms,
                   size_t *me, int32_t *idx);

/* ---- BPE (tokenizer_bpe.c) --------------------------------------------------------------- */

/* Scratch for the merge loop, owned by one encode call. */
struct roe__bpe_scratch {
    int32_t *id, *prev, *next; /* [cap] symbols of the word being merged */
    struct roe__merge_item *heap;
    size_t cap, heap_cap;
};
struct roe__ids {
    int32_t *v;
    size_t n, cap;
};
roe_status roe__ids_push(struct roe__ids *ids, int32_t id);

/* Appends the ids of one pre-token (raw bytes) to `out`. */
roe_status roe__bpe_word(const roe_tokenizer *t, struct roe__bpe_scratch *s, const char *w,
                         size_t n, struct roe__ids *out);
void roe__bpe_scratch_free(struct roe__bpe_scratch *s);

/* ---- loading (tokenizer_load.c, tokenizer_load_steps.c) ----------------------------------- */

roe_status roe__tokenizer_parse(roe_tokenizer *t, const char *path, const char *json, size_t len);

/* The components of tokenizer.json (tokenizer_load_steps.c). */
roe_status roe__load_normalizer(roe_tokenizer *t, const char *path, const cJSON *n,
                                const char *where, int depth);
roe_status roe__load_pretokenizer(roe_tokenizer *t, const char *path, const cJSON *p);
roe_status roe__load_decoder(roe_tokenizer *t, const char *path, const cJSON *d);
/* Reads an optional boolean: absent or null gives `def`. */
roe_status roe__json_bool(const cJSON *obj, const char *key, int def, const char *path,
                          const char *where, int *out);
/* The "type" string of a component object. */
roe_status roe__json_type(const cJSON *obj, const char *path, const char *where, const char **type);
roe_status roe__json_utf8(const char *s, const char *path, const char *where);

/* ---- decoding (tokenizer_decode.c) ------------------------------------------------------- */

/* Fills every token's piece (roe__token.bytes) from its text, once the decoder is loaded. */
roe_status roe__tokens_pieces(roe_tokenizer *t);
/* Hugging Face's Tokenizer::decode of ids (all valid) into *out (roe_malloc, NUL-terminated). */
roe_status roe__decode(const roe_tokenizer *t, const int32_t *ids, size_t n, int skip_special,
                       char **out, size_t *len);

#endif
