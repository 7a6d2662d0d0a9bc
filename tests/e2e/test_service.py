"""The broker as a Unix service: signals (SIGTERM in the middle of QoS 2
exchanges, SIGHUP with good and bad files, SIGUSR1), process titles, the
service manager's notifications, daemon mode and its pid file, the
second-instance lock, privileges, make install / uninstall, the man pages,
the systemd unit and the Dockerfile."""

import fcntl
import json
import os
import pwd
import re
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from broker_harness import (HOST, REPO_ROOT, ConnectionClosed, HarnessError, Publisher,
                            PublishRefused, Qos2Consumer, broker_binary,
                            check_exactly_once_in_order, children_of, free_port, free_ports,
                            is_topicd, kill_pid, process_alive, read_cmdline, title_of,
                            wait_for)

START_MARK = "==== harness: start #"
REPLAYED_RE = re.compile(r"(\S+)\[(\d+)\]: \w+: (.*?)store opened: (\d+) records replayed")
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
README = REPO_ROOT / "README.md"


# ---------------------------------------------------------------- helpers

def since_last_start(b):
    """The broker's log since the harness last started it."""
    return b.log_text().rsplit(START_MARK, 1)[-1]


def wait_log(b, pattern, timeout=10.0, text=None):
    """Waits for a regular expression in the log since the last start (or
    in text(), a function returning the text to search); returns the match."""
    rx = re.compile(pattern)
    get = text or (lambda: since_last_start(b))
    return wait_for(lambda: rx.search(get()), timeout, "%r in the log" % pattern)


def title(pid):
    return title_of(read_cmdline(pid) or b"")


def send_pub_consume(b, topic, msg, username="svc-check"):
    """One message through the broker: published, then consumed."""
    c = b.consumer(username)
    c.subscribe(topic)
    b.publisher().publish(topic, msg)
    assert c.wait_messages(1, topic) == [msg]
    c.settle()
    assert not c.errors, c.errors
    c.close()


def proc_ids(pid):
    """{"Uid": [real, effective, saved, fs], "Gid": [...], "Groups": [...]}."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                out[key] = [int(x) for x in rest.split()]
    return out


def run_broker(args, timeout=20, **kw):
    """Runs the broker binary to completion (it is killed by pid if it does
    not end by the deadline)."""
    return subprocess.run([str(broker_binary())] + [str(a) for a in args],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, **kw)


def root_config():
    """The tests run as root in CI: the data directories are root's."""
    return "user root\n" if os.geteuid() == 0 else ""


def error_line(err, text):
    """The master's log line at level error that starts with text (a
    regular expression); fails, showing err, if there is none."""
    m = re.search(r"^\S+ broker\[\d+\]: error: (%s.*)$" % text, err, re.M)
    assert m, "no `error: %s...` line in:\n%s" % (text, err)
    return m.group(1)


def make(*args):
    """Runs make in the source tree, away from any outer make's jobserver."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(["make", "-s"] + list(args), cwd=str(REPO_ROOT), env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=600)


# ---------------------------------------------------------------- SIGTERM

TOPICS = ("svc/a", "svc/b")


class PublisherThread(threading.Thread):
    """Publishes msg-K-0, msg-K-1, ... with the full QoS 2 exchange until
    the connection ends; records what it sent and what got a PUBREC."""

    def __init__(self, broker, k):
        super().__init__(name="publisher-%d" % k, daemon=True)
        self.broker, self.k = broker, k
        self.topic = TOPICS[k % len(TOPICS)]
        self.published, self.acked = [], set()
        self.end = None

    def run(self):
        p = self.broker.publisher(timeout=15)
        try:
            for i in range(100000):
                msg = "msg-%d-%d" % (self.k, i)
                self.published.append(msg)
                mid = p.pub(self.topic, msg)
                self.acked.add(msg)
                p.pubrel(mid)
        except (ConnectionClosed, HarnessError, PublishRefused, OSError) as e:
            self.end = e


def test_sigterm_in_the_middle_of_qos2_exchanges(broker_factory):
    b = broker_factory({"log_type": "information"})
    # One consumer per topic: a JSON-lines PUBREL names no topic, so one
    # consumer of two topics could not tell which exchange it completes.
    sinks = {t: b.consumer("svc-sink-%d" % i) for i, t in enumerate(TOPICS)}
    for t, c in sinks.items():
        c.subscribe(t)
        c.start()
    pubs = [PublisherThread(b, k) for k in range(4)]
    for p in pubs:
        p.start()
    wait_for(lambda: all(len(p.acked) >= 20 for p in pubs), 30,
             "every publisher to have 20 messages acknowledged")
    code = b.stop()
    assert code == 0, "master exit status %s after SIGTERM" % code
    for p in pubs:
        p.join(20)
        assert not p.is_alive(), "%s still publishing after the shutdown" % p.name
    for c in sinks.values():
        c.stop()
    first = b.log_text()
    assert "killing them" not in first, "topicds had to be killed:\n" + b.log_tail()
    for t in TOPICS:
        assert "topic %s: topicd exited with status 0" % t in first, b.log_tail()

    b.start(keep_ports=True)
    for t, c in sinks.items():
        c.reconnect()
        c.start()
        acked = set().union(*(p.acked for p in pubs if p.topic == t))
        c.wait_until(lambda: acked <= set(c.messages(t)), 30,
                     "every acknowledged message of %s after the restart" % t)
        c.settle()
        c.stop()
        assert not c.errors, c.errors
    for p in pubs:
        mine = [m for m in sinks[p.topic].messages(p.topic) if m.startswith("msg-%d-" % p.k)]
        check_exactly_once_in_order(p.published, p.acked, mine, p.name)

    # The stores were closed cleanly: the next start replays nothing.
    for t in TOPICS:
        wait_log(b, r"topic %s: store opened: \d+ records replayed" % re.escape(t))
    opened = REPLAYED_RE.findall(since_last_start(b))
    assert {w for _, _, w, _ in opened} >= {"sessions: ", "topic svc/a: ", "topic svc/b: "}
    assert all(n == "0" for *_, n in opened), opened
    assert "not closed cleanly" not in since_last_start(b)


def test_sigterm_removes_the_pid_file(broker_factory, tmp_path):
    pid_file = tmp_path / "broker.pid"
    b = broker_factory({"pid_file": pid_file})
    wait_for(lambda: pid_file.exists() and pid_file.read_text() == "%d\n" % b.pid, 10,
             "the pid file")
    assert b.stop() == 0
    assert not pid_file.exists()
    assert "notice: stopped" in b.log_text()


def test_the_lock_is_free_once_the_pid_file_is_gone(broker_factory, tmp_path):
    """A supervisor that starts a new broker as soon as the pid file is
    gone must find the data directory's lock free."""
    pid_file = tmp_path / "broker.pid"
    b = broker_factory({"pid_file": pid_file})
    send_pub_consume(b, "lock/t", "m")     # a topic store to close, too
    wait_for(lambda: pid_file.exists(), 10, "the pid file")
    lock = os.open(b.data_dir / "broker.lock", os.O_RDWR | os.O_CLOEXEC)
    try:
        b.signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while pid_file.exists():            # as tight as a supervisor can be
            assert time.monotonic() < deadline, "the pid file stayed"
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pytest.fail("the pid file was gone while the broker still held its lock")
        fcntl.flock(lock, fcntl.LOCK_UN)
    finally:
        os.close(lock)
    assert b.proc.wait(timeout=10) == 0


