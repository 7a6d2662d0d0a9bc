/* Who may connect and what they may do: a password file in the format
 * mosquitto_passwd(1) writes, an access control list in the syntax of
 * mosquitto's acl_file, and whether clients without a checked user name
 * (anonymous clients) are let in.
 *
 * A struct auth is one such set; the broker holds one for all its
 * listeners, and each client points to the one that applies to it (a
 * listener may hold its own).  The module knows nothing of clients,
 * sessions or protocols: it answers questions about names (a user, a
 * client id, a topic), so that the core and the protocols ask it where
 * they decide.  It reads its files when loaded, and nothing else: a
 * reload parses into a new struct auth and swaps it in (auth_replace),
 * so that a bad file changes nothing. */
#ifndef BROKER_AUTH_AUTH_H
#define BROKER_AUTH_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"

/* Access to a topic (acl.c). */
#define AUTH_READ	0x1
#define AUTH_WRITE	0x2

struct passwd_file;
struct psk_file;
struct acl;

/* What a struct auth is made from: the keys of broker.conf. */
struct auth_config {
	const char	*password_file;		/* NULL: none */
	const char	*acl_file;		/* NULL: none */
	const char	*psk_file;		/* NULL: none */
	const char	*allow_anonymous;	/* "true", "false"...; NULL: automatic */
	const char	*username_as_clientid;	/* "true"...; NULL: false */
	bool		 loopback_only;		/* every listener it serves is on a
						 * loopback address (the automatic
						 * allow_anonymous) */
	bool		 checked;		/* the files were loaded just before to
						 * check them: their warnings are not
						 * logged again */
};

struct auth {
	struct passwd_file *passwd;	/* NULL: user names are not checked */
	struct acl	*acl;		/* NULL: everybody may do everything */
	struct psk_file	*psk;		/* NULL: no TLS-PSK client gets in */
	bool		 anonymous;	/* clients without a checked user name get in */
	bool		 anonymous_auto;	/* ... decided by the listeners' addresses */
	bool		 username_as_clientid;	/* an MQTT client's checked user name
						 * is its client id */
	/* Of each file, to tell a change at a reload. */
	uint8_t		 acl_digest[32];
	uint8_t		 passwd_digest[32];
	uint8_t		 psk_digest[32];
};

/* What auth_replace() changed. */
#define AUTH_CHANGED_ACL	0x1	/* what clients may read or write */
#define AUTH_CHANGED_PASSWD	0x2	/* who may log in, with what password */
#define AUTH_CHANGED_PSK	0x4	/* the pre-shared keys */

/* How a login ends (auth_login). */
enum auth_verdict {
	AUTH_USER,		/* the user name and password were checked */
	AUTH_ANONYMOUS,		/* let in without a checked user name */
	AUTH_ANONYMOUS_REFUSED,	/* no checked user name, and anonymous clients
				 * are not let in */
	AUTH_BAD_LOGIN,		/* unknown user, wrong or missing password */
};

/* auth.c */
/* Fills a (fresh, or freed) from the files cfg names.  Returns the number
 * of errors added to errs ("FILE:LINE: message"), whose files are noted
 * there (conf_error_file); a changes nothing it does not own then.  A
 * password file readable by others is a warning (logged). */
int	 auth_load(struct auth *a, const struct auth_config *cfg, struct conf_errors *errs);
/* Moves fresh into cur (fresh is left empty) and frees what cur held.
 * Returns the AUTH_CHANGED_ flags of the files that changed (added,
 * removed, or another content).  Clients that are connected stay
 * connected. */
unsigned auth_replace(struct auth *cur, struct auth *fresh);
void	 auth_free(struct auth *a);
bool	 auth_has_passwords(const struct auth *a);
bool	 auth_has_acl(const struct auth *a);
/* The pre-shared key of a TLS-PSK identity (psk_key()); 0: none. */
size_t	 auth_psk_key(const struct auth *a, const char *identity, uint8_t *out, size_t max);
/* user NULL: the client gave none.  has_password: it gave one (MQTT's
 * password flag), of len bytes.  Without a password file a user name
 * is not checked, so the client is anonymous. */
enum auth_verdict auth_login(const struct auth *a, const char *user, const void *password,
	    size_t len, bool has_password);
/* May the client (user NULL: anonymous; client_id: the MQTT client id, or
 * the JSON-lines user name) read or write (AUTH_READ, AUTH_WRITE) the
 * topic name?  Without an ACL, yes. */
bool	 auth_may(const struct auth *a, const char *user, const char *client_id,
	    const char *topic, int access);
