/* mstress: objects that outlive their threads.  The run is a series of
 * rounds; each round starts N threads and joins them.  Thread i takes over
 * the 256-slot local array that thread i of the last round left behind,
 * blocks still live (so it frees memory of an exited thread, and exits
 * with live blocks itself).  Per op a thread either
 *   - replaces a random local block with a new one (50 %),
 *   - swaps a local block with a random slot of a shared array of 1024
 *     "hot" slots (45 %), or
 *   - swaps with one of 4096 "cold" shared slots (5 %): a block parked
 *     there survives for many rounds.
 * Sizes: 8 B-8 KiB (log-uniform) 99 % of the time, 8 KiB-512 KiB 1 %.
 * A thread does 2000 ops per round (the last round may be shorter).  The
 * main thread frees everything at the end.
 * One op = one replace or swap. */
#include "../bench_common.h"

#include <stdatomic.h>

#define LOCAL 256
#define HOT 1024
#define COLD 4096
#define OPS_PER_ROUND 2000

static _Atomic(void *) hot[HOT], cold[COLD];
static void *(*local)[LOCAL]; /* [thread][LOCAL], inherited round to round */
static long round_ops;        /* ops of this round, all threads */

static void drop(void *p) {
  if (p) {
    block_check(p, 8, addr_tag(p)); /* every block is >= 8 B */
    free(p);
  }
}

static void *new_block(bench_thread_t *t) {
  size_t size = rnd(t) % 100 ? rnd_log(t, 8, 8 << 10)
                             : rnd_log(t, (8 << 10) + 1, 512 << 10);
  void *p = xmalloc(size);
  block_tag(p, size, addr_tag(p));
  return p;
}

static void *worker(void *arg) {
  bench_arg_t *a = arg;
  bench_thread_t *t = &a->b->thr[a->id];
  void **mine = local[a->id];
  long ops = bench_share(round_ops, a->id, a->b->threads);
  for (long i = 0; i < ops; i++) {
    uint64_t r = rnd(t);
    void **l = &mine[r % LOCAL];
    int what = (int)((r >> 32) % 100);
    uint64_t t0 = lat_begin(t);
    if (what < 50 || !*l) {
      drop(*l);
      *l = new_block(t);
    } else {
      _Atomic(void *) *x = what < 95 ? &hot[(r >> 16) % HOT]
                                     : &cold[(r >> 16) % COLD];
      *l = atomic_exchange(x, *l); /* may be NULL: refilled later */
    }
    lat_end(t, t0);
  }
  return NULL; /* exits with its local blocks live */
}

static void run(bench_t *b) {
  local = bench_scratch((size_t)b->threads * sizeof *local);
  long per_round = (long)b->threads * OPS_PER_ROUND;
  for (long done = 0; done < b->ops; done += round_ops) {
    round_ops = b->ops - done < per_round ? b->ops - done : per_round;
    bench_parallel(b, b->threads, worker);
  }
  for (int i = 0; i < b->threads; i++)
    for (int j = 0; j < LOCAL; j++)
      drop(local[i][j]);
  for (int i = 0; i < HOT; i++)
    drop(atomic_exchange(&hot[i], NULL));
  for (int i = 0; i < COLD; i++)
    drop(atomic_exchange(&cold[i], NULL));
}

const workload_t wl_mstress = {
    .name = "mstress",
    .default_ops = 3000000,
    .takes_threads = 1,
    .run = run,
    .about = "rounds of N threads trading 8 B-512 KiB blocks through shared slots; blocks outlive their threads",
};
