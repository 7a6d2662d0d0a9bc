/* The values of configuration keys: one parsed into its field, the
 * defaults, and comparing, copying and freeing what a table describes. */
#include "conf.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf_int.h"
#include "log.h"
#include "xmalloc.h"

void *
conf_field(const struct conf_key *k, void *obj)
{
	return (char *)obj + k->offset;
}

static const void *
cfield(const struct conf_key *k, const void *obj)
{
	return (const char *)obj + k->offset;
}

static uint64_t
to_u64(double d)
{
	if (!(d > 0))
		return 0;
	if (d >= 18446744073709551616.0)
		return UINT64_MAX;
	return (uint64_t)(d + 0.5);
}

/* The bounds of a numeric key in its stored unit; scale converts from the
 * unit written (seconds for CONF_MSEC).  min == max == 0: the type's. */
static void
bounds(const struct conf_key *k, uint64_t type_max, double scale,
    uint64_t *lo, uint64_t *hi)
{
	*lo = 0;
	*hi = type_max;
	if (k->min == 0 && k->max == 0)
		return;
	*lo = to_u64(k->min * scale);
	*hi = to_u64(k->max * scale);
	if (*hi > type_max)
		*hi = type_max;
}

/* Milliseconds written as seconds: "2", "0.25", "1.5". */
static void
fmt_sec(char *buf, size_t size, uint64_t ms)
{
	int n = snprintf(buf, size, "%llu.%03u", (unsigned long long)(ms / 1000),
	    (unsigned)(ms % 1000));

	while (n > 0 && buf[n - 1] == '0')
		buf[--n] = '\0';
	if (n > 0 && buf[n - 1] == '.')
		buf[--n] = '\0';
}

/* Decimal digits, at least one, no overflow; *end is the first other byte. */
static int
parse_digits(const char *s, uint64_t *out, const char **end)
{
	uint64_t v = 0;
	const char *p;

	for (p = s; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	*end = p;
	return p == s ? -1 : 0;
}

static int
parse_size(const char *s, uint64_t *out)
{
	const char *end;
	uint64_t v;
	unsigned shift = 0;

	if (parse_digits(s, &v, &end) == -1)
		return -1;
	if (*end != '\0') {
		const char *suf = strchr("kmg", *end | 0x20);

		if (suf == NULL || end[1] != '\0')
			return -1;
		shift = 10 * (unsigned)(suf - "kmg" + 1);
	}
	if (v > UINT64_MAX >> shift)
		return -1;
	*out = v << shift;
	return 0;
}

/* Seconds, with at most three decimals that are not zero. */
static int
parse_msec(const char *s, uint64_t *out)
{
	const char *end;
	uint64_t sec, frac = 0;
	int digits = 0;

	if (parse_digits(s, &sec, &end) == -1)
		return -1;
	if (*end == '.') {
		if (end[1] < '0' || end[1] > '9')
			return -1;
		for (end++; *end >= '0' && *end <= '9'; end++, digits++) {
			if (digits < 3)
				frac = frac * 10 + (uint64_t)(*end - '0');
			else if (*end != '0')
				return -1;
		}
		for (; digits < 3; digits++)
			frac *= 10;
	}
	if (*end != '\0' || sec > (UINT64_MAX - frac) / 1000)
		return -1;
	*out = sec * 1000 + frac;
	return 0;
}

static int
parse_bool(const char *s, uint64_t *out)
{
	static const struct {
		const char *word;
		bool        value;
	} words[] = {
		{ "true", true }, { "yes", true }, { "on", true }, { "1", true },
		{ "false", false }, { "no", false }, { "off", false }, { "0", false },
	};

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcasecmp(s, words[i].word) == 0) {
			*out = words[i].value;
			return 0;
		}
	return -1;
}

/*
 * Parses v for a key that is not a string or a list.  Returns 0, or -1
 * with *why set to a malloc'd "expected ..." text.
 */
static int
parse_scalar(const struct conf_key *k, const char *v, uint64_t *n, char **why)
{
	uint64_t lo, hi;
	const char *end;
	char a[32], b[32];

	switch (k->type) {
	case CONF_BOOL:
		if (parse_bool(v, n) == 0)
			return 0;
		*why = xstrdup("expected true, false, yes, no, on, off, 1 or 0");
		return -1;
	case CONF_UINT:
	case CONF_PORT:
		bounds(k, k->type == CONF_PORT ? 65535 : UINT_MAX, 1, &lo, &hi);
		if (parse_digits(v, n, &end) == 0 && *end == '\0' &&
		    *n >= lo && *n <= hi)
			return 0;
		xasprintf(why, "expected a %s between %llu and %llu",
		    k->type == CONF_PORT ? "port number" : "number",
		    (unsigned long long)lo, (unsigned long long)hi);
		return -1;
	case CONF_SIZE:
		bounds(k, UINT64_MAX, 1, &lo, &hi);
		if (parse_size(v, n) == 0 && *n >= lo && *n <= hi)
			return 0;
		xasprintf(why, "expected a size in bytes between %llu and %llu"
		    " (suffix k, m or g allowed)",
		    (unsigned long long)lo, (unsigned long long)hi);
		return -1;
	case CONF_MSEC:
		bounds(k, UINT64_MAX, 1000, &lo, &hi);
		if (parse_msec(v, n) == 0 && *n >= lo && *n <= hi)
			return 0;
		fmt_sec(a, sizeof(a), lo);
		fmt_sec(b, sizeof(b), hi);
		xasprintf(why, "expected a number of seconds between %s and %s"
		    " (at most 3 decimals)", a, b);
		return -1;
	default:
		fatalx("configuration key %s: not a scalar", k->name);
	}
}

