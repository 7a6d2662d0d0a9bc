/* The master/topicd record codec: round trips, truncation, trailing bytes
 * and out-of-range values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ipc_proto.h"

static const uint8_t payload[] = { 'h', 'e', 0, 'l', 0xff, 'o' };

/* Sample records with every field set to something distinguishable. */
static const struct rec_config s_config = {
	.version = IPC_PROTO_VERSION, .retry_ms = 30000, .max_attempts = 5, .checkpoint_kib = 65536,
	.max_queued = 0xfffffffd, .max_bytes = 0xfffffffffffffffeULL,
	.min_free = 0x0807060504030201ULL, .sync = 1, .log_level = 4,
	.boot_id = 0x0102030405060708ULL, .dlq_topic = "$DLQ",
	.seq_floor = 0x1112131415161718ULL, .log_dests = 0x5, .log_file = "/var/log/broker.log",
};
static const struct rec_publish s_publish = {
	.req = 0x1122334455667788ULL, .owner = "m/client-1", .pubid = 65535,
	.qos = 2, .flags = PF_RETAIN | PF_JSON | PF_STAGE,
	.time_ms = 1700000000123ULL, .payload = payload, .payload_len = sizeof(payload),
};
static const struct rec_release s_release = {
	.req = 77, .owner = "j/alice", .pubid = 0xdeadbeef,
};
static const struct rec_release_owner s_release_owner = { .req = 77, .owner = "j/bob" };
static const struct rec_attach s_attach = {
	.req = 9, .subkey = "m/sub-1", .mode = MODE_MQTT, .qos = 1,
	.flags = AF_RETAINED | AF_NEW_ONLY | AF_SAME_CONN, .window = 0xffff,
};
static const struct rec_detach s_detach = { .subkey = "j/carol" };
static const struct rec_unsub s_unsub = { .req = 10, .subkey = "m/x", .flags = UF_FORGET };
static const struct rec_ack s_ack = { .subkey = "m/y", .seq = UINT64_MAX, .kind = ACK_PUBCOMP,
				       .share = "$share/g/a/b" };
static const struct rec_dlq_done s_dlq_done = { .req = 0x8000000000000001ULL, .stored = 1 };
static const struct rec_stop s_stop = { .flags = STOP_CHECKPOINT };
static const struct rec_take s_take = { .topic = "plant/3/temp" };
static const struct rec_spare s_spare = { .flags = SPARE_DELETED };
static const struct rec_ready s_ready = {
	.version = IPC_PROTO_VERSION, .topic = "sensors/temp", .next_seq = 10231,
};
static const struct rec_done s_done = { .req = 12, .status = ST_FULL, .seq = 99 };
static const struct rec_deadletter s_deadletter = {
	.req = 13, .reason = "max_attempts", .subkey = "j/dave", .seq = 4242,
	.flags = PF_JSON, .time_ms = 1234567890, .payload = payload,
	.payload_len = sizeof(payload),
};
static const struct rec_stats s_stats = {
	.subscribers = 3, .online = 2, .first_seq = 100, .next_seq = 200,
	.messages = 100, .bytes = 1u << 20, .lag = 5, .oldest_unacked_ms = 250,
	.commits = 17, .committed = 1000, .disk_bytes = 1u << 21, .full = 1,
	.expired = 0x0102030405060708ULL,
};
static const struct rec_full s_full = { .reason = "max_topic_size" };
static const struct rec_deliver s_deliver = {
	.topic = "a/b", .seq = 1, .qos = 2, .flags = DF_DUP | DF_RETAIN | DF_JSON,
	.payload = payload, .payload_len = sizeof(payload),
};
static const struct rec_deliver_rel s_deliver_rel = { .topic = "a/b/c", .seq = 0,
						     .share = "$share/g/#" };

/* One record kind: encode the sample, and decode anything into scratch. */
union any_rec {
	struct rec_config c;
	struct rec_publish p;
	struct rec_release r;
	struct rec_release_owner ro;
	struct rec_attach a;
	struct rec_detach d;
	struct rec_unsub u;
	struct rec_ack k;
	struct rec_dlq_done dd;
	struct rec_stop sp;
	struct rec_take tk;
	struct rec_spare sr;
	struct rec_ready rd;
	struct rec_done dn;
	struct rec_deadletter dl;
	struct rec_stats st;
	struct rec_deliver dv;
	struct rec_deliver_rel dr;
	struct rec_full fu;
};

struct kind {
	const char *name;
	void (*enc_sample)(struct wbuf *w);
	int (*dec)(const void *body, size_t len, union any_rec *r);
};

#define KIND(n, field)							\
	static void							\
	enc_s_##n(struct wbuf *w)					\
	{								\
		enc_##n(w, &s_##n);					\
	}								\
	static int							\
	dec_any_##n(const void *b, size_t l, union any_rec *r)		\
	{								\
		return dec_##n(b, l, &r->field);			\
	}

KIND(config, c)
KIND(publish, p)
KIND(release, r)
KIND(release_owner, ro)
KIND(attach, a)
KIND(detach, d)
KIND(unsub, u)
KIND(ack, k)
KIND(dlq_done, dd)
KIND(stop, sp)
KIND(take, tk)
KIND(spare, sr)
KIND(ready, rd)
KIND(done, dn)
KIND(deadletter, dl)
KIND(stats, st)
KIND(deliver, dv)
KIND(deliver_rel, dr)
KIND(full, fu)

