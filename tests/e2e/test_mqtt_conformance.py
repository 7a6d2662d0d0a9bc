"""MQTT conformance over raw sockets, for what needs connection or session
state: the MQTT 3.1 CONNECT and CONNACK rules, acknowledgements of the
wrong kind for a delivery (a protocol violation: closed, with an
information line in the log), acknowledgements for packet ids not in
flight (harmless), and max_topic_levels."""

import itertools
import re
import signal

import pytest

from broker_harness import kill_pid, wait_for
from mqtt5_helpers import V5Client
from mqtt_helpers import (CONNACK, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK,
                          RawClient, ack_packet, connect_packet, connected_client,
                          publish_packet, subscribe_packet)

CLOSE_TIMEOUT = 5.0
_tags = itertools.count()


@pytest.fixture
def mb(mqtt_factory):
    """A broker that logs at information level (refusals are logged there)."""
    return mqtt_factory({"log_type": "information"})


def tag(prefix):
    return "%s-%d" % (prefix, next(_tags))


def wait_log(b, pattern, what):
    """The log line matching pattern (a regex), waited for."""
    rx = re.compile(pattern, re.M)
    wait_for(lambda: rx.search(b.log_text()), 10, what)
    return rx.search(b.log_text()).group(0)


def still_open(c):
    """A PINGREQ is answered: the connection was not closed."""
    c.ping()


# ---------------------------------------------------------------- MQTT 3.1

@pytest.mark.parametrize("clean", [True, False], ids=["clean", "persistent"])
def test_mqtt31_empty_client_id_is_rejected(mb, clean):
    """MQTT 3.1 requires a client id of 1 to 23 bytes: CONNACK 0x02, close."""
    c = RawClient(mb.mqtt_port, name="v31-empty")
    ack = c.connect("", clean=clean, level=3)
    assert (ack.rc, ack.session_present) == (2, False), ack
    assert ack.raw == b"\x20\x02\x00\x02", ack.raw
    c.expect_closed(CLOSE_TIMEOUT)
    wait_log(mb, r"notice: client \S+: closed: empty client id in an MQTT 3\.1 CONNECT$",
             "the refusal in the log")
    # MQTT 3.1.1 still allows it with a clean session.
    ok = connected_client(mb.mqtt_port, "", clean=True)
    still_open(ok)


@pytest.mark.parametrize("level,present", [(3, 0), (4, 1)], ids=["v31", "v311"])
def test_connack_session_present_only_in_mqtt311(mb, level, present):
    """A resumed persistent session: MQTT 3.1.1 says so in CONNACK; MQTT 3.1
    has no such flag (the byte is reserved, 0), yet the session is kept."""
    cid = tag("sp%d" % level)
    c = connected_client(mb.mqtt_port, cid, clean=False, level=level)
    assert c.subscribe([("sp/%s" % cid, 1)]) == [1]
    c.disconnect()
    c.expect_closed(CLOSE_TIMEOUT)
    pub = connected_client(mb.mqtt_port, tag("sp-pub"))
    pub.publish("sp/%s" % cid, b"while away", 1)
    again = RawClient(mb.mqtt_port, name=cid)
    ack = again.connect(cid, clean=False, level=level)
    assert ack.raw == bytes([0x20, 0x02, present, 0x00]), ack.raw
    p = again.expect(PUBLISH)
    assert (p.topic, p.payload) == ("sp/%s" % cid, b"while away"), p
    again.send(ack_packet(PUBACK, p.pid))
    still_open(again)


# ---------------------------------------------------------------- acks of deliveries

def delivered(b, qos, persistent=False):
    """A subscriber with one QoS qos delivery in flight: (client, PUBLISH)."""
    cid = tag("acks")
    topic = "acks/%s" % cid
    c = connected_client(b.mqtt_port, cid, clean=not persistent)
    assert c.subscribe([(topic, qos)]) == [qos]
    pub = connected_client(b.mqtt_port, tag("acks-pub"))
    pub.publish(topic, b"m-" + cid.encode(), qos)
    p = c.expect(PUBLISH)
    assert p.qos == qos, p
    return c, p


