"""Storms of SIGKILLs under pipelined MQTT traffic: one SIGKILL of a random
topicd every second, and SIGKILLs of the master at random moments, while
one publisher per topic keeps 64 QoS 1 or QoS 2 messages in flight and
three persistent subscribers per topic (QoS 1 and QoS 2 subscriptions,
one of them through a wildcard) read.  Afterwards, message by message:
every acknowledged message arrived at every subscriber of its topic, at
least once (QoS 1) or exactly once as a QoS 2 receiver counts (QoS 2),
first arrivals in publish order, nothing unknown.

The first storm runs at the broker's default settings for a minute; the
second, shorter one with a small checkpoint_size, so that topicds are
killed while they checkpoint (asserted from the journal segments and the
checkpoint files in the data directory).

The random choices come from FAULT_SEED (printed; set it to replay)."""

import collections
import datetime
import itertools
import os
import random
import re
import time
import urllib.parse

import pytest

from broker_harness import HarnessError, kill_pid, wait_for
from mqtt_helpers import delivery_problems
from storm_clients import WINDOW, PipelinedPublisher, StormReceiver

AHEAD = 2000            # messages a publisher may be in front of its slowest subscriber
BACKOFF_MAX = 30.0      # the default restart_backoff_max: the longest a topic stays down
PUBLISHER_DRAIN = BACKOFF_MAX + 20.0    # for the publishers' last exchanges to complete
DELIVERY_DRAIN = 30.0   # then for every message to reach every subscriber

TOPICS = (("storm/q1-a", 1), ("storm/q2-a", 2), ("storm/q1-b", 1), ("storm/q2-b", 2))
# Three subscribers to every topic: (client id, [(filter, QoS)]).
SUBSCRIBERS = (
    ("storm-sub-q2", [(t, 2) for t, _ in TOPICS]),
    ("storm-sub-wild", [("storm/+", 2)]),
    ("storm-sub-q1", [(t, 1) for t, _ in TOPICS]),
)
SEGMENT_RE = re.compile(r"^(.*)\.journal\.(\d+)$")


@pytest.fixture
def rng():
    seed = int(os.environ.get("FAULT_SEED", time.time_ns() % 2**32))
    print("FAULT_SEED=%d" % seed)
    return random.Random(seed)


