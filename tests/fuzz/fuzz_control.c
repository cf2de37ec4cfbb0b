/*
 * fuzz_control.c — the control plane's messages (comm/control.proto) as a rank receives
 * them (runtime/control.h): byte 0 picks a control message (decoded by rank 1, sent by rank 0, the
 * coordinator) or a Reply (decoded by rank 0, sent by rank 1); the rest is the message.
 * Any bytes give a message or a status whose message names the sender; the decoding
 * arena bounds what a message can make the receiver allocate.
 */
#include <string.h>

#include "fuzz_common.h"
#include "runtime/control.h"

static struct roe_control_io io;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_quiet();
    if (roe_control_io_init(&io, 4, 1 << 10, 1 << 16, 0, 0) != ROE_OK) abort();
    return 0;
}

static void must_name(const char *who) {
    if (!strstr(roe_error_message(), who)) {
        fprintf(stderr, "rejection does not name the sender (%s): %s\n", who, roe_error_message());
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const uint8_t *p = data + 1;
    const size_t n = size - 1;
    if (data[0] & 1) {
        struct roe_reply r;
        roe_status st = roe_reply_decode(p, n, 1, &io, &r);
        if (st != ROE_OK) must_name("rank 1");
        fuzz_check_rejection(st);
        if (st == ROE_OK && r.n_out && !r.out) abort();
    } else {
        struct roe_control m;
        roe_status st = roe_control_decode(p, n, 1, &io, &m);
        if (st != ROE_OK) must_name("rank 0");
        fuzz_check_rejection(st);
        if (st == ROE_OK && m.kind == ROE_CONTROL_STEP) {
            const struct roe_step_plan *s = &m.step;
            volatile uint64_t sink = 0;
            struct roe_roster roster;
            for (size_t i = 0; i < s->n_bind; i++) { /* every binding, rows and groups readable */
                struct roe_plan_bind b;
                if (roe_step_plan_bind(s, i, 4, 1, &b, &roster) == ROE_OK)
                    sink += (uint64_t)b.seq + (b.roster ? (uint64_t)b.roster->k : 0);
                else
                    must_name("rank 0");
            }
            for (size_t i = 0; i < s->n_rows; i++)
                sink += s->row_seq[i] + s->row_pos[i] + s->row_sample[i] + s->row_flags[i] + (uint32_t)s->row_token[i];
            for (size_t i = 0; i < s->n_groups; i++) sink += s->group_first[i] + s->group_n[i] + s->group_mode[i];
            (void)sink;
        }
    }
    return 0;
}
