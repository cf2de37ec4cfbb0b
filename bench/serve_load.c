/*
 * serve_load.c — a load generator for `roe serve` (or any OpenAI-compatible server), in the
 * style of `vllm bench serve`: random prompts of given token lengths, sent as streamed
 * completions with Poisson arrivals (--request-rate) or as fast as a fixed number of clients
 * allow (--max-concurrency); reports request and token throughput, TTFT, TPOT and ITL (mean,
 * median, p99) like vLLM does:
 *   TTFT  arrival of the first chunk with text - request sent
 *   TPOT  (latency - TTFT) / (output tokens - 1), per request
 *   ITL   time between successive chunks with text, over every request
 * Output tokens come from the server's usage chunk (stream_options.include_usage).
 *
 *   build/bench/serve_load --port 8000 --num-prompts 200 --max-concurrency 16 \
 *       --random-input-len 128 --random-output-len 64 [--request-rate R] [--roe-k 4 --roe-tau 0.5]
 *   build/bench/serve_load --port 8000 --duration 600 --max-concurrency 16 ...   (a soak)
 *
 * Prompts are token-id arrays (exact lengths, no tokenizer needed): ids drawn uniformly from
 * [--min-id, --vocab) with a fixed seed, lengths uniform in [len x (1 - ratio), len x (1 + ratio)]
 * (--random-range-ratio); --shared-prefix-len P puts the same P ids (a system prompt, the same for any --seed) before every
 * prompt. ignore_eos is set unless --no-ignore-eos, so outputs have their length.
 * Plain sockets and HTTP/1.1 (chunked or sized bodies); one connection per request.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

struct opts {
    const char *host, *model, *json_out;
    int port, num_prompts, max_concurrency, input_len, output_len, vocab, min_id, ignore_eos, roe_k;
    int shared_prefix; /* ids every prompt starts with (the same for all: a system prompt) */
    double request_rate, range_ratio, roe_tau, duration, timeout_s;
    unsigned seed;
};

struct result {
    int ok;
    int input_tokens, output_tokens;
    double sent, ttft, latency;
    double *itl; /* [n_itl] */
    int n_itl, cap_itl;
    char error[256];
};

struct shared {
    const struct opts *o;
    double t0;
    double *arrival; /* [num_prompts] seconds after t0 (0 with an infinite rate) */
    atomic_int next;
    int limit; /* requests to send (num_prompts, or unbounded with --duration) */
    pthread_mutex_t mu;
    struct result *results; /* [cap] */
    int n_results, cap;
};

/* xorshift, per request: the same prompts whatever the thread timing */
static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int rand_len(int len, double ratio, uint64_t *s) {
    const int lo = (int)floor(len * (1.0 - ratio)), hi = (int)ceil(len * (1.0 + ratio));
    const int n = lo + (int)(rng_next(s) % (uint64_t)(hi - lo + 1));
    return n < 1 ? 1 : n;
}

static char *request_body(const struct opts *o, int i, int *n_in) {
    uint64_t s = 0x9E3779B97F4A7C15ull ^ ((uint64_t)o->seed << 20) ^
                 (uint64_t)(i + 1) * 0xD1B54A32D192ED03ull;
    for (int k = 0; k < 4; k++)
        rng_next(&s);
    const int n = rand_len(o->input_len, o->range_ratio, &s);
    const int out = rand_len(o->output_len, o->range_ratio, &s);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", o->model);
    cJSON *p = cJSON_AddArrayToObject(root, "prompt");
    uint64_t sp = 0x243F6A8885A308D3ull; /* the shared prefix: one stream, whatever --seed */
    for (int k = 0; k < o->shared_prefix; k++)
        cJSON_AddItemToArray(
            p, cJSON_CreateNumber(o->min_id + (double)(rng_next(&sp) % (uint64_t)(o->vocab - o->min_id))));
    for (int k = 0; k < n; k++)
        cJSON_AddItemToArray(
            p, cJSON_CreateNumber(o->min_id +
                                  (double)(rng_next(&s) % (uint64_t)(o->vocab - o->min_id))));
    cJSON_AddNumberToObject(root, "max_tokens", out);
    cJSON_AddBoolToObject(root, "ignore_eos", o->ignore_eos);
    cJSON_AddNumberToObject(root, "temperature", 0);
    cJSON_AddBoolToObject(root, "stream", 1);
    cJSON_AddBoolToObject(cJSON_AddObjectToObject(root, "stream_options"), "include_usage", 1);
    if (o->roe_k > 1) {
        cJSON_AddNumberToObject(root, "roe_k", o->roe_k);
        cJSON_AddNumberToObject(root, "roe_tau", o->roe_tau);
    }
    char *body = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    *n_in = o->shared_prefix + n;
    return body;
}

