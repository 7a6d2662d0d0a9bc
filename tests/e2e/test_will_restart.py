"""MQTT wills across the master's death and its stops.

The master keeps a client's will in its store from the CONNECT on (before
the CONNACK), so that:
- a SIGKILL under a connected client leaves a connection that ended
  without DISCONNECT: the next master publishes the will (before it
  accepts clients), unless the will has a Will Delay Interval and its
  session outlives the connection; then the delay runs again from the
  restart, and a resumed session cancels it;
- a clean DISCONNECT before the kill leaves no will;
- a will waiting for its delay when the broker stops (SIGTERM) or is
  killed waits on in the next master, counted from when it started
  waiting (at once if that time passed while the broker was down);
- the ACL of the moment of publication applies;
- a will is published at most once, however many restarts follow;
- a QoS 2 will is published exactly once, also when its topicd or the
  master dies after the topicd stored it and before the master heard so
  (it is staged under a name of its own, then released).

Wills are watched by persistent sessions (QoS 1 or 2) that were
subscribed before the kill and reconnect after it.  An absence is shown
by a barrier: a later publish to the same topic, after which the missing
message could no longer come (its topic's log keeps the order); a second
publication is looked for by a persistent session that subscribed only
after the first one (a redelivery of the first cannot reach it).
"""

import collections
import re
import signal
import time
from pathlib import Path

import pytest

from broker_harness import SlowSync, dynamic_topicd, kill_pid, preload_shim, wait_for
from mqtt_helpers import (CONNECT, PUBACK, PUBLISH, MosquittoSub, PahoClient, Receiver,
                          ack_packet, connected_client, paho)
from mqtt5_helpers import V5Client, disconnect5, props
from test_auth import USERS, auth_broker
from test_service import since_last_start

pytestmark = pytest.mark.skipif(paho is None, reason="paho-mqtt missing (use /usr/bin/python3)")

EARLY = 0.05            # a broker timer may fire this much early by our clock
EXPIRY = props(CONNECT, SessionExpiryInterval=300)


# ---------------------------------------------------------------- helpers

def watcher(b, client_id, filters, clean=False):
    """A raw Receiver (a persistent session unless clean), subscribed to
    filters and pumping in its thread."""
    r = Receiver(lambda: b.mqtt_port, client_id, clean=clean)
    r.connect()
    assert r.subscribe(filters) == [q for _, q in filters]
    return r.start()


def rejoin(r):
    """The Receiver reconnects after a restart and finds its session."""
    ack = r.reconnect()
    assert ack.session_present, "%s: the session did not survive the restart" % r


def kill_and_start(b):
    """SIGKILL of the master (its topicds exit on their own), then a start
    on the same data and ports.  Returns the time the start began: no
    master ran between the kill and then."""
    left = b.kill9()
    b.wait_topicds_gone(left)
    began = time.monotonic()
    b.start(keep_ports=True)
    return began


def stop_or_kill(b, how):
    if how == "sigterm":
        b.stop()
    else:
        b.wait_topicds_gone(b.kill9())


def round_trip(b, name="probe"):
    """A CONNECT and a PINGREQ on a connection of its own, answered: the
    master has gone through its loop since what the test saw before (a
    connection it closed), so what it wrote then (page cache) survives a
    SIGKILL."""
    c = connected_client(b.mqtt_port, name)
    c.ping()
    c.disconnect()
    c.expect_closed()


def barrier(b, topic, payload, qos=1):
    """Publishes payload to topic from a client of its own, acknowledged."""
    c = connected_client(b.mqtt_port, "barrier-" + payload.decode())
    c.publish(topic, payload, qos)
    c.disconnect()
    c.expect_closed()


def arrival(r, payload):
    with r.lock:
        return next(a for a in r.arrivals if a.payload == payload)


def will5(topic, payload, qos=1, retain=False, **wprops):
    wp = props(CONNECT, WillProps=True, **wprops) if wprops else b"\x00"
    return (topic, payload, qos, retain, wp)


