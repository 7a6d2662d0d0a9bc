/* Configuration files: lines, keys, blocks and their errors (the values
 * themselves are conf_value.c's). */
#include "conf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf_int.h"
#include "log.h"
#include "xmalloc.h"

#define CONF_LINE_MAX	4096		/* bytes in a line, without the newline */
#define CONF_FILE_MAX	(16 << 20)	/* a configuration file is small */
#define SHOW_MAX	80		/* bytes of a bad key or value shown */

struct parser {
	const struct conf_key   *tab;
	const struct conf_block *blocks;	/* NULL: none */
	void                    *obj;
	const char              *name;
	size_t                   lineno;
	struct conf_errors      *errs;
	int                      nerr;
	bool                    *seen;		/* per key of tab: met in this parse */
	bool                    *given;		/* the caller's, or NULL */
	/* The block the lines are in, or NULL. */
	const struct conf_block *cur;
	void                    *cur_obj;
	bool                    *cur_seen;	/* per key of cur->keys */
};

int
conf_error(struct conf_errors *errs, const char *fmt, ...)
{
	va_list ap;
	char *m;

	va_start(ap, fmt);
	if (vasprintf(&m, fmt, ap) == -1)
		fatalx("out of memory formatting a configuration error");
	va_end(ap);
	errs->msg = xreallocarray(errs->msg, errs->n + 1, sizeof(*errs->msg));
	errs->msg[errs->n++] = m;
	return 1;
}

/* A key or value as shown in a message: control bytes as \xNN, cut at
 * SHOW_MAX bytes.  Returns a malloc'd string. */
static char *
show(const char *s)
{
	size_t len = strlen(s), o = 0, i;
	char *out = xmalloc(SHOW_MAX * 4 + 4);

	for (i = 0; i < len && i < SHOW_MAX; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			o += (size_t)sprintf(out + o, "\\x%02x", c);
		else
			out[o++] = (char)c;
	}
	if (i < len)
		o += (size_t)sprintf(out + o, "...");
	out[o] = '\0';
	return out;
}

/* Adds the error for a value that conf_apply() refused, or for a key with no
 * value; prefix is "FILE:LINE" or the origin of conf_set(). */
static void
value_error(struct conf_errors *errs, const char *prefix,
    const struct conf_key *k, const char *v, const char *why)
{
	char *sv;

	if (v == NULL || *v == '\0') {
		conf_error(errs, "%s: missing value for key '%s'", prefix, k->name);
		return;
	}
	sv = show(v);
	conf_error(errs, "%s: bad value '%s' for key '%s': %s", prefix, sv,
	    k->name, why);
	free(sv);
}

int
conf_set(const struct conf_key *tab, void *obj, const char *key,
    const char *value, const char *origin, struct conf_errors *errs)
{
	const struct conf_key *k = conf_find(tab, key);
	char *why, *sk;

	if (k == NULL) {
		sk = show(key);
		conf_error(errs, "%s: unknown key '%s'", origin, sk);
		free(sk);
		return -1;
	}
	if (value == NULL || *value == '\0') {
		value_error(errs, origin, k, value, NULL);
		return -1;
	}
	if (conf_apply(k, obj, value, &why) == -1) {
		value_error(errs, origin, k, value, why);
		free(why);
		return -1;
	}
	return 0;
}

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static size_t
table_len(const struct conf_key *tab)
{
	size_t n = 0;

	while (tab[n].name != NULL)
		n++;
	return n;
}

/* The error of a line: an unknown key (k NULL), or a bad or missing
 * value. */
static void
line_error(struct parser *p, const struct conf_key *k, const char *key,
    const char *v, const char *why)
{
	char *pos, *sk;

	p->nerr++;
	xasprintf(&pos, "%s:%zu", p->name, p->lineno);
	if (k == NULL) {
		sk = show(key);
		conf_error(p->errs, "%s: unknown key '%s'", pos, sk);
		free(sk);
	} else
		value_error(p->errs, pos, k, v, why);
	free(pos);
}

