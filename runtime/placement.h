/*
 * placement.h — which rank owns which experts (DESIGN.md "Process model").
 *
 * A placement maps every (MoE layer, expert) to one rank. The default gives each rank a
 * contiguous block of experts, the same in every layer; with E experts on N ranks the
 * first E mod N ranks hold one more (8 experts on 3 ranks: 0-2, 3-5, 6-7). A rank may own
 * no experts (N > E, or a placement file that says so).
 *
 * A placement file (configs/placement/README.md) gives any map:
 *   {"ranks": 2, "experts": [[0, 2, 4, 6], [1, 3, 5, 7]],
 *    "layers": {"3": [[0, 1, 2, 3, 4, 5], [6, 7]]}}
 * "experts" applies to every MoE layer; "layers" overrides single layers (by layer index).
 * Every expert must appear exactly once per layer; "ranks" must equal the job's rank count.
 *
 * The coordinator builds the placement and ships the owner table to every rank (the file
 * need only exist where rank 0 runs).
 */
#ifndef ROE_PLACEMENT_H
#define ROE_PLACEMENT_H

#include <stddef.h>

#include "comm/layout.h"
#include "config.h"
#include "base/status.h"

struct roe_placement {
    int n_ranks;
    int n_layers;
    int n_experts;
    char source[256];            /* "contiguous" or the file it came from */
    int *owner;                  /* [n_layers, n_experts] owning rank; -1 in dense layers */
    int *local;                  /* [n_layers, n_experts] index among the owner's experts */
    int *n_local;                /* [n_layers, n_ranks] experts owned per rank */
    int *base;                   /* [n_layers, n_ranks + 1] */
    struct roe_layout_map *maps; /* [n_layers] (MoE layers only) for comm/layout.h */
};

roe_status roe_placement_contiguous(const struct roe_model_config *cfg, int n_ranks,
                                    struct roe_placement **out);
roe_status roe_placement_load(const char *path, const struct roe_model_config *cfg, int n_ranks,
                              struct roe_placement **out);
roe_status roe_placement_parse(const char *json, const char *origin, const struct roe_model_config *cfg,
                               int n_ranks, struct roe_placement **out);
/* From an owner table [n_layers * n_experts] (the control plane's copy); validated. */
roe_status roe_placement_from_owner(const struct roe_model_config *cfg, int n_ranks,
                                    const int *owner, size_t n_owner, const char *source,
                                    struct roe_placement **out);
void roe_placement_free(struct roe_placement *p);

static inline int roe_placement_owner(const struct roe_placement *p, int layer, int expert) {
    return p->owner[(size_t)layer * p->n_experts + expert];
}

/* Experts `rank` owns in `layer`, as spans: "0-3, 8, 10-11" ("none" if none). */
void roe_placement_describe(const struct roe_placement *p, int layer, int rank, char *buf, size_t cap);

/* (layer, expert) pairs owned by `rank` over all MoE layers. */
long roe_placement_count(const struct roe_placement *p, int rank);

/* 1 if every MoE layer has the same map (then layer 0's MoE map describes all). */
int roe_placement_uniform(const struct roe_placement *p, const struct roe_model_config *cfg);

#endif
