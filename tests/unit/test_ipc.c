/* Records over real SEQPACKET socketpairs: fd passing, memfd bodies,
 * back-pressure, every protocol error, and the libevent channel. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "ipc.h"

#define SEALS_ALL (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL)
#define MIB (1024u * 1024)

/* --- helpers -------------------------------------------------------- */

static void
pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv), 0);
}

/* A pipe whose read end does not block: read() says 0 only once every copy
 * of the write end is closed, -1/EAGAIN while one is still open. */
static void
nb_pipe(int p[2])
{
	assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
}

static bool
pipe_writers_gone(int rfd)
{
	char c;
	ssize_t n = read(rfd, &c, 1);

	if (n == 0)
		return true;
	assert_int_equal(n, -1);
	assert_int_equal(errno, EAGAIN);
	return false;
}

static int
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	assert_non_null(d);
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

/* Body i of a test: its index in the first 4 bytes, then a pattern. */
static void
fill_body(uint8_t *b, size_t len, uint32_t i)
{
	for (size_t k = 0; k < len; k++)
		b[k] = (uint8_t)(i * 31 + k * 7 + (k >> 8));
	if (len >= 4)
		memcpy(b, &i, 4);
}

static bool
body_ok(const uint8_t *b, size_t len, uint32_t *idx)
{
	uint32_t i = 0;

	if (len >= 4)
		memcpy(&i, b, 4);
	for (size_t k = 4; k < len; k++)
		if (b[k] != (uint8_t)(i * 31 + k * 7 + (k >> 8)))
			return false;
	*idx = i;
	return true;
}

static uint8_t *
make_body(size_t len, uint32_t i)
{
	uint8_t *b = malloc(len ? len : 1);

	assert_non_null(b);
	fill_body(b, len, i);
	return b;
}

/* Sends one raw datagram with nfds copies of fds[] in one SCM_RIGHTS. */
static void
raw_send(int sock, const void *data, size_t len, const int *fds, int nfds)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * 32)];
	} cm;
	struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	assert_true(nfds <= 32);
	if (nfds > 0) {
		memset(&cm, 0, sizeof(cm));
		msg.msg_control = cm.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	assert_int_equal(sendmsg(sock, &msg, MSG_NOSIGNAL), (ssize_t)len);
}

/* A header followed by blen body bytes (a pattern), as one datagram. */
static void
raw_record(int sock, uint16_t type, uint16_t flags, uint32_t hlen, size_t blen,
	   const int *fds, int nfds)
{
	struct ipc_hdr h = { .type = type, .flags = flags, .len = hlen };
	uint8_t *buf = malloc(sizeof(h) + blen);

	assert_non_null(buf);
	memcpy(buf, &h, sizeof(h));
	fill_body(buf + sizeof(h), blen, 0);
	raw_send(sock, buf, sizeof(h) + blen, fds, nfds);
	free(buf);
}

