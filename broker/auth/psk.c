/* The pre-shared key file of TLS-PSK listeners (psk_file), in
 * mosquitto's format: one line per client,
 *   IDENTITY:KEY
 * with KEY in hexadecimal, without a leading 0x.  Empty lines and lines
 * starting with '#' are skipped; anything else is an error with its line
 * number.  The identity may become the MQTT user name
 * (use_identity_as_username): it must be UTF-8 without control
 * characters.  It may hold a ':' (the key cannot: the line is split at
 * its last one). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth/auth.h"
#include "topic.h"
#include "xmalloc.h"

#define PSK_LINE_MAX	(PSK_IDENTITY_MAX + 2 * PSK_KEY_MAX + 1024)

struct psk_entry {
	char		*identity;
	uint8_t		*key;
	size_t		 len;
	size_t		 line;
};

struct psk_file {
	struct psk_entry *v;		/* sorted by identity */
	size_t		  n;
};

struct psk_parser {
	struct auth_text	 t;
	struct psk_file		*pf;
};

static int
hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The key of s into out (room for PSK_KEY_MAX bytes): its length, or 0
 * with an error. */
static size_t
parse_key(struct psk_parser *p, const char *identity, const char *s, uint8_t *out)
{
	size_t n = strlen(s);

	for (size_t i = 0; i < n; i++)
		if (hex_digit(s[i]) < 0) {
			auth_text_error(&p->t, "identity %.64s: the key is not hexadecimal (no 0x before "
			    "it)", identity);
			return 0;
		}
	if (n == 0 || n % 2 != 0 || n / 2 > PSK_KEY_MAX) {
		auth_text_error(&p->t, "identity %.64s: the key must be an even number of hex digits, "
		    "2 to %d", identity, 2 * PSK_KEY_MAX);
		return 0;
	}
	for (size_t i = 0; i < n; i += 2)
		out[i / 2] = (uint8_t)(hex_digit(s[i]) << 4 | hex_digit(s[i + 1]));
	return n / 2;
}

static bool
identity_ok(struct psk_parser *p, const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > PSK_IDENTITY_MAX) {
		auth_text_error(&p->t, "the identity must be 1 to %d bytes", PSK_IDENTITY_MAX);
		return false;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)id[i] < 0x20 || id[i] == 0x7f) {
			auth_text_error(&p->t, "the identity has a control character");
			return false;
		}
	if (!utf8_valid(id, n)) {
		auth_text_error(&p->t, "the identity is not UTF-8");
		return false;
	}
	return true;
}

static void
parse_line(void *arg, size_t lineno, char *line, const char *why)
{
	struct psk_parser *p = arg;
	uint8_t key[PSK_KEY_MAX];
	struct psk_entry *e;
	char *colon, *id;
	size_t len;

	p->t.line = lineno;
	if (line == NULL) {
		auth_text_error(&p->t, "%s", why);
		return;
	}
	if ((colon = strrchr(line, ':')) == NULL) {
		auth_text_error(&p->t, "expected IDENTITY:KEY, the key in hexadecimal");
		return;
	}
	*colon = '\0';
	id = auth_trim(line);
	if (!identity_ok(p, id) || (len = parse_key(p, id, auth_trim(colon + 1), key)) == 0)
		return;
	p->pf->v = xreallocarray(p->pf->v, p->pf->n + 1, sizeof(*p->pf->v));
	e = &p->pf->v[p->pf->n++];
	e->identity = xstrdup(id);
	e->key = xmemdup(key, len);
	e->len = len;
	e->line = lineno;
	OPENSSL_cleanse(key, len);
}

static int
entry_cmp(const void *a, const void *b)
{
	const struct psk_entry *x = a, *y = b;
	int c = strcmp(x->identity, y->identity);

	return c != 0 ? c : (x->line > y->line) - (x->line < y->line);
}

static int
entry_cmp_identity(const void *a, const void *b)
{
	return strcmp(((const struct psk_entry *)a)->identity,
	    ((const struct psk_entry *)b)->identity);
}

struct psk_file *
psk_parse(const char *name, const char *buf, size_t len, struct conf_errors *errs)
{
	struct psk_parser p = { { name, 0, errs, 0 }, xcalloc(1, sizeof(struct psk_file)) };
	struct psk_file *pf = p.pf;

	auth_each_line(buf, len, PSK_LINE_MAX, parse_line, &p);
	if (pf->n > 1)
		qsort(pf->v, pf->n, sizeof(*pf->v), entry_cmp);
	for (size_t i = 1; i < pf->n; i++) {
		if (strcmp(pf->v[i - 1].identity, pf->v[i].identity) != 0)
			continue;
		p.t.line = pf->v[i].line;
		auth_text_error(&p.t, "identity %.64s is already on line %zu", pf->v[i].identity,
		    pf->v[i - 1].line);
	}
	if (p.t.nerr > 0) {
		psk_free(pf);
		return NULL;
	}
	return pf;
}

void
psk_free(struct psk_file *pf)
{
	if (pf == NULL)
		return;
	for (size_t i = 0; i < pf->n; i++) {
		free(pf->v[i].identity);
		OPENSSL_cleanse(pf->v[i].key, pf->v[i].len);
		free(pf->v[i].key);
	}
	free(pf->v);
	free(pf);
}

size_t
psk_count(const struct psk_file *pf)
{
	return pf != NULL ? pf->n : 0;
}

size_t
psk_key(const struct psk_file *pf, const char *identity, uint8_t *out, size_t max)
{
	struct psk_entry key = { .identity = (char *)identity };
	const struct psk_entry *e;

	if (pf == NULL || pf->n == 0 || identity == NULL)
		return 0;
	e = bsearch(&key, pf->v, pf->n, sizeof(*pf->v), entry_cmp_identity);
	if (e == NULL || e->len > max)
		return 0;
	memcpy(out, e->key, e->len);
	return e->len;
}
