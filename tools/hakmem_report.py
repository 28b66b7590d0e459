#!/usr/bin/env python3
"""hakmem report: renders a hakmem call-site profile (see docs/profiling.md).

    hakmem report FILE [--out PREFIX] [--exe PATH] [--top N] [--summary]

FILE is a profile written with HAKMEM_PROFILE=FILE (the library writes
FILE, FILE.json and FILE.folded); FILE.json is read (FILE itself if it is
the .json).  Every site and stack frame is named again with
`addr2line -f -C -i` (one addr2line per module, on the module's file), which
knows static and inlined functions and, with debug info, file:line.  Then
it writes

    PREFIX          the table, sorted by bytes, and the leaks at exit
    PREFIX.json     the profile with "file", "line", "inlined_into" and the
                    better function names added ("symbol" keeps dladdr's)
    PREFIX.folded   collapsed stacks for flamegraph.pl, speedscope, ...
    PREFIX.html     one self-contained page: top sites, leaks, flame graph

PREFIX defaults to FILE (the library's files are replaced by richer ones;
running the report again on them gives the same result).  --exe names the
program's executable when its module in the profile (its argv[0]) is not
a path that can be found from here.  --summary prints the top sites and
the leaks to stderr as well.  Python 3 standard library only.
"""
import argparse
import bisect
import html
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib

PROG = "hakmem report"
KIB = 1024


def warn(msg):
    print(f"{PROG}: {msg}", file=sys.stderr)


def die(msg):
    warn(msg)
    sys.exit(2)


# ---------------------------------------------------------------- input

def input_paths(path):
    """(json file, default output prefix) for FILE or FILE.json."""
    if path.endswith(".json") and os.path.isfile(path):
        return path, path[:-len(".json")]
    if os.path.isfile(path + ".json"):
        return path + ".json", path
    if os.path.isfile(path):  # a JSON profile under another name
        return path, path
    die(f"no profile at {path} (nor {path}.json); write one with HAKMEM_PROFILE={path}")


