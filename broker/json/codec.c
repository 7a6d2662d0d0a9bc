/* The JSON-lines protocol codec: client lines in, broker lines out. */
#include "json_codec.h"

#include <jansson.h>
#include <inttypes.h>
#include <math.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json/json_bignum.h"
#include "topic.h"
#include "xmalloc.h"

/* A line may be any JSON value (a non-object is an unknown command), and
 * a string may contain U+0000 (a payload may; topic checks refuse it). */
#define PARSE_FLAGS	(JSON_DECODE_ANY | JSON_ALLOW_NUL)
#define DUMP_FLAGS	(JSON_COMPACT | JSON_ENCODE_ANY)

typedef const char *(*parse_fn)(json_t *, struct jl_request *, const struct jl_bignums *);

static const char *parse_pub(json_t *, struct jl_request *, const struct jl_bignums *);
static const char *parse_pubrel(json_t *, struct jl_request *, const struct jl_bignums *);
static const char *parse_sub(json_t *, struct jl_request *, const struct jl_bignums *);
static const char *parse_ack(json_t *, struct jl_request *, const struct jl_bignums *);

static const struct {
	const char	*type;
	enum jl_cmd	 cmd;
	parse_fn	 parse;
} commands[] = {
	{ "PUB",	JL_PUB,		parse_pub },
	{ "PUBREL",	JL_PUBREL,	parse_pubrel },
	{ "SUB",	JL_SUB,		parse_sub },
	{ "UNSUB",	JL_UNSUB,	parse_sub },
	{ "PUBREC",	JL_PUBREC,	parse_ack },
	{ "PUBCOMP",	JL_PUBCOMP,	parse_ack },
};

/* Output helpers. */

static void
put_lit(struct wbuf *w, const char *s)
{
	put_raw(w, s, strlen(s));
}

static void
put_dec(struct wbuf *w, uint64_t v)
{
	char buf[24];
	int n = snprintf(buf, sizeof(buf), "%" PRIu64, v);

	put_raw(w, buf, (size_t)n);
}

static int
dump_cb(const char *buf, size_t size, void *arg)
{
	put_raw(arg, buf, size);
	return 0;
}

/* A JSON string, escaped by jansson; -1 if s is not UTF-8. */
static int
put_string(struct wbuf *w, const void *s, size_t n)
{
	json_t *j;
	int rc;

	if ((j = json_stringn(n > 0 ? s : "", n)) == NULL)
		return -1;
	rc = json_dump_callback(j, dump_cb, w, DUMP_FLAGS);
	json_decref(j);
	return rc;
}

static void
put_base64(struct wbuf *w, const void *p, size_t n)
{
	size_t need;
	char *buf;

	if (n > (SIZE_MAX - 1) / 4 * 3 - 3)
		abort();
	need = (n + 2) / 3 * 4 + 1;
	buf = xmalloc(need);
	if (b64_ntop(p, n, buf, need) < 0)
		abort();
	put_lit(w, "\"");
	put_raw(w, buf, need - 1);
	put_lit(w, "\"");
	free(buf);
}

/*
 * A double in the fewest significant digits that read back exactly (as
 * JavaScript and Elixir print it), instead of jansson's 17 digits, which
 * would turn 0.1 into 0.10000000000000001.  Fixed notation for exponents
 * -6 .. 20, else d.ddde[-]X; fixed notation keeps a ".0" so that the value
 * stays a real when read again.
 */
