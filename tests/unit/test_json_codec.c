/* Unit tests of the JSON-lines protocol codec (broker/json/codec.c, login_line.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "json/json_codec.h"

/* Parses a NUL-terminated line; checks the result. */
static enum jl_cmd
parse(const char *line, struct jl_request *r)
{
	return jl_parse(line, strlen(line), r);
}

/* A known command with bad fields: detail is its type and the reason. */
static void
expect_bad(const char *line, const char *detail)
{
	struct jl_request r;
	char got[256];

	assert_int_equal(parse(line, &r), JL_BAD_REQUEST);
	assert_non_null(r.type);
	assert_non_null(r.error);
	snprintf(got, sizeof(got), "%s %s", r.type, r.error);
	assert_string_equal(got, detail);
	assert_null(r.topic);
	assert_null(r.payload);
	jl_request_free(&r);
}

static void
expect_cmd(const char *line, size_t len, enum jl_cmd cmd)
{
	struct jl_request r;

	assert_int_equal(jl_parse(line, len, &r), cmd);
	assert_int_equal(r.cmd, cmd);
	assert_non_null(r.error);
	assert_null(r.type);
	assert_null(r.topic);
	assert_null(r.payload);
	jl_request_free(&r);
}

/* The stored payload of {"type":"PUB","topic":"t","msg":<msg>}. */
static void
expect_payload(const char *msg, const void *want, size_t len, bool json)
{
	struct jl_request r;
	char line[512];

	snprintf(line, sizeof(line), "{\"type\":\"PUB\",\"topic\":\"t\",\"msg\":%s}",
	    msg);
	assert_int_equal(parse(line, &r), JL_PUB);
	assert_null(r.error);
	assert_int_equal(r.payload_len, len);
	assert_memory_equal(r.payload, want, len);
	assert_int_equal(r.payload[len], '\0');
	assert_int_equal(r.payload_json, json);
	jl_request_free(&r);
}

#define EXPECT_JSON(msg, text) expect_payload(msg, text, strlen(text), true)

/* Lines that are INVALID JSON, for the reason given. */
static void
expect_invalid(const char *const *lines, size_t n, const char *error)
{
	struct jl_request r;

	for (size_t i = 0; i < n; i++) {
		expect_cmd(lines[i], strlen(lines[i]), JL_INVALID_JSON);
		parse(lines[i], &r);
		assert_string_equal(r.error, error);
		jl_request_free(&r);
	}
}

static void
expect_wbuf(struct wbuf *w, const char *want)
{
	assert_int_equal(w->len, strlen(want));
	assert_memory_equal(w->data, want, w->len);
	wbuf_reset(w);
}

static void
test_pub(void **state)
{
	struct jl_request r;

	(void)state;
	assert_int_equal(parse("{\"type\":\"PUB\",\"topic\":\"a/b\","
	    "\"msg\":\"hello\"}", &r), JL_PUB);
	assert_int_equal(r.cmd, JL_PUB);
	assert_null(r.error);
	assert_string_equal(r.topic, "a/b");
	assert_int_equal(r.payload_len, 5);
	assert_memory_equal(r.payload, "hello", 5);
	assert_false(r.payload_json);
	jl_request_free(&r);
	assert_null(r.topic);
	assert_null(r.payload);
	jl_request_free(&r);
}

static void
test_key_order(void **state)
{
	struct jl_request r;

	(void)state;
	assert_int_equal(parse(" { \"msg\" : \"x\" ,\"topic\":\"t\", "
	    "\"type\":\"PUB\" } ", &r), JL_PUB);
	assert_string_equal(r.topic, "t");
	assert_string_equal((char *)r.payload, "x");
	jl_request_free(&r);
	assert_int_equal(parse("{\"msgId\":3,\"type\":\"PUBREL\"}", &r),
	    JL_PUBREL);
	assert_int_equal(r.msg_id, 3);
	jl_request_free(&r);
	assert_int_equal(parse("{\"topic\":\"x/y\",\"msgId\":9,"
	    "\"type\":\"PUBCOMP\"}", &r), JL_PUBCOMP);
	assert_int_equal(r.msg_id, 9);
	assert_string_equal(r.topic, "x/y");
	jl_request_free(&r);
}

static void
test_extra_and_repeated_keys(void **state)
{
	struct jl_request r;

	(void)state;
	assert_int_equal(parse("{\"type\":\"SUB\",\"topic\":\"a\",\"qos\":2,"
	    "\"x\":{\"y\":[1]}}", &r), JL_SUB);
	assert_string_equal(r.topic, "a");
	jl_request_free(&r);
	assert_int_equal(parse("{\"type\":\"SUB\",\"topic\":\"a\","
	    "\"topic\":\"b\"}", &r), JL_SUB);
	assert_string_equal(r.topic, "b");
	jl_request_free(&r);
}

