/* test_secure — what the secure library promises besides catching errors
 * (tests/errors does that): requested usable sizes, realloc in place and
 * across tiers, HAKMEM_FILL, HAKMEM_ZERO_FREE, delayed reuse, guard pages,
 * and that a corrupted free-list link stops the process.
 *
 * Linked to hakmem_secure_api (the hak_* calls of the secure build, glibc
 * keeps malloc).  hakmem reads its options when the process starts, so the
 * test runs itself again with them set; the cases that must die run in
 * forked children. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static const size_t sizes[] = {0, 1, 15, 16, 24, 100, 1000, 1016, 1017, 5000, 32760, 32761,
                               40000, 100000, 1000000, 3 * MiB, 5 * MiB + 3};

static void test_usable(void) {
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    unsigned char *p = hak_malloc(n);
    CHECKF(p != NULL, "malloc(%zu)", n);
    if (!p) continue;
    CHECKF(hak_usable_size(p) == n, "usable size of malloc(%zu) is %zu", n, hak_usable_size(p));
    CHECK(((uintptr_t)p & 15) == 0 || n < 16);
    pattern_fill(p, n);
    CHECK_PATTERN(p, n);
    hak_free(p);
    void *q = hak_calloc(1, n);
    CHECK(q != NULL && hak_usable_size(q) == n);
    for (size_t j = 0; q && j < n; j++)
      if (((unsigned char *)q)[j]) {
        CHECKF(0, "calloc(1, %zu) byte %zu not zero", n, j);
        break;
      }
    hak_free(q);
  }
  /* Aligned blocks: the alignment, and the requested size. */
  static const size_t aligns[] = {32, 64, 1024, 4096, 65536, 1 << 21};
  for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
    void *p = hak_aligned_alloc(aligns[i], 3 * aligns[i]);
    CHECK(p && ((uintptr_t)p & (aligns[i] - 1)) == 0);
    CHECK(hak_usable_size(p) == 3 * aligns[i]);
    hak_free(p);
  }
}

/* Growing and shrinking by realloc keeps the contents and the size. */
static void test_realloc(void) {
  size_t n = 10;
  unsigned char *p = hak_malloc(n);
  pattern_fill_range(p, 0, n, 42);
  while (n < 4 * MiB) {
    size_t m = n + n / 3 + 7;
    unsigned char *q = hak_realloc(p, m);
    CHECKF(q != NULL, "realloc to %zu", m);
    if (!q) return;
    CHECKF(pattern_find_bad(q, 0, n, 42) == SIZE_MAX, "realloc %zu -> %zu lost contents", n, m);
    CHECKF(hak_usable_size(q) == m, "usable after realloc to %zu: %zu", m, hak_usable_size(q));
    pattern_fill_range(q, 0, m, 42);
    p = q, n = m;
  }
  while (n > 4) {
    size_t m = n / 2;
    unsigned char *q = hak_realloc(p, m);
    CHECK(q && pattern_find_bad(q, 0, m, 42) == SIZE_MAX && hak_usable_size(q) == m);
    p = q, n = m;
  }
  hak_free(p);
}

/* HAKMEM_FILL=0xA5: new blocks hold the byte (calloc's zeros win). */
static void test_fill(void) {
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    unsigned char *p = hak_malloc(n);
    for (size_t j = 0; p && j < n; j++)
      if (p[j] != 0xA5) {
        CHECKF(0, "malloc(%zu) byte %zu is 0x%x, not the fill byte", n, j, p[j]);
        break;
      }
    hak_free(p);
  }
}

/* HAKMEM_ZERO_FREE=1: a freed slab block is zeroed (but its last word, the
 * record); with the quarantine it is not handed out again at once. */
static void test_zero_free_and_delay(void) {
  for (size_t n = 16; n <= 4096; n *= 2) {
    unsigned char *p = hak_malloc(n);
    memset(p, 0x5A, n);
    hak_free(p);
    unsigned char *volatile freed = p;
    for (size_t j = 0; j + 8 < n; j++)
      if (freed[j]) {
        CHECKF(0, "%zu-byte block: byte %zu not zeroed by the free", n, j);
        break;
      }
    /* The next allocations of the size do not reuse it (quarantine of 16). */
    void *q[8];
    for (int i = 0; i < 8; i++) {
      q[i] = hak_malloc(n);
      CHECKF(q[i] != p, "%zu-byte block reused by the %d-th next malloc", n, i + 1);
    }
    for (int i = 0; i < 8; i++) hak_free(q[i]);
  }
}

/* ---- cases that must stop the process (in a child) ------------------- */

static int child_status(void (*fn)(void)) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) dup2(devnull, 2);
    alarm(10);
    fn();
    _exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return st;
}

static void write_past_large(void) {
  volatile unsigned char *p = hak_malloc(100 * KiB); /* 25 pages: the guard is the next page */
  p[100 * KiB] = 1;
}

/* 8-byte requests get 16-byte blocks, which fill a Tiny slab to its guard
 * page: the block that ends there, written one byte past. */
static void write_past_slab(void) {
  for (int i = 0; i < 10000; i++) {
    volatile unsigned char *p = hak_malloc(8);
    if ((((uintptr_t)p + 16) & 0xffff) == 0xf000) p[16] = 1;
  }
}

