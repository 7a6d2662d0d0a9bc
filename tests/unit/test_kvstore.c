/* The crash-safe key/value store: records, order, statistics, recovery
 * after an unclean stop, torn and garbage journal tails, I/O errors, and a
 * crash at every write step of a scenario with commits and checkpoints. */
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdbool.h>
#include <signal.h>
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
#include "tmpdir.h"

#define NAME		"t"
#define NO_CKPT		(1U << 30)	/* never checkpoints by size */
#define MODEL_MAX	64
#define NBATCH		10		/* batches of the crash scenario */
#define CRASH_CKPT	1024		/* its checkpoint size */
#define CKPT_RATIO	8		/* journal to index (kvstore_int.h) */
#define CKPT_KEY_BYTES	4096		/* journal bytes worth a key (kvstore_int.h) */

struct fx {
	char	dir[32];
	char	db[64];
	char	journal[64];		/* the segment written to (see last_segment) */
	char	tmp[64];
};

/* The state a store should have, for comparisons. */
struct model {
	size_t	n;
	size_t	nrec;			/* records a store would journal */
	struct ment {
		char	 key[32];
		uint8_t	*val;
		size_t	 vlen;
	} e[MODEL_MAX];
};

/* Where scenario operations go: a store, a model, or both. */
struct target {
	struct kv	*kv;
	struct model	*m;
	int		 err;
};

static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (fx == NULL)
		return -1;
	if (tmpdir_make(fx->dir, sizeof(fx->dir), "kv") == -1) {
		free(fx);
		return -1;
	}
	snprintf(fx->db, sizeof(fx->db), "%s/%s.db", fx->dir, NAME);
	snprintf(fx->journal, sizeof(fx->journal), "%s/%s.journal.%08u", fx->dir, NAME, 1);
	snprintf(fx->tmp, sizeof(fx->tmp), "%s/%s.db.tmp", fx->dir, NAME);
	*state = fx;
	return 0;
}

/* Removes every file of the store's directory. */
static void
clear_dir(struct fx *fx)
{
	tmpdir_clear(fx->dir);
}

static int
teardown(void **state)
{
	struct fx *fx = *state;

	clear_dir(fx);
	rmdir(fx->dir);
	free(fx);
	return 0;
}

/* Points fx->journal at the segment with the highest number; returns
 * how many segments there are. */
static unsigned
last_segment(struct fx *fx)
{
	char prefix[32];
	unsigned best = 0, n = 0, num;
	struct dirent *e;
	DIR *d;

	snprintf(prefix, sizeof(prefix), "%s.journal.", NAME);
	if ((d = opendir(fx->dir)) == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
			continue;
		num = (unsigned)strtoul(e->d_name + strlen(prefix), NULL, 10);
		n++;
		if (num > best)
			best = num;
	}
	closedir(d);
	snprintf(fx->journal, sizeof(fx->journal), "%s/%s.journal.%08u", fx->dir, NAME, best);
	return n;
}

static void
fill(uint8_t *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 8));
}

static struct kv *
open_kv(const struct fx *fx, uint64_t ckpt)
{
	char *err = NULL;
	struct kv *kv = kv_open(fx->dir, NAME, ckpt, &err);

	if (kv == NULL)
		fail_msg("kv_open: %s", err != NULL ? err : "no message");
	assert_null(err);
	kv_set_inline(kv, 1);		/* checkpoints done when asked for */
	return kv;
}

static void
sput(struct kv *kv, const char *key, const void *val, size_t vlen)
{
	assert_int_equal(kv_put(kv, key, strlen(key), val, vlen), 0);
}

static void
expect_val(struct kv *kv, const char *key, const void *val, size_t vlen)
{
	void *got;
	size_t len;

	assert_int_equal(kv_get(kv, key, strlen(key), &got, &len), 1);
	assert_int_equal(len, vlen);
	assert_memory_equal(got, val, vlen);
	assert_int_equal(((char *)got)[len], '\0');
	free(got);
}

static void
expect_absent(struct kv *kv, const char *key)
{
	void *got;
	size_t len;

	assert_int_equal(kv_get(kv, key, strlen(key), &got, &len), 0);
	assert_null(got);
	assert_int_equal(kv_exists(kv, key, strlen(key)), 0);
}

static uint64_t
file_size(const char *path)
{
	struct stat sb;

	if (stat(path, &sb) == -1)
		return 0;
	return (uint64_t)sb.st_size;
}

static uint8_t *
read_file(const char *path, size_t *len)
{
	uint64_t size = file_size(path);
	uint8_t *p = malloc(size + 1);
	int fd = open(path, O_RDONLY);

	assert_non_null(p);
	assert_true(fd != -1);
	assert_int_equal(read(fd, p, size), (ssize_t)size);
	close(fd);
	*len = size;
	return p;
}

static void
write_file(const char *path, const void *p, size_t len, int append)
{
	int fd = open(path, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0600);

	assert_true(fd != -1);
	assert_int_equal(write(fd, p, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

static struct ment *
model_find(struct model *m, const char *key)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->e[i].key, key) == 0)
			return &m->e[i];
	return NULL;
}

static void
model_put(struct model *m, const char *key, const void *val, size_t vlen)
{
	struct ment *e = model_find(m, key);

	if (e == NULL) {
		if (m->n == MODEL_MAX)
			abort();
		e = &m->e[m->n++];
		snprintf(e->key, sizeof(e->key), "%s", key);
	} else
		free(e->val);
	e->val = malloc(vlen + 1);
	if (e->val == NULL)
		abort();
	memcpy(e->val, val, vlen);
	e->vlen = vlen;
	m->nrec++;
}

