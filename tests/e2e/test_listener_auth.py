"""Listener blocks and who gets in: per_listener_settings gives a block its
own password file, ACL and allow_anonymous; passwords over TLS; a block on
a non-loopback address makes anonymous clients unwelcome everywhere."""

import subprocess

import pytest

from mqtt_helpers import PUBLISH, mosquitto_pub
from test_auth import connack, refused, write_passwords
from broker_harness import (LOGGED_IN, PLEASE_LOGIN, JsonClient, broker_binary,
                            start_with_listeners, wait_for)
from test_tls import log_since, pki, tls_lines  # noqa: F401 (fixture)

def test_per_listener_settings_give_each_block_its_own_files(mqtt_factory, tmp_path):
    pw = write_passwords(tmp_path / "passwd")
    (tmp_path / "acl").write_text("user alice\ntopic readwrite alice/#\n")
    b, (locked, open_port) = start_with_listeners(mqtt_factory, [
        ("mqtt", ["password_file %s" % pw, "acl_file %s" % (tmp_path / "acl")]),
        ("mqtt", ["allow_anonymous true"])],
        config={"per_listener_settings": "true"})
    # The locked block checks passwords and refuses anonymous clients.
    assert connack(locked, "alice", "secret")[0] == 0
    refused(locked, 4, user="alice", password="wrong")
    refused(locked, 5)
    # Its ACL: alice may write alice/# only.
    rc, c = connack(locked, "alice", "secret", client_id="acl")
    assert rc == 0
    assert c.subscribe([("alice/#", 1), ("other/#", 1)]) == [1, 0x80]
    # The other block lets anonymous clients in, and knows no ACL.
    rc, c = connack(open_port, client_id="anon")
    assert rc == 0
    assert c.subscribe([("other/#", 1)]) == [1]
    # The shortcut port keeps the global settings: loopback, anonymous.
    assert connack(b.mqtt_port, client_id="shortcut")[0] == 0


def test_files_written_after_a_listener_line_are_global_without_per_listener_settings(
        mqtt_factory, tmp_path):
    """As in mosquitto: with per_listener_settings false, a password_file
    and an acl_file written after a listener line (where a step added to
    the end of a file lands) apply to every listener."""
    pw = write_passwords(tmp_path / "passwd")
    (tmp_path / "acl").write_text("user alice\ntopic readwrite alice/#\n")
    b, (port,) = start_with_listeners(mqtt_factory, [
        ("mqtt", ["password_file %s" % pw, "acl_file %s" % (tmp_path / "acl")])])
    for p in (port, b.mqtt_port):
        refused(p, 4, user="alice", password="wrong")
        rc, c = connack(p, "alice", "secret", client_id="acl-%d" % p)
        assert rc == 0
        assert c.subscribe([("alice/#", 1), ("other/#", 1)]) == [1, 0x80]


def test_an_offline_session_keeps_its_listeners_acl(mqtt_factory, tmp_path):
    """With per_listener_settings, a persistent session that is offline
    (also after a restart) is judged by the ACL of the block its client
    came in by, not the global one: a topic that first appears while it
    is away gets a cursor for it, and nothing published there is lost."""
    pw = write_passwords(tmp_path / "passwd")
    (tmp_path / "acl").write_text("user alice\ntopic readwrite alice/#\n")
    (tmp_path / "global.acl").write_text("user nobody\ntopic read x\n")
    b, (port,) = start_with_listeners(mqtt_factory, [
        ("mqtt", ["password_file %s" % pw, "acl_file %s" % (tmp_path / "acl")])],
        config={"per_listener_settings": "true", "allow_anonymous": "true",
                "acl_file": tmp_path / "global.acl"})
    rc, c = connack(port, "alice", "secret", client_id="away", clean=False)
    assert rc == 0
    assert c.subscribe([("alice/#", 1)]) == [1]
    c.disconnect()

    def publish(topic):
        rc, p = connack(port, "alice", "secret", client_id="pubber")
        assert rc == 0
        p.publish(topic, topic.encode(), 1)
        p.disconnect()

    publish("alice/one")
    b.restart()
    publish("alice/two")
    rc, c = connack(port, "alice", "secret", client_id="away", clean=False)
    assert rc == 0
    got = sorted(c.expect(PUBLISH).payload for _ in range(2))
    assert got == [b"alice/one", b"alice/two"]


