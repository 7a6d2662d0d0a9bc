"""MQTT 5.0: what ends a connection, with the reason code the server's
DISCONNECT (or CONNACK) gives, on raw level-5 packets: session takeover,
keep-alive timeout, malformed packets, protocol errors, packets over the
Maximum Packet Size, Receive Maximum exceeded, topic aliases, payload
format, authentication methods, shutdown.  And the limits the client
sets (its Receive Maximum, Maximum Packet Size, Topic Alias Maximum)
on what the broker sends it.
"""

import re
import time

import pytest

from broker_harness import wait_for

from mqtt_helpers import (CONNACK, CONNECT, DISCONNECT, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL,
                          SUBACK, SUBSCRIBE, UNSUBACK, RawClient, connect_packet,
                          connected_client, packet, paho)
from mqtt5_helpers import (V5Client, ack5, connect5, disconnect5, props, publish5,
                           subscribe5, unsubscribe5)

pytestmark = pytest.mark.skipif(paho is None, reason="paho-mqtt missing (use /usr/bin/python3)")

QUIET = 0.3


def v5(b, client_id, **kw):
    c = V5Client(b.mqtt_port, name=client_id)
    ack = c.connect5_ok(client_id, **kw)
    return c, ack


def test_takeover(mqtt_broker):
    """A second connection with the client id takes the session over: the
    first gets DISCONNECT 0x8E."""
    first, _ = v5(mqtt_broker, "dup-id")
    v5(mqtt_broker, "dup-id")
    d = first.expect_disconnect(0x8E)
    assert "ReasonString" in d.props


def test_keepalive_timeout(mqtt_broker):
    """Nothing for 1.5 times the keep-alive: DISCONNECT 0x8D."""
    c, _ = v5(mqtt_broker, "ka", keepalive=1)
    start = time.monotonic()
    c.expect_disconnect(0x8D, timeout=6)
    assert time.monotonic() - start >= 1.4


def test_malformed_and_protocol_errors(mqtt_broker):
    """A property a PUBLISH may not carry: 0x81; a second CONNECT, a
    Subscription Identifier on a client's PUBLISH, a DISCONNECT that sets an
    expiry after a CONNECT of 0: 0x82."""
    b = mqtt_broker
    c, _ = v5(b, "mal")
    c.send(publish5("m/t", b"x", pprops=props(CONNECT, SessionExpiryInterval=1)))
    c.expect_disconnect(0x81)
    c, _ = v5(b, "again")
    c.send(connect5("again"))
    c.expect_disconnect(0x82)
    c, _ = v5(b, "subid")
    c.send(packet(PUBLISH, 0, b"\x00\x03a/b" + b"\x02\x0b\x01" + b"x"))
    c.expect_disconnect(0x82)
    c, _ = v5(b, "exp0")
    c.send(disconnect5(0, props(DISCONNECT, SessionExpiryInterval=5)))
    c.expect_disconnect(0x82)


def test_a_reason_string_is_cut_between_characters(mqtt_factory):
    """A Reason String that quotes what the client sent, cut to so many
    bytes where a character spans the cut, is well-formed UTF-8 and the
    packet goes: the CONNACK 0x8C naming a 64-byte authentication method,
    the DISCONNECT 0x97 naming a topic cut to 60 bytes (past max_topics
    a QoS 0 publish is not stored)."""
    b = mqtt_factory({"max_topics": "1"})
    c = V5Client(b.mqtt_port)
    ack = c.connect5("rs-auth", cprops=props(CONNECT, AuthenticationMethod="m" * 63 + "\u00e9"))
    assert ack.rc == 0x8C and ack.props["ReasonString"].startswith(
        "authentication method " + "m" * 63 + " "), ack.props
    c.expect_closed()
    c, _ = v5(b, "rs-first")
    c.publish5("rs/first", b"x", qos=1)
    stem = "rs/" + "a" * 56
    c, _ = v5(b, "rs-cut")
    c.send(publish5(stem + "\u00e9/t", b"y", qos=0))
    d = c.expect_disconnect(0x97)
    assert d.props["ReasonString"].startswith("QoS 0 PUBLISH to %s not stored" % stem), d.props


