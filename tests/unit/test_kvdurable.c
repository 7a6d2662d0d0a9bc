/* What the store reports durable survives the loss of power, and what
 * was durable is never cut at recovery.
 *
 * Power loss is modelled on the files themselves: fsync() and fdatasync()
 * are replaced here by versions that note, in a log beside the store, the
 * size of every regular file they synced; "the power fails" then cuts
 * every segment to the size it had at its last sync (a segment is only
 * appended to, so what lies beyond may be lost, and here is).  The
 * processes that write are children that die without closing the store,
 * as a SIGKILL leaves it: their unsynced bytes stay in the page cache. */
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
#include "tmpdir.h"

#define NAME	"d"
#define NO_CKPT	(1u << 30)
#define VLEN	200

#include "kvfiles.h"

/* The log of syncs, or NULL while none is kept. */
static char sync_log[300];

static void
note_sync(int fd)
{
	struct stat sb;
	char line[64];
	int lfd, n;

	if (sync_log[0] == '\0' || fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode))
		return;
	n = snprintf(line, sizeof(line), "%ju %jd\n", (uintmax_t)sb.st_ino,
	    (intmax_t)sb.st_size);
	if ((lfd = open(sync_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) == -1)
		abort();
	if (write(lfd, line, (size_t)n) != n)
		abort();
	(void)close(lfd);
}

int
fdatasync(int fd)
{
	int rc = (int)syscall(SYS_fdatasync, fd);

	if (rc == 0)
		note_sync(fd);
	return rc;
}

int
fsync(int fd)
{
	int rc = (int)syscall(SYS_fsync, fd);

	if (rc == 0)
		note_sync(fd);
	return rc;
}

static int
setup(void **state)
{
	struct tmpdir *fx;

	if (tmpdir_setup(state, "kvd") == -1)
		return -1;
	fx = *state;
	snprintf(sync_log, sizeof(sync_log), "%s/syncs", fx->dir);
	return 0;
}

static int
teardown(void **state)
{
	sync_log[0] = '\0';
	return tmpdir_teardown(state);
}

/* The size path had when it was last synced (0: never). */
static off_t
synced_size(const char *path)
{
	uintmax_t ino;
	intmax_t size;
	off_t last = 0;
	struct stat sb;
	FILE *f;

	assert_int_equal(stat(path, &sb), 0);
	if ((f = fopen(sync_log, "r")) == NULL)
		return 0;
	while (fscanf(f, "%ju %jd", &ino, &size) == 2)
		if (ino == (uintmax_t)sb.st_ino)
			last = (off_t)size;
	fclose(f);
	return last;
}

static off_t
size_of(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == -1 ? -1 : sb.st_size;
}

/* The power fails: segment n loses what was not synced. */
static void
power_loss(const struct tmpdir *fx, unsigned n)
{
	assert_int_equal(truncate(seg_path(fx, n), synced_size(seg_path(fx, n))), 0);
}

static void
value_of(uint8_t *v, unsigned seed)
{
	for (size_t i = 0; i < VLEN; i++)
		v[i] = (uint8_t)(seed * 7 + i);
}

static void
expect_val(struct kv *kv, const char *key, unsigned seed)
{
	uint8_t want[VLEN], *got;
	size_t len;

	value_of(want, seed);
	if (kv_get(kv, key, strlen(key), (void **)&got, &len) != 1)
		fail_msg("%s is missing", key);
	assert_int_equal(len, VLEN);
	assert_memory_equal(got, want, VLEN);
	free(got);
}

/* Runs fn in a child that dies (without closing the store) when it
 * returns; fails unless fn succeeded. */
