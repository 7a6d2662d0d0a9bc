/* The broker's configuration table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/settings.h"

static void
test_defaults(void **state)
{
	struct settings s;

	(void)state;
	settings_init(&s);
	assert_string_equal(s.data_dir, "data");
	assert_string_equal(s.bind_address, "127.0.0.1");
	assert_int_equal(s.mqtt_port, 1883);
	assert_int_equal(s.json_consumer_port, 4040);
	assert_int_equal(s.json_publisher_port, 4041);
	assert_int_equal(s.retry_interval, 10000);
	assert_int_equal(s.max_delivery_attempts, 5);
	assert_string_equal(s.dead_letter_topic, "$DLQ");
	assert_int_equal(s.max_topics, 100000);
	assert_int_equal(s.max_topicds, 1000);
	assert_int_equal(s.topicd_idle_timeout, 60000);
	assert_int_equal(s.topicd_timeout, 60000);
	assert_int_equal(s.message_size_limit, 262144);
	assert_null(s.topicd_path);
	assert_int_equal(s.max_connections, 10000);
	assert_int_equal(s.restart_backoff_min, 100);
	assert_int_equal(s.restart_backoff_max, 30000);
	assert_int_equal(s.crash_limit, 0);
	assert_int_equal(s.crash_window, 60000);
	assert_int_equal(s.poison_limit, 2);
	assert_int_equal(s.max_topic_size, 0);
	assert_int_equal(s.max_store_size, 0);
	assert_int_equal(s.min_free_space, 100 << 20);
	assert_int_equal(s.max_held_publishes, 1000);
	assert_int_equal(s.topicd_input_limit, 4 << 20);
	assert_int_equal(s.max_held_bytes, 256 << 20);
	assert_int_equal(s.checkpoint_size, 4 << 20);
	assert_int_equal(s.shutdown_timeout, 5000);
	assert_int_equal(s.max_inflight_messages, 100);
	assert_int_equal(s.max_queued_messages, 0);
	assert_int_equal(s.persistent_client_expiration, 0);
	assert_int_equal(s.sys_interval, 10000);
	assert_null(s.pid_file);
	assert_int_equal(s.log_dest.n, 0);
	assert_int_equal(s.log_type.n, 0);
	assert_string_equal(s.user, "broker");
	assert_int_equal(s.login_attempts, 5);
	assert_int_equal(s.connect_timeout, 30000);
	assert_int_equal(s.idle_timeout, 300000);
	assert_int_equal(s.tcp_keepalive, 60);
	assert_int_equal(s.tls_handshake_timeout, 10000);
	assert_false(s.per_listener_settings);
	assert_int_equal(s.listeners.n, 0);
	settings_free(&s);
	assert_null(s.data_dir);
}

/* Every key: a name of its own, a field of its own inside the structure,
 * one line of help, and a default that parses to what settings_init()
 * gives. */
static void
test_table(void **state)
{
	const struct conf_key *k, *j;
	struct settings s, one;
	struct conf_errors e = { 0 };
	size_t n = 0;

	(void)state;
	settings_init(&s);
	for (k = settings_table; k->name != NULL; k++, n++) {
		assert_non_null(k->help);
		assert_true(strlen(k->help) > 10);
		assert_null(strchr(k->help, '\n'));
		assert_true(k->offset < sizeof(struct settings));
		assert_ptr_equal(conf_find(settings_table, k->name), k);
		for (j = settings_table; j != k; j++)
			assert_true(j->offset != k->offset);
		if (k->type == CONF_UINT || k->type == CONF_SIZE ||
		    k->type == CONF_MSEC || k->type == CONF_PORT)
			assert_true(k->min < k->max);

		memset(&one, 0, sizeof(one));
		if (k->def == NULL) {
			assert_true(k->type == CONF_STRING || k->type == CONF_LIST);
			continue;
		}
		if (conf_set(settings_table, &one, k->name, k->def, "default", &e) != 0)
			fail_msg("%s", e.msg[0]);
		assert_false(conf_differs(k, &s, &one));
		conf_free(settings_table, &one);
	}
	assert_int_equal(n, 59);
	assert_int_equal(e.n, 0);
	/* The defaults agree with each other. */
	assert_int_equal(settings_check(&s, "defaults", &e), 0);
	settings_free(&s);
}

