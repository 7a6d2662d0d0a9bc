/* libFuzzer target: the password file parser (broker/auth/passwd.c) on
 * arbitrary bytes.
 *
 *   make build/fuzz/fuzz_passwd && build/fuzz/fuzz_passwd tests/fuzz/corpus/passwd
 *
 * Besides memory errors, it checks that a file is refused exactly when
 * errors are reported, that every error is "NAME:LINE: ..." with a line
 * of the input, and that checking a password never crashes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "check failed: %s\n", #c); abort(); } } while (0)

static size_t
lines(const uint8_t *data, size_t size)
{
	size_t n = 0;

	for (size_t i = 0; i < size; i++)
		n += data[i] == '\n';
	return n + (size > 0 && data[size - 1] != '\n');
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf_errors e = { 0 };
	struct passwd_file *pf = passwd_parse("f", (const char *)data, size, &e);
	size_t nlines = lines(data, size);

	CHECK((pf == NULL) == (e.n > 0));
	for (size_t i = 0; i < e.n; i++) {
		unsigned long line = 0;

		CHECK(sscanf(e.msg[i], "f:%lu: ", &line) == 1);
		CHECK(line >= 1 && line <= nlines);
	}
	if (pf != NULL) {
		CHECK(passwd_count(pf) <= nlines);
		(void)passwd_check(pf, "alice", "secret", 6);
	}
	passwd_free(pf);
	conf_errors_free(&e);
	return 0;
}
