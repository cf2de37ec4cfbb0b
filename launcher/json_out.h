/*
 * json_out.h — the JSON the subcommands print: a document on stdout (cJSON's formatted
 * print, then a newline) and the "roe" block that says which RoE roster a run used.
 */
#ifndef ROE_JSON_OUT_H
#define ROE_JSON_OUT_H

#include <cjson/cJSON.h>

#include "runtime/roster.h"

/* Prints root and a newline to stdout; prints nothing when cJSON runs out of memory. */
void roe_json_print(const cJSON *root);

/* Adds the object "roe" to root with the roster's k, gate and adaptive_entropy; returns it
 * (owned by root) for the command to add its own fields. */
cJSON *roe_json_add_roster(cJSON *root, const struct roe_roster *r);
/* Adds "tau": the roster's temperature of each of the model's n_layers layers. */
void roe_json_add_tau(cJSON *ro, const struct roe_roster *r, int n_layers);

#endif