#define K(n) { #n, enc_s_##n, dec_any_##n }
static const struct kind kinds[] = {
	K(config), K(publish), K(release), K(release_owner), K(attach),
	K(detach), K(unsub), K(ack), K(dlq_done), K(stop), K(take), K(spare), K(ready), K(done),
	K(deadletter), K(stats), K(deliver), K(deliver_rel), K(full),
};
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

/* Decodes exactly len bytes from a heap copy of that size, so that the
 * sanitizers see any read past the end. */
static int
dec_exact(const struct kind *k, const uint8_t *body, size_t len, union any_rec *r)
{
	uint8_t *copy = malloc(len ? len : 1);
	int rc;

	assert_non_null(copy);
	if (len)
		memcpy(copy, body, len);
	rc = k->dec(copy, len, r);
	free(copy);
	return rc;
}

/* Encodes a record with enc and returns the buffer for decoding. */
#define ENCODE(w, fn, rec) do { wbuf_reset(w); fn(w, rec); } while (0)

/* The version leads CONFIG and READY whatever follows; a body too short
 * for one has none. */
static void
test_version_of(void **state)
{
	struct rec_ready ready = { 7, "t", 1 };
	struct rec_config c = { .version = 99, .dlq_topic = "", .log_file = "" };
	struct wbuf w;

	(void)state;
	wbuf_init(&w);
	ENCODE(&w, enc_ready, &ready);
	assert_int_equal(ipc_version_of(w.data, w.len), 7);
	ENCODE(&w, enc_config, &c);
	assert_int_equal(ipc_version_of(w.data, w.len), 99);
	assert_int_equal(ipc_version_of(w.data, 3), 0);
	assert_int_equal(ipc_version_of(w.data, 0), 0);
	wbuf_free(&w);
}

static void
test_config_round_trip(void **state)
{
	struct wbuf w;
	struct rec_config r;

	(void)state;
	wbuf_init(&w);
	ENCODE(&w, enc_config, &s_config);
	assert_int_equal(dec_config(w.data, w.len, &r), 0);
	assert_int_equal(r.version, IPC_PROTO_VERSION);
	assert_int_equal(ipc_version_of(w.data, w.len), IPC_PROTO_VERSION);
	assert_int_equal(r.retry_ms, s_config.retry_ms);
	assert_int_equal(r.max_attempts, s_config.max_attempts);
	assert_int_equal(r.checkpoint_kib, s_config.checkpoint_kib);
	assert_int_equal(r.max_queued, s_config.max_queued);
	assert_true(r.max_bytes == s_config.max_bytes);
	assert_true(r.min_free == s_config.min_free);
	assert_int_equal(r.sync, s_config.sync);
	assert_int_equal(r.log_level, s_config.log_level);
	assert_true(r.boot_id == s_config.boot_id);
	assert_true(r.seq_floor == s_config.seq_floor);
	assert_string_equal(r.dlq_topic, s_config.dlq_topic);
	assert_int_equal(r.log_dests, s_config.log_dests);
	assert_string_equal(r.log_file, s_config.log_file);
	assert_true((const uint8_t *)r.dlq_topic > w.data &&
		    (const uint8_t *)r.dlq_topic < w.data + w.len);	/* into the body */
	wbuf_free(&w);
}

static void
test_publish_round_trip(void **state)
{
	struct wbuf w;
	struct rec_publish r, in = s_publish;

	(void)state;
	wbuf_init(&w);
	ENCODE(&w, enc_publish, &s_publish);
	assert_int_equal(dec_publish(w.data, w.len, &r), 0);
	assert_true(r.req == s_publish.req);
	assert_string_equal(r.owner, s_publish.owner);
	assert_int_equal(r.pubid, s_publish.pubid);
	assert_int_equal(r.qos, s_publish.qos);
	assert_int_equal(r.flags, s_publish.flags);
	assert_true(r.time_ms == s_publish.time_ms);
	assert_int_equal(r.payload_len, sizeof(payload));
	assert_memory_equal(r.payload, payload, sizeof(payload));

	/* QoS 0: no req, no owner, empty payload. */
	in.req = 0;
	in.qos = 0;
	in.owner = "";
	in.flags = 0;
	in.payload = NULL;
	in.payload_len = 0;
	ENCODE(&w, enc_publish, &in);
	assert_int_equal(dec_publish(w.data, w.len, &r), 0);
	assert_true(r.req == 0);
	assert_int_equal(r.qos, 0);
	assert_string_equal(r.owner, "");
	assert_int_equal(r.payload_len, 0);

	in.req = 1;
	in.qos = 1;
	ENCODE(&w, enc_publish, &in);
	assert_int_equal(dec_publish(w.data, w.len, &r), 0);
	assert_int_equal(r.qos, 1);
	wbuf_free(&w);
}

static void
test_release_round_trip(void **state)
{
	struct wbuf w;
	struct rec_release r;
	struct rec_release_owner ro;

	(void)state;
	wbuf_init(&w);
	ENCODE(&w, enc_release, &s_release);
	assert_int_equal(dec_release(w.data, w.len, &r), 0);
	assert_true(r.req == s_release.req);
	assert_string_equal(r.owner, s_release.owner);
	assert_int_equal(r.pubid, s_release.pubid);

	ENCODE(&w, enc_release_owner, &s_release_owner);
	assert_int_equal(dec_release_owner(w.data, w.len, &ro), 0);
	assert_string_equal(ro.owner, s_release_owner.owner);
	assert_int_equal(ro.req, s_release_owner.req);
	wbuf_free(&w);
}

