/*
 * test_tokenizer_sp.c — the tokenizer beyond byte-level BPE: SentencePiece-style BPE (Prepend/
 * Replace normalizers, Metaspace, byte fallback, the Replace/ByteFallback/Fuse/Strip/Metaspace
 * decoders), the regex translation (every property class spelled for PCRE2 matches our
 * Unicode 16 table on every code point, in each spelling mode), Oniguruma's \w and \b with
 * combining marks, truncation/padding loaded, and added tokens that duplicate vocab entries.
 * The differential tests against `tokenizers` are tests/e2e/tokenize_families.sh.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "base/alloc.h"
#include "runtime/tokenizer.h"
#include "runtime/tokenizer_impl.h"

static char tmp_path[64];

/* A Llama 2 style tokenizer: <unk> <s> </s>, <0x00>..<0xFF> at 3..258, then ▁ a b c ▁a ab ▁ab
 * (259..265), merges ▁+a, a+b, ▁a+b. `pre` and `norm` replace the pre-tokenizer/normalizer. */
static roe_tokenizer *sp_load(const char *norm, const char *pre, const char *extra_added) {
    char *j = malloc(1 << 16);
    int w = sprintf(j, "{\"version\":\"1.0\",\"truncation\":{\"max_length\":8},\"padding\":null,"
                       "\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true,\"normalized\":false},"
                       "{\"id\":1,\"content\":\"<s>\",\"special\":true,\"normalized\":false},"
                       "{\"id\":2,\"content\":\"</s>\",\"special\":true,\"normalized\":false}%s],"
                       "\"normalizer\":%s,\"pre_tokenizer\":%s,\"post_processor\":null,"
                       "\"decoder\":{\"type\":\"Sequence\",\"decoders\":["
                       "{\"type\":\"Replace\",\"pattern\":{\"String\":\"\xE2\x96\x81\"},\"content\":\" \"},"
                       "{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},"
                       "{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]},"
                       "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"fuse_unk\":true,\"byte_fallback\":true,"
                       "\"vocab\":{\"<unk>\":0,\"<s>\":1,\"</s>\":2",
                    extra_added ? extra_added : "", norm, pre);
    for (int b = 0; b < 256; b++)
        w += sprintf(j + w, ",\"<0x%02X>\":%d", b, 3 + b);
    sprintf(j + w, ",\"\xE2\x96\x81\":259,\"a\":260,\"b\":261,\"c\":262,\"\xE2\x96\x81" "a\":263,\"ab\":264,"
                   "\"\xE2\x96\x81" "ab\":265},\"merges\":[[\"\xE2\x96\x81\",\"a\"],[\"a\",\"b\"],"
                   "[\"\xE2\x96\x81" "a\",\"b\"]]}}");
    FILE *f = fopen(tmp_path, "wb");
    fputs(j, f);
    fclose(f);
    free(j);
    roe_tokenizer *t = NULL;
    if (roe_tokenizer_load(tmp_path, &t) != ROE_OK) fprintf(stderr, "  load: %s\n", roe_error_message());
    return t;
}

static const char *LLAMA2_NORM = "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":"
                                 "\"\xE2\x96\x81\"},{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},"
                                 "\"content\":\"\xE2\x96\x81\"}]}";
static const char *METASPACE_FIRST = "{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\","
                                     "\"prepend_scheme\":\"first\",\"split\":false}";