/* A memfd holding len pattern bytes, with the given seals. */
static int
memfd_with(size_t len, size_t fill, int seals)
{
	int fd = memfd_create("test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	uint8_t *b = make_body(fill, 0);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, b, fill), (ssize_t)fill);
	free(b);
	if (len != fill)
		assert_int_equal(ftruncate(fd, (off_t)len), 0);
	if (seals)
		assert_int_equal(fcntl(fd, F_ADD_SEALS, seals), 0);
	return fd;
}

/* After a discarded record: the socket has nothing more, still works,
 * and no fd leaked. */
static void
expect_next_ok(int sv[2], int fds_before)
{
	struct ipc_msg m;

	assert_int_equal(ipc_recv(sv[1], NULL, &m), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(ipc_send(sv[0], 9, "ok", 2, -1), 0);
	assert_int_equal(ipc_recv(sv[1], NULL, &m), 1);
	assert_int_equal(m.type, 9);
	assert_int_equal(m.len, 2);
	assert_memory_equal(m.body, "ok", 2);
	ipc_msg_clear(&m);
	assert_int_equal(count_fds(), fds_before);
}

/* The next record is a protocol error and was discarded. */
static void
expect_eproto(int sv[2], int fds_before)
{
	struct ipc_msg m;

	errno = 0;
	assert_int_equal(ipc_recv(sv[1], NULL, &m), -1);
	assert_int_equal(errno, EPROTO);
	assert_null(m.body);
	assert_int_equal(m.fd, -1);
	expect_next_ok(sv, fds_before);
}

/* --- ipc_send / ipc_recv -------------------------------------------- */

static void
test_send_recv(void **state)
{
	int sv[2];
	struct ipc_msg m;

	(void)state;
	pair(sv);
	assert_int_equal(ipc_send(sv[0], 7, "hello", 5, -1), 0);
	assert_int_equal(ipc_send(sv[0], 0xffff, "x", 1, -1), 0);
	assert_int_equal(ipc_recv(sv[1], NULL, &m), 1);
	assert_int_equal(m.type, 7);
	assert_int_equal(m.flags, 0);
	assert_int_equal(m.len, 5);
	assert_memory_equal(m.body, "hello", 5);
	assert_int_equal(m.fd, -1);
	ipc_msg_clear(&m);
	assert_null(m.body);
	assert_int_equal(ipc_recv(sv[1], NULL, &m), 1);
	assert_int_equal(m.type, 0xffff);
	assert_int_equal(m.len, 1);
	ipc_msg_clear(&m);
	errno = 0;
	assert_int_equal(ipc_recv(sv[1], NULL, &m), -1);	/* nothing there */
	assert_int_equal(errno, EAGAIN);
	/* Both ways. */
	assert_int_equal(ipc_send(sv[1], 8, "back", 4, -1), 0);
	assert_int_equal(ipc_recv(sv[0], NULL, &m), 1);
	assert_int_equal(m.type, 8);
	assert_memory_equal(m.body, "back", 4);
	ipc_msg_clear(&m);
	close(sv[0]);
	close(sv[1]);
}

static void
test_send_recv_fd(void **state)
{
	int sv[2], p[2];
	struct ipc_msg m;
	struct stat a, b;
	char buf[8];

	(void)state;
	pair(sv);
	assert_int_equal(pipe(p), 0);			/* no O_CLOEXEC on purpose */
	assert_int_equal(fcntl(p[1], F_GETFD) & FD_CLOEXEC, 0);
	assert_int_equal(ipc_send(sv[0], 3, "fd", 2, p[1]), 0);
	assert_true(fcntl(p[1], F_GETFD) != -1);	/* the sender keeps its fd */
	assert_int_equal(ipc_recv(sv[1], NULL, &m), 1);
	assert_int_equal(m.type, 3);
	assert_int_equal(m.flags, IPC_F_FD);
	assert_int_equal(m.len, 2);
	assert_memory_equal(m.body, "fd", 2);
	assert_true(m.fd >= 0);
	assert_true(m.fd != p[1]);
	assert_true(fcntl(m.fd, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(fstat(m.fd, &a), 0);
	assert_int_equal(fstat(p[1], &b), 0);
	assert_true(a.st_dev == b.st_dev && a.st_ino == b.st_ino);
	assert_int_equal(write(m.fd, "ping", 4), 4);
	assert_int_equal(read(p[0], buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "ping", 4);
	ipc_msg_clear(&m);				/* closes the received fd */
	assert_int_equal(m.fd, -1);
	close(p[1]);
	assert_int_equal(read(p[0], buf, sizeof(buf)), 0);	/* every writer gone */
	close(p[0]);

	/* An fd with an empty body. */
	nb_pipe(p);
	assert_int_equal(ipc_send(sv[0], 4, NULL, 0, p[1]), 0);
	assert_int_equal(ipc_recv(sv[1], NULL, &m), 1);
	assert_int_equal(m.len, 0);
	assert_null(m.body);
	assert_int_equal(m.flags, IPC_F_FD);
	assert_true(m.fd >= 0);
	close(p[1]);
	assert_false(pipe_writers_gone(p[0]));		/* the received copy is open */
	ipc_msg_clear(&m);
	assert_true(pipe_writers_gone(p[0]));
	close(p[0]);
	close(sv[0]);
	close(sv[1]);
}

static void
test_empty_body(void **state)
{
	int sv[2];
	struct ipc_msg m;

	(void)state;
	pair(sv);
	assert_int_equal(ipc_send(sv[0], 12, NULL, 0, -1), 0);
	assert_int_equal(ipc_send(sv[0], 13, "", 0, -1), 0);
	assert_int_equal(ipc_recv(sv[1], NULL, &m), 1);	/* a record, not EOF */
	assert_int_equal(m.type, 12);
	assert_int_equal(m.len, 0);
	assert_null(m.body);
	assert_int_equal(m.fd, -1);
	ipc_msg_clear(&m);
	assert_int_equal(ipc_recv(sv[1], NULL, &m), 1);
	assert_int_equal(m.type, 13);
	assert_int_equal(m.len, 0);
	ipc_msg_clear(&m);
	close(sv[0]);
	close(sv[1]);
}

/* Sends a body of len bytes and checks how it travelled and what arrived. */
static void
big_body(size_t len, bool inline_expected, bool in_parts)
{
	int sv[2], before;
	struct ipc_msg m;
	struct ipc_hdr h;
	uint8_t *body = make_body(len, 77), *peek;
	/* Parts of uneven sizes, one of them empty. */
	struct iovec iov[4] = { { body, 3 }, { body + 3, 0 }, { body + 3, len / 2 },
	    { body + 3 + len / 2, len - 3 - len / 2 } };
	ssize_t n;

	pair(sv);
	before = count_fds();
	if (in_parts)
		assert_int_equal(ipc_sendv(sv[0], 21, iov, 4), 0);
	else
		assert_int_equal(ipc_send(sv[0], 21, body, len, -1), 0);
	assert_int_equal(count_fds(), before);		/* no memfd left behind */
	peek = malloc(IPC_HDR_SIZE + IPC_MAX_INLINE + 1);
	assert_non_null(peek);
	n = recv(sv[1], peek, IPC_HDR_SIZE + IPC_MAX_INLINE + 1, MSG_PEEK);
	memcpy(&h, peek, sizeof(h));
	free(peek);
	assert_int_equal(h.type, 21);
	assert_int_equal(h.len, len);
	if (inline_expected) {
		assert_int_equal(n, IPC_HDR_SIZE + len);
		assert_int_equal(h.flags, 0);
	} else {
		assert_int_equal(n, IPC_HDR_SIZE);
		assert_int_equal(h.flags, IPC_F_MEMFD);
	}
	assert_int_equal(ipc_recv(sv[1], NULL, &m), 1);
	assert_int_equal(m.type, 21);
	assert_int_equal(m.flags, 0);			/* the memfd is not the caller's */
	assert_int_equal(m.fd, -1);
	assert_int_equal(m.len, len);
	assert_memory_equal(m.body, body, len);
	ipc_msg_clear(&m);
	assert_int_equal(count_fds(), before);		/* the receiver closed the memfd */
	free(body);
	close(sv[0]);
	close(sv[1]);
}

static void
test_body_inline_max(void **state)
{
	(void)state;
	big_body(IPC_MAX_INLINE, true, false);
	big_body(IPC_MAX_INLINE, true, true);
	big_body(IPC_ALONE, true, true);
}

static void
test_body_memfd(void **state)
{
	(void)state;
	big_body(IPC_MAX_INLINE + 1, false, false);
	big_body(MIB, false, false);
	big_body(IPC_MAX_INLINE + 1, false, true);
	big_body(MIB, false, true);
}

/* ipc_sendv takes at most IPC_SENDV_MAX parts, and a body no larger than
 * ipc_send's; nothing is sent when it refuses. */
static void
test_sendv_limits(void **state)
{
	struct iovec iov[IPC_SENDV_MAX + 1];
	struct ipc_msg m;
	int sv[2];

	(void)state;
	pair(sv);
	for (int i = 0; i <= IPC_SENDV_MAX; i++)
		iov[i] = (struct iovec){ "x", 1 };
	errno = 0;
	assert_int_equal(ipc_sendv(sv[0], 22, iov, IPC_SENDV_MAX + 1), -1);
	assert_int_equal(errno, EINVAL);
	iov[0] = (struct iovec){ (void *)1, IPC_MAX_BODY };
	errno = 0;
	assert_int_equal(ipc_sendv(sv[0], 22, iov, 2), -1);
	assert_int_equal(errno, EMSGSIZE);
	assert_int_equal(ipc_recv(sv[1], NULL, &m), -1);
	assert_int_equal(errno, EAGAIN);
	iov[0] = (struct iovec){ "x", 1 };
	assert_int_equal(ipc_sendv(sv[0], 22, iov, IPC_SENDV_MAX), 0);
	assert_int_equal(ipc_recv(sv[1], NULL, &m), 1);
	assert_int_equal(m.len, IPC_SENDV_MAX);
	assert_memory_equal(m.body, "xxxx", IPC_SENDV_MAX);
	ipc_msg_clear(&m);
	close(sv[0]);
	close(sv[1]);
}

/* Records packed in one datagram share one block: each body stays good
 * until its own record is cleared, in any order, and the block goes with
 * the last one, also when the reader is cleared with some still queued
 * (the sanitizer build checks that nothing leaks or is freed twice). */
static void
test_packed_records_share_a_block(void **state)
{
	struct ipc_reader r = { 0 };
	struct ipc_out o = { 0 };
	struct ipc_msg m[3];
	int sv[2];

	(void)state;
	pair(sv);
	for (int round = 0; round < 2; round++) {
		assert_int_equal(ipc_out_add(&o, 1, "one", 3), 0);
		assert_int_equal(ipc_out_add(&o, 2, "", 0), 0);
		assert_int_equal(ipc_out_add(&o, 3, "three", 5), 0);
		assert_int_equal(ipc_out_flush(sv[0], &o), 0);
	}
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ipc_recv(sv[1], &r, &m[i]), 1);
		assert_int_equal(m[i].type, i + 1);
		assert_ptr_equal(m[i].block, m[0].block);
	}
	assert_null(m[1].body);
	ipc_msg_clear(&m[2]);
	assert_memory_equal(m[0].body, "one", 3);
	ipc_msg_clear(&m[0]);
	ipc_msg_clear(&m[1]);

	assert_int_equal(ipc_recv(sv[1], &r, &m[0]), 1);	/* the second datagram */
	assert_memory_equal(m[0].body, "one", 3);
	assert_int_equal(ipc_reader_left(&r), 2);
	ipc_reader_clear(&r);
	assert_memory_equal(m[0].body, "one", 3);		/* still its own */
	ipc_msg_clear(&m[0]);
	ipc_out_free(&o);
	close(sv[0]);
	close(sv[1]);
}

/* A datagram that is one large record is not copied out: the receive
 * buffer becomes its body, cut to its length (what holds it counts that),
 * and the next datagram gets a new buffer.  A record one byte shorter, or
 * one packed with others, is copied, with the other records of its
 * datagram, into one block they share. */
static void
test_alone_records(void **state)
{
	struct ipc_reader r = { 0 };
	struct ipc_out o = { 0 };
	struct ipc_msg m1, m2, m;
	uint8_t *a = make_body(IPC_ALONE, 1), *b = make_body(IPC_ALONE + 5, 2);
	uint8_t *c = make_body(IPC_ALONE - 1, 3);
	uint32_t idx;
	int sv[2];

	(void)state;
	pair(sv);
	assert_int_equal(ipc_send(sv[0], 1, a, IPC_ALONE, -1), 0);
	assert_int_equal(ipc_send(sv[0], 2, b, IPC_ALONE + 5, -1), 0);
	assert_int_equal(ipc_recv(sv[1], &r, &m1), 1);
	assert_int_equal(ipc_recv(sv[1], &r, &m2), 1);	/* m1 still held */
	assert_int_equal(m1.type, 1);
	assert_int_equal(m1.len, IPC_ALONE);
	assert_true(body_ok(m1.body, m1.len, &idx) && idx == 1);
	assert_ptr_equal(m1.body, (uint8_t *)m1.mem + IPC_HDR_SIZE);
	assert_int_equal(m2.type, 2);
	assert_int_equal(m2.len, IPC_ALONE + 5);
	assert_true(body_ok(m2.body, m2.len, &idx) && idx == 2);
	assert_ptr_not_equal(m1.mem, m2.mem);
	/* Not the 128 KiB buffer: at most the allocator's rounding (to a
	 * page, for a block it maps) more. */
	assert_in_range(malloc_usable_size(m1.mem), IPC_HDR_SIZE + IPC_ALONE,
			IPC_HDR_SIZE + IPC_ALONE + 4096);
	assert_in_range(malloc_usable_size(m2.mem), IPC_HDR_SIZE + IPC_ALONE + 5,
			IPC_HDR_SIZE + IPC_ALONE + 5 + 4096);
	ipc_msg_clear(&m1);
	ipc_msg_clear(&m2);
	assert_null(m1.mem);

	assert_int_equal(ipc_send(sv[0], 3, c, IPC_ALONE - 1, -1), 0);
	assert_int_equal(ipc_recv(sv[1], &r, &m), 1);
	assert_int_equal(m.len, IPC_ALONE - 1);
	assert_true(body_ok(m.body, m.len, &idx) && idx == 3);
	assert_null(m.mem);
	assert_non_null(m.block);
	ipc_msg_clear(&m);
	assert_null(m.block);

	assert_int_equal(ipc_out_add(&o, 4, a, IPC_ALONE), 0);
	assert_int_equal(ipc_out_add(&o, 5, "xy", 2), 0);
	assert_int_equal(ipc_out_flush(sv[0], &o), 0);
	assert_int_equal(ipc_recv(sv[1], &r, &m), 1);
	assert_int_equal(m.type, 4);
	assert_true(body_ok(m.body, m.len, &idx) && idx == 1);
	assert_null(m.mem);
	assert_int_equal(ipc_recv(sv[1], &r, &m2), 1);	/* m still held */
	assert_int_equal(m2.type, 5);
	assert_memory_equal(m2.body, "xy", 2);
	assert_ptr_equal(m2.block, m.block);
	ipc_msg_clear(&m);
	assert_memory_equal(m2.body, "xy", 2);		/* the block outlives m */
	ipc_msg_clear(&m2);
	assert_int_equal(ipc_recv(sv[1], &r, &m), -1);
	assert_int_equal(errno, EAGAIN);

	ipc_reader_clear(&r);
	ipc_out_free(&o);
	free(a);
	free(b);
	free(c);
	close(sv[0]);
	close(sv[1]);
}

static void
test_send_rejects(void **state)
{
	int sv[2], p[2];
	struct ipc_msg m;
	uint8_t *body = make_body(IPC_MAX_INLINE + 1, 1);

	(void)state;
	pair(sv);
	nb_pipe(p);
	errno = 0;
	assert_int_equal(ipc_send(sv[0], 1, body, IPC_MAX_INLINE + 1, p[1]), -1);
	assert_int_equal(errno, EINVAL);
	assert_true(fcntl(p[1], F_GETFD) != -1);	/* not closed */
	errno = 0;
	assert_int_equal(ipc_send(sv[0], 1, body, (size_t)IPC_MAX_BODY + 1, -1), -1);
	assert_int_equal(errno, EMSGSIZE);
	assert_int_equal(ipc_recv(sv[1], NULL, &m), -1);	/* nothing was sent */
	assert_int_equal(errno, EAGAIN);
	free(body);
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
}

static void
test_eof(void **state)
{
	int sv[2];
	struct ipc_msg m;

	(void)state;
	pair(sv);
	assert_int_equal(ipc_send(sv[0], 5, "last", 4, -1), 0);
	close(sv[0]);
	assert_int_equal(ipc_recv(sv[1], NULL, &m), 1);	/* what was sent comes first */
	assert_memory_equal(m.body, "last", 4);
	ipc_msg_clear(&m);
	assert_int_equal(ipc_recv(sv[1], NULL, &m), 0);
	assert_null(m.body);
	assert_int_equal(m.fd, -1);
	assert_int_equal(ipc_recv(sv[1], NULL, &m), 0);	/* and stays at EOF */
	close(sv[1]);
}

static void
test_fill_until_eagain(void **state)
{
	enum { BODY = 1000, LIMIT = 1000000 };
	int sv[2];
	uint32_t sent = 0, got = 0;
	uint8_t body[BODY];
	struct ipc_msg m;

	(void)state;
	pair(sv);
	for (;;) {
		fill_body(body, BODY, sent);
		if (ipc_send(sv[0], 2, body, BODY, -1) == -1)
			break;
		sent++;
		assert_true(sent < LIMIT);
	}
	assert_int_equal(errno, EAGAIN);
	assert_true(sent > 0);
	while (ipc_recv(sv[1], NULL, &m) == 1) {
		uint32_t idx;

		assert_int_equal(m.len, BODY);
		assert_true(body_ok(m.body, m.len, &idx));
		assert_int_equal(idx, got);			/* in order, none lost */
		got++;
		ipc_msg_clear(&m);
	}
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(got, sent);		/* the refused record is not there */
	fill_body(body, BODY, sent);
	assert_int_equal(ipc_send(sv[0], 2, body, BODY, -1), 0);	/* room again */
	assert_int_equal(ipc_recv(sv[1], NULL, &m), 1);
	ipc_msg_clear(&m);

	/* The same with memfd bodies. */
	uint8_t *big = make_body(IPC_MAX_INLINE + 100, 0);
	sent = got = 0;
	while (ipc_send(sv[0], 2, big, IPC_MAX_INLINE + 100, -1) == 0) {
		sent++;
		assert_true(sent < LIMIT);
	}
	assert_int_equal(errno, EAGAIN);
	while (ipc_recv(sv[1], NULL, &m) == 1) {
		assert_int_equal(m.len, IPC_MAX_INLINE + 100);
		assert_memory_equal(m.body, big, m.len);
		got++;
		ipc_msg_clear(&m);
	}
	assert_int_equal(got, sent);
	free(big);
	close(sv[0]);
	close(sv[1]);
}

/* --- protocol errors ------------------------------------------------- */

static void
test_proto_short_and_bad_len(void **state)
{
	int sv[2], p[2], before;
	uint8_t junk[IPC_HDR_SIZE] = { 1, 0, 0, 0, 0, 0, 0, 0 };
	struct ipc_msg m;

	(void)state;
	pair(sv);
	before = count_fds();
	for (size_t n = 1; n < IPC_HDR_SIZE; n++) {	/* shorter than the header */
		raw_send(sv[0], junk, n, NULL, 0);
		expect_eproto(sv, before);
	}
	nb_pipe(p);					/* ... with an fd: closed */
	raw_send(sv[0], junk, 3, &p[1], 1);
	expect_eproto(sv, before + 2);
	close(p[1]);
	assert_true(pipe_writers_gone(p[0]));
	close(p[0]);

	raw_record(sv[0], 1, 0, 10, 5, NULL, 0);	/* len says more */
	expect_eproto(sv, before);
	raw_record(sv[0], 1, 0, 4, 5, NULL, 0);		/* len says less */
	expect_eproto(sv, before);
	raw_record(sv[0], 1, 0, 1, 0, NULL, 0);		/* body missing */
	expect_eproto(sv, before);
	raw_record(sv[0], 1, 0, UINT32_MAX, 5, NULL, 0);
	expect_eproto(sv, before);
	raw_record(sv[0], 1, 0, 5, 5, NULL, 0);		/* control: accepted */
	assert_int_equal(ipc_recv(sv[1], NULL, &m), 1);
	assert_int_equal(m.len, 5);
	ipc_msg_clear(&m);
	close(sv[0]);
	close(sv[1]);
}

static void
test_proto_flags_and_fds(void **state)
{
	static const uint16_t bad_flags[] = { 0x0004, 0x0008, 0x0100, 0x8000, 0xfffc };
	int sv[2], p[2], q[2], before, two[2];
	struct ipc_msg m;

	(void)state;
	pair(sv);
	before = count_fds();
	for (size_t i = 0; i < sizeof(bad_flags) / sizeof(bad_flags[0]); i++) {
		raw_record(sv[0], 1, bad_flags[i], 3, 3, NULL, 0);
		expect_eproto(sv, before);
	}

	nb_pipe(p);					/* unknown bits beside IPC_F_FD */
	raw_record(sv[0], 1, IPC_F_FD | 0x0010, 3, 3, &p[1], 1);
	expect_eproto(sv, before + 2);
	close(p[1]);
	assert_true(pipe_writers_gone(p[0]));
	close(p[0]);

	nb_pipe(p);					/* both IPC_F_FD and IPC_F_MEMFD */
	raw_record(sv[0], 1, IPC_F_FD | IPC_F_MEMFD, 3, 3, &p[1], 1);
	expect_eproto(sv, before + 2);
	close(p[1]);
	assert_true(pipe_writers_gone(p[0]));
	close(p[0]);

	raw_record(sv[0], 1, IPC_F_FD, 3, 3, NULL, 0);	/* IPC_F_FD, no fd */
	expect_eproto(sv, before);
	raw_record(sv[0], 1, IPC_F_MEMFD, IPC_MAX_INLINE + 1, 0, NULL, 0);
	expect_eproto(sv, before);			/* IPC_F_MEMFD, no fd */

	nb_pipe(p);					/* an fd without IPC_F_FD */
	raw_record(sv[0], 1, 0, 3, 3, &p[1], 1);
	expect_eproto(sv, before + 2);
	close(p[1]);
	assert_true(pipe_writers_gone(p[0]));		/* the receiver closed its copy */
	close(p[0]);

	nb_pipe(p);					/* two fds */
	nb_pipe(q);
	two[0] = p[1];
	two[1] = q[1];
	raw_record(sv[0], 1, IPC_F_FD, 3, 3, two, 2);
	expect_eproto(sv, before + 4);
	close(p[1]);
	close(q[1]);
	assert_true(pipe_writers_gone(p[0]));
	assert_true(pipe_writers_gone(q[0]));
	close(p[0]);
	close(q[0]);

	nb_pipe(p);					/* control: accepted */
	raw_record(sv[0], 1, IPC_F_FD, 3, 3, &p[1], 1);
	assert_int_equal(ipc_recv(sv[1], NULL, &m), 1);
	assert_true(m.fd >= 0);
	ipc_msg_clear(&m);
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
}

/* Sends a header-only memfd record with fd and expects EPROTO, with the
 * memfd closed by the receiver. */
static void
memfd_rejected(int sv[2], int before, uint32_t hlen, size_t blen, int fd)
{
	raw_record(sv[0], 1, IPC_F_MEMFD, hlen, blen, &fd, 1);
	close(fd);
	expect_eproto(sv, before);
}

static void
test_proto_memfd(void **state)
{
	const size_t L = IPC_MAX_INLINE + 1;
	int sv[2], before, p[2], fd;
	struct ipc_msg m;

	(void)state;
	pair(sv);
	before = count_fds();
	/* Control: a hand-made record that is right is accepted. */
	fd = memfd_with(L, L, SEALS_ALL);
	raw_record(sv[0], 1, IPC_F_MEMFD, (uint32_t)L, 0, &fd, 1);
	close(fd);
	assert_int_equal(ipc_recv(sv[1], NULL, &m), 1);
	assert_int_equal(m.len, L);
	assert_int_equal(m.fd, -1);
	uint8_t *want = make_body(L, 0);
	assert_memory_equal(m.body, want, L);
	free(want);
	ipc_msg_clear(&m);
	assert_int_equal(count_fds(), before);
	/* Sealed against shrink, grow and write is enough. */
	fd = memfd_with(L, L, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
	raw_record(sv[0], 1, IPC_F_MEMFD, (uint32_t)L, 0, &fd, 1);
	close(fd);
	assert_int_equal(ipc_recv(sv[1], NULL, &m), 1);
	ipc_msg_clear(&m);

	memfd_rejected(sv, before, (uint32_t)L, 0, memfd_with(L, L, 0));	/* no seals */
	memfd_rejected(sv, before, (uint32_t)L, 0,
		       memfd_with(L, L, F_SEAL_SHRINK | F_SEAL_GROW));	/* writable */
	memfd_rejected(sv, before, (uint32_t)L, 0,
		       memfd_with(L, L, F_SEAL_WRITE | F_SEAL_GROW));	/* can shrink */
	memfd_rejected(sv, before, (uint32_t)L, 0,
		       memfd_with(L, L, F_SEAL_WRITE | F_SEAL_SHRINK));	/* can grow */
	memfd_rejected(sv, before, (uint32_t)L, 0,
		       memfd_with(L - 1, L - 1, SEALS_ALL));		/* smaller */
	memfd_rejected(sv, before, (uint32_t)L, 0,
		       memfd_with(L + 1, L + 1, SEALS_ALL));		/* larger */
	memfd_rejected(sv, before, 100, 0, memfd_with(100, 100, SEALS_ALL));	/* fits inline */
	memfd_rejected(sv, before, IPC_MAX_INLINE, 0,
		       memfd_with(IPC_MAX_INLINE, IPC_MAX_INLINE, SEALS_ALL));
	memfd_rejected(sv, before, 0, 0, memfd_with(0, 0, SEALS_ALL));
	memfd_rejected(sv, before, (uint32_t)L, 5,
		       memfd_with(L, L, SEALS_ALL));		/* and a body inline */
	memfd_rejected(sv, before, IPC_MAX_BODY + 1, 0,
		       memfd_with(L, L, SEALS_ALL));		/* over the cap */
	nb_pipe(p);					/* not a memfd at all */
	memfd_rejected(sv, before + 1, (uint32_t)L, 0, p[1]);
	assert_true(pipe_writers_gone(p[0]));
	close(p[0]);
	close(sv[0]);
	close(sv[1]);
}

static void
test_proto_truncated(void **state)
{
	const size_t big = IPC_MAX_INLINE + 1;
	int sv[2], p[2], before, many[16];

	(void)state;
	pair(sv);
	before = count_fds();
	/* A datagram larger than the receive buffer: MSG_TRUNC. */
	raw_record(sv[0], 1, 0, (uint32_t)big, big, NULL, 0);
	expect_eproto(sv, before);
	nb_pipe(p);
	raw_record(sv[0], 1, IPC_F_FD, (uint32_t)big, big, &p[1], 1);
	expect_eproto(sv, before + 2);
	close(p[1]);
	assert_true(pipe_writers_gone(p[0]));
	close(p[0]);

	/* More fds than the control buffer holds: MSG_CTRUNC; every fd is
	 * closed, the ones received and the ones the kernel dropped. */
	nb_pipe(p);
	for (int i = 0; i < 16; i++)
		many[i] = p[1];
	raw_record(sv[0], 1, IPC_F_FD, 3, 3, many, 16);
	expect_eproto(sv, before + 2);
	close(p[1]);
	assert_true(pipe_writers_gone(p[0]));
	close(p[0]);

	/* MSG_CTRUNC because this process has no descriptor left for the
	 * one sent: EMFILE, not a malformed record; the next one passes. */
	struct rlimit old, full;
	int lowest = fcntl(0, F_DUPFD_CLOEXEC, 0);

	assert_int_not_equal(lowest, -1);
	nb_pipe(p);
	close(lowest);
	lowest = fcntl(0, F_DUPFD_CLOEXEC, 0);	/* the pipe took two: the lowest free now */
	assert_int_not_equal(lowest, -1);
	close(lowest);
	raw_record(sv[0], 1, IPC_F_FD, 3, 3, &p[1], 1);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	full = old;
	full.rlim_cur = (rlim_t)lowest;		/* every descriptor allowed is in use */
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &full), 0);
	errno = 0;
	struct ipc_msg m;
	int rc = ipc_recv(sv[1], NULL, &m), err = errno;

	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	assert_int_equal(rc, -1);
	assert_int_equal(err, EMFILE);
	assert_int_equal(m.fd, -1);
	close(p[1]);
	assert_true(pipe_writers_gone(p[0]));
	close(p[0]);
	assert_null(m.body);
	expect_next_ok(sv, before);

	/* MSG_CTRUNC with no fd received at all: with SO_PASSCRED the
	 * credentials fill the control buffer first.  The record must not
	 * pass as one without an fd. */
	int on = 1;
	assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)), 0);
	raw_record(sv[0], 1, 0, 3, 3, NULL, 0);		/* control: accepted */
	assert_int_equal(ipc_recv(sv[1], NULL, &m), 1);
	ipc_msg_clear(&m);
	nb_pipe(p);
	raw_record(sv[0], 1, 0, 3, 3, &p[1], 1);
	expect_eproto(sv, before + 2);
	close(p[1]);
	assert_true(pipe_writers_gone(p[0]));
	close(p[0]);
	close(sv[0]);
	close(sv[1]);
}

