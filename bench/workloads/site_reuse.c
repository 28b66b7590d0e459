/* site-reuse: Big blocks from sites that reuse theirs and from sites that
 * allocate once.  Each op, one site allocates six 10 MiB buffers, writes
 * them and frees them (the same working set, op after op); every other op,
 * one of 64 other sites allocates its one buffer of 24-40 MiB, writes it
 * and frees it, never to allocate again.  Without per-site policy the
 * one-off buffers take the BigCache's budget (and grow its mappings), and
 * the reused buffers fault their pages in again; with it (a policy learned
 * by `hakmem tune`), one-off buffers are returned at once and the reused
 * ones stay resident.  One op = the six reused buffers. */
#include "../bench_common.h"

#define REUSED 6
#define ONEOFF_SITES 64

static volatile long reused_calls;
__attribute__((noinline)) static void *reused_alloc(size_t n) {
  reused_calls++;
  return site_malloc(n);
}

/* 64 distinct call sites, one allocation each. */
/* (Each body differs, so that the compiler does not fold them into one.) */
#define ONEOFF(k)                                                    \
  __attribute__((noinline)) static void *oneoff_##k(size_t n) {      \
    static volatile int calls_##k;                                   \
    calls_##k = calls_##k + 1;                                       \
    return site_malloc(n);                                           \
  }
#define ONEOFF8(k) ONEOFF(k##0) ONEOFF(k##1) ONEOFF(k##2) ONEOFF(k##3) ONEOFF(k##4) ONEOFF(k##5) ONEOFF(k##6) ONEOFF(k##7)
ONEOFF8(1) ONEOFF8(2) ONEOFF8(3) ONEOFF8(4) ONEOFF8(5) ONEOFF8(6) ONEOFF8(7) ONEOFF8(8)
#define REF(k) oneoff_##k,
#define REF8(k) REF(k##0) REF(k##1) REF(k##2) REF(k##3) REF(k##4) REF(k##5) REF(k##6) REF(k##7)
static void *(*const oneoffs[ONEOFF_SITES])(size_t) = {REF8(1) REF8(2) REF8(3) REF8(4) REF8(5) REF8(6) REF8(7) REF8(8)};

static void touch_free(void *p, size_t n) {
  if (!p)
    bench_malloc_failed(n);
  block_tag(p, n, addr_tag(p));
  block_touch(p, n);
  block_check(p, n, addr_tag(p));
  free(p);
}

static void run(bench_t *b) {
  bench_thread_t *t = &b->thr[0];
  int next = 0;
  for (long i = 0; i < b->ops; i++) {
    uint64_t t0 = lat_begin(t);
    void *p[REUSED];
    size_t n = (size_t)10 << 20;
    for (int k = 0; k < REUSED; k++) {
      p[k] = reused_alloc(n);
      if (!p[k])
        bench_malloc_failed(n);
      block_touch(p[k], n);
    }
    for (int k = 0; k < REUSED; k++)
      free(p[k]);
    lat_end(t, t0);
    if (i % 2 == 0 && next < ONEOFF_SITES) {
      size_t m = rnd_range(t, 24 << 20, 40 << 20);
      touch_free(oneoffs[next++](m), m);
    }
  }
}

const workload_t wl_site_reuse = {
    .name = "site-reuse",
    .default_ops = 128,
    .run = run,
    .sample_every = 1,
    .about = "one site reuses six 10 MiB buffers, 64 others allocate a 24-40 MiB buffer once",
};
