/* glibc-thread: independent threads churning small blocks, as glibc's own
 * per-thread malloc benchmark does.  Each of N threads keeps a local array
 * of 2048 blocks of 16 B-1 KiB (log-uniform) and replaces a random one per
 * op.  Nothing is shared: this is how the allocator scales with threads,
 * and what oversubscription (more threads than cores) costs it.
 * One op = free + malloc; ops are split over the threads. */
#include "../bench_common.h"

#define SLOTS 2048

static void *worker(void *arg) {
  bench_arg_t *a = arg;
  bench_t *b = a->b;
  bench_thread_t *t = &b->thr[a->id];
  slot_t *slots = bench_scratch(SLOTS * sizeof *slots);
  long ops = bench_share(b->ops, a->id, b->threads);
  for (long i = 0; i < ops; i++) {
    uint64_t r = rnd(t);
    size_t size = rnd_log(t, 16, 1024);
    uint64_t t0 = lat_begin(t);
    slot_replace(&slots[r % SLOTS], size);
    lat_end(t, t0);
  }
  for (int i = 0; i < SLOTS; i++)
    slot_free(&slots[i]);
  return NULL;
}

static void run(bench_t *b) { bench_parallel(b, b->threads, worker); }

const workload_t wl_glibc_thread = {
    .name = "glibc-thread",
    .default_ops = 20000000,
    .takes_threads = 1,
    .run = run,
    .about = "N independent threads replace random blocks (16 B-1 KiB) in 2048-slot arrays",
};