/* --- the channel ----------------------------------------------------- */

#define CTX_MAX 4096

struct ctx {
	struct event_base *base;
	struct ipc_chan   *c;
	int                nmsg;
	uint16_t           type[CTX_MAX];
	uint32_t           idx[CTX_MAX];
	uint32_t           len[CTX_MAX];
	bool               bad_body;
	int                fds[8];
	int                nfds;
	bool               leave_fds;	/* do not take received fds */
	int                free_at;	/* free the channel at this message (0: never) */
	int                nerr;
	int                err;
	int                ndrain;	/* drain callbacks */
	size_t             drain_bytes;	/* queued at the last one */
};

static void
ctx_msg(struct ipc_chan *c, struct ipc_msg *m, void *arg)
{
	struct ctx *x = arg;
	uint32_t idx = 0;

	assert_ptr_equal(c, x->c);
	assert_true(x->nmsg < CTX_MAX);
	if (!body_ok(m->body, m->len, &idx))
		x->bad_body = true;
	x->type[x->nmsg] = m->type;
	x->idx[x->nmsg] = idx;
	x->len[x->nmsg] = m->len;
	x->nmsg++;
	if (m->fd != -1 && !x->leave_fds && x->nfds < 8) {
		x->fds[x->nfds++] = m->fd;		/* take it */
		m->fd = -1;
	}
	if (x->free_at == x->nmsg) {
		ipc_chan_free(c);
		x->c = NULL;
	}
}

