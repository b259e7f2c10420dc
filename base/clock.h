/* clock.h: the two clocks recd reads — monotonic for durations, real time for dates. */
#ifndef RECD_BASE_CLOCK_H
#define RECD_BASE_CLOCK_H

#include <stdint.h>

/** Seconds on the monotonic clock (CLOCK_MONOTONIC): for measuring durations, never for dates. */
double recd_monotonic_seconds(void);
/** Nanoseconds on the monotonic clock. */
uint64_t recd_monotonic_ns(void);
/** Seconds since the Unix epoch on the real-time clock (CLOCK_REALTIME), with sub-second precision. */
double recd_realtime_seconds(void);

#endif
