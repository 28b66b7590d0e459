/* check.h — the tiny harness shared by hakmem's C tests.
 *
 * CHECK(expr) / CHECKF(expr, fmt, ...) print "file:line: CHECK failed: ..."
 * to stderr and count the failure (thread-safe); a test ends with
 * `return check_report("name");`, which exits non-zero if anything failed.
 *
 * How a test binary reaches the allocator is chosen at compile time:
 *   (default)           linked to libhakmem.so or libhakmem.a: malloc is
 *                       hakmem's, and the hak_* API is callable directly;
 *   HAK_TEST_PRELOAD    not linked to hakmem, run under LD_PRELOAD: malloc is
 *                       hakmem's, hak_* symbols only reachable via dlsym;
 *   HAK_TEST_USE_API    linked to hakmem_api (no override, e.g. under TSan):
 *                       the t_* wrappers below call hak_* instead of malloc;
 *   HAK_TEST_GLIBC      no hakmem at all — only to check the tests themselves
 *                       against glibc; hakmem-specific expectations are off.
 */
#ifndef HAKMEM_TESTS_CHECK_H
#define HAKMEM_TESTS_CHECK_H

#include <dlfcn.h>
#include <sys/mman.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if !defined(HAK_TEST_PRELOAD) && !defined(HAK_TEST_GLIBC)
#define HAK_TEST_HAVE_API 1 /* hak_* may be called directly */
#include "hakmem.h"
#else
#define HAK_TEST_HAVE_API 0
#endif

#ifdef HAK_TEST_GLIBC
#define HAK_TEST_EXPECT_HAKMEM 0 /* allocator under test is glibc */
#else
#define HAK_TEST_EXPECT_HAKMEM 1
#endif

/* ThreadSanitizer build?  (gcc defines the macro, clang has __has_feature) */
#if defined(__SANITIZE_THREAD__)
#define HAK_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HAK_TEST_TSAN 1
#endif
#endif
#ifndef HAK_TEST_TSAN
#define HAK_TEST_TSAN 0
#endif

/* ------------------------------------------------------------------ checks */

static atomic_int check_failures_;

/* After this many reports, failures are only counted (a corrupted heap can
 * otherwise flood the log). */
#define CHECK_MAX_REPORTS 50

static inline __attribute__((format(printf, 4, 5))) void check_fail_(
    const char *file, int line, const char *expr, const char *fmt, ...) {
  int n = atomic_fetch_add(&check_failures_, 1);
  if (n >= CHECK_MAX_REPORTS) return;
  char msg[512] = "";
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
  }
  fprintf(stderr, "%s:%d: CHECK failed: %s%s%s\n", file, line, expr,
          fmt ? " — " : "", msg);
  if (n + 1 == CHECK_MAX_REPORTS)
    fprintf(stderr, "(further failures are counted, not printed)\n");
}