static void
ctx_err(struct ipc_chan *c, int err, void *arg)
{
	struct ctx *x = arg;

	assert_ptr_equal(c, x->c);
	x->nerr++;
	x->err = err;
	ipc_chan_free(c);
	x->c = NULL;
}

static void
ctx_init(struct ctx *x, struct event_base *base, int fd)
{
	memset(x, 0, sizeof(*x));
	x->base = base;
	x->c = ipc_chan_new(base, fd, ctx_msg, ctx_err, x);
	assert_non_null(x->c);
	assert_int_equal(ipc_chan_fd(x->c), fd);
	assert_int_equal(ipc_chan_queued(x->c), 0);
}

static void
on_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(bool *)arg = true;
}

/* Runs the loop until done(arg) holds; fails after 10 s without it. */
static void
run_until(struct event_base *base, bool (*done)(const void *), const void *arg)
{
	bool timed_out = false;
	struct timeval tv = { .tv_sec = 10 };
	struct event *t = evtimer_new(base, on_timeout, &timed_out);

	assert_non_null(t);
	evtimer_add(t, &tv);
	while (!done(arg) && !timed_out)
		assert_true(event_base_loop(base, EVLOOP_ONCE) != -1);
	event_free(t);
	if (timed_out)
		fail_msg("the condition did not come true in time");
}

