/*
 * notify.c — sd_notify as a plain datagram (notify.h): parsing
 * $NOTIFY_SOCKET into a sockaddr_un once, then one sendto per message;
 * and the watchdog variables.
 */
#include "notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define STATUS_MAX 1024

struct notify {
	int fd; /* -1 = no NOTIFY_SOCKET: sends do nothing */
	struct sockaddr_un addr;
	socklen_t addr_len;
};

int notify_new(struct notify **ret_notify, struct gw_err *err)
{
	const char *e = getenv("NOTIFY_SOCKET");
	struct notify *n = gw_calloc(1, sizeof(*n));
	size_t len;

	n->fd = -1;
	if (!e || !*e) {
		*ret_notify = n;
		return 0;
	}
	len = strlen(e);
	if ((e[0] != '/' && e[0] != '@') || len < 2 || len >= sizeof(n->addr.sun_path)) {
		int r = gw_errf(err, -EINVAL, "NOTIFY_SOCKET \"%.200s\": not an AF_UNIX socket path", e);

		free(n);
		return r;
	}
	n->addr.sun_family = AF_UNIX;
	memcpy(n->addr.sun_path, e, len);
	if (e[0] == '@')
		n->addr.sun_path[0] = 0; /* abstract namespace: no NUL terminator counted */
	n->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (e[0] == '/'));
	n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (n->fd < 0) {
		int r = gw_errf(err, -errno, "NOTIFY_SOCKET: socket: %s", strerror(errno));

		free(n);
		return r;
	}
	unsetenv("NOTIFY_SOCKET");
	*ret_notify = n;
	return 0;
}

void notify_free(struct notify *n)
{
	if (!n)
		return;
	if (n->fd >= 0)
		close(n->fd);
	free(n);
}

int notify_send(struct notify *n, const char *state)
{
	ssize_t r;

	if (!n || n->fd < 0)
		return 0;
	/* Never wait: a datagram socket whose reader has fallen behind (ten
	 * queued messages by default) would block the loop; a status line
	 * dropped then (-EAGAIN) is soon replaced by the next. */
	do
		r = sendto(n->fd, state, strlen(state), MSG_NOSIGNAL | MSG_DONTWAIT,
			   (struct sockaddr *)&n->addr, n->addr_len);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : 0;
}

int notify_ready(struct notify *n)
{
	return notify_send(n, "READY=1");
}

int notify_reloading(struct notify *n)
{
	struct timespec ts;
	char buf[64];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(buf, sizeof(buf), "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
	return notify_send(n, buf);
}

int notify_stopping(struct notify *n)
{
	return notify_send(n, "STOPPING=1");
}

int notify_watchdog(struct notify *n)
{
	return notify_send(n, "WATCHDOG=1");
}

int notify_status(struct notify *n, const char *fmt, ...)
{
	char buf[STATUS_MAX];
	va_list ap;

	memcpy(buf, "STATUS=", 7);
	va_start(ap, fmt);
	vsnprintf(buf + 7, sizeof(buf) - 7, fmt, ap);
	va_end(ap);
	for (char *c = buf; *c; c++)
		if (*c == '\n')
			*c = ' ';
	return notify_send(n, buf);
}

static int parse_u64(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	if (!s || !(*s >= '0' && *s <= '9'))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v == 0)
		return -EINVAL;
	*ret = v;
	return 0;
}

int notify_watchdog_usec(uint64_t *ret_usec, struct gw_err *err)
{
	const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	uint64_t u, p;

	if (!usec || !*usec) {
		*ret_usec = 0;
		return 0;
	}
	if (parse_u64(usec, &u) < 0)
		return gw_errf(err, -EINVAL, "WATCHDOG_USEC \"%.40s\": not a positive number", usec);
	if (pid && *pid) {
		if (parse_u64(pid, &p) < 0)
			return gw_errf(err, -EINVAL, "WATCHDOG_PID \"%.40s\": not a process id", pid);
		if (p != (uint64_t)getpid()) {
			*ret_usec = 0; /* meant for another process */
			return 0;
		}
	}
	*ret_usec = u;
	return 0;
}