/* Sets key k of obj from a line; seen is the table's "met in this parse"
 * (a list's first occurrence replaces its default).  0, or -1 with the
 * error reported. */
static int
set_from_line(struct parser *p, const struct conf_key *tab, bool *seen,
    const struct conf_key *k, void *obj, const char *v)
{
	char *why = NULL;

	if (*v != '\0') {
		if (k->type == CONF_LIST && !seen[k - tab])
			conf_list_free(conf_field(k, obj));
		seen[k - tab] = true;
		if (conf_apply(k, obj, v, &why) == 0)
			return 0;
	}
	line_error(p, k, k->name, v, why);
	free(why);
	return -1;
}

static const struct conf_block *
block_opened_by(const struct parser *p, const char *key)
{
	if (p->blocks == NULL)
		return NULL;
	for (const struct conf_block *bl = p->blocks; bl->keys != NULL; bl++)
		if (strcmp(bl->keys[0].name, key) == 0)
			return bl;
	return NULL;
}

/* The block whose table has key (other than as its opening key). */
static const struct conf_block *
block_with_key(const struct parser *p, const char *key)
{
	if (p->blocks == NULL)
		return NULL;
	for (const struct conf_block *bl = p->blocks; bl->keys != NULL; bl++)
		if (conf_find(bl->keys + 1, key) != NULL)
			return bl;
	return NULL;
}

/* A line that opens a block: a new one, at its defaults, which the lines
 * after it fill.  It is opened even when its value is bad, so that its
 * keys are not reported as out of place as well. */
static void
open_block(struct parser *p, const struct conf_block *bl, const char *v)
{
	struct conf_blocks *list = (struct conf_blocks *)((char *)p->obj + bl->offset);
	void *b = xcalloc(1, bl->size);

	conf_defaults(bl->keys, b);
	xasprintf((char **)((char *)b + bl->where), "%s:%zu", p->name, p->lineno);
	list->v = xreallocarray(list->v, list->n + 1, sizeof(*list->v));
	list->v[list->n++] = b;
	free(p->cur_seen);
	p->cur = bl;
	p->cur_obj = b;
	p->cur_seen = xcalloc(table_len(bl->keys) + 1, sizeof(*p->cur_seen));
	(void)set_from_line(p, bl->keys, p->cur_seen, &bl->keys[0], b, v);
}

/* Splits a line into its key and value (both in place). */
static void
split_line(char *line, char **keyp, char **vp)
{
	char *key, *v, *end;

	for (key = line; is_blank(*key); key++)
		;
	for (v = key; *v != '\0' && !is_blank(*v); v++)
		;
	if (*v != '\0')
		*v++ = '\0';
	for (; is_blank(*v); v++)
		;
	for (end = v + strlen(v); end > v && is_blank(end[-1]); end--)
		;
	*end = '\0';
	*keyp = key;
	*vp = v;
}

/*
 * One line, NUL-terminated, without its newline.  The value is the rest
 * of the line after the key and its blanks, trailing blanks removed: a
 * '#' in it is part of the value.  In a block, the block's keys come
 * first, then the main table's.
 */
static void
parse_line(struct parser *p, char *line)
{
	const struct conf_block *bl;
	const struct conf_key *k;
	char *key, *v;

	split_line(line, &key, &v);
	if (*key == '\0' || *key == '#')
		return;
	if ((bl = block_opened_by(p, key)) != NULL) {
		open_block(p, bl, v);
		return;
	}
	if (p->cur != NULL && (k = conf_find(p->cur->keys + 1, key)) != NULL) {
		(void)set_from_line(p, p->cur->keys, p->cur_seen, k, p->cur_obj, v);
		return;
	}
	if ((k = conf_find(p->tab, key)) != NULL) {
		if (set_from_line(p, p->tab, p->seen, k, p->obj, v) == 0 && p->given != NULL)
			p->given[k - p->tab] = true;
		return;
	}
	if ((bl = block_with_key(p, key)) != NULL) {
		char *sk = show(key);

		p->nerr++;
		conf_error(p->errs, "%s:%zu: key '%s' belongs in a %s block: put it after a"
		    " '%s' line", p->name, p->lineno, sk, bl->keys[0].name, bl->keys[0].name);
		free(sk);
		return;
	}
	line_error(p, NULL, key, v, NULL);
}

