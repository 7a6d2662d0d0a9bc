"""Who gets in and what they may do: password files written by Debian's
mosquitto_passwd ($7$ and $6$), anonymous clients, the ACL over MQTT and
JSON-lines (subscriptions, publishes, deliveries of retained messages of
cold topics, wills, $SYS, the dead-letter topic), SIGHUP with changed
files, `broker -t` on bad files, and the slowdown of password guessing."""

import os
import re
import signal
import subprocess
import time

from broker_harness import (HOST, LOGGED_IN, PLEASE_LOGIN, JsonClient, add_root_user,
                            broker_binary, start_with_listeners, wait_for)
from mqtt_helpers import (CONNACK, PUBACK, PUBLISH, SUBACK_FAILURE, PahoClient, RawClient,
                          ack_packet, connect_packet, mosquitto_pub)

USERS = {"alice": "secret", "bob": "hunter2", "carol": "two words", "ops": "0ps!"}

ACL = """\
# anonymous clients
topic read public/#

user alice
topic readwrite alice/#
topic read public/#
topic read $SYS/broker/acl/#
topic deny alice/secret

user bob
topic readwrite #
topic write alice/inbox

user ops
topic read $DLQ
topic read $SYS/#

pattern read users/%u/#
pattern write clients/%c/status
"""

QUIET = 0.5     # seconds over which an absence is watched

# alice may read extra/# instead of public/#
EXTRA_ACL = ACL.replace("topic read public/#\ntopic read $SYS/broker/acl/#",
                        "topic read extra/#\ntopic read $SYS/broker/acl/#")


def mosquitto_passwd(path, user, password, sha512=False, create=False):
    """Debian's mosquitto_passwd: -H sha512 writes the older $6$ hash."""
    cmd = ["mosquitto_passwd"] + (["-H", "sha512"] if sha512 else []) + \
        (["-c"] if create else []) + ["-b", str(path), user, password]
    res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    assert res.returncode == 0, res.stderr.decode()


def write_passwords(path, users=USERS):
    """alice with $7$ (the default), every other user with $6$."""
    for i, (user, pw) in enumerate(users.items()):
        mosquitto_passwd(path, user, pw, sha512=user != "alice", create=i == 0)
    os.chmod(path, 0o600)
    text = path.read_text()
    assert "alice:$7$" in text and "bob:$6$" in text, text
    return path


def auth_broker(mqtt_factory, tmp_path, acl=None, start=True, **config):
    conf = {"password_file": write_passwords(tmp_path / "passwd")}
    if acl is not None:
        (tmp_path / "acl").write_text(acl)
        conf["acl_file"] = tmp_path / "acl"
    conf.update(config)
    return mqtt_factory(conf, start=start)


def connack(port, user=None, password=None, client_id="c", **kw):
    """A CONNECT; the CONNACK's return code (the client is returned too)."""
    c = RawClient(port, name=client_id)
    return c.connect(client_id, username=user, password=password, **kw).rc, c


def refused(port, rc, **kw):
    """A CONNECT answered with return code rc, then the connection closed."""
    got, c = connack(port, **kw)
    assert got == rc, "CONNACK %d, expected %d (%r)" % (got, rc, kw)
    c.expect_closed()


def sys_value(port, user, password, topic):
    """A $SYS value as a client that may read it gets it (at SUBSCRIBE)."""
    rc, c = connack(port, user, password, client_id="sys-reader")
    assert rc == 0
    assert c.subscribe([(topic, 0)]) == [0]
    p = c.wait_packet(lambda p: p.type == PUBLISH and p.topic == topic, what=topic)
    c.disconnect()
    return int(p.payload)


def json_login(port, line):
    """A JSON-lines connection after the given first line; returns it and
    the answer."""
    c = JsonClient(port)
    c.send_line(line)
    return c, c.read_line()


# ---------------------------------------------------------------- passwords, MQTT

