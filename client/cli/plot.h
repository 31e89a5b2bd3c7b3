/*
 * plot.h — a line chart of series over steps, drawn with characters for a
 * terminal: y-axis labels, an x axis labelled with steps, one marker per
 * series, a band of one standard error around the series that have one,
 * and a legend; and two charts set side by side.  Part of the grokwatch
 * tool, not of the library.
 */
#ifndef GW_CLI_PLOT_H
#define GW_CLI_PLOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct plot_series {
	const char *label;
	size_t n;
	const int64_t *x;    /* steps, increasing */
	const double *y;     /* NaN = no value at that step */
	const double *err;   /* NULL, or a standard error per step (NaN: none there):
			      * the cells between y - err and y + err are shaded */
};

#define PLOT_WIDTH_MIN 30
#define PLOT_WIDTH_MAX 1000
#define PLOT_SERIES_MAX 16

/* The steps and values the series span (finite values only); a flat
 * range is widened by 5% of its value (0.5 around 0).  Returns 0, or
 * -ENODATA where no value is finite (the outputs then untouched). */
int plot_extent(const struct plot_series *s, size_t ns, int64_t *ret_xmin, int64_t *ret_xmax,
		double *ret_ymin, double *ret_ymax);

/*
 * Draw the series in `width` columns (PLOT_WIDTH_MIN..PLOT_WIDTH_MAX; no
 * line is longer, counting characters) and a plot area of `height` rows
 * (3..200).  ascii = only ASCII characters, else Unicode box drawing and
 * markers.  The y range covers the bands too; a band is drawn under the
 * lines (':' in ASCII, '·' otherwise), between consecutive
 * points as the line is, and the legend says what it is.  Returns 0,
 * -EINVAL (width, height or series count out of range), -ENODATA (no
 * finite value at all), -ENOMEM.
 */
int plot_render(FILE *out, const struct plot_series *s, size_t ns, int width, int height,
		bool ascii, const char *title);

/*
 * Write two drawn charts (NUL-terminated texts of lines) side by side:
 * each line of `left` padded with spaces to left_width characters, `gap`
 * spaces, then the same line of `right`; the shorter one continues with
 * blank lines.  Returns 0 or -ENOMEM.
 */
int plot_beside(FILE *out, const char *left, int left_width, int gap, const char *right);

#endif
