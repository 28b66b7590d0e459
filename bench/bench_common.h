/* Shared harness of hakmem's benchmark workloads.
 *
 * The workloads run under LD_PRELOAD, so they call plain malloc/free and
 * link only libc + pthread.  The harness's own memory (latency samples,
 * pointer arrays) comes from mmap, not malloc, so that the allocator under
 * test sees only the workload's blocks.
 */
#ifndef HAKMEM_BENCH_COMMON_H
#define HAKMEM_BENCH_COMMON_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

/* By default latency is sampled on every 64th operation: timing each one
 * would cost more than a fast malloc itself. */
#define BENCH_SAMPLE_EVERY 64
#define BENCH_MAX_THREADS 256

/* Per-thread state: random generator and latency samples (in cycles).
 * One cache line each, so that threads do not share the lines they write
 * on every op (which would slow every threaded workload alike). */
typedef struct bench_thread {
  uint64_t rng;
  uint32_t countdown, every; /* sample when countdown hits 0; reset to every */
  uint32_t *samples;
  size_t nsamples, cap;
} __attribute__((aligned(64))) bench_thread_t;

typedef struct bench {
  const char *workload;
  long ops;          /* operations to perform (the workload defines one op) */
  int threads;
  uint64_t seed;
  size_t live_bytes; /* set by the workload: bytes it still holds at the end */
  bench_thread_t thr[BENCH_MAX_THREADS]; /* one per thread (prod-cons: 2N) */
} bench_t;

typedef struct workload {
  const char *name;
  long default_ops;
  int takes_threads; /* 0: always runs one thread */
  void (*run)(bench_t *b);
  void (*after)(bench_t *b); /* optional: frees what run kept for the RSS figure */
  const char *about;
  int sample_every; /* 0: BENCH_SAMPLE_EVERY; 1 for slow ops (few of them) */
} workload_t;

/* ---- timing ---- */
uint64_t bench_now_ns(void); /* CLOCK_MONOTONIC */

static inline uint64_t bench_cycles(void) {
#if defined(__x86_64__)
  _mm_lfence(); /* keep earlier work from drifting past the read */
  return __rdtsc();
#else
  return bench_now_ns();
#endif
}

/* Returns a start stamp on sampled operations, 0 otherwise. */
static inline uint64_t lat_begin(bench_thread_t *t) {
  if (--t->countdown)
    return 0;
  t->countdown = t->every;
  return bench_cycles();
}

