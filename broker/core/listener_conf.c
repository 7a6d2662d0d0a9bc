/* Listener blocks of broker.conf(5): their keys, the checks of a whole
 * block, and the shortcut ports (mqtt_port, ...) that blocks stand in
 * for, as mosquitto's listeners stand in for its default listener. */
#include "core/settings.h"

#include <sys/socket.h>
#include <netinet/in.h>

#include <fcntl.h>
#include <netdb.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth.h"
#include "xmalloc.h"

#define L(f)	offsetof(struct listener_conf, f)
#define RELOAD	true
#define FIXED	false

static const char *check_listener(const char *);
static const char *check_protocol(const char *);
static const char *check_tls_version(const char *);

const struct conf_key listener_table[] = {
	{ "listener", CONF_STRING, L(listener), NULL, 0, 0, FIXED,
	  "opens a listener block: PORT [ADDRESS] (without one, bind_address)", check_listener },
	{ "protocol", CONF_STRING, L(protocol), "mqtt", 0, 0, FIXED,
	  "what the listener speaks: mqtt, websockets (MQTT over WebSockets), json_consumer or json_publisher", check_protocol },
	{ "certfile", CONF_STRING, L(certfile), NULL, 0, 0, RELOAD,
	  "PEM file of the server certificate (and its chain); with keyfile, a TLS listener", NULL },
	{ "keyfile", CONF_STRING, L(keyfile), NULL, 0, 0, RELOAD,
	  "PEM file of the server certificate's private key", NULL },
	{ "cafile", CONF_STRING, L(cafile), NULL, 0, 0, RELOAD,
	  "PEM file of the CA certificates that client certificates are checked against", NULL },
	{ "capath", CONF_STRING, L(capath), NULL, 0, 0, RELOAD,
	  "directory of CA certificates (named by their hash: openssl rehash DIR)", NULL },
	{ "crlfile", CONF_STRING, L(crlfile), NULL, 0, 0, RELOAD,
	  "PEM file of certificate revocation lists: a client certificate revoked there is refused", NULL },
	{ "require_certificate", CONF_BOOL, L(require_certificate), "false", 0, 0, RELOAD,
	  "true: a client must present a certificate signed by a CA of cafile or capath", NULL },
	{ "use_identity_as_username", CONF_BOOL, L(use_identity_as_username), "false", 0, 0, RELOAD,
	  "true: the common name (CN) of the client certificate, or the identity of its pre-shared key, is the MQTT user name", NULL },
	{ "use_subject_as_username", CONF_BOOL, L(use_subject_as_username), "false", 0, 0, RELOAD,
	  "true: the subject of the client certificate, as RFC 2253 writes it, is the MQTT user name", NULL },
	{ "tls_version", CONF_STRING, L(tls_version), "tlsv1.2", 0, 0, RELOAD,
	  "the oldest TLS version accepted: tlsv1.2 or tlsv1.3", check_tls_version },
	{ "ciphers", CONF_STRING, L(ciphers), NULL, 0, 0, RELOAD,
	  "TLS 1.2 ciphers, an OpenSSL cipher list (default: OpenSSL's)", NULL },
	{ "ciphersuites", CONF_STRING, L(ciphersuites), NULL, 0, 0, RELOAD,
	  "TLS 1.3 cipher suites, separated by colons (default: OpenSSL's)", NULL },
	{ "psk_hint", CONF_STRING, L(psk_hint), NULL, 0, 0, RELOAD,
	  "TLS with pre-shared keys (psk_file) on this listener, the hint sent to clients; with or without a certificate", NULL },
	{ "password_file", CONF_STRING, L(password_file), NULL, 0, 0, RELOAD,
	  "this listener's password file with per_listener_settings true; else the global one", NULL },
	{ "acl_file", CONF_STRING, L(acl_file), NULL, 0, 0, RELOAD,
	  "this listener's access control list with per_listener_settings true; else the global one", NULL },
	{ "psk_file", CONF_STRING, L(psk_file), NULL, 0, 0, RELOAD,
	  "this listener's pre-shared key file with per_listener_settings true; else the global one", NULL },
	{ "use_username_as_clientid", CONF_STRING, L(use_username_as_clientid), NULL, 0, 0, RELOAD,
	  "this listener's use_username_as_clientid with per_listener_settings true; else the global one", settings_check_bool },
	{ "allow_anonymous", CONF_STRING, L(allow_anonymous), NULL, 0, 0, RELOAD,
	  "whether this listener takes clients without a user name (default false), with per_listener_settings true (else it sets the global one)", settings_check_bool },
	{ NULL, 0, 0, NULL, 0, 0, FIXED, NULL, NULL },
};

