/* WebSockets (RFC 6455), the server's side, pure: no I/O, no libevent,
 * nothing of a connection but what a caller keeps in the structures
 * below.  core/wsconn.c puts it under a client connection; unit tests
 * (test_ws.c) and a fuzzer (fuzz_ws.c) drive it directly.
 *
 * The opening handshake.  A client's HTTP request head arrives in pieces:
 * ws_head_end() says when it is whole (through its empty line), and
 * ws_request_read() reads it: a GET of HTTP/1.1 or later, any path, with
 * "Upgrade: websocket", "Connection" naming "upgrade" (both compared
 * without regard to case, in comma-separated lists, the headers possibly
 * repeated), "Sec-WebSocket-Version: 13" and a Sec-WebSocket-Key of 16
 * bytes in base64.  Of the subprotocols a client offers
 * (Sec-WebSocket-Protocol), "mqtt" is taken, else "mqttv3.1", each as the
 * client spelled it; a client that offers others only is refused, one
 * that offers none is taken without.  Extensions are never agreed to
 * (permessage-deflate is not spoken): a client that offers them goes on
 * without.  ws_response() writes the answer: 101 with
 * Sec-WebSocket-Accept, or a refusal (400; 426 with the version spoken,
 * for another version; 431 for a head too large) with a line of text
 * that says why.
 *
 * Frames.  ws_frame_read() and ws_frame_write() are a frame's header both
 * ways; ws_unmask() its payload.  struct ws_rx is what a server reads
 * from a client: the payload of binary frames and of their continuation
 * frames, as one stream of bytes (an MQTT packet may span frames and a
 * frame hold several), unmasked; between them pings, pongs and a close,
 * for the caller to answer; and the first frame that breaks a rule,
 * with the close code it is answered with: a frame not masked, with a
 * reserved bit or opcode, a continuation of nothing, a data frame in the
 * middle of a message, a control frame fragmented or of more than 125
 * bytes, a close frame of 1 byte or with a code a peer may not send
 * (1002); a text frame (1003: MQTT is binary); a frame longer than the
 * caller's limit (1009).  A frame's header may itself come in pieces.
 */
#ifndef BROKER_CORE_WSCODEC_H
#define BROKER_CORE_WSCODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------ handshake */

#define WS_KEY_LEN	24	/* a Sec-WebSocket-Key: 16 bytes in base64 */
#define WS_ACCEPT_LEN	28	/* a Sec-WebSocket-Accept: a SHA-1 in base64 */
#define WS_PATH_MAX	128	/* of the path kept for the log (longer: cut) */
#define WS_PROTOCOL_MAX	15	/* of the subprotocol chosen */

/* A request's answer: 101, or the HTTP status of a refusal. */
enum ws_status {
	WS_SWITCHING = 101,
	WS_BAD_REQUEST = 400,
	WS_UPGRADE_REQUIRED = 426,	/* another version than 13 */
	WS_TOO_LARGE = 431,		/* a head over the caller's size */
};

struct ws_request {
	enum ws_status	 status;
	const char	*why;		/* of a refusal, for the log and the answer */
	char		 key[WS_KEY_LEN + 1];
	char		 protocol[WS_PROTOCOL_MAX + 1];	/* "mqtt", "mqttv3.1"; "": none */
	char		 path[WS_PATH_MAX + 1];
};

/* The length of the request head at the start of buf (len bytes),
 * through the empty line that ends it (CRLF CRLF, or LF LF), or 0 while it
 * has not come whole.  *scanned, 0 for a new request, keeps how far the
 * search went: a head that comes a byte at a time is searched once. */
size_t	 ws_head_end(const uint8_t *buf, size_t len, size_t *scanned);
/* Reads a whole head (len bytes, its empty line included): r->status is
 * WS_SWITCHING, or a refusal with r->why. */
void	 ws_request_read(const char *head, size_t len, struct ws_request *r);
/* A head over the caller's size: the refusal to give. */
void	 ws_request_too_large(struct ws_request *r);
/* The Sec-WebSocket-Accept of key, base64(SHA-1(key GUID)), into out
 * with a NUL; -1 if libcrypto fails. */
int	 ws_accept(const char *key, char out[WS_ACCEPT_LEN + 1]);
/* The answer to r into out (size bytes), its length; 0 if it does not
 * fit or the accept value cannot be computed. */
