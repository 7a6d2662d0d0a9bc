/* libFuzzer target for the IPC record codec and ipc_recv().
 *
 * Input: one selector byte, then the data.
 *   selector & 0x0f  0..14: the data goes to that dec_* decoder (the first 15
 *                    of the table below); 15: to all of them.
 *   selector & 0x30  what rides with the datagram: 0x00 nothing, 0x10 a pipe's
 *                    write end, 0x20 a sealed memfd, 0x30 an unsealed memfd.
 *                    With a memfd, the datagram is the first 8 bytes of the
 *                    data and the memfd holds the rest.
 * The datagram goes through a SEQPACKET socketpair to ipc_recv(); the
 * records that come out (one, or several packed) are decoded by type.
 *
 * Oracles, checked after every input: a body that decodes re-encodes to the
 * same bytes; ipc_recv() returns either the records that were sent, in
 * order, exactly covering the datagram, or EPROTO (ESTALE for a reference
 * to a ring, none being mapped), and leaves nothing behind in the socket;
 * the input leaves no fd open.
 *
 * Every input starts from a clean state: the socket is empty, and the fd
 * check compares against the lowest free fd taken when the input starts,
 * never against one taken once for the process: between inputs the
 * sanitizers and libFuzzer open fds of their own (the symbolizer's pipes,
 * started the first time libFuzzer prints a NEW_FUNC line, stay open).
 *
 * Build: make build/fuzz/fuzz_ipc.
 * Seed corpus (dec-*, rec-*, fd-*, memfd-*): build without -fsanitize=fuzzer
 * and with -DFUZZ_IPC_GEN_CORPUS, run with the corpus directory as argument:
 *   clang -std=c11 -D_GNU_SOURCE -DFUZZ_IPC_GEN_CORPUS -Icommon \
 *     tests/fuzz/fuzz_ipc.c common/ipc.c common/ipc_proto.c common/marshal.c \
 *     common/ipc_ring.c common/log.c common/xmalloc.c common/clock.c \
 *     common/fdio.c common/topic.c -o gen
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ipc.h"
#include "ipc_proto.h"
#include "topic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SEALS_ALL (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL)

enum attach { AT_NONE = 0x00, AT_PIPE = 0x10, AT_SEALED = 0x20, AT_UNSEALED = 0x30 };

#define check(cond) do { if (!(cond)) abort(); } while (0)

/* Decode, then re-encode and compare: the wire form is canonical. */
#define ROUND_TRIP(name)						\
	static int							\
	rt_##name(const uint8_t *b, size_t n)				\
	{								\
		struct rec_##name r;					\
		struct wbuf w;						\
									\
		if (dec_##name(b, n, &r) != 0)				\
			return -1;					\
		wbuf_init(&w);						\
		enc_##name(&w, &r);					\
		check(w.len == n);					\
		check(n == 0 || memcmp(w.data, b, n) == 0);		\
		wbuf_free(&w);						\
		return 0;						\
	}

ROUND_TRIP(config)
ROUND_TRIP(publish)
ROUND_TRIP(release)
ROUND_TRIP(release_owner)
ROUND_TRIP(attach)
ROUND_TRIP(detach)
ROUND_TRIP(unsub)
ROUND_TRIP(ack)
ROUND_TRIP(dlq_done)
ROUND_TRIP(ready)
ROUND_TRIP(done)
ROUND_TRIP(deadletter)
ROUND_TRIP(stats)

/* A delivery also round-trips once its strings and properties are copied
 * out of the body (as the master does for one in a ring). */
static int
rt_deliver(const uint8_t *b, size_t n)
{
	struct rec_deliver r;
	struct wbuf w, own;

	if (dec_deliver(b, n, &r) != 0)
		return -1;
	wbuf_init(&w);
	wbuf_init(&own);
	enc_deliver(&w, &r);
	check(w.len == n && memcmp(w.data, b, n) == 0);
	rec_deliver_own(&r, b, n, &own);
	check((const uint8_t *)r.topic >= own.data && (const uint8_t *)r.topic < own.data + own.len);
	wbuf_reset(&w);
	enc_deliver(&w, &r);
	check(w.len == n && memcmp(w.data, b, n) == 0);
	wbuf_free(&w);
	wbuf_free(&own);
	return 0;
}
ROUND_TRIP(deliver_rel)
ROUND_TRIP(full)

/* IDLE: the fixed fields, then its list of subscribers, then the copy of
 * the retained message. */
static int
rt_idle(const uint8_t *b, size_t n)
{
	struct rec_idle r;
	struct rec_deliver d;
	const char *key;
	size_t pos = 0;
	bool backlog;
	struct wbuf w;

	if (dec_idle(b, n, &r) != 0)
		return -1;
	wbuf_init(&w);
	enc_idle(&w, &r);
	while (idle_next_sub(&r, &pos, &key, &backlog))
		enc_idle_sub(&w, key, backlog);
	check(((r.flags & IDLE_RETAINED_COPY) != 0) == (dec_idle_copy(&r, &d) == 0));
	if (r.flags & IDLE_RETAINED_COPY)
		enc_idle_copy(&w, &d);
	check(w.len == n);
	check(memcmp(w.data, b, n) == 0);
	wbuf_free(&w);
	return 0;
}

static int
rt_stop(const uint8_t *b, size_t n)
{
	struct rec_stop r;
	struct wbuf w;

	if (dec_stop(b, n, &r) != 0)
		return -1;
	wbuf_init(&w);
	enc_stop(&w, &r);
	check(w.len == n);
	check(memcmp(w.data, b, n) == 0);
	wbuf_free(&w);
	return 0;
}

static int
rt_take(const uint8_t *b, size_t n)
{
	struct rec_take r;
	struct wbuf w;

	if (dec_take(b, n, &r) != 0)
		return -1;
	check(topic_check_name(r.topic, strlen(r.topic)) == TOPIC_OK);
	wbuf_init(&w);
	enc_take(&w, &r);
	check(w.len == n);
	check(memcmp(w.data, b, n) == 0);
	wbuf_free(&w);
	return 0;
}

static int
rt_spare(const uint8_t *b, size_t n)
{
	struct rec_spare r;
	struct wbuf w;

	if (dec_spare(b, n, &r) != 0)
		return -1;
	wbuf_init(&w);
	enc_spare(&w, &r);
	check(w.len == n);
	check(memcmp(w.data, b, n) == 0);
	wbuf_free(&w);
	return 0;
}

/* ROOM, RESUME and PING: no body. */
static int
rt_empty(const uint8_t *b, size_t n)
{
	if (dec_empty(b, n) != 0)
		return -1;
	check(n == 0);
	return 0;
}

static const struct {
	uint16_t type;
	int (*rt)(const uint8_t *, size_t);
} decoders[] = {
	{ IPC_CONFIG, rt_config }, { IPC_PUBLISH, rt_publish },
	{ IPC_RELEASE, rt_release }, { IPC_RELEASE_OWNER, rt_release_owner },
	{ IPC_ATTACH, rt_attach }, { IPC_DETACH, rt_detach },
	{ IPC_UNSUB, rt_unsub }, { IPC_ACK, rt_ack },
	{ IPC_DLQ_DONE, rt_dlq_done }, { IPC_READY, rt_ready },
	{ IPC_DONE, rt_done }, { IPC_DEADLETTER, rt_deadletter },
	{ IPC_STATS, rt_stats }, { IPC_DELIVER, rt_deliver },
	{ IPC_DELIVER_REL, rt_deliver_rel }, { IPC_FULL, rt_full },
	{ IPC_ROOM, rt_empty }, { IPC_RESUME, rt_empty },
	{ IPC_IDLE, rt_idle }, { IPC_STOP, rt_stop }, { IPC_PING, rt_empty },
	{ IPC_TAKE, rt_take }, { IPC_SPARE, rt_spare },
};
#define NDEC (sizeof(decoders) / sizeof(decoders[0]))

/* Runs a decoder on an exact-size heap copy, so reads past the end show. */
static void
decode(size_t i, const uint8_t *b, size_t n)
{
	uint8_t *copy = malloc(n ? n : 1);

	check(copy != NULL);
	if (n)
		memcpy(copy, b, n);
	(void)decoders[i].rt(copy, n);
	free(copy);
}

static int sv[2] = { -1, -1 };
static int pipefd[2] = { -1, -1 };

static int
lowest_free(void)
{
	int fd = fcntl(0, F_DUPFD, 0);

	check(fd != -1);
	close(fd);
	return fd;
}

static void
setup(void)
{
	int sz = 1 << 20;

	check(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
	(void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	check(pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) == 0);
}

static int
make_memfd(const uint8_t *p, size_t n, bool sealed)
{
	int fd = memfd_create("fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	check(fd != -1);
	check(n == 0 || write(fd, p, n) == (ssize_t)n);
	if (sealed)
		check(fcntl(fd, F_ADD_SEALS, SEALS_ALL) == 0);
	return fd;
}

static void
send_datagram(const uint8_t *p, size_t n, int fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct iovec iov = { .iov_base = (void *)p, .iov_len = n };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (fd != -1) {
		memset(&cm, 0, sizeof(cm));
		msg.msg_control = cm.buf;
		msg.msg_controllen = sizeof(cm.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	check(sendmsg(sv[0], &msg, MSG_NOSIGNAL) == (ssize_t)n);
}

/* Checks a record that ipc_recv accepted against what was sent at the
 * start of dgram (dlen bytes left of the datagram); returns its size. */
static size_t
check_record(const struct ipc_msg *m, const uint8_t *dgram, size_t dlen,
	     const uint8_t *rest, size_t rlen, enum attach at)
{
	struct ipc_hdr h;

	check(dlen >= sizeof(h));
	memcpy(&h, dgram, sizeof(h));
	check(m->type == h.type && m->len == h.len);
	check((m->len == 0) == (m->body == NULL));
	if (h.flags & IPC_F_MEMFD) {
		check(at == AT_SEALED && dlen == sizeof(h));
		check(m->len == rlen && m->len > IPC_MAX_INLINE);
		check(memcmp(m->body, rest, rlen) == 0);
		check(m->fd == -1 && m->flags == 0);
	} else {
		check(m->len <= dlen - sizeof(h));
		check(m->len == 0 || memcmp(m->body, dgram + sizeof(h), m->len) == 0);
		/* Any fd may ride as the caller's, a memfd too, alone. */
		check((m->fd != -1) == ((h.flags & IPC_F_FD) != 0));
		check(m->fd == -1 || (at != AT_NONE && m->len == dlen - sizeof(h)));
		check(m->flags == (h.flags & IPC_F_FD));
		check(m->fd == -1 || (fcntl(m->fd, F_GETFD) & FD_CLOEXEC));
	}
	for (size_t i = 0; i < NDEC; i++)
		if (decoders[i].type == m->type)
			decode(i, m->body, m->len);
	return sizeof(h) + ((h.flags & IPC_F_MEMFD) ? 0 : m->len);
}

/* Does the datagram hold, in its records' framing, a reference to a body
 * in a ring (IPC_F_RING)?  No ring is mapped here: ipc_recv() says ESTALE
 * for one that is well formed. */
static bool
has_ring_ref(const uint8_t *dgram, size_t dlen)
{
	struct ipc_hdr h;

	for (size_t off = 0; dlen - off >= sizeof(h); off += sizeof(h) + h.len) {
		memcpy(&h, dgram + off, sizeof(h));
		if (h.flags == IPC_F_RING && h.len == sizeof(struct ipc_ring_ref))
			return true;
		if (h.len > dlen - off - sizeof(h))
			break;
	}
	return false;
}

/* Runs one non-empty input: the decoders, then the datagram through
 * ipc_recv(), which takes it as one record or several. */
static void
run_input(const uint8_t *data, size_t size)
{
	const uint8_t *p = data + 1, *dgram, *rest = NULL;
	size_t n = size - 1, dlen, rlen = 0;
	struct ipc_reader r = { 0 };
	enum attach at;
	struct ipc_msg m;
	int fd = -1, rc;

	if ((data[0] & 0x0f) < 15)
		decode(data[0] & 0x0f, p, n);
	else
		for (size_t i = 0; i < NDEC; i++)
			decode(i, p, n);

	at = (enum attach)(data[0] & 0x30);
	dgram = p;
	dlen = n;
	switch (at) {
	case AT_NONE:
		if (n == 0)
			return;			/* an empty datagram reads as EOF */
		break;
	case AT_PIPE:
		fd = pipefd[1];
		break;
	case AT_SEALED:
	case AT_UNSEALED:
		dlen = n < IPC_HDR_SIZE ? n : IPC_HDR_SIZE;
		rest = p + dlen;
		rlen = n - dlen;
		fd = make_memfd(rest, rlen, at == AT_SEALED);
		break;
	}
	if (dlen > 256 * 1024) {		/* more than the socket takes at once */
		if (at == AT_SEALED || at == AT_UNSEALED)
			close(fd);
		return;
	}
	send_datagram(dgram, dlen, fd);
	if (at == AT_SEALED || at == AT_UNSEALED)
		close(fd);

	errno = 0;
	rc = ipc_recv(sv[1], &r, &m);
	check(rc != 0);
	if (rc == 1) {
		/* Every record of the datagram, in order, and nothing else. */
		size_t off = check_record(&m, dgram, dlen, rest, rlen, at);

		ipc_msg_clear(&m);
		while (ipc_reader_left(&r) > 0) {
			check(ipc_recv(sv[1], &r, &m) == 1 && off < dlen);
			off += check_record(&m, dgram + off, dlen - off, rest, rlen, at);
			ipc_msg_clear(&m);
		}
		check(off == dlen);
	} else {
		check(errno == EPROTO || (errno == ESTALE && has_ring_ref(dgram, dlen)));
		check(m.body == NULL && m.fd == -1);
		check(ipc_reader_left(&r) == 0);
	}
	ipc_reader_clear(&r);
	check(ipc_recv(sv[1], NULL, &m) == -1 && errno == EAGAIN);
}

/* The harness closes its memfd before ipc_recv() runs, so an fd that
 * ipc_recv() installs takes the lowest free number: left open, it moves
 * the lowest free fd. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int first_free;

	if (size == 0)
		return 0;
	if (sv[0] == -1)
		setup();
	first_free = lowest_free();
	run_input(data, size);
	check(lowest_free() == first_free);
	return 0;
}

#ifdef FUZZ_IPC_GEN_CORPUS
/* Writes one valid encoding of each record, as a decoder input and as a
 * datagram, into the directory given as argument. */
#include <stdio.h>

static const char *dir;

static void
put_file(const char *name, uint8_t sel, const void *hdr, size_t hlen, const struct wbuf *w)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	check(f != NULL);
	check(fwrite(&sel, 1, 1, f) == 1);
	check(hlen == 0 || fwrite(hdr, 1, hlen, f) == hlen);
	check(w->len == 0 || fwrite(w->data, 1, w->len, f) == w->len);
	check(fclose(f) == 0);
}

/* dec-NAME: selector i and the body; rec-NAME: every decoder, and a
 * datagram of the right type; fd-NAME: the same with a pipe attached. */
static void
seed(size_t i, const char *name, const struct wbuf *w)
{
	struct ipc_hdr h = { .type = decoders[i].type, .len = (uint32_t)w->len };
	char fname[64];

	check(decoders[i].rt(w->data, w->len) == 0);
	snprintf(fname, sizeof(fname), "dec-%s", name);
	put_file(fname, (uint8_t)(i < 15 ? i : 0x0f), NULL, 0, w);	/* past 14: all */
	snprintf(fname, sizeof(fname), "rec-%s", name);
	put_file(fname, 0x0f, &h, sizeof(h), w);
	h.flags = IPC_F_FD;
	snprintf(fname, sizeof(fname), "fd-%s", name);
	put_file(fname, 0x0f | AT_PIPE, &h, sizeof(h), w);
}

/* The three seeds of a record kind, under another name. */
static void
rename_seeds(const char *from, const char *to)
{
	static const char *const kinds[] = { "dec", "rec", "fd" };
	char a[512], b[512];

	for (size_t i = 0; i < 3; i++) {
		snprintf(a, sizeof(a), "%s/%s-%s", dir, kinds[i], from);
		snprintf(b, sizeof(b), "%s/%s-%s", dir, kinds[i], to);
		check(rename(a, b) == 0);
	}
}

#define SEED(idx, name, ...) do {					\
		struct rec_##name r = { __VA_ARGS__ };			\
		wbuf_reset(&w);						\
		enc_##name(&w, &r);					\
		seed(idx, #name, &w);					\
} while (0)

/* The MQTT 5 side (properties, expiry, origin, shares, members) under
 * names of their own, then the plain records again under theirs. */
static void
seed_v5(struct wbuf *w_, const uint8_t *pl_, size_t pl_len)
{
	static const uint8_t props[] = { 0x03, 0x00, 0x01, 'a' };
	struct wbuf w = *w_;
	const uint8_t *pl = pl_;

	SEED(1, publish, .req = 1, .owner = "", .pubid = 0, .qos = 1, .flags = PF_RETAIN,
	     .time_ms = 1000, .payload = pl, .payload_len = pl_len, .props = props,
	     .props_len = sizeof(props), .expiry_ms = 61000, .origin = "c1");
	rename_seeds("publish", "publish_ext");
	SEED(13, deliver, .topic = "a/b", .seq = 1, .qos = 1, .flags = DF_PUBRETAIN,
	     .payload = pl, .payload_len = pl_len, .props = props,
	     .props_len = sizeof(props), .expiry_ms = 61000, .origin = "c1",
	     .share = "$share/g/a/b");
	rename_seeds("deliver", "deliver_ext");
	SEED(4, attach, .req = 3, .subkey = SHARE_KEY_PREFIX "g/a/b", .mode = MODE_MQTT,
	     .qos = 1, .window = 10, .member = "m/c1");
	rename_seeds("attach", "attach_member");
	SEED(5, detach, .subkey = SHARE_KEY_PREFIX "g/a/b", .member = "m/c1");
	rename_seeds("detach", "detach_member");
	SEED(6, unsub, .req = 4, .subkey = SHARE_KEY_PREFIX "g/a/b", .flags = UF_FORGET,
	     .member = "m/c1");
	rename_seeds("unsub", "unsub_member");
	/* ... and again the plain ones, under their own names. */
	SEED(1, publish, .req = 1, .owner = "m/c1", .pubid = 7, .qos = 1,
	     .flags = PF_RETAIN, .time_ms = 1000, .payload = pl, .payload_len = pl_len);
	SEED(13, deliver, .topic = "a/b", .seq = 1, .qos = 2, .flags = DF_DUP,
	     .payload = pl, .payload_len = pl_len);
	SEED(4, attach, .req = 3, .subkey = "m/c1", .mode = MODE_MQTT, .qos = 1,
	     .flags = AF_RETAINED, .window = 10);
	SEED(5, detach, .subkey = "m/c1");
	SEED(6, unsub, .req = 4, .subkey = "m/c1", .flags = UF_FORGET);
	*w_ = w;
}

int
main(int argc, char **argv)
{
	static const uint8_t pl[] = { 'h', 'i', 0, 0xff };
	struct wbuf w;

	if (argc != 2)
		return 2;
	dir = argv[1];
	wbuf_init(&w);
	SEED(0, config, .version = IPC_PROTO_VERSION, .retry_ms = 30000, .max_attempts = 5, .checkpoint_kib = 1024,
	     .max_queued = 100, .sync = 1, .log_level = 2, .boot_id = 42, .dlq_topic = "$DLQ");
	SEED(1, publish, .req = 1, .owner = "m/c1", .pubid = 7, .qos = 1,
	     .flags = PF_RETAIN, .time_ms = 1000, .payload = pl, .payload_len = sizeof(pl));
	SEED(2, release, .req = 2, .owner = "j/u", .pubid = 7);
	SEED(3, release_owner, .req = 8, .owner = "j/u");
	SEED(4, attach, .req = 3, .subkey = "m/c1", .mode = MODE_MQTT, .qos = 1,
	     .flags = AF_RETAINED, .window = 10);
	SEED(5, detach, .subkey = "m/c1");
	SEED(6, unsub, .req = 4, .subkey = "m/c1", .flags = UF_FORGET);
	SEED(7, ack, .subkey = "j/u", .seq = 9, .kind = ACK_PUBREC);
	SEED(8, dlq_done, .req = 5);
	SEED(9, ready, .version = IPC_PROTO_VERSION, .topic = "a/b", .next_seq = 1);
	SEED(10, done, .req = 6, .status = ST_OK, .seq = 10);
	SEED(11, deadletter, .req = 7, .reason = "max_attempts", .subkey = "j/u", .seq = 3,
	     .flags = PF_JSON, .time_ms = 5, .payload = pl, .payload_len = sizeof(pl));
	SEED(12, stats, 1, 1, 1, 2, 1, 4, 0, 0, 1, 1);
	SEED(13, deliver, .topic = "a/b", .seq = 1, .qos = 2, .flags = DF_DUP,
	     .payload = pl, .payload_len = sizeof(pl));
	SEED(14, deliver_rel, .topic = "a/b", .seq = 1);
	SEED(15, full, .reason = "max_topic_size");
	seed_v5(&w, pl, sizeof(pl));
	struct rec_idle idle = { .rx = 12, .next_seq = 40, .bytes = 300, .disk_bytes = 9000,
				 .flags = IDLE_RETAINED | IDLE_FINAL, .nsubs = 2 };
	wbuf_reset(&w);
	enc_idle(&w, &idle);
	enc_idle_sub(&w, "m/c1", true);
	enc_idle_sub(&w, "j/u", false);
	seed(18, "idle", &w);
	struct rec_deliver copy = { .topic = "", .seq = 39, .qos = 1,
				    .flags = DF_RETAIN | DF_PUBRETAIN, .payload = pl,
				    .payload_len = sizeof(pl), .expiry_ms = 61000,
				    .origin = "c1", .share = "" };
	idle.flags |= IDLE_RETAINED_COPY;
	wbuf_reset(&w);
	enc_idle(&w, &idle);
	enc_idle_sub(&w, "m/c1", true);
	enc_idle_sub(&w, "j/u", false);
	enc_idle_copy(&w, &copy);
	seed(18, "idle_copy", &w);
	SEED(19, stop, .flags = STOP_CHECKPOINT);
	SEED(21, take, .topic = "a/b");
	SEED(22, spare, .flags = SPARE_DELETED);

	/* Three records packed in one datagram. */
	struct ipc_out out = { 0 };
	struct rec_done dn = { .req = 6, .status = ST_OK, .seq = 10 };
	wbuf_reset(&w);
	enc_done(&w, &dn);
	check(ipc_out_add(&out, IPC_DONE, w.data, w.len) == 0);
	check(ipc_out_add(&out, IPC_DONE, w.data, w.len) == 0);
	check(ipc_out_add(&out, IPC_ROOM, NULL, 0) == 0);
	struct wbuf packed = { out.buf, out.len, out.len };
	put_file("rec-packed", 0x0f, NULL, 0, &packed);
	ipc_out_free(&out);

	/* References to bodies in a ring: alone, and packed between records. */
	struct ipc_ring_ref ref = { .id = 0x1122334455667788ull, .off = 64, .len = 20000 };
	memset(&out, 0, sizeof(out));
	check(ipc_out_add_ref(&out, IPC_PUBLISH, &ref) == 0);
	struct wbuf alone = { out.buf, out.len, out.len };
	put_file("rec-ring-ref", 0x0f, NULL, 0, &alone);
	ipc_out_free(&out);
	check(ipc_out_add(&out, IPC_DONE, w.data, w.len) == 0);
	check(ipc_out_add_ref(&out, IPC_DELIVER, &ref) == 0);
	check(ipc_out_add(&out, IPC_ROOM, NULL, 0) == 0);
	struct wbuf mixed = { out.buf, out.len, out.len };
	put_file("rec-ring-packed", 0x0f, NULL, 0, &mixed);
	ipc_out_free(&out);

	/* A record whose body is in a sealed memfd, and an unsealed one. */
	struct ipc_hdr h = { .type = IPC_DELIVER, .flags = IPC_F_MEMFD };
	struct rec_deliver big = { .topic = "a/b", .seq = 2, .qos = 1 };
	uint8_t *blob = calloc(IPC_MAX_INLINE, 1);
	check(blob != NULL);
	big.payload = blob;
	big.payload_len = IPC_MAX_INLINE;
	wbuf_reset(&w);
	enc_deliver(&w, &big);
	h.len = (uint32_t)w.len;
	put_file("memfd-deliver", 0x0f | AT_SEALED, &h, sizeof(h), &w);
	put_file("memfd-unsealed", 0x0f | AT_UNSEALED, &h, sizeof(h), &w);
	free(blob);
	wbuf_free(&w);
	return 0;
}
#endif
