/*
 * journal.c — the durable history declared in journal.h.
 *
 * In order: checking an event and folding it into memory (shared by replay
 * and append, so the two can never disagree on what is valid); replay with
 * torn-tail repair; append; state files by atomic rename; routing
 * directories; queries.
 */
#include "journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/file.h"
#include "engine/json.h"
#include "engine/step.h"
#include "engine/sys.h"

#define CHUNK (64 * 1024)

struct journal {
	char *dir;
	char *path; /* dir/journal.jsonl */
	int fd, dirfd;
	struct journal_limits lim;
	uint64_t size;
	uint64_t torn;
	bool broken;
	struct series *results;
	struct series *failures;
	cJSON *alerts;
	uint64_t *delivered; /* alert index << 20 | hook index, in journal order */
	size_t n_delivered, cap_delivered;
};

/* ---- events ------------------------------------------------------------------ */

static int get_step(const cJSON *ev, int64_t *ret_step, struct gw_err *err)
{
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(ev, "step");

	if (!cJSON_IsNumber(s))
		return gw_errf(err, -EINVAL, "\"step\" is missing or not a number");
	if (json_step(s, ret_step) < 0)
		return gw_errf(err, -EINVAL, "\"step\" %g is not an integer in [0, %lld]",
			       s->valuedouble, (long long)STEP_MAX);
	return 0;
}

/* Check an event and, if `j` is not NULL, fold a copy of it into memory. */
static int apply(struct journal *j, const cJSON *ev, struct gw_err *err)
{
	const cJSON *kind = cJSON_GetObjectItemCaseSensitive(ev, "kind");
	int64_t step = 0;
	int r;

	if (!cJSON_IsObject(ev))
		return gw_errf(err, -EINVAL, "not a JSON object");
	if (!cJSON_IsString(kind))
		return gw_errf(err, -EINVAL, "\"kind\" is missing or not a string");
	if (!strcmp(kind->valuestring, "result")) {
		if ((r = get_step(ev, &step, err)) < 0)
			return r;
		if (j) {
			/* The label is the journal's, on disk only. */
			cJSON *res = cJSON_Duplicate(ev, 1);

			cJSON_DeleteItemFromObjectCaseSensitive(res, "kind");
			series_put(j->results, step, res);
			series_remove(j->failures, step);
		}
		return 0;
	}
	if (!strcmp(kind->valuestring, "failed")) {
		const cJSON *reason = cJSON_GetObjectItemCaseSensitive(ev, "reason");
		const cJSON *att = cJSON_GetObjectItemCaseSensitive(ev, "attempts");
		int64_t n;

		if ((r = get_step(ev, &step, err)) < 0)
			return r;
		if (!cJSON_IsString(reason))
			return gw_errf(err, -EINVAL, "\"reason\" is missing or not a string");
		if (att && json_int(att, 1, 1000000000, &n) != JSON_NUM_OK)
			return gw_errf(err, -EINVAL, "\"attempts\" is not an integer in [1, 1e9]");
		if (j)
			series_put(j->failures, step, cJSON_Duplicate(ev, 1));
		return 0;
	}
	if (!strcmp(kind->valuestring, "alert")) {
		if (j)
			cJSON_AddItemToArray(j->alerts, cJSON_Duplicate(ev, 1));
		return 0;
	}
	if (!strcmp(kind->valuestring, "delivery")) {
		int64_t alert, hook;

		if (json_int(cJSON_GetObjectItemCaseSensitive(ev, "alert"), 0, 1000000000000LL,
			     &alert) != JSON_NUM_OK)
			return gw_errf(err, -EINVAL, "\"alert\" is not an alert's index");
		if (json_int(cJSON_GetObjectItemCaseSensitive(ev, "hook"), 0, JOURNAL_HOOKS_MAX - 1,
			     &hook) != JSON_NUM_OK)
			return gw_errf(err, -EINVAL, "\"hook\" is not an integer in [0, %d]",
				       JOURNAL_HOOKS_MAX - 1);
		if (j) {
			if (j->n_delivered == j->cap_delivered) {
				j->cap_delivered = j->cap_delivered ? 2 * j->cap_delivered : 64;
				j->delivered = gw_realloc(j->delivered,
							  j->cap_delivered * sizeof(*j->delivered));
			}
			j->delivered[j->n_delivered++] = (uint64_t)alert << 20 | (uint64_t)hook;
		}
		return 0;
	}
	return gw_errf(err, -EINVAL, "unknown kind \"%.40s\"", kind->valuestring);
}

