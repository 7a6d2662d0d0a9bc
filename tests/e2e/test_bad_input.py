"""Bad input: each case checks the reply, that the connection and the
broker go on working (on the same and on another connection), and the
dead-letter record where one is due."""

import itertools
import re
import time

import pytest

from broker_harness import (DLQ, LOGGED_IN, PLEASE_LOGIN, Publisher,
                            PublishRefused, check_dead_letter, login,
                            wait_dead_letter, wait_for)

LIMIT = 1024
_tags = itertools.count()


class Env:
    """A broker with a consumer of the dead-letter topic and a watcher of
    the topic `good` on their own connections."""

    def __init__(self, broker):
        self.broker = broker
        self.dlq = broker.consumer("dlqwatch")
        self.dlq.subscribe(DLQ)
        self.watch = broker.consumer("watcher")
        self.watch.subscribe("good")

    def publisher_works(self, pub):
        """A publish on `pub` and one on a new connection both arrive."""
        tag = next(_tags)
        same, other = "same-%d" % tag, "other-%d" % tag
        pub.publish("good", same)
        self.broker.publisher().publish("good", other)
        self.watch.wait_message(same, "good")
        self.watch.wait_message(other, "good")

    def consumer_works(self, raw):
        """The logged-in raw connection can still SUB and consume, and so
        can another connection."""
        tag = next(_tags)
        topic = "good-c%d" % tag
        raw.send_json({"type": "SUB", "topic": topic})
        raw.expect("OK")
        self.watch.subscribe(topic)
        msg = "cons-%d" % tag
        self.broker.publisher().publish(topic, msg)
        p = raw.read_json()
        assert isinstance(p, dict) and set(p) == {"type", "topic", "msg", "msgId"}, p
        assert (p["type"], p["topic"], p["msg"]) == ("PUB", topic, msg), p
        assert type(p["msgId"]) is int and p["msgId"] > 0, p
        raw.send_json({"type": "PUBREC", "msgId": p["msgId"], "topic": topic})
        raw.expect("OK")
        assert raw.read_json() == {"type": "PUBREL", "msgId": p["msgId"], "topic": topic}
        raw.send_json({"type": "PUBCOMP", "msgId": p["msgId"], "topic": topic})
        raw.expect("OK")
        self.watch.wait_message(msg, topic)

    def dead_letter(self, reason, line, port, **kw):
        rec = wait_dead_letter(self.dlq, reason, match=lambda r: r.get("msg") == line)
        check_dead_letter(rec, reason, ports=[port], msg=line, **kw)
        return rec

    def check_clean(self):
        for c in (self.dlq, self.watch):
            c.settle()
            assert not c.errors, c.errors


@pytest.fixture
def env(broker_factory):
    return Env(broker_factory({"message_size_limit": LIMIT}))


def consumer_conn(broker, name):
    c = broker.client()
    assert login(c, name) == LOGGED_IN
    return c


