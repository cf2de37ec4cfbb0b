/* eval.c — clean-cache RoE scoring and the evaluation tasks; see eval.h. */
#include "eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "base/fileio.h"
#include "generate.h"
#include "base/json.h"
#include "base/philox.h"

struct roe_scorer {
    roe_engine *e;
    int R, V, n_layers;
    struct roe_row *rows;  /* [R] */
    int *gpos;             /* [R] position of each group */
    int *gfirst;           /* [R] first logits row of each group */
    int *gn;               /* [R] rows of each group */
    uint8_t *gmore;        /* [R] adaptive: the group owes its samples */
    float *logits;         /* [R, V] */
    float *clean;          /* [R, V] adaptive: clean logits awaiting samples */
    float *z;              /* [V] */
    float *scratch;        /* [V] */
    const float **lp;      /* [ROE_MAX_SAMPLES] */
};

/* The scorer's arrays (R = max_rows, V = vocabulary). */
#define SCORER_ARRAYS(s, R, V)                                                                     \
    {ROE_ARRAY((s)->rows, R),          ROE_ARRAY((s)->gpos, R),           ROE_ARRAY((s)->gfirst, R),      \
     ROE_ARRAY((s)->gn, R),            ROE_ARRAY((s)->gmore, R),          ROE_ARRAY((s)->logits, (R) * (V)), \
     ROE_ARRAY((s)->clean, (R) * (V)), ROE_ARRAY((s)->z, V),              ROE_ARRAY((s)->scratch, V),     \
     ROE_ARRAY((s)->lp, ROE_MAX_SAMPLES)}

roe_status roe_scorer_create(roe_engine *engine, roe_scorer **out) {
    *out = NULL;
    roe_scorer *s = roe_calloc(1, sizeof *s);
    if (!s) return roe_fail(ROE_ERR_NOMEM, "scorer: out of memory");
    s->e = engine;
    s->R = roe_engine_get_opts(engine)->max_rows;
    s->V = roe_engine_model(engine)->cfg.vocab_size;
    s->n_layers = roe_engine_model(engine)->cfg.n_layers;
    const size_t R = (size_t)s->R, V = (size_t)s->V;
    const struct roe_array arrays[] = SCORER_ARRAYS(s, R, V);
    roe_status st = roe_arrays_alloc(arrays, ROE_N_OF(arrays), "scorer");
    if (st != ROE_OK) {
        roe_scorer_free(s);
        return st;
    }
    *out = s;
    return ROE_OK;
}

void roe_scorer_free(roe_scorer *s) {
    if (!s) return;
    const struct roe_array arrays[] = SCORER_ARRAYS(s, 0, 0);
    roe_arrays_free(arrays, ROE_N_OF(arrays));
    roe_free(s);
}

static struct roe_row row_at(const int32_t *ids, int p, int sample, int want, uint64_t seed,
                             const struct roe_roster *roster) {
    return (struct roe_row){.seq = 0, .pos = p, .token = ids[p], .sample = sample, .want_logits = want,
                            .seed = seed, .roster = roster};
}

/* The mean over the k samples in s->lp of each one's own log p(token): what the samples score
 * alone, against which the averaged prediction's score (`score`) is the averaging gain (ROE.md).
 * One sample is its own average (roe_aggregate copies it): its score, not computed again. */
static double samples_log_prob(const roe_scorer *s, int k, int token, double score) {
    if (k == 1) return score;
    double m = 0;
    for (int j = 0; j < k; j++) m += roe_log_prob(s->lp[j], s->V, token);
    return m / k;
}