/* ---- replay -------------------------------------------------------------------- */

/* A complete line (without its newline): 0 if applied, else -EINVAL. */
static int replay_line(struct journal *j, const char *line, size_t len, struct gw_err *err)
{
	const char *end = NULL;
	cJSON *ev;
	int r;

	if (len == 0)
		return gw_errf(err, -EINVAL, "not valid JSON"); /* an empty line */
	if (memchr(line, 0, len))
		return gw_errf(err, -EINVAL, "a NUL byte");
	ev = cJSON_ParseWithLengthOpts(line, len, &end, 0);
	if (!ev)
		return gw_errf(err, -EINVAL, "not valid JSON");
	for (const char *p = end; p < line + len; p++)
		if ((unsigned char)*p > 32) {
			cJSON_Delete(ev);
			return gw_errf(err, -EINVAL, "text after the JSON object");
		}
	r = apply(j, ev, err);
	cJSON_Delete(ev);
	return r;
}

static int replay(struct journal *j, struct gw_err *err)
{
	char *chunk = gw_malloc(CHUNK), *line = NULL;
	size_t line_len = 0, line_cap = 0;
	uint64_t off = 0, good = 0, lineno = 1;
	bool too_long = false;
	struct gw_err e;
	int r = 0;

	for (;;) {
		ssize_t n = pread(j->fd, chunk, CHUNK, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = gw_errf(err, -errno, "\"%s\": %s", j->path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		for (ssize_t i = 0; i < n; i++) {
			char c = chunk[i];

			off++;
			if (c != '\n') {
				if (too_long)
					continue;
				if (line_len + 1 >= j->lim.line_bytes) {
					/* Keep scanning: over-long is an error only if a
					 * newline ends it; without one it is a torn tail. */
					too_long = true;
					continue;
				}
				if (line_len == line_cap) {
					line_cap = line_cap ? 2 * line_cap : 4096;
					line = gw_realloc(line, line_cap);
				}
				line[line_len++] = c;
				continue;
			}
			if (too_long) {
				r = gw_errf(err, -EFBIG, "\"%s\" line %" PRIu64 ": longer than %zu bytes",
					    j->path, lineno, j->lim.line_bytes);
				goto out;
			}
			if (replay_line(j, line, line_len, &e) < 0) {
				/* The last line of the file may be a torn write. */
				if (off == j->size)
					goto done;
				r = gw_errf(err, -EBADMSG, "\"%s\" line %" PRIu64 ": %s", j->path, lineno,
					    e.msg);
				goto out;
			}
			good = off;
			line_len = 0;
			lineno++;
		}
	}
done:
	if (good < j->size) {
		/* Cut the torn tail so the next append starts a fresh line. */
		if (ftruncate(j->fd, (off_t)good) < 0 || fsync(j->fd) < 0) {
			r = gw_errf(err, -errno, "\"%s\": truncating a torn last line: %s", j->path,
				    strerror(errno));
			goto out;
		}
		j->torn = j->size - good;
		j->size = good;
	}
out:
	free(line);
	free(chunk);
	return r;
}

static void remove_leftover_tmp(struct journal *j)
{
	int fd = openat(j->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);

		if (de->d_name[0] == '.' && n > 5 && !strcmp(de->d_name + n - 4, ".tmp"))
			unlinkat(j->dirfd, de->d_name, 0);
	}
	closedir(d);
}

int journal_open(const char *dir, const struct journal_limits *lim, struct journal **ret_journal,
		 struct gw_err *err)
{
	struct journal *j = gw_calloc(1, sizeof(*j));
	size_t n = strlen(dir) + sizeof(JOURNAL_FILE) + 1;
	struct stat st;
	int r;

	j->fd = j->dirfd = -1;
	j->dir = gw_strdup(dir);
	j->path = gw_malloc(n);
	snprintf(j->path, n, "%s/%s", dir, JOURNAL_FILE);
	j->lim.line_bytes = lim ? lim->line_bytes : 16u << 20;
	j->lim.file_bytes = lim ? lim->file_bytes : (uint64_t)4 << 30;
	GW_BUG_ON(j->lim.line_bytes < 2);
	j->results = series_new();
	j->failures = series_new();
	j->alerts = cJSON_CreateArray();

	if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
		r = gw_errf(err, -errno, "\"%s\": %s", dir, strerror(errno));
		goto out;
	}
	j->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (j->dirfd < 0) {
		r = gw_errf(err, -errno, "\"%s\": %s", dir, strerror(errno));
		goto out;
	}
	j->fd = openat(j->dirfd, JOURNAL_FILE, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (j->fd < 0) {
		r = gw_errf(err, -errno, "\"%s\": %s", j->path, strerror(errno));
		goto out;
	}
	if (flock(j->fd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK
			    ? gw_errf(err, -EBUSY, "\"%s\": in use by another process", j->path)
			    : gw_errf(err, -errno, "\"%s\": lock: %s", j->path, strerror(errno));
		goto out;
	}
	if (fstat(j->fd, &st) < 0) {
		r = gw_errf(err, -errno, "\"%s\": %s", j->path, strerror(errno));
		goto out;
	}
	j->size = (uint64_t)st.st_size;
	if (j->size > j->lim.file_bytes) {
		r = gw_errf(err, -EFBIG, "\"%s\": %" PRIu64 " bytes, more than the limit of %" PRIu64,
			    j->path, j->size, j->lim.file_bytes);
		goto out;
	}
	if ((r = replay(j, err)) < 0)
		goto out;
	remove_leftover_tmp(j);
	*ret_journal = j;
	j = NULL;
	r = 0;
out:
	journal_free(j);
	return r;
}

void journal_free(struct journal *j)
{
	if (!j)
		return;
	if (j->fd >= 0)
		close(j->fd); /* releases the flock */
	if (j->dirfd >= 0)
		close(j->dirfd);
	series_free(j->results);
	series_free(j->failures);
	cJSON_Delete(j->alerts);
	free(j->delivered);
	free(j->path);
	free(j->dir);
	free(j);
}

/* ---- append ---------------------------------------------------------------------- */

int journal_append(struct journal *j, const cJSON *event, struct gw_err *err)
{
	struct gw_err e;
	char *text = NULL;
	cJSON *clean = NULL;
	size_t len;
	int r;

	if (j->broken)
		return gw_errf(err, -EIO, "\"%s\": an earlier sync failed; not appending", j->path);
	if (apply(NULL, event, &e) < 0)
		return gw_errf(err, -EINVAL, "\"%s\": event refused: %s", j->path, e.msg);
	/* Unformatted output escapes newlines inside strings: one line. */
	text = cJSON_PrintUnformatted(event);
	if (!text)
		gw_bug(__FILE__, __LINE__, "cJSON_PrintUnformatted failed (out of memory)");
	len = strlen(text);
	if (!json_utf8_valid(text, len)) {
		/* A name or message with bytes that are not UTF-8 (a Latin-1
		 * directory name): the journal keeps the U+FFFD form, as sent. */
		free(text);
		clean = cJSON_Duplicate(event, 1);
		text = json_print_utf8(clean);
		len = strlen(text);
		event = clean;
	}
	text[len] = '\n'; /* replaces the NUL: text is len + 1 bytes from here on */
	if (len + 1 > j->lim.line_bytes) {
		r = gw_errf(err, -EFBIG, "\"%s\": a record of %zu bytes, more than the limit of %zu",
			    j->path, len + 1, j->lim.line_bytes);
		goto out;
	}
	if (j->size + len + 1 > j->lim.file_bytes) {
		r = gw_errf(err, -EFBIG, "\"%s\": full (limit %" PRIu64 " bytes)", j->path,
			    j->lim.file_bytes);
		goto out;
	}
	if ((r = gw_write_all(j->fd, text, len + 1)) < 0) {
		/* Take back a partial line, so the file stays whole lines. */
		if (ftruncate(j->fd, (off_t)j->size) < 0)
			j->broken = true;
		r = gw_errf(err, r, "\"%s\": write: %s", j->path, strerror(-r));
		goto out;
	}
	if (gw_sys.fdatasync(j->fd) < 0) {
		r = -errno;
		j->broken = true;
		r = gw_errf(err, r, "\"%s\": fdatasync: %s", j->path, strerror(-r));
		goto out;
	}
	j->size += len + 1;
	r = apply(j, event, NULL);
	GW_BUG_ON(r < 0);
out:
	cJSON_Delete(clean);
	free(text);
	return r;
}

int journal_append_result(struct journal *j, const cJSON *result, struct gw_err *err)
{
	cJSON *ev = cJSON_CreateObject(), *f;
	int r;

	if (!cJSON_IsObject(result)) {
		cJSON_Delete(ev);
		return gw_errf(err, -EINVAL, "\"%s\": event refused: not a JSON object", j->path);
	}
	cJSON_AddStringToObject(ev, "kind", "result");
	cJSON_ArrayForEach(f, result)
		if (strcmp(f->string, "kind") && strcmp(f->string, "type"))
			cJSON_AddItemToObject(ev, f->string, cJSON_Duplicate(f, 1));
	r = journal_append(j, ev, err);
	cJSON_Delete(ev);
	return r;
}

void journal_set_result(struct journal *j, int64_t step, cJSON *result)
{
	GW_BUG_ON(!series_get(j->results, step));
	series_put(j->results, step, result);
}

/* ---- state files ----------------------------------------------------------------- */

static int check_name(const char *name, struct gw_err *err)
{
	size_t n = strlen(name);

	if (!n || n > JOURNAL_STATE_NAME_MAX || name[0] == '.' || !strcmp(name, JOURNAL_FILE))
		goto bad;
	for (const char *c = name; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
		      *c == '.' || *c == '_' || *c == '-'))
			goto bad;
	return 0;
bad:
	return gw_errf(err, -EINVAL, "\"%.80s\": not a usable state file name", name);
}

int journal_write_state(struct journal *j, const char *name, const char *text, size_t len,
			struct gw_err *err)
{
	int r;

	if ((r = check_name(name, err)) < 0)
		return r;
	return gw_file_write_atomic(j->dir, name, text, len, err);
}

int journal_read_state(const struct journal *j, const char *name, size_t max, char **ret_text,
		       size_t *ret_len, struct gw_err *err)
{
	char *path;
	int r;

	if ((r = check_name(name, err)) < 0)
		return r;
	path = gw_join(j->dir, '/', name);
	r = gw_file_read(path, max, ret_text, ret_len, err);
	free(path);
	return r;
}

/* ---- routing directories --------------------------------------------------------- */

int journal_routing_dir(struct journal *j, int64_t step, char **ret_path, struct gw_err *err)
{
	char rel[48];
	size_t n;
	char *path;
	int fd;

	if (step < 0 || step > STEP_MAX)
		return gw_errf(err, -EINVAL, "step %lld out of range", (long long)step);
	if (mkdirat(j->dirfd, "routing", 0750) < 0 && errno != EEXIST)
		return gw_errf(err, -errno, "\"%s/routing\": %s", j->dir, strerror(errno));
	snprintf(rel, sizeof(rel), "routing/%lld", (long long)step);
	if (mkdirat(j->dirfd, rel, 0750) < 0) {
		if (errno != EEXIST)
			return gw_errf(err, -errno, "\"%s/%s\": %s", j->dir, rel, strerror(errno));
	} else {
		fd = openat(j->dirfd, "routing", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || fsync(fd) < 0) {
			int e = errno;

			if (fd >= 0)
				close(fd);
			return gw_errf(err, -e, "\"%s/routing\": fsync: %s", j->dir, strerror(e));
		}
		close(fd);
	}
	n = strlen(j->dir) + strlen(rel) + 2;
	path = gw_malloc(n);
	snprintf(path, n, "%s/%s", j->dir, rel);
	*ret_path = path;
	return 0;
}

/* ---- queries ----------------------------------------------------------------------- */

const cJSON *journal_result(const struct journal *j, int64_t step)
{
	return series_get(j->results, step);
}

bool journal_is_done(const struct journal *j, int64_t step)
{
	return series_get(j->results, step) != NULL;
}

const struct series *journal_results(const struct journal *j)
{
	return j->results;
}

const struct series *journal_failures(const struct journal *j)
{
	return j->failures;
}

int journal_failure(const struct journal *j, int64_t step, const char **ret_reason,
		    int *ret_attempts)
{
	const cJSON *f = series_get(j->failures, step), *att;

	if (!f)
		return -ENOENT;
	att = cJSON_GetObjectItemCaseSensitive(f, "attempts");
	if (ret_reason)
		*ret_reason = cJSON_GetObjectItemCaseSensitive(f, "reason")->valuestring;
	if (ret_attempts)
		*ret_attempts = att ? (int)att->valuedouble : 1;
	return 0;
}

const cJSON *journal_alerts(const struct journal *j)
{
	return j->alerts;
}

bool journal_delivered(const struct journal *j, int64_t alert, int hook)
{
	uint64_t key = (uint64_t)alert << 20 | (uint64_t)hook;

	for (size_t i = j->n_delivered; i-- > 0;)
		if (j->delivered[i] == key)
			return true;
	return false;
}

uint64_t journal_torn_bytes(const struct journal *j)
{
	return j->torn;
}

uint64_t journal_size(const struct journal *j)
{
	return j->size;
}

const char *journal_dir(const struct journal *j)
{
	return j->dir;
}

/* ---- check and repair (grokwatchd journal) ------------------------------------- */

/* One line of the file: [off, off + len) without its newline. */
struct jline {
	uint64_t lineno, off, len;
	bool newline;
	bool bad;         /* damaged (not a torn last line) */
	bool torn;        /* the last line, torn by a crash: start-up drops it */
	char why[160];
};

struct jscan {
	struct jline *v;
	size_t n, cap;
	size_t bad;
};

static void jscan_push(struct jscan *s, const struct jline *l)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 256;
		s->v = gw_realloc(s->v, s->cap * sizeof(*s->v));
	}
	s->v[s->n++] = *l;
}