def test_a_json_session_of_a_checked_login_is_not_taken_from_another_listener(
        mqtt_factory, tmp_path):
    """per_listener_settings: a consumer session that alice's checked login
    made on one listener is not resumed by a login on a listener with
    other files (here, none: any name is taken there); a name no checked
    login used is still anyone's there."""
    pw = write_passwords(tmp_path / "passwd")
    b, (checked, unchecked) = start_with_listeners(mqtt_factory, [
        ("json_consumer", ["password_file %s" % pw]),
        ("json_consumer", ["allow_anonymous true"])],
        config={"per_listener_settings": "true"})
    c = JsonClient(checked)
    c.expect(PLEASE_LOGIN)
    c.send_line("log alice secret")
    c.expect(LOGGED_IN)
    c.send_json({"type": "SUB", "topic": "alice/j"})
    c.expect("OK")
    c.close()

    def intruder_answer():
        """The answer, once alice's connection is seen closed."""
        intruder = JsonClient(unchecked)
        intruder.expect(PLEASE_LOGIN)
        intruder.send_line("log alice")
        answer = intruder.read_line()
        intruder.expect_closed()
        return None if answer == "ERROR user is already connected" else answer
    assert wait_for(intruder_answer, 10, "alice's session offline") == "ERROR not authorized"
    other = JsonClient(unchecked)
    other.expect(PLEASE_LOGIN)
    other.send_line("log dave")
    other.expect(LOGGED_IN)
    c = JsonClient(checked)
    c.expect(PLEASE_LOGIN)
    c.send_line("log alice secret")
    c.expect(LOGGED_IN)


def test_a_reload_that_turns_per_listener_settings_on_keeps_the_files(mqtt_factory, tmp_path):
    """per_listener_settings takes effect at a restart: a reload that turns
    it on reads the file as the running broker does, so the block's
    password file and ACL stay the global ones (read with the new value,
    they would have been dropped while every listener still used the
    global ones: any password taken, the ACL gone)."""
    pw = write_passwords(tmp_path / "passwd")
    (tmp_path / "acl").write_text("user alice\ntopic readwrite alice/#\n")
    b, (port,) = start_with_listeners(mqtt_factory, [
        ("mqtt", ["password_file %s" % pw, "acl_file %s" % (tmp_path / "acl")])])
    logged = b.reload({"per_listener_settings": "true"})
    assert "per_listener_settings changed; it takes effect at the next restart" in logged
    for p in (port, b.mqtt_port):
        refused(p, 4, user="alice", password="wrong")
        rc, c = connack(p, "alice", "secret", client_id="acl-%d" % p)
        assert rc == 0
        assert c.subscribe([("alice/#", 1), ("other/#", 1)]) == [1, 0x80]


def test_a_block_file_and_another_global_one_are_refused(tmp_path):
    pw = write_passwords(tmp_path / "passwd")
    conf = tmp_path / "broker.conf"
    conf.write_text("password_file %s\nlistener 8883\npassword_file %s.other\n" % (pw, pw))
    res = subprocess.run([str(broker_binary()), "-t", "-c", str(conf)],
                         capture_output=True, timeout=20)
    assert res.returncode != 0
    assert "listener 8883: password_file applies to every listener while " \
        "per_listener_settings is false, and another password_file is given: keep one, " \
        "or set per_listener_settings true" in res.stderr.decode(), res.stderr.decode()


def test_passwords_over_tls(mqtt_factory, pki, tmp_path):
    pw = write_passwords(tmp_path / "passwd")
    b, (port,) = start_with_listeners(mqtt_factory, [("mqtt", tls_lines(pki))],
                                      config={"password_file": pw})
    ca = ["--cafile", pki.path("ca.crt")]
    mosquitto_pub(port, "t/ok", "m", args=ca + ["-u", "alice", "-P", "secret"])
    with pytest.raises(AssertionError):
        mosquitto_pub(port, "t/no", "m", args=ca + ["-u", "alice", "-P", "wrong"])
    log_since(b, 0, r"login failed for user alice: wrong password or unknown user")


def test_a_block_off_loopback_refuses_anonymous_clients(mqtt_factory):
    b, (port,) = start_with_listeners(mqtt_factory, [("mqtt", [])], address="0.0.0.0")
    log_since(b, 0, r"anonymous clients are refused: listener %d 0\.0\.0\.0 is not on a "
              r"loopback address" % port)
    refused(port, 5)
    refused(b.mqtt_port, 5)


def test_a_block_allow_anonymous_false_is_the_global_one(mqtt_factory):
    """With per_listener_settings false, a block's allow_anonymous false is
    the global one, as in mosquitto: anonymous clients are refused on
    every listener, loopback ones too (where, unset, they would get in)."""
    b, (port,) = start_with_listeners(mqtt_factory, [("mqtt", ["allow_anonymous false"])])
    refused(port, 5)
    refused(b.mqtt_port, 5)


def test_blocks_with_other_allow_anonymous_are_refused(tmp_path):
    conf = tmp_path / "broker.conf"
    conf.write_text("listener 18840\nallow_anonymous false\n"
                    "listener 18841\nallow_anonymous true\n")
    res = subprocess.run([str(broker_binary()), "-t", "-c", str(conf)],
                         capture_output=True, timeout=20)
    assert res.returncode != 0
    assert "listener 18840: allow_anonymous applies to every listener while " \
        "per_listener_settings is false, and another allow_anonymous is given" \
        in res.stderr.decode(), res.stderr.decode()
