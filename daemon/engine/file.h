/*
 * file.h — reading a small whole file (config.json, an index, a daemon
 * config, trainer_state.json) with the checks every such read needs, the
 * one write loop (gw_write_all), and the two path helpers everything that
 * names files uses.
 *
 * gw_file_read opens `path`, refuses anything but a regular file and any
 * file over `max` bytes, reads it whole and notices a file that grew or
 * shrank while it was read.  The text comes back NUL-terminated (one byte
 * past *ret_len), so JSON parsers can take it as it is.
 *
 * Errors, each with a message naming the path:
 *   -ENOENT, -EACCES, ...  from open(2) ("\"p\": No such file or directory")
 *   -EINVAL                not a regular file
 *   -EFBIG                 "\"p\": N bytes, more than the limit of MAX"
 *   -EAGAIN                "\"p\": changed while being read"
 * Thread safety: none needed; no shared state.
 */
#ifndef GW_ENGINE_FILE_H
#define GW_ENGINE_FILE_H

#include <stddef.h>

#include "engine/error.h"

/* "a" SEP "b" as a new string (aborts on OOM): a path from a directory
 * and a name with '/', an environment entry with '='. */
char *gw_join(const char *a, char sep, const char *b);

/* The last component of a path ("run/step1000/" -> "step1000"), new. */
char *gw_path_base(const char *path);

/* Write all len bytes of buf to fd, again after EINTR and short writes.
 * 0 or -errno (of the write that failed). */
int gw_write_all(int fd, const void *buf, size_t len);

/* On success *ret_text is a new buffer the caller frees. */
int gw_file_read(const char *path, size_t max, char **ret_text, size_t *ret_len,
		 struct gw_err *err);

#endif
