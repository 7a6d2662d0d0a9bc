"""The JSON-lines protocol, row by row (PROTOCOL-json.md)."""

import re
import signal

import pytest

from broker_harness import (LOGGED_IN, PLEASE_LOGIN, HarnessError, Publisher, kill_pid,
                            login, wait_for)

# How long a check for "nothing arrives" watches the connection.  The
# default retry interval is 10 s, so no retrial falls into it.
QUIET = 0.8
# The PUBREL to a consumer, byte for byte: the original's, and the topic
# (msgId is a sequence number per topic).
PUBREL_LINE = b'{"type":"PUBREL","msgId":%d,"topic":"%s"}\r\n'


def logged_in(broker, username):
    c = broker.client()
    assert login(c, username) == LOGGED_IN
    return c


def read_pub(c, topic=None, timeout=None):
    obj = c.read_json(timeout)
    assert isinstance(obj, dict) and obj.get("type") == "PUB", "expected a PUB, got %r" % obj
    assert set(obj) == {"type", "topic", "msg", "msgId"}, "PUB keys: %s" % sorted(obj)
    assert isinstance(obj["msgId"], int) and not isinstance(obj["msgId"], bool)
    if topic is not None:
        assert obj["topic"] == topic, obj
    return obj


def complete(c, topic, msg_id):
    """The consumer side of one exchange, checking every reply."""
    c.send_json({"type": "PUBREC", "msgId": msg_id, "topic": topic})
    c.expect("OK")
    assert c.read_raw_line() == PUBREL_LINE % (msg_id, topic.encode())
    c.send_json({"type": "PUBCOMP", "msgId": msg_id, "topic": topic})
    c.expect("OK")


def consume(c, topic, n):
    msgs = []
    for _ in range(n):
        p = read_pub(c, topic)
        complete(c, topic, p["msgId"])
        msgs.append(p)
    return msgs


# ------------------------------------------------------------------ login

def test_greeting_and_login_are_byte_exact(broker):
    c = broker.client()
    assert c.read_raw_line() == b"Please login!\r\n"
    c.send_line("log alice")
    assert c.read_raw_line() == b"Succesfully logged in!\r\n"


def test_login_accepts_lf_only(broker):
    c = broker.client()
    c.expect(PLEASE_LOGIN)
    c.send_line("log bob", eol=b"\n")
    c.expect(LOGGED_IN)
    c.send_line('{"type":"SUB","topic":"lf"}', eol=b"\n")
    c.expect("OK")


def one_user(broker, first, second):
    """The login line second names the user first logged in, connected:
    it is refused."""
    a = broker.client()
    a.expect(PLEASE_LOGIN)
    a.send_line(first)
    a.expect(LOGGED_IN)
    b = broker.client()
    b.expect(PLEASE_LOGIN)
    b.send_line(second)
    b.expect_prefix("ERROR ")
    b.expect_closed()


def test_login_is_case_insensitive(broker):
    # The name was lower-cased: `log alice` is the same, connected user.
    one_user(broker, "LOG Alice", "log alice")


def test_login_lower_cases_in_unicode(broker):
    """The original lower-cased the line with String.downcase: Unicode,
    not ASCII only, so "ÄRGER" and "ärger" are one user."""
    one_user(broker, "log \u00c4RGER", "log \u00e4rger")


def test_login_splits_on_white_space(broker):
    c = broker.client()
    c.expect(PLEASE_LOGIN)
    c.send_line("Log   CAROL  ")
    c.expect(LOGGED_IN)
    d = broker.client()
    d.expect(PLEASE_LOGIN)
    d.send_line("log\tcarol")
    d.expect_prefix("ERROR ")
    d.expect_closed()


def test_failed_logins_get_please_login_again(broker):
    c = broker.client()
    c.expect(PLEASE_LOGIN)
    for bad in ("hello", '{"type":"SUB","topic":"t"}', "login dave", "logx dave"):
        c.send_line(bad)
        c.expect(PLEASE_LOGIN)
    # The fifth try succeeds: four failures do not close the connection.
    c.send_line("log dave")
    c.expect(LOGGED_IN)
    c.send_json({"type": "SUB", "topic": "t"})
    c.expect("OK")


