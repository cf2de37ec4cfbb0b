/* worker.c — the ranks other than 0 and the coordinator's session calls; see worker.h. */
#include "worker.h"

#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "cluster.h"
#include "control.h"
#include "model.h"
#include "rank.h"

/* The one-off messages of opening and ending: buffers of a world's size, freed after. */
static roe_status with_io(roe_comm *c, struct roe_control_io *io) {
    return roe_control_io_init(io, roe_comm_size(c), 4096, 65536, 0, 0);
}

roe_status roe_workers_open(roe_comm *c, const struct roe_session_spec *spec) {
    struct roe_control_io io;
    ROE_TRY(with_io(c, &io));
    const struct roe_control m = {.kind = ROE_CONTROL_OPEN, .open = *spec};
    roe_status st = roe_control_send(c, &m, &io);
    roe_control_io_free(&io);
    return st;
}

roe_status roe_workers_opened(roe_comm *c, struct roe_rank_info *info) {
    struct roe_control_io io;
    ROE_TRY(with_io(c, &io));
    roe_status st = roe_reply_collect(c, &io, "session open reply");
    /* in rank order, so that the lowest failing rank is the one reported */
    for (int r = 1; r < roe_comm_size(c) && st == ROE_OK; r++) {
        struct roe_reply rep;
        st = roe_reply_get(&io, r, &rep);
        if (st == ROE_OK && info) {
            info[r].resident_bytes = rep.resident_bytes;
            info[r].mapped_resident = rep.mapped_resident_bytes;
            snprintf(info[r].backend, sizeof info[r].backend, "%s", rep.backend);
        }
    }
    roe_control_io_free(&io);
    return st;
}

roe_status roe_workers_exit(roe_comm *c, int code) {
    struct roe_control_io io;
    ROE_TRY(with_io(c, &io));
    const struct roe_control m = {.kind = ROE_CONTROL_EXIT, .exit_code = code};
    roe_status st = roe_control_send(c, &m, &io);
    roe_control_io_free(&io);
    return st;
}

/* A worker's session: the model, its share (rank.h) and the cluster that serves the steps. */
struct session {
    struct roe_model *model;
    struct roe_rank rank;
    roe_cluster *cl;
};

static void session_close(struct session *s) {
    roe_cluster_free(s->cl);
    roe_rank_close(&s->rank);
    roe_model_free(s->model);
    memset(s, 0, sizeof *s);
}

/* Opens the session rank 0 described, as rank 0 opened its own; fills the reply. */
static roe_status session_open(struct session *s, roe_comm *c, const struct roe_session_spec *o, struct roe_reply *rep) {
    const int me = roe_comm_rank(c);
    session_close(s);
    ROE_TRY(roe_model_open(o->model_dir, &s->model)); /* roe_rank_open keeps this rank's experts */
    const struct roe_model *model = s->model;
    ROE_TRY(roe_rank_open(&s->rank, s->model, o, c, 0));
    ROE_TRY(roe_cluster_create(s->rank.engine, &s->cl));
    if (o->warm) roe_model_warm(model);
    rep->resident_bytes = model->held_bytes;
    rep->mapped_resident_bytes = roe_mapped_resident_bytes();
    rep->backend = roe_engine_backend_name(s->rank.engine);
    ROE_LOG_INFO("worker", "rank %d: %s, %ld expert(s) held, %.1f MB resident, %s", me, o->model_dir,
                 model->held_experts, model->held_bytes / 1e6, rep->backend);
    return ROE_OK;
}

roe_status roe_worker_run(roe_comm *c) {
    struct session s = {0};
    struct roe_control_io io;
    roe_status st = roe_control_io_init(&io, roe_comm_size(c), 4096, 1 << 20, 0, 0);
    while (st == ROE_OK) {
        struct roe_control m;
        st = roe_control_recv(c, &io, &m);
        if (st != ROE_OK || m.kind == ROE_CONTROL_EXIT) break;
        if (m.kind == ROE_CONTROL_OPEN) {
            struct roe_reply rep = {0};
            rep.status = session_open(&s, c, &m.open, &rep);
            rep.error = rep.status == ROE_OK ? "" : roe_error_message();
            if (rep.status != ROE_OK) session_close(&s); /* the coordinator reports it and exits */
            st = roe_reply_send(c, &rep, &io, "session open reply");
            /* serving: from now on a dead rank must be found fast (the coordinator heartbeats) */
            if (st == ROE_OK && rep.status == ROE_OK && m.open.liveness_s > 0) roe_comm_set_timeout(c, m.open.liveness_s);
        } else if (!s.cl) {
            st = roe_fail(ROE_ERR_FORMAT, "rank %d: a step arrived from rank 0 before any session was opened",
                          roe_comm_rank(c));
        } else
            st = roe_cluster_serve(s.cl, &m.step);
    }
    session_close(&s);
    roe_control_io_free(&io);
    return st;
}
