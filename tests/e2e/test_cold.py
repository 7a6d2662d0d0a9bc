"""Cold topics: a topicd with nothing to do exits after topicd_idle_timeout,
at most max_topicds run at once (busy topics take turns), and a topic's
topicd starts again only when something needs it: a publish, a subscriber
with messages to get, a retained message a new subscription asks for.
Nothing is lost on the way, across restarts of the master too."""

import os
import re
import signal
import threading
import time

import pytest

from broker_harness import kill_pid, process_alive, wait_for
from mqtt_helpers import (PUBACK, PUBLISH, RawClient, Receiver, SilentSubscriber, ack_packet,
                          publish_packet)

IDLE = {"topicd_idle_timeout": 1, "log_type": "information"}


def receiver(b, client_id, filters, clean=False, start=True):
    r = Receiver(lambda: b.mqtt_port, client_id, clean=clean)
    r.connect()
    assert r.subscribe(filters) == [q for _, q in filters]
    if start:
        r.start()
    return r


def publisher(b, client_id="cold-pub"):
    c = RawClient(b.mqtt_port, name=client_id)
    c.connect_ok(client_id)
    return c


def running(b, prefix):
    return sorted(t for t in b.topicds().values() if t.startswith(prefix))


def wait_cold(b, prefix, timeout=15):
    wait_for(lambda: not running(b, prefix), timeout,
             "the topicds of %s* to exit, idle (running: %s)" % (prefix, running(b, prefix)))


def started(b, topic):
    """How many times the log says a topicd started for topic."""
    return len(re.findall(r"topic %s: topicd pid \d+ started" % re.escape(topic), b.log_text()))


def wait_acked(b, topic):
    """Waits until the subscribers' acks of what topic sent are in its
    store, before a test kills its topicd: else the restarted one sends
    those messages again (QoS 1 allows it after a crash).  lag 0: the
    topicd has the acks; a status asked after that one is answered once
    the batch that holds them is written."""
    wait_for(lambda: b.topicd_status(topic)["lag"] == 0, 10,
             "the topicd of %s to have every ack" % topic)
    b.topicd_status(topic)


def test_an_idle_topicd_exits_and_a_publish_starts_it_again(mqtt_factory):
    b = mqtt_factory(IDLE)
    sub = receiver(b, "idle-sub", [("idle/t", 1)])
    pub = publisher(b)
    pub.publish("idle/t", b"one", qos=1)
    sub.wait_payload(b"one")
    wait_cold(b, "idle/t")
    assert re.search(r"topic idle/t: topicd pid \d+ stops: idle for topicd_idle_timeout",
                     b.log_text())
    # Gone from the process list as soon as it exits; the master reaps it
    # and says so a moment later.
    wait_for(lambda: re.search(r"topic idle/t: topicd (exited|is spare)", b.log_text()), 10,
             "the master to log the idle topicd's exit")
    # It kept nothing (its one subscriber had everything): forgotten.
    master, topics = b.status()
    assert (master["topics"], master["forgotten"], master["running"]) == (0, 1, 0), master
    assert "idle/t" not in topics, "a cold topic has no status line: %s" % topics
    # The subscriber is still there: the next message creates the topic
    # again, with the subscriber's place in it first.
    pub.publish("idle/t", b"two", qos=1)
    sub.wait_payload(b"two")
    assert sub.payloads("idle/t") == [b"one", b"two"]
    assert started(b, "idle/t") == 2


def test_a_start_after_a_crash_replays_and_a_later_cold_start_does_not(mqtt_factory):
    """A publish that waited while a killed topicd's restart was backing
    off is replayed into the next one, and the log says so; the publish
    that starts the topic again once it has gone cold is no replay (the
    log said so at every start of a topic killed once)."""
    b = mqtt_factory(dict(IDLE, restart_backoff_min=3))
    sub = receiver(b, "replay-sub", [("replay/t", 1)])
    pub = publisher(b)
    pub.publish("replay/t", b"one", qos=1)
    sub.wait_payload(b"one")
    wait_acked(b, "replay/t")
    kill_pid(b.topicd_pid("replay/t"), signal.SIGKILL)
    wait_for(lambda: "topic replay/t: topicd killed by signal 9" in b.log_text(), 10,
             "the master to see the topicd die")
    pub.publish("replay/t", b"two", qos=1)      # held through the back-off
    sub.wait_payload(b"two")
    line = re.compile(r"topic replay/t: replaying 1 held request into topicd pid")
    assert len(line.findall(b.log_text())) == 1, b.log_tail()
    wait_cold(b, "replay/t")
    pub.publish("replay/t", b"three", qos=1)
    sub.wait_payload(b"three")
    assert started(b, "replay/t") == 3
    assert sub.payloads("replay/t") == [b"one", b"two", b"three"]
    assert len(line.findall(b.log_text())) == 1, b.log_tail()


