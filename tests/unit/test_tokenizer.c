/*
 * test_tokenizer.c — the byte-level BPE tokenizer (runtime/tokenizer.h).
 *
 * Unit tests build small tokenizer.json files in a temp dir: a vocabulary of the 256
 * byte tokens (id = byte value) plus a few merges, so expectations can be written as
 * the bytes of each token ("the| cat"). The differential tests compare against the
 * Hugging Face `tokenizers` library through fixtures in tests/data/tokenizer/NAME/
 * (tokenizer.json, text.ids for tests/data/tokenizer/text.txt, cases.jsonl), made by
 * tools/; they fail if fewer than two fixture tokenizers are present.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <utf8proc.h>

#include "harness.h"
#include "base/alloc.h"
#include "base/status.h"
#include "runtime/tokenizer.h"

#define DATA_DIR          "tests/data/tokenizer"
#define BUNDLED_TOKENIZER "models/olmoe-tiny/tokenizer.json"

static char tmp_dir[64];

/* ---- helpers ----------------------------------------------------------------------------- */

static size_t utf8_put(uint32_t cp, char *o) {
    if (cp < 0x80) return (size_t)(o[0] = (char)cp, 1);
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    o[0] = (char)(0xE0 | cp >> 12), o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
}

/* GPT-2's byte -> code point, written out independently of the runtime's table. */
static uint32_t gpt2_cp(int b) {
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))
        return (uint32_t)b;
    int n = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF))) n++;
    return 256u + (uint32_t)n;
}

struct sbuf {
    char *p;
    size_t n, cap;
};
static void sb_add(struct sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}
static void sb_str(struct sbuf *b, const char *s) {
    sb_add(b, s, strlen(s));
}

/* Parts of a test tokenizer.json; NULL fields take the defaults below. `vocab` lists
 * extra tokens in vocab spelling ("Ġthe"), given ids 256, 257, ... */
struct tj {
    const char *normalizer, *pre_tokenizer, *decoder, *added, *merges, *model_extra;
    const char *const *vocab;
    const char *raw; /* if set, the whole file */
};

static const char *DEFAULT_PRE =
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}";

static char *tj_json(const struct tj *o) {
    struct sbuf b = {0};
    sb_str(&b, "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[");
    sb_str(&b, o->added ? o->added : "");
    sb_str(&b, "],\"normalizer\":");
    sb_str(&b, o->normalizer ? o->normalizer : "null");
    sb_str(&b, ",\"pre_tokenizer\":");
    sb_str(&b, o->pre_tokenizer ? o->pre_tokenizer : DEFAULT_PRE);
    sb_str(&b, ",\"post_processor\":null,\"decoder\":");
    sb_str(&b, o->decoder
                   ? o->decoder
                   : "{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,"
                     "\"use_regex\":true}");
    /* model_extra goes first: cJSON returns the first of duplicate keys. */
    sb_str(&b, ",\"model\":{\"type\":\"BPE\"");
    sb_str(&b, o->model_extra ? o->model_extra : "");
    sb_str(&b, ",\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":null,"
               "\"end_of_word_suffix\":null,\"fuse_unk\":false,\"byte_fallback\":false,"
               "\"ignore_merges\":false");
    sb_str(&b, ",\"vocab\":{");
    for (int byte = 0; byte < 256; byte++) {
        char tok[8], line[32];
        size_t n = utf8_put(gpt2_cp(byte), tok);
        tok[n] = '\0';
        const char *esc = byte == '"' ? "\\\"" : byte == '\\' ? "\\\\" : tok;
        snprintf(line, sizeof line, "%s\"%s\":%d", byte ? "," : "", esc, byte);
        sb_str(&b, line);
    }
    for (int i = 0; o->vocab && o->vocab[i]; i++) {
        char line[128];
        snprintf(line, sizeof line, ",\"%s\":%d", o->vocab[i], 256 + i);
        sb_str(&b, line);
    }
    sb_str(&b, "},\"merges\":[");
    sb_str(&b, o->merges ? o->merges : "");
    sb_str(&b, "]}}");
    return b.p;
}

static char *write_file(const char *name, const char *content, size_t len) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", tmp_dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return NULL;
    fwrite(content, 1, len, f);
    fclose(f);
    return path;
}

/* Writes the test tokenizer to NAME.json and loads it; NULL (with the reason printed) on error. */
static roe_tokenizer *tj_load(const char *name, const struct tj *o) {
    char *json = o->raw ? strdup(o->raw) : tj_json(o);
    char file[64];
    snprintf(file, sizeof file, "%s.json", name);
    char *path = write_file(file, json, strlen(json));
    free(json);
    roe_tokenizer *t = NULL;
    if (!path || roe_tokenizer_load(path, &t) != ROE_OK) {
        fprintf(stderr, "  loading %s: %s\n", name, roe_error_message());
        return NULL;
    }
    return t;
}

/* The status and message of loading a test tokenizer that must fail. */
static roe_status tj_load_fail(const char *name, const struct tj *o) {
    char *json = o->raw ? strdup(o->raw) : tj_json(o);
    char file[64];
    snprintf(file, sizeof file, "%s.json", name);
    char *path = write_file(file, json, strlen(json));
    free(json);
    roe_tokenizer *t = NULL;
    roe_status s = roe_tokenizer_load(path, &t);
    if (s == ROE_OK) roe_tokenizer_free(t);
    return s;
}

/* Renders ids as their token bytes joined by '|'. Caller frees. */
static char *render(const roe_tokenizer *t, const int32_t *ids, size_t n) {
    struct sbuf b = {0};
    sb_str(&b, "");
    for (size_t i = 0; i < n; i++) {
        const char *bytes;
        size_t len;
        if (i) sb_str(&b, "|");
        if (roe_tokenizer_token_bytes(t, ids[i], &bytes, &len) == ROE_OK)
            sb_add(&b, bytes, len);
        else
            sb_str(&b, "<?>");
    }
    return b.p;
}

/* Encodes text and compares the token bytes with `want` ("the| cat"). */
static int enc_is(const roe_tokenizer *t, const char *text, const char *want) {
    int32_t *ids = NULL;
    size_t n = 0;
    if (roe_tokenizer_encode(t, text, strlen(text), &ids, &n) != ROE_OK) {
        fprintf(stderr, "  encode(\"%s\"): %s\n", text, roe_error_message());
        return 0;
    }
    char *got = render(t, ids, n);
    int ok = strcmp(got, want) == 0;
    if (!ok) fprintf(stderr, "  encode(\"%s\") = \"%s\", want \"%s\"\n", text, got, want);
    free(got);
    roe_free(ids);
    return ok;
}

