/* test_file.c — gw_file_read: whole small files, limits, non-files;
 * gw_file_write_atomic: the new bytes or the old, never a temporary left. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../tap.h"
#include "engine/file.h"

static void test_reads_whole_file_nul_terminated(void)
{
	const char *p = tap_write_file("a.json", "{\"x\": 1}", 8);
	struct gw_err e;
	char *t = NULL;
	size_t n = 0;

	CHECK_INT_EQ(gw_file_read(p, 100, &t, &n, &e), 0);
	CHECK_INT_EQ(n, 8);
	CHECK_STR_EQ(t, "{\"x\": 1}");
	free(t);
}

static void test_empty_file(void)
{
	const char *p = tap_write_file("e", "", 0);
	struct gw_err e;
	char *t = NULL;
	size_t n = 7;

	CHECK_INT_EQ(gw_file_read(p, 100, &t, &n, &e), 0);
	CHECK_INT_EQ(n, 0);
	CHECK_STR_EQ(t, "");
	free(t);
}

static void test_limit(void)
{
	const char *p = tap_write_file("big", "0123456789", 10);
	struct gw_err e;
	char *t = NULL;
	size_t n;

	CHECK_INT_EQ(gw_file_read(p, 9, &t, &n, &e), -EFBIG);
	CHECK_STR_HAS(e.msg, "big\": 10 bytes, more than the limit of 9");
	CHECK(t == NULL);
	CHECK_INT_EQ(gw_file_read(p, 10, &t, &n, &e), 0);
	free(t);
}

static void test_missing_and_directory(void)
{
	char path[600];
	struct gw_err e;
	char *t = NULL;
	size_t n;

	snprintf(path, sizeof(path), "%s/nope", tap_tmpdir());
	CHECK_INT_EQ(gw_file_read(path, 10, &t, &n, &e), -ENOENT);
	CHECK_STR_HAS(e.msg, "nope\": No such file or directory");
	CHECK_INT_EQ(gw_file_read(tap_tmpdir(), 10, &t, &n, &e), -EINVAL);
	CHECK_STR_HAS(e.msg, "not a regular file");
	CHECK(t == NULL);
}

/* All of a buffer larger than a pipe holds, through short writes; and the
 * errno of a write that fails. */
static void test_write_all(void)
{
	size_t n = 1 << 20, got = 0;
	char *buf = malloc(n), *back = malloc(n);
	int fds[2];
	pid_t pid;

	CHECK(buf && back);
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)(i * 7);
	CHECK_INT_EQ(pipe(fds), 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		_exit(gw_write_all(fds[1], buf, n) == 0 ? 0 : 1);
	}
	close(fds[1]);
	for (ssize_t k; (k = read(fds[0], back + got, n - got)) > 0;)
		got += (size_t)k;
	close(fds[0]);
	CHECK_INT_EQ(got, n);
	CHECK(memcmp(buf, back, n) == 0);
	CHECK_INT_EQ(waitpid(pid, NULL, 0), pid);
	CHECK_INT_EQ(gw_write_all(-1, buf, 1), -EBADF);
	CHECK_INT_EQ(gw_write_all(-1, buf, 0), 0);
	free(buf);
	free(back);
}

static void test_write_atomic_replaces(void)
{
	const char *dir = tap_tmpdir();
	char path[600], tmp[600], *t = NULL;
	struct gw_err e;
	size_t n;

	snprintf(path, sizeof(path), "%s/s.json", dir);
	snprintf(tmp, sizeof(tmp), "%s/.s.json.tmp", dir);
	CHECK_INT_EQ(gw_file_write_atomic(dir, "s.json", "old", 3, &e), 0);
	CHECK_INT_EQ(gw_file_write_atomic(dir, "s.json", "new!", 4, &e), 0);
	CHECK_INT_EQ(gw_file_read(path, 100, &t, &n, &e), 0);
	CHECK_STR_EQ(t, "new!");
	free(t);
	CHECK(access(tmp, F_OK) < 0);
}

static void test_write_atomic_failure_keeps_old(void)
{
	const char *dir = tap_tmpdir();
	char path[600], sub[600], *t = NULL;
	struct gw_err e;
	size_t n;

	/* A directory where the file should go: the rename fails, the
	 * temporary is removed, what was there stays. */
	snprintf(sub, sizeof(sub), "%s/d", dir);
	CHECK_INT_EQ(mkdir(sub, 0700), 0);
	snprintf(path, sizeof(path), "%s/d/x", dir);
	CHECK_INT_EQ(mkdir(path, 0700), 0);
	CHECK(gw_file_write_atomic(sub, "x", "data", 4, &e) < 0);
	CHECK_STR_HAS(e.msg, "d/x\": rename");
	snprintf(path, sizeof(path), "%s/d/.x.tmp", dir);
	CHECK(access(path, F_OK) < 0);
	/* No such directory: the temporary cannot be made, named. */
	CHECK_INT_EQ(gw_file_write_atomic("/nonexistent-gw", "x", "a", 1, &e), -ENOENT);
	CHECK_STR_HAS(e.msg, "/nonexistent-gw/.x.tmp");
	CHECK_INT_EQ(gw_file_write_atomic(dir, "y", "a", 1, &e), 0);
	snprintf(path, sizeof(path), "%s/y", dir);
	CHECK_INT_EQ(gw_file_read(path, 10, &t, &n, &e), 0);
	CHECK_STR_EQ(t, "a");
	free(t);
}

static void test_write_all_pipe(void)
{
	int fds[2];
	char buf[8] = "";

	signal(SIGPIPE, SIG_IGN);
	CHECK_INT_EQ(pipe(fds), 0);
	CHECK_INT_EQ(gw_write_all(fds[1], "abcdef", 6), 0);
	CHECK_INT_EQ(read(fds[0], buf, sizeof(buf)), 6);
	CHECK_STR_EQ(buf, "abcdef");
	close(fds[0]);
	CHECK_INT_EQ(gw_write_all(fds[1], "x", 1), -EPIPE);
	close(fds[1]);
}

static const struct tap_test tests[] = {
	{ "write_all", test_write_all },
	{ "reads_whole_file_nul_terminated", test_reads_whole_file_nul_terminated },
	{ "empty_file", test_empty_file },
	{ "limit", test_limit },
	{ "missing_and_directory", test_missing_and_directory },
	{ "write_atomic_replaces", test_write_atomic_replaces },
	{ "write_atomic_failure_keeps_old", test_write_atomic_failure_keeps_old },
	{ "write_all_pipe", test_write_all_pipe },
	{ NULL, NULL },
};
TAP_MAIN(tests)
