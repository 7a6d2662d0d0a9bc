"""Large messages: a record between the master and the topicds of 16 KiB
or more has its body in a shared ring (the master's to the topicd, the
topicd's to the master), written to the client from where it is; when a
ring has no room, one of 64 KiB goes alone in its datagram and one over
128 KiB in a sealed memfd; the others are packed with their neighbours.
A subscriber that does not read holds slots of its topicd's ring, and
another subscriber of the topic is not held up.  Streams that mix them, up to 200
KiB and up to message_size_limit itself, arrive byte for byte and in
order, over MQTT at each QoS and over JSON-lines; one byte more than the
limit is refused.  The socket through which topicds hand a
client its deliveries has client_delivery_buffer's size, and a size the
kernel caps is logged once."""

import base64
import json
import os
import random
import re
import subprocess

import pytest

from broker_harness import DLQ, check_dead_letter, wait_dead_letter, wait_for
from mqtt_helpers import (Receiver, SilentSubscriber, connected_client, mosquitto_pub,
                          publish_packet)

K = 1024
# Around 64 KiB, where a record goes alone (the record's other fields
# count too), over 128 KiB (by memfd), and tiny, interleaved.
SIZES = [64 * K, 1, 32 * K, 64 * K - 64, 64 * K + 1, 200 * K, 48 * K, 0, 64 * K, 129 * K]
# A JSON-lines PUB of text escapes some of it: its line must stay under
# message_size_limit (256 KiB).
JSON_SIZES = [s if s <= 129 * K else 129 * K for s in SIZES]
LIMIT = 96 * K          # message_size_limit where the limit itself is tested
QUIET = 0.5


def payloads(seed, sizes=SIZES):
    """Random bytes (also invalid UTF-8) of the given sizes, each starting
    with its index so that a mix-up is easy to read."""
    rng = random.Random(seed)
    return [(b"%03d:" % i + rng.randbytes(n))[:n] if n >= 4 else rng.randbytes(n)
            for i, n in enumerate(sizes)]


def texts(seed, sizes=SIZES):
    """Strings of the given sizes in UTF-8 bytes, with multi-byte characters
    and characters JSON escapes."""
    rng = random.Random(seed)
    alphabet = "abcxyz0123 \u00e9\u00fc\u2713\u20ac\U0001F600\"\\\n\t/"
    out = []
    for i, n in enumerate(sizes):
        chars = ["%03d:" % i] if n >= 4 else []
        left = n - len(chars[0]) if chars else n
        while left > 0:
            c = rng.choice(alphabet)
            if len(c.encode()) > left:
                c = "a"
            chars.append(c)
            left -= len(c.encode())
        out.append("".join(chars))
    assert [len(t.encode()) for t in out] == list(sizes)
    return out


def mqtt_receiver(b, client_id, topic):
    r = Receiver(lambda: b.mqtt_port, client_id, clean=True)
    r.connect()
    assert r.subscribe([(topic, 2)]) == [2]
    r.start()
    return r


def check_arrivals(r, topic, sent, qos):
    r.wait_count(len(sent), topic)
    r.settle()
    got = r.payloads(topic)
    assert [len(p) for p in got] == [len(p) for p in sent], "sizes differ"
    assert got == sent, "the bytes differ: %s" % [i for i, (a, b) in enumerate(zip(got, sent))
                                                  if a != b]
    assert {a.qos for a in r.arrivals if a.topic == topic} == {qos}
    assert not r.duplicates, r.duplicates


def json_bytes(d):
    """The bytes a JSON-lines consumer was given: a string as its UTF-8
    bytes, base64 when the delivery says so."""
    obj = json.loads(d.raw)
    if obj.get("encoding") == "base64":
        return base64.b64decode(obj["msg"])
    return obj["msg"].encode("utf-8")


# ---------------------------------------------------------------- MQTT