static void
test_reloadable(void **state)
{
	static const char *const live[] = {
		"retry_interval", "max_delivery_attempts", "max_topics",
		"message_size_limit", "max_connections", "restart_backoff_min",
		"restart_backoff_max", "crash_limit", "crash_window",
		"max_held_publishes", "checkpoint_size", "shutdown_timeout",
		"max_inflight_messages", "max_queued_messages", "sys_interval",
		"connect_timeout", "idle_timeout", "log_dest", "log_type", "sync_policy",
		"max_client_pending", "client_output_limit", "poison_limit",
		"max_topic_size", "max_store_size", "min_free_space", "max_topic_levels",
		"max_subscriptions", "max_topicds", "topicd_idle_timeout", "topicd_spares",
		"topicd_timeout", "password_file", "acl_file",
		"psk_file", "use_username_as_clientid", "allow_anonymous", "tls_handshake_timeout", "max_keepalive", "max_packet_size",
		"max_topic_alias", "response_information", "topicd_input_limit",
		"client_delivery_buffer", "max_held_bytes", "websockets_headers_size",
		"tcp_keepalive",
	};
	size_t n = 0;

	(void)state;
	for (const struct conf_key *k = settings_table; k->name != NULL; k++) {
		bool want = false;

		for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++)
			if (strcmp(live[i], k->name) == 0)
				want = true;
		if (k->reloadable != want)
			fail_msg("%s: reloadable is %d", k->name, k->reloadable);
		n += want;
	}
	assert_int_equal(n, sizeof(live) / sizeof(live[0]));
}

static const char sample[] =
    "# broker.conf\n"
    "data_dir /var/lib/broker\n"
    "bind_address 0.0.0.0\n"
    "mqtt_port 11883\n"
    "json_consumer_port 14040\n"
    "json_publisher_port 0\n"
    "retry_interval 0.5\n"
    "max_delivery_attempts 3\n"
    "dead_letter_topic dead/letters\n"
    "max_topics 500\n"
    "max_topic_levels 16\n"
    "message_size_limit 1m\n"
    "topicd_path /usr/libexec/broker/topicd\n"
    "max_connections 200\n"
    "restart_backoff_min 0.05\n"
    "restart_backoff_max 10\n"
    "crash_limit 3\n"
    "crash_window 30\n"
    "max_held_publishes 50\n"
    "topicd_input_limit 1m\n"
    "checkpoint_size 16M\n"
    "shutdown_timeout 2.5\n"
    "max_inflight_messages 10\n"
    "max_queued_messages 100\n"
    "persistent_client_expiration 86400\n"
    "sys_interval 1\n"
    "pid_file /run/broker.pid\n"
    "log_dest syslog\n"
    "log_dest file /var/log/broker.log\n"
    "log_type warning\n"
    "log_type information\n"
    "user nobody\n"
    "login_attempts 3\n"
    "idle_timeout 60\n";

static void
test_sample(void **state)
{
	struct settings s;
	struct conf_errors e = { 0 };

	(void)state;
	settings_init(&s);
	assert_int_equal(conf_parse_buf(settings_table, &s, "broker.conf",
	    sample, sizeof(sample) - 1, &e), 0);
	assert_int_equal(settings_check(&s, "broker.conf", &e), 0);
	assert_string_equal(s.data_dir, "/var/lib/broker");
	assert_string_equal(s.bind_address, "0.0.0.0");
	assert_int_equal(s.mqtt_port, 11883);
	assert_int_equal(s.json_consumer_port, 14040);
	assert_int_equal(s.json_publisher_port, 0);
	assert_int_equal(s.retry_interval, 500);
	assert_int_equal(s.max_delivery_attempts, 3);
	assert_string_equal(s.dead_letter_topic, "dead/letters");
	assert_int_equal(s.max_topics, 500);
	assert_int_equal(s.max_topic_levels, 16);
	assert_int_equal(s.message_size_limit, 1 << 20);
	assert_string_equal(s.topicd_path, "/usr/libexec/broker/topicd");
	assert_int_equal(s.max_connections, 200);
	assert_int_equal(s.restart_backoff_min, 50);
	assert_int_equal(s.restart_backoff_max, 10000);
	assert_int_equal(s.crash_limit, 3);
	assert_int_equal(s.crash_window, 30000);
	assert_int_equal(s.max_held_publishes, 50);
	assert_int_equal(s.topicd_input_limit, 1 << 20);
	assert_int_equal(s.checkpoint_size, 16 << 20);
	assert_int_equal(s.shutdown_timeout, 2500);
	assert_int_equal(s.max_inflight_messages, 10);
	assert_int_equal(s.max_queued_messages, 100);
	assert_int_equal(s.persistent_client_expiration, 86400000);
	assert_int_equal(s.sys_interval, 1000);
	assert_string_equal(s.pid_file, "/run/broker.pid");
	assert_int_equal(s.log_dest.n, 2);
	assert_string_equal(s.log_dest.v[0], "syslog");
	assert_string_equal(s.log_dest.v[1], "file /var/log/broker.log");
	assert_int_equal(s.log_type.n, 2);
	assert_string_equal(s.log_type.v[1], "information");
	assert_string_equal(s.user, "nobody");
	assert_int_equal(s.login_attempts, 3);
	assert_int_equal(s.idle_timeout, 60000);
	settings_free(&s);
	conf_errors_free(&e);
}

