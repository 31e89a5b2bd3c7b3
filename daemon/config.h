/*
 * config.h — grokwatchd's configuration: one JSON file read through one
 * declarative table (config_keys[]), in the manner of Redis's config.c.
 *
 * Every key has a dotted path ("watch.quiet_period_ms"), a type, a default,
 * bounds, whether SIGHUP applies it, a line of help and the man page's
 * prose.  The file is a JSON object whose nesting follows the dots; a key
 * that is absent takes its default.  The table is the one source of the
 * documentation (config_dump: the shipped file, the README's key table,
 * grokwatchd.json(5)'s KEYS) and of reload (config_reload: per section,
 * the daemon's apply callback).  Refused, with
 * the file, the line and the key path in the message:
 *
 *   "grokwatchd.json" line 7: unknown key "watch.rot"
 *   "grokwatchd.json" line 9: watch.quiet_period_ms: -5 is below the minimum 0
 *   "grokwatchd.json" line 4: duplicate key "watch.root" (first on line 3)
 *   "grokwatchd.json" line 12: not valid JSON
 *
 * Line numbers.  cJSON reports where a syntax error is (return_parse_end),
 * and the line is the number of newlines before it.  It does not say where
 * a parsed value came from, so for semantic errors the text goes through
 * engine/json.h's pre-scan first, which records for every JSON value in
 * document order the line where it starts (for an object member: the line
 * of its key), and refuses invalid UTF-8 and \u0000 in strings.  cJSON keeps
 * members in document order, duplicates included, so the n-th node of a
 * pre-order walk of the cJSON tree is the n-th value the scan saw; if the
 * counts ever disagree, messages omit the line rather than give a wrong one
 * (fuzz_json asserts that they agree).
 *
 * Types: string, int (int64, a JSON number with no fraction), double (which
 * may also take one word, as metrics.epsilon takes "auto"), bool,
 * enum (a string from a fixed list), string array, object array (each
 * element an object read through a sub-table, e.g. metrics.epsilon_groups).
 * For strings `max` bounds the length in bytes, for arrays the count.
 *
 * Threads: config_parse/config_load/config_free touch nothing global (cJSON
 * error state aside, which config.c does not use) and may run on any thread;
 * a struct config is read-only once loaded.
 */
#ifndef GW_DAEMON_CONFIG_H
#define GW_DAEMON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"

#define CONFIG_FILE_MAX (1024 * 1024) /* bytes in a config file */
#define CONFIG_STRING_MAX 4096        /* bytes in a string value, unless the key says less */

enum config_type {
	CONFIG_STRING,
	CONFIG_INT,
	CONFIG_DOUBLE,
	CONFIG_BOOL,
	CONFIG_ENUM,
	CONFIG_STRING_ARRAY,
	CONFIG_OBJECT_ARRAY,
};

enum config_watch_mode { CONFIG_WATCH_AUTO, CONFIG_WATCH_EVENTS, CONFIG_WATCH_POLL };
enum config_probe_format { CONFIG_PROBE_JSONL, CONFIG_PROBE_U16, CONFIG_PROBE_U32 };
enum config_log_level { CONFIG_LOG_ERROR, CONFIG_LOG_WARN, CONFIG_LOG_INFO, CONFIG_LOG_DEBUG };
enum config_plateau_mode { CONFIG_PLATEAU_MIN, CONFIG_PLATEAU_MAX };
enum config_threshold_mode { CONFIG_THRESHOLD_REL, CONFIG_THRESHOLD_ABS, CONFIG_THRESHOLD_SE };

struct config_strv {
	char **v;
	int n;
};

/* An object array: n elements of the key's elem_size bytes each. */
struct config_objv {
	void *v;
	int n;
};

/* One element of metrics.epsilon_groups: a per-group memorization
 * threshold that overrides metrics.epsilon (METRICS_EPSILON_AUTO for
 * "auto"). */
struct config_epsilon {
	char *group;
	double epsilon;
};

/* One plateau detector (alert.h has the exact rule): alerts.loss,
 * alerts.distance (mode fixed at min: they are judged falling) and each
 * element of alerts.plateaus. */
struct config_plateau {
	char *metric;           /* dotted path under result.groups[<group>] */
	int mode;               /* enum config_plateau_mode */
	double threshold;
	int threshold_mode;     /* enum config_threshold_mode */
	int64_t patience, cooldown, min_checkpoints; /* in checkpoints */
};

/* One element of alerts.hooks: run argv (no shell) on every transition of
 * alert `alert` ("*" = every alert). */
struct config_hook {
	char *alert;
	struct config_strv argv;
};

