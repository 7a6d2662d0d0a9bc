/* mqtt_load: an MQTT 3.1.1 load generator for this broker and others.
 *
 *   mqtt_load -p PORT [-H HOST] [--pubs N] [--subs N] [--topics N]
 *             [--wildcard] [--qos Q] [--size BYTES] [--window W]
 *             [--count MESSAGES | --seconds S] [--rate R] [--drain S]
 *             [--backlog B] [--prefix PREFIX]
 *
 * Every connection shares one event loop and uses clean sessions.  The
 * subscribers connect and subscribe first; the publishers connect once
 * every SUBACK is in, and then publish to PREFIX/0 .. PREFIX/TOPICS-1.
 * Publisher i publishes to every topic t with t % PUBS == i, cycling
 * through them (or to topic i % TOPICS when publishers outnumber topics);
 * subscriber j subscribes to the topics dealt to it the same way, or to
 * PREFIX/# with --wildcard.
 *
 * A publisher keeps up to WINDOW QoS 1/2 messages unacknowledged
 * (pipelined); at QoS 0 it writes while its socket buffer holds less than
 * QOS0_HIWAT bytes.  And no subscriber is ever more than BACKLOG messages
 * behind (published to its topics, not yet received; default 500), so
 * that the offered load stays what the subscribers take: a broker that
 * acknowledges publishes at once would otherwise queue without bound, and
 * drop what exceeds its max_queued_messages (1000 by default for both
 * this broker and mosquitto).  When every publisher has one topic,
 * deliveries come in order per publisher, so a gap in the sequence is a
 * message the broker dropped: it no longer counts against the backlog
 * (else a broker that drops would throttle its own load to a trickle).
 * --count stops each publisher after that many messages, --seconds after
 * that long; --rate R publishes R messages a second in all instead of as
 * fast as possible (for latency).  Then the subscribers receive the rest,
 * until --drain seconds pass without a delivery or acknowledgement (a
 * broker still delivering a backlog is slow, not losing messages).
 *
 * Each payload starts with a magic number, the publisher's index, its
 * sequence number and the CLOCK_MONOTONIC time it was written, so that
 * subscribers measure the end-to-end latency and check every delivery:
 * a message seen twice by one subscriber is a duplicate, one never seen
 * is lost.
 *
 * Output, one line on stdout:
 *   sent=N received=N dups=N lost=N seconds=S pub_rate=R/s rate=R/s
 *   p50_us=X p99_us=Y gap_ms=G ack_gap_ms=A
 * sent counts publishes, received the distinct deliveries (with fan-out,
 * up to sent times the subscribers of each topic), seconds runs from the
 * first publish to the last delivery, pub_rate is sent over the time to
 * the last publish (QoS 0) or acknowledgement, rate is received over
 * seconds; gap_ms is the longest time between two deliveries to one
 * subscriber, ack_gap_ms the longest a publisher with messages in flight
 * waited for an acknowledgement.  Exit status 1 on an error (refused connection, SUBACK
 * failure, malformed or unexpected packet, disconnect, stall), on a lost
 * message at QoS 1 or 2, and on a duplicate at QoS 0 or 2; usage errors
 * exit 2.  Losses at QoS 0 are reported, not errors. */
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
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>

#include "mqtt/mqtt_codec.h"
#include "xmalloc.h"

#define MAGIC		0x4d514c44u	/* "MQLD" */
#define HDR_LEN		24		/* magic, publisher, sequence, time */
#define QOS0_HIWAT	(64 * 1024)	/* QoS 0: unsent bytes per publisher */
#define STALL_S		10		/* no progress for this long: give up */
#define CONNECT_S	10		/* every connection ready within this */
#define MAX_SHOWN	10		/* errors described on stderr */
#define READ_MAX	(256 * 1024)	/* bytes read at a time */
#define WRITE_MAX	(256 * 1024)	/* and written (libevent's default: 16 KiB) */
/* --rate: the publishing tick is one message's share of a second, but
 * not under TICK_MIN_US (above 10,000 a second, several go per tick).
 * The event base keeps a precise clock: libevent would otherwise read
 * CLOCK_MONOTONIC_COARSE, which a 250 Hz kernel advances every 4 ms, and
 * 2,000 a second would go as bursts of 8 every 4 ms. */
#define TICK_MIN_US	100

/* Latency histogram: exact below 128 us, then 64 buckets per power of
 * two (under 1.6 % error). */
#define H_LINEAR	128
#define H_SUB		64
#define H_BUCKETS	(H_LINEAR + 57 * H_SUB)

enum phase { PH_SUBSCRIBING, PH_CONNECTING, PH_RUNNING, PH_DRAINING, PH_DONE };
enum role { R_PUB, R_SUB };
enum pid_state { PS_FREE, PS_ACK, PS_COMP };	/* await PUBACK/PUBREC, PUBCOMP */

