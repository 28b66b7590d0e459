/* alloc-test: a general allocation test with realloc.  Each thread keeps
 * 4096 slots, about 3000 of them live at a time.  Sizes 8 B-64 KiB,
 * skewed small: 75 % 8-256 B, 20 % 256 B-4 KiB, 5 % 4-64 KiB (log-uniform
 * within each band).  Each op picks a random slot: an empty slot gets a
 * new block; a live one is freed (3 in 8), replaced (4 in 8) or
 * reallocated to a new size (1 in 8; the tag must move with the data).
 * Threads share nothing.  One op = one malloc, free, free+malloc or
 * realloc; ops are split over the threads. */
#include "../bench_common.h"

#define SLOTS 4096

static size_t skewed_size(bench_thread_t *t) {
  uint64_t r = rnd(t) % 100;
  return r < 75 ? rnd_log(t, 8, 256)
         : r < 95 ? rnd_log(t, 257, 4096)
                  : rnd_log(t, 4097, 64 << 10);
}

static void *worker(void *arg) {
  bench_arg_t *a = arg;
  bench_t *b = a->b;
  bench_thread_t *t = &b->thr[a->id];
  slot_t *slots = bench_scratch(SLOTS * sizeof *slots);
  long ops = bench_share(b->ops, a->id, b->threads);
  for (long i = 0; i < ops; i++) {
    uint64_t r = rnd(t);
    slot_t *s = &slots[r % SLOTS];
    size_t size = skewed_size(t);
    int what = (int)((r >> 32) % 8);
    uint64_t t0 = lat_begin(t);
    if (!s->p || what >= 4) {
      slot_replace(s, size);
    } else if (what == 3) {
      uint64_t tag = addr_tag(s->p);
      void *p = realloc(s->p, size);
      if (!p)
        bench_die("realloc(.., %zu) returned NULL", size);
      /* The first 8 bytes moved with the block (every size is >= 8). */
      block_check(p, 8, tag);
      s->p = p;
      s->size = size;
      block_tag(p, size, addr_tag(p));
    } else {
      slot_free(s);
    }
    lat_end(t, t0);
  }
  for (int i = 0; i < SLOTS; i++)
    slot_free(&slots[i]);
  return NULL;
}

static void run(bench_t *b) { bench_parallel(b, b->threads, worker); }

const workload_t wl_alloc_test = {
    .name = "alloc-test",
    .default_ops = 10000000,
    .takes_threads = 1,
    .run = run,
    .about = "4096 slots per thread, ~3000 live, 8 B-64 KiB skewed small; free, replace or realloc",
};
