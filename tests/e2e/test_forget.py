"""A topic that keeps nothing is forgotten.

When a topic's topicd stops (idle for topicd_idle_timeout, or for room
under max_topicds) and the topic keeps nothing -- no message a subscriber
still has to get or has in flight, no retained message, no QoS 2 message
staged, no MQTT subscriber of a session that no longer subscribes to it,
no JSON-lines consumer's cursor (durable whatever its subscriptions: the
protocol keeps it across UNSUB, its own or a $share group's), and no
group without a member -- the master decides to forget it (its log says
"forgotten: it keeps nothing"), and its topicd deletes its files under
DATADIR/topics.  Only once the topicd says so does the topic leave the
registry ($SYS/broker/topics/count and the status's "topics" go down,
"forgotten" goes up).  A later publish creates it again as a topic never
seen: every session whose filters match gets its cursor first, so nothing
published after is missed, and its sequence numbers (the JSON-lines
msgId) go on from above any it had, across restarts too.  A SIGKILL at
any moment loses nothing acknowledged; a topicd that exits otherwise
while its topic is being forgotten leaves its store and the topic known,
so that an UNSUBSCRIBE still reaches it, and the next start of the broker
finishes the forgetting.
"""

import collections
import itertools
import os
import re
import signal
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from broker_harness import (ConnectionClosed, HarnessError, SlowSync, broker_binary, kill_pid,
                            preload_shim, wait_for)
from mqtt_helpers import (PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, RawClient, Receiver,
                          ack_packet, check_delivery, connect_retry, publish_packet)

IDLE = {"topicd_idle_timeout": 1, "log_type": "information"}
FORGET_TIMEOUT = 20.0       # idle timeout, stop, forgetting, with room for a loaded machine


# ---------------------------------------------------------------- the store's files

TOPIC_FILE_MAX = 200                        # common/topic.h
HASH_DIGITS = 16
CUT_PREFIX_MAX = TOPIC_FILE_MAX - 1 - HASH_DIGITS
FILE_RE = re.compile(r"^(?P<stem>.+?)\.(?:lock|db|spare|journal\.\d{8})$")


def _keep(byte, leading):
    c = chr(byte)
    if c.isascii() and (c.isalnum() or c in "_-"):
        return True
    return c == "." and not leading


def _fnv1a64(data):
    h = 0xcbf29ce484222325
    for byte in data:
        h ^= byte
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def stem(topic):
    """The name of a topic's files without their suffix (common/topic.c,
    topic_file_name): [A-Za-z0-9_-] and a '.' that is not the first byte
    kept, every other byte %XX (upper-case hex); a name longer than
    TOPIC_FILE_MAX is cut and ends with '~' and a hash."""
    raw = topic.encode("utf-8")
    out, cut = "", 0
    for i, byte in enumerate(raw):
        if len(out) <= CUT_PREFIX_MAX:
            cut = len(out)
        out += chr(byte) if _keep(byte, i == 0) else "%%%02X" % byte
    if len(out) <= CUT_PREFIX_MAX:
        cut = len(out)
    if len(out) > TOPIC_FILE_MAX:
        out = out[:cut] + "~%016x" % _fnv1a64(raw)
    return out


def topics_dir(b):
    return b.data_dir / "topics"


def store_files(b):
    """{stem: [file names]} of every topic store file in DATADIR/topics, and
    the names there that are no topic's file."""
    by_stem, other = collections.defaultdict(list), []
    try:
        names = sorted(os.listdir(topics_dir(b)))
    except FileNotFoundError:
        names = []
    for name in names:
        m = FILE_RE.match(name)
        if m:
            by_stem[m.group("stem")].append(name)
        else:
            other.append(name)
    return dict(by_stem), other


def topic_files(b, topic):
    """The names of the files of topic in DATADIR/topics (STEM.lock,
    STEM.journal.NNNNNNNN, STEM.db, STEM.spare)."""
    return store_files(b)[0].get(stem(topic), [])


def stored_topics(b):
    """The topics that have files in DATADIR/topics (stems decoded)."""
    return {urllib.parse.unquote(s, errors="strict") for s in store_files(b)[0]}


# ---------------------------------------------------------------- registry and log

_ids = itertools.count()


def mqtt_client(b, name):
    c = RawClient(b.mqtt_port, name=name)
    c.connect_ok("%s-%d" % (name, next(_ids)))
    return c


def sys_topics_count(b):
    """$SYS/broker/topics/count as a new subscription gets it (the value of
    the moment, sent with the SUBACK)."""
    c = mqtt_client(b, "fg-sys")
    try:
        assert c.subscribe([("$SYS/broker/topics/count", 0)]) == [0]
        p = c.wait_packet(lambda p: p.type == PUBLISH and
                          p.topic == "$SYS/broker/topics/count", what="topics/count")
        return int(p.payload)
    finally:
        c.disconnect()
        c.close()


def forgotten_lines(b, topic, text=None):
    """How many times the log (or text, a part of it) says topic was
    forgotten: its topicd deleted its store, and the master, told so,
    dropped the topic."""
    return len(re.findall(r": topic %s: topicd (exited|is spare) .*: its store deleted" % re.escape(topic),
                          b.log_text() if text is None else text))


