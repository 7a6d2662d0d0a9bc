"""SIGKILL with MQTT clients: nothing a publisher was told is stored
(PUBACK, PUBREC/PUBCOMP) may be lost; QoS 1 arrives at least once, QoS 2
exactly once as a QoS 2 receiver counts (mqtt_helpers.Receiver), and
first arrivals keep the publish order.

The random choices come from FAULT_SEED (printed; set it to replay)."""

import collections
import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest

from broker_harness import HarnessError, kill_pid, preload_shim, wait_for
from mqtt_helpers import (CONNECT, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBSCRIBE, Receiver,
                          ack_packet, connect_retry, connected_client, delivery_problems,
                          publish_packet)
from mqtt5_helpers import V5Client, ack5, disconnect5, props, unsubscribe5

FAULT_CONFIG = {
    "restart_backoff_min": 0.05,
    "restart_backoff_max": 0.2,
    "crash_window": 60,
    "max_queued_messages": 100000,
}
REPLY_TIMEOUT = 10.0
DRAIN_TIMEOUT = 20.0
Q1, Q2 = "fk/q1", "fk/q2"


@pytest.fixture
def rng():
    seed = int(os.environ.get("FAULT_SEED", time.time_ns() % 2**32))
    print("FAULT_SEED=%d" % seed)
    return random.Random(seed)


