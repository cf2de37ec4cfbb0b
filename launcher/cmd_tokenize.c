/*
 * cmd_tokenize.c — `roe tokenize`: text to token ids and ids to text with a model's
 * tokenizer.json, exactly as Hugging Face `tokenizers` encodes (no special tokens added) and
 * decodes. No weights are read.
 *
 *   roe tokenize [--model DIR | --tokenizer FILE] (--text T | --ids 1,2,3)... [--json]
 *   roe tokenize [--model DIR | --tokenizer FILE] --input FILE|-
 *
 * --text prints the ids, the tokens as the file spells them and each token's piece of text;
 * --ids prints the decoded text. With --input, every line of FILE is a JSON string (text),
 * {"text": "..."} or {"ids": [1, 2]}, and each answer is one line of JSON:
 * {"ids": [...], "text": decode(ids)} for a text, {"text": "..."} for ids — the batch form
 * the tokenizer tests run 5,000 strings per tokenizer through.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "args.h"
#include "base/alloc.h"
#include "base/json.h"
#include "commands.h"
#include "json_out.h"
#include "runtime/tokenizer.h"
#include "session.h"

static const char *CMD = "tokenize";
static const char *SYNOPSIS = "[--model DIR | --tokenizer FILE] (--text T | --ids 1,2,3)... [--json] | --input FILE";

struct tok_opts {
    const char *model_dir, *tokenizer, *input;
    struct roe_arg_list texts, ids;
    int json, skip_special;
};

/* "1,2,3" (spaces allowed) -> ids; -1 on a malformed list. *ids roe_malloc'd. */
static int parse_id_list(const char *s, int32_t **ids, size_t *n) {
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    *ids = roe_malloc(cap * sizeof **ids);
    *n = 0;
    if (!*ids) return -1;
    const char *p = s;
    while (*p == ' ') p++;
    if (!*p) return 0; /* the empty list */
    for (;;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > INT32_MAX) return -1;
        (*ids)[(*n)++] = (int32_t)v;
        p = end;
        while (*p == ' ') p++;
        if (!*p) return 0;
        if (*p++ != ',') return -1;
    }
}

/* A token's bytes as a JSON-safe string (a piece may end inside a character: U+FFFD). */
static cJSON *piece_json(const char *b, size_t n) {
    char *s = roe_malloc(3 * n + 1), *w = s;
    if (!s) return cJSON_CreateNull();
    for (size_t i = 0; i < n;) {
        const unsigned char c = (unsigned char)b[i];
        size_t len = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
        int ok = len && i + len <= n;
        for (size_t k = 1; ok && k < len; k++)
            ok = ((unsigned char)b[i + k] & 0xC0) == 0x80;
        if (ok) {
            memcpy(w, b + i, len);
            w += len, i += len;
        } else {
            memcpy(w, "\xEF\xBF\xBD", 3);
            w += 3, i++;
        }
    }
    *w = '\0';
    cJSON *j = cJSON_CreateString(s);
    roe_free(s);
    return j;
}

/* {"text", "ids", "tokens", "pieces", "count"} for a text. */
static int encode_one(const roe_tokenizer *t, const char *text, cJSON *results, int json) {
    int32_t *ids = NULL;
    size_t n = 0;
    roe_status st = roe_tokenizer_encode(t, text, strlen(text), &ids, &n);
    if (st != ROE_OK) return roe_report(CMD, st);
    cJSON *o = cJSON_CreateObject(), *ja = cJSON_CreateArray(), *jt = cJSON_CreateArray(),
          *jp = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        const char *s, *b;
        size_t sl, bl;
        roe_tokenizer_token_text(t, ids[i], &s, &sl);
        roe_tokenizer_token_bytes(t, ids[i], &b, &bl);
        cJSON_AddItemToArray(ja, cJSON_CreateNumber(ids[i]));
        cJSON_AddItemToArray(jt, piece_json(s, sl));
        cJSON_AddItemToArray(jp, piece_json(b, bl));
    }
    cJSON_AddItemToObject(o, "text", cJSON_CreateString(text));
    cJSON_AddItemToObject(o, "ids", ja);
    cJSON_AddItemToObject(o, "tokens", jt);
    cJSON_AddItemToObject(o, "pieces", jp);
    cJSON_AddNumberToObject(o, "count", (double)n);
    roe_free(ids);
    if (json) {
        cJSON_AddItemToArray(results, o);
        return 0;
    }
    char *a = cJSON_PrintUnformatted(ja), *b = cJSON_PrintUnformatted(jt), *c = cJSON_PrintUnformatted(jp),
         *d = cJSON_PrintUnformatted(cJSON_GetObjectItem(o, "text"));
    printf("text    %s\nids     %s (%zu tokens)\ntokens  %s\npieces  %s\n", d ? d : "", a ? a : "", n,
           b ? b : "", c ? c : "");
    cJSON_free(a), cJSON_free(b), cJSON_free(c), cJSON_free(d);
    cJSON_Delete(o);
    return 0;
}

