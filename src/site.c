/* See site.h.  The table is fixed-size and open-addressed; a site claims a
 * slot with one compare-and-swap, counters are relaxed atomics (every
 * recording is on a slow path), and the report is written with the
 * allocation-free formatter. */
#define _GNU_SOURCE
#include "site.h"

#include <dlfcn.h>
#include <unwind.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "msg.h"
#include "options.h"
#include "fmath.h"
#include "os.h"
#include "policy.h"
#include "learn/sites.h"

#define SITES 4096 /* power of two; slot 0 is "other" */
#define PROBES 64
#define HIST 40
#define STACK 12

/* Counts (allocs, frees, histogram, lifetimes' weights) are kept in
 * 1/1024ths: a sample stands for a fractional number of allocations. */
#define FP 1024u

typedef struct site {
  _Atomic uintptr_t addr;
  hak_counter_t allocs, frees, bytes, live, peak, samples;
  hak_counter_t life_ms, life_n;
  /* The history per-site decisions are made from: Large/Big blocks only
   * (recorded exactly), their lifetimes, the gaps between allocations,
   * and realloc growths at this site. */
  hak_counter_t x_allocs, x_frees, x_life_ms, x_big, x_bytes;
  hak_counter_t gaps, gap_ms, grows;
  _Atomic uint32_t first_ms, last_ms;
  hak_counter_t hist[HIST];
  _Atomic int stack_state; /* 0 none, 1 being written, 2 ready */
  uintptr_t stack[STACK];
  int depth;
} site_t;

bool hak_sites_on;
hak_big_bss static site_t sites[SITES];
static uint64_t t0_ms;
static int stack_depth;

/* Ms since start, for lifetimes and gaps.  Read on every Large/Big
 * allocation and free while sites are recorded, where two clock reads
 * doubled the cost of a 64 KiB malloc+free; so while the controller runs
 * it keeps a coarse copy (one window old at most: the decisions are about
 * seconds), and the clock is read only when it does not. */
static _Atomic uint32_t site_coarse; /* 0: not kept */
static uint32_t site_clock_now(void) { return (uint32_t)(hak_os_now_ms() - t0_ms); }
uint32_t hak_site_clock(void) {
  uint32_t c = atomic_load_explicit(&site_coarse, memory_order_relaxed);
  return c ? c : site_clock_now();
}
hak_front void hak_site_clock_keep(bool on) {
  uint32_t now = site_clock_now();
  atomic_store_explicit(&site_coarse, on ? (now ? now : 1) : 0, memory_order_relaxed);
}

hak_front void hak_site_init(void) {
  t0_ms = hak_os_now_ms();
  atomic_store(&sites[0].addr, (uintptr_t)1);
  if (!hak_stats_on) return;
  if (HAK_OPT_STR(PROFILE)) hak_sites_on = true;
  stack_depth = (int)HAK_OPT(PROFILE_STACK);
}

static uint16_t site_slot(void *site) {
  uintptr_t a = (uintptr_t)site;
  if (a <= 1) return 0;
  uint64_t hsh = (uint64_t)a * 0x9E3779B97F4A7C15ull;
  for (unsigned i = 0; i < PROBES; i++) {
    unsigned k = (unsigned)((hsh >> 52) + i) & (SITES - 1);
    if (k == 0) continue;
    uintptr_t cur = atomic_load_explicit(&sites[k].addr, memory_order_acquire);
    if (cur == a) return (uint16_t)k;
    if (cur == 0) {
      if (atomic_compare_exchange_strong_explicit(&sites[k].addr, &cur, a, memory_order_acq_rel,
                                                  memory_order_acquire))
        return (uint16_t)k;
      if (cur == a) return (uint16_t)k;
    }
  }
  return 0; /* table full: the "other" row */
}

#define ADD(c, n) atomic_fetch_add_explicit(&(c), (n), memory_order_relaxed)
/* The learner's histories alone (learning without HAKMEM_PROFILE; the
 * profile's counters, explicit hak_alloc_cs calls' included, are then not
 * kept): plain relaxed stores, no locked read-modify-write.  Two threads
 * at one site may lose an update now and then, which a heuristic over
 * thousands shrugs off; the locked adds cost as much as the rest of a
 * 64 KiB malloc+free. */
