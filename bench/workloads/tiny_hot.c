/* tiny-hot: the allocator's fast path.  A ring of 32 blocks of 16-128 B;
 * each op frees the oldest and mallocs a new one in its place, so every
 * block is reused while still hot in the thread's cache.
 * One op = free + malloc (one pair); used by the instruction-count mode. */
#include "../bench_common.h"

#define RING 32

static void run(bench_t *b) {
  bench_thread_t *t = &b->thr[0];
  slot_t ring[RING] = {{0}};
  for (long i = 0; i < b->ops; i++) {
    size_t size = 16 + (rnd(t) & 127) % 113; /* 16..128 */
    uint64_t t0 = lat_begin(t);
    slot_replace(&ring[i % RING], size);
    lat_end(t, t0);
  }
  for (int i = 0; i < RING; i++)
    slot_free(&ring[i]);
}

const workload_t wl_tiny_hot = {
    .name = "tiny-hot",
    .default_ops = 20000000,
    .run = run,
    .about = "ring of 32 blocks of 16-128 B, free+malloc",
};
