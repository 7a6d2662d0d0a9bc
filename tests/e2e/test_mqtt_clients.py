"""MQTT 3.1.1 (and 3.1) against the real broker with the ecosystem's
clients (paho-mqtt, mosquitto_pub, mosquitto_sub) and a raw-socket client
where a test needs to hold back an acknowledgement or watch a flag.

Absences (a message that must not arrive) are checked after a later
message on the same path has arrived, and then over a short QUIET period.
"""

import base64
import json
import re
import time

import pytest

from broker_harness import DLQ, check_dead_letter, read_cmdline, title_of, wait_for
from mqtt_helpers import (PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL,
                          MosquittoSub, PahoClient, Receiver, RawClient, ack_packet,
                          connected_client, mosquitto_pub, paho)
from mqtt5_helpers import V5Client

QUIET = 0.3             # seconds over which an absence is watched
EARLY = 0.05            # a broker timer may fire this much early by our clock
SLACK = 3.5             # how late a broker timer may fire on a loaded machine
BINARY = bytes(range(256)) * 3
PAYLOADS = [b"hello", BINARY, b"", "h\u00e9llo w\u00f6rld \u2713".encode("utf-8")]


def client(b, client_id="", clean=True, keepalive=10, will=None, protocol=None):
    """A connected paho client."""
    c = PahoClient(b.mqtt_port, client_id, clean, protocol=protocol)
    c.connect_ok(keepalive, will)
    return c


def receiver(b, client_id, filters=None, clean=True, start=False, expect_present=None):
    """A connected raw Receiver, subscribed to filters (all granted as asked)."""
    r = Receiver(lambda: b.mqtt_port, client_id, clean=clean)
    ack = r.connect()
    if expect_present is not None:
        assert ack.session_present == expect_present, (client_id, ack.session_present)
    if filters:
        codes = r.subscribe(filters)
        assert codes == [q for _, q in filters], "SUBACK codes %s for %s" % (codes, filters)
    if start:
        r.start()
    return r


def restart(b, how):
    """Restarts the broker on the same data and ports: SIGTERM, or SIGKILL
    of the master (its topicds exit on their own)."""
    if how == "sigterm":
        b.restart()
    else:
        left = b.kill9()
        b.wait_topicds_gone(left)
        b.start(keep_ports=True)


# ---------------------------------------------------------------- QoS round trips

@pytest.mark.parametrize("qos", [0, 1, 2])
def test_paho_round_trip_keeps_payload_bytes(mqtt_broker, qos):
    sub = client(mqtt_broker, "rt-sub-%d" % qos)
    assert sub.subscribe([("rt/%d" % qos, 2)]) == [2]
    pub = client(mqtt_broker, "rt-pub-%d" % qos)
    for p in PAYLOADS:
        pub.publish("rt/%d" % qos, p, qos)
    got = sub.wait_messages(len(PAYLOADS))
    assert [m.payload for m in got] == PAYLOADS
    assert [(m.topic, m.qos, m.retain, m.dup) for m in got] == \
        [("rt/%d" % qos, qos, False, False)] * len(PAYLOADS)


def test_thousands_of_subscribes_in_a_row_write_the_session_a_few_times(mqtt_factory):
    """A persistent session that sends 5,000 SUBSCRIBEs in a row (paho, a
    filter each, as a gateway may at every connect) gets every SUBACK, and
    its record is written a few times, not once per SUBSCRIBE with all its
    filters (quadratic: 5,000 filters took 300 MB of journal); after a
    restart it has them all."""
    n = 5000
    b = mqtt_factory()
    c = client(b, "many-subs", clean=False)
    mids = []
    for i in range(n):
        res, mid = c.c.subscribe("ms/%d/#" % i, 1)
        assert res == paho.MQTT_ERR_SUCCESS, res
        mids.append(mid)
    c.wait(lambda: all(m in c.subacks for m in mids), 60, "%d SUBACKs" % n)
    assert all(c.subacks[m] == [1] for m in mids)
    written = sum(f.stat().st_size for f in b.data_dir.glob("sessions.*"))
    assert written < 32 << 20, "%d MB of session store for %d filters" % (written >> 20, n)
    c.disconnect()
    b.restart()
    c = client(b, "many-subs", clean=False)
    pub = client(b, "ms-pub")
    for i in (0, n - 1):
        pub.publish("ms/%d/x" % i, b"to %d" % i, 1)
        c.wait_message(b"to %d" % i)


def test_delivery_is_at_the_lower_of_publish_and_subscription_qos(mqtt_broker):
    subs = {}
    for sq in (0, 1, 2):
        subs[sq] = receiver(mqtt_broker, "minq-%d" % sq, [("minq", sq)])
    pub = client(mqtt_broker, "minq-pub")
    for pq in (0, 1, 2):
        pub.publish("minq", b"at-%d" % pq, pq)
    for sq, r in subs.items():
        r.wait_count(3)
        got = {a.payload: a.qos for a in r.arrivals}
        assert got == {b"at-%d" % pq: min(pq, sq) for pq in (0, 1, 2)}, (sq, got)
        r.settle()
        assert not r.errors and not r.duplicates, (r.errors, r.duplicates)


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_mosquitto_pub_to_mosquitto_sub(mqtt_broker, tmp_path, qos):
    topic = "mc/%d" % qos
    sub = MosquittoSub(mqtt_broker.mqtt_port, [topic], qos)
    sub.wait_subscribed()
    binfile = tmp_path / "payload.bin"
    binfile.write_bytes(BINARY)
    mosquitto_pub(mqtt_broker.mqtt_port, topic, "text message", qos)
    mosquitto_pub(mqtt_broker.mqtt_port, topic, qos=qos, file=binfile)
    mosquitto_pub(mqtt_broker.mqtt_port, topic, qos=qos, null=True)
    got = sub.wait_messages(3)
    assert [(m.topic, m.qos, m.retain) for m in got] == [(topic, qos, 0)] * 3
    assert [m.payload for m in got] == [b"text message", BINARY, b""]


def test_mqtt_31_clients(mqtt_broker):
    """MQTT 3.1 ("MQIsdp", level 3) clients work like 3.1.1 ones."""
    sub = MosquittoSub(mqtt_broker.mqtt_port, ["v31/t"], 1, args=["-V", "mqttv31",
                                                                   "-i", "v31-sub"])
    sub.wait_subscribed()
    mosquitto_pub(mqtt_broker.mqtt_port, "v31/t", "from 3.1", 1,
                  args=["-V", "mqttv31", "-i", "v31-pub"])
    p = client(mqtt_broker, "v31-paho", protocol=paho.MQTTv31)
    p.publish("v31/t", b"from paho 3.1", 2)
    got = sub.wait_messages(2)
    assert [(m.payload, m.qos) for m in got] == [(b"from 3.1", 1), (b"from paho 3.1", 1)]


