"""Spare topicds: a topicd stopped for room or idleness closes its store,
frees what it held and waits ("topicd: spare"), and the next topic to
start takes it instead of a new process.  At most topicd_spares wait, for
topicd_idle_timeout (60 s when that is 0); the broker's stop lets them go."""

import collections
import os
import re
import signal
import time

import pytest

from broker_harness import HarnessError, kill_pid, process_alive, process_exists, \
    read_cmdline, title_of, wait_for
from mqtt_helpers import (PUBACK, PUBCOMP, PUBREC, PUBREL, PacketTimeout, RawClient, Receiver,
                          ack_packet, delivery_problems, publish_packet)


def receiver(b, client_id, filters, clean=False):
    r = Receiver(lambda: b.mqtt_port, client_id, clean=clean)
    r.connect()
    assert r.subscribe(filters) == [q for _, q in filters]
    r.start()
    return r


def publisher(b, client_id="spare-pub"):
    c = RawClient(b.mqtt_port, name=client_id)
    c.connect_ok(client_id)
    return c


def title(pid):
    return title_of(read_cmdline(pid) or b"")


def master_spares(b):
    """The spare= of the master's title (0 when it has none), or None
    when the title is not the master's."""
    m = re.fullmatch(r"broker: master \S+ clients=\d+ topics=\d+ running=\d+( spare=(\d+))?",
                     title(b.pid))
    if m is None:
        return None
    return int(m.group(2) or 0)


def wait_spare_line(b, topic, deleted=False, timeout=15):
    """Waits for the master to say topic's topicd is spare; returns its
    pid."""
    rx = re.compile(r"topic %s: topicd is spare \(pid (\d+)\)%s" % (
        re.escape(topic), ": its store deleted" if deleted else "; the topic is cold"))
    m = wait_for(lambda: rx.search(b.log_text()), timeout,
                 "the topicd of %s to be spare" % topic)
    return int(m.group(1))


def keep_spares(b):
    """The spares wait for topicd_idle_timeout: made longer (a reload,
    which a spare lives through), they wait while the test looks at
    them."""
    b.reload({"topicd_idle_timeout": 60})


def starts(b, topic=None, spare=None):
    """[(topic, pid, from a spare)] of the starts the log tells of."""
    out = [(t, int(p), bool(s)) for t, p, s in
           re.findall(r": topic (\S+): topicd pid (\d+) started( \(a spare\))?$", b.log_text(),
                      re.M)]
    return [x for x in out if (topic is None or x[0] == topic) and (spare is None or
                                                                     x[2] == spare)]


def fds(pid):
    """{fd: what it points at} of a process."""
    d = "/proc/%d/fd" % pid
    out = {}
    for name in os.listdir(d):
        try:
            out[int(name)] = os.readlink(os.path.join(d, name))
        except FileNotFoundError:
            pass
    return out


def sockets_of(pid):
    return {fd: t for fd, t in fds(pid).items() if t.startswith("socket:")}


def publish_pipelined(c, items, qos, window=64, timeout=60.0):
    """Publishes items, [(topic, payload)] in order, at QoS 1 or 2 with up
    to window messages in flight on c; returns the payloads the broker
    acknowledged (PUBACK, or PUBREC at QoS 2), once every exchange is
    complete."""
    todo = collections.deque(items)
    inflight = collections.OrderedDict()        # packet id -> [payload, stage]
    acked = []
    deadline = time.monotonic() + timeout
    while todo or inflight:
        out = []
        while todo and len(inflight) < window:
            topic, payload = todo.popleft()
            pid = c.alloc_pid()
            assert pid not in inflight
            inflight[pid] = [payload, "publish"]
            out.append(publish_packet(topic, payload, qos, pid))
        if out:
            c.send(b"".join(out))
        try:
            p = c.read_packet(max(0.0, deadline - time.monotonic()))
        except PacketTimeout:
            raise HarnessError("%d messages of %d still in flight after %.0f s: %s" % (
                len(inflight), len(items), timeout,
                [(k, v) for k, v in list(inflight.items())[:10]])) from None
        x = inflight.get(getattr(p, "pid", None))
        want = {PUBACK: (1, "publish"), PUBREC: (2, "publish"), PUBCOMP: (2, "pubrel")}
        assert p.type in want and x is not None and (qos, x[1]) == want[p.type], \
            "unexpected %r (in flight: %s)" % (p, list(inflight.items())[:10])
        if p.type in (PUBACK, PUBREC):
            acked.append(x[0])
        if p.type == PUBREC:
            x[1] = "pubrel"
            c.send(ack_packet(PUBREL, p.pid))
        else:
            del inflight[p.pid]
    return acked


