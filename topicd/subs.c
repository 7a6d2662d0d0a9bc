/* Subscribers: the durable cursor and in-flight entries of every
 * subscriber, in memory (a tree by subkey) and in the store.
 *
 * Record under "C" subkey: version(u8) cursor(u64) mode(u8) qos(u8)
 * window(u16) parked(u8) n(u32), then n entries state(u8) attempts(u32)
 * for the messages cursor, cursor + 1, ...; since version 2 then the
 * retained message in flight to it: seq(u64) state(u8, 0 for none).
 * Version 1 records are read as without one.  A shared subscription's
 * (key "g/...") is of version 3: version 2 and its members (share.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "clock.h"
#include "log.h"
#include "topicd.h"
#include "xmalloc.h"

#define SUB_VERSION 2
#define SUB_VERSION_GROUP 3

int
sub_cmp(struct sub *a, struct sub *b)
{
	return strcmp(a->key, b->key);
}

RB_GENERATE(sub_tree, sub, entry, sub_cmp)

static void
sub_key(struct wbuf *k, const char *subkey)
{
	wbuf_reset(k);
	put_u8(k, 'C');
	put_raw(k, subkey, strlen(subkey));
}

/* A subscriber, a group (a key starting with SHARE_KEY_PREFIX), or a
 * group's member (share.c sets it up). */
struct sub *
sub_alloc(struct topicd *td, const char *key)
{
	struct sub *s = xcalloc(1, sizeof(*s));
	size_t n = strlen(SHARE_KEY_PREFIX);

	s->td = td;
	s->key = xstrdup(key);
	s->fd = -1;
	s->window = 1;
	s->mode = MODE_JSON;
	s->qos = 2;
	if (strncmp(key, SHARE_KEY_PREFIX, n) == 0) {
		s->is_group = true;
		xasprintf(&s->share, "$share/%s", key + n);
	}
	return s;
}

void
sub_free(struct sub *s)
{
	if (s->timer != NULL)
		event_free(s->timer);
	if (s->dlq_req != 0)
		s->td->ndlq--;	/* its DLQ_DONE will find no one */
	if (s->is_group) {
		share_free_members(s);
		free(s->share);
	}
	free(s->fl);
	free(s->aside);
	ipc_out_free(&s->out);
	free(s->key);
	free(s);
}

static void
sub_insert(struct topicd *td, struct sub *s)
{
	RB_INSERT(sub_tree, &td->subs, s);
	if (s->is_group)
		TAILQ_INSERT_TAIL(&td->groups, s, group_entry);
	td->nsubs++;
}

struct sub *
sub_find(struct topicd *td, const char *key)
{
	struct sub q;

	q.key = (char *)key;
	return RB_FIND(sub_tree, &td->subs, &q);
}

/* A new subscriber starts with the next message published. */
struct sub *
sub_create(struct topicd *td, const char *key)
{
	struct sub *s = sub_alloc(td, key);

	s->cursor = td->next_seq;
	sub_insert(td, s);
	sub_dirty(s);
	return s;
}

void
sub_delete(struct sub *s)
{
	struct topicd *td = s->td;

	deliver_offline(s);
	if (s->queued)
		TAILQ_REMOVE(&td->work, s, work_entry);
	if (s->dirty)
		TAILQ_REMOVE(&td->dirty, s, dirty_entry);
	sub_key(&td->kb, s->key);
	store_del(td, td->kb.data, td->kb.len);
	RB_REMOVE(sub_tree, &td->subs, s);
	if (s->is_group)
		TAILQ_REMOVE(&td->groups, s, group_entry);
	td->nsubs--;
	td->stats_dirty = true;
	sub_free(s);
}

/* Deletes every subscriber whose key starts with prefix; returns how many. */
unsigned
sub_delete_prefix(struct topicd *td, const char *prefix)
{
	struct sub *s, *next;
	size_t n = strlen(prefix);
	unsigned count = 0;

	RB_FOREACH_SAFE(s, sub_tree, &td->subs, next) {
		if (strncmp(s->key, prefix, n) == 0) {
			sub_delete(s);
			count++;
		}
	}
	return count;
}

