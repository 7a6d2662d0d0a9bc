/* WebSockets, the server's side: the upgrade request and its answer,
 * frames read and written (see wscodec.h). */
#include "core/wscodec.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "topic.h"

#define WS_GUID		"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* ------------------------------------------------------------ handshake */

size_t
ws_head_end(const uint8_t *buf, size_t len, size_t *scanned)
{
	size_t i;

	/* An empty line ends the head: LF after LF, or after CR LF. */
	for (i = *scanned; i < len; i++) {
		if (buf[i] != '\n' || i == 0)
			continue;
		if (buf[i - 1] == '\n' || (i >= 2 && buf[i - 1] == '\r' && buf[i - 2] == '\n'))
			return i + 1;
	}
	*scanned = len;
	return 0;
}

/* What the headers said. */
struct heads {
	bool	 upgrade, connection;	/* websocket; upgrade */
	bool	 version, v13;		/* some version; 13 */
	int	 keys;
	bool	 key_ok;
	bool	 offered;		/* any subprotocol */
	char	 mqtt[WS_PROTOCOL_MAX + 1], mqtt31[WS_PROTOCOL_MAX + 1];	/* as spelled */
};

static bool
blank(char c)
{
	return c == ' ' || c == '\t';
}

/* The next line of [*p, end) without its CR LF (or LF); false at the end. */
static bool
next_line(const char **p, const char *end, const char **line, size_t *n)
{
	const char *nl;

	if (*p >= end)
		return false;
	nl = memchr(*p, '\n', (size_t)(end - *p));
	if (nl == NULL)
		nl = end;
	*line = *p;
	*n = (size_t)(nl - *p);
	if (*n > 0 && (*line)[*n - 1] == '\r')
		(*n)--;
	*p = nl < end ? nl + 1 : end;
	return true;
}

/* Calls fn for each element of a comma-separated list, blanks trimmed. */
static void
each_item(const char *v, size_t n, void (*fn)(const char *, size_t, struct heads *),
    struct heads *h)
{
	const char *end = v + n, *comma;
	size_t len;

	while (v < end) {
		comma = memchr(v, ',', (size_t)(end - v));
		len = (size_t)((comma != NULL ? comma : end) - v);
		while (len > 0 && blank(*v)) {
			v++;
			len--;
		}
		while (len > 0 && blank(v[len - 1]))
			len--;
		if (len > 0)
			fn(v, len, h);
		v = comma != NULL ? comma + 1 : end;
	}
}

static bool
is(const char *s, size_t n, const char *word)
{
	return n == strlen(word) && strncasecmp(s, word, n) == 0;
}

static void
upgrade_item(const char *s, size_t n, struct heads *h)
{
	h->upgrade |= is(s, n, "websocket");
}

static void
connection_item(const char *s, size_t n, struct heads *h)
{
	h->connection |= is(s, n, "upgrade");
}

static void
version_item(const char *s, size_t n, struct heads *h)
{
	h->version = true;
	h->v13 |= n == 2 && memcmp(s, "13", 2) == 0;
}

static void
protocol_item(const char *s, size_t n, struct heads *h)
{
	h->offered = true;
	if (is(s, n, "mqtt"))
		snprintf(h->mqtt, sizeof(h->mqtt), "%.*s", (int)n, s);
	else if (is(s, n, "mqttv3.1"))
		snprintf(h->mqtt31, sizeof(h->mqtt31), "%.*s", (int)n, s);
}

/* 16 bytes in base64: 22 characters of the alphabet and "==". */
static bool
key_valid(const char *s, size_t n)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

	if (n != WS_KEY_LEN || s[22] != '=' || s[23] != '=')
		return false;
	for (size_t i = 0; i < 22; i++)
		if (s[i] == '\0' || strchr(alphabet, s[i]) == NULL)
			return false;
	return true;
}

