"""A subscription creates no topic, not even an exact filter's: the first
publish (or a JSON-lines SUB) does, and gives then every session whose
filters match the new topic its cursor.  What a subscriber relied on when
its SUBSCRIBE made the topic must hold all the same: persistent sessions
offline at the first publish get it, across SIGKILLs of the master and of
the new topicd, shared subscriptions, MQTT 5.0 options, the ACL, the
dead-letter topic, and JSON-lines consumers of the same topic."""

import json
import re

from broker_harness import DLQ, wait_for
from mqtt_helpers import CONNECT, PUBACK, PUBLISH, SUBSCRIBE, RawClient, Receiver, publish_packet
from mqtt5_helpers import V5Client, ack5, props

CONFIG = {"topicd_idle_timeout": 0, "log_type": "information",
          "restart_backoff_min": 0.05, "restart_backoff_max": 0.2}


def offline(b, client_id, filters, clean=False):
    """A session subscribed to filters (all granted), then offline."""
    r = Receiver(lambda: b.mqtt_port, client_id, clean=clean)
    r.connect()
    assert r.subscribe(filters) == [q for _, q in filters]
    r.close()
    return r


def publisher(b, client_id="creator"):
    c = RawClient(b.mqtt_port, name=client_id)
    c.connect_ok(client_id)
    return c


def back(r, payloads, topic):
    """Reconnects r and waits for payloads on topic; at QoS 2 each comes
    once."""
    assert r.reconnect().session_present
    for p in payloads:
        r.wait_payload(p, topic, timeout=20)
    r.settle()
    return r.payloads(topic)


def test_offline_exact_subscribers_get_first_messages_across_sigkills(mqtt_factory):
    b = mqtt_factory(CONFIG)
    q1 = offline(b, "tc-q1", [("tc/a", 1), ("tc/b", 1)])
    q2 = offline(b, "tc-q2", [("tc/a", 2), ("tc/b", 2)])
    sh = offline(b, "tc-sh", [("$share/g/tc/a", 2), ("$share/g/tc/b", 2)])
    master, _ = b.status()
    assert master["topics"] == 0, master
    pub = publisher(b)
    pub.publish("tc/a", b"a1", qos=2)                  # creates tc/a
    b.kill_topicd("tc/a")                               # right after its PUBCOMP
    pub.publish("tc/a", b"a2", qos=2)                   # to its next topicd
    pub.publish("tc/b", b"b1", qos=1)                   # creates tc/b
    pub.close()
    left = b.kill9()                                    # right after its PUBACK
    b.wait_topicds_gone(left)
    b.start(keep_ports=True)
    pub = publisher(b)
    pub.publish("tc/b", b"b2", qos=2)
    for r in (q1, q2, sh):
        got_a = back(r, [b"a1", b"a2"], "tc/a")
        assert set(r.payloads("tc/b")) <= {b"b1", b"b2"}
        for p in (b"b1", b"b2"):
            r.wait_payload(p, "tc/b", timeout=20)
        r.settle()
        if r is not q1:                                 # at QoS 2: exactly once
            assert got_a == [b"a1", b"a2"], r.describe()
            assert r.payloads("tc/b") == [b"b1", b"b2"], r.describe()
        else:
            assert set(got_a) == {b"a1", b"a2"}, r.describe()


def test_subscribe_then_unsubscribe_before_the_first_publish_leaves_no_cursor(mqtt_factory):
    b = mqtt_factory(CONFIG)
    r = Receiver(lambda: b.mqtt_port, "tc-undo", clean=False)
    r.connect()
    assert r.subscribe([("tc/undo", 1), ("tc/keep", 1)]) == [1, 1]
    r.client.unsubscribe(["tc/undo"])
    r.close()
    pub = publisher(b)
    pub.publish("tc/undo", b"nobody's", qos=1)
    pub.publish("tc/keep", b"kept", qos=1)
    assert b.topicd_status("tc/undo")["subs"] == 0
    assert b.topicd_status("tc/keep")["subs"] == 1
    back(r, [b"kept"], "tc/keep")
    assert r.payloads("tc/undo") == []


