/*
 * cmd_serve.c — `roe serve`: an OpenAI-compatible HTTP server with continuous batching.
 *
 * Wiring only: flags -> a session (model, tokenizer, engine; under mpirun the other ranks
 * too) -> the scheduler (runtime/scheduler.h) -> the HTTP server (server/server.h). This
 * thread — under mpirun rank 0's main thread, the one MPI was initialised on — runs the
 * scheduler, which alone drives the engine; the HTTP server runs in libmicrohttpd's threads.
 *
 * Shutdown: SIGINT or SIGTERM stops taking requests (503, /health 503), fails the waiting
 * ones, lets the running ones finish, then closes the connections and exits 0; a second
 * signal fails the running ones at the next step too. The handler only writes a byte to a
 * pipe (async-signal-safe); a watcher thread does the rest. The pipe is process-wide state
 * because a signal handler has nowhere else to find it.
 */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "roe_flags.h"
#include "base/alloc.h"
#include "base/env.h"
#include "base/fileio.h"
#include "engine_opts.h"
#include "runtime/scheduler.h"
#include "server/chat.h"
#include "server/openai.h"
#include "server/server.h"
#include "session.h"

static const char *CMD = "serve";
static const char *SYNOPSIS =
    "[--model DIR] [--weights bf16|q8|q4] [--host ADDR] [--port P] [--port-file FILE] [--served-model-name NAME]\n"
    "       [--max-seqs N] [--max-model-len N] [--batch-rows N] [--prefill-first] [--max-queue N]\n"
    "       [--kv-memory SIZE] [--kv-block-size N]"
    "       [--kv-blocks N] [--max-connections N] [--max-connections-per-address N] [--max-body-bytes N]\n"
    "       [--timeout S] [--header-timeout S] [--body-timeout S] [--api-key KEY] [--public-metrics]\n"
    "       [--ssl-certfile PEM --ssl-keyfile PEM]\n"
    "       [--default-max-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S] "
    "[--threads N]\n"
    "       [--roe-profile-dir DIR] [--roe-k K] [--roe-tau T | --roe-profile FILE] "
    "[--roe-keep-clean L]\n"
    "       [--roe-gate clean|noisy] [--roe-adaptive H]";

static int sig_pipe[2] = {-1, -1}; /* see the top: the handler's only way out */

static void on_signal(int sig) {
    const char b = (char)sig;
    const int saved = errno;
    if (write(sig_pipe[1], &b, 1) < 0) { /* nothing to do: a full pipe already holds a stop */
    }
    errno = saved;
}

struct watcher {
    roe_sched *sched;
    roe_server *srv;
};

static void *watch_signals(void *arg) {
    struct watcher *w = arg;
    int signals = 0;
    for (;;) {
        char b;
        const ssize_t n = read(sig_pipe[0], &b, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0 || b == 0) return NULL; /* 0: the command is done */
        signals++;
        if (signals == 1) {
            fprintf(stderr,
                    "roe serve: signal %d: finishing the running requests, refusing new ones "
                    "(signal again to stop at once)\n",
                    (int)b);
            roe_server_draining(w->srv);
            roe_sched_stop(w->sched, 0);
        } else {
            fprintf(stderr, "roe serve: signal %d: stopping the running requests\n", (int)b);
            roe_sched_stop(w->sched, 1);
        }
    }
}

/* The RoE profiles of a directory that fit this model, by file name without .json. */
static int load_profiles(const char *dir, const struct roe_model_config *cfg,
                         struct roe_api_profile **out, int *n) {
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "roe serve: --roe-profile-dir '%s': %s\n", dir, strerror(errno));
        return 2;
    }
    struct dirent *e;
    int cap = 0;
    while ((e = readdir(d))) {
        const size_t len = strlen(e->d_name);
        if (len <= 5 || len - 5 >= sizeof(*out)->name || strcmp(e->d_name + len - 5, ".json") != 0)
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct roe_roster r;
        if (roe_roster_load(path, cfg, &r) != ROE_OK) {
            fprintf(stderr, "roe serve: skipping RoE profile %s: %s\n", path, roe_error_message());
            continue;
        }
        if (*n == cap) {
            cap = cap ? 2 * cap : 8;
            struct roe_api_profile *p = roe_realloc(*out, (size_t)cap * sizeof *p);
            if (!p) {
                closedir(d);
                fprintf(stderr, "roe serve: out of memory for RoE profiles\n");
                return 1;
            }
            *out = p;
        }
        snprintf((*out)[*n].name, sizeof(*out)->name, "%.*s", (int)(len - 5), e->d_name);
        (*out)[(*n)++].roster = r;
    }
    closedir(d);
    return 0;
}