INVALID = [
    pytest.param('{"type":"PUB","topic":"t","msg":', id="truncated"),
    pytest.param("not json at all", id="text"),
    pytest.param('{"type":"PUB","topic":"t","msg":1}}', id="trailing-garbage"),
    pytest.param("{'type':'PUB'}", id="single-quotes"),
]
UNKNOWN = [
    pytest.param('{"type":"FOO","topic":"t","msg":1}', id="unknown-type"),
    pytest.param('{"topic":"t","msg":1}', id="no-type"),
    pytest.param('[1,2,3]', id="array"),
    pytest.param('"PUB"', id="string"),
    pytest.param('{"type":"pub","topic":"t","msg":1}', id="lower-case-type"),
]
# A known command with a missing, ill-typed or invalid field: the original
# broker's UNKNOWN COMMAND, and a dead letter whose detail says what.
BAD_PUB = [
    pytest.param('{"type":"PUB","topic":"","msg":1}', "PUB with an empty topic",
                 id="empty-topic"),
    pytest.param('{"type":"PUB","topic":"a/+/b","msg":1}', "PUB with a wildcard in its topic",
                 id="plus"),
    pytest.param('{"type":"PUB","topic":"a/#","msg":1}', "PUB with a wildcard in its topic",
                 id="hash"),
    pytest.param('{"type":"PUB","topic":"#","msg":1}', "PUB with a wildcard in its topic",
                 id="hash-alone"),
    pytest.param('{"type":"PUB","topic":"a\\u0000b","msg":1}',
                 "PUB with a NUL character in its topic", id="nul"),
    pytest.param('{"type":"PUB","topic":"t"}', "PUB without msg", id="missing-msg"),
    pytest.param('{"type":"PUB","msg":1}', "PUB without topic", id="missing-topic"),
    pytest.param('{"type":"PUB","topic":5,"msg":1}', "PUB with a topic that is not a string",
                 id="topic-not-string"),
    pytest.param('{"type":"PUB","topic":"a' + '/a' * 200 + '","msg":1}',
                 "PUB with a topic of more levels than max_topic_levels", id="201-levels"),
    pytest.param('{"type":"PUBREL"}', "PUBREL without msgId", id="pubrel-missing-id"),
    pytest.param('{"type":"PUBREL","msgId":"x"}',
                 "PUBREL with a msgId that is not a non-negative integer",
                 id="pubrel-id-not-int"),
    pytest.param('{"type":"PUBREL","msgId":1.5}',
                 "PUBREL with a msgId that is not a non-negative integer",
                 id="pubrel-id-not-integral"),
    pytest.param('{"type":"SUB","topic":"t"}', "SUB on the publisher port",
                 id="consumer-command"),
]
BAD_CONS = [
    pytest.param('{"type":"SUB","topic":""}', "SUB with an empty topic", id="sub-empty-topic"),
    pytest.param('{"type":"SUB"}', "SUB without topic", id="sub-missing-topic"),
    pytest.param('{"type":"SUB","topic":7}', "SUB with a topic that is not a string",
                 id="sub-numeric-topic"),
    pytest.param('{"type":"SUB","topic":"a\\u0000b"}', "SUB with a NUL character in its topic",
                 id="sub-nul"),
    pytest.param('{"type":"SUB","topic":"a/#/b"}',
                 "SUB with a misplaced wildcard in its topic filter", id="sub-bad-wildcard"),
    pytest.param('{"type":"SUB","topic":"+' + '/+' * 200 + '"}',
                 "SUB with a topic of more levels than max_topic_levels", id="sub-201-levels"),
    pytest.param('{"type":"UNSUB","topic":""}', "UNSUB with an empty topic",
                 id="unsub-empty-topic"),
    pytest.param('{"type":"PUBREC","topic":"t"}', "PUBREC without msgId",
                 id="pubrec-missing-id"),
    pytest.param('{"type":"PUBCOMP","msgId":"1","topic":"t"}',
                 "PUBCOMP with a msgId that is not a non-negative integer",
                 id="pubcomp-id-not-int"),
    pytest.param('{"type":"PUB","topic":"t","msg":1}', "PUB on the consumer port",
                 id="publisher-command"),
]


# ---------------------------------------------------------- publisher port

@pytest.mark.parametrize("line", INVALID)
def test_invalid_json_on_publisher_port(env, line):
    pub = env.broker.publisher()
    pub.send_line(line)
    pub.expect("INVALID JSON")
    env.publisher_works(pub)
    env.dead_letter("invalid_json", line, env.broker.publisher_port)
    env.check_clean()


def test_a_login_line_where_none_is_taken_is_dead_lettered_without_its_password(env):
    """No password file: a publisher's "log USER PASSWORD" is not a
    command, and its dead letter (which any subscriber of $DLQ may read
    when there is no ACL) keeps "log USER" only; a consumer's second
    login line likewise."""
    pub = env.broker.publisher()
    pub.send_line("log alice s3cret-pass")
    pub.expect("INVALID JSON")
    env.publisher_works(pub)
    env.dead_letter("invalid_json", "log alice", env.broker.publisher_port)
    raw = consumer_conn(env.broker, "twice")
    raw.send_line("log twice an0ther secret")
    raw.expect("INVALID JSON")
    env.dead_letter("invalid_json", "log twice", env.broker.consumer_port)
    env.check_clean()
    shown = " ".join(str(d.raw) for d in env.dlq.deliveries)
    assert "s3cret" not in shown and "an0ther" not in shown, shown