size_t	 ws_response(const struct ws_request *r, char *out, size_t size);

/* --------------------------------------------------------------- frames */

enum ws_opcode {
	WS_OP_CONTINUATION = 0x0,
	WS_OP_TEXT = 0x1,
	WS_OP_BINARY = 0x2,
	WS_OP_CLOSE = 0x8,
	WS_OP_PING = 0x9,
	WS_OP_PONG = 0xa,
};

/* Close codes (RFC 6455 7.4.1). */
#define WS_CLOSE_NORMAL		1000
#define WS_CLOSE_GOING_AWAY	1001
#define WS_CLOSE_PROTOCOL	1002
#define WS_CLOSE_UNSUPPORTED	1003
#define WS_CLOSE_TOO_BIG	1009

#define WS_HEAD_MAX	14	/* bytes of a frame header, at most */
#define WS_CONTROL_MAX	125	/* bytes of a control frame's payload, at most */

struct ws_frame {
	bool		 fin;
	uint8_t		 rsv;		/* RSV1..3 as in the first byte (mask 0x70) */
	uint8_t		 opcode;
	bool		 masked;
	uint8_t		 mask[4];
	uint64_t	 len;		/* of the payload */
};

/* Reads a frame header from buf (len bytes): its length (2 to 14) and
 * *f; 0 while buf holds only part of it; -1 for a 64-bit length with its
 * top bit set, which RFC 6455 5.2 forbids. */
int	 ws_frame_read(const uint8_t *buf, size_t len, struct ws_frame *f);
/* Writes the header of a final, unmasked frame (a server's) with the
 * payload length len into out: its length, 2, 4 or 10. */
size_t	 ws_frame_write(uint8_t out[WS_HEAD_MAX], uint8_t opcode, uint64_t len);
/* out[i] = in[i] XOR mask[(pos + i) % 4] for n bytes: pos is the offset
 * of in[0] in the frame's payload.  in may be out. */
void	 ws_unmask(uint8_t *out, const uint8_t *in, size_t n, const uint8_t mask[4],
	    uint64_t pos);
/* The payload of a close frame: the code (or none, 0) and reason. */
size_t	 ws_close_payload(uint8_t out[WS_CONTROL_MAX], uint16_t code, const char *reason);

/* What ws_rx_feed() stopped for. */
enum ws_rx_event {
	WS_RX_MORE,		/* the input is used up: feed more */
	WS_RX_PING,		/* answer with a pong of the same payload */
	WS_RX_PONG,		/* nothing to do */
	WS_RX_CLOSE,		/* the client closes: answer with a close, end */
	WS_RX_FAIL,		/* a broken rule: close with code, end */
};

/* The reading side of a connection, after the handshake. */
struct ws_rx {
	uint64_t	 max_len;	/* of a frame's payload: longer, 1009 */
	uint8_t		 head[WS_HEAD_MAX];	/* a header come in part */
	size_t		 nhead;
	struct ws_frame	 f;		/* the frame being read... */
	bool		 in_frame;
	uint64_t	 pos;		/* ... and how much of its payload */
	bool		 in_message;	/* continuation frames are due */
	bool		 ended;		/* closed or failed: input is ignored */
	uint8_t		 ctl[WS_CONTROL_MAX];	/* a control frame's payload */
};

struct ws_rx_out {
	size_t		 used;		/* input bytes taken */
	size_t		 len;		/* payload bytes written to out */
	enum ws_rx_event ev;
	const uint8_t	*ctl;		/* PING, PONG, CLOSE: the payload (in rx) */
	size_t		 ctl_len;
	uint16_t	 code;		/* CLOSE: the client's code, 0 for none;
					 * FAIL: the code to close with */
	const char	*why;		/* FAIL: the rule broken */
};

void	 ws_rx_init(struct ws_rx *rx, uint64_t max_len);
/* Reads n bytes of in until they are used up or an event needs the
 * caller: the payload of data frames, unmasked, goes to out, which has
 * room for n bytes.  After CLOSE or FAIL all input is taken and ignored. */
void	 ws_rx_feed(struct ws_rx *rx, const uint8_t *in, size_t n, uint8_t *out,
	    struct ws_rx_out *o);

#endif
