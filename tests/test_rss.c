/* test_rss — memory a program has not used stays out of RSS, and freed
 * memory goes back to the OS.
 *
 * First, in a fresh thread (a fresh heap): ten 960-byte blocks, 9.4 KiB,
 * make the three pages they lie in resident and no more (src/slab.c: a
 * carve links its blocks a page at a time), and blocks other threads
 * freed in a slab come back before its next fresh page.  Then it
 * allocates ~200 MiB in small, mid, large and big blocks and touches it
 * all, frees ~95% (in each class, all but the most recently allocated
 * 5%, so the survivors do not pin every page), calls malloc_trim(0), and
 * requires the resident set to have dropped by at least half of what was
 * freed. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"

typedef struct {
  const char *name;
  size_t lo, hi;  /* block sizes, uniform in [lo, hi] */
  size_t total;   /* bytes to allocate in this class */
  void **ptr;     /* bookkeeping, mmap'ed so it stays out of the heap */
  size_t *size;
  size_t count, cap;
} size_class_t;

static void *map_array(size_t bytes) {
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    perror("mmap");
    exit(2);
  }
  return p;
}

/* The first blocks of a class no one used yet: a fresh slab's, from its
 * first page on, in order. */
static void *carve_thread(void *arg) {
  (void)arg;
  enum { N = 10, SIZE = 960 };
  unsigned char *b[N];
  for (int i = 0; i < N; i++) {
    b[i] = malloc(SIZE);
    CHECK(b[i] != NULL);
    if (!b[i]) return NULL;
    b[i][0] = 1;
  }
  int in_order = ((uintptr_t)b[0] & 4095) == 0;
  for (int i = 1; i < N; i++) in_order &= b[i] == b[0] + (size_t)i * SIZE;
  CHECKF(in_order, "the blocks of a fresh slab came out of order (first at %p)", (void *)b[0]);
  if (in_order) {
    size_t r = resident_pages(b[0], 16 * KiB);
    CHECKF(r == 3, "%d blocks of %d B in 3 pages: %zu of the slab's first 4 pages resident", N, SIZE, r);
  }
  for (int i = 0; i < N; i++) free(b[i]);
  return NULL;
}

/* A slab's freed blocks before a fresh page: in a fresh thread, 832-byte
 * blocks fill three pages (the third linked whole, 5 blocks), another
 * thread frees six of the first, and once the third page's blocks are
 * gone the next six mallocs get the freed six back, not the slab's fourth
 * page.  (The owner's own frees are taken back first anyway: on top of
 * the slab's list.) */
enum { R_SIZE = 832, R_FIRST = 12, R_FREED = 6, R_PAGE3 = 3 };
static void *free_six(void *arg) {
  unsigned char **b = arg;
  for (int k = 0; k < R_FREED; k++) free(b[k]);
  return NULL;
}
static void *reuse_thread(void *arg) {
  (void)arg;
  unsigned char *b[R_FIRST + R_PAGE3 + R_FREED];
  for (int i = 0; i < R_FIRST + R_PAGE3; i++) {
    b[i] = malloc(R_SIZE);
    CHECK(b[i] != NULL);
    if (!b[i]) return NULL;
    b[i][0] = 1;
    if (i == R_FIRST - 1) {
      pthread_t t;
      CHECK(pthread_create(&t, NULL, free_six, b) == 0 && pthread_join(t, NULL) == 0);
    }
  }
  int in_order = ((uintptr_t)b[0] & 4095) == 0;
  for (int i = R_FREED; i < R_FIRST + R_PAGE3; i++) in_order &= b[i] == b[0] + (size_t)i * R_SIZE;
  CHECKF(in_order, "the blocks of a fresh slab came out of order (first at %p)", (void *)b[0]);
  int reused = 0;
  for (int i = R_FIRST + R_PAGE3; i < R_FIRST + R_PAGE3 + R_FREED; i++) {
    b[i] = malloc(R_SIZE);
    CHECK(b[i] != NULL);
    if (!b[i]) return NULL;
    for (int k = 0; k < R_FREED; k++) reused += b[i] == b[0] + (size_t)k * R_SIZE;
  }
  CHECKF(reused == R_FREED, "after the slab's third page, %d of %d mallocs took a block another thread freed",
         reused, R_FREED);
  if (in_order) {
    size_t r = resident_pages(b[0], 16 * KiB);
    CHECKF(r == 3, "%d blocks of %d B live in 3 pages: %zu of the slab's first 4 pages resident",
           R_FIRST + R_PAGE3, R_SIZE, r);
  }
  for (int i = R_FREED; i < R_FIRST + R_PAGE3 + R_FREED; i++) free(b[i]);
  return NULL;
}

