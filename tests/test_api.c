/* test_api — semantics of the malloc family as hakmem exports it (glibc
 * semantics), plus the hak_* API when the binary is linked to hakmem.
 *
 * Built three ways (see CMakeLists.txt): linked to libhakmem.so, linked to
 * libhakmem.a, and plain with LD_PRELOAD (-DHAK_TEST_PRELOAD). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"

/* C23 functions; glibc 2.36 does not declare (or provide) them. */
typedef void (*free_sized_fn)(void *, size_t);
typedef void (*free_aligned_sized_fn)(void *, size_t, size_t);
#if HAK_TEST_HAVE_API
extern void free_sized(void *ptr, size_t size);
extern void free_aligned_sized(void *ptr, size_t alignment, size_t size);
#endif

static const size_t kSizes[] = {
    0,     1,     7,         8,       15,      16,     17,
    100,   1000,  1024,      1025,    4095,    4096,   32768,
    32769, 100000, 1 * MiB,  2 * MiB, 3 * MiB,
};
#define NSIZES (sizeof kSizes / sizeof kSizes[0])

static int is_aligned(const void *p, size_t align) {
  return ((uintptr_t)p & (align - 1)) == 0;
}

/* Common checks on a fresh block of n bytes that must be `align`-aligned:
 * usable size >= n, owned by hakmem (interior pointers too), and the whole
 * usable size writable — filled with the block's pattern so that overlapping
 * live blocks are caught later by check_block(). Returns the usable size. */
static size_t accept_block(void *p, size_t n, size_t align, const char *what) {
  CHECKF(p != NULL, "%s(align %zu, size %zu) returned NULL", what, align, n);
  if (!p) return 0;
  CHECKF(is_aligned(p, align), "%s(align %zu, size %zu) = %p misaligned", what,
         align, n, p);
  size_t us = malloc_usable_size(p);
  CHECKF(us >= n, "%s(align %zu, size %zu): usable size %zu", what, align, n, us);
#if HAK_TEST_EXPECT_HAKMEM
  CHECKF(test_owns(p) == 1, "%s result %p not owned by hakmem", what, p);
  if (us) CHECK(test_owns((char *)p + us - 1) == 1);
#endif
  pattern_fill(p, us);
  return us;
}

static void check_block(void *p, size_t us) {
  if (p) CHECK_PATTERN(p, us);
}

typedef struct {
  void *p;
  size_t n, usable;
  const char *what;
} live_t;

static int live_cmp(const void *a, const void *b) {
  uintptr_t x = (uintptr_t)((const live_t *)a)->p, y = (uintptr_t)((const live_t *)b)->p;
  return (x > y) - (x < y);
}

/* Live blocks must not overlap (usable sizes included); names the culprits. */
static void check_no_overlap(live_t *v, size_t k, size_t align) {
  qsort(v, k, sizeof *v, live_cmp);
  for (size_t i = 1; i < k; i++) {
    if (!v[i - 1].p) continue;
    size_t span = v[i - 1].usable ? v[i - 1].usable : 1; /* size 0 too */
    CHECKF((char *)v[i - 1].p + span <= (char *)v[i].p,
           "align %zu: %s(%zu) = %p (usable %zu) overlaps %s(%zu) = %p", align,
           v[i - 1].what, v[i - 1].n, v[i - 1].p, v[i - 1].usable, v[i].what, v[i].n,
           v[i].p);
  }
}

/* posix_memalign, aligned_alloc and memalign, for every size in kSizes, at
 * one alignment; all blocks stay alive together until checked. */
static void test_alignment_one(size_t align, const size_t *sizes, size_t nsizes) {
  live_t v[3 * NSIZES];
  size_t k = 0;
  for (size_t i = 0; i < nsizes; i++) {
    size_t n = sizes[i];
    void *p = (void *)1; /* must be overwritten on success */
    int rc = posix_memalign(&p, align, n);
    CHECKF(rc == 0, "posix_memalign(align %zu, size %zu) = %d", align, n, rc);
    if (rc) p = NULL;
    v[k++] = (live_t){p, n, accept_block(p, n, align, "posix_memalign"), "posix_memalign"};
    p = aligned_alloc(align, n);
    v[k++] = (live_t){p, n, accept_block(p, n, align, "aligned_alloc"), "aligned_alloc"};
    p = memalign(align, n);
    v[k++] = (live_t){p, n, accept_block(p, n, align, "memalign"), "memalign"};
  }
  check_no_overlap(v, k, align);
  for (size_t i = 0; i < k; i++) {
    check_block(v[i].p, v[i].usable);
    free(v[i].p);
  }
}

