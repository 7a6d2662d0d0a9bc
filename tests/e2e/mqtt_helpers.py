"""MQTT clients for the end-to-end and fault tests.

- A tiny MQTT 3.1.1 / 3.1 encoder and decoder (tests only): builders for
  every client packet, with knobs to break them, and a parser for what a
  server sends.
- RawClient: one TCP connection that sends bytes and reads packets with
  deadlines; it never answers anything by itself, so a test decides what
  a misbehaving or slow client does.
- Receiver: a RawClient in a thread that answers like a correct client
  (PUBACK; PUBREC / PUBCOMP with the QoS 2 packet-id dedupe rules) and
  keeps its session state across reconnects.
- PahoClient: Debian's paho-mqtt 1.6 (run the tests with /usr/bin/python3).
- MosquittoSub and mosquitto_pub(): the real command-line clients.

Every client and process is registered and closed (processes stopped by
pid) by the fixture in teardown.  Every wait has a deadline; traffic goes
to 127.0.0.1 only.
"""

import collections
import os
import signal
import socket
import ssl
import subprocess
import threading
import time

from broker_harness import (HOST, POLL, ConnectionClosed, Flood, HarnessError, Pumped,
                            wait_for)

try:                                    # Debian's python3-paho-mqtt
    import paho.mqtt.client as paho
except ImportError:                     # pragma: no cover
    paho = None

REPLY_TIMEOUT = 5.0     # one answer from the broker
PROC_TIMEOUT = 10.0     # a command-line client run

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = range(1, 8)
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = range(8, 15)
TYPE_NAMES = {CONNECT: "CONNECT", CONNACK: "CONNACK", PUBLISH: "PUBLISH",
              PUBACK: "PUBACK", PUBREC: "PUBREC", PUBREL: "PUBREL",
              PUBCOMP: "PUBCOMP", SUBSCRIBE: "SUBSCRIBE", SUBACK: "SUBACK",
              UNSUBSCRIBE: "UNSUBSCRIBE", UNSUBACK: "UNSUBACK", PINGREQ: "PINGREQ",
              PINGRESP: "PINGRESP", DISCONNECT: "DISCONNECT"}
SUBACK_FAILURE = 0x80


class PacketTimeout(Exception):
    """No complete packet arrived before the deadline."""


# ---------------------------------------------------------------- registry

_registry = None        # set by the fixture: a list of things to close


def set_registry(reg):
    global _registry
    _registry = reg


def _register(obj):
    if _registry is not None:
        _registry.append(obj)


def close_registered(reg):
    """Closes every client and stops every process in reg (newest first);
    returns the problems found, among them every protocol error a
    receiver recorded."""
    problems = []
    for obj in reversed(reg):
        try:
            obj.close()
        except Exception as e:          # teardown goes on
            problems.append("%r: %s" % (obj, e))
    for obj in reg:
        if isinstance(obj, Pumped):
            problems.extend(obj.protocol_problems())
    return problems


# ---------------------------------------------------------------- encoding

def varint(n):
    """The Remaining Length encoding of n (1 to 4 bytes)."""
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            b |= 0x80
        out.append(b)
        if not n:
            return bytes(out)


def mstr(s):
    """A length-prefixed MQTT string (str is UTF-8 encoded; bytes go as
    they are, for malformed cases)."""
    if isinstance(s, str):
        s = s.encode("utf-8")
    return len(s).to_bytes(2, "big") + s


def packet(ptype, flags, body=b"", length=None):
    """A whole packet; `length` overrides the Remaining Length value."""
    return bytes([ptype << 4 | flags]) + varint(len(body) if length is None else length) + body


def connect_packet(client_id, clean=True, keepalive=60, will=None, username=None,
                   password=None, level=4, proto_name=None, flags=None):
    """will: (topic, payload, qos, retain).  level 4 is MQTT 3.1.1 ("MQTT"),
    3 is MQTT 3.1 ("MQIsdp").  flags overrides the connect-flags byte."""
    if proto_name is None:
        proto_name = "MQIsdp" if level == 3 else "MQTT"
    f = 0x02 if clean else 0
    payload = mstr(client_id)
    if will is not None:
        wt, wp, wq, wr = will
        f |= 0x04 | (wq << 3) | (0x20 if wr else 0)
        payload += mstr(wt) + mstr(wp if isinstance(wp, bytes) else wp.encode())
    if username is not None:
        f |= 0x80
        payload += mstr(username)
    if password is not None:
        f |= 0x40
        payload += mstr(password)
    if flags is not None:
        f = flags
    body = mstr(proto_name) + bytes([level, f]) + keepalive.to_bytes(2, "big") + payload
    return packet(CONNECT, 0, body)