def wall_clock():
    """The time as the broker's log writes it, to set events against it."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (now.microsecond // 1000)


# ---------------------------------------------------------------- the storm

class Storm:
    """The clients of a storm and what happened to them.  events: (wall
    clock, text) of every kill and restart, to set against the log."""

    def __init__(self, broker, rng, pad=b""):
        self.b, self.rng = broker, rng
        self.events = []
        self.problems = []
        self.topicd_kills = collections.Counter()
        self.master_kills = 0
        self.receivers = [self._subscriber(cid, filters) for cid, filters in SUBSCRIBERS]
        self.publishers = {
            t: PipelinedPublisher(broker, "storm-pub-%d" % i, t, qos, t, pad,
                                  room=self._room_for(t))
            for i, (t, qos) in enumerate(TOPICS)}
        self.segments = SegmentWatch(broker)

    def log(self, text):
        self.events.append((wall_clock(), text))

    def _subscriber(self, client_id, filters):
        r = StormReceiver(lambda: self.b.mqtt_port, client_id, clean=False)
        assert not r.connect().session_present, "%s: a session before the first CONNECT" % (
            client_id)
        assert r.subscribe(filters) == [q for _, q in filters], client_id
        r.start()
        return r

    def _room_for(self, topic):
        def room():
            pub = self.publishers[topic]
            slowest = min(r.counts[topic] for r in self.receivers)
            return max(0, AHEAD - (pub.published - slowest))
        return room

    def start(self):
        for p in self.publishers.values():
            p.start()
        for t, p in self.publishers.items():
            wait_for(lambda: p.progress() >= WINDOW or not p.is_alive(), 30,
                     "publishing to %s to get going" % t)
        self.log("publishers going")

    def live_topicds(self):
        ours = {t for t, _ in TOPICS}
        return {pid: t for pid, t in self.b.topicds().items() if t in ours}

    def kill_topicd(self, pid, topic, why=""):
        if kill_pid(pid):
            self.topicd_kills[topic] += 1
            self.log("SIGKILL topicd %d of %s%s" % (pid, topic, why))

    def kill_random_topicd(self):
        live = self.live_topicds()
        if not live:
            self.log("no topicd of ours is running: none killed")
            return
        pid = self.rng.choice(sorted(live))
        self.kill_topicd(pid, live[pid])

    def kill_master(self):
        """SIGKILL of the master; a new one on the same ports and data
        directory; the subscribers reconnect to their sessions."""
        self.master_kills += 1
        self.segments.master_gone()
        self.log("SIGKILL master %d" % self.b.pid)
        left = self.b.kill9()
        for r in self.receivers:
            wait_for(lambda: r.disconnected, 10, "%s to see its connection close" % r)
        self.b.wait_topicds_gone(left)
        self.b.start(keep_ports=True)
        self.log("master %d started" % self.b.pid)
        for r in self.receivers:
            if not r.reconnect().session_present:
                self.problems.append("%s: no session present after master kill #%d"
                                     % (r, self.master_kills))

    def check_receivers(self):
        """A subscriber's connection must not end while the master lives."""
        for r in self.receivers:
            if r.disconnected:
                self.problems.append("%s: connection closed by a running master (events "
                                     "before: %s)" % (r, self.events[-3:]))
                self.log("%s reconnects" % r)
                r.reconnect()

    def run(self, duration, master_kills, hunt=None):
        """One topicd SIGKILL a second for `duration` seconds, and
        `master_kills` master SIGKILLs at random moments (each in a 4 s
        slot of its own, none in the first or last 4 s).  hunt(deadline):
        chooses the topicd to kill, (pid, topic, why), or None for a random
        one."""
        master_at = self._master_kill_times(duration, master_kills)
        self.log("storm of %.0f s; master kills at %s s" % (duration, master_at))
        start = time.monotonic()
        tick = 0
        while tick < duration:
            tick += 1
            if master_at and tick >= master_at[0]:
                master_at.pop(0)
                self._pace(start + tick - 1 + self.rng.uniform(0.1, 0.9))
                self.kill_master()
            self.check_receivers()
            deadline = start + tick
            victim = hunt(deadline) if hunt is not None else None
            if victim is not None:
                self.kill_topicd(*victim)
            else:
                self.kill_random_topicd()
            self.segments.sample()
            self._pace(deadline)
        self.log("storm over")

    def _master_kill_times(self, duration, n):
        slots = list(range(4, int(duration) - 4, 4))
        return sorted(s + self.rng.randint(1, 4) for s in self.rng.sample(slots, n))

    def _pace(self, until):
        """Keeps the kill rate: the publishers work meanwhile."""
        while time.monotonic() < until:
            self.segments.sample()
            time.sleep(min(0.1, max(0.0, until - time.monotonic())))

    def drain(self):
        """Publishers halt and complete their exchanges; then every
        message must reach every subscriber and no QoS 2 exchange stay
        open.  Returns the problems."""
        problems = []
        for p in self.publishers.values():
            p.halt()
        deadline = time.monotonic() + PUBLISHER_DRAIN
        for p in self.publishers.values():
            why = p.finish(max(1.0, deadline - time.monotonic()))
            if why:
                problems.append(why)
        self.log("publishers done")
        problems += ["%s reconnected %d times for %d master kills: a running master closed "
                     "its connection" % (p, p.reconnects, self.master_kills)
                     for p in self.publishers.values() if p.reconnects != self.master_kills]
        want = {t: p.published for t, p in self.publishers.items()}
        deadline = time.monotonic() + DELIVERY_DRAIN
        for r in self.receivers:
            try:
                r.wait_until(lambda: all(r.has_all(t, n) for t, n in want.items()),
                             max(0.1, deadline - time.monotonic()), "every message")
            except HarnessError:
                problems.append("%s: not every message arrived within %.0f s"
                                % (r, DELIVERY_DRAIN))
        for r in self.receivers:
            try:
                r.settle(max(1.0, deadline - time.monotonic()))
            except HarnessError:
                problems.append("%s: QoS 2 exchanges left open (PUBREC sent, no PUBREL): "
                                "packet ids %s" % (r, list(r.awaiting_rel)[:20]))
        self.log("subscribers drained")
        for r in self.receivers:
            r.stop()
        return problems