# ---------------------------------------------------------------- tests

def test_an_idle_topicd_waits_as_a_spare_and_serves_the_next_topic(mqtt_factory):
    """A topic with a retained message and a subscriber that got it goes
    idle: its topicd is spare (the topic is cold), shown so by ps and the
    master's title, holding nothing of the topic: no store, no delivery
    socket, only its channel and standard descriptors.  The next topic to
    start takes it, and both topics' messages reach the subscriber."""
    b = mqtt_factory({"topicd_idle_timeout": 1, "log_type": "information"})
    sub = receiver(b, "sp-sub", [("sp/#", 1)])
    pub = publisher(b)
    pub.publish("sp/a", b"a1", qos=1, retain=True)
    sub.wait_payload(b"a1")
    pid = b.wait_topicd("sp/a")
    before = sockets_of(pid)
    channel = before.get(3)
    assert channel is not None, "fd 3 of topicd %d is no socket: %s" % (pid, fds(pid))
    delivery = set(before.values()) - {channel}
    assert delivery, "the topicd of sp/a has no delivery socket: %s" % fds(pid)
    data = str(b.data_dir.resolve())
    assert any(t.startswith(data) for t in fds(pid).values()), fds(pid)

    assert wait_spare_line(b, "sp/a") == pid
    keep_spares(b)
    assert process_alive(pid), "the spare exited: %s" % b.log_tail()
    assert title(pid) == "topicd: spare"
    wait_for(lambda: master_spares(b) == 1, 5,
             "spare=1 in the master's title (%r)" % title(b.pid))
    held = fds(pid)
    assert held.get(3) == channel, "its channel is not fd 3 any more: %s" % held
    log = str(b.log_path.resolve())
    others = {fd: t for fd, t in held.items() if fd > 3 and t != log}
    assert not others, "a spare holds more than its channel and log: %s" % held
    assert not [t for t in held.values() if t.startswith(data)], held
    assert not delivery & set(held.values()), held
    master, _ = b.status()
    assert master["running"] == 0, master

    pub.publish("sp/b", b"b1", qos=1)
    sub.wait_payload(b"b1")
    assert starts(b, "sp/b") == [("sp/b", pid, True)], starts(b)
    assert b.topicd_pid("sp/b") == pid
    wait_for(lambda: title(pid).startswith("topicd: sp/b "), 5,
             "the spare's title to name sp/b (%r)" % title(pid))
    wait_for(lambda: master_spares(b) == 0, 5,
             "no spare= in the master's title (%r)" % title(b.pid))
    # It answers SIGUSR1 as a topicd (a spare ignores it).
    assert b.topicd_status("sp/b")["pid"] == pid
    # The cold topic: its retained message, and a message more.
    pub.publish("sp/a", b"a2", qos=1)
    sub.wait_payload(b"a2")
    late = receiver(b, "sp-late", [("sp/a", 1)])
    late.wait_payload(b"a1")
    pub.publish("sp/b", b"b2", qos=1)
    sub.wait_payload(b"b2")
    assert sub.payloads("sp/a") == [b"a1", b"a2"]
    assert sub.payloads("sp/b") == [b"b1", b"b2"]
    assert late.payloads("sp/a") == [b"a1"]


def test_the_topicd_of_a_forgotten_topic_waits_as_a_spare_its_store_deleted(mqtt_factory):
    """A topic that keeps nothing (its one subscriber has everything) is
    forgotten when idle: its topicd deletes the store and waits as a
    spare; the next message to the topic makes it again, on that spare."""
    b = mqtt_factory({"topicd_idle_timeout": 1, "log_type": "information"})
    sub = receiver(b, "fg-sub", [("fg/a", 1)])
    pub = publisher(b)
    pub.publish("fg/a", b"one", qos=1)
    sub.wait_payload(b"one")
    pid = b.wait_topicd("fg/a")
    topics = b.data_dir / "topics"
    assert [f for f in os.listdir(topics) if f.startswith("fg%2Fa.")]
    assert wait_spare_line(b, "fg/a", deleted=True) == pid
    keep_spares(b)
    assert title(pid) == "topicd: spare"
    left = [f for f in os.listdir(topics) if f.startswith("fg%2Fa.")]
    assert not left, "the store of a forgotten topic is still there: %s" % left
    master, _ = b.status()
    assert (master["topics"], master["forgotten"], master["running"]) == (0, 1, 0), master
    pub.publish("fg/a", b"two", qos=1)
    sub.wait_payload(b"two")
    assert starts(b, "fg/a") == [("fg/a", pid, False), ("fg/a", pid, True)], starts(b)
    assert sub.payloads("fg/a") == [b"one", b"two"]


