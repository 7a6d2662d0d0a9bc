/* Reading the store as a log is read: values read back in the order they
 * were put come from one read of the journal for many (read-ahead), in
 * every order they read back right (across segments, checkpoints, the
 * pending batch and a segment that grew since it was read), and keys
 * found, sized and deleted in order (the index's finger) stay right. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kvstore.h"
#include "log.h"
#include "tmpdir.h"

#define NAME	"r"
#define NKEYS	3000
#define NO_CKPT	(1ULL << 40)


static int
setup(void **state)
{
	return tmpdir_setup(state, "kvr");
}

#define teardown tmpdir_teardown

static struct kv *
open_kv(struct tmpdir *fx, uint64_t ckpt)
{
	char *err = NULL;
	struct kv *kv = kv_open(fx->dir, NAME, ckpt, &err);

	if (kv == NULL)
		fail_msg("kv_open: %s", err);
	return kv;
}

/* A message key, as a topicd's log has them: 'M' and a big-endian number. */
static size_t
mkey(uint8_t *k, unsigned i)
{
	k[0] = 'M';
	for (int b = 0; b < 8; b++)
		k[1 + b] = (uint8_t)((uint64_t)i >> (56 - 8 * b));
	return 9;
}

/* Value i: its length varies, a few are large, all are over the size
 * kept in memory. */
static size_t
vlen_of(unsigned i)
{
	if (i % 500 == 250)
		return 40000 + i;
	return 100 + (i * 37) % 900;
}

static void
fill(uint8_t *v, size_t len, unsigned i)
{
	for (size_t j = 0; j < len; j++)
		v[j] = (uint8_t)(i * 131 + j * 7);
}

static void
put_msg(struct kv *kv, unsigned i)
{
	static uint8_t v[64 * 1024];
	uint8_t k[9];
	size_t len = vlen_of(i);

	fill(v, len, i);
	assert_int_equal(kv_put(kv, k, mkey(k, i), v, len), 0);
}

static void
expect_msg(struct kv *kv, unsigned i)
{
	static uint8_t want[64 * 1024];
	uint8_t k[9];
	void *got;
	size_t len;

	fill(want, vlen_of(i), i);
	assert_int_equal(kv_get(kv, k, mkey(k, i), &got, &len), 1);
	assert_int_equal(len, vlen_of(i));
	assert_memory_equal(got, want, len);
	free(got);
}

/* Puts keys [from, to), with another key's record between each two (as
 * a topicd writes cursors), committing every 100. */
static void
put_range(struct kv *kv, unsigned from, unsigned to)
{
	char cursor[16];

	for (unsigned i = from; i < to; i++) {
		put_msg(kv, i);
		snprintf(cursor, sizeof(cursor), "%u", i);
		assert_int_equal(kv_put(kv, "Scursor", 7, cursor, strlen(cursor)), 0);
		if (i % 100 == 99)
			assert_int_equal(kv_commit(kv), 0);
	}
}

static uint64_t
reads(struct kv *kv)
{
	struct kv_stats st;

	kv_get_stats(kv, &st);
	return st.reads;
}

static void
test_in_order_reads_ahead(void **state)
{
	struct kv *kv = open_kv(*state, NO_CKPT);
	uint64_t before;

	put_range(kv, 0, NKEYS);
	assert_int_equal(kv_commit(kv), 0);
	before = reads(kv);
	for (unsigned i = 0; i < NKEYS; i++)
		expect_msg(kv, i);
	/* About 550 bytes a value: a read of 64 KiB serves about a hundred;
	 * each large value is read on its own and the one after it starts a
	 * new run. */
	assert_in_range(reads(kv) - before, NKEYS / 200, NKEYS / 40);
	assert_int_equal(kv_close(kv), 0);
}

static void
test_any_order_reads_right(void **state)
{
	struct kv *kv = open_kv(*state, NO_CKPT);
	uint64_t before;
	unsigned i;

	put_range(kv, 0, NKEYS);
	assert_int_equal(kv_commit(kv), 0);
	for (i = NKEYS; i-- > 0;)
		expect_msg(kv, i);
	/* Backwards nothing follows the last read: a read each. */
	before = reads(kv);
	for (i = NKEYS; i-- > NKEYS - 100;)
		expect_msg(kv, i);
	assert_int_equal(reads(kv) - before, 100);
	for (i = 0; i < NKEYS; i++)
		expect_msg(kv, (i * 7919) % NKEYS);
	/* Two readers in turn, far apart, as two subscribers of a topic. */
	for (i = 0; i < NKEYS / 2; i++) {
		expect_msg(kv, i);
		expect_msg(kv, NKEYS / 2 + i);
	}
	assert_int_equal(kv_close(kv), 0);
}

/* A run read up to the end of what was written, then more written after
 * it: the buffer held the old end only and must not be trusted past it;
 * values still in the pending batch come from memory. */
