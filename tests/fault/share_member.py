"""A member of a shared subscription as a process of its own, for
SIGKILL: an MQTT 3.1.1 client with a persistent session whose state is
a journal on disk, written and synced before each acknowledgement.

    share_member.py PORT CLIENT_ID JOURNAL FILTER:QOS...

Journal lines: "A TOPIC QOS PID HEXPAYLOAD" an arrival (a QoS 2 one then
waits for its PUBREL), "R PID" a PUBREL received, "S" subscribed.  A
QoS 2 PUBLISH whose packet id waits for its PUBREL is a repeat, not an
arrival (the receiver's rules of MQTT 4.3.3, method A).  Started again on
the same journal, it goes on where the killed one stopped.  It prints
"ready" once subscribed (or resumed), then runs until killed."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))

from broker_harness import ConnectionClosed  # noqa: E402
from mqtt_helpers import (PINGRESP, PUBACK, PUBCOMP, PUBLISH, PUBREC,  # noqa: E402
                          PUBREL, PacketTimeout, ack_packet, connect_retry,
                          pingreq_packet)

KEEPALIVE = 30


def load(path):
    """The packet ids waiting for PUBREL, and whether it subscribed."""
    waiting, subscribed = set(), False
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if parts and parts[0] == "A" and parts[2] == "2":
                    waiting.add(int(parts[3]))
                elif parts and parts[0] == "R":
                    waiting.discard(int(parts[1]))
                elif parts == ["S"]:
                    subscribed = True
    return waiting, subscribed


def note(journal, line):
    journal.write(line + "\n")
    journal.flush()
    os.fsync(journal.fileno())


def handle(c, p, journal, waiting):
    if p.type == PUBLISH:
        if not (p.qos == 2 and p.pid in waiting):
            topic = p.topic if isinstance(p.topic, str) else p.topic.decode()
            note(journal, "A %s %d %d %s" % (topic, p.qos, p.pid, p.payload.hex()))
            if p.qos == 2:
                waiting.add(p.pid)
        if p.qos == 1:
            c.send(ack_packet(PUBACK, p.pid))
        elif p.qos == 2:
            c.send(ack_packet(PUBREC, p.pid))
    elif p.type == PUBREL:
        note(journal, "R %d" % p.pid)
        waiting.discard(p.pid)
        c.send(ack_packet(PUBCOMP, p.pid))
    elif p.type != PINGRESP:
        raise SystemExit("unexpected %r" % p)


def main():
    port, client_id, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    filters = [(f.rsplit(":", 1)[0], int(f.rsplit(":", 1)[1])) for f in sys.argv[4:]]
    waiting, subscribed = load(path)
    journal = open(path, "a")
    c, ack = connect_retry(lambda: port, client_id, clean=False, timeout=30.0,
                           keepalive=KEEPALIVE)
    if not subscribed:
        codes = c.subscribe(filters)
        if codes != [q for _, q in filters]:
            raise SystemExit("SUBACK %s" % codes)
        note(journal, "S")
    elif not ack.session_present:
        raise SystemExit("the session is gone")
    print("ready", flush=True)
    for p in c.publishes():
        handle(c, p, journal, waiting)
    while True:
        try:
            p = c.read_packet(KEEPALIVE / 3)
        except PacketTimeout:
            c.send(pingreq_packet())
            continue
        except ConnectionClosed:
            raise SystemExit("the broker closed the connection")
        handle(c, p, journal, waiting)


if __name__ == "__main__":
    main()
