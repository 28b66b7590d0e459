/* addr_space: mappings that come and go stay in a bounded part of the
 * address space.  Aligned mappings are asked for just below the last one
 * (src/os.c: one mmap instead of an unaligned answer's five), which alone
 * crept down as Big blocks were mapped and unmapped: each landed a little
 * lower (its alignment), 20,000 of them 246 GiB apart, and every 16 GiB
 * touched costs a page of the segment map.  Run with HAKMEM_BIGCACHE=0, so
 * that every Big free unmaps; sizes vary, so that alignment moves them. */
#include <stdint.h>

#include "check.h"

int main(void) {
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  for (int i = 0; i < 4000; i++) {
    size_t n = ((size_t)4 + (size_t)(i % 13)) << 20;
    char *p = malloc(n);
    CHECK(p != NULL);
    if (!p) break;
    p[0] = 1, p[n - 1] = 2;
    uintptr_t a = (uintptr_t)p;
    if (a < lo) lo = a;
    if (a + n > hi) hi = a + n;
    free(p);
  }
  /* Never more than 17 MiB mapped at once: allow 1 GiB of drift and 3 GiB
   * of whatever else the process maps in between. */
  CHECKF(hi - lo < ((uintptr_t)4 << 30), "4,000 Big blocks spread over %.1f GiB of address space",
         (double)(hi - lo) / (1 << 30));
  return check_report("addr_space");
}
