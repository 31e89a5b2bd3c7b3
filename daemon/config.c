/*
 * config.c — the configuration table and its reader (config.h).
 *
 * In order: the checks some string keys need; the table and its sections;
 * storing, freeing, comparing and exchanging a value by its table row; the
 * walk that reads a cJSON tree through the table, with the line of each
 * value from engine/json.h's pre-scan; the checks between keys; and the
 * entry points (parse, load, diff, reload).  The documentation the table
 * generates is config_doc.c's.
 *
 * The fuzz target tests/fuzz/fuzz_daemon_config.c #includes this file, so it
 * must build against the engine sources and endpoint.c alone (no libuv, no
 * ZeroMQ, no daemon module).
 */
#include "config.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "endpoint.h"
#include "engine/file.h"
#include "engine/json.h"
#include "engine/levenshtein.h"
#include "engine/metrics.h"
#include "engine/probe.h"
#include "engine/step.h"

#define PATH_BUF 320 /* a key path in a message, with array indices */

/* ---- checks of string values -------------------------------------------- */

static int check_name(const char *v, struct gw_err *err)
{
	for (const char *c = v; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
		      *c == '.' || *c == '_' || *c == '-'))
			return gw_errf(err, -EINVAL, "\"%s\" may hold only letters, digits, '.', '_' and '-'",
				       v);
	return 0;
}

/* An Alertmanager base URL: http or https, no query or fragment (the
 * sender appends /api/v2/alerts). */
static int check_am_url(const char *v, struct gw_err *err)
{
	if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0)
		return gw_errf(err, -EINVAL, "\"%s\" is not an http:// or https:// URL", v);
	if (strpbrk(v, "?# \t\r\n"))
		return gw_errf(err, -EINVAL, "\"%s\": a base URL has no query, fragment or spaces", v);
	return 0;
}

static int check_pattern(const char *v, struct gw_err *err)
{
	return step_pattern_check(v, err);
}

/* A marker is a path relative to the checkpoint directory that stays in it. */
static int check_marker(const char *v, struct gw_err *err)
{
	if (v[0] == '/')
		return gw_errf(err, -EINVAL, "\"%s\" must be relative to the checkpoint directory", v);
	for (const char *c = v; (c = strstr(c, "..")); c += 2)
		if ((c == v || c[-1] == '/') && (c[2] == 0 || c[2] == '/'))
			return gw_errf(err, -EINVAL, "\"%s\" must not leave the checkpoint directory", v);
	return 0;
}

/* A metric path under result.groups[<group>]: names of letters, digits
 * and '_', joined by single dots ("loss", "memorized.pathway_distance"). */
static int check_metric(const char *v, struct gw_err *err)
{
	bool start = true;

	for (const char *c = v; *c; c++) {
		if (*c == '.' && !start) {
			start = true;
			continue;
		}
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '_'))
			return gw_errf(err, -EINVAL,
				       "\"%s\" is not a metric path (names of letters, digits and '_' "
				       "joined by dots)", v);
		start = false;
	}
	if (start)
		return gw_errf(err, -EINVAL, "\"%s\" is not a metric path (empty name)", v);
	return 0;
}

/* The alert names hooks may name; alert.h defines them. */
static int check_hook_alert(const char *v, struct gw_err *err)
{
	static const char *const names[] = { "*", "plateau", "grokking", "generalization_saturated",
					     "routing_collapse", NULL };

	for (int i = 0; names[i]; i++)
		if (!strcmp(v, names[i]))
			return 0;
	return gw_errf(err, -EINVAL,
		       "\"%s\" is not an alert name (plateau, grokking, generalization_saturated, "
		       "routing_collapse, or * for all)", v);
}

/* ---- the table ----------------------------------------------------------- */

const char *const config_watch_modes[] = { "auto", "events", "poll", NULL };
const char *const config_probe_formats[] = { "jsonl", "u16", "u32", NULL };
const char *const config_log_levels[] = { "error", "warn", "info", "debug", NULL };
const char *const config_plateau_modes[] = { "min", "max", NULL };
const char *const config_threshold_modes[] = { "rel", "abs", "se", NULL };

#define OFF(field) offsetof(struct config, field)
#define MS_DAY 86400000.0
#define EXACT_INT 9007199254740992.0 /* 2^53: every integer up to it is exact in JSON */

static const struct config_key epsilon_fields[] = {
	{ .path = "group", .type = CONFIG_STRING, .offset = offsetof(struct config_epsilon, group),
	  .min = 1, .max = PROBE_GROUP_MAX - 1, .help = "probe group name",
	  .doc = "A probe group name." },
	{ .path = "epsilon", .type = CONFIG_DOUBLE,
	  .offset = offsetof(struct config_epsilon, epsilon), .min = 0, .max = 100,
	  .word = "auto", .word_value = METRICS_EPSILON_AUTO,
	  .help = "memorization loss threshold for this group, in nats, or \"auto\"",
	  .doc = "That group's threshold, in nats, or\n"
		".B \"auto\"\n"
		"(as for\n"
		".BR metrics.epsilon )." },
	{ .path = NULL },
};

#define OFF_PL(field) offsetof(struct config_plateau, field)
static const struct config_key plateau_fields[] = {
	{ .path = "metric", .type = CONFIG_STRING, .offset = OFF_PL(metric), .min = 1, .max = 128,
	  .check = check_metric, .help = "metric path under result.groups[<group>]",
	  .doc = "A dotted path in a group's result." },
	{ .path = "mode", .type = CONFIG_ENUM, .offset = OFF_PL(mode), .def_str = "min",
	  .enums = config_plateau_modes, .help = "min: improving = falling; max: rising",
	  .doc = ".B min\n"
		"when lower is better,\n"
		".B max\n"
		"when higher is." },
	{ .path = "threshold", .type = CONFIG_DOUBLE, .offset = OFF_PL(threshold), .min = 0,
	  .max = 1e9, .help = "least change that counts as an improvement of the best value",
	  .doc = "The least change that counts as an improvement of the best value." },
	{ .path = "threshold_mode", .type = CONFIG_ENUM, .offset = OFF_PL(threshold_mode),
	  .def_str = "rel", .enums = config_threshold_modes, .help = "rel, abs or se",
	  .doc = ".B rel\n"
		"compares with best \\(mu (1 \\- threshold) in mode min, best \\(mu (1 + threshold)\n"
		"in mode max;\n"
		".B abs\n"
		"with best \\- threshold or best + threshold;\n"
		".B se\n"
		"with best \\- threshold \\(mu se or best + threshold \\(mu se, se being the\n"
		"standard error of the difference, for a metric that has one\n"
		"(see\n"
		".BR alerts.loss.threshold_mode )." },
	{ .path = "patience", .type = CONFIG_INT, .offset = OFF_PL(patience), .min = 0,
	  .max = 1000000, .help = "checkpoints without improvement tolerated",
	  .doc = "Checkpoints without improvement tolerated; one more starts a plateau." },
	{ .path = "cooldown", .type = CONFIG_INT, .offset = OFF_PL(cooldown), .min = 0,
	  .max = 1000000, .help = "checkpoints after a plateau starts that are not counted",
	  .doc = "Checkpoints after a plateau starts during which none is counted." },
	{ .path = "min_checkpoints", .type = CONFIG_INT, .offset = OFF_PL(min_checkpoints),
	  .min = 0, .max = 10000000, .help = "checkpoints with a value before judging",
	  .doc = "Values needed before the metric is judged at all, as for\n"
		".BR alerts.loss ." },
	{ .path = NULL },
};

static const struct config_key hook_fields[] = {
	{ .path = "alert", .type = CONFIG_STRING, .offset = offsetof(struct config_hook, alert),
	  .min = 1, .max = 64, .check = check_hook_alert,
	  .help = "alert name whose transitions run the hook, or \"*\"",
	  .doc = ".BR plateau ,\n"
		".BR grokking ,\n"
		".BR generalization_saturated ,\n"
		".BR routing_collapse ,\n"
		"or\n"
		".B *\n"
		"for all." },
	{ .path = "argv", .type = CONFIG_STRING_ARRAY,
	  .offset = offsetof(struct config_hook, argv), .min = 1, .max = 256,
	  .help = "program and arguments, run without a shell",
	  .doc = "The program and its arguments, run without a shell, in a session of its\n"
		"own; a name without\n"
		".B /\n"
		"is looked up in the daemon's\n"
		".B PATH\n"
		"(or\n"
		".IR /usr/local/bin:/usr/bin:/bin ).\n"
		"Its environment holds only the variables above and\n"
		".BR PATH .\n"
		"A hook that fails, cannot start or times out is logged and reported in an\n"
		".B error\n"
		"message." },
	{ .path = NULL },
};

#define OFF_LOSS(field) OFF(alerts.loss.field)
#define OFF_DIST(field) OFF(alerts.distance.field)

