/* Loading and reloading the configuration: parse into a new structure,
 * validate, then swap what may change live; a bad file changes nothing. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "conf.h"
#include "log.h"
#include "xmalloc.h"

/* One command-line override; a key it sets counts as given, there. */
static void
override(struct settings *s, const char *key, const char *val, char **given,
    struct conf_errors *errs)
{
	char **where = &given[conf_find(settings_table, key) - settings_table];

	if (conf_set(settings_table, s, key, val, "command line", errs) == 0) {
		free(*where);
		*where = xstrdup("command line");
	}
}

/* Applies -D, -b, -p and -J over the file's values. */
static void
apply_overrides(struct broker *b, struct settings *s, char **given, struct conf_errors *errs)
{
	const struct { const char *key; const char *val; } o[] = {
		{ "data_dir", b->opt_data_dir },
		{ "bind_address", b->opt_bind },
		{ "mqtt_port", b->opt_mqtt_port },
	};

	for (size_t i = 0; i < sizeof(o) / sizeof(o[0]); i++)
		if (o[i].val != NULL)
			override(s, o[i].key, o[i].val, given, errs);
	if (b->opt_json_ports != NULL) {
		char *ports = xstrdup(b->opt_json_ports), *colon = strchr(ports, ':');

		if (colon == NULL) {
			conf_error(errs, "command line: -J wants CONSUMER_PORT:PUBLISHER_PORT, "
			    "not '%s'", ports);
		} else {
			*colon = '\0';
			override(s, "json_consumer_port", ports, given, errs);
			override(s, "json_publisher_port", colon + 1, given, errs);
		}
		free(ports);
	}
}

static void
report_line(enum settings_report how, const char *m)
{
	if (how == SETTINGS_LOG_WARNINGS)
		log_warnx("%s", m);
	else if (how == SETTINGS_LOG_ERRORS)
		log_errx("%s", m);
	else
		fprintf(stderr, "%s\n", m);
}

/* "a.conf", "a.conf and b.acl", "a.conf, b.acl and c.passwd": the files
 * the errors are in (else the configuration's), and whether they are
 * several. */
static bool
files_with_errors(const struct broker *b, const struct conf_errors *errs, char *buf,
    size_t len)
{
	size_t off = 0, n = errs->nfiles;

	buf[0] = '\0';
	if (n == 0) {
		snprintf(buf, len, "%s", b->conf_path ? b->conf_path : "the configuration");
		return false;
	}
	for (size_t i = 0; i < n && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i == 0 ? "" :
		    i + 1 == n ? " and " : ", ", errs->files[i]);
	return n > 1;
}

/* Every error of a bad configuration, one line each, as `how` says (the
 * first CONF_ERRORS_MAX, and how many more), then what it means. */
static void
report_errors(const struct broker *b, const struct conf_errors *errs, enum settings_report how)
{
	size_t n = errs->n + errs->more;
	char more[96], files[1024];
	bool several;

	for (size_t i = 0; i < errs->n; i++)
		report_line(how, errs->msg[i]);
	if (errs->more > 0) {
		snprintf(more, sizeof(more), "and %zu more error%s, not shown", errs->more,
		    errs->more == 1 ? "" : "s");
		report_line(how, more);
	}
	if (n == 0)
		return;
	if (how == SETTINGS_LOG_ERRORS)
		log_errx("not started: %zu error%s in the configuration; correct %s, then check "
		    "with broker -t%s%s", n, n == 1 ? "" : "s", n == 1 ? "it" : "them",
		    b->conf_path ? " -c " : "", b->conf_path ? b->conf_path : "");
	if (how != SETTINGS_LOG_WARNINGS)
		return;
	several = files_with_errors(b, errs, files, sizeof(files));
	log_warnx("reload: %s ha%s errors; keeping the running configuration", files,
	    several ? "ve" : "s");
}

