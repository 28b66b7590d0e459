/* hakmem-bench-work: runs one workload and prints one result line.
 *
 *   hakmem-bench-work --workload NAME [--threads N] [--ops N] [--seed S]
 *                     [--no-latency]
 *   hakmem-bench-work --list
 *
 * --no-latency turns the sampling off (percentiles print as 0), so that an
 * instruction count sees only the workload and the allocator.
 *
 * Result line (one line, space-separated key=value, fixed key order):
 *   hakmem-bench workload=NAME threads=N ops=N seed=S secs=F ops_per_sec=F
 *   p50_ns=F p95_ns=F p99_ns=F samples=N minflt=N peak_rss_kb=N
 *   final_rss_kb=N live_kb=N
 */
#include "bench_common.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

extern const workload_t wl_json, wl_mir, wl_vm, wl_mixed, wl_tiny_hot,
    wl_random_mixed, wl_larson, wl_prod_cons, wl_fragment, wl_large_ws,
    wl_realloc_grow, wl_big_churn, wl_thread_churn, wl_thread_swap,
    wl_thread_swap_window, wl_big_buffers, wl_rptest, wl_xmalloc,
    wl_false_sharing, wl_alloc_test, wl_mstress, wl_espresso, wl_glibc_thread,
    wl_phase_change, wl_site_frag, wl_site_reuse, wl_big_batch;

static const workload_t *const workloads[] = {
    &wl_json,         &wl_mir,          &wl_vm,           &wl_mixed,
    &wl_tiny_hot,     &wl_random_mixed, &wl_larson,       &wl_prod_cons,
    &wl_fragment,     &wl_large_ws,     &wl_realloc_grow, &wl_big_churn,
    &wl_thread_churn, &wl_thread_swap,  &wl_thread_swap_window,
    &wl_big_buffers,  &wl_rptest,       &wl_xmalloc,      &wl_false_sharing,
    &wl_alloc_test,   &wl_mstress,      &wl_espresso,     &wl_glibc_thread,
    &wl_phase_change, &wl_site_frag, &wl_site_reuse, &wl_big_batch,
};
#define NWORKLOADS (sizeof workloads / sizeof workloads[0])

static bench_t bench; /* large (per-thread slots): keep it off the stack */

/* VmRSS and VmHWM from one read(2) of /proc/self/status (not stdio, so
 * the measurement itself does not allocate): the kernel computes
 * both from one RSS count, so the peak is never below the current value.
 * Read twice, they can be (CI, the debug build's big-churn: VmRSS 132836
 * then VmHWM 132784 kB): the count is summed from per-CPU parts that are
 * folded in lazily, and another thread (hakmem's controller, purging)
 * changes it between the reads. */
static void status_rss_kb(long *rss, long *hwm) {
  char buf[4096];
  *rss = *hwm = -1;
  int fd = open("/proc/self/status", O_RDONLY);
  if (fd < 0)
    return;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return;
  buf[n] = 0;
  char *p = strstr(buf, "VmRSS:"), *q = strstr(buf, "VmHWM:");
  if (p)
    *rss = strtol(p + 6, NULL, 10);
  if (q)
    *hwm = strtol(q + 6, NULL, 10);
}

static long minor_faults(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

/* Cost of the timer itself, subtracted from every sample. */
static uint32_t timer_overhead(void) {
  uint64_t best = UINT64_MAX;
  for (int i = 0; i < 1000; i++) {
    uint64_t t0 = bench_cycles(), d = bench_cycles() - t0;
    if (d < best)
      best = d;
  }
  return (uint32_t)best;
}

static void usage(FILE *f) {
  fprintf(f, "usage: hakmem-bench-work --workload NAME [--threads N] "
             "[--ops N] [--seed S] [--no-latency]\n"
             "       hakmem-bench-work --list\n");
}

static void list(void) {
  /* Machine-readable: the runner takes workload names, default op counts
   * and which ones take threads from here. */
  for (size_t i = 0; i < NWORKLOADS; i++)
    printf("%s %ld %d %s\n", workloads[i]->name, workloads[i]->default_ops,
           workloads[i]->takes_threads, workloads[i]->about);
}

static long parse_num(const char *opt, const char *s) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*s == 0 || *end != 0 || v < 0)
    bench_die("%s wants a non-negative number, got '%s'", opt, s);
  return v;
}