static void
test_attach_detach_unsub_round_trip(void **state)
{
	struct wbuf w;
	struct rec_attach a, ain = s_attach;
	struct rec_detach d;
	struct rec_unsub u, uin = s_unsub;

	(void)state;
	wbuf_init(&w);
	ENCODE(&w, enc_attach, &s_attach);
	assert_int_equal(dec_attach(w.data, w.len, &a), 0);
	assert_true(a.req == s_attach.req);
	assert_string_equal(a.subkey, s_attach.subkey);
	assert_int_equal(a.mode, s_attach.mode);
	assert_int_equal(a.qos, s_attach.qos);
	assert_int_equal(a.flags, s_attach.flags);
	assert_int_equal(a.window, s_attach.window);

	ain.mode = MODE_JSON;
	ain.qos = 2;
	ain.flags = 0;
	ain.window = 1;
	ENCODE(&w, enc_attach, &ain);
	assert_int_equal(dec_attach(w.data, w.len, &a), 0);
	assert_int_equal(a.mode, MODE_JSON);
	assert_int_equal(a.qos, 2);
	assert_int_equal(a.flags, 0);
	assert_int_equal(a.window, 1);

	ENCODE(&w, enc_detach, &s_detach);
	assert_int_equal(dec_detach(w.data, w.len, &d), 0);
	assert_string_equal(d.subkey, s_detach.subkey);

	ENCODE(&w, enc_unsub, &s_unsub);
	assert_int_equal(dec_unsub(w.data, w.len, &u), 0);
	assert_true(u.req == s_unsub.req);
	assert_string_equal(u.subkey, s_unsub.subkey);
	assert_int_equal(u.flags, UF_FORGET);
	uin.flags = 0;
	ENCODE(&w, enc_unsub, &uin);
	assert_int_equal(dec_unsub(w.data, w.len, &u), 0);
	assert_int_equal(u.flags, 0);
	wbuf_free(&w);
}

static void
test_ack_dlq_done_round_trip(void **state)
{
	struct wbuf w;
	struct rec_ack k, kin = s_ack;
	struct rec_dlq_done dd;
	struct rec_stop sp;

	(void)state;
	wbuf_init(&w);
	for (uint8_t kind = ACK_PUBACK; kind <= ACK_PUBCOMP; kind++) {
		kin.kind = kind;
		ENCODE(&w, enc_ack, &kin);
		assert_int_equal(dec_ack(w.data, w.len, &k), 0);
		assert_string_equal(k.subkey, s_ack.subkey);
		assert_true(k.seq == s_ack.seq);
		assert_int_equal(k.kind, kind);
		assert_string_equal(k.share, s_ack.share);
	}
	kin.share = NULL;	/* the session's own: "" */
	ENCODE(&w, enc_ack, &kin);
	assert_int_equal(dec_ack(w.data, w.len, &k), 0);
	assert_string_equal(k.share, "");
	ENCODE(&w, enc_dlq_done, &s_dlq_done);
	assert_int_equal(w.len, 9);
	assert_int_equal(dec_dlq_done(w.data, w.len, &dd), 0);
	assert_true(dd.req == s_dlq_done.req);
	assert_int_equal(dd.stored, 1);
	w.data[8] = 2;				/* stored is 0 or 1 */
	assert_int_equal(dec_dlq_done(w.data, w.len, &dd), -1);
	ENCODE(&w, enc_stop, &s_stop);
	assert_int_equal(w.len, 1);
	assert_int_equal(dec_stop(w.data, w.len, &sp), 0);
	assert_int_equal(sp.flags, STOP_CHECKPOINT);
	w.data[0] = 0;				/* a STOP for room: no checkpoint */
	assert_int_equal(dec_stop(w.data, w.len, &sp), 0);
	assert_int_equal(sp.flags, 0);
	w.data[0] = 0x02;			/* an unknown flag */
	assert_int_equal(dec_stop(w.data, w.len, &sp), -1);
	assert_int_equal(dec_stop(w.data, 0, &sp), -1);
	wbuf_free(&w);
}

/* TAKE names a valid topic; SPARE says whether the store was deleted. */
static void
test_take_spare_round_trip(void **state)
{
	static const char *const bad[] = { "", "a/+/b", "a/#" };
	struct rec_take tk, tin;
	struct rec_spare sr;
	struct wbuf w;

	(void)state;
	wbuf_init(&w);
	ENCODE(&w, enc_take, &s_take);
	assert_int_equal(dec_take(w.data, w.len, &tk), 0);
	assert_string_equal(tk.topic, s_take.topic);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tin.topic = bad[i];
		ENCODE(&w, enc_take, &tin);
		assert_int_equal(dec_take(w.data, w.len, &tk), -1);
	}
	ENCODE(&w, enc_spare, &s_spare);
	assert_int_equal(w.len, 1);
	assert_int_equal(dec_spare(w.data, w.len, &sr), 0);
	assert_int_equal(sr.flags, SPARE_DELETED);
	w.data[0] = 0;				/* its store closed, kept */
	assert_int_equal(dec_spare(w.data, w.len, &sr), 0);
	assert_int_equal(sr.flags, 0);
	w.data[0] = 0x02;			/* an unknown flag */
	assert_int_equal(dec_spare(w.data, w.len, &sr), -1);
	assert_int_equal(dec_spare(w.data, 0, &sr), -1);
	wbuf_free(&w);
}