def test_mqtt_right_wrong_and_missing_passwords(mqtt_factory, tmp_path):
    b = auth_broker(mqtt_factory, tmp_path, allow_anonymous="false")
    for user, pw in USERS.items():          # $7$ and $6$ alike
        rc, c = connack(b.mqtt_port, user, pw, client_id="ok-" + user)
        assert rc == 0, user
        c.disconnect()
    refused(b.mqtt_port, 4, user="alice", password="Secret")
    refused(b.mqtt_port, 4, user="alice", password="hunter2")    # bob's
    refused(b.mqtt_port, 4, user="alice")                        # no password
    refused(b.mqtt_port, 4, user="mallory", password="secret")   # no such user
    refused(b.mqtt_port, 5)                                      # anonymous
    assert re.search(r"client 127\.0\.0\.1:\d+: login failed for user mallory: ",
                     b.log_text()), b.log_tail()
    # The ecosystem's clients.
    mosquitto_pub(b.mqtt_port, "alice/x", "m", qos=1, args=["-u", "alice", "-P", "secret"])
    res = subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(b.mqtt_port), "-t", "a",
                          "-m", "m", "-u", "alice", "-P", "wrong"], capture_output=True,
                         stdin=subprocess.DEVNULL, timeout=20)
    assert res.returncode != 0 and b"bad user name or password" in res.stderr, res
    p = PahoClient(b.mqtt_port, "paho-bob")
    p.c.username_pw_set("bob", "hunter2")
    assert p.connect()[0] == 0
    p.disconnect()
    p = PahoClient(b.mqtt_port, "paho-bad")
    p.c.username_pw_set("bob", "nope")
    assert p.connect()[0] == 4
    assert sys_value(b.mqtt_port, "ops", "0ps!", "$SYS/broker/auth/logins_failed") == 6
    assert sys_value(b.mqtt_port, "ops", "0ps!", "$SYS/broker/auth/anonymous_refused") == 1


def test_a_failed_login_does_not_take_over_the_session(mqtt_factory, tmp_path):
    b = auth_broker(mqtt_factory, tmp_path)
    rc, good = connack(b.mqtt_port, "alice", "secret", client_id="same")
    assert rc == 0
    refused(b.mqtt_port, 4, user="alice", password="guess", client_id="same")
    good.ping()


FORGED = "2026-12-06T00:00:00.000Z broker[1]: error: FAKE LINE"


def test_a_user_name_cannot_forge_log_lines(mqtt_factory, tmp_path):
    """The log quotes what a client sent with its control characters
    escaped: a user name with a newline stays on its line."""
    b = auth_broker(mqtt_factory, tmp_path, allow_anonymous="false")
    refused(b.mqtt_port, 4, user="bob\n" + FORGED, password="x", client_id="forger")
    refused(b.mqtt_port, 4, user="bob\r\x1b[2J\x7f", password="x", client_id="forger2")
    text = wait_for(lambda: (lambda t: t if t.count("login failed for user bob") >= 2
                             else None)(b.log_text()),
                    10, "both failed logins in the log")
    assert not any(line.startswith(FORGED) for line in text.splitlines()), b.log_tail()
    assert "login failed for user bob\\n" + FORGED + ": " in text, b.log_tail()
    assert "login failed for user bob\\r\\x1b[2J\\x7f: " in text, b.log_tail()


# ---------------------------------------------------------------- passwords, JSON-lines

