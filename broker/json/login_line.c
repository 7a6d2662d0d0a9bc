/* The JSON-lines login line: "log USER [PASSWORD]", words split on
 * Unicode white space and the user name lower-cased in Unicode as the old
 * broker did, control characters refused. */
#include "json_codec.h"

#include <locale.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

#include "topic.h"
#include "xmalloc.h"

/* The code point at p (valid UTF-8, n > 0 bytes left) and its length. */
static uint32_t
utf8_next(const unsigned char *p, size_t n, size_t *len)
{
	uint32_t cp;
	size_t i;

	if (p[0] < 0x80) {
		*len = 1;
		return p[0];
	}
	if (p[0] < 0xe0)
		*len = 2, cp = p[0] & 0x1f;
	else if (p[0] < 0xf0)
		*len = 3, cp = p[0] & 0x0f;
	else
		*len = 4, cp = p[0] & 0x07;
	if (*len > n) {
		*len = 1;
		return 0xfffd;
	}
	for (i = 1; i < *len; i++)
		cp = cp << 6 | (p[i] & 0x3f);
	return cp;
}

/* Unicode White_Space without the non-breaking ones (U+00A0, U+2007,
 * U+202F), as Elixir's String.split/1. */
static bool
is_space(uint32_t c)
{
	return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 ||
	    c == 0x1680 || (c >= 0x2000 && c <= 0x200a && c != 0x2007) ||
	    c == 0x2028 || c == 0x2029 || c == 0x205f || c == 0x3000;
}

static bool
is_control(uint32_t c)
{
	return c < 0x20 || (c >= 0x7f && c <= 0x9f);
}

struct word {
	size_t	off;
	size_t	len;
	bool	control;
};

/* Splits s at white space into at most max words; returns how many there
 * are, max + 1 meaning more. */
static size_t
split_words(const char *s, size_t len, struct word *words, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, n = 0, cl;
	bool in = false;
	uint32_t c;

	while (i < len) {
		c = utf8_next(p + i, len - i, &cl);
		if (is_space(c))
			in = false;
		else {
			if (!in) {
				if (n == max)
					return max + 1;
				words[n].off = i;
				words[n].len = 0;
				words[n++].control = false;
				in = true;
			}
			words[n - 1].len += cl;
			words[n - 1].control |= is_control(c);
		}
		i += cl;
	}
	return n;
}

/* "log USERNAME ...": the words, and how many there are (at most max, or
 * max + 1 for more); 0 if the line is not a login at all. */
static size_t
login_words(const char *line, size_t len, struct word *words, size_t max)
{
	size_t n;

	if (len == 0 || memchr(line, '\0', len) != NULL || !utf8_valid(line, len))
		return 0;
	n = split_words(line, len, words, max);
	if (n < 2 || words[0].len != 3 || strncasecmp(line + words[0].off, "log", 3) != 0)
		return 0;
	if (words[1].len > JL_USERNAME_MAX || words[1].control)
		return 0;
	return n;
}

/* Unicode's lower case of a code point, as the C.UTF-8 locale has it
 * (ASCII only if the C library has no such locale). */
static uint32_t
lower_cp(uint32_t c)
{
	static locale_t utf8;
	static bool tried;

	if (c < 0x80)
		return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
	if (!tried) {
		tried = true;
		utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	}
	return utf8 != (locale_t)0 ? (uint32_t)towlower_l((wint_t)c, utf8) : c;
}

static size_t
utf8_put(char *out, uint32_t c)
{
	if (c < 0x80) {
		out[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		out[0] = (char)(0xc0 | c >> 6);
		out[1] = (char)(0x80 | (c & 0x3f));
		return 2;
	}
	if (c < 0x10000) {
		out[0] = (char)(0xe0 | c >> 12);
		out[1] = (char)(0x80 | (c >> 6 & 0x3f));
		out[2] = (char)(0x80 | (c & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | c >> 18);
	out[1] = (char)(0x80 | (c >> 12 & 0x3f));
	out[2] = (char)(0x80 | (c >> 6 & 0x3f));
	out[3] = (char)(0x80 | (c & 0x3f));
	return 4;
}

/* The user name lower-cased, as the original broker's String.downcase
 * did it (its simple mappings: no lower case is longer than twice the
 * bytes of its upper case). */
static char *
lower_name(const char *line, const struct word *w)
{
	const unsigned char *name = (const unsigned char *)line + w->off;
	char *u = xmalloc(2 * w->len + 1);
	size_t i = 0, n = 0, cl;

	while (i < w->len) {
		n += utf8_put(u + n, lower_cp(utf8_next(name + i, w->len - i, &cl)));
		i += cl;
	}
	u[n] = '\0';
	return u;
}

bool
jl_parse_login(const char *line, size_t len, char **username)
{
	struct word words[2];

	*username = NULL;
	if (login_words(line, len, words, 2) != 2)
		return false;
	*username = lower_name(line, &words[1]);
	return true;
}

bool
jl_parse_login_password(const char *line, size_t len, char **username, char **password)
{
	struct word words[3];
	size_t n;

	*username = NULL;
	*password = NULL;
	if ((n = login_words(line, len, words, 3)) == 0)
		return false;
	*username = lower_name(line, &words[1]);
	if (n > 2) {
		*password = xmalloc(len - words[2].off + 1);
		memcpy(*password, line + words[2].off, len - words[2].off);
		(*password)[len - words[2].off] = '\0';
	}
	return true;
}

/* How much of a refused line may be dead-lettered: a login line without
 * its password ("log USER"), anything else whole. */
size_t
jl_login_public_len(const char *line, size_t len)
{
	struct word words[3];

	if (login_words(line, len, words, 3) < 3)
		return len;
	return words[1].off + words[1].len;
}