static void
test_reads_follow_a_growing_segment(void **state)
{
	struct kv *kv = open_kv(*state, NO_CKPT);

	put_range(kv, 0, 200);
	assert_int_equal(kv_commit(kv), 0);
	for (unsigned i = 0; i < 200; i++)
		expect_msg(kv, i);
	put_range(kv, 200, 450);	/* 200..399 written, 400..449 pending */
	assert_true(kv_pending(kv) > 0);
	for (unsigned i = 150; i < 450; i++)
		expect_msg(kv, i);
	assert_int_equal(kv_commit(kv), 0);
	for (unsigned i = 0; i < 450; i++)
		expect_msg(kv, i);
	assert_int_equal(kv_close(kv), 0);
}

/* Checkpoints remove consumed segments and start new ones; what the
 * buffer held of a removed segment is never served again. */
static void
test_reads_across_checkpoints(void **state)
{
	struct tmpdir *fx = *state;
	struct kv *kv = open_kv(fx, 64 * 1024);
	uint8_t k[9];
	struct kv_stats st;

	for (unsigned round = 0; round < 6; round++) {
		unsigned from = round * 500;

		put_range(kv, from, from + 500);
		assert_int_equal(kv_commit(kv), 0);
		for (unsigned i = from; i < from + 500; i++)
			expect_msg(kv, i);
		/* The older half goes, as a log is trimmed. */
		for (unsigned i = from; i < from + 250; i++)
			assert_int_equal(kv_del(kv, k, mkey(k, i)), 0);
		assert_int_equal(kv_checkpoint(kv), 0);
		for (unsigned i = from + 250; i < from + 500; i++)
			expect_msg(kv, i);
	}
	kv_get_stats(kv, &st);
	assert_true(st.checkpoints >= 6);
	assert_int_equal(kv_close(kv), 0);
	kv = open_kv(fx, 64 * 1024);
	for (unsigned round = 0; round < 6; round++)
		for (unsigned i = round * 500 + 250; i < round * 500 + 500; i++)
			expect_msg(kv, i);
	assert_int_equal(kv_get(kv, k, mkey(k, 0), &(void *){ NULL }, &(size_t){ 0 }), 0);
	assert_int_equal(kv_close(kv), 0);
}

/* A log trimmed in order while it is read ahead of the trim: sizes and
 * deletes by key, finds of keys before, at and after the last found. */
static void
test_size_and_delete_in_order(void **state)
{
	struct kv *kv = open_kv(*state, NO_CKPT);
	uint8_t k[9];
	struct kv_stats st;
	unsigned trimmed = 0;

	put_range(kv, 0, 1000);
	assert_int_equal(kv_commit(kv), 0);
	for (unsigned i = 0; i < 1000; i++) {
		expect_msg(kv, i);
		if (i % 10 != 9)
			continue;
		for (; trimmed + 5 <= i; trimmed++) {
			assert_int_equal(kv_size(kv, k, mkey(k, trimmed)), (ssize_t)vlen_of(trimmed));
			assert_int_equal(kv_del(kv, k, mkey(k, trimmed)), 0);
			assert_int_equal(kv_size(kv, k, mkey(k, trimmed)), -1);
			assert_int_equal(kv_exists(kv, k, mkey(k, trimmed)), 0);
		}
	}
	/* Behind, at and past the last key found, and absent ones. */
	assert_int_equal(kv_size(kv, k, mkey(k, 994)), -1);
	assert_int_equal(kv_size(kv, k, mkey(k, 995)), (ssize_t)vlen_of(995));
	assert_int_equal(kv_size(kv, k, mkey(k, 999)), (ssize_t)vlen_of(999));
	assert_int_equal(kv_size(kv, k, mkey(k, 1000)), -1);
	assert_int_equal(kv_size(kv, k, mkey(k, 3)), -1);
	assert_int_equal(kv_size(kv, k, mkey(k, 996)), (ssize_t)vlen_of(996));
	assert_int_equal(kv_size(kv, "Scursor", 7), 3);
	/* A key put again keeps one entry, with the new value. */
	put_msg(kv, 996);
	put_msg(kv, 996);
	expect_msg(kv, 996);
	kv_get_stats(kv, &st);
	assert_int_equal(st.keys, 5 + 1);
	assert_int_equal(kv_close(kv), 0);
	kv = open_kv(*state, NO_CKPT);
	kv_get_stats(kv, &st);
	assert_int_equal(st.keys, 5 + 1);
	for (unsigned i = 995; i < 1000; i++)
		expect_msg(kv, i);
	assert_int_equal(kv_close(kv), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_in_order_reads_ahead, setup, teardown),
		cmocka_unit_test_setup_teardown(test_any_order_reads_right, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reads_follow_a_growing_segment, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_reads_across_checkpoints, setup, teardown),
		cmocka_unit_test_setup_teardown(test_size_and_delete_in_order, setup, teardown),
	};

	log_init("test_kvread", LOG_LVL_ERR, LOG_DEST_STDERR, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
