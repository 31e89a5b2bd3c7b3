/*
 * endpoint.c — the endpoint checks of endpoint.h: the accepted forms, then
 * the loopback test.  Nothing but <string.h>: the config fuzz target builds
 * it with the engine alone.
 */
#include "endpoint.h"

#include <errno.h>
#include <string.h>

int endpoint_check(const char *v, struct gw_err *err)
{
	if ((strncmp(v, "tcp://", 6) != 0 || !v[6] || !strchr(v + 6, ':')) &&
	    (strncmp(v, "ipc://", 6) != 0 || !v[6]))
		return gw_errf(err, -EINVAL, "\"%s\" is not a tcp://HOST:PORT or ipc://PATH endpoint", v);
	return 0;
}

bool endpoint_is_local(const char *ep)
{
	const char *host, *colon;
	size_t n;

	if (!strncmp(ep, "ipc://", 6) || !strncmp(ep, "inproc://", 9))
		return true;
	if (strncmp(ep, "tcp://", 6) != 0)
		return false;
	host = ep + 6;
	colon = strrchr(host, ':');
	if (!colon)
		return false;
	n = (size_t)(colon - host);
	if (n == 5 && !memcmp(host, "[::1]", 5))
		return true;
	if (n == 9 && !memcmp(host, "localhost", 9))
		return true;
	if (n < 4 || memcmp(host, "127.", 4) != 0)
		return false;
	/* 127.a.b.c: digits and dots only, so "127.example.com" is not local. */
	for (size_t i = 4; i < n; i++)
		if (!(host[i] == '.' || (host[i] >= '0' && host[i] <= '9')))
			return false;
	return true;
}