static void
test_payload_json(void **state)
{
	(void)state;
	EXPECT_JSON("{ \"b\" : 1, \"a\" : [ true, null, \"x\", false ] }",
	    "{\"b\":1,\"a\":[true,null,\"x\",false]}");
	EXPECT_JSON("{\"z\":1,\"a\":2,\"m\":{\"y\":[],\"b\":{}}}",
	    "{\"z\":1,\"a\":2,\"m\":{\"y\":[],\"b\":{}}}");
	EXPECT_JSON("[1,\"a\\\"b\\\\\\n\\u0001/\"]",
	    "[1,\"a\\\"b\\\\\\n\\u0001/\"]");
	EXPECT_JSON("{\"k\":\"\\u00e4\\u0000\"}", "{\"k\":\"\xc3\xa4\\u0000\"}");
	EXPECT_JSON("null", "null");
	EXPECT_JSON("true", "true");
	EXPECT_JSON("[]", "[]");
	EXPECT_JSON("-0", "0");
	EXPECT_JSON("42", "42");
	EXPECT_JSON("-9223372036854775808", "-9223372036854775808");
}

static void
test_payload_reals(void **state)
{
	(void)state;
	EXPECT_JSON("0.1", "0.1");
	EXPECT_JSON("21.3", "21.3");
	EXPECT_JSON("-2.5", "-2.5");
	EXPECT_JSON("123.456", "123.456");
	EXPECT_JSON("0.30000000000000004", "0.30000000000000004");
	EXPECT_JSON("1E2", "100.0");
	EXPECT_JSON("3.0", "3.0");
	EXPECT_JSON("-0.0", "-0.0");
	EXPECT_JSON("0.000001", "0.000001");
	EXPECT_JSON("1e-7", "1e-7");
	EXPECT_JSON("1.5e-7", "1.5e-7");
	EXPECT_JSON("1e20", "100000000000000000000.0");
	EXPECT_JSON("1e21", "1e21");
	EXPECT_JSON("1.7976931348623157e308", "1.7976931348623157e308");
	EXPECT_JSON("5e-324", "5e-324");
	EXPECT_JSON("{\"t\":[0.5,1e300]}", "{\"t\":[0.5,1e300]}");
}

/* The old broker passed any integer on digit for digit; jansson holds 64
 * bits.  Beyond them, a PUB's msg keeps the integer as it was written;
 * anywhere else it is refused as before. */
static void
test_payload_bignums(void **state)
{
	struct jl_request r;

	(void)state;
	EXPECT_JSON("9223372036854775807", "9223372036854775807");
	EXPECT_JSON("-9223372036854775808", "-9223372036854775808");
	EXPECT_JSON("9223372036854775808", "9223372036854775808");
	EXPECT_JSON("-9223372036854775809", "-9223372036854775809");
	EXPECT_JSON("123456789012345678901234567890", "123456789012345678901234567890");
	EXPECT_JSON("{\"id\": 18446744073709551616, \"s\": \"x 99999999999999999999\","
	    " \"a\": [1, -99999999999999999999, 2.5, \"2\"]}",
	    "{\"id\":18446744073709551616,\"s\":\"x 99999999999999999999\","
	    "\"a\":[1,-99999999999999999999,2.5,\"2\"]}");
	/* Keys and strings with digits or escaped quotes are left alone. */
	EXPECT_JSON("{\"99999999999999999999\":\"\\\"99999999999999999999\","
	    "\"k\":99999999999999999999}",
	    "{\"99999999999999999999\":\"\\\"99999999999999999999\","
	    "\"k\":99999999999999999999}");
	/* Several, in order, and beside a large real. */
	EXPECT_JSON("[99999999999999999991,99999999999999999992,1e300,99999999999999999993]",
	    "[99999999999999999991,99999999999999999992,1e300,99999999999999999993]");
	EXPECT_JSON("[99999999999999999999,99999999999999999999.5]",
	    "[99999999999999999999,100000000000000000000.0]");
	/* Once masking: the boundaries on either side, and a dozen markers. */
	EXPECT_JSON("[99999999999999999999,9223372036854775807,9223372036854775808,"
	    "-9223372036854775808,-9223372036854775809]",
	    "[99999999999999999999,9223372036854775807,9223372036854775808,"
	    "-9223372036854775808,-9223372036854775809]");
	EXPECT_JSON("[10000000000000000000,10000000000000000001,10000000000000000002,"
	    "10000000000000000003,10000000000000000004,10000000000000000005,"
	    "10000000000000000006,10000000000000000007,10000000000000000008,"
	    "10000000000000000009,10000000000000000010,10000000000000000011]",
	    "[10000000000000000000,10000000000000000001,10000000000000000002,"
	    "10000000000000000003,10000000000000000004,10000000000000000005,"
	    "10000000000000000006,10000000000000000007,10000000000000000008,"
	    "10000000000000000009,10000000000000000010,10000000000000000011]");
	/* A string ending in an escaped backslash, and the text \u0000 that is
	 * no escape of U+0000. */
	EXPECT_JSON("[\"a\\\\\",99999999999999999999]", "[\"a\\\\\",99999999999999999999]");
	EXPECT_JSON("[\"\\\\u0000\",99999999999999999999]", "[\"\\\\u0000\",99999999999999999999]");
	/* For a PUB's topic: a topic that is not a string. */
	expect_bad("{\"type\":\"PUB\",\"topic\":99999999999999999999,\"msg\":1}",
	    "PUB with a topic that is not a string");
	/* In another key of a PUB: taken, as other extra keys are. */
	assert_int_equal(parse("{\"type\":\"PUB\",\"topic\":\"t\",\"x\":99999999999999999999,"
	    "\"msg\":1}", &r), JL_PUB);
	assert_int_equal(r.payload_len, 1);
	assert_memory_equal(r.payload, "1", 1);
	jl_request_free(&r);
	/* Refused: an id or a SUB's key beyond 64 bits, a real beyond a double,
	 * and a line where a string of the client's could pass for a marker. */
	static const char *refused[] = {
		"{\"type\":\"PUBREL\",\"msgId\":99999999999999999999}",
		"{\"type\":\"PUBCOMP\",\"msgId\":99999999999999999999,\"topic\":\"t\"}",
		"{\"type\":\"SUB\",\"topic\":\"t\",\"x\":99999999999999999999}",
		"{\"type\":\"FOO\",\"x\":99999999999999999999}",
		"[99999999999999999999]",
		"{\"type\":\"PUB\",\"topic\":\"t\",\"msg\":[1e400,99999999999999999999]}",
		"{\"type\":\"PUB\",\"topic\":\"t\",\"msg\":[\"\\u0000\",99999999999999999999]}",
		"{\"type\":\"PUB\",\"topic\":\"t\",\"msg\":[\"\\u00000\",99999999999999999999]}",
	};
	expect_invalid(refused, sizeof(refused) / sizeof(refused[0]), "number out of range");
	/* Not JSON for another reason: said so. */
	static const char *bad[] = {
		"{\"type\":\"PUB\",\"topic\":\"t\",\"msg\":99999999999999999999",
		"{\"type\":\"PUB\",\"topic\":\"t\",\"msg\":099999999999999999999}",
		"{\"type\":\"PUB\",\"topic\":\"t\",\"msg\":[99999999999999999999,099999999999999999999]}",
		"{\"type\":\"PUB\",\"topic\":\"t\",\"msg\":[99999999999999999999,--1]}",
	};
	expect_invalid(bad, sizeof(bad) / sizeof(bad[0]), "not valid JSON");
	/* A marker in a big integer's place must not make JSON of what was
	 * not: the integer glued to more of a number, or where no value may
	 * be. */
	static const char *garbled[] = {
		"{\"type\":\"PUB\",\"topic\":\"t\",\"msg\":1-99999999999999999999}",
		"{\"type\":\"PUB\",\"topic\":\"t\",\"msg\":99999999999999999999-1}",
		"{\"type\":\"PUB\",\"topic\":\"t\",\"msg\":99999999999999999999+1}",
		"{\"type\":\"PUB\",\"topic\":\"t\",\"msg\":--99999999999999999999}",
		"{\"type\":\"PUB\",\"topic\":\"t\",\"msg\":{99999999999999999999:1}}",
		"{\"type\":\"PUB\",\"topic\":\"t\",\"msg\":[\"a\"99999999999999999999]}",
		"{\"type\":\"PUB\",\"topic\":\"t\",\"msg\":99999999999999999999\"x\"}",
	};
	for (size_t i = 0; i < sizeof(garbled) / sizeof(garbled[0]); i++)
		expect_cmd(garbled[i], strlen(garbled[i]), JL_INVALID_JSON);
}