/* {"ids", "text"} for an id list. */
static int decode_one(const roe_tokenizer *t, const char *list, int flags, cJSON *results, int json) {
    int32_t *ids = NULL;
    size_t n = 0;
    if (parse_id_list(list, &ids, &n) != 0) {
        roe_free(ids);
        fprintf(stderr, "roe tokenize: --ids '%s': expected comma-separated token ids\n", list);
        return 2;
    }
    char *text = NULL;
    size_t len = 0;
    roe_status st = roe_tokenizer_decode(t, ids, n, flags, &text, &len);
    if (st != ROE_OK) {
        roe_free(ids);
        return roe_report(CMD, st);
    }
    cJSON *o = cJSON_CreateObject(), *ja = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(ja, cJSON_CreateNumber(ids[i]));
    cJSON_AddItemToObject(o, "ids", ja);
    cJSON_AddItemToObject(o, "text", cJSON_CreateString(text));
    roe_free(ids);
    roe_free(text);
    if (json) {
        cJSON_AddItemToArray(results, o);
        return 0;
    }
    char *a = cJSON_PrintUnformatted(ja), *d = cJSON_PrintUnformatted(cJSON_GetObjectItem(o, "text"));
    printf("ids     %s\ntext    %s\n", a ? a : "", d ? d : "");
    cJSON_free(a), cJSON_free(d);
    cJSON_Delete(o);
    return 0;
}

/* One --input line: its answer as a JSON object (NULL with a message on a bad line). */
static cJSON *batch_line(const roe_tokenizer *t, const cJSON *in, int flags, char *why, size_t why_n) {
    const cJSON *text = cJSON_IsString(in) ? in : cJSON_GetObjectItemCaseSensitive(in, "text");
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(in, "ids");
    int32_t *v = NULL, *enc = NULL;
    size_t n = 0;
    char *dec = NULL;
    size_t dl = 0;
    cJSON *o = NULL;
    if (cJSON_IsString(text)) {
        if (roe_tokenizer_encode(t, text->valuestring, strlen(text->valuestring), &enc, &n) != ROE_OK) goto fail;
        v = enc;
    } else if (cJSON_IsArray(ids)) {
        n = (size_t)cJSON_GetArraySize(ids);
        v = enc = roe_malloc((n ? n : 1) * sizeof *v);
        size_t k = 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, ids) {
            if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > INT32_MAX) {
                snprintf(why, why_n, "\"ids\" holds something other than a token id");
                goto fail;
            }
            v[k++] = (int32_t)x->valuedouble;
        }
    } else {
        snprintf(why, why_n, "expected a JSON string, {\"text\": \"...\"} or {\"ids\": [...]}");
        goto fail;
    }
    if (roe_tokenizer_decode(t, v, n, flags, &dec, &dl) != ROE_OK) goto fail;
    o = cJSON_CreateObject();
    if (cJSON_IsString(text)) {
        cJSON *ja = cJSON_AddArrayToObject(o, "ids");
        for (size_t i = 0; i < n; i++)
            cJSON_AddItemToArray(ja, cJSON_CreateNumber(v[i]));
    }
    cJSON_AddStringToObject(o, "text", dec);
fail:
    if (!o && !why[0]) snprintf(why, why_n, "%s", roe_error_message());
    roe_free(enc);
    roe_free(dec);
    return o;
}