/* Adaptive phase B: the K-1 samples of every group that owes them, then aggregation. */
static roe_status owed_samples(roe_scorer *s, int ng, const int32_t *ids, int k, uint64_t seed,
                               const struct roe_roster *roster, double *sum, struct roe_score_stats *st) {
    int g = 0;
    while (g < ng) {
        int nr = 0, g0 = g;
        for (; g < ng && nr + (k - 1) <= s->R; g++) {
            if (!s->gmore[g]) continue;
            s->gfirst[g] = nr;
            for (int j = 1; j < k; j++) s->rows[nr++] = row_at(ids, s->gpos[g], j, 1, seed, roster);
        }
        if (nr == 0) continue;
        ROE_TRY(roe_engine_step(s->e, s->rows, nr, s->logits));
        st->rows_computed += roe_engine_last_stats(s->e).rows_computed;
        for (int h = g0; h < g; h++) {
            if (!s->gmore[h]) continue;
            s->lp[0] = s->clean + (size_t)h * s->V;
            for (int j = 1; j < k; j++) s->lp[j] = s->logits + (size_t)(s->gfirst[h] + j - 1) * s->V;
            roe_aggregate(s->lp, k, s->V, s->z, s->scratch);
            const double lp = roe_log_prob(s->z, s->V, ids[s->gpos[h] + 1]);
            *sum += lp;
            st->sample_logprob += samples_log_prob(s, k, ids[s->gpos[h] + 1], lp);
            st->samples += k - 1;
        }
    }
    return ROE_OK;
}

roe_status roe_score(roe_scorer *s, const int32_t *ids, int n, int first, const struct roe_roster *roster,
                     uint64_t seed, double *sum_logprob, struct roe_score_stats *st) {
    const int k = roster ? roster->k : 1;
    const int adaptive = roster && k > 1 && roster->adaptive_entropy > 0.0f;
    if (first < 1 || first > n)
        return roe_fail(ROE_ERR_INVALID_ARG, "score: first scored token %d outside [1, %d]", first, n);
    if (k > s->R)
        return roe_fail(ROE_ERR_INVALID_ARG, "score: RoE K = %d exceeds the %d rows per step", k, s->R);
    roe_engine_reset_seq(s->e, 0);
    double sum = 0.0;
    int p = 0;
    while (p <= n - 2) {
        int nr = 0, ng = 0, nl = 0;
        while (p <= n - 2) {
            if (p < first - 1) { /* context: the clean path only */
                if (nr + 1 > s->R) break;
                s->rows[nr++] = row_at(ids, p++, 0, 0, seed, roster);
                st->rows_naive += s->n_layers;
                continue;
            }
            const int need = adaptive ? 1 : k;
            if (nr + need > s->R) break;
            s->gpos[ng] = p;
            s->gfirst[ng] = nl;
            s->gn[ng] = need;
            s->gmore[ng] = 0;
            ng++;
            for (int j = 0; j < need; j++) s->rows[nr++] = row_at(ids, p, j, 1, seed, roster);
            nl += need;
            st->rows_naive += (long)k * s->n_layers;
            p++;
        }
        ROE_TRY(roe_engine_step(s->e, s->rows, nr, s->logits));
        st->rows_computed += roe_engine_last_stats(s->e).rows_computed;
        int owed = 0;
        for (int g = 0; g < ng; g++) {
            const float *first_row = s->logits + (size_t)s->gfirst[g] * s->V;
            st->positions++;
            st->samples += s->gn[g];
            if (adaptive && roe_entropy(first_row, s->V) > (double)roster->adaptive_entropy) {
                memcpy(s->clean + (size_t)g * s->V, first_row, (size_t)s->V * sizeof(float));
                s->gmore[g] = 1;
                owed = 1;
                continue;
            }
            for (int j = 0; j < s->gn[g]; j++) s->lp[j] = first_row + (size_t)j * s->V;
            roe_aggregate(s->lp, s->gn[g], s->V, s->z, s->scratch);
            const double lp = roe_log_prob(s->z, s->V, ids[s->gpos[g] + 1]);
            sum += lp;
            st->sample_logprob += samples_log_prob(s, s->gn[g], ids[s->gpos[g] + 1], lp);
        }
        if (owed) ROE_TRY(owed_samples(s, ng, ids, k, seed, roster, &sum, st));
    }
    *sum_logprob = sum;
    return ROE_OK;
}

/* ---- tasks ---- */

const char *roe_task_name(roe_task t) {
    return t == ROE_TASK_TEXT ? "text" : t == ROE_TASK_ARITH ? "arith" : "choice";
}

void roe_wilson(long k, long n, double ci[2]) {
    if (n == 0) {
        ci[0] = ci[1] = 0.0;
        return;
    }
    const double z = 1.96, p = (double)k / n, d = 1 + z * z / n;
    const double c = (p + z * z / (2.0 * n)) / d;
    const double h = z * sqrt(p * (1 - p) / n + z * z / (4.0 * n * n)) / d;
    ci[0] = c - h > 0 ? c - h : 0;
    ci[1] = c + h < 1 ? c + h : 1;
}