static int connect_to(const char *host, int port, double timeout_s) {
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(host, service, &hints, &ai) != 0) return -1;
    int fd = -1;
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd >= 0) {
        struct timeval tv = {.tv_sec = (time_t)timeout_s, .tv_usec = 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n) {
    while (n) {
        const ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* The body of a response, decoded from chunked or sized framing as it arrives; SSE events
 * handed to on_event as soon as they are complete. */
struct reader {
    int fd;
    char buf[1 << 16];
    size_t len, off;
};

static int fill(struct reader *r) {
    if (r->off > 0) {
        memmove(r->buf, r->buf + r->off, r->len - r->off);
        r->len -= r->off;
        r->off = 0;
    }
    if (r->len == sizeof r->buf) return -1;
    for (;;) {
        const ssize_t k = recv(r->fd, r->buf + r->len, sizeof r->buf - r->len, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        r->len += (size_t)k;
        return 0;
    }
}

/* A line ending in \r\n from the reader (without it), into out. */
static int read_line(struct reader *r, char *out, size_t cap) {
    for (;;) {
        char *nl = memchr(r->buf + r->off, '\n', r->len - r->off);
        if (nl) {
            size_t n = (size_t)(nl - (r->buf + r->off));
            if (n && nl[-1] == '\r') n--;
            if (n >= cap) n = cap - 1;
            memcpy(out, r->buf + r->off, n);
            out[n] = '\0';
            r->off = (size_t)(nl - r->buf) + 1;
            return 0;
        }
        if (fill(r) != 0) return -1;
    }
}

static void add_itl(struct result *res, double v) {
    if (res->n_itl == res->cap_itl) {
        res->cap_itl = res->cap_itl ? 2 * res->cap_itl : 64;
        res->itl = realloc(res->itl, (size_t)res->cap_itl * sizeof *res->itl);
    }
    res->itl[res->n_itl++] = v;
}

/* One SSE event's payload: 1 at [DONE], 0 to go on, -1 on an error event. */
static int on_event(struct result *res, const char *data, double *last) {
    if (strcmp(data, "[DONE]") == 0) return 1;
    cJSON *o = cJSON_Parse(data);
    if (!o) {
        snprintf(res->error, sizeof res->error, "unparsable event: %.100s", data);
        return -1;
    }
    const cJSON *err = cJSON_GetObjectItem(o, "error");
    if (err) {
        const cJSON *m = cJSON_GetObjectItem(err, "message");
        snprintf(res->error, sizeof res->error, "error event: %.200s",
                 cJSON_IsString(m) ? m->valuestring : "?");
        cJSON_Delete(o);
        return -1;
    }
    const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 0);
    const cJSON *text = ch ? cJSON_GetObjectItem(ch, "text") : NULL;
    if (cJSON_IsString(text) && text->valuestring[0]) {
        const double t = now_s();
        if (res->ttft < 0)
            res->ttft = t - res->sent;
        else
            add_itl(res, t - *last);
        *last = t;
    }
    const cJSON *u = cJSON_GetObjectItem(o, "usage");
    if (u) res->output_tokens = cJSON_GetObjectItem(u, "completion_tokens")->valueint;
    cJSON_Delete(o);
    return 0;
}

static void run_one(const struct opts *o, int i, struct result *res) {
    memset(res, 0, sizeof *res);
    res->ttft = -1;
    char *body = request_body(o, i, &res->input_tokens);
    char head[512];
    const int hn = snprintf(
        head, sizeof head,
        "POST /v1/completions HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
        "Accept: text/event-stream\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
        o->host, o->port, strlen(body));
    struct reader *r = calloc(1, sizeof *r);
    r->fd = connect_to(o->host, o->port, o->timeout_s);
    res->sent = now_s();
    if (r->fd < 0) {
        snprintf(res->error, sizeof res->error, "cannot connect to %s:%d: %s", o->host, o->port,
                 strerror(errno));
        goto out;
    }
    if (send_all(r->fd, head, (size_t)hn) || send_all(r->fd, body, strlen(body))) {
        snprintf(res->error, sizeof res->error, "send failed: %s", strerror(errno));
        goto out;
    }
    char line[4096];
    int status = 0, chunked = 0;
    long long length = -1;
    if (read_line(r, line, sizeof line) || sscanf(line, "HTTP/1.%*d %d", &status) != 1) {
        snprintf(res->error, sizeof res->error, "no HTTP status line");
        goto out;
    }
    for (;;) {
        if (read_line(r, line, sizeof line)) {
            snprintf(res->error, sizeof res->error, "headers cut short");
            goto out;
        }
        if (!line[0]) break;
        if (strncasecmp(line, "transfer-encoding:", 18) == 0 && strstr(line, "chunked"))
            chunked = 1;
        if (strncasecmp(line, "content-length:", 15) == 0) length = atoll(line + 15);
    }
    /* the body, de-framed, split into SSE events */
    char *ev = NULL;
    size_t ev_len = 0, ev_cap = 0;
    double last = 0;
    int done = 0;
    while (!done) {
        size_t n;
        if (chunked) {
            if (read_line(r, line, sizeof line)) break;
            n = strtoul(line, NULL, 16);
            if (n == 0) break;
        } else
            n = length >= 0 ? (size_t)length : (size_t)-1;
        while (n > 0 && !done) {
            if (r->off == r->len && fill(r) != 0) {
                done = length < 0 && !chunked ? 2 : -1;
                break;
            }
            size_t take = r->len - r->off < n ? r->len - r->off : n;
            if (ev_len + take + 1 > ev_cap) {
                ev_cap = (ev_len + take + 1) * 2;
                char *grown = realloc(ev, ev_cap);
                if (!grown) {
                    snprintf(res->error, sizeof res->error, "out of memory for an event of %zu bytes", ev_cap);
                    done = -1;
                    break;
                }
                ev = grown;
            }
            memcpy(ev + ev_len, r->buf + r->off, take);
            ev_len += take;
            ev[ev_len] = '\0';
            r->off += take;
            n -= take;
            char *sep;
            while (!done && (sep = strstr(ev, "\n\n"))) {
                *sep = '\0';
                if (status == 200 && strncmp(ev, "data: ", 6) == 0) {
                    const int rc = on_event(res, ev + 6, &last);
                    if (rc) done = rc;
                }
                const size_t used = (size_t)(sep + 2 - ev);
                memmove(ev, sep + 2, ev_len - used + 1);
                ev_len -= used;
            }
        }
        if (chunked && !done && read_line(r, line, sizeof line)) break; /* the chunk's CRLF */
        if (!chunked) break;
    }
    res->latency = now_s() - res->sent;
    if (status != 200)
        snprintf(res->error, sizeof res->error, "HTTP %d: %.200s", status, ev ? ev : "");
    else if (done == 1 && res->ttft >= 0 && res->output_tokens > 0)
        res->ok = 1;
    else if (!res->error[0])
        snprintf(res->error, sizeof res->error, "the stream ended without [DONE] or tokens");
    free(ev);
out:
    if (r->fd >= 0) close(r->fd);
    free(r);
    free(body);
}

static void *client(void *arg) {
    struct shared *sh = arg;
    const struct opts *o = sh->o;
    for (;;) {
        const int i = atomic_fetch_add(&sh->next, 1);
        if (i >= sh->limit) return NULL;
        if (o->duration > 0 && now_s() - sh->t0 >= o->duration) return NULL;
        const double wait = sh->t0 + sh->arrival[i % o->num_prompts] - now_s();
        if (o->duration <= 0 && wait > 0) {
            struct timespec ts = {(time_t)wait, (long)((wait - floor(wait)) * 1e9)};
            nanosleep(&ts, NULL);
        }
        struct result res;
        run_one(o, i % o->num_prompts, &res);
        pthread_mutex_lock(&sh->mu);
        if (sh->n_results == sh->cap) {
            sh->cap = sh->cap ? 2 * sh->cap : 256;
            sh->results = realloc(sh->results, (size_t)sh->cap * sizeof *sh->results);
        }
        sh->results[sh->n_results++] = res;
        pthread_mutex_unlock(&sh->mu);
    }
}

static int cmp_d(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

struct stat3 {
    double mean, median, p99;
};

/* vLLM's percentiles (numpy's linear interpolation). */
static struct stat3 stats(double *v, int n) {
    struct stat3 s = {0, 0, 0};
    if (n == 0) return s;
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += v[i];
    s.mean = sum / n;
    const double q[2] = {0.5, 0.99};
    double *out[2] = {&s.median, &s.p99};
    for (int k = 0; k < 2; k++) {
        const double pos = q[k] * (n - 1);
        const int lo = (int)floor(pos), hi = lo + 1 < n ? lo + 1 : lo;
        *out[k] = v[lo] + (v[hi] - v[lo]) * (pos - lo);
    }
    return s;
}

static void usage(void) {
    fprintf(
        stderr,
        "usage: serve_load [--host H] [--port P] [--model NAME] [--num-prompts N] [--request-rate "
        "R|inf]\n"
        "                  [--max-concurrency C] [--random-input-len L] [--random-output-len O]\n"
        "                  [--random-range-ratio X] [--vocab V] [--min-id I] [--seed S] [--roe-k K "
        "--roe-tau T]\n"
        "                  [--no-ignore-eos] [--duration S] [--timeout S] [--json FILE] [--shared-prefix-len P]\n");
}

int main(int argc, char **argv) {
    struct opts o = {.host = "127.0.0.1",
                     .model = "olmoe-tiny",
                     .port = 8000,
                     .num_prompts = 100,
                     .max_concurrency = 0,
                     .input_len = 128,
                     .output_len = 64,
                     .vocab = 4096,
                     .min_id = 1,
                     .ignore_eos = 1,
                     .roe_k = 1,
                     .request_rate = INFINITY,
                     .range_ratio = 0.0,
                     .roe_tau = 0.5,
                     .duration = 0,
                     .timeout_s = 600,
                     .seed = 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (strcmp(a, name) == 0 && v && ++i)
        if (ARG("--host"))
            o.host = v;
        else if (ARG("--port"))
            o.port = atoi(v);
        else if (ARG("--model"))
            o.model = v;
        else if (ARG("--num-prompts"))
            o.num_prompts = atoi(v);
        else if (ARG("--request-rate"))
            o.request_rate = strcmp(v, "inf") == 0 ? INFINITY : atof(v);
        else if (ARG("--max-concurrency"))
            o.max_concurrency = atoi(v);
        else if (ARG("--random-input-len"))
            o.input_len = atoi(v);
        else if (ARG("--random-output-len"))
            o.output_len = atoi(v);
        else if (ARG("--random-range-ratio"))
            o.range_ratio = atof(v);
        else if (ARG("--vocab"))
            o.vocab = atoi(v);
        else if (ARG("--min-id"))
            o.min_id = atoi(v);
        else if (ARG("--seed"))
            o.seed = (unsigned)atoi(v);
        else if (ARG("--roe-k"))
            o.roe_k = atoi(v);
        else if (ARG("--roe-tau"))
            o.roe_tau = atof(v);
        else if (ARG("--duration"))
            o.duration = atof(v);
        else if (ARG("--timeout"))
            o.timeout_s = atof(v);
        else if (ARG("--shared-prefix-len"))
            o.shared_prefix = atoi(v);
        else if (ARG("--json"))
            o.json_out = v;
        else if (strcmp(a, "--no-ignore-eos") == 0)
            o.ignore_eos = 0;
        else {
            fprintf(stderr, "serve_load: unknown or incomplete option '%s'\n", a);
            usage();
            return 2;
        }
#undef ARG
    }
    if (o.num_prompts < 1 || o.input_len < 1 || o.output_len < 1 || o.vocab <= o.min_id ||
        o.min_id < 0 || o.range_ratio < 0 || o.range_ratio >= 1 || !(o.request_rate > 0) ||
        o.max_concurrency < 0 || o.roe_k < 1 || o.shared_prefix < 0) {
        fprintf(stderr, "serve_load: need positive counts and lengths, 0 <= min-id < vocab, 0 <= "
                        "ratio < 1, rate > 0\n");
        return 2;
    }
    struct shared sh = {.o = &o, .limit = o.duration > 0 ? 1 << 30 : o.num_prompts};
    pthread_mutex_init(&sh.mu, NULL);
    sh.arrival = calloc((size_t)o.num_prompts, sizeof *sh.arrival);
    uint64_t s = 0x2545F4914F6CDD1Dull ^ o.seed;
    double t = 0;
    for (int i = 0; i < o.num_prompts; i++) { /* Poisson process: exponential gaps */
        sh.arrival[i] = isinf(o.request_rate) ? 0.0 : t;
        const double u = ((double)(rng_next(&s) >> 11) + 0.5) / 9007199254740992.0;
        t += -log(u) / o.request_rate;
    }
    int clients = o.max_concurrency ? o.max_concurrency : o.num_prompts;
    if (o.duration > 0 && !o.max_concurrency) clients = 16;
    pthread_t *th = calloc((size_t)clients, sizeof *th);
    fprintf(stderr,
            "serve_load: %s%d prompts of %d tokens -> %d tokens, rate %g/s, concurrency %s%d, RoE "
            "K=%d, %s:%d\n",
            o.duration > 0 ? "for the duration, " : "", o.num_prompts, o.input_len, o.output_len,
            o.request_rate, o.max_concurrency ? "" : "up to ", clients, o.roe_k, o.host, o.port);
    sh.t0 = now_s();
    for (int i = 0; i < clients; i++)
        pthread_create(&th[i], NULL, client, &sh);
    for (int i = 0; i < clients; i++)
        pthread_join(th[i], NULL);
    const double dur = now_s() - sh.t0;

    int ok = 0, failed = 0, n_itl = 0;
    long in_tok = 0, out_tok = 0;
    for (int i = 0; i < sh.n_results; i++) {
        ok += sh.results[i].ok;
        n_itl += sh.results[i].ok ? sh.results[i].n_itl : 0;
    }
    failed = sh.n_results - ok;
    double *ttft = calloc((size_t)ok + 1, sizeof *ttft),
           *tpot = calloc((size_t)ok + 1, sizeof *tpot),
           *itl = calloc((size_t)n_itl + 1, sizeof *itl),
           *e2e = calloc((size_t)ok + 1, sizeof *e2e);
    int k = 0, nt = 0, ni = 0;
    for (int i = 0; i < sh.n_results; i++) {
        const struct result *r = &sh.results[i];
        if (!r->ok) {
            if (failed <= 10 || i < 3)
                fprintf(stderr, "serve_load: request failed: %s\n", r->error);
            continue;
        }
        in_tok += r->input_tokens;
        out_tok += r->output_tokens;
        ttft[k] = r->ttft;
        e2e[k++] = r->latency;
        if (r->output_tokens > 1) tpot[nt++] = (r->latency - r->ttft) / (r->output_tokens - 1);
        for (int j = 0; j < r->n_itl; j++)
            itl[ni++] = r->itl[j];
    }
    const struct stat3 st_ttft = stats(ttft, k), st_tpot = stats(tpot, nt), st_itl = stats(itl, ni),
                       st_e2e = stats(e2e, k);
    printf("============ Serving Benchmark Result ============\n");
    printf("%-40s %d\n", "Successful requests:", ok);
    printf("%-40s %d\n", "Failed requests:", failed);
    printf("%-40s %g\n", "Maximum request concurrency:", (double)clients);
    printf("%-40s %.2f\n", "Benchmark duration (s):", dur);
    printf("%-40s %ld\n", "Total input tokens:", in_tok);
    printf("%-40s %ld\n", "Total generated tokens:", out_tok);
    printf("%-40s %.2f\n", "Request throughput (req/s):", ok / dur);
    printf("%-40s %.2f\n", "Output token throughput (tok/s):", out_tok / dur);
    printf("%-40s %.2f\n", "Total token throughput (tok/s):", (in_tok + out_tok) / dur);
    printf("---------------Time to First Token----------------\n");
    printf("%-40s %.2f\n%-40s %.2f\n%-40s %.2f\n", "Mean TTFT (ms):", 1e3 * st_ttft.mean,
           "Median TTFT (ms):", 1e3 * st_ttft.median, "P99 TTFT (ms):", 1e3 * st_ttft.p99);
    printf("-----Time per Output Token (excl. 1st token)------\n");
    printf("%-40s %.2f\n%-40s %.2f\n%-40s %.2f\n", "Mean TPOT (ms):", 1e3 * st_tpot.mean,
           "Median TPOT (ms):", 1e3 * st_tpot.median, "P99 TPOT (ms):", 1e3 * st_tpot.p99);
    printf("---------------Inter-token Latency----------------\n");
    printf("%-40s %.2f\n%-40s %.2f\n%-40s %.2f\n", "Mean ITL (ms):", 1e3 * st_itl.mean,
           "Median ITL (ms):", 1e3 * st_itl.median, "P99 ITL (ms):", 1e3 * st_itl.p99);
    printf("----------------End-to-end Latency----------------\n");
    printf("%-40s %.2f\n%-40s %.2f\n%-40s %.2f\n", "Mean E2EL (ms):", 1e3 * st_e2e.mean,
           "Median E2EL (ms):", 1e3 * st_e2e.median, "P99 E2EL (ms):", 1e3 * st_e2e.p99);
    printf("==================================================\n");
    if (o.json_out) {
        char rate[32] = "\"inf\"";
        if (!isinf(o.request_rate)) snprintf(rate, sizeof rate, "%g", o.request_rate);
        FILE *f = fopen(o.json_out, "w");
        if (f) {
            fprintf(f,
                    "{\"completed\": %d, \"failed\": %d, \"max_concurrency\": %d, "
                    "\"request_rate\": %s, \"roe_k\": %d, "
                    "\"input_len\": %d, \"output_len\": %d, \"duration\": %.4f, "
                    "\"total_input_tokens\": %ld, "
                    "\"total_output_tokens\": %ld, \"request_throughput\": %.4f, "
                    "\"output_throughput\": %.4f, "
                    "\"mean_ttft_ms\": %.3f, \"median_ttft_ms\": %.3f, \"p99_ttft_ms\": %.3f, "
                    "\"mean_tpot_ms\": %.3f, \"median_tpot_ms\": %.3f, \"p99_tpot_ms\": %.3f, "
                    "\"mean_itl_ms\": %.3f, \"median_itl_ms\": %.3f, \"p99_itl_ms\": %.3f, "
                    "\"mean_e2el_ms\": %.3f, \"median_e2el_ms\": %.3f, \"p99_e2el_ms\": %.3f}\n",
                    ok, failed, clients, rate, o.roe_k, o.input_len, o.output_len, dur, in_tok,
                    out_tok, ok / dur, out_tok / dur, 1e3 * st_ttft.mean, 1e3 * st_ttft.median,
                    1e3 * st_ttft.p99, 1e3 * st_tpot.mean, 1e3 * st_tpot.median, 1e3 * st_tpot.p99,
                    1e3 * st_itl.mean, 1e3 * st_itl.median, 1e3 * st_itl.p99, 1e3 * st_e2e.mean,
                    1e3 * st_e2e.median, 1e3 * st_e2e.p99);
            fclose(f);
        }
    }
    for (int i = 0; i < sh.n_results; i++)
        free(sh.results[i].itl);
    free(sh.results);
    free(sh.arrival);
    free(th);
    free(ttft);
    free(tpot);
    free(itl);
    free(e2e);
    return failed ? 1 : 0;
}
