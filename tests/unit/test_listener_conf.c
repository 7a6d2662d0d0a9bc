/* Listener blocks of broker.conf(5): their table, the keys of each block,
 * the shortcut ports they stand in for, and the errors of a bad block. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/auth.h"
#include "core/settings.h"

/* Parses text as a broker.conf, applies the blocks to the shortcut
 * ports (none given on a command line) and checks the whole; returns the
 * number of errors of both steps. */
static int
load(struct settings *s, struct conf_errors *e, const char *text)
{
	size_t nkeys = 0;
	char *given[64] = { NULL };
	int n;

	while (settings_table[nkeys].name != NULL)
		nkeys++;
	assert_true(nkeys <= sizeof(given) / sizeof(given[0]));
	memset(e, 0, sizeof(*e));
	settings_init(s);
	n = settings_parse_buf(s, "l.conf", text, strlen(text), given, e);
	settings_apply_blocks(s, given);
	conf_given_free(given, nkeys);
	n += settings_check(s, "l.conf", e);
	assert_int_equal((size_t)n, e->n);
	return n;
}

static void
done(struct settings *s, struct conf_errors *e)
{
	settings_free(s);
	assert_int_equal(s->listeners.n, 0);
	conf_errors_free(e);
}

/* Are this host's IPv6 sockets IPv6-only unless told (bindv6only)? */
static bool
v6only(void)
{
	FILE *f = fopen("/proc/sys/net/ipv6/bindv6only", "r");
	int c;

	if (f == NULL)
		return false;
	c = fgetc(f);
	fclose(f);
	return c == '1';
}

static const struct listener_conf *
block(const struct settings *s, size_t i)
{
	assert_true(i < s->listeners.n);
	return s->listeners.v[i];
}

/* Every key: a field of its own, one line of help, a default that parses;
 * what a reload may change. */
static void
test_table(void **state)
{
	static const char *const fixed[] = { "listener", "protocol" };
	const struct conf_key *k, *j;
	struct listener_conf one;
	struct conf_errors e = { 0 };
	size_t n = 0;

	(void)state;
	for (k = listener_table; k->name != NULL; k++, n++) {
		bool want_fixed = false;

		assert_non_null(k->help);
		assert_true(strlen(k->help) > 10);
		assert_true(k->offset < sizeof(struct listener_conf));
		assert_true(k->offset != offsetof(struct listener_conf, where));
		for (j = listener_table; j != k; j++)
			assert_true(j->offset != k->offset && strcmp(j->name, k->name) != 0);
		for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
			want_fixed |= strcmp(fixed[i], k->name) == 0;
		if (k->reloadable == want_fixed)
			fail_msg("%s: reloadable is %d", k->name, k->reloadable);
		memset(&one, 0, sizeof(one));
		if (k->def != NULL && conf_set(listener_table, &one, k->name, k->def, "default", &e))
			fail_msg("%s", e.msg[0]);
		conf_free(listener_table, &one);
	}
	assert_string_equal(listener_table[0].name, "listener");
	assert_int_equal(n, 19);
	assert_int_equal(e.n, 0);
}