def test_json_logins_with_a_password_file(mqtt_factory, tmp_path):
    b = auth_broker(mqtt_factory, tmp_path, allow_anonymous="false")
    # Consumers: the user name is lower-cased, the password kept as typed.
    c = JsonClient(b.consumer_port)
    c.expect(PLEASE_LOGIN)
    c.send_line("log ALICE secret")
    c.expect(LOGGED_IN)
    c.send_json({"type": "SUB", "topic": "alice/j"})
    c.expect("OK")
    for line in ("log alice SECRET", "log alice", "log mallory secret"):
        bad = JsonClient(b.consumer_port)
        bad.expect(PLEASE_LOGIN)
        bad.send_line(line)
        bad.expect("ERROR not authorized")
        bad.expect_closed()
    c2, answer = json_login(b.consumer_port, "log carol two words")
    assert answer == PLEASE_LOGIN
    c2.expect(LOGGED_IN)
    # Publishers log in first; anything else before is answered as a
    # consumer's wrong first line is.
    p = b.publisher()
    p.send_json({"type": "PUB", "topic": "alice/j", "msg": 1})
    p.expect(PLEASE_LOGIN)
    p.send_line("log Alice secret")
    p.expect(LOGGED_IN)
    p.publish("alice/j", "hello")
    got = c.read_json()
    assert got["topic"] == "alice/j" and got["msg"] == "hello", got
    bad, answer = json_login(b.publisher_port, "log bob wrong")
    assert answer == "ERROR not authorized"
    bad.expect_closed()
    # login_attempts lines that are not a login: closed, a notice.
    p = b.publisher()
    for i in range(4):
        p.send_line("hello %d" % i)
        p.expect(PLEASE_LOGIN)
    p.send_line("hello 4")
    p.expect_closed(allow=(PLEASE_LOGIN,))
    wait_for(lambda: re.search(r"notice: client .*: closed: too many failed logins$",
                               b.log_text(), re.M), 10, "the close at notice in the log")


def test_anonymous_json_publishers_with_a_password_file(mqtt_factory, tmp_path):
    """allow_anonymous true: a publisher may log in, or not."""
    b = auth_broker(mqtt_factory, tmp_path, allow_anonymous="true")
    b.publisher().publish("anon/t", "as today")
    p = b.publisher()
    p.send_line("log bob hunter2")
    p.expect(LOGGED_IN)
    p.publish("anon/t", "as bob")


def test_without_a_password_file_nothing_changes(mqtt_factory):
    b = mqtt_factory()
    c = JsonClient(b.consumer_port)
    c.expect(PLEASE_LOGIN)
    c.send_line("log alice some password")      # three words: not a login, as before
    c.expect(PLEASE_LOGIN)
    c.send_line("log alice")
    c.expect(LOGGED_IN)
    p = b.publisher()
    p.publish("t", "x")                          # no greeting, no login
    assert connack(b.mqtt_port, "anyone", "anything")[0] == 0


# ---------------------------------------------------------------- anonymous clients

def test_anonymous_clients_are_refused_off_loopback(mqtt_factory):
    b = mqtt_factory(start=False)
    b.bind = "0.0.0.0"
    b.start()
    assert "anonymous clients are refused: bind_address 0.0.0.0 is not on a loopback " \
        "address and allow_anonymous is not set" in b.log_text(), b.log_tail()
    refused(b.mqtt_port, 5)
    refused(b.mqtt_port, 5, user="alice", password="x")  # no password file checks it
    c = JsonClient(b.consumer_port)
    c.expect(PLEASE_LOGIN)
    c.send_line("log alice")
    c.expect("ERROR not authorized")
    c.expect_closed()
    JsonClient(b.publisher_port).expect_closed(allow=("ERROR not authorized",))
    assert re.search(r"client 127\.0\.0\.1:\d+: anonymous client refused", b.log_text())


def test_allow_anonymous_true_lets_them_in_off_loopback(mqtt_factory):
    b = mqtt_factory({"allow_anonymous": "true"}, start=False)
    b.bind = "0.0.0.0"
    b.start()
    assert "anonymous clients are refused" not in b.log_text()
    rc, c = connack(b.mqtt_port)
    assert rc == 0
    b.publisher().publish("t", "x")


def test_a_reload_keeps_anonymous_clients_out_while_a_public_listener_is_open(mqtt_factory):
    """The file no longer has its listener on 0.0.0.0, which stays open
    until the next restart: anonymous clients stay refused.  Then
    allow_anonymous true lets them in at once, and the log says so."""
    b, (public,) = start_with_listeners(mqtt_factory, [("mqtt", [])], address="0.0.0.0")
    refused(public, 5)
    b.conf_text = ""
    text = b.reload()
    assert "listener blocks added or removed" in text, text
    refused(public, 5)
    refused(b.mqtt_port, 5)
    text = b.reload({"allow_anonymous": "true"})
    assert "reload: anonymous clients are now let in" in text, text
    assert connack(public)[0] == 0


