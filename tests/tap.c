/*
 * tap.c — the unit test harness declared in tap.h.
 *
 * tap_main forks one child per test; the child arms alarm() with the timeout
 * and runs the test; the parent reads the exit status and prints the TAP
 * line.  Diagnostics go to stdout as "# ..." lines so they stay in the TAP
 * stream next to the failure they explain.
 */
#include "tap.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[256];

void tap_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	printf("# %s:%d: ", file, line);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	_exit(1);
}

void tap_note(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

const char *tap_fixtures(void)
{
	const char *d = getenv("GW_FIXTURES");

	if (!d || !*d)
		tap_fail(__FILE__, __LINE__, "GW_FIXTURES is not set (run through make check)");
	return d;
}

const char *tap_tmpdir(void)
{
	if (!tmpdir[0]) {
		const char *base = getenv("TMPDIR");

		snprintf(tmpdir, sizeof(tmpdir), "%s/gwtest.XXXXXX", base && *base ? base : "/tmp");
		if (!mkdtemp(tmpdir))
			tap_fail(__FILE__, __LINE__, "mkdtemp: %s", strerror(errno));
	}
	return tmpdir;
}

const char *tap_write_file(const char *name, const void *data, size_t len)
{
	static char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tap_tmpdir(), name);
	f = fopen(path, "wb");
	if (!f)
		tap_fail(__FILE__, __LINE__, "open \"%s\": %s", path, strerror(errno));
	if (len && fwrite(data, 1, len, f) != len)
		tap_fail(__FILE__, __LINE__, "write \"%s\": %s", path, strerror(errno));
	if (fclose(f) != 0)
		tap_fail(__FILE__, __LINE__, "close \"%s\": %s", path, strerror(errno));
	return path;
}

static void rm_tmpdir(void)
{
	char cmd[300];

	if (!tmpdir[0] || getenv("GW_KEEP_TMP"))
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "# could not remove %s\n", tmpdir);
}

static int run_one(const struct tap_test *t, int timeout)
{
	int status;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		printf("# fork: %s\n", strerror(errno));
		return 0;
	}
	if (pid == 0) {
		alarm((unsigned)timeout);
		t->fn();
		rm_tmpdir();
		fflush(stdout);
		exit(0);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 1;
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
		printf("# timed out after %d s\n", timeout);
	else if (WIFSIGNALED(status))
		printf("# killed by signal %d\n", WTERMSIG(status));
	else if (WEXITSTATUS(status) != 1)
		printf("# exit status %d\n", WEXITSTATUS(status));
	return 0;
}

int tap_main(const struct tap_test *tests, int argc, char **argv)
{
	const char *to = getenv("GW_TEST_TIMEOUT");
	int timeout = to && atoi(to) > 0 ? atoi(to) : 60;
	int n = 0, failed = 0;

	if (argc > 1) {
		for (const struct tap_test *t = tests; t->name; t++)
			if (strcmp(t->name, argv[1]) == 0) {
				t->fn();
				rm_tmpdir();
				printf("ok 1 - %s\n", t->name);
				return 0;
			}
		fprintf(stderr, "no test named '%s'\n", argv[1]);
		return 2;
	}
	for (const struct tap_test *t = tests; t->name; t++)
		n++;
	printf("1..%d\n", n);
	n = 0;
	for (const struct tap_test *t = tests; t->name; t++) {
		int ok = run_one(t, timeout);

		n++;
		printf("%s %d - %s\n", ok ? "ok" : "not ok", n, t->name);
		fflush(stdout);
		failed += !ok;
	}
	return failed ? 1 : 0;
}
