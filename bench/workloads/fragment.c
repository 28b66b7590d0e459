/* fragment: interleaved short and long lifetimes, then how much memory the
 * allocator holds for what is still live.  The run goes through five size
 * bands (16-64 B, 64-256 B, 256 B-1 KiB, 1-4 KiB, 4-16 KiB), ops/5 mallocs
 * each.  One block in 64 is long-lived and kept to the end; the others
 * live in a 256-block ring (short-lived).  The long-lived blocks pin the
 * pages around them, and each band's sizes differ from the last, so freed
 * space is only reused if the allocator can recycle it across sizes.
 * The long-lived blocks are still allocated when the final RSS is read:
 * compare final_rss_kb with live_kb.
 * One op = one malloc (and, for short-lived blocks, the free it displaces). */
#include "../bench_common.h"

#define RING 256
#define KEEP_ONE_IN 64
#define BANDS 5

static slot_t *keep;
static size_t nkeep;

static void run(bench_t *b) {
  bench_thread_t *t = &b->thr[0];
  slot_t ring[RING] = {{0}};
  size_t live = 0;
  keep = bench_scratch(((size_t)b->ops / KEEP_ONE_IN + 1) * sizeof *keep);
  for (long i = 0; i < b->ops; i++) {
    int band = (int)(i * BANDS / (b->ops ? b->ops : 1));
    size_t lo = (size_t)16 << (2 * band);
    size_t size = rnd_range(t, lo, 4 * lo - 1);
    slot_t *s = i % KEEP_ONE_IN ? &ring[i % RING] : &keep[nkeep++];
    uint64_t t0 = lat_begin(t);
    slot_replace(s, size);
    lat_end(t, t0);
    if (!(i % KEEP_ONE_IN))
      live += size;
  }
  for (int i = 0; i < RING; i++)
    slot_free(&ring[i]);
  b->live_bytes = live;
}

static void after(bench_t *b) {
  for (size_t i = 0; i < nkeep; i++)
    slot_free(&keep[i]);
  (void)b;
}

const workload_t wl_fragment = {
    .name = "fragment",
    .default_ops = 2000000,
    .run = run,
    .after = after,
    .about = "short and long lifetimes interleaved over 5 size bands; RSS vs live",
};
