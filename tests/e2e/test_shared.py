"""Shared subscriptions ($share/GROUP/FILTER) as durable competing
consumers: each message to one member of the group, over JSON-lines and
MQTT 3.1.1 members alike; a member's unanswered messages to the others
when it goes; a group without members online that keeps its messages."""

import json
import os
import re
import time

from broker_harness import (DLQ, LOGGED_IN, HarnessError, check_dead_letter, login,
                            wait_dead_letter, wait_for)
from mqtt_helpers import (PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, RawClient, Receiver,
                          ack_packet, connected_client, publish_packet)

SETTLE = 10.0


def members_got(consumers, topic):
    """Every member's messages of topic, in one list (duplicates kept)."""
    got = []
    for c in consumers:
        got.extend(c.messages(topic) if hasattr(c, "messages") else
                   [a.payload.decode() for a in c.arrivals if a.topic == topic])
    return got


def wait_all(consumers, topic, expected, what):
    wait_for(lambda: sorted(members_got(consumers, topic)) == sorted(expected) or
             len(members_got(consumers, topic)) > len(expected), SETTLE, what)
    got = members_got(consumers, topic)
    assert sorted(got) == sorted(expected), "each once: got %s" % sorted(got)


def test_json_group_gives_each_message_to_one_consumer(broker):
    a = broker.consumer("alice")
    b = broker.consumer("bob")
    a.subscribe("$share/workers/jobs")
    b.subscribe("$share/workers/jobs")
    pub = broker.publisher()
    sent = ["job-%d" % i for i in range(20)]
    for m in sent:
        pub.publish("jobs", m)
    for c in (a, b):
        c.start()
    wait_all([a, b], "jobs", sent, "the 20 jobs, each at one consumer")
    assert a.messages("jobs") and b.messages("jobs"), \
        "both members get some: %s / %s" % (a.messages("jobs"), b.messages("jobs"))
    for c in (a, b):
        c.stop()
        assert not c.errors, c.errors


def test_a_json_consumer_that_unsubscribed_by_itself_gets_its_groups_messages(broker):
    """A consumer's own cursor stays after UNSUB (a later SUB resumes
    there): it is no longer subscribed by itself, so a group it joins
    gives it messages."""
    c = broker.consumer("mover")
    c.subscribe("moved")
    c.unsubscribe("moved")
    c.subscribe("$share/g/moved")
    pub = broker.publisher()
    sent = ["m%d" % i for i in range(5)]
    for m in sent:
        pub.publish("moved", m)
    c.start()
    wait_all([c], "moved", sent, "the 5 messages through the group")
    c.stop()
    assert not c.errors, c.errors


def test_json_group_keeps_messages_while_no_member_is_online(broker):
    a = broker.consumer("amy")
    a.subscribe("$share/g/kept")
    a.close()
    pub = broker.publisher()
    for m in ("k1", "k2", "k3"):
        pub.publish("kept", m)
    # Another member of the group (a username that never subscribed before)
    # gets what the group kept.
    c = broker.consumer("cid")
    c.subscribe("$share/g/kept")
    assert c.wait_messages(3, "kept") == ["k1", "k2", "k3"]
    assert not c.errors, c.errors


def test_unanswered_message_goes_to_the_other_member(broker):
    slow = broker.consumer("slow", auto_ack=False)
    slow.subscribe("$share/g/handover")
    pub = broker.publisher()
    pub.publish("handover", "only-one")
    slow.wait_message("only-one")
    fast = broker.consumer("fast")
    fast.subscribe("$share/g/handover")
    slow.close()                        # no PUBREC: it goes to fast
    assert fast.wait_messages(1, "handover") == ["only-one"]
    assert not fast.errors, fast.errors


