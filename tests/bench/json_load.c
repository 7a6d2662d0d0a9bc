/* json_load: a load generator for the JSON-lines publisher port.
 *
 *   json_load -p PORT [-H HOST] [-c CONNECTIONS] [-t TOPICS]
 *             [-n MESSAGES_TOTAL | -d SECONDS] [-s PAYLOAD_BYTES] [-w WINDOW]
 *
 * CONNECTIONS publishers share one event loop.  The topics bench/0 ..
 * bench/TOPICS-1 are dealt to the connections round-robin (connection i
 * publishes to every topic j with j % CONNECTIONS == i, or to topic
 * i % TOPICS when there are more connections than topics), and each
 * connection cycles through its topics.  A connection keeps WINDOW
 * exchanges in flight (default 1: strictly sequential, the protocol's
 * normal use); an exchange is PUB -> PUBREC, PUBREL -> PUBCOMP, and its
 * latency runs from writing the PUB to reading the PUBCOMP.
 *
 * Output, one line on stdout:
 *   exchanges=N seconds=S rate=R/s p50_ms=X p99_ms=Y
 * ERROR lines, replies that fit no exchange, disconnects and stalls are
 * errors: they are counted, described on stderr, and make the exit status
 * 1.  Usage errors exit 2.
 *
 * The broker's msgId of a PUBREC is matched to the PUB it answers by
 * assuming ids count 1, 2, ... per connection in PUB order (they are
 * unique per connection, and the broker numbers them so); a PUBREC
 * whose id fits no PUB in flight is given to the oldest one, and the
 * number of such guesses is reported on stderr. */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>

#define MAX_LINE	65536		/* a longer reply line is an error */
#define STALL_S		15		/* no reply for this long: give up */
#define CONNECT_S	10		/* every connection up within this */
#define MAX_SHOWN	10		/* errors described on stderr */

enum xstate { X_IDLE, X_PUBREC, X_PUBCOMP };

/* One slot of a connection's window. */
struct exch {
	struct conn		*c;
	enum xstate		 state;
	uint64_t		 guess_id;	/* the PUB's ordinal on its connection */
	uint64_t		 msg_id;	/* from the PUBREC */
	uint64_t		 t0_us;
	TAILQ_ENTRY(exch)	 rec_q;		/* waiting for a PUBREC, in PUB order */
};
TAILQ_HEAD(exch_q, exch);

struct conn {
	struct load		*ld;
	unsigned		 idx;
	struct bufferevent	*bev;
	unsigned		*topics;
	unsigned		 ntopics;
	unsigned		 next_topic;
	struct exch		*slots;
	struct exch_q		 await_rec;
	uint64_t		 npub;
	bool			 up, dead;
};

struct load {
	/* Options. */
	const char		*host;
	unsigned		 port, nconn, ntopics, window;
	uint64_t		 total;		/* 0: run for `seconds` */
	unsigned		 seconds;
	size_t			 payload_len;

	struct event_base	*base;
	struct event		*deadline_ev, *watch_ev;
	struct conn		*conns;
	char			*payload;
	unsigned		 nup, nlive;
	bool			 running, stopping;
	uint64_t		 started, done, inflight, errors, guessed;
	uint64_t		 t_open_us, t_start_us, t_end_us, t_reply_us;
	uint32_t		*lat_us;
	size_t			 nlat, lat_cap;
};

static uint64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void __attribute__((noreturn))
die(const char *fmt, ...)
{
	va_list ap;

	fputs("json_load: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (p == NULL)
		die("out of memory");
	return p;
}

static void __attribute__((format(printf, 3, 4)))
error(struct load *ld, struct conn *c, const char *fmt, ...)
{
	va_list ap;

	if (ld->errors++ < MAX_SHOWN) {
		fprintf(stderr, "json_load: ");
		if (c != NULL)
			fprintf(stderr, "connection %u: ", c->idx);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	} else if (ld->errors == MAX_SHOWN + 1)
		fprintf(stderr, "json_load: (further errors only counted)\n");
}

/* ---------------------------------------------------------------- options */

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: json_load -p PORT [-H HOST] [-c CONNECTIONS] [-t TOPICS]\n"
	    "                 [-n MESSAGES_TOTAL | -d SECONDS] [-s PAYLOAD_BYTES] [-w WINDOW]\n");
	exit(2);
}

