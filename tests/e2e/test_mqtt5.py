"""MQTT 5.0 on the broker's MQTT listener, against the real broker: the
CONNECT / CONNACK exchange and its properties, sessions (Clean Start and
Session Expiry Interval), reason codes, flow control and topic aliases,
with paho-mqtt in MQTTv5 mode and raw level-5 packets, mixed with MQTT
3.1.1 and JSON-lines clients on the same topics.  Server-initiated
DISCONNECTs and malformed packets are in test_mqtt5_errors.py.
"""

import time

import pytest

from mqtt_helpers import PUBACK, PUBLISH, PUBREC, PahoClient, connected_client, paho
from mqtt5_helpers import (DISCONNECT, Paho5, V5Client, ack5, decode5, disconnect5, props)

pytestmark = pytest.mark.skipif(paho is None, reason="paho-mqtt missing (use /usr/bin/python3)")

CONNECT, SUBSCRIBE = 1, 8
QUIET = 0.3             # seconds over which an absence is watched


def v5(b, client_id="", **kw):
    c = V5Client(b.mqtt_port)
    ack = c.connect5_ok(client_id, **kw)
    return c, ack


# ---------------------------------------------------------------- CONNACK

def test_connack_properties(mqtt_broker):
    """A level-5 CONNECT is accepted; the CONNACK says what the server
    allows: Receive Maximum (max_inflight_messages), Topic Alias Maximum
    (max_topic_alias, 10), Maximum Packet Size, Retain and Wildcard
    Subscriptions available, Subscription Identifiers and Shared
    Subscriptions not; an empty client id gets an Assigned Client
    Identifier; no Maximum QoS (QoS 2 is supported)."""
    c, ack = v5(mqtt_broker, "")
    p = ack.props
    assert ack.session_present is False
    assert p["ReceiveMaximum"] == 20
    assert p["TopicAliasMaximum"] == 10
    assert p["MaximumPacketSize"] > 256 * 1024
    assert p["RetainAvailable"] == 1
    assert p["WildcardSubscriptionAvailable"] == 1
    assert p["SubscriptionIdentifierAvailable"] == 0
    assert p["SharedSubscriptionAvailable"] == 0
    assert "MaximumQoS" not in p
    assert p["AssignedClientIdentifier"].startswith("auto-")
    assert "ServerKeepAlive" not in p           # 60 s asked, max_keepalive 65535

    c2, ack2 = v5(mqtt_broker, "named")
    assert "AssignedClientIdentifier" not in ack2.props
    assert ack2.props["ReceiveMaximum"] == 20


def test_connack_settings(mqtt_factory):
    """max_keepalive, max_packet_size, max_topic_alias and
    max_inflight_messages change what the CONNACK says;
    response_information answers Request Response Information."""
    b = mqtt_factory({"max_keepalive": "30", "max_packet_size": "1000",
                      "max_topic_alias": "0", "max_inflight_messages": "5",
                      "response_information": "replies/"})
    _, ack = v5(b, "ka", keepalive=60,
                cprops=props(CONNECT, RequestResponseInformation=1))
    p = ack.props
    assert p["ServerKeepAlive"] == 30
    assert p["MaximumPacketSize"] == 1000
    assert "TopicAliasMaximum" not in p
    assert p["ReceiveMaximum"] == 5
    assert p["ResponseInformation"] == "replies/"
    _, ack = v5(b, "ka0", keepalive=0)          # none asked: max_keepalive given
    assert ack.props["ServerKeepAlive"] == 30
    assert "ResponseInformation" not in ack.props
    _, ack = v5(b, "ka1", keepalive=10)
    assert "ServerKeepAlive" not in ack.props


def test_paho5_round_trip_mixed(mqtt_broker):
    """paho in MQTTv5 mode publishes at QoS 0, 1, 2 to a paho 3.1.1
    subscriber, a v5 subscriber and a JSON-lines consumer on the same
    topic; and the 3.1.1 client's messages reach the v5 one."""
    b = mqtt_broker
    sub5 = Paho5(b.mqtt_port, "sub5")
    rc, present, cp = sub5.connect5()
    assert (rc, present) == (0, False)
    assert sub5.subscribe5("mix/t", qos=2) == [2]
    sub3 = PahoClient(b.mqtt_port, "sub3")
    sub3.connect_ok()
    assert sub3.subscribe([("mix/t", 2)]) == [2]
    j = b.consumer("jsonuser")
    j.subscribe("mix/t")
    pub5 = Paho5(b.mqtt_port, "pub5")
    assert pub5.connect5()[0] == 0
    for q in (0, 1, 2):
        pub5.publish5("mix/t", b"v5-q%d" % q, qos=q)
    for q in (0, 1, 2):
        assert sub5.wait_message(b"v5-q%d" % q).qos == q
        assert sub3.wait_message(b"v5-q%d" % q).qos == q
    for q in (0, 1, 2):
        j.wait_message("v5-q%d" % q, "mix/t")
    sub3.publish("mix/t", b"from-311", qos=1)
    assert sub5.wait_message(b"from-311").qos == 1
