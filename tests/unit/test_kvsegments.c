/* The store's journal segments and its background work: large values
 * are written once and referred to, consumed segments are deleted, a full
 * disk loses nothing, damage stops the store with its place named,
 * format-1 stores are converted, and the worker thread syncs and
 * checkpoints while the caller goes on. */
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <gdbm.h>
#include <inttypes.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libdeflate.h>

#include "kvstore.h"
#include "log.h"
#include "marshal.h"
#include "tmpdir.h"

#define NAME	"s"
#define BIG	(64 * 1024)

#include "kvfiles.h"

static int
setup(void **state)
{
	return tmpdir_setup(state, "kvs");
}

#define teardown tmpdir_teardown

static off_t
size_of(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == -1 ? -1 : sb.st_size;
}

static void
fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed * 31 + i * 13 + (i >> 9));
}

static void
put_big(struct kv *kv, unsigned i, uint8_t *buf)
{
	char key[16];

	snprintf(key, sizeof(key), "m%05u", i);
	fill(buf, BIG, i);
	assert_int_equal(kv_put(kv, key, strlen(key), buf, BIG), 0);
}

static void
expect_big(struct kv *kv, unsigned i, uint8_t *buf)
{
	uint8_t *got;
	size_t len;
	char key[16];

	snprintf(key, sizeof(key), "m%05u", i);
	fill(buf, BIG, i);
	assert_int_equal(kv_get(kv, key, strlen(key), (void **)&got, &len), 1);
	assert_int_equal(len, BIG);
	assert_memory_equal(got, buf, BIG);
	free(got);
}

/* 64 KiB values are written once: a checkpoint holds their place, not
 * their bytes; once they are deleted, the segments holding them go. */
static void
test_written_once(void **state)
{
	struct tmpdir *fx = *state;
	uint8_t *buf = malloc(BIG);
	struct kv_stats st;
	struct kv *kv = open_store(fx, 1 << 20, 1);
	char key[16];

	assert_non_null(buf);
	for (unsigned i = 0; i < 64; i++) {
		put_big(kv, i, buf);
		assert_int_equal(kv_commit(kv), 0);
	}
	kv_get_stats(kv, &st);
	assert_true(st.checkpoints >= 2);
	assert_true(st.segments >= 3);
	/* Every byte of payload was written once; the checkpoint is small. */
	assert_true(size_of(path_of(fx, ".db")) < 64 * 1024);
	assert_true(st.disk_bytes < 64ull * BIG + 256 * 1024);
	for (unsigned i = 0; i < 64; i += 7)
		expect_big(kv, i, buf);
	/* Consumed: the segments go at the next checkpoint. */
	for (unsigned i = 0; i < 63; i++) {
		snprintf(key, sizeof(key), "m%05u", i);
		assert_int_equal(kv_del(kv, key, strlen(key)), 0);
	}
	assert_int_equal(kv_checkpoint(kv), 0);
	kv_get_stats(kv, &st);
	assert_true(st.segments <= 2);
	assert_true(st.disk_bytes < 2ull * (1 << 20) + 2 * BIG);
	assert_int_equal(kv_close(kv), 0);
	kv = open_store(fx, 1 << 20, 1);
	kv_get_stats(kv, &st);
	assert_int_equal(st.keys, 1);
	assert_int_equal(st.recovered, 0);
	expect_big(kv, 63, buf);
	assert_int_equal(kv_close(kv), 0);
	free(buf);
}

/* A full disk: the commit fails with ENOSPC, the half-written batch is
 * cut off again, nothing is lost, and the next commit writes it. */
static void
test_enospc(void **state)
{
	struct tmpdir *fx = *state;
	uint8_t *buf = malloc(BIG);
	struct kv *kv = open_store(fx, 1 << 30, 1);
	off_t before;

	assert_non_null(buf);
	put_big(kv, 1, buf);
	assert_int_equal(kv_commit(kv), 0);
	before = size_of(seg_path(fx, 1));
	put_big(kv, 2, buf);
	kv_set_enospc_at(kv, 1);
	assert_int_equal(kv_commit(kv), -1);
	assert_int_equal(errno, ENOSPC);
	assert_int_equal(kv_failed(kv), 0);
	assert_int_equal(size_of(seg_path(fx, 1)), before);
	assert_true(kv_pending(kv) > 0);
	expect_big(kv, 2, buf);			/* still there, from the batch */
	assert_int_equal(kv_commit(kv), 0);
	assert_int_equal(kv_pending(kv), 0);
	assert_int_equal(kv_close(kv), 0);
	kv = open_store(fx, 1 << 30, 1);
	expect_big(kv, 1, buf);
	expect_big(kv, 2, buf);
	assert_int_equal(kv_close(kv), 0);
	free(buf);
}