const struct config_key config_keys[] = {
	{ .path = "run", .type = CONFIG_STRING, .offset = OFF(run), .max = 128, .check = check_name,
	  .help = "run name carried by every message; empty = the last component of watch.root",
	  .doc = "The run name carried in every message's topic\n"
		".RI ( type . run )\n"
		"and body.\n"
		"Letters, digits,\n"
		".BR . ,\n"
		".B _\n"
		"and\n"
		".B \\-\n"
		"only.\n"
		"Empty: the last component of\n"
		".BR watch.root ." },
	{ .path = "state_dir", .type = CONFIG_STRING, .offset = OFF(state_dir),
	  .def_str = "/var/lib/grokwatch", .min = 1,
	  .help = "directory for the journal, state files and kept routing vectors",
	  .doc = "Directory for the journal, the state files and the kept routing vectors\n"
		"(see\n"
		".BR grokwatchd (8),\n"
		".BR \"STATE DIRECTORY\" ).\n"
		"It is created if missing, one level only: its parent must exist.\n"
		"Two daemons cannot share one: the second stops with a message." },
	{ .path = "log_level", .type = CONFIG_ENUM, .offset = OFF(log_level), .def_str = "info",
	  .enums = config_log_levels, .reload = true, .help = "error, warn, info or debug",
	  .doc = "Messages below this level are not written to standard error." },

	{ .path = "watch.root", .type = CONFIG_STRING, .offset = OFF(watch.root),
	  .help = "directory the trainer writes checkpoints into (required to run)",
	  .doc = "The directory the trainer writes checkpoints into, one subdirectory each.\n"
		"Required to run." },
	{ .path = "watch.patterns", .type = CONFIG_STRING_ARRAY, .offset = OFF(watch.patterns),
	  .def_strv = step_default_patterns, .min = 1, .max = 32, .check = check_pattern,
	  .help = "checkpoint directory names, each with one {step} and any '*'; first match wins",
	  .doc = "Names of checkpoint directories.\n"
		"Each pattern has exactly one\n"
		".B {step}\n"
		"(one or more decimal digits, the training step) and any number of\n"
		".B *\n"
		"(any run of characters), matched against the whole name:\n"
		".B step{step}\\-tokens*\n"
		"matches\n"
		".BR step10000\\-tokens41B .\n"
		"The first pattern that matches gives the step; a directory that none\n"
		"matches is not a checkpoint." },
	{ .path = "watch.step_from_trainer_state", .type = CONFIG_BOOL,
	  .offset = OFF(watch.step_from_trainer_state), .def_num = 1,
	  .help = "take the step from trainer_state.json global_step where present",
	  .doc = "Where a checkpoint holds\n"
		".IR trainer_state.json ,\n"
		"take the step from its\n"
		".B global_step\n"
		"instead of from the name." },
	{ .path = "watch.marker", .type = CONFIG_STRING, .offset = OFF(watch.marker), .max = 255,
	  .check = check_marker,
	  .help = "file that must exist in a checkpoint before it counts as complete; empty = none",
	  .doc = "A file, relative to the checkpoint directory and inside it, that must exist\n"
		"before the checkpoint counts as complete (for example a trainer's\n"
		".IR .done ).\n"
		"Empty: none.\n"
		"Either way a checkpoint is complete only when every file its index names\n"
		"exists and each safetensors file is as long as its header says." },
	{ .path = "watch.quiet_period_ms", .type = CONFIG_INT, .offset = OFF(watch.quiet_period_ms),
	  .def_num = 5000, .min = 0, .max = MS_DAY, .reload = true,
	  .help = "nothing under a checkpoint may change for this long before it is read",
	  .doc = "Nothing under a checkpoint may change for this long before it is read." },
	{ .path = "watch.mode", .type = CONFIG_ENUM, .offset = OFF(watch.mode), .def_str = "auto",
	  .enums = config_watch_modes,
	  .help = "events (inotify), poll (stat polling) or auto (poll on NFS, Lustre, FUSE, CIFS)",
	  .doc = "How changes are noticed:\n"
		".B events\n"
		"with inotify,\n"
		".B poll\n"
		"by\n"
		".BR stat (2)\n"
		"every\n"
		".BR watch.poll_interval_ms ,\n"
		".B auto\n"
		"by polling on file systems where inotify is silent (NFS, Lustre, FUSE, CIFS)\n"
		"and events elsewhere." },
	{ .path = "watch.poll_interval_ms", .type = CONFIG_INT, .offset = OFF(watch.poll_interval_ms),
	  .def_num = 2000, .min = 100, .max = 3600000, .help = "stat polling interval",
	  .doc = "The polling interval." },

	{ .path = "probe.path", .type = CONFIG_STRING, .offset = OFF(probe.path),
	  .help = "probe set file; empty = only checkpoints holding routing.safetensors are computed",
	  .doc = "The probe set file.\n"
		"Without it only checkpoints that hold a\n"
		".I routing.safetensors\n"
		"file can be computed, and the daemon says so at start." },
	{ .path = "probe.format", .type = CONFIG_ENUM, .offset = OFF(probe.format),
	  .def_str = "jsonl", .enums = config_probe_formats,
	  .help = "jsonl, or u16 / u32 raw little-endian token memmaps",
	  .doc = ".B jsonl\n"
		"is one sample a line,\n"
		".BR \"{\\(dqtokens\\(dq: [int, ...], \\(dqgroup\\(dq: \\(dqmath\\(dq, \\(dqid\\(dq: \\(dqoptional\\(dq}\" ;\n"
		".B u16\n"
		"and\n"
		".B u32\n"
		"are headerless little\\-endian token memmaps as OLMo and Dolma write them,\n"
		"cut into samples by the next four keys." },
	{ .path = "probe.sample_length", .type = CONFIG_INT, .offset = OFF(probe.sample_length),
	  .def_num = 512, .min = 1, .max = PROBE_SAMPLE_MAX, .help = "tokens a sample (memmaps)",
	  .doc = "Tokens a sample, for memmaps." },
	{ .path = "probe.count", .type = CONFIG_INT, .offset = OFF(probe.count), .def_num = 64,
	  .min = 1, .max = PROBE_SAMPLES_MAX, .help = "samples cut from a memmap",
	  .doc = "Samples cut from a memmap." },
	{ .path = "probe.offset", .type = CONFIG_INT, .offset = OFF(probe.offset), .def_num = 0,
	  .min = 0, .max = EXACT_INT, .help = "first token of the first sample (memmaps)",
	  .doc = "The first token of the first sample, for memmaps." },
	{ .path = "probe.group", .type = CONFIG_STRING, .offset = OFF(probe.group),
	  .def_str = "default", .min = 1, .max = PROBE_GROUP_MAX - 1,
	  .help = "group name of memmap samples",
	  .doc = "The group name of memmap samples." },

	{ .path = "metrics.tau", .type = CONFIG_DOUBLE, .offset = OFF(metrics.tau), .def_num = 0.7,
	  .min = 1e-6, .max = 1, .help = "routing mass a pathway keeps per layer",
	  .doc = "The routing mass a pathway keeps per layer: the shortest prefix of the\n"
		"experts, by descending mean routing weight, that sums to at least tau." },
	{ .path = "metrics.pair_budget", .type = CONFIG_INT, .offset = OFF(metrics.pair_budget),
	  .def_num = 2000000, .min = 1, .max = (double)LEV_MAX_BUDGET,
	  .help = "sample pairs per group beyond which pathway distance is estimated from a sample",
	  .doc = "Sample pairs per group up to which the pathway distance is the exact mean\n"
		"over all pairs; above it, the mean over a fixed\\-seed uniform sample of this\n"
		"many pairs, reported with its standard error." },
	{ .path = "metrics.seed", .type = CONFIG_INT, .offset = OFF(metrics.seed), .def_num = 0,
	  .min = 0, .max = EXACT_INT, .help = "seed of the pair sample",
	  .doc = "The seed of that pair sample (0: a built\\-in one)." },
	{ .path = "metrics.epsilon", .type = CONFIG_DOUBLE, .offset = OFF(metrics.epsilon),
	  .def_num = 1.0, .min = 0, .max = 100, .word = "auto", .word_value = METRICS_EPSILON_AUTO,
	  .help = "loss (nats) at or below which a sample may count as memorized, or \"auto\"",
	  .doc = "The loss, in nats, at or below which a sample may count as memorized, or\n"
		".B \"auto\"\n"
		"to choose it per group as the paper does: the smallest multiple of 0.1\n"
		"nats at which the share\n"
		".RB ( metrics.memorized_share )\n"
		"of the group's samples are memorized at the latest checkpoint.\n"
		"The epsilon used is published with each memorized subset, and an auto one\n"
		"moves with the latest checkpoint." },
	{ .path = "metrics.epsilon_groups", .type = CONFIG_OBJECT_ARRAY,
	  .offset = OFF(metrics.epsilon_groups), .max = 1024, .fields = epsilon_fields,
	  .elem_size = sizeof(struct config_epsilon),
	  .help = "per-group epsilon: [{\"group\": \"math\", \"epsilon\": 0.5}, ...]",
	  .doc = "Per\\-group thresholds that override\n"
		".BR metrics.epsilon ,\n"
		"each an object with both members below, each group at most once:\n"
		".B [{\"group\": \"math\", \"epsilon\": 0.5}]" },
	{ .path = "metrics.delta", .type = CONFIG_DOUBLE, .offset = OFF(metrics.delta),
	  .def_num = 0.05, .min = 0, .max = 100,
	  .help = "a memorized sample's loss stays within delta of its latest value",
	  .doc = "A sample is memorized at a checkpoint when, at every checkpoint from that\n"
		"one to the latest, its loss is at most its epsilon and within delta of its\n"
		"value at the latest checkpoint." },
	{ .path = "metrics.memorized_share", .type = CONFIG_DOUBLE,
	  .offset = OFF(metrics.memorized_share), .def_num = METRICS_MEMORIZED_SHARE_DEFAULT,
	  .min = 0.001, .max = 1,
	  .help = "share of a group's samples an \"auto\" epsilon memorizes at the latest checkpoint",
	  .doc = "With\n"
		".B metrics.epsilon\n"
		"(or a group's) set to\n"
		".BR \"auto\" ,\n"
		"the share of the group's samples memorized at the latest checkpoint (the\n"
		"paper aims at 20 to 25%)." },
	{ .path = "metrics.consistency_floor", .type = CONFIG_DOUBLE,
	  .offset = OFF(metrics.consistency_floor), .def_num = METRICS_CONSISTENCY_FLOOR,
	  .min = 0, .max = 0.5,
	  .help = "a sample whose largest adjacent cosine is at or below this has no consistency",
	  .doc = "A sample whose largest adjacent\\-layer cosine is at or below this has no\n"
		"consistency: near zero the ratio mean/max explodes on float noise.\n"
		"Such samples are left out and counted\n"
		".RB ( n_undefined ).\n"
		"Applies to checkpoints computed after a change; the kept ones keep theirs." },
	{ .path = "metrics.per_layer_distance", .type = CONFIG_BOOL,
	  .offset = OFF(metrics.per_layer_distance), .def_num = 1,
	  .help = "compute each set's pathway distance per layer as well (a diagnostic)",
	  .doc = "Compute the pathway distance of each group and of\n"
		".B all\n"
		"per MoE layer as well\n"
		".RB ( per_layer_distance ,\n"
		"over the same pairs).\n"
		"A diagnostic; off, it is null and the work is the whole\\-pathway distance\n"
		"alone." },

	{ .path = "publish.endpoint", .type = CONFIG_STRING, .offset = OFF(publish.endpoint),
	  .def_str = "tcp://127.0.0.1:5557", .max = 256, .check = endpoint_check,
	  .help = "ZeroMQ PUB endpoint",
	  .doc = "The PUB socket's endpoint:\n"
		".BI tcp:// HOST : PORT\n"
		"or\n"
		".BI ipc:// PATH\\fR.\\fP" },
	{ .path = "publish.query_endpoint", .type = CONFIG_STRING,
	  .offset = OFF(publish.query_endpoint), .def_str = "tcp://127.0.0.1:5558", .max = 256,
	  .check = endpoint_check, .help = "ZeroMQ ROUTER endpoint for snapshot and history",
	  .doc = "The ROUTER socket answering snapshot and history queries; not the same as\n"
		".BR publish.endpoint .\n"
		"Daemons on one host need endpoints of their own." },
	{ .path = "publish.sndhwm", .type = CONFIG_INT, .offset = OFF(publish.sndhwm),
	  .def_num = 10000, .min = 1, .max = 10000000,
	  .help = "messages queued per subscriber before it misses some",
	  .doc = "Messages queued per subscriber; past it that subscriber misses messages\n"
		"and sees the gap in\n"
		".BR seq ." },
	{ .path = "publish.max_message_bytes", .type = CONFIG_INT,
	  .offset = OFF(publish.max_message_bytes), .def_num = 4194304, .min = 4096,
	  .max = 268435456, .help = "a larger message is replaced by an error message",
	  .doc = "A message body larger than this is not sent; an\n"
		".B error\n"
		"message takes its place." },
	{ .path = "publish.heartbeat_ms", .type = CONFIG_INT, .offset = OFF(publish.heartbeat_ms),
	  .def_num = 5000, .min = 100, .max = 3600000, .reload = true,
	  .help = "heartbeat interval",
	  .doc = "The heartbeat interval." },
	{ .path = "publish.allow_insecure_remote", .type = CONFIG_BOOL,
	  .offset = OFF(publish.allow_insecure_remote), .def_num = 0,
	  .help = "allow a non-loopback endpoint without CURVE",
	  .doc = "Allow an endpoint that is not loopback\n"
		".RB ( 127.0.0.0/8 ,\n"
		".BR [::1] ,\n"
		".BR localhost ,\n"
		"or\n"
		".BR ipc:// )\n"
		"without CURVE." },
	{ .path = "publish.curve.server_secret_key_file", .type = CONFIG_STRING,
	  .offset = OFF(publish.curve.server_secret_key_file),
	  .help = "file holding the server's Z85 secret key; empty = CURVE off",
	  .doc = "A file holding the server's Z85 secret key (40 characters); both sockets\n"
		"become CURVE servers.\n"
		"Empty: CURVE off.\n"
		"Under systemd, pass the file with\n"
		".B LoadCredential=\n"
		"and name\n"
		".IR /run/credentials/ UNIT / NAME\n"
		"here (see\n"
		".BR grokwatchd (8))." },
	{ .path = "publish.curve.server_public_key_file", .type = CONFIG_STRING,
	  .offset = OFF(publish.curve.server_public_key_file),
	  .help = "file holding the server's Z85 public key, checked against the secret key",
	  .doc = "A file holding the server's Z85 public key, checked against the secret key.\n"
		"Empty: not checked." },

	{ .path = "threads.blas", .type = CONFIG_INT, .offset = OFF(threads.blas), .def_num = 0,
	  .min = 0, .max = 1024, .help = "OpenBLAS threads; 0 = CPUs - 1, at least 1",
	  .doc = "OpenBLAS threads for the forward pass; 0: the CPUs less one, at least 1." },

	{ .path = "jobs.max_retries", .type = CONFIG_INT, .offset = OFF(jobs.max_retries),
	  .def_num = 3, .min = 0, .max = 1000, .reload = true,
	  .help = "retries of a failed checkpoint before it is recorded as failed",
	  .doc = "Retries of a checkpoint that failed before it is recorded as failed." },
	{ .path = "jobs.retry_backoff_ms", .type = CONFIG_INT, .offset = OFF(jobs.retry_backoff_ms),
	  .def_num = 5000, .min = 0, .max = MS_DAY, .reload = true,
	  .help = "wait before the first retry; doubled for each further one",
	  .doc = "The wait before the first retry, doubled for each further one." },
	{ .path = "jobs.retry_backoff_max_ms", .type = CONFIG_INT,
	  .offset = OFF(jobs.retry_backoff_max_ms), .def_num = 300000, .min = 0, .max = MS_DAY,
	  .reload = true, .help = "longest wait between retries",
	  .doc = "The longest wait between retries; at least\n"
		".BR jobs.retry_backoff_ms ." },

	{ .path = "limits.queue_depth", .type = CONFIG_INT, .offset = OFF(limits.queue_depth),
	  .def_num = 4096, .min = 1, .max = 1000000, .reload = true,
	  .help = "checkpoints waiting to be computed",
	  .doc = "Checkpoints waiting to be computed." },
	{ .path = "limits.request_bytes", .type = CONFIG_INT, .offset = OFF(limits.request_bytes),
	  .def_num = 65536, .min = 256, .max = 16777216,
	  .help = "largest query request; a larger one drops the connection",
	  .doc = "The largest query request; a larger one drops the connection." },
	{ .path = "limits.reply_bytes", .type = CONFIG_INT, .offset = OFF(limits.reply_bytes),
	  .def_num = 67108864, .min = 4096, .max = 1073741824, .reload = true,
	  .help = "largest query reply; a larger one is refused with an error reply",
	  .doc = "The largest query reply; a larger one is refused with an error reply\n"
		"(narrow the query's step range)." },
	{ .path = "limits.journal_line_bytes", .type = CONFIG_INT,
	  .offset = OFF(limits.journal_line_bytes), .def_num = 16777216, .min = 4096,
	  .max = 268435456, .help = "largest journal record",
	  .doc = "The largest journal record." },
	{ .path = "limits.journal_bytes", .type = CONFIG_INT, .offset = OFF(limits.journal_bytes),
	  .def_num = 4294967296.0, .min = 1048576, .max = 1099511627776.0,
	  .help = "largest journal file; appends beyond it fail",
	  .doc = "The largest journal file; appends beyond it fail." },
	{ .path = "limits.checkpoints", .type = CONFIG_INT, .offset = OFF(limits.checkpoints),
	  .def_num = 100000, .min = 1, .max = 10000000,
	  .help = "entries read from the watched directory",
	  .doc = "Entries read from the watched directory." },
	{ .path = "limits.connections", .type = CONFIG_INT, .offset = OFF(limits.connections),
	  .def_num = 1024, .min = 1, .max = 1000000,
	  .help = "connections each endpoint accepts; more are closed at once",
	  .doc = "Connections each of the two endpoints accepts at once; further ones are\n"
		"closed as they arrive, so that no local user can exhaust the daemon's file\n"
		"descriptors.  It is lowered at start to leave room under the open file\n"
		"limit (the units set\n"
		".BR LimitNOFILE=65536 )." },
	{ .path = "limits.shutdown_ms", .type = CONFIG_INT, .offset = OFF(limits.shutdown_ms),
	  .def_num = 10000, .min = 0, .max = 600000, .reload = true,
	  .help = "how long a stop waits for the running job before abandoning it",
	  .doc = "How long a stop waits for the running checkpoint before abandoning it.\n"
		"Keep it below the unit's\n"
		".B TimeoutStopSec=\n"
		"(60 s in the shipped units), after which systemd kills the daemon." },

	{ .path = "alerts.enabled", .type = CONFIG_BOOL, .offset = OFF(alerts.enabled),
	  .def_num = 1, .help = "evaluate alerts as results land",
	  .doc = "Judge alerts as results land." },
	{ .path = "alerts.groups", .type = CONFIG_STRING_ARRAY, .offset = OFF(alerts.groups),
	  .max = 1024, .help = "probe groups to judge; empty = every group of the latest result "
			       "(\"all\" too, unless there is only one other group)",
	  .doc = "The probe groups judged.\n"
		"Empty: every group of the latest result, and\n"
		".B all\n"
		"unless there is only one other group." },
/* alerts.loss and alerts.distance: the same six keys.  LOSS_DOC is the
 * man-page prose of a loss key; distance's are "As alerts.loss.KEY". */
#define PLATEAU_SECTION(SECTION, OFFSET, METRIC, WHAT, METRIC_DOC, DOC) \
	{ .path = "alerts." SECTION ".metric", .type = CONFIG_STRING, .offset = OFFSET(metric), \
	  .def_str = METRIC, .min = 1, .max = 128, .check = check_metric, \
	  .help = "metric path under result.groups[<group>] of " WHAT, .doc = METRIC_DOC }, \
	{ .path = "alerts." SECTION ".threshold", .type = CONFIG_DOUBLE, \
	  .offset = OFFSET(threshold), .def_num = 0.01, .min = 0, .max = 1e9, \
	  .help = "least fall that counts as an improvement of the best value", \
	  .doc = DOC("threshold", "The least fall that counts as an improvement of the best value.") }, \
	{ .path = "alerts." SECTION ".threshold_mode", .type = CONFIG_ENUM, \
	  .offset = OFFSET(threshold_mode), .def_str = "rel", .enums = config_threshold_modes, \
	  .help = "rel: better below best * (1 - threshold); abs: below best - threshold; " \
		  "se: below best - threshold * standard error", \
	  .doc = DOC("threshold_mode", ".B rel\ncompares with best \\(mu (1 \\- threshold),\n" \
		     ".B abs\nwith best \\- threshold,\n" \
		     ".B se\nwith best \\- threshold \\(mu se: se is the standard error of the\n" \
		     "difference, sqrt(se(x)\\(ha2 + se(best)\\(ha2), each from the metric's\n" \
		     ".I name\\fB_se\\fP\n" \
		     "beside it in the result (for\n" \
		     ".B pathway_distance\n" \
		     "and\n" \
		     ".BR memorized.pathway_distance ,\n" \
		     "the jackknife over the probe samples); a checkpoint without it is skipped.\n" \
		     "Only for metrics that have one.") }, \
	{ .path = "alerts." SECTION ".patience", .type = CONFIG_INT, .offset = OFFSET(patience), \
	  .def_num = 5, .min = 0, .max = 1000000, \
	  .help = "checkpoints without improvement tolerated; one more starts a plateau", \
	  .doc = DOC("patience", "Checkpoints without improvement tolerated; one more starts a " \
		     "plateau.") }, \
	{ .path = "alerts." SECTION ".cooldown", .type = CONFIG_INT, .offset = OFFSET(cooldown), \
	  .def_num = 2, .min = 0, .max = 1000000, \
	  .help = "checkpoints after a plateau starts during which no new one is counted", \
	  .doc = DOC("cooldown", "Checkpoints after a plateau starts during which none is " \
		     "counted.") }, \
	{ .path = "alerts." SECTION ".min_checkpoints", .type = CONFIG_INT, \
	  .offset = OFFSET(min_checkpoints), .def_num = 8, .min = 0, .max = 10000000, \
	  .help = "checkpoints with a value before the metric is judged at all", \
	  .doc = DOC("min_checkpoints", "Values needed before the metric is judged at all.") }
#define LOSS_DOC(key, text) text
#define AS_LOSS_DOC(key, text) "As\n.BR alerts.loss." key " ."
	PLATEAU_SECTION("loss", OFF_LOSS, "loss", "the loss judged by grokking",
			"The metric, a dotted path in a group's result, whose plateau\n"
			".B grokking\n"
			"needs.", LOSS_DOC),
	PLATEAU_SECTION("distance", OFF_DIST, "pathway_distance",
			"the pathway distance judged by grokking and generalization_saturated",
			"The metric whose fall makes\n"
			".B grokking\n"
			"and whose plateau after it makes\n"
			".BR generalization_saturated ;\n"
			"for example\n"
			".BR memorized.pathway_distance ,\n"
			"as in the paper.", AS_LOSS_DOC),
#undef LOSS_DOC
#undef AS_LOSS_DOC
#undef PLATEAU_SECTION
	{ .path = "alerts.plateaus", .type = CONFIG_OBJECT_ARRAY, .offset = OFF(alerts.plateaus),
	  .max = 64, .fields = plateau_fields, .elem_size = sizeof(struct config_plateau),
	  .help = "extra plateau alerts: [{\"metric\", \"mode\", \"threshold\", \"threshold_mode\", "
		  "\"patience\", \"cooldown\", \"min_checkpoints\"}, ...]",
	  .doc = "Further\n"
		".B plateau\n"
		"alerts, one per object and group, each with every member below:\n"
		".B [{\"metric\": \"pathway_consistency\", \"mode\": \"max\", \"threshold\": 0.01,\n"
		".B \"threshold_mode\": \"rel\", \"patience\": 5, \"cooldown\": 2, \"min_checkpoints\": 8}]" },
	{ .path = "alerts.routing_collapse.dead_experts", .type = CONFIG_INT,
	  .offset = OFF(alerts.collapse_dead_experts), .def_num = 1, .min = 0, .max = 1e9,
	  .help = "fire when health.overall.dead_experts reaches this; 0 = off",
	  .doc = ".B routing_collapse\n"
		"fires when the latest result has at least this many dead experts (over all\n"
		"layers); 0: off." },
	{ .path = "alerts.routing_collapse.max_imbalance", .type = CONFIG_DOUBLE,
	  .offset = OFF(alerts.collapse_max_imbalance), .def_num = 3.0, .min = 0, .max = 1e9,
	  .help = "fire when health.overall.max_imbalance exceeds this; 0 = off",
	  .doc = ".B routing_collapse\n"
		"fires when a layer's load imbalance (max/mean) exceeds this; 0: off." },
	{ .path = "alerts.hooks", .type = CONFIG_OBJECT_ARRAY, .offset = OFF(alerts.hooks),
	  .max = 64, .fields = hook_fields, .elem_size = sizeof(struct config_hook),
	  .help = "programs run on alert transitions: [{\"alert\": \"grokking\", \"argv\": "
		  "[\"/path\", \"arg\"]}, ...]",
	  .doc = "Programs run when an alert fires or resolves, with the payload on standard\n"
		"input and\n"
		".BR GROKWATCH_ALERT ,\n"
		".BR GROKWATCH_RUN ,\n"
		".BR GROKWATCH_GROUP ,\n"
		".B GROKWATCH_STEP\n"
		"and\n"
		".B GROKWATCH_STATUS\n"
		"in the environment:\n"
		".B [{\"alert\": \"*\", \"argv\": [\"/usr/local/share/grokwatch/hooks/webhook.sh\", \"https://...\"]}]" },
	{ .path = "alerts.hook_timeout_ms", .type = CONFIG_INT, .offset = OFF(alerts.hook_timeout_ms),
	  .def_num = 30000, .min = 1, .max = MS_DAY,
	  .help = "a hook still running after this gets SIGTERM",
	  .doc = "A hook still running after this gets\n"
		".BR SIGTERM ." },
	{ .path = "alerts.hook_kill_grace_ms", .type = CONFIG_INT,
	  .offset = OFF(alerts.hook_kill_grace_ms), .def_num = 5000, .min = 1, .max = 3600000,
	  .help = "then, after this, SIGKILL",
	  .doc = "And, after this,\n"
		".BR SIGKILL ." },
	{ .path = "alerts.hook_concurrency", .type = CONFIG_INT,
	  .offset = OFF(alerts.hook_concurrency), .def_num = 4, .min = 1, .max = 1024,
	  .help = "hooks running at once; others wait in the queue",
	  .doc = "Hooks running at once; others wait." },
	{ .path = "alerts.hook_queue", .type = CONFIG_INT, .offset = OFF(alerts.hook_queue),
	  .def_num = 256, .min = 0, .max = 1000000,
	  .help = "hooks waiting to run; beyond it a transition's hooks are refused",
	  .doc = "Hooks waiting; past it, a transition's hooks are refused and an\n"
		".B error\n"
		"message says so." },
	{ .path = "alerts.hook_output_bytes", .type = CONFIG_INT,
	  .offset = OFF(alerts.hook_output_bytes), .def_num = 65536, .min = 0, .max = 16777216,
	  .help = "stdout and stderr kept per hook run, each; the rest is counted and dropped",
	  .doc = "Bytes of a hook's standard output and of its standard error kept for the\n"
		"log; the rest is counted and dropped." },
	{ .path = "alerts.alertmanager.urls", .type = CONFIG_STRING_ARRAY,
	  .offset = OFF(alerts.alertmanager.urls), .max = 16, .check = check_am_url,
	  .help = "Alertmanager base URLs (\"http://127.0.0.1:9093\"); firing alerts are POSTed to "
		  "<url>/api/v2/alerts and re-sent; empty = none",
	  .doc = "Base URLs of Prometheus Alertmanagers, such as\n"
		".BR http://127.0.0.1:9093 .\n"
		"The daemon POSTs every firing alert to\n"
		".IB url /api/v2/alerts\n"
		"as a PostableAlert (labels, annotations, startsAt), re-sends them every\n"
		".BR alerts.alertmanager.resend_ms ,\n"
		"and sends each resolution with its endsAt until one POST carrying it\n"
		"succeeds.  Each URL is sent to on its own, without blocking the loop; a\n"
		"failed POST is logged, shown in the status and retried after 0.5 s,\n"
		"doubling up to\n"
		".BR resend_ms .\n"
		"The firing set comes from the journal, so a restart or an unreachable\n"
		"Alertmanager loses no alert." },
	{ .path = "alerts.alertmanager.resend_ms", .type = CONFIG_INT,
	  .offset = OFF(alerts.alertmanager.resend_ms), .def_num = 60000, .min = 100,
	  .max = 3600000,
	  .help = "every firing alert is sent again this often; keep it well below Alertmanager's "
		  "resolve_timeout (5 min by default)",
	  .doc = "Every firing alert is sent again this often, so that Alertmanager (which\n"
		"resolves an alert not heard of for its\n"
		".BR resolve_timeout ,\n"
		"5 minutes by default) keeps it.  Also the longest wait between retries." },
	{ .path = "alerts.alertmanager.timeout_ms", .type = CONFIG_INT,
	  .offset = OFF(alerts.alertmanager.timeout_ms), .def_num = 10000, .min = 100,
	  .max = 600000,
	  .help = "a POST not answered within this fails (and is retried)",
	  .doc = "A POST, connection included, not answered within this fails and is\n"
		"retried." },
	{ .path = "alerts.alertmanager.user", .type = CONFIG_STRING,
	  .offset = OFF(alerts.alertmanager.user), .max = 256,
	  .help = "basic auth user name (with password_file); empty = no basic auth",
	  .doc = "User name for HTTP basic authentication, with\n"
		".BR alerts.alertmanager.password_file ;\n"
		"empty: none." },
	{ .path = "alerts.alertmanager.password_file", .type = CONFIG_STRING,
	  .offset = OFF(alerts.alertmanager.password_file), .max = 4096,
	  .help = "file holding the basic auth password (read at start; one trailing newline dropped)",
	  .doc = "File holding the basic authentication password, read at start; one\n"
		"trailing newline is dropped." },
	{ .path = "alerts.alertmanager.bearer_token_file", .type = CONFIG_STRING,
	  .offset = OFF(alerts.alertmanager.bearer_token_file), .max = 4096,
	  .help = "file holding a bearer token sent as Authorization: Bearer; empty = none",
	  .doc = "File holding a token sent as\n"
		".BR \"Authorization: Bearer\" ,\n"
		"read at start; one trailing newline is dropped.  Not with basic\n"
		"authentication." },
	{ .path = "alerts.alertmanager.ca_file", .type = CONFIG_STRING,
	  .offset = OFF(alerts.alertmanager.ca_file), .max = 4096,
	  .help = "CA certificates (PEM) for https URLs; empty = the system's",
	  .doc = "CA certificates (PEM) that an https Alertmanager's certificate is\n"
		"verified against; empty: the system's (libcurl's default).  Certificates\n"
		"are always verified." },
	{ .path = NULL },
};

