/*
 * fuzz_csv.c — libFuzzer target for the grokwatch tool's reader of the
 * history CSV (client/cli/csv.c, #included: the tool is not a library).
 *
 * Besides "never crash", it checks: a failure leaves no table and writes
 * a message that names the input and a line; a success holds at most
 * CSV_SERIES_MAX series, each with non-empty strings no longer than a
 * field, strictly increasing steps within bounds and values finite or
 * NaN; and the records of a success, written back as the tool writes them
 * (quoted where needed), parse again to the same table.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../client/cli/csv.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "property failed: %s\n", what);
		abort();
	}
}

/* Append s as grokwatch history --csv writes a field. */
static size_t put_field(char *b, size_t at, const char *s)
{
	if (!strpbrk(s, ",\"\r\n")) {
		memcpy(b + at, s, strlen(s));
		return at + strlen(s);
	}
	b[at++] = '"';
	for (; *s; s++) {
		if (*s == '"')
			b[at++] = '"';
		b[at++] = *s;
	}
	b[at++] = '"';
	return at;
}

static void same(const struct csv_table *a, const struct csv_table *b)
{
	check(a->n == b->n, "same series count after a round trip");
	for (size_t i = 0; i < a->n; i++) {
		check(!strcmp(a->s[i].run, b->s[i].run) && !strcmp(a->s[i].group, b->s[i].group) &&
		      !strcmp(a->s[i].metric, b->s[i].metric), "same names after a round trip");
		check(a->s[i].n == b->s[i].n, "same points after a round trip");
		for (size_t k = 0; k < a->s[i].n; k++) {
			check(a->s[i].x[k] == b->s[i].x[k], "same steps after a round trip");
			check((isnan(a->s[i].y[k]) && isnan(b->s[i].y[k])) ||
			      a->s[i].y[k] == b->s[i].y[k], "same values after a round trip");
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct csv_table *t = NULL, *t2 = NULL;
	char err[512] = "";
	int r = csv_parse("in.csv", (const char *)data, size, &t, err, sizeof(err));

	if (r < 0) {
		check(t == NULL, "no table on failure");
		check(!strncmp(err, "\"in.csv\"", 8), "the message names the input");
		return 0;
	}
	check(r == 0 && t != NULL, "a table on success");
	check(t->n <= CSV_SERIES_MAX, "series within the limit");
	{
		size_t cap = strlen(CSV_HEADER) + 2, at;
		char *b;

		for (size_t i = 0; i < t->n; i++)
			cap += t->s[i].n * (3 * (2 * CSV_FIELD_MAX + 2) + 64);
		b = malloc(cap);
		check(b != NULL, "memory");
		at = (size_t)sprintf(b, "%s\n", CSV_HEADER);
		for (size_t i = 0; i < t->n; i++) {
			const struct csv_series *s = &t->s[i];

			check(strlen(s->run) <= CSV_FIELD_MAX && strlen(s->group) <= CSV_FIELD_MAX &&
			      strlen(s->metric) <= CSV_FIELD_MAX, "fields within the limit");
			for (size_t k = 0; k < s->n; k++) {
				check(s->x[k] >= 0 && s->x[k] <= CSV_STEP_MAX, "step within bounds");
				check(k == 0 || s->x[k] > s->x[k - 1], "steps increase");
				check(isnan(s->y[k]) || isfinite(s->y[k]), "values finite or none");
				at = put_field(b, at, s->run);
				b[at++] = ',';
				at = put_field(b, at, s->group);
				b[at++] = ',';
				at = put_field(b, at, s->metric);
				at += (size_t)sprintf(b + at, ",%lld,", (long long)s->x[k]);
				if (!isnan(s->y[k]))
					at += (size_t)sprintf(b + at, "%.17g", s->y[k]);
				b[at++] = '\n';
			}
		}
		check(csv_parse("again.csv", b, at, &t2, err, sizeof(err)) == 0, "round trip parses");
		/* Records were written series by series, not in the input's
		 * interleaving, so the order of first appearance is the same. */
		same(t, t2);
		free(b);
	}
	csv_table_free(t);
	csv_table_free(t2);
	return 0;
}
