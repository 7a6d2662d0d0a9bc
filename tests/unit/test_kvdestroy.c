/* Deleting a store (kv_destroy): every file goes, the lock file last, and
 * a death at any step leaves a store that opens either as it was or
 * empty, never as an earlier state of itself, and never damaged. */
#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
#define BIG	(64 * 1024)	/* written once, referred to by the index */
#define NKEYS	40
#define CKPT	(256 * 1024)	/* a few checkpoints while it is filled */

#include "kvfiles.h"

static int
setup(void **state)
{
	return tmpdir_setup(state, "kvd");
}

#define teardown tmpdir_teardown

/* The store's files left in the directory (another store's are not). */
static unsigned
files_of_store(const struct tmpdir *fx)
{
	struct dirent *e;
	unsigned n = 0;
	DIR *d = opendir(fx->dir);

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (strncmp(e->d_name, NAME ".", strlen(NAME ".")) == 0)
			n++;
	closedir(d);
	return n;
}

static void
put_one(struct kv *kv, unsigned i)
{
	static uint8_t buf[BIG];
	char key[16];

	snprintf(key, sizeof(key), "k%05u", i);
	memset(buf, (int)i, sizeof(buf));
	/* Small and large values: some inline, some in the segments. */
	assert_int_equal(kv_put(kv, key, strlen(key), buf, i % 2 ? BIG : 16), 0);
}

/* Keys written over several segments and checkpoints, some deleted, the
 * last batch not checkpointed. */
static struct kv *
filled(const struct tmpdir *fx)
{
	struct kv *kv = open_store(fx, CKPT, 1);

	for (unsigned i = 0; i < NKEYS; i++) {
		put_one(kv, i);
		if (i % 3 == 0)
			assert_int_equal(kv_commit(kv), 0);
	}
	assert_int_equal(kv_del(kv, "k00002", 6), 0);
	assert_int_equal(kv_commit(kv), 0);
	return kv;
}

/* How many keys the store holds when opened. */
static unsigned
keys_at_open(const struct tmpdir *fx)
{
	struct kv *kv = open_store(fx, CKPT, 1);
	struct kv_stats st;

	kv_get_stats(kv, &st);
	assert_int_equal(kv_close(kv), 0);
	return (unsigned)st.keys;
}

static void
test_every_file_goes(void **state)
{
	struct tmpdir *fx = *state;
	struct kv *kv = filled(fx);
	int fd;

	/* Another store beside it is not touched. */
	fd = open(path_of(fx, "x.lock"), O_CREAT | O_WRONLY, 0600);
	assert_true(fd != -1);
	close(fd);
	assert_true(files_of_store(fx) >= 3);
	assert_int_equal(kv_destroy(kv), 0);
	assert_int_equal(files_of_store(fx), 0);
	assert_int_equal(access(path_of(fx, "x.lock"), F_OK), 0);
	assert_int_equal(unlink(path_of(fx, "x.lock")), 0);
	/* It opens as a new store. */
	assert_int_equal(keys_at_open(fx), 0);
}

static void
test_an_empty_store_goes(void **state)
{
	struct tmpdir *fx = *state;

	assert_int_equal(kv_destroy(open_store(fx, CKPT, 1)), 0);
	assert_int_equal(files_of_store(fx), 0);
}

static void
die_destroying(const struct tmpdir *fx, unsigned step)
{
	struct kv *kv = filled(fx);

	kv_set_crash_at(kv, step);
	_exit(kv_destroy(kv) == 0 ? 0 : 2);
}

/* Runs fn in a child that dies without closing the store; its status. */
static int
in_child(const struct tmpdir *fx, void (*fn)(const struct tmpdir *, unsigned), unsigned arg)
{
	int status;
	pid_t pid = fork();

	assert_true(pid != -1);
	if (pid == 0)
		fn(fx, arg);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* A death at every step: the store opens, holding every key or none;
 * once the deletion is durable, none.  Past the last step, no file. */
static void
test_a_death_at_any_step_leaves_it_whole_or_empty(void **state)
{
	struct tmpdir *fx = *state;
	bool emptied = false;
	unsigned step, keys;
	int rc = 99;

	for (step = 1; rc == 99 && step < 80; step++) {
		tmpdir_clear(fx->dir);
		rc = in_child(fx, die_destroying, step);
		assert_true(rc == 99 || rc == 0);
		if (rc == 0)
			break;
		keys = keys_at_open(fx);
		if (keys != NKEYS - 1 && keys != 0)
			fail_msg("step %u: %u keys after a death (%u or none expected)", step,
			    keys, NKEYS - 1);
		if (emptied && keys != 0)
			fail_msg("step %u: the keys are back after a death", step);
		emptied = keys == 0;
	}
	assert_int_equal(rc, 0);
	assert_true(emptied);
	assert_int_equal(files_of_store(fx), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_every_file_goes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_an_empty_store_goes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_death_at_any_step_leaves_it_whole_or_empty,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