@pytest.mark.parametrize("qos", [0, 1, 2])
def test_large_mqtt_payloads_arrive_intact_and_in_order(mqtt_broker, qos):
    topic = "large/q%d" % qos
    r = mqtt_receiver(mqtt_broker, "large-sub-%d" % qos, topic)
    cons = mqtt_broker.consumer("large-json-%d" % qos)
    cons.subscribe(topic)
    pub = connected_client(mqtt_broker.mqtt_port, "large-pub-%d" % qos)
    sent = payloads(qos)
    for p in sent:
        pub.publish(topic, p, qos)
    pub.ping()                          # QoS 0: every PUBLISH before it was read
    check_arrivals(r, topic, sent, qos)
    cons.wait_messages(len(sent), topic)
    cons.settle()
    assert [json_bytes(d) for d in cons.deliveries] == sent, "the JSON-lines consumer's differ"


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_mqtt_payload_of_message_size_limit_is_taken_and_one_byte_more_refused(mqtt_factory,
                                                                              qos):
    b = mqtt_factory({"message_size_limit": LIMIT})
    topic = "limit/q%d" % qos
    r = mqtt_receiver(b, "limit-sub-%d" % qos, topic)
    pub = connected_client(b.mqtt_port, "limit-pub-%d" % qos)
    at_limit = os.urandom(LIMIT)
    pub.publish(topic, at_limit, qos)
    pub.ping()
    check_arrivals(r, topic, [at_limit], qos)
    over = connected_client(b.mqtt_port, "over-pub-%d" % qos)
    over.send(publish_packet(topic, os.urandom(LIMIT + 1), qos, 7 if qos else None))
    over.expect_closed()                # no PUBACK / PUBREC: closed
    after = connected_client(b.mqtt_port, "after-pub-%d" % qos)
    after.publish(topic, b"after", qos)
    after.ping()
    r.wait_payload(b"after", topic)
    assert r.payloads(topic) == [at_limit, b"after"], "the payload over the limit was taken"


# ---------------------------------------------------------------- JSON-lines

def pub_line(topic, msg_len):
    """A PUB line (without its end of line) whose msg is a string of
    msg_len ASCII bytes."""
    return '{"type":"PUB","topic":"%s","msg":"%s"}' % (topic, "L" * msg_len)


def test_large_json_messages_arrive_intact_and_in_order(mqtt_broker):
    topic = "large/json"
    r = mqtt_receiver(mqtt_broker, "large-json-sub", topic)
    cons = mqtt_broker.consumer("large-json")
    cons.subscribe(topic)
    sent = texts(7, JSON_SIZES)
    pub = mqtt_broker.publisher()
    for m in sent:
        pub.publish(topic, m)
    assert cons.wait_messages(len(sent), topic) == sent, "the JSON-lines consumer's differ"
    cons.settle()
    check_arrivals(r, topic, [m.encode("utf-8") for m in sent], 2)


@pytest.mark.parametrize("eol", [pytest.param(b"\n", id="lf"),
                                 pytest.param(b"\r\n", id="crlf")])
def test_json_line_of_message_size_limit_is_taken_and_one_byte_more_refused(broker_factory,
                                                                           eol):
    b = broker_factory({"message_size_limit": LIMIT})
    dlq = b.consumer("limit-dlq")
    dlq.subscribe(DLQ)
    cons = b.consumer("limit-json")
    cons.subscribe("limit/json")
    envelope = len(pub_line("limit/json", 0))
    pub = b.publisher()
    line = pub_line("limit/json", LIMIT - envelope)
    assert len(line) == LIMIT
    pub.send_line(line, eol=eol)
    pub.pubrel(pub.read_pubrec())
    assert cons.wait_messages(1, "limit/json") == ["L" * (LIMIT - envelope)]
    over = pub_line("limit/json", LIMIT - envelope + 1)
    pub.send_line(over, eol=eol)
    pub.expect_prefix("ERROR ")
    rec = wait_dead_letter(dlq, "oversized")
    check_dead_letter(rec, "oversized", ports=[b.publisher_port])
    assert over.startswith(rec["msg"]), rec["msg"][:100]
    pub.expect_closed()                         # an ERROR line ends the connection
    b.publisher().publish("limit/json", "after")
    assert cons.wait_messages(2, "limit/json")[1] == "after"
    cons.pump_for(QUIET)
    assert len(cons.messages("limit/json")) == 2, "the line over the limit was taken"