static void
model_del(struct model *m, const char *key)
{
	struct ment *e = model_find(m, key);

	if (e == NULL)
		return;
	free(e->val);
	*e = m->e[--m->n];
	m->nrec++;
}

static void
model_free(struct model *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->e[i].val);
	m->n = 0;
}

/* No cmocka assertions here: forked children use it too. */
static int
model_equal(struct kv *kv, const struct model *m)
{
	struct kv_stats st;
	void *val;
	size_t len;
	int same;

	kv_get_stats(kv, &st);
	if (st.keys != m->n)
		return 0;
	for (size_t i = 0; i < m->n; i++) {
		if (kv_get(kv, m->e[i].key, strlen(m->e[i].key), &val, &len) != 1)
			return 0;
		same = len == m->e[i].vlen && memcmp(val, m->e[i].val, len) == 0;
		free(val);
		if (!same)
			return 0;
	}
	return 1;
}

static void
t_put(struct target *t, const char *key, const void *val, size_t vlen)
{
	if (t->kv != NULL && kv_put(t->kv, key, strlen(key), val, vlen) != 0)
		t->err = 1;
	if (t->m != NULL)
		model_put(t->m, key, val, vlen);
}

static void
t_del(struct target *t, const char *key)
{
	if (t->kv != NULL && kv_del(t->kv, key, strlen(key)) != 0)
		t->err = 1;
	if (t->m != NULL)
		model_del(t->m, key);
}

/* Batch i of the scenario: a new key, an overwrite that flips between
 * small and large values, and now and then deletes. */
static void
scenario_batch(unsigned i, struct target *t)
{
	static uint8_t val[160 * 1024];
	char key[32];
	size_t len;

	snprintf(key, sizeof(key), "batch/%03u", i);
	len = (i * 97) % 300;
	fill(val, len, i);
	t_put(t, key, val, len);
	snprintf(key, sizeof(key), "shared/%u", i % 4);
	len = i % 2 ? 20 : sizeof(val);
	fill(val, len, i + 1000);
	t_put(t, key, val, len);
	if (i % 3 == 0) {
		snprintf(key, sizeof(key), "batch/%03u", i - 2);
		t_del(t, key);
	}
	if (i % 5 == 0) {
		snprintf(key, sizeof(key), "shared/%u", (i + 1) % 4);
		t_del(t, key);
	}
}

/* The state after batches 1..k. */
static void
scenario_model(unsigned k, struct model *m)
{
	struct target t = { NULL, m, 0 };

	memset(m, 0, sizeof(*m));
	for (unsigned i = 1; i <= k; i++)
		scenario_batch(i, &t);
}

static void
test_put_get_del(void **state)
{
	struct kv *kv = open_kv(*state, NO_CKPT);
	static const char bin[] = { 'k', '\0', 'x' };
	void *val;
	size_t len;

	expect_absent(kv, "a");
	sput(kv, "a", "one", 3);
	sput(kv, "b", "two", 3);
	expect_val(kv, "a", "one", 3);
	assert_int_equal(kv_exists(kv, "a", 1), 1);
	sput(kv, "a", "uno", 3);
	expect_val(kv, "a", "uno", 3);
	sput(kv, "empty", "", 0);
	expect_val(kv, "empty", "", 0);
	assert_int_equal(kv_put(kv, bin, sizeof(bin), "nul", 3), 0);
	assert_int_equal(kv_get(kv, bin, sizeof(bin), &val, &len), 1);
	assert_int_equal(len, 3);
	free(val);
	assert_int_equal(kv_get(kv, "k", 1, &val, &len), 0);
	assert_int_equal(kv_pending(kv), 5);
	assert_int_equal(kv_del(kv, "b", 1), 0);
	expect_absent(kv, "b");
	/* Deleting what is absent changes nothing and journals nothing. */
	assert_int_equal(kv_del(kv, "nope", 4), 0);
	assert_int_equal(kv_pending(kv), 6);
	assert_int_equal(kv_put(kv, "", 0, "x", 1), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(kv_commit(kv), 0);
	assert_int_equal(kv_pending(kv), 0);
	expect_val(kv, "a", "uno", 3);
	expect_absent(kv, "b");
	assert_int_equal(kv_close(kv), 0);
}

static void
expect_sizes(struct kv *kv, const size_t *sizes, size_t n, unsigned seed)
{
	uint8_t buf[70000];
	char key[32];

	for (size_t i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "v%zu", sizes[i]);
		fill(buf, sizes[i], seed + (unsigned)i);
		expect_val(kv, key, buf, sizes[i]);
	}
}

/* Small values live in memory; large ones are read back from the pending
 * batch, the journal or the checkpoint, wherever they are. */
static void
test_value_sizes(void **state)
{
	static const size_t sizes[] = { 0, 1, 63, 64, 65, 200, 4096, 65536 };
	const size_t n = sizeof(sizes) / sizeof(sizes[0]);
	uint8_t buf[70000];
	char key[32];
	struct kv *kv = open_kv(*state, NO_CKPT);

	for (unsigned round = 0; round < 2; round++) {
		for (size_t i = 0; i < n; i++) {
			snprintf(key, sizeof(key), "v%zu", sizes[i]);
			fill(buf, sizes[i], round * 100 + (unsigned)i);
			sput(kv, key, buf, sizes[i]);
		}
		expect_sizes(kv, sizes, n, round * 100);	/* pending */
		assert_int_equal(kv_flush(kv), 0);
		expect_sizes(kv, sizes, n, round * 100);	/* journal */
		assert_int_equal(kv_commit(kv), 0);
		expect_sizes(kv, sizes, n, round * 100);
		assert_int_equal(kv_checkpoint(kv), 0);
		expect_sizes(kv, sizes, n, round * 100);	/* checkpoint */
	}
	/* Flip one key between sizes across the three places. */
	sput(kv, "v65", "small", 5);
	assert_int_equal(kv_commit(kv), 0);
	expect_val(kv, "v65", "small", 5);
	fill(buf, 300, 7);
	sput(kv, "v65", buf, 300);
	expect_val(kv, "v65", buf, 300);
	assert_int_equal(kv_close(kv), 0);
	kv = open_kv(*state, NO_CKPT);
	expect_val(kv, "v65", buf, 300);
	fill(buf, 4096, 106);
	expect_val(kv, "v4096", buf, 4096);
	assert_int_equal(kv_close(kv), 0);
}

