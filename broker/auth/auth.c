/* A struct auth: its files read and checked, swapped in whole at a
 * reload, and the questions the protocols ask it (who is this, may it
 * read or write there). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "auth/auth.h"
#include "log.h"
#include "xmalloc.h"

#define AUTH_FILE_MAX	(64 << 20)	/* bytes of a password or ACL file */

/* What is wrong with an open file for reading it whole, or NULL. */
static const char *
unfit(int fd, struct stat *st)
{
	if (fstat(fd, st) == -1)
		return strerror(errno);
	if (!S_ISREG(st->st_mode))
		return "not a regular file";
	if (st->st_size > AUTH_FILE_MAX)
		return "too large (more than 64 MiB)";
	return NULL;
}

/* Reads a whole file, the what that key names; 0, or -1 with an error
 * added.  *mode: its mode. */
static int
read_file(const char *path, const char *what, const char *key, char **bufp, size_t *lenp,
    mode_t *mode, struct conf_errors *errs)
{
	const char *why;
	struct stat st;
	size_t len = 0;
	ssize_t r = 1;
	char *buf;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		conf_error(errs, "%s: cannot open the %s: %s: check %s", path, what,
		    strerror(errno), key);
		return -1;
	}
	if ((why = unfit(fd, &st)) != NULL) {
		conf_error(errs, "%s: cannot read the %s: %s: check %s", path, what, why, key);
		close(fd);
		return -1;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	while (len < (size_t)st.st_size && r != 0) {
		r = read(fd, buf + len, (size_t)st.st_size - len);
		if (r == -1 && errno == EINTR)
			r = 1;
		else if (r == -1)
			break;
		else
			len += (size_t)r;
	}
	if (r == -1)
		conf_error(errs, "%s: cannot read: %s", path, strerror(errno));
	if (close(fd) == -1)
		log_warn("close %s", path);
	if (r == -1) {
		OPENSSL_cleanse(buf, len);	/* what was read of a file of secrets */
		free(buf);
		return -1;
	}
	*bufp = buf;
	*lenp = len;
	*mode = st.st_mode;
	return 0;
}

static void
sha256(const void *p, size_t n, uint8_t out[32])
{
	unsigned len = 0;

	if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1 || len != 32)
		fatalx("libcrypto cannot compute a SHA-256 digest");
}

/* A file of secrets, read whole: a warning (warn) when every user of the
 * host may read it.  The caller wipes and frees *buf. */
static int
read_secrets(const char *path, const char *what, const char *key, bool warn, char **buf,
    size_t *len, struct conf_errors *errs)
{
	mode_t mode;

	if (read_file(path, what, key, buf, len, &mode, errs) == -1)
		return -1;
	if (warn && (mode & S_IROTH))
		log_warnx("%s: the %s is readable by every user of this host: chmod o-r %s",
		    path, what, path);
	return 0;
}

static int
load_passwords(struct auth *a, const char *path, bool warn, struct conf_errors *errs)
{
	size_t len, before = errs->n;
	char *buf;

	if (read_secrets(path, "password file", "password_file", warn, &buf, &len, errs) == -1)
		return 1;
	a->passwd = passwd_parse(path, buf, len, errs);
	sha256(buf, len, a->passwd_digest);
	OPENSSL_cleanse(buf, len);
	free(buf);
	return (int)(errs->n - before);
}

static int
load_psk(struct auth *a, const char *path, bool warn, struct conf_errors *errs)
{
	size_t len, before = errs->n;
	char *buf;

	if (read_secrets(path, "pre-shared key file", "psk_file", warn, &buf, &len, errs) == -1)
		return 1;
	a->psk = psk_parse(path, buf, len, errs);
	sha256(buf, len, a->psk_digest);
	OPENSSL_cleanse(buf, len);
	free(buf);
	return (int)(errs->n - before);
}

static int
load_acl(struct auth *a, const char *path, struct conf_errors *errs)
{
	size_t len, before = errs->n;
	mode_t mode;
	char *buf;

	if (read_file(path, "ACL", "acl_file", &buf, &len, &mode, errs) == -1)
		return 1;
	a->acl = acl_parse(path, buf, len, errs);
	sha256(buf, len, a->acl_digest);
	free(buf);
	return (int)(errs->n - before);
}