static unsigned long long
number(const char *s, char opt, unsigned long long min, unsigned long long max)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || *s == '-' || v < min || v > max) {
		fprintf(stderr, "json_load: -%c: expected a number from %llu to %llu, not '%s'\n",
		    opt, min, max, s);
		exit(2);
	}
	return v;
}

static void
parse_args(struct load *ld, int argc, char **argv)
{
	bool have_n = false, have_d = false;
	int ch;

	ld->host = "127.0.0.1";
	ld->nconn = ld->ntopics = ld->window = 1;
	ld->payload_len = 64;
	ld->total = 10000;
	while ((ch = getopt(argc, argv, "H:p:c:t:n:d:s:w:h")) != -1) {
		switch (ch) {
		case 'H': ld->host = optarg; break;
		case 'p': ld->port = (unsigned)number(optarg, 'p', 1, 65535); break;
		case 'c': ld->nconn = (unsigned)number(optarg, 'c', 1, 10000); break;
		case 't': ld->ntopics = (unsigned)number(optarg, 't', 1, 100000); break;
		case 'n': ld->total = number(optarg, 'n', 1, UINT64_MAX / 2); have_n = true; break;
		case 'd': ld->seconds = (unsigned)number(optarg, 'd', 1, 86400); have_d = true; break;
		case 's': ld->payload_len = (size_t)number(optarg, 's', 0, 64 << 20); break;
		case 'w': ld->window = (unsigned)number(optarg, 'w', 1, 10000); break;
		default: usage();
		}
	}
	if (optind != argc || ld->port == 0 || (have_n && have_d))
		usage();
	if (have_d)
		ld->total = 0;
}

/* ---------------------------------------------------------------- replies */

/* The value of "key" in a one-level JSON object: a pointer just past the
 * colon and blanks, or NULL. */
static const char *
field(const char *line, const char *key)
{
	size_t klen = strlen(key);
	const char *p = line;

	while ((p = strchr(p, '"')) != NULL) {
		if (strncmp(p + 1, key, klen) == 0 && p[klen + 1] == '"') {
			p += klen + 2;
			p += strspn(p, " \t");
			if (*p != ':')
				return NULL;
			p++;
			return p + strspn(p, " \t");
		}
		p++;
	}
	return NULL;
}

/* Classifies a reply: "PUBREC" or "PUBCOMP" with its id, or NULL. */
static const char *
parse_reply(const char *line, uint64_t *id)
{
	const char *t, *n;
	char *end;

	if (line[0] != '{' || (t = field(line, "type")) == NULL ||
	    (n = field(line, "msgId")) == NULL)
		return NULL;
	if (*n < '0' || *n > '9')
		return NULL;
	errno = 0;
	*id = strtoull(n, &end, 10);
	if (errno != 0)
		return NULL;
	if (strncmp(t, "\"PUBREC\"", 8) == 0)
		return "PUBREC";
	if (strncmp(t, "\"PUBCOMP\"", 9) == 0)
		return "PUBCOMP";
	return NULL;
}

/* ---------------------------------------------------------------- exchanges */

static void
finish_if_done(struct load *ld)
{
	if ((ld->stopping && ld->inflight == 0) || ld->nlive == 0) {
		if (ld->t_end_us == 0)
			ld->t_end_us = now_us();
		event_base_loopbreak(ld->base);
	}
}

static void
exch_start(struct exch *x)
{
	struct conn *c = x->c;
	struct load *ld = c->ld;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	unsigned topic;

	if (ld->total != 0 && ld->started >= ld->total)
		ld->stopping = true;
	if (ld->stopping || c->dead) {
		x->state = X_IDLE;
		finish_if_done(ld);
		return;
	}
	topic = c->topics[c->next_topic++ % c->ntopics];
	x->state = X_PUBREC;
	x->guess_id = ++c->npub;
	x->msg_id = 0;
	x->t0_us = now_us();
	TAILQ_INSERT_TAIL(&c->await_rec, x, rec_q);
	ld->started++;
	ld->inflight++;
	if (evbuffer_add_printf(out, "{\"type\":\"PUB\",\"topic\":\"bench/%u\",\"msg\":\"", topic) < 0 ||
	    evbuffer_add(out, ld->payload, ld->payload_len) == -1 ||
	    evbuffer_add(out, "\"}\n", 3) == -1)
		die("out of memory");
}

