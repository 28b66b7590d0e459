/* site-frag: two call sites interleave Large blocks.  One keeps its blocks
 * (68-76 KiB, the smallest Large sizes; one between any two of the
 * other's) to the end; the other's (128 KiB-1 MiB, larger in later rounds)
 * die at the end of their round.  Allocated from the same segments, the
 * long-lived blocks leave holes too small for the next round's short-lived
 * ones, which then take fresh pages while the holes wait for their purge;
 * placed apart (a per-site policy), a round's short-lived blocks find the
 * previous round's space whole.  The final RSS is taken with the long-lived
 * blocks alive and the short-lived ones dead.  One op = one allocation. */
#include "../bench_common.h"

#define SHORT_PER_LONG 1
#define ROUND 64

static slot_t *keep;
static long nkeep;

/* Two functions: two call sites, which is what the policy tells apart.
 * (Their bodies differ, so that the compiler does not fold them into one.) */
static volatile long long_calls, short_calls;
__attribute__((noinline)) static void *long_lived_alloc(size_t n) {
  long_calls++;
  return site_malloc(n);
}
__attribute__((noinline)) static void *short_lived_alloc(size_t n) {
  short_calls++;
  return site_malloc(n);
}

static void place(slot_t *s, void *p, size_t n) {
  if (!p)
    bench_malloc_failed(n);
  s->p = p;
  s->size = n;
  block_tag(p, n, addr_tag(p));
  block_touch(p, n);
}

static void run(bench_t *b) {
  bench_thread_t *t = &b->thr[0];
  slot_t round[ROUND] = {{0}};
  keep = bench_scratch(((size_t)b->ops / (SHORT_PER_LONG + 1) + 1) * sizeof *keep);
  long done = 0;
  for (int r = 0; done < b->ops; r++) {
    size_t lo = (size_t)128 << 10 << (r % 3); /* 128, 256, 512 KiB */
    int n = 0;
    for (; n < ROUND && done < b->ops; done++) {
      uint64_t t0 = lat_begin(t);
      if (done % (SHORT_PER_LONG + 1) == 0) {
        size_t size = rnd_range(t, 68 << 10, 76 << 10);
        place(&keep[nkeep++], long_lived_alloc(size), size);
        b->live_bytes += size;
      } else {
        size_t size = rnd_range(t, lo, 2 * lo);
        place(&round[n++], short_lived_alloc(size), size);
      }
      lat_end(t, t0);
    }
    for (int i = 0; i < n; i++)
      slot_free(&round[i]);
  }
}

static void after(bench_t *b) {
  (void)b;
  for (long i = 0; i < nkeep; i++)
    slot_free(&keep[i]);
}

const workload_t wl_site_frag = {
    .name = "site-frag",
    .default_ops = 3000,
    .run = run,
    .after = after,
    .about = "two sites interleave Large blocks: one keeps them, the other's die each round",
};