@pytest.mark.parametrize("qos", [1, 2])
def test_many_topics_take_turns_on_two_topicds_that_are_reused(mqtt_factory, qos):
    """max_topicds 2 (its least) and 50 topics, each published to in turn
    with 64 messages in flight: the topics take turns, a stopped topicd
    serving the next topic to start, and a subscriber on # gets every
    acknowledged message (exactly once at QoS 2), each topic's in order."""
    b = mqtt_factory({"max_topicds": 2, "topicd_idle_timeout": 0, "log_type": "information"})
    topics = ["many/%d" % i for i in range(50)]
    sub = receiver(b, "many-sub", [("#", qos)])
    pub = publisher(b)
    rounds = 12
    items = [(t, b"%s-%d" % (t.encode(), r)) for r in range(rounds) for t in topics]
    t0 = time.monotonic()
    acked = publish_pipelined(pub, items, qos, timeout=120)
    took = time.monotonic() - t0
    assert sorted(acked) == sorted(p for _, p in items)
    sub.wait_count(len(items), timeout=60)
    sub.settle()
    problems = []
    for t in topics:
        published = [p for tt, p in items if tt == t]
        problems += ["%s: %s" % (t, s) for s in delivery_problems(
            published, set(published), sub.payloads(t), exactly_once=qos == 2)]
    assert not problems, "\n".join(problems)
    assert {a.qos for a in sub.arrivals} == {qos}
    taken, spawned = starts(b, spare=True), starts(b, spare=False)
    per_pid = collections.Counter(p for _, p, _ in starts(b))
    print("published %d in %.1f s: %d starts, %d by a spare, %d new processes %s"
          % (len(items), took, len(taken) + len(spawned), len(taken), len(spawned),
             dict(per_pid)))
    assert len(taken) + len(spawned) >= len(topics)
    assert taken, "no topic started on a spare"
    # A topicd sent something after its stop (a KEEP) exits, and one
    # that served 256 topics: a few new processes, not one a start.
    assert len(spawned) <= 2 + len(taken) // 20, \
        "%d new processes for %d starts by a spare" % (len(spawned), len(taken))
    assert max(per_pid.values()) <= 256, "a process served more than 256 topics: %s" % per_pid
    assert not re.search(r"protocol violation|spare topicd: ", b.log_text()), b.log_tail()


def test_a_process_serves_at_most_256_topics(mqtt_factory):
    """New topics, one message each, through max_topicds 2: the processes
    go from topic to topic as spares, and one that served 256 exits when
    it is next stopped (a new process takes its place)."""
    b = mqtt_factory({"max_topicds": 2, "topicd_idle_timeout": 0, "log_type": "information"})
    pub = publisher(b)
    n = 0

    def served(pid):
        return len([x for x in starts(b) if x[1] == pid])

    def full():
        counts = collections.Counter(p for _, p, _ in starts(b))
        return [p for p, k in counts.items() if k >= 256]
    while not full():
        assert n < 2000, "no process served 256 topics: %s" % collections.Counter(
            p for _, p, _ in starts(b))
        publish_pipelined(pub, [("cap/%d" % i, b"m") for i in range(n, n + 100)], 1)
        n += 100
    pid = full()[0]
    gone = re.compile(r": topic \S+: topicd exited with status \d+ \(pid %d\)" % pid)
    while not gone.search(b.log_text()):
        assert n < 2100, "process %d still serves a topic" % pid
        pub.publish("cap/%d" % n, b"m", qos=1)
        n += 1
    assert served(pid) == 256, starts(b)
    assert not re.search(r"topicd is spare \(pid %d\)" % pid, b.log_text().split(
        "topicd pid %d started (a spare)" % pid)[-1]), "it waited as a spare after 256 topics"
    wait_for(lambda: not process_exists(pid), 5, "process %d to exit" % pid)
    per_pid = collections.Counter(p for _, p, _ in starts(b))
    assert max(per_pid.values()) == 256, per_pid


