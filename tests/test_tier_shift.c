/* tier_shift: a program that moves from Large blocks to small ones does not
 * hold both.  With a purge delay far longer than the test, the Large tier's
 * freed pages stay resident until something else wants memory; small
 * objects that need fresh slabs take them back first (src/segment.c,
 * slab_acquire; src/large.c, hak_large_release).  Run with
 * HAKMEM_PURGE_DELAY_MS=60000.  Linked to libhakmem: malloc is hakmem's and
 * hak_usage is callable. */
#include "check.h"

#define LARGE_N 128
#define LARGE_SIZE ((size_t)256 << 10) /* 32 MiB in all */
#define SMALL_N (256 * 1024)
#define SMALL_SIZE 128 /* 32 MiB in all */

static void *large[LARGE_N];
static void *small_blocks[SMALL_N];

int main(void) {
  hak_usage_t u0, u1, u2;
  hak_usage(&u0);
  for (int i = 0; i < LARGE_N; i++) {
    large[i] = malloc(LARGE_SIZE);
    CHECK(large[i] != NULL);
    if (large[i]) memset(large[i], 1, LARGE_SIZE);
  }
  for (int i = 0; i < LARGE_N; i++) free(large[i]);
  hak_usage(&u1);
  size_t large_bytes = (size_t)LARGE_N * LARGE_SIZE;
  CHECKF(u1.committed >= u0.committed + large_bytes / 2,
         "the freed Large pages should still be resident (purge delay): %zu KiB committed, %zu before",
         u1.committed >> 10, u0.committed >> 10);
  for (int i = 0; i < SMALL_N; i++) {
    small_blocks[i] = malloc(SMALL_SIZE);
    CHECK(small_blocks[i] != NULL);
    if (small_blocks[i]) memset(small_blocks[i], 2, SMALL_SIZE);
  }
  hak_usage(&u2);
  /* The small objects' fresh slabs took the Large tier's idle pages' place:
   * committed memory grew by far less than the 32 MiB they hold. */
  CHECKF(u2.committed <= u1.committed + large_bytes / 4,
         "after 32 MiB of small objects: %zu KiB committed, %zu with only the freed Large blocks",
         u2.committed >> 10, u1.committed >> 10);
  for (int i = 0; i < SMALL_N; i++) {
    CHECK(((unsigned char *)small_blocks[i])[SMALL_SIZE - 1] == 2);
    free(small_blocks[i]);
  }
  return check_report("tier_shift");
}