static int want_msgs;

static bool
got_msgs(const void *arg)
{
	return ((const struct ctx *)arg)->nmsg >= want_msgs;
}

static bool
got_err(const void *arg)
{
	return ((const struct ctx *)arg)->nerr > 0;
}

static bool
chan_gone(const void *arg)
{
	return ((const struct ctx *)arg)->c == NULL;
}

/* Sends records of len bytes (type 50, bodies *n, *n + 1, ...) through c
 * until `queued` of them wait in its out-queue: the socket is full. */
/* Sends records until the peer's socket is full and `queued` of them wait
 * in the channel's out-queue: the loop runs after each send, which is when
 * a channel writes what was sent. */
static void
fill_queue(struct event_base *base, struct ipc_chan *c, size_t queued, size_t len, uint32_t *n)
{
	uint8_t *body = malloc(len);

	assert_non_null(body);
	do {
		fill_body(body, len, (*n)++);
		assert_int_equal(ipc_chan_send(c, 50, body, len, -1), 0);
		assert_true(*n < 100000);
		assert_true(event_base_loop(base, EVLOOP_NONBLOCK) != -1);
	} while (ipc_chan_queued(c) < queued);
	free(body);
}

static void
test_chan_dispatch_in_order(void **state)
{
	enum { N = 600 };		/* more than one wake-up's worth */
	struct event_base *base = event_base_new();
	struct ctx *rx = malloc(sizeof(*rx));
	int sv[2];
	uint32_t sent = 0;

	(void)state;
	assert_non_null(base);
	assert_non_null(rx);
	pair(sv);
	ctx_init(rx, base, sv[1]);
	while (sent < N) {
		size_t len = sent % 50 == 7 ? 0 : sent % 97 == 3 ? IPC_MAX_INLINE + 10 : 4 + sent % 300;
		uint8_t *b = make_body(len, sent);
		int rc = ipc_send(sv[0], (uint16_t)(100 + sent % 13), b, len, -1);

		free(b);
		if (rc == -1) {
			assert_int_equal(errno, EAGAIN);	/* let the channel read */
			assert_true(event_base_loop(base, EVLOOP_ONCE) != -1);
			continue;
		}
		sent++;
	}
	want_msgs = N;
	run_until(base, got_msgs, rx);
	assert_int_equal(rx->nmsg, N);
	assert_false(rx->bad_body);
	for (uint32_t i = 0; i < N; i++) {
		size_t len = i % 50 == 7 ? 0 : i % 97 == 3 ? IPC_MAX_INLINE + 10 : 4 + i % 300;

		assert_int_equal(rx->type[i], 100 + i % 13);
		assert_int_equal(rx->len[i], len);
		if (len > 0)
			assert_int_equal(rx->idx[i], i);
	}
	assert_int_equal(rx->nerr, 0);
	ipc_chan_free(rx->c);
	close(sv[0]);
	free(rx);
	event_base_free(base);
}