def test_at_most_max_topicds_run_and_busy_topics_take_turns(mqtt_factory):
    b = mqtt_factory({"max_topicds": 2, "topicd_idle_timeout": 0, "log_type": "information"})
    sub = receiver(b, "turns-sub", [("turns/#", 1)])
    most, done = [0], threading.Event()

    def watch():
        while not done.is_set():
            most[0] = max(most[0], len(running(b, "turns/")))
            time.sleep(0.005)
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        pub = publisher(b)
        want = []
        for rnd in range(3):
            for i in range(6):
                payload = b"r%d-t%d" % (rnd, i)
                pub.publish("turns/%d" % i, payload, qos=1)   # PUBACK: stored
                want.append(payload)
        sub.wait_count(len(want), timeout=60)
    finally:
        done.set()
        watcher.join()
    assert sorted(sub.payloads()) == sorted(want)
    for i in range(6):
        assert sub.payloads("turns/%d" % i) == [b"r%d-t%d" % (r, i) for r in range(3)]
    assert most[0] <= 2, "%d topicds of ours ran at once, max_topicds is 2" % most[0]
    assert "stops: room for another topic" in b.log_text() or \
        "stops: idle, room for another topic" in b.log_text()


def test_a_stopped_topicd_chosen_to_make_room_is_killed_after_topicd_timeout(mqtt_factory):
    """max_topicds 2: a third topic needs the place of the least recently
    used topicd, which is stopped (SIGSTOP) and cannot answer its STOP.
    After topicd_timeout it is killed, and the third topic's publish is
    stored and acknowledged (it waited for ever before)."""
    b = mqtt_factory({"max_topicds": 2, "topicd_idle_timeout": 0, "topicd_timeout": 3,
                      "restart_backoff_min": 5, "restart_backoff_max": 5})
    pub = publisher(b)
    pub.publish("room/a", b"a", qos=1)
    stuck = b.wait_topicd("room/a")
    pub.publish("room/b", b"b", qos=1)
    b.wait_topicd("room/b")
    os.kill(stuck, signal.SIGSTOP)
    try:
        pub.publish("room/c", b"c", qos=1, timeout=30)
        assert "not gone within topicd_timeout of its STOP" in b.log_text()
        wait_for(lambda: not process_alive(stuck), 5, "the stopped topicd to be gone")
    finally:
        if process_alive(stuck):
            kill_pid(stuck, signal.SIGCONT)


def test_a_stopped_topicd_with_work_waiting_is_killed_and_its_topic_goes_on(mqtt_factory):
    """A running topicd stopped (SIGSTOP) with a publish waiting for it
    answers no PING: after topicd_timeout it is killed, and the restarted
    one stores and delivers the publish (which waited for ever before).
    Another topic goes on meanwhile."""
    b = mqtt_factory({"topicd_timeout": 2, "topicd_idle_timeout": 0,
                      "restart_backoff_min": 0.1, "restart_backoff_max": 0.1})
    sub = receiver(b, "hung-sub", [("hung/t", 1), ("other/t", 1)])
    pub = publisher(b)
    pub.publish("hung/t", b"before", qos=1)
    sub.wait_payload(b"before")
    wait_acked(b, "hung/t")
    stuck = b.wait_topicd("hung/t")
    os.kill(stuck, signal.SIGSTOP)
    try:
        pid = pub.alloc_pid()
        pub.send(publish_packet("hung/t", b"while stopped", qos=1, pid=pid))
        pub.publish("other/t", b"other topic", qos=1)
        sub.wait_payload(b"other topic")
        p = pub.expect(PUBACK, pid=pid, timeout=20)
        assert p.pid == pid
        assert re.search(r"topic hung/t: topicd pid %d: sent nothing for topicd_timeout, "
                         r"with work waiting \(stopped\); killing it" % stuck,
                         b.log_text()), b.log_tail()
        sub.wait_payload(b"while stopped")
        assert sub.payloads("hung/t") == [b"before", b"while stopped"]
        assert b.wait_topicd("hung/t", not_pid=stuck) != stuck
    finally:
        if process_alive(stuck):
            kill_pid(stuck, signal.SIGCONT)