const struct config_section_info config_sections[CONFIG_SECTIONS] = {
	[CONFIG_SECTION_TOP] = { .name = "" },
	[CONFIG_SECTION_WATCH] = { .name = "watch", .title = "finding checkpoints" },
	[CONFIG_SECTION_PROBE] = { .name = "probe", .title = "the samples the model is run on" },
	[CONFIG_SECTION_METRICS] = { .name = "metrics", .title = "what is computed" },
	[CONFIG_SECTION_PUBLISH] = { .name = "publish", .title = "the ZeroMQ sockets" },
	[CONFIG_SECTION_THREADS] = { .name = "threads" },
	[CONFIG_SECTION_JOBS] = { .name = "jobs", .title = "failed checkpoints" },
	[CONFIG_SECTION_LIMITS] = { .name = "limits" },
	[CONFIG_SECTION_ALERTS] = {
		.name = "alerts", .title = "plateaus, grokking, routing collapse, hooks",
		.doc = "Each result is judged with the whole series before it, in step order; an\n"
			"alert that starts or ends is journaled, published on the\n"
			".B alert\n"
			"topic as an Alertmanager webhook payload, and handed to the hooks.\n"
			"The plateau rule is PyTorch's\n"
			".B ReduceLROnPlateau\n"
			"on checkpoints: with mode min a value is better when it is below\n"
			".I best\n"
			"\\(mu (1 \\- threshold)\n"
			".RB ( rel )\n"
			"or\n"
			".I best\n"
			"\\- threshold\n"
			".RB ( abs );\n"
			"a plateau starts at the\n"
			".RI ( patience +1)\\-th\n"
			"checkpoint in a row that is not better, and lasts until one is; after it\n"
			"starts,\n"
			".I cooldown\n"
			"checkpoints are not counted; nothing is judged before\n"
			".I min_checkpoints\n"
			"values.\n"
			"A group is\n"
			".B grokking\n"
			"while its loss is on a plateau and its pathway distance shows a net fall\n"
			"over the distance's window: the latest value is better, by the distance's\n"
			".I threshold\n"
			"and\n"
			".IR threshold_mode ,\n"
			"than the value\n"
			".I patience\n"
			"checkpoints earlier (so a distance that jumps up at the latest checkpoint\n"
			"is not grokking, and one that stands still for\n"
			".I patience\n"
			"checkpoints stops it); its generalization has\n"
			".B saturated\n"
			"when, no longer grokking, the distance then reaches a plateau too." },
};