def publish_packet(topic, payload=b"", qos=0, pid=None, retain=False, dup=False,
                   flags=None):
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    f = (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    if flags is not None:
        f = flags
    body = mstr(topic)
    if qos > 0 or pid is not None:
        body += (pid or 0).to_bytes(2, "big")
    return packet(PUBLISH, f, body + payload)


def ack_packet(ptype, pid, flags=None):
    """PUBACK, PUBREC, PUBREL (flags 0x2), PUBCOMP."""
    if flags is None:
        flags = 0x02 if ptype == PUBREL else 0
    return packet(ptype, flags, pid.to_bytes(2, "big"))


def subscribe_packet(pid, filters, flags=0x02):
    body = pid.to_bytes(2, "big")
    for f, q in filters:
        body += mstr(f) + bytes([q])
    return packet(SUBSCRIBE, flags, body)


def unsubscribe_packet(pid, filters, flags=0x02):
    return packet(UNSUBSCRIBE, flags, pid.to_bytes(2, "big") + b"".join(mstr(f) for f in filters))


def pingreq_packet(flags=0):
    return packet(PINGREQ, flags)


def disconnect_packet(flags=0):
    return packet(DISCONNECT, flags)


# ---------------------------------------------------------------- decoding

class Packet:
    """A packet from the server.  Fields by type:
    CONNACK session_present, rc; PUBLISH topic (str, or bytes if not
    UTF-8), payload, qos, retain, dup, pid; PUBACK/PUBREC/PUBREL/PUBCOMP/
    UNSUBACK pid; SUBACK pid, codes; raw: the whole packet."""

    def __init__(self, ptype, flags, body, raw):
        self.type, self.flags, self.body, self.raw = ptype, flags, body, raw
        self.error = None
        try:
            self._decode()
        except (IndexError, ValueError) as e:
            self.error = "undecodable %s: %s" % (self.name, e)

    @property
    def name(self):
        return TYPE_NAMES.get(self.type, "reserved-%d" % self.type)

    def _decode(self):
        b = self.body
        if self.type == CONNACK:
            if len(b) != 2:
                raise ValueError("CONNACK body of %d bytes" % len(b))
            self.session_present, self.rc = bool(b[0] & 1), b[1]
        elif self.type == PUBLISH:
            self.qos = (self.flags >> 1) & 3
            self.dup = bool(self.flags & 0x08)
            self.retain = bool(self.flags & 0x01)
            n = int.from_bytes(b[0:2], "big")
            if len(b) < 2 + n:
                raise ValueError("topic length %d past the end" % n)
            t = b[2:2 + n]
            try:
                self.topic = t.decode("utf-8")
            except UnicodeDecodeError:
                self.topic = t
            i = 2 + n
            self.pid = 0
            if self.qos > 0:
                if len(b) < i + 2:
                    raise ValueError("no packet id")
                self.pid = int.from_bytes(b[i:i + 2], "big")
                i += 2
            self.payload = b[i:]
        elif self.type in (PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK):
            if len(b) != 2:
                raise ValueError("%s body of %d bytes" % (self.name, len(b)))
            self.pid = int.from_bytes(b, "big")
        elif self.type == SUBACK:
            if len(b) < 3:
                raise ValueError("SUBACK body of %d bytes" % len(b))
            self.pid = int.from_bytes(b[0:2], "big")
            self.codes = list(b[2:])
        elif self.type == PINGRESP:
            if b:
                raise ValueError("PINGRESP with a body")

    def __repr__(self):
        if self.type == PUBLISH:
            return "<PUBLISH %r q%d%s%s pid=%d %r>" % (
                getattr(self, "topic", "?"), getattr(self, "qos", -1),
                " dup" if getattr(self, "dup", False) else "",
                " retain" if getattr(self, "retain", False) else "",
                getattr(self, "pid", -1), getattr(self, "payload", b"")[:60])
        return "<%s flags=%#x %r>" % (self.name, self.flags, self.body[:40])


def split_packet(buf):
    """(first byte, body, total length) of the packet at the front of buf,
    or None if it is not complete.  Raises ValueError on a bad length."""
    if len(buf) < 2:
        return None
    n, mult, i = 0, 1, 1
    while True:
        if i >= len(buf):
            return None
        if i > 4:
            raise ValueError("remaining length over 4 bytes: %r" % buf[:6])
        byte = buf[i]
        n += (byte & 0x7F) * mult
        mult *= 128
        i += 1
        if not byte & 0x80:
            break
    if len(buf) < i + n:
        return None
    return buf[0], buf[i:i + n], i + n


# ---------------------------------------------------------------- raw client

class RawClient:
    """One MQTT connection driven byte by byte.  Packets that arrive while
    a test waits for something else stay in an inbox, in order."""

    packet_class = Packet               # how packets from the server are read

    def __init__(self, port, timeout=REPLY_TIMEOUT, name=None, tls=None, sock=None):
        """tls: an ssl.SSLContext to speak TLS with; sock: a socket of the
        caller's, connected to port."""
        self.port = port
        self.timeout = timeout
        self.name = name or "raw"
        self.sock = sock or socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname=HOST)
        self.local_port = self.sock.getsockname()[1]
        self.buf = b""
        self.inbox = collections.deque()
        self.received = []              # every packet, in arrival order, if record
        self.record = True              # False: long runs keep no history
        self.closed = False
        self.peer_closed = False
        self.next_pid = 1
        self.send_lock = threading.Lock()
        self.last_sent = time.monotonic()
        _register(self)

    def __repr__(self):
        return "<RawClient %s :%d>" % (self.name, self.local_port)

    # -- writing

    def send(self, data):
        with self.send_lock:
            self.sock.sendall(data)
            self.last_sent = time.monotonic()

    def alloc_pid(self):
        pid = self.next_pid
        self.next_pid = self.next_pid % 65535 + 1
        return pid

    # -- reading

    def _recv(self, deadline, size=65536):
        """What the socket has, waiting for it until deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise PacketTimeout()
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(size)
        except socket.timeout:
            raise PacketTimeout() from None
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            self.peer_closed = True
            raise ConnectionClosed(self.buf) from None
        if not data:
            self.peer_closed = True
            raise ConnectionClosed(self.buf)
        return data

    def _fill(self, deadline):
        self.buf += self._recv(deadline)

    def _next_from_wire(self, deadline):
        while True:
            got = split_packet(self.buf)
            if got is not None:
                first, body, total = got
                raw, self.buf = self.buf[:total], self.buf[total:]
                p = self.packet_class(first >> 4, first & 0x0F, body, raw)
                if self.record:
                    self.received.append(p)
                if p.error:
                    raise HarnessError("%s: %s: %r" % (self, p.error, raw[:80]))
                return p
            self._fill(deadline)

    def read_packet(self, timeout=None):
        """The next packet (inbox first).  Raises PacketTimeout or
        ConnectionClosed."""
        if self.inbox:
            return self.inbox.popleft()
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        return self._next_from_wire(deadline)

    def wait_packet(self, pred, timeout=None, what="a packet"):
        """The first packet for which pred(p) is true; the others stay in
        the inbox.  Fails at the deadline or when the connection closes."""
        for p in list(self.inbox):
            if pred(p):
                self.inbox.remove(p)
                return p
        t = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + t
        while True:
            try:
                p = self._next_from_wire(deadline)
            except PacketTimeout:
                raise HarnessError("%s: no %s within %.1f s (waiting: %s)"
                                   % (self, what, t, list(self.inbox)[:8])) from None
            except ConnectionClosed:
                raise HarnessError("%s: connection closed by the broker while waiting for "
                                   "%s (waiting: %s)" % (self, what, list(self.inbox)[:8])) \
                    from None
            if pred(p):
                return p
            self.inbox.append(p)

    def expect(self, ptype, timeout=None, pid=None):
        """The next packet of type ptype (others stay in the inbox)."""
        return self.wait_packet(lambda p: p.type == ptype and (pid is None or p.pid == pid),
                                timeout, TYPE_NAMES[ptype] + ("" if pid is None
                                                              else " for packet id %d" % pid))

    def expect_next(self, ptype, timeout=None):
        """The very next packet, which must be of type ptype."""
        try:
            p = self.read_packet(timeout)
        except PacketTimeout:
            raise HarnessError("%s: no %s within %.1f s" % (
                self, TYPE_NAMES[ptype], self.timeout if timeout is None else timeout)) from None
        except ConnectionClosed:
            raise HarnessError("%s: closed by the broker instead of sending %s"
                               % (self, TYPE_NAMES[ptype])) from None
        assert p.type == ptype, "%s: expected %s, got %r" % (self, TYPE_NAMES[ptype], p)
        return p

    def publishes(self):
        """Takes every PUBLISH from the inbox."""
        out = [p for p in self.inbox if p.type == PUBLISH]
        self.inbox = collections.deque(p for p in self.inbox if p.type != PUBLISH)
        return out

    def expect_closed(self, timeout=None, allow=()):
        """Waits for the broker to close the connection (EOF or reset);
        packets whose type is in `allow` may come first (returned).  Any
        other packet, or the deadline, fails."""
        t = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + t
        seen = []
        while True:
            if self.inbox:
                p = self.inbox.popleft()
            else:
                try:
                    p = self._next_from_wire(deadline)
                except ConnectionClosed as e:
                    assert not e.partial, "%s: partial packet before close: %r" % (
                        self, e.partial[:40])
                    return seen
                except PacketTimeout:
                    raise HarnessError("%s: connection still open %.1f s later (packets "
                                       "before: %s)" % (self, t, seen)) from None
            assert p.type in allow, "%s: expected the connection to close, got %r" % (self, p)
            seen.append(p)

    def closed_within(self, timeout, allow=()):
        """True if the broker closes the connection within timeout, False if
        it is still open then.  Packets of a type in `allow` are skipped;
        any other fails."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                p = self._next_from_wire(deadline)
            except ConnectionClosed:
                return True
            except PacketTimeout:
                return False
            assert p.type in allow, "%s: unexpected %r" % (self, p)

    def expect_silence(self, duration):
        """Asserts that no packet arrives for `duration` seconds (an absence
        can only be checked over a period)."""
        assert not self.inbox, "%s: packets waiting: %s" % (self, list(self.inbox))
        try:
            p = self._next_from_wire(time.monotonic() + duration)
        except PacketTimeout:
            return
        raise AssertionError("%s: expected nothing for %.1f s, got %r" % (self, duration, p))

    # -- exchanges

    def connect(self, client_id, clean=True, keepalive=60, will=None, level=4,
                timeout=None, **kw):
        """Sends CONNECT; returns the CONNACK (which must be the first packet)."""
        self.send(connect_packet(client_id, clean, keepalive, will, level=level, **kw))
        return self.expect_next(CONNACK, timeout)

    def connect_ok(self, client_id, clean=True, keepalive=60, will=None, **kw):
        ack = self.connect(client_id, clean, keepalive, will, **kw)
        assert ack.rc == 0, "%s: CONNACK return code %d for %r" % (self, ack.rc, client_id)
        return ack

    def subscribe(self, filters, timeout=None):
        """filters: [(filter, qos)]; returns the SUBACK codes."""
        pid = self.alloc_pid()
        self.send(subscribe_packet(pid, filters))
        ack = self.expect(SUBACK, timeout)
        assert ack.pid == pid, "%s: SUBACK for packet id %d, expected %d" % (self, ack.pid, pid)
        assert len(ack.codes) == len(filters), "%s: SUBACK codes %s for %d filters" % (
            self, ack.codes, len(filters))
        return ack.codes

    def unsubscribe(self, filters, timeout=None):
        pid = self.alloc_pid()
        self.send(unsubscribe_packet(pid, filters))
        ack = self.expect(UNSUBACK, timeout)
        assert ack.pid == pid, "%s: UNSUBACK for packet id %d, expected %d" % (self, ack.pid, pid)

    def publish(self, topic, payload=b"", qos=0, retain=False, timeout=None):
        """The whole exchange of one PUBLISH; returns its packet id (0 at QoS 0)."""
        pid = self.alloc_pid() if qos else None
        self.send(publish_packet(topic, payload, qos, pid, retain))
        if qos == 1:
            self.expect(PUBACK, timeout, pid=pid)
        elif qos == 2:
            self.expect(PUBREC, timeout, pid=pid)
            self.send(ack_packet(PUBREL, pid))
            self.expect(PUBCOMP, timeout, pid=pid)
        return pid or 0

    def ping(self, timeout=None):
        self.send(pingreq_packet())
        self.expect(PINGRESP, timeout)

    def disconnect(self):
        """Sends DISCONNECT; the broker must then close the connection."""
        self.send(disconnect_packet())

    def close(self, reset=False):
        if self.closed:
            return
        self.closed = True
        try:
            if reset:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                     b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.sock.close()
        except OSError:
            pass