WRONG_ACKS = [
    pytest.param(1, [PUBREC], "PUBREC", ", a QoS 1 delivery", id="pubrec-for-qos1"),
    pytest.param(1, [PUBCOMP], "PUBCOMP", ", a QoS 1 delivery", id="pubcomp-for-qos1"),
    pytest.param(2, [PUBACK], "PUBACK", ", a QoS 2 delivery", id="puback-for-qos2"),
    pytest.param(2, [PUBCOMP], "PUBCOMP", ", a QoS 2 delivery, before the PUBREL",
                 id="pubcomp-before-pubrel"),
    pytest.param(2, [PUBREC, PUBACK], "PUBACK", ", a QoS 2 delivery",
                 id="puback-after-pubrel"),
]


@pytest.mark.parametrize("qos,acks,name,what", WRONG_ACKS)
def test_ack_of_the_wrong_kind_closes_the_connection(mb, qos, acks, name, what):
    c, p = delivered(mb, qos, persistent=True)
    for kind in acks[:-1]:                  # the right ones first
        c.send(ack_packet(kind, p.pid))
        c.expect(PUBREL, pid=p.pid)
    c.send(ack_packet(acks[-1], p.pid))
    # Closed, and nothing answered first: no PUBREL for a stray PUBREC.
    c.expect_closed(CLOSE_TIMEOUT)
    wait_log(mb, r"notice: client \S+ id %s: closed: %s for packet %d%s: "
             r"protocol violation$" % (re.escape(c.name), name, p.pid, re.escape(what)),
             "the violation in the log")
    # The delivery was not taken as acknowledged: the session resends it.
    again = RawClient(mb.mqtt_port, name=c.name)
    assert again.connect(c.name, clean=False).session_present
    if PUBREC in acks[:-1]:
        again.expect(PUBREL, pid=p.pid)
        again.send(ack_packet(PUBCOMP, p.pid))
    else:
        d = again.expect(PUBLISH, pid=p.pid)
        assert d.dup and d.payload == p.payload, d
        if qos == 1:
            again.send(ack_packet(PUBACK, p.pid))
        else:
            again.send(ack_packet(PUBREC, p.pid))
            again.expect(PUBREL, pid=p.pid)
            again.send(ack_packet(PUBCOMP, p.pid))
    still_open(again)


def test_ack_for_a_packet_id_not_in_flight_is_ignored(mb):
    """It changes nothing; a PUBREC still gets its PUBREL (MQTT 4.3.3), as
    a PUBREL of an unknown id gets its PUBCOMP, and the PUBCOMP that
    answers it is ignored in turn."""
    c, p = delivered(mb, 1)
    c.send(ack_packet(PUBACK, p.pid))
    c.send(ack_packet(PUBACK, p.pid))       # a duplicate
    free = p.pid % 65535 + 1
    for kind in (PUBACK, PUBREC, PUBCOMP):  # an id never used
        c.send(ack_packet(kind, free))
    c.expect(PUBREL, pid=free)
    still_open(c)
    assert [x.pid for x in c.received if x.type == PUBREL] == [free], c.received


def test_a_packet_id_answered_as_not_in_flight_is_not_reused_before_its_pubcomp(mb):
    """The PUBREL answering a PUBREC of an id not in flight gets the
    client's PUBCOMP; until it does, a new delivery does not take that id,
    which the PUBCOMP would otherwise hit (a protocol error)."""
    c, p = delivered(mb, 1)
    c.send(ack_packet(PUBACK, p.pid))
    nxt = p.pid % 65535 + 1                 # the id the next delivery would take
    c.send(ack_packet(PUBREC, nxt))
    c.expect(PUBREL, pid=nxt)
    pub = connected_client(mb.mqtt_port, tag("acks-pub"))
    pub.publish(p.topic, b"next", 1)
    d = c.expect(PUBLISH)
    assert d.pid != nxt, d
    c.send(ack_packet(PUBCOMP, nxt))        # answers the PUBREL: ignored
    c.send(ack_packet(PUBACK, d.pid))
    still_open(c)
    pub.publish(p.topic, b"after", 1)
    assert c.expect(PUBLISH).payload == b"after"