def v5_client(b, client_id, will=None, persistent=False):
    c = V5Client(b.mqtt_port, name=client_id)
    return c, c.connect5_ok(client_id, clean=not persistent,
                            cprops=EXPIRY if persistent else b"\x00", will=will)


def wait_stored(b, topic):
    """Waits for the master to hear that a will to topic is stored (log at
    debug level): from then on its record is gone from the store."""
    wait_for(lambda: re.search(r"topic %s: the will of session \S+ is stored" % re.escape(topic),
                               since_last_start(b)), 10, "the will to %s stored" % topic)


def until(t):
    """Waits until the monotonic clock reaches t: what a test waits for
    here is the passing of time itself (a delay running out while the
    broker is down)."""
    wait_for(lambda: time.monotonic() >= t, t - time.monotonic() + 1.0,
             "the clock to reach the end of the delay")


# ---------------------------------------------------------------- SIGKILL, no delay

def test_wills_of_clients_connected_at_sigkill_are_published_at_restart(mqtt_broker):
    """paho 3.1.1 (QoS 1), a raw 3.1.1 client on a persistent session (QoS
    2, retained, binary payload) and mosquitto_sub (QoS 1) are connected
    with wills when the master is SIGKILLed: the next master publishes the
    three, each once, with its QoS; the retained one is retained (a fresh
    subscriber gets it); a second restart (SIGTERM) publishes none of them
    again."""
    b = mqtt_broker
    w = watcher(b, "wr-watch", [("wr/#", 2)])
    binary = bytes(range(256))
    paho_c = PahoClient(b.mqtt_port, "wr-paho")
    paho_c.connect_ok(will=("wr/paho", b"paho gone", 1, False))
    connected_client(b.mqtt_port, "wr-raw", clean=False, will=("wr/raw", binary, 2, True))
    ms = MosquittoSub(b.mqtt_port, ["wr/ms-in"], 1,
                      args=["-i", "wr-ms", "--will-topic", "wr/ms", "--will-payload",
                            "mosquitto_sub gone", "--will-qos", "1"])
    ms.wait_subscribed()

    left = b.kill9()
    ms.kill()                       # it would reconnect to the next master
    ms.proc.wait(5)
    b.wait_topicds_gone(left)
    b.start(keep_ports=True)

    rejoin(w)
    expected = {"wr/paho": (b"paho gone", 1), "wr/raw": (binary, 2),
                "wr/ms": (b"mosquitto_sub gone", 1)}
    for topic, (payload, qos) in expected.items():
        w.wait_payload(payload, topic)
        a = arrival(w, payload)
        assert (a.topic, a.qos, a.retain) == (topic, qos, False), a
    for topic in expected:
        barrier(b, topic, b"after " + topic.encode())
    for topic, (payload, _) in expected.items():
        w.wait_payload(b"after " + topic.encode(), topic)
        assert w.payloads(topic) == [payload, b"after " + topic.encode()], \
            "%s: %s" % (topic, w.payloads(topic))

    fresh = watcher(b, "wr-fresh", [("wr/raw", 2)], clean=True)
    fresh.wait_payload(binary, "wr/raw")
    a = fresh.arrivals[0]
    assert (a.payload, a.qos, a.retain) == (binary, 2, True), a

    # Published once: a session that subscribed only now gets none of
    # them after a second restart, only what is published after it.
    late = watcher(b, "wr-late", [("wr/paho", 2), ("wr/ms", 2)])
    b.restart()
    rejoin(late)
    barrier(b, "wr/paho", b"second")
    barrier(b, "wr/ms", b"second")
    late.wait_count(2)
    assert late.payloads("wr/paho") == [b"second"] and late.payloads("wr/ms") == [b"second"], \
        "a will was published again at the second restart: %s" % late.payloads()


