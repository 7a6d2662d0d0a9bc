"""Listener blocks (broker.conf(5)): several listeners of each protocol
on one broker, what a bad block is told (FILE:LINE, broker -t exits 2),
the shortcut ports a block stands in for, and what a reload may change
in a block."""

import re
import subprocess

import pytest

from broker_harness import (PLEASE_LOGIN, REPO_ROOT, JsonClient, Publisher,
                            Qos2Consumer, add_root_user, broker_binary, free_ports, read_cmdline,
                            start_with_listeners, title_of, wait_for)
from mqtt_helpers import Receiver, connected_client


def start_with_blocks(factory, protocols, config=None):
    """A broker with one plain listener block per protocol named, each on
    a free port.  Returns (broker, ports)."""
    return start_with_listeners(factory, [(p, []) for p in protocols], config)


def test_several_listeners_of_each_protocol(mqtt_factory):
    """Two blocks of each protocol besides the shortcut ports: every one
    speaks its protocol, over one topic space."""
    b, (m1, m2, c1, c2, p1, p2) = start_with_blocks(mqtt_factory, [
        "mqtt", "mqtt", "json_consumer", "json_consumer", "json_publisher", "json_publisher"])
    receivers = []
    for port in (b.mqtt_port, m1, m2):
        r = Receiver(lambda port=port: port, "sub%d" % port, clean=True)
        r.connect()
        assert r.subscribe([("many/+", 1)]) == [1]
        r.start()
        receivers.append(r)
    consumers = []
    for port in (b.consumer_port, c1, c2):
        c = Qos2Consumer(b, "c%d" % port, port=port).connect()
        c.subscribe("many/json")
        consumers.append(c)
    sent = []
    for port in (b.publisher_port, p1, p2):
        Publisher(port).publish("many/json", "via %d" % port)
        sent.append("via %d" % port)
    for port in (b.mqtt_port, m1, m2):
        c = connected_client(port, "pub%d" % port)
        c.publish("many/mqtt", b"via %d" % port, qos=1)
        c.disconnect()
    for c in consumers:
        assert sorted(c.wait_messages(3, "many/json")) == sorted(sent)
        c.settle()
    for r in receivers:
        r.wait_count(6)
        assert sorted(r.payloads("many/mqtt")) == sorted(b"via %d" % p
                                                       for p in (b.mqtt_port, m1, m2))
        assert sorted(r.payloads("many/json")) == sorted(m.encode() for m in sent)
    # The log names each listener; the title shows every port.
    for port, what in ((m1, "MQTT"), (c2, "JSON-lines consumers"), (p1, "JSON-lines publishers")):
        assert "listening on 127.0.0.1 port %d (%s)\n" % (port, what) in b.log_text()
    ports = wait_for(lambda: re.search(r"^broker: master (\S+) ", title_of(
        read_cmdline(b.pid) or b"")), 5, "the master's title").group(1)
    assert sorted(int(p) for p in ports.split(",")) == sorted(
        [b.mqtt_port, b.consumer_port, b.publisher_port, m1, m2, c1, c2, p1, p2])


def check(tmp_path, text, *args):
    conf = tmp_path / "l.conf"
    conf.write_text(text)
    add_root_user(conf)
    res = subprocess.run([str(broker_binary()), "-c", str(conf)] + list(args),
                         stdin=subprocess.DEVNULL, capture_output=True, timeout=10,
                         cwd=str(tmp_path))
    return conf, res


BAD = [
    pytest.param("listener 8883\nprotocol http\n",
                 ["2: bad value 'http' for key 'protocol': expected mqtt, websockets,"
                  " json_consumer or json_publisher"], id="unknown-protocol"),
    pytest.param("retry_interval 2\ncertfile server.crt\nlistener 8883\n",
                 ["2: key 'certfile' belongs in a listener block: put it after a 'listener'"
                  " line"], id="tls-key-outside-a-block"),
    pytest.param("listener 8883\ncertfile server.crt\n\nlistener 8884\nkeyfile k\n",
                 ["1: listener 8883: certfile without keyfile",
                  "4: listener 8884: keyfile without certfile"], id="certfile-without-keyfile"),
    pytest.param("listener 8883\ncafile ca.crt\n",
                 ["1: listener 8883: cafile needs certfile and keyfile, or psk_hint (a TLS"
                  " listener)"],
                 id="tls-key-on-a-plain-listener"),
    pytest.param("listener 8883\nlistener 8883 127.0.0.1\n",
                 ["2: listener 8883 127.0.0.1: port 8883 on 127.0.0.1 is also the listener"
                  " at {conf}:1"], id="same-port-twice"),
    pytest.param("listener 70000\n", ["1: bad value '70000' for key 'listener': expected"
                                      " PORT [ADDRESS], a port from 1 to 65535"], id="bad-port"),
]


