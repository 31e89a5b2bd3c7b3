/*
 * out.c — checked output to stdout (out.h): formatted text, strings,
 * characters and bytes, each a no-op once a write has failed; then the
 * flush and the exit status that come of the first failure.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "out.h"

/* The first failure writing to stdout, 0 or a negative errno; once set,
 * nothing more is written.  Global as stdout is: it belongs to the
 * stream, not to a command. */
static int out_error;

static void out_failed(void)
{
	if (!out_error)
		out_error = errno ? -errno : -EIO;
}

void out_printf(const char *fmt, ...)
{
	va_list ap;

	if (out_error)
		return;
	va_start(ap, fmt);
	errno = 0;
	if (vprintf(fmt, ap) < 0)
		out_failed();
	va_end(ap);
}

void out_bytes(const void *buf, size_t len)
{
	if (out_error || !len)
		return;
	errno = 0;
	if (fwrite(buf, 1, len, stdout) != len)
		out_failed();
}

void out_str(const char *s)
{
	out_bytes(s, strlen(s));
}

void out_char(char c)
{
	out_bytes(&c, 1);
}

int out_failure(void)
{
	return out_error;
}

int out_flush(void)
{
	if (out_error)
		return out_error;
	errno = 0;
	if (fflush(stdout) != 0)
		out_failed();
	return out_error;
}

int out_finish(int status)
{
	int r = out_flush();

	if (r == 0 || r == -EPIPE)
		return status;
	fprintf(stderr, "grokwatch: cannot write to stdout: %s\n", strerror(-r));
	return 1;
}