/* Warnings: logged at a start or reload, printed by -t and -T. */
static void
report_notes(const struct conf_errors *errs, enum settings_report how)
{
	for (size_t i = 0; i < errs->nnotes; i++)
		if (how == SETTINGS_LOG_WARNINGS || how == SETTINGS_LOG_ERRORS)
			log_warnx("%s", errs->notes[i]);
		else
			fprintf(stderr, "warning: %s\n", errs->notes[i]);
}

/* per_listener_settings takes effect at a restart: until then a file is
 * read as the running broker reads it.  Read with the new value, the
 * blocks' password_file, acl_file and allow_anonymous would stop (or
 * start) being the global ones while every listener still used those. */
static void
keep_per_listener(const struct broker *b, struct settings *s)
{
	if (s == &b->set || s->per_listener_settings == b->set.per_listener_settings)
		return;
	log_warnx("reload: per_listener_settings changed; it takes effect at the next "
	    "restart, and until then the file is read as with %s",
	    b->set.per_listener_settings ? "true" : "false");
	s->per_listener_settings = b->set.per_listener_settings;
}

/* Fills s from the built-in defaults, the file and the command line (on
 * a reload, s is not b->set). */
int
broker_load_settings(struct broker *b, struct settings *s, struct auth *auth,
    enum settings_report how)
{
	struct conf_errors errs = { 0 };
	size_t nkeys = 0;
	char **given;
	int rc = 0;

	while (settings_table[nkeys].name != NULL)
		nkeys++;
	given = xcalloc(nkeys, sizeof(*given));
	if (auth != NULL)
		memset(auth, 0, sizeof(*auth));
	settings_init(s);
	if (b->conf_path != NULL)
		settings_parse_file(s, b->conf_path, given, &errs);
	apply_overrides(b, s, given, &errs);
	keep_per_listener(b, s);
	settings_apply_blocks(s, given);
	if (settings_check(s, b->conf_path ? b->conf_path : "configuration", &errs) > 0 &&
	    b->conf_path != NULL)
		conf_error_file(&errs, b->conf_path);
	/* Every error at once: the files the settings name too (-t and -T
	 * load the TLS listeners' as well, relative paths from here), and
	 * for -t what the start would find on this host. */
	if (auth != NULL)
		broker_load_auth(s, auth, &errs);
	if (how == SETTINGS_PRINT || how == SETTINGS_CHECK)
		(void)listeners_check_tls(s, &errs);
	if (how == SETTINGS_CHECK)
		broker_check_host(b, s, given, &errs);
	conf_given_free(given, nkeys);
	free(given);
	report_notes(&errs, how);
	report_errors(b, &errs, how);
	if (errs.n > 0) {
		rc = -1;
		settings_free(s);
		if (auth != NULL)
			auth_free(auth);	/* the global files may have loaded */
	} else if (s->crash_limit != 0) {
		log_warnx("%s: crash_limit is obsolete and ignored: a topicd is restarted for "
		    "ever, and a record it dies on is dead-lettered (poison_limit)",
		    b->conf_path ? b->conf_path : "configuration");
	}
	conf_errors_free(&errs);
	return rc;
}

/* The directory the broker was started in: relative paths of the
 * configuration and the command line are taken from it, also after -d
 * moved the process to "/". */
static char *start_dir;

static char *
absolute(const char *path)
{
	char *abs;

	if (start_dir == NULL && (start_dir = getcwd(NULL, 0)) == NULL)
		fatal("getcwd");
	xasprintf(&abs, "%s/%s", start_dir, path);
	return abs;
}

static void
resolve(char **path)
{
	char *abs;

	if (*path == NULL || **path == '/' || **path == '\0')
		return;
	abs = absolute(*path);
	free(*path);
	*path = abs;
}

