/* Unit tests of MQTT 5.0 reason codes: every name, and which packet types
 * may carry each (the tables of 3.2.2.2, 3.4.2.1 ... 3.15.2.1, and 2.4 for
 * DISCONNECT's 0x8C, which table 2-6 lists and 3.14.2.1 leaves out: the
 * codec accepts it). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "mqtt5_test.h"

static const struct {
	uint8_t		 code;
	const char	*name;
} names[] = {
	{ 0x00, "Success" }, { 0x01, "Granted QoS 1" },
	{ 0x02, "Granted QoS 2" }, { 0x04, "Disconnect with Will Message" },
	{ 0x10, "No matching subscribers" }, { 0x11, "No subscription existed" },
	{ 0x18, "Continue authentication" }, { 0x19, "Re-authenticate" },
	{ 0x80, "Unspecified error" }, { 0x81, "Malformed Packet" },
	{ 0x82, "Protocol Error" }, { 0x83, "Implementation specific error" },
	{ 0x84, "Unsupported Protocol Version" },
	{ 0x85, "Client Identifier not valid" },
	{ 0x86, "Bad User Name or Password" }, { 0x87, "Not authorized" },
	{ 0x88, "Server unavailable" }, { 0x89, "Server busy" },
	{ 0x8a, "Banned" }, { 0x8b, "Server shutting down" },
	{ 0x8c, "Bad authentication method" }, { 0x8d, "Keep Alive timeout" },
	{ 0x8e, "Session taken over" }, { 0x8f, "Topic Filter invalid" },
	{ 0x90, "Topic Name invalid" }, { 0x91, "Packet Identifier in use" },
	{ 0x92, "Packet Identifier not found" },
	{ 0x93, "Receive Maximum exceeded" }, { 0x94, "Topic Alias invalid" },
	{ 0x95, "Packet too large" }, { 0x96, "Message rate too high" },
	{ 0x97, "Quota exceeded" }, { 0x98, "Administrative action" },
	{ 0x99, "Payload format invalid" }, { 0x9a, "Retain not supported" },
	{ 0x9b, "QoS not supported" }, { 0x9c, "Use another server" },
	{ 0x9d, "Server moved" }, { 0x9e, "Shared Subscriptions not supported" },
	{ 0x9f, "Connection rate exceeded" }, { 0xa0, "Maximum connect time" },
	{ 0xa1, "Subscription Identifiers not supported" },
	{ 0xa2, "Wildcard Subscriptions not supported" },
};
#define NNAMES	(sizeof(names) / sizeof(names[0]))

static void
test_names(void **state)
{
	size_t i;
	int c;

	(void)state;
	for (c = 0; c < 256; c++) {
		for (i = 0; i < NNAMES && names[i].code != c; i++)
			continue;
		assert_string_equal(mqtt_reason_name((uint8_t)c),
		    i < NNAMES ? names[i].name : "reserved");
	}
	assert_string_equal(mqtt_reason_name(MQTT_RC_NORMAL_DISCONNECTION),
	    "Success");
}

/* The reason codes of each packet type; the list ends with 0xff, which
 * is none. */
static const struct {
	uint8_t		 type;
	uint8_t		 codes[32];
} allowed[] = {
	{ MQTT_CONNACK, { 0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86,
	    0x87, 0x88, 0x89, 0x8a, 0x8c, 0x90, 0x95, 0x97, 0x99, 0x9a, 0x9b,
	    0x9c, 0x9d, 0x9f, 0xff } },
	{ MQTT_PUBACK, { 0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97,
	    0x99, 0xff } },
	{ MQTT_PUBREC, { 0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97,
	    0x99, 0xff } },
	{ MQTT_PUBREL, { 0x00, 0x92, 0xff } },
	{ MQTT_PUBCOMP, { 0x00, 0x92, 0xff } },
	{ MQTT_SUBACK, { 0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8f, 0x91,
	    0x97, 0x9e, 0xa1, 0xa2, 0xff } },
	{ MQTT_UNSUBACK, { 0x00, 0x11, 0x80, 0x83, 0x87, 0x8f, 0x91, 0xff } },
	{ MQTT_DISCONNECT, { 0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89,
	    0x8b, 0x8c, 0x8d, 0x8e, 0x8f, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97,
	    0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f, 0xa0, 0xa1, 0xa2,
	    0xff } },
	{ MQTT_AUTH, { 0x00, 0x18, 0x19, 0xff } },
};
#define NALLOWED	(sizeof(allowed) / sizeof(allowed[0]))

static bool
in_list(const uint8_t *codes, uint8_t code)
{
	for (; *codes != 0xff; codes++)
		if (*codes == code)
			return true;
	return false;
}

static void
test_allowed(void **state)
{
	size_t i, counted = 0;
	int type, c;

	(void)state;
	for (type = 0; type <= 16; type++) {
		for (i = 0; i < NALLOWED && allowed[i].type != type; i++)
			continue;
		for (c = 0; c < 256; c++) {
			bool want = i < NALLOWED &&
			    in_list(allowed[i].codes, (uint8_t)c);

			assert_int_equal(mqtt_reason_allowed((uint8_t)type,
			    (uint8_t)c), want);
			counted += want;
		}
	}
	assert_int_equal(counted, 22 + 9 + 9 + 2 + 2 + 12 + 7 + 30 + 3);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_allowed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