def test_past_max_topics_a_v5_publish_is_refused_with_quota_exceeded(mqtt_factory):
    """Past max_topics a publish to a new topic is not stored: at QoS 1
    and 2 an MQTT 5.0 client gets PUBACK or PUBREC 0x97 (Quota exceeded)
    with a Reason String, and stays connected: its topics go on.  At QoS 0
    nothing can answer it but a DISCONNECT 0x97."""
    b = mqtt_factory({"max_topics": "1"})
    c, _ = v5(b, "quota")
    assert c.publish5("quota/first", b"1", qos=1).rc == 0
    for qos in (1, 2):
        ack = c.publish5("quota/new%d" % qos, b"x", qos=qos)
        assert ack.rc == 0x97, "%#x %r" % (ack.rc, ack.props)
        assert ack.props["ReasonString"] == "too many topics (max_topics)", ack.props
    assert c.publish5("quota/first", b"2", qos=2).rc == 0     # PUBCOMP: still connected
    c.send(publish5("quota/new0", b"y", qos=0))
    c.expect_disconnect(0x97)


def test_an_ack_of_the_wrong_kind_is_a_protocol_error(mqtt_broker):
    """A PUBCOMP for a QoS 1 delivery, or a PUBACK for a QoS 2 one, breaks
    the exchange (4.3.2, 4.3.3): DISCONNECT 0x82 that says so, then the
    end of the connection."""
    b = mqtt_broker
    pub, _ = v5(b, "wk-pub")
    for qos, wrong in ((1, PUBCOMP), (2, PUBACK)):
        c, _ = v5(b, "wk-sub%d" % qos)
        assert c.subscribe5([("wk/t%d" % qos, qos)]).codes == [qos]
        pub.publish5("wk/t%d" % qos, b"m", qos=qos)
        m = c.next5(PUBLISH)
        c.send(ack5(wrong, m.pid))
        d = c.expect_disconnect(0x82)
        assert "protocol violation" in d.props["ReasonString"], d.props


def test_second_connect_of_an_unknown_level(mqtt_broker):
    """A CONNECT of an unknown protocol level on a connected session is a
    second CONNECT: DISCONNECT 0x82 and the end of the connection, no
    CONNACK in the middle of the session."""
    c, _ = v5(mqtt_broker, "lvl6")
    c.send(connect_packet("lvl6", level=6))
    c.expect_disconnect(0x82)
    assert [p.type for p in c.received] == [CONNACK, DISCONNECT]


def test_bad_connect(mqtt_broker):
    """A level-5 CONNECT that breaks a rule gets a CONNACK with the reason
    code and a Reason String; an authentication method is not supported
    (0x8C)."""
    b = mqtt_broker
    c = V5Client(b.mqtt_port)
    dup = b"\x0a\x11\x00\x00\x00\x01\x11\x00\x00\x00\x02"      # two Session Expiry
    ack = c.connect5("dupprop", cprops=dup)
    assert ack.rc == 0x82 and "ReasonString" in ack.props
    c.expect_closed()
    c = V5Client(b.mqtt_port)
    ack = c.connect5("auth", cprops=props(CONNECT, AuthenticationMethod="SCRAM-SHA-1"))
    assert ack.rc == 0x8C
    c.expect_closed()


def test_packet_too_large(mqtt_factory):
    """A packet over max_packet_size: DISCONNECT 0x95."""
    b = mqtt_factory({"max_packet_size": "300"})
    c, ack = v5(b, "big")
    assert ack.props["MaximumPacketSize"] == 300
    c.publish5("big/t", b"x" * 200, qos=1)
    c.send(publish5("big/t", b"x" * 400))
    c.expect_disconnect(0x95)


