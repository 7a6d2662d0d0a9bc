"""TLS on the listeners (broker.conf(5), "Listener blocks"), against
certificates made for the module with the openssl command: a CA, a
server certificate for 127.0.0.1 and localhost (and a second one, for a
reload), client certificates of that CA, an expired one, one without a
common name, and one of another CA.

- MQTT over TLS with mosquitto_pub/mosquitto_sub --cafile and with paho
  (tls_set), JSON-lines over TLS with Python's ssl module and with
  openssl s_client;
- client certificates required: with one, without, of another CA,
  expired; use_identity_as_username;
- what is not a TLS handshake: plain text on a TLS port, a client that
  sends nothing;
- SIGHUP: a new certificate for new connections, open ones go on; a bad
  one leaves the old in place; a bad file at start-up stops the broker;
- back-pressure through a TLS connection, both ways."""

import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

from broker_harness import (HOST, HarnessError, JsonClient, LOGGED_IN, PLEASE_LOGIN,
                            Publisher, Qos2Consumer, add_root_user, broker_binary, free_ports,
                            kill_pid, start_with_listeners, wait_for)
from mqtt_helpers import (PUBLISH, MosquittoSub, PahoClient, RawClient, Receiver,
                          SilentSubscriber, connect_packet, mosquitto_pub, subscribe_packet)
from test_auth import write_passwords
from test_backpressure import disconnect_behind_unread_deliveries, silent_mqtt

EARLY = 0.05            # a broker timer may fire this much early by our clock
SLACK = 3.5             # how late a broker timer may fire on a loaded machine
QUIET = 0.5             # seconds over which an absence is watched
SERVER_SERIAL, NEW_SERIAL = "1001", "1002"


# ---------------------------------------------------------------- certificates

def openssl(cwd, *args):
    res = subprocess.run(["openssl"] + list(args), cwd=str(cwd), stdin=subprocess.DEVNULL,
                         capture_output=True, timeout=60)
    assert res.returncode == 0, "openssl %s failed:\n%s" % (
        " ".join(args), (res.stdout + res.stderr).decode("utf-8", "replace"))


