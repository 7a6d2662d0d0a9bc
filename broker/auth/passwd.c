/* The password file, as mosquitto_passwd(1) writes it: one line per user,
 *   USER:$7$ITERATIONS$SALT$HASH   PBKDF2 with HMAC-SHA512 (mosquitto 2)
 *   USER:$6$SALT$HASH              SHA-512 of the password, then the salt
 * with SALT and HASH in base64 (HASH 64 bytes).  Empty lines and lines
 * starting with '#' are skipped; anything else is an error with its line
 * number.  Plain-text passwords (mosquitto without TLS) are refused: the
 * file is meant to hold hashes only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>
#include <arpa/nameser.h>
#include <resolv.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "auth/auth.h"
#include "xmalloc.h"

#define PW_HASH_LEN		64		/* SHA-512 */
#define PW_SALT_MAX		64		/* bytes (mosquitto_passwd: 12) */
#define PW_MAX_ITERATIONS	100000		/* each login is checked in the event loop */
#define PW_USER_MAX		65535		/* as an MQTT string */
#define PW_LINE_MAX		(PW_USER_MAX + 1024)
#define PW_DUMMY_ITERATIONS	101		/* mosquitto_passwd's; for unknown users */

struct pw_entry {
	char		*user;
	uint8_t		 kind;		/* 6 or 7 */
	unsigned	 iterations;	/* $7$ */
	uint8_t		 salt[PW_SALT_MAX];
	size_t		 salt_len;
	uint8_t		 hash[PW_HASH_LEN];
	size_t		 line;
};

struct passwd_file {
	struct pw_entry	*v;		/* sorted by user */
	size_t		 n;
	struct pw_entry	 dummy;		/* what an unknown user's check costs */
};

/* The base64 field s[0 .. n) into out (at most max bytes); its length, or
 * -1.  (b64_pton() wants room for the bits past the last whole byte.) */
static int
b64_field(const char *s, size_t n, uint8_t *out, size_t max)
{
	uint8_t bin[PW_SALT_MAX + PW_HASH_LEN + 4];
	char text[256];
	int len;

	if (n == 0 || n >= sizeof(text) || max > PW_SALT_MAX + PW_HASH_LEN)
		return -1;
	memcpy(text, s, n);
	text[n] = '\0';
	len = b64_pton(text, bin, sizeof(bin));
	if (len < 0 || (size_t)len > max)
		return -1;
	memcpy(out, bin, (size_t)len);
	return len;
}

/* "ITERATIONS$" of a $7$ hash: the count, or 0 if it is bad. */
static unsigned
iterations_field(const char *s, size_t n)
{
	unsigned long v = 0;

	if (n == 0 || n > 7)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	return v >= 1 && v <= PW_MAX_ITERATIONS ? (unsigned)v : 0;
}

/* Splits "$K$A$B" or "$K$A$B$C" (after the "$K$") at '$' into fields. */
static size_t
split_dollars(const char *h, const char **f, size_t *len, size_t max)
{
	size_t n = 0;

	while (n < max) {
		const char *d = strchr(h, '$');

		f[n] = h;
		len[n] = d != NULL ? (size_t)(d - h) : strlen(h);
		n++;
		if (d == NULL)
			return n;
		h = d + 1;
	}
	return max + 1;
}