static void
lat_add(struct load *ld, uint64_t us)
{
	if (ld->nlat == ld->lat_cap) {
		ld->lat_cap = ld->lat_cap ? ld->lat_cap * 2 : 65536;
		ld->lat_us = realloc(ld->lat_us, ld->lat_cap * sizeof(*ld->lat_us));
		if (ld->lat_us == NULL)
			die("out of memory");
	}
	ld->lat_us[ld->nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static struct exch *
find_pubcomp(struct conn *c, uint64_t id)
{
	for (unsigned i = 0; i < c->ld->window; i++)
		if (c->slots[i].state == X_PUBCOMP && c->slots[i].msg_id == id)
			return &c->slots[i];
	return NULL;
}

static void
on_pubrec(struct conn *c, uint64_t id)
{
	struct exch *x;

	if (find_pubcomp(c, id) != NULL) {
		error(c->ld, c, "PUBREC %llu again, before its PUBCOMP", (unsigned long long)id);
		return;
	}
	TAILQ_FOREACH(x, &c->await_rec, rec_q)
		if (x->guess_id == id)
			break;
	if (x == NULL && (x = TAILQ_FIRST(&c->await_rec)) != NULL)
		c->ld->guessed++;
	if (x == NULL) {
		error(c->ld, c, "PUBREC %llu with no PUB in flight", (unsigned long long)id);
		return;
	}
	TAILQ_REMOVE(&c->await_rec, x, rec_q);
	x->state = X_PUBCOMP;
	x->msg_id = id;
	if (evbuffer_add_printf(bufferevent_get_output(c->bev),
	    "{\"type\":\"PUBREL\",\"msgId\":%llu}\n", (unsigned long long)id) < 0)
		die("out of memory");
}

static void
on_pubcomp(struct conn *c, uint64_t id)
{
	struct exch *x = find_pubcomp(c, id);
	struct load *ld = c->ld;
	uint64_t t = now_us();

	if (x == NULL) {
		error(ld, c, "PUBCOMP %llu for no PUBREL in flight", (unsigned long long)id);
		return;
	}
	lat_add(ld, t - x->t0_us);
	ld->done++;
	ld->inflight--;
	ld->t_end_us = t;
	exch_start(x);
}

/* An ERROR line answers a PUB that could not be stored (the broker never
 * refuses a PUBREL that way for an id it gave): the oldest PUB waiting
 * for its PUBREC is failed and its slot goes on. */
static void
on_error_line(struct conn *c, const char *line)
{
	struct exch *x = TAILQ_FIRST(&c->await_rec);

	error(c->ld, c, "%s", line);
	if (x == NULL)
		return;
	TAILQ_REMOVE(&c->await_rec, x, rec_q);
	c->ld->inflight--;
	exch_start(x);
}

static void
on_line(struct conn *c, const char *line)
{
	const char *kind;
	uint64_t id;

	c->ld->t_reply_us = now_us();
	if ((kind = parse_reply(line, &id)) == NULL) {
		if (strncmp(line, "ERROR", 5) == 0)
			on_error_line(c, line);
		else
			error(c->ld, c, "unexpected reply: %.200s", line);
	} else if (strcmp(kind, "PUBREC") == 0)
		on_pubrec(c, id);
	else
		on_pubcomp(c, id);
}

/* ---------------------------------------------------------------- connections */

static void
conn_gone(struct conn *c, const char *why)
{
	struct load *ld = c->ld;
	unsigned lost = 0;

	if (c->dead)
		return;
	for (unsigned i = 0; i < ld->window; i++)
		if (c->slots[i].state != X_IDLE) {
			c->slots[i].state = X_IDLE;
			lost++;
		}
	TAILQ_INIT(&c->await_rec);
	ld->inflight -= lost;
	error(ld, c, "%s (%u exchanges in flight lost)", why, lost);
	c->dead = true;
	ld->nlive--;
	bufferevent_free(c->bev);
	c->bev = NULL;
	finish_if_done(ld);
}

static void
on_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len;
	char *line;

	while (!c->dead && (line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF)) != NULL) {
		on_line(c, line);
		free(line);
	}
	if (!c->dead && evbuffer_get_length(in) > MAX_LINE)
		conn_gone(c, "reply line too long");
}

