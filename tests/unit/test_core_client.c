/* A client's output (broker/core/client.c): a delivered payload is
 * written after what came before it, whether it was copied (small) or
 * referred to in its delivery record (large), and also while the output
 * waits behind a store ticket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core_fixture.h"
#include "kvstore.h"
#include "fake_proto.h"

#define BIG	(64 * 1024)
#define SMALL	100

/* A record as one that came alone in its datagram: its memory holds the
 * header, then the body (len bytes of a pattern from seed). */
static struct ipc_msg
alone_record(size_t len, uint8_t seed)
{
	struct ipc_msg m = { .type = IPC_DELIVER, .len = (uint32_t)len, .fd = -1 };

	m.mem = xmalloc(IPC_HDR_SIZE + len);
	m.body = (uint8_t *)m.mem + IPC_HDR_SIZE;
	for (size_t i = 0; i < len; i++)
		m.body[i] = (uint8_t)(seed + i * 13 + (i >> 9));
	return m;
}

struct peer {
	int	 fd;
	uint8_t	*buf;
	size_t	 len, want;
};

/* Reads what the client's peer has now; true once it has p->want bytes. */
static bool
peer_has_all(struct peer *p)
{
	ssize_t n;

	while (p->len < p->want &&
	    (n = recv(p->fd, p->buf + p->len, p->want - p->len, MSG_DONTWAIT)) > 0)
		p->len += (size_t)n;
	return p->len == p->want;
}

static void
expect_output(struct core_fx *fx, int fd, const uint8_t *want, size_t len)
{
	struct peer p = { fd, xmalloc(len), 0, len };

	FX_UNTIL(fx, peer_has_all(&p));
	assert_memory_equal(p.buf, want, len);
	free(p.buf);
}

/* "head", a large payload, a small one, "tail": in that order on the
 * wire.  The large one's memory went to the output (the record no longer
 * owns it); the small one was copied (the record still does).  ASan
 * checks that the large one's memory is freed once, after it was
 * written. */
static void
write_and_check(struct core_fx *fx, struct client *cl, int peer)
{
	struct ipc_msg big = alone_record(BIG, 1), small = alone_record(SMALL, 2);
	uint8_t *want = xmalloc(4 + BIG + SMALL + 4);

	memcpy(want, "head", 4);
	memcpy(want + 4, big.body, BIG);
	memcpy(want + 4 + BIG, small.body, SMALL);
	memcpy(want + 4 + BIG + SMALL, "tail", 4);
	client_write(cl, "head", 4);
	client_write_body(cl, big.body, BIG, &big);
	assert_null(big.mem);
	client_write_body(cl, small.body, SMALL, &small);
	assert_non_null(small.mem);
	client_write(cl, "tail", 4);
	ipc_msg_clear(&big);
	ipc_msg_clear(&small);
	expect_output(fx, peer, want, 4 + BIG + SMALL + 4);
	free(want);
}

static void
test_payload_copied_or_referred(void **state)
{
	struct core_fx *fx = *state;
	struct client *cl = fx_client(fx);

	write_and_check(fx, cl, fx->peers[0]);
}

/* Output behind a store ticket (a persistent session saved) waits, then
 * goes out whole and in order. */
static void
test_payload_behind_a_gate(void **state)
{
	struct core_fx *fx = *state;
	struct session *s = fx_session(fx, "m1", true, false);
	struct client *cl = client_by_id(&fx->b, fx->b.next_client_id);
	uint64_t ticket = session_save(s);

	assert_int_equal(ticket, DURABLE_NEXT);	/* written at the end of the pass */
	client_gate(cl, ticket);
	assert_int_equal(cl->gate, ticket);
	write_and_check(fx, cl, fx->peers[0]);
	assert_true(TAILQ_EMPTY(&fx->b.dirty_sessions));
	assert_true(durable_reached(&fx->b, kv_written(fx->b.store)));
	assert_int_equal(cl->gate, 0);
}

/* Bytes that are not the record's body are copied, and the record keeps
 * its memory. */
static void
test_other_bytes_copied(void **state)
{
	struct core_fx *fx = *state;
	struct client *cl = fx_client(fx);
	struct ipc_msg m = alone_record(BIG, 3);
	uint8_t *other = xmalloc(BIG);

	memcpy(other, m.body, BIG);
	client_write_body(cl, other, BIG, &m);
	assert_non_null(m.mem);
	memset(other, 0, BIG);		/* the output has its own copy */
	expect_output(fx, fx->peers[0], m.body, BIG);
	ipc_msg_clear(&m);
	free(other);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_payload_copied_or_referred, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_payload_behind_a_gate, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_other_bytes_copied, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
