#!/usr/bin/env python3
"""side_thread: the controller's code leaves libc's thread state alone.

The controller runs on a thread that libc does not know about (src/os.c,
hak_os_side_thread_start): it shares the main thread's thread pointer, so
it must write no thread variable (errno included) and call nothing of
libc's but functions that keep no thread state.  This reads the library's
machine code: every function reachable from the controller's entry (by
direct calls and jumps, and through the addresses of functions it takes,
such as callbacks) is checked for writes through %fs and for calls into
libc outside the list below.

usage: check_side_thread.py OBJDUMP READELF LIBRARY
"""
import re
import subprocess
import sys

ENTRY = "controller"
# libc functions that read and write only their arguments.
PURE = {"memcpy", "memmove", "memset", "memcmp", "strlen", "strchr", "strrchr", "strcmp", "strncmp", "strstr"}
# Reached, but they return at once on the controller's thread: not looked
# into, nor what they call.
RETURN_AT_ONCE = {
    "hak_control_tick": "returns while a controller runs (ctl_state)",
    "hak_prof_sample": "returns on the side thread (hak_os_on_side_thread)",
    "hak_forks_register": "the handlers are registered before the thread is made",
}
# Called only once a process, before the controller exists: the clock's
# first read looks the vDSO up (hak_control_init reads the clock).
ONCE = {"getauxval"}
# A failed assertion (the debug build) ends the process, from whichever
# thread: abort signals the main thread, whose thread pointer it reads.
ENDS = {"abort"}
# The one thread variable it may read: whether this thread is inside fork
# (hak_lock; on the controller's thread it reads the main thread's, and
# hak_os_on_side_thread answers for it).
TLS_READ = {"hak_fork_owner"}
# Instructions that only read their operands.
READ_ONLY = re.compile(r"(cmp[bwlq]?|test[bwlq]?|bt[bwlq]?)$")


def operands(ins):
    """The operands of an AT&T instruction, split at top-level commas."""
    parts, depth, cur = [], 0, ""
    for ch in ins:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts]


def main():
    objdump, readelf, lib = sys.argv[1], sys.argv[2], sys.argv[3]
    text = subprocess.run([objdump, "-d", "--no-show-raw-insn", lib], capture_output=True, text=True, check=True).stdout
    # Thread variables: their offsets (readelf), and the GOT slots that hold
    # them (TPOFF relocations), which the code loads before each access.
    syms = subprocess.run([readelf, "-sW", lib], capture_output=True, text=True, check=True).stdout
    tls_name = {int(p[1], 16): p[7] for p in (l.split() for l in syms.splitlines()) if len(p) >= 8 and p[3] == "TLS"}
    relocs = subprocess.run([objdump, "-R", lib], capture_output=True, text=True, check=True).stdout
    tls_slot = {}
    for p in (l.split() for l in relocs.splitlines()):
        if len(p) >= 3 and "TPOFF" in p[1]:
            add = re.search(r"\+0x([0-9a-f]+)$", p[2])
            tls_slot[int(p[0], 16)] = tls_name.get(int(add.group(1), 16) if add else 0, p[2])
    funcs, cur = {}, None
    for line in text.splitlines():
        m = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if m:
            cur = m.group(1)
            funcs[cur] = []
        elif cur and "\t" in line:
            funcs[cur].append(line.split("\t", 1)[1].split("#")[0].strip() + ("  #" + line.split("#", 1)[1] if "#" in line else ""))
    if ENTRY not in funcs:
        print(f"side_thread: no function {ENTRY} in {lib}")
        return 1
    seen, todo, bad = set(), [ENTRY], []
    while todo:
        f = todo.pop()
        if f in seen or f not in funcs or f.endswith("@plt") or f in RETURN_AT_ONCE:
            continue
        seen.add(f)
        for ins in funcs[f]:
            for m in re.finditer(r"<([^>+]+)(?:\+0x[0-9a-f]+)?>", ins):
                g = m.group(1)
                if g.endswith("@plt"):
                    name = g[:-4]
                    if name not in PURE and name not in ONCE and name not in ENDS:
                        bad.append(f"{f} calls libc's {name}: {ins}")
                elif g in funcs and g != f and re.match(r"(call|jmp|j[a-z]+|lea)\b", ins):
                    todo.append(g)
            slot = re.search(r"# ([0-9a-f]+) <", ins)
            if slot and int(slot.group(1), 16) in tls_slot and tls_slot[int(slot.group(1), 16)] not in TLS_READ:
                bad.append(f"{f} reaches the thread variable {tls_slot[int(slot.group(1), 16)]}: {ins}")
            op = ins.split(None, 1)
            if len(op) == 2 and not READ_ONLY.match(op[0]) and "%fs:" in operands(op[1].split("  #")[0])[-1]:
                bad.append(f"{f} writes a thread variable: {ins}")
    for b in bad:
        print("side_thread:", b)
    print(f"side_thread: {len(seen)} functions reachable from {ENTRY}, {len(bad)} problems")
    if len(seen) < 50 or not tls_slot:
        print("side_thread: too few functions found: is this the library?")
        return 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
