"""Helpers that drive the real broker binaries over sockets.

A Broker starts the master with its own data directory, free ports and an
optional configuration, waits for readiness, stops it by pid, kills it with
SIGKILL and restarts it on the same data directory.  Clients speak the
JSON-lines protocol (PROTOCOL-json.md): JsonClient reads and writes lines,
Publisher does the PUB/PUBREC/PUBREL/PUBCOMP exchange, Qos2Consumer behaves
like a QoS 2 receiver and records what it was given.

Every wait has a deadline; nothing here sleeps in place of a condition.
Traffic goes to 127.0.0.1 only.
"""

import collections
import json
import os
import re
import select
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BIN = "build/san/bin/broker"

READY_TIMEOUT = 10.0    # broker start-up
STOP_TIMEOUT = 10.0     # SIGTERM to exit
LINE_TIMEOUT = 5.0      # one reply line
POLL = 0.02             # polling interval for conditions

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "ERROR: UndefinedBehaviorSanitizer")

PLEASE_LOGIN = "Please login!"
LOGGED_IN = "Succesfully logged in!"   # sic: kept byte for byte


class HarnessError(AssertionError):
    """A condition the test waited for did not come true."""


class ConnectionClosed(Exception):
    """The peer closed the connection (EOF or reset)."""

    def __init__(self, partial=b""):
        super().__init__("connection closed by peer"
                         + (" after partial line %r" % partial[:200] if partial else ""))
        self.partial = partial


class LineTimeout(Exception):
    """No complete line arrived before the deadline."""


def wait_for(pred, timeout, what, interval=POLL):
    """Polls pred() until it returns a true value, which is returned; fails
    with `what` in the message at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise HarnessError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def broker_binary():
    p = Path(os.environ.get("BROKER_BIN", DEFAULT_BIN))
    if not p.is_absolute():
        p = REPO_ROOT / p
    return p


def preload_shim(monkeypatch, tmp_path, binary, src):
    """Builds the C shim src (cc -shared) and preloads it into the
    processes started from now on (LD_PRELOAD, through monkeypatch).  An
    ASan build's runtime must come first in the preloads: it is put there."""
    so = tmp_path / (Path(src).stem + ".so")
    subprocess.run([os.environ.get("CC", "cc"), "-shared", "-fPIC", "-O1", "-Wall", "-Wextra",
                    "-Werror", "-o", str(so), str(src), "-ldl"], check=True)
    libs = subprocess.run(["ldd", str(binary)], check=True, capture_output=True,
                          text=True).stdout
    asan = re.search(r"^\s*libasan\S*\s+=>\s+(\S+)", libs, re.M)
    monkeypatch.setenv("LD_PRELOAD", " ".join(([asan.group(1)] if asan else []) + [str(so)]))


class SlowSync:
    """Brokers started from now on hold their syncs of files whose path
    holds match (default: the master's session store) while on() (30 s at
    most each; tests/e2e/slow_sync.c, preloaded; a topicd linked
    statically is not held, see dynamic_topicd()).  The stores sync in a
    thread of their own: the loops go on, and what waits for a change to
    be durable (a topic's forgetting before its topicd is sent FORGET, an
    answer to a publish) waits for the test."""

    def __init__(self, monkeypatch, tmp_path, match=None):
        preload_shim(monkeypatch, tmp_path, broker_binary(),
                     Path(__file__).with_name("slow_sync.c"))
        self.marker = tmp_path / "slow-sync.on"
        monkeypatch.setenv("SLOW_SYNC_MARKER", str(self.marker))
        monkeypatch.setenv("SLOW_SYNC_MS", "30000")
        if match is not None:
            monkeypatch.setenv("SLOW_SYNC_MATCH", match)

    def on(self):
        self.marker.write_text("held\n")

    def off(self):
        try:
            self.marker.unlink()
        except FileNotFoundError:
            pass


def dynamic_topicd():
    """Is the topicd beside the broker under test linked dynamically (a
    preloaded shim reaches it)?"""
    out = subprocess.run(["ldd", str(broker_binary().with_name("topicd"))],
                         capture_output=True, text=True)
    return out.returncode == 0 and "not a dynamic executable" not in out.stdout + out.stderr


def add_root_user(conf):
    """As root the broker becomes `user` (by default broker, which a test
    host need not have), and `broker -t` checks that it exists: a file to
    check gets `user root` at its end (its lines keep their numbers), as
    the files of the brokers the tests start do.  Returns conf."""
    conf = Path(conf)
    text = conf.read_text()
    if os.geteuid() == 0 and not re.search(r"^\s*user\s", text, re.M):
        conf.write_text(text + ("" if text.endswith("\n") or not text else "\n") + "user root\n")
    return conf


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def free_ports(n, avoid=()):
    """n distinct free ports (kept bound until all are chosen), none of
    them in avoid (ports already given to something else, which the
    kernel may hand out again once their probe socket is closed)."""
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
            port = s.getsockname()[1]
            if port not in avoid:
                ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


# ---------------------------------------------------------------- processes

def _read_stat(pid):
    """(state, ppid) of a process, or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rest = data[data.rfind(b")") + 2:].split()
    return rest[0].decode(), int(rest[1])


def read_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def process_alive(pid):
    """True while the process exists and is not a zombie."""
    st = _read_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def process_exists(pid):
    """True until the process has been reaped."""
    return _read_stat(pid) is not None


def children_of(ppid):
    """Live (non-zombie) children of ppid: {pid: cmdline bytes}."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        st = _read_stat(pid)
        if st is None or st[1] != ppid or st[0] in ("Z", "X"):
            continue
        cmd = read_cmdline(pid)
        if cmd is not None:
            out[pid] = cmd
    return out


def title_of(cmdline):
    """The process title: what setproctitle wrote, or argv joined."""
    parts = [p for p in cmdline.split(b"\0")]
    while parts and parts[-1] == b"":
        parts.pop()
    if not parts:
        return ""
    return parts[0].decode("utf-8", "replace").rstrip()


def is_topicd(cmdline):
    t = title_of(cmdline)
    if t.startswith("topicd:"):
        return True
    parts = cmdline.split(b"\0")
    return bool(parts) and os.path.basename(parts[0]) == b"topicd"


