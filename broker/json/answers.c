/* A JSON-lines publisher's answers, in the order of its lines.  The
 * broker picks a PUB's msgId, so a client that sends several lines before
 * reading tells which PUBREC answers which PUB by their order alone, as
 * with the original broker, which answered each line before reading the
 * next.  Here a PUB's PUBREC waits for its topicd, and the topicds of two
 * topics answer in any order: an answer that is not the next one to go
 * waits in the queue, ready, until those before it are. */
#include <stdlib.h>
#include <string.h>

#include "json/json_int.h"
#include "xmalloc.h"

struct jl_answer {
	TAILQ_ENTRY(jl_answer) entry;
	uint64_t	 msg_id;	/* of a PUBREC or PUBCOMP still to come */
	bool		 pubrec;
	bool		 ready;
	size_t		 len;
	uint8_t		*text;		/* once ready */
};

static void
flush(struct client *cl)
{
	struct json_conn *jc = json_conn(cl);
	struct jl_answer *a;

	while ((a = TAILQ_FIRST(&jc->answers)) != NULL && a->ready) {
		TAILQ_REMOVE(&jc->answers, a, entry);
		client_write(cl, a->text, a->len);
		free(a->text);
		free(a);
	}
}

void
json_answer_expect(struct client *cl, uint64_t msg_id, bool pubrec)
{
	struct json_conn *jc = json_conn(cl);
	struct jl_answer *a = xcalloc(1, sizeof(*a));

	a->msg_id = msg_id;
	a->pubrec = pubrec;
	TAILQ_INSERT_TAIL(&jc->answers, a, entry);
}

static void
set_text(struct jl_answer *a, const void *data, size_t len)
{
	a->text = xmalloc(len);
	memcpy(a->text, data, len);
	a->len = len;
	a->ready = true;
}

void
json_answer_ready(struct client *cl, uint64_t msg_id, bool pubrec, const void *data,
    size_t len)
{
	struct json_conn *jc = json_conn(cl);
	struct jl_answer *a;

	TAILQ_FOREACH(a, &jc->answers, entry)
		if (!a->ready && a->msg_id == msg_id && a->pubrec == pubrec)
			break;
	if (a == NULL) {		/* not expected: nothing waits for it */
		json_write(cl, data, len);
		return;
	}
	set_text(a, data, len);
	flush(cl);
}

void
json_write(struct client *cl, const void *data, size_t len)
{
	struct json_conn *jc = json_conn(cl);
	struct jl_answer *a;

	if (jc == NULL || jc->consumer || TAILQ_EMPTY(&jc->answers)) {
		client_write(cl, data, len);
		return;
	}
	a = xcalloc(1, sizeof(*a));
	set_text(a, data, len);
	TAILQ_INSERT_TAIL(&jc->answers, a, entry);
}

void
json_answers_free(struct json_conn *jc)
{
	struct jl_answer *a;

	while ((a = TAILQ_FIRST(&jc->answers)) != NULL) {
		TAILQ_REMOVE(&jc->answers, a, entry);
		free(a->text);
		free(a);
	}
}