/* decode(encode(s)) == s. */
static int round_trips(const roe_tokenizer *t, const char *s, size_t len) {
    int32_t *ids = NULL;
    size_t n = 0;
    char *back = NULL;
    size_t back_len = 0;
    if (roe_tokenizer_encode(t, s, len, &ids, &n) != ROE_OK ||
        roe_tokenizer_decode(t, ids, n, 0, &back, &back_len) != ROE_OK) {
        fprintf(stderr, "  round trip: %s\n", roe_error_message());
        roe_free(ids);
        return 0;
    }
    int ok = back_len == len && memcmp(back, s, len) == 0;
    if (!ok) fprintf(stderr, "  round trip of \"%.*s\" gave \"%s\"\n", (int)len, s, back);
    roe_free(ids);
    roe_free(back);
    return ok;
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) n = 0;
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* ---- unit tests -------------------------------------------------------------------------- */

TEST(byte_map) {
    roe_tokenizer *t = tj_load("bytemap", &(struct tj){0});
    ASSERT_TRUE(t);
    ASSERT_EQ_INT(roe_tokenizer_vocab_size(t), 256);
    /* Spot checks from GPT-2's table, then every byte. */
    ASSERT_EQ_INT(roe_tokenizer_find(t, "\xC4\xA0"), ' ');  /* U+0120 'Ġ' */
    ASSERT_EQ_INT(roe_tokenizer_find(t, "\xC4\x8A"), '\n'); /* U+010A 'Ċ' */
    ASSERT_EQ_INT(roe_tokenizer_find(t, "\xC4\x80"), 0);    /* U+0100 */
    ASSERT_EQ_INT(roe_tokenizer_find(t, "\xC4\xA1"), 127);  /* U+0121 */
    ASSERT_EQ_INT(roe_tokenizer_find(t, "\xC5\x82"), 160);  /* U+0142 */
    ASSERT_EQ_INT(roe_tokenizer_find(t, "\xC5\x83"), 173);  /* U+0143 */
    ASSERT_EQ_INT(roe_tokenizer_find(t, "\xC3\xBF"), 255);  /* U+00FF stands for itself */
    ASSERT_EQ_INT(roe_tokenizer_find(t, "A"), 'A');
    ASSERT_EQ_INT(roe_tokenizer_find(t, "nope"), -1);
    for (int b = 0; b < 256; b++) {
        const char *bytes;
        size_t len;
        ASSERT_OK(roe_tokenizer_token_bytes(t, b, &bytes, &len));
        ASSERT_EQ_INT(len, 1);
        ASSERT_EQ_INT((uint8_t)bytes[0], b);
    }
    const char *bytes;
    size_t len;
    ASSERT_FAILS_WITH(roe_tokenizer_token_bytes(t, 256, &bytes, &len), ROE_ERR_INVALID_ARG, "256");
    ASSERT_FAILS_WITH(roe_tokenizer_token_bytes(t, -1, &bytes, &len), ROE_ERR_INVALID_ARG, "-1");
    /* No merges: one token per byte. */
    ASSERT_TRUE(enc_is(t, "hi there", "h|i| |t|h|e|r|e"));
    roe_tokenizer_free(t);
}

/* Encodes text and compares the ids with want[0..n). */
static int enc_ids(const roe_tokenizer *t, const char *text, const int32_t *want, size_t n) {
    int32_t *ids = NULL;
    size_t k = 0;
    int ok = roe_tokenizer_encode(t, text, strlen(text), &ids, &k) == ROE_OK && k == n &&
             memcmp(ids, want, n * sizeof *want) == 0;
    if (!ok) {
        fprintf(stderr, "  encode(\"%s\") = [", text);
        for (size_t i = 0; ids && i < k; i++)
            fprintf(stderr, "%s%d", i ? " " : "", (int)ids[i]);
        fprintf(stderr, "], want %zu ids\n", n);
    }
    roe_free(ids);
    return ok;
}

static const char *const THE_VOCAB[] = {"he",
                                        "th",
                                        "the",
                                        "\xC4\xA0t",
                                        "\xC4\xA0the",
                                        "aa",
                                        "ll",
                                        "ell",
                                        "\xC4\xA0"
                                        "c",
                                        "at",
                                        "\xC4\xA0"
                                        "cat",
                                        NULL};

TEST(merges_both_forms_and_rank_order) {
    /* Rank order matters: "h e" (rank 0) beats "t h" (rank 1), so "the" is t + he. */
    const char *str_merges = "\"h e\",\"t h\",\"t he\",\"\xC4\xA0 t\",\"\xC4\xA0t he\",\"a a\","
                             "\"l l\",\"e ll\",\"\xC4\xA0 c\",\"a t\",\"\xC4\xA0"
                             "c at\"";
    const char *arr_merges = "[\"h\",\"e\"],[\"t\",\"h\"],[\"t\",\"he\"],[\"\xC4\xA0\",\"t\"],"
                             "[\"\xC4\xA0t\",\"he\"],[\"a\",\"a\"],[\"l\",\"l\"],[\"e\",\"ll\"],"
                             "[\"\xC4\xA0\",\"c\"],[\"a\",\"t\"],[\"\xC4\xA0"
                             "c\",\"at\"]";
    roe_tokenizer *a =
        tj_load("merges_str", &(struct tj){.vocab = THE_VOCAB, .merges = str_merges});
    roe_tokenizer *b =
        tj_load("merges_arr", &(struct tj){.vocab = THE_VOCAB, .merges = arr_merges});
    ASSERT_TRUE(a && b);
    ASSERT_EQ_INT(roe_tokenizer_vocab_size(a), 256 + 11);
    const char *texts[] = {"the cat", "th",    "the",    "tthe",      "aaa",
                           "aaaa",    "hello", "yellow", "the  cat\n"};
    const char *wants[] = {"the| cat", "th",      "the",       "t|the",        "aa|a",
                           "aa|aa",    "he|ll|o", "y|ell|o|w", "the| | cat|\n"};
    for (int i = 0; i < 9; i++) {
        ASSERT_TRUE(enc_is(a, texts[i], wants[i]));
        ASSERT_TRUE(enc_is(b, texts[i], wants[i]));
    }
    /* Reversed priority: "t h" first leaves "th" + "e", which no merge joins. */
    roe_tokenizer *c = tj_load(
        "merges_rev", &(struct tj){.vocab = THE_VOCAB, .merges = "\"t h\",\"h e\",\"t he\""});
    ASSERT_TRUE(c);
    ASSERT_TRUE(enc_is(c, "the", "th|e"));
    ASSERT_TRUE(enc_is(c, "hthe", "h|th|e"));
    roe_tokenizer_free(a);
    roe_tokenizer_free(b);
    roe_tokenizer_free(c);
}

