/*
 * sys.h — the system calls that write or list the daemon's files, through
 * one table, so that a test can make any of them fail on purpose (as
 * SQLite's aSyscall does): write, fsync, fdatasync, rename, open, unlink,
 * readdir.  Everything that writes the state directory (file.h's writers,
 * the journal, state.c) and the watcher's directory listings call them as
 * gw_sys.write(...) and so on; in normal runs the table holds the C
 * library's functions and costs one indirect call.
 *
 * gw_sys_fail installs a fault: the nth call (1-based, counted from the
 * gw_sys_fail) of one of them, and the count - 1 calls after it (count 0:
 * every call from the nth on), fail with the errno given instead of being
 * made.  The daemon installs one from GROKWATCHD_TEST_SYSCALL_FAULT
 * (fault.h); tests/unit/test_sys.c and the fault matrix of
 * tests/integration/test_faults.py use it.
 *
 * Threads: calls through the table from any thread; counting is atomic.
 * gw_sys_fail only before other threads call (start-up, or a unit test).
 */
#ifndef GW_ENGINE_SYS_H
#define GW_ENGINE_SYS_H

#include <dirent.h>
#include <stddef.h>
#include <sys/types.h>

struct gw_syscalls {
	int (*open)(const char *path, int flags, mode_t mode);
	ssize_t (*write)(int fd, const void *buf, size_t len);
	int (*fsync)(int fd);
	int (*fdatasync)(int fd);
	int (*rename)(const char *from, const char *to);
	int (*unlink)(const char *path);
	struct dirent *(*readdir)(DIR *dp);
};

extern struct gw_syscalls gw_sys;

/* The names gw_sys_fail takes, NULL-terminated, in the table's order. */
extern const char *const gw_sys_names[];

/*
 * From now on the nth call of `name` (and count - 1 after it; 0: all
 * after it) fails with errno `err` (> 0).  A second fault replaces the
 * first.  0, or -EINVAL for an unknown name, err <= 0 or nth == 0.
 */
int gw_sys_fail(const char *name, int err, unsigned long nth, unsigned long count);
/* The nth call of `name` kills the process (SIGKILL) before it is made:
 * a crash at that point ("before the rename of a state file").  0 or
 * -EINVAL as gw_sys_fail. */
int gw_sys_crash(const char *name, unsigned long nth);
/* Back to the C library's functions, counters cleared. */
void gw_sys_reset(void);
/* How many calls failed on purpose so far. */
unsigned long gw_sys_injected(void);

#endif