@pytest.mark.parametrize("text,errors", BAD)
def test_a_bad_block_is_refused_with_its_line(tmp_path, text, errors):
    conf, res = check(tmp_path, text, "-t")
    err = res.stderr.decode()
    assert res.returncode == 2, err
    want = ["%s:%s" % (conf, e.format(conf=conf)) for e in errors]
    assert err.splitlines() == want, err
    # Starting with it: the same errors, logged, and exit status 2.
    data = tmp_path / "data"
    data.mkdir()
    c, p = free_ports(2)
    _, res = check(tmp_path, text, "-D", str(data), "-p", "0", "-J", "%d:%d" % (c, p))
    err = res.stderr.decode()
    assert res.returncode == 2, err
    for w in want:
        assert re.search(r"broker\[\d+\]: error: %s$" % re.escape(w), err, re.M), err


def test_blocks_stand_in_for_the_shortcut_ports(tmp_path):
    """As mosquitto's listeners for its default listener: the MQTT port
    gives way to an MQTT block unless given; -T prints the blocks."""
    conf, res = check(tmp_path, "listener 8883 0.0.0.0\nprotocol mqtt\n", "-T")
    assert res.returncode == 0, res.stderr.decode()
    out = res.stdout.decode()
    for line in ("mqtt_port 0", "json_consumer_port 4040", "json_publisher_port 4041",
                 "\nlistener 8883 0.0.0.0\nprotocol mqtt\n#certfile\n"):
        assert line in out, out
    _, res = check(tmp_path, "listener 8883\n", "-T", "-p", "1883")
    assert "\nmqtt_port 1883\n" in res.stdout.decode()
    _, res = check(tmp_path, "mqtt_port 1884\nlistener 8883\n", "-T")
    assert "\nmqtt_port 1884\n" in res.stdout.decode()


def test_reload_changes_tls_keys_not_listeners(broker_factory):
    b, (port,) = start_with_blocks(broker_factory, ["json_consumer"])
    base = b.conf_text
    b.conf_text = base.replace("protocol json_consumer", "protocol json_publisher")
    log = b.reload()
    assert "warning: reload: listener %d changed its address, port, protocol or TLS; " \
           "listeners take effect at the next restart" % port in log, log
    assert "configuration re-read, 0 settings changed" in log, log
    b.conf_text = base + "listener %d\n" % free_ports(1)[0]
    log = b.reload()
    assert "reload: listener blocks added or removed; they take effect at the next " \
           "restart" in log, log
    # The listener still speaks what it spoke.
    c = JsonClient(port)
    c.expect(PLEASE_LOGIN)
    # A key a reload may change: per_listener_settings's, in the block;
    # with per_listener_settings false it is the global one too, as in
    # mosquitto.
    pw = b.workdir / "passwd"
    pw.write_text("")
    b.conf_text = base + "password_file %s\n" % pw
    log = b.reload()
    assert "notice: reload: listener %d: password_file changed\n" % port in log, log
    assert "notice: reload: password_file changed\n" in log, log
    assert "configuration re-read, 2 settings changed" in log, log


BLOCK_KEY_RE = re.compile(r'\{\s*"(\w+)",\s*CONF_(\w+),\s*L\(\w+\),\s*(NULL|"[^"]*"),\s*'
                          r'[\d.]+,\s*[\d.]+,\s*(RELOAD|FIXED),')
# Documented with the global keys of the same names (per_listener_settings).
SHARED = {"password_file", "acl_file", "psk_file", "use_username_as_clientid",
          "allow_anonymous"}


def test_every_listener_key_is_documented():
    rows = BLOCK_KEY_RE.findall((REPO_ROOT / "broker" / "core" / "listener_conf.c").read_text())
    assert len(rows) == 19, rows
    page = (REPO_ROOT / "man" / "broker.conf.5").read_text()
    example = (REPO_ROOT / "etc" / "broker.conf").read_text()
    assert re.search(r"^\.It Cm listener Ar port Op Ar address$", page, re.M)
    for key, typ, default, reload in rows:
        assert re.search(r"\b%s\b" % key, example), "etc/broker.conf does not name %s" % key
        if key == "listener":
            continue
        if key in SHARED:
            assert re.search(r"^\.Cm %s( ,)?$" % key, page, re.M), key
            continue
        m = re.search(r"^\.It Cm %s Ar \S+\n(.*?)(?=^\.It Cm |^\.El)" % key, page, re.M | re.S)
        assert m, "broker.conf.5 does not describe %s" % key
        entry = m.group(1)
        if default != "NULL":
            assert "Default:\n.Li %s " % default.strip('"') in entry, "%s: default" % key
        else:
            assert "Default: " in entry or "Default:\n" in entry, key
        assert ("Reloadable." if reload == "RELOAD" else "Needs a restart.") in entry, key
