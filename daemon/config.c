/*
 * config.c — the configuration table and its reader (config.h).
 *
 * In order: the checks some string keys need; the table; storing, freeing
 * and comparing a value by its table row; the walk that reads a cJSON tree
 * through the table, with the line of each value from engine/json.h's
 * pre-scan; the checks between keys; and the file reader.
 *
 * The fuzz target tests/fuzz/fuzz_daemon_config.c #includes this file, so it
 * must build against the engine sources alone (no libuv, no ZeroMQ).
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

#include "engine/file.h"
#include "engine/json.h"
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

static int check_endpoint(const char *v, struct gw_err *err)
{
	if ((strncmp(v, "tcp://", 6) != 0 || !v[6] || !strchr(v + 6, ':')) &&
	    (strncmp(v, "ipc://", 6) != 0 || !v[6]))
		return gw_errf(err, -EINVAL, "\"%s\" is not a tcp://HOST:PORT or ipc://PATH endpoint", v);
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
const char *const config_threshold_modes[] = { "rel", "abs", NULL };

#define OFF(field) offsetof(struct config, field)
#define MS_DAY 86400000.0
#define EXACT_INT 9007199254740992.0 /* 2^53: every integer up to it is exact in JSON */

static const struct config_key epsilon_fields[] = {
	{ .path = "group", .type = CONFIG_STRING, .offset = offsetof(struct config_epsilon, group),
	  .min = 1, .max = PROBE_GROUP_MAX - 1, .help = "probe group name" },
	{ .path = "epsilon", .type = CONFIG_DOUBLE,
	  .offset = offsetof(struct config_epsilon, epsilon), .min = 0, .max = 100,
	  .help = "memorization loss threshold for this group, in nats" },
	{ .path = NULL },
};

#define OFF_PL(field) offsetof(struct config_plateau, field)
static const struct config_key plateau_fields[] = {
	{ .path = "metric", .type = CONFIG_STRING, .offset = OFF_PL(metric), .min = 1, .max = 128,
	  .check = check_metric, .help = "metric path under result.groups[<group>]" },
	{ .path = "mode", .type = CONFIG_ENUM, .offset = OFF_PL(mode), .def_str = "min",
	  .enums = config_plateau_modes, .help = "min: improving = falling; max: rising" },
	{ .path = "threshold", .type = CONFIG_DOUBLE, .offset = OFF_PL(threshold), .min = 0,
	  .max = 1e9, .help = "least change that counts as an improvement of the best value" },
	{ .path = "threshold_mode", .type = CONFIG_ENUM, .offset = OFF_PL(threshold_mode),
	  .def_str = "rel", .enums = config_threshold_modes, .help = "rel or abs" },
	{ .path = "patience", .type = CONFIG_INT, .offset = OFF_PL(patience), .min = 0,
	  .max = 1000000, .help = "checkpoints without improvement tolerated" },
	{ .path = "cooldown", .type = CONFIG_INT, .offset = OFF_PL(cooldown), .min = 0,
	  .max = 1000000, .help = "checkpoints after a plateau starts that are not counted" },
	{ .path = "min_checkpoints", .type = CONFIG_INT, .offset = OFF_PL(min_checkpoints),
	  .min = 0, .max = 10000000, .help = "checkpoints with a value before judging" },
	{ .path = NULL },
};

static const struct config_key hook_fields[] = {
	{ .path = "alert", .type = CONFIG_STRING, .offset = offsetof(struct config_hook, alert),
	  .min = 1, .max = 64, .check = check_hook_alert,
	  .help = "alert name whose transitions run the hook, or \"*\"" },
	{ .path = "argv", .type = CONFIG_STRING_ARRAY,
	  .offset = offsetof(struct config_hook, argv), .min = 1, .max = 256,
	  .help = "program and arguments, run without a shell" },
	{ .path = NULL },
};

#define OFF_LOSS(field) OFF(alerts.loss.field)
#define OFF_DIST(field) OFF(alerts.distance.field)

