"""Retained messages of cold topics, sent by the master from the copy a
topicd leaves in its last word when the message is small (up to 1 KiB):
a clean session's SUBSCRIBE gets them without a topicd starting, with
what the topicd would have sent (payload, QoS, properties, the expiry
left); a persistent session's, a large message's and an expired one's
take the topicd as before."""

import re
import time

from broker_harness import wait_for
from mqtt5_helpers import V5Client, ack5, props
from mqtt_helpers import (PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBSCRIBE, RawClient,
                          ack_packet)

COLD = {"topicd_idle_timeout": 1, "log_type": "information"}
SMALL = 12


def started(b, topic):
    """How many times the log says a topicd started for topic."""
    return len(re.findall(r"topic %s: topicd pid \d+ started" % re.escape(topic), b.log_text()))


def wait_cold(b, prefix, timeout=15):
    def running():
        return sorted(t for t in b.topicds().values() if t.startswith(prefix))
    wait_for(lambda: not running(), timeout,
             "the topicds of %s* to exit, idle (running: %s)" % (prefix, running()))


def client(b, name, clean=True):
    c = RawClient(b.mqtt_port, name=name)
    c.connect_ok(name, clean=clean)
    return c


def publish_kept(b):
    """SMALL small retained messages at QoS 1, one at QoS 0, one at QoS 2,
    one over 1 KiB; all cold afterwards.  What each topic's message is."""
    pub = client(b, "rc-pub")
    kept = {}
    for i in range(SMALL):
        kept["rc/%d" % i] = (b"state %d" % i, 1)
    kept["rc/q0"] = (b"zero", 0)
    kept["rc/q2"] = (b"two", 2)
    kept["rc/big"] = (b"B" * 2000, 1)
    for topic, (payload, qos) in kept.items():
        pub.publish(topic, payload, qos=qos, retain=True)
    pub.close()
    wait_cold(b, "rc/")
    return kept


def receive_all(c, n, timeout=20):
    """n retained messages, each answered as its QoS asks: topic -> (payload, QoS)."""
    got = {}
    while len(got) < n:
        p = c.expect(PUBLISH, timeout=timeout)
        assert p.retain and p.topic not in got, p
        got[p.topic] = (p.payload, p.qos)
        if p.qos == 1:
            c.send(ack_packet(PUBACK, p.pid))
        elif p.qos == 2:
            c.send(ack_packet(PUBREC, p.pid))
            assert c.expect(PUBREL, pid=p.pid).pid == p.pid
            c.send(ack_packet(PUBCOMP, p.pid))
    return got


def test_a_clean_subscription_gets_small_retained_messages_of_cold_topics_without_a_start(
        mqtt_factory):
    b = mqtt_factory(COLD)
    kept = publish_kept(b)
    before = {t: started(b, t) for t in kept}
    assert set(before.values()) == {1}, before
    for qos in (2, 0):
        c = client(b, "rc-sub-%d" % qos)
        assert c.subscribe([("rc/#", qos)]) == [qos]
        got = receive_all(c, len(kept))
        assert got == {t: (p, min(q, qos)) for t, (p, q) in kept.items()}
        c.expect_silence(0.3)
        c.close()
        wait_cold(b, "rc/")
    # Only the large one's topic started, once for each subscription;
    # the answers to the copies (PUBACK, PUBREC, PUBCOMP) started nothing.
    after = {t: started(b, t) for t in kept}
    assert after == {t: 3 if t == "rc/big" else 1 for t in kept}, after


def test_a_persistent_session_takes_the_topicd(mqtt_factory):
    """Its retained message is sent again after a reconnect until it is
    answered: only the topicd can, so the topic starts."""
    b = mqtt_factory(COLD)
    kept = publish_kept(b)
    c = client(b, "rc-durable", clean=False)
    assert c.subscribe([("rc/1", 1)]) == [1]
    p = c.expect(PUBLISH, timeout=20)
    assert (p.topic, p.payload, p.retain) == ("rc/1", kept["rc/1"][0], True)
    c.send(ack_packet(PUBACK, p.pid))
    assert started(b, "rc/1") == 2


