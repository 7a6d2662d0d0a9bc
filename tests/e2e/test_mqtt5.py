"""MQTT 5.0 on the broker's MQTT listener, against the real broker: the
CONNECT / CONNACK exchange and its properties, sessions (Clean Start and
Session Expiry Interval), reason codes, flow control and topic aliases,
with paho-mqtt in MQTTv5 mode and raw level-5 packets, mixed with MQTT
3.1.1 and JSON-lines clients on the same topics.  Server-initiated
DISCONNECTs and malformed packets are in test_mqtt5_errors.py.
"""

import re
import time
from datetime import datetime
from pathlib import Path

import pytest

from broker_harness import preload_shim, wait_for
from mqtt_helpers import (CONNECT, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBSCRIBE, UNSUBACK,
                          PacketTimeout, PahoClient, ack_packet, connected_client, paho)
from mqtt5_helpers import (DISCONNECT, Paho5, V5Client, ack5, disconnect5, props, subscribe5,
                           unsubscribe5)

pytestmark = pytest.mark.skipif(paho is None, reason="paho-mqtt missing (use /usr/bin/python3)")

QUIET = 0.3             # seconds over which an absence is watched


def v5(b, client_id="", **kw):
    c = V5Client(b.mqtt_port)
    ack = c.connect5_ok(client_id, **kw)
    return c, ack


# ---------------------------------------------------------------- CONNACK

def test_connack_properties(mqtt_broker):
    """A level-5 CONNECT is accepted; the CONNACK says what the server
    allows: Receive Maximum (max_inflight_messages), Topic Alias Maximum
    (max_topic_alias, 10), Maximum Packet Size, Retain, Wildcard,
    Shared Subscriptions and Subscription Identifiers available; an empty
    client id gets an Assigned Client
    Identifier; no Maximum QoS (QoS 2 is supported)."""
    c, ack = v5(mqtt_broker, "")
    p = ack.props
    assert ack.session_present is False
    assert p["ReceiveMaximum"] == 100
    assert p["TopicAliasMaximum"] == 10
    assert p["MaximumPacketSize"] > 256 * 1024
    assert p["RetainAvailable"] == 1
    assert p["WildcardSubscriptionAvailable"] == 1
    assert p["SubscriptionIdentifierAvailable"] == 1
    assert p["SharedSubscriptionAvailable"] == 1
    assert "MaximumQoS" not in p
    assert p["AssignedClientIdentifier"].startswith("auto-")
    assert "ServerKeepAlive" not in p           # 60 s asked, max_keepalive 65535

    c2, ack2 = v5(mqtt_broker, "named")
    assert "AssignedClientIdentifier" not in ack2.props
    assert ack2.props["ReceiveMaximum"] == 100


def test_connack_settings(mqtt_factory):
    """max_keepalive, max_packet_size, max_topic_alias and
    max_inflight_messages change what the CONNACK says;
    response_information answers Request Response Information."""
    b = mqtt_factory({"max_keepalive": "30", "max_packet_size": "1000",
                      "max_topic_alias": "0", "max_inflight_messages": "5",
                      "response_information": "replies/"})
    _, ack = v5(b, "ka", keepalive=60,
                cprops=props(CONNECT, RequestResponseInformation=1))
    p = ack.props
    assert p["ServerKeepAlive"] == 30
    assert p["MaximumPacketSize"] == 1000
    assert "TopicAliasMaximum" not in p
    assert p["ReceiveMaximum"] == 5
    assert p["ResponseInformation"] == "replies/"
    _, ack = v5(b, "ka0", keepalive=0)          # none asked: max_keepalive given
    assert ack.props["ServerKeepAlive"] == 30
    assert "ResponseInformation" not in ack.props
    _, ack = v5(b, "ka1", keepalive=10)
    assert "ServerKeepAlive" not in ack.props


def test_connack_after_reload(mqtt_broker):
    """The MQTT 5.0 keys are reloadable: a SIGHUP changes what the next
    CONNACK says."""
    b = mqtt_broker
    b.reload({"max_topic_alias": "3", "max_keepalive": "20", "max_packet_size": "4096"})
    _, ack = v5(b, "after-hup", keepalive=30)
    assert ack.props["TopicAliasMaximum"] == 3
    assert ack.props["ServerKeepAlive"] == 20
    assert ack.props["MaximumPacketSize"] == 4096