int main(int argc, char **argv) {
  const char *name = NULL;
  long ops = -1, threads = 1, seed = 1;
  int latency = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--list")) {
      list();
      return 0;
    }
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    }
    if (!strcmp(a, "--no-latency")) {
      latency = 0;
      continue;
    }
    if (i + 1 >= argc) {
      usage(stderr);
      return 2;
    }
    const char *v = argv[++i];
    if (!strcmp(a, "--workload"))
      name = v;
    else if (!strcmp(a, "--threads"))
      threads = parse_num(a, v);
    else if (!strcmp(a, "--ops"))
      ops = parse_num(a, v);
    else if (!strcmp(a, "--seed"))
      seed = parse_num(a, v);
    else {
      usage(stderr);
      return 2;
    }
  }
  const workload_t *w = NULL;
  for (size_t i = 0; i < NWORKLOADS; i++)
    if (name && !strcmp(name, workloads[i]->name))
      w = workloads[i];
  if (!w) {
    fprintf(stderr, "hakmem-bench: unknown workload '%s'; --list shows them\n",
            name ? name : "");
    return 2;
  }
  if (threads < 1 || threads > BENCH_MAX_THREADS / 2)
    bench_die("--threads must be 1..%d", BENCH_MAX_THREADS / 2);

  bench_t *b = &bench;
  b->workload = w->name;
  b->ops = ops >= 0 ? ops : w->default_ops;
  b->threads = w->takes_threads ? (int)threads : 1;
  b->seed = (uint64_t)seed;
  uint32_t every = !latency         ? UINT32_MAX /* never comes round */
                   : w->sample_every ? (uint32_t)w->sample_every
                                     : BENCH_SAMPLE_EVERY;
  /* Room for every thread's samples; MAP_NORESERVE keeps unused room free. */
  size_t cap = (size_t)b->ops / every + 64;
  uint32_t *room = bench_scratch(cap * sizeof(uint32_t) * BENCH_MAX_THREADS);
  for (int i = 0; i < BENCH_MAX_THREADS; i++) {
    bench_thread_t *t = &b->thr[i];
    /* splitmix64 of (seed, thread): distinct, never-zero streams */
    uint64_t z = b->seed * 0x9E3779B97F4A7C15ULL + (uint64_t)(i + 1) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    t->rng = (z ^ (z >> 31)) | 1;
    t->every = every;
    t->countdown = latency ? 1 + (uint32_t)(t->rng % every) /* out of step */
                           : UINT32_MAX;
    t->samples = room + cap * (size_t)i;
    t->cap = cap;
  }
  uint32_t overhead = timer_overhead();

  long flt0 = minor_faults();
  uint64_t ns0 = bench_now_ns(), c0 = bench_cycles();
  w->run(b);
  uint64_t c1 = bench_cycles(), ns1 = bench_now_ns();
  long flt1 = minor_faults();
  long final_rss, peak_rss;
  status_rss_kb(&final_rss, &peak_rss);
  if (w->after)
    w->after(b);

  /* Gather all threads' samples into thread 0's room: they are laid out
   * back to back, so compact them in place. */
  size_t n = 0;
  for (int i = 0; i < BENCH_MAX_THREADS; i++) {
    bench_thread_t *t = &b->thr[i];
    memmove(room + n, t->samples, t->nsamples * sizeof(uint32_t));
    n += t->nsamples;
  }
  qsort(room, n, sizeof(uint32_t), cmp_u32);
  double ns_per_cycle = c1 > c0 ? (double)(ns1 - ns0) / (double)(c1 - c0) : 0;
  double pct[3] = {0, 0, 0};
  const double q[3] = {0.50, 0.95, 0.99};
  for (int k = 0; k < 3 && n; k++) {
    uint32_t v = room[(size_t)(q[k] * (double)(n - 1))];
    pct[k] = (v > overhead ? v - overhead : 0) * ns_per_cycle;
  }
  double secs = (double)(ns1 - ns0) / 1e9;
  printf("hakmem-bench workload=%s threads=%d ops=%ld seed=%llu secs=%.6f "
         "ops_per_sec=%.1f p50_ns=%.1f p95_ns=%.1f p99_ns=%.1f samples=%zu "
         "minflt=%ld peak_rss_kb=%ld final_rss_kb=%ld live_kb=%zu\n",
         b->workload, b->threads, b->ops, (unsigned long long)b->seed, secs,
         secs > 0 ? (double)b->ops / secs : 0.0, pct[0], pct[1], pct[2], n,
         flt1 - flt0, peak_rss, final_rss, b->live_bytes / 1024);
  return 0;
}