static void test_alignment(void) {
  for (size_t align = 8; align <= 1 * MiB; align <<= 1)
    test_alignment_one(align, kSizes, NSIZES);
  static const size_t few[] = {1, 4096, 100000, 3 * MiB};
  for (size_t align = 2 * MiB; align <= 8 * MiB; align <<= 1)
    test_alignment_one(align, few, sizeof few / sizeof few[0]);

  /* Alignments below sizeof(void *) are valid for these two. */
  for (size_t align = 1; align < sizeof(void *); align <<= 1) {
    void *p = aligned_alloc(align, 24);
    accept_block(p, 24, align, "aligned_alloc");
    free(p);
    p = memalign(align, 24);
    accept_block(p, 24, align, "memalign");
    free(p);
  }
}

static void test_bad_alignment(void) {
  /* posix_memalign: EINVAL, and *memptr untouched. */
  static const size_t bad_posix[] = {0, 1, 2, 4, 3, 12, 24, 48, 1000, 4097,
                                     (size_t)1 << 63 | 8};
  for (size_t i = 0; i < sizeof bad_posix / sizeof bad_posix[0]; i++) {
    void *sentinel = &sentinel, *p = sentinel;
    int rc = posix_memalign(&p, opaque_size(bad_posix[i]), 64);
    CHECKF(rc == EINVAL, "posix_memalign(align %zu) = %d, want EINVAL",
           bad_posix[i], rc);
    CHECKF(p == sentinel, "posix_memalign(align %zu) wrote *memptr", bad_posix[i]);
    if (rc == 0 && p != sentinel) free(p);
  }
  /* aligned_alloc (C17, glibc >= 2.38): EINVAL for an alignment that is not
   * a power of two; glibc 2.36 still rounds them up like memalign. */
  static const size_t bad_pow2[] = {3, 12, 24, 48, 1000, 4097, 3 * MiB};
#if HAK_TEST_EXPECT_HAKMEM
  for (size_t i = 0; i < sizeof bad_pow2 / sizeof bad_pow2[0]; i++) {
    size_t a = opaque_size(bad_pow2[i]);
    errno = 0;
    void *p = aligned_alloc(a, 64);
    CHECKF(p == NULL && errno == EINVAL, "aligned_alloc(%zu): %p errno %d", a, p,
           errno);
    free(p);
  }
#endif
  /* memalign (glibc): an alignment that is not a power of two is rounded
   * up to the next one; 0 and anything up to 16 are malloc's. */
  for (size_t i = 0; i < sizeof bad_pow2 / sizeof bad_pow2[0]; i++) {
    size_t a = opaque_size(bad_pow2[i]), want = 1;
    while (want < a) want <<= 1;
    void *p = memalign(a, 100);
    accept_block(p, 100, want, "memalign (rounded alignment)");
    free(p);
  }
  for (size_t a = 0; a <= 16; a++) {
    void *p = memalign(opaque_size(a), 40);
    accept_block(p, 40, 16, "memalign (small alignment)");
    free(p);
  }
  /* aligned_alloc with a size that is not a multiple of the alignment
   * (allowed since C17): an aligned block of at least that size. */
  for (size_t a = 32; a <= 64 * KiB; a *= 8) {
    void *p = aligned_alloc(opaque_size(a), opaque_size(a + 1));
    accept_block(p, a + 1, a, "aligned_alloc (size not a multiple)");
    free(p);
  }
}

/* Sizes no machine here can back: NULL and ENOMEM, as with glibc, when
 * the kernel judges overcommit heuristically (mode 0) and memory plus swap
 * is far below the request. */