@pytest.mark.parametrize("line", UNKNOWN)
def test_unknown_command_on_publisher_port(env, line):
    pub = env.broker.publisher()
    pub.send_line(line)
    pub.expect("UNKNOWN COMMAND")
    env.publisher_works(pub)
    env.dead_letter("unknown_command", line, env.broker.publisher_port)
    env.check_clean()


@pytest.mark.parametrize("line,detail", BAD_PUB)
def test_bad_fields_on_publisher_port(env, line, detail):
    pub = env.broker.publisher()
    pub.send_line(line)
    pub.expect("UNKNOWN COMMAND")
    env.publisher_works(pub)
    rec = env.dead_letter("unknown_command", line, env.broker.publisher_port)
    assert rec.get("detail") == detail, rec
    env.check_clean()


def test_refused_publish_is_not_delivered(env):
    c = env.broker.consumer("near")
    c.subscribe("a/x/b")
    c.subscribe("ab")
    pub = env.broker.publisher()
    for bad in ('{"type":"PUB","topic":"a/+/b","msg":"bad1"}',
                '{"type":"PUB","topic":"a\\u0000b","msg":"bad2"}'):
        pub.send_line(bad)
        pub.expect("UNKNOWN COMMAND")
    pub.publish("a/x/b", "ok")
    pub.publish("ab", "ok2")
    c.wait_message("ok", "a/x/b")
    c.wait_message("ok2", "ab")
    assert c.messages() == ["ok", "ok2"] or c.messages() == ["ok2", "ok"], c.messages()
    env.check_clean()
    c.settle()
    assert not c.errors, c.errors


def test_publish_to_a_reserved_topic_is_an_unknown_command(env):
    pub = env.broker.publisher()
    pub.send_json({"type": "PUB", "topic": "$SYS/mine", "msg": "nope"})
    pub.expect("UNKNOWN COMMAND")
    env.publisher_works(pub)
    rec = env.dead_letter("reserved_topic", "nope", env.broker.publisher_port)
    assert rec.get("topic") == "$SYS/mine" and "reserved" in rec.get("detail", ""), rec
    env.check_clean()


def test_topic_levels_up_to_the_limit_are_accepted(env):
    deep = "/".join("l%d" % i for i in range(200))
    c = env.broker.consumer("deep")
    c.subscribe("+/" + deep.split("/", 1)[1])       # a 200-level filter
    env.broker.publisher().publish(deep, "at the limit")
    c.wait_message("at the limit", deep)
    c.settle()
    assert not c.errors, c.errors
    env.check_clean()


def test_max_topic_levels_is_configurable(broker_factory):
    b = broker_factory({"max_topic_levels": 3})
    pub = b.publisher()
    pub.publish("a/b/c", "three")
    pub.send_json({"type": "PUB", "topic": "a/b/c/d", "msg": "four"})
    pub.expect("UNKNOWN COMMAND")
    raw = consumer_conn(b, "lv")
    raw.send_json({"type": "SUB", "topic": "a/b/#"})
    raw.expect("OK")
    raw.send_json({"type": "SUB", "topic": "a/b/c/#"})
    raw.expect("UNKNOWN COMMAND")
    # UNSUB names what may exist already: not limited.
    raw.send_json({"type": "UNSUB", "topic": "a/b/c/#"})
    raw.expect("OK")
    pub.publish("a/b/c", "again")


# ----------------------------------------------------------- consumer port

@pytest.mark.parametrize("line", INVALID)
def test_invalid_json_on_consumer_port(env, line):
    raw = consumer_conn(env.broker, "badjson")
    raw.send_line(line)
    raw.expect("INVALID JSON")
    env.consumer_works(raw)
    env.dead_letter("invalid_json", line, env.broker.consumer_port)
    env.check_clean()