int
auth_parse_bool(const char *v)
{
	static const char *yes[] = { "true", "yes", "on", "1" }, *no[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return 1;
		if (strcasecmp(v, no[i]) == 0)
			return 0;
	}
	return -1;
}

/* k errors found in path: noted, and counted. */
static int
file_errors(struct conf_errors *errs, const char *path, int k)
{
	if (k > 0)
		conf_error_file(errs, path);
	return k;
}

int
auth_load(struct auth *a, const struct auth_config *cfg, struct conf_errors *errs)
{
	int n = 0;

	memset(a, 0, sizeof(*a));
	a->anonymous_auto = cfg->allow_anonymous == NULL;
	a->username_as_clientid = cfg->username_as_clientid != NULL &&
	    auth_parse_bool(cfg->username_as_clientid) == 1;
	a->anonymous = a->anonymous_auto ? cfg->loopback_only :
	    auth_parse_bool(cfg->allow_anonymous) == 1;
	if (cfg->password_file != NULL)
		n += file_errors(errs, cfg->password_file,
		    load_passwords(a, cfg->password_file, !cfg->checked, errs));
	if (cfg->acl_file != NULL)
		n += file_errors(errs, cfg->acl_file, load_acl(a, cfg->acl_file, errs));
	if (cfg->psk_file != NULL)
		n += file_errors(errs, cfg->psk_file,
		    load_psk(a, cfg->psk_file, !cfg->checked, errs));
	if (n > 0)
		auth_free(a);
	return n;
}

/* A file is there in one and not the other, or its digests differ. */
static bool
file_changed(const void *cur, const void *fresh, const uint8_t *dcur, const uint8_t *dfresh)
{
	return (cur == NULL) != (fresh == NULL) || memcmp(dcur, dfresh, 32) != 0;
}

unsigned
auth_replace(struct auth *cur, struct auth *fresh)
{
	unsigned changed = 0;

	if (file_changed(cur->acl, fresh->acl, cur->acl_digest, fresh->acl_digest))
		changed |= AUTH_CHANGED_ACL;
	if (file_changed(cur->passwd, fresh->passwd, cur->passwd_digest, fresh->passwd_digest))
		changed |= AUTH_CHANGED_PASSWD;
	if (file_changed(cur->psk, fresh->psk, cur->psk_digest, fresh->psk_digest))
		changed |= AUTH_CHANGED_PSK;
	auth_free(cur);
	*cur = *fresh;
	memset(fresh, 0, sizeof(*fresh));
	return changed;
}

void
auth_free(struct auth *a)
{
	passwd_free(a->passwd);
	acl_free(a->acl);
	psk_free(a->psk);
	a->passwd = NULL;
	a->acl = NULL;
	a->psk = NULL;
	memset(a->acl_digest, 0, sizeof(a->acl_digest));
	memset(a->passwd_digest, 0, sizeof(a->passwd_digest));
	memset(a->psk_digest, 0, sizeof(a->psk_digest));
}

bool
auth_has_passwords(const struct auth *a)
{
	return a != NULL && a->passwd != NULL;
}

size_t
auth_psk_key(const struct auth *a, const char *identity, uint8_t *out, size_t max)
{
	return a != NULL ? psk_key(a->psk, identity, out, max) : 0;
}

bool
auth_has_acl(const struct auth *a)
{
	return a != NULL && a->acl != NULL;
}

enum auth_verdict
auth_login(const struct auth *a, const char *user, const void *password, size_t len,
    bool has_password)
{
	if (a == NULL)
		return AUTH_ANONYMOUS;
	if (a->passwd != NULL && user != NULL) {
		/* A missing password is checked as an empty one: no hash matches
		 * it, and the time taken is the same. */
		bool ok = passwd_check(a->passwd, user, has_password ? password : "",
		    has_password ? len : 0);

		return ok && has_password ? AUTH_USER : AUTH_BAD_LOGIN;
	}
	return a->anonymous ? AUTH_ANONYMOUS : AUTH_ANONYMOUS_REFUSED;
}

bool
auth_may(const struct auth *a, const char *user, const char *client_id, const char *topic,
    int access)
{
	return a == NULL || acl_check(a->acl, user, client_id, topic, access);
}

bool
auth_may_subscribe(const struct auth *a, const char *user, const char *client_id,
    const char *filter)
{
	return a == NULL || acl_check_subscribe(a->acl, user, client_id, filter);
}
