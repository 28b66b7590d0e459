/* fuzz_api — a libFuzzer target for the whole hak_* API.
 *
 * The input is a program: each operation is one byte (which call) followed
 * by the bytes its arguments need; the program ends with its input.  Every
 * block handed out is checked against a shadow model and then carries a
 * pattern derived from its own id (not its address, so that it survives a
 * move by realloc):
 *   - a call that must succeed returns a block with usable size >= the size
 *     asked for, aligned as asked (16 for plain allocations), owned by
 *     hakmem (first and last usable byte), overlapping no other live block
 *     (all usable bytes, checked against every live block);
 *   - calloc's bytes are zero;
 *   - realloc keeps min(old, new) bytes; a failed realloc leaves the block;
 *   - a block's usable size does not change while it lives, and its pattern
 *     is intact when it is reallocated or freed (and after hak_trim, which
 *     must not take live pages);
 *   - calls that must fail (sizes near 2^64, calloc overflow, alignments
 *     that are not powers of two or absurd) return NULL with errno ENOMEM or
 *     EINVAL, and foreign pointers are neither owned nor freed (the misuse
 *     counter of hak_stats_get counts exactly those frees).
 * Two helper threads allocate, reallocate and free blocks on request, one
 * request at a time (the main thread waits for each: runs are
 * deterministic), so blocks cross threads both ways; a helper can exit and
 * be replaced while its blocks are still alive (abandoned segments).
 *
 * Memory is bounded: at most 256 live blocks and 64 MiB of usable bytes;
 * older blocks are freed to make room.  Every block left at the end of an
 * input is checked and freed, so inputs do not depend on each other except
 * through the allocator's own caches.
 *
 * A violation prints what failed and aborts, which libFuzzer records as a
 * crash (with the input that caused it).
 *
 * Unless HAKMEM_PURGE_DELAY_MS is set already, the target re-executes
 * itself with HAKMEM_PURGE_DELAY_MS=0 (free memory is decommitted at the
 * first chance, so the purge paths run all the time) and
 * HAKMEM_REPORT_ERRORS=0 (the foreign frees are deliberate): hakmem reads
 * its options in a constructor, before libFuzzer calls us. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <unistd.h>

#include "check.h"

#define MAX_LIVE 256
#define LIVE_CAP (64 * MiB)
#define BIG_MAX (8 * MiB) /* largest size drawn (Big starts at 2 MiB) */
#define ALIGN_MAX_LOG 22  /* alignments 1 .. 4 MiB */
#define FULL_LIMIT (256 * KiB) /* blocks up to this are patterned entirely */
#define NHELPERS 2
#define TINY_MAX 1024

#define FAIL(...)                                              \
  do {                                                         \
    fprintf(stderr, "fuzz_api: violated: " __VA_ARGS__);       \
    fputc('\n', stderr);                                       \
    abort();                                                   \
  } while (0)