static void corrupt_link(void) {
  void *a[4], *b[32];
  for (int i = 0; i < 4; i++) a[i] = hak_malloc(40);
  for (int i = 0; i < 32; i++) b[i] = hak_malloc(40);
  for (int i = 0; i < 4; i++) hak_free(a[i]);
  for (int i = 0; i < 32; i++) hak_free(b[i]); /* a[] leave the quarantine for a free list */
  for (int i = 0; i < 4; i++) memset(opaque_ptr(a[i]), 0x41, 8); /* their links: a use after free */
  for (int r = 0; r < 8192; r++) opaque_ptr(hak_malloc(40));
}

/* Spans laid over the guards of freed ones: every byte of the new span is
 * writable (the old guards inside it lifted), and its own guard is there.
 * 24 spans of different sizes, side by side, are freed; blocks are then
 * taken until one has a freed span's start strictly inside it, so that
 * the guard of the span before that one (its last page) is inside too.
 * Run in a child: a failure is its exit status (2: a block missing or
 * wrong, 3: no block covered a freed span), a guard left inside a SIGSEGV. */
static volatile unsigned char *relaid;
static size_t relaid_n;
static void relay_spans(void) {
  for (int round = 0; round < 3; round++) {
    unsigned char *a[24];
    for (int i = 0; i < 24; i++) a[i] = hak_malloc((size_t)(70 + 13 * i) * KiB);
    for (int i = 0; i < 24; i++) hak_free(a[i]);
    for (int i = 0; i < 8; i++) hak_free(hak_malloc(80 * KiB)); /* the Large quarantine moves on */
    relaid_n = (size_t)(300 + 200 * round) * KiB;
    void *held[256];
    int nheld = 0;
    bool over = false;
    while (!over && nheld < 256) {
      relaid = hak_malloc(relaid_n);
      if (!relaid) _exit(2);
      for (int i = 0; i < 24; i++) over |= a[i] > relaid && a[i] < relaid + relaid_n;
      if (!over) held[nheld++] = (void *)relaid;
    }
    if (!over) _exit(3);
    for (size_t j = 0; j < relaid_n; j++) relaid[j] = (unsigned char)j;
    for (size_t j = 0; j < relaid_n; j += 4093)
      if (relaid[j] != (unsigned char)j) _exit(2);
    while (nheld) hak_free(held[--nheld]);
    if (round < 2) hak_free((void *)relaid);
  }
}
static void write_past_relaid(void) {
  relay_spans();
  relaid[relaid_n] = 1; /* 700 KiB: 175 pages and the guard, a whole span class */
}

static void test_guards_relaid(void) {
  int st = child_status(relay_spans);
  CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writing whole spans laid over freed ones: status 0x%x", st);
  st = child_status(write_past_relaid);
  CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "write past a span laid over freed ones: status 0x%x", st);
}

/* The kernel's guard markers (Linux 6.13) need no mapping of their own:
 * thousands of live Large blocks leave the process's mappings few.  With
 * mprotect guards each one split a mapping in three, and 40,000 blocks
 * reached the kernel's limit of 65,530 mappings, past which guards and
 * every other mmap of the process fail. */
static int count_mappings(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  int n = 0, c;
  if (!f) return -1;
  while ((c = fgetc(f)) != EOF) n += c == '\n';
  fclose(f);
  return n;
}

static void test_many_guards(void) {
  void *probe = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  bool markers = probe != MAP_FAILED && madvise(probe, 4096, 102 /* MADV_GUARD_INSTALL */) == 0;
  if (probe != MAP_FAILED) munmap(probe, 4096);
  enum { N = 6000 };
  static void *v[N];
  int before = count_mappings();
  for (int i = 0; i < N; i++) {
    v[i] = hak_malloc(80 * KiB);
    CHECKF(v[i] != NULL, "block %d", i);
  }
  int during = count_mappings();
  for (int i = 0; i < N; i++) hak_free(v[i]);
  if (markers)
    CHECKF(during - before < 200, "%d live Large blocks: %d mappings, %d before", N, during, before);
  else
    printf("secure: no guard markers in this kernel (mprotect guards): %d mappings for %d live blocks\n", during, N);
}

static void test_stops(void) {
  int st = child_status(write_past_large);
  CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "write past a Large block: status 0x%x", st);
  st = child_status(write_past_slab);
  CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "write past a slab: status 0x%x", st);
  st = child_status(corrupt_link);
  CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "corrupted links: status 0x%x", st);
}

int main(int argc, char **argv) {
  /* hakmem reads its options when the process starts: run again with them. */
  if (!getenv("HAKMEM_FILL")) {
    setenv("HAKMEM_FILL", "0xA5", 1);
    setenv("HAKMEM_ZERO_FREE", "1", 1);
    setenv("HAKMEM_QUARANTINE", "16", 1);
    execv("/proc/self/exe", argv);
    CHECKF(0, "execv: %s", strerror(errno));
    return check_report("secure");
  }
  section_select(argc, argv);
  RUN_SECTION(test_fill);
  RUN_SECTION(test_usable);
  RUN_SECTION(test_realloc);
  RUN_SECTION(test_zero_free_and_delay);
  RUN_SECTION(test_stops);
  RUN_SECTION(test_guards_relaid);
  RUN_SECTION(test_many_guards);
  return check_report("secure");
}