static void
put_real(struct wbuf *w, double d)
{
	char buf[40], digits[20], *p, *e;
	int prec, exp, nd = 0, k, i;

	if (!isfinite(d)) {
		put_lit(w, "null");
		return;
	}
	for (prec = 1; prec < 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*e", prec - 1, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	snprintf(buf, sizeof(buf), "%.*e", prec - 1, d);
	if ((e = strchr(buf, 'e')) == NULL)
		abort();
	for (p = buf; p < e; p++)
		if (*p >= '0' && *p <= '9' && nd < (int)sizeof(digits))
			digits[nd++] = *p;
	exp = atoi(e + 1);
	if (signbit(d))
		put_lit(w, "-");
	if (exp < -6 || exp > 20) {
		put_raw(w, digits, 1);
		if (nd > 1) {
			put_lit(w, ".");
			put_raw(w, digits + 1, (size_t)nd - 1);
		}
		snprintf(buf, sizeof(buf), "e%d", exp);
		put_lit(w, buf);
		return;
	}
	k = exp + 1;		/* digits before the point */
	if (k <= 0) {
		put_lit(w, "0.");
		for (i = k; i < 0; i++)
			put_lit(w, "0");
		put_raw(w, digits, (size_t)nd);
	} else if (k >= nd) {
		put_raw(w, digits, (size_t)nd);
		for (i = nd; i < k; i++)
			put_lit(w, "0");
		put_lit(w, ".0");
	} else {
		put_raw(w, digits, (size_t)k);
		put_lit(w, ".");
		put_raw(w, digits + k, (size_t)(nd - k));
	}
}

/* Compact JSON text of a parsed value, object keys in their order; the
 * markers of bn written back as the integers they stand for. */
static void
put_value(struct wbuf *w, json_t *v, const struct jl_bignums *bn)
{
	const char *sep = "", *digits;
	char buf[32];
	size_t i, dlen;
	void *it;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		put_lit(w, "{");
		for (it = json_object_iter(v); it != NULL;
		    it = json_object_iter_next(v, it)) {
			put_lit(w, sep);
			put_string(w, json_object_iter_key(it),
			    json_object_iter_key_len(it));
			put_lit(w, ":");
			put_value(w, json_object_iter_value(it), bn);
			sep = ",";
		}
		put_lit(w, "}");
		break;
	case JSON_ARRAY:
		put_lit(w, "[");
		for (i = 0; i < json_array_size(v); i++) {
			put_lit(w, sep);
			put_value(w, json_array_get(v, i), bn);
			sep = ",";
		}
		put_lit(w, "]");
		break;
	case JSON_STRING:
		if (jl_bignums_digits(bn, json_string_value(v), json_string_length(v),
		    &digits, &dlen))
			put_raw(w, digits, dlen);
		else
			json_dump_callback(v, dump_cb, w, DUMP_FLAGS);
		break;
	case JSON_INTEGER:
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT,
		    json_integer_value(v));
		put_lit(w, buf);
		break;
	case JSON_REAL:
		put_real(w, json_real_value(v));
		break;
	case JSON_TRUE:
		put_lit(w, "true");
		break;
	case JSON_FALSE:
		put_lit(w, "false");
		break;
	case JSON_NULL:
		put_lit(w, "null");
		break;
	}
}

/* Decoding. */

_Static_assert(TOPIC_MAX_LEN == 32767, "topic_error() says 32767");

/* The reasons below follow the command's name: "PUB without msg". */
static const char *
topic_error(enum topic_err e)
{
	switch (e) {
	case TOPIC_OK:
		break;
	case TOPIC_EMPTY:
		return "with an empty topic";
	case TOPIC_TOO_LONG:
		return "with a topic longer than 32767 bytes";
	case TOPIC_BAD_UTF8:
		return "with a topic that is not valid UTF-8";
	case TOPIC_NUL:
		return "with a NUL character in its topic";
	case TOPIC_WILDCARD:
		return "with a wildcard in its topic";
	case TOPIC_BAD_WILDCARD:
		return "with a misplaced wildcard in its topic filter";
	case TOPIC_TOO_MANY_LEVELS:
		return "with a topic of more levels than max_topic_levels";
	}
	return "with a bad topic";
}

static const char *
get_topic(json_t *root, const struct jl_bignums *bn, bool filter, char **topic)
{
	json_t *t = json_object_get(root, "topic");
	enum topic_err e;
	const char *s;
	size_t n;

	if (t == NULL)
		return "without topic";
	if (!json_is_string(t) || jl_bignums_marks(bn, json_string_value(t), json_string_length(t)))
		return "with a topic that is not a string";
	s = json_string_value(t);
	n = json_string_length(t);
	e = filter ? topic_check_sub_filter(s, n) : topic_check_name(s, n);
	if (e != TOPIC_OK)
		return topic_error(e);
	*topic = xmemdup(s, n + 1);
	return NULL;
}

static const char *
get_msg_id(json_t *root, uint64_t *id)
{
	json_t *v = json_object_get(root, "msgId");

	if (v == NULL)
		return "without msgId";
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return "with a msgId that is not a non-negative integer";
	*id = (uint64_t)json_integer_value(v);
	return NULL;
}

