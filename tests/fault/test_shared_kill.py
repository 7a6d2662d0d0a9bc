"""Shared subscriptions under SIGKILL: a group of two or three MQTT
members ($share/fk/fk/q1 at QoS 1, $share/fk/fk/q2 at QoS 2) while a
publisher streams, and a member's connection, the topicd or the master
dies.  Checked message by message across the members: every message the
publisher was told is stored reaches the group, QoS 1 at least once and
QoS 2 exactly once (counted as an MQTT receiver does: mqtt_helpers.Receiver).

Members are processes of their own (share_member.py, with their state in
a journal they sync before each acknowledgement), stopped and SIGKILLed
and started again; in the other tests they are threads of the test that
drop their connection with a RST.  The random choices come from
FAULT_SEED (printed; set it to replay)."""

import os
import random
import select
import signal
import subprocess
import sys
import time

import pytest

from broker_harness import HarnessError, kill_pid, wait_for
from mqtt_helpers import Receiver, delivery_problems
from test_mqtt_kill import FAULT_CONFIG, Q1, Q2, MqttStreamer

DRAIN_TIMEOUT = 30.0
FILTERS = [("$share/fk/" + Q1, 1), ("$share/fk/" + Q2, 2)]


@pytest.fixture
def rng():
    seed = int(os.environ.get("FAULT_SEED", time.time_ns() % 2**32))
    print("FAULT_SEED=%d" % seed)
    return random.Random(seed)


def member(b, client_id):
    r = Receiver(lambda: b.mqtt_port, client_id, clean=False)
    assert not r.connect().session_present
    assert r.subscribe(FILTERS) == [1, 2]
    r.start()
    return r


def kill_member(r):
    """The member's process dies: RST, no DISCONNECT, nothing acknowledged."""
    r.stop()
    r.client.close(reset=True)


def revive(r):
    with r.lock:
        r.ack = True
    assert r.connect().session_present, "%s: its session is gone" % r.client_id
    r.start()


def stall(r, s):
    """The member stops answering (a hung process) until it has messages
    in flight, so that its death leaves some behind."""
    with r.lock:
        r.ack = False
        mark = len(r.arrivals)
    wait_for(lambda: len(r.arrivals) >= mark + 2 or not s.is_alive(), 30,
             "%s to be sent messages it does not answer" % r.client_id)


def group_payloads(members, topic):
    got = []
    for r in members:
        got += r.payloads(topic)
    return got


def drain_and_verify(members, s, label):
    """Waits until every acknowledged message reached the group and no
    QoS 2 exchange is open at any member, then checks them all together."""
    want = s.acked
    problems = []
    try:
        wait_for(lambda: want <= set(group_payloads(members, Q1) + group_payloads(members, Q2)),
                 DRAIN_TIMEOUT, "every acknowledged message at some member")
    except HarnessError:
        problems.append("not every acknowledged message arrived within %.0f s" % DRAIN_TIMEOUT)
    for r in members:
        try:
            r.settle(DRAIN_TIMEOUT)
        except HarnessError:
            problems.append("%s: QoS 2 exchanges left open: packet ids %s"
                            % (r.client_id, list(r.awaiting_rel)))
        r.stop()
    for topic, once in ((Q1, False), (Q2, True)):
        index = {m: i for i, m in enumerate(s.published[topic])}
        got = sorted(group_payloads(members, topic), key=lambda m: index.get(m, -1))
        problems += ["%s: %s" % (topic, p) for p in
                     delivery_problems(s.published[topic], s.acked, got, exactly_once=once)]
    for r in members:
        problems += ["%s: protocol error: %s" % (r.client_id, e) for e in r.errors[:5]]
        problems += ["%s: %r at QoS %d" % (r.client_id, a.payload, a.qos) for a in r.arrivals
                     if a.qos != (1 if a.topic == Q1 else 2)][:5]
    print("%s: arrivals by member %s, QoS 1 repeats %d, QoS 2 repeats %d" % (
        label, {r.client_id: len(r.arrivals) for r in members},
        len(group_payloads(members, Q1)) - len(set(group_payloads(members, Q1))),
        sum(len(r.duplicates) for r in members)))
    if problems:
        pytest.fail("%s: published %d + %d, acknowledged %d; arrivals by member %s:\n  %s"
                    % (label, len(s.published[Q1]), len(s.published[Q2]), len(s.acked),
                       {r.client_id: len(r.arrivals) for r in members},
                       "\n  ".join(problems)), pytrace=False)
    # The group shared the work: no member got everything.
    assert all(len(r.arrivals) < len(s.acked) for r in members if len(members) > 1)


