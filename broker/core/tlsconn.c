/* TLS on a client connection, through libevent's OpenSSL bufferevents:
 * the bufferevent, the end of the handshake (the peer's identity when
 * its listener takes it as the user name), and OpenSSL's words for what
 * went wrong.  The contexts are the listeners' (broker/tlsctx.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "auth/auth.h"
#include "core/core.h"
#include "log.h"
#include "topic.h"
#include "xmalloc.h"

/* A common name longer than this is not an identity (RFC 5280 allows 64). */
#define IDENTITY_MAX 256
/* Nor is a subject longer than this one. */
#define SUBJECT_MAX 1024

struct bufferevent *
tls_bufferevent(struct client *cl, int fd)
{
	struct bufferevent *bev;
	SSL *ssl;

	if ((ssl = SSL_new(cl->listener->tls)) == NULL) {
		ERR_clear_error();
		return NULL;
	}
	bev = bufferevent_openssl_socket_new(cl->b->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)		/* it freed the SSL */
		return NULL;
	/* A peer that closes without close_notify has ended, not failed. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	cl->ssl = ssl;
	SSL_set_app_data(ssl, cl);	/* for tls_psk_key */
	return bev;
}

/* The identity a client offered, for psk_used() and the log: the last
 * one whose key is known, else the last one offered. */
static void
note_identity(struct client *cl, const char *identity, bool known)
{
	size_t n = strlen(identity);

	if (!known && cl->psk_known)
		return;
	free(cl->psk_identity);
	/* An unknown one is any bytes: not written to the log as they are. */
	if (known || utf8_valid(identity, n))
		cl->psk_identity = xstrdup(identity);
	else
		xasprintf(&cl->psk_identity, "of %zu bytes, not UTF-8", n);
	cl->psk_known = known;
}

unsigned int
tls_psk_key(SSL *ssl, const char *identity, unsigned char *psk, unsigned int max)
{
	struct client *cl = SSL_get_app_data(ssl);
	size_t n;

	if (cl == NULL || identity == NULL)
		return 0;
	/* The auth of the client is its listener's: per_listener_settings
	 * gives it a psk_file of its own. */
	n = auth_psk_key(cl->auth, identity, psk, max);
	/* TLS 1.3 identities were noted from the ClientHello (tls_psk_hello)
	 * for the log; which one OpenSSL used is known only here: it asks
	 * for them in turn, as it parses the ClientHello (any ticket age, an
	 * identity cut at a NUL byte), and takes the first it gets a key of. */
	if (n > 0) {
		free(cl->psk_keyed);
		cl->psk_keyed = xstrdup(identity);
	}
	if (SSL_version(ssl) < TLS1_3_VERSION)
		note_identity(cl, identity, n > 0);
	return (unsigned)n;
}

/* A TLS 1.2 cipher whose key exchange uses a pre-shared key. */
static bool
psk_cipher(const SSL_CIPHER *c)
{
	int kx = c != NULL ? SSL_CIPHER_get_kx_nid(c) : NID_undef;

	return kx == NID_kx_psk || kx == NID_kx_ecdhe_psk || kx == NID_kx_dhe_psk ||
	    kx == NID_kx_rsa_psk;
}

/* An identity of a TLS 1.3 ClientHello: noted; true if it is known. */
static bool
offer_identity(struct client *cl, const unsigned char *id, size_t n)
{
	uint8_t key[PSK_KEY_MAX];
	char name[PSK_IDENTITY_MAX + 1];
	bool known;

	if (n == 0 || n > PSK_IDENTITY_MAX) {
		snprintf(name, sizeof(name), "of %zu bytes%s", n, n == 0 ? "" :
		    " (more than psk_file allows)");
		note_identity(cl, name, false);
		return false;
	}
	memcpy(name, id, n);
	name[n] = '\0';
	known = auth_psk_key(cl->auth, name, key, sizeof(key)) > 0;
	OPENSSL_cleanse(key, sizeof(key));
	note_identity(cl, name, known);
	return known;
}

enum offered { OFFERED_NONE, OFFERED_KNOWN, OFFERED_UNKNOWN };

/* The external identities of a TLS 1.3 pre_shared_key extension (RFC
 * 8446 4.2.11): those whose obfuscated ticket age is 0, which a session
 * ticket's is not (but by a chance of 2^-32): is one in psk_file?  Such
 * an identity with a NUL byte is refused: OpenSSL would look up what
 * comes before the NUL (a ticket may hold any bytes). */
