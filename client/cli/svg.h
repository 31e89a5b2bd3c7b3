/*
 * svg.h — the chart of plot.h as a standalone SVG document (grokwatch plot
 * --svg), for reports and chat: the same series, drawn as lines over steps
 * with axes, grid, ticks, markers and a legend, in width x height pixels.
 * Part of the grokwatch tool.
 */
#ifndef GW_CLI_SVG_H
#define GW_CLI_SVG_H

#include <stdio.h>

#include "plot.h"

#define SVG_WIDTH 800
#define SVG_HEIGHT 420

/* Write the SVG of ns series (1..PLOT_SERIES_MAX) to out.  Returns 0,
 * -EINVAL (no series, too many), -ENODATA (no finite value at all). */
int svg_render(FILE *out, const struct plot_series *s, size_t ns, const char *title);

#endif