struct conn {
	struct load		*ld;
	enum role		 role;
	unsigned		 idx;
	struct bufferevent	*bev;		/* connects and writes */
	struct event		*rev;		/* reads, READ_MAX at a time */
	struct evbuffer		*in;
	struct wbuf		 w;
	bool			 ready;		/* CONNACK (pub) or SUBACK (sub) in */
	bool			 dead;
	unsigned		*topics;
	unsigned		 ntopics, next_topic;
	/* publishers */
	uint8_t			*pids;		/* enum pid_state by packet id */
	uint16_t		 next_pid;
	unsigned		 inflight;
	uint64_t		 seq;		/* messages published */
	bool			 blocked;	/* by a subscriber's backlog */
	uint64_t		 last_at;	/* last delivery (sub) or ack (pub), ns */
	/* subscribers: seen[p] is a bitmap of publisher p's sequences */
	uint64_t		**seen;
	size_t			*seen_words;
	uint64_t		 due, got;	/* published to its topics, received */
	uint64_t		*next_seq;	/* by publisher: the next one in order */
	uint64_t		 skipped;	/* gaps in next_seq: dropped so far */
};

struct load {
	/* Options. */
	const char		*host, *prefix;
	unsigned		 port, npubs, nsubs, ntopics, window, qos, drain_s, backlog;
	bool			 wildcard;
	bool			 ordered;	/* each publisher has one topic */
	size_t			 size;
	uint64_t		 count;		/* per publisher; 0: for `seconds` */
	unsigned		 seconds;
	double			 rate;		/* in all; 0: as fast as possible */

	struct event_base	*base;
	struct event		*deadline_ev, *watch_ev, *tick_ev;
	struct conn		*pubs, *subs;
	uint8_t			*payload;
	unsigned		*topic_subs;	/* subscribers of each topic */
	unsigned		**topic_sublist;	/* ... their indexes */
	uint64_t		*topic_sent;	/* messages published to each topic */
	char			**topic_names;	/* PREFIX/t */
	enum phase		 phase;
	unsigned		 nready, rr, nblocked, rr_unblock;
	uint64_t		 sent, inflight, received, dups, expected, errors;
	uint64_t		 rate_sent;
	uint64_t		 t_open, t_start, t_pub_end, t_recv_end, t_progress, t_drain;
	uint64_t		 hist[H_BUCKETS];
	uint64_t		 gap, ack_gap;	/* longest, ns: between deliveries to one
						 * subscriber; between acks of one
						 * publisher with messages in flight */
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

