/* The broker's struct auth from its settings: loaded with the
 * configuration (start-up, -t, SIGHUP), swapped in at a reload, and the
 * start-up line that says who gets in. */
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "broker.h"
#include "log.h"
#include "xmalloc.h"

static bool
loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return false;
}

/* Is every listener on a loopback address?  (Every address bind_address
 * names is; a name that does not resolve is not.) */
bool
settings_loopback_only(const struct settings *s)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE };
	struct addrinfo *res, *ai;
	bool all = true;

	if (getaddrinfo(s->bind_address, NULL, &hints, &res) != 0)
		return false;
	for (ai = res; ai != NULL; ai = ai->ai_next)
		all &= loopback(ai->ai_addr);
	freeaddrinfo(res);
	return all;
}

int
broker_load_auth(const struct settings *s, struct auth *a, struct conf_errors *errs)
{
	char *pw = s->password_file ? broker_absolute(s->password_file) : NULL;
	char *acl = s->acl_file ? broker_absolute(s->acl_file) : NULL;
	struct auth_config cfg = {
		.password_file = pw, .acl_file = acl, .allow_anonymous = s->allow_anonymous,
		.loopback_only = s->allow_anonymous != NULL || settings_loopback_only(s),
	};
	int n = auth_load(a, &cfg, errs);

	free(pw);
	free(acl);
	return n;
}

/* One line at start-up when clients are checked at all. */
void
broker_log_auth(const struct broker *b)
{
	const struct settings *s = &b->set;
	const struct auth *a = &b->auth;

	if (a->anonymous_auto && !a->anonymous)
		log_notice("anonymous clients are refused: bind_address %s is not a loopback "
		    "address and allow_anonymous is not set (set it to true to let them in)",
		    s->bind_address);
	else if (a->passwd == NULL && a->acl == NULL && a->anonymous)
		return;
	log_notice("access: %s%s%s, %s%s, anonymous clients %s",
	    a->passwd ? "password file " : "no password file",
	    a->passwd ? s->password_file : "", a->passwd ? "" : " (user names are not checked)",
	    a->acl ? "ACL " : "no ACL", a->acl ? s->acl_file : "",
	    a->anonymous ? "let in" : "refused");
}

/* SIGHUP: the files were read again into fresh (they are good). */
void
broker_reload_auth(struct broker *b, struct auth *fresh)
{
	bool changed = auth_replace(&b->auth, fresh);

	if (b->auth.passwd != NULL)
		log_info("reload: password file %s read: %zu users", b->set.password_file,
		    passwd_count(b->auth.passwd));
	if (changed) {
		log_notice("reload: the ACL changed; online sessions are brought in line");
		sessions_acl_changed(b);
	}
}