def new_key_and_request(d, name, subject):
    openssl(d, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", name + ".key", "-out", name + ".csr", "-subj", subject)


def make_ca(d, name, cn):
    openssl(d, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", name + ".key", "-out", name + ".crt", "-days", "30",
            "-subj", "/CN=" + cn)


def make_cert(d, name, subject, ca, serial, server=False):
    new_key_and_request(d, name, subject)
    args = ["x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
            "-set_serial", "0x" + serial, "-days", "30", "-out", name + ".crt"]
    if server:
        (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        args += ["-extfile", "san.ext"]
    openssl(d, *args)


def make_expired_cert(d, name, cn, ca):
    """Valid for one day in 2020: `openssl ca` sets the dates."""
    new_key_and_request(d, name, "/CN=" + cn)
    (d / "ca.cnf").write_text("[ca]\ndefault_ca = test\n[test]\ndatabase = index.txt\n"
                              "new_certs_dir = .\nserial = serial\ndefault_md = sha256\n"
                              "policy = any\n[any]\ncommonName = supplied\n")
    (d / "index.txt").write_text("")
    (d / "serial").write_text("4001\n")
    openssl(d, "ca", "-batch", "-config", "ca.cnf", "-cert", ca + ".crt", "-keyfile",
            ca + ".key", "-in", name + ".csr", "-out", name + ".crt", "-notext",
            "-startdate", "20200101000000Z", "-enddate", "20200102000000Z")


def make_crl(d, name, ca, revoked):
    """name.crl: ca's revocation list of the certificates named."""
    db = d / (name + ".db")
    (d / (name + ".cnf")).write_text(
        "[ca]\ndefault_ca = test\n[test]\ndatabase = %s\ndefault_md = sha256\n"
        "default_crl_days = 30\n" % db.name)
    db.write_text("")
    for cert in revoked:
        openssl(d, "ca", "-config", name + ".cnf", "-cert", ca + ".crt", "-keyfile",
                ca + ".key", "-revoke", cert + ".crt")
    openssl(d, "ca", "-config", name + ".cnf", "-cert", ca + ".crt", "-keyfile", ca + ".key",
            "-gencrl", "-out", name + ".crl")


class Pki:
    def __init__(self, d):
        self.dir = d

    def path(self, name):
        return str(self.dir / name)

    def client_context(self, cert=None, ca="ca.crt"):
        """A client's ssl context: it trusts the CA of ca, checks the host
        name, and presents cert (a name: "alice") if given."""
        ctx = ssl.create_default_context(cafile=self.path(ca))
        if cert is not None:
            ctx.load_cert_chain(self.path(cert + ".crt"), self.path(cert + ".key"))
        return ctx


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    make_ca(d, "ca", "Test CA")
    make_ca(d, "other-ca", "Other CA")
    make_cert(d, "server", "/CN=localhost", "ca", SERVER_SERIAL, server=True)
    make_cert(d, "server2", "/CN=localhost", "ca", NEW_SERIAL, server=True)
    make_cert(d, "alice", "/CN=alice", "ca", "2001")
    make_cert(d, "noname", "/O=No name", "ca", "2002")
    make_cert(d, "mallory", "/CN=mallory", "ca", "2003")
    make_cert(d, "bob", "/O=Acme Ltd/OU=North, South/CN=bob", "ca", "2004")
    make_crl(d, "revoked1", "ca", ["mallory"])
    make_crl(d, "revoked2", "ca", ["mallory", "alice"])
    make_cert(d, "eve", "/CN=eve", "other-ca", "3001")
    make_expired_cert(d, "old", "old", "ca")
    return Pki(d)


# ---------------------------------------------------------------- brokers

def tls_lines(pki, cert="server", extra=()):
    return ["certfile " + str(pki.dir / (cert + ".crt")),
            "keyfile " + str(pki.dir / (cert + ".key"))] + list(extra)


def log_since(b, start, pattern, timeout=10.0, what=None):
    """Waits for a line matching pattern in the log from offset start;
    returns the match."""
    rx = re.compile(pattern, re.M)
    return wait_for(lambda: rx.search(b.log_text(), start), timeout,
                    what or "a log line matching %r" % pattern)


def tls_fails(pki, port, cert=None, ca="ca.crt"):
    """A TLS client that the broker refuses: the handshake fails, on the
    client's side or (TLS 1.3 checks the client's certificate after the
    client is done) at its first read."""
    ctx = pki.client_context(cert, ca)
    with socket.create_connection((HOST, port), timeout=5) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname=HOST) as s:
                s.sendall(connect_packet("refused"))
                data = s.recv(1024)
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            return
    assert data == b"", "the broker answered a refused client: %r" % data


def line_of(b, text):
    """The number of the line of the broker's configuration file that is text."""
    lines = (b.workdir / "broker.conf").read_text().splitlines()
    return lines.index(text) + 1


def sys_value(b, topic):
    """A $SYS value, as a subscriber is sent it when it subscribes."""
    c = RawClient(b.mqtt_port, name="sys")
    c.connect_ok("sys-reader")
    c.send(subscribe_packet(1, [(topic, 0)]))
    p = c.expect(PUBLISH)
    c.close()
    return p.payload.decode()


# ---------------------------------------------------------------- MQTT

def test_mqtt_over_tls_with_mosquitto_clients(mqtt_factory, pki):
    b, (port,) = start_with_listeners(mqtt_factory, [("mqtt", tls_lines(pki))])
    sub = MosquittoSub(port, ["tls/#"], qos=1, args=["--cafile", pki.path("ca.crt")])
    sub.wait_subscribed()
    mosquitto_pub(port, "tls/one", "over TLS", qos=1, args=["--cafile", pki.path("ca.crt")])
    # The plain MQTT port of the same broker shares the topics.
    mosquitto_pub(b.mqtt_port, "tls/two", "in the clear", qos=1)
    got = sub.wait_messages(2)
    assert sorted((m.topic, m.payload) for m in got) == [
        ("tls/one", b"over TLS"), ("tls/two", b"in the clear")], got
    assert "MQTT over TLS" in b.log_text()


def test_mqtt_over_tls_with_paho(mqtt_factory, pki):
    b, (port,) = start_with_listeners(mqtt_factory, [("mqtt", tls_lines(pki))])
    sub = PahoClient(port, "paho-tls-sub", tls={"ca_certs": pki.path("ca.crt")})
    sub.connect_ok()
    assert sub.subscribe([("paho/tls", 2)]) == [2]
    pub = PahoClient(port, "paho-tls-pub", tls={"ca_certs": pki.path("ca.crt")})
    pub.connect_ok()
    for qos in (0, 1, 2):
        pub.publish("paho/tls", b"qos %d" % qos, qos)
    got = sub.wait_messages(3, "paho/tls")
    assert [m.payload for m in got] == [b"qos 0", b"qos 1", b"qos 2"], got
    # A client that does not trust our CA stops at the handshake.
    stranger = PahoClient(port, "paho-stranger", tls={"ca_certs": pki.path("other-ca.crt")})
    with pytest.raises(ssl.SSLError):
        stranger.connect()


def test_large_payloads_over_tls(mqtt_factory, pki):
    """Payloads around 64 KiB (a record alone, written to the client's
    output without a copy) and over 128 KiB (by memfd) go through TLS
    byte for byte, at each QoS, to a subscriber over TLS and to one in
    the clear.  MQTT orders a topic's messages per QoS: a QoS 2 message
    enters the log at its PUBREL, so a QoS 0 one published after it may
    arrive first."""
    b, (port,) = start_with_listeners(mqtt_factory, [("mqtt", tls_lines(pki))])
    tls = {"ca_certs": pki.path("ca.crt")}
    sub = PahoClient(port, "paho-tls-big-sub", tls=tls)
    sub.connect_ok()
    assert sub.subscribe([("tls/big", 2)]) == [2]
    plain = PahoClient(b.mqtt_port, "paho-plain-big-sub")
    plain.connect_ok()
    assert plain.subscribe([("tls/big", 2)]) == [2]
    pub = PahoClient(port, "paho-tls-big-pub", tls=tls)
    pub.connect_ok()
    sizes = [64 * 1024, 200 * 1024, 1, 64 * 1024 + 7, 130 * 1024, 65 * 1024]
    sent = [bytes([i]) * 4 + os.urandom(n - 4) if n > 4 else os.urandom(n)
            for i, n in enumerate(sizes)]
    for i, p in enumerate(sent):
        pub.publish("tls/big", p, i % 3)
    for who in (sub, plain):
        got = who.wait_messages(len(sent), "tls/big")
        assert sorted(len(m.payload) for m in got) == sorted(sizes), who
        for qos in (0, 1, 2):
            assert [m.payload for m in got if m.qos == qos] == sent[qos::3], (who, qos)


def test_client_certificates_required(mqtt_factory, pki):
    """require_certificate: a certificate of our CA gets in; none, one of
    another CA and an expired one fail the handshake, each logged with
    the client's address and OpenSSL's reason, and counted."""
    b, (port,) = start_with_listeners(mqtt_factory, [("mqtt", tls_lines(
        pki, extra=["cafile " + pki.path("ca.crt"), "require_certificate true"]))])
    ca = ["--cafile", pki.path("ca.crt")]
    mosquitto_pub(port, "cert/ok", "alice", qos=1,
                  args=ca + ["--cert", pki.path("alice.crt"), "--key", pki.path("alice.key")])
    start = len(b.log_text())
    failures = [
        (None, "peer did not return a certificate"),
        ("eve", r"certificate verify failed \(unable to get local issuer certificate\)"),
        ("old", r"certificate verify failed \(certificate has expired\)"),
    ]
    for cert, reason in failures:
        args = ca if cert is None else ca + ["--cert", str(pki.dir / (cert + ".crt")),
                                             "--key", str(pki.dir / (cert + ".key"))]
        res = subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(port), "-t", "cert/no",
                              "-m", "x", "-q", "1"] + args, stdin=subprocess.DEVNULL,
                             capture_output=True, timeout=10)
        assert res.returncode != 0, "mosquitto_pub with %s got in" % cert
        log_since(b, start, r"notice: client 127\.0\.0\.1:\d+: TLS handshake failed on port "
                  r"%d: %s$" % (port, reason))
    # Python's client as well: the same refusal.
    tls_fails(pki, port)
    log_since(b, start, r"(?s)(peer did not return a certificate.*){2}")
    assert sys_value(b, "$SYS/broker/tls/handshake_failures") == "4"
    assert "cert/no" not in b.log_text()


