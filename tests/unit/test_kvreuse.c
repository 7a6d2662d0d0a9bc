/* Reused segment files: a checkpoint keeps the file of a large consumed
 * segment as NAME.spare, the next segment is written into it, and what
 * the file held before (whole batches of the earlier segment, laid out
 * exactly where the new ones would be) never comes back: not at a reopen,
 * not after a torn write, not after a crash at any step of ending the
 * segment.  A closed store keeps no spare. */
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <fcntl.h>
#include <libdeflate.h>

#include "kvstore.h"
#include "kvstore_int.h"
#include "tmpdir.h"

#define NAME	"r"
#define BIG	(64 * 1024)
#define NOLD	24		/* values of the segment whose file is reused */
#define NNEW	3		/* values written into the reused file */
#define CKPT	(1u << 30)	/* no checkpoint but the ones a test asks for */

#include "kvfiles.h"

static int
setup(void **state)
{
	return tmpdir_setup(state, "kvr");
}

#define teardown tmpdir_teardown

static struct stat
stat_of(const char *path)
{
	struct stat sb;

	if (stat(path, &sb) == -1)
		fail_msg("stat %s: %s", path, strerror(errno));
	return sb;
}

static bool
exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static void
fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed * 29 + i * 11 + (i >> 10));
}

/* Keys of one length, so that every batch of one value has one size. */
static void
key_of(char key[8], unsigned i)
{
	snprintf(key, 8, "k%05u", i);
}

static void
put_one(struct kv *kv, unsigned i)
{
	static uint8_t buf[BIG];
	char key[8];

	key_of(key, i);
	fill(buf, BIG, i);
	assert_int_equal(kv_put(kv, key, strlen(key), buf, BIG), 0);
	assert_int_equal(kv_commit(kv), 0);
}

static void
del_one(struct kv *kv, unsigned i)
{
	char key[8];

	key_of(key, i);
	assert_int_equal(kv_del(kv, key, strlen(key)), 0);
}

/* Present with its value, or absent. */
static void
expect(struct kv *kv, unsigned i, bool present)
{
	static uint8_t buf[BIG];
	uint8_t *got = NULL;
	size_t len = 0;
	char key[8];
	int rc;

	key_of(key, i);
	rc = kv_get(kv, key, strlen(key), (void **)&got, &len);
	if (!present) {
		if (rc != 0)
			fail_msg("%s came back", key);
		return;
	}
	if (rc != 1)
		fail_msg("%s is missing", key);
	fill(buf, BIG, i);
	assert_int_equal(len, BIG);
	assert_memory_equal(got, buf, BIG);
	free(got);
}

/* Segment 1: NOLD values, one batch each, all deleted; the checkpoint
 * that opens segment 2 keeps segment 1's file as the spare, and the one
 * that opens segment 3 writes into it.  Then NNEW values of the same
 * size: the old batches lie right after them. */
static struct kv *
reused_store_of(const struct tmpdir *fx, ino_t *ino, unsigned nnew)
{
	struct kv *kv = open_store(fx, CKPT, 1);

	for (unsigned i = 0; i < NOLD; i++)
		put_one(kv, i);
	for (unsigned i = 0; i < NOLD; i++)
		del_one(kv, i);
	assert_int_equal(kv_commit(kv), 0);
	assert_int_equal(kv_checkpoint(kv), 0);
	assert_false(exists(seg_path(fx, 1)));
	*ino = stat_of(path_of(fx, ".spare")).st_ino;
	assert_int_equal(kv_checkpoint(kv), 0);
	assert_false(exists(path_of(fx, ".spare")));
	assert_true(stat_of(seg_path(fx, 3)).st_ino == *ino);
	for (unsigned i = 0; i < nnew; i++)
		put_one(kv, 100 + i);
	return kv;
}

static struct kv *
reused_store(const struct tmpdir *fx, ino_t *ino)
{
	return reused_store_of(fx, ino, NNEW);
}