def load(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        die(f"cannot read {path}: {e}")
    if not isinstance(data, dict) or not isinstance(data.get("sites"), list):
        die(f"{path} is not a hakmem profile (no \"sites\" list)")
    return data


def as_int(v, default=0):
    try:
        return int(v, 0) if isinstance(v, str) else int(v)
    except (TypeError, ValueError):
        return default


# ---------------------------------------------------------- symbolising

def elf_load_base(path):
    """Link-time address of the module's load base (dladdr's dli_fbase is
    the first PT_LOAD segment, page-aligned): 0 for PIE executables and
    shared libraries, 0x400000 for a classic non-PIE executable."""
    try:
        with open(path, "rb") as f:
            hdr = f.read(64)
            if len(hdr) < 64 or hdr[:4] != b"\x7fELF" or hdr[4] != 2 or hdr[5] != 1:
                return 0  # only 64-bit little-endian ELF (x86-64)
            phoff, = struct.unpack_from("<Q", hdr, 0x20)
            phentsize, phnum = struct.unpack_from("<HH", hdr, 0x36)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return 0
    for i in range(phnum):
        p_type, = struct.unpack_from("<I", table, i * phentsize)
        if p_type == 1:  # PT_LOAD
            p_vaddr, = struct.unpack_from("<Q", table, i * phentsize + 16)
            return p_vaddr & ~0xFFF
    return 0


def elf_function_ranges(path):
    """Sorted [(start, end)] of the sized functions in the module's symbol
    tables (.symtab and .dynsym), at link-time addresses; [] if unreadable."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return []
    try:
        shoff, = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
        ranges = []
        for i in range(shnum):
            sh = shoff + i * shentsize
            sh_type, = struct.unpack_from("<I", data, sh + 4)
            if sh_type not in (2, 11):  # SHT_SYMTAB, SHT_DYNSYM
                continue
            off, size = struct.unpack_from("<QQ", data, sh + 24)
            entsize, = struct.unpack_from("<Q", data, sh + 56)
            entsize = entsize or 24
            for o in range(off, off + size - entsize + 1, entsize):
                info = data[o + 4]
                value, sz = struct.unpack_from("<QQ", data, o + 8)
                if info & 0xF == 2 and value and sz:  # STT_FUNC
                    ranges.append((value, value + sz))
        ranges.sort()
        return ranges
    except struct.error:
        return []


def in_a_function(ranges, addr):
    i = bisect.bisect_right(ranges, (addr, float("inf")))
    return any(lo <= addr < hi for lo, hi in ranges[max(0, i - 8):i])


def resolve_module(module, exe):
    """A readable file for a profile's module name, or None.  dladdr names
    the main executable by its argv[0]: maybe a path relative to the
    program's folder, or a bare command name found through PATH."""
    if not module or module == "?" or module.startswith("linux-vdso"):
        return None
    base = os.path.basename(module)
    if exe and (base == os.path.basename(exe) or (not os.path.isabs(module) and ".so" not in base)):
        return exe
    if os.path.isabs(module):
        return module if os.path.isfile(module) else None
    if os.path.isfile(module):
        return os.path.abspath(module)
    return shutil.which(module)


def parse_location(loc):
    """'/a/b.c:12 (discriminator 3)' -> ('/a/b.c', 12); unknown -> (None, None)."""
    loc = re.sub(r"\s*\(discriminator \d+\)$", "", loc.strip())
    path, _, line = loc.rpartition(":")
    if not path or path == "??":
        return None, None
    n = as_int(line, 0)
    return path, (n if n > 0 else None)


def run_addr2line(a2l, path, addrs):
    """addr2line -a -f -C -i on the addresses of one module.  Returns
    {addr: [(function, file, line), ...]} innermost first (more than one
    entry when the code was inlined)."""
    if not addrs:
        return {}
    base = elf_load_base(path)
    keys = [f"0x{a + base:x}" for a in addrs]
    try:
        proc = subprocess.run([a2l, "-a", "-f", "-C", "-i", "-e", path],
                              input="\n".join(keys) + "\n", capture_output=True,
                              text=True, errors="replace", timeout=300)
    except (OSError, subprocess.SubprocessError) as e:
        warn(f"addr2line failed on {path}: {e}")
        return {}
    if proc.returncode != 0:
        msg = proc.stderr.strip().splitlines()
        warn(f"addr2line failed on {path}: {msg[0] if msg else 'exit status %d' % proc.returncode}")
        return {}
    # Each answer starts with the address echoed as 0x%016x (-a); then
    # function and file:line lines, a pair per inlining level.  Without
    # debug info addr2line names the nearest symbol below the address, even
    # one that ends before it (a static function of a stripped library):
    # such a name is kept only if a sized function symbol holds the address.
    expect = {int(k, 16): a for k, a in zip(keys, addrs)}
    ranges = None
    out, cur, lines = {}, None, proc.stdout.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if re.fullmatch(r"0x[0-9a-fA-F]+", line) and int(line, 16) in expect:
            cur = expect[int(line, 16)]
            out.setdefault(cur, [])
            i += 1
            continue
        if cur is not None and i + 1 < len(lines):
            fn = line.strip()
            fpath, fline = parse_location(lines[i + 1])
            if fn in ("", "??"):
                fn = None
            elif not fpath:
                if ranges is None:
                    ranges = elf_function_ranges(path)
                if not in_a_function(ranges, cur + base):
                    fn = None
            out[cur].append((fn, fpath, fline))
            i += 2
        else:
            i += 1
    return out


def symbolize(data, exe, use_addr2line=True):
    """Adds file, line, inlined_into (and a better function) to every site
    and stack frame, in place."""
    frames = []  # every dict that names a code address
    for s in data["sites"]:
        frames.append(s)
        frames.extend(f for f in s.get("stack") or [] if isinstance(f, dict))
    for fr in frames:
        # "symbol" keeps dladdr's name; a second run starts from it again.
        if "symbol" not in fr:
            fr["symbol"] = fr.get("function") or ""
        fr["function"] = fr["symbol"]
        fr["file"], fr["line"], fr["inlined_into"] = None, None, []
    a2l = shutil.which("addr2line") if use_addr2line else None
    if use_addr2line and not a2l:
        warn("addr2line not found (Debian: apt-get install binutils); "
             "names are dladdr's, without file:line")
    if not a2l:
        return
    by_module = {}
    for fr in frames:
        if fr.get("other"):
            continue
        off = as_int(fr.get("offset"), 0)
        if off <= 0:
            continue
        by_module.setdefault(fr.get("module") or "?", []).append(fr)
    for module, frs in sorted(by_module.items()):
        path = resolve_module(module, exe)
        if not path:
            continue
        # Return addresses: offset-1 lies in the call instruction itself.
        addrs = sorted({as_int(fr["offset"]) - 1 for fr in frs})
        answers = run_addr2line(a2l, path, addrs)
        for fr in frs:
            chain = [c for c in answers.get(as_int(fr["offset"]) - 1, []) if c[0] or c[1]]
            if not chain:
                continue
            fn, fpath, fline = chain[0]
            if fn:
                fr["function"] = fn
            fr["file"], fr["line"] = fpath, fline
            fr["inlined_into"] = [{"function": c[0] or "", "file": c[1], "line": c[2]}
                                  for c in chain[1:]]


# ------------------------------------------------------------ formatting

def fmt_bytes(n):
    n = float(n)
    if abs(n) < KIB:
        return f"{int(n)} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= KIB
        if abs(n) < KIB or unit == "TiB":
            return f"{n:.1f} {unit}"
    return f"{n:.1f} TiB"


def fmt_count(n, exact):
    return f"{n}" if exact else f"~{n}"


def module_base(module):
    return os.path.basename(module or "?") or "?"


def where(fr):
    """file:line, or '' when unknown."""
    if not fr.get("file"):
        return ""
    return f"{fr['file']}:{fr['line']}" if fr.get("line") else fr["file"]


def short_where(fr):
    w = where(fr)
    return os.path.basename(w) if w else ""


def func_name(fr):
    """A frame's name: addr2line's or dladdr's function, else module+offset."""
    if fr.get("other"):
        return "(other: the site table was full)"
    if fr.get("function"):
        return fr["function"]
    return f"{module_base(fr.get('module'))}+{fr.get('offset', '?')}"


def func_with_offset(fr):
    name = func_name(fr)
    if fr.get("function") and fr.get("function") == fr.get("symbol") and "function_offset" in fr:
        return f"{name}+0x{as_int(fr['function_offset']):x}"
    return name


def frame_chain(fr):
    """Frame names outermost first: the functions the code was inlined into,
    then the function itself."""
    mod = module_base(fr.get("module"))
    names = [f"{mod}`{c['function'] or '?'}" for c in reversed(fr.get("inlined_into") or [])]
    names.append(f"{mod}`{func_name(fr) if (fr.get('function') or fr.get('other')) else '?'}")
    return names


def folded_stacks(data):
    """[(frames outermost first, bytes)], one per site, as PREFIX.folded."""
    out = []
    for s in data["sites"]:
        frames = []
        for fr in reversed(s.get("stack") or []):
            frames.extend(frame_chain(fr))
        frames.extend(frame_chain(s))
        out.append(([f.replace(";", ":").replace(" ", "_") for f in frames], as_int(s.get("bytes"))))
    return out


def have_stacks(data):
    return any(s.get("stack") for s in data["sites"])


def totals(data):
    sites = data["sites"]
    leaks = [s for s in sites if as_int(s.get("live_bytes")) > 0]
    leaks.sort(key=lambda s: -as_int(s.get("live_bytes")))
    return (sum(as_int(s.get("bytes")) for s in sites),
            sum(as_int(s.get("live_bytes")) for s in sites), leaks)


def live_blocks(s):
    """Blocks live at exit: exact for exact sites, else live / avg size."""
    if s.get("exact") and as_int(s.get("allocs")) >= as_int(s.get("frees")):
        return as_int(s.get("allocs")) - as_int(s.get("frees")), True
    avg = as_int(s.get("avg_size"))
    return (round(as_int(s.get("live_bytes")) / avg) if avg else 0), False


def life_text(s):
    return f"{as_int(s.get('avg_lifetime_ms'))} ms" if as_int(s.get("frees")) else "-"


# ------------------------------------------------------------- outputs

def write_table(data, path):
    sites = data["sites"]
    total, live, leaks = totals(data)
    rows = []
    for i, s in enumerate(sites, 1):
        ex = bool(s.get("exact"))
        rows.append([str(i), fmt_bytes(as_int(s.get("bytes"))),
                     fmt_count(as_int(s.get("allocs")), ex), fmt_count(as_int(s.get("frees")), ex),
                     fmt_bytes(as_int(s.get("live_bytes"))), fmt_bytes(as_int(s.get("peak_live_bytes"))),
                     fmt_bytes(as_int(s.get("avg_size"))), life_text(s), s.get("pattern", "?"),
                     module_base(s.get("module")), func_with_offset(s), where(s) or "-"])
    head = ["rank", "bytes", "allocs", "frees", "live", "peak live", "avg size",
            "avg life", "pattern", "module", "function", "file:line"]
    lines = [f"hakmem profile of {data.get('program', '?')} (pid {data.get('pid', '?')}): "
             f"{len(sites)} sites, {fmt_bytes(total)} allocated, {fmt_bytes(live)} live at exit",
             f"Tiny/Mid (<= 32 KiB) sampled about every {fmt_bytes(as_int(data.get('sample_bytes')))}"
             " (~ marks estimates); Large/Big and hak_alloc_cs counts exact", ""]
    lines += format_columns(head, rows, right=range(0, 8))
    decided = [(i, s) for i, s in enumerate(sites, 1) if s.get("decision") or s.get("why")]
    if decided:
        # Per-site decisions for Large/Big blocks (docs/learning.md), with
        # the history each was made from.
        drows = []
        for i, s in decided:
            w = s.get("why") or {}
            drows.append([str(i), ", ".join(s.get("decision") or []) or "default",
                          str(as_int(w.get("blocks"))), str(as_int(w.get("freed"))),
                          "%d ms" % as_int(w.get("mean_life_ms")), str(as_int(w.get("big"))),
                          "%d ms" % as_int(w.get("mean_gap_ms")), str(as_int(w.get("grows"))),
                          func_with_offset(s)])
        lines.append("")
        lines.append("per-site decisions (Large/Big blocks) and why:")
        lines += format_columns(["rank", "decision", "blocks", "freed", "mean life", "Big",
                                 "mean gap", "grows", "function"], drows, right=range(2, 8))
    lines.append("")
    lines.append(f"leaks at exit: {fmt_bytes(live)} live in {len(leaks)} site"
                 f"{'' if len(leaks) == 1 else 's'}" + (" (largest first)" if leaks else ""))
    if leaks:
        lrows = []
        for i, s in enumerate(leaks, 1):
            n, ex = live_blocks(s)
            lrows.append([str(i), fmt_bytes(as_int(s.get("live_bytes"))), fmt_count(n, ex),
                          "exact" if s.get("exact") else "estimate", module_base(s.get("module")),
                          func_with_offset(s), where(s) or "-"])
        lines.append("")
        lines += format_columns(["rank", "live bytes", "blocks", "figures", "module",
                                 "function", "file:line"], lrows, right=range(0, 3))
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def format_columns(head, rows, right):
    right = set(right)
    widths = [max(len(r[c]) for r in [head] + rows) for c in range(len(head))]
    out = []
    for r in [head] + rows:
        cells = [r[c].rjust(widths[c]) if c in right else r[c].ljust(widths[c])
                 for c in range(len(head))]
        out.append("  ".join(cells).rstrip())
    return out


def write_json(data, path):
    """Compact, one site per line (grep- and diff-friendly)."""
    head = {k: v for k, v in data.items() if k != "sites"}
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(head, separators=(",", ":"))[:-1] + (',' if head else '') + '"sites":[\n')
        f.write(",\n".join(json.dumps(s, separators=(",", ":")) for s in data["sites"]))
        f.write("\n]}\n")