static void
test_chan_fd_passing(void **state)
{
	struct event_base *base = event_base_new();
	struct ctx *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
	int sv[2], p[2];
	char buf[8];

	(void)state;
	assert_non_null(base);
	pair(sv);
	ctx_init(a, base, sv[0]);
	ctx_init(b, base, sv[1]);
	nb_pipe(p);
	assert_int_equal(ipc_chan_send(a->c, 40, "\x01\0\0\0", 4, p[1]), 0);	/* a owns p[1] */
	want_msgs = 1;
	run_until(base, got_msgs, b);
	assert_int_equal(b->type[0], 40);
	assert_int_equal(b->idx[0], 1);
	assert_int_equal(b->nfds, 1);
	assert_true(fcntl(b->fds[0], F_GETFD) & FD_CLOEXEC);
	assert_int_equal(write(b->fds[0], "pong", 4), 4);
	assert_int_equal(read(p[0], buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "pong", 4);
	close(b->fds[0]);
	assert_true(pipe_writers_gone(p[0]));	/* the channel closed its copy once sent */
	close(p[0]);

	/* An fd with a body too large for it: refused, and the fd is closed. */
	nb_pipe(p);
	uint8_t *big = make_body(IPC_MAX_INLINE + 1, 0);
	errno = 0;
	assert_int_equal(ipc_chan_send(a->c, 41, big, IPC_MAX_INLINE + 1, p[1]), -1);
	assert_int_equal(errno, EMSGSIZE);
	assert_true(pipe_writers_gone(p[0]));
	assert_int_equal(ipc_chan_queued(a->c), 0);
	free(big);
	close(p[0]);
	ipc_chan_free(a->c);
	ipc_chan_free(b->c);
	free(a);
	free(b);
	event_base_free(base);
}

static void
ctx_drain(struct ipc_chan *c, void *arg)
{
	struct ctx *x = arg;

	assert_ptr_equal(c, x->c);
	x->ndrain++;
	x->drain_bytes = ipc_chan_queued_bytes(c);
}

static bool
drained_once(const void *arg)
{
	return ((const struct ctx *)arg)->ndrain > 0;
}

/* The out-queue counts its bytes; a sender armed with a mark is called
 * back once, from the loop, when the peer has taken enough of it: not
 * while the peer does not read, and at once when the queue is below the
 * mark already. */
static void
test_chan_drain_callback(void **state)
{
	enum { BODY = 3000, QUEUED = 40, LOW = 10 * BODY };
	struct event_base *base = event_base_new();
	struct ctx *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
	int sv[2];
	uint32_t n = 0;

	(void)state;
	assert_non_null(base);
	pair(sv);
	ctx_init(a, base, sv[0]);
	fill_queue(base, a->c, QUEUED, BODY, &n);
	assert_int_equal(ipc_chan_queued_bytes(a->c), ipc_chan_queued(a->c) * BODY);
	ipc_chan_when_below(a->c, LOW, ctx_drain);
	for (int i = 0; i < 3; i++)
		assert_true(event_base_loop(base, EVLOOP_NONBLOCK) != -1);
	assert_int_equal(a->ndrain, 0);			/* the peer does not read */

	ctx_init(b, base, sv[1]);			/* now it does */
	run_until(base, drained_once, a);
	assert_int_equal(a->ndrain, 1);
	assert_true(a->drain_bytes <= LOW);
	want_msgs = (int)n;
	run_until(base, got_msgs, b);
	assert_false(b->bad_body);
	assert_int_equal(ipc_chan_queued_bytes(a->c), 0);
	assert_int_equal(a->ndrain, 1);			/* once */

	a->ndrain = 0;
	ipc_chan_when_below(a->c, LOW, ctx_drain);	/* below already */
	assert_int_equal(a->ndrain, 0);			/* not from inside the call */
	run_until(base, drained_once, a);
	assert_int_equal(a->drain_bytes, 0);
	ipc_chan_free(a->c);
	ipc_chan_free(b->c);
	free(a);
	free(b);
	event_base_free(base);
}

static void
test_chan_queueing(void **state)
{
	enum { BODY = 2000, EXTRA = 200, FIRST = 3 };
	struct ipc_reader by_hand = { 0 };
	struct event_base *base = event_base_new();
	struct ctx *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
	int sv[2], p[2], before;
	uint32_t n = 0, fd_at;
	uint8_t body[BODY];
	char buf[4];

	(void)state;
	assert_non_null(base);
	pair(sv);
	ctx_init(a, base, sv[0]);
	/* The peer does not read: records pile up in the out-queue. */
	fill_queue(base, a->c, 1, BODY, &n);
	nb_pipe(p);
	fd_at = n;					/* a queued record owns an fd */
	assert_true(fd_at > FIRST);
	fill_body(body, BODY, n++);
	assert_int_equal(ipc_chan_send(a->c, 51, body, BODY, p[1]), 0);
	uint8_t *big = make_body(IPC_MAX_INLINE * 3, n);	/* and a memfd body */
	assert_int_equal(ipc_chan_send(a->c, 52, big, IPC_MAX_INLINE * 3, -1), 0);
	free(big);
	n++;
	for (int i = 0; i < EXTRA; i++) {
		fill_body(body, i % 2 ? BODY : 4, n++);
		assert_int_equal(ipc_chan_send(a->c, 50, body, i % 2 ? BODY : 4, -1), 0);
	}
	assert_int_equal(ipc_chan_queued(a->c), EXTRA + 3);
	before = count_fds();
	assert_false(pipe_writers_gone(p[0]));		/* held by the queue */
	/* Running the loop while the peer is full changes nothing. */
	for (int i = 0; i < 3; i++)
		assert_true(event_base_loop(base, EVLOOP_NONBLOCK) != -1);
	assert_int_equal(ipc_chan_queued(a->c), EXTRA + 3);
	assert_int_equal(a->nerr, 0);

	/* The peer takes a few by hand: the socket has room, but a new
	 * record must still wait behind the queued ones. */
	for (uint32_t i = 0; i < FIRST; i++) {
		struct ipc_msg m;
		uint32_t idx;

		assert_int_equal(ipc_recv(sv[1], &by_hand, &m), 1);
		assert_true(body_ok(m.body, m.len, &idx));
		assert_int_equal(idx, i);
		ipc_msg_clear(&m);
	}
	fill_body(body, BODY, n++);
	assert_int_equal(ipc_chan_send(a->c, 50, body, BODY, -1), 0);
	assert_int_equal(ipc_chan_queued(a->c), EXTRA + 4);

	/* Now the peer reads: everything arrives, in order (what it read
	 * by hand beyond the first records goes to its channel). */
	ctx_init(b, base, sv[1]);
	ipc_chan_adopt(b->c, &by_hand);
	/* Read interest on both, write interest on a while it has a queue. */
	assert_int_equal(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED), 3);
	want_msgs = (int)(n - FIRST);
	run_until(base, got_msgs, b);
	assert_int_equal(b->nmsg, n - FIRST);
	assert_false(b->bad_body);
	for (uint32_t i = FIRST; i < n; i++) {
		assert_int_equal(b->idx[i - FIRST], i);
		assert_int_equal(b->type[i - FIRST], i == fd_at ? 51 : i == fd_at + 1 ? 52 : 50);
	}
	assert_int_equal(b->len[fd_at + 1 - FIRST], IPC_MAX_INLINE * 3);
	assert_int_equal(ipc_chan_queued(a->c), 0);
	assert_int_equal(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED), 2);
	assert_int_equal(b->nfds, 1);
	assert_int_equal(write(b->fds[0], "q", 1), 1);
	assert_int_equal(read(p[0], buf, sizeof(buf)), 1);
	close(b->fds[0]);
	assert_true(pipe_writers_gone(p[0]));
	assert_int_equal(count_fds(), before - 1);	/* the queue's p[1] was closed once sent */
	close(p[0]);
	assert_int_equal(a->nerr + b->nerr, 0);
	ipc_chan_free(a->c);
	ipc_chan_free(b->c);
	free(a);
	free(b);
	event_base_free(base);
}

/* The channel packs small records together, but a large one goes in a
 * datagram of its own, in its place in the order. */