/* A value put in parts is their concatenation, small (in memory) or
 * large (read back from the batch, the journal, after a reopen); the
 * parts' sum is bounded as a value is. */
static void
test_put_in_parts(void **state)
{
	static const size_t sizes[] = { 0, 5, 64, 200, 65536 };
	uint8_t *buf = malloc(65536 + 20), *none = NULL;
	struct kv *kv = open_kv(*state, NO_CKPT);
	char key[32];

	assert_non_null(buf);
	for (unsigned round = 0; round < 2; round++) {
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			size_t len = sizes[i] + 20;
			struct iovec iov[4] = { { buf, 9 }, { none, 0 },
			    { buf + 9, sizes[i] }, { buf + 9 + sizes[i], 11 } };

			fill(buf, len, (unsigned)(i + 10 * round));
			snprintf(key, sizeof(key), "p%zu", sizes[i]);
			assert_int_equal(kv_putv(kv, key, strlen(key), iov, 4), 0);
			expect_val(kv, key, buf, len);
		}
		assert_int_equal(kv_close(kv), 0);	/* round 0: replayed from the journal */
		kv = open_kv(*state, NO_CKPT);
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			fill(buf, sizes[i] + 20, (unsigned)(i + 10 * round));
			snprintf(key, sizeof(key), "p%zu", sizes[i]);
			expect_val(kv, key, buf, sizes[i] + 20);
		}
	}
	/* Parts over 1 GiB in all: refused before any is read. */
	struct iovec big[2] = { { (void *)1, 1U << 30 }, { (void *)1, 1 } };
	errno = 0;
	assert_int_equal(kv_putv(kv, "huge", 4, big, 2), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(kv_close(kv), 0);
	free(buf);
}

static void
test_reopen_after_close(void **state)
{
	struct fx *fx = *state;
	struct model m;
	struct target t;
	struct kv_stats st;
	struct kv *kv = open_kv(fx, NO_CKPT);

	scenario_model(NBATCH, &m);
	t = (struct target){ kv, NULL, 0 };
	for (unsigned i = 1; i <= NBATCH; i++) {
		scenario_batch(i, &t);
		if (i % 3 == 0)
			assert_int_equal(kv_commit(kv), 0);
	}
	assert_int_equal(t.err, 0);
	assert_true(model_equal(kv, &m));
	/* Close commits what is pending and checkpoints. */
	assert_int_equal(kv_close(kv), 0);
	last_segment(fx);
	assert_int_equal(file_size(fx->journal), 0);
	assert_true(file_size(fx->db) > 0);
	kv = open_kv(fx, NO_CKPT);
	kv_get_stats(kv, &st);
	assert_int_equal(st.recovered, 0);
	assert_int_equal(st.truncated, 0);
	assert_int_equal(st.journal_bytes, 0);
	assert_true(model_equal(kv, &m));
	assert_int_equal(kv_close(kv), 0);
	/* A second open/close without changes rewrites nothing. */
	kv = open_kv(fx, NO_CKPT);
	assert_true(model_equal(kv, &m));
	assert_int_equal(kv_close(kv), 0);
	model_free(&m);
}

struct collect {
	char	keys[16][8];
	size_t	lens[16];
	size_t	n;
	size_t	stop_after;
};

static int
collect_cb(const void *key, size_t klen, void *arg)
{
	struct collect *c = arg;

	if (c->n == 16 || klen > 8)
		return -1;
	memcpy(c->keys[c->n], key, klen);
	c->lens[c->n++] = klen;
	return c->n == c->stop_after ? 42 : 0;
}

static void
expect_scan(struct kv *kv, const char *prefix, size_t plen, const char *const *want, size_t n)
{
	struct collect c = { .n = 0 };

	assert_int_equal(kv_scan(kv, prefix, plen, collect_cb, &c), 0);
	assert_int_equal(c.n, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(c.lens[i], strlen(want[i]));
		assert_memory_equal(c.keys[i], want[i], c.lens[i]);
	}
}

static void
test_scan(void **state)
{
	static const char *const keys[] = { "b", "abc", "a", "ab", "\xff", "aa", "abd", "ac" };
	static const char *const sorted[] = { "a", "aa", "ab", "abc", "abd", "ac", "b", "\xff" };
	static const char *const ab[] = { "ab", "abc", "abd" };
	struct collect c = { .n = 0, .stop_after = 3 };
	struct kv *kv = open_kv(*state, NO_CKPT);

	for (size_t i = 0; i < 8; i++)
		sput(kv, keys[i], "v", 1);
	expect_scan(kv, NULL, 0, sorted, 8);
	expect_scan(kv, "ab", 2, ab, 3);
	expect_scan(kv, "abc", 3, ab + 1, 1);
	expect_scan(kv, "abcd", 4, NULL, 0);
	expect_scan(kv, "c", 1, NULL, 0);
	expect_scan(kv, "\xff", 1, sorted + 7, 1);
	assert_int_equal(kv_scan(kv, "a", 1, collect_cb, &c), 42);
	assert_int_equal(c.n, 3);
	/* The same order from the checkpoint after a reopen. */
	assert_int_equal(kv_close(kv), 0);
	kv = open_kv(*state, NO_CKPT);
	assert_int_equal(kv_del(kv, "abc", 3), 0);
	expect_scan(kv, "ab", 2, (const char *const[]){ "ab", "abd" }, 2);
	expect_scan(kv, "", 0, (const char *const[]){ "a", "aa", "ab", "abd", "ac", "b", "\xff" }, 7);
	assert_int_equal(kv_close(kv), 0);
}

