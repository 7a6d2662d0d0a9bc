/* What the JSON-lines ports refuse, in the original broker's words:
 * INVALID JSON for a line that is not JSON, UNKNOWN COMMAND for anything
 * that is not a complete, valid command (the connection stays open), and
 * the line to the dead-letter topic with the reason. */
#include <stdio.h>

#include "json/json_int.h"

/* What a client sent, to the dead-letter topic: reason, and detail (may
 * be NULL) saying what exactly was wrong. */
void
json_refused(struct client *cl, const char *reason, const char *detail, const char *topic,
    const void *bytes, size_t len)
{
	struct json_conn *jc = json_conn(cl);
	struct deadletter d = {
		.client_id = cl->id, .reason = reason, .detail = detail,
		.client = jc != NULL && jc->username ? jc->username : cl->desc, .port = cl->port,
		.topic = topic, .bytes = bytes, .len = len,
	};

	(void)dlq_publish(cl->b, &d, NULL);	/* a failure is logged */
}

/* A request the client may not make: UNKNOWN COMMAND, the original
 * broker's answer to anything but a complete known command; the
 * connection stays open.  bytes (the line, or a PUB's message) go to the
 * dead-letter topic. */
void
json_unknown(struct client *cl, const char *reason, const char *detail, const char *topic,
    const void *bytes, size_t len)
{
	json_line(cl, JL_TEXT_UNKNOWN_COMMAND);
	json_refused(cl, reason, detail, topic, bytes, len);
}

/* A JSON-lines line that is not a command for this port. */
void
json_refuse(struct client *cl, const struct jl_request *r, const char *line, size_t len)
{
	char detail[160];

	/* A login line where none is taken: not its password. */
	len = jl_login_public_len(line, len);
	switch (r->cmd) {
	case JL_INVALID_JSON:
		json_line(cl, JL_TEXT_INVALID_JSON);
		json_refused(cl, "invalid_json", r->error, NULL, line, len);
		return;
	case JL_UNKNOWN_COMMAND:
		snprintf(detail, sizeof(detail), "%s", r->error);
		break;
	case JL_BAD_REQUEST:
		snprintf(detail, sizeof(detail), "%s %s", r->type, r->error);
		break;
	default:	/* a command of the other port */
		snprintf(detail, sizeof(detail), "%s on the %s port", r->type,
		    json_conn(cl)->consumer ? "consumer" : "publisher");
		break;
	}
	json_unknown(cl, "unknown_command", detail, NULL, line, len);
}
