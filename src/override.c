/* The malloc family, exported under glibc's names.  Linked or preloaded,
 * these replace glibc's allocator for the whole process (C++'s operator
 * new and delete: cxx.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <string.h>

#include "fastpath.h"
#include "os.h"
#include "stats.h"


HAK_EXPORT hak_front void *malloc(size_t n) { return hak_alloc_fast(n); }
HAK_EXPORT hak_front void free(void *p) { hak_free_fast(p); }
HAK_EXPORT hak_front void *calloc(size_t count, size_t size) { return hak_calloc_impl(count, size, HAK_RA()); }
HAK_EXPORT hak_front void *realloc(void *p, size_t n) { return hak_realloc_impl(p, n, HAK_RA()); }

HAK_EXPORT hak_front void *reallocarray(void *p, size_t count, size_t size) {
  size_t n;
  if (__builtin_mul_overflow(count, size, &n)) {
    errno = ENOMEM;
    return NULL;
  }
  return hak_realloc_impl(p, n, HAK_RA());
}

HAK_EXPORT int posix_memalign(void **out, size_t align, size_t n) {
  if (!hak_is_pow2(align) || align % sizeof(void *)) return EINVAL;
  int saved = errno;
  void *p = hak_alloc_routed(n, align, false, HAK_RA());
  errno = saved;
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}

HAK_EXPORT void *aligned_alloc(size_t align, size_t n) { return hak_aligned_impl(align, n, HAK_RA()); }
HAK_EXPORT void *memalign(size_t align, size_t n) { return hak_memalign_impl(align, n, HAK_RA()); }
HAK_EXPORT void *valloc(size_t n) { return hak_alloc_routed(n, HAK_PAGE, false, HAK_RA()); }

HAK_EXPORT void *pvalloc(size_t n) {
  if (n > HAK_MAX_REQUEST) {
    errno = ENOMEM;
    return NULL;
  }
  return hak_alloc_routed(n ? hak_align_up(n, HAK_PAGE) : HAK_PAGE, HAK_PAGE, false, HAK_RA());
}

HAK_EXPORT size_t malloc_usable_size(void *p) { return hak_usable_size(p); }
HAK_EXPORT void free_sized(void *p, size_t n) {
  (void)n;
  hak_free_fast(p);
}
HAK_EXPORT void free_aligned_sized(void *p, size_t align, size_t n) {
  (void)align, (void)n;
  hak_free_fast(p);
}
HAK_EXPORT void cfree(void *p) { hak_free_fast(p); }

HAK_EXPORT int malloc_trim(size_t pad) {
  (void)pad;
  return hak_trim();
}

HAK_EXPORT struct mallinfo2 mallinfo2(void) {
  hak_usage_t u;
  hak_usage(&u);
  struct mallinfo2 mi;
  memset(&mi, 0, sizeof mi);
  mi.arena = u.mapped;
  mi.hblks = 0;
  mi.hblkhd = 0;
  /* In use: committed memory not sitting in a cache (an upper bound:
   * partly used slabs count whole). */
  size_t cached = hak_big_cached_committed() + hak_large_cached_bytes();
  mi.uordblks = u.committed > cached ? u.committed - cached : 0;
  mi.fordblks = u.mapped > mi.uordblks ? u.mapped - mi.uordblks : 0;
  mi.keepcost = cached;
  return mi;
}

HAK_EXPORT struct mallinfo mallinfo(void) {
  struct mallinfo2 m2 = mallinfo2();
  struct mallinfo mi;
  memset(&mi, 0, sizeof mi);
#define CLAMP(x) ((int)((x) > 0x7fffffff ? 0x7fffffff : (x)))
  mi.arena = CLAMP(m2.arena);
  mi.uordblks = CLAMP(m2.uordblks);
  mi.fordblks = CLAMP(m2.fordblks);
  mi.keepcost = CLAMP(m2.keepcost);
#undef CLAMP
  return mi;
}

HAK_EXPORT void malloc_stats(void) { hak_stats_print(2); }

/* glibc's internal names, which a few programs call directly. */
HAK_EXPORT void *__libc_malloc(size_t n) { return hak_alloc_fast(n); }
HAK_EXPORT void __libc_free(void *p) { hak_free_fast(p); }
HAK_EXPORT void *__libc_calloc(size_t c, size_t n) { return hak_calloc_impl(c, n, HAK_RA()); }
HAK_EXPORT void *__libc_realloc(void *p, size_t n) { return hak_realloc_impl(p, n, HAK_RA()); }
HAK_EXPORT void *__libc_memalign(size_t a, size_t n) { return hak_memalign_impl(a, n, HAK_RA()); }
