/* JSON-lines' own: what its files share, not an interface. */
#ifndef BROKER_JSON_JSON_INT_H
#define BROKER_JSON_JSON_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <bsd/sys/tree.h>

#include "core/core.h"
#include "json/json.h"
#include "json/json_codec.h"

/* A publisher's message between PUB and PUBCOMP: msgId -> topic. */
struct pubmap {
	RB_ENTRY(pubmap) entry;
	uint64_t	 msg_id;
	struct child	*child;		/* its topic, pinned (child->pins) */
	bool		 stored;	/* its PUBREC was given */
	unsigned	 releases;	/* PUBRELs that came before it was stored */
};
RB_HEAD(pubmap_tree, pubmap);
TAILQ_HEAD(jl_answer_list, jl_answer);

/* A connection's state (client->pstate). */
struct json_conn {
	bool		 consumer;	/* the consumer port */
	bool		 discarding;	/* skipping the rest of an oversized line */
	uint64_t	 lines;		/* lines read */
	uint64_t	 idle_lines;	/* ... when the idle timer was armed */
	size_t		 scanned;	/* input bytes known to hold no LF */
	/* consumers */
	char		*username;	/* after login */
	unsigned	 login_tries;
	/* publishers */
	bool		 login_pending;	/* a password file applies: the first line may
					 * (or, for an anonymous one, must) be a login */
	char		*user;		/* the checked user name; NULL: anonymous */
	uint64_t	 next_msg_id;
	struct pubmap_tree pending;
	struct jl_answer_list answers;	/* answers.c */
};

static inline struct json_conn *
json_conn(const struct client *cl)
{
	return cl->pstate;
}

/* answers.c: a publisher's answers in the order of its lines.  A PUB or
 * PUBREL whose answer comes later takes its place (expect); the answer
 * fills it (ready).  json_write: an answer given at once, after those
 * before it. */
void	 json_answer_expect(struct client *cl, uint64_t msg_id, bool pubrec);
void	 json_answer_ready(struct client *cl, uint64_t msg_id, bool pubrec, const void *data,
	    size_t len);
void	 json_write(struct client *cl, const void *data, size_t len);
void	 json_answers_free(struct json_conn *jc);
/* lines.c */
void	 json_read_lines(struct client *cl, void (*line)(struct client *, const char *, size_t));
void	 json_update_idle(struct client *cl);
void	 json_idle(struct client *cl);
void	 json_line(struct client *cl, const char *text);
void	 json_error(struct client *cl, const char *text);
/* The same for what the client sent (a line over message_size_limit):
 * the close is a notice. */
void	 json_error_fault(struct client *cl, const char *text);
struct json_conn *json_conn_new(struct client *cl, bool consumer);
/* login.c */
void	 json_refuse_anonymous(struct client *cl);
bool	 json_parse_login(struct client *cl, const char *line, size_t len, char **name,
	    char **password);
/* true: let in (*checked: with a checked user name); false: refused, the
 * connection ends.  The password is wiped. */
bool	 json_login(struct client *cl, const char *name, char *password, bool *checked);
/* Whether a consumer may resume session s (answered and closing if not). */
bool	 json_may_resume(struct client *cl, const struct session *s, const char *name);
void	 json_denied(struct client *cl, const char *what, const char *topic);
/* refuse.c */
void	 json_refused(struct client *cl, const char *reason, const char *detail,
	    const char *topic, const void *bytes, size_t len);
void	 json_unknown(struct client *cl, const char *reason, const char *detail,
	    const char *topic, const void *bytes, size_t len);
void	 json_refuse(struct client *cl, const struct jl_request *r, const char *line,
	    size_t len);

#endif