/* The lines of a JSONL file, parsed. */
struct jsonl {
    int n;
    cJSON **items;
};

static void jsonl_free(struct jsonl *j) {
    for (int i = 0; i < j->n; i++) cJSON_Delete(j->items[i]);
    roe_free(j->items);
    memset(j, 0, sizeof *j);
}

static roe_status jsonl_read(const char *path, int limit, struct jsonl *out) {
    memset(out, 0, sizeof *out);
    char *text = NULL;
    size_t len = 0;
    ROE_TRY(roe_file_read_all(path, (size_t)1 << 30, &text, &len));
    int cap = 1;
    for (size_t i = 0; i < len; i++) cap += text[i] == '\n';
    out->items = roe_calloc((size_t)cap, sizeof *out->items);
    if (!out->items) {
        roe_free(text);
        return roe_fail(ROE_ERR_NOMEM, "%s: out of memory", path);
    }
    roe_status st = ROE_OK;
    char *line = text;
    for (int lineno = 1; line && *line; lineno++) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        const char *q = line;
        while (*q == ' ' || *q == '\t' || *q == '\r') q++;
        if (*q) {
            int oom = 0;
            cJSON *o = roe_json_parse(line, strlen(line), NULL, &oom);
            if (!cJSON_IsObject(o)) {
                cJSON_Delete(o);
                st = oom ? roe_fail(ROE_ERR_NOMEM, "%s:%d: out of memory parsing the line", path, lineno)
                         : roe_fail(ROE_ERR_FORMAT, "%s:%d: not a JSON object", path, lineno);
                break;
            }
            out->items[out->n++] = o;
            if (limit > 0 && out->n >= limit) break;
        }
        line = nl ? nl + 1 : NULL;
    }
    roe_free(text);
    if (st == ROE_OK && out->n == 0) st = roe_fail(ROE_ERR_FORMAT, "%s: no items", path);
    if (st != ROE_OK) jsonl_free(out);
    return st;
}

