/* The broker's configuration table: name, type, default, bounds,
 * reloadable, help.  broker.conf(5) describes the same keys. */
#include "core/settings.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "ipc.h"
#include "log.h"
#include "topic.h"
#include "xmalloc.h"

#define F(f)	offsetof(struct settings, f)
#define RELOAD	true
#define FIXED	false

static const char *check_topic_name(const char *);
static const char *check_sync_policy(const char *);
static const char *check_log_dest(const char *);
static const char *check_log_type(const char *);

/* message_size_limit's bound is what one record between the processes may
 * carry (common/ipc.h). */
#define MESSAGE_SIZE_BOUND 268435456
_Static_assert(MESSAGE_SIZE_BOUND == IPC_MAX_MESSAGE, "message_size_limit's bound");

const struct conf_key settings_table[] = {
	/* Where things are. */
	{ "data_dir", CONF_STRING, F(data_dir), "data", 0, 0, FIXED,
	  "directory holding one store per topic and the session store", NULL },
	{ "topicd_path", CONF_STRING, F(topicd_path), NULL, 0, 0, FIXED,
	  "the topicd executable to start (default: the installed one)", NULL },
	{ "pid_file", CONF_STRING, F(pid_file), NULL, 0, 0, FIXED,
	  "file to write the master's pid to (default: none)", NULL },
	{ "user", CONF_STRING, F(user), "broker", 0, 0, FIXED,
	  "user the broker becomes after binding its ports when started as root (root: stay root)", NULL },

	/* Listeners. */
	{ "bind_address", CONF_STRING, F(bind_address), "127.0.0.1", 0, 0, FIXED,
	  "address every listener binds to", NULL },
	{ "mqtt_port", CONF_PORT, F(mqtt_port), "1883", 0, 65535, FIXED,
	  "MQTT listener port (0: none)", NULL },
	{ "json_consumer_port", CONF_PORT, F(json_consumer_port), "4040", 0, 65535, FIXED,
	  "JSON-lines consumer listener port (0: none)", NULL },
	{ "json_publisher_port", CONF_PORT, F(json_publisher_port), "4041", 0, 65535, FIXED,
	  "JSON-lines publisher listener port (0: none)", NULL },
	{ "max_connections", CONF_UINT, F(max_connections), "10000", 1, 1000000, RELOAD,
	  "client connections accepted at once; more are refused", NULL },
	{ "max_client_pending", CONF_UINT, F(max_client_pending), "1024", 1, 1000000, RELOAD,
	  "requests of one client waiting for topicds before the broker stops reading from it", NULL },
	{ "client_output_limit", CONF_SIZE, F(client_output_limit), "256k", 4096, 1073741824, RELOAD,
	  "bytes of output a client has not read before the broker stops reading from it", NULL },
	{ "client_delivery_buffer", CONF_SIZE, F(client_delivery_buffer), "2m", 65536, 67108864, RELOAD,
	  "bytes of deliveries the topicds may have handed one client's session before the master takes them (the kernel buffer of its delivery socket, capped by net.core.wmem_max); applies to connections opened after a reload", NULL },
	{ "connect_timeout", CONF_MSEC, F(connect_timeout), "30", 1, 86400, RELOAD,
	  "seconds a connection has, once started (after its TLS handshake or WebSocket upgrade), to send its MQTT CONNECT or its JSON-lines login before it is closed; applies to connections started after a reload", NULL },
	{ "idle_timeout", CONF_MSEC, F(idle_timeout), "300", 1, 86400, RELOAD,
	  "seconds a connection may wait with half a line or packet before it is closed; and a closed one may take to read what it is owed", NULL },
	{ "tcp_keepalive", CONF_UINT, F(tcp_keepalive), "60", 0, 7200, RELOAD,
	  "seconds a client's connection may be silent before TCP probes its peer (0: never); a peer that answers none of 4 probes, a quarter of that apart, is gone and its connection closed", NULL },
	{ "login_attempts", CONF_UINT, F(login_attempts), "5", 1, 1000, FIXED,
	  "failed logins allowed on one connection before it is closed", NULL },
	{ "tls_handshake_timeout", CONF_MSEC, F(tls_handshake_timeout), "10", 0.1, 3600, RELOAD,
	  "seconds a connection to a TLS listener has to complete its handshake, and one to a WebSocket listener its upgrade (both, with TLS), before it is closed", NULL },
	{ "websockets_headers_size", CONF_SIZE, F(websockets_headers_size), "4k", 0, 65535, RELOAD,
	  "bytes of the HTTP upgrade request a WebSocket listener reads, at most (0: the default, as in mosquitto)", NULL },
	{ "per_listener_settings", CONF_BOOL, F(per_listener_settings), "false", 0, 0, FIXED,
	  "true: password_file, acl_file, psk_file, use_username_as_clientid and allow_anonymous in a listener block apply to that listener only (as in mosquitto)", NULL },

	/* Who may connect, and what they may do (broker/auth). */
	{ "password_file", CONF_STRING, F(password_file), NULL, 0, 0, RELOAD,
	  "users and their password hashes, as mosquitto_passwd writes them (default: none, user names are not checked)", NULL },
	{ "acl_file", CONF_STRING, F(acl_file), NULL, 0, 0, RELOAD,
	  "access control list in mosquitto's acl_file syntax (default: none, every client may read and write every topic)", NULL },
	{ "psk_file", CONF_STRING, F(psk_file), NULL, 0, 0, RELOAD,
	  "pre-shared keys of the listeners with psk_hint, as in mosquitto: IDENTITY:KEY lines, the key in hex (default: none)", NULL },
	{ "use_username_as_clientid", CONF_STRING, F(use_username_as_clientid), "false", 0, 0, RELOAD,
	  "true: an MQTT client's checked user name is its client id, as in mosquitto (clients without one are refused)",
	  settings_check_bool },
	{ "allow_anonymous", CONF_STRING, F(allow_anonymous), NULL, 0, 0, RELOAD,
	  "true: clients without a checked user name get in; false: they are refused (default: true only while every listener is on a loopback address)",
	  settings_check_bool },

	/* Messages and delivery. */
	{ "message_size_limit", CONF_SIZE, F(message_size_limit), "256k", 16, 268435456, RELOAD,
	  "largest payload accepted, in bytes (suffix k, m or g)", NULL },
	{ "retry_interval", CONF_MSEC, F(retry_interval), "10", 0.01, 3600, RELOAD,
	  "seconds before an unacknowledged QoS 1/2 message is sent again", NULL },
	{ "max_delivery_attempts", CONF_UINT, F(max_delivery_attempts), "5", 1, 1000, RELOAD,
	  "deliveries of one message to one subscriber before it is dead-lettered", NULL },
	{ "dead_letter_topic", CONF_STRING, F(dead_letter_topic), "$DLQ", 0, 0, FIXED,
	  "topic that receives messages that could not be delivered", check_topic_name },
	{ "max_inflight_messages", CONF_UINT, F(max_inflight_messages), "100", 1, 65535, RELOAD,
	  "unacknowledged QoS 1/2 messages in flight to one client", NULL },
	{ "max_queued_messages", CONF_UINT, F(max_queued_messages), "0", 0, 10000000, RELOAD,
	  "0: a subscriber's queue is its place in the topic's log, bounded by disk only; N: an MQTT subscriber more than N messages behind has its oldest ones dead-lettered (reason maxlen) and skipped", NULL },
	{ "max_keepalive", CONF_UINT, F(max_keepalive), "65535", 0, 65535, RELOAD,
	  "longest keep-alive, in seconds, an MQTT 5.0 client may use: one asking for more, or for none, is told this one (Server Keep Alive); 0: any, even none", NULL },
	{ "max_packet_size", CONF_SIZE, F(max_packet_size), "0", 0, 268435460, RELOAD,
	  "largest MQTT packet, in bytes, taken from a client (0: what message_size_limit implies); MQTT 5.0 clients are told it, a larger packet closes the connection", NULL },
	{ "max_topic_alias", CONF_UINT, F(max_topic_alias), "10", 0, 65535, RELOAD,
	  "topic aliases an MQTT 5.0 client may use on its publishes (0: none)", NULL },
	{ "response_information", CONF_STRING, F(response_information), NULL, 0, 0, RELOAD,
	  "topic prefix given as Response Information to MQTT 5.0 clients that ask for it (default: none given)", check_topic_name },
	{ "persistent_client_expiration", CONF_MSEC, F(persistent_client_expiration), "0", 0, 315360000, FIXED,
	  "seconds after which a disconnected persistent session is removed (0: never)", NULL },

	/* Topics and their topicd. */
	{ "max_topics", CONF_UINT, F(max_topics), "100000", 1, 10000000, RELOAD,
	  "topics that may exist; a publish to a new topic past it is refused (not acknowledged)", NULL },
	{ "max_topicds", CONF_UINT, F(max_topicds), "1000", 2, 1000000, RELOAD,
	  "topicd processes that may run at once; past it, the least busy one is stopped to start another (its topic goes cold, nothing is lost)", NULL },
	{ "topicd_idle_timeout", CONF_MSEC, F(topicd_idle_timeout), "60", 0, 86400, RELOAD,
	  "seconds a topicd with nothing to do keeps running before it exits (0: never); its topic starts again on demand", NULL },
	{ "topicd_spares", CONF_UINT, F(topicd_spares), "16", 0, 1000, RELOAD,
	  "topicds stopped for room or idleness that wait to serve the next topic to start, rather than a new process (0: every start is a new process)", NULL },
	{ "topicd_timeout", CONF_MSEC, F(topicd_timeout), "60", 1, 3600, RELOAD,
	  "seconds a topicd may take to start, to exit once stopped for room, or to be heard from while it has work, before it is killed (one stopped or hung holds its topic and a place under max_topicds)", NULL },
	{ "max_topic_size", CONF_SIZE, F(max_topic_size), "0", 0, 1125899906842624, RELOAD,
	  "bytes of messages one topic keeps (0: no limit); past it, publishes to the topic wait unacknowledged", NULL },
	{ "max_store_size", CONF_SIZE, F(max_store_size), "0", 0, 1125899906842624, RELOAD,
	  "bytes of messages all topics keep together (0: no limit); past it, every publish waits unacknowledged", NULL },
	{ "min_free_space", CONF_SIZE, F(min_free_space), "100m", 0, 1125899906842624, RELOAD,
	  "bytes the data directory's file system keeps free (0: none); below it, publishes wait unacknowledged", NULL },
	{ "max_topic_levels", CONF_UINT, F(max_topic_levels), "200", 1, 65536, RELOAD,
	  "levels ('/'-separated parts) a published topic or a subscription filter may have", NULL },
	{ "max_subscriptions", CONF_UINT, F(max_subscriptions), "10000", 1, 1000000, RELOAD,
	  "topic filters one session may subscribe to; one more is refused (MQTT 5.0: 0x97)", NULL },
	{ "sync_policy", CONF_STRING, F(sync_policy), "batch", 0, 0, RELOAD,
	  "batch: fdatasync each batch before acknowledging it; none: write only (safe from crashes of the broker, not of the machine)",
	  check_sync_policy },
	{ "checkpoint_size", CONF_SIZE, F(checkpoint_size), "4m", 4096, 1073741824, RELOAD,
	  "journal size, in bytes, at which a topicd checkpoints into its store", NULL },
	{ "restart_backoff_min", CONF_MSEC, F(restart_backoff_min), "0.1", 0.001, 3600, RELOAD,
	  "seconds before a crashed topicd is first restarted; doubles at each crash", NULL },
	{ "restart_backoff_max", CONF_MSEC, F(restart_backoff_max), "30", 0.001, 86400, RELOAD,
	  "longest wait, in seconds, before a crashed topicd is restarted", NULL },
	{ "crash_limit", CONF_UINT, F(crash_limit), "0", 0, 1000, RELOAD,
	  "obsolete and ignored: a topicd is restarted for ever (see poison_limit)", NULL },
	{ "crash_window", CONF_MSEC, F(crash_window), "60", 1, 86400, RELOAD,
	  "seconds a topicd must run before its restart back-off starts again from restart_backoff_min (so does one that ran ten times its next wait)", NULL },
	{ "poison_limit", CONF_UINT, F(poison_limit), "2", 1, 1000, RELOAD,
	  "crashes of a topicd while it applies the same request before that request is moved to the dead-letter topic (reason poison)", NULL },
	{ "max_held_publishes", CONF_UINT, F(max_held_publishes), "1000", 0, 1000000, RELOAD,
	  "publishes held per topic while its topicd restarts before its publishers are no longer read", NULL },
	{ "topicd_input_limit", CONF_SIZE, F(topicd_input_limit), "4m", 65536, 1073741824, RELOAD,
	  "bytes of requests queued in the master for one topicd before its publishers are no longer read", NULL },
	{ "max_held_bytes", CONF_SIZE, F(max_held_bytes), "256m", 0, 1125899906842624, RELOAD,
	  "bytes of publishes the master holds for all topicds together before the publishers of topics whose topicds do not keep up are no longer read (0: no limit)", NULL },
	{ "shutdown_timeout", CONF_MSEC, F(shutdown_timeout), "5", 0, 3600, RELOAD,
	  "seconds to wait for topicds to exit on shutdown before killing them", NULL },

	/* Observing. */
	{ "sys_interval", CONF_MSEC, F(sys_interval), "10", 1, 86400, RELOAD,
	  "seconds between updates of the $SYS topics", NULL },
	{ "log_dest", CONF_LIST, F(log_dest), NULL, 0, 0, RELOAD,
	  "where to log: stderr, syslog or file PATH; may be repeated (default: stderr)",
	  check_log_dest },
	{ "log_type", CONF_LIST, F(log_type), NULL, 0, 0, RELOAD,
	  "what to log: error, warning, notice, information, debug or all; the most verbose one listed wins",
	  check_log_type },

	{ NULL, 0, 0, NULL, 0, 0, FIXED, NULL, NULL },
};

