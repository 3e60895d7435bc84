/* lvd-report: line plots as PNG without text (axis ranges and the legend go into the
 * markdown beside the picture). A W×H white canvas, a 1-pixel frame, four grey horizontal
 * grid lines at 0, 25, 50, 75, 100 % of the y range; per series a light line of the raw
 * values and a 2-pixel line of their trailing moving average. x = step (the series' own
 * steps), y linear from ymin (bottom) to ymax (top). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/image.h"
#include "lvd-report/report.h"

#define MARGIN 8

/* Series colours (RGB): blue, orange, green, red, purple, brown, pink, grey (matplotlib's
 * tab10 order, which the report names). */
static const uint8_t COLORS[LVD_REPORT_MAX_SERIES][3] = {
	{31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40},
	{148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {127, 127, 127},
};

const char *lvd_report_color_name(int i)
{
	static const char *const names[LVD_REPORT_MAX_SERIES] = {"blue", "orange", "green", "red",
								 "purple", "brown", "pink", "grey"};
	return i >= 0 && i < LVD_REPORT_MAX_SERIES ? names[i] : "?";
}

static void put(struct lvd_image *im, int x, int y, const uint8_t c[3])
{
	if (x < 0 || y < 0 || x >= im->w || y >= im->h)
		return;
	memcpy(im->px + ((size_t)y * im->w + x) * 3, c, 3);
}

/* Bresenham line, thickness 1 or 2 (the second pass one pixel lower). */
static void line(struct lvd_image *im, int x0, int y0, int x1, int y1, const uint8_t c[3], int thick)
{
	int dx = abs(x1 - x0), sx = x0 < x1 ? 1 : -1, dy = -abs(y1 - y0), sy = y0 < y1 ? 1 : -1, e = dx + dy;
	for (;;) {
		put(im, x0, y0, c);
		if (thick > 1)
			put(im, x0, y0 + 1, c);
		if (x0 == x1 && y0 == y1)
			break;
		int e2 = 2 * e;
		if (e2 >= dy) {
			e += dy;
			x0 += sx;
		}
		if (e2 <= dx) {
			e += dx;
			y0 += sy;
		}
	}
}

void lvd_report_range(const struct lvd_report_series *s, int ns, double *xmin, double *xmax, double *ymin,
		      double *ymax)
{
	*xmin = *ymin = INFINITY;
	*xmax = *ymax = -INFINITY;
	for (int k = 0; k < ns; k++)
		for (size_t i = 0; i < s[k].n; i++) {
			if (!isfinite(s[k].y[i]))
				continue;
			*xmin = fmin(*xmin, s[k].x[i]);
			*xmax = fmax(*xmax, s[k].x[i]);
			*ymin = fmin(*ymin, s[k].y[i]);
			*ymax = fmax(*ymax, s[k].y[i]);
		}
	if (!(*xmin <= *xmax)) {
		*xmin = 0;
		*xmax = 1;
	}
	if (!(*ymin <= *ymax)) {
		*ymin = 0;
		*ymax = 1;
	}
	if (*xmax == *xmin)
		*xmax = *xmin + 1;
	if (*ymax == *ymin) {
		*ymin -= 0.5;
		*ymax += 0.5;
	}
}

int lvd_report_plot(const char *path, const struct lvd_report_series *s, int ns, int w, int h, int window,
		    struct lvd_error *err)
{
	struct lvd_image im = {0};
	int rc = lvd_image_alloc(&im, w, h, 3, err);
	if (rc)
		return rc;
	memset(im.px, 255, (size_t)w * h * 3);
	double x0, x1, y0, y1;
	lvd_report_range(s, ns, &x0, &x1, &y0, &y1);
	int pw = w - 2 * MARGIN, ph = h - 2 * MARGIN;
	static const uint8_t grid[3] = {225, 225, 225}, frame[3] = {90, 90, 90};
	for (int g = 0; g <= 4; g++) {
		int y = MARGIN + (int)lround((double)ph * g / 4);
		line(&im, MARGIN, y, MARGIN + pw, y, g % 4 ? grid : frame, 1);
	}
	line(&im, MARGIN, MARGIN, MARGIN, MARGIN + ph, frame, 1);
	line(&im, MARGIN + pw, MARGIN, MARGIN + pw, MARGIN + ph, frame, 1);
	for (int k = 0; k < ns && k < LVD_REPORT_MAX_SERIES; k++) {
		const uint8_t *c = COLORS[k];
		uint8_t light[3];
		for (int j = 0; j < 3; j++)
			light[j] = (uint8_t)(255 - (255 - c[j]) * 2 / 5);
		for (int pass = 0; pass < 2; pass++) {
			int have = 0, px = 0, py = 0;
			double sum = 0;
			size_t cnt = 0;
			for (size_t i = 0; i < s[k].n; i++) {
				double v = s[k].y[i];
				if (pass) {   /* trailing moving average over `window` finite values */
					if (!isfinite(v))
						continue;
					sum += v;
					cnt++;
					if (i >= (size_t)window && isfinite(s[k].y[i - window])) {
						sum -= s[k].y[i - window];
						cnt--;
					}
					v = sum / (double)cnt;
				}
				if (!isfinite(v)) {
					have = 0;
					continue;
				}
				int x = MARGIN + (int)lround((s[k].x[i] - x0) / (x1 - x0) * pw);
				int y = MARGIN + ph - (int)lround((v - y0) / (y1 - y0) * ph);
				if (have)
					line(&im, px, py, x, y, pass ? c : light, pass ? 2 : 1);
				else
					put(&im, x, y, pass ? c : light);
				px = x;
				py = y;
				have = 1;
			}
		}
	}
	rc = lvd_image_save_png(&im, path, err);
	lvd_image_free(&im);
	return rc;
}
