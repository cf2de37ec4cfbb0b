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
#include "runtime/scheduler.h"
#include "server/chat.h"
#include "server/openai.h"
#include "server/server.h"
#include "session.h"

static const char *SYNOPSIS =
    "[--model DIR] [--host ADDR] [--port P] [--port-file FILE] [--served-model-name NAME]\n"
    "       [--max-seqs N] [--max-model-len N] [--batch-rows N] [--max-queue N] [--kv-block-size "
    "N]\n"
    "       [--kv-blocks N] [--max-connections N] [--max-body-bytes N] [--timeout S]\n"
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

int roe_cmd_serve(int argc, char **argv) {
    const char *cmd = "serve";
    const char *model_dir = NULL, *host = "127.0.0.1", *served = NULL, *port_file = NULL,
               *profile_dir = NULL;
    int port = 8000, max_seqs = 16, max_model_len = 0, batch_rows = 128, threads = 0,
        default_max_tokens = 256;
    struct roe_sched_opts so = roe_sched_opts_default();
    struct roe_server_opts ho = roe_server_opts_default();
    int max_body = (int)ho.max_body_bytes;
    struct roe_sampling sampling = roe_sampling_default();
    struct roe_flags rf;
    roe_flags_init(&rf);
    enum { N_OWN = 21 };
    struct roe_arg_spec specs[N_OWN + ROE_FLAGS_N_SPECS] = {
        {"--model", ROE_ARG_STRING, &model_dir, "model directory (default: the bundled model)", 0,
         0},
        {"--host", ROE_ARG_STRING, &host,
         "address to listen on (127.0.0.1; 0.0.0.0 or :: for every interface)", 0, 0},
        {"--port", ROE_ARG_INT, &port, "TCP port (8000; 0: any free port, see --port-file)", 0,
         65535},
        {"--port-file", ROE_ARG_STRING, &port_file, "write the port to FILE once listening", 0, 0},
        {"--served-model-name", ROE_ARG_STRING, &served,
         "the model id clients send (default: the directory's name)", 0, 0},
        {"--max-seqs", ROE_ARG_INT, &max_seqs, "requests running at once: KV-cache slots (16)", 1,
         4096},
        {"--max-model-len", ROE_ARG_INT, &max_model_len,
         "context per request, prompt + tokens (model's maximum)", 0, 1 << 24},
        {"--batch-rows", ROE_ARG_INT, &batch_rows, "rows per engine step (128)", 1, 1 << 16},
        {"--max-queue", ROE_ARG_INT, &so.max_queue, "requests waiting at most; beyond: 503 (256)",
         0, 1 << 20},
        {"--kv-block-size", ROE_ARG_INT, &so.block_size, "positions per KV-cache block (16)", 1,
         1 << 16},
        {"--kv-blocks", ROE_ARG_INT, &so.kv_blocks,
         "KV-cache blocks to admit against (0: slots x context)", 0, 1 << 30},
        {"--max-connections", ROE_ARG_INT, &ho.max_connections,
         "open connections served; beyond: 429 (64)", 1, 1 << 16},
        {"--max-body-bytes", ROE_ARG_INT, &max_body, "largest request body; beyond: 413 (1 MiB)", 1,
         1 << 30},
        {"--timeout", ROE_ARG_INT, &ho.timeout_s,
         "seconds before an idle connection is closed (60)", 1, 86400},
        {"--default-max-tokens", ROE_ARG_INT, &default_max_tokens,
         "chat requests without max_tokens: at most (256)", 1, 1 << 24},
        {"--temperature", ROE_ARG_FLOAT, &sampling.temperature, "default temperature (0: greedy)",
         0, 2},
        {"--top-k", ROE_ARG_INT, &sampling.top_k, "default top-k (0: off)", 0, 1 << 24},
        {"--top-p", ROE_ARG_FLOAT, &sampling.top_p, "default top-p (1: off)", 1e-6, 1},
        {"--seed", ROE_ARG_U64, &sampling.seed, "default seed (0)", 0, 0},
        {"--threads", ROE_ARG_INT, &threads, "CPU threads for the engine (0: all cores)", 0, 1024},
        {"--roe-profile-dir", ROE_ARG_STRING, &profile_dir,
         "RoE profiles clients may name in roe_profile", 0, 0},
    };
    roe_flags_specs(&rf, specs + N_OWN);
    int rc = roe_args_parse(cmd, SYNOPSIS, specs, N_OWN + ROE_FLAGS_N_SPECS, argc, argv, 2);
    if (rc) return rc == 1 ? 0 : rc;
    ho.host = host;
    ho.port = port;
    ho.max_body_bytes = (size_t)max_body;

    struct roe_session s;
    roe_sched *sched = NULL;
    roe_server *srv = NULL;
    struct roe_api_profile *profiles = NULL;
    int n_profiles = 0, ret = 1, watching = 0;
    pthread_t watcher_thread;
    struct sigaction old_int, old_term;
    if (roe_session_open_model(&s, cmd, model_dir)) goto done;
    struct roe_roster roster;
    rc = roe_flags_roster(&rf, cmd, &s.model->cfg, &roster);
    if (rc) {
        ret = rc;
        goto done;
    }
    if (profile_dir && (rc = load_profiles(profile_dir, &s.model->cfg, &profiles, &n_profiles))) {
        ret = rc;
        goto done;
    }
    struct roe_chat_template chat;
    roe_status st = roe_chat_template_load(s.model_dir, s.tok, &chat);
    if (st != ROE_OK) {
        roe_report(cmd, st);
        goto done;
    }
    const int max_pos = s.model->cfg.max_position;
    if (max_model_len > max_pos) {
        fprintf(stderr,
                "roe serve: --max-model-len %d exceeds the model's context of %d positions "
                "(max_position_embeddings)\n",
                max_model_len, max_pos);
        ret = 2;
        goto done;
    }
    struct roe_engine_opts eo = roe_engine_opts_default();
    eo.max_seqs = max_seqs;
    eo.max_ctx = max_model_len ? max_model_len : max_pos;
    eo.max_rows = batch_rows > roster.k ? batch_rows : roster.k;
    eo.n_threads = threads;
    eo.isa = roe_env_cpu_isa();
    s.warm = 1;
    if (roe_session_open_engine(&s, cmd, eo)) goto done;
    st = roe_sched_create(s.engine, &so, &sched);
    if (st != ROE_OK) {
        roe_report(cmd, st);
        goto done;
    }
    char namebuf[4096];
    const struct roe_api_config api = {
        .model_name = served ? served : base_name(s.model_dir, namebuf, sizeof namebuf),
        .cfg = &s.model->cfg,
        .tok = s.tok,
        .chat = &chat,
        .default_roster = &roster,
        .profiles = profiles,
        .n_profiles = n_profiles,
        .default_sampling = sampling,
        .max_ctx = roe_engine_get_opts(s.engine)->max_ctx,
        .default_max_tokens = default_max_tokens,
    };
    st = roe_server_start(&ho, &api, sched, &srv);
    if (st != ROE_OK) {
        roe_report(cmd, st);
        goto done;
    }
    if (pipe(sig_pipe) != 0) {
        fprintf(stderr, "roe serve: cannot create the signal pipe: %s\n", strerror(errno));
        goto done;
    }
    fcntl(sig_pipe[1], F_SETFL, O_NONBLOCK);
    struct watcher w = {.sched = sched, .srv = srv};
    if (pthread_create(&watcher_thread, NULL, watch_signals, &w) != 0) {
        fprintf(stderr, "roe serve: cannot start the signal watcher thread\n");
        goto done;
    }
    watching = 1;
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    signal(SIGPIPE, SIG_IGN);
    if (port_file) {
        FILE *f = fopen(port_file, "w");
        if (!f || fprintf(f, "%d\n", roe_server_port(srv)) < 0 || fclose(f) != 0) {
            fprintf(stderr, "roe serve: cannot write --port-file '%s': %s\n", port_file,
                    strerror(errno));
            roe_sched_stop(sched, 1);
        }
    }
    fprintf(stderr,
            "roe serve: model '%s' as \"%s\" on http://%s:%d (pid %d, %d rank%s, %s): %d sequences "
            "of %d positions, "
            "%d rows per step, RoE K=%d by default; chat template: %s\n",
            s.model_dir, api.model_name, host, roe_server_port(srv), (int)getpid(),
            roe_session_world_size(), roe_session_world_size() > 1 ? "s" : "",
            roe_engine_backend_name(s.engine), eo.max_seqs, api.max_ctx, eo.max_rows, roster.k,
            chat.source);
    st = roe_sched_run(sched);
    if (st != ROE_OK)
        roe_report(cmd, st);
    else
        ret = 0;
done:
    roe_server_stop(srv, ho.timeout_s); /* every request has ended: their responses finish */
    if (watching) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        const char stop = 0;
        if (write(sig_pipe[1], &stop, 1) != 1) pthread_cancel(watcher_thread);
        pthread_join(watcher_thread, NULL);
    }
    for (int i = 0; i < 2; i++)
        if (sig_pipe[i] >= 0) close(sig_pipe[i]), sig_pipe[i] = -1;
    roe_sched_free(sched);
    roe_free(profiles);
    if (s.model) roe_session_close(&s);
    if (ret == 0) fprintf(stderr, "roe serve: stopped\n");
    return ret;
}
