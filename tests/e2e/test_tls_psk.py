"""TLS with pre-shared keys (TLS-PSK): a listener block with psk_hint,
the keys in psk_file (IDENTITY:HEXKEY lines, mosquitto's format).

Python's ssl module speaks no TLS-PSK: the clients are mosquitto_pub and
mosquitto_sub (--psk, --psk-identity) and openssl s_client (-psk,
-psk_identity); Python's ssl and raw sockets only for clients the broker
must refuse.  mosquitto's --tls-version is the oldest version it takes:
the TLS 1.2 clients are held to it by an OpenSSL configuration file
(OPENSSL_CONF, MaxProtocol), given to them alone.

- a listener with keys only: every QoS over TLS 1.3 and TLS 1.2;
- a wrong key, an unknown identity, a client without a key, plain text:
  refused, each logged;
- use_identity_as_username: the identity is the user the ACL knows, the
  CONNECT's user name and password are not looked at;
- without it, the password file still decides at CONNECT;
- a listener with a certificate and keys: clients of both kinds;
- SIGHUP re-reads psk_file: an identity taken out is refused at once (the
  listener hands out no session to resume), a new one gets in, a broken
  file leaves the old keys in place;
- per_listener_settings: each block its own psk_file;
- broker -t on what cannot work, and the warning about a file every user
  may read;
- JSON-lines over TLS-PSK with openssl s_client;
- the user is the identity whose key the handshake used, and an identity
  with a NUL byte is refused (tls13_psk_raw.py: a client that sends any
  identities, ages and binders)."""

import contextlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

from broker_harness import (HOST, LOGGED_IN, PLEASE_LOGIN, HarnessError, add_root_user,
                            broker_binary, free_ports, start_with_listeners, wait_for)
from mqtt_helpers import PUBACK, PUBLISH, MosquittoSub, RawClient, ack_packet, connect_packet
from test_auth import write_passwords
from test_tls import Pki, log_since, make_ca, make_cert, sys_value
from tls13_psk_raw import mqtt_connect as mqtt_connect_psk

KEYS = {
    "alice": "00112233445566778899aabbccddeeff",
    "bob": "b0b0b0b0b0b0b0b0b0b0b0b0",
    "carol": "CA" * 32,                   # upper case, 64 bytes
    "dave": "da7e" * 8,
    "ops:eu": "0e" * 20,                  # the line is split at its last colon
}
WRONG = "00112233445566778899aabbccddeefe"     # alice's, one bit off
VERSIONS = ["tlsv1.3", "tlsv1.2"]
# What OpenSSL says of a wrong key: TLS 1.3 checks the PSK binder of the
# ClientHello, TLS 1.2 the client's Finished.
WRONG_KEY_REASON = {"tlsv1.3": "binder does not verify",
                    "tlsv1.2": "decryption failed or bad record mac"}
CLIENT_TIMEOUT = 10.0   # one mosquitto_pub or s_client run
QUIET = 0.3             # seconds over which an absence is watched


# ---------------------------------------------------------------- files

def write_psk(path, identities, keys=KEYS, mode=0o600):
    """A psk_file of the identities named (a comment and a blank line
    first, as a person writes one)."""
    path.write_text("# pre-shared keys, IDENTITY:HEXKEY\n\n"
                    + "".join("%s:%s\n" % (i, keys[i]) for i in identities))
    os.chmod(path, mode)
    return path


@pytest.fixture(scope="module")
def openssl_confs(tmp_path_factory):
    """OpenSSL configuration files for a client process (OPENSSL_CONF):
    "tlsv1.2", TLS 1.2 at most; "sha256", TLS 1.3 cipher suites of SHA-256
    only (the hash of a TLS 1.3 external PSK of OpenSSL's PSK callbacks)."""
    d = tmp_path_factory.mktemp("openssl")
    head = ("openssl_conf = default_conf\n[default_conf]\nssl_conf = ssl_sect\n"
            "[ssl_sect]\nsystem_default = system_default_sect\n[system_default_sect]\n")
    confs = {"tlsv1.2": "MaxProtocol = TLSv1.2\n",
             "sha256": "Ciphersuites = TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256\n"}
    for name, text in confs.items():
        (d / (name + ".cnf")).write_text(head + text)
    return {name: str(d / (name + ".cnf")) for name in confs}


@pytest.fixture(scope="module")
def server_pki(tmp_path_factory):
    """A CA and a server certificate for 127.0.0.1."""
    d = tmp_path_factory.mktemp("psk-pki")
    make_ca(d, "ca", "PSK Test CA")
    make_cert(d, "server", "/CN=localhost", "ca", "5001", server=True)
    return Pki(d)


def cert_lines(pki):
    return ["certfile " + pki.path("server.crt"), "keyfile " + pki.path("server.key")]


# ---------------------------------------------------------------- clients

def psk_args(identity, key=None, version="tlsv1.3"):
    """mosquitto client arguments for a key (by default the identity's).
    TLS 1.2 takes its PSK ciphers only: offered others as well, a listener
    with a certificate would pick one of those (as mosquitto's would)."""
    args = ["--psk", key if key is not None else KEYS[identity], "--psk-identity", identity]
    if version == "tlsv1.3":
        args += ["--tls-version", "tlsv1.3"]
    else:
        args += ["--ciphers", "PSK"]
    return args


def client_env(confs, version="tlsv1.3", conf=None):
    """The environment of a client process: OPENSSL_CONF holds TLS 1.2
    clients to it (or conf names another file of openssl_confs)."""
    env = dict(os.environ)
    env.pop("OPENSSL_CONF", None)
    name = conf or ("tlsv1.2" if version == "tlsv1.2" else None)
    if name is not None:
        env["OPENSSL_CONF"] = confs[name]
    return env


def pub(port, topic, message, args, env, qos=1, client_id=None):
    """Runs mosquitto_pub -d once; returns (exit status, its output)."""
    cmd = ["mosquitto_pub", "-d", "-h", HOST, "-p", str(port), "-t", topic, "-m", message,
           "-q", str(qos)] + (["-i", client_id] if client_id else []) + list(args)
    try:
        res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, env=env,
                             timeout=CLIENT_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        raise HarnessError("mosquitto_pub did not finish within %.0f s: %s; output %r"
                           % (CLIENT_TIMEOUT, " ".join(cmd), e.output)) from None
    return res.returncode, (res.stdout + res.stderr).decode("utf-8", "replace")


def pub_ok(port, topic, message, args, env, qos=1, client_id=None):
    rc, out = pub(port, topic, message, args, env, qos, client_id)
    assert rc == 0 and "received CONNACK (0)" in out, \
        "mosquitto_pub %s %r exited %d:\n%s" % (topic, message, rc, out)


