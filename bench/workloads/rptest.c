/* rptest: blocks passed round a ring of threads.  N threads; thread i sends
 * to thread i+1 (mod N) through a bounded channel of batches.  In every
 * round a thread
 *   1. takes what has arrived from thread i-1 and frees it, except one
 *      block in 8, which replaces a random block of its 256-block kept set
 *      (the displaced one is freed): blocks of other threads that live on
 *      across rounds;
 *   2. replaces 16 random blocks of the kept set with its own new ones;
 *   3. allocates a batch of 64 blocks and sends it on.
 * Sizes are 16 B-16 KiB, log-uniform.  When its rounds are done a thread
 * closes its channel and frees what still arrives, then its kept set.
 * (With one thread the ring is a thread sending to itself.)
 * One op = one malloc (and the free that goes with it, wherever it is). */
#include "../bench_common.h"

#define KEPT 256
#define LOCAL 16 /* kept blocks replaced locally per round */
#define KEEP_ONE_IN 8

static chan_t *chans; /* chans[i]: from thread i-1 to thread i */

static void *new_block(bench_thread_t *t) {
  size_t size = rnd_log(t, 16, 16 << 10);
  uint64_t t0 = lat_begin(t);
  void *p = xmalloc(size);
  lat_end(t, t0);
  block_tag(p, size, addr_tag(p));
  return p;
}

static void drop(bench_thread_t *t, void *p) {
  if (!p)
    return;
  block_check(p, 16, addr_tag(p)); /* every block is >= 16 B */
  uint64_t t0 = lat_begin(t);
  free(p);
  lat_end(t, t0);
}

/* Frees (or keeps) every batch waiting in the inbox. */
static void receive(bench_thread_t *t, chan_t *in, void **kept, int wait) {
  int n;
  void **batch;
  while ((batch = chan_take_begin(in, &n, wait))) {
    for (int i = 0; i < n; i++) {
      uint64_t r = rnd(t);
      if (r % KEEP_ONE_IN == 0) {
        void **k = &kept[(r >> 8) % KEPT];
        drop(t, *k);
        *k = batch[i];
      } else {
        drop(t, batch[i]);
      }
    }
    chan_take_end(in);
  }
}

static void *worker(void *arg) {
  bench_arg_t *a = arg;
  bench_t *b = a->b;
  bench_thread_t *t = &b->thr[a->id];
  int n = b->threads;
  chan_t *in = &chans[a->id], *out = &chans[(a->id + 1) % n];
  void **kept = bench_scratch(KEPT * sizeof *kept);
  long ops = bench_share(b->ops, a->id, n);
  while (ops > 0) {
    receive(t, in, kept, 0);
    for (int i = 0; i < LOCAL && ops > 0; i++, ops--) {
      void **k = &kept[rnd(t) % KEPT];
      drop(t, *k);
      *k = new_block(t);
    }
    int m = ops < CHAN_BATCH ? (int)ops : CHAN_BATCH;
    if (m > 0) {
      void **batch = chan_put_begin(out);
      for (int i = 0; i < m; i++)
        batch[i] = new_block(t);
      chan_put_end(out, m);
      ops -= m;
    }
  }
  chan_close(out);
  receive(t, in, kept, 1); /* until thread i-1 is done */
  for (int i = 0; i < KEPT; i++)
    drop(t, kept[i]);
  return NULL;
}

static void run(bench_t *b) {
  chans = bench_scratch((size_t)b->threads * sizeof *chans);
  for (int i = 0; i < b->threads; i++)
    chan_init(&chans[i]);
  bench_parallel(b, b->threads, worker);
}

const workload_t wl_rptest = {
    .name = "rptest",
    .default_ops = 5000000,
    .takes_threads = 1,
    .run = run,
    .about = "ring of N threads passing batches of 16 B-16 KiB blocks on to be freed; some kept across rounds",
};