def test_repeated_qos2_acks_are_harmless(mb):
    c, p = delivered(mb, 2)
    c.send(ack_packet(PUBREC, p.pid))
    c.expect(PUBREL, pid=p.pid)
    c.send(ack_packet(PUBREC, p.pid))       # again, after the PUBREL went out
    c.expect(PUBREL, pid=p.pid)             # the PUBREL again: it may have been lost
    still_open(c)
    c.send(ack_packet(PUBCOMP, p.pid))
    c.send(ack_packet(PUBCOMP, p.pid))      # again: no longer in flight
    still_open(c)


def test_duplicate_puback_after_a_reconnect_is_ignored(mb):
    c, p = delivered(mb, 1, persistent=True)
    c.close()                               # gone without the PUBACK
    again = RawClient(mb.mqtt_port, name=c.name)
    assert again.connect(c.name, clean=False).session_present
    d = again.expect(PUBLISH, pid=p.pid)
    assert d.dup, d
    again.send(ack_packet(PUBACK, p.pid))
    again.send(ack_packet(PUBACK, p.pid))   # the client's own resend
    still_open(again)


@pytest.mark.parametrize("first,then", [(2, 1), (1, 2)], ids=["qos2-then-1", "qos1-then-2"])
def test_a_delivery_in_flight_keeps_its_qos_when_the_subscription_changes(mb, first, then):
    """A delivery in flight when its subscription is replaced with another
    QoS is still that exchange.  The SUBSCRIBE does not send it again (MQTT
    5.0 resends only on reconnect, 4.4.0-1); after a reconnect it goes
    again with the QoS and the packet id it had (MQTT 4.3), and the
    client's answer to it is taken."""
    cid = tag("requalified")
    topic = "requalified/%s" % cid
    c = connected_client(mb.mqtt_port, cid, clean=False)
    assert c.subscribe([(topic, first)]) == [first]
    connected_client(mb.mqtt_port, tag("requalified-pub")).publish(topic, b"m", 2)
    p = c.expect(PUBLISH)
    assert p.qos == first, p
    assert c.subscribe([(topic, then)]) == [then]
    c.expect_silence(0.5)                       # not sent again on this connection
    c.close()
    c = RawClient(mb.mqtt_port, name=cid)
    assert c.connect(cid, clean=False).session_present
    again = c.expect(PUBLISH, pid=p.pid)
    assert (again.dup, again.qos, again.payload) == (True, first, b"m"), again
    c.send(ack_packet(PUBREC if first == 2 else PUBACK, p.pid))
    if first == 2:
        c.expect(PUBREL, pid=p.pid)
        c.send(ack_packet(PUBCOMP, p.pid))
    still_open(c)


# ---------------------------------------------------------------- sessions named below others

def test_ending_a_session_keeps_what_a_session_named_below_it_staged(mb):
    """Client ids "X" and "X/b" are two sessions.  "X/b" had a QoS 2
    PUBLISH PUBREC'd (it was told the message is stored) when session "X"
    ends for good; "X/b"'s PUBREL must still release it: ending "X"
    forgets the QoS 2 records of "X" only."""
    base = tag("owner")
    topic = "staged/%s" % base
    sub = connected_client(mb.mqtt_port, tag("staged-sub"))
    assert sub.subscribe([(topic, 1)]) == [1]
    outer = connected_client(mb.mqtt_port, base, clean=False)
    outer.close()
    inner = connected_client(mb.mqtt_port, base + "/b", clean=False)
    pid = inner.alloc_pid()
    inner.send(publish_packet(topic, b"staged by X/b", 2, pid))
    inner.expect(PUBREC, pid=pid)
    ended = connected_client(mb.mqtt_port, base, clean=True)    # "X" ends for good
    ended.disconnect()
    ended.expect_closed()
    inner.send(ack_packet(PUBREL, pid))
    inner.expect(PUBCOMP, pid=pid)
    got = sub.expect(PUBLISH)
    assert got.payload == b"staged by X/b", got