# ---------------------------------------------------------------- subscriptions

def test_wildcards_match_existing_and_future_topics(mqtt_broker):
    pub = client(mqtt_broker, "wc-pub")
    pub.publish("wc/a/temp", b"before", 1)          # the topic exists before the SUBSCRIBE
    plus = client(mqtt_broker, "wc-plus")
    assert plus.subscribe([("wc/+/temp", 1)]) == [1]
    hash_ = client(mqtt_broker, "wc-hash")
    assert hash_.subscribe([("wc/#", 1)]) == [1]
    sent = [("wc/a/temp", b"existing"), ("wc/b/temp", b"future"), ("wc/b/hum", b"hum"),
            ("wc", b"parent"), ("wc/a/temp/x", b"deeper"), ("wcx/a/temp", b"other")]
    for t, p in sent:
        pub.publish(t, p, 1)
    for t, p in sent[:5]:
        assert hash_.wait_message(p).topic == t
    for t, p in sent[:2]:
        assert plus.wait_message(p).topic == t
    time.sleep(QUIET)                               # absence: see the module docstring
    assert sorted(plus.payloads()) == [b"existing", b"future"]
    assert sorted(hash_.payloads()) == sorted(p for _, p in sent[:5])


def test_dollar_topics_are_not_matched_by_a_leading_wildcard(mqtt_factory):
    b = mqtt_factory({"sys_interval": 1})
    everything = client(b, "dollar-hash")
    assert everything.subscribe([("#", 0)]) == [0]
    plus = client(b, "dollar-plus")
    assert plus.subscribe([("+/broker/uptime", 0), ("+", 0)]) == [0, 0]
    sys_ = client(b, "dollar-sys")
    assert sys_.subscribe([("$SYS/broker/uptime", 0), (DLQ, 0)]) == [0, 0]
    jp = b.publisher()
    jp.send_line("not json")                        # a record for $DLQ
    jp.expect("INVALID JSON")
    sys_.wait(lambda: any(m.topic == DLQ for m in sys_.messages), 10, "the $DLQ record")
    # Two uptimes: at least one $SYS round after the wildcards were in place.
    sys_.wait(lambda: sum(m.topic == "$SYS/broker/uptime" for m in sys_.messages) >= 2,
              1 + SLACK, "two $SYS/broker/uptime messages")
    client(b, "dollar-pub").publish("plain", b"x", 1)
    everything.wait_message(b"x", "plain")
    plus.wait_message(b"x", "plain")
    assert [m.topic for m in everything.messages] == ["plain"]
    assert [m.topic for m in plus.messages] == ["plain"]


def test_overlapping_subscriptions_deliver_one_message_at_the_highest_qos(mqtt_broker):
    r = receiver(mqtt_broker, "ov-sub")
    assert r.subscribe([("ov/#", 0), ("ov/+", 2), ("ov/a", 1)]) == [0, 2, 1]
    pub = client(mqtt_broker, "ov-pub")
    pub.publish("ov/a", b"one", 2)
    pub.publish("ov/a", b"two", 1)
    pub.publish("ov/a", b"three", 2)
    r.wait_payload(b"three")
    r.settle()
    assert [(a.payload, a.qos) for a in r.arrivals] == [(b"one", 2), (b"two", 1), (b"three", 2)]
    assert not r.duplicates and not r.errors, (r.duplicates, r.errors)


def test_unsubscribe_stops_delivery(mqtt_broker):
    sub = client(mqtt_broker, "us-sub")
    assert sub.subscribe([("us/a", 1), ("us/b", 1)]) == [1, 1]
    pub = client(mqtt_broker, "us-pub")
    pub.publish("us/a", b"a1", 1)
    sub.wait_message(b"a1", "us/a")
    sub.unsubscribe(["us/a"])
    sub.unsubscribe(["us/never-subscribed"])       # still answered with UNSUBACK
    witness = client(mqtt_broker, "us-witness")
    witness.subscribe([("us/a", 1)])
    pub.publish("us/a", b"a2", 1)
    witness.wait_message(b"a2", "us/a")
    pub.publish("us/b", b"b1", 1)
    sub.wait_message(b"b1", "us/b")
    time.sleep(QUIET)
    assert sub.payloads() == [b"a1", b"b1"]


# ---------------------------------------------------------------- retained messages

def test_retained_message_is_delivered_on_subscribe_with_the_retain_flag(mqtt_broker):
    pub = client(mqtt_broker, "ret-pub")
    pub.publish("ret/a", b"old", 1, retain=True)
    pub.publish("ret/a", b"new", 1, retain=True)
    pub.publish("ret/b", BINARY, 2, retain=True)
    pub.publish("ret/c", b"not retained", 1)
    r = receiver(mqtt_broker, "ret-sub", [("ret/+", 2)])
    r.wait_count(2)
    got = {a.topic: (a.payload, a.retain, a.qos) for a in r.arrivals}
    assert got == {"ret/a": (b"new", True, 1), "ret/b": (BINARY, True, 2)}, got
    # Sent because of an existing subscription: retain flag 0 (3.3.1-9).
    pub.publish("ret/a", b"live", 1, retain=True)
    pub.publish("ret/c", b"c-live", 1)
    r.wait_payload(b"live")
    r.wait_payload(b"c-live")
    live = [a for a in r.arrivals if a.payload in (b"live", b"c-live")]
    assert [a.retain for a in live] == [False, False]
    assert b"old" not in r.payloads() and b"not retained" not in r.payloads()
    # mosquitto_sub sees the newest retained message with the flag.
    ms = MosquittoSub(mqtt_broker.mqtt_port, ["ret/a"], 1)
    got = ms.wait_messages(1)
    assert (got[0].payload, got[0].retain) == (b"live", 1)


def test_empty_retained_publish_clears_the_retained_message(mqtt_broker):
    pub = client(mqtt_broker, "clr-pub")
    pub.publish("clr/t", b"keep me", 1, retain=True)
    live = receiver(mqtt_broker, "clr-live", [("clr/t", 1)])
    live.wait_payload(b"keep me")
    mosquitto_pub(mqtt_broker.mqtt_port, "clr/t", qos=1, retain=True, null=True)
    # Existing subscribers get the empty message as normal (3.3.1-11).
    live.wait_until(lambda: len(live.arrivals) >= 2, 10, "the empty publish")
    assert (live.arrivals[1].payload, live.arrivals[1].retain) == (b"", False)
    late = receiver(mqtt_broker, "clr-late", [("clr/t", 1)])
    pub.publish("clr/t", b"after", 1)
    late.wait_payload(b"after")
    assert [(a.payload, a.retain) for a in late.arrivals] == [(b"after", False)]