/* Three batches in segment 1 of a store, written by a child that dies
 * without closing it (no final checkpoint): ends[i] is where batch i ends. */
static void
three_batches(struct tmpdir *fx, off_t ends[3])
{
	int p[2], status;
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		uint8_t val[200];
		char *err;
		struct kv *kv = kv_open(fx->dir, NAME, 1 << 30, &err);

		for (int i = 0; kv != NULL && i < 3; i++) {
			off_t end;

			fill(val, sizeof(val), (unsigned)i);
			if (kv_put(kv, "k", 1, val, sizeof(val)) != 0 || kv_commit(kv) != 0)
				_exit(1);
			end = size_of(seg_path(fx, 1));
			if (write(p[1], &end, sizeof(end)) != sizeof(end))
				_exit(1);
		}
		_exit(kv == NULL);
	}
	close(p[1]);
	for (int i = 0; i < 3; i++)
		assert_int_equal(read(p[0], &ends[i], sizeof(ends[i])), sizeof(ends[i]));
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void
expect_damage(struct tmpdir *fx, const char *file, off_t off)
{
	char *err = NULL, at[64];

	assert_null(kv_open(fx->dir, NAME, 1 << 30, &err));
	assert_int_equal(errno, EUCLEAN);
	assert_non_null(err);
	snprintf(at, sizeof(at), "offset %lld", (long long)off);
	if (strstr(err, file) == NULL || strstr(err, at) == NULL)
		fail_msg("the error does not name %s at %s: %s", file, at, err);
	free(err);
}

/* One byte changed in a batch before the last: the store refuses to open
 * and names the segment and the offset of the damaged batch. */
static void
test_damage_before_end(void **state)
{
	struct tmpdir *fx = *state;
	off_t ends[3];
	char c;
	int fd;

	three_batches(fx, ends);
	fd = open(seg_path(fx, 1), O_RDWR);
	assert_true(fd != -1);
	assert_int_equal(pread(fd, &c, 1, ends[0] + 40), 1);
	c ^= 0x20;
	assert_int_equal(pwrite(fd, &c, 1, ends[0] + 40), 1);
	close(fd);
	expect_damage(fx, seg_path(fx, 1), ends[0]);
	/* Nothing was cut. */
	assert_true(size_of(seg_path(fx, 1)) >= ends[2]);
}

/* A crash after the file grew over two batches not synced may leave the
 * first of them half written and the second all zeros: that is a torn
 * end, cut, not damage. */
static void
test_torn_batch_before_zeros(void **state)
{
	struct tmpdir *fx = *state;
	uint8_t zeros[4096] = { 0 };
	struct kv_stats st;
	struct kv *kv;
	off_t ends[3];
	char c;
	int fd;

	three_batches(fx, ends);
	assert_true(ends[2] - ends[1] <= (off_t)sizeof(zeros));
	fd = open(seg_path(fx, 1), O_RDWR);
	assert_true(fd != -1);
	assert_int_equal(pread(fd, &c, 1, ends[0] + 40), 1);
	c ^= 0x20;
	assert_int_equal(pwrite(fd, &c, 1, ends[0] + 40), 1);
	assert_int_equal(pwrite(fd, zeros, (size_t)(ends[2] - ends[1]), ends[1]),
	    ends[2] - ends[1]);
	close(fd);
	kv = open_store(fx, 1 << 30, 1);
	kv_get_stats(kv, &st);
	assert_int_equal(st.truncated, (uint64_t)(ends[2] - ends[0]));
	assert_int_equal(size_of(seg_path(fx, 1)), ends[0]);
	assert_int_equal(kv_close(kv), 0);
}

/* A torn end is only possible in the last segment: in an earlier one it
 * is damage. */