def test_a_qos2_publish_stored_after_its_client_went_is_released_when_the_session_ends(mb):
    """A persistent session's QoS 2 PUBLISH is stored once its client has
    gone (it got no PUBREC).  When that session then ends for good, what
    it staged is released to the subscribers, not kept in the topic's
    store for ever."""
    topic = "away/%s" % tag("t")
    sub = connected_client(mb.mqtt_port, tag("away-sub"))
    assert sub.subscribe([(topic, 1)]) == [1]
    first = connected_client(mb.mqtt_port, tag("away-first"))
    first.publish(topic, b"first", 1)                  # its topicd runs
    sub.send(ack_packet(PUBACK, sub.expect(PUBLISH).pid))
    tpid = mb.wait_topicd(topic)
    kill_pid(tpid, signal.SIGSTOP)
    try:
        away = connected_client(mb.mqtt_port, "away-pub", clean=False)
        away.send(publish_packet(topic, b"staged", 2, away.alloc_pid()))
        wait_for(lambda: mb.status()[1][topic]["held"] == 1, 10, "the publish held")
        away.close()
        wait_log(mb, r"id away-pub: closed", "its client gone")
    finally:
        kill_pid(tpid, signal.SIGCONT)
    wait_for(lambda: mb.status()[1][topic]["held"] == 0, 10, "the publish stored")
    ended = connected_client(mb.mqtt_port, "away-pub", clean=True)   # the session ends
    got = sub.expect(PUBLISH)
    assert got.payload == b"staged", got
    ended.disconnect()


# ---------------------------------------------------------------- topic levels

def levels(n, word="l"):
    return "/".join("%s%d" % (word, i) for i in range(n))


@pytest.fixture
def lb(mqtt_factory):
    return mqtt_factory({"log_type": "information", "max_topic_levels": 8})


def test_subscribe_beyond_max_topic_levels_gets_0x80(lb):
    c = connected_client(lb.mqtt_port, tag("deep-sub"))
    codes = c.subscribe([(levels(9), 1), (levels(8), 1), ("+/" * 8 + "#", 0),
                         ("+/" * 7 + "#", 2)])
    assert codes == [0x80, 1, 0x80, 2], codes
    wait_log(lb, r"information: client \S+ id \S+: SUBSCRIBE l0/l1/\S+ refused: 9 levels, "
             r"max_topic_levels is 8$", "the refusal in the log")
    # The granted one works; the connection goes on.
    pub = connected_client(lb.mqtt_port, tag("deep-pub"))
    pub.publish(levels(8), b"eight", 1)
    got = c.expect(PUBLISH)
    assert (got.topic, got.payload) == (levels(8), b"eight"), got
    c.send(ack_packet(PUBACK, got.pid))
    still_open(c)


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_publish_beyond_max_topic_levels_closes_unacknowledged(lb, qos):
    watch = connected_client(lb.mqtt_port, tag("deep-watch"))
    assert watch.subscribe([("#", 1)]) == [1]
    c = connected_client(lb.mqtt_port, tag("deep-pub"))
    c.send(publish_packet(levels(9, "q%d-" % qos), b"too deep", qos, 1 if qos else None))
    c.expect_closed(CLOSE_TIMEOUT)          # no PUBACK or PUBREC first
    wait_log(lb, r"notice: client \S+ id %s: closed: PUBLISH to a topic of more levels "
             r"than max_topic_levels$" % re.escape(c.name), "the close in the log")
    # Nothing was stored: the topic does not exist.
    stores = lb.data_dir / "topics"
    assert not any(f.name.startswith("q%d-0" % qos)
                   for f in (stores.iterdir() if stores.exists() else []))
    # At the limit it is taken, and delivered.
    ok = connected_client(lb.mqtt_port, tag("ok-pub"))
    ok.publish(levels(8), b"at the limit", qos)
    got = watch.expect(PUBLISH)
    assert (got.topic, got.payload) == (levels(8), b"at the limit"), got


