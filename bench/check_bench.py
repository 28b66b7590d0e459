#!/usr/bin/env python3
"""ctest checks of the benchmark suite (bench/CMakeLists.txt registers them).

  check_bench.py --runner PY --bin-dir DIR [--lib SO] work --workload W --alloc A
      one workload in its smallest form: exit 0, one well-formed result line
  check_bench.py ... runner --alloc LIST
      a tiny `hakmem bench` run: results.csv, results.md and chart.svg
  check_bench.py ... instructions --alloc LIST
      a tiny `hakmem bench --instructions` run (exit 77 = skip: no valgrind)
  check_bench.py ... program_instructions --alloc LIST
      a tiny `hakmem bench --programs --instructions` run (perl and sort,
      small inputs): every count positive, hakmem's own share counted and
      below the whole, outputs the same as glibc's (77 = skip: no valgrind)
  check_bench.py ... sweep --alloc hakmem
      a tiny `hakmem bench --sweep` run: every arm but the default's own
      values screened, the best arms confirmed with fresh seeds, sweep.md
  check_bench.py ... programs --alloc LIST
      a tiny `hakmem bench --programs` run (small inputs, one run each):
      programs.csv and programs.md, every run ok and its output the same

Uses the runner's own parser and allocator table, so the checks follow the
format instead of restating it.  No timing thresholds.
"""
import argparse
import csv
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

TEST_SCALE = 0.002  # of the workloads' default op counts: a smoke run


def load_runner(path, name="hakmem_bench"):
    """The runner (or a module beside it, which may import the runner)."""
    if os.path.dirname(path) not in sys.path:
        sys.path.insert(0, os.path.dirname(path))
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def check_fields(f, workload, threads, ops, whole_rounds=False):
    """whole_rounds: the workload may round ops up to whole rounds of
    threads (thread-churn), so ops may be more than asked for."""
    got_ops = f["ops"] if not whole_rounds or f["ops"] < ops else ops
    if (f["workload"], f["threads"], got_ops) != (workload, threads, ops):
        fail("line is for %s/%s/%s" % (f["workload"], f["threads"], f["ops"]))
    if not (f["secs"] > 0 and f["ops_per_sec"] > 0):
        fail("no time or throughput")
    if not 0 <= f["p50_ns"] <= f["p95_ns"] <= f["p99_ns"]:
        fail("percentiles out of order")
    if f["samples"] == 0 and ops >= 64 * threads:
        fail("no latency samples")
    if not (f["peak_rss_kb"] > 0 and 0 < f["final_rss_kb"] <= f["peak_rss_kb"]):
        fail("RSS figures missing or inconsistent")
    if f["minflt"] < 0 or f["live_kb"] < 0:
        fail("negative counters")


def cmd_work(hb, args, bin_path):
    allocs, skipped = hb.find_allocators(args.alloc, args.lib)
    if skipped:
        fail("allocator %s: %s" % skipped[0])
    wl = {w[0]: w for w in hb.list_workloads(bin_path)}
    if args.workload not in wl:
        fail("%s is not in --list" % args.workload)
    _, default_ops, takes_threads, _ = wl[args.workload]
    ops = max(4, int(default_ops * TEST_SCALE))
    # Threaded workloads: 2 threads, then 1 and 32 (oversubscribed) too.
    for threads in [2, 1, 32] if takes_threads else [1]:
        status, fields, err = hb.run_workload(bin_path, allocs[0], args.workload,
                                              threads, ops, 1, 300)
        print(hb.command_line(allocs[0], bin_path, args.workload, threads, ops, 1))
        if status != "ok":
            fail("%s\n%s" % (status, err))
        print(" ".join("%s=%s" % kv for kv in fields.items()))
        check_fields(fields, args.workload, threads, ops, whole_rounds=threads != 2)
    print("ok")


def run_runner(args, extra):
    """Runs the runner as the `hakmem` script does: `bench` first, library
    and binaries passed in the environment."""
    env = dict(os.environ, HAKMEM_BENCH_BIN_DIR=args.bin_dir)
    if args.lib:
        env["HAKMEM_LIB"] = args.lib
    cmd = [sys.executable, args.runner, "bench", "--alloc", args.alloc] + extra
    print(" ".join(cmd))
    return subprocess.run(cmd, env=env).returncode