static const char *base_name(const char *dir, char *buf, size_t n) {
    snprintf(buf, n, "%s", dir);
    size_t len = strlen(buf);
    while (len > 1 && buf[len - 1] == '/')
        buf[--len] = '\0';
    const char *slash = strrchr(buf, '/');
    return slash ? slash + 1 : buf;
}

struct serve_opts {
    const char *model_dir, *served, *port_file, *profile_dir, *api_key, *certfile, *keyfile, *weights;
    int public_metrics;
    int max_seqs, max_model_len, batch_rows, threads, default_max_tokens, max_body, header_timeout, body_timeout;
    struct roe_sched_opts so;
    struct roe_server_opts ho; /* host and port as the flags give them; max_body is copied in */
    struct roe_sampling sampling;
    struct roe_flags rf;
    struct roe_kv_flags kv;
};

/* 0: serve; 1: --help was printed (exit 0); 2: bad command line, said on stderr. */
static int parse_options(int argc, char **argv, struct serve_opts *o) {
    memset(o, 0, sizeof *o);
    o->max_seqs = 16;
    o->batch_rows = 128;
    o->default_max_tokens = 256;
    o->so = roe_sched_opts_default();
    o->ho = roe_server_opts_default();
    o->ho.host = "127.0.0.1";
    o->ho.port = 8000;
    o->max_body = (int)o->ho.max_body_bytes;
    o->header_timeout = (int)o->ho.header_timeout_s;
    o->body_timeout = (int)o->ho.body_timeout_s;
    o->sampling = roe_sampling_default();
    roe_flags_init(&o->rf);
    enum { N_OWN = 29 };
    struct roe_arg_spec specs[N_OWN + ROE_FLAGS_N_SPECS + ROE_KV_FLAGS_N_SPECS] = {
        {"--model", ROE_ARG_STRING, &o->model_dir, "model directory (default: the bundled model)",
         0, 0},
        {"--weights", ROE_ARG_STRING, &o->weights, "bf16 (the checkpoint as stored) | q8 | q4: quantized at load", 0, 0},
        {"--host", ROE_ARG_STRING, &o->ho.host,
         "address to listen on (127.0.0.1; 0.0.0.0 or :: for every interface)", 0, 0},
        {"--port", ROE_ARG_INT, &o->ho.port, "TCP port (8000; 0: any free port, see --port-file)",
         0, 65535},
        {"--port-file", ROE_ARG_STRING, &o->port_file, "write the port to FILE once listening", 0,
         0},
        {"--served-model-name", ROE_ARG_STRING, &o->served,
         "the model id clients send (default: the directory's name)", 0, 0},
        {"--max-seqs", ROE_ARG_INT, &o->max_seqs, "requests running at once: KV-cache slots (16)",
         1, 4096},
        {"--max-model-len", ROE_ARG_INT, &o->max_model_len,
         "context per request, prompt + tokens (model's maximum)", 0, 1 << 24},
        {"--batch-rows", ROE_ARG_INT, &o->batch_rows, "rows per engine step (128)", 1, 1 << 16},
        {"--prefill-first", ROE_ARG_FLAG, &o->so.prefill_first,
         "a step with prompt rows to compute runs no decode rows (time to first token first; decoding "
         "waits while prompts are computed)", 0, 0},
        {"--max-queue", ROE_ARG_INT, &o->so.max_queue,
         "requests waiting at most; beyond: 503 (256)", 0, 1 << 20},
        {"--kv-blocks", ROE_ARG_INT, &o->so.kv_blocks,
         "a cap: admission also reserves each request's worst case, prompt + max_tokens, in blocks, "
         "against N (0: none; admission counts the pool's free blocks, --kv-memory)", 0, 1 << 30},
        {"--max-connections", ROE_ARG_INT, &o->ho.max_connections,
         "connections with a request under way at once; beyond: one waiting on its client is "
         "closed for it, else 429 (64)", 1, 1 << 16},
        {"--max-connections-per-address", ROE_ARG_INT, &o->ho.max_per_address,
         "open connections from one client address; beyond: 429 (0: --max-connections)", 0, 1 << 16},
        {"--max-body-bytes", ROE_ARG_INT, &o->max_body,
         "largest request body; beyond: 413 (1 MiB)", 1, 1 << 30},
        {"--timeout", ROE_ARG_INT, &o->ho.timeout_s,
         "seconds a client may neither send nor read before it is closed (never while it waits "
         "for the server) (60)", 1, 86400},
        {"--header-timeout", ROE_ARG_INT, &o->header_timeout,
         "seconds a request's headers may take to arrive; beyond: 408 (10)", 1, 86400},
        {"--body-timeout", ROE_ARG_INT, &o->body_timeout,
         "seconds a request's body may take after its headers; beyond: 408 (30)", 1, 86400},
        {"--default-max-tokens", ROE_ARG_INT, &o->default_max_tokens,
         "chat requests without max_tokens: at most (256)", 1, 1 << 24},
        {"--temperature", ROE_ARG_FLOAT, &o->sampling.temperature,
         "default temperature (0: greedy)", 0, 2},
        {"--top-k", ROE_ARG_INT, &o->sampling.top_k, "default top-k (0: off)", 0, 1 << 24},
        {"--top-p", ROE_ARG_FLOAT, &o->sampling.top_p, "default top-p (1: off)", 1e-6, 1},
        {"--seed", ROE_ARG_U64, &o->sampling.seed, "default seed (0)", 0, 0},
        {"--threads", ROE_ARG_INT, &o->threads, "CPU threads for the engine (0: all cores)", 0,
         1024},
        {"--roe-profile-dir", ROE_ARG_STRING, &o->profile_dir,
         "RoE profiles clients may name in roe_profile", 0, 0},
        {"--api-key", ROE_ARG_STRING, &o->api_key,
         "clients must send 'Authorization: Bearer KEY' (every route but /health; also ROE_API_KEY)", 0, 0},
        {"--public-metrics", ROE_ARG_FLAG, &o->public_metrics, "/metrics without the API key", 0, 0},
        {"--ssl-certfile", ROE_ARG_STRING, &o->certfile, "HTTPS: the server's certificate (PEM)", 0, 0},
        {"--ssl-keyfile", ROE_ARG_STRING, &o->keyfile, "HTTPS: its private key (PEM)", 0, 0},
    };
    roe_flags_specs(&o->rf, specs + N_OWN);
    roe_kv_flags_specs(&o->kv, specs + N_OWN + ROE_FLAGS_N_SPECS);
    int rc = roe_args_parse(CMD, SYNOPSIS, specs, N_OWN + ROE_FLAGS_N_SPECS + ROE_KV_FLAGS_N_SPECS, argc, argv, 2);
    o->ho.max_body_bytes = (size_t)o->max_body;
    o->ho.header_timeout_s = o->header_timeout;
    o->ho.body_timeout_s = o->body_timeout;
    return rc;
}

