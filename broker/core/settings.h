/* The broker's configuration: every key of broker.conf(5), in one
 * structure described by settings_table (see common/conf.h). */
#ifndef BROKER_SETTINGS_H
#define BROKER_SETTINGS_H

#include <stdint.h>

#include "conf.h"

/* Times are in milliseconds (written in seconds in the file), sizes in
 * bytes. */
struct settings {
	char             *data_dir;
	char             *bind_address;
	unsigned          mqtt_port;		/* 0: no listener */
	unsigned          json_consumer_port;	/* 0: no listener */
	unsigned          json_publisher_port;	/* 0: no listener */
	uint64_t          retry_interval;	/* ms */
	unsigned          max_delivery_attempts;
	char             *dead_letter_topic;
	unsigned          max_topics;
	unsigned          max_topicds;		/* running at once */
	uint64_t          topicd_idle_timeout;	/* ms; 0: a topicd runs for ever */
	unsigned          max_topic_levels;	/* of a published topic or a filter */
	uint64_t          message_size_limit;	/* bytes */
	char             *topicd_path;		/* NULL: the installed one */
	unsigned          max_connections;
	unsigned          max_client_pending;	/* requests of one client waiting for topicds */
	uint64_t          client_output_limit;	/* bytes of unread answers before reading stops */
	uint64_t          restart_backoff_min;	/* ms */
	uint64_t          restart_backoff_max;	/* ms */
	unsigned          crash_limit;		/* obsolete: accepted, ignored */
	uint64_t          crash_window;		/* ms */
	unsigned          poison_limit;
	unsigned          max_held_publishes;	/* per topic */
	uint64_t          max_topic_size;	/* bytes of messages per topic; 0: no limit */
	uint64_t          max_store_size;	/* bytes of messages in all; 0: no limit */
	uint64_t          min_free_space;	/* bytes free in data_dir; 0: no floor */
	uint64_t          checkpoint_size;	/* bytes of journal */
	uint64_t          shutdown_timeout;	/* ms */
	unsigned          max_inflight_messages;
	unsigned          max_queued_messages;
	uint64_t          persistent_client_expiration; /* ms; 0: never */
	uint64_t          sys_interval;		/* ms */
	char             *pid_file;		/* NULL: none */
	struct conf_list  log_dest;		/* empty: stderr */
	struct conf_list  log_type;		/* empty: the default level */
	char             *user;
	char             *listener;		/* "PORT [ADDRESS]", as mosquitto's; NULL: none */
	char             *sync_policy;		/* "batch" or "none" */
	unsigned          login_attempts;
	uint64_t          idle_timeout;		/* ms */
	char             *password_file;	/* NULL: user names are not checked */
	char             *acl_file;		/* NULL: no access control */
	char             *allow_anonymous;	/* "true", "false"...; NULL: only while every
						 * listener is on a loopback address */
	/* MQTT 5.0 (mosquitto's names where it has them) */
	unsigned          max_keepalive;	/* seconds; 0: any, even none */
	uint64_t          max_packet_size;	/* bytes of a packet from a client; 0: no limit of its own */
	unsigned          max_topic_alias;	/* Topic Alias Maximum granted to clients */
	char             *response_information;	/* NULL: none given */
};

/* Ends with an entry whose name is NULL. */
extern const struct conf_key settings_table[];

/* Sets every key to its default (s owns nothing before). */
void	settings_init(struct settings *s);
/* Frees what s owns; settings_init() may follow. */
void	settings_free(struct settings *s);
/* What a key-by-key parse cannot see: backoff min <= max, a valid dead
 * letter topic, distinct ports, known log_dest and log_type values.
 * Returns the number of errors added to errs, each prefixed by origin
 * ("ORIGIN: message"). */
int	settings_listener(const char *v, unsigned *port, char **addr);
int	settings_check(const struct settings *s, const char *origin,
	    struct conf_errors *errs);

#endif