def test_plain_and_group_subscribers_side_by_side(broker):
    plain = broker.consumer("plain")
    plain.subscribe("side")
    m1 = broker.consumer("m1")
    m2 = broker.consumer("m2")
    m1.subscribe("$share/g/side")
    m2.subscribe("$share/g/side")
    pub = broker.publisher()
    sent = ["s%d" % i for i in range(6)]
    for m in sent:
        pub.publish("side", m)
    for c in (plain, m1, m2):
        c.start()
    wait_all([m1, m2], "side", sent, "the messages, each once in the group")
    plain.wait_until(lambda: plain.messages("side") == sent, SETTLE, "every message, plain")
    for c in (plain, m1, m2):
        c.stop()
        assert not c.errors, c.errors


MALFORMED_SHARES = ["$share//t", "$share/g", "$share/g+/t", "$share/#/t"]


def test_malformed_share_refused(broker):
    """A wildcard in the group, as a missing group or filter: the share is
    malformed (dead letter bad_share), whatever its group holds."""
    dlq = broker.consumer("bad-dlq")
    dlq.subscribe(DLQ)
    c = broker.consumer("bad")
    for f in MALFORMED_SHARES:
        assert c.command({"type": "SUB", "topic": f}) == "UNKNOWN COMMAND", f
    for f in MALFORMED_SHARES:
        rec = wait_dead_letter(dlq, "bad_share", match=lambda r, f=f: r.get("topic") == f)
        check_dead_letter(rec, "bad_share", ports=[broker.consumer_port], topic=f)
    assert not c.errors, c.errors


def mqtt_member(b, client_id, filt, qos=1, clean=False):
    r = Receiver(lambda: b.mqtt_port, client_id, clean=clean)
    r.connect()
    assert r.subscribe([(filt, qos)]) == [qos]
    r.start()
    return r


def test_mqtt311_members_share_messages(mqtt_broker):
    b = mqtt_broker
    r1 = mqtt_member(b, "w1", "$share/grp/mq/t")
    r2 = mqtt_member(b, "w2", "$share/grp/mq/t")
    pub = RawClient(b.mqtt_port, name="share-pub")
    pub.connect_ok("share-pub")
    sent = ["m%d" % i for i in range(30)]
    for m in sent:
        pub.publish("mq/t", m.encode(), qos=1)
    wait_all([r1, r2], "mq/t", sent, "the 30 messages, each at one member")
    assert r1.arrivals and r2.arrivals


def test_mqtt311_and_json_members_in_one_group(mqtt_broker):
    b = mqtt_broker
    r = mqtt_member(b, "mix-m", "$share/mix/both", qos=2)
    j = b.consumer("mix-j")
    j.subscribe("$share/mix/both")
    j.start()
    pub = b.publisher()
    sent = ["b%d" % i for i in range(12)]
    for m in sent:
        pub.publish("both", m)
    wait_all([r, j], "both", sent, "the messages, each at one member of either protocol")
    j.stop()
    assert not j.errors, j.errors


def test_mqtt311_member_gone_and_offline_group(mqtt_broker):
    b = mqtt_broker
    r1 = mqtt_member(b, "keep-1", "$share/k/off/t")
    pub = RawClient(b.mqtt_port, name="off-pub")
    pub.connect_ok("off-pub")
    pub.publish("off/t", b"first", qos=1)
    r1.wait_until(lambda: len(r1.arrivals) == 1, SETTLE, "the first message")
    r1.stop()
    r1.client.close()
    for m in (b"x1", b"x2"):
        pub.publish("off/t", m, qos=1)
    # A second persistent member joins while the first is offline.
    r2 = mqtt_member(b, "keep-2", "$share/k/off/t")
    r2.wait_until(lambda: [a.payload for a in r2.arrivals] == [b"x1", b"x2"], SETTLE,
                  "what the group kept")


def test_mqtt311_malformed_share_refused(mqtt_broker):
    c = RawClient(mqtt_broker.mqtt_port, name="bad-share")
    c.connect_ok("bad-share")
    assert c.subscribe([(f, 1) for f in MALFORMED_SHARES] + [("$share/g/ok", 1)]) == \
        [0x80] * len(MALFORMED_SHARES) + [1]
    c.ping()                            # still connected


