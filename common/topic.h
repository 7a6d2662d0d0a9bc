/* Topic names and filters (MQTT rules, shared by both protocols) and the
 * mapping of a topic name to a safe file name. */
#ifndef COMMON_TOPIC_H
#define COMMON_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

/* Topic names and filters have at most this many bytes (MQTT allows
 * 65535): a store key holds a filter and a session's name together, and
 * has at most 65535 bytes. */
#define TOPIC_MAX_LEN 32767

enum topic_err {
	TOPIC_OK = 0,
	TOPIC_EMPTY,		/* zero length */
	TOPIC_TOO_LONG,		/* over TOPIC_MAX_LEN bytes */
	TOPIC_BAD_UTF8,		/* not well-formed UTF-8 (or a surrogate, or overlong) */
	TOPIC_NUL,		/* contains U+0000 */
	TOPIC_WILDCARD,		/* + or # in a topic name (publish) */
	TOPIC_BAD_WILDCARD,	/* + or # misplaced in a filter */
	TOPIC_TOO_MANY_LEVELS,	/* more levels than allowed (topic_check_levels) */
};

/* A topic name one can publish to. */
enum topic_err topic_check_name(const char *s, size_t len);
/* A subscription filter (may contain + and #, each alone in its level,
 * # only last). */
enum topic_err topic_check_filter(const char *s, size_t len);
/* The number of levels of a name or filter: its '/' separators plus one
 * ("a" has 1, "a/b" and "/" have 2).  A topic of TOPIC_MAX_LEN bytes has
 * at most TOPIC_MAX_LEN + 1 levels. */
size_t topic_levels(const char *s, size_t len);
/* TOPIC_TOO_MANY_LEVELS if s has more than max levels (max 0: no limit),
 * else TOPIC_OK.  Separate from the checks above because the limit is a
 * setting (max_topic_levels), not a rule of the protocol. */
enum topic_err topic_check_levels(const char *s, size_t len, size_t max);
/* Human-readable reason ("empty topic", ...). */
const char *topic_strerror(enum topic_err e);
/* Well-formed UTF-8, no surrogates, no overlong forms (MQTT 1.5.3). */
bool utf8_valid(const void *s, size_t len);
/* The length of the longest well-formed prefix of s: where to cut a
 * UTF-8 string to at most len bytes without splitting a character. */
size_t utf8_prefix(const void *s, size_t len);

/* Does the name match the filter?  A filter starting with + or # does not
 * match a name starting with '$' (MQTT 4.7.2). */
bool topic_matches(const char *filter, const char *name);

/* A shared subscription "$share/GROUP/FILTER" (MQTT 4.8.2): 1, with
 * *filter (if not NULL) pointing to FILTER in s; 0 for a filter that is
 * not one; -1 for one that starts with "$share/" and is malformed (an
 * empty GROUP, a GROUP with + or #, no FILTER). */
#define TOPIC_SHARE_PREFIX "$share/"
int topic_share_split(const char *s, const char **filter);
/* A filter a client subscribes to: as topic_check_filter, except that
 * GROUP in "$share/GROUP/..." is a name, not a level of the filter: a
 * wildcard there makes a malformed share (topic_share_split's -1), which
 * is answered as one, not a misplaced wildcard. */
enum topic_err topic_check_sub_filter(const char *s, size_t len);

/* The file-name stem for a valid topic name: bytes [A-Za-z0-9_-] and '.'
 * (not leading) stay, everything else is %XX (upper-case hex), so a stem
 * is one path component and never "." or "..".  A stem longer than
 * TOPIC_FILE_MAX is cut (never inside a %XX) and ends with '~' and 16 hex
 * digits of a 64-bit FNV-1a hash of the whole name, so every topic maps to
 * one name of at most TOPIC_FILE_MAX bytes; two cut names can collide
 * only if their hashes do, so a store should also keep the full name.
 * Returns a malloc'd string. */
#define TOPIC_FILE_MAX 200
char *topic_file_name(const char *topic);
/* The reverse of the escaping, for stems that were not cut; NULL if the
 * stem is not the escaping of a topic (or was cut). */
char *topic_from_file_name(const char *stem);

#endif
