"""Supervision of the topicds: a topicd is restarted for ever and nothing
it was not able to store is acknowledged; a record it dies on repeatedly
is a poison record, dead-lettered while the topic goes on; a store that
does not read back fails its topic, loudly, without losing anything."""

import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time

import pytest

from broker_harness import (DLQ, PublishRefused, broker_binary, check_dead_letter,
                            wait_dead_letter, wait_for)

POISON = "poison-record-abort"      # the test build's topicd aborts on it


def test_a_topicd_killed_again_and_again_is_restarted_for_ever(broker_factory):
    """Twelve SIGKILLs in a row, far past the old crash limit: the topic is
    never given up, a publish sent while its topicd is down waits for the
    next one (no PUBREC before), and every message arrives once."""
    b = broker_factory({"restart_backoff_min": 0.05, "restart_backoff_max": 0.2})
    dlq = b.consumer("rf-dlq")
    dlq.subscribe(DLQ)
    cons = b.consumer("rf-cons")
    cons.subscribe("RF")
    pub = b.publisher()
    pub.publish("RF", "first")          # the topic's topicd starts for it
    sent = ["first"]
    pid = None
    for i in range(12):
        pid = b.wait_topicd("RF", not_pid=pid)
        os.kill(pid, signal.SIGKILL)
        # While it is down (or already back), this publish waits and is
        # acknowledged only once stored in the next topicd.
        pub.publish("RF", "m%d" % i, timeout=10)
        sent.append("m%d" % i)
    assert cons.wait_messages(len(sent), "RF", timeout=20) == sent
    wait_for(lambda: re.search(r"topic RF: topicd killed by signal 9 .*restart 12\)",
                               b.log_text()), 10, "the twelfth restart to be logged")
    assert "TOPIC FAILED" not in b.log_text()
    cons.settle()
    dlq.pump_for(0.5)
    assert dlq.messages(DLQ) == [], "nothing is dead-lettered"
    for c in (cons, dlq):
        assert not c.errors, (c.username, c.errors)


def test_a_topicd_that_ran_a_while_before_its_kill_is_back_at_once(broker_factory):
    """A topicd killed from outside every few seconds, after serving its
    topic each time, is restarted after restart_backoff_min every time:
    the back-off slows crash loops.  Before, the wait doubled at each kill
    that came within crash_window of the start, and kills 20 s apart kept
    the topic down for up to restart_backoff_max."""
    b = broker_factory({"restart_backoff_min": 0.1, "restart_backoff_max": 30})
    pub = b.publisher()
    pid = None
    n = 0
    for kill in range(4):
        # Served for 2.5 s: more than ten times the next wait, 200 ms.
        until = time.monotonic() + 2.5
        while time.monotonic() < until:
            pub.publish("BO", "m%d" % n, timeout=10)
            n += 1
        pid = b.wait_topicd("BO", not_pid=pid)
        os.kill(pid, signal.SIGKILL)
        pub.publish("BO", "after kill %d" % kill, timeout=10)
    waits = re.findall(r"topic BO: topicd killed by signal 9 \(Killed\) \(pid \d+\); "
                       r"restarting in (\d+) ms", b.log_text())
    assert waits == ["100"] * 4, waits


def test_a_topicd_that_crashes_itself_soon_after_each_start_still_backs_off(broker_factory):
    """A topicd that aborts 1.5 s after each start is in a crash loop:
    the reset at ten times the next wait does not apply once that wait
    passes a tenth of the run, so the wait still doubles (100, 200, 400,
    800 ms) towards restart_backoff_max."""
    b = broker_factory({"restart_backoff_min": 0.1, "restart_backoff_max": 30})
    pub = b.publisher()
    pid = None
    n = 0
    for crash in range(4):
        pub.publish("AB", "before crash %d" % crash, timeout=30)
        pid = b.wait_topicd("AB", not_pid=pid)
        until = time.monotonic() + 1.5
        while time.monotonic() < until:
            pub.publish("AB", "m%d" % n, timeout=10)
            n += 1
        os.kill(pid, signal.SIGABRT)
        wait_for(lambda: len(re.findall(r"topic AB: topicd killed by signal 6 ",
                                        b.log_text())) > crash, 10, "the master to see crash %d" % crash)
    waits = re.findall(r"topic AB: topicd killed by signal 6 \(Aborted\) \(pid \d+\); "
                       r"restarting in (\d+) ms", b.log_text())
    assert waits == ["100", "200", "400", "800"], waits


