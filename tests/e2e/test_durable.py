"""Durable queues: cursors per (topic, username), remembered subscriptions,
and everything surviving a restart of the broker."""

import pytest

from broker_harness import LOGGED_IN, Qos2Consumer, login

QUIET = 0.8


def restart(broker, how):
    """Ends the master (SIGTERM: clean stop with status 0; SIGKILL: its
    topicds must exit by themselves) and starts it on the same data dir."""
    if how == "sigterm":
        code = broker.stop()
        assert code == 0, "SIGTERM: master exit status %s, expected 0" % code
    else:
        left = broker.kill9()
        broker.wait_topicds_gone(left)
    broker.start(keep_ports=True)


def clean(c):
    c.settle()
    assert not c.errors, c.errors


def test_first_sub_receives_only_later_messages(broker):
    pub = broker.publisher()
    pub.publish("later", "before-1")
    pub.publish("later", "before-2")
    c = broker.consumer("alice")
    c.subscribe("later")
    pub.publish("later", "after-1")
    pub.publish("later", "after-2")
    # Order is kept, so an old message would have come first.
    assert c.wait_messages(2, "later") == ["after-1", "after-2"]
    c.pump_for(QUIET)
    assert c.messages("later") == ["after-1", "after-2"]
    clean(c)


def test_new_username_on_old_topic_starts_at_the_end(broker):
    pub = broker.publisher()
    a = broker.consumer("amy")
    a.subscribe("shared")
    pub.publish("shared", "one")
    a.wait_message("one")
    b = broker.consumer("ben")
    b.subscribe("shared")
    pub.publish("shared", "two")
    assert b.wait_messages(1, "shared") == ["two"]
    assert a.wait_messages(2, "shared") == ["one", "two"]
    clean(a)
    clean(b)


def test_reconnect_with_log_resumes_without_sub(broker):
    pub = broker.publisher()
    c = broker.consumer("bob")
    c.subscribe("resume")
    pub.publish("resume", "m1")
    c.wait_message("m1")
    c.settle()
    c.close()
    for m in ("m2", "m3", "m4"):
        pub.publish("resume", m)
    c.connect()                         # `log bob` only, no SUB
    assert c.wait_messages(4, "resume") == ["m1", "m2", "m3", "m4"]
    pub.publish("resume", "m5")
    assert c.wait_messages(5, "resume")[-1] == "m5"
    clean(c)
    assert not c.duplicates, c.duplicates


def test_repeated_sub_after_reconnect_is_harmless(broker):
    pub = broker.publisher()
    c = broker.consumer("cleo")
    c.subscribe("again")
    pub.publish("again", "x1")
    c.wait_message("x1")
    c.settle()
    c.close()
    pub.publish("again", "x2")
    c.connect()
    c.subscribe("again")                # as the original's clients do
    pub.publish("again", "x3")
    assert c.wait_messages(3, "again") == ["x1", "x2", "x3"]
    c.pump_for(QUIET)
    assert c.messages("again") == ["x1", "x2", "x3"]
    clean(c)


def test_unsub_keeps_the_cursor(broker):
    pub = broker.publisher()
    c = broker.consumer("carl")
    c.subscribe("cur")
    pub.publish("cur", "c1")
    c.wait_message("c1")
    c.settle()
    c.unsubscribe("cur")
    pub.publish("cur", "c2")
    pub.publish("cur", "c3")
    c.pump_for(QUIET)
    assert c.messages("cur") == ["c1"], "delivered after UNSUB: %s" % c.messages("cur")
    c.subscribe("cur")
    assert c.wait_messages(3, "cur") == ["c1", "c2", "c3"]
    clean(c)


def test_unsubscribed_topic_is_not_resumed_at_login(broker):
    pub = broker.publisher()
    c = broker.consumer("dina")
    c.subscribe("kept")
    c.subscribe("dropped")
    c.unsubscribe("dropped")
    c.close()
    pub.publish("dropped", "d1")
    pub.publish("kept", "k1")
    c.connect()
    c.wait_message("k1", "kept")
    c.pump_for(QUIET)
    assert c.messages("dropped") == []
    c.subscribe("dropped")              # the cursor is still there
    assert c.wait_messages(1, "dropped") == ["d1"]
    clean(c)


