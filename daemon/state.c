/*
 * state.c — the state directory of state.h, its one writer.
 *
 * In order: opening (the journal, then series.json and the archive of an
 * older probe's series); the result store over the journal (appends, the
 * memorized subsets recomputed in memory); the kept vectors (writing them
 * from the worker, reading them back at start-up, the newest token record).
 */
#include "state.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/file.h"
#include "engine/routing_file.h"
#include "engine/sys.h"
#include "log.h"

#define SERIES_FILE_MAX 65536
#define CONS_FILE_MAX (256u * 1024u * 1024u)

struct state {
	char *dir;
	struct journal *journal;
	struct journal_limits lim;
	int64_t tokens_step; /* the step whose tokens.safetensors is kept, or -1 */
	void (*note)(void *ud, int level, const char *msg);
	void *ud;
};

/* ---- opening ------------------------------------------------------------------------ */

static void note(const struct state *s, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void note(const struct state *s, int level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!s->note)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	s->note(s->ud, level, msg);
}

static int open_journal(struct state *s, struct gw_err *err)
{
	int r = journal_open(s->dir, s->lim.line_bytes ? &s->lim : NULL, &s->journal, err);

	if (r == -EBUSY)
		return gw_errf(err, r, "\"%s\": another grokwatchd is using this state directory",
			       s->dir);
	if (r == -EBADMSG || (r == -EFBIG && strstr(err->msg, "\" line "))) {
		/* Damage in the middle: name the way out, or under systemd this
		 * is a restart loop. */
		char msg[1024];

		snprintf(msg, sizeof(msg), "%.200s; 'grokwatchd journal check %.100s' lists the damaged "
			 "lines, 'grokwatchd journal repair %.100s' moves them aside and keeps every good record",
			 err->msg, s->dir, s->dir);
		return gw_errf(err, r, "%s", msg);
	}
	if (r < 0)
		return r;
	if (journal_torn_bytes(s->journal))
		note(s, LOG_LVL_WARN,
		     "\"%s/%s\": ignored a torn last record of %" PRIu64 " bytes (a crash while writing)",
		     s->dir, JOURNAL_FILE, journal_torn_bytes(s->journal));
	return 0;
}

/* Move the series of probe `old` to STATE/previous-<old prefix>-<now>/ and
 * open a fresh journal. */
static int archive(struct state *s, const char *old, const char *probe_hash, struct gw_err *err)
{
	static const char *const moved[] = { JOURNAL_FILE, "routing", STATE_SERIES_FILE };
	char dir[PATH_MAX], from[PATH_MAX], to[PATH_MAX];
	int r = 0;

	snprintf(dir, sizeof(dir), "%s/previous-%.12s-%lld", s->dir, old, (long long)time(NULL));
	note(s, LOG_LVL_WARN,
	     "the probe set changed (hash %.12s, was %.12s): a new series starts; the old one moves to \"%s\"",
	     probe_hash, old, dir);
	journal_free(s->journal);
	s->journal = NULL;
	if (mkdir(dir, 0700) < 0)
		return gw_errf(err, -errno, "\"%s\": %s", dir, strerror(errno));
	for (size_t i = 0; i < sizeof(moved) / sizeof(moved[0]); i++) {
		if (snprintf(from, sizeof(from), "%s/%s", s->dir, moved[i]) >= (int)sizeof(from) ||
		    snprintf(to, sizeof(to), "%s/%s", dir, moved[i]) >= (int)sizeof(to))
			return gw_errf(err, -ENAMETOOLONG, "\"%s\": path too long", dir);
		if (gw_sys.rename(from, to) < 0 && errno != ENOENT)
			return gw_errf(err, -errno, "\"%s\": %s", from, strerror(errno));
	}
	r = open_journal(s, err);
	return r;
}

