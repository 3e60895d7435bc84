/* lib/core/clock.h — the one monotonic wall clock of the tree.
 *
 * lvd_time_now() returns seconds since an unspecified fixed point (CLOCK_MONOTONIC):
 * only differences mean anything. It never goes backwards and ignores changes to the
 * system time, so it is what timings, rates, ETAs and stage statistics use.
 * lvd_cpu_now() returns the process's CPU time in seconds (all threads,
 * CLOCK_PROCESS_CPUTIME_ID), for CPU-time figures beside wall-clock ones. No errors
 * (clock_gettime on these clocks cannot fail on Linux). */
#ifndef LVD_CORE_CLOCK_H
#define LVD_CORE_CLOCK_H

#ifdef __cplusplus
extern "C" {
#endif

double lvd_time_now(void);
double lvd_cpu_now(void);

#ifdef __cplusplus
}
#endif
#endif
