#!/usr/bin/python3
"""What the disk under a directory does when it is asked to make appends
durable, the two figures the benchmark judges the broker against:

- fdatasync latency: a new file, 100-byte appends, each followed by
  fdatasync; the p50 and p99 of the time each append and its fdatasync
  took (as a broker's journal does for one small message);
- sequential write bandwidth: a new file, 1 MiB appends, each followed by
  fdatasync; the bytes written over the time taken.

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
            "sequential_write": sequential_write(directory, seconds)}


def describe(d):
    lat, bw = d["fdatasync"], d["sequential_write"]
    return ("disk: fdatasync of a %d B append p50 %.0f us, p99 %.0f us (%d appends); "
            "%d KiB appends with fdatasync %.0f MB/s (%d appends)"
            % (lat["append_bytes"], lat["p50_us"], lat["p99_us"], lat["appends"],
               bw["append_bytes"] // 1024, bw["bytes_per_s"] / 1e6, bw["appends"]))


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