def unix_sndbufs(pid):
    """The send buffers of the Unix sockets process pid holds, as ss(8)
    shows them (the kernel counts twice the size a process asked for)."""
    out = subprocess.run(["ss", "-x", "-a", "-n", "-m", "-p"], capture_output=True, text=True,
                         check=True, timeout=10).stdout
    lines = []
    for line in out.splitlines()[1:]:
        if line[:1].isspace() and lines:
            lines[-1] += line               # skmem on a line of its own
        else:
            lines.append(line)
    return [int(m.group(1)) for line in lines if "pid=%d," % pid in line
            for m in [re.search(r"\btb(\d+)", line)] if m]


def test_a_subscriber_that_does_not_read_holds_up_no_other(mqtt_broker):
    """Its output holds bodies in the topicd's ring: the ring fills behind
    them and the topicd sends the rest inline.  Eight times the ring's
    size goes by; the reading subscriber has every message, whole and in
    order, and then so has the silent one."""
    topic = "large/silent"
    silent = SilentSubscriber(mqtt_broker.mqtt_port, "ring-silent", topic, qos=0)
    r = mqtt_receiver(mqtt_broker, "ring-reader", topic)
    pub = connected_client(mqtt_broker.mqtt_port, "ring-pub")
    sent = payloads(7, [64 * K, 200 * K, 17 * K, 100 * K] * 128)
    for p in sent:
        pub.publish(topic, p, 1)
    check_arrivals(r, topic, sent, 1)
    got = silent.drain(len(sent))
    assert [len(p) for p in got] == [len(p) for p in sent], "sizes differ"
    assert got == sent, "the silent subscriber's bytes differ"


def test_the_delivery_socket_has_client_delivery_buffer(mqtt_factory):
    # 100000: above no default, below any net.core.wmem_max.
    b = mqtt_factory({"client_delivery_buffer": "100000"})
    r = mqtt_receiver(b, "dbuf", "dbuf/t")
    mosquitto_pub(b.mqtt_port, "dbuf/t", "one", qos=1)
    r.wait_count(1, "dbuf/t")
    tpid = b.wait_topicd("dbuf/t")
    # The topicd holds the subscriber's delivery socket, handed over by the
    # master; its other sockets keep the kernel's default.
    assert 2 * 100000 in unix_sndbufs(tpid), unix_sndbufs(tpid)
    assert 2 * 100000 in unix_sndbufs(b.proc.pid)


def test_a_client_delivery_buffer_the_kernel_caps_is_logged_once(mqtt_factory):
    with open("/proc/sys/net/core/wmem_max") as f:
        wmem_max = int(f.read())
    big = 64 * 1024 * 1024
    if wmem_max >= big:
        pytest.skip("net.core.wmem_max (%d) caps nothing up to 64 MiB" % wmem_max)
    b = mqtt_factory({"client_delivery_buffer": "64m"})
    capped = "client_delivery_buffer %d is capped at %d bytes by net.core.wmem_max" % (
        big, wmem_max)
    for n in range(3):          # smaller than asked, but each client gets its messages
        r = mqtt_receiver(b, "capped%d" % n, "capped/t")
        mosquitto_pub(b.mqtt_port, "capped/t", "m%d" % n, qos=1)
        r.wait_count(1, "capped/t")
    wait_for(lambda: capped in b.log_text(), 10, "the log line: " + capped)
    assert b.log_text().count(capped) == 1, b.log_tail(20)
