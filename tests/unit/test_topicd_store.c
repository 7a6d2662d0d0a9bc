/* topicd's store layer without processes: the log, staging and release,
 * subscribers' cursors, trimming, and what survives a reopen. */
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <glob.h>

#include "kvstore.h"
#include "pagecache.h"
#include "log.h"
#include "topic.h"
#include "topicd.h"

struct fx {
	char		dir[256];
	struct topicd	td;
};

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
fx_open(struct fx *f, const char *topic)
{
	topicd_init(&f->td, topic, f->dir, false);
	assert_int_equal(topicd_open(&f->td), 0);
}

static void
fx_close(struct fx *f)
{
	topicd_close(&f->td);
	assert_int_equal(f->td.exit_code, 0);
}

static void
fx_reopen(struct fx *f)
{
	fx_close(f);
	fx_open(f, "a/b");
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");

	log_init("test", LOG_LVL_DEBUG, LOG_DEST_STDERR, NULL);
	snprintf(f->dir, sizeof(f->dir), "%s/topicd-store.XXXXXX", tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	fx_open(f, "a/b");
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	if (f->td.topic != NULL)
		fx_close(f);
	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static uint64_t
append(struct topicd *td, const char *payload, uint8_t qos)
{
	struct msg m = { .qos = qos, .time_ms = 1234, .payload = (const uint8_t *)payload,
			 .len = strlen(payload) };

	return log_append(td, &m);
}

static void
stage(struct topicd *td, const char *owner, uint32_t pubid, const char *payload, int expect)
{
	struct msg m = { .qos = 2, .time_ms = 99, .payload = (const uint8_t *)payload,
			 .len = strlen(payload) };

	assert_int_equal(stage_put(td, owner, pubid, &m), expect);
}

static void
assert_msg(struct topicd *td, uint64_t seq, const char *payload)
{
	struct msg m;

	assert_int_equal(log_get(td, seq, &m), 1);
	assert_int_equal(m.seq, seq);
	assert_int_equal(m.len, strlen(payload));
	assert_memory_equal(m.payload, payload, m.len);
	msg_release(&m);
}

/* With a subscriber at the start, so that nothing is trimmed. */
static void
hold(struct topicd *td)
{
	sub_create(td, "m/holder");
}

static void
test_append_seqs(void **state)
{
	struct fx *f = *state;
	struct topicd *td = &f->td;

	hold(td);
	assert_int_equal(td->next_seq, 1);
	assert_int_equal(append(td, "one", 1), 1);
	assert_int_equal(append(td, "two", 0), 2);
	assert_int_equal(append(td, "three", 2), 3);
	dispatch_sync(td, true);
	assert_int_equal(td->first_seq, 1);
	assert_int_equal(td->next_seq, 4);
	assert_int_equal(td->messages, 3);
	assert_int_equal(td->bytes, 11 + 3 * TD_MSG_HEADER);
	assert_msg(td, 2, "two");
	/* Read back from the store, not the cache. */
	cache_clear(td);
	assert_msg(td, 3, "three");
}

static void
test_stage_release(void **state)
{
	struct fx *f = *state;
	struct topicd *td = &f->td;
	uint64_t seq;

	hold(td);
	stage(td, "m/pub", 7, "hello", 0);
	stage(td, "m/pub", 7, "again", 1);	/* deduplicated */
	assert_true(stage_exists(td, "m/pub", 7));
	assert_int_equal(td->next_seq, 1);	/* no number until released */
	seq = stage_release(td, "m/pub", 7);
	assert_int_equal(seq, 1);
	assert_false(stage_exists(td, "m/pub", 7));
	assert_int_equal(stage_release(td, "m/pub", 7), 0);	/* idempotent */
	assert_int_equal(stage_release(td, "m/other", 1), 0);
	dispatch_sync(td, true);
	assert_msg(td, 1, "hello");
	/* After a reopen, the released message is still not staged. */
	fx_reopen(f);
	td = &f->td;
	assert_int_equal(stage_release(td, "m/pub", 7), 0);
	assert_int_equal(td->next_seq, 2);
	assert_msg(td, 1, "hello");
}

static void
test_release_owner_order(void **state)
{
	struct fx *f = *state;
	struct topicd *td = &f->td;
	char prefix[] = "Sm/a";

	hold(td);
	stage(td, "m/a", 300, "3", 0);
	stage(td, "m/a", 1, "1", 0);
	stage(td, "m/a", 20, "2", 0);
	stage(td, "m/ab", 5, "other", 0);
	/* The prefix includes the owner's NUL: "m/ab" is not "m/a". */
	assert_int_equal(stage_release_prefix(td, prefix, sizeof(prefix)), 3);
	assert_msg(td, 1, "1");
	assert_msg(td, 2, "2");
	assert_msg(td, 3, "3");
	assert_true(stage_exists(td, "m/ab", 5));
	assert_int_equal(td->next_seq, 4);
}

static void
test_boot_release(void **state)
{
	struct fx *f = *state;
	struct topicd *td = &f->td;

	hold(td);
	td->configured = true;
	td->conf_boot_id = 5;
	config_boot(td);
	stage(td, "j/5/1", 1, "json", 0);
	stage(td, "m/mqtt", 1, "mqtt", 0);
	dispatch_sync(td, true);
	/* The same master: nothing happens. */
	config_boot(td);
	assert_int_equal(td->next_seq, 1);
	/* A new master: the JSON-lines publishers' messages are released. */
	fx_reopen(f);
	td = &f->td;
	assert_int_equal(td->boot_id, 5);
	td->configured = true;
	td->conf_boot_id = 6;
	config_boot(td);
	assert_true(td->need_sync);
	assert_int_equal(td->next_seq, 2);
	assert_msg(td, 1, "json");
	assert_false(stage_exists(td, "j/5/1", 1));
	assert_true(stage_exists(td, "m/mqtt", 1));
	dispatch_sync(td, true);
	fx_reopen(f);
	assert_int_equal(f->td.boot_id, 6);
	assert_int_equal(f->td.next_seq, 2);
}

static void
ack(struct topicd *td, const char *key, uint64_t seq, uint8_t kind)
{
	struct rec_ack r = { key, seq, kind, "" };

	deliver_ack(td, &r);
}

static void
test_cursor_acks(void **state)
{
	struct fx *f = *state;
	struct topicd *td = &f->td;
	struct sub *s;

	append(td, "before", 1);
	s = sub_create(td, "m/c");
	assert_int_equal(s->cursor, 2);		/* new: from the next message */
	for (int i = 0; i < 4; i++)
		append(td, "x", 1);
	for (int i = 0; i < 3; i++)
		sub_push(s, FL_SENT)->attempts = 1;
	assert_int_equal(s->busy, 3);
	ack(td, "m/c", 3, ACK_PUBACK);		/* out of order */
	assert_int_equal(s->cursor, 2);
	assert_int_equal(s->busy, 2);
	ack(td, "m/c", 2, ACK_PUBACK);
	assert_int_equal(s->cursor, 4);
	assert_int_equal(s->nfl, 1);
	ack(td, "m/c", 4, ACK_PUBREC);
	assert_int_equal(s->fl[0].state, FL_RECEIVED);
	assert_true(s->fl[0].resend);		/* PUBREL after the commit */
	assert_true(td->need_sync);
	assert_int_equal(s->cursor, 4);
	ack(td, "m/c", 4, ACK_PUBCOMP);
	assert_int_equal(s->cursor, 5);
	assert_int_equal(s->nfl, 0);
	/* Ignored: unknown subscriber, a seq not in flight, a repeat. */
	ack(td, "m/none", 5, ACK_PUBACK);
	ack(td, "m/c", 5, ACK_PUBACK);
	ack(td, "m/c", 4, ACK_PUBCOMP);
	assert_int_equal(s->cursor, 5);
	dispatch_sync(td, true);
	fx_reopen(f);
	s = sub_find(&f->td, "m/c");
	assert_non_null(s);
	assert_int_equal(s->cursor, 5);
}

static void
test_trim(void **state)
{
	struct fx *f = *state;
	struct topicd *td = &f->td;
	struct sub *s = sub_create(td, "m/t");

	for (int i = 0; i < 5; i++)
		append(td, "12345", 1);
	dispatch_sync(td, true);
	assert_int_equal(td->messages, 5);
	s->cursor = 4;
	sub_dirty(s);
	dispatch_sync(td, true);
	assert_int_equal(td->first_seq, 4);
	assert_int_equal(td->messages, 2);
	assert_int_equal(td->bytes, 2 * (5 + TD_MSG_HEADER));
	cache_clear(td);
	struct msg m;
	assert_int_equal(log_get(td, 3, &m), 0);
	assert_msg(td, 4, "12345");
	/* The bytes come from the records at open, whatever the meta record
	 * says (a release that counted payloads only wrote 10 here). */
	td->bytes = 10;
	td->meta_dirty = true;
	dispatch_sync(td, true);
	fx_reopen(f);
	td = &f->td;
	s = sub_find(td, "m/t");
	assert_non_null(s);
	assert_int_equal(td->messages, 2);
	assert_int_equal(td->bytes, 2 * (5 + TD_MSG_HEADER));
	/* Without subscribers, everything goes. */
	sub_delete(s);
	dispatch_sync(td, true);
	assert_int_equal(td->messages, 0);
	assert_int_equal(td->bytes, 0);
	assert_int_equal(td->first_seq, 6);
	assert_int_equal(td->next_seq, 6);
	/* ... and the numbers go on after a reopen. */
	fx_reopen(f);
	td = &f->td;
	assert_int_equal(td->next_seq, 6);
	assert_int_equal(td->first_seq, 6);
	assert_int_equal(td->nsubs, 0);
	assert_int_equal(append(td, "next", 0), 6);
}

static void
test_reopen_state(void **state)
{
	struct fx *f = *state;
	struct topicd *td = &f->td;
	struct sub *s = sub_create(td, "j/user");
	struct flight *fl;

	s->mode = MODE_JSON;
	s->window = 3;
	for (int i = 0; i < 3; i++)
		append(td, "m", 2);
	sub_push(s, FL_RECEIVED)->attempts = 2;
	sub_push(s, FL_DONE)->attempts = 1;
	sub_push(s, FL_SENT)->attempts = 4;
	s->parked = true;
	sub_dirty(s);
	dispatch_sync(td, true);
	fx_reopen(f);
	td = &f->td;
	s = sub_find(td, "j/user");
	assert_non_null(s);
	assert_int_equal(td->nsubs, 1);
	assert_int_equal(s->cursor, 1);
	assert_int_equal(s->window, 3);
	assert_int_equal(s->mode, MODE_JSON);
	assert_true(s->parked);
	assert_int_equal(s->nfl, 3);
	assert_int_equal(s->busy, 2);
	fl = sub_flight(s, 3);
	assert_non_null(fl);
	assert_int_equal(fl->state, FL_SENT);
	assert_int_equal(fl->attempts, 4);
	assert_int_equal(s->fl[0].state, FL_RECEIVED);
	assert_int_equal(td->messages, 3);
	assert_int_equal(td->next_seq, 4);
}

/* A message key beyond the recorded next_seq (the meta record is written
 * in the same batch, but do not rely on it): numbers never repeat. */
static void
test_next_seq_from_keys(void **state)
{
	struct fx *f = *state;
	uint8_t key[9] = { 'M', 0, 0, 0, 0, 0, 0, 0, 41 };
	struct wbuf w;
	struct msg m = { .qos = 1, .payload = (const uint8_t *)"z", .len = 1 };

	wbuf_init(&w);
	msg_encode(&w, &m);
	hold(&f->td);
	assert_int_equal(kv_put(f->td.kv, key, sizeof(key), w.data, w.len), 0);
	assert_int_equal(kv_commit(f->td.kv), 0);
	wbuf_free(&w);
	fx_reopen(f);
	assert_int_equal(f->td.next_seq, 42);
	assert_int_equal(f->td.first_seq, 41);
	assert_int_equal(f->td.messages, 1);
}

static void
test_topic_mismatch(void **state)
{
	struct fx *f = *state;
	struct topicd other;

	fx_close(f);
	/* Another topic whose stem is the same (a collision of cut names). */
	topicd_init(&other, "c/d", f->dir, false);
	free(other.stem);
	other.stem = topic_file_name("a/b");
	assert_int_equal(topicd_open(&other), -1);
	topicd_close(&other);
	fx_open(f, "a/b");
}

static void
test_retained(void **state)
{
	struct fx *f = *state;
	struct topicd *td = &f->td;
	struct msg m = { .qos = 1, .flags = PF_RETAIN, .payload = (const uint8_t *)"r1", .len = 2 };
	struct msg got;

	log_append(td, &m);
	dispatch_sync(td, true);		/* no subscriber: the log is trimmed */
	assert_int_equal(td->messages, 0);
	fx_reopen(f);
	td = &f->td;
	assert_true(td->has_retained);
	assert_int_equal(td->retained_seq, 1);
	assert_int_equal(retain_get(td, &got), 1);
	assert_int_equal(got.len, 2);
	assert_memory_equal(got.payload, "r1", 2);
	msg_release(&got);
	m.len = 0;				/* an empty one clears it */
	log_append(td, &m);
	assert_false(td->has_retained);
	assert_int_equal(retain_get(td, &got), 0);
}

/* A message appended with the memory its bytes lie in: the cache keeps
 * that memory instead of a copy, or (too large to cache) it is freed; the
 * store has the message either way.  ASan checks each is freed once. */
static void
test_append_takes_memory(void **state)
{
	struct fx *f = *state;
	struct topicd *td = &f->td;
	size_t sizes[] = { 3, TD_CACHE_MAX_PAYLOAD, TD_CACHE_MAX_PAYLOAD + 1 };
	uint8_t *want[3];
	struct msg got;

	hold(td);
	for (int i = 0; i < 3; i++) {
		uint8_t *mem = malloc(sizes[i] + 16);
		struct msg m = { .qos = 1, .time_ms = 7, .payload = mem + 16, .len = sizes[i],
				 .origin = "m/pub", .buf = mem };

		assert_non_null(mem);
		memset(mem + 16, 'a' + i, sizes[i]);
		want[i] = malloc(sizes[i]);
		assert_non_null(want[i]);
		memcpy(want[i], mem + 16, sizes[i]);
		assert_int_equal(log_append(td, &m), (uint64_t)i + 1);
		assert_null(m.buf);			/* taken */
		assert_int_equal(cache_get(td, (uint64_t)i + 1, &got), i < 2);
		if (i < 2)
			assert_ptr_equal(got.payload, mem + 16);	/* not a copy */
	}
	dispatch_sync(td, true);
	fx_reopen(f);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(log_get(&f->td, (uint64_t)i + 1, &got), 1);
		assert_int_equal(got.len, sizes[i]);
		assert_memory_equal(got.payload, want[i], sizes[i]);
		assert_string_equal(got.origin, "m/pub");
		msg_release(&got);
		free(want[i]);
	}
}

static void
put_sub_record(struct topicd *td, const char *key, uint8_t version, uint8_t extra)
{
	struct wbuf k, w;

	wbuf_init(&k);
	wbuf_init(&w);
	put_u8(&k, 'C');
	put_raw(&k, key, strlen(key));
	put_u8(&w, version);
	put_u64(&w, 5);			/* cursor */
	put_u8(&w, MODE_MQTT);
	put_u8(&w, 2);			/* qos */
	put_u16(&w, 20);		/* window */
	put_u8(&w, 0);			/* parked */
	put_u32(&w, 0);			/* in flight */
	if (version >= 2) {
		put_u64(&w, 3);		/* the retained message in flight */
		put_u8(&w, extra);
	}
	assert_int_equal(kv_put(td->kv, k.data, k.len, w.data, w.len), 0);
	assert_int_equal(kv_commit(td->kv), 0);
	wbuf_free(&k);
	wbuf_free(&w);
}

/* A subscriber record of version 1 (before retained exchanges were
 * kept) is read; one of an unknown version stops the store. */
static void
test_subscriber_record_versions(void **state)
{
	struct fx *f = *state;
	struct sub *s;

	hold(&f->td);
	for (uint64_t i = 0; i < 6; i++)
		append(&f->td, "m", 1);
	put_sub_record(&f->td, "m/v1", 1, 0);
	put_sub_record(&f->td, "m/v2", 2, FL_RECEIVED);
	fx_reopen(f);
	assert_non_null(s = sub_find(&f->td, "m/v1"));
	assert_int_equal(s->cursor, 5);
	assert_int_equal(s->ret_state, 0);
	assert_non_null(s = sub_find(&f->td, "m/v2"));
	assert_int_equal(s->ret_state, FL_RECEIVED);
	assert_int_equal(s->ret_seq, 3);
	put_sub_record(&f->td, "m/v9", 9, 0);
	fx_close(f);
	topicd_init(&f->td, "a/b", f->dir, false);
	errno = 0;
	assert_int_equal(topicd_open(&f->td), -1);
	assert_int_equal(errno, EUCLEAN);
	topicd_close(&f->td);
	f->td.topic = NULL;
}

static uint64_t
forgotten(const struct topicd *td)
{
	struct kv_stats st;

	kv_get_stats(td->kv, &st);
	return st.forgotten;
}

/* What every subscriber has read leaves the page cache as it is trimmed
 * (16 MiB behind the oldest message kept, 8 MiB at a time).  The store's
 * watermark is exact; of the page cache only what was forgotten is
 * checked (the kernel may evict any other clean page). */
static void
test_trim_forgets_journal(void **state)
{
	static char big[MIB];
	struct fx *f = *state;
	struct topicd *td = &f->td;
	bool check_cache = !on_tmpfs(f->dir);
	char pattern[300];
	struct sub *s;
	glob_t g;

	/* One segment: no checkpoint begins another (only the current
	 * segment is forgotten). */
	fx_close(f);
	topicd_init(td, "a/b", f->dir, false);
	td->checkpoint_bytes = 1ULL << 40;
	assert_int_equal(topicd_open(td), 0);
	s = sub_create(td, "m/r");
	memset(big, 'x', sizeof(big) - 1);
	for (int i = 0; i < 40; i++)
		append(td, big, 1);
	dispatch_sync(td, true);
	snprintf(pattern, sizeof(pattern), "%s/topics/*.journal.*", f->dir);
	if (glob(pattern, 0, NULL, &g) != 0 || g.gl_pathc != 1)
		fail_msg("not one %s", pattern);
	assert_int_equal(forgotten(td), 0);
	/* Read up to message 30, at about 30 MiB: up to 14, one step, goes. */
	s->cursor = 30;
	sub_dirty(s);
	dispatch_sync(td, true);
	assert_int_equal(td->first_seq, 30);
	assert_int_equal(forgotten(td), 8 * MIB);
	if (check_cache)
		assert_true((resident_mib(g.gl_pathv[0]) & below(8)) == 0);
	/* All read: all but the last 16 MiB. */
	sub_delete(s);
	dispatch_sync(td, true);
	assert_int_equal(td->messages, 0);
	assert_int_equal(forgotten(td), 24 * MIB);
	if (check_cache)
		assert_true((resident_mib(g.gl_pathv[0]) & below(24)) == 0);
	globfree(&g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_append_seqs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stage_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_owner_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_boot_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cursor_acks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trim, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trim_forgets_journal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_next_seq_from_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_topic_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retained, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_takes_memory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_subscriber_record_versions, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