/* kv_each: every key under the prefix once, in order, while the callback
 * deletes the key it got, adds keys under the prefix and outside it. */
struct each {
	struct kv *kv;
	struct collect c;
};

static int
each_cb(const void *key, size_t klen, void *arg)
{
	struct each *e = arg;
	int rc = collect_cb(key, klen, &e->c);

	assert_int_equal(kv_del(e->kv, key, klen), 0);
	sput(e->kv, "pz", "v", 1);		/* after the collected keys */
	sput(e->kv, "q", "v", 1);
	return rc;
}

static void
test_each(void **state)
{
	static const char *const keys[] = { "pb", "a", "pa", "pc", "q" };
	struct each e = { .kv = open_kv(*state, NO_CKPT), .c = { .n = 0 } };

	for (size_t i = 0; i < 5; i++)
		sput(e.kv, keys[i], "v", 1);
	assert_int_equal(kv_each(e.kv, "p", 1, each_cb, &e), 0);
	assert_int_equal(e.c.n, 3);
	assert_memory_equal(e.c.keys[0], "pa", 2);
	assert_memory_equal(e.c.keys[1], "pb", 2);
	assert_memory_equal(e.c.keys[2], "pc", 2);
	expect_scan(e.kv, NULL, 0, (const char *const[]){ "a", "pz", "q" }, 3);
	/* A non-zero return stops it and is returned. */
	sput(e.kv, "pa", "v", 1);
	e.c = (struct collect){ .n = 0, .stop_after = 1 };
	assert_int_equal(kv_each(e.kv, "p", 1, each_cb, &e), 42);
	assert_int_equal(e.c.n, 1);
	expect_scan(e.kv, "p", 1, (const char *const[]){ "pz" }, 1);
	assert_int_equal(kv_close(e.kv), 0);
}

static void
test_stats(void **state)
{
	struct kv_stats st;
	struct kv *kv = open_kv(*state, NO_CKPT);
	uint8_t big[100];

	kv_get_stats(kv, &st);
	assert_int_equal(st.keys, 0);
	assert_int_equal(st.commits, 0);
	fill(big, sizeof(big), 1);
	sput(kv, "k1", "abc", 3);
	sput(kv, "k2", big, sizeof(big));
	sput(kv, "k3", "", 0);
	kv_get_stats(kv, &st);
	assert_int_equal(st.keys, 3);
	assert_int_equal(st.live_bytes, 2 + 3 + 2 + 100 + 2);
	assert_int_equal(st.journal_bytes, 0);
	assert_int_equal(kv_commit(kv), 0);
	kv_get_stats(kv, &st);
	assert_int_equal(st.commits, 1);
	assert_int_equal(st.committed, 3);
	assert_true(st.journal_bytes > 100);
	/* Nothing written since the last sync: no sync. */
	assert_int_equal(kv_commit(kv), 0);
	kv_get_stats(kv, &st);
	assert_int_equal(st.commits, 1);
	sput(kv, "k1", "abcdef", 6);
	assert_int_equal(kv_flush(kv), 0);
	kv_get_stats(kv, &st);
	assert_int_equal(st.commits, 1);
	assert_int_equal(st.live_bytes, 2 + 6 + 2 + 100 + 2);
	assert_int_equal(kv_commit(kv), 0);
	kv_get_stats(kv, &st);
	assert_int_equal(st.commits, 2);
	assert_int_equal(st.committed, 4);
	assert_int_equal(kv_del(kv, "k2", 2), 0);
	assert_int_equal(kv_checkpoint(kv), 0);
	kv_get_stats(kv, &st);
	assert_int_equal(st.keys, 2);
	assert_int_equal(st.live_bytes, 2 + 6 + 2);
	assert_int_equal(st.checkpoints, 1);
	assert_int_equal(st.journal_bytes, 0);
	assert_int_equal(st.committed, 5);
	assert_int_equal(kv_close(kv), 0);
}

/* A second process (or a second open) must not append to the same journal. */
static void
test_locked(void **state)
{
	struct fx *fx = *state;
	struct kv *kv = open_kv(fx, NO_CKPT);
	char *err = NULL;

	assert_null(kv_open(fx->dir, NAME, NO_CKPT, &err));
	assert_non_null(err);
	assert_non_null(strstr(err, "in use"));
	free(err);
	assert_int_equal(kv_close(kv), 0);
	assert_null(kv_open("no/such/dir", NAME, NO_CKPT, &err));
	assert_non_null(err);
	free(err);
}

/* A child commits batches 1-5, writes batch 6 without syncing, leaves
 * batch 7 pending and dies without closing. */
