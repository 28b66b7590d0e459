#!/usr/bin/env python3
"""hakmem bench: runs hakmem's benchmark workloads under several allocators.

    hakmem bench [--quick] [--out DIR] [--alloc LIST] [--workloads LIST]
                 [--runs N] [--threads LIST] [--instructions]

Each allocator is put in with LD_PRELOAD (glibc: no preload), so any malloc
library can be compared.  Runs are interleaved (A B C ... A B C) so that
noise on a shared machine falls on all allocators alike, and medians are
reported.  Writes results.csv (every run), results.md (median tables, with
hakmem's ratio to each other allocator and their geometric mean) and
chart.svg.  --instructions counts instructions per malloc+free pair with
callgrind instead.  See bench/README.md.
"""
import argparse
import csv
import math
import os
import platform
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
DEFAULT_THREADS = [1, 2, 8]
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
    def __init__(self, name, lib):
        self.name, self.lib = name, lib  # lib None: glibc, nothing preloaded

    def env(self):
        env = dict(os.environ)
        env.pop("LD_PRELOAD", None)
        if self.lib:
            env["LD_PRELOAD"] = self.lib
        return env

    def prefix(self):
        """How a shell command line says it, for messages."""
        return "LD_PRELOAD=%s " % self.lib if self.lib else ""


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


def find_allocators(spec, hakmem_lib):
    """Allocators named in spec ("all" or a comma list; NAME=PATH adds any
    library).  Returns (usable, skipped-with-hint)."""
    known = {n: (lib, pkg) for n, lib, pkg in KNOWN_ALLOCATORS}
    names = [n for n, _, _ in KNOWN_ALLOCATORS] if spec == "all" else \
        [s.strip() for s in spec.split(",") if s.strip()]
    usable, skipped = [], []
    for name in names:
        if "=" in name:
            name, lib = name.split("=", 1)
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
            usable.append(Alloc(name, lib and os.path.abspath(lib)))
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


def md_table(title, field, fmt, higher_better, med, keys, allocs, label=None):
    """One markdown table of a metric's medians: a column per allocator, then
    hakmem's ratio to each other one, with their geometric mean."""
    names = [a.name for a in allocs]
    others = [n for n in names if n != "hakmem"] if "hakmem" in names else []
    better = "higher" if higher_better else "lower"
    lines = ["### " + title, ""]
    if others:
        lines += ["Ratio = hakmem / other: %s is better for hakmem." % better, ""]
    head = ["workload", "threads"] + names + ["hakmem/" + n for n in others]
    lines += ["| " + " | ".join(head) + " |",
              "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    ratios = {n: [] for n in others}

    def value(key, n):
        m = med[key].get(n)
        return m[field] if m and m["status"] == "ok" else None

    for key in keys:
        cells = [label(key) if label else key[0], str(key[1])]
        for n in names:
            v, m = value(key, n), med[key].get(n)
            cells.append(fmt(v) if v is not None else (m["status"] if m else "-"))
        h = value(key, "hakmem")
        for n in others:
            v = value(key, n)
            r = h / v if h is not None and v else None
            ratios[n].append(r)
            cells.append("%.2f" % r if r else "-")
        lines.append("| " + " | ".join(cells) + " |")
    if others:
        gm = [geomean(ratios[n]) for n in others]
        cells = ["**geomean**", ""] + [""] * len(names) + [
            "**%.2f**" % g if g else "-" for g in gm]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_markdown(path, med, keys, allocs, info):
    def live_label(key):
        lives = [m.get("live_kb", 0) for m in med[key].values()]
        live = max(lives) if lives else 0
        return key[0] + (" (live %s MiB)" % mib(live) if live else "")

    parts = ["# hakmem benchmark results", "", info, "",
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
            for name, threads, ops in configs:
                for a in allocs:  # interleaved: noise hits all alike
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
            "allocators interleaved.  %s; %s." % (
                mode, args.runs, args.scale, machine_info(),
                time.strftime("%Y-%m-%d %H:%M")))
    md_path = os.path.join(args.out, "results.md")
    parts = write_markdown(md_path, med, keys, allocs, info)
    write_svg(os.path.join(args.out, "chart.svg"), med, keys, allocs,
              "hakmem bench (%s mode, median of %d)" % (mode, args.runs))
    print("\n".join(parts[4:6]))  # the headline: throughput and peak RSS
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
    """(total Ir, Ir in the workload binary itself) of one run."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
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
             "per pair.  Method: (Ir of a run of N ops - Ir of a run of N0 "
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


# ------------------------------------------------------------------- main --

def default_out():
    # In the build tree (the runner sits in the build root): build/bench-results.
    if os.path.exists(os.path.join(HERE, "CMakeCache.txt")):
        return os.path.join(HERE, "bench-results")
    return os.path.abspath("hakmem-bench-results")


def find_bin(args):
    """hakmem-bench-work: in --bin-dir if given; else the first of
    $HAKMEM_BENCH_BIN_DIR, ./bench beside this script (build tree) and
    ../libexec/hakmem (installed) that has it."""
    dirs = [args.bin_dir] if args.bin_dir else [
        os.environ.get("HAKMEM_BENCH_BIN_DIR"), os.path.join(HERE, "bench"),
        os.path.join(HERE, "..", "libexec", "hakmem")]
    for d in filter(None, dirs):
        path = os.path.join(d, "hakmem-bench-work")
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
                    "hakmem, or NAME=PATH for any other library (default all)")
    ap.add_argument("--workloads", default="all", help="comma list (default all)")
    ap.add_argument("--runs", type=int, help="runs per allocator and workload")
    ap.add_argument("--threads", default=",".join(map(str, DEFAULT_THREADS)),
                    help="thread counts for the workloads that take threads "
                    "(default %(default)s)")
    ap.add_argument("--instructions", action="store_true",
                    help="count instructions per malloc+free pair with "
                    "callgrind (tiny-hot, random-mixed)")
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
    ap.add_argument("--list", action="store_true", help="list the workloads")
    if argv and argv[0] == "bench":  # called as `hakmem_bench.py bench ...`
        argv = argv[1:]
    args = ap.parse_args(argv)
    runs, scale = MODES["quick" if args.quick else "full"]
    args.runs = runs if args.runs is None else args.runs
    args.scale = scale if args.scale is None else args.scale
    args.out = os.path.abspath(args.out or default_out())
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
    if not bin_path:
        die("hakmem-bench-work not found; build the project first, or give "
            "--bin-dir")
    if args.list:
        for name, ops, takes, about in list_workloads(bin_path):
            print("%-13s %s%s" % (name, about, " [threads]" if takes else ""))
        return 0
    allocs, skipped = find_allocators(
        args.alloc, args.lib or os.path.join(HERE, "libhakmem.so"))
    for name, hint in skipped:
        print("skipping %s: %s" % (name, hint), file=sys.stderr)
    if not allocs:
        die("no allocator to run")
    if args.instructions:
        return instructions(args, bin_path, allocs)
    return bench(args, bin_path, allocs)


if __name__ == "__main__":
    sys.exit(main())
