/*
 * cmd_env.c — `roe env`: every environment knob of base/env.c's table (name, accepted values,
 * default, the value set now, help), then the launcher's and OpenMP's variables roe reads.
 *
 * main.c runs it before it checks the environment, so that it can show a bad value with what
 * is wrong with it; then it exits 2, as every other command would.
 */
#include <stdio.h>
#include <stdlib.h>

#include "args.h"
#include "base/env.h"
#include "commands.h"

/* "NAME=value" when set, else "NAME", padded to a column. */
static void print_name(const char *name, const char *value) {
    char head[512];
    if (value && *value) snprintf(head, sizeof head, "%s=%s", name, value);
    else snprintf(head, sizeof head, "%s", name);
    printf("%-28s ", head);
}

int roe_cmd_env(int argc, char **argv) {
    int rc = roe_args_parse("env", "", NULL, 0, argc, argv, 2);
    if (rc) return rc == 1 ? 0 : rc;
    printf("roe's environment knobs (base/env.c). roe checks every one that is set before it\n"
           "starts: a value it does not accept stops it with exit status 2. Empty is unset.\n\n");
    int n, bad = 0;
    const struct roe_env_knob *k = roe_env_knobs(&n);
    for (int i = 0; i < n; i++) {
        const char *v = getenv(k[i].name);
        char what[256];
        roe_env_describe(&k[i], what, sizeof what);
        print_name(k[i].name, k[i].secret && v && *v ? "(set, not shown)" : v);
        printf("%s; default: %s\n    %s\n", what, k[i].def ? k[i].def : "none", k[i].help);
        struct roe_env_value val;
        if (roe_env_parse(&k[i], v, &val) != ROE_OK) {
            printf("    BAD: %s\n", roe_error_message());
            bad = 1;
        }
    }
    printf("\nRead from the launcher / OpenMP (not roe's knobs: listed, not checked):\n");
    const struct roe_env_foreign *f = roe_env_foreign(&n);
    for (int i = 0; i < n; i++) {
        print_name(f[i].name, getenv(f[i].name));
        printf("%s\n", f[i].help);
    }
    return bad ? 2 : 0;
}