static int write_series_file(struct state *s, const char *probe_hash, struct gw_err *err)
{
	cJSON *o = cJSON_CreateObject();
	char *text;
	int r;

	cJSON_AddStringToObject(o, "probe_hash", probe_hash);
	text = cJSON_PrintUnformatted(o);
	if (!text)
		gw_bug(__FILE__, __LINE__, "cJSON_PrintUnformatted failed (out of memory)");
	r = gw_file_write_atomic(s->dir, STATE_SERIES_FILE, text, strlen(text), err);
	free(text);
	cJSON_Delete(o);
	return r;
}

/* The series is of one probe: tie it to probe_hash, or archive it. */
static int check_series(struct state *s, const char *probe_hash, struct gw_err *err)
{
	char *path = gw_join(s->dir, '/', STATE_SERIES_FILE), *text = NULL;
	const char *old;
	cJSON *o = NULL;
	size_t len;
	int r;

	r = gw_file_read(path, SERIES_FILE_MAX, &text, &len, err);
	if (r == -ENOENT)
		goto write;
	if (r < 0)
		goto out;
	o = cJSON_ParseWithLength(text, len);
	old = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "probe_hash"));
	if (old && !strcmp(old, probe_hash)) {
		r = 0;
		goto out;
	}
	if (old) {
		if ((r = archive(s, old, probe_hash, err)) < 0)
			goto out;
	} else {
		/* Unreadable: the series cannot be tied to a probe any more; it
		 * is taken as this probe's and the file written anew. */
		note(s, LOG_LVL_WARN, "\"%s\": no probe_hash in it; taking the series as the current probe's",
		     path);
	}
write:
	r = write_series_file(s, probe_hash, err);
out:
	cJSON_Delete(o);
	free(text);
	free(path);
	return r;
}

int state_open(const struct state_opts *o, struct state **ret_state, struct gw_err *err)
{
	struct state *s = gw_calloc(1, sizeof(*s));
	int r;

	s->dir = gw_strdup(o->dir);
	s->lim = o->lim;
	s->tokens_step = -1;
	s->note = o->note;
	s->ud = o->ud;
	if ((r = open_journal(s, err)) < 0)
		goto out;
	if (o->probe_hash && (r = check_series(s, o->probe_hash, err)) < 0)
		goto out;
	*ret_state = s;
	s = NULL;
	r = 0;
out:
	state_free(s);
	return r;
}

void state_free(struct state *s)
{
	if (!s)
		return;
	journal_free(s->journal);
	free(s->dir);
	free(s);
}

const char *state_dir(const struct state *s)
{
	return s->dir;
}

/* ---- the result store ---------------------------------------------------------------- */

int state_append_result(struct state *s, const cJSON *result, struct gw_err *err)
{
	return journal_append_result(s->journal, result, err);
}

int state_append(struct state *s, const cJSON *event, struct gw_err *err)
{
	return journal_append(s->journal, event, err);
}

const struct series *state_results(const struct state *s)
{
	return journal_results(s->journal);
}

const cJSON *state_result(const struct state *s, int64_t step)
{
	return journal_result(s->journal, step);
}

bool state_is_done(const struct state *s, int64_t step)
{
	return journal_is_done(s->journal, step);
}

const struct series *state_failures(const struct state *s)
{
	return journal_failures(s->journal);
}

const cJSON *state_alerts(const struct state *s)
{
	return journal_alerts(s->journal);
}

bool state_delivered(const struct state *s, int64_t alert, int hook)
{
	return journal_delivered(s->journal, alert, hook);
}

size_t state_memo_apply(struct state *s, const struct metrics_memo *memo, size_t n,
			int64_t except, int64_t *ret_lowest)
{
	int64_t lowest = INT64_MAX;
	size_t changed = 0;

	for (size_t i = 0; i < n; i++) {
		const cJSON *res = journal_result(s->journal, memo[i].step);
		cJSON *c;

		if (!res || memo[i].step == except || !routing_series_memo_differs(res, &memo[i]))
			continue; /* most steps' subsets do not move: no copy of their result */
		c = cJSON_Duplicate(res, 1);
		if (routing_series_memo_apply(c, &memo[i]) < 0 || cJSON_Compare(c, res, 1)) {
			cJSON_Delete(c);
			continue;
		}
		journal_set_result(s->journal, memo[i].step, c);
		if (memo[i].step < lowest)
			lowest = memo[i].step;
		changed++;
	}
	if (ret_lowest)
		*ret_lowest = lowest;
	return changed;
}