/* The hash after "USER:", into e; 0, or -1 with an error. */
static int
parse_hash(struct auth_text *p, const char *h, struct pw_entry *e)
{
	const char *f[4];
	size_t len[4], n;
	int salt, hash;

	if (strncmp(h, "$6$", 3) != 0 && strncmp(h, "$7$", 3) != 0) {
		auth_text_error(p, "user %.64s: %s", e->user, h[0] == '\0' ? "no password hash" :
		    "not a $6$ or $7$ password hash (plain-text passwords are not accepted: "
		    "hash the file with mosquitto_passwd -U)");
		return -1;
	}
	e->kind = (uint8_t)(h[1] - '0');
	n = split_dollars(h + 3, f, len, e->kind == 7 ? 3 : 2);
	if (n != (e->kind == 7 ? 3u : 2u)) {
		auth_text_error(p, "user %.64s: expected $%u$%sSALT$HASH", e->user, e->kind,
		    e->kind == 7 ? "ITERATIONS$" : "");
		return -1;
	}
	if (e->kind == 7 && (e->iterations = iterations_field(f[0], len[0])) == 0) {
		auth_text_error(p, "user %.64s: iterations must be a number from 1 to %d", e->user,
		    PW_MAX_ITERATIONS);
		return -1;
	}
	salt = b64_field(f[n - 2], len[n - 2], e->salt, sizeof(e->salt));
	hash = b64_field(f[n - 1], len[n - 1], e->hash, sizeof(e->hash));
	if (salt <= 0) {
		auth_text_error(p, "user %.64s: the salt is not base64 of 1 to %d bytes", e->user,
		    PW_SALT_MAX);
		return -1;
	}
	if (hash != PW_HASH_LEN) {
		auth_text_error(p, "user %.64s: the hash is not base64 of %d bytes", e->user,
		    PW_HASH_LEN);
		return -1;
	}
	e->salt_len = (size_t)salt;
	return 0;
}

struct pw_lines {
	struct auth_text	*p;
	struct passwd_file	*pf;
};

static void
parse_line(void *arg, size_t lineno, char *line, const char *why)
{
	struct auth_text *p = ((struct pw_lines *)arg)->p;
	struct passwd_file *pf = ((struct pw_lines *)arg)->pf;
	struct pw_entry e = { .line = lineno };
	char *colon, *user;

	p->line = lineno;
	if (line == NULL) {
		auth_text_error(p, "%s", why);
		return;
	}
	if ((colon = strchr(line, ':')) == NULL) {
		auth_text_error(p, "expected USER:HASH, as mosquitto_passwd writes it");
		return;
	}
	*colon = '\0';
	user = auth_trim(line);
	if (user[0] == '\0' || strlen(user) > PW_USER_MAX) {
		auth_text_error(p, "the user name must be 1 to %d bytes", PW_USER_MAX);
		return;
	}
	e.user = user;
	if (parse_hash(p, auth_trim(colon + 1), &e) == -1)
		return;
	e.user = xstrdup(user);
	pf->v = xreallocarray(pf->v, pf->n + 1, sizeof(*pf->v));
	pf->v[pf->n++] = e;
}

static int
entry_cmp(const void *a, const void *b)
{
	const struct pw_entry *x = a, *y = b;
	int c = strcmp(x->user, y->user);

	return c != 0 ? c : (x->line > y->line) - (x->line < y->line);
}

static int
entry_cmp_user(const void *a, const void *b)
{
	return strcmp(((const struct pw_entry *)a)->user, ((const struct pw_entry *)b)->user);
}

/* Sorts the users; a user listed twice is an error (at its second line). */
static void
sort_users(struct auth_text *p, struct passwd_file *pf)
{
	if (pf->n > 1)
		qsort(pf->v, pf->n, sizeof(*pf->v), entry_cmp);
	for (size_t i = 1; i < pf->n; i++) {
		if (strcmp(pf->v[i - 1].user, pf->v[i].user) != 0)
			continue;
		p->line = pf->v[i].line;
		auth_text_error(p, "user %.64s is already on line %zu", pf->v[i].user,
		    pf->v[i - 1].line);
	}
}

/* An unknown user is checked as the file's most common kind of entry
 * ($6$, or $7$ with its iterations) is, so that the time a login takes
 * does not tell whether the user exists; mosquitto_passwd's default
 * ($7$, 101 iterations) for an empty file. */
