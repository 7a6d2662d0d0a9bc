/* broker/auth: the password file and the ACL (parsers, with FILE:LINE
 * errors, and checks), filter overlap and cover, the table of failed
 * logins. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/auth.h"
#include "tmpdir.h"

/* Written by Debian's mosquitto_passwd 2.0.11: -c -b F alice secret,
 * then -H sha512 -b F bob hunter2. */
#define ALICE_7 "alice:$7$101$7vO5DAoAs4chcL6z$JlGORHluiQr7pbtPkiP4hmIY18TD3NKkRzRvQr3sw" \
		"fOnz8PtDAS203fUzKOLQNqZTzlk+uAw02H9Mat94EpU+g=="
#define BOB_6 "bob:$6$ZYOz3DMbBoSElNHJ$l0uFLL14uHDNaxZUUVlUVm8D56/EpJtzyjoDckY13jiqwuCq" \
		"txTlD6JBftinYuib0vrPIGeAT67YDEr2q9LYWQ=="

static struct passwd_file *
pw(const char *text, struct conf_errors *e)
{
	memset(e, 0, sizeof(*e));
	return passwd_parse("pw", text, strlen(text), e);
}

static void
check_pw(const struct passwd_file *pf, const char *user, const char *password, bool want)
{
	assert_int_equal(passwd_check(pf, user, password, strlen(password)), want);
}

static void
test_passwd_mosquitto_hashes(void **state)
{
	struct conf_errors e;
	struct passwd_file *pf = pw("# users\n" ALICE_7 "\n\n" BOB_6 "\r\n", &e);

	(void)state;
	assert_non_null(pf);
	assert_int_equal(e.n, 0);
	assert_int_equal(passwd_count(pf), 2);
	check_pw(pf, "alice", "secret", true);
	check_pw(pf, "alice", "Secret", false);
	check_pw(pf, "alice", "secret ", false);
	check_pw(pf, "alice", "", false);
	check_pw(pf, "bob", "hunter2", true);
	check_pw(pf, "bob", "secret", false);
	check_pw(pf, "carol", "secret", false);
	check_pw(pf, "Alice", "secret", false);
	passwd_free(pf);
}

/* An unknown user's check costs what the file's most common entry's
 * does: $6$ users in a file of mostly $6$, $7$ with the iterations most
 * entries have, mosquitto_passwd's default for an empty file. */
static void
test_passwd_unknown_user_costs_a_known_ones(void **state)
{
	struct conf_errors e;
	struct passwd_file *pf;
	char text[1024];
	uint8_t kind;
	unsigned it;

	(void)state;

	snprintf(text, sizeof(text), "%s\n%s\ncarol%s\n", ALICE_7, BOB_6, BOB_6 + 3);
	pf = pw(text, &e);
	assert_non_null(pf);
	passwd_unknown_cost(pf, &kind, &it);
	assert_int_equal(kind, 6);
	passwd_free(pf);
	snprintf(text, sizeof(text), "x%s\ny%s\n%s\n", ALICE_7 + 5, ALICE_7 + 5, BOB_6);
	pf = pw(text, &e);
	assert_non_null(pf);
	passwd_unknown_cost(pf, &kind, &it);
	assert_int_equal(kind, 7);
	assert_int_equal(it, 101);
	passwd_free(pf);
	pf = pw("# nobody\n", &e);
	assert_non_null(pf);
	passwd_unknown_cost(pf, &kind, &it);
	assert_int_equal(kind, 7);
	assert_int_equal(it, 101);
	passwd_free(pf);
}

