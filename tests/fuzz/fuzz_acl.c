/* libFuzzer target: the ACL parser and checks (broker/auth/acl.c) on
 * arbitrary bytes: the input is an ACL file, then, after a NUL byte, a
 * topic name or filter to check against it.
 *
 *   make build/fuzz/fuzz_acl && build/fuzz/fuzz_acl tests/fuzz/corpus/acl
 *
 * Besides memory errors, it checks that a file is refused exactly when
 * errors are reported (each "NAME:LINE: ..."), and the checks against
 * each other: on a topic name, subscribing is reading; overlap is
 * symmetric and covering implies overlapping. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "topic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "check failed: %s\n", #c); abort(); } } while (0)

static const char *const users[] = { NULL, "alice", "bob", "x/y" };
static const char *const filters[] = { "#", "a/+", "a/#", "a", "+/+", "$SYS/#", "+", "a/b/c" };

/* What follows the first NUL, when it is a valid filter; NULL if not. */
static char *
subject(const uint8_t *data, size_t size, size_t *acl_len)
{
	const uint8_t *nul = memchr(data, '\0', size);
	size_t off, n;
	char *s;

	*acl_len = nul != NULL ? (size_t)(nul - data) : size;
	if (nul == NULL)
		return NULL;
	off = *acl_len + 1;
	n = size - off;
	if (memchr(data + off, '\0', n) != NULL ||
	    topic_check_filter((const char *)data + off, n) != TOPIC_OK)
		return NULL;
	s = malloc(n + 1);
	CHECK(s != NULL);
	memcpy(s, data + off, n);
	s[n] = '\0';
	return s;
}

static void
check_filters(const char *f)
{
	for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++) {
		bool o = filter_overlaps(f, filters[i]);

		CHECK(o == filter_overlaps(filters[i], f));
		CHECK(!filter_covers(f, filters[i]) || o);
		CHECK(!filter_covers(filters[i], f) || o);
	}
	CHECK(filter_covers(f, f));
}

static void
check_acl(const struct acl *acl, const char *f)
{
	bool name = strpbrk(f, "+#") == NULL;

	for (size_t u = 0; u < sizeof(users) / sizeof(users[0]); u++) {
		bool sub = acl_check_subscribe(acl, users[u], "c1", f);

		if (name) {
			CHECK(sub == acl_check(acl, users[u], "c1", f, AUTH_READ));
			(void)acl_check(acl, users[u], "c1", f, AUTH_WRITE);
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf_errors e = { 0 };
	size_t len;
	char *f = subject(data, size, &len);
	struct acl *acl = acl_parse("f", (const char *)data, len, &e);

	CHECK((acl == NULL) == (e.n > 0));
	for (size_t i = 0; i < e.n; i++)
		CHECK(strncmp(e.msg[i], "f:", 2) == 0);
	if (f != NULL) {
		check_filters(f);
		if (acl != NULL)
			check_acl(acl, f);
	}
	free(f);
	acl_free(acl);
	conf_errors_free(&e);
	return 0;
}