static void
test_payload_string(void **state)
{
	(void)state;
	expect_payload("\"\"", "", 0, false);
	expect_payload("\"a\\u0000b\"", "a\0b", 3, false);
	expect_payload("\"\\u00e4\\ud83d\\ude00\"", "\xc3\xa4\xf0\x9f\x98\x80",
	    6, false);
	expect_payload("\"\xc3\xa4\"", "\xc3\xa4", 2, false);
	expect_payload("\"{\\\"a\\\":1}\"", "{\"a\":1}", 7, false);
	expect_payload("\"line\\r\\nnext\"", "line\r\nnext", 10, false);
}

static void
test_pub_errors(void **state)
{
	(void)state;
	expect_bad("{\"type\":\"PUB\",\"msg\":1}", "PUB without topic");
	expect_bad("{\"type\":\"PUB\",\"topic\":1,\"msg\":1}",
	    "PUB with a topic that is not a string");
	expect_bad("{\"type\":\"PUB\",\"topic\":null,\"msg\":1}",
	    "PUB with a topic that is not a string");
	expect_bad("{\"type\":\"PUB\",\"topic\":\"t\"}", "PUB without msg");
	expect_bad("{\"type\":\"PUB\",\"topic\":\"a/+\",\"msg\":1}",
	    "PUB with a wildcard in its topic");
	expect_bad("{\"type\":\"PUB\",\"topic\":\"#\",\"msg\":1}",
	    "PUB with a wildcard in its topic");
	expect_bad("{\"type\":\"PUB\",\"topic\":\"\",\"msg\":1}",
	    "PUB with an empty topic");
	expect_bad("{\"type\":\"PUB\",\"topic\":\"a\\u0000b\",\"msg\":1}",
	    "PUB with a NUL character in its topic");
}