def test_a_connect_over_the_size_limit_is_refused(mqtt_factory):
    """A first packet over max_packet_size: a level-5 CONNECT gets CONNACK
    0x95 (Packet too large), also when its first bytes come one by one,
    before the connection closes; an MQTT 3.1.1 one, whose CONNACK has no
    such code, and a first packet that is no CONNECT, only the close."""
    b = mqtt_factory({"max_packet_size": "300"})
    will = ("big/w", b"x" * 400, 0, False, b"\x00")
    c = V5Client(b.mqtt_port)
    ack = c.connect5("big-connect", will=will)
    assert ack.rc == 0x95, ack
    c.expect_closed()
    c = V5Client(b.mqtt_port)
    slow = connect5("big-slow", will=will)
    # Byte by byte up to the level, the last byte the answer needs: the
    # broker closes once it has answered, so a byte sent after it may
    # meet a reset.
    for byte in slow[:slow.index(b"MQTT") + 5]:
        c.send(bytes([byte]))
    ack = c.next5(CONNACK)
    assert ack.rc == 0x95, ack
    c.expect_closed()
    old = RawClient(b.mqtt_port)
    old.send(connect_packet("big-311", will=("big/w", b"x" * 400, 0, False)))
    old.expect_closed()
    assert old.received == []
    c = V5Client(b.mqtt_port)
    c.send(publish5("big/t", b"x" * 400))
    c.expect_closed()
    assert c.received == []


def test_a_connect_over_what_message_size_limit_implies_is_refused(mqtt_factory):
    """Without max_packet_size, a CONNECT larger than message_size_limit
    implies (a payload, a topic and properties) gets CONNACK 0x95 too."""
    b = mqtt_factory({"message_size_limit": "16"})
    big = props(CONNECT, UserProperty=[("a", "x" * 60000), ("b", "y" * 60000)])
    c = V5Client(b.mqtt_port)
    ack = c.connect5("big-props", cprops=big, will=("big/w", b"z" * 20000, 0, False, b"\x00"))
    assert ack.rc == 0x95, ack
    c.expect_closed()


def test_receive_maximum_exceeded(mqtt_factory):
    """More QoS 1 publishes unacknowledged than the broker's Receive
    Maximum (max_inflight_messages): DISCONNECT 0x93."""
    b = mqtt_factory({"max_inflight_messages": "2"})
    c, ack = v5(b, "flood")
    assert ack.props["ReceiveMaximum"] == 2
    c.send(b"".join(publish5("fl/t", b"m%d" % i, qos=1, pid=i + 1) for i in range(3)))
    c.expect_closed(allow=(PUBACK, DISCONNECT))
    assert any(p.type == DISCONNECT and p.rc == 0x93 for p in c.received)


def test_receive_maximum_counts_qos2_resends(mqtt_factory):
    """QoS 2 publishes with DUP set count against the broker's Receive
    Maximum like any other, unless their packet id is counted already:
    the resend of a publish in flight is not counted twice, three resends
    of different ids over a maximum of 2 are one too many (0x93)."""
    b = mqtt_factory({"max_inflight_messages": "2"})
    c, ack = v5(b, "dup-ok")
    assert ack.props["ReceiveMaximum"] == 2
    c.send(publish5("dup/t", b"a", qos=2, pid=1) + publish5("dup/t", b"a", qos=2, pid=1, dup=True) +
           publish5("dup/t", b"b", qos=2, pid=2))
    assert sorted(c.next5(PUBREC).pid for _ in range(3)) == [1, 1, 2]
    for pid in (1, 2):
        c.send(ack5(PUBREL, pid))
        assert c.next5(PUBCOMP).pid == pid
    c.send(publish5("dup/t", b"c", qos=2, pid=3))
    assert c.next5(PUBREC).pid == 3
    c, _ = v5(b, "dup-flood")
    c.send(b"".join(publish5("dup/t", b"m%d" % i, qos=2, pid=i + 1, dup=True) for i in range(3)))
    c.expect_closed(allow=(PUBREC, DISCONNECT))
    assert any(p.type == DISCONNECT and p.rc == 0x93 for p in c.received)


def test_a_reload_keeps_the_limits_a_connected_client_was_told(mqtt_factory):
    """A SIGHUP that lowers max_inflight_messages and max_packet_size
    holds the clients that connect after it to the new values; one
    connected before keeps those its CONNACK told it (the old ones)."""
    b = mqtt_factory({"max_inflight_messages": "3", "max_packet_size": "4096"})
    old, ack = v5(b, "told-before")
    assert (ack.props["ReceiveMaximum"], ack.props["MaximumPacketSize"]) == (3, 4096)
    b.reload({"max_inflight_messages": "1", "max_packet_size": "1024"})
    new, ack = v5(b, "told-after")
    assert (ack.props["ReceiveMaximum"], ack.props["MaximumPacketSize"]) == (1, 1024)
    # Three unacknowledged and one of 2,000 bytes: within what it was told.
    old.send(b"".join(publish5("told/t", b"%d" % i + b"x" * (2000 if i == 0 else 0), qos=1,
                               pid=i + 1) for i in range(3)))
    assert sorted(old.next5(PUBACK).pid for _ in range(3)) == [1, 2, 3]
    assert all(p.rc == 0 for p in old.received if p.type == PUBACK)
    new.send(publish5("told/t", b"x" * 2000, qos=1, pid=1))
    new.expect_disconnect(0x95)
    new, _ = v5(b, "told-after-2")
    new.send(b"".join(publish5("told/t", b"m%d" % i, qos=1, pid=i + 1) for i in range(2)))
    new.expect_closed(allow=(PUBACK, DISCONNECT))
    assert any(p.type == DISCONNECT and p.rc == 0x93 for p in new.received)