def check_md_table(lines, start, allocs):
    """The table after the heading at lines[start]: same width in every row,
    a column per allocator, and ratio columns (to each other allocator and
    to the best one) + geomean when hakmem is compared with others."""
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    if len(rows) < 3:
        fail("table '%s' has no rows" % lines[start])
    if any(len(r) != len(rows[0]) for r in rows):
        fail("table '%s' has ragged rows" % lines[start])
    for a in allocs:
        if a not in rows[0]:
            fail("table '%s' has no column %s" % (lines[start], a))
    others = [a for a in allocs if a != "hakmem"]
    if "hakmem" in allocs and others:
        if any("hakmem/" + o not in rows[0] for o in others + ["best"]) \
                or "geomean" not in rows[-1][0]:
            fail("table '%s' lacks ratios or geomean" % lines[start])


def cmd_runner(hb, args, bin_path):
    # HAKMEM_BENCH_EXTRA adds to "all" (a missing library is skipped).
    usable, skipped = hb.find_allocators("all", args.lib, extra="extra=/nonexistent.so")
    if [s[0] for s in skipped if s[0] == "extra"] != ["extra"]:
        fail("find_allocators ignores the extra allocators: %s" % skipped)
    allocs, threads, runs = args.alloc.split(","), [1, 2], 2
    with tempfile.TemporaryDirectory() as out:
        rc = run_runner(args, ["--out", out, "--runs", str(runs), "--ops-scale",
                               str(TEST_SCALE), "--threads",
                               ",".join(map(str, threads))])
        if rc:
            fail("runner exited %d" % rc)
        configs = sum(len(threads) if takes else 1
                      for _, _, takes, _ in hb.list_workloads(bin_path))
        with open(os.path.join(out, "results.csv")) as f:
            reader = csv.DictReader(f)
            if reader.fieldnames != hb.CSV_COLUMNS:
                fail("CSV columns %s" % reader.fieldnames)
            rows = list(reader)
        if len(rows) != runs * configs * len(allocs):
            fail("CSV has %d rows, expected %d"
                 % (len(rows), runs * configs * len(allocs)))
        for r in rows:
            if r["status"] != "ok":
                fail("run failed: %s" % r)
            float(r["ops_per_sec"]), int(r["peak_rss_kb"])
        with open(os.path.join(out, "results.md")) as f:
            lines = f.read().splitlines()
        heads = [i for i, l in enumerate(lines) if l.startswith("### ")]
        if len(heads) < 2:
            fail("results.md has %d tables" % len(heads))
        for i in heads:
            check_md_table(lines, i, allocs)
        svg = ET.parse(os.path.join(out, "chart.svg")).getroot()
        if svg.tag != "{http://www.w3.org/2000/svg}svg":
            fail("chart.svg root is %s" % svg.tag)
        bars = [r for r in svg.iter("{http://www.w3.org/2000/svg}rect")
                if r.find("{http://www.w3.org/2000/svg}title") is not None]
        if len(bars) != 2 * configs * len(allocs):  # two panels
            fail("chart.svg has %d bars" % len(bars))
    if "hakmem" in allocs and len(allocs) > 1:
        check_confirm(hb, args, allocs)
    print("ok")


