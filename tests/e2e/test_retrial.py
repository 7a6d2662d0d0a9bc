"""Publish retrial: PUB and PUBREL sent again after retry_interval, up to
max_delivery_attempts sends; then the consumer is parked, and the message
that used up its attempts goes to the dead-letter topic."""

import json
import time

import pytest

from broker_harness import (DLQ, LOGGED_IN, LineTimeout, Qos2Consumer,
                            check_dead_letter, dead_letters, login,
                            wait_dead_letter)

RETRY = 0.3
ATTEMPTS = 3
CONFIG = {"retry_interval": RETRY, "max_delivery_attempts": ATTEMPTS}
SLACK = 1.0                 # scheduling slack of a loaded machine (ASan build)
WATCH = RETRY * ATTEMPTS + SLACK


@pytest.fixture
def rbroker(broker_factory):
    return broker_factory(CONFIG)


def raw_consumer(broker, name, topic):
    c = broker.client()
    assert login(c, name) == LOGGED_IN
    c.send_json({"type": "SUB", "topic": topic})
    c.expect("OK")
    return c


def collect(c, duration):
    """Every raw line (with its arrival time) during `duration` seconds."""
    out = []
    deadline = time.monotonic() + duration
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return out
        try:
            raw = c.read_raw_line(remaining)
        except LineTimeout:
            return out
        out.append((time.monotonic(), raw))


def check_spacing(times, what):
    gaps = [b - a for a, b in zip(times, times[1:])]
    for g in gaps:
        assert g >= RETRY * 0.6, "%s resent after %.3f s, retry_interval is %.1f s (gaps %s)" \
            % (what, g, RETRY, ["%.3f" % x for x in gaps])
        assert g <= RETRY + SLACK, "%s resent after %.3f s, retry_interval is %.1f s" \
            % (what, g, RETRY)


def test_silent_consumer_gets_the_same_pub_three_times(rbroker):
    dlq = rbroker.consumer("dlqwatch")
    dlq.subscribe(DLQ)
    c = raw_consumer(rbroker, "silent", "rt")
    pub = rbroker.publisher()
    pub.publish("rt", "poison")
    t0 = time.monotonic()
    first = c.read_raw_line()
    lines = [(t0, first)] + collect(c, WATCH)
    raws = [r for _, r in lines]
    assert raws == [first] * ATTEMPTS, \
        "expected the same PUB %d times, got %r" % (ATTEMPTS, raws)
    check_spacing([t for t, _ in lines[1:]], "PUB")
    # Parked: a new message is not sent to it either.
    pub.publish("rt", "next")
    c.expect_silence(RETRY * 3)
    c.close()

    # Logging in again: the poisoned message has gone to the dead-letter
    # topic, and the next one is delivered.
    again = rbroker.consumer("silent")
    assert again.wait_messages(1, "rt") == ["next"]
    again.settle()
    assert not again.errors, again.errors
    rec = wait_dead_letter(dlq, "max_attempts")
    check_dead_letter(rec, "max_attempts", ports=[rbroker.consumer_port], topic="rt",
                      msg="poison")
    assert len(dead_letters(dlq, "max_attempts")) == 1


def test_parked_consumer_resumes_on_sub(rbroker):
    dlq = rbroker.consumer("dlqwatch")
    dlq.subscribe(DLQ)
    c = raw_consumer(rbroker, "parked", "pk")
    pub = rbroker.publisher()
    pub.publish("pk", "poison")
    first = c.read_raw_line()
    assert [r for _, r in collect(c, WATCH)] == [first] * (ATTEMPTS - 1)
    pub.publish("pk", "after")
    c.send_json({"type": "SUB", "topic": "pk"})
    c.expect("OK")
    p = c.read_json()
    assert p["type"] == "PUB" and p["msg"] == "after", \
        "after SUB the parked consumer should get the next message, got %r" % p
    wait_dead_letter(dlq, "max_attempts")