static void test_unbackable(void) {
  FILE *f = fopen("/proc/sys/vm/overcommit_memory", "r");
  int mode = -1;
  if (f) {
    if (fscanf(f, "%d", &mode) != 1) mode = -1;
    fclose(f);
  }
  long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
  if (mode != 0 || pages <= 0 || (double)pages * (double)psize > (double)(1ull << 38)) {
    printf("unbackable sizes: skipped (overcommit mode %d)\n", mode);
    return;
  }
  static const size_t sizes[] = {(size_t)1 << 40, (size_t)1 << 41, ((size_t)1 << 45) + 12345};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    errno = 0;
    void *p = malloc(opaque_size(sizes[i]));
    int e = errno;
    CHECKF(p == NULL && e == ENOMEM, "malloc(%zu): %p errno %d", sizes[i], p, e);
    free(p);
    errno = 0;
    p = calloc(opaque_size(sizes[i] / 8), 8);
    e = errno;
    CHECKF(p == NULL && e == ENOMEM, "calloc(%zu, 8): %p errno %d", sizes[i] / 8, p, e);
    free(p);
#if HAK_TEST_HAVE_API
    /* Recorded in the call-site table when it succeeds (its size histogram
     * has a last bin for everything this big). */
    errno = 0;
    p = hak_alloc_cs(opaque_size(sizes[i]));
    e = errno;
    CHECKF(p == NULL && e == ENOMEM, "hak_alloc_cs(%zu): %p errno %d", sizes[i], p, e);
    hak_free_cs(p);
#endif
  }
}

static void test_valloc(void) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  static const size_t sizes[] = {1, 100, 4095, 4096, 4097, 100000, 3 * MiB};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    void *p = valloc(n);
    size_t us = accept_block(p, n, page, "valloc");
    void *q = pvalloc(n);
    size_t uq = accept_block(q, n, page, "pvalloc");
    /* pvalloc rounds the size up to whole pages. */
    CHECKF(uq >= (n + page - 1) / page * page, "pvalloc(%zu) usable %zu", n, uq);
    check_block(p, us);
    check_block(q, uq);
    free(p);
    free(q);
  }
}

/* realloc keeps the contents while sizes walk 1 B -> 16 MiB and back,
 * stepping on both sides of every power of two (every tier boundary of
 * a size-class allocator lies on or next to one). */
static void test_realloc_walk(void) {
  size_t steps[128];
  size_t nsteps = 0;
  for (int k = 0; k <= 24; k++) {
    size_t v = (size_t)1 << k;
    size_t cand[4] = {v - 1, v, v + 1, v + v / 2};
    for (int j = 0; j < 4; j++)
      if (cand[j] >= 1 && cand[j] <= 16 * MiB &&
          (nsteps == 0 || cand[j] > steps[nsteps - 1]))
        steps[nsteps++] = cand[j];
  }
  const uint64_t seed = 0x5EED; /* address-independent: survives moves */
  void *p = NULL;
  size_t cur = 0;
  for (size_t s = 0; s < 2 * nsteps; s++) {
    size_t n = s < nsteps ? steps[s] : steps[2 * nsteps - 1 - s];
    void *q = realloc(p, n);
    CHECKF(q != NULL, "realloc(%zu -> %zu) failed", cur, n);
    if (!q) break;
    CHECKF(malloc_usable_size(q) >= n, "realloc to %zu: usable %zu", n,
           malloc_usable_size(q));
    size_t keep = cur < n ? cur : n;
    size_t bad = pattern_find_bad(q, 0, keep, seed);
    CHECKF(bad == SIZE_MAX, "realloc %zu -> %zu lost contents at offset %zu", cur,
           n, bad);
    if (n > cur) pattern_fill_range(q, cur, n - cur, seed);
    p = q;
    cur = n;
  }
  free(p);
}