static const struct conf_block settings_blocks[] = {
	{ listener_table, sizeof(struct listener_conf), offsetof(struct settings, listeners),
	  L(where) },
	{ NULL, 0, 0, 0 },
};

const struct conf_syntax settings_syntax = {
	.keys = settings_table, .blocks = settings_blocks, .foreign = mosquitto_keys,
	.foreign_of = "mosquitto",
};

const struct shortcut settings_shortcuts[3] = {
	{ "mqtt_port", "mqtt", offsetof(struct settings, mqtt_port) },
	{ "json_consumer_port", "json_consumer", offsetof(struct settings, json_consumer_port) },
	{ "json_publisher_port", "json_publisher", offsetof(struct settings, json_publisher_port) },
};

int
settings_parse_buf(struct settings *s, const char *name, const char *buf, size_t len,
    char **given, struct conf_errors *errs)
{
	return conf_parse_syntax_buf(&settings_syntax, s, name, buf, len, given, errs);
}

int
settings_parse_file(struct settings *s, const char *path, char **given,
    struct conf_errors *errs)
{
	return conf_parse_syntax_file(&settings_syntax, s, path, given, errs);
}

static struct listener_conf *
listener_at(const struct settings *s, size_t i)
{
	return s->listeners.v[i];
}

static unsigned *
shortcut_port(struct settings *s, const struct shortcut *sc)
{
	return (unsigned *)(void *)((char *)s + sc->offset);
}

static unsigned
shortcut_value(const struct settings *s, const struct shortcut *sc)
{
	return *(const unsigned *)(const void *)((const char *)s + sc->offset);
}

static bool
key_given(char *const *given, const char *name)
{
	return given != NULL && given[conf_find(settings_table, name) - settings_table] != NULL;
}

/* A block's value of key as the global one, unless the file gives key
 * globally. */
static void
take_global(char **global, const char *v, char *const *given, const char *key)
{
	if (v == NULL || key_given(given, key))
		return;
	free(*global);
	*global = xstrdup(v);
}

/* With per_listener_settings false, a block's password_file, acl_file,
 * psk_file or allow_anonymous is the global one, as in mosquitto:
 * written after a listener line (where the last steps of a configuration
 * often go), it still applies to every listener.  One the file also gives
 * globally stays, and listeners_check() says they differ. */
static void
globals_from_blocks(struct settings *s, char *const *given)
{
	for (size_t j = 0; j < s->listeners.n && !s->per_listener_settings; j++) {
		const struct listener_conf *l = listener_at(s, j);

		take_global(&s->password_file, l->password_file, given, "password_file");
		take_global(&s->acl_file, l->acl_file, given, "acl_file");
		take_global(&s->psk_file, l->psk_file, given, "psk_file");
		take_global(&s->use_username_as_clientid, l->use_username_as_clientid, given,
		    "use_username_as_clientid");
		take_global(&s->allow_anonymous, l->allow_anonymous, given, "allow_anonymous");
	}
}

/* A block of protocol closes the shortcut port of sc_protocol: its own,
 * and, MQTT over WebSockets being MQTT, a WebSocket block mqtt_port (as
 * mosquitto's default listener gives way to any block). */
static bool
block_closes(const char *protocol, const char *sc_protocol)
{
	return protocol != NULL && (strcmp(protocol, sc_protocol) == 0 ||
	    (strcmp(protocol, "websockets") == 0 && strcmp(sc_protocol, "mqtt") == 0));
}

void
settings_apply_blocks(struct settings *s, char *const *given)
{
	globals_from_blocks(s, given);
	for (size_t i = 0; i < 3; i++) {
		const struct shortcut *sc = &settings_shortcuts[i];

		if (key_given(given, sc->key))
			continue;
		for (size_t j = 0; j < s->listeners.n; j++)
			if (block_closes(listener_at(s, j)->protocol, sc->protocol))
				*shortcut_port(s, sc) = 0;
	}
}

bool
listener_conf_tls(const struct listener_conf *l)
{
	return l->certfile != NULL || l->psk_hint != NULL;
}

/* The keys that only a listener with a certificate may have (they are
 * about client certificates), and whether one is set. */
