/*
 * main.c — the grokwatch tool: follow grokwatchd daemons from a terminal,
 * over the public API of libgrokwatch only (grokwatch.h).
 *
 * This file is the wiring: the option tables and the command table, from
 * which --help, each COMMAND --help and the parse of the line are made
 * (with opts.h's parser and help pieces); the usage checks across a
 * command's options; main, which parses, connects (connect.c) and runs the
 * command's handler (follow.c, query.c, serve.c).  A new command is a handler and
 * one row of the table.  Exit status: 0 done, 1 a failure (daemon down,
 * timeout, refused request, no data, stdout unwritable), 2 usage.  Errors
 * go to stderr as one line naming the endpoint and what failed.
 */
#include <locale.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "grokwatch.h"
#include "opts.h"
#include "out.h"
#include "plot.h"

#define DEFAULT_ENDPOINT "tcp://127.0.0.1:5557"
#define DEFAULT_TIMEOUT_MS 5000
#define ENDPOINTS_MAX OPT_LIST_MAX
#define TOPICS_MAX 32
#define GROUPS_MAX PLOT_SERIES_MAX
#define STR(x) #x
#define XSTR(x) STR(x)
_Static_assert(TOPICS_MAX <= OPT_LIST_MAX && GROUPS_MAX <= OPT_LIST_MAX,
	       "a repeatable option holds at most OPT_LIST_MAX values");

volatile sig_atomic_t cli_interrupted;

static void on_signal(int sig)
{
	(void)sig;
	cli_interrupted = 1;
}

/* ---- the command table ----------------------------------------------------------- */

/* A command, as git's cmd_struct: its name, handler, a line for
 * `grokwatch --help`, its options (ending with a NULL name), and the
 * usage checks across them. */
struct cmd {
	const char *name;
	int (*run)(struct gw_client *c, const struct opts *o);
	const char *summary;
	const struct opt_def *opts;
	int (*check)(const struct opts *o); /* 0, or 2 with the message printed */
};

#define OFF(field) offsetof(struct opts, field)
#define O_FLAG(n, field, h) { .name = n, .kind = OPT_FLAG, .off = OFF(field), .help = h }
#define O_JSON(h) O_FLAG("json", json, h)
#define O_METRIC                                                                              \
	{ .name = "metric", .kind = OPT_STRING, .off = OFF(metric), .min = 1, .max = 128,       \
	  .required = true, .arg = "M",                                                        \
	  .help = "the metric, a dotted path in a group's result: pathway_distance, "          \
		  "pathway_consistency, loss, memorized.pathway_distance, ..., or a run's "     \
		  "health.overall.imbalance, health.layers.L.dead_experts, churn (required)" }
#define O_GROUP(nm, h)                                                                        \
	{ .name = "group", .kind = OPT_LIST, .off = OFF(groups), .min = 1, .max = 128,          \
	  .nmax = nm, .arg = "G", .help = h }
#define O_STEP(n, field, h)                                                                   \
	{ .name = n, .kind = OPT_INT, .off = OFF(field), .min = 0, .max = STEP_LAST,            \
	  .arg = "STEP", .unit = "a step", .help = h }

static const struct opt_def global_opts[] = {
	{ .name = "endpoint", .letter = 'e', .kind = OPT_LIST, .off = OFF(endpoints),
	  .nmax = ENDPOINTS_MAX, .arg = "ENDPOINT",
	  .help = "a daemon: tcp://HOST:PORT (queries on PORT+1) or PUB,QUERY; repeat for "
		  "several (default " DEFAULT_ENDPOINT ")" },
	{ .name = "timeout", .kind = OPT_INT, .off = OFF(timeout_ms), .min = 1, .max = 86400000,
	  .arg = "MS", .unit = "milliseconds",
	  .help = "how long to wait for a daemon (default " XSTR(DEFAULT_TIMEOUT_MS) ")" },
	{ .name = "server-key", .kind = OPT_STRING, .off = OFF(server_key_file), .arg = "FILE",
	  .help = "the daemons' CURVE public key (Z85)" },
	{ .name = "help", .letter = 'h', .kind = OPT_HELP,
	  .help = "this text; grokwatch COMMAND --help for a command's" },
	OPT_END,
};

/* --help after a command: it is global_opts' --help, described for it. */
static const struct opt_def cmd_help_opts[] = {
	{ .name = "help", .letter = 'h', .kind = OPT_HELP, .help = "this text" },
	OPT_END,
};

static const struct opt_def tail_opts[] = {
	O_FLAG("all", all, "status and progress messages too"),
	O_JSON("each message's JSON body, one a line"),
	{ .name = "topic", .kind = OPT_LIST, .off = OFF(topics), .nmax = TOPICS_MAX,
	  .arg = "PREFIX",
	  .help = "only messages whose topic (TYPE.RUN) starts with PREFIX, such as metrics. "
		  "or alert.myrun; repeat for several" },
	{ .name = "count", .kind = OPT_INT, .off = OFF(count), .min = 1, .max = 1000000000,
	  .arg = "N", .unit = "a number of events", .help = "stop after N events" },
	OPT_END,
};