static void test_realloc_edges(void) {
  static const size_t sizes[] = {1, 100, 5000, 100000, 4 * MiB};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    /* realloc(NULL, n) is malloc(n). */
    void *p = realloc(NULL, n);
    CHECKF(p != NULL, "realloc(NULL, %zu)", n);
    if (!p) continue;
    CHECK(malloc_usable_size(p) >= n);
    pattern_fill(p, n);
    CHECK_PATTERN(p, n);
    /* Same size: contents kept. */
    const uint64_t seed = 77;
    pattern_fill_range(p, 0, n, seed);
    void *q = realloc(p, n);
    CHECK(q != NULL);
    if (q) {
      CHECK(pattern_find_bad(q, 0, n, seed) == SIZE_MAX);
      p = q;
    }
    /* realloc(p, 0) frees p and returns NULL (glibc). */
    errno = 0;
    q = realloc(p, opaque_size(0));
    CHECKF(q == NULL, "realloc(p, 0) returned %p", q);
    free(q);
  }

  /* Blocks from the aligned allocators realloc like any other. */
  static const size_t aligns[] = {64, 4096, 65536, 2 * MiB};
  for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
    const uint64_t seed = 99 + i;
    void *p = aligned_alloc(aligns[i], 1000);
    CHECK(p != NULL);
    if (!p) continue;
    pattern_fill_range(p, 0, 1000, seed);
    static const size_t to[] = {5000, 200, 300000, 5 * MiB, 1000};
    size_t cur = 1000;
    for (size_t j = 0; j < sizeof to / sizeof to[0]; j++) {
      void *q = realloc(p, to[j]);
      CHECKF(q != NULL, "realloc aligned(%zu) %zu -> %zu", aligns[i], cur, to[j]);
      if (!q) break;
      size_t keep = cur < to[j] ? cur : to[j];
      CHECKF(pattern_find_bad(q, 0, keep, seed) == SIZE_MAX,
             "realloc aligned(%zu) %zu -> %zu lost contents", aligns[i], cur, to[j]);
      if (to[j] > cur) pattern_fill_range(q, cur, to[j] - cur, seed);
      p = q;
      cur = to[j];
    }
    free(p);
  }
}

static int all_zero(const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i]) return 0;
  return 1;
}

/* calloc zeroes even memory that comes back dirty from free lists/caches. */
static void test_calloc_recycled(void) {
  static const struct { size_t size, count; } cls[] = {
      {24, 512}, {200, 256}, {1000, 128},   {4000, 64}, {20000, 32},
      {100 * KiB, 16},       {4 * MiB, 3},
  };
  for (size_t c = 0; c < sizeof cls / sizeof cls[0]; c++) {
    void *blk[512];
    size_t n = cls[c].size, cnt = cls[c].count;
    for (int round = 0; round < 2; round++) {
      for (size_t i = 0; i < cnt; i++) {
        blk[i] = malloc(n);
        CHECK(blk[i] != NULL);
        if (blk[i]) memset(blk[i], 0xAB, malloc_usable_size(blk[i]));
      }
      for (size_t i = 0; i < cnt; i++) free(blk[i]);
      for (size_t i = 0; i < cnt; i++) {
        blk[i] = calloc(1, n);
        CHECKF(blk[i] != NULL, "calloc(1, %zu)", n);
        if (blk[i])
          CHECKF(all_zero(blk[i], n), "calloc(1, %zu) #%zu not zeroed", n, i);
        /* Dirty it again so round 2 recycles calloc'ed memory too. */
        if (blk[i]) memset(blk[i], 0xAB, malloc_usable_size(blk[i]));
      }
      for (size_t i = 0; i < cnt; i++) free(blk[i]);
    }
  }
  /* count * size products in every tier. */
  static const size_t prod[][2] = {{0, 10}, {10, 0}, {3, 5}, {1000, 100}, {1024, 4096}};
  for (size_t i = 0; i < sizeof prod / sizeof prod[0]; i++) {
    size_t n = prod[i][0] * prod[i][1];
    unsigned char *p = calloc(prod[i][0], prod[i][1]);
    CHECKF(p != NULL, "calloc(%zu, %zu)", prod[i][0], prod[i][1]);
    if (p) CHECK(all_zero(p, n));
    free(p);
  }
}

