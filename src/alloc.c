/* The allocation API behind every entry point: the hak_* functions, and the
 * less common paths of free, realloc, calloc and aligned allocation. */
#include <errno.h>
#include <string.h>

#include "fastpath.h"
#include "msg.h"
#include "options.h"
#include "os.h"
#include "site.h"

static _Atomic unsigned errors_reported;

/* Reports misuse a bounded number of times: a broken program must not
 * drown its own output. */
hak_cold void hak_report_misuse(const char *what, const void *p, bool twice) {
  HAK_STAT_INC(*(twice ? &hak_gstats.double_frees : &hak_gstats.invalid_frees));
  if (!HAK_OPT(REPORT_ERRORS)) return;
  unsigned n = atomic_fetch_add_explicit(&errors_reported, 1, memory_order_relaxed);
  if (n < 16) hak_error("%s of %p; ignored", what, p);
  if (n == 16) hak_error("further errors are not reported");
}

/* The owner's free when `used` reached 0 (already decremented) or the block
 * is the head of local_free. */
void hak_free_owner_slow(hak_heap_t *h, hak_slab_t *s, hak_block_t *b) {
  if ((int32_t)s->used < 0 || b == s->local_free) {
    s->used++; /* undo: this free does not count */
    bool twice = hak_slab_owns_block(s, b);
    hak_report_misuse(twice ? "double free" : "invalid free", b, twice);
    return;
  }
  b->next = s->local_free;
  s->local_free = b;
  if (s->used == 0) hak_heap_retire(h, s);
}

void hak_free_nonowner(void *p, hak_segment_t *seg, hak_slab_t *s) {
  switch (seg->kind) {
    case HAK_SEG_LARGE: hak_large_free(seg, p); return;
    case HAK_SEG_BIG: hak_big_free(seg, p); return;
    case HAK_SEG_TINY:
    case HAK_SEG_MID: {
      hak_heap_t *h = hak_tls_heap;
      if (hak_slab_owner(s) == h && h != &hak_heap_empty) {
        hak_heap_free_full(h, s, p); /* our own full slab: validated like the fast path */
        return;
      }
      if (hak_slab_owns_block(s, p)) {
        if (h != &hak_heap_empty) HAK_STAT_ADD(h->stats.cls[s->cls].remote_frees, 1);
        hak_slab_free_remote(s, p);
        return;
      }
      break;
    }
  }
  hak_report_misuse("invalid free", p, false);
}

void hak_free_special(void *p) {
  if (!p) return;
  hak_segment_t *seg = hak_segmap_lookup(p);
  if (seg && seg->kind == HAK_SEG_BIG) {
    hak_big_free(seg, p);
    return;
  }
  hak_report_misuse("invalid free (not allocated by hakmem)", p, false);
}

/* Usable size, or 0 when p is not a live hakmem block. */
static size_t usable_size(const void *p) {
  hak_segment_t *seg = hak_segmap_lookup(p);
  if (!seg) return 0;
  switch (seg->kind) {
    case HAK_SEG_TINY:
    case HAK_SEG_MID: {
      hak_slab_t *s = &seg->slabs[((uintptr_t)p - (uintptr_t)seg) >> seg->slab_shift];
      return hak_slab_owns_block(s, p) ? s->block_size : 0;
    }
    case HAK_SEG_LARGE: return hak_large_usable(seg, p);
    case HAK_SEG_BIG: return hak_big_usable(seg, p);
  }
  return 0;
}

HAK_EXPORT void *hak_malloc(size_t n) { return hak_alloc_fast(n); }
HAK_EXPORT void hak_free(void *p) { hak_free_fast(p); }
HAK_EXPORT size_t hak_usable_size(const void *p) { return p ? usable_size(p) : 0; }
HAK_EXPORT int hak_owns(const void *p) { return hak_segmap_lookup(p) != NULL; }

void *hak_alloc_aligned(size_t align, size_t n, bool zero, void *site) {
  if (align <= 16) {
    void *p = n <= HAK_TINY_MAX ? hak_alloc_fast(n) : hak_malloc_slow(n, site);
    if (p && zero) memset(p, 0, n);
    return p;
  }
  if (n > HAK_MAX_REQUEST || align > HAK_MAX_REQUEST) {
    errno = ENOMEM;
    return NULL;
  }
  if (n <= HAK_MID_MAX && align <= HAK_MID_MAX) {
    /* Slab starts are aligned to >= 8 KiB (Tiny) and 64 KiB (Mid): a class
     * whose size is a multiple of `align` gives aligned blocks.  The power
     * of two >= align is such a class, so the search ends. */
    unsigned c = hak_class_of(n > align ? n : align);
    while (hak_class_size(c) % align) c++;
    void *p = hak_heap_alloc_class(hak_tls_heap, c, site);
    if (p && zero) memset(p, 0, n);
    return p;
  }
  if (hak_unlikely(hak_init_state != 2)) hak_process_init();
  if (n + align < (size_t)HAK_OPT(BIG_THRESHOLD)) return hak_large_alloc(n, align, zero, site);
  return hak_big_alloc(n, align, zero, site);
}