def test_sub_answered_ok_counts_even_if_the_consumer_leaves_at_once(broker):
    """SUB's OK starts the durable queue: a message published after it is
    kept for the username, even when it disconnected right after the OK
    (here before the new topic's topicd had started)."""
    c = broker.consumer("gus")
    c.subscribe("brand-new")
    c.close()
    broker.publisher().publish("brand-new", "f1")
    c.connect()
    assert c.wait_messages(1, "brand-new") == ["f1"]
    clean(c)


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_messages_cursors_and_subscriptions_survive_restart(broker, how):
    pub = broker.publisher()
    alice = broker.consumer("alice")
    alice.subscribe("d1")
    alice.subscribe("d2")
    bob = broker.consumer("bob")
    bob.subscribe("d1")
    pub.publish("d1", "m1")
    pub.publish("d2", "n1")
    alice.wait_messages(1, "d1")
    alice.wait_messages(1, "d2")
    bob.wait_message("m1")
    alice.settle()
    bob.settle()
    alice.close()
    for m in ("m2", "m3"):
        pub.publish("d1", m)
    pub.publish("d2", "n2")
    bob.wait_message("m3")
    bob.settle()
    bob.close()
    pub.publish("d1", "m4")

    restart(broker, how)

    pub = broker.publisher()
    pub.publish("d1", "m5")
    alice.connect()                     # log only: subscriptions are remembered
    bob.connect()
    assert alice.wait_messages(5, "d1") == ["m1", "m2", "m3", "m4", "m5"]
    assert alice.wait_messages(2, "d2") == ["n1", "n2"]
    assert bob.wait_messages(5, "d1") == ["m1", "m2", "m3", "m4", "m5"]
    # A new subscriber after the restart starts at the end.
    carol = broker.consumer("carol")
    carol.subscribe("d1")
    pub.publish("d1", "m6")
    assert carol.wait_messages(1, "d1") == ["m6"]
    alice.wait_message("m6", "d1")
    bob.wait_message("m6", "d1")
    alice.pump_for(QUIET / 2)
    assert alice.messages("d1") == ["m1", "m2", "m3", "m4", "m5", "m6"]
    for c in (alice, bob, carol):
        clean(c)


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_open_exchange_survives_restart(broker, how):
    """A consumer PUBREC'd a message and got the PUBREL but sent no PUBCOMP
    before the restart.  Afterwards the broker may repeat the PUBREL, but
    must not deliver that message as a new PUB; the next one follows."""
    pub = broker.publisher()
    raw = broker.client()
    assert login(raw, "erik") == LOGGED_IN
    raw.send_json({"type": "SUB", "topic": "open"})
    raw.expect("OK")
    pub.publish("open", "o1")
    pub.publish("open", "o2")
    p = raw.read_json()
    assert p["type"] == "PUB" and p["msg"] == "o1", p
    raw.send_json({"type": "PUBREC", "msgId": p["msgId"], "topic": "open"})
    raw.expect("OK")
    assert raw.read_json() == {"type": "PUBREL", "msgId": p["msgId"], "topic": "open"}
    raw.close()

    restart(broker, how)

    c = Qos2Consumer(broker, "erik")
    c.completed[p["msgId"]] = ["open"]    # what a QoS 2 receiver remembers
    c.last_id["open"] = p["msgId"]
    c.connect()
    assert c.wait_messages(1, "open") == ["o2"], \
        "o1 was PUBREC'd before the restart; got %s" % c.messages("open")
    clean(c)


def test_unacknowledged_delivery_is_resent_after_restart(broker):
    """A PUB the consumer never answered is sent again after a restart."""
    pub = broker.publisher()
    raw = broker.client()
    assert login(raw, "fay") == LOGGED_IN
    raw.send_json({"type": "SUB", "topic": "unacked"})
    raw.expect("OK")
    pub.publish("unacked", "u1")
    p = raw.read_json()
    assert p["msg"] == "u1", p
    raw.close()
    restart(broker, "sigterm")
    c = broker.consumer("fay")
    assert c.wait_messages(1, "unacked") == ["u1"]
    clean(c)


def test_a_message_staged_in_a_cold_topic_is_released_after_a_restart(broker_factory):
    """A PUB that got its PUBREC and no PUBREL is released when its
    connection ends.  The broker stopping ends it while the topic is cold
    (its topicd exited idle), when no topicd may start any more: after
    the restart, the topic starts by itself and the subscriber gets the
    message, with nothing more published there."""
    from broker_harness import wait_for
    b = broker_factory({"topicd_idle_timeout": 0.5})
    c = b.consumer("patient")
    c.subscribe("staged/t")
    pub = b.publisher()
    pub.pub("staged/t", "kept")
    wait_for(lambda: b.topicd_pid("staged/t") is None, 10, "the topic to go cold")
    assert b.stop() == 0
    b.start(keep_ports=True)
    c.reconnect()
    c.start()
    c.wait_until(lambda: c.messages("staged/t") == ["kept"], 10, "the staged message")
    c.stop()
    assert not c.errors, c.errors