def cert_args(pki, cert):
    return ["--cafile", pki.path("ca.crt"), "--cert", pki.path(cert + ".crt"),
            "--key", pki.path(cert + ".key")]


def refused(port, args):
    res = subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(port), "-t", "crl/no",
                          "-m", "x", "-q", "1"] + args, stdin=subprocess.DEVNULL,
                         capture_output=True, timeout=10)
    return res.returncode != 0


def test_revoked_client_certificates_are_refused(mqtt_factory, pki, tmp_path):
    """crlfile: a certificate its CRL revokes fails the handshake, logged
    with OpenSSL's reason; SIGHUP reads a new CRL for new connections."""
    crl = tmp_path / "live.crl"
    crl.write_bytes((pki.dir / "revoked1.crl").read_bytes())
    b, (port,) = start_with_listeners(mqtt_factory, [("mqtt", tls_lines(pki, extra=[
        "cafile " + pki.path("ca.crt"), "require_certificate true", "crlfile %s" % crl]))])
    mosquitto_pub(port, "crl/ok", "alice", qos=1, args=cert_args(pki, "alice"))
    start = len(b.log_text())
    assert refused(port, cert_args(pki, "mallory")), "a revoked certificate got in"
    log_since(b, start, r"notice: client 127\.0\.0\.1:\d+: TLS handshake failed on port "
              r"%d: certificate verify failed \(certificate revoked\)$" % port)

    crl.write_bytes((pki.dir / "revoked2.crl").read_bytes())
    start = len(b.log_text())
    b.reload()
    log_since(b, start, r"notice: reload: listener %d: TLS files re-read" % port)
    assert refused(port, cert_args(pki, "alice")), "alice got in after her revocation"
    log_since(b, start, r"TLS handshake failed on port %d: certificate verify failed "
              r"\(certificate revoked\)$" % port)
    mosquitto_pub(port, "crl/ok", "noname", qos=1, args=cert_args(pki, "noname"))
    assert "crl/no" not in b.log_text()


