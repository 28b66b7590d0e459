/* larson: a server simulation after Larson & Krishnan.  Each of N threads
 * owns 1024 slots and keeps replacing a random one with a new block of
 * 16 B-1 KiB.  Every 8th op the old block is not freed by its owner but
 * swapped into a shared 256-entry mailbox, and the block that was there
 * (allocated by some other thread, usually) is freed instead: the remote
 * frees a server has when requests move between threads.
 * One op = free + malloc; ops are split evenly across threads. */
#include "../bench_common.h"

#include <stdatomic.h>

#define SLOTS 1024
#define MAILBOX 256

static _Atomic(void *) mailbox[MAILBOX];

static void *worker(void *arg) {
  bench_arg_t *a = arg;
  bench_t *b = a->b;
  bench_thread_t *t = &b->thr[a->id];
  slot_t *slots = bench_scratch(SLOTS * sizeof *slots);
  long ops = b->ops / b->threads + (a->id < b->ops % b->threads);
  for (long i = 0; i < ops; i++) {
    uint64_t r = rnd(t);
    slot_t *s = &slots[r % SLOTS];
    size_t size = rnd_log(t, 16, 1024);
    uint64_t t0 = lat_begin(t);
    if (s->p && (r >> 32) % 8 == 0) {
      /* Hand the block on.  Its size stays behind, but every block is
       * >= 16 B, enough for the receiver to check the tag. */
      void *got = atomic_exchange(&mailbox[(r >> 40) % MAILBOX], s->p);
      if (got) {
        block_check(got, 16, addr_tag(got));
        free(got);
      }
      s->p = NULL;
    }
    slot_replace(s, size);
    lat_end(t, t0);
  }
  for (int i = 0; i < SLOTS; i++)
    slot_free(&slots[i]);
  return NULL;
}

static void run(bench_t *b) {
  bench_parallel(b, b->threads, worker);
  for (int i = 0; i < MAILBOX; i++)
    free(atomic_exchange(&mailbox[i], NULL));
}

const workload_t wl_larson = {
    .name = "larson",
    .default_ops = 10000000,
    .takes_threads = 1,
    .run = run,
    .about = "threads replace random slots (16 B-1 KiB); 1 in 8 frees is remote",
};