void
settings_init(struct settings *s)
{
	memset(s, 0, sizeof(*s));
	conf_defaults(settings_table, s);
}

void
settings_free(struct settings *s)
{
	conf_free(settings_table, s);
	conf_blocks_free(settings_syntax.blocks, s);
}

const char *
settings_log_file(const char *d)
{
	if (strncmp(d, "file", 4) != 0 || (d[4] != ' ' && d[4] != '\t'))
		return NULL;
	d += 4 + strspn(d + 4, " \t");
	return *d != '\0' ? d : NULL;
}

/* Where element i of a list was given: its line, else origin. */
static const char *
item_where(const struct conf_list *l, size_t i, const char *origin)
{
	return l->where != NULL && l->where[i] != NULL ? l->where[i] : origin;
}

/* One file at most: each more is an error at its line. */
static int
check_log(const struct settings *s, const char *origin,
    struct conf_errors *errs)
{
	const struct conf_list *l = &s->log_dest;
	const char *first = NULL;
	int n = 0;

	for (size_t i = 0; i < l->n; i++) {
		if (settings_log_file(l->v[i]) == NULL)
			continue;
		if (first == NULL)
			first = item_where(l, i, origin);
		else
			n += conf_error(errs, "%s: log_dest: only one file may be given, and"
			    " %s gives one already", item_where(l, i, origin), first);
	}
	return n;
}