struct config {
	char *path;      /* the file it was read from (or the `what` of config_parse) */
	char *run;       /* "" = the last component of watch.root */
	char *state_dir;
	int log_level;   /* enum config_log_level */
	struct {
		char *root;
		struct config_strv patterns;
		bool step_from_trainer_state;
		char *marker; /* "" = none */
		int64_t quiet_period_ms;
		int mode; /* enum config_watch_mode */
		int64_t poll_interval_ms;
	} watch;
	struct {
		char *path;
		int format; /* enum config_probe_format */
		int64_t sample_length, count, offset;
		char *group;
	} probe;
	struct {
		double tau;
		int64_t pair_budget;
		int64_t seed;
		double epsilon;        /* METRICS_EPSILON_AUTO for "auto" */
		struct config_objv epsilon_groups; /* of struct config_epsilon */
		double delta;
		double memorized_share;
		double consistency_floor;
		bool per_layer_distance;
	} metrics;
	struct {
		char *endpoint;
		char *query_endpoint;
		int64_t sndhwm;
		int64_t max_message_bytes;
		int64_t heartbeat_ms;
		bool allow_insecure_remote;
		struct {
			char *server_secret_key_file; /* "" = CURVE off */
			char *server_public_key_file; /* "" = not checked */
		} curve;
	} publish;
	struct {
		int64_t blas; /* 0 = CPUs - 1, at least 1 */
	} threads;
	struct {
		int64_t max_retries;
		int64_t retry_backoff_ms;
		int64_t retry_backoff_max_ms;
	} jobs;
	struct {
		int64_t queue_depth;
		int64_t request_bytes;
		int64_t reply_bytes;
		int64_t journal_line_bytes;
		int64_t journal_bytes;
		int64_t checkpoints;
		int64_t shutdown_ms;
		int64_t connections;
	} limits;
	struct {
		bool enabled;
		struct config_strv groups;       /* empty = every group of the latest result */
		struct config_plateau loss, distance;
		struct config_objv plateaus;     /* of struct config_plateau */
		int64_t collapse_dead_experts;   /* alerts.routing_collapse.dead_experts, 0 = off */
		double collapse_max_imbalance;   /* alerts.routing_collapse.max_imbalance, 0 = off */
		struct config_objv hooks;        /* of struct config_hook */
		int64_t hook_timeout_ms, hook_kill_grace_ms, hook_concurrency, hook_queue,
			hook_output_bytes;
		struct {
			struct config_strv urls;  /* base URLs; empty = no sender */
			int64_t resend_ms, timeout_ms;
			char *user;               /* basic auth ("" = none), with password_file */
			char *password_file;
			char *bearer_token_file;  /* "" = none */
			char *ca_file;            /* "" = libcurl's default CA bundle */
		} alertmanager;
	} alerts;
};

/* One row of the table.  Fields that do not apply to a type are zero. */
struct config_key {
	const char *path;
	enum config_type type;
	size_t offset;                  /* of the field in struct config (or in the element) */
	const char *def_str;            /* string and enum default (NULL = "") */
	const char *const *def_strv;    /* string-array default, NULL-terminated (NULL = empty) */
	double def_num;                 /* int, double and bool default */
	double min, max;                /* value bounds; length / count bounds for strings, arrays */
	const char *word;               /* double: a string also taken, stored as word_value */
	double word_value;              /*   (outside min .. max, so it cannot be mistaken) */
	const char *const *enums;       /* enum values, NULL-terminated; index = stored int */
	const struct config_key *fields; /* object-array element fields, ended by a NULL path */
	size_t elem_size;               /* object-array element size */
	int (*check)(const char *value, struct gw_err *err); /* extra check of a string */
	bool reload;                    /* may change on SIGHUP without a restart */
	const char *help;               /* one line, for the README's table */
	const char *doc;                /* the man page's prose, in roff; NULL = help as a sentence */
};

/* The table, in the order of the shipped file; ended by a NULL path. */
extern const struct config_key config_keys[];

/*
 * Sections: the first component of a key's path ("watch" for
 * watch.quiet_period_ms; keys without a dot are the top level).  A section
 * is the unit of reload: config_reload calls one apply callback per section
 * whose reloadable keys changed.  The docs (config_dump) list the keys by
 * section, under its title.
 */
enum config_section {
	CONFIG_SECTION_TOP, /* run, state_dir, log_level */
	CONFIG_SECTION_WATCH,
	CONFIG_SECTION_PROBE,
	CONFIG_SECTION_METRICS,
	CONFIG_SECTION_PUBLISH,
	CONFIG_SECTION_THREADS,
	CONFIG_SECTION_JOBS,
	CONFIG_SECTION_LIMITS,
	CONFIG_SECTION_ALERTS,
	CONFIG_SECTIONS
};

