/*
 * fuzz_control.c — the control plane's messages (comm/control.proto) as a rank receives
 * them: byte 0 picks a Control message (decoded by rank 1, sent by rank 0, the
 * coordinator) or a Reply (decoded by rank 0, sent by rank 1); the rest is the message.
 * Any bytes give a message or a status whose message names the sender; the decoding
 * arena bounds what a message can make the receiver allocate.
 */
#include <string.h>

#include "fuzz_common.h"
#include "runtime/control.h"

static struct roe_arena arena;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_quiet();
    if (roe_arena_init(&arena, 1 << 16) != ROE_OK) abort();
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
        Roe__Reply *r = NULL;
        roe_status st = roe_reply_unpack(p, n, 1, &arena, &r);
        if (st != ROE_OK) must_name("rank 1");
        fuzz_check_rejection(st);
        if (st == ROE_OK && (r->rank != 1 || (r->n_out && !r->out))) abort();
    } else {
        Roe__Control *m = NULL;
        roe_status st = roe_control_decode(p, n, 1, &arena, &m);
        if (st != ROE_OK) must_name("rank 0");
        fuzz_check_rejection(st);
        if (st == ROE_OK && m->body_case == ROE__CONTROL__BODY_STEP && m->step) {
            const Roe__StepPlan *s = m->step;
            volatile uint64_t sink = 0;
            for (size_t i = 0; i < s->n_bind; i++)
                sink += s->bind[i]->seq + (s->bind[i]->roster ? s->bind[i]->roster->n_tau : 0);
            for (size_t i = 0; i < s->n_row_seq; i++) sink += s->row_seq[i];
            (void)sink;
        }
    }
    return 0;
}