def test_a_topicd_waiting_for_its_subscriber_is_not_taken_for_hung(mqtt_factory):
    """A subscriber that does not acknowledge keeps its topicd busy (in
    flight, no IDLE) and silent: the topicd answers the master's PINGs
    and is left alone."""
    b = mqtt_factory({"topicd_timeout": 1, "topicd_idle_timeout": 0,
                      "log_type": "debug"})
    c = RawClient(b.mqtt_port, name="no-ack")
    c.connect_ok("no-ack")
    assert c.subscribe([("slow/t", 1)]) == [1]
    pub = publisher(b)
    pub.publish("slow/t", b"not acknowledged", qos=1)
    assert c.expect(PUBLISH).payload == b"not acknowledged"
    pid = b.wait_topicd("slow/t")
    # Four PINGs, each answered in time.
    pings = r"topic slow/t: topicd pid %d: nothing heard for half of topicd_timeout, " \
        r"with work waiting: PING" % pid
    wait_for(lambda: len(re.findall(pings, b.log_text())) >= 4 or "killing it" in b.log_text(),
             10, "the master to ping the silent topicd four times")
    assert "killing it" not in b.log_text(), b.log_tail()
    assert b.topicd_pid("slow/t") == pid


@pytest.mark.parametrize("client_id,filt", [("qs", "q/#"), ("qg", "$share/g/q/#")],
                         ids=["own", "shared"])
def test_a_registration_a_stop_left_unmade_is_made_at_the_next_start(mqtt_factory, client_id,
                                                                     filt):
    """A persistent session subscribes to q/# (or joins a group on it)
    and leaves while the cold topic q/t is cold (both places held by
    stopped topicds): its registration there waits for the topic's next
    start, which its leaving does not cause, and the broker's stop does
    not wait for it.  The next start of the broker registers it again
    before anything new is published, so a message acknowledged after the
    restart reaches the session (it started after that message before)."""
    b = mqtt_factory({"max_topicds": 2, "topicd_idle_timeout": 0, "shutdown_timeout": 1,
                      "log_type": "information"})
    # An offline subscriber with a message to get keeps q/t (a topic that
    # kept nothing would be forgotten when it stops).
    keeper = receiver(b, "keeper", [("q/t", 1)], start=False)
    keeper.client.close()
    pub = publisher(b)
    pub.publish("q/t", b"before the subscription", qos=1)
    pub.publish("a/run", b"x", qos=1)
    pub.publish("b/run", b"x", qos=1)
    stuck = [b.wait_topicd("a/run"), b.wait_topicd("b/run")]
    for pid in stuck:
        os.kill(pid, signal.SIGSTOP)
    try:
        r = receiver(b, client_id, [(filt, 1)], start=False)
        r.client.close()
        b.stop()
        assert "still unanswered" not in b.log_text(), b.log_tail()
    finally:
        for pid in stuck:
            if process_alive(pid):
                kill_pid(pid, signal.SIGKILL)
    b.start(keep_ports=True)
    pub = publisher(b, "cold-pub2")
    pub.publish("q/t", b"after the restart", qos=1)
    assert r.reconnect().session_present
    r.start()
    r.wait_payload(b"after the restart", timeout=15)
    assert r.payloads("q/t") == [b"after the restart"]
    assert "session m/%s: registered again in topic q/t" % client_id in b.log_text()


def test_a_persistent_session_gets_its_backlog_from_cold_topics(mqtt_factory):
    b = mqtt_factory(IDLE)
    r = receiver(b, "bl-sub", [("bl/+", 1)], start=False)
    r.client.close()                                    # offline, session kept
    pub = publisher(b)
    for i in range(4):
        pub.publish("bl/%d" % i, b"m%d" % i, qos=1)
    wait_cold(b, "bl/")
    assert r.reconnect().session_present
    r.wait_count(4, timeout=20)
    assert sorted(r.payloads()) == [b"m%d" % i for i in range(4)]


def test_a_subscription_to_topics_not_published_yet_creates_none(mqtt_factory):
    """A gateway's persistent session subscribes to a few hundred exact
    topics nobody has published to: no topic, store or topicd for them.
    One published later, even after the master was killed, still gives
    the session its message."""
    b = mqtt_factory(IDLE)
    filters = [("np/%d" % i, 1) for i in range(300)]
    r = receiver(b, "np-sub", filters, start=False)
    r.client.close()                                    # offline, session kept
    master, _ = b.status()
    assert (master["topics"], master["running"]) == (0, 0), master
    assert "topic np/" not in b.log_text()
    left = b.kill9()
    b.wait_topicds_gone(left)
    b.start(keep_ports=True)
    pub = publisher(b)
    pub.publish("np/7", b"while away", qos=1)
    assert r.reconnect().session_present
    r.wait_payload(b"while away", timeout=20)
    pub.publish("np/8", b"online", qos=1)
    r.wait_payload(b"online")
    assert r.payloads("np/7") == [b"while away"]
    assert r.payloads("np/8") == [b"online"]
    master, _ = b.status()
    assert master["topics"] == 2, master


