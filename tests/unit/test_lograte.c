/* The level of a line for an event that may come many times a second
 * (common/lograte.c): notice at most once per interval, information in
 * between, and the next notice counts the times in between. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "lograte.h"

#define EVERY 60000

static void
test_first_time_is_a_notice(void **state)
{
	struct lograte r = { 0, 0 };
	unsigned quiet = 99;

	(void)state;
	/* Also at a clock that reads 0 (a fresh boot's monotonic clock). */
	assert_int_equal(lograte_level(&r, 0, EVERY, &quiet), LOG_LVL_NOTICE);
	assert_int_equal(quiet, 0);
	assert_int_equal(lograte_level(&r, 1, EVERY, &quiet), LOG_LVL_INFO);
	assert_int_equal(quiet, 0);
}

static void
test_times_in_between_are_counted_by_the_next_notice(void **state)
{
	struct lograte r = { 0, 0 };
	unsigned quiet = 99;
	int64_t t = 1000;

	(void)state;
	assert_int_equal(lograte_level(&r, t, EVERY, &quiet), LOG_LVL_NOTICE);
	for (int i = 0; i < 500; i++)
		assert_int_equal(lograte_level(&r, t + 1 + i * 100, EVERY, &quiet), LOG_LVL_INFO);
	assert_int_equal(lograte_level(&r, t + EVERY - 1, EVERY, &quiet), LOG_LVL_INFO);
	assert_int_equal(lograte_level(&r, t + EVERY, EVERY, &quiet), LOG_LVL_NOTICE);
	assert_int_equal(quiet, 501);
	/* The interval runs from that notice; a long silence ends it too. */
	assert_int_equal(lograte_level(&r, t + EVERY + 1, EVERY, &quiet), LOG_LVL_INFO);
	assert_int_equal(lograte_level(&r, t + 10 * EVERY, EVERY, &quiet), LOG_LVL_NOTICE);
	assert_int_equal(quiet, 1);
	assert_int_equal(lograte_level(&r, t + 20 * EVERY, EVERY, &quiet), LOG_LVL_NOTICE);
	assert_int_equal(quiet, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_time_is_a_notice),
		cmocka_unit_test(test_times_in_between_are_counted_by_the_next_notice),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
