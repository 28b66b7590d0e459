/* big-batch: a pipeline's frames.  Each op allocates a batch of 40 buffers
 * of 6-10 MiB (~320 MiB), writes every page of each, checks them and frees
 * the whole batch; the next op does it again with new sizes.  Measures
 * whether an allocator keeps a freed batch larger than a fixed cache for
 * the next one (glibc and jemalloc give it back and fault it in again).
 * One op = one batch. */
#include "../bench_common.h"

#define BATCH 40

static void run(bench_t *b) {
  bench_thread_t *t = &b->thr[0];
  void *p[BATCH];
  size_t n[BATCH];
  for (long i = 0; i < b->ops; i++) {
    uint64_t t0 = lat_begin(t);
    for (int k = 0; k < BATCH; k++) {
      n[k] = rnd_range(t, (size_t)6 << 20, (size_t)10 << 20);
      p[k] = malloc(n[k]);
      if (!p[k])
        bench_malloc_failed(n[k]);
      block_tag(p[k], n[k], addr_tag(p[k]));
      block_touch(p[k], n[k]);
    }
    for (int k = 0; k < BATCH; k++) {
      block_check(p[k], n[k], addr_tag(p[k]));
      free(p[k]);
    }
    lat_end(t, t0);
  }
}

const workload_t wl_big_batch = {
    .name = "big-batch",
    .default_ops = 40,
    .run = run,
    .sample_every = 1, /* slow ops: time each */
    .about = "batches of 40 buffers of 6-10 MiB allocated, written and freed together",
};