def test_certificate_common_name_is_the_user_name(mqtt_factory, pki):
    b, (port,) = start_with_listeners(mqtt_factory, [("mqtt", tls_lines(pki, extra=[
        "cafile " + pki.path("ca.crt"), "require_certificate true", "use_identity_as_username true"]))],
        config={"log_type": "information"})
    mosquitto_pub(port, "id/t", "m", args=["--cafile", pki.path("ca.crt"), "-i", "who", "-u", "mallory",
                                           "--cert", pki.path("alice.crt"), "--key", pki.path("alice.key")])
    user = log_since(b, 0, r"client 127\.0\.0\.1:\d+ id who user (\S+): MQTT clean "
                           r"session, keep-alive \d+s$").group(1)
    assert user == "alice", user
    assert "mallory" not in b.log_text()
    assert re.search(r"connected \(MQTT over TLSv1\.[23] \S+, certificate CN=alice\)",
                     b.log_text()), b.log_tail()
    # A certificate without a common name has no user name to give.
    start = len(b.log_text())
    tls_fails(pki, port, cert="noname")
    log_since(b, start, r"TLS handshake failed on port %d: the client certificate has no "
                        r"common name \(use_identity_as_username\)$" % port)


def test_certificate_subject_is_the_user_name(mqtt_factory, pki, tmp_path):
    """use_subject_as_username: the subject as RFC 2253 (and mosquitto)
    writes it, most specific first, commas escaped, is the user name the
    ACL sees."""
    acl = tmp_path / "acl"
    acl.write_text("user CN=alice\ntopic read subj/#\n"
                   "user CN=bob,OU=North\\, South,O=Acme Ltd\ntopic write subj/bob/#\n")
    b, (port,) = start_with_listeners(mqtt_factory, [("mqtt", tls_lines(pki, extra=[
        "cafile " + pki.path("ca.crt"), "require_certificate true",
        "use_subject_as_username true"]))],
        config={"acl_file": str(acl), "log_type": "information"})
    sub = RawClient(port, tls=pki.client_context("alice"), name="subj-sub")
    sub.connect_ok("subj-sub")
    assert sub.subscribe([("subj/#", 1)]) == [1]
    assert "user CN=alice: MQTT" in b.log_text()
    mosquitto_pub(port, "subj/bob/1", "from bob", qos=1, args=cert_args(pki, "bob"))
    p = sub.expect(PUBLISH)
    assert (p.topic, p.payload) == ("subj/bob/1", b"from bob")
    # The ACL gives the user nothing else: a write elsewhere is not passed on.
    mosquitto_pub(port, "subj/other", "refused", qos=1, args=cert_args(pki, "bob"))
    log_since(b, 0, r"PUBLISH to subj/other .*ACL")
    sub.expect_silence(QUIET)


def test_tls_version_and_ciphers(broker_factory, pki):
    """tls_version is the oldest version taken; ciphers narrows TLS 1.2."""
    b, (v13, c12) = start_with_listeners(broker_factory, [
        ("json_consumer", tls_lines(pki, extra=["tls_version tlsv1.3"])),
        ("json_consumer", tls_lines(pki, extra=["ciphers ECDHE-ECDSA-AES256-GCM-SHA384"]))])
    old = pki.client_context()
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    old.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
    start = len(b.log_text())
    for port in (v13, c12):
        with pytest.raises(ssl.SSLError):
            JsonClient(port, tls=old)
    log_since(b, start, r"TLS handshake failed on port %d: unsupported protocol$" % v13)
    log_since(b, start, r"TLS handshake failed on port %d: no shared cipher$" % c12)
    # What they do take.
    JsonClient(v13, tls=pki.client_context()).expect(PLEASE_LOGIN)
    ok = pki.client_context()
    ok.maximum_version = ssl.TLSVersion.TLSv1_2
    c = JsonClient(c12, tls=ok)
    c.expect(PLEASE_LOGIN)
    assert c.sock.cipher()[0] == "ECDHE-ECDSA-AES256-GCM-SHA384", c.sock.cipher()