def test_retained_messages_survive_a_broker_restart(mqtt_broker):
    pub = client(mqtt_broker, "rs-pub")
    pub.publish("rs/kept", b"durable", 1, retain=True)
    pub.publish("rs/cleared", b"gone", 1, retain=True)
    pub.publish("rs/cleared", b"", 1, retain=True)
    pub.close()
    mqtt_broker.restart()
    r = receiver(mqtt_broker, "rs-sub", [("rs/#", 1)])
    r.wait_payload(b"durable")
    assert (r.arrivals[0].topic, r.arrivals[0].retain) == ("rs/kept", True)
    client(mqtt_broker, "rs-pub2").publish("rs/cleared", b"fresh", 1)
    r.wait_payload(b"fresh", "rs/cleared")
    assert [a.payload for a in r.arrivals if a.topic == "rs/cleared"] == [b"fresh"]


def retained_qos2(b, topic, payload):
    """Publishes payload to topic at QoS 2 with the retain flag (the whole
    exchange), then subscribes a new persistent session to it at QoS 2 and
    returns (its client, the retained PUBLISH), checked field by field."""
    connected_client(b.mqtt_port, topic + "-pub").publish(topic, payload, 2, retain=True)
    c = connected_client(b.mqtt_port, topic + "-sub", clean=False)
    assert c.subscribe([(topic, 2)]) == [2]
    p = c.expect_next(PUBLISH)
    assert (p.topic, p.payload, p.qos, p.retain, p.dup) == (topic, payload, 2, True, False), p
    assert p.pid != 0, p
    return c, p


def reconnect_quietly(b, client_id):
    """Reconnects a persistent session and checks that nothing was pending
    for it: no PUBLISH or PUBREL comes before or after a PINGRESP."""
    c = RawClient(b.mqtt_port, name=client_id + " (again)")
    ack = c.connect(client_id, clean=False)
    assert (ack.rc, ack.session_present) == (0, True), ack
    c.ping()
    c.expect_silence(QUIET)
    return c


def qos2_exchange(c, p):
    """The receiver's side of a QoS 2 delivery, packet by packet: PUBREC,
    then the PUBREL must be the very next packet, then PUBCOMP."""
    c.send(ack_packet(PUBREC, p.pid))
    rel = c.expect_next(PUBREL)
    assert rel.pid == p.pid, "PUBREL for packet id %d, the PUBLISH had %d" % (rel.pid, p.pid)
    c.send(ack_packet(PUBCOMP, p.pid))


def test_retained_qos2_delivery_is_a_whole_exchange_on_the_wire(mqtt_broker):
    """PUBLISH (QoS 2, retain 1), PUBREC, PUBREL, PUBCOMP; then nothing is
    pending: not on this connection, not when the persistent session
    reconnects, and the next message is an ordinary exchange."""
    c, p = retained_qos2(mqtt_broker, "r2/whole", b"kept at qos 2")
    qos2_exchange(c, p)
    c.ping()
    c.expect_silence(QUIET)
    c.disconnect()
    c.expect_closed()
    c = reconnect_quietly(mqtt_broker, "r2/whole-sub")
    connected_client(mqtt_broker.mqtt_port, "r2-live").publish("r2/whole", b"live", 2)
    q = c.expect_next(PUBLISH)
    assert (q.payload, q.qos, q.retain, q.dup) == (b"live", 2, False, False), q
    qos2_exchange(c, q)
    c.ping()
    c.expect_silence(QUIET)


def test_retained_qos2_pubrel_is_resent_when_the_session_reconnects(mqtt_broker):
    """The connection ends after the subscriber's PUBREC: the PUBREL is
    unacknowledged, and the broker must send it again, with the same packet
    id, when the persistent session reconnects (MQTT-4.4.0-1).  Otherwise
    the subscriber keeps the packet id waiting for a PUBREL, and takes a
    later message sent with that id for a duplicate."""
    c, p = retained_qos2(mqtt_broker, "r2/cut", b"cut after pubrec")
    c.send(ack_packet(PUBREC, p.pid))
    c.close()
    c = RawClient(mqtt_broker.mqtt_port, name="r2/cut-sub (again)")
    assert c.connect("r2/cut-sub", clean=False).session_present
    first = c.read_packet()
    if first.type == PUBLISH:           # the PUBREC was lost with the connection
        assert (first.pid, first.dup, first.payload) == (p.pid, True, p.payload), first
        qos2_exchange(c, first)
    else:
        assert (first.type, first.pid) == (PUBREL, p.pid), \
            "expected the PUBREL of packet id %d again, got %r" % (p.pid, first)
        c.send(ack_packet(PUBCOMP, p.pid))
    c.ping()
    c.expect_silence(QUIET)


def test_retained_qos2_publish_is_resent_when_the_session_reconnects(mqtt_broker):
    """The connection ends before the subscriber answers the retained
    PUBLISH: it is unacknowledged, and the broker must send it again, with
    DUP and the same packet id, when the persistent session reconnects
    (MQTT-4.4.0-1); the exchange then completes."""
    c, p = retained_qos2(mqtt_broker, "r2/unanswered", b"not answered")
    c.close()
    c = RawClient(mqtt_broker.mqtt_port, name="r2/unanswered-sub (again)")
    assert c.connect("r2/unanswered-sub", clean=False).session_present
    again = c.expect_next(PUBLISH)
    assert (again.payload, again.qos, again.pid, again.dup) == (b"not answered", 2, p.pid,
                                                                True), again
    qos2_exchange(c, again)
    c.ping()
    c.expect_silence(QUIET)


def test_json_consumers_get_no_retained_message(mqtt_broker):
    """A JSON-lines SUB starts at the end of the topic, retained message or
    not (the retain flag is MQTT's); what is published next arrives, with
    its whole exchange, and nothing else."""
    connected_client(mqtt_broker.mqtt_port, "rj-pub").publish("rj/t", b"retained", 2,
                                                              retain=True)
    cons = mqtt_broker.consumer("rj-cons")
    cons.subscribe("rj/t")
    connected_client(mqtt_broker.mqtt_port, "rj-pub2").publish("rj/t", b"after", 2)
    cons.wait_message("after", "rj/t")
    cons.settle()
    cons.pump_for(QUIET)
    assert cons.messages("rj/t") == ["after"]
    assert not cons.duplicates, cons.duplicates