#define CHECK_ENOMEM(call)                                                  \
  do {                                                                      \
    errno = 0;                                                              \
    void *r_ = (call);                                                      \
    int e_ = errno;                                                         \
    CHECKF(r_ == NULL && e_ == ENOMEM, "%s: got %p, errno %d", #call, r_, e_); \
    if (r_) free(r_);                                                       \
  } while (0)

/* Requests that cannot be met fail cleanly, leaving old blocks intact. */
static void test_exhaustion(void) {
  CHECK_ENOMEM(malloc(opaque_size(SIZE_MAX)));
  CHECK_ENOMEM(malloc(opaque_size(SIZE_MAX - 15)));
  CHECK_ENOMEM(malloc(opaque_size(SIZE_MAX - 4 * MiB)));
  CHECK_ENOMEM(malloc(opaque_size(PTRDIFF_MAX)));
  CHECK_ENOMEM(malloc(opaque_size((size_t)1 << 60)));
  CHECK_ENOMEM(calloc(opaque_size(SIZE_MAX / 2), 3));
  CHECK_ENOMEM(calloc(opaque_size((size_t)1 << 32), opaque_size((size_t)1 << 32)));
  CHECK_ENOMEM(calloc(opaque_size(1), opaque_size(SIZE_MAX)));
  CHECK_ENOMEM(reallocarray(NULL, opaque_size(SIZE_MAX / 2), 3));
  CHECK_ENOMEM(aligned_alloc(64, opaque_size(SIZE_MAX)));
  CHECK_ENOMEM(memalign(4096, opaque_size(SIZE_MAX - 100)));
  CHECK_ENOMEM(valloc(opaque_size(SIZE_MAX)));
  CHECK_ENOMEM(realloc(NULL, opaque_size(SIZE_MAX)));
  void *q = (void *)1;
  CHECK(posix_memalign(&q, 64, opaque_size(SIZE_MAX)) == ENOMEM);

  /* realloc / reallocarray failure leaves the block valid and unchanged. */
  static const size_t sizes[] = {16, 3000, 100 * KiB, 4 * MiB};
  static const size_t huge[] = {SIZE_MAX, SIZE_MAX - 64, PTRDIFF_MAX, (size_t)1 << 60};
  const uint64_t seed = 4242;
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    void *p = malloc(n);
    CHECK(p != NULL);
    if (!p) continue;
    pattern_fill_range(p, 0, n, seed);
    for (size_t h = 0; h < sizeof huge / sizeof huge[0]; h++) {
      errno = 0;
      void *r = realloc(p, opaque_size(huge[h]));
      int e = errno;
      CHECKF(r == NULL && e == ENOMEM, "realloc(%zu-byte block, %zu): %p errno %d",
             n, huge[h], r, e);
      if (r) p = r; /* broken, but keep the block we were given */
      CHECKF(pattern_find_bad(p, 0, n, seed) == SIZE_MAX,
             "failed realloc(%zu-byte block, %zu) changed it", n, huge[h]);
    }
    errno = 0;
    void *r = reallocarray(p, opaque_size(SIZE_MAX / 2), 3);
    CHECKF(r == NULL && errno == ENOMEM, "reallocarray overflow: %p", r);
    if (r) p = r;
    CHECK(pattern_find_bad(p, 0, n, seed) == SIZE_MAX);
    /* And the untouched block can still grow normally. */
    r = reallocarray(p, 2, n);
    CHECK(r != NULL);
    if (r) {
      CHECK(pattern_find_bad(r, 0, n, seed) == SIZE_MAX);
      p = r;
    }
    free(p);
  }
}

/* Every small size gets the smallest size class that holds it: the usable
 * size never falls short, wastes less than the class spacing (16 B up to
 * 256 B, then 8 classes per power of two: under n / 8), and only changes
 * right after a size that is a class's own.  (The class lookups of the
 * fast and slow paths agree with the class sizes, wherever a size lands.) */
static void test_usable_classes(void) {
  size_t prev = 0;
  for (size_t n = 1; n <= 64 * 1024; n++) {
    void *p = malloc(n);
    CHECKF(p != NULL, "malloc(%zu)", n);
    size_t u = malloc_usable_size(p);
    CHECKF(u >= n, "malloc(%zu): usable size %zu", n, u);
    CHECKF(u - n < (n <= 256 ? 16 : n / 8), "malloc(%zu): usable size %zu, more than a class step", n,
           u);
    CHECKF(n == 1 || u == prev || prev == n - 1,
           "malloc(%zu): usable size %zu, but malloc(%zu) had %zu: not the smallest class", n, u,
           n - 1, prev);
    prev = u;
    free(p);
  }
}

