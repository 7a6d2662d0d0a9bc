/* Clocks: monotonic for timeouts and ages, wall clock for records. */
#ifndef COMMON_CLOCK_H
#define COMMON_CLOCK_H

#include <stdint.h>

int64_t mono_ms(void);		/* CLOCK_MONOTONIC in milliseconds */
int64_t wall_ms(void);		/* CLOCK_REALTIME in milliseconds since the epoch */
/* The same at the last tick of the kernel's clock (1-10 ms): for the time
 * stamp of each message received, where wall_ms()'s read of the hardware
 * clock cost 3% of the master's time in a QoS 0 stream. */
int64_t wall_ms_coarse(void);

#endif