def open_files_limit(pid):
    """(soft, hard) of a process's open-file limit."""
    text = Path("/proc/%d/limits" % pid).read_text()
    soft, hard = re.search(r"^Max open files +(\d+) +(\d+)", text, re.M).groups()
    return int(soft), int(hard)


def started_under(broker_factory, which, limits, config=None):
    """A broker started with the resource limit which set to (soft, hard)."""
    def low():
        resource.setrlimit(which, limits)
    b = broker_factory(config, start=False)
    b.preexec_fn = low
    b.start()
    wait_log(b, r"notice: started:")
    return b


def test_the_open_file_limit_is_raised_and_checked(broker_factory):
    """The soft limit goes up to the hard one; below what max_connections
    and max_topicds may need (3 per connection, 12 per topicd, 1 per spare
    topicd, 64 more),
    one warning says so; a topicd gets the raised limit."""
    b = started_under(broker_factory, resource.RLIMIT_NOFILE, (256, 1024))
    assert open_files_limit(b.pid) == (1024, 1024)
    warning = r"warning: open-file limit 1024 is below the %d descriptors that " \
        r"max_connections 10000 and max_topicds 1000 may need: " % (3 * 10000 + 12 * 1000 + 16 + 64)
    assert len(re.findall(warning, since_last_start(b))) == 1, since_last_start(b)
    send_pub_consume(b, "nofile/t", "m")
    assert open_files_limit(b.wait_topicd("nofile/t")) == (1024, 1024)
    # Settings within the limit: no warning.
    b2 = started_under(broker_factory, resource.RLIMIT_NOFILE, (256, 1024),
                       {"max_connections": 200, "max_topicds": 20})
    assert open_files_limit(b2.pid) == (1024, 1024)
    assert "open-file limit" not in since_last_start(b2), since_last_start(b2)


def test_max_topicds_is_checked_against_the_process_limit(broker_factory):
    """Each topicd is two tasks (its loop and its store's worker), a
    spare one (topicd_spares, 16) one: a max_topicds whose tasks (16
    more) pass RLIMIT_NPROC gets one warning at the start; one within it,
    none.  (systemd's TasksMax, the cgroup's
    pids.max, is checked the same way.)"""
    b = started_under(broker_factory, resource.RLIMIT_NPROC, (64, 64))
    warning = r"warning: process limit 64 is below the %d tasks that max_topicds 1000 may " \
        r"need \(2 per topicd\): raise it \(LimitNPROC, ulimit -u\)" % (2 * 1000 + 16 + 16)
    assert len(re.findall(warning, since_last_start(b))) == 1, since_last_start(b)
    b2 = started_under(broker_factory, resource.RLIMIT_NPROC, (64, 64), {"max_topicds": 16})
    assert "process limit" not in since_last_start(b2), since_last_start(b2)


def test_max_topicds_is_checked_against_the_memory_map_limit(broker_factory):
    """The master maps two shared rings per topicd: a max_topicds whose
    maps (2 each, 1024 more) pass vm.max_map_count gets one warning at
    the start, or at the SIGHUP that sets it; the default does not."""
    limit = int(Path("/proc/sys/vm/max_map_count").read_text())
    many = (limit - 1024) // 2 + 1
    if many > 1000000:
        pytest.skip("vm.max_map_count %d is above what max_topicds can ask for" % limit)
    b = broker_factory({"max_topicds": many})
    wait_log(b, r"notice: started:")
    warning = r"warning: vm.max_map_count %d is below the %d memory maps that max_topicds " \
        r"%d may need in the master" % (limit, 2 * many + 1024, many)
    assert len(re.findall(warning, since_last_start(b))) == 1, since_last_start(b)
    b2 = broker_factory()
    wait_log(b2, r"notice: started:")
    assert "max_map_count" not in since_last_start(b2), since_last_start(b2)
    # max_topicds is reloadable: a SIGHUP that raises it is checked too,
    # once: a second SIGHUP that changes nothing says nothing again.
    b2.config.update({"max_topicds": many})
    b2.config_file()
    b2.signal(signal.SIGHUP)
    wait_log(b2, warning)
    b2.signal(signal.SIGHUP)
    wait_log(b2, r"(?s)reload: configuration re-read.*reload: configuration re-read")
    b2.signal(signal.SIGUSR1)       # handled after that reload is over
    wait_log(b2, r"(?s)reload: configuration re-read.*reload: configuration re-read.*"
             r"status: master pid")
    assert len(re.findall(warning, since_last_start(b2))) == 1, since_last_start(b2)


# ---------------------------------------------------------------- SIGHUP

def test_sighup_applies_a_good_file(broker_factory):
    b = broker_factory({"max_topics": 100, "log_type": "information"})
    b.publisher().publish("hup/one", "x")
    b.config.update({"max_topics": 1, "log_type": "warning", "dead_letter_topic": "hup.dlq"})
    b.config_file()
    b.signal(signal.SIGHUP)
    wait_log(b, r"reload: configuration re-read, 2 settings changed")
    log = since_last_start(b)
    assert "reload: max_topics changed" in log
    assert "reload: log_type changed" in log
    assert "reload: dead_letter_topic changed; it takes effect at the next restart" in log
    # max_topics 1 is in force: a second topic is refused ...
    p = b.publisher()
    with pytest.raises(PublishRefused):
        p.pub("hup/two", "y")
    # ... and log_type warning: the refusal is logged, the connection
    # (information) is not.
    wait_log(b, r"warning: topic hup/two refused")
    assert "client %s:%d: connected" % (HOST, p.local_port) not in since_last_start(b)


def test_sighup_with_a_bad_file_keeps_the_running_configuration(broker_factory):
    b = broker_factory({"max_topics": 100})
    conf = b.config_file()
    conf.write_text("max_topics 1\nmax_topics zero\nno_such_key 1\n")
    b.signal(signal.SIGHUP)
    wait_log(b, r"reload: .* has errors; keeping the running configuration")
    log = since_last_start(b)
    assert "%s:2: bad value 'zero' for key 'max_topics'" % conf in log
    assert "%s:3: unknown key 'no_such_key'" % conf in log
    assert "max_topics changed" not in log
    # Still 100 topics allowed, still running.
    p = b.publisher()
    for i in range(3):
        p.publish("bad-hup/%d" % i, "m")
    assert b.running()


def test_sighup_reopens_the_log_file(broker_factory, tmp_path):
    log = tmp_path / "file.log"
    b = broker_factory({"log_dest": "stderr\nlog_dest file %s" % log})
    wait_for(lambda: log.exists() and "started:" in log.read_text(), 10, "the log file")
    rotated = tmp_path / "file.log.1"
    log.rename(rotated)
    b.signal(signal.SIGHUP)
    wait_for(lambda: log.exists() and "reload: configuration re-read" in log.read_text(), 10,
             "a new log file after SIGHUP")
    assert "started:" in rotated.read_text()
    assert "started:" not in log.read_text()
    assert "SIGHUP received" in log.read_text()


