/*
 * cli.h — what the grokwatch tool's parts share: the parsed command line
 * (struct opts, filled by main.c's parse against the command table), the
 * connection made from it (connect.c) and the command handlers
 * (follow.c: tail, alerts; query.c: status, history, plot; serve.c: serve).
 *
 * A handler runs on the tool's one thread with a connected client it does
 * not own; it writes to stdout only through out.h and returns the exit
 * status: 0 done, 1 a failure (its message on stderr, one line naming the
 * endpoint and what failed), 2 usage.
 */
#ifndef GW_CLI_CLI_H
#define GW_CLI_CLI_H

#include <signal.h>
#include <stdbool.h>

#include "grokwatch.h"
#include "opts.h"

#define STEP_LAST 999999999999999LL /* the daemon's largest step */
#define SERVE_DEFAULT_LISTEN "127.0.0.1:8470"

struct cmd;

/* The parsed line: every option of every command, set through the table.
 * Strings point into argv. */
struct opts {
	struct opt_list endpoints;
	long long timeout_ms;
	const char *server_key_file;
	const struct cmd *cmd;
	bool json, csv, ascii, follow, all, no_band;
	struct opt_list topics, groups;
	long long count;
	const char *metric;
	const char *beside; /* plot: a history CSV drawn beside the chart */
	long long from, to, width, height;
	const char *svg_file;
	/* serve */
	const char *listen;
	bool allow_remote;
	long long max_connections, max_streams, idle_timeout;
};

/* Set (to 1) by main's SIGINT and SIGTERM handler; the follow loop ends at
 * it. */
extern volatile sig_atomic_t cli_interrupted;

/* A client connected to every endpoint of o, with o's timeout and server
 * key; the caller frees it.  NULL with the message printed and
 * *ret_status set (2 for an endpoint that is not one, 1 otherwise). */
struct gw_client *cli_connect(const struct opts *o, int *ret_status);

/* The commands (follow.c). */
int cmd_tail(struct gw_client *c, const struct opts *o);
int cmd_alerts(struct gw_client *c, const struct opts *o);
/* The commands (query.c). */
int cmd_status(struct gw_client *c, const struct opts *o);
int cmd_history(struct gw_client *c, const struct opts *o);
int cmd_plot(struct gw_client *c, const struct opts *o);
/* The command (serve.c). */
int cmd_serve(struct gw_client *c, const struct opts *o);

#endif
