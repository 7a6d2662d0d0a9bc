"""MQTT over WebSockets (broker.conf(5), "WebSockets"): listener blocks
with protocol websockets, plain and with TLS.

- the ecosystem's clients unchanged: paho (transport="websockets") and
  MQTT.js (ws://, wss://), at QoS 0, 1 and 2, sharing topics with MQTT
  clients over plain TCP; payloads of 1 MiB both ways;
- the upgrade, byte by byte with a raw socket: refusals (400, 426, 431),
  their log lines, the time it may take;
- frames: masking, text, control frames, fragments, the close handshake
  both ways (1000, 1001 at shutdown), a frame too long (1009);
- a WebSocket subscriber that does not read is held to
  client_output_limit, and one whose publishes wait is read again;
- broker -t on files with the new keys and mosquitto's."""

import base64
import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import time

import pytest

from broker_harness import (HOST, ConnectionClosed, HarnessError, add_root_user,
                            broker_binary, kill_pid, start_with_listeners, wait_for)
from mqtt_helpers import (CONNACK, PINGRESP, PUBACK, PUBLISH, SUBACK, PacketTimeout,
                          PahoClient, RawClient, connect_packet, connected_client, paho,
                          pingreq_packet, publish_packet, subscribe_packet)
from mqtt5_helpers import NodeClient
from test_backpressure import disconnect_behind_unread_deliveries
from test_tls import make_ca, make_cert, SERVER_SERIAL

pytestmark = pytest.mark.skipif(paho is None, reason="paho-mqtt missing (use /usr/bin/python3)")

HAVE_MQTTJS = shutil.which("node") is not None and \
    os.path.isdir(os.path.join(NodeClient.NODE_PATH, "mqtt"))

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
MIB = 1 << 20


# ---------------------------------------------------------------- a raw client

def frame(opcode, payload, fin=True, mask=b"\x37\xfa\x21\x3d", rsv=0):
    """A frame as a client sends it (masked unless mask is None)."""
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    m = 0x80 if mask is not None else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack("!H", n)
    else:
        head += bytes([m | 127]) + struct.pack("!Q", n)
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def request(path="/mqtt", protocols=("mqtt",), version="13", key=KEY, extra=""):
    lines = ["GET %s HTTP/1.1" % path, "Host: %s" % HOST, "Upgrade: websocket",
             "Connection: Upgrade"]
    if version is not None:
        lines.append("Sec-WebSocket-Version: %s" % version)
    if key is not None:
        lines.append("Sec-WebSocket-Key: %s" % key)
    if protocols:
        lines.append("Sec-WebSocket-Protocol: %s" % ", ".join(protocols))
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


