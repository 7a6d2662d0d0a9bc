/* topicd in a test, driven as the master would: records go into
 * dispatch_msg(), answers come back on a real channel, deliveries on real
 * SOCK_SEQPACKET session sockets (setup and teardown make and remove the
 * topicd with its store in a temporary directory). */
#ifndef TESTS_UNIT_TOPICD_FIXTURE_H
#define TESTS_UNIT_TOPICD_FIXTURE_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "clock.h"
#include "ipc.h"
#include "kvstore.h"
#include "log.h"
#include "topicd.h"
#include "xmalloc.h"

struct fx {
	char		dir[256];
	struct topicd	td;
	int		master;		/* the master's end of the channel */
	struct wbuf	w;
};

/* What a datagram read from a socket held beyond its first record, by
 * socket (the topicd packs its records). */
static struct ipc_reader readers[1024];

static struct fx *cur;		/* the test's fixture */

/* The reader of fd; for the master's end, what the topicd's channel
 * queued is written first (a channel writes from its event loop). */
static inline struct ipc_reader *
rd(int fd)
{
	assert_true(fd >= 0 && fd < 1024);
	if (cur != NULL && fd == cur->master)
		assert_int_equal(ipc_chan_flush(cur->td.chan, 1000), 0);
	return &readers[fd];
}

static inline int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static inline void
on_msg(struct ipc_chan *c, struct ipc_msg *m, void *arg)
{
	(void)c;
	dispatch_msg(arg, m);
}

static inline void
on_err(struct ipc_chan *c, int err, void *arg)
{
	(void)c;
	(void)arg;
	fail_msg("channel error %d", err);
}

static inline void
rec(struct fx *f, uint16_t type, int fd)
{
	struct ipc_msg m = { .type = type, .flags = fd != -1 ? IPC_F_FD : 0,
			     .len = (uint32_t)f->w.len, .fd = fd };

	m.body = m.mem = f->w.len ? xmemdup(f->w.data, f->w.len) : NULL;
	dispatch_msg(&f->td, &m);
	ipc_msg_clear(&m);
	wbuf_reset(&f->w);
}

static inline void
stop(struct fx *f, uint8_t flags)
{
	struct rec_stop r = { flags };

	enc_stop(&f->w, &r);
	rec(f, IPC_STOP, -1);
}

/* The batch's end, and its sync done (the store runs its jobs inline
 * here: see setup). */
static inline void
batch(struct fx *f)
{
	dispatch_end_batch(&f->td);
	for (int i = 0; i < 4 && !gate_clear(&f->td); i++)
		dispatch_durable(&f->td);
}

static inline void
config(struct fx *f, uint32_t retry_ms, uint32_t attempts, uint64_t max_bytes)
{
	struct rec_config c = { .version = IPC_PROTO_VERSION, .retry_ms = retry_ms, .max_attempts = attempts,
				.max_bytes = max_bytes, .log_level = LOG_LVL_ERR,
				.boot_id = 1, .dlq_topic = "$DLQ", .sync = 1 };

	enc_config(&f->w, &c);
	rec(f, IPC_CONFIG, -1);
	batch(f);
}

static inline int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");
	int sv[2];

	log_init("test", LOG_LVL_ERR, LOG_DEST_STDERR, NULL);
	snprintf(f->dir, sizeof(f->dir), "%s/topicd-deliver.XXXXXX", tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	topicd_init(&f->td, "t/x", f->dir, false);
	assert_int_equal(topicd_open(&f->td), 0);
	kv_set_inline(f->td.kv, 1);
	assert_non_null(f->td.base = event_base_new());
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	f->td.chan = ipc_chan_new(f->td.base, sv[0], on_msg, on_err, &f->td);
	f->master = sv[1];
	wbuf_init(&f->w);
	cur = f;
	config(f, 10000, 5, 0);
	*state = f;
	return 0;
}