static void
test_ready_done_round_trip(void **state)
{
	struct wbuf w;
	struct rec_ready rd;
	struct rec_done dn, din = s_done;

	(void)state;
	wbuf_init(&w);
	ENCODE(&w, enc_ready, &s_ready);
	assert_int_equal(dec_ready(w.data, w.len, &rd), 0);
	assert_int_equal(rd.version, IPC_PROTO_VERSION);
	assert_string_equal(rd.topic, s_ready.topic);
	assert_true(rd.next_seq == s_ready.next_seq);

	for (uint32_t st = ST_OK; st <= ST_FULL; st++) {
		din.status = st;
		ENCODE(&w, enc_done, &din);
		assert_int_equal(dec_done(w.data, w.len, &dn), 0);
		assert_true(dn.req == s_done.req);
		assert_int_equal(dn.status, st);
		assert_true(dn.seq == s_done.seq);
	}
	wbuf_free(&w);
}

static void
test_deadletter_stats_round_trip(void **state)
{
	struct wbuf w;
	struct rec_deadletter dl;
	struct rec_stats st;

	(void)state;
	wbuf_init(&w);
	ENCODE(&w, enc_deadletter, &s_deadletter);
	assert_int_equal(dec_deadletter(w.data, w.len, &dl), 0);
	assert_true(dl.req == s_deadletter.req);
	assert_string_equal(dl.reason, s_deadletter.reason);
	assert_string_equal(dl.subkey, s_deadletter.subkey);
	assert_true(dl.seq == s_deadletter.seq);
	assert_int_equal(dl.flags, s_deadletter.flags);
	assert_true(dl.time_ms == s_deadletter.time_ms);
	assert_int_equal(dl.payload_len, sizeof(payload));
	assert_memory_equal(dl.payload, payload, sizeof(payload));

	ENCODE(&w, enc_stats, &s_stats);
	assert_int_equal(w.len, 2 * 4 + 9 * 8 + 1 + 8);
	assert_int_equal(dec_stats(w.data, w.len, &st), 0);
	assert_int_equal(st.subscribers, s_stats.subscribers);
	assert_int_equal(st.online, s_stats.online);
	assert_true(st.first_seq == s_stats.first_seq);
	assert_true(st.next_seq == s_stats.next_seq);
	assert_true(st.messages == s_stats.messages);
	assert_true(st.bytes == s_stats.bytes);
	assert_true(st.lag == s_stats.lag);
	assert_true(st.oldest_unacked_ms == s_stats.oldest_unacked_ms);
	assert_true(st.commits == s_stats.commits);
	assert_true(st.committed == s_stats.committed);
	assert_true(st.disk_bytes == s_stats.disk_bytes);
	assert_int_equal(st.full, 1);
	assert_true(st.expired == s_stats.expired);
	wbuf_free(&w);
}

static void
test_deliver_round_trip(void **state)
{
	struct wbuf w;
	struct rec_deliver dv, in = s_deliver;
	struct rec_deliver_rel dr;

	(void)state;
	wbuf_init(&w);
	ENCODE(&w, enc_deliver, &s_deliver);
	assert_int_equal(dec_deliver(w.data, w.len, &dv), 0);
	assert_string_equal(dv.topic, s_deliver.topic);
	assert_true(dv.seq == s_deliver.seq);
	assert_int_equal(dv.qos, s_deliver.qos);
	assert_int_equal(dv.flags, s_deliver.flags);
	assert_int_equal(dv.payload_len, sizeof(payload));
	assert_memory_equal(dv.payload, payload, sizeof(payload));

	in.qos = 0;
	in.flags = 0;
	in.payload = NULL;
	in.payload_len = 0;
	ENCODE(&w, enc_deliver, &in);
	assert_int_equal(dec_deliver(w.data, w.len, &dv), 0);
	assert_int_equal(dv.qos, 0);
	assert_int_equal(dv.flags, 0);
	assert_int_equal(dv.payload_len, 0);

	ENCODE(&w, enc_deliver_rel, &s_deliver_rel);
	assert_int_equal(dec_deliver_rel(w.data, w.len, &dr), 0);
	assert_string_equal(dr.topic, s_deliver_rel.topic);
	assert_true(dr.seq == s_deliver_rel.seq);
	assert_string_equal(dr.share, s_deliver_rel.share);
	wbuf_free(&w);
}

/* A DELIVER's head, payload and tail, put together, are the record
 * enc_deliver makes: with and without the extension fields. */
static void
test_deliver_in_parts(void **state)
{
	static const uint8_t props[] = { 0x01, 0x01 };
	struct rec_deliver in = s_deliver;
	struct wbuf whole, parts;

	(void)state;
	wbuf_init(&whole);
	wbuf_init(&parts);
	for (int ext = 0; ext < 2; ext++) {
		if (ext) {
			in.props = props;
			in.props_len = sizeof(props);
			in.expiry_ms = 99;
			in.origin = "m/pub";
			in.share = "g";
		}
		wbuf_reset(&whole);
		wbuf_reset(&parts);
		enc_deliver(&whole, &in);
		enc_deliver_head(&parts, &in);
		put_raw(&parts, in.payload, in.payload_len);
		enc_deliver_tail(&parts, &in);
		assert_int_equal(parts.len, whole.len);
		assert_memory_equal(parts.data, whole.data, whole.len);
		assert_true(whole.len > sizeof(payload) + (ext ? 20 : 0));
	}
	wbuf_free(&whole);
	wbuf_free(&parts);
}

