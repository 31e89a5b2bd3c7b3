/*
 * csv.c — the CSV of metric histories (csv.h states the format).
 *
 * Divided into: a record reader (one record's five fields at a time, from
 * a cursor over the whole text, with the line where the record began);
 * the table (series found or added by (run, group, metric), points
 * appended); and the entry points.  The tests/fuzz/fuzz_csv.c target
 * #includes this file, so it uses nothing of the tool but libc.
 */
#include "csv.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NFIELDS 5

struct cursor {
	const char *what;
	const char *p, *end;
	long line;              /* of p */
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 3, 4)))
static int fail(const struct cursor *c, long line, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->err && c->errlen)
		snprintf(c->err, c->errlen, "\"%s\" line %ld: %s", c->what, line, msg);
	return -EINVAL;
}

/* ---- records -------------------------------------------------------------------- */

/* One field into buf (NUL-terminated, at most CSV_FIELD_MAX bytes); the
 * cursor stops at the ',' or the line end after it. */
static int read_field(struct cursor *c, long line, int k, char *buf)
{
	size_t n = 0;

	if (c->p < c->end && *c->p == '"') {
		c->p++;
		for (;;) {
			if (c->p == c->end)
				return fail(c, line, "field %d: a quote that is never closed", k + 1);
			if (*c->p == '"') {
				if (c->p + 1 < c->end && c->p[1] == '"') {
					c->p++;
				} else {
					c->p++;
					break;
				}
			}
			if (*c->p == '\n')
				c->line++;
			if (n == CSV_FIELD_MAX)
				return fail(c, line, "field %d: longer than %d bytes", k + 1, CSV_FIELD_MAX);
			buf[n++] = *c->p++;
		}
		if (c->p < c->end && *c->p != ',' && *c->p != '\n' && *c->p != '\r')
			return fail(c, line, "field %d: text after its closing quote", k + 1);
	} else {
		while (c->p < c->end && *c->p != ',' && *c->p != '\n' && *c->p != '\r') {
			if (*c->p == '"')
				return fail(c, line, "field %d: a quote inside an unquoted field", k + 1);
			if (n == CSV_FIELD_MAX)
				return fail(c, line, "field %d: longer than %d bytes", k + 1, CSV_FIELD_MAX);
			buf[n++] = *c->p++;
		}
	}
	if (memchr(buf, 0, n))
		return fail(c, line, "field %d: a NUL byte", k + 1);
	buf[n] = 0;
	return 0;
}

/* The next record's five fields; 1 at the end of the text, 0 with a
 * record, <0 on a malformed one.  *ret_line: the line it began on. */
static int read_record(struct cursor *c, char f[NFIELDS][CSV_FIELD_MAX + 1], long *ret_line)
{
	long line = c->line;
	int k, r;

	if (c->p == c->end)
		return 1;
	*ret_line = line;
	for (k = 0; k < NFIELDS; k++) {
		if ((r = read_field(c, line, k, f[k])) < 0)
			return r;
		if (k < NFIELDS - 1) {
			if (c->p == c->end || *c->p != ',')
				return fail(c, line, "%d fields, expected %d", k + 1, NFIELDS);
			c->p++;
		}
	}
	if (c->p < c->end && *c->p == ',')
		return fail(c, line, "more than %d fields", NFIELDS);
	if (c->p < c->end && *c->p == '\r')
		c->p++;
	if (c->p < c->end) {
		if (*c->p != '\n')
			return fail(c, line, "a CR not followed by LF");
		c->p++;
		c->line++;
	}
	return 0;
}

/* ---- the table ------------------------------------------------------------------ */

void csv_table_free(struct csv_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++) {
		free(t->s[i].run);
		free(t->s[i].group);
		free(t->s[i].metric);
		free(t->s[i].x);
		free(t->s[i].y);
	}
	free(t->s);
	free(t);
}

static struct csv_series *series_for(struct csv_table *t, char f[NFIELDS][CSV_FIELD_MAX + 1])
{
	struct csv_series *s;

	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->s[i].run, f[0]) && !strcmp(t->s[i].group, f[1]) &&
		    !strcmp(t->s[i].metric, f[2]))
			return &t->s[i];
	if (t->n == CSV_SERIES_MAX)
		return NULL;
	s = &t->s[t->n];
	memset(s, 0, sizeof(*s));
	s->run = strdup(f[0]);
	s->group = strdup(f[1]);
	s->metric = strdup(f[2]);
	t->n++; /* freed with the table even when a strdup failed */
	return s;
}

static int parse_step(const char *s, long long *ret)
{
	long long v = 0;

	if (!*s || strlen(s) > 15)
		return -1;
	for (const char *c = s; *c; c++) {
		if (*c < '0' || *c > '9')
			return -1;
		v = v * 10 + (*c - '0');
	}
	if (v > CSV_STEP_MAX)
		return -1;
	*ret = v;
	return 0;
}