static const char *
parse_pub(json_t *root, struct jl_request *r, const struct jl_bignums *bn)
{
	const char *err;
	struct wbuf w;
	json_t *msg;
	size_t n;

	if ((err = get_topic(root, bn, false, &r->topic)) != NULL)
		return err;
	if ((msg = json_object_get(root, "msg")) == NULL)
		return "without msg";
	/* A string is stored as its bytes; an integer beyond 64 bits, masked
	 * as a string, as the JSON text it is. */
	if (json_is_string(msg) &&
	    !jl_bignums_marks(bn, json_string_value(msg), json_string_length(msg))) {
		n = json_string_length(msg);
		r->payload = xmemdup(json_string_value(msg), n + 1);
		r->payload_len = n;
		r->payload_json = false;
		return NULL;
	}
	wbuf_init(&w);
	put_value(&w, msg, bn);
	put_raw(&w, "", 1);
	r->payload = w.data;
	r->payload_len = w.len - 1;
	r->payload_json = true;
	return NULL;
}

static const char *
parse_pubrel(json_t *root, struct jl_request *r, const struct jl_bignums *bn)
{
	(void)bn;
	return get_msg_id(root, &r->msg_id);
}

static const char *
parse_sub(json_t *root, struct jl_request *r, const struct jl_bignums *bn)
{
	return get_topic(root, bn, true, &r->topic);
}

static const char *
parse_ack(json_t *root, struct jl_request *r, const struct jl_bignums *bn)
{
	const char *err;

	if ((err = get_msg_id(root, &r->msg_id)) != NULL)
		return err;
	return get_topic(root, bn, false, &r->topic);
}

static enum jl_cmd
parse_command(json_t *root, struct jl_request *r, const struct jl_bignums *bn)
{
	json_t *type;
	const char *s;
	size_t i, n;

	if (!json_is_object(root)) {
		r->error = "not a JSON object";
		return JL_UNKNOWN_COMMAND;
	}
	if ((type = json_object_get(root, "type")) == NULL ||
	    !json_is_string(type)) {
		r->error = "no type";
		return JL_UNKNOWN_COMMAND;
	}
	s = json_string_value(type);
	n = json_string_length(type);
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strlen(commands[i].type) != n ||
		    memcmp(commands[i].type, s, n) != 0)
			continue;
		r->type = commands[i].type;
		if ((r->error = commands[i].parse(root, r, bn)) != NULL)
			return JL_BAD_REQUEST;
		return commands[i].cmd;
	}
	r->error = "unknown type";
	return JL_UNKNOWN_COMMAND;
}

/* PUB topics and SUB filters are bounded by max_topic_levels; the others
 * name what exists already, which a lowered limit must not make
 * unreachable. */
static bool
too_deep(const struct jl_request *r, size_t max_levels)
{
	return (r->cmd == JL_PUB || r->cmd == JL_SUB) &&
	    topic_check_levels(r->topic, strlen(r->topic), max_levels) != TOPIC_OK;
}

/* The line parsed; when it has a number that jansson cannot hold, parsed
 * again with its integers beyond 64 bits masked (bn).  NULL, with out's
 * error, when it is not JSON, has a real beyond a double, or has a big
 * integer that cannot be masked. */
static json_t *
load(const char *line, size_t len, struct jl_bignums *bn, struct jl_request *out)
{
	json_error_t jerr;
	json_t *root;
	char *masked;
	size_t mlen;

	if ((root = json_loadb(line, len, PARSE_FLAGS, &jerr)) != NULL)
		return root;
	out->cmd = JL_INVALID_JSON;
	if (json_error_code(&jerr) != json_error_numeric_overflow) {
		out->error = "not valid JSON";
		return NULL;
	}
	out->error = "number out of range";
	if ((masked = jl_bignums_mask(line, len, bn, &mlen)) == NULL)
		return NULL;
	if ((root = json_loadb(masked, mlen, PARSE_FLAGS, &jerr)) == NULL &&
	    json_error_code(&jerr) != json_error_numeric_overflow)
		out->error = "not valid JSON";	/* and a big integer before */
	free(masked);
	return root;
}