/* Every decoder accepts its sample, and rejects every proper prefix of it
 * and the sample with one byte more.  String fields always come back as a
 * valid C string, even on failure. */
static void
test_truncation_and_trailing(void **state)
{
	struct wbuf w;
	union any_rec r;

	(void)state;
	wbuf_init(&w);
	for (size_t i = 0; i < NKINDS; i++) {
		const struct kind *k = &kinds[i];
		size_t full;

		wbuf_reset(&w);
		k->enc_sample(&w);
		full = w.len;
		assert_true(full > 0);
		if (dec_exact(k, w.data, full, &r) != 0)
			fail_msg("%s: the sample does not decode", k->name);
		for (size_t n = 0; n < full; n++)
			if (dec_exact(k, w.data, n, &r) != -1)
				fail_msg("%s: accepted %zu of %zu bytes", k->name, n, full);
		put_u8(&w, 0);
		if (dec_exact(k, w.data, w.len, &r) != -1)
			fail_msg("%s: accepted a trailing byte", k->name);
		w.data[w.len - 1] = 0xff;
		if (dec_exact(k, w.data, w.len, &r) != -1)
			fail_msg("%s: accepted a trailing 0xff", k->name);
	}
	wbuf_free(&w);
}

/* A NUL inside the first string of a record, or the string's NUL replaced,
 * is rejected by every decoder that has a string. */
static void
test_bad_strings(void **state)
{
	static const struct { const char *name; size_t off; } first_str[] = {
		{ "config", 5 * 4 + 2 * 8 + 2 + 8 }, { "publish", 8 }, { "release", 8 },
		{ "release_owner", 8 }, { "attach", 8 }, { "detach", 0 },
		{ "unsub", 8 }, { "ack", 0 }, { "ready", 4 }, { "deadletter", 8 },
		{ "deliver", 0 }, { "deliver_rel", 0 }, { "full", 0 },
	};
	struct wbuf w;
	union any_rec r;

	(void)state;
	wbuf_init(&w);
	for (size_t i = 0; i < sizeof(first_str) / sizeof(first_str[0]); i++) {
		const struct kind *k = NULL;
		uint32_t slen;
		size_t off = first_str[i].off;

		for (size_t j = 0; j < NKINDS; j++)
			if (strcmp(kinds[j].name, first_str[i].name) == 0)
				k = &kinds[j];
		assert_non_null(k);
		wbuf_reset(&w);
		k->enc_sample(&w);
		slen = (uint32_t)w.data[off] | (uint32_t)w.data[off + 1] << 8 |
		       (uint32_t)w.data[off + 2] << 16 | (uint32_t)w.data[off + 3] << 24;
		assert_true(slen >= 2);
		assert_int_equal(w.data[off + 4 + slen], 0);

		w.data[off + 4 + 1] = 0;		/* NUL inside */
		if (dec_exact(k, w.data, w.len, &r) != -1)
			fail_msg("%s: accepted an inner NUL", k->name);
		wbuf_reset(&w);
		k->enc_sample(&w);
		w.data[off + 4 + slen] = 'x';		/* terminator missing */
		if (dec_exact(k, w.data, w.len, &r) != -1)
			fail_msg("%s: accepted a string without its NUL", k->name);
	}
	wbuf_free(&w);
}

/* A record that ends in a string length of UINT32_MAX must not decode as
 * an empty string with nothing left over. */
static void
test_max_string_length_at_end(void **state)
{
	static const uint8_t max_len[] = { 0xff, 0xff, 0xff, 0xff };
	struct wbuf w;
	struct rec_release_owner ro;
	struct rec_detach d;
	struct rec_config c;

	(void)state;
	assert_int_equal(dec_release_owner(max_len, sizeof(max_len), &ro), -1);	/* too short */
	assert_int_equal(dec_detach(max_len, sizeof(max_len), &d), -1);
	wbuf_init(&w);
	ENCODE(&w, enc_config, &s_config);
	w.len -= strlen(s_config.dlq_topic) + 1 + 4;	/* drop dlq_topic */
	put_raw(&w, max_len, sizeof(max_len));
	assert_int_equal(dec_config(w.data, w.len, &c), -1);
	wbuf_free(&w);
}

