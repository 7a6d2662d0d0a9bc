"""Wills across SIGKILLs of the master, many at a time: every will of a
connection that ended without DISCONNECT arrives (at least once at QoS 1,
exactly once at QoS 2), whether its connection ended before the kill,
during it, or was still open then; no will of a client that said
DISCONNECT ever arrives.  At QoS 2 a topicd is also SIGKILLed among the
closes, so that the master replays the wills it had sent it.

The random choices come from FAULT_SEED (printed; set it to replay)."""

import collections
import os
import random
import threading
import time

import pytest

from broker_harness import HarnessError, kill_pid, wait_for
from mqtt_helpers import Receiver, connected_client

ROUNDS = 3
CLIENTS = 60            # per round: a third of each kind
TOPICS = 8


@pytest.fixture
def rng():
    seed = int(os.environ.get("FAULT_SEED", time.time_ns() % 2**32))
    print("FAULT_SEED=%d" % seed)
    return random.Random(seed)


def watcher(b, qos):
    r = Receiver(lambda: b.mqtt_port, "wk-watch", clean=False)
    r.connect()
    assert r.subscribe([("wk/#", qos)]) == [qos]
    return r.start()


def kill_a_topicd(b, rng):
    """SIGKILLs the topicd of a random wk/ topic, if one runs."""
    pids = [pid for pid, t in b.topicds().items() if t.startswith("wk/")]
    if pids:
        kill_pid(rng.choice(pids))


@pytest.mark.parametrize("qos", [1, 2])
def test_wills_across_master_sigkills(mqtt_factory, rng, qos):
    """Each round: CLIENTS clients connect with wills of the QoS to TOPICS
    topics; a third say DISCONNECT (and see the close), a third close
    their sockets one by one while the master is SIGKILLed at a random
    moment among those closes (at QoS 2, a topicd too, at another), a
    third are still connected at the kill.  The watcher, a persistent
    session, is online throughout (its deliveries make the master flush
    its store, the case without them is in test_will_restart.py)."""
    b = mqtt_factory({"restart_backoff_min": 0.05, "restart_backoff_max": 0.2})
    w = watcher(b, qos)
    owed, polite = set(), set()
    for rnd in range(ROUNDS):
        kinds = ["polite", "abrupt", "open"] * (CLIENTS // 3)
        rng.shuffle(kinds)
        clients = {}
        for i, kind in enumerate(kinds):
            payload = b"r%d-c%d-%s" % (rnd, i, kind.encode())
            topic = "wk/%d" % (i % TOPICS)
            clients[payload] = (kind, connected_client(
                b.mqtt_port, "wk-%d-%d" % (rnd, i), will=(topic, payload, qos, False)))
        for payload, (kind, c) in clients.items():
            if kind == "polite":
                c.disconnect()
                c.expect_closed()
                polite.add(payload)
            else:
                owed.add(payload)
        abrupt = [c for kind, c in clients.values() if kind == "abrupt"]
        kill_after = rng.randint(0, len(abrupt))
        topicd_at = rng.randint(0, len(abrupt)) if qos == 2 else -1

        def close_abrupt():
            for i, c in enumerate(abrupt):
                if i == topicd_at:
                    kill_a_topicd(b, rng)
                c.close()
                time.sleep(rng.uniform(0, 0.004))
        closer = threading.Thread(target=close_abrupt, daemon=True)
        closer.start()
        time.sleep(0.002 * kill_after)      # the kill falls among the closes
        left = b.kill9()
        closer.join(10)
        assert not closer.is_alive()
        for kind, c in clients.values():
            if kind == "open":
                c.close()
        wait_for(lambda: w.disconnected, 10, "the watcher to see its connection close")
        b.wait_topicds_gone(left)
        b.start(keep_ports=True)
        assert w.reconnect().session_present, "the watcher's session did not survive"
        try:
            wait_for(lambda: owed <= set(w.payloads()), 30, "every will owed so far")
        except HarnessError:
            pytest.fail("round %d: wills lost: %s" % (rnd, sorted(owed - set(w.payloads()))[:5]))
    # A barrier on each topic: what came before it is all that will come.
    c = connected_client(b.mqtt_port, "wk-barrier")
    for t in range(TOPICS):
        c.publish("wk/%d" % t, b"barrier", 1)
    c.disconnect()
    wait_for(lambda: w.payloads().count(b"barrier") >= TOPICS, 10, "the barriers")
    got = collections.Counter(p for p in w.payloads() if p != b"barrier")
    assert not (set(got) & polite), "wills of clients that said DISCONNECT: %s" % \
        sorted(set(got) & polite)[:5]
    assert set(got) == owed, "unexpected payloads: %s" % sorted(set(got) - owed)[:5]
    twice = sorted(p for p, n in got.items() if n > 1)
    print("wills owed %d, arrived %d times, %d more than once" % (
        len(owed), sum(got.values()), len(twice)))
    if qos == 2:
        assert not twice, "QoS 2 wills that arrived twice: %s" % twice[:5]