static const char *
cert_key_set(const struct listener_conf *l)
{
	const struct { const char *key; bool set; } keys[] = {
		{ "cafile", l->cafile != NULL }, { "capath", l->capath != NULL },
		{ "crlfile", l->crlfile != NULL },
		{ "require_certificate", l->require_certificate },
		{ "use_subject_as_username", l->use_subject_as_username },
	};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (keys[i].set)
			return keys[i].key;
	return NULL;
}

/* The keys that only a TLS listener may have, and whether one is set
 * (tls_version: to another than its default, which every block has). */
static const char *
tls_key_set(const struct listener_conf *l)
{
	const char *key = cert_key_set(l);

	if (key != NULL)
		return key;
	return l->use_identity_as_username ? "use_identity_as_username" :
	    l->tls_version != NULL && strcmp(l->tls_version, "tlsv1.2") != 0 ?
	    "tls_version" :
	    l->ciphers != NULL ? "ciphers" :
	    l->ciphersuites != NULL ? "ciphersuites" : NULL;
}

/* The certificate as the MQTT user name: verified, named one way. */
static int
check_cert_user(const struct listener_conf *l, struct conf_errors *errs)
{
	const char *key = l->use_identity_as_username ? "use_identity_as_username" :
	    "use_subject_as_username", *w = l->where, *v = l->listener;
	int n = 0;

	if (!l->use_identity_as_username && !l->use_subject_as_username)
		return 0;
	if (!l->require_certificate && !(l->use_identity_as_username && l->psk_hint != NULL))
		n += conf_error(errs, "%s: listener %s: %s needs require_certificate true%s", w,
		    v, key, l->use_identity_as_username ? " (or psk_hint)" : "");
	if (l->use_subject_as_username && l->use_identity_as_username)
		n += conf_error(errs, "%s: listener %s: use_identity_as_username and"
		    " use_subject_as_username both name the user: give one", w, v);
	if (l->protocol != NULL && strcmp(l->protocol, "mqtt") != 0 &&
	    strcmp(l->protocol, "websockets") != 0)
		n += conf_error(errs, "%s: listener %s: %s names an MQTT user, and protocol %s"
		    " has none", w, v, key, l->protocol);
	return n;
}

/* One block alone: its TLS keys go together. */
static int
check_block(const struct listener_conf *l, struct conf_errors *errs)
{
	const char *key, *w = l->where, *v = l->listener;
	int n = 0;

	if (l->certfile != NULL && l->keyfile == NULL)
		n += conf_error(errs, "%s: listener %s: certfile without keyfile", w, v);
	if (l->keyfile != NULL && l->certfile == NULL)
		n += conf_error(errs, "%s: listener %s: keyfile without certfile", w, v);
	if (l->certfile == NULL && l->keyfile == NULL && l->psk_hint == NULL &&
	    (key = tls_key_set(l)) != NULL)
		n += conf_error(errs, "%s: listener %s: %s needs certfile and keyfile, or"
		    " psk_hint (a TLS listener)", w, v, key);
	else if (l->certfile == NULL && l->keyfile == NULL && (key = cert_key_set(l)) != NULL)
		n += conf_error(errs, "%s: listener %s: %s needs certfile and keyfile: without"
		    " a certificate of its own the listener asks for none", w, v, key);
	if (l->certfile != NULL && l->require_certificate && l->cafile == NULL &&
	    l->capath == NULL)
		n += conf_error(errs, "%s: listener %s: require_certificate needs cafile or"
		    " capath (the CAs of client certificates)", w, v);
	if (l->certfile != NULL && l->crlfile != NULL && !l->require_certificate)
		n += conf_error(errs, "%s: listener %s: crlfile needs require_certificate true"
		    " (no certificate is asked for without it)", w, v);
	return n + check_cert_user(l, errs);
}

/* Its port and address; the address is bind_address when the block has
 * none (malloc'd).  -1 if its listener line was bad (reported). */
static int
block_address(const struct settings *s, const struct listener_conf *l, unsigned *port,
    char **addr)
{
	if (l->listener == NULL || settings_listener(l->listener, port, addr) == -1)
		return -1;
	if (*addr == NULL && s->bind_address != NULL)
		*addr = xstrdup(s->bind_address);
	return *addr != NULL ? 0 : -1;
}

/* The address a listener on addr binds (the first getaddrinfo() gives,
 * as listen.c takes it), if addr is numeric: no name is looked up to
 * check a file. */
