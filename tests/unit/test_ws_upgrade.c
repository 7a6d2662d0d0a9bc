/* The opening handshake of WebSockets (broker/core/wscodec.c): requests
 * taken and refused, the head found when it comes in pieces, the accept
 * value (RFC 6455's example), and the answers as they go on the wire. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/wscodec.h"

#define KEY	"dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT	"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/* A request of these headers, after a request line and a Host. */
static void
read_request(const char *line, const char *headers, struct ws_request *r)
{
	char head[4096];
	int n = snprintf(head, sizeof(head), "%s\r\nHost: 127.0.0.1:9001\r\n%s\r\n", line, headers);

	assert_true(n > 0 && (size_t)n < sizeof(head));
	ws_request_read(head, (size_t)n, r);
}

static void
upgrade(const char *headers, struct ws_request *r)
{
	read_request("GET /mqtt HTTP/1.1", headers, r);
}

#define GOOD	"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" \
		"Sec-WebSocket-Key: " KEY "\r\n"

static void
test_accept_value(void **state)
{
	char out[WS_ACCEPT_LEN + 1];

	(void)state;
	/* RFC 6455 1.3 */
	assert_int_equal(ws_accept(KEY, out), 0);
	assert_string_equal(out, ACCEPT);
}

static void
test_requests_taken(void **state)
{
	struct ws_request r;

	(void)state;
	/* paho-mqtt's request, as it writes it. */
	upgrade("Upgrade: websocket\r\nConnection: Upgrade\r\nOrigin: https://127.0.0.1:9001\r\n"
	    "Sec-WebSocket-Key: " KEY "\r\nSec-Websocket-Version: 13\r\n"
	    "Sec-Websocket-Protocol: mqtt\r\n", &r);
	assert_int_equal(r.status, WS_SWITCHING);
	assert_string_equal(r.key, KEY);
	assert_string_equal(r.protocol, "mqtt");
	assert_string_equal(r.path, "/mqtt");
	/* A browser's: lists, other case, blanks, cookies. */
	upgrade("Connection: keep-alive, Upgrade\r\nUpgrade:WebSocket \r\n"
	    "Cookie: a=1; b=2\r\nsec-websocket-version:  13\r\nsec-websocket-key: " KEY "\r\n"
	    "Sec-WebSocket-Protocol: mqttv3.1, MQTT\r\nSec-WebSocket-Extensions: "
	    "permessage-deflate; client_max_window_bits\r\n", &r);
	assert_int_equal(r.status, WS_SWITCHING);
	assert_string_equal(r.protocol, "MQTT");	/* as the client spelled it */
	/* mqttv3.1 when it is all that is offered; none offered: none. */
	upgrade(GOOD "Sec-WebSocket-Protocol: mqttv3.1\r\n", &r);
	assert_int_equal(r.status, WS_SWITCHING);
	assert_string_equal(r.protocol, "mqttv3.1");
	upgrade(GOOD, &r);
	assert_int_equal(r.status, WS_SWITCHING);
	assert_string_equal(r.protocol, "");
	/* Headers repeated: their lists together. */
	upgrade("Upgrade: h2c\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
	    "Connection: upgrade\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Version: 13\r\n"
	    "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Protocol: wamp\r\n"
	    "Sec-WebSocket-Protocol: mqtt\r\n", &r);
	assert_int_equal(r.status, WS_SWITCHING);
	assert_string_equal(r.protocol, "mqtt");
	/* Any path, also HTTP/1.2; LF alone ends lines too. */
	read_request("GET / HTTP/1.2", GOOD, &r);
	assert_int_equal(r.status, WS_SWITCHING);
	assert_string_equal(r.path, "/");
	const char *lf = "GET /x?y=1 HTTP/1.1\nUpgrade: websocket\nConnection: upgrade\n"
	    "Sec-WebSocket-Version: 13\nSec-WebSocket-Key: " KEY "\n\n";
	ws_request_read(lf, strlen(lf), &r);
	assert_int_equal(r.status, WS_SWITCHING);
	assert_string_equal(r.path, "/x?y=1");
}