static void
test_pubrel_ids(void **state)
{
	struct jl_request r;

	(void)state;
	assert_int_equal(parse("{\"type\":\"PUBREL\",\"msgId\":0}", &r),
	    JL_PUBREL);
	assert_int_equal(r.msg_id, 0);
	assert_null(r.topic);
	jl_request_free(&r);
	assert_int_equal(parse("{\"type\":\"PUBREL\","
	    "\"msgId\":9007199254740992}", &r), JL_PUBREL);
	assert_true(r.msg_id == (UINT64_C(1) << 53));
	jl_request_free(&r);
	assert_int_equal(parse("{\"type\":\"PUBREL\","
	    "\"msgId\":9223372036854775807}", &r), JL_PUBREL);
	assert_true(r.msg_id == INT64_MAX);
	jl_request_free(&r);
	expect_bad("{\"type\":\"PUBREL\"}", "PUBREL without msgId");
	expect_bad("{\"type\":\"PUBREL\",\"msgId\":-1}",
	    "PUBREL with a msgId that is not a non-negative integer");
	expect_bad("{\"type\":\"PUBREL\",\"msgId\":1.5}",
	    "PUBREL with a msgId that is not a non-negative integer");
	expect_bad("{\"type\":\"PUBREL\",\"msgId\":1.0}",
	    "PUBREL with a msgId that is not a non-negative integer");
	expect_bad("{\"type\":\"PUBREL\",\"msgId\":\"1\"}",
	    "PUBREL with a msgId that is not a non-negative integer");
	expect_bad("{\"type\":\"PUBREL\",\"msgId\":null}",
	    "PUBREL with a msgId that is not a non-negative integer");
	/* Beyond 64-bit integers: jansson refuses the whole text. */
	assert_int_equal(parse("{\"type\":\"PUBREL\","
	    "\"msgId\":18446744073709551616}", &r), JL_INVALID_JSON);
	assert_string_equal(r.error, "number out of range");
	jl_request_free(&r);
}

static void
test_sub_unsub(void **state)
{
	/* A share's group with a wildcard: for the consumer to refuse as a
	 * malformed share (bad_share), not a misplaced wildcard. */
	static const char *ok[] = { "a", "a/b", "a/+/c", "#", "a/#", "+",
	    "+/+", "$DLQ", "/", "a//b", "$share/g/a", "$share/g+/a", "$share/#/a" };
	struct jl_request r;
	char line[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(line, sizeof(line), "{\"type\":\"SUB\",\"topic\":\"%s\"}",
		    ok[i]);
		assert_int_equal(parse(line, &r), JL_SUB);
		assert_string_equal(r.topic, ok[i]);
		jl_request_free(&r);
		snprintf(line, sizeof(line),
		    "{\"topic\":\"%s\",\"type\":\"UNSUB\"}", ok[i]);
		assert_int_equal(parse(line, &r), JL_UNSUB);
		assert_string_equal(r.topic, ok[i]);
		jl_request_free(&r);
	}
	expect_bad("{\"type\":\"SUB\",\"topic\":\"a/b#\"}",
	    "SUB with a misplaced wildcard in its topic filter");
	expect_bad("{\"type\":\"SUB\",\"topic\":\"#/a\"}",
	    "SUB with a misplaced wildcard in its topic filter");
	expect_bad("{\"type\":\"UNSUB\",\"topic\":\"a+\"}",
	    "UNSUB with a misplaced wildcard in its topic filter");
	expect_bad("{\"type\":\"SUB\",\"topic\":\"$share/g/a+\"}",
	    "SUB with a misplaced wildcard in its topic filter");
	expect_bad("{\"type\":\"SUB\"}", "SUB without topic");
	expect_bad("{\"type\":\"UNSUB\",\"topic\":[\"a\"]}",
	    "UNSUB with a topic that is not a string");
	expect_bad("{\"type\":\"SUB\",\"topic\":\"\"}", "SUB with an empty topic");
}

/* cmd of {"type":TYPE,"topic":"a/.../a" (levels levels),"msgId":1,"msg":1}
 * under a limit of max levels. */
static enum jl_cmd
parse_deep(const char *type, size_t levels, size_t max, struct jl_request *r)
{
	char line[1024];
	int n = snprintf(line, sizeof(line), "{\"type\":\"%s\",\"msgId\":1,\"msg\":1,"
	    "\"topic\":\"a", type);

	for (size_t i = 1; i < levels; i++)
		n += snprintf(line + n, sizeof(line) - (size_t)n, "/a");
	snprintf(line + n, sizeof(line) - (size_t)n, "\"}");
	return jl_parse_limited(line, strlen(line), max, r);
}

static void
test_topic_levels(void **state)
{
	static const char *const types[] = { "PUB", "SUB", "UNSUB", "PUBREC", "PUBCOMP" };
	static const enum jl_cmd cmds[] = { JL_PUB, JL_SUB, JL_UNSUB, JL_PUBREC, JL_PUBCOMP };
	struct jl_request r;

	(void)state;
	for (size_t i = 0; i < 5; i++) {
		/* At the limit, or without one: accepted. */
		assert_int_equal(parse_deep(types[i], 200, 200, &r), cmds[i]);
		jl_request_free(&r);
		assert_int_equal(parse_deep(types[i], 300, 0, &r), cmds[i]);
		jl_request_free(&r);
		/* Beyond it: PUB and SUB are refused, the rest names what exists. */
		assert_int_equal(parse_deep(types[i], 201, 200, &r),
		    i < 2 ? JL_BAD_REQUEST : cmds[i]);
		if (i < 2) {
			assert_string_equal(r.type, types[i]);
			assert_string_equal(r.error,
			    "with a topic of more levels than max_topic_levels");
			assert_null(r.topic);
			assert_null(r.payload);
		}
		jl_request_free(&r);
	}
	/* Other faults are reported first. */
	assert_int_equal(jl_parse_limited("{\"type\":\"PUB\",\"topic\":\"a/b/c\"}", 30, 2,
	    &r), JL_BAD_REQUEST);
	assert_string_equal(r.error, "without msg");
	jl_request_free(&r);
}