static int parse_value(const char *s, double *ret)
{
	char *end;
	double v;

	if (!*s) {
		*ret = NAN;
		return 0;
	}
	if (*s == ' ' || *s == '\t')
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (end == s || *end || !isfinite(v))
		return -1;
	*ret = v;
	return 0;
}

static int append(struct csv_series *s, int64_t x, double y)
{
	if ((s->n & (s->n - 1)) == 0) { /* 0, 1, 2, 4, ...: grow to the next power of two */
		size_t cap = s->n ? 2 * s->n : 1;
		int64_t *nx = realloc(s->x, cap * sizeof(*nx));
		double *ny;

		if (!nx)
			return -ENOMEM;
		s->x = nx;
		ny = realloc(s->y, cap * sizeof(*ny));
		if (!ny)
			return -ENOMEM;
		s->y = ny;
	}
	s->x[s->n] = x;
	s->y[s->n] = y;
	s->n++;
	return 0;
}

/* ---- entry points ---------------------------------------------------------------- */

int csv_parse(const char *what, const char *text, size_t len, struct csv_table **ret,
	      char *err, size_t errlen)
{
	struct cursor c = { what, text, text + len, 1, err, errlen };
	char (*f)[CSV_FIELD_MAX + 1] = malloc(NFIELDS * (CSV_FIELD_MAX + 1));
	struct csv_table *t = calloc(1, sizeof(*t));
	long line = 1;
	int r;

	if (!f || !t || !(t->s = calloc(CSV_SERIES_MAX, sizeof(*t->s)))) {
		r = -ENOMEM;
		goto out;
	}
	if (len > CSV_FILE_MAX) {
		r = fail(&c, 1, "%zu bytes, more than the limit of %d", len, CSV_FILE_MAX);
		goto out;
	}
	r = read_record(&c, f, &line);
	if (r == 1) {
		r = fail(&c, 1, "empty: expected the header \"%s\"", CSV_HEADER);
		goto out;
	}
	if (r < 0)
		goto out;
	if (strcmp(f[0], "run") || strcmp(f[1], "group") || strcmp(f[2], "metric") ||
	    strcmp(f[3], "step") || strcmp(f[4], "value")) {
		r = fail(&c, 1, "expected the header \"%s\"", CSV_HEADER);
		goto out;
	}
	while ((r = read_record(&c, f, &line)) == 0) {
		struct csv_series *s;
		long long step;
		double v;

		if (parse_step(f[3], &step) < 0) {
			r = fail(&c, line, "step \"%.40s\" is not an integer 0 .. %lld", f[3],
				 CSV_STEP_MAX);
			goto out;
		}
		if (parse_value(f[4], &v) < 0) {
			r = fail(&c, line, "value \"%.40s\" is not a finite number (or empty)", f[4]);
			goto out;
		}
		if (!(s = series_for(t, f))) {
			r = fail(&c, line, "more than %d series (run, group, metric)", CSV_SERIES_MAX);
			goto out;
		}
		if (!s->run || !s->group || !s->metric) {
			r = -ENOMEM;
			goto out;
		}
		if (s->n && s->x[s->n - 1] >= step) {
			r = fail(&c, line, "step %lld of %s/%s/%s after step %lld: steps must increase",
				 step, s->run, s->group, s->metric, (long long)s->x[s->n - 1]);
			goto out;
		}
		if ((r = append(s, (int64_t)step, v)) < 0)
			goto out;
	}
	if (r < 0)
		goto out;
	*ret = t;
	t = NULL;
	r = 0;
out:
	if (r == -ENOMEM && err && errlen)
		snprintf(err, errlen, "\"%s\": out of memory", what);
	free(f);
	csv_table_free(t);
	return r;
}

int csv_read(const char *path, struct csv_table **ret, char *err, size_t errlen)
{
	struct stat st;
	char *text = NULL;
	size_t len = 0;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "\"%s\": %s", path, strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "\"%s\": %s", path, strerror(-r));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		snprintf(err, errlen, "\"%s\": not a regular file", path);
		goto out;
	}
	if (st.st_size > CSV_FILE_MAX) {
		r = -EFBIG;
		snprintf(err, errlen, "\"%s\": %lld bytes, more than the limit of %d", path,
			 (long long)st.st_size, CSV_FILE_MAX);
		goto out;
	}
	text = malloc((size_t)st.st_size + 1);
	if (!text) {
		r = -ENOMEM;
		snprintf(err, errlen, "\"%s\": out of memory", path);
		goto out;
	}
	while (len <= (size_t)st.st_size) {
		ssize_t n = read(fd, text + len, (size_t)st.st_size + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			snprintf(err, errlen, "\"%s\": %s", path, strerror(-r));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > (size_t)st.st_size) {
		r = -EAGAIN;
		snprintf(err, errlen, "\"%s\": grew while it was read", path);
		goto out;
	}
	r = csv_parse(path, text, len, ret, err, errlen);
out:
	free(text);
	close(fd);
	return r;
}
