"""Malformed MQTT input over raw sockets: each case closes THAT
connection (the socket reads EOF within a deadline) while a healthy client
connected beside it, and a new connection, keep working.

The bad connections use a long keep-alive, so that a close is due to the
bad input and not to a timer."""

import itertools
import re
import time

import pytest

from broker_harness import wait_for
from mqtt_helpers import (CONNACK, CONNECT, PUBACK, PUBLISH, SUBSCRIBE, UNSUBSCRIBE,
                          PahoClient, RawClient, ack_packet, connect_packet,
                          connected_client, disconnect_packet, mstr, packet,
                          pingreq_packet, publish_packet, subscribe_packet,
                          unsubscribe_packet, varint)

LIMIT = 1024            # message_size_limit
IDLE = 2                # idle_timeout, seconds
CONNECT_TIMEOUT = 1     # connect_timeout, seconds
CLOSE_TIMEOUT = 5.0     # for a close that the input itself causes
EARLY = 0.05            # a broker timer may fire this much early by our clock
SLACK = 3.5             # how late a broker timer may fire on a loaded machine
_tags = itertools.count()


class Env:
    """A broker with a healthy paho client subscribed to `healthy/t`."""

    def __init__(self, broker):
        self.broker = broker
        self.port = broker.mqtt_port
        self.healthy = PahoClient(self.port, "healthy")
        self.healthy.connect_ok(keepalive=10)
        assert self.healthy.subscribe([("healthy/t", 1)]) == [1]

    def bad(self, connect=True):
        """A raw connection for bad input (CONNECTed unless told not to)."""
        tag = next(_tags)
        if connect:
            return connected_client(self.port, "bad-%d" % tag, keepalive=60)
        return RawClient(self.port, name="bad-%d" % tag)

    def check_others_work(self):
        """The healthy connection still delivers, and a new one can CONNECT,
        publish at QoS 2 and DISCONNECT."""
        tag = next(_tags)
        mine, fresh = b"healthy-%d" % tag, b"fresh-%d" % tag
        self.healthy.publish("healthy/t", mine, 1)
        self.healthy.wait_message(mine, "healthy/t")
        c = connected_client(self.port, "fresh-%d" % tag)
        c.publish("healthy/t", fresh, 2)
        self.healthy.wait_message(fresh, "healthy/t")
        c.disconnect()
        c.expect_closed()
        assert self.healthy.disconnects == [], "the healthy client was disconnected"
        assert self.broker.running()


@pytest.fixture
def env(mqtt_factory):
    return Env(mqtt_factory({"message_size_limit": LIMIT, "idle_timeout": IDLE,
                             "connect_timeout": CONNECT_TIMEOUT}))


def refused_connect(c):
    """Waits for the close; a CONNACK may come first only as a refusal."""
    seen = c.expect_closed(CLOSE_TIMEOUT, allow=(CONNACK,))
    assert all(p.rc != 0 for p in seen), "the broker accepted the CONNECT: %s" % seen


# ---------------------------------------------------------------- after CONNECT