class WsClient(RawClient):
    """A RawClient whose MQTT bytes go in masked binary frames after an
    upgrade, and come out of the broker's frames; the control frames it
    is sent are kept (controls), in order."""

    def __init__(self, port, head=None, tls=None, small=False, name=None, upgrade=True):
        """head: the upgrade request (default: request()); small: kernel
        buffers of 4 KiB (set before connecting), for a client that does
        not read."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if small:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(5.0)
        sock.connect((HOST, port))
        super().__init__(port, name=name or "ws", tls=tls, sock=sock)
        self.wire = b""                 # bytes read, not yet a whole frame
        self.controls = []              # (opcode, payload)
        if upgrade:
            status, headers, _ = self.upgrade(head if head is not None else request())
            assert status == 101, "%s: upgrade answered %d" % (self, status)
            assert headers["sec-websocket-accept"] == accept_of(KEY), headers

    def __repr__(self):
        return "<WsClient %s :%d>" % (self.name, self.local_port)

    def upgrade(self, head):
        """Sends head; returns the answer's (status, {header: value}, body)."""
        self.sock.sendall(head)
        while b"\r\n\r\n" not in self.wire:
            self.wire += self._recv(time.monotonic() + self.timeout)
        top, self.wire = self.wire.split(b"\r\n\r\n", 1)
        lines = top.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in
                   (line.split(":", 1) for line in lines[1:])}
        n = int(headers.get("content-length", "0"))
        while len(self.wire) < n:
            self.wire += self._recv(time.monotonic() + self.timeout)
        body, self.wire = self.wire[:n], self.wire[n:]
        return status, headers, body.decode()

    def send(self, data):
        self.send_frame(OP_BINARY, data)

    def send_frame(self, opcode, payload, **kw):
        with self.send_lock:
            self.sock.sendall(frame(opcode, payload, **kw))
            self.last_sent = time.monotonic()

    def read_frame(self, deadline):
        """(fin, opcode, payload) of the broker's next frame, which must
        not be masked."""
        while True:
            if len(self.wire) >= 2:
                b0, b1 = self.wire[0], self.wire[1]
                assert not b1 & 0x80, "%s: the broker masked a frame" % self
                n, off = b1 & 0x7F, 2
                if n == 126 and len(self.wire) >= 4:
                    n, off = struct.unpack("!H", self.wire[2:4])[0], 4
                elif n == 127 and len(self.wire) >= 10:
                    n, off = struct.unpack("!Q", self.wire[2:10])[0], 10
                if (b1 & 0x7F) < 126 or off > 2:
                    if len(self.wire) >= off + n:
                        payload = self.wire[off:off + n]
                        self.wire = self.wire[off + n:]
                        assert b0 & 0x70 == 0, "%s: reserved bits set" % self
                        return bool(b0 & 0x80), b0 & 0x0F, payload
            self.wire += self._recv(deadline, 1 << 20)

    def _fill(self, deadline):
        """The next frame: MQTT bytes for the packets, or a control frame
        kept."""
        fin, op, payload = self.read_frame(deadline)
        if op in (OP_BINARY, OP_CONT):
            assert op == OP_BINARY and fin, "%s: the broker fragmented a message" % self
            self.buf += payload
            return
        assert op in (OP_CLOSE, OP_PING, OP_PONG), "%s: a frame of opcode %d" % (self, op)
        self.controls.append((op, payload))

    def control(self, opcode, timeout=5.0):
        """The payload of the next control frame of this opcode; MQTT bytes
        that come before it are kept for the packets to read."""
        deadline = time.monotonic() + timeout
        while True:
            for i, (op, payload) in enumerate(self.controls):
                if op == opcode:
                    del self.controls[i]
                    return payload
            try:
                self._fill(deadline)
            except PacketTimeout:
                raise HarnessError("%s: no frame of opcode %d within %.1f s"
                                   % (self, opcode, timeout)) from None

    def close_code(self, timeout=5.0):
        """The code of the broker's close frame (None: none), and that the
        connection then ends."""
        payload = self.control(OP_CLOSE, timeout)
        self.expect_eof(timeout)
        return struct.unpack("!H", payload[:2])[0] if payload else None

    def expect_eof(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        try:
            while True:
                self.wire += self._recv(deadline)
        except ConnectionClosed:
            return
        except PacketTimeout:
            raise HarnessError("%s: still open %.1f s later" % (self, timeout)) from None


def accept_of(key):
    return base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                                         .encode()).digest()).decode()


def paho_on(port, name, topic=None, qos=1, **kw):
    """A connected paho client (PahoClient's keywords), subscribed to topic
    at qos if one is given."""
    c = PahoClient(port, name, **kw)
    c.connect_ok()
    if topic is not None:
        assert c.subscribe([(topic, qos)]) == [qos]
    return c


def ws_broker(factory, config=None, extra=(), tls=None):
    """A broker with an MQTT listener and a WebSocket one: (broker, port)."""
    conf = {"log_type": "information"}
    conf.update(config or {})
    b, (port,) = start_with_listeners(factory, [("websockets", list(extra) + (tls or []))],
                                      conf)
    return b, port


def refusal_logged(b, port, why, status):
    rx = re.compile(r"client 127\.0\.0\.1:\d+: WebSocket handshake failed on port %d: %s; "
                    r"answered %d" % (port, re.escape(why), status))
    wait_for(lambda: rx.search(b.log_text()), 10, "the refusal in the log: %s" % why)


# ---------------------------------------------------------------- certificates

@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("wspki")
    make_ca(d, "ca", "Test CA")
    make_cert(d, "server", "/CN=localhost", "ca", SERVER_SERIAL, server=True)
    return d


def tls_keys(pki):
    return ["certfile %s" % (pki / "server.crt"), "keyfile %s" % (pki / "server.key")]


def client_context(pki):
    return ssl.create_default_context(cafile=str(pki / "ca.crt"))


# ---------------------------------------------------------------- clients unchanged