def write_folded(data, path):
    with open(path, "w", encoding="utf-8") as f:
        for frames, nbytes in folded_stacks(data):
            if nbytes > 0:
                f.write(";".join(frames) + f" {nbytes}\n")


def summary(data, outputs, top=5, file=sys.stderr):
    sites = data["sites"]
    total, live, leaks = totals(data)
    p = lambda s: print(f"hakmem: {s}", file=file)  # noqa: E731
    p(f"profile of {data.get('program', '?')} (pid {data.get('pid', '?')}): {len(sites)} sites, "
      f"{fmt_bytes(total)} allocated, {fmt_bytes(live)} live at exit")
    for i, s in enumerate(sites[:top], 1):
        w = short_where(s)
        p(f"  {i}. {fmt_bytes(as_int(s.get('bytes'))):>10} "
          f"{fmt_count(as_int(s.get('allocs')), s.get('exact')):>10} allocs  "
          f"{s.get('pattern', '?'):<16} {func_name(s)}" + (f" ({w})" if w else ""))
    if leaks:
        desc = ", ".join(f"{func_name(s)} {fmt_bytes(as_int(s.get('live_bytes')))}" for s in leaks[:3])
        more = f", +{len(leaks) - 3} more" if len(leaks) > 3 else ""
        p(f"leaks at exit: {fmt_bytes(live)} in {len(leaks)} site{'' if len(leaks) == 1 else 's'}: "
          f"{desc}{more}")
    else:
        p("leaks at exit: none")
    p("wrote " + ", ".join(outputs))


