/*
 * out.h — checked output to stdout for the grokwatch tool.
 *
 * Every write a command makes to stdout goes through out_*.  The module
 * owns stdout's error state: it keeps the first failure and, once there is
 * one, writes nothing more, so a command need not check each write.  A
 * reader that has gone (EPIPE, with SIGPIPE ignored) ends a command
 * quietly at its next flush; any other failure is reported once, by
 * out_finish.  Loop thread only (the tool has one thread).
 */
#ifndef GW_CLI_OUT_H
#define GW_CLI_OUT_H

#include <stddef.h>

/* Write to stdout, unless a write has failed already. */
__attribute__((format(printf, 1, 2)))
void out_printf(const char *fmt, ...);
void out_bytes(const void *buf, size_t len);
void out_str(const char *s);
void out_char(char c);

/* The first failure writing to stdout: 0, -EPIPE (its reader has gone) or
 * another negative errno.  Does not flush. */
int out_failure(void);

/* Flush stdout.  Returns 0, or the first failure: -EPIPE when its reader
 * has gone (the caller stops, quietly), another negative errno else. */
int out_flush(void);

/* The exit status of a command that returned `status`, once stdout is
 * flushed: unchanged if all was written or the reader went away (EPIPE);
 * 1, with the message on stderr, for another failure. */
int out_finish(int status);

#endif