# ---------------------------------------------------------------- wills

def will_watcher(b, name="will-watch"):
    return receiver(b, name, [("will/#", 2)])


@pytest.mark.parametrize("how,qos,retain", [("close", 1, False), ("reset", 2, True),
                                            ("close", 0, True)])
def test_will_is_published_when_the_socket_closes_without_disconnect(mqtt_broker, how, qos,
                                                                     retain):
    w = will_watcher(mqtt_broker)
    topic = "will/%s-%d" % (how, qos)
    c = connected_client(mqtt_broker.mqtt_port, "will-" + how, will=(topic, b"gone", qos, retain))
    c.publish(topic, b"alive", 1)
    w.wait_payload(b"alive", topic)
    c.close(reset=(how == "reset"))
    w.wait_payload(b"gone", topic)
    a = w.arrivals[-1]
    assert (a.topic, a.qos, a.retain) == (topic, qos, False)
    late = receiver(mqtt_broker, "will-late", [(topic, 2)])
    if retain:
        late.wait_payload(b"gone")
        assert (late.arrivals[0].retain, late.arrivals[0].qos) == (True, qos)
    else:
        client(mqtt_broker, "will-pub").publish(topic, b"later", 1)
        late.wait_payload(b"later")
        assert late.payloads() == [b"later"]


def test_will_of_a_killed_mosquitto_sub(mqtt_broker):
    w = will_watcher(mqtt_broker)
    ms = MosquittoSub(mqtt_broker.mqtt_port, ["wk/x"], 1,
                      args=["-i", "wk-sub", "--will-topic", "will/wk", "--will-payload",
                            "mosquitto_sub died", "--will-qos", "1"])
    ms.wait_subscribed()
    ms.kill()
    w.wait_payload(b"mosquitto_sub died", "will/wk")
    assert w.arrivals[-1].qos == 1


def test_will_is_not_published_after_disconnect(mqtt_broker):
    w = will_watcher(mqtt_broker)
    c = connected_client(mqtt_broker.mqtt_port, "will-polite",
                         will=("will/polite", b"should not appear", 1, True))
    c.disconnect()
    c.expect_closed()                               # the broker closes after DISCONNECT
    client(mqtt_broker, "will-pub").publish("will/polite", b"after", 1)
    w.wait_payload(b"after")
    assert w.payloads() == [b"after"]
    late = receiver(mqtt_broker, "will-late", [("will/polite", 1)])
    client(mqtt_broker, "will-pub2").publish("will/polite", b"later", 1)
    late.wait_payload(b"later")
    assert late.payloads() == [b"later"], "a will was retained after DISCONNECT"


def test_will_is_published_on_takeover(mqtt_broker):
    w = will_watcher(mqtt_broker)
    first = connected_client(mqtt_broker.mqtt_port, "tk-will",
                             will=("will/tk", b"taken over", 1, False))
    second = connected_client(mqtt_broker.mqtt_port, "tk-will")
    first.expect_closed()
    w.wait_payload(b"taken over", "will/tk")
    second.ping()


# ---------------------------------------------------------------- keep-alive, takeover, ids

def test_keepalive_is_enforced_at_one_and_a_half_times_the_interval(mqtt_broker):
    """The lower bound is measured from the CONNECT's send, which the broker
    sees later; the upper bound is wide, for a loaded machine."""
    w = will_watcher(mqtt_broker)
    silent = connected_client(mqtt_broker.mqtt_port, "ka-silent", keepalive=1,
                              will=("will/ka", b"timed out", 1, False))
    since = silent.last_sent
    pinger = connected_client(mqtt_broker.mqtt_port, "ka-pinger", keepalive=1)
    closed_at = None
    while closed_at is None and time.monotonic() - since < 1.5 + SLACK:
        pinger.ping()                               # well inside its keep-alive
        if silent.closed_within(0.4):
            closed_at = time.monotonic()
    assert closed_at is not None, "a client silent for %.1f s with keep-alive 1 s is still " \
        "connected" % (1.5 + SLACK)
    took = closed_at - since
    assert took >= 1.5 - EARLY, "closed %.2f s after its CONNECT, before 1.5 times its " \
        "keep-alive (1 s)" % took
    w.wait_payload(b"timed out", "will/ka")
    pinger.ping()
    pinger.disconnect()
    pinger.expect_closed()


def test_second_connection_with_the_same_client_id_takes_the_session_over(mqtt_broker):
    first = connected_client(mqtt_broker.mqtt_port, "tk-1", clean=False)
    assert first.subscribe([("tk/t", 1)]) == [1]
    second = RawClient(mqtt_broker.mqtt_port, name="tk-1 (2)")
    ack = second.connect("tk-1", clean=False)
    assert (ack.rc, ack.session_present) == (0, True)
    first.expect_closed()
    client(mqtt_broker, "tk-pub").publish("tk/t", b"to the new one", 1)
    p = second.expect(PUBLISH)
    assert (p.topic, p.payload, p.qos) == ("tk/t", b"to the new one", 1)
    second.send(ack_packet(PUBACK, p.pid))
    # A clean takeover drops the session.
    third = RawClient(mqtt_broker.mqtt_port, name="tk-1 (3)")
    ack = third.connect("tk-1", clean=True)
    assert (ack.rc, ack.session_present) == (0, False)
    second.expect_closed()
    third.ping()


def test_zero_length_client_id_with_clean_session_gets_one_assigned(mqtt_broker):
    a = connected_client(mqtt_broker.mqtt_port, "", name="anon-a")
    b = connected_client(mqtt_broker.mqtt_port, "", name="anon-b")
    p = client(mqtt_broker, "")                     # paho sends an empty id too
    for c in (a, b):
        assert c.subscribe([("anon/t", 1)]) == [1]
    assert p.subscribe([("anon/t", 1)]) == [1]
    client(mqtt_broker, "anon-pub").publish("anon/t", b"to all", 1)
    for c in (a, b):                                # neither took the other over
        m = c.expect(PUBLISH)
        assert m.payload == b"to all"
        c.send(ack_packet(PUBACK, m.pid))
        c.ping()
    p.wait_message(b"to all")


def test_zero_length_client_id_without_clean_session_is_refused(mqtt_broker):
    c = RawClient(mqtt_broker.mqtt_port, name="anon-persistent")
    ack = c.connect("", clean=False)
    assert (ack.rc, ack.session_present) == (2, False)
    c.expect_closed()


# ---------------------------------------------------------------- persistent sessions

