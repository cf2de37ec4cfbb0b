/* fileio.c — whole-file reads; see fileio.h. */
#include "fileio.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"

roe_status roe_file_read_all(const char *path, size_t max_bytes, char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return roe_fail(ROE_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return roe_fail(ROE_ERR_IO, "'%s' is not a regular file", path);
    }
    if ((size_t)sb.st_size > max_bytes) {
        fclose(f);
        return roe_fail(ROE_ERR_FORMAT, "'%s' is %lld bytes, more than the limit of %zu", path,
                        (long long)sb.st_size, max_bytes);
    }
    size_t n = (size_t)sb.st_size;
    char *buf = roe_malloc(n + 1);
    if (!buf) {
        fclose(f);
        return roe_fail(ROE_ERR_NOMEM, "reading '%s': out of memory (%zu bytes)", path, n + 1);
    }
    if (n && fread(buf, 1, n, f) != n) {
        int e = errno;
        fclose(f);
        roe_free(buf);
        return roe_fail(ROE_ERR_IO, "reading '%s': %s", path, e ? strerror(e) : "short read");
    }
    fclose(f);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return ROE_OK;
}

int roe_is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

int roe_is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}
