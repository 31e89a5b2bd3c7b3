/* test_sys.c — the syscall table of engine/sys.h: the C library's calls
 * by default; a fault fails exactly the calls asked for, with the errno
 * asked for, and the writers of engine/file.h report it naming the file
 * and leave no temporary behind. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../tap.h"
#include "engine/file.h"
#include "engine/sys.h"

static bool exists(const char *dir, const char *name)
{
	char p[1024];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return stat(p, &st) == 0;
}

static void test_nth_call_fails(void)
{
	int fd;

	gw_sys_reset();
	CHECK_INT_EQ(gw_sys_fail("write", ENOSPC, 2, 2), 0);
	fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_INT_EQ(gw_sys.write(fd, "a", 1), 1);
	errno = 0;
	CHECK_INT_EQ(gw_sys.write(fd, "a", 1), -1);
	CHECK_INT_EQ(errno, ENOSPC);
	CHECK_INT_EQ(gw_sys.write(fd, "a", 1), -1);
	CHECK_INT_EQ(gw_sys.write(fd, "a", 1), 1);
	CHECK_INT_EQ(gw_sys_injected(), 2);
	/* count 0: every call from the nth on */
	CHECK_INT_EQ(gw_sys_fail("write", EIO, 1, 0), 0);
	for (int i = 0; i < 5; i++)
		CHECK_INT_EQ(gw_sys.write(fd, "a", 1), -1);
	CHECK_INT_EQ(gw_sys_injected(), 5);
	close(fd);
	gw_sys_reset();
	CHECK_INT_EQ(gw_sys_fail("nosuch", EIO, 1, 1), -EINVAL);
	CHECK_INT_EQ(gw_sys_fail("write", 0, 1, 1), -EINVAL);
	CHECK_INT_EQ(gw_sys_fail("write", EIO, 0, 1), -EINVAL);
	gw_sys_reset();
}

/* Every call of the atomic writer, failed in turn: the old file stays
 * whole, the error names the file, no temporary is left. */
static void test_atomic_write_each_call(void)
{
	static const char *const calls[] = { "open", "write", "fsync", "rename", NULL };
	const char *dir = tap_tmpdir();
	struct gw_err err;
	char *text = NULL;
	size_t len;
	char p[1024];

	snprintf(p, sizeof(p), "%s/state.json", dir);
	gw_sys_reset();
	CHECK_INT_EQ(gw_file_write_atomic(dir, "state.json", "old", 3, &err), 0);
	for (int i = 0; calls[i]; i++) {
		CHECK_INT_EQ(gw_sys_fail(calls[i], EIO, 1, 1), 0);
		CHECK_INT_EQ(gw_file_write_atomic(dir, "state.json", "new!", 4, &err), -EIO);
		CHECK_STR_HAS(err.msg, "state.json");
		CHECK_INT_EQ(gw_sys_injected(), 1);
		CHECK(!exists(dir, ".state.json.tmp"));
		CHECK_INT_EQ(gw_file_read(p, 100, &text, &len, &err), 0);
		CHECK_STR_EQ(text, "old");
		free(text);
	}
	gw_sys_reset();
	CHECK_INT_EQ(gw_file_write_atomic(dir, "state.json", "new!", 4, &err), 0);
	CHECK_INT_EQ(gw_file_read(p, 100, &text, &len, &err), 0);
	CHECK_STR_EQ(text, "new!");
	free(text);
}

static const struct tap_test tests[] = {
	{ "nth_call_fails", test_nth_call_fails },
	{ "atomic_write_each_call", test_atomic_write_each_call },
	{ NULL, NULL },
};
TAP_MAIN(tests)
