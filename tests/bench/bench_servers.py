"""The brokers the MQTT benchmark starts, and what it reads of them in /proc.

Each broker runs on a free port with a working directory of its own, at
the settings its users get: ours (the release build; a temporary data
directory; extra configuration lines only where a scenario says so),
mosquitto (persistence false, as Debian ships it) and nats-server (MQTT
needs JetStream and a server name: JetStream gets a temporary store
directory).  Every broker is stopped by its pid, SIGKILLed if it ignores
the stop signal, and the processes it started (our topicds) are waited
for, and killed by pid if they outlive it.
"""

import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
READY_TIMEOUT = 10.0
STOP_TIMEOUT = 15.0
ORPHAN_TIMEOUT = 10.0
POLL = 0.02
CLK_TCK = os.sysconf("SC_CLK_TCK")
ODD_RE = re.compile(r": (error|warning): |\brestarting\b|\bFAILED\b|crash")


class BenchError(Exception):
    pass


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def connects(port):
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------- /proc

def proc_stat(pid):
    """(comm, ppid, utime + stime in ticks) from /proc, or None."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except OSError:
        return None
    comm = data[data.find(b"(") + 1:data.rfind(b")")].decode(errors="replace")
    fields = data[data.rfind(b")") + 2:].split()
    return comm, int(fields[1]), int(fields[11]) + int(fields[12])


def all_stats():
    stats = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st is not None:
                stats[int(name)] = st
    return stats


def tree(root, stats=None):
    """{pid: (comm, ppid, ticks)} of root and its live descendants."""
    stats = all_stats() if stats is None else stats
    children = {}
    for pid, (_comm, ppid, _t) in stats.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in out or pid not in stats:
            continue
        out[pid] = stats[pid]
        todo.extend(children.get(pid, ()))
    return out


def reaped_ticks(pid):
    """CPU ticks of pid's children that have exited and been waited for
    (cutime + cstime): a topicd that stopped while the broker ran."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except OSError:
        return 0
    fields = data[data.rfind(b")") + 2:].split()
    return int(fields[13]) + int(fields[14])


def tree_cpu(root):
    """CPU seconds used so far by root, its live descendants and the
    children it has reaped."""
    live = sum(t for _c, _p, t in tree(root).values())
    return (live + reaped_ticks(root)) / CLK_TCK


def pss_kib(pid):
    """Proportional set size (smaps_rollup), KiB; None if gone."""
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def machine_tasks():
    """Tasks (threads) on the machine, from /proc/loadavg."""
    with open("/proc/loadavg") as f:
        return int(f.read().split()[3].split("/")[1])


def meminfo_kib(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise BenchError("/proc/meminfo has no %s" % key)


def systemd_nofile():
    """LimitNOFILE of systemd/broker.service, or None."""
    try:
        text = (ROOT / "systemd" / "broker.service").read_text()
    except OSError:
        return None
    m = re.search(r"^LimitNOFILE=(\d+)\s*$", text, re.M)
    return int(m.group(1)) if m else None


def raise_nofile():
    """Gives this process, and so every broker it starts, the descriptor
    limit of systemd/broker.service (LimitNOFILE) when it may; else its
    hard limit.  The limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = systemd_nofile() or soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
    except (ValueError, OSError):
        want = hard         # raising the hard limit needs CAP_SYS_RESOURCE
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


# ---------------------------------------------------------------- servers

class Server:
    """A broker process on a free port; stopped by pid, whatever happens."""

    live = []
    key = "?"
    label = "?"
    stop_signal = signal.SIGTERM
    has_topicds = False

    def __init__(self, workdir, conf_lines=()):
        self.workdir = Path(workdir).resolve()     # the broker runs in it
        self.log_path = self.workdir / "log"
        self.conf_lines = list(conf_lines)
        self.proc = None
        self.port = None
        self.seen_children = {}     # pid -> comm of processes it started

    def command(self):
        raise NotImplementedError

    def ready(self):
        return connects(self.port)

    def start(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            self.port = free_port()
            cmd = self.command()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=log, cwd=str(self.workdir))
            Server.live.append(self)
            deadline = time.monotonic() + READY_TIMEOUT
            while time.monotonic() < deadline and self.proc.poll() is None:
                if self.ready():
                    return self
                time.sleep(POLL)
            if self.proc.poll() is None:
                self.stop()
                raise BenchError("%s not ready within %.0f s: %s"
                                 % (self.label, READY_TIMEOUT, self.log_tail()))
            Server.live.remove(self)
            if not re.search(r"address already in use", self.log_text(), re.I):
                raise BenchError("%s exited with status %s at start: %s"
                                 % (self.label, self.proc.returncode, self.log_tail()))
        raise BenchError("%s found no free port" % self.label)

    def note_children(self):
        """Remembers the processes the broker started, to make sure they
        end with it."""
        if self.proc is not None and self.proc.poll() is None:
            for pid, (comm, _ppid, _t) in tree(self.proc.pid).items():
                if pid != self.proc.pid:
                    self.seen_children[pid] = comm

    def stop(self):
        """Stop signal and wait (SIGKILL after STOP_TIMEOUT), then the same
        for what it started; the broker's exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.note_children()
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                print("warning: %s pid %d ignored its stop signal for %.0f s; killed"
                      % (self.label, self.proc.pid, STOP_TIMEOUT), file=sys.stderr)
        self._end_orphans()
        if self in Server.live:
            Server.live.remove(self)
        return self.proc.returncode

    def _end_orphans(self):
        """The broker's children end when it does (their channel reads end
        of file); any still there after ORPHAN_TIMEOUT is killed by pid."""
        deadline = time.monotonic() + ORPHAN_TIMEOUT
        left = dict(self.seen_children)
        while left:
            for pid, comm in list(left.items()):
                st = proc_stat(pid)
                if st is None or st[0] != comm:
                    del left[pid]
            if not left or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        for pid, comm in left.items():
            try:
                os.kill(pid, signal.SIGKILL)
                print("warning: %s's %s pid %d outlived it; killed" % (self.label, comm, pid),
                      file=sys.stderr)
            except ProcessLookupError:
                pass
        self.seen_children = {}

    @classmethod
    def stop_all(cls):
        for s in list(cls.live):
            s.stop()

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n=600):
        return " ".join(self.log_text()[-n:].split())

    def odd_lines(self):
        return []

    def footprint(self):
        """Memory (sum of Pss, KiB), descriptors and processes of the
        broker and what it started, and how many of those are topicds."""
        procs = tree(self.proc.pid)
        out = {"pss_kib": 0, "fds": 0, "processes": len(procs), "topicds": None,
               "master_fds": fd_count(self.proc.pid)}
        if self.has_topicds:
            out["topicds"] = sum(1 for c, _p, _t in procs.values() if c.startswith("topicd"))
        for pid in procs:
            out["pss_kib"] += pss_kib(pid) or 0
            out["fds"] += fd_count(pid) or 0
        return out

    @staticmethod
    def version():
        return "?"


