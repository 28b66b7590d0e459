/* xmalloc: many producers, many consumers, one lock-free stack.  With
 * --threads N, half the threads (rounded up) allocate small objects of
 * 16-128 B, link 32 of them into a chain through the objects themselves
 * (word 1; word 0 is the tag) and push the chain onto a shared lock-free
 * stack with one CAS; the other half pop the whole stack at once and free
 * every object in it.  Any consumer frees any producer's objects, so the
 * frees are remote and scattered.  Producers wait (sched_yield) while more
 * than 64 Ki objects are in flight.  With one thread, that thread produces
 * a chain and then consumes the stack, in turn.
 * Unlike prod-cons (N producer/consumer pairs, each with its own mutex
 * queue, 16 B-2 KiB), the objects are small, the hand-over is lock-free
 * and shared by all, and the thread count is the total.
 * One op = one object (malloc by a producer, free by a consumer). */
#include "../bench_common.h"

#include <sched.h>
#include <stdatomic.h>

#define CHAIN 32
#define IN_FLIGHT (64 << 10)

typedef struct obj {
  uint64_t tag;
  struct obj *next;
} obj_t;

static _Atomic(obj_t *) stack;
static atomic_long in_flight;
static atomic_int producing; /* producers not yet done */

static void produce_chain(bench_thread_t *t, int n) {
  obj_t *first = NULL, *last = NULL;
  for (int i = 0; i < n; i++) {
    size_t size = rnd_range(t, 16, 128);
    uint64_t t0 = lat_begin(t);
    obj_t *o = xmalloc(size);
    lat_end(t, t0);
    o->tag = addr_tag(o);
    o->next = first;
    first = o;
    if (!last)
      last = o;
  }
  atomic_fetch_add_explicit(&in_flight, n, memory_order_relaxed);
  obj_t *head = atomic_load_explicit(&stack, memory_order_relaxed);
  do
    last->next = head;
  while (!atomic_compare_exchange_weak_explicit(
      &stack, &head, first, memory_order_release, memory_order_relaxed));
}

/* Frees everything on the stack; returns how many objects that was. */
static long consume_all(bench_thread_t *t) {
  obj_t *o = atomic_exchange_explicit(&stack, NULL, memory_order_acquire);
  long n = 0;
  while (o) {
    obj_t *next = o->next;
    block_check(o, sizeof *o, addr_tag(o));
    uint64_t t0 = lat_begin(t);
    free(o);
    lat_end(t, t0);
    o = next;
    n++;
  }
  if (n)
    atomic_fetch_sub_explicit(&in_flight, n, memory_order_relaxed);
  return n;
}

static void *worker(bench_t *b, int id, int producers) {
  bench_thread_t *t = &b->thr[id];
  if (id < producers) {
    long ops = bench_share(b->ops, id, producers);
    while (ops > 0) {
      while (atomic_load_explicit(&in_flight, memory_order_relaxed) > IN_FLIGHT)
        sched_yield();
      int n = ops < CHAIN ? (int)ops : CHAIN;
      produce_chain(t, n);
      ops -= n;
      if (producers == b->threads) /* one thread: it consumes too */
        consume_all(t);
    }
    atomic_fetch_sub(&producing, 1);
  } else {
    for (;;) {
      int done = atomic_load(&producing) == 0; /* read before the pop */
      if (!consume_all(t)) {
        if (done)
          break;
        sched_yield();
      }
    }
  }
  return NULL;
}

static void *thread_main(void *arg) {
  bench_arg_t *a = arg;
  return worker(a->b, a->id, (a->b->threads + 1) / 2);
}

static void run(bench_t *b) {
  atomic_store(&producing, (b->threads + 1) / 2);
  bench_parallel(b, b->threads, thread_main);
  consume_all(&b->thr[0]); /* nothing left, unless threads == 1 left some */
}

const workload_t wl_xmalloc = {
    .name = "xmalloc",
    .default_ops = 5000000,
    .takes_threads = 1,
    .run = run,
    .about = "N/2 producers malloc 16-128 B, push chains on a shared lock-free stack; N/2 consumers free",
};
