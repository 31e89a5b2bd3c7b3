/*
 * plot.c — the terminal chart of plot.h.
 *
 * The plot area is a grid of cells, each empty, shaded (inside some
 * series' band of one standard error) or owned by one series (the last
 * drawn wins; lines are drawn over the bands).  Every finite point sets
 * its cell; the columns between two consecutive finite points of a series
 * get the linearly interpolated row, so a series reads as a line; a NaN
 * breaks the line.  A band is drawn the same way: each point's column
 * from the row of y + err to the row of y - err, the columns between two
 * points with the interpolated ends.
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

#define BAND (-2) /* a grid cell inside a band (-1: empty) */

/* Rows of the band y +- e. */
static void band_rows(double y, double e, double ymin, double ymax, int height, int *top,
		      int *bot)
{
	*top = (int)lround((ymax - (y + e)) / (ymax - ymin) * (height - 1));
	*bot = (int)lround((ymax - (y - e)) / (ymax - ymin) * (height - 1));
	if (*top < 0)
		*top = 0;
	if (*bot > height - 1)
		*bot = height - 1;
}

static void shade(int *grid, int w, int height, int c, int top, int bot)
{
	for (int r = top; r <= bot && r < height; r++)
		if (grid[r * w + c] == -1)
			grid[r * w + c] = BAND;
}

static bool has_err(const struct plot_series *s, size_t i)
{
	return s->err && isfinite(s->err[i]) && s->err[i] > 0;
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
			double e;

			if (!isfinite(s[k].y[i]))
				continue;
			e = has_err(&s[k], i) ? s[k].err[i] : 0;
			ymin = fmin(ymin, s[k].y[i] - e);
			ymax = fmax(ymax, s[k].y[i] + e);
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
	const char *shade_mark = ascii ? ":" : "·";
	bool any_band = false;
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

	/* Bands first, so that every line is drawn over them. */
	for (size_t k = 0; k < ns; k++) {
		int pc = -1;
		double py = 0, pe = 0;

		for (size_t i = 0; i < s[k].n; i++) {
			double y = s[k].y[i], e, fx;
			int c, top, bot;

			if (!isfinite(y) || !has_err(&s[k], i)) {
				pc = -1;
				continue;
			}
			e = s[k].err[i];
			any_band = true;
			fx = xmax > xmin ? (double)(s[k].x[i] - xmin) / (double)(xmax - xmin) : 0;
			c = (int)lround(fx * (w - 1));
			for (int cc = pc + 1; pc >= 0 && cc < c; cc++) {
				double f = (double)(cc - pc) / (c - pc);

				band_rows(py + (y - py) * f, pe + (e - pe) * f, ymin, ymax, height, &top,
					  &bot);
				shade(grid, w, height, cc, top, bot);
			}
			band_rows(y, e, ymin, ymax, height, &top, &bot);
			shade(grid, w, height, c, top, bot);
			pc = c;
			py = y;
			pe = e;
		}
	}
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
		for (int c = 0; c < w; c++) {
			int g = grid[r * w + c];

			fputs(g == -1 ? " " : g == BAND ? shade_mark : marks[g], out);
		}
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
	if (any_band) {
		const char *what = "±1 standard error";

		if (ascii)
			what = "+-1 standard error";
		if (col && col + 4 + chars(what) > (size_t)width) {
			fputc('\n', out);
			col = 0;
		}
		fprintf(out, "%s%s ", col ? "  " : "", shade_mark);
		col += (col ? 2 : 0) + 2;
		put_trunc(out, what, (size_t)width > col ? (size_t)width - col : 0);
	}
	fputc('\n', out);
	free(grid);
	return 0;
}

int plot_beside(FILE *out, const char *left, int left_width, int gap, const char *right)
{
	const char *l = left, *r = right;

	while (*l || *r) {
		const char *le = strchr(l, '\n'), *re = strchr(r, '\n');
		size_t ll = le ? (size_t)(le - l) : strlen(l), rl = re ? (size_t)(re - r) : strlen(r);
		char *line = malloc(ll + 1);
		size_t n;

		if (!line)
			return -ENOMEM;
		memcpy(line, l, ll);
		line[ll] = 0;
		n = chars(line);
		fwrite(l, 1, ll, out);
		free(line);
		if (rl)
			fprintf(out, "%*s%.*s", (int)((size_t)left_width > n ? (size_t)left_width - n : 0) +
				gap, "", (int)rl, r);
		fputc('\n', out);
		l += ll + (le ? 1 : 0);
		r += rl + (re ? 1 : 0);
	}
	return 0;
}