def test_topic_alias_in(mqtt_broker):
    """A topic alias set with a topic is used by later publishes with an
    empty topic; over the maximum: 0x94; never set: 0x82."""
    b = mqtt_broker
    sub = connected_client(b.mqtt_port, "al-sub")
    assert sub.subscribe([("al/t", 0)]) == [0]
    c, _ = v5(b, "al")
    c.send(publish5("al/t", b"first", pprops=props(PUBLISH, TopicAlias=1)))
    c.send(publish5("", b"second", pprops=props(PUBLISH, TopicAlias=1)))
    got = [sub.expect(PUBLISH) for _ in range(2)]
    assert [(p.topic, p.payload) for p in got] == [("al/t", b"first"), ("al/t", b"second")]
    c.send(publish5("al/t", b"x", pprops=props(PUBLISH, TopicAlias=11)))
    c.expect_disconnect(0x94)
    c, _ = v5(b, "al2")
    c.send(publish5("", b"x", pprops=props(PUBLISH, TopicAlias=2)))
    c.expect_disconnect(0x82)


def test_payload_format_invalid_qos0(mqtt_broker):
    """Payload Format Indicator 1 on bytes that are not UTF-8, at QoS 0
    (no ack to say it): DISCONNECT 0x99."""
    c, _ = v5(mqtt_broker, "pfi")
    c.send(publish5("p/t", b"\xc3\x28", pprops=props(PUBLISH, PayloadFormatIndicator=1)))
    c.expect_disconnect(0x99)


def test_shutdown(mqtt_factory):
    """The broker stopping tells v5 clients: DISCONNECT 0x8B."""
    b = mqtt_factory()
    c, _ = v5(b, "bye")
    b.stop()
    c.expect_disconnect(0x8B)


def test_client_receive_maximum(mqtt_broker):
    """The client's Receive Maximum 1: one QoS 1 delivery in flight at a
    time; the next once it is acknowledged."""
    b = mqtt_broker
    c, _ = v5(b, "rm1", cprops=props(CONNECT, ReceiveMaximum=1))
    assert c.subscribe5([("rm/t", 1)]).codes == [1]
    pub = connected_client(b.mqtt_port, "rm-pub")
    for i in range(3):
        pub.publish("rm/t", b"m%d" % i, 1)
    for i in range(3):
        m = c.next5(PUBLISH)
        assert m.payload == b"m%d" % i
        c.expect_silence(QUIET)             # nothing more until the PUBACK
        c.send(ack5(PUBACK, m.pid))


def test_client_receive_maximum_counts_qos2_until_pubcomp(mqtt_broker):
    """The client's Receive Maximum 2 at QoS 2: a delivery counts until its
    PUBCOMP, not its PUBREC (MQTT 4.9).  The client answers each PUBLISH
    with PUBREC at once and holds its PUBCOMPs until both exchanges in
    flight have their PUBREL: nothing more may come before."""
    b = mqtt_broker
    c, _ = v5(b, "rm2", cprops=props(CONNECT, ReceiveMaximum=2))
    assert c.subscribe5([("rm2/t", 2)]).codes == [2]
    pub = connected_client(b.mqtt_port, "rm2-pub")
    n = 6
    for i in range(n):
        pub.publish("rm2/t", b"m%d" % i, 2)
    got, open_, released = [], set(), set()
    while len(got) < n or open_:
        p = c.wait_packet(lambda p: p.type in (PUBLISH, PUBREL), what="PUBLISH or PUBREL")
        if p.type == PUBLISH:
            assert p.qos == 2 and not p.dup, p
            open_.add(p.pid)
            got.append(p.payload)
            assert len(open_) <= 2, "%d QoS 2 exchanges open: %s" % (len(open_), got)
            c.send(ack5(PUBREC, p.pid))
        else:
            assert p.pid in open_, p
            released.add(p.pid)
            if released == open_ and (len(open_) == 2 or len(got) == n):
                if len(got) < n:
                    c.expect_silence(QUIET)     # the window is full until a PUBCOMP
                for pid in sorted(released):
                    c.send(ack5(PUBCOMP, pid))
                open_.clear()
                released.clear()
    assert got == [b"m%d" % i for i in range(n)]
    c.expect_silence(QUIET)                     # every exchange complete: nothing again