def test_group_of_a_cold_topic_and_across_a_restart(broker_factory):
    b = broker_factory({"topicd_idle_timeout": 1})
    a = b.consumer("cold-a")
    a.subscribe("$share/g/cold")
    pub = b.publisher()
    pub.publish("cold", "c1")
    assert a.wait_messages(1, "cold") == ["c1"]
    a.settle()
    a.close()
    wait_for(lambda: "cold" not in b.topicds().values(), 15, "the topic to go cold")
    pub.publish("cold", "c2")
    pub.close()
    assert b.stop() == 0
    b.start(keep_ports=True)
    # The group (and its message) outlived the topicd and the master.
    c = b.consumer("cold-b")
    c.subscribe("$share/g/cold")
    assert c.wait_messages(1, "cold") == ["c2"]
    assert not c.errors, c.errors


def offline_member(b, client_id, flt):
    """A persistent session's member of the group, offline."""
    c = connected_client(b.mqtt_port, client_id, clean=False)
    assert c.subscribe([(flt, 1)]) == [1]
    c.disconnect()
    c.expect_closed()


def sent_m1(b, client_id, flt, topic, clean):
    """A member that is sent the group's message m1 and does not answer."""
    c = connected_client(b.mqtt_port, client_id, clean=clean)
    assert c.subscribe([(flt, 1)]) == [1]
    connected_client(b.mqtt_port, client_id + "-pub").publish(topic, b"m1", 1)
    assert c.expect(PUBLISH).payload == b"m1"
    return c


def comes_back_to_m1(b, client_id):
    c = connected_client(b.mqtt_port, client_id, clean=False)
    got = c.expect(PUBLISH, timeout=SETTLE)
    assert got.payload == b"m1", got


def test_a_message_a_member_left_reaches_another_after_a_restart(mqtt_factory):
    """Member A was sent a QoS 1 message and left without answering while
    B was offline: the message is the group's.  B gets it when it comes
    back after a restart of the broker (its topicd reads the group back
    from its store)."""
    b = mqtt_factory()
    offline_member(b, "left-b", "$share/left/left/t")
    ay = sent_m1(b, "left-a", "$share/left/left/t", "left/t", clean=False)
    ay.disconnect()                             # without its PUBACK
    ay.expect_closed()
    b.restart()
    comes_back_to_m1(b, "left-b")


def test_a_message_of_a_clean_member_reaches_another_after_the_master_died(mqtt_factory):
    """A clean session's member was sent a QoS 1 message and had not
    answered when the master was killed: that session is gone with the
    master, and the message goes to the group's other member when it comes
    back."""
    b = mqtt_factory()
    offline_member(b, "died-b", "$share/died/died/t")
    sent_m1(b, "died-x", "$share/died/died/t", "died/t", clean=True)
    b.wait_topicds_gone(b.kill9())
    b.start(keep_ports=True)
    comes_back_to_m1(b, "died-b")


def own_and_group_copies(c, topic):
    """The two PUBLISHes of one message to a session subscribed to topic
    both on its own and in a group: each a first send, each with its
    own packet id."""
    two = [c.expect(PUBLISH), c.expect(PUBLISH)]
    assert [p.payload for p in two] == [b"m1", b"m1"], two
    assert not any(p.dup for p in two), "a first send each, not a resend: %s" % two
    assert two[0].pid != two[1].pid, "one packet id per copy: %s" % two
    return two


def test_a_session_subscribed_on_its_own_and_in_a_group_gets_two_exchanges(mqtt_factory):
    """A session's own subscription and its membership of a group on the
    same topic are two subscriptions (MQTT 4.8.2): the message comes once
    for each, at QoS 1 and at QoS 2, each exchange with its own packet id
    and acknowledged on its own; once both are, nothing is owed to the
    session after a reconnect."""
    b = mqtt_factory()
    for qos, topic in ((1, "both/one"), (2, "both/two")):
        cid = "both-%d" % qos
        c = connected_client(b.mqtt_port, cid, clean=False)
        assert c.subscribe([(topic, qos), ("$share/g/" + topic, qos)]) == [qos, qos]
        connected_client(b.mqtt_port, cid + "-pub").publish(topic, b"m1", qos)
        two = own_and_group_copies(c, topic)
        for p in two:
            c.send(ack_packet(PUBACK if qos == 1 else PUBREC, p.pid))
        if qos == 2:
            for p in two:
                c.expect(PUBREL, pid=p.pid)
                c.send(ack_packet(PUBCOMP, p.pid))
        c.ping()
        c.disconnect()
        c.expect_closed()
        again = connected_client(b.mqtt_port, cid, clean=False)
        again.expect_silence(2.0)