def decided_lines(b, topic, text=None):
    """How many times the master decided to forget topic (its log says
    "forgotten: it keeps nothing"; the store is deleted after that)."""
    return len(re.findall(r": topic %s: forgotten: it keeps nothing" % re.escape(topic),
                          b.log_text() if text is None else text))


def cut_short_lines(b, topic, text=None):
    """How many times the master saw the topicd of topic exit while the
    topic was being forgotten, its store not deleted."""
    return len(re.findall(r": topic %s: topicd .* while the topic was being forgotten"
                          % re.escape(topic), b.log_text() if text is None else text))


def started(b, topic, text=None):
    """How many times the log (or text) says a topicd started for topic."""
    return len(re.findall(r": topic %s: topicd pid \d+ started" % re.escape(topic),
                          b.log_text() if text is None else text))


def running(b, topic):
    return topic in b.topicds().values()


def state_of(b, topics):
    """What a failure message tells of topics."""
    by_stem, other = store_files(b)
    return "; ".join("%s: files %s, decided forgotten %d time(s), forgotten (store "
                     "deleted) %d time(s), topicd %s" % (
                         t, by_stem.get(stem(t), []), decided_lines(b, t),
                         forgotten_lines(b, t), "running" if running(b, t) else "not running")
                     for t in topics) + \
        ("; other files in topics/: %s" % other if other else "")


def wait_until(pred, timeout, what, interval=0.05):
    """wait_for, with what(): a description made at the deadline."""
    try:
        return wait_for(pred, timeout, "(see below)", interval)
    except HarnessError as e:
        raise AssertionError("%s\n  %s" % (e, what())) from None


def wait_forgotten(b, topic, times=1, timeout=FORGET_TIMEOUT):
    """Waits until the log has said `times` times that topic was forgotten
    and its files are gone."""
    wait_until(lambda: forgotten_lines(b, topic) >= times and not topic_files(b, topic),
               timeout, lambda: "waiting for %s to be forgotten (%d time(s)): %s"
               % (topic, times, state_of(b, [topic])))


def wait_cold(b, topic, timeout=15.0):
    wait_until(lambda: not running(b, topic), timeout,
               lambda: "waiting for the topicd of %s to stop, idle" % topic)


_ctl = itertools.count()


def assert_kept(b, topics, rounds=2):
    """topics (a name or a list) are not forgotten over `rounds` rounds,
    each of them a topic that keeps nothing published, stopped idle and
    forgotten (a barrier: forgetting ran meanwhile): their files stay and
    the log never says they were forgotten."""
    topics = [topics] if isinstance(topics, str) else list(topics)
    before = {t: forgotten_lines(b, t) for t in topics}
    pub = mqtt_client(b, "fg-ctl")
    try:
        for _ in range(rounds):
            ctl = "fg-ctl/%d" % next(_ctl)
            pub.publish(ctl, b"nothing to keep", qos=1)
            wait_forgotten(b, ctl)
            for t in topics:
                assert topic_files(b, t), "%s was forgotten: %s" % (t, state_of(b, [t]))
                assert forgotten_lines(b, t) == before[t], \
                    "the log says %s was forgotten: %s" % (t, state_of(b, [t]))
    finally:
        pub.disconnect()
        pub.close()


def receiver(b, client_id, filters, clean=False):
    r = Receiver(lambda: b.mqtt_port, client_id, clean=clean)
    r.connect()
    assert r.subscribe(filters) == [q for _, q in filters]
    r.start()
    return r


# ---------------------------------------------------------------- a slow deletion

def slow_unlink(monkeypatch, tmp_path, prefix, ms):
    """Brokers started from now on delete the files of topics whose name
    starts with prefix slowly (ms before each unlink; tests/e2e/slow_unlink.c,
    preloaded): a topicd deleting its store is caught in the middle, where
    a SIGKILL can cut it short."""
    preload_shim(monkeypatch, tmp_path, broker_binary(),
                 Path(__file__).with_name("slow_unlink.c"))
    monkeypatch.setenv("SLOW_UNLINK_MATCH", "/topics/" + stem(prefix))
    monkeypatch.setenv("SLOW_UNLINK_MS", str(ms))


# ---------------------------------------------------------------- held session syncs

def held_syncs(text):
    return len(re.findall(r"^slow-sync: \S+ of \S*/sessions\S* held$", text, re.M))


def deleting(b, topic):
    """True once the topicd of topic, told to forget it, has begun to
    unlink its files (with slow_unlink): a slow unlink after the last
    time the log said it was forgotten."""
    text = b.log_text()
    said = [m.end() for m in re.finditer(r": topic %s: forgotten: it keeps nothing"
                                         % re.escape(topic), text)]
    return bool(said) and re.search(r"slow-unlink: \S*/topics/%s\." % re.escape(stem(topic)),
                                    text[said[-1]:]) is not None


def topicd_topics(b):
    """The topics with a live topicd; none while the master is being
    replaced (safe from another thread)."""
    try:
        return set(b.topicds().values())
    except AttributeError:          # b.proc went away meanwhile
        return set()


# ---------------------------------------------------------------- tests