/* A refusal: its status, and what it says. */
static void
assert_refused(const char *headers, enum ws_status status, const char *why)
{
	struct ws_request r;

	upgrade(headers, &r);
	assert_int_equal(r.status, status);
	assert_string_equal(r.why, why);
}

static void
test_requests_refused(void **state)
{
	struct ws_request r;

	(void)state;
	assert_refused("Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
	    KEY "\r\n", WS_BAD_REQUEST, "no Upgrade: websocket header (not a WebSocket request)");
	assert_refused("Upgrade: websocket\r\nConnection: keep-alive\r\nSec-WebSocket-Version:"
	    " 13\r\nSec-WebSocket-Key: " KEY "\r\n", WS_BAD_REQUEST,
	    "no Connection: Upgrade header");
	assert_refused("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " KEY
	    "\r\n", WS_BAD_REQUEST, "no Sec-WebSocket-Version header");
	assert_refused("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\n"
	    "Sec-WebSocket-Key: " KEY "\r\n", WS_UPGRADE_REQUIRED,
	    "Sec-WebSocket-Version is not 13");
	assert_refused("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n",
	    WS_BAD_REQUEST, "no Sec-WebSocket-Key header");
	assert_refused(GOOD "Sec-WebSocket-Key: " KEY "\r\n", WS_BAD_REQUEST,
	    "more than one Sec-WebSocket-Key header");
	assert_refused("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
	    "Sec-WebSocket-Protocol: wamp, mqtt5\r\nSec-WebSocket-Key: " KEY "\r\n", WS_BAD_REQUEST,
	    "no subprotocol mqtt or mqttv3.1 offered");
	assert_refused(GOOD "X-Folded: a\r\n b\r\n", WS_BAD_REQUEST, "a header folded over lines");
	assert_refused(GOOD "no colon here\r\n", WS_BAD_REQUEST, "a malformed header line");
	assert_refused(GOOD "Bad Name: x\r\n", WS_BAD_REQUEST, "a malformed header line");
	assert_refused(GOOD ": x\r\n", WS_BAD_REQUEST, "a malformed header line");
	/* Keys that are not 16 bytes in base64. */
	static const char *keys[] = {
		"dGhlIHNhbXBsZSBub25jZQ=", "dGhlIHNhbXBsZSBub25jZQ===", "dGhlIHNhbXBsZSBub25jZ===",
		"dGhlIHNhbXBsZSBub25jZQ", "dGhl*HNhbXBsZSBub25jZQ==", "",
		"dGhlIHNhbXBsZSBub25jZQ==dGhlIHNhbXBsZSBub25jZQ==",
	};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char h[512];

		snprintf(h, sizeof(h), "Upgrade: websocket\r\nConnection: Upgrade\r\n"
		    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n", keys[i]);
		assert_refused(h, WS_BAD_REQUEST, "Sec-WebSocket-Key is not 16 bytes in base64");
	}
	/* The request line. */
	read_request("POST /mqtt HTTP/1.1", GOOD, &r);
	assert_int_equal(r.status, WS_BAD_REQUEST);
	assert_string_equal(r.why, "not a GET request");
	read_request("GET /mqtt HTTP/1.0", GOOD, &r);
	assert_string_equal(r.why, "not HTTP/1.1");
	read_request("GET /mqtt", GOOD, &r);
	assert_string_equal(r.why, "not an HTTP request");
	read_request("GET  HTTP/1.1", GOOD, &r);
	assert_string_equal(r.why, "not an HTTP request");
	read_request("\x16\x03\x01\x02", GOOD, &r);	/* TLS on a plain port */
	assert_string_equal(r.why, "not an HTTP request");
	ws_request_read("", 0, &r);
	assert_string_equal(r.why, "an empty request");
	ws_request_too_large(&r);
	assert_int_equal(r.status, WS_TOO_LARGE);
	assert_string_equal(r.why, "request head larger than websockets_headers_size");
}

