/* The ACE controller: one background thread that runs the learning windows.
 * Each window it returns idle memory whose purge delay has passed (every
 * tier, every heap), measures the window from counters (no clock or option
 * read on any fast path), feeds the learner, publishes the policy it
 * chooses, and moves per-class caps toward target hit rates.  It starts
 * lazily from a slow path, never from the loader and never in a process
 * that lives only a few milliseconds; a fork child starts its own later;
 * exit does not wait for it.  See docs/learning.md. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../internal.h"
#include "../msg.h"
#include "../options.h"
#include "../os.h"
#include "../prof.h"
#include "../site.h"
#include "control.h"
#include "sites.h"

enum { CTL_NEVER, CTL_IDLE, CTL_STARTING, CTL_RUNNING };
static _Atomic int ctl_state = CTL_NEVER;
static _Atomic bool ctl_stop;
static _Atomic bool ctl_hurry; /* hak_control_hurry: start without waiting for the age */
static hak_lock_t ctl_lock = HAK_LOCK_INIT; /* held while a window is processed */
static uint64_t ctl_start_ms, ctl_after_ms, ctl_min_committed;
static size_t ctl_hurry_committed = SIZE_MAX; /* starts it at any age (balanced) */
static int ctl_pid; /* the process ctl_start_ms and the log belong to */
static uint64_t ctl_t0_ns;

/* The learner and what it drives. */
static bool learning; /* a lifecycle runs (not in fast/minimal, not all knobs pinned) */
hak_big_bss static hak_learn_t L;
static hak_learn_knob_t knobs[HAK_NKNOBS];
static hak_policy_t base;           /* the fields no knob moves */
static uint64_t ref_hist[HAK_LEARN_HIST_BINS];
static bool have_ref;
static hak_os_costs_t costs;
static double mem_weight;           /* ns per allocation per MiB committed */
static int log_fd = -1, trace_fd = -1;

/* Histogram bins: the 80 small classes, then Large and Big allocations by
 * size (hak_lb_bin). */
#define NBINS HAK_HIST_BINS
_Static_assert(NBINS <= HAK_LEARN_HIST_BINS, "the learner keeps every bin");
/* A window with fewer allocations says nothing, unless the priced work in
 * it (below) took a tenth of its time: a program that allocates little
 * because each allocation is dear (realloc-grow: 500-1,400 allocations a
 * window, each copying ~20 us worth) must still be measured, and an arm
 * that makes allocations slow must not be passed over for it. */
#define MIN_OPS 1000
#define BUSY_SHARE 10

typedef struct sample {
  uint64_t ns, ops, faults, mmap, munmap, madvise, mremap, committed;
  hak_prof_snap_t prof;
  hak_learn_counts_t c;
} sample_t;
static sample_t prev;
/* The heaps were asked to fold their counts before the end of this window,
 * and of the one before: a window's counts are its own if both were. */
static bool fold_asked, fold_asked_before;
/* The window running now settles a cache knob's change (not measured). */
static bool settling;
/* The next window plays a challenger, and lasts a third of a window.  In
 * LEARN every other window is a challenger's, so exploring cost up to half
 * the run at its arms' price: on large-ws the first trial of a 1 MiB big
 * threshold cost 4.6 x the incumbent's window (its 1 MiB blocks faulted in
 * as Big mappings), and the trials were 17 % of a 1.9 s learning run.  A
 * window's cost is per allocation, so a shorter one measures the same
 * thing with fewer samples. */
#define SHORT_DIV 3
static bool short_next;
static bool trialing; /* the window running now plays a challenger */
/* Windows whose cost the learner was fed: a process with none learned
 * nothing (it exited before its first window, or no window had enough
 * allocations to measure), and has no policy to print or write at exit.
 * A fork child keeps the count with what the parent learned. */
static uint32_t fed_windows;
#define FOLD_LEAD_NS 1000000u /* the heaps are asked to fold this long before a window ends */
#define FOLD_WAIT_NS 250000u  /* and waited for in steps of this, */
#define FOLD_WAITS 40         /* at most this many (10 ms) */

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