/* One header line: false if it is not one. */
static bool
header(const char *line, size_t n, struct heads *h, struct ws_request *r)
{
	const char *colon = memchr(line, ':', n), *v;
	size_t name, vn;

	if (colon == NULL || colon == line)
		return false;
	name = (size_t)(colon - line);
	for (size_t i = 0; i < name; i++)
		if (blank(line[i]) || (unsigned char)line[i] < 0x21 || line[i] == 0x7f)
			return false;
	v = colon + 1;
	vn = n - name - 1;
	while (vn > 0 && blank(*v)) {
		v++;
		vn--;
	}
	while (vn > 0 && blank(v[vn - 1]))
		vn--;
	if (is(line, name, "upgrade"))
		each_item(v, vn, upgrade_item, h);
	else if (is(line, name, "connection"))
		each_item(v, vn, connection_item, h);
	else if (is(line, name, "sec-websocket-version"))
		each_item(v, vn, version_item, h);
	else if (is(line, name, "sec-websocket-protocol"))
		each_item(v, vn, protocol_item, h);
	else if (is(line, name, "sec-websocket-key")) {
		h->keys++;
		h->key_ok = key_valid(v, vn);
		if (h->key_ok)
			memcpy(r->key, v, WS_KEY_LEN);
	}
	return true;
}

/* "GET TARGET HTTP/1.x" (x at least 1): the target kept for the log,
 * printable ASCII. */
static const char *
request_line(const char *line, size_t n, struct ws_request *r)
{
	const char *sp1 = memchr(line, ' ', n), *sp2, *version;
	size_t tn, vn;

	if (sp1 == NULL || (sp2 = memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - line))) == NULL ||
	    sp2 == sp1 + 1)
		return "not an HTTP request";
	if (sp1 - line != 3 || memcmp(line, "GET", 3) != 0)
		return "not a GET request";
	version = sp2 + 1;
	vn = n - (size_t)(version - line);
	if (vn != 8 || memcmp(version, "HTTP/1.", 7) != 0 || version[7] < '1' || version[7] > '9')
		return "not HTTP/1.1";
	tn = (size_t)(sp2 - sp1 - 1);
	if (tn > WS_PATH_MAX)
		tn = WS_PATH_MAX;
	for (size_t i = 0; i < tn; i++) {
		unsigned char c = (unsigned char)sp1[1 + i];

		r->path[i] = c > 0x20 && c < 0x7f ? (char)c : '?';
	}
	r->path[tn] = '\0';
	return NULL;
}

static void
refuse(struct ws_request *r, enum ws_status status, const char *why)
{
	r->status = status;
	r->why = why;
}

/* The headers' verdict, once all are read. */
static void
judge(const struct heads *h, struct ws_request *r)
{
	if (!h->upgrade)
		refuse(r, WS_BAD_REQUEST, "no Upgrade: websocket header (not a WebSocket request)");
	else if (!h->connection)
		refuse(r, WS_BAD_REQUEST, "no Connection: Upgrade header");
	else if (!h->version)
		refuse(r, WS_BAD_REQUEST, "no Sec-WebSocket-Version header");
	else if (!h->v13)
		refuse(r, WS_UPGRADE_REQUIRED, "Sec-WebSocket-Version is not 13");
	else if (h->keys == 0)
		refuse(r, WS_BAD_REQUEST, "no Sec-WebSocket-Key header");
	else if (h->keys > 1)
		refuse(r, WS_BAD_REQUEST, "more than one Sec-WebSocket-Key header");
	else if (!h->key_ok)
		refuse(r, WS_BAD_REQUEST, "Sec-WebSocket-Key is not 16 bytes in base64");
	else if (h->offered && h->mqtt[0] == '\0' && h->mqtt31[0] == '\0')
		refuse(r, WS_BAD_REQUEST, "no subprotocol mqtt or mqttv3.1 offered");
	else {
		r->status = WS_SWITCHING;
		snprintf(r->protocol, sizeof(r->protocol), "%s", h->mqtt[0] != '\0' ? h->mqtt :
		    h->mqtt31);
	}
}