AFTER_CONNECT = [
    pytest.param(b"\x30\xff\xff\xff\xff\x01", id="remaining-length-5-bytes"),
    pytest.param(b"\xc0\x80\x00", id="remaining-length-not-minimal"),
    pytest.param(ack_packet(6, 1, flags=0), id="pubrel-flags-0"),
    pytest.param(ack_packet(PUBACK, 1, flags=2), id="puback-flags-2"),
    pytest.param(subscribe_packet(1, [("a", 0)], flags=0), id="subscribe-flags-0"),
    pytest.param(unsubscribe_packet(1, ["a"], flags=0), id="unsubscribe-flags-0"),
    pytest.param(pingreq_packet(1), id="pingreq-flags-1"),
    pytest.param(disconnect_packet(8), id="disconnect-flags-8"),
    pytest.param(packet(0, 0), id="reserved-type-0"),
    pytest.param(packet(15, 0), id="reserved-type-15"),
    pytest.param(packet(CONNACK, 0, b"\x00\x00"), id="server-only-packet"),
    pytest.param(connect_packet("again"), id="second-connect"),
    pytest.param(publish_packet("a", b"x", pid=1, flags=0x06), id="publish-qos-3"),
    pytest.param(publish_packet("a", b"x", flags=0x08), id="publish-dup-at-qos-0"),
    pytest.param(publish_packet("a", b"x", qos=1, pid=0), id="publish-packet-id-0"),
    pytest.param(publish_packet("a/+", b"x"), id="publish-topic-plus"),
    pytest.param(publish_packet("a/#", b"x", qos=1, pid=1), id="publish-topic-hash"),
    pytest.param(publish_packet("", b"x"), id="publish-topic-empty"),
    pytest.param(publish_packet(b"a\xffb", b"x"), id="publish-topic-invalid-utf8"),
    pytest.param(publish_packet("a\u0000b", b"x"), id="publish-topic-nul"),
    pytest.param(publish_packet(b"a\xed\xa0\x80", b"x"), id="publish-topic-surrogate"),
    pytest.param(publish_packet(b"a\xc0\xaf", b"x"), id="publish-topic-overlong-utf8"),
    pytest.param(packet(PUBLISH, 0, b"\x00\x05ab"), id="publish-topic-past-the-end"),
    pytest.param(packet(PUBACK, 0, b"\x00\x01\x02"), id="puback-too-long"),
    pytest.param(ack_packet(PUBACK, 0), id="puback-packet-id-0"),
    pytest.param(packet(SUBSCRIBE, 2, b"\x00\x01"), id="subscribe-no-filters"),
    pytest.param(subscribe_packet(1, [("a", 3)]), id="subscribe-qos-3"),
    pytest.param(subscribe_packet(1, [("a/#/b", 0)]), id="subscribe-bad-filter"),
    pytest.param(subscribe_packet(1, [(b"a\xff", 0)]), id="subscribe-filter-invalid-utf8"),
    pytest.param(subscribe_packet(1, [("a\u0000", 0)]), id="subscribe-filter-nul"),
    pytest.param(packet(UNSUBSCRIBE, 2, b"\x00\x01"), id="unsubscribe-no-filters"),
    pytest.param(publish_packet("big", b"x" * (LIMIT + 1), qos=1, pid=1),
                 id="payload-over-message-size-limit"),
    # Only the header of a packet over the limit: closed without the body.
    pytest.param(b"\x30" + varint(100 * LIMIT) + mstr("big"), id="header-over-message-size-limit"),
]


def test_topics_and_client_ids_over_the_store_keys_are_refused(mqtt_factory):
    """A topic name or filter over 32767 bytes closes the connection, a
    client id over 16384 bytes gets CONNACK 2, and the broker goes on (a
    topic of 65535 bytes used to stop the master: a store key holds a
    filter and a session's name together).  The longest ones are taken."""
    b = mqtt_factory()
    env = Env(b)
    for data in (publish_packet("a" * 65535, b"x", qos=1, pid=1),
                 publish_packet("a" * 32768, b"x"),
                 subscribe_packet(1, [("a" * 32768, 1)])):
        c = env.bad()
        c.send(data)
        c.expect_closed(CLOSE_TIMEOUT)
    c = RawClient(b.mqtt_port, name="long-id")
    assert c.connect("i" * 16385, clean=False).rc == 2
    c.expect_closed(CLOSE_TIMEOUT)
    longest = "b" * 32767
    sub = connected_client(b.mqtt_port, "i" * 16384, clean=False)
    assert sub.subscribe([(longest, 1)]) == [1]
    connected_client(b.mqtt_port, "long-pub").publish(longest, b"longest", 1)
    p = sub.expect(PUBLISH)
    assert (p.topic, p.payload) == (longest, b"longest")
    env.check_others_work()


@pytest.mark.parametrize("data", AFTER_CONNECT)
def test_bad_packet_after_connect_closes_that_connection(env, data):
    c = env.bad()
    c.send(data)
    c.expect_closed(CLOSE_TIMEOUT)
    env.check_others_work()


def test_a_reserved_packet_type_is_named_as_one(env):
    """The log says what came: a packet of a reserved type, not a
    malformed packet of a type named "reserved" (15, AUTH, below 5.0)."""
    for t in (0, 15):
        c = env.bad()
        c.send(packet(t, 0))
        c.expect_closed(CLOSE_TIMEOUT)
        rx = re.compile(r"notice: client \S+ id %s: closed: a packet of reserved type %d$"
                        % (re.escape(c.name), t), re.M)
        wait_for(lambda: rx.search(env.broker.log_text()), 10, "the close of type %d" % t)
    env.check_others_work()


# ---------------------------------------------------------------- CONNECT