# ---------------------------------------------------------------- ACL, MQTT

def logged_in(b, user, client_id=None, **kw):
    rc, c = connack(b.mqtt_port, user, USERS[user], client_id=client_id or user, **kw)
    assert rc == 0
    return c


def subscribers(b, topic):
    """Subscribers the topic's topicd has (it runs: someone is attached)."""
    return b.topicd_status(topic)["subs"]


def only_extra_reaches(bob, alice, gone, payload):
    """After EXTRA_ACL: bob publishes to gone, which alice may no longer
    read, then to extra/e; alice gets extra/e only."""
    bob.publish(gone, b"not for alice", qos=1)
    bob.publish("extra/e", payload, qos=1)
    p = alice.wait_packet(lambda p: p.type == PUBLISH, what="extra/e")
    assert (p.topic, p.payload) == ("extra/e", payload)
    alice.send(ack_packet(PUBACK, p.pid))
    alice.expect_silence(QUIET)


def test_acl_on_mqtt_subscribe_publish_and_delivery(mqtt_factory, tmp_path):
    b = auth_broker(mqtt_factory, tmp_path, acl=ACL, allow_anonymous="true")
    alice, bob = logged_in(b, "alice"), logged_in(b, "bob")
    assert alice.subscribe([("alice/#", 1), ("bob/#", 1), ("public/#", 1),
                            ("users/alice/#", 1), ("users/bob/#", 1)]) == \
        [1, SUBACK_FAILURE, 1, 1, SUBACK_FAILURE]
    assert bob.subscribe([("#", 1)]) == [1]
    # A denied publish is acknowledged and dropped.
    alice.publish("bob/x", b"no", qos=1)
    alice.publish("clients/bob/status", b"no", qos=2)
    alice.publish("clients/alice/status", b"yes", qos=1)      # pattern %c
    bob.publish("alice/secret", b"deny wins", qos=1)
    bob.publish("alice/a", b"for alice", qos=1)
    got = alice.wait_packet(lambda p: p.type == PUBLISH, what="alice/a")
    assert (got.topic, got.payload) == ("alice/a", b"for alice")
    alice.send(ack_packet(PUBACK, got.pid))
    seen = bob.wait_packet(lambda p: p.type == PUBLISH and p.topic == "clients/alice/status",
                           what="clients/alice/status")
    assert seen.payload == b"yes"
    assert [p.topic for p in bob.publishes() if p.topic.startswith(("bob/", "clients/bob"))] \
        == [], "a denied publish was delivered"
    # alice is not attached where she may not read: the deny wins over alice/#.
    assert subscribers(b, "alice/secret") == 1
    assert subscribers(b, "alice/a") == 2
    alice.expect_silence(QUIET)
    assert sys_value(b.mqtt_port, "alice", "secret", "$SYS/broker/acl/publishes_denied") == 2
    assert sys_value(b.mqtt_port, "alice", "secret", "$SYS/broker/acl/subscribes_denied") == 2


def test_acl_on_shared_subscriptions(mqtt_factory, tmp_path):
    """A member of a group on $share/GROUP/# gets only what it may read:
    topics that exist when it subscribes, topics created later, and, after
    a reload of the ACL, no longer a topic it may not read any more."""
    b = auth_broker(mqtt_factory, tmp_path, acl=ACL)
    bob = logged_in(b, "bob")
    bob.publish("private/before", b"exists", qos=1)
    bob.publish("public/before", b"exists", qos=1)
    alice = logged_in(b, "alice")
    assert alice.subscribe([("$share/g/#", 1)]) == [1]
    for topic in ("private/before", "private/after", "alice/secret", "public/before",
                  "public/after"):
        bob.publish(topic, topic.encode(), qos=1)
    got = []
    while len(got) < 2:
        p = alice.wait_packet(lambda p: p.type == PUBLISH, what="public/before and after")
        got.append(p.topic)
        alice.send(ack_packet(PUBACK, p.pid))
    assert sorted(got) == ["public/after", "public/before"], got
    alice.expect_silence(QUIET)
    assert subscribers(b, "private/after") == 0, "alice joined a group where she may not read"
    # alice may no longer read public/#: she leaves the group there.
    (tmp_path / "acl").write_text(EXTRA_ACL)
    assert "the ACL changed" in b.reload()
    only_extra_reaches(bob, alice, "public/before", b"for alice")


