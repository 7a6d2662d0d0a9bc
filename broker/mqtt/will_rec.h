/* A will's record in the master's store (will_store.c): a pure codec,
 * fuzzed. */
#ifndef BROKER_MQTT_WILL_REC_H
#define BROKER_MQTT_WILL_REC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "marshal.h"

#define WILL_RECORD_VERSION 1

/* Decoded, its strings and bytes point into the record. */
struct will_rec {
	uint64_t	 since;		/* wall ms it began waiting; 0: connection open */
	bool		 stays;		/* its session outlives the connection */
	bool		 sent;		/* sent to its topicd: published at a start, whatever
					 * its delay */
	bool		 staged;	/* QoS 2, staged in its topicd: a start releases it
					 * (sent too; one byte: 0, 1 sent, 2 staged) */
	uint64_t	 incarnation;	/* of its session (a new one of the key is not it) */
	uint8_t		 qos;
	bool		 retain;
	uint32_t	 delay_s;	/* Will Delay Interval */
	bool		 has_expiry;	/* Message Expiry Interval: */
	uint32_t	 expiry_s;
	const char	*topic;
	const uint8_t	*payload;
	size_t		 len;
	const uint8_t	*props;		/* packed MQTT 5.0 properties, or NULL */
	size_t		 props_len;
	const char	*origin;
	const char	*client_id;
	const char	*user;		/* NULL: anonymous */
	const char	*listener;	/* NULL: the broker's auth */
};

void	 will_rec_encode(struct wbuf *w, const struct will_rec *r);
/* 0, or -1 when the record is not one of this version or is damaged. */
int	 will_rec_decode(const void *p, size_t n, struct will_rec *r);

#endif