void
sub_dirty(struct sub *s)
{
	s->td->stats_dirty = true;
	if (s->dirty)
		return;
	s->dirty = true;
	TAILQ_INSERT_TAIL(&s->td->dirty, s, dirty_entry);
}

static void
sub_encode(struct wbuf *w, const struct sub *s)
{
	put_u8(w, s->is_group ? SUB_VERSION_GROUP : SUB_VERSION);
	put_u64(w, s->cursor);
	put_u8(w, s->mode);
	put_u8(w, s->qos);
	put_u16(w, s->window);
	put_u8(w, s->parked);
	put_u32(w, s->nfl);
	for (uint32_t i = 0; i < s->nfl; i++) {
		put_u8(w, s->fl[i].state);
		put_u32(w, s->fl[i].attempts);
	}
	put_u64(w, s->ret_seq);
	put_u8(w, s->ret_state);
	if (s->is_group)
		share_encode(w, s);
}

static int
sub_decode(struct sub *s, const void *p, size_t n)
{
	struct rbuf r;
	uint8_t version = 0, parked = 0;
	uint32_t nfl = 0;

	rbuf_init(&r, p, n);
	get_u8(&r, &version);
	get_u64(&r, &s->cursor);
	get_u8(&r, &s->mode);
	get_u8(&r, &s->qos);
	get_u16(&r, &s->window);
	get_u8(&r, &parked);
	get_u32(&r, &nfl);
	if (r.err || (version != 1 && version != SUB_VERSION &&
	    !(version == SUB_VERSION_GROUP && s->is_group)) || nfl > r.left / 5)
		return -1;
	s->parked = parked != 0;
	for (uint32_t i = 0; i < nfl; i++) {
		uint8_t state = 0;
		struct flight *f;

		get_u8(&r, &state);
		if (state < FL_SENT || state > FL_DONE)
			return -1;
		f = sub_push(s, state);
		get_u32(&r, &f->attempts);
	}
	if (version >= 2) {
		get_u64(&r, &s->ret_seq);
		get_u8(&r, &s->ret_state);
		if (s->ret_state != 0 && s->ret_state != FL_SENT && s->ret_state != FL_RECEIVED)
			return -1;
	}
	if (s->is_group && (version != SUB_VERSION_GROUP || share_decode(s, &r) == -1))
		return -1;
	if (s->window == 0)
		s->window = 1;
	return get_end(&r);
}

/* Writes the record of every subscriber that changed. */
void
subs_save(struct topicd *td)
{
	struct sub *s;

	while ((s = TAILQ_FIRST(&td->dirty)) != NULL) {
		TAILQ_REMOVE(&td->dirty, s, dirty_entry);
		s->dirty = false;
		sub_key(&td->kb, s->key);
		wbuf_reset(&td->wb);
		sub_encode(&td->wb, s);
		store_put(td, td->kb.data, td->kb.len, td->wb.data, td->wb.len);
	}
}

/* Keeps a loaded subscriber within the log: the cursor cannot be past
 * next_seq, nor before the oldest message kept. */
static void
sub_clamp(struct topicd *td, struct sub *s)
{
	if (s->cursor > td->next_seq || s->cursor < td->first_seq) {
		log_warnx("topic %s: subscriber %s: cursor %llu outside %llu..%llu, reset",
		    td->topic, s->key, (unsigned long long)s->cursor,
		    (unsigned long long)td->first_seq, (unsigned long long)td->next_seq);
		s->cursor = s->cursor > td->next_seq ? td->next_seq : td->first_seq;
		s->nfl = s->busy = 0;
		sub_dirty(s);
	}
	if (s->nfl > td->next_seq - s->cursor) {
		s->nfl = (uint32_t)(td->next_seq - s->cursor);
		s->busy = 0;
		for (uint32_t i = 0; i < s->nfl; i++)
			s->busy += s->fl[i].state != FL_DONE;
		sub_dirty(s);
	}
}