/* ---- kept vectors ----------------------------------------------------------------------- */

int state_routing_dir(struct state *s, int64_t step, char **ret_path, struct gw_err *err)
{
	return journal_routing_dir(s->journal, step, ret_path, err);
}

static cJSON *doubles_json(const double *v, int n)
{
	cJSON *a = cJSON_CreateArray();

	for (int i = 0; i < n; i++)
		cJSON_AddItemToArray(a, isfinite(v[i]) ? cJSON_CreateNumber(v[i]) : cJSON_CreateNull());
	return a;
}

/* r written to path without router matrices and, unless `tokens`, without
 * per-token records. */
static int write_routing(const char *path, const struct routing *r, bool tokens,
			 struct gw_err *err)
{
	struct routing slim = *r;
	float **no_router = gw_calloc((size_t)(r->n_layers > 0 ? r->n_layers : 1), sizeof(float *));
	int rc;

	if (!tokens) {
		slim.has_tokens = false;
		slim.tok_offset = NULL;
		slim.topk_ids = NULL;
		slim.topk_w = NULL;
		slim.entropy = NULL;
		slim.lse = NULL;
	}
	slim.router = no_router;
	rc = routing_file_write(path, &slim, err);
	free(no_router);
	return rc;
}

int state_keep(const char *dir, const struct routing *r, const struct metrics_cons *cons,
	       struct gw_err *err)
{
	char *path = gw_join(dir, '/', STATE_ROUTING_KEEP), *text = NULL;
	cJSON *o = cJSON_CreateObject();
	int rc;

	rc = write_routing(path, r, false, err);
	if (rc < 0)
		goto out;
	if (cons->c) {
		cJSON_AddItemToObject(o, "c", doubles_json(cons->c, cons->n_samples));
		cJSON_AddItemToObject(o, "adj", doubles_json(cons->adj, cons->n_samples));
	} else {
		cJSON_AddStringToObject(o, "note", cons->note ? cons->note : "");
	}
	text = cJSON_PrintUnformatted(o);
	if (!text)
		gw_bug(__FILE__, __LINE__, "cJSON_PrintUnformatted failed (out of memory)");
	rc = gw_file_write_atomic(dir, STATE_CONS_FILE, text, strlen(text), err);
out:
	cJSON_Delete(o);
	free(text);
	free(path);
	return rc;
}

int state_keep_tokens(const char *dir, const struct routing *r, struct gw_err *err)
{
	char *path = gw_join(dir, '/', STATE_TOKENS_KEEP);
	int rc = write_routing(path, r, true, err);

	free(path);
	return rc;
}

static char *tokens_path(const struct state *s, int64_t step)
{
	char rel[64];

	snprintf(rel, sizeof(rel), "routing/%lld/%s", (long long)step, STATE_TOKENS_KEEP);
	return gw_join(s->dir, '/', rel);
}

void state_tokens_kept(struct state *s, int64_t step)
{
	if (s->tokens_step >= 0 && s->tokens_step != step) {
		char *old = tokens_path(s, s->tokens_step);

		if (gw_sys.unlink(old) < 0 && errno != ENOENT)
			note(s, LOG_LVL_WARN, "\"%s\": %s", old, strerror(errno));
		free(old);
	}
	s->tokens_step = step;
}

/* Remove the token records of every step but `keep`: a crash between the
 * journal append of a new step and the removal of its predecessor's
 * records leaves two. */