void
broker_resolve_paths(struct settings *s)
{
	resolve(&s->data_dir);
	resolve(&s->pid_file);
	resolve(&s->topicd_path);
	resolve(&s->password_file);
	resolve(&s->acl_file);
	resolve(&s->psk_file);
	for (size_t i = 0; i < s->listeners.n; i++) {
		struct listener_conf *l = s->listeners.v[i];
		char **files[] = { &l->certfile, &l->keyfile, &l->cafile, &l->capath,
				   &l->crlfile, &l->password_file, &l->acl_file, &l->psk_file };

		for (size_t j = 0; j < sizeof(files) / sizeof(files[0]); j++)
			resolve(files[j]);
	}
	for (size_t i = 0; i < s->log_dest.n; i++) {
		const char *path = settings_log_file(s->log_dest.v[i]);
		char *abs, *nd;

		if (path == NULL || *path == '/')
			continue;
		abs = absolute(path);
		xasprintf(&nd, "file %s", abs);
		free(abs);
		free(s->log_dest.v[i]);
		s->log_dest.v[i] = nd;
	}
}

char *
broker_absolute(const char *path)
{
	return path[0] == '/' ? xstrdup(path) : absolute(path);
}

static size_t
field_size(enum conf_type t)
{
	switch (t) {
	case CONF_BOOL:		return sizeof(bool);
	case CONF_UINT:
	case CONF_PORT:		return sizeof(unsigned);
	case CONF_SIZE:
	case CONF_MSEC:		return sizeof(uint64_t);
	case CONF_STRING:	return sizeof(char *);
	case CONF_LIST:		return sizeof(struct conf_list);
	}
	return 0;
}

/* Exchanges a key's values between two structures (a and b hold its
 * type at k->offset). */
static void
swap_key(const struct conf_key *k, void *a, void *b)
{
	uint8_t tmp[sizeof(struct conf_list) + sizeof(uint64_t)];
	uint8_t *fa = (uint8_t *)a + k->offset, *fb = (uint8_t *)b + k->offset;
	size_t sz = field_size(k->type);

	memcpy(tmp, fa, sz);
	memcpy(fa, fb, sz);
	memcpy(fb, tmp, sz);
}

/* A block's password_file, acl_file, psk_file and allow_anonymous: not
 * TLS keys (the pre-shared keys are the client's auth's). */
static bool
auth_key(const struct conf_key *k)
{
	return strcmp(k->name, "password_file") == 0 || strcmp(k->name, "acl_file") == 0 ||
	    strcmp(k->name, "psk_file") == 0 || strcmp(k->name, "allow_anonymous") == 0 ||
	    strcmp(k->name, "use_username_as_clientid") == 0;
}

static bool
tls_differs(const struct listener_conf *a, const struct listener_conf *n)
{
	for (const struct conf_key *k = listener_table; k->name != NULL; k++)
		if (k->reloadable && !auth_key(k) && conf_differs(k, a, n))
			return true;
	return false;
}

/* The listener blocks: their addresses, ports and protocols are fixed;
 * their TLS keys change live (the certificates are re-read after this,
 * by listeners_reload_tls).  Returns the number of keys changed. */
static unsigned
reload_listeners(struct settings *cur, struct settings *ns)
{
	unsigned changed = 0;

	if (cur->listeners.n != ns->listeners.n) {
		log_warnx("reload: listener blocks added or removed; they take effect at the"
		    " next restart");
		return 0;
	}
	for (size_t i = 0; i < cur->listeners.n; i++)
		if (listener_conf_fixed_differs(cur->listeners.v[i], ns->listeners.v[i])) {
			log_warnx("reload: listener %s changed its address, port, protocol or"
			    " TLS; listeners take effect at the next restart",
			    ((struct listener_conf *)cur->listeners.v[i])->listener);
			return 0;
		}
	for (size_t i = 0; i < cur->listeners.n; i++) {
		struct listener_conf *a = cur->listeners.v[i], *n = ns->listeners.v[i];
		char *where = a->where, err[512];
		bool tls_ok;

		a->where = n->where;		/* lines may have moved */
		n->where = where;
		/* A block's TLS keys and certificate change together or not at
		 * all: settings without the files they need would refuse every
		 * client (use_identity_as_username without require_certificate). */
		tls_ok = !tls_differs(a, n) || tls_context_loads(n, err, sizeof(err));
		if (!tls_ok)
			log_warnx("reload: listener %s at %s: %s; it keeps its TLS settings and "
			    "certificate", a->listener, a->where, err);
		for (const struct conf_key *k = listener_table; k->name != NULL; k++) {
			if (!k->reloadable || !conf_differs(k, a, n) || (!tls_ok && !auth_key(k)))
				continue;
			swap_key(k, a, n);
			changed++;
			log_notice("reload: listener %s: %s changed", a->listener, k->name);
		}
	}
	return changed;
}