class SegmentWatch:
    """Watches the stores' files: a checkpoint starts a new journal segment
    (NAME.journal.NNNNNNNN) and writes NAME.db.tmp until it renames it
    over NAME.db.  checkpoints: segments started while one master ran
    (a master kill may make topicds close their stores, which is no
    checkpoint under a storm)."""

    def __init__(self, broker):
        self.dir = broker.data_dir / "topics"
        self.last = None
        self.checkpoints = collections.Counter()

    def _scan(self):
        """{topic: highest segment number}, {topic: identity of its
        checkpoint file} (inode and change time: a new file is a new
        checkpoint)."""
        segs, tmp = {}, {}
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return segs, tmp
        for name in names:
            m = SEGMENT_RE.match(name)
            if m:
                t = urllib.parse.unquote(m.group(1))
                segs[t] = max(segs.get(t, 0), int(m.group(2)))
            elif name.endswith(".db.tmp"):
                try:
                    st = os.stat(self.dir / name)
                except FileNotFoundError:
                    continue            # renamed meanwhile
                tmp[urllib.parse.unquote(name[:-len(".db.tmp")])] = (st.st_ino,
                                                                      st.st_ctime_ns)
        return segs, tmp

    def sample(self):
        segs, _ = self._scan()
        if self.last is not None:
            for t, n in segs.items():
                self.checkpoints[t] += max(0, n - self.last.get(t, n))
        self.last = segs

    def master_gone(self):
        self.sample()
        self.last = None

    def checkpointing(self):
        """{topic: identity} of the checkpoint files there are now."""
        return self._scan()[1]


def checkpoint_hunter(storm, kills):
    """A hunt for Storm.run: every other second, until the deadline, looks
    for a topic whose topicd is writing a checkpoint, and chooses it (the
    other kills are at random moments); kills counts how often it found
    one.  A checkpoint file that a killed topicd left behind (its
    successor removes it when it opens the store) is not a checkpoint."""
    turn = itertools.cycle((True, False))
    left_behind = set()

    def hunt(deadline):
        if not next(turn):
            return None
        while time.monotonic() < deadline - 0.05:
            busy = {t: f for t, f in storm.segments.checkpointing().items()
                    if f not in left_behind}
            live = storm.live_topicds() if busy else {}
            for pid, t in sorted(live.items()):
                if t in busy:
                    kills[t] += 1
                    left_behind.add(busy[t])
                    return pid, t, " (writing a checkpoint)"
            time.sleep(0.002)
        return None
    return hunt


# ---------------------------------------------------------------- checks

def delivery_report(storm):
    """Message by message, per topic and subscriber: the problems found.
    A message is named TOPIC-N, N its number in its publisher's order."""
    problems = []
    for t, p in storm.publishers.items():
        published = ["%s-%d" % (t, i) for i in range(p.published)]
        acked = {published[i] for i, stored in enumerate(p.stored) if stored}
        for r in storm.receivers:
            with r.lock:
                granted = [q for f, q in r.granted.items() if f in (t, "storm/+")]
                eff = min(p.qos, granted[0])
                arrivals = ["%s-%d" % (t, n) for n in r.numbers[t]]
                problems += ["%s, %s (QoS %d): %s" % (r.client_id, t, eff, s)
                             for s in delivery_problems(published, acked, arrivals,
                                                        exactly_once=eff == 2)]
                wrong = {q: n for q, n in r.qos_seen[t].items() if q != eff}
                if wrong:
                    problems.append("%s, %s: arrivals not at QoS %d: %s (QoS: count)"
                                    % (r.client_id, t, eff, wrong))
    for r in storm.receivers:
        problems += ["%s: protocol error: %s" % (r.client_id, e) for e in r.errors[:10]]
    for p in storm.publishers.values():
        problems += ["%s: %s" % (p.client_id, e) for e in p.errors[:10]]
    return problems


def trace_of(storm, problems):
    """The subscribers' last packets about the messages the problems name,
    and about the packet ids of their open QoS 2 exchanges."""
    named = set(re.findall(r"storm/q\d-\w-\d+", " ".join(problems)))
    lines = []
    for r in storm.receivers:
        with r.lock:
            pids = set(r.awaiting_rel)
            lines += ["%s #%d %s %s" % ((r.client_id,) + t) for t in r.trace
                      if any(m + "-" in t[2] for m in named) or
                      any(t[2].endswith(" %d" % p) or " pid %d " % p in t[2] for p in pids)]
    return lines[-80:]


def summary(storm):
    lines = ["topicd kills %s, master kills %d" % (dict(storm.topicd_kills),
                                                     storm.master_kills)]
    for t, p in storm.publishers.items():
        lines.append("%s QoS %d: published %d, acknowledged %d, reconnects %d, resent %s, "
                     "longest wait for an acknowledgement %.1f s (message %s)"
                     % (t, p.qos, p.published, p.acked, p.reconnects,
                        dict(p.resent), p.longest_wait[0], p.longest_wait[1]))
    for r in storm.receivers:
        lines.append("%s: arrivals %s, QoS 2 repeats %d, connections %d"
                     % (r.client_id, dict(r.counts), len(r.duplicates), r.conn_no))
    return lines