def hooks_built():
    """The poison hook is compiled into the test build of topicd only."""
    topicd = os.path.join(os.path.dirname(broker_binary()), "topicd")
    with open(topicd, "rb") as f:
        return POISON.encode() in f.read()


def poisoned_topic(broker_factory, topic, **settings):
    """A broker whose topicd has the test hooks, a consumer of the
    dead-letter topic and one of topic, which got a first message."""
    if not hooks_built():
        pytest.skip("the topicd under test was built without the test hooks")
    b = broker_factory(dict({"restart_backoff_min": 0.05, "restart_backoff_max": 0.2,
                             "poison_limit": 2}, **settings))
    dlq = b.consumer(topic.lower() + "-dlq")
    dlq.subscribe(DLQ)
    cons = b.consumer(topic.lower() + "-cons")
    cons.subscribe(topic)
    pub = b.publisher()
    pub.publish(topic, "before")
    cons.wait_message("before", topic)
    return b, dlq, cons, pub


def test_a_poison_record_is_dead_lettered_and_the_topic_goes_on(broker_factory):
    b, dlq, cons, pub = poisoned_topic(broker_factory, "P")
    # The poison is stored where it can be: in the dead-letter topic, and
    # only then is its publisher told it is stored.
    pub.publish("P", POISON + " 1", timeout=30)
    rec = wait_dead_letter(dlq, "poison", timeout=10)
    check_dead_letter(rec, "poison", ports=[b.publisher_port], topic="P",
                      msg=POISON + " 1")
    pub.publish("P", "after")
    assert cons.wait_messages(2, "P") == ["before", "after"]
    log = b.log_text()
    assert re.search(r"topic P: a PUBLISH from \S+ killed its topicd 2 times: POISON", log), \
        log[-3000:]
    assert len(re.findall(r"topic P: topicd killed by signal 6 ", log)) >= 2
    # The status line counts it.
    b.signal(signal.SIGUSR1)
    wait_for(lambda: re.search(r"status: topic P pid \d+ running .*poisoned 1 ", b.log_text()),
             10, "the status line to count the poison record")
    for c in (cons, dlq):
        c.settle()
        assert not c.errors, (c.username, c.errors)


def test_a_record_that_hangs_its_topicd_is_dead_lettered(broker_factory):
    """A record the topicd never finishes applying (an endless loop: the
    test build waits for ever on a marked payload) silences it: the
    master kills it after topicd_timeout, counts that as a crash, and the
    probing that follows strikes the record until it goes to the
    dead-letter topic.  Before, such a kill was taken for one from
    outside, and the record hung every topicd after it for ever."""
    b, dlq, cons, pub = poisoned_topic(broker_factory, "H", topicd_timeout=1)
    pub.publish("H", "poison-record-hang 1", timeout=30)
    rec = wait_dead_letter(dlq, "poison", timeout=10)
    check_dead_letter(rec, "poison", ports=[b.publisher_port], topic="H",
                      msg="poison-record-hang 1")
    pub.publish("H", "after")
    assert cons.wait_messages(2, "H") == ["before", "after"]
    log = b.log_text()
    assert len(re.findall(r"topic H: topicd pid \d+: sent nothing for topicd_timeout, with "
                          r"work waiting \(hung\); killing it", log)) >= 2, log[-3000:]
    assert re.search(r"topic H: a PUBLISH from \S+ killed its topicd 2 times: POISON", log)
    for c in (cons, dlq):
        c.settle()
        assert not c.errors, (c.username, c.errors)