/* Each bad file: its error names the line. */
static void
test_passwd_errors(void **state)
{
	static const struct { const char *text; const char *error; size_t len; } bad[] = {
		{ "alice\n", "pw:1: expected USER:HASH", 0 },
		{ "\n:$6$YWJj$" "x\n", "pw:2: the user name must be", 0 },
		{ "alice:secret\n", "pw:1: user alice: not a $6$ or $7$ password hash", 0 },
		{ "alice:\n", "pw:1: user alice: no password hash", 0 },
		{ "#\n#\nalice:$7$0$YWJj$YWJj\n", "pw:3: user alice: iterations must be", 0 },
		{ "alice:$7$1000001$YWJj$YWJj\n", "pw:1: user alice: iterations must be", 0 },
		{ "alice:$7$101$YWJj\n", "pw:1: user alice: expected $7$ITERATIONS$SALT$HASH", 0 },
		{ "alice:$6$!!!!$YWJj\n", "pw:1: user alice: the salt is not base64", 0 },
		{ "alice:$6$YWJj$YWJj\n", "pw:1: user alice: the hash is not base64 of 64 bytes", 0 },
		{ ALICE_7 "\n" BOB_6 "\n" ALICE_7 "\n", "pw:3: user alice is already on line 1", 0 },
		{ "alice:$6$a\0b\n", "pw:1: NUL byte in line", 13 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct conf_errors e = { 0 };
		const char *t = bad[i].text;

		assert_null(passwd_parse("pw", t, bad[i].len ? bad[i].len : strlen(t), &e));
		assert_true(e.n >= 1);
		if (strstr(e.msg[0], bad[i].error) == NULL)
			fail_msg("case %zu: got '%s', expected '%s'", i, e.msg[0], bad[i].error);
		conf_errors_free(&e);
	}
}

/* Every bad line is reported, not only the first. */
static void
test_passwd_every_error(void **state)
{
	struct conf_errors e;

	(void)state;
	assert_null(pw("a\n" ALICE_7 "\nb:c\n", &e));
	assert_int_equal(e.n, 2);
	assert_non_null(strstr(e.msg[0], "pw:1: "));
	assert_non_null(strstr(e.msg[1], "pw:3: "));
	conf_errors_free(&e);
}

/* ---------------------------------------------------------------- ACL */

static struct acl *
acl(const char *text)
{
	struct conf_errors e = { 0 };
	struct acl *a = acl_parse("acl", text, strlen(text), &e);

	if (a == NULL)
		fail_msg("ACL refused: %s", e.n ? e.msg[0] : "?");
	return a;
}

#define R AUTH_READ
#define W AUTH_WRITE

struct row {
	const char	*user;
	const char	*client;
	const char	*topic;
	int		 access;
	bool		 want;
};

static void
table(const struct acl *a, const struct row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct row *r = &rows[i];

		if (acl_check(a, r->user, r->client, r->topic, r->access) != r->want)
			fail_msg("row %zu: user %s client %s %s %s: expected %s", i,
			    r->user ? r->user : "(anonymous)", r->client, r->topic,
			    r->access == R ? "read" : "write", r->want ? "allowed" : "denied");
	}
}

static const char ACL_TEXT[] =
	"# anonymous clients\n"
	"topic read public/#\n"
	"topic deny public/secret\n"
	"\n"
	"user alice\n"
	"topic readwrite alice/#\n"
	"topic write shared/in\n"
	"topic read $SYS/#\n"
	"topic deny alice/private/#\n"
	"  # an indented comment\n"
	"user bob\n"
	"topic bob/+\n"
	"topic read #\n"
	"user alice\n"
	"topic read more/alice\n"
	"pattern readwrite users/%u/#\n"
	"pattern read clients/%c\n"
	"pattern deny users/%u/locked\n"
	"pattern write a%u/x\n";

static void
test_acl_table(void **state)
{
	static const struct row rows[] = {
		/* Anonymous: the lines before any user, deny first. */
		{ NULL, "c1", "public/news", R, true },
		{ NULL, "c1", "public/news", W, false },
		{ NULL, "c1", "public/secret", R, false },
		{ NULL, "c1", "alice/x", R, false },
		{ NULL, "c1", "clients/c1", R, true },		/* %c applies */
		{ NULL, "c1", "users//x", R, false },		/* %u does not */
		/* A user: its own lines (two sections add up), then patterns. */
		{ "alice", "c2", "alice/a/b", R, true },
		{ "alice", "c2", "alice/a/b", W, true },
		{ "alice", "c2", "alice", R, true },		/* a/# matches a */
		{ "alice", "c2", "alice/private/x", R, false },	/* deny wins, whatever the order */
		{ "alice", "c2", "alice/private", R, false },
		{ "alice", "c2", "shared/in", W, true },
		{ "alice", "c2", "shared/in", R, false },
		{ "alice", "c2", "more/alice", R, true },
		{ "alice", "c2", "public/news", R, false },	/* not the anonymous lines */
		{ "alice", "c2", "users/alice/x", W, true },
		{ "alice", "c2", "users/bob/x", R, false },
		{ "alice", "c2", "users/alice/locked", R, false },
		{ "alice", "c2", "clients/c2", R, true },
		{ "alice", "c2", "clients/c3", R, false },
		{ "alice", "c2", "aalice/x", W, false },	/* %u only as a whole level */
		{ "alice", "c2", "a%u/x", W, true },
		/* $ topics: only rules that start with $. */
		{ "alice", "c2", "$SYS/broker/uptime", R, true },
		{ "bob", "c4", "$SYS/broker/uptime", R, false },
		{ "bob", "c4", "$DLQ", R, false },
		{ "bob", "c4", "anything/at/all", R, true },
		{ "bob", "c4", "anything/at/all", W, false },
		{ "bob", "c4", "bob/x", W, true },
		{ "bob", "c4", "bob/x/y", W, false },
		/* A user without lines of its own: patterns only. */
		{ "carol", "c5", "users/carol/z", R, true },
		{ "carol", "c5", "public/news", R, false },
		/* Names that would widen a pattern do not replace %u or %c. */
		{ "x/y", "c6", "users/x/y/z", R, false },
		{ "+", "c6", "users/+/z", R, false },
		{ "d", "#", "clients/#", R, false },
		{ "d", "$SYS", "clients/$SYS", R, false },
		{ "d", "", "clients/", R, false },
	};
	struct acl *a = acl(ACL_TEXT);

	(void)state;
	table(a, rows, sizeof(rows) / sizeof(rows[0]));
	acl_free(a);
}

