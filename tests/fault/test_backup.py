"""A backup as broker(8) describes it: an image of the data directory
taken at one instant while the broker runs (a file system snapshot) holds
every message the broker had acknowledged by then, and a broker started
on it delivers each of them once, in order.

The instant is made here by stopping (SIGSTOP) the master and its topicds
and copying the directory while nothing runs, which is what a snapshot of
a running file system sees."""

import os
import shutil
import signal

from broker_harness import check_exactly_once_in_order, wait_for

from test_kill import FAULT_CONFIG, Streamer

TOPICS = ("BK/a", "BK/b")


def stopped(pid):
    """Is every thread of pid stopped (state T)?  SIGSTOP reaches a
    process's threads one by one: its store's worker could still write."""
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            continue                    # a thread that ended
        if state not in ("T", "Z", "X"):
            return False
    return True


def frozen_copy(b, dest, streams):
    """Copies b's data directory with the master and its topicds stopped;
    returns what each stream had acknowledged, read while they were still
    stopped (an acknowledgement read then was sent before the stop)."""
    pids = [b.pid] + list(b.topicds())
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: all(stopped(pid) for pid in pids), 10, "every thread to stop")
        shutil.copytree(b.data_dir, dest, symlinks=True)
        acked = {}
        for s in streams:
            with s.lock:
                acked[s.topic] = set(s.acked)
        return acked
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def test_an_image_taken_while_running_restores_every_acknowledged_message(broker_factory,
                                                                           tmp_path):
    b = broker_factory(FAULT_CONFIG)
    cons = b.consumer("bk-cons")
    for t in TOPICS:
        cons.subscribe(t)
    cons.close()                        # offline: everything waits for it on disk
    streams = [Streamer(b, t, t.replace("/", "-")) for t in TOPICS]
    for s in streams:
        s.start()
    wait_for(lambda: all(s.progress() >= 150 for s in streams), 60,
             "150 messages acknowledged on each topic")
    image = tmp_path / "image"
    acked = frozen_copy(b, image, streams)
    wait_for(lambda: all(s.progress() >= len(acked[s.topic]) + 50 for s in streams), 60,
             "50 more messages on each topic after the image")
    for s in streams:
        s.finish()
    b.stop()

    shutil.move(str(b.data_dir), str(tmp_path / "data-after"))
    shutil.move(str(image), str(b.data_dir))
    b.start(keep_ports=True)
    cons = b.consumer("bk-cons")        # its subscriptions come from the image
    cons.start()
    for s in streams:
        want = acked[s.topic]
        wait_for(lambda: want <= set(cons.messages(s.topic)), 60,
                 "the %d messages of %s acknowledged before the image" % (len(want), s.topic))
    cons.stop()
    cons.settle()
    assert not cons.errors, cons.errors[:10]
    for s in streams:
        check_exactly_once_in_order(s.published, acked[s.topic], cons.messages(s.topic),
                                    "restored from an image at %d acknowledged on %s"
                                    % (len(acked[s.topic]), s.topic))
