/* The TLS context of a listener block (OpenSSL 3): its certificate and
 * key, the CAs client certificates are checked against, whether one is
 * required, the oldest TLS version and the ciphers.  Made at start-up (a
 * failure stops the broker) and again at each SIGHUP (a failure keeps
 * the context the listener has). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "broker.h"

/* Identifies the broker's sessions, for resumption with client
 * certificates. */
static const unsigned char session_context[] = "broker";

/* OpenSSL's reason for the last failure, drained from its queue. */
static void
ssl_reason(char *buf, size_t len)
{
	unsigned long e, first = 0;
	const char *r;

	while ((e = ERR_get_error()) != 0)
		if (first == 0)
			first = e;
	if (first != 0 && ERR_SYSTEM_ERROR(first))
		snprintf(buf, len, "%s", strerror(ERR_GET_REASON(first)));
	else if (ERR_GET_LIB(first) == ERR_LIB_PEM && ERR_GET_REASON(first) == PEM_R_NO_START_LINE)
		snprintf(buf, len, "not a PEM file (no start line)");
	else if (first != 0 && (r = ERR_reason_error_string(first)) != NULL)
		snprintf(buf, len, "%s", r);
	else
		snprintf(buf, len, "unknown OpenSSL error");
}

/* An encrypted key would make OpenSSL ask for its pass phrase on the
 * terminal: there is none to give. */
static int
no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)arg;
	return -1;
}

/* err gets "KEY FILE: reason"; returns -1. */
static int
fail(char *err, size_t len, const char *key, const char *value)
{
	char why[160];

	ssl_reason(why, sizeof(why));
	snprintf(err, len, "%s %s: %s", key, value, why);
	return -1;
}

static int
load_identity(SSL_CTX *ctx, const struct listener_conf *l, char *err, size_t len)
{
	unsigned long e;

	SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
	if (SSL_CTX_use_certificate_chain_file(ctx, l->certfile) != 1)
		return fail(err, len, "certfile", l->certfile);
	if (SSL_CTX_use_PrivateKey_file(ctx, l->keyfile, SSL_FILETYPE_PEM) == 1 &&
	    SSL_CTX_check_private_key(ctx) == 1)
		return 0;
	/* A key of another type than the certificate's is only found by the
	 * check; one of the same type, as it is loaded. */
	e = ERR_peek_error();
	if (e == 0 || (ERR_GET_LIB(e) == ERR_LIB_X509 &&
	    ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)) {
		ERR_clear_error();
		snprintf(err, len, "keyfile %s is not the key of certfile %s", l->keyfile,
		    l->certfile);
		return -1;
	}
	return fail(err, len, "keyfile", l->keyfile);
}

/* Revoked client certificates: the CRLs of crlfile, against which the
 * client's own certificate is checked (as in mosquitto).  A CRL past its
 * next update fails every certificate of its CA ("CRL has expired"):
 * the operator puts a fresh one in its place and sends SIGHUP. */
static int
load_crls(SSL_CTX *ctx, const struct listener_conf *l, char *err, size_t len)
{
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	X509_LOOKUP *lookup;
	unsigned long e;

	if (l->crlfile == NULL)
		return 0;
	if ((lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file())) == NULL)
		return fail(err, len, "crlfile", l->crlfile);
	if (X509_load_crl_file(lookup, l->crlfile, X509_FILETYPE_PEM) < 1) {
		/* A PEM file of certificates has no CRL's start line. */
		e = ERR_peek_error();
		if (e == 0 || (ERR_GET_LIB(e) == ERR_LIB_PEM &&
		    ERR_GET_REASON(e) == PEM_R_NO_START_LINE)) {
			ERR_clear_error();
			snprintf(err, len, "crlfile %s: no certificate revocation list in it",
			    l->crlfile);
			return -1;
		}
		return fail(err, len, "crlfile", l->crlfile);
	}
	if (X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK) != 1)
		return fail(err, len, "crlfile", l->crlfile);
	return 0;
}

/* Client certificates: checked against cafile and capath (and crlfile)
 * when required, and the CAs of cafile named to clients as acceptable. */
static int
load_client_cas(SSL_CTX *ctx, const struct listener_conf *l, char *err, size_t len)
{
	STACK_OF(X509_NAME) *names;

	if (l->cafile == NULL && l->capath == NULL) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		return 0;
	}
	if (SSL_CTX_load_verify_locations(ctx, l->cafile, l->capath) != 1)
		return fail(err, len, l->cafile != NULL ? "cafile" : "capath",
		    l->cafile != NULL ? l->cafile : l->capath);
	if (l->cafile != NULL) {
		if ((names = SSL_load_client_CA_file(l->cafile)) == NULL)
			return fail(err, len, "cafile", l->cafile);
		SSL_CTX_set_client_CA_list(ctx, names);
	}
	if (load_crls(ctx, l, err, len) == -1)
		return -1;
	SSL_CTX_set_verify(ctx, l->require_certificate ?
	    SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_NONE, NULL);
	return 0;
}