#define BUMP(c, n) atomic_store_explicit(&(c), atomic_load_explicit(&(c), memory_order_relaxed) + (n), \
                                         memory_order_relaxed)

/* Histogram bin: log2 of the size; the last bin takes everything from
 * 2^(HIST-1) bytes up (requests up to HAK_MAX_REQUEST reach here). */
static inline unsigned hist_bin(size_t size) {
  unsigned b = size ? hak_bsr(size) : 0;
  return b < HIST ? b : HIST - 1;
}

/* A sample of `weight` bytes stands for weight/size allocations, in FP units. */
static inline uint64_t estimate(size_t size, size_t weight) {
  if (!weight || !size) return FP;
  return ((uint64_t)weight * FP + size / 2) / size;
}

static inline unsigned long long fp_round(unsigned long long v) { return (v + FP / 2) / FP; }

size_t hak_site_weight(size_t size) {
  double mean = (double)HAK_OPT(PROFILE_SAMPLE);
  double p = 1.0 - hak_exp(-(double)size / mean);
  return p > 0 ? (size_t)((double)size / p + 0.5) : (size_t)mean;
}

/* Stacks come from libgcc's unwinder, linked in: glibc's backtrace()
 * would dlopen it on first use, which must not happen inside malloc (the
 * loader may be mid-way through loading us). */
typedef struct unwind_acc {
  uintptr_t frames[STACK + 8];
  int n, max;
} unwind_acc_t;

static _Unwind_Reason_Code unwind_one(struct _Unwind_Context *ctx, void *arg) {
  unwind_acc_t *u = arg;
  uintptr_t ip = (uintptr_t)_Unwind_GetIP(ctx);
  if (!ip) return _URC_END_OF_STACK;
  u->frames[u->n++] = ip;
  return u->n < u->max ? _URC_NO_REASON : _URC_END_OF_STACK;
}

static void capture_stack(site_t *s) {
  int z = 0;
  if (!stack_depth || atomic_load_explicit(&s->stack_state, memory_order_relaxed) ||
      !atomic_compare_exchange_strong(&s->stack_state, &z, 1))
    return;
  unwind_acc_t u = {.n = 0, .max = stack_depth + 8 < STACK + 8 ? stack_depth + 8 : STACK + 8};
  _Unwind_Backtrace(unwind_one, &u);
  /* Keep the callers of the site's function: drop hakmem's own frames and
   * the site itself (the report names it anyway). */
  int first = 0;
  while (first < u.n && u.frames[first] != atomic_load(&s->addr)) first++;
  first = first == u.n ? 0 : first + 1;
  int d = 0;
  for (int i = first; i < u.n && d < stack_depth && d < STACK; i++) s->stack[d++] = u.frames[i];
  s->depth = d;
  atomic_store_explicit(&s->stack_state, 2, memory_order_release);
}

/* The history per-site decisions read, for one Large/Big allocation that
 * stands for n (learning alone samples Large blocks: alloc.c); `plain`:
 * the learner's alone (BUMP, above).  Gaps are counted at Big allocations
 * (the reuse rule's), which are all recorded. */
#define HIST_ADD(c, n) \
  do {                 \
    if (plain)         \
      BUMP(c, n);      \
    else               \
      ADD(c, n);       \
  } while (0)
static void history_alloc(site_t *s, size_t size, bool big, bool plain, uint64_t n) {
  uint32_t now = hak_site_clock() + 1; /* 0: never */
  uint32_t last;
  if (plain) {
    last = atomic_load_explicit(&s->last_ms, memory_order_relaxed);
    atomic_store_explicit(&s->last_ms, now, memory_order_relaxed);
  } else {
    last = atomic_exchange_explicit(&s->last_ms, now, memory_order_relaxed);
  }
  if (!last) {
    atomic_store_explicit(&s->first_ms, now, memory_order_relaxed);
  } else if (big) {
    HIST_ADD(s->gaps, 1);
    HIST_ADD(s->gap_ms, now > last ? now - last : 0);
  }
  HIST_ADD(s->x_allocs, n);
  HIST_ADD(s->x_bytes, size * n);
  if (big) HIST_ADD(s->x_big, 1);
}