static void
test_torn_earlier_segment(void **state)
{
	struct tmpdir *fx = *state;
	off_t ends[3];
	int fd;

	three_batches(fx, ends);
	assert_int_equal(truncate(seg_path(fx, 1), ends[2] - 10), 0);
	fd = open(seg_path(fx, 2), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd != -1);
	close(fd);
	expect_damage(fx, seg_path(fx, 1), ends[1]);
}

/* A segment the checkpoint refers to is missing: named, nothing dropped. */
static void
test_missing_segment(void **state)
{
	struct tmpdir *fx = *state;
	uint8_t *buf = malloc(BIG);
	struct kv *kv = open_store(fx, 1 << 30, 1);
	char *err = NULL;

	assert_non_null(buf);
	put_big(kv, 1, buf);
	assert_int_equal(kv_close(kv), 0);	/* checkpoint: refers to segment 1 */
	assert_int_equal(unlink(seg_path(fx, 1)), 0);
	assert_null(kv_open(fx->dir, NAME, 1 << 30, &err));
	assert_int_equal(errno, EUCLEAN);
	assert_non_null(strstr(err, seg_path(fx, 1)));
	free(err);
	free(buf);
}

/* A checkpoint of a format this code does not know stops the store. */
static void
test_unknown_format(void **state)
{
	struct tmpdir *fx = *state;
	struct kv *kv = open_store(fx, 1 << 30, 1);
	datum k = { "\0kv", 3 }, v;
	uint8_t meta[9] = { 3, 2, 0, 0, 0, 1, 0, 0, 0 };
	char *err = NULL;
	GDBM_FILE db;

	assert_int_equal(kv_put(kv, "a", 1, "1", 1), 0);
	assert_int_equal(kv_close(kv), 0);
	db = gdbm_open(path_of(fx, ".db"), 0, GDBM_WRITER | GDBM_NOLOCK, 0, NULL);
	assert_non_null(db);
	v.dptr = (char *)meta;
	v.dsize = sizeof(meta);
	assert_int_equal(gdbm_store(db, k, v, GDBM_REPLACE), 0);
	assert_int_equal(gdbm_close(db), 0);
	assert_null(kv_open(fx->dir, NAME, 1 << 30, &err));
	assert_int_equal(errno, EUCLEAN);
	assert_non_null(strstr(err, "unknown format"));
	assert_non_null(strstr(err, path_of(fx, ".db")));
	free(err);
}