static void
test_publish_rejects(void **state)
{
	struct wbuf w;
	struct rec_publish r, in;

	(void)state;
	wbuf_init(&w);
	in = s_publish;
	in.qos = 3;
	ENCODE(&w, enc_publish, &in);
	assert_int_equal(dec_publish(w.data, w.len, &r), -1);

	in = s_publish;
	in.qos = 0xff;
	ENCODE(&w, enc_publish, &in);
	assert_int_equal(dec_publish(w.data, w.len, &r), -1);

	for (unsigned bit = 0; bit < 8; bit++) {
		if ((1u << bit) == PF_EXT)
			continue;	/* the codec's own (test_ipc_ext.c) */
		in = s_publish;
		in.flags = (uint8_t)(1u << bit);
		ENCODE(&w, enc_publish, &in);
		if (in.flags & (PF_RETAIN | PF_JSON | PF_STAGE))
			assert_int_equal(dec_publish(w.data, w.len, &r), 0);
		else
			assert_int_equal(dec_publish(w.data, w.len, &r), -1);
	}

	in = s_publish;				/* QoS 0 must not ask for an answer */
	in.qos = 0;
	in.req = 1;
	ENCODE(&w, enc_publish, &in);
	assert_int_equal(dec_publish(w.data, w.len, &r), -1);

	for (uint8_t q = 1; q <= 2; q++) {	/* QoS 1/2 must */
		in = s_publish;
		in.qos = q;
		in.req = 0;
		ENCODE(&w, enc_publish, &in);
		assert_int_equal(dec_publish(w.data, w.len, &r), -1);
	}

	in = s_publish;				/* payload length past the end */
	ENCODE(&w, enc_publish, &in);
	w.data[w.len - sizeof(payload) - 4] += 1;
	assert_int_equal(dec_publish(w.data, w.len, &r), -1);
	wbuf_free(&w);
}

static void
test_attach_rejects(void **state)
{
	struct wbuf w;
	struct rec_attach r, in;
	static const uint8_t bad_modes[] = { 0, 3, 0xff };

	(void)state;
	wbuf_init(&w);
	for (size_t i = 0; i < sizeof(bad_modes); i++) {
		in = s_attach;
		in.mode = bad_modes[i];
		ENCODE(&w, enc_attach, &in);
		assert_int_equal(dec_attach(w.data, w.len, &r), -1);
	}

	in = s_attach;
	in.window = 0;
	ENCODE(&w, enc_attach, &in);
	assert_int_equal(dec_attach(w.data, w.len, &r), -1);

	in = s_attach;
	in.subkey = "";
	ENCODE(&w, enc_attach, &in);
	assert_int_equal(dec_attach(w.data, w.len, &r), -1);

	in = s_attach;
	in.qos = 3;
	ENCODE(&w, enc_attach, &in);
	assert_int_equal(dec_attach(w.data, w.len, &r), -1);

	in = s_attach;
	in.flags = 0x10;			/* no such flag */
	ENCODE(&w, enc_attach, &in);
	assert_int_equal(dec_attach(w.data, w.len, &r), -1);

	in = s_attach;
	in.flags = 0x80 | AF_RETAINED;
	ENCODE(&w, enc_attach, &in);
	assert_int_equal(dec_attach(w.data, w.len, &r), -1);
	wbuf_free(&w);
}

static void
test_ack_unsub_done_deliver_rejects(void **state)
{
	struct wbuf w;
	struct rec_ack k, kin;
	struct rec_unsub u, uin;
	struct rec_done dn, din;
	struct rec_deliver dv, dvin;
	static const uint8_t bad_kinds[] = { 0, 4, 0xff };
	static const uint32_t bad_status[] = { ST_FULL + 1, 0x100, UINT32_MAX };

	(void)state;
	wbuf_init(&w);
	for (size_t i = 0; i < sizeof(bad_kinds); i++) {
		kin = s_ack;
		kin.kind = bad_kinds[i];
		ENCODE(&w, enc_ack, &kin);
		assert_int_equal(dec_ack(w.data, w.len, &k), -1);
	}

	for (unsigned bit = 1; bit < 8; bit++) {
		if ((1u << bit) == UF_MEMBER)
			continue;	/* the codec's own (test_ipc_ext.c) */
		uin = s_unsub;
		uin.flags = (uint8_t)(1u << bit);
		ENCODE(&w, enc_unsub, &uin);
		assert_int_equal(dec_unsub(w.data, w.len, &u), -1);
	}

	for (size_t i = 0; i < sizeof(bad_status) / sizeof(bad_status[0]); i++) {
		din = s_done;
		din.status = bad_status[i];
		ENCODE(&w, enc_done, &din);
		assert_int_equal(dec_done(w.data, w.len, &dn), -1);
	}

	dvin = s_deliver;
	dvin.qos = 3;
	ENCODE(&w, enc_deliver, &dvin);
	assert_int_equal(dec_deliver(w.data, w.len, &dv), -1);

	dvin = s_deliver;
	dvin.flags = 0x20;
	ENCODE(&w, enc_deliver, &dvin);
	assert_int_equal(dec_deliver(w.data, w.len, &dv), -1);
	wbuf_free(&w);
}

/* A failed decode never leaves a string pointer NULL. */
static void
test_failed_decode_leaves_empty_strings(void **state)
{
	struct rec_attach a;
	struct rec_deadletter dl;
	struct rec_config c;

	(void)state;
	assert_int_equal(dec_attach("", 0, &a), -1);
	assert_non_null(a.subkey);
	assert_string_equal(a.subkey, "");
	assert_int_equal(dec_deadletter("", 0, &dl), -1);
	assert_non_null(dl.reason);
	assert_non_null(dl.subkey);
	assert_int_equal(dl.payload_len, 0);
	assert_int_equal(dec_config("", 0, &c), -1);
	assert_non_null(c.dlq_topic);
}