def test_a_topic_nobody_subscribes_to_is_forgotten_when_idle(mqtt_factory):
    b = mqtt_factory(IDLE)
    topic = "nobody/t a"                    # a byte that is escaped in the file name
    assert sys_topics_count(b) == 0
    pub = mqtt_client(b, "fg-pub")
    pub.publish(topic, b"for nobody", qos=1)
    assert topic_files(b, topic), "no store files for %s: %s" % (topic, store_files(b))
    assert any(n.startswith("nobody%2Ft%20a.journal.") for n in topic_files(b, topic))
    assert sys_topics_count(b) == 1
    assert b.status()[0]["topics"] == 1
    wait_until(lambda: forgotten_lines(b, topic) == 1 and not topic_files(b, topic)
               and sys_topics_count(b) == 0, FORGET_TIMEOUT,
               lambda: "waiting for %s to be forgotten and topics/count to be 0 (it is %d): %s"
               % (topic, sys_topics_count(b), state_of(b, [topic])))
    assert re.search(r"topic %s: topicd pid \d+ stops: idle for topicd_idle_timeout"
                     % re.escape(topic), b.log_text())
    master, listed = b.status()
    assert master["topics"] == 0, master
    assert topic not in listed
    assert stored_topics(b) == set(), store_files(b)
    # A publish creates it again.
    pub.publish(topic, b"again", qos=1)
    assert topic_files(b, topic)
    assert sys_topics_count(b) == 1
    wait_forgotten(b, topic, times=2)
    assert sys_topics_count(b) == 0


def test_an_offline_wildcard_subscriber_gets_what_a_recreated_topic_holds(mqtt_factory):
    b = mqtt_factory(IDLE)
    pub = mqtt_client(b, "fg-pub")
    pub.publish("f/v", b"v before the subscription", qos=1)
    r = receiver(b, "fg-wild", [("f/#", 1)])
    first = [b"t-a%d" % i for i in range(3)]
    for p in first:
        pub.publish("f/t", p, qos=1)
    r.wait_count(3, "f/t")
    r.disconnect()                                  # offline; the session stays
    # Both keep nothing: the session had everything.
    wait_forgotten(b, "f/t")
    wait_forgotten(b, "f/v")
    assert sys_topics_count(b) == 0
    # Created again while the session is offline: it gets its cursor first.
    second = [b"t-b%d" % i for i in range(3)]
    for p in second:
        pub.publish("f/t", p, qos=1)
    vs = [b"v-%d" % i for i in range(2)]
    for p in vs:
        pub.publish("f/v", p, qos=1)
    # The offline session has messages to get: kept.
    assert_kept(b, "f/t", rounds=1)
    assert topic_files(b, "f/v"), state_of(b, ["f/v"])
    assert sys_topics_count(b) == 2
    assert r.reconnect().session_present
    r.wait_count(len(first + second + vs), timeout=20)
    assert r.payloads("f/t") == first + second
    assert r.payloads("f/v") == vs
    # Delivered and acknowledged: forgotten again, and nothing more came.
    wait_forgotten(b, "f/t", times=2)
    wait_forgotten(b, "f/v", times=2)
    assert r.payloads("f/t") == first + second
    assert r.payloads("f/v") == vs
    assert not [a for a in r.arrivals if a.dup], "sent twice: %s" % r.arrivals


def test_an_online_subscriber_gets_the_messages_of_a_recreated_topic(mqtt_factory):
    b = mqtt_factory(IDLE)
    exact = receiver(b, "fg-exact", [("on/t", 1)], clean=True)
    wild = receiver(b, "fg-plus", [("on/+", 1)], clean=False)
    pub = mqtt_client(b, "fg-pub")
    want = []
    for rnd in range(3):
        batch = [b"r%d-%d" % (rnd, i) for i in range(3)]
        for p in batch:
            pub.publish("on/t", p, qos=1)
        want += batch
        for r in (exact, wild):
            r.wait_count(len(want), "on/t")
        # Both still connected and subscribed: forgotten all the same.
        wait_forgotten(b, "on/t", times=rnd + 1)
        assert sys_topics_count(b) == 0
    for r in (exact, wild):
        assert r.payloads("on/t") == want, r.label
    assert started(b, "on/t") == 3


def consumer_read(b, name, topic, prefix, n):
    """A JSON-lines consumer subscribed to topic has read n messages
    published there ("PREFIX-I"), each completed: (consumer, publisher,
    messages)."""
    c = b.consumer(name)
    c.subscribe(topic)
    pub = b.publisher()
    msgs = ["%s-%d" % (prefix, i) for i in range(n)]
    for m in msgs:
        pub.publish(topic, m)
    assert c.wait_messages(n, topic) == msgs
    c.settle()
    return c, pub, msgs


