/* MQTT 3.1.1 (and 3.1) on the core: what the daemon (broker/) uses. */
#ifndef BROKER_MQTT_MQTT_H
#define BROKER_MQTT_MQTT_H

#include "core/core.h"

/* The protocol's operations, for the MQTT listener. */
extern const struct proto mqtt_proto;

/* After the master's store is open: the sessions' deliveries in flight
 * (their packet ids) are loaded from it. */
void	 mqtt_init(struct broker *b);
/* Before a client is accepted: the wills kept from before the start are
 * published, or wait for their sessions (will_store.c). */
void	 mqtt_wills_restore(struct broker *b);
/* At teardown: what waits for wills to be stored (their records stay). */
void	 mqtt_wills_free(void);

/* $SYS/broker/...: started once the store is open, stopped at teardown;
 * sys_reload after a SIGHUP (sys_interval may have changed). */
void	 sys_start(struct broker *b);
void	 sys_stop(struct broker *b);

#endif