def test_paho5_round_trip_mixed(mqtt_broker):
    """paho in MQTTv5 mode publishes at QoS 0, 1, 2 to a paho 3.1.1
    subscriber, a v5 subscriber and a JSON-lines consumer on the same
    topic; and the 3.1.1 client's messages reach the v5 one."""
    b = mqtt_broker
    sub5 = Paho5(b.mqtt_port, "sub5")
    rc, present, cp = sub5.connect5()
    assert (rc, present) == (0, False)
    assert sub5.subscribe5("mix/t", qos=2) == [2]
    sub3 = PahoClient(b.mqtt_port, "sub3")
    sub3.connect_ok()
    assert sub3.subscribe([("mix/t", 2)]) == [2]
    j = b.consumer("jsonuser")
    j.subscribe("mix/t")
    pub5 = Paho5(b.mqtt_port, "pub5")
    assert pub5.connect5()[0] == 0
    for q in (0, 1, 2):
        pub5.publish5("mix/t", b"v5-q%d" % q, qos=q)
    for q in (0, 1, 2):
        assert sub5.wait_message(b"v5-q%d" % q).qos == q
        assert sub3.wait_message(b"v5-q%d" % q).qos == q
    for q in (0, 1, 2):
        j.wait_message("v5-q%d" % q, "mix/t")
    sub3.publish("mix/t", b"from-311", qos=1)
    assert sub5.wait_message(b"from-311").qos == 1


# ---------------------------------------------------------------- sessions

def test_session_expiry_zero_ends_with_connection(mqtt_broker):
    """Session Expiry Interval 0 (the default): the session ends with the
    connection, even with Clean Start 0."""
    c, _ = v5(mqtt_broker, "e0", clean=False)
    assert c.subscribe5([("e0/t", 1)]).codes == [1]
    c.send(disconnect5())
    c.expect_closed()
    again, ack = v5(mqtt_broker, "e0", clean=False)
    assert ack.session_present is False


def test_session_expiry_resume_and_clean_start(mqtt_broker):
    """A non-zero interval keeps the session and what it missed: Clean
    Start 0 resumes it (Session Present), Clean Start 1 discards it."""
    b = mqtt_broker
    c, ack = v5(b, "e1", clean=True, cprops=props(CONNECT, SessionExpiryInterval=300))
    assert ack.session_present is False
    assert "SessionExpiryInterval" not in ack.props     # granted as asked
    assert c.subscribe5([("e1/t", 1)]).codes == [1]
    c.send(disconnect5())
    c.expect_closed()
    connected_client(b.mqtt_port, "e1-pub").publish("e1/t", b"while away", 1)
    c, ack = v5(b, "e1", clean=False, cprops=props(CONNECT, SessionExpiryInterval=300))
    assert ack.session_present is True
    m = c.next5(PUBLISH)
    assert (m.topic, m.payload, m.qos) == ("e1/t", b"while away", 1)
    c.send(ack5(PUBACK, m.pid))
    c.send(disconnect5())
    c.expect_closed()
    c, ack = v5(b, "e1", clean=True, cprops=props(CONNECT, SessionExpiryInterval=300))
    assert ack.session_present is False


def test_session_expiry_changed_at_disconnect(mqtt_broker):
    """A DISCONNECT may set the interval to 0 (the session ends now)."""
    c, _ = v5(mqtt_broker, "e2", clean=False, cprops=props(CONNECT, SessionExpiryInterval=300))
    c.send(disconnect5(0, props(DISCONNECT, SessionExpiryInterval=0)))
    c.expect_closed()
    _, ack = v5(mqtt_broker, "e2", clean=False, cprops=props(CONNECT, SessionExpiryInterval=300))
    assert ack.session_present is False


def test_session_expires(mqtt_factory):
    """A session of interval 1 s is gone once that long offline; one of
    0xFFFFFFFF (never) stays."""
    b = mqtt_factory({"log_type": "information"})
    for cid, interval in (("short", 1), ("never", 0xFFFFFFFF)):
        c, _ = v5(b, cid, clean=False, cprops=props(CONNECT, SessionExpiryInterval=interval))
        c.send(disconnect5())
        c.expect_closed()
    gone_by = time.monotonic() + 1.0
    # The broker looks at expiries once a second: wait for its log line.
    wait_for(lambda: "session m/short: offline for longer than its session expiry"
             in b.log_text(), 10, "session m/short to expire")
    assert time.monotonic() >= gone_by - 0.1
    _, ack = v5(b, "short", clean=False)
    assert ack.session_present is False
    _, ack = v5(b, "never", clean=False)
    assert ack.session_present is True


