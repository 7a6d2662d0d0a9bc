"""MQTT clients for storms of SIGKILLs (tests/fault/test_storm.py).

- PipelinedPublisher: a persistent session that keeps up to WINDOW QoS 1
  or QoS 2 messages in flight and, across lost connections, resends what
  is unacknowledged as MQTT 3.1.1 4.4 asks.
- StormReceiver: mqtt_helpers.Receiver (a correct receiver, QoS 2
  counted as MQTT does) made fit for runs of hundreds of thousands of
  messages.

Messages are named TOPIC-N: payload b"TOPIC-N-PADDING", N the message's
number in its publisher's order, from 0.
"""

import array
import collections
import threading
import time

from broker_harness import ConnectionClosed
from mqtt_helpers import (PINGRESP, PUBACK, PUBCOMP, PUBREC, PUBREL, PacketTimeout,
                          Receiver, ack_packet, connect_retry, pingreq_packet,
                          publish_packet)

WINDOW = 64             # messages a publisher keeps in flight
KEEPALIVE = 60
RECONNECT_TIMEOUT = 30.0    # for the master to come back


# ---------------------------------------------------------------- publisher

class Exchange:
    """One message in flight: its packet id, payload, how far it got
    ("publish": waiting for PUBACK / PUBREC, "pubrel": for PUBCOMP)."""

    def __init__(self, pid, payload):
        self.pid, self.payload = pid, payload
        self.stage = "publish"
        self.first_sent = time.monotonic()


class PipelinedPublisher(threading.Thread):
    """Publishes tag-0, tag-1, ... to one topic at one QoS as a persistent
    session (clean_session 0), with up to WINDOW messages in flight, until
    halt(); then completes what is in flight and ends.

    It behaves as MQTT 3.1.1 4.4 asks of a client: when the connection is
    lost it reconnects (retrying until the master is back) and resends, in
    the original order, every PUBLISH not yet acknowledged (DUP set, same
    packet id) and the PUBREL of every message whose PUBREC came.

    published: how many messages it published (numbered from 0); stored:
    one byte per message, 1 once its PUBACK or PUBREC came (the broker
    has stored it); acked: how many did.
    errors: what the broker did wrong (an acknowledgement nobody waited
    for, a session not present after a reconnect).  room(): how many more
    messages it may publish now (flow control), or None."""

    def __init__(self, broker, client_id, topic, qos, tag, pad=b"", room=None):
        super().__init__(name="storm-pub-" + client_id, daemon=True)
        self.broker, self.client_id, self.topic, self.qos = broker, client_id, topic, qos
        self.tag, self.pad, self.room = tag.encode(), pad, room
        self.published = 0
        self.stored = bytearray()
        self.acked = 0
        self.inflight = collections.OrderedDict()      # pid -> Exchange, in publish order
        self.completed = 0
        self.reconnects = 0
        self.resent = collections.Counter()             # PUBLISH / PUBREL
        self.longest_wait = (0.0, None)                 # (seconds, message) until stored
        self.errors = []
        self.error = None
        self.lock = threading.Lock()
        self.client = None
        self._out = []
        self._last_pid = 0
        self._halt = threading.Event()

    def __repr__(self):
        return "<PipelinedPublisher %s q%d>" % (self.client_id, self.qos)

    def halt(self):
        self._halt.set()

    def run(self):
        try:
            self._connect(session_expected=False)
            while not (self._halt.is_set() and not self.inflight):
                try:
                    self._publish_more()
                    self._flush()
                    self._read_some()
                except (ConnectionClosed, OSError):
                    self._reconnect()
        except BaseException as e:          # reported by finish()
            self.error = e

    def _connect(self, session_expected):
        self.client, ack = connect_retry(lambda: self.broker.mqtt_port, self.client_id,
                                         clean=False, timeout=RECONNECT_TIMEOUT,
                                         keepalive=KEEPALIVE)
        self.client.record = False
        if ack.session_present != session_expected:
            self.errors.append("CONNACK #%d: session present %s, expected %s"
                               % (self.reconnects + 1, ack.session_present, session_expected))

    def topic_of(self, n):
        """The topic of message n (payload TAG-n-PAD): the one topic."""
        return self.topic

    def _reconnect(self):
        """A new connection to the same session; what was in flight goes
        again, in publish order."""
        self.client.close()
        self.reconnects += 1
        self._out = []
        self._connect(session_expected=True)
        for x in self.inflight.values():
            if x.stage == "publish":
                self._out.append(publish_packet(self.topic_of(number_of(x.payload)), x.payload,
                                                self.qos, x.pid, dup=True))
                self.resent["PUBLISH"] += 1
            else:
                self._out.append(ack_packet(PUBREL, x.pid))
                self.resent["PUBREL"] += 1

    def _free_pid(self):
        pid = self._last_pid
        while True:
            pid = pid % 65535 + 1
            if pid not in self.inflight:
                self._last_pid = pid
                return pid

    def _publish_more(self):
        if self._halt.is_set():
            return
        n = WINDOW - len(self.inflight)
        if self.room is not None:
            n = min(n, self.room())
        for _ in range(n):
            payload = b"%s-%d-%s" % (self.tag, self.published, self.pad)
            x = Exchange(self._free_pid(), payload)
            topic = self.topic_of(self.published)
            with self.lock:
                self.published += 1
                self.stored.append(0)
            self.inflight[x.pid] = x
            self._out.append(publish_packet(topic, payload, self.qos, x.pid))

    def _flush(self):
        if not self._out and time.monotonic() - self.client.last_sent > KEEPALIVE / 2:
            self._out.append(pingreq_packet())
        if self._out:
            data, self._out = b"".join(self._out), []
            self.client.send(data)

    def _read_some(self):
        """Handles what came: waits a little for the first packet, then
        takes only what is already there."""
        timeout = 0.05
        for _ in range(4 * WINDOW):
            try:
                p = self.client.read_packet(timeout)
            except PacketTimeout:
                return
            self._handle(p)
            timeout = 0.0

    def _handle(self, p):
        if p.type == PINGRESP:
            return
        expected = {PUBACK: (1, "publish"), PUBREC: (2, "publish"), PUBCOMP: (2, "pubrel")}
        x = self.inflight.get(getattr(p, "pid", None))
        if p.type not in expected or x is None or (self.qos, x.stage) != expected[p.type]:
            self.errors.append("unexpected %r on connection #%d (in flight: %s)"
                               % (p, self.reconnects + 1,
                                  [(y.pid, y.stage) for y in self.inflight.values()][:8]))
            return
        if p.type == PUBCOMP:
            self._complete(x)
            return
        waited = time.monotonic() - x.first_sent
        with self.lock:
            self.stored[number_of(x.payload)] = 1
            self.acked += 1
            if waited > self.longest_wait[0]:
                self.longest_wait = (waited, number_of(x.payload))
        if p.type == PUBACK:
            self._complete(x)
        else:
            x.stage = "pubrel"
            self._out.append(ack_packet(PUBREL, x.pid))

    def _complete(self, x):
        del self.inflight[x.pid]
        with self.lock:
            self.completed += 1

    def progress(self):
        with self.lock:
            return self.completed

    def finish(self, timeout):
        """Halts, and waits until every exchange in flight is complete."""
        self.halt()
        self.join(timeout)
        if self.is_alive():
            return "publisher %s: %d exchanges still open %.0f s after it stopped " \
                   "publishing: %s" % (self.client_id, len(self.inflight), timeout,
                                       [(x.pid, x.stage, number_of(x.payload))
                                        for x in self.inflight.values()][:10])
        if self.error is not None:
            return "publisher %s (%d sent, %d acknowledged, %d reconnects) failed: %r" % (
                self.client_id, self.published, self.acked, self.reconnects,
                self.error)
        return None