static void
test_type_names(void **state)
{
	static const struct { uint16_t type; const char *name; } names[] = {
		{ IPC_CONFIG, "CONFIG" }, { IPC_PUBLISH, "PUBLISH" },
		{ IPC_RELEASE, "RELEASE" }, { IPC_RELEASE_OWNER, "RELEASE_OWNER" },
		{ IPC_ATTACH, "ATTACH" }, { IPC_DETACH, "DETACH" },
		{ IPC_UNSUB, "UNSUB" }, { IPC_ACK, "ACK" },
		{ IPC_DLQ_DONE, "DLQ_DONE" }, { IPC_READY, "READY" },
		{ IPC_DONE, "DONE" }, { IPC_DEADLETTER, "DEADLETTER" },
		{ IPC_STATS, "STATS" }, { IPC_DELIVER, "DELIVER" },
		{ IPC_DELIVER_REL, "DELIVER_REL" }, { IPC_RESUME, "RESUME" },
		{ IPC_FULL, "FULL" }, { IPC_ROOM, "ROOM" },
		{ IPC_STOP, "STOP" }, { IPC_PING, "PING" }, { IPC_IDLE, "IDLE" },
		{ IPC_FORGET, "FORGET" }, { IPC_KEEP, "KEEP" },
		{ IPC_TAKE, "TAKE" }, { IPC_SPARE, "SPARE" },
	};
	static const uint16_t unknown[] = {
		0, IPC_TAKE + 1, IPC_READY - 1, IPC_SPARE + 1,
		IPC_DELIVER - 1, IPC_DELIVER_REL + 1, 0x7fff, 0xffff,
	};

	(void)state;
	assert_int_equal(IPC_CONFIG, 1);
	assert_int_equal(IPC_READY, 32);
	assert_int_equal(IPC_DELIVER, 64);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		assert_string_equal(ipc_type_name(names[i].type), names[i].name);
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
		assert_string_equal(ipc_type_name(unknown[i]), "?");
}

/* IDLE_EMPTY is a last IDLE's only: the topicd waits for FORGET or KEEP
 * after it. */
static void
test_idle_empty_only_when_final(void **state)
{
	struct rec_idle in = { .rx = 3, .next_seq = 41, .flags = IDLE_FINAL | IDLE_EMPTY }, r;
	struct wbuf w;
	const char *key;
	size_t pos = 0;
	bool backlog;

	(void)state;
	wbuf_init(&w);
	enc_idle(&w, &in);
	assert_int_equal(dec_idle(w.data, w.len, &r), 0);
	assert_int_equal(r.flags, IDLE_FINAL | IDLE_EMPTY);
	assert_true(r.next_seq == 41);
	in.flags = IDLE_FINAL | IDLE_EMPTY;
	in.nsubs = 1;
	wbuf_reset(&w);
	enc_idle(&w, &in);
	enc_idle_sub(&w, "j/alice", false);
	assert_int_equal(dec_idle(w.data, w.len, &r), 0);
	assert_true(idle_next_sub(&r, &pos, &key, &backlog));
	assert_string_equal(key, "j/alice");
	assert_false(backlog);
	in.flags = IDLE_EMPTY;
	in.nsubs = 0;
	wbuf_reset(&w);
	enc_idle(&w, &in);
	assert_int_equal(dec_idle(w.data, w.len, &r), -1);
	in.flags = 0x40;		/* past IDLE_MASK */
	wbuf_reset(&w);
	enc_idle(&w, &in);
	assert_int_equal(dec_idle(w.data, w.len, &r), -1);
	wbuf_free(&w);
}

/* A last IDLE's copy of the retained message: after the list, read back
 * whole; refused on an IDLE that is not a last one or keeps no retained
 * message, and a copy that names a topic or is a resend. */
static void
test_idle_copy(void **state)
{
	struct rec_idle in = { .rx = 3, .next_seq = 8, .nsubs = 1,
			       .flags = IDLE_FINAL | IDLE_RETAINED | IDLE_RETAINED_COPY }, r;
	struct rec_deliver d = { .topic = "", .seq = 7, .qos = 1, .flags = DF_RETAIN,
				 .payload = (const uint8_t *)"on", .payload_len = 2,
				 .expiry_ms = 99, .origin = "dev1", .share = "" }, out;
	static const uint8_t bad[][2] = {
		{ IDLE_FINAL | IDLE_RETAINED_COPY, 0 },		/* no retained message */
		{ IDLE_RETAINED | IDLE_RETAINED_COPY, 0 },	/* not a last IDLE */
		{ IDLE_FINAL | IDLE_RETAINED | IDLE_RETAINED_COPY, 1 },	/* a topic */
		{ IDLE_FINAL | IDLE_RETAINED | IDLE_RETAINED_COPY, 2 },	/* DF_DUP */
	};
	struct wbuf w;
	const char *key;
	size_t pos = 0;
	bool backlog;

	(void)state;
	wbuf_init(&w);
	enc_idle(&w, &in);
	enc_idle_sub(&w, "c/1/s", false);
	enc_idle_copy(&w, &d);
	assert_int_equal(dec_idle(w.data, w.len, &r), 0);
	assert_true(idle_next_sub(&r, &pos, &key, &backlog));
	assert_string_equal(key, "c/1/s");
	assert_false(idle_next_sub(&r, &pos, &key, &backlog));
	assert_int_equal(dec_idle_copy(&r, &out), 0);
	assert_int_equal(out.seq, 7);
	assert_int_equal(out.qos, 1);
	assert_int_equal(out.flags, DF_RETAIN);
	assert_int_equal(out.payload_len, 2);
	assert_memory_equal(out.payload, "on", 2);
	assert_true(out.expiry_ms == 99);
	assert_string_equal(out.origin, "dev1");
	in.flags = IDLE_FINAL | IDLE_RETAINED;	/* none: no copy to read */
	wbuf_reset(&w);
	enc_idle(&w, &in);
	enc_idle_sub(&w, "c/1/s", false);
	assert_int_equal(dec_idle(w.data, w.len, &r), 0);
	assert_int_equal(dec_idle_copy(&r, &out), -1);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct rec_deliver c = d;

		in.flags = bad[i][0];
		c.topic = bad[i][1] == 1 ? "t" : "";
		c.flags = bad[i][1] == 2 ? DF_RETAIN | DF_DUP : DF_RETAIN;
		wbuf_reset(&w);
		enc_idle(&w, &in);
		enc_idle_sub(&w, "c/1/s", false);
		enc_idle_copy(&w, &c);
		assert_int_equal(dec_idle(w.data, w.len, &r), -1);
	}
	wbuf_free(&w);
}

