/* test_errors — one memory error per run, for comparing what allocators
 * catch (tests/errors/run_errors.py runs every case under glibc,
 * libhakmem.so and libhakmem-secure.so; docs/security.md has the table).
 *
 *   test_errors list        the cases, one per line
 *   test_errors CASE        commits that error, then goes on using the heap
 *                           as a program would, and exits 0
 *
 * A case is "caught" when the process does not end silently with status 0:
 * the allocator stopped it (abort, a fault on a guard page) or reported the
 * error.  Exit status 3 means a use-after-free case found that the freed
 * block was not handed out again (the allocator delayed its reuse).
 *
 * Built without hakmem (the allocator comes from LD_PRELOAD or is glibc's),
 * with -fno-builtin, and every call goes through a volatile pointer, so
 * that the compiler neither warns about nor removes the errors. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void *(*volatile v_malloc)(size_t) = malloc;
static void *(*volatile v_calloc)(size_t, size_t) = calloc;
static void *(*volatile v_realloc)(void *, size_t) = realloc;
static void (*volatile v_free)(void *) = free;
static void *(*volatile v_memalign)(size_t, size_t) = memalign;
static int (*volatile v_posix_memalign)(void **, size_t, size_t) = posix_memalign;
static void *(*volatile v_memset)(void *, int, size_t) = memset;

static char *opaque(void *p) {
  void *volatile v = p;
  return v;
}

/* The four tiers of hakmem (and glibc's tcache/bins/mmap around them). */
static const struct { const char *name; size_t n; } tiers[] = {
    {"tiny", 40},              /* Tiny (<= 1 KiB) */
    {"mid", 3000},             /* Mid (<= 32 KiB) */
    {"large", 100000},         /* Large (< 2 MiB) */
    {"big", 3 * 1048576 + 100} /* Big */
};
enum { NTIERS = sizeof tiers / sizeof tiers[0] };

/* After the error: the program goes on allocating and freeing, in every
 * tier and in the size of the error, as real programs do. */
static void go_on(size_t n) {
  for (int i = 0; i < 64; i++) {
    char *q = v_malloc(n);
    if (q) v_memset(q, 0x5a, n);
    v_free(q);
  }
  for (int t = 0; t < NTIERS; t++)
    for (int i = 0; i < (tiers[t].n > 1000000 ? 2 : 16); i++) {
      char *q = v_malloc(tiers[t].n);
      if (q) v_memset(q, 0x5a, tiers[t].n);
      v_free(q);
    }
}

/* ---- the error kinds, for a block of n bytes ---------------------------- */

static void double_free(size_t n) {
  char *p = v_malloc(n);
  v_free(p);
  v_free(p);
  go_on(n);
}

static void double_free_later(size_t n) {
  char *p = v_malloc(n), *q[8];
  for (int i = 0; i < 8; i++) q[i] = v_malloc(n);
  v_free(p);
  for (int i = 0; i < 8; i++) v_free(q[i]);
  v_free(p);
  go_on(n);
}

static void uaf_write(size_t n) {
  char *p = v_malloc(n);
  v_memset(p, 1, n);
  v_free(p);
  v_memset(p, 'A', 16); /* write after free */
  go_on(n);
}

/* Write after free, then take 64 blocks of the same size: if one of them
 * is the freed block, its new owner got the corrupted bytes (silent). */
static void uaf_next_owner(size_t n) {
  char *p = v_malloc(n), *q[64];
  v_memset(p, 1, n);
  v_free(p);
  v_memset(p, 'A', 16);
  int reused = 0;
  for (int i = 0; i < 64; i++) {
    q[i] = v_malloc(n);
    reused |= q[i] == p;
  }
  for (int i = 0; i < 64; i++) v_free(q[i]);
  if (!reused) exit(3);
}

static void overflow_1(size_t n) {
  char *p = v_malloc(n);
  v_memset(p, 1, n);
  p[n] = 'A';
  v_free(p);
  go_on(n);
}

static void overflow_8(size_t n) {
  char *p = v_malloc(n);
  v_memset(p, 1, n);
  v_memset(p + n, 'A', 8);
  v_free(p);
  go_on(n);
}

static void overflow_page(size_t n) {
  char *p = v_malloc(n);
  v_memset(p, 1, n);
  v_memset(p + n, 'A', 4096);
  v_free(p);
  go_on(n);
}

static void underflow_8(size_t n) {
  char *q = v_malloc(n), *p = v_malloc(n);
  v_memset(p - 8, 'A', 8);
  v_free(p);
  v_free(q);
  go_on(n);
}

static void underflow_1(size_t n) {
  char *q = v_malloc(n), *p = v_malloc(n);
  opaque(p)[-1] = 0;
  v_free(p);
  v_free(q);
  go_on(n);
}

static void free_interior(size_t n) {
  char *p = v_malloc(n);
  v_free(p + 16);
  v_free(p);
  go_on(n);
}

static void free_unaligned(size_t n) {
  char *p = v_malloc(n);
  v_free(p + 1);
  v_free(p);
  go_on(n);
}

static void realloc_freed(size_t n) {
  char *p = v_malloc(n);
  v_free(p);
  char *q = v_realloc(p, 2 * n);
  v_free(q);
  go_on(n);
}

/* p is gone after realloc, moved or not: freeing it and the result is
 * always one free too many. */