def test_a_json_consumer_acks_its_groups_copy_after_leaving_with_one_unanswered(broker):
    """A consumer gets a message by itself, leaves the topic (UNSUB) without
    answering it, and joins a group that kept the same message: the group
    gives it the message, and its PUBREC is for the group's copy (its own
    subscription is offline and gets no answers): the PUBREL comes, and
    the message is not sent again."""
    other = broker.consumer("kept-member")
    other.subscribe("$share/g/unanswered")
    other.close()                               # the group keeps what comes
    raw = broker.client()
    assert login(raw, "leaver") == LOGGED_IN
    raw.send_json({"type": "SUB", "topic": "unanswered"})
    raw.expect("OK")
    broker.publisher().publish("unanswered", "x")
    p = raw.read_json()
    assert (p["type"], p["msg"]) == ("PUB", "x"), p
    raw.send_json({"type": "UNSUB", "topic": "unanswered"})
    raw.expect("OK")
    raw.send_json({"type": "SUB", "topic": "$share/g/unanswered"})
    raw.expect("OK")
    p = raw.read_json(timeout=SETTLE)
    assert (p["type"], p["msg"]) == ("PUB", "x"), p
    raw.send_json({"type": "PUBREC", "msgId": p["msgId"], "topic": "unanswered"})
    raw.expect("OK")
    assert raw.read_json(timeout=SETTLE) == {"type": "PUBREL", "msgId": p["msgId"],
                                             "topic": "unanswered"}
    raw.send_json({"type": "PUBCOMP", "msgId": p["msgId"], "topic": "unanswered"})
    raw.expect("OK")
    raw.expect_silence(1.5)


def test_a_qos0_member_gets_what_a_member_that_went_left(mqtt_broker):
    """A member at QoS 1 that never acks, and one at QoS 0: when the
    first goes, what it had in flight goes to the second (at QoS 0, out
    of sequence order after what that one had), and is not taken for a
    QoS 0 repeat: every message reaches the QoS 0 member."""
    b = mqtt_broker
    slow = connected_client(b.mqtt_port, "g0-slow")
    assert slow.subscribe([("$share/g0/q0m", 1)]) == [1]
    fast = connected_client(b.mqtt_port, "g0-fast")
    assert fast.subscribe([("$share/g0/q0m", 0)]) == [0]
    pub = connected_client(b.mqtt_port, "g0-pub")
    sent = [b"m%d" % i for i in range(6)]
    for m in sent:
        pub.publish("q0m", m, 1)

    def take(c, got):
        try:
            got.append(c.expect(PUBLISH, timeout=0.2).payload)
        except HarnessError:
            pass
        return got
    at_slow, at_fast = [], []
    wait_for(lambda: len(take(slow, at_slow)) + len(take(fast, at_fast)) >= 6, SETTLE,
             "the six messages split between the members")
    assert at_slow and at_fast, (at_slow, at_fast)
    slow.close()
    wait_for(lambda: sorted(take(fast, at_fast)) == sorted(sent), SETTLE,
             "every message at the QoS 0 member (it has %s)" % at_fast)


