/*
 * fault.c — named crash points (fault.h): the table of names, reading the
 * environment once, and the crash itself.
 */
#include "fault.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/file.h"
#include "engine/sys.h"

/* Every point the daemon has, in the order a checkpoint meets them. */
static const char *const fault_points[] = {
	"after-compute",        /* the job's result is back on the loop, not yet journaled */
	"after-journal",        /* the result is durable, nothing published */
	"after-publish",        /* published, earlier token records not yet removed */
	"before-failed-journal", /* a failure is about to be journaled */
	"mid-hook",             /* an alert's hooks were just started */
	NULL,
};

static char want[64];
static long want_count;
static atomic_long seen;

/* GROKWATCHD_TEST_SYSCALL_FAULT=CALL:ERRNO:NTH[:COUNT] (engine/sys.h). */
static int syscall_fault(struct gw_err *err)
{
	static const struct { const char *name; int e; } errs[] = {
		{ "EIO", EIO }, { "ENOSPC", ENOSPC }, { "EMFILE", EMFILE }, { "EDQUOT", EDQUOT },
		{ "EACCES", EACCES }, { "EINTR", EINTR },
	};
	const char *v = getenv("GROKWATCHD_TEST_SYSCALL_FAULT");
	char call[32], en[32];
	unsigned long nth = 0, count = 1;
	int k, e = 0;

	if (!v || !*v)
		return 0;
	k = sscanf(v, "%31[a-z]:%31[A-Z]:%lu:%lu", call, en, &nth, &count);
	if (k >= 3 && !strcmp(en, "KILL") && gw_sys_crash(call, nth) == 0)
		return 0;
	for (size_t i = 0; k >= 3 && i < sizeof(errs) / sizeof(errs[0]); i++)
		if (!strcmp(en, errs[i].name))
			e = errs[i].e;
	if (k < 3 || !e || gw_sys_fail(call, e, nth, count) < 0)
		return gw_errf(err, -EINVAL,
			       "GROKWATCHD_TEST_SYSCALL_FAULT=\"%.80s\": not CALL:ERRNO:NTH[:COUNT] "
			       "(CALL open, write, fsync, fdatasync, rename, unlink or readdir; ERRNO "
			       "EIO, ENOSPC, EMFILE, EDQUOT, EACCES, EINTR, or KILL for kill -9 "
			       "before the call; COUNT 0 for every call after)",
			       v);
	return 0;
}

int fault_init(struct gw_err *err)
{
	const char *v = getenv("GROKWATCHD_TEST_CRASH_AT");
	const char *colon;
	size_t n;

	want[0] = 0;
	if (syscall_fault(err) < 0)
		return -EINVAL;
	if (!v || !*v)
		return 0;
	colon = strchr(v, ':');
	n = colon ? (size_t)(colon - v) : strlen(v);
	want_count = 1;
	if (colon) {
		char *end;

		errno = 0;
		want_count = strtol(colon + 1, &end, 10);
		if (errno || *end || end == colon + 1 || want_count < 1)
			return gw_errf(err, -EINVAL,
				       "GROKWATCHD_TEST_CRASH_AT=\"%.80s\": the count is not an integer >= 1", v);
	}
	for (int i = 0; fault_points[i]; i++)
		if (strlen(fault_points[i]) == n && !strncmp(fault_points[i], v, n)) {
			memcpy(want, v, n);
			want[n] = 0;
			return 0;
		}
	return gw_errf(err, -EINVAL, "GROKWATCHD_TEST_CRASH_AT=\"%.80s\": no such crash point", v);
}

void fault_point(const char *name)
{
	char line[128];
	int n;

	if (!want[0] || strcmp(name, want))
		return;
	if (atomic_fetch_add(&seen, 1) + 1 != want_count)
		return;
	/* What was handed to ZeroMQ before the point is on the wire 200 ms
	 * later (its I/O thread sends): a crash "in between" is one that lets
	 * earlier messages out. */
	usleep(200 * 1000);
	n = snprintf(line, sizeof(line), "grokwatchd: crash point %s\n", name);
	gw_write_all(2, line, (size_t)n);
	raise(SIGKILL);
}