/* Everything a running server holds; serving_close frees what was opened. The watcher, the
 * API config and the names it points to live here because the threads use them until then. */
struct serving {
    struct roe_session s;
    struct roe_roster roster;
    struct roe_api_profile *profiles;
    int n_profiles;
    struct roe_chat_template chat;
    struct roe_engine_opts eo;
    roe_sched *sched;
    roe_server *srv;
    char namebuf[4096];
    char *cert, *key; /* TLS: the PEM files' text */
    struct roe_api_config api;
    struct watcher w;
    int watching; /* the watcher thread runs and the handlers are installed */
    pthread_t watcher_thread;
    struct sigaction old_int, old_term;
};

/* The model and what the API needs of it: default roster, RoE profiles, chat template. */
static int open_model(const struct serve_opts *o, struct serving *v) {
    if (roe_session_open_model(&v->s, CMD, o->model_dir)) return 1;
    const struct roe_model_config *cfg = &v->s.model->cfg;
    int rc = roe_session_weights(&v->s, CMD, o->weights);
    if (!rc) rc = roe_flags_roster(&o->rf, CMD, cfg, &v->roster);
    if (rc) return rc;
    if (o->profile_dir && (rc = load_profiles(o->profile_dir, cfg, &v->profiles, &v->n_profiles)))
        return rc;
    roe_status st = roe_chat_template_load(v->s.model_dir, v->s.tok, &v->chat);
    if (st != ROE_OK) return roe_report(CMD, st);
    if (o->max_model_len > cfg->max_position) {
        fprintf(stderr,
                "roe serve: --max-model-len %d exceeds the model's context of %d positions "
                "(max_position_embeddings)\n",
                o->max_model_len, cfg->max_position);
        return 2;
    }
    return 0;
}