def test_paho_over_websockets_shares_topics_with_tcp_clients(mqtt_factory):
    """paho over WebSockets and paho over TCP, QoS 0, 1 and 2 both ways."""
    b, port = ws_broker(mqtt_factory)
    ws_sub = paho_on(port, "ws-sub", "mix/#", 2, ws_path="/mqtt")
    tcp_sub = paho_on(b.mqtt_port, "tcp-sub", "mix/#", 2)
    ws_pub = paho_on(port, "ws-pub", ws_path="/")
    tcp_pub = paho_on(b.mqtt_port, "tcp-pub")
    for qos in (0, 1, 2):
        ws_pub.publish("mix/ws", b"from ws at %d" % qos, qos)
        tcp_pub.publish("mix/tcp", b"from tcp at %d" % qos, qos)
    want = sorted([("mix/ws", b"from ws at %d" % q, q) for q in (0, 1, 2)] +
                  [("mix/tcp", b"from tcp at %d" % q, q) for q in (0, 1, 2)])
    for sub in (ws_sub, tcp_sub):
        got = sub.wait_messages(6)
        assert sorted((m.topic, m.payload, m.qos) for m in got) == want, sub
    ws_pub.disconnect()
    log = b.log_text()
    assert re.search(r"client 127\.0\.0\.1:\d+: connected \(MQTT over WebSocket /mqtt\)",
                     log), log
    assert "listening on 127.0.0.1 port %d (MQTT over WebSockets)" % port in log


def node_events(node, n, size):
    """The messages an MQTT.js client received (topic, qos, len, sha1)
    once it ended, having published n of its own."""
    assert node.wait_event("suback")["granted"][0]["qos"] == 2
    node.wait_event("all_published", timeout=30)
    got = [node.wait_event("message", timeout=30) for _ in range(n)]
    node.wait_event("end", timeout=30)
    return sorted((m["topic"], m["qos"], m["len"], m["sha1"]) for m in got)


def exchange_with_mqttjs(b, url, ca=None, n=3, size=1000):
    """MQTT.js over url against a paho client over plain TCP: each
    publishes n messages of size bytes at QoS 0, 1 and 2 to the other."""
    tcp = paho_on(b.mqtt_port, "tcp-peer", "js/out", 2)
    node = NodeClient("mqttjs_ws_client.js", [url, "js-ws", "js/in", "js/out", n, size] +
                      ([ca] if ca else []))
    node.wait_event("connack")
    payloads = [bytes([i % 256]) * size for i in range(n)]
    # MQTT.js subscribes first: what is published after its SUBACK is its.
    wait_for(lambda: any(e.get("ev") == "suback" for e in node.events), 10,
             "MQTT.js's SUBACK")
    for i, p in enumerate(payloads):
        tcp.publish("js/in", p, i % 3, timeout=30)
    got = node_events(node, n, size)
    assert got == sorted(("js/in", i % 3, size, hashlib.sha1(p).hexdigest())
                         for i, p in enumerate(payloads))
    mine = tcp.wait_messages(n, "js/out", timeout=30)
    assert sorted((m.payload, m.qos) for m in mine) == sorted(
        (p, i % 3) for i, p in enumerate(payloads))


@pytest.mark.skipif(not HAVE_MQTTJS, reason="node or Debian's node-mqtt missing")
def test_mqttjs_over_websockets(mqtt_factory):
    b, port = ws_broker(mqtt_factory)
    exchange_with_mqttjs(b, "ws://127.0.0.1:%d/mqtt" % port)
    assert re.search(r"connected \(MQTT over WebSocket /mqtt\)", b.log_text())


@pytest.mark.skipif(not HAVE_MQTTJS, reason="node or Debian's node-mqtt missing")
def test_mqttjs_and_paho_over_wss(mqtt_factory, pki):
    b, port = ws_broker(mqtt_factory, tls=tls_keys(pki))
    exchange_with_mqttjs(b, "wss://127.0.0.1:%d/mqtt" % port, ca=str(pki / "ca.crt"))
    paho_wss = paho_on(port, "paho-wss", "wss/t", ws_path="/mqtt",
                       tls={"ca_certs": str(pki / "ca.crt")})
    paho_wss.publish("wss/t", b"over wss", 1)
    assert paho_wss.wait_messages(1)[0].payload == b"over wss"
    log = b.log_text()
    assert "listening on 127.0.0.1 port %d (MQTT over WebSockets over TLS" % port in log
    assert re.search(r"connected \(MQTT over WebSocket /mqtt over TLSv1\.[23] ", log), log


