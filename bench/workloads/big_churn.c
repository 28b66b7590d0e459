/* big-churn: huge blocks.  Two slots of 2-64 MiB (log-uniform); each op
 * replaces one and writes every page of the new block.  Measures how the
 * allocator maps, caches and returns huge blocks, and the page faults that
 * follow.  One op = free + malloc + touch. */
#include "../bench_common.h"

#define SLOTS 2

static void run(bench_t *b) {
  bench_thread_t *t = &b->thr[0];
  slot_t slots[SLOTS] = {{0}};
  for (long i = 0; i < b->ops; i++) {
    slot_t *s = &slots[rnd(t) % SLOTS];
    size_t size = rnd_log(t, 2 << 20, 64 << 20);
    uint64_t t0 = lat_begin(t);
    slot_replace(s, size);
    block_touch(s->p, size);
    lat_end(t, t0);
  }
  for (int i = 0; i < SLOTS; i++)
    slot_free(&slots[i]);
}

const workload_t wl_big_churn = {
    .name = "big-churn",
    .default_ops = 200,
    .run = run,
    .sample_every = 1, /* slow ops: time each */
    .about = "two live blocks of 2-64 MiB replaced at random, every page written",
};
