"""Publish retrial: PUB and PUBREL sent again after retry_interval, up to
max_delivery_attempts sends; then the consumer is parked, and the message
that used up its attempts goes to the dead-letter topic."""

import json
import time

import pytest

from broker_harness import (DLQ, LOGGED_IN, HarnessError, LineTimeout, Qos2Consumer,
                            check_dead_letter, dead_letters, login,
                            wait_dead_letter, wait_for)

RETRY = 0.3
ATTEMPTS = 3
CONFIG = {"retry_interval": RETRY, "max_delivery_attempts": ATTEMPTS}
# The broker's timers may fire this much early by the test's clock
# (libevent's coarse monotonic clock ticks every few milliseconds).
EARLY = 0.05
# How late a resend may be on a loaded machine (ASan build, 2 shared
# cores): wide, and still far below the default retry_interval of 10 s
# that a broker ignoring the setting would use.
SLACK = 3.0
# An absence of further sends is watched for this long after the last one
# due: three retry intervals.
QUIET = RETRY * 3


@pytest.fixture
def rbroker(broker_factory):
    return broker_factory(CONFIG)


def raw_consumer(broker, name, topic):
    c = broker.client()
    assert login(c, name) == LOGGED_IN
    c.send_json({"type": "SUB", "topic": topic})
    c.expect("OK")
    return c


def sends(c, n, what):
    """The next n raw lines, each with its arrival time.  Each resend is
    due RETRY after the one before: n lines come within n * (RETRY +
    SLACK) seconds."""
    out = []
    deadline = time.monotonic() + n * (RETRY + SLACK)
    while len(out) < n:
        try:
            raw = c.read_raw_line(max(0.0, deadline - time.monotonic()))
        except LineTimeout:
            raise HarnessError("%s: %d of %d sends came within %.1f s: %r"
                               % (what, len(out), n, n * (RETRY + SLACK),
                                  [r for _, r in out])) from None
        out.append((time.monotonic(), raw))
    return out


def check_spacing(t0, times, what):
    """times: arrivals of the first send and its resends; t0: a moment
    before the first send.  The k-th resend is due k retry intervals after
    the first send, so it cannot arrive before t0 + k * RETRY; and it
    follows the previous one within RETRY + SLACK."""
    gaps = ["%.3f" % (b - a) for a, b in zip(times, times[1:])]
    for k, t in enumerate(times):
        assert t - t0 >= k * RETRY - EARLY, \
            "%s: send #%d came %.3f s after the first was due, retry_interval is %.1f s " \
            "(gaps %s)" % (what, k + 1, t - t0, RETRY, gaps)
    for a, b in zip(times, times[1:]):
        assert b - a <= RETRY + SLACK, "%s resent after %.3f s, retry_interval is %.1f s" \
            % (what, b - a, RETRY)


def test_silent_consumer_gets_the_same_pub_three_times(rbroker):
    dlq = rbroker.consumer("dlqwatch")
    dlq.subscribe(DLQ)
    c = raw_consumer(rbroker, "silent", "rt")
    pub = rbroker.publisher()
    t0 = time.monotonic()
    pub.publish("rt", "poison")
    lines = sends(c, ATTEMPTS, "PUB")
    raws = [r for _, r in lines]
    assert raws == [raws[0]] * ATTEMPTS, \
        "expected the same PUB %d times, got %r" % (ATTEMPTS, raws)
    check_spacing(t0, [t for t, _ in lines], "PUB")
    c.expect_silence(QUIET)             # no send beyond max_delivery_attempts
    # Parked: a new message is not sent to it either.
    pub.publish("rt", "next")
    c.expect_silence(QUIET)
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


def unanswered(broker, name, topic, msg):
    """A watcher of the dead letters, and consumer `name` of topic sent
    msg max_delivery_attempts times, unanswered; the publisher; the
    raw PUB line."""
    dlq = broker.consumer("dlqwatch")
    dlq.subscribe(DLQ)
    c = raw_consumer(broker, name, topic)
    pub = broker.publisher()
    pub.publish(topic, msg)
    raws = [r for _, r in sends(c, ATTEMPTS, "PUB")]
    assert raws == [raws[0]] * ATTEMPTS, raws
    return dlq, c, pub, raws[0]