/* The engine (warm: every rank reads its weights first), the scheduler, the HTTP server. */
static int start_server(const struct serve_opts *o, struct serving *v) {
    const int max_ctx = o->max_model_len ? o->max_model_len : v->s.model->cfg.max_position;
    v->eo = roe_launcher_engine_opts(o->max_seqs, max_ctx, o->batch_rows, v->roster.k, o->threads);
    int rc = roe_kv_flags_apply(&o->kv, CMD, &v->eo);
    if (rc) return rc;
    v->s.warm = 1;
    v->s.liveness_s = roe_env_liveness_s(); /* several ranks: a dead one is found within it */
    if (roe_session_open_engine(&v->s, CMD, v->eo)) return 1;
    struct roe_sched_opts so = o->so;
    so.tok = v->s.tok; /* stop strings are matched in the tokens' text */
    roe_status st = roe_sched_create(v->s.engine, &so, &v->sched);
    if (st != ROE_OK) return roe_report(CMD, st);
    v->api = (struct roe_api_config){
        .model_name = o->served ? o->served : base_name(v->s.model_dir, v->namebuf, sizeof v->namebuf),
        .cfg = &v->s.model->cfg,
        .tok = v->s.tok,
        .chat = &v->chat,
        .default_roster = &v->roster,
        .profiles = v->profiles,
        .n_profiles = v->n_profiles,
        .default_sampling = o->sampling,
        .max_ctx = roe_engine_get_opts(v->s.engine)->max_ctx,
        .default_max_tokens = o->default_max_tokens,
    };
    struct roe_server_opts ho = o->ho;
    ho.api_key = o->api_key ? o->api_key : roe_env_api_key();
    ho.public_metrics = o->public_metrics;
    ho.tls_cert_pem = v->cert;
    ho.tls_key_pem = v->key;
    st = roe_server_start(&ho, &v->api, v->sched, &v->srv);
    if (st != ROE_OK) return roe_report(CMD, st);
    return 0;
}

/* --ssl-certfile and --ssl-keyfile: both or neither, read whole. */
static int read_tls(const struct serve_opts *o, struct serving *v) {
    if (!o->certfile && !o->keyfile) return 0;
    if (!o->certfile || !o->keyfile) {
        fprintf(stderr, "roe serve: --ssl-certfile and --ssl-keyfile go together\n");
        return 2;
    }
    size_t n;
    roe_status st = roe_file_read_all(o->certfile, 1 << 20, &v->cert, &n);
    if (st == ROE_OK) st = roe_file_read_all(o->keyfile, 1 << 20, &v->key, &n);
    if (st != ROE_OK) return roe_report(CMD, st);
    return 0;
}

/* A server reachable beyond this machine without a key serves anyone who finds it. */
static void warn_if_open(const struct serve_opts *o, const struct serving *v) {
    const char *h = o->ho.host;
    const int loopback = strncmp(h, "127.", 4) == 0 || strcmp(h, "::1") == 0 || strcmp(h, "localhost") == 0;
    if (!loopback && !(o->api_key || roe_env_api_key()))
        fprintf(stderr,
                "roe serve: WARNING: listening on %s (beyond this machine) without an API key: anyone who can "
                "reach port %d can use the model; give --api-key (or ROE_API_KEY)%s\n",
                h, roe_server_port(v->srv), v->cert ? "" : ", and --ssl-certfile/--ssl-keyfile for HTTPS");
}