def test_a_log_file_that_cannot_be_opened_at_a_reload_is_a_warning(broker_factory, tmp_path):
    """A reload naming a log file that cannot be opened keeps the file
    open before, and says so there; so does a reopen after logrotate
    that cannot make the file again."""
    sub = tmp_path / "logs"
    sub.mkdir()
    log = sub / "file.log"
    b = broker_factory({"log_dest": "file %s" % log})
    wait_for(lambda: log.exists() and "started:" in log.read_text(), 10, "the log file")
    missing = tmp_path / "missing" / "other.log"
    b.config["log_dest"] = "file %s" % missing
    conf = b.config_file()
    line = conf.read_text().splitlines().index("log_dest file %s" % missing) + 1
    b.signal(signal.SIGHUP)
    wait_log(b, "reload: configuration re-read", text=log.read_text)
    assert ("warning: reload: %s:%d: cannot open log file %s: No such file or directory: "
            "create its directory, or change log_dest; still logging to %s\n"
            % (conf, line, missing, log)) in log.read_text(), log.read_text()
    # logrotate moves the file, and its directory cannot hold a new one.
    moved = tmp_path / "file.log.1"
    log.rename(moved)
    sub.rmdir()
    b.signal(signal.SIGHUP)
    warning = ("warning: cannot reopen log file %s: No such file or directory; still writing "
               "to the one open before\n" % log)
    wait_for(lambda: warning in moved.read_text(), 10, "the warning in the file open before")
    wait_for(lambda: moved.read_text().count("reload: configuration re-read") == 2, 10,
             "the second reload to end in the file open before")
    send_pub_consume(b, "log/kept", "still served")


def test_topicds_log_to_the_masters_file_and_reopen_it(broker_factory, tmp_path):
    log = tmp_path / "file.log"
    b = broker_factory({"log_dest": "file %s" % log, "log_type": "information"})
    b.publisher().publish("logged/topic", "m1")
    wait_for(lambda: log.exists() and re.search(r"topicd\[\d+\]: .*logged/topic", log.read_text()),
             10, "a topicd line in the log file")
    log.rename(tmp_path / "file.log.1")
    b.signal(signal.SIGHUP)
    b.publisher().publish("logged/topic", "m2")
    pid = b.topicd_pid("logged/topic")
    os.kill(pid, signal.SIGUSR1)
    wait_for(lambda: log.exists() and re.search(r"topicd\[%d\]: notice: status: topic logged/topic pid" % pid,
                                         log.read_text()),
             10, "the topicd writing its status line to the reopened log file")


def test_topicds_running_through_a_reload_log_to_the_new_log_dest(broker_factory, tmp_path):
    """log_dest is reloadable: once a reload names another file, a topicd
    that was running before it writes there too, not to the file the
    master named when it started the topicd."""
    old, new = tmp_path / "old.log", tmp_path / "new.log"
    b = broker_factory({"log_dest": "stderr\nlog_dest file %s" % old})
    b.publisher().publish("logged/moved", "m1")
    pid = b.topicd_pid("logged/moved")
    b.reload({"log_dest": "stderr\nlog_dest file %s" % new})
    assert b.topicd_pid("logged/moved") == pid, "the topicd ran through the reload"
    os.kill(pid, signal.SIGUSR1)
    line = re.compile(r"topicd\[%d\]: notice: status: topic logged/moved pid" % pid)
    wait_for(lambda: new.exists() and line.search(new.read_text()), 10,
             "the topicd's status line in the file the reload named")
    assert not line.search(old.read_text()), old.read_text()
    # And back to stderr alone: the topicd closes the file.
    b.reload({"log_dest": "stderr"})
    wait_for(lambda: not any(os.path.realpath("/proc/%d/fd/%s" % (pid, fd)) == str(new)
                             for fd in os.listdir("/proc/%d/fd" % pid)), 10,
             "the topicd to close the file no log_dest names")


def test_sighup_retries_nothing_and_changes_nothing_when_the_file_is_unchanged(broker):
    broker.signal(signal.SIGHUP)
    wait_log(broker, r"reload: configuration re-read, 0 settings changed")
    send_pub_consume(broker, "hup/same", "still here")


# ---------------------------------------------------------------- SIGUSR1, titles

def test_sigusr1_logs_a_line_for_the_master_and_each_topic(broker):
    send_pub_consume(broker, "usr1/t", "m")
    tpid = broker.wait_topicd("usr1/t")
    topic_rx = re.compile(r"status: topic usr1/t pid (\d+) running uptime \d+s restarts 0 "
                          r"poisoned 0 subs 1 online \d+ messages \d+ bytes \d+ disk \d+ "
                          r"seq 1 lag 0 oldest_unacked \d+ms held 0")

    def status():
        # The master's figures follow the topicd's within a second.
        broker.signal(signal.SIGUSR1)
        return topic_rx.search(since_last_start(broker))
    line = wait_for(status, 10, "a status line for topic usr1/t", interval=0.5)
    assert int(line.group(1)) == tpid
    wait_log(broker, r"status: master pid %d uptime \d+s clients \d+ topics 1 " % broker.pid)
    # The topicd answers SIGUSR1 itself, and SIGUSR1 changes nothing.
    kill_pid(tpid, signal.SIGUSR1)
    # Its seq is the master's (the last given), spelt as the master spells it.
    wait_log(broker, r"topicd\[%d\]: notice: status: topic usr1/t pid %d subs 1 online \d+ "
             r"seq 1 first \d+ messages \d+ .* lag 0 oldest_unacked \d+ms " % (tpid, tpid))
    assert broker.topicd_pid("usr1/t") == tpid
    send_pub_consume(broker, "usr1/t", "n", username="svc-check-2")


def test_sigusr2_is_not_used_and_kills_nothing(broker):
    """Mosquitto's operators send SIGUSR2: the master says it is not used,
    a topicd ignores it, and both keep serving."""
    send_pub_consume(broker, "usr2/t", "m")
    tpid = broker.wait_topicd("usr2/t")
    broker.signal(signal.SIGUSR2)
    kill_pid(tpid, signal.SIGUSR2)
    wait_log(broker, r"broker\[%d\]: notice: SIGUSR2 received: not used" % broker.pid)
    # A message through both after the signals: they were delivered.
    send_pub_consume(broker, "usr2/t", "n", username="svc-check-2")
    assert broker.running()
    assert broker.topicd_pid("usr2/t") == tpid
    assert broker.topicd_status("usr2/t")["pid"] == tpid


def test_process_titles_show_live_state(broker):
    ports = "%d,%d" % (broker.consumer_port, broker.publisher_port)
    wait_for(lambda: title(broker.pid) == "broker: master %s clients=0 topics=0 running=0" % ports, 10,
             "the master's title, idle (now %r)" % title(broker.pid))
    c = broker.consumer("titles")
    c.subscribe("title/t")
    pub = broker.publisher()
    for i in range(3):
        pub.publish("title/t", "m%d" % i)
    c.wait_messages(3, "title/t")
    c.settle()
    tpid = broker.wait_topicd("title/t")
    wait_for(lambda: title(broker.pid) == "broker: master %s clients=2 topics=1 running=1" % ports, 10,
             "the master's title to count 2 clients and 1 topic")
    wait_for(lambda: title(tpid) == "topicd: title/t subs=1 seq=3 lag=0", 10,
             "the topicd's title to show seq=3")
    pub.close()
    c.close()
    wait_for(lambda: title(broker.pid) == "broker: master %s clients=0 topics=1 running=1" % ports, 10,
             "the master's title after the clients left")


def test_a_topicd_title_escapes_what_a_terminal_would_act_on(broker):
    """A topic is a client's text: in ps it is escaped as in the log, so a
    right-to-left override or an ESC cannot reorder or recolour what an
    operator reads.  The seq of its ready lines is the title's."""
    topic = "ctl/\u202eevil\x1b[2J"
    c = broker.consumer("titles-esc")
    c.subscribe(topic)
    broker.publisher().publish(topic, "m")
    c.wait_messages(1, topic)
    c.settle()
    want = "topicd: ctl/\\u202eevil\\x1b[2J subs=1 seq=1 lag=0"
    wait_for(lambda: want in (title(p) for p in broker.topicds()), 10, "the title %r" % want)