struct config_section_info {
	const char *name;  /* the path component; "" for the top level */
	const char *title; /* what the section is about, or NULL */
	const char *doc;   /* man-page prose before its keys (config_dump's markup), or NULL */
};

/* Indexed by enum config_section. */
extern const struct config_section_info config_sections[CONFIG_SECTIONS];

/* The row of config_keys[] whose path is `path` ("metrics.tau"; not an
 * object array's fields), or NULL.  For checking a value given elsewhere
 * (analyze's options) against the table's type, bounds and enums. */
const struct config_key *config_key_find(const char *path);

/* The section of a row of config_keys[] (aborts on a path whose first
 * component names no section: a table error). */
enum config_section config_key_section(const struct config_key *k);

/* A config with every key at its default.  Never fails (aborts on OOM). */
struct config *config_new_defaults(void);

/*
 * Parse `len` bytes of `text` (need not be NUL-terminated; at most
 * CONFIG_FILE_MAX).  `what` names the input in messages (a file path).
 * On success *ret_config is a new config the caller frees with config_free.
 * Errors: -EINVAL (anything wrong with the content, message names `what`,
 * the line and the key), -EFBIG (over CONFIG_FILE_MAX).
 */
int config_parse(const char *what, const char *text, size_t len, struct config **ret_config,
		 struct gw_err *err);

/* Read and parse a file.  Extra errors: -ENOENT and other open/read errors
 * (-errno), -EINVAL for an empty file or one that is not a regular file,
 * -EFBIG for one over CONFIG_FILE_MAX. */
int config_load(const char *path, struct config **ret_config, struct gw_err *err);

void config_free(struct config *c); /* accepts NULL */

/*
 * Compare two configs key by key.  For every key whose value differs,
 * calls fn(ud, path, needs_restart) (fn may be NULL).  Returns the number
 * of differing keys that need a restart (keys whose table row has
 * reload = false); the caller applies the others and reports those.
 */
int config_diff(const struct config *old, const struct config *new_,
		void (*fn)(void *ud, const char *path, bool needs_restart), void *ud);

/*
 * SIGHUP: read `path` again and apply what may change while running.
 *
 * A file that is refused changes nothing: `running` stays as it was, no
 * callback is called, and the error comes back (those of config_load).
 * Otherwise, for every key whose value differs, in table order:
 *   - a key the table marks reload: its new value replaces the running one,
 *     and note(ud, path, false);
 *   - any other key: the running value stays, and note(ud, path, true).
 * Then, once per section with a changed reloadable key, in section order,
 * apply[section](ud, running), which finds the new values in `running`.
 * A NULL callback is allowed for a section whose reloadable keys the daemon
 * reads from the running config each time it uses them (jobs.*, say):
 * updating `running` is all it takes.  `note` may be NULL.
 * Returns the number of changed keys that need a restart (>= 0), or a
 * negative errno.  Loop thread (the callbacks reach the daemon's modules).
 */
typedef void (*config_apply_fn)(void *ud, const struct config *running);
int config_reload(struct config *running, const char *path,
		  const config_apply_fn apply[CONFIG_SECTIONS], void *ud,
		  void (*note)(void *ud, const char *path, bool needs_restart), struct gw_err *err);

/*
 * The documentation of the table, generated (config_doc.c): a new string
 * (caller frees) holding
 *   CONFIG_DUMP_JSON      the shipped config/grokwatchd.json: every key at
 *                         its default;
 *   CONFIG_DUMP_MARKDOWN  the README's key table (key, default, whether
 *                         SIGHUP applies it, help), between two comments;
 *   CONFIG_DUMP_MAN       grokwatchd.json(5)'s KEYS section, from a comment
 *                         before ".SH KEYS" to one after the last key: per
 *                         section a .SS heading and its doc; per key (and
 *                         object-array field, "path[].field") .TP, .B path,
 *                         the summary line, .br, then doc (or help).
 * tools/config_docs.py puts them in place and checks them.  Never fails
 * (aborts on OOM).
 */
enum config_dump_format { CONFIG_DUMP_JSON, CONFIG_DUMP_MARKDOWN, CONFIG_DUMP_MAN };
extern const char *const config_dump_formats[]; /* "json", "markdown", "man"; by enum */
char *config_dump(enum config_dump_format format);

/* The threshold epsilon for `group`: its epsilon_groups entry, else
 * metrics.epsilon. */
double config_epsilon_for(const struct config *c, const char *group);

/* The table's enum value names (for messages and docs). */
extern const char *const config_watch_modes[];
extern const char *const config_probe_formats[];
extern const char *const config_log_levels[];
extern const char *const config_plateau_modes[];
extern const char *const config_threshold_modes[];

#endif
