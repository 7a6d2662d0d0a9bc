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
	unsigned          topicd_spares;	/* stopped topicds kept to take a topic */
	uint64_t          topicd_timeout;	/* ms: to start, or to exit when stopped */
	unsigned          max_topic_levels;	/* of a published topic or a filter */
	unsigned          max_subscriptions;	/* filters per session */
	uint64_t          message_size_limit;	/* bytes */
	char             *topicd_path;		/* NULL: the installed one */
	unsigned          max_connections;
	unsigned          max_client_pending;	/* requests of one client waiting for topicds */
	uint64_t          client_output_limit;	/* bytes of unread answers before reading stops */
	uint64_t          client_delivery_buffer; /* SO_SNDBUF of a session's delivery socket */
	uint64_t          topicd_input_limit;	/* bytes queued for one topicd before its publishers wait */
	uint64_t          max_held_bytes;	/* publishes held for all topicds; 0: no limit */
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
	char             *sync_policy;		/* "batch" or "none" */
	unsigned          login_attempts;
	uint64_t          connect_timeout;	/* ms: to CONNECT or log in */
	uint64_t          idle_timeout;		/* ms */
	unsigned          tcp_keepalive;	/* s; 0: no keep-alive probes */
	char             *password_file;	/* NULL: user names are not checked */
	char             *acl_file;		/* NULL: no access control */
	char             *psk_file;		/* NULL: no pre-shared keys */
	char             *use_username_as_clientid;	/* "true"...; NULL: not given */
	char             *allow_anonymous;	/* "true", "false"...; NULL: only while every
						 * listener is on a loopback address */
	uint64_t          tls_handshake_timeout;	/* ms: also a WebSocket's upgrade */
	uint64_t          websockets_headers_size;	/* bytes of an upgrade request; 0: 4096 */
	bool              per_listener_settings;	/* listener blocks' password_file... apply */
	struct conf_blocks listeners;		/* of struct listener_conf */
	/* MQTT 5.0 (mosquitto's names where it has them) */
	unsigned          max_keepalive;	/* seconds; 0: any, even none */
	uint64_t          max_packet_size;	/* bytes of a packet from a client; 0: no limit of its own */
	unsigned          max_topic_alias;	/* Topic Alias Maximum granted to clients */
	char             *response_information;	/* NULL: none given */
};

/* A listener block: "listener PORT [ADDRESS]" and the keys after it
 * (listener_table).  A block with certfile and keyfile, or psk_hint, is
 * a TLS listener. */
struct listener_conf {
	char             *listener;		/* "PORT [ADDRESS]" */
	char             *where;		/* "FILE:LINE" of the listener line */
	char             *protocol;		/* mqtt, websockets, json_consumer or json_publisher */
	char             *certfile;		/* PEM; NULL: a plain listener */
	char             *keyfile;
	char             *cafile;		/* CAs of client certificates */
	char             *capath;
	char             *crlfile;		/* PEM CRLs of client certificates */
	bool              require_certificate;
	bool              use_identity_as_username;	/* the certificate's CN is the user */
	bool              use_subject_as_username;	/* its subject (RFC 2253) is */
	char             *tls_version;		/* the oldest accepted; NULL: tlsv1.2 */
	char             *ciphers;		/* TLS 1.2; NULL: OpenSSL's defaults */
	char             *ciphersuites;		/* TLS 1.3; NULL: OpenSSL's defaults */
	char             *psk_hint;		/* NULL: no pre-shared keys */
	/* Used when per_listener_settings is true (parsed and kept here). */
	char             *password_file;
	char             *acl_file;
	char             *psk_file;
	char             *use_username_as_clientid;
	char             *allow_anonymous;	/* "true", "false"...; NULL: not given */
};

/* Ends with an entry whose name is NULL. */
extern const struct conf_key settings_table[];
/* The keys of a listener block, the first being "listener" itself. */
extern const struct conf_key listener_table[];
/* The keys of mosquitto.conf(5) that are not ours (mosquitto_keys.c). */
extern const struct conf_foreign mosquitto_keys[];
/* broker.conf(5): settings_table and its listener blocks. */
extern const struct conf_syntax settings_syntax;

/* The shortcut keys of plain listeners, with the protocol each is for. */
struct shortcut {
	const char *key;			/* mqtt_port, ... */
	const char *protocol;			/* as a listener block names it */
	size_t      offset;			/* of the port in struct settings */
};
extern const struct shortcut settings_shortcuts[3];

/* Sets every key to its default (s owns nothing before). */
void	settings_init(struct settings *s);
/* Frees what s owns; settings_init() may follow. */
void	settings_free(struct settings *s);
/* Parses a file (or a buffer named name) over s, listener blocks
 * included.  given: NULL, or one slot per key of settings_table, which
 * gets "FILE:LINE" of the line that gives the key (conf.h).  Returns the
 * number of errors added. */
int	settings_parse_file(struct settings *s, const char *path, char **given,
	    struct conf_errors *errs);
int	settings_parse_buf(struct settings *s, const char *name, const char *buf,
	    size_t len, char **given, struct conf_errors *errs);
/* As mosquitto's default listener: a shortcut port (mqtt_port, ...) that
 * was not given is not opened when a listener block speaks its protocol
 * (it is set to 0). */
void	settings_apply_blocks(struct settings *s, char *const *given);
/* What a key-by-key parse cannot see: backoff min <= max, a valid dead
 * letter topic, distinct ports, known log_dest and log_type values, and
 * each listener block whole (certfile with keyfile, TLS keys only on a
 * TLS listener...).  Returns the number of errors added to errs, each
 * prefixed by origin ("ORIGIN: message"), or for a listener block by its
 * "FILE:LINE". */
int	settings_check(const struct settings *s, const char *origin,
	    struct conf_errors *errs);
/* settings_check's part for the listener blocks (and psk_file, which
 * only they use). */
int	listeners_check(const struct settings *s, const char *origin,
	    struct conf_errors *errs);
/* Is the block a TLS listener: certfile (and keyfile), or psk_hint? */
bool	listener_conf_tls(const struct listener_conf *l);
/* Splits a mosquitto-style "PORT [ADDRESS]"; *addr is NULL without one
 * (malloc'd otherwise).  Either out-pointer may be NULL (checking only). */
int	settings_listener(const char *v, unsigned *port, char **addr);
/* The PATH of a log_dest "file PATH" (the rest after the blanks), or
 * NULL for another destination. */
const char *settings_log_file(const char *dest);
/* A key's check (struct conf_key): NULL if v is a boolean
 * auth_parse_bool() reads, else what is wrong. */
const char *settings_check_bool(const char *v);
/* Whether two listener blocks differ in what a reload cannot change:
 * address, port, protocol, and being a TLS listener or not. */
bool	listener_conf_fixed_differs(const struct listener_conf *a,
	    const struct listener_conf *b);

#endif