/* Without an ACL everything is allowed; an empty one allows nothing. */
static void
test_acl_none_and_empty(void **state)
{
	struct acl *a = acl("# nothing\n");

	(void)state;
	assert_true(acl_check(NULL, NULL, "c", "a", R));
	assert_true(acl_check_subscribe(NULL, NULL, "c", "#"));
	assert_false(acl_check(a, NULL, "c", "a", R));
	assert_false(acl_check(a, "alice", "c", "a", W));
	assert_false(acl_check_subscribe(a, "alice", "c", "#"));
	acl_free(a);
}

static void
test_acl_subscribe(void **state)
{
	struct acl *a = acl(ACL_TEXT);

	(void)state;
	/* A filter that can match something readable is granted. */
	assert_true(acl_check_subscribe(a, NULL, "c", "public/#"));
	assert_true(acl_check_subscribe(a, NULL, "c", "#"));
	assert_true(acl_check_subscribe(a, NULL, "c", "+/news"));
	assert_true(acl_check_subscribe(a, "alice", "c", "alice/+/x"));
	assert_true(acl_check_subscribe(a, "alice", "c", "users/alice/#"));
	/* ... one that cannot is not. */
	assert_false(acl_check_subscribe(a, NULL, "c", "private/#"));
	assert_false(acl_check_subscribe(a, NULL, "c", "public/secret"));
	assert_false(acl_check_subscribe(a, "alice", "c", "alice/private/#"));
	assert_false(acl_check_subscribe(a, "alice", "c", "shared/in"));	/* write only */
	assert_false(acl_check_subscribe(a, "alice", "c", "users/bob/#"));
	/* $SYS: only with a $ rule. */
	assert_true(acl_check_subscribe(a, "alice", "c", "$SYS/#"));
	assert_false(acl_check_subscribe(a, "bob", "c", "$SYS/#"));
	assert_false(acl_check_subscribe(a, "bob", "c", "$DLQ"));
	acl_free(a);
}

