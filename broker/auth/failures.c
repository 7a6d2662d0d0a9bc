/* Failed logins per address, to slow down password guessing: the answer
 * to a failed login waits AUTH_DELAY_BASE_MS, doubled for each failure
 * from the same address in the last AUTH_FAIL_FORGET_MS, up to
 * AUTH_DELAY_MAX_MS.  At most AUTH_FAIL_ADDRESSES addresses are
 * remembered; past that the one whose last failure is oldest is
 * forgotten.  The caller waits with a timer, never in place. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/sys/queue.h>
#include <bsd/sys/tree.h>

#include "auth/auth.h"
#include "xmalloc.h"

#define FAIL_ADDR_MAX	64

struct fail {
	RB_ENTRY(fail)	 entry;
	TAILQ_ENTRY(fail) order;	/* oldest last failure first */
	char		 addr[FAIL_ADDR_MAX];
	unsigned	 count;		/* recent failures */
	int64_t		 last;		/* monotonic ms */
};

RB_HEAD(auth_fail_tree, fail);
TAILQ_HEAD(fail_list, fail);

struct auth_failures {
	struct auth_fail_tree tree;
	struct fail_list order;
	size_t		 n;
};

static int
fail_cmp(struct fail *a, struct fail *b)
{
	return strcmp(a->addr, b->addr);
}

RB_PROTOTYPE(auth_fail_tree, fail, entry, fail_cmp)
RB_GENERATE(auth_fail_tree, fail, entry, fail_cmp)

struct auth_failures *
auth_failures_new(void)
{
	struct auth_failures *f = xcalloc(1, sizeof(*f));

	RB_INIT(&f->tree);
	TAILQ_INIT(&f->order);
	return f;
}

static void
forget(struct auth_failures *f, struct fail *e)
{
	RB_REMOVE(auth_fail_tree, &f->tree, e);
	TAILQ_REMOVE(&f->order, e, order);
	f->n--;
	free(e);
}

static void
forget_old(struct auth_failures *f, int64_t now)
{
	struct fail *e;

	while ((e = TAILQ_FIRST(&f->order)) != NULL && now - e->last >= AUTH_FAIL_FORGET_MS)
		forget(f, e);
}

void
auth_failures_free(struct auth_failures *f)
{
	struct fail *e;

	if (f == NULL)
		return;
	while ((e = TAILQ_FIRST(&f->order)) != NULL)
		forget(f, e);
	free(f);
}

uint64_t
auth_failures_note(struct auth_failures *f, const char *addr, int64_t now)
{
	struct fail key, *e;
	uint64_t delay;

	forget_old(f, now);
	snprintf(key.addr, sizeof(key.addr), "%s", addr);
	if ((e = RB_FIND(auth_fail_tree, &f->tree, &key)) == NULL) {
		if (f->n >= AUTH_FAIL_ADDRESSES)
			forget(f, TAILQ_FIRST(&f->order));
		e = xcalloc(1, sizeof(*e));
		memcpy(e->addr, key.addr, sizeof(e->addr));
		RB_INSERT(auth_fail_tree, &f->tree, e);
		f->n++;
	} else {
		TAILQ_REMOVE(&f->order, e, order);
	}
	TAILQ_INSERT_TAIL(&f->order, e, order);
	e->last = now;
	if (e->count < 32)
		e->count++;
	delay = (uint64_t)AUTH_DELAY_BASE_MS << (e->count - 1);
	return delay < AUTH_DELAY_MAX_MS ? delay : AUTH_DELAY_MAX_MS;
}

size_t
auth_failures_size(struct auth_failures *f, int64_t now)
{
	forget_old(f, now);
	return f->n;
}