def connected_client(port, client_id, clean=True, keepalive=60, will=None, name=None, **kw):
    """A RawClient with an accepted CONNECT."""
    c = RawClient(port, name=name or client_id or "raw")
    c.connect_ok(client_id, clean, keepalive, will, **kw)
    return c


def connect_retry(port_fn, client_id, clean=False, timeout=15.0, **kw):
    """Connects (port_fn() gives the port) until the broker accepts: for
    reconnecting across a broker restart.  Returns (client, CONNACK)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            c = RawClient(port_fn(), name=client_id)
            try:
                return c, c.connect_ok(client_id, clean, **kw)
            except (HarnessError, AssertionError, OSError):
                c.close()
                raise
        except (OSError, HarnessError, AssertionError) as e:
            if time.monotonic() >= deadline:
                raise HarnessError("%s could not connect within %.0f s: %s"
                                   % (client_id, timeout, e)) from None
            time.sleep(POLL * 2)


class MqttFlood(Flood):
    """Flood over MQTT: QoS 0 PUBLISHes of size bytes to one topic, the
    payload of message i starting with "m<i> ".  QoS 0 has no answer: only
    the broker's own limits stop it from taking them all."""

    def __init__(self, port, topic, size, client_id="flood", limit_bytes=64 << 20,
                 keepalive=60):
        super().__init__(port, topic, limit_bytes)
        self.size = size
        self.sock.sendall(connect_packet(client_id, keepalive=keepalive))
        ack = self.sock.recv(4)
        if len(ack) != 4 or ack[0] >> 4 != CONNACK or ack[3] != 0:
            raise HarnessError("%s: CONNACK %r" % (client_id, ack))

    def payload(self, i):
        head = b"m%d " % i
        return head + b"z" * (self.size - len(head))

    def line(self, i):
        return publish_packet(self.topic, self.payload(i))