def test_acl_wildcard_gets_only_readable_retained_messages_of_cold_topics(mqtt_factory,
                                                                         tmp_path):
    b = auth_broker(mqtt_factory, tmp_path, acl=ACL, topicd_idle_timeout=1)
    bob = logged_in(b, "bob")
    for topic in ("public/r", "private/r", "alice/r", "alice/secret"):
        bob.publish(topic, topic.encode(), qos=1, retain=True)
    bob.disconnect()
    # Every topic goes cold: retained messages stay in their stores.
    wait_for(lambda: not b.topicds(), 15, "every topicd to stop (cold topics)")
    alice = logged_in(b, "alice")
    assert alice.subscribe([("#", 1)]) == [1]
    got = {}
    while len(got) < 2:
        p = alice.wait_packet(lambda p: p.type == PUBLISH, what="retained messages")
        assert p.retain, p
        got[p.topic] = p.payload
        alice.send(ack_packet(PUBACK, p.pid))
    assert got == {"public/r": b"public/r", "alice/r": b"alice/r"}, got
    alice.expect_silence(QUIET)
    # Anonymous: the lines before any user.
    anon = RawClient(b.mqtt_port, name="anon")
    assert anon.connect("anon").rc == 0
    assert anon.subscribe([("+/r", 0), ("alice/#", 0)]) == [0, SUBACK_FAILURE]
    p = anon.wait_packet(lambda p: p.type == PUBLISH, what="public/r")
    assert p.topic == "public/r"
    anon.expect_silence(QUIET)


def test_acl_checks_wills_when_published(mqtt_factory, tmp_path):
    b = auth_broker(mqtt_factory, tmp_path, acl=ACL, log_type="information")
    bob = logged_in(b, "bob")
    assert bob.subscribe([("#", 1)]) == [1]
    denied = logged_in(b, "alice", client_id="w1", will=("bob/will", b"no", 1, False))
    allowed = logged_in(b, "alice", client_id="w2", will=("alice/will", b"yes", 1, False))
    denied.close(reset=True)
    wait_for(lambda: "will to bob/will not published: denied by the ACL" in b.log_text(),
             10, "the denied will's log line")
    allowed.close(reset=True)
    p = bob.wait_packet(lambda p: p.type == PUBLISH, what="the allowed will")
    assert (p.topic, p.payload) == ("alice/will", b"yes")
    bob.send(ack_packet(PUBACK, p.pid))
    bob.expect_silence(QUIET)