# ---------------------------------------------------------------- not TLS

def test_plain_text_on_a_tls_port_is_closed(mqtt_factory, pki):
    b, (mport, jport) = start_with_listeners(mqtt_factory, [
        ("mqtt", tls_lines(pki)), ("json_consumer", tls_lines(pki))])
    start = len(b.log_text())
    for port, text in ((mport, connect_packet("plain")), (jport, b"log alice\n")):
        with socket.create_connection((HOST, port), timeout=5) as s:
            s.sendall(text)
            deadline = time.monotonic() + 5
            data = b""
            while True:                 # a TLS alert may come before the end
                try:
                    chunk = s.recv(4096)
                except ConnectionResetError:    # it had not read all we sent
                    break
                if not chunk:
                    break
                data += chunk
                assert time.monotonic() < deadline, "port %d still open" % port
            assert PLEASE_LOGIN.encode() not in data and b"\x20\x02" not in data, data
        log_since(b, start, r"notice: client 127\.0\.0\.1:\d+: plain text on TLS port %d: "
                            r"closed$" % port)
    assert sys_value(b, "$SYS/broker/tls/handshake_failures") == "2"
    # The port still serves TLS.
    c = JsonClient(jport, tls=pki.client_context())
    c.expect(PLEASE_LOGIN)


def stalled_for(port, first=b""):
    """Connects, sends first (maybe nothing) and waits for the broker to
    close the connection: the seconds that took."""
    with socket.create_connection((HOST, port), timeout=10) as s:
        t0 = time.monotonic()
        s.sendall(first)
        s.settimeout(10)
        try:
            data = s.recv(1024)
        except ConnectionResetError:
            data = b""
        waited = time.monotonic() - t0
    assert data == b"" or data.startswith(b"\x15"), data      # the end, or an alert
    return waited


def test_stalled_handshake_is_closed_in_time(broker_factory, pki):
    """A client that connects and sends nothing is closed after
    tls_handshake_timeout, not before; so is one that stops half-way.
    SIGHUP changes the time for the next connections."""
    b, (port,) = start_with_listeners(broker_factory, [("json_publisher", tls_lines(pki))],
                                      config={"tls_handshake_timeout": 1,
                                              "idle_timeout": 300})
    start = len(b.log_text())
    for first in (b"", b"\x16\x03\x01\x02\x00\x01"):    # nothing; half a ClientHello
        waited = stalled_for(port, first)
        assert 1 - EARLY <= waited <= 1 + SLACK, "closed after %.2f s" % waited
    log_since(b, start, r"(?s)(TLS handshake failed on port %d: not completed within "
                        r"tls_handshake_timeout \(1 s\)\n.*){2}" % port)
    log = b.reload({"tls_handshake_timeout": 2})
    assert "reload: tls_handshake_timeout changed" in log, log
    waited = stalled_for(port)
    assert 2 - EARLY <= waited <= 2 + SLACK, "closed after %.2f s" % waited


# ---------------------------------------------------------------- JSON-lines

