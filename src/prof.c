/* See prof.h. */
#include "prof.h"

#include <time.h>
#include <x86intrin.h>

#include "msg.h"
#include "options.h"
#include "os.h"

_Atomic bool hak_prof_on;
bool hak_prof_report;
static __thread unsigned prof_left __attribute__((tls_model("initial-exec")));
static __thread uint64_t prof_rng __attribute__((tls_model("initial-exec")));
static unsigned prof_every = 64;
static hak_counter_t prof_calls[HAK_PROF_N], prof_cycles[HAK_PROF_N];
static uint64_t tsc0, ns0;

static const char *const prof_names[HAK_PROF_N] = {
#define X(id, name) name,
    HAK_PROF_CATEGORIES(X)
#undef X
};

hak_front void hak_prof_init(void) {
  tsc0 = __rdtsc();
  ns0 = hak_os_now_ns();
  prof_every = (unsigned)HAK_OPT(PROF_SAMPLE);
  if (!hak_stats_on || !HAK_OPT(PROF)) return;
  hak_prof_report = true;
  atomic_store_explicit(&hak_prof_on, true, memory_order_relaxed);
}

void hak_prof_measure(bool on) {
  if (!hak_stats_on || hak_prof_report) return;
  atomic_store_explicit(&hak_prof_on, on, memory_order_relaxed);
}

static double ns_per_cycle(void) {
  uint64_t dt = __rdtsc() - tsc0, dn = hak_os_now_ns() - ns0;
  return dt ? (double)dn / (double)dt : 0;
}

/* A sample longer than its clip was preempted or waited on the kernel for
 * something else: clipped, so that one unlucky sample does not stand for
 * prof_every events' worth of nothing.  The clip starts at 4M cycles and,
 * once a category has 32 samples, follows 16 x its mean (not below 64K
 * cycles): a preemption under load (a 4 ms time slice) cost a category
 * of ~1 us events up to 1.4 ms in one sample, and the learner's windows on
 * a loaded machine moved 1-6 x from one to the next with it.  What is
 * clipped off a long event is mostly kernel time, which the learner prices
 * by the calls' count anyway. */
#define PROF_CLIP_MAX ((uint64_t)1 << 22)
#define PROF_CLIP_MIN ((uint64_t)1 << 16)
static _Atomic uint64_t prof_clip[HAK_PROF_N];

static uint64_t clip_of(int i) {
  uint64_t c = atomic_load_explicit(&prof_clip[i], memory_order_relaxed);
  return c ? c : PROF_CLIP_MAX;
}

void hak_prof_snapshot(hak_prof_snap_t *s) {
  double npc = ns_per_cycle();
  s->ns_per_cycle = npc;
  for (int i = 0; i < HAK_PROF_N; i++) {
    uint64_t n = atomic_load_explicit(&prof_calls[i], memory_order_relaxed);
    uint64_t c = atomic_load_explicit(&prof_cycles[i], memory_order_relaxed);
    s->timed[i] = n;
    s->cycles[i] = c;
    s->events[i] = n * prof_every * (i == HAK_PROF_REFILL ? HAK_MEASURE_EVERY : 1);
    s->mean_ns[i] = n ? (double)c / (double)n * npc : 0;
    if (n >= 32) {
      uint64_t clip = 16 * (c / n);
      clip = clip < PROF_CLIP_MIN ? PROF_CLIP_MIN : clip > PROF_CLIP_MAX ? PROF_CLIP_MAX : clip;
      atomic_store_explicit(&prof_clip[i], clip, memory_order_relaxed);
    }
  }
}

/* The gaps between two timed events are random, uniform over 1 ..
 * 2 x HAKMEM_PROF_SAMPLE - 1 (mean HAKMEM_PROF_SAMPLE): every event is then
 * timed with the same odds whatever the pattern of the slow paths.  A fixed
 * gap of 64 timed only the frees of a malloc/free loop of Big blocks, never
 * its mallocs (both take one of the calls counted here), and the learner,
 * which counts each category's events from its timed ones, saw twice the
 * frees and no mallocs. */
uint64_t hak_prof_sample(void) {
  /* The controller's kernel calls are not the program's slow paths, and
   * its thread has no counters of its own (os.c). */
  if (hak_os_on_side_thread()) return 0;
  if (prof_left > 1) {
    prof_left--;
    return 0;
  }
  prof_left = 1 + (unsigned)(hak_xorshift(&prof_rng) % (2 * (uint64_t)prof_every - 1));
  return __rdtsc();
}

void hak_prof_record(int category, uint64_t start) {
  uint64_t d = __rdtsc() - start, clip = clip_of(category);
  if (d > clip) d = clip;
  atomic_fetch_add_explicit(&prof_calls[category], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&prof_cycles[category], d, memory_order_relaxed);
}

void hak_prof_print(int fd) {
  if (!hak_prof_report) return;
  double npc = ns_per_cycle();
  hak_fdprintf(fd, "hakmem: prof: 1 in %u slow-path events timed\n", prof_every);
  for (int i = 0; i < HAK_PROF_N; i++) {
    unsigned long long n = atomic_load(&prof_calls[i]);
    if (!n) continue;
    unsigned long long avg = (unsigned long long)((double)atomic_load(&prof_cycles[i]) * npc / (double)n);
    hak_fdprintf(fd, "hakmem: prof %-14s %10llu calls, %8llu ns avg\n", prof_names[i], n, avg);
  }
}
