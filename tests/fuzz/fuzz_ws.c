/* libFuzzer target: WebSockets' codec (broker/core/wscodec.c) on
 * arbitrary bytes, taken both as an HTTP upgrade request and as the
 * frames a client sends after it.
 *
 *   make build/fuzz/fuzz_ws && build/fuzz/fuzz_ws tests/fuzz/corpus/ws
 *
 * Besides memory errors, it checks that the end of a request head is
 * found at the same place whatever the pieces it comes in, that a
 * request is taken or refused with a reason, its path printable and
 * bounded, its subprotocol one of MQTT's, and that an answer is always
 * made; and that a reader of frames fed the bytes in pieces (of sizes
 * the input's last byte chooses) gives the same payload and events as
 * one fed them at once, never more payload than input, and after a
 * close or failure nothing more. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/wscodec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "check failed: %s\n", #c); abort(); } } while (0)

#define EVENTS_MAX	64

/* The head's end, found in pieces of step bytes as they would come. */
static size_t
end_in_pieces(const uint8_t *data, size_t size, size_t step)
{
	size_t scanned = 0, end = 0;

	for (size_t n = step < size ? step : size; end == 0; n += step) {
		if (n > size)
			n = size;
		end = ws_head_end(data, n, &scanned);
		CHECK(end <= n && scanned <= n);
		if (n == size)
			break;
	}
	return end;
}

static void
check_request(const uint8_t *data, size_t size)
{
	size_t scanned = 0, end = ws_head_end(data, size, &scanned), alen;
	struct ws_request r;
	char answer[512];

	CHECK(end_in_pieces(data, size, 1) == end);
	CHECK(end_in_pieces(data, size, 5) == end);
	ws_request_read((const char *)data, end != 0 ? end : size, &r);
	CHECK(r.status == WS_SWITCHING || r.status == WS_BAD_REQUEST ||
	    r.status == WS_UPGRADE_REQUIRED);
	CHECK((r.status == WS_SWITCHING) == (r.why == NULL));
	CHECK(strlen(r.path) <= WS_PATH_MAX);
	for (const char *p = r.path; *p != '\0'; p++)
		CHECK(*p > 0x20 && *p < 0x7f);
	if (r.status == WS_SWITCHING) {
		CHECK(strlen(r.key) == WS_KEY_LEN);
		CHECK(r.protocol[0] == '\0' || strcasecmp(r.protocol, "mqtt") == 0 ||
		    strcasecmp(r.protocol, "mqttv3.1") == 0);
	}
	alen = ws_response(&r, answer, sizeof(answer));
	CHECK(alen > 0 && alen == strlen(answer) && strncmp(answer, "HTTP/1.1 ", 9) == 0);
	CHECK(strstr(answer, "\r\n\r\n") != NULL);
}

struct result {
	uint8_t		*data;
	size_t		 len;
	enum ws_rx_event ev[EVENTS_MAX];
	uint16_t	 code[EVENTS_MAX];
	uint8_t		 ctl[EVENTS_MAX][WS_CONTROL_MAX];
	size_t		 ctl_len[EVENTS_MAX];
	size_t		 nev;
};

/* Feeds the input in pieces whose sizes cycle through sizes (a 0 is the
 * rest at once). */
static void
read_frames(const uint8_t *data, size_t size, uint64_t max, const uint8_t *sizes,
    size_t nsizes, struct result *res)
{
	struct ws_rx rx;
	struct ws_rx_out o;
	uint8_t *out = malloc(size + 1);
	size_t off = 0, k = 0, piece;
	bool ended = false;

	memset(res, 0, sizeof(*res));
	res->data = malloc(size + 1);
	ws_rx_init(&rx, max);
	while (off < size) {
		piece = nsizes == 0 || sizes[k % nsizes] == 0 ? size - off : sizes[k % nsizes];
		k++;
		if (piece > size - off)
			piece = size - off;
		ws_rx_feed(&rx, data + off, piece, out, &o);
		CHECK(o.used > 0 && o.used <= piece && o.len <= o.used);
		CHECK(!ended || (o.len == 0 && o.ev == WS_RX_MORE && o.used == piece));
		memcpy(res->data + res->len, out, o.len);
		res->len += o.len;
		off += o.used;
		if (o.ev == WS_RX_MORE)
			continue;
		if (o.ev == WS_RX_CLOSE || o.ev == WS_RX_FAIL) {
			CHECK(o.used == piece);
			ended = true;
		}
		if (o.ev == WS_RX_FAIL)
			CHECK(o.why != NULL && (o.code == WS_CLOSE_PROTOCOL ||
			    o.code == WS_CLOSE_UNSUPPORTED || o.code == WS_CLOSE_TOO_BIG ||
			    o.code == 1007));
		CHECK(o.ctl_len <= WS_CONTROL_MAX);
		if (res->nev < EVENTS_MAX) {
			res->ev[res->nev] = o.ev;
			res->code[res->nev] = o.code;
			if (o.ev != WS_RX_FAIL) {
				memcpy(res->ctl[res->nev], o.ctl, o.ctl_len);
				res->ctl_len[res->nev] = o.ctl_len;
			}
		}
		res->nev++;
	}
	free(out);
}

static void
check_frames(const uint8_t *data, size_t size)
{
	struct result *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	/* The frame limit from the first two bytes; the pieces' sizes from
	 * the last three. */
	uint64_t max = size >= 2 ? (uint64_t)data[0] << 8 | data[1] : 0;
	const uint8_t *sizes = size >= 3 ? data + size - 3 : data;
	size_t nsizes = size >= 3 ? 3 : 0;

	read_frames(data, size, max, NULL, 0, a);
	read_frames(data, size, max, sizes, nsizes, b);
	CHECK(a->len == b->len && memcmp(a->data, b->data, a->len) == 0);
	CHECK(a->nev == b->nev);
	for (size_t i = 0; i < a->nev && i < EVENTS_MAX; i++) {
		CHECK(a->ev[i] == b->ev[i] && a->code[i] == b->code[i]);
		CHECK(a->ctl_len[i] == b->ctl_len[i]);
		CHECK(memcmp(a->ctl[i], b->ctl[i], a->ctl_len[i]) == 0);
	}
	free(a->data);
	free(b->data);
	free(a);
	free(b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_request(data, size);
	check_frames(data, size);
	return 0;
}