def notice_logged(broker, pattern):
    """A line of the log at level notice, about a client, ends with pattern."""
    rx = re.compile(r"notice: client .*: %s$" % pattern, re.M)
    wait_for(lambda: rx.search(broker.log_text()), 10, "notice: %s" % pattern)


def test_five_failed_logins_close_the_connection(broker):
    c = broker.client()
    c.expect(PLEASE_LOGIN)
    for i in range(4):
        c.send_line("nope %d" % i)
        c.expect(PLEASE_LOGIN)
    c.send_line("nope 4")
    # After the fifth failure: at most one more greeting, then EOF.
    seen = c.expect_closed(allow=(PLEASE_LOGIN,))
    assert len(seen) <= 1
    # What the client sent closed it: a notice, one line.
    notice_logged(broker, r"closed: too many failed logins")
    # The broker is fine: somebody else logs in.
    assert login(broker.client(), "erin") == LOGGED_IN


def test_duplicate_username_is_refused_and_closed(broker):
    first = logged_in(broker, "frank")
    second = broker.client()
    assert login(second, "frank").startswith("ERROR ")
    second.expect_closed()
    notice_logged(broker, r"user frank is already connected; refused")
    # The first connection is untouched.
    first.send_json({"type": "SUB", "topic": "dup"})
    first.expect("OK")
    # Once it is gone, the name is free again.
    first.close()

    def relogin():
        c = broker.client()
        reply = login(c, "frank")
        c.close()
        return reply == LOGGED_IN
    wait_for(relogin, 10, "`log frank` to succeed after the first connection closed",
             interval=0.1)


# --------------------------------------------------------------- SUB/UNSUB

def test_sub_and_unsub_answer_ok(broker):
    c = logged_in(broker, "gina")
    c.send_json({"type": "SUB", "topic": "news"})
    assert c.read_raw_line() == b"OK\r\n"
    c.send_json({"type": "UNSUB", "topic": "news"})
    assert c.read_raw_line() == b"OK\r\n"
    c.send_json({"type": "SUB", "topic": "news"})
    c.expect("OK")
    c.send_json({"type": "SUB", "topic": "news"})     # a repeated SUB is harmless
    c.expect("OK")


def test_repeated_sub_does_not_send_again_what_is_in_flight(broker):
    """A repeated SUB is harmless: the PUB or PUBREL in flight is not sent
    a second time (which would also cost the consumer an attempt)."""
    c = logged_in(broker, "ivan")
    c.send_json({"type": "SUB", "topic": "again"})
    c.expect("OK")
    broker.publisher().publish("again", "once")
    first = read_pub(c, "again")
    c.send_json({"type": "SUB", "topic": "again"})
    c.expect("OK")
    c.expect_silence(QUIET)
    c.send_json({"type": "PUBREC", "msgId": first["msgId"], "topic": "again"})
    c.expect("OK")
    assert c.read_raw_line() == PUBREL_LINE % (first["msgId"], b"again")
    c.close()
    # Back, as the original's clients come back: log, then SUB again.
    conns = []

    def relogin():
        conns.append(broker.client())
        return login(conns[-1], "ivan") == LOGGED_IN
    wait_for(relogin, 10, "`log ivan` to succeed after the first connection closed",
             interval=0.1)
    d = conns[-1]
    assert d.read_raw_line() == PUBREL_LINE % (first["msgId"], b"again")
    d.send_json({"type": "SUB", "topic": "again"})
    d.expect("OK")
    d.expect_silence(QUIET)
    d.send_json({"type": "PUBCOMP", "msgId": first["msgId"], "topic": "again"})
    d.expect("OK")
    broker.publisher().publish("again", "next")
    assert read_pub(d, "again")["msg"] == "next"


def test_unsub_of_topic_never_subscribed_is_ok(broker):
    c = logged_in(broker, "hank")
    c.send_json({"type": "UNSUB", "topic": "never"})
    c.expect("OK")


# -------------------------------------------------------------- publishers

def test_publisher_exchange_is_byte_exact(broker):
    p = broker.publisher()
    p.send_line('{"type":"PUB","topic":"t","msg":"hello"}')
    raw = p.read_raw_line()
    m = re.match(rb'^\{"type":"PUBREC","msgId":(\d+)\}\r\n$', raw)
    assert m, "PUBREC not byte-exact: %r" % raw
    n = int(m.group(1))
    p.send_line('{"type":"PUBREL","msgId":%d}' % n)
    assert p.read_raw_line() == b'{"type":"PUBCOMP","msgId":%d}\r\n' % n


