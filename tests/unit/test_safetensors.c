/*
 * test_safetensors.c — roe_st_* and roe_store_* against files built here: valid single and
 * sharded models, one handmade corrupt file per rule (each asserting its status and its
 * own message), every truncated prefix of a valid file, byte mutations of the header, and
 * allocation-failure injection through every roe_malloc of the open paths.
 *
 * Headers are written with single quotes for readability ("{'a': ...}"); q() turns them
 * into JSON's double quotes. Every test works in its own mkdtemp directory under /tmp,
 * removed at exit even when an assertion returns early.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "base/alloc.h"
#include "runtime/safetensors.h"
#include "base/status.h"

enum { MAX_DIRS = 256, PATH_LEN = 256 };
static char g_dirs[MAX_DIRS][64];
static int g_ndirs;

/* A fresh empty directory, removed by cleanup_dirs(). */
static const char *tmpdir(void) {
    if (g_ndirs == MAX_DIRS) abort();
    char *d = g_dirs[g_ndirs];
    strcpy(d, "/tmp/roe_st_XXXXXX");
    if (!mkdtemp(d)) {
        perror("mkdtemp");
        abort();
    }
    g_ndirs++;
    return d;
}

static void cleanup_dirs(void) {
    char p[PATH_LEN * 2];
    for (int i = 0; i < g_ndirs; i++) {
        DIR *d = opendir(g_dirs[i]);
        if (!d) continue;
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(p, sizeof p, "%.64s/%.255s", g_dirs[i], e->d_name);
            if (unlink(p) != 0) rmdir(p);
        }
        closedir(d);
        rmdir(g_dirs[i]);
    }
}

static const char *join(const char *dir, const char *name, char buf[PATH_LEN]) {
    snprintf(buf, PATH_LEN, "%s/%s", dir, name);
    return buf;
}

