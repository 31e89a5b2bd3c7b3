/*
 * log.c — one line per event on stderr (log.h).  The line is formatted
 * into a buffer and written with one write(2); newlines inside a message
 * become spaces so an event is always one line, as journald shows it.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static atomic_int log_level = LOG_LVL_INFO;

void log_set_level(int level)
{
	atomic_store(&log_level, level);
}

int log_get_level(void)
{
	return atomic_load(&log_level);
}

void log_msg(int level, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	static const int prio[] = { 3, 4, 6, 7 };
	char line[4096];
	va_list ap;
	size_t n;
	int k;

	if (level > atomic_load(&log_level) || level < 0 || level > LOG_LVL_DEBUG)
		return;
	if (getenv("JOURNAL_STREAM"))
		k = snprintf(line, sizeof(line), "<%d>", prio[level]);
	else
		k = snprintf(line, sizeof(line), "grokwatchd: %s: ", names[level]);
	n = (size_t)k;
	va_start(ap, fmt);
	k = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (k < 0)
		return;
	n += (size_t)k < sizeof(line) - n - 1 ? (size_t)k : sizeof(line) - n - 2;
	for (size_t i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, n) < 0) {
		/* Nowhere left to say it. */
	}
}
