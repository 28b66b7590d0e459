/* test_stress — many threads (more than cores) allocating across all tiers,
 * freeing locally and remotely, with blocks outliving the threads that
 * allocated them.  Every block carries a pattern derived from its address
 * and size, checked before it is freed or reallocated.
 *
 * usage: test_stress [seconds]   (default 3.6, split over three phases)
 *   phase 1:  8 long-lived threads
 *   phase 2: 16 long-lived threads (they free what phase 1 left behind)
 *   phase 3: waves of short-lived threads that exit with blocks still alive
 *            in the exchange; the next wave frees them. */
#define _GNU_SOURCE
#include <pthread.h>

#include "check.h"

/* ---- the exchange: a mutex-protected ring of blocks in transit between
 * threads; whoever pops a block frees it (usually not its allocator). */
#define XCAP 4096
static block_t xring[XCAP];
static size_t xhead, xcount;
static pthread_mutex_t xlock = PTHREAD_MUTEX_INITIALIZER;

static int xpush(block_t b) {
  int ok = 0;
  pthread_mutex_lock(&xlock);
  if (xcount < XCAP) {
    xring[(xhead + xcount++) % XCAP] = b;
    ok = 1;
  }
  pthread_mutex_unlock(&xlock);
  return ok;
}

static int xpop(block_t *b) {
  int ok = 0;
  pthread_mutex_lock(&xlock);
  if (xcount) {
    *b = xring[xhead];
    xhead = (xhead + 1) % XCAP;
    xcount--;
    ok = 1;
  }
  pthread_mutex_unlock(&xlock);
  return ok;
}

/* ---- block life cycle */

static atomic_long n_allocs, n_remote_frees;

/* Mostly 8 B-1 KiB, some up to 64 KiB, a few up to 256 KiB, rarely 3 MiB. */
static size_t pick_size(uint64_t *rng) {
  uint64_t r = rng_next(rng) % 10000;
  if (r < 8900) return rng_range(rng, 8, 1 * KiB);
  if (r < 9800) return rng_range(rng, 1 * KiB + 1, 64 * KiB);
  if (r < 9995) return rng_range(rng, 64 * KiB + 1, 256 * KiB);
  return rng_range(rng, 3 * MiB - 4096, 3 * MiB + 4096);
}

/* A block of a random size; one in 16 comes from calloc. */
static block_t new_block(uint64_t *rng) {
  size_t n = pick_size(rng);
  atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
  if (rng_next(rng) % 16) return block_new(n);
  block_t b = {t_calloc(1, n), n};
  CHECKF(b.p != NULL, "calloc(1, %zu) failed", n);
  if (!b.p) return b;
  const unsigned char *c = b.p;
  size_t step = n <= 64 * KiB ? 1 : 61; /* sparse for big ones: cheaper */
  for (size_t i = 0; i < n; i += step)
    if (c[i]) {
      CHECKF(0, "calloc(1, %zu) = %p: byte %zu not zero", n, b.p, i);
      break;
    }
  pattern_fill(b.p, n);
  return b;
}

/* ---- long-lived workers */

#define SLOTS 256

typedef struct {
  uint64_t seed;
  double deadline;
} worker_arg_t;

static void *worker(void *argp) {
  worker_arg_t *arg = argp;
  uint64_t rng = arg->seed;
  block_t slot[SLOTS] = {{0}};
  for (unsigned iter = 0;; iter++) {
    if (iter % 64 == 0 && now_seconds() >= arg->deadline) break;
    block_t *s = &slot[rng_next(&rng) % SLOTS];
    unsigned op = (unsigned)(rng_next(&rng) % 100);
    if (op < 45) { /* allocate (replacing whatever was there) */
      block_free(s);
      *s = new_block(&rng);
    } else if (op < 58) { /* local free */
      block_free(s);
    } else if (op < 73) { /* hand over to another thread */
      if (s->p && xpush(*s)) s->p = NULL;
    } else if (op < 90) { /* remote free of someone else's block */
      block_t b;
      if (xpop(&b)) {
        block_free(&b);
        atomic_fetch_add_explicit(&n_remote_frees, 1, memory_order_relaxed);
      }
    } else if (s->p) {
      block_resize(s, pick_size(&rng));
    }
  }
  /* Exit with blocks still alive: whatever fits goes to the exchange and is
   * freed by threads of a later phase. */
  for (int i = 0; i < SLOTS; i++)
    if (slot[i].p && !xpush(slot[i])) block_free(&slot[i]);
  return NULL;
}