def test_client_maximum_packet_size(mqtt_broker):
    """A message larger than the client's Maximum Packet Size is not sent
    to it; the next one is (the topic moves on)."""
    b = mqtt_broker
    c, _ = v5(b, "mps", cprops=props(CONNECT, MaximumPacketSize=100))
    assert c.subscribe5([("mps/t", 1)]).codes == [1]
    pub = connected_client(b.mqtt_port, "mps-pub")
    pub.publish("mps/t", b"x" * 200, 1)
    pub.publish("mps/t", b"small", 1)
    m = c.next5(PUBLISH)
    assert m.payload == b"small"
    c.send(ack5(PUBACK, m.pid))


def test_client_maximum_packet_size_of_sys_values(mqtt_broker):
    """A $SYS value larger than the client's Maximum Packet Size is not
    sent to it either ($SYS/broker/version takes 44 bytes); the others
    are."""
    b = mqtt_broker
    c, _ = v5(b, "mps-sys", cprops=props(CONNECT, MaximumPacketSize=40))
    assert c.subscribe5([("$SYS/broker/version", 0), ("$SYS/broker/uptime", 0)]).codes == [0, 0]
    m = c.next5(PUBLISH)
    assert m.topic == "$SYS/broker/uptime", m
    c.expect_silence(QUIET)
    assert all(len(p.body) + 2 <= 40 for p in c.received), c.received


def test_acks_within_a_small_client_maximum_packet_size(mqtt_factory):
    """With a Maximum Packet Size of 10 bytes, what the broker sends stays
    within it (3.1.2-24): the CONNACK leaves out what the client can do
    without; a refusal's CONNACK and a PUBACK with a reason code leave out
    their Reason String (3.2.2-19, 3.4.2-2); a SUBACK and an UNSUBACK carry
    none; a SUBACK that cannot fit (its reason codes alone take more) is
    not sent: DISCONNECT 0x95 instead.  A client whose maximum is too
    small for the CONNACK's limits gets none: the connection closes."""
    b = mqtt_factory({"message_size_limit": "16", "max_inflight_messages": "65535",
                      "max_topic_levels": "2"})
    small = props(CONNECT, MaximumPacketSize=10)
    c = V5Client(b.mqtt_port)
    ack = c.connect5("mps10-will", cprops=small, will=("mps/w", b"w" * 20, 0, False, b"\x00"))
    assert (ack.rc, ack.props, len(ack.raw)) == (0x95, {}, 5), ack
    c.expect_closed()
    c = V5Client(b.mqtt_port)
    ack = c.connect5("mps10-auth", cprops=props(CONNECT, MaximumPacketSize=10,
                                                AuthenticationMethod="SCRAM-SHA-1"))
    assert (ack.rc, ack.props, len(ack.raw)) == (0x8C, {}, 5), ack
    c.expect_closed()
    c, ack = v5(b, "mps10", cprops=small)
    assert len(ack.raw) <= 10 and ack.props["MaximumPacketSize"] > 16, ack.props
    sub = c.subscribe5([("mps/t", 1)])
    assert (sub.codes, sub.props) == ([1], {}) and len(sub.raw) <= 10
    sub = c.subscribe5([("/".join("l" * 3), 1)])               # past max_topic_levels
    assert (sub.codes, sub.props) == ([0x8F], {}) and len(sub.raw) <= 10
    c.send(unsubscribe5(c.alloc_pid(), ["mps/none"]))
    un = c.next5(UNSUBACK)
    assert (un.codes, un.props) == ([0x11], {}) and len(un.raw) <= 10
    ack = c.publish5("mps/t", b"p" * 17, qos=1)                 # over message_size_limit
    assert (ack.rc, ack.props) == (0x83, {}) and len(ack.raw) <= 10, ack
    pid = c.alloc_pid()
    c.send(subscribe5(pid, [("mps/%d" % i, 0) for i in range(6)]))     # 11 bytes of SUBACK
    d = c.expect_disconnect(0x95)
    assert d.props == {} and len(d.raw) <= 10
    assert not [p for p in c.received if p.type == SUBACK and p.pid == pid]
    tight = mqtt_factory()              # a Receive Maximum to tell besides the others
    c = V5Client(tight.mqtt_port)
    c.send(connect5("mps10-tight", cprops=small))
    c.expect_closed()
    assert c.received == []


