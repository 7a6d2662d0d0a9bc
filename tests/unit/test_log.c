/* A log line is one line: the control characters of what a message
 * quotes (a client's user name, client id or topic) are escaped, so a
 * client cannot forge lines; UTF-8 text is kept as is. */
#include <errno.h>
#include <fcntl.h>
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

#include "log.h"
#include "tmpdir.h"

#define FORGED "2026-12-06T00:00:00.000Z broker[1]: error: FAKE LINE"

static int
setup(void **state)
{
	return tmpdir_setup(state, "log");
}

static int
teardown(void **state)
{
	log_init("broker", LOG_LVL_NOTICE, LOG_DEST_STDERR, NULL);
	return tmpdir_teardown(state);
}

static int
count_lines(const char *s)
{
	int n = 0;

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

/* The message part of the only line in buf (after "notice: "). */
static const char *
message_of(const char *buf)
{
	const char *m = strstr(buf, "notice: ");

	assert_non_null(m);
	return m + strlen("notice: ");
}

static void
test_file_escapes_controls(void **state)
{
	struct tmpdir *t = *state;
	char path[64], buf[4096];

	snprintf(path, sizeof(path), "%s/log", t->dir);
	log_init("broker", LOG_LVL_NOTICE, LOG_DEST_FILE, path);
	log_notice("login failed for user %.64s", "bob\n" FORGED);
	log_notice("ctl %s", "a\rb\tc\x1b[2Jd\x7f" "e\x01");
	assert_true(tmpdir_slurp(path, buf, sizeof(buf)));
	assert_int_equal(count_lines(buf), 2);
	assert_null(strstr(buf, "\n" FORGED));
	assert_non_null(strstr(buf, "login failed for user bob\\n2026-12-06T"));
	assert_non_null(strstr(buf, "ctl a\\rb\\tc\\x1b[2Jd\\x7fe\\x01\n"));
}

static void
test_utf8_kept(void **state)
{
	struct tmpdir *t = *state;
	char path[64], buf[1024];

	snprintf(path, sizeof(path), "%s/log", t->dir);
	log_init("broker", LOG_LVL_NOTICE, LOG_DEST_FILE, path);
	log_notice("client %s", "caf\xc3\xa9-\xe2\x82\xac");
	assert_true(tmpdir_slurp(path, buf, sizeof(buf)));
	assert_string_equal(message_of(buf), "client caf\xc3\xa9-\xe2\x82\xac\n");
}

/* C1 controls and the bidirectional controls, with which a topic could
 * read as another in a terminal, are escaped by code point; other
 * characters of those ranges are kept. */
static void
test_unicode_controls_escaped(void **state)
{
	struct tmpdir *t = *state;
	char path[64], buf[1024];

	snprintf(path, sizeof(path), "%s/log", t->dir);
	log_init("broker", LOG_LVL_NOTICE, LOG_DEST_FILE, path);
	log_notice("topic %s", "p\xe2\x80\xae" "q\xe2\x81\xa6" "r\xe2\x80\x8f" "s\xc2\x9b"
	    "2Jt\xd8\x9c" "u\xe2\x80\xa8" "v\xe2\x80\x94" "w\xc2\xa0" "x\xe2\x81\xaa" "y");
	assert_true(tmpdir_slurp(path, buf, sizeof(buf)));
	assert_string_equal(message_of(buf), "topic p\\u202eq\\u2066r\\u200fs\\u009b2Jt\\u061c"
	    "u\\u2028v\xe2\x80\x94" "w\xc2\xa0" "x\xe2\x81\xaa" "y\n");
}

/* stderr (a broker under systemd logs there) is escaped the same way. */
static void
test_stderr_escapes_controls(void **state)
{
	struct tmpdir *t = *state;
	char path[64], buf[1024];
	int fd, saved;

	snprintf(path, sizeof(path), "%s/stderr", t->dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd != -1);
	saved = dup(STDERR_FILENO);
	assert_true(saved != -1);
	assert_true(dup2(fd, STDERR_FILENO) != -1);
	log_init("broker", LOG_LVL_NOTICE, LOG_DEST_STDERR, NULL);
	log_notice("topic %s", "a/b\n" FORGED);
	assert_true(dup2(saved, STDERR_FILENO) != -1);
	close(saved);
	close(fd);
	assert_true(tmpdir_slurp(path, buf, sizeof(buf)));
	assert_int_equal(count_lines(buf), 1);
	assert_string_equal(message_of(buf), "topic a/b\\n" FORGED "\n");
}

/* A message near the size limit is cut before an escape, not inside it. */
static void
test_long_message_cut_whole(void **state)
{
	struct tmpdir *t = *state;
	char path[64], buf[8192], big[3000];
	const char *m;
	size_t n;

	memset(big, '\n', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	snprintf(path, sizeof(path), "%s/log", t->dir);
	log_init("broker", LOG_LVL_NOTICE, LOG_DEST_FILE, path);
	log_notice("x%s", big);
	assert_true(tmpdir_slurp(path, buf, sizeof(buf)));
	assert_int_equal(count_lines(buf), 1);
	m = message_of(buf);
	n = strlen(m);
	assert_true(n > 1000);
	assert_int_equal(m[n - 1], '\n');
	assert_int_equal(m[n - 2], 'n');
	assert_int_equal(m[n - 3], '\\');
}

/* A file that cannot be opened: -1 and errno, and the file open before,
 * if any, goes on receiving the lines. */
static void
test_file_that_cannot_be_opened(void **state)
{
	struct tmpdir *t = *state;
	char path[64], missing[96], buf[1024];

	snprintf(missing, sizeof(missing), "%s/no/such.log", t->dir);
	errno = 0;
	assert_int_equal(log_init("broker", LOG_LVL_NOTICE, LOG_DEST_FILE, missing), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(log_get_dests() & LOG_DEST_FILE, 0);
	assert_null(log_get_file());
	snprintf(path, sizeof(path), "%s/log", t->dir);
	assert_int_equal(log_init("broker", LOG_LVL_NOTICE, LOG_DEST_FILE, path), 0);
	assert_int_equal(log_init("broker", LOG_LVL_NOTICE, LOG_DEST_FILE, missing), -1);
	assert_string_equal(log_get_file(), path);
	log_notice("still here");
	assert_true(tmpdir_slurp(path, buf, sizeof(buf)));
	assert_string_equal(message_of(buf), "still here\n");
}

/* logrotate moved the file, and a new one cannot be made where it was:
 * the lines go on to the one open before, after a warning. */
static void
test_reopen_that_fails_keeps_the_file(void **state)
{
	struct tmpdir *t = *state;
	char sub[64], path[96], moved[64], buf[2048];

	snprintf(sub, sizeof(sub), "%s/sub", t->dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	snprintf(path, sizeof(path), "%s/log", sub);
	snprintf(moved, sizeof(moved), "%s/log.1", t->dir);
	assert_int_equal(log_init("broker", LOG_LVL_NOTICE, LOG_DEST_FILE, path), 0);
	log_notice("before");
	assert_int_equal(rename(path, moved), 0);
	assert_int_equal(rmdir(sub), 0);
	assert_int_equal(log_reopen(), -1);
	log_notice("after");
	assert_true(tmpdir_slurp(moved, buf, sizeof(buf)));
	assert_int_equal(count_lines(buf), 3);
	assert_non_null(strstr(buf, "warning: cannot reopen log file "));
	assert_non_null(strstr(buf, "/sub/log: No such file or directory; still writing to"
	    " the one open before\n"));
	assert_non_null(strstr(buf, "notice: after\n"));
}

/* What -t checks: whether the file could be opened, creating nothing. */
static void
test_file_check(void **state)
{
	struct tmpdir *t = *state;
	char path[64], link[64];
	struct stat st;

	snprintf(path, sizeof(path), "%s/new.log", t->dir);
	assert_int_equal(log_file_check(path), 0);
	assert_int_equal(stat(path, &st), -1);		/* not created */
	snprintf(path, sizeof(path), "%s/no/such.log", t->dir);
	errno = 0;
	assert_int_equal(log_file_check(path), -1);
	assert_int_equal(errno, ENOENT);
	errno = 0;
	assert_int_equal(log_file_check(t->dir), -1);	/* a directory */
	assert_int_equal(errno, EISDIR);
	snprintf(path, sizeof(path), "%s/real.log", t->dir);
	assert_int_equal(log_init("broker", LOG_LVL_NOTICE, LOG_DEST_FILE, path), 0);
	assert_int_equal(log_file_check(path), 0);
	snprintf(link, sizeof(link), "%s/link.log", t->dir);
	assert_int_equal(symlink(path, link), 0);
	errno = 0;
	assert_int_equal(log_file_check(link), -1);	/* as the start refuses it */
	assert_int_equal(errno, ELOOP);
	assert_int_equal(log_init("broker", LOG_LVL_NOTICE, LOG_DEST_FILE, link), -1);
}

/* While a program starts, its errors also reach stderr when the log
 * goes elsewhere; nothing else does, and nothing once it is off. */
static void
test_errors_to_stderr(void **state)
{
	struct tmpdir *t = *state;
	char path[64], err_path[64], buf[2048];
	int fd, saved;

	snprintf(path, sizeof(path), "%s/log", t->dir);
	snprintf(err_path, sizeof(err_path), "%s/stderr", t->dir);
	fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd != -1);
	saved = dup(STDERR_FILENO);
	assert_true(saved != -1);
	assert_true(dup2(fd, STDERR_FILENO) != -1);
	assert_int_equal(log_init("broker", LOG_LVL_NOTICE, LOG_DEST_FILE, path), 0);
	log_errors_to_stderr(true);
	log_errx("cannot listen");
	log_warnx("a warning");
	log_notice("a notice");
	log_errors_to_stderr(false);
	log_errx("later");
	assert_true(dup2(saved, STDERR_FILENO) != -1);
	close(saved);
	close(fd);
	assert_true(tmpdir_slurp(err_path, buf, sizeof(buf)));
	assert_int_equal(count_lines(buf), 1);
	assert_non_null(strstr(buf, "broker["));
	assert_non_null(strstr(buf, "]: error: cannot listen\n"));
	assert_true(tmpdir_slurp(path, buf, sizeof(buf)));
	assert_int_equal(count_lines(buf), 4);		/* the file has them all */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_file_escapes_controls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_utf8_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stderr_escapes_controls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unicode_controls_escaped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_message_cut_whole, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_that_cannot_be_opened, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_that_fails_keeps_the_file, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_file_check, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors_to_stderr, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
