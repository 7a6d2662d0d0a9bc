"""SIGKILL under load: nothing a publisher was told is stored (PUBREC) may
be lost, duplicated (as a QoS 2 receiver counts) or reordered.

The random choices come from FAULT_SEED (printed; set it to replay)."""

import json
import os
import random
import signal
import threading
import time

import pytest

from broker_harness import (POLL, ConnectionClosed, Publisher, PublishRefused,
                            check_exactly_once_in_order, wait_for)

FAULT_CONFIG = {
    "retry_interval": 0.5,
    "max_delivery_attempts": 1000,      # retrial must not dead-letter here
    "restart_backoff_min": 0.05,
    "restart_backoff_max": 0.2,
    "crash_window": 60,
}
REPLY_TIMEOUT = 10.0        # a PUB or PUBREL unanswered this long is a failure
AHEAD = 40                  # messages a publisher may be in front of its consumer
DRAIN_TIMEOUT = 60.0        # for every acknowledged message to arrive


@pytest.fixture
def rng():
    seed = int(os.environ.get("FAULT_SEED", time.time_ns() % 2**32))
    print("FAULT_SEED=%d" % seed)
    return random.Random(seed)


class Streamer(threading.Thread):
    """Publishes tag-0, tag-1, ... to a topic, one full exchange at a time,
    until n messages or stop().  Records what was sent and which PUBRECs
    came back.  allow_disconnect: a closed connection ends the stream
    quietly (the master was killed).  pad: appended to every message."""

    def __init__(self, broker, topic, tag, n=None, allow_disconnect=False, consumer=None,
                 pad=""):
        super().__init__(name="streamer-" + tag, daemon=True)
        self.broker, self.topic, self.tag, self.n = broker, topic, tag, n
        self.pad = pad
        self.allow_disconnect = allow_disconnect
        self.consumer = consumer
        self.published = []
        self.acked = set()
        self.refused = []
        self.completed = 0
        self.error = None
        self.disconnected = False
        self._halt = threading.Event()
        self.lock = threading.Lock()

    def stop(self):
        self._halt.set()

    def run(self):
        try:
            pub = Publisher(self.broker.publisher_port, timeout=REPLY_TIMEOUT)
            i = 0
            while (self.n is None or i < self.n) and not self._halt.is_set():
                if self.too_far_ahead():
                    self._halt.wait(POLL)
                    continue
                m = "%s-%d%s" % (self.tag, i, self.pad)
                i += 1
                with self.lock:
                    self.published.append(m)
                try:
                    mid = pub.pub(self.topic, m)
                except PublishRefused as e:
                    self.refused.append((m, e.line))
                    continue
                with self.lock:
                    self.acked.add(m)
                pub.pubrel(mid)
                with self.lock:
                    self.completed += 1
        except (ConnectionClosed, ConnectionError) as e:
            if self.allow_disconnect:
                self.disconnected = True
            else:
                self.error = e
        except BaseException as e:
            self.error = e

    def too_far_ahead(self):
        """Flow control: stay at most AHEAD messages in front of the
        consumer, so that the kills hit both sides of a busy topic and the
        backlog drains in bounded time."""
        if self.consumer is None:
            return False
        prefix = self.tag + "-"
        got = sum(1 for m in self.consumer.messages(self.topic)
                  if isinstance(m, str) and m.startswith(prefix))
        return self.progress() - got > AHEAD

    def finish(self, timeout=REPLY_TIMEOUT * 3):
        self.stop()
        self.join(timeout)
        assert not self.is_alive(), "publisher %s did not finish" % self.tag
        if self.error is not None:
            raise AssertionError("publisher %s (%d sent, %d acked): %r"
                                 % (self.tag, len(self.published), len(self.acked),
                                    self.error))

    def progress(self):
        with self.lock:
            return self.completed


def drain(broker, consumer, topic, tag):
    """Publishes a sentinel and waits until the consumer has it: every
    earlier message of the topic must have come before it."""
    end = "%s-END" % tag
    Publisher(broker.publisher_port, timeout=REPLY_TIMEOUT).publish(topic, end)
    consumer.wait_message(end, topic, timeout=DRAIN_TIMEOUT)
    return end


def verify(consumer, topic, streamers, end, label):
    published = [m for s in streamers for m in s.published] + [end]
    acked = set().union(*(s.acked for s in streamers)) | {end}
    assert not consumer.errors, "%s: protocol errors at the consumer: %s" % (
        label, consumer.errors[:10])
    check_exactly_once_in_order(published, acked, consumer.messages(topic), label)
    refused = [r for s in streamers for r in s.refused]
    return refused