def test_json_msgids_keep_increasing_across_forgetting_and_restarts(mqtt_factory):
    """A topic's sequence numbers (the JSON-lines msgId) are never given
    twice: read by an MQTT subscriber, the topic is forgotten, created
    again from above its numbers, forgotten again; after a restart of the
    broker, a JSON-lines consumer that subscribes gets msgIds above every
    number the topic had, increasing, across one more restart.  The
    consumer's cursor keeps the topic from then on."""
    b = mqtt_factory(IDLE)
    topic = "fj/t"
    r = receiver(b, "fj-mqtt", [(topic, 1)], clean=True)
    pub = mqtt_client(b, "fj-pub")
    sent = []

    def mqtt_batch(name):
        """Three messages, read by the MQTT subscriber: the topicd's last
        sequence number after them."""
        msgs = [b"%s-%d" % (name.encode(), i) for i in range(3)]
        for m in msgs:
            pub.publish(topic, m, qos=1)
        sent.extend(msgs)
        seq = b.topicd_status(topic)["seq"]           # its topicd still runs
        assert r.wait_count(len(sent), topic, timeout=20) == sent
        return seq

    after_a = mqtt_batch("a")
    wait_forgotten(b, topic, times=1)
    after_b = mqtt_batch("b")                       # created again: numbers from above
    assert after_b >= after_a + 3, (after_a, after_b)
    wait_forgotten(b, topic, times=2)
    assert sys_topics_count(b) == 0
    r.close()
    pub.disconnect()
    pub.close()
    b.restart()
    assert topic_files(b, topic) == [], state_of(b, [topic])
    assert sys_topics_count(b) == 0
    # The topic is unknown: a JSON-lines consumer subscribes, and a
    # publish creates it again, its numbers still from above.
    c = b.consumer("fj-reader")
    c.subscribe(topic)
    jpub = b.publisher()
    got = []

    def json_batch(name):
        msgs = ["%s-%d" % (name, i) for i in range(3)]
        for m in msgs:
            jpub.publish(topic, m)
        got.extend(msgs)
        assert c.wait_messages(len(got), topic, timeout=20) == got
        c.settle()
        return [d.msg_id for d in c.deliveries if d.topic == topic]

    ids = json_batch("c")
    assert min(ids) >= after_b, "msgIds %s given again: the topic had numbers up to %d" % (
        ids, after_b - 1)
    assert all(x < y for x, y in zip(ids, ids[1:])), "msgIds: %s" % ids
    # Read to the end, the consumer's cursor keeps the topic.
    assert_kept(b, topic, rounds=2)
    assert sys_topics_count(b) == 1
    # And across one more restart the numbers go on increasing.
    c.close()
    jpub.close()
    b.restart()
    jpub = b.publisher()
    c.connect()                                     # its subscription is remembered
    ids = json_batch("d")
    assert min(ids) >= after_b and all(x < y for x, y in zip(ids, ids[1:])), \
        "msgIds: %s" % ids
    assert not c.duplicates, c.duplicates
    assert not c.errors, c.errors


def test_a_json_unsub_keeps_the_topic_and_a_new_sub_gets_what_came_between(mqtt_factory):
    b = mqtt_factory(IDLE)
    topic = "fu/t"
    c, pub, before = consumer_read(b, "fu-reader", topic, "before", 2)
    c.unsubscribe(topic)
    wait_cold(b, topic)
    # The consumer's cursor stays (protocol rule): so does the topic, with
    # nothing to deliver, over several idle timeouts.
    assert_kept(b, topic, rounds=3)
    between = ["between-%d" % i for i in range(3)]
    for m in between:
        pub.publish(topic, m)
    wait_cold(b, topic)
    assert_kept(b, topic, rounds=1)
    assert sys_topics_count(b) == 1
    c.subscribe(topic)
    assert c.wait_messages(5, topic, timeout=20) == before + between
    c.settle()
    ids = [d.msg_id for d in c.deliveries if d.topic == topic]
    assert all(x < y for x, y in zip(ids, ids[1:])), ids
    after = ["after-0"]
    pub.publish(topic, after[0])
    assert c.wait_messages(6, topic) == before + between + after
    c.settle()
    # Subscribed again with everything received, the consumer's cursor
    # still keeps the topic: it would stay after another UNSUB.
    assert_kept(b, topic, rounds=2)
    assert sys_topics_count(b) == 1
    assert c.messages(topic) == before + between + after
    assert not c.duplicates, c.duplicates


def test_a_retained_message_keeps_its_topic(mqtt_factory):
    b = mqtt_factory(IDLE)
    topic = "rt/state"
    pub = mqtt_client(b, "fg-pub")
    pub.publish(topic, b"the state", qos=1, retain=True)
    wait_cold(b, topic)
    assert_kept(b, topic, rounds=3)
    assert sys_topics_count(b) == 1
    sub = mqtt_client(b, "fg-ret")
    assert sub.subscribe([(topic, 1)]) == [1]
    p = sub.expect(PUBLISH, timeout=15)
    assert (p.topic, p.payload, p.retain) == (topic, b"the state", True), p
    sub.send(ack_packet(PUBACK, p.pid))
    sub.disconnect()
    sub.close()
    # Cleared: the topic keeps nothing any more.
    pub.publish(topic, b"", qos=1, retain=True)
    wait_forgotten(b, topic)
    assert sys_topics_count(b) == 0
    # A new subscription finds no retained message.
    sub = mqtt_client(b, "fg-ret")
    assert sub.subscribe([(topic, 1)]) == [1]
    pub.publish(topic, b"not retained", qos=1)
    p = sub.expect(PUBLISH, timeout=15)
    assert (p.payload, p.retain) == (b"not retained", False), p