# ---------------------------------------------------------------- subscribers

class StormReceiver(Receiver):
    """A Receiver for a long run: it keeps the message numbers of its
    arrivals per topic in arrays (and counts them, for the publishers'
    flow control), the QoS they came with, and only its last arrivals and
    PUBRELs in full; its connections keep no history of packets."""

    KEEP = 1000

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.counts = collections.Counter()
        self.numbers = collections.defaultdict(lambda: array.array("q"))
        self.qos_seen = collections.defaultdict(collections.Counter)

    def connect(self, timeout=15.0):
        ack = super().connect(timeout)
        self.client.record = False
        return ack

    def _handle(self, p, send=True):
        n = len(self.arrivals)
        super()._handle(p, send)
        if len(self.arrivals) > n:
            a = self.arrivals[-1]
            self.counts[a.topic] += 1
            self.numbers[a.topic].append(number_of(a.payload))
            self.qos_seen[a.topic][a.qos] += 1
            if len(self.arrivals) > 2 * self.KEEP:
                del self.arrivals[:self.KEEP]
        if len(self.pubrels) > 2 * self.KEEP:
            del self.pubrels[:self.KEEP]

    def has_all(self, topic, n):
        """Whether messages 0 .. n-1 of the topic have all arrived."""
        with self.lock:
            if self.counts[topic] < n:
                return False
            return set(range(n)) <= set(self.numbers[topic])


def number_of(payload):
    """The number of a message (TOPIC-N-PADDING), -1 for a payload that is
    not one of the publishers'."""
    try:
        return int(payload.rsplit(b"-", 2)[1])
    except (IndexError, ValueError):
        return -1
