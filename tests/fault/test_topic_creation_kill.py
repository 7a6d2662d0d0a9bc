"""A subscription creates no topic: the first publish does, and gives then
every session whose filters match the topic its cursor.  A master killed
while that first publish waits (unacknowledged) for the new topic's
topicd must not leave the topic without those cursors: the publisher
sends the message again after the restart, is acknowledged, and every
session subscribed before must get it, and what follows.

The new topic's wait is made long here by stopping (SIGSTOP) the topicds
that fill max_topicds; the last test needs no such help.  Its random
choices come from FAULT_SEED (printed; set it to replay)."""

import os
import random
import signal
import threading
import time

import pytest

from broker_harness import HarnessError, kill_pid, process_alive, wait_for
from mqtt_helpers import PUBACK, PUBREC, RawClient, Receiver, connect_retry, publish_packet


@pytest.fixture
def rng():
    seed = int(os.environ.get("FAULT_SEED", time.time_ns() % 2**32))
    print("FAULT_SEED=%d" % seed)
    return random.Random(seed)


CONFIG = {
    "max_topicds": 2,
    "topicd_idle_timeout": 0,
    "restart_backoff_min": 0.05,
    "restart_backoff_max": 0.2,
    "log_type": "information",
}


def persistent(b, client_id, filters):
    r = Receiver(lambda: b.mqtt_port, client_id, clean=False)
    assert not r.connect().session_present
    assert r.subscribe(filters) == [q for _, q in filters]
    r.close()                                   # offline, session kept
    return r


def hold_every_topicd(b, pub):
    """The topicds that may run (max_topicds) are stopped with SIGSTOP:
    they never answer the STOP that would make room, so a new topic waits
    in the queue, its registry entry written but nothing sent to a topicd
    (as a new topic does for a while whenever max_topicds run)."""
    pids = set()
    for topic in ("hold/1", "hold/2"):
        assert pub.publish(topic, b"h", qos=1) is not None
        pids.add(b.wait_topicd(topic))
    for pid in pids:
        kill_pid(pid, signal.SIGSTOP)
    return pids


def first_publish_waits_then_master_killed(b, pub, topic, qos):
    """Publishes the topic's first message, which waits unanswered; once
    the topic's registry entry is durable (a later CONNACK waits for every
    write before it), the master is SIGKILLed."""
    pid = pub.alloc_pid()
    pub.send(publish_packet(topic, b"first", qos=qos, pid=pid))
    pub.ping()                                  # the PUBLISH was read
    c, _ = connect_retry(lambda: b.mqtt_port, "durable-barrier", clean=False)
    c.close()
    assert not [p for p in pub.inbox if p.type in (PUBACK, PUBREC)], \
        "the first publish was answered while no topicd could take it"
    return pid


def restart_and_resend(b, stopped, topic, qos):
    left = b.kill9()
    for pid in stopped:
        kill_pid(pid)                           # SIGKILL reaches a stopped process
    b.wait_topicds_gone(left | stopped)
    b.start(keep_ports=True)
    pub = RawClient(b.mqtt_port, name="creator")
    pub.connect_ok("creator")
    assert pub.publish(topic, b"first", qos=qos) is not None    # now acknowledged
    return pub


def test_first_publish_resent_after_a_master_sigkill_reaches_exact_subscribers(mqtt_factory):
    b = mqtt_factory(CONFIG)
    r1 = persistent(b, "ex-q1", [("new/exact", 1)])
    r2 = persistent(b, "ex-q2", [("new/exact", 2)])
    pub = RawClient(b.mqtt_port, name="creator")
    pub.connect_ok("creator")
    stopped = hold_every_topicd(b, pub)
    first_publish_waits_then_master_killed(b, pub, "new/exact", 1)
    pub.close()
    pub = restart_and_resend(b, stopped, "new/exact", 1)
    pub.publish("new/exact", b"second", qos=1)
    for r in (r1, r2):
        assert r.reconnect().session_present
        r.wait_payload(b"second", timeout=20)
        r.settle()
        # Sent twice at QoS 1: it may come twice.
        assert set(r.payloads("new/exact")) == {b"first", b"second"}, r.describe()


def test_first_publish_resent_after_a_master_sigkill_reaches_wildcards_and_shares(
        mqtt_factory):
    b = mqtt_factory(CONFIG)
    w = persistent(b, "ex-wild", [("new/+", 2)])
    g = persistent(b, "ex-share", [("$share/g/new/shared", 1)])
    pub = RawClient(b.mqtt_port, name="creator")
    pub.connect_ok("creator")
    stopped = hold_every_topicd(b, pub)
    first_publish_waits_then_master_killed(b, pub, "new/shared", 2)
    pub.close()
    restart_and_resend(b, stopped, "new/shared", 1)
    for r in (w, g):
        assert r.reconnect().session_present
        r.wait_payload(b"first", timeout=20)
        r.settle()
        assert set(r.payloads("new/shared")) == {b"first"}, r.describe()
    assert process_alive(b.pid)


class NewTopicStreamer(threading.Thread):
    """Publishes message i, at QoS 1, to topic new/i: each publish makes
    its topic, and waits for the topic's first topicd.  A persistent
    session that behaves as the specification asks: when the connection
    is lost it reconnects and sends the PUBLISH in flight again (DUP, same
    packet id).  acked: the numbers whose PUBACK came."""

    def __init__(self, broker, n):
        super().__init__(name="new-topic-streamer", daemon=True)
        self.broker, self.n = broker, n
        self.acked = []
        self.error = None

    def progress(self):
        return len(self.acked)

    def run(self):
        try:
            c, _ = connect_retry(lambda: self.broker.mqtt_port, "nt-pub", clean=False)
            for i in range(self.n):
                dup = False
                while True:
                    try:
                        c.send(publish_packet("new/%d" % i, b"m%d" % i, qos=1, pid=i + 1,
                                              dup=dup))
                        c.expect(PUBACK, 20, pid=i + 1)
                        break
                    except (OSError, HarnessError, AssertionError):
                        c.close()
                        c, _ = connect_retry(lambda: self.broker.mqtt_port, "nt-pub",
                                             clean=False, timeout=30)
                        dup = True
                self.acked.append(i)
            c.close()
        except Exception as e:              # reported by the test
            self.error = e


def test_first_publishes_across_master_sigkills_reach_offline_sessions(mqtt_factory, rng):
    """Without any help: the master is killed while publishes that make
    new topics go on; every one acknowledged reaches the sessions that
    subscribed to the topics before."""
    n, kills = 40, 4
    b = mqtt_factory(dict(CONFIG, max_topicds=1000))
    filters = [("new/%d" % i, 1) for i in range(n)]
    exact = persistent(b, "nt-exact", filters)
    wild = persistent(b, "nt-wild", [("new/+", 1)])
    s = NewTopicStreamer(b, n)
    s.start()
    for at in sorted(rng.sample(range(2, n - 2), kills)):
        wait_for(lambda: s.progress() >= at or not s.is_alive(), 60,
                 "the publisher to complete %d publishes" % at)
        left = b.kill9()
        b.wait_topicds_gone(left)
        b.start(keep_ports=True)
    s.join(120)
    assert not s.is_alive() and s.error is None, s.error
    assert s.acked == list(range(n))
    for r in (exact, wild):
        assert r.reconnect().session_present
        for i in range(n):
            r.wait_payload(b"m%d" % i, "new/%d" % i, timeout=20)