/* ids of text joined with ',' */
static int enc_ids(const roe_tokenizer *t, const char *text, const char *want) {
    int32_t *ids = NULL;
    size_t n = 0;
    char got[512] = "";
    if (roe_tokenizer_encode(t, text, strlen(text), &ids, &n) != ROE_OK) {
        fprintf(stderr, "  encode(\"%s\"): %s\n", text, roe_error_message());
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%d", i ? "," : "", ids[i]);
    roe_free(ids);
    if (strcmp(got, want) != 0) fprintf(stderr, "  encode(\"%s\") = %s, want %s\n", text, got, want);
    return strcmp(got, want) == 0;
}

static int dec_is(const roe_tokenizer *t, const int32_t *ids, size_t n, int flags, const char *want) {
    char *text = NULL;
    size_t len = 0;
    if (roe_tokenizer_decode(t, ids, n, flags, &text, &len) != ROE_OK) {
        fprintf(stderr, "  decode: %s\n", roe_error_message());
        return 0;
    }
    int ok = len == strlen(want) && memcmp(text, want, len) == 0;
    if (!ok) fprintf(stderr, "  decode = \"%s\", want \"%s\"\n", text, want);
    roe_free(text);
    return ok;
}

TEST(sentencepiece_llama2) {
    roe_tokenizer *t = sp_load(LLAMA2_NORM, "null", NULL); /* truncation set: loads (a warning) */
    ASSERT_TRUE(t);
    ASSERT_TRUE(enc_ids(t, "ab c", "265,259,262"));   /* ▁ab ▁ c */
    ASSERT_TRUE(enc_ids(t, "ab", "265"));
    ASSERT_TRUE(enc_ids(t, " ab", "259,265"));        /* ▁▁ab: the normalizer prepends */
    ASSERT_TRUE(enc_ids(t, "\xC3\xA9", "259,198,172")); /* ▁ then é by byte fallback (0xC3 0xA9) */
    ASSERT_TRUE(enc_ids(t, "<s>ab", "1,265"));        /* each gap normalized: ▁ prepended again */
    ASSERT_TRUE(enc_ids(t, "", ""));
    int32_t a[] = {265, 259, 262};
    ASSERT_TRUE(dec_is(t, a, 3, 0, "ab c")); /* ▁ -> space, one leading space stripped */
    int32_t b[] = {1, 259, 198, 172, 2};
    ASSERT_TRUE(dec_is(t, b, 5, 0, "<s> \xC3\xA9</s>"));
    ASSERT_TRUE(dec_is(t, b, 5, ROE_DECODE_SKIP_SPECIAL, "\xC3\xA9"));
    int32_t c[] = {259, 198}; /* a cut character: U+FFFD per byte token */
    ASSERT_TRUE(dec_is(t, c, 2, 0, "\xEF\xBF\xBD"));
    const char *p;
    size_t n;
    ASSERT_OK(roe_tokenizer_token_bytes(t, 265, &p, &n)); /* a piece keeps its space */
    ASSERT_TRUE(n == 3 && memcmp(p, " ab", 3) == 0);
    ASSERT_OK(roe_tokenizer_token_bytes(t, 3 + 0x0A, &p, &n));
    ASSERT_TRUE(n == 1 && p[0] == '\n');
    ASSERT_OK(roe_tokenizer_token_text(t, 3 + 0x0A, &p, &n));
    ASSERT_TRUE(n == 6 && memcmp(p, "<0x0A>", 6) == 0);
    roe_tokenizer_free(t);
}

TEST(sentencepiece_metaspace_first) {
    roe_tokenizer *t = sp_load("null", METASPACE_FIRST, NULL);
    ASSERT_TRUE(t);
    ASSERT_TRUE(enc_ids(t, "ab c", "265,259,262"));
    ASSERT_TRUE(enc_ids(t, "<s>ab", "1,264")); /* "first": only at the start of the input */
    ASSERT_TRUE(enc_ids(t, "ab<s>ab", "265,1,264"));
    roe_tokenizer_free(t);
    t = sp_load("null", "{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\",\"prepend_scheme\":\"always\"}", NULL);
    ASSERT_TRUE(t);
    ASSERT_TRUE(enc_ids(t, "<s>ab", "1,265")); /* always, and split before each ▁ */
    ASSERT_TRUE(enc_ids(t, "ab ab", "265,265"));
    roe_tokenizer_free(t);
}

TEST(unknown_chars_fuse) {
    /* no byte fallback: unknown chars become one fused <unk> */
    roe_tokenizer *t = sp_load("null", "null", NULL);
    ASSERT_TRUE(t);
    roe_tokenizer_free(t);
    FILE *f = fopen(tmp_path, "rb");
    char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *bf = strstr(buf, "\"byte_fallback\":true");
    memcpy(bf, "\"byte_fallback\":0   ", 20);
    memcpy(bf + 16, "null", 4); /* "byte_fallback":null */
    f = fopen(tmp_path, "wb");
    fputs(buf, f);
    fclose(f);
    ASSERT_OK(roe_tokenizer_load(tmp_path, &t));
    ASSERT_TRUE(enc_ids(t, "a\xC3\xA9\xC3\xA8" "b", "260,0,261")); /* é è fused */
    roe_tokenizer_free(t);
}

/* Added tokens decode through the decoder: one that duplicates a vocab entry decodes like
 * it, a normalized one from its normalized form. */
TEST(added_tokens_through_decoder) {
    roe_tokenizer *t = sp_load(LLAMA2_NORM, "null",
                               ",{\"id\":265,\"content\":\"\xE2\x96\x81" "ab\",\"special\":false,\"normalized\":false},"
                               "{\"id\":266,\"content\":\"xy\",\"special\":false,\"normalized\":true}");
    ASSERT_TRUE(t);
    int32_t ids[] = {262, 265, 266};
    ASSERT_TRUE(dec_is(t, ids, 3, 0, "c ab xy")); /* ▁xy, the normalized form */
    ASSERT_TRUE(enc_ids(t, "c xy", "259,262,266"));    /* matched as ▁xy in the normalized text */
    ASSERT_TRUE(enc_ids(t, "cxy", "259,262,123,124")); /* no ▁ before xy: bytes 0x78 0x79 */
    roe_tokenizer_free(t);
}

/* Every property class, spelled for PCRE2 in each mode, matches exactly our table on every
 * code point (surrogates aside). */
static int class_matches_table(const char *pattern, int mode, int (*want)(uint32_t)) {
    char *p = NULL;
    size_t len = 0;
    if (roe__regex_translate(pattern, strlen(pattern), mode, &p, &len) != ROE_OK) {
        fprintf(stderr, "  %s: %s\n", pattern, roe_error_message());
        return 0;
    }
    int err;
    PCRE2_SIZE at;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)p, len, PCRE2_UTF | PCRE2_UCP, &err, &at, NULL);
    roe_free(p);
    if (!re) return 0;
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    int bad = 0;
    for (uint32_t c = 0; c < 0x110000 && bad < 5; c++) {
        if (c >= 0xD800 && c <= 0xDFFF) continue;
        char u[4];
        size_t n = roe__utf8_encode(c, u);
        int m = pcre2_match(re, (PCRE2_SPTR)u, n, 0, PCRE2_NO_UTF_CHECK, md, NULL) >= 0;
        if (m != want(c)) {
            fprintf(stderr, "  %s (mode %d): U+%04X %s\n", pattern, mode, (unsigned)c, m ? "matches" : "does not match");
            bad++;
        }
    }
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return bad == 0;
}

