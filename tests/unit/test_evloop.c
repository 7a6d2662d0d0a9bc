/* The event loop polls for ready descriptors between callbacks that keep
 * making themselves active again (a channel's reader under a peer that
 * never stops writing), so a socket that became ready gets its turn. */
#include <sys/socket.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "evloop.h"

#define SPIN_MAX	100000		/* the spinner gives up here */
#define SPIN_WRITE	10		/* the spin that makes the socket ready */

struct spin {
	struct event	*ev;
	int		 wfd;		/* written at spin SPIN_WRITE */
	unsigned	 turns;
	unsigned	 turns_at_ready;	/* when the socket had its turn */
	bool		 ready_seen;
};

static void
on_spin(evutil_socket_t fd, short what, void *arg)
{
	struct spin *sp = arg;

	(void)fd;
	(void)what;
	if (++sp->turns >= SPIN_MAX || sp->ready_seen) {
		event_base_loopbreak(event_get_base(sp->ev));
		return;
	}
	if (sp->turns == SPIN_WRITE)
		assert_int_equal(write(sp->wfd, "x", 1), 1);
	event_active(sp->ev, EV_TIMEOUT, 0);	/* the rest, "after the others" */
}

static void
on_ready(evutil_socket_t fd, short what, void *arg)
{
	struct spin *sp = arg;

	(void)fd;
	(void)what;
	sp->ready_seen = true;
	sp->turns_at_ready = sp->turns;
}

/* Runs a spinner that makes a socket readable at its SPIN_WRITE-th turn;
 * the number of spins after that before the socket's callback ran, or
 * SPIN_MAX. */
static unsigned
spins_before_ready(struct event_base *base)
{
	struct spin sp = { 0 };
	struct event *rev;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	sp.wfd = sv[1];
	sp.ev = event_new(base, -1, 0, on_spin, &sp);
	rev = event_new(base, sv[0], EV_READ, on_ready, &sp);
	assert_non_null(sp.ev);
	assert_non_null(rev);
	assert_int_equal(event_add(rev, NULL), 0);
	event_active(sp.ev, EV_TIMEOUT, 0);
	assert_int_equal(event_base_dispatch(base), 0);
	event_free(rev);
	event_free(sp.ev);
	close(sv[0]);
	close(sv[1]);
	return sp.ready_seen ? sp.turns_at_ready - SPIN_WRITE : SPIN_MAX;
}

static void
test_ready_socket_gets_its_turn(void **state)
{
	struct event_base *base = evloop_new();

	(void)state;
	assert_non_null(base);
	assert_in_range(spins_before_ready(base), 0, 2 * EVLOOP_MAX_CALLBACKS);
	event_base_free(base);
}

/* What the limit is for: libevent's default never polls while something
 * is active, and the socket waits as long as the spinner spins. */
static void
test_default_base_starves(void **state)
{
	struct event_base *base = event_base_new();

	(void)state;
	assert_non_null(base);
	assert_int_equal(spins_before_ready(base), SPIN_MAX);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ready_socket_gets_its_turn),
		cmocka_unit_test(test_default_base_starves),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