static void take_sample(sample_t *s) {
  hak_stats_learn(&s->c);
  s->ns = hak_os_now_ns();
  s->ops = 0;
  for (unsigned b = 0; b < HAK_LB_BINS; b++) s->ops += s->c.lb_size[b];
  for (unsigned i = 0; i < HAK_NCLASS; i++) s->ops += s->c.allocs[i];
  s->faults = hak_os_minflt();
  s->mmap = LOAD(hak_os.n_mmap);
  s->munmap = LOAD(hak_os.n_munmap);
  s->madvise = LOAD(hak_os.n_madvise);
  s->mremap = LOAD(hak_os.n_mremap);
  hak_prof_snapshot(&s->prof);
  s->committed = LOAD(hak_os.committed);
}

/* A slow-path event's time in the window: the window's own sampled mean,
 * shrunk toward the run's by PRIOR_SAMPLES pseudo-samples.  The run's mean
 * alone made every arm's event cost the same: large-ws ran 8 % more
 * allocations a window with a 32 MiB Large cache (its allocations hit the
 * cache) and cost the same per allocation.  The prior keeps a window with
 * a few samples, or one preempted sample among them, near the run's mean. */
#define PRIOR_SAMPLES 64.0
static double event_ns(const sample_t *a, const sample_t *b, int c) {
  double n = (double)(b->prof.timed[c] - a->prof.timed[c]);
  double ns = (double)(b->prof.cycles[c] - a->prof.cycles[c]) * b->prof.ns_per_cycle;
  return (ns + PRIOR_SAMPLES * b->prof.mean_ns[c]) / (n + PRIOR_SAMPLES);
}

/* The window's cost, ns per allocation (lower is better):
 *   (faults x fault + sum of kernel calls x their cost + bytes realloc
 *    copied x copy + sum of slow-path events x their mean time) / ops
 *   +  W x committed MiB
 * Kernel calls are priced once at start (hak_os_costs), copies at the
 * first window that copies (hak_os_copy_cost): a
 * growing buffer's copies are most of its cost (realloc-grow: 70 % of the
 * time in memcpy), and W_MAX and the big threshold decide how often it
 * moves.  A slow-path
 * category's mean time is the window's sampled mean, shrunk toward the
 * run's (event_ns).  Refills are left out: no knob moves their cost, and
 * they are timed only for HAKMEM_PROF's report (heap.c). */
static double priced_ns(const sample_t *a, const sample_t *b) {
  /* The copy is priced at the first window that copies (hak_os_copy_cost). */
  if (b->c.realloc_copied != a->c.realloc_copied && !costs.copy_ns_per_byte) costs.copy_ns_per_byte = hak_os_copy_cost();
  double t = (double)(b->faults - a->faults) * costs.fault_ns + (double)(b->mmap - a->mmap) * costs.mmap_ns +
             (double)(b->munmap - a->munmap) * costs.munmap_ns +
             (double)(b->madvise - a->madvise) * costs.madvise_ns + (double)(b->mremap - a->mremap) * costs.mremap_ns +
             (double)(b->c.realloc_copied - a->c.realloc_copied) * costs.copy_ns_per_byte;
  for (int c = 0; c < HAK_PROF_N; c++)
    if (c != HAK_PROF_OS_CALL && c != HAK_PROF_REFILL) t += (double)(b->prof.events[c] - a->prof.events[c]) * event_ns(a, b, c);
  return t;
}

static double window_mem(const sample_t *a, const sample_t *b) {
  return mem_weight * (double)(a->committed + b->committed) / 2 / (1 << 20);
}

static double window_cost(const sample_t *a, const sample_t *b, double priced, uint64_t ops) {
  return priced / (double)ops + window_mem(a, b);
}

/* ---- output ---------------------------------------------------------------- */

static void policy_text(hak_sink_t *o, const hak_policy_t *p, bool json) {
  for (unsigned k = 0; k < HAK_NKNOBS; k++) {
    double v = hak_knob_value(k, p);
    long long whole = (long long)v, frac = (long long)((v - (double)whole) * 1000 + 0.5);
    if (json) hak_sink_printf(o, "%s\"%s\":%lld", k ? "," : "", hak_knob_name(k), whole);
    else hak_sink_printf(o, " %s=%lld", hak_knob_name(k), whole);
    if (frac) hak_sink_printf(o, ".%u%u%u", (unsigned)(frac / 100), (unsigned)(frac / 10 % 10), (unsigned)(frac % 10));
  }
}