def test_will_beyond_max_topic_levels_refuses_the_connect(lb):
    c = RawClient(lb.mqtt_port, name="deep-will")
    c.send(connect_packet("deep-will", will=(levels(9), b"bye", 0, False)))
    seen = c.expect_closed(CLOSE_TIMEOUT, allow=(CONNACK,))
    assert not seen, "expected no CONNACK: %s" % seen
    wait_log(lb, r"notice: client \S+: closed: will topic of more levels than "
             r"max_topic_levels$", "the refusal in the log")
    ok = connected_client(lb.mqtt_port, "shallow-will", will=(levels(8), b"bye", 0, False))
    still_open(ok)


def test_will_over_message_size_limit_refuses_the_connect(mqtt_factory):
    """A will is a message: one longer than message_size_limit would
    enter the store past the limit; the CONNECT is refused."""
    b = mqtt_factory({"log_type": "information", "message_size_limit": "1k"})
    c = RawClient(b.mqtt_port, name="big-will")
    c.send(connect_packet("big-will", will=("wills/big", b"w" * 1025, 1, False)))
    seen = c.expect_closed(CLOSE_TIMEOUT, allow=(CONNACK,))
    assert not seen, "expected no CONNACK: %s" % seen
    wait_log(b, r"notice: client \S+: closed: will payload over message_size_limit$",
             "the refusal in the log")
    ok = connected_client(b.mqtt_port, "small-will", will=("wills/small", b"w" * 1024, 1, False))
    still_open(ok)
    v5 = V5Client(b.mqtt_port, name="big-will-5")
    ack = v5.connect5("big-will-5", will=("wills/big", b"w" * 1025, 1, False, b"\x00"))
    assert ack.rc == 0x95, ack                  # Packet too large
    v5.expect_closed(CLOSE_TIMEOUT)


def test_subscribe_packet_mixing_levels_keeps_order(lb):
    """One SUBSCRIBE, several filters: each gets its own code, in order."""
    c = connected_client(lb.mqtt_port, tag("mix"))
    c.send(subscribe_packet(9, [(levels(8), 0), (levels(100), 1), (levels(1), 2)]))
    ack = c.expect(SUBACK)
    assert ack.pid == 9, ack
    assert ack.codes == [0, 0x80, 2], ack.codes


def test_an_unsubscribe_completes_the_exchanges_it_crosses(mqtt_factory):
    """MQTT 3.10.4-3: after an UNSUBSCRIBE the server completes the QoS 1
    and 2 deliveries it has started.  A QoS 2 delivery PUBREC'd after the
    UNSUBACK gets its PUBREL (a client hands the message to its
    application then), and its PUBCOMP ends it; nothing more comes."""
    b = mqtt_factory()
    c = connected_client(b.mqtt_port, "unsub-x", clean=False)
    assert c.subscribe([("ux/t", 2)]) == [2]
    pub = connected_client(b.mqtt_port, "unsub-x-pub")
    pub.publish("ux/t", b"crossed", 2)
    p = c.expect(PUBLISH)
    assert p.payload == b"crossed"
    c.unsubscribe(["ux/t"])
    c.send(ack_packet(PUBREC, p.pid))
    c.expect(PUBREL, pid=p.pid)
    c.send(ack_packet(PUBCOMP, p.pid))
    pub.publish("ux/t", b"not subscribed", 2)
    c.expect_silence(0.3)
    c.disconnect()
    c = connected_client(b.mqtt_port, "unsub-x", clean=False)
    c.expect_silence(0.3)