static void
test_bounds(void **state)
{
	static const char text[] =
	    "retry_interval 0.001\n"
	    "max_delivery_attempts 0\n"
	    "message_size_limit 512m\n"
	    "max_topics 10000001\n"
	    "max_topic_levels 0\n";
	struct settings s;
	struct conf_errors e = { 0 };

	(void)state;
	settings_init(&s);
	assert_int_equal(conf_parse_buf(settings_table, &s, "b.conf", text,
	    sizeof(text) - 1, &e), 5);
	assert_string_equal(e.msg[0], "b.conf:1: bad value '0.001' for key"
	    " 'retry_interval': expected a number of seconds between 0.01 and"
	    " 3600 (at most 3 decimals)");
	assert_string_equal(e.msg[1], "b.conf:2: bad value '0' for key"
	    " 'max_delivery_attempts': expected a number between 1 and 1000");
	assert_string_equal(e.msg[2], "b.conf:3: bad value '512m' for key"
	    " 'message_size_limit': expected a size in bytes between 16 and"
	    " 268435456 (suffix k, m or g allowed)");
	assert_string_equal(e.msg[3], "b.conf:4: bad value '10000001' for key"
	    " 'max_topics': expected a number between 1 and 10000000");
	assert_string_equal(e.msg[4], "b.conf:5: bad value '0' for key"
	    " 'max_topic_levels': expected a number between 1 and 65536");
	settings_free(&s);
	conf_errors_free(&e);
}

static void
test_check(void **state)
{
	/* What one line can tell is refused as it is parsed, with its line. */
	static const struct {
		const char *text, *want;
	} bad_values[] = {
		{ "dead_letter_topic a/#\n",
		  "x:1: bad value 'a/#' for key 'dead_letter_topic': wildcard (+ or #) in a topic name" },
		{ "log_dest stdout\n",
		  "x:1: bad value 'stdout' for key 'log_dest': expected stderr, syslog or file PATH" },
		{ "log_dest file\n",
		  "x:1: bad value 'file' for key 'log_dest': expected stderr, syslog or file PATH" },
		{ "\nlog_type verbose\n", "x:2: bad value 'verbose' for key 'log_type': expected"
		  " error, warning, notice, information, debug or all" },
		{ "sync_policy sometimes\n",
		  "x:1: bad value 'sometimes' for key 'sync_policy': expected batch or none" },
		{ "listener 0\n", "x:1: bad value '0' for key 'listener': expected PORT [ADDRESS],"
		  " a port from 1 to 65535" },
	};
	/* What needs several keys is checked afterwards. */
	static const struct {
		const char *text, *want;
	} cases[] = {
		{ "restart_backoff_min 10\nrestart_backoff_max 5\n",
		  "x: restart_backoff_min is greater than restart_backoff_max" },
		{ "mqtt_port 4040\n", "x: mqtt_port 4040 is also a JSON-lines port" },
		{ "json_consumer_port 5000\njson_publisher_port 5000\n",
		  "x: json_consumer_port and json_publisher_port are both 5000" },
	};
	/* ... at the line of the element, for a list. */
	static const struct {
		const char *text, *want;
	} at_line[] = {
		{ "log_dest file a\nlog_dest stderr\n\nlog_dest file b\nlog_dest syslog\n",
		  "x:4: log_dest: only one file may be given, and x:1 gives one already" },
	};
	static const char good[] =
	    "mqtt_port 0\njson_consumer_port 0\njson_publisher_port 0\n"
	    "log_type all\nlog_type debug\nlog_dest stderr\n"
	    "log_dest file\t/var/log/b\nlistener 1883 ::1\nsync_policy none\n";
	struct settings s;
	struct conf_errors e = { 0 };

	(void)state;
	for (size_t i = 0; i < sizeof(bad_values) / sizeof(bad_values[0]); i++) {
		settings_init(&s);
		assert_int_equal(settings_parse_buf(&s, "x", bad_values[i].text,
		    strlen(bad_values[i].text), NULL, &e), 1);
		assert_string_equal(e.msg[0], bad_values[i].want);
		settings_free(&s);
		conf_errors_free(&e);
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		settings_init(&s);
		assert_int_equal(conf_parse_buf(settings_table, &s, "x",
		    cases[i].text, strlen(cases[i].text), &e), 0);
		assert_int_equal(settings_check(&s, "x", &e), 1);
		assert_string_equal(e.msg[0], cases[i].want);
		settings_free(&s);
		conf_errors_free(&e);
	}
	for (size_t i = 0; i < sizeof(at_line) / sizeof(at_line[0]); i++) {
		settings_init(&s);
		assert_int_equal(settings_parse_buf(&s, "x", at_line[i].text,
		    strlen(at_line[i].text), NULL, &e), 0);
		assert_int_equal(settings_check(&s, "x", &e), 1);
		assert_string_equal(e.msg[0], at_line[i].want);
		settings_free(&s);
		conf_errors_free(&e);
	}
	/* Ports of 0 may repeat; all / debug / file PATH are good. */
	settings_init(&s);
	assert_int_equal(settings_parse_buf(&s, "x", good, sizeof(good) - 1, NULL, &e), 0);
	assert_int_equal(settings_check(&s, "x", &e), 0);
	settings_free(&s);
	conf_errors_free(&e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_reloadable),
		cmocka_unit_test(test_sample),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_check),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