/* Each block holds its own keys; global keys go on applying globally. */
static void
test_blocks(void **state)
{
	struct settings s;
	struct conf_errors e;

	(void)state;
	assert_int_equal(load(&s, &e,
	    "listener 8883\n"
	    "certfile /etc/broker/server.crt\n"
	    "keyfile /etc/broker/server.key\n"
	    "cafile /etc/broker/ca.crt\n"
	    "require_certificate true\n"
	    "use_identity_as_username true\n"
	    "retry_interval 2\n"			/* global, in a block */
	    "tls_version tlsv1.3\n"
	    "ciphers HIGH:!aNULL\n"
	    "ciphersuites TLS_AES_256_GCM_SHA384\n"
	    "password_file /etc/broker/passwd\n"
	    "acl_file /etc/broker/acl\n"
	    "allow_anonymous true\n"
	    "listener 4443 0.0.0.0\n"
	    "protocol json_consumer\n"
	    "certfile c\n"
	    "keyfile k\n"
	    "listener 14041\n"
	    "protocol json_publisher\n"
	    "per_listener_settings true\n"), 0);
	assert_int_equal(s.retry_interval, 2000);
	assert_true(s.per_listener_settings);
	assert_int_equal(s.listeners.n, 3);
	assert_string_equal(block(&s, 0)->listener, "8883");
	assert_string_equal(block(&s, 0)->where, "l.conf:1");
	assert_string_equal(block(&s, 0)->protocol, "mqtt");
	assert_string_equal(block(&s, 0)->certfile, "/etc/broker/server.crt");
	assert_string_equal(block(&s, 0)->keyfile, "/etc/broker/server.key");
	assert_string_equal(block(&s, 0)->cafile, "/etc/broker/ca.crt");
	assert_null(block(&s, 0)->capath);
	assert_true(block(&s, 0)->require_certificate);
	assert_true(block(&s, 0)->use_identity_as_username);
	assert_string_equal(block(&s, 0)->tls_version, "tlsv1.3");
	assert_string_equal(block(&s, 0)->ciphers, "HIGH:!aNULL");
	assert_string_equal(block(&s, 0)->ciphersuites, "TLS_AES_256_GCM_SHA384");
	assert_string_equal(block(&s, 0)->password_file, "/etc/broker/passwd");
	assert_string_equal(block(&s, 0)->acl_file, "/etc/broker/acl");
	assert_string_equal(block(&s, 0)->allow_anonymous, "true");
	assert_string_equal(block(&s, 1)->listener, "4443 0.0.0.0");
	assert_string_equal(block(&s, 1)->where, "l.conf:14");
	assert_string_equal(block(&s, 1)->protocol, "json_consumer");
	assert_false(block(&s, 1)->require_certificate);
	assert_null(block(&s, 1)->allow_anonymous);
	assert_null(block(&s, 1)->password_file);
	assert_null(block(&s, 2)->certfile);
	assert_string_equal(block(&s, 2)->protocol, "json_publisher");
	/* The default is a value (broker -T shows it), a plain block's too. */
	assert_string_equal(block(&s, 1)->tls_version, "tlsv1.2");
	assert_string_equal(block(&s, 2)->tls_version, "tlsv1.2");
	assert_string_equal(s.use_username_as_clientid, "false");
	done(&s, &e);
	/* ... so that a plain block may say it, as -T prints it. */
	assert_int_equal(load(&s, &e, "listener 8883\ntls_version tlsv1.2\n"), 0);
	done(&s, &e);
}

/* A shortcut port gives way to blocks of its protocol unless given. */
static void
test_shortcuts(void **state)
{
	struct settings s;
	struct conf_errors e;

	(void)state;
	assert_int_equal(load(&s, &e, ""), 0);
	assert_int_equal(s.mqtt_port, 1883);
	assert_int_equal(s.json_consumer_port, 4040);
	assert_int_equal(s.json_publisher_port, 4041);
	done(&s, &e);

	assert_int_equal(load(&s, &e, "listener 8883\n"), 0);
	assert_int_equal(s.mqtt_port, 0);
	assert_int_equal(s.json_consumer_port, 4040);
	assert_int_equal(s.json_publisher_port, 4041);
	done(&s, &e);

	assert_int_equal(load(&s, &e, "listener 5000\nprotocol json_consumer\n"
	    "listener 5001\nprotocol json_publisher\nmqtt_port 1884\n"), 0);
	assert_int_equal(s.mqtt_port, 1884);
	assert_int_equal(s.json_consumer_port, 0);
	assert_int_equal(s.json_publisher_port, 0);
	done(&s, &e);

	/* Given, even at its default value, it stays. */
	assert_int_equal(load(&s, &e, "mqtt_port 1883\nlistener 8883\n"), 0);
	assert_int_equal(s.mqtt_port, 1883);
	done(&s, &e);

	/* MQTT over WebSockets is MQTT: mqtt_port gives way to it too,
	 * unless given; the JSON-lines ports stay. */
	assert_int_equal(load(&s, &e, "listener 9001\nprotocol websockets\n"), 0);
	assert_int_equal(s.mqtt_port, 0);
	assert_int_equal(s.json_consumer_port, 4040);
	done(&s, &e);
	assert_int_equal(load(&s, &e, "mqtt_port 1883\nlistener 9001\nprotocol websockets\n"),
	    0);
	assert_int_equal(s.mqtt_port, 1883);
	done(&s, &e);
}

