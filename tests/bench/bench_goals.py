"""The goals the MQTT benchmark judges our broker against, each a test of
figures measured in the same run.

A goal's judge() gets the run's context (the summaries of every scenario
by broker, the disk figures, the descriptor limit) and returns (met,
detail): met is True, False, or None when it cannot be judged (ours or
the broker compared with failed, or was not measured); detail gives the
figures that decided it.
"""

MIB = 1024 * 1024


def _ok(summary):
    return summary is not None and summary.get("status") == "ok"


def _summary(ctx, scen, broker):
    return ctx["results"].get(scen, {}).get(broker)


def _why_not(ctx, scen, broker):
    s = _summary(ctx, scen, broker)
    if s is None:
        return "%s not measured" % ctx["labels"].get(broker, broker)
    return "%s %s" % (ctx["labels"].get(broker, broker), s.get("status"))


class Goal:
    text = "?"

    def judge(self, ctx, scen):
        raise NotImplementedError

    def describe(self):
        return self.text


class Compared(Goal):
    """ours / other of a median figure is at least (or at most) a factor;
    the other broker's figure may come from another scenario (the same
    load, ours at other settings)."""

    def __init__(self, figure, other, factor, at_most=False, other_scenario=None):
        self.figure, self.other, self.factor = figure, other, factor
        self.at_most, self.other_scenario = at_most, other_scenario
        self.text = "%s %s %.1fx %s" % (figure, "<=" if at_most else ">=", factor,
                                        {"nats": "nats-server"}.get(other, other))

    def judge(self, ctx, scen):
        ours = _summary(ctx, scen, "ours")
        oscen = self.other_scenario or scen
        other = _summary(ctx, oscen, self.other)
        if not _ok(ours):
            return None, _why_not(ctx, scen, "ours")
        if not _ok(other):
            return None, _why_not(ctx, oscen, self.other)
        a, b = ours["median"][self.figure], other["median"][self.figure]
        if b <= 0:
            return None, "%s's %s is 0" % (self.other, self.figure)
        ratio = a / b
        met = ratio <= self.factor if self.at_most else ratio >= self.factor
        return met, "%.2fx (%.0f vs %.0f)" % (ratio, a, b)


class NoLoss(Goal):
    text = "no message lost"

    def judge(self, ctx, scen):
        ours = _summary(ctx, scen, "ours")
        if not _ok(ours):
            return None, _why_not(ctx, scen, "ours")
        return ours["lost"] == 0, "%d lost in %d runs" % (ours["lost"], len(ours["runs"]))


class DiskBandwidth(Goal):
    """rate x payload size over the disk's sequential write bandwidth."""

    def __init__(self, fraction, size):
        self.fraction, self.size = fraction, size
        self.text = ">= %.0f%% of the disk's write bandwidth" % (100 * fraction)

    def judge(self, ctx, scen):
        ours = _summary(ctx, scen, "ours")
        if not _ok(ours):
            return None, _why_not(ctx, scen, "ours")
        bw = ctx["disk"]["sequential_write"]["bytes_per_s"]
        got = ours["median"]["rate"] * self.size
        share = got / bw if bw > 0 else 0.0
        return share >= self.fraction, "%.0f%% (%.0f of %.0f MB/s)" % (100 * share, got / 1e6,
                                                                      bw / 1e6)


class MaxGap(Goal):
    """No delivery gap and no acknowledgement gap above a bound, in any run."""

    def __init__(self, ms):
        self.ms = ms
        self.text = "no ack or delivery gap > %.0f ms" % ms

    def judge(self, ctx, scen):
        ours = _summary(ctx, scen, "ours")
        if not _ok(ours):
            return None, _why_not(ctx, scen, "ours")
        gap = max(r["gap"] for r in ours["runs"])
        ack = max(r["ack_gap"] for r in ours["runs"])
        return max(gap, ack) <= self.ms, "longest delivery gap %.0f ms, ack gap %.0f ms" % (
            gap, ack)


class DiskLatency(Goal):
    """Our p99 within a factor of the disk's fdatasync p99."""

    def __init__(self, factor):
        self.factor = factor
        self.text = "p99 <= %.1fx the disk's fdatasync p99" % factor

    def judge(self, ctx, scen):
        ours = _summary(ctx, scen, "ours")
        if not _ok(ours):
            return None, _why_not(ctx, scen, "ours")
        disk = ctx["disk"]["fdatasync"]["p99_us"]
        p99 = ours["median"]["p99"]
        ratio = p99 / disk if disk > 0 else float("inf")
        why = "%.2fx (%.0f vs %.0f us)" % (ratio, p99, disk)
        paced = ctx["disk"].get("paced")
        if paced and paced["p99_us"] > 0:
            # Not judged: the disk as a broker of one process would use it.
            why += ("; the disk itself at %d/s with group commit: p99 %.0f us (ours %.2fx)"
                    % (paced["rate"], paced["p99_us"], p99 / paced["p99_us"]))
        return ratio <= self.factor, why


class MemoryBelow(Goal):
    def __init__(self, bytes_):
        self.limit = bytes_
        self.text = "memory (Pss) < %.0f MiB" % (bytes_ / MIB)

    def judge(self, ctx, scen):
        ours = _summary(ctx, scen, "ours")
        if not _ok(ours):
            return None, _why_not(ctx, scen, "ours")
        kib = ours["median"]["pss_kib"]
        return kib * 1024 < self.limit, "%.0f MiB" % (kib / 1024)


class DescriptorsWithin(Goal):
    """Descriptors of the master and its topicds together within the
    systemd unit's LimitNOFILE."""

    text = "descriptors (master + topicds) <= LimitNOFILE of systemd/broker.service"

    def judge(self, ctx, scen):
        ours = _summary(ctx, scen, "ours")
        limit = ctx.get("unit_nofile")
        if limit is None:
            return None, "systemd/broker.service sets no LimitNOFILE"
        if not _ok(ours):
            return None, _why_not(ctx, scen, "ours")
        fds = ours["median"]["fds"]
        return fds <= limit, "%d of %d" % (fds, limit)