# ------------------------------------------------------------------ HTML

CSS = """
body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#222;max-width:1280px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #ddd}
p.meta{color:#555;margin:0 0 8px}
table{border-collapse:collapse;font-size:12px}
th,td{padding:3px 8px;border-bottom:1px solid #eee;text-align:left;white-space:nowrap}
th{background:#f4f4f4;position:sticky;top:0}
td.n{text-align:right;font-variant-numeric:tabular-nums}
td.w{color:#666}
svg text{font:12px system-ui,sans-serif;fill:#222}
svg .lbl{fill:#333}svg .val{fill:#555}
svg.flame text{font:11px monospace;fill:#000;pointer-events:none}
svg.flame rect{stroke:#fff;stroke-width:0.5}
svg.flame rect:hover,svg.bars rect:hover{stroke:#000;stroke-width:1}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:-2px}
.note{color:#666;font-size:12px}
"""

BAR_BYTES, BAR_LIVE, BAR_PEAK = "#4e79a7", "#e15759", "#f1ce63"


def esc(s):
    return html.escape(str(s), quote=True)


def bar_chart(sites, value, bars, width=1180, label_w=420):
    """Horizontal bars, one group per site: bars = [(key, colour, height)]
    drawn one below the other on a common scale (the largest `value`); the
    figures of every bar are written after the first one."""
    vmax = max((value(s) for s in sites), default=0) or 1
    area = width - label_w - 330
    row_h = sum(h for _, _, h in bars) + 2 * (len(bars) - 1) + 10
    height = row_h * len(sites) + 4
    out = [f'<svg class="bars" xmlns="http://www.w3.org/2000/svg" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}">']
    for i, s in enumerate(sites):
        y = i * row_h + 4
        name, w = func_name(s), short_where(s)
        label = f"{name} ({w})" if w else f"{name} ({module_base(s.get('module'))})"
        shown = label if len(label) <= label_w // 7 else label[:label_w // 7 - 1] + "\u2026"
        tip = (f"{name}\n{where(s) or module_base(s.get('module'))}\n"
               f"bytes {fmt_bytes(as_int(s.get('bytes')))}, allocs "
               f"{fmt_count(as_int(s.get('allocs')), s.get('exact'))}, live at exit "
               f"{fmt_bytes(as_int(s.get('live_bytes')))}, peak live "
               f"{fmt_bytes(as_int(s.get('peak_live_bytes')))}, {s.get('pattern', '')}")
        out.append(f'<g><title>{esc(tip)}</title>')
        out.append(f'<text class="lbl" x="{label_w - 8}" y="{y + 11}" text-anchor="end">{esc(shown)}</text>')
        by, first_w = y, 0.0
        for key, colour, h in bars:
            v = as_int(s.get(key))
            bw = max(v / vmax * area, 1 if v else 0)
            first_w = first_w or bw
            out.append(f'<rect x="{label_w}" y="{by}" width="{bw:.1f}" height="{h}" fill="{colour}"/>')
            by += h + 2
        figures = "  \u00b7  ".join(f"{lbl} {fmt_bytes(as_int(s.get(key)))}" if lbl else
                                     fmt_bytes(as_int(s.get(key)))
                                     for (key, _, _), lbl in zip(bars, BAR_LABELS[key0(bars)]))
        out.append(f'<text class="val" x="{label_w + first_w + 6:.1f}" y="{y + 11}">{esc(figures)}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


def key0(bars):
    return tuple(k for k, _, _ in bars)


BAR_LABELS = {("bytes", "peak_live_bytes", "live_bytes"): ["", "peak live", "live at exit"],
              ("live_bytes",): [""]}


def flame_colour(name):
    """Warm colours for the program's code, others by module; stable per name."""
    mod, _, fn = name.partition("`")
    h = zlib.crc32(fn.encode())
    if name == "all":
        return "rgb(200,200,200)"
    if mod.startswith("libc.so") or mod.startswith("ld-linux"):
        return f"rgb({200 + h % 40},{190 + (h >> 8) % 40},{80 + (h >> 16) % 50})"
    if mod.startswith("lib"):
        return f"rgb({90 + h % 50},{170 + (h >> 8) % 50},{200 + (h >> 16) % 40})"
    return f"rgb({215 + h % 40},{80 + (h >> 8) % 110},{50 + (h >> 16) % 40})"


def flame_graph(stacks, width=1180, row=18):
    """Icicle graph (the root on top, callees below) of folded stacks."""
    root = {"name": "all", "value": 0, "kids": {}}
    for frames, v in stacks:
        if v <= 0:
            continue
        root["value"] += v
        node = root
        for fr in frames:
            node = node["kids"].setdefault(fr, {"name": fr, "value": 0, "kids": {}})
            node["value"] += v
    if not root["value"]:
        return ""
    rects, depth_max = [], 0
    scale = width / root["value"]

    def walk(node, x, depth):
        nonlocal depth_max
        w = node["value"] * scale
        if w < 0.3:
            return
        depth_max = max(depth_max, depth)
        rects.append((node, x, depth, w))
        cx = x
        for kid in sorted(node["kids"].values(), key=lambda k: -k["value"]):
            walk(kid, cx, depth + 1)
            cx += kid["value"] * scale

    walk(root, 0.0, 0)
    height = (depth_max + 1) * row + 2
    out = [f'<svg class="flame" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}">']
    total = root["value"]
    for node, x, depth, w in rects:
        y = depth * row
        name = node["name"]
        tip = f"{name}\n{fmt_bytes(node['value'])} ({node['value'] * 100.0 / total:.1f}%)"
        out.append(f'<g><title>{esc(tip)}</title><rect x="{x:.2f}" y="{y}" width="{w:.2f}" '
                   f'height="{row - 1}" fill="{flame_colour(name)}"/>')
        chars = int((w - 6) / 6.7)
        if chars >= 3:
            label = name.partition("`")[2] or name
            label = label if len(label) <= chars else label[:chars - 1] + "\u2026"
            out.append(f'<text x="{x + 3:.2f}" y="{y + row - 5}">{esc(label)}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


def sites_table(sites):
    head = ["#", "bytes", "allocs", "frees", "live", "peak live", "avg size", "avg life",
            "pattern", "module", "function", "file:line"]
    out = ["<table><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for i, s in enumerate(sites, 1):
        ex = bool(s.get("exact"))
        fn = func_with_offset(s)
        inl = s.get("inlined_into") or []
        if inl:
            fn += " (inlined in " + " \u2190 ".join(c["function"] or "?" for c in inl) + ")"
        cells = [(str(i), "n"), (fmt_bytes(as_int(s.get("bytes"))), "n"),
                 (fmt_count(as_int(s.get("allocs")), ex), "n"), (fmt_count(as_int(s.get("frees")), ex), "n"),
                 (fmt_bytes(as_int(s.get("live_bytes"))), "n"), (fmt_bytes(as_int(s.get("peak_live_bytes"))), "n"),
                 (fmt_bytes(as_int(s.get("avg_size"))), "n"), (life_text(s), "n"),
                 (s.get("pattern", ""), ""), (module_base(s.get("module")), "w"), (fn, ""), (where(s), "w")]
        out.append("<tr>" + "".join(f'<td class="{c}">{esc(t)}</td>' if c else f"<td>{esc(t)}</td>"
                                    for t, c in cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def write_html(data, path, top):
    sites = data["sites"]
    total, live, leaks = totals(data)
    title = f"hakmem profile of {data.get('program', '?')} (pid {data.get('pid', '?')})"
    parts = ['<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8"/>',
             f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{esc(title)}</h1>",
             f'<p class="meta">{len(sites)} sites, {esc(fmt_bytes(total))} allocated, '
             f'{esc(fmt_bytes(live))} live at exit in {len(leaks)} sites. Tiny/Mid (&lt;= 32 KiB) '
             f'allocations sampled about every {esc(fmt_bytes(as_int(data.get("sample_bytes"))))} '
             f'(~ marks estimates); Large/Big blocks and hak_alloc_cs calls counted exactly.</p>']
    shown = sites[:top]
    parts.append(f"<h2>Top {len(shown)} sites by bytes allocated</h2>")
    parts.append(f'<p class="legend"><span style="background:{BAR_BYTES}"></span>bytes allocated'
                 f'<span style="background:{BAR_PEAK}"></span>peak live'
                 f'<span style="background:{BAR_LIVE}"></span>live at exit</p>')
    if shown:
        parts.append(bar_chart(shown, lambda s: as_int(s.get("bytes")),
                               [("bytes", BAR_BYTES, 12), ("peak_live_bytes", BAR_PEAK, 4),
                                ("live_bytes", BAR_LIVE, 4)]))
    else:
        parts.append('<p class="note">No allocation was recorded.</p>')
    parts.append("<h2>Leaks at exit (live bytes)</h2>")
    if leaks:
        parts.append(bar_chart(leaks[:top], lambda s: as_int(s.get("live_bytes")),
                               [("live_bytes", BAR_LIVE, 12)]))
    else:
        parts.append('<p class="note">Every recorded block was freed before exit.</p>')
    parts.append("<h2>Flame graph (bytes allocated, callers above callees)</h2>")
    if have_stacks(data):
        parts.append(flame_graph(folded_stacks(data)))
        parts.append('<p class="note">Widths are bytes allocated below each frame; hover for figures.</p>')
    else:
        parts.append('<p class="note">No stacks in this profile: run with HAKMEM_PROFILE_STACK=8 '
                     '(frames kept per site) for a flame graph.</p>')
    parts.append("<h2>All sites</h2>")
    parts.append(sites_table(sites))
    parts.append("</body></html>")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(parts) + "\n")


# ------------------------------------------------------------------ main

def main(argv=None):
    ap = argparse.ArgumentParser(prog=PROG, description="Render a hakmem call-site profile "
                                 "(HAKMEM_PROFILE=FILE) as a table, JSON, folded stacks and HTML.")
    ap.add_argument("file", metavar="FILE", help="the profile (FILE or FILE.json)")
    ap.add_argument("--out", metavar="PREFIX", help="write PREFIX, PREFIX.json, PREFIX.folded, "
                    "PREFIX.html (default: FILE)")
    ap.add_argument("--exe", metavar="PATH", help="the program's executable, when the profile's "
                    "module name for it (argv[0]) cannot be found from here")
    ap.add_argument("--top", type=int, default=25, metavar="N", help="sites in the HTML charts (25)")
    ap.add_argument("--no-addr2line", action="store_true", help="keep the names in the profile")
    ap.add_argument("--summary", action="store_true", help="print the top sites and leaks to stderr")
    args = ap.parse_args(argv)

    json_in, prefix = input_paths(args.file)
    data = load(json_in)
    if args.out:
        prefix = args.out
    exe = os.path.abspath(args.exe) if args.exe else None
    sites = [s for s in data["sites"] if isinstance(s, dict)]
    sites.sort(key=lambda s: -as_int(s.get("bytes")))
    data["sites"] = sites
    symbolize(data, exe, not args.no_addr2line)
    outputs = [prefix, prefix + ".json", prefix + ".folded", prefix + ".html"]
    try:
        d = os.path.dirname(prefix)
        if d:
            os.makedirs(d, exist_ok=True)
        write_table(data, outputs[0])
        write_json(data, outputs[1])
        write_folded(data, outputs[2])
        write_html(data, outputs[3], max(args.top, 1))
    except OSError as e:
        die(f"cannot write {prefix}: {e}")
    if args.summary:
        summary(data, outputs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