/* SIGHUP: re-read the file; apply what can change live, say what needs a
 * restart.  Returns -1 (and changes nothing) if the file is bad. */
int
broker_reload(struct broker *b, bool *acl_changed)
{
	struct settings ns;
	struct auth na;
	unsigned changed = 0;

	if (broker_load_settings(b, &ns, &na, SETTINGS_LOG_WARNINGS) == -1)
		return -1;	/* the errors, and the files they are in, were logged */
	broker_resolve_paths(&ns);
	for (const struct conf_key *k = settings_table; k->name != NULL; k++) {
		if (!conf_differs(k, &b->set, &ns))
			continue;
		if (!k->reloadable) {
			log_warnx("reload: %s changed; it takes effect at the next restart", k->name);
			continue;
		}
		swap_key(k, &b->set, &ns);	/* ns now holds the old value, freed below */
		changed++;
		log_notice("reload: %s changed", k->name);
	}
	changed += reload_listeners(&b->set, &ns);
	settings_free(&ns);
	auth_free(&na);			/* it checked the files; read again for b->set */
	*acl_changed = broker_reload_auth(b);
	log_notice("reload: configuration re-read, %u setting%s changed", changed,
	    changed == 1 ? "" : "s");
	return 0;
}

/* What log_dest and log_type ask for: log_dest (stderr | syslog | file
 * PATH, several allowed; *file_at is where the file was given) and
 * log_type (the most verbose level listed wins; -v means debug). */
struct logging {
	int         dests;
	int         level;
	const char *file;
	const char *file_at;
};

static void
logging_wanted(const struct broker *b, struct logging *w)
{
	const struct settings *s = &b->set;

	memset(w, 0, sizeof(*w));
	w->level = LOG_LVL_NOTICE;
	for (size_t i = 0; i < s->log_dest.n; i++) {
		const char *d = s->log_dest.v[i];

		if (strcmp(d, "stderr") == 0)
			w->dests |= LOG_DEST_STDERR;
		else if (strcmp(d, "syslog") == 0)
			w->dests |= LOG_DEST_SYSLOG;
		else if ((w->file = settings_log_file(d)) != NULL) {
			w->dests |= LOG_DEST_FILE;
			w->file_at = s->log_dest.where[i] != NULL ? s->log_dest.where[i] :
			    b->conf_path ? b->conf_path : "configuration";
		}
	}
	if (w->dests == 0)	/* with -d, stderr is the terminal only until the fork */
		w->dests = b->daemonize ? LOG_DEST_STDERR | LOG_DEST_SYSLOG : LOG_DEST_STDERR;
	if (s->log_type.n > 0)
		w->level = LOG_LVL_ERR;
	for (size_t i = 0; i < s->log_type.n; i++) {
		int l = strcmp(s->log_type.v[i], "all") == 0 ? LOG_LVL_DEBUG :
		    log_level_parse(s->log_type.v[i]);

		if (l > w->level)
			w->level = l;
	}
	if (b->verbose)
		w->level = LOG_LVL_DEBUG;
}

void
broker_log_file_error(char *buf, size_t len, const char *where, const char *path, int err)
{
	const char *hint;

	switch (err) {
	case ENOENT:
	case ENOTDIR:
		hint = "create its directory, or change log_dest";
		break;
	case EACCES:
	case EPERM:
		hint = "let the broker write it, or change log_dest";
		break;
	case ELOOP:
		hint = "it is a symbolic link, which is not followed: name the file itself in "
		    "log_dest";
		break;
	default:
		hint = "change log_dest";
		break;
	}
	snprintf(buf, len, "%s: cannot open log file %s: %s: %s", where, path, strerror(err),
	    hint);
}