int
conf_parse_syntax_buf(const struct conf_syntax *syn, void *obj, const char *name,
    const char *buf, size_t len, bool *given, struct conf_errors *errs)
{
	struct parser p = { .tab = syn->keys, .blocks = syn->blocks, .obj = obj,
			    .name = name, .errs = errs, .given = given };
	char line[CONF_LINE_MAX + 1];
	size_t off = 0, n;
	const char *nl;

	p.seen = xcalloc(table_len(syn->keys) + 1, sizeof(*p.seen));
	if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
		off = 3;	/* a UTF-8 byte order mark */
	while (off < len) {
		p.lineno++;
		nl = memchr(buf + off, '\n', len - off);
		n = nl != NULL ? (size_t)(nl - (buf + off)) : len - off;
		if (n > CONF_LINE_MAX) {
			conf_error(errs, "%s:%zu: line too long (more than %d bytes)",
			    name, p.lineno, CONF_LINE_MAX);
			p.nerr++;
		} else if (memchr(buf + off, '\0', n) != NULL) {
			conf_error(errs, "%s:%zu: NUL byte in line", name, p.lineno);
			p.nerr++;
		} else {
			memcpy(line, buf + off, n);
			line[n] = '\0';
			parse_line(&p, line);
		}
		off += n + 1;
	}
	free(p.seen);
	free(p.cur_seen);
	return p.nerr;
}

int
conf_parse_buf(const struct conf_key *tab, void *obj, const char *name,
    const char *buf, size_t len, struct conf_errors *errs)
{
	const struct conf_syntax syn = { tab, NULL };

	return conf_parse_syntax_buf(&syn, obj, name, buf, len, NULL, errs);
}

/* Reads a whole file.  Returns 0, or -1 with an error added. */
static int
read_file(const char *path, char **bufp, size_t *lenp, struct conf_errors *errs)
{
	size_t len = 0, cap = 4096;
	char *buf;
	ssize_t r;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		conf_error(errs, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	buf = xmalloc(cap);
	for (;;) {
		if (len == cap)
			buf = xrealloc(buf, cap *= 2);
		if ((r = read(fd, buf + len, cap - len)) == -1 && errno == EINTR)
			continue;
		if (r <= 0 || (len += (size_t)r) > CONF_FILE_MAX)
			break;
	}
	if (r == -1)
		conf_error(errs, "%s: cannot read: %s", path, strerror(errno));
	else if (r > 0)
		conf_error(errs, "%s: too large (more than %d bytes)", path,
		    CONF_FILE_MAX);
	if (close(fd) == -1)
		log_warn("close %s", path);
	if (r != 0) {
		free(buf);
		return -1;
	}
	*bufp = buf;
	*lenp = len;
	return 0;
}

int
conf_parse_syntax_file(const struct conf_syntax *syn, void *obj, const char *path,
    bool *given, struct conf_errors *errs)
{
	char *buf;
	size_t len;
	int n;

	if (read_file(path, &buf, &len, errs) == -1)
		return 1;
	n = conf_parse_syntax_buf(syn, obj, path, buf, len, given, errs);
	free(buf);
	return n;
}

int
conf_parse_file(const struct conf_key *tab, void *obj, const char *path,
    struct conf_errors *errs)
{
	const struct conf_syntax syn = { tab, NULL };

	return conf_parse_syntax_file(&syn, obj, path, NULL, errs);
}

void
conf_errors_free(struct conf_errors *errs)
{
	for (size_t i = 0; i < errs->n; i++)
		free(errs->msg[i]);
	free(errs->msg);
	errs->msg = NULL;
	errs->n = 0;
}