def test_persistent_session_keeps_subscriptions_and_queues_messages(mqtt_broker):
    r = receiver(mqtt_broker, "ps-1", [("ps/t", 1), ("ps/q2", 2)], clean=False,
                 expect_present=False)
    r.disconnect()
    pub = client(mqtt_broker, "ps-pub")
    for i in range(3):
        pub.publish("ps/t", b"m%d" % i, 1)
        pub.publish("ps/q2", b"n%d" % i, 2)
    ack = r.connect()
    assert ack.session_present
    r.wait_count(6)
    assert r.payloads("ps/t") == [b"m0", b"m1", b"m2"]
    assert r.payloads("ps/q2") == [b"n0", b"n1", b"n2"]
    r.settle()
    assert not r.errors and not r.duplicates
    r.disconnect()
    # clean_session 1 discards the session; the next one starts empty.
    c = connected_client(mqtt_broker.mqtt_port, "ps-1", clean=True)
    c.disconnect()
    c.expect_closed()
    r.arrivals.clear()
    ack = r.connect()
    assert not ack.session_present
    witness = receiver(mqtt_broker, "ps-witness", [("ps/t", 1)])
    pub.publish("ps/t", b"after clean", 1)
    witness.wait_payload(b"after clean")
    r.client.ping()
    r.client.expect_silence(QUIET)                  # the old subscription is gone


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_persistent_session_survives_a_broker_restart(mqtt_broker, how):
    r = receiver(mqtt_broker, "pr-1", [("pr/q1", 1), ("pr/q2", 2), ("pr/+/w", 1)],
                 clean=False, expect_present=False)
    r.disconnect()
    pub = client(mqtt_broker, "pr-pub")
    offline = [("pr/q1", b"a1", 1), ("pr/q2", b"b1", 2), ("pr/x/w", b"c1", 1),
               ("pr/q1", b"a2", 1), ("pr/q2", b"b2", 2)]
    for t, p, q in offline:
        pub.publish(t, p, q)
    pub.close()
    restart(mqtt_broker, how)
    ack = r.connect()
    assert ack.session_present, "session_present 0 after a %s restart" % how
    r.start()
    pub = client(mqtt_broker, "pr-pub")
    pub.publish("pr/q1", b"a3", 1)
    pub.publish("pr/new/w", b"c2", 1)           # a topic first used after the restart
    r.wait_until(lambda: len(r.arrivals) >= 7, 10, "7 arrivals")
    r.settle()
    assert r.payloads("pr/q1") == [b"a1", b"a2", b"a3"]
    assert r.payloads("pr/q2") == [b"b1", b"b2"]
    assert r.payloads("pr/x/w") == [b"c1"] and r.payloads("pr/new/w") == [b"c2"]
    assert [a.qos for a in r.arrivals if a.topic == "pr/q2"] == [2, 2]
    assert not r.errors and not r.duplicates, (r.errors, r.duplicates)


def topicd_subs(b, topic):
    """The subscriber count in the title of the topic's topicd
    (`topicd: TOPIC subs=N seq=...`), or None."""
    pid = b.topicd_pid(topic)
    m = re.search(r" subs=(\d+) ", title_of(read_cmdline(pid) or b"")) if pid else None
    return int(m.group(1)) if m else None


def test_persistent_client_expiration_removes_an_offline_session(mqtt_factory):
    b = mqtt_factory({"persistent_client_expiration": 1, "sys_interval": 1})
    client(b, "pe-first").publish("pe/t", b"before", 1)    # its topicd starts for it
    keep = receiver(b, "pe-keep", [("pe/t", 1)], clean=False, start=True)
    r = receiver(b, "pe-gone", [("pe/t", 1)], clean=False)
    wait_for(lambda: topicd_subs(b, "pe/t") == 2, 5, "the topicd of pe/t to count 2 subscribers")
    since = time.monotonic()                        # the session goes offline after this
    r.disconnect()
    pub = client(b, "pe-pub")
    pub.publish("pe/t", b"while offline", 1)
    wait_for(lambda: topicd_subs(b, "pe/t") == 1, 2 + SLACK,
             "the offline session to expire (the topicd of pe/t to count 1 subscriber)")
    took = time.monotonic() - since
    assert took >= 1 - EARLY, "expired %.2f s after going offline, before " \
        "persistent_client_expiration (1 s)" % took
    ack = r.connect()
    assert not ack.session_present, "the session was still there"
    pub.publish("pe/t", b"after", 1)
    keep.wait_payload(b"after")
    assert keep.payloads() == [b"while offline", b"after"], "the connected session expired"
    r.client.ping()
    r.client.expect_silence(QUIET)                  # no subscription, no queued message


# How the session is interrupted: the client closes and reconnects; or the
# broker restarts under the connected client (SIGTERM); or the client
# closes and the master is SIGKILLed; or the master is SIGKILLed under the
# connected client.
HOW = ["reconnect", "sigterm", "sigkill", "sigkill-connected"]


def interrupt(b, c, how):
    """Ends the connection c as `how` says (see HOW)."""
    if how in ("reconnect", "sigkill"):
        c.close()
    if how != "reconnect":
        restart(b, how.split("-")[0])
    if how in ("sigterm", "sigkill-connected"):
        c.expect_closed(allow=(PUBLISH, PUBREL))
        c.close()


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("qos", [1, 2])
def test_unacknowledged_publish_is_resent_with_dup_and_the_same_packet_id(mqtt_broker, qos,
                                                                          how):
    """Resent on reconnect, also after a restart.  After a SIGKILL of the
    master the send itself may not have been recorded: then the message
    must come again, but the packet id may be new."""
    cid = "dup-%d" % qos
    c = connected_client(mqtt_broker.mqtt_port, cid, clean=False)
    assert c.subscribe([("dup/t", qos)]) == [qos]
    client(mqtt_broker, "dup-pub").publish("dup/t", b"unacked", qos)
    first = c.expect(PUBLISH)
    assert (first.payload, first.qos, first.dup) == (b"unacked", qos, False)
    interrupt(mqtt_broker, c, how)                  # no PUBACK / PUBREC
    c2 = RawClient(mqtt_broker.mqtt_port, name=cid + " (2)")
    assert c2.connect(cid, clean=False).session_present
    again = c2.expect(PUBLISH)
    assert (again.payload, again.topic, again.qos) == (b"unacked", "dup/t", qos), again
    if not how.startswith("sigkill") or again.pid == first.pid:
        assert (again.dup, again.pid) == (True, first.pid), \
            "resent with DUP %s and packet id %d (first sent with id %d)" % (
                again.dup, again.pid, first.pid)
    if qos == 1:
        c2.send(ack_packet(PUBACK, again.pid))
    else:
        c2.send(ack_packet(PUBREC, again.pid))
        c2.expect(PUBREL, pid=again.pid)
        c2.send(ack_packet(PUBCOMP, again.pid))
    c2.ping()
    # Acknowledged now: the next connection gets only what is new.
    c2.disconnect()
    c2.expect_closed()
    client(mqtt_broker, "dup-pub").publish("dup/t", b"next", qos)
    c3 = RawClient(mqtt_broker.mqtt_port, name=cid + " (3)")
    assert c3.connect(cid, clean=False).session_present
    nxt = c3.expect(PUBLISH)
    assert (nxt.payload, nxt.dup) == (b"next", False), nxt