/* A WebSocket listener: plain, or with the TLS keys of any MQTT one. */
static void
test_websockets(void **state)
{
	struct settings s;
	struct conf_errors e;

	(void)state;
	assert_int_equal(load(&s, &e, "websockets_headers_size 8k\n"
	    "listener 9001\nprotocol websockets\n"
	    "listener 9443 0.0.0.0\nprotocol websockets\ncertfile c\nkeyfile k\ncafile ca\n"
	    "require_certificate true\nuse_identity_as_username true\n"
	    "websockets_log_level 255\n"), 0);
	assert_int_equal(s.websockets_headers_size, 8192);
	assert_string_equal(block(&s, 0)->protocol, "websockets");
	assert_false(listener_conf_tls(block(&s, 0)));
	assert_string_equal(block(&s, 1)->protocol, "websockets");
	assert_true(listener_conf_tls(block(&s, 1)));
	assert_true(block(&s, 1)->use_identity_as_username);
	done(&s, &e);
	/* mosquitto's 0 is the default; more than 65535 is not. */
	assert_int_equal(load(&s, &e, "websockets_headers_size 0\n"), 0);
	assert_int_equal(s.websockets_headers_size, 0);
	done(&s, &e);
	assert_int_equal(load(&s, &e, "websockets_headers_size 64k\n"), 1);
	done(&s, &e);
	/* http_dir serves files: not here. */
	assert_int_equal(load(&s, &e, "listener 9001\nprotocol websockets\nhttp_dir /var/www\n"),
	    1);
	assert_string_equal(e.msg[0], "l.conf:3: 'http_dir' is mosquitto's: files are not served"
	    " over HTTP here (a listener with protocol websockets takes MQTT over WebSockets on"
	    " any path): remove the line");
	done(&s, &e);
}

/* Without per_listener_settings, a block's password_file, acl_file and
 * allow_anonymous are the global ones (as in mosquitto), false as well as
 * true; blocks that say the same in other words agree. */
static void
test_block_auth_is_global(void **state)
{
	struct settings s;
	struct conf_errors e;

	(void)state;
	assert_int_equal(load(&s, &e, "listener 1884\nallow_anonymous false\n"
	    "password_file p\n"), 0);
	assert_string_equal(s.allow_anonymous, "false");
	assert_string_equal(s.password_file, "p");
	done(&s, &e);
	assert_int_equal(load(&s, &e, "listener 1884\nallow_anonymous yes\n"
	    "listener 1885\nallow_anonymous true\n"), 0);
	assert_int_equal(auth_parse_bool(s.allow_anonymous), 1);
	done(&s, &e);
	assert_int_equal(load(&s, &e, "listener 1884\n"), 0);
	assert_null(s.allow_anonymous);		/* automatic: loopback only */
	done(&s, &e);
	/* The identity of a pre-shared key names the user with no certificate. */
	assert_int_equal(load(&s, &e, "listener 8883\npsk_hint h\npsk_file k\n"
	    "use_identity_as_username true\n"), 0);
	assert_string_equal(s.psk_file, "k");
	done(&s, &e);
	/* Each block its own with per_listener_settings: no global one. */
	assert_int_equal(load(&s, &e, "per_listener_settings true\nlistener 1884\n"
	    "allow_anonymous false\nlistener 1885\nallow_anonymous true\npsk_hint h\n"
	    "psk_file k\n"), 0);
	assert_null(s.allow_anonymous);
	assert_null(s.psk_file);
	done(&s, &e);
}