static void
test_consumer_acks(void **state)
{
	struct jl_request r;

	(void)state;
	assert_int_equal(parse("{\"type\":\"PUBREC\",\"msgId\":12,"
	    "\"topic\":\"s/t\"}", &r), JL_PUBREC);
	assert_int_equal(r.msg_id, 12);
	assert_string_equal(r.topic, "s/t");
	assert_null(r.payload);
	jl_request_free(&r);
	assert_int_equal(parse("{\"type\":\"PUBCOMP\",\"msgId\":12,"
	    "\"topic\":\"s/t\"}", &r), JL_PUBCOMP);
	assert_int_equal(r.msg_id, 12);
	assert_string_equal(r.topic, "s/t");
	jl_request_free(&r);
	expect_bad("{\"type\":\"PUBREC\",\"msgId\":12}", "PUBREC without topic");
	expect_bad("{\"type\":\"PUBCOMP\",\"topic\":\"t\"}", "PUBCOMP without msgId");
	expect_bad("{\"type\":\"PUBCOMP\",\"msgId\":-3,\"topic\":\"t\"}",
	    "PUBCOMP with a msgId that is not a non-negative integer");
	expect_bad("{\"type\":\"PUBREC\",\"msgId\":1,\"topic\":\"a/#\"}",
	    "PUBREC with a wildcard in its topic");
}

static void
test_invalid_json(void **state)
{
	static const char *bad[] = { "", " ", "\t", "{", "}", "{\"type\":\"PUB\"",
	    "{\"type\":\"SUB\",\"topic\":\"a\"} x", "{\"type\":\"SUB\"}{}",
	    "{'type':'SUB'}", "{type:\"SUB\"}", "\xff", "nul", "[1,]",
	    "{\"type\":\"SUB\",\"topic\":\"\xc3\"}",
	    "{\"type\":\"SUB\",\"topic\":\"\xed\xa0\x80\"}",
	    "{\"type\":\"SUB\",\"topic\":\"\\ud800\"}",
	    "{\"type\":\"SUB\",\"topic\":\"a\tb\"}",
	    "{\"type\":\"SUB\",\"topic\":\"a\"}\n{}" };
	struct jl_request r;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		expect_cmd(bad[i], strlen(bad[i]), JL_INVALID_JSON);
		parse(bad[i], &r);
		assert_string_equal(r.error, "not valid JSON");
		jl_request_free(&r);
	}
	/* A raw NUL byte, inside or after the object. */
	expect_cmd("{\"type\":\"SUB\",\"topic\":\"a\"}\0", 27, JL_INVALID_JSON);
	expect_cmd("{\"type\":\"SUB\",\"topic\":\"a\0\"}", 27, JL_INVALID_JSON);
	expect_cmd(NULL, 0, JL_INVALID_JSON);
	expect_cmd("1e400", 5, JL_INVALID_JSON);
	/* jansson refuses U+0000 in object keys. */
	expect_cmd("{\"type\":\"PUB\",\"topic\":\"t\",\"msg\":{\"\\u0000\":1}}",
	    45, JL_INVALID_JSON);
}

static void
test_line_endings(void **state)
{
	struct jl_request r;

	(void)state;
	/* The caller strips "\r\n" or "\n"; a '\r' left over is white space
	 * to JSON and does no harm. */
	assert_int_equal(parse("{\"type\":\"SUB\",\"topic\":\"a\"}\r", &r),
	    JL_SUB);
	jl_request_free(&r);
	/* Only len bytes are read. */
	assert_int_equal(jl_parse("{\"type\":\"SUB\",\"topic\":\"a\"}garbage",
	    26, &r), JL_SUB);
	assert_string_equal(r.topic, "a");
	jl_request_free(&r);
}

static void
test_unknown_command(void **state)
{
	static const struct {
		const char *line;
		const char *error;
	} unk[] = {
		{ "{}", "no type" },
		{ "{\"topic\":\"a\",\"msg\":1}", "no type" },
		{ "{\"type\":1}", "no type" },
		{ "{\"type\":null}", "no type" },
		{ "{\"type\":[\"PUB\"]}", "no type" },
		{ "{\"type\":\"pub\",\"topic\":\"t\",\"msg\":1}", "unknown type" },
		{ "{\"type\":\"PUBLISH\"}", "unknown type" },
		{ "{\"type\":\"\"}", "unknown type" },
		{ "{\"type\":\"PUB\\u0000\",\"topic\":\"t\",\"msg\":1}",
		    "unknown type" },
		{ "{\"type\":\" PUB\",\"topic\":\"t\",\"msg\":1}", "unknown type" },
		{ "{\"TYPE\":\"PUB\",\"topic\":\"t\",\"msg\":1}", "no type" },
		{ "[{\"type\":\"PUB\",\"topic\":\"t\",\"msg\":1}]",
		    "not a JSON object" },
		{ "42", "not a JSON object" },
		{ "\"PUB\"", "not a JSON object" },
		{ "null", "not a JSON object" },
		{ " true ", "not a JSON object" },
	};
	struct jl_request r;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(unk) / sizeof(unk[0]); i++) {
		expect_cmd(unk[i].line, strlen(unk[i].line), JL_UNKNOWN_COMMAND);
		parse(unk[i].line, &r);
		assert_string_equal(r.error, unk[i].error);
		jl_request_free(&r);
	}
}