def test_v5_will_connected_at_sigkill_keeps_its_properties(mqtt_broker):
    """An MQTT 5.0 will (QoS 1, retained, with properties and no delay)
    of a client connected at the SIGKILL is published at the restart with
    its properties: a persistent v5 subscriber gets it, and a fresh one
    gets it as the retained message."""
    b = mqtt_broker
    s, _ = v5_client(b, "wr5-sub", persistent=True)
    assert s.subscribe5([("wr5/t", 1)]).codes == [1]
    v5_client(b, "wr5-will", will=will5("wr5/t", b"v5 gone", 1, True, ContentType="text/plain",
                                        PayloadFormatIndicator=1,
                                        UserProperty=[("why", "sigkill")]))

    kill_and_start(b)

    s, ack = v5_client(b, "wr5-sub", persistent=True)
    assert ack.session_present
    m = s.next5(PUBLISH, timeout=10)
    assert (m.topic, m.payload, m.qos, m.retain) == ("wr5/t", b"v5 gone", 1, False), vars(m)
    assert m.props.get("ContentType") == "text/plain", m.props
    assert m.props.get("PayloadFormatIndicator") == 1, m.props
    assert [tuple(p) for p in m.props.get("UserProperty", [])] == [("why", "sigkill")], m.props
    s.send(ack_packet(PUBACK, m.pid))

    fresh, _ = v5_client(b, "wr5-fresh")
    assert fresh.subscribe5([("wr5/t", 1)]).codes == [1]
    r = fresh.next5(PUBLISH)
    assert (r.payload, r.qos, r.retain) == (b"v5 gone", 1, True), vars(r)
    assert r.props.get("ContentType") == "text/plain", r.props
    fresh.send(ack_packet(PUBACK, r.pid))


def test_no_will_after_a_clean_disconnect_before_the_sigkill(mqtt_broker):
    """A 3.1.1 client that sent DISCONNECT and two 5.0 clients that sent
    DISCONNECT 0x00 (one with a Will Delay Interval of 1 s on a session
    that lives on) before the SIGKILL have no will published after the
    restart (not even a retained one); a client still connected then has
    its will published, and later publishes to the same topic come after
    it with nothing between."""
    b = mqtt_broker
    w = watcher(b, "wc-watch", [("wc/t", 1)])
    polite = connected_client(b.mqtt_port, "wc-311", will=("wc/t", b"polite 311", 1, True))
    polite5, _ = v5_client(b, "wc-5", will=will5("wc/t", b"polite 5", 1, True))
    polite5d, _ = v5_client(b, "wc-5d", persistent=True,
                            will=will5("wc/t", b"polite 5 delayed", 1, True,
                                       WillDelayInterval=1))
    control = connected_client(b.mqtt_port, "wc-ctl", will=("wc/t", b"control", 1, False))
    polite.disconnect()
    polite.expect_closed()
    for c in (polite5, polite5d):
        c.send(disconnect5(0))
        c.expect_closed()
    control.ping()                  # the master went on past the DISCONNECTs

    kill_and_start(b)
    ready = time.monotonic()        # the master started before this

    rejoin(w)
    w.wait_payload(b"control", "wc/t")
    barrier(b, "wc/t", b"barrier")
    w.wait_payload(b"barrier", "wc/t")
    assert w.payloads() == [b"control", b"barrier"], w.payloads()
    # Had the delayed one been kept, it would have come 1 s after the
    # master started: a second barrier once that time is past.
    until(ready + 1.3)
    barrier(b, "wc/t", b"barrier 2")
    w.wait_payload(b"barrier 2", "wc/t")
    assert w.payloads() == [b"control", b"barrier", b"barrier 2"], w.payloads()
    late = watcher(b, "wc-late", [("wc/t", 1)], clean=True)
    barrier(b, "wc/t", b"later")
    late.wait_payload(b"later")
    assert late.payloads() == [b"later"], "a will was retained: %s" % late.payloads()