BEFORE_CONNECT = [
    pytest.param(pingreq_packet(), id="pingreq-first"),
    pytest.param(publish_packet("a", b"x"), id="publish-first"),
    pytest.param(subscribe_packet(1, [("a", 0)]), id="subscribe-first"),
    pytest.param(b"\x10\xff\xff\xff\xff\x01", id="connect-remaining-length-5-bytes"),
    pytest.param(bytes([CONNECT << 4 | 1]) + connect_packet("id")[1:], id="connect-header-flags"),
    pytest.param(connect_packet("id", flags=0x03), id="connect-reserved-flag"),
    pytest.param(connect_packet("id", flags=0x0A), id="connect-will-qos-without-will"),
    pytest.param(connect_packet("id", flags=0x22), id="connect-will-retain-without-will"),
    pytest.param(connect_packet("id", will=("w", b"x", 3, False)), id="connect-will-qos-3"),
    pytest.param(connect_packet("id", will=("w/+", b"x", 0, False)),
                 id="connect-will-topic-wildcard"),
    pytest.param(connect_packet("id", password="pw"), id="connect-password-without-username"),
    pytest.param(connect_packet(b"id\xff"), id="connect-client-id-invalid-utf8"),
    pytest.param(connect_packet("id\u0000x"), id="connect-client-id-nul"),
    pytest.param(connect_packet("id", will=(b"w\xff", b"x", 0, False)),
                 id="connect-will-topic-invalid-utf8"),
    pytest.param(connect_packet("id", proto_name="MQTX"), id="connect-unknown-protocol-name"),
    # The Remaining Length is right, but the client id runs past the end.
    pytest.param(packet(CONNECT, 0, connect_packet("id")[2:-1]), id="connect-truncated-client-id"),
]


@pytest.mark.parametrize("data", BEFORE_CONNECT)
def test_bad_first_packet_closes_that_connection(env, data):
    c = env.bad(connect=False)
    c.send(data)
    refused_connect(c)
    env.check_others_work()


@pytest.mark.parametrize("level", [2, 6, 255])
def test_unknown_protocol_level_gets_connack_1_then_close(env, level):
    c = env.bad(connect=False)
    ack = c.connect("lvl-%d" % level, level=level)
    assert (ack.rc, ack.session_present) == (1, False), ack
    c.expect_closed(CLOSE_TIMEOUT)
    env.check_others_work()


def test_unknown_protocol_level_after_connect_closes_without_connack(env):
    """A CONNECT of an unknown level on a connected session is a second
    CONNECT, a protocol error: the connection closes, no CONNACK comes."""
    c = env.bad()
    c.send(connect_packet("again", level=6))
    c.expect_closed(CLOSE_TIMEOUT)
    env.check_others_work()


def test_payload_at_message_size_limit_is_accepted(env):
    c = env.bad()
    c.publish("healthy/t", b"y" * LIMIT, 1)
    got = env.healthy.wait_message(b"y" * LIMIT, "healthy/t")
    assert len(got.payload) == LIMIT
    c.ping()
    env.check_others_work()


# ---------------------------------------------------------------- stalls

def test_client_that_stops_mid_packet_is_closed_after_the_keepalive(env):
    """Measured from the send of the half packet, which the broker sees
    later: the close cannot come before 1.5 times the keep-alive."""
    c = connected_client(env.port, "stall-mid-publish", keepalive=1)
    whole = publish_packet("healthy/t", b"z" * 40, qos=1, pid=7)
    c.send(whole[:10])
    since = c.last_sent
    c.expect_closed(1.5 + SLACK)
    took = time.monotonic() - since
    assert took >= 1.5 - EARLY, "closed %.2f s after half a packet (keep-alive 1 s)" % took
    env.check_others_work()


def trickled_connect():
    """A whole CONNECT, a byte every 0.2 s: each byte comes well within
    idle_timeout, the whole one not within connect_timeout."""
    return [bytes([b]) for b in connect_packet("trickle")]


@pytest.mark.parametrize("sent", [[], [connect_packet("half")[:9]], trickled_connect()],
                         ids=["nothing", "half-a-connect", "trickled-connect"])
def test_connection_without_a_whole_connect_is_closed_after_connect_timeout(env, sent):
    """connect_timeout runs from the accept, which comes after `since`,
    and bounds the whole CONNECT however its bytes come; idle_timeout is
    longer, and does not start again with each byte."""
    since = time.monotonic()
    c = env.bad(connect=False)
    for chunk in sent:
        try:
            c.send(chunk)
        except OSError:                 # closed meanwhile: what is checked below
            break
        time.sleep(0.2)                 # the pace of a slow client, not a wait for the broker
    c.expect_closed(CONNECT_TIMEOUT + SLACK)
    took = time.monotonic() - since
    assert took >= CONNECT_TIMEOUT - EARLY, \
        "closed %.2f s after the connect (connect_timeout %d s)" % (took, CONNECT_TIMEOUT)
    env.check_others_work()