enum config_section config_key_section(const struct config_key *k)
{
	const char *dot = strchr(k->path, '.');
	size_t n = dot ? (size_t)(dot - k->path) : 0;

	for (int i = 0; i < CONFIG_SECTIONS; i++)
		if (strlen(config_sections[i].name) == n &&
		    !strncmp(config_sections[i].name, k->path, n))
			return (enum config_section)i;
	GW_BUG_ON(1);
	return CONFIG_SECTION_TOP;
}

/* ---- values by table row --------------------------------------------------- */

static void *field(void *base, const struct config_key *k)
{
	return (char *)base + k->offset;
}

static const void *cfield(const void *base, const struct config_key *k)
{
	return (const char *)base + k->offset;
}

static int enum_index(const char *const *enums, const char *v)
{
	for (int i = 0; enums[i]; i++)
		if (!strcmp(enums[i], v))
			return i;
	return -1;
}

static void free_fields(const struct config_key *keys, void *base);

static void free_value(const struct config_key *k, void *base)
{
	switch (k->type) {
	case CONFIG_STRING: {
		char **s = field(base, k);

		free(*s);
		*s = NULL;
		break;
	}
	case CONFIG_STRING_ARRAY: {
		struct config_strv *a = field(base, k);

		for (int i = 0; i < a->n; i++)
			free(a->v[i]);
		free(a->v);
		a->v = NULL;
		a->n = 0;
		break;
	}
	case CONFIG_OBJECT_ARRAY: {
		struct config_objv *a = field(base, k);

		for (int i = 0; i < a->n; i++)
			free_fields(k->fields, (char *)a->v + (size_t)i * k->elem_size);
		free(a->v);
		a->v = NULL;
		a->n = 0;
		break;
	}
	default:
		break;
	}
}