static bool
numeric_address(const char *addr, struct sockaddr_storage *ss)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICHOST };
	struct addrinfo *res;

	if (getaddrinfo(addr, NULL, &hints, &res) != 0)
		return false;
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return true;
}

static bool
is_wildcard(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)(const void *)ss)->sin_addr.s_addr ==
		    htonl(INADDR_ANY);
	return ss->ss_family == AF_INET6 &&
	    IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr);
}

static bool
same_address(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	const struct sockaddr_in6 *a6 = (const void *)a, *b6 = (const void *)b;

	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)(const void *)a)->sin_addr.s_addr ==
		    ((const struct sockaddr_in *)(const void *)b)->sin_addr.s_addr;
	return memcmp(&a6->sin6_addr, &b6->sin6_addr, sizeof(a6->sin6_addr)) == 0 &&
	    a6->sin6_scope_id == b6->sin6_scope_id;
}

/* A socket bound to :: takes the port on every IPv4 address too, unless
 * the host has IPv6 sockets default to IPv6 only (listen.c leaves
 * IPV6_V6ONLY alone). */
static bool
v6_wildcard_takes_v4(void)
{
	char c = '0';
	int fd = open("/proc/sys/net/ipv6/bindv6only", O_RDONLY | O_CLOEXEC);

	if (fd == -1)
		return true;
	if (read(fd, &c, 1) != 1)
		c = '0';
	(void)close(fd);	/* read only: nothing to lose */
	return c != '1';
}

/* Can listeners on the same port at a and b not both bind?  The same
 * address, or a wildcard (0.0.0.0, ::) and any address of its family,
 * or :: and an IPv4 address.  A name is compared as written. */
static bool
addresses_clash(const char *a, const char *b)
{
	struct sockaddr_storage sa, sb;

	if (strcmp(a, b) == 0)
		return true;
	if (!numeric_address(a, &sa) || !numeric_address(b, &sb))
		return false;
	if (sa.ss_family == sb.ss_family)
		return is_wildcard(&sa) || is_wildcard(&sb) || same_address(&sa, &sb);
	return ((sa.ss_family == AF_INET6 && is_wildcard(&sa)) ||
	    (sb.ss_family == AF_INET6 && is_wildcard(&sb))) && v6_wildcard_takes_v4();
}

/* " on ADDRESS" when other is not addr, else "". */
static void
other_address(const char *addr, const char *other, char *buf, size_t size)
{
	if (strcmp(addr, other) == 0)
		buf[0] = '\0';
	else
		snprintf(buf, size, " on %s", other);
}

/* Block i against the shortcut ports and the blocks before it. */
static int
check_clash(const struct settings *s, size_t i, struct conf_errors *errs)
{
	const struct listener_conf *l = listener_at(s, i), *o;
	unsigned port, oport;
	char *addr, *oaddr, on[300];
	int n = 0;

	if (block_address(s, l, &port, &addr) == -1)
		return 0;
	for (size_t k = 0; k < 3; k++) {
		if (shortcut_value(s, &settings_shortcuts[k]) != port || s->bind_address == NULL ||
		    !addresses_clash(addr, s->bind_address))
			continue;
		other_address(addr, s->bind_address, on, sizeof(on));
		n += conf_error(errs, "%s: listener %s: port %u on %s is also %s%s",
		    l->where, l->listener, port, addr, settings_shortcuts[k].key, on);
	}
	for (size_t j = 0; j < i && n == 0; j++) {
		o = listener_at(s, j);
		if (block_address(s, o, &oport, &oaddr) == -1)
			continue;
		if (oport == port && addresses_clash(oaddr, addr)) {
			other_address(addr, oaddr, on, sizeof(on));
			n += conf_error(errs, "%s: listener %s: port %u on %s is also the"
			    " listener at %s%s", l->where, l->listener, port, addr, o->where, on);
		}
		free(oaddr);
	}
	free(addr);
	return n;
}

static bool
str_differs(const char *a, const char *b)
{
	return a != NULL && (b == NULL || strcmp(a, b) != 0);
}

/* A block's boolean given, and not the global one (given or not). */
static bool
bool_differs(const char *block, const char *global)
{
	return block != NULL && (global == NULL || auth_parse_bool(global) !=
	    auth_parse_bool(block));
}

/* A block's password_file, acl_file or allow_anonymous that is not the
 * global one while per_listener_settings is false (globals_from_blocks). */