static const char *str_field(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

roe_status roe_eval_detect(const char *path, roe_task *task) {
    struct jsonl j;
    ROE_TRY(jsonl_read(path, 1, &j));
    const cJSON *o = j.items[0];
    roe_status st = ROE_OK;
    if (str_field(o, "text")) *task = ROE_TASK_TEXT;
    else if (str_field(o, "prompt") && str_field(o, "answer")) *task = ROE_TASK_ARITH;
    else if (str_field(o, "context") && cJSON_IsArray(cJSON_GetObjectItem(o, "choices"))) *task = ROE_TASK_CHOICE;
    else st = roe_fail(ROE_ERR_FORMAT,
                       "%s: line 1 has none of the task formats: {\"text\"}, {\"prompt\", \"answer\"}, "
                       "{\"context\", \"choices\", \"label\"}", path);
    jsonl_free(&j);
    return st;
}

static void progress(const struct roe_eval_opts *o, const char *what, int i, int n, double t0) {
    if (!o->progress) return;
    char bar[31];
    int fill = n ? (int)(30.0 * i / n) : 30;
    for (int b = 0; b < 30; b++) bar[b] = b < fill ? '#' : '.';
    bar[30] = '\0';
    fprintf(stderr, "\r%-6s [%s] %d/%d  %.0f s", what, bar, i, n, roe_now_s() - t0);
    if (i == n) fputc('\n', stderr);
    fflush(stderr);
}

/* [separator] + tokens(a) + tokens(b): the token ids of one scored input (roe_malloc'd). */
static roe_status encode_input(const roe_tokenizer *tok, int32_t sep, const char *a, const char *b,
                               int32_t **ids, int *n, int *n_a) {
    int32_t *ia = NULL, *ib = NULL;
    size_t na = 0, nb = 0;
    ROE_TRY(roe_tokenizer_encode(tok, a, strlen(a), &ia, &na));
    if (b) {
        roe_status st = roe_tokenizer_encode(tok, b, strlen(b), &ib, &nb);
        if (st != ROE_OK) {
            roe_free(ia);
            return st;
        }
    }
    const int pre = sep >= 0;
    int32_t *out = roe_malloc((pre + na + nb + 1) * sizeof *out);
    if (!out) {
        roe_free(ia);
        roe_free(ib);
        return roe_fail(ROE_ERR_NOMEM, "eval: out of memory");
    }
    if (pre) out[0] = sep;
    memcpy(out + pre, ia, na * sizeof *out);
    if (nb) memcpy(out + pre + na, ib, nb * sizeof *out);
    roe_free(ia);
    roe_free(ib);
    *ids = out;
    *n = (int)(pre + na + nb);
    *n_a = (int)(pre + na);
    return ROE_OK;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* 95% percentile bootstrap over n passages (2000 resamples, fixed draws) of the loss per token
 * and, paired, of the averaging gain (samples' own loss - the averaged prediction's). */
static roe_status bootstrap_text(const double *nll, const double *snll, const double *ntok, int n,
                                 struct roe_eval_result *r) {
    double *boot = roe_calloc(2000, sizeof *boot), *gboot = roe_calloc(2000, sizeof *gboot);
    if (!boot || !gboot) {
        roe_free(boot);
        roe_free(gboot);
        return roe_fail(ROE_ERR_NOMEM, "eval: out of memory");
    }
    for (int b = 0; b < 2000; b++) {
        double sn = 0, ss = 0, st = 0;
        for (int i = 0; i < n; i++) {
            struct roe_philox_out x = roe_philox4x32((uint32_t)b, (uint32_t)i, 0xB007, 0, 0, 0);
            int k = (int)(x.v[0] % (uint32_t)n);
            sn += nll[k];
            ss += snll[k];
            st += ntok[k];
        }
        boot[b] = sn / st;
        gboot[b] = (ss - sn) / st;
    }
    qsort(boot, 2000, sizeof *boot, cmp_double);
    qsort(gboot, 2000, sizeof *gboot, cmp_double);
    r->gain_ci[0] = gboot[49];
    r->gain_ci[1] = gboot[1949];
    r->nll_ci[0] = boot[49];
    r->nll_ci[1] = boot[1949];
    r->ppl_ci[0] = exp(r->nll_ci[0]);
    r->ppl_ci[1] = exp(r->nll_ci[1]);
    roe_free(boot);
    roe_free(gboot);
    return ROE_OK;
}

static roe_status task_text(roe_engine *e, const roe_tokenizer *tok, int32_t sep, const struct jsonl *j,
                            const struct roe_eval_opts *o, struct roe_eval_result *r) {
    roe_scorer *sc = NULL;
    ROE_TRY(roe_scorer_create(e, &sc));
    double *nll = roe_calloc((size_t)j->n, sizeof *nll), *ntok = roe_calloc((size_t)j->n, sizeof *ntok);
    double *snll = roe_calloc((size_t)j->n, sizeof *snll); /* the samples' own mean loss */
    roe_status st = ROE_OK;
    const int ctx = roe_engine_get_opts(e)->max_ctx;
    double t0 = roe_now_s(), total = 0, tokens = 0, stotal = 0;
    double opt_best = 0, opt_model = 0, opt_tokens = 0; /* items with a known best possible loss */
    if (!nll || !ntok || !snll) st = roe_fail(ROE_ERR_NOMEM, "eval: out of memory");
    for (int i = 0; i < j->n && st == ROE_OK; i++) {
        const char *text = str_field(j->items[i], "text");
        if (!text) {
            st = roe_fail(ROE_ERR_FORMAT, "item %d has no string field 'text'", i + 1);
            break;
        }
        int32_t *ids = NULL;
        int n = 0, na = 0;
        st = encode_input(tok, sep, text, NULL, &ids, &n, &na);
        if (st != ROE_OK) break;
        const int cut = n > ctx;
        if (cut) n = ctx; /* a passage longer than the context is scored on its first part */
        double lp = 0;
        const double s0 = r->stats.sample_logprob;
        /* the first token has nothing before it to be scored on, separator or not */
        if (n >= 2) st = roe_score(sc, ids, n, 1, o->roster, o->seed, &lp, &r->stats);
        roe_free(ids);
        nll[i] = -lp;
        snll[i] = -(r->stats.sample_logprob - s0);
        stotal += snll[i];
        const cJSON *opt = cJSON_GetObjectItemCaseSensitive(j->items[i], "optimum_nll");
        if (cJSON_IsNumber(opt) && !cut && n >= 2) { /* a cut passage has no known optimum */
            opt_best += opt->valuedouble;
            opt_model += nll[i];
            opt_tokens += n - 1;
            r->optimum_items++;
        }
        ntok[i] = n - 1;
        total += -lp;
        tokens += n - 1;
        progress(o, "text", i + 1, j->n, t0);
    }
    if (st == ROE_OK) {
        r->tokens = (long)tokens;
        r->nll_per_token = total / tokens;
        r->perplexity = exp(r->nll_per_token);
        r->sample_nll_per_token = stotal / tokens;
        if (r->optimum_items) {
            r->optimum_nll_per_token = opt_best / opt_tokens;
            r->optimum_model_nll_per_token = opt_model / opt_tokens;
        }
        st = bootstrap_text(nll, snll, ntok, j->n, r);
    }
    roe_free(nll);
    roe_free(ntok);
    roe_free(snll);
    roe_scorer_free(sc);
    return st;
}

static roe_status task_choice(roe_engine *e, const roe_tokenizer *tok, int32_t sep, const struct jsonl *j,
                              const struct roe_eval_opts *o, struct roe_eval_result *r) {
    roe_scorer *sc = NULL;
    ROE_TRY(roe_scorer_create(e, &sc));
    roe_status st = ROE_OK;
    long hits = 0, hits_norm = 0;
    double t0 = roe_now_s();
    for (int i = 0; i < j->n && st == ROE_OK; i++) {
        const cJSON *it = j->items[i];
        const char *ctx = str_field(it, "context");
        const cJSON *choices = cJSON_GetObjectItem(it, "choices"), *label = cJSON_GetObjectItem(it, "label");
        if (!ctx || !cJSON_IsArray(choices) || !cJSON_IsNumber(label) ||
            label->valueint < 0 || label->valueint >= cJSON_GetArraySize(choices)) {
            st = roe_fail(ROE_ERR_FORMAT, "item %d: needs 'context', 'choices' and a 'label' indexing them", i + 1);
            break;
        }
        double best = -INFINITY, best_norm = -INFINITY;
        int arg = -1, arg_norm = -1, c = 0;
        const cJSON *ch;
        cJSON_ArrayForEach(ch, choices) {
            if (!cJSON_IsString(ch)) {
                st = roe_fail(ROE_ERR_FORMAT, "item %d: choice %d is not a string", i + 1, c);
                break;
            }
            int32_t *ids = NULL;
            int n = 0, na = 0;
            st = encode_input(tok, sep, ctx, ch->valuestring, &ids, &n, &na);
            if (st != ROE_OK) break;
            double lp = 0;
            if (n > na && na >= 1) st = roe_score(sc, ids, n, na, o->roster, o->seed, &lp, &r->stats);
            else if (n == na) lp = 0; /* an empty choice */
            roe_free(ids);
            if (st != ROE_OK) break;
            const double norm = lp / (double)(strlen(ch->valuestring) ? strlen(ch->valuestring) : 1);
            if (lp > best) best = lp, arg = c;
            if (norm > best_norm) best_norm = norm, arg_norm = c;
            c++;
        }
        hits += arg == label->valueint;
        hits_norm += arg_norm == label->valueint;
        progress(o, "choice", i + 1, j->n, t0);
    }
    if (st == ROE_OK) {
        r->accuracy = (double)hits / j->n;
        r->accuracy_norm = (double)hits_norm / j->n;
        roe_wilson(hits, j->n, r->acc_ci);
        roe_wilson(hits_norm, j->n, r->acc_norm_ci);
    }
    roe_scorer_free(sc);
    return st;
}

/* The decoded greedy continuation up to the first token that is the separator or contains a
 * newline, cut at the first newline — the rule of tools/eval_bundled.py. */
static int arith_correct(const roe_tokenizer *tok, int32_t sep, const int32_t *t, int n, const char *answer) {
    char buf[512];
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        if (t[i] == sep) break;
        const char *b;
        size_t bl;
        if (roe_tokenizer_token_bytes(tok, t[i], &b, &bl) != ROE_OK) return 0;
        int has_nl = memchr(b, '\n', bl) != NULL;
        if (len + bl >= sizeof buf) bl = sizeof buf - 1 - len;
        memcpy(buf + len, b, bl);
        len += bl;
        if (has_nl) break;
    }
    buf[len] = '\0';
    char *nl = strchr(buf, '\n');
    if (nl) *nl = '\0';
    return strcmp(buf, answer) == 0;
}

static roe_status task_arith(roe_engine *e, const roe_tokenizer *tok, int32_t sep, const struct jsonl *j,
                             const struct roe_eval_opts *o, struct roe_eval_result *r) {
    const int B = roe_engine_get_opts(e)->max_seqs < 16 ? roe_engine_get_opts(e)->max_seqs : 16;
    const int T = o->arith_max_new > 0 ? o->arith_max_new : 12;
    roe_generator *g = NULL;
    ROE_TRY(roe_generator_create(e, B, T, 0, &g));
    struct roe_request reqs[16];
    int32_t *ids[16] = {0};
    roe_status st = ROE_OK;
    long hits = 0;
    double t0 = roe_now_s();
    for (int i0 = 0; i0 < j->n && st == ROE_OK; i0 += B) {
        const int nb = j->n - i0 < B ? j->n - i0 : B;
        for (int b = 0; b < nb && st == ROE_OK; b++) {
            const char *prompt = str_field(j->items[i0 + b], "prompt");
            if (!prompt || !str_field(j->items[i0 + b], "answer")) {
                st = roe_fail(ROE_ERR_FORMAT, "item %d: needs string fields 'prompt' and 'answer'", i0 + b + 1);
                break;
            }
            int n = 0, na = 0;
            st = encode_input(tok, sep, prompt, NULL, &ids[b], &n, &na);
            reqs[b] = (struct roe_request){.prompt = ids[b], .n_prompt = n, .max_tokens = T,
                                           .sampling = roe_sampling_default(), .roster = o->roster};
            reqs[b].sampling.seed = o->seed;
        }
        struct roe_result *res = NULL;
        struct roe_gen_timing tm;
        if (st == ROE_OK) st = roe_generator_run(g, reqs, nb, &res, &tm);
        if (st == ROE_OK) {
            for (int b = 0; b < nb; b++)
                hits += arith_correct(tok, sep, res[b].tokens, res[b].n_tokens, str_field(j->items[i0 + b], "answer"));
            r->stats.positions += tm.tokens;
            r->stats.samples += tm.samples;
            r->stats.rows_computed += tm.rows_computed;
            r->stats.rows_naive += tm.rows_naive;
        }
        for (int b = 0; b < nb; b++) {
            roe_free(ids[b]);
            ids[b] = NULL;
        }
        progress(o, "arith", i0 + nb, j->n, t0);
    }
    if (st == ROE_OK) {
        r->accuracy = (double)hits / j->n;
        roe_wilson(hits, j->n, r->acc_ci);
    }
    roe_generator_free(g);
    return st;
}

roe_status roe_eval_run(roe_engine *engine, const roe_tokenizer *tok, const char *path, roe_task task,
                        const struct roe_eval_opts *opts, struct roe_eval_result *out) {
    memset(out, 0, sizeof *out);
    out->task = task;
    struct jsonl j;
    ROE_TRY(jsonl_read(path, opts->limit, &j));
    const int32_t sep = roe_tokenizer_find(tok, "<|endoftext|>");
    const double t0 = roe_now_s();
    roe_status st;
    switch (task) {
    case ROE_TASK_TEXT: st = task_text(engine, tok, sep, &j, opts, out); break;
    case ROE_TASK_ARITH: st = task_arith(engine, tok, sep, &j, opts, out); break;
    default: st = task_choice(engine, tok, sep, &j, opts, out); break;
    }
    out->items = j.n;
    out->seconds = roe_now_s() - t0;
    out->samples_per_position = out->stats.positions ? (double)out->stats.samples / out->stats.positions : 0;
    jsonl_free(&j);
    if (st != ROE_OK) roe_fail_context(st, "%s", path);
    return st;
}
