/* test_file.c — gw_file_read: whole small files, limits, non-files. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

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

static const struct tap_test tests[] = {
	{ "reads_whole_file_nul_terminated", test_reads_whole_file_nul_terminated },
	{ "empty_file", test_empty_file },
	{ "limit", test_limit },
	{ "missing_and_directory", test_missing_and_directory },
	{ NULL, NULL },
};
TAP_MAIN(tests)