static inline void lat_end(bench_thread_t *t, uint64_t start) {
  if (!start)
    return;
  uint64_t d = bench_cycles() - start;
  if (t->nsamples < t->cap)
    t->samples[t->nsamples++] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

/* ---- random numbers (xorshift64*, per thread so threads do not share) -- */
static inline uint64_t rnd(bench_thread_t *t) {
  uint64_t x = t->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  t->rng = x;
  return x * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [lo, hi]. */
static inline size_t rnd_range(bench_thread_t *t, size_t lo, size_t hi) {
  return lo + (size_t)(rnd(t) % (hi - lo + 1));
}

/* Log-uniform in [lo, hi]: small sizes are as common per octave as large
 * ones, as in real programs. */
size_t rnd_log(bench_thread_t *t, size_t lo, size_t hi);
/* The working-set loop of large-ws and big-churn: `nslots` live blocks of
 * lo..hi bytes (log-uniform), one replaced at random per op, every page of
 * the new block written. */
void bench_churn_slots(bench_t *b, int nslots, size_t lo, size_t hi);

/* ---- blocks ---- */
/* Every block gets a tag in its first word, checked before it is freed: a
 * cheap guard against an allocator handing out overlapping or clobbered
 * memory.  The tag is derived from the address, so any thread can check. */
static inline uint64_t addr_tag(const void *p) {
  return (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ULL;
}

static inline void block_tag(void *p, size_t size, uint64_t tag) {
  if (size >= sizeof tag)
    __builtin_memcpy(p, &tag, sizeof tag);
}

void block_corrupt(const void *p, uint64_t got, uint64_t want)
    __attribute__((noreturn));

static inline void block_check(const void *p, size_t size, uint64_t tag) {
  uint64_t got;
  if (size < sizeof got)
    return;
  __builtin_memcpy(&got, p, sizeof got);
  if (__builtin_expect(got != tag, 0))
    block_corrupt(p, got, tag);
}

/* Writes one byte per page, so the block is really backed by memory. */
void block_touch(void *p, size_t size);

void bench_malloc_failed(size_t size) __attribute__((noreturn));

/* malloc that ends the benchmark on NULL. */
/* malloc called from here, not jumped to: the call site is the function
 * this is inlined into (a tail call would make it that one's caller). The
 * site-* workloads tell their sites apart by it. */
static inline void *site_malloc(size_t n) {
  void *p = malloc(n);
  __asm__ volatile("" : : "r"(p) : "memory");
  return p;
}

static inline void *xmalloc(size_t size) {
  void *p = malloc(size);
  if (__builtin_expect(!p, 0))
    bench_malloc_failed(size);
  return p;
}

/* A slot holds one live block and its size.  Replacing it (check + free the
 * old block, malloc + tag a new one) is the operation most workloads time. */
typedef struct slot {
  void *p;
  size_t size;
} slot_t;

static inline void slot_free(slot_t *s) {
  if (s->p) {
    block_check(s->p, s->size, addr_tag(s->p));
    free(s->p);
    s->p = NULL;
  }
}

static inline void slot_replace(slot_t *s, size_t size) {
  slot_free(s);
  s->p = xmalloc(size);
  s->size = size;
  block_tag(s->p, size, addr_tag(s->p));
}

/* ---- harness services ---- */
void *bench_scratch(size_t bytes); /* zeroed memory from mmap, never freed */
void bench_die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* Argument block handed to bench_parallel's threads. */
typedef struct bench_arg {
  bench_t *b;
  int id;
} bench_arg_t;

/* Runs fn(&(bench_arg_t){b, i}) on threads i = 0..n-1 and joins them;
 * thread i uses b->thr[i]. */
void bench_parallel(bench_t *b, int n, void *(*fn)(void *));

/* Starts one thread with a small stack (256 KiB), for workloads that
 * create many short-lived threads: the stacks then stay in glibc's cache
 * and the time goes to the threads' work, not to mapping stacks. */
void bench_spawn(pthread_t *tid, void *(*fn)(void *), void *arg);

/* A channel of batches of blocks from one producer thread to one
 * consumer thread (rptest).  Bounded (CHAN_DEPTH batches): a producer that
 * finds it full sleeps, so a fast thread cannot pile up memory in a slow
 * one's inbox.  The producer fills the batch at the tail in place and the
 * consumer empties the one at the head in place; only the indices are
 * under the lock. */
#define CHAN_BATCH 64
#define CHAN_DEPTH 8
typedef struct chan {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  long head, tail; /* batches taken / put; slot = count % CHAN_DEPTH */
  int closed;
  int len[CHAN_DEPTH];
  void *blk[CHAN_DEPTH][CHAN_BATCH];
} chan_t;

void chan_init(chan_t *c);
/* Waits for room; returns the batch to fill (CHAN_BATCH entries). */
void **chan_put_begin(chan_t *c);
void chan_put_end(chan_t *c, int n); /* publishes the n entries filled */
void chan_close(chan_t *c);          /* the producer puts no more */
/* The oldest batch and its length in *n; NULL when there is none (wait=0)
 * or when the channel is closed and empty (wait=1). */
void **chan_take_begin(chan_t *c, int *n, int wait);
void chan_take_end(chan_t *c); /* done with the batch: its room is free */

/* Thread id's share of n operations split evenly over `of` threads. */
static inline long bench_share(long n, int id, int of) {
  return n / of + (id < n % of);
}

#endif