MASTER_TITLE_RE = r"broker: master \d+(,\d+)* clients=\d+ topics=\d+ running=\d+( spare=\d+)?"


def test_process_title_lists_the_mqtt_port_first(mqtt_factory):
    """The order the README and broker(8) show: MQTT, then the JSON-lines
    consumers' and publishers' ports."""
    b = mqtt_factory()
    want = "broker: master %d,%d,%d clients=0 topics=0 running=0" % (
        b.mqtt_port, b.consumer_port, b.publisher_port)
    wait_for(lambda: title(b.pid) == want, 10,
             "the master's title %r (now %r)" % (want, title(b.pid)))
    assert re.fullmatch(MASTER_TITLE_RE, want)
    # The documented titles are of that form.
    readme = re.findall(r"^ *\d+ (broker: master .*)$", README.read_text(), re.M)
    man = re.findall(r"^(broker: master .*)$", (REPO_ROOT / "man/broker.8").read_text(), re.M)
    assert readme and man
    for t in readme + man:
        assert re.fullmatch(MASTER_TITLE_RE, t), t
        assert t.startswith("broker: master 1883,"), t


# ---------------------------------------------------------------- sd_notify

class NotifySocket:
    """The service manager's end of NOTIFY_SOCKET (abstract namespace)."""

    def __init__(self, monkeypatch):
        self.name = "broker-test-notify-%d-%d" % (os.getpid(), id(self))
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + self.name)
        self.got = []

    def wait(self, pred, what, timeout=10.0):
        """Collects datagrams until one satisfies pred; returns it."""
        def find():
            return next((m for m in self.got if pred(m)), None)
        self.sock.settimeout(0.05)
        def poll():
            try:
                self.got.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass
            return find()
        return wait_for(poll, timeout, "%s from the broker (got %r)" % (what, self.got))

    def close(self):
        self.sock.close()


def test_service_manager_notifications(broker_factory, monkeypatch):
    n = NotifySocket(monkeypatch)
    try:
        b = broker_factory()
        ready = n.wait(lambda m: "READY=1" in m.split("\n"), "READY=1")
        assert re.search(r"^STATUS=master \S+ clients=0 topics=0 running=0$", ready, re.M), ready
        c = b.consumer("notified")
        n.wait(lambda m: m.startswith("STATUS=") and "clients=1" in m, "STATUS with 1 client")
        c.close()
        del n.got[:]
        b.signal(signal.SIGHUP)
        rel = n.wait(lambda m: "RELOADING=1" in m.split("\n"), "RELOADING=1")
        assert re.search(r"^MONOTONIC_USEC=\d+$", rel, re.M), rel
        n.wait(lambda m: "READY=1" in m.split("\n") and n.got.index(m) > n.got.index(rel),
               "READY=1 after RELOADING=1")
        b.stop()
        n.wait(lambda m: "STOPPING=1" in m.split("\n"), "STOPPING=1")
    finally:
        n.close()


def test_sighup_while_shutting_down_is_ignored(broker_factory, monkeypatch):
    """No reload once STOPPING=1 is sent: no RELOADING=1, no READY=1.  A
    stopped topicd keeps the master in its shutdown for shutdown_timeout."""
    n = NotifySocket(monkeypatch)
    try:
        b = broker_factory({"log_type": "information", "shutdown_timeout": "3"})
        n.wait(lambda m: "READY=1" in m.split("\n"), "READY=1")
        send_pub_consume(b, "hup/stopping", "m")
        tpid = b.wait_topicd("hup/stopping")
        kill_pid(tpid, signal.SIGSTOP)
        del n.got[:]
        b.signal(signal.SIGTERM)
        n.wait(lambda m: "STOPPING=1" in m.split("\n"), "STOPPING=1")
        b.signal(signal.SIGHUP)
        m = wait_log(b, r"SIGHUP received(: reloading| while shutting down: ignored)")
        assert m.group(1) == " while shutting down: ignored", since_last_start(b)
        assert b.proc.wait(timeout=15) == 0
        n.sock.setblocking(False)
        try:
            while True:
                n.got.append(n.sock.recv(4096).decode())
        except BlockingIOError:
            pass
        after = [f for m in n.got for f in m.split("\n")]
        assert "RELOADING=1" not in after and "READY=1" not in after, n.got
        assert "reloading" not in since_last_start(b)
    finally:
        n.close()


# ---------------------------------------------------------------- daemon mode, lock

class Endpoint:
    """The clients' side of a broker the harness did not start."""

    def __init__(self, consumer_port, publisher_port):
        self.consumer_port, self.publisher_port = consumer_port, publisher_port

    def consumer(self, username):
        return Qos2Consumer(self, username).connect()

    def publisher(self):
        return Publisher(self.publisher_port)


def daemon_cleanup(pid, topicds):
    """Kills, by pid, a daemon and topicds a failed test left running."""
    for p in [pid] + list(topicds):
        cmd = read_cmdline(p) or b""
        if process_alive(p) and (is_topicd(cmd) or title_of(cmd).startswith("broker")):
            kill_pid(p)


def test_daemon_mode_writes_and_removes_its_pid_file(tmp_path):
    pid_file, log = tmp_path / "run" / "broker.pid", tmp_path / "broker.log"
    pid_file.parent.mkdir()
    conf = tmp_path / "broker.conf"
    conf.write_text(root_config() + "pid_file run/broker.pid\nlog_dest file broker.log\n"
                    "log_type information\n")
    c, p = free_ports(2)
    res = run_broker(["-d", "-c", "broker.conf", "-D", "data", "-b", HOST, "-p", "0",
                      "-J", "%d:%d" % (c, p)], cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr.decode()
    # The command returned once the daemon was ready: the pid file is there.
    pid = int(pid_file.read_text())
    topicds = set()
    try:
        assert process_alive(pid), "the daemon pid %d in the pid file is not running" % pid
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        assert int(fields[3]) == pid, "not a session leader: %s" % fields
        assert os.readlink("/proc/%d/cwd" % pid) == "/"
        for fd in (0, 1, 2):
            assert os.readlink("/proc/%d/fd/%d" % (pid, fd)) == "/dev/null"
        wait_for(lambda: title(pid).startswith("broker: master "), 10, "the daemon's title")
        send_pub_consume(Endpoint(c, p), "daemon/t", "hello")
        topicds = set(children_of(pid))
        # SIGHUP finds the relative configuration file after chdir("/").
        os.kill(pid, signal.SIGHUP)
        wait_log(None, r"reload: configuration re-read", text=log.read_text)
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not process_alive(pid), 20, "the daemon to exit")
        wait_for(lambda: not any(process_alive(t) for t in topicds), 10, "its topicds to exit")
        assert not pid_file.exists(), "the pid file is still there"
        text = log.read_text()
        assert "%s[%d]: notice: stopped" % ("broker", pid) in text, text[-2000:]
        assert (tmp_path / "data" / "topics").is_dir()
    finally:
        daemon_cleanup(pid, topicds)