uint16_t hak_site_alloc(void *site, size_t size, size_t weight, bool big) {
  uint16_t k = site_slot(site);
  site_t *s = &sites[k];
  if (hak_sites_learning && !hak_sites_on) { /* no profile: the history only */
    history_alloc(s, size, big, true, weight ? weight : 1);
    return k;
  }
  uint64_t est = estimate(size, weight);
  if (!weight) history_alloc(s, size, big, false, 1);
  uint64_t bytes = weight ? weight : size;
  ADD(s->allocs, est);
  ADD(s->bytes, bytes);
  if (weight) ADD(s->samples, 1);
  ADD(s->hist[hist_bin(size)], est);
  uint64_t live = ADD(s->live, bytes) + bytes;
  unsigned long long peak = atomic_load_explicit(&s->peak, memory_order_relaxed);
  while (live > peak && !atomic_compare_exchange_weak_explicit(&s->peak, &peak, live,
                                                               memory_order_relaxed,
                                                               memory_order_relaxed)) {
  }
  if (k) capture_stack(s);
  return k;
}

void hak_site_free(uint16_t k, size_t size, size_t weight, uint32_t born) {
  site_t *s = &sites[k & (SITES - 1)];
  /* The coarse copy lags the clock by up to a window: a block born on a
   * fresh reading may seem to die before it was born. */
  uint32_t now = hak_site_clock();
  uint32_t life = now > born ? now - born : 0;
  if (hak_sites_learning && !hak_sites_on) {
    uint64_t n = weight ? weight : 1; /* the blocks this sampled one stands for */
    BUMP(s->x_frees, n);
    BUMP(s->x_life_ms, life * n);
    return;
  }
  uint64_t est = estimate(size, weight);
  uint64_t bytes = weight ? weight : size;
  ADD(s->frees, est);
  atomic_fetch_sub_explicit(&s->live, bytes, memory_order_relaxed);
  ADD(s->life_ms, (uint64_t)life * est);
  ADD(s->life_n, est);
  if (!weight) {
    ADD(s->x_frees, 1);
    ADD(s->x_life_ms, life);
  }
}

void hak_site_grow(void *site) {
  if (site) ADD(sites[site_slot(site)].grows, 1);
}

bool hak_site_history(unsigned k, hak_site_history_t *h) {
  if (k >= SITES) return false;
  site_t *s = &sites[k];
  uintptr_t a = atomic_load_explicit(&s->addr, memory_order_acquire);
  if (!a || a == 1 || !atomic_load_explicit(&s->x_allocs, memory_order_relaxed)) return false;
  h->addr = a;
  h->allocs = atomic_load_explicit(&s->x_allocs, memory_order_relaxed);
  h->frees = atomic_load_explicit(&s->x_frees, memory_order_relaxed);
  h->life_ms = atomic_load_explicit(&s->x_life_ms, memory_order_relaxed);
  h->big = atomic_load_explicit(&s->x_big, memory_order_relaxed);
  h->bytes = atomic_load_explicit(&s->x_bytes, memory_order_relaxed);
  h->gaps = atomic_load_explicit(&s->gaps, memory_order_relaxed);
  h->gap_ms = atomic_load_explicit(&s->gap_ms, memory_order_relaxed);
  h->grows = atomic_load_explicit(&s->grows, memory_order_relaxed);
  uint32_t f = atomic_load_explicit(&s->first_ms, memory_order_relaxed);
  uint32_t l = atomic_load_explicit(&s->last_ms, memory_order_relaxed);
  h->first_ms = f ? f - 1 : 0;
  h->last_ms = l ? l - 1 : 0;
  return true;
}

unsigned hak_site_capacity(void) { return SITES; }

bool hak_site_history_of(uintptr_t a, hak_site_history_t *h) {
  if (a <= 1) return false;
  uint64_t hsh = (uint64_t)a * 0x9E3779B97F4A7C15ull;
  for (unsigned i = 0; i < PROBES; i++) {
    unsigned k = (unsigned)((hsh >> 52) + i) & (SITES - 1);
    uintptr_t cur = atomic_load_explicit(&sites[k].addr, memory_order_acquire);
    if (cur == a) return hak_site_history(k, h);
    if (!cur) return false;
  }
  return false;
}