class SilentSubscriber:
    """A subscriber that does not read: its socket's kernel buffers are
    small (set before connecting), it reads its CONNACK and SUBACK, and
    then nothing until drain()."""

    BUFFER = 4096

    def __init__(self, port, client_id, topic, qos=0, tls=None, keepalive=60, will=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.BUFFER)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.BUFFER)
        self.sock.settimeout(REPLY_TIMEOUT)
        self.sock.connect((HOST, port))
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname=HOST)
        _register(self)
        self.client_id = client_id
        self.buf = b""
        self.sock.sendall(connect_packet(client_id, keepalive=keepalive, will=will) +
                          subscribe_packet(1, [(topic, qos)]))
        ack = self.next()
        assert (ack.type, ack.rc) == (CONNACK, 0), ack
        ack = self.next()
        assert (ack.type, ack.codes) == (SUBACK, [qos]), ack

    def __repr__(self):
        return "<SilentSubscriber %s>" % self.client_id

    def next(self, timeout=REPLY_TIMEOUT):
        """The next packet, read now."""
        self.sock.settimeout(timeout)
        while True:
            got = split_packet(self.buf)
            if got is not None:
                first, body, total = got
                raw, self.buf = self.buf[:total], self.buf[total:]
                p = Packet(first >> 4, first & 0x0F, body, raw)
                if p.error:
                    raise HarnessError("%s: %s: %r" % (self, p.error, raw[:80]))
                return p
            data = self.sock.recv(1 << 20)
            if not data:
                raise HarnessError("%s: the broker closed the connection" % self)
            self.buf += data

    def drain(self, n):
        """The payloads of the next n packets, which must be QoS 0 PUBLISHes."""
        out = []
        for _ in range(n):
            p = self.next()
            assert (p.type, p.qos) == (PUBLISH, 0), p
            out.append(p.payload)
        return out

    def close(self, reset=False):
        """reset: the connection is reset (RST), not closed in order."""
        if reset:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self.sock.close()