int
broker_start_logging(struct broker *b)
{
	struct logging w;
	char msg[1024];
	int e;

	logging_wanted(b, &w);
	if (log_init("broker", (enum log_level)w.level, w.dests, w.file) == 0)
		return 0;
	e = errno;
	/* Nothing would be logged there: said where it is seen. */
	log_init("broker", (enum log_level)w.level, (w.dests & ~LOG_DEST_FILE) | LOG_DEST_STDERR,
	    NULL);
	broker_log_file_error(msg, sizeof(msg), w.file_at, w.file, e);
	log_errx("%s", msg);
	return -1;
}

void
broker_apply_logging(struct broker *b)
{
	const char *was;
	struct logging w;
	char msg[1024];

	logging_wanted(b, &w);
	if (log_init("broker", (enum log_level)w.level, w.dests, w.file) == 0)
		return;
	broker_log_file_error(msg, sizeof(msg), w.file_at, w.file, errno);
	was = log_get_file();
	log_warnx("reload: %s; %s%s", msg, was != NULL ? "still logging to " : "logging to no file",
	    was != NULL ? was : "");
}

/* A value as it is written in the file: sizes with the largest exact
 * suffix, times in seconds. */
static void
format_value(const struct conf_key *k, const void *field, char *buf, size_t len)
{
	static const char suffix[] = "gmk";
	uint64_t v;

	switch (k->type) {
	case CONF_BOOL:
		snprintf(buf, len, "%s", *(const bool *)field ? "true" : "false");
		return;
	case CONF_UINT:
	case CONF_PORT:
		snprintf(buf, len, "%u", *(const unsigned *)field);
		return;
	case CONF_SIZE:
		v = *(const uint64_t *)field;
		for (int i = 0; i < 3; i++) {
			unsigned shift = 10 * (unsigned)(3 - i);

			if (v != 0 && v % (1ULL << shift) == 0) {
				snprintf(buf, len, "%" PRIu64 "%c", v >> shift, suffix[i]);
				return;
			}
		}
		snprintf(buf, len, "%" PRIu64, v);
		return;
	case CONF_MSEC:
		v = *(const uint64_t *)field;
		if (v % 1000 == 0)
			snprintf(buf, len, "%" PRIu64, v / 1000);
		else {
			int n = snprintf(buf, len, "%" PRIu64 ".%03u", v / 1000, (unsigned)(v % 1000));

			while (n > 0 && (size_t)n < len && buf[n - 1] == '0')
				buf[--n] = '\0';
		}
		return;
	default:
		buf[0] = '\0';
		return;
	}
}

/* Every key of a table with its value, in the file's syntax; a key
 * without a value is shown commented out. */
static void
dump_keys(FILE *f, const struct conf_key *tab, const void *obj)
{
	char buf[64];

	for (const struct conf_key *k = tab; k->name != NULL; k++) {
		const void *field = (const uint8_t *)obj + k->offset;
		const struct conf_list *l = field;
		const char *str;

		if (k->type == CONF_LIST) {
			if (l->n == 0)
				fprintf(f, "#%s\n", k->name);
			for (size_t i = 0; i < l->n; i++)
				fprintf(f, "%s %s\n", k->name, l->v[i]);
		} else if (k->type == CONF_STRING) {
			if ((str = *(char *const *)field) == NULL)
				fprintf(f, "#%s\n", k->name);
			else
				fprintf(f, "%s %s\n", k->name, str);
		} else {
			format_value(k, field, buf, sizeof(buf));
			fprintf(f, "%s %s\n", k->name, buf);
		}
	}
}

/* -T: every key with its value, then every listener block. */
void
broker_dump_settings(const struct settings *s)
{
	dump_keys(stdout, settings_table, s);
	for (size_t i = 0; i < s->listeners.n; i++) {
		printf("\n");
		dump_keys(stdout, listener_table, s->listeners.v[i]);
	}
}
