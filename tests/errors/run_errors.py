#!/usr/bin/env python3
"""Runs every case of test_errors under glibc, libhakmem.so and
libhakmem-secure.so and tells what each allocator caught.

  run_errors.py --prog test_errors --lib hakmem=libhakmem.so \\
                --lib hakmem-secure=libhakmem-secure.so [--check] [--markdown FILE]

A run is *caught* when it does not end silently with status 0: it was
stopped by a signal (abort, a fault on a guard page), or an allocator
reported the error on stderr, or (status 3) the freed block was not handed
out again.  --check (the ctest `security_errors`) requires the secure
library to catch every case, to stop the process each time, and to catch
strictly more than glibc.  --markdown writes the table for docs/security.md.
Exit status 77: the secure library cannot be preloaded (sanitizer builds)."""
import argparse
import concurrent.futures
import os
import signal
import subprocess
import sys

# What glibc and hakmem print when they notice something (besides a signal).
REPORTS = ("hakmem: ", "free(): ", "malloc(): ", "realloc(): ", "double free", "corrupted",
           "munmap_chunk(): ", "malloc_consolidate(): ")
# Cases no allocator here can catch (none so far).
NOT_CATCHABLE = set()


def run_case(prog, case, lib, timeout):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAKMEM_") and k != "LD_PRELOAD"
           and not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    if lib:
        env["LD_PRELOAD"] = lib
    try:
        r = subprocess.run([prog, case], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return "hang", ""
    err = r.stderr.decode("utf-8", "replace")
    if "cannot be preloaded" in err:
        return "nopreload", err
    if r.returncode < 0:
        sig = -r.returncode
        name = {signal.SIGABRT: "abort", signal.SIGSEGV: "segv", signal.SIGBUS: "segv"}.get(sig)
        return name or "signal %d" % sig, err
    if r.returncode == 3:
        return "delayed", err
    if r.returncode != 0:
        return "exit %d" % r.returncode, err
    if any(m in err for m in REPORTS):
        return "report", err
    return "-", err


def caught(outcome):
    return outcome not in ("-", "hang", "nopreload") and not outcome.startswith("exit")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prog", required=True)
    ap.add_argument("--lib", action="append", default=[], help="NAME=PATH of a library to preload")
    ap.add_argument("--secure", default="hakmem-secure", help="which --lib is the secure library")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--markdown")
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--verbose", action="store_true", help="print each run's stderr")
    args = ap.parse_args()
    allocs = [("glibc", None)]
    for spec in args.lib:
        name, _, path = spec.partition("=")
        allocs.append((name, os.path.abspath(path)))
    cases = subprocess.run([args.prog, "list"], check=True, stdout=subprocess.PIPE).stdout.decode().split()
    jobs = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        for c in cases:
            for name, lib in allocs:
                jobs[(c, name)] = ex.submit(run_case, args.prog, c, lib, args.timeout)
    res = {k: f.result() for k, f in jobs.items()}
    if any(o == "nopreload" for o, _ in res.values()):
        print("run_errors: a library cannot be preloaded here (sanitizer build?); skipped")
        return 77

    names = [n for n, _ in allocs]
    totals = {n: sum(caught(res[(c, n)][0]) for c in cases) for n in names}
    lines = ["| case | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for c in cases:
        lines.append("| %s | %s |" % (c, " | ".join(res[(c, n)][0] for n in names)))
    lines.append("| **caught (of %d)** | %s |" % (len(cases), " | ".join("**%d**" % totals[n] for n in names)))
    table = "\n".join(lines) + "\n"
    print(table)
    if args.verbose:
        for (c, n), (o, err) in sorted(res.items()):
            if err.strip():
                print("--- %s under %s (%s):\n%s" % (c, n, o, err.rstrip()))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table)

    if not args.check:
        return 0
    failures = []
    sec = args.secure
    if sec not in names:
        failures.append("no --lib %s=PATH" % sec)
    else:
        for c in cases:
            o, err = res[(c, sec)]
            if c in NOT_CATCHABLE:
                continue
            if not caught(o):
                failures.append("%s: not caught by %s (%s)" % (c, sec, o))
            elif o not in ("abort", "segv", "delayed"):
                failures.append("%s: %s did not stop the process (%s)" % (c, sec, o))
            if o == "abort" and "hakmem: " not in err and "Aborted" not in err and "Abort" not in err:
                pass  # an abort without a message is still a stop
        if totals[sec] <= totals["glibc"]:
            failures.append("%s catches %d cases, glibc %d: not more" % (sec, totals[sec], totals["glibc"]))
    for f in failures:
        print("FAIL: " + f)
    print("caught: " + ", ".join("%s %d" % (n, totals[n]) for n in names) + " (of %d)" % len(cases))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
