/*
 * error.c — formatting of engine errors, programming-error aborts and the
 * allocation wrappers that abort on out-of-memory.
 *
 * gw_bug and the OOM abort write to stderr: they are the one place the
 * engine speaks, because the process is about to end.
 */
#include "engine/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int gw_errf(struct gw_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	GW_BUG_ON(code >= 0);
	if (err) {
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return code;
}

int gw_err_prefix(struct gw_err *err, int code, const char *fmt, ...)
{
	char prefix[GW_ERR_MAX], old[GW_ERR_MAX];
	va_list ap;

	GW_BUG_ON(code >= 0);
	if (err) {
		va_start(ap, fmt);
		vsnprintf(prefix, sizeof(prefix), fmt, ap);
		va_end(ap);
		memcpy(old, err->msg, sizeof(old));
		/* A message too long for the buffer is cut, never overflowed. */
		if (snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old) < 0)
			err->msg[0] = 0;
	}
	return code;
}

static void die(const char *msg) __attribute__((noreturn));

static void die(const char *msg)
{
	/* write(2) only: this may run with the heap in any state. */
	ssize_t r = write(STDERR_FILENO, msg, strlen(msg));

	(void)r;
	abort();
}

void gw_bug(const char *file, int line, const char *what)
{
	char buf[512];

	snprintf(buf, sizeof(buf), "BUG: %s:%d: %s\n", file, line, what);
	die(buf);
}

void *gw_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		die("fatal: out of memory\n");
	return p;
}

void *gw_calloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		die("fatal: out of memory\n");
	return p;
}

void *gw_realloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q)
		die("fatal: out of memory\n");
	return q;
}

char *gw_strdup(const char *s)
{
	size_t n = strlen(s) + 1;

	return memcpy(gw_malloc(n), s, n);
}