static inline int
teardown(void **state)
{
	struct fx *f = *state;

	topicd_close(&f->td);
	ipc_chan_free(f->td.chan);
	event_base_free(f->td.base);
	close(f->master);
	cur = NULL;
	for (size_t i = 0; i < sizeof(readers) / sizeof(readers[0]); i++)
		ipc_reader_clear(&readers[i]);
	wbuf_free(&f->w);
	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static inline void
publish(struct fx *f, uint64_t req, uint8_t qos, uint8_t flags, const char *owner,
    uint32_t pubid, const void *payload, size_t len)
{
	struct rec_publish p = { .req = req, .owner = owner, .pubid = pubid, .qos = qos,
				 .flags = flags, .time_ms = 1000, .payload = payload,
				 .payload_len = len };

	enc_publish(&f->w, &p);
	rec(f, IPC_PUBLISH, -1);
}

static inline void
publish_s(struct fx *f, uint64_t req, uint8_t qos, const char *payload)
{
	publish(f, req, qos, 0, "", 0, payload, strlen(payload));
}

/* Attaches subkey with a new session socket; returns the session's end. */
static inline int
attach(struct fx *f, const char *key, uint8_t mode, uint8_t qos, uint16_t window,
    uint8_t flags, uint64_t req)
{
	struct rec_attach a = { .req = req, .subkey = key, .mode = mode, .qos = qos,
				.flags = flags, .window = window };
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	enc_attach(&f->w, &a);
	rec(f, IPC_ATTACH, sv[0]);
	return sv[1];
}

/* An ack of key's delivery for share ("$share/G/F"), or "" as from a
 * JSON-lines subscriber (its own, or else a group's). */
static inline void
ack_for(struct fx *f, const char *key, const char *share, uint64_t seq, uint8_t kind)
{
	struct rec_ack a = { key, seq, kind, share };

	enc_ack(&f->w, &a);
	rec(f, IPC_ACK, -1);
}

static inline void
ack(struct fx *f, const char *key, uint64_t seq, uint8_t kind)
{
	ack_for(f, key, "", seq, kind);
}

/* The next record on fd, which must be of type; an IDLE (which a topicd
 * with no subscriber online sends after each batch) is passed over unless
 * it is the one asked for. */
static inline void
get(int fd, struct ipc_msg *m, uint16_t type)
{
	int rc;

	while ((rc = ipc_recv(fd, rd(fd), m)) == 1 && m->type == IPC_IDLE && type != IPC_IDLE)
		ipc_msg_clear(m);

	if (rc != 1)
		fail_msg("expected %s, got rc %d (%s)", ipc_type_name(type), rc,
		    rc == -1 ? strerror(errno) : "EOF");
	if (m->type != type)
		fail_msg("expected %s, got %s", ipc_type_name(type), ipc_type_name(m->type));
}

/* The next record to the master that is not an IDLE (a topicd with no
 * subscriber online says IDLE after every batch); 0 when there is none. */
static inline int
master_next(struct fx *f, struct ipc_msg *m)
{
	int rc;

	while ((rc = ipc_recv(f->master, rd(f->master), m)) == 1 && m->type == IPC_IDLE)
		ipc_msg_clear(m);
	return rc == 1;
}

static inline void
expect_done(struct fx *f, uint64_t req, uint32_t status, uint64_t seq)
{
	struct ipc_msg m;
	struct rec_done d;

	if (!master_next(f, &m) || m.type != IPC_DONE)
		fail_msg("expected DONE for request %llu, got %s", (unsigned long long)req, ipc_type_name(m.type));
	assert_int_equal(dec_done(m.body, m.len, &d), 0);
	assert_int_equal(d.req, req);
	assert_int_equal(d.status, status);
	assert_int_equal(d.seq, seq);
	ipc_msg_clear(&m);
}

static inline void
expect_deliver(int fd, uint64_t seq, uint8_t qos, uint8_t flags, const char *payload)
{
	struct ipc_msg m;
	struct rec_deliver d;

	get(fd, &m, IPC_DELIVER);
	assert_int_equal(dec_deliver(m.body, m.len, &d), 0);
	assert_string_equal(d.topic, "t/x");
	assert_int_equal(d.seq, seq);
	assert_int_equal(d.qos, qos);
	assert_int_equal(d.flags, flags);
	assert_int_equal(d.payload_len, strlen(payload));
	assert_memory_equal(d.payload, payload, d.payload_len);
	ipc_msg_clear(&m);
}

static inline void
expect_rel(int fd, uint64_t seq)
{
	struct ipc_msg m;
	struct rec_deliver_rel d;

	get(fd, &m, IPC_DELIVER_REL);
	assert_int_equal(dec_deliver_rel(m.body, m.len, &d), 0);
	assert_int_equal(d.seq, seq);
	ipc_msg_clear(&m);
}

static inline void
expect_nothing(int fd)
{
	struct ipc_msg m;

	assert_int_equal(ipc_recv(fd, rd(fd), &m), -1);
	assert_int_equal(errno, EAGAIN);
}

static inline void
wait_readable_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* Runs the topicd's loop until fd is readable; fails after ms. */
static inline void
wait_readable(struct fx *f, int fd, int ms)
{
	int64_t deadline = mono_ms() + ms;
	struct timeval tick = { 0, 50 * 1000 };
	struct event *t = event_new(f->td.base, -1, EV_PERSIST, wait_readable_tick, NULL);
	bool readable;
	char c;

	assert_non_null(t);
	assert_int_equal(evtimer_add(t, &tick), 0);	/* the loop returns, at worst */
	while (!(readable = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 1) &&
	    mono_ms() < deadline)
		event_base_loop(f->td.base, EVLOOP_ONCE);
	event_free(t);
	assert_true(readable);
}

#endif
