"""MQTT 5.0 clients and the auth: the CONNACK, SUBACK and PUBACK say why
with 5.0's reason codes (0x86 bad user name or password, 0x87 not
authorized); 3.1.1 clients keep their return codes (test_auth.py)."""

import pytest

from broker_harness import wait_for
from mqtt_helpers import CONNECT, PUBLISH, connected_client, paho
from mqtt5_helpers import V5Client, ack5, props
from test_auth import ACL, QUIET, auth_broker

pytestmark = pytest.mark.skipif(paho is None, reason="paho-mqtt missing (use /usr/bin/python3)")


def test_v5_connack_reason_codes(mqtt_factory, tmp_path):
    """A wrong password: CONNACK 0x86 with a Reason String; an anonymous
    client where none may come in: 0x87; the right one: accepted."""
    b = auth_broker(mqtt_factory, tmp_path, allow_anonymous="false")
    c = V5Client(b.mqtt_port)
    ack = c.connect5("v5-wrong", username="alice", password="nope")
    assert ack.rc == 0x86 and "ReasonString" in ack.props
    c.expect_closed(timeout=10)
    c = V5Client(b.mqtt_port)
    ack = c.connect5("v5-anon")
    assert ack.rc == 0x87
    c.expect_closed()
    c = V5Client(b.mqtt_port)
    assert c.connect5("v5-alice", username="alice", password="secret").rc == 0


def test_v5_acl_reason_codes(mqtt_factory, tmp_path):
    """The ACL denies a subscription: SUBACK 0x87 for that filter; a
    publish: PUBACK (QoS 1) or PUBREC (QoS 2) 0x87, and nothing is
    delivered; what it allows goes through."""
    b = auth_broker(mqtt_factory, tmp_path, acl=ACL)
    c = V5Client(b.mqtt_port)
    c.connect5_ok("v5-acl", username="alice", password="secret")
    assert c.subscribe5([("alice/#", 1), ("bob/#", 1)]).codes == [1, 0x87]
    watcher = connected_client(b.mqtt_port, "w", username="bob", password="hunter2")
    assert watcher.subscribe([("#", 1)]) == [1]
    assert c.publish5("bob/x", b"denied", qos=1).rc == 0x87
    assert c.publish5("bob/y", b"denied", qos=2).rc == 0x87
    assert c.publish5("alice/ok", b"allowed", qos=1).rc == 0
    m = watcher.expect(PUBLISH)
    assert m.payload == b"allowed"
    m2 = c.next5(PUBLISH)                       # its own, on alice/#
    assert m2.payload == b"allowed"
    c.send(ack5(4, m2.pid))
    watcher.expect_silence(QUIET)


def test_a_delayed_will_is_checked_when_it_is_published(mqtt_factory, tmp_path):
    """A will with a Will Delay Interval goes when the delay ends, under
    the ACL of that moment: one the ACL stopped allowing in between (a
    SIGHUP) is not published."""
    b = auth_broker(mqtt_factory, tmp_path, acl=ACL, log_type="information")
    bob = connected_client(b.mqtt_port, "bob", username="bob", password="hunter2")
    assert bob.subscribe([("#", 1)]) == [1]
    c = V5Client(b.mqtt_port)
    c.connect5_ok("v5-will", username="alice", password="secret",
                  cprops=props(CONNECT, SessionExpiryInterval=300),
                  will=("alice/will", b"late", 1, False, props(CONNECT, WillProps=True,
                                                                 WillDelayInterval=3)))
    c.close(reset=True)
    wait_for(lambda: "will to alice/will published in 3s" in b.log_text(), 10,
             "the will to be delayed")
    (tmp_path / "acl").write_text(ACL.replace("topic readwrite alice/#", "topic read alice/#"))
    b.reload()
    wait_for(lambda: "will to alice/will not published: denied by the ACL" in b.log_text(), 10,
             "the delayed will to be refused")
    bob.expect_silence(QUIET)