# ---------------------------------------------------------------- delays

def test_delayed_will_connected_at_sigkill_waits_again_from_the_restart(mqtt_broker):
    """MQTT 5.0 clients connected at the SIGKILL, sessions of 300 s:
    - a will with a Will Delay Interval of 2 s is published 2 s after
      the restart, not at once;
    - the same, but its session resumes (clean start 0) before: never;
    - a will with a delay of 60 s whose session ends with the connection
      (Session Expiry Interval 0): at once at the restart."""
    b = mqtt_broker
    w = watcher(b, "wd-watch", [("wd/t", 1)])
    v5_client(b, "wd-a", persistent=True, will=will5("wd/t", b"a", WillDelayInterval=2))
    v5_client(b, "wd-b", persistent=True, will=will5("wd/t", b"b", WillDelayInterval=2))
    v5_client(b, "wd-d", will=will5("wd/t", b"d", WillDelayInterval=60))

    began = kill_and_start(b)

    _, ack = v5_client(b, "wd-b", persistent=True)
    assert ack.session_present
    rejoin(w)
    w.wait_payload(b"d", timeout=10)
    w.wait_payload(b"a", timeout=10)
    took = arrival(w, b"a").at - began
    assert took >= 2 - EARLY, "the delayed will came %.2f s after the restart began, " \
        "before its Will Delay Interval (2 s) had run again" % took
    barrier(b, "wd/t", b"barrier")
    w.wait_payload(b"barrier")
    assert collections.Counter(w.payloads()) == {b"a": 1, b"d": 1, b"barrier": 1}, \
        w.payloads()


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_waiting_will_survives_a_stop_of_the_broker(mqtt_broker, how):
    """Wills that wait for their Will Delay Interval (the clients sent
    DISCONNECT 0x04, Disconnect with Will Message) when the broker stops
    or is killed, sessions of 300 s:
    - B (2 s), over while the broker was down: published at once at the
      restart, not 2 s after it;
    - A (4 s), not over at the restart: published 4 s after it started
      waiting, not 4 s after the restart;
    - C (4 s), whose session resumes after the restart: never."""
    b = mqtt_broker
    w = watcher(b, "ww-watch", [("ww/t", 1)])
    delays = {"a": 4, "b": 2, "c": 4}      # Will Delay Intervals are whole seconds
    clients = {name: v5_client(b, "ww-" + name, persistent=True,
                               will=will5("ww/t", name.encode(), WillDelayInterval=d))[0]
               for name, d in delays.items()}
    waiting = time.monotonic()      # each will starts waiting after this
    for c in clients.values():
        c.send(disconnect5(0x04))
        c.expect_closed()
    round_trip(b)
    stop_or_kill(b, how)
    until(waiting + delays["b"] + 0.2)      # B's delay runs out while the broker is down
    began = time.monotonic()
    b.start(keep_ports=True)

    _, ack = v5_client(b, "ww-c", persistent=True)
    assert ack.session_present
    rejoin(w)
    w.wait_payload(b"b", timeout=10)
    w.wait_payload(b"a", timeout=10)
    at_b = arrival(w, b"b").at - began
    assert at_b < delays["b"], "B came %.2f s after the restart began: its delay, over " \
        "while the broker was down, ran again" % at_b
    at_a = arrival(w, b"a").at
    assert at_a - waiting >= delays["a"] - EARLY, "A came %.2f s after it started " \
        "waiting, before its delay (%d s)" % (at_a - waiting, delays["a"])
    assert at_a - began < delays["a"], "A came %.2f s after the restart began: its delay " \
        "ran again from the restart instead of from when it started waiting" % (at_a - began)
    barrier(b, "ww/t", b"barrier")
    w.wait_payload(b"barrier")
    assert collections.Counter(w.payloads()) == {b"a": 1, b"b": 1, b"barrier": 1}, \
        w.payloads()


