/* mqtt_retained: many topics, one retained message each, one subscriber
 * that receives them all.
 *
 *   mqtt_retained -p PORT [-H HOST] [--topics N] [--window W] [--size BYTES]
 *                 [--prefix PREFIX] [--filter FILTER] [--qos Q] [--stall S]
 *                 [--hold] [--persistent]
 *
 * A publisher (clean session) publishes one retained QoS 1 message to
 * each of PREFIX/0 .. PREFIX/N-1, keeping up to W unacknowledged.  Once
 * every PUBACK is in, a subscriber (clean session; with --persistent, a
 * new persistent one) subscribes to FILTER
 * (default "#") at QoS Q (1, or 0) and acknowledges what it receives,
 * until it has the SUBACK and the retained message of every topic.  Each payload starts with a magic
 * number and its topic's index, which must match the topic it came on.
 *
 * Output, one line on stdout:
 *   topics=N published=N publish_s=S received=N receive_s=S dups=N
 *   not_retained=N foreign=N
 * publish_s runs from the first PUBLISH to the last PUBACK, receive_s from
 * the SUBSCRIBE to the last retained message (which may come before the
 * SUBACK); received counts topics whose
 * message arrived; dups counts a topic's message seen again; not_retained
 * counts deliveries without the retain flag; foreign counts messages that
 * are not ours.  With --hold, both connections then stay open until
 * standard input reaches end of file (so that the broker can be measured
 * with every topic live and subscribed).
 *
 * Exit status 0 when every topic's message arrived once with the retain
 * flag; 1 on an error (refused connection, SUBACK failure, unexpected
 * packet, disconnect, no progress for --stall seconds), in which case the
 * line says how far it got; 2 on a usage error. */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>

#include "mqtt/mqtt_codec.h"
#include "xmalloc.h"

#define MAGIC		0x4d515254u	/* "MQRT" */
#define HDR_LEN		8		/* magic, topic index */
#define MAX_TOPICS	10000000u

enum phase { PH_PUBLISHING, PH_RECEIVING, PH_HOLDING, PH_DONE };

struct conn {
	struct run		*run;
	const char		*name;
	struct bufferevent	*bev;
	struct wbuf		 w;
	bool			 connected;
};

struct run {
	/* Options. */
	const char		*host, *prefix, *filter;
	unsigned		 port, ntopics, window, stall_s, qos;
	size_t			 size;
	bool			 hold;
	bool			 persistent;	/* the subscriber's session */

	struct event_base	*base;
	struct event		*watch_ev, *stdin_ev;
	struct conn		 pub, sub;
	enum phase		 phase;
	uint8_t			*payload;
	uint8_t			*seen;		/* by topic: received */
	uint32_t		*pid_topic;	/* by packet id: topic + 1, 0 if free */
	uint16_t		 next_pid;
	unsigned		 next_topic, inflight, acked, received;
	uint64_t		 dups, not_retained, foreign, errors;
	uint64_t		 t_pub0, t_pub1, t_sub0, t_sub1, t_progress;
	bool			 subacked, reported;
};

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	fputs("mqtt_retained: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* Describes an error and ends the run. */
static void __attribute__((format(printf, 3, 4)))
fail(struct run *r, const struct conn *c, const char *fmt, ...)
{
	va_list ap;

	if (r->errors++ == 0) {
		fputs("mqtt_retained: ", stderr);
		if (c != NULL)
			fprintf(stderr, "%s: ", c->name);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	r->phase = PH_DONE;
	event_base_loopbreak(r->base);
}

/* ---------------------------------------------------------------- options */

static void __attribute__((noreturn))
usage(void)
{
	fputs("usage: mqtt_retained -p PORT [-H HOST] [--topics N] [--window W] [--size BYTES]\n"
	    "                     [--prefix PREFIX] [--filter FILTER] [--qos Q] [--stall S]\n"
	    "                     [--hold] [--persistent]\n",
	    stderr);
	exit(2);
}

static double
number(const char *s, const char *opt, double min, double max)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v >= min && v <= max)) {
		fprintf(stderr, "mqtt_retained: %s: expected a number from %.0f to %.0f, not '%s'\n",
		    opt, min, max, s);
		exit(2);
	}
	return v;
}