static void
choose_dummy(struct passwd_file *pf)
{
	enum { KINDS = 16 };
	struct { uint8_t kind; unsigned iterations; size_t n; } seen[KINDS];
	size_t nseen = 0, best = 0, k;

	pf->dummy = (struct pw_entry){ .kind = 7, .iterations = PW_DUMMY_ITERATIONS,
				       .salt_len = 12 };
	memcpy(pf->dummy.salt, "0123456789ab", 12);
	for (size_t i = 0; i < pf->n; i++) {
		const struct pw_entry *e = &pf->v[i];

		for (k = 0; k < nseen; k++)
			if (seen[k].kind == e->kind && seen[k].iterations == e->iterations)
				break;
		if (k == nseen && nseen == KINDS)
			continue;
		if (k == nseen) {
			seen[k].kind = e->kind;
			seen[k].iterations = e->iterations;
			seen[k].n = 0;
			nseen++;
		}
		if (++seen[k].n > seen[best].n)
			best = k;
	}
	if (nseen > 0) {
		pf->dummy.kind = seen[best].kind;
		pf->dummy.iterations = seen[best].iterations;
	}
}

struct passwd_file *
passwd_parse(const char *name, const char *buf, size_t len, struct conf_errors *errs)
{
	struct auth_text p = { name, 0, errs, 0 };
	struct passwd_file *pf = xcalloc(1, sizeof(*pf));
	struct pw_lines arg = { &p, pf };

	auth_each_line(buf, len, PW_LINE_MAX, parse_line, &arg);
	sort_users(&p, pf);
	choose_dummy(pf);
	if (p.nerr > 0) {
		passwd_free(pf);
		return NULL;
	}
	return pf;
}

void
passwd_free(struct passwd_file *pf)
{
	if (pf == NULL)
		return;
	for (size_t i = 0; i < pf->n; i++)
		free(pf->v[i].user);
	free(pf->v);
	free(pf);
}

size_t
passwd_count(const struct passwd_file *pf)
{
	return pf != NULL ? pf->n : 0;
}

void
passwd_unknown_cost(const struct passwd_file *pf, uint8_t *kind, unsigned *iterations)
{
	*kind = pf->dummy.kind;
	*iterations = pf->dummy.iterations;
}

/* The hash of password under e's method and salt; -1 if libcrypto fails. */
static int
digest(const struct pw_entry *e, const void *password, size_t len, uint8_t *out)
{
	EVP_MD_CTX *ctx;
	unsigned olen = 0;
	int ok;

	if (e->kind == 7)
		return PKCS5_PBKDF2_HMAC(password, (int)len, e->salt, (int)e->salt_len,
		    (int)e->iterations, EVP_sha512(), PW_HASH_LEN, out) == 1 ? 0 : -1;
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return -1;
	ok = EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, password, len) == 1 &&
	    EVP_DigestUpdate(ctx, e->salt, e->salt_len) == 1 &&
	    EVP_DigestFinal_ex(ctx, out, &olen) == 1 && olen == PW_HASH_LEN;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

bool
passwd_check(const struct passwd_file *pf, const char *user, const void *password,
    size_t len)
{
	/* An unknown user costs a check too, so that timing does not tell. */
	static const struct pw_entry none = { .kind = 7, .iterations = PW_DUMMY_ITERATIONS,
					      .salt = "0123456789ab", .salt_len = 12 };
	const struct pw_entry *dummy = pf != NULL ? &pf->dummy : &none;
	struct pw_entry key = { .user = (char *)user };
	const struct pw_entry *e = NULL;
	uint8_t out[PW_HASH_LEN];
	bool ok;

	if (pf != NULL && pf->n > 0)
		e = bsearch(&key, pf->v, pf->n, sizeof(*pf->v), entry_cmp_user);
	if (len > INT32_MAX)
		return false;
	if (digest(e != NULL ? e : dummy, password != NULL ? password : "", len, out) == -1)
		return false;
	ok = e != NULL && CRYPTO_memcmp(out, e->hash, PW_HASH_LEN) == 0;
	OPENSSL_cleanse(out, sizeof(out));
	return ok;
}