/* Stores v into obj's field for k.  Returns 0, or -1 with *why set. */
int
conf_apply(const struct conf_key *k, void *obj, const char *v, char **why)
{
	void *f = conf_field(k, obj);
	struct conf_list *l = f;
	uint64_t n;

	if (k->check != NULL && (k->type == CONF_STRING || k->type == CONF_LIST)) {
		const char *bad = k->check(v);

		if (bad != NULL) {
			*why = xstrdup(bad);
			return -1;
		}
	}
	switch (k->type) {
	case CONF_STRING:
		free(*(char **)f);
		*(char **)f = xstrdup(v);
		return 0;
	case CONF_LIST:
		l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
		l->where = xreallocarray(l->where, l->n + 1, sizeof(*l->where));
		l->where[l->n] = NULL;		/* the parser says where */
		l->v[l->n++] = xstrdup(v);
		return 0;
	default:
		if (parse_scalar(k, v, &n, why) == -1)
			return -1;
		if (k->type == CONF_BOOL)
			*(bool *)f = n != 0;
		else if (k->type == CONF_UINT || k->type == CONF_PORT)
			*(unsigned *)f = (unsigned)n;
		else
			*(uint64_t *)f = n;
		return 0;
	}
}

void
conf_list_free(struct conf_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i]);
		free(l->where[i]);
	}
	free(l->v);
	free(l->where);
	l->v = NULL;
	l->where = NULL;
	l->n = 0;
}

/* The size of a key's field. */
static size_t
type_size(enum conf_type t)
{
	switch (t) {
	case CONF_BOOL:
		return sizeof(bool);
	case CONF_UINT:
	case CONF_PORT:
		return sizeof(unsigned);
	case CONF_SIZE:
	case CONF_MSEC:
		return sizeof(uint64_t);
	case CONF_STRING:
		return sizeof(char *);
	case CONF_LIST:
		return sizeof(struct conf_list);
	}
	fatalx("unknown configuration type %d", (int)t);
}

void
conf_defaults(const struct conf_key *tab, void *obj)
{
	char *why;

	for (const struct conf_key *k = tab; k->name != NULL; k++) {
		/* Zero, NULL or an empty list, whatever it held. */
		memset(conf_field(k, obj), 0, type_size(k->type));
		if (k->def != NULL && conf_apply(k, obj, k->def, &why) == -1)
			fatalx("configuration key %s: bad default '%s': %s",
			    k->name, k->def, why);
	}
}

const struct conf_key *
conf_find(const struct conf_key *tab, const char *key)
{
	for (; tab->name != NULL; tab++)
		if (strcmp(tab->name, key) == 0)
			return tab;
	return NULL;
}

static bool
str_differs(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a != b;
	return strcmp(a, b) != 0;
}

bool
conf_differs(const struct conf_key *k, const void *a, const void *b)
{
	const void *fa = cfield(k, a), *fb = cfield(k, b);
	const struct conf_list *la = fa, *lb = fb;

	switch (k->type) {
	case CONF_STRING:
		return str_differs(*(char *const *)fa, *(char *const *)fb);
	case CONF_LIST:
		if (la->n != lb->n)
			return true;
		for (size_t i = 0; i < la->n; i++)
			if (str_differs(la->v[i], lb->v[i]))
				return true;
		return false;
	default:
		return memcmp(fa, fb, type_size(k->type)) != 0;
	}
}

void
conf_copy(const struct conf_key *tab, void *dst, const void *src)
{
	for (const struct conf_key *k = tab; k->name != NULL; k++) {
		void *d = conf_field(k, dst);
		const void *s = cfield(k, src);
		const struct conf_list *ls = s;
		struct conf_list *ld = d;

		switch (k->type) {
		case CONF_STRING:
			*(char **)d = *(char *const *)s == NULL ? NULL :
			    xstrdup(*(char *const *)s);
			break;
		case CONF_LIST:
			ld->v = NULL;
			ld->where = NULL;
			ld->n = 0;
			for (size_t i = 0; i < ls->n; i++) {
				ld->v = xreallocarray(ld->v, i + 1, sizeof(*ld->v));
				ld->where = xreallocarray(ld->where, i + 1, sizeof(*ld->where));
				ld->where[i] = ls->where[i] != NULL ? xstrdup(ls->where[i]) : NULL;
				ld->v[ld->n++] = xstrdup(ls->v[i]);
			}
			break;
		default:
			memcpy(d, s, type_size(k->type));
			break;
		}
	}
}

void
conf_free(const struct conf_key *tab, void *obj)
{
	for (const struct conf_key *k = tab; k->name != NULL; k++) {
		if (k->type == CONF_STRING) {
			free(*(char **)conf_field(k, obj));
			*(char **)conf_field(k, obj) = NULL;
		} else if (k->type == CONF_LIST)
			conf_list_free(conf_field(k, obj));
	}
}

void
conf_blocks_free(const struct conf_block *blocks, void *obj)
{
	for (const struct conf_block *bl = blocks; bl->keys != NULL; bl++) {
		struct conf_blocks *list = (struct conf_blocks *)((char *)obj + bl->offset);

		for (size_t i = 0; i < list->n; i++) {
			conf_free(bl->keys, list->v[i]);
			free(*(char **)((char *)list->v[i] + bl->where));
			free(list->v[i]);
		}
		free(list->v);
		list->v = NULL;
		list->n = 0;
	}
}