def pub_refused_at_handshake(port, topic, message, args, env):
    """A publisher whose TLS handshake fails: no CONNACK (mosquitto_pub
    says `sending CONNECT` before the handshake, which it does lazily)."""
    rc, out = pub(port, topic, message, args, env)
    assert rc != 0, "mosquitto_pub %s got in:\n%s" % (args, out)
    assert "CONNACK" not in out and "A TLS error occurred" in out, out
    return out


def pub_refused_at_connect(port, args, env, rc_expected, text):
    """A publisher whose handshake succeeds and whose CONNECT is answered
    with CONNACK rc_expected (mosquitto_pub says `text`)."""
    rc, out = pub(port, "psk/refused", "refused", args, env)
    assert rc != 0, "mosquitto_pub %s got in:\n%s" % (args, out)
    assert "received CONNACK (%d)" % rc_expected in out and text in out, out
    assert "sending PUBLISH" not in out, out


def psk_sub(port, topics, args, env, qos=1):
    """A mosquitto_sub (with env) that has its SUBACK; stopped in teardown."""
    with pytest.MonkeyPatch.context() as mp:       # MosquittoSub takes no env
        if "OPENSSL_CONF" in env:
            mp.setenv("OPENSSL_CONF", env["OPENSSL_CONF"])
        else:
            mp.delenv("OPENSSL_CONF", raising=False)
        sub = MosquittoSub(port, topics, qos=qos, args=args)
    sub.wait_subscribed()
    return sub


def got(sub, n):
    """The first n messages of a mosquitto_sub as (topic, qos, payload)."""
    return [(m.topic, m.qos, m.payload.decode()) for m in sub.wait_messages(n)]


def connected_rx(version, identity):
    """The log line of a connection made with the identity's key."""
    cipher = r"TLS_\S+_SHA256" if version == "tlsv1.3" else r"\S*PSK\S*"
    return (r"information: client 127\.0\.0\.1:\d+: connected \(MQTT over %s %s, "
            r"pre-shared key identity %s\)$" % (re.escape(version.replace("tlsv", "TLSv")),
                                                cipher, re.escape(identity)))


def unknown_rx(port, identity):
    return (r"notice: client 127\.0\.0\.1:\d+: TLS handshake failed on port %d: unknown "
            r"pre-shared key identity %s$" % (port, re.escape(identity)))


def wrong_key_rx(port, identity, version):
    return (r"notice: client 127\.0\.0\.1:\d+: TLS handshake failed on port %d: %s "
            r"\(pre-shared key identity %s\)$" % (port, WRONG_KEY_REASON[version],
                                                  re.escape(identity)))


