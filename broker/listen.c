/* The listeners.  On EMFILE/ENFILE accepting pauses and resumes on a
 * timer instead of spinning. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "broker.h"
#include "log.h"

#define ACCEPT_PAUSE_MS 1000

struct listener_spec {
	const struct proto *proto;
	const char *what;
	const char *key;	/* the setting of its port */
};

static const struct listener_spec specs[] = {
	{ &json_consumer_proto, "JSON-lines consumers", "json_consumer_port" },
	{ &json_publisher_proto, "JSON-lines publishers", "json_publisher_port" },
	{ &mqtt_proto, "MQTT", "mqtt_port" },
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

static unsigned
listener_port(const struct broker *b, int i)
{
	unsigned ports[3] = { b->set.json_consumer_port, b->set.json_publisher_port,
			      b->set.mqtt_port };

	return ports[i];
}

static void
on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	struct broker *b = arg;
	char desc[64];
	int i;

	(void)salen;
	for (i = 0; i < 3 && b->listeners[i] != l; i++)
		;
	if (i == 3) {
		close(fd);
		return;
	}
	describe_peer(sa, desc, sizeof(desc));
	if (b->nclients >= b->set.max_connections) {
		log_warnx("client %s refused: %u connections, max_connections is %u", desc,
		    b->nclients, b->set.max_connections);
		close(fd);
		return;
	}
	client_new(b, fd, specs[i].proto, desc, (int)listener_port(b, i), &b->auth);
}

static void
on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct broker *b = arg;

	(void)fd;
	(void)what;
	for (int i = 0; i < 3; i++)
		if (b->listeners[i] != NULL)
			evconnlistener_enable(b->listeners[i]);
}

static void
on_accept_error(struct evconnlistener *l, void *arg)
{
	struct broker *b = arg;
	struct timeval tv = { 0, ACCEPT_PAUSE_MS * 1000 };
	int err = EVUTIL_SOCKET_ERROR();

	(void)l;
	if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
		log_warnx("accept: %s", strerror(err));
		return;
	}
	log_warnx("accept: %s; pausing new connections for %d ms", strerror(err), ACCEPT_PAUSE_MS);
	for (int i = 0; i < 3; i++)
		if (b->listeners[i] != NULL)
			evconnlistener_disable(b->listeners[i]);
	if (b->accept_retry == NULL)
		b->accept_retry = evtimer_new(b->base, on_resume, b);
	if (b->accept_retry == NULL || evtimer_add(b->accept_retry, &tv) == -1)
		fatalx("cannot arm the accept timer");
}

/* A port the master cannot listen on: what to do about it. */
static void
log_cannot_listen(struct broker *b, unsigned port, const struct listener_spec *spec, int err)
{
	char hint[128];

	switch (err) {
	case EADDRINUSE:
		snprintf(hint, sizeof(hint), "stop what uses it, or set another %s (0 disables "
		    "it)", spec->key);
		break;
	case EACCES:
	case EPERM:
		snprintf(hint, sizeof(hint), "a port below 1024 needs root or "
		    "CAP_NET_BIND_SERVICE; grant it, or set another %s", spec->key);
		break;
	case EADDRNOTAVAIL:
		snprintf(hint, sizeof(hint), "set bind_address to an address of this host");
		break;
	default:
		snprintf(hint, sizeof(hint), "set another %s (0 disables it)", spec->key);
		break;
	}
	log_errx("%s: cannot listen on %s port %u: %s: %s", spec->what, b->set.bind_address,
	    port, strerror(err), hint);
}

static struct evconnlistener *
listen_on(struct broker *b, unsigned port, const struct listener_spec *spec)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct evconnlistener *l;
	struct addrinfo *res;
	char serv[16];
	int rc;

	snprintf(serv, sizeof(serv), "%u", port);
	if ((rc = getaddrinfo(b->set.bind_address, serv, &hints, &res)) != 0) {
		log_errx("%s: cannot resolve bind_address %s: %s: set bind_address to an "
		    "address of this host", spec->what, b->set.bind_address, gai_strerror(rc));
		return NULL;
	}
	l = evconnlistener_new_bind(b->base, on_accept, b,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE, 128,
	    res->ai_addr, (int)res->ai_addrlen);
	if (l == NULL)
		log_cannot_listen(b, port, spec, errno);
	else
		evconnlistener_set_error_cb(l, on_accept_error);
	freeaddrinfo(res);
	return l;
}

int
listeners_open(struct broker *b)
{
	for (int i = 0; i < 3; i++) {
		unsigned port = listener_port(b, i);

		if (port == 0)
			continue;
		if ((b->listeners[i] = listen_on(b, port, &specs[i])) == NULL)
			return -1;
		log_notice("listening on %s port %u (%s)", b->set.bind_address, port,
		    specs[i].what);
	}
	return 0;
}

void
listeners_close(struct broker *b)
{
	for (int i = 0; i < 3; i++) {
		if (b->listeners[i] != NULL)
			evconnlistener_free(b->listeners[i]);
		b->listeners[i] = NULL;
	}
	if (b->accept_retry != NULL) {
		event_free(b->accept_retry);
		b->accept_retry = NULL;
	}
}