static void prune_tokens(struct state *s, int64_t keep)
{
	char *rdir = gw_join(s->dir, '/', "routing");
	DIR *dp = opendir(rdir);
	struct dirent *de;

	while (dp && (de = readdir(dp))) {
		char *end;
		long long step;
		char *old;

		errno = 0;
		step = strtoll(de->d_name, &end, 10);
		if (de->d_name[0] < '0' || de->d_name[0] > '9' || *end || errno || step == keep)
			continue;
		old = tokens_path(s, step);
		if (gw_sys.unlink(old) == 0)
			note(s, LOG_LVL_INFO, "\"%s\": removed (step %lld is the newest)", old,
			     (long long)keep);
		else if (errno != ENOENT)
			note(s, LOG_LVL_WARN, "\"%s\": %s", old, strerror(errno));
		free(old);
	}
	if (dp)
		closedir(dp);
	free(rdir);
}

int state_read_tokens(struct state *s, int64_t step, struct routing **ret_r, struct gw_err *err)
{
	char *path = tokens_path(s, step);
	struct routing *r = NULL;
	int rc = routing_file_read(path, &r, err);

	free(path);
	if (rc < 0)
		return rc;
	r->step = step;
	s->tokens_step = step;
	prune_tokens(s, step);
	*ret_r = r;
	return 0;
}

static int read_doubles(const char *what, const cJSON *a, int n, double **ret, struct gw_err *err)
{
	const cJSON *x;
	double *v;
	int i = 0;

	if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n)
		return gw_errf(err, -EBADMSG, "\"%s\": expected an array of %d numbers", what, n);
	v = gw_malloc((size_t)n * sizeof(double));
	cJSON_ArrayForEach(x, a) {
		if (cJSON_IsNull(x)) {
			v[i++] = NAN;
		} else if (cJSON_IsNumber(x)) {
			v[i++] = x->valuedouble;
		} else {
			free(v);
			return gw_errf(err, -EBADMSG, "\"%s\": item %d is not a number", what, i);
		}
	}
	*ret = v;
	return 0;
}

int state_read_kept(struct state *s, int64_t step, struct routing **ret_r,
		    struct metrics_cons **ret_cons, struct gw_err *err)
{
	struct metrics_cons *cons = gw_calloc(1, sizeof(*cons));
	struct routing *r = NULL;
	char *dir = NULL, *path = NULL, *cpath = NULL, *text = NULL;
	cJSON *o = NULL;
	size_t len;
	int rc;

	if ((rc = state_routing_dir(s, step, &dir, err)) < 0)
		goto out;
	path = gw_join(dir, '/', STATE_ROUTING_KEEP);
	cpath = gw_join(dir, '/', STATE_CONS_FILE);
	rc = routing_file_read(path, &r, err);
	if (rc < 0)
		goto out;
	rc = gw_file_read(cpath, CONS_FILE_MAX, &text, &len, err);
	if (rc < 0)
		goto out;
	o = cJSON_ParseWithLength(text, len);
	if (!cJSON_IsObject(o)) {
		rc = gw_errf(err, -EBADMSG, "\"%s\": not a JSON object", cpath);
		goto out;
	}
	cons->n_samples = r->n_samples;
	if (cJSON_GetObjectItemCaseSensitive(o, "c")) {
		rc = read_doubles(cpath, cJSON_GetObjectItemCaseSensitive(o, "c"), r->n_samples,
				  &cons->c, err);
		if (rc == 0)
			rc = read_doubles(cpath, cJSON_GetObjectItemCaseSensitive(o, "adj"),
					  r->n_samples, &cons->adj, err);
		if (rc < 0)
			goto out;
	} else {
		cons->note = "no router weights";
	}
	r->step = step;
	*ret_r = r;
	*ret_cons = cons;
	r = NULL;
	cons = NULL;
	rc = 0;
out:
	metrics_cons_free(cons);
	cJSON_Delete(o);
	free(text);
	routing_free(r);
	free(cpath);
	free(path);
	free(dir);
	return rc;
}