static void test_misc(void) {
  free(NULL);
  CHECK(malloc_usable_size(NULL) == 0);

  /* malloc(0): a unique, non-NULL, freeable pointer. */
  void *z[16];
  for (int i = 0; i < 16; i++) {
    z[i] = malloc(opaque_size(0));
    CHECK(z[i] != NULL);
    for (int j = 0; j < i; j++) CHECKF(z[i] != z[j], "malloc(0) returned %p twice", z[i]);
  }
  for (int i = 0; i < 16; i++) free(z[i]);

  /* Plain malloc: 16-byte alignment (max_align_t) from size 16 up. */
  static const size_t sizes[] = {1, 8, 16, 24, 48, 100, 1000, 40000, 300000, 5 * MiB};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    void *p = malloc(sizes[i]);
    accept_block(p, sizes[i], sizes[i] >= 16 ? 16 : 8, "malloc");
    CHECK_PATTERN(p, malloc_usable_size(p));
    free(p);
  }
}

static void test_free_sized(void) {
#if HAK_TEST_EXPECT_HAKMEM
#if HAK_TEST_HAVE_API
  free_sized_fn fs = free_sized;
  free_aligned_sized_fn fas = free_aligned_sized;
#else
  free_sized_fn fs = (free_sized_fn)dlsym(RTLD_DEFAULT, "free_sized");
  free_aligned_sized_fn fas =
      (free_aligned_sized_fn)dlsym(RTLD_DEFAULT, "free_aligned_sized");
  CHECKF(fs && fas, "free_sized/free_aligned_sized not exported");
  if (!fs || !fas) return;
#endif
  static const size_t sizes[] = {0, 1, 16, 100, 1000, 5000, 40000, 100 * KiB, 4 * MiB};
  for (int round = 0; round < 3; round++) {
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      size_t n = sizes[i];
      void *p = malloc(n);
      CHECK(p != NULL);
      pattern_fill(p, n);
      fs(p, n);
      p = aligned_alloc(256, n);
      accept_block(p, n, 256, "aligned_alloc");
      fas(p, 256, n);
      p = aligned_alloc(64 * KiB, n);
      accept_block(p, n, 64 * KiB, "aligned_alloc");
      fas(p, 64 * KiB, n);
    }
  }
  fs(NULL, 0);
  fas(NULL, 64, 0);
#endif
}

static void test_glibc_extras(void) {
  /* mallinfo2: after allocating (and touching) 10 MiB the figures show it.
   * Only glibc's meaning of the fields that any allocator can honour is
   * checked: what is in use may be counted in uordblks or hblkhd, and it
   * need not drop right after free (an allocator may count cached memory). */
  enum { NBLK = 160 };
  void *blk[NBLK];
  for (int i = 0; i < NBLK; i++) {
    blk[i] = malloc(64 * KiB); /* 160 x 64 KiB = 10 MiB */
    CHECK(blk[i] != NULL);
    if (blk[i]) memset(blk[i], 1, 64 * KiB);
  }
  struct mallinfo2 mi = mallinfo2();
  CHECKF(mi.arena != 0, "mallinfo2().arena == 0");
  CHECKF(mi.uordblks != 0, "mallinfo2().uordblks == 0");
  CHECKF(mi.uordblks + mi.hblkhd >= 10 * MiB,
         "mallinfo2 in-use bytes %zu (+ mmapped %zu) < 10 MiB", mi.uordblks, mi.hblkhd);
  CHECKF(mi.arena + mi.hblkhd >= mi.uordblks, "arena %zu + hblkhd %zu < uordblks %zu",
         mi.arena, mi.hblkhd, mi.uordblks);
  for (int i = 0; i < NBLK; i++) free(blk[i]);

  int r = malloc_trim(0);
  CHECKF(r == 0 || r == 1, "malloc_trim returned %d", r);

  /* malloc_stats prints to stderr: capture it in a temporary file. */
  FILE *tmp = tmpfile();
  CHECK(tmp != NULL);
  if (tmp) {
    fflush(stderr);
    int saved = dup(2);
    dup2(fileno(tmp), 2);
    malloc_stats();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    CHECKF(lseek(fileno(tmp), 0, SEEK_END) > 0, "malloc_stats printed nothing");
    fclose(tmp);
  }
}