def test_a_staged_qos2_message_keeps_its_topic_until_released(mqtt_factory):
    """A QoS 2 message PUBREC'd and not released, from a JSON-lines
    publisher and from an MQTT one, keeps its topic; released with nobody
    to get it, it does not."""
    b = mqtt_factory(IDLE)
    jpub = b.publisher()
    jid = jpub.pub("st/json", "staged")
    mpub = mqtt_client(b, "fg-q2")
    mpub.send(publish_packet("st/mqtt", b"staged", qos=2, pid=7))
    mpub.expect(PUBREC, pid=7)
    assert_kept(b, ["st/json", "st/mqtt"], rounds=2)
    assert sys_topics_count(b) == 2
    jpub.pubrel(jid)
    mpub.send(ack_packet(PUBREL, 7))
    mpub.expect(PUBCOMP, pid=7)
    wait_forgotten(b, "st/json")
    wait_forgotten(b, "st/mqtt")
    assert sys_topics_count(b) == 0


def test_a_churn_of_made_up_topics_leaves_only_what_keeps_something(mqtt_factory):
    """300 topics each published once, as replies are to a response topic
    per request: a subscriber subscribes, receives, unsubscribes (clean
    and persistent sessions alike).  When the churn is over, the registry
    and DATADIR/topics hold the topics that keep something, and no other."""
    b = mqtt_factory(IDLE)
    keep = mqtt_client(b, "fg-keep")
    keep.publish("keep/retained", b"state", qos=1, retain=True)
    away = receiver(b, "fg-away", [("keep/offline", 1)])
    away.disconnect()
    keep.publish("keep/offline", b"for the offline session", qos=1)
    keepers = {"keep/retained", "keep/offline"}
    workers, per = 6, 50
    errors, done = [], []
    most = [0]

    def work(w):
        try:
            sub = mqtt_client(b, "fg-churn-sub") if w % 2 else None
            if sub is None:                          # a persistent session
                sub = RawClient(b.mqtt_port, name="fg-churn-sub")
                sub.connect_ok("fg-churn-persistent-%d" % w, clean=False)
            pub = mqtt_client(b, "fg-churn-pub")
            for i in range(per):
                t = "churn/%d/%d" % (w, i)
                payload = b"reply %d/%d" % (w, i)
                assert sub.subscribe([(t, 1)]) == [1]
                pub.publish(t, payload, qos=1, timeout=20)
                p = sub.expect(PUBLISH, timeout=20)
                assert (p.topic, p.payload) == (t, payload), p
                sub.send(ack_packet(PUBACK, p.pid))
                sub.unsubscribe([t], timeout=20)
                done.append(t)
            pub.disconnect()
            sub.disconnect()
        except BaseException as e:      # reported below
            errors.append("worker %d: %r" % (w, e))

    threads = [threading.Thread(target=work, args=(w,), daemon=True) for w in range(workers)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 90
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        most[0] = max(most[0], len(stored_topics(b)))
        time.sleep(0.2)
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "churn workers still running after 90 s"
    assert not errors, errors
    assert len(done) == workers * per
    churned = ["churn/%d/%d" % (w, i) for w in range(workers) for i in range(per)]

    def settled():
        return stored_topics(b) == keepers and sys_topics_count(b) == len(keepers)
    wait_until(settled, 60, lambda: "waiting for the churn to be forgotten: %d topics have "
               "files (%s...), topics/count %d, %d forgotten in the log"
               % (len(stored_topics(b)), sorted(stored_topics(b) - keepers)[:10],
                  sys_topics_count(b), sum(forgotten_lines(b, t) > 0 for t in churned)),
               interval=0.5)
    master, _ = b.status()
    assert master["topics"] == len(keepers), master
    by_stem, other = store_files(b)
    assert set(by_stem) == {stem(t) for t in keepers}, (by_stem, other)
    missing = [t for t in churned if forgotten_lines(b, t) != 1]
    assert not missing, "not forgotten exactly once: %s" % missing[:20]
    assert most[0] > len(keepers)           # the churn did create topics
    # What the keepers keep is still there.
    assert away.reconnect().session_present
    away.wait_payload(b"for the offline session", timeout=20)
    sub = mqtt_client(b, "fg-late")
    assert sub.subscribe([("keep/retained", 1)]) == [1]
    p = sub.expect(PUBLISH, timeout=15)
    assert (p.payload, p.retain) == (b"state", True), p


def test_a_master_killed_while_topics_are_forgotten_loses_nothing(mqtt_factory, monkeypatch,
                                                                   tmp_path):
    """A publisher streams QoS 1 bursts to topics that are forgotten in
    every pause between them and created again by the next burst (which
    may find the old topicd still deleting its store, slowed down here).
    The master is SIGKILLed while the third round of forgetting runs (a
    topic decided forgotten, its store not yet deleted), and started
    again.  A persistent subscriber gets every acknowledged
    message (again after the crash is allowed), first arrivals in order
    per topic; the topics are forgotten in the end, whatever the kill
    interrupted."""
    slow_unlink(monkeypatch, tmp_path, "fk/", 300)
    b = mqtt_factory(dict(IDLE, restart_backoff_min=0.05, restart_backoff_max=0.2))
    topics = ["fk/%d" % i for i in range(4)]
    rounds, per = 7, 8
    r = receiver(b, "fg-kill-sub", [("fk/#", 1)])
    published = {t: [] for t in topics}
    acked = set()
    lock = threading.Lock()
    errors = []

    def decided_counts():
        return {t: decided_lines(b, t) for t in topics}

    def stream():
        c = None
        try:
            for rnd in range(rounds):
                for i in range(per):
                    for t in topics:
                        payload = b"%s r%d m%d" % (t.encode(), rnd, i)
                        with lock:
                            published[t].append(payload)
                        if c is None:
                            c, _ = connect_retry(lambda: b.mqtt_port, "fg-kill-pub",
                                                 clean=True, timeout=30)
                        try:
                            c.publish(t, payload, qos=1, timeout=15)
                        except (OSError, HarnessError, ConnectionClosed):
                            c.close()           # the master is gone: on with the next
                            c = None
                            continue
                        with lock:
                            acked.add(payload)
                # A pause until each topic is decided forgotten (its store
                # may still be being deleted); once the master was
                # replaced, until its topics are cold.
                before, gen = decided_counts(), b.generation
                wait_until(lambda: all(n > before[t] for t, n in decided_counts().items())
                           or (b.generation != gen and b.running() and
                               not any(t in topics for t in topicd_topics(b))), 30,
                           lambda: "round %d: waiting for the topics to be forgotten: %s"
                           % (rnd, state_of(b, topics)), interval=0.02)
        except BaseException as e:      # reported by the test
            errors.append(e)
        finally:
            if c is not None:
                c.close()

    streamer = threading.Thread(target=stream, daemon=True, name="fg-streamer")
    streamer.start()

    def third_round_forgetting():
        if errors or not streamer.is_alive():
            return True
        return sum(decided_counts().values()) > 2 * len(topics)
    wait_until(third_round_forgetting, 60,
               lambda: "waiting for the third round of forgetting: %s" % state_of(b, topics),
               interval=0.01)
    assert not errors, errors
    left = b.kill9()
    # Decided forgotten, the deletion of its store not seen by the master.
    cut_short = [t for t in topics if decided_lines(b, t) >= 3 and
                 decided_lines(b, t) > forgotten_lines(b, t) + cut_short_lines(b, t)]
    assert cut_short, "the kill came after the round's forgetting: %s" % state_of(b, topics)
    b.wait_topicds_gone(left)
    wait_for(lambda: r.disconnected, 10, "the subscriber to see the master gone")
    b.start(keep_ports=True)
    assert r.reconnect().session_present
    streamer.join(150)
    assert not streamer.is_alive(), "the streamer did not finish"
    assert not errors, errors[0]
    with lock:
        want = set(acked)
    r.wait_until(lambda: want <= set(r.payloads()), 30,
                 "every acknowledged message (%d missing)" % len(want - set(r.payloads())))
    for t in topics:
        check_delivery(published[t], want, r.payloads(t), "topic %s" % t, exactly_once=False)
    assert len(want) >= rounds * per * len(topics) - 2, \
        "only %d of %d acknowledged" % (len(want), rounds * per * len(topics))
    # Everything delivered: every topic is forgotten, interrupted or not.
    wait_until(lambda: not stored_topics(b) and sys_topics_count(b) == 0, FORGET_TIMEOUT,
               lambda: "waiting for every topic to be forgotten after the crash: %s"
               % state_of(b, topics))


def test_a_topicd_killed_while_its_topic_is_forgotten_loses_nothing(mqtt_factory, monkeypatch,
                                                                    tmp_path):
    """The topicd deleting a forgotten topic's store is SIGKILLed half
    way: the store stays, whole or empty, and so does the topic (counted
    in $SYS/broker/topics/count, never said to be deleted).  A publish
    brings it back with what is left of its store: the online clean MQTT
    subscriber and the offline persistent one get what is published then,
    the persistent one everything acknowledged, and its sequence numbers
    go on from above; once they have it, the topic is forgotten."""
    slow_unlink(monkeypatch, tmp_path, "tk/", 300)
    b = mqtt_factory(IDLE)
    topic = "tk/t"
    online = receiver(b, "tk-online", [(topic, 1)], clean=True)
    away = receiver(b, "tk-away", [("tk/#", 1)])
    pub = mqtt_client(b, "tk-pub")
    first = [b"a-%d" % i for i in range(3)]
    for m in first:
        pub.publish(topic, m, qos=1)
    before = b.topicd_status(topic)["seq"]
    for r in (online, away):
        assert r.wait_count(3, topic) == first, r.label
    away.disconnect()
    wait_until(lambda: deleting(b, topic), FORGET_TIMEOUT,
               lambda: "waiting for the topicd of %s to delete its store: %s"
               % (topic, state_of(b, [topic])))
    pid = b.topicd_pid(topic)
    assert pid is not None, "no topicd deleting %s" % topic
    kill_pid(pid)
    wait_until(lambda: cut_short_lines(b, topic) == 1, 10,
               lambda: "waiting for the master to see the topicd of %s die" % topic)
    assert topic_files(b, topic), "the store was deleted whole: %s" % state_of(b, [topic])
    assert forgotten_lines(b, topic) == 0, state_of(b, [topic])
    assert sys_topics_count(b) == 1
    assert b.status()[0]["forgotten"] == 0
    # It comes back, with what is left of its store.
    second = [b"b-%d" % i for i in range(3)]
    for m in second:
        pub.publish(topic, m, qos=1)
    after = b.topicd_status(topic)["seq"]
    assert after >= before + 3, "sequence numbers %d.. after the kill, %d.. before" % (
        after - 3, before)
    assert online.wait_count(6, topic, timeout=20) == first + second
    assert away.reconnect().session_present
    away.wait_until(lambda: set(away.payloads(topic)) >= set(second), 20,
                    "the messages published after the kill")
    check_delivery(first + second, set(first + second), away.payloads(topic),
                   "the persistent session", exactly_once=False)
    wait_forgotten(b, topic, times=1)
    assert sys_topics_count(b) == 0
    assert online.payloads(topic) == first + second
    check_delivery(first + second, set(first + second), away.payloads(topic),
                   "the persistent session", exactly_once=False)


def test_a_forgetting_cut_short_is_finished_at_the_next_start(mqtt_factory, monkeypatch,
                                                              tmp_path):
    """The master and the topicd deleting a forgotten topic's store are
    both SIGKILLed half way.  The next master starts the topic once, by
    itself, and forgets it when idle, its store deleted; published to
    again, it gives its persistent subscriber what is published then, and
    nothing it had, with sequence numbers above those it had."""
    slow_unlink(monkeypatch, tmp_path, "tr/", 300)
    b = mqtt_factory(IDLE)
    topic = "tr/t"
    r = receiver(b, "tr-reader", [("tr/#", 1)])
    pub = mqtt_client(b, "tr-pub")
    first = [b"a-%d" % i for i in range(3)]
    for m in first:
        pub.publish(topic, m, qos=1)
    before = b.topicd_status(topic)["seq"]
    assert r.wait_count(3, topic) == first
    wait_until(lambda: deleting(b, topic), FORGET_TIMEOUT,
               lambda: "waiting for the topicd of %s to delete its store: %s"
               % (topic, state_of(b, [topic])))
    pid = b.topicd_pid(topic)
    assert pid is not None, "no topicd deleting %s" % topic
    left = b.kill9()
    kill_pid(pid)
    b.wait_topicds_gone(left | {pid})
    r.close()
    pub.close()
    assert topic_files(b, topic), "the store was deleted whole: %s" % state_of(b, [topic])
    mark = len(b.log_text())
    b.start(keep_ports=True)

    def since():
        return b.log_text()[mark:]
    wait_until(lambda: forgotten_lines(b, topic, since()) == 1 and not topic_files(b, topic),
               FORGET_TIMEOUT, lambda: "waiting for the next master to finish forgetting "
               "%s: %s" % (topic, state_of(b, [topic])))
    assert started(b, topic, since()) == 1, since()
    assert sys_topics_count(b) == 0
    assert b.status()[0]["forgotten"] == 1
    assert r.reconnect().session_present
    pub = mqtt_client(b, "tr-pub")
    second = [b"b-%d" % i for i in range(3)]
    for m in second:
        pub.publish(topic, m, qos=1)
    after = b.topicd_status(topic)["seq"]
    assert after >= before + 3, "sequence numbers %d.. after the restart, %d.. before" % (
        after - 3, before)
    assert r.wait_count(6, topic, timeout=20) == first + second
    wait_forgotten(b, topic, times=2)
    assert r.payloads(topic) == first + second


# ---------------------------------------------------------------- what the review found

def test_a_json_consumer_keeps_its_topic_and_gets_what_came_while_it_was_unsubscribed(
        mqtt_factory):
    """A JSON-lines consumer subscribed to a topic and read to the end
    keeps it each time it goes cold: its cursor is durable whatever its
    subscriptions.  It sends UNSUB while the topic is cold; a message is
    published; its next SUB gets it."""
    b = mqtt_factory(IDLE)
    topic = "jk/t"
    c, pub, got = consumer_read(b, "jk-reader", topic, "a", 2)
    for rnd in range(3):
        if rnd:
            got.append("r%d" % rnd)
            pub.publish(topic, got[-1])
            assert c.wait_messages(len(got), topic) == got
            c.settle()
        wait_cold(b, topic)
        assert_kept(b, topic, rounds=1)
    assert started(b, topic) == 3, state_of(b, [topic])
    assert sys_topics_count(b) == 1
    c.unsubscribe(topic)
    pub.publish(topic, "while unsubscribed")
    c.subscribe(topic)
    assert c.wait_messages(len(got) + 1, topic, timeout=20) == got + ["while unsubscribed"]
    c.settle()
    ids = [d.msg_id for d in c.deliveries if d.topic == topic]
    assert all(x < y for x, y in zip(ids, ids[1:])), "msgIds: %s" % ids
    assert not c.duplicates, c.duplicates


def test_a_json_group_left_without_members_keeps_its_topic_and_its_messages(mqtt_factory):
    """A JSON-lines consumer, the only member of a $share group, gets a
    message and sends UNSUB: the group's cursor stays, without a member,
    and keeps the topic over idle rounds.  A message is published; the
    consumer joins the group again and gets it."""
    b = mqtt_factory(IDLE)
    topic = "jg/t"
    share = "$share/G/" + topic
    c = b.consumer("jg-member")
    c.subscribe(share)
    pub = b.publisher()
    pub.publish(topic, "first")
    assert c.wait_messages(1, topic) == ["first"]
    c.settle()
    c.unsubscribe(share)
    wait_cold(b, topic)
    assert_kept(b, topic, rounds=3)
    assert sys_topics_count(b) == 1
    pub.publish(topic, "for the group")
    wait_cold(b, topic)
    c.subscribe(share)
    assert c.wait_messages(2, topic, timeout=20) == ["first", "for the group"]
    c.settle()
    assert not c.duplicates, c.duplicates


def end_while_forgotten(b, topic, mark, sig):
    """With the master's store syncs held (SlowSync on, since mark in the
    log): the master decides to forget topic, and its topicd, waiting for
    FORGET, gets sig; waits until the master has seen it end."""
    wait_until(lambda: decided_lines(b, topic) == 1, FORGET_TIMEOUT,
               lambda: "waiting for the master to decide to forget %s: %s"
               % (topic, state_of(b, [topic])))
    wait_until(lambda: held_syncs(b.log_text()[mark:]), 10,
               lambda: "waiting for a sync of the master's store to be held")
    pid = b.topicd_pid(topic)
    assert pid is not None, "no topicd for %s: %s" % (topic, state_of(b, [topic]))
    kill_pid(pid, sig)
    wait_until(lambda: cut_short_lines(b, topic) == 1, 10,
               lambda: "waiting for the master to see the topicd of %s end: %s"
               % (topic, state_of(b, [topic])))


def test_a_topicd_stopped_by_sigterm_before_deleting_its_store_leaves_its_topic_known(
        mqtt_factory, monkeypatch, tmp_path):
    """SIGTERM reaches the topicd of a topic being forgotten before it
    deleted its store (the master's store syncs are held, so the topicd
    waits for FORGET): it exits with its store.  The master does not take
    the store for deleted: the topic stays known, its files there; it
    opens the topic again at once, and forgets it once idle again, its
    store deleted then."""
    sync = SlowSync(monkeypatch, tmp_path)
    b = mqtt_factory(IDLE)
    topic = "sg/t"
    pub = mqtt_client(b, "sg-pub")
    pub.publish(topic, b"for nobody", qos=1)
    assert sys_topics_count(b) == 1
    mark = len(b.log_text())
    sync.on()
    try:
        end_while_forgotten(b, topic, mark, signal.SIGTERM)
        # The syncs are still held: nothing can be forgotten meanwhile.
        assert not re.search(r"topic %s: store deleted" % re.escape(topic), b.log_text()), \
            "the topicd deleted its store after SIGTERM"
        assert forgotten_lines(b, topic) == 0, "the master says the store was deleted: %s" % (
            state_of(b, [topic]))
        assert topic_files(b, topic), state_of(b, [topic])
        master, _ = b.status()
        assert (master["topics"], master["forgotten"]) == (1, 0), master
    finally:
        sync.off()

    def since():
        return b.log_text()[mark:]
    # Opened again at once (one start), and forgotten when idle again.
    wait_until(lambda: forgotten_lines(b, topic, since()) == 1 and not topic_files(b, topic),
               FORGET_TIMEOUT, lambda: "waiting for %s to be forgotten again: %s"
               % (topic, state_of(b, [topic])))
    assert started(b, topic, since()) == 1, since()
    assert sys_topics_count(b) == 0
    assert stored_topics(b) == set(), store_files(b)


@pytest.mark.parametrize("online", [False, True], ids=["offline-meanwhile", "online-throughout"])
def test_an_unsubscribe_reaches_the_store_a_forgetting_cut_short_kept(mqtt_factory, monkeypatch,
                                                                     tmp_path, online):
    """A persistent MQTT session subscribed to ph/# gets a message on
    ph/t.  ph/t is being forgotten when its topicd is SIGKILLed before
    FORGET (the master's store syncs held): its store stays whole, with
    the session's cursor, and the topic stays known.  The session
    (offline meanwhile and back, or online throughout) UNSUBSCRIBEs ph/#;
    a message is published to ph/t; the session subscribes to ph/# again:
    it does not get the message published while it was unsubscribed, and
    ph/t, without the stale cursor, is forgotten again."""
    sync = SlowSync(monkeypatch, tmp_path)
    b = mqtt_factory(IDLE)
    topic = "ph/t"
    r = receiver(b, "ph-sub", [("ph/#", 1)])
    pub = mqtt_client(b, "ph-pub")
    pub.publish(topic, b"before", qos=1)
    assert r.wait_count(1, topic) == [b"before"]
    if not online:
        r.disconnect()
    mark = len(b.log_text())
    sync.on()
    try:
        end_while_forgotten(b, topic, mark, signal.SIGKILL)
    finally:
        sync.off()
    assert topic_files(b, topic), state_of(b, [topic])
    assert forgotten_lines(b, topic) == 0, state_of(b, [topic])
    assert sys_topics_count(b) == 1
    if not online:
        assert r.reconnect().session_present
    r.stop()
    r.client.unsubscribe(["ph/#"])
    pub.publish(topic, b"while unsubscribed", qos=1)
    assert r.subscribe([("ph/#", 1)]) == [1]
    r.start()
    pub.publish(topic, b"after", qos=1)
    r.wait_payload(b"after", topic, timeout=20)
    assert r.payloads(topic) == [b"before", b"after"], \
        "the message published while the session was unsubscribed came: %s" % r.describe()
    wait_forgotten(b, topic, times=forgotten_lines(b, topic) + 1)
    assert sys_topics_count(b) == 0
    assert r.payloads(topic) == [b"before", b"after"]
