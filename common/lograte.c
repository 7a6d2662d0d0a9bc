#include "lograte.h"

#include <stdio.h>

enum log_level
lograte_level(struct lograte *r, int64_t now_ms, int64_t every_ms, unsigned *quiet)
{
	*quiet = 0;
	if (r->last_ms != 0 && now_ms - r->last_ms < every_ms) {
		r->quiet++;
		return LOG_LVL_INFO;
	}
	*quiet = r->quiet;
	r->quiet = 0;
	r->last_ms = now_ms != 0 ? now_ms : 1;
	return LOG_LVL_NOTICE;
}

const char *
lograte_since(unsigned quiet, char *buf, size_t size)
{
	if (quiet == 0 || size == 0)
		return "";
	snprintf(buf, size, " (%u more time%s since the last notice)", quiet,
	    quiet == 1 ? "" : "s");
	return buf;
}