static void
test_unclean_stop(void **state)
{
	struct fx *fx = *state;
	struct model m6;
	struct kv_stats st;
	struct kv *kv;
	int status;
	pid_t pid;

	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		char *err;
		struct target t = { kv_open(fx->dir, NAME, NO_CKPT, &err), NULL, 0 };

		if (t.kv == NULL)
			_exit(2);
		for (unsigned i = 1; i <= 7; i++) {
			scenario_batch(i, &t);
			if ((i <= 5 && kv_commit(t.kv) != 0) || (i == 6 && kv_flush(t.kv) != 0))
				_exit(3);
		}
		_exit(t.err ? 4 : 0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	scenario_model(6, &m6);
	kv = open_kv(fx, NO_CKPT);
	/* A flushed batch survives the death of the process. */
	assert_true(model_equal(kv, &m6));
	expect_absent(kv, "batch/007");
	kv_get_stats(kv, &st);
	assert_int_equal(st.recovered, m6.nrec);
	assert_int_equal(st.truncated, 0);
	assert_int_equal(kv_close(kv), 0);
	model_free(&m6);
}

/* The files of a store with S0 in its checkpoint and batches A and B in
 * its last journal segment, kept to be laid down again. */
#define SNAP_FILES 8
struct snap {
	char	 name[SNAP_FILES][320];
	uint8_t	*data[SNAP_FILES];
	size_t	 len[SNAP_FILES];
	int	 n;
	int	 last;			/* the segment written to */
	uint64_t size_a;		/* its size after A */
	uint64_t size_b;		/* after B */
};

static void
snap_files(struct fx *fx, struct snap *s)
{
	struct dirent *e;
	DIR *d = opendir(fx->dir);

	assert_non_null(d);
	s->n = 0;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' || strstr(e->d_name, ".lock") != NULL)
			continue;
		assert_true(s->n < SNAP_FILES);
		snprintf(s->name[s->n], sizeof(s->name[0]), "%s/%s", fx->dir, e->d_name);
		s->data[s->n] = read_file(s->name[s->n], &s->len[s->n]);
		if (strcmp(s->name[s->n], fx->journal) == 0)
			s->last = s->n;
		s->n++;
	}
	closedir(d);
}

static void
snap_take(struct fx *fx, struct snap *s, struct model *ma, struct model *mb)
{
	struct kv_stats st;
	struct kv *kv = open_kv(fx, NO_CKPT);
	struct target t = { kv, ma, 0 };
	uint8_t big[100];

	memset(ma, 0, sizeof(*ma));
	fill(big, sizeof(big), 5);
	t_put(&t, "k1", "one", 3);
	t_put(&t, "k2", big, sizeof(big));
	t_put(&t, "k3", big, sizeof(big));
	assert_int_equal(kv_close(kv), 0);
	t.kv = kv = open_kv(fx, NO_CKPT);
	t_put(&t, "a", big, 80);			/* batch A */
	t_put(&t, "k1", "uno", 3);
	assert_int_equal(kv_commit(kv), 0);
	kv_get_stats(kv, &st);
	s->size_a = st.journal_bytes;
	scenario_model(0, mb);
	for (size_t i = 0; i < ma->n; i++)
		model_put(mb, ma->e[i].key, ma->e[i].val, ma->e[i].vlen);
	t.m = mb;					/* batch B */
	t_put(&t, "b", "new", 3);
	t_del(&t, "k2");
	t_put(&t, "k3", "small", 5);
	t_put(&t, "a", big + 1, 70);
	assert_int_equal(t.err, 0);
	assert_int_equal(kv_commit(kv), 0);
	kv_get_stats(kv, &st);
	s->size_b = st.journal_bytes;
	assert_true(s->size_b > s->size_a);
	/* The first values stay in segment 1, which the checkpoint refers to. */
	assert_int_equal(last_segment(fx), 2);
	snap_files(fx, s);
	assert_int_equal(s->len[s->last], s->size_b);
	assert_int_equal(kv_close(kv), 0);
}

/* Lays the files down again, the last segment cut at cut bytes. */
static void
snap_restore(struct fx *fx, const struct snap *s, size_t cut)
{
	clear_dir(fx);
	for (int i = 0; i < s->n; i++)
		write_file(s->name[i], s->data[i], i == s->last ? cut : s->len[i], 0);
}

static void
snap_free(struct snap *s, struct model *ma, struct model *mb)
{
	for (int i = 0; i < s->n; i++)
		free(s->data[i]);
	model_free(ma);
	model_free(mb);
}

/* Opens the store with its journal cut inside batch B, in a child (so
 * that no close checkpoints, which keeps the test fast), and checks it
 * holds S0 + A; exits with what was wrong. */
static void __attribute__((noreturn))
torn_child(struct fx *fx, const struct snap *s, size_t cut, const struct model *ma)
{
	struct kv_stats st;
	char *err;
	struct kv *kv = kv_open(fx->dir, NAME, NO_CKPT, &err);

	if (kv == NULL)
		_exit(1);
	kv_get_stats(kv, &st);
	if (!model_equal(kv, ma))
		_exit(2);
	if (st.recovered != 2)
		_exit(3);
	if (st.truncated != cut - s->size_a)
		_exit(4);
	if (st.journal_bytes != s->size_a || file_size(fx->journal) != s->size_a)
		_exit(5);
	_exit(0);
}

/* Cuts the journal at every byte of the last batch: the store reopens to
 * the state before that batch, never to a part of it. */
static void
test_torn_tail(void **state)
{
	struct fx *fx = *state;
	struct model ma, mb;
	struct kv_stats st;
	struct snap s;
	struct kv *kv;
	int status;
	pid_t pid;

	snap_take(fx, &s, &ma, &mb);
	for (size_t cut = s.size_a; cut < s.size_b; cut++) {
		snap_restore(fx, &s, cut);
		pid = fork();
		assert_true(pid != -1);
		if (pid == 0)
			torn_child(fx, &s, cut, &ma);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fail_msg("journal cut at %zu of %" PRIu64 ": check %d failed",
			    cut, s.size_b, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	}
	/* And whole, the batch is there. */
	snap_restore(fx, &s, s.size_b);
	kv = open_kv(fx, NO_CKPT);
	kv_get_stats(kv, &st);
	assert_true(model_equal(kv, &mb));
	assert_int_equal(st.recovered, 6);
	assert_int_equal(st.truncated, 0);
	assert_int_equal(kv_close(kv), 0);
	snap_free(&s, &ma, &mb);
}

/* CRC-32 as zlib and gzip define it (reflected, polynomial 0xedb88320),
 * one bit at a time: the oracle the journal's checksum is held to. */
static uint32_t
crc32_bitwise(uint32_t crc, const uint8_t *p, size_t len)
{
	crc = ~crc;
	while (len-- > 0) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = crc & 1 ? (crc >> 1) ^ 0xedb88320U : crc >> 1;
	}
	return ~crc;
}