def test_topic_alias_out(mqtt_broker):
    """A client with a Topic Alias Maximum gets the topic with an alias
    the first time, then the alias alone."""
    b = mqtt_broker
    c, _ = v5(b, "tao", cprops=props(CONNECT, TopicAliasMaximum=2))
    assert c.subscribe5([("tao/#", 0)]).codes == [0]
    pub = connected_client(b.mqtt_port, "tao-pub")
    seen = []
    for t in ("tao/a", "tao/a", "tao/b", "tao/c", "tao/b"):
        pub.publish(t, t.encode(), 1)
        m = c.next5(PUBLISH)            # one at a time: topics have no order among them
        seen.append((m.topic, m.props.get("TopicAlias"), m.payload))
    assert seen == [("tao/a", 1, b"tao/a"), ("", 1, b"tao/a"), ("tao/b", 2, b"tao/b"),
                    ("tao/c", None, b"tao/c"), ("", 2, b"tao/b")]


def test_topic_alias_out_within_the_maximum_packet_size(mqtt_broker):
    """With a Maximum Packet Size and a Topic Alias Maximum, a message goes
    in whichever form fits: one that fits with its topic but not with a
    fresh alias goes without one, one that fits only with the alias the
    client has goes with it; one that fits in neither is not sent."""
    b = mqtt_broker
    c, _ = v5(b, "taom", cprops=props(CONNECT, MaximumPacketSize=100, TopicAliasMaximum=2))
    assert c.subscribe5([("mx/t", 0)]).codes == [0]
    pub = connected_client(b.mqtt_port, "taom-pub")
    # 9 bytes and the payload with the topic, 12 with a fresh alias, 8 with a known one.
    for payload in (b"a" * 91, b"b", b"c" * 92, b"d" * 93, b"e"):
        pub.publish("mx/t", payload, 1)
    seen = []
    for _ in range(4):
        m = c.next5(PUBLISH)
        seen.append((m.topic, m.props.get("TopicAlias"), m.payload[:1], len(m.payload)))
    assert seen == [("mx/t", None, b"a", 91), ("mx/t", 1, b"b", 1), ("", 1, b"c", 92),
                    ("", 1, b"e", 1)], seen
    c.expect_silence(QUIET)


def sys_number(b, name):
    """A $SYS value as sent at SUBSCRIBE."""
    c = connected_client(b.mqtt_port, "sys-" + name.replace("/", "-"))
    topic = "$SYS/broker/" + name
    assert c.subscribe([(topic, 0)]) == [0]
    p = c.wait_packet(lambda p: p.type == PUBLISH and p.topic == topic, what=topic)
    c.disconnect()
    return int(p.payload)


def test_sys_counters(mqtt_broker):
    """$SYS/broker/clients/mqtt5 counts MQTT 5.0 connections,
    mqtt5/disconnects_sent the DISCONNECTs the broker sent them,
    mqtt5/too_large the messages not sent over a client's Maximum Packet
    Size."""
    b = mqtt_broker
    assert sys_number(b, "clients/mqtt5") == 0
    c, _ = v5(b, "sys1", cprops=props(CONNECT, MaximumPacketSize=64))
    assert c.subscribe5([("sysc/t", 0)]).codes == [0]
    v5(b, "sys2")
    assert sys_number(b, "clients/mqtt5") == 2
    connected_client(b.mqtt_port, "sys-pub").publish("sysc/t", b"y" * 100, 1)
    connected_client(b.mqtt_port, "sys-pub2").publish("sysc/t", b"small", 1)
    assert c.next5(PUBLISH).payload == b"small"
    assert sys_number(b, "mqtt5/too_large") == 1
    v5(b, "sys1")                                  # takes sys1 over: 0x8E
    c.expect_disconnect(0x8E)
    assert sys_number(b, "mqtt5/disconnects_sent") == 1