/* What is wrong with a block is reported at its listener line. */
static void
test_bad_blocks(void **state)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
		{ "listener 8883\nprotocol http\n", "l.conf:2: bad value 'http' for key"
		  " 'protocol': expected mqtt, websockets, json_consumer or json_publisher" },
		{ "listener 4443\nprotocol json_consumer\ncertfile c\nkeyfile k\ncafile ca\n"
		  "require_certificate true\nuse_identity_as_username true\n",
		  "l.conf:1: listener 4443: use_identity_as_username names an MQTT user, and"
		  " protocol json_consumer has none" },
		{ "certfile a.crt\n", "l.conf:1: key 'certfile' belongs in a listener block:"
		  " put it after a 'listener' line" },
		{ "listener 0\n", "l.conf:1: bad value '0' for key 'listener': expected"
		  " PORT [ADDRESS], a port from 1 to 65535" },
		{ "listener 1883x\n", "l.conf:1: bad value '1883x' for key 'listener':"
		  " expected PORT [ADDRESS], a port from 1 to 65535" },
		{ "listener 1883 a b\n", "l.conf:1: bad value '1883 a b' for key 'listener':"
		  " expected PORT [ADDRESS], a port from 1 to 65535" },
		{ "listener 8883\ntls_version tlsv1.1\n", "l.conf:2: bad value 'tlsv1.1' for"
		  " key 'tls_version': expected tlsv1.2 or tlsv1.3" },
		{ "\nlistener 8883\ncertfile a.crt\n",
		  "l.conf:2: listener 8883: certfile without keyfile" },
		{ "listener 8883\nkeyfile a.key\n",
		  "l.conf:1: listener 8883: keyfile without certfile" },
		{ "listener 8883\ncafile ca.crt\n", "l.conf:1: listener 8883: cafile needs"
		  " certfile and keyfile, or psk_hint (a TLS listener)" },
		{ "listener 8883\nrequire_certificate true\n", "l.conf:1: listener 8883:"
		  " require_certificate needs certfile and keyfile, or psk_hint (a TLS listener)" },
		{ "listener 8883\ntls_version tlsv1.3\n",
		  "l.conf:1: listener 8883: tls_version needs certfile and keyfile, or psk_hint"
		  " (a TLS listener)" },
		{ "listener 8883\nciphers HIGH\n",
		  "l.conf:1: listener 8883: ciphers needs certfile and keyfile, or psk_hint (a TLS"
		  " listener)" },
		{ "listener 8883\ncertfile c\nkeyfile k\nrequire_certificate yes\n",
		  "l.conf:1: listener 8883: require_certificate needs cafile or capath"
		  " (the CAs of client certificates)" },
		{ "listener 8883\ncrlfile r.crl\n", "l.conf:1: listener 8883: crlfile needs"
		  " certfile and keyfile, or psk_hint (a TLS listener)" },
		{ "listener 8883\ncertfile c\nkeyfile k\ncafile ca\ncrlfile r.crl\n",
		  "l.conf:1: listener 8883: crlfile needs require_certificate true (no"
		  " certificate is asked for without it)" },
		{ "listener 8883\ncertfile c\nkeyfile k\nuse_identity_as_username on\n",
		  "l.conf:1: listener 8883: use_identity_as_username needs require_certificate"
		  " true (or psk_hint)" },
		{ "listener 8883\ncertfile c\nkeyfile k\nuse_subject_as_username on\n",
		  "l.conf:1: listener 8883: use_subject_as_username needs require_certificate"
		  " true" },
		{ "listener 8883\ncertfile c\nkeyfile k\ncafile ca\nrequire_certificate true\n"
		  "use_subject_as_username on\nuse_identity_as_username on\n",
		  "l.conf:1: listener 8883: use_identity_as_username and use_subject_as_username"
		  " both name the user: give one" },
		{ "listener 8883\nprotocol json_consumer\ncertfile c\nkeyfile k\ncafile ca\n"
		  "require_certificate true\nuse_identity_as_username on\n",
		  "l.conf:1: listener 8883: use_identity_as_username names an MQTT user, and"
		  " protocol json_consumer has none" },
		/* Pre-shared keys: a TLS listener without a certificate, with a
		 * key file that some listener uses. */
		{ "listener 8883\npsk_hint h\npsk_file k\ncafile ca\n", "l.conf:1: listener"
		  " 8883: cafile needs certfile and keyfile: without a certificate of its own"
		  " the listener asks for none" },
		{ "listener 8883\npsk_hint h\npsk_file k\nrequire_certificate on\n",
		  "l.conf:1: listener 8883: require_certificate needs certfile and"
		  " keyfile: without a certificate of its own the listener asks for none" },
		{ "listener 8883\npsk_hint h\n", "l.conf:1: listener 8883: psk_hint needs"
		  " psk_file: without keys no client could connect" },
		{ "per_listener_settings true\nlistener 8883\npsk_hint h\n",
		  "l.conf:2: listener 8883: psk_hint needs psk_file in its block: without keys"
		  " no client could connect" },
		{ "per_listener_settings true\npsk_file k\nlistener 8883\npsk_hint h\n"
		  "psk_file k\n", "l.conf: psk_file k: with per_listener_settings true, each"
		  " listener block gives its own" },
		{ "per_listener_settings true\nlistener 8883\npsk_file k\n", "l.conf:2:"
		  " listener 8883: psk_file needs psk_hint in its block (a listener with"
		  " pre-shared keys)" },
		{ "psk_file k\nlistener 8883\ncertfile c\nkeyfile k\n", "l.conf: psk_file k:"
		  " no listener has psk_hint to use it" },
		{ "psk_file k\nlistener 8883\npsk_hint h\npsk_file k2\n", "l.conf:2: listener"
		  " 8883: psk_file applies to every listener while per_listener_settings is"
		  " false, and another psk_file is given: keep one, or set"
		  " per_listener_settings true" },
		{ "listener 4040\nprotocol json_consumer\njson_consumer_port 4040\n",
		  "l.conf:1: listener 4040: port 4040 on 127.0.0.1 is also json_consumer_port" },
		{ "listener 8883\nallow_anonymous maybe\n", "l.conf:2: bad value 'maybe' for"
		  " key 'allow_anonymous': expected true, false, yes, no, on, off, 1 or 0" },
		/* Without per_listener_settings, a block's allow_anonymous is the
		 * global one: false is one too, not the same as none. */
		{ "listener 1884\nallow_anonymous false\nlistener 1885\nallow_anonymous true\n",
		  "l.conf:1: listener 1884: allow_anonymous applies to every listener while"
		  " per_listener_settings is false, and another allow_anonymous is given: keep"
		  " one, or set per_listener_settings true" },
		{ "allow_anonymous yes\nlistener 1884\nallow_anonymous off\n",
		  "l.conf:2: listener 1884: allow_anonymous applies to every listener while"
		  " per_listener_settings is false, and another allow_anonymous is given: keep"
		  " one, or set per_listener_settings true" },
		{ "listener 8883\nlistener 9999\nlistener 8883 127.0.0.1\n",
		  "l.conf:3: listener 8883 127.0.0.1: port 8883 on 127.0.0.1 is also the"
		  " listener at l.conf:1" },
		/* A wildcard address takes the port on every address of its
		 * family: neither could bind after the other. */
		{ "listener 4040 0.0.0.0\n",
		  "l.conf:1: listener 4040 0.0.0.0: port 4040 on 0.0.0.0 is also"
		  " json_consumer_port on 127.0.0.1" },
		{ "bind_address 0.0.0.0\nlistener 4041 127.0.0.1\n",
		  "l.conf:2: listener 4041 127.0.0.1: port 4041 on 127.0.0.1 is also"
		  " json_publisher_port on 0.0.0.0" },
		{ "listener 8883 0.0.0.0\nlistener 8883 127.0.0.1\n",
		  "l.conf:2: listener 8883 127.0.0.1: port 8883 on 127.0.0.1 is also the"
		  " listener at l.conf:1 on 0.0.0.0" },
		{ "listener 8883 ::1\nlistener 8883 ::\n",
		  "l.conf:2: listener 8883 ::: port 8883 on :: is also the listener at l.conf:1"
		  " on ::1" },
		{ "listener 8883 ::ffff:0:0\nlistener 8883 0:0::0\n",
		  "l.conf:2: listener 8883 0:0::0: port 8883 on 0:0::0 is also the listener at"
		  " l.conf:1 on ::ffff:0:0" },
	};
	struct settings s;
	struct conf_errors e;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(load(&s, &e, cases[i].text), 1);
		assert_string_equal(e.msg[0], cases[i].want);
		done(&s, &e);
	}
	/* Other addresses of a family, names as written, are no clash. */
	assert_int_equal(load(&s, &e, "listener 8883 127.0.0.1\nlistener 8883 127.0.0.2\n"
	    "listener 8883 ::1\nlistener 8883 fe80::1\nlistener 8883 localhost\n"), 0);
	done(&s, &e);
	/* :: with IPv4, as the host has it (listen.c leaves IPV6_V6ONLY alone). */
	assert_int_equal(load(&s, &e, "listener 8883 0.0.0.0\nlistener 8883 ::\n"),
	    v6only() ? 0 : 1);
	if (!v6only())
		assert_string_equal(e.msg[0], "l.conf:2: listener 8883 ::: port 8883 on :: is"
		    " also the listener at l.conf:1 on 0.0.0.0");
	done(&s, &e);
	/* Every error at once, and the same port on other addresses is fine. */
	assert_int_equal(load(&s, &e, "listener 8883\nprotocol x\ncertfile c\n"
	    "listener 8883 ::1\nkeyfile k\ncapath p\n"), 3);
	assert_string_equal(e.msg[0], "l.conf:2: bad value 'x' for key 'protocol':"
	    " expected mqtt, websockets, json_consumer or json_publisher");
	assert_string_equal(e.msg[1], "l.conf:1: listener 8883: certfile without keyfile");
	assert_string_equal(e.msg[2], "l.conf:4: listener 8883 ::1: keyfile without certfile");
	done(&s, &e);
}

