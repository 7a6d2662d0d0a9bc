"""One run of one scenario against one fresh broker: the load generator's
figures, the broker's CPU seconds, and what went wrong if anything did.

A run fails (RunFailed, with the reason) when the broker does not start,
the load generator reports an error (refused connection, protocol error,
no progress), or does not finish in time.  Losses are figures, not
failures: the caller decides what they mean for whom.

The topics scenario watches the machine while it runs: when the tasks
on the machine pass SAFE_TASKS_SHARE of pid_max, or its available memory
falls below SAFE_MEM_SHARE of the total, the broker is stopped there and
the run fails with that reason (the machine is shared; a broker that
starts a process per topic must not take its last pids or memory).
"""

import os
import re
import select
import subprocess
import tempfile
import time

from bench_servers import (HOST, ROOT, BenchError, machine_tasks, meminfo_kib, tree,
                           tree_cpu)

LOAD = ROOT / "build" / "bench" / "mqtt_load"
RETAINED = ROOT / "build" / "bench" / "mqtt_retained"
QUIET_IDLE_S = 0.5          # a run starts once the disk has been idle this long
QUIET_LIMIT_S = 30          # ... or after this long in any case
DRAIN_S = 5                 # mqtt_load ends when nothing arrives for this long
LOAD_TIMEOUT_FACTOR = 30
STALL_S = 30
SAFE_TASKS_SHARE = 0.5
SAFE_MEM_SHARE = 0.25
WATCH_S = 0.5

LOAD_RE = re.compile(r"sent=(\d+) received=(\d+) dups=(\d+) lost=(\d+) seconds=([\d.]+) "
                     r"pub_rate=([\d.]+)/s rate=([\d.]+)/s p50_us=([\d.]+) p99_us=([\d.]+) "
                     r"gap_ms=([\d.]+) ack_gap_ms=([\d.]+)")
RETAINED_RE = re.compile(r"topics=(\d+) published=(\d+) publish_s=([\d.]+) received=(\d+) "
                         r"receive_s=([\d.]+) dups=(\d+) not_retained=(\d+) foreign=(\d+)")


class RunFailed(Exception):
    pass


class LoadProcesses:
    """Load generators started with Popen, killed by pid on the way out."""

    live = []

    @classmethod
    def kill_all(cls):
        for p in list(cls.live):
            if p.poll() is None:
                p.kill()
                p.wait()
            cls.live.remove(p)


def one_line(text, n=400):
    return " ".join(text.split())[-n:]


def run_load(server, args, seconds, prefix):
    """mqtt_load against server: its figures (rate, p50, p99, gap, ...)."""
    cmd = [str(LOAD), "-H", HOST, "-p", str(server.port), "--seconds", str(seconds),
           "--drain", str(DRAIN_S), "--backlog", "0", "--prefix", prefix] + args
    # The drain lasts while deliveries go on: a backlog of up to
    # LOAD_TIMEOUT_FACTOR times the publishing time is allowed for.
    timeout = seconds * LOAD_TIMEOUT_FACTOR + DRAIN_S + 60
    cpu0 = tree_cpu(server.proc.pid)
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RunFailed("mqtt_load did not finish within %d s" % timeout)
    cpu = tree_cpu(server.proc.pid) - cpu0
    server.note_children()
    m = LOAD_RE.search(p.stdout)
    if not m:
        raise RunFailed("mqtt_load exit status %d: %s" % (p.returncode, one_line(p.stderr)))
    r = dict(zip(("sent", "received", "dups", "lost"), map(int, m.groups()[:4])))
    r.update(zip(("seconds", "pub_rate", "rate", "p50", "p99", "gap", "ack_gap"),
                 map(float, m.groups()[4:])))
    r["cpu_s"] = cpu
    r["status"] = p.returncode
    r["stderr"] = p.stderr.strip()
    if re.search(r"\d+ errors", p.stderr):
        raise RunFailed("mqtt_load: %s" % one_line(p.stderr))
    return r