static int
check_globals(const struct settings *s, const struct listener_conf *l,
    struct conf_errors *errs)
{
	const char *key = str_differs(l->password_file, s->password_file) ? "password_file" :
	    str_differs(l->acl_file, s->acl_file) ? "acl_file" :
	    str_differs(l->psk_file, s->psk_file) ? "psk_file" :
	    bool_differs(l->use_username_as_clientid, s->use_username_as_clientid) ?
	    "use_username_as_clientid" :
	    bool_differs(l->allow_anonymous, s->allow_anonymous) ? "allow_anonymous" :
	    NULL;

	if (s->per_listener_settings || key == NULL)
		return 0;
	return conf_error(errs, "%s: listener %s: %s applies to every listener while "
	    "per_listener_settings is false, and another %s is given: keep one, or set "
	    "per_listener_settings true", l->where, l->listener, key, key);
}

/* Pre-shared keys are given where a listener uses them, and used where
 * they are given. */
static int
check_psk(const struct settings *s, const char *origin, struct conf_errors *errs)
{
	bool used = false;
	int n = 0;

	for (size_t i = 0; i < s->listeners.n; i++) {
		const struct listener_conf *l = listener_at(s, i);
		const char *file = s->per_listener_settings ? l->psk_file : s->psk_file;

		used |= l->psk_hint != NULL;
		if (l->psk_hint != NULL && file == NULL)
			n += conf_error(errs, "%s: listener %s: psk_hint needs psk_file%s: without"
			    " keys no client could connect", l->where, l->listener,
			    s->per_listener_settings ? " in its block" : "");
		if (s->per_listener_settings && l->psk_file != NULL && l->psk_hint == NULL)
			n += conf_error(errs, "%s: listener %s: psk_file needs psk_hint in its"
			    " block (a listener with pre-shared keys)", l->where, l->listener);
	}
	if (s->psk_file != NULL && (!used || s->per_listener_settings))
		n += conf_error(errs, "%s: psk_file %s: %s", origin, s->psk_file, !used ?
		    "no listener has psk_hint to use it" :
		    "with per_listener_settings true, each listener block gives its own");
	return n;
}

int
listeners_check(const struct settings *s, const char *origin, struct conf_errors *errs)
{
	int n = 0;

	for (size_t i = 0; i < s->listeners.n; i++) {
		n += check_block(listener_at(s, i), errs);
		n += check_clash(s, i, errs);
		n += check_globals(s, listener_at(s, i), errs);
	}
	return n + check_psk(s, origin, errs);
}

bool
listener_conf_fixed_differs(const struct listener_conf *a, const struct listener_conf *b)
{
	for (const struct conf_key *k = listener_table; k->name != NULL; k++)
		if (!k->reloadable && conf_differs(k, a, b))
			return true;
	return listener_conf_tls(a) != listener_conf_tls(b);
}

/* Splits a mosquitto-style "PORT [ADDRESS]"; *addr is NULL without one
 * (malloc'd otherwise).  Either out-pointer may be NULL (checking only). */
int
settings_listener(const char *v, unsigned *port, char **addr)
{
	char *end, extra;
	unsigned long p = strtoul(v, &end, 10);
	char a[256];
	int n;

	if (end == v || p == 0 || p > 65535 || (*end != '\0' && *end != ' ' && *end != '\t'))
		return -1;
	n = sscanf(end, " %255s %c", a, &extra);
	if (n == 2 || (n != 1 && n != EOF && *end != '\0'))
		return -1;
	if (port != NULL)
		*port = (unsigned)p;
	if (addr != NULL)
		*addr = n == 1 ? xstrdup(a) : NULL;
	return 0;
}

static const char *
check_listener(const char *v)
{
	return settings_listener(v, NULL, NULL) == 0 ? NULL :
	    "expected PORT [ADDRESS], a port from 1 to 65535";
}

static const char *
check_protocol(const char *v)
{
	return strcmp(v, "mqtt") == 0 || strcmp(v, "websockets") == 0 ||
	    strcmp(v, "json_consumer") == 0 || strcmp(v, "json_publisher") == 0 ? NULL :
	    "expected mqtt, websockets, json_consumer or json_publisher";
}

static const char *
check_tls_version(const char *v)
{
	return strcmp(v, "tlsv1.2") == 0 || strcmp(v, "tlsv1.3") == 0 ? NULL :
	    "expected tlsv1.2 or tlsv1.3";
}