def test_publisher_accepts_lf_and_any_key_order(broker):
    cons = logged_in(broker, "ivy")
    cons.send_json({"type": "SUB", "topic": "ko"})
    cons.expect("OK")
    p = Publisher(broker.publisher_port, eol=b"\n")
    p.send_line('{"msg":{"b":1,"a":[2]},"topic":"ko","type":"PUB"}')
    mid = p.read_pubrec()
    p.send_line('{"msgId":%d,"type":"PUBREL"}' % mid)
    p.read_pubcomp(mid)
    assert read_pub(cons, "ko")["msg"] == {"b": 1, "a": [2]}


def test_pubrel_for_unknown_id_gets_pubcomp(broker):
    p = broker.publisher()
    p.pubrel(987654)
    p.pubrel(1)
    # A repeated PUBREL of a completed message likewise, and it is not
    # delivered twice.
    cons = logged_in(broker, "jack")
    cons.send_json({"type": "SUB", "topic": "idem"})
    cons.expect("OK")
    mid = p.publish("idem", "once")
    p.pubrel(mid)
    got = consume(cons, "idem", 1)
    assert got[0]["msg"] == "once"
    cons.expect_silence(QUIET)


def test_pubrel_sent_before_its_pubrec_releases_the_message(broker):
    """A client that sends PUB and its PUBREL before reading (the ids of a
    connection are 1, 2, ...) gets PUBREC, then PUBCOMP, and the message
    is released then, as the PUBCOMP says, not when it disconnects."""
    cons = logged_in(broker, "kate")
    cons.send_json({"type": "SUB", "topic": "early"})
    cons.expect("OK")
    p = broker.publisher()
    p.send_raw(b'{"type":"PUB","topic":"early","msg":"m1"}\n{"type":"PUBREL","msgId":1}\n'
               b'{"type":"PUB","topic":"early","msg":"m2"}\n{"type":"PUBREL","msgId":2}\n'
               b'{"type":"PUBREL","msgId":2}\n')
    for line in (b'{"type":"PUBREC","msgId":1}', b'{"type":"PUBCOMP","msgId":1}',
                 b'{"type":"PUBREC","msgId":2}', b'{"type":"PUBCOMP","msgId":2}',
                 b'{"type":"PUBCOMP","msgId":2}'):
        assert p.read_raw_line() == line + b"\r\n"
    assert [m["msg"] for m in consume(cons, "early", 2)] == ["m1", "m2"]
    cons.expect_silence(QUIET)
    p.close()


def test_msgids_are_unique_per_connection(broker):
    p = broker.publisher()
    ids = [p.publish("uniq", i) for i in range(20)]
    pending = [p.pub("uniq", "pending %d" % i) for i in range(20)]
    ids += pending
    assert len(set(ids)) == len(ids), "msgIds repeat on one connection: %s" % ids
    for mid in pending:
        p.pubrel(mid)
    ids += p.publish_pipelined([("uniq", "pipe %d" % i) for i in range(20)])
    assert len(set(ids)) == len(ids), "msgIds repeat on one connection: %s" % ids


def test_pipelined_publishing_keeps_order(broker):
    cons = logged_in(broker, "kate")
    cons.send_json({"type": "SUB", "topic": "pipe"})
    cons.expect("OK")
    p = broker.publisher()
    p.publish_pipelined([("pipe", "m%d" % i) for i in range(25)])
    assert [m["msg"] for m in consume(cons, "pipe", 25)] == ["m%d" % i for i in range(25)]


