"""MQTT 5.0 with the ecosystem's clients against the real broker:
mosquitto_pub / mosquitto_sub -V 5 with -D properties, paho-mqtt in
MQTTv5 mode and MQTT.js (Debian's node-mqtt) at protocol version 5,
mixed with MQTT 3.1.1 clients on the same topics."""

import os
import shutil
import subprocess

import pytest

from broker_harness import HOST, start_with_listeners
from mqtt_helpers import (PROC_TIMEOUT, PUBACK, PUBLISH, MosquittoSub, connected_client,
                          mosquitto_pub, paho)
from mqtt5_helpers import NodeClient, Paho5, V5Client, ack5
from test_tls import pki, tls_lines      # noqa: F401 (pki is a fixture)

pytestmark = pytest.mark.skipif(paho is None, reason="paho-mqtt missing (use /usr/bin/python3)")

HAVE_MQTTJS = shutil.which("node") is not None and \
    os.path.isdir(os.path.join(NodeClient.NODE_PATH, "mqtt"))


def test_mosquitto_pub_v5_properties(mqtt_broker):
    """mosquitto_pub -V 5 -D publish ...: a paho v5 subscriber gets every
    property; mosquitto_sub -V 5 and a 3.1.1 subscriber get the message."""
    b = mqtt_broker
    sub5 = Paho5(b.mqtt_port, "mp-sub5")
    sub5.connect5()
    assert sub5.subscribe5("mp/t", qos=1) == [1]
    msub = MosquittoSub(b.mqtt_port, ["mp/t"], qos=1, args=["-V", "5"])
    msub.wait_subscribed()
    sub3 = connected_client(b.mqtt_port, "mp-sub3")
    assert sub3.subscribe([("mp/t", 0)]) == [0]
    mosquitto_pub(b.mqtt_port, "mp/t", "hello v5", qos=1, args=[
        "-V", "5", "-D", "publish", "content-type", "text/plain",
        "-D", "publish", "user-property", "k", "v",
        "-D", "publish", "response-topic", "mp/reply",
        "-D", "publish", "correlation-data", "abc",
        "-D", "publish", "message-expiry-interval", "600",
        "-D", "publish", "payload-format-indicator", "1"])
    sub5.wait_message(b"hello v5")
    p = sub5.msg_props[0]
    assert p.ContentType == "text/plain"
    assert p.UserProperty == [("k", "v")]
    assert p.ResponseTopic == "mp/reply"
    assert p.CorrelationData == b"abc"
    assert 595 <= p.MessageExpiryInterval <= 600
    assert p.PayloadFormatIndicator == 1
    assert msub.wait_messages(1)[0].payload == b"hello v5"
    assert sub3.expect(PUBLISH).payload == b"hello v5"


def test_mosquitto_sub_v5_retained_properties(mqtt_broker):
    """A retained message keeps its properties: mosquitto_sub -V 5 prints
    them (-F %C %R %P), with the Subscription Identifier it asked for."""
    b = mqtt_broker
    pub = Paho5(b.mqtt_port, "rt-pub")
    pub.connect5()
    pub.publish5("rt/t", b"kept", qos=1, retain=True, ContentType="text/x",
                 ResponseTopic="rt/back", UserProperty=[("who", "paho")])
    cmd = ["mosquitto_sub", "-h", HOST, "-p", str(b.mqtt_port), "-V", "5", "-t", "rt/t",
           "-C", "1", "-W", "10", "-D", "subscribe", "subscription-identifier", "9",
           "-F", "%t|%r|%C|%R|%P|%S|%p"]
    res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                         timeout=PROC_TIMEOUT)
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode().strip() == "rt/t|1|text/x|rt/back|who:paho|9|kept"


@pytest.mark.skipif(not HAVE_MQTTJS, reason="node or Debian's node-mqtt missing")
def test_mqttjs_v5_request_response(mqtt_factory):
    """MQTT.js at protocol version 5 answers requests: paho v5 sends one
    with a Response Topic and Correlation Data and gets the answer with
    the same Correlation Data; MQTT.js sees the CONNACK's properties, its
    Subscription Identifier, and not its own messages (No Local)."""
    b = mqtt_factory({"response_information": "resp/"})
    node = NodeClient("mqttjs5_client.js", [b.mqtt_port, "js5", "rr/req", 1])
    ack = node.wait_event("connack")
    assert ack["rc"] == 0
    assert ack["props"]["topicAliasMaximum"] == 10
    assert ack["props"]["receiveMaximum"] == 100
    assert node.wait_event("suback")["granted"][0]["qos"] == 1
    asker = Paho5(b.mqtt_port, "asker")
    asker.connect5()
    assert asker.subscribe5("resp/asker", qos=1) == [1]
    asker.publish5("rr/req", b"ping", qos=1, ResponseTopic="resp/asker",
                   CorrelationData=b"\x01\x02", UserProperty=[("trace", "7")])
    m = node.wait_event("message")
    assert m["payload"] == "ping"
    assert m["props"]["responseTopic"] == "resp/asker"
    assert m["props"]["correlationData"] == "0102"
    assert m["props"]["subscriptionIdentifier"] == 42
    assert m["props"]["userProperties"] == {"trace": "7"}
    answer = asker.wait_message(b"re:ping")
    assert asker.msg_props[0].CorrelationData == b"\x01\x02"
    assert asker.msg_props[0].ContentType == "text/plain"
    assert answer.topic == "resp/asker"
    node.wait_event("end")


def test_v5_over_tls(mqtt_factory, pki):
    """MQTT 5.0 on a TLS listener: a raw level-5 client gets its CONNACK
    properties and a message with its properties from mosquitto_pub -V 5
    over TLS, mixed with a plain 3.1.1 publisher."""
    b, (port,) = start_with_listeners(mqtt_factory, [("mqtt", tls_lines(pki))])
    c = V5Client(port, name="v5-tls", tls=pki.client_context())
    ack = c.connect5_ok("v5-tls")
    assert ack.props["TopicAliasMaximum"] == 10
    assert c.subscribe5([("tls5/#", 1)]).codes == [1]
    mosquitto_pub(port, "tls5/a", "secure", qos=1, args=[
        "--cafile", pki.path("ca.crt"), "-V", "5", "-D", "publish", "content-type", "text/s"])
    m = c.next5(PUBLISH)
    assert (m.topic, m.payload, m.props["ContentType"]) == ("tls5/a", b"secure", "text/s")
    c.send(ack5(PUBACK, m.pid))
    connected_client(b.mqtt_port, "plain-pub").publish("tls5/b", b"clear", 1)
    m = c.next5(PUBLISH)
    assert (m.topic, m.payload, m.props) == ("tls5/b", b"clear", {})
    c.send(ack5(PUBACK, m.pid))