/* The hak_* API itself (only where it can be called directly). */
static void test_hak_api(void) {
#if HAK_TEST_HAVE_API
  char on_stack[16];
  CHECK(hak_owns(opaque_ptr(on_stack)) == 0);
  CHECK(hak_owns(NULL) == 0);
  CHECK(hak_usable_size(NULL) == 0);
  hak_free(NULL);

  void *mm = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(mm != MAP_FAILED);
  if (mm != MAP_FAILED) {
    CHECK(hak_owns(mm) == 0);
    munmap(mm, 4096);
  }

  static const size_t sizes[] = {1, 100, 5000, 100 * KiB, 4 * MiB};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    void *p = hak_malloc(n);
    CHECK(p != NULL);
    if (!p) continue;
    CHECK(hak_owns(p) == 1 && hak_owns((char *)p + n - 1) == 1);
    CHECK(hak_usable_size(p) >= n);
    CHECK(hak_usable_size(p) == malloc_usable_size(p)); /* one allocator */
    const uint64_t seed = 1234 + i;
    pattern_fill_range(p, 0, n, seed);
    void *q = hak_realloc(p, 3 * n + 5);
    CHECK(q != NULL);
    if (q) {
      CHECK(pattern_find_bad(q, 0, n, seed) == SIZE_MAX);
      p = q;
    }
    hak_free(p);

    unsigned char *c = hak_calloc(n, 3);
    CHECK(c != NULL);
    if (c) CHECK(all_zero(c, 3 * n));
    free(c); /* the override and hak_free are the same allocator */

    p = malloc(n);
    CHECK(p != NULL);
    hak_free(p);

    p = hak_aligned_alloc(64 * KiB, n);
    accept_block(p, n, 64 * KiB, "hak_aligned_alloc");
    hak_free(p);
  }
  errno = 0;
  void *p = hak_aligned_alloc(opaque_size(48), 64);
  CHECK(p == NULL && errno == EINVAL);
  hak_free(p);
  errno = 0;
  p = hak_malloc(opaque_size(SIZE_MAX));
  CHECK(p == NULL && errno == ENOMEM);
  errno = 0;
  p = hak_calloc(opaque_size(SIZE_MAX / 2), 3);
  CHECK(p == NULL && errno == ENOMEM);

  int t = hak_trim();
  CHECK(t == 0 || t == 1);

  void *big = hak_malloc(8 * MiB);
  CHECK(big != NULL);
  if (big) memset(big, 1, 8 * MiB);
  hak_usage_t u;
  memset(&u, 0xFF, sizeof u);
  hak_usage(&u);
  CHECKF(u.mapped >= 8 * MiB, "hak_usage: mapped %zu", u.mapped);
  CHECKF(u.committed <= u.mapped, "committed %zu > mapped %zu", u.committed, u.mapped);
  CHECKF(u.committed >= 8 * MiB, "hak_usage: committed %zu", u.committed);
  CHECK(u.peak_committed >= u.committed);
  CHECK(u.os_mmap > 0);
  CHECK(u.big_cached != SIZE_MAX && u.os_munmap != SIZE_MAX && u.os_madvise != SIZE_MAX);
  hak_free(big);
#endif
}

/* usage: test_api [section...]  (default: all sections) */
int main(int argc, char **argv) {
  section_select(argc, argv);
  check_hakmem_active();
  RUN_SECTION(test_alignment);
  RUN_SECTION(test_bad_alignment);
  RUN_SECTION(test_valloc);
  RUN_SECTION(test_realloc_walk);
  RUN_SECTION(test_realloc_edges);
  RUN_SECTION(test_calloc_recycled);
  RUN_SECTION(test_exhaustion);
  RUN_SECTION(test_unbackable);
  RUN_SECTION(test_usable_classes);
  RUN_SECTION(test_misc);
  RUN_SECTION(test_free_sized);
  RUN_SECTION(test_glibc_extras);
  RUN_SECTION(test_hak_api);
  return check_report("api");
}