/* A reload can change a block's TLS keys, not where it listens nor what
 * it speaks, nor whether it is TLS. */
static void
test_fixed_differs(void **state)
{
	struct settings a, b;
	struct conf_errors e;
	static const char base[] = "listener 8883\ncertfile c\nkeyfile k\n";
	static const char *const same[] = {
		"listener 8883\ncertfile c2\nkeyfile k2\nciphers HIGH\n",
		"listener 8883\ncertfile c\nkeyfile k\npsk_hint h\npsk_file f\n",
		"listener 8883\npsk_hint h\npsk_file f\n",
		"listener 8883\nprotocol mqtt\ncertfile c\nkeyfile k\ntls_version tlsv1.3\n",
	};
	static const char *const other[] = {
		"listener 8884\ncertfile c\nkeyfile k\n",
		"listener 8883 ::1\ncertfile c\nkeyfile k\n",
		"listener 8883\nprotocol json_consumer\ncertfile c\nkeyfile k\n",
		"listener 8883\n",
	};

	(void)state;
	assert_int_equal(load(&a, &e, base), 0);
	conf_errors_free(&e);
	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
		assert_int_equal(load(&b, &e, same[i]), 0);
		assert_false(listener_conf_fixed_differs(block(&a, 0), block(&b, 0)));
		done(&b, &e);
	}
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
		assert_int_equal(load(&b, &e, other[i]), 0);
		assert_true(listener_conf_fixed_differs(block(&a, 0), block(&b, 0)));
		done(&b, &e);
	}
	done(&a, &e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_blocks),
		cmocka_unit_test(test_shortcuts),
		cmocka_unit_test(test_websockets),
		cmocka_unit_test(test_block_auth_is_global),
		cmocka_unit_test(test_bad_blocks),
		cmocka_unit_test(test_fixed_differs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
