"""The MQTT benchmark's results: medians of the runs, the printed tables
and the JSON file the README's table is made from."""

import json
import os
import statistics

MIB = 1024 * 1024
UNITS = {"rate": "msgs/s", "p50": "p50 us", "p99": "p99 us"}


# ---------------------------------------------------------------- figures

def summarise(runs):
    """A broker's runs of one scenario: median, min and max of every
    figure, messages lost in all runs."""
    keys = [k for k, v in runs[0].items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
            and all(isinstance(r.get(k), (int, float)) for r in runs)]
    return {"status": "ok", "runs": runs,
            "median": {k: statistics.median(r[k] for r in runs) for k in keys},
            "min": {k: min(r[k] for r in runs) for k in keys},
            "max": {k: max(r[k] for r in runs) for k in keys},
            "lost": sum(r.get("lost", 0) for r in runs)}


def ratio(ctx, scen, figure, other):
    ours = ctx["results"].get(scen.key, {}).get("ours")
    oth = ctx["results"].get(scen.compare_with or scen.key, {}).get(other)
    if not ours or not oth or ours["status"] != "ok" or oth["status"] != "ok":
        return None
    b = oth["median"][figure]
    return ours["median"][figure] / b if b else None


def judge_all(ctx, scenarios):
    """{scenario key: [(goal text, met, detail)]}"""
    return {s.key: [(g.describe(),) + tuple(g.judge(ctx, s.key)) for g in s.goals]
            for s in scenarios if s.key in ctx["results"]}


# ---------------------------------------------------------------- table

def _fmt(v):
    """Whole numbers as they are, others to three or four significant digits."""
    if float(v).is_integer() or abs(v) >= 100:
        return "%.0f" % v
    if abs(v) >= 10:
        return "%.1f" % v
    return "%.2f" % v if abs(v) >= 1 else "%.3f" % v


def _cell(summary, figure, width):
    if summary is None:
        return "%-*s" % (width, "")
    if summary["status"] != "ok":
        return "%-*s" % (width, _status(summary))
    med, lo, hi = (summary[k][figure] for k in ("median", "min", "max"))
    spread = "" if lo == hi else " (%s..%s)" % (_fmt(lo), _fmt(hi))
    fig = _fmt(med) + spread
    return "%-24s %6d %5.0f %5.1f" % (fig, summary["lost"], summary["median"]["gap"],
                                      summary["median"]["cpu_s"])


def _status(summary):
    return {"unsupported": "-"}.get(summary["status"], summary["status"])


def _verdict(met):
    return {True: "met", False: "NOT MET", None: "not judged"}[met]


def print_table(ctx, scenarios, servers, verdicts):
    if not any(s.kind == "load" and s.key in ctx["results"] for s in scenarios):
        return
    width = 44
    others = [s for s in servers if s.key != "ours"]
    print()
    print("MQTT, %d run(s) of %d s per figure, a fresh broker per run; per broker: median "
          "(min..max), messages lost in all runs, longest gap between two deliveries (ms, "
          "median), broker CPU seconds (median)." % (ctx["options"]["runs"],
                                                     ctx["options"]["seconds"]))
    head = "%-38s %-13s" % ("scenario", "unit")
    for s in servers:
        head += " %-*s" % (width, s.label)
    head += "".join("  ours/%-9s" % o.key for o in others)
    sub = "%-38s %-13s" % ("", "")
    for s in servers:
        sub += " %-*s" % (width, "%-24s %6s %5s %5s" % ("median (min..max)", "lost", "gap",
                                                       "CPU s"))
    print(head)
    print(sub)
    print("-" * len(head))
    for scen in scenarios:
        if scen.kind != "load" or scen.key not in ctx["results"]:
            continue
        res = ctx["results"][scen.key]
        for i, figure in enumerate(scen.figures):
            unit = scen.unit if figure == "rate" else UNITS[figure]
            row = "%-38s %-13s" % (scen.name if i == 0 else "", unit)
            for s in servers:
                if scen.compare_with and s.key != "ours":
                    row += " %-*s" % (width, "(as in %s)" % scen.compare_with)
                else:
                    row += " " + _cell(res.get(s.key), figure, width)
            for o in others:
                r = ratio(ctx, scen, figure, o.key)
                row += "  %-14s" % ("" if r is None else "%.2f" % r)
            print(row.rstrip())
        for text, met, detail in verdicts.get(scen.key, []):
            print("%38s goal: %s: %s - %s" % ("", text, detail, _verdict(met)))
    print("(rates: messages received by the subscribers per second, from the first publish "
          "to the last delivery (fan-out: deliveries); latency: publish to delivery at a "
          "fixed rate, so a ratio above 1 means ours is slower.  Lost: acknowledged (or, "
          "at QoS 0, sent) and never delivered.  \"-\": the broker does not support the "
          "scenario's QoS)")