static enum offered
external_identities(struct client *cl, const unsigned char *p, size_t len)
{
	size_t ids, off = 2, n;
	bool external, any = false, known = false;

	if (len < 2 || (ids = (size_t)p[0] << 8 | p[1]) > len - 2)
		return OFFERED_UNKNOWN;
	while (off < ids + 2) {
		if (off + 2 > ids + 2)
			return OFFERED_UNKNOWN;
		n = (size_t)p[off] << 8 | p[off + 1];
		if (off + 2 + n + 4 > ids + 2)
			return OFFERED_UNKNOWN;
		external = memcmp(p + off + 2 + n, "\0\0\0\0", 4) == 0;
		if (external && memchr(p + off + 2, '\0', n) != NULL) {
			char name[64];

			snprintf(name, sizeof(name), "of %zu bytes with a NUL byte", n);
			cl->psk_known = false;		/* what the log says is refused */
			note_identity(cl, name, false);
			return OFFERED_UNKNOWN;
		}
		if (external && !known)
			known = offer_identity(cl, p + off + 2, n);
		any = any || external;
		off += 2 + n + 4;	/* the identity, its obfuscated ticket age */
	}
	return known ? OFFERED_KNOWN : any ? OFFERED_UNKNOWN : OFFERED_NONE;
}

/* A client that offers a pre-shared key (its extension in TLS 1.3, a PSK
 * cipher in TLS 1.2: OpenSSL offers none without a key) is held to it.
 * Without this, a listener with a certificate took the client's first
 * TLS 1.3 suite (SHA-384 in OpenSSL's default order), with which a key
 * that TLS 1.3 ties to SHA-256 cannot be used, or an identity it did not
 * know: the handshake went on with the certificate, and the key was
 * never checked.  A session ticket (of a certificate client, from
 * before the listener had keys) leads to a full handshake, as anywhere. */
/* The ciphers of the connection's lists (the listener's configuration,
 * else OpenSSL's) that can carry a pre-shared key, as an OpenSSL list in
 * buf: TLS 1.3 suites of SHA-256 (tls13), or TLS 1.2 ciphers with a PSK
 * key exchange.  False if there is none. */
static bool
psk_list(SSL *ssl, bool tls13, char *buf, size_t len)
{
	STACK_OF(SSL_CIPHER) *sk = SSL_get_ciphers(ssl);
	size_t off = 0;
	int n;

	for (int i = 0; i < sk_SSL_CIPHER_num(sk); i++) {
		const SSL_CIPHER *c = sk_SSL_CIPHER_value(sk, i);
		const EVP_MD *md = SSL_CIPHER_get_handshake_digest(c);
		bool v13 = SSL_CIPHER_get_kx_nid(c) == NID_kx_any;	/* TLS 1.3 */

		if (tls13 ? !v13 || md == NULL || EVP_MD_get_type(md) != NID_sha256 :
		    !psk_cipher(c))
			continue;
		n = snprintf(buf + off, len - off, "%s%s", off > 0 ? ":" : "",
		    SSL_CIPHER_get_name(c));
		if (n < 0 || (size_t)n >= len - off)
			return false;
		off += (size_t)n;
	}
	return off > 0;
}

int
tls_psk_hello(SSL *ssl, int *alert, void *arg)
{
	struct client *cl = SSL_get_app_data(ssl);
	const unsigned char *p;
	char list[4096];
	size_t len;
	bool offered = false;

	(void)arg;
	if (cl != NULL && SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_psk, &p, &len) == 1) {
		/* OpenSSL would go on with the certificate, if the listener has
		 * one, past an identity it does not know. */
		switch (external_identities(cl, p, len)) {
		case OFFERED_UNKNOWN:
			*alert = SSL_AD_UNKNOWN_PSK_IDENTITY;
			return SSL_CLIENT_HELLO_ERROR;
		case OFFERED_KNOWN:
			if (psk_list(ssl, true, list, sizeof(list)) &&
			    SSL_set_ciphersuites(ssl, list) != 1)
				return SSL_CLIENT_HELLO_ERROR;
			break;
		case OFFERED_NONE:
			break;
		}
	}
	len = SSL_client_hello_get0_ciphers(ssl, &p);
	for (size_t i = 0; i + 1 < len && !offered; i += 2)
		offered = psk_cipher(SSL_CIPHER_find(ssl, p + i));
	if (offered && psk_list(ssl, false, list, sizeof(list)) &&
	    SSL_set_cipher_list(ssl, list) != 1)
		return SSL_CLIENT_HELLO_ERROR;
	return SSL_CLIENT_HELLO_SUCCESS;
}

