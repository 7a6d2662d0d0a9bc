/* Unit tests of the MQTT 5.0 rules that need no connection (rules5.c):
 * topic alias tables both ways, the Session Expiry Interval at DISCONNECT
 * and under persistent_client_expiration, the keep-alive granted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mqtt/mqtt_props.h"
#include "mqtt/rules5.h"

/* Client -> broker: a topic with an alias sets it, an empty topic uses
 * it, an alias may be set again; 0 or over the maximum is 0x94, an alias
 * never set or neither topic nor alias is a Protocol Error. */
static void
test_alias_in(void **state)
{
	struct alias_table t;
	uint8_t rc = 0;

	(void)state;
	alias_init(&t, 3);
	assert_string_equal(alias_resolve(&t, "a/b", 0, &rc), "a/b");
	assert_null(alias_resolve(&t, "", 0, &rc));
	assert_int_equal(rc, MQTT_RC_PROTOCOL_ERROR);
	rc = 0;
	assert_null(alias_resolve(&t, "", 2, &rc));
	assert_int_equal(rc, MQTT_RC_PROTOCOL_ERROR);
	assert_string_equal(alias_resolve(&t, "x/1", 2, &rc), "x/1");
	assert_string_equal(alias_resolve(&t, "", 2, &rc), "x/1");
	assert_string_equal(alias_resolve(&t, "x/2", 2, &rc), "x/2");	/* replaced */
	assert_string_equal(alias_resolve(&t, "", 2, &rc), "x/2");
	assert_string_equal(alias_resolve(&t, "y", 3, &rc), "y");
	rc = 0;
	assert_null(alias_resolve(&t, "z", 4, &rc));
	assert_int_equal(rc, MQTT_RC_TOPIC_ALIAS_INVALID);
	alias_free(&t);

	alias_init(&t, 0);			/* max_topic_alias 0: none at all */
	rc = 0;
	assert_null(alias_resolve(&t, "a", 1, &rc));
	assert_int_equal(rc, MQTT_RC_TOPIC_ALIAS_INVALID);
	alias_free(&t);
}

/* Broker -> client: a new topic takes the next alias (sent with its
 * topic), a known one its alias; a full table gives none. */
static void
test_alias_out(void **state)
{
	struct alias_table t;
	bool fresh;

	(void)state;
	alias_init(&t, 2);
	assert_int_equal(alias_pick(&t, "a", &fresh), 1);
	assert_true(fresh);
	assert_int_equal(alias_pick(&t, "a", &fresh), 1);
	assert_false(fresh);
	assert_int_equal(alias_pick(&t, "b", &fresh), 2);
	assert_true(fresh);
	assert_int_equal(alias_pick(&t, "c", &fresh), 0);
	assert_false(fresh);
	assert_int_equal(alias_pick(&t, "b", &fresh), 2);
	assert_false(fresh);
	alias_free(&t);

	alias_init(&t, 2);			/* a peek gives nothing away */
	assert_int_equal(alias_peek(&t, "a", &fresh), 1);
	assert_true(fresh);
	assert_int_equal(alias_peek(&t, "b", &fresh), 1);
	assert_true(fresh);
	assert_int_equal(alias_pick(&t, "b", &fresh), 1);
	assert_int_equal(alias_peek(&t, "b", &fresh), 1);
	assert_false(fresh);
	alias_free(&t);

	alias_init(&t, 0);			/* the client takes none */
	assert_int_equal(alias_pick(&t, "a", &fresh), 0);
	alias_free(&t);
}

/* 3.14.2.2.2: the CONNECT's interval unless the DISCONNECT gives one;
 * 0 at CONNECT and non-zero at DISCONNECT is a Protocol Error. */
static void
test_expiry_at_disconnect(void **state)
{
	(void)state;
	assert_int_equal(expiry_at_disconnect(60, false, 0), 60);
	assert_int_equal(expiry_at_disconnect(60, true, 0), 0);
	assert_int_equal(expiry_at_disconnect(60, true, 3600), 3600);
	assert_int_equal(expiry_at_disconnect(0, false, 5), 0);
	assert_int_equal(expiry_at_disconnect(0, true, 0), 0);
	assert_int_equal(expiry_at_disconnect(0, true, 5), -1);
	assert_int_equal(expiry_at_disconnect(0, true, SESSION_EXPIRY_NEVER), -1);
	assert_int_equal(expiry_at_disconnect(SESSION_EXPIRY_NEVER, false, 0),
	    SESSION_EXPIRY_NEVER);
}

/* Seconds to ms; 0xFFFFFFFF is never; persistent_client_expiration caps
 * both and says so. */
static void
test_expiry_ms(void **state)
{
	bool capped;

	(void)state;
	assert_int_equal(expiry_ms(0, 0, &capped), 0);
	assert_false(capped);
	assert_int_equal(expiry_ms(10, 0, &capped), 10000);
	assert_false(capped);
	assert_true(expiry_ms(SESSION_EXPIRY_NEVER, 0, &capped) == EXPIRY_MS_NEVER);
	assert_false(capped);
	assert_int_equal(expiry_ms(SESSION_EXPIRY_NEVER, 5000, &capped), 5000);
	assert_true(capped);
	assert_int_equal(expiry_ms(10, 5000, &capped), 5000);
	assert_true(capped);
	assert_int_equal(expiry_ms(4, 5000, &capped), 4000);
	assert_false(capped);
	assert_int_equal(expiry_ms(4294967294u, 0, &capped), 4294967294000ull);
}

/* mosquitto's max_keepalive: a client asking for more, or for none, is
 * told max_keepalive; 0 lets anything through. */
static void
test_keepalive(void **state)
{
	bool told;

	(void)state;
	assert_int_equal(keepalive_granted(30, 60, &told), 30);
	assert_false(told);
	assert_int_equal(keepalive_granted(60, 60, &told), 60);
	assert_false(told);
	assert_int_equal(keepalive_granted(61, 60, &told), 60);
	assert_true(told);
	assert_int_equal(keepalive_granted(0, 60, &told), 60);
	assert_true(told);
	assert_int_equal(keepalive_granted(0, 0, &told), 0);
	assert_false(told);
	assert_int_equal(keepalive_granted(65535, 0, &told), 65535);
	assert_false(told);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alias_in),
		cmocka_unit_test(test_alias_out),
		cmocka_unit_test(test_expiry_at_disconnect),
		cmocka_unit_test(test_expiry_ms),
		cmocka_unit_test(test_keepalive),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
