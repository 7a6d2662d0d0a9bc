"""Sustained load at the default settings, as users run the broker: one
publisher -> one subscriber, one -> sixteen, eight independent pairs, at
QoS 0, 1 and 2, 64 messages in flight, 64-byte and 64 KiB payloads,
100,000 messages (20,000 of 64 KiB).  Subscribers read as fast as they
can and nothing throttles the publishers.  Every message must arrive,
none may go to the dead-letter topic, and no subscriber may wait more
than a second between two deliveries, nor a publisher between two
acknowledgements.

Run against the release build (tests/run-load): this is about what the
broker does under load, not about its memory errors."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from broker_harness import REPO_ROOT

LOAD = Path(os.environ.get("MQTT_LOAD", REPO_ROOT / "build" / "bench" / "mqtt_load"))
MAX_GAP_MS = 1000.0

SHAPES = {
    "1to1": ["--pubs", "1", "--subs", "1", "--topics", "1"],
    "1to16": ["--pubs", "1", "--subs", "16", "--topics", "1"],
    "8pairs": ["--pubs", "8", "--subs", "8", "--topics", "8"],
}
CASES = [(shape, qos, size) for shape in SHAPES for qos in (0, 1, 2) for size in (64, 65536)]


def run_load(port, shape, qos, size):
    total = 100000 if size <= 64 else 20000
    per_pub = total // int(SHAPES[shape][1])
    args = [str(LOAD), "-p", str(port), "--qos", str(qos), "--size", str(size),
            "--window", "64", "--count", str(per_pub), "--backlog", "0", "--drain", "60",
            "--prefix", "load-%s-q%d-%d" % (shape, qos, size)] + SHAPES[shape]
    res = subprocess.run(args, capture_output=True, text=True, timeout=600)
    figures = dict(re.findall(r"(\w+)=([\d.]+)", res.stdout))
    return res, figures


@pytest.mark.parametrize("shape,qos,size", CASES,
                         ids=["%s-qos%d-%dB" % c for c in CASES])
def test_every_message_arrives_without_a_stall(mqtt_factory, shape, qos, size):
    if not LOAD.exists():
        pytest.skip("build/bench/mqtt_load is not built (make load builds it)")
    b = mqtt_factory()          # the built-in defaults
    res, f = run_load(b.mqtt_port, shape, qos, size)
    assert res.returncode == 0, "mqtt_load failed:\n%s%s" % (res.stdout, res.stderr[-3000:])
    subs = int(SHAPES[shape][3])
    fanout = subs // int(SHAPES[shape][1])
    assert int(f["sent"]) * fanout == int(f["received"]), res.stdout
    assert int(f["lost"]) == 0 and int(f["dups"]) == 0, res.stdout
    assert float(f["gap_ms"]) <= MAX_GAP_MS, "a subscriber waited too long: " + res.stdout
    assert float(f["ack_gap_ms"]) <= MAX_GAP_MS, "a publisher waited too long: " + res.stdout
    dlq = list((b.data_dir / "topics").glob("%24DLQ.*"))
    assert dlq == [], "something was dead-lettered: %s" % dlq
    log = b.log_text()
    assert not re.search(r"topicd .*(killed|exited)", log), log[-3000:]
