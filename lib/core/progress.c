/* Progress reporter: see progress.h for the output format. */
#include "core/progress.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/clock.h"

struct lvd_progress {
	FILE *out;
	char *label, *unit;
	int tty;
	double interval;             /* seconds between prints in the current mode */
	double (*clock)(void *);
	void *clock_ctx;

	pthread_mutex_t mu;
	uint64_t total, done;
	double t0, last_print;
	size_t last_len;             /* tty: length of the line on screen, for blanking */
	int finished;
};

static double monotonic_clock(void *ctx)
{
	(void)ctx;
	return lvd_time_now();
}

void lvd_progress_format_duration(double s, char *buf, size_t size)
{
	if (!(s >= 0) || !isfinite(s) || s > 1e12) {
		snprintf(buf, size, "?");
		return;
	}
	uint64_t t = (uint64_t)(s + 0.5);
	if (t < 60)
		snprintf(buf, size, "%us", (unsigned)t);
	else if (t < 3600)
		snprintf(buf, size, "%um%02us", (unsigned)(t / 60), (unsigned)(t % 60));
	else if (t < 86400)
		snprintf(buf, size, "%uh%02um", (unsigned)(t / 3600), (unsigned)(t % 3600 / 60));
	else
		snprintf(buf, size, "%llud%02uh", (unsigned long long)(t / 86400), (unsigned)(t % 86400 / 3600));
}

struct lvd_progress *lvd_progress_create(FILE *out, const char *label, uint64_t total,
					 const struct lvd_progress_opts *opts)
{
	struct lvd_progress_opts o = { 0 };
	o.tty = -1;
	if (opts)
		o = *opts;
	struct lvd_progress *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->label = lvd_strdup(label ? label : "");
	p->unit = lvd_strdup(o.unit ? o.unit : "items");
	if (!p->label || !p->unit) {
		free(p->label);
		free(p->unit);
		free(p);
		return NULL;
	}
	p->out = out;
	p->tty = o.tty >= 0 ? !!o.tty : (out && isatty(fileno(out)));
	p->interval = p->tty ? (o.tty_interval_s > 0 ? o.tty_interval_s : 1.0 / 6)
			     : (o.interval_s > 0 ? o.interval_s : 10.0);
	p->clock = o.clock ? o.clock : monotonic_clock;
	p->clock_ctx = o.clock_ctx;
	pthread_mutex_init(&p->mu, NULL);
	p->total = total;
	p->t0 = p->clock(p->clock_ctx);
	p->last_print = p->t0;
	return p;
}

/* Body of the live/periodic line (no prefix, no terminator). */
static int format_status(const struct lvd_progress *p, double now, char *buf, size_t size)
{
	double el = now - p->t0;
	double rate = el > 0 ? (double)p->done / el : 0;
	char eta[32];
	if (p->total) {
		double pct = 100.0 * (double)p->done / (double)p->total;
		if (rate > 0 && p->done <= p->total)
			lvd_progress_format_duration((double)(p->total - p->done) / rate, eta, sizeof eta);
		else
			snprintf(eta, sizeof eta, "?");
		return snprintf(buf, size, "%s: %llu/%llu %s (%.1f%%), %.1f/s, ETA %s", p->label,
				(unsigned long long)p->done, (unsigned long long)p->total, p->unit,
				pct, rate, eta);
	}
	return snprintf(buf, size, "%s: %llu %s, %.1f/s", p->label,
			(unsigned long long)p->done, p->unit, rate);
}

/* Writes a line; on a tty it overwrites the previous one and pads over leftovers. */
static void emit(struct lvd_progress *p, const char *line, int final)
{
	size_t len = strlen(line);
	if (p->tty) {
		size_t pad = p->last_len > len ? p->last_len - len : 0;
		fprintf(p->out, "\r%s%*s", line, (int)pad, "");
		if (pad)
			fprintf(p->out, "\r%s", line);
		if (final)
			fputc('\n', p->out);
		p->last_len = final ? 0 : len;
	} else {
		fprintf(p->out, "%s\n", line);
	}
	fflush(p->out);
}

static void maybe_print(struct lvd_progress *p)
{
	if (!p->out || p->finished)
		return;
	double now = p->clock(p->clock_ctx);
	if (now - p->last_print < p->interval)
		return;
	char line[512];
	format_status(p, now, line, sizeof line);
	emit(p, line, 0);
	p->last_print = now;
}

void lvd_progress_set(struct lvd_progress *p, uint64_t done)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->done = done;
	maybe_print(p);
	pthread_mutex_unlock(&p->mu);
}

void lvd_progress_add(struct lvd_progress *p, uint64_t n)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->done += n;
	maybe_print(p);
	pthread_mutex_unlock(&p->mu);
}

void lvd_progress_set_total(struct lvd_progress *p, uint64_t total)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->total = total;
	pthread_mutex_unlock(&p->mu);
}

void lvd_progress_finish(struct lvd_progress *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	if (p->out && !p->finished) {
		double now = p->clock(p->clock_ctx), el = now - p->t0;
		char dur[32], line[512];
		lvd_progress_format_duration(el, dur, sizeof dur);
		double rate = el > 0 ? (double)p->done / el : 0;
		if (p->total)
			snprintf(line, sizeof line, "%s: %llu/%llu %s done in %s (%.1f/s)", p->label,
				 (unsigned long long)p->done, (unsigned long long)p->total, p->unit,
				 dur, rate);
		else
			snprintf(line, sizeof line, "%s: %llu %s done in %s (%.1f/s)", p->label,
				 (unsigned long long)p->done, p->unit, dur, rate);
		emit(p, line, 1);
	}
	p->finished = 1;
	pthread_mutex_unlock(&p->mu);
}

void lvd_progress_destroy(struct lvd_progress *p)
{
	if (!p)
		return;
	pthread_mutex_destroy(&p->mu);
	free(p->label);
	free(p->unit);
	free(p);
}