static void best_policy(hak_policy_t *out) {
  if (learning) hak_knobs_apply(knobs, hak_learn_best(&L), &base, out);
  else *out = *hak_policy();
}

static void trace(const char *what) {
  if (trace_fd < 0) return;
  char buf[1024];
  hak_sink_t o = {.buf = buf, .cap = sizeof buf, .fd = trace_fd};
  uint64_t ms = (hak_os_now_ns() - ctl_t0_ns) / 1000000;
  hak_sink_printf(&o, "hakmem: learn %llu.%03llus: %s (%s); best:", (unsigned long long)(ms / 1000),
                  (unsigned long long)(ms % 1000), what, hak_learn_reason(&L));
  hak_policy_t p;
  best_policy(&p);
  policy_text(&o, &p, false);
  hak_sink_printf(&o, "\n");
  hak_sink_flush(&o);
}

static void log_window(uint64_t ms, const char *state, bool settle, bool trial, const hak_policy_t *applied, double cost,
                       uint64_t ops, const sample_t *a, const sample_t *b) {
  if (log_fd < 0) return;
  char buf[2048];
  hak_sink_t o = {.buf = buf, .cap = sizeof buf, .fd = log_fd};
  hak_sink_printf(&o, "{\"t_ms\":%llu,\"state\":\"%s\",\"policy\":{", (unsigned long long)ms, state);
  policy_text(&o, applied, true);
  /* Costs are small decimals: printed in thousandths of a ns. */
  long long r = cost >= 0 ? (long long)(cost * 1000 + 0.5) : -1;
  double p99 = learning ? hak_learn_p99(&L) : 0, shift = learning ? hak_learn_shift(&L) : -1;
  if (r >= 0) hak_sink_printf(&o, "},\"reward\":%lld.%03lld", r / 1000, r % 1000);
  else hak_sink_printf(&o, "},\"reward\":null");
  long long q = (long long)(p99 * 1000 + 0.5);
  hak_sink_printf(&o, ",\"p99\":%lld.%03lld", q / 1000, q % 1000);
  if (shift >= 0) {
    long long sh = (long long)(shift * 1000 + 0.5);
    hak_sink_printf(&o, ",\"shift\":%lld.%03lld", sh / 1000, sh % 1000);
  } else {
    hak_sink_printf(&o, ",\"shift\":null");
  }
  hak_sink_printf(&o, ",\"settle\":%s,\"trial\":%s", settle ? "true" : "false", trial ? "true" : "false");
  hak_sink_printf(&o, ",\"ops\":%llu,\"faults\":%llu,\"copied\":%llu,\"committed\":%llu}\n",
                  (unsigned long long)ops, (unsigned long long)(b->faults - a->faults),
                  (unsigned long long)(b->c.realloc_copied - a->c.realloc_copied), (unsigned long long)b->committed);
  hak_sink_flush(&o);
}

/* ---- ACE: per-class caps ----------------------------------------------------- */

static uint8_t mid_calm[HAK_NCLASS];

/* A Mid class whose refills keep having to carve fresh blocks gets a
 * larger refill batch (up to 128 KiB), while the extra bytes over all
 * classes stay within HAKMEM_BUDGET_MID; a class that stops carving
 * shrinks back, after eight calm windows. */
static void ace_mid(const sample_t *a, const sample_t *b, double target) {
  size_t extra = 0;
  size_t def = hak_policy()->slab_carve_bytes;
  for (unsigned c = HAK_NTINY; c < HAK_NCLASS; c++) {
    unsigned sh = LOAD(hak_carve_shift[c]);
    if (sh && ((size_t)1 << sh) > def) extra += ((size_t)1 << sh) - def;
  }
  for (unsigned c = HAK_NTINY; c < HAK_NCLASS; c++) {
    uint64_t r = b->c.refills[c] - a->c.refills[c], k = b->c.carves[c] - a->c.carves[c];
    unsigned sh = LOAD(hak_carve_shift[c]);
    size_t cur = sh ? (size_t)1 << sh : def;
    if (r < 8) continue;
    double hit = 1.0 - (double)k / (double)r; /* refills served by freed blocks */
    if (hit < target && cur < ((size_t)128 << 10) && extra + cur <= (size_t)HAK_OPT(BUDGET_MID)) {
      atomic_store_explicit(&hak_carve_shift[c], (uint8_t)(hak_bsr(cur) + 1), memory_order_relaxed);
      extra += cur;
      mid_calm[c] = 0;
    } else if (hit >= target && sh && ++mid_calm[c] >= 8) {
      size_t smaller = cur / 2;
      atomic_store_explicit(&hak_carve_shift[c], (uint8_t)(smaller <= def ? 0 : hak_bsr(smaller)), memory_order_relaxed);
      mid_calm[c] = 0;
    }
  }
}