/* The identity of the pre-shared key the handshake used; NULL if it used
 * none.  TLS 1.2 says so by its cipher; TLS 1.3 by a resumption, which
 * on a listener that keeps no sessions (tlsctx.c) can only be an external
 * pre-shared key: the last one tls_psk_key() found (OpenSSL takes the
 * first identity it gets a key of whose hash fits the suite, and every
 * key's is SHA-256), not what tls_psk_hello() read of the ClientHello. */
static const char *
psk_used(const struct client *cl)
{
	const SSL_CIPHER *c = SSL_get_current_cipher(cl->ssl);

	if (SSL_version(cl->ssl) >= TLS1_3_VERSION)
		return SSL_session_reused(cl->ssl) ? cl->psk_keyed : NULL;
	return psk_cipher(c) ? SSL_get_psk_identity(cl->ssl) : NULL;
}

/* The common name of the peer's certificate, malloc'd; NULL with *why if
 * it has none, or one that cannot be a user name. */
static char *
peer_common_name(SSL *ssl, const char **why)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);
	X509_NAME *name = cert != NULL ? X509_get_subject_name(cert) : NULL;
	int i = name != NULL ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
	unsigned char *utf8 = NULL;
	char *cn = NULL;
	int len;

	*why = "the client certificate has no common name (use_identity_as_username)";
	if (i < 0)
		return NULL;
	len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
	if (len <= 0 || len > IDENTITY_MAX) {
		OPENSSL_free(utf8);
		ERR_clear_error();
		return NULL;
	}
	*why = "the common name of the client certificate has a control character";
	for (int j = 0; j < len; j++)
		if (utf8[j] < 0x20 || utf8[j] == 0x7f)
			goto out;
	cn = xmemdup(utf8, (size_t)len + 1);
	cn[len] = '\0';
out:
	OPENSSL_free(utf8);
	return cn;
}

/* The subject of the peer's certificate as RFC 2253 writes it (and
 * mosquitto's use_subject_as_username: "CN=alice,O=Example"), malloc'd;
 * control and non-ASCII characters are escaped.  NULL with *why if it
 * cannot be had. */
static char *
peer_subject(SSL *ssl, const char **why)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *subject = NULL;
	long len;

	*why = "the subject of the client certificate cannot be read (use_subject_as_username)";
	if (cert != NULL && bio != NULL && X509_NAME_print_ex(bio, X509_get_subject_name(cert),
	    0, XN_FLAG_RFC2253) > 0 && (len = BIO_get_mem_data(bio, &data)) > 0) {
		if (len <= SUBJECT_MAX)
			(void)xasprintf(&subject, "%.*s", (int)len, data);	/* not terminated */
		else
			*why = "the subject of the client certificate is too long for a user name";
	}
	BIO_free(bio);
	ERR_clear_error();
	return subject;
}

int
tls_handshake_done(struct client *cl, const char **why)
{
	const struct listener_conf *lc = cl->listener->conf;

	/* A key offered is a key checked: not one passed over for the
	 * certificate (a TLS 1.3 suite of another hash than the key's). */
	if (cl->psk_identity != NULL && psk_used(cl) == NULL) {
		*why = "the pre-shared key offered could not be used (no cipher suite for it in"
		    " common)";
		return -1;
	}
	/* A pre-shared key stands for a client: its identity is in the file
	 * now (no session is resumed), checked when it was read (UTF-8, no
	 * control characters). */
	if (lc != NULL && lc->use_identity_as_username && psk_used(cl) != NULL) {
		cl->tls_identity = xstrdup(psk_used(cl));
		return 0;
	}
	/* require_certificate goes with these: the certificate was verified. */
	if (lc != NULL && lc->use_identity_as_username && !lc->require_certificate) {
		*why = "no pre-shared key was used, and the listener takes no certificate"
		    " (use_identity_as_username)";
		return -1;
	}
	if (lc != NULL && lc->use_identity_as_username)
		cl->tls_identity = peer_common_name(cl->ssl, why);
	else if (lc != NULL && lc->use_subject_as_username)
		cl->tls_identity = peer_subject(cl->ssl, why);
	else
		return 0;
	return cl->tls_identity != NULL ? 0 : -1;
}