def test_copies_outlive_a_restart_of_the_master(mqtt_factory):
    b = mqtt_factory(COLD)
    kept = publish_kept(b)
    before = {t: started(b, t) for t in kept}
    b.restart()
    c = client(b, "rc-after")
    assert c.subscribe([("rc/+", 1)]) == [1]
    got = receive_all(c, len(kept))
    assert {t: p for t, (p, _) in got.items()} == {t: p for t, (p, _) in kept.items()}
    after = {t: started(b, t) for t in kept}
    assert after == {t: n + (t == "rc/big") for t, n in before.items()}, b.log_tail()


def test_a_copy_is_what_the_topicd_would_send_at_level_5(mqtt_factory):
    """Properties as published, the Message Expiry Interval counted down,
    Subscription Identifier, Retain As Published; one that expired while
    the topic was cold is not sent."""
    b = mqtt_factory(COLD)
    pub = V5Client(b.mqtt_port, name="rc5-pub")
    pub.connect5_ok("rc5-pub")
    pub.publish5("rc5/t", b"hello", qos=1, retain=True,
                 pprops=props(PUBLISH, MessageExpiryInterval=3600, ContentType="text/plain",
                              UserProperty=[("k", "v")]))
    pub.publish5("rc5/gone", b"brief", qos=1, retain=True,
                 pprops=props(PUBLISH, MessageExpiryInterval=2))
    expires = time.monotonic() + 2
    pub.publish5("rc5/sync", b"sync", qos=1, retain=True)
    wait_cold(b, "rc5/")
    c = V5Client(b.mqtt_port, name="rc5-sub")
    c.connect5_ok("rc5-sub")
    assert c.subscribe5([("rc5/t", 1 | 0x08)],            # Retain As Published
                        sprops=props(SUBSCRIBE, SubscriptionIdentifier=7)).codes == [1]
    m = c.expect(PUBLISH, timeout=20)
    assert (m.topic, m.payload, m.qos, m.retain) == ("rc5/t", b"hello", 1, True)
    assert m.props.get("ContentType") == "text/plain"
    assert m.props.get("UserProperty") == [("k", "v")]
    assert m.props.get("SubscriptionIdentifier") == [7]
    assert 3500 < m.props.get("MessageExpiryInterval") <= 3600
    c.send(ack5(PUBACK, m.pid))
    wait_for(lambda: time.monotonic() > expires + 0.5, 5, "rc5/gone's message to expire")
    assert c.subscribe5([("rc5/gone", 1)]).codes == [1]
    assert c.subscribe5([("rc5/sync", 1)]).codes == [1]
    m = c.expect(PUBLISH, timeout=20)
    assert (m.topic, m.payload) == ("rc5/sync", b"sync"), "an expired retained message was sent"
    c.send(ack5(PUBACK, m.pid))
    for t in ("rc5/t", "rc5/gone", "rc5/sync"):
        assert started(b, t) == 1, b.log_tail()


def test_a_copy_does_not_overtake_what_the_topicd_sent_before(mqtt_factory):
    """Deliveries of the topic still in the client's delivery socket (its
    window full) when it subscribes again: the retained message comes
    after them, not the copy before them, a newer value before an older
    one."""
    b = mqtt_factory(dict(COLD, max_inflight_messages=1))
    c = client(b, "ro-sub")
    assert c.subscribe([("ro/w", 1), ("ro/s", 0)]) == [1, 0]
    pub = client(b, "ro-pub")
    pub.publish("ro/w", b"hold", qos=1)
    w = c.expect(PUBLISH, timeout=10)              # not answered: the window is full
    pub.publish("ro/s", b"v1", qos=1, retain=True)   # to the client at QoS 0
    pub.publish("ro/s", b"v2", qos=1, retain=True)
    wait_cold(b, "ro/s")
    assert c.subscribe([("ro/s", 0)]) == [0]
    c.send(ack_packet(PUBACK, w.pid))
    got = [c.expect(PUBLISH, timeout=20) for _ in range(3)]
    assert [(p.payload, p.retain) for p in got] == \
        [(b"v1", False), (b"v2", False), (b"v2", True)]