def test_acl_sys_and_dead_letters(mqtt_factory, tmp_path):
    b = auth_broker(mqtt_factory, tmp_path, acl=ACL, sys_interval=1)
    bob, alice, ops = logged_in(b, "bob"), logged_in(b, "alice"), logged_in(b, "ops")
    assert bob.subscribe([("$SYS/#", 0), ("$DLQ", 1)]) == [SUBACK_FAILURE, SUBACK_FAILURE]
    assert alice.subscribe([("$SYS/#", 0), ("$DLQ", 1)]) == [0, SUBACK_FAILURE]
    assert ops.subscribe([("$SYS/#", 0), ("$DLQ", 1)]) == [0, 1]
    # alice may read only $SYS/broker/acl/...; every tick sends her no more.
    for _ in range(2):
        p = alice.wait_packet(lambda p: p.type == PUBLISH and not p.retain, timeout=5,
                              what="a $SYS tick")
        assert p.topic.startswith("$SYS/broker/acl/"), p.topic
    assert all(p.topic.startswith("$SYS/broker/acl/") for p in alice.publishes())
    ops.wait_packet(lambda p: p.type == PUBLISH and p.topic == "$SYS/broker/uptime",
                    what="$SYS/broker/uptime")
    # A dead letter reaches ops only.
    pub = b.publisher()
    pub.send_line("log bob hunter2")
    pub.expect(LOGGED_IN)
    pub.send_line("not json")
    pub.expect("INVALID JSON")
    d = ops.wait_packet(lambda p: p.type == PUBLISH and p.topic == "$DLQ", what="$DLQ")
    assert b'"reason":"invalid_json"' in d.payload
    assert subscribers(b, "$DLQ") == 1


def test_acl_for_an_offline_persistent_session_across_a_restart(mqtt_factory, tmp_path):
    """Topics created while a persistent session is away get its cursor
    only where its user may read: the session keeps its user name."""
    b = auth_broker(mqtt_factory, tmp_path, acl=ACL)
    alice = logged_in(b, "alice", client_id="away", clean=False)
    assert alice.subscribe([("#", 1)]) == [1]
    alice.disconnect()
    alice.expect_closed()
    b.restart()
    bob = logged_in(b, "bob")
    bob.publish("alice/new", b"kept for alice", qos=1)
    bob.publish("private/new", b"not for alice", qos=1)
    assert subscribers(b, "alice/new") == 1
    assert subscribers(b, "private/new") == 0
    alice = logged_in(b, "alice", client_id="away", clean=False)
    p = alice.wait_packet(lambda p: p.type == PUBLISH, what="alice/new")
    assert (p.topic, p.payload) == ("alice/new", b"kept for alice")
    alice.send(ack_packet(PUBACK, p.pid))
    alice.expect_silence(QUIET)


# ---------------------------------------------------------------- ACL, JSON-lines

def test_acl_on_json_lines(mqtt_factory, tmp_path):
    b = auth_broker(mqtt_factory, tmp_path, acl=ACL, log_type="information")
    ops = logged_in(b, "ops")
    assert ops.subscribe([("$DLQ", 1)]) == [1]
    c, answer = json_login(b.consumer_port, "log alice secret")
    assert answer == PLEASE_LOGIN
    c.expect(LOGGED_IN)
    for topic in ("bob/x", "$DLQ", "alice/secret"):
        c.send_json({"type": "SUB", "topic": topic})
        c.expect("UNKNOWN COMMAND")              # the connection stays open
    c.send_json({"type": "SUB", "topic": "#"})
    c.expect("OK")
    p = b.publisher()
    p.send_line("log alice secret")
    p.expect(LOGGED_IN)
    p.send_json({"type": "PUB", "topic": "bob/x", "msg": "no"})
    p.expect("UNKNOWN COMMAND")
    pb = b.publisher()
    pb.send_line("log bob hunter2")
    pb.expect(LOGGED_IN)
    pb.publish("private/x", "not for alice")
    pb.publish("alice/secret", "not for alice")
    p.publish("alice/x", "for alice")
    got = c.read_json()
    assert (got["topic"], got["msg"]) == ("alice/x", "for alice"), got
    c.send_json({"type": "PUBREC", "msgId": got["msgId"], "topic": "alice/x"})
    c.expect("OK")
    rel = c.read_json()
    assert rel["type"] == "PUBREL"
    c.send_json({"type": "PUBCOMP", "msgId": got["msgId"], "topic": "alice/x"})
    c.expect("OK")
    c.expect_silence(QUIET)
    assert "client 127.0.0.1" in b.log_text() and "PUB bob/x denied by the ACL" in b.log_text()
    # Nothing of it went to the dead-letter topic.
    ops.expect_silence(QUIET)


# ---------------------------------------------------------------- SIGHUP

