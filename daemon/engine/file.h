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
 *
 * gw_write_all and gw_file_write_atomic are the one way files are written
 * whole: the state directory's files (state.h) and any other file a reader
 * must find either old or new, never half written.
 *
 * Thread safety: none needed; no shared state.  Every function may be
 * called from any thread.
 */
#ifndef GW_ENGINE_FILE_H
#define GW_ENGINE_FILE_H

#include <stddef.h>
#include <sys/types.h>

#include "engine/error.h"

/* "a" SEP "b" as a new string (aborts on OOM): a path from a directory
 * and a name with '/', an environment entry with '='. */
char *gw_join(const char *a, char sep, const char *b);

/* The last component of a path ("run/step1000/" -> "step1000"), new. */
char *gw_path_base(const char *path);

/* On success *ret_text is a new buffer the caller frees. */
int gw_file_read(const char *path, size_t max, char **ret_text, size_t *ret_len,
		 struct gw_err *err);

/* Write all `len` bytes of buf to fd, retrying EINTR and short writes.
 * 0 or -errno (no message: the caller names the file). */
int gw_write_all(int fd, const void *buf, size_t len);

/*
 * Replace dir/name with `len` bytes of buf, durably: write "dir/.name.tmp",
 * fsync it, rename it over dir/name, fsync dir.  A crash leaves either the
 * old or the new file, never a mix; a leftover ".name.tmp" is the caller's
 * to ignore (readers never open it) or remove.  The file is created 0640.
 * Errors, the message naming the file: -errno of open, write, fsync, rename
 * (the temporary is removed), -ENAMETOOLONG.
 */
int gw_file_write_atomic(const char *dir, const char *name, const void *buf, size_t len,
			 struct gw_err *err);

/* The same with the bytes in `n` pieces (a file header, then tensors),
 * written in order, the file created with `mode` (before the umask):
 * gw_file_write_atomic is this with one piece and 0640. */
struct gw_piece {
	const void *buf;
	size_t len;
};
int gw_file_write_atomicv(const char *dir, const char *name, const struct gw_piece *pieces,
			  size_t n, mode_t mode, struct gw_err *err);

#endif