static void free_fields(const struct config_key *keys, void *base)
{
	for (const struct config_key *k = keys; k->path; k++)
		free_value(k, base);
}

static void set_default(const struct config_key *k, void *base)
{
	switch (k->type) {
	case CONFIG_STRING:
		*(char **)field(base, k) = gw_strdup(k->def_str ? k->def_str : "");
		break;
	case CONFIG_INT:
		*(int64_t *)field(base, k) = (int64_t)k->def_num;
		break;
	case CONFIG_DOUBLE:
		*(double *)field(base, k) = k->def_num;
		break;
	case CONFIG_BOOL:
		*(bool *)field(base, k) = k->def_num != 0;
		break;
	case CONFIG_ENUM: {
		int i = enum_index(k->enums, k->def_str);

		GW_BUG_ON(i < 0);
		*(int *)field(base, k) = i;
		break;
	}
	case CONFIG_STRING_ARRAY: {
		struct config_strv *a = field(base, k);
		int n = 0;

		while (k->def_strv && k->def_strv[n])
			n++;
		a->v = gw_calloc((size_t)n + 1, sizeof(char *));
		for (int i = 0; i < n; i++)
			a->v[i] = gw_strdup(k->def_strv[i]);
		a->n = n;
		break;
	}
	case CONFIG_OBJECT_ARRAY: {
		struct config_objv *a = field(base, k);

		a->v = NULL;
		a->n = 0;
		break;
	}
	}
}