def test_sighup_reloads_passwords_and_acl(mqtt_factory, tmp_path):
    b = auth_broker(mqtt_factory, tmp_path, acl=ACL)
    alice = logged_in(b, "alice", client_id="keeps")
    assert alice.subscribe([("#", 1)]) == [1]
    refused(b.mqtt_port, 4, user="dave", password="new")
    bob = logged_in(b, "bob")
    bob.publish("public/p", b"before", qos=1)
    bob.publish("extra/e", b"not yet", qos=1)
    p = alice.wait_packet(lambda p: p.type == PUBLISH, what="public/p")
    assert (p.topic, p.payload) == ("public/p", b"before")
    alice.send(ack_packet(PUBACK, p.pid))
    # A new user, and alice may read extra/# from now on, but not public/#.
    mosquitto_passwd(tmp_path / "passwd", "dave", "new")
    (tmp_path / "acl").write_text(EXTRA_ACL)
    log = b.reload()
    assert "the ACL changed" in log, log
    assert re.search(r"notice: reload: the password file %s changed: \d+ users; logins from "
                     r"now on are checked against it" % re.escape(str(tmp_path / "passwd")),
                     log), log
    rc, dave = connack(b.mqtt_port, "dave", "new", client_id="dave")
    assert rc == 0
    only_extra_reaches(bob, alice, "public/p", b"now")
    assert subscribers(b, "public/p") == 0
    # A bad file changes nothing: FILE:LINE, and the old files stay; the
    # summary names the file that has the errors, not broker.conf.
    good = (tmp_path / "passwd").read_text()
    (tmp_path / "passwd").write_text("dave\n")
    log = refused_reload(b)
    assert "%s:1: expected USER:HASH" % (tmp_path / "passwd") in log, log
    assert "reload: %s has errors; keeping" % (tmp_path / "passwd") in log, log
    assert connack(b.mqtt_port, "dave", "new", client_id="dave2")[0] == 0
    # Two bad files: both named.
    (tmp_path / "acl").write_text(EXTRA_ACL + "topic sometimes x\n")
    log = refused_reload(b)
    assert "reload: %s and %s have errors; keeping" % (tmp_path / "passwd", tmp_path / "acl") \
        in log, log
    (tmp_path / "passwd").write_text(good)
    log = refused_reload(b)
    acl_line = len(EXTRA_ACL.splitlines()) + 1
    assert "%s:%d: unknown access 'sometimes'" % (tmp_path / "acl", acl_line) in log, log
    assert "reload: %s has errors; keeping" % (tmp_path / "acl") in log, log
    assert "%s has errors" % (b.workdir / "broker.conf") not in log, log
    only_extra_reaches(bob, alice, "public/p", b"still")     # the ACL in force is the last good one
    # The files of the last good reload again: nothing changed, nothing said.
    (tmp_path / "acl").write_text(EXTRA_ACL)
    log = b.reload()
    assert "changed" not in log.replace("0 settings changed", ""), log
    alice.ping()                                 # still connected all along


def refused_reload(b):
    """SIGHUP with a bad file: what the master logged, up to its refusal."""
    start = len(b.log_text())
    b.signal(signal.SIGHUP)
    m = wait_for(lambda: re.search(r"reload: .* errors; keeping the running configuration\n",
                                   b.log_text()[start:]), 10, "the refused reload")
    return b.log_text()[start:start + m.end()]


# ---------------------------------------------------------------- brute force

def timed_failure(port, i):
    c = RawClient(port, name="guess%d" % i, timeout=30)
    t0 = time.monotonic()
    ack = c.connect("guess%d" % i, username="alice", password="guess%d" % i, timeout=30)
    took = time.monotonic() - t0
    assert ack.rc == 4
    c.expect_closed()
    return took


