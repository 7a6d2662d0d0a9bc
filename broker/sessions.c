/* The master's own store (DATA/sessions.*): each JSON-lines username's
 * subscriptions, so that they resume at login and survive restarts.
 * Value: the topics, each a marshalled string. */
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "kvstore.h"
#include "log.h"
#include "xmalloc.h"

int
sessions_open(struct broker *b)
{
	char *err = NULL;

	b->sessions = kv_open(b->set.data_dir, "sessions", b->set.checkpoint_size, &err);
	if (b->sessions == NULL) {
		log_warnx("cannot open the session store in %s: %s", b->set.data_dir,
		    err ? err : "?");
		free(err);
		return -1;
	}
	return 0;
}

void
sessions_close(struct broker *b)
{
	if (b->sessions != NULL && kv_close(b->sessions) == -1)
		log_warnx("the session store did not close cleanly");
	b->sessions = NULL;
}

int
sessions_topics(struct broker *b, const char *subkey, char ***topics, size_t *n)
{
	void *val;
	size_t len;
	struct rbuf r;
	const char *t;
	int rc = kv_get(b->sessions, subkey, strlen(subkey), &val, &len);

	*topics = NULL;
	*n = 0;
	if (rc <= 0)
		return rc;
	rbuf_init(&r, val, len);
	while (r.left > 0 && get_str(&r, &t) == 0) {
		*topics = xreallocarray(*topics, *n + 1, sizeof(char *));
		(*topics)[(*n)++] = xstrdup(t);
	}
	if (r.err)
		log_warnx("session store: bad record for %s", subkey);
	free(val);
	return 0;
}

static void
free_list(char **topics, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(topics[i]);
	free(topics);
}

/* Writes the list (without skip) and commits it durably. */
static int
store_list(struct broker *b, const char *subkey, char **topics, size_t n, const char *add,
    const char *skip)
{
	struct wbuf w;
	int rc;

	wbuf_init(&w);
	for (size_t i = 0; i < n; i++)
		if (skip == NULL || strcmp(topics[i], skip) != 0)
			put_str(&w, topics[i]);
	if (add != NULL)
		put_str(&w, add);
	if (w.len == 0)
		rc = kv_del(b->sessions, subkey, strlen(subkey));
	else
		rc = kv_put(b->sessions, subkey, strlen(subkey), w.data, w.len);
	wbuf_free(&w);
	if (rc == 0)
		rc = kv_commit(b->sessions);
	return rc;
}

int
sessions_add(struct broker *b, const char *subkey, const char *topic)
{
	char **topics;
	size_t n;
	int rc;

	if (sessions_topics(b, subkey, &topics, &n) == -1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(topics[i], topic) == 0) {
			free_list(topics, n);
			return 0;
		}
	}
	rc = store_list(b, subkey, topics, n, topic, NULL);
	free_list(topics, n);
	return rc;
}

int
sessions_remove(struct broker *b, const char *subkey, const char *topic)
{
	char **topics;
	size_t n;
	bool found = false;
	int rc = 0;

	if (sessions_topics(b, subkey, &topics, &n) == -1)
		return -1;
	for (size_t i = 0; i < n; i++)
		found = found || strcmp(topics[i], topic) == 0;
	if (found)
		rc = store_list(b, subkey, topics, n, NULL, topic);
	free_list(topics, n);
	return rc;
}
