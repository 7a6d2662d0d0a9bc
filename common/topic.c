/* Topic names and filters (MQTT 3.1.1 sections 1.5.3 and 4.7) and their
 * file names. */
#include "topic.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

/* A cut stem: prefix, '~', 16 hex digits. */
#define HASH_DIGITS	16
#define CUT_PREFIX_MAX	(TOPIC_FILE_MAX - 1 - HASH_DIGITS)

static const char hexdigits[] = "0123456789ABCDEF";

/* Length of the UTF-8 sequence starting at p (at most n bytes), or 0 if
 * it is not a well-formed, non-overlong, non-surrogate sequence. */
static size_t
utf8_seq(const unsigned char *p, size_t n)
{
	uint32_t cp, min;
	size_t len, i;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0) {
		len = 2, cp = p[0] & 0x1f, min = 0x80;
	} else if ((p[0] & 0xf0) == 0xe0) {
		len = 3, cp = p[0] & 0x0f, min = 0x800;
	} else if ((p[0] & 0xf8) == 0xf0) {
		len = 4, cp = p[0] & 0x07, min = 0x10000;
	} else
		return 0;	/* continuation byte or 0xf8..0xff */
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

size_t
utf8_prefix(const void *s, size_t len)
{
	const unsigned char *p = s;
	size_t i = 0, n;

	while (i < len && (n = utf8_seq(p + i, len - i)) != 0)
		i += n;
	return i;
}

bool
utf8_valid(const void *s, size_t len)
{
	return utf8_prefix(s, len) == len;
}

/* What a topic name and a filter have in common. */
static enum topic_err
check_common(const char *s, size_t len)
{
	if (len == 0)
		return TOPIC_EMPTY;
	if (len > TOPIC_MAX_LEN)
		return TOPIC_TOO_LONG;
	if (memchr(s, '\0', len) != NULL)
		return TOPIC_NUL;
	if (!utf8_valid(s, len))
		return TOPIC_BAD_UTF8;
	return TOPIC_OK;
}

enum topic_err
topic_check_name(const char *s, size_t len)
{
	enum topic_err e;

	if ((e = check_common(s, len)) != TOPIC_OK)
		return e;
	if (memchr(s, '+', len) != NULL || memchr(s, '#', len) != NULL)
		return TOPIC_WILDCARD;
	return TOPIC_OK;
}

enum topic_err
topic_check_filter(const char *s, size_t len)
{
	enum topic_err e;
	size_t i, start = 0;

	if ((e = check_common(s, len)) != TOPIC_OK)
		return e;
	for (i = 0; i <= len; i++) {
		size_t n;

		if (i < len && s[i] != '/')
			continue;
		/* The level is s[start .. i). */
		n = i - start;
		if (n > 1 && (memchr(s + start, '+', n) != NULL ||
		    memchr(s + start, '#', n) != NULL))
			return TOPIC_BAD_WILDCARD;
		if (n == 1 && s[start] == '#' && i != len)
			return TOPIC_BAD_WILDCARD;
		start = i + 1;
	}
	return TOPIC_OK;
}

size_t
topic_levels(const char *s, size_t len)
{
	size_t n = 1;
	const char *p = s, *end = s + len;

	while ((p = memchr(p, '/', (size_t)(end - p))) != NULL) {
		n++;
		p++;
	}
	return n;
}

enum topic_err
topic_check_levels(const char *s, size_t len, size_t max)
{
	return max > 0 && topic_levels(s, len) > max ? TOPIC_TOO_MANY_LEVELS : TOPIC_OK;
}

const char *
topic_strerror(enum topic_err e)
{
	switch (e) {
	case TOPIC_OK:
		return "valid topic";
	case TOPIC_EMPTY:
		return "empty topic";
	case TOPIC_TOO_LONG:
		return "topic longer than 32767 bytes";	/* TOPIC_MAX_LEN */
	case TOPIC_BAD_UTF8:
		return "topic is not well-formed UTF-8";
	case TOPIC_NUL:
		return "topic contains a NUL character";
	case TOPIC_WILDCARD:
		return "wildcard (+ or #) in a topic name";
	case TOPIC_BAD_WILDCARD:
		return "misplaced wildcard in a topic filter";
	case TOPIC_TOO_MANY_LEVELS:
		return "topic has more levels than max_topic_levels";
	}
	return "unknown topic error";
}

/*
 * Levels are compared one at a time.  '+' matches any one level (also an
 * empty one); '#' matches what is left, including nothing at all: "a/#"
 * matches "a" (MQTT 4.7.1.2).
 */