/* May it subscribe to the filter: can the filter match a topic it may
 * read?  Deliveries are still checked topic by topic (auth_may). */
bool	 auth_may_subscribe(const struct auth *a, const char *user, const char *client_id,
	    const char *filter);
/* Whether the text is a boolean of the configuration ("true", "no"...):
 * 1, 0, or -1 if it is not. */
int	 auth_parse_bool(const char *v);

/* passwd.c: the password file */
/* Parses a password file's text; NULL with errors added (name:LINE). */
struct passwd_file *passwd_parse(const char *name, const char *buf, size_t len,
	    struct conf_errors *errs);
void	 passwd_free(struct passwd_file *pf);
size_t	 passwd_count(const struct passwd_file *pf);
/* How an unknown user's password is checked (so that it takes as long as
 * a known one's): the file's most common kind of entry, 6 or 7, and its
 * iterations. */
void	 passwd_unknown_cost(const struct passwd_file *pf, uint8_t *kind, unsigned *iterations);
/* True if user is in the file and password (len bytes) is its password;
 * the time taken does not tell whether the user exists. */
bool	 passwd_check(const struct passwd_file *pf, const char *user, const void *password,
	    size_t len);

/* psk.c: the pre-shared keys of TLS-PSK listeners */
#define PSK_IDENTITY_MAX	256	/* bytes (OpenSSL's PSK_MAX_IDENTITY_LEN) */
#define PSK_KEY_MAX		512	/* bytes (OpenSSL's PSK_MAX_PSK_LEN) */
struct psk_file;
/* Parses a pre-shared key file's text; NULL with errors added (name:LINE). */
struct psk_file *psk_parse(const char *name, const char *buf, size_t len,
	    struct conf_errors *errs);
void	 psk_free(struct psk_file *pf);
size_t	 psk_count(const struct psk_file *pf);
/* The key of identity into out (room for max bytes): its length, or 0 if
 * the identity is not in the file or its key does not fit. */
size_t	 psk_key(const struct psk_file *pf, const char *identity, uint8_t *out, size_t max);

/* acl.c: the access control list */
struct acl *acl_parse(const char *name, const char *buf, size_t len, struct conf_errors *errs);
void	 acl_free(struct acl *acl);
bool	 acl_check(const struct acl *acl, const char *user, const char *client_id,
	    const char *topic, int access);
bool	 acl_check_subscribe(const struct acl *acl, const char *user, const char *client_id,
	    const char *filter);
/* Do two filters match a topic in common?  Does outer match every topic
 * inner matches?  (Both valid filters; exposed for the unit tests.) */
bool	 filter_overlaps(const char *a, const char *b);
bool	 filter_covers(const char *outer, const char *inner);

/* lines.c: the text of an access file, line by line */
/* Where a parser is in a file, and the errors it found there. */
struct auth_text {
	const char		*name;
	size_t			 line;
	struct conf_errors	*errs;
	int			 nerr;
};
/* An error of the current line: "NAME:LINE: message". */
void	 auth_text_error(struct auth_text *t, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* Called for each line that is not empty or a comment ('#' first), with
 * text trimmed of blanks (and a '\r'), NUL-terminated and writable; or
 * with text NULL and why, for a line that cannot be read (longer than
 * the parser's maximum, or with a NUL byte).  lineno counts from 1. */
typedef void auth_line_fn(void *arg, size_t lineno, char *text, const char *why);
void	 auth_each_line(const char *buf, size_t len, size_t max, auth_line_fn *fn, void *arg);
bool	 auth_blank(char c);
/* s without the blanks around it (in place). */
char	*auth_trim(char *s);

/* failures.c: failed logins per address, to slow down guessing */
#define AUTH_DELAY_BASE_MS	100	/* the answer to a first failure waits this */
#define AUTH_DELAY_MAX_MS	10000	/* ... doubling per recent failure, up to this */
#define AUTH_FAIL_FORGET_MS	600000	/* a failure counts this long after the last one */
#define AUTH_FAIL_ADDRESSES	10000	/* addresses remembered; the oldest goes first */
struct auth_failures;
struct auth_failures *auth_failures_new(void);
void	 auth_failures_free(struct auth_failures *f);
/* A failed login from addr at now (monotonic ms): how long its answer
 * waits, in ms. */
uint64_t auth_failures_note(struct auth_failures *f, const char *addr, int64_t now);
/* Addresses remembered (forgotten ones are dropped first). */
size_t	 auth_failures_size(struct auth_failures *f, int64_t now);

#endif
