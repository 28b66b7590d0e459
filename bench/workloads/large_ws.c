/* large-ws: a large working set of mid/large blocks.  256 slots of
 * 8 KiB-1 MiB (log-uniform, ~50 MiB live in all); each op replaces a random
 * slot and writes every page of the new block.  Shows whether the allocator
 * reuses resident memory or keeps going back to the kernel for it.
 * One op = free + malloc + touch. */
#include "../bench_common.h"

#define SLOTS 256

static void run(bench_t *b) { bench_churn_slots(b, SLOTS, 8 << 10, 1 << 20); }

const workload_t wl_large_ws = {
    .name = "large-ws",
    .default_ops = 100000,
    .run = run,
    .sample_every = 1, /* slow ops: time each */
    .about = "256 live blocks of 8 KiB-1 MiB replaced at random, every page written",
};
