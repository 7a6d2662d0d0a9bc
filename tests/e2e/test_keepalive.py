"""TCP keep-alive on clients' connections (tcp_keepalive), so that a peer
that vanished without a FIN (its host down, the network cut) is found
gone: a JSON-lines consumer has no other heartbeat, and while it seems
connected no other connection may log in with its user name.  The
kernel's view of the broker's end of a connection, through ss(8), shows
the probe timer the setting asks for."""

import re
import subprocess

import pytest

from broker_harness import wait_for
from mqtt_helpers import connected_client

UNIT = {"ms": 0.001, "sec": 1, "min": 60}


def keepalive_timer(server_port, client_port):
    """Seconds left on the keep-alive timer of the broker's end of the
    connection, or None when it has none."""
    out = subprocess.run(["ss", "-tnoH", "state", "established",
                          "( sport = :%d and dport = :%d )" % (server_port, client_port)],
                         check=True, capture_output=True, text=True).stdout
    assert out.strip(), "no such connection in ss"
    m = re.search(r"timer:\((keepalive|on),([0-9.]+)(ms|sec|min)", out)
    if m is None:
        return None
    if m.group(1) == "on":            # data in flight: the retransmission timer shows
        return "busy"
    return float(m.group(2)) * UNIT[m.group(3)]


def settled_timer(server_port, client_port):
    """keepalive_timer(), once no data is in flight on the connection."""
    return wait_for(lambda: (keepalive_timer(server_port, client_port),)
                    if keepalive_timer(server_port, client_port) != "busy" else None,
                    5, "no data in flight")[0]


@pytest.mark.parametrize("setting", [None, 4, 0])
def test_client_connections_are_probed_after_tcp_keepalive_seconds(mqtt_factory, setting):
    """Default 60 s; 4 s; 0: no probes.  A JSON-lines consumer and an MQTT
    client alike."""
    b = mqtt_factory({} if setting is None else {"tcp_keepalive": setting})
    want = 60 if setting is None else setting
    c = b.consumer("ka-user")
    m = connected_client(b.mqtt_port, "ka-mqtt")
    for port, local in ((b.consumer_port, c.client.local_port),
                        (b.mqtt_port, m.sock.getsockname()[1])):
        left = settled_timer(port, local)
        if want == 0:
            assert left is None, "a keep-alive timer with tcp_keepalive 0: %s" % left
        else:
            assert left is not None and 0 < left <= want, (port, left)


def test_a_reload_applies_to_new_connections(mqtt_factory):
    b = mqtt_factory({"tcp_keepalive": 0})
    old = connected_client(b.mqtt_port, "ka-old")
    b.reload({"tcp_keepalive": 5})
    new = connected_client(b.mqtt_port, "ka-new")
    assert settled_timer(b.mqtt_port, old.sock.getsockname()[1]) is None
    left = settled_timer(b.mqtt_port, new.sock.getsockname()[1])
    assert left is not None and 0 < left <= 5, left