void *hak_calloc_impl(size_t count, size_t size, void *site) {
  size_t n;
  if (__builtin_mul_overflow(count, size, &n)) {
    errno = ENOMEM;
    return NULL;
  }
  if (n <= HAK_MID_MAX) {
    void *p = n <= HAK_TINY_MAX ? hak_alloc_fast(n) : hak_malloc_slow(n, site);
    if (p) memset(p, 0, n);
    return p;
  }
  return hak_alloc_aligned(HAK_PAGE, n, true, site); /* Large/Big skip zeroing fresh pages */
}

void *hak_realloc_impl(void *p, size_t n, void *site) {
  if (!p) return n <= HAK_TINY_MAX ? hak_alloc_fast(n) : hak_malloc_slow(n, site);
  if (n == 0) { /* glibc: frees and returns NULL */
    hak_free_fast(p);
    return NULL;
  }
  size_t old = usable_size(p);
  if (!old) {
    hak_report_misuse("invalid realloc", p, false);
    errno = EINVAL;
    return NULL;
  }
  if (n <= old && n >= old / 2) return p; /* fits, and not too wasteful */
  hak_segment_t *seg = hak_segmap_lookup(p);
  if (n > old && n < (size_t)HAK_OPT(BIG_THRESHOLD) && seg->kind == HAK_SEG_LARGE &&
      hak_large_grow(seg, p, n, site))
    return p;
  if (seg->kind == HAK_SEG_BIG && n >= (size_t)HAK_OPT(BIG_THRESHOLD)) {
    void *q = hak_big_realloc(seg, p, n, site);
    if (q) return q;
  }
  if (n > HAK_MAX_REQUEST) {
    errno = ENOMEM;
    return NULL;
  }
  /* A Large block that must move while growing gets a quarter more room:
   * buffers grown step by step then copy O(1) times per byte. */
  size_t want = n;
  if (n > old && seg->kind == HAK_SEG_LARGE && n + n / 4 < (size_t)HAK_OPT(BIG_THRESHOLD))
    want = n + n / 4;
  void *q = want <= HAK_TINY_MAX ? hak_alloc_fast(want) : hak_malloc_slow(want, site);
  if (!q) return NULL;
  memcpy(q, p, old < n ? old : n);
  hak_free_fast(p);
  return q;
}

HAK_EXPORT void *hak_calloc(size_t count, size_t size) { return hak_calloc_impl(count, size, HAK_RA()); }
HAK_EXPORT void *hak_realloc(void *p, size_t n) { return hak_realloc_impl(p, n, HAK_RA()); }

void *hak_aligned_impl(size_t align, size_t n, void *site) {
  if (!hak_is_pow2(align)) {
    errno = EINVAL;
    return NULL;
  }
  return hak_alloc_aligned(align, n, false, site);
}

HAK_EXPORT void *hak_aligned_alloc(size_t align, size_t n) { return hak_aligned_impl(align, n, HAK_RA()); }

HAK_EXPORT int hak_trim(void) {
  size_t before = atomic_load(&hak_os.committed);
  hak_heap_t *h = hak_tls_heap;
  if (h != &hak_heap_empty) {
    hak_large_flush_thread(h);
    hak_segment_adopt_all(h);
    hak_heap_collect(h, true, true);
  }
  hak_large_trim(true);
  hak_big_trim(true);
  hak_segment_cache_trim();
  return atomic_load(&hak_os.committed) < before;
}

/* Explicit call-site API: counts are exact for every call; Large/Big blocks
 * are tracked to their free, Tiny/Mid ones through the sampling. */
HAK_EXPORT void *hak_alloc_at(size_t n, const void *site) {
  if (hak_unlikely(hak_init_state != 2)) hak_process_init();
  if (!hak_stats_on) return hak_malloc_slow(n, (void *)site);
  hak_sites_on = true;
  if (n > HAK_MID_MAX) return hak_malloc_slow(n, (void *)site); /* recorded there */
  hak_site_count((void *)site, n);
  hak_heap_t *h = hak_heap_get();
  if (h == &hak_heap_empty) return hak_malloc_slow(n, (void *)site);
  h->sample_off = true; /* counted exactly here: no sample as well */
  void *p = hak_malloc_slow(n, (void *)site);
  h->sample_off = false;
  return p;
}

HAK_EXPORT void *hak_alloc_cs(size_t n) { return hak_alloc_at(n, HAK_RA()); }
HAK_EXPORT void hak_free_cs(void *p) { hak_free_fast(p); }

HAK_EXPORT int hak_profile_write(const char *path) {
  if (!path) {
    errno = EINVAL;
    return -1;
  }
  return hak_site_write(path);
}
