/* MQTT 5.0 subscription options that act on each delivery (3.8.3.1): No
 * Local, Retain As Published and the Subscription Identifier, per session
 * and filter.  Kept in the session's MQTT state, and for a stored session
 * in the master's store ("u" KEY NUL FILTER -> flags, identifier); a
 * filter with none of them has no entry, so a session without them costs
 * nothing on delivery. */
#include <stdlib.h>
#include <string.h>

#include "kvstore.h"
#include "log.h"
#include "mqtt/mqtt_int.h"
#include "topic.h"
#include "xmalloc.h"

static char *
opt_key(const struct session *s, const char *filter, size_t *len)
{
	size_t n = strlen(s->key), f = strlen(filter);
	char *k = xmalloc(n + f + 2);

	k[0] = 'u';
	memcpy(k + 1, s->key, n + 1);
	memcpy(k + n + 2, filter, f);
	*len = n + f + 2;
	return k;
}

static void
opt_store(const struct session *s, const struct subopt *o, bool keep)
{
	struct wbuf w;
	size_t klen;
	char *k;

	if (!s->persistent)
		return;
	k = opt_key(s, o->filter, &klen);
	wbuf_init(&w);
	put_u8(&w, o->flags);
	put_u32(&w, o->id);
	if (!mqtt_record(s, k, klen, &w, keep))
		log_warnx("session %s: cannot record the options of %s", s->key, o->filter);
}

static int
opt_cmp(struct subopt *a, struct subopt *b)
{
	return strcmp(a->filter, b->filter);
}

RB_PROTOTYPE(subopt_tree, subopt, entry, opt_cmp)
RB_GENERATE(subopt_tree, subopt, entry, opt_cmp)

static struct subopt *
opt_find(struct subopts *os, const char *filter)
{
	struct subopt key = { .filter = (char *)filter };

	return RB_FIND(subopt_tree, &os->tree, &key);
}

static void
opt_drop(struct subopts *os, struct subopt *o)
{
	RB_REMOVE(subopt_tree, &os->tree, o);
	os->n--;
	free(o->filter);
	free(o);
}

/* The entry of a filter, made if needed; NULL for no options and no entry. */
static struct subopt *
opt_put(struct subopts *os, const char *filter, uint8_t flags, uint32_t id)
{
	struct subopt *o = opt_find(os, filter);

	if (o == NULL && flags == 0 && id == 0)
		return NULL;
	if (o == NULL) {
		o = xcalloc(1, sizeof(*o));
		o->filter = xstrdup(filter);
		RB_INSERT(subopt_tree, &os->tree, o);
		os->n++;
	}
	o->flags = flags;
	o->id = id;
	return o;
}

void
subopts_set(struct session *s, const char *filter, uint8_t flags, uint32_t id)
{
	struct subopts *os = mqtt_session_opts(s);
	struct subopt *o = opt_put(os, filter, flags, id);

	if (o == NULL)
		return;
	opt_store(s, o, flags != 0 || id != 0);
	session_linked(s);
	if (flags == 0 && id == 0)
		opt_drop(os, o);
}

void
subopts_remove(struct session *s, const char *filter)
{
	subopts_set(s, filter, 0, 0);
}

void
subopts_end(struct session *s, bool forget)
{
	struct subopts *os = mqtt_session_opts(s);

	struct subopt *o;

	while ((o = RB_MIN(subopt_tree, &os->tree)) != NULL) {
		if (forget)
			opt_store(s, o, false);
		opt_drop(os, o);
	}
}

static struct subopt *
opt_of(const struct session *s, const char *filter)
{
	return opt_find(mqtt_session_opts((struct session *)s), filter);
}

/* A delivery for a shared subscription: that subscription's options (No
 * Local is not allowed there, 3.8.3-4). */
static void
match_share(const struct session *s, const char *share, struct sub_match *m)
{
	const struct subopt *o = opt_of(s, share);

	if (o == NULL)
		return;
	m->rap = (o->flags & SO_RAP) != 0;
	if (o->id != 0)
		m->ids[m->nids++] = o->id;
}

struct match_arg {
	bool		 own;		/* the message is from this session's client */
	struct sub_match *m;
	bool		 deliver;
};

/* One of the session's own filters that match the topic. */
static void
match_filter(struct session *s, const struct filter *f, void *argp)
{
	struct match_arg *arg = argp;
	const struct subopt *o = opt_of(s, f->filter);

	if (o != NULL && arg->own && (o->flags & SO_NO_LOCAL)) {
		arg->m->no_local = true;
		return;		/* not a matching subscription for this one (3.3.4) */
	}
	arg->deliver = true;
	if (f->qos > arg->m->qos)
		arg->m->qos = f->qos;
	if (o == NULL)
		return;
	arg->m->rap |= (o->flags & SO_RAP) != 0;
	if (o->id != 0 && arg->m->nids < SUB_MATCH_IDS)
		arg->m->ids[arg->m->nids++] = o->id;
}

void
subopts_match(const struct session *s, const char *topic, const char *share, bool own,
    struct sub_match *m)
{
	memset(m, 0, sizeof(*m));
	if (mqtt_session_opts((struct session *)s)->n == 0)
		return;
	if (share[0] != '\0') {
		match_share(s, share, m);
		return;
	}
	struct match_arg arg = { own, m, false };

	session_matching((struct session *)s, topic, match_filter, &arg);
	m->skip = !arg.deliver;
}

/* At start: the options stored for the sessions that exist. */
int
subopts_load(const void *key, size_t klen, void *arg)
{
	struct broker *b = arg;
	const char *k = key, *nul = memchr(k + 1, '\0', klen - 1);
	struct session *s;
	struct rbuf r;
	uint8_t flags;
	uint32_t id;
	void *val;
	size_t vlen;
	char *filter;

	if (nul == NULL || (s = session_find(b, k + 1)) == NULL ||
	    kv_get(b->store, key, klen, &val, &vlen) != 1)
		return 0;
	rbuf_init(&r, val, vlen);
	get_u8(&r, &flags);
	get_u32(&r, &id);
	filter = xmemdup(nul + 1, klen - (size_t)(nul + 1 - k));
	if (get_end(&r) == 0 && (flags != 0 || id != 0)) {
		mqtt_session_attach(s);
		(void)opt_put(mqtt_session_opts(s), filter, flags, id);
	} else {
		log_warnx("session %s: bad subscription options record; ignored", s->key);
	}
	free(filter);
	free(val);
	return 0;
}