/* Runs fn in a child that dies without closing the store; its status. */
static int
in_child(const struct tmpdir *fx, void (*fn)(const struct tmpdir *, unsigned), unsigned arg)
{
	int status;
	pid_t pid = fork();

	assert_true(pid != -1);
	if (pid == 0) {
		fn(fx, arg);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void
expect_after_reuse(struct kv *kv, unsigned nnew)
{
	for (unsigned i = 0; i < NOLD; i++)
		expect(kv, i, false);
	for (unsigned i = 0; i < NNEW; i++)
		expect(kv, 100 + i, i < nnew);
}

/* The spare is made, becomes the next segment, and is gone at close. */
static void
test_spare_made_and_reused(void **state)
{
	struct tmpdir *fx = *state;
	struct kv_stats st;
	ino_t ino;
	struct kv *kv = reused_store(fx, &ino);

	expect_after_reuse(kv, NNEW);
	kv_get_stats(kv, &st);
	assert_true(st.disk_bytes >= (uint64_t)NNEW * BIG);
	assert_int_equal(kv_close(kv), 0);
	assert_false(exists(path_of(fx, ".spare")));
	kv = open_store(fx, CKPT, 1);
	expect_after_reuse(kv, NNEW);
	assert_int_equal(kv_close(kv), 0);
}

/* A lazy close (a topic going cold) after a small value in a reused
 * file: the earlier segment's bytes after it are cut, so the next open
 * does not take them for a torn write (and log that the store was not
 * closed cleanly). */
static void
test_lazy_close_cuts_the_earlier_bytes(void **state)
{
	struct tmpdir *fx = *state;
	struct kv_stats st;
	ino_t ino;
	struct kv *kv = reused_store_of(fx, &ino, 0);
	void *v = NULL;
	size_t len = 0;

	assert_int_equal(kv_put(kv, "small", 5, "x", 1), 0);
	assert_int_equal(kv_close_lazy(kv), 0);
	assert_true(stat_of(seg_path(fx, 3)).st_ino == ino);
	assert_true(stat_of(seg_path(fx, 3)).st_size < 1024);
	kv = open_store(fx, CKPT, 1);
	kv_get_stats(kv, &st);
	assert_int_equal(st.truncated, 0);
	assert_int_equal(st.recovered, 1);
	expect_after_reuse(kv, 0);
	assert_int_equal(kv_get(kv, "small", 5, &v, &len), 1);
	assert_int_equal(len, 1);
	free(v);
	assert_int_equal(kv_close(kv), 0);
}

/* A close checkpoints a small index (nothing replayed at the next open),
 * but not one past KV_CLOSE_CKPT_MAX, which could take minutes: that
 * journal stays, as after a death, and reads back whole. */
static void
test_close_leaves_a_large_index_to_the_journal(void **state)
{
	struct tmpdir *fx = *state;
	struct kv_stats st;
	struct kv *kv = open_store(fx, CKPT, 1);
	char key[16], val[48];
	unsigned n = 0;
	void *v = NULL;
	size_t len = 0;

	assert_int_equal(kv_put(kv, "first", 5, "x", 1), 0);
	assert_int_equal(kv_close(kv), 0);
	kv = open_store(fx, CKPT, 1);
	kv_get_stats(kv, &st);
	assert_int_equal(st.recovered, 0);
	memset(val, 'v', sizeof(val));
	do {
		snprintf(key, sizeof(key), "k%010u", n++);
		assert_int_equal(kv_put(kv, key, strlen(key), val, sizeof(val)), 0);
		if (n % 4096 == 0)
			assert_int_equal(kv_commit(kv), 0);
		kv_get_stats(kv, &st);
	} while (st.index_bytes <= KV_CLOSE_CKPT_MAX);
	assert_int_equal(kv_close(kv), 0);
	kv = open_store(fx, CKPT, 1);
	kv_get_stats(kv, &st);
	assert_true(st.recovered > 0);
	assert_int_equal(st.keys, n + 1);
	snprintf(key, sizeof(key), "k%010u", n - 1);
	assert_int_equal(kv_get(kv, key, strlen(key), &v, &len), 1);
	assert_int_equal(len, sizeof(val));
	free(v);
	kv_abandon(kv);
}

/* A lazy close checkpoints a journal past KV_LAZY_MAX that is mostly
 * dead records (a retained message replaced again and again), so that a
 * cold topic's disk does not grow to checkpoint_size; a short one stays. */
static void
test_lazy_close_compacts_a_dead_journal(void **state)
{
	static uint8_t value[1024];
	struct tmpdir *fx = *state;
	struct kv_stats st;
	struct kv *kv = open_store(fx, CKPT, 1);

	for (unsigned i = 0; i < 10; i++)
		assert_int_equal(kv_put(kv, "retained", 8, value, sizeof(value)), 0);
	assert_int_equal(kv_close_lazy(kv), 0);
	kv = open_store(fx, CKPT, 1);
	kv_get_stats(kv, &st);
	assert_int_equal(st.recovered, 10);		/* 10 KiB: left as it is */
	for (unsigned i = 0; i < 100; i++)
		assert_int_equal(kv_put(kv, "retained", 8, value, sizeof(value)), 0);
	assert_int_equal(kv_close_lazy(kv), 0);
	kv = open_store(fx, CKPT, 1);
	kv_get_stats(kv, &st);
	assert_int_equal(st.recovered, 0);		/* 110 KiB: checkpointed */
	assert_int_equal(st.keys, 1);
	assert_true(st.journal_bytes < 1024);
	assert_int_equal(kv_close_lazy(kv), 0);
}

/* A segment the last checkpoint kept for a value then live, the value
 * since replaced by a small one: a lazy close checkpoints, and the
 * segment, all dead, is deleted (it stayed, in a cold store, until the
 * next checkpoint, which a cold store does not come to). */
static void
test_lazy_close_deletes_dead_kept_segments(void **state)
{
	struct tmpdir *fx = *state;
	struct kv_stats st;
	struct kv *kv = open_store(fx, CKPT, 1);
	char key[8];

	put_one(kv, 1);				/* segment 1: 64 KiB, live */
	assert_int_equal(kv_checkpoint(kv), 0);
	assert_true(exists(seg_path(fx, 1)));	/* kept: the checkpoint refers to it */
	key_of(key, 1);
	assert_int_equal(kv_put(kv, key, strlen(key), "small", 5), 0);
	assert_int_equal(kv_close_lazy(kv), 0);
	assert_false(exists(seg_path(fx, 1)));
	kv = open_store(fx, CKPT, 1);
	kv_get_stats(kv, &st);
	assert_int_equal(st.keys, 1);
	assert_true(st.disk_bytes < 64 * 1024);
	assert_int_equal(kv_close_lazy(kv), 0);
}

static void
die_after_writes(const struct tmpdir *fx, unsigned unused)
{
	ino_t ino;

	(void)unused;
	(void)reused_store(fx, &ino);		/* and no close */
}

/* A crash with the old batches right after the new: at open the segment
 * ends with the new ones, the rest of the file is cut, and the deleted
 * values stay deleted. */
static void
test_old_batches_stay_old(void **state)
{
	struct tmpdir *fx = *state;
	struct kv_stats st;
	struct kv *kv;
	off_t before;

	assert_int_equal(in_child(fx, die_after_writes, 0), 0);
	before = stat_of(seg_path(fx, 3)).st_size;
	assert_true(before >= (off_t)NOLD * BIG);
	kv = open_store(fx, CKPT, 1);
	expect_after_reuse(kv, NNEW);
	kv_get_stats(kv, &st);
	assert_int_equal(st.recovered, NNEW);
	assert_int_equal(st.truncated, 0);	/* nothing torn */
	assert_true(stat_of(seg_path(fx, 3)).st_size < (off_t)(NNEW + 1) * (BIG + 64));
	/* It goes on where the valid journal ended. */
	put_one(kv, 100 + NNEW);
	assert_int_equal(kv_close(kv), 0);
	kv = open_store(fx, CKPT, 1);
	expect(kv, 100 + NNEW, true);
	expect_after_reuse(kv, NNEW);
	assert_int_equal(kv_close(kv), 0);
}

static void
die_in_a_write(const struct tmpdir *fx, unsigned unused)
{
	ino_t ino;
	struct kv *kv = reused_store(fx, &ino);

	(void)unused;
	kv_set_crash_at(kv, 1);
	put_one(kv, 100 + NNEW);		/* half written, then _exit */
	_exit(1);
}

/* A torn write in a reused file is followed by the old bytes, not by the
 * end of the file: still a torn write, cut, not damage.  Only the torn
 * batch counts as torn, not the old bytes after it. */
static void
test_torn_write_in_reused_file(void **state)
{
	struct tmpdir *fx = *state;
	struct kv_stats st;
	struct kv *kv;

	assert_int_equal(in_child(fx, die_in_a_write, 0), 99);
	kv = open_store(fx, CKPT, 1);
	expect_after_reuse(kv, NNEW);
	expect(kv, 100 + NNEW, false);
	kv_get_stats(kv, &st);
	assert_true(st.truncated > 0);
	assert_true(st.truncated <= BIG + 64);
	assert_int_equal(kv_close(kv), 0);
}

static void
die_ending_segment(const struct tmpdir *fx, unsigned step)
{
	ino_t ino;
	struct kv *kv = reused_store(fx, &ino);

	kv_set_crash_at(kv, step);
	if (kv_checkpoint(kv) != 0)
		_exit(2);
	_exit(0);				/* the step is past the checkpoint */
}

/* A crash at every step of ending the reused segment and checkpointing
 * (its end record, the syncs, the new segment, the checkpoint's file and
 * rename): every value written is there, no old one is. */
static void
test_crash_while_ending_a_reused_segment(void **state)
{
	struct tmpdir *fx = *state;
	unsigned step;
	int rc = 99;

	for (step = 1; rc == 99 && step < 40; step++) {
		struct kv *kv;

		tmpdir_clear(fx->dir);
		rc = in_child(fx, die_ending_segment, step);
		assert_true(rc == 99 || rc == 0);
		kv = open_store(fx, CKPT, 1);
		expect_after_reuse(kv, NNEW);
		assert_int_equal(kv_close(kv), 0);
	}
	assert_int_equal(rc, 0);
	assert_true(step > 3);			/* it did die in between */
}

/* Two consumed segments of a MiB or more: the larger file is kept, the
 * other deleted; kv_drop_spare() deletes it too. */
static void
test_largest_kept(void **state)
{
	struct tmpdir *fx = *state;
	struct kv *kv = open_store(fx, CKPT, 1);
	ino_t larger;

	for (unsigned i = 0; i < 20; i++)
		put_one(kv, i);
	assert_int_equal(kv_checkpoint(kv), 0);		/* segment 1 still read */
	for (unsigned i = 20; i < 50; i++)
		put_one(kv, i);
	assert_int_equal(kv_checkpoint(kv), 0);		/* and segment 2 */
	assert_true(stat_of(seg_path(fx, 2)).st_size > stat_of(seg_path(fx, 1)).st_size);
	larger = stat_of(seg_path(fx, 2)).st_ino;
	for (unsigned i = 0; i < 50; i++)
		del_one(kv, i);
	assert_int_equal(kv_commit(kv), 0);
	assert_int_equal(kv_checkpoint(kv), 0);
	assert_false(exists(seg_path(fx, 1)));
	assert_false(exists(seg_path(fx, 2)));
	assert_true(stat_of(path_of(fx, ".spare")).st_ino == larger);
	/* A disk short of space takes it back. */
	assert_true(kv_drop_spare(kv) >= 30u * BIG);
	assert_false(exists(path_of(fx, ".spare")));
	assert_int_equal(kv_drop_spare(kv), 0);
	put_one(kv, 60);
	assert_int_equal(kv_checkpoint(kv), 0);		/* a new segment, a new file */
	expect(kv, 60, true);
	assert_int_equal(kv_close(kv), 0);
	assert_false(exists(path_of(fx, ".spare")));
}

static void
put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Segment 1 as the release before reusable segments wrote it: "KVJ1"
 * batches, one value each, that name no segment. */
static void
write_v1_segment(const struct tmpdir *fx, unsigned nvals)
{
	static uint8_t batch[12 + 1 + 4 + 6 + 4 + BIG];
	int fd = open(seg_path(fx, 1), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	uint32_t body = sizeof(batch) - 12;

	assert_true(fd != -1);
	for (unsigned i = 0; i < nvals; i++) {
		uint8_t *p = batch + 12;
		char key[8];

		key_of(key, i);
		*p++ = 1;
		put_le32(p, 6);
		memcpy(p + 4, key, 6);
		p += 10;
		put_le32(p, BIG);
		fill(p + 4, BIG, i);
		put_le32(batch, 0x314a564bU);
		put_le32(batch + 4, body);
		put_le32(batch + 8, libdeflate_crc32(0, batch + 12, body));
		assert_int_equal(write(fd, batch, sizeof(batch)), (ssize_t)sizeof(batch));
	}
	assert_int_equal(close(fd), 0);
}

/* A segment that may hold "KVJ1" batches, which name no segment, is
 * never reused: replayed, or only referred to by the checkpoint. */
static void
test_v1_segments_not_reused(void **state)
{
	struct tmpdir *fx = *state;
	struct kv *kv;

	write_v1_segment(fx, NOLD);
	kv = open_store(fx, CKPT, 1);			/* replays segment 1 */
	for (unsigned i = 0; i < NOLD; i++)
		expect(kv, i, true);
	assert_int_equal(kv_close(kv), 0);	/* a checkpoint refers to it */
	kv = open_store(fx, CKPT, 1);
	assert_true(exists(seg_path(fx, 1)));
	for (unsigned i = 0; i < NOLD; i++)
		del_one(kv, i);
	assert_int_equal(kv_commit(kv), 0);
	assert_int_equal(kv_checkpoint(kv), 0);
	assert_false(exists(seg_path(fx, 1)));
	assert_false(exists(path_of(fx, ".spare")));
	/* A segment written here is. */
	for (unsigned i = 0; i < NOLD; i++)
		put_one(kv, 200 + i);
	for (unsigned i = 0; i < NOLD; i++)
		del_one(kv, 200 + i);
	assert_int_equal(kv_commit(kv), 0);
	assert_int_equal(kv_checkpoint(kv), 0);
	assert_true(exists(path_of(fx, ".spare")));
	assert_int_equal(kv_close(kv), 0);
	assert_false(exists(path_of(fx, ".spare")));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_spare_made_and_reused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_old_batches_stay_old, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_write_in_reused_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_while_ending_a_reused_segment,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_v1_segments_not_reused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_largest_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lazy_close_cuts_the_earlier_bytes, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_close_leaves_a_large_index_to_the_journal,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_lazy_close_compacts_a_dead_journal, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_lazy_close_deletes_dead_kept_segments, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
