/* lib/core/progress.h — rate-limited progress reporting on stderr.
 *
 * On a terminal the reporter redraws one line in place ("\r") at most 6 times a second:
 *     sd-attnmap: 1234/5000 images (24.7%), 56.3/s, ETA 1m07s
 * Otherwise (log files, CI) it prints that line followed by "\n" every `interval_s`
 * seconds (default 10). lvd_progress_finish prints the summary
 *     sd-attnmap: 5000/5000 images done in 1m29s (56.2/s)
 * Without a total (total = 0) the count and rate are shown without percent or ETA.
 * Rate and ETA use the average since creation. All output goes to the FILE* given at
 * creation (stderr in tools; a memory stream in tests) and nothing else is written
 * anywhere. The clock is injectable so tests are deterministic. Updates are
 * thread-safe (one mutex), so pool workers may call lvd_progress_add. */
#ifndef LVD_CORE_PROGRESS_H
#define LVD_CORE_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct lvd_progress;

struct lvd_progress_opts {
	const char *unit;        /* "images", "records"...; NULL -> "items" (copied) */
	int tty;                 /* 1 redraw mode, 0 line mode, -1 auto: isatty(fileno(out)) */
	double interval_s;       /* line mode: seconds between lines; <= 0 -> 10 */
	double tty_interval_s;   /* tty mode: seconds between redraws; <= 0 -> 1/6 */
	/* Monotonic seconds; NULL -> CLOCK_MONOTONIC. */
	double (*clock)(void *clock_ctx);
	void *clock_ctx;
};

/* Creates a reporter writing to `out` (borrowed; NULL makes every call a no-op) with
 * the line prefix `label` (copied; e.g. the program name) and the expected total
 * (0 = unknown). opts may be NULL for defaults. Returns NULL only when out of memory
 * (callers may treat a NULL reporter as silent: all functions accept NULL). */
struct lvd_progress *lvd_progress_create(FILE *out, const char *label, uint64_t total,
					 const struct lvd_progress_opts *opts);

/* Sets the absolute count done so far / adds n to it, and prints if the rate limit
 * allows. Never prints more often than the interval of its mode. */
void lvd_progress_set(struct lvd_progress *p, uint64_t done);
void lvd_progress_add(struct lvd_progress *p, uint64_t n);

/* Changes the expected total (e.g. once a manifest has been counted). */
void lvd_progress_set_total(struct lvd_progress *p, uint64_t total);

/* Prints the final summary line (ending in "\n"; on a terminal it replaces the live
 * line). Calling it twice prints once. */
void lvd_progress_finish(struct lvd_progress *p);

/* Frees the reporter (does not print; call finish first if a summary is wanted). */
void lvd_progress_destroy(struct lvd_progress *p);

/* Formats a duration as "45s", "1m07s", "2h03m", "3d04h" into buf (>= 16 bytes).
 * Negative or non-finite values give "?". Exposed for tests and tool messages. */
void lvd_progress_format_duration(double seconds, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