def test_frames_over_wss(mqtt_factory, pki):
    """The same frames through TLS: a ping, packets, a broken rule."""
    b, port = ws_broker(mqtt_factory, tls=tls_keys(pki))
    c = WsClient(port, tls=client_context(pki))
    c.connect_ok("wss-raw")
    c.send_frame(OP_PING, b"tls?")
    assert c.control(OP_PONG) == b"tls?"
    c.send(pingreq_packet())
    c.expect_next(PINGRESP)
    c.sock.sendall(frame(OP_TEXT, b"{}"))
    assert c.close_code() == 1003


def test_large_payloads_both_ways(mqtt_factory):
    """1 MiB from WebSocket to TCP and from TCP to WebSocket."""
    b, port = ws_broker(mqtt_factory, {"message_size_limit": "2m"})
    ws = paho_on(port, "ws-big", "big/to-ws", ws_path="/mqtt")
    tcp = paho_on(b.mqtt_port, "tcp-big", "big/to-tcp")
    up = os.urandom(MIB)
    down = os.urandom(MIB)
    ws.publish("big/to-tcp", up, 1, timeout=30)
    tcp.publish("big/to-ws", down, 1, timeout=30)
    assert tcp.wait_messages(1, "big/to-tcp", timeout=30)[0].payload == up
    assert ws.wait_messages(1, "big/to-ws", timeout=30)[0].payload == down


# ---------------------------------------------------------------- the upgrade

@pytest.mark.parametrize("head,status,why", [
    pytest.param(request(version="8"), 426, "Sec-WebSocket-Version is not 13", id="version"),
    pytest.param(request(key="c2hvcnQ="), 400, "Sec-WebSocket-Key is not 16 bytes in base64",
                 id="bad-key"),
    pytest.param(request(key=None), 400, "no Sec-WebSocket-Key header", id="no-key"),
    pytest.param(request(protocols=("wamp",)), 400, "no subprotocol mqtt or mqttv3.1 offered",
                 id="subprotocol"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400,
                 "no Upgrade: websocket header (not a WebSocket request)", id="plain-http"),
    pytest.param(b"POST /mqtt HTTP/1.1\r\nHost: x\r\n\r\n", 400, "not a GET request",
                 id="post"),
])
def test_a_bad_upgrade_is_answered_and_closed(mqtt_factory, head, status, why):
    b, port = ws_broker(mqtt_factory)
    c = WsClient(port, upgrade=False)
    got, headers, body = c.upgrade(head)
    assert got == status
    assert body == "MQTT over WebSockets: %s\n" % why
    assert headers["connection"] == "close"
    if status == 426:
        assert headers["sec-websocket-version"] == "13"
    c.expect_eof()
    refusal_logged(b, port, why, status)


def test_the_upgrade_answer_and_subprotocols(mqtt_factory):
    b, port = ws_broker(mqtt_factory)
    for offered, chosen in [(("mqtt",), "mqtt"), (("wamp", "mqttv3.1"), "mqttv3.1"),
                            (("mqttv3.1", "mqtt"), "mqtt"), ((), None)]:
        c = WsClient(port, upgrade=False)
        status, headers, _ = c.upgrade(request(path="/any/path?x=1", protocols=offered))
        assert status == 101
        assert headers["upgrade"] == "websocket" and headers["connection"] == "Upgrade"
        assert headers["sec-websocket-accept"] == ACCEPT
        assert headers.get("sec-websocket-protocol") == chosen, headers
        assert "sec-websocket-extensions" not in headers
        c.connect_ok("sub-%s" % chosen)
        c.close()


def test_headers_past_websockets_headers_size(mqtt_factory):
    """431 past the size; a request within it, cookies and all, is taken."""
    b, port = ws_broker(mqtt_factory, {"websockets_headers_size": "1k"})
    c = WsClient(port, upgrade=False)
    status, _, body = c.upgrade(request(extra="Cookie: %s\r\n" % ("c" * 1200)))
    assert status == 431
    c.expect_eof()
    refusal_logged(b, port, "request head larger than websockets_headers_size", 431)
    ok = WsClient(port, head=request(extra="Cookie: %s\r\n" % ("c" * 700)))
    ok.connect_ok("cookies")
    # The limit is on the head: frames sent with it are not counted.
    head = request()
    c = WsClient(port, upgrade=False)
    c.sock.sendall(head + frame(OP_BINARY, connect_packet("early")))
    _, headers, _ = c.upgrade(b"")
    assert headers["sec-websocket-accept"] == ACCEPT
    assert c.expect_next(CONNACK).rc == 0


