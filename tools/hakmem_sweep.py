#!/usr/bin/env python3
"""hakmem bench --sweep: every arm of the learner's knobs, one at a time.

    hakmem bench --sweep [--quick] [--workloads LIST] [--runs N] [--out DIR]

Each workload runs under the shipped default policy (HAKMEM_MODE=fast:
frozen, nothing learned), under every step of every knob's ladder with the
other knobs at their defaults (a coordinate sweep: `fixed:knob=value`), and
under HAKMEM_MODE=learning (`learned`: the learner starts from the defaults
and tunes while the workload runs), and under the policy a learner wrote
for that workload (`tuned`: HAKMEM_MODE=fast with HAKMEM_POLICY_FILE, the
file from one learning run of the workload made TUNE_SECS long first, as
`hakmem tune` makes one).  Runs are interleaved, the same seed for every
policy within a run, in an order shuffled per run and workload.

Why both: most workloads run for well under a second, and a learner that
starts at 50 ms and needs 1-2 s of 50 ms windows to converge spends such a
run exploring, so `learned` measures what learning costs in a short run
and `tuned` what it found.

The cost of a run (lower is better) is the learner's formula with the run's
own figures:  cost = ns per op + W x peak RSS in MiB,  W being
HAKMEM_LEARN_MEMORY_WEIGHT (its default unless set in the environment).
The time per op includes the page faults' time; the learner, which has no
clock on the fast paths, estimates the same time from page faults, kernel
calls and slow-path events (docs/learning.md).

The best of ~25 arms, each measured a few times on a noisy machine, is
biased low (the winner's curse: the minimum of noisy samples sits below
every arm's true cost, the default's own value included).  So the sweep has
two passes: the screening pass runs every arm, and the confirmation pass
runs the screening's best CONFIRM_ARMS fixed arms, the default, learned and
tuned again, interleaved, with fresh seeds; the comparison is made on the
confirmation runs alone.  An arm equal to the default policy (a knob at its
default value) is not run twice: it is `default`.

A confirmation run lasts at least CONFIRM_SECS of the workload's own time
under the default policy (more ops than the screening's where the
workload is shorter): `learned` starts from nothing, and its first FROZEN
comes after 1-3 s, so in the 0.02-0.3 s most of these workloads take at
their default length it only measured what the first exploring windows
cost.  Every policy of a workload runs the same ops, so their costs per op
compare.

Writes sweep.csv (workload, policy, ops_per_s, peak_rss_kb, minflt, cost:
one row per run, both passes), confirm.csv (the confirmation runs alone)
and sweep.md (the confirmation's medians; per workload the best fixed arm,
the default and the learned policy, and how they compare; then every
arm's screening median).
"""
import csv
import json
import os
import random
import statistics
import subprocess
import sys
import time

import hakmem_bench as hb

# Workloads whose best policy is not the default one, or changes while they
# run, and that run long enough (a few seconds) for the learner to matter.
DEFAULT_WORKLOADS = ["phase-change", "big-buffers", "big-churn", "large-ws", "mixed",
                     "realloc-grow", "espresso", "json"]
DEFAULT_WEIGHT = 0.05
CONFIRM_ARMS = 3      # the screening's best fixed arms run again ...
CONFIRM_RUNS = 7      # ... this many times (at least), with the default and learned
SLOW_FACTOR = 20      # a fixed arm this many times slower than the default is stopped ...
SLOW_FLOOR_SECS = 10  # ... but never before this (short runs are noisy)
CONFIRM_SEED = 1001   # the confirmation's seeds: not the screening's
TUNE_SECS = 6.0       # the learning run that writes a workload's `tuned` policy lasts this long
CONFIRM_SECS = {False: 4.0, True: 1.5}  # a confirmation run lasts at least this long (--quick: True)


def parse_size(text):
    """An option's default as hakmem-options prints it (8, 2M, 1.5)."""
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if text and text[-1] in mult:
        return float(text[:-1]) * mult[text[-1]]
    return float(text)