static int
set_protocol(SSL_CTX *ctx, const struct listener_conf *l, char *err, size_t len)
{
	bool v13 = l->tls_version != NULL && strcmp(l->tls_version, "tlsv1.3") == 0;

	if (SSL_CTX_set_min_proto_version(ctx, v13 ? TLS1_3_VERSION : TLS1_2_VERSION) != 1)
		return fail(err, len, "tls_version", v13 ? "tlsv1.3" : "tlsv1.2");
	if (l->ciphers != NULL && SSL_CTX_set_cipher_list(ctx, l->ciphers) != 1)
		return fail(err, len, "ciphers", l->ciphers);
	if (l->ciphersuites != NULL && SSL_CTX_set_ciphersuites(ctx, l->ciphersuites) != 1)
		return fail(err, len, "ciphersuites", l->ciphersuites);
	/* No client-initiated renegotiation (a cheap way to load a server);
	 * idle connections give their buffers back. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_set_session_id_context(ctx, session_context,
	    sizeof(session_context) - 1) != 1)
		return fail(err, len, "listener", l->listener);
	return 0;
}

/* Pre-shared keys (psk_hint): the hint, and the keys of the client's
 * psk_file, looked up at each handshake (core/tlsconn.c).  No session is
 * kept for resumption: a resumed session asks for no key, so a client
 * taken out of psk_file would still get in with one. */
static int
set_psk(SSL_CTX *ctx, const struct listener_conf *l, char *err, size_t len)
{
	if (l->psk_hint == NULL)
		return 0;
	if (SSL_CTX_use_psk_identity_hint(ctx, l->psk_hint) != 1)
		return fail(err, len, "psk_hint", l->psk_hint);
	SSL_CTX_set_psk_server_callback(ctx, tls_psk_key);
	SSL_CTX_set_client_hello_cb(ctx, tls_psk_hello, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	if (SSL_CTX_set_num_tickets(ctx, 0) != 1)
		return fail(err, len, "psk_hint", l->psk_hint);
	return 0;
}

SSL_CTX *
tls_context_new(const struct listener_conf *l, char *err, size_t len)
{
	SSL_CTX *ctx;

	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		fail(err, len, "listener", l->listener);
		return NULL;
	}
	if (set_protocol(ctx, l, err, len) == -1 || set_psk(ctx, l, err, len) == -1 ||
	    (l->certfile != NULL && (load_identity(ctx, l, err, len) == -1 ||
	    load_client_cas(ctx, l, err, len) == -1))) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* "certificate CN=localhost, serial 1A2B, expires 2027-01-01": what an
 * operator checks after replacing one.  True if it has expired. */
static bool
describe_certificate(X509 *cert, char *buf, size_t len)
{
	char cn[128] = "?", *serial = NULL;
	BIGNUM *bn;
	struct tm tm;
	bool expired;

	if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn,
	    sizeof(cn)) < 0)
		snprintf(cn, sizeof(cn), "?");
	if ((bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL)) != NULL)
		serial = BN_bn2hex(bn);
	if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1)
		memset(&tm, 0, sizeof(tm));
	expired = X509_cmp_current_time(X509_get0_notAfter(cert)) < 0;
	snprintf(buf, len, "certificate CN=%s, serial %s, %s %04d-%02d-%02d", cn,
	    serial != NULL ? serial : "?", expired ? "EXPIRED on" : "expires",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
	OPENSSL_free(serial);
	BN_free(bn);
	ERR_clear_error();
	return expired;
}

bool
tls_context_describe(SSL_CTX *ctx, const struct listener_conf *l, char *buf, size_t len)
{
	X509 *cert = SSL_CTX_get0_certificate(ctx);
	bool expired = false;
	size_t n;

	buf[0] = '\0';
	if (cert != NULL)
		expired = describe_certificate(cert, buf, len);
	else if (l->psk_hint == NULL)
		snprintf(buf, len, "no certificate");
	n = strlen(buf);
	if (l->psk_hint != NULL && n + 1 < len)
		snprintf(buf + n, len - n, "%spre-shared keys (hint %s)", n > 0 ? ", " : "",
		    l->psk_hint);
	return expired;
}

bool
tls_context_loads(const struct listener_conf *l, char *err, size_t len)
{
	SSL_CTX *ctx;

	if (!listener_conf_tls(l))
		return true;
	if ((ctx = tls_context_new(l, err, len)) == NULL)
		return false;
	SSL_CTX_free(ctx);
	return true;
}
