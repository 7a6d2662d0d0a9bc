/* kv_forget_before: the page cache is told to forget the current journal
 * segment's bytes a margin (16 MiB) before the oldest value the caller
 * still reads, in steps of 8 MiB, and never more; a forgotten value still
 * reads back, and a forgotten segment is not reused as the spare. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kvstore.h"
#include "pagecache.h"
#include "tmpdir.h"

#define NAME	"c"
#define VAL	MIB		/* one value per MiB of journal, about */
#define NVAL	40
#define CKPT	(1u << 30)	/* no checkpoint */

#include "kvfiles.h"

static int
setup(void **state)
{
	return tmpdir_setup(state, "kvc");
}

#define teardown tmpdir_teardown

static void
key_of(char key[8], unsigned i)
{
	snprintf(key, 8, "k%05u", i);
}

static void
fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 12));
}

/* NVAL values of VAL bytes, each committed (synced: clean pages). */
static struct kv *
filled_store(const struct tmpdir *fx)
{
	static uint8_t buf[VAL];
	struct kv *kv = open_store(fx, CKPT, 1);
	char key[8];

	for (unsigned i = 0; i < NVAL; i++) {
		key_of(key, i);
		fill(buf, VAL, i);
		assert_int_equal(kv_put(kv, key, strlen(key), buf, VAL), 0);
		assert_int_equal(kv_commit(kv), 0);
	}
	assert_int_equal(kv_put(kv, "small", 5, "x", 1), 0);
	assert_int_equal(kv_commit(kv), 0);
	return kv;
}

static void
reads_back(struct kv *kv, unsigned i)
{
	static uint8_t want[VAL];
	uint8_t *got = NULL;
	size_t len = 0;
	char key[8];

	key_of(key, i);
	assert_int_equal(kv_get(kv, key, strlen(key), (void **)&got, &len), 1);
	fill(want, VAL, i);
	assert_int_equal(len, VAL);
	assert_memory_equal(got, want, VAL);
	free(got);
}

static uint64_t
forgotten(const struct kv *kv)
{
	struct kv_stats st;

	kv_get_stats(kv, &st);
	return st.forgotten;
}

/* What the store told the kernel is exact (its watermark); what the
 * kernel did is checked in the one direction memory pressure cannot
 * fake: what was forgotten is out of the page cache.  (That the rest is
 * still in it cannot be checked: the kernel may evict any clean page.) */
static void
test_forgets_before_the_oldest_read(void **state)
{
	struct tmpdir *fx = *state;
	struct kv *kv = filled_store(fx);
	const char *seg = seg_path(fx, 1);
	bool check_cache = !on_tmpfs(fx->dir);
	char key[8];

	assert_int_equal(forgotten(kv), 0);

	/* Value 30 is at about 30 MiB: 16 MiB before it is 14, one step of
	 * 8 goes. */
	key_of(key, 30);
	kv_forget_before(kv, key, strlen(key));
	assert_int_equal(forgotten(kv), 8 * MIB);
	if (check_cache)
		assert_true((resident_mib(seg) & below(8)) == 0);

	/* The same again, an absent key, a value kept in memory: nothing. */
	kv_forget_before(kv, key, strlen(key));
	kv_forget_before(kv, "absent", 6);
	kv_forget_before(kv, "small", 5);
	assert_int_equal(forgotten(kv), 8 * MIB);

	/* Nothing left to read: all but the last 16 MiB, in steps (24). */
	kv_forget_before(kv, NULL, 0);
	assert_int_equal(forgotten(kv), 24 * MIB);
	if (check_cache)
		assert_true((resident_mib(seg) & below(24)) == 0);

	/* Forgotten is not lost: read from the disk. */
	reads_back(kv, 0);
	reads_back(kv, 10);
	reads_back(kv, 39);
	assert_int_equal(kv_close(kv), 0);
}

/* A value less than 16 MiB plus a step from the start:
 * nothing is forgotten. */
static void
test_value_near_the_start_kept(void **state)
{
	struct tmpdir *fx = *state;
	struct kv *kv = filled_store(fx);
	char key[8];

	key_of(key, 20);		/* 20 - 16 = 4: under a step */
	kv_forget_before(kv, key, strlen(key));
	assert_int_equal(forgotten(kv), 0);
	key_of(key, 25);		/* 25 - 16 = 9: one step */
	kv_forget_before(kv, key, strlen(key));
	assert_int_equal(forgotten(kv), 8 * MIB);
	assert_int_equal(kv_close(kv), 0);
}

/* Every value of filled_store goes (its segment has no live value). */
static void
delete_all(struct kv *kv)
{
	char key[8];

	for (unsigned i = 0; i < NVAL; i++) {
		key_of(key, i);
		assert_int_equal(kv_del(kv, key, strlen(key)), 0);
	}
	assert_int_equal(kv_commit(kv), 0);
}

/* A segment whose pages were let go is not kept as the spare: writing
 * over it would read back the last page of every write. */
static void
test_forgotten_not_spared(void **state)
{
	struct tmpdir *fx = *state;
	struct kv *kv = filled_store(fx);

	kv_forget_before(kv, NULL, 0);
	assert_int_equal(forgotten(kv), 24 * MIB);
	delete_all(kv);
	assert_int_equal(kv_checkpoint(kv), 0);
	assert_int_equal(access(seg_path(fx, 1), F_OK), -1);
	assert_int_equal(access(path_of(fx, ".spare"), F_OK), -1);
	assert_int_equal(kv_close(kv), 0);
}

/* The same store, not told to forget: its first segment is the spare. */
static void
test_kept_segment_spared(void **state)
{
	struct tmpdir *fx = *state;
	struct kv *kv = filled_store(fx);

	delete_all(kv);
	assert_int_equal(kv_checkpoint(kv), 0);
	assert_int_equal(access(seg_path(fx, 1), F_OK), -1);
	assert_int_equal(access(path_of(fx, ".spare"), F_OK), 0);
	assert_int_equal(kv_close(kv), 0);
}

/* A spare left by a process that did not close the store (it may hold
 * batches of a segment whose rename a crash lost) is removed at open,
 * not reused. */
static void
test_leftover_spare_removed(void **state)
{
	struct tmpdir *fx = *state;
	struct kv *kv = filled_store(fx);
	int fd;

	assert_int_equal(kv_close(kv), 0);
	fd = open(path_of(fx, ".spare"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd != -1);
	assert_int_equal(write(fd, "KVJ2", 4), 4);
	close(fd);
	kv = open_store(fx, 1 << 30, 1);
	assert_int_equal(access(path_of(fx, ".spare"), F_OK), -1);
	assert_int_equal(kv_close(kv), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_forgets_before_the_oldest_read, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_value_near_the_start_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forgotten_not_spared, setup, teardown),
		cmocka_unit_test_setup_teardown(test_leftover_spare_removed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kept_segment_spared, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
