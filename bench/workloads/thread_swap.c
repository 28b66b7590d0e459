/* thread-swap: every op is one thread's whole life.  The thread callocs one
 * 128-byte object (checked to be zero), swaps it atomically into a shared
 * array of 256 slots (slot = op number % 256) and frees what it took out:
 * an object allocated by a thread that has already exited.  Then it exits.
 * So each op is a first allocation in a fresh thread plus a free of a dead
 * thread's memory, and the allocator must set up and retire a thread heap
 * every time.
 *   thread-swap         threads are started in batches of N (--threads)
 *                       and the batch is joined before the next starts
 *   thread-swap-window  a sliding window: N threads always alive, a new
 *                       one started as soon as the oldest is joined
 * (256 slots > 2 x the largest N, so the object taken out always comes from
 * a thread that was joined already.)  Latency: the thread's calloc + swap +
 * free, i.e. a fresh thread's first calls into the allocator. */
#include "../bench_common.h"

#include <stdatomic.h>
#include <string.h>

#define SLOTS 256
#define SIZE 128

static _Atomic(void *) slots[SLOTS];

typedef struct job {
  bench_thread_t *t;
  long op;
} job_t;

static void *worker(void *arg) {
  job_t *j = arg;
  bench_thread_t *t = j->t;
  uint64_t t0 = lat_begin(t);
  unsigned char *p = calloc(1, SIZE);
  if (!p)
    bench_malloc_failed(SIZE);
  for (int i = 0; i < SIZE; i++)
    if (p[i])
      bench_die("calloc(1, %d) returned %p with byte %d = %#x", SIZE,
                (void *)p, i, p[i]);
  block_tag(p, SIZE, addr_tag(p));
  void *old = atomic_exchange(&slots[j->op % SLOTS], p);
  if (old) {
    block_check(old, SIZE, addr_tag(old));
    free(old);
  }
  lat_end(t, t0);
  return NULL;
}

static void free_slots(void) {
  for (int i = 0; i < SLOTS; i++) {
    void *p = atomic_exchange(&slots[i], NULL);
    if (p) {
      block_check(p, SIZE, addr_tag(p));
      free(p);
    }
  }
}

static void run_batch(bench_t *b) {
  int n = b->threads;
  pthread_t tid[BENCH_MAX_THREADS];
  job_t *jobs = bench_scratch((size_t)n * sizeof *jobs);
  for (long op = 0; op < b->ops; op += n) {
    int k = b->ops - op < n ? (int)(b->ops - op) : n;
    for (int i = 0; i < k; i++) {
      jobs[i] = (job_t){&b->thr[i], op + i};
      bench_spawn(&tid[i], worker, &jobs[i]);
    }
    for (int i = 0; i < k; i++)
      pthread_join(tid[i], NULL);
  }
  free_slots();
}

static void run_window(bench_t *b) {
  int n = b->threads;
  pthread_t tid[BENCH_MAX_THREADS];
  job_t *jobs = bench_scratch((size_t)n * sizeof *jobs);
  for (long op = 0; op < b->ops + n; op++) {
    int w = (int)(op % n); /* window position: the oldest thread */
    if (op >= n)
      pthread_join(tid[w], NULL);
    if (op < b->ops) {
      jobs[w] = (job_t){&b->thr[w], op};
      bench_spawn(&tid[w], worker, &jobs[w]);
    }
  }
  free_slots();
}

const workload_t wl_thread_swap = {
    .name = "thread-swap",
    .default_ops = 20000,
    .takes_threads = 1,
    .run = run_batch,
    .sample_every = 1, /* one sample per thread */
    .about = "batches of N threads; each callocs 128 B, swaps it into a shared slot, frees a dead thread's object",
};

const workload_t wl_thread_swap_window = {
    .name = "thread-swap-window",
    .default_ops = 20000,
    .takes_threads = 1,
    .run = run_window,
    .sample_every = 1,
    .about = "as thread-swap, but N threads always alive (sliding window)",
};