static void run_workers(int nthreads, double seconds, uint64_t seed) {
  pthread_t tid[64];
  worker_arg_t arg[64];
  double deadline = now_seconds() + seconds;
  for (int i = 0; i < nthreads; i++) {
    arg[i].seed = seed * 1000 + (uint64_t)i;
    arg[i].deadline = deadline;
    int rc = pthread_create(&tid[i], NULL, worker, &arg[i]);
    CHECKF(rc == 0, "pthread_create: %d", rc);
    if (rc) nthreads = i;
  }
  for (int i = 0; i < nthreads; i++) pthread_join(tid[i], NULL);
}

/* ---- waves of short-lived threads */

static void *short_lived(void *argp) {
  uint64_t rng = (uint64_t)(uintptr_t)argp;
  /* Free blocks left by threads that have already exited... */
  block_t b;
  for (int i = 0; i < 96 && xpop(&b); i++) {
    block_free(&b);
    atomic_fetch_add_explicit(&n_remote_frees, 1, memory_order_relaxed);
  }
  /* ...and leave our own behind when we exit. */
  for (int i = 0; i < 128; i++) {
    block_t nb = new_block(&rng);
    if (i % 3 == 0 || !xpush(nb)) block_free(&nb);
  }
  return NULL;
}

static void run_waves(double seconds, uint64_t seed) {
  enum { WAVE = 6 };
  double deadline = now_seconds() + seconds;
  for (uint64_t w = 0; now_seconds() < deadline; w++) {
    pthread_t tid[WAVE];
    int n = 0;
    for (; n < WAVE; n++) {
      uintptr_t s = (uintptr_t)(seed * 1000003 + w * WAVE + (uint64_t)n + 1);
      if (pthread_create(&tid[n], NULL, short_lived, (void *)s) != 0) {
        CHECKF(0, "pthread_create failed in wave %lu", (unsigned long)w);
        break;
      }
    }
    for (int i = 0; i < n; i++) pthread_join(tid[i], NULL);
  }
}

/* ---- an observer beside the churn (hak_* API only): statistics read
 * while threads exit, explicit call-site calls while others allocate.  In
 * the TSan build this finds unsynchronised reads of shared state. */
static atomic_int observer_stop;

#if HAK_TEST_HAVE_API
static void *observer(void *arg) {
  (void)arg;
  static char json[64 * 1024];
  for (unsigned i = 0; !atomic_load(&observer_stop); i++) {
    hak_stats_t st;
    CHECK(hak_stats_get(&st) == 0);
    hak_usage_t u;
    hak_usage(&u);
    if (i % 8 == 0) CHECK(hak_stats_json(json, sizeof json) < sizeof json);
    void *a = hak_alloc_cs(64), *b = hak_alloc_cs(100 * KiB);
    CHECK(a && b);
    hak_free_cs(a);
    hak_free_cs(b);
    struct timespec ts = {0, 2 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return NULL;
}
#endif

int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 3.6;
  if (!(seconds > 0)) seconds = 3.6;
  check_hakmem_active();

#if HAK_TEST_HAVE_API
  pthread_t obs;
  CHECK(pthread_create(&obs, NULL, observer, NULL) == 0);
#endif
  run_workers(8, seconds / 3, 1);
  printf("phase 1 (8 threads): %zu blocks left in the exchange\n", xcount);
  run_workers(16, seconds / 3, 2);
  printf("phase 2 (16 threads): %zu blocks left in the exchange\n", xcount);
  run_waves(seconds / 3, 3);
  printf("phase 3 (waves): %zu blocks left in the exchange\n", xcount);

  atomic_store(&observer_stop, 1);
#if HAK_TEST_HAVE_API
  pthread_join(obs, NULL);
#endif
  block_t b;
  while (xpop(&b)) block_free(&b);
  printf("%ld allocations, %ld remote frees\n", atomic_load(&n_allocs),
         atomic_load(&n_remote_frees));
#ifdef HAK_TEST_USE_API
  /* (Through the hak_* API only: with malloc replaced, libc's own blocks,
   * stdio's buffers for one, stay live.)
   * Every block is free again, and every free reached its slab: once the
   * main thread has adopted and collected everything, the counters show
   * nothing live (a remote free lost on the way would keep its slab). */
  if (!hak_build_minimal()) {
    hak_trim();
    hak_stats_t st;
    hak_stats_get(&st);
    unsigned long long a = 0, f = 0;
    for (unsigned c = 0; c < st.nclasses; c++) a += st.cls[c].allocs, f += st.cls[c].frees;
    CHECKF(a == f && st.live_bytes == 0, "after freeing everything: %llu allocs, %llu frees, %llu live bytes",
           a, f, st.live_bytes);
  }
#endif
  return check_report("stress");
}