def topicd_topic(cmdline):
    """The topic a topicd serves, from its title `topicd: TOPIC subs=...`
    (or from `topicd ... -t TOPIC` before the title is set)."""
    t = title_of(cmdline)
    if t.startswith("topicd: "):
        rest = t[len("topicd: "):]
        m = re.match(r"^(.*?)(?: \w+=\S*)*$", rest)
        return m.group(1) if m else rest
    parts = [p.decode("utf-8", "replace") for p in cmdline.split(b"\0")]
    if parts and os.path.basename(parts[0]) == "topicd" and "-t" in parts:
        i = parts.index("-t")
        if i + 1 < len(parts):
            return parts[i + 1]
    return None


def kill_pid(pid, sig=signal.SIGKILL):
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


# ---------------------------------------------------------------- broker

class Broker:
    """One broker master on a private data directory.

    config: dict of configuration keys, written to broker.conf.
    conf_text: more lines after them (listener blocks).
    """

    def __init__(self, workdir, config=None, name="broker", extra_args=(), mqtt=False,
                 conf_text=""):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.data_dir.mkdir(exist_ok=True)
        self.name = name
        self.config = dict(config or {})
        self.conf_text = conf_text
        if os.geteuid() == 0:
            # Started as root, the broker becomes `user` (default broker),
            # which must own the data directory; the tests' is root's.
            self.config.setdefault("user", "root")
        self.extra_args = list(extra_args)
        self.binary = broker_binary()
        self.preexec_fn = None      # run in the child before the broker (limits)
        self.proc = None
        self.consumer_port = None
        self.publisher_port = None
        self.mqtt = mqtt            # an MQTT listener on a free port (else -p 0)
        self.bind = HOST            # -b: clients still connect to 127.0.0.1
        self.mqtt_port = None
        self.log_path = self.workdir / "broker.log"
        self._log = None
        self.generation = 0
        self.exit_codes = []        # (how, code) of every master that ended
        self.topicd_pids_seen = set()
        self.problems = []          # found while stopping; reported by the fixture

    # -- start / stop

    def config_file(self):
        path = self.workdir / "broker.conf"
        lines = ["# written by the e2e harness"]
        for k, v in self.config.items():
            lines.append("%s %s" % (k, v))
        if self.conf_text:
            lines.append(self.conf_text.rstrip("\n"))
        path.write_text("\n".join(lines) + "\n")
        return path

    def command(self):
        cmd = [str(self.binary), "-D", str(self.data_dir), "-b", self.bind,
               "-p", str(self.mqtt_port) if self.mqtt else "0",
               "-J", "%d:%d" % (self.consumer_port, self.publisher_port)]
        if self.config or self.conf_text:
            cmd[1:1] = ["-c", str(self.config_file())]
        if os.environ.get("BROKER_VERBOSE"):
            cmd.append("-v")
        return cmd + self.extra_args

    def start(self, keep_ports=False):
        """Starts the master and waits until both JSON-lines listeners
        accept.  Retries with other ports when one is taken."""
        if not (self.binary.is_file() and os.access(self.binary, os.X_OK)):
            raise HarnessError("broker binary %s is not an executable file (build it: "
                               "make san, or set BROKER_BIN)" % self.binary)
        last = ""
        for attempt in range(6):
            if not (keep_ports and self.consumer_port) or attempt > 0:
                # Not a port of the listener blocks (start_with_listeners).
                taken = {int(p) for p in re.findall(r"^listener (\d+)", self.conf_text, re.M)}
                if self.mqtt:
                    self.consumer_port, self.publisher_port, self.mqtt_port = \
                        free_ports(3, taken)
                else:
                    self.consumer_port, self.publisher_port = free_ports(2, taken)
            self.generation += 1
            self._log = open(self.log_path, "ab")
            self._log.write(b"\n==== harness: start #%d %s\n"
                            % (self.generation, " ".join(self.command()).encode()))
            self._log.flush()
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                         stdout=self._log, stderr=self._log,
                                         cwd=str(self.workdir), preexec_fn=self.preexec_fn)
            state = self._wait_ready()
            if state == "ready":
                return self
            code = self.proc.returncode
            self.exit_codes.append(("start", code))
            self.proc = None
            self._log.close()
            last = self.log_tail()
            if not re.search(r"address already in use|EADDRINUSE", last, re.I):
                raise HarnessError("broker exited with status %s during start-up; log:\n%s"
                                   % (code, last))
        raise HarnessError("broker could not bind free ports after 6 tries; log:\n" + last)

    def _wait_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return "exited"
            # Connecting proves a listener; the greeting proves it is ours.
            if self._connects(self.publisher_port) and self._greets(self.consumer_port) \
                    and (not self.mqtt or self._connects(self.mqtt_port)):
                if self.proc.poll() is None:
                    return "ready"
            time.sleep(POLL)
        self.proc.kill()
        self.proc.wait()
        raise HarnessError("broker not accepting (with a `Please login!` greeting on the "
                           "consumer port) on 127.0.0.1:%d/%d within %.0f s; log:\n%s"
                           % (self.consumer_port, self.publisher_port, READY_TIMEOUT,
                              self.log_tail()))

    @staticmethod
    def _greets(port):
        try:
            with socket.create_connection((HOST, port), timeout=2.0) as s:
                data = b""
                while b"\n" not in data:
                    chunk = s.recv(256)
                    if not chunk:
                        break
                    data += chunk
                return data.startswith(PLEASE_LOGIN.encode() + b"\r\n")
        except OSError:
            return False

    @staticmethod
    def _connects(port):
        try:
            with socket.create_connection((HOST, port), timeout=1.0):
                return True
        except OSError:
            return False

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _remember_topicds(self):
        if self.running():
            for pid, cmd in children_of(self.proc.pid).items():
                if is_topicd(cmd):
                    self.topicd_pids_seen.add(pid)

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, wait; SIGKILL after the deadline.  Returns the exit code
        (negative for a signal).  Records a problem if SIGTERM was not enough
        or topicds stayed behind."""
        if self.proc is None:
            return None
        self._remember_topicds()
        code = self.proc.poll()
        if code is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.problems.append("master pid %d did not exit within %.0f s of SIGTERM"
                                     % (self.proc.pid, timeout))
                self.proc.kill()
                code = self.proc.wait()
        self.exit_codes.append(("stop", code))
        self._finish_master()
        return code

    def kill9(self):
        """SIGKILL the master; its topicds are left to exit by themselves.
        Returns the topicd pids that were alive."""
        self._remember_topicds()
        left = {p for p in self.topicd_pids_seen if process_alive(p)}
        self.proc.kill()
        code = self.proc.wait()
        self.exit_codes.append(("kill9", code))
        self.proc = None
        self._log.close()
        return left

    def _finish_master(self):
        self.proc = None
        if self._log:
            self._log.close()
            self._log = None
        self.reap_orphans()

    def wait_topicds_gone(self, pids, timeout=10.0):
        wait_for(lambda: not [p for p in pids if process_alive(p) and
                              is_topicd(read_cmdline(p) or b"")],
                 timeout, "topicds %s to exit after the master ended" % sorted(pids))

    def reap_orphans(self, timeout=5.0):
        """Topicds must exit when their master is gone; kill leftovers by pid
        (after checking the pid still is a topicd) and record the problem."""
        def left():
            return [p for p in self.topicd_pids_seen
                    if process_alive(p) and is_topicd(read_cmdline(p) or b"")]
        deadline = time.monotonic() + timeout
        while left() and time.monotonic() < deadline:
            time.sleep(POLL)
        for p in left():
            self.problems.append("topicd pid %d (%s) still running %.0f s after its master "
                                 "ended; killed" % (p, title_of(read_cmdline(p) or b""), timeout))
            kill_pid(p)
        self.topicd_pids_seen = {p for p in self.topicd_pids_seen if process_exists(p)}

    def restart(self, keep_ports=True):
        """Stops (SIGTERM) if running, then starts on the same data dir."""
        if self.running():
            self.stop()
        return self.start(keep_ports=keep_ports)

    def signal(self, sig):
        self.proc.send_signal(sig)

    # -- topicds

    def topicds(self):
        """{pid: topic} of the master's live topicd children."""
        out = {}
        if not self.running():
            return out
        for pid, cmd in children_of(self.proc.pid).items():
            if is_topicd(cmd):
                self.topicd_pids_seen.add(pid)
                out[pid] = topicd_topic(cmd)
        return out

    def topicd_pid(self, topic):
        for pid, t in self.topicds().items():
            if t == topic:
                return pid
        return None

    def wait_topicd(self, topic, timeout=10.0, not_pid=None):
        """Waits for a live topicd serving topic (other than not_pid)."""
        def find():
            p = self.topicd_pid(topic)
            return p if p is not None and p != not_pid else None
        return wait_for(find, timeout, "a topicd for topic %r%s" %
                        (topic, " other than pid %d" % not_pid if not_pid else ""))

    def kill_topicd(self, topic, timeout=10.0):
        """SIGKILLs the topic's topicd; returns its pid."""
        pid = self.wait_topicd(topic, timeout)
        kill_pid(pid)
        return pid

    # -- configuration

    def reload(self, changes=None, timeout=10.0):
        """Updates the configuration file with `changes` (key: value; None
        removes a key), sends SIGHUP and waits until the master says it
        re-read the file.  Returns what it logged from the SIGHUP on."""
        for k, v in (changes or {}).items():
            if v is None:
                self.config.pop(k, None)
            else:
                self.config[k] = v
        self.config_file()
        start = len(self.log_text())
        self.signal(signal.SIGHUP)
        done = re.compile(r"reload: (configuration re-read, \d+ settings? changed|"
                          r".* ha(s|ve) errors; keeping the running configuration)")
        m = wait_for(lambda: done.search(self.log_text(), start), timeout,
                     "the master to re-read its configuration after SIGHUP")
        text = self.log_text()[start:m.end()]
        assert "errors; keeping" not in m.group(0), "the reload was refused:\n" + text
        return text

    # -- figures

    def status(self, timeout=10.0):
        """Asks the master for its status (SIGUSR1) and returns the figures
        of the lines it logs: (master, topics), master a dict of "pid",
        "uptime", "clients", "topics", "forgotten", "running", "waiting", "listed",
        "messages_in", "messages_out", "bytes_in", "bytes_out", "stored",
        "held_bytes", "queued_bytes" (publishes held for topicds, records queued
        on their channels), "held_over" (past max_held_bytes); topics (those
        listed: every topic that is not cold) {topic: dict of "pid", "state",
        "uptime", "restarts", "subs", "online", "messages", "bytes", "seq",
        "lag", "oldest_unacked", "held", "expired"}.  A topic's figures other than
        state and held are its topicd's last report (at most a second old)."""
        start = len(self.log_text())
        self.signal(signal.SIGUSR1)
        master_rx = re.compile(r"broker\[%d\]: notice: status: master (.*)\n" % self.pid)

        def lines():
            text = self.log_text()[start:]
            m = master_rx.search(text)
            if m is None:
                return None
            master = _figures(m.group(1), STATUS_MASTER_RE)
            found = STATUS_TOPIC_RE.findall(text[m.end():])
            if len(found) < master["listed"]:
                return None
            topics = {}
            for topic, rest in found[:master["listed"]]:
                topics[topic] = _figures(rest, STATUS_TOPIC_FIGURES_RE)
            return master, topics
        return wait_for(lines, timeout, "the master's status lines after SIGUSR1")

    def topicd_status(self, topic, timeout=10.0):
        """Asks the topic's topicd for its status (SIGUSR1) and returns its
        figures, fresh: a dict of "pid", "subs", "online", "seq" (the last
        given, as in the master's line), "first_seq" (the oldest stored),
        "messages", "bytes", "lag", "oldest_unacked", "commits", "expired"."""
        pid = self.wait_topicd(topic, timeout)
        start = len(self.log_text())
        kill_pid(pid, signal.SIGUSR1)
        rx = re.compile(r"topicd\[%d\]: notice: status: topic %s (pid .*)\n"
                        % (pid, re.escape(topic)))

        def line():
            m = rx.search(self.log_text()[start:])
            return _figures(m.group(1), STATUS_TOPICD_RE) if m else None
        return wait_for(line, timeout, "the status line of the topicd of %r" % topic)

    # -- logs

    def log_text(self):
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines=60):
        return "\n".join(self.log_text().splitlines()[-lines:])

    def sanitizer_reports(self):
        """One summary per sanitizer report in the log: its header, the
        first frames in the project's code, and its SUMMARY line."""
        reports, cur = [], None
        for line in self.log_text().splitlines():
            if any(m in line for m in SANITIZER_MARKS):
                cur = [line.strip()]
                reports.append(cur)
            elif cur is not None:
                if "SUMMARY:" in line:
                    cur.append(line.strip())
                    cur = None
                elif re.search(r"#\d+ .* in .* (broker|topicd|common)/\S+:\d+", line) \
                        and "xmalloc.c" not in line and len(cur) < 4:
                    cur.append(line.strip())
        return ["\n      ".join(r) for r in reports]

    # -- clients

    def publisher(self, **kw):
        return Publisher(self.publisher_port, **kw)

    def client(self, port_kind="consumer", **kw):
        port = self.consumer_port if port_kind == "consumer" else self.publisher_port
        return JsonClient(port, **kw)

    def consumer(self, username, **kw):
        """A logged-in Qos2Consumer."""
        c = Qos2Consumer(self, username, **kw)
        c.connect()
        return c


