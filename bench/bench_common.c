#include "bench_common.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

void bench_die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("hakmem-bench: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(2);
}

uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void *bench_scratch(size_t bytes) {
  void *p = mmap(NULL, bytes ? bytes : 1, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED)
    bench_die("mmap of %zu bytes failed", bytes);
  return p;
}

size_t rnd_log(bench_thread_t *t, size_t lo, size_t hi) {
  /* Pick an octave uniformly, then a size uniformly inside it. */
  int bits_lo = 63 - __builtin_clzll(lo), bits_hi = 63 - __builtin_clzll(hi);
  int b = bits_lo + (int)(rnd(t) % (uint64_t)(bits_hi - bits_lo + 1));
  size_t a = (size_t)1 << b, z = (a << 1) - 1;
  if (a < lo)
    a = lo;
  if (z > hi)
    z = hi;
  return rnd_range(t, a, z);
}

void block_corrupt(const void *p, uint64_t got, uint64_t want) {
  bench_die("block %p corrupted: tag %#llx, expected %#llx", p,
            (unsigned long long)got, (unsigned long long)want);
}

void block_touch(void *p, size_t size) {
  /* One write per page, from offset 8 on, to spare the tag.  The line
   * written moves with the page number: a write at the same offset of
   * every page puts all of a 64 KiB block's writes in one L1 set (8 ways),
   * and which run then thrashed depended on where the kernel put the
   * pages: json ran at 16 or 33 M ops/s, per process, under every
   * allocator. */
  volatile char *c = p;
  if (size <= sizeof(uint64_t)) {
    if (size)
      c[size - 1] = 1;
    return;
  }
  uintptr_t a = (uintptr_t)p + sizeof(uint64_t), end = (uintptr_t)p + size;
  for (uintptr_t pg = a & ~(uintptr_t)4095; pg < end; pg += 4096) {
    uintptr_t x = pg + ((pg >> 12) & 63) * 64 + sizeof(uint64_t);
    if (x < a)
      x = a;
    if (x >= end)
      x = end - 1;
    c[x - (uintptr_t)p] = 1;
  }
  c[size - 1] = 1;
}

void bench_malloc_failed(size_t size) {
  bench_die("malloc(%zu) returned NULL", size);
}

void bench_parallel(bench_t *b, int n, void *(*fn)(void *)) {
  if (n > BENCH_MAX_THREADS)
    bench_die("too many threads: %d", n);
  pthread_t tid[BENCH_MAX_THREADS];
  bench_arg_t args[BENCH_MAX_THREADS];
  for (int i = 0; i < n; i++) {
    args[i] = (bench_arg_t){b, i};
    int err = pthread_create(&tid[i], NULL, fn, &args[i]);
    if (err)
      bench_die("pthread_create: %s", strerror(err));
  }
  for (int i = 0; i < n; i++)
    pthread_join(tid[i], NULL);
}

static pthread_attr_t spawn_attr;
static pthread_once_t spawn_once = PTHREAD_ONCE_INIT;

static void spawn_init(void) {
  pthread_attr_init(&spawn_attr);
  pthread_attr_setstacksize(&spawn_attr, 256 << 10);
}

void bench_spawn(pthread_t *tid, void *(*fn)(void *), void *arg) {
  pthread_once(&spawn_once, spawn_init);
  int err = pthread_create(tid, &spawn_attr, fn, arg);
  if (err)
    bench_die("pthread_create: %s", strerror(err));
}

void bench_churn_slots(bench_t *b, int nslots, size_t lo, size_t hi) {
  bench_thread_t *t = &b->thr[0];
  slot_t slots[256] = {{0}};
  if (nslots > 256) nslots = 256;
  for (long i = 0; i < b->ops; i++) {
    slot_t *s = &slots[rnd(t) % (unsigned)nslots];
    size_t size = rnd_log(t, lo, hi);
    uint64_t t0 = lat_begin(t);
    slot_replace(s, size);
    block_touch(s->p, size);
    lat_end(t, t0);
  }
  for (int i = 0; i < nslots; i++)
    slot_free(&slots[i]);
}

void chan_init(chan_t *c) {
  pthread_mutex_init(&c->lock, NULL);
  pthread_cond_init(&c->cond, NULL);
  c->head = c->tail = 0;
  c->closed = 0;
}

void **chan_put_begin(chan_t *c) {
  pthread_mutex_lock(&c->lock);
  while (c->tail - c->head == CHAN_DEPTH)
    pthread_cond_wait(&c->cond, &c->lock);
  long slot = c->tail % CHAN_DEPTH;
  pthread_mutex_unlock(&c->lock);
  return c->blk[slot]; /* ours until tail moves on */
}

void chan_put_end(chan_t *c, int n) {
  pthread_mutex_lock(&c->lock);
  c->len[c->tail % CHAN_DEPTH] = n;
  c->tail++;
  pthread_cond_broadcast(&c->cond);
  pthread_mutex_unlock(&c->lock);
}

void chan_close(chan_t *c) {
  pthread_mutex_lock(&c->lock);
  c->closed = 1;
  pthread_cond_broadcast(&c->cond);
  pthread_mutex_unlock(&c->lock);
}

void **chan_take_begin(chan_t *c, int *n, int wait) {
  pthread_mutex_lock(&c->lock);
  while (wait && c->head == c->tail && !c->closed)
    pthread_cond_wait(&c->cond, &c->lock);
  void **batch = NULL;
  if (c->head != c->tail) {
    batch = c->blk[c->head % CHAN_DEPTH];
    *n = c->len[c->head % CHAN_DEPTH];
  }
  pthread_mutex_unlock(&c->lock);
  return batch;
}

void chan_take_end(chan_t *c) {
  pthread_mutex_lock(&c->lock);
  c->head++;
  pthread_cond_broadcast(&c->cond);
  pthread_mutex_unlock(&c->lock);
}
