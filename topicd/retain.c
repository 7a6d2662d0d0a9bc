/* The retained message (MQTT): the last message published with PF_RETAIN
 * and a non-empty payload, kept apart from the log so that trimming does
 * not lose it.  Record under "R": seq(u64) and a message record. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "topicd.h"

void
retain_load(struct topicd *td)
{
	struct msg m;

	td->has_retained = retain_get(td, &m) == 1;
	if (td->has_retained) {
		td->retained_seq = m.seq;
		msg_release(&m);
	}
}

/* An empty retained message clears it (MQTT 3.3.1.3). */
void
retain_update(struct topicd *td, const struct msg *m)
{
	const char key = 'R';

	if (m->len == 0) {
		store_del(td, &key, 1);
		td->has_retained = false;
		return;
	}
	wbuf_reset(&td->wb);
	put_u64(&td->wb, m->seq);
	msg_encode(&td->wb, m);
	store_put(td, &key, 1, td->wb.data, td->wb.len);
	td->has_retained = true;
	td->retained_seq = m->seq;
}

/* The retained message expired: it goes, and new subscribers get none. */
void
retain_expire(struct topicd *td)
{
	const char key = 'R';

	log_debug("topic %s: the retained message (seq %llu) expired; removed", td->topic,
	    (unsigned long long)td->retained_seq);
	store_del(td, &key, 1);
	td->has_retained = false;
	td->expired++;
	td->stats_dirty = true;
}

/* 1 and the retained message (owned: msg_release() it), or 0. */
int
retain_get(struct topicd *td, struct msg *m)
{
	const char key = 'R';
	struct rbuf r;
	void *val;
	size_t vlen;

	memset(m, 0, sizeof(*m));
	if (store_get(td, &key, 1, &val, &vlen) == 0)
		return 0;
	rbuf_init(&r, val, vlen);
	if (get_u64(&r, &m->seq) == -1 || msg_decode(r.p, r.left, m) == -1) {
		log_warnx("topic %s: unreadable retained message, ignored", td->topic);
		free(val);
		return 0;
	}
	m->buf = val;
	return 1;
}
