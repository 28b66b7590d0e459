/* random-mixed: random sizes with random lifetimes.  8192 slots; each op
 * replaces one slot with a new block: 80% of sizes 8 B-1 KiB, 20% 1-32 KiB
 * (log-uniform).  Half the ops pick among the first 64 slots (short
 * lifetimes, ~128 ops), half among all (long, ~16000 ops).
 * One op = free + malloc (one pair); used by the instruction-count mode. */
#include "../bench_common.h"

#define SLOTS 8192
#define HOT 64

static void run(bench_t *b) {
  bench_thread_t *t = &b->thr[0];
  slot_t *slots = bench_scratch(SLOTS * sizeof *slots);
  for (long i = 0; i < b->ops; i++) {
    uint64_t r = rnd(t);
    size_t size = r % 5 ? rnd_log(t, 8, 1024) : rnd_log(t, 1025, 32 << 10);
    slot_t *s = &slots[(r >> 8) & 1 ? (r >> 16) % HOT : (r >> 16) % SLOTS];
    uint64_t t0 = lat_begin(t);
    slot_replace(s, size);
    lat_end(t, t0);
  }
  for (int i = 0; i < SLOTS; i++)
    slot_free(&slots[i]);
}

const workload_t wl_random_mixed = {
    .name = "random-mixed",
    .default_ops = 5000000,
    .run = run,
    .about = "8192 slots, sizes 8 B-1 KiB and 1-32 KiB, short and long lifetimes",
};