void
ws_request_read(const char *head, size_t len, struct ws_request *r)
{
	const char *p = head, *end = head + len, *line, *why;
	struct heads h;
	size_t n;

	memset(r, 0, sizeof(*r));
	memset(&h, 0, sizeof(h));
	if (!next_line(&p, end, &line, &n)) {
		refuse(r, WS_BAD_REQUEST, "an empty request");
		return;
	}
	if ((why = request_line(line, n, r)) != NULL) {
		refuse(r, WS_BAD_REQUEST, why);
		return;
	}
	while (next_line(&p, end, &line, &n) && n > 0) {
		if (blank(line[0])) {
			refuse(r, WS_BAD_REQUEST, "a header folded over lines");
			return;
		}
		if (!header(line, n, &h, r)) {
			refuse(r, WS_BAD_REQUEST, "a malformed header line");
			return;
		}
	}
	judge(&h, r);
}

void
ws_request_too_large(struct ws_request *r)
{
	memset(r, 0, sizeof(*r));
	refuse(r, WS_TOO_LARGE, "request head larger than websockets_headers_size");
}

int
ws_accept(const char *key, char out[WS_ACCEPT_LEN + 1])
{
	char in[WS_KEY_LEN + sizeof(WS_GUID)];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int n;

	n = snprintf(in, sizeof(in), "%s%s", key, WS_GUID);
	if (n < 0 || (size_t)n >= sizeof(in) ||
	    EVP_Digest(in, (size_t)n, md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20)
		return -1;
	return EVP_EncodeBlock((unsigned char *)out, md, 20) == WS_ACCEPT_LEN ? 0 : -1;
}

static const char *
reason_phrase(enum ws_status s)
{
	switch (s) {
	case WS_SWITCHING:
		return "Switching Protocols";
	case WS_UPGRADE_REQUIRED:
		return "Upgrade Required";
	case WS_TOO_LARGE:
		return "Request Header Fields Too Large";
	case WS_BAD_REQUEST:
		break;
	}
	return "Bad Request";
}

size_t
ws_response(const struct ws_request *r, char *out, size_t size)
{
	char accept[WS_ACCEPT_LEN + 1], body[160];
	int n, bn;

	if (r->status == WS_SWITCHING) {
		if (ws_accept(r->key, accept) == -1)
			return 0;
		n = snprintf(out, size, "HTTP/1.1 101 Switching Protocols\r\n"
		    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
		    "Sec-WebSocket-Accept: %s\r\n%s%s%s\r\n", accept,
		    r->protocol[0] != '\0' ? "Sec-WebSocket-Protocol: " : "", r->protocol,
		    r->protocol[0] != '\0' ? "\r\n" : "");
	} else {
		bn = snprintf(body, sizeof(body), "MQTT over WebSockets: %s\n", r->why);
		if (bn < 0 || (size_t)bn >= sizeof(body))
			return 0;
		n = snprintf(out, size, "HTTP/1.1 %d %s\r\n%sContent-Type: text/plain\r\n"
		    "Content-Length: %d\r\nConnection: close\r\n\r\n%s", (int)r->status,
		    reason_phrase(r->status), r->status == WS_UPGRADE_REQUIRED ?
		    "Sec-WebSocket-Version: 13\r\n" : "", bn, body);
	}
	return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

/* --------------------------------------------------------------- frames */

int
ws_frame_read(const uint8_t *buf, size_t len, struct ws_frame *f)
{
	size_t ext, need;
	uint64_t v;

	if (len < 2)
		return 0;
	v = buf[1] & 0x7f;
	ext = v == 126 ? 2 : v == 127 ? 8 : 0;
	need = 2 + ext + ((buf[1] & 0x80) ? 4 : 0);
	if (len < need)
		return 0;
	f->fin = (buf[0] & 0x80) != 0;
	f->rsv = buf[0] & 0x70;
	f->opcode = buf[0] & 0x0f;
	f->masked = (buf[1] & 0x80) != 0;
	if (ext > 0)
		v = 0;
	for (size_t i = 0; i < ext; i++)
		v = v << 8 | buf[2 + i];
	if (v >> 63)
		return -1;
	f->len = v;
	memset(f->mask, 0, sizeof(f->mask));
	if (f->masked)
		memcpy(f->mask, buf + 2 + ext, 4);
	return (int)need;
}

size_t
ws_frame_write(uint8_t out[WS_HEAD_MAX], uint8_t opcode, uint64_t len)
{
	size_t n;

	out[0] = 0x80 | (opcode & 0x0f);
	if (len < 126) {
		out[1] = (uint8_t)len;
		return 2;
	}
	n = len <= 0xffff ? 2 : 8;
	out[1] = n == 2 ? 126 : 127;
	for (size_t i = 0; i < n; i++)
		out[2 + i] = (uint8_t)(len >> (8 * (n - 1 - i)));
	return 2 + n;
}

void
ws_unmask(uint8_t *out, const uint8_t *in, size_t n, const uint8_t mask[4], uint64_t pos)
{
	uint8_t m[8];
	uint64_t word, mword;
	size_t i = 0;

	for (size_t k = 0; k < 8; k++)
		m[k] = mask[(pos + k) % 4];
	/* Eight bytes at a time: a megabyte's payload took a millisecond a
	 * byte at a time. */
	memcpy(&mword, m, sizeof(mword));
	for (; i + 8 <= n; i += 8) {
		memcpy(&word, in + i, sizeof(word));
		word ^= mword;
		memcpy(out + i, &word, sizeof(word));
	}
	for (; i < n; i++)
		out[i] = in[i] ^ m[i % 8];
}

size_t
ws_close_payload(uint8_t out[WS_CONTROL_MAX], uint16_t code, const char *reason)
{
	size_t n = reason != NULL ? strlen(reason) : 0;

	if (code == 0)
		return 0;
	out[0] = (uint8_t)(code >> 8);
	out[1] = (uint8_t)code;
	if (n > WS_CONTROL_MAX - 2)
		n = WS_CONTROL_MAX - 2;
	memcpy(out + 2, reason != NULL ? reason : "", n);
	return 2 + n;
}

void
ws_rx_init(struct ws_rx *rx, uint64_t max_len)
{
	memset(rx, 0, sizeof(*rx));
	rx->max_len = max_len;
}

static bool
is_control(uint8_t opcode)
{
	return opcode >= WS_OP_CLOSE;
}

/* The close code the frame is refused with, and why; 0 if it is good. */
static uint16_t
frame_check(const struct ws_rx *rx, const struct ws_frame *f, const char **why)
{
	bool data = f->opcode == WS_OP_TEXT || f->opcode == WS_OP_BINARY;

	*why = f->rsv ? "a reserved bit set (no extension was agreed)" :
	    !f->masked ? "a frame not masked" :
	    f->opcode == WS_OP_CONTINUATION && !rx->in_message ?
	    "a continuation frame outside a message" :
	    data && rx->in_message ? "a new message before the last one ended" :
	    f->opcode > WS_OP_PONG || (f->opcode > WS_OP_BINARY && !is_control(f->opcode)) ?
	    "a reserved opcode" :
	    is_control(f->opcode) && !f->fin ? "a fragmented control frame" :
	    is_control(f->opcode) && f->len > WS_CONTROL_MAX ?
	    "a control frame of more than 125 bytes" : NULL;
	if (*why != NULL)
		return WS_CLOSE_PROTOCOL;
	if (f->opcode == WS_OP_TEXT) {
		*why = "a text frame (MQTT is binary)";
		return WS_CLOSE_UNSUPPORTED;
	}
	if (!is_control(f->opcode) && f->len > rx->max_len) {
		*why = "a frame longer than the listener takes";
		return WS_CLOSE_TOO_BIG;
	}
	return 0;
}

static void
fail(struct ws_rx *rx, struct ws_rx_out *o, size_t n, uint16_t code, const char *why)
{
	rx->ended = true;
	o->used = n;
	o->ev = WS_RX_FAIL;
	o->code = code;
	o->why = why;
}

/* The codes a close frame may carry (RFC 6455 7.4, and IANA's registry:
 * 1012 to 1014); 1005, 1006 and 1015 are never sent. */
static bool
close_code_valid(uint16_t c)
{
	return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

/* A control frame read whole: the event it is. */
static void
control_done(struct ws_rx *rx, struct ws_rx_out *o, size_t n)
{
	size_t len = (size_t)rx->f.len;

	o->ctl = rx->ctl;
	o->ctl_len = len;
	if (rx->f.opcode == WS_OP_PING) {
		o->ev = WS_RX_PING;
		return;
	}
	if (rx->f.opcode == WS_OP_PONG) {
		o->ev = WS_RX_PONG;
		return;
	}
	if (len == 1) {
		fail(rx, o, n, WS_CLOSE_PROTOCOL, "a close frame of 1 byte");
		return;
	}
	o->code = len >= 2 ? (uint16_t)(rx->ctl[0] << 8 | rx->ctl[1]) : 0;
	if (len >= 2 && !close_code_valid(o->code)) {
		fail(rx, o, n, WS_CLOSE_PROTOCOL, "a close code a peer may not send");
		return;
	}
	if (len > 2 && !utf8_valid(rx->ctl + 2, len - 2)) {
		fail(rx, o, n, 1007, "a close reason that is not UTF-8");
		return;
	}
	rx->ended = true;
	o->used = n;
	o->ev = WS_RX_CLOSE;
}

/* Takes bytes of a frame header: true once it is whole (and checked:
 * false with FAIL if it breaks a rule). */
static bool
take_head(struct ws_rx *rx, const uint8_t *in, size_t n, struct ws_rx_out *o)
{
	size_t had = rx->nhead, add = n - o->used;
	const char *why;
	uint16_t code;
	int hl;

	if (add > WS_HEAD_MAX - had)
		add = WS_HEAD_MAX - had;
	memcpy(rx->head + had, in + o->used, add);
	if ((hl = ws_frame_read(rx->head, had + add, &rx->f)) == 0) {
		rx->nhead = had + add;
		o->used += add;
		return false;
	}
	if (hl < 0) {
		fail(rx, o, n, WS_CLOSE_PROTOCOL, "a frame length with its top bit set");
		return false;
	}
	o->used += (size_t)hl - had;
	rx->nhead = 0;
	if ((code = frame_check(rx, &rx->f, &why)) != 0) {
		fail(rx, o, n, code, why);
		return false;
	}
	if (!is_control(rx->f.opcode))
		rx->in_message = !rx->f.fin;
	rx->in_frame = true;
	rx->pos = 0;
	return true;
}

void
ws_rx_feed(struct ws_rx *rx, const uint8_t *in, size_t n, uint8_t *out, struct ws_rx_out *o)
{
	uint64_t left;
	size_t take;

	memset(o, 0, sizeof(*o));
	o->ev = WS_RX_MORE;
	if (rx->ended) {
		o->used = n;
		return;
	}
	for (;;) {
		if (!rx->in_frame && (o->used == n || !take_head(rx, in, n, o)))
			return;
		left = rx->f.len - rx->pos;
		take = n - o->used < left ? n - o->used : (size_t)left;
		if (is_control(rx->f.opcode))
			ws_unmask(rx->ctl + rx->pos, in + o->used, take, rx->f.mask, rx->pos);
		else {
			ws_unmask(out + o->len, in + o->used, take, rx->f.mask, rx->pos);
			o->len += take;
		}
		o->used += take;
		rx->pos += take;
		if (rx->pos < rx->f.len)
			return;		/* the input is used up */
		rx->in_frame = false;
		if (is_control(rx->f.opcode)) {
			control_done(rx, o, n);
			return;
		}
	}
}
