/* Table-driven configuration files: `key value` lines, `#` comments.
 *
 * A table of struct conf_key names every key, its type, where it lives in
 * the caller's structure, its default and bounds, and whether a reload may
 * change it.  One parser walks the table; every error is reported as
 * "FILE:LINE: message" and parsing goes on, so that all errors are shown
 * at once.  A repeated key: the last one wins, except for lists. */
#ifndef COMMON_CONF_H
#define COMMON_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum conf_type {
	CONF_BOOL,	/* bool: true/false, yes/no, on/off, 1/0 */
	CONF_UINT,	/* unsigned: decimal, within [min, max] */
	CONF_PORT,	/* unsigned: 0..65535 (0 disables a listener) */
	CONF_SIZE,	/* uint64_t: bytes, suffix k, m, g (powers of 1024) */
	CONF_MSEC,	/* uint64_t milliseconds, written in seconds, fractions allowed */
	CONF_STRING,	/* char *, malloc'd */
	CONF_LIST,	/* struct conf_list: every occurrence appends */
};

struct conf_list {
	char   **v;
	size_t   n;
};

struct conf_key {
	const char     *name;
	enum conf_type  type;
	size_t          offset;		/* offsetof() into the caller's structure */
	const char     *def;		/* default, as written in a file; NULL for none */
	double          min, max;	/* bounds for numbers (in the unit written) */
	bool            reloadable;	/* SIGHUP may change it */
	const char     *help;		/* one line for broker.conf(5) and the example file */
};

struct conf_errors {
	char   **msg;			/* "FILE:LINE: message" */
	size_t   n;
};

/* Sets every key to its default.  Returns 0 (a bad default is a bug: fatal). */
void conf_defaults(const struct conf_key *tab, void *obj);
/* Parses a file over obj.  Returns the number of errors added to errs. */
int  conf_parse_file(const struct conf_key *tab, void *obj, const char *path,
		     struct conf_errors *errs);
/* The same on a buffer; name is used in messages. */
int  conf_parse_buf(const struct conf_key *tab, void *obj, const char *name,
		    const char *buf, size_t len, struct conf_errors *errs);
/* Sets one key (command-line overrides).  0, or -1 with a message in errs
 * prefixed by origin. */
int  conf_set(const struct conf_key *tab, void *obj, const char *key,
	      const char *value, const char *origin, struct conf_errors *errs);
const struct conf_key *conf_find(const struct conf_key *tab, const char *key);
/* Whether two objects differ in a key's value. */
bool conf_differs(const struct conf_key *k, const void *a, const void *b);
/* Copies obj's strings and lists so that dst owns its own. */
void conf_copy(const struct conf_key *tab, void *dst, const void *src);
/* Frees strings and lists. */
void conf_free(const struct conf_key *tab, void *obj);
void conf_errors_free(struct conf_errors *errs);

#endif
