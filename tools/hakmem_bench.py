#!/usr/bin/env python3
"""hakmem bench: runs hakmem's benchmark workloads under several allocators.

    hakmem bench [--quick] [--out DIR] [--alloc LIST] [--workloads LIST]
                 [--runs N] [--threads LIST] [--instructions] [--programs]

Each allocator is put in with LD_PRELOAD (glibc: no preload), so any malloc
library can be compared (NAME=PATH in --alloc, or $HAKMEM_BENCH_EXTRA).
Runs are interleaved (A B C, then C A B, ... in a shuffled order) so that
noise on a shared machine falls on all allocators alike and none always
runs after the same other, and medians are reported.  Writes
results.csv (every run), results.md (median tables, with hakmem's ratio to
each other allocator and to the best of them, and their geometric means)
and chart.svg.  --instructions counts instructions per malloc+free pair
with callgrind instead; --programs times real programs (programs.csv,
programs.md), and with --instructions counts theirs.  See bench/README.md.
"""
import argparse
import csv
import math
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from xml.sax.saxutils import escape

HERE = os.path.dirname(os.path.abspath(__file__))
DEBIAN_LIB = "/usr/lib/x86_64-linux-gnu/"
# name, library to preload (None: glibc), Debian package that provides it
KNOWN_ALLOCATORS = [
    ("system", None, None),
    ("jemalloc", DEBIAN_LIB + "libjemalloc.so.2", "libjemalloc2"),
    ("mimalloc", DEBIAN_LIB + "libmimalloc.so.2", "libmimalloc2.0"),
    ("tcmalloc", DEBIAN_LIB + "libtcmalloc_minimal.so.4", "libtcmalloc-minimal4"),
    ("hakmem", None, None),  # library found at run time (--lib, HAKMEM_LIB)
]
MODES = {  # runs, scale of the workloads' default op counts
    "full": (5, 1.0),
    "quick": (3, 0.2),
}
# Rows where hakmem's time is above CONFIRM_ABOVE x the best other
# allocator's are run again, hakmem and that allocator alone, interleaved,
# CONFIRM_RUNS[mode] times: on a shared machine a single row of 3-5 runs
# can be a quarter off, and a different set of rows crosses the line in
# each run.
CONFIRM_ABOVE = 1.25
CONFIRM_RUNS = {"full": 7, "quick": 5}
# Real programs: the line is 1.10 x the fastest, and a run takes seconds.
PROGRAMS_CONFIRM_ABOVE, PROGRAMS_CONFIRM_RUNS = 1.10, 5
# Thread counts of the workloads that take threads: 32 oversubscribes the
# 2-core machines we measure on (full mode only: quick stays short).
DEFAULT_THREADS = {"full": [1, 2, 8, 32], "quick": [1, 2, 8]}
# Extra allocators added to the default list: NAME=PATH[,NAME=PATH...]
EXTRA_ENV = "HAKMEM_BENCH_EXTRA"
RUNNER_ENV = (EXTRA_ENV, "HAKMEM_BENCH_BIN_DIR", "HAKMEM_LIB")
# The workload binary's result line, keys in this order (bench_main.c).
FIELDS = ["workload", "threads", "ops", "seed", "secs", "ops_per_sec",
          "p50_ns", "p95_ns", "p99_ns", "samples", "minflt", "peak_rss_kb",
          "final_rss_kb", "live_kb"]
INT_FIELDS = {"threads", "ops", "seed", "samples", "minflt", "peak_rss_kb",
              "final_rss_kb", "live_kb"}
CSV_COLUMNS = ["run", "allocator", "status"] + FIELDS
# instruction-count mode: workload, baseline ops, measured ops (see README)
INSTR_WORKLOADS = [("tiny-hot", 10000, 110000),
                   ("random-mixed", 100000, 200000)]
COLORS = {"system": "#8c8c8c", "jemalloc": "#4e79a7", "mimalloc": "#59a14f",
          "tcmalloc": "#f28e2b", "hakmem": "#e15759"}
EXTRA_COLORS = ["#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7"]


def die(msg):
    print("hakmem bench: " + msg, file=sys.stderr)
    sys.exit(2)


class Alloc:
    def __init__(self, name, lib, setenv=None):
        self.name, self.lib = name, lib  # lib None: glibc, nothing preloaded
        self.setenv = setenv or {}       # e.g. {"HAKMEM_MODE": "fast"}

    def env(self):
        env = dict(os.environ)
        env.pop("LD_PRELOAD", None)
        # The runner's own settings: not for the measured program, under
        # which the library would report them as unknown HAKMEM_ options.
        for k in RUNNER_ENV:
            env.pop(k, None)
        env.update(self.setenv)
        if self.lib:
            env["LD_PRELOAD"] = self.lib
        return env

    def prefix(self):
        """How a shell command line says it, for messages."""
        words = ["%s=%s" % kv for kv in sorted(self.setenv.items())]
        if self.lib:
            words.append("LD_PRELOAD=%s" % self.lib)
        return "".join(w + " " for w in words)


# ---------------------------------------------------------------- running --

def parse_line(text):
    """The result line in a workload's output as a dict, or None."""
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0] != "hakmem-bench":
            continue
        kv = [p.split("=", 1) for p in parts[1:]]
        if [k[0] for k in kv] != FIELDS or any(len(k) != 2 for k in kv):
            return None
        out = {}
        try:
            for k, v in kv:
                out[k] = v if k == "workload" else int(v) if k in INT_FIELDS else float(v)
        except ValueError:
            return None
        return out
    return None


