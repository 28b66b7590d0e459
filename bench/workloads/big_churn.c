/* big-churn: huge blocks.  Two slots of 2-64 MiB (log-uniform); each op
 * replaces one and writes every page of the new block.  Measures how the
 * allocator maps, caches and returns huge blocks, and the page faults that
 * follow.  One op = free + malloc + touch. */
#include "../bench_common.h"

#define SLOTS 2

static void run(bench_t *b) { bench_churn_slots(b, SLOTS, 2 << 20, 64 << 20); }

const workload_t wl_big_churn = {
    .name = "big-churn",
    .default_ops = 200,
    .run = run,
    .sample_every = 1, /* slow ops: time each */
    .about = "two live blocks of 2-64 MiB replaced at random, every page written",
};