def check_confirm(hb, args, allocs):
    """Rows above the line are run again: which rows (on made-up medians),
    then a run whose line (0.01 x) takes every row."""
    ok = lambda v: {"status": "ok", "ops_per_sec": v}
    med = {("a", 1): {"hakmem": ok(100.0), "x": ok(130.0), "y": ok(90.0)},
           ("b", 2): {"hakmem": ok(100.0), "x": ok(120.0), "y": {"status": "timeout"}},
           ("c", 1): {"hakmem": {"status": "timeout"}, "x": ok(1e9)}}
    got = hb.rows_above(med, list(med), ["hakmem", "x", "y"], 1.25)
    if [(k, b, round(r, 2)) for k, b, r in got] != [(("a", 1), "x", 1.3)]:
        fail("rows_above picked %s" % got)
    rounds, wls = 2, ["tiny-hot", "larson"]
    with tempfile.TemporaryDirectory() as out:
        rc = run_runner(args, ["--out", out, "--runs", "1", "--ops-scale", str(TEST_SCALE),
                               "--threads", "2", "--workloads", ",".join(wls),
                               "--confirm", str(rounds), "--confirm-above", "0.01"])
        if rc:
            fail("runner with --confirm exited %d" % rc)
        with open(os.path.join(out, "confirm.csv")) as f:
            rows = list(csv.DictReader(f))
        want = {(w, a) for w in wls for a in ("hakmem", [x for x in allocs if x != "hakmem"][0])}
        if len(rows) != rounds * len(want) or {(r["workload"], r["allocator"]) for r in rows} != want \
                or any(r["status"] != "ok" for r in rows):
            fail("confirm.csv: %s" % [(r["workload"], r["allocator"], r["status"]) for r in rows])
        with open(os.path.join(out, "results.md")) as f:
            md = f.read()
        sec = md[md.find("## Rows above"):]
        if md.find("## Rows above") < 0 or any("| %s | " % w not in sec for w in wls):
            fail("results.md has no rows run again:\n" + sec)


def callgrind_rows(args, out, extra, csv_name):
    """Runs a callgrind mode of the runner into out; its CSV's rows.  Exits
    77 (skip) where valgrind is missing."""
    rc = run_runner(args, extra + ["--out", out])
    if rc == 77:
        print("skipped: no valgrind")
        sys.exit(77)
    if rc:
        fail("runner exited %d" % rc)
    with open(os.path.join(out, csv_name)) as f:
        return list(csv.DictReader(f))


def cmd_instructions(hb, args, bin_path):
    with tempfile.TemporaryDirectory() as out:
        rows = callgrind_rows(args, out, ["--instructions", "--ops-scale", "0.05"],
                              "instructions.csv")
        allocs = args.alloc.split(",")
        if len(rows) != len(hb.INSTR_WORKLOADS) * len(allocs):
            fail("instructions.csv has %d rows" % len(rows))
        for r in rows:
            if not (float(r["alloc_per_pair"]) > 0 and float(r["loop_per_pair"]) > 0):
                fail("implausible count: %s" % r)
    print("ok")


def cmd_program_instructions(hb, args, bin_path):
    allocs = args.alloc.split(",")
    with tempfile.TemporaryDirectory() as out:
        rows = callgrind_rows(args, out, ["--programs", "--instructions", "--workloads",
                                          "perl,sort", "--ops-scale", "0.01"],
                              "programs-instructions.csv")
        if len(rows) != 2 * len(allocs):
            fail("programs-instructions.csv has %d rows" % len(rows))
        for r in rows:
            if r["status"] != "ok" or int(r["ir"]) <= 0:
                fail("run failed: %s" % r)
            own = r["ir_allocator"]
            if (r["allocator"] == "system") != (own == ""):
                fail("allocator's own count wrongly present or missing: %s" % r)
            # perl's hash churn calls malloc: its library runs some code
            if own and not (0 < int(own) < int(r["ir"]) or r["program"] == "sort"):
                fail("implausible own count: %s" % r)
            if r["allocator"] != "hakmem" and int(r["ir_controller"]):
                fail("a controller thread counted apart for another library: %s" % r)
        with open(os.path.join(out, "programs-instructions.md")) as f:
            lines = f.read().splitlines()
        heads = [i for i, l in enumerate(lines) if l.startswith("### ")]
        if len(heads) != 2:
            fail("programs-instructions.md has %d tables" % len(heads))
        check_md_table(lines, heads[0], allocs)
    print("ok")


def num(text):
    """A figure as hb.human prints it: 1.5k, 60M."""
    mult = {"k": 1e3, "M": 1e6, "G": 1e9}.get(text[-1], 1)
    return float(text.rstrip("kMG")) * mult


