/* thread-churn: short-lived threads.  Rounds of N threads are created and
 * joined; each thread does 1000 ops on a 64-slot ring of 16 B-4 KiB blocks,
 * then frees its ring except 8 blocks, which the main thread frees after
 * the join (frees of a dead thread's memory).  Measures per-thread cache
 * set-up and tear-down.
 * One op = free + malloc; thread creation and join count in the time. */
#include "../bench_common.h"

#define OPS_PER_THREAD 1000
#define RING 64
#define LEFT 8 /* blocks a thread leaves behind for the main thread */

static slot_t (*left)[LEFT]; /* [thread][LEFT] */

static void *worker(void *arg) {
  bench_arg_t *a = arg;
  bench_thread_t *t = &a->b->thr[a->id];
  slot_t ring[RING] = {{0}};
  for (int i = 0; i < OPS_PER_THREAD; i++) {
    size_t size = rnd_log(t, 16, 4096);
    uint64_t t0 = lat_begin(t);
    slot_replace(&ring[i % RING], size);
    lat_end(t, t0);
  }
  for (int i = 0; i < RING; i++)
    if (i < LEFT)
      left[a->id][i] = ring[i];
    else
      slot_free(&ring[i]);
  return NULL;
}

static void run(bench_t *b) {
  left = bench_scratch((size_t)b->threads * sizeof *left);
  long per_round = (long)b->threads * OPS_PER_THREAD;
  long rounds = (b->ops + per_round - 1) / per_round;
  for (long r = 0; r < rounds; r++) {
    bench_parallel(b, b->threads, worker);
    for (int i = 0; i < b->threads; i++)
      for (int j = 0; j < LEFT; j++)
        slot_free(&left[i][j]);
  }
  b->ops = rounds * per_round; /* whole rounds only */
}

const workload_t wl_thread_churn = {
    .name = "thread-churn",
    .default_ops = 5000000,
    .takes_threads = 1,
    .run = run,
    .about = "rounds of N threads created and joined, 1000 ops each",
};