def test_the_upgrade_in_pieces_and_its_time(mqtt_factory):
    """A request byte by byte is taken; one that does not end within
    tls_handshake_timeout is closed."""
    b, port = ws_broker(mqtt_factory, {"tls_handshake_timeout": "0.5"})
    c = WsClient(port, upgrade=False)
    head = request()
    for i in range(len(head) - 1):
        c.sock.sendall(head[i:i + 1])
    status, _, _ = c.upgrade(head[-1:])
    assert status == 101
    # A CONNECT frame byte by byte too.
    for byte in frame(OP_BINARY, connect_packet("slowly")):
        c.sock.sendall(bytes([byte]))
    assert c.expect_next(CONNACK).rc == 0
    late = WsClient(port, upgrade=False)
    started = time.monotonic()
    late.sock.sendall(head[:20])
    late.expect_eof(timeout=5)
    assert time.monotonic() - started >= 0.45
    refusal = re.compile(r"WebSocket handshake failed on port %d: not completed within "
                         r"tls_handshake_timeout \(0\.5 s\)" % port)
    wait_for(lambda: refusal.search(b.log_text()), 5, "the time-out in the log")
    # One that leaves before a byte is logged at level information only.
    gone = WsClient(port, upgrade=False)
    gone.close()
    wait_for(lambda: "disconnected before a WebSocket upgrade" in b.log_text(), 5,
             "the silent client in the log")


# ---------------------------------------------------------------- frames

def test_frames_that_break_a_rule_close_the_connection(mqtt_factory):
    b, port = ws_broker(mqtt_factory, {"message_size_limit": "64k"})
    cases = [
        (frame(OP_BINARY, pingreq_packet(), mask=None), 1002, "a frame not masked"),
        (frame(OP_TEXT, b"{}"), 1003, "a text frame (MQTT is binary)"),
        (frame(OP_BINARY, pingreq_packet(), rsv=0x40), 1002,
         "a reserved bit set (no extension was agreed)"),
        (frame(OP_PING, b"p", fin=False), 1002, "a fragmented control frame"),
        (frame(OP_CONT, b"x"), 1002, "a continuation frame outside a message"),
        # A frame's header claiming more than message_size_limit + 192 KiB.
        (bytes([0x82, 0xFF]) + struct.pack("!Q", (64 << 10) + (192 << 10) + 1) + b"mask",
         1009, "a frame longer than the listener takes"),
    ]
    for i, (data, code, why) in enumerate(cases):
        c = WsClient(port, name="rule%d" % i)
        c.connect_ok("rule%d" % i)
        c.sock.sendall(data)
        assert c.close_code() == code, why
        # A broken rule is the client's fault: a notice, as for MQTT.
        rx = re.compile(r"notice: client \S+ id rule%d: closed: WebSocket: %s "
                        r"\(closed with %d\)$" % (i, re.escape(why), code), re.M)
        wait_for(lambda: rx.search(b.log_text()), 5, "the close in the log: %s" % why)


def test_ping_pong_fragments_and_the_close_handshake(mqtt_factory):
    b, port = ws_broker(mqtt_factory)
    c = WsClient(port)
    # A CONNECT over a fragmented message with a ping between its parts.
    packet = connect_packet("frags")
    c.send_frame(OP_BINARY, packet[:5], fin=False)
    c.send_frame(OP_PING, b"hello?")
    c.send_frame(OP_CONT, packet[5:9], fin=False)
    c.send_frame(OP_CONT, packet[9:])
    assert c.control(OP_PONG) == b"hello?"
    assert c.expect_next(CONNACK).rc == 0
    # Several packets in one frame; a pong is ignored.
    c.send_frame(OP_PONG, b"")
    c.send(pingreq_packet() + subscribe_packet(1, [("f/t", 1)]) + pingreq_packet())
    c.expect_next(PINGRESP)
    assert c.expect_next(SUBACK).codes == [1]
    c.expect_next(PINGRESP)
    # The client closes: the broker answers with the same code and ends.
    c.send_frame(OP_CLOSE, struct.pack("!H", 1000) + b"bye")
    assert c.close_code() == 1000
    wait_for(lambda: "id frags: closed: the client closed its WebSocket (1000)"
             in b.log_text(), 5, "the close in the log")
    # Without a code: the answer has none either.
    c = WsClient(port)
    c.connect_ok("nocode")
    c.send_frame(OP_CLOSE, b"")
    assert c.close_code() is None