/* ---- per-site decisions --------------------------------------------------------- */

static unsigned sites_tick;

/* Once a second: decisions from the sites' histories (while learning), and
 * a policy file's sites whose modules have been loaded since. */
static void sites_window(uint32_t windows) {
  uint64_t every = 1000 / (uint64_t)HAK_OPT(LEARN_WINDOW_MS);
  if ((sites_tick += windows) < (every ? every : 1)) return;
  sites_tick = 0;
  const hak_site_table_t *t = NULL;
  if (hak_sites_learning) t = hak_sites_learn(hak_site_clock(), base.sites, false);
  else if (HAK_OPT_STR(POLICY_FILE)) {
    t = hak_sites_file_table(false);
    if (t == base.sites) t = NULL;
  }
  if (!t) return;
  base.sites = t;
  hak_policy_t p = *hak_policy();
  p.sites = t;
  hak_policy_publish(&p);
}

/* ---- the window ---------------------------------------------------------------- */

/* Which allocations each knob acts on, under the best policy (the one a
 * trial of the knob would start from). */
static void knob_bins(void) {
  hak_policy_t p;
  hak_knobs_apply(knobs, hak_learn_best(&L), &base, &p);
  for (unsigned k = 0; k < HAK_NKNOBS; k++) {
    uint8_t lo, hi;
    hak_knob_bins(k, &p, &lo, &hi);
    hak_learn_knob_bins(&L, k, lo, hi);
  }
}

/* Whether decision d plays a challenger: another value of the knob on
 * trial than the best configuration's (LEARN), or a canary's challenger. */
static bool is_trial(const hak_learn_decision_t *d) {
  if (d->knob < 0) return false;
  return d->state == HAK_LEARN_STATE_LEARN ? d->cfg[d->knob] != hak_learn_best(&L)[d->knob] : d->challenger;
}

/* Whether decision d's window may be short (short_next): it plays a
 * challenger, measured (a settling one needs the whole window to settle),
 * and the window just run, if it was short, was fed, and at its rate a
 * third of a window still holds enough allocations to be fed (else the
 * challenger would be replayed short, unfed, for ever). */
static bool plays_short(const hak_learn_decision_t *d, bool fed, uint64_t ops, uint64_t ns) {
  if (d->settle || !is_trial(d) || (short_next && !fed) || !ns) return false;
  uint64_t step = (uint64_t)HAK_OPT(LEARN_WINDOW_MS) * 1000000u / SHORT_DIV;
  return (double)ops * (double)step / (double)ns >= 2.0 * MIN_OPS;
}

/* `windows`: how many windows long this one was (ctl_sleep: more than one
 * only in FROZEN). */