def diagnosis(storm):
    """What the broker and the subscribers say now, for a failure report."""
    lines = []
    offset = time.time() - time.monotonic()
    for r in storm.receivers:
        with r.lock:
            last = r.arrivals[-1].at + offset if r.arrivals else None
        lines.append("%s: last arrival at %s; %s" % (
            r.client_id, "-" if last is None else
            datetime.datetime.fromtimestamp(last, datetime.timezone.utc).isoformat(),
            r.describe()))
    if storm.b.running():
        try:
            master, topics = storm.b.status()
            lines.append("master status: %s" % master)
            lines += ["topic %s: %s" % (t, f) for t, f in sorted(topics.items())]
            lines += ["topicd of %s: %s" % (t, storm.b.topicd_status(t)) for t, _ in TOPICS]
        except HarnessError as e:
            lines.append("no status: %s" % e)
    return lines


def verify(storm, drain_problems, label):
    problems = drain_problems + storm.problems + delivery_report(storm)
    print("\n".join(summary(storm)))
    if not storm.b.running():
        problems.append("the master is not running")
    if not problems:
        return
    pytest.fail("%s:\n  %s\n%s\nevents (wall clock, UTC):\n    %s\npackets at the subscribers "
                "about the messages named above:\n    %s\nnow:\n  %s"
                % (label, "\n  ".join(problems), "\n".join(summary(storm)),
                   "\n    ".join("%s %s" % e for e in storm.events[-60:]),
                   "\n    ".join(trace_of(storm, problems)),
                   "\n  ".join(diagnosis(storm))), pytrace=False)


# ---------------------------------------------------------------- tests

def test_storm_of_sigkills_at_the_default_settings(mqtt_factory, rng):
    b = mqtt_factory()                  # the built-in defaults
    storm = Storm(b, rng)
    storm.start()
    storm.run(60, master_kills=rng.choice((2, 3)))
    problems = storm.drain()
    verify(storm, problems, "storm at the default settings")
    assert sum(storm.topicd_kills.values()) >= 20, storm.events
    for t, p in storm.publishers.items():
        assert p.acked >= 10 * WINDOW, "only %d messages acknowledged on %s" % (p.acked, t)


def test_storm_kills_topicds_while_they_checkpoint(mqtt_factory, rng):
    b = mqtt_factory({"checkpoint_size": "64k"})
    storm = Storm(b, rng, pad=b"p" * 200)
    storm.start()
    hunted = collections.Counter()
    hunter = checkpoint_hunter(storm, hunted)
    storm.run(20, master_kills=1, hunt=hunter)
    # A loaded machine writes fewer checkpoints a second: the storm goes
    # on (30 s at most) until it has hit the ones this test is about.
    for _ in range(6):
        if sum(hunted.values()) >= 3 and \
                sum(storm.segments.checkpoints.values()) >= 2 * len(TOPICS):
            break
        storm.run(5, master_kills=0, hunt=hunter)
    problems = storm.drain()
    print("checkpoints started %s; topicds killed while writing one %s"
          % (dict(storm.segments.checkpoints), dict(hunted)))
    verify(storm, problems, "storm with checkpoint_size 64k")
    assert sum(storm.segments.checkpoints.values()) >= 2 * len(TOPICS), \
        "checkpoints started during the storm: %s" % dict(storm.segments.checkpoints)
    assert sum(hunted.values()) >= 3, \
        "topicds killed while writing a checkpoint: %s" % dict(hunted)


def test_storm_while_topics_take_turns(mqtt_factory, rng):
    """Four busy topics and room for two topicds: they take turns (each is
    stopped after a second for another to run), and SIGKILLs land on
    topicds that start, run and stop."""
    b = mqtt_factory({"max_topicds": 2, "topicd_idle_timeout": 1,
                      "log_type": "information"})
    storm = Storm(b, rng)
    storm.start()
    turns_re = re.compile(r"topic storm/\S+: topicd pid \d+ stops: (idle, )?room for another")
    storm.run(20, master_kills=1)
    # On a loaded machine the storm goes on (30 s at most) until the
    # topics have taken the turns this test is about.
    for _ in range(6):
        if len(turns_re.findall(b.log_text())) >= 10:
            break
        storm.run(5, master_kills=0)
    problems = storm.drain()
    verify(storm, problems, "storm with max_topicds 2")
    turns = len(turns_re.findall(b.log_text()))
    assert turns >= 10, "topics took %d turns" % turns