TEST(ignore_merges) {
    /* "the" is in the vocab but no merge builds it: only ignore_merges emits it whole. */
    const char *merges = "\"t h\"";
    roe_tokenizer *a = tj_load("im_off", &(struct tj){.vocab = THE_VOCAB, .merges = merges});
    roe_tokenizer *b = tj_load("im_on", &(struct tj){.vocab = THE_VOCAB,
                                                     .merges = merges,
                                                     .model_extra = ",\"ignore_merges\":true"});
    ASSERT_TRUE(a && b);
    ASSERT_TRUE(enc_is(a, "the", "th|e"));
    ASSERT_TRUE(enc_is(b, "the", "the"));
    ASSERT_TRUE(enc_is(b, "thee", "th|e|e"));
    roe_tokenizer_free(a);
    roe_tokenizer_free(b);
}

/* A vocabulary without every byte: unknown bytes become [UNK] (fused or not), "<0xXX>"
 * tokens with byte_fallback, or vanish, as in Hugging Face's BPE::merge_word. */
TEST(unk_and_byte_fallback) {
    static const char *fmt =
        "{\"model\":{\"type\":\"BPE\",%s\"vocab\":{\"a\":0,\"b\":1,\"<unk>\":2,\"ab\":3,"
        "\"<0x78>\":4,\"<0xC4>\":5,\"<0xA0>\":6},\"merges\":[\"a b\"]},\"pre_tokenizer\":"
        "{\"type\":\"ByteLevel\",\"add_prefix_space\":false},\"decoder\":{\"type\":\"ByteLevel\"}}";
    static const char *opts[] = {"", "\"unk_token\":\"<unk>\",",
                                 "\"unk_token\":\"<unk>\",\"fuse_unk\":true,",
                                 "\"byte_fallback\":true,"};
    roe_tokenizer *t[4];
    for (int i = 0; i < 4; i++) {
        char json[1024];
        snprintf(json, sizeof json, fmt, opts[i]);
        t[i] = tj_load("unk", &(struct tj){.raw = json});
        ASSERT_TRUE(t[i]);
    }
    ASSERT_TRUE(enc_ids(t[0], "ab", (int32_t[]){3}, 1));
    ASSERT_TRUE(enc_ids(t[0], "azzb", (int32_t[]){3}, 1)); /* dropped bytes let a+b merge */
    ASSERT_TRUE(enc_ids(t[1], "azzb", (int32_t[]){0, 2, 2, 1}, 4));
    ASSERT_TRUE(enc_ids(t[2], "azzb", (int32_t[]){0, 2, 1}, 3));
    /* 'x' is its own char in the byte map; ' ' is U+0120, UTF-8 C4 A0. */
    ASSERT_TRUE(enc_ids(t[3], "ax x", (int32_t[]){0, 4, 5, 6, 4}, 5));
    for (int i = 0; i < 4; i++)
        roe_tokenizer_free(t[i]);
}

/* Five added tokens with ids base..base+4 (base = the first id after the vocab, as
 * Hugging Face assigns them). Caller frees. */
static char *added_json(int base) {
    static const char *fmt =
        "{\"id\":%d,\"content\":\"<|endoftext|>\",\"single_word\":false,\"lstrip\":false,"
        "\"rstrip\":false,\"normalized\":false,\"special\":true},"
        "{\"id\":%d,\"content\":\"<|end|>\",\"single_word\":false,\"lstrip\":false,"
        "\"rstrip\":false,\"normalized\":false,\"special\":true},"
        "{\"id\":%d,\"content\":\"<mask>\",\"single_word\":false,\"lstrip\":true,"
        "\"rstrip\":true,\"normalized\":true,\"special\":false},"
        "{\"id\":%d,\"content\":\"<w>\",\"single_word\":true,\"lstrip\":false,"
        "\"rstrip\":false,\"normalized\":false,\"special\":false},"
        "{\"id\":%d,\"content\":\"caf\xC3\xA9\",\"single_word\":false,\"lstrip\":false,"
        "\"rstrip\":false,\"normalized\":true,\"special\":false}";
    char *s = malloc(1024);
    snprintf(s, 1024, fmt, base, base + 1, base + 2, base + 3, base + 4);
    return s;
}

TEST(added_tokens) {
    char *added = added_json(256);
    roe_tokenizer *t =
        tj_load("added", &(struct tj){.added = added, .normalizer = "{\"type\":\"NFC\"}"});
    free(added);
    ASSERT_TRUE(t);
    ASSERT_EQ_INT(roe_tokenizer_vocab_size(t), 261);
    ASSERT_EQ_INT(roe_tokenizer_find(t, "<|endoftext|>"), 256);
    ASSERT_TRUE(roe_tokenizer_is_special(t, 256));
    ASSERT_TRUE(!roe_tokenizer_is_special(t, 258));
    ASSERT_TRUE(!roe_tokenizer_is_special(t, 'a'));
    ASSERT_TRUE(enc_is(t, "a<|endoftext|>b", "a|<|endoftext|>|b"));
    /* Longest match at the leftmost position. */
    ASSERT_TRUE(enc_is(t, "<|end|><|endoftext|>", "<|end|>|<|endoftext|>"));
    ASSERT_TRUE(enc_is(t, "<|endof", "<|||e|n|d|o|f"));
    /* lstrip / rstrip swallow the surrounding whitespace. */
    ASSERT_TRUE(enc_is(t, "x  <mask>\ty", "x|<mask>|y"));
    /* single_word: only between non-word characters. */
    ASSERT_TRUE(enc_is(t, "a<w>", "a|<|w|>"));
    ASSERT_TRUE(enc_is(t, "a <w>.", "a| |<w>|."));
    /* normalized=true tokens match the NFC form of the text: "cafe\u0301" == "café". Its
     * piece is what the ByteLevel decoder makes of "café": every char is in the byte map, so
     * the bytes c a f 0xE9 (Hugging Face decodes it to "caf\ufffd"). */
    ASSERT_TRUE(enc_is(t, "cafe\xCC\x81!", "caf\xE9|!"));

    int32_t ids[] = {'a', 256, 'b', 257, 258};
    char *text;
    size_t len;
    ASSERT_OK(roe_tokenizer_decode(t, ids, 5, 0, &text, &len));
    ASSERT_EQ_STR(text, "a<|endoftext|>b<|end|><mask>");
    ASSERT_EQ_INT(len, strlen(text));
    roe_free(text);
    ASSERT_OK(roe_tokenizer_decode(t, ids, 5, ROE_DECODE_SKIP_SPECIAL, &text, &len));
    ASSERT_EQ_STR(text, "ab<mask>");
    roe_free(text);
    int32_t bad[] = {'a', 261};
    ASSERT_FAILS_WITH(roe_tokenizer_decode(t, bad, 2, 0, &text, &len), ROE_ERR_INVALID_ARG,
                      "ids[1] = 261");
    roe_tokenizer_free(t);
}