static void window(uint32_t windows) {
  uint64_t now_ms = hak_os_now_ms();
  /* What the window ran under, for its log line: the state and policy
   * decided below are the next window's. */
  const hak_policy_t *ran = hak_policy();
  const char *ran_state = learning ? hak_learn_state_name(hak_learn_state(&L)) : "FROZEN";
  bool ran_settle = learning && settling, ran_trial = learning && trialing;
  hak_site_clock_keep(true);
  /* Idle memory back to the OS, whoever owns it: what is due. */
  hak_heap_purge_all(now_ms);
  hak_heap_park_tick(now_ms, false);
  hak_large_trim(false);
  hak_big_trim(false);
  hak_segment_cache_tick(now_ms, false);

  sample_t cur;
  take_sample(&cur);
  uint64_t ops = cur.ops - prev.ops;
  double cost = -1;
  /* The small-object counts are the statistics', which each heap folds
   * at its next slow call once asked (FOLD_LEAD_NS before a window ends):
   * a window's difference is its own if the heaps were asked before it
   * began and before it ended.  FROZEN windows do not ask (folding every
   * current slab is work the frozen state should not do), so the first
   * watched window after them starts from stale counts and is skipped. */
  bool fresh = fold_asked && fold_asked_before;
  if (learning) {
    hak_learn_state_t before = hak_learn_state(&L);
    unsigned ev = 0;
    if (before == HAK_LEARN_STATE_FROZEN || !fresh) {
      ev = hak_learn_skip(&L, windows);
    } else { /* a window that may be fed: priced (FROZEN ones never are) */
      double priced = priced_ns(&prev, &cur);
      if (ops >= MIN_OPS || (ops > 0 && priced * BUSY_SHARE >= (double)(cur.ns - prev.ns))) {
        uint64_t hist[NBINS];
        for (unsigned i = 0; i < HAK_NCLASS; i++) hist[i] = cur.c.allocs[i] - prev.c.allocs[i];
        for (unsigned b = 0; b < HAK_LB_BINS; b++) hist[HAK_NCLASS + b] = cur.c.lb_size[b] - prev.c.lb_size[b];
        cost = window_cost(&prev, &cur, priced, ops);
        knob_bins();
        hak_learn_mem_share(&L, cost > 0 ? window_mem(&prev, &cur) / cost : 1.0);
        ev = hak_learn_feed(&L, cost, hist, NBINS);
        fed_windows++;
      }
    }
    hak_learn_decision_t d;
    hak_learn_next(&L, &d);
    settling = d.settle;
    trialing = is_trial(&d);
    short_next = plays_short(&d, cost >= 0, ops, cur.ns - prev.ns);
    hak_policy_t p;
    hak_knobs_apply(knobs, d.cfg, &base, &p);
    if (!hak_policy_publish(&p)) {
      /* No room for another snapshot: stay on the best one for good. */
      hak_knobs_apply(knobs, hak_learn_best(&L), &base, &p);
      hak_policy_publish(&p);
      learning = false;
      trace("no room for more policies: FROZEN for good");
    }
    /* Slow paths are measured, and counts kept fresh, while learning or
     * watching only. */
    hak_prof_measure(d.state != HAK_LEARN_STATE_FROZEN);
    fold_asked_before = fold_asked;
    fold_asked = d.state != HAK_LEARN_STATE_FROZEN;
    hak_heap_fold_watch(fold_asked);
    if (ev & HAK_LEARN_EV_STATE) {
      char what[64];
      hak_fmt(what, sizeof what, "%s -> %s", hak_learn_state_name(before), hak_learn_state_name(d.state));
      trace(what);
    } else if (ev & HAK_LEARN_EV_BEST) {
      trace("best policy changed");
    }
    if (before != HAK_LEARN_STATE_FROZEN && fresh && ops >= MIN_OPS) {
      ace_mid(&prev, &cur, HAK_OPT_REAL_VALUE(TARGET_HIT_MID));
      hak_large_ace(HAK_OPT_REAL_VALUE(TARGET_HIT_LARGE));
    }
  }
  sites_window(windows);
  log_window((cur.ns - ctl_t0_ns) / 1000000, ran_state, ran_settle, ran_trial, ran, cost, ops, &prev, &cur);
  prev = cur;
}

/* Whether the mode runs the controller (not minimal or fast), and whether
 * it learns from the start (learning, research) rather than watching. */
static bool ctl_wanted(void) {
  long long mode = HAK_OPT(MODE);
  return hak_stats_on && mode != HAK_MODE_MINIMAL && mode != HAK_MODE_FAST;
}
static bool ctl_learn_mode(void) {
  long long mode = HAK_OPT(MODE);
  return mode == HAK_MODE_LEARNING || mode == HAK_MODE_RESEARCH;
}

/* The lifecycle's state (the learner, its knobs, the base policy: 12 KiB
 * of pages) is set up when the controller starts, or at exit for a
 * policy to write, not at start-up: a process that never starts the
 * controller (balanced mode, under 8 MiB committed) never touches it.
 * Under ctl_lock. */
