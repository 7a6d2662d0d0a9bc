/* The JSON-lines protocol of the original broker on the core: what the
 * daemon (broker/) uses. */
#ifndef BROKER_JSON_JSON_H
#define BROKER_JSON_JSON_H

#include "core/core.h"

/* The protocol's operations, for the consumer and publisher listeners. */
extern const struct proto json_consumer_proto;
extern const struct proto json_publisher_proto;

#endif
