/* tools/lvd-report/report.h — the pieces of lvd-report: line plots (plot.c). */
#ifndef LVD_REPORT_H
#define LVD_REPORT_H

#include <stddef.h>

#include "core/error.h"

#define LVD_REPORT_MAX_SERIES 8

/* One curve: n points (x[i], y[i]) in x order; non-finite y values are gaps. Borrowed. */
struct lvd_report_series {
	const double *x, *y;
	size_t n;
};

/* Series colour i by name ("blue", "orange", ...), as plotted. */
const char *lvd_report_color_name(int i);
/* The x and y range over the finite points of every series (a degenerate range widened). */
void lvd_report_range(const struct lvd_report_series *s, int ns, double *xmin, double *xmax, double *ymin,
		      double *ymax);
/* Writes a w×h RGB PNG (atomically) of ns <= LVD_REPORT_MAX_SERIES series: raw values
 * light, their trailing mean over `window` points dark. Errors: those of lib/io/image.h. */
int lvd_report_plot(const char *path, const struct lvd_report_series *s, int ns, int w, int h, int window,
		    struct lvd_error *err);

#endif