# ---------------------------------------------------------------- ACL, once, SIGTERM

ACL_BEFORE = """\
topic read #

user alice
topic readwrite alice/#

user bob
topic readwrite #
"""
ACL_AFTER = ACL_BEFORE.replace("topic readwrite alice/#", "topic read alice/#")


def test_acl_of_the_restart_applies_to_the_wills_it_publishes(mqtt_factory, tmp_path):
    """alice and bob are connected with wills to alice/will at the
    SIGKILL; the ACL changes before the restart (alice may only read
    alice/#): bob's will is published, alice's is not."""
    b = auth_broker(mqtt_factory, tmp_path, acl=ACL_BEFORE)
    w = watcher(b, "wa-watch", [("alice/will", 1)])
    connected_client(b.mqtt_port, "wa-alice", username="alice", password=USERS["alice"],
                     will=("alice/will", b"alice gone", 1, False))
    connected_client(b.mqtt_port, "wa-bob", username="bob", password=USERS["bob"],
                     will=("alice/will", b"bob gone", 1, False))

    left = b.kill9()
    (tmp_path / "acl").write_text(ACL_AFTER)
    b.wait_topicds_gone(left)
    b.start(keep_ports=True)

    rejoin(w)
    w.wait_payload(b"bob gone")
    bob = connected_client(b.mqtt_port, "wa-bob2", username="bob", password=USERS["bob"])
    bob.publish("alice/will", b"barrier", 1)
    w.wait_payload(b"barrier")
    assert w.payloads() == [b"bob gone", b"barrier"], \
        "alice's will went to a topic she may no longer write: %s" % w.payloads()


def test_a_will_is_published_once_even_with_a_sigkill_after_it(mqtt_broker):
    """A will published at a restart after a SIGKILL is not published
    again by the next master, though that one also starts after a SIGKILL
    (once the will had arrived and a later publish to its topic was
    acknowledged), nor by the one after a SIGTERM."""
    b = mqtt_broker
    w = watcher(b, "wo-watch", [("wo/t", 2)])
    connected_client(b.mqtt_port, "wo-will", will=("wo/t", b"once", 2, False))
    kill_and_start(b)
    rejoin(w)
    w.wait_payload(b"once")
    late = watcher(b, "wo-late", [("wo/t", 2)])
    barrier(b, "wo/t", b"acked")                # after the will in the topic's log
    late.wait_payload(b"acked")

    kill_and_start(b)
    rejoin(late)
    barrier(b, "wo/t", b"after sigkill")
    late.wait_payload(b"after sigkill")
    b.restart()
    rejoin(late)
    barrier(b, "wo/t", b"after sigterm")
    late.wait_payload(b"after sigterm")
    assert b"once" not in late.payloads(), "the will was published again: %s" % late.payloads()


def test_sigterm_keeps_wills_of_connected_clients_for_the_start(mqtt_broker):
    """A normal stop does not publish the wills (no delay) of the clients
    it disconnects: sent then, one could reach its topicd after that was
    told to stop.  They stay in the store and the next start publishes
    them, once, also to a topic no one used before."""
    b = mqtt_broker
    w = watcher(b, "wt-watch", [("wt/#", 2)])
    barrier(b, "wt/t", b"before")               # the topic is in use
    w.wait_payload(b"before")
    connected_client(b.mqtt_port, "wt-311", will=("wt/t", b"311 gone", 2, False))
    v5_client(b, "wt-5", will=will5("wt/t", b"5 gone", 2))
    connected_client(b.mqtt_port, "wt-new", will=("wt/new", b"new gone", 1, False))
    b.restart()
    rejoin(w)
    for p in (b"311 gone", b"5 gone", b"new gone"):
        w.wait_payload(p)
    barrier(b, "wt/t", b"barrier")
    barrier(b, "wt/new", b"barrier new")
    w.wait_payload(b"barrier")
    w.wait_payload(b"barrier new")
    assert collections.Counter(w.payloads()) == {
        b"before": 1, b"311 gone": 1, b"5 gone": 1, b"barrier": 1, b"new gone": 1,
        b"barrier new": 1}, w.payloads()
    got = w.payloads()
    assert got.index(b"barrier") > max(got.index(b"311 gone"), got.index(b"5 gone")), got
    assert got.index(b"barrier new") > got.index(b"new gone"), got