	fputs("mqtt_load: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void stop(struct load *ld);

/* Counts an error, describes the first few, and ends the run. */
static void __attribute__((format(printf, 3, 4)))
error(struct load *ld, const struct conn *c, const char *fmt, ...)
{
	va_list ap;

	if (ld->errors++ < MAX_SHOWN) {
		fputs("mqtt_load: ", stderr);
		if (c != NULL)
			fprintf(stderr, "%s %u: ", c->role == R_PUB ? "publisher" : "subscriber",
			    c->idx);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	} else if (ld->errors == MAX_SHOWN + 1)
		fputs("mqtt_load: (further errors only counted)\n", stderr);
	stop(ld);
}

/* ---------------------------------------------------------------- options */

static void __attribute__((noreturn))
usage(void)
{
	fputs("usage: mqtt_load -p PORT [-H HOST] [--pubs N] [--subs N] [--topics N]\n"
	    "                 [--wildcard] [--qos Q] [--size BYTES] [--window W]\n"
	    "                 [--count MESSAGES | --seconds S] [--rate R] [--drain S]\n"
	    "                 [--backlog B] [--prefix PREFIX]\n", stderr);
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
		fprintf(stderr, "mqtt_load: %s: expected a number from %.0f to %.0f, not '%s'\n",
		    opt, min, max, s);
		exit(2);
	}
	return v;
}

static void
parse_args(struct load *ld, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pubs", required_argument, NULL, 'P' },
		{ "subs", required_argument, NULL, 'S' },
		{ "topics", required_argument, NULL, 't' },
		{ "wildcard", no_argument, NULL, 'W' },
		{ "qos", required_argument, NULL, 'q' },
		{ "size", required_argument, NULL, 's' },
		{ "window", required_argument, NULL, 'w' },
		{ "count", required_argument, NULL, 'n' },
		{ "seconds", required_argument, NULL, 'd' },
		{ "rate", required_argument, NULL, 'r' },
		{ "drain", required_argument, NULL, 'D' },
		{ "prefix", required_argument, NULL, 'x' },
		{ "backlog", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool have_n = false, have_d = false;
	int ch;

	ld->host = "127.0.0.1";
	ld->prefix = "bench";
	ld->npubs = ld->nsubs = ld->ntopics = 1;
	ld->window = 20;
	ld->size = 64;
	ld->count = 10000;
	ld->drain_s = 10;
	ld->backlog = 500;
	while ((ch = getopt_long(argc, argv, "H:p:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'H': ld->host = optarg; break;
		case 'p': ld->port = (unsigned)number(optarg, "-p", 1, 65535); break;
		case 'P': ld->npubs = (unsigned)number(optarg, "--pubs", 1, 10000); break;
		case 'S': ld->nsubs = (unsigned)number(optarg, "--subs", 0, 10000); break;
		case 't': ld->ntopics = (unsigned)number(optarg, "--topics", 1, 10000); break;
		case 'W': ld->wildcard = true; break;
		case 'q': ld->qos = (unsigned)number(optarg, "--qos", 0, 2); break;
		case 's': ld->size = (size_t)number(optarg, "--size", HDR_LEN, 1 << 24); break;
		case 'w': ld->window = (unsigned)number(optarg, "--window", 1, 60000); break;
		case 'n': ld->count = (uint64_t)number(optarg, "--count", 1, 1e12); have_n = true; break;
		case 'd': ld->seconds = (unsigned)number(optarg, "--seconds", 1, 86400); have_d = true; break;
		case 'r': ld->rate = number(optarg, "--rate", 1, 1e8); break;
		case 'D': ld->drain_s = (unsigned)number(optarg, "--drain", 1, 3600); break;
		case 'x': ld->prefix = optarg; break;
		case 'b': ld->backlog = (unsigned)number(optarg, "--backlog", 0, 1e9); break;
		default: usage();
		}
	}
	if (optind != argc || ld->port == 0 || (have_n && have_d))
		usage();
	if (have_d)
		ld->count = 0;
}

/* ---------------------------------------------------------------- latency */

static unsigned
h_bucket(uint64_t v)
{
	unsigned msb, shift;

	if (v < H_LINEAR)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	shift = msb - 6;
	return H_LINEAR + (msb - 7) * H_SUB + (unsigned)((v >> shift) - H_SUB);
}

/* The middle of a bucket, in microseconds. */
static double
h_value(unsigned b)
{
	unsigned shift;

	if (b < H_LINEAR)
		return b;
	shift = (b - H_LINEAR) / H_SUB + 1;
	return (double)((uint64_t)((b - H_LINEAR) % H_SUB + H_SUB) << shift) +
	    (double)(1ull << shift) / 2.0;
}

/* Nearest rank. */
static double
percentile(const struct load *ld, double p)
{
	uint64_t n = 0, rank, acc = 0;

	for (unsigned b = 0; b < H_BUCKETS; b++)
		n += ld->hist[b];
	if (n == 0)
		return 0.0;
	rank = (uint64_t)(p / 100.0 * (double)n + 0.999999);
	rank = rank < 1 ? 1 : rank > n ? n : rank;
	for (unsigned b = 0; b < H_BUCKETS; b++)
		if ((acc += ld->hist[b]) >= rank)
			return h_value(b);
	return 0.0;
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
send_ack(struct conn *c, uint8_t type, uint16_t pid)
{
	if (mqtt_enc_ack(&c->w, type, pid) == -1)
		die("cannot encode %s", mqtt_type_name(type));
	send_w(c);
}

static uint16_t
pid_new(struct conn *c)
{
	do {
		if (++c->next_pid == 0)
			c->next_pid = 1;
	} while (c->pids[c->next_pid] != PS_FREE);
	return c->next_pid;
}

/* Is every subscriber of the publisher's next topic within the backlog?
 * If not, the publisher waits for that subscriber (sub_publish). */
static bool
backlog_ok(struct conn *c)
{
	struct load *ld = c->ld;
	unsigned t = c->topics[c->next_topic % c->ntopics];

	if (ld->backlog == 0)
		return true;
	for (unsigned k = 0; k < ld->topic_subs[t]; k++) {
		const struct conn *s = &ld->subs[ld->topic_sublist[t][k]];

		if (s->due - s->got - s->skipped >= ld->backlog) {
			if (!c->blocked) {
				c->blocked = true;
				ld->nblocked++;
			}
			return false;
		}
	}
	return true;
}

static bool
pub_can_send(struct conn *c)
{
	const struct load *ld = c->ld;

	if (ld->phase != PH_RUNNING || c->dead || !c->ready)
		return false;
	if (ld->count != 0 && c->seq >= ld->count)
		return false;
	if (ld->qos > 0 && c->inflight >= ld->window)
		return false;
	if (ld->qos == 0 && evbuffer_get_length(bufferevent_get_output(c->bev)) >= QOS0_HIWAT)
		return false;
	return backlog_ok(c);
}

static void
pub_send(struct conn *c)
{
	struct load *ld = c->ld;
	unsigned t = c->topics[c->next_topic++ % c->ntopics];
	uint32_t u32;
	uint64_t u64;
	struct mqtt_publish pub = {
		.qos = (uint8_t)ld->qos, .topic = ld->topic_names[t], .payload = ld->payload,
		.len = ld->size,
	};

	u32 = c->idx;
	memcpy(ld->payload + 4, &u32, 4);
	u64 = c->seq;
	memcpy(ld->payload + 8, &u64, 8);
	u64 = now_ns();
	memcpy(ld->payload + 16, &u64, 8);
	if (ld->qos > 0) {
		pub.packet_id = pid_new(c);
		c->pids[pub.packet_id] = PS_ACK;
		if (c->inflight++ == 0)
			c->last_at = u64;	/* waiting for an ack from now on */
		ld->inflight++;
	}
	if (mqtt_enc_publish(&c->w, MQTT_LEVEL_311, &pub) == -1)
		die("cannot encode a PUBLISH to %s", pub.topic);
	send_w(c);
	c->seq++;
	ld->sent++;
	ld->topic_sent[t]++;
	for (unsigned k = 0; k < ld->topic_subs[t]; k++)
		ld->subs[ld->topic_sublist[t][k]].due++;
	ld->t_pub_end = ld->t_progress = u64;
}

static void end_publishing(struct load *ld);
static void pub_pump(struct conn *c);

/* --count: publishing ends when every publisher has sent its messages. */
static void
check_published(struct load *ld)
{
	if (ld->count == 0 || ld->phase != PH_RUNNING)
		return;
	for (unsigned i = 0; i < ld->npubs; i++)
		if (!ld->pubs[i].dead && ld->pubs[i].seq < ld->count)
			return;
	end_publishing(ld);
}

/* A subscriber caught up a little: publishers waiting for it go on,
 * starting with a different one each time. */
static void
unblock(struct load *ld)
{
	unsigned first = ld->rr_unblock++;

	for (unsigned i = 0; i < ld->npubs && ld->nblocked > 0; i++) {
		struct conn *c = &ld->pubs[(first + i) % ld->npubs];

		if (c->blocked) {
			c->blocked = false;
			ld->nblocked--;
			pub_pump(c);
		}
	}
}

static void
pub_pump(struct conn *c)
{
	struct load *ld = c->ld;

	if (ld->rate > 0)
		return;		/* the ticker publishes */
	while (pub_can_send(c))
		pub_send(c);
	check_published(ld);
}

/* --rate: what is due by now, round-robin over the publishers that can
 * take it; what cannot go now (windows full) goes at the next tick. */
static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct load *ld = arg;
	double secs = (double)(now_ns() - ld->t_start) / 1e9;
	uint64_t due = (uint64_t)(ld->rate * secs);
	unsigned idle = 0;

	(void)fd;
	(void)what;
	while (ld->rate_sent < due && idle < ld->npubs && ld->phase == PH_RUNNING) {
		struct conn *c = &ld->pubs[ld->rr++ % ld->npubs];

		if (!pub_can_send(c)) {
			idle++;
			continue;
		}
		idle = 0;
		pub_send(c);
		ld->rate_sent++;
	}
	check_published(ld);
}

/* ---------------------------------------------------------------- the run */

static void
check_done(struct load *ld)
{
	if (ld->phase == PH_DRAINING && ld->inflight == 0 && ld->received >= ld->expected)
		stop(ld);
}

static void
end_publishing(struct load *ld)
{
	if (ld->phase != PH_RUNNING)
		return;
	ld->phase = PH_DRAINING;
	ld->t_drain = now_ns();
	if (ld->tick_ev != NULL)
		event_del(ld->tick_ev);
	event_del(ld->deadline_ev);
	ld->expected = 0;
	for (unsigned t = 0; t < ld->ntopics; t++)
		ld->expected += ld->topic_sent[t] * ld->topic_subs[t];
	check_done(ld);
}

static void
stop(struct load *ld)
{
	if (ld->phase == PH_DONE)
		return;
	if (ld->phase == PH_RUNNING)
		end_publishing(ld);
	ld->phase = PH_DONE;
	event_base_loopbreak(ld->base);
}

static void
begin(struct load *ld)
{
	struct timeval tv = { (time_t)ld->seconds, 0 };
	uint64_t tick_us = ld->rate > 0 ? (uint64_t)(1e6 / ld->rate) : 0;
	struct timeval tick;

	ld->phase = PH_RUNNING;
	ld->t_start = ld->t_progress = now_ns();
	if (ld->seconds != 0 && event_add(ld->deadline_ev, &tv) == -1)
		die("cannot arm the deadline");
	if (ld->rate > 0) {
		if (tick_us < TICK_MIN_US)
			tick_us = TICK_MIN_US;
		tick.tv_sec = (time_t)(tick_us / 1000000);
		tick.tv_usec = (suseconds_t)(tick_us % 1000000);
		ld->tick_ev = event_new(ld->base, -1, EV_PERSIST, on_tick, ld);
		if (ld->tick_ev == NULL || event_add(ld->tick_ev, &tick) == -1)
			die("cannot arm the ticker");
		return;
	}
	for (unsigned i = 0; i < ld->npubs; i++)
		pub_pump(&ld->pubs[i]);
}

static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	end_publishing(arg);
}

static void
on_watch(evutil_socket_t fd, short what, void *arg)
{
	struct load *ld = arg;
	uint64_t t = now_ns();

	(void)fd;
	(void)what;
	if (ld->phase < PH_RUNNING) {
		if (t - ld->t_open >= CONNECT_S * 1000000000ull)
			error(ld, NULL, "%u of %u connections ready after %d s", ld->nready,
			    ld->phase == PH_SUBSCRIBING ? ld->nsubs : ld->npubs, CONNECT_S);
	} else if (ld->phase == PH_DRAINING &&
	    t - (ld->t_progress > ld->t_drain ? ld->t_progress : ld->t_drain) >=
	    ld->drain_s * 1000000000ull) {
		stop(ld);	/* what is missing now is lost */
	} else if (t - ld->t_progress >= STALL_S * 1000000000ull) {
		error(ld, NULL, "no progress for %d s (%llu messages unacknowledged)", STALL_S,
		    (unsigned long long)ld->inflight);
	}
}

/* ---------------------------------------------------------------- receiving */

static bool
seen_test_set(struct conn *c, uint32_t p, uint64_t seq)
{
	size_t word = (size_t)(seq / 64);
	uint64_t bit = 1ull << (seq % 64), *w;

	if (word >= c->seen_words[p]) {
		size_t n = c->seen_words[p] ? c->seen_words[p] : 1024;

		while (n <= word)
			n *= 2;
		c->seen[p] = xreallocarray(c->seen[p], n, sizeof(uint64_t));
		memset(c->seen[p] + c->seen_words[p], 0, (n - c->seen_words[p]) * sizeof(uint64_t));
		c->seen_words[p] = n;
	}
	w = &c->seen[p][word];
	if (*w & bit)
		return true;
	*w |= bit;
	return false;
}

static void
sub_publish(struct conn *c, const struct mqtt_publish *m)
{
	struct load *ld = c->ld;
	uint64_t t = now_ns(), seq, t0;
	uint32_t magic, p;

	if (m->qos == 1)
		send_ack(c, MQTT_PUBACK, m->packet_id);
	else if (m->qos == 2)
		send_ack(c, MQTT_PUBREC, m->packet_id);
	if (m->len < HDR_LEN) {
		error(ld, c, "PUBLISH on %s with a %zu-byte payload", m->topic, m->len);
		return;
	}
	memcpy(&magic, m->payload, 4);
	memcpy(&p, m->payload + 4, 4);
	memcpy(&seq, m->payload + 8, 8);
	memcpy(&t0, m->payload + 16, 8);
	if (magic != MAGIC || p >= ld->npubs || seq >= ld->pubs[p].seq || m->len != ld->size) {
		error(ld, c, "PUBLISH on %s that no publisher sent", m->topic);
		return;
	}
	if (seen_test_set(c, p, seq)) {
		ld->dups++;
		return;
	}
	ld->received++;
	c->got++;
	if (ld->ordered) {
		if (seq >= c->next_seq[p]) {
			c->skipped += seq - c->next_seq[p];
			c->next_seq[p] = seq + 1;
		} else if (c->skipped > 0) {
			c->skipped--;	/* late, not lost */
		}
	}
	if (ld->nblocked > 0 && c->due - c->got - c->skipped < ld->backlog)
		unblock(ld);
	ld->hist[h_bucket(t > t0 ? (t - t0) / 1000 : 0)]++;
	if (c->last_at != 0 && t - c->last_at > ld->gap)
		ld->gap = t - c->last_at;
	c->last_at = t;
	ld->t_recv_end = ld->t_progress = t;
	check_done(ld);
}

static void
pub_ack(struct conn *c, uint8_t type, uint16_t pid)
{
	struct load *ld = c->ld;
	uint8_t want = type == MQTT_PUBCOMP ? PS_COMP : PS_ACK;

	if (ld->qos != (type == MQTT_PUBACK ? 1u : 2u) || c->pids[pid] != want) {
		error(ld, c, "%s for packet %u, not in flight", mqtt_type_name(type), pid);
		return;
	}
	if (type == MQTT_PUBREC) {
		c->pids[pid] = PS_COMP;
		send_ack(c, MQTT_PUBREL, pid);
		return;
	}
	c->pids[pid] = PS_FREE;
	c->inflight--;
	ld->inflight--;
	ld->t_progress = ld->t_pub_end = now_ns();
	if (c->last_at != 0 && ld->t_progress - c->last_at > ld->ack_gap)
		ld->ack_gap = ld->t_progress - c->last_at;
	c->last_at = c->inflight > 0 ? ld->t_progress : 0;
	pub_pump(c);
	check_done(ld);
}

static void connect_pubs(struct load *ld);

static void
on_ready(struct conn *c)
{
	struct load *ld = c->ld;

	c->ready = true;
	if (c->role == R_SUB && ++ld->nready == ld->nsubs) {
		ld->nready = 0;
		connect_pubs(ld);
	} else if (c->role == R_PUB && ++ld->nready == ld->npubs) {
		begin(ld);
	}
}

static void
subscribe(struct conn *c)
{
	struct load *ld = c->ld;
	unsigned n = ld->wildcard ? 1 : c->ntopics;
	struct mqtt_sub_item *items = xcalloc(n, sizeof(*items));
	struct mqtt_subscribe s = { .packet_id = 1, .n = n, .items = items };

	for (unsigned i = 0; i < n; i++) {
		if (ld->wildcard)
			xasprintf(&items[i].filter, "%s/#", ld->prefix);
		else
			items[i].filter = xstrdup(ld->topic_names[c->topics[i]]);
		items[i].qos = (uint8_t)ld->qos;
	}
	if (mqtt_enc_subscribe(&c->w, MQTT_LEVEL_311, &s) == -1)
		die("cannot encode a SUBSCRIBE (prefix %s)", ld->prefix);
	send_w(c);
	for (unsigned i = 0; i < n; i++)
		free(items[i].filter);
	free(items);
}

static void
on_packet(struct conn *c, struct mqtt_packet *p)
{
	struct load *ld = c->ld;
	bool pub = c->role == R_PUB;

	switch (p->type) {
	case MQTT_CONNACK:
		if (c->ready || p->u.connack.return_code != MQTT_CONNACK_ACCEPTED)
			error(ld, c, "CONNACK with return code %u", p->u.connack.return_code);
		else if (pub)
			on_ready(c);
		else
			subscribe(c);
		return;
	case MQTT_SUBACK:
		if (pub || c->ready || p->u.suback.packet_id != 1)
			break;
		for (size_t i = 0; i < p->u.suback.n; i++)
			if (p->u.suback.codes[i] != ld->qos) {
				error(ld, c, "SUBACK grants 0x%02x for QoS %u",
				    p->u.suback.codes[i], ld->qos);
				return;
			}
		on_ready(c);
		return;
	case MQTT_PUBLISH:
		if (pub || !c->ready)
			break;
		sub_publish(c, &p->u.publish);
		return;
	case MQTT_PUBREL:
		if (pub)
			break;
		send_ack(c, MQTT_PUBCOMP, p->u.ack.packet_id);
		return;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBCOMP:
		if (!pub)
			break;
		pub_ack(c, p->type, p->u.ack.packet_id);
		return;
	}
	error(ld, c, "unexpected %s", mqtt_type_name(p->type));
}

static void
conn_gone(struct conn *c, const char *why)
{
	if (c->dead)
		return;
	c->dead = true;
	error(c->ld, c, "%s", why);
}

/* The packets read so far. */
static void
parse_input(struct conn *c)
{
	struct evbuffer *in = c->in;
	struct mqtt_packet p;
	size_t len, total;
	uint8_t *buf;
	int rc;

	while (!c->dead && c->ld->phase != PH_DONE && (len = evbuffer_get_length(in)) >= 2) {
		size_t hl = len < 5 ? len : 5;

		if ((buf = evbuffer_pullup(in, (ev_ssize_t)hl)) == NULL)
			die("out of memory");
		if ((rc = mqtt_frame(buf, hl, MQTT_MAX_PACKET, &total)) < 0) {
			conn_gone(c, "malformed packet header");
			return;
		}
		if (total == 0 || total > len)
			return;
		if ((buf = evbuffer_pullup(in, (ev_ssize_t)total)) == NULL)
			die("out of memory");
		if (mqtt_decode(buf, total, MQTT_LEVEL_311, &p) != 0) {
			error(c->ld, c, "malformed %s: %s", mqtt_type_name(p.type),
			    p.error ? p.error : "?");
			mqtt_packet_free(&p);
			c->dead = true;
			return;
		}
		on_packet(c, &p);
		mqtt_packet_free(&p);
		evbuffer_drain(in, total);
	}
}

/* A bufferevent reads 4 KiB at a time (libevent 2.1): a subscriber of
 * 64 KiB messages would take a core, and the broker's CPU with it. */
static void
on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct evbuffer_iovec v[2];
	int nv;
	ssize_t n;

	(void)what;
	if ((nv = evbuffer_reserve_space(c->in, READ_MAX, v, 2)) <= 0)
		die("out of memory");
	while ((n = readv(fd, (struct iovec *)v, nv)) == -1 && errno == EINTR)
		;
	if (n <= 0) {
		(void)evbuffer_commit_space(c->in, v, 0);
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		event_del(c->rev);
		conn_gone(c, n == 0 ? "closed by the broker" : strerror(errno));
		return;
	}
	for (int i = 0; i < nv; i++) {
		size_t take = (size_t)n < v[i].iov_len ? (size_t)n : v[i].iov_len;

		v[i].iov_len = take;
		n -= (ssize_t)take;
	}
	if (evbuffer_commit_space(c->in, v, nv) == -1)
		die("evbuffer_commit_space");
	parse_input(c);
}

static void
on_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	if (c->role == R_PUB && c->ld->qos == 0)
		pub_pump(c);
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
		c->rev = event_new(c->ld->base, bufferevent_getfd(bev), EV_READ | EV_PERSIST,
		    on_readable, c);
		if (c->rev == NULL || event_add(c->rev, NULL) == -1)
			die("cannot watch a connection");
		snprintf(id, sizeof(id), "mqload%ld%c%u", (long)getpid(),
		    c->role == R_PUB ? 'p' : 's', c->idx);
		if (mqtt_enc_connect(&c->w, &cn) == -1)
			die("cannot encode a CONNECT");
		send_w(c);
		return;
	}
	if (what & BEV_EVENT_EOF)
		conn_gone(c, "closed by the broker");
	else
		conn_gone(c, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

/* ---------------------------------------------------------------- setup */

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

static void
conn_open(struct conn *c)
{
	struct load *ld = c->ld;
	struct sockaddr_storage ss;
	int one = 1, salen;
	evutil_socket_t fd;

	resolve(ld, &ss, &salen);
	if ((fd = socket(ss.ss_family, SOCK_STREAM, 0)) == -1)
		die("socket: %s", strerror(errno));
	if (evutil_make_socket_nonblocking(fd) == -1 ||
	    evutil_make_socket_closeonexec(fd) == -1 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
		die("socket options: %s", strerror(errno));
	c->bev = bufferevent_socket_new(ld->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL)
		die("cannot create a bufferevent");
	if ((c->in = evbuffer_new()) == NULL)
		die("out of memory");
	bufferevent_setcb(c->bev, NULL, on_write, on_event, c);
	bufferevent_setwatermark(c->bev, EV_WRITE, QOS0_HIWAT / 2, 0);
	if (bufferevent_set_max_single_write(c->bev, WRITE_MAX) == -1 ||
	    bufferevent_enable(c->bev, EV_WRITE) == -1 ||
	    bufferevent_socket_connect(c->bev, (struct sockaddr *)&ss, salen) == -1)
		die("cannot connect to %s port %u", ld->host, ld->port);
}

static void
connect_pubs(struct load *ld)
{
	ld->phase = PH_CONNECTING;
	ld->t_open = now_ns();
	for (unsigned i = 0; i < ld->npubs; i++)
		conn_open(&ld->pubs[i]);
}

/* Deals topics to n connections: connection i gets every topic t with
 * t % n == i, or topic i % ntopics when topics are fewer. */
static void
deal(struct load *ld, struct conn *c, unsigned i, unsigned n)
{
	c->topics = xcalloc(ld->ntopics / n + 1, sizeof(*c->topics));
	if (n >= ld->ntopics)
		c->topics[c->ntopics++] = i % ld->ntopics;
	else
		for (unsigned t = i; t < ld->ntopics; t += n)
			c->topics[c->ntopics++] = t;
}

static void
conns_init(struct load *ld)
{
	ld->ordered = ld->npubs >= ld->ntopics;
	ld->pubs = xcalloc(ld->npubs, sizeof(*ld->pubs));
	ld->subs = xcalloc(ld->nsubs ? ld->nsubs : 1, sizeof(*ld->subs));
	ld->topic_subs = xcalloc(ld->ntopics, sizeof(*ld->topic_subs));
	ld->topic_sublist = xcalloc(ld->ntopics, sizeof(*ld->topic_sublist));
	for (unsigned t = 0; t < ld->ntopics; t++)
		ld->topic_sublist[t] = xcalloc(ld->nsubs ? ld->nsubs : 1, sizeof(unsigned));
	ld->topic_sent = xcalloc(ld->ntopics, sizeof(*ld->topic_sent));
	ld->topic_names = xcalloc(ld->ntopics, sizeof(*ld->topic_names));
	for (unsigned t = 0; t < ld->ntopics; t++)
		xasprintf(&ld->topic_names[t], "%s/%u", ld->prefix, t);
	for (unsigned i = 0; i < ld->npubs; i++) {
		struct conn *c = &ld->pubs[i];

		*c = (struct conn){ .ld = ld, .role = R_PUB, .idx = i };
		deal(ld, c, i, ld->npubs);
		if (ld->qos > 0)
			c->pids = xcalloc(65536, 1);
	}
	for (unsigned j = 0; j < ld->nsubs; j++) {
		struct conn *c = &ld->subs[j];

		*c = (struct conn){ .ld = ld, .role = R_SUB, .idx = j };
		deal(ld, c, j, ld->nsubs);
		if (ld->wildcard)
			for (unsigned t = 0; t < ld->ntopics; t++)
				ld->topic_sublist[t][ld->topic_subs[t]++] = j;
		else
			for (unsigned k = 0; k < c->ntopics; k++) {
				unsigned t = c->topics[k];

				ld->topic_sublist[t][ld->topic_subs[t]++] = j;
			}
		c->seen = xcalloc(ld->npubs, sizeof(*c->seen));
		c->next_seq = xcalloc(ld->npubs, sizeof(*c->next_seq));
		c->seen_words = xcalloc(ld->npubs, sizeof(*c->seen_words));
	}
}

static void
conns_free(struct load *ld)
{
	for (unsigned i = 0; i < ld->npubs + ld->nsubs; i++) {
		struct conn *c = i < ld->npubs ? &ld->pubs[i] : &ld->subs[i - ld->npubs];

		if (c->rev != NULL)
			event_free(c->rev);
		if (c->bev != NULL)
			bufferevent_free(c->bev);
		if (c->in != NULL)
			evbuffer_free(c->in);
		wbuf_free(&c->w);
		free(c->topics);
		free(c->pids);
		if (c->seen != NULL)
			for (unsigned p = 0; p < ld->npubs; p++)
				free(c->seen[p]);
		free(c->seen);
		free(c->seen_words);
		free(c->next_seq);
	}
	free(ld->pubs);
	free(ld->subs);
	for (unsigned t = 0; t < ld->ntopics; t++) {
		free(ld->topic_sublist[t]);
		free(ld->topic_names[t]);
	}
	free(ld->topic_names);
	free(ld->topic_sublist);
	free(ld->topic_subs);
	free(ld->topic_sent);
}

/* ---------------------------------------------------------------- main */

/* Names the first missing message of each subscriber, for the record. */
static void
show_missing(const struct load *ld)
{
	for (unsigned j = 0; j < ld->nsubs; j++) {
		const struct conn *c = &ld->subs[j];

		for (unsigned p = 0; p < ld->npubs && c->got < c->due; p++) {
			const struct conn *pc = &ld->pubs[p];
			uint64_t seq;

			if (!ld->wildcard && pc->ntopics == 1 && c->ntopics == 1 &&
			    pc->topics[0] != c->topics[0])
				continue;
			for (seq = 0; seq < pc->seq; seq++)
				if (seq / 64 >= c->seen_words[p] ||
				    !(c->seen[p][seq / 64] & (1ull << (seq % 64))))
					break;
			if (seq < pc->seq) {
				fprintf(stderr, "mqtt_load: subscriber %u: %llu missing, the first "
				    "from publisher %u is its message %llu of %llu\n", j,
				    (unsigned long long)(c->due - c->got), p,
				    (unsigned long long)seq, (unsigned long long)pc->seq);
				break;
			}
		}
	}
}

static int
report(struct load *ld)
{
	double secs = ld->t_recv_end > ld->t_start ? (double)(ld->t_recv_end - ld->t_start) / 1e9 : 0;
	double psecs = ld->t_pub_end > ld->t_start ? (double)(ld->t_pub_end - ld->t_start) / 1e9 : 0;
	uint64_t lost = ld->expected > ld->received ? ld->expected - ld->received : 0;
	int rc = 0;

	printf("sent=%llu received=%llu dups=%llu lost=%llu seconds=%.3f pub_rate=%.1f/s "
	    "rate=%.1f/s p50_us=%.0f p99_us=%.0f gap_ms=%.1f ack_gap_ms=%.1f\n",
	    (unsigned long long)ld->sent,
	    (unsigned long long)ld->received, (unsigned long long)ld->dups,
	    (unsigned long long)lost, secs, psecs > 0 ? (double)ld->sent / psecs : 0.0,
	    secs > 0 ? (double)ld->received / secs : 0.0, percentile(ld, 50.0),
	    percentile(ld, 99.0), (double)ld->gap / 1e6, (double)ld->ack_gap / 1e6);
	fflush(stdout);
	if (ld->errors > 0) {
		fprintf(stderr, "mqtt_load: %llu errors\n", (unsigned long long)ld->errors);
		rc = 1;
	}
	if (lost > 0)
		show_missing(ld);
	if (lost > 0 && ld->errors == 0)
		fprintf(stderr, "mqtt_load: %llu of %llu deliveries missing after %u s without progress, "
		    "%llu publishes unacknowledged%s\n", (unsigned long long)lost,
		    (unsigned long long)ld->expected, ld->drain_s,
		    (unsigned long long)ld->inflight, ld->qos == 0 ? " (QoS 0: allowed)" : "");
	if (lost > 0 && ld->qos > 0)
		rc = 1;
	if (ld->dups > 0 && ld->qos != 1) {
		fprintf(stderr, "mqtt_load: %llu duplicates at QoS %u\n",
		    (unsigned long long)ld->dups, ld->qos);
		rc = 1;
	}
	if (ld->nsubs > 0 && ld->received == 0)
		rc = 1;
	return rc;
}

int
main(int argc, char **argv)
{
	struct timeval second = { 1, 0 };
	struct event_config *cfg;
	struct load *ld = xcalloc(1, sizeof(*ld));
	uint32_t magic = MAGIC;
	int rc;

	parse_args(ld, argc, argv);
	signal(SIGPIPE, SIG_IGN);
	/* Large payloads are allocated and freed at the top of the heap for
	 * every packet: glibc would give the memory back each time (brk, with
	 * a TLB shootdown on every core) and fault it in again, and the load
	 * would take the broker's CPU.  Keep it, as the broker does. */
	if (xmalloc_keep_freed() == -1)
		die("mallopt");
	ld->payload = xcalloc(ld->size, 1);
	for (size_t i = HDR_LEN; i < ld->size; i++)
		ld->payload[i] = (uint8_t)('a' + i % 26);
	memcpy(ld->payload, &magic, 4);
	if ((cfg = event_config_new()) == NULL ||
	    event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER) == -1 ||
	    (ld->base = event_base_new_with_config(cfg)) == NULL)
		die("cannot create the event base");
	event_config_free(cfg);
	ld->deadline_ev = evtimer_new(ld->base, on_deadline, ld);
	ld->watch_ev = event_new(ld->base, -1, EV_PERSIST, on_watch, ld);
	if (ld->deadline_ev == NULL || ld->watch_ev == NULL || event_add(ld->watch_ev, &second) == -1)
		die("cannot create timers");
	conns_init(ld);
	ld->t_open = now_ns();
	if (ld->nsubs == 0)
		connect_pubs(ld);
	for (unsigned j = 0; j < ld->nsubs; j++)
		conn_open(&ld->subs[j]);
	event_base_dispatch(ld->base);
	rc = report(ld);
	conns_free(ld);
	if (ld->tick_ev != NULL)
		event_free(ld->tick_ev);
	event_free(ld->deadline_ev);
	event_free(ld->watch_ev);
	event_base_free(ld->base);
	free(ld->payload);
	free(ld);
	return rc;
}
