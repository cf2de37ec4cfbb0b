/*
 * main.c — the roe executable: dispatches to a subcommand (DESIGN.md "Command line").
 *
 * Before anything else it checks the environment against base/env.c's table: a bad ROE_* value
 * stops every command (exit status 2) before it reads anything; `roe env` runs anyway (it
 * shows them).
 *
 * Under mpirun (or ROE_COMM=mpi) it first joins the MPI world: rank 0 runs the subcommand
 * as the coordinator, every other rank serves it (runtime/worker.h) until rank 0 is done.
 * Without mpirun it is a world of one and the subcommand runs as is.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm/comm.h"
#include "commands.h"
#include "base/env.h"
#include "base/log.h"
#include "runtime/worker.h"
#include "session.h"

static void usage(void) {
    fprintf(stderr,
            "roe %s — Mixture-of-Experts inference with Roster of Experts\n\n"
            "usage: roe <command> [options]   (roe <command> --help for its options)\n\n"
            "commands:\n"
            "  generate   generate text from prompts\n"
            "  eval       perplexity, exact match or multiple-choice accuracy on a JSONL set\n"
            "  tune       search per-layer RoE temperatures on a validation set\n"
            "  inspect    show a model's config, sizes and placement\n"
            "  bench      measure prefill and decode throughput\n"
            "  serve      an OpenAI-compatible HTTP server with continuous batching\n"
            "  quantize   save a checkpoint with q8 / q4 weights (loads without quantizing again)\n"
            "  tokenize   text to token ids and back with a model's tokenizer.json\n"
            "  env        the ROE_* environment variables: accepted values, defaults, settings\n",
            ROE_VERSION);
}

static int run_command(int argc, char **argv) {
    if (argc < 2) {
        usage();
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "generate") == 0) return roe_cmd_generate(argc, argv);
    if (strcmp(cmd, "inspect") == 0) return roe_cmd_inspect(argc, argv);
    if (strcmp(cmd, "bench") == 0) return roe_cmd_bench(argc, argv);
    if (strcmp(cmd, "eval") == 0) return roe_cmd_eval(argc, argv);
    if (strcmp(cmd, "tune") == 0) return roe_cmd_tune(argc, argv);
    if (strcmp(cmd, "serve") == 0) return roe_cmd_serve(argc, argv);
    if (strcmp(cmd, "quantize") == 0) return roe_cmd_quantize(argc, argv);
    if (strcmp(cmd, "tokenize") == 0) return roe_cmd_tokenize(argc, argv);
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage();
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("roe %s\n", ROE_VERSION);
        return 0;
    }
    fprintf(stderr, "roe: unknown command '%s'\n\n", cmd);
    usage();
    return 2;
}

/* The world: MPI when started by mpirun (or ROE_COMM=mpi), else one process. */
static int open_world(int *argc, char ***argv, roe_comm **out) {
    const roe_env_comm_kind kind = roe_env_comm();
    struct roe_comm_opts o = roe_comm_opts_default();
    o.timeout_s = roe_env_comm_timeout_s();
    o.yield_when_idle = roe_env_cores_shared();
    const int mpi = kind == ROE_ENV_COMM_MPI || (kind == ROE_ENV_COMM_AUTO && roe_env_launched_by_mpirun());
    roe_status st = mpi ? roe_comm_mpi_create(argc, argv, &o, out) : roe_comm_self_create(&o, out);
    if (st != ROE_OK) {
        fprintf(stderr, "roe: %s\n", roe_error_message());
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "env") == 0) return roe_cmd_env(argc, argv);
    if (roe_env_check() != ROE_OK) {
        fprintf(stderr, "roe: %s\n", roe_error_message());
        return 2;
    }
    roe_log_set_level(roe_env_log_level());
    roe_comm *world = NULL;
    int rc = open_world(&argc, &argv, &world);
    if (rc) return rc;
    roe_log_set_rank(roe_comm_rank(world));
    roe_session_set_world(world);
    if (roe_comm_rank(world) > 0) {
        roe_status st = roe_worker_run(world);
        if (st != ROE_OK) { /* the others cannot go on without this rank */
            ROE_LOG_ERROR("worker", "%s", roe_error_message());
            roe_comm_abort(world, 1);
        }
    } else
        rc = roe_session_world_finish(run_command(argc, argv));
    roe_session_set_world(NULL);
    roe_comm_free(world);
    return rc;
}
