/*
 * error.h — the engine's one error convention.
 *
 * Every engine function that can fail returns an int: 0 on success or a
 * negative errno.  Where a caller needs to tell a person what went wrong it
 * passes a struct gw_err, which the failing function fills with one message
 * that names the input in quotes and the fault, without a full stop, e.g.
 *
 *     "ckpt/model.safetensors": header length 4096 exceeds the file size 100
 *
 * The engine never prints; the outer layer (grokwatchd's commands, the
 * daemon's log) decides what to do with the message.  `err` may be NULL.
 */
#ifndef GW_ENGINE_ERROR_H
#define GW_ENGINE_ERROR_H

#include <stddef.h>

#define GW_ERR_MAX 512

struct gw_err {
	char msg[GW_ERR_MAX];
};

/* Format the message into err (if not NULL) and return code, which must be
 * negative.  So a failure reads `return gw_errf(err, -EINVAL, "...", ...)`. */
int gw_errf(struct gw_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefix the existing message with "prefix: " (for context added by a
 * caller) and return code. */
int gw_err_prefix(struct gw_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Abort with file and line: a programming error, in every build. */
#define GW_BUG_ON(cond) \
	do { if (cond) gw_bug(__FILE__, __LINE__, #cond); } while (0)
void gw_bug(const char *file, int line, const char *what) __attribute__((noreturn));

/* Allocation that aborts on out-of-memory, for the daemon and the engine
 * (the daemon aborts on OOM; STYLE.md habit 6). */
void *gw_malloc(size_t n);
void *gw_calloc(size_t n, size_t size);
void *gw_realloc(void *p, size_t n);
char *gw_strdup(const char *s);

#endif