#define CHECK(expr) \
  ((expr) ? (void)0 : check_fail_(__FILE__, __LINE__, #expr, NULL))
/* CHECKF(expr, fmt, args...) adds a printf-style explanation. */
#define CHECKF(expr, ...) \
  ((expr) ? (void)0 : check_fail_(__FILE__, __LINE__, #expr, __VA_ARGS__))

static inline int check_failures(void) { return atomic_load(&check_failures_); }

/* Prints the verdict; the value is the process exit status. */
/* The resident set of this process, in bytes (/proc/self/statm). */
static inline size_t check_rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long size = 0, resident = 0;
  if (!f || fscanf(f, "%lu %lu", &size, &resident) != 2) CHECKF(0, "cannot read /proc/self/statm");
  if (f) fclose(f);
  return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

static inline int check_report(const char *test) {
  int n = check_failures();
  if (n) fprintf(stderr, "%s: FAILED (%d check%s)\n", test, n, n == 1 ? "" : "s");
  else printf("%s: all checks passed\n", test);
  fflush(NULL);
  return n ? 1 : 0;
}

/* Runs one section of a test, saying which and how long it took (so that a
 * hang or a crash points at its section).  If section_select() was given
 * names (a test's command-line arguments), only those sections run. */
static char **section_names_;
static int section_count_;

static inline void section_select(int argc, char **argv) {
  section_names_ = argv + 1;
  section_count_ = argc - 1;
}

static inline int section_selected_(const char *name) {
  if (section_count_ <= 0) return 1;
  for (int i = 0; i < section_count_; i++)
    if (strcmp(section_names_[i], name) == 0) return 1;
  return 0;
}

#define RUN_SECTION(fn)                                                    \
  do {                                                                     \
    if (!section_selected_(#fn)) break;                                    \
    printf("%-28s ...", #fn);                                              \
    fflush(stdout);                                                        \
    double rs_t0_ = now_seconds();                                         \
    int rs_f0_ = check_failures();                                         \
    fn();                                                                  \
    printf(" %s (%.2f s)\n", check_failures() == rs_f0_ ? "ok" : "FAILED", \
           now_seconds() - rs_t0_);                                        \
    fflush(stdout);                                                        \
  } while (0)

/* ------------------------------------------------ allocator indirection */

#ifdef HAK_TEST_USE_API
#define t_malloc hak_malloc
#define t_calloc hak_calloc
#define t_realloc hak_realloc
#define t_free hak_free
#define t_usable_size hak_usable_size
#else
#define t_malloc malloc
#define t_calloc calloc
#define t_realloc realloc
#define t_free free
#define t_usable_size malloc_usable_size
#endif

/* hak_owns(p) if hakmem is reachable: 1 or 0; -1 when it is not (a glibc
 * reference run, or a preloaded run where the symbol is missing). */
static inline int test_owns(const void *p) {
#if HAK_TEST_HAVE_API
  return hak_owns(p);
#else
  typedef int (*owns_fn)(const void *);
  owns_fn owns = (owns_fn)dlsym(RTLD_DEFAULT, "hak_owns");
  return owns ? owns(p) : -1;
#endif
}

/* Asserts that the allocator under test really is hakmem, so a broken
 * override cannot make a test silently exercise glibc instead. */
static inline void check_hakmem_active(void) {
#if HAK_TEST_EXPECT_HAKMEM
  void *p = t_malloc(16);
  CHECK(p != NULL);
  int owned = test_owns(p);
  CHECKF(owned != -1, "hak_owns not found (is libhakmem.so loaded?)");
  CHECKF(owned == 1, "allocations do not come from hakmem");
  t_free(p);
#else
  fprintf(stderr, "note: glibc reference run; hakmem-specific checks skipped\n");
#endif
}

/* ------------------------------------------------------------- utilities */

/* Hides a value from the optimizer, so that constant huge sizes do not
 * trigger -Walloc-size-larger-than and calls are not folded away. */
static inline size_t opaque_size(size_t n) {
  volatile size_t v = n;
  return v;
}
static inline void *opaque_ptr(void *p) {
  void *volatile v = p;
  return v;
}

static inline double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* splitmix64: small, fast, good enough to pick sizes. */
static inline uint64_t rng_next(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
/* Uniform in [lo, hi]. */
static inline size_t rng_range(uint64_t *state, size_t lo, size_t hi) {
  return lo + (size_t)(rng_next(state) % (hi - lo + 1));
}

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

/* Resident 4 KiB pages of [p, p+n) (n a multiple of 4 KiB, at most
 * 16 MiB), per mincore; (size_t)-1 if it cannot tell. */
static inline size_t resident_pages(const void *p, size_t n) {
  static unsigned char vec[(16 << 20) / 4096];
  if (n > sizeof vec * 4096 || mincore((void *)p, n, vec) != 0) return (size_t)-1;
  size_t r = 0;
  for (size_t i = 0; i < n / 4096; i++) r += vec[i] & 1;
  return r;
}

/* ------------------------------------------------------------- patterns
 *
 * Byte i of a pattern with seed s is byte (i % 8) of the word
 * pattern_word(s, i / 8), so any sub-range can be filled or checked
 * independently.  pattern_seed(p, n) derives the seed from a block's address
 * and size: a block overwritten by (or handed out as) another one fails the
 * check.  A seed that does not depend on the address (realloc tests) keeps
 * a block's contents checkable after it moved. */

static inline uint64_t pattern_word(uint64_t seed, size_t wi) {
  uint64_t z = seed + (uint64_t)wi * 0x9E3779B97F4A7C15ull;
  return z ^ (z >> 29);
}
static inline uint64_t pattern_seed(const void *p, size_t n) {
  uint64_t s = (uint64_t)(uintptr_t)p * 0xD6E8FEB86659FD93ull ^ (uint64_t)n;
  return s ^ (s >> 32);
}
static inline unsigned char pattern_byte(uint64_t seed, size_t i) {
  return (unsigned char)(pattern_word(seed, i / 8) >> (8 * (i % 8)));
}

/* Writes the pattern over bytes [off, off + len) of p. */
static inline void pattern_fill_range(void *p, size_t off, size_t len,
                                      uint64_t seed) {
  unsigned char *b = p;
  size_t i = off, end = off + len;
  for (; i < end && i % 8; i++) b[i] = pattern_byte(seed, i);
  for (; i + 8 <= end; i += 8) {
    uint64_t w = pattern_word(seed, i / 8);
    memcpy(b + i, &w, 8); /* memcpy: p + i need not be 8-aligned */
  }
  for (; i < end; i++) b[i] = pattern_byte(seed, i);
}

/* Offset of the first byte in [off, off + len) that differs from the
 * pattern, or SIZE_MAX if the range is intact. */
static inline size_t pattern_find_bad(const void *p, size_t off, size_t len,
                                      uint64_t seed) {
  const unsigned char *b = p;
  size_t i = off, end = off + len;
  for (; i < end && i % 8; i++)
    if (b[i] != pattern_byte(seed, i)) return i;
  for (; i + 8 <= end; i += 8) {
    uint64_t w;
    memcpy(&w, b + i, 8);
    if (w != pattern_word(seed, i / 8)) break; /* locate the byte below */
  }
  for (; i < end; i++)
    if (b[i] != pattern_byte(seed, i)) return i;
  return SIZE_MAX;
}

/* The common case: a whole block, seeded by its address and size. */
static inline void pattern_fill(void *p, size_t n) {
  pattern_fill_range(p, 0, n, pattern_seed(p, n));
}
static inline int pattern_ok(const void *p, size_t n) {
  return pattern_find_bad(p, 0, n, pattern_seed(p, n)) == SIZE_MAX;
}

/* CHECKs that block p of n bytes still holds its pattern; says where not. */
#define CHECK_PATTERN(p, n)                                                  \
  do {                                                                       \
    const void *cp_p_ = (p);                                                 \
    size_t cp_n_ = (n);                                                      \
    size_t cp_bad_ = pattern_find_bad(cp_p_, 0, cp_n_, pattern_seed(cp_p_, cp_n_)); \
    CHECKF(cp_bad_ == SIZE_MAX, "block %p (%zu bytes) corrupted at offset %zu", \
           cp_p_, cp_n_, cp_bad_);                                           \
  } while (0)

/* ---------------------------------------------------------------- blocks
 * A live allocation and its size, patterned by its address: what the
 * stress and fork tests pass around. */
typedef struct {
  void *p;
  size_t n;
} block_t;

/* Allocates n bytes (t_malloc) and patterns them; p is NULL on failure. */
static inline block_t block_new(size_t n) {
  block_t b = {t_malloc(n), n};
  CHECKF(b.p != NULL, "malloc(%zu) failed", n);
  if (b.p) {
    CHECKF(t_usable_size(b.p) >= n, "usable size %zu < %zu", t_usable_size(b.p), n);
    pattern_fill(b.p, n);
  }
  return b;
}

/* Checks the pattern, frees, and clears the block (no-op if empty). */
static inline void block_free(block_t *b) {
  if (!b->p) return;
  CHECK_PATTERN(b->p, b->n);
  t_free(b->p);
  b->p = NULL;
}

/* t_realloc to m bytes: the kept prefix must still hold the pattern of the
 * old address; the block is then re-patterned for its new address. */
static inline void block_resize(block_t *b, size_t m) {
  uint64_t old_seed = pattern_seed(b->p, b->n);
  void *q = t_realloc(b->p, m);
  CHECKF(q != NULL, "realloc(%zu -> %zu) failed", b->n, m);
  if (!q) return;
  size_t keep = b->n < m ? b->n : m;
  size_t bad = pattern_find_bad(q, 0, keep, old_seed);
  CHECKF(bad == SIZE_MAX, "realloc(%p, %zu -> %zu) = %p lost contents at offset %zu",
         b->p, b->n, m, q, bad);
  b->p = q;
  b->n = m;
  pattern_fill(q, m);
}

/* 1: the mapping that holds p asks for transparent huge pages (VmFlags
 * "hg" in /proc/self/smaps), 0: it does not, -1: the kernel does not say. */
static inline int asked_huge(const void *p) {
  FILE *f = fopen("/proc/self/smaps", "r");
  if (!f) return -1;
  char line[512];
  int in = 0, r = -1;
  while (fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
      in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
    } else if (in && !strncmp(line, "VmFlags:", 8)) {
      r = strstr(line, " hg") != NULL;
      break;
    }
  }
  fclose(f);
  return r;
}

#endif /* HAKMEM_TESTS_CHECK_H */