static void
test_acl_errors(void **state)
{
	static const struct { const char *text; const char *error; } bad[] = {
		{ "topic\n", "acl:1: topic without a topic filter" },
		{ "\nuser\n", "acl:2: user without a name" },
		{ "topic reed a/b\n", "acl:1: unknown access 'reed'" },
		{ "pattern read a/#/b\n", "acl:1: bad topic filter 'a/#/b'" },
		{ "topic a+\n", "acl:1: bad topic filter 'a+'" },
		{ "# c\nusr alice\n", "acl:2: unknown keyword 'usr'" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct conf_errors e = { 0 };

		assert_null(acl_parse("acl", bad[i].text, strlen(bad[i].text), &e));
		assert_int_equal(e.n, 1);
		if (strstr(e.msg[0], bad[i].error) == NULL)
			fail_msg("case %zu: got '%s', expected '%s'", i, e.msg[0], bad[i].error);
		conf_errors_free(&e);
	}
}

/* mosquitto's parse: the access is optional, a filter may hold blanks,
 * blanks around words are skipped. */
static void
test_acl_syntax(void **state)
{
	struct acl *a = acl("topic a/b\n\ttopic   read   c d/e  \nuser  x y\ntopic write z\n");

	(void)state;
	assert_true(acl_check(a, NULL, "c", "a/b", R));
	assert_true(acl_check(a, NULL, "c", "a/b", W));
	assert_true(acl_check(a, NULL, "c", "c d/e", R));
	assert_false(acl_check(a, NULL, "c", "c d/e", W));
	assert_true(acl_check(a, "x y", "c", "z", W));
	assert_false(acl_check(a, "x", "c", "z", W));
	acl_free(a);
}

static void
test_filter_overlap_and_cover(void **state)
{
	(void)state;
	assert_true(filter_overlaps("a/+", "+/b"));
	assert_true(filter_overlaps("a/#", "a"));
	assert_true(filter_overlaps("#", "x/y/z"));
	assert_true(filter_overlaps("a/b", "a/b"));
	assert_false(filter_overlaps("a/b", "a/c"));
	assert_false(filter_overlaps("a/+", "a/b/c"));
	assert_false(filter_overlaps("#", "$SYS/x"));
	assert_false(filter_overlaps("+/x", "$SYS/x"));
	assert_true(filter_overlaps("$SYS/#", "$SYS/+/x"));
	assert_true(filter_covers("#", "a/+/b"));
	assert_true(filter_covers("a/#", "a"));
	assert_true(filter_covers("a/+", "a/b"));
	assert_true(filter_covers("a/+", "a/+"));
	assert_false(filter_covers("a/+", "a/#"));
	assert_false(filter_covers("a/b", "a/+"));
	assert_false(filter_covers("a", "a/#"));
	assert_false(filter_covers("#", "$SYS/x"));
	assert_true(filter_covers("$SYS/#", "$SYS/x"));
	assert_true(filter_covers("#", "+/x"));		/* neither matches $ topics */
}

/* ------------------------------------------------------------ loading the files */

static int
auth_setup(void **state)
{
	return tmpdir_setup(state, "test_auth");
}

static void
put(const struct tmpdir *t, const char *name, const char *text, char *path, size_t len)
{
	FILE *f;

	snprintf(path, len, "%s/%s", t->dir, name);
	assert_non_null(f = fopen(path, "w"));
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

/* The errors name their lines, and the files they are in are noted (for
 * a reload's summary); a missing file is one error of its own. */
static void
test_load_notes_the_files_with_errors(void **state)
{
	struct tmpdir *t = *state;
	char pw_path[64], acl_path[64], psk_path[64];
	struct conf_errors e = { 0 };
	struct auth_config cfg = { .password_file = pw_path, .acl_file = acl_path,
				   .psk_file = psk_path, .checked = true };
	struct auth a;

	put(t, "pw", ALICE_7 "\n", pw_path, sizeof(pw_path));
	put(t, "acl", "topic read a\nuser\ntopic reed b\n", acl_path, sizeof(acl_path));
	snprintf(psk_path, sizeof(psk_path), "%s/missing", t->dir);
	assert_int_equal(auth_load(&a, &cfg, &e), 3);
	assert_null(a.passwd);			/* nothing is kept */
	assert_int_equal(e.n, 3);
	assert_int_equal(e.nfiles, 2);
	assert_string_equal(e.files[0], acl_path);
	assert_string_equal(e.files[1], psk_path);
	conf_errors_free(&e);
	cfg.acl_file = cfg.psk_file = NULL;
	assert_int_equal(auth_load(&a, &cfg, &e), 0);
	assert_int_equal(e.nfiles, 0);
	auth_free(&a);
}

static void
load(struct auth *a, const char *pw_path, const char *acl_path)
{
	struct conf_errors e = { 0 };
	struct auth_config cfg = { .password_file = pw_path, .acl_file = acl_path,
				   .checked = true };

	assert_int_equal(auth_load(a, &cfg, &e), 0);
	conf_errors_free(&e);
}

/* A reload tells which files changed: added, removed, or rewritten with
 * other content (the same content written again is no change). */
static void
test_replace_tells_what_changed(void **state)
{
	struct tmpdir *t = *state;
	char pw_path[64], acl_path[64];
	struct auth cur, fresh;

	put(t, "pw", ALICE_7 "\n", pw_path, sizeof(pw_path));
	put(t, "acl", "topic read a\n", acl_path, sizeof(acl_path));
	load(&cur, pw_path, acl_path);
	load(&fresh, pw_path, acl_path);
	assert_int_equal(auth_replace(&cur, &fresh), 0);
	assert_null(fresh.passwd);			/* moved into cur */
	put(t, "pw", ALICE_7 "\n" BOB_6 "\n", pw_path, sizeof(pw_path));
	load(&fresh, pw_path, acl_path);
	assert_int_equal(auth_replace(&cur, &fresh), AUTH_CHANGED_PASSWD);
	assert_int_equal(passwd_count(cur.passwd), 2);
	put(t, "acl", "topic read b\n", acl_path, sizeof(acl_path));
	load(&fresh, pw_path, acl_path);
	assert_int_equal(auth_replace(&cur, &fresh), AUTH_CHANGED_ACL);
	load(&fresh, NULL, acl_path);
	assert_int_equal(auth_replace(&cur, &fresh), AUTH_CHANGED_PASSWD);
	load(&fresh, pw_path, NULL);
	assert_int_equal(auth_replace(&cur, &fresh), AUTH_CHANGED_PASSWD | AUTH_CHANGED_ACL);
	auth_free(&cur);
}

/* ------------------------------------------------------------ login, failures */

static void
test_login_verdicts(void **state)
{
	struct conf_errors e;
	struct auth a = { .anonymous = false };

	(void)state;
	assert_int_equal(auth_login(&a, NULL, NULL, 0, false), AUTH_ANONYMOUS_REFUSED);
	/* Without a password file a user name is not checked: anonymous. */
	assert_int_equal(auth_login(&a, "alice", "x", 1, true), AUTH_ANONYMOUS_REFUSED);
	a.anonymous = true;
	assert_int_equal(auth_login(&a, "alice", "x", 1, true), AUTH_ANONYMOUS);
	a.passwd = pw(ALICE_7 "\n", &e);
	assert_int_equal(auth_login(&a, "alice", "secret", 6, true), AUTH_USER);
	assert_int_equal(auth_login(&a, "alice", "secreT", 6, true), AUTH_BAD_LOGIN);
	assert_int_equal(auth_login(&a, "alice", NULL, 0, false), AUTH_BAD_LOGIN);
	assert_int_equal(auth_login(&a, "mallory", "secret", 6, true), AUTH_BAD_LOGIN);
	assert_int_equal(auth_login(&a, NULL, NULL, 0, false), AUTH_ANONYMOUS);
	a.anonymous = false;
	assert_int_equal(auth_login(&a, NULL, NULL, 0, false), AUTH_ANONYMOUS_REFUSED);
	auth_free(&a);
}

static void
test_failures_double_up_to_the_cap(void **state)
{
	struct auth_failures *f = auth_failures_new();
	uint64_t d, prev = 0;

	(void)state;
	assert_int_equal(auth_failures_note(f, "10.0.0.1", 1000), AUTH_DELAY_BASE_MS);
	assert_int_equal(auth_failures_note(f, "10.0.0.1", 1001), 2 * AUTH_DELAY_BASE_MS);
	assert_int_equal(auth_failures_note(f, "10.0.0.2", 1002), AUTH_DELAY_BASE_MS);
	for (int i = 0; i < 40; i++) {
		d = auth_failures_note(f, "10.0.0.1", 1003 + i);
		assert_true(d >= prev && d <= AUTH_DELAY_MAX_MS);
		prev = d;
	}
	assert_int_equal(prev, AUTH_DELAY_MAX_MS);
	/* Forgotten after a quiet while. */
	assert_int_equal(auth_failures_note(f, "10.0.0.1", 1042 + AUTH_FAIL_FORGET_MS),
	    AUTH_DELAY_BASE_MS);
	assert_int_equal(auth_failures_size(f, 1042 + AUTH_FAIL_FORGET_MS), 1);
	auth_failures_free(f);
}

static void
test_failures_table_is_bounded(void **state)
{
	struct auth_failures *f = auth_failures_new();
	char addr[32];

	(void)state;
	for (int i = 0; i < AUTH_FAIL_ADDRESSES + 50; i++) {
		snprintf(addr, sizeof(addr), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		assert_int_equal(auth_failures_note(f, addr, i), AUTH_DELAY_BASE_MS);
	}
	assert_int_equal(auth_failures_size(f, AUTH_FAIL_ADDRESSES + 50), AUTH_FAIL_ADDRESSES);
	/* The oldest went first: the first address starts again. */
	assert_int_equal(auth_failures_note(f, "10.0.0.0", AUTH_FAIL_ADDRESSES + 60),
	    AUTH_DELAY_BASE_MS);
	auth_failures_free(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_passwd_mosquitto_hashes),
		cmocka_unit_test(test_passwd_errors),
		cmocka_unit_test(test_passwd_unknown_user_costs_a_known_ones),
		cmocka_unit_test(test_passwd_every_error),
		cmocka_unit_test(test_acl_table),
		cmocka_unit_test(test_acl_none_and_empty),
		cmocka_unit_test(test_acl_subscribe),
		cmocka_unit_test(test_acl_errors),
		cmocka_unit_test(test_acl_syntax),
		cmocka_unit_test(test_filter_overlap_and_cover),
		cmocka_unit_test_setup_teardown(test_load_notes_the_files_with_errors,
		    auth_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_replace_tells_what_changed, auth_setup,
		    tmpdir_teardown),
		cmocka_unit_test(test_login_verdicts),
		cmocka_unit_test(test_failures_double_up_to_the_cap),
		cmocka_unit_test(test_failures_table_is_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
