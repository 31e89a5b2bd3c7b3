/*
 * csv.h — reading the CSV of metric histories, the format `grokwatch
 * history --csv` writes, so that `grokwatch plot --beside FILE` can draw
 * numbers from elsewhere (a training job's held-out accuracy) beside a
 * daemon's.
 *
 * The format: a first line "run,group,metric,step,value", then one record
 * per line: a field holding ',', '"', CR or LF is quoted, a quote inside
 * doubled (RFC 4180; a quoted field may span lines); step a decimal integer
 * 0 .. CSV_STEP_MAX; value a finite number, or empty for no value there.
 * Lines end with LF or CRLF; a last line without one is taken.  Records of
 * one (run, group, metric) form a series, in order of first appearance,
 * and their steps must increase.
 *
 * Limits: CSV_FILE_MAX bytes, CSV_FIELD_MAX bytes a field, CSV_SERIES_MAX
 * series.  Anything else is refused with a message naming the file, the
 * line and the fault.  Part of the grokwatch tool; one thread.
 */
#ifndef GW_CLI_CSV_H
#define GW_CLI_CSV_H

#include <stddef.h>
#include <stdint.h>

#define CSV_FILE_MAX (64 << 20)
#define CSV_FIELD_MAX 1024
#define CSV_SERIES_MAX 16
#define CSV_STEP_MAX 999999999999999LL
#define CSV_HEADER "run,group,metric,step,value"

struct csv_series {
	char *run, *group, *metric;
	size_t n;
	int64_t *x;   /* steps, increasing */
	double *y;    /* NaN: no value */
};

struct csv_table {
	struct csv_series *s;
	size_t n;
};

/*
 * Parse len bytes of text (need not be NUL-terminated), named `what` in
 * messages.  On success *ret is a new table (csv_table_free).  Errors:
 * -EINVAL (malformed, or over a limit; err holds "\"WHAT\" line N: ..."),
 * -ENOMEM.
 */
int csv_parse(const char *what, const char *text, size_t len, struct csv_table **ret,
	      char *err, size_t errlen);

/* Read and parse a file: csv_parse's errors, and -errno from opening or
 * reading it (-EFBIG over CSV_FILE_MAX, -EINVAL for a directory). */
int csv_read(const char *path, struct csv_table **ret, char *err, size_t errlen);

void csv_table_free(struct csv_table *t); /* accepts NULL */

#endif
