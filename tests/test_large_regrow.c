/* large_regrow: when realloc moves a growing Large block, the span it
 * leaves goes back to its segment at once, not to a cache, so that the
 * block before it can grow into those pages in place (src/large.c,
 * hak_large_free_moved).  Three adjacent 96 KiB blocks A B C in a fresh
 * segment: B grows past C and must move; then A grows into B's old pages
 * without moving.  Before, B's old span sat in the thread's Large cache
 * and A moved too (a buffer grown step by step beside others copied
 * itself again and again).  Links the static hak_* library. */
#include "check.h"

#define KiB ((size_t)1 << 10)
#define BLK (96 * KiB) /* Large: above the Mid classes' 64 KiB */

static void fill(unsigned char *p, size_t n, unsigned char tag) {
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(tag + i * 7);
}

static size_t bad_at(const unsigned char *p, size_t n, unsigned char tag) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (unsigned char)(tag + i * 7)) return i;
  return SIZE_MAX;
}

int main(void) {
  unsigned char *a = hak_malloc(BLK), *b = hak_malloc(BLK), *c = hak_malloc(BLK);
  CHECK(a && b && c);
  /* First fit in a fresh segment, page-granular spans: adjacent. */
  CHECKF(b == a + BLK && c == b + BLK, "A %p B %p C %p are not adjacent", (void *)a, (void *)b,
         (void *)c);
  fill(a, BLK, 1);
  fill(b, BLK, 2);
  unsigned char *b2 = hak_realloc(b, 4 * BLK);
  CHECK(b2 != NULL);
  CHECKF(b2 != b, "B grew in place over C");
  CHECKF(bad_at(b2, BLK, 2) == SIZE_MAX, "B lost its contents when it moved");
  unsigned char *a2 = hak_realloc(a, 2 * BLK);
  CHECK(a2 != NULL);
  CHECKF(a2 == a, "A moved (%p -> %p): B's old pages were not free for it", (void *)a, (void *)a2);
  CHECKF(bad_at(a2, BLK, 1) == SIZE_MAX, "A lost its contents");
  CHECKF(hak_usable_size(a2) >= 2 * BLK, "A's usable size %zu", hak_usable_size(a2));
  /* A plain free still keeps its span in the cache for the next request
   * of its class: same address back. */
  hak_free(c);
  unsigned char *c2 = hak_malloc(BLK);
  CHECKF(c2 == c, "a freed span was not reused from the cache (%p, then %p)", (void *)c, (void *)c2);
  hak_free(a2);
  hak_free(b2);
  hak_free(c2);
  return check_report("large_regrow");
}