static bool fields_equal(const struct config_key *keys, const void *a, const void *b);

static bool value_equal(const struct config_key *k, const void *a, const void *b)
{
	switch (k->type) {
	case CONFIG_STRING:
		return !strcmp(*(char *const *)cfield(a, k), *(char *const *)cfield(b, k));
	case CONFIG_INT:
		return *(const int64_t *)cfield(a, k) == *(const int64_t *)cfield(b, k);
	case CONFIG_DOUBLE:
		return *(const double *)cfield(a, k) == *(const double *)cfield(b, k);
	case CONFIG_BOOL:
		return *(const bool *)cfield(a, k) == *(const bool *)cfield(b, k);
	case CONFIG_ENUM:
		return *(const int *)cfield(a, k) == *(const int *)cfield(b, k);
	case CONFIG_STRING_ARRAY: {
		const struct config_strv *x = cfield(a, k), *y = cfield(b, k);

		if (x->n != y->n)
			return false;
		for (int i = 0; i < x->n; i++)
			if (strcmp(x->v[i], y->v[i]))
				return false;
		return true;
	}
	case CONFIG_OBJECT_ARRAY: {
		const struct config_objv *x = cfield(a, k), *y = cfield(b, k);

		if (x->n != y->n)
			return false;
		for (int i = 0; i < x->n; i++)
			if (!fields_equal(k->fields, (const char *)x->v + (size_t)i * k->elem_size,
					  (const char *)y->v + (size_t)i * k->elem_size))
				return false;
		return true;
	}
	}
	return false;
}

static bool fields_equal(const struct config_key *keys, const void *a, const void *b)
{
	for (const struct config_key *k = keys; k->path; k++)
		if (!value_equal(k, a, b))
			return false;
	return true;
}

/* Bytes of a row's field in its struct. */
static size_t value_size(const struct config_key *k)
{
	switch (k->type) {
	case CONFIG_STRING: return sizeof(char *);
	case CONFIG_INT: return sizeof(int64_t);
	case CONFIG_DOUBLE: return sizeof(double);
	case CONFIG_BOOL: return sizeof(bool);
	case CONFIG_ENUM: return sizeof(int);
	case CONFIG_STRING_ARRAY: return sizeof(struct config_strv);
	case CONFIG_OBJECT_ARRAY: return sizeof(struct config_objv);
	}
	GW_BUG_ON(1);
	return 0;
}

/* Exchange one value between two structs, with what it owns. */
static void value_swap(const struct config_key *k, void *a, void *b)
{
	unsigned char tmp[sizeof(struct config_strv) > sizeof(struct config_objv)
				  ? sizeof(struct config_strv) : sizeof(struct config_objv)];
	size_t n = value_size(k);

	GW_BUG_ON(n > sizeof(tmp));
	memcpy(tmp, field(a, k), n);
	memcpy(field(a, k), field(b, k), n);
	memcpy(field(b, k), tmp, n);
}

struct config *config_new_defaults(void)
{
	struct config *c = gw_calloc(1, sizeof(*c));

	for (const struct config_key *k = config_keys; k->path; k++)
		set_default(k, c);
	c->path = gw_strdup("(defaults)");
	return c;
}

void config_free(struct config *c)
{
	if (!c)
		return;
	free_fields(config_keys, c);
	free(c->path);
	free(c);
}

/* ---- reading a tree through the table ------------------------------------- */

struct ctx {
	const char *what;
	const cJSON *root;
	struct json_doc doc; /* the parse, with the line of each value */
	struct gw_err *err;
};

static int line_of(const struct ctx *cx, const cJSON *node)
{
	return json_line(&cx->doc, node);
}