class Ours(Server):
    key = "ours"
    label = "ours"
    has_topicds = True
    BIN = ROOT / "broker" / "broker"

    def command(self):
        conf = self.workdir / "broker.conf"
        text = "# the built-in defaults, but for what a scenario sets\n"
        if os.geteuid() == 0:
            text += "user root\n"      # a throw-away broker: no user to become
        text += "".join(l + "\n" for l in self.conf_lines)
        conf.write_text(text)
        return [str(self.BIN), "-c", str(conf), "-D", str(self.workdir / "data"), "-b", HOST,
                "-p", str(self.port), "-J", "0:0"]

    def odd_lines(self):
        return [l for l in self.log_text().splitlines()
                if ODD_RE.search(l) and "running as root" not in l]

    @classmethod
    def settings(cls):
        """{key: default} of every setting this build knows (broker -T)."""
        p = subprocess.run([str(cls.BIN), "-T", "-c", "/dev/null"], capture_output=True,
                           text=True, timeout=30, stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            raise BenchError("broker -T failed: %s" % p.stderr.strip())
        out = {}
        for line in p.stdout.splitlines():
            m = re.match(r"#?(\w+)(?:\s+(.*))?$", line.strip())
            if m:
                out[m.group(1)] = None if line.startswith("#") else m.group(2)
        return out

    @classmethod
    def version(cls):
        p = subprocess.run([str(cls.BIN), "-V"], capture_output=True, text=True, timeout=30)
        return p.stdout.strip().replace("broker ", "", 1) or "?"


class Mosquitto(Server):
    key = "mosquitto"
    label = "mosquitto"
    BIN = Path("/usr/sbin/mosquitto")

    def command(self):
        conf = self.workdir / "mosquitto.conf"
        conf.write_text("listener %d %s\nallow_anonymous true\npersistence false\n"
                        "log_dest none\n" % (self.port, HOST))
        return [str(self.BIN), "-c", str(conf)]

    @classmethod
    def version(cls):
        p = subprocess.run([str(cls.BIN), "-h"], capture_output=True, text=True, timeout=30)
        m = re.search(r"mosquitto version (\S+)", p.stdout + p.stderr)
        return m.group(1) if m else "?"


class Nats(Server):
    """nats-server: MQTT needs JetStream (QoS 1 messages and retained
    messages are kept in its streams) and a server name.  Its client port
    is any free one (-1).  SIGINT is its clean stop (SIGTERM exits with
    status 1)."""
    key = "nats"
    label = "nats-server"
    BIN = Path("/usr/sbin/nats-server")
    stop_signal = signal.SIGINT

    def command(self):
        conf = self.workdir / "nats.conf"
        conf.write_text('server_name: bench\nlisten: "%s:-1"\n'
                        'jetstream {\n  store_dir: "%s"\n}\n'
                        'mqtt {\n  listen: "%s:%d"\n}\n'
                        % (HOST, self.workdir / "jetstream", HOST, self.port))
        return [str(self.BIN), "-c", str(conf)]

    def ready(self):
        return "Server is ready" in self.log_text() and connects(self.port)

    @classmethod
    def version(cls):
        p = subprocess.run([str(cls.BIN), "--version"], capture_output=True, text=True,
                           timeout=30)
        m = re.search(r"\bv(\d\S*)", p.stdout + p.stderr)
        return m.group(1) if m else "?"


ALL = [Ours, Mosquitto, Nats]
