/* fileio.h — small whole-file helpers with errno translated to a status and message. */
#ifndef ROE_FILEIO_H
#define ROE_FILEIO_H

#include <stddef.h>

#include "status.h"

/* Reads a whole file (at most max_bytes) into a NUL-terminated roe_malloc'd buffer. */
roe_status roe_file_read_all(const char *path, size_t max_bytes, char **out, size_t *len);

/* 1 if path exists and is a directory. */
int roe_is_dir(const char *path);
/* 1 if path exists and is a regular file. */
int roe_is_file(const char *path);

#endif