@pytest.mark.parametrize("how", HOW)
def test_pubrel_is_resent_with_the_same_packet_id(mqtt_broker, how):
    """A delivery the client PUBREC'd goes on with its PUBREL under the
    same packet id: any other id would make the client take a resent
    PUBLISH as a new message.  After a SIGKILL of the master the PUBREC
    may have been lost, and the PUBLISH may come again, with that id."""
    c = connected_client(mqtt_broker.mqtt_port, "rel-1", clean=False)
    assert c.subscribe([("rel/t", 2)]) == [2]
    client(mqtt_broker, "rel-pub").publish("rel/t", b"exactly once", 2)
    p = c.expect(PUBLISH)
    c.send(ack_packet(PUBREC, p.pid))
    c.expect(PUBREL, pid=p.pid)
    interrupt(mqtt_broker, c, how)                  # no PUBCOMP
    c2 = RawClient(mqtt_broker.mqtt_port, name="rel-1 (2)")
    assert c2.connect("rel-1", clean=False).session_present
    first = c2.read_packet()
    if how.startswith("sigkill") and first.type == PUBLISH:
        assert (first.pid, first.dup, first.payload) == (p.pid, True, b"exactly once"), \
            "after PUBREC of packet id %d, got %r" % (p.pid, first)
        c2.send(ack_packet(PUBREC, p.pid))
        first = c2.read_packet()
    assert (first.type, first.pid) == (PUBREL, p.pid), \
        "expected the PUBREL of packet id %d again, got %r" % (p.pid, first)
    c2.send(ack_packet(PUBCOMP, p.pid))
    client(mqtt_broker, "rel-pub").publish("rel/t", b"second", 2)
    nxt = c2.expect(PUBLISH)
    assert (nxt.payload, nxt.dup) == (b"second", False), "got %r" % nxt


def test_max_inflight_messages_limits_unacknowledged_deliveries(mqtt_factory):
    b = mqtt_factory({"max_inflight_messages": 3})
    c = connected_client(b.mqtt_port, "inflight")
    assert c.subscribe([("inf/t", 1)]) == [1]
    pub = client(b, "inf-pub")
    for i in range(7):
        pub.publish("inf/t", b"m%d" % i, 1)
    got = [c.expect(PUBLISH) for _ in range(3)]
    assert [p.payload for p in got] == [b"m0", b"m1", b"m2"]
    c.expect_silence(QUIET * 2)                     # a 4th would break the window
    c.send(ack_packet(PUBACK, got[0].pid))
    got.append(c.expect(PUBLISH))
    assert got[-1].payload == b"m3"
    c.expect_silence(QUIET)
    for p in got[1:]:
        c.send(ack_packet(PUBACK, p.pid))
    rest = [c.expect(PUBLISH) for _ in range(3)]
    assert [p.payload for p in rest] == [b"m4", b"m5", b"m6"]
    assert len({p.pid for p in got[1:] + rest}) == 6, "packet ids in flight reused"


def test_a_full_window_is_sent_again_when_the_session_reconnects(mqtt_factory):
    """Every delivery in flight (max_inflight_messages of them, none
    acknowledged) when the connection ends is sent again, with DUP and its
    packet id, when the persistent session reconnects (MQTT-4.4.0-1); then
    what was queued behind them follows."""
    b = mqtt_factory({"max_inflight_messages": 3})
    c = connected_client(b.mqtt_port, "fullwin", clean=False)
    assert c.subscribe([("fw/t", 1)]) == [1]
    pub = client(b, "fw-pub")
    for i in range(5):
        pub.publish("fw/t", b"m%d" % i, 1)
    first = [c.expect(PUBLISH) for _ in range(3)]
    assert [p.payload for p in first] == [b"m0", b"m1", b"m2"]
    c.close()
    c = RawClient(b.mqtt_port, name="fullwin (again)")
    assert c.connect("fullwin", clean=False).session_present
    again = [c.expect(PUBLISH) for _ in range(3)]
    assert [(p.payload, p.pid, p.dup) for p in again] == \
        [(p.payload, p.pid, True) for p in first], again
    for p in again:
        c.send(ack_packet(PUBACK, p.pid))
    rest = [c.expect(PUBLISH) for _ in range(2)]
    assert [(p.payload, p.dup) for p in rest] == [(b"m3", False), (b"m4", False)], rest


def test_max_queued_messages_overflow_is_dead_lettered(mqtt_factory):
    inflight, queued, n = 2, 3, 10
    b = mqtt_factory({"max_inflight_messages": inflight, "max_queued_messages": queued})
    dlq = receiver(b, "mq-dlq", [(DLQ, 1)], start=True)
    r = receiver(b, "mq-sub", [("mq/t", 1)], clean=False)
    r.disconnect()
    pub = client(b, "mq-pub")
    sent = [b"q%d" % i for i in range(n)]
    for p in sent:
        pub.publish("mq/t", p, 1)                   # every one acknowledged

    def maxlen():
        out = []
        for a in dlq.arrivals:
            rec = json.loads(a.payload)
            if rec.get("reason") == "maxlen":
                out.append(rec)
        return out
    dlq.wait_until(lambda: len(maxlen()) >= n - inflight - queued, 10,
                   "at least %d maxlen dead letters" % (n - inflight - queued))
    assert r.connect().session_present
    r.start()
    r.wait_until(lambda: len(r.arrivals) + len(maxlen()) >= n, 10,
                 "every message delivered or dead-lettered")
    time.sleep(QUIET)
    dead = [rec["msg"].encode() for rec in maxlen()]
    got = r.payloads()
    assert sorted(got + dead) == sorted(sent), (got, dead)
    assert got == sorted(got, key=sent.index), "delivered out of order: %s" % got
    assert queued <= len(got) <= inflight + queued, (got, dead)
    for rec in maxlen():
        check_dead_letter(rec, "maxlen", ports=[b.mqtt_port], topic="mq/t")
        assert rec["client"] == "mq-sub", rec