def test_parked_consumer_resumes_on_sub(rbroker):
    dlq, c, pub, raw = unanswered(rbroker, "parked", "pk", "poison")
    c.expect_silence(QUIET)
    pub.publish("pk", "after")
    c.send_json({"type": "SUB", "topic": "pk"})
    c.expect("OK")
    p = c.read_json()
    assert p["type"] == "PUB" and p["msg"] == "after", \
        "after SUB the parked consumer should get the next message, got %r" % p
    wait_dead_letter(dlq, "max_attempts")
    # A PUBREC for the one dead-lettered gets no PUBREL: the consumer
    # would take as completed a message that went to the dead letters.
    poison = json.loads(raw)["msgId"]
    c.send_json({"type": "PUBREC", "msgId": poison, "topic": "pk"})
    c.expect("OK")
    # What comes meanwhile is "after" again (its retrial), never a PUBREL.
    seen, until = [], time.monotonic() + QUIET
    while time.monotonic() < until:
        try:
            seen.append(json.loads(c.read_raw_line(max(0.0, until - time.monotonic()))))
        except LineTimeout:
            break
    assert all(m["type"] == "PUB" and m["msg"] == "after" for m in seen), seen


def test_parked_consumer_that_answers_after_all_resumes(broker_factory):
    """A consumer parked for not answering, whose PUBREC comes after all,
    is not gone: the PUBREL follows, then the next message, and the one
    it answered is neither sent again nor dead-lettered at its next
    login."""
    rbroker = broker_factory(dict(CONFIG, log_type="information"))
    dlq, c, pub, raw = unanswered(rbroker, "slowpoke", "sp", "slow")
    wait_for(lambda: "slowpoke did not answer message" in rbroker.log_text(), 10,
             "the consumer to be parked")
    pub.publish("sp", "after")
    c.expect_silence(QUIET)             # parked: nothing new goes to it
    p = json.loads(raw)
    c.send_json({"type": "PUBREC", "msgId": p["msgId"], "topic": "sp"})
    c.expect("OK")
    assert c.read_json() == {"type": "PUBREL", "msgId": p["msgId"], "topic": "sp"}
    c.send_json({"type": "PUBCOMP", "msgId": p["msgId"], "topic": "sp"})
    c.expect("OK")
    nxt = c.read_json()
    assert nxt["type"] == "PUB" and nxt["msg"] == "after", nxt
    c.send_json({"type": "PUBREC", "msgId": nxt["msgId"], "topic": "sp"})
    c.expect("OK")
    assert c.read_json() == {"type": "PUBREL", "msgId": nxt["msgId"], "topic": "sp"}
    c.send_json({"type": "PUBCOMP", "msgId": nxt["msgId"], "topic": "sp"})
    c.expect("OK")
    assert "slowpoke answered message %d after all" % p["msgId"] in rbroker.log_text()
    c.close()
    # Logging in again: both exchanges are over, nothing comes again.
    pub.publish("sp", "third")
    q = rbroker.consumer("slowpoke")
    assert q.wait_messages(1, "sp") == ["third"]
    q.settle()
    assert not q.errors, q.errors
    assert dead_letters(dlq, "max_attempts") == []


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
    t0 = time.monotonic()               # before the PUBREC: the first PUBREL follows it
    c.send_json({"type": "PUBREC", "msgId": p["msgId"], "topic": "pc"})
    c.expect("OK")
    rel = c.read_raw_line()
    assert json.loads(rel) == {"type": "PUBREL", "msgId": p["msgId"], "topic": "pc"}
    again = c.read_raw_line(RETRY + SLACK)
    assert again == rel, "expected the PUBREL again, got %r" % again
    took = time.monotonic() - t0
    assert took >= RETRY - EARLY, "the PUBREL was resent %.3f s after the PUBREC, " \
        "retry_interval is %.1f s" % (took, RETRY)
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
    t0 = time.monotonic()
    c.send_json({"type": "PUBREC", "msgId": p["msgId"], "topic": "rm"})
    c.expect("OK")
    lines = sends(c, ATTEMPTS, "PUBREL")
    rel = lines[0][1]
    assert json.loads(rel) == {"type": "PUBREL", "msgId": p["msgId"], "topic": "rm"}
    assert [r for _, r in lines] == [rel] * ATTEMPTS, \
        "expected the PUBREL %d times, got %r" % (ATTEMPTS, [r for _, r in lines])
    check_spacing(t0, [t for t, _ in lines], "PUBREL")
    c.expect_silence(QUIET)
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


def test_silent_consumer_does_not_hold_up_another(broker_factory):
    """With a retry interval of 30 s, nothing the broker does on a timer
    can free the active consumer within the 10 s it is given: it must not
    wait for the silent one at all."""
    b = broker_factory({"retry_interval": 30, "max_delivery_attempts": ATTEMPTS})
    silent = raw_consumer(b, "mute", "shared")
    active = b.consumer("active")
    active.subscribe("shared")
    pub = b.publisher()
    sent = ["s%d" % i for i in range(5)]
    for m in sent:
        pub.publish("shared", m)
    assert active.wait_messages(5, "shared", timeout=10) == sent
    first = silent.read_json()
    assert first["msg"] == "s0"
    silent.expect_silence(QUIET)        # s0 is not answered: nothing else comes
    active.settle()
    assert not active.errors, active.errors