bool
topic_matches(const char *f, const char *n)
{
	if (n[0] == '$' && (f[0] == '+' || f[0] == '#'))
		return false;
	for (;;) {
		const char *fe = strchrnul(f, '/'), *ne = strchrnul(n, '/');
		size_t fl = (size_t)(fe - f), nl = (size_t)(ne - n);

		if (fl == 1 && f[0] == '#')
			return true;
		if (!(fl == 1 && f[0] == '+') &&
		    (fl != nl || memcmp(f, n, fl) != 0))
			return false;
		if (*fe == '\0' && *ne == '\0')
			return true;
		if (*ne == '\0')
			return strcmp(fe, "/#") == 0;
		if (*fe == '\0')
			return false;
		f = fe + 1;
		n = ne + 1;
	}
}

static bool
keep_byte(unsigned char c, bool leading)
{
	if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '_' || c == '-')
		return true;
	return c == '.' && !leading;
}

/* FNV-1a, 64 bits. */
static uint64_t
fnv1a64(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/*
 * The escaped form never contains '~' (it would be %7E), so a cut stem
 * can be told from an uncut one.  A cut never splits a %XX triple.
 */
char *
topic_file_name(const char *topic)
{
	size_t len = strlen(topic), i, o = 0, cut = 0;
	char *out = xmalloc(len * 3 + 1 > TOPIC_FILE_MAX + 1 ?
	    len * 3 + 1 : TOPIC_FILE_MAX + 1);

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)topic[i];

		if (o <= CUT_PREFIX_MAX)
			cut = o;
		if (keep_byte(c, i == 0))
			out[o++] = (char)c;
		else {
			out[o++] = '%';
			out[o++] = hexdigits[c >> 4];
			out[o++] = hexdigits[c & 0xf];
		}
	}
	if (o <= CUT_PREFIX_MAX)
		cut = o;
	if (o > TOPIC_FILE_MAX) {
		snprintf(out + cut, TOPIC_FILE_MAX + 1 - cut, "~%016llx",
		    (unsigned long long)fnv1a64(topic));
		o = cut + 1 + HASH_DIGITS;
	}
	out[o] = '\0';
	return out;
}

static int
hexval(char c)
{
	const char *p;

	if (c == '\0' || (p = strchr(hexdigits, c)) == NULL)
		return -1;
	return (int)(p - hexdigits);
}

/*
 * Decodes, then checks that the result is a valid topic name whose
 * escaping is exactly the stem: that rejects cut stems, lower-case or
 * needless escapes and anything else that is not our own output.
 */
char *
topic_from_file_name(const char *stem)
{
	size_t len = strlen(stem), i, o = 0;
	char *out, *again;
	bool ok;

	if (len == 0 || len > TOPIC_FILE_MAX)
		return NULL;
	out = xmalloc(len + 1);
	for (i = 0; i < len; i++) {
		int hi, lo;

		if (stem[i] != '%') {
			out[o++] = stem[i];
			continue;
		}
		if ((hi = hexval(stem[i + 1])) < 0 ||
		    (lo = hexval(stem[i + 2])) < 0) {
			free(out);
			return NULL;
		}
		out[o++] = (char)(hi << 4 | lo);
		i += 2;
	}
	out[o] = '\0';
	ok = topic_check_name(out, o) == TOPIC_OK;
	if (ok) {
		again = topic_file_name(out);
		ok = strcmp(again, stem) == 0;
		free(again);
	}
	if (!ok) {
		free(out);
		return NULL;
	}
	return out;
}

int
topic_share_split(const char *s, const char **filter)
{
	size_t n = strlen(TOPIC_SHARE_PREFIX);
	const char *group = s + n, *slash;

	if (strncmp(s, TOPIC_SHARE_PREFIX, n) != 0)
		return 0;
	if ((slash = strchr(group, '/')) == NULL || slash == group || slash[1] == '\0' ||
	    strcspn(group, "+#") < (size_t)(slash - group))
		return -1;
	if (topic_check_filter(slash + 1, strlen(slash + 1)) != TOPIC_OK)
		return -1;
	if (filter != NULL)
		*filter = slash + 1;
	return 1;
}

enum topic_err
topic_check_sub_filter(const char *s, size_t len)
{
	size_t n = strlen(TOPIC_SHARE_PREFIX);
	enum topic_err e = topic_check_filter(s, len);
	const char *slash;

	if (e != TOPIC_BAD_WILDCARD || len < n || memcmp(s, TOPIC_SHARE_PREFIX, n) != 0)
		return e;
	/* What follows GROUP, if anything, is a filter like any other. */
	if ((slash = memchr(s + n, '/', len - n)) == NULL || slash + 1 == s + len)
		return TOPIC_OK;
	return topic_check_filter(slash + 1, (size_t)(s + len - slash - 1));
}