def test_a_subscriber_with_nothing_to_get_leaves_cold_topics_cold(mqtt_factory):
    b = mqtt_factory(IDLE)
    r = receiver(b, "nb-sub", [("nb/+", 1), ("nb-sync", 1)])
    pub = publisher(b)
    for i in range(3):
        pub.publish("nb/%d" % i, b"m%d" % i, qos=1)
    r.wait_count(3)
    wait_cold(b, "nb/")
    before = [started(b, "nb/%d" % i) for i in range(3)]
    assert r.reconnect().session_present
    # A message on another topic, after the reconnect, is the barrier: the
    # master handled the CONNECT (and every attachment) before it.
    pub.publish("nb-sync", b"sync", qos=1)
    r.wait_payload(b"sync")
    assert [started(b, "nb/%d" % i) for i in range(3)] == before, \
        "a cold topic started for a subscriber with nothing to get"
    assert not running(b, "nb/")
    assert r.payloads("nb/0") == [b"m0"]


def test_clients_that_come_and_go_on_a_wildcard_let_idle_topicds_exit(mqtt_factory):
    """A client on a wildcard that connects and leaves again and again
    (a dashboard, a health check) gives the topics it matches no work:
    their topicds exit after topicd_idle_timeout while it goes on, and
    the topics stay cold."""
    b = mqtt_factory(IDLE)
    keeper = receiver(b, "cw-keeper", [("cw/#", 1)])      # keeps the topics known
    pub = publisher(b)
    for i in range(5):
        pub.publish("cw/%d" % i, b"m", qos=1)
    keeper.wait_count(5)
    halt = threading.Event()
    visits = []

    def come_and_go():
        while not halt.is_set():
            c = RawClient(b.mqtt_port, name="cw-visitor")
            c.connect_ok("cw-visitor-%d" % len(visits))
            assert c.subscribe([("cw/#", 1)]) == [1]
            c.disconnect()
            c.expect_closed()
            visits.append(time.monotonic())
            halt.wait(0.2)

    t = threading.Thread(target=come_and_go, daemon=True)
    t.start()
    try:
        wait_cold(b, "cw/", timeout=10)
        cold_at = time.monotonic()
        first = len(visits)
        wait_for(lambda: len(visits) >= first + 5, 10, "five more visits")
        assert not running(b, "cw/"), "a visit started a cold topic"
    finally:
        halt.set()
        t.join(10)
    # A visit came less than topicd_idle_timeout before they exited: by
    # the clock it reset, they would still run.
    assert first > 0 and cold_at - visits[first - 1] < IDLE["topicd_idle_timeout"], \
        (first, visits[:first], cold_at)
    assert [started(b, "cw/%d" % i) for i in range(5)] == [1] * 5


def test_a_persistent_session_that_comes_and_goes_leaves_cold_topics_cold(mqtt_factory):
    """A new persistent session on a wildcard over cold topics, which
    leaves at once, has its cursor made in each at the topic's next start,
    not by starting them all; a message published there later reaches
    it."""
    b = mqtt_factory(IDLE)
    # Offline with messages to get, it keeps the topics (one that kept
    # nothing would be forgotten when it stops).
    keeper = receiver(b, "pw-keeper", [("pw/#", 1)], start=False)
    keeper.client.close()
    pub = publisher(b)
    for i in range(5):
        pub.publish("pw/%d" % i, b"m", qos=1)
    wait_cold(b, "pw/")
    wait_for(lambda: len(re.findall(r"topic pw/\d: topicd (exited|is spare) .*the topic is cold",
                                    b.log_text())) == 5, 10, "the master to see them cold")
    r = receiver(b, "pw-visitor", [("pw/#", 1)], start=False)
    r.disconnect()
    # Its CONNECT again is the barrier: the master handled the leaving.
    assert r.reconnect().session_present
    r.disconnect()
    assert [started(b, "pw/%d" % i) for i in range(5)] == [1] * 5, \
        "a persistent session that left started cold topics"
    assert not running(b, "pw/")
    pub.publish("pw/3", b"after", qos=1)
    assert r.reconnect().session_present
    r.wait_payload(b"after")
    assert r.payloads() == [b"after"]


