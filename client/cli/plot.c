/*
 * plot.c — the terminal chart of plot.h.
 *
 * The plot area is a grid of cells, each empty or owned by one series
 * (the last drawn wins).  Every finite point sets its cell; the columns
 * between two consecutive finite points of a series get the linearly
 * interpolated row, so a series reads as a line; a NaN breaks the line.
 * Around the grid: y labels on the left (top, bottom and evenly between),
 * the x axis with the first, middle and last step, and a legend.  Widths
 * are counted in characters, not bytes, so the Unicode and the ASCII
 * drawings have the same shape.
 */
#include "plot.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LABEL_MAX 32

static const char *const marks_utf8[PLOT_SERIES_MAX] = {
	"●", "▲", "■", "◆", "○", "△", "□", "◇", "×", "+", "*", "#", "@", "%", "&", "=",
};
static const char *const marks_ascii[PLOT_SERIES_MAX] = {
	"*", "o", "x", "#", "@", "%", "&", "=", "$", "~", "^", "v", "s", "d", "z", "w",
};

/* Characters in a UTF-8 string (bytes that do not continue a sequence). */
static size_t chars(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

/* Write at most max characters of s; returns the characters written. */
static size_t put_trunc(FILE *out, const char *s, size_t max)
{
	size_t n = 0;
	const char *p = s;

	while (*p) {
		const char *q = p + 1;

		while (((unsigned char)*q & 0xC0) == 0x80)
			q++;
		if (n == max)
			break;
		fwrite(p, 1, (size_t)(q - p), out);
		n++;
		p = q;
	}
	return n;
}

static void put_n(FILE *out, const char *s, int n)
{
	for (int i = 0; i < n; i++)
		fputs(s, out);
}

static void fmt_value(char *buf, size_t size, double v)
{
	if (fabs(v) < 1e-12)
		v = 0; /* no "-1.2e-17" where the axis crosses zero */
	snprintf(buf, size, "%.4g", v);
}

int plot_extent(const struct plot_series *s, size_t ns, int64_t *ret_xmin, int64_t *ret_xmax,
		double *ret_ymin, double *ret_ymax)
{
	double ymin = INFINITY, ymax = -INFINITY;
	int64_t xmin = INT64_MAX, xmax = INT64_MIN;

	for (size_t k = 0; k < ns; k++)
		for (size_t i = 0; i < s[k].n; i++) {
			if (!isfinite(s[k].y[i]))
				continue;
			ymin = fmin(ymin, s[k].y[i]);
			ymax = fmax(ymax, s[k].y[i]);
			xmin = s[k].x[i] < xmin ? s[k].x[i] : xmin;
			xmax = s[k].x[i] > xmax ? s[k].x[i] : xmax;
		}
	if (!isfinite(ymin))
		return -ENODATA;
	if (ymax - ymin < 1e-12 * fmax(1, fabs(ymax))) {
		double pad = fabs(ymax) > 0 ? fabs(ymax) * 0.05 : 0.5;

		ymin -= pad;
		ymax += pad;
	}
	*ret_xmin = xmin;
	*ret_xmax = xmax;
	*ret_ymin = ymin;
	*ret_ymax = ymax;
	return 0;
}

int plot_render(FILE *out, const struct plot_series *s, size_t ns, int width, int height,
		bool ascii, const char *title)
{
	const char *const *marks = ascii ? marks_ascii : marks_utf8;
	const char *vbar = ascii ? "|" : "│", *tick = ascii ? "+" : "┤";
	const char *corner = ascii ? "+" : "└", *hbar = ascii ? "-" : "─";
	char labels[201][LABEL_MAX], xl[3][LABEL_MAX];
	double ymin, ymax;
	int64_t xmin, xmax;
	int wl = 0, w, *grid, nticks;
	bool is_tick[200] = { false };
	size_t col;

	if (width < PLOT_WIDTH_MIN || width > PLOT_WIDTH_MAX || height < 3 || height > 200 ||
	    ns == 0 || ns > PLOT_SERIES_MAX)
		return -EINVAL;
	if (plot_extent(s, ns, &xmin, &xmax, &ymin, &ymax) < 0)
		return -ENODATA;

	/* y labels on the top, bottom and up to 3 rows between. */
	nticks = height >= 9 ? 5 : 3;
	for (int t = 0; t < nticks; t++) {
		int row = (int)lround((double)t * (height - 1) / (nticks - 1));

		is_tick[row] = true;
	}
	for (int r = 0; r < height; r++) {
		labels[r][0] = 0;
		if (is_tick[r]) {
			fmt_value(labels[r], LABEL_MAX, ymax - (ymax - ymin) * r / (height - 1));
			if ((int)strlen(labels[r]) > wl)
				wl = (int)strlen(labels[r]);
		}
	}
	w = width - wl - 2;
	if (w < 10)
		return -EINVAL;
	if (!(grid = malloc(sizeof(*grid) * (size_t)w * (size_t)height)))
		return -ENOMEM;
	for (int i = 0; i < w * height; i++)
		grid[i] = -1;

	for (size_t k = 0; k < ns; k++) {
		int pc = -1;
		double py = 0;

		for (size_t i = 0; i < s[k].n; i++) {
			double y = s[k].y[i], fx;
			int c, r;

			if (!isfinite(y)) {
				pc = -1;
				continue;
			}
			fx = xmax > xmin ? (double)(s[k].x[i] - xmin) / (double)(xmax - xmin) : 0;
			c = (int)lround(fx * (w - 1));
			r = (int)lround((ymax - y) / (ymax - ymin) * (height - 1));
			for (int cc = pc + 1; pc >= 0 && cc < c; cc++) {
				double yy = py + (y - py) * (cc - pc) / (c - pc);
				int rr = (int)lround((ymax - yy) / (ymax - ymin) * (height - 1));

				grid[rr * w + cc] = (int)k;
			}
			grid[r * w + c] = (int)k;
			pc = c;
			py = y;
		}
	}

	if (title) {
		put_trunc(out, title, (size_t)width);
		fputc('\n', out);
	}
	for (int r = 0; r < height; r++) {
		fprintf(out, "%*s %s", wl, labels[r], is_tick[r] ? tick : vbar);
		for (int c = 0; c < w; c++)
			fputs(grid[r * w + c] < 0 ? " " : marks[grid[r * w + c]], out);
		fputc('\n', out);
	}
	fprintf(out, "%*s %s", wl, "", corner);
	put_n(out, hbar, w);
	fputc('\n', out);

	/* Steps: first at the left, last at the right, middle between. */
	snprintf(xl[0], LABEL_MAX, "%lld", (long long)xmin);
	snprintf(xl[1], LABEL_MAX, "%lld", (long long)(xmin + (xmax - xmin) / 2));
	snprintf(xl[2], LABEL_MAX, "%lld", (long long)xmax);
	fprintf(out, "%*s  %s", wl, "", xl[0]);
	col = strlen(xl[0]);
	if (xmax > xmin) {
		size_t mid = (size_t)(w / 2) - strlen(xl[1]) / 2, last = (size_t)w - strlen(xl[2]);

		if (mid > col + 1 && mid + strlen(xl[1]) + 1 < last) {
			fprintf(out, "%*s%s", (int)(mid - col), "", xl[1]);
			col = mid + strlen(xl[1]);
		}
		if (last > col)
			fprintf(out, "%*s%s", (int)(last - col), "", xl[2]);
	}
	fputc('\n', out);
	fprintf(out, "%*s  %*s\n", wl, "", w / 2 + 2, "step");

	/* Legend, wrapped at the width. */
	col = 0;
	for (size_t k = 0; k < ns; k++) {
		size_t need = 2 + chars(s[k].label) + 2;

		if (col && col + need > (size_t)width) {
			fputc('\n', out);
			col = 0;
		}
		fprintf(out, "%s%s ", col ? "  " : "", marks[k]);
		col += (col ? 2 : 0) + 2;
		col += put_trunc(out, s[k].label, (size_t)width > col ? (size_t)width - col : 0);
	}
	fputc('\n', out);
	free(grid);
	return 0;
}