def test_a_spare_killed_while_it_waits_is_not_restarted(mqtt_factory):
    """SIGKILL of a spare: the master says so and forgets it (no restart,
    for it serves no topic); the topic it left keeps its retained message,
    and the next start is a new process."""
    b = mqtt_factory({"topicd_idle_timeout": 1, "log_type": "information"})
    sub = receiver(b, "sk-sub", [("sk/#", 1)])
    pub = publisher(b)
    pub.publish("sk/a", b"a1", qos=1, retain=True)
    sub.wait_payload(b"a1")
    pid = wait_spare_line(b, "sk/a")
    keep_spares(b)
    wait_for(lambda: master_spares(b) == 1, 5, "spare=1 in the master's title (%r)" % title(b.pid))
    assert title(pid) == "topicd: spare"
    kill_pid(pid, signal.SIGKILL)
    line = wait_for(lambda: re.search(r"broker\[\d+\]: (\w+): topicd pid %d, spare, (.*)$" % pid,
                                      b.log_text(), re.M), 10, "the master to see the spare die")
    assert line.group(1, 2) == ("information", "Killed"), line.group(0)
    wait_for(lambda: not process_exists(pid), 5, "the spare to be reaped")
    wait_for(lambda: master_spares(b) == 0, 5,
             "no spare= in the master's title (%r)" % title(b.pid))
    # Nothing starts in its place: two ticks of the master, watched.
    before = starts(b)
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        assert not b.topicds(), "a topicd runs: %s" % b.topicds()
        time.sleep(0.05)
    assert starts(b) == before
    text = b.log_text()
    assert not re.search(r"topic sk/a: .*(crash|restart|killed)", text), b.log_tail()
    # The next start is a new process, and the topic it left is whole.
    pub.publish("sk/b", b"b1", qos=1)
    sub.wait_payload(b"b1")
    new = starts(b, "sk/b")
    assert len(new) == 1 and new[0][1] != pid and not new[0][2], new
    late = receiver(b, "sk-late", [("sk/a", 1)])
    late.wait_payload(b"a1")
    pub.publish("sk/a", b"a2", qos=1)
    sub.wait_payload(b"a2")
    assert sub.payloads("sk/a") == [b"a1", b"a2"]
    assert sub.payloads("sk/b") == [b"b1"]
    assert late.payloads("sk/a") == [b"a1", b"a2"]


def test_a_spare_not_needed_within_topicd_idle_timeout_exits(mqtt_factory):
    """A spare no topic takes within topicd_idle_timeout is let go: its
    channel closed, it exits, and the master's title loses spare=."""
    b = mqtt_factory({"topicd_idle_timeout": 1, "log_type": "debug"})
    pub = publisher(b)
    pub.publish("nn/a", b"a1", qos=1, retain=True)
    pid = wait_spare_line(b, "nn/a")
    wait_for(lambda: "topicd pid %d: spare no more: not needed" % pid in b.log_text(), 5,
             "the master to let the spare go")
    wait_for(lambda: not process_exists(pid), 5, "the spare to exit")
    wait_for(lambda: master_spares(b) == 0, 5,
             "no spare= in the master's title (%r)" % title(b.pid))
    assert not re.search(r"topicd pid %d, spare" % pid, b.log_text()), b.log_tail()
    pub.publish("nn/b", b"b1", qos=1)
    wait_for(lambda: starts(b, "nn/b"), 10, "nn/b to start")
    assert starts(b, "nn/b")[0][1:] != (pid, True), starts(b)