def test_answers_come_in_the_order_of_the_lines(broker):
    """The broker picks a PUB's msgId, so a client that sends several lines
    before reading tells its PUBRECs apart by their order alone: each line
    is answered in its turn, although the topicd of an earlier PUB (here
    stopped) answers after a later one's."""
    p = broker.publisher()
    p.publish("ord/a", "warm")
    p.publish("ord/b", "warm")
    tpid = broker.wait_topicd("ord/a")
    q = broker.publisher()
    kill_pid(tpid, signal.SIGSTOP)
    try:
        q.send_raw(b'{"type":"PUB","topic":"ord/a","msg":1}\n'
                   b'{"type":"PUB","topic":"ord/b","msg":2}\n'
                   b'not json\n'
                   b'{"type":"PUBREL","msgId":99}\n')
        wait_for(lambda: [broker.status()[1][t]["held"] for t in ("ord/a", "ord/b")] == [1, 0],
                 10, "ord/b to store its message while ord/a waits")
    finally:
        kill_pid(tpid, signal.SIGCONT)
    assert [q.read_raw_line() for _ in range(4)] == [
        b'{"type":"PUBREC","msgId":1}\r\n', b'{"type":"PUBREC","msgId":2}\r\n',
        b"INVALID JSON\r\n", b'{"type":"PUBCOMP","msgId":99}\r\n']


# --------------------------------------------------------------- consumers

MSG_VALUES = [
    pytest.param("plain text", id="string"),
    pytest.param("", id="empty-string"),
    pytest.param("h\u00e9llo \u2713 \U0001F600 \"q\" \\ \n\t", id="unicode-escapes"),
    pytest.param('{"looks":"like json"}', id="string-holding-json"),
    pytest.param(42, id="int"),
    pytest.param(-3.25, id="float"),
    pytest.param(True, id="true"),
    pytest.param(False, id="false"),
    pytest.param(None, id="null"),
    pytest.param([1, "two", [3], {"four": 4}], id="array"),
    pytest.param({"a": {"b": [1, 2, {"c": None}]}, "d": "e"}, id="object"),
    # The old broker passed any integer on, digit for digit.
    pytest.param(123456789012345678901234567890, id="int-beyond-64-bits"),
    pytest.param({"id": -(2 ** 70), "ids": [2 ** 63, -(2 ** 63), 1.5]},
                 id="ints-beyond-64-bits-nested"),
]


@pytest.mark.parametrize("value", MSG_VALUES)
def test_delivery_carries_the_original_json_value(broker, value):
    cons = logged_in(broker, "lena")
    cons.send_json({"type": "SUB", "topic": "vals"})
    cons.expect("OK")
    broker.publisher().publish("vals", value)
    p = read_pub(cons, "vals")
    assert p["msg"] == value and type(p["msg"]) is type(value), \
        "sent msg %r, delivered %r" % (value, p["msg"])
    complete(cons, "vals", p["msgId"])


def test_consumer_exchange(broker):
    cons = logged_in(broker, "mike")
    cons.send_json({"type": "SUB", "topic": "ex"})
    cons.expect("OK")
    broker.publisher().publish("ex", {"k": 1})
    p = read_pub(cons, "ex")
    assert p["msg"] == {"k": 1}
    cons.send_json({"type": "PUBREC", "msgId": p["msgId"], "topic": "ex"})
    assert cons.read_raw_line() == b"OK\r\n"
    assert cons.read_raw_line() == PUBREL_LINE % (p["msgId"], b"ex")
    cons.send_json({"type": "PUBCOMP", "msgId": p["msgId"], "topic": "ex"})
    assert cons.read_raw_line() == b"OK\r\n"
    cons.expect_silence(QUIET)


def test_next_message_only_after_pubcomp(broker):
    cons = logged_in(broker, "nina")
    cons.send_json({"type": "SUB", "topic": "seq"})
    cons.expect("OK")
    pub = broker.publisher()
    for i in range(3):
        pub.publish("seq", "s%d" % i)
    first = read_pub(cons, "seq")
    assert first["msg"] == "s0"
    cons.expect_silence(QUIET)                  # no PUBREC yet: nothing else
    cons.send_json({"type": "PUBREC", "msgId": first["msgId"], "topic": "seq"})
    cons.expect("OK")
    assert cons.read_json() == {"type": "PUBREL", "msgId": first["msgId"], "topic": "seq"}
    cons.expect_silence(QUIET)                  # no PUBCOMP yet: nothing else
    cons.send_json({"type": "PUBCOMP", "msgId": first["msgId"], "topic": "seq"})
    cons.expect("OK")
    second = read_pub(cons, "seq")
    assert second["msg"] == "s1" and second["msgId"] > first["msgId"]
    complete(cons, "seq", second["msgId"])
    assert read_pub(cons, "seq")["msg"] == "s2"