# ---------------------------------------------------------------- settings

SETTINGS_RE = re.compile(r'\{\s*"(\w+)",\s*CONF_(\w+),\s*F\(\w+\),\s*(NULL|"[^"]*"),\s*'
                         r'([\d.]+),\s*([\d.]+),\s*(RELOAD|FIXED),')


def settings_table():
    """[(key, type, default or None, min, max, reloadable)] from the
    source of the broker's configuration table (broker/core/settings.c)."""
    text = (REPO_ROOT / "broker" / "core" / "settings.c").read_text()
    return [(k, t, None if d == "NULL" else d.strip('"'), lo, hi, r == "RELOAD")
            for k, t, d, lo, hi, r in SETTINGS_RE.findall(text)]


# ---------------------------------------------------------------- status lines

STATUS_MASTER_RE = re.compile(
    r"pid (?P<pid>\d+) uptime (?P<uptime>\d+)s clients (?P<clients>\d+) "
    r"topics (?P<topics>\d+) forgotten (?P<forgotten>\d+) running (?P<running>\d+) waiting (?P<waiting>\d+) "
    r"listed (?P<listed>\d+) spare (?P<spare>\d+) "
    r"messages in (?P<messages_in>\d+) out (?P<messages_out>\d+) "
    r"bytes in (?P<bytes_in>\d+) out (?P<bytes_out>\d+) stored (?P<stored>\d+) "
    r"held (?P<held_bytes>\d+) queued (?P<queued_bytes>\d+)"
    r"(?P<store_full> FULL \(max_store_size\)[^H]*)?(?P<held_over> HELD .*)?$")
