/* The broker's struct auth from its settings: loaded with the
 * configuration (start-up, -t, SIGHUP), swapped in at a reload, and the
 * start-up line that says who gets in. */
#include <netdb.h>
#include <stdio.h>
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

static bool
address_loopback(const char *addr)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE };
	struct addrinfo *res, *ai;
	bool all = true;

	if (getaddrinfo(addr, NULL, &hints, &res) != 0)
		return false;
	for (ai = res; ai != NULL; ai = ai->ai_next)
		all &= loopback(ai->ai_addr);
	freeaddrinfo(res);
	return all;
}

/* A listener block's address: its own, else bind_address. */
static bool
block_loopback(const struct settings *s, const struct listener_conf *c)
{
	unsigned port;
	char *addr;
	bool lo;

	if (c->listener == NULL || settings_listener(c->listener, &port, &addr) == -1)
		return false;		/* a bad listener line (its error is reported) */
	lo = address_loopback(addr != NULL ? addr : s->bind_address);
	free(addr);
	return lo;
}

/* The first listener off a loopback address, for the log ("bind_address
 * 0.0.0.0", "listener 9001 0.0.0.0"), or NULL when every address
 * bind_address and the listener blocks name is a loopback one (a name
 * that does not resolve is not). */
static const char *
first_public(const struct settings *s, char *buf, size_t size)
{
	if (!address_loopback(s->bind_address)) {
		snprintf(buf, size, "bind_address %s", s->bind_address);
		return buf;
	}
	for (size_t i = 0; i < s->listeners.n; i++) {
		const struct listener_conf *c = s->listeners.v[i];

		if (!block_loopback(s, c)) {
			snprintf(buf, size, "listener %s", c->listener != NULL ? c->listener : "?");
			return buf;
		}
	}
	return NULL;
}

bool
settings_loopback_only(const struct settings *s)
{
	char buf[128];

	return first_public(s, buf, sizeof(buf)) == NULL;
}

/* With per_listener_settings, a listener block's own password file, ACL
 * and allow_anonymous (false unless the block says true, as in
 * mosquitto).  checked: loaded to check them just before (its warnings
 * were logged then). */
int
broker_load_listener_auth(const struct settings *s, const struct listener_conf *c,
    struct auth *a, bool checked, struct conf_errors *errs)
{
	char *pw = c->password_file ? broker_absolute(c->password_file) : NULL;
	char *acl = c->acl_file ? broker_absolute(c->acl_file) : NULL;
	char *psk = c->psk_file ? broker_absolute(c->psk_file) : NULL;
	struct auth_config cfg = {
		.password_file = pw, .acl_file = acl, .psk_file = psk,
		.allow_anonymous = c->allow_anonymous != NULL ? c->allow_anonymous : "false",
		.username_as_clientid = c->use_username_as_clientid,
		.loopback_only = block_loopback(s, c), .checked = checked,
	};
	int n = auth_load(a, &cfg, errs);

	free(pw);
	free(acl);
	free(psk);
	return n;
}

/* The global password file, ACL and allow_anonymous; when that is not
 * set, anonymous clients are let in if every listener of s is on a
 * loopback address. */
static int
load_global_auth(const struct settings *s, struct auth *a, bool checked,
    struct conf_errors *errs)
{
	char *pw = s->password_file ? broker_absolute(s->password_file) : NULL;
	char *acl = s->acl_file ? broker_absolute(s->acl_file) : NULL;
	char *psk = s->psk_file ? broker_absolute(s->psk_file) : NULL;
	struct auth_config cfg = {
		.password_file = pw, .acl_file = acl, .psk_file = psk,
		.allow_anonymous = s->allow_anonymous,
		.username_as_clientid = s->use_username_as_clientid,
		.loopback_only = s->allow_anonymous != NULL || settings_loopback_only(s),
		.checked = checked,
	};
	int n = auth_load(a, &cfg, errs);

	free(pw);
	free(acl);
	free(psk);
	return n;
}

int
broker_load_auth(const struct settings *s, struct auth *a, struct conf_errors *errs)
{
	int n = load_global_auth(s, a, false, errs);

	/* The blocks' own files are checked here too (-t, SIGHUP). */
	for (size_t i = 0; s->per_listener_settings && i < s->listeners.n; i++) {
		struct auth tmp;

		memset(&tmp, 0, sizeof(tmp));
		n += broker_load_listener_auth(s, s->listeners.v[i], &tmp, false, errs);
		auth_free(&tmp);
	}
	return n;
}

