#include "evloop.h"

#include <stddef.h>

#include <event2/event.h>

struct event_base *
evloop_new(void)
{
	struct event_config *cfg = event_config_new();
	struct event_base *base = NULL;

	if (cfg == NULL)
		return NULL;
	if (event_config_set_max_dispatch_interval(cfg, NULL, EVLOOP_MAX_CALLBACKS, 0) == 0)
		base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}