def test_retained_messages_of_cold_topics_reach_a_new_subscription(mqtt_factory):
    b = mqtt_factory({"topicd_idle_timeout": 1, "max_topicds": 2})
    pub = publisher(b)
    for i in range(6):
        pub.publish("ret/%d" % i, b"state %d" % i, qos=1, retain=True)
    pub.publish("ret-none", b"not retained", qos=1)
    wait_cold(b, "ret")
    c = RawClient(b.mqtt_port, name="ret-sub")
    c.connect_ok("ret-sub")
    assert c.subscribe([("ret/#", 1)]) == [1]
    got = {}
    while len(got) < 6:
        p = c.expect(PUBLISH, timeout=20)
        assert p.retain, p
        got[p.topic] = p.payload
        c.send(ack_packet(PUBACK, p.pid))
    assert got == {"ret/%d" % i: b"state %d" % i for i in range(6)}


def test_what_is_known_of_cold_topics_survives_a_restart(mqtt_factory):
    b = mqtt_factory(IDLE)
    r = receiver(b, "rs-sub", [("rs/+", 1), ("rs-sync", 1)])
    pub = publisher(b)
    for i in range(3):
        pub.publish("rs/%d" % i, b"m%d" % i, qos=1)
    r.wait_count(3)
    wait_cold(b, "rs/")
    r.close()
    pub.close()
    b.restart()
    check_known_after_restart(b, r, "rs")


def check_known_after_restart(b, r, prefix):
    """r, caught up on PREFIX/0.. before the restart, comes back: no topic
    of PREFIX/ starts for it (a message on PREFIX-sync after the reconnect
    is the barrier), and PREFIX/1 still delivers, after what it had."""
    assert r.reconnect().session_present
    pub = publisher(b)
    pub.publish(prefix + "-sync", b"sync", qos=1)
    r.wait_payload(b"sync")
    assert not running(b, prefix + "/"), "a restarted master started topics that owe nothing"
    pub.publish(prefix + "/1", b"after", qos=1)
    r.wait_payload(b"after")
    assert r.payloads(prefix + "/1") == [b"m1", b"after"]


def test_topics_running_at_a_stop_are_cold_and_known_after_the_restart(mqtt_factory):
    """A stop (SIGTERM) asks each running topicd for its last word, as
    when it goes idle: after the restart the master knows which topics
    owe the session something, starts none of the others, and their
    stores were closed with a checkpoint (nothing replayed)."""
    b = mqtt_factory({"topicd_idle_timeout": 0, "log_type": "information"})
    r = receiver(b, "st-sub", [("st/+", 1), ("st-sync", 1)])
    pub = publisher(b)
    for i in range(4):
        pub.publish("st/%d" % i, b"m%d" % i, qos=1)
    r.wait_count(4)
    for i in range(4):
        wait_acked(b, "st/%d" % i)
    r.close()
    pub.close()
    assert running(b, "st/") == ["st/%d" % i for i in range(4)]
    b.restart()
    log = b.log_text()
    for i in range(4):
        assert re.search(r"topic st/%d: topicd exited with status 0 \(pid \d+\); "
                         r"the topic is cold" % i, log), b.log_tail()
    check_known_after_restart(b, r, "st")
    assert re.search(r"topic st/1: store opened: 0 records replayed", b.log_text()), \
        b.log_tail()


def test_topics_running_when_the_master_is_killed_start_for_their_subscribers(mqtt_factory):
    """Killed, the master could not write what its topicds knew: such a
    topic is started for any subscriber that may have something to get."""
    b = mqtt_factory({"topicd_idle_timeout": 0})
    r = receiver(b, "kl-sub", [("kl/t", 1)], start=False)
    r.client.close()
    pub = publisher(b)
    pub.publish("kl/t", b"stored", qos=1)
    b.wait_topicd("kl/t")
    left = b.kill9()
    b.wait_topicds_gone(left)
    b.start(keep_ports=True)
    assert r.reconnect().session_present
    r.wait_payload(b"stored", timeout=20)
    assert r.payloads("kl/t") == [b"stored"]