static void
in_child(const struct tmpdir *fx, int (*fn)(const struct tmpdir *))
{
	int status;
	pid_t pid = fork();

	assert_true(pid != -1);
	if (pid == 0)
		_exit(fn(fx) == 0 ? 0 : 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* "a" committed, "b" only written (kv_flush): the process dies. */
static int
write_then_die(const struct tmpdir *fx)
{
	uint8_t v[VLEN];
	char *err;
	struct kv *kv = kv_open(fx->dir, NAME, NO_CKPT, &err);

	if (kv == NULL)
		return -1;
	kv_set_inline(kv, 1);
	value_of(v, 1);
	if (kv_put(kv, "a", 1, v, VLEN) == -1 || kv_commit(kv) == -1)
		return -1;
	value_of(v, 2);
	if (kv_put(kv, "b", 1, v, VLEN) == -1 || kv_flush(kv) == -1)
		return -1;
	return kv_durable(kv) < kv_written(kv) ? 0 : -1;	/* b is not durable */
}

/* The next process finds "b", as a topicd finds a staged message that a
 * client sends again, and asks for everything to be durable: once
 * kv_commit() says so, the answer "stored" may go out.  Then it dies. */
static int
find_and_answer(const struct tmpdir *fx)
{
	char *err;
	struct kv *kv = kv_open(fx->dir, NAME, NO_CKPT, &err);

	if (kv == NULL || kv_exists(kv, "b", 1) != 1)
		return -1;
	kv_set_inline(kv, 1);
	if (kv_commit(kv) == -1 || kv_durable(kv) < kv_written(kv))
		return -1;
	return 0;
}

/* What a process that died wrote without syncing is replayed by the next
 * one: it is durable before anything can rely on it. */
static void
test_replayed_tail_made_durable(void **state)
{
	struct tmpdir *fx = *state;
	struct kv *kv;

	in_child(fx, write_then_die);
	assert_true(synced_size(seg_path(fx, 1)) < size_of(seg_path(fx, 1)));
	in_child(fx, find_and_answer);
	power_loss(fx, 1);
	kv = open_store(fx, NO_CKPT, 1);
	expect_val(kv, "a", 1);
	expect_val(kv, "b", 2);		/* it was answered for */
	assert_int_equal(kv_close(kv), 0);
}

/* Three batches in segment 1, each committed (durable); ends[i] is where
 * batch i ends. */
static int
three_batches(const struct tmpdir *fx)
{
	uint8_t v[VLEN];
	char *err, key[2] = "a";
	struct kv *kv = kv_open(fx->dir, NAME, NO_CKPT, &err);

	if (kv == NULL)
		return -1;
	kv_set_inline(kv, 1);
	for (unsigned i = 0; i < 3; i++) {
		key[0] = (char)('a' + i);
		value_of(v, i);
		if (kv_put(kv, key, 1, v, VLEN) == -1 || kv_commit(kv) == -1)
			return -1;
	}
	return 0;
}

static void
batch_ends(const struct tmpdir *fx, off_t ends[3])
{
	uint8_t hdr[4];
	off_t off = 0;
	int fd = open(seg_path(fx, 1), O_RDONLY);

	assert_true(fd != -1);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(pread(fd, hdr, sizeof(hdr), off + 4), sizeof(hdr));
		off += 16 + (off_t)(hdr[0] | hdr[1] << 8 | hdr[2] << 16 | (hdr[3] & 0x7f) << 24);
		ends[i] = off;
	}
	assert_int_equal(ends[2], size_of(seg_path(fx, 1)));
	close(fd);
}

static void
expect_damage(const struct tmpdir *fx, off_t off)
{
	char *err = NULL, at[64];

	assert_null(kv_open(fx->dir, NAME, NO_CKPT, &err));
	assert_int_equal(errno, EUCLEAN);
	assert_non_null(err);
	snprintf(at, sizeof(at), "offset %lld", (long long)off);
	if (strstr(err, seg_path(fx, 1)) == NULL || strstr(err, at) == NULL)
		fail_msg("the error does not name segment 1 at %s: %s", at, err);
	free(err);
}

/* Three batches written, then one bit of the second's header flipped at
 * offset at within it: recovery reports damage there and cuts nothing. */
static void
flip_header_bit(struct tmpdir *fx, off_t at)
{
	off_t ends[3];
	uint8_t c;
	int fd;

	in_child(fx, three_batches);
	batch_ends(fx, ends);
	fd = open(seg_path(fx, 1), O_RDWR);
	assert_true(fd != -1);
	assert_int_equal(pread(fd, &c, 1, ends[0] + at), 1);
	c ^= 0x01;
	assert_int_equal(pwrite(fd, &c, 1, ends[0] + at), 1);
	close(fd);
	expect_damage(fx, ends[0]);
	assert_int_equal(size_of(seg_path(fx, 1)), ends[2]);	/* nothing cut */
}

/* One byte of a batch header's segment number changed in the last
 * segment, a file never reused: that is damage, as a changed byte of the
 * body is, not the end of the segment; the durable batches after it are
 * not cut. */
static void
test_damaged_segment_number_not_cut(void **state)
{
	flip_header_bit(*state, 9);
}

/* The same for a batch length made larger than what is left of the file:
 * a torn write would look so, but one leaves no whole batch after it. */
static void
test_damaged_length_not_cut(void **state)
{
	flip_header_bit(*state, 6);		/* 64 KiB more */
}

/* A segment before the last that ends at a batch's end but without its
 * end record lost its tail (every segment is ended, synced, before the
 * next one is made): that is damage, not a segment complete. */
static void
test_segment_without_end_record(void **state)
{
	struct tmpdir *fx = *state;
	off_t ends[3];
	int fd;

	in_child(fx, three_batches);
	batch_ends(fx, ends);
	assert_int_equal(truncate(seg_path(fx, 1), ends[1]), 0);
	fd = open(seg_path(fx, 2), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd != -1);
	close(fd);
	expect_damage(fx, ends[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_replayed_tail_made_durable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_segment_number_not_cut, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_damaged_length_not_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_without_end_record, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