/* Single quotes -> double quotes, in a static buffer (one header at a time). */
static const char *q(const char *s) {
    static char buf[8192];
    size_t n = strlen(s);
    if (n >= sizeof buf) abort();
    for (size_t i = 0; i <= n; i++)
        buf[i] = s[i] == '\'' ? '"' : s[i];
    return buf;
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

static void write_text(const char *path, const char *text) {
    write_bytes(path, text, strlen(text));
}

/* Serialises 8-byte little-endian length + header + data into a malloc'd buffer. */
static uint8_t *st_bytes(const char *header, uint64_t hlen, const void *data, size_t n,
                         size_t *total) {
    size_t hl = strlen(header);
    uint8_t *b = malloc(8 + hl + n + 1);
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(hlen >> (8 * i));
    memcpy(b + 8, header, hl);
    if (n) memcpy(b + 8 + hl, data, n);
    *total = 8 + hl + n;
    return b;
}

/* Writes a safetensors file whose header is `header` (already double-quoted). */
static void write_st(const char *path, const char *header, const void *data, size_t n) {
    size_t total;
    uint8_t *b = st_bytes(header, strlen(header), data, n, &total);
    write_bytes(path, b, total);
    free(b);
}

/* Writes q(header) with `n` zero bytes of data to a fresh dir and opens it. */
static char g_last_path[PATH_LEN];
static roe_status open_hdr(const char *header, size_t n) {
    void *zeros = calloc(1, n + 1);
    join(tmpdir(), "model.safetensors", g_last_path);
    write_st(g_last_path, q(header), zeros, n);
    free(zeros);
    roe_st_file *f = (roe_st_file *)1;
    roe_status st = roe_st_open(g_last_path, &f);
    if (st == ROE_OK)
        roe_st_close(f);
    else if (f != NULL)
        return ROE_ERR_INTERNAL; /* *out must be NULL on failure */
    return st;
}

/* ---- the valid single file ---- */

/* Tensors in header order c, a, z, b; in offset order a, b, c, z. */
#define VALID_HEADER                                                                               \
    "{'c': {'dtype': 'I64', 'shape': [], 'data_offsets': [32, 40]},"                               \
    " '__metadata__': {'format': 'pt'},"                                                           \
    " 'a': {'dtype': 'F32', 'shape': [2, 3], 'data_offsets': [0, 24]},"                            \
    " 'z': {'dtype': 'U8', 'shape': [0], 'data_offsets': [40, 40]},"                               \
    " 'b': {'dtype': 'BF16', 'shape': [4], 'data_offsets': [24, 32]}}"

struct valid_data {
    float a[6];
    uint16_t b[4];
    int64_t c;
};

static struct valid_data valid_data(void) {
    struct valid_data v = {{0.5f, 1, 2, 3, 4, -5.25f}, {0x3f80, 0x4000, 0xbf80, 0x0000}, -7};
    return v;
}

/* The valid file with the header padded by `pad` spaces (to move the data's alignment). */
static uint8_t *valid_bytes(int pad, size_t *total) {
    static char header[8192 + 16];
    snprintf(header, sizeof header, "%s%*s", q(VALID_HEADER), pad, "");
    struct valid_data v = valid_data();
    return st_bytes(header, strlen(header), &v, sizeof v, total);
}

static void write_valid(const char *path, int pad) {
    size_t total;
    uint8_t *b = valid_bytes(pad, &total);
    write_bytes(path, b, total);
    free(b);
}

TEST(dtype_names_and_sizes) {
    ASSERT_EQ_STR(roe_dtype_name(ROE_DTYPE_BF16), "BF16");
    ASSERT_EQ_STR(roe_dtype_name(ROE_DTYPE_F8_E4M3), "F8_E4M3");
    ASSERT_EQ_STR(roe_dtype_name(ROE_DTYPE_COUNT), "?");
    ASSERT_EQ_INT(roe_dtype_size(ROE_DTYPE_F64), 8);
    ASSERT_EQ_INT(roe_dtype_size(ROE_DTYPE_F32), 4);
    ASSERT_EQ_INT(roe_dtype_size(ROE_DTYPE_BF16), 2);
    ASSERT_EQ_INT(roe_dtype_size(ROE_DTYPE_BOOL), 1);
    ASSERT_EQ_INT(roe_dtype_size(ROE_DTYPE_F8_E5M2), 1);
    ASSERT_EQ_INT(roe_dtype_size(ROE_DTYPE_COUNT), 0);
    for (int i = 0; i <= ROE_DTYPE_F8_E5M2; i++) /* the file dtypes; Q8/Q4 are blocks (size 0) */
        ASSERT_TRUE(roe_dtype_size((roe_dtype)i) > 0);
}

/* Checks every tensor of the valid file, however it was reached. */
static int check_valid_tensor(const struct roe_tensor *t) {
    struct valid_data v = valid_data();
    if (!t) return 0;
    if (!strcmp(t->name, "a"))
        return t->dtype == ROE_DTYPE_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 &&
               t->nbytes == 24 && !memcmp(t->data, v.a, 24);
    if (!strcmp(t->name, "b"))
        return t->dtype == ROE_DTYPE_BF16 && t->ndim == 1 && t->shape[0] == 4 && t->nbytes == 8 &&
               !memcmp(t->data, v.b, 8);
    if (!strcmp(t->name, "c"))
        return t->dtype == ROE_DTYPE_I64 && t->ndim == 0 && t->nbytes == 8 &&
               !memcmp(t->data, &v.c, 8);
    if (!strcmp(t->name, "z"))
        return t->dtype == ROE_DTYPE_U8 && t->ndim == 1 && t->shape[0] == 0 && t->nbytes == 0;
    return 0;
}

TEST(valid_single_file) {
    char path[PATH_LEN];
    join(tmpdir(), "model.safetensors", path);
    write_valid(path, 0);
    roe_st_file *f = NULL;
    ASSERT_OK(roe_st_open(path, &f));
    ASSERT_EQ_INT(roe_st_count(f), 4);
    const char *order[] = {"a", "b", "c", "z"}; /* data-offset order */
    for (size_t i = 0; i < 4; i++) {
        const struct roe_tensor *t = roe_st_at(f, i);
        ASSERT_EQ_STR(t->name, order[i]);
        ASSERT_EQ_STR(t->file, path);
        ASSERT_TRUE(check_valid_tensor(t));
        ASSERT_TRUE(roe_st_find(f, order[i]) == t);
    }
    ASSERT_TRUE(roe_st_at(f, 4) == NULL);
    ASSERT_TRUE(roe_st_find(f, "nope") == NULL);
    ASSERT_TRUE(roe_st_find(f, "__metadata__") == NULL);
    float a[6];
    memcpy(a, roe_st_find(f, "a")->data, sizeof a);
    ASSERT_NEAR(a[5], -5.25, 0);
    roe_st_close(f);
    roe_st_close(NULL);
}

/* The reference writer pads the header with spaces; an odd padding misaligns the data,
 * which is accepted (and counted) rather than rejected. */
TEST(valid_padded_and_misaligned) {
    for (int pad = 0; pad < 8; pad++) {
        char path[PATH_LEN];
        join(tmpdir(), "model.safetensors", path);
        write_valid(path, pad);
        roe_st_file *f = NULL;
        ASSERT_OK(roe_st_open(path, &f));
        for (size_t i = 0; i < roe_st_count(f); i++)
            ASSERT_TRUE(check_valid_tensor(roe_st_at(f, i)));
        roe_st_close(f);
    }
}

TEST(valid_empty_header) {
    ASSERT_OK(open_hdr("{}", 0));
    ASSERT_OK(open_hdr("{'__metadata__': {}}", 0));
    ASSERT_OK(open_hdr("  {}  \n", 0));
    /* unknown keys inside an entry are ignored, as the reference reader does */
    ASSERT_OK(
        open_hdr("{'x': {'dtype': 'U8', 'shape': [2], 'data_offsets': [0, 2], 'foo': 1.5}}", 2));
    /* a dimension written 2.0 parses to the exact integer 2 */
    ASSERT_OK(open_hdr("{'x': {'dtype': 'U8', 'shape': [2.0], 'data_offsets': [0, 2]}}", 2));
}

TEST(bad_arguments) {
    roe_st_file *f = NULL;
    roe_store *s = NULL;
    ASSERT_FAILS_WITH(roe_st_open(NULL, &f), ROE_ERR_INVALID_ARG, "path is NULL");
    ASSERT_FAILS_WITH(roe_st_open("x", NULL), ROE_ERR_INVALID_ARG, "out is NULL");
    ASSERT_FAILS_WITH(roe_store_open(NULL, &s), ROE_ERR_INVALID_ARG, "dir is NULL");
    ASSERT_FAILS_WITH(roe_store_open("x", NULL), ROE_ERR_INVALID_ARG, "out is NULL");
    ASSERT_TRUE(roe_st_count(NULL) == 0 && roe_st_find(NULL, "a") == NULL);
    ASSERT_TRUE(roe_store_count(NULL) == 0 && roe_store_find(NULL, "a") == NULL);
}

/* ---- corrupt single files: one rule each ---- */

TEST(missing_file) {
    char path[PATH_LEN];
    roe_st_file *f = NULL;
    join(tmpdir(), "absent.safetensors", path);
    ASSERT_FAILS_WITH(roe_st_open(path, &f), ROE_ERR_IO, "cannot open: No such file");
    ASSERT_TRUE(strstr(roe_error_message(), path) != NULL);
    ASSERT_FAILS_WITH(roe_st_open(tmpdir(), &f), ROE_ERR_IO, "not a regular file");
}

TEST(empty_file) {
    char path[PATH_LEN];
    roe_st_file *f = NULL;
    join(tmpdir(), "model.safetensors", path);
    write_bytes(path, "", 0);
    ASSERT_FAILS_WITH(roe_st_open(path, &f), ROE_ERR_FORMAT, "file is empty");
    ASSERT_TRUE(strncmp(roe_error_message(), path, strlen(path)) == 0);
}

TEST(shorter_than_8_bytes) {
    char path[PATH_LEN];
    roe_st_file *f = NULL;
    join(tmpdir(), "model.safetensors", path);
    write_bytes(path, "\x02\0\0\0\0", 5);
    ASSERT_FAILS_WITH(roe_st_open(path, &f), ROE_ERR_FORMAT,
                      "file is 5 bytes, shorter than the 8-byte header length");
}

TEST(header_length_past_end) {
    char path[PATH_LEN];
    roe_st_file *f = NULL;
    size_t total;
    join(tmpdir(), "model.safetensors", path);
    uint8_t *b = st_bytes("{}", 3, NULL, 0, &total); /* claims 3 header bytes, has 2 */
    write_bytes(path, b, total);
    free(b);
    ASSERT_FAILS_WITH(roe_st_open(path, &f), ROE_ERR_FORMAT,
                      "header length 3 runs past the end of the file (8 + 3 > file size 10)");
}

TEST(header_length_absurd) {
    char path[PATH_LEN];
    roe_st_file *f = NULL;
    size_t total;
    join(tmpdir(), "model.safetensors", path);
    uint8_t *b = st_bytes("{}", (uint64_t)1 << 63, NULL, 0, &total);
    write_bytes(path, b, total);
    free(b);
    ASSERT_FAILS_WITH(roe_st_open(path, &f), ROE_ERR_FORMAT,
                      "header length 9223372036854775808 exceeds the limit of 100000000 bytes");
    b = st_bytes("{}", UINT64_MAX - 7, NULL, 0, &total); /* 8 + N wraps around */
    write_bytes(path, b, total);
    free(b);
    ASSERT_FAILS_WITH(roe_st_open(path, &f), ROE_ERR_FORMAT, "exceeds the limit");
}

TEST(header_not_json) {
    ASSERT_FAILS_WITH(open_hdr("hello, world", 0), ROE_ERR_FORMAT,
                      "header is not valid JSON: syntax error at byte 0");
    ASSERT_FAILS_WITH(open_hdr("{'a':1]", 0), ROE_ERR_FORMAT, "syntax error at byte 6 of 7");
    ASSERT_FAILS_WITH(open_hdr("", 0), ROE_ERR_FORMAT, "header is empty");
}

TEST(header_trailing_data) {
    ASSERT_FAILS_WITH(open_hdr("{} {}", 0), ROE_ERR_FORMAT, "unexpected data after the JSON value");
}

TEST(header_not_utf8) {
    ASSERT_FAILS_WITH(open_hdr("{'\xc3\x28': 1}", 0), ROE_ERR_FORMAT,
                      "header is not valid UTF-8 (bad byte 0xc3 at 2)");
    ASSERT_FAILS_WITH(open_hdr("{'\xed\xa0\x80': 1}", 0), ROE_ERR_FORMAT,
                      "not valid UTF-8"); /* surrogate */
    ASSERT_FAILS_WITH(open_hdr("{'\xc0\xaf': 1}", 0), ROE_ERR_FORMAT,
                      "not valid UTF-8"); /* overlong */
}

TEST(header_not_object) {
    ASSERT_FAILS_WITH(open_hdr("[1, 2]", 0), ROE_ERR_FORMAT,
                      "header is a JSON array, expected an object");
    ASSERT_FAILS_WITH(open_hdr("'str'", 0), ROE_ERR_FORMAT, "header is a JSON string");
}

TEST(header_truncated) {
    ASSERT_FAILS_WITH(open_hdr("{'a': {'dtype': 'F32', 'sha", 0), ROE_ERR_FORMAT,
                      "header JSON is truncated");
    ASSERT_FAILS_WITH(open_hdr("{'a': {'dtype': 'F32'}", 0), ROE_ERR_FORMAT, "JSON is truncated");
    ASSERT_FAILS_WITH(open_hdr("{'a': [1, 2", 0), ROE_ERR_FORMAT, "JSON is truncated");
    /* open brackets, but the parse stopped at a bad character: a syntax error */
    ASSERT_FAILS_WITH(open_hdr("{'a': @@", 0), ROE_ERR_FORMAT, "syntax error at byte 6 of 8");
}

TEST(entry_not_object) {
    ASSERT_FAILS_WITH(open_hdr("{'w': 5}", 0), ROE_ERR_FORMAT,
                      "tensor 'w': entry is a JSON number, expected an object");
}

TEST(missing_dtype) {
    ASSERT_FAILS_WITH(open_hdr("{'w': {'shape': [1], 'data_offsets': [0, 4]}}", 4), ROE_ERR_FORMAT,
                      "tensor 'w': missing \"dtype\"");
    ASSERT_FAILS_WITH(open_hdr("{'w': {'dtype': 3, 'shape': [1], 'data_offsets': [0, 4]}}", 4),
                      ROE_ERR_FORMAT, "\"dtype\" is a JSON number, expected a string");
}

TEST(unknown_dtype) {
    ASSERT_FAILS_WITH(open_hdr("{'w': {'dtype': 'Q4', 'shape': [1], 'data_offsets': [0, 4]}}", 4),
                      ROE_ERR_UNSUPPORTED, "tensor 'w': unknown dtype 'Q4' (supported: F64");
}

TEST(missing_shape) {
    ASSERT_FAILS_WITH(open_hdr("{'w': {'dtype': 'F32', 'data_offsets': [0, 4]}}", 4),
                      ROE_ERR_FORMAT, "tensor 'w': missing \"shape\"");
    ASSERT_FAILS_WITH(open_hdr("{'w': {'dtype': 'F32', 'shape': 1, 'data_offsets': [0, 4]}}", 4),
                      ROE_ERR_FORMAT, "\"shape\" is a JSON number, expected an array");
}

TEST(negative_dim) {
    ASSERT_FAILS_WITH(
        open_hdr("{'w': {'dtype': 'F32', 'shape': [1, -2], 'data_offsets': [0, 4]}}", 4),
        ROE_ERR_FORMAT, "tensor 'w': shape[1] = -2 is negative");
}

TEST(non_integer_dim) {
    ASSERT_FAILS_WITH(
        open_hdr("{'w': {'dtype': 'F32', 'shape': [2.5], 'data_offsets': [0, 4]}}", 4),
        ROE_ERR_FORMAT, "shape[0] = 2.5 is not an integer");
    ASSERT_FAILS_WITH(
        open_hdr("{'w': {'dtype': 'F32', 'shape': ['1'], 'data_offsets': [0, 4]}}", 4),
        ROE_ERR_FORMAT, "shape[0] = \"1\" is not a number");
    ASSERT_FAILS_WITH(
        open_hdr("{'w': {'dtype': 'F32', 'shape': [9007199254740993, 0], 'data_offsets': [0, 0]}}",
                 0),
        ROE_ERR_FORMAT, "is too large; dimensions are integers in [0, 2^53)");
    ASSERT_FAILS_WITH(
        open_hdr("{'w': {'dtype': 'F32', 'shape': [1e300], 'data_offsets': [0, 4]}}", 4),
        ROE_ERR_FORMAT, "shape[0] = 1.0000000000000001e+300 is too large");
}

TEST(too_many_dims) {
    ASSERT_FAILS_WITH(
        open_hdr("{'w': {'dtype': 'U8', 'shape': [1,1,1,1,1,1,1,1,1], 'data_offsets': [0, 1]}}", 1),
        ROE_ERR_UNSUPPORTED, "shape has 9 dimensions, at most 8 are supported");
    ASSERT_OK(
        open_hdr("{'w': {'dtype': 'U8', 'shape': [1,1,1,1,1,1,1,1], 'data_offsets': [0, 1]}}", 1));
}

TEST(shape_overflow) {
    ASSERT_FAILS_WITH(open_hdr("{'w': {'dtype': 'U8', 'shape': [1099511627776, 1099511627776], "
                               "'data_offsets': [0, 4]}}",
                               4),
                      ROE_ERR_FORMAT,
                      "shape [1099511627776, 1099511627776]: element count overflows 64 bits");
    /* the element count fits, the byte count does not */
    ASSERT_FAILS_WITH(open_hdr("{'w': {'dtype': 'F64', 'shape': [4503599627370495, 4096], "
                               "'data_offsets': [0, 4]}}",
                               4),
                      ROE_ERR_FORMAT, "x F64 (8 bytes): byte size overflows 64 bits");
}

TEST(missing_data_offsets) {
    ASSERT_FAILS_WITH(open_hdr("{'w': {'dtype': 'F32', 'shape': [1]}}", 4), ROE_ERR_FORMAT,
                      "tensor 'w': missing \"data_offsets\"");
    ASSERT_FAILS_WITH(open_hdr("{'w': {'dtype': 'F32', 'shape': [1], 'data_offsets': {}}}", 4),
                      ROE_ERR_FORMAT, "\"data_offsets\" is a JSON object, expected [begin, end]");
}

TEST(data_offsets_arity) {
    ASSERT_FAILS_WITH(open_hdr("{'w': {'dtype': 'F32', 'shape': [1], 'data_offsets': [4]}}", 4),
                      ROE_ERR_FORMAT, "data_offsets has 1 element, expected 2");
    ASSERT_FAILS_WITH(
        open_hdr("{'w': {'dtype': 'F32', 'shape': [1], 'data_offsets': [0, 4, 8]}}", 4),
        ROE_ERR_FORMAT, "data_offsets has 3 elements, expected 2");
    ASSERT_FAILS_WITH(open_hdr("{'w': {'dtype': 'F32', 'shape': [1], 'data_offsets': [0, -4]}}", 4),
                      ROE_ERR_FORMAT, "data_offsets[1] = -4 is negative");
    ASSERT_FAILS_WITH(
        open_hdr("{'w': {'dtype': 'F32', 'shape': [1], 'data_offsets': [0.5, 4]}}", 4),
        ROE_ERR_FORMAT, "data_offsets[0] = 0.5 is not an integer");
}

TEST(begin_after_end) {
    ASSERT_FAILS_WITH(open_hdr("{'w': {'dtype': 'F32', 'shape': [1], 'data_offsets': [8, 4]}}", 8),
                      ROE_ERR_FORMAT, "tensor 'w': data_offsets [8, 4) have begin > end");
}

TEST(end_past_data) {
    ASSERT_FAILS_WITH(
        open_hdr(
            "{'model.norm.weight': {'dtype': 'F32', 'shape': [250], 'data_offsets': [0, 1000]}}",
            512),
        ROE_ERR_FORMAT,
        "tensor 'model.norm.weight': data_offsets [0, 1000) exceed data section of 512 bytes");
}

TEST(size_mismatch) {
    ASSERT_FAILS_WITH(
        open_hdr("{'w': {'dtype': 'F32', 'shape': [2, 3], 'data_offsets': [0, 20]}}", 20),
        ROE_ERR_FORMAT,
        "tensor 'w': shape [2, 3] x F32 (4 bytes) = 24 bytes but data_offsets [0, 20) "
        "hold 20 bytes");
}

TEST(overlapping_tensors) {
    ASSERT_FAILS_WITH(open_hdr("{'x': {'dtype': 'F32', 'shape': [4], 'data_offsets': [0, 16]},"
                               " 'y': {'dtype': 'F32', 'shape': [4], 'data_offsets': [8, 24]}}",
                               24),
                      ROE_ERR_FORMAT, "tensors 'x' [0, 16) and 'y' [8, 24) overlap");
    /* an empty tensor inside another one is an overlap too (the reference rejects it) */
    ASSERT_FAILS_WITH(open_hdr("{'x': {'dtype': 'F32', 'shape': [4], 'data_offsets': [0, 16]},"
                               " 'e': {'dtype': 'F32', 'shape': [0], 'data_offsets': [8, 8]}}",
                               16),
                      ROE_ERR_FORMAT, "'e' [8, 8) overlap");
}

TEST(gap_between_tensors) {
    ASSERT_FAILS_WITH(open_hdr("{'x': {'dtype': 'F32', 'shape': [2], 'data_offsets': [0, 8]},"
                               " 'y': {'dtype': 'F32', 'shape': [2], 'data_offsets': [12, 20]}}",
                               20),
                      ROE_ERR_FORMAT,
                      "4-byte gap [8, 12) in the data section between tensors 'x' and 'y'");
    ASSERT_FAILS_WITH(
        open_hdr("{'y': {'dtype': 'F32', 'shape': [2], 'data_offsets': [4, 12]}}", 12),
        ROE_ERR_FORMAT, "4-byte gap [0, 4) in the data section before the first tensor 'y'");
}

TEST(trailing_bytes) {
    ASSERT_FAILS_WITH(open_hdr("{'x': {'dtype': 'F32', 'shape': [2], 'data_offsets': [0, 8]}}", 12),
                      ROE_ERR_FORMAT,
                      "tensors end at byte 8 of a 12-byte data section: 4 trailing bytes");
    ASSERT_FAILS_WITH(open_hdr("{}", 3), ROE_ERR_FORMAT, "3 trailing bytes belong to no tensor");
}

TEST(duplicate_tensor_names) {
    ASSERT_FAILS_WITH(open_hdr("{'x': {'dtype': 'F32', 'shape': [1], 'data_offsets': [0, 4]},"
                               " 'x': {'dtype': 'F32', 'shape': [1], 'data_offsets': [4, 8]}}",
                               8),
                      ROE_ERR_FORMAT, "tensor 'x' appears twice in the header");
    ASSERT_FAILS_WITH(
        open_hdr("{'x': {'dtype': 'F32', 'dtype': 'F16', 'shape': [1], 'data_offsets': [0, 4]}}",
                 4),
        ROE_ERR_FORMAT, "tensor 'x': key \"dtype\" appears twice");
}

TEST(metadata_not_object) {
    ASSERT_FAILS_WITH(open_hdr("{'__metadata__': ['pt']}", 0), ROE_ERR_FORMAT,
                      "__metadata__ is a JSON array, expected an object of strings");
    ASSERT_FAILS_WITH(open_hdr("{'__metadata__': {'version': 2}}", 0), ROE_ERR_FORMAT,
                      "__metadata__['version'] is a JSON number, expected a string");
    ASSERT_FAILS_WITH(open_hdr("{'__metadata__': {}, '__metadata__': {}}", 0), ROE_ERR_FORMAT,
                      "__metadata__ appears twice");
}

/* Every proper prefix of a valid file fails cleanly; the whole file opens. */
TEST(truncated_prefixes) {
    char path[PATH_LEN];
    size_t total;
    join(tmpdir(), "model.safetensors", path);
    uint8_t *b = valid_bytes(3, &total);
    for (size_t len = 0; len <= total; len++) {
        write_bytes(path, b, len);
        roe_st_file *f = (roe_st_file *)1;
        roe_error_clear();
        roe_status st = roe_st_open(path, &f);
        if (len == total) {
            if (st != ROE_OK) free(b);
            ASSERT_OK(st);
            ASSERT_EQ_INT(roe_st_count(f), 4);
            roe_st_close(f);
        } else if (st != ROE_ERR_FORMAT || f != NULL ||
                   strncmp(roe_error_message(), path, strlen(path)) != 0) {
            free(b);
            TEST__FAIL("prefix of %zu/%zu bytes: %s: %s", len, total, roe_status_name(st),
                       roe_error_message());
            return;
        }
    }
    free(b);
}

/* Overwrites each byte of the length and header with a few values: every result either
 * opens with self-consistent tensors or fails with a message naming the file. */
TEST(header_mutations) {
    static const uint8_t vals[] = {0x00, 0xff, '"', '{', ']', '9', '-', ' '};
    char path[PATH_LEN];
    size_t total;
    join(tmpdir(), "model.safetensors", path);
    uint8_t *b = valid_bytes(0, &total);
    size_t hlen = total - sizeof(struct valid_data) - 8;
    int n_ok = 0, n_fail = 0;
    for (size_t i = 0; i < 8 + hlen; i++) {
        for (size_t k = 0; k < sizeof vals; k++) {
            uint8_t old = b[i];
            b[i] = vals[k];
            write_bytes(path, b, total);
            b[i] = old;
            roe_st_file *f = NULL;
            roe_error_clear();
            roe_status st = roe_st_open(path, &f);
            if (st != ROE_OK) {
                n_fail++;
                if (f != NULL || strncmp(roe_error_message(), path, strlen(path)) != 0) {
                    free(b);
                    TEST__FAIL("byte %zu = 0x%02x: %s", i, vals[k], roe_error_message());
                    return;
                }
                continue;
            }
            n_ok++;
            size_t sum = 0;
            for (size_t j = 0; j < roe_st_count(f); j++) {
                const struct roe_tensor *t = roe_st_at(f, j);
                size_t elems = 1;
                for (int d = 0; d < t->ndim; d++)
                    elems *= (size_t)t->shape[d];
                volatile uint8_t x = 0; /* touch every byte: must stay inside the mapping */
                for (size_t c = 0; c < t->nbytes; c++)
                    x ^= ((const uint8_t *)t->data)[c];
                (void)x;
                if (elems * roe_dtype_size(t->dtype) != t->nbytes || roe_st_find(f, t->name) != t) {
                    free(b);
                    roe_st_close(f);
                    TEST__FAIL("byte %zu = 0x%02x: inconsistent tensor '%s'", i, vals[k], t->name);
                    return;
                }
                sum += t->nbytes;
            }
            roe_st_close(f);
            if (sum != sizeof(struct valid_data)) {
                free(b);
                TEST__FAIL("byte %zu = 0x%02x: tensors cover %zu bytes", i, vals[k], sum);
                return;
            }
        }
    }
    free(b);
    ASSERT_TRUE(n_fail > 0 && n_ok > 0); /* e.g. a space inside whitespace still parses */
}

/* ---- model directories ---- */

#define SHARD1 "model-00001-of-00002.safetensors"
#define SHARD2 "model-00002-of-00002.safetensors"
#define SHARD1_HEADER                                                                              \
    "{'a': {'dtype': 'F32', 'shape': [2], 'data_offsets': [0, 8]},"                                \
    " 'c': {'dtype': 'F32', 'shape': [1], 'data_offsets': [8, 12]}}"
#define SHARD2_HEADER "{'b': {'dtype': 'F32', 'shape': [3], 'data_offsets': [0, 12]}}"
#define GOOD_INDEX                                                                                 \
    "{'metadata': {'total_size': 24}, 'weight_map': {'a': '" SHARD1 "', 'b': '" SHARD2             \
    "', 'c': '" SHARD1 "'}}"

/* A directory with the index and two shards; shard 2 may be given another header. */
static const char *make_sharded(const char *index, const char *shard2_header, size_t shard2_n) {
    static const float d1[3] = {1, 2, 3};
    float d2[8] = {4, 5, 6, 7, 8, 9, 10, 11};
    char p[PATH_LEN];
    const char *dir = tmpdir();
    if (index) write_text(join(dir, "model.safetensors.index.json", p), q(index));
    write_st(join(dir, SHARD1, p), q(SHARD1_HEADER), d1, sizeof d1);
    write_st(join(dir, SHARD2, p), q(shard2_header), d2, shard2_n);
    return dir;
}

static roe_status open_store(const char *dir) {
    roe_store *s = (roe_store *)1;
    roe_status st = roe_store_open(dir, &s);
    if (st == ROE_OK)
        roe_store_close(s);
    else if (s != NULL)
        return ROE_ERR_INTERNAL;
    return st;
}

static float first_f32(const struct roe_tensor *t) {
    float v;
    memcpy(&v, t->data, sizeof v);
    return v;
}

TEST(valid_sharded) {
    const char *dir = make_sharded(GOOD_INDEX, SHARD2_HEADER, 12);
    roe_store *s = NULL;
    ASSERT_OK(roe_store_open(dir, &s));
    ASSERT_EQ_INT(roe_store_n_files(s), 2);
    ASSERT_EQ_INT(roe_store_count(s), 3);
    /* stable order: shards by name, each in data-offset order */
    ASSERT_EQ_STR(roe_store_at(s, 0)->name, "a");
    ASSERT_EQ_STR(roe_store_at(s, 1)->name, "c");
    ASSERT_EQ_STR(roe_store_at(s, 2)->name, "b");
    ASSERT_TRUE(roe_store_at(s, 3) == NULL);
    const struct roe_tensor *a = roe_store_find(s, "a"), *b = roe_store_find(s, "b"),
                            *c = roe_store_find(s, "c");
    ASSERT_TRUE(a && b && c && roe_store_find(s, "d") == NULL);
    ASSERT_TRUE(strstr(a->file, SHARD1) && strstr(c->file, SHARD1) && strstr(b->file, SHARD2));
    ASSERT_EQ_INT(b->shape[0], 3);
    ASSERT_NEAR(first_f32(a), 1, 0);
    ASSERT_NEAR(first_f32(c), 3, 0);
    ASSERT_NEAR(first_f32(b), 4, 0);
    roe_store_close(s);
    roe_store_close(NULL);
}

TEST(valid_single_dir) {
    char p[PATH_LEN];
    const char *dir = tmpdir();
    write_valid(join(dir, "model.safetensors", p), 0);
    roe_store *s = NULL;
    ASSERT_OK(roe_store_open(dir, &s));
    ASSERT_EQ_INT(roe_store_n_files(s), 1);
    ASSERT_EQ_INT(roe_store_count(s), 4);
    for (size_t i = 0; i < 4; i++) {
        const struct roe_tensor *t = roe_store_at(s, i);
        ASSERT_TRUE(check_valid_tensor(t));
        ASSERT_TRUE(roe_store_find(s, t->name) == t);
    }
    roe_store_close(s);
}

TEST(index_not_json) {
    const char *dir = make_sharded("{'weight_map': ", SHARD2_HEADER, 12);
    ASSERT_FAILS_WITH(open_store(dir), ROE_ERR_FORMAT, "index JSON is truncated");
    dir = make_sharded("weight_map", SHARD2_HEADER, 12);
    ASSERT_FAILS_WITH(open_store(dir), ROE_ERR_FORMAT,
                      "model.safetensors.index.json: index is not valid JSON");
    dir = make_sharded("['weight_map']", SHARD2_HEADER, 12);
    ASSERT_FAILS_WITH(open_store(dir), ROE_ERR_FORMAT, "index is a JSON array");
}

TEST(index_without_weight_map) {
    const char *dir = make_sharded("{'metadata': {}}", SHARD2_HEADER, 12);
    ASSERT_FAILS_WITH(open_store(dir), ROE_ERR_FORMAT, "index has no \"weight_map\" object");
    dir = make_sharded("{'weight_map': []}", SHARD2_HEADER, 12);
    ASSERT_FAILS_WITH(open_store(dir), ROE_ERR_FORMAT, "\"weight_map\" is a JSON array");
    dir = make_sharded("{'weight_map': {'a': 1}}", SHARD2_HEADER, 12);
    ASSERT_FAILS_WITH(open_store(dir), ROE_ERR_FORMAT, "weight_map['a'] is a JSON number");
}

TEST(index_missing_shard) {
    const char *dir = make_sharded("{'weight_map': {'a': '" SHARD1
                                   "', 'b': 'model-00003.safetensors', 'c': '" SHARD1 "'}}",
                                   SHARD2_HEADER, 12);
    ASSERT_FAILS_WITH(open_store(dir), ROE_ERR_IO,
                      "shard 'model-00003.safetensors' named in weight_map: ");
    ASSERT_TRUE(strstr(roe_error_message(), "cannot open: No such file") != NULL);
}

TEST(index_bad_file_names) {
    const char *dir = make_sharded("{'weight_map': {'a': 'sub/x.safetensors'}}", SHARD2_HEADER, 12);
    ASSERT_FAILS_WITH(open_store(dir), ROE_ERR_FORMAT,
                      "weight_map['a'] = 'sub/x.safetensors' is not a plain file name");
    dir = make_sharded("{'weight_map': {'a': '../x.safetensors'}}", SHARD2_HEADER, 12);
    ASSERT_FAILS_WITH(open_store(dir), ROE_ERR_FORMAT,
                      "'../x.safetensors' is not a plain file name");
    dir = make_sharded("{'weight_map': {'a': '..'}}", SHARD2_HEADER, 12);
    ASSERT_FAILS_WITH(open_store(dir), ROE_ERR_FORMAT, "(no '/', no '..')");
}

TEST(index_wrong_shard) {
    const char *dir =
        make_sharded("{'weight_map': {'a': '" SHARD1 "', 'b': '" SHARD2 "', 'c': '" SHARD2 "'}}",
                     SHARD2_HEADER, 12);
    ASSERT_FAILS_WITH(open_store(dir), ROE_ERR_FORMAT,
                      "weight_map puts tensor 'c' in '" SHARD2 "', but it is in '");
    ASSERT_TRUE(strstr(roe_error_message(), SHARD1 "'") != NULL);
}

TEST(index_lists_absent_tensor) {
    const char *dir = make_sharded("{'weight_map': {'a': '" SHARD1 "', 'b': '" SHARD2
                                   "', 'c': '" SHARD1 "', 'd': '" SHARD2 "'}}",
                                   SHARD2_HEADER, 12);
    ASSERT_FAILS_WITH(open_store(dir), ROE_ERR_FORMAT,
                      "weight_map puts tensor 'd' in '" SHARD2 "', but no shard contains it");
}

TEST(shard_tensor_not_in_index) {
    const char *dir =
        make_sharded("{'weight_map': {'a': '" SHARD1 "', 'b': '" SHARD2 "'}}", SHARD2_HEADER, 12);
    ASSERT_FAILS_WITH(open_store(dir), ROE_ERR_FORMAT, "tensor 'c' in '");
    ASSERT_TRUE(strstr(roe_error_message(),
                       "is not listed in weight_map (3 tensors in the shards, 2 listed)"));
}

TEST(duplicate_across_shards) {
    const char *dir =
        make_sharded(GOOD_INDEX,
                     "{'b': {'dtype': 'F32', 'shape': [3], 'data_offsets': [0, 12]},"
                     " 'a': {'dtype': 'F32', 'shape': [2], 'data_offsets': [12, 20]}}",
                     20);
    ASSERT_FAILS_WITH(open_store(dir), ROE_ERR_FORMAT, "tensor 'a' is in both '");
    ASSERT_TRUE(strstr(roe_error_message(), SHARD1 "' and '") &&
                strstr(roe_error_message(), SHARD2));
}

TEST(index_duplicate_entry) {
    const char *dir = make_sharded("{'weight_map': {'a': '" SHARD1 "', 'b': '" SHARD2
                                   "', 'c': '" SHARD1 "', 'a': '" SHARD1 "'}}",
                                   SHARD2_HEADER, 12);
    ASSERT_FAILS_WITH(open_store(dir), ROE_ERR_FORMAT, "weight_map lists tensor 'a' twice");
}

TEST(corrupt_shard) {
    const char *dir = make_sharded(
        GOOD_INDEX, "{'b': {'dtype': 'F32', 'shape': [3], 'data_offsets': [0, 12]}}", 8);
    ASSERT_FAILS_WITH(open_store(dir), ROE_ERR_FORMAT, "shard '" SHARD2 "' named in weight_map: ");
    ASSERT_TRUE(strstr(roe_error_message(), "exceed data section of 8 bytes"));
}

TEST(missing_model_dir) {
    char p[PATH_LEN];
    join(tmpdir(), "nope", p);
    ASSERT_FAILS_WITH(open_store(p), ROE_ERR_IO, "does not exist");
    ASSERT_TRUE(strstr(roe_error_message(), p));
    char f[PATH_LEN];
    write_text(join(tmpdir(), "file", f), "x");
    ASSERT_FAILS_WITH(open_store(f), ROE_ERR_IO, "is not a directory");
}

TEST(dir_without_safetensors) {
    const char *dir = tmpdir();
    ASSERT_FAILS_WITH(open_store(dir), ROE_ERR_IO,
                      "has neither model.safetensors.index.json nor model.safetensors");
    ASSERT_TRUE(strstr(roe_error_message(), dir));
}

/* Fails each roe_* allocation of an open in turn: every one must give ROE_ERR_NOMEM, a NULL
 * handle and no leak; once no failure is injected the open must succeed. */
typedef roe_status (*open_fn)(const char *);

static roe_status open_st_path(const char *path) {
    roe_st_file *f = (roe_st_file *)1;
    roe_status st = roe_st_open(path, &f);
    if (st == ROE_OK)
        roe_st_close(f);
    else if (f != NULL)
        return ROE_ERR_INTERNAL;
    return st;
}

static int fail_each_allocation(open_fn fn, const char *arg) {
    for (uint64_t k = 1; k < 10000; k++) {
        uint64_t before = roe_alloc_failures();
        roe_alloc_fail_after(k, 0);
        roe_status st = fn(arg);
        roe_alloc_fail_after(0, 0);
        int injected = roe_alloc_failures() > before;
        if (!injected) return st == ROE_OK ? (int)k : -1;
        if (st != ROE_ERR_NOMEM || roe_error_message()[0] == '\0') {
            fprintf(stderr, "  allocation %llu failed: %s: %s\n", (unsigned long long)k,
                    roe_status_name(st), roe_error_message());
            return -1;
        }
    }
    return -1;
}

TEST(allocation_failures) {
    char p[PATH_LEN];
    join(tmpdir(), "model.safetensors", p);
    write_valid(p, 0);
    ASSERT_TRUE(fail_each_allocation(open_st_path, p) > 1);
    ASSERT_TRUE(fail_each_allocation(open_store, make_sharded(GOOD_INDEX, SHARD2_HEADER, 12)) > 1);
    const char *dir = tmpdir();
    write_valid(join(dir, "model.safetensors", p), 0);
    ASSERT_TRUE(fail_each_allocation(open_store, dir) > 1);
}

int main(void) {
    RUN(dtype_names_and_sizes);
    RUN(valid_single_file);
    RUN(valid_padded_and_misaligned);
    RUN(valid_empty_header);
    RUN(bad_arguments);
    RUN(missing_file);
    RUN(empty_file);
    RUN(shorter_than_8_bytes);
    RUN(header_length_past_end);
    RUN(header_length_absurd);
    RUN(header_not_json);
    RUN(header_trailing_data);
    RUN(header_not_utf8);
    RUN(header_not_object);
    RUN(header_truncated);
    RUN(entry_not_object);
    RUN(missing_dtype);
    RUN(unknown_dtype);
    RUN(missing_shape);
    RUN(negative_dim);
    RUN(non_integer_dim);
    RUN(too_many_dims);
    RUN(shape_overflow);
    RUN(missing_data_offsets);
    RUN(data_offsets_arity);
    RUN(begin_after_end);
    RUN(end_past_data);
    RUN(size_mismatch);
    RUN(overlapping_tensors);
    RUN(gap_between_tensors);
    RUN(trailing_bytes);
    RUN(duplicate_tensor_names);
    RUN(metadata_not_object);
    RUN(truncated_prefixes);
    RUN(header_mutations);
    RUN(valid_sharded);
    RUN(valid_single_dir);
    RUN(index_not_json);
    RUN(index_without_weight_map);
    RUN(index_missing_shard);
    RUN(index_bad_file_names);
    RUN(index_wrong_shard);
    RUN(index_lists_absent_tensor);
    RUN(shard_tensor_not_in_index);
    RUN(duplicate_across_shards);
    RUN(index_duplicate_entry);
    RUN(corrupt_shard);
    RUN(missing_model_dir);
    RUN(dir_without_safetensors);
    RUN(allocation_failures);
    cleanup_dirs();
    return test_summary();
}