@pytest.mark.parametrize("log_dest", [None, "file"])
def test_daemon_mode_reports_a_failed_start(tmp_path, log_dest):
    """The errors of a failed start are on the terminal before -d returns,
    also when the log goes to a file (and there too)."""
    log = tmp_path / "broker.log"
    conf = tmp_path / "broker.conf"
    conf.write_text(root_config() + "pid_file %s\n" % (tmp_path / "missing" / "broker.pid")
                    + ("log_dest file %s\n" % log if log_dest else ""))
    c, p = free_ports(2)
    res = run_broker(["-d", "-c", conf, "-D", tmp_path / "data", "-b", HOST, "-p", "0",
                      "-J", "%d:%d" % (c, p)])
    err = res.stderr.decode()
    assert res.returncode == 1, err
    line = error_line(err, r"cannot write pid file .*broker\.pid: No such file or directory: ")
    assert line.endswith("create its directory, writable by uid %d, or change pid_file"
                         % os.geteuid()), line
    if log_dest:
        assert line in log.read_text(), log.read_text()
        assert "notice:" not in err and "warning:" not in err, "more than errors:\n" + err


def test_daemon_mode_reports_a_port_in_use_with_a_log_file(broker, tmp_path):
    log = tmp_path / "broker.log"
    conf = tmp_path / "broker.conf"
    conf.write_text(root_config() + "log_dest file %s\n" % log)
    res = run_broker(["-d", "-c", conf, "-D", tmp_path / "data", "-b", HOST, "-p", "0",
                      "-J", "%d:%d" % (broker.consumer_port, free_port())])
    err = res.stderr.decode()
    assert res.returncode == 1, err
    line = error_line(err, re.escape("JSON-lines consumers: cannot listen on %s port %d: "
                                     "Address already in use: " % (HOST, broker.consumer_port)))
    assert line in log.read_text(), log.read_text()


@pytest.mark.parametrize("daemon", [False, True], ids=["foreground", "daemon"])
def test_a_log_file_that_cannot_be_opened_is_an_error(tmp_path, daemon):
    """Nothing could be logged: the broker does not start, and says why
    on stderr (also with -d, which returns 1)."""
    missing = tmp_path / "missing" / "broker.log"
    conf = tmp_path / "broker.conf"
    conf.write_text(root_config() + "log_type information\nlog_dest file %s\n" % missing)
    line = len(conf.read_text().splitlines())
    err = start_fails((["-d"] if daemon else []) + ["-c", conf, "-D", tmp_path / "data"])
    error_line(err, re.escape("%s:%d: cannot open log file %s: No such file or directory: "
                              "create its directory, or change log_dest" % (conf, line, missing))
               + "$")
    assert not (tmp_path / "data").exists(), "the start went on"
    assert not missing.parent.exists()


def test_a_second_broker_on_the_same_data_directory_is_refused(broker):
    c, p = free_ports(2)
    conf = broker.workdir / "second.conf"
    conf.write_text(root_config())
    res = run_broker(["-c", conf, "-D", broker.data_dir, "-b", HOST, "-p", "0",
                      "-J", "%d:%d" % (c, p)])
    err = res.stderr.decode()
    assert res.returncode == 1, err
    line = error_line(err, re.escape("another broker is running on data directory %s "
                                     % broker.data_dir))
    assert line.endswith("stop it, or give this one another data_dir"), line
    send_pub_consume(broker, "lock/t", "first one still serves")


# ---------------------------------------------------------------- privileges

def reachable_by_others(path):
    """Whether every directory above path can be searched by any user."""
    for d in Path(path).resolve().parents:
        if not os.stat(d).st_mode & 0o001:
            return False
    return True


@pytest.fixture
def shared_dir():
    """A directory any user can reach (pytest's tmp_path is root's alone)."""
    d = Path(tempfile.mkdtemp(prefix="broker-privs-"))
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def nobodys_data_dir(shared_dir):
    """nobody's password entry, and a data directory of its own in
    shared_dir."""
    nobody = pwd.getpwnam("nobody")
    data = shared_dir / "data"
    data.mkdir()
    os.chown(data, nobody.pw_uid, nobody.pw_gid)
    return nobody, data


@ROOT_ONLY
def test_root_becomes_user_before_any_topicd(broker_factory, shared_dir):
    if not reachable_by_others(broker_binary()):
        pytest.skip("the build tree is not reachable by other users")
    nobody, data = nobodys_data_dir(shared_dir)
    b = broker_factory({"user": "nobody", "log_type": "information"}, start=False)
    b.data_dir = data
    b.start()
    try:
        # The ports accept before the drop (they are bound as root): wait
        # for the broker to say it is ready.
        wait_log(b, r"running as user nobody \(uid %d, gid %d\)(?s:.*)started: " %
                 (nobody.pw_uid, nobody.pw_gid))
        groups = set(os.getgrouplist("nobody", nobody.pw_gid))
        ids = proc_ids(b.pid)
        assert ids["Uid"] == [nobody.pw_uid] * 4, ids
        assert ids["Gid"] == [nobody.pw_gid] * 4, ids
        assert set(ids["Groups"]) == groups, ids
        send_pub_consume(b, "privs/t", "m")
        tids = proc_ids(b.wait_topicd("privs/t"))
        assert tids["Uid"] == [nobody.pw_uid] * 4 and set(tids["Groups"]) == groups, tids
        for f in [data] + list(data.rglob("*")):
            try:
                uid = f.lstat().st_uid
            except FileNotFoundError:     # a checkpoint's temporary file
                continue
            assert uid == nobody.pw_uid, "%s belongs to uid %d" % (f, uid)
    finally:
        assert b.stop() == 0


@ROOT_ONLY
def test_root_gives_its_log_file_to_the_user(broker_factory, shared_dir):
    """The master opens its log file as root, in a directory of root's:
    the file becomes the user's, so that its topicds log there too, and
    the master itself after a SIGHUP."""
    if not reachable_by_others(broker_binary()):
        pytest.skip("the build tree is not reachable by other users")
    nobody, data = nobodys_data_dir(shared_dir)
    log = shared_dir / "broker.log"
    b = broker_factory({"user": "nobody", "log_type": "information",
                        "log_dest": "file %s" % log}, start=False)
    b.data_dir = data
    b.start()
    try:
        wait_for(lambda: log.exists() and "started:" in log.read_text(), 10, "the log file")
        assert log.stat().st_uid == nobody.pw_uid
        assert log.stat().st_gid == 0, "its group stays"
        b.publisher().publish("owned/log", "m1")
        wait_for(lambda: re.search(r"topicd\[\d+\]: .*owned/log", log.read_text()), 10,
                 "a topicd line in the log file")
        b.signal(signal.SIGHUP)
        # (The harness's configuration file is in a directory of root's:
        # the reload may only say it cannot read it, in the log file.)
        wait_for(lambda: re.search(r"broker\[\d+\]: \w+: reload: ", log.read_text()), 10,
                 "the master's lines after SIGHUP")
        assert "cannot reopen log file" not in log.read_text(), log.read_text()
    finally:
        assert b.stop() == 0


@ROOT_ONLY
def test_root_creates_the_data_directory_for_the_user(broker_factory, shared_dir):
    if not reachable_by_others(broker_binary()):
        pytest.skip("the build tree is not reachable by other users")
    b = broker_factory({"user": "nobody"}, start=False)
    b.data_dir = shared_dir / "new-data"
    b.start()
    try:
        assert b.data_dir.stat().st_uid == pwd.getpwnam("nobody").pw_uid
        send_pub_consume(b, "privs/new", "m")
    finally:
        assert b.stop() == 0