def test_max_queued_messages_never_dead_letters_a_message_in_flight(mqtt_factory):
    """A connected subscriber that holds back its acks: what is in flight
    stays in flight (the client has it), and only messages queued beyond
    the window are dead-lettered; each message is delivered or
    dead-lettered, never both.  At QoS 2 the exchange of a PUBREC'd
    delivery goes on to its PUBCOMP."""
    inflight, queued, n = 2, 3, 10
    b = mqtt_factory({"max_inflight_messages": inflight, "max_queued_messages": queued})
    dlq = receiver(b, "mq-dlq2", [(DLQ, 1)], start=True)
    sub = connected_client(b.mqtt_port, "mq-held")
    assert sub.subscribe([("mq/h", 2)]) == [2]
    pub = connected_client(b.mqtt_port, "mq-pub2")
    sent = [b"h%d" % i for i in range(n)]
    for p in sent:
        pub.publish("mq/h", p, 2)

    def dead():
        return [json.loads(a.payload)["msg"].encode() for a in dlq.arrivals
                if json.loads(a.payload).get("reason") == "maxlen"]
    first = [sub.expect(PUBLISH) for _ in range(inflight)]
    dlq.wait_until(lambda: len(dead()) >= n - inflight - queued, 10,
                   "%d maxlen dead letters" % (n - inflight - queued))
    sub.send(ack_packet(PUBREC, first[0].pid))
    sub.expect(PUBREL, pid=first[0].pid)
    sub.send(ack_packet(PUBCOMP, first[0].pid))
    got = [first[0].payload]
    pending = first[1:]
    while len(got) + len(dead()) < n:
        p = pending.pop(0) if pending else sub.expect(PUBLISH)
        got.append(p.payload)
        sub.send(ack_packet(PUBREC, p.pid))
        sub.expect(PUBREL, pid=p.pid)
        sub.send(ack_packet(PUBCOMP, p.pid))
    sub.expect_silence(QUIET)
    assert sorted(got + dead()) == sorted(sent), (got, dead())
    assert got[:inflight] == sent[:inflight], got
    assert len(got) == inflight + queued, (got, dead())


# ---------------------------------------------------------------- $SYS

SYS_NUMERIC = ["clients/connected", "messages/received", "messages/sent", "bytes/received",
               "bytes/sent", "topics/count", "topicd/restarts"]


def test_sys_topics_are_published_every_sys_interval(mqtt_factory):
    b = mqtt_factory({"sys_interval": 1})
    s = client(b, "sys-watch")
    assert s.subscribe([("$SYS/broker/#", 0)]) == [0]

    def latest(name, after=0.0):
        for m in reversed(s.messages):
            if m.topic == "$SYS/broker/" + name and m.at >= after:
                return m
        return None

    def number(name, after=0.0):
        m = latest(name, after)
        if m is None:
            return None
        assert re.fullmatch(rb"\d+", m.payload), (m.topic, m.payload)
        return int(m.payload)

    s.wait(lambda: all(latest(n) for n in SYS_NUMERIC + ["version", "uptime"]), 1 + SLACK,
           "every $SYS/broker topic within sys_interval (1 s) of the SUBSCRIBE")
    assert re.fullmatch(rb".*\d+\.\d+.*", latest("version").payload), latest("version")
    up = latest("uptime")
    assert re.fullmatch(rb"\d+ seconds", up.payload), up
    assert number("clients/connected") >= 1
    # Periodic: a fresh round within sys_interval (plus slack) shows the work done.
    before = {n: number(n) for n in SYS_NUMERIC}
    pub = client(b, "sys-pub")
    sub = client(b, "sys-sub")
    sub.subscribe([("sys/t", 1)])
    for i in range(5):
        pub.publish("sys/t", b"x" * 100, 1)
    sub.wait_messages(5)
    old = b.kill_topicd("sys/t")
    b.wait_topicd("sys/t", not_pid=old)
    mark = time.monotonic()
    s.wait(lambda: number("topicd/restarts", mark) is not None
           and number("topicd/restarts", mark) >= before["topicd/restarts"] + 1, 1 + SLACK,
           "$SYS/broker/topicd/restarts to count the restart")
    assert number("messages/received", mark) >= before["messages/received"] + 5
    assert number("messages/sent", mark) >= before["messages/sent"] + 5
    assert number("bytes/received", mark) >= before["bytes/received"] + 500
    assert number("bytes/sent", mark) >= before["bytes/sent"] + 500
    assert number("clients/connected", mark) >= 3
    assert number("topics/count", mark) >= 1
    first_up = int(up.payload.split()[0])
    s.wait(lambda: any(m.topic == "$SYS/broker/uptime" and int(m.payload.split()[0]) > first_up
                       for m in s.messages), 1 + SLACK, "the uptime to grow past %d s" % first_up)
    assert all(not m.retain for m in s.messages if m.at >= mark)


# ---------------------------------------------------------------- one topic space with JSON-lines

def test_mqtt_publish_reaches_json_consumers_with_the_payload_rules(mqtt_broker):
    cons = mqtt_broker.consumer("xp-json")
    cons.subscribe("xp/m")
    pub = client(mqtt_broker, "xp-pub")
    sent = [b"plain text", "h\u00e9llo \u2713".encode(), b"\xff\xfe\x00\x01", b"",
            b'{"a":1}', b"42"]
    for p in sent:
        pub.publish("xp/m", p, 1)
    cons.wait_messages(len(sent), "xp/m")
    cons.settle()
    objs = [json.loads(d.raw) for d in cons.deliveries]
    # Valid UTF-8 arrives as a JSON string (also when it looks like JSON:
    # it was not published as JSON); other bytes as base64.
    assert [o["msg"] for o in objs] == ["plain text", "h\u00e9llo \u2713",
                                        base64.b64encode(b"\xff\xfe\x00\x01").decode(),
                                        "", '{"a":1}', "42"]
    assert [o.get("encoding") for o in objs] == [None, None, "base64", None, None, None]
    for q in (0, 2):
        pub.publish("xp/m", b"at qos %d" % q, q)
        cons.wait_message("at qos %d" % q, "xp/m")
    cons.settle()
    assert not cons.errors and not cons.duplicates, (cons.errors, cons.duplicates)