def test_a_clean_session_gets_the_first_message_and_leaves_no_cursor(mqtt_factory):
    b = mqtt_factory(CONFIG)
    r = Receiver(lambda: b.mqtt_port, "tc-clean", clean=True)
    r.connect()
    assert r.subscribe([("tc/clean", 2)]) == [2]
    r.start()
    pub = publisher(b)
    pub.publish("tc/clean", b"first", qos=2)
    r.wait_payload(b"first")
    r.settle()
    assert r.payloads() == [b"first"]
    r.disconnect()
    wait_for(lambda: b.topicd_status("tc/clean")["subs"] == 0, 10,
             "the clean session's cursor in tc/clean to go")


def test_mqtt5_options_of_an_exact_filter_hold_for_the_topic_made_later(mqtt_factory):
    """No Local and a Subscription Identifier given to an exact filter of a
    persistent session apply to the topic its first publish makes, also
    to what it got while offline."""
    b = mqtt_factory(CONFIG)
    c = V5Client(b.mqtt_port, name="tc-v5")
    c.connect5_ok("tc-v5", clean=False, cprops=props(CONNECT, SessionExpiryInterval=600))
    assert c.subscribe5([("tc/nl", 1 | 0x04)], sprops=props(
        SUBSCRIBE, SubscriptionIdentifier=9)).codes == [1]
    c.close()
    pub = publisher(b)
    pub.publish("tc/nl", b"while away", qos=1)          # creates tc/nl
    c = V5Client(b.mqtt_port, name="tc-v5")
    assert c.connect5_ok("tc-v5", clean=False,
                         cprops=props(CONNECT, SessionExpiryInterval=600)).session_present
    m = c.next5(PUBLISH, timeout=20)
    assert (m.payload, m.props.get("SubscriptionIdentifier")) == (b"while away", [9]), m
    c.send(ack5(PUBACK, m.pid))
    c.publish5("tc/nl", b"mine", qos=1)                 # No Local: not back
    pub.publish("tc/nl", b"theirs", qos=1)
    m = c.next5(PUBLISH)
    assert (m.payload, m.props.get("SubscriptionIdentifier")) == (b"theirs", [9]), m
    c.send(ack5(PUBACK, m.pid))


def test_a_retained_first_message_reaches_offline_exact_subscribers(mqtt_factory):
    """A retained message that creates the topic is a message like any
    other to a session subscribed before; a later SUBSCRIBE with Retain
    Handling 0 gets it again as retained, with 1 (existing) it does not."""
    b = mqtt_factory(CONFIG)
    c = V5Client(b.mqtt_port, name="tc-rh")
    c.connect5_ok("tc-rh", clean=False, cprops=props(CONNECT, SessionExpiryInterval=600))
    assert c.subscribe5([("tc/ret", 1 | (1 << 4))]).codes == [1]
    c.close()
    pub = publisher(b)
    pub.publish("tc/ret", b"kept", qos=1, retain=True)
    c = V5Client(b.mqtt_port, name="tc-rh")
    assert c.connect5_ok("tc-rh", clean=False,
                         cprops=props(CONNECT, SessionExpiryInterval=600)).session_present
    m = c.next5(PUBLISH, timeout=20)
    assert (m.payload, m.retain) == (b"kept", False), m
    c.send(ack5(PUBACK, m.pid))
    assert c.subscribe5([("tc/ret", 1 | (1 << 4))]).codes == [1]    # exists: none
    assert c.subscribe5([("tc/ret", 1)]).codes == [1]                # RH 0: sent
    m = c.next5(PUBLISH)
    assert (m.payload, m.retain) == (b"kept", True), m
    c.send(ack5(PUBACK, m.pid))
    c.expect_silence(0.5)


def test_the_acl_decides_a_new_topics_cursors(mqtt_factory, tmp_path):
    (tmp_path / "acl").write_text("topic read tc/ok/#\ntopic write tc/#\n")
    b = mqtt_factory(dict(CONFIG, acl_file=tmp_path / "acl"))
    r = Receiver(lambda: b.mqtt_port, "tc-acl", clean=False)
    r.connect()
    assert r.subscribe([("tc/no/t", 1)]) == [0x80]
    assert r.subscribe([("tc/#", 1), ("tc/ok/t", 1)]) == [1, 1]
    r.close()
    pub = publisher(b)
    pub.publish("tc/no/t", b"denied", qos=1)
    pub.publish("tc/ok/t", b"allowed", qos=1)
    assert b.topicd_status("tc/no/t")["subs"] == 0
    back(r, [b"allowed"], "tc/ok/t")
    assert r.payloads() == [b"allowed"]


