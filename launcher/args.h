/*
 * args.h — table-driven command-line flags for the subcommands. Every flag is declared
 * once with its type and help; unknown flags, missing values and malformed numbers are
 * reported with the flag's name and the subcommand's usage, and exit code 2.
 */
#ifndef ROE_ARGS_H
#define ROE_ARGS_H

#include <stdint.h>

typedef enum roe_arg_type {
    ROE_ARG_STRING = 0, /* const char ** */
    ROE_ARG_INT,        /* int * */
    ROE_ARG_FLOAT,      /* float * */
    ROE_ARG_U64,        /* uint64_t * */
    ROE_ARG_FLAG,       /* int *, set to 1 */
    ROE_ARG_LIST,       /* struct roe_arg_list *: repeatable string */
} roe_arg_type;

enum { ROE_ARG_LIST_MAX = 256 };

struct roe_arg_list {
    int n;
    const char *items[ROE_ARG_LIST_MAX];
    int order[ROE_ARG_LIST_MAX]; /* position on the command line, to interleave two lists */
};

struct roe_arg_spec {
    const char *name;   /* "--max-tokens" */
    roe_arg_type type;
    void *dest;
    const char *help;
    double lo, hi;      /* numeric range when lo < hi */
};

/* Parses argv[first..argc). Returns 0 on success; on error prints to stderr and returns 2.
 * "--help" prints the usage and returns 1. */
int roe_args_parse(const char *cmd, const char *synopsis, const struct roe_arg_spec *specs,
                   int n_specs, int argc, char **argv, int first);

void roe_args_usage(const char *cmd, const char *synopsis, const struct roe_arg_spec *specs,
                    int n_specs);

#endif