def print_topics(ctx, scen, servers, verdicts):
    res = ctx["results"].get(scen.key)
    if res is None:
        return
    print()
    print("%s (median of %d run(s) (min..max)):" % (scen.name, ctx["options"]["runs"]))
    rows = [("publish all, s", "publish_s", 1), ("subscriber has all, s", "receive_s", 1),
            ("memory (sum of Pss), MiB", "pss_kib", 1024), ("descriptors", "fds", 1),
            ("  of which the master's", "master_fds", 1), ("processes", "processes", 1),
            ("live topicds", "topicds", 1), ("broker CPU s", "cpu_s", 1),
            ("publish all again, s", "again_publish_s", 1),
            ("persistent subscriber, s", "again_receive_s", 1),
            ("broker CPU again, s", "again_cpu_s", 1)]
    print("  %-26s" % "" + "".join(" %-30s" % s.label for s in servers))
    for title, key, div in rows:
        line = "  %-26s" % title
        for s in servers:
            summ = res.get(s.key)
            if summ is None:
                cell = ""
            elif summ["status"] != "ok":
                cell = _status(summ) if key == "publish_s" else ""
            elif summ["median"].get(key) is None:
                cell = "-"
            else:
                med, lo, hi = (summ[k][key] / div for k in ("median", "min", "max"))
                cell = _fmt(med) + ("" if lo == hi else " (%s..%s)" % (_fmt(lo), _fmt(hi)))
            line += " %-30s" % cell
        print(line.rstrip())
    for text, met, detail in verdicts.get(scen.key, []):
        print("  goal: %s: %s - %s" % (text, detail, _verdict(met)))
    notes = ctx.get("topics_settings")
    if notes:
        print("  (ours: %s)" % ", ".join("%s %s" % kv for kv in notes.items()))


def print_detail(ctx, scenarios, servers):
    if not any(s.kind == "load" and s.key in ctx["results"] for s in scenarios):
        return
    print()
    print("Per scenario (medians): publish rate, p50/p99 latency under that load, longest "
          "wait of a publisher for an acknowledgement, broker CPU (100% = one core; ours "
          "is the master and its topicds)")
    for scen in scenarios:
        if scen.kind != "load" or scen.key not in ctx["results"]:
            continue
        for s in servers:
            summ = ctx["results"][scen.key].get(s.key)
            if summ is None or summ["status"] != "ok":
                continue
            m = summ["median"]
            print("  %-38s %-11s publish %7.0f/s  p50 %7.0f us  p99 %7.0f us  ack gap %5.0f ms"
                  "  CPU %4.0f%%" % (scen.name, s.label, m["pub_rate"], m["p50"], m["p99"],
                                     m["ack_gap"], 100 * m["cpu_s"] / max(m["seconds"], 1e-3)))


def print_summary(verdicts):
    flat = [(k, t, met) for k, v in verdicts.items() for t, met, _d in v]
    print()
    print("Goals: %d met, %d not met, %d not judged, of %d"
          % (sum(1 for f in flat if f[2] is True), sum(1 for f in flat if f[2] is False),
             sum(1 for f in flat if f[2] is None), len(flat)))


# ---------------------------------------------------------------- JSON

def write_json(path, ctx, scenarios, servers, verdicts):
    def broker_entry(summ):
        if summ is None:
            return None
        out = dict(summ)
        out["runs"] = [{k: v for k, v in r.items() if k != "stderr"}
                       for r in summ.get("runs", [])]
        return out

    doc = {
        "generated": ctx["generated"],
        "machine": ctx["machine"],
        "options": ctx["options"],
        "versions": ctx["versions"],
        "brokers": [{"key": s.key, "label": s.label} for s in servers],
        "disk": ctx["disk"],
        "unit_nofile": ctx.get("unit_nofile"),
        "brokers_nofile": ctx.get("brokers_nofile"),
        "topics_settings": ctx.get("topics_settings"),
        "scenarios": [],
    }
    for scen in scenarios:
        if scen.key not in ctx["results"]:
            continue
        res = ctx["results"][scen.key]
        doc["scenarios"].append({
            "key": scen.key, "name": scen.name, "kind": scen.kind, "unit": scen.unit,
            "figures": scen.figures, "load_args": scen.args,
            "ours_settings": list(scen.ours_conf), "compare_with": scen.compare_with,
            "brokers": {k: broker_entry(v) for k, v in res.items()},
            "ratios": {o.key: {f: ratio(ctx, scen, f, o.key) for f in scen.figures}
                       for o in servers if o.key != "ours"},
            "goals": [{"goal": t, "met": met, "detail": d}
                      for t, met, d in verdicts.get(scen.key, [])],
        })
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)