class MqttStreamer(threading.Thread):
    """Publishes QoS 1 to Q1 and QoS 2 to Q2, alternately, one exchange at
    a time, as a persistent session (clean_session 0) that behaves as the
    specification asks of a client: when the connection is lost it
    reconnects and resends the PUBLISH in flight with DUP set and the same
    packet id, or the PUBREL if the PUBREC had come.  acked: payloads whose
    PUBACK or PUBREC arrived (the broker has stored them); completed:
    whole exchanges (PUBACK or PUBCOMP).  sizes: payload sizes taken in
    turn (each payload starts with its topic and number); none: short
    ones."""

    def __init__(self, broker, client_id, n, reconnect=False, sizes=None):
        super().__init__(name="mqtt-streamer-" + client_id, daemon=True)
        self.broker, self.client_id, self.n, self.reconnect = broker, client_id, n, reconnect
        self.sizes = sizes
        self.published = {Q1: [], Q2: []}
        self.acked = set()
        self.completed = 0
        self.reconnects = 0
        self.error = None
        self.lock = threading.Lock()
        self.client = None
        self.stage, self.sends = "publish", 0

    def _connect(self):
        self.client, ack = connect_retry(lambda: self.broker.mqtt_port, self.client_id,
                                         clean=False, timeout=30.0, keepalive=30)
        return ack

    def _exchange(self, topic, qos, payload, pid):
        """Runs one exchange on from self.stage ("publish" or "pubrel")."""
        c = self.client
        if self.stage == "publish":
            c.send(publish_packet(topic, payload, qos, pid, dup=self.sends > 0))
            self.sends += 1
            c.expect(PUBACK if qos == 1 else PUBREC, REPLY_TIMEOUT, pid=pid)
            with self.lock:
                self.acked.add(payload)
            if qos == 1:
                return
            self.stage = "pubrel"
        c.send(ack_packet(PUBREL, pid))
        c.expect(PUBCOMP, REPLY_TIMEOUT, pid=pid)

    def run(self):
        try:
            self._connect()
            pid = 0
            for i in range(self.n):
                topic, qos = (Q1, 1) if i % 2 == 0 else (Q2, 2)
                payload = b"%s-%d" % (topic.encode(), i // 2)
                if self.sizes:
                    size = self.sizes[i % len(self.sizes)]
                    payload += bytes(range(256)) * (size // 256 + 1)
                    payload = payload[:size]
                pid = pid % 65535 + 1
                with self.lock:
                    self.published[topic].append(payload)
                self.stage, self.sends = "publish", 0
                while True:
                    try:
                        self._exchange(topic, qos, payload, pid)
                        break
                    except (OSError, HarnessError) as e:
                        lost = isinstance(e, OSError) or self.client.peer_closed
                        if not (self.reconnect and lost):
                            raise
                        self.client.close()
                        self.reconnects += 1
                        self._connect()
                with self.lock:
                    self.completed += 1
        except BaseException as e:          # reported by finish()
            self.error = e

    def progress(self):
        with self.lock:
            return self.completed

    def finish(self, timeout=60.0):
        self.join(timeout)
        assert not self.is_alive(), "publisher %s did not finish" % self.client_id
        if self.error is not None:
            raise AssertionError("publisher %s (%d completed, %d reconnects): %r"
                                 % (self.client_id, self.completed, self.reconnects,
                                    self.error))
        if self.client is not None:
            self.client.close()


def kill_everything(b):
    """SIGKILL every topicd and the master, then waits for them to be gone."""
    pids = list(b.topicds())
    for p in pids:
        kill_pid(p)
    left = b.kill9()
    for p in left:
        kill_pid(p)
    b.wait_topicds_gone(set(pids) | left)


def drain_and_verify(r, s, label):
    """Waits until every published message has arrived and no QoS 2
    exchange is open, then checks: every acknowledged message delivered,
    QoS 2 ones exactly once, first arrivals in publish order, each at the
    QoS of its subscription.  A failure lists the packets that concern
    the messages and packet ids in question."""
    want = set(s.published[Q1]) | set(s.published[Q2])
    problems = []
    try:
        r.wait_until(lambda: want <= set(r.payloads()), DRAIN_TIMEOUT, "every message")
    except HarnessError:
        problems.append("not every message arrived within %.0f s" % DRAIN_TIMEOUT)
    try:
        r.settle()
    except HarnessError:
        problems.append("QoS 2 exchanges left open (PUBREC sent, no PUBREL came): packet ids %s"
                        % list(r.awaiting_rel))
    r.stop()
    with r.lock:
        q1, q2 = r.payloads(Q1), r.payloads(Q2)
        problems += ["QoS 1: " + p for p in delivery_problems(s.published[Q1], s.acked, q1,
                                                              exactly_once=False)]
        problems += ["QoS 2: " + p for p in delivery_problems(s.published[Q2], s.acked, q2,
                                                              exactly_once=True)]
        problems += ["protocol error: %s" % e for e in r.errors[:10]]
        problems += ["arrived at QoS %d: %r" % (a.qos, a) for a in r.arrivals
                     if a.qos != (1 if a.topic == Q1 else 2)][:5]
        if not problems:
            return
        counts = collections.Counter(q1 + q2)
        suspects = [m for m in want if counts[m] != 1 and (m in q2 or m not in q1)]
        pids = set(r.awaiting_rel) | {a.pid for a in r.arrivals + r.duplicates
                                      if a.payload in suspects}
        lines = ["#%d %s %s" % t for t in r.trace
                 if any(repr(m) in t[2] for m in suspects) or
                 any(t[2].endswith(" %d" % p) or " pid %d " % p in t[2] for p in pids)]
    pytest.fail("%s: published %d + %d, %d reconnects of the publisher; arrivals %d, QoS 2 "
                "repeats %d:\n  %s\npackets at the subscriber about %s and packet ids %s "
                "(connection, direction, packet):\n    %s"
                % (label, len(s.published[Q1]), len(s.published[Q2]), s.reconnects,
                   len(r.arrivals), len(r.duplicates), "\n  ".join(problems),
                   suspects[:10], sorted(pids)[:20], "\n    ".join(lines[-40:])),
                pytrace=False)


def subscriber(b, client_id):
    r = Receiver(lambda: b.mqtt_port, client_id, clean=False)
    assert not r.connect().session_present
    assert r.subscribe([(Q1, 1), (Q2, 2)]) == [1, 2]
    return r


def test_offline_persistent_session_gets_every_acknowledged_message_after_sigkill(mqtt_factory):
    n = 80
    b = mqtt_factory(FAULT_CONFIG)
    r = subscriber(b, "fk-offline")
    r.disconnect()
    s = MqttStreamer(b, "fk-pub-a", n)
    s.start()
    s.finish()
    assert len(s.acked) == n and s.completed == n
    kill_everything(b)
    b.start(keep_ports=True)
    assert r.connect().session_present, "the session did not survive SIGKILL"
    r.start()
    drain_and_verify(r, s, "offline subscriber, SIGKILL of the master and every topicd")


def stream_across_master_kills(b, r, s, ats):
    """Starts streamer s and SIGKILLs the master (and with it every
    topicd) once s has completed each number of exchanges in ats,
    restarting it and reconnecting subscriber r each time; then lets s
    finish.  Returns the progress at each kill."""
    s.start()
    after = 0           # progress when the last master died
    killed_at = []
    for at in ats:
        # The publisher may be past `at` already, waiting to reconnect:
        # each master is killed only after an exchange went through it
        # (the one in flight may still complete from what the last
        # master's answer left in the socket).
        at = max(at, after + 2)
        wait_for(lambda: s.progress() >= at or not s.is_alive(), 60,
                 "the publisher to complete %d exchanges" % at)
        assert s.is_alive(), "the stream ended before the kill (error: %r)" % s.error
        left = b.kill9()
        after = s.progress()
        killed_at.append(after)
        wait_for(lambda: r.disconnected, 10, "the subscriber to see its connection close")
        b.wait_topicds_gone(left)
        b.start(keep_ports=True)
        assert r.reconnect().session_present, "the session did not survive SIGKILL"
    s.finish()
    assert s.reconnects >= len(ats) and s.completed == s.n
    return killed_at


def test_online_subscriber_across_master_sigkills_mid_stream(mqtt_factory, rng):
    n, kills = 300, 3
    b = mqtt_factory(FAULT_CONFIG)
    r = subscriber(b, "fk-online")
    r.start()
    s = MqttStreamer(b, "fk-pub-b", n, reconnect=True)
    killed_at = stream_across_master_kills(b, r, s, sorted(rng.sample(range(20, n - 40), kills)))
    drain_and_verify(r, s, "master SIGKILLed after %s exchanges" % killed_at)


def test_online_subscriber_across_topicd_sigkills_mid_stream(mqtt_factory, rng):
    n = 240
    b = mqtt_factory(FAULT_CONFIG)
    r = subscriber(b, "fk-topicd")
    r.start()
    s = MqttStreamer(b, "fk-pub-c", n)
    s.start()
    for topic in (Q1, Q2, Q1, Q2):
        at = s.progress() + rng.randint(10, 40)
        wait_for(lambda: s.progress() >= at or not s.is_alive(), 60,
                 "the publisher to complete %d exchanges" % at)
        assert s.is_alive(), "the stream ended before the kill (error: %r)" % s.error
        old = b.kill_topicd(topic)
        b.wait_topicd(topic, not_pid=old)
    s.finish()
    assert s.completed == n
    drain_and_verify(r, s, "topicds SIGKILLed mid-stream")
    # The kills were from outside: the master killed nothing, and said
    # only that each topicd was killed (not "channel error; killing it").
    assert "; killing it" not in b.log_text(), b.log_tail()


def test_large_messages_across_topicd_sigkills_mid_stream(mqtt_factory, rng):
    """As above with payloads of 64 KiB and more: their bodies cross
    between master and topicd in shared rings, a dead topicd's slots
    still referenced from deliveries in the sockets and from the
    subscriber's output."""
    n = 90
    b = mqtt_factory(FAULT_CONFIG)
    r = subscriber(b, "fk-topicd-big")
    r.start()
    s = MqttStreamer(b, "fk-pub-big", n, sizes=[64 * 1024, 100 * 1024, 200 * 1024, 64 * 1024 + 1])
    s.start()
    for topic in (Q1, Q2, Q1):
        at = s.progress() + rng.randint(5, 20)
        wait_for(lambda: s.progress() >= at or not s.is_alive(), 60,
                 "the publisher to complete %d exchanges" % at)
        assert s.is_alive(), "the stream ended before the kill (error: %r)" % s.error
        old = b.kill_topicd(topic)
        b.wait_topicd(topic, not_pid=old)
    s.finish()
    assert s.completed == n
    drain_and_verify(r, s, "topicds SIGKILLed mid-stream of large messages")
    # The kills were from outside: the master killed nothing, and said
    # only that each topicd was killed (not "channel error; killing it").
    assert "; killing it" not in b.log_text(), b.log_tail()


def test_large_messages_across_master_sigkills_mid_stream(mqtt_factory, rng):
    """The master's ring to each topicd dies with it, and the topicds'
    rings to it: nothing acknowledged is lost, QoS 2 comes once, and
    every payload arrives whole."""
    n, kills = 80, 2
    b = mqtt_factory(FAULT_CONFIG)
    r = subscriber(b, "fk-master-big")
    r.start()
    s = MqttStreamer(b, "fk-pub-mbig", n, reconnect=True,
                     sizes=[64 * 1024, 20 * 1024, 250 * 1024, 16 * 1024])
    killed_at = stream_across_master_kills(b, r, s, sorted(rng.sample(range(10, n - 20), kills)))
    drain_and_verify(r, s, "master SIGKILLed after %s exchanges of large messages" % killed_at)


def next_exchange(c, payload):
    """The next packet c gets is the QoS 2 PUBLISH of payload, sent once;
    its exchange is completed."""
    p = c.read_packet()
    assert (p.type, p.payload, p.dup) == (PUBLISH, payload, False), p
    c.send(ack_packet(PUBREC, p.pid))
    c.expect(PUBREL, pid=p.pid)
    c.send(ack_packet(PUBCOMP, p.pid))


def test_qos2_pubcomp_before_the_topicd_stored_the_pubrec(mqtt_factory):
    """The PUBREL goes at the subscriber's PUBREC, before its topicd has
    the PUBREC stored; the PUBCOMP waits in the master until it has.  The
    topicd is stopped (SIGSTOP) across the whole exchange, then
    SIGKILLed, so that it never stored the PUBREC and sends the message
    again when restarted: the session does not get it again, neither
    before the next message nor after a reconnect."""
    b = mqtt_factory(FAULT_CONFIG)
    topic = "fk/stopped"
    c = connected_client(b.mqtt_port, "fk-stop", clean=False)
    assert c.subscribe([(topic, 2)]) == [2]
    pub = connected_client(b.mqtt_port, "fk-stop-pub")
    pub.publish(topic, b"once", 2)
    p = c.expect(PUBLISH)
    assert p.payload == b"once"
    td = b.wait_topicd(topic)
    os.kill(td, signal.SIGSTOP)
    try:
        c.send(ack_packet(PUBREC, p.pid))
        c.expect(PUBREL, pid=p.pid)         # from the master: the topicd is stopped
        c.send(ack_packet(PUBCOMP, p.pid))
        c.ping()                            # the PUBCOMP was read
    finally:
        kill_pid(td)
    b.wait_topicd(topic, not_pid=td)
    pub.publish(topic, b"after", 2)         # a topicd resends before it sends new ones
    next_exchange(c, b"after")
    c.disconnect()
    c.expect_closed()
    c = connected_client(b.mqtt_port, "fk-stop", clean=False)
    pub.publish(topic, b"reconnected", 2)
    next_exchange(c, b"reconnected")


def test_qos0_deliveries_are_not_sent_again_after_a_topicd_sigkill(mqtt_factory):
    """A QoS 0 subscriber's cursor is stored with the topicd's next batch,
    or within a second: a topicd SIGKILLed just after sending starts again
    from the cursor it stored.  QoS 0 is at most once: the session drops
    what it had, and gets what comes after.  Three rounds, each killing
    the topicd as soon as the subscriber has every message."""
    b = mqtt_factory(FAULT_CONFIG)
    topic = "fk/q0"
    sub = connected_client(b.mqtt_port, "fk-q0-sub", clean=False)
    assert sub.subscribe([(topic, 0)]) == [0]
    pub = connected_client(b.mqtt_port, "fk-q0-pub")
    got = []
    n = 0
    for _ in range(3):
        for _ in range(50):
            pub.publish(topic, b"%d" % n, 1)
            n += 1
        while len(got) < n:
            got.append(sub.expect(PUBLISH).payload)
        old = b.kill_topicd(topic)
        b.wait_topicd(topic, not_pid=old)
    pub.publish(topic, b"last", 1)
    while not got or got[-1] != b"last":
        got.append(sub.expect(PUBLISH).payload)
    assert got == [b"%d" % i for i in range(n)] + [b"last"]


def test_a_restarted_topicd_does_not_resend_on_the_same_connection(mqtt_factory):
    """An MQTT 5.0 client has a QoS 1 delivery it has not acked when its
    topicd is SIGKILLed: the restarted topicd sends it again, but the
    client has it on this connection and MQTT resends only on a reconnect
    (4.4.0-1): it does not come twice.  Its PUBACK then completes it, and
    the next message comes."""
    b = mqtt_factory(FAULT_CONFIG)
    topic = "fk/same"
    c = V5Client(b.mqtt_port, name="fk-same")
    c.connect5_ok("fk-same")
    assert c.subscribe5([(topic, 1)]).codes == [1]
    pub = connected_client(b.mqtt_port, "fk-same-pub")
    pub.publish(topic, b"once", 1)
    m = c.next5(PUBLISH)
    old = b.kill_topicd(topic)
    b.wait_topicd(topic, not_pid=old)
    pub.publish(topic, b"after", 1)         # the new topicd is attached and sends
    n = c.next5(PUBLISH)
    assert n.payload == b"after", n
    c.send(ack5(PUBACK, m.pid))
    c.send(ack5(PUBACK, n.pid))
    pub.publish(topic, b"next", 1)
    assert c.next5(PUBLISH).payload == b"next"


def test_a_subscription_undone_while_its_topicd_restarts_leaves_no_cursor(mqtt_factory):
    """A persistent session subscribes to a topic and unsubscribes while
    the topic's topicd waits out its restart back-off: an offline ATTACH
    and then an UNSUB wait for it, and go in that order (the UNSUB went
    first before, which left a cursor no filter owns, keeping every later
    message for no one).  The session then ends; its topic has no
    subscriber and keeps nothing."""
    b = mqtt_factory(dict(FAULT_CONFIG, restart_backoff_min=3, restart_backoff_max=3))
    topic = "fk/undone"
    pub = connected_client(b.mqtt_port, "fk-undone-pub")
    pub.publish(topic, b"first", 1)
    old = b.kill_topicd(topic)
    wait_for(lambda: b.status()[1][topic]["state"] == "restarting", 10,
             "the master to see the topicd die")
    c = connected_client(b.mqtt_port, "fk-undone", clean=False)
    assert c.subscribe([(topic, 1)]) == [1]
    c.unsubscribe([topic])
    c.disconnect()
    b.wait_topicd(topic, timeout=15, not_pid=old)
    connected_client(b.mqtt_port, "fk-undone", clean=True).disconnect()
    for i in range(5):
        pub.publish(topic, b"%d" % i, 1)
    st = b.topicd_status(topic)
    assert (st["subs"], st["lag"]) == (0, 0), st


def test_qos2_staged_for_a_session_that_ended_meanwhile_is_released(mqtt_factory):
    """A persistent session's QoS 2 publish is staged while its topicd is
    stopped; before the topicd answers, the client leaves and comes back
    with a clean session, which ends the old one.  No record of the
    session names the staged message, so the master releases it when the
    topicd answers: the topic's subscriber gets it (the publisher was told
    nothing, so once is right), rather than it staying staged for ever."""
    b = mqtt_factory(FAULT_CONFIG)
    topic = "fk/orphan"
    sub = connected_client(b.mqtt_port, "fk-orphan-sub")
    assert sub.subscribe([(topic, 1)]) == [1]
    warm = connected_client(b.mqtt_port, "fk-orphan-warm")
    warm.publish(topic, b"warm", 1)
    w = sub.expect(PUBLISH)
    assert w.payload == b"warm"
    sub.send(ack_packet(PUBACK, w.pid))
    td = b.wait_topicd(topic)
    os.kill(td, signal.SIGSTOP)
    try:
        pub = connected_client(b.mqtt_port, "fk-orphan", clean=False)
        pub.send(publish_packet(topic, b"staged", 2, 7))
        pub.ping()                          # the PUBLISH was read, and is held
        pub.close()
        again = connected_client(b.mqtt_port, "fk-orphan", clean=True)
        again.ping()                        # the old session has ended
        again.disconnect()
    finally:
        os.kill(td, signal.SIGCONT)
    m = sub.expect(PUBLISH, timeout=REPLY_TIMEOUT)
    assert m.payload == b"staged", m


def test_qos2_pubrel_owed_after_a_reconnect_and_a_topicd_sigkill(mqtt_factory):
    """An MQTT 5.0 session with Receive Maximum 1 PUBRECs a QoS 2 delivery
    while its topicd is stopped, gets the PUBREL and leaves before its
    PUBCOMP; the topicd is SIGKILLed before it stored the PUBREC.  Back,
    the session is owed the PUBREL: it gets it (the restarted topicd sends
    the message again, which the master answers without sending it), and
    the exchange in its window ends with its PUBCOMP, so the next message
    comes."""
    b = mqtt_factory(FAULT_CONFIG)
    topic = "fk/owed"
    cprops = props(CONNECT, SessionExpiryInterval=300, ReceiveMaximum=1)
    c = V5Client(b.mqtt_port, name="fk-owed")
    c.connect5_ok("fk-owed", clean=False, cprops=cprops)
    assert c.subscribe5([(topic, 2)]).codes == [2]
    pub = connected_client(b.mqtt_port, "fk-owed-pub")
    pub.publish(topic, b"first", 2)
    p = c.next5(PUBLISH)
    td = b.wait_topicd(topic)
    os.kill(td, signal.SIGSTOP)
    try:
        c.send(ack5(PUBREC, p.pid))
        c.expect(PUBREL, pid=p.pid)
        c.send(disconnect5())
        c.expect_closed()
    finally:
        kill_pid(td)
    b.wait_topicd(topic, not_pid=td)
    c = V5Client(b.mqtt_port, name="fk-owed-2")
    assert c.connect5_ok("fk-owed", clean=False, cprops=cprops).session_present
    c.expect(PUBREL, pid=p.pid)
    c.send(ack5(PUBCOMP, p.pid))
    pub.publish(topic, b"second", 2)
    m = c.next5(PUBLISH)
    assert (m.payload, m.dup) == (b"second", False), m
    c.send(ack5(PUBREC, m.pid))
    c.expect(PUBREL, pid=m.pid)
    c.send(ack5(PUBCOMP, m.pid))
    assert not [q for q in c.received if q.type == PUBLISH and q.payload == b"first"]


def test_retained_message_survives_sigkill(mqtt_factory):
    b = mqtt_factory(FAULT_CONFIG)
    c, _ = connect_retry(lambda: b.mqtt_port, "fk-retain", clean=True)
    c.publish("fk/retained", b"kept", 1, retain=True)
    c.publish("fk/cleared", b"old", 2, retain=True)
    c.publish("fk/cleared", b"", 1, retain=True)
    c.close()
    kill_everything(b)
    b.start(keep_ports=True)
    r = Receiver(lambda: b.mqtt_port, "fk-retain-sub", clean=True)
    r.connect()
    assert r.subscribe([("fk/+", 1)]) == [1]
    r.wait_payload(b"kept")
    c2, _ = connect_retry(lambda: b.mqtt_port, "fk-retain-2", clean=True)
    c2.publish("fk/cleared", b"new", 1)
    r.wait_payload(b"new", "fk/cleared")
    assert [(a.topic, a.payload, a.retain) for a in r.arrivals] == \
        [("fk/retained", b"kept", True), ("fk/cleared", b"new", False)]


def journal_nearly_full(monkeypatch, tmp_path, binary, room):
    """Makes a broker started from now on meet a nearly full disk in its
    session store while the returned flag file exists: a journal write of
    more than room bytes fails with ENOSPC (tests/fault/journal_full.c,
    preloaded)."""
    preload_shim(monkeypatch, tmp_path, binary, Path(__file__).with_name("journal_full.c"))
    flag = tmp_path / "journal-full"
    monkeypatch.setenv("JOURNAL_FULL_FLAG", str(flag))
    monkeypatch.setenv("JOURNAL_FULL_ROOM", str(room))
    return flag


def test_unsubscribe_not_stored_keeps_the_subscription_options(mqtt_factory, tmp_path,
                                                                monkeypatch):
    """An UNSUBSCRIBE the disk has no room for (no UNSUBACK), then SIGKILL:
    the subscription is still there after the restart, and so are the
    options its SUBACK confirmed (here its Subscription Identifier).  The
    end of the options and the session's record are one write: a small
    write of the options alone fits where the record does not."""
    b = mqtt_factory(FAULT_CONFIG, start=False)
    flag = journal_nearly_full(monkeypatch, tmp_path, b.binary, 1024)
    b.start()
    cprops = props(CONNECT, SessionExpiryInterval=3600)
    c = V5Client(b.mqtt_port, name="fk-opts")
    c.connect5_ok("fk-opts", clean=False, cprops=cprops)
    # A record larger than the room left: 30 filters of 100 bytes.
    pad = [("fk/pad/%02d/" % i + "x" * 90, 1) for i in range(30)]
    assert c.subscribe5(pad).codes == [1] * len(pad)
    assert c.subscribe5([("fk/opts", 1)], props(SUBSCRIBE, SubscriptionIdentifier=7)).codes == [1]
    flag.touch()
    c.send(unsubscribe5(c.alloc_pid(), ["fk/opts"]))
    wait_for(lambda: "the disk is full" in b.log_text(), 10, "the store to meet the full disk")
    kill_everything(b)
    flag.unlink()
    b.start(keep_ports=True)
    c = V5Client(b.mqtt_port, name="fk-opts-2")
    assert c.connect5_ok("fk-opts", clean=False, cprops=cprops).session_present
    pub, _ = connect_retry(lambda: b.mqtt_port, "fk-opts-pub", clean=True)
    pub.publish("fk/opts", b"with its id", 1)
    m = c.next5(PUBLISH)
    c.send(ack5(PUBACK, m.pid))
    assert m.payload == b"with its id"
    assert m.props.get("SubscriptionIdentifier") == [7], m.props