def test_a_member_that_joined_while_the_topic_was_cold_keeps_the_group(mqtt_factory):
    """A persistent session joins a group while its topic is cold (the
    group caught up, so no topicd starts for it) and goes offline; then
    the group's only other member, a clean session, leaves.  The group
    still has a member: a message published then waits for it."""
    b = mqtt_factory({"topicd_idle_timeout": 1})
    a = connected_client(b.mqtt_port, "cj-a", clean=True)
    assert a.subscribe([("$share/g/cj", 1)]) == [1]
    pub = connected_client(b.mqtt_port, "cj-pub")
    pub.publish("cj", b"m0", 1)
    p = a.expect(PUBLISH)
    a.send(ack_packet(PUBACK, p.pid))
    wait_for(lambda: "cj" not in b.topicds().values(), SETTLE, "the topic to go cold")
    c = connected_client(b.mqtt_port, "cj-c", clean=False)
    assert c.subscribe([("$share/g/cj", 1)]) == [1]
    c.disconnect()
    c.expect_closed()
    a.disconnect()
    a.expect_closed()
    pub.publish("cj", b"m1", 1)
    c = connected_client(b.mqtt_port, "cj-c", clean=False)
    assert c.expect(PUBLISH, timeout=SETTLE).payload == b"m1"


def publish_window(b, client_id, topic, payloads):
    """Publishes at QoS 1 with every message in flight at once."""
    pub = connected_client(b.mqtt_port, client_id)
    for i, m in enumerate(payloads):
        pub.send(publish_packet(topic, m, 1, i + 1))
    for _ in payloads:
        pub.expect(PUBACK)


def test_a_member_that_never_comes_back_after_a_crash_leaves_its_messages(mqtt_factory):
    """A persistent member had m1 in flight, unanswered, when the master
    was killed, and does not come back.  Its topicd reads the group back
    with every member offline: m1 goes to the member that does come back,
    and the group goes on well past the span it keeps in flight (a
    window's 100 times 4, plus 16)."""
    b = mqtt_factory()
    offline_member(b, "gone-b", "$share/gone/gone/t")
    sent_m1(b, "gone-a", "$share/gone/gone/t", "gone/t", clean=False)
    b.wait_topicds_gone(b.kill9())
    b.start(keep_ports=True)
    rb = Receiver(lambda: b.mqtt_port, "gone-b", clean=False)
    rb.connect()
    rb.start()
    later = [b"n%d" % i for i in range(500)]
    publish_window(b, "gone-pub2", "gone/t", later)
    got = rb.wait_count(len(later) + 1, timeout=30)
    assert sorted(got) == sorted([b"m1"] + later)


def first_publish(clients):
    """The first PUBLISH at any of clients, and who got it."""
    got = []

    def poll():
        for c in clients:
            try:
                got.append((c, c.expect(PUBLISH, timeout=0.1)))
                return True
            except HarnessError:
                pass
        return False
    wait_for(poll, SETTLE, "a PUBLISH at one of %s" % clients)
    return got[0]


def test_a_member_that_subscribes_again_keeps_what_it_has_in_flight(mqtt_broker):
    """A member subscribes again to its group's filter on the same
    connection, with another QoS: only its settings change.  The message
    it has in flight stays its own (it acknowledges it after), and does
    not go to the other member as well."""
    b = mqtt_broker
    members = [connected_client(b.mqtt_port, "rs-%d" % i) for i in range(2)]
    for m in members:
        assert m.subscribe([("$share/rs/rs", 1)]) == [1]
    pub = connected_client(b.mqtt_port, "rs-pub")
    pub.publish("rs", b"m1", 1)
    holder, p = first_publish(members)
    other = members[1] if holder is members[0] else members[0]
    assert holder.subscribe([("$share/rs/rs", 2)]) == [2]
    holder.send(ack_packet(PUBACK, p.pid))
    for i in range(2, 6):
        pub.publish("rs", b"m%d" % i, 1)
    _, q = first_publish([other])
    assert q.payload != b"m1", "m1 went to the other member too: %r" % q


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_json_member_that_never_completes_is_parked(broker_factory):
    """A JSON-lines member PUBRECs a message and never answers its
    PUBRELs, connected.  Once its attempts are used up it is parked, as a
    consumer of its own would be (the topicd then waits: its CPU over a
    second stays near nothing), and its next SUB gets the PUBREL again."""
    b = broker_factory({"retry_interval": 0.2, "max_delivery_attempts": 2,
                        "log_type": "information"})
    raw = b.client()
    assert login(raw, "halfway") == LOGGED_IN
    raw.send_json({"type": "SUB", "topic": "$share/hw/hw"})
    raw.expect("OK")
    b.publisher().publish("hw", "x")
    p = raw.read_json(timeout=SETTLE)
    raw.send_json({"type": "PUBREC", "msgId": p["msgId"], "topic": "hw"})
    raw.expect("OK")
    assert raw.read_json()["type"] == "PUBREL"
    wait_for(lambda: "halfway did not answer message" in b.log_text(), SETTLE,
             "the member to be parked")
    pid = b.topicd_pid("hw")
    t0 = cpu_seconds(pid)
    time.sleep(1.0)             # the window its CPU is measured over
    assert cpu_seconds(pid) - t0 < 0.3, "the topicd is busy with a parked member"
    raw.send_json({"type": "SUB", "topic": "$share/hw/hw"})
    got = sorted([raw.read_line(), raw.read_line()])
    assert got[0] == "OK" and json.loads(got[1])["type"] == "PUBREL", got