def test_repeated_pubrec_gets_the_pubrel_again(broker):
    """A PUBREC for the message completed last is answered OK and the
    PUBREL again (the exchange is idempotent, as a publisher's PUBREL for
    an unknown id gets its PUBCOMP); the PUBCOMP that follows changes
    nothing: the next message is neither skipped nor sent twice.  One for
    a message the consumer was never given gets only OK."""
    pub = broker.publisher()
    pub.publish("rep", "before the SUB")
    cons = logged_in(broker, "rita")
    cons.send_json({"type": "SUB", "topic": "rep"})
    cons.expect("OK")
    for i in range(3):
        pub.publish("rep", "r%d" % i)
    first = read_pub(cons, "rep")
    complete(cons, "rep", first["msgId"])
    second = read_pub(cons, "rep")
    assert second["msg"] == "r1"
    # The first again, while the second is in flight.
    cons.send_json({"type": "PUBREC", "msgId": first["msgId"], "topic": "rep"})
    assert cons.read_raw_line() == b"OK\r\n"
    assert cons.read_raw_line() == PUBREL_LINE % (first["msgId"], b"rep")
    cons.send_json({"type": "PUBCOMP", "msgId": first["msgId"], "topic": "rep"})
    assert cons.read_raw_line() == b"OK\r\n"
    # A PUBREC for a message not sent yet, or published before the SUB,
    # changes nothing either.
    for never in (second["msgId"] + 1, first["msgId"] - 1):
        cons.send_json({"type": "PUBREC", "msgId": never, "topic": "rep"})
        assert cons.read_raw_line() == b"OK\r\n"
    cons.expect_silence(QUIET)
    complete(cons, "rep", second["msgId"])
    third = read_pub(cons, "rep")
    assert third["msg"] == "r2" and third["msgId"] == second["msgId"] + 1, third
    complete(cons, "rep", third["msgId"])
    cons.expect_silence(QUIET)


def test_order_per_topic_and_increasing_msgids(broker):
    cons = logged_in(broker, "olga")
    cons.send_json({"type": "SUB", "topic": "ord"})
    cons.expect("OK")
    pub = broker.publisher()
    for i in range(30):
        pub.publish("ord", i)
    got = consume(cons, "ord", 30)
    assert [g["msg"] for g in got] == list(range(30))
    ids = [g["msgId"] for g in got]
    assert all(a < b for a, b in zip(ids, ids[1:])), "msgIds not increasing: %s" % ids


def test_message_is_released_only_after_pubrel(broker):
    cons = logged_in(broker, "paul")
    cons.send_json({"type": "SUB", "topic": "rel"})
    cons.expect("OK")
    pub = broker.publisher()
    mid = pub.pub("rel", "held")
    cons.expect_silence(QUIET)          # stored, but not released
    pub.pubrel(mid)
    assert read_pub(cons, "rel")["msg"] == "held"


def test_unreleased_message_does_not_block_other_publishers(broker):
    cons = logged_in(broker, "quin")
    cons.send_json({"type": "SUB", "topic": "mix"})
    cons.expect("OK")
    a, b = broker.publisher(), broker.publisher()
    held = a.pub("mix", "held")
    b.publish("mix", "free")
    # Either the later message waits for the earlier one (sequence order)
    # or it passes it; but the held one never comes before its PUBREL.
    seen = []
    try:
        p = read_pub(cons, "mix", timeout=QUIET)
        seen.append(p["msg"])
        complete(cons, "mix", p["msgId"])
    except HarnessError:
        pass
    assert "held" not in seen
    a.pubrel(held)
    while len(seen) < 2:
        p = read_pub(cons, "mix")
        seen.append(p["msg"])
        complete(cons, "mix", p["msgId"])
    assert sorted(seen) == ["free", "held"]