def test_kill_topicd_mid_stream(broker_factory, rng):
    b = broker_factory(FAULT_CONFIG)
    cons = b.consumer("k-cons")
    cons.subscribe("T")
    cons.start()
    s = Streamer(b, "T", "a", n=300, consumer=cons)
    s.start()
    at = rng.randint(80, 220)
    wait_for(lambda: s.progress() >= at or not s.is_alive(), 60,
             "the publisher to complete %d messages" % at)
    assert s.is_alive(), "the stream ended before the kill (error: %r)" % s.error
    old = b.kill_topicd("T")
    b.wait_topicd("T", not_pid=old)
    s.join(120)
    s.finish()
    end = drain(b, cons, "T", "a")
    cons.stop()
    cons.settle()
    assert len(s.acked) >= 300 - 1, "only %d of 300 acknowledged; refused: %s" % (
        len(s.acked), s.refused[:5])
    verify(cons, "T", [s], end, "kill at message %d" % at)


def test_kill_loop_under_load(broker_factory, rng):
    b = broker_factory(FAULT_CONFIG)
    topics = ["L1", "L2"]
    consumers, streamers = {}, {}
    for t in topics:
        c = b.consumer("loop-" + t.lower())
        c.subscribe(t)
        c.start()
        consumers[t] = c
    for t in topics:
        streamers[t] = Streamer(b, t, t.lower(), consumer=consumers[t])
        streamers[t].start()
    for t in topics:
        wait_for(lambda: streamers[t].progress() >= 10, 30,
                 "publishing to %s to get going" % t)
    kills = []
    try:
        for _ in range(24):
            t = rng.choice(topics)
            pid = b.wait_topicd(t)
            # A random moment: after 0..8 more completed publishes.
            start = streamers[t].progress()
            k = rng.randint(0, 8)
            wait_for(lambda: streamers[t].progress() >= start + k
                     or not streamers[t].is_alive(), 30,
                     "%d more publishes to %s" % (k, t))
            assert streamers[t].is_alive(), "publisher of %s stopped: %r" % (
                t, streamers[t].error)
            os.kill(pid, signal.SIGKILL)
            kills.append((t, pid, start + k))
            b.wait_topicd(t, not_pid=pid)
    finally:
        for s in streamers.values():
            s.stop()
    for t in topics:
        streamers[t].finish()
    assert b.running(), "the master died"
    for t in topics:
        end = drain(b, consumers[t], t, t.lower())
        consumers[t].stop()
        consumers[t].settle()
        refused = verify(consumers[t], t, [streamers[t]], end,
                         "topic %s after %d kills" % (t, sum(1 for k in kills if k[0] == t)))
        assert not refused, "publishes refused: %s" % refused[:5]
        assert len(streamers[t].acked) >= 20


def test_kill_topicd_while_segment_files_are_reused(broker_factory, rng):
    """32 KiB messages and a checkpoint every megabyte: a checkpoint keeps
    the file of a consumed journal segment (R.spare) and the next segment
    is written into it, over the batches it held.  SIGKILLs at random
    moments: at every restart the topicd reads such a file back, and no
    old batch in it may come back as a message."""
    b = broker_factory(dict(FAULT_CONFIG, checkpoint_size="1m"))
    cons = b.consumer("reuse-cons")
    cons.subscribe("R")
    cons.start()
    s = Streamer(b, "R", "r", consumer=cons, pad="." * 32768)
    s.start()
    spare = b.data_dir / "topics" / "R.spare"
    wait_for(lambda: spare.exists() or not s.is_alive(), 120,
             "topic R's store to keep a segment file for reuse (%s)" % spare)
    kills = 0
    try:
        for _ in range(8):
            pid = b.wait_topicd("R")
            start = s.progress()
            k = rng.randint(0, 40)
            wait_for(lambda: s.progress() >= start + k or not s.is_alive(), 60,
                     "%d more publishes to R" % k)
            assert s.is_alive(), "publisher stopped: %r" % s.error
            os.kill(pid, signal.SIGKILL)
            kills += 1
            b.wait_topicd("R", not_pid=pid)
    finally:
        s.stop()
    s.finish()
    end = drain(b, cons, "R", "r")
    cons.stop()
    cons.settle()
    refused = verify(cons, "R", [s], end, "after %d kills" % kills)
    assert not refused, "publishes refused: %s" % refused[:5]
    assert len(s.acked) > 100