def wait_progress(s, at):
    wait_for(lambda: s.progress() >= at or not s.is_alive(), 60,
             "the publisher to complete %d exchanges" % at)
    assert s.is_alive(), "the stream ended early (error: %r)" % s.error


def test_group_members_killed_mid_stream(mqtt_factory, rng):
    n = 2000
    b = mqtt_factory(FAULT_CONFIG)
    members = [member(b, "fk-m%d" % i) for i in range(3)]
    s = MqttStreamer(b, "fk-pub-m", n)
    s.start()
    for at in sorted(rng.sample(range(20, n // 4), 4)):
        wait_progress(s, at)
        victim = rng.choice(members)
        stall(victim, s)
        kill_member(victim)
        wait_progress(s, s.progress() + rng.randint(5, 30))
        revive(victim)
    s.finish()
    assert s.completed == n
    drain_and_verify(members, s, "members killed mid-stream")


def test_group_across_topicd_sigkills(mqtt_factory, rng):
    n = 1200                            # ahead of the four kills, whatever their pace
    b = mqtt_factory(FAULT_CONFIG)
    members = [member(b, "fk-t%d" % i) for i in range(2)]
    s = MqttStreamer(b, "fk-pub-t", n)
    s.start()
    for topic in (Q1, Q2, Q2, Q1):
        wait_progress(s, s.progress() + rng.randint(10, 40))
        old = b.kill_topicd(topic)
        b.wait_topicd(topic, not_pid=old)
    s.finish()
    assert s.completed == n
    drain_and_verify(members, s, "topicds SIGKILLed mid-stream")


def test_group_across_master_sigkills(mqtt_factory, rng):
    n, kills = 240, 2
    b = mqtt_factory(FAULT_CONFIG)
    members = [member(b, "fk-k%d" % i) for i in range(2)]
    s = MqttStreamer(b, "fk-pub-k", n, reconnect=True)
    s.start()
    after = 0
    for at in sorted(rng.sample(range(20, n - 40), kills)):
        wait_progress(s, max(at, after + 2))
        left = b.kill9()
        after = s.progress()
        for r in members:
            wait_for(lambda: r.disconnected, 10, "%s to see its connection close" % r.client_id)
        b.wait_topicds_gone(left)
        b.start(keep_ports=True)
        for r in members:
            assert r.reconnect().session_present, "%s: session lost" % r.client_id
    s.finish()
    assert s.completed == n
    drain_and_verify(members, s, "master SIGKILLed mid-stream")


MEMBER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "share_member.py")


class MemberProcess:
    """A share_member.py process and its journal (which outlives it)."""

    def __init__(self, b, client_id, journal):
        self.b, self.client_id, self.journal = b, client_id, journal
        self.proc = None

    def start(self, timeout=30.0):
        args = [sys.executable, MEMBER, str(self.b.mqtt_port), self.client_id,
                str(self.journal)] + ["%s:%d" % f for f in FILTERS]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=open(str(self.journal) + ".err", "a"))
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else b""
        assert line == b"ready\n", "%s did not start: %r (%s)" % (
            self.client_id, line, open(str(self.journal) + ".err").read()[-500:])

    def kill(self):
        kill_pid(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.proc.stdout.close()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.kill()

    def state(self):
        """Arrivals (topic, payload) in order, and the packet ids waiting
        for their PUBREL."""
        arrivals, waiting = [], set()
        with open(str(self.journal)) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 5 and parts[0] == "A":
                    arrivals.append((parts[1], bytes.fromhex(parts[4])))
                    if parts[2] == "2":
                        waiting.add(int(parts[3]))
                elif len(parts) == 2 and parts[0] == "R":
                    waiting.discard(int(parts[1]))
        return arrivals, waiting


def test_group_member_processes_sigkilled(mqtt_factory, rng, tmp_path):
    n = 2000
    b = mqtt_factory(FAULT_CONFIG)
    members = [MemberProcess(b, "fk-p%d" % i, tmp_path / ("member-%d.journal" % i))
               for i in range(3)]
    try:
        for m in members:
            m.start()
        s = MqttStreamer(b, "fk-pub-p", n)
        s.start()
        for at in sorted(rng.sample(range(20, n // 4), 4)):
            wait_progress(s, at)
            victim = rng.choice(members)
            os.kill(victim.proc.pid, signal.SIGSTOP)    # hung: messages pile up
            wait_progress(s, s.progress() + rng.randint(10, 40))
            victim.kill()
            wait_progress(s, s.progress() + rng.randint(5, 30))
            victim.start()
        s.finish()
        assert s.completed == n

        def arrived():
            got = set()
            for m in members:
                got |= {p for _, p in m.state()[0]}
            return s.acked <= got and not any(m.state()[1] for m in members)
        wait_for(arrived, DRAIN_TIMEOUT, "every acknowledged message at a member, and no "
                 "QoS 2 exchange open")
    finally:
        for m in members:
            m.stop()
    problems, repeats = [], {}
    for topic, once in ((Q1, False), (Q2, True)):
        index = {p: i for i, p in enumerate(s.published[topic])}
        got = sorted((p for m in members for t, p in m.state()[0] if t == topic),
                     key=lambda p: index.get(p, -1))
        repeats[topic] = len(got) - len(set(got))
        problems += ["%s: %s" % (topic, p) for p in
                     delivery_problems(s.published[topic], s.acked, got, exactly_once=once)]
    counts = {m.client_id: len(m.state()[0]) for m in members}
    print("member processes SIGKILLed: arrivals by member %s, repeats %s" % (counts, repeats))
    assert not problems, "\n".join(problems)
    assert all(c < len(s.acked) for c in counts.values()), counts


def test_own_and_group_subscriptions_across_topicd_sigkills(mqtt_factory, rng):
    """One session subscribed to the topics by itself and in the group,
    beside a plain member, while the topicds are SIGKILLed: each
    acknowledged message reaches the session by its own subscription and
    the group by one of its members, QoS 2 exactly twice in all."""
    n = 800
    b = mqtt_factory(FAULT_CONFIG)
    both = Receiver(lambda: b.mqtt_port, "fk-both", clean=False)
    assert not both.connect().session_present
    assert both.subscribe([(Q1, 1), (Q2, 2)] + FILTERS) == [1, 2, 1, 2]
    both.start()
    members = [both, member(b, "fk-only")]
    s = MqttStreamer(b, "fk-pub-b", n)
    s.start()
    for topic in (Q2, Q1, Q2):
        wait_progress(s, s.progress() + rng.randint(10, 40))
        old = b.kill_topicd(topic)
        b.wait_topicd(topic, not_pid=old)
    s.finish()
    assert s.completed == n

    def copies(topic):
        got = group_payloads(members, topic)
        return {m: got.count(m) for m in s.published[topic] if m in s.acked}
    wait_for(lambda: all(c >= 2 for t in (Q1, Q2) for c in copies(t).values()),
             DRAIN_TIMEOUT, "two copies of every acknowledged message")
    for r in members:
        r.settle(DRAIN_TIMEOUT)
        r.stop()
    problems = []
    for topic in (Q1, Q2):
        problems += ["%s: %s (own subscription)" % (topic, p) for p in
                     delivery_problems(s.published[topic], s.acked, both.payloads(topic),
                                       exactly_once=False)]
    problems += ["%s: %d copies" % (m, c) for m, c in copies(Q2).items() if c != 2][:20]
    for r in members:
        problems += ["%s: protocol error: %s" % (r.client_id, e) for e in r.errors[:5]]
    print("own and group: arrivals by member %s" % {r.client_id: len(r.arrivals)
                                                     for r in members})
    assert not problems, "\n".join(problems)
    assert members[1].arrivals, "the plain member got none of the group's messages"