TEST(prefix_space_and_split_behaviors) {
    roe_tokenizer *t = tj_load(
        "prefix",
        &(struct tj){.vocab = THE_VOCAB,
                     .merges = "\"\xC4\xA0 t\",\"h e\",\"\xC4\xA0t he\",\"t he\"",
                     .pre_tokenizer =
                         "{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"use_regex\":true}"});
    ASSERT_TRUE(t);
    ASSERT_TRUE(enc_is(t, "the", " the"));
    ASSERT_TRUE(enc_is(t, " the", " the"));
    roe_tokenizer_free(t);

    /* Split on " " with each behavior, then ByteLevel without regex; the merge "a Ġ" shows
     * where the pieces end. */
    static const char *const v[] = {"a\xC4\xA0",
                                    "\xC4\xA0"
                                    "b",
                                    NULL};
    const char *merges = "\"a \xC4\xA0\",\"\xC4\xA0 b\"";
    const char *behaviors[] = {"Isolated", "Removed", "MergedWithPrevious", "MergedWithNext",
                               "Contiguous"};
    const char *wants[] = {"a| |b", "a|b", "a |b", "a| b", "a| |b"};
    for (int i = 0; i < 5; i++) {
        char pre[512];
        snprintf(pre, sizeof pre,
                 "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":"
                 "{\"String\":\" \"},\"behavior\":\"%s\",\"invert\":false},{\"type\":\"ByteLevel\","
                 "\"add_prefix_space\":false,\"trim_offsets\":false,\"use_regex\":false}]}",
                 behaviors[i]);
        roe_tokenizer *s =
            tj_load("split", &(struct tj){.vocab = v, .merges = merges, .pre_tokenizer = pre});
        ASSERT_TRUE(s);
        int ok = enc_is(s, "a b", wants[i]);
        roe_tokenizer_free(s);
        if (!ok) TEST__FAIL("behavior %s", behaviors[i]);
    }
    /* Contiguous groups runs of matches; invert swaps what counts as the delimiter. */
    const char *pre = "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":"
                      "{\"Regex\":\"[a-z]\"},\"behavior\":\"Removed\",\"invert\":true},"
                      "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}]}";
    roe_tokenizer *s =
        tj_load("invert", &(struct tj){.vocab = v, .merges = merges, .pre_tokenizer = pre});
    ASSERT_TRUE(s);
    ASSERT_TRUE(enc_is(s, "a b", "a|b"));
    roe_tokenizer_free(s);
}

TEST(qwen_style_regex) {
    /* Qwen2's pattern: digits one at a time, punctuation runs keep their newlines. */
    const char *pre =
        "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
        "\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| "
        "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},"
        "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":"
        "false,\"trim_offsets\":false,\"use_regex\":false}]}";
    static const char *const v[] = {"12", "\xC4\xA0\xC4\xA0", "'M", NULL};
    roe_tokenizer *t =
        tj_load("qwen", &(struct tj){.vocab = v,
                                     .pre_tokenizer = pre,
                                     .merges = "\"1 2\",\"\xC4\xA0 \xC4\xA0\",\"' M\""});
    ASSERT_TRUE(t);
    ASSERT_TRUE(enc_is(t, "x12", "x|1|2"));      /* \p{N} alone: no "12" */
    ASSERT_TRUE(enc_is(t, "I'M", "I|'M"));       /* (?i:'m) keeps 'M whole */
    ASSERT_TRUE(enc_is(t, "a   b", "a|  | |b")); /* \s+(?!\S) leaves one space */
    roe_tokenizer_free(t);
    /* With GPT-2's pattern "12" stays one pre-token. */
    static const char *const gv[] = {"12", "\xC4\xA0\xC3\xA1", NULL};
    roe_tokenizer *g =
        tj_load("gpt2re", &(struct tj){.vocab = gv, .merges = "\"1 2\",\"\xC4\xA0 \xC3\xA1\""});
    ASSERT_TRUE(g);
    ASSERT_TRUE(enc_is(g, "x12", "x|12"));
    /* U+180E is not whitespace for Hugging Face (Oniguruma): " \u180E!" is one punctuation
     * pre-token, so the space merges with the first byte of U+180E. */
    ASSERT_TRUE(enc_is(g, "a \xE1\xA0\x8E!", "a| \xE1|\xA0|\x8E|!"));
    roe_tokenizer_free(g);
}

