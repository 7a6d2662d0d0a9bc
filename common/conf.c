/* Configuration files: lines, keys, blocks and their errors (the values
 * themselves are conf_value.c's). */
#include "conf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conf_int.h"
#include "log.h"
#include "xmalloc.h"

#define CONF_LINE_MAX	4096		/* bytes in a line, without the newline */
#define SHOW_MAX	80		/* bytes of a bad key or value shown */


int
conf_error(struct conf_errors *errs, const char *fmt, ...)
{
	va_list ap;
	char *m;

	if (errs->n >= CONF_ERRORS_MAX) {
		errs->more++;
		return 1;
	}
	va_start(ap, fmt);
	if (vasprintf(&m, fmt, ap) == -1)
		fatalx("out of memory formatting a configuration error");
	va_end(ap);
	errs->msg = xreallocarray(errs->msg, errs->n + 1, sizeof(*errs->msg));
	errs->msg[errs->n++] = m;
	return 1;
}

void
conf_note(struct conf_errors *errs, const char *fmt, ...)
{
	va_list ap;
	char *m;

	if (errs->nnotes >= CONF_ERRORS_MAX)
		return;
	va_start(ap, fmt);
	if (vasprintf(&m, fmt, ap) == -1)
		fatalx("out of memory formatting a configuration warning");
	va_end(ap);
	errs->notes = xreallocarray(errs->notes, errs->nnotes + 1, sizeof(*errs->notes));
	errs->notes[errs->nnotes++] = m;
}

void
conf_error_file(struct conf_errors *errs, const char *file)
{
	for (size_t i = 0; i < errs->nfiles; i++)
		if (strcmp(errs->files[i], file) == 0)
			return;
	errs->files = xreallocarray(errs->files, errs->nfiles + 1, sizeof(*errs->files));
	errs->files[errs->nfiles++] = xstrdup(file);
}

void
conf_parser_error(struct parser *p, const char *file)
{
	p->nerr++;
	conf_error_file(p->errs, file);
}

/* Cut at SHOW_MAX bytes. */
char *
conf_show(const char *s)
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
	sv = conf_show(v);
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
		sk = conf_show(key);
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

	conf_parser_error(p, p->name);
	xasprintf(&pos, "%s:%zu", p->name, p->lineno);
	if (k == NULL) {
		sk = conf_show(key);
		conf_error(p->errs, "%s: unknown key '%s'", pos, sk);
		free(sk);
	} else
		value_error(p->errs, pos, k, v, why);
	free(pos);
}

/* "FILE:LINE" of the line being read, malloc'd. */
static char *
line_where(const struct parser *p)
{
	char *w;

	xasprintf(&w, "%s:%zu", p->name, p->lineno);
	return w;
}

/* Sets key k of obj from a line; seen is the table's "met in this parse"
 * (a list's first occurrence replaces its default; another key's second
 * replaces its first, with a warning).  0, or -1 with the error
 * reported. */