void
tls_describe(const struct client *cl, char *buf, size_t len)
{
	X509 *cert = SSL_get0_peer_certificate(cl->ssl);
	char cn[128] = "?";

	if (cert != NULL && X509_NAME_get_text_by_NID(X509_get_subject_name(cert),
	    NID_commonName, cn, sizeof(cn)) < 0)
		snprintf(cn, sizeof(cn), "?");
	ERR_clear_error();
	if (psk_used(cl) != NULL) {
		snprintf(buf, len, "%s %s, pre-shared key identity %s", SSL_get_version(cl->ssl),
		    SSL_CIPHER_get_name(SSL_get_current_cipher(cl->ssl)), psk_used(cl));
		return;
	}
	snprintf(buf, len, "%s %s%s%s", SSL_get_version(cl->ssl),
	    SSL_CIPHER_get_name(SSL_get_current_cipher(cl->ssl)),
	    cert != NULL ? ", certificate CN=" : "", cert != NULL ? cn : "");
}

/* Plain text where a TLS record was due: OpenSSL's first look at the
 * record header found no TLS version, or an HTTP request. */
static bool
not_tls(unsigned long e)
{
	int r = ERR_GET_REASON(e);

	return ERR_GET_LIB(e) == ERR_LIB_SSL && (r == SSL_R_WRONG_VERSION_NUMBER ||
	    r == SSL_R_HTTP_REQUEST || r == SSL_R_HTTPS_PROXY_REQUEST);
}

/* The errors the bufferevent kept (the last one is taken first: the
 * first one, usually the reason, is what is kept), with the result of
 * the certificate check when it failed; else the socket's error, or an
 * end; nothing if the peer went before it sent a byte. */
void
tls_error_text(struct client *cl, short what, char *buf, size_t len, bool *plain)
{
	unsigned long e, first = 0;
	long verify;
	const char *r;
	int n = 0;

	*plain = false;
	buf[0] = '\0';
	while ((e = bufferevent_get_openssl_error(cl->raw)) != 0) {
		if (ERR_GET_LIB(e) == 0 && !ERR_SYSTEM_ERROR(e))
			continue;	/* libevent keeps SSL_get_error()'s code too */
		first = e;
		*plain |= not_tls(e);
	}
	ERR_clear_error();
	if (first != 0) {
		r = ERR_SYSTEM_ERROR(first) ? strerror(ERR_GET_REASON(first)) :
		    ERR_reason_error_string(first);
		n = snprintf(buf, len, "%s", r != NULL ? r : "unknown OpenSSL error");
		verify = SSL_get_verify_result(cl->ssl);
		if (verify != X509_V_OK && n > 0 && (size_t)n < len)
			snprintf(buf + n, len - (size_t)n, " (%s)",
			    X509_verify_cert_error_string(verify));
		return;
	}
	if ((what & BEV_EVENT_ERROR) && EVUTIL_SOCKET_ERROR() != 0)
		snprintf(buf, len, "%s", strerror(EVUTIL_SOCKET_ERROR()));
	else if (BIO_number_read(SSL_get_rbio(cl->ssl)) > 0)
		snprintf(buf, len, "the client closed the connection");
}

void
tls_close_notify(struct client *cl)
{
	if (cl->ssl == NULL || cl->handshaking || !SSL_is_init_finished(cl->ssl))
		return;
	/* Non-blocking: the alert is written if the socket takes it now. */
	(void)SSL_shutdown(cl->ssl);
	ERR_clear_error();
}

/* What the socket still holds once a write failed, decrypted into the
 * connection's input, up to max bytes; how much.  Bytes the kernel
 * received before the peer's reset stay readable after it, and OpenSSL
 * reads them even though its write failed. */
size_t
tls_read_rest(struct client *cl, size_t max)
{
	struct evbuffer *in = bufferevent_get_input(cl->raw);
	char buf[16384];
	size_t total = 0;
	int n;

	if (cl->ssl == NULL || !SSL_is_init_finished(cl->ssl))
		return 0;
	ERR_clear_error();
	while (total < max && (n = SSL_read(cl->ssl, buf, sizeof(buf))) > 0) {
		if (evbuffer_add(in, buf, (size_t)n) == -1)
			break;
		total += (size_t)n;
	}
	ERR_clear_error();
	/* Under a WebSocket the filter takes the frames now (as
	 * client_read_more has it do). */
	if (total > 0 && cl->raw != cl->bev)
		(void)bufferevent_flush(cl->bev, EV_READ, BEV_FLUSH);
	return total;
}