static void
test_path_kept_for_the_log(void **state)
{
	char line[600];
	struct ws_request r;

	(void)state;
	read_request("GET /a\x01\x7f\xc3\xa9 HTTP/1.1", GOOD, &r);
	assert_int_equal(r.status, WS_SWITCHING);
	assert_string_equal(r.path, "/a????");
	memset(line, 'p', sizeof(line));
	memcpy(line, "GET /", 5);
	memcpy(line + 400, " HTTP/1.1", 10);
	read_request(line, GOOD, &r);
	assert_int_equal(r.status, WS_SWITCHING);
	assert_int_equal(strlen(r.path), WS_PATH_MAX);
}

/* The head is found once whole, whatever the pieces it came in. */
static void
test_head_in_pieces(void **state)
{
	static const char *heads[] = {
		"GET / HTTP/1.1\r\nHost: h\r\n\r\n", "GET / HTTP/1.1\nHost: h\n\n",
		"GET / HTTP/1.1\r\nHost: h\n\r\n", "GET / HTTP/1.1\r\n\r\n",
	};
	const char *tail = "\x82\x80" "abcd";		/* a frame sent at once */

	(void)state;
	for (size_t h = 0; h < sizeof(heads) / sizeof(heads[0]); h++) {
		char buf[128];
		size_t len = strlen(heads[h]), scanned = 0, end = 0;

		snprintf(buf, sizeof(buf), "%s%s", heads[h], tail);
		/* One byte at a time: found with its last byte, not before. */
		for (size_t n = 1; n <= len + 6 && end == 0; n++) {
			end = ws_head_end((const uint8_t *)buf, n, &scanned);
			assert_true(end == 0 || n == len);
			assert_true(scanned <= n);
		}
		assert_int_equal(end, len);
		/* At once, the frame after it included. */
		scanned = 0;
		assert_int_equal(ws_head_end((const uint8_t *)buf, len + 6, &scanned), len);
	}
	/* Not a head yet: one line ending is not the end. */
	size_t scanned = 0;
	assert_int_equal(ws_head_end((const uint8_t *)"GET / HTTP/1.1\r\nHost: h\r\n", 25,
	    &scanned), 0);
	assert_int_equal(scanned, 25);
	scanned = 0;
	assert_int_equal(ws_head_end((const uint8_t *)"\r\n", 2, &scanned), 0);
}

static void
test_answers(void **state)
{
	struct ws_request r;
	char out[512];
	size_t n;

	(void)state;
	upgrade(GOOD "Sec-WebSocket-Protocol: mqtt\r\n", &r);
	n = ws_response(&r, out, sizeof(out));
	assert_int_equal(n, strlen(out));
	assert_string_equal(out, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Accept: " ACCEPT "\r\n"
	    "Sec-WebSocket-Protocol: mqtt\r\n\r\n");
	upgrade(GOOD, &r);
	ws_response(&r, out, sizeof(out));
	assert_string_equal(out, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Accept: " ACCEPT "\r\n\r\n");
	/* Too small a buffer: nothing. */
	assert_int_equal(ws_response(&r, out, 40), 0);
	upgrade("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 7\r\n"
	    "Sec-WebSocket-Key: " KEY "\r\n", &r);
	ws_response(&r, out, sizeof(out));
	assert_string_equal(out, "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n"
	    "Content-Type: text/plain\r\nContent-Length: 54\r\nConnection: close\r\n\r\n"
	    "MQTT over WebSockets: Sec-WebSocket-Version is not 13\n");
	upgrade("Connection: Upgrade\r\n", &r);
	ws_response(&r, out, sizeof(out));
	assert_true(strncmp(out, "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
	assert_non_null(strstr(out, "\r\n\r\nMQTT over WebSockets: no Upgrade: websocket header"));
	ws_request_too_large(&r);
	ws_response(&r, out, sizeof(out));
	assert_true(strncmp(out, "HTTP/1.1 431 Request Header Fields Too Large\r\n", 46) == 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accept_value),
		cmocka_unit_test(test_requests_taken),
		cmocka_unit_test(test_requests_refused),
		cmocka_unit_test(test_path_kept_for_the_log),
		cmocka_unit_test(test_head_in_pieces),
		cmocka_unit_test(test_answers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