def test_the_broker_closes_with_a_close_frame(mqtt_factory):
    """After what the client is owed: 1000 when MQTT ends the connection,
    1001 when the broker shuts down."""
    b, port = ws_broker(mqtt_factory)
    c = WsClient(port)
    c.connect_ok("twice")
    c.send(connect_packet("twice"))     # a second CONNECT: a protocol violation
    assert c.close_code() == 1000
    # A subscriber is owed a message when the broker stops.
    c = WsClient(port)
    c.connect_ok("stays")
    c.subscribe([("down/t", 0)])
    p = RawClient(b.mqtt_port)
    p.connect_ok("pub")
    p.send(publish_packet("down/t", b"last words"))
    assert c.expect(PUBLISH).payload == b"last words"
    b.stop()
    assert c.close_code() == 1001


# ---------------------------------------------------------------- limits

SIZE = 16 << 10
COUNT = 640             # 10 MiB: more than the socket buffers and the delivery socket hold


def test_a_websocket_subscriber_that_does_not_read_is_held_to_client_output_limit(
        mqtt_factory):
    """Its frames waiting in the master count for client_output_limit: the
    master stops taking its deliveries (its topicd keeps it behind, and
    keeps it there), and once it reads it gets every message in order."""
    b, port = ws_broker(mqtt_factory, {"client_output_limit": 4096})
    slow = WsClient(port, small=True, name="silent")
    slow.connect_ok("ws-silent")
    assert slow.subscribe([("ws/bp", 0)]) == [0]
    pub = b.publisher()
    sent = [("%06d " % i).encode() + b"w" * (SIZE - 7) for i in range(COUNT)]
    for k in range(0, COUNT, 32):
        pub.publish_pipelined([("ws/bp", sent[i].decode()) for i in range(k, k + 32)])
    st = b.topicd_status("ws/bp")
    assert st["lag"] > 0, "nobody is behind: the master took every delivery"
    time.sleep(0.5)                     # an absence of progress, watched over a period
    again = b.topicd_status("ws/bp")
    assert again["lag"] == st["lag"], "the silent subscriber moved: lag %d, then %d" % (
        st["lag"], again["lag"])
    got = []
    while len(got) < COUNT:
        p = slow.expect(PUBLISH, timeout=10)
        got.append(p.payload)
    assert got == sent
    wait_for(lambda: b.topicd_status("ws/bp")["lag"] == 0, 10, "nobody behind")


def test_a_websocket_publisher_held_back_is_read_again(mqtt_factory):
    """max_client_pending stops the reading of a WebSocket publisher whose
    publishes wait for a stopped topicd; every one is answered once it
    goes on."""
    b, port = ws_broker(mqtt_factory, {"max_client_pending": 4})
    c = WsClient(port)
    c.connect_ok("held")
    c.publish("held/t", b"first", qos=1)
    tpid = b.wait_topicd("held/t")
    kill_pid(tpid, signal.SIGSTOP)
    try:
        for i in range(40):
            c.send(publish_packet("held/t", b"m%d" % i, qos=1, pid=100 + i))
        with pytest.raises(HarnessError):
            c.expect(PUBACK, timeout=0.5)
    finally:
        kill_pid(tpid, signal.SIGCONT)
    acked = sorted(c.expect(PUBACK, timeout=10).pid for _ in range(40))
    assert acked == list(range(100, 140))


def silent_ws(port, tls=None):
    """For disconnect_behind_unread_deliveries: a silent subscriber over
    WebSockets (over TLS with the tls context), and its DISCONNECT in a
    frame."""
    def start(client_id, topic, will):
        slow = WsClient(port, tls=tls, small=True, name=client_id)
        slow.connect_ok(client_id, will=will)
        assert slow.subscribe([(topic, 0)]) == [0]
        return slow.sock, frame(OP_BINARY, b"\xe0\x00")
    return start