static uint32_t
le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

/* A journal batch's checksum is the CRC-32 of zlib of its segment number
 * (little endian) and its body, whichever library computes it: journals
 * written by earlier releases read back, and theirs by later ones. */
static void
test_journal_checksum_is_crc32(void **state)
{
	struct fx *fx = *state;
	uint8_t big[70000], seg_le[4];
	struct kv *kv = open_kv(fx, NO_CKPT);
	uint8_t *j;
	size_t len, off = 0, batches = 0;

	/* The catalogue's check value of CRC-32 (ISO-HDLC). */
	assert_int_equal(crc32_bitwise(0, (const uint8_t *)"123456789", 9), 0xcbf43926U);
	fill(big, sizeof(big), 5);
	assert_int_equal(kv_put(kv, "small", 5, "v", 1), 0);
	assert_int_equal(kv_commit(kv), 0);
	assert_int_equal(kv_put(kv, "large", 5, big, sizeof(big)), 0);
	assert_int_equal(kv_put(kv, "odd", 3, big + 1, 4097), 0);
	assert_int_equal(kv_commit(kv), 0);
	last_segment(fx);		/* before kv_close(), which checkpoints */
	j = read_file(fx->journal, &len);
	assert_int_equal(kv_close(kv), 0);
	while (off + 16 <= len && le32(j + off) == 0x324a564bU) {	/* "KVJ2" */
		uint32_t body = le32(j + off + 4) & 0x7fffffffU;

		assert_true(off + 16 + body <= len);
		memcpy(seg_le, j + off + 8, 4);
		assert_int_equal(le32(j + off + 12),
		    crc32_bitwise(crc32_bitwise(0, seg_le, 4), j + off + 16, body));
		off += 16 + body;
		batches++;
	}
	assert_int_equal(batches, 2);
	free(j);
}

static size_t
make_header(uint8_t *p, uint32_t len, uint32_t crc)
{
	const uint32_t w[3] = { 0x314a564bU, len, crc };

	for (int i = 0; i < 12; i++)
		p[i] = (uint8_t)(w[i / 4] >> (8 * (i % 4)));
	return 12;
}

/* What a torn write leaves after the last batch is cut, and the store goes
 * on appending where the valid journal ended.  Bytes that no torn write
 * leaves (noise, a batch whose CRC matches but whose records do not
 * parse) are damage: the store refuses to open, names the file and the
 * offset, and changes nothing. */
static void
test_garbage_tail(void **state)
{
	struct fx *fx = *state;
	uint8_t g[4096], big[300];
	struct model ma, mb;
	struct kv_stats st;
	struct snap s;
	struct kv *kv;
	size_t len;
	char *err;

	snap_take(fx, &s, &ma, &mb);
	fill(big, sizeof(big), 9);
	for (int kind = 0; kind < 7; kind++) {
		bool damage = kind == 0 || kind == 4 || kind == 6;

		len = 0;
		memset(g, 0, sizeof(g));
		switch (kind) {
		case 0:		/* noise */
			fill(g, len = 100, 3);
			break;
		case 1:		/* a header whose CRC does not match */
			len = make_header(g, 20, 0) + 20;
			break;
		case 2:		/* zeros, as after a crash that extended the file */
			len = sizeof(g);
			break;
		case 3:		/* a length beyond the end of the file */
			len = make_header(g, 1000, 0) + 30;
			break;
		case 6:		/* a length no batch can have */
			len = make_header(g, 0xffffff00U, 0) + 30;
			break;
		case 4:		/* a good CRC over records that do not parse */
			g[12] = 9;
			len = make_header(g, 5, libdeflate_crc32(0, g + 12, 5)) + 5;
			break;
		case 5:		/* batch B again, the end of its value lost */
			len = s.size_b - s.size_a;
			memcpy(g, s.data[s.last] + s.size_a, len);
			memset(g + len - 8, 0, 8);
			break;
		}
		snap_restore(fx, &s, s.size_b);
		write_file(fx->journal, g, len, 1);
		if (damage) {
			char at[64];

			err = NULL;
			assert_null(kv_open(fx->dir, NAME, NO_CKPT, &err));
			assert_int_equal(errno, EUCLEAN);
			assert_non_null(err);
			snprintf(at, sizeof(at), "offset %" PRIu64, s.size_b);
			assert_non_null(strstr(err, fx->journal));
			assert_non_null(strstr(err, at));
			free(err);
			assert_int_equal(file_size(fx->journal), s.size_b + len);
			continue;
		}
		kv = open_kv(fx, NO_CKPT);
		kv_get_stats(kv, &st);
		assert_int_equal(st.truncated, len);
		assert_int_equal(st.journal_bytes, s.size_b);
		assert_int_equal(file_size(fx->journal), s.size_b);
		assert_true(model_equal(kv, &mb));
		sput(kv, "after", big, sizeof(big));
		assert_int_equal(kv_commit(kv), 0);
		expect_val(kv, "after", big, sizeof(big));
		expect_val(kv, "a", model_find(&mb, "a")->val, 70);
		assert_int_equal(kv_close(kv), 0);
		kv = open_kv(fx, NO_CKPT);
		expect_val(kv, "after", big, sizeof(big));
		assert_int_equal(kv_del(kv, "after", 5), 0);
		assert_int_equal(kv_close(kv), 0);
	}
	snap_free(&s, &ma, &mb);
}