TEST(utf8_round_trip) {
    roe_tokenizer *t =
        tj_load("rt", &(struct tj){.vocab = THE_VOCAB,
                                   .merges = "\"h e\",\"t he\",\"\xC4\xA0 t\",\"\xC4\xA0t he\""});
    ASSERT_TRUE(t);
    static const char *cases[] = {
        "",
        " ",
        "the",
        "   leading and trailing   ",
        "tabs\there\t\tand\t",
        "windows\r\nline\r\nends\r\n",
        "\n\n\nblank lines\n\n",
        "emoji \xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD and ZWJ "
        "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9",
        "CJK "
        "\xE4\xB8\xAD\xE6\x96\x87\xE6\xB5\x8B\xE8\xAF\x95\xE3\x80\x82\xE6\x97\xA5\xE6\x9C\xAC\xE8"
        "\xAA\x9E",
        "combining e\xCC\x81 and \xC3\xA9",
        "nbsp\xC2\xA0"
        "and ideographic\xE3\x80\x80space",
        "quotes 's 't 're 've 'm 'll 'd \"x\" \\ back",
        "digits 1234567890 and 3.14159",
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        ASSERT_TRUE(round_trips(t, cases[i], strlen(cases[i])));
    /* Every byte value, NUL included, through one text. */
    char all[256];
    for (int b = 0; b < 256; b++)
        all[b] = (char)(b < 128 ? b : 'x');
    ASSERT_TRUE(round_trips(t, all, 128));

    /* Invalid UTF-8 is refused with its byte offset. */
    int32_t *ids;
    size_t n;
    static const struct {
        const char *s;
        const char *offset;
    } bad[] = {
        {"ok\xFF", "offset 2"},
        {"\xC0\xAF", "offset 0"},         /* overlong '/' */
        {"ab\xED\xA0\x80", "offset 2"},   /* surrogate U+D800 */
        {"abc\xE2\x82", "offset 3"},      /* truncated */
        {"\xF4\x90\x80\x80", "offset 0"}, /* above U+10FFFF */
        {"x\x80", "offset 1"},            /* lone continuation */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ASSERT_FAILS_WITH(roe_tokenizer_encode(t, bad[i].s, strlen(bad[i].s), &ids, &n),
                          ROE_ERR_INVALID_ARG, bad[i].offset);
    /* Empty input gives zero ids and a buffer to free. */
    ASSERT_OK(roe_tokenizer_encode(t, "", 0, &ids, &n));
    ASSERT_EQ_INT(n, 0);
    roe_free(ids);
    roe_tokenizer_free(t);
}

TEST(nfc_normalizer) {
    roe_tokenizer *t = tj_load(
        "nfc",
        &(struct tj){.normalizer = "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFC\"}]}"});
    ASSERT_TRUE(t);
    /* e + U+0301 composes to U+00E9 before splitting. */
    ASSERT_TRUE(enc_is(t, "e\xCC\x81", "\xC3|\xA9"));
    int32_t *ids;
    size_t n;
    char *text;
    size_t len;
    ASSERT_OK(roe_tokenizer_encode(t, "Cafe\xCC\x81", 6, &ids, &n));
    ASSERT_OK(roe_tokenizer_decode(t, ids, n, 0, &text, &len));
    ASSERT_EQ_STR(text, "Caf\xC3\xA9");
    roe_free(ids);
    roe_free(text);
    roe_tokenizer_free(t);
}

#define SEQ(...) "{\"type\":\"Sequence\",\"pretokenizers\":[" __VA_ARGS__ "]}"
#define SPLIT(pat, beh)                                                                            \
    "{\"type\":\"Split\",\"pattern\":" pat ",\"behavior\":\"" beh "\",\"invert\":false}"
#define BL_NOREGEX "{\"type\":\"ByteLevel\",\"use_regex\":false}"
#define RAW_MODEL(vocab)                                                                           \
    "{\"model\":{\"type\":\"BPE\",\"vocab\":" vocab ",\"merges\":[]},\"pre_tokenizer\":{\"type\":" \
    "\"ByteLevel\"},\"decoder\":{\"type\":\"ByteLevel\"}}"

/* Each bad file is refused with the expected status and a message naming the file and field. */
TEST(load_errors) {
    char missing[128];
    snprintf(missing, sizeof missing, "%s/does-not-exist.json", tmp_dir);
    roe_tokenizer *t;
    ASSERT_FAILS_WITH(roe_tokenizer_load(missing, &t), ROE_ERR_IO, "does-not-exist.json");
    static const struct {
        const char *name;
        struct tj tj;
        roe_status want;
        const char *needle;
    } cases[] = {
        // clang-format off
        {"badjson", {.raw = "{\"model\": {"}, ROE_ERR_FORMAT, "badjson.json: not valid JSON"},
        {"nomodel", {.raw = "{\"normalizer\":null}"},
         ROE_ERR_FORMAT, "nomodel.json: model: missing"},
        {"wordpiece", {.raw = "{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}"},
         ROE_ERR_UNSUPPORTED, "wordpiece.json: model.type: \"WordPiece\" is unsupported"},
        {"badmerge", {.vocab = THE_VOCAB, .merges = "\"h e\",\"a b c\""},
         ROE_ERR_FORMAT, "badmerge.json: model.merges[1]: expected \"a b\""},
        {"badmerge2", {.vocab = THE_VOCAB, .merges = "\"h e\",[\"t\"]"},
         ROE_ERR_FORMAT, "model.merges[1]: expected"},
        {"badmerge3", {.vocab = THE_VOCAB, .merges = "42"},
         ROE_ERR_FORMAT, "model.merges[0]: expected"},
        {"oovmerge", {.vocab = THE_VOCAB, .merges = "\"x y\""},
         ROE_ERR_FORMAT, "model.merges[0]: token \"xy\" is not in model.vocab"},
        {"lower", {.normalizer = "{\"type\":\"Lowercase\"}"},
         ROE_ERR_UNSUPPORTED, "lower.json: normalizer.type: \"Lowercase\" is unsupported"},
        {"seqstrip", {.normalizer = "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFC\"},"
                                    "{\"type\":\"Strip\"}]}"},
         ROE_ERR_UNSUPPORTED, "normalizer.normalizers[1].type: \"Strip\""},
        {"dropout", {.model_extra = ",\"dropout\":0.1"}, ROE_ERR_UNSUPPORTED, "model.dropout"},
        {"prefix", {.model_extra = ",\"continuing_subword_prefix\":\"##\""},
         ROE_ERR_UNSUPPORTED, "model.continuing_subword_prefix"},
        {"suffix", {.model_extra = ",\"end_of_word_suffix\":\"</w>\""},
         ROE_ERR_UNSUPPORTED, "model.end_of_word_suffix"},
        {"ws", {.pre_tokenizer = "{\"type\":\"Whitespace\"}"},
         ROE_ERR_UNSUPPORTED, "pre_tokenizer.type: \"Whitespace\""},
        {"msbl", {.pre_tokenizer = SEQ("{\"type\":\"Metaspace\",\"replacement\":\"_\"}," BL_NOREGEX)},
         ROE_ERR_UNSUPPORTED, "pre_tokenizer: both Metaspace and ByteLevel"},
        {"msrep", {.pre_tokenizer = "{\"type\":\"Metaspace\",\"replacement\":\"ab\"}"},
         ROE_ERR_FORMAT, "pre_tokenizer.replacement: expected one character"},
        {"msscheme", {.pre_tokenizer = "{\"type\":\"Metaspace\",\"replacement\":\"_\","
                                       "\"prepend_scheme\":\"sometimes\"}"},
         ROE_ERR_FORMAT, "pre_tokenizer.prepend_scheme"},
        {"msaps", {.pre_tokenizer = "{\"type\":\"Metaspace\",\"replacement\":\"_\","
                                    "\"add_prefix_space\":false}"},
         ROE_ERR_FORMAT, "add_prefix_space false does not match prepend_scheme"},
        {"prepend", {.normalizer = "{\"type\":\"Prepend\"}"},
         ROE_ERR_FORMAT, "normalizer.prepend: expected a string"},
        {"replace", {.normalizer = "{\"type\":\"Replace\",\"pattern\":{\"Glob\":\"*\"},\"content\":\"x\"}"},
         ROE_ERR_FORMAT, "normalizer.pattern: expected"},
        {"strip", {.decoder = "{\"type\":\"Strip\",\"content\":\" \",\"start\":-1,\"stop\":0}"},
         ROE_ERR_FORMAT, "decoder.start: expected a count"},
        {"onigx", {.pre_tokenizer = SEQ(SPLIT("{\"Regex\":\"(?x) a\"}", "Isolated") "," BL_NOREGEX)},
         ROE_ERR_UNSUPPORTED, "the regex \"(?x) a\": the (?x) option"},
        {"onigand", {.pre_tokenizer = SEQ(SPLIT("{\"Regex\":\"[a-z&&[^c]]\"}", "Isolated") "," BL_NOREGEX)},
         ROE_ERR_UNSUPPORTED, "class intersection && at offset 4"},
        {"onigcase", {.pre_tokenizer = SEQ(SPLIT("{\"Regex\":\"(?i:\\\\p{Lu})\"}", "Isolated") "," BL_NOREGEX)},
         ROE_ERR_UNSUPPORTED, "\\p{Lu} inside (?i)"},
        {"onigprop", {.pre_tokenizer = SEQ(SPLIT("{\"Regex\":\"\\\\p{Ogham}\"}", "Isolated") "," BL_NOREGEX)},
         ROE_ERR_UNSUPPORTED, "the property \\p{Ogham} is not in roe's Unicode 16.0.0 tables"},
        {"onigX", {.pre_tokenizer = SEQ(SPLIT("{\"Regex\":\"\\\\X\"}", "Isolated") "," BL_NOREGEX)},
         ROE_ERR_UNSUPPORTED, "\\X at offset 0 is not supported"},
        {"badre", {.pre_tokenizer = SEQ(SPLIT("{\"Regex\":\"(a\"}", "Isolated") "," BL_NOREGEX)},
         ROE_ERR_UNSUPPORTED, "pre_tokenizer.pretokenizers[0].pattern.Regex: cannot compile"},
        {"badbeh", {.pre_tokenizer = SEQ(SPLIT("{\"String\":\" \"}", "Sideways") "," BL_NOREGEX)},
         ROE_ERR_UNSUPPORTED, "pre_tokenizer.pretokenizers[0].behavior: \"Sideways\""},
        {"wpdec", {.decoder = "{\"type\":\"WordPiece\"}"},
         ROE_ERR_UNSUPPORTED, "decoder.type: \"WordPiece\""},
        {"trunc", {.raw = "{\"truncation\":5,\"model\":{}}"},
         ROE_ERR_FORMAT, "trunc.json: truncation: expected an object or null"},
        {"badid", {.raw = RAW_MODEL("{\"a\":-3}")},
         ROE_ERR_FORMAT, "model.vocab[\"a\"]: expected an id"},
        {"bigid", {.raw = RAW_MODEL("{\"a\":99999999999}")}, ROE_ERR_FORMAT, "model.vocab[\"a\"]"},
        {"dupid", {.raw = RAW_MODEL("{\"a\":1,\"b\":1}")}, ROE_ERR_FORMAT, "id 1 is already taken"},
        {"badadded", {.added = "{\"id\":300}"},
         ROE_ERR_FORMAT, "added_tokens[0].content: expected a string"},
        // clang-format on
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        ASSERT_FAILS_WITH(tj_load_fail(cases[i].name, &cases[i].tj), cases[i].want,
                          cases[i].needle);
}

/* Every allocation of load and encode can fail; each failure is a clean status (and, under
 * valgrind, leaks nothing). */
TEST(allocation_failures) {
    char *added = added_json(256 + 11);
    char *json =
        tj_json(&(struct tj){.vocab = THE_VOCAB,
                             .added = added,
                             .normalizer = "{\"type\":\"NFC\"}",
                             .merges = "\"h e\",\"t he\",\"\xC4\xA0 t\",\"\xC4\xA0t he\""});
    char *path = write_file("faults.json", json, strlen(json));
    free(json);
    free(added);
    ASSERT_TRUE(path);
    char saved[256];
    snprintf(saved, sizeof saved, "%s", path);
    roe_tokenizer *t = NULL;
    int n_fail = 0;
    for (uint64_t k = 1;; k++) {
        uint64_t before = roe_alloc_failures();
        roe_alloc_fail_after(k, 0);
        roe_status s = roe_tokenizer_load(saved, &t);
        int injected = roe_alloc_failures() > before;
        roe_alloc_fail_after(0, 0);
        if (s == ROE_OK && !injected) break;
        if (s == ROE_OK) { /* the failed allocation was not needed */
            roe_tokenizer_free(t);
            t = NULL;
            continue;
        }
        ASSERT_TRUE(t == NULL);
        ASSERT_EQ_INT(s, ROE_ERR_NOMEM);
        n_fail++;
        if (k > 10000) break;
    }
    ASSERT_TRUE(t != NULL);
    ASSERT_TRUE(n_fail > 5);
    const char *text = "the caf\xC3\xA9 <|endoftext|> x  <mask> y cafe\xCC\x81";
    for (uint64_t k = 1; k < 200; k++) {
        int32_t *ids = NULL;
        size_t n = 0;
        uint64_t before = roe_alloc_failures();
        roe_alloc_fail_after(k, 0);
        roe_status s = roe_tokenizer_encode(t, text, strlen(text), &ids, &n);
        int injected = roe_alloc_failures() > before;
        roe_alloc_fail_after(0, 0);
        if (s == ROE_OK) {
            roe_free(ids);
            if (!injected) break;
        } else {
            ASSERT_TRUE(ids == NULL);
            ASSERT_EQ_INT(s, ROE_ERR_NOMEM);
        }
    }
    roe_tokenizer_free(t);
}

struct thread_job {
    const roe_tokenizer *t;
    const char *text;
    size_t len;
    int32_t *ids;
    size_t n;
    roe_status s;
};
static void *encode_job(void *p) {
    struct thread_job *j = p;
    for (int rep = 0; rep < 20; rep++) {
        roe_free(j->ids);
        j->ids = NULL;
        j->s = roe_tokenizer_encode(j->t, j->text, j->len, &j->ids, &j->n);
        if (j->s != ROE_OK) break;
    }
    return NULL;
}

TEST(concurrent_encode) {
    char *added = added_json(256 + 11);
    roe_tokenizer *t = tj_load(
        "threads", &(struct tj){.vocab = THE_VOCAB,
                                .added = added,
                                .merges = "\"h e\",\"t he\",\"\xC4\xA0 t\",\"\xC4\xA0t he\""});
    free(added);
    ASSERT_TRUE(t);
    struct sbuf b = {0};
    for (int i = 0; i < 200; i++)
        sb_str(&b, "the cat <|endoftext|> sat on the mat, 123 \xE4\xB8\xAD\xE6\x96\x87!\n");
    struct thread_job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (struct thread_job){.t = t, .text = b.p, .len = b.n};
        pthread_create(&th[i], NULL, encode_job, &jobs[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    int same = 1;
    for (int i = 0; i < 4; i++) {
        if (jobs[i].s != ROE_OK || jobs[i].n != jobs[0].n ||
            memcmp(jobs[i].ids, jobs[0].ids, jobs[0].n * sizeof(int32_t)) != 0)
            same = 0;
    }
    for (int i = 0; i < 4; i++)
        roe_free(jobs[i].ids);
    free(b.p);
    roe_tokenizer_free(t);
    ASSERT_TRUE(same);
}

/* ---- differential tests against Hugging Face ---------------------------------------------- */

static void print_escaped(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            fputs("\\n", stderr);
        else if (c == '\r')
            fputs("\\r", stderr);
        else if (c == '\t')
            fputs("\\t", stderr);
        else if (c < 0x20 || c == 0x7F)
            fprintf(stderr, "\\x%02x", c);
        else
            fputc(c, stderr);
    }
}

static void print_token(const roe_tokenizer *t, int32_t id) {
    const char *b;
    size_t n;
    fprintf(stderr, "%d \"", (int)id);
    if (roe_tokenizer_token_bytes(t, id, &b, &n) == ROE_OK)
        print_escaped(b, n);
    else
        fputs("<not a token>", stderr);
    fputs("\"", stderr);
}

/* Compares our ids with the reference; on mismatch prints the first differing index, both
 * tokens and the text around it. Returns 1 if equal. */
static int compare_ids(const roe_tokenizer *t, const char *what, const char *text, size_t text_len,
                       const int32_t *ours, size_t n_ours, const int32_t *ref, size_t n_ref) {
    size_t i = 0;
    while (i < n_ours && i < n_ref && ours[i] == ref[i])
        i++;
    if (i == n_ours && i == n_ref) return 1;
    size_t at = 0; /* byte offset of token i in the (unnormalized) text, from our tokens */
    for (size_t k = 0; k < i; k++) {
        const char *b;
        size_t n;
        if (roe_tokenizer_token_bytes(t, ours[k], &b, &n) == ROE_OK) at += n;
    }
    fprintf(stderr,
            "  %s: %zu ids (ours) vs %zu (Hugging Face); first difference at index %zu:\n    ours ",
            what, n_ours, n_ref, i);
    if (i < n_ours)
        print_token(t, ours[i]);
    else
        fputs("(end)", stderr);
    fputs("\n    HF   ", stderr);
    if (i < n_ref)
        print_token(t, ref[i]);
    else
        fputs("(end)", stderr);
    size_t from = at > 40 ? at - 40 : 0, to = at + 40 < text_len ? at + 40 : text_len;
    if (from > text_len) from = text_len;
    fprintf(stderr, "\n    text around byte %zu: \"", at);
    print_escaped(text + from, to - from);
    fputs("\"\n", stderr);
    return 0;
}

static int32_t *parse_ids(const char *s, size_t *n) {
    size_t cap = 1024;
    int32_t *v = malloc(cap * sizeof *v);
    *n = 0;
    char *end;
    for (;;) {
        long x = strtol(s, &end, 10);
        if (end == s) break;
        if (*n == cap) {
            int32_t *grown = realloc(v, (cap *= 2) * sizeof *v);
            if (!grown) abort(); /* a test out of memory */
            v = grown;
        }
        v[(*n)++] = (int32_t)x;
        s = end;
    }
    return v;
}

/* The text a round trip should give back: NFC(text) when the tokenizer normalizes with NFC. */
static char *expected_round_trip(const char *tok_json, size_t tok_len, const char *text, size_t len,
                                 size_t *out_len) {
    cJSON *root = cJSON_ParseWithLength(tok_json, tok_len);
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    int nfc = 0;
    if (cJSON_IsObject(norm)) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(norm, "type");
        nfc = cJSON_IsString(type) && strcmp(type->valuestring, "NFC") == 0;
        if (cJSON_IsString(type) && strcmp(type->valuestring, "Sequence") == 0) {
            const cJSON *item;
            cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(norm, "normalizers")) {
                const cJSON *ty = cJSON_GetObjectItemCaseSensitive(item, "type");
                if (cJSON_IsString(ty) && strcmp(ty->valuestring, "NFC") == 0) nfc = 1;
            }
        }
    }
    cJSON_Delete(root);
    if (!nfc) {
        char *c = malloc(len + 1);
        memcpy(c, text, len);
        c[len] = '\0';
        *out_len = len;
        return c;
    }
    utf8proc_uint8_t *r = NULL;
    utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len, &r,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    *out_len = n < 0 ? 0 : (size_t)n;
    return (char *)r;
}

/* Runs one fixture directory; returns the number of failed checks. */
static int check_fixture(const char *name, const char *text, size_t text_len) {
    char path[512];
    int failures = 0;
    snprintf(path, sizeof path, DATA_DIR "/%.200s/tokenizer.json", name);
    roe_tokenizer *t = NULL;
    if (roe_tokenizer_load(path, &t) != ROE_OK) {
        fprintf(stderr, "  %s: %s\n", name, roe_error_message());
        return 1;
    }
    size_t tok_len;
    char *tok_json = read_all(path, &tok_len);

    /* 1. The whole text.txt, token for token, and its speed. */
    snprintf(path, sizeof path, DATA_DIR "/%.200s/text.ids", name);
    size_t ids_len;
    char *ids_txt = read_all(path, &ids_len);
    if (!ids_txt) {
        fprintf(stderr, "  %s: missing %s\n", name, path);
        failures++;
    } else {
        size_t n_ref;
        int32_t *ref = parse_ids(ids_txt, &n_ref);
        int32_t *ours = NULL;
        size_t n_ours = 0;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        roe_status s = roe_tokenizer_encode(t, text, text_len, &ours, &n_ours);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        if (s != ROE_OK) {
            fprintf(stderr, "  %s: encode(text.txt): %s\n", name, roe_error_message());
            failures++;
        } else {
            char what[128];
            snprintf(what, sizeof what, "%.100s/text.ids", name);
            if (!compare_ids(t, what, text, text_len, ours, n_ours, ref, n_ref)) failures++;
            fprintf(stderr, "  %s: text.txt (%zu bytes) -> %zu ids in %.1f ms\n", name, text_len,
                    n_ours, ms);
            if (ms > 1000) {
                fprintf(stderr, "  %s: encoding %zu bytes took %.0f ms (limit 1000)\n", name,
                        text_len, ms);
                failures++;
            }
            /* 2. Round trip of the whole text. */
            size_t want_len, back_len;
            char *want = expected_round_trip(tok_json, tok_len, text, text_len, &want_len);
            char *back = NULL;
            if (roe_tokenizer_decode(t, ours, n_ours, 0, &back, &back_len) != ROE_OK ||
                back_len != want_len || memcmp(back, want, want_len) != 0) {
                size_t k = 0;
                while (back && k < back_len && k < want_len && back[k] == want[k])
                    k++;
                fprintf(stderr,
                        "  %s: decode(encode(text.txt)) differs from the text at byte %zu\n", name,
                        k);
                failures++;
            }
            roe_free(back);
            free(want);
        }
        roe_free(ours);
        free(ref);
        free(ids_txt);
    }

    /* 3. cases.jsonl: {"text", "ids", "decoded"} per line. */
    snprintf(path, sizeof path, DATA_DIR "/%.200s/cases.jsonl", name);
    size_t cases_len;
    char *cases = read_all(path, &cases_len);
    int n_cases = 0;
    if (!cases) {
        fprintf(stderr, "  %s: missing %s\n", name, path);
        failures++;
    }
    for (char *line = cases; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        if (*line) {
            cJSON *c = cJSON_Parse(line);
            const cJSON *jt = cJSON_GetObjectItemCaseSensitive(c, "text");
            const cJSON *ji = cJSON_GetObjectItemCaseSensitive(c, "ids");
            const cJSON *jd = cJSON_GetObjectItemCaseSensitive(c, "decoded");
            if (!cJSON_IsString(jt) || !cJSON_IsArray(ji)) {
                fprintf(stderr, "  %s: cases.jsonl line %d is malformed\n", name, n_cases + 1);
                failures++;
            } else {
                size_t n_ref = (size_t)cJSON_GetArraySize(ji), n_ours = 0;
                int32_t *ref = malloc((n_ref + 1) * sizeof *ref), *ours = NULL;
                size_t k = 0;
                const cJSON *x;
                cJSON_ArrayForEach(x, ji) ref[k++] = (int32_t)x->valuedouble;
                const char *ct = jt->valuestring;
                char what[96];
                snprintf(what, sizeof what, "%.60s/cases.jsonl[%d]", name, n_cases);
                if (roe_tokenizer_encode(t, ct, strlen(ct), &ours, &n_ours) != ROE_OK) {
                    fprintf(stderr, "  %s: %s\n", what, roe_error_message());
                    failures++;
                } else if (!compare_ids(t, what, ct, strlen(ct), ours, n_ours, ref, n_ref)) {
                    fprintf(stderr, "    case text: \"");
                    print_escaped(ct, strlen(ct));
                    fprintf(stderr, "\"\n");
                    failures++;
                }
                char *dec = NULL;
                size_t dec_len;
                if (cJSON_IsString(jd)) {
                    if (roe_tokenizer_decode(t, ref, n_ref, 0, &dec, &dec_len) != ROE_OK ||
                        strcmp(dec, jd->valuestring) != 0) {
                        fprintf(stderr, "  %s: decode gives \"", what);
                        if (dec) print_escaped(dec, dec_len);
                        fprintf(stderr, "\", Hugging Face \"");
                        print_escaped(jd->valuestring, strlen(jd->valuestring));
                        fprintf(stderr, "\"\n");
                        failures++;
                    }
                }
                roe_free(dec);
                roe_free(ours);
                free(ref);
            }
            cJSON_Delete(c);
            n_cases++;
        }
        line = nl ? nl + 1 : NULL;
    }
    if (cases && n_cases == 0) {
        fprintf(stderr, "  %s: cases.jsonl is empty\n", name);
        failures++;
    }
    fprintf(stderr, "  %s: %d cases\n", name, n_cases);
    free(cases);
    free(tok_json);
    roe_tokenizer_free(t);
    return failures;
}

TEST(differential_hugging_face) {
    size_t text_len;
    char *text = read_all(DATA_DIR "/text.txt", &text_len);
    if (!text) TEST__FAIL("missing " DATA_DIR "/text.txt (made by tools/)");
    ASSERT_TRUE(text);
    if (text_len < 20000) TEST__FAIL("text.txt is only %zu bytes", text_len);
    DIR *d = opendir(DATA_DIR);
    ASSERT_TRUE(d);
    char names[16][256];
    int n = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) && n < 16) {
        char p[600];
        struct stat st;
        snprintf(p, sizeof p, DATA_DIR "/%.200s/tokenizer.json", ent->d_name);
        if (ent->d_name[0] != '.' && stat(p, &st) == 0)
            snprintf(names[n++], 256, "%s", ent->d_name);
    }
    closedir(d);
    int failures = 0;
    for (int i = 0; i < n; i++)
        failures += check_fixture(names[i], text, text_len);
    free(text);
    if (n < 2) TEST__FAIL("found %d fixture tokenizers in " DATA_DIR ", need at least 2", n);
    if (failures) TEST__FAIL("%d differential checks failed", failures);
}