def run_workload(bin_path, alloc, workload, threads, ops, seed, timeout):
    """Runs one workload once.  Returns (status, fields or None, stderr)."""
    cmd = [bin_path, "--workload", workload, "--threads", str(threads),
           "--ops", str(ops), "--seed", str(seed)]
    try:
        p = subprocess.run(cmd, env=alloc.env(), capture_output=True,
                           text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", None, ""
    if "cannot be preloaded" in p.stderr:  # ld.so goes on without it
        return "preload-failed", None, p.stderr
    if p.returncode < 0:
        return "crash:" + signal.Signals(-p.returncode).name, None, p.stderr
    if p.returncode:
        return "exit:%d" % p.returncode, None, p.stderr
    fields = parse_line(p.stdout)
    return ("ok" if fields else "bad-output"), fields, p.stderr


def command_line(alloc, bin_path, workload, threads, ops, seed):
    """The shell command that reproduces a run, for error messages."""
    return "%s%s --workload %s --threads %d --ops %d --seed %d" % (
        alloc.prefix(), bin_path, workload, threads, ops, seed)


def list_workloads(bin_path):
    """[(name, default_ops, takes_threads, about)] from the binary itself."""
    out = subprocess.run([bin_path, "--list"], capture_output=True, text=True,
                         check=True).stdout
    rows = []
    for line in out.splitlines():
        name, ops, thr, about = line.split(" ", 3)
        rows.append((name, int(ops), thr == "1", about))
    return rows


def find_allocators(spec, hakmem_lib, extra=None):
    """Allocators named in spec, a comma list of names, NAME=PATH (any
    library; NAME=PATH@VAR=VALUE@... with environment variables set, and an
    empty PATH meaning hakmem's, e.g. fast=@HAKMEM_MODE=fast) and "all" (the
    known ones, then those of extra, which defaults to $HAKMEM_BENCH_EXTRA).
    Returns (usable, skipped-with-hint)."""
    known = {n: (lib, pkg) for n, lib, pkg in KNOWN_ALLOCATORS}
    if extra is None:
        extra = os.environ.get(EXTRA_ENV, "")
    names = []
    for item in (s.strip() for s in spec.split(",")):
        if item == "all":
            names += [n for n, _, _ in KNOWN_ALLOCATORS]
            names += [e.strip() for e in extra.split(",") if e.strip()]
        elif item:
            names.append(item)
    usable, skipped, seen = [], [], set()
    for name in names:
        if name.split("=", 1)[0] in seen:
            continue
        seen.add(name.split("=", 1)[0])
        setenv = {}
        if "=" in name:
            name, lib = name.split("=", 1)
            lib, *extra_env = lib.split("@")
            for kv in extra_env:
                if "=" not in kv or not kv.split("=", 1)[0]:
                    die("--alloc wants NAME=PATH@VAR=VALUE, got '@%s'" % kv)
                setenv[kv.split("=", 1)[0]] = kv.split("=", 1)[1]
            if extra_env and not lib:
                lib = hakmem_lib
            if not name or not lib:
                die("--alloc wants NAME=PATH, got '%s=%s'" % (name, lib))
            hint = "not found: %s" % lib
        elif name not in known:
            die("unknown allocator '%s' (known: %s; or NAME=PATH)"
                % (name, ", ".join(known)))
        elif name == "hakmem":
            lib = hakmem_lib
            hint = ("libhakmem.so not found (build it, or give --lib PATH or "
                    "HAKMEM_LIB)")
        else:
            lib, pkg = known[name]
            hint = lib and "%s not found (install: apt-get install %s)" % (lib, pkg)
        if lib and not os.path.isfile(lib):
            skipped.append((name, hint))
        else:
            usable.append(Alloc(name, lib and os.path.abspath(lib), setenv))
    return usable, skipped


class Progress:
    """One status line on a terminal; one line per step otherwise."""

    def __init__(self, total):
        self.total, self.done, self.t0 = total, 0, time.time()
        self.tty = sys.stderr.isatty()

    def show(self, what):
        spent = time.time() - self.t0
        eta = spent / self.done * (self.total - self.done) if self.done else 0
        msg = "[%*d/%d %3.0fs, ~%.0fs left] %s" % (
            len(str(self.total)), self.done + 1, self.total, spent, eta, what)
        if self.tty:
            sys.stderr.write("\r\033[K" + msg[:150])
        else:
            sys.stderr.write(msg + "\n")
        sys.stderr.flush()

    def step(self):
        self.done += 1

    def finish(self):
        if self.tty:
            sys.stderr.write("\r\033[K")


# ---------------------------------------------------------------- reports --

def medians(rows):
    """{(workload, threads): {allocator: {field: median}}} over ok runs;
    an allocator with no ok run gets {"status": its first failure}."""
    groups = {}
    for r in rows:
        groups.setdefault((r["workload"], int(r["threads"])), {}) \
              .setdefault(r["allocator"], []).append(r)
    out = {}
    for key, by_alloc in groups.items():
        out[key] = {}
        for alloc, runs in by_alloc.items():
            ok = [r for r in runs if r["status"] == "ok"]
            if not ok:
                out[key][alloc] = {"status": runs[0]["status"]}
                continue
            out[key][alloc] = {f: statistics.median(float(r[f]) for r in ok)
                               for f in FIELDS[4:]}
            out[key][alloc]["status"] = "ok"
    return out


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else None


def human(v):
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return "%.3g%s" % (v / div, unit)
    return "%.3g" % v


def mib(kb):
    return "%.1f" % (kb / 1024)


def hakmem_ratios(med, keys, names, field, higher_better):
    """{column: [ratio per key]} of hakmem's median of field to each other
    allocator's and to the best other one ("best"); None where a figure is
    missing."""
    others = [n for n in names if n != "hakmem"] if "hakmem" in names else []
    out = {n: [] for n in others + (["best"] if others else [])}

    def value(key, n):
        m = med[key].get(n)
        return m[field] if m and m["status"] == "ok" else None

    for key in keys:
        h = value(key, "hakmem")
        vals = {n: value(key, n) for n in others}
        for n in others:
            v = vals[n]
            out[n].append(h / v if h is not None and v else None)
        if others:
            ok = [v for v in vals.values() if v is not None]
            best = (max(ok) if higher_better else min(ok)) if ok else None
            out["best"].append(h / best if h is not None and best else None)
    return out


def md_table(title, field, fmt, higher_better, med, keys, allocs, label=None,
             key_head=("workload", "threads"), key_cells=None):
    """One markdown table of a metric's medians: a column per allocator,
    then hakmem's ratio to each other one and to the best other one on the
    row (hakmem/best), with their geometric means."""
    names = [a.name for a in allocs]
    ratios = hakmem_ratios(med, keys, names, field, higher_better)
    cols = list(ratios)
    better = "higher" if higher_better else "lower"
    lines = ["### " + title, ""]
    if cols:
        lines += ["Ratio = hakmem / other: %s is better for hakmem; "
                  "hakmem/best: to the best of the others on the row." % better,
                  ""]
    head = list(key_head) + names + ["hakmem/" + n for n in cols]
    lines += ["| " + " | ".join(head) + " |",
              "|" + "---|" * len(key_head) + "---:|" * (len(head) - len(key_head))]
    if key_cells is None:
        key_cells = lambda key: [label(key) if label else key[0], str(key[1])]
    for i, key in enumerate(keys):
        cells = key_cells(key)
        for n in names:
            m = med[key].get(n)
            ok = m and m["status"] == "ok"
            cells.append(fmt(m[field]) if ok else (m["status"] if m else "-"))
        for n in cols:
            r = ratios[n][i]
            cells.append("%.2f" % r if r else "-")
        lines.append("| " + " | ".join(cells) + " |")
    if cols:
        gm = [geomean(ratios[n]) for n in cols]
        cells = ["**geomean**"] + [""] * (len(key_head) - 1) + [""] * len(names) + [
            "**%.2f**" % g if g else "-" for g in gm]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def summary(med, keys, allocs, metrics):
    """Short lines of hakmem's geometric-mean ratios: for each (what, field,
    higher_better) in metrics, to every other allocator and to the best."""
    names = [a.name for a in allocs]
    if "hakmem" not in names or len(names) < 2:
        return []
    lines = []
    for what, field, higher_better in metrics:
        ratios = hakmem_ratios(med, keys, names, field, higher_better)
        parts = ["hakmem/%s %s" % (n, "%.2f" % g if g else "-")
                 for n, g in ((n, geomean(r)) for n, r in ratios.items())]
        lines.append("- %s (%s is better): %s" % (
            what, "higher" if higher_better else "lower", ", ".join(parts)))
    return lines


def write_markdown(path, med, keys, allocs, info):
    def live_label(key):
        lives = [m.get("live_kb", 0) for m in med[key].values()]
        live = max(lives) if lives else 0
        return key[0] + (" (live %s MiB)" % mib(live) if live else "")

    lines = summary(med, keys, allocs, [
        ("throughput, geomean over all rows", "ops_per_sec", True),
        ("peak RSS, geomean over all rows", "peak_rss_kb", False)])
    head = "\n".join(["", "## Summary", ""] + lines + [""]) if lines else ""
    parts = ["# hakmem benchmark results", "", info, head,
             md_table("Throughput (ops/s)", "ops_per_sec", human, True,
                      med, keys, allocs),
             md_table("Peak RSS (MiB)", "peak_rss_kb", mib, False,
                      med, keys, allocs),
             md_table("Final RSS after the workload freed its blocks (MiB)",
                      "final_rss_kb", mib, False, med, keys, allocs, live_label),
             md_table("Latency P50 (ns, sampled)", "p50_ns", "%.0f".__mod__,
                      False, med, keys, allocs),
             md_table("Latency P99 (ns, sampled)", "p99_ns", "%.0f".__mod__,
                      False, med, keys, allocs),
             md_table("Minor page faults", "minflt", lambda v: "%d" % v, False,
                      med, keys, allocs)]
    with open(path, "w") as f:
        f.write("\n".join(parts))
    return parts


def write_svg(path, med, keys, allocs, title):
    """Two panels of horizontal bars, one group per workload and one bar per
    allocator; bars are scaled within their group (the largest is full
    width) and labelled with the absolute value, since workloads differ by
    orders of magnitude."""
    names = [a.name for a in allocs]
    color = dict(COLORS)
    for i, n in enumerate(x for x in names if x not in color):
        color[n] = EXTRA_COLORS[i % len(EXTRA_COLORS)]
    bar, gap, label_w, panel_w, text_w = 12, 12, 190, 380, 80
    panels = [("Throughput, ops/s (longer is better)", "ops_per_sec", human),
              ("Peak RSS, MiB (shorter is better)", "peak_rss_kb", mib)]
    top = 78
    group_h = bar * len(names) + gap
    width = label_w + len(panels) * (panel_w + 20)
    height = top + group_h * len(keys) + 20
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">'
           % (width, height, width, height),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="10" y="20" font-size="15" font-weight="bold">%s</text>'
           % escape(title),
           '<text x="%d" y="42" text-anchor="end" fill="#555">bars scaled '
           'per workload (longest = largest); labels give the value</text>'
           % (width - 10)]
    x = 10
    for n in names:  # legend
        out.append('<rect x="%d" y="32" width="12" height="12" fill="%s"/>'
                   '<text x="%d" y="42">%s</text>' % (x, color[n], x + 16, escape(n)))
        x += 24 + 7 * len(n)
    for p, (ptitle, field, fmt) in enumerate(panels):
        px = label_w + p * (panel_w + 20)
        out.append('<text x="%d" y="68" font-weight="bold">%s</text>'
                   % (px, escape(ptitle)))
        for g, key in enumerate(keys):
            y0 = top + g * group_h
            vals = [med[key].get(n) for n in names]
            ok = [m[field] for m in vals if m and m["status"] == "ok"]
            biggest = max(ok) if ok and max(ok) > 0 else 1
            for i, (n, m) in enumerate(zip(names, vals)):
                y = y0 + i * bar
                if not m or m["status"] != "ok":
                    out.append('<text x="%d" y="%d" fill="#c00">%s</text>'
                               % (px + 2, y + bar - 2,
                                  escape(m["status"] if m else "not run")))
                    continue
                w = max(1, (panel_w - text_w) * m[field] / biggest)
                out.append('<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s">'
                           '<title>%s: %s</title></rect>'
                           % (px, y, w, bar - 2, color[n], escape(n), fmt(m[field])))
                out.append('<text x="%.1f" y="%d">%s</text>'
                           % (px + w + 4, y + bar - 3, fmt(m[field])))
            if p == 0:
                threaded = any(k[0] == key[0] and k[1] > 1 for k in keys)
                name = key[0] + (", %d thr" % key[1] if threaded else "")
                out.append('<text x="%d" y="%d" text-anchor="end">%s</text>'
                           % (label_w - 10, y0 + group_h // 2, escape(name)))
                out.append('<line x1="10" x2="%d" y1="%d" y2="%d" stroke="#ddd"/>'
                           % (width - 10, y0 - gap // 2, y0 - gap // 2))
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def machine_info():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = re.search(r"model name\s*:\s*(.*)", f.read()).group(1)
    except (OSError, AttributeError):
        pass
    return "%s, %d CPUs, %s" % (cpu, os.cpu_count(), platform.platform())


# ------------------------------------------------------------------ modes --

def rows_above(med, keys, names, above, field="ops_per_sec", higher_better=True):
    """[(key, best other allocator, hakmem's cost / its cost)] for the rows
    where hakmem's median cost (time: 1 / throughput, or seconds) is above
    `above` x the best other allocator's."""
    if "hakmem" not in names:
        return []
    out = []
    for key in keys:
        m = med[key]
        h = m.get("hakmem")
        if not h or h["status"] != "ok" or not h[field]:
            continue
        ok = [(m[n][field], n) for n in names
              if n != "hakmem" and m.get(n) and m[n]["status"] == "ok" and m[n][field]]
        if not ok:
            continue
        v, best = max(ok) if higher_better else min(ok)
        ratio = v / h[field] if higher_better else h[field] / v
        if ratio > above:
            out.append((key, best, ratio))
    return out


def run_again(todo, allocs, rounds, run_one, label):
    """Runs each row of todo ([(key, best, ratio)], from rows_above) again:
    hakmem and that best allocator alone, `rounds` rounds in a shuffled
    order.  run_one(alloc, key, round) gives the run's cost (time), None
    if it failed.  Returns [(key, best, ratio, median of the rounds' cost
    ratios or None, rounds that counted)]."""
    by_name = {a.name: a for a in allocs}
    progress = Progress(len(todo) * rounds * 2)
    out = []
    for i, (key, best, ratio) in enumerate(todo):
        pair, ratios = [by_name["hakmem"], by_name[best]], []
        for r in range(rounds):
            got = {}
            for a in run_order(pair, r, i):
                progress.show("again %d/%d  %s  %s" % (r + 1, rounds, label(key), a.name))
                cost = run_one(a, key, r)
                progress.step()
                if cost is not None:
                    got[a.name] = cost
            if len(got) == 2 and got[best] > 0:
                ratios.append(got["hakmem"] / got[best])
        out.append((key, best, ratio, statistics.median(ratios) if ratios else None,
                    len(ratios)))
    progress.finish()
    return out


def confirm(args, bin_path, allocs, med, keys, ops_of, failures):
    """The rows above the line (CONFIRM_ABOVE) run again, the seeds of the
    table's runs in turn; every run in confirm.csv, a failed one also in
    failures."""
    todo = rows_above(med, keys, [a.name for a in allocs], args.confirm_above or CONFIRM_ABOVE)
    if not todo or args.confirm < 1:
        return []
    with open(os.path.join(args.out, "confirm.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, CSV_COLUMNS)
        writer.writeheader()

        def run_one(a, key, r):
            (name, threads), seed = key, 1 + r % args.runs
            status, fields, err = run_workload(bin_path, a, name, threads, ops_of[key],
                                               seed, args.timeout)
            writer.writerow(dict(fields or {"workload": name, "threads": threads,
                                            "ops": ops_of[key], "seed": seed},
                                 run=r + 1, allocator=a.name, status=status))
            if status != "ok":
                failures.append((status, command_line(a, bin_path, name, threads,
                                                      ops_of[key], seed), err))
            return 1 / fields["ops_per_sec"] if status == "ok" and fields["ops_per_sec"] else None

        return run_again(todo, allocs, args.confirm, run_one,
                         lambda key: "%s  threads=%d" % key)


def confirm_markdown(rows, n_rows, what, above, rounds, key_head=("workload", "threads"),
                     key_cells=lambda key: [key[0], str(key[1])]):
    """The section of results.md (programs.md) on the rows run again."""
    lines = ["## Rows above %.2f x the best time, run again" % above, "",
             "%d of %d %s: hakmem's median time above %.2f x the best other "
             "allocator's.  Each was run again, hakmem and that allocator alone, "
             "interleaved, %d times; `again` is the median of those rounds' time "
             "ratios." % (len(rows), n_rows, what, above, rounds), ""]
    if rows:
        lines += ["| " + " | ".join(key_head) + " | best other | hakmem / best, table | "
                  "hakmem / best, again | still above |",
                  "|" + "---|" * len(key_head) + "---|---:|---:|---|"]
        for key, best, ratio, again, _ in rows:
            lines.append("| %s | %s | %.2f | %s | %s |" % (
                " | ".join(key_cells(key)), best, ratio, "%.2f" % again if again else "-",
                "-" if again is None else "yes" if again > above else "no"))
        still = sum(1 for r in rows if r[3] and r[3] > above)
        lines += ["", "Still above the line: %d of %d." % (still, len(rows))]
    return "\n".join(lines) + "\n"


def run_order(allocs, run, config):
    """The allocators in the order of one round: interleaved, so that noise
    hits all alike, and shuffled (the same way for the same run and
    workload), because a run pays for what the one before it left.  After
    tcmalloc's run of big-churn, which leaves the kernel's free memory in
    4 KiB pieces, hakmem's huge pages needed compaction and ran 2-3 x
    slower than after mimalloc 3's; in a fixed order, one allocator always
    ran after the same other, and the first after another workload."""
    order = list(allocs)
    random.Random(run * 1000003 + config).shuffle(order)
    return order


def bench(args, bin_path, allocs):
    workloads = list_workloads(bin_path)
    if args.workloads != "all":
        wanted = [w.strip() for w in args.workloads.split(",") if w.strip()]
        names = {w[0] for w in workloads}
        bad = [w for w in wanted if w not in names]
        if bad:
            die("unknown workload(s) %s; known: %s"
                % (", ".join(bad), ", ".join(sorted(names))))
        workloads = [w for w in workloads if w[0] in wanted]
    configs = [(name, t, max(1, int(ops * args.scale)))
               for name, ops, takes, _ in workloads
               for t in (args.threads if takes else [1])]
    os.makedirs(args.out, exist_ok=True)
    csv_path = os.path.join(args.out, "results.csv")
    progress = Progress(args.runs * len(configs) * len(allocs))
    rows, failures = [], []
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, CSV_COLUMNS)
        writer.writeheader()
        for run in range(1, args.runs + 1):
            for ci, (name, threads, ops) in enumerate(configs):
                for a in run_order(allocs, run, ci):
                    progress.show("run %d/%d  %s  threads=%d  %s"
                                  % (run, args.runs, name, threads, a.name))
                    status, fields, err = run_workload(
                        bin_path, a, name, threads, ops, run, args.timeout)
                    row = dict(fields or {"workload": name, "threads": threads,
                                          "ops": ops, "seed": run},
                               run=run, allocator=a.name, status=status)
                    writer.writerow(row)
                    f.flush()
                    rows.append(row)
                    if status != "ok":
                        failures.append((status, command_line(
                            a, bin_path, name, threads, ops, run), err))
                    progress.step()
    progress.finish()

    med = medians(rows)
    keys = [(n, t) for n, t, _ in configs]
    mode = "quick" if args.quick else "full"
    info = ("%s mode, %d run(s) each, median shown; ops scaled by %g; "
            "allocators interleaved.  %s; %s; the whole run took %.0f s." % (
                mode, args.runs, args.scale, machine_info(),
                time.strftime("%Y-%m-%d %H:%M"), time.time() - progress.t0))
    md_path = os.path.join(args.out, "results.md")
    parts = write_markdown(md_path, med, keys, allocs, info)
    confirmed = confirm(args, bin_path, allocs, med, keys,
                        {(n, t): ops for n, t, ops in configs}, failures)
    section = None
    if "hakmem" in [a.name for a in allocs] and len(allocs) > 1 and args.confirm > 0:
        section = confirm_markdown(confirmed, len(keys), "rows", args.confirm_above or CONFIRM_ABOVE,
                                   args.confirm)
        with open(md_path, "a") as f:
            f.write("\n" + section)
    write_svg(os.path.join(args.out, "chart.svg"), med, keys, allocs,
              "hakmem bench (%s mode, median of %d)" % (mode, args.runs))
    print("\n".join(parts[3:6]))  # the headline: summary, throughput, peak RSS
    if section:
        print(section)
    print("all tables: %s\nevery run:  %s\nchart:      %s" % (
        md_path, csv_path, os.path.join(args.out, "chart.svg")))
    for status, cmd, err in failures:
        tail = err.strip().splitlines()[-1:] if err.strip() else []
        print("FAILED (%s): %s%s" % (status, cmd,
                                     "\n    " + tail[0] if tail else ""),
              file=sys.stderr)
    return 1 if failures else 0


def callgrind_costs(path, own):
    """(total Ir, Ir spent in the object named own) from a callgrind output
    file.  Only self costs are summed: the cost line after calls= is the
    callee's inclusive cost, counted where the callee's own lines are."""
    names, ob, total, mine, after_call = {}, None, 0, 0, False
    with open(path) as f:
        for line in f:
            if line.startswith(("ob=", "cob=")):
                # "(id) name" defines a compressed name, "(id)" uses it;
                # ob= and cob= share the ids.
                spec = line.split("=", 1)[1].strip()
                m = re.match(r"\((\d+)\)\s*(.*)", spec)
                if m and m.group(2):
                    names[m.group(1)] = m.group(2)
                if line.startswith("ob="):
                    ob = names.get(m.group(1)) if m else spec
            elif line.startswith("calls="):
                after_call = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                parts = line.split()
                cost = int(parts[1]) if len(parts) > 1 else 0
                if after_call:
                    after_call = False
                    continue
                total += cost
                if ob and os.path.basename(ob) == own:
                    mine += cost
    return total, mine


def callgrind_run(bin_path, alloc, workload, ops, timeout):
    """(total Ir, Ir in the workload binary itself) of one run, in the
    workload's (first) thread only: a background thread such as hakmem's
    controller wakes on the wall clock, which valgrind slows 50-fold
    against the program, so its share under callgrind would be 50 times
    what it is (the workloads counted here run one thread)."""
    with tempfile.TemporaryDirectory() as tmp:
        base = os.path.join(tmp, "callgrind.out")
        out = base + "-01"
        cmd = ["valgrind", "--tool=callgrind", "--separate-threads=yes",
               "--callgrind-out-file=" + base,
               bin_path, "--workload", workload, "--ops", str(ops),
               "--no-latency"]
        p = subprocess.run(cmd, env=alloc.env(), capture_output=True,
                           text=True, timeout=timeout)
        if (p.returncode or not os.path.exists(out)
                or "cannot be preloaded" in p.stderr):
            raise RuntimeError("%s%s: %s" % (
                alloc.prefix(), " ".join(cmd),
                (p.stderr.strip().splitlines() or ["no output"])[-1]))
        return callgrind_costs(out, os.path.basename(bin_path))


def instructions(args, bin_path, allocs):
    """Instructions per malloc+free pair: Ir(N1 ops) - Ir(N0 ops), divided
    by N1 - N0, so start-up, set-up and warm-up cancel out.  The workload
    loop's own share (Ir inside the workload binary, same method) is
    reported apart and taken off, leaving what malloc+free cost."""
    if not shutil.which("valgrind"):
        print("valgrind not found (install: apt-get install valgrind)",
              file=sys.stderr)
        return 77
    names = [w[0] for w in list_workloads(bin_path)]
    todo = [(w, max(0, int(n0 * args.scale)), max(1, int(n1 * args.scale)))
            for w, n0, n1 in INSTR_WORKLOADS if w in names]
    rows, failed = [], 0
    progress = Progress(2 * len(todo) * len(allocs))
    for w, n0, n1 in todo:
        for a in allocs:
            try:
                runs = []
                for n in (n0, n1):
                    progress.show("callgrind  %s  ops=%d  %s" % (w, n, a.name))
                    runs.append(callgrind_run(bin_path, a, w, n, args.timeout))
                    progress.step()
                pairs = n1 - n0
                per_pair = (runs[1][0] - runs[0][0]) / pairs
                loop = (runs[1][1] - runs[0][1]) / pairs
                rows.append([w, a.name, n0, n1, runs[0][0], runs[1][0],
                             round(per_pair, 1), round(loop, 1),
                             round(per_pair - loop, 1)])
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                failed += 1
                print("\nFAILED: %s" % e, file=sys.stderr)
    progress.finish()
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "instructions.csv"), "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["workload", "allocator", "ops_base", "ops", "ir_base",
                      "ir", "ir_per_pair", "loop_per_pair", "alloc_per_pair"])
        out.writerows(rows)
    names = [a.name for a in allocs]
    lines = ["### Instructions per malloc+free pair (callgrind)", "",
             "Per allocator: instructions in malloc+free (and all they call) "
             "per pair, in the workload's thread (not a background thread's).  "
             "Method: (Ir of a run of N ops - Ir of a run of N0 "
             "ops) / (N - N0), which cancels start-up; minus the workload "
             "loop's own instructions (column loop, counted the same way).",
             "", "| workload | N0 | N | loop | " + " | ".join(names) + " |",
             "|---|---:|---:|---:|" + "---:|" * len(names)]
    for w, n0, n1 in todo:
        got = {r[1]: r for r in rows if r[0] == w}
        if got:
            loop = statistics.median(r[7] for r in got.values())
            lines.append("| %s | %d | %d | %.1f | " % (w, n0, n1, loop) + " | ".join(
                "%.1f" % got[n][8] if n in got else "failed" for n in names) + " |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "instructions.md"), "w") as f:
        f.write(text)
    print(text)
    return 1 if failed else 0


# --------------------------------------------------------------- programs --
# `hakmem bench --programs`: real Debian programs under each allocator.
# Inputs are generated (deterministically) into DIR/programs-input; every
# run's output (stdout, and any files it writes) must equal the output of a
# glibc reference run made before the timed runs.

PROGRAM_INPUT_VERSION = "2"


class Program:
    def __init__(self, name, about, argv=None, env=None, cwd=None, stdin=None,
                 outputs=(), skip=None):
        self.name, self.about, self.argv = name, about, argv
        self.env, self.cwd, self.stdin = env or {}, cwd, stdin
        self.outputs = list(outputs)  # files it writes, compared too
        self.skip = skip  # why it cannot run here, or None

    def shell(self):
        """The command as a shell line, for the report."""
        import shlex
        env = " ".join("%s=%s" % (k, shlex.quote(v)) for k, v in self.env.items())
        cmd = " ".join(shlex.quote(a) for a in self.argv)
        if self.stdin:
            cmd += " < " + shlex.quote(self.stdin)
        if self.cwd:
            cmd = "(cd %s && %s)" % (shlex.quote(self.cwd), cmd)
        return (env + " " if env else "") + cmd


def find_repo(args):
    """hakmem's source tree (scripts/workload.py, src/, a git repository):
    --repo, else the source dir recorded in CMakeCache.txt beside the
    runner, else the runner's parent (tools/..), else the current folder."""
    cands = [args.repo] if args.repo else []
    try:
        with open(os.path.join(HERE, "CMakeCache.txt")) as f:
            m = re.search(r"^hakmem_SOURCE_DIR:STATIC=(.*)$", f.read(), re.M)
            if m:
                cands.append(m.group(1))
    except OSError:
        pass
    cands += [os.path.join(HERE, ".."), os.getcwd()]
    for c in cands:
        if c and os.path.isfile(os.path.join(c, "scripts", "workload.py")):
            return os.path.abspath(c)
    return None


def _words(rng, n):
    """n made-up words, 2-12 letters, skewed to short ones."""
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    out = set()
    while len(out) < n:
        k = min(12, 2 + int(rng.expovariate(0.35)))
        out.add("".join(rng.choice(letters[:10 + k]) for _ in range(k)))
    return sorted(out)


def generate_inputs(folder, scale):
    """Writes the programs' input files (same bytes for the same scale) and
    returns their paths; files already there from the same version and
    scale are kept."""
    import json
    import random
    os.makedirs(folder, exist_ok=True)
    stamp = os.path.join(folder, "STAMP")
    tag = "v%s scale=%r\n" % (PROGRAM_INPUT_VERSION, scale)
    paths = {k: os.path.join(folder, f) for k, f in (
        ("text", "text.txt"), ("text-xz", "text-xz.txt"),
        ("lines", "lines.txt"), ("json", "data.json"),
        ("awk", "words.awk"), ("perl", "churn.pl"), ("jq", "groups.jq"),
        ("git", "git.sh"))}
    try:
        with open(stamp) as f:
            if f.read() == tag and all(map(os.path.exists, paths.values())):
                return paths
    except OSError:
        pass
    for key, text in (("awk", GAWK_PROGRAM), ("perl", PERL_PROGRAM),
                      ("jq", JQ_PROGRAM), ("git", GIT_SCRIPT)):
        with open(paths[key], "w") as f:
            f.write(text.lstrip())
    rng = random.Random(20261127)
    vocab = _words(rng, 20000)
    weights = [1.0 / (i + 1) for i in range(len(vocab))]  # Zipf-like
    # text.txt: prose-like lines of words (gawk, gzip): ~4 MB; its first
    # 1.5 MB in text-xz.txt (xz is slow)
    nwords = int(650_000 * scale) + 100
    words = rng.choices(vocab, weights, k=nwords)
    with open(paths["text"], "w") as f:
        i = 0
        while i < nwords:
            k = rng.randint(4, 16)
            f.write(" ".join(words[i:i + k]) + "\n")
            i += k
    with open(paths["text"], "rb") as f:
        head = f.read(int(1_500_000 * scale) + 1000)
    with open(paths["text-xz"], "wb") as f:
        f.write(head[:head.rfind(b"\n") + 1])
    # lines.txt: 1 M records "key number word word" (sort)
    with open(paths["lines"], "w") as f:
        for i in range(sort_lines(scale)):
            f.write("%08x %d %s %s\n" % (rng.getrandbits(32), rng.randint(0, 99999),
                                         vocab[rng.randrange(len(vocab))],
                                         vocab[rng.randrange(2000)]))
    # data.json: an array of records, a few MB (jq)
    recs = [{"id": i, "name": vocab[rng.randrange(len(vocab))],
             "group": rng.randrange(50),
             "tags": rng.sample(vocab[:300], rng.randint(0, 6)),
             "values": [rng.randint(0, 1000) for _ in range(rng.randint(1, 8))],
             "nested": {"a": rng.random() < 0.5, "b": vocab[rng.randrange(500)]}}
            for i in range(int(40_000 * scale) + 10)]
    with open(paths["json"], "w") as f:
        json.dump(recs, f, indent=1)
        f.write("\n")
    with open(stamp, "w") as f:
        f.write(tag)
    return paths


def sort_lines(scale):
    return int(1_000_000 * scale) + 10


GAWK_PROGRAM = r"""
{
  for (i = 1; i <= NF; i++) {
    w = $i; count[w]++; last[w] = NR
    next_word[w SUBSEP $(i % NF + 1)]++
    if (length(w) > 7) long[w] = long[w] substr(w, 1, 3)
  }
  line = line $1 "-" NF ";"
  if (length(line) > 2000) { kept[++nkept] = line; line = "" }
  if (NR % 5000 == 0) { delete next_word; npurge++ }
}
END {
  PROCINFO["sorted_in"] = "@ind_str_asc"
  n = 0; for (w in count) { n++; if (count[w] > 2000) print w, count[w], last[w] }
  np = 0; for (p in next_word) np++
  tl = 0; for (w in long) tl += length(long[w])
  tk = 0; for (i = 1; i <= nkept; i++) tk += length(kept[i])
  print n, np, tl, nkept, tk, npurge
}
"""

PERL_PROGRAM = r"""
my (%h, %len, @keep);
my $n = shift;
for my $i (1 .. $n) {
  my $k = "key" . (($i * 7919) % 150001);
  $h{$k} .= chr(97 + $i % 26) x (1 + $i % 11);
  $len{length $h{$k}}++;
  if ($i % 3 == 0) { delete $h{"key" . (($i * 104729) % 150001)} }
  if ($i % 1000 == 0) { push @keep, join(",", map { $_ * $i } 1 .. 50) }
  if ($i % 50000 == 0) { my @s = sort { $a <=> $b } keys %len; %len = map { $_ => 1 } @s[0 .. 9] }
}
my $t = 0; $t += length($h{$_}) for keys %h;
my $u = 0; $u += length($_) for @keep;
print scalar(keys %h), " $t $u\n";
"""

GIT_SCRIPT = r"""
# git.sh REPO REV: read-only git work on the history of REPO up to REV
set -e
git -C "$1" --no-pager log -p --stat -M -C "$2"
git -C "$1" grep -n -e 'a[a-z]*e' $(git -C "$1" rev-list "$2")
echo "$2" | git -C "$1" pack-objects --revs --stdout --no-reuse-delta \
  --no-reuse-object --window=500 --depth=50 --threads=1 -q
"""

JQ_PROGRAM = (
    'map(select(.id % 3 != 0) | {id, g: .group, name: (.name + "-" + (.id | tostring)),'
    ' tags: (.tags | map(ascii_upcase) | sort), sum: (.values | add),'
    ' b: .nested.b}) | group_by(.g) | map({g: .[0].g, n: length,'
    ' sum: (map(.sum) | add), names: (map(.name) | sort | .[0:5]),'
    ' tags: ([.[].tags[]] | unique | length)})\n')


def programs_list(args, work, scale):
    """The programs to run, each with its command or the reason it cannot
    run here."""
    repo = find_repo(args)
    inp = generate_inputs(os.path.join(work, "programs-input"), scale)
    tmp = os.path.join(work, "programs-work")
    os.makedirs(tmp, exist_ok=True)
    no_repo = "hakmem's source tree not found (give --repo DIR)"
    # The files python and gcc read from the tree, copied once: an edit
    # made while the runs go on must not change their output.
    snap = None
    if repo:
        snap = os.path.join(work, "programs-input", "tree")
        shutil.rmtree(snap, ignore_errors=True)
        for d in ("src", "include"):
            shutil.copytree(os.path.join(repo, d), os.path.join(snap, d))
        os.makedirs(os.path.join(snap, "scripts"))
        shutil.copy(os.path.join(repo, "scripts", "workload.py"), os.path.join(snap, "scripts"))

    def need(tool, prog):
        if not shutil.which(tool):
            prog.skip = "%s is not installed (apt-get install %s)" % (
                tool, {"python3": "python3", "gawk": "gawk", "sort": "coreutils",
                       "perl": "perl", "git": "git", "jq": "jq", "gcc": "gcc",
                       "xz": "xz-utils", "gzip": "gzip"}[tool])
        return prog

    progs = []
    rounds = max(1, round(4 * scale))
    # The interpreter itself: a launcher such as pyenv's shim is a bash
    # script that runs dozens of processes, which would be timed instead.
    python = "python3"
    if shutil.which("python3"):
        p = subprocess.run(["python3", "-c", "import sys; print(sys.executable)"],
                           capture_output=True, text=True)
        if p.returncode == 0 and p.stdout.strip():
            python = p.stdout.strip()
    progs.append(need("python3", Program(
        "python", "the repo's scripts/workload.py (churn(), %d rounds), "
        "PYTHONMALLOC=malloc" % rounds,
        [python, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
         "import workload; print(workload.churn(%d))" % rounds,
         os.path.join(snap or "", "scripts")],
        env={"PYTHONMALLOC": "malloc", "PYTHONHASHSEED": "0",
             "PYTHONDONTWRITEBYTECODE": "1"},
        skip=None if repo else no_repo)))
    progs.append(need("gawk", Program(
        "gawk", "word counts, word pairs and string building over %.0f MB "
        "of text (associative arrays)" % (os.path.getsize(inp["text"]) / 1e6),
        ["gawk", "-f", inp["awk"], inp["text"]])))
    progs.append(need("sort", Program(
        "sort", "sort -k2,2n -k1,1 of %d lines" % sort_lines(scale),
        ["sort", "-k2,2n", "-k1,1", inp["lines"]])))
    n = int(1_000_000 * scale) + 100
    progs.append(need("perl", Program(
        "perl", "hash and string churn, %d iterations" % n,
        ["perl", inp["perl"], str(n)],
        env={"PERL_HASH_SEED": "0", "PERL_PERTURB_KEYS": "0"})))
    git = Program("git", "git log -p, git grep over every commit and git "
                  "pack-objects (re-deltify, one thread, to stdout) of hakmem's "
                  "history; read-only", skip=None if repo else no_repo)
    if repo and shutil.which("git"):
        p = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"],
                           capture_output=True, text=True)
        if p.returncode:
            git.skip = "%s is not a git repository" % repo
        else:  # pinned: commits made meanwhile change nothing
            git.argv = ["sh", inp["git"], repo, p.stdout.strip()]
            git.env = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_OPTIONAL_LOCKS": "0"}
    progs.append(need("git", git))
    progs.append(need("jq", Program(
        "jq", "filter, group and aggregate %.1f MB of JSON"
        % (os.path.getsize(inp["json"]) / 1e6),
        ["jq", "-c", "-f", inp["jq"], inp["json"]])))
    srcs = ["heap.c", "large.c", "site.c"]
    gcc = Program("gcc", "gcc -O2 -g -c of hakmem's src/%s, as the run began "
                  "(cc1 and as run under the allocator too)" % ", ".join(srcs),
                  skip=None if repo else no_repo)
    if repo:
        gdir = os.path.join(tmp, "gcc")
        os.makedirs(gdir, exist_ok=True)
        gcc.argv = ["gcc", "-O2", "-g", "-c", "-I", os.path.join(snap, "include"),
                    "-I", os.path.join(snap, "src")] + [
                        os.path.join(snap, "src", s) for s in srcs]
        gcc.cwd = gdir
        gcc.outputs = [os.path.join(gdir, s[:-2] + ".o") for s in srcs]
    progs.append(need("gcc", gcc))
    progs.append(need("xz", Program(
        "xz", "xz -6 -T1 of %.1f MB of the text" % (
            os.path.getsize(inp["text-xz"]) / 1e6),
        ["xz", "-6", "-T1", "-c", inp["text-xz"]])))
    progs.append(need("gzip", Program(
        "gzip", "gzip -9 of the gawk text",
        ["gzip", "-9", "-c", inp["text"]])))
    return progs


def clear_outputs(prog):
    """Removes the files a program writes, left by its last run."""
    for f in prog.outputs:
        if os.path.exists(f):
            os.remove(f)


def output_sha(out_path, prog):
    """SHA-256 of a run's output: its stdout (saved at out_path) and the
    files it writes."""
    import hashlib
    h = hashlib.sha256()
    for path in [out_path] + prog.outputs:
        h.update(b"stdout" if path == out_path else os.path.basename(path).encode())
        try:
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        except OSError:
            h.update(b"<missing>")
    return h.hexdigest()


def run_program(prog, alloc, tmp, timeout, spawn):
    """Runs one program once.  Returns (status, secs, peak_rss_kb, sha256
    of its output, last line of stderr).  Through the helper spawn
    (hakmem-bench-spawn: fork, exec, wait4) when there is one, else forked
    from here and reaped with os.wait4 (then the peak RSS cannot be lower
    than this runner's own, see bench/spawn.c).  Time: wall clock from fork
    to reap; peak RSS: wait4's ru_maxrss (the largest of the program and
    the children it waited for)."""
    import threading
    clear_outputs(prog)
    env = Alloc("system", None).env()
    env.update(prog.env)
    env.update(alloc.setenv)
    env["LC_ALL"] = "C"
    out_path, err_path = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
    res_path = os.path.join(tmp, "result")
    with open(out_path, "wb") as out, open(err_path, "wb") as err, \
            open(prog.stdin or os.devnull, "rb") as inp:
        if spawn:
            if os.path.exists(res_path):
                os.remove(res_path)
            p = subprocess.run([spawn, res_path, alloc.lib or "", str(timeout),
                                "--"] + prog.argv, stdin=inp, stdout=out,
                               stderr=err, env=env, cwd=prog.cwd)
            try:
                with open(res_path) as f:
                    res = dict(kv.split("=", 1) for kv in f.read().split())
                status, secs = int(res["status"]), float(res["secs"])
                maxrss, timed_out = int(res["maxrss_kb"]), res["timeout"] == "1"
            except (OSError, KeyError, ValueError):
                return ("spawn-failed:%d" % p.returncode, 0.0, 0, "", "")
        else:
            if alloc.lib:
                env["LD_PRELOAD"] = alloc.lib
            reaped, lock, killed = [False], threading.Lock(), [False]
            t0 = time.perf_counter()
            p = subprocess.Popen(prog.argv, stdin=inp, stdout=out, stderr=err,
                                 env=env, cwd=prog.cwd, start_new_session=True)

            def kill():
                with lock:
                    if not reaped[0]:
                        killed[0] = True
                        os.killpg(p.pid, signal.SIGKILL)

            timer = threading.Timer(timeout, kill)
            timer.start()
            _, status, ru = os.wait4(p.pid, 0)
            secs = time.perf_counter() - t0
            with lock:
                reaped[0] = True
            timer.cancel()
            p.returncode = os.waitstatus_to_exitcode(status)
            maxrss, timed_out = ru.ru_maxrss, killed[0]
    with open(err_path, "rb") as f:
        err = f.read().decode(errors="replace")
    code = os.waitstatus_to_exitcode(status)
    if timed_out:
        st = "timeout"
    elif "cannot be preloaded" in err:
        st = "preload-failed"
    elif code < 0:
        st = "crash:" + signal.Signals(-code).name
    elif code:
        st = "exit:%d" % code
    else:
        st = "ok"
    tail = err.strip().splitlines()[-1:] if err.strip() else []
    return st, secs, maxrss, output_sha(out_path, prog), tail[0] if tail else ""


PROGRAM_CSV = ["run", "program", "allocator", "status", "secs",
               "peak_rss_kb", "output_sha256"]


def pick_programs(args, scale):
    """The programs --workloads names (all by default) that can run here,
    and (name, why) of those that cannot, which are reported."""
    progs = programs_list(args, args.out, scale)
    if args.workloads != "all":
        wanted = [w.strip() for w in args.workloads.split(",") if w.strip()]
        bad = [w for w in wanted if w not in {p.name for p in progs}]
        if bad:
            die("unknown program(s) %s; known: %s" % (
                ", ".join(bad), ", ".join(p.name for p in progs)))
        progs = [p for p in progs if p.name in wanted]
    skipped = [(p.name, p.skip) for p in progs if p.skip]
    for name, why in skipped:
        print("skipping %s: %s" % (name, why), file=sys.stderr)
    return [p for p in progs if not p.skip], skipped


def programs(args, allocs):
    t_start = time.time()
    spawn = find_bin(args, "hakmem-bench-spawn")
    if not spawn:
        print("hakmem-bench-spawn not found: programs are started from here, "
              "and their peak RSS cannot be lower than this runner's",
              file=sys.stderr)
    os.makedirs(args.out, exist_ok=True)
    print("generating inputs in %s ..." % os.path.join(args.out, "programs-input"),
          file=sys.stderr)
    # Input sizes: 1 unless --ops-scale says otherwise (--quick: fewer runs)
    scale = args.scale if args.scale_given else 1.0
    progs, skipped = pick_programs(args, scale)
    tmp = os.path.join(args.out, "programs-work")
    os.makedirs(tmp, exist_ok=True)
    # Reference: one glibc run per program, untimed (it also warms the page
    # cache for the timed runs).
    glibc = Alloc("system", None)
    ref, failures = {}, []
    progress = Progress(len(progs) * (1 + args.runs * len(allocs)))
    for p in list(progs):
        progress.show("reference  %s  system" % p.name)
        st, secs, _, sha, tail = run_program(p, glibc, tmp, args.timeout, spawn)
        progress.step()
        if st != "ok":
            print("\nskipping %s: fails under glibc (%s): %s\n    %s" % (
                p.name, st, p.shell(), tail), file=sys.stderr)
            skipped.append((p.name, "fails under glibc (%s)" % st))
            progs.remove(p)
            progress.total -= args.runs * len(allocs)
            continue
        ref[p.name] = sha
    rows = []
    csv_path = os.path.join(args.out, "programs.csv")
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, PROGRAM_CSV)
        writer.writeheader()
        for run in range(1, args.runs + 1):
            for pi, p in enumerate(progs):
                for a in run_order(allocs, run, pi):
                    progress.show("run %d/%d  %s  %s" % (run, args.runs, p.name, a.name))
                    st, secs, rss, sha, tail = run_program(p, a, tmp, args.timeout,
                                                           spawn)
                    progress.step()
                    if st == "ok" and sha != ref[p.name]:
                        st = "output differs"
                    row = {"run": run, "program": p.name, "allocator": a.name,
                           "status": st, "secs": "%.4f" % secs,
                           "peak_rss_kb": rss, "output_sha256": sha}
                    writer.writerow(row)
                    f.flush()
                    rows.append(row)
                    if st != "ok":
                        failures.append((st, a.prefix() + p.shell(), tail))
    progress.finish()

    # medians; an allocator with any failed run shows its first failure
    med = {}
    for p in progs:
        key = (p.name, "")
        med[key] = {}
        for a in allocs:
            runs = [r for r in rows if r["program"] == p.name and r["allocator"] == a.name]
            bad = [r for r in runs if r["status"] != "ok"]
            if bad or not runs:
                med[key][a.name] = {"status": bad[0]["status"] if bad else "not run"}
            else:
                med[key][a.name] = {
                    "status": "ok",
                    "secs": statistics.median(float(r["secs"]) for r in runs),
                    "peak_rss_kb": statistics.median(float(r["peak_rss_kb"]) for r in runs)}
    keys = [(p.name, "") for p in progs]
    above = args.confirm_above or PROGRAMS_CONFIRM_ABOVE
    todo = rows_above(med, keys, [a.name for a in allocs], above, "secs", False)
    confirmed = []
    if todo and args.confirm > 0:
        by_name = {p.name: p for p in progs}
        with open(os.path.join(args.out, "programs-confirm.csv"), "w", newline="") as f:
            writer = csv.DictWriter(f, PROGRAM_CSV)
            writer.writeheader()

            def run_one(a, key, r):
                p = by_name[key[0]]
                st, secs, rss, sha, tail = run_program(p, a, tmp, args.timeout, spawn)
                if st == "ok" and sha != ref[p.name]:
                    st = "output differs"
                writer.writerow({"run": r + 1, "program": p.name, "allocator": a.name,
                                 "status": st, "secs": "%.4f" % secs,
                                 "peak_rss_kb": rss, "output_sha256": sha})
                if st != "ok":
                    failures.append((st, a.prefix() + p.shell(), tail))
                    return None
                return secs

            confirmed = run_again(todo, allocs, args.confirm, run_one, lambda key: key[0])
    took = time.time() - t_start
    info = ("%d run(s) per program and allocator, interleaved, median shown; "
            "input scale %g; each run's output (stdout and files written) "
            "compared with a glibc reference run.  %s; %s; the whole run "
            "took %.0f s." % (args.runs, scale, machine_info(),
                              time.strftime("%Y-%m-%d %H:%M"), took))
    cells = lambda key: [key[0]]
    lines = summary(med, keys, allocs, [
        ("wall time, geomean over the programs", "secs", False),
        ("peak RSS, geomean over the programs", "peak_rss_kb", False)])
    parts = ["# hakmem on real programs", "", info, "",
             "\n".join(["## Summary", ""] + lines + [""]) if lines else "",
             md_table("Wall time (s)", "secs", "%.3f".__mod__, False, med, keys,
                      allocs, key_head=("program",), key_cells=cells),
             md_table("Peak RSS (MiB)", "peak_rss_kb", mib, False, med, keys,
                      allocs, key_head=("program",), key_cells=cells),
             "### Programs", "",
             "| program | what | command |", "|---|---|---|"]
    for p in progs:
        parts.append("| %s | %s | `%s` |" % (
            p.name, p.about, p.shell().replace("\n", " ").replace("|", "\\|")))
    for name, why in skipped:
        parts.append("| %s | skipped: %s | |" % (name, why))
    parts.append("")
    names = [a.name for a in allocs]
    if "hakmem" in names and len(names) > 1 and args.confirm > 0:
        parts.append(confirm_markdown(confirmed, len(keys), "programs", above, args.confirm,
                                      key_head=("program",), key_cells=lambda key: [key[0]]))
    md_path = os.path.join(args.out, "programs.md")
    with open(md_path, "w") as f:
        f.write("\n".join(parts))
    print("\n".join(parts[4:7]))
    if confirmed:
        print(parts[-1])
    print("all tables: %s\nevery run:  %s" % (md_path, csv_path))
    for st, cmd, tail in failures:
        print("FAILED (%s): %s%s" % (st, cmd, "\n    " + tail if tail else ""),
              file=sys.stderr)
    return 1 if failures else 0


def program_instructions(prog, alloc, tmp, timeout):
    """One run of a program under callgrind (every process it starts, every
    thread of theirs): (status, total Ir, Ir in the allocator's own library
    or None for glibc, sha256 of its output (output_sha), Ir of
    hakmem's controller threads).  The controller is counted apart: it
    wakes on the wall clock, which runs ~50 times faster against the
    program under valgrind, so its share would be ~50 times too large."""
    import glob
    clear_outputs(prog)
    for f in glob.glob(os.path.join(tmp, "cg.*")):
        os.remove(f)
    env = alloc.env()
    env.update(prog.env)
    env["LC_ALL"] = "C"
    cmd = ["valgrind", "--tool=callgrind", "--trace-children=yes",
           "--separate-threads=yes",
           "--callgrind-out-file=" + os.path.join(tmp, "cg.%p")] + prog.argv
    out_path = os.path.join(tmp, "stdout")
    with open(prog.stdin or os.devnull, "rb") as inp, open(out_path, "wb") as out:
        p = subprocess.run(cmd, stdin=inp, stdout=out, stderr=subprocess.PIPE, env=env,
                           cwd=prog.cwd, timeout=timeout)
    err = p.stderr.decode(errors="replace")
    if p.returncode or "cannot be preloaded" in err:
        return "exit:%d" % p.returncode, 0, None, "", 0
    own = os.path.basename(os.path.realpath(alloc.lib)) if alloc.lib else None
    total = mine = background = 0
    for f in glob.glob(os.path.join(tmp, "cg.*")):
        t, m = callgrind_costs(f, own or "")
        with open(f) as fh:  # the controller's thread starts there (src/os.c)
            controller = re.search(r"^fn=\(\d+\) os_side_entry$", fh.read(), re.M)
        if controller:
            background += t
        else:
            total, mine = total + t, mine + m
    return "ok", total, (mine if own else None), output_sha(out_path, prog), background


def programs_instructions(args, allocs):
    """`--programs --instructions`: each program's instructions under each
    allocator, counted by callgrind: exact and repeatable where wall times
    on a shared machine move by 5-15 % from run to run.  They count work,
    not cache misses or page faults, so they say how much of a program
    the allocator's own code is and whether it makes the program execute
    more, not the whole of its time."""
    if not shutil.which("valgrind"):
        print("valgrind not found (install: apt-get install valgrind)",
              file=sys.stderr)
        return 77
    t_start = time.time()
    os.makedirs(args.out, exist_ok=True)
    scale = args.scale if args.scale_given else 0.1  # callgrind: ~50 x slower
    progs, _ = pick_programs(args, scale)
    tmp = os.path.join(args.out, "programs-work", "callgrind")
    os.makedirs(tmp, exist_ok=True)
    rows, med, failed = [], {}, []
    progress = Progress(len(progs) * (1 + len(allocs)))
    for p in progs:
        key = (p.name, "")
        med[key] = {}
        progress.show("reference  %s  system" % p.name)
        st, _, _, ref, tail = run_program(p, Alloc("system", None), tmp, args.timeout, None)
        progress.step()
        if st != "ok":
            failed.append("%s fails under glibc (%s): %s" % (p.name, st, tail))
            progress.total -= len(allocs)
            continue
        for a in allocs:
            progress.show("callgrind  %s  %s" % (p.name, a.name))
            try:
                st, total, mine, sha, bg = program_instructions(p, a, tmp, args.timeout)
            except subprocess.TimeoutExpired:
                st, total, mine, sha, bg = "timeout", 0, None, "", 0
            progress.step()
            if st == "ok" and sha != ref:
                st = "output differs"
            rows.append([p.name, a.name, st, total, "" if mine is None else mine, bg, sha])
            med[key][a.name] = {"status": st, "ir": total / 1e6,
                                "own": None if mine is None else mine / 1e6}
            if st != "ok":
                failed.append("%s under %s: %s" % (p.name, a.name, st))
    progress.finish()
    with open(os.path.join(args.out, "programs-instructions.csv"), "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["program", "allocator", "status", "ir", "ir_allocator",
                      "ir_controller", "output_sha256"])
        out.writerows(rows)
    keys = [(p.name, "") for p in progs if p.name in {r[0] for r in rows}]
    cells = lambda key: [key[0]]
    names = [a.name for a in allocs]
    share = ["### The allocator's own instructions (millions, and % of the program's)", "",
             "| program | " + " | ".join(n for n in names if n != "system") + " |",
             "|---|" + "---:|" * len([n for n in names if n != "system"])]
    for key in keys:
        line = [key[0]]
        for n in names:
            if n == "system":
                continue
            m = med[key].get(n)
            line.append("%.1f (%.1f %%)" % (m["own"], 100 * m["own"] / m["ir"])
                        if m and m["status"] == "ok" and m["own"] is not None and m["ir"] else "-")
        share.append("| " + " | ".join(line) + " |")
    info = ("Instructions (callgrind Ir, every process and thread) of one run "
            "per program and allocator, input scale %g; output (stdout and files "
            "written) compared with a glibc run's.  glibc's malloc lies in libc "
            "with everything else, so its own share is not shown.  hakmem's "
            "controller thread is not counted (it wakes on the wall clock, ~50 "
            "times faster against the program under valgrind): %s.  %s; %s; the "
            "whole run took %.0f s." % (
                scale, ", ".join("%s %.1f M" % (r[0], r[5] / 1e6) for r in rows if r[5])
                or "none ran", machine_info(), time.strftime("%Y-%m-%d %H:%M"),
                time.time() - t_start))
    parts = ["# hakmem on real programs: instructions", "", info, "",
             "\n".join(["## Summary", ""] + summary(med, keys, allocs, [
                 ("instructions, geomean over the programs", "ir", False)]) + [""]),
             md_table("Instructions (millions)", "ir", "%.1f".__mod__, False, med, keys,
                      allocs, key_head=("program",), key_cells=cells),
             "\n".join(share) + "\n"]
    md_path = os.path.join(args.out, "programs-instructions.md")
    with open(md_path, "w") as f:
        f.write("\n".join(parts))
    print("\n".join(parts[4:]))
    print("all tables: %s" % md_path)
    for msg in failed:
        print("FAILED: %s" % msg, file=sys.stderr)
    return 1 if failed else 0