#define ENSURE(cond, ...)                                                \
  do {                                                                   \
    if (__builtin_expect(!(cond), 0)) FAIL("(" #cond ") " __VA_ARGS__); \
  } while (0)

/* FUZZ_API_TRACE=1 in the environment: every call on stderr (to read what
 * a crashing input does). */
static int trace;
#define TRACE(...) (trace ? fprintf(stderr, "fuzz_api: " __VA_ARGS__) : 0)

/* FUZZ_API_AVOID=aligned0 steers around a known bug, so that a long run
 * can look for others: hak_aligned_alloc(align >= 2 MiB, 0) returns the end
 * of its own mapping (usable size 0, realloc refused; from 4 MiB on, the
 * header of the next segment: free refused, or the heap corrupted; see
 * test_fuzz_found.c); with it, such calls ask for 1 byte instead. */
static int avoid_aligned0;

/* ------------------------------------------------------------ the input */

typedef struct {
  const uint8_t *p;
  size_t n;
} reader_t;

static unsigned rd_u8(reader_t *r) {
  if (!r->n) return 0;
  r->n--;
  return *r->p++;
}
static unsigned rd_u16(reader_t *r) { return rd_u8(r) | rd_u8(r) << 8; }
static uint32_t rd_u32(reader_t *r) { return (uint32_t)rd_u16(r) | (uint32_t)rd_u16(r) << 16; }

static const size_t kEdgeSizes[] = {
    0,         1,          8,          15,         16,        17,        127,
    128,       255,        256,        257,        1023,      1024,      1025,
    4095,      4096,       4097,       8192,       16384,     32767,     32768,
    32769,     65535,      65536,      65537,      128 * KiB,  256 * KiB,  512 * KiB, 1 * MiB,   MiB + MiB / 2,
    2 * MiB - 4096, 2 * MiB - 1, 2 * MiB, 2 * MiB + 1, 4 * MiB - 4096, 4 * MiB, 4 * MiB + 4096};
#define NEDGE (sizeof kEdgeSizes / sizeof kEdgeSizes[0])

/* Mostly Tiny, then Mid, Large (log-uniform), sizes at the tier and page
 * boundaries, and Big up to BIG_MAX. */
static size_t draw_size(reader_t *r) {
  unsigned k = rd_u8(r);
  if (k < 128) return rd_u16(r) % (TINY_MAX + 1);
  if (k < 192) return TINY_MAX + 1 + rd_u16(r) % (64 * KiB - TINY_MAX);
  if (k < 228) {
    unsigned e = 15 + rd_u8(r) % 6; /* 32 KiB .. 2 MiB */
    return ((size_t)1 << e) + rd_u32(r) % ((size_t)1 << e);
  }
  if (k < 248) {
    size_t n = kEdgeSizes[rd_u8(r) % NEDGE];
    int d = (int)(rd_u8(r) % 17) - 8;
    return d < 0 && (size_t)-d > n ? 0 : n + (size_t)(ptrdiff_t)d;
  }
  return 2 * MiB + rd_u32(r) % (BIG_MAX - 2 * MiB + 1);
}

/* ------------------------------------------------------------ the model */

typedef struct {
  unsigned char *p;
  size_t req;    /* bytes asked for */
  size_t usable; /* hak_usable_size when it was made; must not change */
  uint64_t id;   /* pattern seed */
} blk_t;

static blk_t live[MAX_LIVE];
static int nlive;
static size_t live_bytes; /* sum of usable sizes */
static uint64_t next_id = 1;
static unsigned long expected_misuse; /* foreign frees so far */

/* The patterned parts of a block of len bytes: region k (from 0) at *off,
 * *n bytes long; returns 0 past the last.  All of a block up to FULL_LIMIT;
 * above it, the first and last 4 KiB and 64 bytes in every fourth page
 * between, at an offset that varies with the page (so a page mapped twice,
 * zeroed or moved is likely noticed without writing megabytes, and
 * faulting in every page, per operation). */
static int region(size_t len, size_t k, size_t *off, size_t *n) {
  if (len <= FULL_LIMIT) {
    *off = 0;
    *n = len;
    return k == 0;
  }
  if (k < 2) {
    *off = k ? len - 4096 : 0;
    *n = 4096;
    return 1;
  }
  size_t pg = 4 * (k - 1); /* pages 4, 8, ... below len/4096 */
  if (pg >= len / 4096) return 0;
  *off = pg * 4096 + (pg * 2654435761u) % (4096 - 64) / 8 * 8;
  *n = 64;
  return 1;
}

/* The pattern of check.h (byte i of block seed s is byte i % 8 of
 * pattern_word(s, i / 8)), written and read a word at a time where the
 * address allows.  Neither ASan nor libFuzzer's coverage instruments these
 * loops: the memory is hakmem's, and the comparisons are no guide. */
#ifdef __clang__
#define NOINSTR __attribute__((no_sanitize("address", "coverage"), noinline))
#else
#define NOINSTR __attribute__((no_sanitize_address, noinline))
#endif

NOINSTR static void pattern_put(unsigned char *p, size_t off, size_t len, uint64_t seed) {
  size_t i = off, end = off + len;
  for (; i < end && ((uintptr_t)(p + i) % 8 || i % 8); i++) p[i] = pattern_byte(seed, i);
  for (; i + 8 <= end; i += 8) *(uint64_t *)(p + i) = pattern_word(seed, i / 8);
  for (; i < end; i++) p[i] = pattern_byte(seed, i);
}

/* Offset of the first byte in [off, off + len) that differs, or SIZE_MAX. */
NOINSTR static size_t pattern_bad(const unsigned char *p, size_t off, size_t len,
                                  uint64_t seed) {
  size_t i = off, end = off + len;
  for (; i < end && ((uintptr_t)(p + i) % 8 || i % 8); i++)
    if (p[i] != pattern_byte(seed, i)) return i;
  for (; i + 8 <= end; i += 8)
    if (*(const uint64_t *)(p + i) != pattern_word(seed, i / 8)) break;
  for (; i < end; i++)
    if (p[i] != pattern_byte(seed, i)) return i;
  return SIZE_MAX;
}

/* Offset of the first byte of [0, n) that is not zero, or SIZE_MAX. */
NOINSTR static size_t nonzero_at(const unsigned char *p, size_t n) {
  size_t i = 0;
  for (; i < n && (uintptr_t)(p + i) % 8; i++)
    if (p[i]) return i;
  for (; i + 8 <= n; i += 8)
    if (*(const uint64_t *)(p + i)) break;
  for (; i < n; i++)
    if (p[i]) return i;
  return SIZE_MAX;
}

static void fill(const blk_t *b) {
  size_t off, n;
  for (size_t k = 0; region(b->usable, k, &off, &n); k++) pattern_put(b->p, off, n, b->id);
}

/* Checks the pattern of a block of `len` patterned bytes, now at p, over
 * its first `keep` bytes. */
static void check_pattern(const unsigned char *p, size_t len, size_t keep, uint64_t id,
                          const char *what) {
  size_t off, n;
  for (size_t k = 0; region(len, k, &off, &n); k++) {
    if (off >= keep) continue;
    if (off + n > keep) n = keep - off;
    size_t bad = pattern_bad(p, off, n, id);
    if (bad != SIZE_MAX)
      FAIL("%s: block %p (id %llu, %zu bytes patterned, %zu kept) corrupted at offset %zu",
           what, (void *)p, (unsigned long long)id, len, keep, bad);
  }
}

static void check_block(const blk_t *b, const char *what) {
  size_t us = hak_usable_size(b->p);
  ENSURE(us == b->usable, "%s: usable size of %p changed from %zu to %zu", what,
         (void *)b->p, b->usable, us);
  check_pattern(b->p, b->usable, b->usable, b->id, what);
}

/* A fresh block p of n bytes from `what` (aligned to `align`): the
 * contract, then no overlap with any live block. */
static size_t accept(void *vp, size_t n, size_t align, const char *what) {
  unsigned char *p = vp;
  ENSURE(p != NULL, "%s(%zu, align %zu) returned NULL, errno %d", what, n, align, errno);
  ENSURE(((uintptr_t)p & (align - 1)) == 0, "%s(%zu) = %p not aligned to %zu", what, n,
         (void *)p, align);
  size_t us = hak_usable_size(p);
  TRACE("%s(%zu, align %zu) = %p, usable %zu\n", what, n, align, (void *)p, us);
  ENSURE(us >= n, "%s(%zu) = %p has usable size %zu", what, n, (void *)p, us);
  ENSURE(hak_owns(p) && hak_owns(p + (us ? us - 1 : 0)), "%s(%zu) = %p (usable %zu) not owned",
         what, n, (void *)p, us);
  for (int i = 0; i < nlive; i++) {
    const blk_t *o = &live[i];
    if (p < o->p + o->usable && o->p < p + (us ? us : 1))
      FAIL("%s(%zu) = %p (usable %zu) overlaps live block %p (req %zu, usable %zu, id %llu)",
           what, n, (void *)p, us, (void *)o->p, o->req, o->usable, (unsigned long long)o->id);
  }
  return us;
}

static void add_block(void *p, size_t req, size_t us) {
  blk_t *b = &live[nlive++];
  *b = (blk_t){p, req, us, next_id++};
  live_bytes += us;
  fill(b);
}

static void drop_block(int i) {
  TRACE("drop %p (req %zu, usable %zu, id %llu)\n", (void *)live[i].p, live[i].req, live[i].usable,
        (unsigned long long)live[i].id);
  live_bytes -= live[i].usable;
  live[i] = live[--nlive];
}

/* Index of a live block chosen by the input, or -1 if there is none. */
static int pick(reader_t *r) { return nlive ? (int)(rd_u8(r) % (unsigned)nlive) : -1; }

static void check_zero(const unsigned char *p, size_t n, const char *what) {
  size_t bad = nonzero_at(p, n);
  if (bad != SIZE_MAX) FAIL("%s: %p (%zu bytes) not zeroed at offset %zu", what, (void *)p, n, bad);
}

/* ------------------------------------------------------------ helpers */

enum { H_FREE, H_MALLOC, H_REALLOC, H_ALIGNED, H_CALLOC, H_TRIM, H_EXIT };

typedef struct {
  pthread_t tid;
  sem_t go, done;
  int op;
  void *p;
  size_t a, n;
  void *ret;
  int err;
} helper_t;

static helper_t helpers[NHELPERS];

static void *helper_main(void *arg) {
  helper_t *h = arg;
  for (;;) {
    while (sem_wait(&h->go) != 0) {
    }
    errno = 0;
    switch (h->op) {
      case H_FREE: hak_free(h->p); break;
      case H_MALLOC: h->ret = hak_malloc(h->n); break;
      case H_REALLOC: h->ret = hak_realloc(h->p, h->n); break;
      case H_ALIGNED: h->ret = hak_aligned_alloc(h->a, h->n); break;
      case H_CALLOC: h->ret = hak_calloc(h->a, h->n); break;
      case H_TRIM: hak_trim(); break;
      case H_EXIT: sem_post(&h->done); return NULL;
    }
    h->err = errno;
    sem_post(&h->done);
  }
}

static void helper_start(helper_t *h) {
  if (pthread_create(&h->tid, NULL, helper_main, h) != 0) FAIL("pthread_create");
}

/* Runs one call on helper h and waits for it; errno is the helper's. */
static void *helper_call(helper_t *h, int op, void *p, size_t a, size_t n) {
  h->op = op;
  h->p = p;
  h->a = a;
  h->n = n;
  h->ret = NULL;
  sem_post(&h->go);
  while (sem_wait(&h->done) != 0) {
  }
  errno = h->err;
  if (op == H_EXIT) {
    pthread_join(h->tid, NULL);
    helper_start(h); /* a fresh thread in its place */
  }
  return h->ret;
}

/* ------------------------------------------------------------ operations */

/* Frees blocks (the first ones) until `need` more usable bytes and one more
 * block fit. */
static void make_room(size_t need) {
  while (nlive && (nlive >= MAX_LIVE || live_bytes + need > LIVE_CAP)) {
    check_block(&live[0], "free to make room");
    hak_free(live[0].p);
    drop_block(0);
  }
}

/* Rounds a request the way the model budgets it (Big blocks may come from
 * a cached mapping up to a third larger). */
static size_t budget(size_t n) { return n + n / 3 + 4096; }

/* Where a new block comes from: 0 main thread, else helper `src - 1`. */
static void *do_alloc(int src, int kind, size_t a, size_t n) {
  errno = 0;
  if (src) {
    static const int hop[] = {H_MALLOC, H_CALLOC, H_ALIGNED};
    return helper_call(&helpers[src - 1], hop[kind], NULL, a, n);
  }
  switch (kind) {
    case 0: return hak_malloc(n);
    case 1: return hak_calloc(a, n);
    default: return hak_aligned_alloc(a, n);
  }
}

static void op_malloc(reader_t *r, int src) {
  size_t n = draw_size(r);
  make_room(budget(n));
  void *p = do_alloc(src, 0, 0, n);
  add_block(p, n, accept(p, n, 16, src ? "helper malloc" : "malloc"));
}

static void op_calloc(reader_t *r, int src) {
  size_t count = 1 + rd_u8(r) % 16, each;
  size_t n = draw_size(r);
  switch (rd_u8(r) % 4) {
    case 0: count = 1, each = n; break;
    case 1: count = n, each = 1; break;
    default: each = n / count; break;
  }
  make_room(budget(count * each));
  void *p = do_alloc(src, 1, count, each);
  size_t us = accept(p, count * each, 16, src ? "helper calloc" : "calloc");
  check_zero(p, count * each, "calloc");
  add_block(p, count * each, us);
}

static void op_aligned(reader_t *r, int src) {
  unsigned k = rd_u8(r);
  size_t align = (size_t)1 << (k % (ALIGN_MAX_LOG + 1));
  size_t n = draw_size(r);
  if (k & 0x80) n &= ~(align - 1); /* a multiple of the alignment (C11's rule) */
  if (avoid_aligned0 && n == 0 && align >= 2 * MiB) n = 1;
  make_room(budget(n + align));
  void *p = do_alloc(src, 2, align, n);
  add_block(p, n, accept(p, n, align, src ? "helper aligned_alloc" : "aligned_alloc"));
}

static void op_free(reader_t *r, int src) {
  int i = pick(r);
  if (i < 0) return;
  check_block(&live[i], "free");
  if (src) helper_call(&helpers[src - 1], H_FREE, live[i].p, 0, 0);
  else hak_free(live[i].p);
  drop_block(i);
}

/* realloc to a size drawn, half, double, a little more or less, exactly
 * the usable size, or 0 (which frees). */
static void op_realloc(reader_t *r, int src) {
  int i = pick(r);
  if (i < 0) return;
  unsigned mode = rd_u8(r) % 10;
  size_t old = live[i].req, n;
  switch (mode) {
    case 0: case 1: case 2: case 3: n = draw_size(r); break;
    case 4: n = old / 2; break;
    case 5: n = old * 2 + rd_u8(r); break;
    case 6: n = old + rd_u16(r); break;
    case 7: n = old - (rd_u16(r) % (old + 1)); break;
    case 8: n = live[i].usable; break;
    default: n = 0; break;
  }
  if (n > BIG_MAX) n = BIG_MAX;
  check_block(&live[i], "before realloc");
  blk_t b = live[i];
  drop_block(i); /* it may move: no overlap check against itself */
  if (budget(n) > b.usable) make_room(budget(n) - b.usable);
  errno = 0;
  unsigned char *q = src ? helper_call(&helpers[src - 1], H_REALLOC, b.p, 0, n)
                         : hak_realloc(b.p, n);
  if (n == 0 && q == NULL) return; /* freed (glibc's realloc(p, 0)) */
  size_t us = accept(q, n, 16, src ? "helper realloc" : "realloc");
  check_pattern(q, b.usable, old < n ? old : n, b.id, "realloc kept");
  /* Same id: the pattern up to `keep` is already in place; the rest of the
   * new block is patterned afresh. */
  live[nlive++] = (blk_t){q, n, us, b.id};
  live_bytes += us;
  fill(&live[nlive - 1]);
}

/* realloc(NULL, n) is malloc(n). */
static void op_realloc_null(reader_t *r) {
  size_t n = draw_size(r);
  make_room(budget(n));
  errno = 0;
  void *p = hak_realloc(NULL, n);
  add_block(p, n, accept(p, n, 16, "realloc(NULL)"));
}

static void op_query(reader_t *r) {
  int i = pick(r);
  if (i < 0) return;
  const blk_t *b = &live[i];
  size_t off = b->usable ? rd_u32(r) % b->usable : 0;
  ENSURE(hak_owns(b->p + off), "interior %p (+%zu) of live %p not owned", (void *)(b->p + off),
         off, (void *)b->p);
  check_block(b, "query");
}

static void expect_fail(void *p, int e1, int e2, const char *what, size_t a, size_t n) {
  int e = errno;
  ENSURE(p == NULL, "%s(%zu, %zu) should fail, returned %p", what, a, n, p);
  ENSURE(e == e1 || e == e2, "%s(%zu, %zu): errno %d, expected %d or %d", what, a, n, e, e1, e2);
}

static char foreign_static[64];

/* Calls that must fail, and pointers that are not hakmem's. */
static void op_errors(reader_t *r) {
  unsigned k = rd_u8(r);
  size_t huge = ((size_t)1 << (46 + k % 18)) + (rd_u16(r) % 4096) - 2048 * (k % 2);
  if (huge < ((size_t)1 << 46) + 1) huge = ((size_t)1 << 46) + 1;
  switch (rd_u8(r) % 8) {
    case 0:
      errno = 0;
      expect_fail(hak_malloc(huge), ENOMEM, ENOMEM, "malloc", 0, huge);
      errno = 0;
      expect_fail(hak_malloc(SIZE_MAX - k), ENOMEM, ENOMEM, "malloc", 0, SIZE_MAX - k);
      break;
    case 1: { /* count * size overflows */
      size_t size = 2 + draw_size(r);
      size_t count = SIZE_MAX / size + 1 + rd_u8(r);
      errno = 0;
      expect_fail(hak_calloc(count, size), ENOMEM, ENOMEM, "calloc", count, size);
      errno = 0;
      expect_fail(hak_calloc(size, count), ENOMEM, ENOMEM, "calloc", size, count);
      errno = 0; /* no overflow, but absurd */
      expect_fail(hak_calloc(huge / 16, 16), ENOMEM, ENOMEM, "calloc", huge / 16, 16);
      break;
    }
    case 2: { /* not a power of two: EINVAL */
      static const size_t bad[] = {0, 3, 5, 6, 7, 12, 24, 48, 96, 4095, 4097, 65535,
                                   3 * MiB, (SIZE_MAX >> 1) + 2, SIZE_MAX};
      size_t a = bad[k % (sizeof bad / sizeof bad[0])];
      size_t n = draw_size(r);
      errno = 0;
      expect_fail(hak_aligned_alloc(a, n), EINVAL, EINVAL, "aligned_alloc", a, n);
      break;
    }
    case 3: { /* absurd but valid alignment, or absurd size */
      size_t a = (size_t)1 << (47 + k % 17);
      errno = 0;
      expect_fail(hak_aligned_alloc(a, 16), ENOMEM, EINVAL, "aligned_alloc", a, 16);
      a = (size_t)1 << (k % (ALIGN_MAX_LOG + 1));
      errno = 0;
      expect_fail(hak_aligned_alloc(a, huge), ENOMEM, ENOMEM, "aligned_alloc", a, huge);
      break;
    }
    case 4: { /* realloc to an absurd size fails and keeps the block */
      int i = pick(r);
      if (i < 0) break;
      errno = 0;
      expect_fail(hak_realloc(live[i].p, huge), ENOMEM, ENOMEM, "realloc", 0, huge);
      check_block(&live[i], "after a failed realloc");
      break;
    }
    case 5: { /* foreign pointers: not owned, no usable size, free ignored */
      char stack[32];
      void *heap = malloc(48); /* the sanitizer's malloc, not hakmem's */
      void *f[] = {stack, foreign_static, heap, (char *)heap + 16};
      void *q = f[k % 4];
      memset(stack, 1, sizeof stack);
      ENSURE(!hak_owns(q) && hak_usable_size(q) == 0, "foreign %p: owned %d, usable %zu", q,
             hak_owns(q), hak_usable_size(q));
      hak_free(q);
      expected_misuse++;
      free(heap);
      break;
    }
    case 6:
      hak_free(NULL);
      ENSURE(hak_usable_size(NULL) == 0 && !hak_owns(NULL), "NULL owned or usable");
      break;
    default: { /* realloc to the same size keeps everything */
      int i = pick(r);
      if (i < 0 || live[i].req == 0) break; /* realloc(p, 0) would free */
      blk_t b = live[i];
      drop_block(i);
      unsigned char *q = hak_realloc(b.p, b.req);
      size_t us = accept(q, b.req, 16, "realloc same size");
      check_pattern(q, b.usable, b.req, b.id, "realloc same size");
      live[nlive++] = (blk_t){q, b.req, us, b.id};
      live_bytes += us;
      fill(&live[nlive - 1]);
      break;
    }
  }
}

static void check_all(const char *what) {
  for (int i = 0; i < nlive; i++) check_block(&live[i], what);
}

static void check_misuse(void) {
  hak_stats_t st;
  if (hak_stats_get(&st) != 0 || hak_build_minimal()) return;
  ENSURE(st.invalid_frees + st.double_frees == expected_misuse,
         "misuse counted: %llu invalid + %llu double frees, expected %lu (a valid free was "
         "refused)", st.invalid_frees, st.double_frees, expected_misuse);
}

/* ------------------------------------------------------------ libFuzzer */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  trace = getenv("FUZZ_API_TRACE") != NULL;
  const char *avoid = getenv("FUZZ_API_AVOID");
  avoid_aligned0 = avoid && strstr(avoid, "aligned0");
  if (!getenv("HAKMEM_PURGE_DELAY_MS")) {
    setenv("HAKMEM_PURGE_DELAY_MS", "0", 1);
    if (!getenv("HAKMEM_REPORT_ERRORS")) setenv("HAKMEM_REPORT_ERRORS", "0", 1);
    execv("/proc/self/exe", *argv);
    perror("fuzz_api: execv /proc/self/exe"); /* go on with the defaults */
  }
  for (int i = 0; i < NHELPERS; i++) {
    sem_init(&helpers[i].go, 0, 0);
    sem_init(&helpers[i].done, 0, 0);
    helper_start(&helpers[i]);
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  reader_t r = {data, size};
  while (r.n) {
    unsigned op = rd_u8(&r);
    TRACE("op %u (case %u, thread %d), %d live, %zu bytes\n", op, op % 32, op >> 5 < 6 ? 0 : 1 + (int)((op >> 5) & 1), nlive, live_bytes);
    /* The thread a call runs on: mostly main, else one of the helpers. */
    int src = op >> 5 < 6 ? 0 : 1 + (int)((op >> 5) & 1);
    switch (op % 32) {
      case 0: case 1: case 2: case 3: case 4: case 5: case 6: op_malloc(&r, src); break;
      case 7: case 8: op_calloc(&r, src); break;
      case 9: case 10: case 11: op_aligned(&r, src); break;
      case 12: case 13: case 14: case 15: case 16: case 17: op_free(&r, src); break;
      case 18: case 19: case 20: case 21: op_realloc(&r, src); break;
      case 22: op_realloc_null(&r); break;
      case 23: case 24: op_query(&r); break;
      case 25: case 26: op_errors(&r); break;
      case 27: /* free on the other thread than the one that allocated... */
      case 28: { /* ...which is any thread: a helper frees a block */
        int i = pick(&r);
        if (i < 0) break;
        check_block(&live[i], "remote free");
        helper_call(&helpers[(op >> 5) & 1], H_FREE, live[i].p, 0, 0);
        drop_block(i);
        break;
      }
      case 29: /* a helper exits with its blocks alive; a new one replaces it */
        helper_call(&helpers[(op >> 5) & 1], H_EXIT, NULL, 0, 0);
        break;
      case 30: /* trim must not take live memory */
        if (src) helper_call(&helpers[src - 1], H_TRIM, NULL, 0, 0);
        else hak_trim();
        check_all("after hak_trim");
        break;
      default: check_all("check all"); break;
    }
  }
  while (nlive) {
    check_block(&live[nlive - 1], "free at the end");
    hak_free(live[nlive - 1].p);
    drop_block(nlive - 1);
  }
  check_misuse();
  return 0;
}