def test_a_session_that_expired_while_the_broker_was_down_is_not_resumed(mqtt_factory):
    """A session whose interval passed while the broker was stopped is
    gone for a client that comes back at once after the start, before
    the broker's once-a-second look at expiries: no Session Present, no
    subscription, no message it was sent."""
    b = mqtt_factory({"log_type": "information"})
    exp = props(CONNECT, SessionExpiryInterval=2)
    c, _ = v5(b, "e4", clean=False, cprops=exp)
    assert c.subscribe5([("e4/t", 1)]).codes == [1]
    c.send(disconnect5())
    c.expect_closed()
    connected_client(b.mqtt_port, "e4-pub").publish("e4/t", b"old", 1)
    gone_by = time.monotonic() + 2.5
    b.stop()
    # What is waited for is the session's age while the broker is down.
    wait_for(lambda: time.monotonic() >= gone_by, 10, "the session's interval to pass")
    b.start(keep_ports=True)
    c, ack = v5(b, "e4", clean=False, cprops=exp)
    assert ack.session_present is False
    assert "session m/e4: offline for longer than its session expiry interval" in b.log_text()
    c.expect_silence(QUIET)


def test_a_session_online_when_the_master_dies_expires_from_the_restart(mqtt_factory):
    """A session's expiry interval counts from when it went offline: for
    one that was online when the master was killed, from the restart, not
    from when it last went offline before (it was connected for longer
    than its interval)."""
    b = mqtt_factory()
    c, _ = v5(b, "e3", clean=False, cprops=props(CONNECT, SessionExpiryInterval=6))
    assert c.subscribe5([("e3/t", 1)]).codes == [1]
    time.sleep(7)           # connected for longer than the interval: the condition is time
    b.wait_topicds_gone(b.kill9())
    b.start(keep_ports=True)
    # Sessions are looked at once a second: an uptime of 2 s has seen it.
    wait_for(lambda: b.status()[0]["uptime"] >= 2, 10, "two seconds of uptime")
    assert "session m/e3: offline" not in b.log_text()
    _, ack = v5(b, "e3", clean=False, cprops=props(CONNECT, SessionExpiryInterval=6))
    assert ack.session_present is True


def clock_shifted(monkeypatch, tmp_path, binary, shift_ms):
    """Makes a broker started from now on run with its wall clock shifted
    by shift_ms (tests/e2e/clock_shift.c, preloaded)."""
    preload_shim(monkeypatch, tmp_path, binary, Path(__file__).with_name("clock_shift.c"))
    monkeypatch.setenv("CLOCK_SHIFT_MS", str(shift_ms))