def test_topics_are_independent(broker):
    cons = logged_in(broker, "rosa")
    for t in ("ta", "tb"):
        cons.send_json({"type": "SUB", "topic": t})
        cons.expect("OK")
    pub = broker.publisher()
    for i in range(2):
        pub.publish("ta", "a%d" % i)
        pub.publish("tb", "b%d" % i)
    # One PUB of each topic arrives; leave ta's unanswered.
    first = {}
    for _ in range(2):
        p = cons.read_json()
        assert p.get("type") == "PUB", p
        first[p["topic"]] = p
    assert first["ta"]["msg"] == "a0" and first["tb"]["msg"] == "b0"
    # tb goes on while ta waits.
    tb = first["tb"]
    cons.send_json({"type": "PUBREC", "msgId": tb["msgId"], "topic": "tb"})
    cons.expect("OK")
    assert cons.read_json() == {"type": "PUBREL", "msgId": tb["msgId"], "topic": "tb"}
    cons.send_json({"type": "PUBCOMP", "msgId": tb["msgId"], "topic": "tb"})
    cons.expect("OK")
    p = read_pub(cons, "tb")
    assert p["msg"] == "b1"
    complete(cons, "tb", p["msgId"])
    # Now ta.
    complete(cons, "ta", first["ta"]["msgId"])
    assert read_pub(cons, "ta")["msg"] == "a1"


def test_pubrel_names_the_topic_it_releases(broker):
    """msgIds are sequence numbers per topic: the first message of two
    topics can have the same id.  With both exchanges open, each PUBREL
    says which one it releases."""
    cons = logged_in(broker, "vera")
    for t in ("pa", "pb"):
        cons.send_json({"type": "SUB", "topic": t})
        cons.expect("OK")
    pub = broker.publisher()
    pub.publish("pa", "a0")
    pub.publish("pb", "b0")
    pubs = {}
    for _ in range(2):
        p = read_pub(cons)
        pubs[p["topic"]] = p
    assert sorted(pubs) == ["pa", "pb"]
    assert pubs["pa"]["msgId"] == pubs["pb"]["msgId"], "the ids of two first messages: %s" % pubs
    for t in ("pb", "pa"):
        cons.send_json({"type": "PUBREC", "msgId": pubs[t]["msgId"], "topic": t})
        cons.expect("OK")
        assert cons.read_raw_line() == PUBREL_LINE % (pubs[t]["msgId"], t.encode())
    for t in ("pa", "pb"):
        cons.send_json({"type": "PUBCOMP", "msgId": pubs[t]["msgId"], "topic": t})
        cons.expect("OK")
    # Both exchanges are over: the next message of each topic follows.
    pub.publish("pa", "a1")
    pub.publish("pb", "b1")
    nxt = [read_pub(cons) for _ in range(2)]
    assert sorted((p["topic"], p["msg"]) for p in nxt) == [("pa", "a1"), ("pb", "b1")]
    for p in nxt:
        complete(cons, p["topic"], p["msgId"])


def test_every_consumer_of_a_topic_gets_every_message(broker):
    names = ["sam", "tess", "uma"]
    consumers = [broker.consumer(n) for n in names]
    for c in consumers:
        c.subscribe("fan")
    pub = broker.publisher()
    sent = ["f%d" % i for i in range(15)]
    for m in sent:
        pub.publish("fan", m)
    for c in consumers:
        assert c.wait_messages(15, "fan") == sent
        c.settle()
        assert not c.errors, c.errors
        assert not c.duplicates, c.duplicates


def test_queued_messages_drain_promptly(broker_factory):
    """Each of 40 queued messages is sent as soon as the exchange of the one
    before it is complete, not when a timer comes round.  With a retry
    interval of 30 s no message may be sent twice, and 40 messages in 20 s
    (half a second each, a hundred times what a full exchange costs on
    loopback) leave no room for one that waited for a once-a-second tick."""
    b = broker_factory({"retry_interval": 30})
    pub = b.publisher()
    c = b.consumer("speedy")
    c.subscribe("fast")
    sent = ["q%d" % i for i in range(40)]
    for m in sent:
        pub.publish("fast", m)
    got = c.wait_messages(40, "fast", timeout=30)
    c.settle()
    assert got == sent
    assert not c.duplicates, "messages sent twice: %s" % [d.msg for d in c.duplicates]
    took = c.deliveries[-1].at - c.deliveries[0].at
    assert took < 20.0, "40 messages took %.2f s to consume (%.0f ms each)" % (
        took, took * 1000 / 40)


def test_consumer_only_gets_subscribed_topics(broker):
    c = broker.consumer("vera")
    c.subscribe("mine")
    pub = broker.publisher()
    pub.publish("other", "not for vera")
    pub.publish("mine", "for vera")
    c.wait_message("for vera", "mine")
    c.settle()
    assert [d.topic for d in c.deliveries] == ["mine"]
    assert not c.errors, c.errors