static bool learner_ready;
static void learner_init(void) {
  if (learner_ready) return;
  learner_ready = true;
  if (!ctl_wanted()) return;
  bool learn_mode = ctl_learn_mode();
  hak_learn_params_t prm;
  hak_learn_params_default(&prm);
  prm.sel.algo = HAK_OPT(LEARN_ALGO) == 1 ? HAK_LEARN_ELO : HAK_LEARN_UCB1;
  prm.sel.seed = (uint64_t)hak_os_pid() * 0x9E3779B97F4A7C15ull;
  prm.canary_frac = HAK_OPT_REAL_VALUE(CANARY_FRAC);
  prm.shift_l1 = HAK_OPT_REAL_VALUE(SHIFT_L1);
  prm.carry = (double)FOLD_LEAD_NS / ((double)HAK_OPT(LEARN_WINDOW_MS) * 1e6);
  uint64_t per_sec = 1000 / (uint64_t)HAK_OPT(LEARN_WINDOW_MS);
  prm.freeze_after = (uint32_t)((uint64_t)HAK_OPT(FREEZE_SEC) * (per_sec ? per_sec : 1));
  /* FROZEN stretches (nothing measured) alternate with CANARY ones, which
   * time the Large and Big slow paths (the small ones are never measured:
   * allocation volume and the size-class mix come from the statistics):
   * balanced watches one window in seven, learning one in two. */
  prm.canary_every = learn_mode ? 20 : 60;
  prm.canary_len = learn_mode ? 20 : 10;
  bool from_file = HAK_OPT_STR(POLICY_FILE) != NULL;
  prm.start = learn_mode && !from_file ? HAK_LEARN_STATE_LEARN : HAK_LEARN_STATE_FROZEN;
  base = *hak_policy();
  hak_knobs_init(knobs, &base);
  learning = hak_learn_init(&L, &prm, knobs, HAK_NKNOBS) == 0;
  if (learning && have_ref) hak_learn_set_reference(&L, ref_hist, NBINS);
}

/* How many windows to sleep before the next.  One while the learner
 * learns or watches, or each window is logged; in FROZEN, until its next
 * watch, but no longer than a quarter of the purge delay, by when idle
 * memory may have come due (so it goes back at most a quarter late).
 * Each wake-up costs the program: gcc -O2 -c of three files ran 6 %
 * faster with this thread waking every 50 ms doing nothing than every
 * 50 ms doing a window, and 3 % faster still with no thread at all. */
static uint32_t ctl_sleep(void) {
  if (log_fd >= 0) return 1;
  uint32_t idle = learning ? hak_learn_idle(&L) : UINT32_MAX;
  uint64_t tick = hak_policy()->purge_delay_ms / 4 / (uint64_t)HAK_OPT(LEARN_WINDOW_MS);
  uint64_t n = idle < tick ? idle : tick;
  return n > 1 ? (uint32_t)n : 1;
}

static void *controller(void *arg) {
  (void)arg;
  hak_os_costs(&costs);
  hak_lock(&ctl_lock);
  learner_init();
  take_sample(&prev);
  short_next = trialing = false;
  fold_asked = fold_asked_before = false; /* the first windows' counts go back before them (a fork child's too) */
  hak_unlock(&ctl_lock);
  atomic_store_explicit(&ctl_state, CTL_RUNNING, memory_order_release);
  hak_big_idle_return(true); /* each window purges what is due (window) */
  uint64_t next = hak_os_now_ns();
  uint64_t step = (uint64_t)HAK_OPT(LEARN_WINDOW_MS) * 1000000u;
  uint32_t n = 1;
  while (!atomic_load_explicit(&ctl_stop, memory_order_acquire)) {
    next += short_next ? step / SHORT_DIV : step * n;
    /* The heaps fold their small-object counts at their first slow call
     * after the ask, which must come before the window ends to count in
     * it: asked at the end, large-ws's Mid counts came a window late (0.1 to
     * 2 x the window's own), and asked 0.3 ms before, in half the windows.
     * A thread preempted then (two CPU hogs beside it) folds later: the
     * window waits a little for the heaps that folded last time. */
    if (fold_asked) {
      hak_os_sleep_until_ns(next - FOLD_LEAD_NS);
      hak_heap_fold_now();
    }
    hak_os_sleep_until_ns(next);
    /* Woken late (starved of CPU): the heaps folded when asked, and what
     * they allocated since would count in the next window, against this
     * one's faults and time.  Asked again, they fold up to now. */
    if (fold_asked && hak_os_now_ns() > next + FOLD_LEAD_NS) hak_heap_fold_now();
    for (unsigned i = 0; fold_asked && i < FOLD_WAITS && !hak_heaps_folded(); i++)
      hak_os_sleep_until_ns(hak_os_now_ns() + FOLD_WAIT_NS);
    if (atomic_load_explicit(&ctl_stop, memory_order_acquire)) break;
    hak_lock(&ctl_lock);
    window(n);
    n = ctl_sleep();
    hak_unlock(&ctl_lock);
    /* Late windows are not made up for: past the fold's wait and the
     * window's own work, the schedule starts again from now.  Catching up
     * ran windows back to back, 4 ms apart and a few hundred allocations
     * each, after every late one (a debug build beside one CPU hog: the
     * L1 shift of a stationary mix's windows at 0.8-1.0 at the 80th
     * percentile, where an idle machine shows 0.15). */
    uint64_t t = hak_os_now_ns();
    if (t > next + FOLD_LEAD_NS + (uint64_t)FOLD_WAITS * FOLD_WAIT_NS) next = t;
  }
  return NULL;
}