def test_a_json_member_gone_before_its_pubcomp_holds_up_no_other(broker):
    """A JSON-lines member PUBRECs a message and goes before its PUBCOMP:
    the PUBREL stays its own, and the group goes on without it, past the
    span the group keeps in flight (20 messages for windows of 1).  Back,
    it gets its PUBREL."""
    raw = broker.client()
    assert login(raw, "crashy") == LOGGED_IN
    raw.send_json({"type": "SUB", "topic": "$share/cr/cr"})
    raw.expect("OK")
    pub = broker.publisher()
    pub.publish("cr", "first")
    p = raw.read_json(timeout=SETTLE)
    raw.send_json({"type": "PUBREC", "msgId": p["msgId"], "topic": "cr"})
    raw.expect("OK")
    assert raw.read_json()["type"] == "PUBREL"
    raw.close()
    other = broker.consumer("steady")
    other.subscribe("$share/cr/cr")
    sent = ["n%d" % i for i in range(60)]
    for m in sent:
        pub.publish("cr", m)
    other.start()
    wait_all([other], "cr", sent, "the 60 messages at the member that stayed")
    other.stop()
    back = broker.client()
    assert login(back, "crashy") == LOGGED_IN
    back.send_json({"type": "SUB", "topic": "$share/cr/cr"})
    got = sorted([back.read_line(), back.read_line()])
    assert got[0] == "OK" and json.loads(got[1]) == {"type": "PUBREL", "msgId": p["msgId"],
                                                   "topic": "cr"}, got


def test_an_mqtt_member_away_with_a_qos2_message_holds_up_no_other(mqtt_factory):
    """An MQTT member goes with a QoS 2 message it got and did not answer:
    the message stays its own (MQTT-4.8.2-4), the other member gets every
    later one, past the span the group keeps in flight, and the first
    comes back to its member, across a restart, as a resend."""
    b = mqtt_factory()
    a = connected_client(b.mqtt_port, "q2-a", clean=False)
    assert a.subscribe([("$share/q2/q2", 2)]) == [2]
    connected_client(b.mqtt_port, "q2-pub").publish("q2", b"first", 2)
    assert a.expect(PUBLISH).payload == b"first"
    a.disconnect()
    a.expect_closed()
    rb = Receiver(lambda: b.mqtt_port, "q2-b", clean=False)
    rb.connect()
    assert rb.subscribe([("$share/q2/q2", 2)]) == [2]
    rb.start()
    later = [b"n%d" % i for i in range(500)]
    publish_window(b, "q2-pub2", "q2", later)
    assert sorted(rb.wait_count(len(later), timeout=30)) == sorted(later)
    b.restart()
    a = connected_client(b.mqtt_port, "q2-a", clean=False)
    p = a.expect(PUBLISH, timeout=SETTLE)
    assert (p.payload, p.qos, p.dup) == (b"first", 2, True), p
    a.send(ack_packet(PUBREC, p.pid))
    a.expect(PUBREL, pid=p.pid)
    a.send(ack_packet(PUBCOMP, p.pid))