def test_json_lines_over_tls(broker_factory, pki):
    b, (cport, pport) = start_with_listeners(broker_factory, [
        ("json_consumer", tls_lines(pki)), ("json_publisher", tls_lines(pki))])
    ctx = pki.client_context()
    c = Qos2Consumer(b, "tls-reader", port=cport, tls=ctx).connect()
    c.subscribe("jt")
    plain = b.consumer("plain-reader")
    plain.subscribe("jt")
    p = Publisher(pport, tls=ctx)
    p.publish("jt", {"n": 1})
    b.publisher().publish("jt", {"n": 2})          # the plain port, same topic
    for who in (c, plain):
        assert who.wait_messages(2, "jt") == [{"n": 1}, {"n": 2}]
    c.settle()
    plain.settle()
    # openssl s_client speaks to it as telnet would to a plain port.
    proc = subprocess.Popen(["openssl", "s_client", "-quiet", "-connect", "%s:%d" % (HOST, cport),
                             "-CAfile", pki.path("ca.crt"), "-verify_return_error"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    try:
        out = []

        def read():
            for line in proc.stdout:
                out.append(line)
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        proc.stdin.write(b"log bob\n")
        proc.stdin.flush()
        wait_for(lambda: len(out) >= 2, 10, "the greeting and the login over s_client")
        assert out[:2] == [PLEASE_LOGIN.encode() + b"\r\n", LOGGED_IN.encode() + b"\r\n"], out
    finally:
        proc.kill()
        proc.wait(5)


def test_an_error_line_over_tls_is_sent_before_the_close(broker_factory, pki):
    """A connection that ends with an ERROR line (here a line over
    message_size_limit) gets it whole through TLS before the close, as
    on a plain port: the broker frees it once its output is flushed."""
    b, (port,) = start_with_listeners(broker_factory, [("json_publisher", tls_lines(pki))],
                                      config={"message_size_limit": "1k"})
    p = Publisher(port, tls=pki.client_context())
    try:
        p.send_json({"type": "PUB", "topic": "big", "msg": "x" * 4096})
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
        pass                        # it may stop reading at the limit
    p.expect_prefix("ERROR ")
    p.expect_closed()
    Publisher(port, tls=pki.client_context()).publish("big", "small enough")


# ---------------------------------------------------------------- reload

def served_serial(pki, port):
    """The serial number of the certificate a new connection is shown."""
    with socket.create_connection((HOST, port), timeout=5) as raw:
        with pki.client_context().wrap_socket(raw, server_hostname=HOST) as s:
            return s.getpeercert()["serialNumber"]


def test_sighup_rereads_the_certificate(broker_factory, pki, tmp_path):
    """The listener's files are replaced and SIGHUP sent: new connections
    see the new certificate, one made before goes on with its own."""
    crt, key = tmp_path / "live.crt", tmp_path / "live.key"
    crt.write_bytes((pki.dir / "server.crt").read_bytes())
    key.write_bytes((pki.dir / "server.key").read_bytes())
    b, (port,) = start_with_listeners(broker_factory, [
        ("json_consumer", ["certfile %s" % crt, "keyfile %s" % key])])
    assert served_serial(pki, port) == SERVER_SERIAL
    before = Qos2Consumer(b, "before", port=port, tls=pki.client_context()).connect()
    before.subscribe("renewed")

    crt.write_bytes((pki.dir / "server2.crt").read_bytes())
    key.write_bytes((pki.dir / "server2.key").read_bytes())
    start = len(b.log_text())
    b.reload()
    log_since(b, start, r"notice: reload: listener %d: TLS files re-read, certificate "
                        r"CN=localhost, serial %s, expires " % (port, NEW_SERIAL))
    assert served_serial(pki, port) == NEW_SERIAL
    after = Qos2Consumer(b, "after", port=port, tls=pki.client_context()).connect()
    after.subscribe("renewed")
    b.publisher().publish("renewed", "for both")
    for c in (before, after):
        assert c.wait_messages(1, "renewed") == ["for both"]
        c.settle()


def test_sighup_keeps_the_certificate_when_the_new_one_is_bad(broker_factory, pki, tmp_path):
    crt = tmp_path / "live.crt"
    crt.write_bytes((pki.dir / "server.crt").read_bytes())
    b, (port,) = start_with_listeners(broker_factory, [
        ("json_consumer", ["certfile %s" % crt, "keyfile %s" % pki.path("server.key")])])
    conf = b.workdir / "broker.conf"
    for bad, reason in (("server2.crt", r"keyfile \S+ is not the key of certfile \S+"),
                        (None, r"certfile \S+: not a PEM file \(no start line\)")):
        crt.write_bytes((pki.dir / bad).read_bytes() if bad else b"not a certificate\n")
        start = len(b.log_text())
        b.reload()
        log_since(b, start, r"warning: reload: listener %d at %s:\d+: %s; it keeps its "
                            r"certificate$" % (port, re.escape(str(conf)), reason))
        assert served_serial(pki, port) == SERVER_SERIAL


def test_sighup_keeps_a_blocks_settings_when_their_files_do_not_load(mqtt_factory, pki,
                                                                   tmp_path):
    """New TLS keys whose files do not load are not taken, nor the rest of
    the block's: use_identity_as_username without the CA that makes
    require_certificate work would refuse every client."""
    pw = write_passwords(tmp_path / "passwd")
    b, (port,) = start_with_listeners(mqtt_factory, [("mqtt", tls_lines(pki))],
                                      config={"password_file": pw})
    base = b.conf_text
    b.conf_text = base + "cafile %s\nrequire_certificate true\nuse_identity_as_username true\n" \
        % (tmp_path / "missing-ca.crt")
    start = len(b.log_text())
    text = b.reload()
    assert "changed" not in text.replace("0 settings changed", ""), text
    log_since(b, start, r"warning: reload: listener %d at \S+: .*missing-ca\.crt.*; it keeps "
                        r"its TLS settings and certificate$" % port)
    mosquitto_pub(port, "tls/still", "m", args=["--cafile", pki.path("ca.crt"), "-u", "alice",
                                                "-P", "secret"])


def test_bad_certificate_stops_the_start(broker_factory, pki, tmp_path):
    cases = [
        (["certfile " + pki.path("server.crt"), "keyfile " + pki.path("alice.key")],
         r"keyfile \S+alice\.key is not the key of certfile \S+server\.crt"),
        (["certfile %s" % (tmp_path / "missing.crt"), "keyfile " + pki.path("server.key")],
         r"certfile \S+missing\.crt: No such file or directory"),
        (tls_lines(pki, extra=["ciphers NO-SUCH-CIPHER"]),
         r"ciphers NO-SUCH-CIPHER: no cipher match"),
        (tls_lines(pki, extra=["cafile " + pki.path("ca.crt"), "require_certificate true",
                               "crlfile " + pki.path("alice.crt")]),
         r"crlfile \S+alice\.crt: no certificate revocation list in it"),
    ]
    for i, (lines, reason) in enumerate(cases):
        port = free_ports(1)[0]
        text = "listener %d\n%s\n" % (port, "\n".join(lines))
        b = broker_factory(start=False, conf_text=text, name="bad%d" % i)
        with pytest.raises(HarnessError, match="exited with status 1"):
            b.start()
        conf = re.escape(str(b.workdir / "broker.conf"))
        where = "%s:%d" % (conf, line_of(b, "listener %d" % port))
        assert re.search(r"error: listener %d at %s: %s: correct it, then check with "
                         r"broker -t$" % (port, where, reason), b.log_text(), re.M), b.log_tail()
        # broker -t finds it too.
        res = subprocess.run([str(broker_binary()), "-t", "-c", str(b.workdir / "broker.conf")],
                             stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        assert res.returncode == 2, res
        assert re.search(r"^%s: listener %d: %s$" % (where, port, reason),
                         res.stderr.decode(), re.M), res.stderr.decode()


def test_check_reports_every_tls_error_with_the_others(pki, tmp_path):
    """broker -t loads the TLS files of every block, also when the file
    has other errors: they are all reported at once."""
    conf = tmp_path / "tls.conf"
    conf.write_text("max_topics 0\n"
                    "listener 18883\ncertfile %s\nkeyfile %s\n"
                    "listener 18884\ncertfile %s\nkeyfile %s\n"
                    "listener 18885\ncertfile %s\n"
                    "no_such_key 1\n"
                    % (pki.path("server.crt"), pki.path("alice.key"),
                       tmp_path / "missing.crt", pki.path("server.key"), pki.path("server.crt")))
    res = subprocess.run([str(broker_binary()), "-t", "-c", str(add_root_user(conf))],
                         stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    err = res.stderr.decode()
    assert res.returncode == 2, err
    want = [r"%s:1: bad value '0' for key 'max_topics'" % conf,
            r"%s:10: unknown key 'no_such_key'" % conf,
            r"%s:8: listener 18885: certfile without keyfile" % conf,
            r"%s:2: listener 18883: keyfile \S+alice\.key is not the key of certfile "
            r"\S+server\.crt$" % conf,
            r"%s:5: listener 18884: certfile \S+missing\.crt: No such file or directory$" % conf]
    for w in want:
        assert re.search("^" + w, err, re.M), "no %r in:\n%s" % (w, err)
    assert len(err.splitlines()) == len(want), err    # the block without a key: once


def test_an_expired_server_certificate_is_warned_of(broker_factory, pki):
    b, (port,) = start_with_listeners(broker_factory, [("json_consumer", tls_lines(pki, "old"))])
    assert re.search(r"warning: listening on 127\.0\.0\.1 port %d \(JSON-lines consumers over "
                     r"TLS, certificate CN=old, serial 4001, EXPIRED on 2020-01-02: clients "
                     r"will refuse it\)$" % port, b.log_text(), re.M), b.log_tail()
    ctx = pki.client_context()
    ctx.check_hostname = False          # it names no address: only its dates count here
    with pytest.raises(ssl.SSLError, match="certificate has expired"):
        JsonClient(port, tls=ctx)


# ---------------------------------------------------------------- back-pressure

SIZE = 16 << 10
COUNT = 640             # 10 MiB: more than the kernel buffers of a socket and the
                        # delivery socket (client_delivery_buffer) hold
BATCH = 32


def test_a_tls_subscriber_that_does_not_read_holds_up_no_other(mqtt_factory, pki):
    """client_output_limit through an OpenSSL bufferevent: the silent
    subscriber's deliveries wait in its topicd while a plain one keeps
    pace; once it reads, it gets everything, in order."""
    b, (port,) = start_with_listeners(mqtt_factory, [("mqtt", tls_lines(pki))],
                                      config={"client_output_limit": 4096})
    fast = Receiver(lambda: b.mqtt_port, "tls-fast", clean=True)
    fast.connect()
    assert fast.subscribe([("tbp/t", 0)]) == [0]
    fast.start()
    slow = SilentSubscriber(port, "tls-slow", "tbp/t", tls=pki.client_context())
    pub = b.publisher()
    sent = [("%06d %s" % (i, "y" * (SIZE - 7))).encode() for i in range(COUNT)]
    for k in range(0, COUNT, BATCH):
        pub.publish_pipelined([("tbp/t", m.decode()) for m in sent[k:k + BATCH]])
        fast.wait_until(lambda: len(fast.arrivals) >= k + BATCH, 10,
                        "messages up to #%d" % (k + BATCH))
    st = b.topicd_status("tbp/t")
    assert st["lag"] > 0, "nobody is behind: the TLS subscriber was not held back"
    time.sleep(QUIET)                   # an absence of progress, watched over a period
    assert b.topicd_status("tbp/t")["lag"] == st["lag"], "the silent subscriber moved"
    assert slow.drain(COUNT) == sent, "the TLS subscriber's messages differ"


def test_a_tls_publisher_beyond_max_client_pending_is_read_again(broker_factory, pki):
    """A pipelining publisher over TLS is not read past max_client_pending
    while its topicd is stopped, and everything it sent is read and
    answered once the topicd goes on: nothing is left behind in OpenSSL's
    buffers when reading resumes."""
    pending, n = 8, 200
    b, (port,) = start_with_listeners(broker_factory, [("json_publisher", tls_lines(pki))],
                                      config={"max_client_pending": pending})
    c = b.consumer("tls-flood")
    c.subscribe("tflood")
    b.publisher().publish("tflood", "first")          # its topicd runs
    tpid = b.wait_topicd("tflood")
    p = Publisher(port, tls=pki.client_context(), timeout=20)
    lines = b"".join(b'{"type":"PUB","topic":"tflood","msg":"m%d %s"}\n' % (i, b"x" * 1024)
                     for i in range(n))
    kill_pid(tpid, signal.SIGSTOP)
    # One thread writes (an SSL socket is not used by two at once): it
    # blocks until the broker reads again; the PUBRECs wait for it.
    writer = threading.Thread(target=p.send_raw, args=(lines,))
    try:
        writer.start()
        wait_for(lambda: b.status()[1]["tflood"]["held"] == pending, 10,
                 "%d publishes held for the stopped topicd" % pending)
        time.sleep(QUIET)               # an absence of progress, watched over a period
        assert b.status()[1]["tflood"]["held"] == pending
    finally:
        kill_pid(tpid, signal.SIGCONT)
    writer.join(20)
    assert not writer.is_alive(), "the broker did not read the rest of the publishes"
    ids = [p.read_pubrec() for _ in range(n)]
    p.send_raw(b"".join(b'{"type":"PUBREL","msgId":%d}\n' % i for i in ids))
    for i in ids:
        p.read_pubcomp(i)
    got = c.wait_messages(n + 1, "tflood", timeout=30)
    assert got == ["first"] + ["m%d %s" % (i, "x" * 1024) for i in range(n)]
    c.settle()


def test_a_tls_disconnect_behind_unread_deliveries_cancels_the_will(mqtt_factory, pki):
    """Over TLS as over TCP: the DISCONNECT the socket still holds, still
    encrypted, when a write fails is read through OpenSSL, and the will
    is not published (disconnect_behind_unread_deliveries)."""
    b, (port,) = start_with_listeners(mqtt_factory, [("mqtt", tls_lines(pki))],
                                      config={"client_output_limit": 4096,
                                              "log_type": "information"})
    disconnect_behind_unread_deliveries(b, silent_mqtt(port, pki.client_context()), "trst")