static const struct opt_def status_opts[] = {
	O_JSON("each daemon's snapshot as JSON, one a line"),
	OPT_END,
};

static const struct opt_def history_opts[] = {
	O_METRIC,
	O_GROUP(1, "the probe group (default all)"),
	O_STEP("from", from, "the first step, inclusive"),
	O_STEP("to", to, "the last step, inclusive"),
	O_FLAG("csv", csv, "run,group,metric,step,value lines under a header"),
	O_JSON("the daemon's reply as JSON"),
	OPT_END,
};

static const struct opt_def plot_opts[] = {
	O_METRIC,
	O_GROUP(GROUPS_MAX, "a probe group, one series each; repeat for several (default all)"),
	O_STEP("from", from, "the first step, inclusive"),
	O_STEP("to", to, "the last step, inclusive"),
	{ .name = "width", .kind = OPT_INT, .off = OFF(width), .min = PLOT_WIDTH_MIN,
	  .max = PLOT_WIDTH_MAX, .arg = "N", .unit = "columns",
	  .help = "the chart's width in columns (default: the terminal's)" },
	{ .name = "height", .kind = OPT_INT, .off = OFF(height), .min = 3, .max = 200,
	  .arg = "N", .unit = "rows", .help = "the chart's height in rows (default 15)" },
	O_FLAG("ascii", ascii, "ASCII only (the default outside a UTF-8 locale)"),
	{ .name = "svg", .kind = OPT_STRING, .off = OFF(svg_file), .min = 1, .max = 4096,
	  .arg = "FILE", .help = "write the chart to FILE as an SVG image instead" },
	O_FLAG("no-band", no_band, "no band of one standard error around a metric that has one "
		"(METRIC_se: pathway_distance)"),
	{ .name = "beside", .kind = OPT_STRING, .off = OFF(beside), .min = 1, .arg = "FILE",
	  .help = "also draw the series of FILE, in history --csv's format "
		  "(run,group,metric,step,value), as a chart beside this one (below it when the "
		  "width is under 2 x 30 columns)" },
	OPT_END,
};

static const struct opt_def serve_opts[] = {
	{ .name = "listen", .kind = OPT_STRING, .off = OFF(listen), .min = 3, .max = 300,
	  .arg = "HOST:PORT",
	  .help = "the address to serve HTTP on (default " SERVE_DEFAULT_LISTEN "; port 0: any "
		  "free port)" },
	O_FLAG("allow-remote", allow_remote,
	       "allow a --listen address other than loopback (anyone who can reach it sees the "
	       "metrics; no authentication)"),
	{ .name = "max-connections", .kind = OPT_INT, .off = OFF(max_connections), .min = 8,
	  .max = 100000, .arg = "N", .unit = "connections",
	  .help = "HTTP connections at once (default 1000)" },
	{ .name = "max-streams", .kind = OPT_INT, .off = OFF(max_streams), .min = 1,
	  .max = 100000, .arg = "N", .unit = "streams",
	  .help = "live pages (event streams) at once (default 200)" },
	{ .name = "idle-timeout", .kind = OPT_INT, .off = OFF(idle_timeout), .min = 1,
	  .max = 3600, .arg = "S", .unit = "seconds",
	  .help = "close a connection idle this long (default 30)" },
	OPT_END,
};

static const struct opt_def alerts_opts[] = {
	O_JSON("each alert as JSON, one a line"),
	O_FLAG("follow", follow, "keep following the stream after the catch-up"),
	OPT_END,
};

/* ---- usage checks across a command's options ------------------------------------ */

static int check_steps(const struct opts *o)
{
	if (o->from >= 0 && o->to >= 0 && o->from > o->to)
		return opts_usage_error("--from %lld is after --to %lld", o->from, o->to);
	return 0;
}

static int check_history(const struct opts *o)
{
	if (o->json && o->csv)
		return opts_usage_error("history: --csv or --json, not both");
	return check_steps(o);
}

