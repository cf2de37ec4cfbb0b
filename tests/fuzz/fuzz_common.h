/*
 * fuzz_common.h — what every libFuzzer target of tests/fuzz/ shares.
 *
 * The loaders under test take paths (they map or read files), so an input is handed to
 * them as an in-memory file: a memfd named by /proc/self/fd/N, rewritten for every input
 * (no disk traffic, and the same code path as a real file). Logging is silenced, since a
 * fuzzer runs millions of inputs whose rejections are expected.
 *
 * A target may only return 0, must free what it allocated (LeakSanitizer runs at the
 * end of each input's process), and treats any non-OK status without a message as a bug:
 * every rejection must say what is wrong.
 */
#ifndef ROE_FUZZ_COMMON_H
#define ROE_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/log.h"
#include "base/status.h"

/* The memfd's path (/proc/self/fd/N), created once per process. */
__attribute__((unused)) static const char *fuzz_memfd_path(int *fd_out) {
    static char path[64];
    static int fd = -1;
    if (fd < 0) {
        fd = memfd_create("roe-fuzz", MFD_CLOEXEC);
        if (fd < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    *fd_out = fd;
    return path;
}

/* Writes data[0..n) as the whole content of the memfd; returns its path. */
__attribute__((unused)) static const char *fuzz_as_file(const uint8_t *data, size_t n) {
    int fd;
    const char *path = fuzz_memfd_path(&fd);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, n, 0) != (ssize_t)n) {
        perror("fuzz_as_file");
        abort();
    }
    return path;
}

/* A rejection must carry a message (messages name what, which, why). */
__attribute__((unused)) static void fuzz_check_rejection(roe_status st) {
    if (st != ROE_OK && roe_error_message()[0] == '\0') {
        fprintf(stderr, "status %s without a message\n", roe_status_name(st));
        abort();
    }
    roe_error_clear();
}

__attribute__((unused)) static void fuzz_quiet(void) { roe_log_set_level(ROE_LOG_ERROR + 1); }

#endif