static int gc_in(uint32_t c, const char *cats) {
    static const char *names[] = {"Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps", "Pe",
                                  "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Co", "Cs", "Cn"};
    const char *g = names[roe__ucd_gc(c)];
    for (const char *s = cats; *s; s += s[2] ? 3 : 2)
        if (s[0] == g[0] && s[1] == g[1]) return 1;
    return 0;
}
static int is_l(uint32_t c) { return gc_in(c, "Lu Ll Lt Lm Lo"); }
static int not_l_or_n(uint32_t c) { return !gc_in(c, "Lu Ll Lt Lm Lo Nd Nl No") && !roe__is_whitespace(c) && c != '\r' && c != '\n'; }
static int is_mark_or_lo(uint32_t c) { return gc_in(c, "Mn Mc Me Lo"); }
static int is_p_or_s(uint32_t c) { return gc_in(c, "Pc Pd Ps Pe Pi Pf Po Sm Sc Sk So"); }
/* Oniguruma's \w: the regex crate's without the join controls */
static int is_word(uint32_t c) { return roe__is_word(c) && c != 0x200C && c != 0x200D; }
static int not_word(uint32_t c) { return !is_word(c); }
static int is_space(uint32_t c) { return roe__is_whitespace(c); }
static int is_digit(uint32_t c) { return gc_in(c, "Nd"); }
static roe__uset han; /* the table's own Han set: this checks the spelling, not the data */
static int is_han(uint32_t c) { return roe__uset_has(&han, c); }