def damage(segment):
    """Flips a byte inside the first batch of a journal segment that has more
    than one: damage before the end, which no torn write leaves."""
    with open(segment, "r+b") as f:
        f.seek(20)
        byte = f.read(1)
        f.seek(20)
        f.write(bytes([byte[0] ^ 0x55]))


def test_a_damaged_store_fails_its_topic_and_loses_nothing(broker_factory):
    b = broker_factory({"restart_backoff_min": 5, "restart_backoff_max": 5})
    pub = b.publisher()
    for i in range(5):
        pub.publish("D", "d%d" % i)
    pub.publish("OK", "fine")
    topics = b.workdir / "data" / "topics"
    # Killed, it writes no checkpoint: its batches stay in the journal.
    b.kill_topicd("D")
    b.kill9()
    segs = sorted(topics.glob("D.journal.*"))
    assert segs, list(topics.iterdir())
    damage(segs[-1])
    size = segs[-1].stat().st_size
    b.restart()
    pub = b.publisher()
    with pytest.raises(PublishRefused) as refused:
        pub.pub("D", "refused")
    assert refused.value.line.startswith("ERROR "), refused.value.line
    pub.expect_closed()
    log = b.log_text()
    assert re.search(r"topicd\[\d+\]: error: topic D: store: .*D\.journal\.\d+: damaged "
                     r"journal batch at offset \d+", log), log[-3000:]
    assert "topic D: topicd exited with status 65" in log
    assert "TOPIC FAILED" in log
    assert segs[-1].stat().st_size == size, "nothing was cut"
    # Other topics are fine, and SIGHUP tries again (still damaged).
    b.publisher().publish("OK", "still fine")
    b.signal(signal.SIGHUP)
    wait_for(lambda: b.log_text().count("TOPIC FAILED") >= 2, 10,
             "the retried topic to fail again")


# A topicd of another release: it reads the master's CONFIG, answers READY
# with an older IPC version, and waits for the end of its channel.
FAKE_OLD_TOPICD = r'''#!/usr/bin/python3
import socket, struct, sys
chan = socket.socket(fileno=3)
chan.recv(1 << 16)
topic = sys.argv[sys.argv.index("-t") + 1].encode()
body = struct.pack("<II", 2, len(topic)) + topic + b"\0" + struct.pack("<Q", 1)
chan.send(struct.pack("=HHI", 32, 0, len(body)) + body)
while chan.recv(1 << 16):
    pass
'''


def test_a_topicd_of_another_release_fails_its_topic_loudly(broker_factory, tmp_path):
    """After an upgrade with the old master still running, the topicd it
    starts is of another release: the topic fails with a line that says
    what to do, nothing is acknowledged, and the master runs on."""
    fake = tmp_path / "old-topicd"
    fake.write_text(FAKE_OLD_TOPICD)
    fake.chmod(0o755)
    b = broker_factory({"topicd_path": str(fake), "restart_backoff_min": 0.05})
    pub = b.publisher()
    with pytest.raises(PublishRefused) as refused:
        pub.pub("V", "refused", timeout=10)
    assert refused.value.line.startswith("ERROR "), refused.value.line
    log = b.log_text()
    assert re.search(r"topic V: topicd pid \d+ speaks IPC version 2, this broker \d+ "
                     r"\(release [^)]+\): a topicd of another release; restart the broker "
                     r"after an upgrade", log), log[-3000:]
    assert re.search(r"topic V: topicd killed by signal 9 .*: it is of another release than "
                     r"this broker .*TOPIC FAILED", log), log[-3000:]
    assert "restarting in" not in log, "restarting the same binary cannot help"
    assert b.proc.poll() is None


