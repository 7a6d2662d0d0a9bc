/* The access control list, in the syntax of mosquitto's acl_file:
 *
 *   # a comment
 *   topic [read|write|readwrite|deny] FILTER   for anonymous clients, until...
 *   user NAME                                  ... the rules after it are NAME's
 *   topic [read|write|readwrite|deny] FILTER
 *   pattern [read|write|readwrite|deny] FILTER for everybody; a level that is
 *                                              %u or %c is the user name or
 *                                              the client id
 *
 * The access defaults to readwrite.  A check looks at the client's own
 * list (its user's, or the anonymous one), then at the patterns; in each,
 * a matching deny wins over anything else, and a matching rule that
 * grants the access allows it.  Nothing matching: denied.  A rule that
 * does not start with '$' never applies to a topic that does.  As in
 * mosquitto 2.0, except: a line that is not understood is an error (with
 * its line number), not skipped; and a %u or %c level is not replaced by
 * a name that could widen it (empty, starting with '$', or holding '+',
 * '#' or '/'): that pattern does not apply to such a client. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/sys/tree.h>

#include "auth/auth.h"
#include "marshal.h"
#include "topic.h"
#include "xmalloc.h"

#define ACL_LINE_MAX	(TOPIC_MAX_LEN + 1024)

struct acl_rule {
	char		*filter;
	int		 access;	/* AUTH_READ | AUTH_WRITE; 0: deny */
	bool		 uses_user;	/* patterns: a level is %u */
	bool		 uses_client;	/* ... %c */
};

/* Deny rules first, then the others in the order of the file. */
struct acl_list {
	struct acl_rule	*v;
	size_t		 n;
};

struct acl_user {
	RB_ENTRY(acl_user) entry;
	char		*name;
	struct acl_list	 rules;
};
RB_HEAD(acl_users, acl_user);

struct acl {
	struct acl_list	 anonymous;
	struct acl_users users;
	struct acl_list	 patterns;
};

static int
user_cmp(struct acl_user *a, struct acl_user *b)
{
	return strcmp(a->name, b->name);
}

RB_PROTOTYPE(acl_users, acl_user, entry, user_cmp)
RB_GENERATE(acl_users, acl_user, entry, user_cmp)

/* ---------------------------------------------------------------- filters */

/* The next level of a filter: its length; *rest after its '/', or NULL
 * at the last level. */
static size_t
level(const char *f, const char **rest)
{
	const char *slash = strchr(f, '/');

	*rest = slash != NULL ? slash + 1 : NULL;
	return slash != NULL ? (size_t)(slash - f) : strlen(f);
}

static bool
level_is(const char *f, size_t n, const char *what)
{
	return n == strlen(what) && memcmp(f, what, n) == 0;
}

/* A filter starting with a wildcard matches no topic starting with '$'
 * (MQTT 4.7.2): two first levels that cannot meet for that reason. */
static bool
dollar_apart(const char *a, const char *b)
{
	bool wa = a[0] == '+' || a[0] == '#', wb = b[0] == '+' || b[0] == '#';

	return (wa && b[0] == '$') || (wb && a[0] == '$');
}

bool
filter_overlaps(const char *a, const char *b)
{
	const char *ra, *rb;
	size_t na, nb;

	if (dollar_apart(a, b))
		return false;
	for (;;) {
		na = level(a, &ra);
		nb = level(b, &rb);
		if (level_is(a, na, "#") || level_is(b, nb, "#"))
			return true;
		if (!level_is(a, na, "+") && !level_is(b, nb, "+") &&
		    (na != nb || memcmp(a, b, na) != 0))
			return false;
		if (ra == NULL || rb == NULL)
			break;
		a = ra;
		b = rb;
	}
	/* One ended: "a/#" also matches "a". */
	if (ra == NULL && rb == NULL)
		return true;
	return strcmp(ra != NULL ? ra : rb, "#") == 0;
}

