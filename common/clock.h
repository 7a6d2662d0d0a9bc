/* Clocks: monotonic for timeouts and ages, wall clock for records. */
#ifndef COMMON_CLOCK_H
#define COMMON_CLOCK_H

#include <stdint.h>

int64_t mono_ms(void);		/* CLOCK_MONOTONIC in milliseconds */
int64_t wall_ms(void);		/* CLOCK_REALTIME in milliseconds since the epoch */

#endif