def cmd_sweep(hb, args, bin_path):
    sw = load_runner(os.path.join(os.path.dirname(args.runner), "hakmem_sweep.py"), "hakmem_sweep")
    here = os.path.dirname(args.runner)
    knobs, defaults = sw.read_knobs(here), sw.read_defaults(here)
    workloads = ["json", "realloc-grow"]
    with tempfile.TemporaryDirectory() as out:
        rc = run_runner(args, ["--sweep", "--workloads", ",".join(workloads), "--runs", "1",
                               "--out", out, "--ops-scale", str(TEST_SCALE)])
        if rc:
            fail("sweep exited %d" % rc)
        def rows_of(name):
            with open(os.path.join(out, name)) as f:
                reader = csv.DictReader(f)
                if reader.fieldnames != ["workload", "policy", "ops_per_s", "peak_rss_kb", "minflt", "cost"]:
                    fail("%s columns %s" % (name, reader.fieldnames))
                return list(reader)
        allrows, confirm = rows_of("sweep.csv"), rows_of("confirm.csv")
        screen = allrows[:len(allrows) - len(confirm)]
        if allrows[len(screen):] != confirm:
            fail("sweep.csv does not end with the confirmation runs")
        # Screening: default, learned, tuned (the policy a learning run of
        # the workload wrote) and every knob value but the default's.
        want = {"default", "learned", "tuned"}
        for name, env, values in knobs:
            if env not in defaults:
                fail("no default for %s" % env)
            want |= {"fixed:%s=%s" % (name, v) for v in values if float(v) != defaults[env]}
        listed = [p.name for p in sw.policies(knobs, defaults, "")]
        for w in workloads:
            got = [r["policy"] for r in screen if r["workload"] == w]
            if sorted(got) != sorted(want):
                fail("%s screened %s, expected %s" % (w, sorted(got), sorted(want)))
            # Shuffled, not in the list's order (learned was always behind the same arms).
            if got == [p for p in listed if p in got]:
                fail("%s screened in the fixed order %s" % (w, got))
            # Confirmation: the screening's best arms, default, learned and tuned,
            # each CONFIRM runs, none with a screening seed.
            med = {r["policy"]: float(r["cost"]) for r in screen if r["workload"] == w}
            costs = sorted(c for p, c in med.items() if p.startswith("fixed:"))
            cw = [r for r in confirm if r["workload"] == w]
            pols = {r["policy"] for r in cw}
            fixed = pols - {"default", "learned", "tuned"}
            if len(pols) != sw.CONFIRM_ARMS + 3 or \
                    any(med[p] > costs[sw.CONFIRM_ARMS - 1] + 1e-3 for p in fixed):
                fail("%s confirmed %s, not the best screened arms %s" % (w, sorted(pols), costs[:3]))
            if len(cw) != len(pols) * sw.CONFIRM_RUNS:
                fail("%s: %d confirmation runs" % (w, len(cw)))
            for r in cw + screen:
                if not (float(r["ops_per_s"]) > 0 and float(r["cost"]) > 0):
                    fail("implausible run: %s" % r)
        with open(os.path.join(out, "sweep.md")) as f:
            md = f.read()
        for w in workloads:
            row = [l for l in md.splitlines() if l.startswith("| %s |" % w)]
            if not row or row[0].split("|")[8].strip() in ("", "-"):
                fail("sweep.md has no row for %s with a tuned cost: %s" % (w, row))
            # (A learning run too short to learn writes none: its `tuned`
            # is the default, and sweep.md says so.)
            if not os.path.exists(os.path.join(out, "tuned-%s.policy" % w)) and \
                    "%s: nothing learned" % w not in md:
                fail("no tuned-%s.policy written" % w)
            # Each ratio with its bootstrap interval, the ratio inside it.
            cis = re.findall(r"([0-9.]+) \[([0-9.]+), ([0-9.]+)\]", row[0])
            if len(cis) != 4 or any(not float(lo) <= float(r) <= float(hi) for r, lo, hi in cis):
                fail("sweep.md: ratios without their intervals for %s: %s" % (w, row[0]))
        # Confirmation runs at least as long as the screening's, per workload.
        lens = re.search(r"Ops per run, screening / confirmation: (.*)\.", md)
        for w in workloads:
            m = lens and re.search(r"\b%s ([0-9.]+[kMG]?) / ([0-9.]+[kMG]?)" % re.escape(w), lens.group(1))
            if not m or num(m.group(2)) < num(m.group(1)):
                fail("sweep.md: no confirmation length for %s" % w)
    # The interval itself: equal samples give a point, disjoint ones stay apart.
    if sw.ratio_ci([2.0] * 7, [1.0] * 7) != (2.0, 2.0):
        fail("ratio_ci of constant samples: %s" % (sw.ratio_ci([2.0] * 7, [1.0] * 7),))
    lo, hi = sw.ratio_ci([1.9, 2.0, 2.1] * 3, [0.9, 1.0, 1.1] * 3)
    if not (1.7 < lo <= 2.0 <= hi < 2.4):
        fail("ratio_ci of 2:1 samples: [%.3f, %.3f]" % (lo, hi))
    print("ok")