def test_json_publish_reaches_mqtt_subscribers_with_the_payload_rules(mqtt_broker):
    r = receiver(mqtt_broker, "xj-sub", [("xj/t", 2)])
    ms = MosquittoSub(mqtt_broker.mqtt_port, ["xj/t"], 1)
    ms.wait_subscribed()
    values = ["text", "h\u00e9llo \u2713", "", {"a": [1, 2, {"b": None}], "c": "d"}, 42, 3.5,
              True, None, [], "{\"looks\": \"like json\"}", 2 ** 64 + 1, {"n": -(2 ** 80)}]
    jp = mqtt_broker.publisher()
    for v in values:
        jp.publish("xj/t", v)
    r.wait_count(len(values))
    got = r.payloads()
    for v, p in zip(values, got):
        if isinstance(v, str):
            assert p == v.encode("utf-8"), (v, p)
        else:
            assert json.loads(p.decode("utf-8")) == v, (v, p)
    assert [m.payload for m in ms.wait_messages(len(values))] == got
    r.settle()
    assert not r.errors and not r.duplicates


def test_json_sub_accepts_mqtt_topic_filters(mqtt_broker):
    cons = mqtt_broker.consumer("jf-cons")
    cons.subscribe("jf/+/temp")
    cons.subscribe("jf2/#")
    witness = mqtt_broker.consumer("jf-witness")
    witness.subscribe("jf/b/hum")
    pub = client(mqtt_broker, "jf-pub")
    pub.publish("jf/a/temp", b"A", 1)
    pub.publish("jf/b/hum", b"not matched", 1)
    pub.publish("jf2/x/y", b"deep", 1)
    mqtt_broker.publisher().publish("jf/c/temp", "C")
    cons.wait_message("A", "jf/a/temp")
    cons.wait_message("deep", "jf2/x/y")
    cons.wait_message("C", "jf/c/temp")
    witness.wait_message("not matched", "jf/b/hum")
    cons.pump_for(QUIET)
    cons.settle()
    assert sorted((d.topic, d.msg) for d in cons.deliveries) == \
        [("jf/a/temp", "A"), ("jf/c/temp", "C"), ("jf2/x/y", "deep")]
    assert not cons.errors, cons.errors


def test_dead_letter_topic_can_be_read_over_mqtt(mqtt_broker):
    r = receiver(mqtt_broker, "dlq-mqtt", [(DLQ, 1)])
    jp = mqtt_broker.publisher()
    jp.send_line("this is not json")
    jp.expect("INVALID JSON")
    r.wait_count(1)
    a = r.arrivals[0]
    assert a.topic == DLQ
    rec = json.loads(a.payload.decode("utf-8"))
    check_dead_letter(rec, "invalid_json", ports=[mqtt_broker.publisher_port, jp.local_port],
                      msg="this is not json")


def test_publish_to_a_reserved_topic_is_acknowledged_once_dead_lettered(mqtt_broker):
    """MQTT 3.1.1 cannot say why: a PUBACK (QoS 1), or a PUBREC whose
    PUBREL gets its PUBCOMP (QoS 2), once the dead letter is stored."""
    r = receiver(mqtt_broker, "dlq-reserved", [(DLQ, 1)])
    c = connected_client(mqtt_broker.mqtt_port, "reserved-pub")
    c.publish("$own/x", b"kept", 1)              # waits for the PUBACK
    c.publish("$own/y", b"kept 2", 2)            # PUBREC, PUBREL, PUBCOMP
    r.wait_count(2)
    recs = [json.loads(a.payload.decode("utf-8")) for a in r.arrivals]
    assert [(d["reason"], d["topic"], d["msg"]) for d in recs] == [
        ("reserved_topic", "$own/x", "kept"), ("reserved_topic", "$own/y", "kept 2")]


def test_a_v5_publish_to_a_reserved_topic_is_acknowledged_with_0x90(mqtt_broker):
    """MQTT 5.0 says why: PUBACK or PUBREC 0x90 (Topic Name invalid), once
    the dead letter is stored; after a PUBREC of 0x90 the exchange is
    over (no PUBREL, 4.3.3)."""
    r = receiver(mqtt_broker, "dlq-reserved5", [(DLQ, 1)])
    c = V5Client(mqtt_broker.mqtt_port)
    c.connect5_ok("reserved-pub5")
    assert c.publish5("$own/x", b"kept", qos=1).rc == 0x90
    assert c.publish5("$SYS/y", b"kept 2", qos=2).rc == 0x90
    r.wait_count(2)
    recs = [json.loads(a.payload.decode("utf-8")) for a in r.arrivals]
    assert [(d["reason"], d["topic"], d["msg"]) for d in recs] == [
        ("reserved_topic", "$own/x", "kept"), ("reserved_topic", "$SYS/y", "kept 2")]
    assert c.publish5("ok/t", b"fine", qos=2).rc == 0        # the connection goes on


def test_a_dead_letter_topic_of_any_name_is_written_by_the_broker_only(mqtt_factory):
    """dead_letter_topic deadLetterChan (the original broker's name): a
    client's publish there, MQTT or JSON-lines, is not taken as a dead
    letter; it is dead-lettered itself (reason reserved_topic, its bytes
    in msg), and the JSON-lines publisher is answered UNKNOWN COMMAND."""
    b = mqtt_factory({"dead_letter_topic": "deadLetterChan"})
    r = receiver(b, "dlc-watch", [("deadLetterChan", 1)])
    c = connected_client(b.mqtt_port, "dlc-pub")
    c.publish("deadLetterChan", b'{"reason":"forged"}', 1)
    jp = b.publisher()
    jp.send_json({"type": "PUB", "topic": "deadLetterChan", "msg": "forged too"})
    jp.expect("UNKNOWN COMMAND")
    r.wait_count(2)
    recs = [json.loads(a.payload.decode("utf-8")) for a in r.arrivals]
    assert [(d["reason"], d["topic"], d["msg"]) for d in recs] == [
        ("reserved_topic", "deadLetterChan", '{"reason":"forged"}'),
        ("reserved_topic", "deadLetterChan", "forged too")], recs


def test_unsubscribe_forgets_deliveries_that_will_never_be_acknowledged(mqtt_factory):
    b = mqtt_factory({"max_inflight_messages": 2})
    c = connected_client(b.mqtt_port, "forgets")
    assert c.subscribe([("fg/a", 1), ("fg/b", 1)]) == [1, 1]
    pub = client(b, "fg-pub")
    pub.publish("fg/a", b"a0", 1)
    pub.publish("fg/a", b"a1", 1)
    got = [c.expect(PUBLISH) for _ in range(2)]     # the window is full, unacknowledged
    assert [p.payload for p in got] == [b"a0", b"a1"]
    c.unsubscribe(["fg/a"])
    pub.publish("fg/b", b"b0", 1)
    assert c.expect(PUBLISH).payload == b"b0", "the forgotten deliveries still hold the window"
