/* Integers beyond 64 bits in a client's line.
 *
 * jansson refuses a text that holds one (json_error_numeric_overflow);
 * the old broker took any integer in a PUB's msg and passed it on digit
 * for digit.  Each such integer is replaced, in a copy of the line, by a
 * string that jansson takes, a marker: U+0000 and the integer's index.
 * The codec writes the digits back in the marker's place (put_value).
 *
 * No string of the client's can pass for a marker: a line with a string
 * that holds the escape \u0000 is not masked (a raw NUL is not JSON). */
#include "json/json_bignum.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "marshal.h"
#include "xmalloc.h"

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Does the integer p[0..n) (-?digits) fit in 64 bits, signed? */
static bool
fits_int64(const char *p, size_t n)
{
	bool neg = p[0] == '-';
	const char *limit = neg ? "9223372036854775808" : "9223372036854775807";
	size_t nd = n - (neg ? 1 : 0), ld = strlen(limit);

	if (nd != ld)
		return nd < ld;
	return memcmp(p + (neg ? 1 : 0), limit, ld) <= 0;
}

/* The end of the string that starts at line[i] (its opening quote): the
 * index after its closing quote, or len when it has none.  *nul: it holds
 * the escape \u0000. */
static size_t
string_end(const char *line, size_t len, size_t i, bool *nul)
{
	for (i++; i < len; i++) {
		if (line[i] == '\\') {
			if (len - i >= 6 && memcmp(line + i + 1, "u0000", 5) == 0)
				*nul = true;
			i++;
		} else if (line[i] == '"')
			return i + 1;
	}
	return len;
}

static bool
in_number(char c)
{
	return is_digit(c) || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-';
}

/* The end of the run of number characters that starts at line[i]; *whole:
 * the run is one JSON integer (-?(0|[1-9][0-9]*)) and nothing else, so
 * that "1-99999999999999999999", not JSON, stays as it is. */
static size_t
number_end(const char *line, size_t len, size_t i, bool *whole)
{
	size_t start = i, first;

	if (line[i] == '-')
		i++;
	first = i;
	while (i < len && is_digit(line[i]))
		i++;
	*whole = i > first && !(line[first] == '0' && i - first > 1) &&
	    (i == len || !in_number(line[i]));
	while (i < len && in_number(line[i]))
		i++;
	return i > start ? i : start + 1;
}

static void
note(struct jl_bignums *bn, size_t off, size_t len)
{
	if (bn->n == bn->cap) {
		bn->cap = bn->cap ? 2 * bn->cap : 4;
		bn->off = xreallocarray(bn->off, bn->cap, sizeof(*bn->off));
		bn->len = xreallocarray(bn->len, bn->cap, sizeof(*bn->len));
	}
	bn->off[bn->n] = off;
	bn->len[bn->n] = len;
	bn->n++;
}

char *
jl_bignums_mask(const char *line, size_t len, struct jl_bignums *bn, size_t *outlen)
{
	struct wbuf w;
	char mark[32];
	size_t i = 0, end;
	bool whole, nul = false;

	memset(bn, 0, sizeof(*bn));
	bn->line = line;
	wbuf_init(&w);
	while (i < len) {
		if (line[i] == '"') {
			end = string_end(line, len, i, &nul);
			if (nul)
				break;
		} else if (line[i] == '-' || is_digit(line[i])) {
			end = number_end(line, len, i, &whole);
			if (whole && !fits_int64(line + i, end - i)) {
				note(bn, i, end - i);
				put_raw(&w, mark, (size_t)snprintf(mark, sizeof(mark),
				    "\"\\u0000%zu\"", bn->n - 1));
				i = end;
				continue;
			}
		} else
			end = i + 1;
		put_raw(&w, line + i, end - i);
		i = end;
	}
	if (bn->n == 0 || nul) {
		wbuf_free(&w);
		jl_bignums_free(bn);
		return NULL;
	}
	*outlen = w.len;
	put_raw(&w, "", 1);
	return (char *)w.data;
}

/* The index that string s[0..n) marks, if it is one of bn's markers. */
static bool
marker_index(const struct jl_bignums *bn, const char *s, size_t n, size_t *k)
{
	if (bn == NULL || n < 2 || n > 10 || s[0] != '\0')
		return false;
	*k = 0;
	for (size_t i = 1; i < n; i++) {
		if (!is_digit(s[i]))
			return false;
		*k = 10 * *k + (size_t)(s[i] - '0');
	}
	return *k < bn->n;
}

bool
jl_bignums_marks(const struct jl_bignums *bn, const char *s, size_t n)
{
	size_t k;

	return marker_index(bn, s, n, &k);
}

bool
jl_bignums_digits(const struct jl_bignums *bn, const char *s, size_t n,
    const char **digits, size_t *dlen)
{
	size_t k;

	if (!marker_index(bn, s, n, &k))
		return false;
	*digits = bn->line + bn->off[k];
	*dlen = bn->len[k];
	return true;
}

void
jl_bignums_free(struct jl_bignums *bn)
{
	free(bn->off);
	free(bn->len);
	memset(bn, 0, sizeof(*bn));
}
