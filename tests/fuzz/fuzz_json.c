/* libFuzzer target for the JSON-lines codec (broker/json/codec.c).
 *
 * The input is one client line.  Besides crashes and leaks it checks:
 * a parsed request is well formed; a PUB delivered to a consumer parses
 * back to the same topic and payload; any bytes delivered or
 * dead-lettered come out as one line of valid JSON that gives the bytes
 * back; an accepted login name obeys the login rules.  The first 8 bytes
 * also serve as an id, a time and a double (which must survive a PUB). */
#include <jansson.h>
#include <math.h>
#include <resolv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/json_codec.h"
#include "topic.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

/* One line: "\r\n" at the end and nowhere else. */
static void
check_line(const struct wbuf *w, bool crlf)
{
	size_t n = w->len;

	if (crlf) {
		CHECK(n >= 2 && memcmp(w->data + n - 2, "\r\n", 2) == 0);
		n -= 2;
	}
	CHECK(memchr(w->data, '\n', n) == NULL);
	CHECK(memchr(w->data, '\r', n) == NULL);
}

/* The line as JSON; "msg" must give back p[0..n). */
static void
check_msg(const struct wbuf *w, size_t n_json, const uint8_t *p, size_t n)
{
	json_t *root, *msg, *enc;
	uint8_t *buf;
	int got;

	root = json_loadb((const char *)w->data, n_json, JSON_ALLOW_NUL, NULL);
	CHECK(root != NULL && json_is_object(root));
	msg = json_object_get(root, "msg");
	CHECK(msg != NULL && json_is_string(msg));
	if ((enc = json_object_get(root, "encoding")) == NULL) {
		CHECK(utf8_valid(p, n));
		CHECK(json_string_length(msg) == n);
		CHECK(memcmp(json_string_value(msg), p, n) == 0);
	} else {
		CHECK(!utf8_valid(p, n));
		CHECK(strcmp(json_string_value(enc), "base64") == 0);
		buf = malloc(n + 3);
		got = b64_pton(json_string_value(msg), buf, n + 3);
		CHECK(got >= 0 && (size_t)got == n);
		CHECK(memcmp(buf, p, n) == 0);
		free(buf);
	}
	json_decref(root);
}

static void
check_request(const struct jl_request *r)
{
	struct jl_request b;
	struct wbuf w;

	if (r->cmd < JL_PUB) {
		CHECK(r->error != NULL && r->topic == NULL && r->payload == NULL);
		return;
	}
	CHECK(r->error == NULL);
	if (r->cmd == JL_SUB || r->cmd == JL_UNSUB)
		CHECK(topic_check_filter(r->topic, strlen(r->topic)) == TOPIC_OK);
	else if (r->cmd != JL_PUBREL)
		CHECK(topic_check_name(r->topic, strlen(r->topic)) == TOPIC_OK);
	CHECK(r->msg_id <= INT64_MAX);
	if (r->cmd != JL_PUB)
		return;
	/* What the publisher sent is what a consumer gets. */
	wbuf_init(&w);
	CHECK(jl_enc_deliver(&w, r->topic, r->msg_id, r->payload,
	    r->payload_len, r->payload_json) == 0);
	check_line(&w, true);
	CHECK(jl_parse((const char *)w.data, w.len - 2, &b) == JL_PUB);
	CHECK(strcmp(b.topic, r->topic) == 0);
	CHECK(b.msg_id == r->msg_id);
	CHECK(b.payload_json == r->payload_json);
	CHECK(b.payload_len == r->payload_len);
	CHECK(memcmp(b.payload, r->payload, r->payload_len) == 0);
	jl_request_free(&b);
	wbuf_free(&w);
}

/* With a password: the same user name as without one when there is
 * none, and the password is the end of the line, as sent. */