def fd_target(pid, fd):
    """What a descriptor of pid points at; None if it was closed since
    the directory was listed (the topicd runs on meanwhile)."""
    try:
        return os.readlink("/proc/%d/fd/%s" % (pid, fd))
    except FileNotFoundError:
        return None


def test_an_upgrade_under_a_running_master_leaves_its_topicds_alone(broker_factory, tmp_path):
    """An upgrade renames a new topicd over the old file while the old
    master runs: the master goes on starting the topicd it was started
    with, so topics it starts afterwards work until it is restarted, and
    ps and pgrep name that process topicd."""
    copy = tmp_path / "bin" / "topicd"
    copy.parent.mkdir()
    shutil.copy2(broker_binary().with_name("topicd"), copy)
    b = broker_factory({"topicd_path": str(copy)})
    pub = b.publisher()
    pub.publish("U1", "before")
    new = copy.with_name("topicd.new")
    new.write_text(FAKE_OLD_TOPICD)
    new.chmod(0o755)
    os.rename(new, copy)                 # as dpkg puts a package's files in place
    cons = b.consumer("u-cons")
    cons.subscribe("U2")
    pub.publish("U2", "after", timeout=10)
    cons.wait_message("after", topic="U2")
    pid = b.wait_topicd("U2")
    with open("/proc/%d/comm" % pid) as f:
        assert f.read().strip() == "topicd"
    assert os.readlink("/proc/%d/exe" % pid).endswith(" (deleted)"), \
        "the topicd runs the file the master found at its start"
    exe = os.readlink("/proc/%d/exe" % pid)
    held = [fd for fd in os.listdir("/proc/%d/fd" % pid) if fd_target(pid, fd) == exe]
    assert held == [], "the topicd closed the executable"
    assert "another release" not in b.log_text()


def test_a_topicd_refuses_a_master_of_another_release(tmp_path):
    """The real topicd, given the CONFIG of a master of another release,
    says so and exits with the status that tells the master not to restart
    it (76)."""
    topicd = os.path.join(os.path.dirname(broker_binary()), "topicd")
    (tmp_path / "data" / "topics").mkdir(parents=True)
    master, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    body = struct.pack("<I", 2) + bytes(48)
    master.send(struct.pack("=HHI", 1, 0, len(body)) + body)
    with open(tmp_path / "topicd.log", "w+") as err:
        p = subprocess.Popen([topicd, "-t", "V", "-D", str(tmp_path / "data")],
                             stdin=subprocess.DEVNULL, stderr=err, close_fds=False,
                             preexec_fn=lambda: os.dup2(child.fileno(), 3))
        child.close()
        try:
            assert p.wait(timeout=10) == 76
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        master.close()
        err.seek(0)
        text = err.read()
    assert re.search(r"error: topic V: the master speaks IPC version 2, this topicd \d+ "
                     r"\(release [^)]+\): a master and a topicd of different releases; "
                     r"restart the broker after an upgrade", text), text


def test_a_topicd_run_by_hand_says_it_is_the_masters(tmp_path):
    """Without the master's channel on fd 3, or with a topic it cannot
    own, the real topicd exits 2 (bad usage) and says why, before it
    touches the data directory."""
    topicd = os.path.join(os.path.dirname(broker_binary()), "topicd")
    data = tmp_path / "data"
    cases = [
        (["-t", "a/+", "-D", str(data)], r"-t: invalid topic name: wildcard"),
        (["-t", "a", "-D", str(data)], r"no channel on fd 3: topicd is started by "
                                       r"broker\(8\), not by hand"),
        (["-t", "a"], r"usage: topicd -t topic -D datadir \[-qsv\] \[-f logfile\]"),
    ]
    for args, why in cases:
        p = subprocess.run([topicd] + args, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=10)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert re.search(why, p.stderr), (args, p.stderr)
    assert not data.exists()
