/* json_out.c — the JSON the subcommands print; see json_out.h. */
#include "json_out.h"

#include <stdio.h>
#include <stdlib.h>

void roe_json_print(const cJSON *root) {
    char *out = cJSON_Print(root);
    if (out) printf("%s\n", out);
    free(out);
}

cJSON *roe_json_add_roster(cJSON *root, const struct roe_roster *r) {
    cJSON *ro = cJSON_AddObjectToObject(root, "roe");
    cJSON_AddNumberToObject(ro, "k", r->k);
    cJSON_AddStringToObject(ro, "gate", roe_gate_mode_name(r->gate));
    cJSON_AddNumberToObject(ro, "adaptive_entropy", r->adaptive_entropy);
    return ro;
}

void roe_json_add_tau(cJSON *ro, const struct roe_roster *r, int n_layers) {
    cJSON *tau = cJSON_AddArrayToObject(ro, "tau");
    for (int l = 0; l < n_layers; l++) cJSON_AddItemToArray(tau, cJSON_CreateNumber(r->tau[l]));
}
