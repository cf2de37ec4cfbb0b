/* args.c — the flag parser; see args.h. */
#include "args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void roe_args_usage(const char *cmd, const char *synopsis, const struct roe_arg_spec *specs,
                    int n_specs) {
    fprintf(stderr, "usage: roe %s %s\n\noptions:\n", cmd, synopsis);
    for (int i = 0; i < n_specs; i++) fprintf(stderr, "  %-22s %s\n", specs[i].name, specs[i].help);
}

static int bad(const char *cmd, const char *flag, const char *value, const char *why) {
    fprintf(stderr, "roe %s: %s '%s': %s (see 'roe %s --help')\n", cmd, flag, value, why, cmd);
    return 2;
}

static int parse_value(const char *cmd, const struct roe_arg_spec *s, const char *v, int argi) {
    char *end = NULL;
    errno = 0;
    switch (s->type) {
    case ROE_ARG_STRING: *(const char **)s->dest = v; return 0;
    case ROE_ARG_LIST: {
        struct roe_arg_list *l = s->dest;
        if (l->n >= ROE_ARG_LIST_MAX) return bad(cmd, s->name, v, "given too many times");
        l->order[l->n] = argi;
        l->items[l->n++] = v;
        return 0;
    }
    case ROE_ARG_INT: {
        long x = strtol(v, &end, 10);
        if (errno || !*v || *end || x < -2147483647L || x > 2147483647L)
            return bad(cmd, s->name, v, "expected an integer");
        if (s->lo < s->hi && (x < s->lo || x > s->hi)) {
            char why[96];
            snprintf(why, sizeof why, "must be in [%.0f, %.0f]", s->lo, s->hi);
            return bad(cmd, s->name, v, why);
        }
        *(int *)s->dest = (int)x;
        return 0;
    }
    case ROE_ARG_U64: {
        if (*v == '-') return bad(cmd, s->name, v, "expected a non-negative integer");
        unsigned long long x = strtoull(v, &end, 10);
        if (errno || !*v || *end) return bad(cmd, s->name, v, "expected a non-negative integer");
        *(uint64_t *)s->dest = (uint64_t)x;
        return 0;
    }
    case ROE_ARG_FLOAT: {
        double x = strtod(v, &end);
        if (errno || !*v || *end || !isfinite(x)) return bad(cmd, s->name, v, "expected a number");
        if (s->lo < s->hi && (x < s->lo || x > s->hi)) {
            char why[96];
            snprintf(why, sizeof why, "must be in [%g, %g]", s->lo, s->hi);
            return bad(cmd, s->name, v, why);
        }
        *(float *)s->dest = (float)x;
        return 0;
    }
    case ROE_ARG_FLAG: *(int *)s->dest = 1; return 0;
    }
    return 2;
}

int roe_args_parse(const char *cmd, const char *synopsis, const struct roe_arg_spec *specs,
                   int n_specs, int argc, char **argv, int first) {
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            roe_args_usage(cmd, synopsis, specs, n_specs);
            return 1;
        }
        /* accept --flag=value as well as --flag value */
        char name[64];
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        if (nlen >= sizeof name) nlen = sizeof name - 1;
        memcpy(name, a, nlen);
        name[nlen] = '\0';
        const struct roe_arg_spec *s = NULL;
        for (int k = 0; k < n_specs; k++)
            if (strcmp(specs[k].name, name) == 0) s = &specs[k];
        if (!s) {
            fprintf(stderr, "roe %s: unknown option '%s' (see 'roe %s --help')\n", cmd, a, cmd);
            return 2;
        }
        if (s->type == ROE_ARG_FLAG) {
            if (eq) return bad(cmd, s->name, eq + 1, "takes no value");
            *(int *)s->dest = 1;
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v) {
            fprintf(stderr, "roe %s: option '%s' needs a value (see 'roe %s --help')\n", cmd, s->name, cmd);
            return 2;
        }
        int rc = parse_value(cmd, s, v, i);
        if (rc) return rc;
    }
    return 0;
}