static void
expect_login(const char *line, size_t len, const char *want)
{
	char *u = (char *)"unset";

	if (want == NULL) {
		assert_false(jl_parse_login(line, len, &u));
		assert_null(u);
		return;
	}
	assert_true(jl_parse_login(line, len, &u));
	assert_string_equal(u, want);
	free(u);
}

#define LOGIN(s, want) expect_login(s, sizeof(s) - 1, want)

static void
expect_login_pw(const char *line, const char *user, const char *password)
{
	char *u = (char *)"unset", *pw = (char *)"unset";

	if (user == NULL) {
		assert_false(jl_parse_login_password(line, strlen(line), &u, &pw));
		assert_null(u);
		assert_null(pw);
		return;
	}
	assert_true(jl_parse_login_password(line, strlen(line), &u, &pw));
	assert_string_equal(u, user);
	if (password == NULL)
		assert_null(pw);
	else
		assert_string_equal(pw, password);
	free(u);
	free(pw);
}

/* With a password file: the user name as without one, the password the
 * rest of the line as typed. */
static void
test_login_password(void **state)
{
	(void)state;
	expect_login_pw("log Alice S3cret", "alice", "S3cret");
	expect_login_pw("LOG  bob \t two  Words ", "bob", "two  Words ");
	expect_login_pw("log carol", "carol", NULL);
	expect_login_pw("log", NULL, NULL);
	expect_login_pw("login alice pw", NULL, NULL);
	expect_login_pw("", NULL, NULL);
	expect_login_pw("log al\001ce pw", NULL, NULL);
	/* Without a password file, three words are no login (as before). */
	LOGIN("log alice pw", NULL);
}

/* What of a refused line may be dead-lettered: a login line's password
 * never. */
