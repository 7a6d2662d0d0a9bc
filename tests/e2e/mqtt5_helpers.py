"""MQTT 5.0 packets for the end-to-end tests, built and read without the
broker's codec: properties go through Debian's paho-mqtt (its
Properties class packs and unpacks them), the rest is written here.

- props(ptype, **values): a property block (with its length), e.g.
  props(CONNECT, SessionExpiryInterval=60).
- connect5(), publish5(), subscribe5(), unsubscribe5(), ack5(),
  disconnect5(): client packets.
- decode5(packet): the fields of a packet from the server at level 5
  (rc, props as a dict, pid, topic, payload, codes ...).
- V5Client: a RawClient (mqtt_helpers) speaking level 5.
- Paho5: paho-mqtt's client in MQTTv5 mode (PahoClient's records, with
  properties and reason codes).
- NodeClient: an MQTT.js script (Debian's node-mqtt) run by node.
"""

import json
import os
import signal
import subprocess
import threading
import time
import types

from broker_harness import HOST, HarnessError, wait_for
from mqtt_helpers import (CONNACK, CONNECT, DISCONNECT, PUBACK, PUBCOMP, PUBLISH,
                          PUBREC, PUBREL, REPLY_TIMEOUT, SUBACK, SUBSCRIBE, UNSUBACK,
                          UNSUBSCRIBE, Packet, PahoClient, RawClient, _register, mstr, packet,
                          paho)

try:                                    # Debian's python3-paho-mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    from paho.mqtt.subscribeoptions import SubscribeOptions
except ImportError:                     # pragma: no cover
    PacketTypes = Properties = SubscribeOptions = None

AUTH = 15
_PT = {CONNECT: "CONNECT", CONNACK: "CONNACK", PUBLISH: "PUBLISH", PUBACK: "PUBACK",
       PUBREC: "PUBREC", PUBREL: "PUBREL", PUBCOMP: "PUBCOMP", SUBSCRIBE: "SUBSCRIBE",
       SUBACK: "SUBACK", UNSUBSCRIBE: "UNSUBSCRIBE", UNSUBACK: "UNSUBACK",
       DISCONNECT: "DISCONNECT", AUTH: "AUTH"}


def _ptype(t):
    return getattr(PacketTypes, _PT[t])


def props(ptype, **values):
    """A property block with its length; WillProps=True packs will
    properties.  Values as paho names them (UserProperty: a list of
    pairs)."""
    p = Properties(PacketTypes.WILLMESSAGE if values.pop("WillProps", False) else _ptype(ptype))
    for k, v in values.items():
        setattr(p, k, v)
    return p.pack()


def connect5(client_id, clean=True, keepalive=60, cprops=b"\x00", will=None,
             username=None, password=None):
    """will: (topic, payload, qos, retain, will property block)."""
    f = 0x02 if clean else 0
    payload = mstr(client_id)
    if will is not None:
        wt, wp, wq, wr, wprops = will
        f |= 0x04 | (wq << 3) | (0x20 if wr else 0)
        payload += wprops + mstr(wt) + mstr(wp if isinstance(wp, bytes) else wp.encode())
    if username is not None:
        f |= 0x80
        payload += mstr(username)
    if password is not None:
        f |= 0x40
        payload += mstr(password)
    body = mstr("MQTT") + bytes([5, f]) + keepalive.to_bytes(2, "big") + cprops + payload
    return packet(CONNECT, 0, body)


