/* worker.c — the ranks other than 0 and the coordinator's session calls; see worker.h. */
#include "worker.h"

#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "cluster.h"
#include "control.h"
#include "base/env.h"
#include "base/log.h"
#include "model.h"

static roe_cpu_isa isa_of_backend(const char *name) {
    if (strcmp(name, "cpu-avx512") == 0) return ROE_CPU_ISA_AVX512;
    if (strcmp(name, "cpu-avx2") == 0) return ROE_CPU_ISA_AVX2;
    if (strcmp(name, "cpu-portable") == 0) return ROE_CPU_ISA_PORTABLE;
    return ROE_CPU_ISA_AUTO;
}

roe_status roe_workers_open(roe_comm *c, const char *model_dir, const struct roe_engine_opts *o,
                            const char *backend, const struct roe_placement *pl, int warm) {
    const size_t LE = (size_t)pl->n_layers * pl->n_experts;
    int32_t *owner = roe_malloc((LE ? LE : 1) * sizeof *owner);
    struct roe_msgbuf buf = {0};
    if (!owner) return roe_fail(ROE_ERR_NOMEM, "opening the other ranks: out of memory");
    for (size_t i = 0; i < LE; i++) owner[i] = pl->owner[i];
    Roe__SessionOpen so = ROE__SESSION_OPEN__INIT;
    so.model_dir = (char *)model_dir;
    so.max_seqs = (uint32_t)o->max_seqs;
    so.max_ctx = (uint32_t)o->max_ctx;
    so.max_rows = (uint32_t)o->max_rows;
    so.n_threads = o->n_threads;
    so.isa = (uint32_t)isa_of_backend(backend);
    so.no_dedup = o->no_dedup != 0;
    so.n_layers = (uint32_t)pl->n_layers;
    so.n_experts = (uint32_t)pl->n_experts;
    so.n_owner = LE;
    so.owner = owner;
    so.placement_source = (char *)pl->source;
    so.wire = (uint32_t)o->wire;
    so.no_overlap = o->no_overlap != 0;
    so.warm = warm != 0;
    so.backend = (uint32_t)o->backend;
    Roe__Control ctl = ROE__CONTROL__INIT;
    ctl.body_case = ROE__CONTROL__BODY_OPEN;
    ctl.open = &so;
    roe_status st = roe_control_send(c, &ctl, &buf);
    roe_free(owner);
    roe_msgbuf_free(&buf);
    return st;
}

roe_status roe_workers_opened(roe_comm *c, struct roe_rank_info *info) {
    const int N = roe_comm_size(c);
    size_t *lens = roe_calloc((size_t)N, sizeof *lens), *offs = roe_calloc((size_t)N, sizeof *offs);
    struct roe_msgbuf buf = {0};
    struct roe_arena arena = {0};
    roe_status st = ROE_OK;
    if (!lens || !offs) {
        st = roe_fail(ROE_ERR_NOMEM, "opening the other ranks: out of memory");
        goto out;
    }
    st = roe_reply_collect(c, &buf, lens, offs, "session open reply");
    /* in rank order, so that the lowest failing rank is the one reported */
    for (int r = 1; r < N && st == ROE_OK; r++) {
        Roe__Reply *rep = NULL;
        st = roe_reply_unpack(buf.p + offs[r], lens[r], r, &arena, &rep);
        if (st == ROE_OK && info) {
            info[r].resident_bytes = rep->resident_bytes;
            info[r].mapped_resident = rep->mapped_resident_bytes;
            snprintf(info[r].backend, sizeof info[r].backend, "%s", rep->backend);
        }
    }
out:
    roe_free(lens);
    roe_free(offs);
    roe_msgbuf_free(&buf);
    roe_arena_free(&arena);
    return st;
}

roe_status roe_workers_exit(roe_comm *c, int code) {
    struct roe_msgbuf buf = {0};
    Roe__Exit ex = ROE__EXIT__INIT;
    ex.code = code;
    Roe__Control ctl = ROE__CONTROL__INIT;
    ctl.body_case = ROE__CONTROL__BODY_EXIT;
    ctl.exit = &ex;
    roe_status st = roe_control_send(c, &ctl, &buf);
    roe_msgbuf_free(&buf);
    return st;
}

/* A worker's session: what SessionOpen creates. */
struct session {
    struct roe_model *model;
    struct roe_placement *pl;
    roe_engine *engine;
    roe_cluster *cl;
};

static void session_close(struct session *s) {
    roe_cluster_free(s->cl);
    roe_engine_free(s->engine);
    roe_placement_free(s->pl);
    roe_model_free(s->model);
    memset(s, 0, sizeof *s);
}