/* One line at start-up when clients are checked at all. */
void
broker_log_auth(const struct broker *b)
{
	const struct settings *s = &b->set;
	const struct auth *a = &b->auth;

	char where[128];

	if (a->anonymous_auto && !a->anonymous)
		log_notice("anonymous clients are refused: %s is not on a loopback address and "
		    "allow_anonymous is not set (set it to true to let them in)",
		    first_public(s, where, sizeof(where)) != NULL ? where : "a listener");
	else if (a->passwd == NULL && a->acl == NULL && a->psk == NULL && a->anonymous)
		return;
	log_notice("access: %s%s%s, %s%s%s%s, anonymous clients %s",
	    a->passwd ? "password file " : "no password file",
	    a->passwd ? s->password_file : "", a->passwd ? "" : " (user names are not checked)",
	    a->acl ? "ACL " : "no ACL", a->acl ? s->acl_file : "",
	    a->psk ? ", pre-shared keys " : "", a->psk ? s->psk_file : "",
	    a->anonymous ? "let in" : "refused");
}

/* A reload's line for the password and pre-shared key files of an auth
 * (who: "" for the global one, "listener 8883: " for a block's): notice
 * when one changed, information otherwise.  The ACL has its own line
 * (broker_reload_auth). */
static void
log_files_read(const char *who, const struct auth *a, const char *passwd_file,
    const char *psk_file, unsigned changed)
{
	size_t n;

	if (a->passwd != NULL) {
		n = passwd_count(a->passwd);
		if (changed & AUTH_CHANGED_PASSWD)
			log_notice("reload: %sthe password file %s changed: %zu user%s; logins "
			    "from now on are checked against it, connected clients stay", who,
			    passwd_file, n, n == 1 ? "" : "s");
		else
			log_info("reload: %spassword file %s read, unchanged: %zu user%s", who,
			    passwd_file, n, n == 1 ? "" : "s");
	}
	if (a->psk != NULL) {
		n = psk_count(a->psk);
		if (changed & AUTH_CHANGED_PSK)
			log_notice("reload: %sthe pre-shared key file %s changed: %zu %s; "
			    "handshakes from now on use it", who, psk_file, n,
			    n == 1 ? "identity" : "identities");
		else
			log_info("reload: %spre-shared key file %s read, unchanged: %zu %s", who,
			    psk_file, n, n == 1 ? "identity" : "identities");
	}
}

/* SIGHUP, once the new settings are in b->set: the files are read again.
 * Whether anonymous clients are let in by default follows the listeners
 * that are open, not those of a file that takes effect at the next
 * restart.  Returns the AUTH_CHANGED_ flags. */
static unsigned
reload_global_auth(struct broker *b)
{
	struct conf_errors errs = { 0 };
	bool anonymous = b->auth.anonymous;
	unsigned changed = 0;
	struct auth fresh;

	memset(&fresh, 0, sizeof(fresh));
	if (load_global_auth(&b->set, &fresh, true, &errs) > 0) {
		log_warnx("reload: %s; keeping the password file and ACL", errs.msg[0]);
		auth_free(&fresh);
	} else {
		changed = auth_replace(&b->auth, &fresh);
	}
	conf_errors_free(&errs);
	log_files_read("", &b->auth, b->set.password_file, b->set.psk_file, changed);
	if (b->auth.anonymous != anonymous)
		log_notice("reload: anonymous clients are now %s",
		    b->auth.anonymous ? "let in" : "refused");
	return changed;
}

/* A block's own files (per_listener_settings): the AUTH_CHANGED_ flags. */
static unsigned
reload_listener_auth(struct broker *b, struct listener *l)
{
	struct conf_errors errs = { 0 };
	unsigned changed = 0;
	struct auth na;
	char who[96];

	memset(&na, 0, sizeof(na));
	if (broker_load_listener_auth(&b->set, l->conf, &na, true, &errs) > 0) {
		log_warnx("reload: listener %s: %s; keeping its password file and ACL",
		    l->conf->listener, errs.msg[0]);
		auth_free(&na);
	} else {
		changed = auth_replace(l->auth, &na);
	}
	conf_errors_free(&errs);
	snprintf(who, sizeof(who), "listener %s: ", l->conf->listener);
	log_files_read(who, l->auth, l->conf->password_file, l->conf->psk_file, changed);
	return changed;
}

bool
broker_reload_auth(struct broker *b)
{
	unsigned changed = reload_global_auth(b);

	for (size_t i = 0; i < b->nlisteners; i++) {
		struct listener *l = &b->listeners[i];

		if (l->auth != &b->auth && l->conf != NULL)
			changed |= reload_listener_auth(b, l);
	}
	if (changed & AUTH_CHANGED_ACL)
		log_notice("reload: the ACL changed; online sessions are brought in line");
	return (changed & AUTH_CHANGED_ACL) != 0;
}