static void
begin(struct load *ld)
{
	struct timeval tv = { (time_t)ld->seconds, 0 };

	ld->running = true;
	ld->t_start_us = ld->t_reply_us = now_us();
	if (ld->seconds != 0 && event_add(ld->deadline_ev, &tv) == -1)
		die("cannot arm the deadline");
	for (unsigned w = 0; w < ld->window; w++)
		for (unsigned i = 0; i < ld->nconn; i++)
			exch_start(&ld->conns[i].slots[w]);
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	char why[128];

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		c->up = true;
		if (++c->ld->nup == c->ld->nconn)
			begin(c->ld);
		return;
	}
	if (!c->up)
		die("connection %u: cannot connect to %s port %u: %s", c->idx, c->ld->host,
		    c->ld->port, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	if (what & BEV_EVENT_EOF)
		snprintf(why, sizeof(why), "closed by the broker");
	else
		snprintf(why, sizeof(why), "connection error: %s",
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	conn_gone(c, why);
}

static void
conn_open(struct load *ld, struct conn *c, const struct sockaddr *sa, int salen)
{
	int one = 1;
	evutil_socket_t fd;

	if ((fd = socket(sa->sa_family, SOCK_STREAM, 0)) == -1)
		die("socket: %s", strerror(errno));
	if (evutil_make_socket_nonblocking(fd) == -1 ||
	    evutil_make_socket_closeonexec(fd) == -1 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
		die("socket options: %s", strerror(errno));
	c->bev = bufferevent_socket_new(ld->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL)
		die("cannot create a bufferevent");
	bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
	if (bufferevent_enable(c->bev, EV_READ | EV_WRITE) == -1 ||
	    bufferevent_socket_connect(c->bev, sa, salen) == -1)
		die("connection %u: cannot connect to %s port %u", c->idx, ld->host, ld->port);
}

/* Deals the topics out: connection i gets every topic j with
 * j % nconn == i, or topic i % ntopics when topics are fewer. */
static void
conns_init(struct load *ld)
{
	ld->conns = xcalloc(ld->nconn, sizeof(*ld->conns));
	for (unsigned i = 0; i < ld->nconn; i++) {
		struct conn *c = &ld->conns[i];

		c->ld = ld;
		c->idx = i;
		c->topics = xcalloc(ld->ntopics / ld->nconn + 1, sizeof(*c->topics));
		if (ld->nconn >= ld->ntopics)
			c->topics[c->ntopics++] = i % ld->ntopics;
		else
			for (unsigned j = i; j < ld->ntopics; j += ld->nconn)
				c->topics[c->ntopics++] = j;
		c->slots = xcalloc(ld->window, sizeof(*c->slots));
		for (unsigned w = 0; w < ld->window; w++)
			c->slots[w].c = c;
		TAILQ_INIT(&c->await_rec);
	}
	ld->nlive = ld->nconn;
}

/* ---------------------------------------------------------------- timers */

static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct load *ld = arg;

	(void)fd;
	(void)what;
	ld->stopping = true;
	finish_if_done(ld);
}

static void
on_watch(evutil_socket_t fd, short what, void *arg)
{
	struct load *ld = arg;
	uint64_t t = now_us();

	(void)fd;
	(void)what;
	if (!ld->running) {
		if (t - ld->t_open_us < CONNECT_S * 1000000ull)
			return;
		error(ld, NULL, "%u of %u connections up after %d s", ld->nup, ld->nconn,
		    CONNECT_S);
		event_base_loopbreak(ld->base);
	} else if (ld->inflight > 0 && t - ld->t_reply_us > STALL_S * 1000000ull) {
		error(ld, NULL, "no reply for %d s; %llu exchanges in flight", STALL_S,
		    (unsigned long long)ld->inflight);
		ld->t_end_us = ld->t_end_us ? ld->t_end_us : t;
		event_base_loopbreak(ld->base);
	}
}

/* ---------------------------------------------------------------- main */

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest rank, in milliseconds. */
static double
percentile(const struct load *ld, double p)
{
	size_t rank;

	if (ld->nlat == 0)
		return 0.0;
	rank = (size_t)(p / 100.0 * (double)ld->nlat + 0.999999);
	rank = rank < 1 ? 1 : rank > ld->nlat ? ld->nlat : rank;
	return ld->lat_us[rank - 1] / 1000.0;
}

static void
report(struct load *ld)
{
	double secs = ld->t_end_us > ld->t_start_us ?
	    (double)(ld->t_end_us - ld->t_start_us) / 1e6 : 0.0;

	qsort(ld->lat_us, ld->nlat, sizeof(*ld->lat_us), cmp_u32);
	printf("exchanges=%llu seconds=%.3f rate=%.1f/s p50_ms=%.3f p99_ms=%.3f\n",
	    (unsigned long long)ld->done, secs, secs > 0 ? (double)ld->done / secs : 0.0,
	    percentile(ld, 50.0), percentile(ld, 99.0));
	fflush(stdout);
	if (ld->guessed > 0)
		fprintf(stderr, "json_load: %llu PUBREC ids did not follow PUB order; "
		    "their latency is approximate\n", (unsigned long long)ld->guessed);
	if (ld->errors > 0)
		fprintf(stderr, "json_load: %llu errors\n", (unsigned long long)ld->errors);
}

static void
resolve(struct load *ld, struct sockaddr_storage *ss, int *len)
{
	struct evutil_addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
					 .ai_flags = EVUTIL_AI_NUMERICSERV };
	struct evutil_addrinfo *res;
	char serv[16];
	int rc;

	snprintf(serv, sizeof(serv), "%u", ld->port);
	if ((rc = evutil_getaddrinfo(ld->host, serv, &hints, &res)) != 0)
		die("%s: %s", ld->host, evutil_gai_strerror(rc));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = (int)res->ai_addrlen;
	evutil_freeaddrinfo(res);
}