def test_max_subscriptions(mqtt_factory):
    """A session has at most max_subscriptions filters: one more gets 0x97
    at MQTT 5.0, 0x80 at 3.1.1; a filter it has is taken again, and one
    goes in when another went."""
    b = mqtt_factory({"max_subscriptions": 2})
    c, _ = v5(b, "subs5")
    assert c.subscribe5([("ms/a", 1), ("ms/b", 1), ("ms/c", 1), ("ms/a", 2)]).codes == \
        [1, 1, 0x97, 2]
    old = connected_client(b.mqtt_port, "subs3")
    assert old.subscribe([("ms/+", 1), ("ms/#", 0), ("ms/x", 1)]) == [1, 0, 0x80]
    old.unsubscribe(["ms/#"])
    assert old.subscribe([("ms/x", 1)]) == [1]
    pub = connected_client(b.mqtt_port, "subs-pub")
    pub.publish("ms/c", b"not for subs5", 1)
    pub.publish("ms/b", b"for both", 1)
    assert c.next5(PUBLISH).payload == b"for both"


def test_a_session_of_thousands_of_filters(mqtt_factory):
    """A session at the default max_subscriptions (10,000 plain filters,
    each a topic of its own, and two wildcards): one SUBSCRIBE and one
    UNSUBSCRIBE of them all are answered (each filter looked up, not
    matched against all the others), a message matching several filters
    comes once at the highest QoS with every Subscription Identifier, and
    what was unsubscribed stops."""
    b = mqtt_factory()
    c, _ = v5(b, "thousands")
    plain = [("many/%d" % i, 1) for i in range(9998)]
    codes = c.subscribe5(plain + [("many/+", 0), ("many/#", 2)], timeout=60,
                         sprops=props(SUBSCRIBE, SubscriptionIdentifier=7)).codes
    assert codes == [1] * 9998 + [0, 2]
    pub = connected_client(b.mqtt_port, "thousands-pub")
    pub.publish("many/5", b"three filters", 2)
    m = c.next5(PUBLISH)
    assert (m.payload, m.qos, m.props.get("SubscriptionIdentifier")) == \
        (b"three filters", 2, [7, 7, 7]), m
    c.send(ack5(PUBREC, m.pid))
    c.expect(PUBREL, pid=m.pid)
    c.send(ack5(PUBCOMP, m.pid))
    c.send(unsubscribe5(c.alloc_pid(), [f for f, _ in plain] + ["many/#"]))
    assert c.next5(UNSUBACK, timeout=60).codes == [0] * 9999
    pub.publish("many/6", b"one filter left", 2)
    m = c.next5(PUBLISH)
    assert (m.payload, m.qos) == (b"one filter left", 0), m
    c.send(unsubscribe5(c.alloc_pid(), ["many/+"]))
    assert c.next5(UNSUBACK).codes == [0]
    pub.publish("many/7", b"none left", 2)
    c.expect_silence(QUIET)


def test_a_close_for_what_the_client_sent_is_a_notice(mqtt_factory):
    """At the default log level an operator sees a client closed for a
    packet over the limit or a malformed one: the client's doing."""
    b = mqtt_factory({"max_packet_size": "300"})
    c = connected_client(b.mqtt_port, "too-big")
    c.send(packet(3, 0, b"\x00\x05big/t" + b"x" * 400))
    c.expect_closed()
    c = connected_client(b.mqtt_port, "malformed")
    c.send(b"\x82\x02\x00\x01")             # SUBSCRIBE without a filter
    c.expect_closed()
    for cid, why in (("too-big", "packet larger than"), ("malformed", "malformed SUBSCRIBE")):
        rx = re.compile(r"notice: client \S+ id %s: closed: %s" % (cid, why))
        wait_for(lambda: rx.search(b.log_text()), 10, "the notice of %s's close" % cid)