/* Judge every line of map[0..size) as replay would, but go on past a
 * damaged one: each is recorded. */
static void scan_all(const char *map, uint64_t size, size_t line_bytes, struct jscan *s)
{
	uint64_t off = 0, lineno = 1;

	while (off < size) {
		const char *nl = memchr(map + off, '\n', (size_t)(size - off));
		struct jline l = { .lineno = lineno, .off = off };
		struct gw_err e = { "" };

		l.len = nl ? (uint64_t)(nl - (map + off)) : size - off;
		l.newline = nl != NULL;
		if (l.len + 1 > line_bytes)
			snprintf(l.why, sizeof(l.why), "longer than %zu bytes (%" PRIu64 ")", line_bytes,
				 l.len + 1);
		else if (replay_line(NULL, map + off, (size_t)l.len, &e) < 0)
			snprintf(l.why, sizeof(l.why), "%s", e.msg);
		if (l.why[0]) {
			/* As replay: the last line may be a write torn by a crash. */
			if (off + l.len + l.newline == size)
				l.torn = true;
			else
				l.bad = true;
		} else if (!l.newline) {
			l.torn = true;
			snprintf(l.why, sizeof(l.why), "no newline");
		}
		s->bad += l.bad;
		jscan_push(s, &l);
		off += l.len + l.newline;
		lineno++;
	}
}

