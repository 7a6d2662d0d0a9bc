/* The level of a line for an event that can come many times a second (a
 * topic that fills and empties at its size limit): notice at most once
 * per interval, information in between, and the next notice says how
 * many times it came meanwhile (lograte_since). */
#ifndef COMMON_LOGRATE_H
#define COMMON_LOGRATE_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"

#define LOGRATE_EVERY_MS 60000	/* the interval, unless a caller needs another */

struct lograte {
	int64_t	 last_ms;	/* of the last notice; 0: none yet */
	unsigned quiet;		/* times at information since */
};

/* This time's level, at now_ms (a monotonic clock): LOG_LVL_NOTICE when
 * every_ms have passed since the last notice (or there was none), with
 * *quiet the times logged at information since then; LOG_LVL_INFO
 * otherwise (*quiet 0). */
enum log_level lograte_level(struct lograte *r, int64_t now_ms, int64_t every_ms,
	    unsigned *quiet);

/* " (N more times since the last notice)" when quiet > 0, else "". */
const char *lograte_since(unsigned quiet, char *buf, size_t size);

#endif