bool
filter_covers(const char *outer, const char *inner)
{
	const char *ro, *ri;
	size_t no, ni;

	/* A wildcard first level does not match '$' topics. */
	if ((outer[0] == '+' || outer[0] == '#') && inner[0] == '$')
		return false;
	for (;;) {
		no = level(outer, &ro);
		ni = level(inner, &ri);
		if (level_is(outer, no, "#"))
			return true;
		if (level_is(inner, ni, "#"))
			return false;
		if (!level_is(outer, no, "+") && (no != ni || memcmp(outer, inner, no) != 0))
			return false;
		if (ro == NULL || ri == NULL)
			break;
		outer = ro;
		inner = ri;
	}
	if (ro == NULL && ri == NULL)
		return true;
	return ri == NULL && strcmp(ro, "#") == 0;	/* "a/#" covers "a" */
}

/* ---------------------------------------------------------------- checks */

/* May a name replace a %u or %c level? */
static bool
safe_name(const char *s)
{
	return s != NULL && s[0] != '\0' && s[0] != '$' && strpbrk(s, "+#/") == NULL;
}

/* The pattern with its %u and %c levels replaced; NULL if it does not
 * apply to this client. */
static char *
expand(const struct acl_rule *r, const char *user, const char *client_id)
{
	const char *f = r->filter, *rest;
	struct wbuf w;
	size_t n;

	if ((r->uses_user && !safe_name(user)) || (r->uses_client && !safe_name(client_id)))
		return NULL;
	wbuf_init(&w);
	do {
		n = level(f, &rest);
		if (level_is(f, n, "%u"))
			put_raw(&w, user, strlen(user));
		else if (level_is(f, n, "%c"))
			put_raw(&w, client_id, strlen(client_id));
		else
			put_raw(&w, f, n);
		if (rest != NULL)
			put_raw(&w, "/", 1);
	} while ((f = rest) != NULL);
	put_raw(&w, "", 1);
	return (char *)w.data;
}

/* One list's decision on a topic (subscribe false) or on a filter
 * (subscribe: a deny must cover it, a grant overlap it): 1 allowed, 0
 * denied, -1 nothing matched. */
static int
list_decide(const struct acl_list *l, bool patterns, const char *user, const char *client_id,
    const char *subject, int access, bool subscribe)
{
	for (size_t i = 0; i < l->n; i++) {
		const struct acl_rule *r = &l->v[i];
		char *f = patterns ? expand(r, user, client_id) : r->filter;
		bool hit;

		if (f == NULL)
			continue;
		if (subject[0] == '$' && f[0] != '$')
			hit = false;
		else if (r->access == 0)
			hit = subscribe ? filter_covers(f, subject) : topic_matches(f, subject);
		else
			hit = (r->access & access) != 0 && (subscribe ? filter_overlaps(f, subject) :
			    topic_matches(f, subject));
		if (patterns)
			free(f);
		if (hit)
			return r->access != 0;
	}
	return -1;
}

static const struct acl_list *
own_list(const struct acl *acl, const char *user)
{
	struct acl_user key = { .name = (char *)user }, *u;

	if (user == NULL)
		return &acl->anonymous;
	u = RB_FIND(acl_users, (struct acl_users *)&acl->users, &key);
	return u != NULL ? &u->rules : NULL;
}

static bool
decide(const struct acl *acl, const char *user, const char *client_id, const char *subject,
    int access, bool subscribe)
{
	const struct acl_list *own = own_list(acl, user);
	int d = -1;

	if (own != NULL)
		d = list_decide(own, false, user, client_id, subject, access, subscribe);
	if (d == -1)
		d = list_decide(&acl->patterns, true, user, client_id, subject, access, subscribe);
	return d == 1;
}

bool
acl_check(const struct acl *acl, const char *user, const char *client_id, const char *topic,
    int access)
{
	if (acl == NULL)
		return true;
	return decide(acl, user, client_id, topic, access, false);
}

bool
acl_check_subscribe(const struct acl *acl, const char *user, const char *client_id,
    const char *filter)
{
	if (acl == NULL)
		return true;
	return decide(acl, user, client_id, filter, AUTH_READ, true);
}

/* ---------------------------------------------------------------- parsing */

struct acl_parser {
	struct auth_text	 t;
	struct acl		*acl;
	struct acl_list		*current;	/* where topic lines go */
};

