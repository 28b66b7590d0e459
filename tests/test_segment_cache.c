/* segment_cache: the segments that a round of threads leaves behind stay
 * cached for the purge delay, however many come back at once, so that the
 * next round reuses them instead of mapping fresh ones (src/segment.c,
 * seg_to_cache); after the delay the cache shrinks back to its size.
 *
 *   test_segment_cache reuse   (HAKMEM_PURGE_DELAY_MS=60000) rounds of 16
 *                              threads alive at once, each leaving blocks
 *                              for the main thread to free: once the
 *                              rounds have warmed up, four of them map
 *                              fewer segments than half of the first
 *   test_segment_cache trim    (HAKMEM_PURGE_DELAY_MS=50) the same rounds,
 *                              then a wait past the delay: the next slow
 *                              paths unmap the excess
 *   test_segment_cache park    (HAKMEM_PURGE_DELAY_MS=60000) a thread that
 *                              starts after another exited takes its heap
 *                              whole (src/heap.c, heap_park): its first
 *                              block is the one the other freed last
 * Linked to libhakmem: malloc is hakmem's and hak_usage is callable. */
#include <pthread.h>
#include <unistd.h>

#include "check.h"

#define THREADS 16
#define BLOCKS 256
#define LEFT 8
#define SEG ((size_t)4 << 20)

static pthread_barrier_t all_alive;
static void *left[THREADS][LEFT];

/* Blocks of 16 B - 8 KiB (Tiny and Mid classes), all freed but LEFT, which
 * the main thread frees after the join; exits only once every thread of
 * the round is alive, so that the round holds many segments at once. */
static void *worker(void *arg) {
  int id = (int)(intptr_t)arg;
  void *b[BLOCKS];
  for (int i = 0; i < BLOCKS; i++) {
    size_t n = (size_t)16 << (i % 10);
    b[i] = malloc(n + (size_t)(i * 8) % n);
    CHECK(b[i] != NULL);
    if (b[i]) memset(b[i], i, 16);
  }
  for (int i = 0; i < BLOCKS; i++) {
    if (i < LEFT) left[id][i] = b[i];
    else free(b[i]);
  }
  pthread_barrier_wait(&all_alive);
  return NULL;
}

static void round_of_threads(void) {
  pthread_t t[THREADS];
  pthread_barrier_init(&all_alive, NULL, THREADS);
  for (int i = 0; i < THREADS; i++) CHECK(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i) == 0);
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  pthread_barrier_destroy(&all_alive);
  for (int i = 0; i < THREADS; i++)
    for (int k = 0; k < LEFT; k++) free(left[i][k]);
}

static void reuse(void) {
  hak_usage_t u0, u1, u2;
  hak_usage(&u0);
  round_of_threads();
  hak_usage(&u1);
  size_t first = u1.os_mmap - u0.os_mmap; /* what one round maps from nothing */
  CHECKF(u1.mapped > 8 * SEG, "the first round mapped only %zu MiB: too few segments to test the cache",
         u1.mapped >> 20);
  /* The next rounds map what the blocks left behind keep from reuse (and
   * what the threads' interleaving moves around); then hardly anything:
   * under the old rule (the cache's 8 kept, the rest unmapped at once)
   * each round mapped about as many as the first. */
  for (int r = 0; r < 3; r++) round_of_threads();
  hak_usage(&u1);
  for (int r = 0; r < 4; r++) round_of_threads();
  hak_usage(&u2);
  size_t later = u2.os_mmap - u1.os_mmap;
  CHECKF(later * 2 <= first, "rounds 5-8 mapped %zu times, the first round %zu (%zu MiB mapped, %zu before)", later,
         first, u2.mapped >> 20, u1.mapped >> 20);
}

/* Slow paths of this thread (one in a few looks at the clock), every time
 * it is called: blocks of many sizes, and of a few sizes more blocks than
 * one slab holds (a slab taken, one given back). */
static void slow_paths(void) {
  for (int r = 0; r < 64; r++) {
    void *p[40];
    for (int i = 0; i < 40; i++) p[i] = malloc((size_t)2048 + (size_t)i * 1500);
    for (int i = 0; i < 40; i++) free(p[i]);
  }
  for (int r = 0; r < 8; r++) {
    void *p[64];
    for (int i = 0; i < 64; i++) p[i] = malloc((size_t)(16 + r) << 10);
    for (int i = 0; i < 64; i++) free(p[i]);
  }
}

static void trim(void) {
  hak_usage_t u0, u1;
  for (int r = 0; r < 2; r++) round_of_threads();
  hak_usage(&u0);
  CHECKF(u0.mapped > 16 * SEG, "only %zu MiB mapped after the rounds", u0.mapped >> 20);
  usleep(400 * 1000); /* 8 x the delay */
  /* The slow paths that look at the clock abandon the exited threads'
   * parked heaps (a few per look) and trim the cache: a few rounds of them,
   * however the threads of the last round were scheduled. */
  for (int k = 0; k < 10; k++) {
    slow_paths();
    usleep(100 * 1000);
    slow_paths();
    hak_usage(&u1);
    if (u1.os_munmap - u0.os_munmap >= THREADS && u1.mapped + THREADS * SEG <= u0.mapped &&
        u1.committed <= u0.committed / 4)
      break;
  }
  /* Left: the cache's 8 segments, this thread's own, and the exited
   * threads' segments that held the blocks left behind (adopted by a
   * thread that needs one; their free slabs purged meanwhile). */
  CHECKF(u1.os_munmap - u0.os_munmap >= THREADS && u1.mapped + THREADS * SEG <= u0.mapped,
         "after the delay %zu MiB still mapped (%zu before), %zu unmaps", u1.mapped >> 20, u0.mapped >> 20,
         u1.os_munmap - u0.os_munmap);
  CHECKF(u1.committed <= u0.committed / 4, "after the delay %zu KiB committed (%zu before)", u1.committed >> 10,
         u0.committed >> 10);
}

/* One thread allocates blocks of one class, leaves one for the main
 * thread, frees the rest and exits; the main thread frees the one left.
 * The next thread's first block of that class is the last one the exited
 * thread freed: its heap, current slab and free list were handed over.
 * (Abandoning the heap instead, the slab came back empty when adopted and
 * the next thread carved it afresh from its first block.) */
#define PARK_N 64
static void *park_left, *park_last_freed, *park_first;

static void *park_first_thread(void *arg) {
  (void)arg;
  void *b[PARK_N];
  for (int i = 0; i < PARK_N; i++) CHECK((b[i] = malloc(48)) != NULL);
  park_left = b[0];
  for (int i = 1; i < PARK_N; i++) free(b[i]);
  park_last_freed = b[PARK_N - 1];
  return NULL;
}

static void *park_second_thread(void *arg) {
  (void)arg;
  park_first = malloc(48);
  return NULL;
}

static void park(void) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, park_first_thread, NULL) == 0);
  pthread_join(t, NULL);
  free(park_left);
  CHECK(pthread_create(&t, NULL, park_second_thread, NULL) == 0);
  pthread_join(t, NULL);
  CHECKF(park_first == park_last_freed, "the next thread's first block is %p, the exited thread freed %p last",
         park_first, park_last_freed);
  free(park_first);
}

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "reuse")) reuse();
  else if (argc > 1 && !strcmp(argv[1], "trim")) trim();
  else if (argc > 1 && !strcmp(argv[1], "park")) park();
  else CHECKF(0, "usage: test_segment_cache reuse|trim|park");
  return check_report("segment_cache");
}