STATUS_TOPIC_RE = re.compile(r"broker\[\d+\]: notice: status: topic (.+?) (pid \d+ \w+ .*)\n")
STATUS_TOPIC_FIGURES_RE = re.compile(
    r"pid (?P<pid>\d+) (?P<state>\w+)(?P<full> full)?(?P<probing> probing)? "
    r"uptime (?P<uptime>\d+)s restarts (?P<restarts>\d+) poisoned (?P<poisoned>\d+) "
    r"subs (?P<subs>\d+) online (?P<online>\d+) messages (?P<messages>\d+) "
    r"bytes (?P<bytes>\d+) disk (?P<disk>\d+) seq (?P<seq>\d+) lag (?P<lag>\d+) "
    r"oldest_unacked (?P<oldest_unacked>\d+)ms held (?P<held>\d+) "
    r"expired (?P<expired>\d+)$")
STATUS_TOPICD_RE = re.compile(
    r"pid (?P<pid>\d+) subs (?P<subs>\d+) online (?P<online>\d+) "
    r"seq (?P<seq>\d+) first (?P<first_seq>\d+) messages (?P<messages>\d+) "
    r"bytes (?P<bytes>\d+) disk (?P<disk>\d+)(?: full \w+)? lag (?P<lag>\d+) "
    r"oldest_unacked (?P<oldest_unacked>\d+)ms commits (?P<commits>\d+) "
    r".* expired (?P<expired>\d+)$")


def _figures(text, rx):
    """The named groups of rx in a status line, numbers as ints; a line
    that does not have the expected layout fails the test."""
    m = rx.match(text)
    if m is None:
        raise HarnessError("status line %r does not have the layout %r" % (text, rx.pattern))
    return {k: int(v) if v is not None and v.isdigit() else v for k, v in m.groupdict().items()}


# ---------------------------------------------------------------- clients