def cmd_programs(hb, args, bin_path):
    allocs = args.alloc.split(",")
    with tempfile.TemporaryDirectory() as out:
        # Every row run again once (a line of 0.01 x takes them all).
        rc = run_runner(args, ["--programs", "--out", out, "--runs", "1",
                               "--ops-scale", "0.02", "--confirm", "1",
                               "--confirm-above", "0.01"])
        if rc:
            fail("runner exited %d" % rc)
        with open(os.path.join(out, "programs.csv")) as f:
            reader = csv.DictReader(f)
            if reader.fieldnames != hb.PROGRAM_CSV:
                fail("CSV columns %s" % reader.fieldnames)
            rows = list(reader)
        progs = sorted({r["program"] for r in rows})
        if not progs or len(rows) != len(progs) * len(allocs):
            fail("programs.csv has %d rows for %d programs" % (len(rows), len(progs)))
        for r in rows:
            if r["status"] != "ok" or float(r["secs"]) <= 0 \
                    or int(r["peak_rss_kb"]) <= 0:
                fail("run failed: %s" % r)
        for p in progs:
            if len({r["output_sha256"] for r in rows if r["program"] == p}) != 1:
                fail("%s: outputs differ" % p)
        with open(os.path.join(out, "programs.md")) as f:
            lines = f.read().splitlines()
        heads = [i for i, l in enumerate(lines) if l.startswith("### ")]
        if len(heads) < 3:
            fail("programs.md has %d tables" % len(heads))
        for i in heads[:2]:
            check_md_table(lines, i, allocs)
        if "hakmem" in allocs and len(allocs) > 1:
            with open(os.path.join(out, "programs-confirm.csv")) as f:
                again = list(csv.DictReader(f))
            pairs = {p: sorted(r["allocator"] for r in again if r["program"] == p) for p in progs}
            if any(len(v) != 2 or "hakmem" not in v for v in pairs.values()) \
                    or len(again) != 2 * len(progs) or any(r["status"] != "ok" for r in again):
                fail("programs-confirm.csv: %s" % [
                    (r["program"], r["allocator"], r["status"]) for r in again])
            sec = "\n".join(lines[lines.index(next(l for l in lines if l.startswith("## Rows above"))):])
            if any("| %s | " % p not in sec for p in progs):
                fail("programs.md has no rows run again:\n" + sec)
        print("programs run: %s" % ", ".join(progs))
    print("ok")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runner", required=True)
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--lib")
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("work")
    w.add_argument("--workload", required=True)
    w.add_argument("--alloc", required=True)
    for name in ("runner", "instructions", "programs", "program_instructions", "sweep"):
        sub.add_parser(name).add_argument("--alloc", required=True)
    args = ap.parse_args()
    hb = load_runner(args.runner)
    bin_path = os.path.join(args.bin_dir, "hakmem-bench-work")
    {"work": cmd_work, "runner": cmd_runner, "instructions": cmd_instructions,
     "programs": cmd_programs, "program_instructions": cmd_program_instructions,
     "sweep": cmd_sweep}[args.cmd](hb, args, bin_path)


if __name__ == "__main__":
    main()