int main(void) {
  check_hakmem_active();
  pthread_t t;
  CHECK(pthread_create(&t, NULL, carve_thread, NULL) == 0 && pthread_join(t, NULL) == 0);
  CHECK(pthread_create(&t, NULL, reuse_thread, NULL) == 0 && pthread_join(t, NULL) == 0);
  size_class_t cls[] = {
      {"small", 16, 512, 50 * MiB, NULL, NULL, 0, 0},
      {"mid", 1 * KiB, 32 * KiB, 50 * MiB, NULL, NULL, 0, 0},
      {"large", 64 * KiB, 512 * KiB, 50 * MiB, NULL, NULL, 0, 0},
      {"big", 4 * MiB, 4 * MiB, 50 * MiB, NULL, NULL, 0, 0},
  };
  enum { NCLS = sizeof cls / sizeof cls[0] };
  for (int c = 0; c < NCLS; c++) {
    cls[c].cap = cls[c].total / cls[c].lo + 1;
    cls[c].ptr = map_array(cls[c].cap * sizeof(void *));
    cls[c].size = map_array(cls[c].cap * sizeof(size_t));
  }

  size_t rss0 = check_rss_bytes();
  uint64_t rng = 2024;
  /* Interleave the classes, as a real program would: each turn allocates
   * 1/256 of every class's total. */
  size_t allocated = 0;
  for (int more = 1; more;) {
    more = 0;
    for (int c = 0; c < NCLS; c++) {
      size_class_t *k = &cls[c];
      size_t got = 0;
      while (got < k->total / 256 && k->count < k->cap) {
        size_t n = rng_range(&rng, k->lo, k->hi);
        void *p = malloc(n);
        CHECKF(p != NULL, "malloc(%zu) failed", n);
        if (!p) break;
        memset(p, 0x5A, n); /* touch every page */
        k->ptr[k->count] = p;
        k->size[k->count++] = n;
        got += n;
      }
      allocated += got;
      if (got && allocated < 200 * MiB) more = 1;
    }
  }
  size_t rss1 = check_rss_bytes();

  size_t freed = 0;
  for (int c = 0; c < NCLS; c++) {
    size_class_t *k = &cls[c];
    size_t keep_from = k->count - k->count / 20; /* survivors: the last 5% */
    if (keep_from == k->count && k->count) keep_from--;
    for (size_t i = 0; i < keep_from; i++) {
      free(k->ptr[i]);
      freed += k->size[i];
    }
    k->count -= keep_from;
    memmove(k->ptr, k->ptr + keep_from, k->count * sizeof(void *));
    memmove(k->size, k->size + keep_from, k->count * sizeof(size_t));
  }
  int trimmed = malloc_trim(0);
  size_t rss2 = check_rss_bytes();

  printf("allocated %zu MiB: rss %zu -> %zu MiB\n", allocated / MiB, rss0 / MiB,
         rss1 / MiB);
  printf("freed %zu MiB, malloc_trim(0) = %d: rss %zu MiB (dropped %zu MiB)\n",
         freed / MiB, trimmed, rss2 / MiB, rss1 > rss2 ? (rss1 - rss2) / MiB : 0);
  CHECKF(rss1 >= rss0 + allocated / 2, "touching %zu MiB grew rss by only %zu MiB",
         allocated / MiB, (rss1 - rss0) / MiB);
  CHECKF(rss2 < rss1 && rss1 - rss2 >= freed / 2,
         "rss fell by %zu MiB after freeing %zu MiB (want >= half)",
         rss1 > rss2 ? (rss1 - rss2) / MiB : 0, freed / MiB);

  /* The survivors are intact, and free cleanly. */
  for (int c = 0; c < NCLS; c++)
    for (size_t i = 0; i < cls[c].count; i++) {
      unsigned char *p = cls[c].ptr[i];
      CHECK(p[0] == 0x5A && p[cls[c].size[i] - 1] == 0x5A);
      free(p);
    }
  return check_report("rss");
}