void hak_site_count(void *site, size_t size) {
  site_t *s = &sites[site_slot(site)];
  ADD(s->allocs, FP);
  ADD(s->bytes, size);
  ADD(s->hist[hist_bin(size)], FP);
}

/* Exponential with mean HAKMEM_PROFILE_SAMPLE: -ln(U) * mean, with log2
 * from the bits of a xorshift draw: this runs at every refill of a
 * profiled heap, where a libm log() would cost more than the rest. */
int64_t hak_site_next_interval(uint64_t *rng) {
  uint64_t x = hak_xorshift(rng);
  uint64_t u = (x >> 11) | 1; /* 53 random bits, never 0 */
  unsigned b = hak_bsr(u);
  double f = (double)(u - (1ull << b)) / (double)(1ull << b); /* mantissa - 1 */
  double log2u = (double)b + f * (1.3465 - 0.3465 * f) - 53.0;   /* log2(U), U in (0,1] */
  double v = -log2u * 0.6931471805599453 * (double)HAK_OPT(PROFILE_SAMPLE);
  return v < 1 ? 1 : (int64_t)v;
}

/* ---- the report ---------------------------------------------------------- */

static const char *pattern_of(const site_t *s) {
  uint64_t allocs = fp_round(atomic_load(&s->allocs)), bytes = atomic_load(&s->bytes);
  uint64_t avg = allocs ? (bytes + allocs / 2) / allocs : 0;
  /* Tiny and Mid sizes; a sampled site's average is an estimate (bytes
   * over an estimated count) that wobbles around its class size, hence
   * the slack above the 64 KiB class. */
  if (avg <= HAK_MID_MAX + HAK_MID_MAX / 16) return "SMALL_FREQUENT";
  if (avg <= (1u << 20)) return "MEDIUM";
  return "LARGE_INFREQUENT";
}

typedef struct sym {
  const char *module, *function;
  uintptr_t offset, function_offset;
} sym_t;

/* dladdr names the main program as it was invoked (argv[0]); the report
 * wants a path it can open. */
static char exe_path[512];

static const char *module_path(const char *name) {
  if (name && name[0] == '/') return name;
  if (!exe_path[0]) {
    ssize_t n = readlink("/proc/self/exe", exe_path, sizeof exe_path - 1);
    exe_path[n > 0 ? n : 0] = 0;
  }
  return exe_path[0] ? exe_path : (name && *name ? name : "?");
}

static void symbolize(uintptr_t a, sym_t *out) {
  Dl_info info;
  memset(out, 0, sizeof *out);
  out->module = "?";
  out->function = "";
  if (a > 1 && dladdr((void *)a, &info)) {
    out->module = module_path(info.dli_fname);
    out->offset = a - (uintptr_t)info.dli_fbase;
    if (info.dli_sname) {
      out->function = info.dli_sname;
      out->function_offset = a - (uintptr_t)info.dli_saddr;
    }
  }
}

static const char *base_name(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

typedef hak_sink_t out_t;
#define oput hak_sink_printf
#define out_flush hak_sink_flush

/* JSON strings: module paths and symbol names need only these escapes. */
static void oput_json_str(out_t *o, const char *s) {
  oput(o, "\"");
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') oput(o, "\\%c", *s);
    else if ((unsigned char)*s < 0x20) oput(o, "\\u00%x%x", (unsigned)*s >> 4, (unsigned)*s & 15);
    else oput(o, "%c", *s);
  }
  oput(o, "\"");
}

/* "%p" in the path stands for the process id (one file per process). */
static int open_out(const char *path, const char *suffix) {
  char name[1024];
  size_t o = 0;
  for (const char *p = path; *p && o + 24 < sizeof name; p++) {
    if (p[0] == '%' && p[1] == 'p') {
      o += hak_fmt(name + o, sizeof name - o, "%d", hak_os_pid());
      p++;
    } else {
      name[o++] = *p;
    }
  }
  hak_fmt(name + o, sizeof name - o, "%s", suffix);
  return open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
}

