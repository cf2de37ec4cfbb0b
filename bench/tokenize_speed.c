/*
 * tokenize_speed.c — roe's tokenizer encode speed on one thread: every line of a JSON-lines
 * file of strings (tests/data/tokenizer/families/strings.jsonl, gunzipped) encoded one string
 * at a time, repeated until at least --min-s seconds; the best of --reps repetitions.
 *
 *   tokenize_speed TOKENIZER_JSON STRINGS_JSONL [--reps N] [--min-s S]
 *
 * Prints one JSON object: strings, bytes, ids per pass, seconds per pass, MB/s, strings/s.
 * Times are the process's CPU time (one thread), which other processes on a shared machine
 * disturb far less than wall time; tools/bench_tokenizers.py times the same way.
 * bench/tokenize.sh runs it next to tools/bench_tokenizers.py (Hugging Face, one thread).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "base/alloc.h"
#include "runtime/tokenizer.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts); /* CPU time: the 2-core machine is shared */
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s TOKENIZER_JSON STRINGS_JSONL [--reps N] [--min-s S]\n", argv[0]);
        return 2;
    }
    int reps = 5;
    double min_s = 0.5;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--reps") == 0) reps = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--min-s") == 0) min_s = atof(argv[i + 1]);
    }
    roe_tokenizer *t = NULL;
    if (roe_tokenizer_load(argv[1], &t) != ROE_OK) {
        fprintf(stderr, "%s\n", roe_error_message());
        return 1;
    }
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", argv[2]);
        return 1;
    }
    char **s = NULL, *line = NULL;
    size_t n = 0, cap = 0, lcap = 0, bytes = 0;
    ssize_t got;
    while ((got = getline(&line, &lcap, f)) > 0) {
        cJSON *j = cJSON_ParseWithLength(line, (size_t)got);
        if (cJSON_IsString(j)) {
            if (n == cap) {
                char **grown = realloc(s, (cap = cap ? 2 * cap : 1024) * sizeof *s);
                if (!grown) {
                    fprintf(stderr, "out of memory reading %s\n", argv[2]);
                    return 1;
                }
                s = grown;
            }
            s[n++] = strdup(j->valuestring);
            bytes += strlen(j->valuestring);
        }
        cJSON_Delete(j);
    }
    free(line);
    fclose(f);
    double best = 1e30;
    size_t ids_total = 0;
    for (int r = 0; r < reps; r++) {
        int passes = 0;
        double t0 = now_s(), el;
        do {
            ids_total = 0;
            for (size_t i = 0; i < n; i++) {
                int32_t *ids = NULL;
                size_t k = 0;
                if (roe_tokenizer_encode(t, s[i], strlen(s[i]), &ids, &k) != ROE_OK) {
                    fprintf(stderr, "string %zu: %s\n", i + 1, roe_error_message());
                    return 1;
                }
                ids_total += k;
                roe_free(ids);
            }
            passes++;
            el = now_s() - t0;
        } while (el < min_s);
        if (el / passes < best) best = el / passes;
    }
    printf("{\"strings\": %zu, \"bytes\": %zu, \"ids\": %zu, \"s_per_pass\": %.6f, \"mb_per_s\": %.2f, "
           "\"strings_per_s\": %.0f}\n",
           n, bytes, ids_total, best, (double)bytes / best / 1e6, (double)n / best);
    for (size_t i = 0; i < n; i++)
        free(s[i]);
    free(s);
    roe_tokenizer_free(t);
    return 0;
}