static const struct cmd commands[] = {
	{ "tail", cmd_tail, "one line per result, alert or error, catching up first", tail_opts,
	  NULL },
	{ "status", cmd_status, "each daemon's state", status_opts, NULL },
	{ "history", cmd_history, "one metric of one group, one step a line", history_opts,
	  check_history },
	{ "plot", cmd_plot, "one metric as a chart in the terminal, a line per group", plot_opts,
	  check_steps },
	{ "alerts", cmd_alerts, "firing and recent alerts, then those that arrive", alerts_opts,
	  NULL },
	{ "serve", cmd_serve, "a live web page, a Prometheus /metrics endpoint and a JSON API",
	  serve_opts, NULL },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

/* ---- help ------------------------------------------------------------------------ */

/* The help of cmd's options, or grokwatch's with the command table's. */
static void help_print(const struct cmd *cmd)
{
	char syn[1024], line[1100];
	int col;

	if (cmd) {
		opts_synopsis(cmd->opts, syn, sizeof(syn));
		col = (int)strlen("usage: grokwatch [OPTIONS] ") + (int)strlen(cmd->name);
		out_printf("usage: grokwatch [OPTIONS] %s", cmd->name);
		opts_help_wrap(syn, col, (int)strlen("usage: grokwatch "), true);
		out_printf("\n");
		opts_help_wrap(cmd->summary, 0, 0, false);
		out_printf("\nOptions:\n");
		opts_help_list(cmd->opts, cmd_help_opts);
		out_printf("\n");
		opts_synopsis(global_opts, syn, sizeof(syn));
		out_printf("OPTIONS are grokwatch's own, anywhere on the line (grokwatch --help):");
		opts_help_wrap(syn, OPTS_HELP_COLUMNS, 2, true);
		return;
	}
	opts_synopsis(global_opts, syn, sizeof(syn));
	snprintf(line, sizeof(line), "%s COMMAND" OPTS_HELP_NBSP "[OPTIONS]", syn);
	out_printf("usage: grokwatch");
	opts_help_wrap(line, (int)strlen("usage: grokwatch"), (int)strlen("usage: grokwatch "),
		       true);
	out_printf("\nFollows grokwatchd daemons: the routing-pathway metrics of MoE pretraining "
		   "runs.\n\nCommands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++) {
		out_printf("  %-9s", commands[i].name);
		opts_help_wrap(commands[i].summary, 11, 11, false);
		opts_synopsis(commands[i].opts, syn, sizeof(syn));
		out_printf("%*s", 11, "");
		opts_help_wrap(syn, 11, 11, false);
	}
	out_printf("\nOptions:\n");
	opts_help_list(global_opts, NULL);
	out_printf("\n"
		   "Metrics are paths inside a group, e.g. pathway_distance, pathway_consistency,\n"
		   "loss, memorized.pathway_distance; groups are the probe set's, plus \"all\".\n"
		   "A value follows its option or an equals sign: --timeout 2000, --timeout=2000.\n"
		   "Exit status: 0 ok, 1 failure (daemon down, timeout, refused), 2 usage.\n");
}

/* ---- parsing --------------------------------------------------------------------- */

/* The line into o: grokwatch's options, the command, then its options and
 * grokwatch's again.  Returns 0, 1 for --help (o->cmd says whose), or 2
 * for a usage error, printed. */
static int parse_args(int argc, char **argv, struct opts *o)
{
	char names[128] = "";
	int r, at, next;

	memset(o, 0, sizeof(*o));
	o->timeout_ms = DEFAULT_TIMEOUT_MS;
	o->from = o->to = GW_STEP_NONE;
	o->count = -1;

	/* Up to the command, the first argument not an option. */
	if ((r = opts_parse(argc, argv, global_opts, NULL, true, NULL, o, &at)) != 0)
		return r;
	if (at == argc) {
		for (size_t i = 0; i < NCOMMANDS; i++)
			snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
				 commands[i].name,
				 i + 2 < NCOMMANDS ? ", " : i + 2 == NCOMMANDS ? " or " : "");
		return opts_usage_error("no command (%s)", names);
	}
	for (size_t i = 0; i < NCOMMANDS && !o->cmd; i++)
		if (!strcmp(argv[at], commands[i].name))
			o->cmd = &commands[i];
	if (!o->cmd)
		return opts_usage_error("unknown command '%s'", argv[at]);

	/* The rest, the command's name as its argv[0]. */
	if ((r = opts_parse(argc - at, argv + at, o->cmd->opts, global_opts, false, o->cmd->name,
			    o, &next)) != 0)
		return r;
	if (next < argc - at)
		return opts_usage_error("unexpected argument '%s'", argv[at + next]);
	if ((r = opts_check_required(o->cmd->opts, o, o->cmd->name)) != 0)
		return r;
	if (o->cmd->check && (r = o->cmd->check(o)) != 0)
		return r;
	if (o->endpoints.n == 0)
		o->endpoints.v[o->endpoints.n++] = DEFAULT_ENDPOINT;
	return 0;
}

/* ---- main ------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	struct sigaction sa;
	struct gw_client *c;
	struct opts o;
	int r;

	setlocale(LC_CTYPE, "");
	/* A reader that has gone shows as EPIPE at the next write. */
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	r = parse_args(argc, argv, &o);
	if (r == 1) {
		help_print(o.cmd);
		return out_finish(0);
	}
	if (r)
		return r;
	/* No SA_RESTART: a signal ends the wait in gw_client_next. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (!(c = cli_connect(&o, &r)))
		return r;
	r = o.cmd->run(c, &o);
	gw_client_free(c);
	return out_finish(r);
}