/* SIGINT and SIGTERM to the watcher thread (see the top); SIGPIPE ignored. */
static int watch_signals_start(struct serving *v) {
    if (pipe(sig_pipe) != 0) {
        fprintf(stderr, "roe serve: cannot create the signal pipe: %s\n", strerror(errno));
        return 1;
    }
    fcntl(sig_pipe[1], F_SETFL, O_NONBLOCK);
    v->w = (struct watcher){.sched = v->sched, .srv = v->srv};
    if (pthread_create(&v->watcher_thread, NULL, watch_signals, &v->w) != 0) {
        fprintf(stderr, "roe serve: cannot start the signal watcher thread\n");
        return 1;
    }
    v->watching = 1;
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &v->old_int);
    sigaction(SIGTERM, &sa, &v->old_term);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* A port file that cannot be written stops the server: whoever waits for it would wait on. */
static void write_port_file(const char *path, const struct serving *v) {
    FILE *f = fopen(path, "w");
    if (!f || fprintf(f, "%d\n", roe_server_port(v->srv)) < 0 || fclose(f) != 0) {
        fprintf(stderr, "roe serve: cannot write --port-file '%s': %s\n", path, strerror(errno));
        roe_sched_stop(v->sched, 1);
    }
}

static void announce(const struct serve_opts *o, const struct serving *v) {
    fprintf(stderr,
            "roe serve: model '%s' as \"%s\" on http%s://%s:%d (pid %d, %d rank%s, %s): %d sequences "
            "of %d positions, "
            "%d rows per step, RoE K=%d by default; chat template: %s\n",
            v->s.model_dir, v->api.model_name, v->cert ? "s" : "", o->ho.host, roe_server_port(v->srv), (int)getpid(),
            roe_session_world_size(), roe_session_world_size() > 1 ? "s" : "",
            roe_engine_backend_name(v->s.engine), v->eo.max_seqs, v->api.max_ctx, v->eo.max_rows,
            v->roster.k, v->chat.source);
}

static void serving_close(struct serving *v, int drain_s) {
    roe_server_stop(v->srv, drain_s); /* every request has ended: their responses finish */
    if (v->watching) {
        sigaction(SIGINT, &v->old_int, NULL);
        sigaction(SIGTERM, &v->old_term, NULL);
        const char stop = 0;
        if (write(sig_pipe[1], &stop, 1) != 1) pthread_cancel(v->watcher_thread);
        pthread_join(v->watcher_thread, NULL);
    }
    for (int i = 0; i < 2; i++)
        if (sig_pipe[i] >= 0) close(sig_pipe[i]), sig_pipe[i] = -1;
    roe_sched_free(v->sched);
    roe_free(v->profiles);
    roe_free(v->cert);
    roe_free(v->key);
    if (v->s.model) roe_session_close(&v->s);
}

int roe_cmd_serve(int argc, char **argv) {
    struct serve_opts o;
    int rc = parse_options(argc, argv, &o);
    if (rc) return rc == 1 ? 0 : rc;
    struct serving v;
    memset(&v, 0, sizeof v);
    rc = read_tls(&o, &v);
    if (!rc) rc = open_model(&o, &v);
    if (!rc) rc = start_server(&o, &v);
    if (!rc) rc = watch_signals_start(&v);
    if (!rc) {
        if (o.port_file) write_port_file(o.port_file, &v);
        announce(&o, &v);
        warn_if_open(&o, &v);
        roe_status st = roe_sched_run(v.sched);
        if (st != ROE_OK) rc = roe_report(CMD, st);
    }
    /* after a failure the answers under way are errors, sent at once: a short drain, so that
     * every rank is gone within seconds */
    serving_close(&v, rc ? 2 : o.ho.timeout_s);
    if (rc == 0) fprintf(stderr, "roe serve: stopped\n");
    return rc;
}
