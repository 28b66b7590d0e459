/* test_fuzz_found — minimal reproducers of bugs that fuzz_api found.
 *
 * aligned_zero_big: hak_aligned_alloc(align, 0) with align >= 2 MiB (any
 *   request the Big tier serves with an alignment that is a multiple of its
 *   64 KiB mapping grain) puts the block at offset `align` of a fresh
 *   mapping that is only `align` bytes long: the pointer is the end of the
 *   mapping.  Its usable size is 0 and realloc refuses it (EINVAL, "invalid
 *   realloc"); from 4 MiB on, the pointer lies in the next 4 MiB unit —
 *   another segment's header, or nothing — so free reports an "invalid
 *   free" and the mapping leaks.  (fuzz_api, seed tests/fuzz_corpus/aligned.) */
#define _GNU_SOURCE
#include <errno.h>

#include "check.h"

static unsigned long long misuse_count(void) {
  hak_stats_t st;
  if (hak_stats_get(&st) != 0) return 0;
  return st.invalid_frees + st.double_frees;
}

static void aligned_zero_big(void) {
  for (size_t align = 2 * MiB; align <= 8 * MiB; align <<= 1) {
    for (int realloc_it = 0; realloc_it < 2; realloc_it++) {
      hak_trim(); /* an empty BigCache: the mapping is fresh */
      hak_usage_t u0, u1;
      hak_usage(&u0);
      unsigned long long bad0 = misuse_count();
      /* A live Large block, so that the 4 MiB unit after the mapping is
       * likely hakmem's too (a Large segment's header). */
      void *neighbour = hak_malloc(100 * KiB);
      CHECK(neighbour != NULL);
      void *p = hak_aligned_alloc(opaque_size(align), opaque_size(0));
      CHECKF(p != NULL, "aligned_alloc(%zu, 0) failed", align);
      if (!p) continue;
      CHECKF((uintptr_t)p % align == 0, "aligned_alloc(%zu, 0) = %p misaligned", align, p);
      CHECKF(hak_owns(p), "aligned_alloc(%zu, 0) = %p not owned", align, p);
      if (realloc_it) { /* a zero-size block may grow */
        errno = 0;
        void *q = hak_realloc(p, 100);
        CHECKF(q != NULL, "realloc(aligned_alloc(%zu, 0) = %p, 100) failed, errno %d", align, p,
               errno);
        if (q) p = q;
        bad0 = misuse_count(); /* the failure above counts as misuse */
      }
      hak_free(p);
      CHECKF(misuse_count() == bad0, "free(%p) from aligned_alloc(%zu, 0) refused as misuse", p,
             align);
      hak_free(neighbour);
      hak_trim();
      hak_usage(&u1);
      CHECKF(u1.mapped <= u0.mapped, "aligned_alloc(%zu, 0): %zu bytes still mapped after free",
             align, u1.mapped - u0.mapped);
    }
  }
}

int main(int argc, char **argv) {
  section_select(argc, argv);
  RUN_SECTION(aligned_zero_big);
  return check_report("fuzz_found");
}