/* --input: JSON lines in, JSON lines out. */
static int run_batch(const roe_tokenizer *t, const char *input, int flags) {
    FILE *f = strcmp(input, "-") == 0 ? stdin : fopen(input, "rb");
    if (!f) {
        fprintf(stderr, "roe tokenize: --input %s: cannot open\n", input);
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    int rc = 0;
    ssize_t got;
    while (rc == 0 && (got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = '\0';
        if (got == 0) continue;
        char why[512] = "";
        cJSON *in = cJSON_ParseWithLength(line, (size_t)got);
        cJSON *out = in ? batch_line(t, in, flags, why, sizeof why) : NULL;
        char *s = out ? cJSON_PrintUnformatted(out) : NULL;
        if (s) {
            puts(s);
        } else {
            fprintf(stderr, "roe tokenize: %s line %ld: %s\n", input, lineno, in ? why : "not valid JSON");
            rc = 1;
        }
        cJSON_free(s);
        cJSON_Delete(out);
        cJSON_Delete(in);
    }
    free(line);
    if (f != stdin) fclose(f);
    return rc;
}

/* 0: run; 1: --help printed; 2: bad command line. */
static int parse_options(int argc, char **argv, struct tok_opts *o) {
    memset(o, 0, sizeof *o);
    struct roe_arg_spec specs[] = {
        {"--model", ROE_ARG_STRING, &o->model_dir, "model directory holding tokenizer.json (default: the bundled model)", 0, 0},
        {"--tokenizer", ROE_ARG_STRING, &o->tokenizer, "a tokenizer.json file (instead of --model)", 0, 0},
        {"--text", ROE_ARG_LIST, &o->texts, "text to encode (repeatable)", 0, 0},
        {"--ids", ROE_ARG_LIST, &o->ids, "token ids to decode, '1,2,3' (repeatable)", 0, 0},
        {"--input", ROE_ARG_STRING, &o->input, "JSON lines to encode or decode ('-': stdin), one answer per line", 0, 0},
        {"--skip-special", ROE_ARG_FLAG, &o->skip_special, "leave special tokens out when decoding", 0, 0},
        {"--json", ROE_ARG_FLAG, &o->json, "print one JSON document", 0, 0},
    };
    const int n_specs = (int)(sizeof specs / sizeof specs[0]);
    int rc = roe_args_parse(CMD, SYNOPSIS, specs, n_specs, argc, argv, 2);
    if (rc) return rc;
    if (o->model_dir && o->tokenizer) {
        fprintf(stderr, "roe tokenize: give --model or --tokenizer, not both\n");
        return 2;
    }
    if ((o->texts.n + o->ids.n == 0) == !o->input) {
        fprintf(stderr, "roe tokenize: give --text TEXT or --ids IDS (repeatable), or --input FILE\n");
        roe_args_usage(CMD, SYNOPSIS, specs, n_specs);
        return 2;
    }
    return 0;
}

int roe_cmd_tokenize(int argc, char **argv) {
    struct tok_opts o;
    int rc = parse_options(argc, argv, &o);
    if (rc) return rc == 1 ? 0 : rc;
    char path[4096];
    if (o.tokenizer)
        snprintf(path, sizeof path, "%s", o.tokenizer);
    else
        snprintf(path, sizeof path, "%s/tokenizer.json", o.model_dir ? o.model_dir : roe_default_model_dir());
    roe_tokenizer *t = NULL;
    roe_status st = roe_tokenizer_load(path, &t);
    if (st != ROE_OK) return roe_report(CMD, st);
    const int flags = o.skip_special ? ROE_DECODE_SKIP_SPECIAL : 0;
    if (o.input) {
        rc = run_batch(t, o.input, flags);
        roe_tokenizer_free(t);
        return rc;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "tokenizer", path);
    cJSON *results = cJSON_AddArrayToObject(root, "results");
    for (int ti = 0, ii = 0; rc == 0 && ti + ii < o.texts.n + o.ids.n;) { /* command-line order */
        const int text_next = ii >= o.ids.n || (ti < o.texts.n && o.texts.order[ti] < o.ids.order[ii]);
        if (!o.json && ti + ii > 0) printf("\n");
        rc = text_next ? encode_one(t, o.texts.items[ti++], results, o.json)
                       : decode_one(t, o.ids.items[ii++], flags, results, o.json);
    }
    if (rc == 0 && o.json) roe_json_print(root);
    cJSON_Delete(root);
    roe_tokenizer_free(t);
    return rc;
}
