/* The JSON-lines protocol of the original broker (PROTOCOL-json.md):
 * decoding of client lines and encoding of broker lines.  Pure: no I/O,
 * no state, so that unit tests and fuzzers drive it directly.
 *
 * Framing is the caller's job.  A client line reaches jl_parse() and
 * jl_parse_login() without its line ending: the caller cuts at '\n' and
 * strips one '\r' before it, so "\n" and "\r\n" both work.  The caller
 * also bounds the line length.  Every encoder appends to a struct wbuf;
 * broker lines end in "\r\n", a dead-letter record has no line ending. */
#ifndef BROKER_JSON_CODEC_H
#define BROKER_JSON_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "marshal.h"

/* The plain lines of the protocol, spelled as the original did. */
#define JL_TEXT_PLEASE_LOGIN	"Please login!"
#define JL_TEXT_LOGGED_IN	"Succesfully logged in!"
#define JL_TEXT_OK		"OK"
#define JL_TEXT_INVALID_JSON	"INVALID JSON"
#define JL_TEXT_UNKNOWN_COMMAND	"UNKNOWN COMMAND"
#define JL_TEXT_NOT_AUTHORIZED	"not authorized"	/* after ERROR */

#define JL_USERNAME_MAX		256	/* bytes */

enum jl_cmd {
	JL_INVALID_JSON,	/* not one JSON text (or a number out of range) */
	JL_UNKNOWN_COMMAND,	/* JSON, but not an object with a known "type" */
	JL_BAD_REQUEST,		/* a known type with missing or bad fields */
	JL_PUB,			/* publisher: topic, payload */
	JL_PUBREL,		/* publisher: msg_id */
	JL_SUB,			/* consumer: topic (a filter) */
	JL_UNSUB,		/* consumer: topic (a filter) */
	JL_PUBREC,		/* consumer: msg_id, topic */
	JL_PUBCOMP,		/* consumer: msg_id, topic */
};

struct jl_request {
	enum jl_cmd	 cmd;
	char		*topic;		/* malloc'd, checked; NULL if none */
	uint64_t	 msg_id;	/* 0 .. INT64_MAX */
	uint8_t		*payload;	/* PUB: malloc'd, NUL after the end */
	size_t		 payload_len;
	bool		 payload_json;	/* payload is JSON text, not a string */
	const char	*type;		/* "PUB", ... when the type is known, else NULL */
	const char	*error;		/* static reason when cmd < JL_PUB */
};

/*
 * Decodes one client line.  Returns out->cmd.  Only JL_PUB .. JL_PUBCOMP
 * fill the fields; the others set only out->type and out->error.  Always
 * call jl_request_free() afterwards (it is harmless on any result).
 *
 * For JL_BAD_REQUEST, out->type is the command and out->error reads after
 * it: "PUB" "without msg", "SUB" "with an empty topic".  For
 * JL_INVALID_JSON and JL_UNKNOWN_COMMAND out->type is NULL and out->error
 * stands alone ("not valid JSON", "unknown type").
 *
 * A PUB "msg" that is a JSON string is stored as the string's bytes
 * (payload_json false; it may contain NUL); any other JSON value is stored
 * as compact JSON text, keys in the order sent, numbers in their shortest
 * exact form (payload_json true).  PUB, PUBREC and PUBCOMP topics must be
 * topic names (no wildcards); SUB and UNSUB take filters.  Key order does
 * not matter, unknown keys are ignored, a repeated key counts once (the
 * last).  The "type" is case-sensitive.  msgId is an integer >= 0.
 */
enum jl_cmd jl_parse(const char *line, size_t len, struct jl_request *out);
/* The same, and a PUB topic or SUB filter of more than max_levels levels
 * (topic_levels(); 0: no limit) is a JL_BAD_REQUEST.  UNSUB, PUBREC and
 * PUBCOMP are not limited: they name what exists already. */
enum jl_cmd jl_parse_limited(const char *line, size_t len, size_t max_levels,
    struct jl_request *out);
void jl_request_free(struct jl_request *r);

/*
 * A consumer's login line: lower-cased, split on white space, it must be
 * exactly "log USERNAME".  On success *username is the malloc'd,
 * lower-cased name.  Refused: NUL bytes or malformed UTF-8 anywhere,
 * a name over JL_USERNAME_MAX bytes or with control characters.
 * Lower-casing and white space are Unicode's, as Elixir's
 * String.downcase/1 and String.split/1 have them (no splitting at
 * non-breaking spaces).
 */
bool jl_parse_login(const char *line, size_t len, char **username);
/*
 * The same with a password, for a broker that checks them: "log USERNAME
 * PASSWORD", the user name as above, the password the rest of the line
 * after the white space that follows the user name, as typed (it may
 * hold blanks; its case is kept).  Without one, *password is NULL.  Both
 * malloc'd.
 */
bool jl_parse_login_password(const char *line, size_t len, char **username,
    char **password);
/* The length of line that may be shown (dead-lettered): without the
 * password of a login line. */
size_t jl_login_public_len(const char *line, size_t len);

/* text "\r\n"; a CR or LF inside text is sent as a space. */
void jl_enc_text(struct wbuf *w, const char *text);
/* "ERROR " text "\r\n" */
void jl_enc_error(struct wbuf *w, const char *text);
/* {"type":"PUBREC","msgId":N}\r\n and likewise PUBCOMP: the answers to a
 * publisher. */
void jl_enc_pubrec(struct wbuf *w, uint64_t msg_id);
void jl_enc_pubcomp(struct wbuf *w, uint64_t msg_id);
/*
 * The PUBREL to a consumer: {"type":"PUBREL","msgId":N,"topic":T}\r\n.
 * The original broker sent no topic; a consumer on several topics needs
 * it, since msgId is a sequence number per topic (its clients ignore keys
 * they do not know).  topic NULL omits it.  Returns -1 and appends
 * nothing if topic is not UTF-8.
 */
int jl_enc_pubrel(struct wbuf *w, uint64_t msg_id, const char *topic);

/*
 * A delivery: {"type":"PUB","topic":T,"msg":M,"msgId":N}\r\n.  M is the
 * payload as is when is_json (stored JSON text), else a JSON string when
 * the payload is UTF-8, else its base64 with ,"encoding":"base64" after
 * msgId.  A payload marked JSON that cannot be (empty, or with CR/LF) is
 * sent as a string.  Returns -1 and appends nothing if topic is not UTF-8.
 */
int jl_enc_deliver(struct wbuf *w, const char *topic, uint64_t msg_id,
    const void *payload, size_t len, bool is_json);

#endif
