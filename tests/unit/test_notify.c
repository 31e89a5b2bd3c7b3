/* test_notify.c — sd_notify datagrams against a test socket, checked byte
 * for byte, for a path socket and an abstract one; watchdog variables. */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../tap.h"
#include "notify.h"

/* Bind a datagram socket at `name` ("/path" or "@abstract"). */
static int bind_dgram(const char *name)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	size_t len = strlen(name);
	socklen_t alen;
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	struct timeval tv = { .tv_sec = 2 };

	CHECK(fd >= 0);
	memcpy(a.sun_path, name, len);
	if (name[0] == '@') {
		a.sun_path[0] = 0;
		alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	} else {
		alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
	}
	CHECK(bind(fd, (struct sockaddr *)&a, alen) == 0);
	CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0);
	return fd;
}

static const char *recv_msg(int fd)
{
	static char buf[2048];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);

	CHECK(n >= 0);
	buf[n] = 0;
	return buf;
}

static void sequence_on(const char *name)
{
	int fd = bind_dgram(name);
	struct notify *n = NULL;
	struct gw_err e;
	const char *m;
	unsigned long long mono;
	char *end;

	CHECK(setenv("NOTIFY_SOCKET", name, 1) == 0);
	CHECK_INT_EQ(notify_new(&n, &e), 0);
	CHECK(getenv("NOTIFY_SOCKET") == NULL); /* not inherited by hooks */
	CHECK_INT_EQ(notify_status(n, "watching %s, %d done", "/ckpt", 3), 0);
	CHECK_STR_EQ(recv_msg(fd), "STATUS=watching /ckpt, 3 done");
	CHECK_INT_EQ(notify_ready(n), 0);
	CHECK_STR_EQ(recv_msg(fd), "READY=1");
	CHECK_INT_EQ(notify_watchdog(n), 0);
	CHECK_STR_EQ(recv_msg(fd), "WATCHDOG=1");
	CHECK_INT_EQ(notify_reloading(n), 0);
	m = recv_msg(fd);
	CHECK(!strncmp(m, "RELOADING=1\nMONOTONIC_USEC=", 27));
	mono = strtoull(m + 27, &end, 10);
	CHECK(*end == 0 && mono > 0);
	CHECK_INT_EQ(notify_status(n, "two\nlines"), 0);
	CHECK_STR_EQ(recv_msg(fd), "STATUS=two lines");
	CHECK_INT_EQ(notify_stopping(n), 0);
	CHECK_STR_EQ(recv_msg(fd), "STOPPING=1");
	notify_free(n);
	close(fd);
}

static void test_path_socket(void)
{
	char name[600];

	snprintf(name, sizeof(name), "%s/notify.sock", tap_tmpdir());
	sequence_on(name);
}

static void test_abstract_socket(void)
{
	char name[64];

	snprintf(name, sizeof(name), "@gwtest-notify-%d", (int)getpid());
	sequence_on(name);
}

static void test_no_socket_is_a_no_op(void)
{
	struct notify *n = NULL;
	struct gw_err e;

	unsetenv("NOTIFY_SOCKET");
	CHECK_INT_EQ(notify_new(&n, &e), 0);
	CHECK_INT_EQ(notify_ready(n), 0);
	CHECK_INT_EQ(notify_status(n, "x"), 0);
	notify_free(n);
	notify_free(NULL);
}

static void test_bad_socket(void)
{
	struct notify *n = NULL;
	struct gw_err e;
	char name[600];

	setenv("NOTIFY_SOCKET", "vsock:2:1234", 1);
	CHECK_INT_EQ(notify_new(&n, &e), -EINVAL);
	CHECK_STR_EQ(e.msg, "NOTIFY_SOCKET \"vsock:2:1234\": not an AF_UNIX socket path");
	/* A path nobody listens on: the send fails with an errno. */
	snprintf(name, sizeof(name), "%s/nobody.sock", tap_tmpdir());
	setenv("NOTIFY_SOCKET", name, 1);
	CHECK_INT_EQ(notify_new(&n, &e), 0);
	CHECK_INT_EQ(notify_ready(n), -ENOENT);
	notify_free(n);
}

static void test_watchdog_usec(void)
{
	uint64_t u = 99;
	struct gw_err e;
	char pid[32];

	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	CHECK_INT_EQ(notify_watchdog_usec(&u, &e), 0);
	CHECK_INT_EQ(u, 0);
	setenv("WATCHDOG_USEC", "30000000", 1);
	CHECK_INT_EQ(notify_watchdog_usec(&u, &e), 0);
	CHECK_INT_EQ(u, 30000000);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	CHECK_INT_EQ(notify_watchdog_usec(&u, &e), 0);
	CHECK_INT_EQ(u, 30000000);
	snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
	setenv("WATCHDOG_PID", pid, 1);
	CHECK_INT_EQ(notify_watchdog_usec(&u, &e), 0);
	CHECK_INT_EQ(u, 0);
	unsetenv("WATCHDOG_PID");
	setenv("WATCHDOG_USEC", "30s", 1);
	CHECK_INT_EQ(notify_watchdog_usec(&u, &e), -EINVAL);
	CHECK_STR_EQ(e.msg, "WATCHDOG_USEC \"30s\": not a positive number");
	setenv("WATCHDOG_USEC", "-5", 1);
	CHECK_INT_EQ(notify_watchdog_usec(&u, &e), -EINVAL);
	setenv("WATCHDOG_USEC", "0", 1);
	CHECK_INT_EQ(notify_watchdog_usec(&u, &e), -EINVAL);
}

static const struct tap_test tests[] = {
	{ "path_socket", test_path_socket },
	{ "abstract_socket", test_abstract_socket },
	{ "no_socket_is_a_no_op", test_no_socket_is_a_no_op },
	{ "bad_socket", test_bad_socket },
	{ "watchdog_usec", test_watchdog_usec },
	{ NULL, NULL },
};
TAP_MAIN_DAEMON(tests)