# ---------------------------------------------------------------- a SIGKILL soon after

@pytest.mark.parametrize("published_by", ["close", "start"])
def test_a_stored_will_is_not_published_again_after_a_sigkill(mqtt_factory, published_by):
    """A clean-session client with a QoS 2 will goes away without
    DISCONNECT: by an EOF (close), or by a first SIGKILL of the master,
    whose next start publishes it (start).  Once its topicd has stored the
    will, the master is SIGKILLed: the next start does not publish it
    again.  The subscriber is offline meanwhile, so that no delivery makes
    the master write its store for other reasons."""
    b = mqtt_factory({"log_type": "debug"})
    w = watcher(b, "rv-watch", [("rv/t", 2)])
    barrier(b, "rv/t", b"before")
    w.wait_payload(b"before")
    w.disconnect()
    c = connected_client(b.mqtt_port, "rv-will", will=("rv/t", b"gone", 2, False))
    if published_by == "close":
        c.close()
    else:
        kill_and_start(b)
    wait_stored(b, "rv/t")
    kill_and_start(b)
    rejoin(w)
    barrier(b, "rv/t", b"after")
    w.wait_payload(b"after")
    assert w.payloads() == [b"before", b"gone", b"after"], w.payloads()


def test_a_delayed_will_whose_delay_ends_during_a_stop_waits_for_the_start(mqtt_factory):
    """A will waits for its delay (2 s, DISCONNECT 0x04, a session of
    300 s) when SIGTERM comes; a stopped topicd keeps the stop going
    (shutdown_timeout 4 s) past the end of the delay: the will, which its
    topicd might no longer take, stays in the store and the next start
    publishes it."""
    b = mqtt_factory({"shutdown_timeout": "4", "log_type": "information"})
    w = watcher(b, "rs-watch", [("rs/w/#", 1)])
    barrier(b, "rs/busy", b"x")              # a topicd for the stop to wait for
    tpid = b.wait_topicd("rs/busy")
    c, _ = v5_client(b, "rs-will", persistent=True,
                     will=will5("rs/w/t", b"late", 1, WillDelayInterval=2))
    w.disconnect()
    c.send(disconnect5(0x04))
    c.expect_closed()
    kill_pid(tpid, signal.SIGSTOP)
    b.stop(timeout=30)
    assert re.search(r"will to rs/w/t published at the next start", b.log_text()), \
        "the delay did not end during the stop"
    b.start(keep_ports=True)
    rejoin(w)
    w.wait_payload(b"late")
    barrier(b, "rs/w/t", b"barrier")
    w.wait_payload(b"barrier")
    assert w.payloads() == [b"late", b"barrier"], w.payloads()