static int map_journal(const char *dir, const struct journal_limits *lim, bool lock, int *ret_fd,
		       char **ret_path, const char **ret_map, uint64_t *ret_size, struct gw_err *err)
{
	char *path = gw_join(dir, '/', JOURNAL_FILE);
	int fd = open(path, (lock ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	void *map = NULL;
	struct stat st;
	int r;

	if (fd < 0) {
		r = gw_errf(err, -errno, "\"%s\": %s", path, strerror(errno));
		goto fail;
	}
	if (lock && flock(fd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK
			    ? gw_errf(err, -EBUSY, "\"%s\": in use by a running grokwatchd; stop it first",
				      path)
			    : gw_errf(err, -errno, "\"%s\": lock: %s", path, strerror(errno));
		goto fail;
	}
	if (fstat(fd, &st) < 0) {
		r = gw_errf(err, -errno, "\"%s\": %s", path, strerror(errno));
		goto fail;
	}
	if ((uint64_t)st.st_size > lim->file_bytes) {
		r = gw_errf(err, -EFBIG, "\"%s\": %lld bytes, more than the limit of %" PRIu64
			    " (limits.journal_bytes)", path, (long long)st.st_size, lim->file_bytes);
		goto fail;
	}
	if (st.st_size > 0) {
		map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map == MAP_FAILED) {
			r = gw_errf(err, -errno, "\"%s\": mmap: %s", path, strerror(errno));
			goto fail;
		}
	}
	*ret_fd = fd;
	*ret_path = path;
	*ret_map = map;
	*ret_size = (uint64_t)st.st_size;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	free(path);
	return r;
}

static struct journal_limits limits_or_default(const struct journal_limits *lim)
{
	struct journal_limits l = { 16u << 20, (uint64_t)4 << 30 };

	if (lim && lim->line_bytes)
		l.line_bytes = lim->line_bytes;
	if (lim && lim->file_bytes)
		l.file_bytes = lim->file_bytes;
	return l;
}

static void report_lines(const struct jscan *s, const char *path, journal_report_fn report,
			 void *ud)
{
	char msg[PATH_MAX + 256];

	for (size_t i = 0; i < s->n && report; i++) {
		const struct jline *l = &s->v[i];

		if (!l->bad && !l->torn)
			continue;
		snprintf(msg, sizeof(msg), "\"%s\" line %" PRIu64 " (byte %" PRIu64 ", %" PRIu64
			 " bytes): %s%s", path, l->lineno, l->off, l->len, l->why,
			 l->torn ? " (a torn last record, which start-up removes)" : "");
		report(ud, l->bad, msg);
	}
}

int journal_check(const char *dir, const struct journal_limits *lim, journal_report_fn report,
		  void *ud, struct journal_check_out *out, struct gw_err *err)
{
	struct journal_limits l = limits_or_default(lim);
	struct jscan s = { 0 };
	const char *map = NULL;
	uint64_t size = 0;
	char *path = NULL;
	int fd = -1, r;

	r = map_journal(dir, &l, false, &fd, &path, &map, &size, err);
	if (r < 0)
		return r;
	scan_all(map, size, l.line_bytes, &s);
	report_lines(&s, path, report, ud);
	memset(out, 0, sizeof(*out));
	out->lines = s.n;
	out->damaged = s.bad;
	for (size_t i = 0; i < s.n; i++)
		out->torn += s.v[i].torn;
	free(s.v);
	if (map)
		munmap((void *)map, (size_t)size);
	close(fd);
	free(path);
	return 0;
}

int journal_repair(const char *dir, const struct journal_limits *lim, journal_report_fn report,
		   void *ud, struct journal_check_out *out, char **ret_aside, struct gw_err *err)
{
	struct journal_limits l = limits_or_default(lim);
	struct gw_piece *good = NULL, *bad = NULL;
	size_t n_good = 0, n_bad = 0;
	struct jscan s = { 0 };
	const char *map = NULL;
	uint64_t size = 0;
	char *path = NULL, aside[80];
	int fd = -1, r;
	time_t now = time(NULL);
	struct tm tm;

	r = map_journal(dir, &l, true, &fd, &path, &map, &size, err);
	if (r < 0)
		return r;
	scan_all(map, size, l.line_bytes, &s);
	report_lines(&s, path, report, ud);
	memset(out, 0, sizeof(*out));
	out->lines = s.n;
	out->damaged = s.bad;
	if (ret_aside)
		*ret_aside = NULL;
	good = gw_calloc(s.n + 1, sizeof(*good));
	bad = gw_calloc(2 * s.n + 1, sizeof(*bad));
	for (size_t i = 0; i < s.n; i++) {
		const struct jline *ln = &s.v[i];

		out->torn += ln->torn;
		if (!ln->bad && !ln->torn) {
			/* Adjacent good lines are one piece. */
			if (n_good && (const char *)good[n_good - 1].buf + good[n_good - 1].len ==
					      map + ln->off)
				good[n_good - 1].len += ln->len + 1;
			else
				good[n_good++] = (struct gw_piece){ map + ln->off, ln->len + 1 };
			continue;
		}
		bad[n_bad++] = (struct gw_piece){ map + ln->off, ln->len };
		bad[n_bad++] = (struct gw_piece){ "\n", 1 };
	}
	if (!n_bad) {
		r = 0;
		goto out;
	}
	gmtime_r(&now, &tm);
	strftime(aside, sizeof(aside), "journal-damaged-%Y%m%dT%H%M%SZ.jsonl", &tm);
	/* The damaged lines are on disk before the journal loses them. */
	r = gw_file_write_atomicv(dir, aside, bad, n_bad, 0640, err);
	if (r < 0)
		goto out;
	r = gw_file_write_atomicv(dir, JOURNAL_FILE, good, n_good, 0640, err);
	if (r < 0)
		goto out;
	out->moved = n_bad / 2;
	if (ret_aside)
		*ret_aside = gw_join(dir, '/', aside);
out:
	free(good);
	free(bad);
	free(s.v);
	if (map)
		munmap((void *)map, (size_t)size);
	close(fd); /* after the rename: the lock is held throughout */
	free(path);
	return r;
}
