"""Back-pressure, from outside.

A publisher that floods without reading is no longer read from once
max_client_pending of its publishes wait for the topicd: its own socket
fills and send() returns EAGAIN, and the broker's figures show that it
took exactly that many.  When the topicd answers, the broker reads on,
and every message the publisher sent is stored and answered, in order.

A subscriber that does not read fills its own socket and waits in the
topicd, while another subscriber of the same topic receives every
message as it is published."""

import json
import select
import signal
import socket
import threading
import time

from broker_harness import HOST, HarnessError, kill_pid, wait_for
from mqtt_helpers import (CONNACK, PUBLISH, SUBACK, Packet, Receiver, connect_packet,
                          split_packet, subscribe_packet)

PENDING = 8             # max_client_pending
OUTPUT = 4096           # client_output_limit, its smallest value
QUIET = 0.5             # seconds a blocked socket must stay blocked
SMALL_BUFFER = 4096     # our sockets' kernel buffers: they fill sooner


def small_buffer_socket(port):
    """A connection whose own send and receive buffers are small (set
    before connecting, so that the window is small from the start)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
    s.settimeout(10)
    s.connect((HOST, port))
    return s


class Flood:
    """PUB lines for the topic, m0, m1, ..., each with a 1 KiB message (so
    that a few hundred fill the kernel's buffers), sent on a non-blocking
    socket until the socket stays full."""

    def __init__(self, sock, topic, limit_bytes=16 << 20):
        self.sock, self.topic, self.limit = sock, topic, limit_bytes
        self.lines = 0          # lines begun
        self.sent = 0           # bytes sent
        self.buf = b""          # the rest of the line begun last

    def line(self, i):
        return b'{"type":"PUB","topic":"%s","msg":"m%d %s"}\n' % (
            self.topic.encode(), i, b"x" * 1024)

    def until_blocked(self):
        """Sends until send() fails with EAGAIN and the socket does not
        become writable again for QUIET seconds; then checks that one more
        send() still fails with EAGAIN."""
        self.sock.setblocking(False)
        while True:
            if self.sent > self.limit:
                raise AssertionError("sent %d bytes (%d lines) without the broker ever "
                                     "stopping reading" % (self.sent, self.lines))
            if not self.buf:
                self.buf = self.line(self.lines)
                self.lines += 1
            try:
                n = self.sock.send(self.buf)
            except BlockingIOError:
                _, writable, _ = select.select([], [self.sock], [], QUIET)
                if not writable:
                    break
                continue
            self.sent += n
            self.buf = self.buf[n:]
        try:
            self.sock.send(self.buf[:1])
        except BlockingIOError:
            return
        raise AssertionError("send() took a byte after the socket was full for %.1f s"
                             % QUIET)

    def rest(self):
        """The end of the line begun last, sent blocking."""
        self.sock.setblocking(True)
        self.sock.sendall(self.buf)
        self.buf = b""


def read_pubrecs(sock, n, timeout=30.0):
    """The msgIds of the next n replies, which must all be PUBRECs."""
    ids, buf = [], b""
    sock.settimeout(timeout)
    while len(ids) < n:
        chunk = sock.recv(65536)
        assert chunk, "the broker closed the flooding publisher after %d answers" % len(ids)
        buf += chunk
        *done, buf = buf.split(b"\r\n")
        for line in done:
            reply = json.loads(line)
            assert reply["type"] == "PUBREC", line
            ids.append(reply["msgId"])
    assert buf == b"", "more than %d replies: %r" % (n, buf[:200])
    return ids


def test_a_flooding_publisher_is_not_read_beyond_max_client_pending(broker_factory):
    b = broker_factory({"max_client_pending": PENDING, "client_output_limit": OUTPUT})
    c = b.consumer("flooded")
    c.subscribe("flood")
    tpid = b.wait_topicd("flood")
    before, _ = b.status()
    s = small_buffer_socket(b.publisher_port)
    flood = Flood(s, "flood")
    # The topicd is stopped: every publish the broker reads now waits.
    kill_pid(tpid, signal.SIGSTOP)
    try:
        flood.until_blocked()
        master, topics = b.status()
    finally:
        kill_pid(tpid, signal.SIGCONT)
    assert flood.lines > 2 * PENDING, "blocked after %d lines" % flood.lines
    taken = master["messages_in"] - before["messages_in"]
    assert (taken, topics["flood"]["held"]) == (PENDING, PENDING), \
        "the broker took %d publishes, %d held for the topicd, with %d lines sent and " \
        "max_client_pending %d" % (taken, topics["flood"]["held"], flood.lines, PENDING)

    # The topicd answers: the broker reads on, never with more than
    # max_client_pending publishes of this client waiting.
    held = []
    writer = threading.Thread(target=flood.rest)
    writer.start()
    sampler_done = threading.Event()

    def sample():
        while not sampler_done.is_set():
            held.append(b.status()[1]["flood"]["held"])
    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        ids = read_pubrecs(s, flood.lines)
    finally:
        sampler_done.set()
        sampler.join(20)
        writer.join(10)
    assert ids == list(range(1, flood.lines + 1))
    assert held and max(held) <= PENDING, "publishes held for the topicd: %s" % held
    for i in ids[:50]:                  # release some: they are delivered in order
        s.sendall(b'{"type":"PUBREL","msgId":%d}\n' % i)
    got = c.wait_messages(50, "flood")
    assert [m.split()[0] for m in got] == ["m%d" % i for i in range(50)]
    s.close()


# ---------------------------------------------------------------- subscribers

SIZE = 16 << 10         # payload bytes: under the size that travels in a memfd
COUNT = 640             # 10 MiB: more than the kernel buffers of a socket hold
BATCH = 32


def payload(i):
    return "%06d %s" % (i, "y" * (SIZE - 7))


class SilentSubscriber:
    """An MQTT QoS 0 subscriber with small socket buffers that reads its
    CONNACK and SUBACK and then nothing until drain()."""

    def __init__(self, port, client_id, topic):
        self.sock = small_buffer_socket(port)
        self.buf = b""
        self.sock.sendall(connect_packet(client_id) + subscribe_packet(1, [(topic, 0)]))
        assert self.next().type == CONNACK
        ack = self.next()
        assert (ack.type, ack.codes) == (SUBACK, [0]), ack

    def next(self, timeout=10.0):
        self.sock.settimeout(timeout)
        while True:
            got = split_packet(self.buf)
            if got is not None:
                first, body, total = got
                raw, self.buf = self.buf[:total], self.buf[total:]
                return Packet(first >> 4, first & 0x0F, body, raw)
            data = self.sock.recv(1 << 20)
            if not data:
                raise HarnessError("the broker closed the silent subscriber")
            self.buf += data

    def drain(self, n):
        out = []
        for _ in range(n):
            p = self.next()
            assert (p.type, p.qos) == (PUBLISH, 0), p
            out.append(p.payload)
        return out

    def close(self):
        self.sock.close()


def test_a_subscriber_that_does_not_read_holds_up_no_other(mqtt_factory):
    b = mqtt_factory({"client_output_limit": OUTPUT})
    fast = Receiver(lambda: b.mqtt_port, "bp-fast", clean=True)
    fast.connect()
    assert fast.subscribe([("bp/t", 0)]) == [0]
    fast.start()
    slow = SilentSubscriber(b.mqtt_port, "bp-slow", "bp/t")
    try:
        pub = b.publisher()
        sent = [payload(i).encode() for i in range(COUNT)]
        for k in range(0, COUNT, BATCH):
            pub.publish_pipelined([("bp/t", payload(i)) for i in range(k, k + BATCH)])
            # The fast one has this batch before the next is published: it
            # keeps pace with the publisher all through.
            fast.wait_until(lambda: len(fast.arrivals) >= k + BATCH, 10,
                            "messages up to #%d (the slow one has read none)" % (k + BATCH))
        assert fast.payloads() == sent, "the fast subscriber's messages differ"
        # The silent one is stuck in the topicd, far behind, and stays there.
        st = b.topicd_status("bp/t")
        assert (st["subs"], st["online"]) == (2, 2), st
        assert st["lag"] > 0, "nobody is behind: the silent subscriber was not held back"
        time.sleep(QUIET)               # an absence of progress, watched over a period
        again = b.topicd_status("bp/t")
        assert again["lag"] == st["lag"], "the silent subscriber moved: lag %d, then %d" % (
            st["lag"], again["lag"])
        # Once it reads, it gets every message, in order.
        assert slow.drain(COUNT) == sent, "the slow subscriber's messages differ"
        wait_for(lambda: b.topicd_status("bp/t")["lag"] == 0, 10,
                 "the topicd to have nobody behind")
    finally:
        slow.close()
