/* The keys of mosquitto.conf(5) that are not this broker's: what a file
 * written for mosquitto may hold, and what becomes of each line here.
 * A key that means the same is taken under its name here (an alias); one
 * whose mosquitto value describes this broker is taken and changes
 * nothing; any other is an error that says what to write instead, so that
 * `broker -t -c mosquitto.conf` is a list of what to change. */
#include "core/settings.h"

const struct conf_foreign mosquitto_keys[] = {
	/* The same meaning, another name. */
	{ "persistence_location", "data_dir", NULL, NULL },
	{ "port", "mqtt_port", NULL, NULL },
	{ "ciphers_tls1.3", "ciphersuites", NULL, NULL },

	/* What this broker always does. */
	{ "persistence", NULL, "true",
	  "every message is stored on disk here, always: only 'persistence true' is taken" },
	{ "autosave_interval", NULL, "*", NULL },
	{ "autosave_on_changes", NULL, "*", NULL },
	/* libwebsockets' log level: WebSocket upgrades and closes are logged
	 * here as connections are, at log_type. */
	{ "websockets_log_level", NULL, "*", NULL },
	{ "set_tcp_nodelay", NULL, "true",
	  "Nagle's algorithm is always off here: only 'set_tcp_nodelay true' is taken" },
	{ "retain_available", NULL, "true",
	  "retained messages are always available here: only 'retain_available true' is"
	  " taken" },
	{ "log_timestamp", NULL, "true",
	  "every log line has a timestamp here: only 'log_timestamp true' is taken" },
	{ "allow_zero_length_clientid", NULL, "true",
	  "a client without an id always gets one here: only"
	  " 'allow_zero_length_clientid true' is taken" },

	/* Not here: what to write instead. */
	{ "persistence_file", NULL, NULL,
	  "a store per topic is kept under data_dir here, not one file: remove the line" },
	{ "include_dir", NULL, NULL, "it is read from a configuration file only" },
	{ "log_timestamp_format", NULL, NULL,
	  "log lines have ISO 8601 UTC timestamps here, in one format: remove the line" },
	{ "log_facility", NULL, NULL,
	  "syslog messages go to the daemon facility here: remove the line" },
	{ "connection_messages", NULL, NULL,
	  "connections are logged at log_type information here: remove the line" },
	{ "bind_interface", NULL, NULL,
	  "give the interface's address instead: bind_address, or listener PORT ADDRESS" },
	{ "socket_domain", NULL, NULL,
	  "the address of a listener line says the family here (0.0.0.0 or ::)" },
	{ "memory_limit", NULL, NULL,
	  "queues are on disk here, not in memory: see max_topic_size and max_store_size" },
	{ "max_queued_bytes", NULL, NULL,
	  "queues are on disk here, not in memory: see max_queued_messages and"
	  " max_topic_size" },
	{ "max_inflight_bytes", NULL, NULL,
	  "not supported; max_inflight_messages bounds what is in flight" },
	{ "upgrade_outgoing_qos", NULL, NULL, "not supported: remove the line" },
	{ "check_retain_source", NULL, NULL, "not supported: remove the line" },
	{ "clientid_prefixes", NULL, NULL,
	  "not supported; an acl_file pattern with %c can bound what each client does" },
	{ "mount_point", NULL, NULL, "not supported: remove the line" },
	{ "http_dir", NULL, NULL,
	  "files are not served over HTTP here (a listener with protocol websockets takes"
	  " MQTT over WebSockets on any path): remove the line" },
	{ "auth_plugin", NULL, NULL,
	  "plugins are not supported; password_file, acl_file and psk_file are built in" },
	{ "plugin", NULL, NULL,
	  "plugins are not supported; password_file, acl_file and psk_file are built in" },
	{ "connection", NULL, NULL, "bridges are not supported" },
	/* A bridge's keys (bridge_cafile, bridge_protocol_version...). */
	{ "bridge_*", NULL, NULL, "bridges are not supported" },
	{ "dhparamfile", NULL, NULL,
	  "not needed: TLS keys are exchanged with elliptic curves (ECDHE) here" },
	{ "tls_engine", NULL, NULL, "not supported: keyfile is a PEM file" },
	{ "tls_keyform", NULL, NULL, "not supported: keyfile is a PEM file" },
	{ NULL, NULL, NULL, NULL },
};