enum jl_cmd
jl_parse_limited(const char *line, size_t len, size_t max_levels,
    struct jl_request *out)
{
	struct jl_bignums bn = { 0 };
	const char *error, *type;
	json_t *root;

	memset(out, 0, sizeof(*out));
	if ((root = load(line, len, &bn, out)) == NULL) {
		jl_bignums_free(&bn);
		return out->cmd;
	}
	out->cmd = parse_command(root, out, bn.n > 0 ? &bn : NULL);
	json_decref(root);
	/* A PUB's msg may hold any integer; an id may not. */
	if (bn.n > 0 && (out->type == NULL || strcmp(out->type, "PUB") != 0)) {
		out->cmd = JL_INVALID_JSON;
		out->error = "number out of range";
		out->type = NULL;
	}
	jl_bignums_free(&bn);
	if (out->cmd >= JL_PUB && too_deep(out, max_levels)) {
		out->cmd = JL_BAD_REQUEST;
		out->error = topic_error(TOPIC_TOO_MANY_LEVELS);
	}
	if (out->cmd < JL_PUB) {
		error = out->error;
		type = out->type;
		jl_request_free(out);
		out->error = error;
		out->type = type;
	}
	return out->cmd;
}

enum jl_cmd
jl_parse(const char *line, size_t len, struct jl_request *out)
{
	return jl_parse_limited(line, len, 0, out);
}

void
jl_request_free(struct jl_request *r)
{
	free(r->topic);
	free(r->payload);
	r->topic = NULL;
	r->payload = NULL;
	r->payload_len = 0;
}

/* Encoding. */

void
jl_enc_text(struct wbuf *w, const char *text)
{
	size_t start = w->len, i;

	put_lit(w, text);
	for (i = start; i < w->len; i++)
		if (w->data[i] == '\r' || w->data[i] == '\n')
			w->data[i] = ' ';
	put_lit(w, "\r\n");
}

void
jl_enc_error(struct wbuf *w, const char *text)
{
	put_lit(w, "ERROR ");
	jl_enc_text(w, text);
}

/* {"type":T,"msgId":N} or, with a topic, {"type":T,"msgId":N,"topic":S};
 * -1 and nothing appended if the topic is not UTF-8. */
static int
enc_ack(struct wbuf *w, const char *type, uint64_t msg_id, const char *topic)
{
	size_t start = w->len;

	put_lit(w, "{\"type\":\"");
	put_lit(w, type);
	put_lit(w, "\",\"msgId\":");
	put_dec(w, msg_id);
	if (topic != NULL) {
		put_lit(w, ",\"topic\":");
		if (put_string(w, topic, strlen(topic)) == -1) {
			w->len = start;
			return -1;
		}
	}
	put_lit(w, "}\r\n");
	return 0;
}

void
jl_enc_pubrec(struct wbuf *w, uint64_t msg_id)
{
	enc_ack(w, "PUBREC", msg_id, NULL);
}

void
jl_enc_pubcomp(struct wbuf *w, uint64_t msg_id)
{
	enc_ack(w, "PUBCOMP", msg_id, NULL);
}

int
jl_enc_pubrel(struct wbuf *w, uint64_t msg_id, const char *topic)
{
	return enc_ack(w, "PUBREL", msg_id, topic);
}

/* Stored JSON text goes out as is; refuse what would break the line. */
static bool
sane_json(const void *p, size_t n)
{
	return n > 0 && memchr(p, '\n', n) == NULL && memchr(p, '\r', n) == NULL;
}

int
jl_enc_deliver(struct wbuf *w, const char *topic, uint64_t msg_id,
    const void *payload, size_t len, bool is_json)
{
	size_t start = w->len;
	bool b64 = false;

	put_lit(w, "{\"type\":\"PUB\",\"topic\":");
	if (put_string(w, topic, strlen(topic)) == -1) {
		w->len = start;
		return -1;
	}
	put_lit(w, ",\"msg\":");
	if (is_json && sane_json(payload, len))
		put_raw(w, payload, len);
	else if (put_string(w, payload, len) == -1) {
		put_base64(w, payload, len);
		b64 = true;
	}
	put_lit(w, ",\"msgId\":");
	put_dec(w, msg_id);
	if (b64)
		put_lit(w, ",\"encoding\":\"base64\"");
	put_lit(w, "}\r\n");
	return 0;
}