# ------------------------------------------------------------------- main --

def default_out():
    # In the build tree (the runner sits in the build root): build/bench-results.
    if os.path.exists(os.path.join(HERE, "CMakeCache.txt")):
        return os.path.join(HERE, "bench-results")
    return os.path.abspath("hakmem-bench-results")


def find_bin(args, name="hakmem-bench-work"):
    """hakmem-bench-work (or name): in --bin-dir if given; else the first
    of $HAKMEM_BENCH_BIN_DIR, ./bench beside this script (build tree) and
    ../libexec/hakmem (installed) that has it."""
    dirs = [args.bin_dir] if args.bin_dir else [
        os.environ.get("HAKMEM_BENCH_BIN_DIR"), os.path.join(HERE, "bench"),
        os.path.join(HERE, "..", "libexec", "hakmem")]
    for d in filter(None, dirs):
        path = os.path.join(d, name)
        if os.access(path, os.X_OK):
            return os.path.abspath(path)
    return None


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="hakmem bench",
        description="Compare hakmem with other malloc libraries "
                    "(LD_PRELOAD); see bench/README.md.")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="fewer ops and runs (%d runs, ops x %g): the whole "
                      "suite in a few minutes" % MODES["quick"])
    mode.add_argument("--full", action="store_true",
                      help="the default: %d runs, full op counts" % MODES["full"][0])
    ap.add_argument("--out", help="output folder (default: %s)" % default_out())
    ap.add_argument("--alloc", default="all",
                    help="comma list of system, jemalloc, mimalloc, tcmalloc, "
                    "hakmem, NAME=PATH for any other library, and all (the "
                    "five, plus $%s: NAME=PATH,...) (default all)" % EXTRA_ENV)
    ap.add_argument("--workloads", default="all", help="comma list (default all)")
    ap.add_argument("--runs", type=int, help="runs per allocator and workload")
    ap.add_argument("--threads",
                    help="thread counts for the workloads that take threads "
                    "(default %s; --quick: %s)" % (
                        ",".join(map(str, DEFAULT_THREADS["full"])),
                        ",".join(map(str, DEFAULT_THREADS["quick"]))))
    ap.add_argument("--programs", action="store_true",
                    help="run real programs (python3, gawk, sort, perl, git, "
                    "jq, gcc, xz, gzip) under each allocator instead: time, "
                    "peak RSS, output checked against glibc's")
    ap.add_argument("--repo", help="hakmem's source tree, for --programs "
                    "(default: found from the build tree)")
    ap.add_argument("--sweep", action="store_true",
                    help="hakmem under every arm of the learner's knobs, its default "
                    "policy and learning (sweep.csv, sweep.md; see hakmem_sweep.py)")
    ap.add_argument("--instructions", action="store_true",
                    help="count instructions per malloc+free pair with "
                    "callgrind (tiny-hot, random-mixed); with --programs, each "
                    "program's instructions (input scale 0.1 unless --ops-scale)")
    ap.add_argument("--lib", default=os.environ.get("HAKMEM_LIB"),
                    help="libhakmem.so (default $HAKMEM_LIB, else beside this script)")
    ap.add_argument("--bin-dir",
                    help="folder of hakmem-bench-work (default "
                    "$HAKMEM_BENCH_BIN_DIR, ./bench beside this script or "
                    "../libexec/hakmem)")
    ap.add_argument("--ops-scale", type=float, dest="scale",
                    help="multiply every workload's op count by this")
    ap.add_argument("--timeout", type=float, default=600,
                    help="seconds before one run is given up (default %(default)s)")
    ap.add_argument("--confirm", type=int,
                    help="rounds to run again each row where hakmem's time is above "
                    "--confirm-above x the best other allocator's, hakmem and "
                    "that allocator alone (default %d; --quick: %d; --programs: %d; "
                    "0: none)" % (CONFIRM_RUNS["full"], CONFIRM_RUNS["quick"],
                                  PROGRAMS_CONFIRM_RUNS))
    ap.add_argument("--confirm-above", type=float,
                    help="the line for --confirm (default %g; --programs: %g)" % (
                        CONFIRM_ABOVE, PROGRAMS_CONFIRM_ABOVE))
    ap.add_argument("--list", action="store_true", help="list the workloads")
    if argv and argv[0] == "bench":  # called as `hakmem_bench.py bench ...`
        argv = argv[1:]
    args = ap.parse_args(argv)
    runs, scale = MODES["quick" if args.quick else "full"]
    args.scale_given = args.scale is not None
    args.runs = runs if args.runs is None else args.runs
    if args.confirm is None:
        args.confirm = PROGRAMS_CONFIRM_RUNS if args.programs else \
            CONFIRM_RUNS["quick" if args.quick else "full"]
    if args.confirm < 0 or (args.confirm_above is not None and args.confirm_above <= 0):
        ap.error("--confirm must be at least 0 and --confirm-above above 0")
    args.scale = scale if args.scale is None else args.scale
    args.out = os.path.abspath(args.out or default_out())
    if args.threads is None:
        args.threads = ",".join(map(str, DEFAULT_THREADS[
            "quick" if args.quick else "full"]))
    try:
        args.threads = [int(t) for t in args.threads.split(",") if t.strip()]
    except ValueError:
        ap.error("--threads wants a comma list of numbers")
    if args.runs < 1 or not args.threads or min(args.threads) < 1:
        ap.error("--runs and --threads must be at least 1")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    bin_path = find_bin(args)
    if not bin_path and not args.programs:
        die("hakmem-bench-work not found; build the project first, or give "
            "--bin-dir")
    if args.list:
        for name, ops, takes, about in list_workloads(bin_path):
            print("%-18s %s%s" % (name, about, " [threads]" if takes else ""))
        return 0
    allocs, skipped = find_allocators(
        args.alloc, args.lib or os.path.join(HERE, "libhakmem.so"))
    for name, hint in skipped:
        print("skipping %s: %s" % (name, hint), file=sys.stderr)
    if not allocs:
        die("no allocator to run")
    if args.sweep:
        import hakmem_sweep
        return hakmem_sweep.sweep(args, bin_path, args.lib or os.path.join(HERE, "libhakmem.so"), HERE)
    if args.instructions and args.programs:
        return programs_instructions(args, allocs)
    if args.instructions:
        return instructions(args, bin_path, allocs)
    if args.programs:
        return programs(args, allocs)
    return bench(args, bin_path, allocs)


if __name__ == "__main__":
    sys.exit(main())