def machine_trouble(pid_max, mem_total):
    tasks = machine_tasks()
    if tasks > SAFE_TASKS_SHARE * pid_max:
        return ("the machine had %d tasks, over %.0f%% of its pid_max %d"
                % (tasks, 100 * SAFE_TASKS_SHARE, pid_max))
    avail = meminfo_kib("MemAvailable")
    if avail < SAFE_MEM_SHARE * mem_total:
        return ("the machine had %d MiB available, under %.0f%% of its %d MiB"
                % (avail // 1024, 100 * SAFE_MEM_SHARE, mem_total // 1024))
    return None


def _retained_figures(line):
    m = RETAINED_RE.search(line)
    if not m:
        return None
    g = m.groups()
    return {"topics": int(g[0]), "published": int(g[1]), "publish_s": float(g[2]),
            "received": int(g[3]), "receive_s": float(g[4]), "dups": int(g[5]),
            "not_retained": int(g[6]), "foreign": int(g[7])}


def run_retained(server, topics, prefix, persistent=False):
    """mqtt_retained against server, holding its connections once every
    retained message is in, while the broker's footprint is read;
    persistent: the subscriber's session is."""
    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = int(f.read())
    mem_total = meminfo_kib("MemTotal")
    cmd = [str(RETAINED), "-H", HOST, "-p", str(server.port), "--topics", str(topics),
           "--prefix", prefix, "--stall", str(STALL_S), "--hold"] + \
        (["--persistent"] if persistent else [])
    timeout = STALL_S * 4 + topics * 0.01
    cpu0 = tree_cpu(server.proc.pid)
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
        LoadProcesses.live.append(p)
        out, reason, foot, cpu = b"", None, None, None
        try:
            started = time.monotonic()
            deadline = started + timeout
            while b"\n" not in out:
                ready, _, _ = select.select([p.stdout], [], [], WATCH_S)
                if ready:
                    chunk = os.read(p.stdout.fileno(), 4096)
                    if not chunk:
                        break
                    out += chunk
                    continue
                trouble = machine_trouble(pid_max, mem_total)
                if trouble is not None:
                    f = server.footprint()
                    reason = ("stopped by the bench after %.0f s: %s; the broker then had "
                              "%d processes%s, %.0f MiB (Pss), %d descriptors"
                              % (time.monotonic() - started, trouble, f["processes"],
                                 "" if f["topicds"] is None else
                                 " (%d topicds)" % f["topicds"], f["pss_kib"] / 1024,
                                 f["fds"]))
                    server.stop()
                    break
                if time.monotonic() >= deadline:
                    reason = "not done within %.0f s" % timeout
                    break
            if reason is None and b"\n" in out and server.proc.poll() is None:
                foot = server.footprint()       # every topic in, still subscribed
                cpu = tree_cpu(server.proc.pid) - cpu0
                server.note_children()
        finally:
            try:    # end of file on its standard input ends a held run
                rest, _ = p.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                rest, _ = p.communicate()
            out += rest or b""
            LoadProcesses.live.remove(p)
        fig = _retained_figures(out.decode(errors="replace"))
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    if reason is None and (p.returncode != 0 or fig is None or foot is None):
        reason = "mqtt_retained exit status %s: %s" % (p.returncode, one_line(stderr))
    if reason is not None:
        if fig is not None:
            reason += " (%d of %d published, %d received)" % (fig["published"], topics,
                                                              fig["received"])
        raise RunFailed(reason)
    fig.update(foot)
    fig["cpu_s"] = cpu
    return fig


def disk_io_ms(path):
    """The milliseconds the disk under path has spent doing I/O, or None
    (from /sys/dev/block/MAJ:MIN/stat, io_ticks)."""
    path = os.path.abspath(path)
    while not os.path.exists(path):         # a run's directory, not made yet
        path = os.path.dirname(path)
    dev = os.stat(path).st_dev
    try:
        with open("/sys/dev/block/%d:%d/stat" % (os.major(dev), os.minor(dev))) as f:
            return int(f.read().split()[9])
    except (OSError, IndexError, ValueError):
        return None


def quiet_disk(path, idle_s=QUIET_IDLE_S, limit_s=QUIET_LIMIT_S):
    """Waits until the disk under path has been idle for idle_s (at most
    limit_s): the runs before wrote gigabytes and deleted them, and a disk
    mounted with discard trims what was deleted for seconds afterwards."""
    last = disk_io_ms(path)
    if last is None:
        return
    start = since = time.monotonic()
    while time.monotonic() - start < limit_s:
        time.sleep(0.1)
        now, ticks = time.monotonic(), disk_io_ms(path)
        if ticks != last:
            last, since = ticks, now
        elif now - since >= idle_s:
            return


def one_run(server_cls, workdir, conf_lines, scen, opts, n):
    """A fresh broker, one run of scen on it; (figures, log problems).
    Raises RunFailed."""
    # What the runs before wrote (gigabytes, with large payloads and
    # sync_policy none) is on the disk, and what they deleted trimmed,
    # before this one starts: else the disk does it during this run, and a
    # run that syncs (and its latency) measures the run before it.
    os.sync()
    quiet_disk(workdir)
    server = server_cls(workdir, conf_lines)
    try:
        server.start()
    except BenchError as e:
        raise RunFailed(str(e))
    try:
        prefix = "bench/%s%d" % (scen.key, n)
        if scen.kind == "retained":
            r = run_retained(server, opts.topics, prefix)
            # Again, on the same topics: most of them idle by now (cold,
            # here: no process), so each publish costs a start; and a
            # persistent subscriber, whose retained messages ours sends
            # from each topic's topicd.
            again = run_retained(server, opts.topics, prefix, persistent=True)
            r.update({"again_" + k: again[k] for k in ("publish_s", "receive_s", "cpu_s")})
        else:
            r = run_load(server, scen.args, opts.seconds, prefix)
    except RunFailed as e:
        server.stop()
        log = "; ".join(server.odd_lines()[:3])
        raise RunFailed("%s%s" % (e, "; log: " + log if log else ""))
    finally:
        code = server.stop()
    odd = server.odd_lines()
    if code not in (0, None):
        odd.append("%s exited with status %s after its stop signal" % (server.label, code))
    return r, odd