@pytest.mark.parametrize("line", UNKNOWN)
def test_unknown_command_on_consumer_port(env, line):
    raw = consumer_conn(env.broker, "badcmd")
    raw.send_line(line)
    raw.expect("UNKNOWN COMMAND")
    env.consumer_works(raw)
    env.dead_letter("unknown_command", line, env.broker.consumer_port)
    env.check_clean()


@pytest.mark.parametrize("line,detail", BAD_CONS)
def test_bad_fields_on_consumer_port(env, line, detail):
    raw = consumer_conn(env.broker, "badreq")
    raw.send_line(line)
    raw.expect("UNKNOWN COMMAND")
    env.consumer_works(raw)
    rec = env.dead_letter("unknown_command", line, env.broker.consumer_port)
    assert rec.get("detail") == detail, rec
    env.check_clean()


def test_subscription_to_a_reserved_topic_is_an_unknown_command(env):
    raw = consumer_conn(env.broker, "sysfan")
    line = '{"type":"SUB","topic":"$SYS/#"}'
    raw.send_line(line)
    raw.expect("UNKNOWN COMMAND")
    env.consumer_works(raw)
    rec = env.dead_letter("reserved_topic", line, env.broker.consumer_port)
    assert rec.get("topic") == "$SYS/#" and "reserved" in rec.get("detail", ""), rec
    env.check_clean()


# ------------------------------------------------------------- long lines

def big_pub_line(size):
    head = '{"type":"PUB","topic":"good","msg":"'
    return head + "x" * (size - len(head) - 2) + '"}'


def send_ignoring_reset(client, line):
    """Sends a line the broker may close the connection in the middle of
    (it stops reading at the limit): a reset while sending is expected."""
    try:
        client.send_line(line)
    except (BrokenPipeError, ConnectionResetError):
        pass


def oversized_logged(broker):
    """The close is the client's doing: a notice, as for an MQTT packet."""
    rx = re.compile(r"notice: client .*: closed: line too long \(message_size_limit\)$",
                    re.M)
    wait_for(lambda: rx.search(broker.log_text()), 10, "the close at notice in the log")


