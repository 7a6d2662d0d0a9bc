/* Logins on the JSON-lines ports when clients are checked: `log USERNAME
 * PASSWORD` against the password file, and anonymous clients where they
 * may not come in.  A refusal is `ERROR not authorized`, then the
 * connection ends; after a wrong password the answer waits (a delay that
 * grows with the failures from the client's address). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/json_int.h"
#include "log.h"

static void
not_authorized(struct client *cl, uint64_t delay, const char *why)
{
	struct wbuf w;

	wbuf_init(&w);
	jl_enc_error(&w, JL_TEXT_NOT_AUTHORIZED);
	client_refuse(cl, delay, w.data, w.len, why);
	wbuf_free(&w);
}

void
json_refuse_anonymous(struct client *cl)
{
	cl->b->anonymous_refused++;
	log_notice("client %s: anonymous client refused: allow_anonymous is off%s", cl->desc,
	    auth_has_passwords(cl->auth) ? "" : " (no password_file checks user names)");
	not_authorized(cl, 0, "not authorized");
}

/* Whether the line is a login to check (a password file applies) and
 * then name and password; else NULL, NULL. */
bool
json_parse_login(struct client *cl, const char *line, size_t len, char **name,
    char **password)
{
	*password = NULL;
	if (auth_has_passwords(cl->auth))
		return jl_parse_login_password(line, len, name, password);
	return jl_parse_login(line, len, name);
}

bool
json_login(struct client *cl, const char *name, char *password, bool *checked)
{
	size_t len = password != NULL ? strlen(password) : 0;
	enum auth_verdict v = auth_login(cl->auth, name, password, len, password != NULL);

	if (password != NULL)
		explicit_bzero(password, len);
	*checked = v == AUTH_USER;
	switch (v) {
	case AUTH_USER:
	case AUTH_ANONYMOUS:
		return true;
	case AUTH_ANONYMOUS_REFUSED:
		json_refuse_anonymous(cl);
		return false;
	case AUTH_BAD_LOGIN:
		break;
	}
	not_authorized(cl, client_login_failed(cl, name, password != NULL ?
	    "wrong password or unknown user" : "no password"), "login failed");
	return false;
}

/* A consumer's session that a checked login used last belongs to the
 * password file and ACL it was checked against: with
 * per_listener_settings, a login on a listener with others (perhaps no
 * check at all) may not take it over.  Without, every listener has the
 * same and nothing changes. */
bool
json_may_resume(struct client *cl, const struct session *s, const char *name)
{
	if (s == NULL || s->user == NULL || s->auth == cl->auth)
		return true;
	log_notice("client %s: user %s's session was logged in on listener %s, whose "
	    "password file and ACL are not this listener's: refused", cl->desc, name,
	    s->listener != NULL ? s->listener : "(the global settings)");
	not_authorized(cl, 0, "session of another listener");
	return false;
}

/* A PUB or SUB the ACL denies: UNKNOWN COMMAND, as for any request the
 * client may not make; the line is not dead-lettered (it would show what
 * the client may not write to whoever reads the dead letters). */
void
json_denied(struct client *cl, const char *what, const char *topic)
{
	if (strcmp(what, "SUB") == 0)
		cl->b->subscribes_denied++;
	else
		cl->b->publishes_denied++;
	log_info("client %s: %s %.64s%s denied by the ACL", cl->desc, what, topic,
	    strlen(topic) > 64 ? "..." : "");
	json_line(cl, JL_TEXT_UNKNOWN_COMMAND);
}