/* ---- starting, stopping, fork ------------------------------------------------ */

static int open_path(const char *path) {
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
  name[o] = 0;
  int fd = hak_os_open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) hak_error("cannot write %s; ignored", name);
  return fd;
}

/* A fork child's own start: its age counts from here, and a log named per
 * process (%p) gets the child's own file. */
static void ctl_new_process(void) {
  ctl_pid = hak_os_pid();
  atomic_store_explicit(&ctl_hurry, false, memory_order_relaxed);
  hak_site_clock_keep(false);
  ctl_start_ms = hak_os_now_ms();
  const char *log = HAK_OPT_STR(LEARN_LOG);
  if (log_fd >= 0 && log && strstr(log, "%p")) {
    hak_os_close(log_fd);
    log_fd = open_path(log);
  }
}

hak_front void hak_control_init(void) {
  long long mode = HAK_OPT(MODE);
  ctl_pid = hak_os_pid();
  ctl_start_ms = hak_os_now_ms();
  ctl_t0_ns = hak_os_now_ns();
  mem_weight = HAK_OPT_REAL_VALUE(LEARN_MEMORY_WEIGHT);
  if (!ctl_wanted()) return; /* no thread */
  /* Learning starts soon; balanced only in a process that has lived and
   * committed enough for idle memory and a changed workload to matter. */
  bool learn_mode = ctl_learn_mode();
  hak_sites_learning = learn_mode; /* Large/Big blocks' sites are recorded */
  ctl_after_ms = learn_mode ? 50 : 200;
  ctl_min_committed = learn_mode ? 0 : (uint64_t)8 << 20;
  /* A process that holds 128 MiB is worth a thread whatever its age: one
   * that took 400 MB in its first 200 ms, freed it and waited kept it all.
   * (Learning starts at 50 ms anyway; sooner, its first windows would be
   * the heap's warm-up.) */
  if (!learn_mode) ctl_hurry_committed = (size_t)128 << 20;

  if (HAK_OPT_STR(LEARN_LOG)) log_fd = open_path(HAK_OPT_STR(LEARN_LOG));
  else if (mode == HAK_MODE_RESEARCH) log_fd = fcntl(2, F_DUPFD_CLOEXEC, 3);
  if (HAK_OPT(LEARN_TRACE)) trace_fd = fcntl(2, F_DUPFD_CLOEXEC, 3);
  atomic_store_explicit(&ctl_state, CTL_IDLE, memory_order_release);
}

void hak_control_set_reference(const uint64_t *hist, unsigned n) {
  unsigned k = n < NBINS ? n : NBINS;
  memcpy(ref_hist, hist, k * sizeof *hist);
  for (unsigned i = 0; i < k; i++) have_ref |= hist[i] != 0;
}