static int fail(const struct ctx *cx, const cJSON *node, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(const struct ctx *cx, const cJSON *node, const char *fmt, ...)
{
	char msg[GW_ERR_MAX];
	int line = line_of(cx, node);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		return gw_errf(cx->err, -EINVAL, "\"%s\" line %d: %s", cx->what, line, msg);
	return gw_errf(cx->err, -EINVAL, "\"%s\": %s", cx->what, msg);
}

static int read_number(const struct ctx *cx, const struct config_key *k, const cJSON *n,
		       const char *path, bool integer, double *ret)
{
	switch (json_number(n, k->min, k->max, integer, ret)) {
	case JSON_NUM_OK:
		return 0;
	case JSON_NUM_NOT_NUMBER:
		return fail(cx, n, "%s: expected %s, got %s", path, integer ? "an integer" : "a number",
			    json_kind(n));
	case JSON_NUM_NOT_FINITE:
		return fail(cx, n, "%s: the number is out of range", path);
	case JSON_NUM_NOT_INTEGER:
		return fail(cx, n, "%s: expected an integer, got %g", path, n->valuedouble);
	case JSON_NUM_BELOW:
		return fail(cx, n, "%s: %.17g is below the minimum %.17g", path, n->valuedouble,
			    k->min);
	case JSON_NUM_ABOVE:
		break;
	}
	return fail(cx, n, "%s: %.17g is above the maximum %.17g", path, n->valuedouble, k->max);
}

static int read_string(const struct ctx *cx, const struct config_key *k, const cJSON *n,
		       const char *path, char **ret)
{
	size_t len, max = k->max > 0 ? (size_t)k->max : CONFIG_STRING_MAX;
	struct gw_err e;

	if (!cJSON_IsString(n))
		return fail(cx, n, "%s: expected a string, got %s", path, json_kind(n));
	len = strlen(n->valuestring);
	if (len > max)
		return fail(cx, n, "%s: the string is %zu bytes, more than the maximum %zu", path, len,
			    max);
	if (len < (size_t)k->min)
		return fail(cx, n, "%s: must not be empty", path);
	if (k->check && k->check(n->valuestring, &e) < 0)
		return fail(cx, n, "%s: %s", path, e.msg);
	*ret = gw_strdup(n->valuestring);
	return 0;
}

static const struct config_key *find_key(const struct config_key *keys, const char *path)
{
	for (const struct config_key *k = keys; k->path; k++)
		if (!strcmp(k->path, path))
			return k;
	return NULL;
}

const struct config_key *config_key_find(const char *path)
{
	return find_key(config_keys, path);
}

/* True if some key lies under `path` (so `path` names an object). */
static bool is_section(const struct config_key *keys, const char *path)
{
	size_t n = strlen(path);

	for (const struct config_key *k = keys; k->path; k++)
		if (!strncmp(k->path, path, n) && k->path[n] == '.')
			return true;
	return false;
}

static int read_members(const struct ctx *cx, const struct config_key *keys, void *base,
			const cJSON *obj, const char *prefix, bool all_required);

static int read_value(const struct ctx *cx, const struct config_key *k, void *base,
		      const cJSON *n, const char *path)
{
	double v;
	int r, i, count;
	char sub[PATH_BUF + 16];

	switch (k->type) {
	case CONFIG_STRING: {
		char *s;

		if ((r = read_string(cx, k, n, path, &s)) < 0)
			return r;
		free(*(char **)field(base, k));
		*(char **)field(base, k) = s;
		return 0;
	}
	case CONFIG_INT:
		if ((r = read_number(cx, k, n, path, true, &v)) < 0)
			return r;
		*(int64_t *)field(base, k) = (int64_t)v;
		return 0;
	case CONFIG_DOUBLE:
		if (k->word && cJSON_IsString(n)) {
			if (strcmp(n->valuestring, k->word) != 0)
				return fail(cx, n, "%s: expected a number or \"%s\", got \"%.64s\"", path,
					    k->word, n->valuestring);
			*(double *)field(base, k) = k->word_value;
			return 0;
		}
		if ((r = read_number(cx, k, n, path, false, &v)) < 0)
			return r;
		*(double *)field(base, k) = v;
		return 0;
	case CONFIG_BOOL:
		if (!cJSON_IsBool(n))
			return fail(cx, n, "%s: expected true or false, got %s", path, json_kind(n));
		*(bool *)field(base, k) = cJSON_IsTrue(n);
		return 0;
	case CONFIG_ENUM: {
		char list[256] = "";
		size_t used = 0;

		if (!cJSON_IsString(n))
			return fail(cx, n, "%s: expected a string, got %s", path, json_kind(n));
		if ((i = enum_index(k->enums, n->valuestring)) >= 0) {
			*(int *)field(base, k) = i;
			return 0;
		}
		for (int j = 0; k->enums[j] && used < sizeof(list); j++) {
			int w = snprintf(list + used, sizeof(list) - used, "%s%s", j ? ", " : "",
					 k->enums[j]);

			if (w < 0)
				break;
			used += (size_t)w;
		}
		return fail(cx, n, "%s: \"%.64s\" is not one of %s", path, n->valuestring, list);
	}
	case CONFIG_STRING_ARRAY:
	case CONFIG_OBJECT_ARRAY:
		break;
	}

	if (!cJSON_IsArray(n))
		return fail(cx, n, "%s: expected an array, got %s", path, json_kind(n));
	count = cJSON_GetArraySize(n);
	if (count > k->max)
		return fail(cx, n, "%s: %d entries, more than the maximum %.0f", path, count, k->max);
	if (count < k->min)
		return fail(cx, n, "%s: must not be empty", path);

	if (k->type == CONFIG_STRING_ARRAY) {
		struct config_strv a = { gw_calloc((size_t)count + 1, sizeof(char *)), 0 };
		struct config_key elem = *k;
		const cJSON *e;

		elem.min = 0;
		elem.max = CONFIG_STRING_MAX;
		i = 0;
		cJSON_ArrayForEach(e, n) {
			snprintf(sub, sizeof(sub), "%s[%d]", path, i++);
			if ((r = read_string(cx, &elem, e, sub, &a.v[a.n])) < 0) {
				for (int j = 0; j < a.n; j++)
					free(a.v[j]);
				free(a.v);
				return r;
			}
			a.n++;
		}
		free_value(k, base);
		*(struct config_strv *)field(base, k) = a;
		return 0;
	} else {
		struct config_objv a = { gw_calloc((size_t)count + 1, k->elem_size), 0 };
		const cJSON *e;

		i = 0;
		r = 0;
		cJSON_ArrayForEach(e, n) {
			void *el = (char *)a.v + (size_t)a.n * k->elem_size;

			snprintf(sub, sizeof(sub), "%s[%d]", path, i++);
			for (const struct config_key *f = k->fields; f->path; f++)
				set_default(f, el);
			a.n++;
			if (!cJSON_IsObject(e)) {
				r = fail(cx, e, "%s: expected an object, got %s", sub, json_kind(e));
				break;
			}
			if ((r = read_members(cx, k->fields, el, e, sub, true)) < 0)
				break;
		}
		if (r < 0) {
			struct config_key tmp = *k;

			tmp.offset = 0;
			free_value(&tmp, &a);
			return r;
		}
		free_value(k, base);
		*(struct config_objv *)field(base, k) = a;
		return 0;
	}
}

/*
 * Read the members of `obj`, whose path is `prefix` ("" for the root),
 * through `keys` (paths relative to `base`).  Object-array elements pass
 * all_required: each of their fields must be present.
 */
static int read_members(const struct ctx *cx, const struct config_key *keys, void *base,
			const cJSON *obj, const char *prefix, bool all_required)
{
	char path[PATH_BUF], rel[PATH_BUF];
	size_t plen = 0;
	const cJSON *m;
	int r;

	/* Table paths are relative to `keys`; for object-array elements the
	 * prefix carries an index and is not part of them. */
	if (!all_required)
		plen = strlen(prefix);
	for (m = obj->child; m; m = m->next) {
		const struct config_key *k;
		const char *name = m->string;

		if (plen)
			snprintf(rel, sizeof(rel), "%s.%s", prefix, name);
		else
			snprintf(rel, sizeof(rel), "%s", name);
		if (*prefix)
			snprintf(path, sizeof(path), "%s.%s", prefix, name);
		else
			snprintf(path, sizeof(path), "%s", name);
		/* A dot in a name would let {"watch.root": ...} pass as nesting. */
		if (!*name || strchr(name, '.') || strlen(name) > 64 ||
		    (!(k = find_key(keys, rel)) && !is_section(keys, rel)))
			return fail(cx, m, "unknown key \"%.200s\"", path);
		for (const cJSON *p = obj->child; p != m; p = p->next)
			if (!strcmp(p->string, name))
				return fail(cx, m, "duplicate key \"%s\" (first on line %d)", path,
					    line_of(cx, p));
		if (k) {
			if ((r = read_value(cx, k, base, m, path)) < 0)
				return r;
		} else {
			if (!cJSON_IsObject(m))
				return fail(cx, m, "%s: expected an object, got %s", path, json_kind(m));
			if ((r = read_members(cx, keys, base, m, path, false)) < 0)
				return r;
		}
	}
	if (all_required)
		for (const struct config_key *k = keys; k->path; k++)
			if (!cJSON_GetObjectItemCaseSensitive(obj, k->path))
				return fail(cx, obj, "%s: \"%s\" is missing", prefix, k->path);
	return 0;
}

/* The node at a dotted path, or NULL if the file does not set it. */
static const cJSON *node_at(const cJSON *root, const char *path)
{
	char part[PATH_BUF];
	const cJSON *n = root;

	while (n && *path) {
		const char *dot = strchr(path, '.');
		size_t len = dot ? (size_t)(dot - path) : strlen(path);

		if (len >= sizeof(part))
			return NULL;
		memcpy(part, path, len);
		part[len] = 0;
		n = cJSON_GetObjectItemCaseSensitive(n, part);
		path += len + (dot ? 1 : 0);
	}
	return n;
}

/* ---- checks between keys --------------------------------------------------- */

static int check_endpoint_security(const struct ctx *cx, const struct config *c,
				   const char *key, const char *endpoint)
{
	if (endpoint_is_local(endpoint) || c->publish.curve.server_secret_key_file[0] ||
	    c->publish.allow_insecure_remote)
		return 0;
	return fail(cx, node_at(cx->root, key),
			"%s: \"%s\" is reachable from other hosts and CURVE is off; set "
			"publish.curve.server_secret_key_file, or publish.allow_insecure_remote to "
			"publish in clear text", key, endpoint);
}

static bool ends_with_star_port(const char *ep)
{
	size_t n = strlen(ep);

	return n >= 2 && !strcmp(ep + n - 2, ":*");
}

/* threshold_mode "se" needs the metric's standard error beside it in the
 * result: "<name>_se" (metrics.h); only the pathway distance has one. */
static bool has_stderr(const char *metric)
{
	const char *dot = strrchr(metric, '.');

	return !strcmp(dot ? dot + 1 : metric, "pathway_distance");
}

static int check_se(const struct ctx *cx, const char *key, const struct config_plateau *p,
		    const cJSON *node)
{
	if (p->threshold_mode != CONFIG_THRESHOLD_SE || has_stderr(p->metric))
		return 0;
	return fail(cx, node, "%s.threshold_mode: \"se\" needs a metric with a standard error "
		    "(pathway_distance, memorized.pathway_distance); \"%s\" has none", key, p->metric);
}

static int check_across(const struct ctx *cx, const struct config *c)
{
	const struct config_epsilon *eg = c->metrics.epsilon_groups.v;
	int r;

	if ((r = check_endpoint_security(cx, c, "publish.endpoint", c->publish.endpoint)) < 0 ||
	    (r = check_endpoint_security(cx, c, "publish.query_endpoint",
					 c->publish.query_endpoint)) < 0)
		return r;
	/* Equal endpoints cannot both bind, except a "*" port, which the
	 * system picks anew for each (tests use it). */
	if (!strcmp(c->publish.endpoint, c->publish.query_endpoint) &&
	    !ends_with_star_port(c->publish.endpoint))
		return fail(cx, node_at(cx->root, "publish.query_endpoint"),
			    "publish.query_endpoint: \"%s\" is also publish.endpoint",
			    c->publish.query_endpoint);
	if (c->publish.curve.server_public_key_file[0] && !c->publish.curve.server_secret_key_file[0])
		return fail(cx, node_at(cx->root, "publish.curve.server_public_key_file"),
			    "publish.curve.server_public_key_file: set without "
			    "publish.curve.server_secret_key_file");
	if (c->jobs.retry_backoff_max_ms < c->jobs.retry_backoff_ms)
		return fail(cx, node_at(cx->root, "jobs.retry_backoff_max_ms"),
			    "jobs.retry_backoff_max_ms: %lld is less than jobs.retry_backoff_ms %lld",
			    (long long)c->jobs.retry_backoff_max_ms, (long long)c->jobs.retry_backoff_ms);
	/* Quadratic, but the table bounds the array at 1024 entries. */
	for (int i = 0; i < c->metrics.epsilon_groups.n; i++)
		for (int j = 0; j < i; j++)
			if (!strcmp(eg[i].group, eg[j].group))
				return fail(cx,
					    cJSON_GetArrayItem(node_at(cx->root, "metrics.epsilon_groups"), i),
					    "metrics.epsilon_groups[%d]: group \"%s\" is also entry %d",
					    i, eg[i].group, j);
	/* best * (1 - threshold) with threshold >= 1 would make even the first
	 * value no improvement on +inf (alert.h): refuse rather than never judge. */
	if (c->alerts.loss.threshold_mode == CONFIG_THRESHOLD_REL && c->alerts.loss.threshold >= 1)
		return fail(cx, node_at(cx->root, "alerts.loss.threshold"),
			    "alerts.loss.threshold: %g must be below 1 with threshold_mode rel",
			    c->alerts.loss.threshold);
	if (c->alerts.distance.threshold_mode == CONFIG_THRESHOLD_REL &&
	    c->alerts.distance.threshold >= 1)
		return fail(cx, node_at(cx->root, "alerts.distance.threshold"),
			    "alerts.distance.threshold: %g must be below 1 with threshold_mode rel",
			    c->alerts.distance.threshold);
	if (!c->alerts.alertmanager.user[0] != !c->alerts.alertmanager.password_file[0])
		return fail(cx, node_at(cx->root, c->alerts.alertmanager.user[0]
						  ? "alerts.alertmanager.user"
						  : "alerts.alertmanager.password_file"),
			    "alerts.alertmanager: user and password_file go together");
	if (c->alerts.alertmanager.user[0] && c->alerts.alertmanager.bearer_token_file[0])
		return fail(cx, node_at(cx->root, "alerts.alertmanager.bearer_token_file"),
			    "alerts.alertmanager.bearer_token_file: not with basic auth (user)");
	if ((r = check_se(cx, "alerts.loss", &c->alerts.loss,
			  node_at(cx->root, "alerts.loss.threshold_mode"))) < 0 ||
	    (r = check_se(cx, "alerts.distance", &c->alerts.distance,
			  node_at(cx->root, "alerts.distance.threshold_mode"))) < 0)
		return r;
	for (int i = 0; i < c->alerts.plateaus.n; i++) {
		const struct config_plateau *p = (const struct config_plateau *)c->alerts.plateaus.v + i;
		char key[64];

		snprintf(key, sizeof(key), "alerts.plateaus[%d]", i);
		if ((r = check_se(cx, key, p,
				  cJSON_GetArrayItem(node_at(cx->root, "alerts.plateaus"), i))) < 0)
			return r;
		if (p->threshold_mode == CONFIG_THRESHOLD_REL && p->mode == CONFIG_PLATEAU_MIN &&
		    p->threshold >= 1)
			return fail(cx, cJSON_GetArrayItem(node_at(cx->root, "alerts.plateaus"), i),
				    "alerts.plateaus[%d].threshold: %g must be below 1 with mode min and "
				    "threshold_mode rel", i, p->threshold);
	}
	for (int i = 0; i < c->alerts.hooks.n; i++) {
		const struct config_hook *h = (const struct config_hook *)c->alerts.hooks.v + i;

		if (!h->argv.v[0][0])
			return fail(cx,
				    cJSON_GetArrayItem(node_at(cx->root, "alerts.hooks"), i),
				    "alerts.hooks[%d].argv[0]: the program must not be empty", i);
	}
	return 0;
}

/* ---- entry points ------------------------------------------------------------ */

int config_parse(const char *what, const char *text, size_t len, struct config **ret_config,
		 struct gw_err *err)
{
	/* As cJSON reads it (a byte order mark, raw control bytes in strings),
	 * but valid UTF-8 without \u0000, and the line of each value. */
	static const struct json_limits lim = { .raw_controls = true, .bom = true, .lines = true };
	struct ctx cx = { .what = what, .err = err };
	struct config *c = NULL;
	const cJSON *root;
	const char *nul;
	size_t i;
	int r;

	if (len > CONFIG_FILE_MAX)
		return gw_errf(err, -EFBIG, "\"%s\": %zu bytes, more than the limit of %d", what, len,
			       CONFIG_FILE_MAX);
	for (i = 0; i < len && (unsigned char)text[i] <= 32; i++)
		;
	if (i == len)
		return gw_errf(err, -EINVAL, "\"%s\": is empty", what);
	if ((nul = memchr(text, 0, len)))
		return gw_errf(err, -EINVAL, "\"%s\" line %d: a NUL byte", what,
			       json_line_at(text, (size_t)(nul - text)));
	if (json_parse(what, text, len, &lim, &cx.doc, err) < 0)
		return -EINVAL;
	cx.root = root = cx.doc.root;
	for (i = cx.doc.end; i < len && (unsigned char)text[i] <= 32; i++)
		;
	if (i < len) {
		r = gw_errf(err, -EINVAL, "\"%s\" line %d: text after the end of the JSON object",
			    what, json_line_at(text, i));
		goto out;
	}
	if (!cJSON_IsObject(root)) {
		r = fail(&cx, root, "expected a JSON object, got %s", json_kind(root));
		goto out;
	}
	c = config_new_defaults();
	free(c->path);
	c->path = gw_strdup(what);
	if ((r = read_members(&cx, config_keys, c, root, "", false)) < 0 ||
	    (r = check_across(&cx, c)) < 0)
		goto out;
	*ret_config = c;
	c = NULL;
	r = 0;
out:
	config_free(c);
	json_doc_release(&cx.doc);
	return r;
}

int config_load(const char *path, struct config **ret_config, struct gw_err *err)
{
	char *text = NULL;
	size_t len = 0;
	int r;

	r = gw_file_read(path, CONFIG_FILE_MAX, &text, &len, err);
	if (r == 0)
		r = config_parse(path, text, len, ret_config, err);
	free(text);
	return r;
}

int config_diff(const struct config *old, const struct config *new_,
		void (*fn)(void *ud, const char *path, bool needs_restart), void *ud)
{
	int restart = 0;

	for (const struct config_key *k = config_keys; k->path; k++) {
		if (value_equal(k, old, new_))
			continue;
		if (!k->reload)
			restart++;
		if (fn)
			fn(ud, k->path, !k->reload);
	}
	return restart;
}

int config_reload(struct config *running, const char *path,
		  const config_apply_fn apply[CONFIG_SECTIONS], void *ud,
		  void (*note)(void *ud, const char *path, bool needs_restart), struct gw_err *err)
{
	struct config *n = NULL;
	bool changed[CONFIG_SECTIONS] = { false };
	int r, restart = 0;

	if ((r = config_load(path, &n, err)) < 0)
		return r;
	for (const struct config_key *k = config_keys; k->path; k++) {
		if (value_equal(k, running, n))
			continue;
		if (k->reload) {
			/* The old value goes to n, and is freed with it. */
			value_swap(k, running, n);
			changed[config_key_section(k)] = true;
		} else {
			restart++;
		}
		if (note)
			note(ud, k->path, !k->reload);
	}
	for (int i = 0; i < CONFIG_SECTIONS; i++)
		if (changed[i] && apply[i])
			apply[i](ud, running);
	config_free(n);
	return restart;
}

double config_epsilon_for(const struct config *c, const char *group)
{
	const struct config_epsilon *eg = c->metrics.epsilon_groups.v;

	for (int i = 0; i < c->metrics.epsilon_groups.n; i++)
		if (!strcmp(eg[i].group, group))
			return eg[i].epsilon;
	return c->metrics.epsilon;
}
