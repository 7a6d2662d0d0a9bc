"""use_username_as_clientid, as in mosquitto: a client's checked user name
is its client id, so no client can take over another user's session by
naming its id; a client without a checked user name is refused; with no
password_file the CONNECT's user name is taken unchecked, as mosquitto
does; a listener block can have its own with per_listener_settings;
SIGHUP turns it on and off for new connections."""

from broker_harness import start_with_listeners, wait_for
from mqtt_helpers import PUBACK, PUBLISH, RawClient, ack_packet
from mqtt5_helpers import V5Client
from test_auth import USERS, auth_broker, connack, refused, write_passwords


def test_the_user_name_is_the_client_id(mqtt_factory, tmp_path):
    b = auth_broker(mqtt_factory, tmp_path, use_username_as_clientid="true",
                    log_type="information")
    # alice's persistent session, whatever id she gives.
    rc, alice = connack(b.mqtt_port, "alice", USERS["alice"], client_id="anything",
                        clean=False)
    assert rc == 0
    assert alice.subscribe([("alice/in", 1)]) == [1]
    wait_for(lambda: "id alice user alice: MQTT persistent session" in b.log_text(), 10,
             "alice's session under her user name")
    alice.disconnect()
    # bob naming alice's id gets a session of his own: alice's stays hers.
    rc, bob = connack(b.mqtt_port, "bob", USERS["bob"], client_id="alice", clean=False)
    assert rc == 0
    bob.publish("alice/in", b"for alice", qos=1)
    bob.disconnect()
    # alice comes back under another id: her session, with its message.
    again = RawClient(b.mqtt_port, name="alice-again")
    ack = again.connect("other", clean=False, username="alice", password=USERS["alice"])
    assert (ack.rc, ack.session_present) == (0, True)
    p = again.wait_packet(lambda p: p.type == PUBLISH, what="alice's queued message")
    assert (p.topic, p.payload) == ("alice/in", b"for alice")
    again.send(ack_packet(PUBACK, p.pid))
    # A second connection of alice's takes the first one's place.
    rc, third = connack(b.mqtt_port, "alice", USERS["alice"], client_id="third", clean=False)
    assert rc == 0
    again.expect_closed()


def test_a_client_without_a_checked_user_name_is_refused(mqtt_factory, tmp_path):
    b = auth_broker(mqtt_factory, tmp_path, use_username_as_clientid="true",
                    allow_anonymous="true")
    refused(b.mqtt_port, 5, client_id="anon")
    c = V5Client(b.mqtt_port, name="anon5")
    ack = c.connect5("anon5")
    assert ack.rc == 0x87, ack
    assert "use_username_as_clientid, and it gave no user name" in b.log_text()


def test_without_a_password_file_the_given_user_name_is_the_id(mqtt_factory):
    """No password_file (anonymous clients let in): nothing checks a
    user name, and the CONNECT's is the client id; a client that gives
    none is refused."""
    b = mqtt_factory({"use_username_as_clientid": "true", "allow_anonymous": "true",
                      "log_type": "information"})
    rc, c = connack(b.mqtt_port, "device-17", "any", client_id="x")
    assert rc == 0, "CONNACK %d" % rc
    wait_for(lambda: "id device-17: MQTT" in b.log_text(), 10, "the client under its user name")
    c.disconnect()
    refused(b.mqtt_port, 5, client_id="nameless")
    assert "use_username_as_clientid, and it gave no user name" in b.log_text()


def test_mqtt5_empty_client_id_is_assigned_the_user_name(mqtt_factory, tmp_path):
    b = auth_broker(mqtt_factory, tmp_path, use_username_as_clientid="true")
    c = V5Client(b.mqtt_port, name="v5-empty")
    ack = c.connect5_ok("", username="bob", password=USERS["bob"])
    assert ack.props.get("AssignedClientIdentifier") == "bob", ack.props


def test_per_listener_and_reload(mqtt_factory, tmp_path):
    pw = write_passwords(tmp_path / "passwd")
    b, (plain, named) = start_with_listeners(mqtt_factory, [
        ("mqtt", ["password_file %s" % pw, "allow_anonymous true"]),
        ("mqtt", ["password_file %s" % pw, "use_username_as_clientid true"])],
        config={"per_listener_settings": "true", "log_type": "information"})
    rc, c = connack(plain, "carol", USERS["carol"], client_id="plain-id")
    assert rc == 0
    wait_for(lambda: "id plain-id user carol" in b.log_text(), 10, "carol's own id")
    c.disconnect()
    rc, c = connack(named, "carol", USERS["carol"], client_id="named-id")
    assert rc == 0
    wait_for(lambda: "id carol user carol" in b.log_text(), 10, "carol's user name as id")
    c.disconnect()
    # SIGHUP turns it off on that listener, for new connections.
    b.conf_text = b.conf_text.replace("use_username_as_clientid true",
                                      "use_username_as_clientid false")
    log = b.reload()
    assert "use_username_as_clientid changed" in log, log
    rc, c = connack(named, "carol", USERS["carol"], client_id="named-again")
    assert rc == 0
    wait_for(lambda: "id named-again user carol" in b.log_text(), 10, "carol's own id again")
    c.disconnect()