def test_a_message_kept_aside_is_dead_lettered_after_its_attempts(mqtt_factory):
    """A QoS 2 message its member got stays its own while it is away
    (MQTT-4.8.2-4), but a message that makes the client drop its
    connection every time must not come back for ever: after
    max_delivery_attempts sends across reconnects it goes to the
    dead-letter topic, as a subscriber's own would, and the member gets
    what comes next instead."""
    b = mqtt_factory({"max_delivery_attempts": 2})
    dlq = Receiver(lambda: b.mqtt_port, "pa-dlq")
    dlq.connect()
    assert dlq.subscribe([(DLQ, 1)]) == [1]
    dlq.start()
    a = connected_client(b.mqtt_port, "pa-a", clean=False)
    assert a.subscribe([("$share/pa/pa", 2)]) == [2]
    pub = connected_client(b.mqtt_port, "pa-pub")
    pub.publish("pa", b"poison", 2)
    assert a.expect(PUBLISH).payload == b"poison"             # attempt 1
    a.close()
    other = Receiver(lambda: b.mqtt_port, "pa-b")
    other.connect()
    assert other.subscribe([("$share/pa/pa", 2)]) == [2]
    other.start()
    pub.publish("pa", b"next", 2)
    other.wait_count(1, timeout=SETTLE)
    other.disconnect()
    a = connected_client(b.mqtt_port, "pa-a", clean=False)
    p = a.expect(PUBLISH, timeout=SETTLE)
    assert (p.payload, p.dup) == (b"poison", True), p         # attempt 2
    a.close()
    a = connected_client(b.mqtt_port, "pa-a", clean=False)
    dlq.wait_until(lambda: len(dlq.arrivals) >= 1, SETTLE, "the dead letter")
    rec = json.loads(dlq.arrivals[0].payload)
    check_dead_letter(rec, "max_attempts", ports=[b.mqtt_port], topic="pa", msg="poison")
    pub.publish("pa", b"after", 2)
    p = a.expect(PUBLISH, timeout=SETTLE)
    assert (p.payload, p.dup) == (b"after", False), p
    a.send(ack_packet(PUBREC, p.pid))
    a.expect(PUBREL, pid=p.pid)
    a.send(ack_packet(PUBCOMP, p.pid))
    assert len(dlq.arrivals) == 1, dlq.arrivals


def test_a_member_known_in_cold_topics_goes_offline_without_starting_them(mqtt_factory):
    """A persistent session in a group over twenty topics goes offline
    while they are cold.  Their last word (IDLE) listed it as a member, so
    none starts to register it; one that joined while they were cold is
    registered (test_a_member_that_joined_while_the_topic_was_cold...)."""
    b = mqtt_factory({"topicd_idle_timeout": 1, "log_type": "information"})
    p = connected_client(b.mqtt_port, "ws-p", clean=False)
    assert p.subscribe([("$share/ws/ws/#", 1)]) == [1]
    pub = connected_client(b.mqtt_port, "ws-pub")
    for i in range(20):     # retained: they keep it, and are not forgotten
        pub.publish("ws/%d" % i, b"x", 1, retain=True)
    for _ in range(20):
        p.send(ack_packet(PUBACK, p.expect(PUBLISH).pid))
    wait_for(lambda: b.status()[0]["listed"] == 0, 30, "the twenty topics to go cold")
    assert b.status()[0]["topics"] == 20
    p.disconnect()
    p.expect_closed()
    p = connected_client(b.mqtt_port, "ws-p", clean=False)  # attached to cold topics
    before = len(re.findall(r"topic ws/\d+: topicd pid \d+ started", b.log_text()))
    p.disconnect()
    p.expect_closed()
    pub.publish("other/t", b"y", 1)     # a topicd started since: the master went on
    after = len(re.findall(r"topic ws/\d+: topicd pid \d+ started", b.log_text()))
    assert after == before, "%d topics woke for a member they know" % (after - before)