int
main(int argc, char **argv)
{
	struct timeval second = { 1, 0 };
	struct sockaddr_storage ss;
	struct load ld;
	int salen;

	memset(&ld, 0, sizeof(ld));
	parse_args(&ld, argc, argv);
	signal(SIGPIPE, SIG_IGN);
	ld.payload = xcalloc(ld.payload_len + 1, 1);
	for (size_t i = 0; i < ld.payload_len; i++)
		ld.payload[i] = (char)('a' + i % 26);
	resolve(&ld, &ss, &salen);
	if ((ld.base = event_base_new()) == NULL)
		die("cannot create the event base");
	ld.deadline_ev = evtimer_new(ld.base, on_deadline, &ld);
	ld.watch_ev = event_new(ld.base, -1, EV_PERSIST, on_watch, &ld);
	if (ld.deadline_ev == NULL || ld.watch_ev == NULL)
		die("cannot create timers");
	ld.t_open_us = now_us();
	if (event_add(ld.watch_ev, &second) == -1)
		die("cannot arm the watchdog");
	conns_init(&ld);
	for (unsigned i = 0; i < ld.nconn; i++)
		conn_open(&ld, &ld.conns[i], (struct sockaddr *)&ss, salen);
	event_base_dispatch(ld.base);
	report(&ld);
	for (unsigned i = 0; i < ld.nconn; i++) {
		if (ld.conns[i].bev != NULL)
			bufferevent_free(ld.conns[i].bev);
		free(ld.conns[i].topics);
		free(ld.conns[i].slots);
	}
	free(ld.conns);
	event_free(ld.deadline_ev);
	event_free(ld.watch_ev);
	event_base_free(ld.base);
	free(ld.lat_us);
	free(ld.payload);
	return ld.errors > 0 || (ld.done == 0 && ld.total != 0) ? 1 : 0;
}
