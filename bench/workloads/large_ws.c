/* large-ws: a large working set of mid/large blocks.  256 slots of
 * 8 KiB-1 MiB (log-uniform, ~50 MiB live in all); each op replaces a random
 * slot and writes every page of the new block.  Shows whether the allocator
 * reuses resident memory or keeps going back to the kernel for it.
 * One op = free + malloc + touch. */
#include "../bench_common.h"

#define SLOTS 256

static void run(bench_t *b) {
  bench_thread_t *t = &b->thr[0];
  slot_t slots[SLOTS] = {{0}};
  for (long i = 0; i < b->ops; i++) {
    slot_t *s = &slots[rnd(t) % SLOTS];
    size_t size = rnd_log(t, 8 << 10, 1 << 20);
    uint64_t t0 = lat_begin(t);
    slot_replace(s, size);
    block_touch(s->p, size);
    lat_end(t, t0);
  }
  for (int i = 0; i < SLOTS; i++)
    slot_free(&slots[i]);
}

const workload_t wl_large_ws = {
    .name = "large-ws",
    .default_ops = 100000,
    .run = run,
    .sample_every = 1, /* slow ops: time each */
    .about = "256 live blocks of 8 KiB-1 MiB replaced at random, every page written",
};