def test_failed_logins_are_answered_later_and_later(mqtt_factory, tmp_path):
    b = auth_broker(mqtt_factory, tmp_path)
    times = [timed_failure(b.mqtt_port, i) for i in range(5)]
    # 0.1 s doubling: the 5th waits 1.6 s.
    assert times[0] < 1.0 and times[4] >= 1.5 and times[4] > times[0] + 1.0, times
    # The event loop is not held meanwhile: a right login is answered at once.
    slow = RawClient(b.mqtt_port, name="slow", timeout=30)
    slow.send(connect_packet("slow", username="alice", password="wrong"))
    t0 = time.monotonic()
    rc, ok = connack(b.mqtt_port, "alice", "secret", client_id="quick")
    assert rc == 0 and time.monotonic() - t0 < 1.0
    assert slow.expect(CONNACK, timeout=30).rc == 4
    # JSON-lines are slowed down by the same count.
    c = JsonClient(b.consumer_port, timeout=30)
    c.expect(PLEASE_LOGIN)
    t0 = time.monotonic()
    c.send_line("log alice nope")
    c.expect("ERROR not authorized", timeout=30)
    assert time.monotonic() - t0 >= 3.0
    assert sys_value(b.mqtt_port, "alice", "secret", "$SYS/broker/auth/logins_failed") == 7


# ---------------------------------------------------------------- broker -t

def check(tmp_path, conf_text):
    conf = tmp_path / "check.conf"
    conf.write_text(conf_text)
    add_root_user(conf)
    return subprocess.run([str(broker_binary()), "-t", "-c", str(conf)], capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=10, cwd=str(tmp_path))


def test_check_reports_bad_password_and_acl_files(tmp_path):
    (tmp_path / "pw").write_text("# users\nalice:plain\nbob\n")
    (tmp_path / "acl").write_text("topic read a/#\nuser\ntopic sometimes x\n")
    res = check(tmp_path, "password_file pw\nacl_file acl\nallow_anonymous maybe\n")
    err = res.stderr.decode()
    assert res.returncode == 2, err
    # Every error at once: the file's and those of the files it names.
    assert "check.conf:3: bad value 'maybe' for key 'allow_anonymous'" in err, err
    for where in ("pw:2: user alice: not a $6$ or $7$ password hash", "pw:3: expected USER:HASH",
                  "acl:2: user without a name", "acl:3: unknown access 'sometimes'"):
        assert "%s/%s" % (tmp_path, where) in err, err
    errors = [line for line in err.splitlines() if "warning:" not in line]
    assert len(errors) == 5, err


def test_check_accepts_good_files_and_warns_of_a_readable_password_file(tmp_path):
    write_passwords(tmp_path / "pw")
    (tmp_path / "acl").write_text(ACL)
    res = check(tmp_path, "password_file pw\nacl_file acl\nallow_anonymous false\n")
    assert res.returncode == 0, res.stderr.decode()
    assert b"readable by every user" not in res.stderr
    os.chmod(tmp_path / "pw", 0o644)
    res = check(tmp_path, "password_file pw\n")
    assert res.returncode == 0
    assert "pw: the password file is readable by every user of this host: chmod o-r" in \
        res.stderr.decode(), res.stderr.decode()


def test_a_readable_password_file_is_warned_of_once_per_start_and_reload(mqtt_factory,
                                                                          tmp_path):
    """The file is read twice at a SIGHUP (checked, then loaded), and a
    block's file twice at start with per_listener_settings: one warning
    each time all the same."""
    pw = write_passwords(tmp_path / "passwd")
    block_pw = write_passwords(tmp_path / "block-passwd")
    os.chmod(pw, 0o644)
    os.chmod(block_pw, 0o644)
    b, _ = start_with_listeners(mqtt_factory, [("mqtt", ["password_file %s" % block_pw])],
                                config={"per_listener_settings": "true", "password_file": pw})

    def warnings(path):
        return b.log_text().count("%s: the password file is readable by every user" % path)
    wait_for(lambda: "notice: started:" in b.log_text(), 10, "the start line")
    assert (warnings(pw), warnings(block_pw)) == (1, 1), b.log_tail()
    b.reload()
    assert (warnings(pw), warnings(block_pw)) == (2, 2), b.log_tail()