@ROOT_ONLY
@pytest.mark.parametrize("which", ["data", "topics"])
def test_root_refuses_a_data_directory_of_another_user(tmp_path, which):
    nobody = pwd.getpwnam("nobody")
    data = tmp_path / "data"
    (data / "topics").mkdir(parents=True)
    if which == "topics":
        os.chown(data, nobody.pw_uid, nobody.pw_gid)
    conf = tmp_path / "broker.conf"
    conf.write_text("user nobody\n")
    c, p = free_ports(2)
    res = run_broker(["-c", conf, "-D", data, "-b", HOST, "-p", "0", "-J", "%d:%d" % (c, p)])
    err = res.stderr.decode()
    bad = data if which == "data" else data / "topics"
    assert res.returncode == 1, err
    line = error_line(err, re.escape("data directory %s belongs to root, not to user nobody"
                                     % bad))
    assert line.endswith("give it to nobody (chown -R nobody: %s) or set user" % data), line


@ROOT_ONLY
def test_root_follows_no_link_its_user_left_in_the_data_directory(shared_dir):
    """The data directory is the user's: a link it left there as
    broker.lock, to a file of root's, would have root give that file away
    when it gives the user the lock."""
    nobody, data = nobodys_data_dir(shared_dir)
    victim = shared_dir / "roots-file"
    victim.write_text("root's\n")
    (data / "broker.lock").symlink_to(victim)
    conf = shared_dir / "broker.conf"
    conf.write_text("user nobody\n")
    err = start_fails(["-c", conf, "-D", data])
    error_line(err, re.escape("%s is a symbolic link: remove it" % (data / "broker.lock")))
    assert victim.stat().st_uid == 0 and victim.read_text() == "root's\n"


@ROOT_ONLY
def test_root_refuses_an_unknown_user(tmp_path):
    conf = tmp_path / "broker.conf"
    conf.write_text("user no-such-user-for-broker\n")
    c, p = free_ports(2)
    res = run_broker(["-c", conf, "-D", tmp_path / "data", "-b", HOST, "-p", "0",
                      "-J", "%d:%d" % (c, p)])
    err = res.stderr.decode()
    assert res.returncode == 1, err
    error_line(err, r"user no-such-user-for-broker does not exist: create it \(for example "
               r"useradd --system --no-create-home no-such-user-for-broker\) or name another "
               r"one with the user setting$")
    assert not (tmp_path / "data").exists()


@ROOT_ONLY
def test_another_user_keeps_its_identity(shared_dir):
    """Not started as root: `user` (here the default, broker, which need not
    exist) changes nothing."""
    if not reachable_by_others(broker_binary()):
        pytest.skip("the build tree is not reachable by other users")
    nobody = pwd.getpwnam("nobody")
    os.chown(shared_dir, nobody.pw_uid, nobody.pw_gid)
    c, p = free_ports(2)

    def become_nobody():
        os.setgroups([])
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)
    proc = subprocess.Popen([str(broker_binary()), "-D", str(shared_dir / "data"), "-b", HOST,
                             "-p", "0", "-J", "%d:%d" % (c, p)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=become_nobody)
    try:
        def up():
            if proc.poll() is not None:
                raise AssertionError("exited: %s" % proc.stderr.read().decode())
            try:
                socket.create_connection((HOST, p), timeout=1).close()
                return True
            except OSError:
                return False
        wait_for(up, 10, "the broker started as nobody to listen")
        assert proc_ids(proc.pid)["Uid"] == [nobody.pw_uid] * 4
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
    err = proc.stderr.read().decode()
    assert code == 0, err
    assert "running as user" not in err and "user broker" not in err, err


# ---------------------------------------------------------------- start-up errors
# Each is one line at level error that says what to do; exit status 1.

def unprivileged():
    """(uid, gid, preexec_fn) that run the broker as an unprivileged user:
    nobody when the tests run as root, else the tests' own user."""
    if os.geteuid() != 0:
        return os.geteuid(), os.getegid(), None
    if not reachable_by_others(broker_binary()):
        pytest.skip("the build tree is not reachable by other users")
    nobody = pwd.getpwnam("nobody")

    def become_nobody():
        os.setgroups([])
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)
    return nobody.pw_uid, nobody.pw_gid, become_nobody


def start_fails(args, preexec_fn=None, cwd=None):
    """Starts the broker on free ports; it must fail: returns its stderr."""
    c, p = free_ports(2)
    res = run_broker(list(args) + ["-b", HOST, "-p", "0", "-J", "%d:%d" % (c, p)],
                     preexec_fn=preexec_fn, cwd=cwd)
    err = res.stderr.decode()
    assert res.returncode == 1, "exit status %s; stderr:\n%s" % (res.returncode, err)
    return err


def test_a_data_directory_the_broker_cannot_write_is_an_error(shared_dir):
    """Docker's case: the broker runs as its user (USER broker, or --user)
    and the volume is a bind mount that belongs to root."""
    uid, gid, become = unprivileged()
    data = shared_dir / "data"
    data.mkdir()
    data.chmod(0o555)
    err = start_fails(["-D", data], become, shared_dir)
    line = error_line(err, r"data directory %s is not writable by (user \S+ \()?uid %d\)?: "
                      % (re.escape(str(data)), uid))
    if os.geteuid() == 0:       # nobody, and a directory of root's
        assert line.endswith("%s belongs to root: chown -R %d:%d %s" % (data, uid, gid, data)), line
    else:
        assert line.endswith("%s has mode 0555: chmod -R u+rwX %s" % (data, data)), line
    assert "warning:" not in err, err
    assert list(data.iterdir()) == []


@ROOT_ONLY
def test_root_reports_a_data_directory_its_user_cannot_write(shared_dir):
    if not reachable_by_others(broker_binary()):
        pytest.skip("the build tree is not reachable by other users")
    nobody, data = nobodys_data_dir(shared_dir)
    data.chmod(0o555)
    conf = shared_dir / "broker.conf"
    conf.write_text("user nobody\n")
    err = start_fails(["-c", conf, "-D", data])
    line = error_line(err, re.escape("data directory %s is not writable by user nobody (uid %d): "
                                     % (data, nobody.pw_uid)))
    assert line.endswith("%s has mode 0555: chmod -R u+rwX %s" % (data, data)), line


def test_a_session_store_the_broker_cannot_open_is_an_error(shared_dir):
    uid, gid, become = unprivileged()
    data = shared_dir / "data"
    data.mkdir()
    journal = data / "sessions.journal"
    journal.write_bytes(b"")
    journal.chmod(0)            # and, as root, it stays root's: nobody cannot open it
    os.chown(data, uid, gid)
    err = start_fails(["-D", data], become, shared_dir)
    line = error_line(err, re.escape("cannot open the session store in %s: %s: Permission denied: "
                                     % (data, journal)))
    assert line.endswith("give the data directory and its files to uid %d (chown -R %d:%d %s)"
                         % (uid, uid, gid, data)), line


def test_a_port_in_use_is_an_error_that_names_its_setting(broker, tmp_path):
    conf = tmp_path / "second.conf"
    conf.write_text(root_config())
    res = run_broker(["-c", conf, "-D", tmp_path / "second", "-b", HOST, "-p", "0",
                      "-J", "%d:%d" % (broker.consumer_port, free_port())])
    err = res.stderr.decode()
    assert res.returncode == 1, err
    error_line(err, re.escape("JSON-lines consumers: cannot listen on %s port %d: Address already "
                              "in use: stop what uses it, or set another json_consumer_port "
                              "(0 disables it)" % (HOST, broker.consumer_port)) + "$")
    send_pub_consume(broker, "port/t", "the first one still serves")


