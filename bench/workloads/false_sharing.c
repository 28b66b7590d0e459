/* false-sharing: does the allocator put different threads' objects on one
 * cache line?  The main thread allocates one 8-byte object per thread, one
 * after the other (so they likely share cache lines), and hands each to a
 * worker.  The worker frees it, then over and over mallocs an object of
 * 8, 16, 32, 64 bytes in turn, writes every byte of it 16 times (volatile
 * read-modify-write), checks what it wrote, and frees it.  An allocator
 * whose thread cache gives the main thread's object straight back to the
 * worker makes the workers write to shared lines (passive false sharing);
 * one that serves each thread from its own pages does not.  With one
 * thread it measures the malloc + write + free loop alone.
 * One op = malloc + 16 passes of writes + free; ops are split over the
 * threads. */
#include "../bench_common.h"

#define PASSES 16

static void **first; /* the main thread's objects, one per worker */

static void *worker(void *arg) {
  bench_arg_t *a = arg;
  bench_t *b = a->b;
  bench_thread_t *t = &b->thr[a->id];
  block_check(first[a->id], 8, addr_tag(first[a->id]));
  free(first[a->id]);
  long ops = bench_share(b->ops, a->id, b->threads);
  for (long i = 0; i < ops; i++) {
    size_t size = (size_t)8 << (i & 3);
    uint64_t t0 = lat_begin(t);
    volatile unsigned char *p = xmalloc(size);
    unsigned char v = (unsigned char)(a->id * 31 + i);
    for (int r = 0; r < PASSES; r++)
      for (size_t j = 0; j < size; j++)
        p[j] = (unsigned char)(p[j] * 0 + v + r); /* read, then write */
    for (size_t j = 0; j < size; j++)
      if (p[j] != (unsigned char)(v + PASSES - 1))
        bench_die("object %p of %zu bytes changed under thread %d",
                  (void *)p, size, a->id);
    free((void *)p);
    lat_end(t, t0);
  }
  return NULL;
}

static void run(bench_t *b) {
  first = bench_scratch((size_t)b->threads * sizeof *first);
  for (int i = 0; i < b->threads; i++) {
    first[i] = xmalloc(8);
    block_tag(first[i], 8, addr_tag(first[i]));
  }
  bench_parallel(b, b->threads, worker);
}

const workload_t wl_false_sharing = {
    .name = "false-sharing",
    .default_ops = 2000000,
    .takes_threads = 1,
    .run = run,
    .about = "workers free a main-thread 8 B object, then malloc 8-64 B, write it 16 times, free",
};
