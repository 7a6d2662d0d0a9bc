"""Faults of the machine: a full disk, the free-space floor, a topic's
byte budget, and running out of file descriptors.  Publishes that cannot
be stored wait unacknowledged (no PUBREC), nothing acknowledged is lost,
no store is damaged, and the broker recovers by itself once there is
room again."""

import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from broker_harness import HOST, HarnessError, LineTimeout, wait_for

BIG = "x" * 60000           # one JSON-lines message, about 60 KB on disk


@pytest.fixture
def small_disk(tmp_path):
    """A 12 MiB tmpfs (root only), unmounted at the end."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mnt)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: %s" % res.stderr.strip())
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(path, megabytes):
    """Ballast on the small disk, to be removed to make room again."""
    with open(path, "wb") as f:
        f.write(b"\0" * (megabytes << 20))


class Waiting:
    """A JSON-lines exchange left waiting for room: at its PUB (no PUBREC
    yet) or at its PUBREL (stored, its release waits)."""

    def __init__(self, pub, msg, mid=None):
        self.pub, self.msg, self.mid = pub, msg, mid

    def finish(self, timeout=15):
        if self.mid is None:
            self.mid = self.pub.read_pubrec(timeout)
            self.pub.send_json({"type": "PUBREL", "msgId": self.mid})
        self.pub.read_pubcomp(self.mid, timeout)


def publish_until_waiting(pub, topic, wait=2.0, most=400):
    """Publishes (full exchanges) until one waits more than wait seconds for
    its PUBREC or its PUBCOMP; returns (the messages completed, Waiting)."""
    acked = []
    for i in range(most):
        msg = "%d %s" % (i, BIG)
        pub.send_json({"type": "PUB", "topic": topic, "msg": msg})
        try:
            mid = pub.read_pubrec(wait)
        except HarnessError:
            return acked, Waiting(pub, msg)
        pub.send_json({"type": "PUBREL", "msgId": mid})
        try:
            pub.read_pubcomp(mid, wait)
        except HarnessError:
            return acked, Waiting(pub, msg, mid)
        acked.append(msg)
    raise AssertionError("%d messages were all taken: the disk never filled" % most)


def on_disk(broker_factory, disk, config):
    """A broker whose data directory is on the small disk (its log is not)."""
    b = broker_factory(config, start=False)
    b.data_dir = disk / "data"
    b.data_dir.mkdir()
    b.start()
    return b


def offline_consumer(b, name, topic):
    """A durable subscriber that is gone: every message is kept for it."""
    c = b.consumer(name)
    c.subscribe(topic)
    c.close()


def test_a_full_disk_makes_publishes_wait_and_the_broker_recovers(broker_factory, small_disk):
    ballast = small_disk / "ballast"
    fill(ballast, 3)
    b = on_disk(broker_factory, small_disk, {"min_free_space": 0, "checkpoint_size": "256k"})
    offline_consumer(b, "full-cons", "full")
    pub = b.publisher()
    acked, waiting = publish_until_waiting(pub, "full")
    assert len(acked) > 20, "the disk filled after %d messages" % len(acked)
    wait_for(lambda: re.search(r"topic full: the disk is full: \d+ answers wait",
                               b.log_text()), 10, "the topicd to say the disk is full")
    # Nothing is answered while it stays full.
    with pytest.raises(LineTimeout):
        pub.read_raw_line(2.0)
    # Room again: the waiting exchange goes on by itself, in order.
    ballast.unlink()
    waiting.finish()
    acked.append(waiting.msg)
    wait_for(lambda: "the disk took the waiting batch" in b.log_text(), 10,
             "the topicd to say the batch went in")
    pub.publish("full", "after")
    acked.append("after")
    assert b.topicd_pid("full") is not None
    assert "killed" not in b.log_text() and "exited" not in b.log_text(), b.log_tail()
    # Every acknowledged message is there, also after a restart.
    b.restart()
    c = b.consumer("full-cons")
    assert c.wait_messages(len(acked), "full", timeout=30) == acked
    c.settle()
    assert not c.errors, c.errors


def test_below_the_free_space_floor_publishes_wait(broker_factory, small_disk):
    ballast = small_disk / "ballast"
    b = on_disk(broker_factory, small_disk, {"min_free_space": "6m"})
    offline_consumer(b, "floor-cons", "floor")
    fill(ballast, 4)
    pub = b.publisher()
    acked, waiting = publish_until_waiting(pub, "floor")
    wait_for(lambda: "topic floor: no room (min_free_space" in b.log_text(), 10,
             "the topicd to say it has no room")
    wait_for(lambda: b.status()[1]["floor"]["full"], 10, "the status line to show it full")
    # The floor is kept: the disk never filled, no write failed.
    assert "the disk is full" not in b.log_text()
    ballast.unlink()
    waiting.finish()                    # ROOM, RESUME, and the held publish goes in
    acked.append(waiting.msg)
    wait_for(lambda: "topic floor: room again" in b.log_text(), 10, "room again")
    c = b.consumer("floor-cons")
    assert c.wait_messages(len(acked), "floor", timeout=30) == acked
    c.settle()


def test_a_topic_over_its_byte_budget_waits_for_its_subscribers(broker_factory):
    b = broker_factory({"max_topic_size": "512k"})
    offline_consumer(b, "budget-cons", "budget")
    pub = b.publisher()
    acked, waiting = publish_until_waiting(pub, "budget")
    assert 6 <= len(acked) <= 12, "512k of 60 KB messages: %d taken" % len(acked)
    wait_for(lambda: "topic budget: no room (max_topic_size" in b.log_text(), 10,
             "the topicd to say so")
    # Other topics go on.
    b.publisher().publish("other", "fine")
    # The subscriber takes the messages; the topic has room again and the
    # waiting one is stored, acknowledged, and delivered after the others.
    c = b.consumer("budget-cons").start()
    waiting.finish(30)
    assert c.wait_messages(len(acked) + 1, "budget", timeout=30) == acked + [waiting.msg]
    c.stop()
    c.settle()
    assert not c.errors, c.errors
    dlq = list((b.data_dir / "topics").glob("%24DLQ.*"))
    assert dlq == [], "nothing is dead-lettered: %s" % dlq


def test_out_of_descriptors_accepting_pauses_and_resumes(broker_factory):
    b = broker_factory()
    b.publisher().publish("fd", "before")
    res = subprocess.run(["prlimit", "--nofile=64:64", "--pid", str(b.pid)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip("cannot lower the broker's descriptor limit: %s" % res.stderr.strip())
    held = []
    try:
        for _ in range(80):
            s = socket.create_connection((HOST, b.publisher_port), timeout=5)
            held.append(s)
        wait_for(lambda: "Too many open files; pausing new connections" in b.log_text(), 10,
                 "the master to pause accepting")
    finally:
        for s in held:
            s.close()
    # Within the pause (1 s) and after, the broker serves again.
    wait_for(lambda: try_publish(b), 15, "a publish to be served again", interval=0.5)
    assert b.running()
    log = b.log_text()
    assert len(re.findall(r"pausing new connections", log)) < 20, "the pause is rate-limited"


def try_publish(b):
    try:
        b.publisher().publish("fd", "after %f" % time.monotonic(), timeout=5)
        return True
    except (OSError, HarnessError, ConnectionError):
        return False


def test_a_spare_journal_file_goes_before_the_floor_refuses(broker_factory, small_disk):
    """A topic whose subscriber keeps up keeps the file of a consumed
    journal segment for reuse (NAME.spare, a MiB or more).  When the free
    space comes down to the floor, that file is deleted first, and the
    publishes it makes room for are taken."""
    b = on_disk(broker_factory, small_disk, {"min_free_space": "6m", "checkpoint_size": "1m"})
    c = b.consumer("spare-cons")
    c.subscribe("spare")
    c.start()
    pub = b.publisher()
    spare = b.data_dir / "topics" / "spare.spare"
    sent = []
    for i in range(200):
        sent.append("%d %s" % (i, BIG))
        pub.publish("spare", sent[-1])
        c.wait_messages(len(sent), "spare", timeout=10)
        if spare.exists():
            break
    assert spare.exists(), "no spare after %d messages" % len(sent)
    held = spare.stat().st_size
    # Ballast down to half a spare above the floor: the next megabyte of
    # messages only fits once the spare is gone.
    st = os.statvfs(small_disk)
    free = st.f_bavail * st.f_frsize
    with open(small_disk / "ballast", "wb") as f:
        f.write(b"\0" * (free - (6 << 20) - held // 2))
    for i in range(len(sent), len(sent) + 24):
        sent.append("%d %s" % (i, BIG))
        pub.publish("spare", sent[-1], timeout=10)
    wait_for(lambda: not spare.exists(), 10, "the spare to be deleted")
    assert "no room" not in b.log_text(), b.log_tail()
    assert c.wait_messages(len(sent), "spare", timeout=30) == sent
    c.stop()
    c.settle()
    assert not c.errors, c.errors