/* A group member's key in an IDLE's list: the group's length first, so
 * that no two (group, member) pairs share one. */
static void
test_idle_member_key(void **state)
{
	struct wbuf w, v;

	(void)state;
	wbuf_init(&w);
	wbuf_init(&v);
	assert_string_equal(idle_member_key(&w, "g/a", "m/b"), "M/3/g/am/b");
	assert_string_not_equal(idle_member_key(&w, "g/a/", "m"), idle_member_key(&v, "g/a", "/m"));
	wbuf_free(&w);
	wbuf_free(&v);
}

/* A delivery whose body another process could still write: once owned,
 * its strings and properties no longer depend on the body, its payload
 * still lies there. */
static void
test_deliver_owned_strings_outlive_the_body(void **state)
{
	static const uint8_t props[] = { 0x01, 0x01 };
	struct rec_deliver in = { .topic = "a/b", .seq = 9, .qos = 1, .payload = (const uint8_t *)"pay",
				  .payload_len = 3, .props = props, .props_len = sizeof(props),
				  .expiry_ms = 5, .origin = "pub-1", .share = "$share/g/a/+" };
	struct rec_deliver plain = { .topic = "c", .seq = 1, .qos = 2,
				     .payload = (const uint8_t *)"x", .payload_len = 1 };
	struct rec_deliver d;
	struct wbuf w, own;
	uint8_t *body;

	(void)state;
	wbuf_init(&w);
	wbuf_init(&own);
	enc_deliver(&w, &in);
	body = malloc(w.len);
	assert_non_null(body);
	memcpy(body, w.data, w.len);
	assert_int_equal(dec_deliver(body, w.len, &d), 0);
	rec_deliver_own(&d, body, w.len, &own);
	assert_true(d.payload >= body && d.payload + 3 <= body + w.len);
	memset(body, 'X', w.len);		/* the writer scribbles over it */
	assert_string_equal(d.topic, "a/b");
	assert_string_equal(d.origin, "pub-1");
	assert_string_equal(d.share, "$share/g/a/+");
	assert_int_equal(d.props_len, sizeof(props));
	assert_memory_equal(d.props, props, sizeof(props));
	assert_int_equal(d.seq, 9);
	assert_memory_equal(d.payload, "XXX", 3);	/* bytes, passed on as they are */
	free(body);

	wbuf_reset(&w);
	enc_deliver(&w, &plain);
	body = malloc(w.len);
	assert_non_null(body);
	memcpy(body, w.data, w.len);
	assert_int_equal(dec_deliver(body, w.len, &d), 0);
	rec_deliver_own(&d, body, w.len, &own);
	memset(body, 'X', w.len);
	assert_string_equal(d.topic, "c");
	assert_string_equal(d.origin, "");
	assert_string_equal(d.share, "");
	assert_null(d.props);
	free(body);
	wbuf_free(&w);
	wbuf_free(&own);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_version_of),
		cmocka_unit_test(test_idle_copy),
		cmocka_unit_test(test_idle_member_key),
		cmocka_unit_test(test_idle_empty_only_when_final),
		cmocka_unit_test(test_config_round_trip),
		cmocka_unit_test(test_publish_round_trip),
		cmocka_unit_test(test_release_round_trip),
		cmocka_unit_test(test_attach_detach_unsub_round_trip),
		cmocka_unit_test(test_ack_dlq_done_round_trip),
		cmocka_unit_test(test_take_spare_round_trip),
		cmocka_unit_test(test_ready_done_round_trip),
		cmocka_unit_test(test_deadletter_stats_round_trip),
		cmocka_unit_test(test_deliver_round_trip),
		cmocka_unit_test(test_deliver_in_parts),
		cmocka_unit_test(test_truncation_and_trailing),
		cmocka_unit_test(test_bad_strings),
		cmocka_unit_test(test_max_string_length_at_end),
		cmocka_unit_test(test_publish_rejects),
		cmocka_unit_test(test_attach_rejects),
		cmocka_unit_test(test_ack_unsub_done_deliver_rejects),
		cmocka_unit_test(test_failed_decode_leaves_empty_strings),
		cmocka_unit_test(test_type_names),
		cmocka_unit_test(test_deliver_owned_strings_outlive_the_body),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