const struct config_key config_keys[] = {
	{ .path = "run", .type = CONFIG_STRING, .offset = OFF(run), .max = 128, .check = check_name,
	  .help = "run name carried by every message; empty = the last component of watch.root" },
	{ .path = "state_dir", .type = CONFIG_STRING, .offset = OFF(state_dir),
	  .def_str = "/var/lib/grokwatch", .min = 1,
	  .help = "directory for the journal, state files and kept routing vectors" },
	{ .path = "log_level", .type = CONFIG_ENUM, .offset = OFF(log_level), .def_str = "info",
	  .enums = config_log_levels, .reload = true, .help = "error, warn, info or debug" },

	{ .path = "watch.root", .type = CONFIG_STRING, .offset = OFF(watch.root),
	  .help = "directory the trainer writes checkpoints into (required to run)" },
	{ .path = "watch.patterns", .type = CONFIG_STRING_ARRAY, .offset = OFF(watch.patterns),
	  .def_strv = step_default_patterns, .min = 1, .max = 32, .check = check_pattern,
	  .help = "checkpoint directory names, each with one {step} and any '*'; first match wins" },
	{ .path = "watch.step_from_trainer_state", .type = CONFIG_BOOL,
	  .offset = OFF(watch.step_from_trainer_state), .def_num = 1,
	  .help = "take the step from trainer_state.json global_step where present" },
	{ .path = "watch.marker", .type = CONFIG_STRING, .offset = OFF(watch.marker), .max = 255,
	  .check = check_marker,
	  .help = "file that must exist in a checkpoint before it counts as complete; empty = none" },
	{ .path = "watch.quiet_period_ms", .type = CONFIG_INT, .offset = OFF(watch.quiet_period_ms),
	  .def_num = 5000, .min = 0, .max = MS_DAY, .reload = true,
	  .help = "nothing under a checkpoint may change for this long before it is read" },
	{ .path = "watch.mode", .type = CONFIG_ENUM, .offset = OFF(watch.mode), .def_str = "auto",
	  .enums = config_watch_modes,
	  .help = "events (inotify), poll (stat polling) or auto (poll on NFS, Lustre, FUSE, CIFS)" },
	{ .path = "watch.poll_interval_ms", .type = CONFIG_INT, .offset = OFF(watch.poll_interval_ms),
	  .def_num = 2000, .min = 100, .max = 3600000, .help = "stat polling interval" },

	{ .path = "probe.path", .type = CONFIG_STRING, .offset = OFF(probe.path),
	  .help = "probe set file; empty = only checkpoints holding routing.safetensors are computed" },
	{ .path = "probe.format", .type = CONFIG_ENUM, .offset = OFF(probe.format),
	  .def_str = "jsonl", .enums = config_probe_formats,
	  .help = "jsonl, or u16 / u32 raw little-endian token memmaps" },
	{ .path = "probe.sample_length", .type = CONFIG_INT, .offset = OFF(probe.sample_length),
	  .def_num = 512, .min = 1, .max = PROBE_SAMPLE_MAX, .help = "tokens a sample (memmaps)" },
	{ .path = "probe.count", .type = CONFIG_INT, .offset = OFF(probe.count), .def_num = 64,
	  .min = 1, .max = PROBE_SAMPLES_MAX, .help = "samples cut from a memmap" },
	{ .path = "probe.offset", .type = CONFIG_INT, .offset = OFF(probe.offset), .def_num = 0,
	  .min = 0, .max = EXACT_INT, .help = "first token of the first sample (memmaps)" },
	{ .path = "probe.group", .type = CONFIG_STRING, .offset = OFF(probe.group),
	  .def_str = "default", .min = 1, .max = PROBE_GROUP_MAX - 1,
	  .help = "group name of memmap samples" },

	{ .path = "metrics.tau", .type = CONFIG_DOUBLE, .offset = OFF(metrics.tau), .def_num = 0.7,
	  .min = 1e-6, .max = 1, .help = "routing mass a pathway keeps per layer" },
	{ .path = "metrics.pair_budget", .type = CONFIG_INT, .offset = OFF(metrics.pair_budget),
	  .def_num = 2000000, .min = 1, .max = 1e12,
	  .help = "sample pairs per group beyond which pathway distance is estimated from a sample" },
	{ .path = "metrics.seed", .type = CONFIG_INT, .offset = OFF(metrics.seed), .def_num = 0,
	  .min = 0, .max = EXACT_INT, .help = "seed of the pair sample" },
	{ .path = "metrics.epsilon", .type = CONFIG_DOUBLE, .offset = OFF(metrics.epsilon),
	  .def_num = 1.0, .min = 0, .max = 100,
	  .help = "loss (nats) at or below which a sample may count as memorized" },
	{ .path = "metrics.epsilon_groups", .type = CONFIG_OBJECT_ARRAY,
	  .offset = OFF(metrics.epsilon_groups), .max = 1024, .fields = epsilon_fields,
	  .elem_size = sizeof(struct config_epsilon),
	  .help = "per-group epsilon: [{\"group\": \"math\", \"epsilon\": 0.5}, ...]" },
	{ .path = "metrics.delta", .type = CONFIG_DOUBLE, .offset = OFF(metrics.delta),
	  .def_num = 0.05, .min = 0, .max = 100,
	  .help = "a memorized sample's loss stays within delta of its latest value" },

	{ .path = "publish.endpoint", .type = CONFIG_STRING, .offset = OFF(publish.endpoint),
	  .def_str = "tcp://127.0.0.1:5557", .max = 256, .check = check_endpoint,
	  .help = "ZeroMQ PUB endpoint" },
	{ .path = "publish.query_endpoint", .type = CONFIG_STRING,
	  .offset = OFF(publish.query_endpoint), .def_str = "tcp://127.0.0.1:5558", .max = 256,
	  .check = check_endpoint, .help = "ZeroMQ ROUTER endpoint for snapshot and history" },
	{ .path = "publish.sndhwm", .type = CONFIG_INT, .offset = OFF(publish.sndhwm),
	  .def_num = 10000, .min = 1, .max = 10000000,
	  .help = "messages queued per subscriber before it misses some" },
	{ .path = "publish.max_message_bytes", .type = CONFIG_INT,
	  .offset = OFF(publish.max_message_bytes), .def_num = 4194304, .min = 4096,
	  .max = 268435456, .help = "a larger message is replaced by an error message" },
	{ .path = "publish.heartbeat_ms", .type = CONFIG_INT, .offset = OFF(publish.heartbeat_ms),
	  .def_num = 5000, .min = 100, .max = 3600000, .reload = true,
	  .help = "heartbeat interval" },
	{ .path = "publish.allow_insecure_remote", .type = CONFIG_BOOL,
	  .offset = OFF(publish.allow_insecure_remote), .def_num = 0,
	  .help = "allow a non-loopback endpoint without CURVE" },
	{ .path = "publish.curve.server_secret_key_file", .type = CONFIG_STRING,
	  .offset = OFF(publish.curve.server_secret_key_file),
	  .help = "file holding the server's Z85 secret key; empty = CURVE off" },
	{ .path = "publish.curve.server_public_key_file", .type = CONFIG_STRING,
	  .offset = OFF(publish.curve.server_public_key_file),
	  .help = "file holding the server's Z85 public key, checked against the secret key" },

	{ .path = "threads.blas", .type = CONFIG_INT, .offset = OFF(threads.blas), .def_num = 0,
	  .min = 0, .max = 1024, .help = "OpenBLAS threads; 0 = CPUs - 1, at least 1" },

	{ .path = "jobs.max_retries", .type = CONFIG_INT, .offset = OFF(jobs.max_retries),
	  .def_num = 3, .min = 0, .max = 1000, .reload = true,
	  .help = "retries of a failed checkpoint before it is recorded as failed" },
	{ .path = "jobs.retry_backoff_ms", .type = CONFIG_INT, .offset = OFF(jobs.retry_backoff_ms),
	  .def_num = 5000, .min = 0, .max = MS_DAY, .reload = true,
	  .help = "wait before the first retry; doubled for each further one" },
	{ .path = "jobs.retry_backoff_max_ms", .type = CONFIG_INT,
	  .offset = OFF(jobs.retry_backoff_max_ms), .def_num = 300000, .min = 0, .max = MS_DAY,
	  .reload = true, .help = "longest wait between retries" },

	{ .path = "limits.queue_depth", .type = CONFIG_INT, .offset = OFF(limits.queue_depth),
	  .def_num = 4096, .min = 1, .max = 1000000, .reload = true,
	  .help = "checkpoints waiting to be computed" },
	{ .path = "limits.request_bytes", .type = CONFIG_INT, .offset = OFF(limits.request_bytes),
	  .def_num = 65536, .min = 256, .max = 16777216,
	  .help = "largest query request; a larger one drops the connection" },
	{ .path = "limits.reply_bytes", .type = CONFIG_INT, .offset = OFF(limits.reply_bytes),
	  .def_num = 67108864, .min = 4096, .max = 1073741824, .reload = true,
	  .help = "largest query reply; a larger one is refused with an error reply" },
	{ .path = "limits.journal_line_bytes", .type = CONFIG_INT,
	  .offset = OFF(limits.journal_line_bytes), .def_num = 16777216, .min = 4096,
	  .max = 268435456, .help = "largest journal record" },
	{ .path = "limits.journal_bytes", .type = CONFIG_INT, .offset = OFF(limits.journal_bytes),
	  .def_num = 4294967296.0, .min = 1048576, .max = 1099511627776.0,
	  .help = "largest journal file; appends beyond it fail" },
	{ .path = "limits.checkpoints", .type = CONFIG_INT, .offset = OFF(limits.checkpoints),
	  .def_num = 100000, .min = 1, .max = 10000000,
	  .help = "entries read from the watched directory" },
	{ .path = "limits.shutdown_ms", .type = CONFIG_INT, .offset = OFF(limits.shutdown_ms),
	  .def_num = 10000, .min = 0, .max = 600000, .reload = true,
	  .help = "how long a stop waits for the running job before abandoning it" },

	{ .path = "alerts.enabled", .type = CONFIG_BOOL, .offset = OFF(alerts.enabled),
	  .def_num = 1, .help = "evaluate alerts as results land" },
	{ .path = "alerts.groups", .type = CONFIG_STRING_ARRAY, .offset = OFF(alerts.groups),
	  .max = 1024, .help = "probe groups to judge; empty = every group of the latest result "
			       "(\"all\" too, unless there is only one other group)" },
#define PLATEAU_SECTION(SECTION, OFFSET, METRIC, WHAT) \
	{ .path = "alerts." SECTION ".metric", .type = CONFIG_STRING, .offset = OFFSET(metric), \
	  .def_str = METRIC, .min = 1, .max = 128, .check = check_metric, \
	  .help = "metric path under result.groups[<group>] of " WHAT }, \
	{ .path = "alerts." SECTION ".threshold", .type = CONFIG_DOUBLE, \
	  .offset = OFFSET(threshold), .def_num = 0.01, .min = 0, .max = 1e9, \
	  .help = "least fall that counts as an improvement of the best value" }, \
	{ .path = "alerts." SECTION ".threshold_mode", .type = CONFIG_ENUM, \
	  .offset = OFFSET(threshold_mode), .def_str = "rel", .enums = config_threshold_modes, \
	  .help = "rel: better below best * (1 - threshold); abs: below best - threshold" }, \
	{ .path = "alerts." SECTION ".patience", .type = CONFIG_INT, .offset = OFFSET(patience), \
	  .def_num = 5, .min = 0, .max = 1000000, \
	  .help = "checkpoints without improvement tolerated; one more starts a plateau" }, \
	{ .path = "alerts." SECTION ".cooldown", .type = CONFIG_INT, .offset = OFFSET(cooldown), \
	  .def_num = 2, .min = 0, .max = 1000000, \
	  .help = "checkpoints after a plateau starts during which no new one is counted" }, \
	{ .path = "alerts." SECTION ".min_checkpoints", .type = CONFIG_INT, \
	  .offset = OFFSET(min_checkpoints), .def_num = 8, .min = 0, .max = 10000000, \
	  .help = "checkpoints with a value before the metric is judged at all" }
	PLATEAU_SECTION("loss", OFF_LOSS, "loss", "the loss judged by grokking"),
	PLATEAU_SECTION("distance", OFF_DIST, "pathway_distance",
			"the pathway distance judged by grokking and generalization_saturated"),
#undef PLATEAU_SECTION
	{ .path = "alerts.plateaus", .type = CONFIG_OBJECT_ARRAY, .offset = OFF(alerts.plateaus),
	  .max = 64, .fields = plateau_fields, .elem_size = sizeof(struct config_plateau),
	  .help = "extra plateau alerts: [{\"metric\", \"mode\", \"threshold\", \"threshold_mode\", "
		  "\"patience\", \"cooldown\", \"min_checkpoints\"}, ...]" },
	{ .path = "alerts.routing_collapse.dead_experts", .type = CONFIG_INT,
	  .offset = OFF(alerts.collapse_dead_experts), .def_num = 1, .min = 0, .max = 1e9,
	  .help = "fire when health.overall.dead_experts reaches this; 0 = off" },
	{ .path = "alerts.routing_collapse.max_imbalance", .type = CONFIG_DOUBLE,
	  .offset = OFF(alerts.collapse_max_imbalance), .def_num = 3.0, .min = 0, .max = 1e9,
	  .help = "fire when health.overall.max_imbalance exceeds this; 0 = off" },
	{ .path = "alerts.hooks", .type = CONFIG_OBJECT_ARRAY, .offset = OFF(alerts.hooks),
	  .max = 64, .fields = hook_fields, .elem_size = sizeof(struct config_hook),
	  .help = "programs run on alert transitions: [{\"alert\": \"grokking\", \"argv\": "
		  "[\"/path\", \"arg\"]}, ...]" },
	{ .path = "alerts.hook_timeout_ms", .type = CONFIG_INT, .offset = OFF(alerts.hook_timeout_ms),
	  .def_num = 30000, .min = 1, .max = MS_DAY,
	  .help = "a hook still running after this gets SIGTERM" },
	{ .path = "alerts.hook_kill_grace_ms", .type = CONFIG_INT,
	  .offset = OFF(alerts.hook_kill_grace_ms), .def_num = 5000, .min = 1, .max = 3600000,
	  .help = "then, after this, SIGKILL" },
	{ .path = "alerts.hook_concurrency", .type = CONFIG_INT,
	  .offset = OFF(alerts.hook_concurrency), .def_num = 4, .min = 1, .max = 1024,
	  .help = "hooks running at once; others wait in the queue" },
	{ .path = "alerts.hook_queue", .type = CONFIG_INT, .offset = OFF(alerts.hook_queue),
	  .def_num = 256, .min = 0, .max = 1000000,
	  .help = "hooks waiting to run; beyond it a transition's hooks are refused" },
	{ .path = "alerts.hook_output_bytes", .type = CONFIG_INT,
	  .offset = OFF(alerts.hook_output_bytes), .def_num = 65536, .min = 0, .max = 16777216,
	  .help = "stdout and stderr kept per hook run, each; the rest is counted and dropped" },
	{ .path = NULL },
};

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
	if (config_endpoint_is_local(endpoint) || c->publish.curve.server_secret_key_file[0] ||
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
	for (int i = 0; i < c->alerts.plateaus.n; i++) {
		const struct config_plateau *p = (const struct config_plateau *)c->alerts.plateaus.v + i;

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

double config_epsilon_for(const struct config *c, const char *group)
{
	const struct config_epsilon *eg = c->metrics.epsilon_groups.v;

	for (int i = 0; i < c->metrics.epsilon_groups.n; i++)
		if (!strcmp(eg[i].group, group))
			return eg[i].epsilon;
	return c->metrics.epsilon;
}

bool config_endpoint_is_local(const char *ep)
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