static void
test_chan_sends_large_alone(void **state)
{
	static const size_t lens[] = { 4, 8, IPC_ALONE, 4, IPC_ALONE - 1, 4 };
	static const size_t grams[] = { 2 * IPC_HDR_SIZE + 4 + 8, IPC_HDR_SIZE + IPC_ALONE,
	    3 * IPC_HDR_SIZE + 4 + IPC_ALONE - 1 + 4 };
	struct event_base *base = event_base_new();
	struct ctx *a = malloc(sizeof(*a));
	uint8_t *buf = malloc(IPC_HDR_SIZE + IPC_MAX_INLINE);
	int sv[2];

	(void)state;
	assert_non_null(base);
	assert_non_null(a);
	assert_non_null(buf);
	pair(sv);
	ctx_init(a, base, sv[0]);
	for (uint32_t i = 0; i < 6; i++) {
		uint8_t *b = make_body(lens[i], i);

		assert_int_equal(ipc_chan_send(a->c, 60, b, lens[i], -1), 0);
		free(b);
	}
	assert_true(event_base_loop(base, EVLOOP_NONBLOCK) != -1);
	assert_int_equal(ipc_chan_queued(a->c), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(recv(sv[1], buf, IPC_HDR_SIZE + IPC_MAX_INLINE, 0),
		    (ssize_t)grams[i]);
	assert_int_equal(recv(sv[1], buf, 1, 0), -1);
	assert_int_equal(errno, EAGAIN);
	ipc_chan_free(a->c);
	close(sv[1]);
	free(buf);
	free(a);
	event_base_free(base);
}

/* A record that goes alone is on the socket when ipc_chan_send returns,
 * after the records queued before it, in their order; on a full socket it
 * is queued as a copy of the caller's body. */
static void
test_chan_sends_alone_at_once(void **state)
{
	struct event_base *base = event_base_new();
	struct ctx *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
	uint8_t *big = make_body(IPC_ALONE, 0);
	struct ipc_reader by_hand = { 0 };
	struct ipc_msg m;
	int sv[2], p[2];
	uint32_t idx, n = 0;

	(void)state;
	assert_non_null(base);
	pair(sv);
	ctx_init(a, base, sv[0]);

	/* Nothing queued: sent before the loop runs, the fd closed once sent. */
	assert_int_equal(ipc_chan_send(a->c, 61, big, IPC_ALONE, -1), 0);
	nb_pipe(p);
	assert_int_equal(ipc_chan_send(a->c, 62, "\x01\0\0\0", 4, p[1]), 0);
	assert_int_equal(ipc_chan_queued(a->c), 0);
	assert_int_equal(ipc_recv(sv[1], NULL, &m), 1);
	assert_int_equal(m.type, 61);
	assert_int_equal(m.len, IPC_ALONE);
	assert_true(body_ok(m.body, m.len, &idx));
	ipc_msg_clear(&m);
	assert_int_equal(ipc_recv(sv[1], NULL, &m), 1);
	assert_int_equal(m.type, 62);
	assert_int_not_equal(m.fd, -1);
	ipc_msg_clear(&m);
	assert_true(pipe_writers_gone(p[0]));
	close(p[0]);

	/* Small records wait for the callback to end, unless a record that
	 * goes alone follows them: then they go first, in their datagram. */
	assert_int_equal(ipc_chan_send(a->c, 63, "\x02\0\0\0", 4, -1), 0);
	assert_int_equal(ipc_chan_send(a->c, 64, "\x03\0\0\0", 4, -1), 0);
	assert_int_equal(ipc_chan_queued(a->c), 2);
	assert_int_equal(ipc_recv(sv[1], NULL, &m), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(ipc_chan_send(a->c, 61, big, IPC_ALONE, -1), 0);
	assert_int_equal(ipc_chan_queued(a->c), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ipc_recv(sv[1], &by_hand, &m), 1);
		assert_int_equal(m.type, i == 2 ? 61 : 63 + i);
		ipc_msg_clear(&m);
	}
	assert_int_equal(ipc_reader_left(&by_hand), 0);
	ipc_reader_clear(&by_hand);
	assert_true(event_base_loop(base, EVLOOP_NONBLOCK) != -1);
	assert_int_equal(ipc_recv(sv[1], NULL, &m), -1);	/* nothing more */
	assert_int_equal(errno, EAGAIN);

	/* A full socket: the large record is queued, a copy of the body. */
	while (ipc_send(sv[0], 64, big, IPC_ALONE, -1) == 0)
		n++;
	assert_int_equal(errno, EAGAIN);
	assert_true(n > 0);
	fill_body(big, IPC_ALONE, 99);
	assert_int_equal(ipc_chan_send(a->c, 61, big, IPC_ALONE, -1), 0);
	assert_int_equal(ipc_chan_queued(a->c), 1);
	memset(big, 0, IPC_ALONE);			/* the caller's buffer is free */
	ctx_init(b, base, sv[1]);
	want_msgs = (int)n + 1;
	run_until(base, got_msgs, b);
	assert_int_equal(b->nmsg, n + 1);
	assert_false(b->bad_body);
	assert_int_equal(b->type[n - 1], 64);
	assert_int_equal(b->type[n], 61);
	assert_int_equal(b->len[n], IPC_ALONE);
	assert_int_equal(b->idx[n], 99);
	assert_int_equal(ipc_chan_queued(a->c), 0);
	assert_int_equal(a->nerr + b->nerr, 0);
	ipc_chan_free(a->c);
	ipc_chan_free(b->c);
	free(big);
	free(a);
	free(b);
	event_base_free(base);
}

static void
test_chan_eof(void **state)
{
	struct event_base *base = event_base_new();
	struct ctx *x = malloc(sizeof(*x));
	int sv[2];

	(void)state;
	assert_non_null(base);
	pair(sv);
	ctx_init(x, base, sv[1]);
	assert_int_equal(ipc_send(sv[0], 60, "\x05\0\0\0", 4, -1), 0);
	assert_int_equal(ipc_send(sv[0], 61, "\x06\0\0\0", 4, -1), 0);
	close(sv[0]);
	run_until(base, got_err, x);
	assert_int_equal(x->nerr, 1);
	assert_int_equal(x->err, 0);			/* EOF */
	assert_int_equal(x->nmsg, 2);			/* after what was sent */
	assert_int_equal(x->idx[0], 5);
	assert_int_equal(x->idx[1], 6);
	assert_null(x->c);				/* freed by the callback */
	free(x);
	event_base_free(base);
}

static void
test_chan_garbage(void **state)
{
	struct event_base *base = event_base_new();
	struct ctx *x = malloc(sizeof(*x));
	int sv[2], p[2];

	(void)state;
	assert_non_null(base);
	pair(sv);
	ctx_init(x, base, sv[1]);
	assert_int_equal(ipc_send(sv[0], 60, "\x05\0\0\0", 4, -1), 0);
	nb_pipe(p);
	raw_send(sv[0], "junk", 4, &p[1], 1);
	assert_int_equal(ipc_send(sv[0], 61, "\x06\0\0\0", 4, -1), 0);
	run_until(base, got_err, x);
	assert_int_equal(x->nerr, 1);
	assert_int_equal(x->err, EPROTO);
	assert_int_equal(x->nmsg, 1);			/* nothing after the garbage */
	close(p[1]);
	assert_true(pipe_writers_gone(p[0]));
	close(p[0]);
	close(sv[0]);
	free(x);
	event_base_free(base);
}

static void
test_chan_send_error(void **state)
{
	struct event_base *base = event_base_new();
	struct ctx *x = malloc(sizeof(*x));
	int sv[2], p[2];

	(void)state;
	assert_non_null(base);
	pair(sv);
	ctx_init(x, base, sv[0]);
	/* The peer stops receiving: a send fails with EPIPE, which reaches the
	 * err callback from the loop, not from inside ipc_chan_send. */
	assert_int_equal(shutdown(sv[1], SHUT_RD), 0);
	nb_pipe(p);
	assert_int_equal(ipc_chan_send(x->c, 70, "x", 1, p[1]), 0);
	assert_int_equal(x->nerr, 0);
	run_until(base, got_err, x);
	assert_int_equal(x->err, EPIPE);
	assert_true(pipe_writers_gone(p[0]));		/* the queued fd was closed */
	close(p[0]);
	close(sv[1]);
	free(x);
	event_base_free(base);
}

/* Freeing a channel closes the fds of records still queued. */
static void
test_chan_free_with_queue(void **state)
{
	struct event_base *base = event_base_new();
	struct ctx *x = malloc(sizeof(*x));
	int sv[2], p[2];
	uint32_t n = 0;

	(void)state;
	assert_non_null(base);
	pair(sv);
	ctx_init(x, base, sv[0]);
	fill_queue(base, x->c, 1, 1000, &n);
	nb_pipe(p);
	assert_int_equal(ipc_chan_send(x->c, 2, "x", 1, p[1]), 0);
	assert_int_equal(ipc_chan_queued(x->c), 2);
	assert_false(pipe_writers_gone(p[0]));
	ipc_chan_free(x->c);
	assert_true(pipe_writers_gone(p[0]));
	close(p[0]);
	close(sv[1]);
	free(x);
	event_base_free(base);
}

/* A send that fails in the write event (not in ipc_chan_send) reaches the
 * err callback. */
static void
test_chan_queued_send_error(void **state)
{
	struct event_base *base = event_base_new();
	struct ctx *x = malloc(sizeof(*x));
	int sv[2];
	struct ipc_reader r = { 0 };
	uint32_t n = 0;
	struct ipc_msg m;

	(void)state;
	assert_non_null(base);
	pair(sv);
	ctx_init(x, base, sv[0]);
	fill_queue(base, x->c, 5, 1000, &n);
	while (ipc_recv(sv[1], &r, &m) == 1)		/* room again ... */
		ipc_msg_clear(&m);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(shutdown(sv[1], SHUT_RD), 0);	/* ... but nobody takes it */
	run_until(base, got_err, x);
	assert_int_equal(x->nerr, 1);
	assert_int_equal(x->err, EPIPE);
	ipc_reader_clear(&r);
	close(sv[1]);
	free(x);
	event_base_free(base);
}

static void
test_chan_free_in_callback(void **state)
{
	struct event_base *base = event_base_new();
	struct ctx *x = malloc(sizeof(*x));
	int sv[2], p[2], before;
	struct ipc_msg m;

	(void)state;
	assert_non_null(base);
	pair(sv);
	before = count_fds();
	ctx_init(x, base, sv[1]);
	x->free_at = 2;
	nb_pipe(p);
	for (uint32_t i = 0; i < 6; i++) {
		uint8_t b[4];

		fill_body(b, 4, i);
		/* The record whose callback frees the channel carries an fd,
		 * and so does one that is never read. */
		assert_int_equal(ipc_send(sv[0], 80, b, 4, i == 1 || i == 3 ? p[1] : -1), 0);
	}
	close(p[1]);
	x->leave_fds = true;
	run_until(base, chan_gone, x);
	assert_int_equal(x->nmsg, 2);
	assert_true(event_base_loop(base, EVLOOP_NONBLOCK) != -1);
	assert_int_equal(x->nmsg, 2);			/* dispatch stopped */
	assert_int_equal(x->nerr, 0);
	/* Its socket is closed, with records unread: the kernel says
	 * ECONNRESET once, then EOF. */
	errno = 0;
	assert_int_equal(ipc_recv(sv[0], NULL, &m), -1);
	assert_int_equal(errno, ECONNRESET);
	assert_int_equal(ipc_recv(sv[0], NULL, &m), 0);
	assert_true(pipe_writers_gone(p[0]));		/* unread fds went with it */
	close(p[0]);
	close(sv[0]);
	assert_int_equal(count_fds(), before - 2);	/* sv[0] and sv[1] */
	free(x);
	event_base_free(base);
}

static void
test_chan_flush(void **state)
{
	enum { BODY = 3000 };
	struct event_base *base = event_base_new();
	struct ctx *x = malloc(sizeof(*x));
	int sv[2], status;
	uint32_t n = 0;
	uint8_t body[BODY];
	pid_t pid;

	(void)state;
	assert_non_null(base);
	pair(sv);
	ctx_init(x, base, sv[0]);
	assert_int_equal(ipc_chan_flush(x->c, 0), 0);	/* nothing queued */
	fill_queue(base, x->c, 50, BODY, &n);
	/* Nobody reads: the flush gives up at its deadline. */
	assert_int_equal(ipc_chan_flush(x->c, 20), -1);
	assert_int_equal(ipc_chan_queued(x->c), 50);

	/* A reader in another process takes everything; the flush ends. */
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		struct ipc_reader r = { 0 };
		uint32_t got = 0;
		struct ipc_msg m;

		while (got < n) {
			struct pollfd pf = { .fd = sv[1], .events = POLLIN };
			uint32_t idx;
			int rc;

			if (poll(&pf, 1, 10000) != 1)
				_exit(2);
			while ((rc = ipc_recv(sv[1], &r, &m)) == 1) {
				if (m.type != 50 || m.len != BODY ||
				    !body_ok(m.body, m.len, &idx) || idx != got)
					_exit(3);
				got++;
				ipc_msg_clear(&m);
			}
			if (errno != EAGAIN)
				_exit(4);
		}
		_exit(0);
	}
	assert_int_equal(ipc_chan_flush(x->c, 10000), 0);
	assert_int_equal(ipc_chan_queued(x->c), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	/* The peer gone: the record stays queued and the flush fails at once. */
	close(sv[1]);
	assert_int_equal(ipc_chan_send(x->c, 91, body, BODY, -1), 0);
	assert_int_equal(ipc_chan_queued(x->c), 1);
	assert_int_equal(ipc_chan_flush(x->c, 10000), -1);
	assert_int_equal(ipc_chan_queued(x->c), 1);
	ipc_chan_free(x->c);
	free(x);
	event_base_free(base);
}

static void
test_chan_makes_nonblocking(void **state)
{
	struct event_base *base = event_base_new();
	struct ctx *x = malloc(sizeof(*x));
	int sv[2];

	(void)state;
	assert_non_null(base);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	assert_int_equal(fcntl(sv[1], F_GETFL) & O_NONBLOCK, 0);
	ctx_init(x, base, sv[1]);
	assert_true(fcntl(sv[1], F_GETFL) & O_NONBLOCK);
	ipc_chan_free(x->c);
	assert_int_equal(fcntl(sv[1], F_GETFD), -1);	/* closed by the free */
	close(sv[0]);
	free(x);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_send_recv),
		cmocka_unit_test(test_send_recv_fd),
		cmocka_unit_test(test_empty_body),
		cmocka_unit_test(test_body_inline_max),
		cmocka_unit_test(test_body_memfd),
		cmocka_unit_test(test_sendv_limits),
		cmocka_unit_test(test_packed_records_share_a_block),
		cmocka_unit_test(test_alone_records),
		cmocka_unit_test(test_send_rejects),
		cmocka_unit_test(test_eof),
		cmocka_unit_test(test_fill_until_eagain),
		cmocka_unit_test(test_proto_short_and_bad_len),
		cmocka_unit_test(test_proto_flags_and_fds),
		cmocka_unit_test(test_proto_memfd),
		cmocka_unit_test(test_proto_truncated),
		cmocka_unit_test(test_chan_dispatch_in_order),
		cmocka_unit_test(test_chan_fd_passing),
		cmocka_unit_test(test_chan_queueing),
		cmocka_unit_test(test_chan_drain_callback),
		cmocka_unit_test(test_chan_sends_large_alone),
		cmocka_unit_test(test_chan_sends_alone_at_once),
		cmocka_unit_test(test_chan_eof),
		cmocka_unit_test(test_chan_garbage),
		cmocka_unit_test(test_chan_send_error),
		cmocka_unit_test(test_chan_free_with_queue),
		cmocka_unit_test(test_chan_queued_send_error),
		cmocka_unit_test(test_chan_free_in_callback),
		cmocka_unit_test(test_chan_flush),
		cmocka_unit_test(test_chan_makes_nonblocking),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
