/*
 * main.c — the roe executable: dispatches to a subcommand (DESIGN.md "Command line").
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "runtime/env.h"
#include "runtime/log.h"

static void usage(void) {
    fprintf(stderr,
            "roe %s — Mixture-of-Experts inference with Roster of Experts\n\n"
            "usage: roe <command> [options]   (roe <command> --help for its options)\n\n"
            "commands:\n"
            "  generate   generate text from prompts\n"
            "  eval       perplexity, exact match or multiple-choice accuracy on a JSONL set\n"
            "  tune       search per-layer RoE temperatures on a validation set\n"
            "  inspect    show a model's config, sizes and placement\n"
            "  bench      measure prefill and decode throughput\n",
            ROE_VERSION);
}

int main(int argc, char **argv) {
    roe_log_set_level(roe_env_log_level());
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
