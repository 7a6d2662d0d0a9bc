/* The JSON-lines login line: "log USER [PASSWORD]", words split on
 * Unicode white space as the old broker did, the user name lower-cased,
 * control characters refused. */
#include "json_codec.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

static char *
lower_name(const char *line, const struct word *w)
{
	const char *name = line + w->off;
	char *u = xmalloc(w->len + 1);
	size_t i;

	for (i = 0; i < w->len; i++)
		u[i] = name[i] >= 'A' && name[i] <= 'Z' ? (char)(name[i] - 'A' + 'a') : name[i];
	u[i] = '\0';
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