def options_tool(here, args, what):
    """The output of `hakmem-options ARGS` (beside the runner); dies on failure."""
    tool = os.path.join(here, "hakmem-options")
    try:
        return subprocess.run([tool] + args, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        hb.die("sweep: cannot list the %s with %s: %s" % (what, tool, e))


def read_defaults(here):
    """{variable: default value} from `hakmem-options`."""
    defaults = {}
    for line in options_tool(here, [], "options").splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].startswith("HAKMEM_"):
            try:
                defaults[parts[0]] = parse_size(parts[2])
            except ValueError:
                pass
    return defaults


def read_knobs(here):
    """[(name, env, [values...])] from `hakmem-options --knobs`."""
    knobs = []
    for line in options_tool(here, ["--knobs"], "knobs").splitlines():
        parts = line.split()
        if len(parts) >= 3:
            knobs.append((parts[0], parts[1], parts[2:]))
    if not knobs:
        hb.die("sweep: hakmem-options --knobs listed no knobs")
    return knobs


class Policy(hb.Alloc):
    """hakmem with a policy given by environment variables."""
    def __init__(self, name, lib, env):
        super().__init__(name, lib)
        self.extra = env

    def env(self):
        e = super().env()
        for k in list(e):
            if k.startswith("HAKMEM_") and k != "HAKMEM_LEARN_MEMORY_WEIGHT":
                del e[k]
        e.update(self.extra)
        return e

    def prefix(self):
        return " ".join("%s=%s" % kv for kv in self.extra.items()) + " " + super().prefix()


def policies(knobs, defaults, lib):
    frozen = {"HAKMEM_MODE": "fast"}  # the shipped defaults, frozen (fast: no learner)
    out = [Policy("default", lib, frozen),
           Policy("learned", lib, {"HAKMEM_MODE": "learning"})]
    for name, env, values in knobs:
        for v in values:
            if env in defaults and abs(float(v) - defaults[env]) <= 1e-9 * max(1.0, defaults[env]):
                continue  # that is the default policy
            out.append(Policy("fixed:%s=%s" % (name, v), lib, dict(frozen, **{env: v})))
    return out


def policy_summary(path):
    """The knobs of a policy file, as `knob=value ...` (its state too)."""
    try:
        with open(path) as f:
            pol = json.load(f)
        return " ".join("%s=%s" % kv for kv in pol.get("knobs", {}).items()) + \
            " (%s)" % pol.get("state", "?")
    except (OSError, ValueError) as e:
        return "unreadable: %s" % e


def cost_of(fields, weight):
    ns_per_op = 1e9 / fields["ops_per_sec"] if fields["ops_per_sec"] > 0 else float("inf")
    return ns_per_op + weight * fields["peak_rss_kb"] / 1024.0


def by_policy(rows):
    med = {}
    for r in rows:
        med.setdefault((r["workload"], r["policy"]), []).append(r)
    return med


def ratio_ci(a, b, n=2000, level=0.90):
    """A bootstrap interval for median(a) / median(b): each policy's runs
    resampled with replacement, n times.  On a shared 2-core machine one
    configuration's runs spread by 10-50 %, so a ratio of medians of 7 runs
    means little without it.  A fixed seed: the same runs, the same
    interval."""
    rng = random.Random(12345)
    rs = sorted(statistics.median(rng.choices(a, k=len(a))) /
                statistics.median(rng.choices(b, k=len(b))) for _ in range(n))
    k = int((1 - level) / 2 * n)
    return rs[k], rs[n - 1 - k]