/* Runs the scenario in a child that dies at write step n; the child
 * reports each batch whose commit returned 0 through fd.  Exits 0 when
 * the scenario ended before step n. */
static void __attribute__((noreturn))
crash_child(struct fx *fx, unsigned n, int fd)
{
	struct target t = { NULL, NULL, 0 };
	char *err, num[16];

	/* Both ways of setting the crash point. */
	snprintf(num, sizeof(num), "%u", n);
	if (n % 2 && setenv("KV_CRASH_AT", num, 1) == -1)
		_exit(2);
	if ((t.kv = kv_open(fx->dir, NAME, CRASH_CKPT, &err)) == NULL)
		_exit(2);
	if (n % 2 == 0)
		kv_set_crash_at(t.kv, n);
	for (unsigned i = 1; i <= NBATCH; i++) {
		uint8_t b = (uint8_t)i;

		scenario_batch(i, &t);
		if (t.err || kv_commit(t.kv) != 0)
			_exit(3);
		if (write(fd, &b, 1) != 1)
			_exit(4);
		if (i == NBATCH / 2 && kv_checkpoint(t.kv) != 0)
			_exit(5);
	}
	_exit(kv_close(t.kv) == 0 ? 0 : 6);
}

/* Forks the crash child for step n; returns its exit status and the last
 * batch it reported. */
static int
crash_run(struct fx *fx, unsigned n, unsigned *last)
{
	int p[2], status;
	uint8_t b;
	ssize_t r;
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		close(p[0]);
		crash_child(fx, n, p[1]);
	}
	close(p[1]);
	*last = 0;
	while ((r = read(p[0], &b, 1)) == 1) {
		assert_int_equal(b, *last + 1);		/* in order, none missing */
		*last = b;
	}
	assert_int_equal(r, 0);
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* Dies at every write step in turn (journal writes, syncs, each step of
 * the checkpoints); the reopened store holds every batch reported as
 * committed, and at most the one batch after it. */
static void
test_crash_every_step(void **state)
{
	struct fx *fx = *state;
	struct model m[NBATCH + 1];
	unsigned n, last, torn = 0, leftover = 0, ahead = 0;
	struct kv_stats st;
	struct kv *kv;
	int status, tmp_left;

	for (unsigned k = 0; k <= NBATCH; k++)
		scenario_model(k, &m[k]);
	for (n = 1; n < 200; n++) {
		clear_dir(fx);
		status = crash_run(fx, n, &last);
		if (status == 0)
			break;
		assert_int_equal(status, 99);
		tmp_left = file_size(fx->tmp) > 0;
		kv = open_kv(fx, NO_CKPT);
		kv_get_stats(kv, &st);
		torn += st.truncated > 0;
		leftover += tmp_left;
		assert_int_equal(file_size(fx->tmp), 0);
		if (last < NBATCH && model_equal(kv, &m[last + 1]))
			ahead++;
		else if (!model_equal(kv, &m[last]))
			fail_msg("crash at step %u: state is neither batch %u nor %u",
			    n, last, last + 1);
		assert_int_equal(kv_close(kv), 0);
	}
	/* The scenario ran to its end, and every kind of crash happened:
	 * torn journal writes, half-written checkpoints, and batches
	 * written but not yet acknowledged. */
	assert_true(n > 2 * NBATCH + 10);
	assert_int_equal(last, NBATCH);
	kv = open_kv(fx, NO_CKPT);
	assert_true(model_equal(kv, &m[NBATCH]));
	assert_int_equal(kv_close(kv), 0);
	assert_true(torn > 0);
	assert_true(leftover > 0);
	assert_true(ahead > 0);
	for (unsigned k = 0; k <= NBATCH; k++)
		model_free(&m[k]);
}

/* Overwrites key000 with vlen bytes, one record a commit, until a
 * checkpoint; the number of records that took. */
static unsigned
overwrite_until_checkpoint(struct kv *kv, size_t vlen, unsigned limit)
{
	uint8_t *val = malloc(vlen);
	struct kv_stats st;
	unsigned i;

	assert_non_null(val);
	kv_get_stats(kv, &st);
	assert_int_equal(st.checkpoints, 0);
	for (i = 1; st.checkpoints == 0 && i <= limit; i++) {
		fill(val, vlen, 500 + i);
		sput(kv, "key000", val, vlen);
		assert_int_equal(kv_commit(kv), 0);
		kv_get_stats(kv, &st);
	}
	free(val);
	assert_int_equal(st.checkpoints, 1);
	assert_int_equal(st.journal_bytes, 0);
	return i - 1;
}

/* Small values: a checkpoint (which writes every key) waits until the
 * journal holds CKPT_RATIO records for every live key, and CKPT_RATIO
 * times the index's bytes; never for the values' bytes, which stay where
 * they were written.  The scenario checkpoints on its own (the crash test
 * relies on it). */
static void
test_checkpoint_by_size(void **state)
{
	struct fx *fx = *state;
	struct kv_stats st;
	uint8_t val[100];
	char key[16];
	struct kv *kv = open_kv(fx, 1024);
	unsigned i, n;

	for (i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "key%03u", i);
		fill(val, sizeof(val), i);
		sput(kv, key, val, sizeof(val));
	}
	assert_int_equal(kv_commit(kv), 0);
	kv_get_stats(kv, &st);
	assert_true(st.journal_bytes > 1024);
	n = overwrite_until_checkpoint(kv, sizeof(val), 2000);
	assert_int_equal(100 + n, CKPT_RATIO * (100 + 1));	/* not one record sooner */
	kv_get_stats(kv, &st);
	assert_true((100 + n) * (sizeof(val) + 10) > CKPT_RATIO * st.index_bytes);
	last_segment(fx);
	assert_int_equal(file_size(fx->journal), 0);
	assert_int_equal(kv_close(kv), 0);
	kv = open_kv(fx, 1024);
	kv_get_stats(kv, &st);
	assert_int_equal(st.keys, 100);
	assert_int_equal(st.recovered, 0);
	fill(val, sizeof(val), 500 + n);
	expect_val(kv, "key000", val, sizeof(val));
	fill(val, sizeof(val), 99);
	expect_val(kv, "key099", val, sizeof(val));
	assert_int_equal(kv_close(kv), 0);
}