def log_stamps(text):
    """The time of each line of a broker log that has one."""
    return [datetime.strptime(m, "%Y-%m-%dT%H:%M:%S.%f")
            for m in re.findall(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z ", text, re.M)]


def test_session_kept_when_the_clock_steps_back(mqtt_factory, tmp_path, monkeypatch):
    """The broker restarts with the wall clock 10 minutes earlier (NTP, a
    VM or an RTC that was ahead): a stored session went offline "later"
    than now, which is no time offline, not an age of 2^64 ms.  It is
    resumed, with the message it was sent while away."""
    b = mqtt_factory()
    sub = props(CONNECT, SessionExpiryInterval=86400)
    c, _ = v5(b, "back", clean=False, cprops=sub)
    assert c.subscribe5([("back/t", 1)]).codes == [1]
    c.send(disconnect5())
    c.expect_closed()
    connected_client(b.mqtt_port, "back-pub").publish("back/t", b"kept", 1)   # PUBACKed
    b.stop()
    before = log_stamps(b.log_text())[-1]
    clock_shifted(monkeypatch, tmp_path, b.binary, -10 * 60 * 1000)
    b.start(keep_ports=True)
    # Sessions are looked at once a second: an uptime of 2 s has seen it.
    wait_for(lambda: b.status()[0]["uptime"] >= 2, 10, "two seconds of uptime")
    after = log_stamps(b.log_text().split("harness: start #2")[1])[0]
    assert (before - after).total_seconds() > 500, "the clock did not step back: %s, then %s" \
        % (before, after)
    assert "session m/back: offline" not in b.log_text()
    c, ack = v5(b, "back", clean=False, cprops=sub)
    assert ack.session_present is True
    m = c.next5(PUBLISH)
    assert m.payload == b"kept"
    c.send(ack5(PUBACK, m.pid))


def test_session_311_then_v5(mqtt_broker):
    """A 3.1.1 persistent session is resumed by the same client id at 5.0
    (Clean Start 0, an interval) with its subscriptions."""
    b = mqtt_broker
    c = connected_client(b.mqtt_port, "mixed-id", clean=False)
    assert c.subscribe([("mx/t", 1)]) == [1]
    c.disconnect()
    c5, ack = v5(b, "mixed-id", clean=False, cprops=props(CONNECT, SessionExpiryInterval=60))
    assert ack.session_present is True
    connected_client(b.mqtt_port, "mx-pub").publish("mx/t", b"to both", 1)
    m = c5.next5(PUBLISH)
    assert m.payload == b"to both"
    c5.send(ack5(PUBACK, m.pid))


# ---------------------------------------------------------------- acknowledgements

def test_reason_codes_on_acks(mqtt_broker):
    """PUBACK / PUBREC of a stored message: success; a PUBREL of an unknown
    packet id: PUBCOMP 0x92, and a PUBREC of one: PUBREL 0x92; UNSUBACK:
    0x00 or 0x11 per filter; a payload that is not the UTF-8 its Payload
    Format Indicator says: PUBACK 0x99."""
    c, _ = v5(mqtt_broker, "acks")
    assert c.publish5("ack/t", b"one", qos=1).rc == 0
    assert c.publish5("ack/t", b"two", qos=2).rc == 0
    c.send(ack5(PUBREL, 777))
    comp = c.next5(PUBCOMP)
    assert (comp.pid, comp.rc) == (777, 0x92)
    assert "ReasonString" in comp.props
    c.send(ack5(PUBREC, 779))
    rel = c.next5(PUBREL)
    assert (rel.pid, rel.rc) == (779, 0x92)
    assert "ReasonString" in rel.props
    c.send(ack5(PUBCOMP, 779, rc=0x92))     # the client's answer: ignored
    assert c.subscribe5([("ack/a", 0)]).codes == [0]
    c.send(unsubscribe5(9, ["ack/a", "ack/none"]))
    ua = c.next5(UNSUBACK)
    assert (ua.pid, ua.codes) == (9, [0x00, 0x11])
    bad = c.publish5("ack/t", b"\xff\xfe", qos=1, pprops=props(PUBLISH, PayloadFormatIndicator=1))
    assert bad.rc == 0x99
    good = c.publish5("ack/t", "h\u00e9".encode(), qos=1,
                      pprops=props(PUBLISH, PayloadFormatIndicator=1))
    assert good.rc == 0


def test_problem_information_off(mqtt_broker):
    """Request Problem Information 0: no Reason String on acks."""
    c, _ = v5(mqtt_broker, "rpi", cprops=props(CONNECT, RequestProblemInformation=0))
    c.send(ack5(PUBREL, 778))
    comp = c.next5(PUBCOMP)
    assert comp.rc == 0x92 and comp.props == {}


def test_shared_subscription(mqtt_broker):
    """$share/GROUP/FILTER: each message goes to one member of the group
    (v5 and 3.1.1 members alike), with the member's Subscription
    Identifier; No Local on a shared subscription is a Protocol Error."""
    b = mqtt_broker
    m1, _ = v5(b, "sh1")
    assert m1.subscribe5([("$share/g/sh/#", 1)],
                         props(SUBSCRIBE, SubscriptionIdentifier=5)).codes == [1]
    m2 = connected_client(b.mqtt_port, "sh2")
    assert m2.subscribe([("$share/g/sh/#", 1)]) == [1]
    pub = connected_client(b.mqtt_port, "sh-pub")
    sent = [b"m%d" % i for i in range(10)]
    for p in sent:
        pub.publish("sh/t", p, 1)
    got = []
    deadline = time.monotonic() + 10
    while len(got) < len(sent):
        assert time.monotonic() < deadline, "delivered so far: %s" % got
        for c in (m1, m2):
            try:
                m = c.read_packet(timeout=0.1)
            except PacketTimeout:           # nothing for this member now
                continue
            assert m.type == PUBLISH, m
            if c is m1:
                assert m.props["SubscriptionIdentifier"] == [5]
                c.send(ack5(PUBACK, m.pid))
            else:
                c.send(ack_packet(PUBACK, m.pid))
            got.append(m.payload)
    assert sorted(got) == sorted(sent)           # each once, to one member
    m1.expect_silence(QUIET)
    m2.expect_silence(QUIET)
    c, _ = v5(b, "sh-nl")
    c.send(subscribe5(3, [("$share/g/sh/#", 1 | 0x04)]))
    c.expect_disconnect(0x82)
    # A ShareName with a wildcard (4.8.2), as one missing: a Protocol Error.
    for i, f in enumerate(("$share/g+/sh", "$share//sh")):
        c, _ = v5(b, "sh-bad%d" % i)
        c.send(subscribe5(4, [(f, 1)]))
        c.expect_disconnect(0x82)


def test_retain_handling(mqtt_broker):
    """Retain Handling 0 sends the retained message at every subscribe, 1
    only when the subscription is new, 2 never."""
    b = mqtt_broker
    connected_client(b.mqtt_port, "rh-pub").publish("rh/t", b"kept", 1, retain=True)
    c, _ = v5(b, "rh")
    for rh, expect in ((2, False), (1, False), (0, True)):
        assert c.subscribe5([("rh/t", 1 | rh << 4)]).codes == [1]
        if expect:
            m = c.next5(PUBLISH)
            assert (m.payload, m.retain) == (b"kept", True)
            c.send(ack5(PUBACK, m.pid))
        else:
            c.expect_silence(QUIET)
    d, _ = v5(b, "rh2")
    assert d.subscribe5([("rh/t", 1 | 1 << 4)]).codes == [1]    # new: sent
    m = d.next5(PUBLISH)
    assert m.payload == b"kept"
    d.send(ack5(PUBACK, m.pid))


def test_retain_handling_of_sys_values(mqtt_factory):
    """$SYS values are sent on subscribe as retained messages: Retain
    Handling 2 asks for none, 1 for them only when the subscription is
    new."""
    b = mqtt_factory({"sys_interval": "3600"})     # no periodic update meanwhile
    c, _ = v5(b, "rh-sys")
    for rh, expect in ((2, False), (1, False), (0, True)):
        assert c.subscribe5([("$SYS/broker/uptime", rh << 4)]).codes == [0]
        if expect:
            m = c.next5(PUBLISH)
            assert (m.topic, m.retain) == ("$SYS/broker/uptime", True), m
        else:
            c.expect_silence(QUIET)
    d, _ = v5(b, "rh-sys2")
    assert d.subscribe5([("$SYS/broker/uptime", 1 << 4)]).codes == [0]    # new: sent
    assert d.next5(PUBLISH).topic == "$SYS/broker/uptime"


# ---------------------------------------------------------------- wills

def will5(delay=None):
    wp = props(PUBLISH, WillProps=True, WillDelayInterval=delay) if delay is not None \
        else b"\x00"
    return ("w5/t", b"gone", 1, False, wp)


def will_watcher(b, name):
    w = connected_client(b.mqtt_port, name)
    assert w.subscribe([("w5/t", 1)]) == [1]
    return w


def test_will_on_disconnect_with_will(mqtt_broker):
    """DISCONNECT 0x04 (Disconnect with Will Message) sends the will, so
    does a DISCONNECT with an error (0x80); a normal one (0x00) does not."""
    b = mqtt_broker
    w = will_watcher(b, "ww1")
    c, _ = v5(b, "w-normal", will=will5())
    c.send(disconnect5(0))
    c.expect_closed()
    for rc in (0x04, 0x80):
        c, _ = v5(b, "w-%02x" % rc, will=will5())
        c.send(disconnect5(rc))
        c.expect_closed()
        m = w.expect(PUBLISH)
        assert m.payload == b"gone"
        w.send(ack_packet(PUBACK, m.pid))
    w.expect_silence(QUIET)                     # none for the normal one


def test_will_delay(mqtt_broker):
    """A will with a Will Delay Interval is published that much after the
    connection is lost; not at all if the session resumes before; at the
    session's end if that comes first."""
    b = mqtt_broker
    w = will_watcher(b, "ww2")
    exp = props(CONNECT, SessionExpiryInterval=300)
    c, _ = v5(b, "w-delay", clean=False, cprops=exp, will=will5(1))
    lost = time.monotonic()
    c.close()
    m = w.expect(PUBLISH, timeout=6)
    assert m.payload == b"gone" and time.monotonic() - lost >= 0.9

    c, _ = v5(b, "w-resume", clean=False, cprops=exp, will=will5(2))
    c.close()
    c, ack = v5(b, "w-resume", clean=False, cprops=exp)
    assert ack.session_present is True
    w.expect_silence(2.5)                       # the delay passed: nothing

    c, _ = v5(b, "w-expiry", clean=False, cprops=props(CONNECT, SessionExpiryInterval=1),
              will=will5(3600))
    c.close()
    m = w.expect(PUBLISH, timeout=6)             # the session ended (about 1 s)
    assert m.payload == b"gone"


# ---------------------------------------------------------------- message properties

def test_properties_end_to_end(mqtt_broker):
    """A v5 publisher's properties reach v5 subscribers as published
    (Payload Format Indicator, Content Type, Response Topic, Correlation
    Data, User Properties in order, the Message Expiry Interval left); a
    3.1.1 subscriber and a JSON-lines consumer get the bare message."""
    b = mqtt_broker
    sub5 = Paho5(b.mqtt_port, "p-sub5")
    sub5.connect5()
    assert sub5.subscribe5("pr/t", qos=1) == [1]
    sub3 = connected_client(b.mqtt_port, "p-sub3")
    assert sub3.subscribe([("pr/t", 1)]) == [1]
    cons = b.consumer("p-json")
    cons.subscribe("pr/t")
    pub = Paho5(b.mqtt_port, "p-pub")
    pub.connect5()
    pub.publish5("pr/t", b'{"q":1}', qos=1, PayloadFormatIndicator=1,
                 ContentType="application/json", ResponseTopic="pr/reply",
                 CorrelationData=b"\x00\x01corr", MessageExpiryInterval=120,
                 UserProperty=[("a", "1"), ("b", "2"), ("a", "3")])
    sub5.wait_message(b'{"q":1}')
    p = sub5.msg_props[0]
    assert p.PayloadFormatIndicator == 1
    assert p.ContentType == "application/json"
    assert p.ResponseTopic == "pr/reply"
    assert p.CorrelationData == b"\x00\x01corr"
    assert p.UserProperty == [("a", "1"), ("b", "2"), ("a", "3")]
    assert 118 <= p.MessageExpiryInterval <= 120
    m = sub3.expect(PUBLISH)
    assert m.payload == b'{"q":1}' and m.error is None      # 3.1.1: no properties
    sub3.send(ack_packet(PUBACK, m.pid))
    cons.wait_message('{"q":1}', "pr/t")


def test_message_expiry(mqtt_broker):
    """A message whose Message Expiry Interval passes while its subscriber
    is offline is not delivered; one that has time left is, with the
    interval that is left."""
    b = mqtt_broker
    exp = props(CONNECT, SessionExpiryInterval=300)
    c, _ = v5(b, "mexp", clean=False, cprops=exp)
    assert c.subscribe5([("me/t", 1)]).codes == [1]
    c.send(disconnect5())
    c.expect_closed()
    pub, _ = v5(b, "me-pub")
    pub.publish5("me/t", b"short", qos=1, pprops=props(PUBLISH, MessageExpiryInterval=1))
    pub.publish5("me/t", b"long", qos=1, pprops=props(PUBLISH, MessageExpiryInterval=100))
    # What is waited for is the message's age: 1 s, and a margin.
    time.sleep(2.2)
    c, ack = v5(b, "mexp", clean=False, cprops=exp)
    assert ack.session_present
    m = c.next5(PUBLISH)
    assert m.payload == b"long"
    assert 95 <= m.props["MessageExpiryInterval"] <= 98
    c.send(ack5(PUBACK, m.pid))
    c.expect_silence(QUIET)
    assert b.topicd_status("me/t")["expired"] == 1     # its topicd left it out


def test_a_delivery_started_before_its_expiry_is_resent(mqtt_broker):
    """A QoS 1 and a QoS 2 delivery sent once and unacknowledged when the
    connection ends are sent again when the session resumes (4.4.0-1),
    with their packet ids, though their Message Expiry Interval passed in
    between: their onward delivery had started (3.3.2-5), and they carry
    an interval of 0 left.  A message the client had not been sent yet
    (its Receive Maximum was reached) expires as usual."""
    b = mqtt_broker
    exp = props(CONNECT, SessionExpiryInterval=300, ReceiveMaximum=2)
    c, _ = v5(b, "mexp-re", clean=False, cprops=exp)
    assert c.subscribe5([("mr/1", 1), ("mr/2", 2)]).codes == [1, 2]
    pub, _ = v5(b, "mr-pub")
    short = props(PUBLISH, MessageExpiryInterval=1)
    pub.publish5("mr/1", b"one", qos=1, pprops=short)
    pub.publish5("mr/2", b"two", qos=2, pprops=short)
    first = {m.topic: m for m in (c.next5(PUBLISH), c.next5(PUBLISH))}
    assert sorted(first) == ["mr/1", "mr/2"]
    pub.publish5("mr/1", b"three", qos=1, pprops=short)       # past the Receive Maximum
    c.expect_silence(QUIET)
    c.close()
    # What is waited for is the messages' age: 1 s, and a margin.
    time.sleep(2.2)
    c, ack = v5(b, "mexp-re", clean=False, cprops=exp)
    assert ack.session_present
    again = {m.topic: m for m in (c.next5(PUBLISH), c.next5(PUBLISH))}
    for topic, payload, qos in (("mr/1", b"one", 1), ("mr/2", b"two", 2)):
        m = again[topic]
        assert (m.payload, m.qos, m.dup, m.pid) == (payload, qos, True, first[topic].pid), m
        assert m.props.get("MessageExpiryInterval") == 0, m.props
    c.send(ack5(PUBACK, again["mr/1"].pid))
    c.send(ack5(PUBREC, again["mr/2"].pid))
    assert c.next5(PUBREL).pid == again["mr/2"].pid
    c.send(ack5(PUBCOMP, again["mr/2"].pid))
    c.expect_silence(QUIET)


def test_a_message_expiry_interval_of_0_is_none(mqtt_broker):
    """A Message Expiry Interval of 0 is taken as none, as mosquitto takes
    it (clients send 0 for "does not expire"): the message reaches the
    subscribers online, one that comes back later, a 3.1.1 subscriber;
    so does a will with one."""
    b = mqtt_broker
    exp = props(CONNECT, SessionExpiryInterval=300)
    away, _ = v5(b, "mez-away", clean=False, cprops=exp)
    assert away.subscribe5([("mez/t", 1)]).codes == [1]
    away.send(disconnect5())
    away.expect_closed()
    on, _ = v5(b, "mez-on")
    assert on.subscribe5([("mez/t", 1)]).codes == [1]
    old = connected_client(b.mqtt_port, "mez-311")
    assert old.subscribe([("mez/t", 1)]) == [1]
    pub, _ = v5(b, "mez-pub")
    pub.publish5("mez/t", b"zero", qos=1, pprops=props(PUBLISH, MessageExpiryInterval=0))
    m = on.next5(PUBLISH)
    assert m.payload == b"zero" and "MessageExpiryInterval" not in m.props, m.props
    on.send(ack5(PUBACK, m.pid))
    m = old.expect(PUBLISH)
    assert m.payload == b"zero"
    old.send(ack_packet(PUBACK, m.pid))
    away, ack = v5(b, "mez-away", clean=False, cprops=exp)
    assert ack.session_present
    m = away.next5(PUBLISH)
    assert m.payload == b"zero"
    away.send(ack5(PUBACK, m.pid))
    c, _ = v5(b, "mez-will", will=("mez/t", b"gone", 1, False,
                                   props(PUBLISH, WillProps=True, MessageExpiryInterval=0)))
    c.close()
    m = on.next5(PUBLISH)
    assert m.payload == b"gone"
    on.send(ack5(PUBACK, m.pid))


def test_no_local(mqtt_broker):
    """No Local: a client's own messages do not come back on that
    subscription; they do on another one without it, and other clients'
    messages always do."""
    b = mqtt_broker
    c, _ = v5(b, "nl")
    assert c.subscribe5([("nl/t", 1 | 0x04)]).codes == [1]
    c.publish5("nl/t", b"mine", qos=1)
    connected_client(b.mqtt_port, "nl-other").publish("nl/t", b"theirs", 1)
    m = c.next5(PUBLISH)
    assert m.payload == b"theirs"
    c.send(ack5(PUBACK, m.pid))
    c.expect_silence(QUIET)
    assert c.subscribe5([("nl/#", 0)]).codes == [0]          # without No Local
    c.publish5("nl/t", b"mine again", qos=1)
    m = c.next5(PUBLISH)
    assert m.payload == b"mine again"
    if m.qos:
        c.send(ack5(PUBACK, m.pid))


def test_no_local_leaves_out_that_subscriptions_identifier(mqtt_broker):
    """A client's own message delivered through another subscription
    carries that one's Subscription Identifier only: the No Local one
    does not match it (3.3.4)."""
    b = mqtt_broker
    c, _ = v5(b, "nl-ids")
    assert c.subscribe5([("nli/y", 1 | 0x04)], sprops=props(SUBSCRIBE,
                        SubscriptionIdentifier=1)).codes == [1]
    assert c.subscribe5([("nli/+", 1)], sprops=props(SUBSCRIBE,
                        SubscriptionIdentifier=2)).codes == [1]
    c.publish5("nli/y", b"mine", qos=1)
    m = c.next5(PUBLISH)
    assert (m.payload, m.props.get("SubscriptionIdentifier")) == (b"mine", [2]), m
    c.send(ack5(PUBACK, m.pid))


def test_no_local_does_not_raise_the_qos_of_ones_own_message(mqtt_broker):
    """A client's own message is delivered at the QoS of the matching
    subscriptions without No Local (3.3.4: those with it do not match
    it): with a/+ at QoS 0 and a/b at QoS 2 with No Local, its publish to
    a/b at QoS 2 comes back once, at QoS 0; with a/+ at QoS 1, at QoS 1.
    Another client's message gets the highest QoS of them all, 2."""
    b = mqtt_broker
    c, _ = v5(b, "nlq")
    assert c.subscribe5([("nlq/+", 0), ("nlq/b", 2 | 0x04)]).codes == [0, 2]
    c.publish5("nlq/b", b"mine", qos=2)
    m = c.next5(PUBLISH)
    assert (m.payload, m.qos) == (b"mine", 0), m
    c.expect_silence(QUIET)
    assert c.subscribe5([("nlq/+", 1)]).codes == [1]
    c.publish5("nlq/b", b"mine at 1", qos=2)
    m = c.next5(PUBLISH)
    assert (m.payload, m.qos) == (b"mine at 1", 1), m
    c.send(ack5(PUBACK, m.pid))
    c.expect_silence(QUIET)
    other, _ = v5(b, "nlq-other")
    other.publish5("nlq/b", b"theirs", qos=2)
    m = c.next5(PUBLISH)
    assert (m.payload, m.qos) == (b"theirs", 2), m
    c.send(ack5(PUBREC, m.pid))
    assert c.next5(PUBREL).pid == m.pid
    c.send(ack5(PUBCOMP, m.pid))
    c.expect_silence(QUIET)


def test_retain_as_published(mqtt_broker):
    """Retain As Published: a live message keeps the RETAIN flag it was
    published with; without it, the flag is 0 (the retained message sent
    on subscribing has it either way)."""
    b = mqtt_broker
    rap, _ = v5(b, "rap")
    assert rap.subscribe5([("rap/t", 1 | 0x08)]).codes == [1]
    plain, _ = v5(b, "norap")
    assert plain.subscribe5([("rap/t", 1)]).codes == [1]
    connected_client(b.mqtt_port, "rap-pub").publish("rap/t", b"r", 1, retain=True)
    m = rap.next5(PUBLISH)
    assert (m.payload, m.retain) == (b"r", True)
    rap.send(ack5(PUBACK, m.pid))
    m = plain.next5(PUBLISH)
    assert (m.payload, m.retain) == (b"r", False)
    plain.send(ack5(PUBACK, m.pid))


def test_subscription_identifiers_of_sys_values(mqtt_factory):
    """$SYS values carry the identifiers of the subscriptions they match,
    those sent at SUBSCRIBE and those of every sys_interval; an MQTT
    3.1.1 client gets them without."""
    b = mqtt_factory({"sys_interval": 1})
    c, _ = v5(b, "sid-sys")
    assert c.subscribe5([("$SYS/broker/uptime", 0)],
                        props(SUBSCRIBE, SubscriptionIdentifier=9)).codes == [0]
    m = c.next5(PUBLISH)
    assert (m.topic, m.retain, m.props.get("SubscriptionIdentifier")) == \
        ("$SYS/broker/uptime", True, [9])
    assert c.subscribe5([("$SYS/broker/+", 0)],
                        props(SUBSCRIBE, SubscriptionIdentifier=11)).codes == [0]
    for retain in (True, False):            # at SUBSCRIBE, then at a tick after it
        m = c.wait_packet(lambda p: p.type == PUBLISH and p.topic == "$SYS/broker/uptime"
                          and p.retain == retain
                          and 11 in p.props.get("SubscriptionIdentifier", []),
                          timeout=5, what="uptime")
        assert sorted(m.props.get("SubscriptionIdentifier")) == [9, 11], m.props
    old = connected_client(b.mqtt_port, "sid-sys-311")
    assert old.subscribe([("$SYS/broker/uptime", 0)]) == [0]
    assert old.expect(PUBLISH).payload.endswith(b" seconds")


def test_subscription_identifiers(mqtt_broker):
    """Each delivery carries the identifiers of every matching
    subscription that has one; a resubscription without one drops it;
    they survive a reconnect of a stored session."""
    b = mqtt_broker
    exp = props(CONNECT, SessionExpiryInterval=300)
    c, _ = v5(b, "sid", clean=False, cprops=exp)
    assert c.subscribe5([("sid/+", 1)], props(SUBSCRIBE, SubscriptionIdentifier=7)).codes == [1]
    assert c.subscribe5([("sid/#", 1)], props(SUBSCRIBE, SubscriptionIdentifier=300)).codes \
        == [1]
    assert c.subscribe5([("sid/x", 1)]).codes == [1]
    pub = connected_client(b.mqtt_port, "sid-pub")
    pub.publish("sid/x", b"one", 1)
    m = c.next5(PUBLISH)
    assert sorted(m.props["SubscriptionIdentifier"]) == [7, 300]
    c.send(ack5(PUBACK, m.pid))
    c.send(disconnect5())
    c.expect_closed()
    c, ack = v5(b, "sid", clean=False, cprops=exp)
    assert ack.session_present
    pub.publish("sid/y", b"two", 1)
    m = c.next5(PUBLISH)
    assert sorted(m.props["SubscriptionIdentifier"]) == [7, 300]
    c.send(ack5(PUBACK, m.pid))
    assert c.subscribe5([("sid/#", 1)]).codes == [1]        # replaced, without its id
    pub.publish("sid/z", b"three", 1)
    m = c.next5(PUBLISH)
    assert m.props["SubscriptionIdentifier"] == [7]
    c.send(ack5(PUBACK, m.pid))