class SClient:
    """openssl s_client -quiet with a pre-shared key: a line client over
    TLS (what telnet is to a plain port).  Lines are read by a thread."""

    def __init__(self, port, identity, key=None, version="tlsv1.3"):
        flag = "-tls1_3" if version == "tlsv1.3" else "-tls1_2"
        self.cmd = ["openssl", "s_client", "-quiet", "-connect", "%s:%d" % (HOST, port),
                    "-psk", key if key is not None else KEYS[identity],
                    "-psk_identity", identity, flag]
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.lines = []
        self.eof = False
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\r\n"))
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def send(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def wait_lines(self, n, timeout=CLIENT_TIMEOUT):
        """The first n lines, once they have come."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.lines) < n:
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    raise HarnessError("s_client: %s waiting for %d lines; lines %r" % (
                        "ended" if self.eof else "timed out", n, self.lines))
                self.cond.wait(min(left, 0.1))
            return list(self.lines[:n])

    def wait_eof(self, timeout=CLIENT_TIMEOUT):
        with self.cond:
            self.cond.wait_for(lambda: self.eof, timeout)
            assert self.eof, "s_client still connected; lines %r" % self.lines

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        self.reader.join(5)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(OSError):
                f.close()


@pytest.fixture
def sclients():
    """make(...) starts an SClient; each is killed by pid in teardown."""
    made = []

    def make(*args, **kw):
        c = SClient(*args, **kw)
        made.append(c)
        return c
    try:
        yield make
    finally:
        for c in made:
            c.close()


def s_client_once(port, identity, key=None, version="tlsv1.2", extra=()):
    """A handshake with openssl s_client, its input at once at its end:
    (exit status, output)."""
    flag = "-tls1_3" if version == "tlsv1.3" else "-tls1_2"
    res = subprocess.run(["openssl", "s_client", "-connect", "%s:%d" % (HOST, port), "-psk",
                          key if key is not None else KEYS[identity], "-psk_identity",
                          identity, flag] + list(extra),
                         stdin=subprocess.DEVNULL, capture_output=True, timeout=CLIENT_TIMEOUT)
    return res.returncode, (res.stdout + res.stderr).decode("utf-8", "replace")


# ---------------------------------------------------------------- 1. every QoS

@pytest.mark.parametrize("version", VERSIONS)
def test_psk_only_listener_carries_every_qos(mqtt_factory, tmp_path, openssl_confs, version):
    """A listener with keys and no certificate: a subscriber and a
    publisher, each with its own identity, exchange messages at QoS 0, 1
    and 2, message by message; the log names the identity of each."""
    psk = write_psk(tmp_path / "psk", ["alice", "bob"])
    b, (port,) = start_with_listeners(mqtt_factory, [("mqtt", ["psk_hint hint-one"])],
                                      config={"psk_file": psk, "log_type": "information"})
    assert re.search(r"notice: listening on 127\.0\.0\.1 port %d \(MQTT over TLS, "
                     r"pre-shared keys \(hint hint-one\)\)$" % port, b.log_text(), re.M), \
        b.log_tail()
    assert "readable by every user" not in b.log_text()       # it is 0600
    env = client_env(openssl_confs, version)
    sub = psk_sub(port, ["psk/#"], psk_args("bob", version=version), env, qos=2)
    expected = []
    for qos in (0, 1, 2):
        for i in range(2):
            msg = "qos %d #%d over %s" % (qos, i, version)
            pub_ok(port, "psk/q%d" % qos, msg, psk_args("alice", version=version), env, qos=qos)
            expected.append(("psk/q%d" % qos, qos, msg))
    arrived = got(sub, len(expected))
    # Each topic keeps its order; across topics (and QoS) there is none.
    for topic in ("psk/q0", "psk/q1", "psk/q2"):
        assert [m for m in arrived if m[0] == topic] == [m for m in expected if m[0] == topic], \
            arrived
    assert len(arrived) == len(expected), arrived
    log_since(b, 0, connected_rx(version, "bob"))
    log_since(b, 0, r"(?s)(%s.*){6}" % connected_rx(version, "alice").rstrip("$"))
    if version == "tlsv1.2":
        # The hint goes in the ServerKeyExchange (TLS 1.3 has no place for it).
        rc, out = s_client_once(port, "alice", extra=["-debug"])
        assert rc == 0 and "Received PSK identity hint 'hint-one'" in out, out


# ---------------------------------------------------------------- 2. refusals

@pytest.mark.parametrize("version", VERSIONS)
def test_wrong_keys_and_unknown_identities_are_refused(mqtt_factory, tmp_path, openssl_confs,
                                                       version):
    """A wrong key and an identity the file does not have fail the
    handshake (with another identity's key too), and so do a TLS client
    without a key and plain text; each is logged, counted, and nothing
    they sent is delivered."""
    psk = write_psk(tmp_path / "psk", ["alice", "bob"])
    b, (port,) = start_with_listeners(mqtt_factory, [("mqtt", ["psk_hint hint-two"])],
                                      config={"psk_file": psk, "log_type": "information"})
    env = client_env(openssl_confs, version)
    sub = psk_sub(port, ["refused/#"], psk_args("alice", version=version), env)
    start = len(b.log_text())
    pub_refused_at_handshake(port, "refused/t", "wrong key",
                             psk_args("alice", WRONG, version), env)
    log_since(b, start, wrong_key_rx(port, "alice", version))
    pub_refused_at_handshake(port, "refused/t", "bob's key, bob's identity not",
                             psk_args("mallory", KEYS["bob"], version), env)
    log_since(b, start, unknown_rx(port, "mallory"))
    # An identity that differs from a known one only in case is unknown.
    pub_refused_at_handshake(port, "refused/t", "Alice", psk_args("Alice", KEYS["alice"],
                                                                  version), env)
    log_since(b, start, unknown_rx(port, "Alice"))

    # A TLS client without a key: the listener has no certificate to offer.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = ctx.minimum_version = (ssl.TLSVersion.TLSv1_3 if version == "tlsv1.3"
                                                 else ssl.TLSVersion.TLSv1_2)
    with socket.create_connection((HOST, port), timeout=5) as raw:
        with pytest.raises(ssl.SSLError, match="handshake failure"):
            ctx.wrap_socket(raw, server_hostname=HOST)
    log_since(b, start, r"notice: client 127\.0\.0\.1:\d+: TLS handshake failed on port %d: "
                        r"%s$" % (port, "no suitable signature algorithm"
                                  if version == "tlsv1.3" else "no shared cipher"))
    # Plain MQTT on the port.
    with socket.create_connection((HOST, port), timeout=5) as s:
        s.sendall(connect_packet("plain"))
        s.settimeout(5)
        try:
            data = s.recv(1024)
        except ConnectionResetError:
            data = b""
        assert data == b"" or data.startswith(b"\x15"), data     # closed, or an alert
    log_since(b, start, r"notice: client 127\.0\.0\.1:\d+: plain text on TLS port %d: "
                        r"closed$" % port)
    assert sys_value(b, "$SYS/broker/tls/handshake_failures") == "5"

    # Bob with his key gets through; he is the only one the subscriber hears.
    pub_ok(port, "refused/t", "bob's", psk_args("bob", version=version), env)
    assert got(sub, 1) == [("refused/t", 1, "bob's")]
    log_since(b, start, connected_rx(version, "bob"))
    assert not re.search(r"connected \(.*identity (mallory|Alice)\)", b.log_text()), \
        b.log_tail()
    time.sleep(QUIET)                   # an absence, watched over a period
    assert len(sub.messages) == 1, sub.messages


# ---------------------------------------------------------------- 3. identity as user

ACL = """\
user alice
topic readwrite alice/#

user bob
topic read alice/#
"""


def test_identity_is_the_user_name_and_the_acl_applies(mqtt_factory, tmp_path, openssl_confs):
    """use_identity_as_username: the key's identity is the MQTT user, the
    CONNECT's user name and password are not looked at (a password file
    and allow_anonymous false notwithstanding).  alice may write alice/#,
    bob may only read it: his publish, though he names alice with her
    password, is acknowledged and dropped."""
    psk = write_psk(tmp_path / "psk", ["alice", "bob", "carol"])
    (tmp_path / "acl").write_text(ACL)
    pw = write_passwords(tmp_path / "passwd")        # alice:secret, bob:hunter2...
    b, (port,) = start_with_listeners(
        mqtt_factory, [("mqtt", ["psk_hint hint-three", "use_identity_as_username true"])],
        config={"psk_file": psk, "acl_file": tmp_path / "acl", "password_file": pw,
                "allow_anonymous": "false", "log_type": "information"})
    env = client_env(openssl_confs)
    # bob reads alice/#, without a user name of his own.
    sub = psk_sub(port, ["alice/#"], psk_args("bob") + ["-i", "bob-reader"], env)
    log_since(b, 0, r"information: client 127\.0\.0\.1:\d+ id bob-reader user bob: MQTT clean "
                    r"session")
    # bob writes, naming alice with her right password: no more rights.
    pub_ok(port, "alice/t", "from bob", psk_args("bob") + ["-u", "alice", "-P", "secret"], env,
           client_id="bob-writer")
    log_since(b, 0, r"information: client 127\.0\.0\.1:\d+ id bob-writer user bob: PUBLISH to "
                    r"alice/t denied by the ACL: acknowledged and dropped$")
    # carol, in the key file but not in the ACL, may not write there either.
    pub_ok(port, "alice/t", "from carol", psk_args("carol"), env, client_id="carol-writer")
    log_since(b, 0, r"id carol-writer user carol: PUBLISH to alice/t denied by the ACL")
    # alice, naming a user that does not exist with a wrong password, is alice.
    pub_ok(port, "alice/t", "from alice", psk_args("alice") + ["-u", "mallory", "-P", "wrong"],
           env, client_id="alice-writer")
    log_since(b, 0, r"information: client 127\.0\.0\.1:\d+ id alice-writer user alice: MQTT "
                    r"clean session")
    # The same topic, so the same order: had a refused one been stored, it
    # would have come first.
    assert got(sub, 1) == [("alice/t", 1, "from alice")]
    pub_ok(port, "alice/t", "again", psk_args("alice"), env, client_id="alice-again")
    assert got(sub, 2) == [("alice/t", 1, "from alice"), ("alice/t", 1, "again")]
    text = b.log_text()
    assert "mallory" not in text and "login failed" not in text, b.log_tail()


# ---------------------------------------------------------------- 4. passwords

def test_without_identity_as_user_the_password_file_decides(mqtt_factory, tmp_path,
                                                            openssl_confs):
    """Without use_identity_as_username a key only opens the TLS
    connection: the CONNECT's user name and password are checked against
    password_file (written by mosquitto_passwd -b), allow_anonymous false
    refuses a client that gives none, and the user is the CONNECT's, not
    the key's identity."""
    psk = write_psk(tmp_path / "psk", ["alice", "bob"])
    pw = write_passwords(tmp_path / "passwd")
    b, (port,) = start_with_listeners(mqtt_factory, [("mqtt", ["psk_hint hint-four"])],
                                      config={"psk_file": psk, "password_file": pw,
                                              "allow_anonymous": "false",
                                              "log_type": "information"})
    env = client_env(openssl_confs)
    sub = psk_sub(port, ["pw/#"], psk_args("bob") + ["-u", "bob", "-P", "hunter2",
                                                      "-i", "pw-reader"], env)
    log_since(b, 0, r"id pw-reader user bob: MQTT clean session")
    start = len(b.log_text())
    pub_refused_at_connect(port, psk_args("alice"), env, 5, "not authorised")
    log_since(b, start, r"notice: client 127\.0\.0\.1:\d+: anonymous client refused: "
                        r"allow_anonymous is off$")
    pub_refused_at_connect(port, psk_args("alice") + ["-u", "alice", "-P", "wrong"], env, 4,
                           "bad user name or password")
    log_since(b, start, r"login failed for user alice: wrong password or unknown user")
    pub_refused_at_connect(port, psk_args("alice") + ["-u", "alice"], env, 4,
                           "bad user name or password")
    log_since(b, start, r"login failed for user alice: no password")
    # The identity is no user name: alice's key with bob's login is bob.
    pub_ok(port, "pw/t", "bob with alice's key", psk_args("alice") + ["-u", "bob", "-P",
                                                                     "hunter2"],
           env, client_id="key-alice-user-bob")
    log_since(b, start, r"id key-alice-user-bob user bob: MQTT clean session")
    pub_ok(port, "pw/t", "alice", psk_args("alice") + ["-u", "alice", "-P", "secret"], env,
           client_id="alice-ok")
    assert got(sub, 2) == [("pw/t", 1, "bob with alice's key"), ("pw/t", 1, "alice")]
    assert "refused" not in [m.payload.decode() for m in sub.messages]


# ---------------------------------------------------------------- 5. certificate and keys

def test_a_listener_with_a_certificate_and_keys_takes_both(mqtt_factory, tmp_path, server_pki,
                                                          openssl_confs):
    """certfile, keyfile and psk_hint on one listener: a client that
    checks the certificate and one with a key (TLS 1.2, and TLS 1.3 with
    SHA-256 cipher suites) share its topics.  With use_identity_as_username
    a key's identity is the user, and a client with neither a key nor a
    certificate of its own is refused."""
    psk = write_psk(tmp_path / "psk", ["alice", "bob"])
    # Anonymous clients read mix/#; only alice writes there.
    (tmp_path / "acl").write_text("topic read mix/#\n\nuser alice\ntopic readwrite mix/#\n")
    b, (port, uid_port) = start_with_listeners(mqtt_factory, [
        ("mqtt", cert_lines(server_pki) + ["psk_hint hint-mixed"]),
        ("mqtt", cert_lines(server_pki) + ["psk_hint hint-uid",
                                           "use_identity_as_username true"])],
        config={"psk_file": psk, "acl_file": tmp_path / "acl", "allow_anonymous": "true",
                "log_type": "information"})
    assert re.search(r"listening on 127\.0\.0\.1 port %d \(MQTT over TLS, certificate "
                     r"CN=localhost, serial 5001, expires \S+, pre-shared keys \(hint "
                     r"hint-mixed\)\)$" % port, b.log_text(), re.M), b.log_tail()
    ca = ["--cafile", server_pki.path("ca.crt")]
    plain_env = client_env(openssl_confs)
    tls12 = client_env(openssl_confs, "tlsv1.2")
    sha256 = client_env(openssl_confs, conf="sha256")
    cert_sub = psk_sub(port, ["mix/#"], ca + ["-i", "cert-reader"], plain_env)
    key_sub = psk_sub(port, ["mix/#"], psk_args("bob", version="tlsv1.2") + ["-i", "key-reader"],
                      tls12)
    log_since(b, 0, r"information: client 127\.0\.0\.1:\d+: connected \(MQTT over TLSv1\.3 "
                    r"TLS_\w+\)$")
    log_since(b, 0, connected_rx("tlsv1.2", "bob"))
    # On the listener with use_identity_as_username, alice's key makes her
    # alice, who may write mix/#.
    pub_ok(uid_port, "mix/t", "key 1.2", psk_args("alice", version="tlsv1.2"), tls12,
           client_id="alice-12")
    pub_ok(uid_port, "mix/t", "key 1.3", psk_args("alice"), sha256, client_id="alice-13")
    log_since(b, 0, r"id alice-12 user alice: MQTT clean session")
    log_since(b, 0, r"id alice-13 user alice: MQTT clean session")
    for who in (cert_sub, key_sub):
        assert got(who, 2) == [("mix/t", 1, "key 1.2"), ("mix/t", 1, "key 1.3")], who
    # Anonymous (certificate) and keyed clients on the other one: both
    # land, and the ACL drops what they write (they are not alice).
    start = len(b.log_text())
    pub_ok(port, "mix/t", "cert client", ca, plain_env, client_id="cert-writer")
    pub_ok(port, "mix/t", "key client", psk_args("alice", version="tlsv1.2"), tls12,
           client_id="key-writer")
    log_since(b, start, r"id cert-writer: PUBLISH to mix/t denied by the ACL")
    log_since(b, start, r"id key-writer: PUBLISH to mix/t denied by the ACL")
    log_since(b, start, connected_rx("tlsv1.2", "alice"))
    # A certificate client on the use_identity_as_username listener has no
    # name to give: refused at the handshake.
    rc, out = pub(uid_port, "mix/t", "nameless", ca, plain_env)
    assert rc != 0 and "CONNACK" not in out, out
    log_since(b, start, r"notice: client 127\.0\.0\.1:\d+: TLS handshake failed on port %d: "
                        r"no pre-shared key was used, and the listener takes no certificate "
                        r"\(use_identity_as_username\)$" % uid_port)
    pub_ok(uid_port, "mix/t", "last", psk_args("alice", version="tlsv1.2"), tls12)
    for who in (cert_sub, key_sub):
        assert got(who, 3)[2] == ("mix/t", 1, "last"), who
        assert len(who.messages) == 3, who.messages


def test_default_tls13_psk_client_on_a_listener_with_a_certificate(mqtt_factory, tmp_path,
                                                                   server_pki, openssl_confs):
    """mosquitto_pub --psk as it comes (TLS 1.3, OpenSSL's default suites)
    on a listener with a certificate, keys and use_identity_as_username:
    its key must be what it is taken in by."""
    psk = write_psk(tmp_path / "psk", ["alice", "bob"])
    b, (port,) = start_with_listeners(mqtt_factory, [
        ("mqtt", cert_lines(server_pki) + ["psk_hint hint-mixed",
                                           "use_identity_as_username true"])],
        config={"psk_file": psk, "log_type": "information"})
    tls12 = client_env(openssl_confs, "tlsv1.2")
    sub = psk_sub(port, ["mix13/#"], psk_args("bob", version="tlsv1.2"), tls12)
    start = len(b.log_text())
    rc, out = pub(port, "mix13/t", "default suites", psk_args("alice"),
                  client_env(openssl_confs), client_id="alice-default")
    assert rc == 0 and "received CONNACK (0)" in out, "mosquitto_pub exited %d:\n%s\nlog:\n%s" \
        % (rc, out, b.log_text()[start:])
    log_since(b, start, connected_rx("tlsv1.3", "alice"))
    log_since(b, start, r"id alice-default user alice: MQTT clean session")
    assert got(sub, 1) == [("mix13/t", 1, "default suites")]


# ---------------------------------------------------------------- 6. SIGHUP

def test_sighup_rereads_the_keys(mqtt_factory, tmp_path, openssl_confs):
    """An identity taken out of psk_file is refused at its next connection
    after SIGHUP, also over TLS 1.2 where it could have resumed a session
    (the listener hands out none); the others go on, an identity put in
    gets in; a file that does not parse at SIGHUP leaves the old keys in
    place, with a warning naming the line."""
    psk = write_psk(tmp_path / "psk", ["alice", "bob", "carol"])
    b, (port,) = start_with_listeners(mqtt_factory, [("mqtt", ["psk_hint hint-six"])],
                                      config={"psk_file": psk})
    env13 = client_env(openssl_confs)
    env12 = client_env(openssl_confs, "tlsv1.2")
    sub = psk_sub(port, ["hup/#"], psk_args("alice"), env13)
    pub_ok(port, "hup/t", "bob before", psk_args("bob"), env13)
    # No session to resume: none is written out, and each reconnection is new.
    sess = tmp_path / "bob.sess"
    rc, out = s_client_once(port, "bob", extra=["-sess_out", str(sess), "-reconnect"])
    assert rc == 0, out
    assert len(re.findall(r"^New, TLSv1\.2, Cipher is \S*PSK\S*$", out, re.M)) == 6, out
    assert "Reused" not in out and not sess.exists(), out
    assert got(sub, 1) == [("hup/t", 1, "bob before")]

    write_psk(psk, ["alice", "carol", "dave", "ops:eu"])
    start = len(b.log_text())
    b.reload()
    for version, env in (("tlsv1.3", env13), ("tlsv1.2", env12)):
        pub_refused_at_handshake(port, "hup/t", "bob after", psk_args("bob", version=version),
                                 env)
    log_since(b, start, r"(?s)(%s.*){2}" % unknown_rx(port, "bob").rstrip("$"))
    pub_ok(port, "hup/t", "carol stays", psk_args("carol"), env13)
    pub_ok(port, "hup/t", "dave is new", psk_args("dave", version="tlsv1.2"), env12)
    pub_ok(port, "hup/t", "ops:eu is new", psk_args("ops:eu"), env13)
    assert got(sub, 4)[1:] == [("hup/t", 1, "carol stays"), ("hup/t", 1, "dave is new"),
                               ("hup/t", 1, "ops:eu is new")]

    # A broken file: a line without a colon.  bob, back in it, stays out;
    # dave, taken out of it, stays in.
    psk.write_text("alice:%s\nbob:%s\nthis line has no colon\n" % (KEYS["alice"], KEYS["bob"]))
    start = len(b.log_text())
    b.signal(signal.SIGHUP)
    log_since(b, start, r"warning: %s:3: expected IDENTITY:KEY, the key in hexadecimal$"
              % re.escape(str(psk)))
    log_since(b, start, r"warning: reload: \S+ has errors; keeping the running configuration$")
    pub_ok(port, "hup/t", "dave still in", psk_args("dave"), env13)
    pub_refused_at_handshake(port, "hup/t", "bob still out", psk_args("bob"), env13)
    log_since(b, start, unknown_rx(port, "bob"))
    assert got(sub, 5)[4] == ("hup/t", 1, "dave still in")
    # The subscriber's connection went on through all of it.
    assert sub.proc.poll() is None
    assert [m.payload.decode() for m in sub.messages].count("bob after") == 0


# ---------------------------------------------------------------- 7. per listener

def test_per_listener_settings_give_each_block_its_keys(mqtt_factory, tmp_path, openssl_confs):
    """per_listener_settings true: each block's psk_file is its own; an
    identity of one is unknown on the other, and carol, in both with
    different keys, gets in on each with its own key only.  SIGHUP
    re-reads a block's file."""
    a = write_psk(tmp_path / "a.psk", ["alice", "carol"])
    bfile = write_psk(tmp_path / "b.psk", ["bob", "carol"], keys=dict(KEYS, carol="cb" * 16))
    b, (pa, pb) = start_with_listeners(mqtt_factory, [
        ("mqtt", ["psk_hint hint-a", "psk_file %s" % a, "allow_anonymous true"]),
        ("mqtt", ["psk_hint hint-b", "psk_file %s" % bfile, "allow_anonymous true"])],
        config={"per_listener_settings": "true"})
    env = client_env(openssl_confs)
    reader = RawClient(b.mqtt_port, name="pl-reader")      # the plain shortcut port
    reader.connect_ok("pl-reader")
    assert reader.subscribe([("pl/#", 1)]) == [1]

    def arrives(payload):
        p = reader.expect(PUBLISH)
        assert (p.topic, p.payload) == ("pl/t", payload.encode()), p
        reader.send(ack_packet(PUBACK, p.pid))

    start = len(b.log_text())
    pub_ok(pa, "pl/t", "alice on a", psk_args("alice"), env)
    arrives("alice on a")
    pub_ok(pb, "pl/t", "bob on b", psk_args("bob"), env)
    arrives("bob on b")
    pub_refused_at_handshake(pb, "pl/t", "alice on b", psk_args("alice"), env)
    log_since(b, start, unknown_rx(pb, "alice"))
    pub_refused_at_handshake(pa, "pl/t", "bob on a", psk_args("bob"), env)
    log_since(b, start, unknown_rx(pa, "bob"))
    pub_ok(pa, "pl/t", "carol on a", psk_args("carol"), env)
    arrives("carol on a")
    pub_refused_at_handshake(pb, "pl/t", "carol's a key on b", psk_args("carol"), env)
    log_since(b, start, wrong_key_rx(pb, "carol", "tlsv1.3"))
    pub_ok(pb, "pl/t", "carol on b", psk_args("carol", "cb" * 16), env)
    arrives("carol on b")
    # SIGHUP: bob is put in a's file.
    write_psk(a, ["alice", "bob", "carol"])
    b.reload()
    pub_ok(pa, "pl/t", "bob on a", psk_args("bob"), env)
    arrives("bob on a")
    reader.expect_silence(QUIET)


# ---------------------------------------------------------------- 8. broker -t

def check(tmp_path, text):
    conf = tmp_path / "check.conf"
    conf.write_text(text)
    add_root_user(conf)
    res = subprocess.run([str(broker_binary()), "-t", "-c", str(conf)], capture_output=True,
                         stdin=subprocess.DEVNULL, timeout=20, cwd=str(tmp_path))
    return res.returncode, res.stdout.decode() + res.stderr.decode(), str(conf)


def test_check_refuses_keys_that_cannot_work(tmp_path):
    psk = write_psk(tmp_path / "psk", ["alice"])
    cases = [
        ("listener 18001\npsk_hint h\n",
         ["{c}:1: listener 18001: psk_hint needs psk_file: without keys no client could "
          "connect"]),
        ("psk_file {psk}\nlistener 18001\n",
         ["{c}: psk_file {psk}: no listener has psk_hint to use it"]),
        ("psk_file {psk}\nlistener 18001\npsk_hint h\ncafile {psk}\n",
         ["{c}:2: listener 18001: cafile needs certfile and keyfile: without a certificate "
          "of its own the listener asks for none"]),
        ("psk_file {psk}\nlistener 18001\npsk_hint h\nrequire_certificate true\n",
         ["{c}:2: listener 18001: require_certificate needs certfile and keyfile: without "
          "a certificate of its own the listener asks for none"]),
        ("per_listener_settings true\nlistener 18001\npsk_file {psk}\n",
         ["{c}:2: listener 18001: psk_file needs psk_hint in its block (a listener with "
          "pre-shared keys)"]),
        ("per_listener_settings true\npsk_file {psk}\nlistener 18001\npsk_hint h\n",
         ["{c}:3: listener 18001: psk_hint needs psk_file in its block: without keys no "
          "client could connect",
          "{c}: psk_file {psk}: with per_listener_settings true, each listener block gives "
          "its own"]),
        ("listener 18001\nuse_identity_as_username true\n",
         ["{c}:1: listener 18001: use_identity_as_username needs certfile and keyfile, or "
          "psk_hint (a TLS listener)"]),
    ]
    for text, errors in cases:
        rc, out, conf = check(tmp_path, text.format(psk=psk))
        assert rc == 2, (text, out)
        for e in errors:
            assert e.format(c=conf, psk=psk) in out.splitlines(), (text, out)
        assert "configuration ok" not in out, out
    # What does work: keys alone, with use_identity_as_username and TLS 1.3 only.
    rc, out, conf = check(tmp_path, "psk_file %s\nlistener 18001\npsk_hint h\n"
                                    "use_identity_as_username true\ntls_version tlsv1.3\n" % psk)
    assert rc == 0 and "%s: configuration ok" % conf in out, out


def test_check_reports_bad_key_files(tmp_path):
    bad = tmp_path / "bad.psk"
    bad.write_text("# keys\n\nalice:0011\nno colon here\nbob:0x11\ncarol:123\nalice:22\n"
                   ":11\ndave:\n")
    rc, out, conf = check(tmp_path, "psk_file %s\nlistener 18001\npsk_hint h\n" % bad)
    assert rc == 2, out
    for line in ["{f}:4: expected IDENTITY:KEY, the key in hexadecimal",
                 "{f}:5: identity bob: the key is not hexadecimal (no 0x before it)",
                 "{f}:6: identity carol: the key must be an even number of hex digits, 2 to "
                 "1024",
                 "{f}:7: identity alice is already on line 3",
                 "{f}:8: the identity must be 1 to 256 bytes",
                 "{f}:9: identity dave: the key must be an even number of hex digits, 2 to "
                 "1024"]:
        assert line.format(f=bad) in out.splitlines(), out
    rc, out, conf = check(tmp_path, "psk_file %s\nlistener 18001\npsk_hint h\n"
                          % (tmp_path / "missing.psk"))
    assert rc == 2 and ("%s: cannot open the pre-shared key file: No such file or directory: "
                        "check psk_file" % (tmp_path / "missing.psk")) in out.splitlines(), out


def test_a_bad_key_file_stops_the_start_and_a_readable_one_is_warned_of(broker_factory,
                                                                         tmp_path):
    psk = tmp_path / "psk"
    psk.write_text("alice:%s\nno colon\n" % KEYS["alice"])
    os.chmod(psk, 0o600)
    port = free_ports(1)[0]
    b = broker_factory({"psk_file": psk}, start=False, name="bad",
                       conf_text="listener %d\npsk_hint h\n" % port)
    with pytest.raises(HarnessError, match="exited with status 2"):
        b.start()
    assert re.search(r"error: %s:2: expected IDENTITY:KEY, the key in hexadecimal$"
                     % re.escape(str(psk)), b.log_text(), re.M), b.log_tail()
    write_psk(psk, ["alice"], mode=0o644)
    b.start()
    assert re.search(r"warning: %s: the pre-shared key file is readable by every user of this "
                     r"host: chmod o-r %s$" % (re.escape(str(psk)), re.escape(str(psk))),
                     b.log_text(), re.M), b.log_tail()


# ---------------------------------------------------------------- 9. JSON-lines

@pytest.mark.parametrize("version", VERSIONS)
def test_json_lines_over_psk_with_s_client(broker_factory, tmp_path, sclients, version):
    """A JSON-lines consumer and publisher with psk_hint, spoken to by
    openssl s_client -psk: login, SUB, a QoS 2 publish and its delivery;
    a wrong key gets no greeting."""
    psk = write_psk(tmp_path / "psk", ["alice", "bob"])
    b, (cport, pport) = start_with_listeners(broker_factory, [
        ("json_consumer", ["psk_hint hint-json"]), ("json_publisher", ["psk_hint hint-json"])],
        config={"psk_file": psk, "log_type": "information"})
    c = sclients(cport, "alice", version=version)
    c.send("log reader")
    assert c.wait_lines(2) == [PLEASE_LOGIN, LOGGED_IN]
    c.send(json.dumps({"type": "SUB", "topic": "jpsk"}))
    assert c.wait_lines(3)[2] == "OK"
    p = sclients(pport, "bob", version=version)
    p.send(json.dumps({"type": "PUB", "topic": "jpsk", "msg": {"n": 1}}))
    rec = json.loads(p.wait_lines(1)[0])
    assert rec["type"] == "PUBREC" and isinstance(rec["msgId"], int), rec
    p.send(json.dumps({"type": "PUBREL", "msgId": rec["msgId"]}))
    comp = json.loads(p.wait_lines(2)[1])
    assert comp["type"] == "PUBCOMP" and comp["msgId"] == rec["msgId"], comp
    delivered = json.loads(c.wait_lines(4)[3])
    assert delivered["type"] == "PUB" and delivered["topic"] == "jpsk" and \
        delivered["msg"] == {"n": 1}, delivered
    c.send(json.dumps({"type": "PUBREC", "msgId": delivered["msgId"], "topic": "jpsk"}))
    ok, rel = sorted(c.wait_lines(6)[4:6], key=lambda ln: ln != "OK")    # either order
    assert ok == "OK", c.lines
    rel = json.loads(rel)
    assert rel["type"] == "PUBREL" and rel["msgId"] == delivered["msgId"], rel
    c.send(json.dumps({"type": "PUBCOMP", "msgId": delivered["msgId"], "topic": "jpsk"}))
    assert c.wait_lines(7)[6] == "OK"
    for port, who, kind in ((cport, "alice", "consumer"), (pport, "bob", "publisher")):
        log_since(b, 0, r"information: client 127\.0\.0\.1:\d+: connected \(JSON-lines %s "
                        r"over %s \S+, pre-shared key identity %s\)$"
                  % (kind, version.replace("tlsv", "TLSv"), who))
    start = len(b.log_text())
    wrong = sclients(cport, "alice", WRONG, version=version)
    wrong.wait_eof()
    assert wrong.lines == [], wrong.lines
    log_since(b, start, wrong_key_rx(cport, "alice", version))


def test_a_key_offered_on_a_listener_with_a_certificate_is_checked(mqtt_factory, tmp_path,
                                                                   server_pki, openssl_confs):
    """Without use_identity_as_username, on a listener with a certificate:
    a client that offers a key is held to it (TLS 1.3 with OpenSSL's
    default suites, TLS 1.2 offering every cipher it has), so a wrong key
    or an unknown identity is refused rather than let in by the
    certificate, and a right one is used."""
    psk = write_psk(tmp_path / "psk", ["alice", "bob"])
    b, (port,) = start_with_listeners(mqtt_factory, [
        ("mqtt", cert_lines(server_pki) + ["psk_hint hint-mixed", "allow_anonymous true"])],
        config={"psk_file": psk, "log_type": "information"})
    wrong = "00" * 16
    for version in ("tlsv1.3", "tlsv1.2"):
        env = client_env(openssl_confs, version)
        args = ["--psk", KEYS["alice"], "--psk-identity", "alice"]
        start = len(b.log_text())
        pub_ok(port, "mixed/%s" % version, "right key", args, env)
        log_since(b, start, connected_rx(version, "alice"))
        start = len(b.log_text())
        pub_refused_at_handshake(port, "mixed/x", "wrong key",
                                 ["--psk", wrong, "--psk-identity", "alice"], env)
        log_since(b, start, r"TLS handshake failed on port %d: .*\(pre-shared key identity"
                            r" alice\)$" % port)
        start = len(b.log_text())
        pub_refused_at_handshake(port, "mixed/x", "unknown",
                                 ["--psk", wrong, "--psk-identity", "mallory"], env)
        log_since(b, start, unknown_rx(port, "mallory"))


def test_a_key_that_no_suite_can_carry_is_refused(mqtt_factory, tmp_path, server_pki):
    """A listener whose configured TLS 1.3 suites are all SHA-384, with a
    certificate: a key (which TLS 1.3 ties to SHA-256 here) cannot be
    used, and the client that offered it is refused after the handshake,
    not let in by the certificate."""
    psk = write_psk(tmp_path / "psk", ["alice"])
    b, (port,) = start_with_listeners(mqtt_factory, [
        ("mqtt", cert_lines(server_pki) + ["psk_hint hint-384",
                                           "ciphersuites TLS_AES_256_GCM_SHA384"])],
        config={"psk_file": psk})
    start = len(b.log_text())
    s_client_once(port, "alice", version="tlsv1.3")
    log_since(b, start, r"notice: client 127\.0\.0\.1:\d+: TLS handshake failed on port %d:"
                        r" the pre-shared key offered could not be used \(no cipher suite"
                        r" for it in common\) \(pre-shared key identity alice\)$" % port)


# ---------------------------------------------------------------- 10. review findings

def tls13_connack(ctx, port, client_id, session=None):
    """A TLS 1.3 MQTT client (Python's ssl, a certificate client): the
    CONNACK it gets, and its TLS session (with the tickets it was sent)
    and whether the handshake resumed one."""
    with socket.create_connection((HOST, port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=HOST, session=session) as s:
            s.sendall(connect_packet(client_id))
            data = b""
            while len(data) < 4:
                chunk = s.recv(4 - len(data))
                if not chunk:
                    break
                data += chunk
            return data, s.session, s.session_reused


def test_a_certificate_client_with_a_session_ticket_is_not_refused(mqtt_factory, tmp_path,
                                                                    server_pki):
    """A certificate client that kept the TLS 1.3 session ticket its
    listener gave it, and offers it when it comes back, gets a full
    handshake (the ticket cannot be used) once the listener also takes
    pre-shared keys (psk_hint added by SIGHUP, a reloadable key): it is not
    refused as an unknown pre-shared key identity.  A ticket is no
    psk_file identity, and before psk_hint the same client got in."""
    psk = write_psk(tmp_path / "psk", ["alice"])
    b, (port,) = start_with_listeners(mqtt_factory, [
        ("mqtt", cert_lines(server_pki) + ["allow_anonymous true"])],
        config={"log_type": "information"})
    ctx = ssl.create_default_context(cafile=server_pki.path("ca.crt"))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    connack, session, _ = tls13_connack(ctx, port, "ticket-holder")
    assert connack == b"\x20\x02\x00\x00", connack
    assert session.has_ticket, "the listener gave no TLS 1.3 session ticket"
    # Without psk_hint the ticket is offered and the client gets in.
    connack, _, _ = tls13_connack(ctx, port, "ticket-holder", session)
    assert connack == b"\x20\x02\x00\x00", connack

    b.conf_text = b.conf_text.rstrip("\n") + "\npsk_hint hint-added\n"
    log = b.reload({"psk_file": psk})
    assert "psk_hint changed" in log, log
    start = len(b.log_text())
    try:
        connack, _, reused = tls13_connack(ctx, port, "ticket-holder", session)
    except ssl.SSLError as e:
        pytest.fail("a certificate client offering its old session ticket was refused: %s;"
                    " log:\n%s" % (e, b.log_text()[start:]))
    assert connack == b"\x20\x02\x00\x00" and not reused, (connack, reused)
    assert "TLS handshake failed" not in b.log_text()[start:], b.log_text()[start:]


def test_the_access_line_without_pre_shared_keys_is_unchanged(broker_factory):
    """The start-up line on who may connect (level notice) reads as it did
    before psk_file: no double blank where the pre-shared keys would be."""
    b = broker_factory({"allow_anonymous": "false"})
    assert re.search(r"notice: access: no password file \(user names are not checked\), no "
                     r"ACL, anonymous clients refused$", b.log_text(), re.M), b.log_tail()


def test_configured_suites_are_narrowed_to_those_a_key_fits(mqtt_factory, tmp_path,
                                                            server_pki, openssl_confs):
    """ciphersuites that put a SHA-384 suite first, with a certificate: a
    client that offers a key gets the configured SHA-256 suite, and a
    certificate client still the first one."""
    psk = write_psk(tmp_path / "psk", ["alice"])
    b, (port,) = start_with_listeners(mqtt_factory, [
        ("mqtt", cert_lines(server_pki) + [
            "psk_hint hint-list", "allow_anonymous true",
            "ciphersuites TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256"])],
        config={"psk_file": psk, "log_type": "information"})
    start = len(b.log_text())
    pub_ok(port, "list/psk", "keyed", ["--psk", KEYS["alice"], "--psk-identity", "alice"],
           client_env(openssl_confs))
    log_since(b, start, r"connected \(MQTT over TLSv1\.3 TLS_AES_128_GCM_SHA256, pre-shared"
                        r" key identity alice\)$")
    start = len(b.log_text())
    pub_ok(port, "list/cert", "certified", ["--cafile", server_pki.path("ca.crt")],
           client_env(openssl_confs))
    log_since(b, start, r"connected \(MQTT over TLSv1\.3 TLS_AES_256_GCM_SHA384\)$")


def test_an_identity_that_cannot_be_read_is_described_not_logged(mqtt_factory, tmp_path):
    """An identity of bytes that are not UTF-8, or longer than a key file
    allows, is refused, and the log describes it instead of writing it."""
    psk = write_psk(tmp_path / "psk", ["alice"])
    b, (port,) = start_with_listeners(mqtt_factory, [("mqtt", ["psk_hint hint-raw"])],
                                      config={"psk_file": psk})
    for identity, said in ((b"\xff\xfe\xfd", "of 3 bytes, not UTF-8"),
                           (b"x" * 300, "of 300 bytes (more than psk_file allows)")):
        start = len(b.log_text())
        res = subprocess.run([b"openssl", b"s_client", b"-connect",
                              ("%s:%d" % (HOST, port)).encode(), b"-psk", KEYS["alice"].encode(),
                              b"-psk_identity", identity, b"-tls1_3"],
                             stdin=subprocess.DEVNULL, capture_output=True,
                             timeout=CLIENT_TIMEOUT)
        assert b"CONNACK" not in res.stdout
        log_since(b, start, r"TLS handshake failed on port %d: unknown pre-shared key"
                            r" identity %s$" % (port, re.escape(said)))
        assert identity.decode("latin-1") not in b.log_text()[start:]


def raw_psk_broker(mqtt_factory, tmp_path):
    psk = write_psk(tmp_path / "psk", ["alice", "bob"])
    return start_with_listeners(
        mqtt_factory, [("mqtt", ["psk_hint hint-raw", "use_identity_as_username true"])],
        config={"psk_file": psk, "log_type": "information"})


ALICE_KEY = bytes.fromhex(KEYS["alice"])


def test_the_user_is_the_identity_whose_key_was_used(mqtt_factory, tmp_path):
    """OpenSSL uses the first identity of the ClientHello it has a key
    of, whatever its ticket age; the broker's own reading of the
    ClientHello (for the log and to refuse unknown identities) takes
    only those of age 0.  alice's key under a ticket age, then bob's
    identity with a binder nobody could check: the client proved alice's
    key and is alice, not bob."""
    b, (port,) = raw_psk_broker(mqtt_factory, tmp_path)
    assert mqtt_connect_psk(port, [(b"alice", 0, ALICE_KEY)], "plain-alice") == (0, 0)
    wait_for(lambda: "id plain-alice user alice" in b.log_text(), 10, "alice's CONNECT")
    start = len(b.log_text())
    assert mqtt_connect_psk(port, [(b"alice", 7, ALICE_KEY), (b"bob", 0, None)],
                            "aged") == (0, 0)
    log_since(b, start, r"client \S+: connected \(MQTT over TLSv1\.3 TLS_AES_128_GCM_SHA256,"
                        r" pre-shared key identity alice\)$")
    wait_for(lambda: "id aged user " in b.log_text()[start:], 10, "the CONNECT")
    assert "id aged user alice" in b.log_text()[start:], b.log_tail()


def test_an_identity_with_a_nul_byte_is_refused(mqtt_factory, tmp_path):
    """OpenSSL looks up an identity up to its first NUL byte: "alice\\0x"
    would be alice.  The broker refuses such an external identity (ticket
    age 0; a session ticket may hold any bytes), wherever it is in the
    ClientHello, and describes it in the log."""
    b, (port,) = raw_psk_broker(mqtt_factory, tmp_path)
    for identities in ([(b"alice\0x", 0, ALICE_KEY)],
                       [(b"alice\0x", 0, ALICE_KEY), (b"bob", 0, None)],
                       [(b"alice", 0, ALICE_KEY), (b"bob\0", 0, None)]):
        start = len(b.log_text())
        with pytest.raises((ConnectionError, EOFError)):
            mqtt_connect_psk(port, identities, "nul")
        log_since(b, start, r"TLS handshake failed on port %d: unknown pre-shared key"
                            r" identity of \d+ bytes with a NUL byte$" % port)
    assert "id nul " not in b.log_text()
