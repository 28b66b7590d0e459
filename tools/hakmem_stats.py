#!/usr/bin/env python3
"""Renders the statistics that the processes of a `hakmem run --stats`
wrote (HAKMEM_STATS_FILE=FILE.json: one hak_stats_json object per line,
appended by each process as it exits).

    hakmem_stats.py FILE.json

The last process to exit (the command itself, after its children) is shown
in full; the others are counted by name.  Output goes to stderr, like the
library's own summary.
"""
import json
import sys

# Top-level fields that are byte counts (the rest are counts).
BYTES = {"mapped", "committed", "peak_committed", "live_bytes", "rss", "peak_rss"}
# ... and in the groups ("big": {"moved": ...}).
GROUP_BYTES = {("big", "moved")}
# How top-level fields are gathered into lines (any field not named here
# goes on a last "other" line, so that a new statistic is still shown).
LINES = [("slabs", ["slabs_acquired", "slabs_released", "segments_adopted", "threads_exited"]),
         ("memory", ["mapped", "committed", "peak_committed", "live_bytes"]),
         ("process", ["rss", "peak_rss", "page_faults"]),
         ("errors", ["invalid_frees", "double_frees"])]
SKIP = {"version", "program", "pid", "complete", "classes"}


def size(v):
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if v >= 10 << shift:
            return "%d %s" % (v >> shift, unit)
    return "%d B" % v


def label(key):
    return key.replace("_", " ")


def render(rec):
    out = ["--- %s (pid %s) ---" % (rec.get("program", "?"), rec.get("pid", "?"))]
    tiers = {"tiny": [0, 0, 0], "mid": [0, 0, 0]}
    for c in rec.get("classes", []):
        t = tiers["tiny" if c.get("size", 0) <= 1024 else "mid"]
        t[0] += c.get("allocs", 0)
        t[1] += c.get("frees", 0)
        t[2] += c.get("remote_frees", 0)
    for name, (a, f, r) in tiers.items():
        out.append("%-8s allocs %d, frees %d, remote frees %d" % (name, a, f, r))
    groups = [k for k, v in rec.items() if isinstance(v, dict)]
    for g in groups:
        out.append("%-8s " % g + ", ".join(
            "%s %s" % (label(k), size(v) if (g, k) in GROUP_BYTES else v) for k, v in rec[g].items()))
    placed = set(SKIP) | set(groups)
    for name, keys in LINES + [("other", [k for k in rec if k not in SKIP and k not in groups
                                          and all(k not in ks for _, ks in LINES)])]:
        items = [(k, rec[k]) for k in keys if k in rec]
        placed.update(k for k, _ in items)
        if items:
            out.append("%-8s " % name + ", ".join(
                "%s %s" % (label(k), size(v) if k in BYTES else v) for k, v in items))
    if rec.get("complete") is False:
        out.append("(per-thread counters left out: the allocator was busy when the signal came)")
    return out


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    recs = []
    try:
        with open(argv[1], encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        recs.append(json.loads(line))
                    except ValueError:
                        pass  # a process killed while writing: skip its line
    except OSError:
        pass
    if not recs:
        print("hakmem: no process reported (a static or setuid program does not load hakmem; one that ends with _exit, as dash does, runs no exit handler to report)",
              file=sys.stderr)
        return 0
    for line in render(recs[-1]):
        print("hakmem: " + line, file=sys.stderr)
    if len(recs) > 1:
        count = {}
        for r in recs[:-1]:
            count[r.get("program", "?")] = count.get(r.get("program", "?"), 0) + 1
        print("hakmem: %d other process(es) ran under hakmem too: %s" % (
            len(recs) - 1, ", ".join("%s x%d" % kv for kv in sorted(count.items()))), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
