/*
 * file.h — reading a small whole file (config.json, an index, a daemon
 * config, trainer_state.json) with the checks every such read needs.
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

/* On success *ret_text is a new buffer the caller frees. */
int gw_file_read(const char *path, size_t max, char **ret_text, size_t *ret_len,
		 struct gw_err *err);

#endif