class JsonClient:
    """A line-oriented TCP client.  Lines from the broker must end in CRLF."""

    registry = None     # set by the fixture: every client is closed in teardown

    def __init__(self, port, timeout=LINE_TIMEOUT, eol=b"\r\n", tls=None):
        """tls: an ssl.SSLContext to speak TLS with (the handshake is done
        here)."""
        self.port = port
        self.timeout = timeout
        self.eol = eol
        self.buf = b""
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname=HOST)
        self.local_port = self.sock.getsockname()[1]
        self.closed = False
        self.send_lock = threading.Lock()
        if JsonClient.registry is not None:
            JsonClient.registry.append(self)

    # -- writing

    def send_raw(self, data):
        with self.send_lock:
            self.sock.sendall(data)

    def send_line(self, line, eol=None):
        if isinstance(line, str):
            line = line.encode()
        self.send_raw(line + (self.eol if eol is None else eol))

    def send_json(self, obj, eol=None):
        self.send_line(json.dumps(obj, separators=(",", ":")), eol)

    # -- reading

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LineTimeout()
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise LineTimeout() from None
        except (ConnectionResetError, ssl.SSLError):
            raise ConnectionClosed(self.buf) from None
        if not data:
            raise ConnectionClosed(self.buf)
        self.buf += data

    def read_raw_line(self, timeout=None):
        """One line with its terminator, as bytes."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while b"\n" not in self.buf:
            self._fill(deadline)
        i = self.buf.index(b"\n") + 1
        line, self.buf = self.buf[:i], self.buf[i:]
        return line

    def read_line(self, timeout=None):
        """One line without CRLF, as str; fails if it does not end in CRLF."""
        try:
            raw = self.read_raw_line(timeout)
        except LineTimeout:
            raise HarnessError("no line from port %d within %.1f s (buffered: %r)"
                               % (self.port, self.timeout if timeout is None else timeout,
                                  self.buf[:200])) from None
        if not raw.endswith(b"\r\n"):
            raise HarnessError("line not terminated by CRLF: %r" % raw[:300])
        return raw[:-2].decode("utf-8")

    def read_json(self, timeout=None):
        line = self.read_line(timeout)
        try:
            return json.loads(line)
        except ValueError:
            raise HarnessError("expected a JSON line, got %r" % line[:300]) from None

    def expect(self, expected, timeout=None):
        got = self.read_line(timeout)
        assert got == expected, "expected %r, got %r" % (expected, got)
        return got

    def expect_prefix(self, prefix, timeout=None):
        got = self.read_line(timeout)
        assert got.startswith(prefix), "expected a line starting %r, got %r" % (prefix, got)
        return got

    def expect_silence(self, duration):
        """Asserts that no line arrives for `duration` seconds (an absence can
        only be checked over a period)."""
        try:
            raw = self.read_raw_line(duration)
        except LineTimeout:
            return
        raise AssertionError("expected nothing for %.1f s, got %r" % (duration, raw[:300]))

    def expect_closed(self, timeout=None, allow=()):
        """Waits for EOF; lines in `allow` may come first.  Returns them."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        seen = []
        while True:
            try:
                raw = self.read_raw_line(max(0.0, deadline - time.monotonic()))
            except ConnectionClosed as e:
                assert not e.partial, "partial line before close: %r" % e.partial
                return seen
            except LineTimeout:
                raise HarnessError("connection on port %d still open after %.1f s "
                                   "(lines: %r)" % (self.port, self.timeout if timeout is None
                                                    else timeout, seen)) from None
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            assert line in allow, "expected the connection to close, got %r" % line
            seen.append(line)

    def close(self, reset=False):
        if self.closed:
            return
        self.closed = True
        try:
            if reset:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                     b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.sock.close()
        except OSError:
            pass


PUBREC_RE = re.compile(rb'^\{"type":"PUBREC","msgId":(\d+)\}\r\n$')
PUBCOMP_RE = re.compile(rb'^\{"type":"PUBCOMP","msgId":(\d+)\}\r\n$')


class PublishRefused(Exception):
    def __init__(self, line):
        super().__init__("publish refused: %r" % line)
        self.line = line


class Publisher(JsonClient):
    """A client of the publisher port (no login)."""

    def pub(self, topic, msg, timeout=None):
        """Sends PUB; returns the msgId of the byte-exact PUBREC.  Raises
        PublishRefused on an `ERROR ...` line."""
        self.send_json({"type": "PUB", "topic": topic, "msg": msg})
        return self.read_pubrec(timeout)

    def read_pubrec(self, timeout=None):
        raw = self._read_reply(timeout, "PUBREC")
        m = PUBREC_RE.match(raw)
        if m:
            return int(m.group(1))
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if line.startswith("ERROR "):
            raise PublishRefused(line)
        raise AssertionError('expected {"type":"PUBREC","msgId":N}\\r\\n, got %r' % raw)

    def pubrel(self, msg_id, timeout=None):
        """Sends PUBREL; checks the byte-exact PUBCOMP with the same id."""
        self.send_json({"type": "PUBREL", "msgId": msg_id})
        self.read_pubcomp(msg_id, timeout)

    def read_pubcomp(self, msg_id, timeout=None):
        raw = self._read_reply(timeout, "PUBCOMP")
        expected = b'{"type":"PUBCOMP","msgId":%d}\r\n' % msg_id
        assert raw == expected, "expected %r, got %r" % (expected, raw)

    def _read_reply(self, timeout, what):
        t = self.timeout if timeout is None else timeout
        try:
            return self.read_raw_line(t)
        except LineTimeout:
            raise HarnessError("no %s within %.1f s on the publisher port" % (what, t)) from None

    def publish(self, topic, msg, timeout=None):
        """The full exchange; returns the msgId."""
        mid = self.pub(topic, msg, timeout)
        self.pubrel(mid, timeout)
        return mid

    def publish_pipelined(self, items, timeout=None):
        """Sends every PUB of [(topic, msg)] at once, reads the PUBRECs, then
        sends every PUBREL at once and reads the PUBCOMPs.  Returns the
        msgIds in order.  Replies come in request order on a connection."""
        data = b"".join(json.dumps({"type": "PUB", "topic": t, "msg": m},
                                   separators=(",", ":")).encode() + self.eol
                        for t, m in items)
        self.send_raw(data)
        ids = [self.read_pubrec(timeout) for _ in items]
        self.send_raw(b"".join(b'{"type":"PUBREL","msgId":%d}' % i + self.eol for i in ids))
        for i in ids:
            self.read_pubcomp(i, timeout)
        return ids