def test_late_answer_after_a_retry_completes_normally(rbroker):
    c = raw_consumer(rbroker, "late", "lt")
    pub = rbroker.publisher()
    pub.publish("lt", "l1")
    pub.publish("lt", "l2")
    first = c.read_raw_line()
    again = c.read_raw_line(RETRY + SLACK)
    assert again == first, "retry differs from the first send: %r vs %r" % (first, again)
    p = json.loads(first)
    c.send_json({"type": "PUBREC", "msgId": p["msgId"], "topic": "lt"})
    # A third send may have crossed our PUBREC; skip it.
    line = c.read_line()
    if line != "OK":
        assert line.encode() + b"\r\n" == first, line
        line = c.read_line()
    assert line == "OK"
    assert c.read_json() == {"type": "PUBREL", "msgId": p["msgId"], "topic": "lt"}
    c.send_json({"type": "PUBCOMP", "msgId": p["msgId"], "topic": "lt"})
    c.expect("OK")
    nxt = c.read_json()
    assert nxt["type"] == "PUB" and nxt["msg"] == "l2", nxt


def test_pubrel_is_resent_when_pubcomp_is_missing(rbroker):
    c = raw_consumer(rbroker, "nocomp", "pc")
    pub = rbroker.publisher()
    pub.publish("pc", "p1")
    pub.publish("pc", "p2")
    p = c.read_json()
    assert p["msg"] == "p1"
    c.send_json({"type": "PUBREC", "msgId": p["msgId"], "topic": "pc"})
    c.expect("OK")
    t0 = time.monotonic()
    rel = c.read_raw_line()
    assert json.loads(rel) == {"type": "PUBREL", "msgId": p["msgId"], "topic": "pc"}
    again = c.read_raw_line(RETRY + SLACK)
    assert again == rel, "expected the PUBREL again, got %r" % again
    assert time.monotonic() - t0 >= RETRY * 0.6
    c.send_json({"type": "PUBCOMP", "msgId": p["msgId"], "topic": "pc"})
    line = c.read_line()
    if line != "OK":                    # a third PUBREL may have crossed it
        assert line.encode() + b"\r\n" == rel, line
        line = c.read_line()
    assert line == "OK"
    nxt = c.read_json()
    assert nxt["type"] == "PUB" and nxt["msg"] == "p2", nxt


def test_pubrel_sends_are_limited_too(rbroker):
    c = raw_consumer(rbroker, "relmax", "rm")
    pub = rbroker.publisher()
    pub.publish("rm", "r1")
    p = c.read_json()
    c.send_json({"type": "PUBREC", "msgId": p["msgId"], "topic": "rm"})
    c.expect("OK")
    t0 = time.monotonic()
    rel = c.read_raw_line()
    lines = [(t0, rel)] + collect(c, WATCH)
    assert [r for _, r in lines] == [rel] * ATTEMPTS, \
        "expected the PUBREL %d times, got %r" % (ATTEMPTS, [r for _, r in lines])
    check_spacing([t for t, _ in lines[1:]], "PUBREL")
    c.close()
    # Logging in again resumes the exchange: the message was received (it
    # was PUBREC'd), so it must not come again as a new PUB.
    pub.publish("rm", "r2")
    q = Qos2Consumer(rbroker, "relmax")
    q.completed[p["msgId"]] = ["rm"]
    q.last_id["rm"] = p["msgId"]
    q.connect()
    assert q.wait_messages(1, "rm") == ["r2"]
    q.settle()
    assert not q.errors, q.errors


def test_silent_consumer_does_not_hold_up_another(rbroker):
    silent = raw_consumer(rbroker, "mute", "shared")
    active = rbroker.consumer("active")
    active.subscribe("shared")
    pub = rbroker.publisher()
    sent = ["s%d" % i for i in range(5)]
    for m in sent:
        pub.publish("shared", m)
    assert active.wait_messages(5, "shared", timeout=RETRY * 2 + SLACK * 2) == sent
    first = silent.read_json()
    assert first["msg"] == "s0"
    active.settle()
    assert not active.errors, active.errors