static int
set_from_line(struct parser *p, const struct conf_key *tab, bool *seen,
    const struct conf_key *k, void *obj, const char *v)
{
	struct conf_list *l = conf_field(k, obj);
	char *why = NULL;

	if (*v != '\0') {
		bool again = k->type != CONF_LIST && seen[k - tab];

		if (k->type == CONF_LIST && !seen[k - tab])
			conf_list_free(l);
		if (conf_apply(k, obj, v, &why) == 0) {
			seen[k - tab] = true;
			if (k->type == CONF_LIST)
				l->where[l->n - 1] = line_where(p);
			if (again)
				conf_note(p->errs, "%s:%zu: %s given again: this line replaces the "
				    "one before", p->name, p->lineno, k->name);
			return 0;
		}
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

/* Sets key to v where the line stands: in its block (the block's keys
 * come first), or in the main structure.  False if there is no such
 * key there. */
static bool
set_key(struct parser *p, const char *key, const char *v)
{
	const struct conf_key *k;

	if (p->cur != NULL && (k = conf_find(p->cur->keys + 1, key)) != NULL) {
		(void)set_from_line(p, p->cur->keys, p->cur_seen, k, p->cur_obj, v);
		return true;
	}
	if ((k = conf_find(p->tab, key)) != NULL) {
		if (set_from_line(p, p->tab, p->seen, k, p->obj, v) == 0 && p->given != NULL) {
			free(p->given[k - p->tab]);
			p->given[k - p->tab] = line_where(p);
		}
		return true;
	}
	return false;
}

/* The name of a foreign key, or a prefix of it ("bridge_*"). */
static bool
foreign_name(const char *name, const char *key)
{
	size_t n = strlen(name);

	if (n > 0 && name[n - 1] == '*')
		return strncmp(name, key, n - 1) == 0;
	return strcmp(name, key) == 0;
}

static const struct conf_foreign *
foreign_key(const struct parser *p, const char *key)
{
	for (const struct conf_foreign *f = p->syn->foreign; f != NULL && f->name != NULL; f++)
		if (foreign_name(f->name, key))
			return f;
	return NULL;
}

/* Is v the accepted value a (a boolean as a boolean)? */
static bool
accepted(const char *a, const char *v)
{
	static const char *yes[] = { "true", "yes", "on", "1" }, *no[] = { "false", "no", "off", "0" };
	int av = -1, vv = -1;

	if (strcmp(a, "*") == 0 || strcmp(a, v) == 0)
		return true;
	for (size_t i = 0; i < 4; i++) {
		av = strcasecmp(a, yes[i]) == 0 ? 1 : strcasecmp(a, no[i]) == 0 ? 0 : av;
		vv = strcasecmp(v, yes[i]) == 0 ? 1 : strcasecmp(v, no[i]) == 0 ? 0 : vv;
	}
	return av != -1 && av == vv;
}

/* Another program's key f (key, as the file names it, shown): as its
 * alias, taken, or an error. */
static void
foreign_line(struct parser *p, const struct conf_foreign *f, const char *key, const char *v)
{
	const struct conf_block *bl;
	char *sv;

	if (f->alias != NULL && set_key(p, f->alias, v))
		return;
	if (f->accepted != NULL && *v != '\0' && accepted(f->accepted, v))
		return;
	conf_parser_error(p, p->name);
	if (f->alias != NULL && (bl = block_with_key(p, f->alias)) != NULL) {
		conf_error(p->errs, "%s:%zu: '%s' is %s's name of '%s', which belongs in a %s"
		    " block: put it after a '%s' line", p->name, p->lineno, key,
		    p->syn->foreign_of, f->alias, bl->keys[0].name, bl->keys[0].name);
		return;
	}
	if (f->hint == NULL) {		/* any value is taken, or an alias: none */
		conf_error(p->errs, "%s:%zu: missing value for key '%s'", p->name, p->lineno,
		    key);
		return;
	}
	sv = conf_show(v);
	/* The value when it is what is refused. */
	conf_error(p->errs, "%s:%zu: '%s%s%s' is %s's: %s", p->name, p->lineno, key,
	    f->accepted != NULL && *v != '\0' ? " " : "", f->accepted != NULL ? sv : "",
	    p->syn->foreign_of, f->hint);
	free(sv);
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
	const struct conf_foreign *f;
	const struct conf_block *bl;
	char *key, *v;

	split_line(line, &key, &v);
	if (*key == '\0' || *key == '#')
		return;
	if ((bl = block_opened_by(p, key)) != NULL) {
		open_block(p, bl, v);
		return;
	}
	if (set_key(p, key, v))
		return;
	if ((bl = block_with_key(p, key)) != NULL) {
		char *sk = conf_show(key);

		conf_parser_error(p, p->name);
		conf_error(p->errs, "%s:%zu: key '%s' belongs in a %s block: put it after a"
		    " '%s' line", p->name, p->lineno, sk, bl->keys[0].name, bl->keys[0].name);
		free(sk);
		return;
	}
	if (strcmp(key, "include_dir") == 0 && p->files) {
		conf_include_dir(p, v);
		return;
	}
	if ((f = foreign_key(p, key)) != NULL) {
		char *sk = conf_show(key);	/* a prefix's key is the file's */

		foreign_line(p, f, sk, v);
		free(sk);
		return;
	}
	line_error(p, NULL, key, v, NULL);
}

void
conf_parse_text(struct parser *p, const char *buf, size_t len)
{
	char line[CONF_LINE_MAX + 1];
	size_t off = 0, n;
	const char *nl;

	if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
		off = 3;	/* a UTF-8 byte order mark */
	while (off < len) {
		p->lineno++;
		nl = memchr(buf + off, '\n', len - off);
		n = nl != NULL ? (size_t)(nl - (buf + off)) : len - off;
		if (n > CONF_LINE_MAX) {
			conf_error(p->errs, "%s:%zu: line too long (more than %d bytes)",
			    p->name, p->lineno, CONF_LINE_MAX);
			conf_parser_error(p, p->name);
		} else if (memchr(buf + off, '\0', n) != NULL) {
			conf_error(p->errs, "%s:%zu: NUL byte in line", p->name, p->lineno);
			conf_parser_error(p, p->name);
		} else {
			memcpy(line, buf + off, n);
			line[n] = '\0';
			parse_line(p, line);
		}
		off += n + 1;
	}
}

void
conf_parser_init(struct parser *p, const struct conf_syntax *syn, void *obj,
    const char *name, char **given, struct conf_errors *errs)
{
	memset(p, 0, sizeof(*p));
	p->syn = syn;
	p->tab = syn->keys;
	p->blocks = syn->blocks;
	p->obj = obj;
	p->name = name;
	p->errs = errs;
	p->given = given;
	p->seen = xcalloc(table_len(syn->keys) + 1, sizeof(*p->seen));
}

int
conf_parser_done(struct parser *p)
{
	free(p->seen);
	free(p->cur_seen);
	return p->nerr;
}

int
conf_parse_syntax_buf(const struct conf_syntax *syn, void *obj, const char *name,
    const char *buf, size_t len, char **given, struct conf_errors *errs)
{
	struct parser p;

	conf_parser_init(&p, syn, obj, name, given, errs);
	conf_parse_text(&p, buf, len);
	return conf_parser_done(&p);
}

int
conf_parse_buf(const struct conf_key *tab, void *obj, const char *name,
    const char *buf, size_t len, struct conf_errors *errs)
{
	const struct conf_syntax syn = { .keys = tab };

	return conf_parse_syntax_buf(&syn, obj, name, buf, len, NULL, errs);
}

void
conf_given_free(char **given, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(given[i]);
		given[i] = NULL;
	}
}

void
conf_errors_free(struct conf_errors *errs)
{
	for (size_t i = 0; i < errs->n; i++)
		free(errs->msg[i]);
	free(errs->msg);
	for (size_t i = 0; i < errs->nfiles; i++)
		free(errs->files[i]);
	free(errs->files);
	for (size_t i = 0; i < errs->nnotes; i++)
		free(errs->notes[i]);
	free(errs->notes);
	errs->notes = NULL;
	errs->nnotes = 0;
	errs->msg = NULL;
	errs->n = 0;
	errs->more = 0;
	errs->files = NULL;
	errs->nfiles = 0;
}