def test_a_wildcard_subscriber_of_many_cold_topics_does_not_make_them_churn(mqtt_factory):
    """More cold topics with a retained message than may run, and more
    running than the subscriber's window: the topicds waiting for the
    window are busy, not quiet.  They take turns in slices long enough for
    a subscriber that reads to make progress: few are stopped busy and
    started again while the subscriber works through the topics.  The
    messages are over 1 KiB, so that the master has no copy of them
    (test_retained_copy.py): each topic starts to send its own."""
    topics = 300
    pad = b"." * 1100
    b = mqtt_factory({"max_topicds": 100, "topicd_idle_timeout": 1,
                      "max_inflight_messages": 20, "log_type": "information"})
    pub = publisher(b)
    for i in range(topics):
        pub.publish("churn/%d" % i, b"state %d" % i + pad, qos=1, retain=True)
    wait_cold(b, "churn/", timeout=30)
    c = RawClient(b.mqtt_port, name="churn-sub")
    c.connect_ok("churn-sub")
    # The SUBACK does not wait for the topicds to start (they start a few
    # in each pass of the master's loop).
    assert c.subscribe([("churn/#", 1)]) == [1]
    got = {}
    while len(got) < topics:
        p = c.expect(PUBLISH, timeout=30)
        assert p.retain and (p.dup or p.topic not in got), p  # QoS 1: again only as DUP
        got[p.topic] = p.payload
        time.sleep(0.005)                       # a subscriber that takes its time
        c.send(ack_packet(PUBACK, p.pid))
    assert got == {"churn/%d" % i: b"state %d" % i + pad for i in range(topics)}
    starts = sum(started(b, "churn/%d" % i) for i in range(topics))
    # One start to publish, one to deliver, and turns taken beyond that
    # (751 seen once on a loaded machine); churn was thousands.
    assert starts <= 3 * topics, "%d topicd starts for %d topics" % (starts, topics)


def test_deliveries_waiting_in_a_socket_outlive_their_topicd(mqtt_factory):
    """A subscriber that does not read has QoS 0 deliveries of 64 KiB
    waiting in its delivery socket when its topicd stops, idle.  Nobody
    would send them again, so they never go by the topicd's ring, which
    the master cannot follow once the topicd is gone.  It reads them
    all."""
    b = mqtt_factory(IDLE)
    silent = SilentSubscriber(b.mqtt_port, "cold-silent", "cold/big", qos=0)
    pub = publisher(b)
    sent = [b"%04d" % i + bytes([i]) * (64 * 1024 - 4) for i in range(60)]
    for p in sent:
        pub.publish("cold/big", p, qos=0)
    pub.ping()
    wait_cold(b, "cold/big")
    got = silent.drain(len(sent))
    assert [p[:4] for p in got] == [p[:4] for p in sent]
    assert got == sent


def test_qos1_deliveries_in_a_socket_at_a_stop_come_again(mqtt_factory):
    """At QoS 1 large deliveries go by the topicd's ring.  Busy topicds
    stopped to make room (max_topicds 2) leave some in the sockets of
    subscribers that do not read; the master drops those (their ring is
    gone), and the next topicd of each topic sends them again.  Every
    message arrives, whole."""
    b = mqtt_factory({"max_topicds": 2, "topicd_idle_timeout": 0, "log_type": "debug"})
    topics = ["cold/big1", "cold/big2"]
    silent = [SilentSubscriber(b.mqtt_port, "cold-silent-%d" % i, t, qos=1)
              for i, t in enumerate(topics)]
    pub = publisher(b)
    # More than the kernel's send buffer and the client's output hold:
    # the rest of the window waits in the delivery socket.
    sent = [b"%04d" % i + bytes([i % 256]) * (64 * 1024 - 4) for i in range(150)]
    for t in topics:
        for p in sent:
            pub.publish(t, p, qos=1)
    pids = [b.wait_topicd(t) for t in topics]
    pub.publish("cold/other", b"room", qos=1, timeout=30)
    # Stopped, its process exits or waits as a spare (or serves another
    # topic already).
    wait_for(lambda: any(b.topicd_pid(t) != p for t, p in zip(topics, pids)), 10,
             "a busy topicd to stop for room")
    for s in silent:
        got = {}
        while len(got) < len(sent):
            p = s.next(timeout=30)
            assert (p.type, p.qos) == (PUBLISH, 1), p
            s.sock.sendall(ack_packet(PUBACK, p.pid))
            got[p.payload[:4]] = p.payload
        assert sorted(got.values()) == sent
    # The path this is about was taken: references to a stopped topicd's
    # ring were dropped, and what they carried came again.
    assert "a delivery of a topicd that is gone: dropped" in b.log_text()