/* Large values: few records, many bytes to replay.  A checkpoint comes
 * once the journal holds CKPT_RATIO times CKPT_KEY_BYTES for every live
 * key, long before CKPT_RATIO records a key; and not every
 * checkpoint_size of journal, which made a queue of 64 KiB messages
 * rewrite its thousands of keys every 64 of them. */
static void
test_checkpoint_large_values(void **state)
{
	struct fx *fx = *state;
	size_t big = 64 * 1024;
	uint8_t *val = malloc(big);
	struct kv_stats st;
	char key[16];
	struct kv *kv = open_kv(fx, 1024);
	unsigned i, n;

	assert_non_null(val);
	for (i = 0; i < 40; i++) {
		snprintf(key, sizeof(key), "key%03u", i);
		fill(val, 100, i);
		sput(kv, key, val, 100);
	}
	assert_int_equal(kv_commit(kv), 0);
	n = overwrite_until_checkpoint(kv, big, 100);
	/* 40 keys: 40 * 8 * 4096 bytes, 20 values of 64 KiB, 60 records. */
	assert_true(n * big > 40ull * CKPT_RATIO * CKPT_KEY_BYTES);
	assert_true((n - 1) * big < 40ull * CKPT_RATIO * CKPT_KEY_BYTES + 40 * 200);
	assert_true(40 + n < CKPT_RATIO * 40);
	kv_get_stats(kv, &st);
	assert_int_equal(st.keys, 40);
	assert_int_equal(kv_close(kv), 0);
	kv = open_kv(fx, 1024);
	fill(val, big, 500 + n);
	expect_val(kv, "key000", val, big);
	assert_int_equal(kv_close(kv), 0);
	free(val);
}

/* The crash scenario checkpoints by size on its own, so that the crash
 * test covers checkpoints started by kv_commit() too. */
static void
test_scenario_checkpoints(void **state)
{
	struct kv_stats st;
	struct model m;
	struct target t = { open_kv(*state, CRASH_CKPT), NULL, 0 };
	int seen = 0;

	scenario_model(NBATCH, &m);
	for (unsigned i = 1; i <= NBATCH; i++) {
		scenario_batch(i, &t);
		assert_int_equal(kv_commit(t.kv), 0);
		kv_get_stats(t.kv, &st);
		seen |= i < NBATCH / 2 && st.checkpoints > 0;
	}
	assert_int_equal(t.err, 0);
	assert_true(seen);
	assert_true(st.checkpoints >= 2);
	assert_true(model_equal(t.kv, &m));
	assert_int_equal(kv_close(t.kv), 0);
	model_free(&m);
}

static void __attribute__((noreturn))
io_error_child(struct fx *fx)
{
	struct rlimit rl;
	uint8_t big[1000];
	char *err;
	void *val;
	size_t len;
	struct kv *kv = kv_open(fx->dir, NAME, NO_CKPT, &err);

	if (kv == NULL || kv_put(kv, "a", 1, "1", 1) != 0 || kv_commit(kv) != 0)
		_exit(2);
	/* A file size limit makes the next journal write fail half-way. */
	signal(SIGXFSZ, SIG_IGN);
	last_segment(fx);
	rl.rlim_cur = rl.rlim_max = file_size(fx->journal) + 50;
	if (setrlimit(RLIMIT_FSIZE, &rl) == -1)
		_exit(3);
	fill(big, sizeof(big), 1);
	if (kv_put(kv, "big", 3, big, sizeof(big)) != 0)
		_exit(4);
	if (kv_commit(kv) != -1)
		_exit(5);
	/* The store refuses everything that would write from now on. */
	if (kv_put(kv, "b", 1, "2", 1) != -1 || kv_commit(kv) != -1 ||
	    kv_flush(kv) != -1 || kv_checkpoint(kv) != -1)
		_exit(6);
	if (kv_get(kv, "a", 1, &val, &len) != 1)
		_exit(7);
	free(val);
	_exit(kv_close(kv) == -1 ? 0 : 8);
}

/* After a failed journal write the store refuses commits, and the next
 * open finds the last committed state. */
static void
test_write_error(void **state)
{
	struct fx *fx = *state;
	struct kv_stats st;
	struct kv *kv;
	int status;
	pid_t pid;

	pid = fork();
	assert_true(pid != -1);
	if (pid == 0)
		io_error_child(fx);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	kv = open_kv(fx, NO_CKPT);
	kv_get_stats(kv, &st);
	assert_int_equal(st.truncated, 50);
	assert_int_equal(st.keys, 1);
	expect_val(kv, "a", "1", 1);
	expect_absent(kv, "big");
	assert_int_equal(kv_close(kv), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_get_del, setup, teardown),
		cmocka_unit_test_setup_teardown(test_value_sizes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_in_parts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_after_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_locked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unclean_stop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_checksum_is_crc32, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint_by_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint_large_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scenario_checkpoints, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_every_step, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_each, setup, teardown),
	};

	/* The recovery tests provoke warnings on purpose. */
	log_init("test_kvstore", LOG_LVL_ERR, LOG_DEST_STDERR, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