int
settings_check(const struct settings *s, const char *origin,
    struct conf_errors *errs)
{
	const char *dlq = s->dead_letter_topic;
	int n = 0;

	if (s->restart_backoff_min > s->restart_backoff_max)
		n += conf_error(errs, "%s: restart_backoff_min is greater than"
		    " restart_backoff_max", origin);
	if (dlq == NULL)
		n += conf_error(errs, "%s: dead_letter_topic is not set", origin);
	if (s->mqtt_port != 0 && (s->mqtt_port == s->json_consumer_port ||
	    s->mqtt_port == s->json_publisher_port))
		n += conf_error(errs, "%s: mqtt_port %u is also a JSON-lines port",
		    origin, s->mqtt_port);
	if (s->json_consumer_port != 0 &&
	    s->json_consumer_port == s->json_publisher_port)
		n += conf_error(errs, "%s: json_consumer_port and"
		    " json_publisher_port are both %u", origin,
		    s->json_consumer_port);
	if (s->sync_policy == NULL)
		n += conf_error(errs, "%s: sync_policy is not set", origin);
	if (s->data_dir == NULL || s->data_dir[0] == '\0')
		n += conf_error(errs, "%s: data_dir is not set", origin);
	return n + check_log(s, origin, errs) + listeners_check(s, origin, errs);
}

static const char *
check_topic_name(const char *v)
{
	enum topic_err e = topic_check_name(v, strlen(v));

	return e == TOPIC_OK ? NULL : topic_strerror(e);
}

const char *
settings_check_bool(const char *v)
{
	return auth_parse_bool(v) != -1 ? NULL :
	    "expected true, false, yes, no, on, off, 1 or 0";
}

static const char *
check_sync_policy(const char *v)
{
	return strcmp(v, "batch") == 0 || strcmp(v, "none") == 0 ? NULL :
	    "expected batch or none";
}

static const char *
check_log_dest(const char *v)
{
	return strcmp(v, "stderr") == 0 || strcmp(v, "syslog") == 0 ||
	    settings_log_file(v) != NULL ? NULL : "expected stderr, syslog or file PATH";
}

static const char *
check_log_type(const char *v)
{
	return strcmp(v, "all") == 0 || log_level_parse(v) != -1 ? NULL :
	    "expected error, warning, notice, information, debug or all";
}