@pytest.mark.parametrize("over_tls", [False, True], ids=["ws", "wss"])
def test_a_websocket_disconnect_behind_unread_deliveries_cancels_the_will(mqtt_factory,
                                                                         pki, over_tls):
    """As over TCP and TLS: the DISCONNECT frame the socket still holds
    when a write fails is read (through OpenSSL, then the WebSocket
    filter), and the will is not published."""
    b, port = ws_broker(mqtt_factory, {"client_output_limit": 4096,
                                       "log_type": "information"},
                        tls=tls_keys(pki) if over_tls else None)
    disconnect_behind_unread_deliveries(
        b, silent_ws(port, client_context(pki) if over_tls else None),
        "wsrst" if over_tls else "wrst")


def test_a_disconnect_before_the_close_frame_is_heard_past_max_client_pending(mqtt_factory):
    """MQTT.js's end() and a browser's close() send DISCONNECT and then a
    close frame.  Behind a burst of publishes that max_client_pending
    holds back, the close frame comes in the same read: the publishes and
    the DISCONNECT before it are handled all the same, and the will is
    not published."""
    b, port = ws_broker(mqtt_factory, {"max_client_pending": 1})
    watch = PahoClient(b.mqtt_port, "wsw-watch")
    watch.connect_ok()
    watch.subscribe([("wsw/#", 1)])
    c = WsClient(port)
    c.connect_ok("wsw-client", will=("wsw/will", b"gone without a word", 1, False))
    burst = b"".join(publish_packet("wsw/t", b"m%d" % i, qos=1, pid=i + 1) for i in range(50))
    c.sock.sendall(frame(OP_BINARY, burst + b"\xe0\x00") +
                   frame(OP_CLOSE, struct.pack("!H", 1000)))
    wait_for(lambda: "id wsw-client: closed" in b.log_text(), 10, "the client's close")
    assert "id wsw-client: closed: DISCONNECT" in b.log_text(), b.log_tail()
    watch.wait_messages(50, topic="wsw/t")
    # A will would have been published at the close: a message published
    # after it comes first if there was none.
    connected_client(b.mqtt_port, "wsw-after").publish("wsw/will", b"after", 1)
    watch.wait_message(b"after", topic="wsw/will")
    assert watch.payloads("wsw/will") == [b"after"]
    assert watch.payloads("wsw/t") == [b"m%d" % i for i in range(50)]


# ---------------------------------------------------------------- broker -t

def check(tmp_path, text):
    conf = tmp_path / "ws.conf"
    conf.write_text(text)
    add_root_user(conf)
    res = subprocess.run([str(broker_binary()), "-t", "-c", str(conf)],
                         stdin=subprocess.DEVNULL, capture_output=True, timeout=10,
                         cwd=str(tmp_path))
    return conf, res.returncode, res.stdout.decode() + res.stderr.decode()


def test_check_takes_websocket_listeners(tmp_path, pki):
    conf, rc, out = check(tmp_path, "websockets_headers_size 0\nwebsockets_log_level 255\n"
                          "listener 9001\nprotocol websockets\n"
                          "listener 9443\nprotocol websockets\n%s\n"
                          "websockets_headers_size 8192\n" % "\n".join(tls_keys(pki)))
    assert (rc, out) == (0, "%s: configuration ok\nwarning: %s:9: websockets_headers_size given "
                         "again: this line replaces the one before\n" % (conf, conf))


@pytest.mark.parametrize("text,error", [
    ("listener 9001\nprotocol websockets\nhttp_dir /var/www\n",
     "3: 'http_dir' is mosquitto's: files are not served over HTTP here (a listener with"
     " protocol websockets takes MQTT over WebSockets on any path): remove the line"),
    ("websockets_headers_size 70000\n", "1: bad value '70000' for key"
     " 'websockets_headers_size': expected a size in bytes between 0 and 65535 (suffix k,"
     " m or g allowed)"),
    ("listener 9443\nprotocol websockets\ncertfile /nonexistent.crt\n",
     "1: listener 9443: certfile without keyfile"),
    ("listener 9001\nprotocol websocket\n", "2: bad value 'websocket' for key 'protocol':"
     " expected mqtt, websockets, json_consumer or json_publisher"),
])
def test_check_refuses_bad_websocket_lines(tmp_path, text, error):
    conf, rc, out = check(tmp_path, text)
    assert rc == 2, out
    assert out == "%s:%s\n" % (conf, error), out
