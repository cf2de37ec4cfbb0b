/* json_strict.c — checks of a parsed request body that cJSON does not make; see json_strict.h. */
#include "json_strict.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

enum { MAX_NAMED_DEPTH = 32 }; /* deeper containers are checked, but named by their ancestors */

/* Where the raw scanner is: the open containers, each with its current key or index. */
struct level {
    int is_obj;
    int want_key; /* an object between '{' or ',' and its next key */
    long index;   /* an array's element */
    char key[48];
};

struct scan {
    struct level lv[MAX_NAMED_DEPTH];
    int depth; /* containers open (may exceed MAX_NAMED_DEPTH) */
};

/* "messages[1].content" for the containers open (up to `upto` levels; the top object is
 * level 0, its key the parameter). */
static void path_of(const struct scan *s, int upto, struct roe_json_problem *p) {
    const int n = upto < MAX_NAMED_DEPTH ? upto : MAX_NAMED_DEPTH;
    size_t w = 0;
    p->path[0] = '\0';
    p->param[0] = '\0';
    for (int i = 0; i < n && w < sizeof p->path; i++) {
        const struct level *l = &s->lv[i];
        if (i == 0 && l->is_obj) snprintf(p->param, sizeof p->param, "%s", l->key);
        if (l->is_obj)
            w += (size_t)snprintf(p->path + w, sizeof p->path - w, "%s%s", i ? "." : "", l->key);
        else
            w += (size_t)snprintf(p->path + w, sizeof p->path - w, "[%ld]", l->index);
    }
}

/* A key's raw text (escapes left as written: keys are plain names in practice). */
static void copy_key(char *dst, size_t cap, const char *s, size_t n) {
    if (n >= cap) n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

/* The string starting at body[i] (its opening quote): checks its bytes, returns the index of
 * its closing quote, or (size_t)-1 with *p filled. */
static size_t scan_string(const char *body, size_t end, size_t i, struct scan *s, int is_key,
                          struct roe_json_problem *p) {
    const size_t start = i + 1;
    for (i = start; i < end && body[i] != '"'; i++) {
        const unsigned char c = (unsigned char)body[i];
        roe_json_problem_kind bad = ROE_JSON_OK;
        if (c < 0x20)
            bad = ROE_JSON_CONTROL;
        else if (c == '\\') {
            if (i + 5 < end && body[i + 1] == 'u' && memcmp(body + i + 2, "0000", 4) == 0)
                bad = ROE_JSON_NUL;
            i++; /* the escaped character (a \uXXXX's digits are plain bytes) */
        }
        if (bad != ROE_JSON_OK) {
            /* a key's own problem is its object's; a value's is its key's */
            path_of(s, is_key ? s->depth - 1 : s->depth, p);
            if (is_key && s->depth == 1) copy_key(p->param, sizeof p->param, body + start, i - start);
            p->kind = bad;
            p->at = i;
            return (size_t)-1;
        }
    }
    if (is_key && s->depth >= 1 && s->depth <= MAX_NAMED_DEPTH) {
        struct level *l = &s->lv[s->depth - 1];
        copy_key(l->key, sizeof l->key, body + start, i - start);
        l->want_key = 0;
    }
    return i;
}

/* The raw text of the value: control characters and \u0000 in strings. */
static int scan_raw(const char *body, size_t end, struct roe_json_problem *p) {
    struct scan s = {.depth = 0};
    for (size_t i = 0; i < end; i++) {
        const char c = body[i];
        struct level *top = s.depth >= 1 && s.depth <= MAX_NAMED_DEPTH ? &s.lv[s.depth - 1] : NULL;
        if (c == '"') {
            const int is_key = top && top->is_obj && top->want_key;
            i = scan_string(body, end, i, &s, is_key, p);
            if (i == (size_t)-1) return -1;
        } else if (c == '{' || c == '[') {
            if (s.depth < MAX_NAMED_DEPTH)
                s.lv[s.depth] = (struct level){.is_obj = c == '{', .want_key = c == '{'};
            s.depth++;
        } else if (c == '}' || c == ']') {
            s.depth--;
        } else if (c == ',' && top) {
            if (top->is_obj)
                top->want_key = 1;
            else
                top->index++;
        }
    }
    return 0;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first key that occurs twice among o's members (NULL: none; *oom on no memory). Small
 * objects pairwise, large ones sorted: a body of many keys costs n log n, not n^2. */
static const char *duplicate_in(const cJSON *o, int *oom) {
    int n = 0;
    for (const cJSON *c = o->child; c; c = c->next) n++;
    if (n < 2) return NULL;
    if (n <= 16) {
        for (const cJSON *a = o->child; a; a = a->next)
            for (const cJSON *b = a->next; b; b = b->next)
                if (a->string && b->string && strcmp(a->string, b->string) == 0) return a->string;
        return NULL;
    }
    const char **names = roe_malloc((size_t)n * sizeof *names);
    if (!names) {
        *oom = 1;
        return NULL;
    }
    int k = 0;
    for (const cJSON *c = o->child; c; c = c->next) names[k++] = c->string ? c->string : "";
    qsort(names, (size_t)n, sizeof *names, cmp_names);
    const char *dup = NULL;
    for (int i = 1; i < n && !dup; i++)
        if (strcmp(names[i - 1], names[i]) == 0) dup = names[i];
    roe_free(names);
    return dup;
}

/* Depth-first over v (at `path`, inside top-level field `param`). */
static int check_dups(const cJSON *v, char *path, size_t plen, const char *param,
                      struct roe_json_problem *p) {
    if (!cJSON_IsObject(v) && !cJSON_IsArray(v)) return 0;
    if (cJSON_IsObject(v)) {
        int oom = 0;
        const char *dup = duplicate_in(v, &oom);
        if (oom || dup) {
            p->kind = oom ? ROE_JSON_NOMEM : ROE_JSON_DUPLICATE;
            snprintf(p->key, sizeof p->key, "%s", dup ? dup : "");
            snprintf(p->path, sizeof p->path, "%s", path);
            /* a duplicate at the top names itself: it is the parameter given twice */
            snprintf(p->param, sizeof p->param, "%s", param[0] ? param : p->key);
            return -1;
        }
    }
    long i = 0;
    for (const cJSON *c = v->child; c; c = c->next, i++) {
        const size_t room = plen < 160 ? 160 - plen : 0;
        int w = 0;
        if (room > 1) {
            if (cJSON_IsObject(v))
                w = snprintf(path + plen, room, "%s%s", plen ? "." : "", c->string ? c->string : "");
            else
                w = snprintf(path + plen, room, "[%ld]", i);
        }
        const size_t nl = w < 0 ? plen : plen + (size_t)w >= 160 ? 159 : plen + (size_t)w;
        const char *top = param[0] ? param : (cJSON_IsObject(v) && c->string ? c->string : "");
        const int rc = check_dups(c, path, nl, top, p);
        path[plen] = '\0';
        if (rc) return rc;
    }
    return 0;
}

int roe_json_strict_check(const char *body, size_t len, size_t end, const cJSON *root,
                          struct roe_json_problem *p) {
    memset(p, 0, sizeof *p);
    for (size_t i = end; i < len; i++) {
        const char c = body[i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            p->kind = ROE_JSON_TRAILING;
            p->at = i;
            return -1;
        }
    }
    if (scan_raw(body, end, p) != 0) return -1;
    char path[160] = "";
    return check_dups(root, path, 0, "", p);
}