class Flood:
    """A publisher that floods without reading: PUB lines m0, m1, ... for
    one topic, each with a 1 KiB message (so that a few hundred fill the
    kernel's buffers), written on a non-blocking socket with small buffers
    of its own until the socket stays full."""

    QUIET = 0.5             # seconds a full socket must stay full
    BUFFER = 4096           # SO_SNDBUF and SO_RCVBUF, set before connecting

    def __init__(self, port, topic, limit_bytes=16 << 20):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.BUFFER)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.BUFFER)
        self.sock.settimeout(10)
        self.sock.connect((HOST, port))
        if JsonClient.registry is not None:
            JsonClient.registry.append(self)
        self.topic, self.limit = topic, limit_bytes
        self.lines = 0          # lines begun
        self.sent = 0           # bytes sent
        self.buf = b""          # the rest of the line begun last

    def line(self, i):
        return b'{"type":"PUB","topic":"%s","msg":"m%d %s"}\n' % (
            self.topic.encode(), i, b"x" * 1024)

    def until_blocked(self):
        """Sends until send() fails with EAGAIN, the socket does not become
        writable for QUIET seconds, and send() then fails with EAGAIN
        again: the peer has stopped reading."""
        self.sock.setblocking(False)
        while True:
            if self.sent > self.limit:
                raise AssertionError("sent %d bytes (%d lines) without the broker ever "
                                     "stopping reading" % (self.sent, self.lines))
            if not self.buf:
                self.buf = self.line(self.lines)
                self.lines += 1
            try:
                n = self.sock.send(self.buf)
            except BlockingIOError:
                _, writable, _ = select.select([], [self.sock], [], self.QUIET)
                if writable:
                    continue
                try:            # poll() wants more room than send() needs
                    n = self.sock.send(self.buf)
                except BlockingIOError:
                    return
            self.sent += n
            self.buf = self.buf[n:]

    def rest(self):
        """The end of the line begun last, sent blocking."""
        self.sock.setblocking(True)
        self.sock.sendall(self.buf)
        self.buf = b""

    def read_pubrecs(self, n, timeout=30.0):
        """The msgIds of the next n replies, which must all be PUBRECs."""
        ids, buf = [], b""
        self.sock.settimeout(timeout)
        while len(ids) < n:
            chunk = self.sock.recv(65536)
            assert chunk, "the broker closed the flooding publisher after %d answers" % len(ids)
            buf += chunk
            *done, buf = buf.split(b"\r\n")
            for line in done:
                reply = json.loads(line)
                assert reply["type"] == "PUBREC", line
                ids.append(reply["msgId"])
        assert buf == b"", "more than %d replies: %r" % (n, buf[:200])
        return ids

    def close(self, reset=False):
        self.sock.close()


def utc(t):
    """A wall-clock time as the broker logs it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % (t % 1 * 1000)


def login(client, username, timeout=None):
    """Reads the greeting and logs in; returns the reply line."""
    client.expect(PLEASE_LOGIN, timeout)
    client.send_line("log " + username)
    return client.read_line(timeout)


class Delivery(collections.namedtuple("Delivery", "topic msg_id msg raw conn at")):
    """at: wall-clock time of arrival, to set against the broker's log."""


class Pumped:
    """A client that is pumped either by a thread of its own (start/stop)
    or by the test while it waits (wait_until).  The class defines
    pump(timeout), describe(), `label`, `lock` and `errors` (the protocol
    errors it recorded, which the fixtures check in teardown); it calls
    _init_pump()."""

    def _init_pump(self):
        self.disconnected = False
        self._thread = None
        self._stop = threading.Event()
        self.thread_error = None

    def wait_until(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if pred():
                    return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HarnessError("%s: timed out after %.1f s waiting for %s; %s"
                                   % (self.label, timeout, what, self.describe()))
            if self._thread is None:
                self.pump(min(remaining, 0.2))
            elif self.thread_error is not None:
                raise self.thread_error
            else:
                time.sleep(POLL)        # the thread pumps; poll the condition

    def start(self):
        """Pumps in a thread until stop() or the connection ends."""
        self._stop.clear()
        self.thread_error = None

        def run():
            try:
                while not self._stop.is_set():
                    self.pump(0.1)
            except (ConnectionClosed, OSError):
                with self.lock:
                    self.disconnected = True
            except BaseException as e:          # reported by stop()
                self.thread_error = e
        self._thread = threading.Thread(target=run, name=self.label, daemon=True)
        self._thread.start()
        return self

    def protocol_problems(self):
        """The protocol errors this client recorded, one sentence each, for
        the fixtures' teardown: any of them fails the test."""
        with self.lock:
            return ["%s recorded a protocol error: %s" % (self.label, e) for e in self.errors]

    def stop(self, timeout=5.0):
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout)
        alive = self._thread.is_alive()
        self._thread = None
        if alive:
            raise HarnessError("%s: thread did not stop" % self.label)
        if self.thread_error is not None:
            e, self.thread_error = self.thread_error, None
            raise e


