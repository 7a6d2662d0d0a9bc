/* The listeners: the plain ones of the shortcut keys (mqtt_port,
 * json_consumer_port, json_publisher_port, on bind_address) and the
 * listener blocks, each with its protocol and, for TLS, its context
 * (re-read on SIGHUP).  On EMFILE/ENFILE accepting pauses and resumes on
 * a timer instead of spinning. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#include "broker.h"
#include "clock.h"
#include "log.h"
#include "xmalloc.h"

#define ACCEPT_PAUSE_MS 1000

/* The protocols a listener may speak, by the name a block gives (and
 * mosquitto's "websockets": MQTT over WebSockets).  Their ports are
 * listed in this order (the process title): MQTT first. */
static const struct {
	const char         *name;
	const struct proto *proto;
	const char         *what;
	bool                websocket;
} protocols[] = {
	{ "mqtt", &mqtt_proto, "MQTT", false },
	{ "websockets", &mqtt_proto, "MQTT over WebSockets", true },
	{ "json_consumer", &json_consumer_proto, "JSON-lines consumers", false },
	{ "json_publisher", &json_publisher_proto, "JSON-lines publishers", false },
};

static void
describe_peer(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[NI_MAXHOST], serv[NI_MAXSERV];

	if (getnameinfo(sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in), host, sizeof(host), serv, sizeof(serv),
	    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		snprintf(buf, len, "?");
	else
		snprintf(buf, len, "%.46s:%.7s", host, serv);
}

/* A connection past max_connections is closed at once.  The refusals are
 * logged at most once a second, with a count: a fleet that reconnects
 * while the broker is full would otherwise write a warning for every
 * attempt, thousands a second, at the moment the log matters most. */
static void
refuse_connection(struct broker *b, int fd, const struct sockaddr *sa)
{
	int64_t now = mono_ms();
	char desc[64];

	close(fd);
	b->conns_refused++;
	if (b->conns_refused_logged != 0 && now - b->conns_refused_logged < 1000)
		return;
	describe_peer(sa, desc, sizeof(desc));
	log_warnx("client %s refused: %u connections, max_connections is %u "
	    "(%llu refused so far)", desc, b->nclients, b->set.max_connections,
	    (unsigned long long)b->conns_refused);
	b->conns_refused_logged = now;
}

static void
on_accept(struct evconnlistener *ev, evutil_socket_t fd, struct sockaddr *sa, int salen,
    void *arg)
{
	struct listener *l = arg;
	struct broker *b = l->b;
	char desc[64];

	(void)ev;
	(void)salen;
	if (b->nclients >= b->set.max_connections) {
		refuse_connection(b, fd, sa);
		return;
	}
	describe_peer(sa, desc, sizeof(desc));
	client_new(l, fd, desc);
}

static void
on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct broker *b = arg;

	(void)fd;
	(void)what;
	for (size_t i = 0; i < b->nlisteners; i++)
		if (b->listeners[i].ev != NULL)
			evconnlistener_enable(b->listeners[i].ev);
}

static void
on_accept_error(struct evconnlistener *ev, void *arg)
{
	struct broker *b = ((struct listener *)arg)->b;
	struct timeval tv = { 0, ACCEPT_PAUSE_MS * 1000 };
	int err = EVUTIL_SOCKET_ERROR();

	(void)ev;
	if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
		log_warnx("accept: %s", strerror(err));
		return;
	}
	log_warnx("accept: %s; pausing new connections for %d ms", strerror(err), ACCEPT_PAUSE_MS);
	for (size_t i = 0; i < b->nlisteners; i++)
		if (b->listeners[i].ev != NULL)
			evconnlistener_disable(b->listeners[i].ev);
	if (b->accept_retry == NULL)
		b->accept_retry = evtimer_new(b->base, on_resume, b);
	if (b->accept_retry == NULL || evtimer_add(b->accept_retry, &tv) == -1)
		fatalx("cannot arm the accept timer");
}

/* "mqtt_port" for a shortcut, "the listener at FILE:LINE" for a block:
 * what to change when it cannot listen. */
static void
setting_of(const struct listener *l, char *buf, size_t len)
{
	if (l->key != NULL)
		snprintf(buf, len, "another %s (0 disables it)", l->key);
	else
		snprintf(buf, len, "another port in the listener at %s", l->conf->where);
}

