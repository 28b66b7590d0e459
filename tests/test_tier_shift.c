/* tier_shift: a program that moves from Large blocks to small ones and back
 * does not hold both.  With a purge delay far longer than the test, freed
 * memory stays resident until something else wants memory.  The Large
 * tier's empty segments become small objects' segments, their resident
 * pages reused as they are, and the empty small-object segments become
 * Large segments again (src/segment.c, seg_obtain; src/large.c,
 * large_seg_new): neither direction maps new memory or faults pages in.
 * Small objects that take fresh slabs elsewhere release the Large tier's
 * idle pages first (hak_large_release), but not those of the empty
 * segments they will take.  Tiny and Mid segments (64 KiB and 512 KiB
 * slabs) change kind the same way.  Last, small objects of many sizes,
 * all freed: the segments their classes' empty current slabs held go to
 * the Large tier too (mixed_then_large).  Run with HAKMEM_PURGE_DELAY_MS=60000
 * (and any HAKMEM_LARGE_CACHE: cached spans go back to their segments once
 * the Large tier is quiet).  Linked to libhakmem: malloc is hakmem's and
 * hak_usage is callable. */
#include <sys/resource.h>

#include "check.h"

#define LARGE_N 128
#define LARGE_SIZE ((size_t)256 << 10) /* 32 MiB in all */
#define SMALL_N (256 * 1024)
#define SMALL_SIZE 128 /* 32 MiB in all */
#define PHASE_PAGES ((size_t)(32 << 20) >> 12)
#define MID_N 4096
#define MID_SIZE ((size_t)8 << 10) /* 32 MiB in all */
#define SEG_SIZE ((size_t)4 << 20)

static void *large[LARGE_N];
static void *small_blocks[SMALL_N];
static void *mid_blocks[MID_N];