class Qos2Consumer(Pumped):
    """A consumer that answers like a QoS 2 receiver.

    For each delivered PUB it sends PUBREC and waits for the PUBREL; on
    PUBREL it sends PUBCOMP for the (topic, msgId) the PUBREL names (a
    PUBREL without a topic is an error, then taken as the original's, for
    the oldest exchange with that id).  A PUB for a (topic, msgId) it has PUBREC'd but
    not yet seen the PUBREL of is a duplicate transmission, answered with
    PUBREC again and not counted as an arrival.  Its receiver state lives
    on across reconnects, as a session's does.

    Replies (OK, ERROR ...) are matched to commands in order.  Anything that
    breaks the protocol goes to self.errors, which the fixture checks in
    teardown: a recorded error fails the test.
    """

    registry = None     # set by the fixture: every thread is stopped in teardown

    def __init__(self, broker, username, auto_ack=True, timeout=LINE_TIMEOUT, port=None,
                 tls=None):
        """port, tls: another consumer port than the broker's shortcut one,
        and the ssl.SSLContext to speak TLS there."""
        if Qos2Consumer.registry is not None:
            Qos2Consumer.registry.append(self)
        self.broker = broker
        self.port = port
        self.tls = tls
        self.username = username
        self.auto_ack = auto_ack
        self.timeout = timeout
        self.client = None
        self.conn_no = 0
        self.lock = threading.RLock()
        self.deliveries = []            # new arrivals, in order
        self.duplicates = []            # repeated transmissions
        self.pubrels = []               # (msg_id, raw)
        self.errors = []
        self.replies = []               # (command, reply)
        self.pending = collections.deque()  # commands waiting for a reply
        self.awaiting_rel = collections.OrderedDict()  # (topic, id) -> True
        self.completed = collections.OrderedDict()     # id -> [topics], PUBCOMP sent
        self.last_id = {}               # topic -> last new msgId
        self.label = "consumer %r" % username
        self._init_pump()

    # -- connection

    def connect(self, timeout=10.0):
        """Connects and logs in.  A refusal because the previous connection
        of the username is not gone yet is retried until the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            c = JsonClient(self._port(), timeout=self.timeout, tls=self.tls)
            reply = login(c, self.username)
            if reply == LOGGED_IN:
                break
            c.close()
            if not reply.startswith("ERROR") or time.monotonic() >= deadline:
                raise HarnessError("login of %r failed: %r" % (self.username, reply))
            time.sleep(POLL * 5)
        with self.lock:
            self.client = c
            self.conn_no += 1
            self.pending.clear()
            self.disconnected = False
        return self

    def _port(self):
        return self.port or self.broker.consumer_port

    def close(self, reset=False):
        if self.client:
            self.client.close(reset)

    def reconnect(self, timeout=10.0):
        self.close()
        return self.connect(timeout)

    # -- commands

    def command(self, obj, timeout=None):
        """Sends a command and pumps until its reply arrives; returns it."""
        name = obj.get("type") if isinstance(obj, dict) else str(obj)
        with self.lock:
            self.pending.append(name)
            mark = len(self.replies)
            self.client.send_json(obj)
        self.wait_until(lambda: len(self.replies) > mark, timeout or self.timeout,
                        "the reply to %s" % json.dumps(obj))
        return self.replies[mark][1]

    def subscribe(self, topic):
        reply = self.command({"type": "SUB", "topic": topic})
        assert reply == "OK", "SUB %r: expected OK, got %r" % (topic, reply)

    def unsubscribe(self, topic):
        reply = self.command({"type": "UNSUB", "topic": topic})
        assert reply == "OK", "UNSUB %r: expected OK, got %r" % (topic, reply)

    def send_pubrec(self, topic, msg_id):
        with self.lock:
            self.pending.append("PUBREC")
            self.client.send_json({"type": "PUBREC", "msgId": msg_id, "topic": topic})

    def send_pubcomp(self, topic, msg_id):
        with self.lock:
            self.pending.append("PUBCOMP")
            self.client.send_json({"type": "PUBCOMP", "msgId": msg_id, "topic": topic})

    # -- receiving

    def pump(self, timeout):
        """Handles one incoming line.  False on timeout; raises
        ConnectionClosed when the connection ends."""
        try:
            raw = self.client.read_raw_line(timeout)
        except LineTimeout:
            return False
        with self.lock:
            self._handle(raw)
        return True

    def _handle(self, raw):
        if not raw.endswith(b"\r\n"):
            self.errors.append("line not terminated by CRLF: %r" % raw[:200])
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line.startswith("{"):
            if not self.pending:
                self.errors.append("unsolicited line %r" % line)
                return
            cmd = self.pending.popleft()
            self.replies.append((cmd, line))
            if cmd in ("PUBREC", "PUBCOMP") and line != "OK":
                self.errors.append("%s answered %r, expected OK" % (cmd, line))
            return
        try:
            obj = json.loads(line)
        except ValueError:
            self.errors.append("undecodable line %r" % line[:200])
            return
        kind = obj.get("type") if isinstance(obj, dict) else None
        if kind == "PUB":
            self._on_pub(obj, raw)
        elif kind == "PUBREL":
            self._on_pubrel(obj, raw)
        else:
            self.errors.append("unexpected JSON line %r" % line[:200])

    def _on_pub(self, obj, raw):
        if set(obj) != {"type", "topic", "msg", "msgId"} and \
                set(obj) != {"type", "topic", "msg", "msgId", "encoding"}:
            self.errors.append("PUB with keys %s: %r" % (sorted(obj), raw[:200]))
        topic, mid = obj.get("topic"), obj.get("msgId")
        if not isinstance(topic, str) or not isinstance(mid, int) or isinstance(mid, bool):
            self.errors.append("PUB with bad topic or msgId: %r" % raw[:200])
            return
        key = (topic, mid)
        if key in self.awaiting_rel:
            self.duplicates.append(Delivery(topic, mid, obj.get("msg"), raw, self.conn_no,
                                            time.time()))
        else:
            for (t, other) in self.awaiting_rel:
                if t == topic:
                    self.errors.append("PUB %s #%d arrived before the exchange of #%d was "
                                       "complete" % (topic, mid, other))
            last = self.last_id.get(topic)
            if last is not None and mid <= last:
                self.errors.append("msgId of topic %s went from %d to %d" % (topic, last, mid))
            self.last_id[topic] = mid
            self.deliveries.append(Delivery(topic, mid, obj.get("msg"), raw, self.conn_no,
                                            time.time()))
            if not self.auto_ack:
                return
            self.awaiting_rel[key] = True
        self.send_pubrec(topic, mid)

    def _on_pubrel(self, obj, raw):
        mid, topic = obj.get("msgId"), obj.get("topic")
        self.pubrels.append((mid, raw))
        if set(obj) != {"type", "msgId", "topic"} or not isinstance(topic, str):
            self.errors.append("PUBREL without a topic, or with keys %s: %r"
                               % (sorted(obj), raw[:200]))
            topic = None
        # The PUBREL names its topic (msgIds are per topic); the original's
        # named none: then the oldest exchange with this id is taken.
        for (t, m) in self.awaiting_rel:
            if m == mid and topic in (None, t):
                del self.awaiting_rel[(t, m)]
                topics = self.completed.pop(mid, [])
                self.completed[mid] = [x for x in topics if x != t] + [t]
                while len(self.completed) > 10000:
                    self.completed.popitem(last=False)
                self.send_pubcomp(t, mid)
                return
        # A repeated PUBREL of a completed exchange: PUBCOMP again.  Without
        # a topic, which one it is for cannot be told when several topics
        # used the id, so every one of them gets the (idempotent) PUBCOMP.
        done = self.completed.get(mid, [])
        if topic in done:
            self.send_pubcomp(topic, mid)
            return
        if topic is None and done:
            for t in done:
                self.send_pubcomp(t, mid)
            return
        self.errors.append("PUBREL for msgId %r of topic %r that was never PUBREC'd"
                           % (mid, topic))

    # -- waiting

    def describe(self):
        """The receiver's state, for failure messages."""
        with self.lock:
            last = [(d.topic, d.msg_id, str(d.msg)[:40], utc(d.at)) for d in self.deliveries[-3:]]
            return ("arrivals %d (last %s), duplicates %d, PUBRECs awaiting PUBREL %s, "
                    "commands awaiting a reply %s, last PUBRELs %s, connection #%d%s, "
                    "errors %s" % (len(self.deliveries), last, len(self.duplicates),
                                   list(self.awaiting_rel), list(self.pending),
                                   [m for m, _ in self.pubrels[-3:]], self.conn_no,
                                   " (closed by peer)" if self.disconnected else "",
                                   self.errors[:5]))

    def messages(self, topic=None):
        with self.lock:
            return [d.msg for d in self.deliveries if topic is None or d.topic == topic]

    def wait_messages(self, n, topic=None, timeout=10.0):
        self.wait_until(lambda: len(self.messages(topic)) >= n, timeout,
                        "%d messages%s" % (n, " on %r" % topic if topic else ""))
        return self.messages(topic)

    def wait_message(self, msg, topic=None, timeout=10.0):
        self.wait_until(lambda: msg in self.messages(topic), timeout,
                        "message %r%s" % (msg, " on %r" % topic if topic else ""))

    def pump_for(self, duration):
        """Handles whatever arrives during `duration` seconds (for checks that
        something does not happen, which can only be watched over a period)."""
        deadline = time.monotonic() + duration
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.pump(remaining)

    def settle(self, timeout=5.0):
        """Pumps until no exchange is open (every PUB PUBCOMP'd and every
        command answered)."""
        self.wait_until(lambda: not self.awaiting_rel and not self.pending, timeout,
                        "open exchanges to complete (%s)" % list(self.awaiting_rel))