# ---------------------------------------------------------------- receiver

Arrival = collections.namedtuple("Arrival", "topic payload qos dup retain pid conn at")


class Receiver(Pumped):
    """A correct MQTT receiver over a RawClient, pumping in a thread.

    QoS 1: every PUBLISH is an arrival and is PUBACK'd.  QoS 2 (method A of
    the specification): a PUBLISH whose packet id is not waiting for its
    PUBREL is an arrival, PUBREC'd, and its id then waits; a PUBLISH with a
    waiting id is a duplicate transmission (PUBREC'd again, not counted);
    PUBREL releases the id and is answered with PUBCOMP.  This state, like
    a session's, lives on across reconnects.  ack=False: nothing is
    acknowledged.  Protocol breaches go to self.errors, which the fixture
    checks in teardown: a recorded error fails the test.
    """

    def __init__(self, port_fn, client_id, clean=False, keepalive=30, ack=True):
        self.port_fn = port_fn
        self.client_id = client_id
        self.clean = clean
        self.keepalive = keepalive
        self.ack = ack
        self.lock = threading.RLock()
        self.arrivals = []
        self.duplicates = []            # QoS 2 repeats of a waiting packet id
        self.awaiting_rel = collections.OrderedDict()   # pid -> Arrival
        self.pubrels = []
        self.errors = []
        self.granted = {}               # filter -> granted QoS
        self.connacks = []
        self.trace = collections.deque(maxlen=2000)     # (conn, "<" in / ">" out, what)
        self.conn_no = 0
        self.client = None
        self.label = "receiver %s" % client_id
        self._init_pump()
        _register(self)

    def __repr__(self):
        return "<Receiver %s>" % self.client_id

    def connect(self, timeout=15.0):
        c, ack = connect_retry(self.port_fn, self.client_id, self.clean, timeout,
                               keepalive=self.keepalive)
        with self.lock:
            self.client = c
            self.conn_no += 1
            self.connacks.append(ack)
            self.disconnected = False
        return ack

    def subscribe(self, filters):
        """Before start(): SUBSCRIBE on the current connection."""
        codes = self.client.subscribe(filters)
        for (f, q), code in zip(filters, codes):
            self.granted[f] = code
        for p in self.client.publishes():      # retained ones, if any
            self._handle(p)
        return codes

    def _send(self, ptype, pid):
        self.trace.append((self.conn_no, ">", "%s %d" % (TYPE_NAMES[ptype], pid)))
        self.client.send(ack_packet(ptype, pid))

    def _handle(self, p, send=True):
        send = send and self.ack
        if p.type == PUBLISH:
            what = "PUBLISH %s q%d%s pid %d %r" % (p.topic, p.qos, " dup" if p.dup else "",
                                                  p.pid, p.payload[:24])
        else:
            what = "%s %s" % (p.name, getattr(p, "pid", ""))
        self.trace.append((self.conn_no, "<", what))
        if p.type == PUBLISH:
            a = Arrival(p.topic, p.payload, p.qos, p.dup, p.retain, p.pid, self.conn_no,
                        time.monotonic())
            if p.qos and not p.pid:
                self.errors.append("QoS %d PUBLISH with packet id 0: %r" % (p.qos, p))
            if p.qos == 0 and p.dup:
                self.errors.append("QoS 0 PUBLISH with DUP set: %r" % p)
            if p.qos == 2 and p.pid in self.awaiting_rel:
                self.duplicates.append(a)
                first = self.awaiting_rel[p.pid]
                if (first.topic, first.payload) != (p.topic, p.payload):
                    self.errors.append(
                        "%r reuses packet id %d, which awaits the PUBREL of %r" % (
                            p, p.pid, (first.topic, first.payload)))
                elif not p.dup:
                    self.errors.append("%r is a resend without DUP (MQTT-3.3.1-1)" % p)
            else:
                self.arrivals.append(a)
                if p.qos == 2:
                    self.awaiting_rel[p.pid] = a
            if send and p.qos == 1:
                self._send(PUBACK, p.pid)
            elif send and p.qos == 2:
                self._send(PUBREC, p.pid)
        elif p.type == PUBREL:
            self.pubrels.append(p.pid)
            self.awaiting_rel.pop(p.pid, None)
            if send:
                self._send(PUBCOMP, p.pid)
        elif p.type == PINGRESP:
            pass
        else:
            self.errors.append("unexpected %r" % p)

    def pump(self, timeout):
        try:
            p = self.client.read_packet(timeout)
        except PacketTimeout:
            if time.monotonic() - self.client.last_sent > self.keepalive / 2:
                self.client.send(pingreq_packet())
            return False
        with self.lock:
            self._handle(p)
        return True

    def reconnect(self, timeout=15.0):
        """Stops the pump, closes, connects again (same session) and pumps."""
        self.stop()
        if self.client is not None:
            self.client.close()
        ack = self.connect(timeout)
        self.start()
        return ack

    def disconnect(self, timeout=REPLY_TIMEOUT):
        """Sends DISCONNECT and waits for the broker to close the connection.
        Packets that come before the close are recorded, not answered."""
        self.stop()
        self.client.disconnect()
        try:
            seen = self.client.expect_closed(timeout, allow=(PUBLISH, PUBREL, PINGRESP))
        finally:
            self.client.close()
        with self.lock:
            for p in seen:
                self._handle(p, send=False)

    def close(self):
        try:
            self.stop()
        finally:
            if self.client is not None:
                self.client.close()

    def payloads(self, topic=None):
        with self.lock:
            return [a.payload for a in self.arrivals if topic is None or a.topic == topic]

    def wait_payload(self, payload, topic=None, timeout=10.0):
        self.wait_until(lambda: payload in self.payloads(topic), timeout,
                        "payload %r%s" % (payload, " on %r" % topic if topic else ""))

    def wait_count(self, n, topic=None, timeout=10.0):
        self.wait_until(lambda: len(self.payloads(topic)) >= n, timeout,
                        "%d arrivals%s" % (n, " on %r" % topic if topic else ""))
        return self.payloads(topic)

    def settle(self, timeout=5.0):
        """Pumps until no QoS 2 exchange is open."""
        self.wait_until(lambda: not self.awaiting_rel, timeout,
                        "open QoS 2 exchanges to complete (%s)" % list(self.awaiting_rel))

    def describe(self):
        with self.lock:
            last = [(a.topic, a.payload[:30], a.qos, a.pid) for a in self.arrivals[-3:]]
            return ("arrivals %d (last %s), duplicates %d, awaiting PUBREL %s, connection "
                    "#%d%s, errors %s; last packets (connection, direction, packet):\n    %s"
                    % (len(self.arrivals), last, len(self.duplicates),
                       list(self.awaiting_rel)[:10], self.conn_no,
                       " (closed by the broker)" if self.disconnected else "",
                       self.errors[:5], "\n    ".join("#%d %s %s" % t for t in
                                                      list(self.trace)[-16:])))