/* A format-1 store: a gdbm file of plain values and NAME.journal. */
static void
write_format1(struct tmpdir *fx, const uint8_t *big)
{
	datum k1 = { "a", 1 }, v1 = { "old", 3 }, k2 = { "big", 3 }, v2;
	struct wbuf body, all;
	GDBM_FILE db;
	int fd;

	db = gdbm_open(path_of(fx, ".db"), 0, GDBM_NEWDB | GDBM_NOLOCK, 0600, NULL);
	assert_non_null(db);
	v2.dptr = (char *)big;
	v2.dsize = 1000;
	assert_int_equal(gdbm_store(db, k1, v1, GDBM_REPLACE), 0);
	assert_int_equal(gdbm_store(db, k2, v2, GDBM_REPLACE), 0);
	assert_int_equal(gdbm_close(db), 0);
	wbuf_init(&body);
	put_u8(&body, 1);		/* put a = "new" */
	put_bytes(&body, "a", 1);
	put_bytes(&body, "new", 3);
	put_u8(&body, 1);		/* put j = 500 bytes */
	put_bytes(&body, "j", 1);
	put_bytes(&body, big + 1, 500);
	wbuf_init(&all);
	put_u32(&all, 0x314a564bU);
	put_u32(&all, (uint32_t)body.len);
	put_u32(&all, libdeflate_crc32(0, body.data, body.len));
	put_raw(&all, body.data, body.len);
	put_raw(&all, "\x4b\x56", 2);	/* and a torn start of the next */
	fd = open(path_of(fx, ".journal"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd != -1);
	assert_int_equal(write(fd, all.data, all.len), (ssize_t)all.len);
	close(fd);
	wbuf_free(&body);
	wbuf_free(&all);
}

static void
expect(struct kv *kv, const char *key, const void *val, size_t vlen)
{
	void *got;
	size_t len;

	assert_int_equal(kv_get(kv, key, strlen(key), &got, &len), 1);
	assert_int_equal(len, vlen);
	assert_memory_equal(got, val, vlen);
	free(got);
}

static void
test_format1_converted(void **state)
{
	struct tmpdir *fx = *state;
	uint8_t big[1000];
	struct kv *kv;

	fill(big, sizeof(big), 4);
	write_format1(fx, big);
	for (int round = 0; round < 2; round++) {
		kv = open_store(fx, 1 << 30, 1);
		expect(kv, "a", "new", 3);
		expect(kv, "big", big, 1000);
		expect(kv, "j", big + 1, 500);
		assert_int_equal(access(path_of(fx, ".journal"), F_OK), -1);
		assert_int_equal(kv_close(kv), 0);
	}
}

/* Waits for the worker until cond holds. */
static void
wait_worker(struct kv *kv, uint64_t want_durable, uint64_t want_ckpts)
{
	struct pollfd p = { .fd = kv_event_fd(kv), .events = POLLIN };
	struct kv_stats st;

	for (int i = 0; i < 1000; i++) {
		assert_true(kv_poll(kv) >= 0);
		kv_get_stats(kv, &st);
		if (kv_durable(kv) >= want_durable && st.checkpoints >= want_ckpts)
			return;
		assert_true(poll(&p, 1, 10) >= 0);
	}
	fail_msg("the worker did not finish");
}

/* Written, then synced by the worker: the ticket becomes durable without
 * the caller waiting; a checkpoint runs in the background likewise. */
static void
test_background(void **state)
{
	struct tmpdir *fx = *state;
	uint8_t *buf = malloc(BIG);
	struct kv_stats st;
	struct kv *kv = open_store(fx, 256 * 1024, 0);
	uint64_t t;

	assert_non_null(buf);
	assert_true(kv_event_fd(kv) >= 0);
	for (unsigned i = 0; i < 16; i++) {
		put_big(kv, i, buf);
		assert_int_equal(kv_flush(kv), 0);
		t = kv_written(kv);
		assert_true(t > 0);
		assert_int_equal(kv_sync_async(kv), 0);
		wait_worker(kv, t, 0);
	}
	kv_get_stats(kv, &st);
	assert_true(st.commits >= 1);
	/* Past the checkpoint size: after a sync, one starts on its own. */
	wait_worker(kv, kv_written(kv), 1);
	for (unsigned i = 0; i < 16; i++)
		expect_big(kv, i, buf);
	assert_int_equal(kv_close(kv), 0);
	kv = open_store(fx, 256 * 1024, 0);
	for (unsigned i = 0; i < 16; i++)
		expect_big(kv, i, buf);
	assert_int_equal(kv_close(kv), 0);
	free(buf);
}

/* As a topicd does: kv_poll() when the store's eventfd says a job is
 * done, waiting up to ms for it. */
static void
poll_when_told(struct kv *kv, struct pollfd *p, int ms)
{
	int n = poll(p, 1, ms);

	assert_true(n >= 0);
	if (n > 0)
		assert_true(kv_poll(kv) >= 0);
}

/* A store only ever flushed, never asked for a sync (sync_policy none,
 * QoS 0), still checkpoints: when one is due, the worker syncs what was
 * written and the checkpoint follows.  Its journal comes back to what is
 * live instead of keeping everything ever written, and it syncs for its
 * checkpoints only: with nothing due, nothing more. */
static void
test_flushed_only_checkpoints(void **state)
{
	struct tmpdir *fx = *state;
	uint8_t *buf = malloc(BIG);
	struct kv_stats st;
	struct kv *kv = open_store(fx, 256 * 1024, 0);
	struct pollfd p = { .fd = kv_event_fd(kv), .events = POLLIN };
	uint64_t commits;
	char key[16];

	assert_non_null(buf);
	assert_true(p.fd >= 0);
	for (unsigned i = 0; i < 256; i++) {		/* 16 MiB in all */
		put_big(kv, i, buf);
		if (i >= 2) {				/* two live values */
			snprintf(key, sizeof(key), "m%05u", i - 2);
			assert_int_equal(kv_del(kv, key, strlen(key)), 0);
		}
		assert_int_equal(kv_flush(kv), 0);
		poll_when_told(kv, &p, 0);
	}
	/* The writes stop: the store catches up on its own. */
	for (int i = 0; i < 1000; i++) {
		poll_when_told(kv, &p, 10);
		kv_get_stats(kv, &st);
		if (st.checkpoints >= 1 && st.journal_bytes < 1024 * 1024)
			break;
	}
	assert_true(st.checkpoints >= 1);
	assert_true(st.journal_bytes < 1024 * 1024);
	/* And then does nothing more: no sync for the sake of one. */
	commits = st.commits;
	for (int i = 0; i < 20; i++)
		poll_when_told(kv, &p, 5);
	kv_get_stats(kv, &st);
	assert_int_equal(st.commits, commits);
	expect_big(kv, 254, buf);
	expect_big(kv, 255, buf);
	assert_int_equal(kv_close(kv), 0);
	free(buf);
}

/* Writes count 64 KiB values m<n>.., keeping the last two live, each
 * flushed as a store at sync_policy none does. */
static void
flush_values(struct kv *kv, uint8_t *buf, unsigned *n, unsigned count)
{
	char key[16];

	for (unsigned k = 0; k < count; k++, (*n)++) {
		put_big(kv, *n, buf);
		if (*n >= 2) {
			snprintf(key, sizeof(key), "m%05u", *n - 2);
			assert_int_equal(kv_del(kv, key, strlen(key)), 0);
		}
		assert_int_equal(kv_flush(kv), 0);
	}
}

static void
wait_told(struct pollfd *p)
{
	assert_int_equal(poll(p, 1, 10000), 1);
}

/* A checkpoint starts from synced segments.  In a store only flushed,
 * megabytes are written while the worker syncs for one: those are synced
 * in the background too, not in the caller (whose loop would wait for
 * the disk), a few times at most, so that a store written without end
 * still checkpoints. */
static void
test_checkpoint_sync_in_background(void **state)
{
	struct tmpdir *fx = *state;
	uint8_t *buf = malloc(BIG);
	struct kv *kv = open_store(fx, 256 * 1024, 0);
	struct pollfd p = { .fd = kv_event_fd(kv), .events = POLLIN };
	struct kv_stats st;
	unsigned n = 0, rounds = 0;

	assert_non_null(buf);
	assert_true(p.fd >= 0);
	flush_values(kv, buf, &n, 8);		/* 512 KiB: a checkpoint is due */
	flush_values(kv, buf, &n, 32);		/* 2 MiB while the worker syncs */
	wait_told(&p);
	assert_true(kv_poll(kv) >= 0);
	assert_true(kv_durable(kv) < kv_written(kv));	/* not synced here */
	kv_get_stats(kv, &st);
	assert_int_equal(st.checkpoints, 0);
	/* Written on and on: after a few syncs in the background, one here,
	 * and the checkpoint starts. */
	while (kv_durable(kv) < kv_written(kv)) {
		assert_true(++rounds <= 4);
		flush_values(kv, buf, &n, 32);
		wait_told(&p);
		assert_true(kv_poll(kv) >= 0);
	}
	wait_worker(kv, kv_written(kv), 1);
	expect_big(kv, n - 1, buf);
	assert_int_equal(kv_close(kv), 0);
	kv = open_store(fx, 256 * 1024, 0);
	expect_big(kv, n - 2, buf);
	expect_big(kv, n - 1, buf);
	kv_get_stats(kv, &st);
	assert_true(st.recovered < n);		/* from the checkpoint, not all replayed */
	assert_int_equal(kv_close(kv), 0);
	free(buf);
}

/* A batch growing past the threshold is written (not synced) as it
 * grows; a smaller one stays pending.  What was written ahead is read
 * back before and after a reopen, and the commit at the end makes the
 * rest durable. */
static void
test_write_ahead(void **state)
{
	struct tmpdir *fx = *state;
	uint8_t *buf = malloc(BIG);
	struct kv *kv = open_store(fx, 64 * 1024 * 1024, 1);
	uint64_t t;

	assert_non_null(buf);
	put_big(kv, 0, buf);
	t = kv_written(kv);
	assert_int_equal(kv_write_ahead(kv, 2 * BIG, true), 0);
	assert_int_equal(kv_pending(kv), 1);
	assert_true(kv_written(kv) == t);
	put_big(kv, 1, buf);
	assert_int_equal(kv_write_ahead(kv, 2 * BIG, true), 0);
	assert_int_equal(kv_pending(kv), 0);
	assert_true(kv_written(kv) == t + 1);
	assert_true(kv_durable(kv) < kv_written(kv));
	put_big(kv, 2, buf);
	for (unsigned i = 0; i < 3; i++)
		expect_big(kv, i, buf);
	assert_int_equal(kv_commit(kv), 0);
	assert_true(kv_durable(kv) == kv_written(kv));
	assert_int_equal(kv_close(kv), 0);
	kv = open_store(fx, 64 * 1024 * 1024, 1);
	for (unsigned i = 0; i < 3; i++)
		expect_big(kv, i, buf);
	assert_int_equal(kv_close(kv), 0);
	free(buf);
}

/* A checkpoint is due while a batch is being put together (the caller's
 * loop polls between two records): it must not start then, or the
 * batch's values would be written to a segment other than the one they
 * were placed in. */
static void
test_no_checkpoint_under_a_pending_batch(void **state)
{
	struct tmpdir *fx = *state;
	uint8_t *buf = malloc(BIG);
	struct kv_stats st;
	struct kv *kv = open_store(fx, 128 * 1024, 0);

	assert_non_null(buf);
	for (unsigned i = 0; i < 8; i++) {
		put_big(kv, i, buf);
		put_big(kv, 200 + i, buf);
		put_big(kv, 300 + i, buf);
		assert_int_equal(kv_commit(kv), 0);	/* a checkpoint starts */
		put_big(kv, 400 + i, buf);
		put_big(kv, 500 + i, buf);
		put_big(kv, 600 + i, buf);
		assert_int_equal(kv_commit(kv), 0);	/* while it runs: the next is due */
		put_big(kv, 100 + i, buf);		/* pending */
		for (int k = 0; k < 20; k++) {
			assert_true(kv_poll(kv) >= 0);
			usleep(1000);
		}
		expect_big(kv, 100 + i, buf);
		assert_int_equal(kv_commit(kv), 0);
		expect_big(kv, 100 + i, buf);
	}
	kv_get_stats(kv, &st);
	assert_true(st.checkpoints >= 1);
	assert_int_equal(kv_close(kv), 0);
	kv = open_store(fx, 128 * 1024, 0);
	for (unsigned i = 0; i < 8; i++)
		for (unsigned k = 0; k < 7; k++)
			expect_big(kv, k * 100 + i, buf);
	assert_int_equal(kv_close(kv), 0);
	free(buf);
}

/* Waits (up to a second) until the worker has finished its job, without
 * taking its result. */
static void
wait_job_done(struct kv *kv)
{
	struct pollfd p = { .fd = kv_event_fd(kv), .events = POLLIN };

	assert_int_equal(poll(&p, 1, 1000), 1);
}

/* A store always written to while it syncs (a topicd under load): each
 * time a sync ends there is more to sync.  The checkpoint that comes due
 * must start all the same (after a sync done in the caller), a sync asked
 * for while a checkpoint runs is done in the caller rather than after it,
 * and durability never moves back, also for a commit while a sync runs. */
static void
test_checkpoint_while_always_syncing(void **state)
{
	struct tmpdir *fx = *state;
	uint8_t *buf = malloc(BIG);
	struct kv_stats st;
	struct kv *kv = open_store(fx, 256 * 1024, 0);
	uint64_t t, before;
	unsigned i, here = 0;

	assert_non_null(buf);
	assert_true(kv_event_fd(kv) >= 0);
	for (i = 0; i < 48; i++) {
		put_big(kv, i, buf);
		assert_int_equal(kv_flush(kv), 0);
		t = kv_written(kv);
		assert_int_equal(kv_sync_async(kv), 0);
		if (kv_durable(kv) == t)
			here++;		/* synced in the caller: a checkpoint is on */
		/* The job in progress ends; more is written before it is
		 * taken, so that the next job always finds work. */
		wait_job_done(kv);
		put_big(kv, 1000 + i, buf);
		assert_int_equal(kv_flush(kv), 0);
		before = kv_durable(kv);
		assert_true(kv_poll(kv) >= 0);
		assert_true(kv_durable(kv) >= before);
		if (kv_durable(kv) == kv_written(kv))
			here++;		/* the next sync was done in the caller */
	}
	kv_get_stats(kv, &st);
	assert_true(st.checkpoints >= 2);
	assert_true(here >= 2);
	/* A commit while a sync may still run: durable stays the commit's. */
	put_big(kv, 5000, buf);
	assert_int_equal(kv_commit(kv), 0);
	t = kv_written(kv);
	assert_true(kv_durable(kv) == t);
	wait_worker(kv, t, 0);
	assert_true(kv_durable(kv) == t);
	assert_int_equal(kv_close(kv), 0);
	kv = open_store(fx, 256 * 1024, 0);
	for (i = 0; i < 48; i++) {
		expect_big(kv, i, buf);
		expect_big(kv, 1000 + i, buf);
	}
	expect_big(kv, 5000, buf);
	assert_int_equal(kv_close(kv), 0);
	free(buf);
}

static void
put_small(struct kv *kv, unsigned i)
{
	char key[16];
	uint8_t val[200];

	snprintf(key, sizeof(key), "k%07u", i);
	fill(val, sizeof(val), i);
	assert_int_equal(kv_put(kv, key, strlen(key), val, sizeof(val)), 0);
}

static void
expect_small(struct kv *kv, unsigned i)
{
	char key[16];
	uint8_t want[200];
	void *got;
	size_t len;

	snprintf(key, sizeof(key), "k%07u", i);
	fill(want, sizeof(want), i);
	assert_int_equal(kv_get(kv, key, strlen(key), &got, &len), 1);
	assert_int_equal(len, sizeof(want));
	assert_memory_equal(got, want, len);
	free(got);
}

/* A checkpoint of a large index (a long queue) runs in the worker; the
 * worker deletes the segments it covers.  A close while one runs gives
 * it up (or takes it, if it ended) and checkpoints what is there: no
 * temporary file is left, nothing is lost, nothing is replayed. */
#define MANY 150000
static void
test_close_during_checkpoint(void **state)
{
	struct tmpdir *fx = *state;
	struct kv_stats st;
	struct kv *kv = open_store(fx, 1 << 20, 0);

	/* A queue consumed: segment 1 holds nothing live any more. */
	for (unsigned i = 0; i < MANY / 2; i++)
		put_small(kv, i);
	assert_int_equal(kv_commit(kv), 0);
	wait_worker(kv, kv_written(kv), 0);
	for (unsigned i = 0; i < MANY / 2; i++) {
		char key[16];

		snprintf(key, sizeof(key), "k%07u", i);
		assert_int_equal(kv_del(kv, key, strlen(key)), 0);
	}
	assert_int_equal(kv_commit(kv), 0);
	assert_int_equal(kv_checkpoint(kv), 0);
	assert_int_equal(size_of(seg_path(fx, 1)), -1);
	for (unsigned i = 0; i < MANY; i++)
		put_small(kv, i);
	assert_int_equal(kv_commit(kv), 0);	/* starts the second one */
	assert_int_equal(kv_close(kv), 0);
	assert_int_equal(size_of(path_of(fx, ".db.tmp")), -1);
	kv = open_store(fx, 1 << 20, 0);
	kv_get_stats(kv, &st);
	assert_int_equal(st.keys, MANY);
	assert_int_equal(st.recovered, 0);
	for (unsigned i = 0; i < MANY; i += 997)
		expect_small(kv, i);
	expect_small(kv, MANY - 1);
	assert_int_equal(kv_close(kv), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_written_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_during_checkpoint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enospc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damage_before_end, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_batch_before_zeros, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_earlier_segment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_segment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_format, setup, teardown),
		cmocka_unit_test_setup_teardown(test_format1_converted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_background, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flushed_only_checkpoints, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint_sync_in_background, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_write_ahead, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint_while_always_syncing, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_no_checkpoint_under_a_pending_batch, setup,
		    teardown),
	};

	log_init("test_kvsegments", LOG_LVL_ERR, LOG_DEST_STDERR, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
