#!/usr/bin/python3
"""What the disk under a directory does when it is asked to make appends
durable, the two figures the benchmark judges the broker against:

- fdatasync latency: a new file, 100-byte appends, each followed by
  fdatasync; the p50 and p99 of the time each append and its fdatasync
  took (as a broker's journal does for one small message);
- sequential write bandwidth: a new file, 1 MiB appends, each followed by
  fdatasync; the bytes written over the time taken.

and one that is shown beside the latency goal, not judged: the disk at
PACED_RATE appends a second, as an ideal broker of one process with
group commit would use it (each append and fdatasync covers the 100-byte
messages that arrived before it started; a message's latency runs from
its arrival to the end of that fdatasync, so a slow sync also delays the
messages that arrive while it runs, as it does in a broker).

Each runs for COUNT appends or SECONDS, whichever comes first; the files
are removed afterwards.  Run alone, it prints the figures as JSON:

    tests/bench/disk_figures.py [--seconds S] DIRECTORY
"""

import argparse
import json
import os
import sys
import time

SMALL = 100                 # bytes per latency append
LARGE = 1 << 20             # bytes per bandwidth append
SMALL_COUNT = 5000
LARGE_COUNT = 1024          # 1 GiB at most
PACED_RATE = 2000           # messages a second, as the latency scenarios


def nearest_rank(sorted_vals, p):
    """The p-th percentile (nearest rank) of a sorted, non-empty list."""
    rank = max(1, min(len(sorted_vals), int(p / 100.0 * len(sorted_vals) + 0.999999)))
    return sorted_vals[rank - 1]


def _appends(directory, name, size, count, seconds):
    """Appends `size` bytes and fdatasyncs, up to `count` times or for
    `seconds`; the duration of each, in seconds."""
    path = os.path.join(directory, name)
    block = (b"0123456789abcdef" * (size // 16 + 1))[:size]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC,
                 0o600)
    times = []
    try:
        end = time.monotonic() + seconds
        while len(times) < count and time.monotonic() < end:
            t0 = time.perf_counter()
            done = 0
            while done < size:
                done += os.write(fd, block[done:])
            os.fdatasync(fd)
            times.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        os.unlink(path)
    return times


def fdatasync_latency(directory, seconds):
    times = sorted(_appends(directory, "disk-latency.tmp", SMALL, SMALL_COUNT, seconds))
    return {"appends": len(times), "append_bytes": SMALL,
            "p50_us": nearest_rank(times, 50) * 1e6, "p99_us": nearest_rank(times, 99) * 1e6}


def paced_latency(directory, seconds, rate=PACED_RATE):
    """Arrival-to-durable latency of messages arriving every 1/rate s,
    each fdatasync covering those that arrived before it started."""
    path = os.path.join(directory, "disk-paced.tmp")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC,
                 0o600)
    period = 1.0 / rate
    lat = []
    try:
        nxt = time.perf_counter()
        end = nxt + seconds
        while nxt < end:
            now = time.perf_counter()
            if now < nxt:
                time.sleep(min(nxt - now, 0.0002) if nxt - now > 0.0003 else 0)
                continue
            arrived = []
            while nxt <= now:
                arrived.append(nxt)
                nxt += period
            block = b"m" * (SMALL * len(arrived))
            done = 0
            while done < len(block):
                done += os.write(fd, block[done:])
            os.fdatasync(fd)
            t = time.perf_counter()
            lat.extend(t - a for a in arrived)
    finally:
        os.close(fd)
        os.unlink(path)
    lat.sort()
    return {"rate": rate, "messages": len(lat),
            "p50_us": nearest_rank(lat, 50) * 1e6, "p99_us": nearest_rank(lat, 99) * 1e6}


def sequential_write(directory, seconds):
    times = _appends(directory, "disk-bandwidth.tmp", LARGE, LARGE_COUNT, seconds)
    total = sum(times)
    return {"appends": len(times), "append_bytes": LARGE,
            "bytes_per_s": len(times) * LARGE / total if total > 0 else 0.0}


def measure(directory, seconds):
    """Both figures for `directory`, `seconds` at most for each."""
    st = os.statvfs(directory)
    return {"directory_free_bytes": st.f_bavail * st.f_frsize,
            "fdatasync": fdatasync_latency(directory, seconds),
            # Before the gigabyte of the bandwidth figure: the disk takes
            # seconds to settle after it.
            "paced": paced_latency(directory, seconds),
            "sequential_write": sequential_write(directory, seconds)}


def describe(d):
    lat, bw, paced = d["fdatasync"], d["sequential_write"], d["paced"]
    return ("disk: fdatasync of a %d B append p50 %.0f us, p99 %.0f us (%d appends); "
            "%d KiB appends with fdatasync %.0f MB/s (%d appends); "
            "%d messages/s with group commit, arrival to durable p50 %.0f us, p99 %.0f us"
            % (lat["append_bytes"], lat["p50_us"], lat["p99_us"], lat["appends"],
               bw["append_bytes"] // 1024, bw["bytes_per_s"] / 1e6, bw["appends"],
               paced["rate"], paced["p50_us"], paced["p99_us"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="longest time per figure (3)")
    ap.add_argument("directory")
    opts = ap.parse_args()
    try:
        print(json.dumps(measure(opts.directory, opts.seconds), indent=2))
    except OSError as e:
        sys.exit("disk_figures: %s" % e)


if __name__ == "__main__":
    main()