static void
test_login_public_len(void **state)
{
	static const struct { const char *line; size_t want; } cases[] = {
		{ "log alice s3cret", 9 },
		{ "LOG  bob \t two  words ", 8 },
		{ "log carol", 9 },
		{ "log", 3 },
		{ "login alice pw", 14 },
		{ "{\"type\":\"PUB\"}", 14 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(jl_login_public_len(cases[i].line, strlen(cases[i].line)),
		    cases[i].want);
}

static void
test_login(void **state)
{
	char line[300];

	(void)state;
	LOGIN("log alice", "alice");
	LOGIN("LOG Alice", "alice");
	LOGIN("Log ALICE", "alice");
	LOGIN("  log   bob  ", "bob");
	LOGIN("log\talice", "alice");
	LOGIN("\tlog \t carol\t", "carol");
	LOGIN("log alice\r", "alice");
	LOGIN("log log", "log");
	LOGIN("log a.b-c_d@e", "a.b-c_d@e");
	LOGIN("log \xc3\x84rger", "\xc3\xa4rger");	/* Unicode: \u00c4 -> \u00e4 */
	LOGIN("log \xce\xa3\xce\x91", "\xcf\x83\xce\xb1");	/* Greek */
	LOGIN("log \xc8\xba", "\xe2\xb1\xa5");		/* \u023a -> \u2c65: longer */
	LOGIN("log \xf0\x90\x90\x80", "\xf0\x90\x90\xa8");	/* Deseret, 4 bytes */
	LOGIN("log\xe3\x80\x80zoe", "zoe");		/* U+3000 splits */
	LOGIN("log\xc2\xa0zoe", NULL);			/* U+00A0 does not */
	LOGIN("", NULL);
	LOGIN("   ", NULL);
	LOGIN("log", NULL);
	LOGIN("log ", NULL);
	LOGIN("alice", NULL);
	LOGIN("login alice", NULL);
	LOGIN("lo alice", NULL);
	LOGIN("logalice", NULL);
	LOGIN("log alice bob", NULL);
	LOGIN("log alice\tx", NULL);
	LOGIN("sub alice", NULL);
	LOGIN("{\"type\":\"SUB\"}", NULL);
	LOGIN("log a\0b", NULL);
	LOGIN("log alice\0", NULL);
	LOGIN("log \xff", NULL);
	LOGIN("log alice \xc3", NULL);
	LOGIN("log a\x01" "b", NULL);
	LOGIN("log a\x7f", NULL);
	LOGIN("log a\xc2\x80", NULL);
	memcpy(line, "log ", 4);
	memset(line + 4, 'X', 256);
	line[260] = '\0';
	{
		char *u;

		assert_true(jl_parse_login(line, 260, &u));
		assert_int_equal(strlen(u), 256);
		assert_int_equal(u[0], 'x');
		free(u);
	}
	line[260] = 'X';
	expect_login(line, 261, NULL);
}

static void
test_enc_lines(void **state)
{
	struct wbuf w;

	(void)state;
	wbuf_init(&w);
	jl_enc_text(&w, JL_TEXT_PLEASE_LOGIN);
	expect_wbuf(&w, "Please login!\r\n");
	jl_enc_text(&w, JL_TEXT_LOGGED_IN);
	expect_wbuf(&w, "Succesfully logged in!\r\n");
	jl_enc_text(&w, JL_TEXT_OK);
	expect_wbuf(&w, "OK\r\n");
	jl_enc_text(&w, JL_TEXT_INVALID_JSON);
	expect_wbuf(&w, "INVALID JSON\r\n");
	jl_enc_text(&w, JL_TEXT_UNKNOWN_COMMAND);
	expect_wbuf(&w, "UNKNOWN COMMAND\r\n");
	jl_enc_error(&w, "user alice is already connected");
	expect_wbuf(&w, "ERROR user alice is already connected\r\n");
	jl_enc_error(&w, "two\r\nlines\n");
	expect_wbuf(&w, "ERROR two  lines \r\n");
	jl_enc_text(&w, "");
	expect_wbuf(&w, "\r\n");
	/* Appends. */
	jl_enc_text(&w, "OK");
	jl_enc_text(&w, "OK");
	expect_wbuf(&w, "OK\r\nOK\r\n");
	wbuf_free(&w);
}

static void
test_enc_acks(void **state)
{
	struct wbuf w;

	(void)state;
	wbuf_init(&w);
	jl_enc_pubrec(&w, 1);
	expect_wbuf(&w, "{\"type\":\"PUBREC\",\"msgId\":1}\r\n");
	jl_enc_pubcomp(&w, 0);
	expect_wbuf(&w, "{\"type\":\"PUBCOMP\",\"msgId\":0}\r\n");
	assert_int_equal(jl_enc_pubrel(&w, 9007199254740992ULL, NULL), 0);
	expect_wbuf(&w, "{\"type\":\"PUBREL\",\"msgId\":9007199254740992}\r\n");
	/* A consumer's PUBREL names its topic (escaped as JSON). */
	assert_int_equal(jl_enc_pubrel(&w, 3, "a/b"), 0);
	expect_wbuf(&w, "{\"type\":\"PUBREL\",\"msgId\":3,\"topic\":\"a/b\"}\r\n");
	assert_int_equal(jl_enc_pubrel(&w, 4, "q\"\\\xc3\xa4"), 0);
	expect_wbuf(&w,
	    "{\"type\":\"PUBREL\",\"msgId\":4,\"topic\":\"q\\\"\\\\\xc3\xa4\"}\r\n");
	assert_int_equal(jl_enc_pubrel(&w, 5, "\xff"), -1);
	assert_int_equal(w.len, 0);
	jl_enc_pubrec(&w, UINT64_MAX);
	expect_wbuf(&w,
	    "{\"type\":\"PUBREC\",\"msgId\":18446744073709551615}\r\n");
	wbuf_free(&w);
}

static void
test_enc_deliver(void **state)
{
	struct wbuf w;

	(void)state;
	wbuf_init(&w);
	assert_int_equal(jl_enc_deliver(&w, "a/b", 7, "hello", 5, false), 0);
	expect_wbuf(&w,
	    "{\"type\":\"PUB\",\"topic\":\"a/b\",\"msg\":\"hello\",\"msgId\":7}\r\n");
	assert_int_equal(jl_enc_deliver(&w, "t", 1, "{\"a\":[1,2]}", 11, true),
	    0);
	expect_wbuf(&w,
	    "{\"type\":\"PUB\",\"topic\":\"t\",\"msg\":{\"a\":[1,2]},\"msgId\":1}\r\n");
	assert_int_equal(jl_enc_deliver(&w, "t", 2, "42", 2, true), 0);
	expect_wbuf(&w, "{\"type\":\"PUB\",\"topic\":\"t\",\"msg\":42,\"msgId\":2}\r\n");
	/* JSON-looking bytes that are not marked JSON stay a string. */
	assert_int_equal(jl_enc_deliver(&w, "t", 3, "42", 2, false), 0);
	expect_wbuf(&w,
	    "{\"type\":\"PUB\",\"topic\":\"t\",\"msg\":\"42\",\"msgId\":3}\r\n");
	assert_int_equal(jl_enc_deliver(&w, "t", 4, "a\0b\"\\\n\x01\xc3\xa4", 9,
	    false), 0);
	expect_wbuf(&w, "{\"type\":\"PUB\",\"topic\":\"t\","
	    "\"msg\":\"a\\u0000b\\\"\\\\\\n\\u0001\xc3\xa4\",\"msgId\":4}\r\n");
	assert_int_equal(jl_enc_deliver(&w, "t", 5, "", 0, false), 0);
	expect_wbuf(&w, "{\"type\":\"PUB\",\"topic\":\"t\",\"msg\":\"\",\"msgId\":5}\r\n");
	assert_int_equal(jl_enc_deliver(&w, "t", 5, NULL, 0, false), 0);
	expect_wbuf(&w, "{\"type\":\"PUB\",\"topic\":\"t\",\"msg\":\"\",\"msgId\":5}\r\n");
	wbuf_free(&w);
}

static void
test_enc_deliver_binary(void **state)
{
	struct wbuf w;

	(void)state;
	wbuf_init(&w);
	assert_int_equal(jl_enc_deliver(&w, "bin", 18446744073709551615ULL,
	    "\xff\x00\x01", 3, false), 0);
	expect_wbuf(&w, "{\"type\":\"PUB\",\"topic\":\"bin\",\"msg\":\"/wAB\","
	    "\"msgId\":18446744073709551615,\"encoding\":\"base64\"}\r\n");
	/* Invalid UTF-8: truncated, surrogate, overlong. */
	assert_int_equal(jl_enc_deliver(&w, "b", 1, "ab\xc3", 3, false), 0);
	expect_wbuf(&w, "{\"type\":\"PUB\",\"topic\":\"b\",\"msg\":\"YWLD\","
	    "\"msgId\":1,\"encoding\":\"base64\"}\r\n");
	assert_int_equal(jl_enc_deliver(&w, "b", 1, "\xed\xa0\x80\x41", 4,
	    false), 0);
	expect_wbuf(&w, "{\"type\":\"PUB\",\"topic\":\"b\",\"msg\":\"7aCAQQ==\","
	    "\"msgId\":1,\"encoding\":\"base64\"}\r\n");
	assert_int_equal(jl_enc_deliver(&w, "b", 1, "\xc0\xaf", 2, false), 0);
	expect_wbuf(&w, "{\"type\":\"PUB\",\"topic\":\"b\",\"msg\":\"wK8=\","
	    "\"msgId\":1,\"encoding\":\"base64\"}\r\n");
	/* Marked JSON but unusable on a line: sent as a string. */
	assert_int_equal(jl_enc_deliver(&w, "b", 2, "[1,\n2]", 6, true), 0);
	expect_wbuf(&w, "{\"type\":\"PUB\",\"topic\":\"b\",\"msg\":\"[1,\\n2]\","
	    "\"msgId\":2}\r\n");
	assert_int_equal(jl_enc_deliver(&w, "b", 3, "", 0, true), 0);
	expect_wbuf(&w, "{\"type\":\"PUB\",\"topic\":\"b\",\"msg\":\"\",\"msgId\":3}\r\n");
	wbuf_free(&w);
}

static void
test_enc_deliver_topic(void **state)
{
	struct wbuf w;

	(void)state;
	wbuf_init(&w);
	assert_int_equal(jl_enc_deliver(&w, "a\"b\\c/\xc3\xa4\x7f\t", 1, "x", 1,
	    false), 0);
	expect_wbuf(&w, "{\"type\":\"PUB\",\"topic\":\"a\\\"b\\\\c/\xc3\xa4\x7f\\t\","
	    "\"msg\":\"x\",\"msgId\":1}\r\n");
	jl_enc_text(&w, "keep");
	assert_int_equal(jl_enc_deliver(&w, "bad\xff", 1, "x", 1, false), -1);
	expect_wbuf(&w, "keep\r\n");
	wbuf_free(&w);
}

/* What a publisher sends, a consumer receives: parse, deliver, parse. */
static void
roundtrip(const char *msg)
{
	struct jl_request a, b;
	struct wbuf w;
	char line[512];

	snprintf(line, sizeof(line), "{\"type\":\"PUB\",\"topic\":\"r/t\",\"msg\":%s}",
	    msg);
	assert_int_equal(parse(line, &a), JL_PUB);
	wbuf_init(&w);
	assert_int_equal(jl_enc_deliver(&w, a.topic, 5, a.payload,
	    a.payload_len, a.payload_json), 0);
	assert_true(w.len > 2);
	assert_memory_equal(w.data + w.len - 2, "\r\n", 2);
	assert_int_equal(jl_parse((char *)w.data, w.len - 2, &b), JL_PUB);
	assert_string_equal(a.topic, b.topic);
	assert_int_equal(a.payload_len, b.payload_len);
	assert_memory_equal(a.payload, b.payload, a.payload_len);
	assert_int_equal(a.payload_json, b.payload_json);
	jl_request_free(&a);
	jl_request_free(&b);
	wbuf_free(&w);
}

static void
test_roundtrip(void **state)
{
	(void)state;
	roundtrip("\"text\"");
	roundtrip("\"a\\u0000\\n\\\"b\"");
	roundtrip("{\"b\":[1,2.5,{\"c\":null}],\"a\":\"\\u00e4\"}");
	roundtrip("0.1");
	roundtrip("-1e-300");
	roundtrip("\"\"");
	roundtrip("[]");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pub),
		cmocka_unit_test(test_topic_levels),
		cmocka_unit_test(test_key_order),
		cmocka_unit_test(test_extra_and_repeated_keys),
		cmocka_unit_test(test_payload_json),
		cmocka_unit_test(test_payload_reals),
		cmocka_unit_test(test_payload_bignums),
		cmocka_unit_test(test_payload_string),
		cmocka_unit_test(test_pub_errors),
		cmocka_unit_test(test_pubrel_ids),
		cmocka_unit_test(test_sub_unsub),
		cmocka_unit_test(test_consumer_acks),
		cmocka_unit_test(test_invalid_json),
		cmocka_unit_test(test_line_endings),
		cmocka_unit_test(test_unknown_command),
		cmocka_unit_test(test_login),
		cmocka_unit_test(test_login_password),
		cmocka_unit_test(test_login_public_len),
		cmocka_unit_test(test_enc_lines),
		cmocka_unit_test(test_enc_acks),
		cmocka_unit_test(test_enc_deliver),
		cmocka_unit_test(test_enc_deliver_binary),
		cmocka_unit_test(test_enc_deliver_topic),
		cmocka_unit_test(test_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
