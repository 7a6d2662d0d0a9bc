/* proc_state() (broker/core/procstate.c) on a proc tree made here: the
 * main thread's state, and D when any other thread waits for a disk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/core.h"

struct tree {
	char	 root[64];
	char	 paths[16][160];	/* made, removed at the end in reverse */
	int	 n;
};

static void
made(struct tree *t, const char *path)
{
	assert_true(t->n < 16);
	snprintf(t->paths[t->n++], sizeof(t->paths[0]), "%s", path);
}

static void
mkdir_in(struct tree *t, const char *rel)
{
	char path[160];

	snprintf(path, sizeof(path), "%s/%s", t->root, rel);
	assert_int_equal(mkdir(path, 0700), 0);
	made(t, path);
}

static void
stat_file(struct tree *t, const char *rel, const char *text)
{
	char path[160];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", t->root, rel);
	assert_non_null(f = fopen(path, "w"));
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	made(t, path);
}

/* A process 42 whose main thread is in main_state, with a second thread
 * (43) in other_state. */
static void
make_tree(struct tree *t, char main_state, char other_state)
{
	char line[128];

	snprintf(t->root, sizeof(t->root), "proc.XXXXXX");
	assert_non_null(mkdtemp(t->root));
	t->n = 0;
	mkdir_in(t, "42");
	snprintf(line, sizeof(line), "42 (top) d) %c 1 42 42 0 -1\n", main_state);
	stat_file(t, "42/stat", line);
	mkdir_in(t, "42/task");
	mkdir_in(t, "42/task/42");
	stat_file(t, "42/task/42/stat", line);
	mkdir_in(t, "42/task/43");
	snprintf(line, sizeof(line), "43 (kv worker) %c 1 42 42 0 -1\n", other_state);
	stat_file(t, "42/task/43/stat", line);
}

static void
free_tree(struct tree *t)
{
	while (t->n > 0)
		assert_int_equal(remove(t->paths[--t->n]), 0);
	assert_int_equal(rmdir(t->root), 0);
}

static char
state_of(char main_state, char other_state)
{
	struct tree t;
	char s;

	make_tree(&t, main_state, other_state);
	s = proc_state(t.root, 42);
	free_tree(&t);
	return s;
}

static void
test_the_main_thread_says_it(void **state)
{
	(void)state;
	assert_int_equal(state_of('S', 'S'), 'S');
	assert_int_equal(state_of('R', 'S'), 'R');
	assert_int_equal(state_of('D', 'S'), 'D');
	assert_int_equal(state_of('T', 'S'), 'T');
}

/* The loop waits for the store's worker, which waits for the disk. */
static void
test_a_thread_in_disk_wait_makes_it_wait_for_its_disk(void **state)
{
	(void)state;
	assert_int_equal(state_of('S', 'D'), 'D');
	assert_int_equal(state_of('R', 'D'), 'D');
	/* Stopped stays stopped: an operator's doing. */
	assert_int_equal(state_of('T', 'D'), 'T');
}

static void
test_unknown(void **state)
{
	struct tree t;

	(void)state;
	make_tree(&t, 'S', 'S');
	assert_int_equal(proc_state(t.root, 7), '?');
	free_tree(&t);
	assert_int_equal(proc_state("/proc", getpid()), 'R');
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_the_main_thread_says_it),
		cmocka_unit_test(test_a_thread_in_disk_wait_makes_it_wait_for_its_disk),
		cmocka_unit_test(test_unknown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
