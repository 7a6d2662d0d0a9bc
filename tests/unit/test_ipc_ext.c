/* The MQTT 5 side of the master/topicd records: message properties,
 * expiry, origin and the published retain flag on PUBLISH and DELIVER,
 * and the members of shared subscriptions on ATTACH, DETACH and UNSUB.
 * A record without them costs no byte more than before they existed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ipc_proto.h"

static const uint8_t payload[] = { 'h', 'i', 0, 0xff };
/* Content Type "a", a User Property ("k", "v"): opaque to the codec. */
static const uint8_t props[] = { 0x03, 0x00, 0x01, 'a', 0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v' };

static const struct rec_publish s_publish = {
	.req = 5, .owner = "m/pub", .pubid = 9, .qos = 2, .flags = PF_RETAIN | PF_STAGE,
	.time_ms = 1700000000000ULL, .payload = payload, .payload_len = sizeof(payload),
	.props = props, .props_len = sizeof(props), .expiry_ms = 1700000060000ULL,
	.origin = "pub",
};
static const struct rec_deliver s_deliver = {
	.topic = "a/b", .seq = 77, .qos = 1, .flags = DF_DUP | DF_PUBRETAIN,
	.payload = payload, .payload_len = sizeof(payload), .props = props,
	.props_len = sizeof(props), .expiry_ms = 1700000060000ULL, .origin = "pub",
	.share = "$share/g/a/+",
};

/* Decodes exactly len bytes from a heap copy, for the sanitizers. */
typedef int dec_fn(const void *, size_t, void *);

static int
dec_exact(dec_fn *dec, const uint8_t *body, size_t len, void *r)
{
	uint8_t *copy = malloc(len ? len : 1);
	int rc;

	assert_non_null(copy);
	if (len)
		memcpy(copy, body, len);
	rc = dec(copy, len, r);
	free(copy);
	return rc;
}

static int
dec_pub(const void *b, size_t l, void *r)
{
	return dec_publish(b, l, r);
}

static int
dec_dlv(const void *b, size_t l, void *r)
{
	return dec_deliver(b, l, r);
}

static int
dec_att(const void *b, size_t l, void *r)
{
	return dec_attach(b, l, r);
}

static int
dec_det(const void *b, size_t l, void *r)
{
	return dec_detach(b, l, r);
}

static int
dec_uns(const void *b, size_t l, void *r)
{
	return dec_unsub(b, l, r);
}

/* Every proper prefix of w is refused, and so is a trailing byte. */
static void
check_prefixes(dec_fn *dec, struct wbuf *w, void *r)
{
	for (size_t n = 0; n < w->len; n++)
		if (dec_exact(dec, w->data, n, r) != -1)
			fail_msg("accepted %zu of %zu bytes", n, w->len);
	put_u8(w, 0);
	assert_int_equal(dec_exact(dec, w->data, w->len, r), -1);
	w->len--;
	assert_int_equal(dec_exact(dec, w->data, w->len, r), 0);
}

static void
test_publish_ext_round_trip(void **state)
{
	struct rec_publish r;
	struct wbuf w;

	(void)state;
	wbuf_init(&w);
	enc_publish(&w, &s_publish);
	assert_int_equal(enc_publish_size(&s_publish), w.len);
	assert_int_equal(dec_publish(w.data, w.len, &r), 0);
	assert_int_equal(r.flags, PF_RETAIN | PF_STAGE);	/* PF_EXT is the codec's */
	assert_int_equal(r.props_len, sizeof(props));
	assert_memory_equal(r.props, props, sizeof(props));
	assert_true(r.expiry_ms == s_publish.expiry_ms);
	assert_string_equal(r.origin, "pub");
	assert_string_equal(r.owner, "m/pub");
	assert_memory_equal(r.payload, payload, sizeof(payload));
	check_prefixes(dec_pub, &w, &r);
	wbuf_free(&w);
}

/* Each of the three alone makes the extension travel. */
static void
test_publish_ext_each_alone(void **state)
{
	struct rec_publish in = s_publish, r;
	struct wbuf w;

	(void)state;
	wbuf_init(&w);
	in.props = NULL, in.props_len = 0, in.origin = "";
	enc_publish(&w, &in);
	assert_int_equal(enc_publish_size(&in), w.len);
	assert_int_equal(dec_publish(w.data, w.len, &r), 0);
	assert_true(r.expiry_ms == s_publish.expiry_ms);
	assert_null(r.props);
	assert_string_equal(r.origin, "");
	in.expiry_ms = 0, in.origin = "c";
	wbuf_reset(&w);
	enc_publish(&w, &in);
	assert_int_equal(enc_publish_size(&in), w.len);
	assert_int_equal(dec_publish(w.data, w.len, &r), 0);
	assert_string_equal(r.origin, "c");
	assert_true(r.expiry_ms == 0);
	in.origin = NULL, in.props = props, in.props_len = 1;
	wbuf_reset(&w);
	enc_publish(&w, &in);
	assert_int_equal(enc_publish_size(&in), w.len);
	assert_int_equal(dec_publish(w.data, w.len, &r), 0);
	assert_int_equal(r.props_len, 1);
	assert_int_equal(r.props[0], props[0]);
	wbuf_free(&w);
}

/* Without properties, expiry and origin the record is what it was
 * before: the fixed fields and the payload, nothing more. */
static void
test_plain_records_cost_nothing_more(void **state)
{
	struct rec_publish p = s_publish, rp;
	struct rec_deliver d = s_deliver, rd;
	struct wbuf w;

	(void)state;
	wbuf_init(&w);
	p.props = NULL, p.props_len = 0, p.expiry_ms = 0, p.origin = "";
	enc_publish(&w, &p);
	assert_int_equal(w.len, 8 + (4 + 5 + 1) + 4 + 1 + 1 + 8 + 4 + sizeof(payload));
	assert_int_equal(enc_publish_size(&p), w.len);
	assert_int_equal(w.data[8 + 10 + 4 + 1], PF_RETAIN | PF_STAGE);
	assert_int_equal(dec_publish(w.data, w.len, &rp), 0);
	assert_string_equal(rp.origin, "");
	assert_true(rp.expiry_ms == 0 && rp.props == NULL && rp.props_len == 0);

	d.props = NULL, d.props_len = 0, d.expiry_ms = 0, d.origin = NULL, d.share = NULL;
	wbuf_reset(&w);
	enc_deliver(&w, &d);
	assert_int_equal(w.len, (4 + 3 + 1) + 8 + 1 + 1 + 4 + sizeof(payload));
	assert_int_equal(dec_deliver(w.data, w.len, &rd), 0);
	assert_string_equal(rd.origin, "");
	assert_string_equal(rd.share, "");
	assert_int_equal(rd.flags, DF_DUP | DF_PUBRETAIN);
	wbuf_free(&w);
}

static void
test_deliver_ext_round_trip(void **state)
{
	struct rec_deliver r, in = s_deliver;
	struct wbuf w;

	(void)state;
	wbuf_init(&w);
	enc_deliver(&w, &s_deliver);
	assert_int_equal(dec_deliver(w.data, w.len, &r), 0);
	assert_int_equal(r.flags, DF_DUP | DF_PUBRETAIN);
	assert_int_equal(r.props_len, sizeof(props));
	assert_memory_equal(r.props, props, sizeof(props));
	assert_true(r.expiry_ms == s_deliver.expiry_ms);
	assert_string_equal(r.origin, "pub");
	assert_string_equal(r.share, "$share/g/a/+");
	check_prefixes(dec_dlv, &w, &r);

	/* A share alone is enough for the extension. */
	in.props = NULL, in.props_len = 0, in.expiry_ms = 0, in.origin = "";
	wbuf_reset(&w);
	enc_deliver(&w, &in);
	assert_int_equal(dec_deliver(w.data, w.len, &r), 0);
	assert_string_equal(r.share, "$share/g/a/+");
	assert_null(r.props);
	wbuf_free(&w);
}

/* An unknown flag is refused, as before; DF_PUBRETAIN is known. */
static void
test_ext_rejects(void **state)
{
	struct rec_deliver d = s_deliver, rd;
	struct rec_publish rp;
	struct wbuf w;

	(void)state;
	wbuf_init(&w);
	d.flags = 0x20;
	enc_deliver(&w, &d);
	assert_int_equal(dec_deliver(w.data, w.len, &rd), -1);
	wbuf_reset(&w);
	enc_publish(&w, &s_publish);
	w.data[8 + 10 + 4 + 1] |= 0x10;
	assert_int_equal(dec_publish(w.data, w.len, &rp), -1);
	/* The extension flag without the extension. */
	wbuf_reset(&w);
	d = s_deliver;
	d.props = NULL, d.props_len = 0, d.expiry_ms = 0, d.origin = "", d.share = "";
	enc_deliver(&w, &d);
	w.data[4 + 3 + 1 + 8 + 1] |= DF_EXT;
	assert_int_equal(dec_deliver(w.data, w.len, &rd), -1);
	wbuf_free(&w);
}

static void
test_members(void **state)
{
	struct rec_attach a = { .req = 3, .subkey = SHARE_KEY_PREFIX "grp/a/+", .mode = MODE_MQTT,
				.qos = 2, .flags = AF_NEW_ONLY, .window = 10, .member = "m/c1" }, ra;
	struct rec_detach d = { .subkey = SHARE_KEY_PREFIX "grp/a/+", .member = "m/c1" }, rd;
	struct rec_unsub u = { .req = 4, .subkey = SHARE_KEY_PREFIX "grp/a/+",
			       .flags = UF_FORGET, .member = "m/c1" }, ru;
	struct wbuf w;

	(void)state;
	wbuf_init(&w);
	enc_attach(&w, &a);
	assert_int_equal(dec_attach(w.data, w.len, &ra), 0);
	assert_string_equal(ra.member, "m/c1");
	assert_int_equal(ra.flags, AF_NEW_ONLY);
	check_prefixes(dec_att, &w, &ra);
	wbuf_reset(&w);
	enc_detach(&w, &d);
	assert_int_equal(dec_detach(w.data, w.len, &rd), 0);
	assert_string_equal(rd.member, "m/c1");
	/* The member is the rest of the body: cut short, it is refused. */
	for (size_t n = 4 + strlen(d.subkey) + 1 + 1; n < w.len; n++)
		assert_int_equal(dec_exact(dec_det, w.data, n, &rd), -1);
	wbuf_reset(&w);
	enc_unsub(&w, &u);
	assert_int_equal(dec_unsub(w.data, w.len, &ru), 0);
	assert_string_equal(ru.member, "m/c1");
	assert_int_equal(ru.flags, UF_FORGET);
	check_prefixes(dec_uns, &w, &ru);

	/* Without a member: as before, and the member reads as "". */
	a.member = NULL, d.member = "", u.member = NULL;
	wbuf_reset(&w);
	enc_attach(&w, &a);
	assert_int_equal(w.len, 8 + (4 + strlen(a.subkey) + 1) + 3 + 2);
	assert_int_equal(dec_attach(w.data, w.len, &ra), 0);
	assert_string_equal(ra.member, "");
	wbuf_reset(&w);
	enc_detach(&w, &d);
	assert_int_equal(w.len, 4 + strlen(d.subkey) + 1);
	assert_int_equal(dec_detach(w.data, w.len, &rd), 0);
	assert_string_equal(rd.member, "");
	wbuf_reset(&w);
	enc_unsub(&w, &u);
	assert_int_equal(dec_unsub(w.data, w.len, &ru), 0);
	assert_string_equal(ru.member, "");
	wbuf_free(&w);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_publish_ext_round_trip),
		cmocka_unit_test(test_publish_ext_each_alone),
		cmocka_unit_test(test_plain_records_cost_nothing_more),
		cmocka_unit_test(test_deliver_ext_round_trip),
		cmocka_unit_test(test_ext_rejects),
		cmocka_unit_test(test_members),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