static int
sub_load(struct topicd *td, const uint8_t *key, size_t klen)
{
	char *name = xmalloc(klen);
	void *val;
	size_t vlen;
	struct sub *s;
	int64_t now = mono_ms();

	memcpy(name, key + 1, klen - 1);
	name[klen - 1] = '\0';
	if (strlen(name) != klen - 1 || store_get(td, key, klen, &val, &vlen) == 0) {
		log_warnx("topic %s: ignoring a malformed subscriber key", td->topic);
		free(name);
		return 0;
	}
	s = sub_alloc(td, name);
	free(name);
	if (sub_decode(s, val, vlen) == -1) {
		/* The journal is checksummed: a record of another version, or
		 * damage.  Dropping it would drop what the subscriber is owed. */
		log_errx("topic %s: subscriber %s: record of an unknown version or unreadable",
		    td->topic, s->key);
		free(val);
		sub_free(s);
		errno = EUCLEAN;
		return -1;
	}
	free(val);
	for (uint32_t i = 0; i < s->nfl; i++)
		s->fl[i].first_ms = s->fl[i].last_ms = now;
	s->restored = s->nfl > 0;
	sub_insert(td, s);
	sub_clamp(td, s);
	return 0;
}

int
subs_load(struct topicd *td)
{
	return store_each(td, "C", 1, sub_load);
}

void
subs_free(struct topicd *td)
{
	struct sub *s;

	while ((s = RB_MIN(sub_tree, &td->subs)) != NULL) {
		deliver_offline(s);
		RB_REMOVE(sub_tree, &td->subs, s);
		if (s->is_group)
			TAILQ_REMOVE(&td->groups, s, group_entry);
		sub_free(s);
	}
	TAILQ_INIT(&td->work);
	TAILQ_INIT(&td->dirty);
	TAILQ_INIT(&td->groups);
	td->nsubs = 0;
}

struct flight *
sub_flight(struct sub *s, uint64_t seq)
{
	if (seq < s->cursor || seq - s->cursor >= s->nfl)
		return NULL;
	return &s->fl[seq - s->cursor];
}

/* Adds the entry for message cursor + nfl. */
struct flight *
sub_push(struct sub *s, uint8_t state)
{
	struct flight *f;

	if (s->nfl == s->flcap) {
		s->flcap = s->flcap ? s->flcap * 2 : 4;
		s->fl = xreallocarray(s->fl, s->flcap, sizeof(*s->fl));
	}
	f = &s->fl[s->nfl++];
	memset(f, 0, sizeof(*f));
	f->state = state;
	if (state != FL_DONE)
		s->busy++;
	return f;
}

void
sub_set_state(struct sub *s, struct flight *f, uint8_t state)
{
	if (f->state != FL_DONE && state == FL_DONE)
		s->busy--;
	else if (f->state == FL_DONE && state != FL_DONE)
		s->busy++;
	f->state = state;
	if (state == FL_DONE)
		f->resend = false;
}

/* Moves the cursor over the completed entries at the head; true if it
 * moved. */
bool
sub_advance(struct sub *s)
{
	uint32_t k = 0;

	while (k < s->nfl && s->fl[k].state == FL_DONE)
		k++;
	if (k == 0)
		return false;
	memmove(s->fl, s->fl + k, (s->nfl - k) * sizeof(*s->fl));
	s->nfl -= k;
	s->cursor += k;
	sub_dirty(s);
	return true;
}

/* Where trimming may go: the smallest cursor, or next_seq without
 * subscribers. */
uint64_t
subs_min_cursor(struct topicd *td)
{
	uint64_t min = td->next_seq;
	struct sub *s;

	RB_FOREACH(s, sub_tree, &td->subs) {
		if (s->cursor < min)
			min = s->cursor;
		if (s->is_group && share_aside_min_seq(s) < min)
			min = share_aside_min_seq(s);
	}
	return min;
}