TEST(bundled_model_tokenizer) {
    struct stat st;
    if (stat(BUNDLED_TOKENIZER, &st) != 0) {
        fprintf(stderr, "  (no %s yet: skipped)\n", BUNDLED_TOKENIZER);
        return;
    }
    roe_tokenizer *t = NULL;
    ASSERT_OK(roe_tokenizer_load(BUNDLED_TOKENIZER, &t));
    ASSERT_TRUE(roe_tokenizer_vocab_size(t) > 256);
    const char *s = "Hello, world! The quick brown fox jumps over the lazy dog.\n\tIndented 123.";
    ASSERT_TRUE(round_trips(t, s, strlen(s)));
    size_t text_len;
    char *text = read_all(DATA_DIR "/text.txt", &text_len);
    if (text) {
        int ok = round_trips(t, text, text_len);
        free(text);
        ASSERT_TRUE(ok);
    }
    roe_tokenizer_free(t);
}

static void remove_tmp_dir(void) {
    DIR *d = opendir(tmp_dir);
    if (!d) return;
    struct dirent *ent;
    while ((ent = readdir(d))) {
        char p[512];
        if (ent->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", tmp_dir, ent->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(tmp_dir);
}

int main(void) {
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/roe_test_tokenizer_XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(byte_map);
    RUN(merges_both_forms_and_rank_order);
    RUN(ignore_merges);
    RUN(unk_and_byte_fallback);
    RUN(added_tokens);
    RUN(prefix_space_and_split_behaviors);
    RUN(qwen_style_regex);
    RUN(utf8_round_trip);
    RUN(nfc_normalizer);
    RUN(load_errors);
    RUN(allocation_failures);
    RUN(concurrent_encode);
    RUN(differential_hugging_face);
    RUN(bundled_model_tokenizer);
    remove_tmp_dir();
    return test_summary();
}