def test_a_missing_topicd_is_an_error_that_says_what_to_do(tmp_path):
    missing = tmp_path / "no-topicd"
    conf = tmp_path / "broker.conf"
    conf.write_text(root_config() + "topicd_path %s\n" % missing)
    err = start_fails(["-c", conf, "-D", tmp_path / "data"])
    error_line(err, re.escape("topicd_path %s is not executable: No such file or directory: set "
                              "topicd_path to the topicd program" % missing))


# ---------------------------------------------------------------- install

INSTALLED = ["usr/sbin/broker", "usr/libexec/broker/topicd", "usr/share/man/man8/broker.8",
             "usr/share/man/man8/topicd.8", "usr/share/man/man5/broker.conf.5",
             "usr/share/man/man7/broker-protocol.7", "etc/broker/broker.conf",
             "lib/systemd/system/broker.service", "usr/lib/sysusers.d/broker.conf"]


def files_under(root):
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*") if not p.is_dir())


def test_make_install_and_uninstall(broker_factory, tmp_path):
    dest = tmp_path / "dest"
    res = make("install", "DESTDIR=%s" % dest, "PREFIX=/usr")
    assert res.returncode == 0, res.stdout.decode() + res.stderr.decode()
    assert files_under(dest) == sorted(INSTALLED)
    assert (dest / "etc/broker/broker.conf").read_text() == \
        (REPO_ROOT / "etc/broker.conf").read_text()
    unit = (dest / "lib/systemd/system/broker.service").read_text()
    assert "ExecStart=/usr/sbin/broker -c /etc/broker/broker.conf -D /var/lib/broker\n" in unit
    assert not re.search(r"@[A-Z]+@", unit), unit

    # The installed broker finds the installed topicd.
    b = broker_factory(start=False)
    b.binary = dest / "usr/sbin/broker"
    b.start()
    found = wait_log(b, r"started: .* topicd (\S+),").group(1)
    assert os.path.realpath(found) == str(dest / "usr/libexec/broker/topicd"), found
    send_pub_consume(b, "installed/t", "from the installed broker")
    assert b.stop() == 0

    # An operator's configuration survives install and uninstall.
    conf = dest / "etc/broker/broker.conf"
    conf.write_text(conf.read_text() + "retry_interval 3\n")
    res = make("install", "DESTDIR=%s" % dest, "PREFIX=/usr")
    assert res.returncode == 0, res.stderr.decode()
    assert conf.read_text().endswith("retry_interval 3\n")
    res = make("uninstall", "DESTDIR=%s" % dest, "PREFIX=/usr")
    assert res.returncode == 0, res.stderr.decode()
    assert files_under(dest) == ["etc/broker/broker.conf"]
    conf.unlink()
    # Without changes, uninstall removes exactly what install put there.
    assert make("install", "DESTDIR=%s" % dest, "PREFIX=/usr").returncode == 0
    assert make("uninstall", "DESTDIR=%s" % dest, "PREFIX=/usr").returncode == 0
    assert files_under(dest) == []
    assert not (dest / "usr/libexec/broker").exists() and not (dest / "etc/broker").exists()


def test_install_honours_prefix(tmp_path):
    dest = tmp_path / "dest"
    res = make("install", "DESTDIR=%s" % dest, "PREFIX=/opt/mq")
    assert res.returncode == 0, res.stderr.decode()
    assert files_under(dest) == sorted([
        "opt/mq/sbin/broker", "opt/mq/libexec/broker/topicd", "opt/mq/share/man/man8/broker.8",
        "opt/mq/share/man/man8/topicd.8", "opt/mq/share/man/man5/broker.conf.5",
        "opt/mq/share/man/man7/broker-protocol.7", "etc/broker/broker.conf",
        "opt/mq/lib/systemd/system/broker.service", "opt/mq/lib/sysusers.d/broker.conf"])
    unit = (dest / "opt/mq/lib/systemd/system/broker.service").read_text()
    assert "ExecStart=/opt/mq/sbin/broker " in unit
    assert make("uninstall", "DESTDIR=%s" % dest, "PREFIX=/opt/mq").returncode == 0
    assert files_under(dest) == []


# ---------------------------------------------------------------- unit, man, Dockerfile

def test_systemd_unit(tmp_path):
    text = (REPO_ROOT / "systemd/broker.service").read_text()
    settings = dict(re.findall(r"^(\w+)=(.*)$", text, re.M))
    assert settings["Type"] == "notify"
    assert settings["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert settings["Restart"] == "on-failure"
    assert settings["StateDirectory"] == "broker"
    assert settings["KillMode"] == "mixed"
    assert settings["User"] == "broker"
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices",
                "ProtectKernelTunables", "ProtectControlGroups", "LockPersonality",
                "MemoryDenyWriteExecute", "RestrictSUIDSGID"):
        assert settings[key] == "yes", key
    assert settings["ProtectSystem"] == "strict"
    assert settings["RestrictAddressFamilies"] == "AF_UNIX AF_INET AF_INET6"
    # Under ProtectSystem=strict the service writes only in the directories
    # the unit names: the documented pid file is in one.
    pid_file = re.search(r"^#pid_file (\S+)$", (REPO_ROOT / "etc/broker.conf").read_text(),
                         re.M).group(1)
    assert os.path.dirname(pid_file) == "/run/" + settings.get("RuntimeDirectory", ""), \
        pid_file
    assert ".Pa %s\n" % pid_file in (REPO_ROOT / "man/broker.conf.5").read_text()
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    unit = tmp_path / "broker.service"
    unit.write_text(text.replace("@SBINDIR@/broker", str(broker_binary()))
                    .replace("@SYSCONFDIR@", "/etc"))
    res = subprocess.run(["systemd-analyze", "--man=no", "verify", str(unit)],
                         capture_output=True, timeout=60)
    out = (res.stdout + res.stderr).decode()
    assert res.returncode == 0 and out.strip() == "", out


def test_man_pages_lint_clean():
    if shutil.which("mandoc") is None:
        pytest.skip("mandoc is not installed")
    res = make("manlint")
    assert res.returncode == 0, res.stdout.decode() + res.stderr.decode()


def test_man_pages_have_the_sections():
    for page in ("broker.8", "topicd.8", "broker.conf.5", "broker-protocol.7"):
        text = (REPO_ROOT / "man" / page).read_text()
        sections = re.findall(r"^\.Sh (.+)$", text, re.M)
        for s in ("NAME", "SYNOPSIS", "DESCRIPTION", "SIGNALS", "FILES", "EXIT STATUS",
                  "EXAMPLES", "SEE ALSO"):
            assert s in sections, "%s has no %s section" % (page, s)


def dockerfile_stages():
    """The Dockerfile's stages, each a list of (INSTRUCTION, arguments),
    continuation lines joined, comments left out."""
    text = re.sub(r"\\\n", " ", (REPO_ROOT / "Dockerfile").read_text())
    stages = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        instr, _, args = line.strip().partition(" ")
        if instr.upper() == "FROM":
            stages.append([])
        stages[-1].append((instr.upper(), " ".join(args.split())))
    return stages