static void
check_login_password(const uint8_t *data, size_t size, const char *plain)
{
	char *u, *pw;
	size_t n;

	if (!jl_parse_login_password((const char *)data, size, &u, &pw)) {
		CHECK(u == NULL && pw == NULL && plain == NULL);
		return;
	}
	CHECK(plain == NULL || (strcmp(plain, u) == 0 && pw == NULL));
	CHECK(plain != NULL || pw != NULL);
	if (pw != NULL) {
		n = strlen(pw);
		CHECK(n > 0 && n < size && memcmp(data + size - n, pw, n) == 0);
		CHECK(pw[0] != ' ' && pw[0] != '\t');
	}
	free(u);
	free(pw);
}

static void
check_login(const uint8_t *data, size_t size)
{
	char *u;
	size_t i, n;

	if (!jl_parse_login((const char *)data, size, &u)) {
		CHECK(u == NULL);
		check_login_password(data, size, NULL);	/* three words or more, or none */
		return;
	}
	check_login_password(data, size, u);
	n = strlen(u);
	CHECK(n > 0 && n <= JL_USERNAME_MAX && utf8_valid(u, n));
	CHECK(memchr(data, '\0', size) == NULL);
	for (i = 0; i < n; i++) {
		CHECK(u[i] < 'A' || u[i] > 'Z');
		CHECK((unsigned char)u[i] > ' ' && u[i] != 0x7f);
	}
	free(u);
}

/* A double sent as a PUB msg is stored as text that reads back exactly. */
static void
check_real(uint64_t bits)
{
	struct jl_request r;
	char line[128];
	double d, back;

	memcpy(&d, &bits, sizeof(d));
	if (!isfinite(d))
		return;
	snprintf(line, sizeof(line), "{\"type\":\"PUB\",\"topic\":\"t\","
	    "\"msg\":%.16e}", d);
	CHECK(jl_parse(line, strlen(line), &r) == JL_PUB);
	CHECK(r.payload_json);
	back = strtod((char *)r.payload, NULL);
	CHECK(back == d && signbit(back) == signbit(d));
	jl_request_free(&r);
}

/* Fixed lines: one line each, the id comes back. */
static void
check_acks(const uint8_t *data, size_t size, uint64_t id)
{
	struct wbuf w;
	json_t *root;
	char *text;

	wbuf_init(&w);
	jl_enc_pubrec(&w, id);
	jl_enc_pubcomp(&w, id);
	CHECK(jl_enc_pubrel(&w, id, "a/b") == 0);
	CHECK(w.len > 2 && memcmp(w.data + w.len - 2, "\r\n", 2) == 0);
	if (id <= INT64_MAX) {
		root = json_loadb((const char *)w.data, w.len - 2,
		    JSON_DISABLE_EOF_CHECK, NULL);
		CHECK(root != NULL);
		CHECK(json_integer_value(json_object_get(root, "msgId")) ==
		    (json_int_t)id);
		json_decref(root);
	}
	wbuf_reset(&w);
	text = strndup((const char *)data, size);
	jl_enc_error(&w, text);
	check_line(&w, true);
	CHECK(memcmp(w.data, "ERROR ", 6) == 0);
	free(text);
	wbuf_free(&w);
}

/* Arbitrary bytes as a stored payload, delivered. */
static void
check_bytes(const uint8_t *data, size_t size)
{
	struct wbuf w;

	wbuf_init(&w);
	CHECK(jl_enc_deliver(&w, "t", size, data, size, false) == 0);
	check_line(&w, true);
	check_msg(&w, w.len - 2, data, size);
	wbuf_free(&w);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jl_request r;
	uint64_t bits = 0;

	memcpy(&bits, data, size < sizeof(bits) ? size : sizeof(bits));
	CHECK(jl_parse((const char *)data, size, &r) == r.cmd);
	check_request(&r);
	jl_request_free(&r);
	check_login(data, size);
	check_bytes(data, size);
	check_acks(data, size, bits);
	check_real(bits);
	return 0;
}