def write_md(path, screen, confirm, workloads, weight, info):
    med = by_policy(confirm)
    lines = ["# hakmem: learned policy against a coordinate sweep", "",
             "cost = ns per op + %.3g x peak RSS (MiB); lower is better.  The table: medians of "
             "the %d confirmation runs of the screening's best %d fixed arms, the default, "
             "learned and tuned (fresh seeds, each run at least %.3g s of the workload under the "
             "default policy: ops below), and in brackets the 90 %% bootstrap interval of "
             "each ratio; below it, every arm's median over the %d screening runs." % (
                 weight, info["confirm_runs"], CONFIRM_ARMS, info["confirm_secs"], info["runs"]), ""]
    lines += ["| workload | default cost | best fixed arm | its cost | learned cost | "
              "learned / best fixed | learned / default | tuned cost | tuned / best fixed | "
              "tuned / default | default ops/s | learned ops/s | "
              "default peak RSS | learned peak RSS |",
              "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    table = []
    for w in workloads:
        def m(policy, key):
            rs = med.get((w, policy))
            return statistics.median(r[key] for r in rs) if rs else None

        def ratio(p, q):
            lo, hi = ratio_ci([r["cost"] for r in med[(w, p)]], [r["cost"] for r in med[(w, q)]])
            return "%.3f [%.2f, %.2f]" % (m(p, "cost") / m(q, "cost"), lo, hi)
        fixed = sorted({p for (ww, p) in med if ww == w and p.startswith("fixed:")})
        arms = [(m(p, "cost"), p) for p in fixed if m(p, "cost") is not None]
        d, l = m("default", "cost"), m("learned", "cost")
        if d is not None:
            arms.append((d, "default"))
        if not arms or l is None or d is None:
            continue
        best_cost, best = min(arms)
        t = m("tuned", "cost")
        table.append((w, d, best, best_cost, l, t))
        tcols = "%.2f | %s | %s" % (t, ratio("tuned", best), ratio("tuned", "default")) \
            if t is not None else "- | - | -"
        lines.append("| %s | %.2f | %s | %.2f | %.2f | %s | %s | %s | %s | %s | %s | %s |" % (
            w, d, best, best_cost, l, ratio("learned", best), ratio("learned", "default"), tcols,
            hb.human(m("default", "ops_per_sec")),
            hb.human(m("learned", "ops_per_sec")), hb.mib(m("default", "peak_rss_kb")),
            hb.mib(m("learned", "peak_rss_kb"))))
    if info.get("tuned"):
        lines += ["", "Tuned policies (a learning run of each workload, %.0f s or more, "
                  "HAKMEM_POLICY_OUT): %s." % (TUNE_SECS, "; ".join(
                      "%s: %s" % (w, t) for w, t in sorted(info["tuned"].items())))]
    lines += ["", "Every arm, screening (median cost):", ""]
    smed = by_policy(screen)
    for w in workloads:
        lines.append("**%s**: " % w + "; ".join(
            "%s %.2f" % (p, statistics.median(r["cost"] for r in rs))
            for (ww, p), rs in sorted(smed.items()) if ww == w))
        lines.append("")
    if info.get("too_slow"):
        lines += ["", "Stopped after %d x the default's time (or %d s), and left out: %s." % (
            SLOW_FACTOR, SLOW_FLOOR_SECS, "; ".join("%s %s" % wp for wp in info["too_slow"]))]
    if info.get("confirm_ops"):
        lines += ["", "Ops per run, screening / confirmation: %s." % "; ".join(
            "%s %s / %s" % (w, hb.human(info["ops"][w]), hb.human(info["confirm_ops"][w]))
            for w in workloads if w in info["ops"])]
    lines += ["", "Machine: %s.  Command: %s" % (info["machine"], info["command"])]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return table


def sweep(args, bin_path, lib, here):
    knobs = read_knobs(here)
    workloads = DEFAULT_WORKLOADS if args.workloads == "all" else args.workloads.split(",")
    known = {w[0] for w in hb.list_workloads(bin_path)}
    for w in workloads:
        if w not in known:
            hb.die("sweep: unknown workload %r" % w)
    weight = float(os.environ.get("HAKMEM_LEARN_MEMORY_WEIGHT", DEFAULT_WEIGHT))
    pols = policies(knobs, read_defaults(here), lib)
    runs = args.runs or (1 if args.quick else 3)
    confirm_runs = max(CONFIRM_RUNS, runs)
    out = args.out or hb.default_out()
    os.makedirs(out, exist_ok=True)
    scale = args.scale or 1.0
    ops = {w[0]: max(1, int(w[1] * scale)) for w in hb.list_workloads(bin_path)}
    n_confirm = len(workloads) * (CONFIRM_ARMS + 3) * confirm_runs
    # One discarded run of a workload before its arms, each round: the first
    # run after another workload pays for the state it left (big-buffers,
    # run first, took twice as long as the same policy in any later place,
    # which put the default, always first, at 1.8 x every fixed arm).
    n_warm = (runs + confirm_runs) * len(workloads)
    progress = hb.Progress(runs * len(workloads) * (len(pols) + 1) + n_confirm + n_warm + 2 * len(workloads))
    failed = []
    # A fixed arm that takes SLOW_FACTOR times the default's time on a
    # workload is no contender (phase-change under purge_delay_ms=0 runs
    # 500 x slower): it is stopped, left out of that workload's later
    # runs and named in sweep.md, so that --quick stays within minutes.
    default_secs = {}
    work_secs = {}  # the workload's own time (its `secs`), from the last warm-up
    too_slow = set()

    length = dict(ops)  # ops per run: the screening's, then the confirmation's

    def one(w, p, seed, label):
        progress.show("%s %s %s" % (label, w, p.name))
        timeout = args.timeout
        capped = p.name.startswith("fixed:") and w in default_secs
        if capped:
            timeout = min(timeout, max(SLOW_FLOOR_SECS, SLOW_FACTOR * default_secs[w]))
        t0 = time.monotonic()
        status, fields, err = hb.run_workload(bin_path, p, w, 1, length[w], seed, timeout)
        progress.step()
        if p.name == "default" and status == "ok":
            default_secs[w] = max(default_secs.get(w, 0.0), time.monotonic() - t0)
        if status == "timeout" and capped:
            too_slow.add((w, p.name))
            return None
        if status != "ok":
            failed.append((w, p, seed, status, err))
            return None
        return {"workload": w, "policy": p.name, "run": seed,
                "ops_per_sec": fields["ops_per_sec"], "peak_rss_kb": fields["peak_rss_kb"],
                "minflt": fields["minflt"], "cost": cost_of(fields, weight)}

    def warm_up(w, seed):
        """The discarded run (the default policy), which also gives the
        default's time for the slow-arm cap, whatever the order after it."""
        progress.show("warm-up %s" % w)
        t0 = time.monotonic()
        status, fields, _ = hb.run_workload(bin_path, pols[0], w, 1, length[w], seed, args.timeout)
        if status == "ok":
            default_secs[w] = max(default_secs.get(w, 0.0), time.monotonic() - t0)
            work_secs[w] = fields["secs"]
        progress.step()

    # Each workload's `tuned` policy: one learning run of TUNE_SECS of the
    # workload's own time (the warm-up's `secs` tells how many ops that is;
    # its wall time, with the process's start and exit, made phase-change's
    # 1.4 s; scaled down by an explicit --ops-scale, for smoke runs), writing the
    # learner's policy at exit.
    tuned, tuned_text = {}, {}
    for w in workloads:
        warm_up(w, 0)
        secs = TUNE_SECS * (min(1.0, scale) if args.scale_given else 1.0)  # --quick's 0.2 too short
        reps = max(1, int(secs / work_secs[w] + 0.999)) if work_secs.get(w) else 1
        path = os.path.join(out, "tuned-%s.policy" % w)
        if os.path.exists(path):
            os.unlink(path)
        learn = Policy("learn", lib, {"HAKMEM_MODE": "learning", "HAKMEM_POLICY_OUT": path})
        progress.show("tune %s (%d ops)" % (w, ops[w] * reps))
        status, _, err = hb.run_workload(bin_path, learn, w, 1, ops[w] * reps, 1, args.timeout)
        progress.step()
        if status != "ok":
            failed.append((w, learn, 1, status, err))
            continue
        if not os.path.exists(path):
            # Nothing learned (no window with enough allocations to
            # measure): no policy is written, and `tuned` is the default.
            tuned[w] = Policy("tuned", lib, {"HAKMEM_MODE": "fast"})
            tuned_text[w] = "nothing learned (the defaults)"
            continue
        tuned[w] = Policy("tuned", lib, {"HAKMEM_MODE": "fast", "HAKMEM_POLICY_FILE": path})
        tuned_text[w] = policy_summary(path)

    def pols_for(w):
        return pols + ([tuned[w]] if w in tuned else [])

    # Within a round the policies run in an order shuffled per run and
    # workload (hb.run_order): a run pays for what the one before it left,
    # and in a fixed order `learned`, always last, ran after the same fixed
    # arms every time.
    screen = []
    for run in range(runs):
        for wi, w in enumerate(workloads):
            warm_up(w, run + 1)
            for p in hb.run_order(pols_for(w), run + 1, wi):
                if (w, p.name) in too_slow:
                    progress.step()
                    continue
                r = one(w, p, run + 1, "screen")
                if r:
                    screen.append(r)
    # The confirmation: each workload's best fixed arms by the screening,
    # the default and learned, run again with seeds the screening did not use.
    smed = by_policy(screen)
    chosen = {}
    for w in workloads:
        fixed = sorted((statistics.median(r["cost"] for r in rs), p)
                       for (ww, p), rs in smed.items() if ww == w and p.startswith("fixed:"))
        names = {"default", "learned", "tuned"} | {p for _, p in fixed[:CONFIRM_ARMS]}
        chosen[w] = [p for p in pols_for(w) if p.name in names]
    progress.total -= n_confirm - sum(len(v) for v in chosen.values()) * confirm_runs
    # Longer runs from here: the slow-arm cap starts again from the
    # default's time at the new length (its first warm-up).
    confirm_secs = CONFIRM_SECS[bool(args.quick)] * (min(1.0, scale) if args.scale_given else 1.0)
    # Scaled from the screening's time, then checked: a workload whose
    # start is slow (large-ws faults its first 50 MiB in) runs its later
    # ops faster, and its first estimate came out at 0.4 s.  Up to two
    # more discarded runs at the new length, each scaling it again.
    for w in workloads:
        for _ in range(3):
            if not work_secs.get(w) or work_secs[w] >= 0.75 * confirm_secs:
                break
            length[w] = length[w] * max(1, int(confirm_secs / work_secs[w] + 0.999))
            work_secs.pop(w, None)
            progress.total += 1
            warm_up(w, CONFIRM_SEED)
        default_secs.pop(w, None)
    confirm = []
    for run in range(confirm_runs):
        for wi, w in enumerate(workloads):
            warm_up(w, CONFIRM_SEED + run)
            for p in hb.run_order(chosen[w], CONFIRM_SEED + run, wi):
                r = one(w, p, CONFIRM_SEED + run, "confirm")
                if r:
                    confirm.append(r)
    progress.finish()

    def write_csv(name, rows):
        with open(os.path.join(out, name), "w", newline="") as f:
            wr = csv.writer(f)
            wr.writerow(["workload", "policy", "ops_per_s", "peak_rss_kb", "minflt", "cost"])
            for r in rows:
                wr.writerow([r["workload"], r["policy"], "%.1f" % r["ops_per_sec"], r["peak_rss_kb"],
                             r["minflt"], "%.4f" % r["cost"]])
    write_csv("sweep.csv", screen + confirm)
    write_csv("confirm.csv", confirm)
    info = {"runs": runs, "confirm_runs": confirm_runs, "machine": hb.machine_info(),
            "confirm_secs": confirm_secs, "ops": ops, "confirm_ops": length,
            "command": " ".join(["hakmem", "bench"] + sys.argv[1:])}
    info["too_slow"] = sorted(too_slow)
    info["tuned"] = tuned_text
    table = write_md(os.path.join(out, "sweep.md"), screen, confirm, workloads, weight, info)
    print("sweep: wrote %s, confirm.csv and sweep.md" % os.path.join(out, "sweep.csv"))
    for w, d, best, bc, l, t in table:
        print("  %-14s default %8.2f  best %-32s %8.2f  learned %8.2f  (%.3f x best)  tuned %s" % (
            w, d, best, bc, l, l / bc, "%8.2f  (%.3f x best)" % (t, t / bc) if t is not None else "-"))
    for w, p, seed, status, err in failed:
        print("sweep: %s under %s (seed %d): %s\n  %s%s --workload %s --seed %d" % (
            w, p.name, seed, status, p.prefix(), bin_path, w, seed), file=sys.stderr)
    return 1 if failed else 0