static void
parse_args(struct run *r, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "topics", required_argument, NULL, 't' },
		{ "window", required_argument, NULL, 'w' },
		{ "size", required_argument, NULL, 's' },
		{ "prefix", required_argument, NULL, 'x' },
		{ "filter", required_argument, NULL, 'f' },
		{ "stall", required_argument, NULL, 'S' },
		{ "qos", required_argument, NULL, 'q' },
		{ "hold", no_argument, NULL, 'o' },
		{ "persistent", no_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	r->host = "127.0.0.1";
	r->prefix = "retained";
	r->filter = "#";
	r->ntopics = 100000;
	r->window = 64;
	r->size = 64;
	r->stall_s = 30;
	r->qos = 1;
	while ((ch = getopt_long(argc, argv, "H:p:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'H': r->host = optarg; break;
		case 'p': r->port = (unsigned)number(optarg, "-p", 1, 65535); break;
		case 't': r->ntopics = (unsigned)number(optarg, "--topics", 1, MAX_TOPICS); break;
		case 'w': r->window = (unsigned)number(optarg, "--window", 1, 65535); break;
		case 's': r->size = (size_t)number(optarg, "--size", HDR_LEN, 1 << 24); break;
		case 'x': r->prefix = optarg; break;
		case 'f': r->filter = optarg; break;
		case 'S': r->stall_s = (unsigned)number(optarg, "--stall", 1, 86400); break;
		case 'q': r->qos = (unsigned)number(optarg, "--qos", 0, 1); break;
		case 'o': r->hold = true; break;
		case 'P': r->persistent = true; break;
		default: usage();
		}
	}
	if (optind != argc || r->port == 0)
		usage();
}

/* ---------------------------------------------------------------- sending */

static void
send_w(struct conn *c)
{
	if (bufferevent_write(c->bev, c->w.data, c->w.len) == -1)
		die("out of memory");
	wbuf_reset(&c->w);
}

static void
topic_name(const struct run *r, unsigned t, char *buf, size_t len)
{
	if ((size_t)snprintf(buf, len, "%s/%u", r->prefix, t) >= len)
		die("--prefix is too long");
}

static uint16_t
pid_new(struct run *r)
{
	do {
		if (++r->next_pid == 0)
			r->next_pid = 1;
	} while (r->pid_topic[r->next_pid] != 0);
	return r->next_pid;
}

static void
publish_more(struct run *r)
{
	char topic[256];
	uint32_t u32;

	while (r->phase == PH_PUBLISHING && r->next_topic < r->ntopics &&
	    r->inflight < r->window) {
		struct mqtt_publish p = { .qos = 1, .retain = true, .topic = topic,
					  .payload = r->payload, .len = r->size };
		unsigned t = r->next_topic++;

		topic_name(r, t, topic, sizeof(topic));
		u32 = t;
		memcpy(r->payload + 4, &u32, 4);
		p.packet_id = pid_new(r);
		r->pid_topic[p.packet_id] = t + 1;
		r->inflight++;
		if (mqtt_enc_publish(&r->pub.w, MQTT_LEVEL_311, &p) == -1)
			die("cannot encode a PUBLISH to %s", topic);
		send_w(&r->pub);
	}
}

static void
subscribe(struct run *r)
{
	struct mqtt_sub_item item = { .filter = (char *)r->filter, .qos = (uint8_t)r->qos };
	struct mqtt_subscribe s = { .packet_id = 1, .n = 1, .items = &item };

	if (mqtt_enc_subscribe(&r->sub.w, MQTT_LEVEL_311, &s) == -1)
		die("cannot encode a SUBSCRIBE to %s", r->filter);
	r->phase = PH_RECEIVING;
	r->t_sub0 = r->t_progress = now_ns();
	send_w(&r->sub);
}

static void conn_open(struct run *r, struct conn *c);

static void
published(struct run *r)
{
	r->t_pub1 = now_ns();
	conn_open(r, &r->sub);
}

/* ---------------------------------------------------------------- receiving */

static void report(struct run *r);

/* Every retained message is in, and the SUBACK. */
static void
finish(struct run *r)
{
	if (r->hold && r->errors == 0) {
		r->phase = PH_HOLDING;
		report(r);
		return;
	}
	r->phase = PH_DONE;
	event_base_loopbreak(r->base);
}

static void
on_puback(struct run *r, uint16_t pid)
{
	if (r->pid_topic[pid] == 0) {
		fail(r, &r->pub, "PUBACK for packet %u, not in flight", pid);
		return;
	}
	r->pid_topic[pid] = 0;
	r->inflight--;
	r->acked++;
	r->t_progress = now_ns();
	if (r->acked == r->ntopics)
		published(r);
	else
		publish_more(r);
}

/* A retained message: is it ours, on the topic it names, and new? */
static void
on_message(struct run *r, const struct mqtt_publish *m)
{
	char topic[256];
	uint32_t magic, t;

	if (m->qos > r->qos) {
		fail(r, &r->sub, "PUBLISH at QoS %u to a QoS %u subscription", m->qos, r->qos);
		return;
	}
	if (m->qos == 1) {
		if (mqtt_enc_ack(&r->sub.w, MQTT_PUBACK, m->packet_id) == -1)
			die("cannot encode a PUBACK");
		send_w(&r->sub);
	}
	if (m->len < HDR_LEN) {
		r->foreign++;
		return;
	}
	memcpy(&magic, m->payload, 4);
	memcpy(&t, m->payload + 4, 4);
	if (magic != MAGIC || t >= r->ntopics) {
		r->foreign++;
		return;
	}
	topic_name(r, t, topic, sizeof(topic));
	if (strcmp(topic, m->topic) != 0 || m->len != r->size) {
		fail(r, &r->sub, "the message of %s came on %s", topic, m->topic);
		return;
	}
	if (!m->retain)
		r->not_retained++;
	if (r->seen[t]) {
		r->dups++;
		return;
	}
	r->seen[t] = 1;
	r->t_progress = now_ns();
	if (++r->received == r->ntopics) {
		r->t_sub1 = r->t_progress;
		if (r->subacked)
			finish(r);
	}
}

static void
on_packet(struct run *r, struct conn *c, struct mqtt_packet *p)
{
	bool pub = c == &r->pub;

	switch (p->type) {
	case MQTT_CONNACK:
		if (c->connected || p->u.connack.return_code != MQTT_CONNACK_ACCEPTED) {
			fail(r, c, "CONNACK with return code %u", p->u.connack.return_code);
		} else {
			c->connected = true;
			if (pub) {
				r->t_pub0 = r->t_progress = now_ns();
				publish_more(r);
			} else {
				subscribe(r);
			}
		}
		return;
	case MQTT_PUBACK:
		if (!pub)
			break;
		on_puback(r, p->u.ack.packet_id);
		return;
	case MQTT_SUBACK:
		if (pub || r->subacked || p->u.suback.packet_id != 1)
			break;
		if (p->u.suback.codes[0] != r->qos) {
			fail(r, c, "SUBACK grants 0x%02x for QoS %u", p->u.suback.codes[0], r->qos);
			return;
		}
		r->subacked = true;
		if (r->received == r->ntopics)
			finish(r);
		return;
	case MQTT_PUBLISH:
		/* A broker may send retained messages before the SUBACK. */
		if (pub || (r->phase != PH_RECEIVING && r->phase != PH_HOLDING))
			break;
		on_message(r, &p->u.publish);
		return;
	case MQTT_PINGRESP:
		return;
	}
	fail(r, c, "unexpected %s", mqtt_type_name(p->type));
}

static void
on_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct run *r = c->run;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct mqtt_packet p;
	size_t len, total;
	uint8_t *buf;

	while (r->phase != PH_DONE && (len = evbuffer_get_length(in)) >= 2) {
		size_t hl = len < 5 ? len : 5;

		if ((buf = evbuffer_pullup(in, (ev_ssize_t)hl)) == NULL)
			die("out of memory");
		if (mqtt_frame(buf, hl, MQTT_MAX_PACKET, &total) < 0) {
			fail(r, c, "malformed packet header");
			return;
		}
		if (total == 0 || total > len)
			return;
		if ((buf = evbuffer_pullup(in, (ev_ssize_t)total)) == NULL)
			die("out of memory");
		if (mqtt_decode(buf, total, MQTT_LEVEL_311, &p) != 0) {
			fail(r, c, "malformed %s: %s", mqtt_type_name(p.type),
			    p.error ? p.error : "?");
			mqtt_packet_free(&p);
			return;
		}
		on_packet(r, c, &p);
		mqtt_packet_free(&p);
		evbuffer_drain(in, total);
	}
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	char id[80];
	struct mqtt_connect cn = { .level = MQTT_LEVEL_311, .clean_session = true,
				   .client_id = id };

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		snprintf(id, sizeof(id), "mqret%ld%s", (long)getpid(), c->name);
		cn.clean_session = !(c == &c->run->sub && c->run->persistent);
		if (mqtt_enc_connect(&c->w, &cn) == -1)
			die("cannot encode a CONNECT");
		send_w(c);
		return;
	}
	if (what & BEV_EVENT_EOF)
		fail(c->run, c, "closed by the broker");
	else
		fail(c->run, c, "%s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

/* ---------------------------------------------------------------- setup */

static void
conn_open(struct run *r, struct conn *c)
{
	struct evutil_addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
					 .ai_flags = EVUTIL_AI_NUMERICSERV };
	struct evutil_addrinfo *res;
	char serv[16];
	int one = 1, rc;
	evutil_socket_t fd;

	snprintf(serv, sizeof(serv), "%u", r->port);
	if ((rc = evutil_getaddrinfo(r->host, serv, &hints, &res)) != 0)
		die("%s: %s", r->host, evutil_gai_strerror(rc));
	if ((fd = socket(res->ai_family, SOCK_STREAM, 0)) == -1)
		die("socket: %s", strerror(errno));
	if (evutil_make_socket_nonblocking(fd) == -1 ||
	    evutil_make_socket_closeonexec(fd) == -1 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
		die("socket options: %s", strerror(errno));
	c->run = r;
	c->bev = bufferevent_socket_new(r->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL)
		die("cannot create a bufferevent");
	bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
	if (bufferevent_enable(c->bev, EV_READ | EV_WRITE) == -1 ||
	    bufferevent_socket_connect(c->bev, res->ai_addr, (int)res->ai_addrlen) == -1)
		die("cannot connect to %s port %u", r->host, r->port);
	evutil_freeaddrinfo(res);
	r->t_progress = now_ns();
}

/* Once a second: a phase that made no progress for --stall seconds fails. */
static void
on_watch(evutil_socket_t fd, short what, void *arg)
{
	struct run *r = arg;

	(void)fd;
	(void)what;
	if (r->phase == PH_HOLDING || r->phase == PH_DONE)
		return;
	if (now_ns() - r->t_progress >= (uint64_t)r->stall_s * 1000000000u) {
		if (r->phase == PH_PUBLISHING)
			fail(r, NULL, "no progress for %u s: %u of %u retained messages "
			    "acknowledged", r->stall_s, r->acked, r->ntopics);
		else
			fail(r, NULL, "no progress for %u s: %u of %u retained messages "
			    "received", r->stall_s, r->received, r->ntopics);
	}
}

/* --hold: standard input at end of file ends the run. */
static void
on_stdin(evutil_socket_t fd, short what, void *arg)
{
	struct run *r = arg;
	char buf[256];
	ssize_t n;

	(void)what;
	n = read(fd, buf, sizeof(buf));
	if (n > 0 || (n == -1 && (errno == EINTR || errno == EAGAIN)))
		return;
	if (n == -1)
		fprintf(stderr, "mqtt_retained: standard input: %s\n", strerror(errno));
	if (r->phase != PH_HOLDING && r->phase != PH_DONE)
		fail(r, NULL, "standard input closed before the run ended");
	r->phase = PH_DONE;
	event_base_loopbreak(r->base);
}

/* Once, when the run ends or starts to hold. */
static void
report(struct run *r)
{
	double pub_s = r->t_pub1 > r->t_pub0 ? (double)(r->t_pub1 - r->t_pub0) / 1e9 : 0;
	double sub_s = r->t_sub1 > r->t_sub0 ? (double)(r->t_sub1 - r->t_sub0) / 1e9 : 0;

	printf("topics=%u published=%u publish_s=%.3f received=%u receive_s=%.3f dups=%llu "
	    "not_retained=%llu foreign=%llu\n", r->ntopics, r->acked, pub_s, r->received, sub_s,
	    (unsigned long long)r->dups, (unsigned long long)r->not_retained,
	    (unsigned long long)r->foreign);
	r->reported = true;
	if (fflush(stdout) == EOF || ferror(stdout))
		die("stdout: %s", strerror(errno));
}

static void
conn_free(struct conn *c)
{
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	wbuf_free(&c->w);
}

int
main(int argc, char **argv)
{
	struct timeval second = { 1, 0 };
	struct run *r = xcalloc(1, sizeof(*r));
	uint32_t magic = MAGIC;
	int rc;

	parse_args(r, argc, argv);
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		die("signal: %s", strerror(errno));
	r->pub.name = "publisher";
	r->sub.name = "subscriber";
	r->payload = xcalloc(r->size, 1);
	for (size_t i = HDR_LEN; i < r->size; i++)
		r->payload[i] = (uint8_t)('a' + i % 26);
	memcpy(r->payload, &magic, 4);
	r->seen = xcalloc(r->ntopics, 1);
	r->pid_topic = xcalloc(65536, sizeof(*r->pid_topic));
	if ((r->base = event_base_new()) == NULL)
		die("cannot create the event base");
	r->watch_ev = event_new(r->base, -1, EV_PERSIST, on_watch, r);
	if (r->watch_ev == NULL || event_add(r->watch_ev, &second) == -1)
		die("cannot create a timer");
	if (r->hold) {
		r->stdin_ev = event_new(r->base, STDIN_FILENO, EV_READ | EV_PERSIST, on_stdin, r);
		if (r->stdin_ev == NULL || event_add(r->stdin_ev, NULL) == -1)
			die("cannot watch standard input");
	}
	r->phase = PH_PUBLISHING;
	conn_open(r, &r->pub);
	if (event_base_dispatch(r->base) == -1)
		die("event loop failed");
	if (!r->reported)
		report(r);
	rc = r->errors > 0 || r->received < r->ntopics || r->dups > 0 || r->not_retained > 0;
	conn_free(&r->pub);
	conn_free(&r->sub);
	if (r->stdin_ev != NULL)
		event_free(r->stdin_ev);
	event_free(r->watch_ev);
	event_base_free(r->base);
	free(r->payload);
	free(r->seen);
	free(r->pid_topic);
	free(r);
	return rc;
}