static void free_after_realloc(size_t n) {
  char *p = v_malloc(n);
  char *q = v_realloc(p, 2 * n);
  v_free(p);
  v_free(q);
  go_on(n);
}

static const struct { const char *name; void (*fn)(size_t); } kinds[] = {
    {"double_free", double_free},
    {"double_free_later", double_free_later},
    {"uaf_write", uaf_write},
    {"uaf_next_owner", uaf_next_owner},
    {"overflow_1", overflow_1},
    {"overflow_8", overflow_8},
    {"overflow_page", overflow_page},
    {"underflow_1", underflow_1},
    {"underflow_8", underflow_8},
    {"free_interior", free_interior},
    {"free_unaligned", free_unaligned},
    {"realloc_freed", realloc_freed},
    {"free_after_realloc", free_after_realloc},
};
enum { NKINDS = sizeof kinds / sizeof kinds[0] };

/* ---- errors of their own ---------------------------------------------------- */

static char global_buf[256];

static void free_stack(void) {
  char buf[64];
  v_memset(buf, 1, sizeof buf);
  v_free(opaque(buf));
  go_on(64);
}

static void free_global(void) {
  v_free(opaque(global_buf));
  go_on(64);
}

static void free_literal(void) {
  v_free(opaque((void *)"a string literal"));
  go_on(64);
}

static void free_mmap(void) {
  char *m = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) exit(2);
  v_free(m + 4096);
  go_on(64);
}

static void free_wild(void) {
  v_free(opaque((void *)(uintptr_t)0x10000));
  go_on(64);
}

static void zero_size_write(void) {
  char *p = v_malloc(0);
  v_memset(p, 'A', 16);
  v_free(p);
  go_on(16);
}

static void calloc_overflow_1(void) {
  int *p = v_calloc(10, sizeof(int));
  ((char *)p)[10 * sizeof(int)] = 1;
  v_free(p);
  go_on(40);
}

static void strcpy_overflow(void) {
  char *s = v_malloc(6);
  strcpy(opaque(s), "hello, world");
  v_free(s);
  go_on(6);
}

static void memalign_interior_free(void) {
  char *p = v_memalign(64, 200);
  v_free(p + 64);
  v_free(p);
  go_on(200);
}

static void memalign_double_free(void) {
  char *p = v_memalign(4096, 5000);
  v_free(p);
  v_free(p);
  go_on(5000);
}

static void posix_memalign_overflow_8(void) {
  void *p;
  if (v_posix_memalign(&p, 32, 100)) exit(2);
  v_memset((char *)p + 100, 'A', 8);
  v_free(p);
  go_on(100);
}

static void realloc_zero_double_free(void) {
  char *p = v_malloc(40);
  v_realloc(p, 0); /* frees p (glibc) */
  v_free(p);
  go_on(40);
}

static void double_free_interleaved(void) {
  char *a = v_malloc(40), *b = v_malloc(40);
  v_free(a);
  v_free(b);
  v_free(a);
  go_on(40);
}

static void uaf_after_realloc(void) {
  char *p = v_malloc(40);
  char *q = v_realloc(p, 4000); /* moves */
  v_memset(p, 'A', 16);        /* through the stale pointer */
  go_on(40);
  v_free(q);
}

static void *free_in_thread(void *p) {
  v_free(p);
  return NULL;
}

static void cross_thread_double_free(void) {
  char *p = v_malloc(40);
  pthread_t t;
  if (pthread_create(&t, NULL, free_in_thread, p)) exit(2);
  pthread_join(t, NULL);
  v_free(p);
  go_on(40);
}

static const struct { const char *name; void (*fn)(void); } singles[] = {
    {"free_stack", free_stack},
    {"free_global", free_global},
    {"free_literal", free_literal},
    {"free_mmap", free_mmap},
    {"free_wild", free_wild},
    {"zero_size_write", zero_size_write},
    {"calloc_overflow_1", calloc_overflow_1},
    {"strcpy_overflow", strcpy_overflow},
    {"memalign_interior_free", memalign_interior_free},
    {"memalign_double_free", memalign_double_free},
    {"posix_memalign_overflow_8", posix_memalign_overflow_8},
    {"realloc_zero_double_free", realloc_zero_double_free},
    {"double_free_interleaved", double_free_interleaved},
    {"uaf_after_realloc", uaf_after_realloc},
    {"cross_thread_double_free", cross_thread_double_free},
};
enum { NSINGLES = sizeof singles / sizeof singles[0] };

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: test_errors list | CASE\n");
    return 2;
  }
  if (!strcmp(argv[1], "list")) {
    for (int k = 0; k < NKINDS; k++)
      for (int t = 0; t < NTIERS; t++) printf("%s.%s\n", kinds[k].name, tiers[t].name);
    for (int i = 0; i < NSINGLES; i++) printf("%s\n", singles[i].name);
    return 0;
  }
  for (int k = 0; k < NKINDS; k++)
    for (int t = 0; t < NTIERS; t++) {
      char name[96];
      snprintf(name, sizeof name, "%s.%s", kinds[k].name, tiers[t].name);
      if (!strcmp(argv[1], name)) {
        kinds[k].fn(tiers[t].n);
        return 0;
      }
    }
  for (int i = 0; i < NSINGLES; i++)
    if (!strcmp(argv[1], singles[i].name)) {
      singles[i].fn();
      return 0;
    }
  fprintf(stderr, "test_errors: unknown case %s\n", argv[1]);
  return 2;
}
