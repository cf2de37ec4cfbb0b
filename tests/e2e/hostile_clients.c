/*
 * hostile_clients.c — slow and many clients against `roe serve`, and one that behaves
 * (tests/e2e/serve_hostile.sh runs it; loopback only, bounded in time and count).
 *
 *   hostile_clients --port P --slow N [--requests R] [--interval I] [--seconds S] [--deadline D]
 *
 * N slow clients, each from its own loopback address (127.0.0.2, 127.0.0.3, ..., so that a
 * per-address limit alone cannot stop them): half trickle a request head one byte a second,
 * half send a head at once and then trickle its body one byte a second; each reconnects at once
 * whenever the server closes it. Meanwhile, from 127.0.0.1, a normal client sends R completion
 * requests one after another, honouring 429 and 503 (it waits Retry-After) and retrying a
 * refused connection after 0.2 s, each request given D seconds (30) to be answered; and a prober
 * (127.0.0.254) asks GET /health (every fourth time /metrics) every half second (the requests I seconds apart), each answer due within 1 s. Everything
 * stops after S seconds at most.
 *
 *   hostile_clients --port P --hold K --from ADDR
 *
 * opens K idle connections from ADDR and prints how many the server answered 429 at once (the
 * per-address limit).
 *
 *   hostile_clients --port P --raw FILE [--half]
 *
 * sends FILE's bytes as they are (with --half, then shuts its sending side: a half-close) and
 * prints what comes back until the server closes (10 s at most; 120 s with --half).
 *
 * Prints one line of JSON; exit 0 when at least 95% of the normal client's requests were
 * answered 200 within D seconds each and every /health within 1 s, else 1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int port = 8000;
static atomic_int stop;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void nap(double s) {
    struct timespec t = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&t, NULL);
}

/* A connection to the server from `from` (NULL: any), non-blocking if asked; -1 on failure. */
static int dial(const char *from, int nonblock) {
    const int fd = socket(AF_INET, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0) return -1;
    if (from) {
        struct sockaddr_in a = {.sin_family = AF_INET};
        inet_pton(AF_INET, from, &a.sin_addr);
        if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
            close(fd);
            return -1;
        }
    }
    struct sockaddr_in s = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &s.sin_addr);
    if (connect(fd, (struct sockaddr *)&s, sizeof s) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Sends a request and reads the answer (at most `limit` seconds): its status, and its
 * Retry-After in *retry (0 if none). -1: no answer (refused, reset, timed out). */
static int exchange(const char *from, const char *req, double limit, int *retry) {
    *retry = 0;
    const int fd = dial(from, 0);
    if (fd < 0) return -1;
    struct timeval tv = {(time_t)limit, (suseconds_t)((limit - (double)(time_t)limit) * 1e6)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int status = -1;
    if (send(fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req)) {
        char buf[8192];
        size_t got = 0;
        ssize_t n;
        while (got < sizeof buf - 1 && (n = recv(fd, buf + got, sizeof buf - 1 - got, 0)) > 0) {
            got += (size_t)n;
            buf[got] = '\0';
            const char *body = strstr(buf, "\r\n\r\n");
            if (body && sscanf(buf, "HTTP/1.%*d %d", &status) == 1 && status != 100) {
                const char *ra = strcasestr(buf, "\r\nRetry-After: ");
                if (ra && ra < body) *retry = atoi(ra + 15);
                break; /* the status is what counts (the body may be long) */
            }
            if (body && status == 100) { /* an interim answer: the final one follows */
                memmove(buf, body + 4, got - (size_t)(body + 4 - buf));
                got -= (size_t)(body + 4 - buf);
                status = -1;
            }
        }
    }
    close(fd);
    return status;
}

/* ---- the slow clients: one thread polls them all ---- */

struct slow {
    int fd;
    int body;      /* trickles a body (else a head) */
    size_t sent;
    double next;   /* when its next byte is due */
    char from[32];
};

static const char SLOW_HEAD[] =
    "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Padding: "
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
static const char BODY_HEAD[] =
    "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: "
    "4000\r\n\r\n";

static atomic_long slow_connects;

static void *slow_thread(void *arg) {
    int n = *(int *)arg;
    struct slow *c = calloc((size_t)n, sizeof *c);
    struct pollfd *p = calloc((size_t)n, sizeof *p);
    for (int i = 0; i < n; i++) {
        c[i].fd = -1;
        c[i].body = i % 2;
        snprintf(c[i].from, sizeof c[i].from, "127.0.0.%d", 2 + i);
    }
    while (!atomic_load(&stop)) {
        const double t = now_s();
        for (int i = 0; i < n; i++) {
            struct slow *s = &c[i];
            if (s->fd < 0) { /* (re)connect at once: the aggressive kind */
                s->fd = dial(s->from, 1);
                s->sent = 0;
                s->next = t;
                if (s->fd >= 0) atomic_fetch_add(&slow_connects, 1);
            }
            if (s->fd < 0 || t < s->next) continue;
            const char *what = s->body ? BODY_HEAD : SLOW_HEAD;
            const size_t whole = strlen(what);
            /* a body client sends its head at once, then a byte a second; a head client a byte a second */
            const size_t k = s->body && s->sent == 0 ? whole : 1;
            const char *b = s->sent < whole ? what + s->sent : "x";
            if (send(s->fd, b, k, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno != EAGAIN) {
                close(s->fd);
                s->fd = -1;
                continue;
            }
            s->sent += k;
            s->next = t + 1.0;
        }
        for (int i = 0; i < n; i++) p[i] = (struct pollfd){.fd = c[i].fd, .events = POLLIN};
        poll(p, (nfds_t)n, 100);
        for (int i = 0; i < n; i++) /* the server answered (an error) or closed: start over */
            if (c[i].fd >= 0 && (p[i].revents & (POLLIN | POLLHUP | POLLERR))) {
                char sink[4096];
                const ssize_t r = recv(c[i].fd, sink, sizeof sink, MSG_DONTWAIT);
                if (r <= 0 || (p[i].revents & (POLLHUP | POLLERR))) {
                    close(c[i].fd);
                    c[i].fd = -1;
                }
            }
    }
    for (int i = 0; i < n; i++)
        if (c[i].fd >= 0) close(c[i].fd);
    free(c);
    free(p);
    return NULL;
}

/* ---- /health, every half second ---- */

static double health_worst;
static int health_failed, health_asked;

static void *health_thread(void *arg) {
    (void)arg;
    static const char health[] = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                      metrics[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    for (int k = 0; !atomic_load(&stop); k++) {
        const double t0 = now_s();
        int retry;
        const int st = exchange("127.0.0.254", k % 4 == 3 ? metrics : health, 1.0, &retry);
        const double dt = now_s() - t0;
        health_asked++;
        if (st != 200 || dt > 1.0) health_failed++;
        if (dt > health_worst) health_worst = dt;
        nap(0.5);
    }
    return NULL;
}

/* One request of the normal client: 1 if answered 200 within `limit` seconds. */
static int normal_request(int i, double limit, int *tries) {
    char body[160], req[512];
    snprintf(body, sizeof body, "{\"prompt\": \"Q: %d + %d = ? A:\", \"max_tokens\": 4, \"ignore_eos\": true}", i, i + 1);
    snprintf(req, sizeof req,
             "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
             strlen(body), body);
    const double until = now_s() + limit;
    *tries = 0;
    while (now_s() < until) {
        int retry;
        (*tries)++;
        const int st = exchange("127.0.0.1", req, until - now_s(), &retry);
        if (st == 200) return 1;
        if (st == 429 || st == 503)
            nap(retry > 0 ? retry : 1.0); /* as told */
        else
            nap(0.2); /* refused or reset: try again soon */
    }
    return 0;
}

static int hold_mode(int k, const char *from) {
    int *fd = calloc((size_t)k, sizeof *fd), refused = 0;
    for (int i = 0; i < k; i++) fd[i] = dial(from, 0);
    nap(0.5);
    for (int i = 0; i < k; i++) {
        if (fd[i] < 0) continue;
        char b[512] = "";
        struct pollfd p = {.fd = fd[i], .events = POLLIN};
        if (poll(&p, 1, 0) > 0 && recv(fd[i], b, sizeof b - 1, MSG_DONTWAIT) > 0 && strstr(b, " 429 ") &&
            strstr(b, "Retry-After") && strstr(b, "\"error\""))
            refused++;
        close(fd[i]);
    }
    printf("{\"opened\": %d, \"refused_429\": %d}\n", k, refused);
    free(fd);
    return 0;
}

static int raw_mode(const char *path, int half) {
    FILE *f = fopen(path, "rb");
    if (!f) return 2;
    static char req[1 << 20], out[1 << 20];
    const size_t n = fread(req, 1, sizeof req, f);
    fclose(f);
    const int fd = dial(NULL, 0);
    if (fd < 0) return 2;
    struct timeval tv = {half ? 120 : 10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (send(fd, req, n, MSG_NOSIGNAL) != (ssize_t)n) return 2;
    if (half) shutdown(fd, SHUT_WR);
    size_t got = 0;
    ssize_t r;
    while (got < sizeof out && (r = recv(fd, out + got, sizeof out - got, 0)) > 0) got += (size_t)r;
    fwrite(out, 1, got, stdout);
    close(fd);
    return 0;
}

int main(int argc, char **argv) {
    int slow = 0, requests = 20, hold = 0, half = 0;
    const char *raw = NULL;
    double seconds = 120, deadline = 30, interval = 0;
    const char *from = "127.0.0.5";
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--half")) half = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--half")) i--; /* a flag without a value */
        else if (!strcmp(argv[i], "--raw")) raw = argv[i + 1];
        else if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--slow")) slow = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--requests")) requests = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--deadline")) deadline = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--interval")) interval = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--hold")) hold = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--from")) from = argv[i + 1];
    }
    if (hold) return hold_mode(hold, from);
    if (raw) return raw_mode(raw, half);
    pthread_t ts, th;
    pthread_create(&ts, NULL, slow_thread, &slow);
    nap(2.0); /* the slow clients take their places first */
    pthread_create(&th, NULL, health_thread, NULL);
    const double t0 = now_s();
    int ok = 0, done = 0, tries = 0, worst_tries = 0;
    double worst = 0;
    for (; done < requests && now_s() - t0 < seconds; done++) {
        const double r0 = now_s();
        int t;
        ok += normal_request(done, deadline, &t);
        tries += t;
        if (t > worst_tries) worst_tries = t;
        if (now_s() - r0 > worst) worst = now_s() - r0;
        nap(interval);
    }
    atomic_store(&stop, 1);
    pthread_join(ts, NULL);
    pthread_join(th, NULL);
    const int pass = done == requests && ok * 100 >= 95 * requests && health_failed == 0 && health_asked > 0;
    printf("{\"slow_clients\": %d, \"slow_connects\": %ld, \"requests\": %d, \"answered\": %d, \"attempts\": %d, "
           "\"most_attempts\": %d, \"slowest_s\": %.2f, \"health_asked\": %d, \"health_failed\": %d, "
           "\"health_worst_s\": %.3f, \"seconds\": %.1f, \"pass\": %s}\n",
           slow, atomic_load(&slow_connects), done, ok, tries, worst_tries, worst, health_asked, health_failed,
           health_worst, now_s() - t0, pass ? "true" : "false");
    return pass ? 0 : 1;
}