def check_exactly_once_in_order(published, acked, delivered, label=""):
    """published: messages in the order they were sent (each unique);
    acked: those whose PUBREC the publisher got; delivered: the new arrivals
    at a QoS 2 receiver, in order.  Every acked message must arrive exactly
    once, nothing arrives twice, nothing unknown arrives, order is kept."""
    index = {m: i for i, m in enumerate(published)}
    counts = collections.Counter(delivered)
    unknown = [m for m in delivered if m not in index]
    twice = sorted((m for m, c in counts.items() if c > 1), key=lambda m: index.get(m, -1))
    missing = [m for m in published if m in acked and counts[m] == 0]
    order = []
    prev = None
    for m in delivered:
        if m in index:
            if prev is not None and index[m] <= index[prev]:
                order.append((prev, m))
            prev = m
    problems = []
    if missing:
        problems.append("%d acknowledged messages never delivered: %s"
                        % (len(missing), missing[:20]))
    if twice:
        problems.append("%d messages delivered more than once: %s" % (len(twice), twice[:20]))
    if unknown:
        problems.append("unknown messages delivered: %s" % unknown[:20])
    if order:
        problems.append("%d order violations (prev, next): %s" % (len(order), order[:20]))
    assert not problems, "%s: published %d, acknowledged %d, delivered %d:\n  %s" % (
        label, len(published), len(acked), len(delivered), "\n  ".join(problems))


# ---------------------------------------------------------------- dead letters

DLQ = "$DLQ"
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
_ANY = object()


def dead_letters(dlq, reason=None):
    """The records a consumer of the dead-letter topic got (msg values)."""
    return [d.msg for d in dlq.deliveries
            if d.topic == DLQ and (reason is None or
                                   (isinstance(d.msg, dict) and d.msg.get("reason") == reason))]


def wait_dead_letter(dlq, reason, timeout=10.0, match=None):
    """Waits for a record with `reason` (and match(record) true); returns it."""
    def find():
        for r in dead_letters(dlq, reason):
            if match is None or match(r):
                return r
        return None
    dlq.wait_until(lambda: find() is not None, timeout,
                   "a dead-letter record with reason %r (records so far: %s)"
                   % (reason, [str(r)[:200] for r in dead_letters(dlq)]))
    return find()


def check_dead_letter(rec, reason, ports, topic=_ANY, msg=_ANY):
    """A record is {"reason","time","client","port","topic"?,"msg"}.
    ports: the port numbers `port` may name (the listener's, or the
    client's own: the contract does not say which).  msg: the acceptable
    representations of the original."""
    assert isinstance(rec, dict), "dead-letter msg is not a JSON object: %r" % (rec,)
    assert rec.get("reason") == reason, rec
    t = rec.get("time")
    assert isinstance(t, str) and TIME_RE.match(t), "bad time %r in %r" % (t, rec)
    assert isinstance(rec.get("client"), str) and rec["client"], "bad client in %r" % rec
    p = rec.get("port")
    assert isinstance(p, int) and p in ports, "port %r not one of %s in %r" % (p, ports, rec)
    if topic is not _ANY:
        assert rec.get("topic") == topic, "topic: expected %r in %r" % (topic, rec)
    assert "msg" in rec, "no msg in %r" % rec
    if msg is not _ANY:
        options = msg if isinstance(msg, list) else [msg]
        assert rec["msg"] in options, "msg %r is none of %r" % (rec["msg"], options)


def start_with_listeners(factory, blocks, config=None, tries=5, address=None):
    """Starts a broker with a listener block per (protocol, lines) of
    blocks, each on a free port (and address, if given); tries other ports
    if one is taken.  Returns (broker, [port of each block])."""
    where = " " + address if address else ""
    for _ in range(tries):
        ports = free_ports(len(blocks))
        text = "".join("listener %d%s\nprotocol %s\n%s\n" % (p, where, proto, "\n".join(lines))
                       for p, (proto, lines) in zip(ports, blocks))
        b = factory(config, start=False, conf_text=text)
        try:
            b.start()
            return b, ports
        except HarnessError as e:
            if "already in use" not in str(e) and "could not bind" not in str(e):
                raise
    raise HarnessError("no free ports for the listener blocks after %d tries" % tries)