TEST(property_classes_every_code_point) {
    ASSERT_OK(roe__uset_init(&han));
    ASSERT_TRUE(roe__uset_add_property(&han, "Han", 3));
    const int modes[] = {ROE__UCD_RANGES, roe__ucd_pcre2_mode()};
    for (int k = 0; k < 2; k++) {
        int m = modes[k];
        ASSERT_TRUE(class_matches_table("\\p{L}", m, is_l));
        ASSERT_TRUE(class_matches_table("[^\\r\\n\\s\\p{L}\\p{N}]", m, not_l_or_n));
        ASSERT_TRUE(class_matches_table("[\\p{M}\\p{Lo}]", m, is_mark_or_lo));
        ASSERT_TRUE(class_matches_table("[\\p{P}\\p{S}]", m, is_p_or_s));
        ASSERT_TRUE(class_matches_table("\\w", m, is_word));
        ASSERT_TRUE(class_matches_table("\\W", m, not_word));
        ASSERT_TRUE(class_matches_table("\\s", m, is_space));
        ASSERT_TRUE(class_matches_table("\\d", m, is_digit));
        ASSERT_TRUE(class_matches_table("\\p{Han}", m, is_han));
    }
    /* Unicode 15-16 additions: 🩷 U+1FA77 is So, U+31350 (CJK ext. H) Lo, U+1E4D0 Lo, U+1171E Mc */
    ASSERT_TRUE(gc_in(0x1FA77, "So") && gc_in(0x31350, "Lo") && gc_in(0x1E4D0, "Lo") && gc_in(0x1171E, "Mc"));
    ASSERT_TRUE(roe__is_word(0x0301) && roe__is_word(0x24B6) && roe__is_word(0x200D) && !roe__is_word(0x1FA77));
    ASSERT_TRUE(roe__uset_has(&han, 0x31350) && roe__uset_has(&han, 0x4E00) && !roe__uset_has(&han, 0x3042));
    roe__uset_free(&han);
}

/* \b at a combining mark: inside a word for Oniguruma (and for roe), not for PCRE2 10.42. */
TEST(word_boundary_with_marks) {
    static const char *pattern = "\\b\\w+\\b|\\s+|[^\\w\\s]+";
    char *p = NULL;
    size_t len = 0;
    ASSERT_OK(roe__regex_translate(pattern, strlen(pattern), roe__ucd_pcre2_mode(), &p, &len));
    int err;
    PCRE2_SIZE at;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)p, len, PCRE2_UTF | PCRE2_UCP, &err, &at, NULL);
    roe_free(p);
    ASSERT_TRUE(re);
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    const char *s = "ab c\xCC\x81" "d!"; /* "ab c\u0301d!" */
    ASSERT_TRUE(pcre2_match(re, (PCRE2_SPTR)s, strlen(s), 3, 0, md, NULL) >= 0);
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    ASSERT_EQ_INT((int)ov[0], 3);
    ASSERT_EQ_INT((int)ov[1], 7); /* c + U+0301 + d: one word */
    pcre2_match_data_free(md);
    pcre2_code_free(re);
}

TEST(regex_dialect) {
    struct {
        const char *in, *needle;
    } cases[] = {
        {"a{,3}", "a{0,3}"},        /* Ruby's {,n} */
        {"(?m:.)", "(?s:.)"},       /* Ruby's m is dotall */
        {"\\u00e9", "\\x{E9}"},     /* \uHHHH */
        {"\\v", "\\x{B}"},          /* vertical tab, not vertical space */
        {"[\\u3040-\\u309f]", "[\\x{3040}-\\x{309F}]"},
        {"\\h", "[\\x{30}-\\x{39}\\x{41}-\\x{46}\\x{61}-\\x{66}]"}, /* hex digit, not horizontal space */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *p = NULL;
        size_t len = 0;
        ASSERT_OK(roe__regex_translate(cases[i].in, strlen(cases[i].in), ROE__UCD_RANGES, &p, &len));
        if (!strstr(p, cases[i].needle)) fprintf(stderr, "  %s -> %s\n", cases[i].in, p);
        ASSERT_TRUE(strstr(p, cases[i].needle) != NULL);
        roe_free(p);
    }
    const char *refused[] = {"(?i:\\p{Lu})", "[a-z&&b]", "[[:alpha:]]", "\\X", "\\Qa\\E", "(?x)a", "\\pL", "\\p{Klingon}"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        char *p = NULL;
        size_t len = 0;
        roe_status st = roe__regex_translate(refused[i], strlen(refused[i]), ROE__UCD_RANGES, &p, &len);
        if (st == ROE_OK) fprintf(stderr, "  %s was not refused: %s\n", refused[i], p);
        ASSERT_EQ_INT(st, ROE_ERR_UNSUPPORTED);
        roe_free(p);
    }
}

int main(void) {
    snprintf(tmp_path, sizeof tmp_path, "/tmp/roe_test_tokenizer_sp_%d.json", (int)getpid());
    RUN(sentencepiece_llama2);
    RUN(sentencepiece_metaspace_first);
    RUN(unknown_chars_fuse);
    RUN(added_tokens_through_decoder);
    RUN(property_classes_every_code_point);
    RUN(word_boundary_with_marks);
    RUN(regex_dialect);
    unlink(tmp_path);
    return test_summary();
}
