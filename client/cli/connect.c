/*
 * connect.c — the client the line asks for (cli.h): a gw_client with the
 * line's timeout, the daemons' CURVE key read from its file, and a
 * connection to every endpoint, each failure one message on stderr.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static int read_key(const char *path, char key[41])
{
	FILE *f = fopen(path, "r");
	char buf[128];
	size_t n;

	if (!f) {
		fprintf(stderr, "grokwatch: \"%s\": %s\n", path, strerror(errno));
		return -1;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	while (n > 0 && (unsigned char)buf[n - 1] <= 32)
		n--;
	if (n != 40) {
		fprintf(stderr, "grokwatch: \"%s\": not a Z85 CURVE key (40 characters)\n", path);
		return -1;
	}
	memcpy(key, buf, 40);
	key[40] = 0;
	return 0;
}

struct gw_client *cli_connect(const struct opts *o, int *ret_status)
{
	struct gw_client *c;
	char key[41];
	int r;

	*ret_status = 1;

	if ((r = gw_client_new(&c)) < 0) {
		fprintf(stderr, "grokwatch: cannot create a client: %s\n", strerror(-r));
		return NULL;
	}
	gw_client_set_timeout(c, (int)o->timeout_ms);
	if (o->server_key_file &&
	    (read_key(o->server_key_file, key) < 0 || gw_client_set_server_key(c, key) < 0)) {
		if (gw_client_error(c)[0])
			fprintf(stderr, "grokwatch: \"%s\": %s\n", o->server_key_file,
				gw_client_error(c));
		gw_client_free(c);
		return NULL;
	}
	for (int i = 0; i < o->endpoints.n; i++)
		if ((r = gw_client_connect(c, o->endpoints.v[i])) < 0) {
			fprintf(stderr, "grokwatch: %s\n", gw_client_error(c));
			if (r == -EINVAL || r == -ENAMETOOLONG)
				*ret_status = 2;
			gw_client_free(c);
			return NULL;
		}
	return c;
}

