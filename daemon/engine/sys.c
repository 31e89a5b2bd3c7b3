/*
 * sys.c — the table of sys.h: the C library's functions by default, and
 * the one wrapper per call that counts and fails on purpose.
 */
#include "engine/sys.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int real_open(const char *path, int flags, mode_t mode)
{
	return open(path, flags, mode);
}

struct gw_syscalls gw_sys = {
	.open = real_open, .write = write, .fsync = fsync, .fdatasync = fdatasync,
	.rename = rename, .unlink = unlink, .readdir = readdir,
};

const char *const gw_sys_names[] = {
	"open", "write", "fsync", "fdatasync", "rename", "unlink", "readdir", NULL,
};

static int fault_err; /* -1: kill the process instead (gw_sys_crash) */
static unsigned long fault_nth, fault_count;
static atomic_ulong calls, injected;

/* Whether this call fails (and errno is set). */
static int fail_now(void)
{
	unsigned long k = atomic_fetch_add(&calls, 1) + 1;
	char line[96];
	int n;

	if (k < fault_nth || (fault_count && k >= fault_nth + fault_count))
		return 0;
	atomic_fetch_add(&injected, 1);
	/* The tests count these lines; write(2) itself, not the table. */
	if (fault_err < 0)
		n = snprintf(line, sizeof(line), "grokwatchd: crash point: call %lu\n", k);
	else
		n = snprintf(line, sizeof(line), "grokwatchd: injected fault: %s into call %lu\n",
			     strerror(fault_err), k);
	if (write(2, line, (size_t)n) < 0) {
		/* nothing to do: stderr is gone */
	}
	if (fault_err < 0)
		raise(SIGKILL); /* as kill -9 just before the call */
	errno = fault_err;
	return 1;
}

static int f_open(const char *path, int flags, mode_t mode)
{
	return fail_now() ? -1 : open(path, flags, mode);
}

static ssize_t f_write(int fd, const void *buf, size_t len)
{
	return fail_now() ? -1 : write(fd, buf, len);
}

static int f_fsync(int fd)
{
	return fail_now() ? -1 : fsync(fd);
}

static int f_fdatasync(int fd)
{
	return fail_now() ? -1 : fdatasync(fd);
}

static int f_rename(const char *from, const char *to)
{
	return fail_now() ? -1 : rename(from, to);
}

static int f_unlink(const char *path)
{
	return fail_now() ? -1 : unlink(path);
}

static struct dirent *f_readdir(DIR *dp)
{
	return fail_now() ? NULL : readdir(dp);
}

void gw_sys_reset(void)
{
	gw_sys = (struct gw_syscalls){
		.open = real_open, .write = write, .fsync = fsync, .fdatasync = fdatasync,
		.rename = rename, .unlink = unlink, .readdir = readdir,
	};
	atomic_store(&calls, 0);
	atomic_store(&injected, 0);
}

static int install(const char *name, int err, unsigned long nth, unsigned long count);

int gw_sys_fail(const char *name, int err, unsigned long nth, unsigned long count)
{
	if (err <= 0)
		return -EINVAL;
	return install(name, err, nth, count);
}

int gw_sys_crash(const char *name, unsigned long nth)
{
	return install(name, -1, nth, 1);
}

static int install(const char *name, int err, unsigned long nth, unsigned long count)
{
	int i;

	for (i = 0; gw_sys_names[i] && strcmp(gw_sys_names[i], name); i++)
		;
	if (!gw_sys_names[i] || nth == 0)
		return -EINVAL;
	gw_sys_reset();
	fault_err = err;
	fault_nth = nth;
	fault_count = count;
	switch (i) {
	case 0: gw_sys.open = f_open; break;
	case 1: gw_sys.write = f_write; break;
	case 2: gw_sys.fsync = f_fsync; break;
	case 3: gw_sys.fdatasync = f_fdatasync; break;
	case 4: gw_sys.rename = f_rename; break;
	case 5: gw_sys.unlink = f_unlink; break;
	default: gw_sys.readdir = f_readdir; break;
	}
	return 0;
}

unsigned long gw_sys_injected(void)
{
	return atomic_load(&injected);
}