@pytest.mark.parametrize("how", ["eof", "takeover", "takeover_nowill", "clean_start_v5"])
def test_a_will_sent_but_not_stored_survives_a_sigkill(mqtt_factory, how):
    """Session rk-dev (persistent) has a QoS 1 will to rk/old, whose
    topicd is SIGSTOPped: the will is published (sent) but not stored.
    Then:
    - eof: nothing more (control);
    - takeover: a new connection with the same client id and a will of
      its own (to rk/new) takes the session over;
    - takeover_nowill: the same without a will (control);
    - clean_start_v5: the old will waits (delay 60 s, DISCONNECT 0x04);
      a Clean Start reconnection ends the session, which publishes it,
      and brings a will of its own.
    The master and the stopped topicd are SIGKILLed: the next start
    publishes the old will (at least once): each will has a record of its
    own, which a newer will of the session does not replace."""
    b = mqtt_factory({"log_type": "debug"})
    w = watcher(b, "rk-watch", [("rk/#", 1)])
    barrier(b, "rk/old", b"before")
    w.wait_payload(b"before")
    tpid = b.wait_topicd("rk/old")
    if how == "clean_start_v5":
        c, _ = v5_client(b, "rk-dev", persistent=True,
                         will=will5("rk/old", b"old gone", 1, WillDelayInterval=60))
        c.send(disconnect5(0x04))
        c.expect_closed()
        round_trip(b)
        kill_pid(tpid, signal.SIGSTOP)
        n = V5Client(b.mqtt_port, name="rk-dev")
        n.connect5_ok("rk-dev", clean=True, cprops=EXPIRY, will=will5("rk/new", b"new gone", 1))
    else:
        kill_pid(tpid, signal.SIGSTOP)
        old = connected_client(b.mqtt_port, "rk-dev", clean=False,
                               will=("rk/old", b"old gone", 1, False))
        if how == "eof":
            old.close()
        elif how == "takeover":
            connected_client(b.mqtt_port, "rk-dev", clean=False,
                             will=("rk/new", b"new gone", 1, False))
        else:
            connected_client(b.mqtt_port, "rk-dev", clean=False)
    round_trip(b)
    assert "will published to rk/old" in b.log_text()
    left = b.kill9()
    kill_pid(tpid, signal.SIGKILL)
    b.wait_topicds_gone(left)
    b.start(keep_ports=True)
    rejoin(w)
    barrier(b, "rk/old", b"barrier")
    w.wait_payload(b"barrier")
    assert b"old gone" in w.payloads(), \
        "the will sent before the kill, never stored, was lost: %s" % w.payloads()


@pytest.mark.parametrize("back_ms", [0, 3600000])
def test_a_sent_will_is_published_at_a_start_whatever_the_clock_says(mqtt_factory, tmp_path,
                                                                     monkeypatch, back_ms):
    """A delayed will (1 s) is sent to its topicd (SIGSTOPped: not
    stored), then its client resumes the session with a new delayed will
    (60 s).  The master is SIGKILLed and starts with its wall clock where
    it was, or an hour back (a step of the system clock): the sent will is
    published at once, not put to wait again, so that the newer will of
    the session cannot cancel it."""
    b = mqtt_factory({"log_type": "debug"}, start=False)
    preload_shim(monkeypatch, tmp_path, b.binary, Path(__file__).with_name("clock_shift.c"))
    b.start()
    w = watcher(b, "rc-watch", [("rc/#", 1)])
    barrier(b, "rc/old", b"before")
    w.wait_payload(b"before")
    tpid = b.wait_topicd("rc/old")
    c, _ = v5_client(b, "rc-dev", persistent=True,
                     will=will5("rc/old", b"old gone", 1, WillDelayInterval=1))
    kill_pid(tpid, signal.SIGSTOP)
    c.send(disconnect5(0x04))
    c.expect_closed()
    wait_for(lambda: "will published to rc/old" in b.log_text(), 10, "the delayed will sent")
    n = V5Client(b.mqtt_port, name="rc-dev")
    assert n.connect5_ok("rc-dev", clean=False, cprops=EXPIRY,
                         will=will5("rc/new", b"new gone", 1,
                                    WillDelayInterval=60)).session_present
    round_trip(b)
    left = b.kill9()
    kill_pid(tpid, signal.SIGKILL)
    b.wait_topicds_gone(left)
    monkeypatch.setenv("CLOCK_SHIFT_MS", str(-back_ms))
    b.start(keep_ports=True)
    rejoin(w)
    w.wait_payload(b"old gone")
    barrier(b, "rc/old", b"barrier")
    w.wait_payload(b"barrier")
    assert w.payloads() == [b"before", b"old gone", b"barrier"], w.payloads()