def test_the_dead_letter_topic_subscribed_before_any_dead_letter(mqtt_factory):
    b = mqtt_factory(CONFIG)
    r = offline(b, "tc-dlq", [(DLQ, 1)])
    master, _ = b.status()
    assert master["topics"] == 0, master
    pub = publisher(b)
    pub.publish("$own/x", b"kept", qos=1)              # acknowledged once dead-lettered
    left = b.kill9()
    b.wait_topicds_gone(left)
    b.start(keep_ports=True)
    assert r.reconnect().session_present
    r.wait_count(1, DLQ, timeout=20)
    rec = json.loads(r.payloads(DLQ)[0].decode("utf-8"))
    assert (rec["reason"], rec["topic"], rec["msg"]) == ("reserved_topic", "$own/x", "kept")


def test_past_max_topics_a_subscription_is_granted_and_its_publish_refused(mqtt_factory):
    b = mqtt_factory(dict(CONFIG, max_topics=1))
    r = offline(b, "tc-max", [("tc/m1", 1), ("tc/m2", 1)])
    pub = publisher(b)
    pub.publish("tc/m1", b"one", qos=1)
    pub.send(publish_packet("tc/m2", b"two", qos=1, pid=pub.alloc_pid()))
    pub.expect_closed()                                 # not stored: never acknowledged
    b.reload({"max_topics": 2})
    pub = publisher(b, "creator2")
    pub.publish("tc/m2", b"two", qos=1)
    assert set(back(r, [b"one"], "tc/m1")) == {b"one"}
    r.wait_payload(b"two", "tc/m2", timeout=20)


def test_past_max_topics_a_dead_letter_is_still_stored(mqtt_factory):
    """The dead-letter topic is not counted in max_topics: with every
    topic taken, a line that is not JSON is still dead-lettered (a dead
    letter refused would be lost), and a new topic is still refused."""
    b = mqtt_factory(dict(CONFIG, max_topics=1))
    r = offline(b, "tc-maxdlq", [(DLQ, 1)])
    pub = publisher(b)
    pub.publish("tc/only", b"one", qos=1)
    jp = b.publisher()
    jp.send_line("not json")
    jp.expect("INVALID JSON")
    assert r.reconnect().session_present
    r.wait_count(1, DLQ, timeout=20)
    rec = json.loads(r.payloads(DLQ)[0].decode("utf-8"))
    assert (rec["reason"], rec["msg"]) == ("invalid_json", "not json"), rec
    assert not re.search(r"dead letter \(.*\) lost", b.log_text())
    pub.send(publish_packet("tc/two", b"two", qos=1, pid=pub.alloc_pid()))
    pub.expect_closed()                                 # not stored: never acknowledged


def test_json_consumers_and_mqtt_sessions_of_one_new_topic(mqtt_factory):
    """A JSON-lines SUB still makes its topic; the MQTT sessions subscribed
    to it before get their cursors then, and the first message reaches
    both kinds, whichever protocol published it."""
    b = mqtt_factory(CONFIG)
    r = offline(b, "tc-mix", [("tc/mix", 2), ("tc/mq", 2)])
    cons = b.consumer("tc-json")
    cons.subscribe("tc/mix")                            # creates tc/mix
    jp = b.publisher()
    jp.publish("tc/mix", "from json")
    pub = publisher(b)
    pub.publish("tc/mq", b"from mqtt", qos=2)           # creates tc/mq
    cons.subscribe("tc/mq")
    pub.publish("tc/mq", b"second", qos=2)
    cons.wait_message("from json", "tc/mix")
    assert b.topicd_status("tc/mix")["subs"] == 2
    cons.wait_message("second", "tc/mq")
    cons.settle()
    assert cons.messages("tc/mq") == ["second"]         # subscribed after the first
    assert back(r, [b"from json"], "tc/mix") == [b"from json"]
    r.wait_payload(b"second", "tc/mq", timeout=20)
    r.settle()
    assert r.payloads("tc/mq") == [b"from mqtt", b"second"]