int hak_site_write(const char *path) {
  uint16_t order[SITES];
  unsigned n = 0;
  for (unsigned k = 0; k < SITES; k++)
    if (atomic_load(&sites[k].addr) && atomic_load(&sites[k].allocs)) order[n++] = (uint16_t)k;
  /* Sort by bytes, largest first (insertion sort: a few hundred sites). */
  for (unsigned i = 1; i < n; i++) {
    uint16_t v = order[i];
    uint64_t key = atomic_load(&sites[v].bytes);
    unsigned j = i;
    while (j && atomic_load(&sites[order[j - 1]].bytes) < key) order[j] = order[j - 1], j--;
    order[j] = v;
  }
  char comm[64] = "?";
  hak_os_comm(comm, sizeof comm);
  int fds[3] = {open_out(path, ""), open_out(path, ".json"), open_out(path, ".folded")};
  if (fds[0] < 0 || fds[1] < 0 || fds[2] < 0) {
    for (int i = 0; i < 3; i++)
      if (fds[i] >= 0) close(fds[i]);
    hak_error("cannot write the profile %s", path);
    return -1;
  }
  char tb[4096], jb[4096], fb[4096];
  out_t t = {.buf = tb, .cap = sizeof tb, .fd = fds[0]};
  out_t j = {.buf = jb, .cap = sizeof jb, .fd = fds[1]};
  out_t f = {.buf = fb, .cap = sizeof fb, .fd = fds[2]};
  oput(&t, "hakmem profile of %s (pid %d): %u sites; Tiny/Mid sampled every ~%lld bytes (estimates), Large/Big exact\n",
       comm, hak_os_pid(), n, (long long)HAK_OPT(PROFILE_SAMPLE));
  oput(&t, "%4s %14s %10s %10s %12s %12s %10s %10s  %-16s %s\n", "rank", "bytes", "allocs", "frees",
       "live", "peak live", "avg size", "avg life", "pattern", "site");
  oput(&j, "{\"program\":");
  oput_json_str(&j, comm);
  oput(&j, ",\"pid\":%d,\"sample_bytes\":%lld,\"sites\":[", hak_os_pid(), (long long)HAK_OPT(PROFILE_SAMPLE));
  unsigned long long leak_sites = 0, leak_bytes = 0;
  for (unsigned i = 0; i < n; i++) {
    site_t *s = &sites[order[i]];
    uintptr_t a = atomic_load(&s->addr);
    uint64_t allocs = fp_round(atomic_load(&s->allocs)), frees = fp_round(atomic_load(&s->frees));
    uint64_t bytes = atomic_load(&s->bytes), live = atomic_load(&s->live);
    uint64_t peak = atomic_load(&s->peak), ln = atomic_load(&s->life_n);
    uint64_t life = ln ? atomic_load(&s->life_ms) / ln : 0;
    bool exact = atomic_load(&s->samples) == 0;
    sym_t sy;
    symbolize(order[i] ? a : 0, &sy);
    char where[512];
    if (!order[i]) hak_fmt(where, sizeof where, "(other: the site table was full)");
    else if (*sy.function) hak_fmt(where, sizeof where, "%s+0x%lx (%s)", sy.function, (unsigned long)sy.function_offset, base_name(sy.module));
    else hak_fmt(where, sizeof where, "%s+0x%lx", base_name(sy.module), (unsigned long)sy.offset);
    char lifes[32];
    if (ln) hak_fmt(lifes, sizeof lifes, "%llums", (unsigned long long)life);
    else hak_fmt(lifes, sizeof lifes, "-");
    oput(&t, "%4u %14llu %10llu %10llu %12llu %12llu %10llu %10s  %-16s %s\n", i + 1,
         (unsigned long long)bytes, (unsigned long long)allocs, (unsigned long long)frees,
         (unsigned long long)live, (unsigned long long)peak,
         (unsigned long long)(allocs ? (bytes + allocs / 2) / allocs : 0), lifes, pattern_of(s), where);
    if (live) leak_sites++, leak_bytes += live;
    oput(&j, "%s{\"address\":\"0x%lx\",\"module\":", i ? "," : "", (unsigned long)a);
    oput_json_str(&j, sy.module);
    oput(&j, ",\"offset\":\"0x%lx\",\"function\":", (unsigned long)sy.offset);
    oput_json_str(&j, sy.function);
    oput(&j, ",\"function_offset\":%lu,\"allocs\":%llu,\"frees\":%llu,\"bytes\":%llu,\"live_bytes\":%llu,"
             "\"peak_live_bytes\":%llu,\"avg_size\":%llu,\"avg_lifetime_ms\":%llu,\"pattern\":\"%s\","
             "\"exact\":%s,\"other\":%s,\"size_log2_histogram\":[",
         (unsigned long)sy.function_offset, (unsigned long long)allocs, (unsigned long long)frees,
         (unsigned long long)bytes, (unsigned long long)live, (unsigned long long)peak,
         (unsigned long long)(allocs ? (bytes + allocs / 2) / allocs : 0), (unsigned long long)life, pattern_of(s),
         exact ? "true" : "false", order[i] ? "false" : "true");
    for (int b = 0; b < HIST; b++) oput(&j, "%s%llu", b ? "," : "", fp_round(atomic_load(&s->hist[b])));
    /* The per-site decision in force, and the history it reads. */
    unsigned how = order[i] ? hak_site_lookup(hak_policy()->sites, (void *)a) : 0;
    oput(&j, "],\"decision\":[");
    static const char *const dnames[] = {"long_lived", "cache", "no_cache", "grow"};
    for (unsigned bit = 0, first = 1; bit < 4; bit++)
      if (how & (1u << bit)) oput(&j, "%s\"%s\"", first ? "" : ",", dnames[bit]), first = 0;
    hak_site_history_t hh;
    if (order[i] && hak_site_history(order[i], &hh))
      oput(&j, "],\"why\":{\"blocks\":%llu,\"freed\":%llu,\"mean_life_ms\":%llu,\"big\":%llu,"
               "\"mean_gap_ms\":%llu,\"grows\":%llu},\"stack\":[",
           (unsigned long long)hh.allocs, (unsigned long long)hh.frees,
           (unsigned long long)(hh.frees ? hh.life_ms / hh.frees : 0), (unsigned long long)hh.big,
           (unsigned long long)(hh.gaps ? hh.gap_ms / hh.gaps : 0), (unsigned long long)hh.grows);
    else
      oput(&j, "],\"stack\":[");
    /* Collapsed stack: outermost frame first, the site last. */
    int depth = atomic_load_explicit(&s->stack_state, memory_order_acquire) == 2 ? s->depth : 0;
    for (int d = depth - 1; d >= 0; d--) {
      sym_t fr;
      symbolize(s->stack[d], &fr);
      oput(&f, "%s`%s;", base_name(fr.module), *fr.function ? fr.function : "?");
    }
    oput(&f, "%s`%s %llu\n", base_name(sy.module), *sy.function ? sy.function : "?", (unsigned long long)bytes);
    for (int d = 0; d < depth; d++) {
      sym_t fr;
      symbolize(s->stack[d], &fr);
      oput(&j, "%s{\"address\":\"0x%lx\",\"module\":", d ? "," : "", (unsigned long)s->stack[d]);
      oput_json_str(&j, fr.module);
      oput(&j, ",\"offset\":\"0x%lx\",\"function\":", (unsigned long)fr.offset);
      oput_json_str(&j, fr.function);
      oput(&j, "}");
    }
    oput(&j, "]}");
  }
  oput(&j, "]}\n");
  oput(&t, "leaks at exit: %llu bytes live in %llu sites (Tiny/Mid figures are estimates)\n", leak_bytes, leak_sites);
  out_flush(&t);
  out_flush(&j);
  out_flush(&f);
  for (int i = 0; i < 3; i++) close(fds[i]);
  return 0;
}

hak_front void hak_site_at_exit(void) {
  const char *path = HAK_OPT_STR(PROFILE);
  if (hak_sites_on && path) hak_site_write(path);
}