/* A port the master cannot listen on: what to do about it. */
static void
log_cannot_listen(const struct listener *l, int err)
{
	char hint[256], setting[128];

	setting_of(l, setting, sizeof(setting));
	switch (err) {
	case EADDRINUSE:
		snprintf(hint, sizeof(hint), "stop what uses it, or set %s", setting);
		break;
	case EACCES:
	case EPERM:
		snprintf(hint, sizeof(hint), "a port below 1024 needs root or "
		    "CAP_NET_BIND_SERVICE; grant it, or set %s", setting);
		break;
	case EADDRNOTAVAIL:
		snprintf(hint, sizeof(hint), "listen on an address of this host");
		break;
	default:
		snprintf(hint, sizeof(hint), "set %s", setting);
		break;
	}
	log_errx("%s: cannot listen on %s port %u: %s: %s", l->what, l->addr, l->port,
	    strerror(err), hint);
}

static int
listen_on(struct listener *l)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res;
	char serv[16];
	int rc;

	snprintf(serv, sizeof(serv), "%u", l->port);
	if ((rc = getaddrinfo(l->addr, serv, &hints, &res)) != 0) {
		log_errx("%s: cannot resolve %s: %s: listen on an address of this host",
		    l->what, l->addr, gai_strerror(rc));
		return -1;
	}
	l->ev = evconnlistener_new_bind(l->b->base, on_accept, l,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE, 128,
	    res->ai_addr, (int)res->ai_addrlen);
	if (l->ev == NULL)
		log_cannot_listen(l, errno);
	else
		evconnlistener_set_error_cb(l->ev, on_accept_error);
	freeaddrinfo(res);
	return l->ev != NULL ? 0 : -1;
}

static struct listener *
add_listener(struct broker *b, const char *protocol, unsigned port, const char *addr)
{
	struct listener *l;
	size_t p = 0;

	while (strcmp(protocols[p].name, protocol) != 0)
		p++;
	b->listeners = xreallocarray(b->listeners, b->nlisteners + 1, sizeof(*b->listeners));
	l = &b->listeners[b->nlisteners++];
	memset(l, 0, sizeof(*l));
	l->b = b;
	l->proto = protocols[p].proto;
	l->what = protocols[p].what;
	l->websocket = protocols[p].websocket;
	l->port = port;
	l->addr = xstrdup(addr);
	l->auth = &b->auth;
	return l;
}

/* per_listener_settings: the block's own password file and ACL (checked
 * with the configuration: an error here is a file changed since). */
static void
own_auth(struct listener *l)
{
	struct conf_errors errs = { 0 };

	l->auth = xcalloc(1, sizeof(*l->auth));
	if (broker_load_listener_auth(&l->b->set, l->conf, l->auth, true, &errs) > 0)
		fatalx("listener %s: %s", l->conf->listener, errs.msg[0]);
	conf_errors_free(&errs);
	log_info("listener %s: password file %s, ACL %s, pre-shared keys %s, anonymous"
	    " clients %s", l->conf->listener,
	    l->conf->password_file ? l->conf->password_file : "none",
	    l->conf->acl_file ? l->conf->acl_file : "none",
	    l->conf->psk_file ? l->conf->psk_file : "none",
	    l->auth->anonymous ? "let in" : "refused");
}

/* Every listener of the settings: the shortcuts first, then the blocks
 * in the file's order. */
static void
listeners_list(struct broker *b)
{
	const struct settings *s = &b->set;
	const size_t nsc = sizeof(settings_shortcuts) / sizeof(settings_shortcuts[0]);
	const struct shortcut *sc;
	unsigned port;

	for (size_t p = 0; p < sizeof(protocols) / sizeof(protocols[0]); p++) {
		for (sc = settings_shortcuts; sc < settings_shortcuts + nsc &&
		    strcmp(sc->protocol, protocols[p].name) != 0; sc++)
			;
		if (sc == settings_shortcuts + nsc)
			continue;	/* a protocol of listener blocks only */
		port = *(const unsigned *)(const void *)((const char *)s + sc->offset);
		if (port != 0)
			add_listener(b, sc->protocol, port, s->bind_address)->key = sc->key;
	}
	for (size_t i = 0; i < s->listeners.n; i++) {
		struct listener_conf *c = s->listeners.v[i];
		struct listener *l;
		char *addr;

		if (settings_listener(c->listener, &port, &addr) == -1)
			fatalx("listener %s: not checked", c->listener);
		l = add_listener(b, c->protocol, port, addr != NULL ? addr : s->bind_address);
		l->conf = c;
		free(addr);
		if (s->per_listener_settings)
			own_auth(l);
	}
}

