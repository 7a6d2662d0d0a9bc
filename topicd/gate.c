/* What waits for the disk: answers to the master and deliveries.
 *
 * A batch is written at its end and, when something in it needs to be
 * durable, its sync is asked of the store's worker thread (kv_sync_async)
 * while this process goes on with the next batch: the syncs run beside
 * the work, and one sync covers every batch written while the previous
 * one ran.  Each batch is numbered (td->gen) and leaves a gate: its
 * store ticket and the log's end.  Once the store says the ticket is
 * durable, the gate opens: the batch's answers go out, in order
 * (td->done_gen), and its messages may be delivered (td->deliver_upto).
 * A batch that needs no sync opens with the one before it, so that
 * nothing overtakes what is still on its way to the disk.
 *
 * What a subscriber may be sent only once something of a batch is
 * durable waits for that batch's number: a new session's first
 * deliveries for its ATTACH (sub.hold_gen), a PUBREL for the PUBREC
 * applied in it (flight.rel_gen, sub.ret_gen). */
#include <stdlib.h>
#include <string.h>

#include "ipc.h"
#include "kvstore.h"
#include "log.h"
#include "topicd.h"
#include "xmalloc.h"

struct gate {
	uint64_t	 gen;
	uint64_t	 ticket;	/* durable: the batch is */
	uint64_t	 seq;		/* the log's end after it */
};

/* An answer for the batch being applied. */
void
reply(struct topicd *td, uint64_t req, uint32_t status, uint64_t seq)
{
	if (req == 0)
		return;
	if (td->nreplies == td->replies_cap) {
		td->replies_cap = td->replies_cap ? td->replies_cap * 2 : 64;
		td->replies = xreallocarray(td->replies, td->replies_cap, sizeof(*td->replies));
	}
	td->replies[td->nreplies++] = (struct reply){ req, status, seq, td->gen };
}

/* The answers of the batches durable now, in order. */
static void
replies_send(struct topicd *td)
{
	struct rec_done d;
	size_t i;

	for (i = 0; i < td->nreplies && td->replies[i].gen <= td->done_gen; i++) {
		d.req = td->replies[i].req;
		d.status = td->replies[i].status;
		d.seq = td->replies[i].seq;
		wbuf_reset(&td->wb);
		enc_done(&td->wb, &d);
		dispatch_send(td, IPC_DONE);
	}
	if (i == 0)
		return;
	td->nreplies -= i;
	memmove(td->replies, td->replies + i, td->nreplies * sizeof(*td->replies));
}

/* Batch gen and those before it are durable. */
static bool
open_upto(struct topicd *td, uint64_t gen, uint64_t seq)
{
	bool wake = td->hold_max > td->done_gen || seq > td->deliver_upto;

	td->done_gen = gen;
	if (seq > td->deliver_upto)
		td->deliver_upto = seq;
	return wake;
}

/* Opens the gates whose tickets are durable: true if any did. */
bool
gate_release(struct topicd *td)
{
	uint64_t durable = kv_durable(td->kv);
	bool wake = false;
	size_t n = 0;

	while (n < td->ngates && td->gates[n].ticket <= durable) {
		wake |= open_upto(td, td->gates[n].gen, td->gates[n].seq);
		n++;
	}
	if (n == 0)
		return false;
	td->ngates -= n;
	memmove(td->gates, td->gates + n, td->ngates * sizeof(*td->gates));
	replies_send(td);
	if (wake)
		deliver_wake_all(td);
	return true;
}

/* The batch just written: durable, when something in it needs a sync.
 * It is numbered and its gate set; it may open at once. */
void
gate_end_batch(struct topicd *td, bool durable)
{
	uint64_t ticket = 0;

	if (durable && td->sync) {
		if (kv_sync_async(td->kv) == -1)
			store_fail(td, "sync");
		ticket = kv_written(td->kv);
	}
	if (td->ngates > 0 && td->gates[td->ngates - 1].ticket > ticket)
		ticket = td->gates[td->ngates - 1].ticket;	/* in order */
	if (td->ngates == td->gates_cap) {
		td->gates_cap = td->gates_cap ? td->gates_cap * 2 : 16;
		td->gates = xreallocarray(td->gates, td->gates_cap, sizeof(*td->gates));
	}
	td->gates[td->ngates++] = (struct gate){ td->gen, ticket, td->next_seq };
	td->gen++;
	(void)gate_release(td);
}

/* Nothing waits for the disk. */
bool
gate_clear(const struct topicd *td)
{
	return td->ngates == 0 && td->nreplies == 0;
}

/* The number of the batch in hand, for what is to wait until it is
 * durable (see gate_open). */
uint64_t
gate_hold(struct topicd *td)
{
	td->hold_max = td->gen;
	return td->gen;
}

/* Has batch gen been made durable? */
bool
gate_open(const struct topicd *td, uint64_t gen)
{
	return gen <= td->done_gen;
}

void
gate_free(struct topicd *td)
{
	free(td->gates);
	free(td->replies);
	td->gates = NULL;
	td->replies = NULL;
	td->ngates = td->gates_cap = td->nreplies = td->replies_cap = 0;
}