# ---------------------------------------------------------------- paho

Message = collections.namedtuple("Message", "topic payload qos retain dup mid at")


class PahoClient:
    """paho-mqtt 1.6 with its network thread; records what it is given.
    No automatic reconnect: a closed connection stays closed."""

    def __init__(self, port, client_id="", clean=True, protocol=None, name=None, tls=None,
                 ws_path=None):
        """tls: the keyword arguments of paho's tls_set (ca_certs,
        certfile, keyfile) to connect with TLS; ws_path: over WebSockets,
        with this path (paho's transport="websockets")."""
        if paho is None:
            raise HarnessError("paho-mqtt is missing: run the tests with /usr/bin/python3 "
                               "(Debian's python3-paho-mqtt)")
        self.port = port
        self.name = name or client_id or "paho"
        proto = paho.MQTTv311 if protocol is None else protocol
        self.c = paho.Client(client_id=client_id, clean_session=clean, protocol=proto,
                             reconnect_on_failure=False,
                             transport="tcp" if ws_path is None else "websockets")
        if ws_path is not None:
            self.c.ws_set_options(path=ws_path)
        if tls is not None:
            self.c.tls_set(**tls)
        self.cond = threading.Condition()
        self.messages = []
        self.connacks = []              # (rc, session_present)
        self.subacks = {}               # mid -> granted QoS list
        self.unsubacks = set()
        self.disconnects = []           # rc of each on_disconnect
        self.started = False
        self.closed = False
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.on_unsubscribe = self._on_unsubscribe
        self.c.on_disconnect = self._on_disconnect
        _register(self)

    def __repr__(self):
        return "<PahoClient %s>" % self.name

    # -- callbacks (network thread)

    def _on_connect(self, client, userdata, flags, rc):
        with self.cond:
            self.connacks.append((rc, bool(flags.get("session present"))))
            self.cond.notify_all()

    def _on_message(self, client, userdata, msg):
        with self.cond:
            self.messages.append(Message(msg.topic, bytes(msg.payload), msg.qos,
                                         bool(msg.retain), bool(msg.dup), msg.mid,
                                         time.monotonic()))
            self.cond.notify_all()

    def _on_subscribe(self, client, userdata, mid, granted):
        with self.cond:
            self.subacks[mid] = list(granted)
            self.cond.notify_all()

    def _on_unsubscribe(self, client, userdata, mid):
        with self.cond:
            self.unsubacks.add(mid)
            self.cond.notify_all()

    def _on_disconnect(self, client, userdata, rc):
        with self.cond:
            self.disconnects.append(rc)
            self.cond.notify_all()

    # -- waiting

    def wait(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                v = pred()
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0:
                    raise HarnessError("%s: timed out after %.1f s waiting for %s "
                                       "(messages %s, disconnects %s)"
                                       % (self, timeout, what, self.summary(), self.disconnects))
                self.cond.wait(min(left, 0.1))

    def summary(self):
        return [(m.topic, m.payload[:30], m.qos) for m in self.messages[-5:]]

    # -- operations

    def connect(self, keepalive=10, will=None, timeout=REPLY_TIMEOUT):
        """will: (topic, payload, qos, retain).  Returns (rc, session_present)."""
        if will is not None:
            self.c.will_set(will[0], will[1], will[2], will[3])
        n = len(self.connacks)
        self.c.connect(HOST, self.port, keepalive)
        if not self.started:
            self.c.loop_start()
            self.started = True
        return self.wait(lambda: self.connacks[n] if len(self.connacks) > n else None,
                         timeout, "CONNACK")

    def connect_ok(self, keepalive=10, will=None):
        rc, sp = self.connect(keepalive, will)
        assert rc == 0, "%s: CONNACK return code %d" % (self, rc)
        return sp

    def subscribe(self, filters, timeout=REPLY_TIMEOUT):
        """filters: [(filter, qos)]; returns the granted codes."""
        res, mid = self.c.subscribe(list(filters))
        assert res == paho.MQTT_ERR_SUCCESS, "%s: subscribe failed locally: %d" % (self, res)
        return self.wait(lambda: self.subacks.get(mid), timeout, "SUBACK for mid %d" % mid)

    def unsubscribe(self, filters, timeout=REPLY_TIMEOUT):
        res, mid = self.c.unsubscribe(list(filters))
        assert res == paho.MQTT_ERR_SUCCESS, "%s: unsubscribe failed locally: %d" % (self, res)
        self.wait(lambda: mid in self.unsubacks, timeout, "UNSUBACK for mid %d" % mid)

    def publish(self, topic, payload=b"", qos=0, retain=False, timeout=REPLY_TIMEOUT):
        """Publishes and waits until paho has the acknowledgement (PUBACK at
        QoS 1, PUBCOMP at QoS 2; sent at QoS 0)."""
        info = self.c.publish(topic, payload, qos, retain)
        assert info.rc == paho.MQTT_ERR_SUCCESS, "%s: publish failed locally: %d" % (
            self, info.rc)
        wait_for(info.is_published, timeout, "%s: the %s of the QoS %d publish to %r"
                 % (self, ("send", "PUBACK", "PUBCOMP")[qos], qos, topic))
        return info.mid

    def payloads(self, topic=None):
        with self.cond:
            return [m.payload for m in self.messages if topic is None or m.topic == topic]

    def wait_messages(self, n, topic=None, timeout=10.0):
        self.wait(lambda: len(self.payloads(topic)) >= n, timeout,
                  "%d messages%s" % (n, " on %r" % topic if topic else ""))
        with self.cond:
            return [m for m in self.messages if topic is None or m.topic == topic]

    def wait_message(self, payload, topic=None, timeout=10.0):
        """The first message with this payload (and topic)."""
        def find():
            for m in self.messages:
                if m.payload == payload and (topic is None or m.topic == topic):
                    return m
            return None
        return self.wait(find, timeout, "payload %r%s" % (payload, " on %r" % topic
                                                           if topic else ""))

    def wait_disconnected(self, timeout=REPLY_TIMEOUT):
        self.wait(lambda: self.disconnects, timeout, "the connection to end")

    def disconnect(self, timeout=REPLY_TIMEOUT):
        """DISCONNECT and wait until paho has closed the connection."""
        n = len(self.disconnects)
        self.c.disconnect()
        self.wait(lambda: len(self.disconnects) > n, timeout, "the DISCONNECT to complete")

    def close(self):
        if self.closed:
            return
        self.closed = True
        try:
            self.c.disconnect()
        except Exception:           # already closed
            pass
        if self.started:
            self.c.loop_stop()


# ---------------------------------------------------------------- mosquitto clients

SUB_FORMAT = "MSG\t%t\t%q\t%r\t%l\t%x"
SubMessage = collections.namedtuple("SubMessage", "topic qos retain payload")


class MosquittoSub:
    """A mosquitto_sub process, stopped by pid in teardown.  Its debug
    output (-d) tells when the subscription is in place; messages are
    printed one a line as topic, QoS, retain flag, length and hex payload."""

    def __init__(self, port, topics, qos=0, args=()):
        # stdbuf: line-buffered output through the pipe (stdbuf execs, so
        # the pid is mosquitto_sub's own).
        self.cmd = ["stdbuf", "-oL", "mosquitto_sub", "-h", HOST, "-p", str(port), "-d", "-q", str(qos),
                    "-F", SUB_FORMAT]
        for t in topics:
            self.cmd += ["-t", t]
        self.cmd += list(args)
        self.lines = []
        self.messages = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        self.eof = False
        self._reader = threading.Thread(target=self._read, daemon=True,
                                        name="mosquitto_sub-%d" % self.pid)
        self._reader.start()
        _register(self)

    def __repr__(self):
        return "<mosquitto_sub pid %d>" % self.pid

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self.cond:
                self.lines.append(line)
                if line.startswith("MSG\t"):
                    parts = line.split("\t")
                    if len(parts) == 6:
                        self.messages.append(SubMessage(parts[1], int(parts[2]),
                                                        int(parts[3]), bytes.fromhex(parts[5])))
                    else:
                        self.lines.append("(unparsed message line)")
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def wait(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                v = pred()
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0 or (self.eof and not pred()):
                    raise HarnessError("%s: %s waiting for %s; output:\n  %s" % (
                        self, "exited" if self.eof else "timed out after %.1f s" % timeout,
                        what, "\n  ".join(self.lines[-20:])))
                self.cond.wait(min(left, 0.1))

    def wait_subscribed(self, timeout=REPLY_TIMEOUT):
        self.wait(lambda: any("received SUBACK" in ln for ln in self.lines), timeout,
                  "its SUBACK")

    def wait_connected(self, timeout=REPLY_TIMEOUT):
        self.wait(lambda: any("received CONNACK" in ln for ln in self.lines), timeout,
                  "its CONNACK")

    def wait_messages(self, n, timeout=10.0):
        self.wait(lambda: len(self.messages) >= n, timeout, "%d messages" % n)
        with self.cond:
            return list(self.messages)

    def kill(self, sig=signal.SIGKILL):
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def close(self):
        if self.proc.poll() is None:
            self.kill(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                self.proc.wait(5)
        self._reader.join(5)
        self.proc.stdout.close()


def mosquitto_pub(port, topic, message=None, qos=0, retain=False, file=None, null=False,
                  args=(), timeout=PROC_TIMEOUT):
    """Runs mosquitto_pub once (killed by pid if it overruns) and checks that
    it exited 0.  message (str), file (path) or null (empty payload)."""
    cmd = ["mosquitto_pub", "-h", HOST, "-p", str(port), "-t", topic, "-q", str(qos)]
    if retain:
        cmd.append("-r")
    if file is not None:
        cmd += ["-f", str(file)]
    elif null:
        cmd.append("-n")
    else:
        cmd += ["-m", message]
    cmd += list(args)
    try:
        res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                             timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise HarnessError("mosquitto_pub did not finish within %.0f s: %s; output %r"
                           % (timeout, " ".join(cmd), e.output)) from None
    assert res.returncode == 0, "mosquitto_pub exited %d: %s\n%s" % (
        res.returncode, " ".join(cmd), (res.stdout + res.stderr).decode("utf-8", "replace"))
    return res


# ---------------------------------------------------------------- checks

def check_delivery(published, acked, arrivals, label, exactly_once):
    """published: payloads in publish order (each unique); acked: those the
    publisher was told are stored; arrivals: payloads as received.  Every
    acknowledged payload arrives, nothing unknown arrives, first arrivals
    keep the publish order; exactly_once: nothing arrives twice."""
    problems = delivery_problems(published, acked, arrivals, exactly_once)
    assert not problems, "%s: published %d, acknowledged %d, arrivals %d:\n  %s" % (
        label, len(published), len(acked), len(arrivals), "\n  ".join(problems))


def delivery_problems(published, acked, arrivals, exactly_once):
    """What check_delivery() finds wrong, as a list of sentences."""
    index = {m: i for i, m in enumerate(published)}
    counts = collections.Counter(arrivals)
    missing = [m for m in published if m in acked and not counts[m]]
    unknown = [m for m in counts if m not in index]
    twice = sorted((m for m, c in counts.items() if c > 1), key=lambda m: index.get(m, -1))
    firsts, seen = [], set()
    for m in arrivals:
        if m in index and m not in seen:
            seen.add(m)
            firsts.append(m)
    order = [(a, b) for a, b in zip(firsts, firsts[1:]) if index[b] < index[a]]
    problems = []
    if missing:
        problems.append("%d acknowledged messages never delivered: %s"
                        % (len(missing), missing[:20]))
    if exactly_once and twice:
        problems.append("%d messages delivered more than once: %s" % (len(twice), twice[:20]))
    if unknown:
        problems.append("unknown messages delivered: %s" % unknown[:20])
    if order:
        problems.append("%d order violations (prev, next): %s" % (len(order), order[:20]))
    return problems