static long faults(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

/* n blocks of `size`, each filled with `fill`. */
static void alloc_fill(void **v, int n, size_t size, unsigned char fill) {
  for (int i = 0; i < n; i++) {
    v[i] = malloc(size);
    CHECK(v[i] != NULL);
    if (v[i]) memset(v[i], fill, size);
  }
}

/* Checks the fill of each block's last byte and frees them. */
static void check_free(void **v, int n, size_t size, unsigned char fill) {
  for (int i = 0; i < n; i++) {
    CHECK(v[i] && ((unsigned char *)v[i])[size - 1] == fill);
    free(v[i]);
  }
}

/* Segments mapped between two looks (no phase unmaps any): counted in
 * bytes, not mmap calls, which an unaligned answer from the kernel makes
 * two or more for one segment. */
static size_t segments(const hak_usage_t *a, const hak_usage_t *b) {
  return b->mapped > a->mapped ? (b->mapped - a->mapped) / SEG_SIZE : 0;
}

/* One line per phase on stderr (ctest shows it when the test fails): what
 * each phase mapped, unmapped and left committed. */
static void trace(const char *phase, const hak_usage_t *a, const hak_usage_t *b, long faults) {
  fprintf(stderr, "tier_shift: %-14s %zu segments (mmap %zu) munmap %zu madvise %zu, committed %zu -> %zu KiB, %ld faults\n",
          phase, segments(a, b), b->os_mmap - a->os_mmap, b->os_munmap - a->os_munmap, b->os_madvise - a->os_madvise,
          a->committed >> 10, b->committed >> 10, faults);
}

static void large_phase(unsigned char fill) {
  alloc_fill(large, LARGE_N, LARGE_SIZE, fill);
  check_free(large, LARGE_N, LARGE_SIZE, fill);
}

/* Small objects of 15 classes (32 MiB), 15 in 16 freed, the rest replaced
 * at random (each class's current slab then lies in any segment), then all
 * freed: the segments that only empty current slabs hold go to the cache
 * when the Large tier wants one (src/heap.c, hak_heap_release_idle): the
 * Large blocks map at most two segments (8 before), the first one because
 * a heap gives its idle segments only once it took no slab since the Large
 * tier's previous ask, the second the heap's spare's worth (a heap keeps
 * one segment of each kind). */
static size_t mixed_size(uint64_t k) { return 32 + 16 * (size_t)(k % 15); }

static void mixed_then_large(void) {
  uint64_t x = 12345;
  for (int i = 0; i < SMALL_N; i++) {
    small_blocks[i] = malloc(mixed_size((uint64_t)i));
    CHECK(small_blocks[i] != NULL);
    if (small_blocks[i]) memset(small_blocks[i], 6, 32);
  }
  for (int i = 0; i < SMALL_N; i++)
    if (i % 16) free(small_blocks[i]);
  for (int r = 0; r < SMALL_N; r++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    int j = (int)((x >> 33) % (SMALL_N / 16)) * 16;
    free(small_blocks[j]);
    small_blocks[j] = malloc(mixed_size(x >> 20));
    CHECK(small_blocks[j] != NULL);
  }
  for (int i = 0; i < SMALL_N; i += 16) free(small_blocks[i]);
  hak_usage_t a, b;
  hak_usage(&a);
  long f = faults();
  large_phase(7);
  hak_usage(&b);
  trace("mixed->large", &a, &b, faults() - f);
  CHECKF(segments(&a, &b) <= 2, "after small objects of 15 classes, the Large blocks mapped %zu segments",
         segments(&a, &b));
}

int main(void) {
  hak_usage_t u0, u1, u2, u3;
  hak_usage(&u0);
  large_phase(1);
  hak_usage(&u1);
  trace("large", &u0, &u1, 0);
  size_t large_bytes = (size_t)LARGE_N * LARGE_SIZE;
  CHECKF(u1.committed >= u0.committed + large_bytes / 2,
         "the freed Large pages should still be resident (purge delay): %zu KiB committed, %zu before",
         u1.committed >> 10, u0.committed >> 10);
  long f1 = faults();
  alloc_fill(small_blocks, SMALL_N, SMALL_SIZE, 2);
  long f2 = faults();
  hak_usage(&u2);
  trace("large->tiny", &u1, &u2, f2 - f1);
  /* The small objects took the Large tier's idle pages' place: committed
   * memory grew by far less than the 32 MiB they hold, through segments the
   * Large tier gave up (it keeps one): at most two new mappings, and under
   * 3/8 of the page faults of fresh pages (8192; ~2,000 here, 3,272 when the
   * pages of the segments given away had been released).  The first segment is
   * fresh: the Large tier gives its segments only once small objects have
   * taken 16 fresh slabs with no Large allocation in between. */
  CHECKF(u2.committed <= u1.committed + large_bytes / 4,
         "after 32 MiB of small objects: %zu KiB committed, %zu with only the freed Large blocks",
         u2.committed >> 10, u1.committed >> 10);
  CHECKF(segments(&u1, &u2) <= 2, "the small objects mapped %zu segments of their own", segments(&u1, &u2));
  CHECKF((size_t)(f2 - f1) < PHASE_PAGES * 3 / 8, "the small objects took %ld page faults", f2 - f1);
  check_free(small_blocks, SMALL_N, SMALL_SIZE, 2);
  /* And back: the emptied small-object segments become Large ones. */
  long f3 = faults();
  large_phase(3);
  long f4 = faults();
  hak_usage(&u3);
  trace("tiny->large", &u2, &u3, f4 - f3);
  CHECKF(segments(&u2, &u3) <= 2, "the Large blocks mapped %zu segments again", segments(&u2, &u3));
  CHECKF((size_t)(f4 - f3) < PHASE_PAGES / 4, "the Large blocks took %ld page faults again", f4 - f3);
  CHECKF(u3.committed <= u2.committed + large_bytes / 4, "back to Large blocks: %zu KiB committed, %zu before",
         u3.committed >> 10, u2.committed >> 10);
  /* Tiny objects, freed; then Mid ones take the Tiny segments. */
  hak_usage_t u4, u5;
  long f40 = faults();
  alloc_fill(small_blocks, SMALL_N, SMALL_SIZE, 4);
  check_free(small_blocks, SMALL_N, SMALL_SIZE, 4);
  hak_usage(&u4);
  trace("large->tiny 2", &u3, &u4, faults() - f40);
  long f5 = faults();
  alloc_fill(mid_blocks, MID_N, MID_SIZE, 5);
  long f6 = faults();
  hak_usage(&u5);
  trace("tiny->mid", &u4, &u5, f6 - f5);
  CHECKF(segments(&u4, &u5) <= 2, "the Mid blocks mapped %zu segments", segments(&u4, &u5));
  CHECKF((size_t)(f6 - f5) < PHASE_PAGES / 4, "the Mid blocks took %ld page faults", f6 - f5);
  check_free(mid_blocks, MID_N, MID_SIZE, 5);
  mixed_then_large();
  return check_report("tier_shift");
}