hak_front void hak_control_tick(uint64_t now_ms) {
  static __thread unsigned char skip __attribute__((tls_model("initial-exec")));
  if (hak_likely(atomic_load_explicit(&ctl_state, memory_order_relaxed) != CTL_IDLE)) return;
  /* Idle (a small or young process): the cheap test first, and the clock
   * read on one Large/Big allocation in 16 only (it was a third of a
   * 64 KiB malloc+free's instructions). */
  size_t committed = LOAD(hak_os.committed);
  if (committed < ctl_min_committed) return;
  if (committed < ctl_hurry_committed && !atomic_load_explicit(&ctl_hurry, memory_order_relaxed)) {
    if (!now_ms) {
      if (++skip & 15) return;
      now_ms = hak_os_now_ms();
    }
    if (now_ms - ctl_start_ms < ctl_after_ms) return;
  }
  int idle = CTL_IDLE;
  if (!atomic_compare_exchange_strong(&ctl_state, &idle, CTL_STARTING)) return;
  if (hak_os_pid() != ctl_pid) {
    /* The child of a fork made while this process had one thread, where
     * no fork handler runs (init.c): it starts afresh, as above. */
    ctl_new_process();
    atomic_store_explicit(&ctl_state, CTL_IDLE, memory_order_relaxed);
    return;
  }
  hak_forks_register(); /* before our thread exists */
  /* Little stack.  A pthread (the fallback) may allocate: this is a slow
   * path that holds no allocator lock. */
  if (!hak_os_side_thread_start(controller, (size_t)256 << 10)) {
    atomic_store_explicit(&ctl_state, CTL_NEVER, memory_order_relaxed);
    hak_big_idle_return(false); /* a Big free may have seen CTL_STARTING (hak_control_hurry) */
  }
}

/* The age test stands in for "has this process enough memory at stake to
 * pay for a thread?"; a BigCache over its fixed budget (128 MiB by
 * default) answers it directly.  True if a controller runs or starts. */
bool hak_control_hurry(void) {
  int s = atomic_load_explicit(&ctl_state, memory_order_relaxed);
  if (s == CTL_IDLE) {
    atomic_store_explicit(&ctl_hurry, true, memory_order_relaxed);
    hak_control_tick(hak_os_now_ms());
    s = atomic_load_explicit(&ctl_state, memory_order_relaxed);
  }
  return s == CTL_STARTING || s == CTL_RUNNING;
}

hak_front void hak_control_exit(void) {
  atomic_store_explicit(&ctl_stop, true, memory_order_release);
  hak_site_clock_keep(false);
  if (trace_fd < 0 && !HAK_OPT_STR(POLICY_OUT)) return;
  /* Wait for a window being processed (a few ms at most), not for the thread. */
  hak_lock(&ctl_lock);
  learner_init();
  hak_policy_t p;
  best_policy(&p);
  bool decided = false;
  if (hak_sites_learning) { /* the sites' whole run, for the file */
    const hak_site_table_t *t = hak_sites_learn(hak_site_clock(), base.sites, true);
    if (t) p.sites = t;
    decided = t && t->n;
  }
  /* Nothing learned and nothing read from a policy file: nothing to say.
   * Above all, no file written over the one a process of the same run
   * learned: a shell that ran the program exits after it. */
  if (!fed_windows && !decided && !HAK_OPT_STR(POLICY_FILE)) {
    hak_unlock(&ctl_lock);
    return;
  }
  if (trace_fd >= 0) {
    char buf[512];
    hak_sink_t o = {.buf = buf, .cap = sizeof buf, .fd = trace_fd};
    hak_sink_printf(&o, "hakmem: learned policy (%s):", learning ? hak_learn_state_name(hak_learn_state(&L)) : "FROZEN");
    policy_text(&o, &p, false);
    hak_sink_printf(&o, "\n");
    hak_sink_flush(&o);
  }
  if (HAK_OPT_STR(POLICY_OUT)) {
    const char *path = HAK_OPT_STR(POLICY_OUT);
    hak_policyfile_write(path, &p, learning ? L.ref : NULL, learning ? NBINS : 0,
                         learning ? hak_learn_state_name(hak_learn_state(&L)) : "FROZEN");
  }
  hak_unlock(&ctl_lock);
}

void hak_control_fork_prepare(void) { hak_lock(&ctl_lock); }
void hak_control_fork_parent(void) { hak_unlock(&ctl_lock); }
void hak_control_fork_child(void) {
  hak_lock_reset(&ctl_lock);
  /* The thread did not come along: the child starts its own when due. */
  hak_os_side_thread_forget();
  int s = atomic_load_explicit(&ctl_state, memory_order_relaxed);
  if (s == CTL_RUNNING || s == CTL_STARTING) atomic_store_explicit(&ctl_state, CTL_IDLE, memory_order_relaxed);
  ctl_new_process();
}