static void
list_add(struct acl_list *l, const char *filter, int access)
{
	struct acl_rule r = { .filter = xstrdup(filter), .access = access };
	const char *f = filter, *rest;
	size_t n;

	do {
		n = level(f, &rest);
		r.uses_user |= level_is(f, n, "%u");
		r.uses_client |= level_is(f, n, "%c");
	} while ((f = rest) != NULL);
	l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
	if (access == 0) {
		memmove(l->v + 1, l->v, l->n * sizeof(*l->v));
		l->v[0] = r;
	} else {
		l->v[l->n] = r;
	}
	l->n++;
}

/* The next word of *s (NUL-terminated in place); *s moves past the blanks
 * after it.  "" at the end. */
static char *
word(char **s)
{
	char *w = *s, *e = w;

	while (*e != '\0' && !auth_blank(*e))
		e++;
	*s = e;
	if (*e != '\0') {
		*e = '\0';
		for (*s = e + 1; auth_blank(**s); (*s)++)
			;
	}
	return w;
}

static int
access_word(const char *w)
{
	static const struct { const char *w; int access; } words[] = {
		{ "read", AUTH_READ }, { "write", AUTH_WRITE },
		{ "readwrite", AUTH_READ | AUTH_WRITE }, { "deny", 0 },
	};

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcmp(w, words[i].w) == 0)
			return words[i].access;
	return -1;
}

/* "topic|pattern [ACCESS] FILTER" after the keyword. */
static void
parse_rule(struct acl_parser *p, bool pattern, char *rest)
{
	const char *kw = pattern ? "pattern" : "topic";
	char *first = word(&rest), *filter = rest;
	int access = AUTH_READ | AUTH_WRITE;
	enum topic_err e;

	if (first[0] == '\0') {
		auth_text_error(&p->t, "%s without a topic filter", kw);
		return;
	}
	if (rest[0] == '\0')
		filter = first;		/* no access given: readwrite */
	else if ((access = access_word(first)) == -1) {
		auth_text_error(&p->t, "unknown access '%.64s': expected read, write, readwrite or deny",
		    first);
		return;
	}
	if ((e = topic_check_filter(filter, strlen(filter))) != TOPIC_OK) {
		auth_text_error(&p->t, "bad topic filter '%.64s': %s", filter, topic_strerror(e));
		return;
	}
	list_add(pattern ? &p->acl->patterns : p->current, filter, access);
}

static void
parse_user(struct acl_parser *p, const char *name)
{
	struct acl_user *u = xcalloc(1, sizeof(*u)), *had;

	if (name[0] == '\0') {
		auth_text_error(&p->t, "user without a name");
		free(u);
		return;
	}
	u->name = xstrdup(name);
	if ((had = RB_INSERT(acl_users, &p->acl->users, u)) != NULL) {
		free(u->name);		/* a second section: the rules add up */
		free(u);
		u = had;
	}
	p->current = &u->rules;
}

static void
parse_line(void *arg, size_t lineno, char *line, const char *why)
{
	struct acl_parser *p = arg;
	char *kw;

	p->t.line = lineno;
	if (line == NULL) {
		auth_text_error(&p->t, "%s", why);
		return;
	}
	kw = word(&line);
	if (strcmp(kw, "topic") == 0 || strcmp(kw, "pattern") == 0)
		parse_rule(p, kw[0] == 'p', line);
	else if (strcmp(kw, "user") == 0)
		parse_user(p, line);
	else
		auth_text_error(&p->t, "unknown keyword '%.64s': expected topic, pattern or user", kw);
}

struct acl *
acl_parse(const char *name, const char *buf, size_t len, struct conf_errors *errs)
{
	struct acl *acl = xcalloc(1, sizeof(*acl));
	struct acl_parser p = { { name, 0, errs, 0 }, acl, &acl->anonymous };

	RB_INIT(&acl->users);
	auth_each_line(buf, len, ACL_LINE_MAX, parse_line, &p);
	if (p.t.nerr > 0) {
		acl_free(acl);
		return NULL;
	}
	return acl;
}

static void
list_free(struct acl_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].filter);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

void
acl_free(struct acl *acl)
{
	struct acl_user *u;

	if (acl == NULL)
		return;
	while ((u = RB_MIN(acl_users, &acl->users)) != NULL) {
		RB_REMOVE(acl_users, &acl->users, u);
		list_free(&u->rules);
		free(u->name);
		free(u);
	}
	list_free(&acl->anonymous);
	list_free(&acl->patterns);
	free(acl);
}