def publish5(topic, payload=b"", qos=0, pid=None, retain=False, dup=False, pprops=b"\x00"):
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    f = (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = mstr(topic)
    if qos > 0:
        body += pid.to_bytes(2, "big")
    return packet(PUBLISH, f, body + pprops + payload)


def subscribe5(pid, filters, sprops=b"\x00"):
    """filters: (filter, options byte: QoS | No Local 0x04 | Retain As
    Published 0x08 | Retain Handling << 4)."""
    body = pid.to_bytes(2, "big") + sprops
    for flt, opts in filters:
        body += mstr(flt) + bytes([opts])
    return packet(SUBSCRIBE, 0x02, body)


def unsubscribe5(pid, filters):
    return packet(UNSUBSCRIBE, 0x02,
                  pid.to_bytes(2, "big") + b"\x00" + b"".join(mstr(f) for f in filters))


def ack5(ptype, pid, rc=0):
    return packet(ptype, 0x02 if ptype == PUBREL else 0, pid.to_bytes(2, "big") + bytes([rc, 0]))


def disconnect5(rc=0, dprops=b"\x00"):
    return packet(DISCONNECT, 0, bytes([rc]) + dprops)


def _unpack(ptype, b):
    if not b:
        return {}, 0
    p, n = Properties(_ptype(ptype)).unpack(b)
    return p.json(), n


def decode5(p):
    """A namespace of p's fields at level 5: type, rc, props (dict, paho's
    names), and by type session_present, pid, topic, payload, qos,
    retain, dup, codes."""
    b, t = p.body, p.type
    d = types.SimpleNamespace(rc=0, props={})
    if t == CONNACK:
        d.session_present, d.rc = bool(b[0] & 1), b[1]
        d.props, _ = _unpack(t, b[2:])
    elif t == PUBLISH:
        d.qos, d.dup, d.retain = (p.flags >> 1) & 3, bool(p.flags & 8), bool(p.flags & 1)
        n = int.from_bytes(b[0:2], "big")
        d.topic, i = b[2:2 + n].decode("utf-8"), 2 + n
        d.pid = 0
        if d.qos:
            d.pid, i = int.from_bytes(b[i:i + 2], "big"), i + 2
        d.props, used = _unpack(t, b[i:])
        d.payload = b[i + used:]
    elif t in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        d.pid = int.from_bytes(b[0:2], "big")
        d.rc = b[2] if len(b) > 2 else 0
        d.props, _ = _unpack(t, b[3:])
    elif t in (SUBACK, UNSUBACK):
        d.pid = int.from_bytes(b[0:2], "big")
        d.props, used = _unpack(t, b[2:])
        d.codes = list(b[2 + used:])
    elif t == DISCONNECT:
        d.rc = b[0] if b else 0
        d.props, _ = _unpack(t, b[1:])
    return d


class Packet5(Packet):
    """A packet from the server read at level 5 (decode5's fields)."""

    def _decode(self):
        self.__dict__.update(vars(decode5(self)))


class V5Client(RawClient):
    """A raw connection at MQTT 5.0: the test decides every byte."""

    packet_class = Packet5

    def __init__(self, port, name=None, **kw):
        super().__init__(port, name=name or "v5", **kw)

    def next5(self, ptype, timeout=None):
        """The next packet of that type (others stay queued)."""
        return self.expect(ptype, timeout=timeout)

    def connect5(self, client_id, timeout=None, **kw):
        self.send(connect5(client_id, **kw))
        return self.next5(CONNACK, timeout)

    def connect5_ok(self, client_id, **kw):
        ack = self.connect5(client_id, **kw)
        assert ack.rc == 0, "CONNACK %#x %r" % (ack.rc, ack.props)
        return ack

    def subscribe5(self, filters, sprops=b"\x00", timeout=None):
        pid = self.alloc_pid()
        self.send(subscribe5(pid, filters, sprops))
        ack = self.next5(SUBACK, timeout)
        assert ack.pid == pid
        return ack

    def publish5(self, topic, payload=b"", qos=0, retain=False, pprops=b"\x00", timeout=None):
        """A publish; at QoS 1 its PUBACK (decoded), at QoS 2 its PUBCOMP
        after the PUBREC (if that is a success)."""
        pid = self.alloc_pid() if qos else None
        self.send(publish5(topic, payload, qos, pid, retain, pprops=pprops))
        if qos == 0:
            return None
        ack = self.next5(PUBACK if qos == 1 else PUBREC, timeout)
        assert ack.pid == pid
        if qos == 2 and ack.rc < 0x80:
            self.send(ack5(PUBREL, pid))
            ack = self.next5(PUBCOMP, timeout)
        return ack

    def expect_disconnect(self, rc, timeout=None):
        """The server's DISCONNECT with reason rc, then the end of the
        connection."""
        d = self.next5(DISCONNECT, timeout)
        assert d.rc == rc, "DISCONNECT %#x (%r), expected %#x" % (d.rc, d.props, rc)
        self.expect_closed(timeout)
        return d


class Paho5(PahoClient):
    """paho-mqtt 1.6 in MQTTv5 mode: what PahoClient records, plus the
    CONNACK's properties, each message's properties, the SUBACK reason
    codes and the DISCONNECT's reason code."""

    def __init__(self, port, client_id="", name=None):
        super().__init__(port, client_id, None, protocol=paho.MQTTv5, name=name)
        self.connack_props = []
        self.msg_props = []             # paho Properties of each message, in order
        self.c.on_connect = self._on_connect5
        self.c.on_subscribe = self._on_subscribe5
        self.c.on_unsubscribe = self._on_unsubscribe5
        self.c.on_disconnect = self._on_disconnect5
        self.c.on_message = self._on_message5

    def __repr__(self):
        return "<Paho5 %s>" % self.name

    def _on_connect5(self, client, userdata, flags, rc, properties=None):
        with self.cond:
            self.connacks.append((rc.value, bool(flags.get("session present"))))
            self.connack_props.append(properties.json() if properties else {})
            self.cond.notify_all()

    def _on_message5(self, client, userdata, msg):
        with self.cond:
            self.msg_props.append(msg.properties)
        self._on_message(client, userdata, msg)

    def _on_subscribe5(self, client, userdata, mid, codes, properties=None):
        with self.cond:
            self.subacks[mid] = [c.value for c in codes]
            self.cond.notify_all()

    def _on_unsubscribe5(self, client, userdata, mid, properties=None, codes=None):
        self._on_unsubscribe(client, userdata, mid)

    def _on_disconnect5(self, client, userdata, rc, properties=None):
        with self.cond:
            self.disconnects.append(rc.value if hasattr(rc, "value") else rc)
            self.cond.notify_all()

    def connect5(self, keepalive=10, clean=True, cprops=None, timeout=REPLY_TIMEOUT):
        """cprops: CONNECT properties as keyword values.  Returns (reason
        code, session present, CONNACK properties)."""
        p = None
        if cprops:
            p = Properties(PacketTypes.CONNECT)
            for k, v in cprops.items():
                setattr(p, k, v)
        n = len(self.connacks)
        self.c.connect(HOST, self.port, keepalive, clean_start=clean, properties=p)
        if not self.started:
            self.c.loop_start()
            self.started = True
        self.wait(lambda: len(self.connacks) > n, timeout, "CONNACK")
        return self.connacks[n] + (self.connack_props[n],)

    def subscribe5(self, flt, qos=0, no_local=False, rap=False, rh=0, timeout=REPLY_TIMEOUT):
        opts = SubscribeOptions(qos=qos, noLocal=no_local, retainAsPublished=rap,
                                retainHandling=rh)
        res, mid = self.c.subscribe(flt, options=opts)
        assert res == paho.MQTT_ERR_SUCCESS, "%s: subscribe failed locally: %d" % (self, res)
        return self.wait(lambda: self.subacks.get(mid), timeout, "SUBACK for mid %d" % mid)

    def publish5(self, topic, payload=b"", qos=0, retain=False, timeout=REPLY_TIMEOUT, **pp):
        p = None
        if pp:
            p = Properties(PacketTypes.PUBLISH)
            for k, v in pp.items():
                setattr(p, k, v)
        info = self.c.publish(topic, payload, qos, retain, properties=p)
        assert info.rc == paho.MQTT_ERR_SUCCESS, "%s: publish failed locally: %d" % (
            self, info.rc)
        wait_for(info.is_published, timeout, "%s: the ack of the QoS %d publish to %r"
                 % (self, qos, topic))
        return info.mid


class NodeClient:
    """A node process running one of the tests' MQTT.js scripts, whose
    stdout is JSON lines; stopped by pid in teardown."""

    NODE_PATH = "/usr/share/nodejs"      # Debian's node-mqtt

    def __init__(self, script, args):
        env = dict(os.environ, NODE_PATH=self.NODE_PATH)
        self.cmd = ["node", os.path.join(os.path.dirname(__file__), script)] + \
            [str(a) for a in args]
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env)
        self.pid = self.proc.pid
        self.events, self.lines = [], []
        self.eof = False
        self.cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        _register(self)

    def __repr__(self):
        return "<node %s pid %d>" % (self.cmd[1], self.pid)

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self.cond:
                self.lines.append(line)
                try:
                    self.events.append(json.loads(line))
                except ValueError:
                    pass
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def wait_event(self, ev, timeout=10.0):
        """The first event of that kind (each is returned once)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for e in self.events:
                    if e.get("ev") == ev and not e.get("_seen"):
                        e["_seen"] = True
                        return e
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    raise HarnessError("%s: no %r event (%s); output:\n  %s" % (
                        self, ev, "exited" if self.eof else "timed out",
                        "\n  ".join(self.lines[-20:])))
                self.cond.wait(min(left, 0.1))

    def close(self):
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._reader.join(5)
        self.proc.stdout.close()