static roe_status session_open(struct session *s, roe_comm *c, const Roe__SessionOpen *o, Roe__Reply *rep) {
    const int me = roe_comm_rank(c);
    session_close(s);
    ROE_TRY(roe_model_load(o->model_dir, &s->model));
    const struct roe_model_config *cfg = &s->model->cfg;
    if (o->n_layers != (uint32_t)cfg->n_layers || o->n_experts != (uint32_t)cfg->n_experts)
        return roe_fail(ROE_ERR_FORMAT,
                        "'%s' has %d layers and %d experts here, but %u and %u on rank 0: every rank must "
                        "read the same checkpoint",
                        o->model_dir, cfg->n_layers, cfg->n_experts, o->n_layers, o->n_experts);
    const size_t n_owner = o->n_owner;
    int *owner = roe_malloc((n_owner ? n_owner : 1) * sizeof *owner);
    if (!owner) return roe_fail(ROE_ERR_NOMEM, "out of memory for the placement");
    for (size_t i = 0; i < n_owner; i++) owner[i] = o->owner[i];
    roe_status st = roe_placement_from_owner(cfg, roe_comm_size(c), owner, n_owner, o->placement_source, &s->pl);
    roe_free(owner);
    ROE_TRY(st);
    roe_model_keep_experts(s->model, s->pl, me);
    struct roe_engine_opts eo = roe_engine_opts_default();
    eo.max_seqs = (int)o->max_seqs;
    eo.max_ctx = (int)o->max_ctx;
    eo.max_rows = (int)o->max_rows;
    eo.n_threads = o->n_threads > 0 ? o->n_threads : roe_env_default_threads();
    eo.isa = o->isa <= ROE_CPU_ISA_AVX512 ? (roe_cpu_isa)o->isa : ROE_CPU_ISA_AUTO;
    eo.no_dedup = o->no_dedup;
    eo.comm = c;
    eo.placement = s->pl;
    eo.wire = o->wire == ROE_EP_WIRE_BF16 ? ROE_EP_WIRE_BF16 : ROE_EP_WIRE_F32;
    eo.no_overlap = o->no_overlap;
    eo.ep_early_us = roe_env_ep_early_us(); /* scheduling only, results do not depend on it */
    eo.backend = o->backend == ROE_BACKEND_CUDA || o->backend == ROE_BACKEND_CPU_STAGED ? (roe_backend_kind)o->backend
                                                                                       : ROE_BACKEND_CPU;
    eo.device = roe_env_local_rank(); /* the backend takes it modulo the node's devices */
    ROE_TRY(roe_engine_create(s->model, &eo, &s->engine));
    const char *got = roe_engine_backend_name(s->engine);
    if (eo.isa != ROE_CPU_ISA_AUTO && isa_of_backend(got) != eo.isa)
        return roe_fail(ROE_ERR_UNSUPPORTED,
                        "this CPU cannot run rank 0's kernel path (it runs %s here): results would differ; "
                        "set ROE_CPU_ISA on rank 0 to a path every rank has (avx2, portable)",
                        got);
    ROE_TRY(roe_cluster_create(s->engine, &s->cl));
    if (o->warm) roe_model_warm(s->model);
    rep->resident_bytes = s->model->held_bytes;
    rep->mapped_resident_bytes = roe_mapped_resident_bytes();
    rep->backend = (char *)got;
    ROE_LOG_INFO("worker", "rank %d: %s, %ld expert(s) held, %.1f MB resident, %s", me, o->model_dir,
                 s->model->held_experts, s->model->held_bytes / 1e6, got);
    return ROE_OK;
}

roe_status roe_worker_run(roe_comm *c) {
    struct session s = {0};
    struct roe_msgbuf buf = {0};
    struct roe_arena arena = {0};
    roe_status st = roe_arena_init(&arena, 1 << 20);
    while (st == ROE_OK) {
        Roe__Control *m = NULL;
        st = roe_control_recv(c, &buf, &arena, &m);
        if (st != ROE_OK) break;
        if (m->body_case == ROE__CONTROL__BODY_EXIT) break;
        if (m->body_case == ROE__CONTROL__BODY_OPEN) {
            Roe__Reply rep = ROE__REPLY__INIT;
            roe_status os = session_open(&s, c, m->open, &rep);
            char err[1024];
            snprintf(err, sizeof err, "%s", os == ROE_OK ? "" : roe_error_message());
            rep.status = (int32_t)os;
            rep.error = err;
            if (os != ROE_OK) session_close(&s); /* the coordinator reports it and exits */
            st = roe_reply_send(c, &rep, &buf, "session open reply");
        } else if (m->body_case == ROE__CONTROL__BODY_STEP) {
            if (!s.cl) {
                st = roe_fail(ROE_ERR_FORMAT, "rank %d: a step arrived from rank 0 before any session was opened",
                              roe_comm_rank(c));
                break;
            }
            st = roe_cluster_serve(s.cl, m->step);
        } else
            st = roe_fail(ROE_ERR_FORMAT, "rank %d: the control message from rank 0 (the coordinator) has no known body (%d)",
                          roe_comm_rank(c), (int)m->body_case);
    }
    session_close(&s);
    roe_msgbuf_free(&buf);
    roe_arena_free(&arena);
    return st;
}