def test_kill_master_mid_stream(broker_factory, rng):
    b = broker_factory(FAULT_CONFIG)
    cons = b.consumer("m-cons")
    cons.subscribe("M")
    cons.start()
    s1 = Streamer(b, "M", "m", n=300, allow_disconnect=True, consumer=cons)
    s1.start()
    at = rng.randint(60, 200)
    wait_for(lambda: s1.progress() >= at or not s1.is_alive(), 60,
             "the publisher to complete %d messages" % at)
    assert s1.is_alive(), "the stream ended before the kill (error: %r)" % s1.error
    left = b.kill9()
    s1.finish()                         # it may be waiting for the consumer
    wait_for(lambda: cons.disconnected, 10, "the consumer to see its connection close")
    cons.stop()
    b.wait_topicds_gone(left)

    b.start(keep_ports=True)
    cons.connect()                      # log only: the subscriptions are remembered
    cons.start()
    s2 = Streamer(b, "M", "m2", n=100, consumer=cons)
    s2.start()
    s2.join(120)
    s2.finish()
    end = drain(b, cons, "M", "m")
    cons.stop()
    cons.settle()
    verify(cons, "M", [s1, s2], end, "master killed at message %d" % at)
    assert len(s2.acked) == 100, "refused after the restart: %s" % s2.refused[:5]


def test_kill_master_with_a_consumer_on_two_busy_topics(broker_factory, rng):
    """msgIds are sequence numbers per topic, so a consumer of two topics
    sees the same ids on both: every PUBREL must name the topic it
    releases (the harness's consumer completes exactly that exchange and
    counts a PUBREL without a topic as an error), across a SIGKILL of the
    master in the middle of both streams."""
    b = broker_factory(FAULT_CONFIG)
    topics = ["TA", "TB"]
    cons = b.consumer("two-cons")
    for t in topics:
        cons.subscribe(t)
    cons.start()
    first = [Streamer(b, t, t.lower(), n=300, allow_disconnect=True, consumer=cons)
             for t in topics]
    for s in first:
        s.start()
    at = rng.randint(40, 150)
    wait_for(lambda: all(s.progress() >= at or not s.is_alive() for s in first), 60,
             "both publishers to complete %d messages" % at)
    assert all(s.is_alive() for s in first), "a stream ended before the kill: %s" % [
        s.error for s in first]
    left = b.kill9()
    for s in first:
        s.finish()
    wait_for(lambda: cons.disconnected, 10, "the consumer to see its connection close")
    cons.stop()
    b.wait_topicds_gone(left)

    b.start(keep_ports=True)
    cons.connect()                      # its two subscriptions are remembered
    cons.start()
    second = [Streamer(b, t, t.lower() + "2", n=100, consumer=cons) for t in topics]
    for s in second:
        s.start()
    for s in second:
        s.join(120)
        s.finish()
    ends = [drain(b, cons, t, t.lower()) for t in topics]
    cons.stop()
    cons.settle()
    for t, s1, s2, end in zip(topics, first, second, ends):
        verify(cons, t, [s1, s2], end, "topic %s, master killed at message %d" % (t, at))
        assert len(s1.acked) >= at and len(s2.acked) == 100
    # The ids did overlap, so the topics were needed to tell them apart.
    ids = {t: {d.msg_id for d in cons.deliveries if d.topic == t} for t in topics}
    assert ids["TA"] & ids["TB"], "no msgId was used on both topics: %s" % ids
    rels = [json.loads(raw) for _, raw in cons.pubrels]
    assert len(rels) >= sum(len(v) for v in ids.values())
    assert all(r.get("topic") in topics for r in rels), [r for r in rels
                                                         if r.get("topic") not in topics][:5]


def test_consumer_sees_no_gap_when_its_topicd_restarts_while_idle(broker_factory):
    """Kill a topicd with nothing in flight; the subscription still works."""
    b = broker_factory(FAULT_CONFIG)
    cons = b.consumer("idle-cons")
    cons.subscribe("I")
    pub = b.publisher()
    pub.publish("I", "i1")
    cons.wait_message("i1")
    cons.settle()
    old = b.kill_topicd("I")
    b.wait_topicd("I", not_pid=old)
    pub.publish("I", "i2")
    assert cons.wait_messages(2, "I") == ["i1", "i2"]
    cons.settle()
    assert not cons.errors, cons.errors
    assert not cons.duplicates, cons.duplicates