# ---------------------------------------------------------------- QoS 2: exactly once

def held(b, path_part, since=0):
    """Has a sync of a file whose path holds path_part been held
    (slow_sync.c) since offset since of the log?"""
    return re.search(r"^slow-sync: \S+ of \S*%s\S* held$" % re.escape(path_part),
                     b.log_text()[since:], re.M) is not None


def qos2_will_setup(mqtt_factory, prefix):
    """A broker (debug log), a watcher of PREFIX/t at QoS 2 that got
    "before" there, and a client connected with a QoS 2 will to it."""
    b = mqtt_factory({"log_type": "debug"})
    topic = prefix + "/t"
    w = watcher(b, prefix + "-watch", [(topic, 2)])
    barrier(b, topic, b"before")
    w.wait_payload(b"before")
    return b, w, connected_client(b.mqtt_port, prefix + "-will", will=(topic, b"gone", 2, False))


def assert_once(b, w, topic):
    """The will arrives, and once: nothing but it between "before" and a
    barrier published after it."""
    w.wait_payload(b"gone")
    barrier(b, topic, b"after")
    w.wait_payload(b"after")
    assert w.payloads() == [b"before", b"gone", b"after"], w.payloads()


@pytest.mark.skipif(not dynamic_topicd(), reason="a static topicd: its syncs cannot be held")
@pytest.mark.parametrize("kill", ["topicd", "master"])
def test_a_qos2_will_stored_but_not_answered_is_published_once(mqtt_factory, tmp_path,
                                                               monkeypatch, kill):
    """A QoS 2 will reaches its topicd, which writes it and waits for its
    sync, held (slow_sync.c): it has not answered when it is SIGKILLed
    (topicd: the master replays the will into the topicd it starts
    again), or when the master and it are (master: the next start
    publishes the will again).  Either way the topic has the will
    already, staged under the will's own name: it is staged once and
    released once."""
    part = "/topics/wq%2Ft."
    sync = SlowSync(monkeypatch, tmp_path, match=part)
    b, w, c = qos2_will_setup(mqtt_factory, "wq")
    mark = len(b.log_text())
    sync.on()
    try:
        c.close()
        wait_for(lambda: held(b, part, mark), 10, "the will written, its sync held")
        assert "will published to wq/t" in b.log_text()[mark:]
        if kill == "topicd":
            b.kill_topicd("wq/t")
        else:
            tpid = b.topicd_pid("wq/t")
            left = b.kill9()
            kill_pid(tpid)
    finally:
        sync.off()
    if kill == "master":
        b.wait_topicds_gone(left)
        b.start(keep_ports=True)
        rejoin(w)
    assert_once(b, w, "wq/t")


def test_a_qos2_will_staged_when_the_master_dies_is_released_at_the_start(mqtt_factory,
                                                                          tmp_path,
                                                                          monkeypatch):
    """A QoS 2 will is staged in its topic, and its record says so; the
    master does not release it before that is durable, and the sync of
    its store is held (slow_sync.c).  The master is SIGKILLed then: its
    next start releases the staged will (once), and does not stage it
    again."""
    sync = SlowSync(monkeypatch, tmp_path)
    b, w, c = qos2_will_setup(mqtt_factory, "ws")
    mark = len(b.log_text())
    sync.on()
    try:
        c.close()
        wait_for(lambda: re.search(r"topic ws/t: the will of session \S+ is staged",
                                   b.log_text()[mark:]), 10, "the will staged")
        wait_for(lambda: held(b, "/sessions", mark), 10, "the record's sync held")
        left = b.kill9()
    finally:
        sync.off()
    assert b"gone" not in w.payloads(), "released before its record was durable"
    b.wait_topicds_gone(left)
    b.start(keep_ports=True)
    rejoin(w)
    assert_once(b, w, "ws/t")
    assert "will to ws/t, staged before, released" in since_last_start(b)
