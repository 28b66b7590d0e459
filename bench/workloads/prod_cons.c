/* prod-cons: one set of threads allocates, another frees.  With --threads N
 * there are N producers and N consumers, paired by a queue.  A producer
 * mallocs blocks of 16 B-2 KiB in batches of 64 and queues each batch; its
 * consumer checks and frees them.  Every free is remote, and memory flows
 * one way, which allocators with per-thread caches must send back.
 * One op = one block (malloc by a producer, free by a consumer); producers
 * time their mallocs, consumers their frees. */
#include "../bench_common.h"

#include <pthread.h>

#define BATCH 64
#define DEPTH 16 /* batches a queue holds */

typedef struct queue {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  long head, tail; /* batches taken / put; slot = count % DEPTH */
  int done;
  slot_t batch[DEPTH][BATCH];
  int len[DEPTH];
} queue_t;

static queue_t *queues;

static void produce(queue_t *q, bench_thread_t *t, long ops) {
  while (ops > 0) {
    pthread_mutex_lock(&q->lock);
    while (q->tail - q->head == DEPTH)
      pthread_cond_wait(&q->cond, &q->lock);
    pthread_mutex_unlock(&q->lock);
    /* The slot at tail is ours until tail moves on: fill it unlocked. */
    int slot = (int)(q->tail % DEPTH), n = ops < BATCH ? (int)ops : BATCH;
    for (int i = 0; i < n; i++) {
      slot_t *s = &q->batch[slot][i];
      size_t size = rnd_log(t, 16, 2048);
      uint64_t t0 = lat_begin(t);
      slot_replace(s, size);
      lat_end(t, t0);
    }
    q->len[slot] = n;
    ops -= n;
    pthread_mutex_lock(&q->lock);
    q->tail++;
    q->done = ops == 0;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
  }
}

static void consume(queue_t *q, bench_thread_t *t) {
  for (;;) {
    pthread_mutex_lock(&q->lock);
    while (q->head == q->tail && !q->done)
      pthread_cond_wait(&q->cond, &q->lock);
    int empty = q->head == q->tail;
    pthread_mutex_unlock(&q->lock);
    if (empty)
      return; /* done and drained */
    int slot = (int)(q->head % DEPTH);
    for (int i = 0; i < q->len[slot]; i++) {
      uint64_t t0 = lat_begin(t);
      slot_free(&q->batch[slot][i]);
      lat_end(t, t0);
    }
    pthread_mutex_lock(&q->lock);
    q->head++;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
  }
}

static void *worker(void *arg) {
  bench_arg_t *a = arg;
  bench_t *b = a->b;
  int n = b->threads, pair = a->id % n;
  if (a->id < n)
    produce(&queues[pair], &b->thr[a->id],
            b->ops / n + (pair < b->ops % n));
  else
    consume(&queues[pair], &b->thr[a->id]);
  return NULL;
}

static void run(bench_t *b) {
  queues = bench_scratch((size_t)b->threads * sizeof *queues);
  for (int i = 0; i < b->threads; i++) {
    pthread_mutex_init(&queues[i].lock, NULL);
    pthread_cond_init(&queues[i].cond, NULL);
    queues[i].done = b->ops / b->threads + (i < b->ops % b->threads) == 0;
  }
  bench_parallel(b, 2 * b->threads, worker);
}

const workload_t wl_prod_cons = {
    .name = "prod-cons",
    .default_ops = 3000000,
    .takes_threads = 1,
    .run = run,
    .about = "N producer threads malloc 16 B-2 KiB, N consumer threads free",
};