/* The TLS context of a block: "" or why not in err. */
static SSL_CTX *
context_of(const struct listener *l, char *err, size_t len)
{
	err[0] = '\0';
	if (l->conf == NULL || !listener_conf_tls(l->conf))
		return NULL;
	return tls_context_new(l->conf, err, len);
}

int
listeners_open(struct broker *b)
{
	char err[512], desc[256];

	listeners_list(b);
	for (size_t i = 0; i < b->nlisteners; i++) {
		struct listener *l = &b->listeners[i];

		if ((l->tls = context_of(l, err, sizeof(err))) == NULL && err[0] != '\0') {
			log_errx("listener %s at %s: %s: correct it, then check with broker -t",
			    l->conf->listener, l->conf->where, err);
			return -1;
		}
		if (listen_on(l) == -1)
			return -1;
		if (l->tls != NULL && tls_context_describe(l->tls, l->conf, desc, sizeof(desc)))
			log_warnx("listening on %s port %u (%s over TLS, %s: clients will refuse"
			    " it)", l->addr, l->port, l->what, desc);
		else if (l->tls != NULL)
			log_notice("listening on %s port %u (%s over TLS, %s)", l->addr, l->port,
			    l->what, desc);
		else
			log_notice("listening on %s port %u (%s)", l->addr, l->port, l->what);
	}
	return 0;
}

int
listeners_check_tls(const struct settings *s, struct conf_errors *errs)
{
	char err[512];
	int n = 0;

	for (size_t i = 0; i < s->listeners.n; i++) {
		const struct listener_conf *c = s->listeners.v[i];
		SSL_CTX *ctx;

		/* A block that is not whole has its error already. */
		if (!listener_conf_tls(c) || c->listener == NULL ||
		    (c->certfile == NULL) != (c->keyfile == NULL))
			continue;
		if ((ctx = tls_context_new(c, err, sizeof(err))) == NULL)
			n += conf_error(errs, "%s: listener %s: %s", c->where, c->listener, err);
		SSL_CTX_free(ctx);
	}
	return n;
}

/* SIGHUP: each TLS listener reads its files again; new connections get
 * the new context, those open keep theirs.  A context that does not load
 * leaves the listener with the one it has. */
void
listeners_reload_tls(struct broker *b)
{
	char err[512], desc[256];
	SSL_CTX *ctx;

	for (size_t i = 0; i < b->nlisteners; i++) {
		struct listener *l = &b->listeners[i];

		if (l->tls == NULL)
			continue;
		if ((ctx = context_of(l, err, sizeof(err))) == NULL) {
			log_warnx("reload: listener %s at %s: %s; it keeps its certificate",
			    l->conf->listener, l->conf->where, err);
			continue;
		}
		SSL_CTX_free(l->tls);
		l->tls = ctx;
		if (tls_context_describe(ctx, l->conf, desc, sizeof(desc)))
			log_warnx("reload: listener %s: TLS files re-read, %s: clients will"
			    " refuse it", l->conf->listener, desc);
		else
			log_notice("reload: listener %s: TLS files re-read, %s", l->conf->listener,
			    desc);
	}
}

/* "1883,4040,4041,8883" */
void
listeners_ports(const struct broker *b, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < b->nlisteners && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%u", off ? "," : "",
		    b->listeners[i].port);
}

/* Shutdown: no more connections.  The listeners stay (listeners_free). */
void
listeners_close(struct broker *b)
{
	for (size_t i = 0; i < b->nlisteners; i++) {
		if (b->listeners[i].ev != NULL)
			evconnlistener_free(b->listeners[i].ev);
		b->listeners[i].ev = NULL;
	}
	if (b->accept_retry != NULL) {
		event_free(b->accept_retry);
		b->accept_retry = NULL;
	}
}

/* Once no client is left. */
void
listeners_free(struct broker *b)
{
	listeners_close(b);
	for (size_t i = 0; i < b->nlisteners; i++) {
		SSL_CTX_free(b->listeners[i].tls);
		free(b->listeners[i].addr);
		if (b->listeners[i].auth != &b->auth) {
			auth_free(b->listeners[i].auth);
			free(b->listeners[i].auth);
		}
	}
	free(b->listeners);
	b->listeners = NULL;
	b->nlisteners = 0;
}