def test_no_spares_with_topicd_spares_0(mqtt_factory):
    """topicd_spares 0: an idle topicd exits as it did before spares, and
    every start is a new process."""
    b = mqtt_factory({"topicd_idle_timeout": 1, "topicd_spares": 0, "log_type": "information"})
    sub = receiver(b, "ns-sub", [("ns/#", 1)])
    pub = publisher(b)
    pub.publish("ns/a", b"a1", qos=1, retain=True)
    sub.wait_payload(b"a1")
    pid = b.wait_topicd("ns/a")
    wait_for(lambda: "topic ns/a: topicd exited with status 0 (pid %d); the topic is cold" % pid
             in b.log_text(), 15, "the idle topicd to exit")
    assert not process_exists(pid)
    pub.publish("ns/b", b"b1", qos=1)
    sub.wait_payload(b"b1")
    assert [x[2] for x in starts(b)] == [False, False], starts(b)
    assert starts(b, "ns/b")[0][1] != pid
    assert "is spare" not in b.log_text()
    assert master_spares(b) == 0, title(b.pid)


def test_a_reload_to_topicd_spares_0_lets_the_waiting_spares_go(mqtt_factory):
    """Three spares wait (topicd_spares 16, their wait made long by a
    reload); a reload to topicd_spares 0 lets them all go at the next
    tick: they exit, and spare= leaves the master's title."""
    b = mqtt_factory({"topicd_idle_timeout": 2, "log_type": "debug"})
    sub = receiver(b, "rl-sub", [("rl/#", 1)])
    pub = publisher(b)
    topics = ["rl/%d" % i for i in range(3)]
    for t in topics:
        pub.publish(t, t.encode(), qos=1, retain=True)
    sub.wait_count(3)
    pids = [wait_spare_line(b, t) for t in topics]
    keep_spares(b)
    assert len(set(pids)) == 3, pids
    wait_for(lambda: master_spares(b) == 3, 5, "spare=3 in the master's title (%r)" % title(b.pid))
    assert [title(p) for p in pids] == ["topicd: spare"] * 3
    assert "spare no more" not in b.log_text()
    t0 = time.monotonic()
    b.reload({"topicd_spares": 0})
    wait_for(lambda: not [p for p in pids if process_exists(p)], 5,
             "the spares to exit after topicd_spares went to 0")
    wait_for(lambda: master_spares(b) == 0, 5,
             "no spare= in the master's title (%r)" % title(b.pid))
    took = time.monotonic() - t0
    for p in pids:
        assert "topicd pid %d: spare no more: past topicd_spares" % p in b.log_text()
    assert not re.search(r"topicd pid \d+, spare,", b.log_text()), b.log_tail()
    print("the spares were gone %.1f s after the reload" % took)
    # The next start is a new process.
    pub.publish("rl/0", b"again", qos=1)
    sub.wait_payload(b"again")
    new = starts(b, "rl/0")[-1]
    assert not new[2] and new[1] not in pids, new


def test_a_stop_with_spares_waiting_is_prompt_and_leaves_no_topicd(mqtt_factory):
    """SIGTERM with two spares waiting and a topicd running on a third:
    the spares are let go at once, and the master exits 0 well within
    shutdown_timeout (5 s), without killing anything."""
    b = mqtt_factory({"topicd_idle_timeout": 2, "log_type": "debug"})
    sub = receiver(b, "st-sub", [("st/#", 1)])
    pub = publisher(b)
    topics = ["st/%d" % i for i in range(3)]
    for t in topics:
        pub.publish(t, t.encode(), qos=1, retain=True)
    sub.wait_count(3)
    pids = [wait_spare_line(b, t) for t in topics]
    keep_spares(b)
    # One of them serves a topic again; two wait.
    pub.publish("st/run", b"run", qos=1)
    sub.wait_payload(b"run")
    run = starts(b, "st/run")
    assert len(run) == 1 and run[0][1] in pids and run[0][2], run
    waiting = [p for p in pids if p != run[0][1]]
    wait_for(lambda: master_spares(b) == 2, 5, "spare=2 in the master's title (%r)" % title(b.pid))
    assert [title(p) for p in waiting] == ["topicd: spare"] * 2
    sub.close()
    pub.close()
    t0 = time.monotonic()
    code = b.stop()
    took = time.monotonic() - t0
    text = b.log_text()
    assert code == 0, "the master exited with %s:\n%s" % (code, b.log_tail())
    assert took < 4, "the stop took %.1f s" % took
    assert "killing them" not in text, b.log_tail()
    for p in waiting:
        assert "topicd pid %d: spare no more: the broker stops" % p in text, b.log_tail()
    assert not [p for p in pids if process_alive(p) and
                title(p).startswith("topicd")], "topicds left behind"
