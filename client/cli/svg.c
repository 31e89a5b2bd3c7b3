/*
 * svg.c — plot.h's series as an SVG document (svg.h).  The y range is the
 * values' (padded; a flat series gets a band around it), ticks at 1, 2 or
 * 5 times a power of ten; a NaN breaks a line into separate polylines;
 * points are marked while a series has at most 200.  Text is XML-escaped.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "svg.h"

static const char *const colors[PLOT_SERIES_MAX] = {
	"#3767d6", "#d9480f", "#2b8a3e", "#ae3ec9", "#e8590c", "#1098ad", "#c2255c", "#5c940d",
	"#495057", "#f08c00", "#364fc7", "#a61e4d", "#087f5b", "#862e9c", "#d6336c", "#0b7285",
};

static void xml_text(FILE *f, const char *s)
{
	for (; *s; s++)
		switch (*s) {
		case '&':
			fputs("&amp;", f);
			break;
		case '<':
			fputs("&lt;", f);
			break;
		case '>':
			fputs("&gt;", f);
			break;
		case '"':
			fputs("&quot;", f);
			break;
		default:
			if ((unsigned char)*s >= 0x20 || *s == '\t')
				fputc(*s, f);
		}
}

static double nice_step(double span, int n)
{
	double raw = span / n, mag = pow(10, floor(log10(raw)));

	for (int k = 0; k < 4; k++) {
		double m = (double[]){ 1, 2, 5, 10 }[k] * mag;

		if (m >= raw)
			return m;
	}
	return raw;
}

static void fmt(char *buf, size_t size, double v)
{
	if (fabs(v) < 1e-12)
		v = 0;
	snprintf(buf, size, "%.4g", v);
}

int svg_render(FILE *out, const struct plot_series *s, size_t ns, const char *title)
{
	const double rows = (double)((ns + 3) / 4), B = 52 + 16 * rows;
	const double W = SVG_WIDTH, H = SVG_HEIGHT - 68 + B, L = 70, R = 20, T = 40;
	const double pw = W - L - R, ph = H - T - B;
	double ymin, ymax, xmin, xmax, st;
	int64_t x0, x1;
	char a[40];

	if (ns == 0 || ns > PLOT_SERIES_MAX)
		return -EINVAL;
	if (plot_extent(s, ns, &x0, &x1, &ymin, &ymax) < 0)
		return -ENODATA;
	xmin = (double)x0;
	xmax = (double)x1;
	if (ymax - ymin > 1e-12 * fmax(1, fabs(ymax))) {
		double pad = (ymax - ymin) * 0.05;

		ymin -= pad;
		ymax += pad;
	}
	if (xmax == xmin) {
		xmin -= 1;
		xmax += 1;
	}
#define X(v) (L + ((double)(v) - xmin) / (xmax - xmin) * pw)
#define Y(v) (T + (ymax - (v)) / (ymax - ymin) * ph)
	fprintf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		     "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" "
		     "viewBox=\"0 0 %g %g\" font-family=\"sans-serif\" font-size=\"12\">\n"
		     "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n",
		W, H, W, H);
	if (title) {
		fprintf(out, "<text x=\"%g\" y=\"24\" font-size=\"15\" font-weight=\"bold\" "
			     "fill=\"#1d2330\">", L);
		xml_text(out, title);
		fputs("</text>\n", out);
	}
	/* Grid and ticks. */
	fputs("<g stroke=\"#d9dde6\" stroke-width=\"1\">\n", out);
	st = nice_step(ymax - ymin, 5);
	for (double v = ceil(ymin / st) * st; v <= ymax; v += st)
		fprintf(out, "<line x1=\"%g\" y1=\"%.2f\" x2=\"%g\" y2=\"%.2f\"/>\n", L, Y(v), W - R,
			Y(v));
	fputs("</g>\n<g fill=\"#6b7385\" text-anchor=\"end\">\n", out);
	for (double v = ceil(ymin / st) * st; v <= ymax; v += st) {
		fmt(a, sizeof(a), v);
		fprintf(out, "<text x=\"%g\" y=\"%.2f\" dy=\"4\">%s</text>\n", L - 6, Y(v), a);
	}
	fputs("</g>\n<g fill=\"#6b7385\" text-anchor=\"middle\">\n", out);
	st = nice_step(xmax - xmin, 6);
	if (st < 1)
		st = 1;
	for (double v = ceil(xmin / st) * st; v <= xmax; v += st) {
		fmt(a, sizeof(a), v);
		fprintf(out, "<text x=\"%.2f\" y=\"%g\">%s</text>\n", X(v), T + ph + 18, a);
	}
	fprintf(out, "<text x=\"%g\" y=\"%g\">step</text>\n</g>\n", L + pw / 2, T + ph + 36);
	fprintf(out, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" "
		     "stroke=\"#9aa1b1\"/>\n", L, T, pw, ph);
	/* The series: a polyline per run of finite values. */
	for (size_t k = 0; k < ns; k++) {
		bool open = false;
		size_t finite = 0;

		fprintf(out, "<g stroke=\"%s\" fill=\"%s\">\n", colors[k], colors[k]);
		for (size_t i = 0; i < s[k].n; i++) {
			if (!isfinite(s[k].y[i])) {
				if (open)
					fputs("\"/>\n", out);
				open = false;
				continue;
			}
			finite++;
			if (!open)
				fputs("<polyline fill=\"none\" stroke-width=\"2\" points=\"", out);
			fprintf(out, "%s%.2f,%.2f", open ? " " : "", X(s[k].x[i]), Y(s[k].y[i]));
			open = true;
		}
		if (open)
			fputs("\"/>\n", out);
		for (size_t i = 0; finite <= 200 && i < s[k].n; i++)
			if (isfinite(s[k].y[i]))
				fprintf(out, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"2.5\" stroke=\"none\"/>\n",
					X(s[k].x[i]), Y(s[k].y[i]));
		fputs("</g>\n", out);
	}
	/* The legend, under the axis. */
	for (size_t k = 0; k < ns; k++) {
		double lx = L + (double)(k % 4) * (pw / 4), ly = T + ph + 56 + (double)(k / 4) * 16;

		fprintf(out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"16\" height=\"3\" fill=\"%s\"/>"
			     "<text x=\"%.1f\" y=\"%.1f\" fill=\"#1d2330\">",
			lx, ly - 4, colors[k], lx + 22, ly);
		xml_text(out, s[k].label);
		fputs("</text>\n", out);
	}
	fputs("</svg>\n", out);
#undef X
#undef Y
	return 0;
}