def container_config():
    """The configuration the build stage writes for the container."""
    text = (REPO_ROOT / "Dockerfile").read_text()
    seds = re.findall(r"-e '(s\|[^']*)'", text)
    assert len(seds) == 2, seds
    res = subprocess.run(["sed"] + [a for s in seds for a in ("-e", s)] +
                         [str(REPO_ROOT / "etc/broker.conf")], capture_output=True, check=True)
    return res.stdout.decode()


def shell_command(run, name):
    """The words of the command `name` in a RUN's `a && b && ...`."""
    cmds = [c.split() for c in run.split("&&")]
    found = [c for c in cmds if c[0] == name]
    assert len(found) == 1, "%s: %s" % (name, run)
    return found[0]


def option(words, name):
    return words[words.index(name) + 1]


def test_dockerfile():
    text = (REPO_ROOT / "Dockerfile").read_text()
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["debian:bookworm-slim"] * 2
    assert re.search(r"^RUN scripts/deps.sh build", text, re.M)
    assert re.search(r"^EXPOSE 1883 4040 4041$", text, re.M)
    assert re.search(r"^VOLUME /var/lib/broker$", text, re.M)
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1] not in ("root", "0"), users
    for src in re.findall(r"^COPY (?!--from)(\S+) ", text, re.M):
        assert (REPO_ROOT / src).exists(), src
    # What the runtime stage copies is what `make install` puts in /out.
    copied = re.findall(r"^COPY --from=build /out/(\S+) ", text, re.M)
    assert copied and set(copied) <= set(INSTALLED), copied
    # The container's configuration: the example, listening on all
    # addresses, with its data in the volume.
    conf = container_config()
    assert re.search(r"^bind_address 0\.0\.0\.0$", conf, re.M)
    assert re.search(r"^data_dir /var/lib/broker$", conf, re.M)
    # A mounted configuration cannot move the data out of the volume.
    entry = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M).group(1))
    assert entry[entry.index("-D") + 1] == "/var/lib/broker", entry
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    assert "build" in ignored and ".git" in ignored


def test_dockerfile_installs_the_toolchain_before_copying_the_sources():
    """A change to the sources must not invalidate the toolchain's layer."""
    build = dockerfile_stages()[0]
    steps = [(i, a) for i, a in build if i in ("COPY", "ADD", "RUN")]
    assert steps[:3] == [("COPY", "scripts/deps.sh scripts/deps.sh"),
                         ("RUN", "scripts/deps.sh build"), ("COPY", ". .")], steps
    assert all("deps.sh" not in a for _, a in steps[3:]), steps


def test_dockerfile_runtime_stage_cleans_apt_and_fixes_the_user():
    runtime = dockerfile_stages()[-1]
    runs = [a for i, a in runtime if i == "RUN" and "apt-get install" in a]
    assert len(runs) == 1, runtime
    cmds = [" ".join(c.split()) for c in runs[0].split("&&")]
    installed = next(n for n, c in enumerate(cmds) if c.startswith("apt-get install"))
    assert "apt-get clean" in cmds[installed:], cmds
    assert "rm -rf /var/lib/apt/lists/*" in cmds[installed:], cmds
    # The user broker, with a fixed uid and gid, runs the broker ...
    group = shell_command(runs[0], "groupadd")
    user = shell_command(runs[0], "useradd")
    assert group[-1] == user[-1] == "broker", (group, user)
    uid, gid = int(option(user, "--uid")), int(option(user, "--gid"))
    assert int(option(group, "--gid")) == gid
    assert [a for i, a in runtime if i == "USER"][-1] == "broker"
    # ... and the README and the Dockerfile's comment say which.
    ids = "%d:%d" % (uid, gid)
    docker = README.read_text().split("With Docker", 1)[1].split("\n## ", 1)[0]
    assert "uid %d and gid %d" % (uid, gid) in " ".join(docker.split()), docker
    assert "chown -R %s " % ids in docker, docker
    assert "--user" in docker, docker
    comment = " ".join(re.findall(r"^# ?(.*)$", (REPO_ROOT / "Dockerfile").read_text(), re.M))
    assert "uid %d and gid %d" % (uid, gid) in comment and "chown -R %s" % ids in comment
    # The build stage checks the configuration with `broker -t`, which
    # (as root) wants the user it names: the same one is made there first.
    build_run = next(a for i, a in dockerfile_stages()[0] if i == "RUN" and "broker -t" in a)
    assert build_run.index("useradd") < build_run.index("broker -t"), build_run
    b_user = shell_command(build_run, "useradd")
    assert (int(option(b_user, "--uid")), int(option(b_user, "--gid")), b_user[-1]) == \
        (uid, gid, "broker"), b_user


def test_dockerfile_healthcheck_runs_a_script_of_the_runtime_stage(tmp_path):
    runtime = dockerfile_stages()[-1]
    checks = [a for i, a in runtime if i == "HEALTHCHECK"]
    assert len(checks) == 1, runtime
    cmd = json.loads(re.search(r"\bCMD (\[.*\])$", checks[0]).group(1))
    copies = dict(reversed(a.split()) for i, a in runtime
                  if i == "COPY" and not a.startswith("--"))
    assert cmd[0] in copies, (cmd, copies)
    script = REPO_ROOT / copies[cmd[0]]
    assert os.access(script, os.X_OK), script
    # bash is in debian:bookworm-slim (an essential package).
    assert script.read_text().startswith("#!/bin/bash\n")
    # It checks the container's MQTT port.
    conf = tmp_path / "container.conf"
    conf.write_text(container_config())
    res = run_broker(["-T", "-c", conf], cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr.decode()
    port = re.search(r"^mqtt_port (\d+)$", res.stdout.decode(), re.M).group(1)
    assert cmd[1:] == [port], cmd


def test_healthcheck_script_wants_a_connack(mqtt_broker):
    def check(port):
        return subprocess.run([str(REPO_ROOT / "scripts/healthcheck.sh"), str(port)],
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    res = check(mqtt_broker.mqtt_port)
    assert res.returncode == 0 and res.stderr == b"", res.stderr.decode()
    # A JSON-lines port accepts the connection, but answers no CONNACK.
    res = check(mqtt_broker.consumer_port)
    assert res.returncode == 1 and b"no CONNACK" in res.stderr, res.stderr.decode()
    res = check(free_port())
    assert res.returncode == 1 and b"nothing accepts connections" in res.stderr, \
        res.stderr.decode()
    send_pub_consume(mqtt_broker, "health/t", "still serving")


def test_make_run_installs_only_what_building_needs_and_passes_args():
    """make run needs no test tools: the package mosquitto (for the tests'
    mosquitto_passwd) would start its own server on port 1883.  ARGS reach
    the broker, for a port another server holds."""
    res = subprocess.run(["make", "-n", "-C", str(REPO_ROOT), "run", "ARGS=-p 1884"],
                         capture_output=True, text=True, check=True)
    lines = [line.strip() for line in res.stdout.splitlines()]
    assert "scripts/deps.sh build" in lines, lines
    assert "scripts/deps.sh" not in lines, lines
    assert "./broker/broker -c build/run.conf -D data -p 1884" in lines, lines


def test_deps_script_has_a_build_only_mode():
    res = subprocess.run(["bash", "-n", str(REPO_ROOT / "scripts/deps.sh")], capture_output=True)
    assert res.returncode == 0, res.stderr.decode()
    res = subprocess.run([str(REPO_ROOT / "scripts/deps.sh"), "nonsense"], capture_output=True)
    assert res.returncode == 2 and b"usage" in res.stderr