@pytest.mark.parametrize("size", [LIMIT * 4, 300 * 1024])
def test_oversized_line_on_publisher_port(env, size):
    pub = env.broker.publisher()
    line = big_pub_line(size)
    send_ignoring_reset(pub, line)
    pub.expect_prefix("ERROR ")
    pub.expect_closed()             # an ERROR line ends the connection
    env.publisher_works(env.broker.publisher())
    rec = wait_dead_letter(env.dlq, "oversized")
    check_dead_letter(rec, "oversized", ports=[env.broker.publisher_port])
    assert isinstance(rec["msg"], str) and rec["msg"] and line.startswith(rec["msg"]), \
        "oversized record's msg is not the start of the line: %r" % rec["msg"][:100]
    assert "x" * (LIMIT // 2) not in "".join(env.watch.messages("good"))
    oversized_logged(env.broker)
    env.check_clean()


def test_oversized_line_on_consumer_port(env):
    raw = consumer_conn(env.broker, "biggie")
    line = '{"type":"SUB","topic":"' + "t" * (LIMIT * 3) + '"}'
    send_ignoring_reset(raw, line)
    raw.expect_prefix("ERROR ")
    raw.expect_closed()
    env.consumer_works(consumer_conn(env.broker, "biggie"))    # the name is free again
    rec = wait_dead_letter(env.dlq, "oversized")
    check_dead_letter(rec, "oversized", ports=[env.broker.consumer_port])
    assert isinstance(rec["msg"], str) and line.startswith(rec["msg"]), rec["msg"][:100]
    oversized_logged(env.broker)
    env.check_clean()


def test_line_under_the_limit_is_accepted(env):
    pub = env.broker.publisher()
    msg = "y" * (LIMIT - 100)
    pub.publish("good", msg)
    env.watch.wait_message(msg, "good")
    env.check_clean()


# ------------------------------------------------------------- max_topics

def test_more_topics_than_max_topics(broker_factory):
    b = broker_factory({"max_topics": 4})
    pub = b.publisher()
    results = []
    for i in range(1, 7):
        try:
            pub.publish("mt%d" % i, "m%d" % i)
            results.append("ok")
        except PublishRefused as e:
            assert e.line.startswith("ERROR ") and "max_topics" in e.line, e.line
            pub.expect_closed()     # an ERROR line ends the connection
            pub = b.publisher()
            results.append("ERROR")
    # Four topics at most; the dead-letter topic may count as one of them.
    assert results[:3] == ["ok"] * 3, results
    assert results[4:] == ["ERROR"] * 2, results
    assert "ERROR" in results[3:5], results
    # A new connection works for a known topic, and so do others.
    c = b.consumer("mtwatch")
    c.subscribe("mt1")
    pub.publish("mt1", "again")
    b.publisher().publish("mt1", "other conn")
    assert c.wait_messages(2, "mt1") == ["again", "other conn"]
    c.settle()
    assert not c.errors, c.errors
    # A subscription to a new topic beyond the limit: ERROR, then closed.
    raw = consumer_conn(b, "mtsub")
    raw.send_json({"type": "SUB", "topic": "mt-new"})
    raw.expect_prefix("ERROR ")
    raw.expect_closed()


# ----------------------------------------------------------- idle clients

IDLE = 1.5
EARLY = 0.05            # a broker timer may fire this much early by our clock


@pytest.fixture
def idle_broker(broker_factory):
    return broker_factory({"idle_timeout": IDLE})


def check_others_work(broker, name):
    c = broker.consumer(name)
    c.subscribe("after-idle")
    broker.publisher().publish("after-idle", "fine")
    c.wait_message("fine")
    c.settle()
    assert not c.errors, c.errors


def test_half_line_on_publisher_port_is_closed_after_idle_timeout(idle_broker):
    quiet = idle_broker.publisher()      # connected, sends whole lines only
    stalled = idle_broker.publisher()
    t0 = time.monotonic()               # the broker's timer starts when the bytes arrive
    stalled.send_raw(b'{"type":"PUB","top')
    stalled.expect_closed(timeout=IDLE + 5)
    elapsed = time.monotonic() - t0
    assert elapsed >= IDLE - EARLY, "closed after %.2f s, idle_timeout is %.1f s" % (
        elapsed, IDLE)
    quiet.publish("after-idle", "from the quiet one")
    check_others_work(idle_broker, "idle1")


def test_half_line_on_consumer_port_is_closed_after_idle_timeout(idle_broker):
    stalled = consumer_conn(idle_broker, "staller")
    t0 = time.monotonic()               # the broker's timer starts when the bytes arrive
    stalled.send_raw(b'{"type":"SU')
    stalled.expect_closed(timeout=IDLE + 5)
    elapsed = time.monotonic() - t0
    assert elapsed >= IDLE - EARLY, "closed after %.2f s, idle_timeout is %.1f s" % (
        elapsed, IDLE)
    check_others_work(idle_broker, "idle2")
    # The name is free again.
    check_others_work(idle_broker, "staller")


CONNECT_TIMEOUT = 1


@pytest.mark.parametrize("lines", [[], ["hello"], ["hello", "log"]],
                         ids=["silent", "one-bad-login", "two-bad-logins"])
def test_consumer_that_does_not_log_in_is_closed_after_connect_timeout(broker_factory, lines):
    """connect_timeout runs from the connection and bounds the login
    however many lines come meanwhile (fewer than login_attempts);
    idle_timeout is far longer.  One that logged in in time stays."""
    b = broker_factory({"connect_timeout": CONNECT_TIMEOUT, "idle_timeout": 300})
    early = consumer_conn(b, "intime")
    since = time.monotonic()
    c = b.client()
    c.expect("Please login!")
    for line in lines:
        c.send_line(line)
        c.expect("Please login!")
    c.expect_closed(timeout=CONNECT_TIMEOUT + 5)
    took = time.monotonic() - since
    assert took >= CONNECT_TIMEOUT - EARLY, \
        "closed %.2f s after connecting, connect_timeout is %d s" % (took, CONNECT_TIMEOUT)
    # The consumer that logged in before is past connect_timeout and open.
    early.send_json({"type": "SUB", "topic": "after-login"})
    early.expect("OK")
    check_others_work(b, "login-later")


def test_half_line_then_rest_in_time_is_fine(idle_broker):
    c = consumer_conn(idle_broker, "slowtyper")
    c.send_raw(b'{"type":"SUB",')
    c.expect_silence(IDLE / 3)          # no reply to half a line
    c.send_raw(b'"topic":"x"}\r\n')
    c.expect("OK")


# --------------------------------------------------- vanishing mid-handshake

def vanish_consumer_before_greeting(b, i):
    b.client().close(reset=True)


def vanish_consumer_after_greeting(b, i):
    c = b.client()
    c.expect(PLEASE_LOGIN)
    c.close(reset=True)


def vanish_consumer_during_login(b, i):
    c = b.client()
    c.send_raw(b"log ghost1-%d" % i)
    c.close(reset=True)


def vanish_consumer_after_login_line(b, i):
    c = b.client()
    c.send_line("log ghost2-%d" % i)
    c.close()


def vanish_consumer_with_delivery_open(b, i):
    c = consumer_conn(b, "ghost3-%d" % i)
    c.send_json({"type": "SUB", "topic": "ghost"})
    c.expect("OK")
    b.publisher().publish("ghost", "g1")
    assert c.read_json()["msg"] == "g1"
    c.close(reset=True)


def vanish_consumer_after_pubrec(b, i):
    c = consumer_conn(b, "ghost4-%d" % i)
    c.send_json({"type": "SUB", "topic": "ghost"})
    c.expect("OK")
    b.publisher().publish("ghost", "g2")
    p = c.read_json()
    c.send_json({"type": "PUBREC", "msgId": p["msgId"], "topic": "ghost"})
    c.close(reset=True)


def vanish_publisher_before_pubrec(b, i):
    p = b.publisher()
    p.send_json({"type": "PUB", "topic": "ghost", "msg": "v1"})
    p.close(reset=True)


def vanish_publisher_before_pubrel(b, i):
    p = b.publisher()
    p.pub("ghost", "v2")
    p.close(reset=True)


def vanish_publisher_mid_line(b, i):
    p = b.publisher()
    p.send_raw(b'{"type":"PUB","topic":"ghost","msg":"v3')
    p.close(reset=True)


@pytest.mark.parametrize("vanish", [
    vanish_consumer_before_greeting, vanish_consumer_after_greeting,
    vanish_consumer_during_login, vanish_consumer_after_login_line,
    vanish_consumer_with_delivery_open, vanish_consumer_after_pubrec,
    vanish_publisher_before_pubrec, vanish_publisher_before_pubrel,
    vanish_publisher_mid_line,
], ids=lambda f: f.__name__[len("vanish_"):])
def test_client_vanishing_mid_handshake_harms_nothing(broker, vanish):
    watch = broker.consumer("bystander")
    watch.subscribe("calm")
    pub = broker.publisher()
    pub.publish("calm", "before")
    for i in range(3):
        vanish(broker, i)
    pub.publish("calm", "after")
    broker.publisher().publish("calm", "new conn")
    assert watch.wait_messages(3, "calm") == ["before", "after", "new conn"]
    assert broker.running(), "the master died"
    # Fresh clients are served.
    check_others_work(broker, "newcomer")
    watch.settle()
    assert not watch.errors, watch.errors


def test_consumer_that_vanished_gets_its_message_again(broker):
    c = consumer_conn(broker, "flaky")
    c.send_json({"type": "SUB", "topic": "again"})
    c.expect("OK")
    broker.publisher().publish("again", "a1")
    assert c.read_json()["msg"] == "a1"
    c.close(reset=True)
    q = broker.consumer("flaky")
    assert q.wait_messages(1, "again") == ["a1"]
    q.settle()
    assert not q.errors, q.errors


def test_garbage_bytes_are_handled(env):
    pub = env.broker.publisher()
    line = b'\xff\xfe{"type":\x00"PUB"}'
    pub.send_line(line)
    reply = pub.read_line()
    assert reply in ("INVALID JSON", "UNKNOWN COMMAND"), reply
    env.publisher_works(pub)
    env.check_clean()


def test_many_bad_lines_in_one_write(env):
    pub = env.broker.publisher()
    lines = ["nope", '{"type":"X"}', '{"type":"PUB","topic":"","msg":1}'] * 5
    pub.send_raw(b"".join(l.encode() + b"\r\n" for l in lines))
    for l in lines:
        reply = pub.read_line()
        if l == "nope":
            assert reply == "INVALID JSON"
        else:
            assert reply == "UNKNOWN COMMAND", reply
    env.publisher_works(pub)
    env.check_clean()


def test_publisher_with_lf_only_after_bad_input(env):
    pub = Publisher(env.broker.publisher_port, eol=b"\n")
    pub.send_line("{")
    pub.expect("INVALID JSON")
    env.publisher_works(pub)
    env.dead_letter("invalid_json", "{", env.broker.publisher_port)
    env.check_clean()


def test_an_mqtt_publish_past_max_topics_is_not_acknowledged(mqtt_factory):
    """Past max_topics a PUBLISH to a new topic cannot be stored: no PUBACK,
    the connection is closed (the client sends it again later), nothing is
    dead-lettered, and the refusals are logged at most once a second."""
    from mqtt_helpers import PUBACK, connected_client, publish_packet
    b = mqtt_factory({"max_topics": 3, "log_type": "information"})
    c = connected_client(b.mqtt_port, "mt-mqtt")
    for i in range(3):
        c.send(publish_packet("mtq/%d" % i, b"m", 1, i + 1))
        c.expect(PUBACK, pid=i + 1)
    closed = 0
    for i in range(3, 23):
        c.send(publish_packet("mtq/%d" % i, b"m", 1, i + 1))
        c.expect_closed()
        closed += 1
        c = connected_client(b.mqtt_port, "mt-mqtt")
    assert closed == 20
    log = b.log_text()
    assert len(re.findall(r"topic mtq/\d+ refused: \d+ topics, max_topics is 3", log)) <= 3, log
    assert "PUBLISH to mtq/3 not stored (too many topics (max_topics)): not acknowledged" in log
    assert not list((b.data_dir / "topics").glob("%24DLQ.*")), "nothing is dead-lettered"
    c.send(publish_packet("mtq/0", b"known", 1, 99))      # known topics go on
    c.expect(PUBACK, pid=99)
    # At QoS 0 nothing is owed: the message is dropped, and said so.
    c.send(publish_packet("mtq/30", b"m"))
    c.expect_closed()
    wait_for(lambda: "QoS 0 PUBLISH to mtq/30 not stored (too many topics (max_topics)): "
             "dropped" in b.log_text(), 10, "the QoS 0 refusal in the log")


def test_topics_over_32767_bytes_are_unknown_commands(broker_factory):
    """A topic of more than 32767 bytes (the store's keys hold one with a
    session's name) is refused on either port, the connection stays and
    the broker goes on; the longest one is taken."""
    b = broker_factory()
    pub, c = b.publisher(), b.consumer("long")
    pub.send_json({"type": "PUB", "topic": "a" * 65535, "msg": 1})
    pub.expect("UNKNOWN COMMAND")
    assert c.command({"type": "SUB", "topic": "a" * 32768}) == "UNKNOWN COMMAND"
    c.subscribe("b" * 32767)
    pub.publish("b" * 32767, "longest")
    c.wait_message("longest", "b" * 32767)
    assert b.running()


def test_a_sub_past_max_subscriptions_is_an_unknown_command(broker_factory):
    b = broker_factory({"max_subscriptions": 2})
    c = b.consumer("many")
    c.subscribe("ms/a")
    c.subscribe("ms/+")
    assert c.command({"type": "SUB", "topic": "ms/c"}) == "UNKNOWN COMMAND"
    c.subscribe("ms/a")                         # one it has: taken again
    c.unsubscribe("ms/+")
    c.subscribe("ms/c")
