/* libFuzzer target: the pre-shared key file parser (broker/auth/psk.c)
 * on arbitrary bytes.
 *
 *   make build/fuzz/fuzz_psk && build/fuzz/fuzz_psk tests/fuzz/corpus/psk
 *
 * Besides memory errors, it checks that a file is refused exactly when
 * errors are reported, that every error is "NAME:LINE: ..." with a line
 * of the input, and that the key of each identity the input's lines name
 * is found whole, within the limits, and is what its line says. */
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

/* A line "ID:HEX" of plain letters (no blanks to trim): its key is found. */
static void
check_line(const struct psk_file *pf, const char *line, size_t n)
{
	char text[PSK_IDENTITY_MAX + 2 * PSK_KEY_MAX + 2], *colon;
	uint8_t key[PSK_KEY_MAX];
	size_t len;

	if (n >= sizeof(text))
		return;
	memcpy(text, line, n);
	text[n] = '\0';
	if ((colon = strrchr(text, ':')) == NULL || strpbrk(text, " \t\r#") != NULL ||
	    text[0] == '\0')
		return;
	*colon = '\0';
	len = psk_key(pf, text, key, sizeof(key));
	CHECK(len == strlen(colon + 1) / 2);
	for (size_t i = 0; i < len; i++) {
		unsigned v;

		CHECK(sscanf(colon + 1 + 2 * i, "%2x", &v) == 1 && v == key[i]);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf_errors e = { 0 };
	struct psk_file *pf = psk_parse("f", (const char *)data, size, &e);
	size_t nlines = lines(data, size), off = 0;

	CHECK((pf == NULL) == (e.n > 0));
	for (size_t i = 0; i < e.n; i++) {
		unsigned long line = 0;

		CHECK(sscanf(e.msg[i], "f:%lu: ", &line) == 1);
		CHECK(line >= 1 && line <= nlines);
	}
	while (pf != NULL && off < size) {
		const uint8_t *nl = memchr(data + off, '\n', size - off);
		size_t n = nl != NULL ? (size_t)(nl - (data + off)) : size - off;

		if (memchr(data + off, '\0', n) == NULL)
			check_line(pf, (const char *)data + off, n);
		off += n + 1;
	}
	if (pf != NULL)
		CHECK(psk_count(pf) <= nlines);
	psk_free(pf);
	conf_errors_free(&e);
	return 0;
}
